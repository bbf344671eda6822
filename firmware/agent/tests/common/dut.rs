//! The agent binary as a rig-suite DUT over real UDP on loopback, and
//! `run_case`, which runs an ETS case the way the engine does (start state,
//! then body, under the case timeout divided by the time scale). Shared by
//! the case and strictness tests; the bench's own targets and the whole CLI
//! are tested by rig-bench and rig.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rig_bench::BenchError;
use rig_bench::dut::{ConsoleLog, Dut, DutAction, DutConfig};
use rig_services::lwm2m::{Lwm2mServer, ServerConfig};
use rig_suite::case::{CaseContext, CaseFailure, SecureBinder, SecurityContext};
use rig_suite::{cases, start};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// Console lines, shared with the reader task.
#[derive(Default)]
pub(crate) struct Log(Mutex<Vec<String>>);

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

/// The agent as a child process, started with the bench's own mapping of a
/// provisioning to agent options (`rig_bench::target::agent_args`) plus
/// `extra` arguments (test-only `--deviate` switches and the like).
pub(crate) struct AgentDut {
    child: Option<(Child, ChildStdin)>,
    log: Arc<Log>,
    extra: Vec<String>,
    silent: bool,
}

impl AgentDut {
    /// An agent started with `extra` arguments.
    pub(crate) fn new(extra: &[&str]) -> Self {
        AgentDut {
            child: None,
            log: Arc::default(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            silent: false,
        }
    }

    /// An agent with each of `switches` as a `--deviate` switch.
    pub(crate) fn deviating(switches: &[&str]) -> Self {
        let extra: Vec<&str> = switches.iter().flat_map(|s| ["--deviate", s]).collect();
        AgentDut::new(&extra)
    }

    /// A DUT that starts but never talks to the server: the agent is
    /// pointed at a closed port.
    pub(crate) fn silent() -> Self {
        AgentDut {
            silent: true,
            ..AgentDut::new(&[])
        }
    }
}

#[async_trait]
impl Dut for AgentDut {
    async fn start(&mut self, c: &DutConfig) -> Result<(), BenchError> {
        self.stop().await?;
        let mut c = c.clone();
        if self.silent {
            c.server_uri = "coap://127.0.0.1:9".to_string();
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_rig-agent"))
            .args(rig_bench::target::agent_args(&c))
            .args(&self.extra)
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

    /// Only `Custom("send", paths)`: the console line `send <paths>`, then
    /// `ok send` or `error send: ...` within 5 s.
    async fn act(&mut self, action: &DutAction) -> Result<(), BenchError> {
        let DutAction::Custom(name, args) = action else {
            return Err(BenchError::Unsupported(format!("{action:?}")));
        };
        if name != "send" {
            return Err(BenchError::Unsupported(format!("{action:?}")));
        }
        let mark = self.log.mark();
        let Some((_, stdin)) = self.child.as_mut() else {
            return Err(BenchError::Unsupported("the agent is not running".into()));
        };
        let line = format!("send {}\n", args.join(" "));
        stdin.write_all(line.as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let since = self.log.since(mark);
            if since.lines().any(|l| l.starts_with("ok send")) {
                return Ok(());
            }
            if let Some(l) = since.lines().find(|l| l.starts_with("error send")) {
                return Err(BenchError::ActionFailed {
                    action: "send".into(),
                    line: l.to_string(),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BenchError::ConsoleTimeout {
                    pattern: "ok send".into(),
                    timeout: Duration::from_secs(5),
                    last_line: None,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn supports(&self, action: &DutAction) -> bool {
        matches!(action, DutAction::Custom(name, _) if name == "send")
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

/// A fresh server on loopback with `config`, the test credentials
/// (`fixtures/credentials`) and a loopback DTLS binder, and `dut`.
pub(crate) async fn context_with(config: ServerConfig, ep: &str, dut: AgentDut) -> CaseContext {
    let time_scale = config.time_scale;
    let server = Lwm2mServer::bind_with("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let (progress, _rx) = tokio::sync::mpsc::unbounded_channel();
    let credentials =
        rig_bench::file::SecuritySpec::defaults(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
    CaseContext {
        server,
        dut: Box::new(dut),
        endpoint: ep.to_string(),
        time_scale,
        measurements: Vec::new(),
        progress,
        security: SecurityContext {
            binder: Some(SecureBinder::loopback()),
            credentials: Some(Arc::new(credentials)),
            ..SecurityContext::default()
        },
        net: Default::default(),
        params: Default::default(),
        params_source: String::new(),
        power: None,
    }
}

/// [`context_with`] the server's defaults at `time_scale`.
pub(crate) async fn context(time_scale: f64, ep: &str, dut: AgentDut) -> CaseContext {
    let config = ServerConfig {
        time_scale,
        ..ServerConfig::default()
    };
    context_with(config, ep, dut).await
}

/// The id of ETS case `n` (`101`, `7`, `771-coap`...).
pub(crate) fn id(n: impl std::fmt::Display) -> String {
    format!("LightweightM2M-1.1-int-{n}")
}

/// Runs case `id` the way the engine does: start state, then body, under
/// the case timeout divided by the time scale (at least 20 s; whole for a
/// case with `unscaled_timeout`); stops the DUT and the server after.
pub(crate) async fn run_case(id: &str, cx: &mut CaseContext) -> Result<(), CaseFailure> {
    let case = cases::find(id).unwrap_or_else(|| panic!("{id} is not in the library"));
    let timeout = if case.meta.unscaled_timeout {
        case.meta.timeout
    } else {
        case.meta
            .timeout
            .div_f64(cx.time_scale)
            .max(Duration::from_secs(20))
    };
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
    cx.server.shutdown();
    result
}

/// Runs case `n` against an agent with `extra` arguments at `time_scale`,
/// with a 10 s operation timeout (the DM cases' reads and writes).
pub(crate) async fn run(n: u16, time_scale: f64, extra: &[&str]) -> Result<(), CaseFailure> {
    let ep = format!("dm-{n}-{}", extra.join("-"));
    let config = ServerConfig {
        time_scale,
        op_timeout: Duration::from_secs(10),
        ..ServerConfig::default()
    };
    let mut cx = context_with(config, &ep, AgentDut::new(extra)).await;
    run_case(&id(n), &mut cx).await
}

/// Runs ETS case `n` at `time_scale` against a plain agent; it must pass.
pub(crate) async fn passes(n: u16, time_scale: f64) {
    if let Err(f) = run(n, time_scale, &[]).await {
        panic!("int-{n}: {:?}: {}", f.verdict, f.message);
    }
}

/// `r`, case int-`n`'s outcome with `--deviate switch`, must be a Fail
/// whose message contains `text`.
pub(crate) fn assert_failed(
    switch: &str,
    n: impl std::fmt::Display,
    r: Result<(), CaseFailure>,
    text: &str,
) {
    let Err(f) = r else {
        panic!("--deviate {switch}: int-{n} passed; it must fail");
    };
    assert_eq!(
        f.verdict,
        rig_report::events::Verdict::Fail,
        "--deviate {switch}, int-{n}: {}",
        f.message
    );
    assert!(
        f.message.contains(text),
        "--deviate {switch}, int-{n}: {:?} lacks {text:?}",
        f.message
    );
}

/// Runs `failing` (each must Fail with its text) and `passing` (each must
/// pass) against an agent with `--deviate switch`, at `time_scale`.
pub(crate) async fn caught(
    switch: &str,
    time_scale: f64,
    failing: &[(u16, &str)],
    passing: &[u16],
) {
    let args = ["--deviate", switch];
    for (n, text) in failing {
        assert_failed(switch, n, run(*n, time_scale, &args).await, text);
    }
    for n in passing {
        if let Err(f) = run(*n, time_scale, &args).await {
            panic!(
                "--deviate {switch}: int-{n} must still pass, got {:?}: {}",
                f.verdict, f.message
            );
        }
    }
}
