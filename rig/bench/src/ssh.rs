//! The SSH target: a Linux board (a Raspberry Pi) reached over SSH.
//!
//! ```text
//!  rig host                                         the board (sshd)
//!  ────────                                         ────────────────
//!  ssh -M -N  (control master, one per SshDut) ═══► authenticated connection
//!  ssh uname; sha256sum            ─── over it ───► is the agent there already?
//!  ssh 'cat > tmp; sha256sum; mv'  ◄── binary ────► /opt/rig/rig-agent (atomic)
//!  ssh 'echo $$ > pid; exec agent' ◄── stdio ─────► the agent, console piped back
//!  ssh 'kill $(cat pid)'           ─── on stop ───► nothing of ours left running
//! ```
//!
//! **Why the system OpenSSH client** (through `tokio::process`) and not a Rust
//! SSH library: the board is configured the way its owner already uses it
//! (`~/.ssh/config`, agents, jump hosts, known-hosts files and their hashing
//! all keep working); host-key checking is OpenSSH's own, not re-implemented;
//! and its error texts (`Permission denied (publickey)`, `Host key
//! verification failed`) are the ones users search for. The `openssh` crate
//! wraps the same client but adds little here: every command is a
//! short-lived process on a ControlMaster socket, which is all it does too.
//!
//! Each [`SshDut`] opens one control master (`ssh -M -N`, a child of ours,
//! killed when the DUT is dropped) whose socket lives in a private temporary
//! folder; every other command multiplexes over it, so a command costs one
//! round trip rather than a handshake. The master is what first meets a dead
//! host, a wrong key or an unknown host key, and its stderr becomes a typed
//! [`SshError`] naming the user, host and port, with the command that fixes
//! it.
//!
//! **Deploy** (the agent program): the binary is found as for the `sim` target
//! or cross-built with cargo (`agent = { cross = "aarch64-unknown-linux-gnu" }`);
//! its ELF architecture is checked against the board's `uname -m`, so an x86
//! build never lands on a Pi; if the board already holds a file with the same
//! SHA-256 nothing is copied; otherwise the file is streamed to a temporary
//! name, its SHA-256 is checked on the board, and it is made executable and
//! renamed over the old one (atomic).
//!
//! **Start** runs the program through the [`ProcessDut`] machinery: the local
//! `ssh` process is the "process", so console capture (stdout protocol lines,
//! stderr logs), the device profile's start/ready/actions and every bounded
//! wait are exactly the process target's. The remote command is built here
//! from the same agent arguments as the sim target ([`crate::target::agent_args`]),
//! each word single-quoted for the remote shell. `run_as = "process"` runs it
//! under the session (its pid in a file); `run_as = "service"` runs it as a
//! transient systemd unit (`systemd-run --pipe --collect
//! --unit=rig-agent-<run>`, through `sudo -n` when the login is not root),
//! whose stdio is still piped back over the session: the console is the
//! unit's stdout, nothing goes through the journal. Before the first copy, a
//! service bench checks the board ([`SERVICE_CHECK_SCRIPT`]): no
//! `systemd-run`/`systemctl`, systemd not being PID 1 (`systemctl
//! is-system-running` says "offline", as in a container) or no passwordless
//! sudo for them is a [`SshError::NoSystemd`] naming the board and what is
//! missing.
//!
//! **Stop** is the process target's (the profile's `quit`, then signals to the
//! local `ssh`), then a remote check: the pid from the file is sent SIGTERM,
//! then SIGKILL; a unit gets `systemctl stop` and `reset-failed`. The stop
//! fails if the program (or unit) is still alive. A reset or a recovery after
//! a power cycle is a stop and a fresh start, so for a service it is
//! `systemctl stop` and a new `systemd-run`: a restart with the new case's
//! settings.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::BenchError;
use crate::console::{Console, Stream};
use crate::dut::{ConsoleLog, Dut, DutAction, DutConfig};
use crate::file::{AgentSource, PowerSwitch, RunAs, SshProgram, SshSpec};
use crate::profile::Profile;
use crate::target::{ProcessDut, ProcessSpec, agent_args, find_agent};
use crate::template::{self, Template};

/// The agent's file name in `remote_dir`.
pub const REMOTE_AGENT: &str = "rig-agent";
/// How long a remote housekeeping command (check, rename, kill) may take.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a cross build may take.
const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Keepalive: the session is declared dead after 3 unanswered probes 5 s apart.
const ALIVE_INTERVAL_S: u32 = 5;

/// What went wrong talking to the board. Each message names `user@host:port`
/// and, where there is one, the command that fixes it.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The board refused the key.
    #[error(
        "ssh {dest}: authentication failed: {detail}. Install the public key on the board (`ssh-copy-id -i {key}.pub {dest_no_port}`) or fix target.identity / target.user"
    )]
    Auth {
        /// `user@host:port`.
        dest: String,
        /// `user@host` for the hint.
        dest_no_port: String,
        /// The key that was offered (or `~/.ssh/id_*`).
        key: String,
        /// ssh's message.
        detail: String,
    },
    /// The board's host key is not known (or changed) and strict checking is on.
    #[error(
        "ssh {dest}: the board's host key is not trusted: {detail}. If this is the right board, record its key with `ssh-keyscan -p {port} {host} >> {known_hosts}` and check the fingerprint (`ssh-keygen -lf {known_hosts}`) against the board's own (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on it)"
    )]
    HostKey {
        /// `user@host:port`.
        dest: String,
        /// The host.
        host: String,
        /// The port.
        port: u16,
        /// The known-hosts file in use.
        known_hosts: String,
        /// ssh's message.
        detail: String,
    },
    /// The host cannot be reached (no route, refused, timed out, unknown name).
    #[error("ssh {dest}: cannot reach the board: {detail}")]
    Unreachable {
        /// `user@host:port`.
        dest: String,
        /// ssh's message, or what timed out.
        detail: String,
    },
    /// A command on the board failed.
    #[error("ssh {dest}: {what} failed ({status}){}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    Remote {
        /// `user@host:port`.
        dest: String,
        /// What was being done.
        what: String,
        /// Exit status.
        status: String,
        /// The command's stderr.
        stderr: String,
    },
    /// A bounded wait ran out.
    #[error("ssh {dest}: {what} took longer than {:.0} s", after.as_secs_f64())]
    Timeout {
        /// `user@host:port`.
        dest: String,
        /// What was being done.
        what: String,
        /// The bound.
        after: Duration,
    },
    /// The agent does not suit the board, or copying it went wrong.
    #[error("ssh {dest}: cannot deploy {}: {problem}", file.display())]
    Deploy {
        /// `user@host:port`.
        dest: String,
        /// The local file.
        file: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// `run_as = "service"` on a board that cannot run a systemd unit for us.
    #[error(
        "ssh {dest}: target.run_as = \"service\" needs systemd on the board, but {missing}. Use run_as = \"process\" for this board{fix}"
    )]
    NoSystemd {
        /// `user@host:port`.
        dest: String,
        /// What is missing, e.g. "systemd is not running (`systemctl
        /// is-system-running` says \"offline\"; PID 1 is `sh`)".
        missing: String,
        /// The fix beyond `run_as = "process"`, starting with ", or ".
        fix: String,
    },
    /// Cross-building the agent failed.
    #[error("cross-building rig-agent for {target} failed: {detail}")]
    Build {
        /// The Rust target triple.
        target: String,
        /// What went wrong, with the fix where known.
        detail: String,
    },
    /// A local program (`ssh`, `cargo`) could not be run.
    #[error("cannot run `{program}`: {source}")]
    Local {
        /// The program.
        program: String,
        /// Why.
        source: io::Error,
    },
}

impl From<SshError> for BenchError {
    fn from(e: SshError) -> Self {
        BenchError::Io {
            what: "SSH target".into(),
            source: io::Error::other(e),
        }
    }
}

/// The [`SshError`] inside a [`BenchError`] from this module, if it is one.
pub fn ssh_error(e: &BenchError) -> Option<&SshError> {
    match e {
        BenchError::Io { source, .. } => source.get_ref()?.downcast_ref::<SshError>(),
        _ => None,
    }
}

/// Quotes a word for a POSIX shell on the board (single quotes; a `'`
/// becomes `'\''`).
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '/' | '.' | '_' | '-' | ':' | '=' | ',' | '+' | '@')
        })
    {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The connection settings and the `ssh` command lines built from them.
#[derive(Clone, Debug)]
pub struct SshCommand {
    spec: SshSpec,
    control: PathBuf,
}

impl SshCommand {
    /// Commands for `spec`, multiplexed over the control socket `control`.
    pub fn new(spec: SshSpec, control: PathBuf) -> Self {
        Self { spec, control }
    }

    /// `user@host:port` (the local user name when `user` is not set).
    pub fn dest(&self) -> String {
        format!("{}:{}", self.dest_no_port(), self.spec.port)
    }

    fn dest_no_port(&self) -> String {
        let user = self.spec.user.clone().unwrap_or_else(local_user);
        format!("{user}@{}", self.spec.host)
    }

    /// The options every `ssh` gets: batch mode (never a prompt), bounded
    /// connect, keepalive, key, host-key policy, port and user.
    pub fn options(&self) -> Vec<String> {
        let s = &self.spec;
        let connect = s.connect_timeout.as_secs_f64().ceil().max(1.0) as u64;
        let mut o: Vec<String> = vec![
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            format!("ConnectTimeout={connect}"),
            "-o".into(),
            format!("ServerAliveInterval={ALIVE_INTERVAL_S}"),
            "-o".into(),
            "ServerAliveCountMax=3".into(),
            "-o".into(),
            format!(
                "StrictHostKeyChecking={}",
                if s.strict_host_key {
                    "yes"
                } else {
                    "accept-new"
                }
            ),
            "-o".into(),
            "LogLevel=ERROR".into(),
            "-p".into(),
            s.port.to_string(),
        ];
        if let Some(k) = &s.known_hosts {
            o.extend(["-o".into(), format!("UserKnownHostsFile={}", k.display())]);
        }
        if let Some(k) = &s.identity {
            o.extend([
                "-i".into(),
                k.display().to_string(),
                "-o".into(),
                "IdentitiesOnly=yes".into(),
            ]);
        }
        if let Some(u) = &s.user {
            o.extend(["-l".into(), u.clone()]);
        }
        o
    }

    /// argv of the control master (`ssh -M -N`).
    pub fn master_argv(&self) -> Vec<String> {
        let mut a = vec!["ssh".to_string()];
        a.extend(self.options());
        a.extend([
            "-o".into(),
            "ControlMaster=yes".into(),
            "-o".into(),
            format!("ControlPath={}", self.control.display()),
            "-N".into(),
            "-T".into(),
            self.spec.host.clone(),
        ]);
        a
    }

    /// argv that runs `script` on the board (through the master's socket if it
    /// is up, else on a connection of its own).
    pub fn remote_argv(&self, script: &str) -> Vec<String> {
        let mut a = vec!["ssh".to_string()];
        a.extend(self.options());
        a.extend([
            "-o".into(),
            "ControlMaster=no".into(),
            "-o".into(),
            format!("ControlPath={}", self.control.display()),
            "-T".into(),
            self.spec.host.clone(),
            "--".into(),
            script.to_string(),
        ]);
        a
    }

    /// Turns ssh's stderr at connect time into a typed error.
    pub fn classify(&self, stderr: &str) -> SshError {
        let detail = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        let dest = self.dest();
        let lower = detail.to_ascii_lowercase();
        if lower.contains("permission denied") || lower.contains("too many authentication failures")
        {
            SshError::Auth {
                dest,
                dest_no_port: self.dest_no_port(),
                key: self
                    .spec
                    .identity
                    .as_ref()
                    .map_or_else(|| "~/.ssh/id_ed25519".into(), |k| k.display().to_string()),
                detail,
            }
        } else if lower.contains("host key verification failed")
            || lower.contains("host key is known")
            || lower.contains("remote host identification has changed")
        {
            SshError::HostKey {
                dest,
                host: self.spec.host.clone(),
                port: self.spec.port,
                known_hosts: self
                    .spec
                    .known_hosts
                    .as_ref()
                    .map_or_else(|| "~/.ssh/known_hosts".into(), |k| k.display().to_string()),
                detail,
            }
        } else {
            SshError::Unreachable {
                dest,
                detail: if detail.is_empty() {
                    "ssh exited without a message".into()
                } else {
                    detail
                },
            }
        }
    }
}

fn local_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_else(|| "root".into())
}

/// A private folder for the control socket, removed on drop.
#[derive(Debug)]
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn create() -> io::Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        // Socket paths are limited to ~108 bytes: stay in /tmp, short names.
        let base = PathBuf::from("/tmp");
        for _ in 0..100 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = base.join(format!("rig-ssh-{}-{n}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    use std::os::unix::fs::PermissionsExt as _;
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
                    return Ok(Self(dir));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free /tmp/rig-ssh-* folder name",
        ))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The authenticated connection (control master) of one DUT.
#[derive(Debug)]
struct Session {
    master: Child,
    // Dropped after the master (field order): the socket's folder.
    _dir: PrivateDir,
}

impl Session {
    fn alive(&mut self) -> bool {
        matches!(self.master.try_wait(), Ok(None))
    }
}

/// The output of a remote command.
#[derive(Debug)]
struct Remote {
    ok: bool,
    status: String,
    stdout: String,
    stderr: String,
}

/// The agent file as deployed.
#[derive(Clone, Debug)]
struct Deployed {
    local: PathBuf,
    sha256: String,
    remote: String,
}

/// A DUT on a Linux board reached over SSH. See the module doc.
pub struct SshDut {
    spec: SshSpec,
    cmd: SshCommand,
    control_dir: Option<PrivateDir>,
    session: Option<Session>,
    profile: Option<Profile>,
    start_timeout: Duration,
    console: Arc<Console>,
    bench_dir: PathBuf,
    /// The local `ssh` process of the current start.
    inner: Option<ProcessDut>,
    deployed: Option<Deployed>,
    /// The board's `uname -m`, once asked.
    remote_arch: Option<String>,
    /// Names this DUT's pid file and unit on the board.
    run: String,
    remote_argv: Vec<String>,
    power_switch: Option<PowerSwitch>,
    /// Whether the board was found able to run the agent as a unit.
    service_checked: bool,
}

impl std::fmt::Debug for SshDut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshDut")
            .field("dest", &self.cmd.dest())
            .field("remote_argv", &self.remote_argv)
            .finish_non_exhaustive()
    }
}

impl SshDut {
    /// An SSH DUT; `log` is the console log file (None: memory only),
    /// `bench_dir` the folder cargo runs in for a cross build. Nothing is
    /// contacted until [`SshDut::connect`] or [`Dut::start`].
    pub fn new(
        spec: SshSpec,
        profile: Option<Profile>,
        start_timeout: Duration,
        log: Option<&Path>,
        bench_dir: &Path,
    ) -> Result<Self, BenchError> {
        let dir = PrivateDir::create().map_err(|source| BenchError::Io {
            what: "cannot create a folder for the ssh control socket in /tmp".into(),
            source,
        })?;
        let cmd = SshCommand::new(spec.clone(), dir.0.join("cm"));
        static RUNS: AtomicU32 = AtomicU32::new(0);
        let run = format!(
            "{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        );
        Ok(Self {
            spec,
            cmd,
            control_dir: Some(dir),
            session: None,
            profile,
            start_timeout,
            console: Arc::new(Console::new(log)?),
            bench_dir: bench_dir.to_path_buf(),
            inner: None,
            deployed: None,
            remote_arch: None,
            run,
            remote_argv: Vec::new(),
            power_switch: None,
            service_checked: false,
        })
    }

    /// The bench's power switch, for [`Dut::power_cycle`].
    pub fn set_power_switch(&mut self, switch: Option<PowerSwitch>) {
        self.power_switch = switch;
    }

    /// The captured console (also as [`Dut::console`]).
    pub fn console_handle(&self) -> Arc<Console> {
        self.console.clone()
    }

    /// `user@host:port`.
    pub fn dest(&self) -> String {
        self.cmd.dest()
    }

    /// The name of the systemd unit (`run_as = "service"`) of this DUT.
    pub fn unit_name(&self) -> String {
        format!("rig-agent-{}", self.run)
    }

    /// The pid file on the board (`run_as = "process"`).
    pub fn pid_file(&self) -> String {
        format!("/tmp/rig-dut-{}.pid", self.run)
    }

    /// Opens the control master (if it is not up): authenticates, bounded by
    /// `connect_timeout` (plus a second for ssh's own reporting).
    pub async fn connect(&mut self) -> Result<(), SshError> {
        if let Some(s) = &mut self.session {
            if s.alive() {
                return Ok(());
            }
            self.session = None;
        }
        let dir = match self.control_dir.take() {
            Some(d) => d,
            None => PrivateDir::create().map_err(|source| SshError::Local {
                program: "mkdir /tmp/rig-ssh-*".into(),
                source,
            })?,
        };
        let control = dir.0.join("cm");
        self.cmd = SshCommand::new(self.spec.clone(), control.clone());
        let argv = self.cmd.master_argv();
        let mut master = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| SshError::Local {
                program: "ssh".into(),
                source,
            })?;
        let bound = self.spec.connect_timeout + Duration::from_secs(1);
        let deadline = Instant::now() + bound;
        loop {
            if control.exists() {
                self.console.push(
                    Stream::Rig,
                    &format!("ssh: connected to {}", self.cmd.dest()),
                );
                self.session = Some(Session { master, _dir: dir });
                return Ok(());
            }
            if let Ok(Some(_)) = master.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = master.stderr.take() {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), e.read_to_string(&mut err))
                            .await;
                }
                self.control_dir = Some(dir);
                return Err(self.cmd.classify(&err));
            }
            if Instant::now() >= deadline {
                let _ = master.start_kill();
                self.control_dir = Some(dir);
                return Err(SshError::Unreachable {
                    dest: self.cmd.dest(),
                    detail: format!(
                        "no SSH session within {:.0} s (target.connect_timeout_s)",
                        bound.as_secs_f64()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs a shell script on the board, stdin from `input` (or nothing),
    /// at most `timeout`.
    async fn remote(
        &self,
        what: &str,
        script: &str,
        input: Option<&Path>,
        timeout: Duration,
    ) -> Result<Remote, SshError> {
        let argv = self.cmd.remote_argv(script);
        let stdin = match input {
            Some(p) => Stdio::from(std::fs::File::open(p).map_err(|e| SshError::Deploy {
                dest: self.cmd.dest(),
                file: p.to_path_buf(),
                problem: e.to_string(),
            })?),
            None => Stdio::null(),
        };
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| SshError::Local {
                program: "ssh".into(),
                source,
            })?;
        let out = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .map_err(|_| SshError::Timeout {
                dest: self.cmd.dest(),
                what: what.to_string(),
                after: timeout,
            })?
            .map_err(|source| SshError::Local {
                program: "ssh".into(),
                source,
            })?;
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        // 255 is ssh's own failure (connection, authentication), not the script's.
        if out.status.code() == Some(255) {
            return Err(self.cmd.classify(&stderr));
        }
        Ok(Remote {
            ok: out.status.success(),
            status: out.status.to_string(),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr,
        })
    }

    fn remote_failed(&self, what: &str, r: Remote) -> SshError {
        SshError::Remote {
            dest: self.cmd.dest(),
            what: what.to_string(),
            status: r.status,
            stderr: r.stderr,
        }
    }

    /// For `run_as = "service"`: checks once per DUT that the board can run a
    /// transient systemd unit for us, before anything is copied, and fails
    /// with [`SshError::NoSystemd`] naming what is missing.
    pub async fn check_service(&mut self) -> Result<(), SshError> {
        if self.spec.run_as != RunAs::Service || self.service_checked {
            return Ok(());
        }
        let r = self
            .remote(
                "checking for systemd",
                SERVICE_CHECK_SCRIPT,
                None,
                REMOTE_TIMEOUT,
            )
            .await?;
        if let Some((missing, fix)) = service_problems(&r.stdout) {
            return Err(SshError::NoSystemd {
                dest: self.cmd.dest(),
                missing,
                fix,
            });
        }
        self.console.push(
            Stream::Rig,
            &format!(
                "service: systemd runs on the board; the program runs as unit {}",
                self.unit_name()
            ),
        );
        self.service_checked = true;
        Ok(())
    }

    /// Finds (or cross-builds) the agent, checks it suits the board and makes
    /// sure `remote_dir/rig-agent` is that file. Returns its path on the board.
    pub async fn deploy(&mut self) -> Result<String, SshError> {
        let SshProgram::Agent { source, .. } = &self.spec.program else {
            return Ok(String::new());
        };
        let local = match source {
            AgentSource::Local(loc) => find_agent(loc).map_err(|e| SshError::Deploy {
                dest: self.cmd.dest(),
                file: PathBuf::from(REMOTE_AGENT),
                problem: e.to_string(),
            })?,
            AgentSource::Cross(triple) => {
                let triple = triple.clone();
                match &self.deployed {
                    Some(d) => d.local.clone(),
                    None => {
                        self.console.push(
                            Stream::Rig,
                            &format!("cross-building rig-agent for {triple}"),
                        );
                        cross_build(&triple, &self.bench_dir).await?
                    }
                }
            }
        };
        let bytes = std::fs::read(&local).map_err(|e| SshError::Deploy {
            dest: self.cmd.dest(),
            file: local.clone(),
            problem: e.to_string(),
        })?;
        let sha256 = sha256_hex(&bytes);
        let arch = elf_arch(&bytes).map_err(|problem| SshError::Deploy {
            dest: self.cmd.dest(),
            file: local.clone(),
            problem,
        })?;
        let dir = self.spec.remote_dir.clone();
        let remote = format!("{dir}/{REMOTE_AGENT}");
        let probe = self
            .remote(
                "checking the board",
                &format!(
                    "uname -m && mkdir -p {dir} && {{ sha256sum {remote} 2>/dev/null || true; }}"
                ),
                None,
                REMOTE_TIMEOUT,
            )
            .await?;
        if !probe.ok {
            return Err(self.remote_failed(&format!("uname/mkdir -p {dir}"), probe));
        }
        let mut lines = probe.stdout.lines();
        let board = lines.next().unwrap_or_default().trim().to_string();
        let there = lines
            .next()
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_string);
        self.remote_arch = Some(board.clone());
        if !arch_matches(arch, &board) {
            return Err(SshError::Deploy {
                dest: self.cmd.dest(),
                file: local,
                problem: format!(
                    "it is built for {arch} but the board is {board}; cross-build it: agent = {{ cross = \"{}\" }} in the bench file (needs `rustup target add` and a cross linker, see hardware/README.md)",
                    suggest_triple(&board)
                ),
            });
        }
        if there.as_deref() == Some(sha256.as_str()) {
            self.console.push(
                Stream::Rig,
                &format!("deploy: {remote} already has sha256 {sha256}"),
            );
        } else {
            let tmp = format!("{dir}/.{REMOTE_AGENT}.tmp-{}", self.run);
            self.console.push(
                Stream::Rig,
                &format!(
                    "deploy: copying {} ({} bytes, sha256 {sha256}) to {remote}",
                    local.display(),
                    bytes.len()
                ),
            );
            let script = format!(
                "umask 022 && cat > {tmp} && h=$(sha256sum {tmp}) && h=${{h%% *}} && \
                 if [ \"$h\" != {sha256} ]; then rm -f {tmp}; echo \"sha256 on the board is $h\" >&2; exit 3; fi && \
                 chmod 755 {tmp} && mv -f {tmp} {remote}"
            );
            // Generous for a slow link: 1 s per 256 KiB on top of the fixed bound.
            let bound = REMOTE_TIMEOUT + Duration::from_secs(bytes.len() as u64 / (256 * 1024));
            let r = self
                .remote("copying the agent", &script, Some(&local), bound)
                .await?;
            if !r.ok {
                return Err(SshError::Deploy {
                    dest: self.cmd.dest(),
                    file: local,
                    problem: format!("copy to {remote} failed ({}): {}", r.status, r.stderr),
                });
            }
        }
        self.deployed = Some(Deployed {
            local,
            sha256,
            remote: remote.clone(),
        });
        Ok(remote)
    }

    /// The program's argv on the board for this provisioning.
    fn render_remote_argv(&self, config: &DutConfig) -> Result<Vec<String>, BenchError> {
        let values = template::values(config);
        let render = |ts: &[Template]| -> Result<Vec<String>, BenchError> {
            ts.iter()
                .map(|t| t.render(&values, &[]).map_err(BenchError::Template))
                .collect()
        };
        match &self.spec.program {
            SshProgram::Agent { args, .. } => {
                let mut argv = vec![format!("{}/{REMOTE_AGENT}", self.spec.remote_dir)];
                argv.extend(render(args)?);
                argv.extend(agent_args(config));
                Ok(argv)
            }
            SshProgram::Command(c) => render(c),
        }
    }

    /// The remote shell command that starts `argv` as the bench says.
    pub fn start_script(&self, argv: &[String]) -> String {
        let words = argv
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" ");
        let cd = match &self.spec.program {
            SshProgram::Agent { .. } => format!("cd {} && ", self.spec.remote_dir),
            SshProgram::Command(_) => String::new(),
        };
        match self.spec.run_as {
            RunAs::Process => format!("{cd}echo $$ > {} && exec {words}", self.pid_file()),
            RunAs::Service => format!(
                "{cd}if [ \"$(id -u)\" = 0 ]; then s=; else s='sudo -n'; fi; \
                 exec $s systemd-run --quiet --pipe --collect --unit={} \
                 --working-directory=\"$PWD\" -- {words}",
                self.unit_name()
            ),
        }
    }

    /// The remote shell command that makes sure nothing started by this DUT
    /// runs any more; it prints `gone` when that is so.
    pub fn kill_script(&self) -> String {
        match self.spec.run_as {
            RunAs::Process => {
                let pf = self.pid_file();
                format!(
                    "p=$(cat {pf} 2>/dev/null) || {{ echo gone; exit 0; }}; \
                     if kill -0 \"$p\" 2>/dev/null; then kill -TERM \"$p\"; i=0; \
                     while kill -0 \"$p\" 2>/dev/null && [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done; \
                     kill -KILL \"$p\" 2>/dev/null; sleep 0.1; fi; \
                     if kill -0 \"$p\" 2>/dev/null; then echo \"pid $p still running\" >&2; exit 4; fi; \
                     rm -f {pf}; echo gone"
                )
            }
            RunAs::Service => {
                let unit = self.unit_name();
                format!(
                    "if [ \"$(id -u)\" = 0 ]; then s=; else s='sudo -n'; fi; \
                     $s systemctl stop {unit} 2>/dev/null; $s systemctl reset-failed {unit} 2>/dev/null; \
                     if $s systemctl is-active --quiet {unit}; then echo \"unit {unit} still active\" >&2; exit 4; fi; echo gone"
                )
            }
        }
    }

    /// Whether the remote program of the last start still runs (asks the board).
    pub async fn remote_alive(&self) -> Result<bool, BenchError> {
        let script = match self.spec.run_as {
            RunAs::Process => format!(
                "p=$(cat {} 2>/dev/null) && kill -0 \"$p\" 2>/dev/null && echo alive || echo gone",
                self.pid_file()
            ),
            RunAs::Service => format!(
                "systemctl is-active --quiet {} && echo alive || echo gone",
                self.unit_name()
            ),
        };
        let r = self
            .remote("checking the program", &script, None, REMOTE_TIMEOUT)
            .await?;
        Ok(r.stdout.trim() == "alive")
    }

    async fn kill_remote(&mut self) -> Result<(), BenchError> {
        let r = self
            .remote(
                "stopping the program on the board",
                &self.kill_script(),
                None,
                REMOTE_TIMEOUT,
            )
            .await;
        match r {
            Ok(r) if r.ok && r.stdout.trim() == "gone" => {
                self.console
                    .push(Stream::Rig, "the program on the board is gone");
                Ok(())
            }
            Ok(r) => Err(self
                .remote_failed("stopping the program on the board", r)
                .into()),
            // The board is unreachable (powered off, rebooting): nothing of ours
            // can be running there after a power cut, and a reachable board is
            // checked on the next start. Noted, not fatal.
            Err(e) => {
                self.console.push(
                    Stream::Rig,
                    &format!("could not check the program on the board: {e}"),
                );
                Ok(())
            }
        }
    }
}

/// The remote shell script that tells whether the board can run the agent
/// as a transient systemd unit: who we are, whether `systemd-run` and
/// `systemctl` exist (and `sudo -n` may run them when we are not root),
/// systemd's state and PID 1's name. [`service_problems`] reads its output.
pub const SERVICE_CHECK_SCRIPT: &str = "\
if [ \"$(id -u)\" = 0 ]; then s=; echo 'user root'; else s=y; echo \"user $(id -un)\"; fi; \
for p in systemd-run systemctl; do \
if command -v $p >/dev/null 2>&1; then \
if [ -n \"$s\" ] && ! sudo -n -l $p >/dev/null 2>&1; then echo \"nosudo $p\"; fi; \
else echo \"missing $p\"; fi; done; \
echo \"state $(systemctl is-system-running 2>/dev/null)\"; \
echo \"init $(cat /proc/1/comm 2>/dev/null)\"";

/// What stops `run_as = "service"` on a board, from the output of
/// [`SERVICE_CHECK_SCRIPT`]: (what is missing, the fix), or None when the
/// board can run the unit.
pub fn service_problems(output: &str) -> Option<(String, String)> {
    let mut user = String::new();
    let mut missing = Vec::new();
    let mut nosudo = Vec::new();
    let mut state = String::new();
    let mut init = String::new();
    for line in output.lines() {
        let (key, value) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
        let value = value.trim().to_string();
        match key {
            "user" => user = value,
            "missing" => missing.push(value),
            "nosudo" => nosudo.push(value),
            "state" => state = value,
            "init" => init = value,
            _ => {}
        }
    }
    if !missing.is_empty() {
        return Some((
            format!(
                "it has no {} (not found in the login PATH)",
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
            ", or install systemd there".into(),
        ));
    }
    // `systemctl is-system-running`: these states mean systemd is PID 1 and
    // takes new units; "offline" means it is not the init system.
    if !matches!(
        state.as_str(),
        "running" | "degraded" | "starting" | "initializing"
    ) {
        let said = if state.is_empty() {
            "nothing".to_string()
        } else {
            format!("\"{state}\"")
        };
        let pid1 = if init.is_empty() {
            String::new()
        } else {
            format!("; PID 1 is `{init}`")
        };
        return Some((
            format!(
                "systemd is not running as its init system (`systemctl is-system-running` says {said}{pid1})"
            ),
            ", or boot it with systemd as PID 1 (Raspberry Pi OS does)".into(),
        ));
    }
    if !nosudo.is_empty() {
        let tools = nosudo.join(", ");
        return Some((
            format!("user {user} is not root and `sudo -n` may not run {tools} without a password"),
            format!(
                ", or log in as root, or let {user} run them: a line `{user} ALL=(root) NOPASSWD: /usr/bin/systemd-run, /usr/bin/systemctl` in /etc/sudoers.d/rig (Raspberry Pi OS's user pi may already run anything)"
            ),
        ));
    }
    None
}

/// Lower-case hex SHA-256.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The machine an ELF executable is for, in `uname -m` spelling.
fn elf_arch(bytes: &[u8]) -> Result<&'static str, String> {
    use object::Object as _;
    let file = object::File::parse(bytes)
        .map_err(|e| format!("it is not an executable this rig can read: {e}"))?;
    Ok(match file.architecture() {
        object::Architecture::X86_64 => "x86_64",
        object::Architecture::Aarch64 => "aarch64",
        object::Architecture::Arm => "arm",
        object::Architecture::I386 => "i686",
        object::Architecture::Riscv64 => "riscv64",
        _ => "an unknown machine",
    })
}

/// Whether a binary for `arch` runs on a board whose `uname -m` is `board`.
fn arch_matches(arch: &str, board: &str) -> bool {
    match arch {
        "arm" => board.starts_with("arm"),
        "i686" => matches!(board, "i386" | "i486" | "i586" | "i686" | "x86_64"),
        "an unknown machine" => false,
        a => a == board || (a == "aarch64" && board == "arm64"),
    }
}

fn suggest_triple(board: &str) -> &'static str {
    match board {
        "x86_64" => "x86_64-unknown-linux-gnu",
        b if b.starts_with("armv6") => "arm-unknown-linux-gnueabihf",
        b if b.starts_with("arm") => "armv7-unknown-linux-gnueabihf",
        "riscv64" => "riscv64gc-unknown-linux-gnu",
        _ => "aarch64-unknown-linux-gnu",
    }
}

/// The cross linker Debian's `gcc-<triple>` package installs for a Rust
/// target, e.g. `aarch64-linux-gnu-gcc`.
pub fn cross_linker(triple: &str) -> Option<String> {
    let mut parts = triple.split('-');
    let arch = parts.next()?;
    let os_abi: Vec<&str> = parts.skip(1).collect();
    if os_abi.first() != Some(&"linux") {
        return None;
    }
    let abi = os_abi.get(1).copied().unwrap_or("gnu");
    let arch = match arch {
        a if a.starts_with("armv7") || a.starts_with("arm") => "arm",
        "riscv64gc" => "riscv64",
        a => a,
    };
    Some(format!("{arch}-linux-{abi}-gcc"))
}

/// The `cargo build` argv that cross-builds the agent for `triple`.
pub fn cross_build_argv(triple: &str) -> Vec<String> {
    [
        "build",
        "--release",
        "-p",
        "rig-agent",
        "--target",
        triple,
        "--message-format=json-render-diagnostics",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Cross-builds the agent in `dir` (inside the rig workspace) and returns the
/// executable's path.
pub async fn cross_build(triple: &str, dir: &Path) -> Result<PathBuf, SshError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args(cross_build_argv(triple))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let var = format!(
        "CARGO_TARGET_{}_LINKER",
        triple.to_ascii_uppercase().replace(['-', '.'], "_")
    );
    if let Some(linker) = cross_linker(triple) {
        if std::env::var_os(&var).is_none() {
            cmd.env(&var, &linker);
        }
        // The C in the agent's dependencies (vendored OpenSSL, ring, aws-lc)
        // is compiled for the board by the cc crate, which reads these.
        let under = triple.replace(['-', '.'], "_");
        let tools = [
            (format!("CC_{under}"), linker.clone()),
            (
                format!("AR_{under}"),
                format!("{}-ar", linker.trim_end_matches("-gcc")),
            ),
        ];
        for (k, v) in tools {
            if std::env::var_os(&k).is_none() {
                cmd.env(k, v);
            }
        }
    }
    let child = cmd.spawn().map_err(|source| SshError::Local {
        program: cargo.clone(),
        source,
    })?;
    let out = tokio::time::timeout(BUILD_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| SshError::Build {
            target: triple.into(),
            detail: format!("took longer than {} min", BUILD_TIMEOUT.as_secs() / 60),
        })?
        .map_err(|source| SshError::Local {
            program: cargo.clone(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(SshError::Build {
            target: triple.into(),
            detail: build_failure_hint(triple, &format!("{stdout}\n{stderr}")),
        });
    }
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "rig-agent")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| SshError::Build {
            target: triple.into(),
            detail: "cargo reported no rig-agent executable".into(),
        })
}

/// What a failed cross build means, and the fix.
pub fn build_failure_hint(triple: &str, output: &str) -> String {
    let last = output
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with("error"))
        .unwrap_or("cargo failed")
        .to_string();
    if output.contains("may not be installed") || output.contains("can't find crate for `core`") {
        format!("{last}. Install the Rust target: `rustup target add {triple}`")
    } else if output.contains("linker") && output.contains("not found") {
        let pkg = cross_linker(triple)
            .map(|l| format!("gcc-{}", l.trim_end_matches("-gcc")))
            .unwrap_or_else(|| "a cross gcc".into());
        format!("{last}. Install the cross linker: `apt-get install {pkg}`")
    } else {
        last
    }
}

#[async_trait]
impl Dut for SshDut {
    async fn start(&mut self, config: &DutConfig) -> Result<(), BenchError> {
        self.stop().await?;
        self.connect().await?;
        self.check_service().await?;
        self.deploy().await?;
        let argv = self.render_remote_argv(config)?;
        let script = self.start_script(&argv);
        self.remote_argv = argv;
        let command = self
            .cmd
            .remote_argv(&script)
            .iter()
            .map(|w| Template::literal(w))
            .collect();
        let spec = ProcessSpec {
            command,
            cwd: self.bench_dir.clone(),
            env: BTreeMap::new(),
            agent_args: false,
        };
        let inner = self.inner.insert(ProcessDut::with_console(
            spec,
            self.profile.clone(),
            self.start_timeout,
            self.console.clone(),
        ));
        inner.start(config).await
    }

    async fn stop(&mut self) -> Result<(), BenchError> {
        let Some(mut inner) = self.inner.take() else {
            return Ok(());
        };
        let local = inner.stop().await;
        let remote = self.kill_remote().await;
        local.and(remote)
    }

    async fn act(&mut self, action: &DutAction) -> Result<(), BenchError> {
        let supported = self.supports(action);
        match &mut self.inner {
            Some(i) => i.act(action).await,
            None if !supported => Err(BenchError::Unsupported(
                crate::profile::action_name(action).to_string(),
            )),
            None => Err(BenchError::NotRunning("it was not started".into())),
        }
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
        match &mut self.inner {
            Some(i) => i.expect_console(pattern, timeout).await,
            None => Err(BenchError::NotRunning(format!(
                "waiting for `{pattern}`: it was not started"
            ))),
        }
    }

    fn console(&self) -> &dyn ConsoleLog {
        &*self.console
    }

    fn is_running(&mut self) -> bool {
        self.inner.as_mut().is_some_and(|i| i.is_running())
    }

    fn identity(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("kind".into(), "ssh".into());
        m.insert("host".into(), self.cmd.dest());
        m.insert(
            "run_as".into(),
            match self.spec.run_as {
                RunAs::Process => "process",
                RunAs::Service => "service",
            }
            .into(),
        );
        if !self.remote_argv.is_empty() {
            m.insert("command".into(), self.remote_argv.join(" "));
        }
        if let Some(d) = &self.deployed {
            m.insert("program".into(), d.remote.clone());
            m.insert("program_local".into(), d.local.display().to_string());
            m.insert("program_sha256".into(), d.sha256.clone());
        }
        if let Some(a) = &self.remote_arch {
            m.insert("machine".into(), a.clone());
        }
        if self.spec.run_as == RunAs::Service {
            m.insert("unit".into(), self.unit_name());
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
        // The board goes away: drop the local side first (the next start
        // reconnects and checks the board again).
        if let Some(mut i) = self.inner.take() {
            let _ = i.stop().await;
        }
        self.session = None;
        crate::switch::power_cycle(&switch, &self.console).await
    }
}

impl Drop for SshDut {
    fn drop(&mut self) {
        // Dropped unstopped (a cancelled run): make a bounded, best-effort
        // attempt to stop the program on the board before the master goes.
        if self.inner.take().is_none() {
            return;
        }
        let argv = self.cmd.remote_argv(&self.kill_script());
        let Ok(mut child) = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            return;
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SshSpec {
        SshSpec {
            host: "10.78.0.2".into(),
            port: 2222,
            user: Some("pi".into()),
            identity: Some("/k/id".into()),
            known_hosts: Some("/k/known".into()),
            strict_host_key: true,
            program: SshProgram::Agent {
                source: AgentSource::Local(crate::file::AgentLocation::Auto),
                args: vec![],
            },
            remote_dir: "/opt/rig".into(),
            run_as: RunAs::Process,
            connect_timeout: Duration::from_millis(2500),
        }
    }

    #[test]
    fn words_are_quoted_for_the_remote_shell() {
        assert_eq!(shell_quote("coap://10.0.0.1:5683"), "coap://10.0.0.1:5683");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn ssh_options_carry_every_setting() {
        let c = SshCommand::new(spec(), "/tmp/x/cm".into());
        let o = c.options().join(" ");
        for want in [
            "BatchMode=yes",
            "ConnectTimeout=3",
            "ServerAliveInterval=5",
            "StrictHostKeyChecking=yes",
            "-p 2222",
            "UserKnownHostsFile=/k/known",
            "-i /k/id -o IdentitiesOnly=yes",
            "-l pi",
        ] {
            assert!(o.contains(want), "{want} missing in {o}");
        }
        let r = c.remote_argv("echo hi");
        assert_eq!(r.last().map(String::as_str), Some("echo hi"));
        assert!(r.contains(&"ControlMaster=no".to_string()));
        assert!(c.master_argv().contains(&"-N".to_string()));
        assert_eq!(c.dest(), "pi@10.78.0.2:2222");
    }

    #[test]
    fn ssh_messages_become_typed_errors() {
        let c = SshCommand::new(spec(), "/tmp/x/cm".into());
        assert!(matches!(
            c.classify("pi@10.78.0.2: Permission denied (publickey)."),
            SshError::Auth { .. }
        ));
        let e = c.classify("No ED25519 host key is known for [10.78.0.2]:2222 and you have requested strict checking.\nHost key verification failed.");
        assert!(matches!(e, SshError::HostKey { .. }));
        assert!(
            e.to_string()
                .contains("ssh-keyscan -p 2222 10.78.0.2 >> /k/known"),
            "{e}"
        );
        assert!(matches!(
            c.classify("ssh: connect to host 10.78.0.2 port 2222: No route to host"),
            SshError::Unreachable { .. }
        ));
    }

    #[test]
    fn service_and_process_scripts() {
        let mut s = spec();
        let dut = SshDut::new(
            s.clone(),
            None,
            Duration::from_secs(1),
            None,
            Path::new("."),
        )
        .unwrap();
        let argv = vec![
            "/opt/rig/rig-agent".to_string(),
            "--endpoint".into(),
            "a b".into(),
        ];
        let p = dut.start_script(&argv);
        assert!(
            p.starts_with("cd /opt/rig && echo $$ > /tmp/rig-dut-"),
            "{p}"
        );
        assert!(
            p.ends_with("exec /opt/rig/rig-agent --endpoint 'a b'"),
            "{p}"
        );
        s.run_as = RunAs::Service;
        let dut = SshDut::new(s, None, Duration::from_secs(1), None, Path::new(".")).unwrap();
        let sv = dut.start_script(&argv);
        assert!(
            sv.contains(&format!(
                "systemd-run --quiet --pipe --collect --unit={}",
                dut.unit_name()
            )),
            "{sv}"
        );
        assert!(dut.kill_script().contains("systemctl stop rig-agent-"));
    }

    #[test]
    fn what_stops_a_service_is_named() {
        // A Raspberry Pi OS board, logged in as pi with passwordless sudo.
        let ok = "user pi\nstate running\ninit systemd\n";
        assert_eq!(service_problems(ok), None);
        assert_eq!(
            service_problems("user root\nstate degraded\ninit systemd\n"),
            None
        );
        // A container or a board booted with another init.
        let (m, fix) = service_problems("user root\nstate offline\ninit sh\n").unwrap();
        assert_eq!(
            m,
            "systemd is not running as its init system (`systemctl is-system-running` says \"offline\"; PID 1 is `sh`)"
        );
        assert!(fix.contains("PID 1"), "{fix}");
        // No systemd at all (Alpine, Buildroot): both tools named.
        let (m, _) = service_problems(
            "user root\nmissing systemd-run\nmissing systemctl\nstate \ninit busybox\n",
        )
        .unwrap();
        assert_eq!(
            m,
            "it has no `systemd-run` and `systemctl` (not found in the login PATH)"
        );
        // Not root, and sudo wants a password.
        let (m, fix) = service_problems(
            "user pi\nnosudo systemd-run\nnosudo systemctl\nstate running\ninit systemd\n",
        )
        .unwrap();
        assert!(m.contains("user pi is not root"), "{m}");
        assert!(
            fix.contains("pi ALL=(root) NOPASSWD: /usr/bin/systemd-run, /usr/bin/systemctl"),
            "{fix}"
        );
        let e = SshError::NoSystemd {
            dest: "pi@10.78.0.2:22".into(),
            missing: m,
            fix,
        };
        let text = e.to_string();
        assert!(
            text.starts_with("ssh pi@10.78.0.2:22: target.run_as = \"service\" needs systemd on the board, but user pi"),
            "{text}"
        );
        assert!(text.contains("Use run_as = \"process\""), "{text}");
        // Nothing answered: treated as no systemd, not as success.
        assert!(service_problems("").is_some());
    }

    #[test]
    fn architectures_and_cross_linkers() {
        assert!(arch_matches("aarch64", "aarch64"));
        assert!(!arch_matches("x86_64", "aarch64"));
        assert!(arch_matches("arm", "armv7l"));
        assert_eq!(
            cross_linker("aarch64-unknown-linux-gnu").as_deref(),
            Some("aarch64-linux-gnu-gcc")
        );
        assert_eq!(
            cross_linker("armv7-unknown-linux-gnueabihf").as_deref(),
            Some("arm-linux-gnueabihf-gcc")
        );
        assert_eq!(cross_linker("thumbv7em-none-eabihf"), None);
        let h = build_failure_hint(
            "aarch64-unknown-linux-gnu",
            "error[E0463]: can't find crate for `core`\n  = note: the `aarch64-unknown-linux-gnu` target may not be installed",
        );
        assert!(
            h.contains("rustup target add aarch64-unknown-linux-gnu"),
            "{h}"
        );
        let h = build_failure_hint(
            "aarch64-unknown-linux-gnu",
            "error: linker `aarch64-linux-gnu-gcc` not found",
        );
        assert!(h.contains("apt-get install gcc-aarch64-linux-gnu"), "{h}");
        let own = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(elf_arch(&own).unwrap(), std::env::consts::ARCH);
    }
}
