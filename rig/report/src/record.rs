//! `run.json`: the full machine-readable record of a run.
//!
//! The schema (documented in `reports/README.md`) is [`RunRecord`]: the run
//! facts, a summary, and one [`CaseRecord`] per planned case. It is rewritten
//! after every case, so a run that dies part-way still leaves a valid file where
//! the cases not reached say `"ran": false`.
//!
//! Each case object is a [`CaseRecord`] plus, optionally, its `series`
//! (bytes over time, packet-length histograms: see [`crate::series`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::events::{BenchInfo, CaseRecord, RunEvent, RunOutcome, Summary};
use crate::series::Series;
use crate::state::RunLog;
use crate::{ReportError, Reporter};

/// The version of the `run.json` schema; bumped on any incompatible change.
pub const SCHEMA: u32 = 1;

/// The whole of `run.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Schema version ([`SCHEMA`]).
    pub schema: u32,
    /// Run id: UTC timestamp plus a short random suffix.
    pub run_id: String,
    /// The command line, argument by argument.
    pub invocation: Vec<String>,
    /// Bench and DUT facts.
    pub bench: BenchInfo,
    /// Tool and component versions.
    pub versions: BTreeMap<String, String>,
    /// Suite files, as given.
    pub suites: Vec<String>,
    /// Time scale divisor (1 = real time).
    pub time_scale: f64,
    /// Start time (RFC 3339, UTC).
    pub started_at: String,
    /// End time; absent while the run goes on (or if it was killed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// How the run ended; absent while the run goes on (or if it was killed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<RunOutcome>,
    /// Counts by verdict.
    pub summary: Summary,
    /// One record per planned case, in plan order.
    pub cases: Vec<CaseEntry>,
}

/// One case of `run.json`: the record, and its series when it has any.
///
/// It dereferences to the [`CaseRecord`], so `entry.verdict` reads as it did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseEntry {
    /// The case's record (its keys are inlined in the case object).
    #[serde(flatten)]
    pub record: CaseRecord,
    /// Time series and histograms measured during the case (optional key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<Series>,
}

impl std::ops::Deref for CaseEntry {
    type Target = CaseRecord;
    fn deref(&self) -> &CaseRecord {
        &self.record
    }
}

impl RunRecord {
    /// The record of a run log.
    pub fn from_log(log: &RunLog) -> Self {
        RunRecord {
            schema: SCHEMA,
            run_id: log.info.run_id.clone(),
            invocation: log.info.invocation.clone(),
            bench: log.info.bench.clone(),
            versions: log.info.versions.clone(),
            suites: log.info.suites.clone(),
            time_scale: log.info.time_scale,
            started_at: log.info.started_at.clone(),
            finished_at: log.finished_at.clone(),
            outcome: log.outcome,
            summary: log.summary(),
            cases: log
                .cases
                .iter()
                .enumerate()
                .map(|(i, c)| CaseEntry {
                    record: c.clone(),
                    series: log.series.get(i).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// Renders `run.json` (pretty-printed, with a final newline).
pub fn render(log: &RunLog) -> Result<String, ReportError> {
    let mut text = serde_json::to_string_pretty(&RunRecord::from_log(log)).map_err(|e| {
        ReportError::Serialize {
            what: "run.json",
            message: e.to_string(),
        }
    })?;
    text.push('\n');
    Ok(text)
}

/// Writes `run.json` into the run directory after every case.
#[derive(Debug)]
pub struct RecordReporter {
    dir: PathBuf,
    path: PathBuf,
    log: Option<RunLog>,
}

impl RecordReporter {
    /// A reporter writing `<dir>/run.json`.
    pub fn new(dir: &Path) -> Self {
        RecordReporter {
            dir: dir.to_path_buf(),
            path: dir.join("run.json"),
            log: None,
        }
    }
}

impl Reporter for RecordReporter {
    fn handle(&mut self, event: &RunEvent) -> Result<(), ReportError> {
        let (changed, loaded) = RunLog::apply_in(&mut self.log, event, &self.dir);
        if changed && let Some(log) = &self.log {
            write_atomic(&self.path, render(log)?.as_bytes())?;
        }
        loaded
    }
}
