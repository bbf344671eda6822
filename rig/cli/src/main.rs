//! `rig`: the command line of the LwM2M test rig.
//!
//! The binary only wires: it parses the command line (clap), loads the bench
//! and suite files (rig-bench, rig-suite), starts the services (rig-services),
//! runs the engine (rig-suite) and plugs the reporters (rig-report) and the
//! progress output into it. Exit codes are in [`exit`].
//!
//! - [`cmd::run`]: `rig run`, the main job.
//! - [`cmd::list`]: `rig list`, the cases a run would plan.
//! - [`cmd::doctor`]: `rig doctor`, what the bench needs from this host.
//! - [`cmd::bench`]: `rig bench scan` (what is attached) and `rig bench lease`.
//! - [`cmd::lease`]: the bench lease `rig run` holds.
//! - [`cmd::serve`]: `rig serve`, the services standalone, to explore a device.
//! - [`cmd::completions`]: shell completions.
//! - [`progress`]: live progress (a bar on a terminal, one line per case otherwise).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod exit;
mod progress;

/// The bench used when `--bench` is not given.
const DEFAULT_BENCH: &str = "hardware/sim.toml";
/// The suite used when `rig run` is given none.
const DEFAULT_SUITE: &str = "suites/smoke.toml";

/// rig: a hardware-in-the-loop test and certification rig for LwM2M devices.
///
/// rig plays LwM2M server (and later bootstrap server and MQTT broker) against
/// a device under test, runs conformance cases (OMA ETS ids such as
/// LightweightM2M-1.1-int-101) and writes JUnit, run.json and Markdown reports.
#[derive(Debug, Parser)]
#[command(
    name = "rig",
    version,
    propagate_version = true,
    after_help = "\
Examples:
  rig run                                      run suites/smoke.toml on hardware/sim.toml
  rig run suites/smoke.toml --bench hardware/loopback.toml --out /tmp/r
  rig list --bench hardware/loopback.toml      which cases exist, and which this bench can run
  rig doctor                                   what the default bench needs from this host

Exit codes: 0 all passed · 1 a case failed · 2 infrastructure error · 3 usage or config error · 4 interrupted"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run suites of cases against the bench's DUT and write the reports.
    #[command(after_help = "\
Reports go to --out DIR, or to reports/<run-id>/ where the run id is the UTC start time plus
a random suffix (e.g. 20261127T210405Z-kqzt). The folder holds junit.xml, run.json,
report.md and report.html (all rewritten after every case), console/ with each case's
console log and, on the simulated network, captures/ with each case's pcap.

Without SUITE, rig runs suites/smoke.toml. Without --bench, it uses hardware/sim.toml.
Ctrl-C stops the run: the running case is recorded as interrupted, the rest as not run, the
reports are written and rig exits with 4. A second Ctrl-C quits at once.

Examples:
  rig run
  rig run suites/smoke.toml --bench hardware/loopback.toml
  rig run suites/smoke.toml --filter '*-int-10[12]' --out /tmp/run1
  rig run suites/security.toml --time-scale 10 --fail-fast

Exit codes: 0 all passed (or not applicable) · 1 a case failed, was inconclusive or ran out
of time · 2 infrastructure error (DUT could not start, services down, bench busy) · 3 usage or config
error (bad bench/suite file, no case planned) · 4 interrupted")]
    Run(RunArgs),
    /// List the cases of suites, and whether the bench provides what each needs.
    #[command(after_help = "\
Without SUITE, every case rig knows is listed. A case whose required features the bench
lacks would be Not Applicable in a run on that bench.

Examples:
  rig list
  rig list suites/smoke.toml --bench hardware/loopback.toml")]
    List(ListArgs),
    /// Check what the bench needs from this host (programs, capabilities, device nodes, files).
    #[command(after_help = "\
Each check prints ✓ or ✗; a failed check prints how to fix it.
Exit code 0 when every check passes, 2 otherwise, 3 if the bench file is invalid.

Examples:
  rig doctor
  rig doctor --bench hardware/loopback.toml")]
    Doctor(BenchArg),
    /// Inventory and leases of benches: what is attached, who holds a bench.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
    /// Run the services standalone (LwM2M and bootstrap servers, MQTT broker, file servers)
    /// and print every event, to explore a device before running suites.
    #[command(after_help = "\
Listeners (the --listen port P is the LwM2M server's CoAP port, default 5683):
  coap://IP:P        LwM2M server, NoSec
  coaps://IP:P+1     LwM2M server, DTLS 1.2: PSK, RPK and X.509 on one port
  coaps://IP:P+2     LwM2M server, DTLS 1.2 RPK with the bench's rpk_server_key
  coap://IP:P+3      CoAP Block2 file server (/fw/<name>)
  coap://IP:P+100    bootstrap server (coaps on P+101)
  http://IP:8080     HTTP file server;  mqtts://IP:8883  MQTT broker
With port 0 every listener takes a free port; the banner prints the real ones.
Credentials come from the bench's [security] section (default: the test PKI, fixtures/pki/).
Ctrl-C or SIGTERM stops every service and exits 0.

Examples:
  rig serve --bench hardware/loopback.toml
  rig serve --bench hardware/loopback.toml --listen 0.0.0.0     a real device on the LAN
  rig serve --listen 127.0.0.1:0 --json --without mqtt")]
    Serve(cmd::serve::ServeArgs),
    /// Print a shell completion script.
    #[command(after_help = "\
Examples:
  rig completions bash > ~/.local/share/bash-completion/completions/rig
  rig completions zsh > ~/.zfunc/_rig
  rig completions fish > ~/.config/fish/completions/rig.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `--bench FILE`.
#[derive(Debug, clap::Args)]
struct BenchArg {
    /// The bench file: where the rig runs and what the DUT is.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_BENCH)]
    bench: PathBuf,
}

/// Arguments of `rig run`.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Suite files to run, in order [default: suites/smoke.toml].
    #[arg(value_name = "SUITE")]
    suites: Vec<PathBuf>,
    #[command(flatten)]
    bench: BenchArg,
    /// Write the reports into DIR instead of reports/<run-id>/.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Only run cases whose id matches GLOB (repeatable; any match keeps a case).
    #[arg(long, value_name = "GLOB")]
    filter: Vec<String>,
    /// Divide every protocol timer (and case timeout) by N; overrides the suites' time_scale.
    #[arg(long, value_name = "N", value_parser = parse_time_scale)]
    time_scale: Option<f64>,
    /// Stop after the first case that neither passes nor is not applicable.
    #[arg(long)]
    fail_fast: bool,
    /// Accept a run that plans zero cases (exit 0 instead of 3).
    #[arg(long)]
    allow_empty: bool,
    /// Run each selected case N times in a row (ids `<id>#1` to `<id>#N`) and
    /// report each case's pass rate (stdout, report.md, run.json `repeat`).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: u32,
    #[command(flatten)]
    lease: cmd::lease::LeaseArgs,
}

/// Arguments of `rig list`.
#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Suite files whose cases to list [default: every case rig knows].
    #[arg(value_name = "SUITE")]
    suites: Vec<PathBuf>,
    #[command(flatten)]
    bench: BenchArg,
}

fn parse_time_scale(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if (1.0..=10_000.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "{v} is out of range: the time scale divides timers, from 1 to 10000"
        ))
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            // --help and --version print and succeed; every other parse error is
            // a usage error, exit 3 (clap's own default would be 2, which rig
            // reserves for infrastructure errors).
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(exit::USAGE),
            };
        }
    };
    let code = match cli.command {
        Command::Run(args) => cmd::run::main(args),
        Command::List(args) => cmd::list::main(args),
        Command::Doctor(args) => cmd::doctor::main(args),
        Command::Bench(command) => cmd::bench::main(command),
        Command::Serve(args) => cmd::serve::main(args),
        Command::Completions { shell } => cmd::completions::main::<Cli>(shell),
    };
    ExitCode::from(code)
}
