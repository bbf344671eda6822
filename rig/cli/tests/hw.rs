//! End-to-end tests of the real-hardware side of the real `rig` binary, on
//! what this machine has (no probe, no serial port, no I2C bus):
//!
//! - `rig bench scan` says clearly that nothing is attached, still prints a
//!   skeleton, and that skeleton, filled in, is accepted by `rig doctor`;
//!   a fake `/dev` tree stands in for attached ports and buses.
//! - bench leases between two real `rig run` processes on
//!   `hardware/loopback.toml` (a private lease folder per test, through
//!   `RIG_LEASE_DIR`): busy fails at once naming the holder, or waits; a stale
//!   lease is taken over; SIGTERM releases.
//! - a DUT that dies mid-run is power-cycled through the bench's switch (a
//!   command that writes a marker file), and the run goes on.
//!
//! Every wait is bounded.

#![allow(clippy::panic, clippy::unwrap_used)] // test helpers may panic: that is how a test fails

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

mod common;
use common::*;

fn both(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    )
}

// ---------------------------------------------------------------- bench scan

/// Fills the TODOs of a skeleton so that it is a valid bench file anywhere.
fn fill(skeleton: &str) -> String {
    let profile = root().join("hardware/profiles/zephyr-shell.toml");
    skeleton
        .replace("\"TODO-bench-name\"", "\"lab-1\"")
        .replace("\"TODO-client\"", "\"sleep\"")
        .replace("\"TODO-eth1\"", "\"lo\"")
        .replace(
            "\"profiles/zephyr-shell.toml\"",
            &format!("\"{}\"", profile.display()),
        )
}

#[test]
fn bench_scan_on_an_empty_host_says_so_and_its_skeleton_passes_doctor() {
    let dir = tempfile::tempdir().unwrap();
    let dev = dir.path().join("dev");
    std::fs::create_dir(&dev).unwrap();
    let dev = dev.to_str().unwrap();

    let o = run_bounded(
        rig(&["bench", "scan"]).env("RIG_SCAN_DEV", dev),
        Duration::from_secs(30),
    );
    assert_eq!(status_of(&o), 0, "{}", both(&o));
    let out = text(&o.stdout);
    for expected in [
        "debug probes: 0",
        "serial ports by id: 0",
        "I2C buses: 0",
        "no debug probe found",
        "udev",
        "no serial port under /dev/serial/by-id/",
        "no I2C bus",
        "rig bench scan --skeleton >",
        "rig doctor --bench",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }

    let o = run_bounded(
        rig(&["bench", "scan", "--skeleton"]).env("RIG_SCAN_DEV", dev),
        Duration::from_secs(30),
    );
    assert_eq!(status_of(&o), 0, "{}", both(&o));
    let skeleton = text(&o.stdout);
    assert!(skeleton.contains("kind = \"process\""), "{skeleton}");
    assert!(skeleton.contains("TODO"), "{skeleton}");
    // As printed, the skeleton is refused by doctor (a TODO network interface
    // does not exist), but it parses: not a config error.
    let bench = dir.path().join("scanned.toml");
    std::fs::write(&bench, fill(&skeleton)).unwrap();
    let o = run_bounded(
        rig(&["doctor", "--bench", bench.to_str().unwrap()]),
        Duration::from_secs(30),
    );
    assert_ne!(
        status_of(&o),
        3,
        "the filled skeleton is valid: {}",
        both(&o)
    );
    assert!(text(&o.stdout).contains("bench `lab-1`"), "{}", both(&o));
    assert!(text(&o.stdout).contains("✓ DUT program"), "{}", both(&o));

    let o = run_bounded(
        rig(&["bench", "scan", "--json"]).env("RIG_SCAN_DEV", dev),
        Duration::from_secs(30),
    );
    assert_eq!(status_of(&o), 0, "{}", both(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["probes"].as_array().unwrap().len(), 0, "{json}");
    assert_eq!(json["serial_ports"].as_array().unwrap().len(), 0);
    assert_eq!(json["skeleton"].as_str().unwrap(), skeleton);
    assert!(json["hints"].as_array().unwrap().len() >= 3, "{json}");
}

#[test]
fn bench_scan_lists_ports_and_buses_of_a_fake_dev_tree() {
    let dir = tempfile::tempdir().unwrap();
    let dev = dir.path().join("dev");
    std::fs::create_dir_all(dev.join("serial/by-id")).unwrap();
    let port = "usb-SEGGER_J-Link_000960123456-if00";
    std::fs::write(dev.join("serial/by-id").join(port), "").unwrap();
    std::fs::write(dev.join("i2c-1"), "").unwrap();
    std::fs::write(dev.join("ttyACM0"), "").unwrap();
    let dev = dev.to_str().unwrap();

    let o = run_bounded(
        rig(&["bench", "scan"]).env("RIG_SCAN_DEV", dev),
        Duration::from_secs(30),
    );
    assert_eq!(status_of(&o), 0, "{}", both(&o));
    let out = text(&o.stdout);
    assert!(out.contains(&format!("/dev/serial/by-id/{port}")), "{out}");
    assert!(out.contains("I2C buses: 1\n  /dev/i2c-1"), "{out}");
    assert!(!out.contains("ttyACM0"), "only stable names: {out}");

    let o = run_bounded(
        rig(&["bench", "scan", "--skeleton"]).env("RIG_SCAN_DEV", dev),
        Duration::from_secs(30),
    );
    let skeleton = text(&o.stdout);
    assert!(skeleton.contains(&format!("port = \"/dev/serial/by-id/{port}\"")));
    assert!(skeleton.contains("kind = \"ina219\"") && skeleton.contains("\"/dev/i2c-1\""));
    // Filled in, it is a valid bench: doctor checks it (the port and bus do
    // not exist on this host, so checks fail with exit 2, never 3).
    let bench = dir.path().join("scanned.toml");
    std::fs::write(&bench, fill(&skeleton)).unwrap();
    let o = run_bounded(
        rig(&["doctor", "--bench", bench.to_str().unwrap()]),
        Duration::from_secs(30),
    );
    assert_eq!(status_of(&o), 2, "{}", both(&o));
    assert!(text(&o.stdout).contains("serial console"), "{}", both(&o));
}

// ---------------------------------------------------------------- leases

/// A `rig run` of the smoke suite on the loopback bench, leased in `leases`.
fn leased_run(leases: &Path, out: &Path, extra: &[&str]) -> Command {
    ensure_agent();
    let mut args = vec![
        "run",
        "suites/smoke.toml",
        "--bench",
        "hardware/loopback.toml",
        "--lease=always",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut c = rig(&args);
    c.env("RIG_LEASE_DIR", leases);
    c
}

/// Spawns a leased run and waits until it reports its first case (so it
/// holds the lease). Returns the child and its stdout lines.
fn spawn_and_wait_first_case(mut cmd: Command) -> (Child, Receiver<String>) {
    let mut child = cmd
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
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.starts_with("[1/4]")) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("no first case line within 60 s; saw {seen:?}");
            }
        }
    }
    (child, rx)
}

fn lease_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "lease"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_second_run_on_a_leased_bench_fails_at_once_naming_the_holder_or_waits() {
    let dir = tempfile::tempdir().unwrap();
    let leases = dir.path().join("leases");
    let (first, _lines) =
        spawn_and_wait_first_case(leased_run(&leases, &dir.path().join("a"), &[]));
    assert_eq!(lease_files(&leases).len(), 1);

    // Busy: exit 2 at once, naming the holder's pid, host, command and start.
    let started = Instant::now();
    let o = run_bounded(
        leased_run(&leases, &dir.path().join("b"), &[]),
        Duration::from_secs(20),
    );
    assert!(started.elapsed() < Duration::from_secs(10), "not at once");
    assert_eq!(status_of(&o), 2, "{}", both(&o));
    let err = text(&o.stderr);
    assert!(err.contains("bench busy"), "{err}");
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");
    assert!(err.contains("loopback.toml"), "{err}");
    assert!(
        err.contains("since 20"),
        "names when the lease started: {err}"
    );
    assert!(err.contains("--wait-for-bench"), "{err}");
    assert!(!dir.path().join("b/run.json").exists(), "no DUT touched");

    // `rig bench lease` shows the same holder, and exit 2 while it lives.
    let o = run_bounded(
        rig(&["bench", "lease", "--bench", "hardware/loopback.toml"]).env("RIG_LEASE_DIR", &leases),
        Duration::from_secs(20),
    );
    assert_eq!(status_of(&o), 2, "{}", both(&o));
    assert!(
        text(&o.stdout).contains(&format!("pid {}", first.id())),
        "{}",
        both(&o)
    );

    // Waiting: the third run gets the bench once the first is done.
    let third = leased_run(&leases, &dir.path().join("c"), &["--wait-for-bench=180s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o1 = wait_bounded(first, Duration::from_secs(180));
    assert_eq!(status_of(&o1), 0, "{}", both(&o1));
    let o3 = wait_bounded(third, Duration::from_secs(180));
    assert_eq!(status_of(&o3), 0, "{}", both(&o3));
    assert!(
        text(&o3.stderr).contains("waiting up to 180 s"),
        "{}",
        both(&o3)
    );
    assert!(lease_files(&leases).is_empty(), "both runs released");
}

#[test]
fn a_stale_lease_is_taken_over_and_sigterm_releases() {
    let dir = tempfile::tempdir().unwrap();
    let leases = dir.path().join("leases");
    std::fs::create_dir_all(&leases).unwrap();
    // A lease left by a killed run: its pid is gone.
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id() as i32;
    gone.wait().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let record = rig_bench::lock::LeaseRecord {
        bench: "hardware/loopback.toml".into(),
        pid,
        host: rig_bench::lock::host_name(),
        purpose: "rig run (killed CI job)".into(),
        token: "planted".into(),
        started: now - 100.0,
        heartbeat: now - 1.0,
        max_hold_s: 3600.0,
    };
    let path = rig_bench::lock::lease_path(&root().join("hardware/loopback.toml"), &leases);
    std::fs::write(&path, toml_of(&record)).unwrap();

    let (child, _lines) =
        spawn_and_wait_first_case(leased_run(&leases, &dir.path().join("a"), &[]));
    let now_held = rig_bench::lock::LeaseRecord::read(&path).unwrap().unwrap();
    assert_eq!(now_held.pid, child.id() as i32);
    // SIGTERM twice: the second quits at once, and still releases.
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let o = wait_bounded(child, Duration::from_secs(60));
    assert_eq!(status_of(&o), 4, "{}", both(&o));
    let err = text(&o.stderr);
    assert!(err.contains("took over a stale lease"), "{err}");
    assert!(
        err.contains(&format!("its process {} is gone", record.pid)),
        "{err}"
    );
    assert!(err.contains("killed CI job"), "{err}");
    assert!(!path.exists(), "SIGTERM released the lease");
}

/// The lease record as its file holds it (TOML, as rig-bench writes it).
fn toml_of(r: &rig_bench::lock::LeaseRecord) -> String {
    format!(
        "bench = {:?}\npid = {}\nhost = {:?}\npurpose = {:?}\ntoken = {:?}\nstarted = {:?}\nheartbeat = {:?}\nmax_hold_s = {:?}\n",
        r.bench, r.pid, r.host, r.purpose, r.token, r.started, r.heartbeat, r.max_hold_s
    )
}

// ---------------------------------------------------------------- power cycling

#[test]
fn a_dut_that_dies_is_power_cycled_and_the_next_case_passes() {
    let agent = ensure_agent();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The DUT: the reference agent behind a script that crashes on its second
    // start (as a board that stopped answering would).
    let script = d.join("dut.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(cat '{starts}' 2>/dev/null || echo 0)\nn=$((n+1))\necho $n > '{starts}'\n\
             if [ \"$n\" = 2 ]; then echo \"dut.sh: crashing at start $n\" >&2; exit 3; fi\n\
             exec '{agent}' \"$@\"\n",
            starts = d.join("starts").display(),
            agent = agent.display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    let marker = d.join("power-cycled");
    let bench = d.join("flaky.toml");
    std::fs::write(
        &bench,
        format!(
            "[bench]\nname = \"flaky\"\n\n[target]\nkind = \"sim\"\nagent = \"dut.sh\"\n\
             power_switch = {{ command = [\"sh\", \"-c\", \"echo cycled >> '{}'\"] }}\n\n\
             [network]\nkind = \"loopback\"\n",
            marker.display()
        ),
    )
    .unwrap();
    let out = d.join("run");
    let o = run_bounded(
        rig(&[
            "run",
            "suites/smoke.toml",
            "--bench",
            bench.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .env("RIG_LEASE_DIR", d.join("leases")),
        Duration::from_secs(240),
    );
    // One case is an error (its DUT died), so the run exits 2; it went on.
    assert_eq!(status_of(&o), 2, "{}", both(&o));
    let raw = std::fs::read_to_string(out.join("run.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let cases = json["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    let died: Vec<usize> = cases
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c["message"]
                .as_str()
                .is_some_and(|m| m.contains("the DUT stopped answering"))
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(died.len(), 1, "one case saw the DUT die: {raw}");
    let i = died[0];
    let case = &cases[i];
    assert_ne!(case["verdict"], "pass", "{case}");
    let message = case["message"].as_str().unwrap();
    assert!(
        message.contains("power-cycled it through the bench's power switch"),
        "{message}"
    );
    // The evidence: the case's console log shows the crash and the cycle.
    let log =
        std::fs::read_to_string(out.join(format!("console/{}.log", case["id"].as_str().unwrap())))
            .unwrap();
    assert!(log.contains("crashing at start 2"), "{log}");
    assert!(log.contains("power cycle: sh -c"), "{log}");
    // The switch ran exactly once, and every later case passed.
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "cycled\n");
    assert!(i < 3, "a case after the crash exists");
    for c in &cases[i + 1..] {
        assert_eq!(c["verdict"], "pass", "{c}");
    }
}
