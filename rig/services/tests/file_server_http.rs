//! HTTP(S) file server over real TCP on loopback, spoken to with raw
//! HTTP/1.1 bytes (and rustls for HTTPS): full GET, HEAD, Range resume with
//! If-Match, 412 after a replace, weak ETags never resume, 416, presigned-URL
//! expiry and signature (403), TLS 1.2 with a client trusting the test CA,
//! cuts recorded, throttling.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rig_services::file_server::images::standard_images;
use rig_services::file_server::{
    FileStore, FirmwareImage, HttpFileServer, HttpServerConfig, Presigner, TlsIdentity,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn parse(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    Resp {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// One request on a fresh connection (`Connection: close`), read to EOF.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    method: &str,
    target: &str,
    host: &str,
    extra: &[(&str, &str)],
) -> Resp {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("response within 30 s")
        .unwrap();
    parse(&raw)
}

async fn get(srv: &HttpFileServer, method: &str, target: &str, extra: &[(&str, &str)]) -> Resp {
    let mut s = TcpStream::connect(srv.local_addr()).await.unwrap();
    exchange(&mut s, method, target, &srv.local_addr().to_string(), extra).await
}

fn image(name: &str) -> FirmwareImage {
    standard_images()
        .into_iter()
        .find(|n| n.name == name)
        .unwrap()
        .image
}

async fn plain(config: HttpServerConfig) -> HttpFileServer {
    HttpFileServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        FileStore::with_standard_images(),
        config,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn full_get_and_head_serve_the_image_with_a_strong_etag() {
    let srv = plain(HttpServerConfig::default()).await;
    let r = get(&srv, "GET", "/fw/fw-1mib", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("1048576"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let etag = r.header("etag").unwrap().to_string();
    assert!(etag.starts_with('"') && etag.len() == 18, "{etag}");
    assert_eq!(
        Sha256::digest(&r.body).as_slice(),
        image("fw-1mib").sha256().as_slice()
    );

    let h = get(&srv, "HEAD", "/fw/fw-1mib", &[]).await;
    assert_eq!(h.status, 200);
    assert_eq!(h.header("etag"), Some(etag.as_str()));
    assert!(h.body.is_empty());
    assert_eq!(get(&srv, "GET", "/fw/nope", &[]).await.status, 404);
    assert_eq!(get(&srv, "DELETE", "/fw/fw-1mib", &[]).await.status, 405);

    let recs = srv.records();
    assert_eq!(recs.len(), 4);
    assert_eq!(
        (recs[0].status, recs[0].bytes_sent, recs[0].cut),
        (200, 1_048_576, false)
    );
    assert_eq!(recs[1].method, "HEAD");
    assert_eq!(recs[1].bytes_sent, 0);
    let s = srv.summary();
    assert_eq!((s.requests, s.bodies, s.errors), (4, 1, 2));
}

#[tokio::test]
async fn range_resume_with_if_match_then_412_after_the_image_changes() {
    let srv = plain(HttpServerConfig::default()).await;
    let etag = get(&srv, "HEAD", "/fw/fw-1mib", &[])
        .await
        .header("etag")
        .unwrap()
        .to_string();
    let want = image("fw-1mib").to_vec();

    let r = get(
        &srv,
        "GET",
        "/fw/fw-1mib",
        &[("Range", "bytes=524288-"), ("If-Match", &etag)],
    )
    .await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some("bytes 524288-1048575/1048576")
    );
    assert_eq!(r.body, want[524_288..]);
    let r = get(&srv, "GET", "/fw/fw-1mib", &[("Range", "bytes=1024-2047")]).await;
    assert_eq!((r.status, r.body.as_slice()), (206, &want[1024..2048]));
    // If-Range with the current strong ETag honours the range.
    let r = get(
        &srv,
        "GET",
        "/fw/fw-1mib",
        &[("Range", "bytes=-16"), ("If-Range", &etag)],
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (206, &want[want.len() - 16..])
    );

    srv.replace_image("fw-1mib", image("fw-1mib-b"));
    let r = get(
        &srv,
        "GET",
        "/fw/fw-1mib",
        &[("Range", "bytes=524288-"), ("If-Match", &etag)],
    )
    .await;
    assert_eq!(r.status, 412);
    assert!(r.body.is_empty());
    // If-Range with the old ETag: the whole new image, from zero.
    let r = get(
        &srv,
        "GET",
        "/fw/fw-1mib",
        &[("Range", "bytes=524288-"), ("If-Range", &etag)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, image("fw-1mib-b").to_vec());
    let last = srv.records().pop().unwrap();
    assert_eq!(last.if_range.as_deref(), Some(etag.as_str()));
    assert_eq!(last.body_range, Some((0, 1_048_576)));
}

#[tokio::test]
async fn a_weak_etag_is_never_used_to_resume() {
    let srv = plain(HttpServerConfig::default()).await;
    assert!(srv.store().set_weak_etag("fw-small", true));
    let etag = get(&srv, "HEAD", "/fw/fw-small", &[])
        .await
        .header("etag")
        .unwrap()
        .to_string();
    assert!(etag.starts_with("W/\""), "{etag}");
    let r = get(
        &srv,
        "GET",
        "/fw/fw-small",
        &[("Range", "bytes=100-"), ("If-Match", &etag)],
    )
    .await;
    assert_eq!(r.status, 412, "If-Match uses strong comparison");
    let r = get(
        &srv,
        "GET",
        "/fw/fw-small",
        &[("Range", "bytes=100-"), ("If-Range", &etag)],
    )
    .await;
    assert_eq!(
        r.status, 200,
        "If-Range with a weak tag never yields a range"
    );
    assert_eq!(r.body, image("fw-small").to_vec());
    // If-None-Match uses weak comparison: 304.
    assert_eq!(
        get(&srv, "GET", "/fw/fw-small", &[("If-None-Match", &etag)])
            .await
            .status,
        304
    );
}

#[tokio::test]
async fn unsatisfiable_range_is_416_with_the_length() {
    let srv = plain(HttpServerConfig::default()).await;
    let r = get(&srv, "GET", "/fw/fw-1mib", &[("Range", "bytes=1048576-")]).await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */1048576"));
    let rec = srv.records().pop().unwrap();
    assert_eq!(rec.range.as_deref(), Some("bytes=1048576-"));
    assert!(rec.reason.unwrap().contains("outside"));
}

#[tokio::test]
async fn presigned_urls_expire_and_bad_signatures_are_403() {
    let srv = plain(HttpServerConfig {
        presign: Some(Presigner::default()),
        ..Default::default()
    })
    .await;
    let target = |url: &str| {
        url.split_once(&srv.local_addr().to_string())
            .unwrap()
            .1
            .to_string()
    };
    let ok = srv.presigned_url("fw-small", 3600);
    assert!(
        (900..1400).contains(&ok.len()),
        "realistic length: {}",
        ok.len()
    );
    let r = get(&srv, "GET", &target(&ok), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, image("fw-small").to_vec());

    let old = srv.presigned_url_at(
        "fw-small",
        SystemTime::now() - Duration::from_secs(7200),
        3600,
    );
    let r = get(&srv, "GET", &target(&old), &[]).await;
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("Request has expired"));

    let mut bad = target(&ok);
    let last = bad.pop().unwrap();
    bad.push(if last == '0' { '1' } else { '0' });
    let r = get(&srv, "GET", &bad, &[]).await;
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("SignatureDoesNotMatch"));
    // Same signature on another image's path.
    let other = target(&ok).replace("fw-small", "fw-1mib");
    assert_eq!(get(&srv, "GET", &other, &[]).await.status, 403);
    assert_eq!(get(&srv, "GET", "/fw/fw-small", &[]).await.status, 403);

    // URLs from the platform emulator's job documents are accepted too.
    let date = rig_services::file_server::http::amz_date(SystemTime::now());
    let url = rig_services::mqtt::presigned_url(
        &srv.local_addr().to_string(),
        "fw/fw-small",
        &date,
        600,
        500,
    );
    assert_eq!(get(&srv, "GET", &target(&url), &[]).await.status, 200);
    let reasons: Vec<_> = srv.records().into_iter().filter_map(|r| r.reason).collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
}

#[tokio::test]
async fn https_with_tls_1_2_and_a_client_trusting_the_test_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = rig_services::mqtt::pki::TestPki::generate(
        dir.path(),
        rig_services::mqtt::pki::PkiProfile::Protocol,
        &[],
    )
    .unwrap();
    let _ = pki;
    let id = TlsIdentity::from_files(
        &dir.path().join("server.pem"),
        &dir.path().join("server.key"),
    )
    .unwrap();
    let srv = plain(HttpServerConfig {
        tls: Some(id),
        ..Default::default()
    })
    .await;
    assert!(srv.url("fw-1mib").starts_with("https://127.0.0.1:"));

    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    for c in tokio_rustls::rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let cfg = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();

    let tcp = TcpStream::connect(srv.local_addr()).await.unwrap();
    let mut tls = tokio::time::timeout(WAIT, connector.connect(name.clone(), tcp))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(tokio_rustls::rustls::ProtocolVersion::TLSv1_2)
    );
    let r = exchange(&mut tls, "GET", "/fw/fw-1mib", "localhost", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        Sha256::digest(&r.body).as_slice(),
        image("fw-1mib").sha256().as_slice()
    );

    // Cut mid-body: read 100 KiB of the 64 MiB image (more than any socket
    // buffer holds) then drop the connection.
    let tcp = TcpStream::connect(srv.local_addr()).await.unwrap();
    let mut tls = tokio::time::timeout(WAIT, connector.connect(name, tcp))
        .await
        .unwrap()
        .unwrap();
    tls.write_all(b"GET /fw/fw-oversized HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut got = vec![0u8; 100 * 1024];
    tokio::time::timeout(WAIT, tls.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    drop(tls);
    let mut cut = None;
    for _ in 0..100 {
        if let Some(r) = srv.records().get(1).filter(|r| r.cut) {
            cut = Some(r.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cut = cut.expect("the cut was recorded within 5 s");
    assert!(
        cut.bytes_sent < 64 << 20 && cut.bytes_sent >= 90 * 1024,
        "{}",
        cut.bytes_sent
    );
    assert_eq!(srv.summary().cut_bodies, 1);
}

#[tokio::test]
async fn server_side_cut_and_throttling() {
    let srv = plain(HttpServerConfig {
        throttle_bytes_per_s: Some(64 * 1024),
        chunk_size: Some(4096),
        ..Default::default()
    })
    .await;
    let t0 = tokio::time::Instant::now();
    let r = get(&srv, "GET", "/fw/fw-small", &[]).await;
    assert_eq!(r.body, image("fw-small").to_vec());
    // 16 KiB at 64 KiB/s: four 4 KiB chunks with 62.5 ms pauses between them.
    assert!(
        t0.elapsed() >= Duration::from_millis(180),
        "{:?}",
        t0.elapsed()
    );

    srv.cut_next_body_after(10_000);
    let mut s = TcpStream::connect(srv.local_addr()).await.unwrap();
    s.write_all(b"GET /fw/fw-small HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .unwrap();
    let r = parse(&raw);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 10_000);
    let rec = srv.records().pop().unwrap();
    assert!(rec.cut);
    assert_eq!(rec.bytes_sent, 10_000);
    // The resume: Range from where it stopped.
    let r = get(&srv, "GET", "/fw/fw-small", &[("Range", "bytes=10000-")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, image("fw-small").to_vec()[10_000..]);
    let s = srv.summary();
    assert_eq!(
        s.duplicate_bytes,
        10_000 + 6_384,
        "the whole first fetch was repeated by the second"
    );

    // Unthrottled, the bytes before a cut still reach the client (hyper
    // drops what it buffered when a body fails at once), and a throttle set
    // later applies to the next body.
    let fast = plain(HttpServerConfig::default()).await;
    fast.cut_next_body_after(10_000);
    let mut s = TcpStream::connect(fast.local_addr()).await.unwrap();
    s.write_all(b"GET /fw/fw-small HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .unwrap();
    let r = parse(&raw);
    assert_eq!((r.status, r.body.len()), (200, 10_000));
    // 1 MiB at 8 MiB/s: 64 chunks of 16 KiB, 2 ms apart.
    fast.set_throttle(Some(8 * 1024 * 1024));
    let t0 = tokio::time::Instant::now();
    let r = get(&fast, "GET", "/fw/fw-1mib", &[]).await;
    assert_eq!(r.body.len(), 1_048_576);
    assert!(
        t0.elapsed() >= Duration::from_millis(120),
        "{:?}",
        t0.elapsed()
    );
}
