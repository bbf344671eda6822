//! The secure file servers against independent clients: CoAPS (the Block2
//! server over `DtlsTransport`, PSK) fetched by libcoap's `coap-client-openssl`
//! and `coap-client-gnutls`, and HTTPS (a certificate from `HttpsPki` naming
//! the address served on) fetched by curl with a Range, all on loopback. Each
//! client runs at most 60 s.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use rig_services::file_server::{
    CoapFileServer, CoapServerConfig, DtlsTransport, FileStore, HttpFileServer, HttpServerConfig,
    HttpsPki,
};
use sha2::{Digest, Sha256};

const LIMIT: Duration = Duration::from_secs(60);

async fn run(program: &str, args: &[&str]) -> std::process::Output {
    let child = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(LIMIT, child)
        .await
        .unwrap_or_else(|_| panic!("{program} ran longer than {LIMIT:?}"))
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn psk_store() -> rig_dtls::CredentialStore {
    toml::from_str(&format!(
        "[[psk]]\nendpoint = \"dev-1\"\nidentity = \"dev-1\"\nkey_hex = \"{}\"\n",
        hex(b"fota-secret-1234")
    ))
    .unwrap()
}

async fn coaps_fetch(client: &str) {
    let store = FileStore::with_standard_images();
    let want = store.get("fw-small").unwrap().bytes();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let transport =
        DtlsTransport::from_std(sock, rig_dtls::ServerConfig::new(psk_store())).unwrap();
    let log = transport.log_handle();
    let server = CoapFileServer::start(transport, store, CoapServerConfig::default()).unwrap();
    let url = server.url("fw-small");
    assert!(url.starts_with("coaps://127.0.0.1:"), "{url}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fw.bin");
    let o = run(
        client,
        &[
            "-m",
            "get",
            "-u",
            "dev-1",
            "-k",
            "fota-secret-1234",
            "-b",
            "1024",
            "-B",
            "30",
            "-o",
            out.to_str().unwrap(),
            &url,
        ],
    )
    .await;
    let got = std::fs::read(&out).unwrap_or_else(|e| {
        panic!(
            "{client} wrote nothing ({e}); stderr: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    assert_eq!(got.len(), want.len());
    assert_eq!(Sha256::digest(&got), Sha256::digest(want.as_slice()));
    let s = server.summary();
    assert_eq!(s.bodies, 16, "16 blocks of 1024 for 16 KiB");
    assert_eq!(s.duplicate_bytes, 0);
    assert_eq!(log.lock().unwrap().handshakes, 1);
}

#[tokio::test]
async fn coaps_block2_is_fetched_by_libcoap_openssl() {
    coaps_fetch("coap-client-openssl").await;
}

#[tokio::test]
async fn coaps_block2_is_fetched_by_libcoap_gnutls() {
    coaps_fetch("coap-client-gnutls").await;
}

#[tokio::test]
async fn a_wrong_psk_gets_no_block_and_the_failure_is_logged() {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let transport =
        DtlsTransport::from_std(sock, rig_dtls::ServerConfig::new(psk_store())).unwrap();
    let log = transport.log_handle();
    let server = CoapFileServer::start(
        transport,
        FileStore::with_standard_images(),
        CoapServerConfig::default(),
    )
    .unwrap();
    let url = server.url("fw-small");
    let _ = run(
        "coap-client-openssl",
        &[
            "-m",
            "get",
            "-u",
            "dev-1",
            "-k",
            "wrong-key",
            "-B",
            "5",
            &url,
        ],
    )
    .await;
    assert_eq!(server.summary().bodies, 0);
    let log = log.lock().unwrap().clone();
    assert_eq!(log.handshakes, 0);
    assert!(!log.failures.is_empty(), "{log:?}");
}

fn curl(ca: &Path, range: &str, out: &Path, url: &str) -> Vec<String> {
    [
        "--silent",
        "--show-error",
        "--cacert",
        ca.to_str().unwrap(),
        "--range",
        range,
        "-o",
        out.to_str().unwrap(),
        url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[tokio::test]
async fn https_with_a_certificate_for_the_address_serves_a_range_to_curl() {
    let dir = tempfile::tempdir().unwrap();
    let pki = HttpsPki::generate(dir.path(), &["127.0.0.1".to_string()]).unwrap();
    let store = FileStore::with_standard_images();
    let want = store.get("fw-small").unwrap().bytes();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = HttpFileServer::from_std(
        listener,
        store,
        HttpServerConfig {
            tls: Some(pki.identity.clone()),
            ..HttpServerConfig::default()
        },
    )
    .unwrap();
    let url = server.url("fw-small");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let out = dir.path().join("part.bin");
    let args = curl(&pki.ca_path, "8192-", &out, &url);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run("curl", &args).await;
    assert!(
        o.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got.as_slice(), &want[8192..]);
    let r = server.records();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 206);
    assert_eq!(r[0].body_range, Some((8192, 16384)));
}
