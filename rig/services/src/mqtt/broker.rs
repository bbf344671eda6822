//! The MQTT broker the DUT connects to: rumqttd in-process, or Debian's mosquitto.
//!
//! Both listen for MQTT 3.1.1 over TLS and require a client certificate signed
//! by the configured CA.
//!
//! **Embedded (rumqttd 0.20, feature `verify-client-cert`).** rumqttd runs on
//! its own threads from a `rumqttd::Config` built here. It has no stop API and
//! cannot report the port it bound, so it listens on a private loopback port
//! and a small TCP relay owned by [`Broker`] listens on the address asked for
//! (port 0 allowed). The relay copies bytes both ways and does not touch TLS;
//! [`Broker::shutdown`] (or drop) closes the public listener and every relayed
//! connection, so to clients the broker is gone. Known limits of rumqttd:
//! it offers TLS 1.3 as well as 1.2 (its TLS config is file paths only; rig's
//! clients pin TLS 1.2), and it refuses any subscription to a filter starting
//! with `$` (it disconnects the client), so AWS topics use the root `aws`
//! instead of `$aws` on this broker: see [`Broker::aws_topic_root`].
//!
//! **Mosquitto.** `mosquitto -c <generated conf>` as a child process, with
//! `per_listener_settings true`, `require_certificate true`,
//! `use_identity_as_username true` and `tls_version tlsv1.2`, from a
//! temporary directory readable by user `mosquitto` (mosquitto started as root
//! drops to that user). Killed on drop. Mosquitto is the reference broker.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::MqttError;

/// Which broker to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// rumqttd in-process (the default; nothing to install).
    Embedded,
    /// Debian's mosquitto as a child process (the reference).
    Mosquitto,
}

impl BrokerKind {
    /// `embedded` or `mosquitto`.
    pub fn name(self) -> &'static str {
        match self {
            BrokerKind::Embedded => "embedded",
            BrokerKind::Mosquitto => "mosquitto",
        }
    }
}

/// The broker's TLS files (PEM): the CA that signs client certificates, and
/// the broker's own certificate chain and key.
#[derive(Debug, Clone)]
pub struct BrokerTls {
    /// CA certificate used to verify clients.
    pub ca: PathBuf,
    /// The broker's certificate chain, leaf first.
    pub cert: PathBuf,
    /// The broker's private key.
    pub key: PathBuf,
}

/// How to start a broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Which broker.
    pub kind: BrokerKind,
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// TLS files.
    pub tls: BrokerTls,
    /// The mosquitto binary (default `mosquitto`, found on PATH or in /usr/sbin).
    pub mosquitto_bin: PathBuf,
    /// How long to wait until the broker accepts connections.
    pub start_timeout: Duration,
}

impl BrokerConfig {
    /// A config on 127.0.0.1 with a free port and a 10 s start timeout.
    pub fn new(kind: BrokerKind, tls: BrokerTls) -> Self {
        BrokerConfig {
            kind,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls,
            mosquitto_bin: PathBuf::from("mosquitto"),
            start_timeout: Duration::from_secs(10),
        }
    }
}

/// A running broker. Dropping it stops it.
#[derive(Debug)]
pub struct Broker {
    kind: BrokerKind,
    addr: SocketAddr,
    /// Where the rig's own clients (the platform) connect: `addr`, or the
    /// broker's private loopback address when the public listener lives in
    /// another network namespace ([`Broker::start_on`]).
    local: SocketAddr,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Embedded {
        stop: watch::Sender<bool>,
        relay: JoinHandle<()>,
    },
    Mosquitto {
        child: Child,
        log: PathBuf,
        _dir: tempfile::TempDir,
        /// The relay from a listener given to [`Broker::start_on`].
        relay: Option<(watch::Sender<bool>, JoinHandle<()>)>,
    },
}

impl Broker {
    /// Starts a broker and waits (bounded by `start_timeout`) until it accepts connections.
    pub async fn start(config: BrokerConfig) -> Result<Broker, MqttError> {
        for path in [&config.tls.ca, &config.tls.cert, &config.tls.key] {
            std::fs::metadata(path).map_err(|e| MqttError::file(path, e))?;
        }
        match config.kind {
            BrokerKind::Embedded => start_embedded(config, None).await,
            BrokerKind::Mosquitto => start_mosquitto(config).await,
        }
    }

    /// Starts a broker whose clients connect to `listener`, a socket already
    /// bound (e.g. inside the services network namespace of the simulated
    /// network, on port 8883). A relay in this process accepts there and
    /// copies bytes to the broker on a private loopback port (mosquitto too),
    /// so TLS is end to end between the client and the broker.
    /// `config.listen` is ignored. The rig's own clients (the platform)
    /// connect to [`Broker::local_connect_addr`].
    pub async fn start_on(
        config: BrokerConfig,
        listener: StdListener,
    ) -> Result<Broker, MqttError> {
        for path in [&config.tls.ca, &config.tls.cert, &config.tls.key] {
            std::fs::metadata(path).map_err(|e| MqttError::file(path, e))?;
        }
        let public = listener.local_addr().map_err(|source| MqttError::Bind {
            addr: config.listen,
            source,
        })?;
        let bind_err = |source| MqttError::Bind {
            addr: public,
            source,
        };
        listener.set_nonblocking(true).map_err(bind_err)?;
        let listener = TcpListener::from_std(listener).map_err(bind_err)?;
        match config.kind {
            BrokerKind::Embedded => start_embedded(config, Some(listener)).await,
            BrokerKind::Mosquitto => {
                let mut private = config.clone();
                private.listen = SocketAddr::from(([127, 0, 0, 1], 0));
                let mut broker = start_mosquitto(private).await?;
                let upstream = broker.addr;
                let (stop, stop_rx) = watch::channel(false);
                let handle = tokio::spawn(relay(listener, upstream, stop_rx));
                if let Inner::Mosquitto { relay, .. } = &mut broker.inner {
                    *relay = Some((stop, handle));
                }
                broker.local = upstream;
                broker.addr = public;
                Ok(broker)
            }
        }
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the rig's own clients (the platform emulator) connect: the
    /// public address, or for [`Broker::start_on`] the broker's private
    /// loopback address (the public one may be in another namespace).
    pub fn local_connect_addr(&self) -> SocketAddr {
        self.local
    }

    /// Which broker this is.
    pub fn kind(&self) -> BrokerKind {
        self.kind
    }

    /// The first topic level of AWS-IoT topics on this broker: `$aws` on
    /// mosquitto, `aws` on rumqttd (which refuses `$` filters).
    pub fn aws_topic_root(&self) -> &'static str {
        match self.kind {
            BrokerKind::Embedded => "aws",
            BrokerKind::Mosquitto => "$aws",
        }
    }

    /// The mosquitto log so far (empty for the embedded broker).
    pub fn log(&self) -> String {
        match &self.inner {
            Inner::Mosquitto { log, .. } => std::fs::read_to_string(log).unwrap_or_default(),
            Inner::Embedded { .. } => String::new(),
        }
    }

    /// Stops the broker: closes the listener and every client connection.
    pub async fn shutdown(mut self) {
        self.stop_now();
        if let Inner::Embedded { relay, .. } = &mut self.inner {
            let _ = tokio::time::timeout(Duration::from_secs(2), relay).await;
        }
    }

    fn stop_now(&mut self) {
        match &mut self.inner {
            Inner::Embedded { stop, relay } => {
                let _ = stop.send(true);
                relay.abort();
            }
            Inner::Mosquitto { child, relay, .. } => {
                if let Some((stop, handle)) = relay.take() {
                    let _ = stop.send(true);
                    handle.abort();
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// A free TCP port on `ip`, found by binding port 0 and letting it go.
fn free_port(ip: std::net::IpAddr) -> Result<u16, MqttError> {
    let addr = SocketAddr::new(ip, 0);
    let l = StdListener::bind(addr).map_err(|source| MqttError::Bind { addr, source })?;
    let port = l
        .local_addr()
        .map_err(|source| MqttError::Bind { addr, source })?
        .port();
    Ok(port)
}

/// Waits until `addr` accepts a TCP connection, or `alive` says the server died.
async fn wait_accepting(
    addr: SocketAddr,
    timeout: Duration,
    mut alive: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        alive()?;
        if let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await
        {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "not accepting connections on {addr} after {:.1} s",
                timeout.as_secs_f64()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn path_str(p: &std::path::Path) -> Result<String, MqttError> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| MqttError::BrokerStart {
            broker: "embedded",
            reason: format!("path {} is not UTF-8", p.display()),
        })
}

async fn start_embedded(
    config: BrokerConfig,
    given: Option<TcpListener>,
) -> Result<Broker, MqttError> {
    let err = |reason: String| MqttError::BrokerStart {
        broker: "embedded",
        reason,
    };
    let internal_port = free_port([127, 0, 0, 1].into())?;
    let internal = SocketAddr::from(([127, 0, 0, 1], internal_port));
    let mut v4 = toml::Table::new();
    let mut tls = toml::Table::new();
    tls.insert("capath".into(), path_str(&config.tls.ca)?.into());
    tls.insert("certpath".into(), path_str(&config.tls.cert)?.into());
    tls.insert("keypath".into(), path_str(&config.tls.key)?.into());
    let mut conns = toml::Table::new();
    conns.insert("connection_timeout_ms".into(), 60_000.into());
    conns.insert("max_payload_size".into(), (1i64 << 20).into());
    conns.insert("max_inflight_count".into(), 100.into());
    conns.insert("dynamic_filters".into(), true.into());
    let mut server = toml::Table::new();
    server.insert("name".into(), "rig-v4-tls".into());
    server.insert("listen".into(), internal.to_string().into());
    server.insert("next_connection_delay_ms".into(), 1.into());
    server.insert("tls".into(), tls.into());
    server.insert("connections".into(), conns.into());
    v4.insert("1".into(), server.into());
    let mut router = toml::Table::new();
    router.insert("id".into(), 0.into());
    router.insert("max_connections".into(), 1000.into());
    router.insert("max_outgoing_packet_count".into(), 200.into());
    router.insert("max_segment_size".into(), (100i64 << 20).into());
    router.insert("max_segment_count".into(), 10.into());
    let mut root = toml::Table::new();
    root.insert("id".into(), 0.into());
    root.insert("router".into(), router.into());
    root.insert("v4".into(), v4.into());
    let cfg: rumqttd::Config = root
        .try_into()
        .map_err(|e| err(format!("bad rumqttd configuration: {e}")))?;

    // Bind the public side first so a bad address fails before any thread starts.
    let relayed_elsewhere = given.is_some();
    let listener = match given {
        Some(l) => l,
        None => TcpListener::bind(config.listen)
            .await
            .map_err(|source| MqttError::Bind {
                addr: config.listen,
                source,
            })?,
    };
    let addr = listener.local_addr().map_err(|source| MqttError::Bind {
        addr: config.listen,
        source,
    })?;

    let (done_tx, done_rx) = std::sync::mpsc::channel::<String>();
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(cfg);
            let outcome = match broker.start() {
                Ok(()) => "rumqttd stopped".to_string(),
                Err(e) => format!("rumqttd failed: {e}"),
            };
            let _ = done_tx.send(outcome);
        })
        .map_err(|e| err(format!("cannot spawn the broker thread: {e}")))?;
    // A Mutex makes the receiver Sync, so this future stays Send.
    let done_rx = std::sync::Mutex::new(done_rx);
    wait_accepting(internal, config.start_timeout, || {
        match done_rx.lock().map(|rx| rx.try_recv()) {
            Ok(Ok(reason)) => Err(reason),
            _ => Ok(()),
        }
    })
    .await
    .map_err(err)?;

    let (stop, stop_rx) = watch::channel(false);
    let relay = tokio::spawn(relay(listener, internal, stop_rx));
    Ok(Broker {
        kind: BrokerKind::Embedded,
        addr,
        local: if relayed_elsewhere { internal } else { addr },
        inner: Inner::Embedded { stop, relay },
    })
}

/// Accepts on `listener` and copies each connection to `upstream`, until `stop`.
async fn relay(listener: TcpListener, upstream: SocketAddr, mut stop: watch::Receiver<bool>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((mut down, _)) = accepted else { continue };
                let mut stop = stop.clone();
                conns.spawn(async move {
                    let Ok(mut up) = TcpStream::connect(upstream).await else { return };
                    let _ = down.set_nodelay(true);
                    let _ = up.set_nodelay(true);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                        _ = stop.changed() => {}
                    }
                });
            }
        }
        while conns.try_join_next().is_some() {}
    }
    conns.abort_all();
}

fn find_mosquitto(bin: &std::path::Path) -> PathBuf {
    if bin.components().count() > 1 {
        return bin.to_path_buf();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin")]) {
        let candidate = dir.join(bin);
        if candidate.is_file() {
            return candidate;
        }
    }
    bin.to_path_buf()
}

async fn start_mosquitto(config: BrokerConfig) -> Result<Broker, MqttError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |reason: String| MqttError::BrokerStart {
        broker: "mosquitto",
        reason,
    };
    let dir = tempfile::Builder::new()
        .prefix("rig-mosquitto-")
        .tempdir()
        .map_err(|e| MqttError::file(std::env::temp_dir(), e))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| MqttError::file(dir.path(), e))?;
    let mut files = Vec::new();
    for (src, name) in [
        (&config.tls.ca, "ca.pem"),
        (&config.tls.cert, "server.pem"),
        (&config.tls.key, "server.key"),
    ] {
        let dst = dir.path().join(name);
        std::fs::copy(src, &dst).map_err(|e| MqttError::file(src, e))?;
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| MqttError::file(&dst, e))?;
        files.push(dst);
    }
    let bin = find_mosquitto(&config.mosquitto_bin);
    let log = dir.path().join("mosquitto.log");

    // The port must be concrete in mosquitto's config. A port found free can be
    // taken by someone else before mosquitto binds it: retry a few times.
    let mut last = String::new();
    for _attempt in 0..3 {
        let port = match config.listen.port() {
            0 => free_port(config.listen.ip())?,
            p => p,
        };
        let addr = SocketAddr::new(config.listen.ip(), port);
        let conf = format!(
            "# generated by rig\n\
             per_listener_settings true\n\
             persistence false\n\
             log_dest stderr\n\
             log_type error\nlog_type warning\nlog_type notice\nlog_type information\n\
             connection_messages true\n\
             listener {port} {ip}\n\
             protocol mqtt\n\
             cafile {ca}\n\
             certfile {cert}\n\
             keyfile {key}\n\
             tls_version tlsv1.2\n\
             require_certificate true\n\
             use_identity_as_username true\n\
             allow_anonymous false\n",
            ip = addr.ip(),
            ca = files[0].display(),
            cert = files[1].display(),
            key = files[2].display(),
        );
        let conf_path = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_path, conf).map_err(|e| MqttError::file(&conf_path, e))?;
        let log_file = std::fs::File::create(&log).map_err(|e| MqttError::file(&log, e))?;
        let mut child = Command::new(&bin)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| {
                err(format!(
                    "cannot run `{}`: {e} (install Debian's `mosquitto` package)",
                    bin.display()
                ))
            })?;
        let ready = wait_accepting(addr, config.start_timeout, || match child.try_wait() {
            Ok(Some(status)) => Err(format!("mosquitto exited ({status})")),
            _ => Ok(()),
        })
        .await;
        match ready {
            Ok(()) => {
                return Ok(Broker {
                    kind: BrokerKind::Mosquitto,
                    addr,
                    local: addr,
                    inner: Inner::Mosquitto {
                        child,
                        log,
                        _dir: dir,
                        relay: None,
                    },
                });
            }
            Err(reason) => {
                let _ = child.kill();
                let _ = child.wait();
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                last = format!("{reason}; its log:\n{}", text.trim_end());
                let port_in_use = text.contains("Address already in use");
                if !(port_in_use && config.listen.port() == 0) {
                    break;
                }
            }
        }
    }
    Err(err(last))
}
