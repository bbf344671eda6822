//! `rig serve`: the rig's services, standalone, for exploring a device.
//!
//! It starts the LwM2M server (CoAP, and DTLS with PSK, RPK and X.509 on one
//! port plus an RPK-only port with the bench's server raw public key), the
//! bootstrap server (which provisions a NoSec account for the LwM2M server to
//! every client that asks), the MQTT broker (embedded rumqttd, TLS with client
//! certificates) and the firmware file servers (CoAP Block2, HTTP), prints a
//! banner with every listener and the credentials it accepts, then one line
//! per event until Ctrl-C or SIGTERM, and exits 0 after a bounded shutdown.
//!
//! - [`plan`]: `--listen` and the port of each listener.
//! - [`creds`]: `[security]` → rig-dtls server configurations, banner lines.
//! - [`events`]: one event → one text or JSON line.

mod creds;
mod events;
mod plan;

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rig_bench::file::{NetworkSpec, SecuritySpec};
use rig_services::bootstrap::{BootstrapServer, Provisioning};
use rig_services::file_server::{
    CoapFileServer, FileStore, HttpFileServer, HttpServerConfig, images,
};
use rig_services::lwm2m::{Lwm2mServer, ServerConfig};
use rig_services::mqtt::{Broker, BrokerConfig, BrokerKind, BrokerTls};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::exit;
use events::{Emitter, Line};
pub(crate) use plan::parse_listen;

/// How long the whole shutdown may take after Ctrl-C.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(5);
/// How often the file servers' records are looked at.
const FILE_POLL: Duration = Duration::from_millis(250);

/// A service `--without` can leave out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Optional {
    /// The bootstrap server (coap and coaps).
    Bootstrap,
    /// The MQTT broker.
    Mqtt,
    /// The firmware file servers (CoAP and HTTP).
    Files,
}

/// Arguments of `rig serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The bench file: its network gives the address (loopback and sim:
    /// 127.0.0.1, nic: 0.0.0.0) and its [security] section the credentials.
    /// Without it: 127.0.0.1 and the test PKI in fixtures/pki/.
    #[arg(long, value_name = "FILE")]
    pub(crate) bench: Option<PathBuf>,
    /// Where to listen: IP, IP:PORT, [IPv6]:PORT or :PORT. The port is the
    /// LwM2M server's CoAP port (default 5683); port 0 gives every listener a
    /// free port (the banner prints them).
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub(crate) listen: Option<plan::Listen>,
    /// Print events as JSON, one object per line (the banner too).
    #[arg(long)]
    pub(crate) json: bool,
    /// Leave a service out (repeatable).
    #[arg(long, value_name = "SERVICE")]
    pub(crate) without: Vec<Optional>,
}

/// Runs `rig serve`; returns the exit code.
pub(crate) fn main(args: ServeArgs) -> u8 {
    let (bench_name, ip, security, source) = match &args.bench {
        Some(path) => {
            let bench = match super::load_bench(path) {
                Ok(b) => b,
                Err(code) => return code,
            };
            let ip: IpAddr = match bench.network {
                NetworkSpec::Nic { .. } => Ipv4Addr::UNSPECIFIED.into(),
                NetworkSpec::Loopback | NetworkSpec::Sim { .. } => Ipv4Addr::LOCALHOST.into(),
            };
            let source = format!(
                "[security] of {}; keys left out come from the test PKI",
                path.display()
            );
            (
                format!("{} ({})", bench.name, path.display()),
                ip,
                bench.security,
                source,
            )
        }
        None => (
            "none (no --bench)".to_string(),
            Ipv4Addr::LOCALHOST.into(),
            SecuritySpec::defaults(std::path::Path::new(".")),
            "the test PKI; give --bench FILE with a [security] section for your own".to_string(),
        ),
    };
    let ip = args.listen.map_or(ip, |l| l.ip);
    let port = args
        .listen
        .and_then(|l| l.port)
        .unwrap_or(plan::DEFAULT_PORT);
    let ports = match plan::Ports::new(ip, port) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: --listen: {e}");
            return exit::USAGE;
        }
    };
    let creds = match creds::load(&security, &source) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!(
                "error: rig serve needs the server's credentials: fix the file above, or the \
                 bench's [security] section (see README, \"Giving rig your device's credentials\")"
            );
            return exit::USAGE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::INFRA;
        }
    };
    let out = Emitter { json: args.json };
    let code = runtime.block_on(serve(
        Setup {
            bench_name,
            ports,
            security,
            creds,
            without: args.without,
        },
        out,
    ));
    // rumqttd's threads have no stop API; they end with the process.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

struct Setup {
    bench_name: String,
    ports: plan::Ports,
    security: SecuritySpec,
    creds: creds::Credentials,
    without: Vec<Optional>,
}

/// Everything running, for the shutdown.
#[derive(Default)]
struct Running {
    lwm2m: Vec<Lwm2mServer>,
    bootstrap: Vec<BootstrapServer>,
    broker: Option<Broker>,
    coap_files: Option<Arc<CoapFileServer>>,
    http_files: Option<Arc<HttpFileServer>>,
    tasks: Vec<JoinHandle<()>>,
}

/// One banner row: service, URI, what it accepts.
struct Row {
    service: &'static str,
    uri: String,
    what: String,
}

fn warn(out: Emitter, service: &str, what: String) {
    if out.json {
        out.emit(&Line::new(service, "not-started", what));
    } else {
        eprintln!("warning: {service}: not started: {what}");
    }
}

fn forward<E: Clone + Send + 'static>(
    mut rx: broadcast::Receiver<E>,
    out: Emitter,
    service: String,
    to_line: fn(&str, &E) -> Line,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // A client that goes on sending records after a failed handshake gets
        // the same refusal for each: print it once.
        let mut last_refusal: Option<Line> = None;
        loop {
            match rx.recv().await {
                Ok(e) => {
                    let line = to_line(&service, &e);
                    if line.event == "dtls-failed" {
                        if last_refusal.as_ref() == Some(&line) {
                            continue;
                        }
                        last_refusal = Some(line.clone());
                    } else {
                        last_refusal = None;
                    }
                    out.emit(&line);
                }
                Err(broadcast::error::RecvError::Lagged(n)) => out.emit(&Line::new(
                    &service,
                    "lost",
                    format!("{n} events were lost (printing could not keep up)"),
                )),
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}

async fn serve(setup: Setup, out: Emitter) -> u8 {
    let Setup {
        bench_name,
        ports,
        security,
        creds,
        without,
    } = setup;
    // Watch for Ctrl-C first: one pressed during start-up stops cleanly too.
    let signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot watch for Ctrl-C/SIGTERM: {e}");
            return exit::INFRA;
        }
    };
    let mut run = Running::default();
    let mut rows: Vec<Row> = Vec::new();
    // Subscribe before anything can happen, print only after the banner.
    let mut pending: Vec<(broadcast::Receiver<_>, String)> = Vec::new();
    let mut pending_bs: Vec<(broadcast::Receiver<_>, String)> = Vec::new();

    // LwM2M server, NoSec: the one service that must start.
    let coap = match Lwm2mServer::bind_with(ports.coap, ServerConfig::default()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!(
                "error: is another rig serve (or LwM2M server) running? pick other ports with \
                 --listen IP:PORT, or --listen IP:0 for free ones"
            );
            return exit::INFRA;
        }
    };
    pending.push((coap.events(), "lwm2m/coap".into()));
    rows.push(Row {
        service: "lwm2m",
        uri: coap.uri(),
        what: "LwM2M server, NoSec".into(),
    });
    let coap_uri = coap.uri();
    run.lwm2m.push(coap);

    match Lwm2mServer::bind_secure(ports.coaps, ServerConfig::default(), creds.main.clone()).await {
        Ok(s) => {
            pending.push((s.events(), "lwm2m/coaps".into()));
            rows.push(Row {
                service: "lwm2m",
                uri: s.uri(),
                what: "LwM2M server, DTLS 1.2: PSK, RPK (certificate's key), X.509".into(),
            });
            run.lwm2m.push(s);
        }
        Err(e) => {
            eprintln!("error: {e}");
            shutdown(run).await;
            return exit::INFRA;
        }
    }
    match &creds.rpk {
        Ok(cfg) => {
            match Lwm2mServer::bind_secure(ports.coaps_rpk, ServerConfig::default(), cfg.clone())
                .await
            {
                Ok(s) => {
                    pending.push((s.events(), "lwm2m/coaps-rpk".into()));
                    rows.push(Row {
                        service: "lwm2m",
                        uri: s.uri(),
                        what: format!(
                            "LwM2M server, DTLS 1.2 RPK with {}",
                            security.rpk_server_key.display()
                        ),
                    });
                    run.lwm2m.push(s);
                }
                Err(e) => warn(out, "lwm2m/coaps-rpk", e.to_string()),
            }
        }
        Err(e) => warn(out, "lwm2m/coaps-rpk", e.clone()),
    }

    if !without.contains(&Optional::Bootstrap) {
        let account = Provisioning::nosec(&coap_uri);
        match BootstrapServer::bind(ports.bootstrap).await {
            Ok(s) => {
                s.serve_scripted(account.clone());
                pending_bs.push((s.events(), "bootstrap/coap".into()));
                rows.push(Row {
                    service: "bootstrap",
                    uri: s.uri(),
                    what: format!("bootstrap server: provisions a NoSec account for {coap_uri}"),
                });
                run.bootstrap.push(s);
            }
            Err(e) => warn(out, "bootstrap/coap", e.to_string()),
        }
        match BootstrapServer::bind_secure(ports.bootstrap_secure, creds.main.clone()).await {
            Ok(s) => {
                s.serve_scripted(account);
                pending_bs.push((s.events(), "bootstrap/coaps".into()));
                rows.push(Row {
                    service: "bootstrap",
                    uri: s.uri(),
                    what: format!(
                        "bootstrap server, DTLS 1.2 (PSK, RPK, X.509): provisions a NoSec \
                         account for {coap_uri}"
                    ),
                });
                run.bootstrap.push(s);
            }
            Err(e) => warn(out, "bootstrap/coaps", e.to_string()),
        }
    }

    if !without.contains(&Optional::Files) {
        let store = FileStore::with_standard_images();
        let names: Vec<String> = images::standard_images()
            .iter()
            .map(|n| n.name.to_string())
            .collect();
        match CoapFileServer::bind(ports.files_coap, store.clone()).await {
            Ok(s) => {
                rows.push(Row {
                    service: "files",
                    uri: s.url("<name>"),
                    what: format!("CoAP Block2 file server: {}", names.join(", ")),
                });
                run.coap_files = Some(Arc::new(s));
            }
            Err(e) => warn(out, "files/coap", e.to_string()),
        }
        match HttpFileServer::bind(ports.files_http, store, HttpServerConfig::default()).await {
            Ok(s) => {
                rows.push(Row {
                    service: "files",
                    uri: s.url("<name>"),
                    what: "HTTP file server (Range, If-Match, ETag), same images".into(),
                });
                run.http_files = Some(Arc::new(s));
            }
            Err(e) => warn(out, "files/http", e.to_string()),
        }
    }

    if !without.contains(&Optional::Mqtt) {
        let mut cfg = BrokerConfig::new(
            BrokerKind::Embedded,
            BrokerTls {
                ca: security.ca.clone(),
                cert: security.server_cert.clone(),
                key: security.server_key.clone(),
            },
        );
        cfg.listen = ports.mqtt;
        match Broker::start(cfg).await {
            Ok(b) => {
                let mut addr = b.local_addr();
                if addr.ip().is_unspecified() {
                    addr.set_ip(Ipv4Addr::LOCALHOST.into());
                }
                rows.push(Row {
                    service: "mqtt",
                    uri: format!("mqtts://{addr}"),
                    what: format!(
                        "MQTT 3.1.1 broker (embedded rumqttd), TLS; client certificates signed \
                         by {}",
                        security.ca.display()
                    ),
                });
                run.broker = Some(b);
            }
            Err(e) => warn(out, "mqtt", e.to_string()),
        }
    }

    banner(out, &bench_name, &rows, &creds.lines, ports.coap.ip());

    for (rx, service) in pending {
        run.tasks.push(forward(rx, out, service, events::lwm2m));
    }
    for (rx, service) in pending_bs {
        run.tasks.push(forward(rx, out, service, events::bootstrap));
    }
    if run.coap_files.is_some() || run.http_files.is_some() {
        run.tasks.push(watch_files(
            run.coap_files.clone(),
            run.http_files.clone(),
            out,
        ));
    }

    let signal = signals.wait().await;
    out.emit(&Line::new(
        "rig",
        "stopping",
        format!("{signal}: stopping every service (at most {SHUTDOWN_BOUND:?})"),
    ));
    let started = std::time::Instant::now();
    let clean = tokio::time::timeout(SHUTDOWN_BOUND, shutdown(run))
        .await
        .is_ok();
    out.emit(&Line::new(
        "rig",
        "stopped",
        if clean {
            format!("in {} ms", started.elapsed().as_millis())
        } else {
            format!("gave up waiting after {SHUTDOWN_BOUND:?}")
        },
    ));
    exit::OK
}

/// The file servers record what they served but broadcast nothing: look at
/// their records a few times a second and print the new ones.
fn watch_files(
    coap: Option<Arc<CoapFileServer>>,
    http: Option<Arc<HttpFileServer>>,
    out: Emitter,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let (mut seen_coap, mut seen_http) = (0usize, 0usize);
        let mut tick = tokio::time::interval(FILE_POLL);
        loop {
            tick.tick().await;
            if let Some(s) = &coap {
                let all = s.records();
                // Records only grow; start over if someone cleared them.
                seen_coap = seen_coap.min(all.len());
                for r in &all[seen_coap..] {
                    if let Some(line) = events::coap_file("files/coap", r) {
                        out.emit(&line);
                    }
                }
                seen_coap = all.len();
            }
            if let Some(s) = &http {
                let all = s.records();
                seen_http = seen_http.min(all.len());
                for r in &all[seen_http..] {
                    out.emit(&events::http_file("files/http", r));
                }
                seen_http = all.len();
            }
        }
    })
}

/// SIGINT and SIGTERM, watched from start-up on.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for either; returns which.
    async fn wait(mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}

/// Stops everything: event printers first, then each service.
async fn shutdown(run: Running) {
    for t in &run.tasks {
        t.abort();
    }
    for t in run.tasks {
        let _ = t.await;
    }
    for s in &run.lwm2m {
        s.shutdown();
    }
    for s in &run.bootstrap {
        s.shutdown();
    }
    if let Some(s) = run.coap_files {
        match Arc::try_unwrap(s) {
            Ok(s) => s.shutdown().await,
            Err(s) => drop(s),
        }
    }
    if let Some(s) = run.http_files {
        match Arc::try_unwrap(s) {
            Ok(s) => s.shutdown().await,
            Err(s) => drop(s),
        }
    }
    if let Some(b) = run.broker {
        b.shutdown().await;
    }
}

fn banner(out: Emitter, bench: &str, rows: &[Row], creds: &[String], ip: IpAddr) {
    if out.json {
        for r in rows {
            let mut line = Line::new(r.service, "listening", r.what.clone());
            line.extra.insert("uri".into(), r.uri.clone().into());
            out.emit(&line);
        }
        out.emit(&Line::new(
            "rig",
            "ready",
            format!("bench {bench}; Ctrl-C stops"),
        ));
        return;
    }
    let mut s = format!(
        "rig serve {}: bench {bench}\nlistening:\n",
        env!("CARGO_PKG_VERSION")
    );
    let w = rows.iter().map(|r| r.uri.len()).max().unwrap_or(0);
    for r in rows {
        s.push_str(&format!("  {:<10} {:<w$}  {}\n", r.service, r.uri, r.what));
    }
    if ip.is_unspecified() {
        s.push_str(
            "  (listening on every interface: devices use this host's address instead of \
             127.0.0.1)\n",
        );
    }
    for c in creds {
        s.push_str(c);
        s.push('\n');
    }
    s.push_str("events (UTC; Ctrl-C stops):");
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{s}");
    let _ = o.flush();
}
