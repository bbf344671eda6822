//! The thin driver of an agent that has a bootstrap account: bootstrap when
//! no usable server account exists (or when asked), then run the LwM2M client
//! with the account the bootstrap provisioned, in its security mode; back to
//! the bootstrap server on Execute `/1/x/9` or a failed Register.

use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Accounts, BootstrapSession, Outcome, dtls_config, server_config};
use crate::config::{AgentConfig, SecurityMode};
use crate::console::{self, Command, Output};
use crate::driver::{AgentError, DtlsSetup, SessionEnd, Transport, connect_dtls, run_lwm2m};

/// First and largest delay between bootstrap attempts.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(16);

/// How one bootstrap attempt ended.
enum Attempt {
    Quit,
    Done(Accounts),
    Failed,
}

/// Runs the agent (see the module doc) until `quit`.
pub(crate) async fn run(
    cfg: AgentConfig,
    mut commands: mpsc::Receiver<String>,
    output: mpsc::UnboundedSender<String>,
    log: mpsc::UnboundedSender<String>,
) -> Result<(), AgentError> {
    let mut accounts = Accounts::factory(&cfg);
    // The factory account's credentials are the command line's.
    let mut factory = true;
    let _ = output.send(Output::Ready.to_string());
    let mut need_bootstrap = accounts.server_account().is_err()
        || cfg.deviates(crate::config::Deviation::BootstrapDespiteServer);
    let mut retry = RETRY_FIRST;
    loop {
        if need_bootstrap {
            match bootstrap_once(&cfg, accounts.clone(), &mut commands, &output, &log).await? {
                Attempt::Quit => return Ok(()),
                Attempt::Done(a) => {
                    accounts = a;
                    factory = false;
                    retry = RETRY_FIRST;
                }
                Attempt::Failed => {
                    let _ = log.send(format!("bootstrap: retrying in {} s", retry.as_secs()));
                    if wait_or_quit(retry, &mut commands, &output).await {
                        return Ok(());
                    }
                    retry = (retry * 2).min(RETRY_MAX);
                    continue;
                }
            }
        }
        let account = match accounts.server_account() {
            Ok(a) => a,
            Err(why) => {
                let _ = output.send(format!("bootstrap-failed no usable server account: {why}"));
                need_bootstrap = true;
                continue;
            }
        };
        let server_cfg = server_config(&cfg, &account);
        let setup = match (factory, account.security) {
            (_, SecurityMode::Nosec) => None,
            (true, _) => DtlsSetup::new(&server_cfg)?,
            (false, _) => match dtls_config(&account) {
                Ok(Some(mut c)) => {
                    cfg.tune_dtls(&mut c);
                    // `--server-name` names the server certificate when the
                    // account's URI holds an address (ETS int-2 on a bench).
                    if let (
                        rig_dtls::ClientCredentials::Certificate { server_name, .. },
                        Some(name),
                    ) = (&mut c.credentials, &cfg.server_name)
                    {
                        *server_name = Some(name.clone());
                    }
                    Some(DtlsSetup::openssl(c)?)
                }
                Ok(None) => None,
                Err(why) => {
                    let _ = output.send(format!("bootstrap-failed {why}"));
                    need_bootstrap = true;
                    continue;
                }
            },
        };
        match run_lwm2m(server_cfg, setup, &mut commands, &output, &log).await? {
            SessionEnd::Quit => return Ok(()),
            SessionEnd::Bootstrap => {
                let _ = log.send("bootstrap: requested".into());
                need_bootstrap = true;
            }
        }
    }
}

/// Sleeps `d`; true if the console said quit (or closed) meanwhile.
async fn wait_or_quit(
    d: Duration,
    commands: &mut mpsc::Receiver<String>,
    output: &mpsc::UnboundedSender<String>,
) -> bool {
    let sleep = tokio::time::sleep(d);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return false,
            line = commands.recv() => match line {
                None => return true,
                Some(line) => if on_command(&line, output) {
                    return true;
                },
            },
        }
    }
}

/// A console line while bootstrapping: only `quit` works. True for quit.
fn on_command(line: &str, output: &mpsc::UnboundedSender<String>) -> bool {
    match console::parse(line) {
        Ok(Some(Command::Quit)) => {
            let _ = output.send(Output::Ok("quit").to_string());
            true
        }
        Ok(None) => false,
        Ok(Some(_)) => {
            let word = line.split_whitespace().next().unwrap_or_default();
            let _ = output.send(Output::Error(word.into(), "bootstrapping".into()).to_string());
            false
        }
        Err(e) => {
            let _ = output.send(Output::Error(e.word, e.reason).to_string());
            false
        }
    }
}

/// One client-initiated bootstrap with the bootstrap account of `accounts`.
async fn bootstrap_once(
    cfg: &AgentConfig,
    accounts: Accounts,
    commands: &mut mpsc::Receiver<String>,
    output: &mpsc::UnboundedSender<String>,
    log: &mpsc::UnboundedSender<String>,
) -> Result<Attempt, AgentError> {
    let Some(uri) = accounts.bootstrap_uri() else {
        let _ = output.send("bootstrap-failed no bootstrap account".to_string());
        return Ok(Attempt::Failed);
    };
    let mut bs_cfg = cfg.clone();
    bs_cfg.server = uri.clone();
    if uri.starts_with("coap://") {
        bs_cfg.security = SecurityMode::Nosec;
    }
    let server = bs_cfg
        .server_addr()
        .map_err(|e| AgentError::Config(e.replace("--server", "--bootstrap-uri")))?;
    let bind: std::net::SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(|_| AgentError::Config("bad bind address".into()))?;
    let socket = match DtlsSetup::new(&bs_cfg)? {
        None => Transport::Udp(
            UdpSocket::bind(bind)
                .await
                .map_err(|source| AgentError::Socket { server, source })?,
        ),
        Some(dtls) => match connect_dtls(bind, server, dtls, commands, output, log).await? {
            Some(s) => s,
            None => return Ok(Attempt::Quit),
        },
    };
    let _ = log.send(format!("bootstrap: with {uri}"));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7)
        ^ u64::from(std::process::id()).rotate_left(17);
    let epoch = Instant::now();
    let now = move || rig_proto::time::Instant::from_micros(epoch.elapsed().as_micros() as u64);
    let mut session = BootstrapSession::new(cfg, accounts, server, seed);
    session.start(now());
    let mut buf = vec![0u8; 65_535];
    loop {
        while let Some((peer, bytes)) = session.poll_transmit() {
            if let Err(e) = socket.send_to(&bytes, peer).await {
                let _ = log.send(format!("send to {peer} failed: {e}"));
            }
        }
        while let Some(line) = session.poll_log() {
            let _ = log.send(format!("bootstrap: {line}"));
        }
        while let Some(line) = session.poll_output() {
            let _ = output.send(line);
        }
        match session.outcome() {
            Some(Outcome::Finished) => return Ok(Attempt::Done(session.into_accounts())),
            Some(Outcome::Failed(_)) => return Ok(Attempt::Failed),
            None => {}
        }
        let deadline = session
            .poll_timeout()
            .map(|t| epoch + Duration::from_micros(t.as_micros()));
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, peer)) => session.handle_datagram(now(), peer, &buf[..n]),
                Err(e) => {
                    let _ = log.send(format!("bootstrap: receive failed: {e}"));
                    if !matches!(socket, Transport::Udp(_)) {
                        let _ = output.send(format!("bootstrap-failed session ended: {e}"));
                        return Ok(Attempt::Failed);
                    }
                }
            },
            line = commands.recv() => match line {
                None => return Ok(Attempt::Quit),
                Some(line) => if on_command(&line, output) {
                    return Ok(Attempt::Quit);
                },
            },
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => session.handle_timeout(now()),
        }
    }
}
