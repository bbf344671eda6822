//! The rig's LwM2M server against the reference agent over DTLS 1.2 on
//! loopback (PSK, X.509, RPK), with the test PKI in `fixtures/pki/`; and the
//! refusals: a wrong PSK key and a server certificate for another host.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use rig_services::lwm2m::{
    Code, ContentFormat, Lwm2mServer, ObjectPath, ServerConfig, ServerEvent, wait_for,
};

const WAIT: Duration = Duration::from_secs(15);

mod common;
use common::Agent;

fn pki(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/pki")
        .join(name)
}

fn store() -> rig_dtls::CredentialStore {
    toml::from_str(&std::fs::read_to_string(pki("store.toml")).unwrap()).unwrap()
}

fn cert_server_config(cert: &str, key: &str) -> rig_dtls::ServerConfig {
    let mut c = rig_dtls::ServerConfig::new(store());
    c.identity = Some(rig_dtls::ServerIdentity {
        key: rig_dtls::load_private_key(&pki(key)).unwrap(),
        chain: rig_dtls::load_certificates(&pki(cert)).unwrap(),
    });
    c.client_ca = rig_dtls::load_certificates(&pki("ca.pem")).unwrap();
    c
}

fn rpk_server_config() -> rig_dtls::ServerConfig {
    let mut c = rig_dtls::ServerConfig::new(store());
    c.identity = Some(rig_dtls::ServerIdentity {
        key: rig_dtls::load_private_key(&pki("rpk-server.key")).unwrap(),
        chain: Vec::new(),
    });
    c.raw_public_keys = true;
    c
}

async fn secure_server(dtls: rig_dtls::ServerConfig) -> Lwm2mServer {
    Lwm2mServer::bind_secure(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig::default(),
        dtls,
    )
    .await
    .unwrap()
}

/// Starts the agent against `uri` as `ep`.
fn spawn_agent(uri: &str, ep: &str, args: &[String]) -> Agent {
    Agent::with_server(uri, ep, args, WAIT)
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn path(f: &str) -> String {
    pki(f).display().to_string()
}

/// Registers over DTLS, checks the session event, then reads /3/0 in TLV.
async fn register_and_read(server: &Lwm2mServer, ep: &str, args: &[String], suite: Option<&str>) {
    let mut events = server.events();
    assert!(server.uri().starts_with("coaps://"));
    let mut agent = spawn_agent(&server.uri(), ep, args);
    agent.expect("registered ").await;
    let ev = wait_for(&mut events, WAIT, |e| {
        matches!(e, ServerEvent::SecureSession { .. })
    })
    .await
    .expect("SecureSession event");
    let ServerEvent::SecureSession {
        endpoint,
        cipher_suite,
        ..
    } = ev
    else {
        unreachable!()
    };
    assert_eq!(endpoint.as_deref(), Some(ep));
    if let Some(want) = suite {
        assert_eq!(cipher_suite.as_deref(), Some(want));
    }
    assert!(server.registration(ep).is_some());
    assert!(
        server.deviations(ep).is_empty(),
        "{:?}",
        server.deviations(ep)
    );
    let r = server
        .read(
            ep,
            &"/3/0".parse::<ObjectPath>().unwrap(),
            Some(ContentFormat::Tlv),
        )
        .await
        .unwrap();
    assert_eq!(r.code, Code::CONTENT);
    assert_eq!(r.content_format, Some(ContentFormat::Tlv));
    assert!(r.decoded.is_some());
}

#[tokio::test]
async fn psk_registers_with_ccm8_and_reads_device() {
    let server = secure_server(rig_dtls::ServerConfig::new(store())).await;
    let args = s(&[
        "--security",
        "psk",
        "--psk-identity",
        "rig-dev-psk",
        "--psk-key-hex",
        "c7ffbeddffd4dc8c4787b554a90a9184",
    ]);
    register_and_read(
        &server,
        "rig-dev-psk",
        &args,
        Some("TLS_PSK_WITH_AES_128_CCM_8"),
    )
    .await;
}

#[tokio::test]
async fn x509_registers_and_reads_device() {
    let server = secure_server(cert_server_config("server.pem", "server.key")).await;
    let args = vec![
        "--security".into(),
        "x509".into(),
        "--cert".into(),
        path("client-dev-1.pem"),
        "--key".into(),
        path("client-dev-1.key"),
        "--ca".into(),
        path("ca.pem"),
    ];
    register_and_read(&server, "rig-dev-1", &args, None).await;
}

#[tokio::test]
async fn rpk_registers_and_reads_device() {
    let server = secure_server(rpk_server_config()).await;
    let args = vec![
        "--security".into(),
        "rpk".into(),
        "--key".into(),
        path("rpk-dev-3.key"),
        "--ca".into(),
        path("rpk-server.pub.pem"),
    ];
    register_and_read(&server, "rig-dev-3", &args, None).await;
}

#[tokio::test]
async fn ep_not_matching_the_credentials_is_a_deviation() {
    let server = secure_server(rig_dtls::ServerConfig::new(store())).await;
    let args = s(&[
        "--security",
        "psk",
        "--psk-identity",
        "rig-dev-psk",
        "--psk-key-hex",
        "c7ffbeddffd4dc8c4787b554a90a9184",
    ]);
    let mut agent = spawn_agent(&server.uri(), "someone-else", &args);
    agent.expect("registered ").await;
    let d = server.deviations("someone-else");
    assert!(d.iter().any(|d| d.what.contains("rig-dev-psk")), "{d:?}");
}

#[tokio::test]
async fn wrong_psk_key_is_refused_with_the_reason() {
    let server = secure_server(rig_dtls::ServerConfig::new(store())).await;
    let mut events = server.events();
    let args = s(&[
        "--security",
        "psk",
        "--psk-identity",
        "rig-dev-psk",
        "--psk-key-hex",
        "00ffbeddffd4dc8c4787b554a90a9184",
    ]);
    let mut agent = spawn_agent(&server.uri(), "rig-dev-psk", &args);
    let line = agent.expect("error dtls: ").await;
    assert!(
        line.contains("PSK") || line.contains("psk") || line.contains("decrypt"),
        "{line}"
    );
    let ev = wait_for(&mut events, WAIT, |e| {
        matches!(e, ServerEvent::HandshakeFailed { .. })
    })
    .await
    .expect("HandshakeFailed event");
    let ServerEvent::HandshakeFailed { reason, .. } = ev else {
        unreachable!()
    };
    assert_eq!(reason, "wrong_psk");
    assert!(server.registration("rig-dev-psk").is_none());
}

#[tokio::test]
async fn server_certificate_for_another_host_is_refused() {
    let server = secure_server(cert_server_config(
        "server-wrong-host.pem",
        "server-wrong-host.key",
    ))
    .await;
    let mut events = server.events();
    let args = vec![
        "--security".into(),
        "x509".into(),
        "--cert".into(),
        path("client-dev-1.pem"),
        "--key".into(),
        path("client-dev-1.key"),
        "--ca".into(),
        path("ca.pem"),
    ];
    let mut agent = spawn_agent(&server.uri(), "rig-dev-1", &args);
    let line = agent.expect("error dtls: ").await;
    assert!(line.contains("host") || line.contains("name"), "{line}");
    let ev = wait_for(&mut events, WAIT, |e| {
        matches!(e, ServerEvent::HandshakeFailed { .. })
    })
    .await
    .expect("HandshakeFailed event");
    let ServerEvent::HandshakeFailed { message, .. } = ev else {
        unreachable!()
    };
    assert!(!message.is_empty());
    assert!(server.registration("rig-dev-1").is_none());
}
