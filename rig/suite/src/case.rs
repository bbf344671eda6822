//! What a case is: its metadata, its body, and the context the body works in.
//!
//! A case is Rust code (see [`crate::cases`]) with an id, a title, the bench
//! features it requires, the DUT start state it needs and a timeout. Its body is
//! an async function over a [`CaseContext`]: it drives the services and the DUT,
//! records measurements, and returns `Ok(())` for a pass or a [`CaseFailure`]
//! that carries the verdict and a precise message. The engine applies the
//! timeout; a body never needs its own outer timeout, but every wait *inside* a
//! body is bounded too (use [`CaseContext::scaled`] for protocol times).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use rig_bench::dut::Dut;
use rig_report::events::{Measurement, Verdict};
use rig_services::lwm2m::Lwm2mServer;

/// The ETS area a case belongs to (for `rig list` and the report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Area {
    /// ETS 0-99.
    Bootstrap,
    /// ETS 100-199.
    Registration,
    /// ETS 200-299.
    DeviceManagement,
    /// ETS 300-399.
    InformationReporting,
    /// ETS 400-499.
    Security,
    /// ETS 500-999 and 1000+.
    CoreObjects,
    /// ETS 750-799 and the FOTA interruption cases.
    FirmwareUpdate,
    /// The MachNation study scenarios.
    MachNation,
}

impl Area {
    /// Short lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Area::Bootstrap => "bootstrap",
            Area::Registration => "registration",
            Area::DeviceManagement => "device-management",
            Area::InformationReporting => "information-reporting",
            Area::Security => "security",
            Area::CoreObjects => "core-objects",
            Area::FirmwareUpdate => "firmware-update",
            Area::MachNation => "machnation",
        }
    }
}

/// The state the DUT must be in when the body starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartState {
    /// The DUT is stopped; the body starts it (e.g. to watch the first Register).
    Stopped,
    /// The DUT was (re)started with the given ETS configuration and has
    /// registered with the rig's LwM2M server.
    Registered(EtsConfig),
}

/// ETS appendix C configurations the rig can provision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtsConfig {
    /// C.1: one server account, lifetime 86400, binding U.
    C1,
    /// C.3: C.1 plus default pmin 1, pmax 10, disable timeout 86400.
    C3,
}

/// Static facts about a case.
#[derive(Clone, Debug)]
pub struct CaseMeta {
    /// Case id, e.g. `LightweightM2M-1.1-int-101`.
    pub id: &'static str,
    /// Human title (the ETS title).
    pub title: &'static str,
    /// ETS area.
    pub area: Area,
    /// Bench features the case needs (e.g. `lwm2m`, `dtls-psk`, `impair`, `power`).
    pub requires: &'static [&'static str],
    /// Start state.
    pub start: StartState,
    /// Case timeout at time scale 1 (the engine divides it by the time scale).
    pub timeout: Duration,
    /// How the case reads an ambiguous ETS text, if it had to choose.
    pub reading: Option<&'static str>,
}

/// Why a case did not pass.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseFailure {
    /// The verdict (never `Pass`).
    pub verdict: Verdict,
    /// What was expected and what was seen.
    pub message: String,
}

impl CaseFailure {
    /// The DUT broke a pass criterion.
    pub fn fail(message: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Fail,
            message: message.into(),
        }
    }
    /// The case could not decide.
    pub fn inconclusive(message: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Inconclusive,
            message: message.into(),
        }
    }
    /// The case does not apply to this DUT or bench.
    pub fn not_applicable(message: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::NotApplicable,
            message: message.into(),
        }
    }
    /// A wait inside the case ran out.
    pub fn out_of_time(message: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::OutOfTime,
            message: message.into(),
        }
    }
    /// The rig itself failed.
    pub fn infra(message: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Error,
            message: message.into(),
        }
    }
}

/// What a case body returns.
pub type CaseResult = Result<(), CaseFailure>;

/// The boxed future of a case body.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = CaseResult> + Send + 'a>>;

/// A case: metadata plus body.
pub struct CaseDef {
    /// Static facts.
    pub meta: CaseMeta,
    /// The body. Write it as `|cx| Box::pin(body(cx))` over an `async fn body(cx: &mut CaseContext) -> CaseResult`.
    pub body: for<'a> fn(&'a mut CaseContext) -> CaseFuture<'a>,
}

impl std::fmt::Debug for CaseDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaseDef")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// Everything a case body can use. The engine builds one per case.
pub struct CaseContext {
    /// The rig's LwM2M server (a cheap handle).
    pub server: Lwm2mServer,
    /// The device under test, already in the case's start state.
    pub dut: Box<dyn Dut>,
    /// The endpoint name the DUT registers with.
    pub endpoint: String,
    /// Time scale divisor (1.0 = real time).
    pub time_scale: f64,
    /// Measurements recorded so far.
    pub measurements: Vec<Measurement>,
    /// Progress lines for the reporters.
    pub progress: tokio::sync::mpsc::UnboundedSender<String>,
}

impl CaseContext {
    /// Records a measurement.
    pub fn measure(&mut self, name: impl Into<String>, unit: impl Into<String>, value: f64) {
        self.measurements.push(Measurement {
            name: name.into(),
            unit: unit.into(),
            value,
            limits: None,
        });
    }

    /// Tells the human what the case is doing now.
    pub fn step(&self, message: impl Into<String>) {
        // A closed channel only means no reporter listens any more.
        let _ = self.progress.send(message.into());
    }

    /// A protocol duration divided by the time scale.
    pub fn scaled(&self, d: Duration) -> Duration {
        d.div_f64(self.time_scale.max(1.0))
    }
}
