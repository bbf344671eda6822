//! The agent's thin driver: one UDP socket (NoSec) or one DTLS session
//! (`coaps://`), the console channels and a timer around a [`Client`]. It
//! decides nothing; it moves bytes, lines and time. A failed DTLS handshake is
//! printed as `error dtls: <reason>` and retried with a bounded backoff.

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

/// The datagram pipe to the server.
pub(crate) enum Transport {
    Udp(UdpSocket),
    Dtls(rig_dtls::DtlsClientSocket),
    /// `--dtls-backend webrtc`.
    #[cfg(feature = "webrtc-dtls")]
    Webrtc(Box<crate::dtls_webrtc::WebrtcDtlsSocket>),
}

impl Transport {
    pub(crate) async fn send_to(
        &self,
        bytes: &[u8],
        peer: std::net::SocketAddr,
    ) -> Result<(), String> {
        match self {
            Transport::Udp(s) => s
                .send_to(bytes, peer)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Transport::Dtls(s) => s
                .send_to(bytes, peer)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            #[cfg(feature = "webrtc-dtls")]
            Transport::Webrtc(s) => s
                .send_to(bytes, peer)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        }
    }

    pub(crate) async fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> Result<(usize, std::net::SocketAddr), String> {
        match self {
            Transport::Udp(s) => s.recv_from(buf).await.map_err(|e| e.to_string()),
            Transport::Dtls(s) => s.recv_from(buf).await.map_err(|e| e.to_string()),
            #[cfg(feature = "webrtc-dtls")]
            Transport::Webrtc(s) => s.recv_from(buf).await.map_err(|e| e.to_string()),
        }
    }
}

/// What a DTLS handshake attempt needs, per `--dtls-backend`.
pub(crate) enum DtlsSetup {
    Openssl(std::sync::Arc<rig_dtls::ClientContext>),
    #[cfg(feature = "webrtc-dtls")]
    Webrtc(Box<crate::dtls_webrtc::WebrtcClientConfig>),
}

impl DtlsSetup {
    /// The OpenSSL backend with a ready configuration (a bootstrapped account's).
    pub(crate) fn openssl(config: rig_dtls::ClientConfig) -> Result<DtlsSetup, AgentError> {
        rig_dtls::ClientContext::new(config)
            .map(|c| DtlsSetup::Openssl(std::sync::Arc::new(c)))
            .map_err(|e| AgentError::Config(e.to_string()))
    }

    /// `None` for nosec; errors name the flag that is wrong.
    pub(crate) fn new(cfg: &AgentConfig) -> Result<Option<DtlsSetup>, AgentError> {
        match cfg.dtls_backend {
            crate::config::DtlsBackend::Openssl => match cfg.dtls_config() {
                Ok(None) => Ok(None),
                Ok(Some(c)) => Ok(Some(DtlsSetup::Openssl(std::sync::Arc::new(
                    rig_dtls::ClientContext::new(c)
                        .map_err(|e| AgentError::Config(e.to_string()))?,
                )))),
                Err(e) => Err(AgentError::Config(e)),
            },
            #[cfg(feature = "webrtc-dtls")]
            crate::config::DtlsBackend::Webrtc => crate::dtls_webrtc::WebrtcClientConfig::new(cfg)
                .map(|c| c.map(|c| DtlsSetup::Webrtc(Box::new(c))))
                .map_err(AgentError::Config),
            #[cfg(not(feature = "webrtc-dtls"))]
            crate::config::DtlsBackend::Webrtc => Err(AgentError::Config(
                "--dtls-backend webrtc: this rig-agent was built without the `webrtc-dtls` feature"
                    .into(),
            )),
        }
    }

    /// One handshake: the session and its cipher suite, or why it failed.
    async fn attempt(
        &self,
        bind: std::net::SocketAddr,
        server: std::net::SocketAddr,
    ) -> Result<(Transport, String), String> {
        match self {
            DtlsSetup::Openssl(ctx) => {
                let s = rig_dtls::DtlsClientSocket::connect(bind, server, ctx.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                let suite = s.cipher_suite().map_or("?", |c| c.name).to_string();
                Ok((Transport::Dtls(s), suite))
            }
            #[cfg(feature = "webrtc-dtls")]
            DtlsSetup::Webrtc(c) => {
                let s = crate::dtls_webrtc::WebrtcDtlsSocket::connect(bind, server, c)
                    .await
                    .map_err(|e| e.to_string())?;
                let suite = format!("{}, webrtc-dtls", s.cipher_suite());
                Ok((Transport::Webrtc(Box::new(s)), suite))
            }
        }
    }
}

/// First and largest delay between DTLS handshake attempts.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(16);

/// Handshakes until one succeeds; `None` if the console said quit meanwhile.
pub(crate) async fn connect_dtls(
    bind: std::net::SocketAddr,
    server: std::net::SocketAddr,
    setup: DtlsSetup,
    commands: &mut mpsc::Receiver<String>,
    output: &mpsc::UnboundedSender<String>,
    log: &mpsc::UnboundedSender<String>,
) -> Result<Option<Transport>, AgentError> {
    let mut backoff = BACKOFF_FIRST;
    loop {
        let attempt = setup.attempt(bind, server);
        tokio::pin!(attempt);
        let failed = loop {
            tokio::select! {
                r = &mut attempt => match r {
                    Ok((s, suite)) => {
                        let _ = log.send(format!("dtls: connected to {server} ({suite})"));
                        return Ok(Some(s));
                    }
                    Err(e) => break e,
                },
                line = commands.recv() => match line.as_deref().map(str::trim) {
                    None | Some("quit") => return Ok(None),
                    Some(_) => {
                        let _ = output.send(Output::Error(
                            "dtls".into(),
                            "not connected yet (handshake in progress)".into(),
                        ).to_string());
                    }
                },
            }
        };
        let _ = output.send(Output::Error("dtls".into(), failed.to_string()).to_string());
        let _ = log.send(format!("dtls: retrying in {} s", backoff.as_secs()));
        let sleep = tokio::time::sleep(backoff);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                line = commands.recv() => match line.as_deref().map(str::trim) {
                    None | Some("quit") => return Ok(None),
                    Some(_) => {
                        let _ = output.send(Output::Error(
                            "dtls".into(),
                            "not connected (handshake failed; retrying)".into(),
                        ).to_string());
                    }
                },
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
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
    if cfg.mqtt.is_some() {
        return crate::mqtt::run(cfg, commands, output, log).await;
    }
    if cfg.bootstrap_uri.is_some() {
        return crate::bootstrap::run(cfg, commands, output, log).await;
    }
    let setup = DtlsSetup::new(&cfg)?;
    run_lwm2m(cfg, setup, &mut commands, &output, &log)
        .await
        .map(drop)
}

/// How one LwM2M client session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SessionEnd {
    /// `quit` (or the end of the command stream).
    Quit,
    /// A bootstrap is due (Execute `/1/x/9`, or registration failed with a
    /// bootstrap account).
    Bootstrap,
}

/// Runs one LwM2M client session with the server `cfg` names, over `setup`
/// (`None`: NoSec), until quit or until a bootstrap is due.
pub(crate) async fn run_lwm2m(
    cfg: AgentConfig,
    setup: Option<DtlsSetup>,
    commands: &mut mpsc::Receiver<String>,
    output: &mpsc::UnboundedSender<String>,
    log: &mpsc::UnboundedSender<String>,
) -> Result<SessionEnd, AgentError> {
    let server = cfg.server_addr().map_err(AgentError::Config)?;
    if let Some(Err(e)) = cfg.server2_addr() {
        return Err(AgentError::Config(e));
    }
    let bind: std::net::SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(|_| AgentError::Config("bad bind address".into()))?;
    let secure = setup.is_some();
    let socket = match setup {
        None => Transport::Udp(
            UdpSocket::bind(bind)
                .await
                .map_err(|source| AgentError::Socket { server, source })?,
        ),
        Some(dtls) => {
            // `ready` means "configured and trying": a handshake the server
            // refuses is then a protocol outcome the rig can judge.
            let _ = output.send("ready".to_string());
            match connect_dtls(bind, server, dtls, commands, output, log).await? {
                Some(s) => s,
                None => return Ok(SessionEnd::Quit),
            }
        }
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ u64::from(std::process::id());
    let epoch = Instant::now();
    let now = move || rig_proto::time::Instant::from_micros(epoch.elapsed().as_micros() as u64);
    let mut client = Client::new(cfg, server, seed);
    if secure {
        client.start_announced(now());
    } else {
        client.start(now());
    }
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
            return Ok(SessionEnd::Quit);
        }
        if client.take_bootstrap_request() {
            return Ok(SessionEnd::Bootstrap);
        }
        let deadline = client
            .poll_timeout()
            .map(|t| epoch + Duration::from_micros(t.as_micros()));
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, peer)) => client.handle_datagram(now(), peer, &buf[..n]),
                Err(e) => {
                    let _ = log.send(format!("receive failed: {e}"));
                    if !matches!(socket, Transport::Udp(_)) {
                        // The session is gone (closed or failed): stop rather than spin.
                        let _ = output.send(Output::Error("dtls".into(), format!("session ended: {e}")).to_string());
                        return Ok(SessionEnd::Quit);
                    }
                }
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
