//! `report.html`: the run as one self-contained page with SVG charts.
//!
//! No network, no JavaScript, no external file: inline CSS and inline SVG
//! (from [`crate::svg`]). Sections: the run facts and verdict counts, the
//! MachNation table with the study's figures and its charts (bytes and
//! packets per scenario, energy per interval), the case table, then one
//! section per case with its measurements, evidence links and charts (bytes
//! over time, packet-length histograms). Like the other reports it is
//! rewritten after every case, so a crash leaves a valid partial page.
//!
//! Every string from the run (case ids, messages, console lines, bench
//! names) goes through [`esc`]: a DUT controls some of them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::atomic::write_atomic;
use crate::events::{ArtifactKind, CaseRecord, RunEvent, Verdict};
use crate::machnation::{self, Row, Table};
use crate::series::{Series, SeriesKind};
use crate::state::RunLog;
use crate::svg::{self, Bar, Group, esc, num};
use crate::{ReportError, Reporter};

const CSS: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222}\
h1{font-size:1.5em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}h3{margin-bottom:.3em}\
table{border-collapse:collapse;margin:.5em 0;font-size:13px}\
th,td{border:1px solid #ddd;padding:2px 6px;vertical-align:top}th{background:#f4f4f4}\
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
.scroll{overflow-x:auto}\
.v-pass{color:#1a7f37}.v-fail{color:#cf222e;font-weight:bold}.v-error{color:#9a6700;font-weight:bold}\
.v-inconclusive,.v-out_of_time{color:#9a6700}.v-not_applicable,.v-not_run{color:#777}\
.charts{display:flex;flex-wrap:wrap;gap:8px}\
svg.chart{width:480px;max-width:100%;height:auto;border:1px solid #eee;background:#fff}\
svg .ct{font-size:13px;font-weight:bold}svg .ax{font-size:10px;fill:#555}\
svg .grid{stroke:#e4e4e4}\
.lwm2m{fill:#1f77b4}.mqtt-aws{fill:#ff7f0e}.mqtt-plain{fill:#2ca02c}.study{fill:#bbb}\
.up{fill:#1f77b4;fill-opacity:.7}.down{fill:#d62728;fill-opacity:.55}.other{fill:#9467bd}\
p.nodata{color:#777;font-style:italic}\
pre{background:#f6f8fa;padding:.5em;overflow-x:auto;font-size:12px}\
.note{color:#555}";

fn verdict_text(c: &CaseRecord) -> (&'static str, String) {
    if !c.ran {
        return ("not_run", "not run".to_string());
    }
    (c.verdict.as_str(), c.verdict.as_str().replace('_', " "))
}

/// The colour class of a variant name.
fn variant_class(v: &str) -> String {
    match v {
        "lwm2m" | "mqtt-aws" | "mqtt-plain" => v.to_string(),
        _ => "other".to_string(),
    }
}

fn table(html: &mut String, t: &Table, numeric_from: usize) {
    html.push_str("<div class=\"scroll\"><table><tr>");
    for h in &t.head {
        let _ = write!(html, "<th>{}</th>", esc(h));
    }
    html.push_str("</tr>\n");
    for (index, cells) in &t.rows {
        html.push_str("<tr>");
        for (i, c) in cells.iter().enumerate() {
            if i == 0 {
                let _ = write!(html, "<td><a href=\"#case-{index}\">{}</a></td>", esc(c));
            } else if i >= numeric_from {
                let _ = write!(html, "<td class=\"n\">{}</td>", esc(c));
            } else {
                let _ = write!(html, "<td>{}</td>", esc(c));
            }
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table></div>\n");
}

/// Bars of one metric for one scenario: our variants, then the study's.
fn scenario_bars(
    rows: &[&Row<'_>],
    scenario: &str,
    metric: &str,
    study: Option<&machnation::Study>,
) -> Vec<Group> {
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for r in rows.iter().filter(|r| r.variant != "compare" && r.ran()) {
        if let Some(v) = r.metric(metric) {
            ours.push(Bar {
                label: r.variant.clone(),
                value: v,
                class: variant_class(&r.variant),
            });
        }
        if let Some(f) = study.and_then(|s| s.figure(scenario, &r.variant, metric)) {
            theirs.push(Bar {
                label: format!("study {}", r.variant),
                value: f.value,
                class: "study".into(),
            });
        }
    }
    let mut groups = vec![Group {
        label: "rig".into(),
        bars: ours,
    }];
    if !theirs.is_empty() {
        groups.push(Group {
            label: "study (2020)".into(),
            bars: theirs,
        });
    }
    groups
}

fn machnation_section(html: &mut String, log: &RunLog) {
    let rows = machnation::rows(&log.cases);
    if rows.is_empty() {
        return;
    }
    let t = machnation::tables(&rows);
    let study = machnation::Study::builtin().as_ref().ok();
    html.push_str("<h2 id=\"machnation\">MachNation comparison</h2>\n");
    html.push_str(
        "<p>rig's figures for each scenario and variant, with the 2020 study's figures \
         (MachNation with AT&amp;T and AVSystem) beside them and the difference. Bytes are \
         whole Ethernet frames, as tcpdump counted them. ≈ marks a study figure derived from \
         its percentages or averages; the source of each is in \
         <code>fixtures/machnation/study.toml</code>.</p>\n",
    );
    if let Some(e) = &t.study_error {
        let _ = writeln!(html, "<p class=\"v-error\">{}</p>", esc(e));
    }
    if !t.traffic.rows.is_empty() {
        html.push_str("<h3>Traffic</h3>\n");
        table(html, &t.traffic, 3);
    }
    if !t.power.rows.is_empty() {
        html.push_str("<h3>Energy</h3>\n");
        table(html, &t.power, 3);
    }
    if !t.compare.rows.is_empty() {
        html.push_str("<h3>LwM2M ÷ MQTT</h3>\n");
        table(html, &t.compare, 2);
    }
    if !t.notes.is_empty() {
        html.push_str("<h3>Why our figures differ</h3>\n<ul class=\"note\">\n");
        for (s, n) in &t.notes {
            let _ = writeln!(html, "<li><b>{}</b>: {}</li>", esc(s), esc(n));
        }
        html.push_str("</ul>\n");
    }

    html.push_str("<h3>Per scenario</h3>\n<div class=\"charts\">\n");
    for ((_, scenario), srows) in machnation::by_scenario(&rows) {
        if machnation::is_power(&scenario) {
            continue;
        }
        for (metric, unit) in [("bytes", "B"), ("packets", "packets")] {
            let groups = scenario_bars(&srows, &scenario, metric, study);
            let id = format!("{metric}:{scenario}");
            html.push_str(&svg::bars(
                "bars",
                &id,
                &format!("{scenario}: {metric}"),
                unit,
                &groups,
            ));
        }
    }
    html.push_str("</div>\n");

    // Energy per interval: one group per power scenario, one bar per variant.
    let groups: Vec<Group> = machnation::by_scenario(&rows)
        .into_iter()
        .filter(|((_, s), _)| machnation::is_power(s))
        .map(|((_, s), srows)| Group {
            label: s.trim_start_matches("power-").to_string(),
            bars: srows
                .iter()
                .filter(|r| r.variant != "compare")
                .filter_map(|r| {
                    Some(Bar {
                        label: r.variant.clone(),
                        value: r.energy_mj()?,
                        class: variant_class(&r.variant),
                    })
                })
                .collect(),
        })
        .collect();
    if !groups.is_empty() {
        html.push_str("<h3>Energy per interval</h3>\n<div class=\"charts\">\n");
        html.push_str(&svg::bars(
            "energy",
            "energy",
            "Energy per reporting interval (10 min window)",
            "mJ",
            &groups,
        ));
        html.push_str("</div>\n");
    }
}

/// The charts of one case's series.
fn case_charts(html: &mut String, index: usize, series: &[Series]) {
    if series.is_empty() {
        return;
    }
    let class = |name: &str| {
        if name.ends_with(".up") || name.contains(".up.") {
            "up"
        } else if name.ends_with(".down") || name.contains(".down.") {
            "down"
        } else {
            "other"
        }
    };
    // Energy (`power.*`) gets its own chart: another unit than bytes.
    let is_power = |s: &Series| s.name.starts_with("power.");
    let timelines: Vec<(&str, &Series)> = series
        .iter()
        .filter(|s| s.kind == SeriesKind::Timeline && !is_power(s))
        .map(|s| (class(&s.name), s))
        .collect();
    let energy: Vec<(&str, &Series)> = series
        .iter()
        .filter(|s| s.kind == SeriesKind::Timeline && is_power(s))
        .map(|s| ("other", s))
        .collect();
    let histograms: Vec<(&str, &Series)> = series
        .iter()
        .filter(|s| s.kind == SeriesKind::Histogram)
        .map(|s| (class(&s.name), s))
        .collect();
    html.push_str("<div class=\"charts\">\n");
    if !timelines.is_empty() {
        html.push_str(&svg::timeline(
            &format!("timeline:{index}"),
            "Bytes over time",
            &timelines,
        ));
    }
    if !histograms.is_empty() {
        html.push_str(&svg::histogram(
            &format!("histogram:{index}"),
            "Packet lengths",
            &histograms,
        ));
    }
    if !energy.is_empty() {
        html.push_str(&svg::timeline(
            &format!("energy:{index}"),
            "Energy per interval",
            &energy,
        ));
    }
    html.push_str("</div>\n");
}

/// Renders `report.html`.
pub fn render(log: &RunLog) -> String {
    let info = &log.info;
    let s = log.summary();
    let mut html = String::with_capacity(64 * 1024);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>rig run {}</title><style>{CSS}</style></head><body>\n",
        esc(&info.run_id)
    );
    let _ = writeln!(html, "<h1>rig run {}</h1>", esc(&info.run_id));
    let state = match (&log.outcome, log.running) {
        (Some(o), _) => o.as_str().replace('_', " "),
        (None, Some(i)) => format!("running (case {} of {})", i + 1, s.planned),
        (None, None) => "running".to_string(),
    };
    let total: f64 = log
        .cases
        .iter()
        .map(|c| c.duration_s)
        .filter(|d| d.is_finite())
        .sum();
    html.push_str("<table>\n");
    let mut fact = |k: &str, v: &str| {
        let _ = writeln!(html, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    };
    fact("State", &state);
    fact(
        "Bench",
        &format!("{} ({})", info.bench.name, info.bench.path),
    );
    for (k, v) in &info.bench.dut {
        fact(&format!("DUT {k}"), v);
    }
    fact("Suites", &info.suites.join(", "));
    fact("Time scale", &num(info.time_scale));
    fact("Started", &info.started_at);
    if let Some(f) = &log.finished_at {
        fact("Finished", f);
    }
    fact(
        "Duration (cases)",
        &format!("{} s", num((total * 10.0).round() / 10.0)),
    );
    for (k, v) in &info.versions {
        fact(&format!("Version {k}"), v);
    }
    fact("Command", &info.invocation.join(" "));
    html.push_str("</table>\n");

    html.push_str("<h2>Summary</h2>\n<table><tr>");
    let counts = [
        ("planned", s.planned, ""),
        ("pass", s.pass, "v-pass"),
        ("fail", s.fail, "v-fail"),
        ("inconclusive", s.inconclusive, "v-inconclusive"),
        ("not applicable", s.not_applicable, "v-not_applicable"),
        ("out of time", s.out_of_time, "v-out_of_time"),
        ("error", s.error, "v-error"),
        ("not run", s.not_run, "v-not_run"),
    ];
    for (k, _, _) in counts {
        let _ = write!(html, "<th>{k}</th>");
    }
    html.push_str("</tr><tr>");
    for (_, n, class) in counts {
        let _ = write!(html, "<td class=\"n {class}\">{n}</td>");
    }
    html.push_str("</tr></table>\n");
    html.push_str("<p><a href=\"report.md\">report.md</a> · <a href=\"run.json\">run.json</a> · <a href=\"junit.xml\">junit.xml</a></p>\n");

    machnation_section(&mut html, log);
    crate::fota::html(&mut html, &log.cases);

    html.push_str("<h2>Cases</h2>\n<div class=\"scroll\"><table><tr><th>#</th><th>Suite</th><th>Case</th><th>Title</th><th>Verdict</th><th>Duration</th><th>Message</th></tr>\n");
    for (i, c) in log.cases.iter().enumerate() {
        let (class, text) = verdict_text(c);
        let duration = if c.ran {
            format!("{} s", num((c.duration_s * 100.0).round() / 100.0))
        } else {
            "–".into()
        };
        let _ = writeln!(
            html,
            "<tr><td class=\"n\">{}</td><td>{}</td><td><a href=\"#case-{i}\"><code>{}</code></a></td>\
             <td>{}</td><td class=\"v-{class}\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            i + 1,
            esc(&c.suite),
            esc(&c.id),
            esc(&c.title),
            esc(&text),
            esc(&duration),
            esc(&c.message)
        );
    }
    html.push_str("</table></div>\n");

    html.push_str("<h2>Case details</h2>\n");
    for (i, c) in log.cases.iter().enumerate() {
        let (class, text) = verdict_text(c);
        let _ = writeln!(
            html,
            "<section id=\"case-{i}\"><h3><code>{}</code> {} · <span class=\"v-{class}\">{}</span></h3>",
            esc(&c.id),
            esc(&c.title),
            esc(&text)
        );
        if !c.message.is_empty() {
            let _ = writeln!(html, "<p>{}</p>", esc(&c.message));
        }
        if let Some(r) = &c.reading {
            let _ = writeln!(html, "<p class=\"note\">Reading: {}</p>", esc(r));
        }
        if !c.artifacts.is_empty() {
            html.push_str("<p>Evidence: ");
            for (n, a) in c.artifacts.iter().enumerate() {
                let p = a.path.display().to_string();
                let kind = match a.kind {
                    ArtifactKind::Pcap => "pcap",
                    ArtifactKind::Console => "console",
                    ArtifactKind::Power => "power",
                    ArtifactKind::Other => "other",
                };
                let _ = write!(
                    html,
                    "{}<a href=\"{}\">{}</a> ({kind})",
                    if n > 0 { ", " } else { "" },
                    esc(&href(&p)),
                    esc(&p)
                );
            }
            html.push_str("</p>\n");
        }
        if let Some(series) = log.series.get(i) {
            case_charts(&mut html, i, series);
        }
        if !c.measurements.is_empty() {
            let _ = writeln!(
                html,
                "<details><summary>{} measurements</summary><table><tr><th>Measurement</th><th>Value</th><th>Unit</th><th>Limits</th></tr>",
                c.measurements.len()
            );
            for m in &c.measurements {
                let limits = match &m.limits {
                    None => String::new(),
                    Some(l) => format!(
                        "[{}, {}]",
                        l.low.map(num).unwrap_or_else(|| "−∞".into()),
                        l.high.map(num).unwrap_or_else(|| "∞".into())
                    ),
                };
                let _ = writeln!(
                    html,
                    "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&m.name),
                    esc(&num(m.value)),
                    esc(&m.unit),
                    esc(&limits)
                );
            }
            html.push_str("</table></details>\n");
        }
        if !c.console_tail.is_empty() && c.verdict != Verdict::Pass {
            let _ = writeln!(html, "<pre>{}</pre>", esc(&c.console_tail));
        }
        html.push_str("</section>\n");
    }
    html.push_str("</body></html>\n");
    html
}

/// A relative link: each path segment percent-encoded where a URL needs it.
fn href(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(char::from(b));
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    // Never let a path become a scheme (`javascript:`): ':' is encoded above,
    // and an absolute path stays relative to the run folder.
    out.trim_start_matches('/').to_string()
}

/// Writes `report.html` into the run directory after every case and at the end.
#[derive(Debug)]
pub struct HtmlReporter {
    dir: PathBuf,
    path: PathBuf,
    log: Option<RunLog>,
}

impl HtmlReporter {
    /// A reporter writing `<dir>/report.html`.
    pub fn new(dir: &Path) -> Self {
        HtmlReporter {
            dir: dir.to_path_buf(),
            path: dir.join("report.html"),
            log: None,
        }
    }
}

impl Reporter for HtmlReporter {
    fn handle(&mut self, event: &RunEvent) -> Result<(), ReportError> {
        let (changed, loaded) = RunLog::apply_in(&mut self.log, event, &self.dir);
        if changed && let Some(log) = &self.log {
            write_atomic(&self.path, render(log).as_bytes())?;
        }
        loaded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_percent_encoded_and_stay_relative() {
        assert_eq!(href("captures/a b.pcap"), "captures/a%20b.pcap");
        assert_eq!(href("javascript:alert(1)"), "javascript%3Aalert%281%29");
        assert_eq!(href("/etc/passwd"), "etc/passwd");
        assert_eq!(href("x\"><script>"), "x%22%3E%3Cscript%3E");
    }
}
