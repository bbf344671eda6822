//! Real UDP on loopback: the tokio sockets (rig-dtls client ↔ rig-dtls server), NoSec on the
//! secure port, and the server fed arbitrary datagrams.
#![allow(clippy::unwrap_used, clippy::panic)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rig_dtls::*;

async fn next_event(socket: &DtlsServerSocket) -> ServerEvent {
    tokio::time::timeout(Duration::from_secs(5), socket.next_event())
        .await
        .expect("no server event in 5 s")
        .expect("server task stopped")
}

#[tokio::test]
async fn psk_x509_and_rpk_echo_over_udp() {
    let store = store();
    let (id, key) = psk_of(&store, "rig-dev-psk");
    let server = DtlsServerSocket::bind(addr("127.0.0.1:0"), server_config())
        .await
        .unwrap();
    let server_pub = certs("server.pem")[0].public_key().unwrap();
    let configs = [
        ("rig-dev-psk", psk_client(&id, &key)),
        (
            "rig-dev-1",
            x509_client("client-dev-1.pem", "client-dev-1.key", "localhost"),
        ),
        (
            "rig-dev-3",
            ClientConfig::new(ClientCredentials::RawPublicKey {
                key: key_of("rpk-dev-3.key"),
                server_keys: vec![server_pub],
            }),
        ),
    ];
    for (endpoint, cfg) in configs {
        let ctx = Arc::new(ClientContext::new(cfg).unwrap());
        let client = DtlsClientSocket::connect(addr("127.0.0.1:0"), server.local_addr(), ctx)
            .await
            .unwrap();
        match next_event(&server).await {
            ServerEvent::Established {
                peer, endpoint: ep, ..
            } => {
                assert_eq!(peer, client.local_addr());
                assert_eq!(ep.as_deref(), Some(endpoint));
            }
            other => panic!("{other:?}"),
        }
        client.send(b"hello").await.unwrap();
        let mut buf = [0u8; 64];
        let (n, peer) = tokio::time::timeout(Duration::from_secs(5), server.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((&buf[..n], peer), (&b"hello"[..], client.local_addr()));
        server.send_to(b"world", peer).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], b"world");
        client.close().await;
        assert_eq!(next_event(&server).await, ServerEvent::Closed { peer });
    }
}

fn key_of(name: &str) -> PKey<Private> {
    load_private_key(&pki(name)).unwrap()
}

#[tokio::test]
async fn nosec_client_on_the_secure_port_is_logged_and_gets_nothing() {
    let server = DtlsServerSocket::bind(addr("127.0.0.1:0"), server_config())
        .await
        .unwrap();
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // CoAP CON POST /rd?ep=x
    let coap = [
        0x40, 0x02, 0x12, 0x34, 0xb2, b'r', b'd', 0x44, b'e', b'p', b'=', b'x',
    ];
    udp.send_to(&coap, server.local_addr()).await.unwrap();
    assert_eq!(
        next_event(&server).await,
        ServerEvent::Rejected {
            peer: udp.local_addr().unwrap(),
            reason: Reason::NotDtls
        }
    );
    let mut buf = [0u8; 64];
    let reply = tokio::time::timeout(Duration::from_millis(300), udp.recv(&mut buf)).await;
    assert!(reply.is_err(), "the server answered a NoSec datagram");
}

#[tokio::test]
async fn client_reports_the_server_rejection() {
    let server = DtlsServerSocket::bind(addr("127.0.0.1:0"), server_config())
        .await
        .unwrap();
    let ctx = Arc::new(ClientContext::new(psk_client(b"nobody", b"0123456789abcdef")).unwrap());
    let err = DtlsClientSocket::connect(addr("127.0.0.1:0"), server.local_addr(), ctx)
        .await
        .unwrap_err();
    assert_eq!(
        err.reason().map(Reason::kind),
        Some("unknown_psk_identity"),
        "{err}"
    );
    match next_event(&server).await {
        ServerEvent::Failed(f) => {
            assert_eq!(f.reason.kind(), "unknown_psk_identity");
            assert!(
                f.to_string().contains("alert 115 unknown_psk_identity"),
                "{f}"
            );
        }
        other => panic!("{other:?}"),
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Arbitrary datagrams (random, or a DTLS header followed by garbage) never panic the server
    /// and never leave more than one session per peer.
    #[test]
    fn arbitrary_datagrams_never_panic(
        datagrams in proptest::collection::vec(
            (proptest::bool::ANY, proptest::collection::vec(proptest::num::u8::ANY, 0..300)),
            1..8,
        )
    ) {
        let mut server = Server::new(server_config()).unwrap();
        let now = Instant::now();
        for (dtls_header, mut d) in datagrams {
            if dtls_header && d.len() >= 13 {
                d[0] = 22;
                d[1] = 0xfe;
                d[2] = 0xfd;
                d[3] = 0;
                d[4] = 0;
                let last = 13.min(d.len() - 1);
                d[last] = 1;
            }
            server.handle_datagram(addr(CLIENT_ADDR), &d, now);
            proptest::prop_assert!(server.len() <= 1);
            while server.poll_transmit().is_some() {}
            while server.poll_event().is_some() {}
        }
        server.handle_timeout(now + Duration::from_secs(3600));
        proptest::prop_assert!(server.is_empty());
    }
}
