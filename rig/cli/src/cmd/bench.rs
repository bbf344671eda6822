//! `rig bench`: what is attached to this host, and who holds a bench.
//!
//! - `rig bench scan [--skeleton] [--json]`: debug probes (with a chip guess),
//!   serial ports by stable id and I2C buses (rig-bench's [`rig_bench::scan`]),
//!   with a hint for everything that was not found, and a bench-file skeleton
//!   that `rig doctor --bench FILE` accepts once its TODOs are filled in.
//! - `rig bench lease [--bench FILE] [--break]`: the holder of a bench's lease
//!   (see [`super::lease`]), and a way to break a lease by hand.

use std::path::PathBuf;

use rig_bench::lock::{LeaseRecord, lease_dir, lease_path, utc};
use rig_bench::scan::ScanReport;

use crate::{DEFAULT_BENCH, exit};

/// `rig bench` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum BenchCommand {
    /// List attached debug probes, serial ports by id and I2C buses, and a
    /// bench-file skeleton for them.
    #[command(after_help = "\
Without flags, prints what was found (and, for what was not, where to look) and how to get
a skeleton. With --skeleton, prints only the bench-file skeleton: fill in every TODO, then
check it with `rig doctor --bench FILE`.

Examples:
  rig bench scan
  rig bench scan --skeleton > hardware/my-bench.toml
  rig bench scan --json")]
    Scan(ScanArgs),
    /// Show who holds a bench's lease (or break it).
    #[command(after_help = "\
Exit code 0 when the bench is free (or the lease was broken), 2 when a live run holds it.

Examples:
  rig bench lease --bench hardware/nrf9160dk.toml
  rig bench lease --bench hardware/nrf9160dk.toml --break")]
    Lease(LeaseStatusArgs),
}

/// Arguments of `rig bench scan`.
#[derive(Debug, clap::Args)]
pub(crate) struct ScanArgs {
    /// Print only the bench-file skeleton (TOML).
    #[arg(long, conflicts_with = "json")]
    skeleton: bool,
    /// Print what was found as JSON (with the skeleton as a string).
    #[arg(long)]
    json: bool,
    /// Scan this folder instead of /dev (for tests and containers).
    #[arg(long, value_name = "DIR", env = "RIG_SCAN_DEV", hide = true)]
    dev: Option<PathBuf>,
}

/// Arguments of `rig bench lease`.
#[derive(Debug, clap::Args)]
pub(crate) struct LeaseStatusArgs {
    /// The bench file whose lease to show.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_BENCH)]
    bench: PathBuf,
    /// Remove the lease file, whoever holds it (the holder notices and warns).
    #[arg(long = "break")]
    break_it: bool,
    /// Folder of the lease files (as for `rig run`).
    #[arg(long, value_name = "DIR", env = "RIG_LEASE_DIR")]
    lease_dir: Option<PathBuf>,
}

/// Runs `rig bench ...`.
pub(crate) fn main(command: BenchCommand) -> u8 {
    match command {
        BenchCommand::Scan(args) => scan(&args),
        BenchCommand::Lease(args) => lease(&args),
    }
}

fn scan(args: &ScanArgs) -> u8 {
    let report = match &args.dev {
        Some(dev) => rig_bench::scan::scan_in(dev, rig_bench::probe::list_probes()),
        None => rig_bench::scan::scan(),
    };
    if args.skeleton {
        print!("{}", report.bench_skeleton());
        return exit::OK;
    }
    if args.json {
        println!("{}", to_json(&report));
        return exit::OK;
    }
    print!("{report}");
    let hints = hints(&report);
    if !hints.is_empty() {
        println!();
        for h in &hints {
            println!("{h}");
        }
    }
    println!();
    println!(
        "bench skeleton for this: rig bench scan --skeleton > hardware/my-bench.toml\n\
         then fill in every TODO and check it: rig doctor --bench hardware/my-bench.toml"
    );
    exit::OK
}

/// Where to look for what was not found.
fn hints(report: &ScanReport) -> Vec<String> {
    let mut out = Vec::new();
    if report.probes.is_empty() {
        let usb = rig_bench::probe::usb_devices();
        out.push(format!(
            "no debug probe found. A probe that is plugged in but not listed usually lacks \
             permissions: install probe-rs's udev rules (README, \"Running on real hardware\"), \
             then unplug and replug it. USB devices seen: {}",
            if usb.is_empty() {
                "none".to_string()
            } else {
                usb.join("; ")
            }
        ));
    } else if report.probes.len() > 1 {
        out.push(
            "several debug probes: name the bench's one with target.probe = \"VID:PID:serial\" \
             (rig refuses to guess)"
                .to_string(),
        );
    }
    if report.serial_ports.is_empty() {
        out.push(
            "no serial port under /dev/serial/by-id/: a DK's or USB-UART's port appears there \
             when it is plugged in (`ls -l /dev/serial/by-id/`; dialout group for access)"
                .to_string(),
        );
    }
    if report.i2c_buses.is_empty() {
        out.push(
            "no I2C bus (/dev/i2c-*): an INA219 needs one; on a Raspberry Pi enable I2C \
             (`raspi-config nonint do_i2c 0`) and load i2c-dev (`modprobe i2c-dev`)"
                .to_string(),
        );
    }
    out
}

fn to_json(report: &ScanReport) -> serde_json::Value {
    let probes: Vec<serde_json::Value> = report
        .probes
        .iter()
        .map(|p| {
            serde_json::json!({
                "identifier": p.probe.identifier,
                "vendor_id": format!("{:04x}", p.probe.vendor_id),
                "product_id": format!("{:04x}", p.probe.product_id),
                "serial": p.probe.serial,
                "probe_type": p.probe.probe_type,
                "selector": p.probe.selector(),
                "chip_guess": p.chip_guess,
            })
        })
        .collect();
    let paths =
        |v: &[PathBuf]| -> Vec<String> { v.iter().map(|p| p.display().to_string()).collect() };
    serde_json::json!({
        "probes": probes,
        "serial_ports": paths(&report.serial_ports),
        "i2c_buses": paths(&report.i2c_buses),
        "hints": hints(report),
        "skeleton": report.bench_skeleton(),
    })
}

fn lease(args: &LeaseStatusArgs) -> u8 {
    if !args.bench.is_file() {
        eprintln!(
            "error: no bench file {}; pass --bench FILE",
            args.bench.display()
        );
        return exit::USAGE;
    }
    let dir = args.lease_dir.clone().unwrap_or_else(lease_dir);
    let path = lease_path(&args.bench, &dir);
    let record = match LeaseRecord::read(&path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INFRA;
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let Some(record) = record else {
        println!(
            "bench {} is free (no lease file {})",
            args.bench.display(),
            path.display()
        );
        return exit::OK;
    };
    let stale = record.stale_reason(
        now,
        rig_bench::lock::LeaseOptions::default().stale_after,
        &rig_bench::lock::host_name(),
    );
    println!(
        "bench {} is leased by {} (started {})",
        args.bench.display(),
        record.describe(now),
        utc(record.started)
    );
    if let Some(why) = &stale {
        println!("the lease is stale ({why}): the next run takes it over");
    }
    println!("lease file: {}", path.display());
    if args.break_it {
        match std::fs::remove_file(&path) {
            Ok(()) => {
                println!("lease broken");
                return exit::OK;
            }
            Err(e) => {
                eprintln!("error: cannot remove {}: {e}", path.display());
                return exit::INFRA;
            }
        }
    }
    if stale.is_some() {
        exit::OK
    } else {
        exit::INFRA
    }
}
