//! The agent's thin driver: one UDP socket, the console channels and a timer
//! around a [`Client`]. It decides nothing; it moves bytes, lines and time.

use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::client::Client;
use crate::config::AgentConfig;
use crate::console::{self, Output};

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A bad `--server`.
    #[error("{0}")]
    Config(String),
    /// The socket could not be opened.
    #[error("cannot open a UDP socket towards {server}: {source}")]
    Socket {
        /// The server address.
        server: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Runs the agent until `quit` (or the end of the command stream).
///
/// `commands` yields console input lines; every stdout line goes to
/// `output`, every log line to `log`. Returns when the client has stopped.
pub async fn run(
    cfg: AgentConfig,
    mut commands: mpsc::Receiver<String>,
    output: mpsc::UnboundedSender<String>,
    log: mpsc::UnboundedSender<String>,
) -> Result<(), AgentError> {
    let server = cfg.server_addr().map_err(AgentError::Config)?;
    let bind: std::net::SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(|_| AgentError::Config("bad bind address".into()))?;
    let socket = UdpSocket::bind(bind)
        .await
        .map_err(|source| AgentError::Socket { server, source })?;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ u64::from(std::process::id());
    let epoch = Instant::now();
    let now = move || rig_proto::time::Instant::from_micros(epoch.elapsed().as_micros() as u64);
    let mut client = Client::new(cfg, server, seed);
    client.start(now());
    let mut buf = vec![0u8; 65_535];
    let mut commands_open = true;
    loop {
        while let Some((peer, bytes)) = client.poll_transmit() {
            if let Err(e) = socket.send_to(&bytes, peer).await {
                let _ = log.send(format!("send to {peer} failed: {e}"));
            }
        }
        while let Some(line) = client.poll_log() {
            let _ = log.send(line);
        }
        while let Some(out) = client.poll_output() {
            let _ = output.send(out.to_string());
        }
        if client.is_finished() {
            return Ok(());
        }
        let deadline = client
            .poll_timeout()
            .map(|t| epoch + Duration::from_micros(t.as_micros()));
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, peer)) => client.handle_datagram(now(), peer, &buf[..n]),
                Err(e) => { let _ = log.send(format!("receive failed: {e}")); }
            },
            line = commands.recv(), if commands_open => match line {
                Some(line) => match console::parse(&line) {
                    Ok(Some(cmd)) => client.handle_command(now(), cmd),
                    Ok(None) => {}
                    Err(e) => { let _ = output.send(Output::Error(e.word, e.reason).to_string()); }
                },
                None => {
                    // End of input is `quit`.
                    commands_open = false;
                    client.handle_command(now(), console::Command::Quit);
                }
            },
            _ = sleep_until(deadline) => client.handle_timeout(now()),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
