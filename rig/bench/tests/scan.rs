//! `rig bench scan`: listing from a fake `/dev` tree, and the bench skeleton
//! that `Bench::parse` accepts once its TODOs are filled in.

#![allow(clippy::unwrap_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use rig_bench::diag::SourceFile;
use rig_bench::file::{Bench, TargetKind};
use rig_bench::probe::ProbeInfo;
use rig_bench::scan::{scan, scan_in};

fn hardware() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hardware")
}

fn fake_dev() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("serial/by-id")).unwrap();
    for n in [
        "usb-SEGGER_J-Link_000960123456-if00",
        "usb-SEGGER_J-Link_000960123456-if02",
    ] {
        std::fs::write(d.path().join("serial/by-id").join(n), "").unwrap();
    }
    for n in ["i2c-1", "i2c-20", "i2c-dev", "ttyACM0"] {
        std::fs::write(d.path().join(n), "").unwrap();
    }
    d
}

fn fill(skeleton: &str) -> String {
    skeleton
        .replace("\"TODO-bench-name\"", "\"lab-1\"")
        .replace("\"TODO.elf\"", "\"fw.elf\"")
        .replace("\"TODO-eth1\"", "\"eth1\"")
        .replace("\"TODO-client\"", "\"./client\"")
}

fn parse(text: String) -> Bench {
    // As if the file were in hardware/, so `profiles/...` resolves.
    Bench::parse(&SourceFile::new(hardware().join("scanned.toml"), text))
        .unwrap_or_else(|d| panic!("{d}"))
}

#[test]
fn a_probe_a_port_and_a_bus_make_a_probe_rs_skeleton() {
    let dev = fake_dev();
    let probe = ProbeInfo {
        identifier: "J-Link".into(),
        vendor_id: 0x1366,
        product_id: 0x1015,
        serial: Some("000960123456".into()),
        probe_type: "J-Link".into(),
    };
    let report = scan_in(dev.path(), vec![probe]);
    assert_eq!(report.probes[0].chip_guess.as_deref(), Some("nRF9160_xxAA"));
    assert_eq!(
        report.serial_ports,
        [
            Path::new("/dev/serial/by-id/usb-SEGGER_J-Link_000960123456-if00"),
            Path::new("/dev/serial/by-id/usb-SEGGER_J-Link_000960123456-if02")
        ]
    );
    assert_eq!(
        report.i2c_buses,
        [Path::new("/dev/i2c-1"), Path::new("/dev/i2c-20")]
    );
    let listing = report.to_string();
    assert!(
        listing.contains("1366:1015:000960123456 (J-Link, J-Link) (chip guess: nRF9160_xxAA)"),
        "{listing}"
    );

    let skeleton = report.bench_skeleton();
    assert!(skeleton.contains("TODO"));
    let bench = parse(fill(&skeleton));
    let TargetKind::ProbeRs { chip, probe, .. } = &bench.target.kind else {
        panic!("{:?}", bench.target.kind)
    };
    assert_eq!(chip, "nRF9160_xxAA");
    assert_eq!(probe.as_deref(), Some("1366:1015:000960123456"));
    assert_eq!(
        bench.target.console.as_ref().unwrap().port,
        Path::new("/dev/serial/by-id/usb-SEGGER_J-Link_000960123456-if00")
    );
    assert!(bench.features.contains("power"));
}

#[test]
fn an_empty_host_gives_a_process_skeleton_and_this_host_scans() {
    let dev = tempfile::tempdir().unwrap();
    let report = scan_in(dev.path(), vec![]);
    assert!(report.probes.is_empty() && report.serial_ports.is_empty());
    let bench = parse(fill(&report.bench_skeleton()));
    assert!(matches!(bench.target.kind, TargetKind::Process { .. }));
    assert!(bench.power.is_none());
    // The real scan runs here (whatever this machine has) and its skeleton parses.
    let real = scan();
    let _ =
        parse(fill(&real.bench_skeleton()).replace("chip = \"TODO\"", "chip = \"nRF52840_xxAA\""));
}
