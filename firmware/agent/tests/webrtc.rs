//! The agent with its second DTLS backend, webrtc-dtls (pure Rust,
//! `--dtls-backend webrtc`), against the rig's OpenSSL-based LwM2M server on
//! loopback, so the rig is not only tested against itself: PSK with
//! `TLS_PSK_WITH_AES_128_CCM_8` and X.509 with
//! `TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8` register and answer a Read; a wrong
//! PSK key is refused by the server (which says why); a server certificate
//! for another name is refused by the webrtc client; RPK is refused up front.
//! Then the same client against libcoap's `coap-server-gnutls` (GnuTLS), a
//! third implementation.

#![cfg(feature = "webrtc-dtls")]
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use rig_services::lwm2m::{
    Code, ContentFormat, Lwm2mServer, ObjectPath, ServerConfig, ServerEvent, wait_for,
};

const WAIT: Duration = Duration::from_secs(20);

mod common;
use common::Agent;
const PSK_KEY: &str = "c7ffbeddffd4dc8c4787b554a90a9184";

fn pki(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/pki")
        .join(name)
        .display()
        .to_string()
}

fn store() -> rig_dtls::CredentialStore {
    toml::from_str(&std::fs::read_to_string(pki("store.toml")).unwrap()).unwrap()
}

fn cert_server_config(cert: &str, key: &str) -> rig_dtls::ServerConfig {
    let mut c = rig_dtls::ServerConfig::new(store());
    c.identity = Some(rig_dtls::ServerIdentity {
        key: rig_dtls::load_private_key(pki(key).as_ref()).unwrap(),
        chain: rig_dtls::load_certificates(pki(cert).as_ref()).unwrap(),
    });
    c.client_ca = rig_dtls::load_certificates(pki("ca.pem").as_ref()).unwrap();
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

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn psk_args(key_hex: &str) -> Vec<String> {
    s(&[
        "--dtls-backend",
        "webrtc",
        "--security",
        "psk",
        "--psk-identity",
        "rig-dev-psk",
        "--psk-key-hex",
        key_hex,
    ])
}

fn x509_args() -> Vec<String> {
    let mut v = s(&["--dtls-backend", "webrtc", "--security", "x509"]);
    v.extend([
        "--cert".to_string(),
        pki("client-dev-1.pem"),
        "--key".to_string(),
        pki("client-dev-1.key"),
        "--ca".to_string(),
        pki("ca.pem"),
    ]);
    v
}

/// Starts the agent against `uri` as `ep`.
fn spawn_agent(uri: &str, ep: &str, args: &[String]) -> Agent {
    Agent::with_server(uri, ep, args, WAIT)
}

/// Registers through webrtc-dtls, checks the server's view of the session
/// (endpoint from the credentials, the suite), then reads /3/0 in TLV.
async fn register_and_read(server: &Lwm2mServer, ep: &str, args: &[String], suite: &str) {
    let mut events = server.events();
    let mut agent = spawn_agent(&server.uri(), ep, args);
    let line = agent.expect("registered ").await;
    assert!(line.starts_with("registered /rd/"), "{line}");
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
    assert_eq!(cipher_suite.as_deref(), Some(suite));
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
async fn webrtc_psk_registers_with_ccm8_and_reads_device() {
    let server = secure_server(rig_dtls::ServerConfig::new(store())).await;
    register_and_read(
        &server,
        "rig-dev-psk",
        &psk_args(PSK_KEY),
        "TLS_PSK_WITH_AES_128_CCM_8",
    )
    .await;
}

#[tokio::test]
async fn webrtc_x509_registers_with_ecdhe_ecdsa_ccm8_and_reads_device() {
    let server = secure_server(cert_server_config("server.pem", "server.key")).await;
    register_and_read(
        &server,
        "rig-dev-1",
        &x509_args(),
        "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
    )
    .await;
}

#[tokio::test]
async fn webrtc_wrong_psk_key_is_refused_by_the_server_with_the_reason() {
    let server = secure_server(rig_dtls::ServerConfig::new(store())).await;
    let mut events = server.events();
    let mut agent = spawn_agent(
        &server.uri(),
        "rig-dev-psk",
        &psk_args("00ffbeddffd4dc8c4787b554a90a9184"),
    );
    let line = agent.expect("error dtls: ").await;
    assert!(line.contains("webrtc-dtls handshake"), "{line}");
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

/// The server's certificate chains to the trusted CA but names
/// `server-fail.example.com`, not 127.0.0.1: the webrtc client refuses it.
#[tokio::test]
async fn webrtc_refuses_a_server_certificate_for_another_host() {
    let server = secure_server(cert_server_config(
        "server-wrong-host.pem",
        "server-wrong-host.key",
    ))
    .await;
    let mut agent = spawn_agent(&server.uri(), "rig-dev-1", &x509_args());
    let line = agent.expect("error dtls: ").await;
    assert!(line.contains("webrtc-dtls handshake"), "{line}");
    assert!(
        line.contains("NotValidForName") || line.contains("name"),
        "{line}"
    );
    assert!(server.registration("rig-dev-1").is_none());
}

/// The good server certificate (localhost, 127.0.0.1, server.example.com)
/// with `--server-name` set to a name it does not carry: refused, so the
/// check is on the name, not on the chain.
#[tokio::test]
async fn webrtc_checks_the_server_name_flag() {
    let server = secure_server(cert_server_config("server.pem", "server.key")).await;
    let mut args = x509_args();
    args.extend(s(&["--server-name", "other.example.com"]));
    let mut agent = spawn_agent(&server.uri(), "rig-dev-1", &args);
    let line = agent.expect("error dtls: ").await;
    assert!(
        line.contains("NotValidForName") || line.contains("name"),
        "{line}"
    );
    assert!(server.registration("rig-dev-1").is_none());
    // The same server and certificate with a name it carries: accepted.
    let mut args = x509_args();
    args.extend(s(&["--server-name", "server.example.com"]));
    let mut agent = spawn_agent(&server.uri(), "rig-dev-1", &args);
    agent.expect("registered ").await;
}

#[tokio::test]
async fn webrtc_with_rpk_is_a_clear_error() {
    let key = pki("rpk-dev-3.key");
    let ca = pki("rpk-server.pub.pem");
    let out = tokio::time::timeout(
        WAIT,
        Command::new(env!("CARGO_BIN_EXE_rig-agent"))
            .args([
                "--server",
                "coaps://127.0.0.1:5684",
                "--endpoint",
                "rig-dev-3",
                "--dtls-backend",
                "webrtc",
                "--security",
                "rpk",
                "--key",
                key.as_str(),
                "--ca",
                ca.as_str(),
            ])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the agent exits at once")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--dtls-backend webrtc does not support --security rpk"),
        "{stderr}"
    );
    assert!(stderr.contains("raw public keys"), "{stderr}");
}

fn require(tool: &str) {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} is not installed: install Debian's libcoap3-bin (listed in rig/xtask/apt-packages.txt)"
    );
}

/// Starts `coap-server-gnutls` on a free port pair (libcoap listens on port
/// for CoAP and port+1 for DTLS); returns the coaps URI and the child.
async fn gnutls_server(args: &[String]) -> (String, Child) {
    require("coap-server-gnutls");
    let mut port: u16 = 0;
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
            port = p;
            break;
        }
    }
    assert!(port != 0, "no free UDP port pair");
    let child = Command::new("coap-server-gnutls")
        .args(["-A", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start coap-server-gnutls");
    tokio::time::sleep(Duration::from_millis(300)).await;
    (format!("coaps://127.0.0.1:{}", port + 1), child)
}

/// libcoap's example server is no LwM2M server: it answers the Register with
/// 4.04. That answer arriving proves the webrtc-dtls handshake with GnuTLS
/// and a CoAP exchange inside the session, both ways.
async fn register_is_answered_over_gnutls(server_args: &[String], args: &[String]) {
    let (uri, _server) = gnutls_server(server_args).await;
    let mut agent = spawn_agent(&uri, "rig-dev-1", args);
    let line = agent.expect("registration-failed ").await;
    assert!(line.contains("4.04"), "{line}");
    assert!(
        !agent.seen.iter().any(|l| l.starts_with("error dtls")),
        "{:?}",
        agent.seen
    );
}

#[tokio::test]
async fn webrtc_psk_against_coap_server_gnutls() {
    // libcoap takes the key as text; the identity is not checked by `-k`.
    let key_hex: String = b"rig-webrtc-secret"
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    register_is_answered_over_gnutls(&s(&["-k", "rig-webrtc-secret"]), &psk_args(&key_hex)).await;
}

#[tokio::test]
async fn webrtc_x509_against_coap_server_gnutls() {
    register_is_answered_over_gnutls(
        &s(&[
            "-c",
            &pki("server.pem"),
            "-j",
            &pki("server.key"),
            "-C",
            &pki("ca.pem"),
        ]),
        &x509_args(),
    )
    .await;
}
