//! Live progress of a run: a progress bar on a terminal, one line per case
//! otherwise (CI logs).
//!
//! It is one more consumer of engine events, like the file reporters. Lines
//! look like `[3/4] LightweightM2M-1.1-int-103 Deregistration ... pass (1.2 s)`;
//! a case that did not pass gets its message on the next line.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use rig_report::events::{CaseRecord, RunEvent, Verdict};
use rig_report::{ReportError, Reporter};

/// Progress output on stdout (lines) or stderr (the bar).
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    titles: Vec<String>,
    done: usize,
}

impl Progress {
    /// A bar when stderr is a terminal, lines otherwise.
    pub(crate) fn new() -> Self {
        Self::with_bar(std::io::stderr().is_terminal())
    }

    fn with_bar(bar: bool) -> Self {
        let bar = bar.then(|| {
            let b = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "{spinner} [{pos}/{len}] {elapsed_precise} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            b.set_style(style);
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Progress {
            bar,
            total: 0,
            titles: Vec::new(),
            done: 0,
        }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(b) => b.println(text),
            None => println!("{text}"),
        }
    }
}

/// The words a human reads for a verdict.
pub(crate) fn verdict_words(record: &CaseRecord) -> &'static str {
    if !record.ran {
        return "not run";
    }
    match record.verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "FAIL",
        Verdict::Inconclusive => "INCONCLUSIVE",
        Verdict::NotApplicable => "not applicable",
        Verdict::OutOfTime => "OUT OF TIME",
        Verdict::Error => "ERROR",
    }
}

/// A duration for humans: `0.04 s`, `1.2 s`, `31 s`.
pub(crate) fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{s:.2} s")
    } else if s < 10.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.0} s")
    }
}

/// The line printed when a case ends.
pub(crate) fn case_line(n: usize, total: usize, record: &CaseRecord) -> String {
    let mut line = format!(
        "[{n}/{total}] {} {} ... {}",
        record.id,
        record.title,
        verdict_words(record)
    );
    if record.ran && record.verdict != Verdict::NotApplicable {
        line.push_str(&format!(" ({})", seconds(record.duration_s)));
    }
    if record.verdict != Verdict::Pass && !record.message.is_empty() && record.ran {
        for l in record.message.lines() {
            line.push_str("\n      ");
            line.push_str(l);
        }
    }
    line
}

impl Reporter for Progress {
    fn handle(&mut self, event: &RunEvent) -> Result<(), ReportError> {
        match event {
            RunEvent::RunStarted { info, planned } => {
                self.total = planned.len();
                self.titles = planned
                    .iter()
                    .map(|p| format!("{} {}", p.id, p.title))
                    .collect();
                if let Some(b) = &self.bar {
                    b.set_length(self.total as u64);
                }
                self.line(&format!(
                    "rig run {}: {} case{} on bench `{}`",
                    info.run_id,
                    self.total,
                    if self.total == 1 { "" } else { "s" },
                    info.bench.name
                ));
            }
            RunEvent::CaseStarted { index, .. } => {
                if let (Some(b), Some(t)) = (&self.bar, self.titles.get(*index)) {
                    b.set_message(t.clone());
                }
            }
            RunEvent::CaseProgress { index, message } => {
                if let (Some(b), Some(t)) = (&self.bar, self.titles.get(*index)) {
                    b.set_message(format!("{t}: {message}"));
                }
            }
            RunEvent::CaseFinished { record, .. } => {
                self.done += 1;
                self.line(&case_line(self.done, self.total, record));
                if let Some(b) = &self.bar {
                    b.inc(1);
                }
            }
            RunEvent::RunFinished { .. } => {
                if let Some(b) = &self.bar {
                    b.finish_and_clear();
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rig_report::events::PlannedCase;

    #[test]
    fn a_case_line_says_index_id_title_verdict_duration_and_why() {
        let planned = PlannedCase {
            id: "LightweightM2M-1.1-int-103".into(),
            title: "Deregistration".into(),
            suite: "smoke".into(),
        };
        let mut r = CaseRecord::not_run(&planned, "run interrupted by user (Ctrl-C)");
        assert_eq!(
            case_line(4, 4, &r),
            "[4/4] LightweightM2M-1.1-int-103 Deregistration ... not run"
        );
        r.ran = true;
        r.verdict = Verdict::Pass;
        r.message.clear();
        r.duration_s = 1.23;
        assert_eq!(
            case_line(3, 4, &r),
            "[3/4] LightweightM2M-1.1-int-103 Deregistration ... pass (1.2 s)"
        );
        r.verdict = Verdict::Fail;
        r.message = "no De-register within 5.0 s".into();
        assert_eq!(
            case_line(3, 4, &r),
            "[3/4] LightweightM2M-1.1-int-103 Deregistration ... FAIL (1.2 s)\n      no De-register within 5.0 s"
        );
    }
}
