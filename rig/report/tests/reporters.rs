//! The three file reporters fed one scripted run: every file is written after
//! every case, stays well-formed part-way, and matches its snapshot (times,
//! run ids and temp paths are fixed or redacted).

#![allow(clippy::panic, clippy::unwrap_used)] // test helpers may panic: that is how a test fails

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rig_report::events::{
    Artifact, ArtifactKind, BenchInfo, CaseRecord, Limits, Measurement, PlannedCase, RunEvent,
    RunInfo, RunOutcome, Verdict,
};
use rig_report::junit::JunitReporter;
use rig_report::markdown::MarkdownReporter;
use rig_report::record::{RecordReporter, RunRecord};
use rig_report::{Fanout, Reporter};

fn planned() -> Vec<PlannedCase> {
    [
        (
            "LightweightM2M-1.1-int-101",
            "Initial Registration",
            "smoke",
        ),
        ("LightweightM2M-1.1-int-102", "Registration Update", "smoke"),
        ("LightweightM2M-1.1-int-103", "Deregistration", "smoke"),
        (
            "LightweightM2M-1.1-int-104",
            "Registration Update Trigger",
            "smoke",
        ),
        (
            "LightweightM2M-1.1-int-401",
            "UDP Channel Security - PSK",
            "security",
        ),
        (
            "LightweightM2M-1.1-int-402",
            "UDP Channel Security - RPK",
            "security",
        ),
    ]
    .iter()
    .map(|(id, title, suite)| PlannedCase {
        id: id.to_string(),
        title: title.to_string(),
        suite: suite.to_string(),
    })
    .collect()
}

fn info() -> RunInfo {
    RunInfo {
        run_id: "20261127T210405Z-abcd".into(),
        invocation: vec!["rig".into(), "run".into(), "suites/smoke.toml".into()],
        bench: BenchInfo {
            name: "loopback".into(),
            path: "hardware/loopback.toml".into(),
            features: vec!["lwm2m".into()],
            dut: BTreeMap::from([
                ("kind".to_string(), "sim".to_string()),
                (
                    "command".to_string(),
                    "rig-agent --console stdio".to_string(),
                ),
            ]),
        },
        versions: BTreeMap::from([("rig".to_string(), "0.1.0".to_string())]),
        suites: vec!["suites/smoke.toml".into(), "suites/security.toml".into()],
        time_scale: 1.0,
        started_at: "2026-11-27T21:04:05Z".into(),
    }
}

fn record(p: &PlannedCase, verdict: Verdict, message: &str) -> CaseRecord {
    CaseRecord {
        id: p.id.clone(),
        title: p.title.clone(),
        suite: p.suite.clone(),
        verdict,
        duration_s: 1.25,
        message: message.into(),
        measurements: vec![],
        artifacts: vec![Artifact {
            kind: ArtifactKind::Console,
            path: PathBuf::from(format!("console/{}.log", p.id)),
        }],
        ran: true,
        reading: None,
        console_tail: "> start\n< registered /rd/0 <lwm2m & co>\n".into(),
        started_at: Some("2026-11-27T21:04:06Z".into()),
    }
}

/// The scripted run: pass (with measurements and a reading), fail, out of
/// time, not applicable, then the user interrupts: 401 is interrupted, 402
/// never starts.
fn events() -> Vec<RunEvent> {
    let p = planned();
    let mut first = record(&p[0], Verdict::Pass, "");
    first.measurements = vec![
        Measurement {
            name: "registration.latency_s".into(),
            unit: "s".into(),
            value: 0.042,
            limits: Some(Limits {
                low: None,
                high: Some(5.0),
                ..Limits::default()
            }),
        },
        Measurement {
            name: "register.bytes".into(),
            unit: "B".into(),
            value: 123.0,
            limits: None,
        },
    ];
    first.reading = Some("The ETS says `lt` is optional; we require it when C.1 sets it.".into());
    let mut events = vec![RunEvent::RunStarted {
        info: info(),
        planned: p.clone(),
    }];
    let verdicts = [
        first,
        record(
            &p[1],
            Verdict::Fail,
            "expected Update with lt=20 within 15 s, got none",
        ),
        record(
            &p[2],
            Verdict::OutOfTime,
            "case timeout 10 s expired; last step: waiting for De-register",
        ),
        record(
            &p[3],
            Verdict::NotApplicable,
            "bench lacks feature `impair`",
        ),
        record(&p[4], Verdict::Error, "interrupted by user (Ctrl-C)"),
    ];
    for (i, r) in verdicts.into_iter().enumerate() {
        events.push(RunEvent::CaseStarted {
            index: i,
            id: r.id.clone(),
        });
        events.push(RunEvent::CaseProgress {
            index: i,
            message: "waiting".into(),
        });
        events.push(RunEvent::CaseFinished {
            index: i,
            record: r,
        });
    }
    events.push(RunEvent::CaseFinished {
        index: 5,
        record: CaseRecord::not_run(&p[5], "run interrupted by user (Ctrl-C)"),
    });
    events.push(RunEvent::RunFinished {
        outcome: RunOutcome::Interrupted,
        finished_at: "2026-11-27T21:05:00Z".into(),
    });
    events
}

fn reporters(dir: &Path) -> Fanout {
    let mut fan = Fanout::new();
    fan.push(Box::new(JunitReporter::new(dir)));
    fan.push(Box::new(RecordReporter::new(dir)));
    fan.push(Box::new(MarkdownReporter::new(dir)));
    fan
}

fn redact(text: &str, dir: &Path) -> String {
    text.replace(&dir.display().to_string(), "[RUN_DIR]")
}

fn parse_junit(xml: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(xml)
        .unwrap_or_else(|e| panic!("junit.xml not well-formed: {e}\n{xml}"))
}

#[test]
fn reports_match_their_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let mut fan = reporters(dir.path());
    for e in events() {
        fan.send(&e);
    }
    assert!(fan.take_errors().is_empty());
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    parse_junit(&junit);
    insta::assert_snapshot!("junit", redact(&junit, dir.path()));
    let json = std::fs::read_to_string(dir.path().join("run.json")).unwrap();
    insta::assert_snapshot!("run_json", redact(&json, dir.path()));
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    insta::assert_snapshot!("report_md", redact(&md, dir.path()));
}

#[test]
fn every_planned_case_is_in_the_files_from_the_first_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut fan = reporters(dir.path());
    let evs = events();
    fan.send(&evs[0]);
    let record: RunRecord =
        serde_json::from_slice(&std::fs::read(dir.path().join("run.json")).unwrap()).unwrap();
    assert_eq!(record.cases.len(), 6);
    assert!(
        record
            .cases
            .iter()
            .all(|c| !c.ran && c.message == "not run: not started yet")
    );
    assert_eq!(record.summary.not_run, 6);
    assert!(record.outcome.is_none() && record.finished_at.is_none());

    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    let doc = parse_junit(&junit);
    let suites: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 2, "one testsuite per suite file");
    let skipped = doc
        .descendants()
        .filter(|n| n.has_tag_name("skipped"))
        .count();
    assert_eq!(skipped, 6);
}

#[test]
fn files_are_rewritten_after_each_case_and_stay_valid() {
    let dir = tempfile::tempdir().unwrap();
    let mut fan = reporters(dir.path());
    let evs = events();
    let mut finished = 0;
    for e in &evs {
        fan.send(e);
        if let RunEvent::CaseFinished { .. } = e {
            finished += 1;
            let record: RunRecord =
                serde_json::from_slice(&std::fs::read(dir.path().join("run.json")).unwrap())
                    .unwrap();
            assert_eq!(record.summary.ran, finished.min(5));
            let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
            let doc = parse_junit(&junit);
            let not_run = doc
                .descendants()
                .filter(|n| n.has_tag_name("skipped") && n.attribute("type") == Some("not_run"))
                .count();
            assert_eq!(not_run, 6 - finished.min(5));
        }
    }
}

#[test]
fn junit_maps_verdicts_to_failure_error_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut fan = reporters(dir.path());
    for e in events() {
        fan.send(&e);
    }
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    let doc = parse_junit(&junit);
    let status = |id: &str| -> (String, Option<String>) {
        let case = doc
            .descendants()
            .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(id))
            .unwrap_or_else(|| panic!("no testcase {id}"));
        let child = case.children().find(|c| {
            c.is_element() && ["failure", "error", "skipped"].contains(&c.tag_name().name())
        });
        match child {
            None => ("success".into(), None),
            Some(c) => (
                c.tag_name().name().into(),
                c.attribute("message").map(String::from),
            ),
        }
    };
    assert_eq!(status("LightweightM2M-1.1-int-101").0, "success");
    assert_eq!(status("LightweightM2M-1.1-int-102").0, "failure");
    assert_eq!(status("LightweightM2M-1.1-int-103").0, "error");
    assert_eq!(status("LightweightM2M-1.1-int-104").0, "skipped");
    assert_eq!(
        status("LightweightM2M-1.1-int-401"),
        ("error".into(), Some("interrupted by user (Ctrl-C)".into()))
    );
    assert_eq!(
        status("LightweightM2M-1.1-int-402"),
        (
            "skipped".into(),
            Some("not run: run interrupted by user (Ctrl-C)".into())
        )
    );
    // Attachments are absolute paths to the case's evidence.
    let abs = dir.path().join("console/LightweightM2M-1.1-int-101.log");
    assert!(junit.contains(&format!("[[ATTACHMENT|{}]]", abs.display())));
}

#[test]
fn a_reporter_that_cannot_write_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    // junit.xml is a non-empty directory: that reporter fails, the others go on.
    std::fs::create_dir(dir.path().join("junit.xml")).unwrap();
    std::fs::write(dir.path().join("junit.xml").join("x"), "x").unwrap();
    let mut fan = reporters(dir.path());
    for e in events() {
        fan.handle(&e).unwrap();
    }
    let errors = fan.take_errors();
    assert!(!errors.is_empty());
    assert!(errors[0].to_string().contains("junit.xml"));
    assert!(dir.path().join("run.json").is_file());
    assert!(dir.path().join("report.md").is_file());
}
