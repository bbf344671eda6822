//! The bench files and profiles shipped in `hardware/`, and every TOML example
//! in `hardware/README.md`, load without a problem: the documentation cannot
//! drift from the schema unnoticed.

use std::path::{Path, PathBuf};

use rig_bench::diag::SourceFile;
use rig_bench::file::{Bench, NetworkSpec, TargetKind};
use rig_bench::profile::Profile;

fn hardware() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hardware")
}

#[test]
fn shipped_sim_benches_are_valid() {
    for (name, network) in [("sim.toml", "sim"), ("loopback.toml", "loopback")] {
        let bench = Bench::load(&hardware().join(name)).unwrap_or_else(|d| panic!("{d}"));
        assert!(
            matches!(bench.target.kind, TargetKind::Sim { .. }),
            "{name}"
        );
        assert_eq!(bench.network.as_str(), network, "{name}");
        assert_eq!(
            bench.target.profile.as_ref().map(|p| p.name.as_str()),
            Some("rig-agent")
        );
        assert!(bench.features.contains("lwm2m"));
    }
}

#[test]
fn shipped_hardware_benches_load_without_diagnostics() {
    let nrf = Bench::load(&hardware().join("nrf9160dk.toml")).unwrap_or_else(|d| panic!("{d}"));
    let TargetKind::ProbeRs { chip, .. } = &nrf.target.kind else {
        panic!("{:?}", nrf.target.kind)
    };
    // The chip names are probe-rs's own.
    rig_bench::probe::lookup_chip(chip).unwrap();
    assert!(nrf.target.console.is_some());
    assert!(nrf.features.contains("power"));
    let pico = Bench::load(&hardware().join("pico-w.toml")).unwrap_or_else(|d| panic!("{d}"));
    let TargetKind::ProbeRs { chip, .. } = &pico.target.kind else {
        panic!("{:?}", pico.target.kind)
    };
    rig_bench::probe::lookup_chip(chip).unwrap();
    let rpi = Bench::load(&hardware().join("rpi4-ina219.toml")).unwrap_or_else(|d| panic!("{d}"));
    assert!(matches!(rpi.target.kind, TargetKind::Ssh(_)));
    assert!(matches!(rpi.network, NetworkSpec::Nic { impair: true, .. }));
    for b in [&nrf, &pico, &rpi] {
        // Every INA219 setting gives a valid calibration.
        let p = b.power.as_ref().unwrap();
        rig_bench::power::MeterConfig::from_spec(p)
            .calibration()
            .unwrap();
    }
}

#[test]
fn shipped_profiles_are_valid() {
    for entry in std::fs::read_dir(hardware().join("profiles")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Profile::load(&path).unwrap_or_else(|d| panic!("{d}"));
        }
    }
    // The file and the built-in copy are the same profile.
    let file = Profile::load(&hardware().join("profiles/rig-agent.toml")).unwrap();
    let built_in = Profile::rig_agent();
    assert_eq!(file.actions, built_in.actions);
    assert_eq!(file.ready, built_in.ready);
}

#[test]
fn readme_examples_are_valid() {
    let readme = std::fs::read_to_string(hardware().join("README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            _ => {}
        }
    }
    assert!(blocks.len() >= 4, "found {} toml blocks", blocks.len());
    for (n, text) in blocks.iter().enumerate() {
        // As if the example were a file in hardware/, so `profiles/...` resolves.
        let src = SourceFile::new(
            hardware().join(format!("README-example-{n}.toml")),
            text.clone(),
        );
        if text.starts_with("[bench]") {
            Bench::parse(&src).unwrap_or_else(|d| panic!("example {n}:\n{d}"));
        } else if text.starts_with("[profile]") {
            Profile::parse(&src).unwrap_or_else(|d| panic!("example {n}:\n{d}"));
        } else {
            panic!("example {n} is neither a bench nor a profile:\n{text}");
        }
    }
}
