//! The SSH target against a real OpenSSH server (Debian's `/usr/sbin/sshd`)
//! running in a network namespace that plays the Raspberry Pi:
//!
//! ```text
//!  host (this test)                          namespace rigssh-<pid>-<n> ("the Pi")
//!  rsh<pid><n> 10.78.X.1/24  <──── veth ────>  eth0 10.78.X.2/24
//!  Lwm2mServer 10.78.X.1:<port>               sshd -D -e -f <tmp>/sshd_config, port 2222,
//!  SshDut (ssh client, control master)        key-only, AuthorizedKeysFile in <tmp>
//! ```
//!
//! The namespace isolates the network only, so the "board's" files are this
//! host's: the agent is deployed into a temporary `remote_dir`, and the tests
//! can look in `/proc` to see whether the deployed agent really runs.
//!
//! `run_as = "service"` needs systemd as PID 1 on the board, which this
//! container does not run (`systemctl is-system-running` says "offline"). So
//! the service tests are two: against the real `systemctl` (the clear
//! "needs systemd" error, checked before anything is copied, and the same
//! board then used with `run_as = "process"`), and against stand-ins for
//! `systemd-run` and `systemctl` put first in the login PATH of a second sshd
//! (`SetEnv PATH=...`). The stand-ins are the lowest layer only: they do what
//! systemd would for the exact command lines the SSH target sends (run the
//! program with its stdio piped back, stop it, report it active) and log
//! every call, so everything above them (the check, the scripts, `sudo`
//! selection, console, stop) is the real code. See [`FAKE_SYSTEMD_RUN`].
//!
//! These tests need root (namespaces, sshd). Without it they fail with a
//! clear message, unless `RIG_SKIP_PRIVILEGED=1` says to skip them (CI runs
//! as root). Every wait is bounded; a [`Pi`] guard kills sshd and deletes the
//! namespace (and with it the veth pair) on every path.

#![allow(clippy::unwrap_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use rig_bench::dut::{DutAction, DutConfig};
use rig_bench::file::{AgentLocation, Bench};
use rig_bench::ssh::{SshError, ssh_error};
use rig_bench::target::{find_agent, open};
use rig_services::lwm2m::{Lwm2mServer, ServerEvent, wait_for};

/// Whether privileged tests may run; panics with the reason if they must
/// but cannot.
fn privileged() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("RIG_SKIP_PRIVILEGED").as_deref() == Ok("1") {
        eprintln!("SKIPPED: the SSH target tests need root (RIG_SKIP_PRIVILEGED=1)");
        return false;
    }
    panic!(
        "the SSH target tests need root (network namespaces and sshd); run them as root, \
         or set RIG_SKIP_PRIVILEGED=1 to skip them explicitly"
    );
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The "Raspberry Pi": a namespace with a veth to the host and an sshd in it.
/// Dropping it stops sshd and deletes the namespace.
struct Pi {
    ns: String,
    host_if: String,
    host_addr: Ipv4Addr,
    addr: Ipv4Addr,
    dir: tempfile::TempDir,
    sshd: Option<Child>,
    /// Holds this Pi's subnet (see [`claim_subnet`]); released after `drop`
    /// has deleted the namespace and the veth.
    _subnet_lock: std::fs::File,
}

const SSH_PORT: u16 = 2222;

/// Stand-in for `systemd-run` (see the module doc): runs the command in the
/// foreground, as `systemd-run --pipe` would with its stdio, after recording
/// its pid under the unit's name. `@STATE@` is the state folder.
const FAKE_SYSTEMD_RUN: &str = r#"#!/bin/sh
# Test stand-in for systemd-run (rig/bench/tests/ssh.rs): systemd is not PID 1 here.
echo "systemd-run $*" >> @STATE@/calls
unit=; wd=/
while [ $# -gt 0 ]; do
  case "$1" in
    --unit=*) unit=${1#--unit=} ;;
    --working-directory=*) wd=${1#--working-directory=} ;;
    --) shift; break ;;
    -*) ;;
    *) break ;;
  esac
  shift
done
[ -n "$unit" ] || { echo "fake systemd-run: no --unit" >&2; exit 1; }
cd "$wd" || exit 1
echo $$ > @STATE@/$unit.pid
exec "$@"
"#;

/// Stand-in for `systemctl`: `is-system-running`, `stop`, `reset-failed`,
/// `is-active` on the units [`FAKE_SYSTEMD_RUN`] started.
const FAKE_SYSTEMCTL: &str = r#"#!/bin/sh
# Test stand-in for systemctl (rig/bench/tests/ssh.rs).
echo "systemctl $*" >> @STATE@/calls
case "$1" in
  is-system-running) echo running ;;
  stop)
    p=$(cat @STATE@/$2.pid 2>/dev/null) || exit 0
    kill -TERM "$p" 2>/dev/null; i=0
    while kill -0 "$p" 2>/dev/null && [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done
    kill -KILL "$p" 2>/dev/null; sleep 0.1
    rm -f @STATE@/$2.pid ;;
  reset-failed) ;;
  is-active)
    [ "$2" = --quiet ] && shift
    p=$(cat @STATE@/$2.pid 2>/dev/null) && kill -0 "$p" 2>/dev/null ;;
  *) echo "fake systemctl: unsupported: $*" >&2; exit 1 ;;
esac
"#;

/// Claims a host-side subnet `10.78.X.0/24` for one [`Pi`].
///
/// The host end of the veth lives in the root namespace, so two test
/// processes (nextest runs every test in its own) must never pick the same
/// `X`: the host would route to either sshd, and the test would meet the other
/// Pi's host key. Each `X` is claimed with an exclusive lock on
/// `/tmp/rig-ssh-test-10.78.X.lock`, held by the returned file for the Pi's
/// lifetime. The kernel drops the lock when the process dies, so a crashed run
/// leaves no stale claim. A subnet still on a host interface (a run killed
/// before its guard ran) is skipped too.
fn claim_subnet() -> (u8, std::fs::File) {
    let start = std::process::id() % 250;
    for i in 0..250u32 {
        let x = u8::try_from((start + i) % 250).unwrap();
        let path = std::env::temp_dir().join(format!("rig-ssh-test-10.78.{x}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        if file.try_lock().is_err() {
            continue;
        }
        let out = Command::new("ip")
            .args(["-o", "-4", "addr", "show", "to", &format!("10.78.{x}.0/24")])
            .output()
            .expect("run ip (apt-get install iproute2)");
        if out.stdout.is_empty() {
            return (x, file);
        }
    }
    panic!("no free test subnet in 10.78.0.0/16: every one is locked or in use");
}

impl Pi {
    fn start() -> Pi {
        Self::start_with(false)
    }

    /// A Pi whose login PATH starts with the systemd stand-ins.
    fn start_fake_systemd() -> Pi {
        Self::start_with(true)
    }

    /// Every call the systemd stand-ins received.
    fn systemd_calls(&self) -> String {
        std::fs::read_to_string(self.path("systemd/calls")).unwrap_or_default()
    }

    fn start_with(fake_systemd: bool) -> Pi {
        static NEXT: AtomicU8 = AtomicU8::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let (subnet, subnet_lock) = claim_subnet();
        let mut pi = Pi {
            ns: format!("rigssh-{pid}-{n}"),
            host_if: format!("rsh{}{n}", pid % 10_000_000),
            host_addr: Ipv4Addr::new(10, 78, subnet, 1),
            addr: Ipv4Addr::new(10, 78, subnet, 2),
            dir: tempfile::tempdir().unwrap(),
            sshd: None,
            _subnet_lock: subnet_lock,
        };
        pi.build(fake_systemd);
        pi
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn build(&mut self, fake_systemd: bool) {
        let ns = self.ns.clone();
        run("ip", &["netns", "add", &ns]);
        run("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        run(
            "ip",
            &[
                "link",
                "add",
                &self.host_if,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &ns,
            ],
        );
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", self.host_addr),
                "dev",
                &self.host_if,
            ],
        );
        run("ip", &["link", "set", &self.host_if, "up"]);
        run(
            "ip",
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", self.addr),
                "dev",
                "eth0",
            ],
        );
        run("ip", &["-n", &ns, "link", "set", "eth0", "up"]);

        // Keys: the Pi's host key, the rig's client key, a key the Pi does not know.
        for (name, kind) in [
            ("host_key", "ed25519"),
            ("client", "ed25519"),
            ("other", "ed25519"),
        ] {
            let p = self.path(name);
            run(
                "ssh-keygen",
                &[
                    "-q",
                    "-t",
                    kind,
                    "-N",
                    "",
                    "-C",
                    name,
                    "-f",
                    p.to_str().unwrap(),
                ],
            );
        }
        std::fs::copy(self.path("client.pub"), self.path("authorized_keys")).unwrap();
        let host_pub = std::fs::read_to_string(self.path("host_key.pub")).unwrap();
        std::fs::write(
            self.path("known_hosts"),
            format!("[{}]:{SSH_PORT} {host_pub}", self.addr),
        )
        .unwrap();
        std::fs::write(self.path("known_hosts_empty"), "").unwrap();
        let mut set_env = String::new();
        if fake_systemd {
            let bin = self.path("fakebin");
            let state = self.path("systemd");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::create_dir_all(&state).unwrap();
            for (name, text) in [
                ("systemd-run", FAKE_SYSTEMD_RUN),
                ("systemctl", FAKE_SYSTEMCTL),
            ] {
                let p = bin.join(name);
                std::fs::write(&p, text.replace("@STATE@", state.to_str().unwrap())).unwrap();
                run("chmod", &["755", p.to_str().unwrap()]);
            }
            set_env = format!(
                "SetEnv PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
                bin.display()
            );
        }
        let cfg = format!(
            "Port {SSH_PORT}\nListenAddress {addr}\nHostKey {dir}/host_key\n\
             PidFile none\nAuthorizedKeysFile {dir}/authorized_keys\n\
             PubkeyAuthentication yes\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
             UsePAM no\nUseDNS no\nStrictModes no\nLogLevel VERBOSE\n{set_env}",
            addr = self.addr,
            dir = self.dir.path().display(),
        );
        std::fs::write(self.path("sshd_config"), cfg).unwrap();
        // sshd's privilege separation folder (the Debian service creates it).
        std::fs::create_dir_all("/run/sshd").unwrap();
        let log = std::fs::File::create(self.path("sshd.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, "/usr/sbin/sshd", "-D", "-e", "-f"])
            .arg(self.path("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start /usr/sbin/sshd (apt-get install openssh-server)");
        self.sshd = Some(child);
        // Ready when it accepts a TCP connection (at most 10 s).
        let to = SocketAddr::from((self.addr, SSH_PORT));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect_timeout(&to, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.sshd.as_mut().map(Child::try_wait) {
                panic!("sshd exited ({status}): {}", self.sshd_log());
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not listen on {to} within 10 s: {}",
                self.sshd_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn sshd_log(&self) -> String {
        std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }

    /// A bench file for this Pi, with `extra` target lines; returns its path.
    fn bench(&self, name: &str, extra: &str) -> PathBuf {
        let text = format!(
            "[bench]\nname = \"{name}\"\n[target]\nkind = \"ssh\"\nhost = \"{addr}\"\n\
             port = {SSH_PORT}\nuser = \"root\"\nconnect_timeout_s = 5\n{extra}\n[timeouts]\nstart_s = 20\n",
            addr = self.addr
        );
        let p = self.path(&format!("{name}.toml"));
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Pi {
    fn drop(&mut self) {
        if let Some(mut c) = self.sshd.take() {
            // `ip netns exec` execs sshd, so this is sshd's pid.
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .stderr(Stdio::null())
            .status();
    }
}

fn ensure_agent() -> PathBuf {
    if let Ok(p) = find_agent(&AgentLocation::Auto) {
        return p;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = Command::new(cargo)
        .args(["build", "-p", "rig-agent"])
        .current_dir(root)
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo build -p rig-agent failed");
    find_agent(&AgentLocation::Auto).expect("agent after build")
}

/// Pids of processes whose executable is `exe` (the "board" shares our /proc).
fn running(exe: &Path) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if std::fs::read_link(e.path().join("exe")).is_ok_and(|p| p == exe) {
            out.push(pid);
        }
    }
    out
}

/// Waits (at most `within`) until nothing runs `exe`.
fn gone_within(exe: &Path, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if running(exe).is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn config(endpoint: &str, server: &Lwm2mServer) -> DutConfig {
    DutConfig {
        endpoint: endpoint.into(),
        server_uri: server.uri(),
        ssid: 1,
        lifetime_s: 300,
        binding: "U".into(),
        default_pmin_s: None,
        default_pmax_s: None,
        time_scale: 1.0,
        extra: BTreeMap::new(),
    }
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_is_deployed_started_and_stopped_on_a_real_sshd() {
    if !privileged() {
        return;
    }
    let agent = ensure_agent();
    let pi = Pi::start();
    let remote_dir = pi.path("remote");
    let bench_path = pi.bench(
        "pi",
        &format!(
            "identity = \"client\"\nknown_hosts = \"known_hosts\"\nagent = \"{}\"\nremote_dir = \"{}\"",
            agent.display(),
            remote_dir.display()
        ),
    );
    let bench = Bench::load(&bench_path).unwrap();
    let server = Lwm2mServer::bind(SocketAddr::from((pi.host_addr, 0)))
        .await
        .unwrap();
    let mut events = server.events();
    let evidence = tempfile::tempdir().unwrap();
    let mut dut = open(&bench, evidence.path()).unwrap();
    let deployed = remote_dir.join("rig-agent");

    let result = tokio::time::timeout(Duration::from_secs(90), async {
        // Start: connect, deploy (copy, check, rename), run; `ready` is awaited.
        dut.start(&config("pi-ep-1", &server)).await.unwrap();
        assert!(dut.is_running());
        assert_eq!(sha256_hex(&deployed), sha256_hex(&agent), "deployed file");
        let registered = wait_for(
            &mut events,
            Duration::from_secs(20),
            |e| matches!(e, ServerEvent::Registered { endpoint, .. } if endpoint == "pi-ep-1"),
        )
        .await;
        assert!(
            registered.is_some(),
            "no Register from pi-ep-1 within 20 s; console:\n{}",
            dut.console().tail(30)
        );
        // Registered from the Pi's address, through the veth.
        let reg = server.registration("pi-ep-1").expect("registration");
        assert_eq!(reg.peer.ip(), std::net::IpAddr::V4(pi.addr), "{reg:?}");
        assert_eq!(running(&deployed).len(), 1, "one agent runs on the board");

        // The console comes back over ssh: a profile action and its answer.
        dut.act(&DutAction::Custom("status".into(), vec![]))
            .await
            .unwrap();
        let console = dut.console().since(0);
        assert!(console.contains("deploy: copying"), "{console}");
        assert!(console.contains("ok status"), "{console}");
        let log = std::fs::read_to_string(evidence.path().join("console/dut.log")).unwrap();
        assert!(log.contains("out] ok status"), "{log}");

        let id = dut.identity();
        assert_eq!(id["kind"], "ssh");
        assert_eq!(id["host"], format!("root@{}:{SSH_PORT}", pi.addr));
        assert_eq!(id["program_sha256"], sha256_hex(&agent));
        assert_eq!(id["machine"], std::env::consts::ARCH);

        // Stop: the profile's quit, and the board is checked.
        dut.stop().await.unwrap();
        assert!(!dut.is_running());
        assert!(
            gone_within(&deployed, Duration::from_secs(5)),
            "the agent still runs after stop: {:?}",
            running(&deployed)
        );

        // A second start finds the same file on the board: nothing is copied.
        let mark = dut.console().mark();
        dut.start(&config("pi-ep-2", &server)).await.unwrap();
        let again = dut.console().since(mark);
        assert!(again.contains("already has sha256"), "{again}");
        assert!(!again.contains("deploy: copying"), "{again}");
        let registered = wait_for(
            &mut events,
            Duration::from_secs(20),
            |e| matches!(e, ServerEvent::Registered { endpoint, .. } if endpoint == "pi-ep-2"),
        )
        .await;
        assert!(registered.is_some(), "{}", dut.console().tail(30));
    })
    .await;
    // Dropped while running (a cancelled run): the agent on the board is stopped too.
    drop(dut);
    result.expect("the test took longer than 90 s");
    assert!(
        gone_within(&deployed, Duration::from_secs(10)),
        "the agent still runs after the DUT was dropped: {:?}",
        running(&deployed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_program_that_ignores_quit_is_killed_on_the_board() {
    if !privileged() {
        return;
    }
    let pi = Pi::start();
    // A program "already on the board" that ignores stdin and SIGTERM.
    let script = pi.path("stubborn.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ntrap '' TERM HUP\necho started \"$1\"\nwhile :; do sleep 0.2; done\n",
    )
    .unwrap();
    run("chmod", &["755", script.to_str().unwrap()]);
    let bench_path = pi.bench(
        "stubborn",
        &format!(
            "identity = \"client\"\nknown_hosts = \"known_hosts\"\ncommand = [\"{}\", \"{{endpoint}}\"]",
            script.display()
        ),
    );
    let bench = Bench::load(&bench_path).unwrap();
    let evidence = tempfile::tempdir().unwrap();
    let mut dut = open(&bench, evidence.path()).unwrap();
    let server = Lwm2mServer::bind(SocketAddr::from((pi.host_addr, 0)))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        dut.start(&config("it's me", &server)).await.unwrap();
        // The endpoint went through the remote shell as one word, quote included.
        let line = dut
            .expect_console("started", Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(line, "started it's me");
        let sh_pids = || {
            let mut pids = Vec::new();
            for e in std::fs::read_dir("/proc").unwrap().flatten() {
                let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                let cmd = String::from_utf8_lossy(&cmd);
                // The local `ssh` carries the script path in its remote command.
                let local_ssh = cmd.split('\0').next().is_some_and(|a| a.ends_with("ssh"));
                if !local_ssh && cmd.contains(script.to_str().unwrap()) {
                    pids.push(e.file_name().to_string_lossy().to_string());
                }
            }
            pids
        };
        assert!(!sh_pids().is_empty(), "the program runs on the board");
        dut.stop().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !sh_pids().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(sh_pids().is_empty(), "still running: {:?}", sh_pids());
        let console = dut.console().since(0);
        assert!(
            console.contains("the program on the board is gone"),
            "{console}"
        );
    })
    .await
    .expect("the test took longer than 60 s");
}

fn expect_ssh_error(e: &rig_bench::BenchError) -> &SshError {
    ssh_error(e).unwrap_or_else(|| panic!("not an SSH error: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_unknown_host_key_and_dead_host_are_clear_bounded_errors() {
    if !privileged() {
        return;
    }
    let agent = ensure_agent();
    let pi = Pi::start();
    let server = Lwm2mServer::bind(SocketAddr::from((pi.host_addr, 0)))
        .await
        .unwrap();
    let remote_dir = pi.path("remote");
    let common = format!(
        "agent = \"{}\"\nremote_dir = \"{}\"",
        agent.display(),
        remote_dir.display()
    );
    let evidence = tempfile::tempdir().unwrap();

    // A key the Pi does not know.
    let bench = Bench::load(&pi.bench(
        "wrong-key",
        &format!("identity = \"other\"\nknown_hosts = \"known_hosts\"\n{common}"),
    ))
    .unwrap();
    let mut dut = open(&bench, evidence.path()).unwrap();
    let e = dut.start(&config("x", &server)).await.unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(expect_ssh_error(&e), SshError::Auth { .. }),
        "{text}"
    );
    assert!(
        text.contains(&format!("root@{}:{SSH_PORT}", pi.addr)),
        "{text}"
    );
    assert!(text.contains("Permission denied"), "{text}");
    assert!(text.contains("ssh-copy-id -i"), "{text}");
    assert!(!dut.is_running());

    // An unknown host key with strict checking (the default).
    let bench = Bench::load(&pi.bench(
        "unknown-host",
        &format!("identity = \"client\"\nknown_hosts = \"known_hosts_empty\"\n{common}"),
    ))
    .unwrap();
    let mut dut = open(&bench, evidence.path()).unwrap();
    let e = dut.start(&config("x", &server)).await.unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(expect_ssh_error(&e), SshError::HostKey { .. }),
        "{text}"
    );
    assert!(
        text.contains(&format!("ssh-keyscan -p {SSH_PORT} {}", pi.addr)),
        "{text}"
    );
    assert!(!remote_dir.join("rig-agent").exists(), "nothing deployed");

    // The same host with strict_host_key = false: trusted on first use, and
    // its key recorded.
    std::fs::write(pi.path("known_hosts_tofu"), "").unwrap();
    let bench = Bench::load(&pi.bench(
        "tofu",
        &format!(
            "identity = \"client\"\nknown_hosts = \"known_hosts_tofu\"\nstrict_host_key = false\n{common}"
        ),
    ))
    .unwrap();
    let mut dut = open(&bench, evidence.path()).unwrap();
    tokio::time::timeout(Duration::from_secs(60), dut.start(&config("tofu", &server)))
        .await
        .expect("start within 60 s")
        .unwrap();
    dut.stop().await.unwrap();
    let recorded = std::fs::read_to_string(pi.path("known_hosts_tofu")).unwrap();
    assert!(recorded.contains("ssh-ed25519"), "{recorded}");

    // A host nobody answers for (its address is on the link, no ARP reply):
    // bounded by connect_timeout_s = 2.
    let dead = Ipv4Addr::new(
        pi.addr.octets()[0],
        pi.addr.octets()[1],
        pi.addr.octets()[2],
        3,
    );
    let path = pi.path("dead.toml");
    std::fs::write(
        &path,
        format!(
            "[bench]\nname = \"dead\"\n[target]\nkind = \"ssh\"\nhost = \"{dead}\"\nuser = \"pi\"\n\
             identity = \"client\"\nknown_hosts = \"known_hosts\"\nconnect_timeout_s = 2\n{common}\n"
        ),
    )
    .unwrap();
    let bench = Bench::load(&path).unwrap();
    let mut dut = open(&bench, evidence.path()).unwrap();
    let t0 = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(20), dut.start(&config("x", &server)))
        .await
        .expect("the failure is bounded")
        .unwrap_err();
    let took = t0.elapsed();
    let text = e.to_string();
    assert!(
        matches!(expect_ssh_error(&e), SshError::Unreachable { .. }),
        "{text}"
    );
    assert!(text.contains(&format!("pi@{dead}:22")), "{text}");
    assert!(took < Duration::from_secs(8), "took {took:?}: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_mode_without_systemd_is_a_clear_error_and_process_mode_still_runs() {
    if !privileged() {
        return;
    }
    let agent = ensure_agent();
    // The real systemd-run and systemctl: systemd is not PID 1 in this container.
    let pi = Pi::start();
    let server = Lwm2mServer::bind(SocketAddr::from((pi.host_addr, 0)))
        .await
        .unwrap();
    let mut events = server.events();
    let remote_dir = pi.path("remote");
    let common = format!(
        "identity = \"client\"\nknown_hosts = \"known_hosts\"\nagent = \"{}\"\nremote_dir = \"{}\"",
        agent.display(),
        remote_dir.display()
    );
    let evidence = tempfile::tempdir().unwrap();

    let bench = Bench::load(&pi.bench("svc", &format!("{common}\nrun_as = \"service\""))).unwrap();
    let mut dut = open(&bench, evidence.path()).unwrap();
    let e = tokio::time::timeout(Duration::from_secs(30), dut.start(&config("svc", &server)))
        .await
        .expect("the failure is bounded")
        .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(expect_ssh_error(&e), SshError::NoSystemd { .. }),
        "{text}"
    );
    let dest = format!("root@{}:{SSH_PORT}", pi.addr);
    assert!(
        text.contains(&format!(
            "ssh {dest}: target.run_as = \"service\" needs systemd on the board, but systemd is not running as its init system (`systemctl is-system-running` says \"offline\"; PID 1 is `"
        )),
        "{text}"
    );
    assert!(text.contains("Use run_as = \"process\""), "{text}");
    assert!(!dut.is_running());
    // Checked before the copy: nothing was put on the board.
    assert!(!remote_dir.join("rig-agent").exists(), "nothing deployed");

    // The same board with run_as = "process" runs the agent.
    let bench = Bench::load(&pi.bench("proc", &format!("{common}\nrun_as = \"process\""))).unwrap();
    let mut dut = open(&bench, evidence.path()).unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        dut.start(&config("proc-ep", &server)).await.unwrap();
        let registered = wait_for(
            &mut events,
            Duration::from_secs(20),
            |e| matches!(e, ServerEvent::Registered { endpoint, .. } if endpoint == "proc-ep"),
        )
        .await;
        assert!(registered.is_some(), "{}", dut.console().tail(30));
        assert_eq!(dut.identity()["run_as"], "process");
        dut.stop().await.unwrap();
    })
    .await
    .expect("the process start took longer than 60 s");
    assert!(
        gone_within(&remote_dir.join("rig-agent"), Duration::from_secs(5)),
        "the agent still runs after stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_mode_starts_a_unit_with_systemd_run_and_stops_it_with_systemctl() {
    if !privileged() {
        return;
    }
    let agent = ensure_agent();
    let pi = Pi::start_fake_systemd();
    let server = Lwm2mServer::bind(SocketAddr::from((pi.host_addr, 0)))
        .await
        .unwrap();
    let mut events = server.events();
    let remote_dir = pi.path("remote");
    let bench = Bench::load(&pi.bench(
        "svc",
        &format!(
            "identity = \"client\"\nknown_hosts = \"known_hosts\"\nagent = \"{}\"\nremote_dir = \"{}\"\nrun_as = \"service\"",
            agent.display(),
            remote_dir.display()
        ),
    ))
    .unwrap();
    let evidence = tempfile::tempdir().unwrap();
    let mut dut = open(&bench, evidence.path()).unwrap();
    let deployed = remote_dir.join("rig-agent");
    tokio::time::timeout(Duration::from_secs(90), async {
        dut.start(&config("svc-ep", &server)).await.unwrap();
        let registered = wait_for(
            &mut events,
            Duration::from_secs(20),
            |e| matches!(e, ServerEvent::Registered { endpoint, .. } if endpoint == "svc-ep"),
        )
        .await;
        assert!(registered.is_some(), "{}", dut.console().tail(30));
        let id = dut.identity();
        assert_eq!(id["run_as"], "service");
        let unit = id["unit"].clone();
        assert!(unit.starts_with("rig-agent-"), "{unit}");
        let calls = pi.systemd_calls();
        assert!(calls.starts_with("systemctl is-system-running\n"), "{calls}");
        // root needs no sudo; the unit runs the deployed agent in remote_dir.
        let started = format!(
            "systemd-run --quiet --pipe --collect --unit={unit} --working-directory={dir} -- {dir}/rig-agent ",
            dir = remote_dir.display()
        );
        assert!(calls.contains(&started), "{calls}");
        assert!(calls.contains("--endpoint svc-ep"), "{calls}");
        assert_eq!(running(&deployed).len(), 1, "one agent runs on the board");

        // The console is the unit's stdout, piped back.
        dut.act(&DutAction::Custom("status".into(), vec![]))
            .await
            .unwrap();
        let console = dut.console().since(0);
        assert!(
            console.contains(&format!(
                "service: systemd runs on the board; the program runs as unit {unit}"
            )),
            "{console}"
        );
        assert!(console.contains("ok status"), "{console}");

        // Stop: the profile's quit, then systemctl stop and reset-failed.
        dut.stop().await.unwrap();
        assert!(!dut.is_running());
        let calls = pi.systemd_calls();
        for want in [
            format!("systemctl stop {unit}"),
            format!("systemctl reset-failed {unit}"),
            format!("systemctl is-active --quiet {unit}"),
        ] {
            assert!(calls.contains(&want), "{want} missing in:\n{calls}");
        }
        assert!(
            gone_within(&deployed, Duration::from_secs(5)),
            "the agent still runs after stop: {:?}",
            running(&deployed)
        );
        // A restart is a stop and a new unit with the new settings; the
        // board was checked once.
        dut.start(&config("svc-ep-2", &server)).await.unwrap();
        let registered = wait_for(
            &mut events,
            Duration::from_secs(20),
            |e| matches!(e, ServerEvent::Registered { endpoint, .. } if endpoint == "svc-ep-2"),
        )
        .await;
        assert!(registered.is_some(), "{}", dut.console().tail(30));
        let calls = pi.systemd_calls();
        assert_eq!(calls.matches("is-system-running").count(), 1, "{calls}");
        assert_eq!(calls.matches("systemd-run ").count(), 2, "{calls}");
        dut.stop().await.unwrap();
    })
    .await
    .expect("the test took longer than 90 s");

    // A program that ignores quit, SIGHUP and SIGTERM: only `systemctl stop`
    // (the stand-in's SIGKILL after 3 s, as systemd's stop timeout would) ends it.
    let script = pi.path("stubborn.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ntrap '' TERM HUP\necho started \"$1\"\nwhile :; do sleep 0.2; done\n",
    )
    .unwrap();
    run("chmod", &["755", script.to_str().unwrap()]);
    let bench = Bench::load(&pi.bench(
        "stubborn-svc",
        &format!(
            "identity = \"client\"\nknown_hosts = \"known_hosts\"\nrun_as = \"service\"\ncommand = [\"{}\", \"{{endpoint}}\"]",
            script.display()
        ),
    ))
    .unwrap();
    let mut dut = open(&bench, evidence.path()).unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        dut.start(&config("stubborn", &server)).await.unwrap();
        let line = dut
            .expect_console("started", Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(line, "started stubborn");
        let unit = dut.identity()["unit"].clone();
        let pid: i32 = std::fs::read_to_string(pi.path(&format!("systemd/{unit}.pid")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let alive =
            |pid: i32| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        assert!(alive(pid));
        dut.stop().await.unwrap();
        assert!(
            pi.systemd_calls()
                .contains(&format!("systemctl stop {unit}")),
            "{}",
            pi.systemd_calls()
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!alive(pid), "the unit's program {pid} still runs");
    })
    .await
    .expect("the stubborn test took longer than 60 s");
}
