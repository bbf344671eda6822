//! The engine: plan a run, then run each case under nested timeouts.
//!
//! ```text
//!  suites (ids, globs) ─┐
//!  case library ────────┼─► plan() ─► Plan ─► run() ──RunEvent──► reporters
//!  --filter, features ──┘                      │
//!                                              └─ per case: start::reach → body → verdict
//! ```
//!
//! [`plan`] selects cases: each suite's selectors are exact ids or globs over the
//! library, `--filter` globs narrow the result, and a case whose required bench
//! features are missing is planned as Not Applicable with the reason. A plan
//! with zero cases is an error unless allowed.
//!
//! [`run`] takes the plan, the services and the DUT, and for each case:
//! 1. builds a [`CaseContext`] (the DUT moves into it and back out after);
//! 2. brings the DUT to the case's start state ([`crate::start::reach`]) and runs
//!    the body, both under one deadline: the earliest of the case timeout
//!    (divided by the time scale), the suite's and the run's. A case never
//!    outlives its suite, and a suite never outlives the run;
//! 3. turns the outcome into a verdict: `Ok` → Pass, a [`CaseFailure`] → its
//!    verdict, a deadline → Out of Time naming the case's last progress step, a
//!    panic → Error (the panic is caught; the run goes on); a measurement
//!    outside its limits turns a Pass into a Fail;
//! 4. saves the console slice of the case as `console/<case-id>.log`, and emits
//!    [`RunEvent::CaseFinished`].
//!
//! A cancellation (Ctrl-C in the CLI) records the running case as Error
//! "interrupted by user (Ctrl-C)" and every later case as not run. An
//! infrastructure error (the DUT cannot start) only costs its own case.
//!
//! The engine never formats a report and never parses bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::FutureExt as _;
use globset::{Glob, GlobMatcher};
use rig_bench::dut::Dut;
use rig_report::events::{
    Artifact, ArtifactKind, CaseRecord, Measurement, PlannedCase, RunEvent, RunInfo, RunOutcome,
    Summary, Verdict,
};
use rig_services::lwm2m::Lwm2mServer;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::case::{
    Area, CaseContext, CaseDef, CaseFailure, CaseNetwork, SecurityContext, SecurityMode,
};
use crate::start::ServerCert;

/// The message of the case that was running when the user pressed Ctrl-C.
pub const INTERRUPTED: &str = "interrupted by user (Ctrl-C)";

/// Scaling a case timeout by the time scale never takes it below this (or
/// below the case's own timeout, if that is shorter): process start-up and
/// scheduling do not get faster with the time scale.
pub const MIN_SCALED_CASE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many console lines go into a case record's `console_tail`.
pub const CONSOLE_TAIL_LINES: usize = 20;

/// What one suite file contributes to a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct SuiteSelection {
    /// Suite name (the file stem), used in reports.
    pub name: String,
    /// Case selectors: exact ids or globs (`LightweightM2M-1.1-int-10*`).
    pub selectors: Vec<String>,
    /// Bench features every case of this suite needs, on top of each case's own.
    pub requires: Vec<String>,
    /// The suite's time scale, if it sets one.
    pub time_scale: Option<f64>,
    /// The suite timeout (wall time for all its cases), if it sets one.
    pub timeout: Option<Duration>,
    /// The security matrix: when not empty, each selected case runs once per
    /// mode, as `<id>[<mode>]` (cases of the Security area, which fix their
    /// own mode, run once). Empty: each case once, unsuffixed.
    pub matrix: Vec<SecurityMode>,
    /// The suite file (for messages about its parameters); empty if none.
    pub source: String,
    /// Per-case parameters for each selected case id (see
    /// [`crate::file::SuiteFile::params_for`]); a case not here has none.
    pub params: BTreeMap<String, BTreeMap<String, toml::Value>>,
    /// Limits on measurements per selected case id, by measurement name (see
    /// [`crate::file::SuiteFile::limits_for`]). The engine sets them on the
    /// case's measurements and judges them after the case: outside fails,
    /// inside the limits but outside the marginal band passes as marginal.
    pub limits: BTreeMap<String, BTreeMap<String, rig_report::events::Limits>>,
}

/// Plan options that come from the command line and the bench.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlanOptions {
    /// `--filter` globs: when any are given, only matching case ids stay.
    pub filters: Vec<String>,
    /// Features the bench provides.
    pub features: BTreeSet<String>,
    /// Whether a plan with zero cases is allowed (`--allow-empty`).
    pub allow_empty: bool,
}

/// One case in a plan.
#[derive(Clone, Debug)]
pub struct PlannedEntry {
    /// The case.
    pub case: &'static CaseDef,
    /// Index of the suite (in [`Plan::suites`]) that selected it.
    pub suite: usize,
    /// If set, the case is Not Applicable on this bench, and this says why.
    pub not_applicable: Option<String>,
    /// The matrix mode of this variant, if the suite has a matrix.
    pub security: Option<SecurityMode>,
    /// With `rig run --repeat N`: this is run `k` of `N`, as `(k, N)`.
    pub run: Option<(u32, u32)>,
}

impl PlannedEntry {
    /// The id in reports: the case id, with `[<mode>]` for a matrix variant
    /// and `#k` for run `k` of a repeated case (see [`Plan::repeated`]).
    pub fn id(&self) -> String {
        let id = variant_id(self.case.meta.id, self.security);
        match self.run {
            Some((k, _)) => format!("{id}#{k}"),
            None => id,
        }
    }
}

/// A case id with its matrix mode: `LightweightM2M-1.1-int-101[psk]`.
pub fn variant_id(id: &str, mode: Option<SecurityMode>) -> String {
    match mode {
        Some(m) => format!("{id}[{m}]"),
        None => id.to_string(),
    }
}

/// The cases a run will attempt, in order.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The suites, in the order given.
    pub suites: Vec<SuiteSelection>,
    /// The cases, suite by suite, in library (id) order within a suite.
    pub entries: Vec<PlannedEntry>,
}

impl Plan {
    /// `rig run --repeat N`: each entry `n` times in a row, as runs
    /// `<id>#1` to `<id>#N` (each run is a case of its own in every report,
    /// with its own evidence). `n <= 1` leaves the plan as it is.
    pub fn repeated(self, n: u32) -> Plan {
        if n <= 1 {
            return self;
        }
        let entries = self
            .entries
            .into_iter()
            .flat_map(|e| {
                (1..=n).map(move |k| PlannedEntry {
                    run: Some((k, n)),
                    ..e.clone()
                })
            })
            .collect();
        Plan {
            suites: self.suites,
            entries,
        }
    }

    /// The plan as reporters see it.
    pub fn planned_cases(&self) -> Vec<PlannedCase> {
        self.entries
            .iter()
            .map(|e| PlannedCase {
                id: e.id(),
                title: e.case.meta.title.to_string(),
                suite: self.suites[e.suite].name.clone(),
            })
            .collect()
    }
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A selector or filter is not a valid glob.
    #[error("suite `{suite}`: `{selector}` is not a valid glob: {message}")]
    BadGlob {
        /// The suite (or `--filter`).
        suite: String,
        /// The selector as written.
        selector: String,
        /// The glob parser's message.
        message: String,
    },
    /// A selector matches no case in the library.
    #[error("suite `{suite}`: `{selector}` matches no case{}", hint(.suggestion))]
    NoSuchCase {
        /// The suite.
        suite: String,
        /// The selector as written.
        selector: String,
        /// The closest case id, if one is close.
        suggestion: Option<String>,
    },
    /// Nothing was planned.
    #[error(
        "no case planned: {0}; pass --allow-empty to accept an empty run, or check the suites and --filter"
    )]
    Empty(String),
}

fn hint(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}

fn glob(scope: &str, pattern: &str) -> Result<GlobMatcher, PlanError> {
    Glob::new(pattern)
        .map(|g| g.compile_matcher())
        .map_err(|e| PlanError::BadGlob {
            suite: scope.to_string(),
            selector: pattern.to_string(),
            message: e.kind().to_string(),
        })
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// Selects the cases of a run. See the module doc.
pub fn plan(
    suites: Vec<SuiteSelection>,
    library: &'static [CaseDef],
    options: &PlanOptions,
) -> Result<Plan, PlanError> {
    let filters = options
        .filters
        .iter()
        .map(|f| glob("--filter", f))
        .collect::<Result<Vec<_>, _>>()?;
    let mut entries = Vec::new();
    for (index, suite) in suites.iter().enumerate() {
        let mut chosen: BTreeSet<usize> = BTreeSet::new();
        for selector in &suite.selectors {
            let before = chosen.len();
            let mut matched = false;
            if is_glob(selector) {
                let m = glob(&suite.name, selector)?;
                for (i, c) in library.iter().enumerate() {
                    if m.is_match(c.meta.id) {
                        matched = true;
                        chosen.insert(i);
                    }
                }
            } else if let Some(i) = library.iter().position(|c| c.meta.id == selector) {
                matched = true;
                chosen.insert(i);
            }
            if !matched && chosen.len() == before {
                let suggestion = library
                    .iter()
                    .map(|c| (strsim::jaro_winkler(c.meta.id, selector), c.meta.id))
                    .filter(|(score, _)| *score > 0.8)
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, id)| id.to_string());
                return Err(PlanError::NoSuchCase {
                    suite: suite.name.clone(),
                    selector: selector.clone(),
                    suggestion,
                });
            }
        }
        for i in chosen {
            let case = &library[i];
            let missing: Vec<&str> = case
                .meta
                .requires
                .iter()
                .copied()
                .chain(suite.requires.iter().map(String::as_str))
                .filter(|f| !options.features.contains(*f))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let not_applicable = if missing.is_empty() {
                None
            } else {
                Some(format!(
                    "the bench lacks required feature{} {}",
                    if missing.len() == 1 { "" } else { "s" },
                    missing
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            };
            let modes: Vec<Option<SecurityMode>> =
                if suite.matrix.is_empty() || case.meta.area == Area::Security {
                    vec![None]
                } else {
                    suite.matrix.iter().copied().map(Some).collect()
                };
            for security in modes {
                // A filter matches the case id or the variant id.
                let vid = variant_id(case.meta.id, security);
                if !filters.is_empty()
                    && !filters
                        .iter()
                        .any(|f| f.is_match(case.meta.id) || f.is_match(&vid))
                {
                    continue;
                }
                entries.push(PlannedEntry {
                    case,
                    suite: index,
                    not_applicable: not_applicable.clone(),
                    security,
                    run: None,
                });
            }
        }
    }
    if entries.is_empty() && !options.allow_empty {
        let why = if suites.is_empty() {
            "no suite given".to_string()
        } else if !options.filters.is_empty() {
            format!(
                "--filter {} matched none of the selected cases",
                options.filters.join(", ")
            )
        } else {
            "the suites select no case".to_string()
        };
        return Err(PlanError::Empty(why));
    }
    Ok(Plan { suites, entries })
}

/// How a run is run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSettings {
    /// Time scale from the command line; overrides each suite's.
    pub time_scale: Option<f64>,
    /// The bench's factor on every case timeout (slow boards > 1).
    pub case_timeout_scale: f64,
    /// Whole-run timeout, if any.
    pub run_timeout: Option<Duration>,
    /// Stop after the first case that neither passes nor is Not Applicable.
    pub fail_fast: bool,
    /// The run directory; console slices go to `console/` under it.
    pub evidence_dir: PathBuf,
    /// The endpoint name the DUT registers with.
    pub endpoint: String,
}

/// What the run uses: the rig's services and the DUT.
pub struct Rig {
    /// The LwM2M server (a cheap handle).
    pub server: Lwm2mServer,
    /// The device under test.
    pub dut: Box<dyn Dut>,
    /// How to go secure: the binder for `coaps://` servers next to `server`
    /// and the bench's credentials (the mode fields are per case).
    pub security: SecurityContext,
    /// The network the cases run on.
    pub net: CaseNetwork,
    /// The run's power meter, if the bench has one (`CaseContext::power`).
    pub power: Option<rig_bench::power::CasePower>,
}

impl std::fmt::Debug for Rig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rig")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// How a run ended, for the caller's exit code.
#[derive(Clone, Debug, PartialEq)]
pub struct RunResult {
    /// How the run ended.
    pub outcome: RunOutcome,
    /// Counts by verdict.
    pub summary: Summary,
    /// Every case record, in plan order.
    pub cases: Vec<CaseRecord>,
}

/// Which of the nested timeouts bounds a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bound {
    Case,
    Suite,
    Run,
}

enum CaseEnd {
    Finished(Result<(), CaseFailure>),
    Panicked(String),
    TimedOut,
    Cancelled,
}

/// Per-case work around each case that runs (not for Not Applicable or not
/// run cases), e.g. a per-case capture of the simulated network. The engine
/// knows nothing of what the hooks do.
pub trait CaseHooks: Send {
    /// Called before the case's start state is reached. An error is noted in
    /// the case's message; the case still runs.
    fn before_case(&mut self, id: &str) -> Result<(), String>;
    /// Called after the case body (whatever its outcome): measurements and
    /// artifacts (paths relative to the evidence folder) to add to the case
    /// record, or an error noted in the case's message.
    fn after_case(&mut self, id: &str) -> Result<(Vec<Measurement>, Vec<Artifact>), String>;
    /// Called after a case that left the DUT not answering (`why`, see
    /// [`rig_bench::switch::stopped_answering`]), before its console slice is
    /// saved; returns a note for the case's message. The default stops the
    /// DUT and power-cycles it ([`rig_bench::switch::recover`]).
    fn recover<'a>(
        &'a mut self,
        dut: &'a mut dyn Dut,
        why: &'a str,
    ) -> futures::future::BoxFuture<'a, String> {
        Box::pin(rig_bench::switch::recover(dut, why))
    }
}

/// Hooks that do nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHooks;

impl CaseHooks for NoHooks {
    fn before_case(&mut self, _id: &str) -> Result<(), String> {
        Ok(())
    }
    fn after_case(&mut self, _id: &str) -> Result<(Vec<Measurement>, Vec<Artifact>), String> {
        Ok((Vec::new(), Vec::new()))
    }
}

/// Runs a plan. Emits `RunStarted`, then for each case `CaseStarted`,
/// `CaseProgress`… and `CaseFinished`, then `RunFinished`. The DUT is stopped at
/// the end (and the [`Rig`] returned to the caller for shutdown).
pub async fn run(
    plan: &Plan,
    info: RunInfo,
    rig: Rig,
    settings: &RunSettings,
    cancel: &CancellationToken,
    emit: &mut dyn FnMut(&RunEvent),
) -> (RunResult, Rig) {
    run_with_hooks(plan, info, rig, settings, cancel, &mut NoHooks, emit).await
}

/// As [`run`], calling `hooks` around each case that runs.
pub async fn run_with_hooks(
    plan: &Plan,
    info: RunInfo,
    rig: Rig,
    settings: &RunSettings,
    cancel: &CancellationToken,
    hooks: &mut dyn CaseHooks,
    emit: &mut dyn FnMut(&RunEvent),
) -> (RunResult, Rig) {
    let planned = plan.planned_cases();
    emit(&RunEvent::RunStarted {
        info,
        planned: planned.clone(),
    });
    let run_deadline = settings.run_timeout.map(|t| Instant::now() + t);
    let Rig {
        server,
        mut dut,
        security,
        net,
        power,
    } = rig;
    let mut records: Vec<CaseRecord> = Vec::with_capacity(plan.entries.len());
    let mut stop: Option<(RunOutcome, String)> = None;
    let mut suite_deadline: Option<(usize, Option<Instant>)> = None;
    let mut expired_suite: Option<usize> = None;

    for (index, entry) in plan.entries.iter().enumerate() {
        if let Some((_, why)) = &stop {
            let record = CaseRecord::not_run(&planned[index], why);
            emit(&RunEvent::CaseFinished {
                index,
                record: record.clone(),
            });
            records.push(record);
            continue;
        }
        let suite = &plan.suites[entry.suite];
        if expired_suite == Some(entry.suite) {
            let why = format!("the timeout of suite `{}` expired", suite.name);
            let record = CaseRecord::not_run(&planned[index], &why);
            emit(&RunEvent::CaseFinished {
                index,
                record: record.clone(),
            });
            records.push(record);
            continue;
        }
        // The suite deadline starts with the suite's first case.
        let suite_end = match suite_deadline {
            Some((s, d)) if s == entry.suite => d,
            _ => {
                let d = suite.timeout.map(|t| {
                    Instant::now() + suite_timeout(t, suite.time_scale, settings.time_scale)
                });
                suite_deadline = Some((entry.suite, d));
                d
            }
        };
        let time_scale = settings
            .time_scale
            .or(suite.time_scale)
            .unwrap_or(1.0)
            .max(1e-9);
        emit(&RunEvent::CaseStarted {
            index,
            id: entry.id(),
        });
        let ctx = CaseRun {
            entry,
            planned: &planned[index],
            index,
            time_scale,
            suite_name: &suite.name,
            params: suite
                .params
                .get(entry.case.meta.id)
                .cloned()
                .unwrap_or_default(),
            params_source: suite.source.clone(),
            limits: suite
                .limits
                .get(entry.case.meta.id)
                .cloned()
                .unwrap_or_default(),
            suite_end,
            run_end: run_deadline,
            settings,
            cancel,
        };
        let (record, bound, back) = ctx
            .run(
                server.clone(),
                dut,
                security.clone(),
                (net.clone(), power.clone()),
                hooks,
                emit,
            )
            .await;
        dut = back;
        let verdict = record.verdict;
        emit(&RunEvent::CaseFinished {
            index,
            record: record.clone(),
        });
        records.push(record);

        if cancel.is_cancelled() {
            stop = Some((
                RunOutcome::Interrupted,
                "run interrupted by user (Ctrl-C)".into(),
            ));
        } else if bound == Some(Bound::Run) {
            stop = Some((RunOutcome::TimedOut, "the run timeout expired".into()));
        } else if bound == Some(Bound::Suite) {
            expired_suite = Some(entry.suite);
        } else if settings.fail_fast && !matches!(verdict, Verdict::Pass | Verdict::NotApplicable) {
            stop = Some((
                RunOutcome::StoppedEarly,
                format!(
                    "--fail-fast stopped the run after {} ({verdict})",
                    entry.id()
                ),
            ));
        }
    }

    // Leave the DUT stopped; a failure to stop is only worth a note on stderr
    // for the caller, not a verdict.
    let _ = tokio::time::timeout(Duration::from_secs(10), dut.stop()).await;
    let outcome = stop.map(|(o, _)| o).unwrap_or(RunOutcome::Completed);
    emit(&RunEvent::RunFinished {
        outcome,
        finished_at: rig_report::now_rfc3339(),
    });
    let summary = Summary::of(&records);
    (
        RunResult {
            outcome,
            summary,
            cases: records,
        },
        Rig {
            server,
            dut,
            security,
            net,
            power,
        },
    )
}

/// Records a run that could not start (the services or the DUT could not be
/// prepared): every planned case is not run, with `why`, and the outcome is
/// Aborted. Emits the same event sequence as [`run`], so the reports exist.
pub fn abort(plan: &Plan, info: RunInfo, why: &str, emit: &mut dyn FnMut(&RunEvent)) -> RunResult {
    let planned = plan.planned_cases();
    emit(&RunEvent::RunStarted {
        info,
        planned: planned.clone(),
    });
    let records: Vec<CaseRecord> = planned
        .iter()
        .map(|p| CaseRecord::not_run(p, why))
        .collect();
    for (index, record) in records.iter().enumerate() {
        emit(&RunEvent::CaseFinished {
            index,
            record: record.clone(),
        });
    }
    let outcome = RunOutcome::Aborted;
    emit(&RunEvent::RunFinished {
        outcome,
        finished_at: rig_report::now_rfc3339(),
    });
    RunResult {
        outcome,
        summary: Summary::of(&records),
        cases: records,
    }
}

/// The exit code for a run result, as in ARCHITECTURE §1: 4 interrupted;
/// 2 infrastructure error (a case with verdict `error`, or the run aborted or
/// timed out); 1 a case failed (fail, inconclusive, out of time); 0 otherwise.
pub fn exit_code(result: &RunResult) -> u8 {
    let s = &result.summary;
    match result.outcome {
        RunOutcome::Interrupted => 4,
        RunOutcome::Aborted | RunOutcome::TimedOut => 2,
        _ if s.error > 0 => 2,
        _ if s.fail + s.inconclusive + s.out_of_time > 0 => 1,
        _ => 0,
    }
}

/// A suite's wall-time budget for the scale it runs at: `timeout_s` holds at
/// the suite's own `time_scale`, so a `--time-scale` override that runs the
/// suite slower stretches it alike (`machnation.toml`'s 60 becoming 1 makes
/// its budget 60 times longer). An override that runs it faster keeps the
/// file's budget: start-up and handshakes do not get faster.
fn suite_timeout(timeout: Duration, suite_scale: Option<f64>, run_scale: Option<f64>) -> Duration {
    match (suite_scale, run_scale) {
        (Some(own), Some(run)) if run > 0.0 && run < own => timeout.mul_f64(own / run),
        _ => timeout,
    }
}

/// Everything one case run needs (to keep `run` readable).
struct CaseRun<'a> {
    entry: &'a PlannedEntry,
    planned: &'a PlannedCase,
    index: usize,
    time_scale: f64,
    suite_name: &'a str,
    params: BTreeMap<String, toml::Value>,
    params_source: String,
    limits: BTreeMap<String, rig_report::events::Limits>,
    suite_end: Option<Instant>,
    run_end: Option<Instant>,
    settings: &'a RunSettings,
    cancel: &'a CancellationToken,
}

impl CaseRun<'_> {
    /// The case timeout after scaling (see [`MIN_SCALED_CASE_TIMEOUT`]);
    /// a case with [`CaseMeta::unscaled_timeout`] keeps its whole timeout.
    fn case_timeout(&self) -> Duration {
        let meta = &self.entry.case.meta;
        let t = meta
            .timeout
            .mul_f64(self.settings.case_timeout_scale.max(0.0));
        if meta.unscaled_timeout {
            return t;
        }
        t.div_f64(self.case_time_scale())
            .max(t.min(MIN_SCALED_CASE_TIMEOUT))
    }

    /// The run's time scale, held to the case's [`CaseMeta::max_time_scale`].
    fn case_time_scale(&self) -> f64 {
        match self.entry.case.meta.max_time_scale {
            Some(max) if max >= 1.0 => self.time_scale.min(max),
            _ => self.time_scale,
        }
    }

    async fn run(
        self,
        server: Lwm2mServer,
        dut: Box<dyn Dut>,
        security: SecurityContext,
        (net, power): (CaseNetwork, Option<rig_bench::power::CasePower>),
        hooks: &mut dyn CaseHooks,
        emit: &mut dyn FnMut(&RunEvent),
    ) -> (CaseRecord, Option<Bound>, Box<dyn Dut>) {
        let meta = &self.entry.case.meta;
        let id = self.entry.id();
        let started_at = rig_report::now_rfc3339();
        let started = Instant::now();
        let mut record = CaseRecord {
            id: id.clone(),
            title: meta.title.to_string(),
            suite: self.planned.suite.clone(),
            verdict: Verdict::Pass,
            duration_s: 0.0,
            message: String::new(),
            measurements: Vec::new(),
            artifacts: Vec::new(),
            ran: true,
            reading: meta.reading.map(str::to_string),
            console_tail: String::new(),
            started_at: Some(started_at),
        };
        if let Some(why) = &self.entry.not_applicable {
            record.verdict = Verdict::NotApplicable;
            record.message = why.clone();
            return (record, None, dut);
        }

        let case_timeout = self.case_timeout();
        let mut deadline = (started + case_timeout, Bound::Case);
        for (end, bound) in [(self.suite_end, Bound::Suite), (self.run_end, Bound::Run)] {
            if let Some(end) = end
                && end < deadline.0
            {
                deadline = (end, bound);
            }
        }
        let mut notes: Vec<String> = Vec::new();
        if let Err(e) = hooks.before_case(&id) {
            notes.push(e);
        }
        let mark = dut.console().mark();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let mut cx = CaseContext {
            server,
            dut,
            endpoint: self.settings.endpoint.clone(),
            time_scale: self.case_time_scale(),
            measurements: Vec::new(),
            progress: tx,
            security: SecurityContext {
                matrix: self.entry.security,
                ..security
            },
            net,
            params: self.params.clone(),
            params_source: self.params_source.clone(),
            power,
        };
        let mut last_step = String::from("(none: the case reported no step)");
        let end = {
            let start = meta.start;
            let body = self.entry.case.body;
            let cx = &mut cx;
            let work = async move {
                if let Some(mode) = cx.security.matrix {
                    crate::start::use_secure_server(cx, mode, &[], ServerCert::Normal).await?;
                }
                crate::start::reach(cx, start).await?;
                body(cx).await
            };
            let work = AssertUnwindSafe(work).catch_unwind();
            tokio::pin!(work);
            let sleep = tokio::time::sleep_until(deadline.0);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => break CaseEnd::Cancelled,
                    Some(step) = rx.recv() => {
                        emit(&RunEvent::CaseProgress { index: self.index, message: step.clone() });
                        last_step = step;
                    }
                    r = &mut work => break match r {
                        Ok(r) => CaseEnd::Finished(r),
                        Err(panic) => CaseEnd::Panicked(panic_message(panic.as_ref())),
                    },
                    _ = &mut sleep => break CaseEnd::TimedOut,
                }
            }
        };
        // Steps sent just before the end still count as progress.
        while let Ok(step) = rx.try_recv() {
            emit(&RunEvent::CaseProgress {
                index: self.index,
                message: step.clone(),
            });
            last_step = step;
        }
        let mut bound = None;
        match end {
            CaseEnd::Finished(Ok(())) => {}
            CaseEnd::Finished(Err(failure)) => {
                record.verdict = failure.verdict;
                record.message = failure.message;
            }
            CaseEnd::Panicked(msg) => {
                record.verdict = Verdict::Error;
                record.message = format!("the case panicked (a bug in the rig): {msg}");
            }
            CaseEnd::Cancelled => {
                record.verdict = Verdict::Error;
                record.message = INTERRUPTED.to_string();
            }
            CaseEnd::TimedOut => {
                bound = Some(deadline.1);
                record.verdict = Verdict::OutOfTime;
                let what = match deadline.1 {
                    Bound::Case => format!(
                        "the case timeout of {:.1} s expired{}",
                        case_timeout.as_secs_f64(),
                        if case_timeout != meta.timeout {
                            format!(
                                " (the case's {:.1} s, at time scale {} and bench factor {})",
                                meta.timeout.as_secs_f64(),
                                self.time_scale,
                                self.settings.case_timeout_scale
                            )
                        } else {
                            String::new()
                        }
                    ),
                    Bound::Suite => format!("the timeout of suite `{}` expired", self.suite_name),
                    Bound::Run => "the run timeout expired".to_string(),
                };
                record.message = format!("{what}; last step: {last_step}");
            }
        }
        record.measurements = std::mem::take(&mut cx.measurements);
        // Whether the DUT still ran when the case ended (for the recovery
        // check below, before a secure case stops it).
        let running = cx.dut.is_running();
        // A secure server lives as long as its case. The DUT is stopped
        // first, while that server still answers its De-register; stopped
        // later, it would retry the De-register into a closed session until
        // its stop timeout (5 s of every following case's start).
        if cx.security.mode != SecurityMode::NoSec {
            let _ = tokio::time::timeout(Duration::from_secs(10), cx.dut.stop()).await;
            cx.server.shutdown();
        }
        if record.verdict == Verdict::Pass
            && record.message.is_empty()
            && let Some(note) = cx.security.note.take()
        {
            record.message = note;
        }
        match hooks.after_case(&id) {
            Ok((measurements, artifacts)) => {
                record.measurements.extend(measurements);
                record.artifacts.extend(artifacts);
            }
            Err(e) => notes.push(e),
        }
        // A DUT that stopped answering is power-cycled before the next case.
        if let Some(why) = rig_bench::switch::stopped_answering(
            matches!(record.verdict, Verdict::Pass | Verdict::NotApplicable)
                || record.message == INTERRUPTED,
            &record.message,
            matches!(meta.start, crate::case::StartState::Registered(_)),
            running,
        ) {
            notes.push(hooks.recover(&mut *cx.dut, &why).await);
        }
        for note in notes {
            if record.message.is_empty() {
                record.message = note;
            } else {
                record.message = format!("{}; {note}", record.message);
            }
        }
        // The suite's limits, then the verdict they give (marginal is noted).
        if let Some(note) = apply_limits(&mut record, &self.limits)
            && record.verdict == Verdict::Pass
        {
            record.message = if record.message.is_empty() {
                note
            } else {
                format!("{}; {note}", record.message)
            };
        }
        // A measurement outside its limits fails a case that would have passed.
        if record.verdict == Verdict::Pass
            && let Some(why) = record.measurements.iter().find_map(out_of_limits)
        {
            record.verdict = Verdict::Fail;
            record.message = why;
        }
        record.duration_s = started.elapsed().as_secs_f64();
        let console = cx.dut.console().since(mark);
        record.console_tail = tail(&console, CONSOLE_TAIL_LINES);
        match save_console(&self.settings.evidence_dir, &id, &console) {
            Ok(path) => record.artifacts.push(Artifact {
                kind: ArtifactKind::Console,
                path,
            }),
            Err(e) => {
                let note = format!("could not save the console log: {e}");
                if record.message.is_empty() {
                    record.message = note;
                } else {
                    record.message = format!("{}; {note}", record.message);
                }
            }
        }
        (record, bound, cx.dut)
    }
}

/// The measurement that counts a case's marginal measurements (added when
/// any measurement has limits): 0 when none is in its marginal band.
pub const MARGINAL_MEASUREMENT: &str = "limits.marginal";

/// Sets the suite's `limits` on the record's measurements (a suite limit
/// replaces a case's own), then counts the measurements in their marginal
/// band into [`MARGINAL_MEASUREMENT`]. Returns a note naming each marginal
/// measurement, its value and the band, if any is marginal (values outside
/// the limits are left to [`out_of_limits`]).
fn apply_limits(
    record: &mut CaseRecord,
    limits: &BTreeMap<String, rig_report::events::Limits>,
) -> Option<String> {
    use rig_bench::limits::{LimitOutcome, Limits};
    for m in &mut record.measurements {
        if let Some(l) = limits.get(&m.name) {
            m.limits = Some(l.clone());
        }
    }
    let mut judged = false;
    let mut marginal = Vec::new();
    for m in &record.measurements {
        let Some(l) = &m.limits else { continue };
        judged = true;
        let check = Limits {
            low: l.low,
            high: l.high,
            marginal_low: l.marginal_low,
            marginal_high: l.marginal_high,
        };
        if check.check(m.value) == LimitOutcome::Marginal {
            let band = |b: Option<f64>, inf: &str| b.map_or_else(|| inf.into(), |v| v.to_string());
            marginal.push(format!(
                "{} = {} {} is outside its marginal band [{}, {}]",
                m.name,
                m.value,
                m.unit,
                band(l.marginal_low, "-inf"),
                band(l.marginal_high, "inf")
            ));
        }
    }
    if !judged {
        return None;
    }
    record.measurements.push(rig_report::events::Measurement {
        name: MARGINAL_MEASUREMENT.into(),
        unit: "count".into(),
        value: marginal.len() as f64,
        limits: None,
    });
    (!marginal.is_empty()).then(|| format!("marginal: {}", marginal.join("; ")))
}

/// Why a measurement is outside its limits, if it is (a NaN value always is).
fn out_of_limits(m: &rig_report::events::Measurement) -> Option<String> {
    let limits = m.limits.as_ref()?;
    let low_ok = limits.low.is_none_or(|low| m.value >= low);
    let high_ok = limits.high.is_none_or(|high| m.value <= high);
    if low_ok && high_ok && !m.value.is_nan() {
        return None;
    }
    let bound = |b: Option<f64>, inf: &str| b.map(|v| v.to_string()).unwrap_or_else(|| inf.into());
    Some(format!(
        "measurement {} = {} {} is outside its limits [{}, {}]",
        m.name,
        m.value,
        m.unit,
        bound(limits.low, "-inf"),
        bound(limits.high, "inf")
    ))
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(n);
    let mut out = lines[from..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// Writes `console/<id>.log` under the run directory (atomically); returns the
/// path relative to the run directory.
fn save_console(dir: &Path, id: &str, text: &str) -> Result<PathBuf, rig_report::ReportError> {
    let rel = PathBuf::from("console").join(format!("{id}.log"));
    rig_report::atomic::write_atomic(&dir.join(&rel), text.as_bytes())?;
    Ok(rel)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

#[cfg(test)]
mod tests {
    //! The engine against scripted cases and a fake DUT (the lowest layer: no
    //! process, only a console buffer). The LwM2M server is the real one.

    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use rig_bench::BenchError;
    use rig_bench::dut::{ConsoleLog, DutAction, DutConfig};

    use super::*;
    use crate::case::{Area, CaseFuture, CaseMeta, StartState};

    #[derive(Default)]
    struct Console(Mutex<String>);

    impl ConsoleLog for Console {
        fn mark(&self) -> usize {
            self.0.lock().unwrap().len()
        }
        fn since(&self, mark: usize) -> String {
            self.0.lock().unwrap()[mark..].to_string()
        }
        fn tail(&self, n: usize) -> String {
            tail(&self.0.lock().unwrap(), n)
        }
        fn path(&self) -> Option<PathBuf> {
            None
        }
    }

    struct FakeDut {
        console: Arc<Console>,
    }

    #[async_trait]
    impl Dut for FakeDut {
        async fn start(&mut self, _config: &DutConfig) -> Result<(), BenchError> {
            self.console.0.lock().unwrap().push_str("started\n");
            Ok(())
        }
        async fn stop(&mut self) -> Result<(), BenchError> {
            self.console.0.lock().unwrap().push_str("stopped\n");
            Ok(())
        }
        async fn act(&mut self, action: &DutAction) -> Result<(), BenchError> {
            Err(BenchError::Unsupported(format!("{action:?}")))
        }
        fn supports(&self, _action: &DutAction) -> bool {
            false
        }
        async fn expect_console(
            &mut self,
            pattern: &str,
            _timeout: Duration,
        ) -> Result<String, BenchError> {
            Err(BenchError::Unsupported(pattern.to_string()))
        }
        fn console(&self) -> &dyn ConsoleLog {
            &*self.console
        }
        fn is_running(&mut self) -> bool {
            true
        }
        fn identity(&self) -> BTreeMap<String, String> {
            BTreeMap::new()
        }
    }

    const fn meta(id: &'static str, requires: &'static [&'static str], ms: u64) -> CaseMeta {
        CaseMeta {
            id,
            title: "scripted",
            area: Area::Registration,
            requires,
            start: StartState::Stopped,
            timeout: Duration::from_millis(ms),
            reading: None,
            unscaled_timeout: false,
            max_time_scale: None,
        }
    }

    async fn pass(cx: &mut CaseContext) -> Result<(), CaseFailure> {
        cx.step("doing the thing");
        cx.measure("thing.latency_s", "s", 0.5);
        Ok(())
    }
    async fn too_slow(cx: &mut CaseContext) -> Result<(), CaseFailure> {
        cx.measurements.push(rig_report::events::Measurement {
            name: "register.latency_s".into(),
            unit: "s".into(),
            value: 7.5,
            limits: Some(rig_report::events::Limits {
                high: Some(5.0),
                ..Default::default()
            }),
        });
        Ok(())
    }
    async fn fail(cx: &mut CaseContext) -> Result<(), CaseFailure> {
        cx.step("checking");
        Err(CaseFailure::fail("expected lt=20, got lt=30"))
    }
    async fn slow(cx: &mut CaseContext) -> Result<(), CaseFailure> {
        cx.step("waiting for the Update");
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(())
    }
    async fn panics(_cx: &mut CaseContext) -> Result<(), CaseFailure> {
        panic!("boom at step 3")
    }

    static LIB: [CaseDef; 8] = [
        CaseDef {
            meta: meta("t-101", &["lwm2m"], 5_000),
            body: |cx| -> CaseFuture<'_> { Box::pin(pass(cx)) },
        },
        CaseDef {
            meta: meta("t-102", &["lwm2m"], 5_000),
            body: |cx| -> CaseFuture<'_> { Box::pin(fail(cx)) },
        },
        CaseDef {
            meta: meta("t-103", &["lwm2m"], 300),
            body: |cx| -> CaseFuture<'_> { Box::pin(slow(cx)) },
        },
        CaseDef {
            meta: meta("t-104", &["lwm2m"], 5_000),
            body: |cx| -> CaseFuture<'_> { Box::pin(panics(cx)) },
        },
        CaseDef {
            meta: meta("t-105", &["lwm2m", "impair"], 5_000),
            body: |cx| -> CaseFuture<'_> { Box::pin(pass(cx)) },
        },
        CaseDef {
            meta: meta("u-201", &[], 20_000),
            body: |cx| -> CaseFuture<'_> { Box::pin(slow(cx)) },
        },
        CaseDef {
            meta: meta("v-301", &[], 5_000),
            body: |cx| -> CaseFuture<'_> { Box::pin(too_slow(cx)) },
        },
        CaseDef {
            meta: meta("u-202", &[], 5_000),
            body: |cx| -> CaseFuture<'_> { Box::pin(pass(cx)) },
        },
    ];

    fn suite(name: &str, selectors: &[&str]) -> SuiteSelection {
        SuiteSelection {
            name: name.to_string(),
            selectors: selectors.iter().map(|s| s.to_string()).collect(),
            requires: vec![],
            time_scale: None,
            timeout: None,
            matrix: vec![],
            source: String::new(),
            params: BTreeMap::new(),
            limits: BTreeMap::new(),
        }
    }

    fn options(filters: &[&str]) -> PlanOptions {
        PlanOptions {
            filters: filters.iter().map(|s| s.to_string()).collect(),
            features: ["lwm2m".to_string()].into(),
            allow_empty: false,
        }
    }

    fn ids(plan: &Plan) -> Vec<&'static str> {
        plan.entries.iter().map(|e| e.case.meta.id).collect()
    }

    #[test]
    fn selectors_are_ids_or_globs_and_filters_narrow() {
        let p = plan(vec![suite("s", &["u-201", "t-10*"])], &LIB, &options(&[])).unwrap();
        // Library order within a suite, whatever the selector order.
        assert_eq!(
            ids(&p),
            ["t-101", "t-102", "t-103", "t-104", "t-105", "u-201"]
        );
        let p = plan(
            vec![suite("s", &["t-10*", "t-101"])],
            &LIB,
            &options(&["*-10[12]"]),
        )
        .unwrap();
        assert_eq!(ids(&p), ["t-101", "t-102"]);
    }

    #[test]
    fn a_case_needing_a_missing_feature_is_not_applicable_with_the_reason() {
        let p = plan(vec![suite("s", &["t-105"])], &LIB, &options(&[])).unwrap();
        assert_eq!(
            p.entries[0].not_applicable.as_deref(),
            Some("the bench lacks required feature `impair`")
        );
        let mut s = suite("s", &["u-201"]);
        s.requires = vec!["power".into(), "dtls-psk".into()];
        let p = plan(vec![s], &LIB, &options(&[])).unwrap();
        assert_eq!(
            p.entries[0].not_applicable.as_deref(),
            Some("the bench lacks required features `dtls-psk`, `power`")
        );
    }

    #[test]
    fn a_matrix_expands_each_case_per_mode_with_suffixed_ids() {
        let mut s = suite("sec", &["t-101", "t-102"]);
        s.matrix = vec![SecurityMode::NoSec, SecurityMode::Psk];
        let p = plan(vec![s.clone()], &LIB, &options(&[])).unwrap();
        let ids: Vec<String> = p.planned_cases().into_iter().map(|c| c.id).collect();
        assert_eq!(
            ids,
            ["t-101[nosec]", "t-101[psk]", "t-102[nosec]", "t-102[psk]"]
        );
        assert_eq!(p.entries[1].security, Some(SecurityMode::Psk));
        // A filter matches the plain id or the variant id.
        let p = plan(vec![s.clone()], &LIB, &options(&["*\\[psk\\]"])).unwrap();
        let ids: Vec<String> = p.entries.iter().map(PlannedEntry::id).collect();
        assert_eq!(ids, ["t-101[psk]", "t-102[psk]"]);
        let p = plan(vec![s], &LIB, &options(&["t-102"])).unwrap();
        assert_eq!(p.entries.len(), 2);
        // No matrix: plain ids, as before.
        let p = plan(vec![suite("s", &["t-101"])], &LIB, &options(&[])).unwrap();
        assert_eq!(p.planned_cases()[0].id, "t-101");
        assert_eq!(p.entries[0].security, None);
    }

    #[tokio::test]
    async fn a_secure_variant_without_a_secure_server_is_not_applicable() {
        let mut s = suite("sec", &["t-101"]);
        s.matrix = vec![SecurityMode::NoSec, SecurityMode::Rpk];
        let p = plan(vec![s], &LIB, &options(&[])).unwrap();
        let (r, h) = run_plan(&p, |_| {}, CancellationToken::new()).await;
        assert_eq!(
            verdicts(&r),
            [(true, Verdict::Pass), (true, Verdict::NotApplicable)]
        );
        assert_eq!(r.cases[1].id, "t-101[rpk]");
        assert!(r.cases[1].message.contains("rpk needs a coaps:// server"));
        // Evidence is saved under the variant id.
        assert!(h.dir.path().join("console/t-101[rpk].log").is_file());
    }

    #[test]
    fn an_unknown_id_is_an_error_with_a_suggestion() {
        let err = plan(vec![suite("smoke", &["t-1011"])], &LIB, &options(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "suite `smoke`: `t-1011` matches no case (did you mean `t-101`?)"
        );
        let err = plan(vec![suite("smoke", &["x-9*"])], &LIB, &options(&[])).unwrap_err();
        assert_eq!(err.to_string(), "suite `smoke`: `x-9*` matches no case");
        let err = plan(vec![suite("smoke", &["t-[10"])], &LIB, &options(&[])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("suite `smoke`: `t-[10` is not a valid glob"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_plan_is_an_error_unless_allowed() {
        let err = plan(vec![suite("s", &["t-*"])], &LIB, &options(&["nothing*"])).unwrap_err();
        assert!(
            err.to_string().contains("--filter nothing* matched none"),
            "{err}"
        );
        let mut o = options(&["nothing*"]);
        o.allow_empty = true;
        assert!(
            plan(vec![suite("s", &["t-*"])], &LIB, &o)
                .unwrap()
                .entries
                .is_empty()
        );
    }

    struct Harness {
        dir: tempfile::TempDir,
        events: Vec<RunEvent>,
    }

    async fn run_plan(
        plan: &Plan,
        settings_edit: impl FnOnce(&mut RunSettings),
        cancel: CancellationToken,
    ) -> (RunResult, Harness) {
        let dir = tempfile::tempdir().unwrap();
        let server = Lwm2mServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let rig = Rig {
            server,
            dut: Box::new(FakeDut {
                console: Arc::default(),
            }),
            security: SecurityContext::default(),
            net: CaseNetwork::loopback(),
            power: None,
        };
        let mut settings = RunSettings {
            time_scale: None,
            case_timeout_scale: 1.0,
            run_timeout: None,
            fail_fast: false,
            evidence_dir: dir.path().to_path_buf(),
            endpoint: "ep".into(),
        };
        settings_edit(&mut settings);
        let mut events = Vec::new();
        let (result, rig) = run(
            plan,
            RunInfo::default(),
            rig,
            &settings,
            &cancel,
            &mut |e| events.push(e.clone()),
        )
        .await;
        rig.server.shutdown();
        (result, Harness { dir, events })
    }

    fn verdicts(r: &RunResult) -> Vec<(bool, Verdict)> {
        r.cases.iter().map(|c| (c.ran, c.verdict)).collect()
    }

    #[tokio::test]
    async fn each_outcome_of_a_body_becomes_its_verdict() {
        let p = plan(vec![suite("s", &["t-10*"])], &LIB, &options(&[])).unwrap();
        let (r, h) = run_plan(&p, |_| {}, CancellationToken::new()).await;
        use Verdict::*;
        assert_eq!(
            verdicts(&r),
            [
                (true, Pass),
                (true, Fail),
                (true, OutOfTime),
                (true, Error),
                (true, NotApplicable)
            ]
        );
        assert_eq!(r.cases[0].measurements[0].name, "thing.latency_s");
        assert_eq!(r.cases[1].message, "expected lt=20, got lt=30");
        assert_eq!(
            r.cases[2].message,
            "the case timeout of 0.3 s expired; last step: waiting for the Update"
        );
        assert!(
            r.cases[3].message.contains("panicked")
                && r.cases[3].message.contains("boom at step 3")
        );
        assert_eq!(r.outcome, RunOutcome::Completed);
        assert_eq!(
            exit_code(&r),
            2,
            "an error verdict is an infrastructure error"
        );
        // The console slice of each case that ran is saved and listed.
        let log = h.dir.path().join("console/t-101.log");
        assert_eq!(std::fs::read_to_string(log).unwrap(), "stopped\n");
        assert_eq!(
            r.cases[0].artifacts[0].path,
            PathBuf::from("console/t-101.log")
        );
        // Events: started, one started/finished pair per case, progress, finished.
        assert!(
            matches!(h.events.first(), Some(RunEvent::RunStarted { planned, .. }) if planned.len() == 5)
        );
        assert!(matches!(
            h.events.last(),
            Some(RunEvent::RunFinished {
                outcome: RunOutcome::Completed,
                ..
            })
        ));
        let progress: Vec<_> = h
            .events
            .iter()
            .filter_map(|e| match e {
                RunEvent::CaseProgress { index: 0, message } => Some(message.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(progress, ["doing the thing"]);
    }

    #[tokio::test]
    async fn a_measurement_outside_its_limits_fails_the_case() {
        let p = plan(vec![suite("s", &["v-301"])], &LIB, &options(&[])).unwrap();
        let (r, _h) = run_plan(&p, |_| {}, CancellationToken::new()).await;
        assert_eq!(verdicts(&r), [(true, Verdict::Fail)]);
        assert_eq!(
            r.cases[0].message,
            "measurement register.latency_s = 7.5 s is outside its limits [-inf, 5]"
        );
    }

    #[tokio::test]
    async fn fail_fast_stops_after_the_first_failure() {
        let p = plan(
            vec![suite("s", &["t-101", "t-102", "t-103"])],
            &LIB,
            &options(&[]),
        )
        .unwrap();
        let (r, _h) = run_plan(&p, |s| s.fail_fast = true, CancellationToken::new()).await;
        use Verdict::*;
        assert_eq!(
            verdicts(&r),
            [(true, Pass), (true, Fail), (false, Inconclusive)]
        );
        assert_eq!(
            r.cases[2].message,
            "not run: --fail-fast stopped the run after t-102 (fail)"
        );
        assert_eq!(r.outcome, RunOutcome::StoppedEarly);
        assert_eq!(exit_code(&r), 1);
    }

    #[tokio::test]
    async fn cancelling_interrupts_the_running_case_and_skips_the_rest() {
        let suites = vec![suite("a", &["t-101", "u-201"]), suite("b", &["t-102"])];
        let p = plan(suites, &LIB, &options(&[])).unwrap();
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            c.cancel();
        });
        let (r, _h) = run_plan(&p, |_| {}, cancel).await;
        use Verdict::*;
        assert_eq!(
            verdicts(&r),
            [(true, Pass), (true, Error), (false, Inconclusive)]
        );
        assert_eq!(r.cases[1].message, INTERRUPTED);
        assert_eq!(
            r.cases[2].message,
            "not run: run interrupted by user (Ctrl-C)"
        );
        assert_eq!(r.outcome, RunOutcome::Interrupted);
        assert_eq!(exit_code(&r), 4);
    }

    #[tokio::test]
    async fn a_case_never_outlives_its_suite_or_the_run() {
        let mut first = suite("first", &["u-201", "u-202"]);
        first.timeout = Some(Duration::from_millis(300));
        let second = suite("second", &["t-101"]);
        let p = plan(vec![first, second], &LIB, &options(&[])).unwrap();
        let (r, _h) = run_plan(&p, |_| {}, CancellationToken::new()).await;
        use Verdict::*;
        assert_eq!(
            verdicts(&r),
            [(true, OutOfTime), (false, Inconclusive), (true, Pass)]
        );
        assert_eq!(
            r.cases[0].message,
            "the timeout of suite `first` expired; last step: waiting for the Update"
        );
        assert_eq!(
            r.cases[1].message,
            "not run: the timeout of suite `first` expired"
        );

        let p = plan(vec![suite("s", &["u-20*"])], &LIB, &options(&[])).unwrap();
        let (r, _h) = run_plan(
            &p,
            |s| s.run_timeout = Some(Duration::from_millis(300)),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(verdicts(&r), [(true, OutOfTime), (false, Inconclusive)]);
        assert!(r.cases[0].message.starts_with("the run timeout expired"));
        assert_eq!(r.outcome, RunOutcome::TimedOut);
    }

    #[test]
    fn the_time_scale_divides_the_case_timeout_down_to_a_floor() {
        let entry = PlannedEntry {
            case: &LIB[5],
            suite: 0,
            not_applicable: None,
            security: None,
            run: None,
        };
        let planned = PlannedCase {
            id: "u-201".into(),
            title: "t".into(),
            suite: "s".into(),
        };
        let settings = RunSettings {
            time_scale: None,
            case_timeout_scale: 1.0,
            run_timeout: None,
            fail_fast: false,
            evidence_dir: PathBuf::new(),
            endpoint: String::new(),
        };
        let cancel = CancellationToken::new();
        let run = |time_scale| CaseRun {
            entry: &entry,
            planned: &planned,
            index: 0,
            time_scale,
            suite_name: "s",
            params: BTreeMap::new(),
            params_source: String::new(),
            limits: BTreeMap::new(),
            suite_end: None,
            run_end: None,
            settings: &settings,
            cancel: &cancel,
        };
        assert_eq!(run(1.0).case_timeout(), Duration::from_secs(20));
        assert_eq!(run(1.5).case_timeout(), Duration::from_secs_f64(20.0 / 1.5));
        assert_eq!(run(100.0).case_timeout(), MIN_SCALED_CASE_TIMEOUT);

        // A case held to scale 4 runs at 4 and gets its timeout for 4.
        let mut meta = LIB[5].meta.clone();
        meta.max_time_scale = Some(4.0);
        // Plans hold `&'static` cases; one leaked test case is fine.
        let held: &'static CaseDef = Box::leak(Box::new(CaseDef {
            meta,
            body: LIB[5].body,
        }));
        let held_entry = PlannedEntry {
            case: held,
            suite: 0,
            not_applicable: None,
            security: None,
            run: None,
        };
        let run = |time_scale| CaseRun {
            entry: &held_entry,
            ..run(time_scale)
        };
        assert_eq!(run(60.0).case_time_scale(), 4.0);
        assert_eq!(run(60.0).case_timeout(), MIN_SCALED_CASE_TIMEOUT);
        assert_eq!(run(2.0).case_time_scale(), 2.0);
        assert_eq!(run(2.0).case_timeout(), Duration::from_secs(10));
        assert_eq!(run(1.0).case_timeout(), Duration::from_secs(20));
    }

    #[test]
    fn a_slower_time_scale_than_the_suites_stretches_its_timeout() {
        let t = Duration::from_secs(900);
        // machnation.toml (scale 60) run at --time-scale 1: 60 times longer.
        assert_eq!(suite_timeout(t, Some(60.0), Some(1.0)), t * 60);
        assert_eq!(suite_timeout(t, Some(60.0), Some(30.0)), t * 2);
        // Faster, the same scale, or no scale in the file: as written.
        assert_eq!(suite_timeout(t, Some(60.0), Some(120.0)), t);
        assert_eq!(suite_timeout(t, Some(60.0), None), t);
        assert_eq!(suite_timeout(t, None, Some(1.0)), t);
    }
}
