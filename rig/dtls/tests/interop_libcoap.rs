//! Interop against an independent DTLS implementation: libcoap 4.3 built on GnuTLS
//! (`coap-client-gnutls`, `coap-server-gnutls` from Debian's `libcoap3-bin`, listed in
//! rig/xtask/apt-packages.txt).
//!
//! - libcoap's GnuTLS client → a small rig-dtls CoAP server, in PSK, RPK and PKI;
//! - a rig-dtls client → `coap-server-gnutls`, in PSK, RPK and PKI.
//!
//! libcoap's client exits 0 even when the handshake fails, so the tests check its output.
#![allow(clippy::unwrap_used, clippy::panic)] // test code: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use coap_lite::{MessageClass, MessageType, Packet, RequestType, ResponseType};
use common::*;
use rig_dtls::*;
use tokio::process::Command;

const PSK_IDENTITY: &str = "rig-interop";
/// libcoap takes the key as text on the command line.
const PSK_KEY: &str = "rig-interop-secret";
const REPLY: &str = "hello from rig-dtls";

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

fn interop_store() -> CredentialStore {
    let mut store = store();
    store.psk.push(PskEntry {
        endpoint: "rig-interop".into(),
        identity: Some(PSK_IDENTITY.into()),
        identity_hex: None,
        key_hex: to_hex(PSK_KEY.as_bytes()),
    });
    store
}

fn coap_reply(request: &[u8]) -> Option<Vec<u8>> {
    let req = Packet::from_bytes(request).ok()?;
    let mut resp = Packet::new();
    resp.header.set_type(MessageType::Acknowledgement);
    resp.header.code = MessageClass::Response(ResponseType::Content);
    resp.header.message_id = req.header.message_id;
    resp.set_token(req.get_token().to_vec());
    resp.payload = REPLY.as_bytes().to_vec();
    resp.to_bytes().ok()
}

/// Serves one CoAP 2.05 reply per request until the test ends.
async fn coap_server(config: ServerConfig) -> (Arc<DtlsServerSocket>, SocketAddr) {
    let socket = Arc::new(
        DtlsServerSocket::bind(addr("127.0.0.1:0"), config)
            .await
            .unwrap(),
    );
    let local = socket.local_addr();
    let s = socket.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok((n, peer)) = s.recv_from(&mut buf).await {
            if let Some(reply) = coap_reply(&buf[..n]) {
                let _ = s.send_to(&reply, peer).await;
            }
        }
    });
    (socket, local)
}

async fn run_client(args: &[String]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        Command::new("coap-client-gnutls")
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("coap-client-gnutls did not finish in 20 s")
    .expect("run coap-client-gnutls");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn s(x: &str) -> String {
    x.to_owned()
}

fn path(name: &str) -> String {
    pki(name).to_string_lossy().into_owned()
}

async fn events_of(socket: &DtlsServerSocket) -> Vec<ServerEvent> {
    let mut events = Vec::new();
    while let Ok(Some(e)) =
        tokio::time::timeout(Duration::from_millis(200), socket.next_event()).await
    {
        events.push(e);
    }
    events
}

fn endpoint_established(events: &[ServerEvent]) -> Option<String> {
    events.iter().find_map(|e| match e {
        ServerEvent::Established { endpoint, .. } => endpoint.clone(),
        _ => None,
    })
}

#[tokio::test]
async fn gnutls_client_psk_to_rig_server() {
    require("coap-client-gnutls");
    let (socket, local) = coap_server(ServerConfig::new(interop_store())).await;
    let out = run_client(&[
        s("-B"),
        s("10"),
        s("-m"),
        s("get"),
        s("-u"),
        s(PSK_IDENTITY),
        s("-k"),
        s(PSK_KEY),
        format!("coaps://127.0.0.1:{}/echo", local.port()),
    ])
    .await;
    assert!(out.contains(REPLY), "libcoap output: {out}");
    assert_eq!(
        endpoint_established(&events_of(&socket).await).as_deref(),
        Some("rig-interop")
    );
}

#[tokio::test]
async fn gnutls_client_wrong_psk_is_rejected_by_rig_server() {
    require("coap-client-gnutls");
    let (socket, local) = coap_server(ServerConfig::new(interop_store())).await;
    let out = run_client(&[
        s("-B"),
        s("5"),
        s("-m"),
        s("get"),
        s("-u"),
        s(PSK_IDENTITY),
        s("-k"),
        s("not-the-key"),
        format!("coaps://127.0.0.1:{}/echo", local.port()),
    ])
    .await;
    assert!(!out.contains(REPLY), "the bad peer got in: {out}");
    let events = events_of(&socket).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ServerEvent::Failed(f) if f.reason == Reason::WrongPsk)),
        "{events:?}"
    );
}

#[tokio::test]
async fn gnutls_client_pki_to_rig_server() {
    require("coap-client-gnutls");
    let (socket, local) = coap_server(server_config()).await;
    let out = run_client(&[
        s("-B"),
        s("10"),
        s("-m"),
        s("get"),
        s("-c"),
        path("client-dev-1.pem"),
        s("-j"),
        path("client-dev-1.key"),
        s("-C"),
        path("ca.pem"),
        format!("coaps://127.0.0.1:{}/echo", local.port()),
    ])
    .await;
    assert!(out.contains(REPLY), "libcoap output: {out}");
    assert_eq!(
        endpoint_established(&events_of(&socket).await).as_deref(),
        Some("rig-dev-1")
    );
}

#[tokio::test]
async fn gnutls_client_with_expired_certificate_is_rejected_by_rig_server() {
    require("coap-client-gnutls");
    let (socket, local) = coap_server(server_config()).await;
    let out = run_client(&[
        s("-B"),
        s("5"),
        s("-m"),
        s("get"),
        s("-c"),
        path("client-expired.pem"),
        s("-j"),
        path("client-expired.key"),
        s("-C"),
        path("ca.pem"),
        format!("coaps://127.0.0.1:{}/echo", local.port()),
    ])
    .await;
    assert!(!out.contains(REPLY), "the bad peer got in: {out}");
    let events = events_of(&socket).await;
    assert!(
        events.iter().any(
            |e| matches!(e, ServerEvent::Failed(f) if f.reason.kind() == "certificate_expired")
        ),
        "{events:?}"
    );
}

#[tokio::test]
async fn gnutls_client_rpk_to_rig_server() {
    require("coap-client-gnutls");
    let (socket, local) = coap_server(rpk_server_config()).await;
    let out = run_client(&[
        s("-B"),
        s("10"),
        s("-m"),
        s("get"),
        s("-M"),
        path("rpk-dev-3.key"),
        format!("coaps://127.0.0.1:{}/echo", local.port()),
    ])
    .await;
    assert!(out.contains(REPLY), "libcoap output: {out}");
    assert_eq!(
        endpoint_established(&events_of(&socket).await).as_deref(),
        Some("rig-dev-3")
    );
}

/// Starts `coap-server-gnutls` on a free port; returns its DTLS address and the child.
async fn gnutls_server(args: &[String]) -> (SocketAddr, tokio::process::Child) {
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // libcoap listens on port (CoAP) and port+1 (DTLS); find a free pair.
    let mut port = probe.local_addr().unwrap().port();
    drop(probe);
    for _ in 0..20 {
        if port < 65000
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port + 1)).is_ok()
        {
            break;
        }
        port = port.wrapping_add(7).max(20000);
    }
    let mut all = vec![s("-A"), s("127.0.0.1"), s("-p"), port.to_string()];
    all.extend_from_slice(args);
    let child = Command::new("coap-server-gnutls")
        .args(&all)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start coap-server-gnutls");
    tokio::time::sleep(Duration::from_millis(300)).await;
    (addr(&format!("127.0.0.1:{}", port + 1)), child)
}

async fn coap_get(client: &DtlsClientSocket) -> Packet {
    let mut req = Packet::new();
    req.header.set_type(MessageType::Confirmable);
    req.header.code = MessageClass::Request(RequestType::Get);
    req.header.message_id = 0x5151;
    req.set_token(vec![1, 2, 3, 4]);
    client.send(&req.to_bytes().unwrap()).await.unwrap();
    let mut buf = vec![0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
        .await
        .expect("no CoAP response in 5 s")
        .unwrap();
    Packet::from_bytes(&buf[..n]).unwrap()
}

async fn rig_client_to_gnutls(
    server_args: &[String],
    cfg: ClientConfig,
) -> Result<Packet, DtlsError> {
    require("coap-server-gnutls");
    let (server, _child) = gnutls_server(server_args).await;
    let mut cfg = cfg;
    cfg.tuning.handshake_timeout = Duration::from_secs(10);
    let ctx = Arc::new(ClientContext::new(cfg).unwrap());
    let client = DtlsClientSocket::connect(addr("127.0.0.1:0"), server, ctx).await?;
    let resp = coap_get(&client).await;
    client.close().await;
    Ok(resp)
}

#[tokio::test]
async fn rig_client_psk_to_gnutls_server() {
    let resp = rig_client_to_gnutls(
        &[s("-k"), s(PSK_KEY)],
        psk_client(PSK_IDENTITY.as_bytes(), PSK_KEY.as_bytes()),
    )
    .await
    .unwrap();
    assert_eq!(
        resp.header.code,
        MessageClass::Response(ResponseType::Content)
    );
    assert_eq!(resp.get_token(), &[1, 2, 3, 4]);
    assert!(!resp.payload.is_empty());
}

#[tokio::test]
async fn rig_client_wrong_psk_to_gnutls_server_fails() {
    let err = rig_client_to_gnutls(
        &[s("-k"), s(PSK_KEY)],
        psk_client(PSK_IDENTITY.as_bytes(), b"wrong-key"),
    )
    .await
    .unwrap_err();
    assert!(err.handshake_failure().is_some(), "{err}");
}

#[tokio::test]
async fn rig_client_pki_to_gnutls_server() {
    let resp = rig_client_to_gnutls(
        &[
            s("-c"),
            path("server.pem"),
            s("-j"),
            path("server.key"),
            s("-C"),
            path("ca.pem"),
        ],
        x509_client("client-dev-1.pem", "client-dev-1.key", "localhost"),
    )
    .await
    .unwrap();
    assert_eq!(
        resp.header.code,
        MessageClass::Response(ResponseType::Content)
    );
}

#[tokio::test]
async fn rig_client_refuses_gnutls_server_for_another_host() {
    let err = rig_client_to_gnutls(
        &[
            s("-c"),
            path("server-wrong-host.pem"),
            s("-j"),
            path("server-wrong-host.key"),
            s("-C"),
            path("ca.pem"),
        ],
        x509_client("client-dev-1.pem", "client-dev-1.key", "server.example.com"),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.reason().map(Reason::kind),
        Some("hostname_mismatch"),
        "{err}"
    );
}

#[tokio::test]
async fn rig_client_rpk_to_gnutls_server() {
    let resp = rig_client_to_gnutls(
        &[s("-M"), path("rpk-server.key")],
        rpk_client("rpk-dev-3.key", "rpk-server.pub.der"),
    )
    .await
    .unwrap();
    assert_eq!(
        resp.header.code,
        MessageClass::Response(ResponseType::Content)
    );
}
