//! `cargo xtask`: the project's set-up, demo and test commands.
//!
//! - `cargo xtask setup`: installs what the workspace needs from the system:
//!   Debian packages (`rig/xtask/apt-packages.txt`), Python packages
//!   (`rig/xtask/pip-packages.txt`) and rustup targets
//!   (`rig/xtask/rustup-targets.txt`). One name per line; `#` starts a comment.
//!   As root it installs what is missing; otherwise it prints the exact
//!   commands to run and fails.
//! - `cargo xtask demo`: set-up, then builds `rig` and `rig-agent` (debug
//!   profile, so it shares the build with `cargo xtask test`) and runs
//!   `rig run suites/smoke.toml` then `rig run suites/machnation.toml` (the
//!   MachNation study's table), each writing a report under `reports/<run-id>/`.
//! - `cargo xtask test`: set-up, builds the workspace (the end-to-end tests
//!   run the real `rig` and `rig-agent` binaries), runs every test with
//!   cargo-nextest when it is installed (else `cargo test`), then the doc tests.
//! - `cargo xtask cross-agent [--target TRIPLE] [--debug] [--check]`:
//!   cross-builds the reference agent (`firmware/agent`) for a Linux board,
//!   by default a 64-bit Raspberry Pi (`aarch64-unknown-linux-gnu`). It adds
//!   the rustup target and installs Debian's cross gcc and libc headers if
//!   they are missing (the vendored OpenSSL and ring/aws-lc compile C for the
//!   board), points cargo's linker, `CC_<triple>` and `AR_<triple>` at them,
//!   and prints the binary's path, its `file` description and the build
//!   time. `--check` also installs `qemu-user-static` and runs the binary's
//!   `--help` under it, to show it starts. Not part of `test`: CI needs no
//!   cross toolchain (the SSH tests deploy a native agent).
//!
//! It has no dependencies, so it compiles in a second on a fresh clone.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "\
usage: cargo xtask <command> [args...]

commands:
  setup         install missing system packages (apt, pip) and rustup targets
  demo [ARGS]   setup, build rig and rig-agent, run `rig run suites/smoke.toml [ARGS]`, then suites/machnation.toml
  test [ARGS]   setup, build the workspace, run all tests (nextest if installed) and doc tests;
                ARGS go to the test runner (e.g. a name filter)
  cross-agent [--target TRIPLE] [--debug] [--check]
                cross-build firmware/agent for a Linux board (default
                aarch64-unknown-linux-gnu, release profile), installing the cross gcc
                (apt) and rustup target if missing; prints the binary and `file` output;
                --check also runs it under qemu-user-static
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("demo") => setup().and_then(|()| demo(&args[1..])),
        Some("test") => setup().and_then(|()| test(&args[1..])),
        Some("cross-agent") => cross_agent(&args[1..]),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{USAGE}")),
        None => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (two levels above this crate).
fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

/// Names listed in one of the `rig/xtask/*.txt` files.
fn list(file: &str) -> Result<Vec<String>, String> {
    let path = root().join("rig/xtask").join(file);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// Runs a command, failing with its command line if it fails.
fn run(cmd: &mut Command) -> Result<(), String> {
    let line = format!("{cmd:?}").replace('"', "");
    eprintln!("xtask: $ {line}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run `{line}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{line}` failed ({status})"))
    }
}

/// Whether a command runs and exits 0 (output discarded).
fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn setup() -> Result<(), String> {
    let root_user = is_root();
    let mut todo: Vec<String> = Vec::new();

    let mut apt = list("apt-packages.txt")?;
    let pip = list("pip-packages.txt")?;
    if !pip.is_empty() {
        apt.push("python3-pip".to_string());
    }
    let missing_apt: Vec<String> = apt
        .into_iter()
        .filter(|p| {
            let out = Command::new("dpkg-query").args(["-W", "-f=${Status}", p]).output();
            !matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if !missing_apt.is_empty() {
        if root_user {
            run(Command::new("apt-get").arg("update").arg("-q"))?;
            run(Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&missing_apt)
                .env("DEBIAN_FRONTEND", "noninteractive"))?;
        } else {
            todo.push(format!(
                "sudo apt-get update && sudo apt-get install -y --no-install-recommends {}",
                missing_apt.join(" ")
            ));
        }
    }

    let missing_pip: Vec<String> = pip
        .into_iter()
        .filter(|p| !succeeds(Command::new("python3").args(["-m", "pip", "show", p])))
        .collect();
    if !missing_pip.is_empty() {
        // Debian marks its Python as externally managed; the packages are test
        // tools for this machine, so they go into the system site-packages.
        if root_user && todo.is_empty() {
            run(Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "--break-system-packages"])
                .args(&missing_pip))?;
        } else {
            todo.push(format!(
                "sudo python3 -m pip install --break-system-packages {}",
                missing_pip.join(" ")
            ));
        }
    }

    let targets = list("rustup-targets.txt")?;
    if !targets.is_empty() {
        let installed = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .map_err(|e| format!("cannot run rustup (needed for targets {targets:?}): {e}"))?;
        let missing: Vec<&String> = targets
            .iter()
            .filter(|t| !installed.lines().any(|l| l.trim() == *t))
            .collect();
        if !missing.is_empty() {
            // rustup installs into the user's toolchain: no root needed.
            run(Command::new("rustup")
                .args(["target", "add"])
                .args(&missing))?;
        }
    }

    if todo.is_empty() {
        eprintln!("xtask: setup complete (system packages and targets present)");
        Ok(())
    } else {
        Err(format!(
            "missing system packages; as a non-root user, run:\n  {}\nthen run this command again",
            todo.join("\n  ")
        ))
    }
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    c.current_dir(root());
    c
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() { d } else { root().join(d) }
        }
        None => root().join("target"),
    }
}

/// The suites the demo runs, one `rig run` each (their time scales differ:
/// the MachNation suite runs its 2-10 minute windows at `time_scale = 60`).
const DEMO_SUITES: [&str; 2] = ["suites/smoke.toml", "suites/machnation.toml"];

fn demo(args: &[String]) -> Result<(), String> {
    run(cargo().args(["build", "--locked", "-p", "rig", "-p", "rig-agent"]))?;
    let rig = target_dir().join("debug").join("rig");
    let mut failed = Vec::new();
    for suite in DEMO_SUITES {
        let mut cmd = Command::new(&rig);
        cmd.current_dir(root()).args(["run", suite]).args(args);
        let line = format!("{cmd:?}").replace('"', "");
        eprintln!("xtask: $ {line}");
        let status = cmd
            .status()
            .map_err(|e| format!("cannot run {}: {e}", rig.display()))?;
        if !status.success() {
            failed.push(format!("{suite} ({status})"));
        }
    }
    if failed.is_empty() {
        eprintln!(
            "xtask: demo passed; the reports are in the folders printed above (reports/<run-id>/report.html; \
             the MachNation table is in the second one)"
        );
        Ok(())
    } else {
        Err(format!(
            "the demo runs did not all pass: {}; see the reports printed above",
            failed.join(", ")
        ))
    }
}

fn test(args: &[String]) -> Result<(), String> {
    // The end-to-end tests run the real binaries, so build them all first,
    // with the tests: a build without them resolves the dependencies'
    // features without the dev-dependencies' (tokio's test-util, ...), so
    // the doc tests and the test runner would compile tokio and everything
    // above it a second time (about 3 minutes on CI's 2 cores).
    run(cargo().args(["build", "--workspace", "--locked", "--bins", "--tests"]))?;
    // Doc tests first, so the run ends on the test runner's summary line.
    run(cargo().args(["test", "--workspace", "--locked", "--doc"]))?;
    if succeeds(cargo().args(["nextest", "--version"])) {
        run(cargo()
            .args([
                "nextest",
                "run",
                "--workspace",
                "--locked",
                "--no-fail-fast",
            ])
            .args(args))
    } else {
        eprintln!("xtask: cargo-nextest not installed; using cargo test");
        run(cargo()
            .args(["test", "--workspace", "--locked", "--no-fail-fast"])
            .args(args))
    }
}

/// A Rust target triple the agent can be cross-built for from Debian.
struct Cross {
    triple: &'static str,
    /// The GNU tool prefix (`<prefix>-gcc`, `<prefix>-ar`, `/usr/<prefix>` sysroot).
    prefix: &'static str,
    /// Debian packages with the cross gcc and the board's libc headers.
    apt: &'static [&'static str],
    /// The qemu user-mode emulator for `--check`.
    qemu: &'static str,
}

const CROSS: &[Cross] = &[
    Cross {
        triple: "aarch64-unknown-linux-gnu",
        prefix: "aarch64-linux-gnu",
        apt: &["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"],
        qemu: "qemu-aarch64-static",
    },
    Cross {
        triple: "armv7-unknown-linux-gnueabihf",
        prefix: "arm-linux-gnueabihf",
        apt: &["gcc-arm-linux-gnueabihf", "libc6-dev-armhf-cross"],
        qemu: "qemu-arm-static",
    },
];

/// Debian packages of `wanted` that are not installed.
fn missing_debs(wanted: &[&str]) -> Vec<String> {
    wanted
        .iter()
        .filter(|p| {
            let out = Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output();
            !matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .map(|p| p.to_string())
        .collect()
}

/// Installs Debian packages as root, or says the command to run.
fn apt_install(packages: &[String], why: &str) -> Result<(), String> {
    if packages.is_empty() {
        return Ok(());
    }
    if !is_root() {
        return Err(format!(
            "{why} needs Debian packages that are missing; run:\n  sudo apt-get update && sudo apt-get install -y --no-install-recommends {}\nthen run this command again",
            packages.join(" ")
        ));
    }
    run(Command::new("apt-get").arg("update").arg("-q"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Runs `cmd` for at most `limit`, returning its exit status and output.
fn output_within(
    cmd: &mut Command,
    limit: std::time::Duration,
) -> Result<(std::process::ExitStatus, String), String> {
    let line = format!("{cmd:?}").replace('"', "");
    eprintln!("xtask: $ {line}");
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{line}`: {e}"))?;
    let deadline = std::time::Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{line}` did not finish within {} s",
                    limit.as_secs()
                ));
            }
            Err(e) => return Err(format!("waiting for `{line}`: {e}")),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("reading `{line}`: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status, text))
}

fn cross_agent(args: &[String]) -> Result<(), String> {
    let mut triple = CROSS[0].triple.to_string();
    let mut release = true;
    let mut check = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--target" => {
                triple = it
                    .next()
                    .ok_or("--target needs a value, e.g. aarch64-unknown-linux-gnu")?
                    .clone();
            }
            t if t.starts_with("--target=") => triple = t["--target=".len()..].to_string(),
            "--debug" => release = false,
            "--check" => check = true,
            other => {
                return Err(format!(
                    "cross-agent: unknown argument `{other}`\n\n{USAGE}"
                ));
            }
        }
    }
    let Some(cross) = CROSS.iter().find(|c| c.triple == triple) else {
        let known: Vec<&str> = CROSS.iter().map(|c| c.triple).collect();
        return Err(format!(
            "cross-agent: no cross toolchain known for `{triple}`; known: {}",
            known.join(", ")
        ));
    };

    // The Rust standard library for the board (rustup; no root needed).
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .map_err(|e| format!("cannot run rustup (to add {triple}): {e}"))?;
    if !installed.lines().any(|l| l.trim() == triple) {
        run(Command::new("rustup").args(["target", "add", &triple]))?;
    }
    // The cross gcc (links, and compiles the C in OpenSSL, ring and aws-lc).
    let mut debs = cross.apt.to_vec();
    if check {
        debs.push("qemu-user-static");
    }
    apt_install(&missing_debs(&debs), "cross-building the agent")?;

    let env_triple = triple.replace('-', "_");
    let gcc = format!("{}-gcc", cross.prefix);
    let ar = format!("{}-ar", cross.prefix);
    let mut build = cargo();
    build
        .args(["build", "-p", "rig-agent", "--target", &triple])
        .env(
            format!("CARGO_TARGET_{}_LINKER", env_triple.to_ascii_uppercase()),
            &gcc,
        )
        .env(format!("CC_{env_triple}"), &gcc)
        .env(format!("AR_{env_triple}"), &ar);
    if release {
        build.arg("--release");
    }
    let t0 = std::time::Instant::now();
    run(&mut build)?;
    let took = t0.elapsed();
    let binary = target_dir()
        .join(&triple)
        .join(if release { "release" } else { "debug" })
        .join("rig-agent");
    if !binary.is_file() {
        return Err(format!(
            "cargo succeeded but {} is missing",
            binary.display()
        ));
    }
    let size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
    let described = match output_within(
        Command::new("file").arg("-b").arg(&binary),
        std::time::Duration::from_secs(30),
    ) {
        Ok((_, text)) => text.trim().to_string(),
        Err(e) => format!("(`file` could not describe it: {e})"),
    };
    println!("{}", binary.display());
    println!("  file: {described}");
    println!("  size: {size} bytes; built in {:.0} s", took.as_secs_f64());
    if check {
        let sysroot = format!("/usr/{}", cross.prefix);
        let (status, text) = output_within(
            Command::new(cross.qemu)
                .args(["-L", &sysroot])
                .arg(&binary)
                .arg("--help"),
            std::time::Duration::from_secs(60),
        )?;
        let first = text.lines().next().unwrap_or("").trim().to_string();
        if !status.success() {
            return Err(format!(
                "the agent did not start under {} ({status}): {}",
                cross.qemu,
                text.trim()
            ));
        }
        println!(
            "  {} -L {sysroot}: `--help` printed \"{first}\"",
            cross.qemu
        );
    }
    println!(
        "  deploy it with `agent = \"{}\"` in an SSH bench, or let rig build it: agent = {{ cross = \"{triple}\" }}",
        binary.display()
    );
    Ok(())
}
