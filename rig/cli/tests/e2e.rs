//! End-to-end tests of the real `rig` binary against the real reference agent
//! (`rig-agent`), each in its own temp folder, over loopback.
//!
//! They check what a user and a CI system see: exit codes, `junit.xml`
//! (parsed, so it must be well-formed), `run.json` (verdicts, messages) and the
//! console evidence. Every wait is bounded: a child that runs too long is
//! killed and the test fails.

#![allow(clippy::panic, clippy::unwrap_used)] // test helpers may panic: that is how a test fails

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{
    ensure_agent, junit_cases, measurement, read_json, rig, root, run_bounded, status_of, text,
    wait_bounded,
};

#[test]
fn the_smoke_suite_passes_against_the_agent_and_writes_every_report() {
    ensure_agent();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = run_bounded(
        rig(&[
            "run",
            "suites/smoke.toml",
            "--bench",
            "hardware/loopback.toml",
            "--out",
            out.to_str().unwrap(),
        ]),
        Duration::from_secs(180),
    );
    let stdout = text(&o.stdout);
    assert_eq!(
        status_of(&o),
        0,
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&o.stderr)
    );
    // One progress line per case (stdout is not a terminal), and the summary.
    for n in 101..=104 {
        assert!(
            stdout.contains(&format!("LightweightM2M-1.1-int-{n}")),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("[4/4] LightweightM2M-1.1-int-104"),
        "{stdout}"
    );
    assert!(stdout.contains("4 passed, 0 failed"), "{stdout}");
    assert!(
        stdout.contains(&out.join("report.md").display().to_string()),
        "{stdout}"
    );

    let cases = junit_cases(&out);
    assert_eq!(cases.len(), 4);
    for (name, status, msg) in &cases {
        assert_eq!(status, "success", "{name}: {msg:?}");
    }
    let json = read_json(&out);
    assert_eq!(json["schema"], 1);
    assert_eq!(json["outcome"], "completed");
    assert_eq!(json["summary"]["pass"], 4);
    assert_eq!(json["bench"]["name"], "loopback");
    assert_eq!(json["invocation"][1], "run");
    for case in json["cases"].as_array().unwrap() {
        assert_eq!(case["verdict"], "pass", "{case}");
        assert_eq!(case["ran"], true);
        let log = case["artifacts"][0]["path"].as_str().unwrap();
        assert!(out.join(log).is_file(), "missing evidence {log}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| State | completed |"), "{md}");
    // The whole console, from start to end, is kept too.
    assert!(out.join("console/dut.log").is_file());
}

/// Starts a smoke run on the loopback bench and returns once its first case
/// has finished (the second, int-102, takes about 10 s, so a signal sent now
/// lands in it). Returns the child, the lines seen and the rest of stdout.
fn start_smoke_and_wait_first_case(
    out: &Path,
) -> (Child, Vec<String>, std::sync::mpsc::Receiver<String>) {
    let mut child = rig(&[
        "run",
        "suites/smoke.toml",
        "--bench",
        "hardware/loopback.toml",
        "--out",
        out.to_str().unwrap(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.iter().any(|l: &String| l.starts_with("[1/4]")) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("no first case line within 60 s; saw {seen:?}");
            }
        }
    }
    (child, seen, rx)
}

fn sigint(child: &Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
}

#[test]
fn ctrl_c_records_the_running_case_as_interrupted_and_the_rest_as_not_run() {
    ensure_agent();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (child, seen, rx) = start_smoke_and_wait_first_case(&out);
    std::thread::sleep(Duration::from_millis(500));
    sigint(&child);
    let o = wait_bounded(child, Duration::from_secs(30));
    let rest: Vec<String> = rx.try_iter().collect();
    assert_eq!(
        status_of(&o),
        4,
        "stdout: {seen:?} {rest:?}\nstderr:\n{}",
        text(&o.stderr)
    );

    // The partial junit.xml is well-formed, and says what happened to each case.
    let cases = junit_cases(&out);
    assert_eq!(cases.len(), 4);
    assert_eq!(cases[0].1, "success");
    assert_eq!(cases[1].1, "error");
    assert_eq!(cases[1].2.as_deref(), Some("interrupted by user (Ctrl-C)"));
    for (name, status, msg) in &cases[2..] {
        assert_eq!(status, "skipped", "{name}");
        assert_eq!(
            msg.as_deref(),
            Some("not run: run interrupted by user (Ctrl-C)"),
            "{name}"
        );
    }
    let json = read_json(&out);
    assert_eq!(json["outcome"], "interrupted");
    assert_eq!(json["summary"]["not_run"], 2);
    assert_eq!(json["cases"][1]["verdict"], "error");
    assert_eq!(json["cases"][2]["ran"], false);
    assert_eq!(json["cases"][3]["ran"], false);
}

#[test]
fn a_second_ctrl_c_quits_at_once_and_leaves_a_valid_report() {
    ensure_agent();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (child, _seen, _rx) = start_smoke_and_wait_first_case(&out);
    sigint(&child);
    std::thread::sleep(Duration::from_millis(20));
    sigint(&child);
    let o = wait_bounded(child, Duration::from_secs(30));
    assert_eq!(status_of(&o), 4, "stderr:\n{}", text(&o.stderr));
    // Whatever the last complete write was, it parses and lists every case.
    assert_eq!(junit_cases(&out).len(), 4);
    assert_eq!(read_json(&out)["cases"].as_array().unwrap().len(), 4);
    assert_eq!(read_json(&out)["cases"][0]["verdict"], "pass");
}

#[test]
fn a_process_dut_that_never_registers_fails_within_the_case_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("sleeper.toml");
    std::fs::write(
        &bench,
        "[bench]\nname = \"sleeper\"\n\n[target]\nkind = \"process\"\ncommand = [\"sleep\", \"100\"]\n\n[network]\nkind = \"loopback\"\n",
    )
    .unwrap();
    let suite = dir.path().join("one.toml");
    std::fs::write(
        &suite,
        "[suite]\nname = \"one\"\ncases = [\"LightweightM2M-1.1-int-101\"]\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    let started = Instant::now();
    let o = run_bounded(
        rig(&[
            "run",
            suite.to_str().unwrap(),
            "--bench",
            bench.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]),
        Duration::from_secs(150),
    );
    let took = started.elapsed();
    assert_eq!(
        status_of(&o),
        1,
        "stdout:\n{}\nstderr:\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let json = read_json(&out);
    let case = &json["cases"][0];
    let verdict = case["verdict"].as_str().unwrap();
    assert!(["fail", "out_of_time"].contains(&verdict), "{case}");
    let message = case["message"].as_str().unwrap();
    assert!(
        message.contains("Register"),
        "the message should say what never came: {message}"
    );
    // Within the case's timeout (the library's, at time scale 1).
    let timeout = rig_timeout_of("LightweightM2M-1.1-int-101");
    assert!(
        case["duration_s"].as_f64().unwrap() <= timeout.as_secs_f64() + 1.0,
        "{case} (timeout {timeout:?})"
    );
    assert!(
        took < timeout + Duration::from_secs(30),
        "rig took {took:?}"
    );
    let junit = junit_cases(&out);
    assert!(
        ["failure", "error"].contains(&junit[0].1.as_str()),
        "{junit:?}"
    );
}

/// A case's timeout, as `rig list`… does not print it; read it from the
/// library through the suite crate instead.
fn rig_timeout_of(id: &str) -> Duration {
    rig_suite::cases::find(id).unwrap().meta.timeout
}

#[test]
fn a_dut_that_cannot_start_is_an_infrastructure_error_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("missing.toml");
    std::fs::write(
        &bench,
        "[bench]\nname = \"missing\"\n\n[target]\nkind = \"process\"\ncommand = [\"/nonexistent/dut\"]\n\n[network]\nkind = \"loopback\"\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    let o = run_bounded(
        rig(&[
            "run",
            "suites/smoke.toml",
            "--bench",
            bench.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(
        status_of(&o),
        2,
        "stdout:\n{}\nstderr:\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let json = read_json(&out);
    let cases = json["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        // Every case was attempted: one DUT failure does not end the run.
        assert_eq!(case["ran"], true, "{case}");
        assert_eq!(case["verdict"], "error", "{case}");
        let message = case["message"].as_str().unwrap();
        assert!(
            message.contains("/nonexistent/dut"),
            "the message names the program: {message}"
        );
    }
    assert!(junit_cases(&out).iter().all(|c| c.1 == "error"));
}

#[test]
fn a_run_that_cannot_prepare_still_writes_reports_with_every_case_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("nic.toml");
    // A NIC network is valid in a bench file, but `rig run` cannot set one up
    // yet: the run aborts before the first case.
    std::fs::write(
        &bench,
        "[bench]\nname = \"nic\"\n\n[target]\nkind = \"sim\"\n\n[network]\nkind = \"nic\"\ninterface = \"eth9\"\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    let o = run_bounded(
        rig(&[
            "run",
            "--bench",
            bench.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]),
        Duration::from_secs(60),
    );
    let stderr = text(&o.stderr);
    assert_eq!(status_of(&o), 2, "{stderr}");
    assert!(stderr.contains("network kind `nic`"), "{stderr}");
    let json = read_json(&out);
    assert_eq!(json["outcome"], "aborted");
    assert_eq!(json["summary"]["not_run"], 4);
    let cases = junit_cases(&out);
    assert_eq!(cases.len(), 4);
    for (name, status, msg) in cases {
        assert_eq!(status, "skipped", "{name}");
        assert!(msg.unwrap().starts_with("not run: "), "{name}");
    }
}

#[test]
fn a_broken_bench_file_exits_3_naming_the_file_the_line_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("broken.toml");
    std::fs::write(
        &bench,
        "[bench]\nname = \"broken\"\n\n[target]\nkind = \"sim\"\nagnet = \"auto\"\n\n[network]\nkind = \"loopback\"\n",
    )
    .unwrap();
    let o = run_bounded(
        rig(&[
            "run",
            "--bench",
            bench.to_str().unwrap(),
            "--out",
            dir.path().to_str().unwrap(),
        ]),
        Duration::from_secs(30),
    );
    let stderr = text(&o.stderr);
    assert_eq!(status_of(&o), 3, "{stderr}");
    assert!(
        stderr.contains(&format!("{}:6:", bench.display())),
        "should name file and line: {stderr}"
    );
    assert!(
        stderr.contains("target.agnet"),
        "should name the field: {stderr}"
    );
    assert!(stderr.contains("agent"), "should suggest the key: {stderr}");
    assert!(
        !dir.path().join("junit.xml").exists(),
        "no run should have started"
    );
}

#[test]
fn a_broken_suite_file_exits_3_naming_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("bad.toml");
    std::fs::write(
        &suite,
        "[suite]\nname = \"bad\"\ncases = [\"LightweightM2M-1.1-int-1011\"]\n",
    )
    .unwrap();
    let o = run_bounded(
        rig(&[
            "run",
            suite.to_str().unwrap(),
            "--bench",
            "hardware/loopback.toml",
        ]),
        Duration::from_secs(30),
    );
    let stderr = text(&o.stderr);
    assert_eq!(status_of(&o), 3, "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3:", suite.display())),
        "{stderr}"
    );
    assert!(stderr.contains("suite.cases[0]"), "{stderr}");
}

#[test]
fn usage_errors_exit_3_and_help_and_version_exit_0() {
    for args in [
        &["run", "--no-such-flag"][..],
        &["frobnicate"],
        &[],
        &["run", "--time-scale", "0"],
    ] {
        let o = run_bounded(rig(args), Duration::from_secs(30));
        assert_eq!(status_of(&o), 3, "rig {args:?}: {}", text(&o.stderr));
    }
    for args in [
        &["--help"][..],
        &["--version"],
        &["run", "--help"],
        &["list", "--help"],
    ] {
        let o = run_bounded(rig(args), Duration::from_secs(30));
        assert_eq!(status_of(&o), 0, "rig {args:?}: {}", text(&o.stderr));
    }
    let o = run_bounded(rig(&["run", "--help"]), Duration::from_secs(30));
    let help = text(&o.stdout);
    assert!(
        help.contains("Examples:") && help.contains("suites/smoke.toml"),
        "{help}"
    );
}

#[test]
fn a_filter_that_matches_nothing_is_an_error_unless_empty_runs_are_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_bounded(
        rig(&[
            "run",
            "--bench",
            "hardware/loopback.toml",
            "--filter",
            "nothing*",
        ]),
        Duration::from_secs(30),
    );
    let stderr = text(&o.stderr);
    assert_eq!(status_of(&o), 3, "{stderr}");
    assert!(stderr.contains("no case planned"), "{stderr}");

    ensure_agent();
    let out = dir.path().join("run");
    let o = run_bounded(
        rig(&[
            "run",
            "--bench",
            "hardware/loopback.toml",
            "--filter",
            "nothing*",
            "--allow-empty",
            "--out",
            out.to_str().unwrap(),
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(status_of(&o), 0, "{}", text(&o.stderr));
    assert_eq!(read_json(&out)["summary"]["planned"], 0);
    assert!(junit_cases(&out).is_empty());
}

#[test]
fn list_doctor_and_completions_work_on_the_loopback_bench() {
    ensure_agent();
    let o = run_bounded(
        rig(&["list", "--bench", "hardware/loopback.toml"]),
        Duration::from_secs(30),
    );
    let stdout = text(&o.stdout);
    assert_eq!(status_of(&o), 0, "{}", text(&o.stderr));
    let row = stdout
        .lines()
        .find(|l| l.contains("LightweightM2M-1.1-int-101"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        row.contains("Initial Registration") && row.contains("lwm2m"),
        "{row}"
    );
    assert!(row.trim_end().ends_with("yes"), "{row}");

    let o = run_bounded(
        rig(&["doctor", "--bench", "hardware/loopback.toml"]),
        Duration::from_secs(30),
    );
    let stdout = text(&o.stdout);
    assert_eq!(status_of(&o), 0, "{stdout}");
    assert!(stdout.contains('✓'), "{stdout}");

    let o = run_bounded(rig(&["completions", "bash"]), Duration::from_secs(30));
    assert_eq!(status_of(&o), 0);
    assert!(text(&o.stdout).contains("rig"));
}

#[test]
fn list_and_help_output_match_their_snapshots() {
    let o = run_bounded(
        rig(&[
            "list",
            "suites/smoke.toml",
            "--bench",
            "hardware/loopback.toml",
        ]),
        Duration::from_secs(30),
    );
    assert_eq!(status_of(&o), 0, "{}", text(&o.stderr));
    insta::assert_snapshot!("list_smoke_loopback", text(&o.stdout));
    // The command-line contract (flags, defaults, exit codes) as users see it.
    let o = run_bounded(rig(&["run", "--help"]), Duration::from_secs(30));
    insta::assert_snapshot!("run_help", text(&o.stdout));
}

/// Up and down frame counts and byte sums of a pcap, as tshark reads it,
/// split by the Ethernet source (the DUT's MAC is up).
fn tshark_counts(pcap: &Path, dut_mac: &str) -> [(u64, u64); 2] {
    let o = run_bounded(
        {
            let mut c = Command::new("tshark");
            c.args(["-r", pcap.to_str().unwrap(), "-T", "fields"])
                .args(["-e", "eth.src", "-e", "frame.len"]);
            c
        },
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "tshark: {}", text(&o.stderr));
    let mut counts = [(0, 0); 2];
    for line in text(&o.stdout).lines() {
        let (src, len) = line.split_once('\t').unwrap();
        let dir = usize::from(src != dut_mac);
        counts[dir].0 += 1;
        counts[dir].1 += len.trim().parse::<u64>().unwrap();
    }
    counts
}

/// The default bench runs on the simulated network: the agent in its own
/// namespace, every case captured and measured, and the figures equal
/// tshark's on the case's capture. Without the capabilities (not root), the
/// run falls back to loopback with a warning and reports no net.* figures.
#[test]
fn the_smoke_suite_on_the_simulated_network_captures_and_measures_each_case() {
    ensure_agent();
    let privileged = rig_net::check_capabilities().is_ok();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // The shipped default bench, as a user runs it.
    let bench = root().join("hardware/sim.toml");
    let child = rig(&[
        "run",
        "suites/smoke.toml",
        "--bench",
        bench.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let rig_pid = child.id();
    let o = wait_bounded(child, Duration::from_secs(180));
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(status_of(&o), 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("4 passed, 0 failed"), "{stdout}");
    let json = read_json(&out);
    let cases = json["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    if !privileged {
        assert!(
            stderr.contains("falling back to the loopback network"),
            "{stderr}"
        );
        assert!(stderr.contains("CAP_NET_ADMIN"), "{stderr}");
        for case in cases {
            assert!(measurement(case, "net.packets.up").is_none(), "{case}");
        }
        assert!(!out.join("captures").exists());
        return;
    }
    assert!(!stderr.contains("falling back"), "{stderr}");
    // The agent was told the services' address on the simulated link.
    let console = std::fs::read_to_string(out.join("console/dut.log")).unwrap();
    assert!(
        console.contains("--server coap://10.77.0.1:5683"),
        "{console}"
    );
    assert!(out.join("captures/run.pcap").is_file());
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let pcap = format!("captures/{id}.pcap");
        assert!(out.join(&pcap).is_file(), "missing {pcap}");
        assert!(
            case["artifacts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["kind"] == "pcap" && a["path"] == pcap.as_str()),
            "{case}"
        );
        for name in [
            "net.packets.up",
            "net.packets.down",
            "net.l2_bytes.up",
            "net.l2_bytes.down",
            "net.l3_bytes.up",
            "net.l3_bytes.down",
        ] {
            assert!(measurement(case, name).is_some(), "{id}: no {name}");
        }
        assert!(
            measurement(case, "net.packets.up").unwrap() >= 1.0,
            "{case}"
        );
    }
    // int-102 (registration update) has traffic both ways: rig's figures
    // must be tshark's on the same capture. The DUT's MAC is fixed.
    let case = &cases[1];
    let id = case["id"].as_str().unwrap();
    let [up, down] = tshark_counts(
        &out.join(format!("captures/{id}.pcap")),
        "02:72:69:67:00:02",
    );
    assert!(up.0 > 0 && down.0 > 0, "{up:?} {down:?}");
    assert_eq!(measurement(case, "net.packets.up"), Some(up.0 as f64));
    assert_eq!(measurement(case, "net.l2_bytes.up"), Some(up.1 as f64));
    assert_eq!(measurement(case, "net.packets.down"), Some(down.0 as f64));
    assert_eq!(measurement(case, "net.l2_bytes.down"), Some(down.1 as f64));
    // No namespace of this run is left behind.
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let ours = format!("rig-{rig_pid}-");
    assert!(
        !text(&left.stdout).lines().any(|l| l.starts_with(&ours)),
        "{}",
        text(&left.stdout)
    );
}
