//! The MachNation 2020 study's scenarios as cases, and the comparison cases.
//!
//! Ids are `machnation.<scenario>.<variant>`: the scenarios of the study
//! (`shared/reference/machnation-2020.md`: initial connection, steady state,
//! an observation every 30 s, one platform-to-device write, OTA, power at
//! idle and at 1/30/60 s) for LwM2M (`lwm2m`), the AWS-IoT-like MQTT
//! baseline (`mqtt-aws`) and the protocol-only MQTT baseline (`mqtt-plain`),
//! and `machnation.<scenario>.compare`, whose measurements are the LwM2M ÷
//! MQTT ratios of the same run. Each case starts the DUT itself with the
//! study's parameters, opens a byte-accounting window on the simulated
//! network's bridge for the study's window, and counts what the study
//! counted: only the device's traffic to and from the platform (the CoAP,
//! MQTT and HTTP protocol classes of [`rig_net::Accounting`], whole Ethernet
//! frames without FCS; ARP and anything else are left out), as
//! `shared/reference/mqtt-baseline.md` §0 defines bytes.
//!
//! Parameters (suite `[params."machnation.*"]`, all optional):
//! - `broker`: `"rumqttd"` (default, embedded) or `"mosquitto"`;
//! - `link`: a `rig_net::Profile` name (`"nb-iot"`, `"lte-m"`) set on the
//!   bridge for the case, or `"ethernet"` (default: the bench's link);
//! - `encoding`: `"tlv"` (default) or `"senml-cbor"`, the LwM2M Observe's Accept;
//! - `queue_mode`: LwM2M binding `UQ` instead of `U` (default false);
//! - `lwm2m_security`: `"x509"` (default, as the study) or `"nosec"`;
//! - `report_period_s`: the observation scenario's period (default 30);
//! - `window_s`: the scenario's window in seconds at time scale 1 (default
//!   the study's; the time-scale tests shorten it), `lifetime_s` (LwM2M,
//!   default 600) and `keepalive_s` (MQTT, default 600);
//! - `string_len`: length of the test object's string (default
//!   [`STRING_LEN`], which makes one TLV notification frame 182 B over DTLS);
//! - `limits`: a table `{ "<measurement>" = [low, high] }` applied to this
//!   case's measurements (the engine fails a case outside them).
//!
//! Time scale: windows and every protocol timer of the rig and the agent
//! (lifetime/Update schedule, pmax, keepalive, report period) are divided by
//! the suite's `time_scale`; a window with no timer inside (initial
//! connection, write) is never shorter than [`MIN_WINDOW`] real time, and
//! reports are never closer than [`MIN_REAL_PERIOD`] (a scenario that would
//! make them closer runs at a smaller scale: power at 1 s at 4, recorded as
//! `machnation.time_scale`). What is proven about packet counts under
//! scaling is in `rig/cli/tests/machnation.rs`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rig_bench::dut::DutConfig;
use rig_dtls::CipherSuite;
use rig_net::frame::ProtoClass;
use rig_net::{Accounting, BridgeControl, Direction};
use rig_report::events::Limits;
use rig_services::file_server::{
    CoapFileServer, CoapServerConfig, FileStore, HttpFileServer, HttpServerConfig, HttpsPki,
};
use rig_services::lwm2m::{self, ContentFormat, Lwm2mServer, ObjectPath, ServerEvent};
use rig_services::mqtt::{
    Broker, BrokerConfig, BrokerKind, ClientTls, PkiProfile, Platform, PlatformConfig, QoS, TestPki,
};
use tokio::sync::broadcast;

use crate::case::{Area, CaseContext, CaseDef, CaseFailure, CaseMeta, CaseResult, StartState};
use crate::start::{self, MIN_PROMPT_WAIT, REGISTER_WAIT, ServerCert, prompt_wait};

/// Length of the test object's string so that one NON TLV notification of
/// `/33333/0` over DTLS (AES-128-CCM-8) is a 182-byte Ethernet frame, as in
/// the study (mqtt-baseline.md §1: ~76 characters with an 8-byte token).
pub const STRING_LEN: usize = 76;

/// The shortest real window, whatever the time scale: DUT start-up, TLS and
/// DTLS handshakes do not scale.
pub const MIN_WINDOW: Duration = Duration::from_secs(5);

/// The study's LwM2M lifetime (one Update in the 10-minute window).
pub const LIFETIME_S: u32 = 600;

/// The report period of the observation scenario.
pub const REPORT_PERIOD_S: u32 = 30;

/// Location id length that makes an Update 87 + 9 = 96 B (study: 179 B with the 2.04).
const LOCATION_LEN: usize = 9;

/// One scenario of the study.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Scenario 1: registration / connection (2 min).
    InitialConnection,
    /// Scenario 2: connected, no reports (10 min).
    SteadyState,
    /// Scenario 3: a report every 30 s (5 min).
    Observation,
    /// Scenario 4: one platform-to-device integer write (2 min).
    Write,
    /// Scenario 5: a 1 MiB firmware download (5 min).
    Ota,
    /// Scenario 6: power at idle and at 1, 30, 60 s intervals (10 min each).
    Power(Option<u32>),
}

impl Scenario {
    /// Every scenario, in the study's order.
    pub const ALL: [Scenario; 9] = [
        Scenario::InitialConnection,
        Scenario::SteadyState,
        Scenario::Observation,
        Scenario::Write,
        Scenario::Ota,
        Scenario::Power(None),
        Scenario::Power(Some(1)),
        Scenario::Power(Some(30)),
        Scenario::Power(Some(60)),
    ];

    /// The name in case ids.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::InitialConnection => "initial-connection",
            Scenario::SteadyState => "steady-state",
            Scenario::Observation => "observation",
            Scenario::Write => "write",
            Scenario::Ota => "ota",
            Scenario::Power(None) => "power-idle",
            Scenario::Power(Some(1)) => "power-1s",
            Scenario::Power(Some(30)) => "power-30s",
            Scenario::Power(Some(_)) => "power-60s",
        }
    }

    /// The study's window at time scale 1.
    pub fn window(self) -> Duration {
        Duration::from_secs(match self {
            Scenario::InitialConnection | Scenario::Write => 120,
            Scenario::SteadyState | Scenario::Power(_) => 600,
            Scenario::Observation | Scenario::Ota => 300,
        })
    }

    /// What rig adds to the study's window, at time scale 1, so the event
    /// at its end is inside (the 10th report at 300 s; the keepalive at 600 s
    /// and its ACK): half a report period, or 5 %.
    pub fn guard(self) -> Duration {
        match self {
            Scenario::Observation => Duration::from_secs(u64::from(REPORT_PERIOD_S) / 2),
            Scenario::Power(Some(i)) => Duration::from_millis(500 * u64::from(i)),
            Scenario::SteadyState | Scenario::Power(None) => Duration::from_secs(30),
            _ => Duration::ZERO,
        }
    }
}

/// One protocol variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// LwM2M 1.1 over DTLS with certificates (the study's Anjay side).
    Lwm2m,
    /// MQTT 3.1.1 over TLS 1.2, AWS-IoT-like (the study's SDK side).
    MqttAws,
    /// MQTT 3.1.1 over TLS 1.2, protocol only (mqtt-baseline.md §6.3).
    MqttPlain,
}

impl Variant {
    /// Every variant, LwM2M first.
    pub const ALL: [Variant; 3] = [Variant::Lwm2m, Variant::MqttAws, Variant::MqttPlain];

    /// The name in case ids.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Lwm2m => "lwm2m",
            Variant::MqttAws => "mqtt-aws",
            Variant::MqttPlain => "mqtt-plain",
        }
    }
}

/// Figures of one scenario case, by measurement name.
type Figures = BTreeMap<String, f64>;

/// The scenario cases' figures of each run, for the compare cases: run key →
/// (scenario, variant) → figures.
static RESULTS: Mutex<BTreeMap<String, RunFigures>> = Mutex::new(BTreeMap::new());

/// One run's figures: (scenario, variant) → figures.
type RunFigures = BTreeMap<(String, String), Figures>;

/// Identifies the run a case belongs to: its suite file and the run's LwM2M
/// server (one per run).
fn run_key(cx: &CaseContext) -> String {
    format!("{}|{}", cx.params_source, cx.server.uri())
}

fn remember(key: &str, scenario: Scenario, variant: Variant, figures: Figures) {
    let mut all = RESULTS.lock().unwrap_or_else(|p| p.into_inner());
    all.entry(key.to_string()).or_default().insert(
        (scenario.name().to_string(), variant.name().to_string()),
        figures,
    );
}

fn recall(key: &str, scenario: Scenario, variant: &str) -> Option<Figures> {
    let all = RESULTS.lock().unwrap_or_else(|p| p.into_inner());
    all.get(key)?
        .get(&(scenario.name().to_string(), variant.to_string()))
        .cloned()
}

macro_rules! scenario_case {
    ($id:literal, $title:literal, $sc:expr, $var:expr, $req:expr, $reading:expr) => {
        CaseDef {
            meta: CaseMeta {
                id: $id,
                title: $title,
                area: Area::MachNation,
                requires: $req,
                start: StartState::Stopped,
                timeout: timeout_for($sc),
                reading: Some($reading),
                unscaled_timeout: false,
                max_time_scale: max_time_scale($sc),
            },
            body: |cx| Box::pin(scenario_body(cx, $sc, $var)),
        }
    };
}

macro_rules! compare_case {
    ($id:literal, $title:literal, $sc:expr) => {
        CaseDef {
            meta: CaseMeta {
                id: $id,
                title: $title,
                area: Area::MachNation,
                requires: &[],
                start: StartState::Stopped,
                timeout: Duration::from_secs(600),
                reading: Some(COMPARE_READING),
                unscaled_timeout: false,
                max_time_scale: None,
            },
            body: |cx| Box::pin(compare_body(cx, $sc)),
        }
    };
}

/// The case timeout at time scale 1 (the engine divides it by the scale):
/// the window plus 20 minutes, so fixed costs (start-up, handshakes, PKI)
/// still fit at a large scale.
const fn timeout_for(s: Scenario) -> Duration {
    let w = match s {
        Scenario::InitialConnection | Scenario::Write => 120,
        Scenario::Observation | Scenario::Ota => 300,
        Scenario::SteadyState | Scenario::Power(_) => 630,
    };
    Duration::from_secs(w + 1200)
}

/// The shortest real time between two reports, whatever the time scale.
///
/// Over TCP the count of packets per report depends on whether the next
/// report comes before the peers' delayed-ACK timers fire (Linux: 40 ms to
/// 200 ms, not scaled): then the device's ACK of the platform's reply rides
/// on the next update, and an AWS-like report is 2 packets instead of the
/// study's 3 (measured: power-1s at scale 60, a report every 17 ms, gave 59
/// packets for 30 reports where scale 1 gave 90). A quarter second keeps
/// every ACK timer (at most 200 ms) inside one report's exchange;
/// `rig/cli/tests/machnation.rs` proves the counts equal at scale 1 and at
/// the suite's scale.
pub const MIN_REAL_PERIOD: Duration = Duration::from_millis(250);

/// The largest time scale a scenario's counts hold at: its report period
/// over [`MIN_REAL_PERIOD`] (power at 1 s: 4; at 30 s: 120). `None` for the
/// scenarios without a fixed period (the observation's period is a suite
/// parameter: its case holds the scale itself, see [`report_scale`]).
const fn max_time_scale(s: Scenario) -> Option<f64> {
    match s {
        Scenario::Power(Some(i)) => Some(period_max_scale(i)),
        _ => None,
    }
}

/// The largest time scale that keeps reports every `period_s` (at scale 1)
/// at least [`MIN_REAL_PERIOD`] apart (never below 1).
const fn period_max_scale(period_s: u32) -> f64 {
    let m = period_s as f64 * 1000.0 / MIN_REAL_PERIOD.as_millis() as f64;
    if m < 1.0 { 1.0 } else { m }
}

/// The time scale a scenario with reports every `period_s` (at scale 1)
/// runs at: the context's, held so that a report period is never shorter
/// than [`MIN_REAL_PERIOD`] of real time.
fn report_scale(scale: f64, period_s: Option<u32>) -> f64 {
    match period_s {
        Some(p) => scale.min(period_max_scale(p)),
        None => scale,
    }
}

const LWM2M: &[&str] = &["lwm2m"];
const MQTT: &[&str] = &[];

const READ_LWM2M: &str = "LwM2M 1.1, binding U, lifetime 600 s, DTLS 1.2 with X.509 \
certificates and TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 (the bench's [security]; NoSec only when \
the suite sets lwm2m_security = \"nosec\"), TLV, NON notifications, server location ids of 9 \
characters. Counted: the DUT's CoAP/MQTT/HTTP frames (L2, no FCS) in the study's window.";
const READ_MQTT_AWS: &str = "MQTT 3.1.1 over TLS 1.2 with a client certificate (RSA-2048, \
AWS-like 3-certificate server chain), keepalive 600 s, SDK 1.4.7 behaviour (metrics username, \
accepted/rejected as separate SUBSCRIBEs, QoS 0 shadow updates). Counted: the DUT's \
CoAP/MQTT/HTTP frames (L2, no FCS) in the study's window.";
const READ_MQTT_PLAIN: &str = "MQTT 3.1.1 over TLS 1.2 with a P-256 client certificate and a \
leaf-only server chain, keepalive 600 s, telemetry a QoS 0 PUBLISH of the same TLV as the LwM2M \
notification (mqtt-baseline.md §6.3). Counted as the other variants.";
const COMPARE_READING: &str = "The LwM2M ÷ MQTT ratios of bytes, packets and energy of this \
scenario's cases earlier in the same run (ratio.<metric>.<mqtt variant>). Limits come from the \
suite's `limits` parameter; the defaults follow the study's direction with a margin, so a drop \
in LwM2M's efficiency fails. Not Applicable when the LwM2M case or every MQTT case is missing \
from the run.";

/// The MachNation cases, in run order (each compare case after its scenario's variants).
pub(crate) fn cases() -> Vec<CaseDef> {
    use Scenario as S;
    use Variant as V;
    vec![
        scenario_case!(
            "machnation.initial-connection.lwm2m",
            "MachNation 1: initial connection (LwM2M)",
            S::InitialConnection,
            V::Lwm2m,
            LWM2M,
            READ_LWM2M
        ),
        scenario_case!(
            "machnation.initial-connection.mqtt-aws",
            "MachNation 1: initial connection (MQTT, AWS-like)",
            S::InitialConnection,
            V::MqttAws,
            MQTT,
            READ_MQTT_AWS
        ),
        scenario_case!(
            "machnation.initial-connection.mqtt-plain",
            "MachNation 1: initial connection (MQTT, plain)",
            S::InitialConnection,
            V::MqttPlain,
            MQTT,
            READ_MQTT_PLAIN
        ),
        compare_case!(
            "machnation.initial-connection.compare",
            "MachNation 1: LwM2M ÷ MQTT",
            S::InitialConnection
        ),
        scenario_case!(
            "machnation.steady-state.lwm2m",
            "MachNation 2: steady state (LwM2M)",
            S::SteadyState,
            V::Lwm2m,
            LWM2M,
            READ_LWM2M
        ),
        scenario_case!(
            "machnation.steady-state.mqtt-aws",
            "MachNation 2: steady state (MQTT, AWS-like)",
            S::SteadyState,
            V::MqttAws,
            MQTT,
            READ_MQTT_AWS
        ),
        scenario_case!(
            "machnation.steady-state.mqtt-plain",
            "MachNation 2: steady state (MQTT, plain)",
            S::SteadyState,
            V::MqttPlain,
            MQTT,
            READ_MQTT_PLAIN
        ),
        compare_case!(
            "machnation.steady-state.compare",
            "MachNation 2: LwM2M ÷ MQTT",
            S::SteadyState
        ),
        scenario_case!(
            "machnation.observation.lwm2m",
            "MachNation 3: a report every 30 s (LwM2M)",
            S::Observation,
            V::Lwm2m,
            LWM2M,
            READ_LWM2M
        ),
        scenario_case!(
            "machnation.observation.mqtt-aws",
            "MachNation 3: a report every 30 s (MQTT, AWS-like)",
            S::Observation,
            V::MqttAws,
            MQTT,
            READ_MQTT_AWS
        ),
        scenario_case!(
            "machnation.observation.mqtt-plain",
            "MachNation 3: a report every 30 s (MQTT, plain)",
            S::Observation,
            V::MqttPlain,
            MQTT,
            READ_MQTT_PLAIN
        ),
        compare_case!(
            "machnation.observation.compare",
            "MachNation 3: LwM2M ÷ MQTT",
            S::Observation
        ),
        scenario_case!(
            "machnation.write.lwm2m",
            "MachNation 4: one platform-to-device write (LwM2M)",
            S::Write,
            V::Lwm2m,
            LWM2M,
            READ_LWM2M
        ),
        scenario_case!(
            "machnation.write.mqtt-aws",
            "MachNation 4: one platform-to-device write (MQTT, AWS-like)",
            S::Write,
            V::MqttAws,
            MQTT,
            READ_MQTT_AWS
        ),
        scenario_case!(
            "machnation.write.mqtt-plain",
            "MachNation 4: one platform-to-device write (MQTT, plain)",
            S::Write,
            V::MqttPlain,
            MQTT,
            READ_MQTT_PLAIN
        ),
        compare_case!(
            "machnation.write.compare",
            "MachNation 4: LwM2M ÷ MQTT",
            S::Write
        ),
        scenario_case!(
            "machnation.ota.lwm2m",
            "MachNation 5: OTA of 1 MiB (LwM2M)",
            S::Ota,
            V::Lwm2m,
            LWM2M,
            READ_LWM2M
        ),
        scenario_case!(
            "machnation.ota.mqtt-aws",
            "MachNation 5: OTA of 1 MiB (MQTT, AWS-like)",
            S::Ota,
            V::MqttAws,
            MQTT,
            READ_MQTT_AWS
        ),
        scenario_case!(
            "machnation.ota.mqtt-plain",
            "MachNation 5: OTA of 1 MiB (MQTT, plain)",
            S::Ota,
            V::MqttPlain,
            MQTT,
            READ_MQTT_PLAIN
        ),
        compare_case!(
            "machnation.ota.compare",
            "MachNation 5: LwM2M ÷ MQTT",
            S::Ota
        ),
        scenario_case!(
            "machnation.power-idle.lwm2m",
            "MachNation 6: power at idle (LwM2M)",
            S::Power(None),
            V::Lwm2m,
            LWM2M,
            READ_LWM2M
        ),
        scenario_case!(
            "machnation.power-idle.mqtt-aws",
            "MachNation 6: power at idle (MQTT, AWS-like)",
            S::Power(None),
            V::MqttAws,
            MQTT,
            READ_MQTT_AWS
        ),
        scenario_case!(
            "machnation.power-idle.mqtt-plain",
            "MachNation 6: power at idle (MQTT, plain)",
            S::Power(None),
            V::MqttPlain,
            MQTT,
            READ_MQTT_PLAIN
        ),
        compare_case!(
            "machnation.power-idle.compare",
            "MachNation 6: LwM2M ÷ MQTT at idle",
            S::Power(None)
        ),
        scenario_case!(
            "machnation.power-1s.lwm2m",
            "MachNation 6: power, 1 s reports (LwM2M)",
            S::Power(Some(1)),
            V::Lwm2m,
            LWM2M,
            READ_LWM2M
        ),
        scenario_case!(
            "machnation.power-1s.mqtt-aws",
            "MachNation 6: power, 1 s reports (MQTT, AWS-like)",
            S::Power(Some(1)),
            V::MqttAws,
            MQTT,
            READ_MQTT_AWS
        ),
        scenario_case!(
            "machnation.power-1s.mqtt-plain",
            "MachNation 6: power, 1 s reports (MQTT, plain)",
            S::Power(Some(1)),
            V::MqttPlain,
            MQTT,
            READ_MQTT_PLAIN
        ),
        compare_case!(
            "machnation.power-1s.compare",
            "MachNation 6: LwM2M ÷ MQTT, 1 s reports",
            S::Power(Some(1))
        ),
        scenario_case!(
            "machnation.power-30s.lwm2m",
            "MachNation 6: power, 30 s reports (LwM2M)",
            S::Power(Some(30)),
            V::Lwm2m,
            LWM2M,
            READ_LWM2M
        ),
        scenario_case!(
            "machnation.power-30s.mqtt-aws",
            "MachNation 6: power, 30 s reports (MQTT, AWS-like)",
            S::Power(Some(30)),
            V::MqttAws,
            MQTT,
            READ_MQTT_AWS
        ),
        scenario_case!(
            "machnation.power-30s.mqtt-plain",
            "MachNation 6: power, 30 s reports (MQTT, plain)",
            S::Power(Some(30)),
            V::MqttPlain,
            MQTT,
            READ_MQTT_PLAIN
        ),
        compare_case!(
            "machnation.power-30s.compare",
            "MachNation 6: LwM2M ÷ MQTT, 30 s reports",
            S::Power(Some(30))
        ),
        scenario_case!(
            "machnation.power-60s.lwm2m",
            "MachNation 6: power, 60 s reports (LwM2M)",
            S::Power(Some(60)),
            V::Lwm2m,
            LWM2M,
            READ_LWM2M
        ),
        scenario_case!(
            "machnation.power-60s.mqtt-aws",
            "MachNation 6: power, 60 s reports (MQTT, AWS-like)",
            S::Power(Some(60)),
            V::MqttAws,
            MQTT,
            READ_MQTT_AWS
        ),
        scenario_case!(
            "machnation.power-60s.mqtt-plain",
            "MachNation 6: power, 60 s reports (MQTT, plain)",
            S::Power(Some(60)),
            V::MqttPlain,
            MQTT,
            READ_MQTT_PLAIN
        ),
        compare_case!(
            "machnation.power-60s.compare",
            "MachNation 6: LwM2M ÷ MQTT, 60 s reports",
            S::Power(Some(60))
        ),
    ]
}

/// The test object's string for a length: printable, deterministic.
pub fn test_string(len: usize) -> String {
    const PATTERN: &[u8] = b"rig-machnation-sensor-";
    (0..len)
        .map(|i| char::from(PATTERN[i % PATTERN.len()]))
        .collect()
}

/// The study's payload (a string, an integer, a float, a boolean) as
/// `DutConfig::extra` keys, identical for every variant.
fn payload_extra(extra: &mut BTreeMap<String, String>, string_len: usize) {
    extra.insert("test_string".into(), test_string(string_len));
    extra.insert("test_int".into(), "42".into());
    extra.insert("test_float".into(), "21.5".into());
    extra.insert("test_bool".into(), "true".into());
}

/// The report period of the observation scenario (suite parameter
/// `report_period_s`, default [`REPORT_PERIOD_S`]; tests shorten it to
/// compare time scales), in seconds at time scale 1.
fn report_period(cx: &CaseContext) -> Result<u32, CaseFailure> {
    let p: u32 = cx.param("report_period_s", REPORT_PERIOD_S)?;
    if p == 0 {
        return Err(CaseFailure::infra(format!(
            "{}: params.report_period_s must be at least 1",
            cx.params_source
        )));
    }
    Ok(p)
}

/// The report period of a scenario with reports (observation: the suite's
/// `report_period_s`; power: the study's interval), in seconds at scale 1.
fn period_of(cx: &CaseContext, s: Scenario) -> Result<Option<u32>, CaseFailure> {
    Ok(match s {
        Scenario::Observation => Some(report_period(cx)?),
        Scenario::Power(i) => i,
        _ => None,
    })
}

/// The window of a scenario at the context's time scale (real time). The
/// observation window holds ten reports plus half a period. The suite's
/// `window_s` replaces the study's window (and scales its guard alike):
/// the time-scale tests run short windows at scale 1.
fn window(cx: &CaseContext, s: Scenario) -> Result<Duration, CaseFailure> {
    let custom: Option<f64> = cx.param("window_s", None)?;
    let study = match (s, custom) {
        (Scenario::Observation, _) => {
            let p = u64::from(report_period(cx)?);
            Duration::from_secs(10 * p) + Duration::from_millis(500 * p)
        }
        (_, Some(w)) if w.is_finite() && w > 0.0 => {
            let k = w / s.window().as_secs_f64();
            Duration::from_secs_f64(w) + s.guard().mul_f64(k)
        }
        (_, Some(w)) => {
            return Err(CaseFailure::infra(format!(
                "{}: params.window_s = {w}: expected a positive number of seconds",
                cx.params_source
            )));
        }
        _ => s.window() + s.guard(),
    };
    let w = cx.scaled(study);
    Ok(match s {
        Scenario::InitialConnection | Scenario::Write | Scenario::Ota => {
            w.max(MIN_WINDOW + link_allowance(cx)?)
        }
        _ => w,
    })
}

/// What a slow link adds to the real time a connection takes: twelve round
/// trips at the link's delay plus twice its jitter each way (TCP, TLS 1.2
/// with an AWS-like chain, and the MQTT CONNECT and SUBSCRIBEs; DTLS with
/// its cookie and certificates needs fewer) and 16 KiB down and 8 KiB up at
/// its rates. Zero on the bench's own link. NB-IoT: about 37 s; LTE-M: 3 s.
fn link_allowance(cx: &CaseContext) -> Result<Duration, CaseFailure> {
    of_link(cx, allowance_for)
}

/// `figure` of the case's link profile (`params.link`, default the bench's
/// own `ethernet`), an unknown profile as an error naming the parameter.
fn of_link<T>(
    cx: &CaseContext,
    figure: fn(&str) -> Result<T, rig_net::NetError>,
) -> Result<T, CaseFailure> {
    let link: String = cx.param("link", "ethernet".to_string())?;
    figure(&link).map_err(|e| {
        CaseFailure::infra(format!("{}: params.link = {link:?}: {e}", cx.params_source))
    })
}

/// The largest time scale a link profile allows (`None` on the bench's own
/// link): CoAP's ACK_TIMEOUT (2 s at scale 1), divided by the scale, must
/// stay above two of the link's longest round trips, or the rig's server and
/// the agent retransmit every confirmable message (seen: an LTE-M write at
/// scale 60 counted twice). NB-IoT: 1 (real time); LTE-M: 6.
fn link_max_scale(cx: &CaseContext) -> Result<Option<f64>, CaseFailure> {
    of_link(cx, max_scale_for)
}

/// A link profile's figures for the case's timers: one way's delay plus
/// `jitters` times its jitter (s), and the time `bytes` take at its rate.
struct LinkTimes(rig_net::Profile);

impl LinkTimes {
    /// The profile by name; `None` for the bench's own link.
    fn of(link: &str) -> Result<Option<Self>, rig_net::NetError> {
        if link == "ethernet" || link.is_empty() {
            return Ok(None);
        }
        rig_net::Profile::builtin(link).map(|p| Some(Self(p)))
    }

    /// A round trip at the delay plus `jitters` of the jitter each way (s).
    fn rtt(&self, jitters: f64) -> f64 {
        let one_way = |d: &rig_net::DirectionConfig| (d.delay_ms + jitters * d.jitter_ms) / 1000.0;
        one_way(&self.0.bridge.up) + one_way(&self.0.bridge.down)
    }

    /// The time `down` bytes down and `up` bytes up take at the link's rates (s).
    fn transfer(&self, down: f64, up: f64) -> f64 {
        let secs_for = |bytes: f64, d: &rig_net::DirectionConfig| {
            d.rate_kbit
                .filter(|r| *r > 0.0)
                .map_or(0.0, |r| bytes * 8.0 / (r * 1000.0))
        };
        secs_for(down, &self.0.bridge.down) + secs_for(up, &self.0.bridge.up)
    }
}

/// [`link_max_scale`] of a link profile by name.
fn max_scale_for(link: &str) -> Result<Option<f64>, rig_net::NetError> {
    Ok(LinkTimes::of(link)?.map(|l| {
        let rtt = l.rtt(1.0);
        if rtt > 0.0 {
            (2.0 / (2.0 * rtt)).floor().max(1.0)
        } else {
            f64::INFINITY
        }
    }))
}

/// The DTLS handshake's first retransmission timeout for the case's link,
/// when RFC 6347's 1 s is too short for it (`None`: keep 1 s).
fn link_dtls_retransmit(cx: &CaseContext) -> Result<Option<Duration>, CaseFailure> {
    of_link(cx, dtls_retransmit_for)
}

/// [`link_dtls_retransmit`] of a link profile by name: two of the link's
/// longest round trips plus 4 KiB each way at its rates (a flight with the
/// certificate chain and the answer to it), as CoAP's ACK_TIMEOUT is held
/// to two round trips ([`max_scale_for`]). NB-IoT: about 5.8 s; LTE-M and
/// Ethernet stay at 1 s. With 1 s on NB-IoT every flight went twice (the
/// initial connection: 28 packets, 8.8 KB).
fn dtls_retransmit_for(link: &str) -> Result<Option<Duration>, rig_net::NetError> {
    Ok(LinkTimes::of(link)?.and_then(|l| {
        let s = 2.0 * l.rtt(1.0) + l.transfer(4096.0, 4096.0);
        (s > 1.0).then(|| Duration::from_secs_f64(s.min(60.0)))
    }))
}

/// [`link_allowance`] of a link profile by name.
fn allowance_for(link: &str) -> Result<Duration, rig_net::NetError> {
    Ok(LinkTimes::of(link)?.map_or(Duration::ZERO, |l| {
        let s = 12.0 * l.rtt(2.0) + l.transfer(16_384.0, 8_192.0);
        Duration::from_secs_f64(s.clamp(0.0, 600.0))
    }))
}

/// A bridge call, as a case failure naming it.
fn net<T>(what: &str, r: Result<T, rig_net::NetError>) -> Result<T, CaseFailure> {
    r.map_err(|e| CaseFailure::infra(format!("bridge: {what}: {e}")))
}

/// The figures of a window, counted the study's way.
pub fn figures(acc: &Accounting) -> Figures {
    const PLATFORM: [ProtoClass; 3] = [ProtoClass::Coap, ProtoClass::Mqtt, ProtoClass::Http];
    let count = |dir: Direction| {
        let d = acc.dir(dir);
        PLATFORM.iter().fold((0u64, 0u64, 0u64), |(p, b, t), c| {
            let k = d.class(*c);
            (p + k.packets, b + k.l2_bytes, t + k.payload_bytes)
        })
    };
    let (pu, bu, tu) = count(Direction::Up);
    let (pd, bd, td) = count(Direction::Down);
    let mut f = Figures::new();
    // The transport payload (the TLS or DTLS records, or plain CoAP): what
    // the protocols sent, without the framing TCP's segmentation and ACK
    // timing add (those vary from run to run over TCP at any time scale).
    f.insert("machnation.payload_bytes.up".into(), tu as f64);
    f.insert("machnation.payload_bytes.down".into(), td as f64);
    f.insert("machnation.bytes".into(), (bu + bd) as f64);
    f.insert("machnation.packets".into(), (pu + pd) as f64);
    f.insert("machnation.bytes.up".into(), bu as f64);
    f.insert("machnation.bytes.down".into(), bd as f64);
    f.insert("machnation.packets.up".into(), pu as f64);
    f.insert("machnation.packets.down".into(), pd as f64);
    f.insert(
        "machnation.avg_packet_len".into(),
        if pu + pd == 0 {
            0.0
        } else {
            (bu + bd) as f64 / (pu + pd) as f64
        },
    );
    f.insert("machnation.burstiness".into(), burstiness(acc));
    f.insert("machnation.window_s".into(), acc.duration().as_secs_f64());
    f
}

/// Peak ÷ mean of the L2 bytes per 100 ms, both directions together, over
/// the whole window (0 when nothing was sent).
fn burstiness(acc: &Accounting) -> f64 {
    let up = &acc.dir(Direction::Up).bins;
    let down = &acc.dir(Direction::Down).bins;
    let nbins = (acc
        .duration()
        .as_nanos()
        .div_ceil(rig_net::account::BIN.as_nanos()) as usize)
        .max(up.len())
        .max(down.len())
        .max(1);
    let sum: Vec<u64> = (0..nbins)
        .map(|i| up.get(i).copied().unwrap_or(0) + down.get(i).copied().unwrap_or(0))
        .collect();
    let total: u64 = sum.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let peak = sum.iter().copied().max().unwrap_or(0);
    peak as f64 / (total as f64 / nbins as f64)
}

/// Records `figures` as measurements with the suite's `limits` applied.
fn record(cx: &mut CaseContext, figures: &Figures, defaults: &[(&str, f64, f64)]) -> CaseResult {
    let limits: BTreeMap<String, [f64; 2]> = cx.param("limits", BTreeMap::new())?;
    for (name, value) in figures {
        let unit = if name.ends_with("_mw") {
            "mW"
        } else if name.contains("packets") || name.contains(".acks.") {
            "packets"
        } else if name.ends_with(".exchanges") {
            "reports"
        } else if name.starts_with("ratio.") || name.ends_with("burstiness") {
            "ratio"
        } else if name.ends_with("_s") {
            "s"
        } else if name.ends_with("energy_wh") {
            "Wh"
        } else if name.ends_with("energy_mj") {
            "mJ"
        } else if name.ends_with(".reports") {
            "reports"
        } else {
            "B"
        };
        cx.measure(name.clone(), unit, *value);
        let range = limits.get(name).copied().or_else(|| {
            defaults
                .iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, lo, hi)| [*lo, *hi])
        });
        if let (Some([low, high]), Some(m)) = (range, cx.measurements.last_mut()) {
            m.limits = Some(Limits {
                low: Some(low),
                high: Some(high),
                marginal_low: None,
                marginal_high: None,
            });
        }
    }
    Ok(())
}

/// The link profile the suite asks for, set on the bridge; `None` for the bench's own.
fn set_link(cx: &CaseContext, bridge: &BridgeControl) -> Result<Option<String>, CaseFailure> {
    let link: String = cx.param("link", "ethernet".to_string())?;
    if link == "ethernet" || link.is_empty() {
        return Ok(None);
    }
    let profile = rig_net::Profile::builtin(&link).map_err(|e| {
        CaseFailure::infra(format!("{}: params.link = {link:?}: {e}", cx.params_source))
    })?;
    net(
        "set_link",
        bridge.set_link(&profile.bridge.up, &profile.bridge.down),
    )?;
    cx.step(format!("link profile {link}: {}", profile.description));
    Ok(Some(link))
}

/// On a modelled power meter, switches the energy model to the link's own
/// profile (`lte-m`, `nb-iot`) so the energy follows the radio the traffic
/// crosses; returns the profile to restore. A real INA219 measures whatever
/// the device does, and other links keep the bench's profile.
fn follow_link_power(cx: &CaseContext, link: Option<&str>) -> Result<Option<String>, CaseFailure> {
    let (Some(link), Some(p)) = (link, &cx.power) else {
        return Ok(None);
    };
    let Some(before) = p.profile() else {
        return Ok(None);
    };
    if before == link || rig_bench::power::PowerProfile::by_name(link).is_none() {
        return Ok(None);
    }
    p.set_profile(link)
        .map_err(|e| CaseFailure::infra(format!("power profile {link}: {e}")))?;
    cx.step(format!("power model: profile {link} (was {before})"));
    Ok(Some(before))
}

async fn scenario_body(cx: &mut CaseContext, scenario: Scenario, variant: Variant) -> CaseResult {
    let key = run_key(cx);
    match scenario {
        Scenario::Ota if variant == Variant::MqttPlain => {
            return Err(CaseFailure::not_applicable(
                "the protocol-only MQTT variant has no job channel to start a download (AWS IoT \
                 Jobs are the AWS-like variant's); its HTTPS download would be mqtt-aws's, byte \
                 for byte",
            ));
        }
        Scenario::Power(_) if cx.power.is_none() => {
            return Err(CaseFailure::not_applicable(
                "the power scenarios need the bench's power meter ([power]: a simulated or \
                 real INA219)",
            ));
        }
        _ => {}
    }
    let period = period_of(cx, scenario)?;
    let scale = report_scale(cx.time_scale, period);
    let held = max_time_scale(scenario).is_some_and(|m| cx.time_scale >= m);
    if scale < cx.time_scale || held {
        cx.step(format!(
            "time scale held at {scale}: reports every {} s must stay at least {} ms apart in \
             real time, or TCP's delayed ACKs change the packet counts",
            period.unwrap_or_default(),
            MIN_REAL_PERIOD.as_millis()
        ));
        cx.time_scale = scale;
    }
    cx.measure("machnation.time_scale", "x", cx.time_scale);
    let bridge = cx
        .net
        .require_bridge("the study's byte accounting")?
        .clone();
    if let Some(max) = link_max_scale(cx)?
        && cx.time_scale > max
    {
        return Err(CaseFailure::infra(format!(
            "time scale {} is too high for the {} link: CoAP's ACK_TIMEOUT (2 s) and DTLS's \
             retransmission timer, divided by the scale, must stay above two of its round trips \
             or every confirmable message is sent again; run it at a time scale of at most {max:.0} \
             (suite time_scale or --time-scale)",
            cx.time_scale,
            cx.param("link", String::new())?
        )));
    }
    let link = set_link(cx, &bridge)?;
    let power_before = follow_link_power(cx, link.as_deref())?;
    let outcome = match variant {
        Variant::Lwm2m => lwm2m_scenario(cx, &bridge, scenario).await,
        Variant::MqttAws | Variant::MqttPlain => {
            mqtt_scenario(cx, &bridge, scenario, variant).await
        }
    };
    let _ = cx.dut.stop().await;
    if link.is_some() {
        let none = rig_net::DirectionConfig::default();
        net("restore the link", bridge.set_link(&none, &none))?;
    }
    if let (Some(before), Some(p)) = (power_before, &cx.power) {
        p.set_profile(&before)
            .map_err(|e| CaseFailure::infra(format!("restore the power profile: {e}")))?;
    }
    let (figures, note) = outcome?;
    remember(&key, scenario, variant, figures.clone());
    record(cx, &figures, &default_limits(scenario, variant))?;
    cx.step(format!(
        "{} {}: {} B in {} packets{}",
        scenario.name(),
        variant.name(),
        figures["machnation.bytes"],
        figures["machnation.packets"],
        note.map(|n| format!(" ({n})")).unwrap_or_default()
    ));
    Ok(())
}

/// No limits by default on the scenario cases: the calibration limits are
/// in `suites/machnation.toml` (they hold on the simulated Ethernet link only).
fn default_limits(_s: Scenario, _v: Variant) -> Vec<(&'static str, f64, f64)> {
    Vec::new()
}

/// An open accounting window, and the same window on the power meter.
struct Window {
    name: String,
    end: tokio::time::Instant,
    power: Option<rig_bench::power::CasePower>,
    study_s: f64,
    model: Option<ModelTap>,
}

/// The window's frames for the energy model at real time ([`real_time_energy_mj`]).
struct ModelTap {
    tap: rig_net::FrameTap,
    from: std::time::Instant,
    profile: rig_bench::power::PowerProfile,
    scale: f64,
}

/// A closed window: the bridge's counts and the meter's energy.
struct Closed {
    acc: Accounting,
    power: Option<rig_bench::power::PowerWindow>,
    study_s: f64,
    /// The model's energy over the study's window at real time (mJ).
    model_mj: Option<f64>,
}

/// The energy model's exact energy (mJ) for the first `study` of a window
/// as it would run at time scale 1: each frame (time since the window
/// opened, direction, L2 bytes) moves to its unscaled time, `at × scale`,
/// while its air time stays what its bytes take. Under a time scale the
/// meter sees the traffic packed into a shorter window, so its mean power
/// over-weights the traffic and cuts the radio tails short; this puts
/// every frame, tail and floor back where the study's clock has them.
///
/// The integral runs past the window's end by the radio's tail
/// ([`PowerProfile::tail_s`](rig_bench::power::PowerProfile::tail_s): 30 s
/// on LTE-M, 40 s on NB-IoT, none on Ethernet), so traffic near the end is
/// charged its whole tail: the study's 600 s window ends as MQTT's
/// keepalive fires, and cut there, a PINGREQ cost a third of an LwM2M
/// Update's tail. Every protocol gets the same extra span, so ratios
/// compare what the window's traffic costs.
pub fn real_time_energy_mj(
    profile: &rig_bench::power::PowerProfile,
    frames: &[(Duration, Direction, usize, bool)],
    scale: f64,
    study: Duration,
) -> f64 {
    use rig_bench::power::{Direction as Radio, FrameEvent, PowerModel};
    let mut model = PowerModel::new(profile.clone());
    for &(at, dir, bytes, ip) in frames {
        model.add_frame(FrameEvent {
            at: at.mul_f64(scale.max(1.0)),
            bytes,
            direction: match dir {
                Direction::Up => Radio::Tx,
                Direction::Down => Radio::Rx,
            },
            ip,
        });
    }
    let drain = Duration::from_secs_f64(profile.tail_s());
    model.energy_mj(Duration::ZERO, study + drain)
}

impl Closed {
    /// The study's figures ([`figures`]) and the window's energy:
    /// `machnation.power.energy_mj|energy_wh|avg_mw` over the window as it
    /// ran, and `machnation.power.study_window.energy_wh`, the mean power
    /// times the study's window (exact at time scale 1; under a time scale
    /// the same traffic is packed into a shorter window, so the traffic's
    /// share of the mean power is that many times too high).
    fn figures(&self) -> Figures {
        let mut f = figures(&self.acc);
        if let Some(p) = &self.power {
            f.insert("machnation.power.energy_mj".into(), p.energy_mj);
            f.insert("machnation.power.energy_wh".into(), p.energy_wh);
            f.insert("machnation.power.avg_mw".into(), p.avg_mw);
            f.insert(
                "machnation.power.study_window.energy_wh".into(),
                p.avg_mw * self.study_s / 3.6e6,
            );
        }
        if let Some(mj) = self.model_mj {
            f.insert("machnation.power.model.energy_mj".into(), mj);
            f.insert("machnation.power.model.energy_wh".into(), mj / 3.6e6);
        }
        f
    }
}

/// Opens the scenario's window on the bridge.
fn open(
    cx: &CaseContext,
    bridge: &BridgeControl,
    scenario: Scenario,
) -> Result<Window, CaseFailure> {
    let name = format!("machnation.{}", scenario.name());
    let len = window(cx, scenario)?;
    cx.step(format!(
        "window {name}: {:.1} s (study: {} s)",
        len.as_secs_f64(),
        scenario.window().as_secs()
    ));
    // A modelled meter also gets the window's energy at real time (see
    // `real_time_energy_mj`), free of the INA219's quantisation: on an
    // LTE-M module's 0.5 mA idle current a Pi-calibrated chip reads a few
    // LSBs. In connection and write windows (no timers) the scale spreads
    // the exchange too, both protocols alike; OTA's download of seconds
    // would spread past the window, so it keeps the meter's figure.
    let profile = cx
        .power
        .as_ref()
        .and_then(|p| p.profile())
        .and_then(|n| rig_bench::power::PowerProfile::by_name(&n));
    let model = match profile {
        Some(profile) if scenario != Scenario::Ota => Some(ModelTap {
            tap: tap(bridge)?,
            from: std::time::Instant::now(),
            profile,
            scale: cx.time_scale,
        }),
        _ => None,
    };
    net("begin_window", bridge.begin_window(&name))?;
    if let Some(p) = &cx.power {
        p.begin_window(&name);
    }
    let custom: Option<f64> = cx.param("window_s", None)?;
    Ok(Window {
        name,
        end: tokio::time::Instant::now() + len,
        power: cx.power.clone(),
        study_s: custom.unwrap_or(scenario.window().as_secs_f64()),
        model,
    })
}

/// Waits out the rest of the window, closes it, and returns its counts if
/// what ran inside succeeded.
async fn close(
    bridge: &BridgeControl,
    w: Window,
    inside: CaseResult,
) -> Result<Closed, CaseFailure> {
    if inside.is_ok() {
        tokio::time::sleep_until(w.end).await;
    }
    let acc = net("end_window", bridge.end_window(&w.name))?;
    let power = match &w.power {
        Some(p) => Some(
            p.end_window(&w.name)
                .await
                .map_err(|e| CaseFailure::infra(format!("power window {}: {e}", w.name)))?,
        ),
        None => None,
    };
    let model_mj = w.model.map(|m| {
        let to = std::time::Instant::now();
        let frames: Vec<(Duration, Direction, usize, bool)> = m
            .tap
            .try_iter()
            .filter(|f| f.at >= m.from && f.at <= to)
            .map(|f| (f.at - m.from, f.direction, f.l2_len, f.ip))
            .collect();
        real_time_energy_mj(
            &m.profile,
            &frames,
            m.scale,
            Duration::from_secs_f64(w.study_s),
        )
    });
    inside.map(|()| Closed {
        acc,
        power,
        study_s: w.study_s,
        model_mj,
    })
}

// ---------------------------------------------------------------- OTA

/// The study's image: 1,048,576 random bytes from a fixed seed.
const OTA_IMAGE: &str = "fw-1mib";

/// The longest a 1 MiB download may take (real time, any scale).
const OTA_WAIT: Duration = Duration::from_secs(180);

/// The OTA scenario's file servers, on the well-known ports the study's
/// count includes (HTTPS 443, CoAP 5784: the run's server holds 5683;
/// `rig_net::frame::ProtoClass`),
/// serving the standard images.
struct OtaServers {
    https: HttpFileServer,
    coap: Option<CoapFileServer>,
    ca: std::path::PathBuf,
    state: tempfile::TempDir,
    state2: tempfile::TempDir,
    _pki: tempfile::TempDir,
}

impl OtaServers {
    async fn start(cx: &CaseContext, coap: bool) -> Result<OtaServers, CaseFailure> {
        let infra =
            |what: &str, e: &dyn std::fmt::Display| CaseFailure::infra(format!("{what}: {e}"));
        let store = FileStore::with_standard_images();
        let pki_dir = tempfile::tempdir().map_err(|e| infra("temp dir for the HTTPS CA", &e))?;
        let pki = HttpsPki::generate(pki_dir.path(), &[cx.net.services_ip().to_string()])
            .map_err(|e| infra("HTTPS certificates", &e))?;
        let config = HttpServerConfig {
            tls: Some(pki.identity.clone()),
            ..Default::default()
        };
        let sim = cx.net.is_simulated();
        let listener = bind_tcp_retry(cx, if sim { 443 } else { 0 }).await?;
        let https = HttpFileServer::from_std(listener, store.clone(), config)
            .map_err(|e| infra("start the HTTPS file server", &e))?;
        let coap = if coap {
            let sock = bind_udp_retry(cx, if sim { 5784 } else { 0 }).await?;
            sock.set_nonblocking(true)
                .map_err(|e| infra("CoAP file server socket", &e))?;
            let sock = tokio::net::UdpSocket::from_std(sock)
                .map_err(|e| infra("CoAP file server socket", &e))?;
            Some(
                CoapFileServer::start(sock, store, CoapServerConfig::default())
                    .map_err(|e| infra("start the CoAP file server", &e))?,
            )
        } else {
            None
        };
        let state = tempfile::Builder::new()
            .prefix("rig-machnation-fota-")
            .tempdir()
            .map_err(|e| infra("temp dir for the agent's FOTA state", &e))?;
        let state2 = tempfile::Builder::new()
            .prefix("rig-machnation-fota-")
            .tempdir()
            .map_err(|e| infra("temp dir for the agent's FOTA state", &e))?;
        Ok(OtaServers {
            https,
            coap,
            ca: pki.ca_path.clone(),
            state,
            state2,
            _pki: pki_dir,
        })
    }

    /// The agent's FOTA keys (`state_dir`, `fota_ca`).
    fn extra(&self, extra: &mut BTreeMap<String, String>) {
        extra.insert("state_dir".into(), self.state.path().display().to_string());
        extra.insert("fota_ca".into(), self.ca.display().to_string());
    }

    async fn shutdown(self) {
        self.https.shutdown().await;
        if let Some(c) = self.coap {
            c.shutdown().await;
        }
    }
}

/// Waits for the DUT's `fota downloaded` line and checks the image against
/// the manifest (size and SHA-256).
async fn ota_downloaded(cx: &mut CaseContext) -> CaseResult {
    let line = cx
        .dut
        .expect_console("fota downloaded", OTA_WAIT)
        .await
        .map_err(|e| {
            CaseFailure::fail(format!(
                "no `fota downloaded` line within {} s: {e}; last console lines:\n{}",
                OTA_WAIT.as_secs(),
                cx.dut.console().tail(5)
            ))
        })?;
    let d = super::fota::support::parse_downloaded(&line)
        .ok_or_else(|| CaseFailure::fail(format!("unreadable console line {line:?}")))?;
    super::fota::support::check_image(OTA_IMAGE, &d)
}

/// Adds the transfer's length to OTA figures (the window closes when the
/// image is in, or at the study's window end if that is later).
fn ota_figures(c: &Closed, took: Duration) -> Figures {
    let mut f = c.figures();
    f.insert("machnation.transfer_s".into(), took.as_secs_f64());
    f
}

// ---------------------------------------------------------------- LwM2M

async fn lwm2m_scenario(
    cx: &mut CaseContext,
    bridge: &BridgeControl,
    scenario: Scenario,
) -> Result<(Figures, Option<String>), CaseFailure> {
    let security: String = cx.param("lwm2m_security", "x509".to_string())?;
    let encoding: String = cx.param("encoding", "tlv".to_string())?;
    let accept = match encoding.as_str() {
        "tlv" => ContentFormat::Tlv,
        "senml-cbor" => ContentFormat::SenmlCbor,
        other => {
            return Err(CaseFailure::infra(format!(
                "{}: params.encoding = {other:?}: expected \"tlv\" or \"senml-cbor\"",
                cx.params_source
            )));
        }
    };
    let queue: bool = cx.param("queue_mode", false)?;
    let string_len: usize = cx.param("string_len", STRING_LEN)?;
    let mut config = cx.server.config().clone();
    config.location_len = LOCATION_LEN;
    config.time_scale = cx.time_scale;
    let (server, endpoint, mut extra, note) = match security.as_str() {
        "x509" => {
            let spec = cx.security.credentials.clone().ok_or_else(|| {
                CaseFailure::not_applicable(
                    "LwM2M over DTLS with certificates needs the bench's [security] credentials",
                )
            })?;
            let mut setup = start::secure_setup(
                &spec,
                crate::case::SecurityMode::X509,
                &[CipherSuite::ECDHE_ECDSA_AES_128_CCM_8],
                ServerCert::Normal,
                &cx.endpoint,
            )
            .map_err(|e| CaseFailure::infra(format!("x509: [security]: {e}")))?;
            if let Some(t) = link_dtls_retransmit(cx)? {
                setup.dtls.tuning.retransmit_initial = t;
                setup.extra.insert(
                    "dtls_retransmit_initial".into(),
                    format!("{:.3}", t.as_secs_f64()),
                );
                cx.step(format!(
                    "DTLS retransmission timer {:.1} s on both sides (the link's round trip and \
                     flight air time exceed RFC 6347's 1 s)",
                    t.as_secs_f64()
                ));
            }
            let port = if cx.net.is_simulated() { 5684 } else { 0 };
            let socket = bind_udp_retry(cx, port).await?;
            let server = Lwm2mServer::from_std_secure(socket, config, setup.dtls).map_err(|e| {
                CaseFailure::infra(format!("cannot start the coaps:// server: {e}"))
            })?;
            (server, setup.endpoint, setup.extra, None)
        }
        "nosec" => {
            let port = if cx.net.is_simulated() { 5783 } else { 0 };
            let socket = bind_udp_retry(cx, port).await?;
            let server = Lwm2mServer::from_std(socket, config)
                .map_err(|e| CaseFailure::infra(format!("cannot start the coap:// server: {e}")))?;
            let mut extra = BTreeMap::new();
            extra.insert("security".to_string(), "nosec".to_string());
            (
                server,
                cx.endpoint.clone(),
                extra,
                Some("NoSec: no DTLS record overhead, unlike the study".to_string()),
            )
        }
        other => {
            return Err(CaseFailure::infra(format!(
                "{}: params.lwm2m_security = {other:?}: expected \"x509\" or \"nosec\"",
                cx.params_source
            )));
        }
    };
    payload_extra(&mut extra, string_len);
    let ota = if scenario == Scenario::Ota {
        let o = OtaServers::start(cx, true).await?;
        o.extra(&mut extra);
        Some(o)
    } else {
        None
    };
    let cfg = DutConfig {
        endpoint: endpoint.clone(),
        server_uri: server.uri(),
        ssid: 1,
        lifetime_s: cx.param("lifetime_s", LIFETIME_S)?,
        binding: if queue { "UQ" } else { "U" }.to_string(),
        default_pmin_s: None,
        // pmin = pmax = 30 in the study; the agent (TS §5.1.2) ignores a pmax
        // not above pmin, so pmax alone gives the same report every 30 s.
        default_pmax_s: period_of(cx, scenario)?,
        time_scale: cx.time_scale,
        extra,
    };
    let result = lwm2m_windows(
        cx,
        bridge,
        scenario,
        &server,
        &endpoint,
        &cfg,
        accept,
        ota.as_ref(),
    )
    .await;
    let _ = cx.dut.stop().await;
    server.shutdown();
    if let Some(o) = ota {
        o.shutdown().await;
    }
    result.map(|f| (f, note))
}

/// Binds a UDP socket where the services live, retrying a busy port for up
/// to 2 s (a previous case's server may still be closing).
async fn bind_udp_retry(cx: &CaseContext, port: u16) -> Result<std::net::UdpSocket, CaseFailure> {
    let mut last = None;
    for _ in 0..20 {
        match cx.net.bind_udp(port) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(CaseFailure::infra(format!(
        "cannot bind UDP port {port} at {}: {}",
        cx.net.services_ip(),
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

async fn bind_tcp_retry(cx: &CaseContext, port: u16) -> Result<std::net::TcpListener, CaseFailure> {
    let mut last = None;
    for _ in 0..20 {
        match cx.net.bind_tcp(port) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(CaseFailure::infra(format!(
        "cannot bind TCP port {port} at {}: {}",
        cx.net.services_ip(),
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

async fn start_lwm2m(
    cx: &mut CaseContext,
    server: &Lwm2mServer,
    endpoint: &str,
    cfg: &DutConfig,
) -> CaseResult {
    let mut events = server.events();
    cx.dut
        .start(cfg)
        .await
        .map_err(|e| CaseFailure::infra(format!("could not start the DUT: {e}")))?;
    let wait = prompt_wait(cx, REGISTER_WAIT) + link_allowance(cx)?;
    let ep = endpoint.to_string();
    match lwm2m::wait_for(&mut events, wait, |e| match e {
        ServerEvent::Registered { endpoint, .. } => *endpoint == ep,
        ServerEvent::HandshakeFailed { reason, .. } => reason != "timed_out",
        _ => false,
    })
    .await
    {
        Some(ServerEvent::Registered { .. }) => Ok(()),
        Some(ServerEvent::HandshakeFailed {
            reason, message, ..
        }) => Err(CaseFailure::fail(format!(
            "the server refused the DUT's DTLS handshake ({reason}): {message}"
        ))),
        _ => Err(CaseFailure::inconclusive(format!(
            "no Register from `{endpoint}` within {:.1} s; last console lines:\n{}",
            wait.as_secs_f64(),
            cx.dut.console().tail(5)
        ))),
    }
}

fn count_notifications(events: &mut broadcast::Receiver<ServerEvent>, endpoint: &str) -> u64 {
    let mut n = 0;
    for _ in 0..100_000 {
        match events.try_recv() {
            Ok(ServerEvent::Notification { endpoint: ep, .. }) if ep == endpoint => n += 1,
            Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => break,
        }
    }
    n
}

/// A moment for the last exchange's delayed ACKs and retransmission-free
/// quiet before a window opens.
const SETTLE: Duration = Duration::from_millis(1500);

#[allow(clippy::too_many_arguments)] // one scenario's whole set-up
async fn lwm2m_windows(
    cx: &mut CaseContext,
    bridge: &BridgeControl,
    scenario: Scenario,
    server: &Lwm2mServer,
    endpoint: &str,
    cfg: &DutConfig,
    accept: ContentFormat,
    ota: Option<&OtaServers>,
) -> Result<Figures, CaseFailure> {
    let obj = ObjectPath::parse("/33333/0")
        .map_err(|e| CaseFailure::infra(format!("path /33333/0: {e:?}")))?;
    let res = ObjectPath::parse("/33333/0/1")
        .map_err(|e| CaseFailure::infra(format!("path /33333/0/1: {e:?}")))?;
    let object = ObjectPath::parse("/33333")
        .map_err(|e| CaseFailure::infra(format!("path /33333: {e:?}")))?;
    let op = |what: &str, e: rig_services::OpError| CaseFailure::fail(format!("{what}: {e}"));
    match scenario {
        Scenario::InitialConnection => {
            // The study: registration, object discovery and an initial report
            // of the custom object.
            let w = open(cx, bridge, scenario)?;
            let inside = async {
                start_lwm2m(cx, server, endpoint, cfg).await?;
                let d = server
                    .discover(endpoint, &object)
                    .await
                    .map_err(|e| op("Discover /33333", e))?;
                if !d.code.is_success() {
                    return Err(CaseFailure::fail(format!(
                        "Discover /33333 answered {}",
                        d.code
                    )));
                }
                let r = server
                    .observe(endpoint, &obj, Some(accept))
                    .await
                    .map_err(|e| op("Observe /33333/0", e))?;
                if !r.code.is_success() {
                    return Err(CaseFailure::fail(format!(
                        "Observe /33333/0 answered {}",
                        r.code
                    )));
                }
                Ok::<(), CaseFailure>(())
            }
            .await;
            let acc = close(bridge, w, inside).await?;
            Ok(acc.figures())
        }
        Scenario::SteadyState | Scenario::Power(None) => {
            start_lwm2m(cx, server, endpoint, cfg).await?;
            tokio::time::sleep(SETTLE).await;
            let mut events = server.events();
            let w = open(cx, bridge, scenario)?;
            let acc = close(bridge, w, Ok(())).await?;
            let mut f = acc.figures();
            let mut updates = 0u64;
            for _ in 0..100_000 {
                match events.try_recv() {
                    Ok(ServerEvent::Updated { endpoint: ep, .. }) if ep == endpoint => updates += 1,
                    Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
            }
            f.insert("machnation.updates".into(), updates as f64);
            Ok(f)
        }
        Scenario::Observation | Scenario::Power(Some(_)) => {
            start_lwm2m(cx, server, endpoint, cfg).await?;
            let mut events = server.events();
            let r = server
                .observe(endpoint, &obj, Some(accept))
                .await
                .map_err(|e| op("Observe /33333/0", e))?;
            if r.observation.is_none() {
                return Err(CaseFailure::fail(format!(
                    "Observe /33333/0 established no observation (answer {})",
                    r.code
                )));
            }
            tokio::time::sleep(observation_settle(cx, scenario)?).await;
            // Only notifications inside the window count.
            let _ = count_notifications(&mut events, endpoint);
            let t = tap(bridge)?;
            let from = std::time::Instant::now();
            let mut w = open(cx, bridge, scenario)?;
            // The settle is part of the half period after the last report.
            w.end -= observation_settle(cx, scenario)?;
            let want = expected_reports(cx, scenario)?;
            let mut seen = 0u64;
            let give_up = w.end + window(cx, scenario)?;
            while seen < want {
                let left = give_up.saturating_duration_since(tokio::time::Instant::now());
                match tokio::time::timeout(left, events.recv()).await {
                    Ok(Ok(ServerEvent::Notification { endpoint: ep, .. })) if ep == endpoint => {
                        seen += 1;
                    }
                    Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                    Ok(Err(_)) | Err(_) => break,
                }
            }
            extend_after_last_report(cx, scenario, &mut w)?;
            let acc = close(bridge, w, Ok(())).await?;
            let frames = tapped(&t, from, std::time::Instant::now());
            let n = seen + count_notifications(&mut events, endpoint);
            let mut f = acc.figures();
            per_report(&mut f, n, &frames);
            Ok(f)
        }
        Scenario::Write => {
            start_lwm2m(cx, server, endpoint, cfg).await?;
            tokio::time::sleep(SETTLE).await;
            let w = open(cx, bridge, scenario)?;
            let inside = async {
                let r = server
                    .write(endpoint, &res, ContentFormat::Text, b"7".to_vec())
                    .await
                    .map_err(|e| op("Write /33333/0/1", e))?;
                if r.code != lwm2m::Code::CHANGED {
                    return Err(CaseFailure::fail(format!(
                        "Write /33333/0/1 = 7 answered {}, expected 2.04",
                        r.code
                    )));
                }
                Ok::<(), CaseFailure>(())
            }
            .await;
            let acc = close(bridge, w, inside).await?;
            Ok(acc.figures())
        }
        Scenario::Ota => {
            let ota = ota.ok_or_else(|| CaseFailure::infra("no OTA file servers"))?;
            start_lwm2m(cx, server, endpoint, cfg).await?;
            tokio::time::sleep(SETTLE).await;
            let uri_path = ObjectPath::parse("/5/0/1")
                .map_err(|e| CaseFailure::infra(format!("path /5/0/1: {e:?}")))?;
            // The study's download: HTTPS, then (rig's second figure set)
            // CoAP Block2 with 1,024-byte blocks, each in its own window.
            let mut urls = vec![("https", ota.https.url(OTA_IMAGE))];
            if let Some(c) = &ota.coap {
                urls.push(("coap", c.url(OTA_IMAGE)));
            }
            let mut f = Figures::new();
            for (i, (how, url)) in urls.into_iter().enumerate() {
                if i > 0 {
                    // A freshly registered device with an empty FOTA state
                    // for the second download: under a time scale the
                    // Update (507 s / scale after registering) would
                    // otherwise fall inside this window, as it never does
                    // in the study's 5 minutes.
                    let _ = cx.dut.stop().await;
                    let mut again = cfg.clone();
                    again
                        .extra
                        .insert("state_dir".into(), ota.state2.path().display().to_string());
                    start_lwm2m(cx, server, endpoint, &again).await?;
                    tokio::time::sleep(SETTLE).await;
                }
                cx.step(format!("Write /5/0/1 = {url}"));
                let started = tokio::time::Instant::now();
                let w = open(cx, bridge, scenario)?;
                let inside = async {
                    let r = server
                        .write(endpoint, &uri_path, ContentFormat::Text, url.into_bytes())
                        .await
                        .map_err(|e| op("Write /5/0/1", e))?;
                    if r.code != lwm2m::Code::CHANGED {
                        return Err(CaseFailure::fail(format!(
                            "Write /5/0/1 answered {}, expected 2.04",
                            r.code
                        )));
                    }
                    ota_downloaded(cx).await
                }
                .await;
                let took = started.elapsed();
                let acc = close(bridge, w, inside).await?;
                let g = ota_figures(&acc, took);
                if i == 0 {
                    f = g;
                } else {
                    for (k, v) in g {
                        if let Some(rest) = k.strip_prefix("machnation.") {
                            f.insert(format!("machnation.{how}_block2.{rest}"), v);
                        }
                    }
                }
            }
            Ok(f)
        }
    }
}

/// A bare TCP ACK on the simulated link: Ethernet 14 + IPv4 20 + TCP 32
/// (timestamps on), no payload (`mqtt-baseline.md` §0).
const BARE_ACK: usize = 66;

/// Frames shorter than this are not the platform's (ARP is 42 B on the
/// link); every CoAP/DTLS or TCP frame is longer.
const MIN_PLATFORM_FRAME: usize = 54;

/// Splits a window's frames into report exchanges: each starts at a frame
/// the DUT sends with data (longer than a bare ACK) and holds every frame
/// until the next one. Frames before the first start are not in any.
pub fn exchanges(frames: &[(Direction, usize)]) -> Vec<Vec<(Direction, usize)>> {
    let mut out: Vec<Vec<(Direction, usize)>> = Vec::new();
    for &(dir, len) in frames {
        if len < MIN_PLATFORM_FRAME {
            continue;
        }
        if dir == Direction::Up && len > BARE_ACK {
            out.push(vec![(dir, len)]);
        } else if let Some(last) = out.last_mut() {
            last.push((dir, len));
        }
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Adds the per-report figures of a window holding `n` reports, whose
/// frames (in order, from the bridge's tap) are `frames`.
///
/// `machnation.per_report.packets` and `.bytes` are the median report
/// exchange (what the study describes as "one report": the update, the
/// platform's confirmation carrying the TCP ACK, the device's ACK). The
/// means over the window are `…_mean`. They differ when the platform
/// emulator answers later than the broker's delayed-ACK time (40 ms on
/// Linux): the broker's kernel then ACKs the update on its own and leaves
/// its interactive ("pingpong") mode, so the next update is ACKed at once
/// too. That is the emulator's latency on a loaded host, not the device's
/// behaviour; `machnation.acks.down` counts these bare ACKs.
fn per_report(f: &mut Figures, n: u64, frames: &[(Direction, usize)]) {
    f.insert("machnation.reports".into(), n as f64);
    let ex = exchanges(frames);
    f.insert("machnation.exchanges".into(), ex.len() as f64);
    let acks = |d: Direction| {
        frames
            .iter()
            .filter(|(dir, len)| *dir == d && *len == BARE_ACK)
            .count() as f64
    };
    f.insert("machnation.acks.up".into(), acks(Direction::Up));
    f.insert("machnation.acks.down".into(), acks(Direction::Down));
    if n > 0 {
        let b = f["machnation.bytes"] / n as f64;
        let p = f["machnation.packets"] / n as f64;
        f.insert("machnation.per_report.bytes_mean".into(), b);
        f.insert("machnation.per_report.packets_mean".into(), p);
    }
    if !ex.is_empty() {
        let packets = median(ex.iter().map(|e| e.len() as f64).collect());
        let bytes = median(
            ex.iter()
                .map(|e| e.iter().map(|(_, l)| *l as f64).sum())
                .collect(),
        );
        let max = ex.iter().map(Vec::len).max().unwrap_or(0);
        f.insert("machnation.per_report.packets".into(), packets);
        f.insert("machnation.per_report.bytes".into(), bytes);
        f.insert("machnation.per_report.packets_max".into(), max as f64);
    }
}

/// Attaches a frame tap for a window (see [`tapped`]).
fn tap(bridge: &BridgeControl) -> Result<rig_net::FrameTap, CaseFailure> {
    net("tap", bridge.tap(100_000))
}

/// The platform frames the tap saw between `from` and `to`, in order.
fn tapped(
    tap: &rig_net::FrameTap,
    from: std::time::Instant,
    to: std::time::Instant,
) -> Vec<(Direction, usize)> {
    tap.try_iter()
        .filter(|f| f.at >= from && f.at <= to)
        .map(|f| (f.direction, f.l2_len))
        .collect()
}

/// The reports the study's window holds: ten in the observation scenario,
/// one per interval over the window in a power scenario.
fn expected_reports(cx: &CaseContext, s: Scenario) -> Result<u64, CaseFailure> {
    Ok(match s {
        Scenario::Power(Some(i)) => {
            let w: f64 = cx.param("window_s", s.window().as_secs_f64())?;
            (w / f64::from(i.max(1))).floor() as u64
        }
        _ => 10,
    })
}

/// Called when the last expected report has been seen (or the wait gave
/// up): the window ends half a period later, so that report's exchange is
/// inside and the next report (a whole period later) is not. The agent's
/// report timer restarts after each report, so on a loaded host reports
/// drift late, and the connection's set-up time moves their phase against
/// the window's start: a fixed-length window would cut the 10th report off
/// or take an 11th in.
fn extend_after_last_report(
    cx: &CaseContext,
    s: Scenario,
    w: &mut Window,
) -> Result<(), CaseFailure> {
    let p = period_of(cx, s)?.unwrap_or(REPORT_PERIOD_S);
    let half = cx.scaled(Duration::from_millis(500 * u64::from(p)));
    w.end = tokio::time::Instant::now() + half;
    Ok(())
}

/// Before an observation window: long enough for the last delayed ACK of
/// the connection (40 ms on Linux) to leave, short enough that the first
/// report (one period after connecting) is still inside the window.
fn observation_settle(cx: &CaseContext, s: Scenario) -> Result<Duration, CaseFailure> {
    let p = period_of(cx, s)?.unwrap_or(REPORT_PERIOD_S);
    let period = cx.scaled(Duration::from_secs(u64::from(p)));
    Ok(SETTLE.min(period / 4))
}

// ---------------------------------------------------------------- MQTT

struct MqttSide {
    _pki_dir: tempfile::TempDir,
    broker: Broker,
    platform: Platform,
    thing: String,
}

async fn mqtt_up(
    cx: &mut CaseContext,
    variant: Variant,
) -> Result<(MqttSide, BTreeMap<String, String>), CaseFailure> {
    let broker_name: String = cx.param("broker", "rumqttd".to_string())?;
    let kind = match broker_name.as_str() {
        "rumqttd" | "embedded" => BrokerKind::Embedded,
        "mosquitto" => BrokerKind::Mosquitto,
        other => {
            return Err(CaseFailure::infra(format!(
                "{}: params.broker = {other:?}: expected \"rumqttd\" or \"mosquitto\"",
                cx.params_source
            )));
        }
    };
    let thing = cx.endpoint.clone();
    let dir = tempfile::Builder::new()
        .prefix("rig-machnation-pki-")
        .tempdir()
        .map_err(|e| CaseFailure::infra(format!("temp dir for the MQTT PKI: {e}")))?;
    let profile = match variant {
        Variant::MqttAws => PkiProfile::AwsLike,
        _ => PkiProfile::Protocol,
    };
    let ip = cx.net.services_ip().to_string();
    let thing2 = thing.clone();
    let path = dir.path().to_path_buf();
    // RSA key generation takes a moment: off the async threads.
    let pki = tokio::task::spawn_blocking(move || {
        TestPki::generate_for(&path, profile, &[thing2.as_str(), "rig-platform"], &[ip])
    })
    .await
    .map_err(|e| CaseFailure::infra(format!("PKI thread: {e}")))?
    .map_err(|e| CaseFailure::infra(format!("MQTT PKI: {e}")))?;
    let creds = pki
        .client(&thing)
        .ok_or_else(|| CaseFailure::infra("no device credentials in the PKI"))?;
    // mqtt-baseline.md §6.3: the protocol-only variant changes only what is
    // inherent to MQTT/TCP/TLS. The LwM2M side's DTLS handshake carries
    // two-certificate chains both ways (the bench's server-chain.pem, leaf +
    // root; the agent's DTLS stack adds the root to its own certificate), so
    // the plain variant's broker and device present leaf + root too.
    let mut broker_tls = pki.broker_tls();
    let mut device_cert = creds.cert_path.clone();
    if variant == Variant::MqttPlain {
        let chain = |leaf: &std::path::Path, name: &str| {
            let out = dir.path().join(name);
            std::fs::read_to_string(leaf)
                .and_then(|l| std::fs::write(&out, format!("{l}{}", pki.ca_pem())))
                .map(|()| out)
                .map_err(|e| CaseFailure::infra(format!("{}: {e}", leaf.display())))
        };
        broker_tls.cert = chain(&broker_tls.cert, "server-chain.pem")?;
        device_cert = chain(&creds.cert_path, "device-chain.pem")?;
    }
    let port = if cx.net.is_simulated() { 8883 } else { 0 };
    let listener = bind_tcp_retry(cx, port).await?;
    let broker = Broker::start_on(BrokerConfig::new(kind, broker_tls), listener)
        .await
        .map_err(|e| CaseFailure::infra(format!("MQTT broker ({broker_name}): {e}")))?;
    let platform_creds = pki
        .client("rig-platform")
        .ok_or_else(|| CaseFailure::infra("no platform credentials in the PKI"))?;
    let mut pcfg = PlatformConfig::new(
        broker.local_connect_addr(),
        ClientTls::new(pki.ca_pem(), platform_creds),
    );
    pcfg.aws_root = broker.aws_topic_root().to_string();
    let platform = Platform::start(pcfg)
        .await
        .map_err(|e| CaseFailure::infra(format!("platform emulator: {e}")))?;
    let mut extra = BTreeMap::new();
    extra.insert(
        "mqtt".to_string(),
        format!(
            "mqtts://{}:{}",
            cx.net.services_ip(),
            broker.local_addr().port()
        ),
    );
    extra.insert(
        "mqtt_variant".to_string(),
        match variant {
            Variant::MqttPlain => "plain",
            _ => "aws",
        }
        .to_string(),
    );
    extra.insert(
        "mqtt_topic_root".to_string(),
        broker.aws_topic_root().to_string(),
    );
    extra.insert("mqtt_cert".to_string(), device_cert.display().to_string());
    extra.insert("mqtt_key".to_string(), creds.key_path.display().to_string());
    extra.insert("mqtt_ca".to_string(), pki.ca_path().display().to_string());
    cx.step(format!(
        "MQTT: {} broker at {}, PKI {:?}",
        kind.name(),
        broker.local_addr(),
        profile
    ));
    Ok((
        MqttSide {
            _pki_dir: dir,
            broker,
            platform,
            thing,
        },
        extra,
    ))
}

async fn mqtt_scenario(
    cx: &mut CaseContext,
    bridge: &BridgeControl,
    scenario: Scenario,
    variant: Variant,
) -> Result<(Figures, Option<String>), CaseFailure> {
    let string_len: usize = cx.param("string_len", STRING_LEN)?;
    let (side, mut extra) = mqtt_up(cx, variant).await?;
    payload_extra(&mut extra, string_len);
    let keepalive: Option<f64> = cx.param("keepalive_s", None)?;
    if let Some(k) = keepalive {
        extra.insert("mqtt_keepalive".into(), k.to_string());
    }
    if scenario != Scenario::Ota {
        // The study's telemetry client is the SDK's shadow sample, which runs
        // no Jobs client; Jobs traffic (a QoS 1 start-next exchange right
        // after connecting) belongs to the OTA scenario only.
        extra.insert("mqtt_no_jobs".into(), "true".into());
    }
    match scenario {
        Scenario::Observation | Scenario::Power(Some(_)) => {
            if let Some(p) = period_of(cx, scenario)? {
                extra.insert("report_every".into(), p.to_string());
            }
        }
        Scenario::InitialConnection => {
            extra.insert("report_on_connect".into(), "true".into());
        }
        _ => {}
    }
    let ota = if scenario == Scenario::Ota {
        let o = OtaServers::start(cx, false).await?;
        o.extra(&mut extra);
        extra.insert("mqtt_fota".into(), "https".into());
        Some(o)
    } else {
        None
    };
    let cfg = DutConfig {
        endpoint: side.thing.clone(),
        server_uri: cx.server.uri(),
        ssid: 1,
        lifetime_s: LIFETIME_S,
        binding: "U".into(),
        default_pmin_s: None,
        default_pmax_s: None,
        time_scale: cx.time_scale,
        extra,
    };
    let result = mqtt_windows(cx, bridge, scenario, variant, &side, &cfg, ota.as_ref()).await;
    let _ = cx.dut.stop().await;
    if let Some(o) = ota {
        o.shutdown().await;
    }
    let MqttSide {
        platform, broker, ..
    } = side;
    platform.shutdown().await;
    broker.shutdown().await;
    let note = (variant == Variant::MqttAws).then(|| {
        "AWS-like chain and RSA-2048 keys; on rumqttd the AWS topics are one byte shorter (aws/)"
            .to_string()
    });
    result.map(|f| (f, note))
}

async fn start_mqtt(cx: &mut CaseContext, cfg: &DutConfig) -> CaseResult {
    cx.dut
        .start(cfg)
        .await
        .map_err(|e| CaseFailure::infra(format!("could not start the DUT: {e}")))?;
    let wait = prompt_wait(cx, REGISTER_WAIT).max(MIN_PROMPT_WAIT) + link_allowance(cx)?;
    cx.dut
        .expect_console("subscribed", wait)
        .await
        .map(drop)
        .map_err(|e| {
            CaseFailure::inconclusive(format!(
                "the DUT did not connect and subscribe within {:.1} s: {e}; last console lines:\n{}",
                wait.as_secs_f64(),
                cx.dut.console().tail(5)
            ))
        })
}

async fn mqtt_windows(
    cx: &mut CaseContext,
    bridge: &BridgeControl,
    scenario: Scenario,
    variant: Variant,
    side: &MqttSide,
    cfg: &DutConfig,
    ota: Option<&OtaServers>,
) -> Result<Figures, CaseFailure> {
    match scenario {
        Scenario::InitialConnection => {
            let w = open(cx, bridge, scenario)?;
            let inside = async {
                start_mqtt(cx, cfg).await?;
                let wait = prompt_wait(cx, Duration::from_secs(10));
                let line = if variant == Variant::MqttAws {
                    "accepted"
                } else {
                    "reported"
                };
                cx.dut
                    .expect_console(line, wait)
                    .await
                    .map(drop)
                    .map_err(|e| {
                        CaseFailure::fail(format!("no `{line}` after the first report: {e}"))
                    })
            }
            .await;
            let acc = close(bridge, w, inside).await?;
            Ok(acc.figures())
        }
        Scenario::SteadyState | Scenario::Power(None) => {
            start_mqtt(cx, cfg).await?;
            tokio::time::sleep(SETTLE).await;
            let w = open(cx, bridge, scenario)?;
            let acc = close(bridge, w, Ok(())).await?;
            Ok(acc.figures())
        }
        Scenario::Observation | Scenario::Power(Some(_)) => {
            start_mqtt(cx, cfg).await?;
            tokio::time::sleep(observation_settle(cx, scenario)?).await;
            let mark = cx.dut.console().mark();
            let t = tap(bridge)?;
            let from = std::time::Instant::now();
            let mut w = open(cx, bridge, scenario)?;
            // The settle is part of the half period after the last report.
            w.end -= observation_settle(cx, scenario)?;
            let want = expected_reports(cx, scenario)?;
            let reported = |cx: &CaseContext| {
                cx.dut
                    .console()
                    .since(mark)
                    .lines()
                    .filter(|l| l.contains("reported "))
                    .count() as u64
            };
            let give_up = w.end + window(cx, scenario)?;
            while reported(cx) < want && tokio::time::Instant::now() < give_up {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            extend_after_last_report(cx, scenario, &mut w)?;
            let acc = close(bridge, w, Ok(())).await?;
            let frames = tapped(&t, from, std::time::Instant::now());
            let n = reported(cx);
            let mut f = acc.figures();
            per_report(&mut f, n, &frames);
            Ok(f)
        }
        Scenario::Write => {
            start_mqtt(cx, cfg).await?;
            tokio::time::sleep(SETTLE).await;
            let thing = side.thing.clone();
            let w = open(cx, bridge, scenario)?;
            let inside = async {
                side.platform
                    .publish_command(&thing, "33333/0/1", b"7", QoS::AtMostOnce)
                    .map_err(|e| CaseFailure::infra(format!("platform publish: {e}")))?;
                let wait = prompt_wait(cx, Duration::from_secs(10));
                cx.dut
                    .expect_console("written /33333/0/1 7", wait)
                    .await
                    .map(drop)
                    .map_err(|e| CaseFailure::fail(format!("the DUT did not apply the write: {e}")))
            }
            .await;
            let acc = close(bridge, w, inside).await?;
            Ok(acc.figures())
        }
        Scenario::Ota => {
            let ota = ota.ok_or_else(|| CaseFailure::infra("no OTA file servers"))?;
            start_mqtt(cx, cfg).await?;
            tokio::time::sleep(SETTLE).await;
            let img = super::fota::support::image(OTA_IMAGE)?;
            let doc = serde_json::json!({
                "operation": "fota",
                "url": ota.https.url(OTA_IMAGE),
                "sha256": img.image.sha256_hex(),
                "size": img.image.len(),
            });
            let thing = side.thing.clone();
            cx.step(format!("job machnation-ota: {doc}"));
            let started = tokio::time::Instant::now();
            let w = open(cx, bridge, scenario)?;
            let inside = async {
                side.platform
                    .create_job(&thing, "machnation-ota", doc)
                    .map_err(|e| CaseFailure::infra(format!("create the job: {e}")))?;
                ota_downloaded(cx).await
            }
            .await;
            let took = started.elapsed();
            let acc = close(bridge, w, inside).await?;
            Ok(ota_figures(&acc, took))
        }
    }
}

// ---------------------------------------------------------------- compare

/// Default high limits of the ratios (LwM2M ÷ MQTT) per scenario and MQTT
/// variant: the study's direction with a margin (study: initial connection
/// 0.28, steady state 0.69, observation 0.12 of the bytes, write 0.83; OTA
/// 1.04; energy 0.76). The plain variant shares LwM2M's certificates, so
/// its handshakes are alike: looser bounds there.
fn compare_defaults(s: Scenario, mqtt: &str) -> Vec<(String, f64)> {
    let aws = mqtt == "mqtt-aws";
    let (bytes, packets) = match s {
        // Plain: derived in suites/machnation.toml (expected 1.2 + 15 %).
        Scenario::InitialConnection => (if aws { 0.6 } else { 1.4 }, if aws { 0.7 } else { 1.3 }),
        Scenario::SteadyState => (0.9, 0.9),
        Scenario::Observation => (if aws { 0.3 } else { 1.0 }, if aws { 0.6 } else { 1.0 }),
        Scenario::Write => (1.0, 1.0),
        Scenario::Ota => (1.2, 1.5),
        Scenario::Power(_) => (1.0, 1.0),
    };
    vec![
        (format!("ratio.bytes.{mqtt}"), bytes),
        (format!("ratio.packets.{mqtt}"), packets),
        // Energy: the study's 0.76 (MQTT ~33 % more) came, by its own
        // account, mostly from its two SDKs (Python vs C). rig runs one
        // agent for both protocols, so only the traffic's energy differs,
        // well under 1 % of a Pi's baseline on Ethernet (measured 0.999 to
        // 1.0008): LwM2M must not cost more than MQTT, within the 1 % the
        // simulated INA219's noise moves a short window.
        // Where LwM2M may send more than MQTT (bytes bound above 1: the
        // plain variant's initial connection), its energy may be as much
        // more on a radio whose energy follows the traffic (LTE-M, NB-IoT).
        (format!("ratio.energy.{mqtt}"), bytes.max(1.01)),
    ]
}

async fn compare_body(cx: &mut CaseContext, scenario: Scenario) -> CaseResult {
    let key = run_key(cx);
    let Some(lw) = recall(&key, scenario, "lwm2m") else {
        return Err(CaseFailure::not_applicable(format!(
            "no figures of machnation.{}.lwm2m earlier in this run (select it before the compare case)",
            scenario.name()
        )));
    };
    let mut ratios = Figures::new();
    let mut defaults: Vec<(String, f64)> = Vec::new();
    for mqtt in ["mqtt-aws", "mqtt-plain"] {
        let Some(m) = recall(&key, scenario, mqtt) else {
            continue;
        };
        // Energy: the model's at real time when both cases have it (a
        // modelled meter: exact at any time scale), else the meter's mean
        // power over the study's window (equal windows, as the study's
        // 10-minute Wh; the real windows differ by milliseconds).
        let model = "machnation.power.model.energy_wh";
        let energy = if lw.contains_key(model) && m.contains_key(model) {
            model
        } else {
            "machnation.power.study_window.energy_wh"
        };
        for (metric, name) in [
            ("bytes", "machnation.bytes"),
            ("packets", "machnation.packets"),
            ("energy", energy),
        ] {
            if let (Some(a), Some(b)) = (lw.get(name), m.get(name))
                && *b > 0.0
            {
                ratios.insert(format!("ratio.{metric}.{mqtt}"), a / b);
            }
        }
        defaults.extend(compare_defaults(scenario, mqtt));
    }
    if ratios.is_empty() {
        return Err(CaseFailure::not_applicable(format!(
            "no MQTT figures of machnation.{}.* earlier in this run to compare with",
            scenario.name()
        )));
    }
    let d: Vec<(&str, f64, f64)> = defaults
        .iter()
        .map(|(n, hi)| (n.as_str(), 0.0, *hi))
        .collect();
    record(cx, &ratios, &d)?;
    let summary: Vec<String> = ratios
        .iter()
        .map(|(k, v)| format!("{k} = {v:.3}"))
        .collect();
    cx.step(summary.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_and_variant_has_a_case_and_compares_come_after_their_variants() {
        let cases = cases();
        let ids: Vec<&str> = cases.iter().map(|c| c.meta.id).collect();
        for s in Scenario::ALL {
            let mut last = 0;
            for v in Variant::ALL {
                let id = format!("machnation.{}.{}", s.name(), v.name());
                let pos = ids
                    .iter()
                    .position(|i| *i == id)
                    .unwrap_or_else(|| panic!("{id}"));
                last = last.max(pos);
            }
            let cmp = format!("machnation.{}.compare", s.name());
            let pos = ids.iter().position(|i| *i == cmp).unwrap();
            assert!(pos > last, "{cmp} must come after its variants");
        }
        assert_eq!(ids.len(), 36);
    }

    #[test]
    fn figures_count_only_platform_classes_as_whole_frames() {
        // An ARP request (Other), a DTLS record to 5684 (CoAP class) and the reply.
        let mut acc = Accounting::new(Duration::ZERO);
        let mut arp = vec![0xffu8; 6];
        arp.extend([2, 0, 0, 0, 0, 2, 0x08, 0x06]);
        arp.extend([0u8; 28]);
        acc.add(Duration::from_millis(1), Direction::Up, &arp);
        let udp = |src: u16, dst: u16, payload: usize| {
            let mut f = vec![0u8; 12];
            f.extend([0x08, 0x00]);
            let total = 20 + 8 + payload;
            let mut ip = vec![
                0x45,
                0,
                (total >> 8) as u8,
                total as u8,
                0,
                0,
                0,
                0,
                64,
                17,
                0,
                0,
            ];
            ip.extend([10, 77, 0, 2, 10, 77, 0, 1]);
            f.extend(ip);
            let ulen = 8 + payload;
            f.extend([
                (src >> 8) as u8,
                src as u8,
                (dst >> 8) as u8,
                dst as u8,
                (ulen >> 8) as u8,
                ulen as u8,
                0,
                0,
            ]);
            f.extend(vec![0u8; payload]);
            f
        };
        acc.add(
            Duration::from_millis(2),
            Direction::Up,
            &udp(40000, 5684, 53),
        );
        acc.add(
            Duration::from_millis(3),
            Direction::Down,
            &udp(5684, 40000, 41),
        );
        acc.finish(Duration::from_secs(1));
        let f = figures(&acc);
        assert_eq!(f["machnation.packets"], 2.0);
        assert_eq!(f["machnation.bytes.up"], 95.0);
        assert_eq!(f["machnation.bytes.down"], 83.0);
        assert_eq!(f["machnation.bytes"], 178.0);
        assert_eq!(f["machnation.avg_packet_len"], 89.0);
        // The UDP payloads (53 and 41 B): the ARP frame has none counted.
        assert_eq!(f["machnation.payload_bytes.up"], 53.0);
        assert_eq!(f["machnation.payload_bytes.down"], 41.0);
        // Both frames in one 100 ms bin of ten: peak / mean = 10.
        assert!((f["machnation.burstiness"] - 10.0).abs() < 1e-9, "{f:?}");
    }

    #[test]
    fn a_slow_link_gets_its_handshake_time() {
        assert_eq!(allowance_for("ethernet").unwrap(), Duration::ZERO);
        let nb = allowance_for("nb-iot").unwrap().as_secs_f64();
        assert!((30.0..45.0).contains(&nb), "nb-iot {nb} s");
        let m = allowance_for("lte-m").unwrap().as_secs_f64();
        assert!((2.0..5.0).contains(&m), "lte-m {m} s");
        assert!(allowance_for("no-such-link").is_err());
        assert_eq!(max_scale_for("ethernet").unwrap(), None);
        assert_eq!(max_scale_for("nb-iot").unwrap(), Some(1.0));
        assert_eq!(max_scale_for("lte-m").unwrap(), Some(6.0));
        assert_eq!(dtls_retransmit_for("ethernet").unwrap(), None);
        assert_eq!(dtls_retransmit_for("lte-m").unwrap(), None);
        let d = dtls_retransmit_for("nb-iot")
            .unwrap()
            .unwrap()
            .as_secs_f64();
        assert!((5.0..7.0).contains(&d), "nb-iot DTLS timer {d} s");
        assert!(dtls_retransmit_for("no-such-link").is_err());
    }

    #[test]
    fn the_real_time_energy_unpacks_a_scaled_window() {
        use rig_bench::power::PowerProfile;
        let lte = PowerProfile::by_name("lte-m").unwrap();
        let ms = Duration::from_millis;
        // A report every 30 s with its reply, over a 120 s window at scale 1,
        // and the same traffic at scale 60 (every 0.5 s).
        let one: Vec<_> = (0..4)
            .flat_map(|i| {
                [
                    (ms(30_000 * i), Direction::Up, 182, true),
                    (ms(30_000 * i + 20), Direction::Down, 120, true),
                ]
            })
            .collect();
        let sixty: Vec<_> = one
            .iter()
            .map(|&(t, d, b, ip)| (t.div_f64(60.0), d, b, ip))
            .collect();
        let w = Duration::from_secs(120);
        let a = real_time_energy_mj(&lte, &one, 1.0, w);
        let b = real_time_energy_mj(&lte, &sixty, 60.0, w);
        assert!((a - b).abs() < 1e-6 * a, "{a} vs {b}");
        // The 30 s of tails after each report keep the radio out of PSM:
        // far above the floor alone, and below the radio on all the time.
        // (Over the window and the radio's 30 s tail after it.)
        let floor = (lte.baseline_ma + lte.floor_ma) * lte.supply_v * (120.0 + lte.tail_s());
        assert!(a > 2.0 * floor, "{a} vs floor {floor}");
        // Packed into 2 s, the meter would see one tail, not four.
        let packed = real_time_energy_mj(&lte, &sixty, 1.0, w);
        assert!(packed < a, "{packed} vs {a}");
        // No traffic: the baseline and the floor. An ARP exchange is not
        // on an LTE-M radio's air.
        let idle = real_time_energy_mj(&lte, &[], 60.0, w);
        assert!((idle - floor).abs() < 1e-6 * floor, "{idle} vs {floor}");
        let arp = [
            (ms(1_000), Direction::Down, 42, false),
            (ms(1_050), Direction::Up, 42, false),
        ];
        assert_eq!(real_time_energy_mj(&lte, &arp, 60.0, w), idle);
        // An exchange as the window closes is charged its whole tail, the
        // same as one in the middle of it.
        let at = |t: u64| {
            [
                (ms(t), Direction::Up, 60, true),
                (ms(t + 20), Direction::Down, 60, true),
            ]
        };
        let middle = real_time_energy_mj(&lte, &at(60_000), 1.0, w);
        let end = real_time_energy_mj(&lte, &at(119_900), 1.0, w);
        assert!((middle - end).abs() < 1e-6 * middle, "{middle} vs {end}");
        assert!(middle > idle + 0.9 * 66.0 * lte.supply_v, "{middle}");
    }

    #[test]
    fn report_exchanges_start_at_device_data_and_the_median_ignores_a_late_ack() {
        use Direction::{Down, Up};
        // An ACK left over from connecting, then three shadow reports; the
        // second one with the broker's own ACK before the reply.
        let frames = [
            (Up, 66),
            (Down, 42),
            (Up, 380),
            (Down, 566),
            (Up, 66),
            (Up, 380),
            (Down, 66),
            (Down, 566),
            (Up, 66),
            (Up, 380),
            (Down, 566),
            (Up, 66),
        ];
        let ex = exchanges(&frames);
        assert_eq!(
            ex.iter().map(Vec::len).collect::<Vec<_>>(),
            [3, 4, 3],
            "{ex:?}"
        );
        let mut f = Figures::new();
        f.insert("machnation.bytes".into(), 3108.0);
        f.insert("machnation.packets".into(), 10.0);
        per_report(&mut f, 3, &frames);
        assert_eq!(f["machnation.per_report.packets"], 3.0);
        assert_eq!(f["machnation.per_report.packets_max"], 4.0);
        assert_eq!(f["machnation.per_report.bytes"], 1012.0);
        assert_eq!(f["machnation.acks.down"], 1.0);
        assert_eq!(f["machnation.acks.up"], 4.0);
        assert!((f["machnation.per_report.packets_mean"] - 10.0 / 3.0).abs() < 1e-9);
        assert_eq!(median(vec![1.0, 4.0]), 2.5);
    }

    #[test]
    fn the_test_string_has_the_asked_length_and_is_printable() {
        let s = test_string(STRING_LEN);
        assert_eq!(s.len(), STRING_LEN);
        assert!(s.bytes().all(|b| b.is_ascii_graphic()));
        assert_eq!(test_string(0), "");
    }

    #[test]
    fn windows_follow_the_study_with_a_guard_and_a_floor() {
        assert_eq!(Scenario::SteadyState.window(), Duration::from_secs(600));
        assert_eq!(Scenario::Observation.guard(), Duration::from_secs(15));
        for s in Scenario::ALL {
            assert!(timeout_for(s) > s.window() + s.guard());
        }
    }

    #[test]
    fn compare_defaults_follow_the_study_direction() {
        for s in Scenario::ALL {
            for (name, hi) in compare_defaults(s, "mqtt-aws") {
                assert!(hi > 0.0 && hi <= 1.5, "{name}");
            }
        }
        let d = compare_defaults(Scenario::Observation, "mqtt-aws");
        assert_eq!(d[0], ("ratio.bytes.mqtt-aws".to_string(), 0.3));
    }
}
