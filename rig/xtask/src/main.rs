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
//!   `rig run suites/smoke.toml`, which writes a report under `reports/<run-id>/`.
//! - `cargo xtask test`: set-up, builds the workspace (the end-to-end tests
//!   run the real `rig` and `rig-agent` binaries), runs every test with
//!   cargo-nextest when it is installed (else `cargo test`), then the doc tests.
//!
//! It has no dependencies, so it compiles in a second on a fresh clone.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "\
usage: cargo xtask <command> [args...]

commands:
  setup         install missing system packages (apt, pip) and rustup targets
  demo [ARGS]   setup, build rig and rig-agent, run `rig run suites/smoke.toml [ARGS]`
  test [ARGS]   setup, build the workspace, run all tests (nextest if installed) and doc tests;
                ARGS go to the test runner (e.g. a name filter)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("demo") => setup().and_then(|()| demo(&args[1..])),
        Some("test") => setup().and_then(|()| test(&args[1..])),
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

fn demo(args: &[String]) -> Result<(), String> {
    run(cargo().args(["build", "--locked", "-p", "rig", "-p", "rig-agent"]))?;
    let rig = target_dir().join("debug").join("rig");
    let mut cmd = Command::new(&rig);
    cmd.current_dir(root())
        .args(["run", "suites/smoke.toml"])
        .args(args);
    let line = format!("{cmd:?}").replace('"', "");
    eprintln!("xtask: $ {line}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {}: {e}", rig.display()))?;
    if status.success() {
        eprintln!(
            "xtask: demo passed; the report is in the folder printed above (reports/<run-id>/)"
        );
        Ok(())
    } else {
        Err(format!(
            "the demo run did not pass ({status}); see the report printed above"
        ))
    }
}

fn test(args: &[String]) -> Result<(), String> {
    // The end-to-end tests run the real binaries, so build them all first.
    run(cargo().args(["build", "--workspace", "--locked"]))?;
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
