//! Handshake cost per security mode.
//!
//! 1. criterion, in memory (no sockets): one full handshake (client + server, cookie exchange
//!    included) per iteration, for PSK, RPK and X.509. Handshakes/s = 1 / time.
//! 2. Printed figures over UDP loopback, for each mode: rig-dtls clients against the rig-dtls
//!    server and against libcoap's `coap-server-gnutls` (Debian libcoap3-bin), same machine, same
//!    run: the time of one handshake (median and p90 of sequential handshakes), handshakes per
//!    second (concurrent clients, completed handshakes / wall time), and both ratios. Skipped
//!    with a message when coap-server-gnutls is not installed.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use rig_dtls::*;

fn pki(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/pki")
        .join(name)
}

fn store() -> CredentialStore {
    let mut store: CredentialStore =
        toml::from_str(&std::fs::read_to_string(pki("store.toml")).unwrap()).unwrap();
    store.psk.push(PskEntry {
        endpoint: "bench".into(),
        identity: Some("bench".into()),
        identity_hex: None,
        key_hex: to_hex(b"bench-secret"),
    });
    store
}

fn server_config(rpk_only: bool) -> ServerConfig {
    let mut c = ServerConfig::new(store());
    c.identity = Some(if rpk_only {
        ServerIdentity {
            key: load_private_key(&pki("rpk-server.key")).unwrap(),
            chain: Vec::new(),
        }
    } else {
        ServerIdentity {
            key: load_private_key(&pki("server.key")).unwrap(),
            chain: load_certificates(&pki("server.pem")).unwrap(),
        }
    });
    c.client_ca = load_certificates(&pki("ca.pem")).unwrap();
    c
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Psk,
    Rpk,
    X509,
}

fn client_config(mode: Mode) -> ClientConfig {
    let mut c = ClientConfig::new(match mode {
        Mode::Psk => ClientCredentials::Psk {
            identity: b"bench".to_vec(),
            key: b"bench-secret".to_vec(),
        },
        Mode::Rpk => ClientCredentials::RawPublicKey {
            key: load_private_key(&pki("rpk-dev-3.key")).unwrap(),
            server_keys: vec![load_public_key(&pki("rpk-server.pub.der")).unwrap()],
        },
        Mode::X509 => ClientCredentials::Certificate {
            chain: load_certificates(&pki("client-dev-1.pem")).unwrap(),
            key: load_private_key(&pki("client-dev-1.key")).unwrap(),
            trust: load_certificates(&pki("ca.pem")).unwrap(),
            server_name: Some("localhost".into()),
        },
    });
    c.resumption = false;
    c
}

fn in_memory_handshake(ctx: &ClientContext, server: &mut Server, port: u16) {
    let now = Instant::now();
    let peer = SocketAddr::from(([127, 0, 0, 1], port));
    let mut client = Session::client(ctx, "127.0.0.1:5684".parse().unwrap(), now).unwrap();
    for _ in 0..32 {
        let mut moved = false;
        while let Some(d) = client.poll_transmit() {
            server.handle_datagram(peer, &d, now);
            moved = true;
        }
        while let Some((_, d)) = server.poll_transmit() {
            let _ = client.handle_datagram(&d, now);
            moved = true;
        }
        if !moved {
            break;
        }
    }
    assert!(client.is_established(), "{:?}", client.failure());
    server.close(peer);
    while server.poll_transmit().is_some() {}
    while server.poll_event().is_some() {}
}

fn bench_in_memory(c: &mut Criterion) {
    let mut group = c.benchmark_group("handshake_in_memory");
    for mode in [Mode::Psk, Mode::Rpk, Mode::X509] {
        let ctx = ClientContext::new(client_config(mode)).unwrap();
        let mut server = Server::new(server_config(matches!(mode, Mode::Rpk))).unwrap();
        let mut port = 10_000u16;
        group.bench_function(format!("{mode:?}"), |b| {
            b.iter(|| {
                port = port.wrapping_add(1).max(10_000);
                in_memory_handshake(&ctx, &mut server, port);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_in_memory);

/// Sequential handshakes per server and mode: their median is "the time of one handshake".
const SEQUENTIAL: usize = 40;
/// Concurrent clients, and handshakes each, for "handshakes per second" (server throughput).
const CLIENTS: usize = 4;
const PER_CLIENT: usize = 20;

/// One server's figures in one mode.
struct Figures {
    /// Median of the sequential handshakes.
    median: Duration,
    /// 90th percentile of the sequential handshakes.
    p90: Duration,
    /// Completed handshakes per second with `CLIENTS` clients at once.
    per_second: f64,
}

/// One full handshake (cookie exchange, no resumption) and a close.
async fn one_handshake(server: SocketAddr, ctx: &Arc<ClientContext>) -> Result<Duration, String> {
    let start = Instant::now();
    let c = DtlsClientSocket::connect("127.0.0.1:0".parse().unwrap(), server, ctx.clone())
        .await
        .map_err(|e| e.to_string())?;
    let took = start.elapsed();
    c.close().await;
    Ok(took)
}

/// The time of one handshake (sequential), then handshakes per second
/// (`CLIENTS` concurrent clients). An error names the handshake that failed.
async fn udp_figures(server: SocketAddr, mode: Mode) -> Result<Figures, String> {
    let ctx = Arc::new(ClientContext::new(client_config(mode)).map_err(|e| e.to_string())?);
    let mut times = Vec::with_capacity(SEQUENTIAL);
    for i in 0..SEQUENTIAL {
        times.push(
            one_handshake(server, &ctx)
                .await
                .map_err(|e| format!("sequential handshake {} of {SEQUENTIAL}: {e}", i + 1))?,
        );
    }
    times.sort();
    let start = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let ctx = ctx.clone();
        clients.spawn(async move {
            for i in 0..PER_CLIENT {
                one_handshake(server, &ctx).await.map_err(|e| {
                    format!(
                        "client {c}, concurrent handshake {} of {PER_CLIENT}: {e}",
                        i + 1
                    )
                })?;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(r) = clients.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    let wall = start.elapsed();
    Ok(Figures {
        median: times[SEQUENTIAL / 2],
        p90: times[SEQUENTIAL * 9 / 10],
        per_second: (CLIENTS * PER_CLIENT) as f64 / wall.as_secs_f64(),
    })
}

/// The rig-dtls server on its own OS thread with its own single-threaded runtime, as
/// `coap-server-gnutls` runs in its own single-threaded process: neither server shares the
/// clients' threads, so neither gets more (or less) of the machine than the other.
struct RigServer {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl RigServer {
    fn start(config: ServerConfig) -> RigServer {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = DtlsServerSocket::bind("127.0.0.1:0".parse().unwrap(), config)
                    .await
                    .unwrap();
                addr_tx.send(server.local_addr()).unwrap();
                let _ = stop_rx.await;
                drop(server);
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        RigServer { addr, stop, thread }
    }

    fn stop(self) {
        let _ = self.stop.send(());
        self.thread.join().unwrap();
    }
}

fn free_port_pair() -> u16 {
    for _ in 0..50 {
        let p = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if p < 65000
            && std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return p;
        }
    }
    panic!("no free UDP port pair");
}

async fn compare_with_gnutls() {
    let available = std::process::Command::new("sh")
        .args(["-c", "command -v coap-server-gnutls"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        println!("UDP comparison skipped: coap-server-gnutls not installed (Debian libcoap3-bin)");
        return;
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nUDP loopback, rig-dtls client, full handshakes (cookie exchange, no resumption); \
         load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "one handshake = median (p90) of {SEQUENTIAL} sequential; \
         hs/s = {CLIENTS} concurrent clients x {PER_CLIENT} handshakes / wall time"
    );
    println!(
        "{:<5} {:<18} {:>17} {:>8}",
        "mode", "server", "one handshake", "hs/s"
    );
    for mode in [Mode::Psk, Mode::Rpk, Mode::X509] {
        let rig = RigServer::start(server_config(matches!(mode, Mode::Rpk)));
        let rig_figures = udp_figures(rig.addr, mode).await;
        rig.stop();
        let port = free_port_pair();
        let p = |n: &str| pki(n).to_string_lossy().into_owned();
        let mut args = vec![
            "-A".to_owned(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ];
        args.extend(match mode {
            Mode::Psk => vec!["-k".to_owned(), "bench-secret".into()],
            Mode::Rpk => vec!["-M".to_owned(), p("rpk-server.key")],
            Mode::X509 => vec![
                "-c".to_owned(),
                p("server.pem"),
                "-j".into(),
                p("server.key"),
                "-C".into(),
                p("ca.pem"),
            ],
        });
        let mut child = tokio::process::Command::new("coap-server-gnutls")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let gnutls = udp_figures(SocketAddr::from(([127, 0, 0, 1], port + 1)), mode).await;
        let _ = child.kill().await;
        let row = |server: &str, f: &Result<Figures, String>| match f {
            Ok(f) => println!(
                "{:<5} {:<18} {:>7.2} ({:>5.2}) ms {:>8.0}",
                format!("{mode:?}"),
                server,
                f.median.as_secs_f64() * 1e3,
                f.p90.as_secs_f64() * 1e3,
                f.per_second,
            ),
            Err(e) => println!("{:<5} {server:<18} failed: {e}", format!("{mode:?}")),
        };
        row("rig-dtls", &rig_figures);
        row("coap-server-gnutls", &gnutls);
        if let (Ok(r), Ok(g)) = (&rig_figures, &gnutls) {
            println!(
                "{:<5} {:<18} {:>16.2}x {:>7.2}x",
                format!("{mode:?}"),
                "ratio",
                g.median.as_secs_f64() / r.median.as_secs_f64(),
                r.per_second / g.per_second,
            );
        }
    }
    println!(
        "ratio: one handshake = gnutls time / rig time; hs/s = rig rate / gnutls rate \
         (above 1: rig is faster)"
    );
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Two workers for the clients; each server has its own thread (see RigServer).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(compare_with_gnutls());
}
