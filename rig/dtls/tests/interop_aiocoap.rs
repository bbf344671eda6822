//! Interop with a third DTLS implementation: aiocoap with DTLSSocket (tinydtls), PSK, against
//! the rig-dtls server. Needs the PyPI packages `aiocoap` and `DTLSSocket` (listed in
//! rig/xtask/pip-packages.txt); fails, not skips, without them.
#![allow(clippy::unwrap_used, clippy::panic)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::Duration;

use coap_lite::{MessageClass, MessageType, Packet, ResponseType};
use common::*;
use rig_dtls::*;

const IDENTITY: &str = "rig-aiocoap";
const KEY: &str = "rig-aiocoap-secret";

async fn serve() -> Arc<DtlsServerSocket> {
    let mut store = store();
    store.psk.push(PskEntry {
        endpoint: "rig-aiocoap".into(),
        identity: Some(IDENTITY.into()),
        identity_hex: None,
        key_hex: to_hex(KEY.as_bytes()),
    });
    let socket = Arc::new(
        DtlsServerSocket::bind(addr("127.0.0.1:0"), ServerConfig::new(store))
            .await
            .unwrap(),
    );
    let s = socket.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok((n, peer)) = s.recv_from(&mut buf).await {
            let Ok(req) = Packet::from_bytes(&buf[..n]) else {
                continue;
            };
            let mut resp = Packet::new();
            resp.header.set_type(MessageType::Acknowledgement);
            resp.header.code = MessageClass::Response(ResponseType::Content);
            resp.header.message_id = req.header.message_id;
            resp.set_token(req.get_token().to_vec());
            resp.payload = b"hello from rig-dtls".to_vec();
            let _ = s.send_to(&resp.to_bytes().unwrap(), peer).await;
        }
    });
    socket
}

async fn aiocoap_get(port: u16, key: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/aiocoap_psk_get.py");
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("python3")
            .args([script, &port.to_string(), IDENTITY, key])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("aiocoap client did not finish in 30 s")
    .expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("ModuleNotFoundError"),
        "aiocoap/DTLSSocket missing: `python3 -m pip install aiocoap DTLSSocket` \
         (rig/xtask/pip-packages.txt): {text}"
    );
    text
}

#[tokio::test]
async fn aiocoap_tinydtls_psk_to_rig_server() {
    let socket = serve().await;
    let out = aiocoap_get(socket.local_addr().port(), KEY).await;
    assert!(out.contains("hello from rig-dtls"), "aiocoap output: {out}");
    let event = tokio::time::timeout(Duration::from_secs(2), socket.next_event())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&event, ServerEvent::Established { endpoint: Some(e), .. } if e == "rig-aiocoap"),
        "{event:?}"
    );
}

#[tokio::test]
async fn aiocoap_with_wrong_psk_is_rejected() {
    let socket = serve().await;
    let out = aiocoap_get(socket.local_addr().port(), "not-the-key").await;
    assert!(
        !out.contains("hello from rig-dtls"),
        "the bad peer got in: {out}"
    );
    let event = tokio::time::timeout(Duration::from_secs(5), socket.next_event())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&event, ServerEvent::Failed(f) if f.reason == Reason::WrongPsk),
        "{event:?}"
    );
}
