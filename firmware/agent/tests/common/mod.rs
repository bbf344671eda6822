//! Helpers shared by the agent's integration tests: the real `rig-agent`
//! binary, its stdout read line by line, every wait bounded.

#![allow(dead_code, clippy::panic, clippy::unwrap_used)] // each test file uses a subset; test helpers may panic

pub(crate) mod dut;

/// `pass! { name => n, time_scale; ... }`: one test per ETS case, each
/// running [`dut::passes`].
#[allow(unused_macros)] // only the case-list test files use it
macro_rules! pass {
    ($($name:ident => $n:expr, $scale:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            common::dut::passes($n, $scale).await;
        }
    )*};
}

use std::ffi::OsStr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// The agent binary, its stdout read line by line with a deadline. Dropping
/// it kills the agent.
pub(crate) struct Agent {
    _child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    /// Every console line read so far.
    pub(crate) seen: Vec<String>,
    wait: Duration,
}

impl Agent {
    /// Starts `rig-agent <args>`; [`Agent::expect`] waits at most `wait`.
    pub(crate) fn spawn<S: AsRef<OsStr>>(args: &[S], wait: Duration) -> Agent {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rig-agent"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Agent {
            _child: child,
            stdout,
            seen: Vec::new(),
            wait,
        }
    }

    /// Starts `rig-agent --server <uri> --endpoint <ep> <args>`.
    pub(crate) fn with_server(uri: &str, ep: &str, args: &[String], wait: Duration) -> Agent {
        let mut all = vec![
            "--server".to_string(),
            uri.to_string(),
            "--endpoint".to_string(),
            ep.to_string(),
        ];
        all.extend_from_slice(args);
        Agent::spawn(&all, wait)
    }

    /// The first console line starting with `prefix`; fails the test when
    /// none comes within the wait or the agent's stdout closes.
    pub(crate) async fn expect(&mut self, prefix: &str) -> String {
        let wait = self.wait;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let line = tokio::time::timeout_at(deadline, self.stdout.next_line())
                .await
                .unwrap_or_else(|_| {
                    panic!("no line {prefix:?} within {wait:?}; saw {:?}", self.seen)
                })
                .unwrap()
                .unwrap_or_else(|| panic!("agent stdout closed; saw {:?}", self.seen));
            self.seen.push(line.clone());
            if line.starts_with(prefix) {
                return line;
            }
        }
    }
}
