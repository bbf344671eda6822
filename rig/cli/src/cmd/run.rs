//! `rig run`: load, prepare, execute, record, finish (ARCHITECTURE §1).
//!
//! This module only wires the pieces together: bench and suite files → a plan
//! (rig-suite), the LwM2M server (rig-services) and the DUT (rig-bench), the
//! engine's events → the reporters (rig-report) and the progress output, and
//! Ctrl-C → the engine's cancellation token.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rig_bench::file::{Bench, NetworkSpec};
use rig_bench::target::OpenOptions;
use rig_report::events::{BenchInfo, RunInfo};
use rig_report::junit::JunitReporter;
use rig_report::markdown::MarkdownReporter;
use rig_report::record::RecordReporter;
use rig_report::{Fanout, Reporter as _};
use rig_services::lwm2m::{Lwm2mServer, ServerConfig};
use rig_suite::case::{SecureBinder, SecurityContext, UdpBinder};
use rig_suite::engine::{self, PlanOptions, Rig, RunResult, RunSettings};
use tokio_util::sync::CancellationToken;

use super::simnet::{SERVER_ADDR, SimNet};
use crate::progress::Progress;
use crate::{DEFAULT_SUITE, RunArgs, exit};

/// Runs `rig run`; returns the exit code.
pub(crate) fn main(args: RunArgs) -> u8 {
    // Load: every problem in the bench and suite files, then the plan.
    let bench = match super::load_bench(&args.bench.bench) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let suite_paths = if args.suites.is_empty() {
        vec![PathBuf::from(DEFAULT_SUITE)]
    } else {
        args.suites.clone()
    };
    let suites = match super::load_suites(&suite_paths) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let run_time_scale = args
        .time_scale
        .or_else(|| suites.iter().find_map(|s| s.time_scale))
        .unwrap_or(1.0);
    let options = PlanOptions {
        filters: args.filter.clone(),
        features: bench.features.clone(),
        allow_empty: args.allow_empty,
    };
    let plan = match engine::plan(suites, rig_suite::cases::all(), &options) {
        Ok(p) => p.repeated(args.repeat),
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };

    // The bench's lease, held until this function returns (see cmd::lease).
    let _lease = match super::lease::take(&args.bench.bench, &bench, &args.lease) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let run_id = run_id();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("reports").join(&run_id));
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!(
            "error: cannot create the report folder {}: {e}",
            out.display()
        );
        return exit::USAGE;
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::INFRA;
        }
    };
    let cancel = CancellationToken::new();
    runtime.block_on(async {
        if let Err(e) = watch_signals(cancel.clone()) {
            eprintln!("error: cannot install the Ctrl-C handler: {e}");
            return exit::INFRA;
        }
        let mut info = RunInfo {
            run_id: run_id.clone(),
            invocation: std::env::args().collect(),
            bench: BenchInfo {
                name: bench.name.clone(),
                path: args.bench.bench.display().to_string(),
                features: bench.features.iter().cloned().collect(),
                dut: BTreeMap::new(),
            },
            versions: BTreeMap::from([("rig".to_string(), env!("CARGO_PKG_VERSION").to_string())]),
            suites: suite_paths
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            time_scale: run_time_scale,
            started_at: rig_report::now_rfc3339(),
        };
        let mut reporters = Fanout::new();
        reporters.push(Box::new(Progress::new()));
        reporters.push(Box::new(JunitReporter::new(&out)));
        reporters.push(Box::new(RecordReporter::new(&out)));
        reporters.push(Box::new(MarkdownReporter::new(&out)));
        let (server, dut, simnet, binder) =
            match prepare(&bench, &out, &run_id, run_time_scale).await {
                Ok(p) => p,
                Err(message) => {
                    // Still write the reports, every case not run with the reason,
                    // so CI shows what happened.
                    eprintln!("error: {message}");
                    let result = engine::abort(&plan, info, &message, &mut |event| {
                        let _ = reporters.handle(event);
                    });
                    return finish(&result, &out, reporters.take_errors()).max(exit::INFRA);
                }
            };
        // The bench's power meter, sampled for the whole run (cmd::power).
        let mut power = match super::power::PowerHooks::open(&bench, &out, simnet.as_ref()) {
            Ok(p) => p,
            Err(message) => {
                eprintln!("error: {message}");
                server.shutdown();
                drop(dut);
                for problem in simnet.map(SimNet::shutdown).unwrap_or_default() {
                    eprintln!("warning: simulated network: {problem}");
                }
                let result = engine::abort(&plan, info, &message, &mut |event| {
                    let _ = reporters.handle(event);
                });
                return finish(&result, &out, reporters.take_errors()).max(exit::INFRA);
            }
        };
        info.bench.dut = dut.identity();
        let settings = RunSettings {
            time_scale: args.time_scale,
            case_timeout_scale: bench.timeouts.case_scale,
            run_timeout: None,
            fail_fast: args.fail_fast,
            evidence_dir: out.clone(),
            endpoint: format!("rig-{}", run_id.to_lowercase()),
        };
        let udp_binder = simnet
            .as_ref()
            .map(|net| namespace_udp_binder(net.services_namespace()));
        let net = simnet
            .as_ref()
            .and_then(SimNet::case_network)
            .unwrap_or_default();
        let rig = Rig {
            server,
            dut,
            net,
            security: SecurityContext {
                binder: Some(binder),
                udp_binder,
                credentials: Some(std::sync::Arc::new(bench.security.clone())),
                ..SecurityContext::default()
            },
            power: power.as_ref().map(super::power::PowerHooks::case_power),
        };
        let mut emit = |event: &rig_report::events::RunEvent| {
            let _ = reporters.handle(event);
        };
        let mut simnet = simnet;
        let mut hooks = super::power::RunHooks {
            net: simnet.as_mut(),
            power: power.as_mut(),
        };
        let (result, rig) =
            engine::run_with_hooks(&plan, info, rig, &settings, &cancel, &mut hooks, &mut emit)
                .await;
        if let Some(problem) = power.take().and_then(super::power::PowerHooks::stop) {
            eprintln!("warning: {problem}");
        }
        if let Some(net) = simnet {
            rig.server.shutdown();
            for problem in net.shutdown() {
                eprintln!("warning: simulated network: {problem}");
            }
        }
        rig.server.shutdown();
        drop(rig);
        if args.repeat > 1 {
            report_repeat(&result, &out, args.repeat);
        }
        finish(&result, &out, reporters.take_errors())
    })
}

/// `--repeat N`: each case's pass rate on stdout, as a table appended to
/// report.md, and as the `repeat` key of run.json (reports/README.md).
fn report_repeat(result: &RunResult, out: &Path, n: u32) {
    let rates = rig_suite::repeat::pass_rates(&result.cases);
    println!("pass rate over {n} runs per case:");
    for (id, r) in &rates {
        println!(
            "  {id}: {}/{} passed ({:.0} %)",
            r.passed,
            r.runs,
            r.pass_rate * 100.0
        );
    }
    let md = out.join("report.md");
    if let Ok(text) = std::fs::read_to_string(&md) {
        let text = text + &rig_suite::repeat::markdown(&rates, n);
        if let Err(e) = write_atomically(&md, text.as_bytes()) {
            eprintln!(
                "warning: cannot add the repeat table to {}: {e}",
                md.display()
            );
        }
    }
    let json = out.join("run.json");
    let patched = std::fs::read_to_string(&json)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).map_err(|e| e.to_string()))
        .and_then(|mut v| {
            let rates = serde_json::to_value(&rates).map_err(|e| e.to_string())?;
            if let Some(obj) = v.as_object_mut() {
                obj.insert(
                    "repeat".into(),
                    serde_json::json!({ "runs_per_case": n, "cases": rates }),
                );
            }
            serde_json::to_vec_pretty(&v).map_err(|e| e.to_string())
        })
        .and_then(|bytes| write_atomically(&json, &bytes).map_err(|e| e.to_string()));
    if let Err(e) = patched {
        eprintln!(
            "warning: cannot add the repeat key to {}: {e}",
            json.display()
        );
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp-repeat");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The services, the DUT, the simulated network (if the bench has one), and
/// how to bind a `coaps://` server next to the plain one (same place).
type Prepared = (
    Lwm2mServer,
    Box<dyn rig_bench::dut::Dut>,
    Option<SimNet>,
    SecureBinder,
);

/// Starts the services and opens the DUT: on the simulated network for a `sim`
/// bench (falling back to loopback, with a warning, without the capabilities),
/// else over loopback.
async fn prepare(
    bench: &Bench,
    out: &Path,
    run_id: &str,
    time_scale: f64,
) -> Result<Prepared, String> {
    // Registrations expire on the same scaled clock the agent uses.
    let config = ServerConfig {
        time_scale,
        ..ServerConfig::default()
    };
    match &bench.network {
        NetworkSpec::Loopback => {}
        NetworkSpec::Sim { .. } => match rig_net::check_capabilities() {
            Ok(()) => return prepare_sim(bench, out, run_id, config),
            Err(e) => {
                eprintln!(
                    "warning: {}: the simulated network needs privileges: {e}\n\
                     warning: falling back to the loopback network: functional cases only, \
                     no capture and no net.* measurements",
                    bench.path.display()
                );
            }
        },
        other => {
            return Err(format!(
                "{}: network kind `{}` needs the simulated network, which this build cannot set \
                 up yet; use a bench with network = {{ kind = \"loopback\" }} (hardware/loopback.toml)",
                bench.path.display(),
                other.as_str()
            ));
        }
    }
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = Lwm2mServer::bind_with(addr, config)
        .await
        .map_err(|e| format!("cannot start the LwM2M server on {addr}: {e}"))?;
    let dut = rig_bench::target::open(bench, out).map_err(|e| {
        server.shutdown();
        format!("cannot open the DUT of bench `{}`: {e}", bench.name)
    })?;
    Ok((server, dut, None, SecureBinder::loopback()))
}

/// [`prepare`] on the simulated network: the server inside the services
/// namespace, the DUT process inside the DUT namespace.
fn prepare_sim(
    bench: &Bench,
    out: &Path,
    run_id: &str,
    config: ServerConfig,
) -> Result<Prepared, String> {
    let net = SimNet::create(run_id, out)?;
    let socket = net.bind_server_socket()?;
    let server = Lwm2mServer::from_std(socket, config)
        .map_err(|e| format!("cannot start the LwM2M server on {SERVER_ADDR}: {e}"))?;
    let options = OpenOptions {
        netns: Some(net.dut_netns()),
    };
    let dut = rig_bench::target::open_with(bench, out, &options).map_err(|e| {
        server.shutdown();
        format!("cannot open the DUT of bench `{}`: {e}", bench.name)
    })?;
    let binder = namespace_binder(net.services_namespace())?;
    Ok((server, dut, Some(net), binder))
}

/// A [`SecureBinder`] that binds `coaps://` servers inside the services
/// namespace, at the plain server's address with a free port. The socket is
/// created on a thread that entered the namespace (it stays there for its
/// whole life); the server's tasks run on the run's runtime.
fn namespace_binder(ns: rig_net::Namespace) -> Result<SecureBinder, String> {
    let plain: std::net::SocketAddr = SERVER_ADDR
        .parse()
        .map_err(|e| format!("bad server address {SERVER_ADDR}: {e}"))?;
    let addr = std::net::SocketAddr::new(plain.ip(), 0);
    Ok(SecureBinder::new(move |config, dtls| {
        let ns = ns.clone();
        Box::pin(async move {
            let handle = tokio::runtime::Handle::current();
            let name = ns.name().to_string();
            tokio::task::spawn_blocking(move || {
                ns.run(move || handle.block_on(Lwm2mServer::bind_secure(addr, config, dtls)))
            })
            .await
            .map_err(|e| format!("binding thread failed: {e}"))?
            .map_err(|e| format!("cannot enter network namespace {name}: {e}"))?
            .map_err(|e| format!("{addr} in {name}: {e}"))
        })
    }))
}

/// A [`UdpBinder`] that makes plain UDP sockets inside the services namespace
/// (on a short-lived thread that entered it; a socket keeps its namespace).
fn namespace_udp_binder(ns: rig_net::Namespace) -> UdpBinder {
    UdpBinder::new(move |addr| {
        ns.run(move || std::net::UdpSocket::bind(addr))
            .map_err(|e| std::io::Error::other(format!("network namespace {}: {e}", ns.name())))?
    })
}

/// Prints where the reports are and the summary line; returns the exit code.
fn finish(result: &RunResult, out: &Path, errors: Vec<rig_report::ReportError>) -> u8 {
    let s = &result.summary;
    for e in &errors {
        eprintln!("error: {e}");
    }
    println!(
        "{} passed, {} failed, {} inconclusive, {} out of time, {} errors, {} not applicable, {} not run ({})",
        s.pass,
        s.fail,
        s.inconclusive,
        s.out_of_time,
        s.error,
        s.not_applicable,
        s.not_run,
        result.outcome
    );
    println!("report: {}", out.join("report.md").display());
    println!("html:   {}", out.join("report.html").display());
    println!("junit:  {}", out.join("junit.xml").display());
    let code = engine::exit_code(result);
    if errors.is_empty() {
        code
    } else {
        code.max(exit::INFRA)
    }
}

/// A run id: the UTC start time and four random lower-case letters,
/// e.g. `20261127T210405Z-kqzt`.
fn run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let stamp = now
        .format(&format)
        .unwrap_or_else(|_| now.unix_timestamp().to_string());
    let suffix: String = (0..4)
        .map(|_| char::from(rand::random_range(b'a'..=b'z')))
        .collect();
    format!("{stamp}-{suffix}")
}

/// First SIGINT/SIGTERM: cancel the run (the engine records the running case
/// as interrupted and writes the reports). Second: quit at once with exit 4;
/// the reports on disk are the last ones written atomically, so they stay valid.
fn watch_signals(cancel: CancellationToken) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("\nrig: interrupted; writing the reports (Ctrl-C again quits at once)");
        cancel.cancel();
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("rig: quitting at once; the reports on disk are the last complete ones");
        // The simulated network's namespaces must not outlive the run.
        let _ = rig_net::cleanup_own();
        super::lease::release_before_quit();
        std::process::exit(4);
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_a_utc_timestamp_and_a_random_suffix() {
        let id = run_id();
        let (stamp, suffix) = id.split_once('-').unwrap();
        assert_eq!(stamp.len(), 16, "{id}");
        assert!(stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T', "{id}");
        assert_eq!(suffix.len(), 4);
        assert!(suffix.chars().all(|c| c.is_ascii_lowercase()), "{id}");
    }
}
