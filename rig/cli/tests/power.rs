//! Power in `rig run`, end to end with the real binary and the reference
//! agent: per-case CSVs and `power.*` measurements from the simulated INA219,
//! an energy model that follows the DUT's real traffic through the bridge's
//! frame tap, and suite limits that fail a case or flag it marginal.

#![allow(clippy::unwrap_used, clippy::panic)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::time::Duration;

use common::{ensure_agent, measurement, read_json, rig, root, run_bounded, status_of, text};

/// Checks a case's power CSV: the header, then rows whose times increase
/// at about the INA219's conversion period; returns the row count.
fn check_csv(path: &Path) -> usize {
    let csv = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("t_s,bus_v,shunt_mv,current_ma,power_mw"),
        "{}",
        path.display()
    );
    let times: Vec<f64> = lines
        .map(|l| l.split(',').next().unwrap().parse::<f64>().unwrap())
        .collect();
    assert!(!times.is_empty(), "{} has no rows", path.display());
    assert!(times.windows(2).all(|w| w[1] > w[0]), "{}", path.display());
    if times.len() > 10 {
        // 12-bit shunt and bus conversions: 2 × 532 µs per sample. The
        // sampler keeps every conversion the chip flags as ready, so the mean
        // spacing is the chip's period (a loaded machine only stretches it).
        let mean = (times[times.len() - 1] - times[0]) / (times.len() - 1) as f64;
        assert!((0.001..0.02).contains(&mean), "mean spacing {mean} s");
    }
    times.len()
}

/// `hardware/sim.toml` with the energy model's profile replaced.
fn sim_bench_with_profile(dir: &Path, profile: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(root().join("hardware/sim.toml")).unwrap();
    assert!(text.contains("profile = \"ethernet\""), "{text}");
    let path = dir.join(format!("sim-{profile}.toml"));
    std::fs::write(
        &path,
        text.replace(
            "profile = \"ethernet\"",
            &format!("profile = \"{profile}\""),
        ),
    )
    .unwrap();
    path
}

/// The shipped simulated bench measures every case's power at the INA219's
/// conversion rate: `power/<case>.csv`, the `power.*` measurements and the
/// energy series.
#[test]
fn the_sim_bench_writes_power_per_case() {
    ensure_agent();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = run_bounded(
        rig(&[
            "run",
            "suites/smoke.toml",
            "--bench",
            "hardware/sim.toml",
            "--time-scale",
            "10",
            "--out",
            out.to_str().unwrap(),
        ]),
        Duration::from_secs(240),
    );
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(status_of(&o), 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(out.join("power/run.csv").is_file());
    let json = read_json(&out);
    let cases = json["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let rows = check_csv(&out.join(format!("power/{id}.csv")));
        let mj = measurement(case, "power.energy_mj").unwrap();
        let wh = measurement(case, "power.energy_wh").unwrap();
        let avg = measurement(case, "power.avg_mw").unwrap();
        let peak = measurement(case, "power.peak_ma").unwrap();
        let samples = measurement(case, "power.samples").unwrap();
        let duration = case["duration_s"].as_f64().unwrap();
        assert!(mj > 0.0, "{case}");
        assert!((wh - mj / 3.6e6).abs() < 1e-12, "{case}");
        assert_eq!(samples as usize, rows, "{case}");
        // A Pi 4 on Ethernet: 540 mA from 5.1 V, less the 0.1 Ω shunt's drop,
        // and a little more while frames are on the wire.
        assert!((2_700.0..2_900.0).contains(&avg), "{case}");
        assert!((530.0..700.0).contains(&peak), "{case}");
        // The energy covers the case's wall time (the case record's duration
        // also counts saving its console afterwards).
        assert!(mj <= avg * duration * 1.001 + 1.0, "{case}");
        let artifacts = case["artifacts"].as_array().unwrap();
        assert!(
            artifacts
                .iter()
                .any(|a| a["kind"] == "power" && a["path"] == format!("power/{id}.csv")),
            "{case}"
        );
        let series = case["series"].as_array().unwrap();
        let energy = series
            .iter()
            .find(|s| s["name"] == "power.energy_mj")
            .unwrap_or_else(|| panic!("no energy series: {case}"));
        let sum: f64 = energy["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["y"].as_f64().unwrap())
            .sum();
        assert!((sum - mj).abs() <= mj * 1e-6, "{sum} vs {mj}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Energy per interval"), "no energy chart");
}

/// On LTE-M the radio's tail after each frame dominates: a case whose frames
/// reach the model draws far more than the module's idle current, and more
/// traffic means more radio energy. Without the bridge's tap (the frames not
/// reaching the model) every case would sit at the 0.5 mA baseline.
#[test]
fn the_energy_model_follows_the_duts_traffic() {
    if rig_net::check_capabilities().is_err() {
        eprintln!("skipped: the simulated network needs CAP_NET_ADMIN (root in CI)");
        return;
    }
    ensure_agent();
    let dir = tempfile::tempdir().unwrap();
    let bench = sim_bench_with_profile(dir.path(), "lte-m");
    let out = dir.path().join("run");
    let o = run_bounded(
        rig(&[
            "run",
            "suites/smoke.toml",
            "--bench",
            bench.to_str().unwrap(),
            "--time-scale",
            "10",
            "--out",
            out.to_str().unwrap(),
        ]),
        Duration::from_secs(240),
    );
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(status_of(&o), 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let json = read_json(&out);
    // Idle: 0.5 mA baseline + 2.7 µA PSM floor at 3.7 V, less the shunt drop.
    let idle_mw = 0.5027 * 3.7;
    let mut with_traffic = 0;
    for case in json["cases"].as_array().unwrap() {
        let packets = measurement(case, "net.packets").unwrap();
        let avg = measurement(case, "power.avg_mw").unwrap();
        let peak = measurement(case, "power.peak_ma").unwrap();
        if packets > 0.0 {
            with_traffic += 1;
            // A transmission (120 mA) or at least the RRC tail (6 mA).
            assert!(
                avg > 2.0 * idle_mw,
                "avg {avg} mW with {packets} packets: {case}"
            );
            assert!(peak > 6.0, "peak {peak} mA: {case}");
        }
    }
    assert!(with_traffic >= 3, "{json}");
}

/// Suite limits on power: above `high` fails the case with a message naming
/// the measurement, its value and the limit; inside the limits but past the
/// marginal band passes, flagged marginal in the message, in run.json and as
/// a JUnit property. Runs on loopback with the energy model (no privileges).
#[test]
fn suite_limits_on_power_fail_or_flag_marginal() {
    ensure_agent();
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("bench.toml");
    std::fs::write(
        &bench,
        "[bench]\nname = \"loopback-power\"\n\n[target]\nkind = \"sim\"\nagent = \"auto\"\n\n\
         [network]\nkind = \"loopback\"\n\n[power]\nkind = \"model\"\nprofile = \"wifi\"\n",
    )
    .unwrap();
    let suite = dir.path().join("limits.toml");
    std::fs::write(
        &suite,
        r#"[suite]
name = "limits"
cases = ["LightweightM2M-1.1-int-10[12]"]

[limits."LightweightM2M-1.1-int-10*"]
"power.avg_mw" = { low = 1, high = 100000 }

[limits."LightweightM2M-1.1-int-101"]
"power.energy_mj" = { high = 0.001 }

[limits."LightweightM2M-1.1-int-102"]
"power.peak_ma" = { high = 100000, marginal_high = 1 }
"#,
    )
    .unwrap();
    let out = dir.path().join("run");
    let o = run_bounded(
        rig(&[
            "run",
            suite.to_str().unwrap(),
            "--bench",
            bench.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]),
        Duration::from_secs(180),
    );
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(status_of(&o), 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let json = read_json(&out);
    let cases = json["cases"].as_array().unwrap();
    let (c101, c102) = (&cases[0], &cases[1]);
    assert_eq!(c101["verdict"], "fail", "{c101}");
    let msg = c101["message"].as_str().unwrap();
    assert!(
        msg.contains("power.energy_mj") && msg.contains("mJ") && msg.contains("0.001"),
        "{msg}"
    );
    let m = c101["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "power.energy_mj")
        .unwrap();
    assert_eq!(m["limits"]["high"], 0.001, "{m}");
    // The glob's limits reach both cases; they pass.
    for c in [c101, c102] {
        let m = c["measurements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "power.avg_mw")
            .unwrap();
        assert_eq!(m["limits"]["low"], 1.0, "{m}");
    }
    assert_eq!(c102["verdict"], "pass", "{c102}");
    let msg = c102["message"].as_str().unwrap();
    assert!(
        msg.contains("marginal") && msg.contains("power.peak_ma"),
        "{msg}"
    );
    assert_eq!(measurement(c102, "limits.marginal"), Some(1.0), "{c102}");
    assert_eq!(measurement(c101, "limits.marginal"), Some(0.0), "{c101}");
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).unwrap();
    let case = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("testcase") && n.attribute("name") == Some("LightweightM2M-1.1-int-102")
        })
        .unwrap();
    let marginal = case
        .descendants()
        .find(|n| n.has_tag_name("property") && n.attribute("name") == Some("limits.marginal"))
        .unwrap_or_else(|| panic!("no limits.marginal property: {junit}"));
    assert!(
        marginal.attribute("value").unwrap().starts_with('1'),
        "{junit}"
    );
}

/// A bad limit in a suite file is an error at its place, before anything runs.
#[test]
fn a_bad_limit_is_reported_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("bad.toml");
    std::fs::write(
        &suite,
        "[suite]\ncases = [\"LightweightM2M-1.1-int-101\"]\n\n\
         [limits.\"LightweightM2M-1.1-int-101\"]\n\
         \"power.energy_mj\" = { high = 10, marginal_high = 20 }\n\
         \"power.avg_mw\" = { hihg = 10 }\n",
    )
    .unwrap();
    let o = run_bounded(
        rig(&[
            "run",
            suite.to_str().unwrap(),
            "--bench",
            "hardware/loopback.toml",
            "--out",
            dir.path().join("run").to_str().unwrap(),
        ]),
        Duration::from_secs(60),
    );
    let stderr = text(&o.stderr);
    assert_eq!(status_of(&o), 3, "{stderr}");
    assert!(stderr.contains("bad.toml:5"), "{stderr}");
    assert!(stderr.contains("bad.toml:6"), "{stderr}");
    assert!(stderr.contains("out of order"), "{stderr}");
    assert!(stderr.contains("hihg"), "{stderr}");
}
