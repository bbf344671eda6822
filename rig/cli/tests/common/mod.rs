//! Helpers shared by the CLI's end-to-end tests: where the workspace is, the
//! real `rig` binary (with `rig-agent` next to it), and bounded waits on child
//! processes (a child that runs too long is killed and the test fails).

#![allow(dead_code, clippy::panic, clippy::unwrap_used)] // each test file uses a subset; test helpers may panic

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The `rig` binary under test.
pub(crate) const RIG: &str = env!("CARGO_BIN_EXE_rig");

/// The workspace root: bench and suite paths in tests are relative to it.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// Makes sure `rig-agent` sits next to `rig` (where rig-bench looks for it).
/// `cargo xtask test` builds the whole workspace first; a plain
/// `cargo test -p rig` may not have, so build it once here.
pub(crate) fn ensure_agent() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let agent = Path::new(RIG).with_file_name("rig-agent");
    BUILT.get_or_init(|| {
        if agent.is_file() {
            return;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "rig-agent"])
            .current_dir(root())
            .status()
            .expect("run cargo build -p rig-agent");
        assert!(status.success(), "cargo build -p rig-agent failed");
        assert!(
            agent.is_file(),
            "{} still missing after the build",
            agent.display()
        );
    });
    agent
}

pub(crate) fn rig(args: &[&str]) -> Command {
    let mut c = Command::new(RIG);
    // A fixed width keeps help text (wrapped by clap) the same everywhere.
    c.args(args)
        .current_dir(root())
        .env_remove("RIG_AGENT")
        .env_remove("RIG_LEASE_DIR")
        .env_remove("RIG_SCAN_DEV")
        .env("COLUMNS", "100");
    c
}

/// Waits for a child at most `limit`, killing it (and failing) past that.
pub(crate) fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "rig ran longer than {limit:?}; stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a command to its end, at most `limit` (see [`wait_bounded`]).
pub(crate) fn run_bounded(
    mut cmd: impl std::borrow::BorrowMut<Command>,
    limit: Duration,
) -> Output {
    let child = cmd
        .borrow_mut()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_bounded(child, limit)
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn status_of(out: &Output) -> i32 {
    out.status
        .code()
        .unwrap_or_else(|| panic!("rig died by a signal: {:?}", out.status))
}

/// The run's `run.json`, which must parse.
pub(crate) fn read_json(dir: &Path) -> serde_json::Value {
    let raw = std::fs::read_to_string(dir.join("run.json")).unwrap();
    serde_json::from_str(&raw).unwrap_or_else(|e| panic!("run.json invalid: {e}\n{raw}"))
}

/// `(name, status element or "success", message)` of each testcase in
/// junit.xml, which must parse.
pub(crate) fn junit_cases(dir: &Path) -> Vec<(String, String, Option<String>)> {
    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml)
        .unwrap_or_else(|e| panic!("junit.xml is not well-formed: {e}\n{xml}"));
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|tc| {
            let name = tc.attribute("name").unwrap().to_string();
            let status = tc.children().find(|c| {
                c.is_element() && ["failure", "error", "skipped"].contains(&c.tag_name().name())
            });
            match status {
                None => (name, "success".to_string(), None),
                Some(s) => (
                    name,
                    s.tag_name().name().to_string(),
                    s.attribute("message").map(str::to_string),
                ),
            }
        })
        .collect()
}

/// The value of measurement `name` of a run.json case, if it has one.
pub(crate) fn measurement(case: &serde_json::Value, name: &str) -> Option<f64> {
    case["measurements"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["value"].as_f64())
}
