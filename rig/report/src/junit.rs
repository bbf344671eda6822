//! `junit.xml`: the report CI systems read.
//!
//! Conventions (see `reports/README.md`):
//! - one `<testsuite>` per suite file, named after it; each case is a
//!   `<testcase>` with `classname` = suite and `name` = case id (stable and unique);
//! - suite `<properties>`: bench name and file, bench features, DUT identity
//!   (`dut.*`), versions (`version.*`), run id and time scale;
//! - case `<properties>`: one per measurement, `value unit`, plus the title
//!   and the ETS reading if the case had to choose one;
//! - verdicts: `fail` → `<failure>`; `inconclusive`, `out_of_time`, `error` →
//!   `<error>` (with `type` = the verdict); `not_applicable` → `<skipped>`; a
//!   case that never ran → `<skipped>` with a message starting `not run:`;
//! - `<system-out>`: the tail of the case's console, then one
//!   `[[ATTACHMENT|/absolute/path]]` line per evidence file (Jenkins wants
//!   absolute paths; GitLab accepts them too).

use std::path::{Path, PathBuf};
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::atomic::write_atomic;
use crate::events::{CaseRecord, RunEvent, Verdict};
use crate::state::RunLog;
use crate::{ReportError, Reporter};

/// Renders `junit.xml` for a run log. `run_dir` is the directory artifact
/// paths are relative to; attachment lines join it with them, so pass an
/// absolute directory.
pub fn render(log: &RunLog, run_dir: &Path) -> Result<String, ReportError> {
    let mut report = Report::new(format!("rig run {}", log.info.run_id));
    for suite_name in log.suites() {
        let mut suite = TestSuite::new(suite_name.as_str());
        let bench = &log.info.bench;
        suite.add_property(Property::new("run_id", log.info.run_id.as_str()));
        suite.add_property(Property::new("bench", bench.name.as_str()));
        suite.add_property(Property::new("bench.file", bench.path.as_str()));
        suite.add_property(Property::new("bench.features", bench.features.join(",")));
        for (k, v) in &bench.dut {
            suite.add_property(Property::new(format!("dut.{k}"), v.as_str()));
        }
        for (k, v) in &log.info.versions {
            suite.add_property(Property::new(format!("version.{k}"), v.as_str()));
        }
        suite.add_property(Property::new("time_scale", log.info.time_scale.to_string()));
        let mut total = 0.0;
        for case in log.cases.iter().filter(|c| c.suite == suite_name) {
            total += case.duration_s;
            suite.add_test_case(test_case(case, run_dir));
        }
        suite.set_time(duration(total));
        report.add_test_suite(suite);
    }
    report.to_string().map_err(|e| ReportError::Serialize {
        what: "junit.xml",
        message: e.to_string(),
    })
}

fn duration(seconds: f64) -> Duration {
    if seconds.is_finite() && seconds > 0.0 {
        Duration::from_secs_f64(seconds)
    } else {
        Duration::ZERO
    }
}

fn test_case(case: &CaseRecord, run_dir: &Path) -> TestCase {
    let status = if !case.ran {
        let mut s = TestCaseStatus::skipped();
        s.set_message(case.message.as_str()).set_type("not_run");
        s
    } else {
        match case.verdict {
            Verdict::Pass => TestCaseStatus::success(),
            Verdict::NotApplicable => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(case.message.as_str())
                    .set_type(case.verdict.as_str());
                s
            }
            Verdict::Fail => non_success(NonSuccessKind::Failure, case),
            Verdict::Inconclusive | Verdict::OutOfTime | Verdict::Error => {
                non_success(NonSuccessKind::Error, case)
            }
        }
    };
    let mut tc = TestCase::new(case.id.as_str(), status);
    tc.set_classname(case.suite.as_str());
    tc.set_time(duration(case.duration_s));
    tc.add_property(Property::new("title", case.title.as_str()));
    if let Some(reading) = &case.reading {
        tc.add_property(Property::new("reading", reading.as_str()));
    }
    for m in &case.measurements {
        tc.add_property(Property::new(
            m.name.as_str(),
            format!("{} {}", m.value, m.unit),
        ));
    }
    let mut out = String::new();
    if !case.console_tail.is_empty() {
        out.push_str(&case.console_tail);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    for a in &case.artifacts {
        let path: PathBuf = run_dir.join(&a.path);
        out.push_str(&format!("[[ATTACHMENT|{}]]\n", path.display()));
    }
    if !out.is_empty() {
        tc.set_system_out(out);
    }
    tc
}

fn non_success(kind: NonSuccessKind, case: &CaseRecord) -> TestCaseStatus {
    let mut s = TestCaseStatus::non_success(kind);
    s.set_message(case.message.as_str())
        .set_type(case.verdict.as_str());
    s
}

/// Writes `junit.xml` into the run directory after every case.
#[derive(Debug)]
pub struct JunitReporter {
    dir: PathBuf,
    log: Option<RunLog>,
}

impl JunitReporter {
    /// A reporter writing `<dir>/junit.xml`. The directory is made absolute (for
    /// the attachment lines) when possible.
    pub fn new(dir: &Path) -> Self {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        JunitReporter { dir, log: None }
    }
}

impl Reporter for JunitReporter {
    fn handle(&mut self, event: &RunEvent) -> Result<(), ReportError> {
        if RunLog::apply(&mut self.log, event)
            && let Some(log) = &self.log
        {
            let xml = render(log, &self.dir)?;
            write_atomic(&self.dir.join("junit.xml"), xml.as_bytes())?;
        }
        Ok(())
    }
}
