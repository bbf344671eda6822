//! What a bench needs from this host, checked: programs, capabilities, device
//! nodes, files.
//!
//! [`check`] returns plain facts ([`Check`]s, each with a fix when it fails);
//! the CLI decides how to print them. Nothing here changes the host.

use std::path::Path;

use crate::file::{Bench, NetworkSpec, PowerSpec, TargetKind};
use crate::target::{find_agent, which};

/// One thing checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What was checked, e.g. `reference agent`.
    pub name: String,
    /// Whether it is in order.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// How to fix it, when not ok.
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// CAP_NET_ADMIN's bit in the capability sets.
const CAP_NET_ADMIN: u32 = 12;
/// CAP_NET_RAW's bit.
const CAP_NET_RAW: u32 = 13;

/// Checks everything the bench needs.
pub fn check(bench: &Bench) -> Vec<Check> {
    let mut out = Vec::new();
    match &bench.target.kind {
        TargetKind::Sim { agent, .. } => out.push(match find_agent(agent) {
            Ok(p) => Check::pass("reference agent", format!("found {}", p.display())),
            Err(e) => Check::fail("reference agent", e.to_string(), "cargo build -p rig-agent"),
        }),
        TargetKind::Process { command, cwd, .. } => {
            let program = command
                .first()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default();
            let dir = cwd
                .clone()
                .or_else(|| bench.path.parent().map(Path::to_path_buf))
                .unwrap_or_default();
            let found = if program.contains('{') {
                None
            } else if program.contains('/') {
                let p = dir.join(&program);
                p.is_file().then_some(p)
            } else {
                which(&program)
            };
            out.push(match found {
                Some(p) => Check::pass("DUT program", format!("found {}", p.display())),
                None if program.contains('{') => Check::pass(
                    "DUT program",
                    format!("`{program}` is filled in at start; not checked"),
                ),
                None => Check::fail(
                    "DUT program",
                    format!(
                        "`{program}` not found (relative to {} or on PATH)",
                        dir.display()
                    ),
                    "build or install it, or fix target.command in the bench file",
                ),
            });
        }
        TargetKind::ProbeRs {
            chip,
            probe,
            firmware,
            base_address,
        } => {
            out.push(file_check(
                "firmware image",
                firmware,
                "build the firmware, or fix target.firmware",
            ));
            match crate::probe::lookup_chip(chip) {
                Ok(target) => {
                    out.push(Check::pass(
                        "chip",
                        format!("{chip} is in probe-rs's database"),
                    ));
                    if firmware.is_file() {
                        out.push(
                            match crate::probe::check_fit(&target, firmware, *base_address) {
                                Ok((_, fit)) => Check::pass(
                                    "firmware fits",
                                    format!(
                                        "{} of {} flash bytes, {} of {} RAM bytes",
                                        fit.flash_bytes,
                                        fit.flash_size,
                                        fit.ram_bytes,
                                        fit.ram_size
                                    ),
                                ),
                                Err(e) => Check::fail(
                                    "firmware fits",
                                    e.to_string(),
                                    "build for the bench's chip, or fix target.chip",
                                ),
                            },
                        );
                    }
                }
                Err(e) => out.push(Check::fail(
                    "chip",
                    e.to_string(),
                    "fix target.chip in the bench file",
                )),
            }
            out.push(
                match crate::probe::select_probe(probe.as_deref(), &crate::probe::list_probes()) {
                    Ok(p) => Check::pass("debug probe", p.to_string()),
                    Err(e) => Check::fail(
                        "debug probe",
                        e.to_string(),
                        "plug the probe in; `rig bench scan` lists what is attached",
                    ),
                },
            );
        }
        TargetKind::Ssh(ssh) => {
            if let Some(k) = &ssh.identity {
                out.push(file_check(
                    "SSH key",
                    k,
                    "fix target.identity in the bench file",
                ));
            }
            if let Some(k) = &ssh.known_hosts {
                out.push(file_check(
                    "SSH known hosts",
                    k,
                    "record the board's key with ssh-keyscan (hardware/README.md)",
                ));
            }
            out.push(program_check(
                "ssh",
                "ssh",
                "apt-get install openssh-client",
            ));
        }
    }
    if let Some(p) = &bench.target.profile {
        out.push(if p.built_in {
            Check::pass("device profile", format!("{} (built in)", p.name))
        } else {
            file_check(
                "device profile",
                &p.path,
                "fix target.profile in the bench file",
            )
        });
    }
    if let Some(c) = &bench.target.console {
        out.push(if c.port.exists() {
            Check::pass("serial console", format!("{} exists", c.port.display()))
        } else {
            Check::fail(
                "serial console",
                format!("{} does not exist", c.port.display()),
                "plug the board in and check `ls -l /dev/serial/by-id/`; fix target.console.port",
            )
        });
    }
    match &bench.network {
        NetworkSpec::Loopback => {}
        NetworkSpec::Sim { .. } | NetworkSpec::Nic { .. } => {
            out.extend(capability_checks(&read_cap_eff()));
            out.push(program_check(
                "ip program",
                "ip",
                "apt-get install iproute2",
            ));
        }
    }
    if let NetworkSpec::Nic { interface, .. } = &bench.network {
        let p = Path::new("/sys/class/net").join(interface);
        out.push(if p.exists() {
            Check::pass("network interface", format!("{interface} exists"))
        } else {
            Check::fail(
                "network interface",
                format!("{interface} does not exist"),
                "`ip link` lists interfaces; fix network.interface",
            )
        });
    }
    if let Some(PowerSpec::Ina219 { bus, .. }) = &bench.power {
        out.push(if bus.exists() {
            Check::pass("I2C bus", format!("{} exists", bus.display()))
        } else {
            Check::fail(
                "I2C bus",
                format!("{} does not exist", bus.display()),
                "enable I2C (Raspberry Pi: `dtparam=i2c_arm=on`) and load i2c-dev",
            )
        });
    }
    if bench.features.contains("mosquitto") {
        out.push(program_check(
            "mosquitto",
            "mosquitto",
            "apt-get install mosquitto",
        ));
    }
    if bench.features.contains("tshark") {
        out.push(program_check("tshark", "tshark", "apt-get install tshark"));
    }
    out
}

fn file_check(name: &str, path: &Path, fix: &str) -> Check {
    match std::fs::File::open(path) {
        Ok(_) => Check::pass(name, format!("{} is readable", path.display())),
        Err(e) => Check::fail(name, format!("{}: {e}", path.display()), fix),
    }
}

fn program_check(name: &str, program: &str, fix: &str) -> Check {
    match which(program) {
        Some(p) => Check::pass(name, format!("found {}", p.display())),
        None => Check::fail(name, format!("`{program}` is not on PATH"), fix),
    }
}

/// The effective capability set of this process (`CapEff` in /proc/self/status).
pub fn read_cap_eff() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_cap_eff(&status)
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

fn capability_checks(cap_eff: &Option<u64>) -> Vec<Check> {
    let fix = "run as root, or grant the capabilities: sudo setcap cap_net_admin,cap_net_raw+ep $(which rig)";
    [
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        (CAP_NET_RAW, "CAP_NET_RAW"),
    ]
    .into_iter()
    .map(|(bit, name)| match cap_eff {
        Some(caps) if caps & (1 << bit) != 0 => Check::pass(name, "present"),
        Some(_) => Check::fail(
            name,
            "missing (needed for the simulated network and capture)",
            fix,
        ),
        None => Check::fail(name, "cannot read CapEff from /proc/self/status", fix),
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::SourceFile;

    #[test]
    fn cap_eff_bits_are_read() {
        let caps = parse_cap_eff("Name:\tx\nCapEff:\t0000000000003000\n");
        assert_eq!(caps, Some(0x3000));
        let checks = capability_checks(&caps);
        assert!(checks.iter().all(|c| c.ok));
        let checks = capability_checks(&Some(1 << CAP_NET_ADMIN));
        assert!(checks[0].ok);
        assert!(!checks[1].ok);
        assert!(
            checks[1]
                .fix
                .as_deref()
                .unwrap()
                .contains("setcap cap_net_admin,cap_net_raw+ep")
        );
    }

    #[test]
    fn a_missing_process_program_is_reported_with_a_fix() {
        let text = "[bench]\nname = \"x\"\n[target]\nkind = \"process\"\ncommand = [\"no-such-program-xyz\"]\n\
                    [network]\nkind = \"sim\"\n";
        let bench = Bench::parse(&SourceFile::new("/tmp/b.toml", text)).unwrap();
        let checks = check(&bench);
        let prog = checks.iter().find(|c| c.name == "DUT program").unwrap();
        assert!(!prog.ok);
        assert!(prog.detail.contains("no-such-program-xyz"));
        assert!(checks.iter().any(|c| c.name == "CAP_NET_ADMIN"));
        assert!(checks.iter().any(|c| c.name == "ip program"));
    }

    #[test]
    fn sh_is_found_on_path() {
        let text = "[bench]\nname = \"x\"\n[target]\nkind = \"process\"\ncommand = [\"sh\", \"-c\", \"true\"]\n";
        let bench = Bench::parse(&SourceFile::new("/tmp/b.toml", text)).unwrap();
        let checks = check(&bench);
        assert!(checks.iter().all(|c| c.ok), "{checks:?}");
        assert!(!checks.iter().any(|c| c.name == "CAP_NET_ADMIN"));
    }
}
