//! The run as reporters see it: [`RunLog`], rebuilt from events.
//!
//! Every file reporter keeps one and rewrites its file from it, so each file is
//! always a complete picture: every planned case is present from the first
//! write, as not run until its `CaseFinished` arrives.

use std::path::Path;

use crate::ReportError;
use crate::events::{CaseRecord, PlannedCase, RunEvent, RunInfo, RunOutcome, Summary};
use crate::series::{self, Series};

/// The message of a planned case that has not started yet.
pub const NOT_STARTED: &str = "not started yet";

/// The run so far.
#[derive(Clone, Debug, PartialEq)]
pub struct RunLog {
    /// Facts about the run.
    pub info: RunInfo,
    /// One record per planned case, in plan order.
    pub cases: Vec<CaseRecord>,
    /// The series of each case (see [`crate::series`]), indexed like `cases`;
    /// empty for a case without any.
    pub series: Vec<Vec<Series>>,
    /// Index of the case running now, if any.
    pub running: Option<usize>,
    /// End time, once the run finished.
    pub finished_at: Option<String>,
    /// How the run ended, once it did.
    pub outcome: Option<RunOutcome>,
}

impl RunLog {
    /// A log where every planned case is not run yet.
    pub fn new(info: RunInfo, planned: &[PlannedCase]) -> Self {
        RunLog {
            info,
            cases: planned
                .iter()
                .map(|p| CaseRecord::not_run(p, NOT_STARTED))
                .collect(),
            series: vec![Vec::new(); planned.len()],
            running: None,
            finished_at: None,
            outcome: None,
        }
    }

    /// Applies an event to a log (creating it on `RunStarted`). Returns true when
    /// the event changed what a report shows (a reporter rewrites its file then).
    pub fn apply(log: &mut Option<RunLog>, event: &RunEvent) -> bool {
        match event {
            RunEvent::RunStarted { info, planned } => {
                *log = Some(RunLog::new(info.clone(), planned));
                true
            }
            RunEvent::CaseStarted { index, .. } => {
                if let Some(l) = log {
                    l.running = Some(*index);
                }
                false
            }
            RunEvent::CaseProgress { .. } => false,
            RunEvent::CaseFinished { index, record } => {
                let Some(l) = log else { return false };
                if let Some(slot) = l.cases.get_mut(*index) {
                    *slot = record.clone();
                } else {
                    l.cases.push(record.clone());
                }
                l.series.resize(l.cases.len(), Vec::new());
                l.running = None;
                true
            }
            RunEvent::RunFinished {
                outcome,
                finished_at,
            } => {
                let Some(l) = log else { return false };
                let why = match outcome {
                    RunOutcome::Completed => "the run ended before this case",
                    RunOutcome::Interrupted => "run interrupted by user (Ctrl-C)",
                    RunOutcome::StoppedEarly => "--fail-fast stopped the run after a failure",
                    RunOutcome::TimedOut => "the run timeout expired",
                    RunOutcome::Aborted => "the run was aborted",
                };
                for c in l.cases.iter_mut().filter(|c| !c.ran) {
                    if c.message == format!("not run: {NOT_STARTED}") {
                        c.message = format!("not run: {why}");
                    }
                }
                l.running = None;
                l.outcome = Some(*outcome);
                l.finished_at = Some(finished_at.clone());
                true
            }
        }
    }

    /// As [`RunLog::apply`], and when a case finishes, reads the series files
    /// its record lists (relative to the run directory `dir`) into
    /// [`RunLog::series`]. The log is updated even when a series file cannot
    /// be read; the error is returned alongside (the caller still writes its
    /// report, then reports the error).
    pub fn apply_in(
        log: &mut Option<RunLog>,
        event: &RunEvent,
        dir: &Path,
    ) -> (bool, Result<(), ReportError>) {
        let changed = Self::apply(log, event);
        let mut result = Ok(());
        if let (RunEvent::CaseFinished { index, record }, Some(l)) = (event, log.as_mut()) {
            let at = if *index < l.cases.len() {
                *index
            } else {
                l.cases.len().saturating_sub(1)
            };
            let loaded = series::load_for(dir, record);
            if let Some(slot) = l.series.get_mut(at) {
                match loaded {
                    Ok(s) => *slot = s,
                    Err(e) => {
                        slot.clear();
                        result = Err(e);
                    }
                }
            }
        }
        (changed, result)
    }

    /// Counts by verdict.
    pub fn summary(&self) -> Summary {
        Summary::of(&self.cases)
    }

    /// Suite names in the order they first appear in the plan.
    pub fn suites(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in &self.cases {
            if !out.contains(&c.suite) {
                out.push(c.suite.clone());
            }
        }
        out
    }
}
