//! `report.md`: the run for a human to read.
//!
//! Sections: the run facts, a summary table (counts by verdict), one table row
//! per case (id, title, verdict, duration, message), the measurements, links to
//! the evidence (relative to the report, so the folder can be moved), and the
//! readings cases used where the ETS text is ambiguous, and, when the run has
//! MachNation cases, the study's table (the same as `report.html`'s, without
//! charts). It is rewritten after every case, so it is readable while the run
//! goes on.
//!
//! [`MarkdownReporter`] also writes `report.html` beside it (through an inner
//! [`HtmlReporter`]): the two human reports always come together.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::atomic::write_atomic;
use crate::events::{RunEvent, Verdict};
use crate::html::HtmlReporter;
use crate::machnation::{self, Table};
use crate::state::RunLog;
use crate::{ReportError, Reporter};

/// Table cells cannot hold `|` or line breaks.
fn cell(text: &str) -> String {
    let one_line: String = text.lines().map(str::trim).collect::<Vec<_>>().join(" ");
    one_line.replace('|', "\\|")
}

fn verdict_label(ran: bool, v: Verdict) -> &'static str {
    if !ran {
        return "not run";
    }
    match v {
        Verdict::Pass => "✅ pass",
        Verdict::Fail => "❌ fail",
        Verdict::Inconclusive => "❔ inconclusive",
        Verdict::NotApplicable => "➖ not applicable",
        Verdict::OutOfTime => "⏱ out of time",
        Verdict::Error => "⚠ error",
    }
}

/// A duration for humans: `0.04 s`, `1.2 s`, `31 s`.
fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{s:.2} s")
    } else if s < 10.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.0} s")
    }
}

fn table(md: &mut String, t: &Table) {
    let _ = writeln!(
        md,
        "| {} |",
        t.head
            .iter()
            .map(|h| cell(h))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(
        md,
        "|{}",
        t.head
            .iter()
            .enumerate()
            .map(|(i, _)| if i < 2 { "---|" } else { "---:|" })
            .collect::<String>()
    );
    for (_, cells) in &t.rows {
        let _ = writeln!(
            md,
            "| {} |",
            cells
                .iter()
                .map(|c| cell(c))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
}

/// The MachNation section (empty when the run has no MachNation case).
fn machnation_section(md: &mut String, log: &RunLog) {
    let rows = machnation::rows(&log.cases);
    if rows.is_empty() {
        return;
    }
    let t = machnation::tables(&rows);
    let _ = writeln!(md, "\n## MachNation comparison\n");
    let _ = writeln!(
        md,
        "rig's figures with the 2020 study's beside them and the difference. Bytes are whole \
         Ethernet frames, as tcpdump counted them; ≈ marks a study figure derived from its \
         percentages or averages (sources in `fixtures/machnation/study.toml`). Charts: \
         [report.html](report.html#machnation).\n"
    );
    if let Some(e) = &t.study_error {
        let _ = writeln!(md, "**{}**\n", cell(e));
    }
    for (title, tab) in [
        ("Traffic", &t.traffic),
        ("Energy", &t.power),
        ("LwM2M ÷ MQTT", &t.compare),
    ] {
        if !tab.rows.is_empty() {
            let _ = writeln!(md, "### {title}\n");
            table(md, tab);
            md.push('\n');
        }
    }
    if !t.notes.is_empty() {
        let _ = writeln!(md, "### Why our figures differ\n");
        for (s, n) in &t.notes {
            let _ = writeln!(md, "- **{}**: {}", cell(s), cell(n));
        }
    }
}

/// Renders `report.md`.
pub fn render(log: &RunLog) -> String {
    let mut md = String::new();
    let info = &log.info;
    let s = log.summary();
    // Writing into a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(md, "# rig run {}\n", info.run_id);
    let state = match (&log.outcome, log.running) {
        (Some(o), _) => o.as_str().replace('_', " "),
        (None, Some(i)) => format!("running (case {} of {})", i + 1, s.planned),
        (None, None) => "running".to_string(),
    };
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| State | {} |", cell(&state));
    let _ = writeln!(
        md,
        "| Bench | {} (`{}`) |",
        cell(&info.bench.name),
        cell(&info.bench.path)
    );
    for (k, v) in &info.bench.dut {
        let _ = writeln!(md, "| DUT {} | {} |", cell(k), cell(v));
    }
    let _ = writeln!(md, "| Suites | {} |", cell(&info.suites.join(", ")));
    let _ = writeln!(md, "| Time scale | {} |", info.time_scale);
    let _ = writeln!(md, "| Started | {} |", info.started_at);
    if let Some(f) = &log.finished_at {
        let _ = writeln!(md, "| Finished | {f} |");
    }
    for (k, v) in &info.versions {
        let _ = writeln!(md, "| Version {} | {} |", cell(k), cell(v));
    }
    let _ = writeln!(md, "| Command | `{}` |", cell(&info.invocation.join(" ")));

    let _ = writeln!(md, "\n## Summary\n");
    let _ = writeln!(
        md,
        "| planned | pass | fail | inconclusive | not applicable | out of time | error | not run |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        md,
        "| {} | {} | {} | {} | {} | {} | {} | {} |",
        s.planned,
        s.pass,
        s.fail,
        s.inconclusive,
        s.not_applicable,
        s.out_of_time,
        s.error,
        s.not_run
    );

    let _ = writeln!(
        md,
        "\nCharts and per-case traffic: [report.html](report.html)."
    );

    machnation_section(&mut md, log);
    crate::fota::markdown(&mut md, &log.cases);

    let _ = writeln!(md, "\n## Cases\n");
    let _ = writeln!(
        md,
        "| # | Suite | Case | Title | Verdict | Duration | Message |"
    );
    let _ = writeln!(md, "|---:|---|---|---|---|---:|---|");
    for (i, c) in log.cases.iter().enumerate() {
        let duration = if c.ran {
            seconds(c.duration_s)
        } else {
            "–".to_string()
        };
        let _ = writeln!(
            md,
            "| {} | {} | `{}` | {} | {} | {} | {} |",
            i + 1,
            cell(&c.suite),
            cell(&c.id),
            cell(&c.title),
            verdict_label(c.ran, c.verdict),
            duration,
            cell(&c.message)
        );
    }

    if log.cases.iter().any(|c| !c.measurements.is_empty()) {
        let _ = writeln!(md, "\n## Measurements\n");
        let _ = writeln!(md, "| Case | Measurement | Value | Unit | Limits |");
        let _ = writeln!(md, "|---|---|---:|---|---|");
        for c in &log.cases {
            for m in &c.measurements {
                let limits = match &m.limits {
                    None => String::new(),
                    Some(l) => {
                        let low = l.low.map(|v| v.to_string()).unwrap_or_else(|| "–∞".into());
                        let high = l.high.map(|v| v.to_string()).unwrap_or_else(|| "∞".into());
                        format!("[{low}, {high}]")
                    }
                };
                let _ = writeln!(
                    md,
                    "| `{}` | {} | {} | {} | {} |",
                    cell(&c.id),
                    cell(&m.name),
                    m.value,
                    cell(&m.unit),
                    limits
                );
            }
        }
    }

    if log.cases.iter().any(|c| !c.artifacts.is_empty()) {
        let _ = writeln!(md, "\n## Evidence\n");
        for c in log.cases.iter().filter(|c| !c.artifacts.is_empty()) {
            let links: Vec<String> = c
                .artifacts
                .iter()
                .map(|a| {
                    let p = a.path.display().to_string();
                    format!("[{p}]({})", p.replace(' ', "%20"))
                })
                .collect();
            let _ = writeln!(md, "- `{}`: {}", c.id, links.join(", "));
        }
    }

    if log.cases.iter().any(|c| c.reading.is_some()) {
        let _ = writeln!(md, "\n## Readings\n");
        let _ = writeln!(
            md,
            "Where the ETS text is ambiguous, these cases state the reading they use.\n"
        );
        for c in &log.cases {
            if let Some(r) = &c.reading {
                let _ = writeln!(md, "- `{}`: {}", c.id, r.trim());
            }
        }
    }
    md
}

/// Writes `report.md` (and, through an inner [`HtmlReporter`], `report.html`)
/// into the run directory after every case and at the end.
#[derive(Debug)]
pub struct MarkdownReporter {
    path: PathBuf,
    log: Option<RunLog>,
    html: Option<HtmlReporter>,
}

impl MarkdownReporter {
    /// A reporter writing `<dir>/report.md` and `<dir>/report.html`.
    pub fn new(dir: &Path) -> Self {
        MarkdownReporter {
            path: dir.join("report.md"),
            log: None,
            html: Some(HtmlReporter::new(dir)),
        }
    }

    /// A reporter writing `<dir>/report.md` only (for a caller that adds an
    /// [`HtmlReporter`] of its own).
    pub fn markdown_only(dir: &Path) -> Self {
        MarkdownReporter {
            path: dir.join("report.md"),
            log: None,
            html: None,
        }
    }
}

impl Reporter for MarkdownReporter {
    fn handle(&mut self, event: &RunEvent) -> Result<(), ReportError> {
        // The HTML report is written even when report.md cannot be, and the
        // other way round; the first error is returned.
        let html = match &mut self.html {
            Some(h) => h.handle(event),
            None => Ok(()),
        };
        if RunLog::apply(&mut self.log, event)
            && let Some(log) = &self.log
        {
            write_atomic(&self.path, render(log).as_bytes())?;
        }
        html
    }
}
