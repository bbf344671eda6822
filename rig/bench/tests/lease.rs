//! Bench leases between threads and processes: a busy bench fails at once
//! naming its holder or waits (bounded); stale leases (dead pid, old
//! heartbeat, past maximum hold) are taken over with a warning; the heartbeat
//! advances; release removes the file.

#![allow(clippy::unwrap_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rig_bench::lock::{Lease, LeaseOptions, LeaseRecord, host_name, lease_path};

fn setup() -> (tempfile::TempDir, PathBuf, LeaseOptions) {
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("nrf9160dk.toml");
    std::fs::write(&bench, "[bench]\nname = \"x\"\n").unwrap();
    let options = LeaseOptions {
        dir: Some(dir.path().join("leases")),
        heartbeat_every: Duration::from_millis(50),
        purpose: "rig run suites/smoke.toml".into(),
        ..LeaseOptions::default()
    };
    (dir, bench, options)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn plant(path: &Path, pid: i32, started: f64, heartbeat: f64, max_hold_s: f64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let rec = LeaseRecord {
        bench: "b".into(),
        pid,
        host: host_name(),
        purpose: "rig run other".into(),
        token: "planted".into(),
        started,
        heartbeat,
        max_hold_s,
    };
    std::fs::write(path, toml::to_string(&rec).unwrap()).unwrap();
}

#[test]
fn a_second_run_fails_at_once_naming_the_holder_then_gets_it_after_release() {
    let (_d, bench, options) = setup();
    let first = Lease::acquire(&bench, &options).unwrap();
    assert!(first.took_over().is_none());
    assert!(first.path().exists());
    let e = Lease::acquire(&bench, &options).unwrap_err().to_string();
    assert!(e.contains("is in use by pid"), "{e}");
    assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
    assert!(e.contains("rig run suites/smoke.toml"), "{e}");
    assert!(e.contains("pass --wait"), "{e}");
    let path = first.path().to_path_buf();
    first.release().unwrap();
    assert!(!path.exists());
    let again = Lease::acquire(&bench, &options).unwrap();
    drop(again);
    assert!(!path.exists(), "dropping releases");
}

#[test]
fn a_waiting_run_gets_the_bench_when_the_holder_releases() {
    let (_d, bench, options) = setup();
    let first = Lease::acquire(&bench, &options).unwrap();
    let releaser = first.releaser();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        releaser.release().unwrap();
        drop(first);
    });
    let start = Instant::now();
    let waiting = LeaseOptions {
        wait: Some(Duration::from_secs(10)),
        ..options.clone()
    };
    let second = Lease::acquire(&bench, &waiting).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(350));
    assert!(start.elapsed() < Duration::from_secs(5));
    t.join().unwrap();
    // Bounded wait when the holder stays.
    let short = LeaseOptions {
        wait: Some(Duration::from_millis(300)),
        ..options
    };
    let e = Lease::acquire(&bench, &short).unwrap_err().to_string();
    assert!(e.contains("after waiting 0.3 s"), "{e}");
    drop(second);
}

#[test]
fn a_lease_of_a_dead_process_is_taken_over_with_a_warning() {
    let (d, bench, options) = setup();
    let path = lease_path(&bench, &d.path().join("leases"));
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    plant(&path, pid, now(), now(), 3600.0);
    // While the other process lives, the bench is busy.
    let e = Lease::acquire(&bench, &options).unwrap_err().to_string();
    assert!(e.contains(&format!("pid {pid}")), "{e}");
    child.kill().unwrap();
    child.wait().unwrap();
    let lease = Lease::acquire(&bench, &options).unwrap();
    let w = lease.took_over().unwrap();
    assert!(w.contains(&format!("its process {pid} is gone")), "{w}");
}

#[test]
fn an_old_heartbeat_or_an_overlong_hold_makes_a_lease_stale() {
    let (d, bench, options) = setup();
    let path = lease_path(&bench, &d.path().join("leases"));
    let me = i32::try_from(std::process::id()).unwrap();
    plant(&path, me, now() - 7200.0, now() - 3600.0, 86400.0);
    let lease = Lease::acquire(&bench, &options).unwrap();
    assert!(
        lease
            .took_over()
            .unwrap()
            .contains("last heartbeat was 3600 s ago")
    );
    drop(lease);
    plant(&path, me, now() - 100.0, now(), 10.0);
    let lease = Lease::acquire(&bench, &options).unwrap();
    assert!(
        lease
            .took_over()
            .unwrap()
            .contains("held past its maximum of 10 s"),
        "{:?}",
        lease.took_over()
    );
}

#[test]
fn the_heartbeat_advances_and_a_taken_lease_is_noticed() {
    let (_d, bench, options) = setup();
    let lease = Lease::acquire(&bench, &options).unwrap();
    let read = || -> LeaseRecord {
        toml::from_str(&std::fs::read_to_string(lease.path()).unwrap()).unwrap()
    };
    let h0 = read().heartbeat;
    let deadline = Instant::now() + Duration::from_secs(5);
    while read().heartbeat <= h0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(read().heartbeat > h0, "heartbeat did not advance");
    // Someone else overwrites the lease: the holder learns it lost it.
    plant(lease.path(), 1, now(), now(), 3600.0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !lease.is_lost() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(lease.is_lost());
    let path = lease.path().to_path_buf();
    drop(lease);
    assert!(path.exists(), "a lost lease is not ours to remove");
}
