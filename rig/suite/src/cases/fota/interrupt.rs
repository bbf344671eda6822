//! The interruption matrix: `fota.<path>.<interruption>`.
//!
//! Paths: `lwm2m-coap-block2` (pull, CoAP Block2), `lwm2m-http-range` (pull,
//! HTTP with Range/If-Match), `lwm2m-push-block1` (Block1 Write to /5/0/0),
//! `mqtt-https` (AWS-like job, HTTPS, the study's client that starts over),
//! `mqtt-https-range` (job, HTTPS with Range), `mqtt-stream` (job, MQTT file
//! stream with a bitmap, 1 KiB blocks).
//!
//! Interruptions, applied when the server's record shows 50% of the 1 MiB
//! image served (the push path, whose bytes the LwM2M server does not
//! record: after half the baseline push's duration):
//! `cut-5s`, `cut-60s`, `cut-300s` (the bridge drops every frame both ways
//! for that long), `restart` (the DUT is stopped and started again with the
//! same state directory), `nat-rebind` (the bridge gives the DUT a new source
//! port), `etag-change` (the DUT is stopped, the image gets a new ETag or
//! stream version, the DUT starts again), and for the HTTP Range paths
//! `weak-etag-restart` (the server advertises a weak ETag; a restart must
//! not resume on it). `baseline` is the uninterrupted run every other case
//! is measured against (run once per path and run, cached in memory).
//!
//! Measurements: `fota.extra_bytes` (L2 bytes of the whole transfer, both
//! directions, minus the baseline's; on loopback, where nothing is
//! measured on the wire, the file bytes the server sent minus the
//! baseline's), `fota.duplicated_payload_bytes` (file bytes the server sent
//! more than once), `fota.extra_handshakes` (DTLS/TLS handshakes minus the
//! baseline's), `fota.time_to_complete_s`, `fota.extra_time_s` and
//! `fota.image_intact` (1 when the DUT's SHA-256 equals the manifest's).
//!
//! Asserted (issue 7 §4): the image arrives intact, or, for a cut longer
//! than the DUT's retries, the DUT reports Update Result 4; a CoAP pull
//! resumes near where it stopped (at most 4 blocks fetched twice); an HTTP
//! Range pull resumes with `Range: bytes=N-` (N at least 40% of the image)
//! and `If-Match` on the strong ETag; an ETag change (or a new stream
//! version) makes the DUT fetch the whole image again; a weak ETag is never
//! used to resume; the naive MQTT/HTTPS client and the MQTT stream (bitmap
//! in RAM) fetch the whole image again after a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use rig_bench::dut::{DutAction, DutConfig};
use rig_services::file_server::ServeSummary;
use rig_services::lwm2m::{self, ServerEvent};
use rig_services::mqtt::streams::{StreamService, StreamServiceConfig};
use rig_services::mqtt::{
    Broker, BrokerConfig, BrokerKind, ClientTls, PkiProfile, Platform, PlatformConfig, TestPki,
};
use tokio::time::Instant;

use super::support::{self, Downloaded, FileServers, IMAGE, Proto};
use super::{DOWNLOAD_WAIT, begin_with};
use crate::case::{Area, CaseContext, CaseDef, CaseFailure, CaseMeta, CaseResult, StartState};
use crate::start;

/// The body rate of the matrix's HTTP(S) file servers (bytes per second).
/// Unpaced, a 1 MiB body crosses the simulated link in a few tens of
/// milliseconds, faster than the DUT can be stopped at 50%; at 256 KiB/s
/// (about an LTE-M uplink's order of magnitude) the whole image takes 4 s
/// and the interruption lands in mid-transfer. CoAP Block2 is lock-step (one
/// block per round trip) and needs no pacing.
const MATRIX_HTTP_RATE: u64 = 256 * 1024;

/// A delivery path of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeliveryPath {
    /// LwM2M pull over CoAP Block2.
    CoapBlock2,
    /// LwM2M pull over HTTP with Range.
    HttpRange,
    /// LwM2M push, Block1 Write to /5/0/0.
    PushBlock1,
    /// MQTT job, HTTPS, starts over after any cut.
    MqttHttps,
    /// MQTT job, HTTPS with Range.
    MqttHttpsRange,
    /// MQTT job, MQTT file stream.
    MqttStream,
}

impl DeliveryPath {
    /// Every path, in report order.
    pub const ALL: [DeliveryPath; 6] = [
        DeliveryPath::CoapBlock2,
        DeliveryPath::HttpRange,
        DeliveryPath::PushBlock1,
        DeliveryPath::MqttHttps,
        DeliveryPath::MqttHttpsRange,
        DeliveryPath::MqttStream,
    ];

    /// The name in case ids.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryPath::CoapBlock2 => "lwm2m-coap-block2",
            DeliveryPath::HttpRange => "lwm2m-http-range",
            DeliveryPath::PushBlock1 => "lwm2m-push-block1",
            DeliveryPath::MqttHttps => "mqtt-https",
            DeliveryPath::MqttHttpsRange => "mqtt-https-range",
            DeliveryPath::MqttStream => "mqtt-stream",
        }
    }

    fn is_mqtt(self) -> bool {
        matches!(
            self,
            DeliveryPath::MqttHttps | DeliveryPath::MqttHttpsRange | DeliveryPath::MqttStream
        )
    }

    fn proto(self) -> Option<Proto> {
        match self {
            DeliveryPath::CoapBlock2 => Some(Proto::Coap),
            DeliveryPath::HttpRange => Some(Proto::Http),
            DeliveryPath::MqttHttps | DeliveryPath::MqttHttpsRange => Some(Proto::Https),
            DeliveryPath::PushBlock1 | DeliveryPath::MqttStream => None,
        }
    }

    fn ranged(self) -> bool {
        matches!(self, DeliveryPath::HttpRange | DeliveryPath::MqttHttpsRange)
    }
}

/// An interruption of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Interruption {
    /// None: the reference run.
    Baseline,
    /// Link cut for 5 s.
    Cut5,
    /// Link cut for 60 s.
    Cut60,
    /// Link cut for 300 s.
    Cut300,
    /// DUT stopped and started again.
    Restart,
    /// New source port for the DUT.
    NatRebind,
    /// New ETag (or stream version) while the DUT is down.
    EtagChange,
    /// Weak ETag, then a restart: no resume allowed.
    WeakEtagRestart,
}

impl Interruption {
    /// Every interruption, in report order.
    pub const ALL: [Interruption; 8] = [
        Interruption::Baseline,
        Interruption::Cut5,
        Interruption::Cut60,
        Interruption::Cut300,
        Interruption::Restart,
        Interruption::NatRebind,
        Interruption::EtagChange,
        Interruption::WeakEtagRestart,
    ];

    /// The name in case ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Interruption::Baseline => "baseline",
            Interruption::Cut5 => "cut-5s",
            Interruption::Cut60 => "cut-60s",
            Interruption::Cut300 => "cut-300s",
            Interruption::Restart => "restart",
            Interruption::NatRebind => "nat-rebind",
            Interruption::EtagChange => "etag-change",
            Interruption::WeakEtagRestart => "weak-etag-restart",
        }
    }

    fn cut(self) -> Option<Duration> {
        match self {
            Interruption::Cut5 => Some(Duration::from_secs(5)),
            Interruption::Cut60 => Some(Duration::from_secs(60)),
            Interruption::Cut300 => Some(Duration::from_secs(300)),
            _ => None,
        }
    }

    fn needs_bridge(self) -> bool {
        self.cut().is_some() || self == Interruption::NatRebind
    }
}

/// Whether the matrix has this cell (push has no ETag; only the Range paths
/// have the weak-ETag test).
pub fn exists(path: DeliveryPath, i: Interruption) -> bool {
    match i {
        Interruption::EtagChange => path != DeliveryPath::PushBlock1,
        Interruption::WeakEtagRestart => path.ranged(),
        _ => true,
    }
}

/// The case id of a cell.
pub fn case_id(path: DeliveryPath, i: Interruption) -> String {
    format!("fota.{}.{}", path.as_str(), i.as_str())
}

macro_rules! cell {
    ($p:ident, $i:ident) => {{
        fn body(cx: &mut CaseContext) -> crate::case::CaseFuture<'_> {
            Box::pin(run(cx, DeliveryPath::$p, Interruption::$i))
        }
        (DeliveryPath::$p, Interruption::$i, body as Body)
    }};
}

macro_rules! row {
    ($p:ident) => {
        [
            cell!($p, Baseline),
            cell!($p, Cut5),
            cell!($p, Cut60),
            cell!($p, Cut300),
            cell!($p, Restart),
            cell!($p, NatRebind),
            cell!($p, EtagChange),
            cell!($p, WeakEtagRestart),
        ]
    };
}

type Body = for<'a> fn(&'a mut CaseContext) -> crate::case::CaseFuture<'a>;

static IDS: LazyLock<BTreeMap<(DeliveryPath, Interruption), &'static str>> = LazyLock::new(|| {
    let mut m = BTreeMap::new();
    for p in DeliveryPath::ALL {
        for i in Interruption::ALL {
            // Leaked once per process: case ids are `&'static str`.
            m.insert((p, i), &*Box::leak(case_id(p, i).into_boxed_str()));
        }
    }
    m
});

/// The matrix's cases, path by path.
pub(crate) fn cases() -> Vec<CaseDef> {
    let rows: [[(DeliveryPath, Interruption, Body); 8]; 6] = [
        row!(CoapBlock2),
        row!(HttpRange),
        row!(PushBlock1),
        row!(MqttHttps),
        row!(MqttHttpsRange),
        row!(MqttStream),
    ];
    let mut out = Vec::new();
    for (p, i, body) in rows.into_iter().flatten() {
        if !exists(p, i) {
            continue;
        }
        let requires: &'static [&'static str] = if i.needs_bridge() {
            &["lwm2m", "console", "impair"]
        } else {
            &["lwm2m", "console"]
        };
        let cut = i.cut().map_or(0, |d| d.as_secs());
        out.push(CaseDef {
            meta: CaseMeta {
                id: IDS.get(&(p, i)).copied().unwrap_or("fota.unknown"),
                title: "FOTA interruption and resume",
                area: Area::FirmwareUpdate,
                requires,
                start: StartState::Stopped,
                // Two downloads (baseline and run), the cut, the retries.
                timeout: Duration::from_secs(600 + cut),
                reading: Some(
                    "See rig/suite/src/cases/fota/interrupt.rs: interruption at 50% of the 1 MiB \
                     image; figures against the uninterrupted baseline of the same path.",
                ),
                unscaled_timeout: false,
                max_time_scale: None,
            },
            body,
        });
    }
    out
}

/// The figures of one transfer.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Figures {
    /// L2 bytes both ways (simulated network), or file bytes served (loopback).
    bytes: u64,
    /// Whether `bytes` are wire bytes.
    on_wire: bool,
    /// Security handshakes.
    handshakes: u64,
    /// From the trigger to the `fota downloaded` line.
    seconds: f64,
}

static BASELINES: LazyLock<Mutex<BTreeMap<DeliveryPath, Figures>>> =
    LazyLock::new(|| Mutex::new(BTreeMap::new()));

fn baselines() -> std::sync::MutexGuard<'static, BTreeMap<DeliveryPath, Figures>> {
    BASELINES.lock().unwrap_or_else(|e| e.into_inner())
}

/// The MQTT side of a session.
struct MqttSide {
    _broker: Broker,
    platform: Platform,
    streams: StreamService,
    _pki_dir: tempfile::TempDir,
    jobs: u32,
}

/// Everything one case keeps alive.
struct Session {
    path: DeliveryPath,
    servers: FileServers,
    mqtt: Option<MqttSide>,
    cfg: DutConfig,
    _state_dir: tempfile::TempDir,
    push: Option<tokio::task::JoinHandle<Result<lwm2m::Code, String>>>,
    /// Stream version (mqtt-stream).
    stream_version: u32,
}

fn infra<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> CaseFailure + '_ {
    move |e| CaseFailure::infra(format!("{what}: {e}"))
}

async fn setup(cx: &mut CaseContext, path: DeliveryPath) -> Result<Session, CaseFailure> {
    if !path.is_mqtt() {
        let protos: Vec<Proto> = path.proto().into_iter().collect();
        let f = begin_with(cx, &protos, &[]).await?;
        f.servers.pace_http(MATRIX_HTTP_RATE);
        let mut cfg = start::dut_config(cx, crate::case::EtsConfig::C1);
        cfg.extra
            .extend(support::fota_extra(f.state_dir.path(), &f.servers));
        return Ok(Session {
            path,
            servers: f.servers,
            mqtt: None,
            cfg,
            _state_dir: f.state_dir,
            push: None,
            stream_version: 1,
        });
    }
    let servers = FileServers::start(cx, &[Proto::Https]).await?;
    servers.pace_http(MATRIX_HTTP_RATE);
    let state_dir = tempfile::tempdir().map_err(infra("temp dir for the DUT's FOTA state"))?;
    let pki_dir = tempfile::tempdir().map_err(infra("temp dir for the MQTT PKI"))?;
    let ep = cx.endpoint.clone();
    let pki = TestPki::generate_for(
        pki_dir.path(),
        PkiProfile::Protocol,
        &[ep.as_str(), "rig-platform", "rig-streams"],
        &[cx.net.services_ip().to_string()],
    )
    .map_err(infra("MQTT test PKI"))?;
    let listener = cx.net.bind_tcp(0).map_err(infra("bind the MQTT broker"))?;
    // `Broker::start_on`'s future is not `Send` (it keeps a std channel
    // receiver across an await), and a case body must be: drive it to its
    // end on a blocking thread of the same runtime, where its tasks spawn.
    let config = BrokerConfig::new(BrokerKind::Embedded, pki.broker_tls());
    let handle = tokio::runtime::Handle::current();
    let broker =
        tokio::task::spawn_blocking(move || handle.block_on(Broker::start_on(config, listener)))
            .await
            .map_err(infra("the MQTT broker's start task"))?
            .map_err(infra("start the MQTT broker"))?;
    let root = broker.aws_topic_root().to_string();
    let client = |id: &str| -> Result<ClientTls, CaseFailure> {
        let creds = pki
            .client(id)
            .ok_or_else(|| CaseFailure::infra(format!("no MQTT credentials for {id}")))?;
        Ok(ClientTls::new(pki.ca_pem(), creds))
    };
    let mut pcfg = PlatformConfig::new(broker.local_connect_addr(), client("rig-platform")?);
    pcfg.aws_root = root.clone();
    let platform = Platform::start(pcfg)
        .await
        .map_err(infra("start the platform emulator"))?;
    let mut scfg = StreamServiceConfig::new(broker.local_connect_addr(), client("rig-streams")?);
    scfg.aws_root = root.clone();
    let streams = StreamService::start(scfg)
        .await
        .map_err(infra("start the MQTT stream service"))?;
    let img = support::image(IMAGE)?;
    streams.put_stream(IMAGE, 1, vec![(0, Arc::new(img.image.to_vec()))]);
    let device = pki
        .client(&ep)
        .ok_or_else(|| CaseFailure::infra("no MQTT credentials for the DUT"))?;
    let mut cfg = start::dut_config(cx, crate::case::EtsConfig::C1);
    cfg.extra
        .extend(support::fota_extra(state_dir.path(), &servers));
    let b = broker.local_addr();
    for (k, v) in [
        ("mqtt", format!("mqtts://{}:{}", b.ip(), b.port())),
        ("mqtt_variant", "aws".to_string()),
        ("mqtt_topic_root", root),
        ("mqtt_cert", device.cert_path.display().to_string()),
        ("mqtt_key", device.key_path.display().to_string()),
        ("mqtt_ca", pki.ca_path().display().to_string()),
        (
            "mqtt_fota",
            match path {
                DeliveryPath::MqttHttps => "https",
                DeliveryPath::MqttHttpsRange => "https-range",
                _ => "stream",
            }
            .to_string(),
        ),
        ("mqtt_stream_block", "1024".to_string()),
    ] {
        cfg.extra.insert(k.to_string(), v);
    }
    cx.step("starting the DUT in MQTT mode");
    cx.dut
        .start(&cfg)
        .await
        .map_err(infra("could not start the DUT"))?;
    let wait = start::prompt_wait(cx, start::REGISTER_WAIT);
    cx.dut
        .expect_console("subscribed", wait)
        .await
        .map_err(|e| CaseFailure::inconclusive(format!("the DUT did not subscribe: {e}")))?;
    Ok(Session {
        path,
        servers,
        mqtt: Some(MqttSide {
            _broker: broker,
            platform,
            streams,
            _pki_dir: pki_dir,
            jobs: 0,
        }),
        cfg,
        _state_dir: state_dir,
        push: None,
        stream_version: 1,
    })
}

impl Session {
    /// File bytes served so far: distinct, total and duplicated.
    fn served(&self) -> ServeSummary {
        match (self.path.proto(), &self.mqtt) {
            (Some(p), _) => self.servers.summary(p),
            (None, Some(m)) if self.path == DeliveryPath::MqttStream => {
                let s = m.streams.summary();
                ServeSummary {
                    requests: s.requests,
                    bodies: s.blocks,
                    repeats: s.repeats,
                    payload_bytes: s.payload_bytes,
                    unique_bytes: s.unique_bytes,
                    duplicate_bytes: s.duplicate_bytes,
                    errors: s.rejected,
                    cut_bodies: 0,
                }
            }
            _ => ServeSummary::default(),
        }
    }

    /// DTLS handshakes (CoAPS) or TLS connections (HTTPS) at the file
    /// server. The MQTT connection's own TLS handshakes are not counted:
    /// the broker relay does not report them.
    fn handshakes(&self) -> u64 {
        self.path.proto().map_or(0, |p| self.servers.handshakes(p))
    }

    fn clear(&self) {
        self.servers.clear_records();
        if let Some(m) = &self.mqtt {
            m.streams.clear_records();
        }
    }
}

/// Starts one download of the image.
async fn trigger(cx: &mut CaseContext, s: &mut Session) -> CaseResult {
    match s.path {
        DeliveryPath::CoapBlock2 | DeliveryPath::HttpRange => {
            let uri = s
                .servers
                .uri(s.path.proto().unwrap_or(Proto::Coap), IMAGE)?;
            support::write_uri(cx, &uri).await
        }
        DeliveryPath::PushBlock1 => {
            let server = cx.server.with_op_timeout(Duration::from_secs(120));
            let ep = cx.endpoint.clone();
            let bytes = support::image(IMAGE)?.image.to_vec();
            let p = support::path(support::PACKAGE)?;
            cx.step("Write /5/0/0 (1 MiB, Block1), in the background");
            s.push = Some(tokio::spawn(async move {
                server
                    .write(&ep, &p, lwm2m::ContentFormat::Opaque, bytes)
                    .await
                    .map(|r| r.code)
                    .map_err(|e| e.to_string())
            }));
            Ok(())
        }
        _ => {
            let Some(m) = s.mqtt.as_mut() else {
                return Err(CaseFailure::infra("no MQTT side"));
            };
            m.jobs += 1;
            let img = support::image(IMAGE)?;
            let url = s.servers.uri(Proto::Https, IMAGE)?;
            let doc = serde_json::json!({
                "operation": "fota",
                "url": url,
                "sha256": img.image.sha256_hex(),
                "size": img.image.len(),
                // The stream of the image (mqtt-stream), under the names
                // AWS's OTA job documents use too.
                "streamId": IMAGE,
                "streamname": IMAGE,
                "fileId": 0,
                "fileid": 0,
            });
            let job = format!("fota-{}", m.jobs);
            cx.step(format!("job {job}: {doc}"));
            m.platform
                .create_job(&cx.endpoint, &job, doc)
                .map_err(infra("create the job"))
        }
    }
}

/// Waits until at least `bytes` distinct file bytes were served.
pub(crate) async fn wait_served(
    servers: &FileServers,
    proto: Proto,
    bytes: u64,
    timeout: Duration,
) -> CaseResult {
    let deadline = Instant::now() + timeout;
    while servers.summary(proto).unique_bytes < bytes {
        if Instant::now() >= deadline {
            return Err(CaseFailure::fail(format!(
                "the {} server served {} of the first {bytes} bytes within {:.0} s",
                proto.scheme(),
                servers.summary(proto).unique_bytes,
                timeout.as_secs_f64()
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Waits until the transfer is half done: the server's record of distinct
/// bytes served; for the push, whose bytes the LwM2M server does not
/// record, half the baseline's duration.
async fn wait_half(s: &Session, base: &Figures) -> CaseResult {
    let half = support::image(IMAGE)?.image.len() / 2;
    let deadline = Instant::now() + DOWNLOAD_WAIT;
    if s.path == DeliveryPath::PushBlock1 {
        tokio::time::sleep(Duration::from_secs_f64(base.seconds / 2.0)).await;
        return Ok(());
    }
    while s.served().unique_bytes < half {
        if Instant::now() >= deadline {
            return Err(CaseFailure::fail(format!(
                "only {} of {} bytes served within {:.0} s",
                s.served().unique_bytes,
                2 * half,
                DOWNLOAD_WAIT.as_secs_f64()
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// How a transfer ended.
enum Outcome {
    Downloaded(Downloaded),
    Failed(i64),
}

/// Reads `fota …` lines until `fota downloaded` or a failure result.
async fn outcome(cx: &mut CaseContext, timeout: Duration) -> Result<Outcome, CaseFailure> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = cx.dut.expect_console("fota ", left).await.map_err(|e| {
            CaseFailure::fail(format!(
                "the download neither completed nor failed within {:.0} s: {e}",
                timeout.as_secs_f64()
            ))
        })?;
        if let Some(d) = support::parse_downloaded(&line) {
            return Ok(Outcome::Downloaded(d));
        }
        if line.contains("fota state=")
            && let Some(r) = support::field(&line, "result").and_then(|r| r.parse::<i64>().ok())
            && r >= 2
        {
            return Ok(Outcome::Failed(r));
        }
    }
}

/// Push path: re-pushes after a failed Write (the server restarts a push)
/// until a Write gets 2.04 or `limit` passes (a cut outlasts several
/// attempts: each fails only after the Write's own timeout); returns how
/// many pushes failed before the one that got 2.04.
async fn finish_push(
    cx: &mut CaseContext,
    s: &mut Session,
    limit: Duration,
) -> Result<u32, CaseFailure> {
    let deadline = Instant::now() + limit;
    for attempt in 0..10 {
        let Some(task) = s.push.take() else {
            return Ok(attempt);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let r = tokio::time::timeout(left, task)
            .await
            .map_err(|_| CaseFailure::fail("the push did not end in time"))?
            .map_err(infra("push task"))?;
        match r {
            Ok(code) if code == lwm2m::Code::CHANGED => return Ok(attempt),
            other => {
                cx.step(format!(
                    "push attempt {} ended with {other:?}; the server pushes again",
                    attempt + 1
                ));
                // Make the server learn the DUT's current address.
                let mut events = cx.server.events();
                if cx.dut.supports(&DutAction::TriggerUpdate) {
                    let _ = cx.dut.act(&DutAction::TriggerUpdate).await;
                }
                let ep = cx.endpoint.clone();
                let _ = lwm2m::wait_for(&mut events, Duration::from_secs(30), |e| {
                    matches!(e, ServerEvent::Updated { endpoint, .. } | ServerEvent::Registered { endpoint, .. } if *endpoint == ep)
                })
                .await;
                trigger(cx, s).await?;
            }
        }
    }
    Err(CaseFailure::fail("ten push attempts failed"))
}

/// Restarts the DUT with the same provisioning (and state directory).
async fn restart(cx: &mut CaseContext, s: &Session, between: impl FnOnce(&Session)) -> CaseResult {
    cx.step("stopping the DUT mid-download");
    cx.dut.stop().await.map_err(infra("stop the DUT"))?;
    between(s);
    cx.step("starting the DUT again (same state directory)");
    if s.path.is_mqtt() {
        cx.dut.start(&s.cfg).await.map_err(infra("start the DUT"))?;
        let wait = start::prompt_wait(cx, start::REGISTER_WAIT);
        cx.dut
            .expect_console("subscribed", wait)
            .await
            .map_err(|e| CaseFailure::fail(format!("the DUT did not subscribe again: {e}")))?;
    } else {
        start::start_and_wait_register(cx, &s.cfg, "C.1 with FOTA (restart)").await?;
    }
    Ok(())
}

/// Downloads once, uninterrupted, and returns its figures.
async fn measure_run(
    cx: &mut CaseContext,
    s: &mut Session,
    window: &str,
) -> Result<(Outcome, Figures), CaseFailure> {
    let bridge = cx.net.bridge().cloned();
    if let Some(b) = &bridge {
        b.begin_window(window).map_err(infra("accounting window"))?;
    }
    let started = Instant::now();
    trigger(cx, s).await?;
    if s.path == DeliveryPath::PushBlock1 {
        finish_push(cx, s, DOWNLOAD_WAIT).await?;
    }
    let out = outcome(cx, DOWNLOAD_WAIT).await?;
    let fig = figures(s, bridge.as_ref(), window, started)?;
    Ok((out, fig))
}

fn figures(
    s: &Session,
    bridge: Option<&rig_net::BridgeControl>,
    window: &str,
    started: Instant,
) -> Result<Figures, CaseFailure> {
    let seconds = started.elapsed().as_secs_f64();
    let (bytes, on_wire) = match bridge {
        Some(b) => {
            let acc = b.end_window(window).map_err(infra("accounting window"))?;
            let up = acc.dir(rig_net::Direction::Up).total.l2_bytes;
            let down = acc.dir(rig_net::Direction::Down).total.l2_bytes;
            (up + down, true)
        }
        None => (s.served().payload_bytes, false),
    };
    Ok(Figures {
        bytes,
        on_wire,
        handshakes: s.handshakes(),
        seconds,
    })
}

/// Resets the DUT's FOTA state after a completed download.
async fn reset(cx: &mut CaseContext, s: &Session) -> CaseResult {
    match s.path {
        DeliveryPath::CoapBlock2 | DeliveryPath::HttpRange => support::write_uri(cx, "").await,
        DeliveryPath::PushBlock1 => {
            support::push(cx, vec![0], Duration::from_secs(30)).await?;
            Ok(())
        }
        // A finished job is finished; the next job starts afresh.
        _ => Ok(()),
    }
}

fn intact(out: &Outcome) -> Result<bool, CaseFailure> {
    match out {
        Outcome::Downloaded(d) => Ok(support::check_image(IMAGE, d).is_ok()),
        Outcome::Failed(_) => Ok(false),
    }
}

async fn run(cx: &mut CaseContext, path: DeliveryPath, i: Interruption) -> CaseResult {
    if i.needs_bridge() {
        cx.net
            .require_bridge(&format!("the interruption {}", i.as_str()))?;
    }
    let mut s = setup(cx, path).await?;
    let total = support::image(IMAGE)?.image.len();

    // The baseline: cached per path for the run.
    let cached = baselines().get(&path).copied();
    let base = match cached {
        Some(b) if i != Interruption::Baseline => b,
        _ => {
            cx.step(format!("{}: uninterrupted baseline", path.as_str()));
            let (out, fig) = measure_run(cx, &mut s, "fota-baseline").await?;
            if let Outcome::Downloaded(d) = &out {
                support::check_image(IMAGE, d)?;
            } else if let Outcome::Failed(r) = out {
                return Err(CaseFailure::fail(format!(
                    "the uninterrupted download failed with Update Result {r}"
                )));
            }
            baselines().insert(path, fig);
            if i == Interruption::Baseline {
                cx.measure(
                    "fota.bytes",
                    if fig.on_wire { "B" } else { "B (file)" },
                    fig.bytes as f64,
                );
                cx.measure("fota.handshakes", "count", fig.handshakes as f64);
                cx.measure("fota.time_to_complete_s", "s", fig.seconds);
                cx.measure("fota.extra_bytes", "B", 0.0);
                cx.measure(
                    "fota.duplicated_payload_bytes",
                    "B",
                    s.served().duplicate_bytes as f64,
                );
                cx.measure("fota.extra_handshakes", "count", 0.0);
                cx.measure("fota.extra_time_s", "s", 0.0);
                cx.measure("fota.image_intact", "bool", 1.0);
                return Ok(());
            }
            reset(cx, &s).await?;
            fig
        }
    };
    s.clear();
    if i == Interruption::WeakEtagRestart {
        s.servers.store.set_weak_etag(IMAGE, true);
    }

    // The interrupted run.
    let bridge = cx.net.bridge().cloned();
    let window = "fota-run";
    if let Some(b) = &bridge {
        b.begin_window(window).map_err(infra("accounting window"))?;
    }
    let started = Instant::now();
    trigger(cx, &mut s).await?;
    wait_half(&s, &base).await?;
    let at_half = s.served();
    cx.step(format!(
        "50% reached ({} bytes served): {}",
        at_half.unique_bytes,
        i.as_str()
    ));
    let mut before_restart = None;
    match i {
        Interruption::Baseline => {}
        Interruption::Cut5 | Interruption::Cut60 | Interruption::Cut300 => {
            let d = i.cut().unwrap_or_default();
            if let Some(b) = &bridge {
                b.cut(None, Some(d)).map_err(infra("cut the link"))?;
            }
        }
        Interruption::NatRebind => {
            if let Some(b) = &bridge {
                b.rebind_nat().map_err(infra("rebind the NAT"))?;
            }
        }
        Interruption::Restart | Interruption::WeakEtagRestart => {
            // What was served up to the stop: a DUT that resumes at start
            // (before it registers) fetches while `restart` still waits.
            let mut at_stop = at_half;
            restart(cx, &s, |s| at_stop = s.served()).await?;
            before_restart = Some(at_stop);
        }
        Interruption::EtagChange => {
            let path = s.path;
            let mut version = s.stream_version;
            let mut at_stop = at_half;
            restart(cx, &s, |s| {
                at_stop = s.served();
                if path == DeliveryPath::MqttStream {
                    version += 1;
                    if let (Some(m), Ok(img)) = (&s.mqtt, support::image(IMAGE)) {
                        m.streams.put_stream(
                            IMAGE,
                            version,
                            vec![(0, Arc::new(img.image.to_vec()))],
                        );
                    }
                } else {
                    s.servers.store.set_etag(IMAGE, b"rig-new-etag");
                }
            })
            .await?;
            s.stream_version = version;
            before_restart = Some(at_stop);
        }
    }
    let mut failed_pushes = 0;
    if s.path == DeliveryPath::PushBlock1 {
        let limit = DOWNLOAD_WAIT + i.cut().unwrap_or_default() + Duration::from_secs(120);
        failed_pushes = finish_push(cx, &mut s, limit).await?;
    }
    let limit = DOWNLOAD_WAIT + i.cut().unwrap_or_default() + Duration::from_secs(180);
    let mut out = outcome(cx, limit).await?;
    // A failed push may have ended in Result 4 (the DUT's blocks stopped);
    // the push that got 2.04 came after it, and so does its outcome.
    while failed_pushes > 0 && matches!(out, Outcome::Failed(4)) {
        failed_pushes -= 1;
        out = outcome(cx, limit).await?;
    }
    let fig = figures(&s, bridge.as_ref(), window, started)?;
    let served = s.served();
    let ok = intact(&out)?;
    cx.measure(
        "fota.bytes",
        if fig.on_wire { "B" } else { "B (file)" },
        fig.bytes as f64,
    );
    cx.measure(
        "fota.extra_bytes",
        "B",
        fig.bytes as f64 - base.bytes as f64,
    );
    cx.measure(
        "fota.duplicated_payload_bytes",
        "B",
        served.duplicate_bytes as f64,
    );
    cx.measure(
        "fota.extra_handshakes",
        "count",
        fig.handshakes as f64 - base.handshakes as f64,
    );
    cx.measure("fota.time_to_complete_s", "s", fig.seconds);
    cx.measure("fota.extra_time_s", "s", fig.seconds - base.seconds);
    cx.measure("fota.image_intact", "bool", if ok { 1.0 } else { 0.0 });

    // The expected behaviour.
    match &out {
        Outcome::Failed(4) if matches!(i, Interruption::Cut60 | Interruption::Cut300) => {
            cx.step(
                "the DUT gave up after its retries: Update Result 4, as allowed for a long cut",
            );
            return Ok(());
        }
        Outcome::Failed(r) => {
            return Err(CaseFailure::fail(format!(
                "the download ended with Update Result {r} after {}",
                i.as_str()
            )));
        }
        Outcome::Downloaded(d) => support::check_image(IMAGE, d)?,
    }
    let block = 1024u64;
    let resumes_after_restart = matches!(
        path,
        DeliveryPath::CoapBlock2 | DeliveryPath::HttpRange | DeliveryPath::MqttHttpsRange
    );
    let refetches_all = match i {
        Interruption::EtagChange | Interruption::WeakEtagRestart => true,
        Interruption::Restart => !resumes_after_restart,
        _ => false,
    };
    // The push's bytes are not recorded by a file server (the LwM2M server
    // writes them): that the server pushed the whole image again is
    // `finish_push`'s 2.04 on a complete Block1 Write.
    if let Some(before) = before_restart.filter(|_| path != DeliveryPath::PushBlock1) {
        let after = served.payload_bytes.saturating_sub(before.payload_bytes);
        if refetches_all && after < total {
            return Err(CaseFailure::fail(format!(
                "after {} the DUT must fetch the whole image again, but only {after} of {total} \
                 bytes were served after the restart",
                i.as_str()
            )));
        }
        if !refetches_all && resumes_after_restart && after >= total {
            return Err(CaseFailure::fail(format!(
                "after a restart the DUT must resume, but it fetched {after} bytes (the whole \
                 {total}-byte image) again"
            )));
        }
    }
    if path == DeliveryPath::CoapBlock2 && !refetches_all && served.duplicate_bytes > 4 * block {
        return Err(CaseFailure::fail(format!(
            "a CoAP Block2 pull must resume at the next block: {} bytes were fetched twice \
             (more than 4 blocks)",
            served.duplicate_bytes
        )));
    }
    if path.ranged() && i == Interruption::Restart {
        check_range_resume(&s, total)?;
    }
    if i == Interruption::WeakEtagRestart
        && let Some(h) = s.path.proto().and_then(|p| s.servers.http(p))
        && let Some(bad) = h
            .records()
            .iter()
            .find(|r| r.if_match.as_deref().is_some_and(|m| m.starts_with("W/")))
    {
        return Err(CaseFailure::fail(format!(
            "the DUT resumed on a weak ETag: If-Match {:?}",
            bad.if_match
        )));
    }
    Ok(())
}

/// After a restart, an HTTP Range pull must ask for `bytes=N-` with N ≥ 40%
/// of the image and `If-Match` on the strong ETag.
fn check_range_resume(s: &Session, total: u64) -> CaseResult {
    let Some(h) = s.path.proto().and_then(|p| s.servers.http(p)) else {
        return Ok(());
    };
    let etag = s
        .servers
        .store
        .get(IMAGE)
        .map(|i| i.http_etag())
        .unwrap_or_default();
    let records = h.records();
    let resumed = records.iter().find(|r| {
        r.range
            .as_deref()
            .and_then(|v| v.strip_prefix("bytes="))
            .and_then(|v| v.split('-').next())
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n * 10 >= total * 4)
    });
    match resumed {
        None => Err(CaseFailure::fail(format!(
            "no resumed request (Range: bytes=N- with N at least 40% of {total}) after the \
             restart; requests: {:?}",
            records
                .iter()
                .map(|r| (r.range.clone(), r.status))
                .collect::<Vec<_>>()
        ))),
        Some(r) if r.if_match.as_deref() != Some(etag.as_str()) => Err(CaseFailure::fail(format!(
            "the resumed request had If-Match {:?}, expected the strong ETag {etag}",
            r.if_match
        ))),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_has_every_cell_but_push_etag_and_weak_etag_on_non_range_paths() {
        let ids: Vec<String> = cases().iter().map(|c| c.meta.id.to_string()).collect();
        assert_eq!(ids.len(), 6 * 6 + 5 + 2);
        assert!(ids.contains(&"fota.lwm2m-coap-block2.cut-5s".to_string()));
        assert!(ids.contains(&"fota.mqtt-stream.etag-change".to_string()));
        assert!(ids.contains(&"fota.lwm2m-http-range.weak-etag-restart".to_string()));
        assert!(!ids.contains(&"fota.lwm2m-push-block1.etag-change".to_string()));
        assert!(!ids.contains(&"fota.lwm2m-coap-block2.weak-etag-restart".to_string()));
        let cut = cases()
            .into_iter()
            .find(|c| c.meta.id == "fota.mqtt-https.cut-300s")
            .unwrap();
        assert!(cut.meta.requires.contains(&"impair"));
        assert!(cut.meta.timeout >= Duration::from_secs(900));
    }
}
