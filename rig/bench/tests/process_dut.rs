//! ProcessDut against real processes (`sh` scripts): console capture, expect
//! with timeout, profile actions, dead-process detection, and stopping a
//! process that ignores SIGTERM. Every wait is bounded.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rig_bench::BenchError;
use rig_bench::diag::SourceFile;
use rig_bench::dut::{Dut, DutAction, DutConfig};
use rig_bench::file::Bench;
use rig_bench::profile::Profile;
use rig_bench::target::{ProcessDut, ProcessSpec, open};
use rig_bench::template::Template;

fn config() -> DutConfig {
    DutConfig {
        endpoint: "ep-1".into(),
        server_uri: "coap://127.0.0.1:5999".into(),
        ssid: 1,
        lifetime_s: 60,
        binding: "U".into(),
        default_pmin_s: None,
        default_pmax_s: None,
        time_scale: 1.0,
        extra: BTreeMap::new(),
    }
}

fn sh(script: &str, profile: Option<&str>, log: &Path) -> ProcessDut {
    let spec = ProcessSpec {
        command: ["sh", "-c", script]
            .iter()
            .map(|s| {
                Template::parse(&s.replace('{', "{{").replace('}', "}}"), false).expect("escaped")
            })
            .collect(),
        cwd: std::env::temp_dir(),
        env: BTreeMap::new(),
        agent_args: false,
    };
    let profile =
        profile.map(|p| Profile::parse(&SourceFile::new("p.toml", p)).expect("valid profile"));
    ProcessDut::new(spec, profile, Duration::from_secs(5), Some(log)).expect("console log")
}

/// A tiny line-driven "device": answers `ping X` with `pong X`, `bad` with an
/// error line, `quit` by exiting.
const ECHO_DEVICE: &str = r#"echo ready
while read -r l; do
  case "$l" in
    ping*) echo "pong ${l#ping }" ;;
    bad) echo "error bad: refused" ;;
    quit) echo bye; exit 0 ;;
    *) echo "unknown $l" >&2 ;;
  esac
done"#;

const ECHO_PROFILE: &str = r#"
[profile]
name = "echo"
ready = "ready"
stop = "quit"
fail = "error "
[actions.ping]
send = "ping {0}"
expect = "pong"
timeout_s = 5
[actions.bad]
send = "bad"
expect = "never printed"
timeout_s = 5
[actions.reboot]
send = "ping reboot-{endpoint}"
expect = "pong reboot-ep-1"
timeout_s = 5
"#;

#[tokio::test]
async fn captures_the_console_and_drives_profile_actions() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("console/dut.log");
    let mut dut = sh(ECHO_DEVICE, Some(ECHO_PROFILE), &log);
    dut.start(&config()).await.unwrap();
    assert!(dut.is_running());

    dut.act(&DutAction::Custom("ping".into(), vec!["one".into()]))
        .await
        .unwrap();
    // A placeholder from the DUT configuration in an action line.
    dut.act(&DutAction::Reboot).await.unwrap();
    let mark = dut.console().mark();
    dut.act(&DutAction::Custom("ping".into(), vec!["two".into()]))
        .await
        .unwrap();
    assert!(dut.console().since(mark).contains("out] pong two"));

    // The DUT's failure pattern ends the action at once.
    let t = Instant::now();
    let err = dut
        .act(&DutAction::Custom("bad".into(), vec![]))
        .await
        .unwrap_err();
    assert!(matches!(err, BenchError::ActionFailed { .. }), "{err}");
    assert!(err.to_string().contains("error bad: refused"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(4));

    // Wrong arity and unknown actions are errors, not hangs.
    assert!(matches!(
        dut.act(&DutAction::Custom("ping".into(), vec![])).await,
        Err(BenchError::Template(_))
    ));
    assert!(!dut.supports(&DutAction::FactoryReset));
    assert!(matches!(
        dut.act(&DutAction::FactoryReset).await,
        Err(BenchError::Unsupported(_))
    ));

    dut.stop().await.unwrap();
    assert!(!dut.is_running());
    let text = std::fs::read_to_string(&log).unwrap();
    for needle in [
        "out] ready",
        "rig] sent: ping one",
        "out] pong one",
        "out] pong reboot-ep-1",
        "out] bye",
        "exited with status 0",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    // The polite `quit` sufficed: no signal was needed.
    assert!(!text.contains("SIGTERM"), "{text}");
}

#[tokio::test]
async fn expect_times_out_with_the_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut dut = sh("echo hello; sleep 30", None, &dir.path().join("dut.log"));
    dut.start(&config()).await.unwrap();
    let t = Instant::now();
    let err = dut
        .expect_console("never", Duration::from_millis(300))
        .await
        .unwrap_err();
    let elapsed = t.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert!(matches!(err, BenchError::ConsoleTimeout { .. }));
    assert!(err.to_string().contains("last line: `hello`"), "{err}");
    // `hello` is still there for a later expectation? No: the timed-out wait
    // consumed it. A new line is needed.
    dut.stop().await.unwrap();
}

#[tokio::test]
async fn a_dead_dut_fails_expectations_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut dut = sh(
        "echo starting; echo oops >&2; exit 3",
        None,
        &dir.path().join("dut.log"),
    );
    dut.start(&config()).await.unwrap();
    // Matches stderr too (no profile says otherwise).
    dut.expect_console("oops", Duration::from_secs(5))
        .await
        .unwrap();
    let t = Instant::now();
    let err = dut
        .expect_console("registered", Duration::from_secs(20))
        .await
        .unwrap_err();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "waited {:?}",
        t.elapsed()
    );
    let msg = err.to_string();
    assert!(msg.contains("exited with status 3"), "{msg}");
    assert!(msg.contains("last line: `oops`"), "{msg}");
    assert!(!dut.is_running());
    assert!(dut.console().tail(1).contains("exited with status 3"));
    // Stopping a dead DUT is fine.
    dut.stop().await.unwrap();
}

#[tokio::test]
async fn a_process_ignoring_sigterm_is_killed_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("dut.log");
    let mut dut = sh(
        "trap '' TERM; echo up; while :; do sleep 0.2; done",
        None,
        &log,
    );
    dut.start(&config()).await.unwrap();
    dut.expect_console("up", Duration::from_secs(5))
        .await
        .unwrap();
    let t = Instant::now();
    dut.stop().await.unwrap();
    let elapsed = t.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(10),
        "{elapsed:?}"
    );
    assert!(!dut.is_running());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("sending SIGKILL"), "{text}");
    assert!(text.contains("killed by signal 9"), "{text}");
}

#[tokio::test]
async fn process_bench_substitutes_placeholders_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let bench_path = dir.path().join("bench.toml");
    std::fs::write(
        &bench_path,
        r#"
[bench]
name = "p"
[target]
kind = "process"
command = ["sh", "-c", "echo ep=$0 host=$1 port=$2 lt=$3 env=$RIG_EP; sleep 30", "{endpoint}", "{server_host}", "{server_port}", "{lifetime}"]
env = { RIG_EP = "x-{endpoint}" }
"#,
    )
    .unwrap();
    let bench = Bench::load(&bench_path).unwrap();
    let evidence = dir.path().join("run");
    let mut dut = open(&bench, &evidence).unwrap();
    dut.start(&config()).await.unwrap();
    let line = dut
        .expect_console("ep=", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(line, "ep=ep-1 host=127.0.0.1 port=5999 lt=60 env=x-ep-1");
    assert_eq!(dut.console().path(), Some(evidence.join("console/dut.log")));
    assert!(dut.identity()["command"].contains("ep-1"));
    dut.stop().await.unwrap();
    // A placeholder with no value for this case is a clear error at start.
    let mut c = config();
    c.extra.insert("psk_identity".into(), "id".into());
    std::fs::write(
        &bench_path,
        "[bench]\nname = \"p\"\n[target]\nkind = \"process\"\ncommand = [\"sh\", \"{psk_key_file}\"]\n",
    )
    .unwrap();
    let bench = Bench::load(&bench_path).unwrap();
    let mut dut = open(&bench, &evidence).unwrap();
    let err = dut.start(&c).await.unwrap_err();
    assert!(err.to_string().contains("`{psk_key_file}`"), "{err}");
}

#[tokio::test]
async fn restarting_keeps_one_log_and_a_fresh_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("dut.log");
    let mut dut = sh(ECHO_DEVICE, Some(ECHO_PROFILE), &log);
    dut.start(&config()).await.unwrap();
    dut.start(&config()).await.unwrap();
    dut.stop().await.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("out] ready").count(), 2, "{text}");
    assert_eq!(text.matches("rig] started").count(), 2, "{text}");
}

#[test]
fn unsupported_targets_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.toml");
    std::fs::write(
        &path,
        "[bench]\nname = \"x\"\n[target]\nkind = \"ssh\"\nhost = \"pi.local\"\ncommand = [\"rig-agent\"]\n",
    )
    .unwrap();
    let bench = Bench::load(&path).unwrap();
    // SSH targets open (tests/ssh.rs runs them), but not inside a namespace.
    let options = rig_bench::target::OpenOptions {
        netns: Some("rig-x".into()),
    };
    let err = rig_bench::target::open_with(&bench, dir.path(), &options)
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "a network namespace for target kind \"ssh\" is not supported yet on this build"
    );
}

#[test]
fn a_missing_agent_names_where_it_looked() {
    let err = rig_bench::target::find_agent(&rig_bench::file::AgentLocation::Path(
        "/nonexistent/rig-agent".into(),
    ))
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/rig-agent"), "{msg}");
    assert!(msg.contains("cargo build -p rig-agent"), "{msg}");
}

#[tokio::test]
async fn the_start_line_is_sent_with_placeholders_and_the_line_ending() {
    let dir = tempfile::tempdir().unwrap();
    let profile = r#"
[profile]
name = "shell"
start = "lwm2m start {endpoint} {server_port}"
ready = "got:"
line_ending = "crlf"
"#;
    // `tr` makes the carriage return visible as `R`.
    let mut dut = sh(
        "read -r l; echo \"got:$l:\" | tr '\\r' 'R'; sleep 30",
        Some(profile),
        &dir.path().join("dut.log"),
    );
    dut.start(&config()).await.unwrap();
    let text = dut.console().tail(1);
    assert!(
        text.ends_with("out] got:lwm2m start ep-1 5999R:\n"),
        "{text}"
    );
    dut.stop().await.unwrap();
}

#[tokio::test]
async fn a_dut_that_never_gets_ready_fails_start_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let profile = "[profile]\nname = \"slow\"\nready = \"ready\"\nready_timeout_s = 0.3\n";
    let spec = ProcessSpec {
        command: ["sh", "-c", "echo booting; sleep 30"]
            .iter()
            .map(|s| Template::parse(s, false).unwrap())
            .collect(),
        cwd: std::env::temp_dir(),
        env: BTreeMap::new(),
        agent_args: false,
    };
    let profile = Profile::parse(&SourceFile::new("p.toml", profile)).unwrap();
    let mut dut = ProcessDut::new(
        spec,
        Some(profile),
        Duration::from_millis(300),
        Some(&dir.path().join("dut.log")),
    )
    .unwrap();
    let t = Instant::now();
    let err = dut.start(&config()).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(
        err.to_string()
            .contains("did not show `ready` within 0.3 s (last line: `booting`)"),
        "{err}"
    );
    dut.stop().await.unwrap();
    assert!(!dut.is_running());
}
