//! In-memory handshakes between rig-dtls clients and the rig-dtls server, in every mode, and
//! every rejection with its specific reason.
#![allow(clippy::unwrap_used, clippy::panic)] // test code: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::*;
use rig_dtls::*;

fn echo(client: &mut Session, server: &mut Server) {
    let now = Instant::now();
    client.send(b"ping").unwrap();
    pump(
        client,
        server,
        addr(CLIENT_ADDR),
        now,
        &mut |_, _, _| true,
        &mut (0, 0),
    );
    assert_eq!(
        server.poll_plaintext(),
        Some((addr(CLIENT_ADDR), b"ping".to_vec()))
    );
    server.send(addr(CLIENT_ADDR), b"pong").unwrap();
    pump(
        client,
        server,
        addr(CLIENT_ADDR),
        now,
        &mut |_, _, _| true,
        &mut (0, 0),
    );
    assert_eq!(client.poll_plaintext(), Some(b"pong".to_vec()));
}

fn established(events: &[ServerEvent]) -> (Option<String>, Option<CipherSuite>, bool) {
    events
        .iter()
        .find_map(|e| match e {
            ServerEvent::Established {
                endpoint,
                cipher_suite,
                resumed,
                ..
            } => Some((endpoint.clone(), *cipher_suite, *resumed)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("not established: {events:?}"))
}

#[test]
fn psk_handshake_cookie_and_echo() {
    let store = store();
    let (id, key) = psk_of(&store, "rig-dev-psk");
    let mut server = Server::new(server_config()).unwrap();
    let (mut client, events) = handshake(&psk_client(&id, &key), &mut server);
    assert!(client.is_established(), "{:?}", client.failure());
    assert!(
        client.cookie_exchanged()
            || server
                .session(&addr(CLIENT_ADDR))
                .unwrap()
                .cookie_exchanged()
    );
    assert!(
        server
            .session(&addr(CLIENT_ADDR))
            .unwrap()
            .cookie_exchanged(),
        "the server must answer the first ClientHello with a HelloVerifyRequest"
    );
    let (endpoint, suite, _) = established(&events);
    assert_eq!(endpoint.as_deref(), Some("rig-dev-psk"));
    assert_eq!(suite, Some(CipherSuite::PSK_AES_128_CCM_8));
    assert_eq!(client.cipher_suite(), Some(CipherSuite::PSK_AES_128_CCM_8));
    echo(&mut client, &mut server);
}

#[test]
fn psk_with_128_byte_identity_and_64_byte_key() {
    let store = store();
    let (id, key) = psk_of(&store, "rig-dev-long");
    assert_eq!((id.len(), key.len()), (128, 64));
    let mut server = Server::new(server_config()).unwrap();
    let (mut client, events) = handshake(&psk_client(&id, &key), &mut server);
    assert_eq!(established(&events).0.as_deref(), Some("rig-dev-long"));
    echo(&mut client, &mut server);
}

#[test]
fn x509_mutual_handshake_maps_subject_to_endpoint() {
    let mut server = Server::new(server_config()).unwrap();
    let (mut client, events) = handshake(
        &x509_client("client-dev-1.pem", "client-dev-1.key", "localhost"),
        &mut server,
    );
    assert!(client.is_established(), "{:?}", client.failure());
    let (endpoint, suite, _) = established(&events);
    assert_eq!(endpoint.as_deref(), Some("rig-dev-1"));
    assert_eq!(suite, Some(CipherSuite::ECDHE_ECDSA_AES_128_CCM_8));
    match client.peer_identity() {
        Some(PeerIdentity::Certificate { subject_cn, .. }) => assert_eq!(subject_cn, "localhost"),
        other => panic!("{other:?}"),
    }
    echo(&mut client, &mut server);
}

#[test]
fn x509_server_name_can_be_an_ip_address() {
    let mut server = Server::new(server_config()).unwrap();
    let (client, _) = handshake(
        &x509_client("client-dev-2.pem", "client-dev-2.key", "127.0.0.1"),
        &mut server,
    );
    assert!(client.is_established(), "{:?}", client.failure());
}

#[test]
fn rpk_handshake_both_directions() {
    let mut server = Server::new(rpk_server_config()).unwrap();
    let (mut client, events) = handshake(
        &rpk_client("rpk-dev-3.key", "rpk-server.pub.der"),
        &mut server,
    );
    assert!(client.is_established(), "{:?}", client.failure());
    let (endpoint, suite, _) = established(&events);
    assert_eq!(endpoint.as_deref(), Some("rig-dev-3"));
    assert_eq!(suite, Some(CipherSuite::ECDHE_ECDSA_AES_128_CCM_8));
    let server_key = std::fs::read(pki("rpk-server.pub.der")).unwrap();
    assert_eq!(
        client.peer_identity(),
        Some(&PeerIdentity::RawPublicKey(server_key))
    );
    echo(&mut client, &mut server);
}

#[test]
fn rpk_against_the_certificate_server_uses_its_certificate_key() {
    let mut server = Server::new(server_config()).unwrap();
    let server_pub = certs("server.pem")[0].public_key().unwrap();
    let cfg = ClientConfig::new(ClientCredentials::RawPublicKey {
        key: key("rpk-dev-3.key"),
        server_keys: vec![server_pub],
    });
    let (client, events) = handshake(&cfg, &mut server);
    assert!(client.is_established(), "{:?}", client.failure());
    assert_eq!(established(&events).0.as_deref(), Some("rig-dev-3"));
}

fn client_failure(client: &Session) -> HandshakeFailure {
    assert_eq!(client.state(), SessionState::Failed);
    client.failure().cloned().unwrap()
}

#[test]
fn unknown_psk_identity_is_rejected_as_such() {
    let mut server = Server::new(server_config()).unwrap();
    let (client, events) = handshake(&psk_client(b"nobody", b"0123456789abcdef"), &mut server);
    let f = server_failure(&events);
    assert_eq!(
        f.reason,
        Reason::UnknownPskIdentity {
            identity: "nobody".into()
        }
    );
    assert_eq!(f.stage, HandshakeStage::KeyExchange);
    assert_eq!(f.alert, Some((AlertDirection::Sent, Alert::fatal(115))));
    let msg = f.to_string();
    assert!(
        msg.contains(CLIENT_ADDR) && msg.contains("alert 115 unknown_psk_identity"),
        "{msg}"
    );
    let c = client_failure(&client);
    assert_eq!(c.reason.kind(), "unknown_psk_identity");
    assert_eq!(c.alert, Some((AlertDirection::Received, Alert::fatal(115))));
}

#[test]
fn wrong_psk_key_is_rejected_as_such() {
    let store = store();
    let (id, mut key) = psk_of(&store, "rig-dev-psk");
    key[0] ^= 1;
    let mut server = Server::new(server_config()).unwrap();
    let (client, events) = handshake(&psk_client(&id, &key), &mut server);
    let f = server_failure(&events);
    assert_eq!(f.reason, Reason::WrongPsk, "{f}");
    assert_eq!(f.stage, HandshakeStage::Finished);
    let c = client_failure(&client);
    assert_eq!(c.reason, Reason::WrongPsk, "{c}");
    assert_eq!(c.alert, Some((AlertDirection::Received, Alert::fatal(51))));
}

#[test]
fn client_certificate_from_another_ca_is_rejected() {
    let mut server = Server::new(server_config()).unwrap();
    let (client, events) = handshake(
        &x509_client("client-other-ca.pem", "client-other-ca.key", "localhost"),
        &mut server,
    );
    let f = server_failure(&events);
    assert_eq!(f.reason.kind(), "unknown_ca", "{f}");
    assert_eq!(f.stage, HandshakeStage::VerifyingClientCertificate);
    assert_eq!(client.state(), SessionState::Failed);
}

#[test]
fn expired_client_certificate_is_rejected() {
    let mut server = Server::new(server_config()).unwrap();
    let (client, events) = handshake(
        &x509_client("client-expired.pem", "client-expired.key", "localhost"),
        &mut server,
    );
    let f = server_failure(&events);
    assert_eq!(f.reason.kind(), "certificate_expired", "{f}");
    assert_eq!(f.alert, Some((AlertDirection::Sent, Alert::fatal(45))));
    assert!(
        f.to_string()
            .contains("while verifying the client certificate"),
        "{f}"
    );
    assert_eq!(client_failure(&client).reason.kind(), "certificate_expired");
}

fn server_with(cert: &str, key_file: &str) -> Server {
    let mut c = server_config();
    c.identity = Some(ServerIdentity {
        key: key(key_file),
        chain: certs(cert),
    });
    Server::new(c).unwrap()
}

#[test]
fn expired_server_certificate_is_refused_by_the_client() {
    let mut server = server_with("server-expired.pem", "server-expired.key");
    let (client, _) = handshake(
        &x509_client("client-dev-1.pem", "client-dev-1.key", "localhost"),
        &mut server,
    );
    let c = client_failure(&client);
    assert_eq!(c.reason.kind(), "certificate_expired", "{c}");
    assert_eq!(c.stage, HandshakeStage::VerifyingServerCertificate);
}

#[test]
fn server_certificate_for_another_host_is_refused_int_403() {
    let mut server = server_with("server-wrong-host.pem", "server-wrong-host.key");
    let (client, _) = handshake(
        &x509_client("client-dev-1.pem", "client-dev-1.key", "server.example.com"),
        &mut server,
    );
    let c = client_failure(&client);
    assert_eq!(
        c.reason,
        Reason::HostnameMismatch {
            expected: "server.example.com".into()
        },
        "{c}"
    );
    assert_eq!(c.alert.map(|a| a.0), Some(AlertDirection::Sent));
}

#[test]
fn wrong_pinned_server_rpk_is_refused() {
    let mut server = Server::new(rpk_server_config()).unwrap();
    let (client, events) = handshake(
        &rpk_client("rpk-dev-3.key", "rpk-unknown.pub.der"),
        &mut server,
    );
    let c = client_failure(&client);
    assert_eq!(c.reason, Reason::PinnedKeyMismatch, "{c}");
    assert_eq!(c.stage, HandshakeStage::VerifyingServerCertificate);
    assert!(
        events.iter().any(|e| matches!(e, ServerEvent::Failed(_))),
        "{events:?}"
    );
}

#[test]
fn unknown_client_rpk_is_refused() {
    let mut server = Server::new(rpk_server_config()).unwrap();
    let (client, events) = handshake(
        &rpk_client("rpk-unknown.key", "rpk-server.pub.der"),
        &mut server,
    );
    let f = server_failure(&events);
    let unknown = spki_sha256_hex(&std::fs::read(pki("rpk-unknown.pub.der")).unwrap());
    assert_eq!(
        f.reason,
        Reason::UnknownPublicKey {
            spki_sha256: unknown
        },
        "{f}"
    );
    assert_eq!(client.state(), SessionState::Failed);
}

#[test]
fn nosec_coap_on_the_secure_port_is_rejected() {
    let mut server = Server::new(server_config()).unwrap();
    // CoAP CON POST /rd?ep=x: what a NoSec client sends.
    let coap = [
        0x40, 0x02, 0x12, 0x34, 0xb2, b'r', b'd', 0x44, b'e', b'p', b'=', b'x',
    ];
    server.handle_datagram(addr(CLIENT_ADDR), &coap, Instant::now());
    assert_eq!(
        server.poll_event(),
        Some(ServerEvent::Rejected {
            peer: addr(CLIENT_ADDR),
            reason: Reason::NotDtls
        })
    );
    assert!(server.poll_transmit().is_none());
    assert!(server.is_empty());
}

#[test]
fn a_suite_the_server_does_not_allow_is_rejected() {
    let mut cfg = server_config();
    cfg.cipher_suites = vec![CipherSuite::PSK_AES_128_CCM_8];
    let mut server = Server::new(cfg).unwrap();
    let store = store();
    let (id, key) = psk_of(&store, "rig-dev-psk");
    let mut client = psk_client(&id, &key);
    client.cipher_suites = vec![CipherSuite::PSK_AES_128_CBC_SHA256];
    let (client, events) = handshake(&client, &mut server);
    let f = server_failure(&events);
    assert_eq!(f.reason, Reason::NoSharedCipherSuite, "{f}");
    assert_eq!(f.stage, HandshakeStage::Hello);
    assert_eq!(client_failure(&client).reason, Reason::NoSharedCipherSuite);
}

#[test]
fn configured_suite_from_lwm2m_resource_16_is_negotiated() {
    let store = store();
    let (id, key) = psk_of(&store, "rig-dev-psk");
    let mut client = psk_client(&id, &key);
    client.cipher_suites = suites_from_iana(&[0x00AE]).unwrap();
    let mut server = Server::new(server_config()).unwrap();
    let (client, _) = handshake(&client, &mut server);
    assert_eq!(
        client.cipher_suite(),
        Some(CipherSuite::PSK_AES_128_CBC_SHA256)
    );
}

#[test]
fn lost_first_flight_is_retransmitted_by_the_timer() {
    let store = store();
    let (id, key) = psk_of(&store, "rig-dev-psk");
    let mut cfg = psk_client(&id, &key);
    cfg.tuning.retransmit_initial = Duration::from_millis(40);
    let ctx = ClientContext::new(cfg).unwrap();
    let mut server = Server::new(server_config()).unwrap();
    let start = Instant::now();
    let mut client = Session::client(&ctx, addr(SERVER_ADDR), start).unwrap();
    let first = client.poll_transmit().expect("ClientHello");
    drop(first); // lost on the way
    let deadline = client
        .poll_timeout()
        .expect("the retransmission timer runs");
    assert!(
        deadline <= start + Duration::from_millis(60),
        "{:?}",
        deadline - start
    );
    // Before the deadline nothing is resent.
    client.handle_timeout(start).unwrap();
    assert!(client.poll_transmit().is_none());
    let mut retransmitted = 0;
    for _ in 0..50 {
        if client.is_established() {
            break;
        }
        if let Some(d) = client.poll_timeout() {
            std::thread::sleep(d.saturating_duration_since(Instant::now()));
        }
        let now = Instant::now();
        client.handle_timeout(now).unwrap();
        let mut counts = (0, 0);
        pump(
            &mut client,
            &mut server,
            addr(CLIENT_ADDR),
            now,
            &mut |_, _, _| true,
            &mut counts,
        );
        retransmitted += counts.0;
    }
    assert!(retransmitted > 0);
    assert!(client.is_established(), "{:?}", client.failure());
}

#[test]
fn handshake_gives_up_at_its_deadline() {
    let store = store();
    let (id, key) = psk_of(&store, "rig-dev-psk");
    let mut cfg = psk_client(&id, &key);
    cfg.tuning.handshake_timeout = Duration::from_secs(5);
    let ctx = ClientContext::new(cfg).unwrap();
    let start = Instant::now();
    let mut client = Session::client(&ctx, addr(SERVER_ADDR), start).unwrap();
    let err = client
        .handle_timeout(start + Duration::from_secs(5))
        .unwrap_err();
    assert_eq!(
        err.reason(),
        Some(&Reason::TimedOut(Duration::from_secs(5)))
    );
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[test]
fn session_resumption() {
    let store = store();
    let (id, key) = psk_of(&store, "rig-dev-psk");
    let mut server = Server::new(server_config()).unwrap();
    let ctx = ClientContext::new(x509_client(
        "client-dev-1.pem",
        "client-dev-1.key",
        "localhost",
    ))
    .unwrap();
    let (first, _) = handshake_with(&ctx, &mut server, "127.0.0.1:40010");
    assert!(first.is_established() && !first.resumed());
    let (second, events) = handshake_with(&ctx, &mut server, "127.0.0.1:40011");
    assert!(second.is_established(), "{:?}", second.failure());
    assert!(second.resumed(), "second handshake should resume");
    let (endpoint, _, resumed) = established(&events);
    assert!(resumed);
    assert_eq!(endpoint.as_deref(), Some("rig-dev-1"));
    // PSK too.
    let ctx = ClientContext::new(psk_client(&id, &key)).unwrap();
    let (first, _) = handshake_with(&ctx, &mut server, "127.0.0.1:40012");
    assert!(first.is_established() && !first.resumed());
    let (third, _) = handshake_with(&ctx, &mut server, "127.0.0.1:40013");
    assert!(third.is_established(), "{:?}", third.failure());
    assert!(third.resumed(), "PSK session should resume");
}

#[test]
fn mtu_limits_every_handshake_datagram() {
    let mut cfg = server_config();
    cfg.identity = Some(ServerIdentity {
        key: key("server.key"),
        chain: certs("server-chain.pem"),
    });
    cfg.tuning.mtu = 256;
    let mut server = Server::new(cfg).unwrap();
    let mut client = x509_client("client-dev-1.pem", "client-dev-1.key", "localhost");
    client.tuning.mtu = 256;
    let ctx = ClientContext::new(client).unwrap();
    let now = Instant::now();
    let mut session = Session::client(&ctx, addr(SERVER_ADDR), now).unwrap();
    let mut largest = 0;
    pump(
        &mut session,
        &mut server,
        addr(CLIENT_ADDR),
        now,
        &mut |_, _, d| {
            largest = largest.max(d.len());
            true
        },
        &mut (0, 0),
    );
    assert!(session.is_established(), "{:?}", session.failure());
    assert!(largest <= 256, "largest datagram {largest} > MTU 256");
    assert!(
        largest > 150,
        "the MTU should have been used, largest {largest}"
    );
}

#[test]
fn session_limit_and_idle_expiry() {
    let store = store();
    let (id, key) = psk_of(&store, "rig-dev-psk");
    let mut cfg = server_config();
    cfg.max_sessions = 1;
    cfg.idle_timeout = Duration::from_secs(30);
    let mut server = Server::new(cfg).unwrap();
    let ctx = ClientContext::new(psk_client(&id, &key)).unwrap();
    let (a, _) = handshake_with(&ctx, &mut server, "127.0.0.1:40020");
    assert!(a.is_established());
    let (b, events) = handshake_with(&ctx, &mut server, "127.0.0.1:40021");
    assert!(!b.is_established());
    assert!(
        matches!(&events[0], ServerEvent::Rejected { reason: Reason::Protocol(m), .. } if m.contains("session limit")),
        "{events:?}"
    );
    let t = server.poll_timeout().unwrap();
    server.handle_timeout(t + Duration::from_millis(1));
    assert_eq!(
        server.poll_event(),
        Some(ServerEvent::Expired {
            peer: addr("127.0.0.1:40020")
        })
    );
    assert!(server.is_empty());
}

#[test]
fn close_notify_reaches_the_server() {
    let store = store();
    let (id, key) = psk_of(&store, "rig-dev-psk");
    let mut server = Server::new(server_config()).unwrap();
    let (mut client, _) = handshake(&psk_client(&id, &key), &mut server);
    client.close();
    pump(
        &mut client,
        &mut server,
        addr(CLIENT_ADDR),
        Instant::now(),
        &mut |_, _, _| true,
        &mut (0, 0),
    );
    assert_eq!(
        server.poll_event(),
        Some(ServerEvent::Closed {
            peer: addr(CLIENT_ADDR)
        })
    );
}
