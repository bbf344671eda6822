//! The pull: downloading a Package URI over CoAP Block2 (`coap://`,
//! `coaps://`) or HTTP(S) (`http://`, `https://`) into the resume store,
//! with resume, retries and the package checks.
//!
//! One download is one tokio task ([`pull`]) that reports [`PullEvent`]s on
//! a channel; it decides the Update Result of a failed download, and nothing
//! else (Object 5's state machine stays with [`super::Fota`]).
//!
//! Resume rules (the same for every scheme):
//! - The bytes already in the image file are kept only when they came with a
//!   strong entity tag that the resume store recorded. Then a CoAP pull asks
//!   for the next block (`Block2` num = offset / block size) and checks the
//!   ETag of every block; an HTTP pull sends `Range: bytes=<offset>-` with
//!   `If-Match: <etag>`.
//! - A changed ETag (CoAP: a different ETag option; HTTP: 412) restarts from
//!   zero (`fota restarted reason=etag-changed`). A weak ETag (`W/"…"`) is
//!   never used to resume (`reason=weak-etag`).
//! - A lost connection (no datagram or body byte for the idle timeout, a
//!   refused or reset connection, a cut body) is retried up to `retries`
//!   times with an exponential backoff (1 s doubling to 32 s, divided by the
//!   time scale); an attempt that made progress resets the count. When they
//!   are spent, the download fails with Update Result 4.
//! - With `resume = false` (the MQTT `https` delivery, which copies the
//!   study's SDK client) every retry starts from zero.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rig_proto::coap::{
    self, Block2Mode, CoapOption, Endpoint, Event, Method, Packet, RequestOptions, ResponseCode,
    message,
};
use rig_proto::fota::UpdateResult;
use rumqttc::tokio_rustls::{TlsConnector, rustls};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc::UnboundedSender;

use super::package::{self, HEADER_LEN, Header, Rejection};
use super::resume::{self, ResumeStore};

/// How a download is done.
#[derive(Clone)]
pub struct PullConfig {
    /// CoAP Block2 size (16..=1024).
    pub block_size: usize,
    /// The largest package the agent stores (bytes).
    pub max_size: u64,
    /// Retries after a lost connection.
    pub retries: u32,
    /// Divides the retry backoff.
    pub time_scale: f64,
    /// No byte for this long: the connection is lost.
    pub idle_timeout: Duration,
    /// Resume a cut download (false: always start over).
    pub resume: bool,
    /// CA certificates (PEM) trusted for `https://`.
    pub trust: Option<PathBuf>,
    /// DTLS credentials for `coaps://` (the agent's own).
    pub dtls: Option<rig_dtls::ClientConfig>,
}

impl std::fmt::Debug for PullConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullConfig")
            .field("block_size", &self.block_size)
            .field("max_size", &self.max_size)
            .field("retries", &self.retries)
            .field("resume", &self.resume)
            .finish_non_exhaustive()
    }
}

/// What a download reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullEvent {
    /// Bytes of the image held so far (at most every 10%).
    Progress(u64),
    /// The download continues from this offset (after a restart or a retry).
    Resumed(u64),
    /// The download starts over from zero, and why.
    Restarted(String),
    /// The entity tag of the image (to persist for a later resume).
    Etag(String),
    /// A log line.
    Log(String),
    /// The whole file is in the image file.
    Complete,
    /// The download failed with this result.
    Failed(Rejection),
    /// An MQTT message to publish at QoS 0 (topic, payload): the requests
    /// of an MQTT stream download (`stream.rs`).
    Publish(String, Vec<u8>),
}

/// A parsed Package URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageUri {
    /// `coap`, `coaps`, `http` or `https`.
    pub scheme: String,
    /// Host as written (without brackets).
    pub host: String,
    /// Port (the scheme's default if absent).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path_and_query: String,
}

fn invalid(reason: String) -> Rejection {
    Rejection {
        result: UpdateResult::InvalidUri,
        reason,
    }
}

impl PackageUri {
    /// Parses a URI: an unknown scheme is Result 9, anything else malformed Result 7.
    pub fn parse(uri: &str) -> Result<PackageUri, Rejection> {
        let Some((scheme, rest)) = uri.split_once("://") else {
            return Err(invalid(format!("`{uri}` is not a URI (no scheme://)")));
        };
        let port = match scheme {
            "coap" => 5683,
            "coaps" => 5684,
            "http" => 80,
            "https" => 443,
            other => {
                return Err(Rejection {
                    result: UpdateResult::UnsupportedProtocol,
                    reason: format!(
                        "scheme `{other}` (this agent pulls over coap, coaps, http and https)"
                    ),
                });
            }
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| invalid(format!("`{uri}`: unclosed `[` in the host")))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p
                    .parse()
                    .map_err(|_| invalid(format!("`{uri}`: bad port `{p}`")))?,
                None if after.is_empty() => port,
                None => return Err(invalid(format!("`{uri}`: junk after the host"))),
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    p.parse()
                        .map_err(|_| invalid(format!("`{uri}`: bad port `{p}`")))?,
                ),
                None => (authority.to_string(), port),
            }
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(invalid(format!("`{uri}`: no host")));
        }
        Ok(PackageUri {
            scheme: scheme.to_string(),
            host,
            port,
            path_and_query: path,
        })
    }

    /// The path segments (for CoAP Uri-Path), percent-decoding left out.
    fn path_segments(&self) -> Vec<&str> {
        let path = self.path_and_query.split('?').next().unwrap_or("");
        path.split('/').filter(|s| !s.is_empty()).collect()
    }

    /// The query parts (for CoAP Uri-Query).
    fn queries(&self) -> Vec<&str> {
        match self.path_and_query.split_once('?') {
            Some((_, q)) => q.split('&').filter(|s| !s.is_empty()).collect(),
            None => Vec::new(),
        }
    }

    /// The last path segment (PkgName).
    pub fn file_name(&self) -> String {
        self.path_segments()
            .last()
            .copied()
            .unwrap_or("")
            .to_string()
    }

    /// The server's address (resolved).
    pub fn addr(&self) -> Result<SocketAddr, Rejection> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| invalid(format!("cannot resolve `{}`: {e}", self.host)))?
            .next()
            .ok_or_else(|| invalid(format!("`{}` resolves to no address", self.host)))
    }
}

/// Why one attempt ended without the whole file.
enum AttemptEnd {
    /// The connection was lost; `progress` if bytes arrived first.
    Lost { why: String, progress: bool },
    /// Start over from zero now (ETag changed), without counting a retry.
    Restart(String),
    /// The download failed for good.
    Failed(Rejection),
}

/// The state shared by the attempts of one download.
struct Download {
    store: ResumeStore,
    cfg: PullConfig,
    events: UnboundedSender<PullEvent>,
    /// The entity tag the image file's bytes belong to.
    etag: Option<String>,
    /// Bytes in the image file.
    have: u64,
    /// Whole size, once known.
    total: Option<u64>,
    /// Next progress report at this many tenths.
    next_tenth: u64,
    header_checked: bool,
    file: Option<std::fs::File>,
}

impl Download {
    fn emit(&self, e: PullEvent) {
        let _ = self.events.send(e);
    }

    fn log(&self, line: String) {
        self.emit(PullEvent::Log(line));
    }

    /// Drops everything received and starts over.
    fn restart(&mut self, reason: &str) -> Result<(), Rejection> {
        self.file = None;
        self.store.truncate_image(0).map_err(storage)?;
        self.have = 0;
        self.etag = None;
        self.header_checked = false;
        self.next_tenth = 1;
        self.emit(PullEvent::Restarted(reason.to_string()));
        Ok(())
    }

    /// Keeps `len` bytes (a resume point).
    fn keep(&mut self, len: u64) -> Result<(), Rejection> {
        self.file = None;
        self.store.truncate_image(len).map_err(storage)?;
        self.have = len;
        self.header_checked = false;
        self.next_tenth = 1;
        if len >= HEADER_LEN as u64 {
            self.check_header()?;
        }
        Ok(())
    }

    fn set_etag(&mut self, etag: String) {
        if self.etag.as_deref() != Some(&etag) {
            self.etag = Some(etag.clone());
            self.emit(PullEvent::Etag(etag));
        }
    }

    /// The announced size (Size2, Content-Length + offset) is checked against storage.
    fn announce(&mut self, total: u64) -> Result<(), Rejection> {
        if total > self.cfg.max_size {
            return Err(Rejection {
                result: UpdateResult::NotEnoughFlash,
                reason: format!(
                    "the server announces {total} bytes, the storage holds {}",
                    self.cfg.max_size
                ),
            });
        }
        self.total.get_or_insert(total);
        Ok(())
    }

    fn check_header(&mut self) -> Result<(), Rejection> {
        let bytes = self.store.read_image().map_err(storage)?;
        let h = Header::check(&bytes[..HEADER_LEN.min(bytes.len())], self.cfg.max_size)?;
        self.total = Some(h.total_len());
        self.header_checked = true;
        Ok(())
    }

    /// Appends received bytes; checks the header once 64 bytes are in.
    fn append(&mut self, bytes: &[u8]) -> Result<(), Rejection> {
        if bytes.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(self.store.append().map_err(storage)?);
        }
        if let Some(f) = self.file.as_mut() {
            resume::append_bytes(f, bytes).map_err(storage)?;
        }
        self.have += bytes.len() as u64;
        if self.have > self.cfg.max_size {
            return Err(Rejection {
                result: UpdateResult::NotEnoughFlash,
                reason: format!("more than {} bytes arrived", self.cfg.max_size),
            });
        }
        if !self.header_checked && self.have >= HEADER_LEN as u64 {
            self.check_header()?;
        }
        if let Some(total) = self.total.filter(|t| *t > 0) {
            let tenths = self.have.saturating_mul(10) / total;
            if tenths >= self.next_tenth {
                self.next_tenth = tenths + 1;
                self.emit(PullEvent::Progress(self.have));
            }
        }
        Ok(())
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let secs = (1u64 << attempt.min(5)).min(32);
        Duration::from_secs(secs).div_f64(self.cfg.time_scale.max(1.0))
    }
}

fn storage(e: String) -> Rejection {
    Rejection {
        result: UpdateResult::NotEnoughFlash,
        reason: format!("storage: {e}"),
    }
}

fn is_weak(etag: &str) -> bool {
    etag.starts_with("W/")
}

/// Downloads `uri` into `store`'s image file. `etag` is the entity tag the
/// bytes already in the file belong to (from the resume store), if any.
/// Reports on `events`; the last event is [`PullEvent::Complete`] or
/// [`PullEvent::Failed`].
pub async fn pull(
    uri: String,
    cfg: PullConfig,
    store: ResumeStore,
    etag: Option<String>,
    events: UnboundedSender<PullEvent>,
) {
    let mut d = Download {
        have: store.image_len(),
        store,
        cfg,
        events,
        etag,
        total: None,
        next_tenth: 1,
        header_checked: false,
        file: None,
    };
    let end = match PackageUri::parse(&uri) {
        Ok(u) => run(&mut d, &u).await,
        Err(r) => Err(r),
    };
    d.file = None;
    match end {
        Ok(()) => d.emit(PullEvent::Complete),
        Err(r) => d.emit(PullEvent::Failed(r)),
    }
}

async fn run(d: &mut Download, u: &PackageUri) -> Result<(), Rejection> {
    let addr = u.addr()?;
    let coap = matches!(u.scheme.as_str(), "coap" | "coaps");
    if u.scheme == "coaps" && d.cfg.dtls.is_none() {
        return Err(Rejection {
            result: UpdateResult::UnsupportedProtocol,
            reason: "coaps:// needs DTLS credentials (--security psk|rpk|x509)".into(),
        });
    }
    let mut failures = 0u32;
    let mut first = true;
    loop {
        // Where this attempt starts.
        let resumable =
            d.cfg.resume && d.have > 0 && d.etag.as_deref().is_some_and(|e| !is_weak(e));
        if d.have > 0 && !resumable {
            let why = if !d.cfg.resume {
                "no-resume"
            } else if d.etag.as_deref().is_some_and(is_weak) {
                "weak-etag"
            } else {
                "no-etag"
            };
            d.restart(why)?;
        } else if resumable {
            let keep = if coap {
                let bs = d.cfg.block_size as u64;
                d.have / bs * bs
            } else {
                d.have
            };
            d.keep(keep)?;
            if keep > 0 {
                d.emit(PullEvent::Resumed(keep));
            } else {
                d.etag = None;
            }
        }
        if first {
            first = false;
        }
        let end = if coap {
            coap_attempt(d, u, addr).await
        } else {
            http_attempt(d, u, addr).await
        };
        match end {
            Ok(()) => return Ok(()),
            Err(AttemptEnd::Failed(r)) => return Err(r),
            Err(AttemptEnd::Restart(why)) => d.restart(&why)?,
            Err(AttemptEnd::Lost { why, progress }) => {
                if progress {
                    failures = 0;
                }
                failures += 1;
                if failures > d.cfg.retries {
                    return Err(Rejection {
                        result: UpdateResult::ConnectionLost,
                        reason: format!(
                            "{why} (gave up after {} retries, {} of the image received)",
                            d.cfg.retries, d.have
                        ),
                    });
                }
                let wait = d.backoff(failures - 1);
                d.log(format!(
                    "download: {why}; retry {failures}/{} in {:.1} s",
                    d.cfg.retries,
                    wait.as_secs_f64()
                ));
                tokio::time::sleep(wait).await;
            }
        }
    }
}

// ---- CoAP Block2 -----------------------------------------------------------

/// The datagram pipe of a CoAP pull.
enum Pipe {
    Udp(UdpSocket),
    Dtls(rig_dtls::DtlsClientSocket),
}

impl Pipe {
    async fn send(&self, b: &[u8]) -> Result<(), String> {
        match self {
            Pipe::Udp(s) => s.send(b).await.map(drop).map_err(|e| e.to_string()),
            Pipe::Dtls(s) => s.send(b).await.map(drop).map_err(|e| e.to_string()),
        }
    }
    async fn recv(&self, b: &mut [u8]) -> Result<usize, String> {
        match self {
            Pipe::Udp(s) => s.recv(b).await.map_err(|e| e.to_string()),
            Pipe::Dtls(s) => s.recv(b).await.map_err(|e| e.to_string()),
        }
    }
}

async fn open_pipe(d: &Download, u: &PackageUri, addr: SocketAddr) -> Result<Pipe, String> {
    let bind: SocketAddr = if addr.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    if u.scheme == "coaps" {
        let mut c = d
            .cfg
            .dtls
            .clone()
            .ok_or("coaps:// needs DTLS credentials")?;
        if let rig_dtls::ClientCredentials::Certificate { server_name, .. } = &mut c.credentials {
            *server_name = Some(u.host.clone());
        }
        let ctx = rig_dtls::ClientContext::new(c).map_err(|e| e.to_string())?;
        let s = tokio::time::timeout(
            d.cfg.idle_timeout.max(Duration::from_secs(5)),
            rig_dtls::DtlsClientSocket::connect(bind, addr, Arc::new(ctx)),
        )
        .await
        .map_err(|_| format!("DTLS handshake with {addr} timed out"))?
        .map_err(|e| format!("DTLS handshake with {addr}: {e}"))?;
        d.log(format!("download: DTLS session with {addr}"));
        Ok(Pipe::Dtls(s))
    } else {
        let s = UdpSocket::bind(bind)
            .await
            .map_err(|e| format!("bind {bind}: {e}"))?;
        // Connected, so that an ICMP port unreachable shows up as an error.
        s.connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        Ok(Pipe::Udp(s))
    }
}

fn coap_request(u: &PackageUri) -> Packet {
    let mut p = message::request(Method::Get, true, "");
    for seg in u.path_segments() {
        p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    for q in u.queries() {
        message::add_uri_query(&mut p, q);
    }
    p
}

fn now_at(epoch: tokio::time::Instant) -> rig_proto::time::Instant {
    rig_proto::time::Instant::from_micros(epoch.elapsed().as_micros() as u64)
}

/// One CoAP attempt: a GET from the next block to the end.
async fn coap_attempt(
    d: &mut Download,
    u: &PackageUri,
    addr: SocketAddr,
) -> Result<(), AttemptEnd> {
    let lost = |why: String, progress: bool| AttemptEnd::Lost { why, progress };
    let pipe = open_pipe(d, u, addr).await.map_err(|w| lost(w, false))?;
    let bs = d.cfg.block_size;
    let start_have = d.have;
    let resumed_etag = if d.have > 0 { d.etag.clone() } else { None };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_nanos() as u64)
        .unwrap_or(7);
    let config = coap::Config {
        preferred_block_size: bs,
        // An empty token (RFC 7252 §5.3.1): one request is in flight at a
        // time on a connected socket (or DTLS session) of its own, so the
        // Message ID matches the piggybacked answer. Eight token bytes each
        // way are 16 of the 37 bytes per block the pull used to spend above
        // the framing floor (issue 7 item 7).
        token_len: 0,
        max_body_size: usize::try_from(d.cfg.max_size)
            .unwrap_or(usize::MAX)
            .saturating_add(4096),
        ..coap::Config::default()
    };
    let mut ep = Endpoint::new(config, seed);
    let epoch = tokio::time::Instant::now();
    let opts = RequestOptions {
        block2: Block2Mode::Stream,
        block2_start: u32::try_from(d.have / bs as u64).unwrap_or(u32::MAX),
        block_size: Some(bs),
    };
    let id = ep
        .send_request_with(now_at(epoch), addr, coap_request(u), opts)
        .map_err(|e| AttemptEnd::Failed(invalid(format!("cannot build the GET: {e}"))))?;
    let mut buf = vec![0u8; 2048];
    let mut last_rx = tokio::time::Instant::now();
    let mut first_block = true;
    loop {
        while let Some(t) = ep.poll_transmit() {
            if let Err(e) = pipe.send(&t.payload).await {
                return Err(lost(format!("send to {addr}: {e}"), d.have > start_have));
            }
        }
        while let Some(ev) = ep.poll_event() {
            let (response, last) = match ev {
                Event::ResponseBlock {
                    id: i, response, ..
                } if i == id => (response, false),
                Event::Response {
                    id: i, response, ..
                } if i == id => (response, true),
                Event::RequestTimedOut { .. } => {
                    return Err(lost(
                        format!("no answer from {addr} (CoAP timeout)"),
                        d.have > start_have,
                    ));
                }
                Event::Reset { .. } => {
                    return Err(AttemptEnd::Failed(invalid(format!(
                        "{addr} answered the GET with a Reset"
                    ))));
                }
                Event::TransferFailed { error, .. } => {
                    return match error {
                        coap::TransferError::EtagMismatch => {
                            Err(AttemptEnd::Restart("etag-changed".into()))
                        }
                        other => Err(lost(
                            format!("block-wise transfer: {other}"),
                            d.have > start_have,
                        )),
                    };
                }
                _ => continue,
            };
            let code = message::response_code(&response);
            if code != Some(ResponseCode::Content) {
                let c = message::code_string(u8::from(response.header.code));
                return Err(match c.as_str() {
                    s if s.starts_with("5.") => lost(format!("{addr} answered {s}"), false),
                    "4.02" if d.have > 0 => AttemptEnd::Restart("bad-block".into()),
                    s => AttemptEnd::Failed(invalid(format!("{addr} answered the GET with {s}"))),
                });
            }
            let etag = response
                .get_option(CoapOption::ETag)
                .and_then(|l| l.front())
                .map(|e| package::hex(e));
            if first_block {
                first_block = false;
                if let (Some(old), Some(new)) = (&resumed_etag, &etag)
                    && old != new
                {
                    d.log(format!("download: ETag {old} changed to {new}"));
                    return Err(AttemptEnd::Restart("etag-changed".into()));
                }
                if let Some(size) =
                    message::uint_option(&response, CoapOption::Size2).and_then(Result::ok)
                {
                    d.announce(u64::from(size)).map_err(AttemptEnd::Failed)?;
                }
            }
            if let Some(e) = etag {
                d.set_etag(e);
            }
            let offset = match coap::BlockValue::from_packet(&response, CoapOption::Block2) {
                Some(Ok(b)) => b.offset() as u64,
                Some(Err(e)) => return Err(lost(format!("bad Block2 option: {e:?}"), false)),
                None => 0,
            };
            if offset == d.have {
                d.append(&response.payload).map_err(AttemptEnd::Failed)?;
            } else if offset > d.have {
                return Err(lost(
                    format!("block at {offset} but {} bytes held", d.have),
                    d.have > start_have,
                ));
            }
            if last {
                return Ok(());
            }
        }
        let deadline = ep
            .poll_timeout()
            .map(|t| epoch + Duration::from_micros(t.as_micros()));
        let idle = last_rx + d.cfg.idle_timeout;
        tokio::select! {
            r = pipe.recv(&mut buf) => match r {
                Ok(n) => {
                    last_rx = tokio::time::Instant::now();
                    ep.handle_datagram(now_at(epoch), addr, &buf[..n]);
                }
                Err(e) => return Err(lost(format!("receive from {addr}: {e}"), d.have > start_have)),
            },
            () = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => ep.handle_timeout(now_at(epoch)),
            () = tokio::time::sleep_until(idle) => {
                return Err(lost(
                    format!("nothing from {addr} for {:.1} s", d.cfg.idle_timeout.as_secs_f64()),
                    d.have > start_have,
                ));
            }
        }
    }
}

// ---- HTTP(S) ---------------------------------------------------------------

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// The TLS client configuration for `https://`: trust the CA file, with
/// aws-lc-rs as the explicit provider (see common2: never rely on a default).
pub fn https_config(trust: &std::path::Path) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(trust).map_err(|e| format!("{}: {e}", trust.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&pem) {
        let c = c.map_err(|e| format!("{}: {e}", trust.display()))?;
        roots
            .add(c)
            .map_err(|e| format!("{}: {e}", trust.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no certificate", trust.display()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

async fn connect_http(
    d: &Download,
    u: &PackageUri,
    addr: SocketAddr,
) -> Result<Box<dyn Io>, AttemptEnd> {
    let lost = |why: String| AttemptEnd::Lost {
        why,
        progress: false,
    };
    let limit = d.cfg.idle_timeout;
    let tcp = tokio::time::timeout(limit, TcpStream::connect(addr))
        .await
        .map_err(|_| lost(format!("connecting to {addr} timed out")))?
        .map_err(|e| lost(format!("connect {addr}: {e}")))?;
    if u.scheme != "https" {
        return Ok(Box::new(tcp));
    }
    let trust = d.cfg.trust.clone().ok_or_else(|| {
        AttemptEnd::Failed(Rejection {
            result: UpdateResult::UnsupportedProtocol,
            reason: "https:// needs a trusted CA (--fota-ca)".into(),
        })
    })?;
    let tls = https_config(&trust).map_err(|e| {
        AttemptEnd::Failed(Rejection {
            result: UpdateResult::UnsupportedProtocol,
            reason: format!("--fota-ca {e}"),
        })
    })?;
    let name = rustls::pki_types::ServerName::try_from(u.host.clone())
        .map_err(|e| AttemptEnd::Failed(invalid(format!("host `{}`: {e}", u.host))))?;
    let s = tokio::time::timeout(limit, TlsConnector::from(Arc::new(tls)).connect(name, tcp))
        .await
        .map_err(|_| lost(format!("TLS handshake with {addr} timed out")))?
        .map_err(|e| {
            // A certificate the agent does not trust is not worth retrying.
            if e.to_string().contains("certificate") {
                AttemptEnd::Failed(invalid(format!("TLS with {addr}: {e}")))
            } else {
                lost(format!("TLS handshake with {addr}: {e}"))
            }
        })?;
    Ok(Box::new(s))
}

fn header<'a>(r: &'a hyper::Response<hyper::body::Incoming>, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

/// One HTTP attempt: a GET (with Range + If-Match when resuming) to the end.
async fn http_attempt(
    d: &mut Download,
    u: &PackageUri,
    addr: SocketAddr,
) -> Result<(), AttemptEnd> {
    let lost = |why: String, progress: bool| AttemptEnd::Lost { why, progress };
    let io = connect_http(d, u, addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| lost(format!("HTTP handshake with {addr}: {e}"), false))?;
    let conn_task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let _abort = AbortOnDrop(conn_task);
    let host = if u.host.contains(':') {
        format!("[{}]:{}", u.host, u.port)
    } else {
        format!("{}:{}", u.host, u.port)
    };
    let mut req = hyper::Request::builder()
        .method("GET")
        .uri(u.path_and_query.as_str())
        .header(hyper::header::HOST, host);
    let start = d.have;
    if start > 0
        && let Some(etag) = &d.etag
    {
        req = req
            .header(hyper::header::RANGE, format!("bytes={start}-"))
            .header(hyper::header::IF_MATCH, etag.as_str());
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| AttemptEnd::Failed(invalid(format!("cannot build the request: {e}"))))?;
    let resp = tokio::time::timeout(d.cfg.idle_timeout, sender.send_request(req))
        .await
        .map_err(|_| lost(format!("no answer from {addr}"), false))?
        .map_err(|e| lost(format!("request to {addr}: {e}"), false))?;
    let status = resp.status().as_u16();
    let etag = header(&resp, "etag").map(str::to_string);
    let length: Option<u64> = header(&resp, "content-length").and_then(|v| v.parse().ok());
    match status {
        200 => {
            if start > 0 {
                d.log("download: the server ignored the Range; starting over".into());
                d.restart("range-ignored").map_err(AttemptEnd::Failed)?;
            }
        }
        206 => {
            let from = header(&resp, "content-range")
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.parse::<u64>().ok());
            if from != Some(start) {
                return Err(AttemptEnd::Restart("bad-content-range".into()));
            }
        }
        412 => return Err(AttemptEnd::Restart("etag-changed".into())),
        416 => return Err(AttemptEnd::Restart("range-not-satisfiable".into())),
        s if s >= 500 => return Err(lost(format!("{addr} answered {s}"), false)),
        s => {
            return Err(AttemptEnd::Failed(invalid(format!(
                "{addr} answered {s} for {}",
                u.path_and_query
            ))));
        }
    }
    match etag {
        Some(e) => d.set_etag(e),
        None => d.etag = None,
    }
    if let Some(len) = length {
        d.announce(d.have + len).map_err(AttemptEnd::Failed)?;
    }
    let expected = length.map(|l| d.have + l);
    let from = d.have;
    let mut body = resp.into_body();
    loop {
        let frame = tokio::time::timeout(d.cfg.idle_timeout, body.frame())
            .await
            .map_err(|_| {
                lost(
                    format!(
                        "nothing from {addr} for {:.1} s",
                        d.cfg.idle_timeout.as_secs_f64()
                    ),
                    d.have > from,
                )
            })?;
        match frame {
            None => break,
            Some(Err(e)) => return Err(lost(format!("body from {addr}: {e}"), d.have > from)),
            Some(Ok(f)) => {
                if let Some(data) = f.data_ref() {
                    d.append(data).map_err(AttemptEnd::Failed)?;
                }
            }
        }
    }
    match expected {
        Some(n) if d.have < n => Err(lost(
            format!("the body from {addr} ended at {} of {n} bytes", d.have),
            d.have > from,
        )),
        _ => Ok(()),
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_with_results_for_each_defect() {
        let u = PackageUri::parse("coap://127.0.0.1:5690/fw/a?x=1&y").unwrap();
        assert_eq!((u.scheme.as_str(), u.port), ("coap", 5690));
        assert_eq!(u.path_segments(), vec!["fw", "a"]);
        assert_eq!(u.queries(), vec!["x=1", "y"]);
        assert_eq!(u.file_name(), "a");
        let u = PackageUri::parse("https://[::1]/fw/b").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 443));
        assert_eq!(u.path_and_query, "/fw/b");
        assert_eq!(PackageUri::parse("coaps://h").unwrap().port, 5684);
        assert_eq!(
            PackageUri::parse("ftp://h/x").unwrap_err().result,
            UpdateResult::UnsupportedProtocol
        );
        for bad in ["nothing", "http://", "http://h:99999/x", "http://[::1/x"] {
            assert_eq!(
                PackageUri::parse(bad).unwrap_err().result,
                UpdateResult::InvalidUri,
                "{bad}"
            );
        }
    }
}
