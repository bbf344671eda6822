//! The events the engine emits and the records reporters keep.
//!
//! The engine never formats anything: it emits [`RunEvent`]s, and each reporter
//! (JUnit, run.json, progress, Markdown) consumes them on its own. These types are
//! also the `run.json` schema, so their serde names are a public contract
//! (documented in `reports/README.md`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The outcome of one case: the five OMA verdicts, plus infrastructure error.
///
/// Serialized as `pass`, `fail`, `inconclusive`, `not_applicable`, `out_of_time`, `error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The DUT met every pass criterion.
    Pass,
    /// The DUT broke a pass criterion; the message names the deviation.
    Fail,
    /// The case ran but could not decide.
    Inconclusive,
    /// The case does not apply to this bench or DUT; the message says why.
    NotApplicable,
    /// The case ran out of time before it could decide.
    OutOfTime,
    /// The rig itself failed (flash, probe, network, DUT unreachable), not the DUT.
    Error,
}

impl Verdict {
    /// The `run.json` spelling of the verdict.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotApplicable => "not_applicable",
            Verdict::OutOfTime => "out_of_time",
            Verdict::Error => "error",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Limits on a measurement, with an optional marginal band (as in OpenHTF).
///
/// A value outside `[low, high]` fails. A value inside the limits but outside
/// `[marginal_low, marginal_high]` passes and is flagged as marginal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Lowest passing value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<f64>,
    /// Highest passing value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
    /// Values below this (but above `low`) are marginal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marginal_low: Option<f64>,
    /// Values above this (but below `high`) are marginal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marginal_high: Option<f64>,
}

/// One named value a case measured, with its unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Dotted name, e.g. `net.l2_bytes.up` or `registration.latency_s`.
    pub name: String,
    /// Unit, e.g. `B`, `packets`, `s`, `mJ`, `ratio`.
    pub unit: String,
    /// The value.
    pub value: f64,
    /// Limits, if the suite or case set any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// What kind of evidence an artifact is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactKind {
    /// A packet capture (pcap).
    Pcap,
    /// A DUT console log.
    Console,
    /// A power trace (CSV).
    Power,
    /// Anything else (server log, image, ...).
    Other,
}

/// A file of evidence that belongs to a case, relative to the run directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// What the file holds.
    pub kind: ArtifactKind,
    /// Path relative to the run directory, e.g. `console/LightweightM2M-1.1-int-101.log`.
    pub path: PathBuf,
}

/// The full record of one case, as written to run.json and JUnit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseRecord {
    /// Case id, e.g. `LightweightM2M-1.1-int-101`.
    pub id: String,
    /// Human title.
    pub title: String,
    /// The suite file (stem) that selected this case.
    pub suite: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Wall time the case took, in seconds (0 for a case that never started).
    pub duration_s: f64,
    /// Why the verdict is what it is; empty on a plain pass.
    pub message: String,
    /// Measurements taken.
    pub measurements: Vec<Measurement>,
    /// Evidence files.
    pub artifacts: Vec<Artifact>,
    /// False for a case that was planned but never started (run interrupted, or
    /// `--fail-fast` stopped the run).
    pub ran: bool,
    /// How the case reads an ambiguous ETS text, if it had to choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reading: Option<String>,
    /// The last lines of the DUT console during the case.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub console_tail: String,
    /// Start time (RFC 3339, UTC); absent for a case that never started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
}

/// A case as planned, before it runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedCase {
    /// Case id.
    pub id: String,
    /// Human title.
    pub title: String,
    /// Suite (file stem) that selected it.
    pub suite: String,
}

/// Facts about the bench and the DUT, recorded in every report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchInfo {
    /// Bench name from the bench file.
    pub name: String,
    /// Path of the bench file as given.
    pub path: String,
    /// Features the bench provides.
    pub features: Vec<String>,
    /// DUT identity: target kind, command or chip, firmware hash, versions.
    pub dut: BTreeMap<String, String>,
}

/// Facts about the run as a whole.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Run id: UTC timestamp plus a short random suffix.
    pub run_id: String,
    /// The command line, argument by argument.
    pub invocation: Vec<String>,
    /// The bench.
    pub bench: BenchInfo,
    /// Tool and component versions (`rig`, `rig-agent`, ...).
    pub versions: BTreeMap<String, String>,
    /// Suite files, as given.
    pub suites: Vec<String>,
    /// Time scale divisor in force (1 = real time).
    pub time_scale: f64,
    /// Start time (RFC 3339, UTC).
    pub started_at: String,
}

/// How the run as a whole ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Every case ran to its end.
    Completed,
    /// The user pressed Ctrl-C (or the process got SIGTERM).
    Interrupted,
    /// `--fail-fast` stopped the run after a failure.
    StoppedEarly,
    /// The whole-run timeout expired.
    TimedOut,
    /// The rig could not continue (services or network could not start).
    Aborted,
}

impl RunOutcome {
    /// The `run.json` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Completed => "completed",
            RunOutcome::Interrupted => "interrupted",
            RunOutcome::StoppedEarly => "stopped_early",
            RunOutcome::TimedOut => "timed_out",
            RunOutcome::Aborted => "aborted",
        }
    }
}

impl std::fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counts of cases by verdict, for `run.json` and the report's summary.
///
/// `planned = ran + not_run`, and the six verdict counts add up to `ran`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Cases in the plan.
    pub planned: usize,
    /// Cases that started (whatever their verdict).
    pub ran: usize,
    /// Cases that never started.
    pub not_run: usize,
    /// Verdict `pass`.
    pub pass: usize,
    /// Verdict `fail`.
    pub fail: usize,
    /// Verdict `inconclusive`.
    pub inconclusive: usize,
    /// Verdict `not_applicable`.
    pub not_applicable: usize,
    /// Verdict `out_of_time`.
    pub out_of_time: usize,
    /// Verdict `error` (infrastructure).
    pub error: usize,
}

impl Summary {
    /// Counts the records.
    pub fn of(cases: &[CaseRecord]) -> Self {
        let mut s = Summary {
            planned: cases.len(),
            ..Summary::default()
        };
        for c in cases {
            if !c.ran {
                s.not_run += 1;
                continue;
            }
            s.ran += 1;
            match c.verdict {
                Verdict::Pass => s.pass += 1,
                Verdict::Fail => s.fail += 1,
                Verdict::Inconclusive => s.inconclusive += 1,
                Verdict::NotApplicable => s.not_applicable += 1,
                Verdict::OutOfTime => s.out_of_time += 1,
                Verdict::Error => s.error += 1,
            }
        }
        s
    }
}

impl CaseRecord {
    /// The record of a planned case that has not run (yet): `ran = false`,
    /// verdict `inconclusive` (no verdict could be reached), and a message
    /// starting with `not run: `.
    pub fn not_run(planned: &PlannedCase, why: &str) -> Self {
        CaseRecord {
            id: planned.id.clone(),
            title: planned.title.clone(),
            suite: planned.suite.clone(),
            verdict: Verdict::Inconclusive,
            duration_s: 0.0,
            message: format!("not run: {why}"),
            measurements: Vec::new(),
            artifacts: Vec::new(),
            ran: false,
            reading: None,
            console_tail: String::new(),
            started_at: None,
        }
    }
}

/// What the engine tells reporters, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum RunEvent {
    /// The plan is ready; every planned case is listed.
    RunStarted {
        /// Run facts.
        info: RunInfo,
        /// Every case that will be attempted, in order.
        planned: Vec<PlannedCase>,
    },
    /// A case is starting.
    CaseStarted {
        /// Index in the plan.
        index: usize,
        /// Case id.
        id: String,
    },
    /// Something worth telling a human happened inside a case (a step, a wait).
    CaseProgress {
        /// Index in the plan.
        index: usize,
        /// One line of text.
        message: String,
    },
    /// A case ended (or was recorded as not run).
    CaseFinished {
        /// Index in the plan.
        index: usize,
        /// The full record.
        record: CaseRecord,
    },
    /// The run ended; no more events follow.
    RunFinished {
        /// How it ended.
        outcome: RunOutcome,
        /// End time (RFC 3339, UTC).
        finished_at: String,
    },
}
