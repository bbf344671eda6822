//! CoAP(S) Block2 file server: `GET /<name>` (or `/fw/<name>`, the HTTP
//! servers' path) answered through rig-proto's
//! sans-IO [`Endpoint`], which slices the body into Block2 blocks (size from
//! the client's Block2 option, else 1024), adds Size2 to the first block and
//! serves follow-up blocks from its cache. This module only supplies the
//! body and the ETag, and records what went out.
//!
//! Framing: [`CoapFileServer::url`] gives the one-segment path `/<name>`
//! (every Block2 request repeats the Uri-Path, so a `fw` segment costs 3
//! bytes per block) and responses carry no Content-Format: issue 7 item 7
//! holds the pull to 1.02 × the framing floor.
//!
//! Transport seam: the driver runs over any [`DatagramTransport`] (a plain
//! `UdpSocket` here). CoAPS is the same server over rig-dtls's
//! `DtlsServerSocket`, which already has `recv_from`/`send_to` of plaintext;
//! an adapter implementing this trait is all it takes.
//!
//! ETag changes: the endpoint's Block2 cache holds the body it was given and
//! rig-proto offers no call to drop it, so when the [`FileStore`] generation
//! changes (`replace_image`, `set_etag`) the server starts a fresh endpoint.
//! The next block request then reaches this module and is answered from the
//! new version with the new ETag: a client comparing ETags sees the change.
//! Losing the old endpoint's dedup state is harmless for idempotent GETs.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rig_proto::coap::message::{self, response};
use rig_proto::coap::{
    BlockValue, CoapOption, Config, Endpoint, Event, MessageClass, Method, Packet, ResponseCode,
};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::record::{CoapRecord, ServeSummary, SummaryBuilder};
use super::{FileServerError, FileStore, image_name};

/// A datagram transport the CoAP file server runs over: plain UDP, or a DTLS
/// server socket that presents decrypted datagrams per peer.
#[async_trait::async_trait]
pub trait DatagramTransport: Send + Sync + 'static {
    /// Receives one datagram and its sender.
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    /// Sends one datagram to `peer`.
    async fn send_to(&self, buf: &[u8], peer: SocketAddr) -> io::Result<usize>;
    /// The local address.
    fn local_addr(&self) -> io::Result<SocketAddr>;
    /// URI scheme clients use for it (`coap` or `coaps`).
    fn scheme(&self) -> &'static str {
        "coap"
    }
}

#[async_trait::async_trait]
impl DatagramTransport for UdpSocket {
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        UdpSocket::recv_from(self, buf).await
    }
    async fn send_to(&self, buf: &[u8], peer: SocketAddr) -> io::Result<usize> {
        UdpSocket::send_to(self, buf, peer).await
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        UdpSocket::local_addr(self)
    }
}

/// Settings of a [`CoapFileServer`].
#[derive(Debug, Clone)]
pub struct CoapServerConfig {
    /// The message-layer configuration (block size 1024 by default; the
    /// client's smaller Block2 SZX always wins).
    pub coap: Config,
    /// Seed for message ids and jitter.
    pub seed: u64,
    /// Wait this long before each datagram the server sends (a slow link,
    /// so that a test can act in mid-transfer); `None` sends at once.
    pub pace: Option<Duration>,
}

impl Default for CoapServerConfig {
    fn default() -> Self {
        CoapServerConfig {
            coap: Config::default(),
            seed: 0x6669_6c65,
            pace: None,
        }
    }
}

#[derive(Debug, Default)]
struct Log {
    records: Vec<CoapRecord>,
    summary: SummaryBuilder,
}

/// What the last request looked like, to pair responses with it.
#[derive(Debug, Clone)]
struct Seen {
    peer: SocketAddr,
    method: String,
    path: String,
    block: Option<u32>,
}

/// The sans-IO part: an endpoint plus the store, fed datagrams and time.
#[derive(Debug)]
struct Core {
    config: CoapServerConfig,
    endpoint: Endpoint,
    store: FileStore,
    generation: u64,
    restarts: u64,
    log: Arc<Mutex<Log>>,
    started: std::time::Instant,
    out: Vec<(SocketAddr, Vec<u8>)>,
}

fn lock(log: &Mutex<Log>) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

impl Core {
    fn new(config: CoapServerConfig, store: FileStore, log: Arc<Mutex<Log>>) -> Core {
        Core {
            endpoint: Endpoint::new(config.coap.clone(), config.seed),
            generation: store.generation(),
            config,
            store,
            restarts: 0,
            log,
            started: std::time::Instant::now(),
            out: Vec::new(),
        }
    }

    fn handle_datagram(&mut self, now: rig_proto::time::Instant, peer: SocketAddr, bytes: &[u8]) {
        let gen_now = self.store.generation();
        if gen_now != self.generation {
            self.generation = gen_now;
            self.restarts += 1;
            self.endpoint = Endpoint::new(
                self.config.coap.clone(),
                self.config.seed.wrapping_add(self.restarts),
            );
        }
        let seen = message::parse(bytes)
            .ok()
            .and_then(|p| match p.header.code {
                MessageClass::Request(m) => Some(Seen {
                    peer,
                    method: format!("{m:?}").to_uppercase(),
                    path: message::uri_path(&p),
                    block: BlockValue::from_packet(&p, CoapOption::Block2)
                        .and_then(Result::ok)
                        .map(|b| b.num),
                }),
                _ => None,
            });
        self.endpoint.handle_datagram(now, peer, bytes);
        self.drain(now, seen);
    }

    fn handle_timeout(&mut self, now: rig_proto::time::Instant) {
        self.endpoint.handle_timeout(now);
        self.drain(now, None);
    }

    fn answer(&self, request: &Packet) -> Packet {
        let MessageClass::Request(method) = request.header.code else {
            return response(ResponseCode::BadRequest);
        };
        let path = message::uri_path(request);
        let Some(name) = coap_image_name(&path) else {
            return response(ResponseCode::NotFound);
        };
        let Some(img) = self.store.get(name) else {
            let mut r = response(ResponseCode::NotFound);
            r.payload = format!("no image {name:?}").into_bytes();
            return r;
        };
        if method != Method::Get {
            return response(ResponseCode::MethodNotAllowed);
        }
        let mut r = response(ResponseCode::Content);
        r.add_option(CoapOption::ETag, img.etag.clone());
        // No Content-Format: a firmware package is opaque bytes to both
        // ends, and the option would be repeated on every block (2 bytes of
        // 1024, against the framing floor of issue 7 item 7).
        r.payload = img.bytes().as_ref().clone();
        r
    }

    fn drain(&mut self, now: rig_proto::time::Instant, seen: Option<Seen>) {
        while let Some(ev) = self.endpoint.poll_event() {
            if let Event::Request { id, request, .. } = ev {
                let r = self.answer(&request);
                if self.endpoint.respond(now, id, r).is_err() {
                    // Only fails for an expired exchange or an encoding
                    // problem; the client retries or times out.
                    let _ =
                        self.endpoint
                            .respond(now, id, response(ResponseCode::InternalServerError));
                }
            }
        }
        while let Some(t) = self.endpoint.poll_transmit() {
            if let Some(s) = seen.as_ref().filter(|s| s.peer == t.peer) {
                self.record(s, &t.payload);
            }
            self.out.push((t.peer, t.payload));
        }
    }

    fn record(&mut self, seen: &Seen, datagram: &[u8]) {
        let Ok(p) = message::parse(datagram) else {
            return;
        };
        let MessageClass::Response(code) = p.header.code else {
            return;
        };
        let block = BlockValue::from_packet(&p, CoapOption::Block2).and_then(Result::ok);
        let etag = p
            .get_first_option(CoapOption::ETag)
            .cloned()
            .unwrap_or_default();
        let code_byte: u8 = MessageClass::Response(code).into();
        let mut log = lock(&self.log);
        log.summary.summary.requests += 1;
        if code_byte >> 5 >= 4 {
            log.summary.summary.errors += 1;
        }
        let mut repeat = false;
        if code_byte >> 5 == 2 && !p.payload.is_empty() {
            let start = block.map_or(0, |b| b.offset() as u64);
            repeat = log
                .summary
                .body(&seen.path, &etag, start, start + p.payload.len() as u64);
        }
        log.records.push(CoapRecord {
            at: SystemTime::now(),
            since_start: self.started.elapsed(),
            peer: seen.peer,
            method: seen.method.clone(),
            path: seen.path.clone(),
            requested_block: seen.block,
            block: block.map(|b| b.num),
            szx: block.map(|b| b.szx),
            more: block.is_some_and(|b| b.more),
            payload_bytes: p.payload.len(),
            datagram_bytes: datagram.len(),
            etag,
            code: message::code_string(code_byte),
            repeat,
        });
    }
}

/// The image a CoAP path names: `/fw/<name>` like the HTTP servers, or the
/// shorter `/<name>` that [`CoapFileServer::url`] hands out.
fn coap_image_name(path: &str) -> Option<&str> {
    image_name(path).or_else(|| {
        let name = path.trim_start_matches('/');
        (!name.is_empty() && !name.contains('/')).then_some(name)
    })
}

/// A running CoAP Block2 file server. Dropping it stops the server task.
#[derive(Debug)]
pub struct CoapFileServer {
    local: SocketAddr,
    scheme: &'static str,
    store: FileStore,
    log: Arc<Mutex<Log>>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl CoapFileServer {
    /// Binds plain UDP on `addr` and serves `store` with default settings.
    pub async fn bind(
        addr: SocketAddr,
        store: FileStore,
    ) -> Result<CoapFileServer, FileServerError> {
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|source| FileServerError::Io {
                context: format!("bind CoAP file server on {addr}"),
                source,
            })?;
        CoapFileServer::start(socket, store, CoapServerConfig::default())
    }

    /// Serves `store` over `transport` (UDP, or DTLS through an adapter).
    pub fn start<T: DatagramTransport>(
        transport: T,
        store: FileStore,
        config: CoapServerConfig,
    ) -> Result<CoapFileServer, FileServerError> {
        let local = transport
            .local_addr()
            .map_err(|source| FileServerError::Io {
                context: "local address of the CoAP file server".into(),
                source,
            })?;
        let scheme = transport.scheme();
        let log = Arc::new(Mutex::new(Log::default()));
        let core = Core::new(config, store.clone(), log.clone());
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(run(transport, core, rx));
        Ok(CoapFileServer {
            local,
            scheme,
            store,
            log,
            shutdown: tx,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The Package URI of an image: `coap://<addr>/<name>` (`coaps://` over DTLS).
    pub fn url(&self, name: &str) -> String {
        format!("{}://{}/{name}", self.scheme, self.local)
    }

    /// The store it serves (shared).
    pub fn store(&self) -> &FileStore {
        &self.store
    }

    /// Changes the ETag of `name` (same bytes); see the module docs.
    pub fn set_etag(&self, name: &str, etag: &[u8]) -> bool {
        self.store.set_etag(name, etag)
    }

    /// Replaces `name` with a new image (new ETag). Returns the ETag.
    pub fn replace_image(&self, name: &str, image: super::FirmwareImage) -> Vec<u8> {
        self.store.replace_image(name, image)
    }

    /// Every response recorded so far.
    pub fn records(&self) -> Vec<CoapRecord> {
        lock(&self.log).records.clone()
    }

    /// Totals so far.
    pub fn summary(&self) -> ServeSummary {
        lock(&self.log).summary.summary
    }

    /// Forgets records and totals (e.g. between two runs of a case).
    pub fn clear_records(&self) {
        *lock(&self.log) = Log::default();
    }

    /// Stops the server and waits (at most 2 s) for its task to end.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }
}

impl Drop for CoapFileServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn run<T: DatagramTransport>(
    transport: T,
    mut core: Core,
    mut shutdown: watch::Receiver<bool>,
) {
    let epoch = tokio::time::Instant::now();
    let now = move || rig_proto::time::Instant::from_micros(epoch.elapsed().as_micros() as u64);
    let to_tokio = move |t: rig_proto::time::Instant| epoch + Duration::from_micros(t.as_micros());
    let mut buf = vec![0u8; 65_535];
    let mut errors = 0u32;
    let pace = core.config.pace;
    loop {
        for (peer, bytes) in core.out.drain(..) {
            if let Some(p) = pace {
                tokio::time::sleep(p).await;
            }
            // A failed UDP send is the peer's problem; the client retransmits.
            let _ = transport.send_to(&bytes, peer).await;
        }
        let deadline = core.endpoint.poll_timeout().map(to_tokio);
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            received = transport.recv_from(&mut buf) => {
                match received {
                    Ok((n, peer)) => {
                        errors = 0;
                        core.handle_datagram(now(), peer, &buf[..n]);
                    }
                    // ICMP errors of earlier sends surface here on Linux; a
                    // transport that only fails (a stopped DTLS task) ends the loop.
                    Err(_) => {
                        errors += 1;
                        if errors > 1000 {
                            break;
                        }
                        tokio::task::yield_now().await;
                    }
                }
            }
            _ = sleep_until(deadline) => core.handle_timeout(now()),
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
