//! Bench inventory: what is attached to this host, and a bench-file skeleton
//! for it (`rig bench scan`), in the spirit of Twister's
//! `--generate-hardware-map` and `labgrid-suggest`.
//!
//! [`scan`] lists debug probes (through probe-rs, with a chip-family guess
//! from well-known probe ids), serial ports by stable id
//! (`/dev/serial/by-id/*`), and I2C buses (`/dev/i2c-*`).
//! [`ScanReport::bench_skeleton`] prints a bench file that
//! [`crate::file::Bench::parse`] accepts once the `TODO` values are filled in.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::file::SERIAL_BY_ID;
use crate::probe::{ProbeInfo, list_probes};

/// A probe with a guess of what it is wired to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedProbe {
    /// The probe.
    pub probe: ProbeInfo,
    /// A chip name guess, when the probe is an on-board one of a known kit.
    pub chip_guess: Option<String>,
}

/// What is attached to this host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Debug probes.
    pub probes: Vec<ScannedProbe>,
    /// Serial ports by stable id (the symlinks under `/dev/serial/by-id/`).
    pub serial_ports: Vec<PathBuf>,
    /// I2C buses.
    pub i2c_buses: Vec<PathBuf>,
}

/// A chip guess from a probe's USB id: on-board probes of common kits.
/// A guess only: the skeleton says so.
pub fn chip_guess(probe: &ProbeInfo) -> Option<&'static str> {
    match (probe.vendor_id, probe.product_id) {
        // SEGGER J-Link OB on Nordic DKs: serial (000)960xxxxxx is a nRF9160 DK,
        // (000)683xxxxxx a nRF52840 DK (the board id printed on the DK).
        (0x1366, _) => match probe.serial.as_deref() {
            Some(s) if s.trim_start_matches('0').starts_with("960") => Some("nRF9160_xxAA"),
            Some(s) if s.trim_start_matches('0').starts_with("683") => Some("nRF52840_xxAA"),
            _ => None,
        },
        // Raspberry Pi Debug Probe / picoprobe: usually wired to an RP2040.
        (0x2e8a, 0x000c) => Some("RP2040"),
        // Other probes (ST-LINK on Nucleo boards, standalone J-Links...) say
        // nothing about the chip without attaching.
        _ => None,
    }
}

fn list_dir(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_str().is_some_and(&keep))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Scans this host (`/dev` for serial and I2C).
pub fn scan() -> ScanReport {
    scan_in(Path::new("/dev"), list_probes())
}

/// Scans a given `/dev`-like folder with a given probe list (for tests).
pub fn scan_in(dev: &Path, probes: Vec<ProbeInfo>) -> ScanReport {
    let by_id = dev.join(SERIAL_BY_ID.trim_start_matches("/dev/"));
    ScanReport {
        probes: probes
            .into_iter()
            .map(|p| ScannedProbe {
                chip_guess: chip_guess(&p).map(str::to_string),
                probe: p,
            })
            .collect(),
        serial_ports: list_dir(&by_id, |_| true)
            .into_iter()
            .map(|p| {
                // Always the stable name, as under /dev/serial/by-id/ on the host.
                Path::new(SERIAL_BY_ID).join(p.file_name().unwrap_or_default())
            })
            .collect(),
        i2c_buses: list_dir(dev, |n| {
            n.strip_prefix("i2c-")
                .is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_digit()))
        })
        .into_iter()
        .map(|p| Path::new("/dev").join(p.file_name().unwrap_or_default()))
        .collect(),
    }
}

impl std::fmt::Display for ScanReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "debug probes: {}", self.probes.len())?;
        for p in &self.probes {
            let guess = p
                .chip_guess
                .as_ref()
                .map(|c| format!(" (chip guess: {c})"))
                .unwrap_or_default();
            writeln!(f, "  {}{guess}", p.probe)?;
        }
        writeln!(f, "serial ports by id: {}", self.serial_ports.len())?;
        for s in &self.serial_ports {
            writeln!(f, "  {}", s.display())?;
        }
        writeln!(f, "I2C buses: {}", self.i2c_buses.len())?;
        for b in &self.i2c_buses {
            writeln!(f, "  {}", b.display())?;
        }
        Ok(())
    }
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl ScanReport {
    /// A bench-file skeleton for what was found. With a probe it is a
    /// `probe-rs` bench (chip guessed or `TODO`, firmware `TODO`); without one,
    /// a `process` bench. The first serial port becomes the console; the first
    /// I2C bus an INA219 at 0x40. Values to check are marked `TODO` in
    /// comments; string values that must be replaced contain `TODO`.
    pub fn bench_skeleton(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Bench skeleton written by `rig bench scan`.");
        let _ = writeln!(
            s,
            "# Fill in every TODO, then check it with `rig doctor --bench <file>`."
        );
        let _ = writeln!(s, "# Keys: hardware/README.md.");
        let _ = writeln!(s, "\n[bench]\nname = \"TODO-bench-name\"");
        let _ = writeln!(s, "description = \"TODO: what is wired to what\"");
        let _ = writeln!(s, "\n[target]");
        match self.probes.first() {
            Some(p) => {
                let _ = writeln!(s, "kind = \"probe-rs\"");
                match &p.chip_guess {
                    Some(c) => {
                        let _ = writeln!(
                            s,
                            "chip = {}  # a guess from the probe id: check it",
                            quote(c)
                        );
                    }
                    None => {
                        let _ =
                            writeln!(s, "chip = \"TODO\"  # `probe-rs chip list` shows the names");
                    }
                }
                let _ = writeln!(s, "probe = {}", quote(&p.probe.selector()));
                let _ = writeln!(
                    s,
                    "firmware = \"TODO.elf\"  # ELF, HEX, or BIN with base_address"
                );
                for other in &self.probes[1..] {
                    let _ = writeln!(
                        s,
                        "# also attached: probe = {}",
                        quote(&other.probe.selector())
                    );
                }
            }
            None => {
                let _ = writeln!(s, "kind = \"process\"  # no debug probe found");
                let _ = writeln!(
                    s,
                    "command = [\"TODO-client\", \"{{server_uri}}\", \"{{endpoint}}\"]"
                );
            }
        }
        let _ = writeln!(
            s,
            "profile = \"profiles/zephyr-shell.toml\"  # TODO: the DUT's console profile"
        );
        match self.serial_ports.first() {
            Some(port) => {
                let _ = writeln!(
                    s,
                    "console = {{ port = {}, baud = 115200 }}",
                    quote(&port.display().to_string())
                );
                for other in &self.serial_ports[1..] {
                    let _ = writeln!(s, "# also attached: {}", other.display());
                }
            }
            None => {
                let _ = writeln!(
                    s,
                    "# no serial port by id found; add console = {{ port = \"/dev/serial/by-id/...\" }}"
                );
            }
        }
        let _ = writeln!(
            s,
            "\n[network]\nkind = \"nic\"\ninterface = \"TODO-eth1\"  # the NIC that faces the DUT\nimpair = false"
        );
        if let Some(bus) = self.i2c_buses.first() {
            let _ = writeln!(
                s,
                "\n[power]\nkind = \"ina219\"\nbus = {}\naddress = 0x40  # TODO: `i2cdetect -y N` shows it\nshunt_ohms = 0.1  # TODO: your shunt\nmax_current_a = 3.2",
                quote(&bus.display().to_string())
            );
        }
        s
    }
}
