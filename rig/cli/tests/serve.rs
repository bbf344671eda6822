//! `rig serve` end to end: the real binary on loopback with free ports (read
//! from its banner), registered with by independent clients (libcoap's GnuTLS
//! client in PSK, RPK and PKI; the reference agent over CoAP and PSK), a wrong
//! PSK refused with its reason, and SIGINT/SIGTERM stopping it with exit 0
//! within a bound. Also: bad flags give clear errors.
//!
//! libcoap's `coap-client` exits 0 even when the handshake fails, so these
//! tests judge by what `rig serve` printed, never by the client's exit code.
//! Every wait is bounded; a child that outlives its test is killed.

#![allow(clippy::panic, clippy::unwrap_used)] // test helpers may panic: that is how a test fails

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

mod common;
use common::{RIG, ensure_agent, rig, root};
/// How long any one expected line may take.
const WAIT: Duration = Duration::from_secs(20);
/// How long `rig serve` may take to stop after a signal (its own bound is 5 s).
const STOP_BOUND: Duration = Duration::from_secs(10);

/// A PSK whose key is text, because libcoap's `-k` takes the key as text.
const PSK_IDENTITY: &str = "serve-psk";
const PSK_KEY: &str = "serve-secret-key";
/// The fixture store's PSK device, for the reference agent (hex key).
const AGENT_PSK_IDENTITY: &str = "rig-dev-psk";
const AGENT_PSK_KEY_HEX: &str = "c7ffbeddffd4dc8c4787b554a90a9184";

fn pki(name: &str) -> String {
    root()
        .join("fixtures/pki")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// `rig-agent` next to `rig` (built once if missing).
fn agent_bin() -> PathBuf {
    ensure_agent()
}

fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} is not installed: install Debian's libcoap3-bin (listed in rig/xtask/apt-packages.txt)"
    );
}

/// A bench like hardware/loopback.toml whose [security] store adds a PSK
/// device with a text key; every other key defaults to the test PKI.
fn bench_with_text_psk(dir: &Path) -> PathBuf {
    let fixture = std::fs::read_to_string(root().join("fixtures/pki/store.toml")).unwrap();
    let hex: String = PSK_KEY.bytes().map(|b| format!("{b:02x}")).collect();
    let store = format!(
        "{fixture}\n[[psk]]\nendpoint = \"{PSK_IDENTITY}\"\nidentity = \"{PSK_IDENTITY}\"\nkey_hex = \"{hex}\"\n"
    );
    std::fs::write(dir.join("store.toml"), store).unwrap();
    let loopback = std::fs::read_to_string(root().join("hardware/loopback.toml")).unwrap();
    let bench = dir.join("bench.toml");
    std::fs::write(
        &bench,
        format!("{loopback}\n[security]\nstore = \"store.toml\"\n"),
    )
    .unwrap();
    bench
}

/// A running `rig serve`, its stdout read line by line on a thread.
struct Serve {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Serve {
    fn start(args: &[&str]) -> Serve {
        let mut child = Command::new(RIG)
            .arg("serve")
            .args(args)
            .current_dir(root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Serve {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line satisfying `pred`, within [`WAIT`].
    fn expect(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no {what} within {WAIT:?}; rig serve printed:\n{}",
                        self.seen.join("\n")
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.child.kill();
                    let mut err = String::new();
                    if let Some(mut e) = self.child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut e, &mut err);
                    }
                    panic!(
                        "rig serve ended before {what}; stdout:\n{}\nstderr:\n{err}",
                        self.seen.join("\n")
                    )
                }
            }
        }
    }

    /// The URI on the banner row of `service` whose description contains `what`.
    fn listener(&mut self, scheme: &str, what: &str) -> String {
        let line = self.expect(&format!("a {scheme} listener ({what})"), |l| {
            l.contains(&format!("{scheme}://")) && l.contains(what)
        });
        line.split_whitespace()
            .find(|w| w.starts_with(&format!("{scheme}://")))
            .unwrap()
            .to_string()
    }

    /// An event line: `event` for `endpoint`.
    fn event(&mut self, event: &str, endpoint: &str) -> String {
        let (e, ep) = (format!(" {event} "), format!(" {endpoint} "));
        self.expect(&format!("`{event}` of {endpoint}"), |l| {
            l.contains(&e) && l.contains(&ep)
        })
    }

    /// Sends `sig`, then waits for the exit (bounded); returns the output.
    fn stop(mut self, sig: nix::sys::signal::Signal) -> (Output, Duration) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let start = Instant::now();
        nix::sys::signal::kill(pid, sig).unwrap();
        loop {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            if start.elapsed() > STOP_BOUND {
                let _ = self.child.kill();
                panic!("rig serve still running {STOP_BOUND:?} after {sig}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = start.elapsed();
        // Drain what the reader thread still holds.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(l);
        }
        let status = self.child.wait().unwrap();
        let mut stderr = Vec::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_end(&mut e, &mut stderr);
        }
        let out = Output {
            status,
            stdout: self.seen.join("\n").into_bytes(),
            stderr,
        };
        (out, took)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// libcoap's GnuTLS client: POST a Register; returns what it printed.
fn register_with_libcoap(uri: &str, ep: &str, creds: &[String]) -> String {
    let mut cmd = Command::new("coap-client-gnutls");
    cmd.args(["-B", "8", "-m", "post", "-t", "40", "-e", "</1/0>,</3/0>"])
        .args(creds)
        .arg(format!("{uri}/rd?ep={ep}&lt=60&lwm2m=1.1"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// The reference agent, driven through its console.
struct Agent {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Agent {
    fn spawn(uri: &str, ep: &str, extra: &[&str]) -> Agent {
        let mut child = Command::new(agent_bin())
            .args(["--server", uri, "--endpoint", ep, "--lifetime", "60"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Agent {
            child,
            stdin,
            lines,
        }
    }

    fn expect(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(l) => seen.push(l),
                Err(e) => panic!("agent: no {prefix:?} ({e:?}); saw {seen:?}"),
            }
        }
    }

    fn quit(mut self) {
        let _ = writeln!(self.stdin, "quit");
        self.expect("deregistered");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn gnutls_registers_in_psk_rpk_and_pki_and_sigint_stops_with_exit_0() {
    require("coap-client-gnutls");
    let dir = tempfile::tempdir().unwrap();
    let bench = bench_with_text_psk(dir.path());
    let mut serve = Serve::start(&[
        "--bench",
        bench.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let coap = serve.listener("coap", "NoSec");
    let coaps = serve.listener("coaps", "PSK, RPK");
    assert!(
        coap.starts_with("coap://127.0.0.1:") && !coap.ends_with(":0"),
        "{coap}"
    );
    assert!(coaps.starts_with("coaps://127.0.0.1:") && coaps != coap.replace("coap", "coaps"));
    serve.expect("the PSK identity in the banner", |l| {
        l.contains("PSK") && l.contains(&format!("\"{PSK_IDENTITY}\""))
    });
    serve.expect("the end of the banner", |l| l.starts_with("events"));

    // PSK.
    let out = register_with_libcoap(
        &coaps,
        PSK_IDENTITY,
        &s(&["-u", PSK_IDENTITY, "-k", PSK_KEY]),
    );
    let line = serve.event("registered", PSK_IDENTITY);
    assert!(line.contains("lwm2m/coaps"), "{line}");
    assert!(
        line.contains("lt=60") && line.contains("/1/0 /3/0"),
        "{line}\nlibcoap: {out}"
    );

    // X.509: the client certificate's CN is the endpoint.
    let out = register_with_libcoap(
        &coaps,
        "rig-dev-1",
        &[
            "-c".into(),
            pki("client-dev-1.pem"),
            "-j".into(),
            pki("client-dev-1.key"),
            "-C".into(),
            pki("ca.pem"),
        ],
    );
    serve.expect("the X.509 session", |l| {
        l.contains(" dtls-ok ") && l.contains(" rig-dev-1 ")
    });
    let line = serve.event("registered", "rig-dev-1");
    assert!(line.contains("lwm2m=1.1"), "{line}\nlibcoap: {out}");

    // RPK: the device's public key maps to rig-dev-3 in the store.
    let out = register_with_libcoap(&coaps, "rig-dev-3", &["-M".into(), pki("rpk-dev-3.key")]);
    let line = serve.event("registered", "rig-dev-3");
    assert!(line.contains("lwm2m/coaps"), "{line}\nlibcoap: {out}");

    // A wrong key: refused, with the reason.
    let out = register_with_libcoap(
        &coaps,
        PSK_IDENTITY,
        &s(&["-u", PSK_IDENTITY, "-k", "not-the-key"]),
    );
    let line = serve.expect("a handshake failure", |l| l.contains(" dtls-failed "));
    assert!(line.contains("wrong_psk"), "{line}\nlibcoap: {out}");

    // NoSec, on the plain port.
    register_with_libcoap(&coap, "plain-1", &[]);
    let line = serve.event("registered", "plain-1");
    assert!(line.contains("lwm2m/coap "), "{line}");

    let (out, took) = serve.stop(nix::sys::signal::Signal::SIGINT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" stopped "), "{stdout}");
    assert!(took < STOP_BOUND, "took {took:?}");
    // Nobody registered with the wrong key.
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains(" registered ") && l.contains(PSK_IDENTITY))
            .count(),
        1,
        "{stdout}"
    );
}

#[test]
fn the_reference_agent_registers_over_coap_and_psk() {
    let mut serve = Serve::start(&[
        "--bench",
        "hardware/loopback.toml",
        "--listen",
        "127.0.0.1:0",
        "--without",
        "mqtt",
    ]);
    let coap = serve.listener("coap", "NoSec");
    let coaps = serve.listener("coaps", "PSK, RPK");

    let agent = {
        let mut a = Agent::spawn(&coap, "serve-agent-1", &[]);
        a.expect("registered ");
        a
    };
    let line = serve.event("registered", "serve-agent-1");
    assert!(
        line.contains("lwm2m/coap ") && line.contains("/3/0"),
        "{line}"
    );
    agent.quit();
    serve.event("deregistered", "serve-agent-1");

    let mut agent = Agent::spawn(
        &coaps,
        AGENT_PSK_IDENTITY,
        &[
            "--security",
            "psk",
            "--psk-identity",
            AGENT_PSK_IDENTITY,
            "--psk-key-hex",
            AGENT_PSK_KEY_HEX,
        ],
    );
    agent.expect("registered ");
    let line = serve.expect("the PSK session", |l| {
        l.contains(" dtls-ok ") && l.contains(AGENT_PSK_IDENTITY)
    });
    assert!(line.contains("TLS_PSK_WITH_AES_128_CCM_8"), "{line}");
    serve.event("registered", AGENT_PSK_IDENTITY);
    agent.quit();
    serve.event("deregistered", AGENT_PSK_IDENTITY);

    let (out, _) = serve.stop(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn json_lines_carry_the_listeners_and_the_events() {
    require("coap-client-gnutls");
    let mut serve = Serve::start(&[
        "--listen",
        "127.0.0.1:0",
        "--json",
        "--without",
        "mqtt",
        "--without",
        "files",
        "--without",
        "bootstrap",
    ]);
    let line = serve.expect("the NoSec listener", |l| l.contains("NoSec"));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["event"], "listening");
    let uri = v["uri"].as_str().unwrap().to_string();
    serve.expect("ready", |l| l.contains("\"ready\""));
    register_with_libcoap(&uri, "json-1", &[]);
    let line = serve.expect("the registration", |l| l.contains("\"registered\""));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["endpoint"], "json-1");
    assert_eq!(v["lifetime_s"], 60);
    assert_eq!(v["objects"], serde_json::json!(["/1/0", "/3/0"]));
    assert!(v["ts"].as_str().unwrap().ends_with('Z'));
    let (out, _) = serve.stop(nix::sys::signal::Signal::SIGINT);
    assert_eq!(out.status.code(), Some(0));
    // Every line is JSON, the banner included.
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"));
    }
}

/// Runs `rig <args>` to its end, at most 30 s.
fn run_rig(args: &[&str]) -> Output {
    common::run_bounded(rig(args), Duration::from_secs(30))
}

#[test]
fn bad_flags_and_files_are_clear_usage_errors() {
    let o = run_rig(&["serve", "--listen", "nonsense"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("`nonsense` is not an address"), "{err}");

    let o = run_rig(&["serve", "--listen", "127.0.0.1:65500"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("too high"), "{err}");

    let o = run_rig(&["serve", "--bench", "hardware/no-such-bench.toml"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("no-such-bench.toml"), "{err}");

    let o = run_rig(&["serve", "--without", "coffee"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("coffee") && err.contains("mqtt"), "{err}");

    // A [security] store that is not one: named, with the field.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("store.toml"), "[[psk]]\nendpoint = \"x\"\n").unwrap();
    let loopback = std::fs::read_to_string(root().join("hardware/loopback.toml")).unwrap();
    let bench = dir.path().join("bench.toml");
    std::fs::write(
        &bench,
        format!("{loopback}\n[security]\nstore = \"store.toml\"\n"),
    )
    .unwrap();
    let o = run_rig(&[
        "serve",
        "--bench",
        bench.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("store.toml"), "{err}");
}
