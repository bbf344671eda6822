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
}

impl AgentDut {
    fn new(silent: bool) -> Self {
        AgentDut {
            child: None,
            log: Arc::default(),
            silent,
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
