//! The bench lease of `rig run`: one run at a time on a bench with hardware.
//!
//! `rig run` takes the lease (rig-bench's [`rig_bench::lock`]) after the files
//! are loaded and before the DUT is touched, heartbeats while it runs, and
//! releases it on exit: normally, after Ctrl-C / SIGTERM (the run winds down
//! and returns), on a second Ctrl-C (the signal task calls
//! [`release_before_quit`] before `exit`), and on a panic in the main thread
//! (unwinding drops the lease). A lease left by a killed run is stale once its
//! pid is gone or its heartbeat is old, and the next run takes it over with a
//! warning.
//!
//! A second run on a leased bench fails at once with exit code 2 (an
//! infrastructure error: the bench was not obtained) and a message naming the
//! holder, or waits up to `--wait-for-bench=DURATION`.
//!
//! Which benches are leased (`--lease`): `auto` leases every bench that has
//! something real and shared (a target other than the simulated agent, a serial
//! console, a power switch, an INA219 or a NIC); a bench made only of
//! simulated parts (`hardware/sim.toml`, `hardware/loopback.toml`) gives each
//! run its own agent and network, so parallel runs on it are fine and it is
//! not leased unless `--lease always`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rig_bench::file::{Bench, NetworkSpec, PowerSpec, TargetKind};
use rig_bench::lock::{Lease, LeaseOptions, LeaseReleaser};

use crate::exit;

/// The lease of a run, if one is held: released for the signal task too.
static HELD: Mutex<Option<LeaseReleaser>> = Mutex::new(None);

/// When a bench is leased.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LeaseMode {
    /// Lease benches with hardware; not benches made only of simulated parts.
    Auto,
    /// Always lease the bench.
    Always,
    /// Never lease the bench (you make sure nothing else uses it).
    Never,
}

/// The lease flags of `rig run`.
#[derive(Debug, clap::Args)]
pub(crate) struct LeaseArgs {
    /// If another run holds the bench, wait for it up to DURATION (e.g. 90s,
    /// 10m, 1h; 30m without a value) instead of failing at once with exit 2.
    #[arg(
        long,
        value_name = "DURATION",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "30m",
        value_parser = parse_duration
    )]
    pub(crate) wait_for_bench: Option<Duration>,
    /// The longest this run may hold the bench; past it, another run may take
    /// the lease over.
    #[arg(long, value_name = "DURATION", default_value = "4h", value_parser = parse_duration)]
    pub(crate) max_hold: Duration,
    /// Whether to lease the bench: auto leases benches with hardware (not
    /// sim.toml or loopback.toml).
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = LeaseMode::Auto)]
    pub(crate) lease: LeaseMode,
    /// Folder of the lease files [default: $XDG_RUNTIME_DIR/rig, else
    /// /run/lock/rig, else the temp folder].
    #[arg(long, value_name = "DIR", env = "RIG_LEASE_DIR")]
    pub(crate) lease_dir: Option<PathBuf>,
}

/// Parses `90`, `90s`, `500ms`, `10m`, `2h` into a duration.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: use e.g. 90s, 10m or 2h"))?;
    let factor = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "`{other}` is not a unit of time in `{s}`: use ms, s, m or h"
            ));
        }
    };
    let secs = v * factor;
    if !secs.is_finite() || secs > 30.0 * 86_400.0 {
        return Err(format!("`{s}` is out of range (at most 30 days)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Whether a bench has something real and shared (see the module doc).
pub(crate) fn has_hardware(bench: &Bench) -> bool {
    !matches!(bench.target.kind, TargetKind::Sim { .. })
        || bench.target.console.is_some()
        || bench.target.power_switch.is_some()
        || matches!(bench.power, Some(PowerSpec::Ina219 { .. }))
        || matches!(bench.network, NetworkSpec::Nic { .. })
}

/// A held lease; released (and forgotten by the signal task) on drop.
#[derive(Debug)]
pub(crate) struct BenchLease {
    lease: Option<Lease>,
}

impl Drop for BenchLease {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        if lease.is_lost() {
            eprintln!(
                "warning: the lease on this bench was taken over by another run during this one \
                 (the run held it past --max-hold, or its heartbeat stalled); lease file {}",
                lease.path().display()
            );
        }
        if let Err(e) = lease.release() {
            eprintln!("warning: could not release the bench lease: {e}");
        }
        *HELD.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Takes the lease on the bench for `rig run`, as `args` say. `Ok(None)`:
/// the bench is not leased. `Err(code)`: the message was printed.
pub(crate) fn take(
    bench_file: &Path,
    bench: &Bench,
    args: &LeaseArgs,
) -> Result<Option<BenchLease>, u8> {
    let wanted = match args.lease {
        LeaseMode::Always => true,
        LeaseMode::Never => false,
        LeaseMode::Auto => has_hardware(bench),
    };
    if !wanted {
        return Ok(None);
    }
    let mut options = LeaseOptions {
        wait: None,
        max_hold: args.max_hold,
        dir: args.lease_dir.clone(),
        purpose: std::env::args().collect::<Vec<_>>().join(" "),
        ..LeaseOptions::default()
    };
    // The heartbeat must beat well within the stale age.
    options.stale_after = options.stale_after.max(options.heartbeat_every * 4);
    let lease = match Lease::acquire(bench_file, &options) {
        Ok(l) => l,
        Err(first) => match args.wait_for_bench {
            None => return Err(busy(&first.to_string())),
            Some(wait) => {
                eprintln!(
                    "rig: {first}\nrig: waiting up to {:.0} s for the bench (--wait-for-bench)",
                    wait.as_secs_f64()
                );
                options.wait = Some(wait);
                match Lease::acquire(bench_file, &options) {
                    Ok(l) => l,
                    Err(e) => return Err(busy(&e.to_string())),
                }
            }
        },
    };
    if let Some(warning) = lease.took_over() {
        eprintln!("warning: {warning}");
    }
    *HELD.lock().unwrap_or_else(|e| e.into_inner()) = Some(lease.releaser());
    Ok(Some(BenchLease { lease: Some(lease) }))
}

fn busy(message: &str) -> u8 {
    eprintln!("error: bench busy: {message}");
    eprintln!(
        "hint: wait for it with --wait-for-bench[=DURATION]; `rig bench lease --bench FILE` \
         shows the holder; a lease whose process died is taken over automatically"
    );
    exit::INFRA
}

/// Releases the run's lease, if any: for the signal task, just before it
/// quits the process (no destructor runs after `exit`).
pub(crate) fn release_before_quit() {
    let held = HELD.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(r) = held
        && let Err(e) = r.release()
    {
        eprintln!("warning: could not release the bench lease: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("10 parsecs").unwrap_err().contains("unit"));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(parse_duration("99999h").unwrap_err().contains("range"));
    }
}
