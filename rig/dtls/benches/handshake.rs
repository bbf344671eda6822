//! Handshake cost per security mode.
//!
//! 1. criterion, in memory (no sockets): one full handshake (client + server, cookie exchange
//!    included) per iteration, for PSK, RPK and X.509. Handshakes/s = 1 / time.
//! 2. Printed figures over UDP loopback: rig-dtls client against the rig-dtls server and against
//!    libcoap's `coap-server-gnutls` (Debian libcoap3-bin), same machine, same run, with the
//!    ratio. Skipped with a message when coap-server-gnutls is not installed.
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

const UDP_HANDSHAKES: u32 = 40;

async fn udp_handshakes(server: SocketAddr, mode: Mode) -> Result<Duration, DtlsError> {
    let ctx = Arc::new(ClientContext::new(client_config(mode))?);
    let start = Instant::now();
    for _ in 0..UDP_HANDSHAKES {
        let c =
            DtlsClientSocket::connect("127.0.0.1:0".parse().unwrap(), server, ctx.clone()).await?;
        c.close().await;
    }
    Ok(start.elapsed() / UDP_HANDSHAKES)
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
    println!(
        "\nUDP loopback, rig-dtls client, {UDP_HANDSHAKES} sequential full handshakes per row:"
    );
    println!(
        "{:<6} {:>14} {:>10} {:>18} {:>10} {:>8}",
        "mode", "rig server", "hs/s", "coap-server-gnutls", "hs/s", "ratio"
    );
    for mode in [Mode::Psk, Mode::Rpk, Mode::X509] {
        let rig = DtlsServerSocket::bind(
            "127.0.0.1:0".parse().unwrap(),
            server_config(matches!(mode, Mode::Rpk)),
        )
        .await
        .unwrap();
        let rig_time = udp_handshakes(rig.local_addr(), mode).await.unwrap();
        drop(rig);
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
        let gnutls = udp_handshakes(SocketAddr::from(([127, 0, 0, 1], port + 1)), mode).await;
        let _ = child.kill().await;
        match gnutls {
            Ok(g) => println!(
                "{:<6} {:>11.2} ms {:>10.0} {:>15.2} ms {:>10.0} {:>7.2}x",
                format!("{mode:?}"),
                rig_time.as_secs_f64() * 1e3,
                1.0 / rig_time.as_secs_f64(),
                g.as_secs_f64() * 1e3,
                1.0 / g.as_secs_f64(),
                g.as_secs_f64() / rig_time.as_secs_f64(),
            ),
            Err(e) => println!("{mode:?}: coap-server-gnutls handshake failed: {e}"),
        }
    }
    println!("ratio = coap-server-gnutls time / rig time (above 1: rig is faster)");
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(compare_with_gnutls());
}
