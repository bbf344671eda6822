//! End-to-end tests of the newer OMA interop cases: the real `rig` binary
//! runs `suites/oma-interop.toml`, filtered to bootstrap int-1, int-2, int-6
//! and registration int-105 to int-109, against the real reference agent on
//! the simulated bench (the agent in its own namespace, the rig's services
//! in another, frames through the bridge) at `--time-scale 10`; and
//! `rig run --repeat` reports each case's pass rate in stdout, report.md,
//! run.json and junit.xml. int-7 waits for CoAP's unscaled
//! MAX_TRANSMIT_WAIT and is proven by the agent's own tests
//! (`firmware/agent/tests/strictness_reg.rs`). Every wait is bounded.

#![allow(clippy::panic, clippy::unwrap_used)] // test helpers may panic: that is how a test fails

use std::path::Path;
use std::time::Duration;

mod common;
use common::{ensure_agent, junit_cases, read_json, rig, run_bounded, status_of, text};

/// The longest one run may take.
const RUN_LIMIT: Duration = Duration::from_secs(300);

fn run_interop(bench: &str, extra: &[&str], out: &Path) -> (i32, String) {
    ensure_agent();
    let mut args = vec![
        "run",
        "suites/oma-interop.toml",
        "--bench",
        bench,
        "--time-scale",
        "10",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = run_bounded(rig(&args), RUN_LIMIT);
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    (
        status_of(&o),
        format!("stdout:\n{stdout}\nstderr:\n{stderr}"),
    )
}

#[test]
fn the_new_interop_cases_pass_on_the_simulated_bench() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (code, log) = run_interop(
        "hardware/sim.toml",
        &[
            "--filter",
            "LightweightM2M-1.1-int-[126]",
            "--filter",
            "LightweightM2M-1.1-int-10[5-9]",
        ],
        &out,
    );
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("7 passed, 0 failed"), "{log}");
    assert!(log.contains("1 not applicable"), "{log}");
    let junit = junit_cases(&out);
    for n in [1, 2, 6, 105, 107, 108, 109] {
        let want = format!("LightweightM2M-1.1-int-{n}");
        assert!(
            junit
                .iter()
                .any(|(name, s, _)| *name == want && s == "success"),
            "{want}: {junit:?}"
        );
    }
    assert!(
        junit
            .iter()
            .any(|(n, s, _)| n == "LightweightM2M-1.1-int-106" && s == "skipped"),
        "{junit:?}"
    );
    // The reading of each ambiguous case is in the report.
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("MAX_TRANSMIT_WAIT"), "{md}");
    let json = read_json(&out);
    let held = json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "LightweightM2M-1.1-int-109")
        .unwrap();
    assert!(
        held["measurements"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "queue.held_read_answer_s"),
        "{held}"
    );
}

#[test]
fn repeat_runs_each_case_n_times_and_reports_its_pass_rate() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (code, log) = run_interop(
        "hardware/loopback.toml",
        &["--filter", "LightweightM2M-1.1-int-10[58]", "--repeat", "3"],
        &out,
    );
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("6 passed, 0 failed"), "{log}");
    assert!(
        log.contains("LightweightM2M-1.1-int-105: 3/3 passed (100 %)"),
        "{log}"
    );
    let names: Vec<String> = junit_cases(&out).into_iter().map(|(n, _, _)| n).collect();
    for n in [105, 108] {
        for k in 1..=3 {
            let want = format!("LightweightM2M-1.1-int-{n}#{k}");
            assert!(names.contains(&want), "{want} missing: {names:?}");
        }
    }
    let json = read_json(&out);
    assert_eq!(json["repeat"]["runs_per_case"], 3, "{}", json["repeat"]);
    let r = &json["repeat"]["cases"]["LightweightM2M-1.1-int-108"];
    assert_eq!(r["runs"], 3, "{r}");
    assert_eq!(r["passed"], 3, "{r}");
    assert_eq!(r["pass_rate"], 1.0, "{r}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("| LightweightM2M-1.1-int-108 | 3 | 3 | 100 % | - |"),
        "{md}"
    );
}
