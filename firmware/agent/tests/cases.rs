//! The ETS registration cases (rig-suite) run against the reference agent,
//! over real UDP on loopback, through a minimal process DUT defined here (the
//! bench's own targets and the whole CLI are tested by rig-bench and rig).
//! Also: a DUT that never registers makes each case end with a precise message.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rig_bench::BenchError;
use rig_bench::dut::{ConsoleLog, Dut, DutAction, DutConfig};
use rig_report::events::Verdict;
use rig_services::lwm2m::{Lwm2mServer, ServerConfig};
use rig_suite::case::{CaseContext, CaseFailure};
use rig_suite::{cases, start};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// Console lines, shared with the reader task.
#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl ConsoleLog for Log {
    fn mark(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn since(&self, mark: usize) -> String {
        self.0.lock().unwrap()[mark..].join("\n")
    }
    fn tail(&self, n: usize) -> String {
        let l = self.0.lock().unwrap();
        l[l.len().saturating_sub(n)..].join("\n")
    }
    fn path(&self) -> Option<PathBuf> {
        None
    }
}

/// The agent as a child process; `silent` makes a DUT that starts but never
/// talks to the server (it is pointed at a closed port).
struct AgentDut {
    child: Option<(Child, ChildStdin)>,
    log: Arc<Log>,
    silent: bool,
    /// Extra agent arguments (test-only `--deviate` switches).
    extra: Vec<String>,
}

impl AgentDut {
    fn new(silent: bool) -> Self {
        AgentDut {
            child: None,
            log: Arc::default(),
            silent,
            extra: Vec::new(),
        }
    }
}

#[async_trait]
impl Dut for AgentDut {
    async fn start(&mut self, c: &DutConfig) -> Result<(), BenchError> {
        self.stop().await?;
        let server = if self.silent {
            "coap://127.0.0.1:9".to_string()
        } else {
            c.server_uri.clone()
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rig-agent"));
        cmd.args(["--server", &server, "--endpoint", &c.endpoint])
            .args([
                "--lifetime",
                &c.lifetime_s.to_string(),
                "--ssid",
                &c.ssid.to_string(),
            ])
            .args([
                "--binding",
                &c.binding,
                "--time-scale",
                &c.time_scale.to_string(),
            ]);
        cmd.args(&self.extra);
        if let Some(pmin) = c.default_pmin_s {
            cmd.args(["--pmin", &pmin.to_string()]);
        }
        if let Some(pmax) = c.default_pmax_s {
            cmd.args(["--pmax", &pmax.to_string()]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| BenchError::Spawn {
                program: "rig-agent".into(),
                source,
            })?;
        let stdin = child.stdin.take().expect("piped stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let log = self.log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                log.0.lock().unwrap().push(line);
            }
        });
        self.child = Some((child, stdin));
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), BenchError> {
        if let Some((mut child, mut stdin)) = self.child.take() {
            let _ = stdin.write_all(b"quit\n").await;
            if tokio::time::timeout(Duration::from_secs(3), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        Ok(())
    }

    async fn act(&mut self, action: &DutAction) -> Result<(), BenchError> {
        Err(BenchError::Unsupported(format!("{action:?}")))
    }

    fn supports(&self, _action: &DutAction) -> bool {
        false
    }

    async fn expect_console(
        &mut self,
        pattern: &str,
        timeout: Duration,
    ) -> Result<String, BenchError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(l) = self
                .log
                .0
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(pattern))
            {
                return Ok(l.clone());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BenchError::ConsoleTimeout {
                    pattern: pattern.into(),
                    timeout,
                    last_line: None,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn console(&self) -> &dyn ConsoleLog {
        &*self.log
    }

    fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|(c, _)| c.try_wait().ok().flatten().is_none())
    }

    fn identity(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("kind".to_string(), "test-agent".to_string())])
    }
}

async fn context(time_scale: f64, silent: bool, ep: &str) -> CaseContext {
    let config = ServerConfig {
        time_scale,
        ..ServerConfig::default()
    };
    let server = Lwm2mServer::bind_with("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let (progress, _rx) = tokio::sync::mpsc::unbounded_channel();
    CaseContext {
        server,
        dut: Box::new(AgentDut::new(silent)),
        endpoint: ep.to_string(),
        time_scale,
        measurements: Vec::new(),
        progress,
        security: Default::default(),
        net: Default::default(),
        params: Default::default(),
        params_source: String::new(),
        power: None,
    }
}

/// Runs one case the way the engine does: start state, then body, under the
/// case timeout divided by the time scale.
async fn run_case(id: &str, cx: &mut CaseContext) -> Result<(), CaseFailure> {
    let case = cases::find(id).unwrap_or_else(|| panic!("{id} is not in the library"));
    let timeout = case
        .meta
        .timeout
        .div_f64(cx.time_scale)
        .max(Duration::from_secs(10));
    let result = tokio::time::timeout(timeout, async {
        start::reach(cx, case.meta.start).await?;
        (case.body)(cx).await
    })
    .await
    .unwrap_or_else(|_| {
        Err(CaseFailure::out_of_time(format!(
            "{id}: case timeout {timeout:?}"
        )))
    });
    let _ = cx.dut.stop().await;
    result
}

#[tokio::test]
async fn int_101_passes_and_measures_the_registration_latency() {
    let mut cx = context(1.0, false, "case-101").await;
    run_case("LightweightM2M-1.1-int-101", &mut cx)
        .await
        .unwrap();
    let m = cx
        .measurements
        .iter()
        .find(|m| m.name == "registration.latency_s")
        .expect("latency measured");
    assert_eq!(m.unit, "s");
    assert!(m.value > 0.0 && m.value < 5.0, "{}", m.value);
}

#[tokio::test]
async fn int_102_passes_at_time_scale_10() {
    let mut cx = context(10.0, false, "case-102").await;
    run_case("LightweightM2M-1.1-int-102", &mut cx)
        .await
        .unwrap();
    let m = cx
        .measurements
        .iter()
        .find(|m| m.name == "registration.update_interval_s")
        .expect("interval");
    // The agent updates at half the lifetime: 10 protocol seconds.
    assert!(m.value > 5.0 && m.value < 20.0, "{}", m.value);
}

#[tokio::test]
async fn int_103_passes() {
    let mut cx = context(1.0, false, "case-103").await;
    run_case("LightweightM2M-1.1-int-103", &mut cx)
        .await
        .unwrap();
    assert!(cx.server.registration("case-103").is_none());
}

#[tokio::test]
async fn int_104_passes_at_time_scale_10() {
    let mut cx = context(10.0, false, "case-104").await;
    run_case("LightweightM2M-1.1-int-104", &mut cx)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_dut_that_never_registers_fails_101_with_a_precise_message() {
    let mut cx = context(10.0, true, "mute").await;
    let started = tokio::time::Instant::now();
    let f = run_case("LightweightM2M-1.1-int-101", &mut cx)
        .await
        .unwrap_err();
    assert_eq!(f.verdict, Verdict::Fail, "{}", f.message);
    assert!(
        f.message
            .starts_with("no Register from endpoint `mute` within 5.0 s"),
        "{}",
        f.message
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_dut_that_never_registers_leaves_102_inconclusive_at_its_start_state() {
    let mut cx = context(10.0, true, "mute2").await;
    let f = run_case("LightweightM2M-1.1-int-102", &mut cx)
        .await
        .unwrap_err();
    assert_eq!(f.verdict, Verdict::Inconclusive, "{}", f.message);
    assert!(
        f.message.starts_with(
            "could not reach start state C.1: no Register from endpoint `mute2` within 5.0 s"
        ),
        "{}",
        f.message
    );
}

const IDS: [&str; 4] = [
    "LightweightM2M-1.1-int-101",
    "LightweightM2M-1.1-int-102",
    "LightweightM2M-1.1-int-103",
    "LightweightM2M-1.1-int-104",
];

/// Runs 101-104 against an agent with one planted deviation; returns the
/// failures by case id.
async fn run_with_deviation(switch: &str) -> BTreeMap<String, CaseFailure> {
    let mut failures = BTreeMap::new();
    for id in IDS {
        let ep = format!("dev-{switch}-{}", &id[id.len() - 3..]);
        let mut cx = context(10.0, false, &ep).await;
        let mut dut = AgentDut::new(false);
        dut.extra = vec!["--deviate".into(), switch.into()];
        cx.dut = Box::new(dut);
        if let Err(f) = run_case(id, &mut cx).await {
            failures.insert(id.to_string(), f);
        }
    }
    failures
}

/// Checks that exactly `expected` cases fail, each with a Fail verdict and a
/// message containing the given text.
async fn assert_caught(switch: &str, expected: &[(&str, &str)]) {
    let failures = run_with_deviation(switch).await;
    let ids: Vec<&str> = failures.keys().map(String::as_str).collect();
    let want: Vec<String> = expected
        .iter()
        .map(|(n, _)| format!("LightweightM2M-1.1-int-{n}"))
        .collect();
    assert_eq!(ids, want, "--deviate {switch}: {failures:#?}");
    for (n, text) in expected {
        let f = &failures[&format!("LightweightM2M-1.1-int-{n}")];
        assert_eq!(f.verdict, Verdict::Fail, "{n}: {}", f.message);
        assert!(
            f.message.contains(text),
            "--deviate {switch}, int-{n}: {:?} lacks {text:?}",
            f.message
        );
    }
}

#[tokio::test]
async fn security_object_in_the_register_fails_only_101() {
    assert_caught(
        "list-security-object",
        &[(
            "101",
            "expected no /0 link in the object list, saw </0>,</0/0>,</1>,</1/0>",
        )],
    )
    .await;
}

#[tokio::test]
async fn register_without_lwm2m_version_fails_only_101() {
    assert_caught(
        "no-lwm2m-version",
        &[("101", "expected lwm2m=1.1, saw no lwm2m parameter")],
    )
    .await;
}

#[tokio::test]
async fn ignored_lifetime_write_fails_102_and_104() {
    let msg = "expected an Update with lt=20 within 5.0 s of the Write; saw none";
    assert_caught("ignore-lifetime-write", &[("102", msg), ("104", msg)]).await;
}

#[tokio::test]
async fn missing_periodic_update_fails_102_and_104() {
    assert_caught(
        "no-periodic-update",
        &[
            (
                "102",
                "expected an Update within 2.0 s of the lt=20 Update; saw none",
            ),
            (
                "104",
                "still registered 2.0 s after the lt=20 Update; it is gone",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn ignored_disable_fails_only_103() {
    assert_caught(
        "ignore-disable",
        &[(
            "103",
            "expected a De-register (DELETE /rd/...) within 5.0 s of the Disable; saw none",
        )],
    )
    .await;
}

#[tokio::test]
async fn trigger_update_with_parameters_fails_only_104() {
    assert_caught(
        "trigger-update-with-params",
        &[(
            "104",
            "expected an Update with no parameters after Execute /1/0/8; saw an Update with b=U",
        )],
    )
    .await;
}
