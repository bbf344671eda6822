//! Targets: turning a bench's `[target]` into a running [`Dut`].
//!
//! [`open`] picks the implementation. Both kinds that run today are a
//! [`ProcessDut`]: `process` spawns the bench's command, `sim` spawns the
//! reference agent `rig-agent` (found by [`find_agent`]) with the rig-agent
//! device profile. `probe-rs` opens a [`crate::probe::ProbeDut`] (flash,
//! reset, serial or RTT console). `ssh` opens a [`crate::ssh::SshDut`]
//! (deploy the agent to a Linux board, run it there under a local `ssh`
//! process that is itself driven as a `ProcessDut`).
//!
//! A `ProcessDut` runs its program in its own process group, so stopping it
//! reaches every process the program started: the profile's `stop` line first
//! (if any), then SIGTERM to the group, then SIGKILL, each bounded. stdout and
//! stderr are captured line by line into the [`Console`] (`console/dut.log` in
//! the evidence folder), and a task waits for the exit so that a DUT that dies
//! is noticed at once: its status is logged and every wait on its console
//! fails with that status instead of running into its timeout.
//!
//! The library never creates a tokio runtime; `start` must be called inside
//! one (the CLI owns it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::time::Instant;

use crate::BenchError;
use crate::console::{Console, Stream};
use crate::dut::{ConsoleLog, Dut, DutAction, DutConfig};
use crate::file::{AgentLocation, Bench, TargetKind};
use crate::profile::{Profile, action_args, action_name};
use crate::template::{self, Template};

/// The console log's place in the evidence folder.
pub const CONSOLE_LOG: &str = "console/dut.log";

/// Opens the bench's target as a DUT whose console is captured into
/// `evidence_dir/console/dut.log`. Nothing is started yet: call [`Dut::start`].
pub fn open(bench: &Bench, evidence_dir: &Path) -> Result<Box<dyn Dut>, BenchError> {
    open_with(bench, evidence_dir, &OpenOptions::default())
}

/// How [`open_with`] opens a DUT, beyond what the bench file says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Run a process DUT inside this named network namespace (as `ip netns`
    /// lists it): the command is prefixed with `ip netns exec <name>`.
    pub netns: Option<String>,
}

/// As [`open`], with options (e.g. the network namespace of the simulated
/// network). Options that do not apply to the target kind are an error.
pub fn open_with(
    bench: &Bench,
    evidence_dir: &Path,
    options: &OpenOptions,
) -> Result<Box<dyn Dut>, BenchError> {
    if options.netns.is_some()
        && !matches!(
            bench.target.kind,
            TargetKind::Sim { .. } | TargetKind::Process { .. }
        )
    {
        return Err(BenchError::NotSupported {
            what: format!(
                "a network namespace for target kind \"{}\"",
                bench.target.kind.as_str()
            ),
        });
    }
    if let TargetKind::ProbeRs {
        chip,
        probe,
        firmware,
        base_address,
    } = &bench.target.kind
    {
        let job = crate::probe::FlashJob {
            chip: chip.clone(),
            probe: probe.clone(),
            firmware: firmware.clone(),
            base_address: *base_address,
            verify: true,
        };
        let mut dut = crate::probe::ProbeDut::new(
            job,
            bench.target.console.clone(),
            bench.target.profile.clone(),
            bench.timeouts.start,
            Some(&evidence_dir.join(CONSOLE_LOG)),
        )?;
        dut.set_power_switch(bench.target.power_switch.clone());
        return Ok(Box::new(dut));
    }
    if let Some(console) = &bench.target.console {
        return Err(BenchError::NotSupported {
            what: format!(
                "the serial console {} (target.console)",
                console.port.display()
            ),
        });
    }
    // `sim.toml` has the parent `` (empty), which is no directory to run in.
    let bench_dir = bench
        .path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let log = evidence_dir.join(CONSOLE_LOG);
    match &bench.target.kind {
        TargetKind::Sim { agent, args } => {
            let agent = find_agent(agent)?;
            let mut command = vec![Template::literal(&agent.display().to_string())];
            command.extend(args.iter().cloned());
            let spec = ProcessSpec {
                command,
                cwd: bench_dir,
                env: BTreeMap::new(),
                agent_args: true,
            };
            let profile = bench
                .target
                .profile
                .clone()
                .unwrap_or_else(Profile::rig_agent);
            let mut dut = ProcessDut::new(spec, Some(profile), bench.timeouts.start, Some(&log))?;
            dut.set_power_switch(bench.target.power_switch.clone());
            dut.set_netns(options.netns.clone());
            Ok(Box::new(dut))
        }
        TargetKind::Process { command, cwd, env } => {
            let spec = ProcessSpec {
                command: command.clone(),
                cwd: cwd.clone().unwrap_or(bench_dir),
                env: env.clone(),
                agent_args: false,
            };
            let mut dut = ProcessDut::new(
                spec,
                bench.target.profile.clone(),
                bench.timeouts.start,
                Some(&log),
            )?;
            dut.set_power_switch(bench.target.power_switch.clone());
            dut.set_netns(options.netns.clone());
            Ok(Box::new(dut))
        }
        TargetKind::Ssh(ssh) => {
            let mut dut = crate::ssh::SshDut::new(
                ssh.clone(),
                bench.target.profile.clone(),
                bench.timeouts.start,
                Some(&log),
                &bench_dir,
            )?;
            dut.set_power_switch(bench.target.power_switch.clone());
            Ok(Box::new(dut))
        }
        other => Err(BenchError::NotSupported {
            what: format!("target kind \"{}\"", other.as_str()),
        }),
    }
}

/// The reference agent's arguments for a provisioning (its CLI is in
/// firmware/agent/README.md): what the `sim` target appends to the agent's
/// command line, and what the `ssh` target passes to the deployed agent.
pub fn agent_args(config: &DutConfig) -> Vec<String> {
    let mut extra = vec![
        "--server".to_string(),
        config.server_uri.clone(),
        "--endpoint".into(),
        config.endpoint.clone(),
        "--lifetime".into(),
        config.lifetime_s.to_string(),
        "--time-scale".into(),
        config.time_scale.to_string(),
        "--ssid".into(),
        config.ssid.to_string(),
        "--binding".into(),
        config.binding.clone(),
    ];
    if let Some(p) = config.default_pmin_s {
        extra.extend(["--pmin".to_string(), p.to_string()]);
    }
    if let Some(p) = config.default_pmax_s {
        extra.extend(["--pmax".to_string(), p.to_string()]);
    }
    // Bootstrap (ETS C.13): a bootstrap account, and with `bootstrap_only`
    // nothing else, so the agent starts with a Bootstrap-Request.
    if let Some(uri) = config.extra.get("bootstrap_uri") {
        extra.extend(["--bootstrap-uri".to_string(), uri.clone()]);
    }
    if config
        .extra
        .get("bootstrap_only")
        .is_some_and(|v| v == "true")
    {
        extra.push("--bootstrap-only".to_string());
    }
    extra.extend(security_args(config));
    extra.extend(scenario_args(config));
    extra.extend(fota_args(config));
    // The core-object cases' extra objects (`--objects`, agent README).
    if let Some(list) = config.extra.get("objects") {
        extra.extend(["--objects".to_string(), list.clone()]);
    }
    // ETS configuration C.14 (int-950, 951): a second server account.
    if let Some(uri) = config.extra.get("server2_uri") {
        extra.extend(["--server2".to_string(), uri.clone()]);
    }
    extra
}

/// The `extra` keys of the FOTA cases and their agent options (see the
/// agent README, "Firmware update").
pub const FOTA_ARGS: &[(&str, &str)] = &[
    ("state_dir", "--state-dir"),
    ("fota_block_size", "--fota-block-size"),
    ("fota_max_size", "--fota-max-size"),
    ("fota_retries", "--fota-retries"),
    ("fota_idle_timeout", "--fota-idle-timeout"),
    ("fota_ca", "--fota-ca"),
    ("mqtt_fota", "--mqtt-fota"),
    ("mqtt_stream_block", "--mqtt-stream-block"),
];

/// The reference agent's options for the FOTA keys of `config.extra`
/// (see [`FOTA_ARGS`]).
pub fn fota_args(config: &DutConfig) -> Vec<String> {
    let mut out = Vec::new();
    for (key, option) in FOTA_ARGS {
        if let Some(v) = config.extra.get(*key) {
            out.push((*option).to_string());
            out.push(v.clone());
        }
    }
    out
}

/// The `extra` keys of the MachNation scenarios and their agent options
/// (`mqtt` = `mqtts://ip:port`, the MQTT client's TLS files, the test
/// object's start values, the report period). `test_bool = "true"`,
/// `report_on_connect = "true"` and `mqtt_no_jobs = "true"` become flags.
pub const SCENARIO_ARGS: &[(&str, &str)] = &[
    ("mqtt", "--mqtt"),
    ("mqtt_variant", "--mqtt-variant"),
    ("mqtt_topic_root", "--mqtt-topic-root"),
    ("mqtt_cert", "--cert"),
    ("mqtt_key", "--key"),
    ("mqtt_ca", "--ca"),
    ("report_every", "--report-every"),
    ("mqtt_keepalive", "--mqtt-keepalive"),
    ("dtls_retransmit_initial", "--dtls-retransmit-initial"),
    ("test_string", "--test-string"),
    ("test_int", "--test-int"),
    ("test_float", "--test-float"),
];

/// The reference agent's options for the scenario keys of `config.extra`
/// (see [`SCENARIO_ARGS`]).
pub fn scenario_args(config: &DutConfig) -> Vec<String> {
    let mut out = Vec::new();
    for (key, option) in SCENARIO_ARGS {
        if let Some(v) = config.extra.get(*key) {
            out.push((*option).to_string());
            out.push(v.clone());
        }
    }
    for (key, flag) in [
        ("test_bool", "--test-bool"),
        ("report_on_connect", "--report-on-connect"),
        ("mqtt_no_jobs", "--mqtt-no-jobs"),
    ] {
        if config.extra.get(key).is_some_and(|v| v == "true") {
            out.push(flag.to_string());
        }
    }
    out
}

/// The reference agent's security options for the security keys of
/// `config.extra` (see [`template::SECURITY_ARGS`]); none for NoSec. Other
/// extra keys are placeholders only and never become options.
pub fn security_args(config: &DutConfig) -> Vec<String> {
    let mode = config.extra.get("security").map(String::as_str);
    if matches!(mode, None | Some("nosec") | Some("")) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (key, option) in template::SECURITY_ARGS {
        if let Some(v) = config.extra.get(*key) {
            out.push((*option).to_string());
            out.push(v.clone());
        }
    }
    out
}

/// Finds the reference agent binary: the bench's `agent` path, else env
/// `RIG_AGENT`, else next to the current executable (and its parent, for test
/// binaries in `target/debug/deps`), else `PATH`.
pub fn find_agent(location: &AgentLocation) -> Result<PathBuf, BenchError> {
    let mut looked = Vec::new();
    if let AgentLocation::Path(p) = location {
        if p.is_file() {
            return Ok(p.clone());
        }
        looked.push(p.clone());
        return Err(BenchError::AgentNotFound { looked });
    }
    if let Some(p) = std::env::var_os("RIG_AGENT") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        looked.push(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        let mut dir = exe.parent().map(Path::to_path_buf);
        for _ in 0..2 {
            let Some(d) = dir else { break };
            let candidate = d.join("rig-agent");
            if candidate.is_file() {
                return Ok(candidate);
            }
            looked.push(candidate);
            dir = d.parent().map(Path::to_path_buf);
        }
    }
    match which("rig-agent") {
        Some(p) => Ok(p),
        None => {
            looked.push(PathBuf::from("$PATH"));
            Err(BenchError::AgentNotFound { looked })
        }
    }
}

/// Finds a program on `PATH` (or checks a path that contains a `/`).
pub fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What to spawn.
#[derive(Clone, Debug)]
pub struct ProcessSpec {
    /// Program and arguments, with placeholders.
    pub command: Vec<Template>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Extra environment.
    pub env: BTreeMap<String, Template>,
    /// Whether to add the reference agent's provisioning options
    /// (`--server`, `--endpoint`, `--lifetime`, `--time-scale`, ...).
    pub agent_args: bool,
}

/// A DUT that is a process on this host.
pub struct ProcessDut {
    spec: ProcessSpec,
    profile: Option<Profile>,
    start_timeout: Duration,
    console: Arc<Console>,
    stdin: Option<ChildStdin>,
    pgid: Option<Pid>,
    waiter: Option<tokio::task::JoinHandle<()>>,
    /// Index of the first console line not yet consumed by an expectation.
    cursor: usize,
    values: BTreeMap<String, String>,
    argv: Vec<String>,
    /// The program file that was started, and its SHA-256 (the "firmware hash"
    /// of a process DUT), computed once per program.
    program: Option<(PathBuf, String)>,
    power_switch: Option<crate::file::PowerSwitch>,
    /// The network namespace the process runs in (`ip netns exec`).
    netns: Option<String>,
}

impl std::fmt::Debug for ProcessDut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessDut")
            .field("argv", &self.argv)
            .field("pgid", &self.pgid)
            .finish_non_exhaustive()
    }
}

const SIGTERM_GRACE: Duration = Duration::from_secs(3);
const SIGKILL_WAIT: Duration = Duration::from_secs(5);
const DRAIN_WAIT: Duration = Duration::from_secs(1);

impl ProcessDut {
    /// A process DUT; `log` is the console log file (None: memory only).
    pub fn new(
        spec: ProcessSpec,
        profile: Option<Profile>,
        start_timeout: Duration,
        log: Option<&Path>,
    ) -> Result<Self, BenchError> {
        Ok(Self::with_console(
            spec,
            profile,
            start_timeout,
            Arc::new(Console::new(log)?),
        ))
    }

    /// A process DUT that writes into an existing console (the SSH target
    /// runs one local `ssh` process per start, all into one console).
    pub fn with_console(
        spec: ProcessSpec,
        profile: Option<Profile>,
        start_timeout: Duration,
        console: Arc<Console>,
    ) -> Self {
        let mut dut = Self {
            spec,
            profile,
            start_timeout,
            console,
            stdin: None,
            pgid: None,
            waiter: None,
            cursor: 0,
            values: BTreeMap::new(),
            argv: Vec::new(),
            program: None,
            power_switch: None,
            netns: None,
        };
        // A program named without placeholders is known before the start, so
        // the report's identity (taken before the first case) has its hash.
        if let Some(first) = dut.spec.command.first()
            && let Ok(program) = first.render(&BTreeMap::new(), &[])
        {
            dut.identify_program(&program);
        }
        dut
    }

    /// The bench's power switch, for [`Dut::power_cycle`].
    pub fn set_power_switch(&mut self, switch: Option<crate::file::PowerSwitch>) {
        self.power_switch = switch;
    }

    /// Runs the process inside the named network namespace (`ip netns exec
    /// <name> <command>`; `ip` execs the command, so the pid stays the same).
    pub fn set_netns(&mut self, netns: Option<String>) {
        self.netns = netns;
    }

    /// The captured console (also as [`Dut::console`]).
    pub fn console_handle(&self) -> Arc<Console> {
        self.console.clone()
    }

    fn render_argv(&self, config: &DutConfig) -> Result<Vec<String>, BenchError> {
        let mut argv = Vec::new();
        for t in &self.spec.command {
            argv.push(t.render(&self.values, &[]).map_err(BenchError::Template)?);
        }
        if self.spec.agent_args {
            // Bench `args` come first in `command`; clap takes options in any order.
            argv.extend(agent_args(config));
        }
        Ok(argv)
    }

    /// Finds the program file (as `Command` would) and hashes it, once per program.
    fn identify_program(&mut self, program: &str) {
        let path = if program.contains('/') {
            Some(self.spec.cwd.join(program))
        } else {
            which(program)
        };
        let Some(path) = path else { return };
        if self.program.as_ref().is_some_and(|(p, _)| *p == path) {
            return;
        }
        // Identity is informative: an unreadable program only leaves it out.
        if let Ok(bytes) = std::fs::read(&path) {
            use sha2::Digest as _;
            let digest = sha2::Sha256::digest(&bytes);
            let hex = digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>();
            self.program = Some((path, hex));
        }
    }

    async fn send_line(&mut self, line: &str) -> Result<(), BenchError> {
        let ending = self
            .profile
            .as_ref()
            .map_or("\n", |p| p.line_ending.as_str());
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(BenchError::NotRunning(self.not_running_reason()));
        };
        self.console.push(Stream::Rig, &format!("sent: {line}"));
        let data = format!("{line}{ending}");
        let r = async {
            stdin.write_all(data.as_bytes()).await?;
            stdin.flush().await
        }
        .await;
        r.map_err(|source| BenchError::Io {
            what: format!("cannot write `{line}` to the DUT's stdin"),
            source,
        })
    }

    fn not_running_reason(&self) -> String {
        match self.console.exit_note() {
            Some(how) => match self.console.last_dut_line() {
                Some(last) => format!("{how} (last line: `{last}`)"),
                None => how,
            },
            None => "it was not started".to_string(),
        }
    }

    fn match_stderr(&self) -> bool {
        self.profile.as_ref().is_none_or(|p| p.match_stderr)
    }

    /// Waits for a console line containing `pattern`, from the cursor on,
    /// consuming lines up to the match. A line containing `fail` first ends
    /// the wait with [`BenchError::ActionFailed`].
    async fn wait_for(
        &mut self,
        pattern: &str,
        fail: Option<(&str, &str)>,
        timeout: Duration,
    ) -> Result<String, BenchError> {
        let deadline = Instant::now() + timeout;
        let mut rx = self.console.subscribe();
        let stderr_too = self.match_stderr();
        let mut expired = false;
        loop {
            rx.borrow_and_update();
            let lines = self.console.lines_from(self.cursor);
            for (i, line) in lines.iter().enumerate() {
                let eligible = match line.stream {
                    Stream::Stdout => true,
                    Stream::Stderr => stderr_too,
                    Stream::Rig => false,
                };
                if !eligible {
                    continue;
                }
                if let Some((action, f)) = fail
                    && line.text.contains(f)
                {
                    self.cursor += i + 1;
                    return Err(BenchError::ActionFailed {
                        action: action.to_string(),
                        line: line.text.clone(),
                    });
                }
                if line.text.contains(pattern) {
                    self.cursor += i + 1;
                    return Ok(line.text.clone());
                }
            }
            self.cursor += lines.len();
            if !self.console.is_running() {
                return Err(BenchError::NotRunning(format!(
                    "waiting for `{pattern}`: {}",
                    self.not_running_reason()
                )));
            }
            if expired {
                return Err(BenchError::ConsoleTimeout {
                    pattern: pattern.to_string(),
                    timeout,
                    last_line: self.console.last_dut_line(),
                });
            }
            // The sender lives in the console we hold, so `changed` cannot fail;
            // if it did, treat it like the deadline rather than spin.
            if !matches!(
                tokio::time::timeout_at(deadline, rx.changed()).await,
                Ok(Ok(()))
            ) {
                // One last look at lines that came with the deadline.
                expired = true;
            }
        }
    }

    async fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut rx = self.console.subscribe();
        loop {
            rx.borrow_and_update();
            if !self.console.is_running() {
                return true;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return !self.console.is_running();
            }
        }
    }

    fn signal(&self, sig: Signal) {
        if let Some(pgid) = self.pgid {
            // ESRCH (group already gone) is the outcome we want anyway.
            let _ = killpg(pgid, sig);
        }
    }
}

fn spawn_reader<R>(console: Arc<Console>, stream: Stream, reader: R) -> tokio::task::JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    console.push(stream, text.trim_end_matches(['\n', '\r']));
                }
            }
        }
    })
}

#[async_trait]
impl Dut for ProcessDut {
    async fn start(&mut self, config: &DutConfig) -> Result<(), BenchError> {
        self.stop().await?;
        self.values = template::values(config);
        let argv = self.render_argv(config)?;
        let Some((program, args)) = argv.split_first() else {
            return Err(BenchError::Template("the DUT command is empty".into()));
        };
        self.identify_program(program);
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns.as_str(), program.as_str()]);
                cmd
            }
            None => Command::new(program),
        };
        cmd.args(args)
            .current_dir(&self.spec.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        for (k, v) in &self.spec.env {
            cmd.env(
                k,
                v.render(&self.values, &[]).map_err(BenchError::Template)?,
            );
        }
        let mut child = cmd.spawn().map_err(|source| BenchError::Spawn {
            program: program.clone(),
            source,
        })?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok());
        self.pgid = pid.map(Pid::from_raw);
        self.argv = argv.clone();
        self.cursor = self.console.len();
        self.console.started(&format!(
            "started (pid {}): {}",
            pid.unwrap_or(-1),
            argv.join(" ")
        ));
        self.stdin = child.stdin.take();
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(spawn_reader(self.console.clone(), Stream::Stdout, out));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(spawn_reader(self.console.clone(), Stream::Stderr, err));
        }
        let console = self.console.clone();
        self.waiter = Some(tokio::spawn(async move {
            let status = child.wait().await;
            // Let the readers drain what the process wrote before it exited;
            // a grandchild holding the pipes open must not hold us up.
            for r in readers {
                let _ = tokio::time::timeout(DRAIN_WAIT, r).await;
            }
            let how = match status {
                Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                    (Some(code), _) => format!("exited with status {code}"),
                    (None, Some(sig)) => format!("killed by signal {sig}"),
                    _ => format!("exited ({s})"),
                },
                Err(e) => format!("lost track of the process: {e}"),
            };
            console.exited(&how);
        }));

        let Some(profile) = self.profile.clone() else {
            return Ok(());
        };
        if let Some(start) = &profile.start {
            let line = start
                .render(&self.values, &[])
                .map_err(BenchError::Template)?;
            self.send_line(&line).await?;
        }
        if let Some(ready) = &profile.ready {
            let timeout = self.start_timeout.max(profile.ready_timeout);
            self.wait_for(ready, None, timeout).await?;
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), BenchError> {
        if self.waiter.is_none() {
            return Ok(());
        }
        if self.console.is_running() {
            let polite = self
                .profile
                .as_ref()
                .and_then(|p| p.stop.clone().map(|s| (s, p.stop_timeout)));
            if let Some((line, within)) = polite
                && self.send_line(&line).await.is_ok()
            {
                self.wait_exit(within).await;
            }
        }
        // Closing stdin is an end-of-input for consoles that read it.
        self.stdin = None;
        if self.console.is_running() {
            self.console
                .push(Stream::Rig, "sending SIGTERM to the process group");
            self.signal(Signal::SIGTERM);
            let grace = self
                .profile
                .as_ref()
                .map_or(SIGTERM_GRACE, |p| p.stop_timeout.min(SIGTERM_GRACE));
            if !self.wait_exit(grace).await {
                self.console.push(
                    Stream::Rig,
                    "still running: sending SIGKILL to the process group",
                );
                self.signal(Signal::SIGKILL);
                self.wait_exit(SIGKILL_WAIT).await;
            }
        } else {
            // The leader is gone; make sure nothing it left behind in its group lives on.
            self.signal(Signal::SIGKILL);
        }
        if let Some(w) = self.waiter.take() {
            let _ = tokio::time::timeout(SIGKILL_WAIT, w).await;
        }
        self.pgid = None;
        if self.console.is_running() {
            return Err(BenchError::Io {
                what: format!(
                    "the DUT `{}` did not exit after SIGKILL",
                    self.argv.join(" ")
                ),
                source: std::io::Error::from(std::io::ErrorKind::TimedOut),
            });
        }
        Ok(())
    }

    async fn act(&mut self, action: &DutAction) -> Result<(), BenchError> {
        let name = action_name(action).to_string();
        let spec = self
            .profile
            .as_ref()
            .and_then(|p| {
                p.action(action)
                    .map(|a| (a.clone(), a.fail.clone().or_else(|| p.fail.clone())))
            })
            .ok_or_else(|| BenchError::Unsupported(name.clone()))?;
        let (spec, fail) = spec;
        let args = action_args(action);
        if args.len() != spec.arity() {
            return Err(BenchError::Template(format!(
                "action `{name}` takes {} argument(s), {} given",
                spec.arity(),
                args.len()
            )));
        }
        let line = spec
            .send
            .render(&self.values, args)
            .map_err(BenchError::Template)?;
        if !self.console.is_running() {
            return Err(BenchError::NotRunning(format!(
                "action `{name}`: {}",
                self.not_running_reason()
            )));
        }
        self.cursor = self.console.len();
        self.send_line(&line).await?;
        if let Some(expect) = &spec.expect {
            self.wait_for(
                expect,
                fail.as_deref().map(|f| (name.as_str(), f)),
                spec.timeout,
            )
            .await?;
        }
        Ok(())
    }

    fn supports(&self, action: &DutAction) -> bool {
        self.profile
            .as_ref()
            .is_some_and(|p| p.action(action).is_some())
    }

    async fn expect_console(
        &mut self,
        pattern: &str,
        timeout: Duration,
    ) -> Result<String, BenchError> {
        self.wait_for(pattern, None, timeout).await
    }

    fn console(&self) -> &dyn ConsoleLog {
        &*self.console
    }

    fn is_running(&mut self) -> bool {
        self.console.is_running()
    }

    fn identity(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert(
            "kind".into(),
            if self.spec.agent_args {
                "sim"
            } else {
                "process"
            }
            .into(),
        );
        let command = if self.argv.is_empty() {
            self.spec
                .command
                .iter()
                .map(Template::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            self.argv.join(" ")
        };
        m.insert("command".into(), command);
        if let Some((path, sha)) = &self.program {
            m.insert("program".into(), path.display().to_string());
            m.insert("program_sha256".into(), sha.clone());
        }
        if let Some(p) = &self.profile {
            m.insert("profile".into(), p.name.clone());
        }
        m
    }

    async fn power_cycle(&mut self) -> Result<(), BenchError> {
        let Some(switch) = self.power_switch.clone() else {
            return Err(BenchError::Unsupported("power_cycle".into()));
        };
        crate::switch::power_cycle(&switch, &self.console).await
    }
}

impl Drop for ProcessDut {
    fn drop(&mut self) {
        // The waiter task owns the child (kill_on_drop covers the leader);
        // this covers the rest of its group when the DUT is dropped unstopped.
        if self.console.is_running() {
            self.signal(Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod core_object_args {
    use super::*;

    #[test]
    fn objects_and_a_second_server_become_agent_options() {
        let mut config = DutConfig {
            endpoint: "ep".into(),
            server_uri: "coap://127.0.0.1:5683".into(),
            ssid: 1,
            lifetime_s: 86_400,
            binding: "U".into(),
            default_pmin_s: None,
            default_pmax_s: None,
            time_scale: 1.0,
            extra: Default::default(),
        };
        let plain = agent_args(&config);
        assert!(!plain.iter().any(|a| a == "--objects" || a == "--server2"));
        config.extra.insert("objects".into(), "4,6,7,16".into());
        config
            .extra
            .insert("server2_uri".into(), "coap://127.0.0.1:5700".into());
        let args = agent_args(&config).join(" ");
        assert!(args.contains("--objects 4,6,7,16"), "{args}");
        assert!(args.contains("--server2 coap://127.0.0.1:5700"), "{args}");
    }
}
