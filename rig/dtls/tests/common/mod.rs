//! Shared helpers for rig-dtls tests: the fixture PKI and an in-memory client/server driver.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use rig_dtls::*;

pub const CLIENT_ADDR: &str = "127.0.0.1:40001";
pub const SERVER_ADDR: &str = "127.0.0.1:5684";

pub fn pki(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/pki")
        .join(name)
}

pub fn store() -> CredentialStore {
    let text = std::fs::read_to_string(pki("store.toml")).unwrap();
    let store: CredentialStore = toml::from_str(&text).unwrap();
    store.validate().unwrap();
    store
}

pub fn psk_of(store: &CredentialStore, endpoint: &str) -> (Vec<u8>, Vec<u8>) {
    let e = store.psk.iter().find(|e| e.endpoint == endpoint).unwrap();
    (
        e.identity.clone().unwrap().into_bytes(),
        from_hex(&e.key_hex).unwrap(),
    )
}

pub fn certs(name: &str) -> Vec<X509> {
    load_certificates(&pki(name)).unwrap()
}

pub fn key(name: &str) -> PKey<Private> {
    load_private_key(&pki(name)).unwrap()
}

pub fn public(name: &str) -> PKey<Public> {
    load_public_key(&pki(name)).unwrap()
}

/// A server that does PSK (store), X.509 (server.pem, client CA ca.pem) and RPK with the
/// certificate's key.
pub fn server_config() -> ServerConfig {
    let mut c = ServerConfig::new(store());
    c.identity = Some(ServerIdentity {
        key: key("server.key"),
        chain: certs("server.pem"),
    });
    c.client_ca = certs("ca.pem");
    c
}

/// A raw-public-key-only server with rpk-server.key.
pub fn rpk_server_config() -> ServerConfig {
    let mut c = ServerConfig::new(store());
    c.identity = Some(ServerIdentity {
        key: key("rpk-server.key"),
        chain: Vec::new(),
    });
    c
}

pub fn psk_client(identity: &[u8], key: &[u8]) -> ClientConfig {
    ClientConfig::new(ClientCredentials::Psk {
        identity: identity.to_vec(),
        key: key.to_vec(),
    })
}

pub fn x509_client(cert: &str, key_file: &str, server_name: &str) -> ClientConfig {
    ClientConfig::new(ClientCredentials::Certificate {
        chain: certs(cert),
        key: key(key_file),
        trust: certs("ca.pem"),
        server_name: Some(server_name.into()),
    })
}

pub fn rpk_client(key_file: &str, pinned: &str) -> ClientConfig {
    ClientConfig::new(ClientCredentials::RawPublicKey {
        key: key(key_file),
        server_keys: vec![public(pinned)],
    })
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Moves datagrams between a client session and a server until nothing moves (bounded).
/// `keep` may drop datagrams: it gets (from_client, index of that direction's datagram, bytes).
pub fn pump(
    client: &mut Session,
    server: &mut Server,
    client_addr: SocketAddr,
    now: Instant,
    keep: &mut dyn FnMut(bool, usize, &[u8]) -> bool,
    counts: &mut (usize, usize),
) {
    for _ in 0..64 {
        let mut moved = false;
        while let Some(d) = client.poll_transmit() {
            moved = true;
            counts.0 += 1;
            if keep(true, counts.0 - 1, &d) {
                server.handle_datagram(client_addr, &d, now);
            }
        }
        while let Some((peer, d)) = server.poll_transmit() {
            assert_eq!(peer, client_addr);
            moved = true;
            counts.1 += 1;
            if keep(false, counts.1 - 1, &d) {
                let _ = client.handle_datagram(&d, now);
            }
        }
        if !moved {
            return;
        }
    }
    panic!("handshake did not settle in 64 rounds");
}

/// Runs a whole in-memory handshake; returns the client session and the server's events.
pub fn handshake(client: &ClientConfig, server: &mut Server) -> (Session, Vec<ServerEvent>) {
    handshake_with(
        &ClientContext::new(client.clone()).unwrap(),
        server,
        CLIENT_ADDR,
    )
}

pub fn handshake_with(
    ctx: &ClientContext,
    server: &mut Server,
    client_addr: &str,
) -> (Session, Vec<ServerEvent>) {
    let now = Instant::now();
    let mut session = Session::client(ctx, addr(SERVER_ADDR), now).unwrap();
    pump(
        &mut session,
        server,
        addr(client_addr),
        now,
        &mut |_, _, _| true,
        &mut (0, 0),
    );
    let mut events = Vec::new();
    while let Some(e) = server.poll_event() {
        events.push(e);
    }
    (session, events)
}

/// The failure reason the server logged.
pub fn server_failure(events: &[ServerEvent]) -> HandshakeFailure {
    events
        .iter()
        .find_map(|e| match e {
            ServerEvent::Failed(f) => Some(f.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no failure event in {events:?}"))
}
