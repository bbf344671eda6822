//! HTTP(S) file server (hyper 1, HTTP/1.1): `GET`/`HEAD` `/fw/<name>` with a
//! strong `ETag` (or a weak one, for the negative test), `Range`
//! (`bytes=N-`, `bytes=N-M`, `bytes=-S`) → 206 + `Content-Range`, `If-Match`
//! → 412 when it does not match (strong comparison: a weak ETag never
//! matches, so it can never be used to resume), `If-None-Match` → 304,
//! `If-Range`, 416 for unsatisfiable ranges, optional presigned-URL checks
//! (expired or bad signature → 403, as S3 does), optional TLS (TLS 1.2 by
//! default) and optional throttling of the body rate.
//!
//! Paths: the image is the last two segments `fw/<name>`, so a bucket prefix
//! (`/bucket/fw/<name>`) works too.
//!
//! Presigned URLs use the shape and signature of
//! [`crate::mqtt::jobs::presigned_url`] (the platform emulator's job
//! documents): `X-Amz-Signature` = hex SHA-256 of
//! `<Host><path>/<X-Amz-Date>/<X-Amz-Expires>/<X-Amz-Security-Token>`. It is
//! not SigV4 (there is no secret); it exists so that a changed path, date or
//! expiry is caught and so that URLs have S3's length and expiry behaviour.
//!
//! Every request is recorded ([`HttpRecord`]), including how many body bytes
//! were handed to the connection and whether the body was cut.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use super::images::{FirmwareImage, hex};
use super::record::{HttpRecord, ServeSummary, SummaryBuilder};
use super::{FileServerError, FileStore, ServedImage};

/// A server certificate chain and key, PEM.
#[derive(Debug, Clone)]
pub struct TlsIdentity {
    /// Certificate chain, leaf first (PEM).
    pub cert_chain_pem: String,
    /// Private key (PKCS#8, SEC1 or PKCS#1 PEM).
    pub key_pem: String,
}

impl TlsIdentity {
    /// Reads a chain and a key from PEM files.
    pub fn from_files(
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Result<TlsIdentity, FileServerError> {
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p).map_err(|source| FileServerError::Io {
                context: format!("read {}", p.display()),
                source,
            })
        };
        Ok(TlsIdentity {
            cert_chain_pem: read(cert)?,
            key_pem: read(key)?,
        })
    }

    fn server_config(&self, allow_tls13: bool) -> Result<rustls::ServerConfig, FileServerError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(self.cert_chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| FileServerError::Tls(format!("certificate chain: {e}")))?;
        if certs.is_empty() {
            return Err(FileServerError::Tls(
                "certificate chain: no CERTIFICATE block".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| FileServerError::Tls(format!("private key: {e}")))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if allow_tls13 {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS12]
        };
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| FileServerError::Tls(format!("protocol versions: {e}")))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| FileServerError::Tls(format!("certificate/key: {e}")))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(cfg)
    }
}

/// Checks and makes presigned-looking URLs (see the module docs).
#[derive(Debug, Clone)]
pub struct Presigner {
    /// Length of `X-Amz-Security-Token` in URLs this makes (the study's URLs
    /// were 600-1,300 characters; 700 gives about 1,030).
    pub token_len: usize,
}

impl Default for Presigner {
    fn default() -> Self {
        Presigner { token_len: 700 }
    }
}

/// `YYYYMMDDTHHMMSSZ` of a time (UTC).
pub fn amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Parses `YYYYMMDDTHHMMSSZ` into seconds since the epoch.
fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days-from-civil (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

fn signature(host: &str, path: &str, date: &str, expires: &str, token: &str) -> String {
    hex(&Sha256::digest(
        format!("{host}{path}/{date}/{expires}/{token}").as_bytes(),
    ))
}

impl Presigner {
    /// A presigned URL for `path` (e.g. `/fw/fw-1mib`) on `scheme://host`,
    /// signed at `at`, valid `expires` seconds.
    pub fn url(
        &self,
        scheme: &str,
        host: &str,
        path: &str,
        at: SystemTime,
        expires: u64,
    ) -> String {
        let date = amz_date(at);
        let mut token = String::new();
        let mut counter = 0u32;
        while token.len() < self.token_len {
            let h = Sha256::digest(format!("{host}{path}/{date}/{expires}/{counter}").as_bytes());
            const ALPHABET: &[u8; 64] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            token.extend(h.iter().map(|b| ALPHABET[(b & 63) as usize] as char));
            counter += 1;
        }
        token.truncate(self.token_len);
        let sig = signature(host, path, &date, &expires.to_string(), &token);
        let day = &date[..8];
        format!(
            "{scheme}://{host}{path}?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=ASIARIGTESTCREDENTIAL%2F{day}%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date={date}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host\
             &X-Amz-Security-Token={token}&X-Amz-Signature={sig}"
        )
    }

    /// Checks a request's query; `Err` carries the S3-style reason.
    pub fn check(
        &self,
        host: &str,
        path: &str,
        query: &str,
        now: SystemTime,
    ) -> Result<(), String> {
        let get = |k: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
        };
        let (Some(date), Some(expires), Some(sig)) = (
            get("X-Amz-Date"),
            get("X-Amz-Expires"),
            get("X-Amz-Signature"),
        ) else {
            return Err(
                "AccessDenied: missing X-Amz-Date, X-Amz-Expires or X-Amz-Signature".into(),
            );
        };
        let token = get("X-Amz-Security-Token").unwrap_or("");
        if signature(host, path, date, expires, token) != sig.to_ascii_lowercase() {
            return Err("SignatureDoesNotMatch".into());
        }
        let signed = parse_amz_date(date)
            .ok_or_else(|| format!("AuthorizationQueryParametersError: X-Amz-Date {date:?}"))?;
        let expires: i64 = expires
            .parse()
            .map_err(|_| format!("AuthorizationQueryParametersError: X-Amz-Expires {expires:?}"))?;
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
        if now > signed + expires {
            return Err(format!(
                "AccessDenied: Request has expired ({} s ago)",
                now - signed - expires
            ));
        }
        if signed > now + 900 {
            return Err("AccessDenied: X-Amz-Date is in the future".into());
        }
        Ok(())
    }
}

/// Settings of an [`HttpFileServer`].
#[derive(Debug, Clone, Default)]
pub struct HttpServerConfig {
    /// Serve HTTPS with this identity (TLS 1.2 unless `allow_tls13`).
    pub tls: Option<TlsIdentity>,
    /// Also offer TLS 1.3.
    pub allow_tls13: bool,
    /// Require presigned URLs (403 otherwise).
    pub presign: Option<Presigner>,
    /// Limit the body rate to this many bytes per second.
    pub throttle_bytes_per_s: Option<u64>,
    /// Body chunk size (default 16 KiB).
    pub chunk_size: Option<usize>,
}

#[derive(Debug, Default)]
struct Log {
    records: Vec<HttpRecord>,
}

fn lock(log: &Mutex<Log>) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug)]
struct State {
    store: FileStore,
    config: HttpServerConfig,
    log: Mutex<Log>,
    started: std::time::Instant,
    /// One-shot: abort the next body after this many bytes.
    cut_next: Mutex<Option<u64>>,
    /// The body rate limit in bytes per second (0: none); starts as
    /// `config.throttle_bytes_per_s`, changed by `set_throttle`.
    throttle: std::sync::atomic::AtomicU64,
}

/// A running HTTP(S) file server. Dropping it stops accepting connections.
#[derive(Debug)]
pub struct HttpFileServer {
    local: SocketAddr,
    tls: bool,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl HttpFileServer {
    /// Binds `addr` and serves `store`.
    pub async fn bind(
        addr: SocketAddr,
        store: FileStore,
        config: HttpServerConfig,
    ) -> Result<HttpFileServer, FileServerError> {
        let acceptor = match &config.tls {
            Some(id) => Some(TlsAcceptor::from(Arc::new(
                id.server_config(config.allow_tls13)?,
            ))),
            None => None,
        };
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| FileServerError::Io {
                context: format!("bind HTTP file server on {addr}"),
                source,
            })?;
        Self::start(listener, acceptor, store, config)
    }

    /// Serves `store` on an already bound listener (e.g. one bound inside a
    /// network namespace). Must be called inside a tokio runtime.
    pub fn from_std(
        listener: std::net::TcpListener,
        store: FileStore,
        config: HttpServerConfig,
    ) -> Result<HttpFileServer, FileServerError> {
        let acceptor = match &config.tls {
            Some(id) => Some(TlsAcceptor::from(Arc::new(
                id.server_config(config.allow_tls13)?,
            ))),
            None => None,
        };
        let io = |context: &str| {
            let context = context.to_string();
            move |source| FileServerError::Io { context, source }
        };
        listener
            .set_nonblocking(true)
            .map_err(io("non-blocking HTTP listener"))?;
        let listener = TcpListener::from_std(listener).map_err(io("HTTP listener into tokio"))?;
        Self::start(listener, acceptor, store, config)
    }

    fn start(
        listener: TcpListener,
        acceptor: Option<TlsAcceptor>,
        store: FileStore,
        config: HttpServerConfig,
    ) -> Result<HttpFileServer, FileServerError> {
        let local = listener
            .local_addr()
            .map_err(|source| FileServerError::Io {
                context: "local address of the HTTP file server".into(),
                source,
            })?;
        let tls = acceptor.is_some();
        let state = Arc::new(State {
            store,
            throttle: std::sync::atomic::AtomicU64::new(config.throttle_bytes_per_s.unwrap_or(0)),
            config,
            log: Mutex::new(Log::default()),
            started: std::time::Instant::now(),
            cut_next: Mutex::new(None),
        });
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, acceptor, state.clone(), rx));
        Ok(HttpFileServer {
            local,
            tls,
            state,
            shutdown: tx,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// The plain URL of an image: `http(s)://<addr>/fw/<name>`.
    pub fn url(&self, name: &str) -> String {
        format!("{}://{}/fw/{name}", self.scheme(), self.local)
    }

    /// A presigned URL of an image, signed now, valid `expires` seconds
    /// (uses the configured [`Presigner`], or the default one).
    pub fn presigned_url(&self, name: &str, expires: u64) -> String {
        self.presigned_url_at(name, SystemTime::now(), expires)
    }

    /// A presigned URL signed at `at` (to make an already-expired one).
    pub fn presigned_url_at(&self, name: &str, at: SystemTime, expires: u64) -> String {
        let p = self.state.config.presign.clone().unwrap_or_default();
        p.url(
            self.scheme(),
            &self.local.to_string(),
            &format!("/fw/{name}"),
            at,
            expires,
        )
    }

    /// The store it serves (shared).
    pub fn store(&self) -> &FileStore {
        &self.state.store
    }

    /// Changes the ETag of `name` (same bytes).
    pub fn set_etag(&self, name: &str, etag: &[u8]) -> bool {
        self.state.store.set_etag(name, etag)
    }

    /// Replaces `name` with a new image (new ETag). Returns the ETag.
    pub fn replace_image(&self, name: &str, image: FirmwareImage) -> Vec<u8> {
        self.state.store.replace_image(name, image)
    }

    /// Limits the rate of the bodies that start from now on (bytes per
    /// second; `None`: as fast as the connection takes them).
    pub fn set_throttle(&self, bytes_per_s: Option<u64>) {
        self.state.throttle.store(
            bytes_per_s.unwrap_or(0),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Makes the next response body stop after `bytes` bytes and the
    /// connection drop (a server-side cut, for resume tests without a bridge).
    pub fn cut_next_body_after(&self, bytes: u64) {
        *self
            .state
            .cut_next
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(bytes);
    }

    /// Every request recorded so far.
    pub fn records(&self) -> Vec<HttpRecord> {
        lock(&self.state.log).records.clone()
    }

    /// Totals so far (duplicate bytes from the byte ranges actually sent, per
    /// path and ETag).
    pub fn summary(&self) -> ServeSummary {
        let log = lock(&self.state.log);
        let mut b = SummaryBuilder::default();
        for r in &log.records {
            b.summary.requests += 1;
            if r.status >= 400 {
                b.summary.errors += 1;
            }
            if r.cut {
                b.summary.cut_bodies += 1;
            }
            if let Some((start, _)) = r.body_range
                && r.bytes_sent > 0
            {
                let etag = r.etag.clone().unwrap_or_default();
                b.body(&r.path, etag.as_bytes(), start, start + r.bytes_sent);
            }
        }
        b.summary
    }

    /// Forgets the records.
    pub fn clear_records(&self) {
        lock(&self.state.log).records.clear();
    }

    /// Stops accepting (open connections finish on their own) and waits at
    /// most 2 s for the accept task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }
}

impl Drop for HttpFileServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
                continue;
            }
            a = listener.accept() => a,
        };
        let Ok((tcp, peer)) = accepted else {
            // EMFILE and the like: back off a little instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, peer, req)) }
            });
            let http = hyper::server::conn::http1::Builder::new();
            match acceptor {
                Some(acceptor) => {
                    // A failed handshake (wrong CA on the client, plain HTTP
                    // to the TLS port) just ends the connection.
                    let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(30), acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    let _ = http.serve_connection(TokioIo::new(tls), service).await;
                }
                None => {
                    let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                }
            }
        });
    }
}

/// A parsed single byte range, resolved against a length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// No usable Range header (absent, malformed, or several ranges): 200.
    Whole,
    /// `start..end` (end exclusive): 206.
    Part(u64, u64),
    /// Syntactically valid but outside the file: 416.
    Unsatisfiable,
}

/// Resolves a `Range` header value against a file of `len` bytes
/// (RFC 9110 §14.1.2). Malformed values and multiple ranges are ignored
/// (served whole), as the RFC allows.
pub fn parse_range(value: &str, len: u64) -> RangeSpec {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeSpec::Whole;
    };
    if spec.contains(',') {
        return RangeSpec::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // suffix: last b bytes
        let Ok(n) = b.parse::<u64>() else {
            return RangeSpec::Whole;
        };
        if n == 0 || len == 0 {
            return RangeSpec::Unsatisfiable;
        }
        return RangeSpec::Part(len - n.min(len), len);
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeSpec::Whole;
    };
    let end = if b.is_empty() {
        len
    } else {
        match b.parse::<u64>() {
            Ok(last) if last >= start => last.saturating_add(1).min(len),
            _ => return RangeSpec::Whole,
        }
    };
    if start >= len {
        RangeSpec::Unsatisfiable
    } else {
        RangeSpec::Part(start, end)
    }
}

/// True if an `If-Match` / `If-None-Match` list matches `etag`.
/// `strong`: weak tags on either side never match (If-Match, If-Range).
fn etag_list_matches(list: &str, current: &str, strong: bool) -> bool {
    let list = list.trim();
    if list == "*" {
        return true;
    }
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let current_weak = current.starts_with("W/");
    list.split(',').any(|t| {
        let t = t.trim();
        if strong && (current_weak || t.starts_with("W/")) {
            return false;
        }
        opaque(t) == opaque(current)
    })
}

struct Plan {
    status: StatusCode,
    range: Option<(u64, u64)>,
    reason: Option<String>,
}

fn plan(req: &Request<Incoming>, img: &ServedImage, etag: &str, last_modified: &str) -> Plan {
    let h = |n: header::HeaderName| req.headers().get(n).and_then(|v| v.to_str().ok());
    let len = img.image.len();
    let refuse = |status, reason: String| Plan {
        status,
        range: None,
        reason: Some(reason),
    };
    if let Some(im) = h(header::IF_MATCH)
        && !etag_list_matches(im, etag, true)
    {
        return refuse(
            StatusCode::PRECONDITION_FAILED,
            format!("If-Match {im} does not match {etag}"),
        );
    }
    if let Some(inm) = h(header::IF_NONE_MATCH)
        && etag_list_matches(inm, etag, false)
    {
        return refuse(StatusCode::NOT_MODIFIED, format!("If-None-Match {inm}"));
    }
    let whole = Plan {
        status: StatusCode::OK,
        range: Some((0, len)),
        reason: None,
    };
    let Some(range) = h(header::RANGE) else {
        return whole;
    };
    if let Some(ir) = h(header::IF_RANGE) {
        let ok = if ir.trim_start().starts_with('"') || ir.trim_start().starts_with("W/") {
            etag_list_matches(ir, etag, true) && !ir.contains(',')
        } else {
            ir.trim() == last_modified
        };
        if !ok {
            return Plan {
                reason: Some(format!("If-Range {ir} does not match: whole file")),
                ..whole
            };
        }
    }
    match parse_range(range, len) {
        RangeSpec::Whole => whole,
        RangeSpec::Part(s, e) => Plan {
            status: StatusCode::PARTIAL_CONTENT,
            range: Some((s, e)),
            reason: None,
        },
        RangeSpec::Unsatisfiable => refuse(
            StatusCode::RANGE_NOT_SATISFIABLE,
            format!("Range {range} outside {len} bytes"),
        ),
    }
}

fn handle(state: &Arc<State>, peer: SocketAddr, req: Request<Incoming>) -> Response<FileBody> {
    let hdr = |n: header::HeaderName| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let mut rec = HttpRecord {
        at: SystemTime::now(),
        since_start: state.started.elapsed(),
        peer,
        method: req.method().to_string(),
        path: path.clone(),
        query_len: query.len(),
        range: hdr(header::RANGE),
        if_match: hdr(header::IF_MATCH),
        if_range: hdr(header::IF_RANGE),
        status: 0,
        etag: None,
        body_range: None,
        bytes_sent: 0,
        cut: false,
        reason: None,
    };
    let finish = |mut rec: HttpRecord, resp: Response<FileBody>| {
        rec.status = resp.status().as_u16();
        lock(&state.log).records.push(rec);
        resp
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let name = match segments.as_slice() {
        [.., "fw", name] if !name.is_empty() => name.to_string(),
        _ => {
            rec.reason = Some("not a /fw/<name> path".into());
            return finish(rec, simple(StatusCode::NOT_FOUND, "not found\n"));
        }
    };
    if let Some(p) = &state.config.presign {
        let host = hdr(header::HOST).unwrap_or_default();
        if let Err(why) = p.check(&host, &path, &query, SystemTime::now()) {
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{why}</Message></Error>\n",
                why.split(':').next().unwrap_or("AccessDenied")
            );
            rec.reason = Some(why);
            return finish(rec, simple(StatusCode::FORBIDDEN, &body));
        }
    }
    let Some(img) = state.store.get(&name) else {
        rec.reason = Some(format!("no image {name:?}"));
        return finish(rec, simple(StatusCode::NOT_FOUND, "no such image\n"));
    };
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        rec.reason = Some("method not allowed".into());
        let mut r = simple(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return finish(rec, r);
    }
    let etag = img.http_etag();
    let last_modified = httpdate::fmt_http_date(img.last_modified);
    let p = plan(&req, &img, &etag, &last_modified);
    rec.etag = Some(etag.clone());
    rec.reason = p.reason.clone();
    let len = img.image.len();
    let mut builder = Response::builder()
        .status(p.status)
        .header(header::ETAG, &etag)
        .header(header::LAST_MODIFIED, &last_modified)
        .header(header::ACCEPT_RANGES, "bytes");
    let body = match (p.status, p.range) {
        (StatusCode::OK | StatusCode::PARTIAL_CONTENT, Some((s, e))) => {
            builder = builder
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_LENGTH, e - s);
            if p.status == StatusCode::PARTIAL_CONTENT {
                builder = builder.header(
                    header::CONTENT_RANGE,
                    format!("bytes {s}-{}/{len}", e.saturating_sub(1)),
                );
            }
            if head {
                FileBody::empty()
            } else {
                rec.body_range = Some((s, e));
                let cut_after = state
                    .cut_next
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                let index = {
                    let mut log = lock(&state.log);
                    rec.status = p.status.as_u16();
                    log.records.push(rec);
                    log.records.len() - 1
                };
                let body = FileBody::file(
                    img.image.clone(),
                    s,
                    e,
                    state.config.chunk_size.unwrap_or(16 * 1024).max(1),
                    Some(state.throttle.load(std::sync::atomic::Ordering::Relaxed)),
                    cut_after,
                    Some((state.clone(), index)),
                );
                return builder
                    .body(body)
                    .unwrap_or_else(|_| simple(StatusCode::INTERNAL_SERVER_ERROR, "\n"));
            }
        }
        (StatusCode::RANGE_NOT_SATISFIABLE, _) => {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes */{len}"));
            FileBody::fixed(Bytes::new())
        }
        _ => FileBody::empty(),
    };
    let resp = builder
        .body(body)
        .unwrap_or_else(|_| simple(StatusCode::INTERNAL_SERVER_ERROR, "\n"));
    finish(rec, resp)
}

fn simple(status: StatusCode, text: &str) -> Response<FileBody> {
    let mut r = Response::new(FileBody::fixed(Bytes::copy_from_slice(text.as_bytes())));
    *r.status_mut() = status;
    r
}

/// How long a cut body waits before it fails, so that the bytes before the
/// cut leave the server.
const CUT_FLUSH: Duration = Duration::from_millis(200);

/// A response body: fixed bytes, or a range of an image produced chunk by
/// chunk (optionally throttled), which records what it handed to hyper and
/// whether it was dropped before its end.
struct FileBody {
    fixed: Option<Bytes>,
    image: Option<FirmwareImage>,
    pos: u64,
    end: u64,
    chunk: usize,
    rate: Option<u64>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    cut_after: Option<u64>,
    /// The pause before a cut is over (or was started).
    cut_flushed: bool,
    sent: u64,
    record: Option<(Arc<State>, usize)>,
    finished: bool,
}

impl FileBody {
    fn empty() -> FileBody {
        FileBody::fixed(Bytes::new())
    }

    fn fixed(b: Bytes) -> FileBody {
        FileBody {
            fixed: Some(b),
            image: None,
            pos: 0,
            end: 0,
            chunk: 0,
            rate: None,
            sleep: None,
            cut_after: None,
            cut_flushed: false,
            sent: 0,
            record: None,
            finished: true,
        }
    }

    fn file(
        image: FirmwareImage,
        start: u64,
        end: u64,
        chunk: usize,
        rate: Option<u64>,
        cut_after: Option<u64>,
        record: Option<(Arc<State>, usize)>,
    ) -> FileBody {
        FileBody {
            fixed: None,
            image: Some(image),
            pos: start,
            end,
            chunk,
            rate: rate.filter(|r| *r > 0),
            sleep: None,
            cut_after,
            cut_flushed: false,
            sent: 0,
            record,
            finished: start >= end,
        }
    }

    fn update_record(&self, cut: bool) {
        if let Some((state, i)) = &self.record
            && let Some(r) = lock(&state.log).records.get_mut(*i)
        {
            r.bytes_sent = self.sent;
            r.cut = cut;
        }
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if let Some(b) = this.fixed.take() {
            return Poll::Ready((!b.is_empty()).then(|| Ok(Frame::data(b))));
        }
        let Some(image) = this.image.clone() else {
            return Poll::Ready(None);
        };
        if this.pos >= this.end {
            if !this.finished {
                this.finished = true;
                this.update_record(false);
            }
            return Poll::Ready(None);
        }
        if let Some(s) = this.sleep.as_mut() {
            if s.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        if let Some(limit) = this.cut_after
            && this.sent >= limit
        {
            // Pause before the error so hyper flushes what it buffered: the
            // peer receives the bytes before the cut, as with a real drop
            // (an immediate error makes hyper close with its buffer unsent).
            if !this.cut_flushed {
                this.cut_flushed = true;
                let mut s = Box::pin(tokio::time::sleep(CUT_FLUSH));
                if s.as_mut().poll(cx).is_pending() {
                    this.sleep = Some(s);
                    return Poll::Pending;
                }
            }
            this.update_record(true);
            this.finished = true;
            this.pos = this.end;
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "server-side cut",
            ))));
        }
        let mut n = this.chunk.min((this.end - this.pos) as usize);
        if let Some(limit) = this.cut_after {
            n = n.min((limit - this.sent).max(1) as usize);
        }
        let mut buf = vec![0u8; n];
        let got = image.read_at(this.pos, &mut buf);
        buf.truncate(got);
        this.pos += got as u64;
        this.sent += got as u64;
        this.update_record(false);
        if let Some(rate) = this.rate {
            let wait = Duration::from_secs_f64(got as f64 / rate as f64);
            this.sleep = Some(Box::pin(tokio::time::sleep(wait)));
        }
        if got == 0 {
            this.pos = this.end;
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
    }

    fn is_end_stream(&self) -> bool {
        match &self.fixed {
            Some(b) => b.is_empty(),
            None => self.image.is_none() || self.pos >= self.end,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.fixed {
            Some(b) => SizeHint::with_exact(b.len() as u64),
            None => SizeHint::with_exact(self.end.saturating_sub(self.pos)),
        }
    }
}

impl Drop for FileBody {
    fn drop(&mut self) {
        if self.image.is_some() && !self.finished && self.pos < self.end {
            self.update_record(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_as_rfc9110_says() {
        assert_eq!(parse_range("bytes=0-", 100), RangeSpec::Part(0, 100));
        assert_eq!(parse_range("bytes=10-19", 100), RangeSpec::Part(10, 20));
        assert_eq!(parse_range("bytes=90-200", 100), RangeSpec::Part(90, 100));
        assert_eq!(parse_range("bytes=-10", 100), RangeSpec::Part(90, 100));
        assert_eq!(parse_range("bytes=-1000", 100), RangeSpec::Part(0, 100));
        assert_eq!(parse_range("bytes=100-", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), RangeSpec::Whole);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeSpec::Whole);
        assert_eq!(parse_range("items=0-1", 100), RangeSpec::Whole);
        assert_eq!(parse_range("bytes=x-", 100), RangeSpec::Whole);
    }

    #[test]
    fn if_match_is_strong_and_if_none_match_weak() {
        assert!(etag_list_matches("\"a\"", "\"a\"", true));
        assert!(etag_list_matches("\"b\", \"a\"", "\"a\"", true));
        assert!(!etag_list_matches("W/\"a\"", "W/\"a\"", true));
        assert!(!etag_list_matches("\"a\"", "W/\"a\"", true));
        assert!(etag_list_matches("W/\"a\"", "\"a\"", false));
        assert!(etag_list_matches("*", "W/\"a\"", true));
    }

    #[test]
    fn amz_dates_round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_815_000);
        let s = amz_date(t);
        assert_eq!(s.len(), 16);
        assert_eq!(parse_amz_date(&s), Some(1_795_815_000));
        assert_eq!(amz_date(UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(parse_amz_date("20240229T235959Z"), Some(1_709_251_199));
        assert_eq!(parse_amz_date("2024-02-29"), None);
    }
}
