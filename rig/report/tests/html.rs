//! `report.html` from a realistic run record (`fixtures/reports/machnation-run.json`,
//! replayed through the reporters with its series files): it is rendered by
//! headless Chromium, and every chart must be in the rendered DOM with at
//! least one mark of non-zero size. Also: the page is self-contained, hostile
//! strings are escaped, and `run.json` round-trips its `series` key.
//!
//! Chromium is required: without it the Chromium test fails and says how to
//! install it (CI installs it from `rig/xtask/apt-packages.txt`).

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test helpers may panic: that is how a test fails

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rig_report::Fanout;
use rig_report::events::{
    Artifact, ArtifactKind, CaseRecord, Measurement, PlannedCase, RunEvent, RunInfo, RunOutcome,
    Verdict,
};
use rig_report::markdown::MarkdownReporter;
use rig_report::record::{RecordReporter, RunRecord};
use rig_report::series::{self, Point, Series, SeriesKind};

fn fixture() -> RunRecord {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/reports/machnation-run.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Replays a record as the engine would emit it, the CLI's hooks having
/// written each case's series file first. Returns the run directory.
fn replay(record: &RunRecord, dir: &Path) {
    let mut fan = Fanout::new();
    fan.push(Box::new(RecordReporter::new(dir)));
    fan.push(Box::new(MarkdownReporter::new(dir)));
    let info = RunInfo {
        run_id: record.run_id.clone(),
        invocation: record.invocation.clone(),
        bench: record.bench.clone(),
        versions: record.versions.clone(),
        suites: record.suites.clone(),
        time_scale: record.time_scale,
        started_at: record.started_at.clone(),
    };
    let planned: Vec<PlannedCase> = record
        .cases
        .iter()
        .map(|c| PlannedCase {
            id: c.id.clone(),
            title: c.title.clone(),
            suite: c.suite.clone(),
        })
        .collect();
    fan.send(&RunEvent::RunStarted { info, planned });
    for (index, c) in record.cases.iter().enumerate() {
        fan.send(&RunEvent::CaseStarted {
            index,
            id: c.id.clone(),
        });
        if !c.series.is_empty() {
            let rel = series::write_case(dir, &c.id, &c.series).unwrap();
            assert!(c.artifacts.iter().any(|a| a.path == rel), "{}", c.id);
        }
        fan.send(&RunEvent::CaseFinished {
            index,
            record: c.record.clone(),
        });
        assert!(dir.join("report.html").exists());
    }
    fan.send(&RunEvent::RunFinished {
        outcome: record.outcome.unwrap_or(RunOutcome::Completed),
        finished_at: record.finished_at.clone().unwrap_or_default(),
    });
    let errors = fan.take_errors();
    assert!(errors.is_empty(), "{errors:?}");
}

fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("RIG_CHROMIUM") {
        return PathBuf::from(p);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in ["/usr/bin", "/usr/local/bin", "/snap/bin"] {
            let p = Path::new(dir).join(name);
            if p.exists() {
                return p;
            }
        }
    }
    panic!(
        "Chromium is needed to check report.html and was not found (looked for chromium, \
         chromium-browser, google-chrome in /usr/bin, /usr/local/bin, /snap/bin; or set \
         RIG_CHROMIUM). Install Debian's: `apt-get install chromium` (CI installs it from \
         rig/xtask/apt-packages.txt)."
    );
}

/// Runs headless Chromium on `page` and returns the DOM it dumps, killing it
/// after `limit`.
fn dump_dom(page: &Path, limit: Duration) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            "--window-size=1280,1024",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromium: {e}"));
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader.join().unwrap();
    let err = err_reader.join().unwrap();
    assert!(status.success(), "chromium failed ({status}): {err}");
    out
}

/// A script appended to a copy of the report (the report itself has none):
/// for every chart, the number of marks and how many have a non-empty box.
const PROBE: &str = r#"<script>
const rows = [];
for (const svg of document.querySelectorAll('svg[data-chart]')) {
  const marks = [...svg.querySelectorAll('.mark')];
  const drawn = marks.filter(m => { const r = m.getBoundingClientRect(); return r.width > 0 && r.height > 0; }).length;
  const box = svg.getBoundingClientRect();
  rows.push([svg.dataset.chart, svg.dataset.id, marks.length, drawn, Math.round(box.width), Math.round(box.height)].join('|'));
}
const pre = document.createElement('pre');
pre.id = 'rig-probe';
pre.textContent = 'BEGIN\n' + rows.join('\n') + '\nEND';
document.body.appendChild(pre);
</script>"#;

#[test]
fn every_chart_is_rendered_by_chromium_with_data() {
    let dir = tempfile::tempdir().unwrap();
    replay(&fixture(), dir.path());
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    // To look at the page: RIG_KEEP_REPORT=/some/dir cargo test -p rig-report --test html
    if let Some(keep) = std::env::var_os("RIG_KEEP_REPORT") {
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::write(Path::new(&keep).join("report.html"), &html).unwrap();
    }
    let expected = html.matches("<svg class=\"chart\" data-chart=").count();
    for kind in ["bars", "histogram", "timeline", "energy"] {
        assert!(
            html.contains(&format!("data-chart=\"{kind}\"")),
            "no {kind} chart in report.html"
        );
    }
    // 5 traffic scenarios x (bytes, packets) + energy + per case (smoke 4 and
    // traffic 15) a timeline and a histogram.
    assert_eq!(expected, 5 * 2 + 1 + 19 * 2, "charts in report.html");

    let probe_page = dir.path().join("probe.html");
    std::fs::write(
        &probe_page,
        html.replace("</body>", &format!("{PROBE}</body>")),
    )
    .unwrap();
    let dom = dump_dom(&probe_page, Duration::from_secs(90));
    let block = dom
        .split("BEGIN\n")
        .nth(1)
        .and_then(|s| s.split("\nEND").next())
        .unwrap_or_else(|| panic!("the probe did not run; chromium dumped:\n{dom:.2000}"));
    eprintln!("chromium probe (kind|id|marks|drawn|w|h):\n{block}");
    let rows: Vec<Vec<&str>> = block.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), expected, "charts in the rendered DOM:\n{block}");
    for r in &rows {
        let [kind, id, marks, drawn, w, h] = r[..] else {
            panic!("bad probe row {r:?}")
        };
        let n = |s: &str| s.parse::<u64>().unwrap();
        assert!(n(marks) >= 1, "{kind} {id}: no marks");
        assert!(n(drawn) >= 1, "{kind} {id}: no mark of non-zero size");
        assert!(n(w) > 100 && n(h) > 30, "{kind} {id}: chart box {w}x{h}");
    }
    // The hostile message was shown as text, not run.
    assert!(
        dom.contains("&lt;script&gt;alert('dut')&lt;/script&gt;"),
        "escaped message missing"
    );
    assert_eq!(dom.matches("<script").count(), 1, "only the probe script");
}

#[test]
fn the_page_is_self_contained_and_has_the_machnation_table() {
    let dir = tempfile::tempdir().unwrap();
    replay(&fixture(), dir.path());
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(!html.contains("<script"), "no JavaScript in the report");
    assert!(!html.contains("<link"), "no external stylesheet");
    for bad in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!html.contains(bad), "external reference {bad}");
    }
    // Study figures and % differences beside ours; a note on why we differ.
    assert!(html.contains("<h2 id=\"machnation\">"));
    assert!(html.contains(">15394<"), "study's observation MQTT bytes");
    assert!(html.contains("≈1390"), "derived study figure marked");
    assert!(html.contains(" %<"), "a % difference");
    assert!(html.contains("certificate chain"), "a why-we-differ note");
    assert!(
        html.contains("power/machnation.power-idle.lwm2m.csv"),
        "power CSV link"
    );
    assert!(
        html.contains("captures/LightweightM2M-1.1-int-101.pcap"),
        "pcap link"
    );
    // report.md has the same table, no charts, and links to the page.
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("## MachNation comparison"));
    assert!(md.contains("(report.html#machnation)"));
    assert!(
        md.contains("| steady-state | lwm2m | pass | 179 | 179 | 0.0 % |"),
        "{md}"
    );
    assert!(!md.contains("<svg"));
}

#[test]
fn run_json_round_trips_the_series_key() {
    let dir = tempfile::tempdir().unwrap();
    let original = fixture();
    replay(&original, dir.path());
    let text = std::fs::read_to_string(dir.path().join("run.json")).unwrap();
    let written: RunRecord = serde_json::from_str(&text).unwrap();
    assert_eq!(written.cases.len(), original.cases.len());
    for (w, o) in written.cases.iter().zip(&original.cases) {
        assert_eq!(w.series, o.series, "{}", o.id);
        assert_eq!(w.record, o.record, "{}", o.id);
    }
    // A case without series has no `series` key at all.
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let compare = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "machnation.ota.compare")
        .unwrap();
    assert!(compare.get("series").is_none());
    let again: RunRecord = serde_json::from_str(&serde_json::to_string(&written).unwrap()).unwrap();
    assert_eq!(again, written);
}

fn hostile_case() -> CaseRecord {
    let p = PlannedCase {
        id: "machnation.<img src=x onerror=alert(1)>.lwm2m".into(),
        title: "</title><script>alert(2)</script>".into(),
        suite: "s\"uite".into(),
    };
    let mut c = CaseRecord::not_run(&p, "x");
    c.ran = true;
    c.verdict = Verdict::Fail;
    c.message = "DUT said: <b onmouseover='x'>hi</b> & \u{1b}[31mred".into();
    c.console_tail = "</pre><script>alert(3)</script>".into();
    c.measurements = vec![
        Measurement {
            name: "machnation.bytes".into(),
            unit: "B".into(),
            value: f64::NAN,
            limits: None,
        },
        Measurement {
            name: "machnation.packets".into(),
            unit: "<u>".into(),
            value: f64::INFINITY,
            limits: None,
        },
    ];
    c.artifacts = vec![Artifact {
        kind: ArtifactKind::Console,
        path: "console/\"><script>.log".into(),
    }];
    c
}

#[test]
fn hostile_strings_and_nan_values_are_escaped_not_rendered() {
    let dir = tempfile::tempdir().unwrap();
    let c = hostile_case();
    let planned = vec![PlannedCase {
        id: c.id.clone(),
        title: c.title.clone(),
        suite: c.suite.clone(),
    }];
    let mut fan = Fanout::new();
    fan.push(Box::new(MarkdownReporter::new(dir.path())));
    fan.send(&RunEvent::RunStarted {
        info: RunInfo {
            run_id: "<run>".into(),
            ..RunInfo::default()
        },
        planned,
    });
    fan.send(&RunEvent::CaseFinished {
        index: 0,
        record: c,
    });
    assert!(fan.take_errors().is_empty());
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("<b "), "{html}");
    assert!(!html.contains("onmouseover='"), "{html}");
    assert!(!html.contains('\u{1b}'));
    assert!(!html.contains("NaN") && !html.contains("inf<"), "{html}");
    assert!(html.contains("&lt;/pre&gt;&lt;script&gt;"));
    assert!(html.contains("console/%22%3E%3Cscript%3E.log"));
    // The MachNation row exists (its id parses) but shows – for NaN.
    assert!(html.contains("<td class=\"n\">–</td>"));
}

#[test]
fn an_empty_series_draws_no_chart_and_a_missing_series_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = PlannedCase {
        id: "quiet".into(),
        title: "A case without traffic".into(),
        suite: "smoke".into(),
    };
    let quiet = Series {
        name: "net.l2_bytes.up".into(),
        kind: SeriesKind::Timeline,
        x_unit: "s".into(),
        unit: "B".into(),
        bin: Some(1.0),
        points: vec![Point { x: 0.0, y: 0.0 }],
    };
    let rel = series::write_case(
        dir.path(),
        "quiet",
        &[
            quiet,
            Series {
                points: vec![],
                kind: SeriesKind::Histogram,
                name: "net.frame_len.up".into(),
                ..series_stub()
            },
        ],
    )
    .unwrap();
    let mut c = CaseRecord::not_run(&p, "x");
    c.ran = true;
    c.verdict = Verdict::Pass;
    c.artifacts.push(Artifact {
        kind: ArtifactKind::Other,
        path: rel,
    });
    let mut missing = c.clone();
    missing.artifacts[0].path = "series/gone.json".into();
    let mut fan = Fanout::new();
    fan.push(Box::new(MarkdownReporter::new(dir.path())));
    fan.send(&RunEvent::RunStarted {
        info: RunInfo::default(),
        planned: vec![p.clone(), p],
    });
    fan.send(&RunEvent::CaseFinished {
        index: 0,
        record: c,
    });
    assert!(fan.take_errors().is_empty());
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(!html.contains("data-chart"), "{html}");
    assert_eq!(html.matches("class=\"nodata\"").count(), 2, "{html}");
    fan.send(&RunEvent::CaseFinished {
        index: 1,
        record: missing,
    });
    let errors = fan.take_errors();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].to_string().contains("gone.json"), "{}", errors[0]);
    // The report was still rewritten with the second case.
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert_eq!(
        html.matches("A case without traffic").count(),
        4,
        "two rows, two sections"
    );
}

fn series_stub() -> Series {
    Series {
        name: String::new(),
        kind: SeriesKind::Timeline,
        x_unit: "B".into(),
        unit: "packets".into(),
        bin: None,
        points: Vec::new(),
    }
}
