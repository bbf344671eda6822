//! End-to-end tests of the security suite: the real `rig` binary runs
//! `suites/security.toml` (registration 101-104 across NoSec, PSK, RPK and
//! X.509, plus 401-403) against the real reference agent, on the loopback
//! bench and on the default simulated bench; and a wrong credential in the
//! bench fails its case with the server's reason; and the OMA interop suite
//! (bootstrap through the rig's bootstrap server, then registration) on both
//! benches. Every wait is bounded: a
//! child that runs too long is killed and the test fails.

#![allow(clippy::panic, clippy::unwrap_used)] // test helpers may panic: that is how a test fails

use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;
use common::{
    ensure_agent, junit_cases, measurement, read_json, rig, root, run_bounded, status_of, text,
};

/// The longest a whole security run may take (19 cases, some wait for a
/// 20 s lifetime).
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// Every variant id the security suite must produce, in plan order.
fn expected_ids() -> Vec<String> {
    let mut ids = Vec::new();
    for n in 101..=104 {
        for mode in ["nosec", "psk", "rpk", "x509"] {
            ids.push(format!("LightweightM2M-1.1-int-{n}[{mode}]"));
        }
    }
    for n in 401..=403 {
        ids.push(format!("LightweightM2M-1.1-int-{n}"));
    }
    ids
}

/// Runs the whole security suite on `bench` and checks that every variant
/// passed, in junit.xml and run.json. Returns run.json, stderr and the run folder.
fn security_suite_passes(bench: &str) -> (serde_json::Value, String, tempfile::TempDir) {
    ensure_agent();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = run_bounded(
        rig(&[
            "run",
            "suites/security.toml",
            "--bench",
            bench,
            // The lifetimes 102 and 104 wait for, four times faster: the
            // security modes, not the timers, are what this run proves.
            "--time-scale",
            "4",
            "--out",
            out.to_str().unwrap(),
        ]),
        RUN_LIMIT,
    );
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(status_of(&o), 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("19 passed, 0 failed"), "{stdout}");

    let junit = junit_cases(&out);
    let names: Vec<&str> = junit.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, expected_ids(), "junit testcases");
    for (name, status, _) in &junit {
        assert_eq!(status, "success", "{name}");
    }
    let json = read_json(&out);
    let cases = json["cases"].as_array().unwrap();
    let ids: Vec<&str> = cases.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, expected_ids(), "run.json cases");
    for case in cases {
        assert_eq!(case["verdict"], "pass", "{case}");
    }
    // 401 negotiated the mandatory PSK suite, 402 the ECDHE_ECDSA CCM_8 one.
    assert_eq!(measurement(&cases[16], "dtls.cipher_suite"), Some(49_320.0));
    assert_eq!(measurement(&cases[17], "dtls.cipher_suite"), Some(49_326.0));
    // 403 passed with the refusal's reason in its message.
    let m403 = cases[18]["message"].as_str().unwrap();
    assert!(
        m403.contains("refused") && m403.contains("rejected_by_peer"),
        "{m403}"
    );
    // The report shows each variant.
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("LightweightM2M-1.1-int-103[rpk]"), "{md}");
    // The agent was started in each mode.
    let console = std::fs::read_to_string(out.join("console/dut.log")).unwrap();
    for mode in ["psk", "rpk", "x509"] {
        assert!(
            console.contains(&format!("--security {mode}")),
            "no --security {mode} in the console log"
        );
    }
    (json, stderr, dir)
}

#[test]
fn the_security_suite_passes_on_the_loopback_bench() {
    security_suite_passes("hardware/loopback.toml");
}

/// On the default simulated bench the secure servers live in the services
/// namespace too (without the capabilities the run falls back to loopback,
/// which the test accepts, as the smoke test does).
#[test]
fn the_security_suite_passes_on_the_simulated_bench() {
    let privileged = rig_net::check_capabilities().is_ok();
    let (_json, stderr, dir) = security_suite_passes("hardware/sim.toml");
    let out = dir.path().join("run");
    if !privileged {
        assert!(stderr.contains("falling back"), "{stderr}");
        return;
    }
    assert!(!stderr.contains("falling back"), "{stderr}");
    let console = std::fs::read_to_string(out.join("console/dut.log")).unwrap();
    assert!(
        console.contains("--server coaps://10.77.0.1:"),
        "the agent was not pointed at a coaps server in the services namespace"
    );
    // Each variant has its capture.
    assert!(
        out.join("captures/LightweightM2M-1.1-int-101[psk].pcap")
            .is_file()
    );
}

/// A bench on loopback whose `[security]` has `extra` lines.
fn bench_with(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("bench.toml");
    std::fs::write(
        &path,
        format!(
            "[bench]\nname = \"wrong-credentials\"\n\n[target]\nkind = \"sim\"\nagent = \"auto\"\n\n\
             [network]\nkind = \"loopback\"\n\n[security]\nstore = \"{}\"\n{extra}",
            root().join("fixtures/pki/store.toml").display()
        ),
    )
    .unwrap();
    path
}

/// Runs one case of the security suite on `bench`; returns the exit code
/// and that case's message.
fn run_one(bench: &Path, filter: &str) -> (i32, String, serde_json::Value) {
    ensure_agent();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = run_bounded(
        rig(&[
            "run",
            "suites/security.toml",
            "--bench",
            bench.to_str().unwrap(),
            "--filter",
            filter,
            "--out",
            out.to_str().unwrap(),
        ]),
        Duration::from_secs(180),
    );
    let json = read_json(&out);
    let case = json["cases"][0].clone();
    (
        status_of(&o),
        case["message"].as_str().unwrap_or_default().to_string(),
        case,
    )
}

#[test]
fn a_wrong_psk_in_the_bench_fails_401_with_the_servers_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bench = bench_with(
        dir.path(),
        "psk_identity = \"rig-dev-psk\"\npsk_key_hex = \"00ffbeddffd4dc8c4787b554a90a9184\"\n",
    );
    let (code, message, case) = run_one(&bench, "LightweightM2M-1.1-int-401");
    assert_eq!(case["id"], "LightweightM2M-1.1-int-401");
    assert_eq!(code, 1, "{case}");
    assert_eq!(case["verdict"], "fail", "{case}");
    assert!(
        message.contains("refused") && message.contains("wrong_psk"),
        "{message}"
    );
}

#[test]
fn a_client_certificate_from_another_ca_fails_the_x509_variant_with_the_servers_reason() {
    let dir = tempfile::tempdir().unwrap();
    let pki = root().join("fixtures/pki");
    let bench = bench_with(
        dir.path(),
        &format!(
            "client_cert = \"{}\"\nclient_key = \"{}\"\n",
            pki.join("client-other-ca.pem").display(),
            pki.join("client-other-ca.key").display()
        ),
    );
    let (code, message, case) = run_one(&bench, "LightweightM2M-1.1-int-101\\[x509\\]");
    assert_eq!(case["id"], "LightweightM2M-1.1-int-101[x509]");
    assert_eq!(code, 1, "{case}");
    assert_eq!(case["verdict"], "fail", "{case}");
    assert!(
        message.contains("refused") && message.contains("unknown_ca"),
        "{message}"
    );
}

/// The OMA interop suite (bootstrap int-0/4/5/8/9 with the rig's bootstrap
/// server, then registration 101-104) passes on `bench`; on the simulated
/// network the bootstrap server is bound inside the services namespace and
/// the agent bootstraps through the bridge. `--time-scale 10`: these cases
/// judge order and content, not timing, and 101-104 pass at scale 1 in the
/// smoke tests.
fn interop_suite_passes(bench: &str) {
    ensure_agent();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = run_bounded(
        rig(&[
            "run",
            "suites/oma-interop.toml",
            // The cases this test was written for; the newer ones (1, 2, 6, 7,
            // 105-109) are run by tests/interop.rs.
            "--filter",
            "LightweightM2M-1.1-int-[04589]",
            "--filter",
            "LightweightM2M-1.1-int-10[1-4]",
            "--bench",
            bench,
            "--time-scale",
            "10",
            "--out",
            out.to_str().unwrap(),
        ]),
        RUN_LIMIT,
    );
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(status_of(&o), 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("9 passed, 0 failed"), "{stdout}");
    let junit = junit_cases(&out);
    let names: Vec<&str> = junit.iter().map(|(n, _, _)| n.as_str()).collect();
    for id in [0, 4, 5, 8, 9, 101, 102, 103, 104] {
        let want = format!("LightweightM2M-1.1-int-{id}");
        assert!(names.contains(&want.as_str()), "{want} missing: {names:?}");
    }
    assert!(junit.iter().all(|(_, s, _)| s == "success"), "{junit:?}");
    let console =
        std::fs::read_to_string(out.join("console/LightweightM2M-1.1-int-0.log")).unwrap();
    assert!(console.contains("--bootstrap-only"), "{console}");
    assert!(console.contains("POST /bs?ep="), "{console}");
}

#[test]
fn the_interop_suite_bootstraps_and_registers_on_the_loopback_bench() {
    interop_suite_passes("hardware/loopback.toml");
}

#[test]
fn the_interop_suite_bootstraps_and_registers_on_the_simulated_bench() {
    interop_suite_passes("hardware/sim.toml");
}
