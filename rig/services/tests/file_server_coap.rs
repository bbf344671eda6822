//! CoAP Block2 file server over real UDP on loopback, fetched by a client
//! built on rig-proto's Endpoint: whole image, resume from block N with the
//! same ETag, ETag change detected, 4.04, the client's block size honoured.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use rig_proto::coap::message::request;
use rig_proto::coap::{
    Block2Mode, BlockValue, CoapOption, Config, Endpoint, Event, Method, RequestId, RequestOptions,
    ResponseCode, TransferError,
};
use rig_services::file_server::images::standard_images;
use rig_services::file_server::{CoapFileServer, FileStore, FirmwareImage};
use sha2::{Digest, Sha256};
use tokio::net::UdpSocket;

struct Client {
    sock: UdpSocket,
    ep: Endpoint,
    epoch: tokio::time::Instant,
}

impl Client {
    async fn new() -> Client {
        Client {
            sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            ep: Endpoint::new(Config::default(), 7),
            epoch: tokio::time::Instant::now(),
        }
    }

    fn now(&self) -> rig_proto::time::Instant {
        rig_proto::time::Instant::from_micros(self.epoch.elapsed().as_micros() as u64)
    }

    fn get(&mut self, server: SocketAddr, path: &str, opts: RequestOptions) -> RequestId {
        let mut req = request(Method::Get, true, path);
        // Early negotiation (RFC 7959 §2.4): a block size below the default
        // goes into the first request's Block2 option.
        if let Some(size) = opts.block_size.filter(|s| *s < 1024) {
            BlockValue::new(0, false, size).set_on(&mut req, CoapOption::Block2);
        }
        let now = self.now();
        self.ep.send_request_with(now, server, req, opts).unwrap()
    }

    /// Drives the endpoint until `f` returns true, at most 30 s.
    async fn run(&mut self, mut f: impl FnMut(&mut Endpoint, Event) -> bool) {
        let limit = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut buf = vec![0u8; 2048];
        loop {
            while let Some(t) = self.ep.poll_transmit() {
                self.sock.send_to(&t.payload, t.peer).await.unwrap();
            }
            while let Some(ev) = self.ep.poll_event() {
                if f(&mut self.ep, ev) {
                    while let Some(t) = self.ep.poll_transmit() {
                        self.sock.send_to(&t.payload, t.peer).await.unwrap();
                    }
                    return;
                }
            }
            while let Some(t) = self.ep.poll_transmit() {
                self.sock.send_to(&t.payload, t.peer).await.unwrap();
            }
            assert!(
                tokio::time::Instant::now() < limit,
                "CoAP exchange took over 30 s"
            );
            let wake = self
                .ep
                .poll_timeout()
                .map(|t| self.epoch + Duration::from_micros(t.as_micros()))
                .unwrap_or(limit)
                .min(limit);
            tokio::select! {
                r = self.sock.recv_from(&mut buf) => {
                    let (n, peer) = r.unwrap();
                    let now = self.now();
                    self.ep.handle_datagram(now, peer, &buf[..n]);
                }
                _ = tokio::time::sleep_until(wake) => {
                    let now = self.now();
                    self.ep.handle_timeout(now);
                }
            }
        }
    }
}

fn stream(start: u32, size: Option<usize>) -> RequestOptions {
    RequestOptions {
        block2: Block2Mode::Stream,
        block2_start: start,
        block_size: size,
    }
}

fn image(name: &str) -> FirmwareImage {
    standard_images()
        .into_iter()
        .find(|n| n.name == name)
        .unwrap()
        .image
}

/// Collects (block num, etag, payload) of a streamed fetch until `stop`
/// blocks arrived or the transfer ended.
async fn fetch(
    c: &mut Client,
    server: SocketAddr,
    path: &str,
    opts: RequestOptions,
    stop: Option<usize>,
) -> (
    Vec<(u32, Vec<u8>, Vec<u8>)>,
    Option<ResponseCode>,
    Option<TransferError>,
) {
    let id = c.get(server, path, opts);
    let mut blocks = Vec::new();
    let mut code = None;
    let mut failed = None;
    c.run(|ep, ev| match ev {
        Event::ResponseBlock {
            id: i,
            block,
            response,
            ..
        } if i == id => {
            let etag = response
                .get_first_option(CoapOption::ETag)
                .cloned()
                .unwrap_or_default();
            blocks.push((block.num, etag, response.payload));
            if stop.is_some_and(|s| blocks.len() >= s) {
                ep.cancel(id);
                return true;
            }
            false
        }
        Event::Response {
            id: i, response, ..
        } if i == id => {
            if let rig_proto::coap::MessageClass::Response(c) = response.header.code {
                code = Some(c);
            }
            if let Some(Ok(b)) = BlockValue::from_packet(&response, CoapOption::Block2) {
                let etag = response
                    .get_first_option(CoapOption::ETag)
                    .cloned()
                    .unwrap_or_default();
                blocks.push((b.num, etag, response.payload));
            }
            true
        }
        Event::TransferFailed { id: i, error } if i == id => {
            failed = Some(error);
            true
        }
        Event::RequestTimedOut { id: i } | Event::Reset { id: i } if i == id => {
            panic!("request ended without a response")
        }
        _ => false,
    })
    .await;
    (blocks, code, failed)
}

async fn server() -> (CoapFileServer, FileStore) {
    let store = FileStore::with_standard_images();
    let s = CoapFileServer::bind("127.0.0.1:0".parse().unwrap(), store.clone())
        .await
        .unwrap();
    (s, store)
}

#[tokio::test]
async fn fetches_the_1mib_image_block_by_block_and_it_hashes_to_the_manifest() {
    let (srv, store) = server().await;
    let mut c = Client::new().await;
    let (blocks, code, failed) = fetch(
        &mut c,
        srv.local_addr(),
        "/fw/fw-1mib",
        stream(0, None),
        None,
    )
    .await;
    assert_eq!(failed, None);
    assert_eq!(code, Some(ResponseCode::Content));
    assert_eq!(blocks.len(), 1024);
    assert!(
        blocks
            .iter()
            .enumerate()
            .all(|(i, b)| b.0 == i as u32 && b.2.len() == 1024)
    );
    let etag = store.etag("fw-1mib").unwrap();
    assert!(
        blocks.iter().all(|b| b.1 == etag),
        "one strong ETag on every block"
    );
    let body: Vec<u8> = blocks.into_iter().flat_map(|b| b.2).collect();
    let want = image("fw-1mib");
    assert_eq!(Sha256::digest(&body).as_slice(), want.sha256().as_slice());

    let s = srv.summary();
    assert_eq!(s.requests, 1024);
    assert_eq!(s.bodies, 1024);
    assert_eq!(s.repeats, 0);
    assert_eq!(s.payload_bytes, 1_048_576);
    assert_eq!(s.unique_bytes, 1_048_576);
    let recs = srv.records();
    assert_eq!(recs[0].block, Some(0));
    assert_eq!(recs[0].szx, Some(6));
    assert_eq!(recs[1023].block, Some(1023));
    assert!(!recs[1023].more);
    assert_eq!(recs[5].path, "fw/fw-1mib");
    srv.shutdown().await;
}

#[tokio::test]
async fn resumes_from_block_n_with_the_same_etag_and_counts_the_repeat() {
    let (srv, _store) = server().await;
    let mut c = Client::new().await;
    let addr = srv.local_addr();
    // First half, then "the link is cut": the client stops after 512 blocks.
    let (first, _, _) = fetch(&mut c, addr, "/fw/fw-1mib", stream(0, None), Some(512)).await;
    assert_eq!(first.len(), 512);
    // Resume at the last block it got (a device that re-asks for it).
    let (rest, code, failed) = fetch(&mut c, addr, "/fw/fw-1mib", stream(511, None), None).await;
    assert_eq!((code, failed), (Some(ResponseCode::Content), None));
    assert_eq!(rest.first().unwrap().0, 511);
    assert_eq!(
        rest.first().unwrap().1,
        first[0].1,
        "same ETag after the resume"
    );
    let mut body: Vec<u8> = first.into_iter().flat_map(|b| b.2).collect();
    body.extend(rest.into_iter().skip(1).flat_map(|b| b.2));
    assert_eq!(
        Sha256::digest(&body).as_slice(),
        image("fw-1mib").sha256().as_slice()
    );
    // The client had already asked for block 512 when it stopped (Stream mode
    // requests the next block before handing over the current one), so the
    // server served 0..=512, then 511..=1023: blocks 511 and 512 twice.
    let s = srv.summary();
    assert_eq!(s.bodies, 1026);
    assert_eq!(s.repeats, 2);
    assert_eq!(s.duplicate_bytes, 2048);
    let repeated: Vec<u32> = srv
        .records()
        .iter()
        .filter(|r| r.repeat)
        .filter_map(|r| r.block)
        .collect();
    assert_eq!(repeated, vec![511, 512]);
    assert_eq!(s.unique_bytes, 1_048_576);
}

#[tokio::test]
async fn an_etag_change_mid_download_is_seen_by_the_client() {
    let (srv, store) = server().await;
    let mut c = Client::new().await;
    let addr = srv.local_addr();
    let (first, _, _) = fetch(&mut c, addr, "/fw/fw-1mib", stream(0, None), Some(10)).await;
    let old = first[0].1.clone();
    // The operator publishes a new version while the device is mid-download.
    let new = srv.replace_image("fw-1mib", image("fw-1mib-b"));
    assert_ne!(old, new);
    // The device resumes at block 10: the block carries the new ETag, so a
    // device comparing ETags must restart from zero.
    let (rest, _, _) = fetch(&mut c, addr, "/fw/fw-1mib", stream(10, None), Some(1)).await;
    assert_eq!(rest[0].0, 10);
    assert_eq!(rest[0].1, new);
    assert_eq!(rest[0].2, image("fw-1mib-b").to_vec()[10 * 1024..11 * 1024]);

    // Within one Reassemble transfer, rig-proto's client fails it with
    // EtagMismatch when the ETag changes after about 100 blocks.
    let srv = std::sync::Arc::new(srv);
    let watcher = {
        let srv = srv.clone();
        let store = store.clone();
        tokio::spawn(async move {
            let base = srv.summary().bodies;
            for _ in 0..10_000 {
                if srv.summary().bodies >= base + 100 {
                    store.set_etag("fw-1mib", b"changed!");
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            false
        })
    };
    let id = c.get(addr, "/fw/fw-1mib", RequestOptions::default());
    let mut failed = None;
    c.run(|_, ev| match ev {
        Event::TransferFailed { id: i, error } if i == id => {
            failed = Some(error);
            true
        }
        Event::Response { id: i, .. } if i == id => true,
        _ => false,
    })
    .await;
    assert!(watcher.await.unwrap(), "the ETag was changed mid-transfer");
    assert_eq!(failed, Some(TransferError::EtagMismatch));
    let recs = srv.records();
    let first_new = recs.iter().position(|r| r.etag == b"changed!").unwrap();
    assert!(
        recs[first_new].block.unwrap() > 50,
        "changed mid-transfer, not at the start"
    );
}

#[tokio::test]
async fn unknown_image_is_4_04_and_small_client_blocks_are_honoured() {
    let (srv, _store) = server().await;
    let mut c = Client::new().await;
    let addr = srv.local_addr();
    let (_, code, _) = fetch(&mut c, addr, "/fw/no-such", stream(0, None), None).await;
    assert_eq!(code, Some(ResponseCode::NotFound));
    let (blocks, code, _) = fetch(&mut c, addr, "/fw/fw-small", stream(0, Some(256)), None).await;
    assert_eq!(code, Some(ResponseCode::Content));
    assert_eq!(blocks.len(), 16 * 1024 / 256);
    let body: Vec<u8> = blocks.into_iter().flat_map(|b| b.2).collect();
    assert_eq!(body, image("fw-small").to_vec());
    let recs = srv.records();
    assert_eq!(recs[0].code, "4.04");
    assert!(recs[1..].iter().all(|r| r.szx == Some(4)));
    assert_eq!(srv.summary().errors, 1);
    assert!(srv.url("fw-small").starts_with("coap://127.0.0.1:"));
}

/// The transport seam: the same server over a wrapper transport (what a DTLS
/// adapter will be), which sees every datagram and names the scheme.
struct Counting {
    inner: UdpSocket,
    sent: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl rig_services::file_server::DatagramTransport for Counting {
    async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.inner.recv_from(buf).await
    }
    async fn send_to(&self, buf: &[u8], peer: SocketAddr) -> std::io::Result<usize> {
        self.sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.send_to(buf, peer).await
    }
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
    fn scheme(&self) -> &'static str {
        "coaps"
    }
}

#[tokio::test]
async fn runs_over_any_datagram_transport() {
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t = Counting {
        inner: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        sent: sent.clone(),
    };
    let srv = CoapFileServer::start(
        t,
        FileStore::with_standard_images(),
        rig_services::file_server::CoapServerConfig::default(),
    )
    .unwrap();
    assert!(srv.url("fw-small").starts_with("coaps://127.0.0.1:"));
    let mut c = Client::new().await;
    let (blocks, code, _) = fetch(
        &mut c,
        srv.local_addr(),
        "/fw/fw-small",
        stream(0, None),
        None,
    )
    .await;
    assert_eq!(code, Some(ResponseCode::Content));
    assert_eq!(blocks.len(), 16);
    assert_eq!(sent.load(std::sync::atomic::Ordering::SeqCst), 16);
    srv.shutdown().await;
}
