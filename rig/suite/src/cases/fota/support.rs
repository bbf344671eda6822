//! What the FOTA cases share: the file servers a case starts where the DUT
//! can reach them, the Object 5 watcher (Observe on `/5/0/3` and `/5/0/5`),
//! the agent's `fota …` console lines, and the standard images with their
//! SHA-256 (the values of `fixtures/firmware/manifest.toml`, which
//! `rig/services/tests/file_server_images.rs` keeps equal to the generator).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use rig_services::file_server::{
    CoapFileServer, CoapServerConfig, DtlsLog, DtlsTransport, FileStore, HttpFileServer,
    HttpServerConfig, HttpsPki, NamedImage, ServeSummary, images,
};
use rig_services::lwm2m::{self, ContentFormat, ObjectPath, ObservationId, ServerEvent, Value};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::case::{CaseContext, CaseFailure, SecurityMode};
use crate::start::{self, ServerCert};

/// `/5/0/0` Package.
pub(crate) const PACKAGE: &str = "/5/0/0";
/// `/5/0/1` Package URI.
pub(crate) const PACKAGE_URI: &str = "/5/0/1";
/// `/5/0/2` Update.
pub(crate) const UPDATE: &str = "/5/0/2";
/// `/5/0/3` State.
pub(crate) const STATE: &str = "/5/0/3";
/// `/5/0/5` Update Result.
pub(crate) const RESULT: &str = "/5/0/5";

/// The study's image (1,048,576 bytes).
pub(crate) const IMAGE: &str = "fw-1mib";

/// A path from a constant; an infrastructure error if it does not parse.
pub(crate) fn path(p: &str) -> Result<ObjectPath, CaseFailure> {
    p.parse()
        .map_err(|e| CaseFailure::infra(format!("path {p}: {e:?}")))
}

static IMAGES: LazyLock<Vec<NamedImage>> = LazyLock::new(images::standard_images);

/// A standard image by name.
pub(crate) fn image(name: &str) -> Result<&'static NamedImage, CaseFailure> {
    IMAGES
        .iter()
        .find(|n| n.name == name)
        .ok_or_else(|| CaseFailure::infra(format!("no standard image {name:?}")))
}

/// A delivery protocol of the pull.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Proto {
    /// `coap://` Block2.
    Coap,
    /// `coaps://` Block2 over DTLS (PSK, the DUT's LwM2M credentials).
    Coaps,
    /// `http://` with Range/If-Match.
    Http,
    /// `https://` with Range/If-Match (a CA made for the run, `fota_ca`).
    Https,
}

impl Proto {
    /// The URI scheme.
    pub(crate) fn scheme(self) -> &'static str {
        match self {
            Proto::Coap => "coap",
            Proto::Coaps => "coaps",
            Proto::Http => "http",
            Proto::Https => "https",
        }
    }
}

/// The file servers of one case: one store, the servers asked for, bound
/// where the DUT reaches the rig's services. Dropping it stops them.
pub(crate) struct FileServers {
    /// The images served (shared with every server).
    pub(crate) store: FileStore,
    coap: Option<CoapFileServer>,
    coaps: Option<(CoapFileServer, Arc<Mutex<DtlsLog>>)>,
    http: Option<HttpFileServer>,
    https: Option<HttpFileServer>,
    /// The CA file the DUT must trust for `https://` (`fota_ca`).
    pub(crate) ca: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

fn infra<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> CaseFailure + '_ {
    move |e| CaseFailure::infra(format!("{what}: {e}"))
}

impl FileServers {
    /// Starts a server for each of `protos` on a free port at the services
    /// address, all serving the standard images. CoAPS uses the bench's PSK
    /// credentials (the same the DUT is provisioned with by
    /// [`start::use_secure_server`]); HTTPS a CA made for this case.
    pub(crate) async fn start(
        cx: &mut CaseContext,
        protos: &[Proto],
    ) -> Result<FileServers, CaseFailure> {
        let store = FileStore::with_standard_images();
        let mut s = FileServers {
            store: store.clone(),
            coap: None,
            coaps: None,
            http: None,
            https: None,
            ca: None,
            _dir: None,
        };
        for p in protos {
            match p {
                Proto::Coap => {
                    let sock = cx
                        .net
                        .bind_udp(0)
                        .map_err(infra("bind the CoAP file server"))?;
                    sock.set_nonblocking(true)
                        .map_err(infra("CoAP file server socket"))?;
                    let sock = tokio::net::UdpSocket::from_std(sock)
                        .map_err(infra("CoAP file server socket"))?;
                    s.coap = Some(
                        CoapFileServer::start(sock, store.clone(), CoapServerConfig::default())
                            .map_err(infra("start the CoAP file server"))?,
                    );
                }
                Proto::Coaps => {
                    let Some(spec) = cx.security.credentials.clone() else {
                        return Err(CaseFailure::not_applicable(
                            "a coaps:// file server needs the bench's [security] credentials",
                        ));
                    };
                    let setup = start::secure_setup(
                        &spec,
                        SecurityMode::Psk,
                        &[rig_dtls::CipherSuite::PSK_AES_128_CCM_8],
                        ServerCert::Normal,
                        &cx.endpoint,
                    )
                    .map_err(|e| CaseFailure::infra(format!("psk: [security]: {e}")))?;
                    let sock = cx
                        .net
                        .bind_udp(0)
                        .map_err(infra("bind the CoAPS file server"))?;
                    let transport = DtlsTransport::from_std(sock, setup.dtls)
                        .map_err(infra("start the CoAPS file server"))?;
                    let log = transport.log_handle();
                    let server = CoapFileServer::start(
                        transport,
                        store.clone(),
                        CoapServerConfig::default(),
                    )
                    .map_err(infra("start the CoAPS file server"))?;
                    s.coaps = Some((server, log));
                }
                Proto::Http | Proto::Https => {
                    let mut config = HttpServerConfig::default();
                    if *p == Proto::Https {
                        let dir =
                            tempfile::tempdir().map_err(infra("temp dir for the HTTPS CA"))?;
                        let pki =
                            HttpsPki::generate(dir.path(), &[cx.net.services_ip().to_string()])
                                .map_err(infra("HTTPS certificates"))?;
                        config.tls = Some(pki.identity.clone());
                        s.ca = Some(pki.ca_path.clone());
                        s._dir = Some(dir);
                    }
                    let listener = cx
                        .net
                        .bind_tcp(0)
                        .map_err(infra("bind the HTTP file server"))?;
                    let server = HttpFileServer::from_std(listener, store.clone(), config)
                        .map_err(infra("start the HTTP file server"))?;
                    if *p == Proto::Https {
                        s.https = Some(server);
                    } else {
                        s.http = Some(server);
                    }
                }
            }
        }
        Ok(s)
    }

    /// Limits the body rate of the HTTP and HTTPS servers (bytes per second).
    pub(crate) fn pace_http(&self, bytes_per_s: u64) {
        for h in [&self.http, &self.https].into_iter().flatten() {
            h.set_throttle(Some(bytes_per_s));
        }
    }

    /// The URI of `name` over `proto` (a server for it must have been started).
    pub(crate) fn uri(&self, proto: Proto, name: &str) -> Result<String, CaseFailure> {
        let missing = || CaseFailure::infra(format!("no {} file server started", proto.scheme()));
        Ok(match proto {
            Proto::Coap => self.coap.as_ref().ok_or_else(missing)?.url(name),
            Proto::Coaps => self.coaps.as_ref().ok_or_else(missing)?.0.url(name),
            Proto::Http => self.http.as_ref().ok_or_else(missing)?.url(name),
            Proto::Https => self.https.as_ref().ok_or_else(missing)?.url(name),
        })
    }

    /// What the server of `proto` served so far (zero if none runs).
    pub(crate) fn summary(&self, proto: Proto) -> ServeSummary {
        match proto {
            Proto::Coap => self.coap.as_ref().map(CoapFileServer::summary),
            Proto::Coaps => self.coaps.as_ref().map(|c| c.0.summary()),
            Proto::Http => self.http.as_ref().map(HttpFileServer::summary),
            Proto::Https => self.https.as_ref().map(HttpFileServer::summary),
        }
        .unwrap_or_default()
    }

    /// The HTTP(S) server of `proto`, if that is what runs.
    pub(crate) fn http(&self, proto: Proto) -> Option<&HttpFileServer> {
        match proto {
            Proto::Http => self.http.as_ref(),
            Proto::Https => self.https.as_ref(),
            _ => None,
        }
    }

    /// Security handshakes the server of `proto` completed: DTLS handshakes
    /// for CoAPS, TLS connections (one handshake each) for HTTPS, 0 otherwise.
    pub(crate) fn handshakes(&self, proto: Proto) -> u64 {
        match proto {
            Proto::Coaps => self.coaps.as_ref().map_or(0, |(_, log)| {
                log.lock().unwrap_or_else(|e| e.into_inner()).handshakes
            }),
            Proto::Https => self.https.as_ref().map_or(0, connections),
            _ => 0,
        }
    }

    /// The CoAPS server's DTLS log so far (empty if none runs).
    pub(crate) fn dtls_log(&self) -> DtlsLog {
        self.coaps
            .as_ref()
            .map_or_else(DtlsLog::default, |(_, log)| {
                log.lock().unwrap_or_else(|e| e.into_inner()).clone()
            })
    }

    /// Stops the server of `proto` (a lost connection on loopback, where
    /// there is no link to cut).
    pub(crate) async fn stop(&mut self, proto: Proto) {
        match proto {
            Proto::Coap => {
                if let Some(c) = self.coap.take() {
                    c.shutdown().await;
                }
            }
            Proto::Coaps => {
                if let Some((c, _)) = self.coaps.take() {
                    c.shutdown().await;
                }
            }
            Proto::Http => {
                if let Some(h) = self.http.take() {
                    h.shutdown().await;
                }
            }
            Proto::Https => {
                if let Some(h) = self.https.take() {
                    h.shutdown().await;
                }
            }
        }
    }

    /// Forgets what every server recorded (between a baseline and a run).
    pub(crate) fn clear_records(&self) {
        if let Some(c) = &self.coap {
            c.clear_records();
        }
        if let Some((c, log)) = &self.coaps {
            c.clear_records();
            *log.lock().unwrap_or_else(|e| e.into_inner()) = DtlsLog::default();
        }
        for h in [&self.http, &self.https].into_iter().flatten() {
            h.clear_records();
        }
    }
}

/// Distinct client connections (peer address and port) an HTTP server saw.
pub(crate) fn connections(h: &HttpFileServer) -> u64 {
    let mut peers: Vec<_> = h.records().iter().map(|r| r.peer).collect();
    peers.sort();
    peers.dedup();
    peers.len() as u64
}

/// The provisioning keys the agent needs for FOTA (see the agent's README):
/// `state_dir` (resume store), `fota_ca` (HTTPS trust), `fota_retries`.
pub(crate) fn fota_extra(
    state_dir: &std::path::Path,
    servers: &FileServers,
) -> BTreeMap<String, String> {
    let mut extra = BTreeMap::new();
    extra.insert("state_dir".to_string(), state_dir.display().to_string());
    if let Some(ca) = &servers.ca {
        extra.insert("fota_ca".to_string(), ca.display().to_string());
    }
    extra
}

/// An integer out of a Read or a notification of a single resource.
pub(crate) fn int_value(r: &lwm2m::Response) -> Option<i64> {
    if let Some(records) = &r.decoded {
        for rec in records {
            match &rec.value {
                Value::Integer(v) => return Some(*v),
                Value::UnsignedInteger(v) => return i64::try_from(*v).ok(),
                _ => {}
            }
        }
    }
    r.text().trim().parse().ok()
}

/// Watches Object 5 through Observe on `/5/0/3` (State) and `/5/0/5`
/// (Update Result): every value seen, in order.
pub(crate) struct FwWatch {
    events: broadcast::Receiver<ServerEvent>,
    endpoint: String,
    state_obs: Option<ObservationId>,
    result_obs: Option<ObservationId>,
    /// States seen (the Observe answer first, then each notification).
    pub(crate) states: Vec<i64>,
    /// Update Results seen, likewise.
    pub(crate) results: Vec<i64>,
}

impl FwWatch {
    /// Observes `/5/0/3` and `/5/0/5` on the case's endpoint. A refused
    /// Observe fails the case (the contract makes both observable).
    pub(crate) async fn start(cx: &mut CaseContext) -> Result<FwWatch, CaseFailure> {
        let events = cx.server.events();
        let mut w = FwWatch {
            events,
            endpoint: cx.endpoint.clone(),
            state_obs: None,
            result_obs: None,
            states: Vec::new(),
            results: Vec::new(),
        };
        for (p, is_state) in [(STATE, true), (RESULT, false)] {
            let r = cx
                .server
                .observe(&cx.endpoint, &path(p)?, None)
                .await
                .map_err(|e| CaseFailure::fail(format!("Observe {p}: {e}")))?;
            if r.code != lwm2m::Code::CONTENT || r.observation.is_none() {
                return Err(CaseFailure::fail(format!(
                    "Observe {p}: expected 2.05 with an Observe option, got {} ({})",
                    r.code,
                    r.text()
                )));
            }
            let v = int_value(&r).ok_or_else(|| {
                CaseFailure::fail(format!("Observe {p}: not an integer: {:?}", r.text()))
            })?;
            if is_state {
                w.state_obs = r.observation;
                w.states.push(v);
            } else {
                w.result_obs = r.observation;
                w.results.push(v);
            }
        }
        Ok(w)
    }

    /// The latest State.
    pub(crate) fn state(&self) -> i64 {
        self.states.last().copied().unwrap_or(-1)
    }

    /// The latest Update Result.
    pub(crate) fn result(&self) -> i64 {
        self.results.last().copied().unwrap_or(-1)
    }

    /// What was seen, for messages.
    pub(crate) fn history(&self) -> String {
        format!(
            "State notifications {:?}, Update Result notifications {:?}",
            self.states, self.results
        )
    }

    fn take(&mut self, event: &ServerEvent) {
        if let ServerEvent::Notification {
            endpoint,
            observation,
            response,
            ..
        } = event
            && *endpoint == self.endpoint
            && let Some(v) = int_value(response)
        {
            if Some(*observation) == self.state_obs {
                self.states.push(v);
            } else if Some(*observation) == self.result_obs {
                self.results.push(v);
            }
        }
    }

    /// Takes in the notifications already received.
    pub(crate) fn drain(&mut self) {
        // Bounded by the channel's capacity.
        for _ in 0..4096 {
            match self.events.try_recv() {
                Ok(e) => self.take(&e),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
    }

    /// Waits (at most `timeout`) until `done(state, result)` holds for the
    /// latest values. Out of Time names `what` and the history.
    pub(crate) async fn wait(
        &mut self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(i64, i64) -> bool,
    ) -> Result<(), CaseFailure> {
        self.drain();
        let deadline = Instant::now() + timeout;
        while !done(self.state(), self.result()) {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Err(_) => {
                    return Err(CaseFailure::fail(format!(
                        "{what}: not seen within {:.0} s; {}",
                        timeout.as_secs_f64(),
                        self.history()
                    )));
                }
                Ok(Ok(e)) => self.take(&e),
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    return Err(CaseFailure::infra("the LwM2M server stopped"));
                }
            }
        }
        Ok(())
    }
}

/// Reads one integer resource.
pub(crate) async fn read_int(cx: &mut CaseContext, p: &str) -> Result<i64, CaseFailure> {
    let r = cx
        .server
        .read(&cx.endpoint, &path(p)?, None)
        .await
        .map_err(|e| CaseFailure::fail(format!("Read {p}: {e}")))?;
    if r.code != lwm2m::Code::CONTENT {
        return Err(CaseFailure::fail(format!(
            "Read {p}: expected 2.05, got {} ({})",
            r.code,
            r.text()
        )));
    }
    int_value(&r)
        .ok_or_else(|| CaseFailure::fail(format!("Read {p}: not an integer: {:?}", r.text())))
}

/// Writes the Package URI (text/plain); the DUT must answer 2.04.
pub(crate) async fn write_uri(cx: &mut CaseContext, uri: &str) -> Result<(), CaseFailure> {
    cx.step(format!("Write {PACKAGE_URI} = {uri:?}"));
    let r = cx
        .server
        .write(
            &cx.endpoint,
            &path(PACKAGE_URI)?,
            ContentFormat::Text,
            uri.as_bytes().to_vec(),
        )
        .await
        .map_err(|e| CaseFailure::fail(format!("Write {PACKAGE_URI}: {e}")))?;
    if r.code != lwm2m::Code::CHANGED {
        return Err(CaseFailure::fail(format!(
            "Write {PACKAGE_URI} = {uri:?}: expected 2.04, got {} ({})",
            r.code,
            r.text()
        )));
    }
    Ok(())
}

/// Pushes `bytes` into `/5/0/0` (opaque; the server goes block-wise, Block1,
/// for anything larger than one block). Returns the response code.
pub(crate) async fn push(
    cx: &mut CaseContext,
    bytes: Vec<u8>,
    timeout: Duration,
) -> Result<lwm2m::Code, CaseFailure> {
    cx.step(format!("Write {PACKAGE} ({} bytes, Block1)", bytes.len()));
    let server = cx.server.with_op_timeout(timeout);
    let r = server
        .write(&cx.endpoint, &path(PACKAGE)?, ContentFormat::Opaque, bytes)
        .await
        .map_err(|e| CaseFailure::fail(format!("Write {PACKAGE}: {e}")))?;
    Ok(r.code)
}

/// The `fota downloaded bytes=<n> sha256=<hex>` line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Downloaded {
    /// Bytes received.
    pub(crate) bytes: u64,
    /// SHA-256 of what was received.
    pub(crate) sha256: String,
}

/// Parses `key=value` out of a console line.
pub(crate) fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Parses a `fota downloaded …` line.
pub(crate) fn parse_downloaded(line: &str) -> Option<Downloaded> {
    let rest = &line[line.find("fota downloaded")?..];
    Some(Downloaded {
        bytes: field(rest, "bytes")?.parse().ok()?,
        sha256: field(rest, "sha256")?.to_ascii_lowercase(),
    })
}

/// Waits for the `fota downloaded` line and checks it against the image:
/// size and SHA-256 as in the manifest.
pub(crate) async fn expect_downloaded(
    cx: &mut CaseContext,
    name: &str,
    timeout: Duration,
) -> Result<Downloaded, CaseFailure> {
    let line = cx
        .dut
        .expect_console("fota downloaded", timeout)
        .await
        .map_err(|e| {
            CaseFailure::fail(format!(
                "no `fota downloaded` console line within {:.0} s: {e}",
                timeout.as_secs_f64()
            ))
        })?;
    let d = parse_downloaded(&line)
        .ok_or_else(|| CaseFailure::fail(format!("unreadable console line {line:?}")))?;
    check_image(name, &d)?;
    Ok(d)
}

/// The received image must be `name` byte for byte (size and SHA-256).
pub(crate) fn check_image(name: &str, d: &Downloaded) -> Result<(), CaseFailure> {
    let img = image(name)?;
    let want = img.image.sha256_hex();
    if d.bytes != img.image.len() || d.sha256 != want {
        return Err(CaseFailure::fail(format!(
            "the DUT received {} bytes with SHA-256 {}, the manifest says {name} is {} bytes with SHA-256 {want}",
            d.bytes,
            d.sha256,
            img.image.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_lines_parse() {
        let d = parse_downloaded("fota downloaded bytes=1048576 sha256=ABcd").unwrap();
        assert_eq!(d.bytes, 1_048_576);
        assert_eq!(d.sha256, "abcd");
        assert!(parse_downloaded("fota downloaded bytes=x sha256=1").is_none());
        assert_eq!(field("fota resumed at=5120", "at"), Some("5120"));
        assert_eq!(field("fota state=1 result=0", "result"), Some("0"));
    }

    #[test]
    fn the_image_check_compares_with_the_manifest() {
        let img = image(IMAGE).unwrap();
        let good = Downloaded {
            bytes: img.image.len(),
            sha256: img.image.sha256_hex(),
        };
        assert!(check_image(IMAGE, &good).is_ok());
        // The manifest's value, independently of the generator.
        assert_eq!(
            good.sha256,
            "4eb290ee2d8aba55912bbd2f1dcf94476a16a2a232ead4cf5fb7e9706175864b"
        );
        let bad = Downloaded {
            sha256: "00".repeat(32),
            ..good
        };
        let e = check_image(IMAGE, &bad).unwrap_err();
        assert!(e.message.contains("manifest"), "{}", e.message);
    }
}
