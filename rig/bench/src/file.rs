//! Bench files: where the rig runs, read from TOML and validated into [`Bench`].
//!
//! A bench file names its target (the DUT and how to start it), its network,
//! its instruments and the features it offers. It is parsed into a spanned
//! document and walked with [`crate::diag`], so every problem in the file (and
//! in the device profile it names) is reported at once, each with
//! `path:line:column`, the dotted field and what was expected. Relative paths
//! in the file are relative to the file's directory. The schema, with examples,
//! is in `hardware/README.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::diag::{Checker, Diagnostics, Item, SourceFile, TableReader};
use crate::profile::{Profile, template};
use crate::template::Template;

/// Target kinds, as written in `target.kind`.
pub const TARGET_KINDS: &[&str] = &["sim", "process", "probe-rs", "ssh"];
/// Network kinds, as written in `network.kind`.
pub const NETWORK_KINDS: &[&str] = &["loopback", "sim", "nic"];
/// Power kinds, as written in `power.kind`.
pub const POWER_KINDS: &[&str] = &["model", "ina219"];
/// The prefix every serial console port must have (stable names only).
pub const SERIAL_BY_ID: &str = "/dev/serial/by-id/";

/// A validated bench.
#[derive(Clone, Debug, PartialEq)]
pub struct Bench {
    /// The bench's name (`bench.name`).
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// What the bench is.
    pub description: String,
    /// The DUT and how to start it.
    pub target: TargetSpec,
    /// How the DUT reaches the services.
    pub network: NetworkSpec,
    /// The power instrument, if any.
    pub power: Option<PowerSpec>,
    /// Features the bench offers: declared in `bench.features` plus those its
    /// target, network and instruments imply (`lwm2m`, `udp`, `console`,
    /// `impair`, `power`).
    pub features: BTreeSet<String>,
    /// Time limits of the bench.
    pub timeouts: Timeouts,
    /// The device's and the server's credentials for the secure modes
    /// (`[security]`; defaults to the test PKI in `fixtures/pki/`).
    pub security: SecuritySpec,
}

/// The target: what kind of DUT, its console and its device profile.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetSpec {
    /// The kind and its settings.
    pub kind: TargetKind,
    /// A serial console, if the DUT's console is not its stdio.
    pub console: Option<ConsoleSpec>,
    /// The device profile (loaded and validated). `None` for a process DUT
    /// without one: it can be started and stopped but has no actions.
    pub profile: Option<Profile>,
    /// How to cut and restore the DUT's power, if the bench can.
    pub power_switch: Option<PowerSwitch>,
}

/// A way to power-cycle the DUT (`target.power_switch`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PowerSwitch {
    /// A program (and arguments) that cycles the power, e.g. a PDU script.
    Command(Vec<String>),
    /// A USB hub port switched with `uhubctl -l <hub> -p <port> -a cycle`.
    Uhubctl {
        /// The hub's location, e.g. `1-1`.
        hub: String,
        /// The port number on the hub.
        port: u32,
    },
}

/// Where the reference agent binary comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentLocation {
    /// Search: `RIG_AGENT`, next to the current executable, then `PATH`.
    Auto,
    /// This file.
    Path(PathBuf),
}

/// Target kinds and their settings.
#[derive(Clone, Debug, PartialEq)]
pub enum TargetKind {
    /// The reference agent, spawned on this host.
    Sim {
        /// Where the binary is.
        agent: AgentLocation,
        /// Extra arguments after the ones the rig passes.
        args: Vec<Template>,
    },
    /// Any program, spawned on this host.
    Process {
        /// Program and arguments, with placeholders.
        command: Vec<Template>,
        /// Working directory (default: the bench file's directory).
        cwd: Option<PathBuf>,
        /// Extra environment, values with placeholders.
        env: BTreeMap<String, Template>,
    },
    /// A board flashed through a debug probe.
    ProbeRs {
        /// probe-rs chip name, e.g. `nRF52840_xxAA`.
        chip: String,
        /// `VID:PID[:serial]` of the probe, if more than one may be attached.
        probe: Option<String>,
        /// The firmware image (ELF, HEX or BIN).
        firmware: PathBuf,
        /// Where a raw BIN image goes in flash (`target.base_address`).
        base_address: Option<u64>,
    },
    /// A Linux board (a Raspberry Pi) reached over SSH: the agent is copied
    /// there and started as a process or a transient systemd service.
    Ssh(SshSpec),
}

/// A Linux board reached over SSH (`kind = "ssh"`); driven by [`crate::ssh`].
#[derive(Clone, Debug, PartialEq)]
pub struct SshSpec {
    /// Host name or address (`target.host`).
    pub host: String,
    /// TCP port of its sshd (`target.port`, default 22).
    pub port: u16,
    /// User name (`target.user`; default: ssh's, i.e. the local user).
    pub user: Option<String>,
    /// Private key file (`target.identity`); without it, ssh's defaults.
    pub identity: Option<PathBuf>,
    /// Known-hosts file (`target.known_hosts`); without it, ssh's defaults
    /// (`~/.ssh/known_hosts`).
    pub known_hosts: Option<PathBuf>,
    /// Refuse host keys that are not in the known-hosts file
    /// (`target.strict_host_key`, default true). `false` trusts a new host on
    /// first use and records its key (`StrictHostKeyChecking=accept-new`); a
    /// changed key is refused either way.
    pub strict_host_key: bool,
    /// What runs there: the deployed agent or a command already installed.
    pub program: SshProgram,
    /// Where the agent is installed on the board (`target.remote_dir`,
    /// default `/opt/rig`).
    pub remote_dir: String,
    /// How the program is started there (`target.run_as`, default `process`).
    pub run_as: RunAs,
    /// Bound on connecting and authenticating (`target.connect_timeout_s`,
    /// default 10 s).
    pub connect_timeout: Duration,
}

/// What an SSH target runs.
#[derive(Clone, Debug, PartialEq)]
pub enum SshProgram {
    /// The reference agent, copied to `remote_dir` and started with the
    /// rig's agent arguments, then `args`.
    Agent {
        /// Where the binary comes from.
        source: AgentSource,
        /// Extra arguments (`target.args`), with placeholders.
        args: Vec<Template>,
    },
    /// A program already on the board (`target.command`), nothing copied.
    Command(Vec<Template>),
}

/// Where an SSH target's agent binary comes from (`target.agent`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentSource {
    /// A file on this host (`agent = "path"`, or found as for `sim` when
    /// absent), whose architecture must match the board's.
    Local(AgentLocation),
    /// Cross-built with cargo for this Rust target triple when the DUT starts
    /// (`agent = { cross = "aarch64-unknown-linux-gnu" }`).
    Cross(String),
}

/// How an SSH target's program is started (`target.run_as`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunAs {
    /// Under the ssh session, its stdio piped back to the rig.
    Process,
    /// As a transient systemd unit (`systemd-run --pipe`), stdio piped back.
    Service,
}

/// Values of `target.run_as`.
pub const RUN_AS: &[&str] = &["process", "service"];

impl TargetKind {
    /// The kind as written in the file.
    pub fn as_str(&self) -> &'static str {
        match self {
            TargetKind::Sim { .. } => "sim",
            TargetKind::Process { .. } => "process",
            TargetKind::ProbeRs { .. } => "probe-rs",
            TargetKind::Ssh { .. } => "ssh",
        }
    }
}

/// A serial console.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleSpec {
    /// A stable `/dev/serial/by-id/...` path.
    pub port: PathBuf,
    /// Baud rate.
    pub baud: u32,
    /// Data bits, 5 to 8 (default 8).
    pub data_bits: u8,
    /// Parity: `none`, `odd` or `even` (default `none`).
    pub parity: String,
    /// Stop bits, 1 or 2 (default 1).
    pub stop_bits: u8,
    /// Flow control: `none`, `software` or `hardware` (default `none`).
    pub flow_control: String,
    /// How long to keep trying to reopen the port after it disappears
    /// (a USB device re-enumerating after a reset); default 10 s.
    pub reconnect: Duration,
}

/// Parity values of `console.parity`.
pub const PARITIES: &[&str] = &["none", "odd", "even"];
/// Flow-control values of `console.flow_control`.
pub const FLOW_CONTROLS: &[&str] = &["none", "software", "hardware"];

/// How the DUT reaches the services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkSpec {
    /// Over the host's loopback (functional cases only: nothing is measured).
    Loopback,
    /// A simulated link between network namespaces, bridged by the rig.
    Sim {
        /// Whether the link may be impaired (cut, loss, delay...).
        impair: bool,
    },
    /// A dedicated NIC the DUT sits on.
    Nic {
        /// The interface, e.g. `eth1`.
        interface: String,
        /// Whether the rig bridges (and may impair) rather than only captures.
        impair: bool,
    },
}

impl NetworkSpec {
    /// The kind as written in the file.
    pub fn as_str(&self) -> &'static str {
        match self {
            NetworkSpec::Loopback => "loopback",
            NetworkSpec::Sim { .. } => "sim",
            NetworkSpec::Nic { .. } => "nic",
        }
    }
}

/// The power instrument.
#[derive(Clone, Debug, PartialEq)]
pub enum PowerSpec {
    /// An energy model of the radio and CPU (simulated INA219 registers).
    Model {
        /// The model's profile, e.g. `lte-m`.
        profile: String,
    },
    /// A real INA219 on an I2C bus.
    Ina219 {
        /// The I2C device, e.g. `/dev/i2c-1`.
        bus: PathBuf,
        /// 7-bit I2C address (0x40-0x4F).
        address: u8,
        /// Shunt resistance in ohms.
        shunt_ohms: f64,
        /// The largest current expected, in amperes (sets the calibration;
        /// default 3.2).
        max_current_a: f64,
        /// Samples averaged per conversion: 1, 2, 4 ... 128 (default 1).
        averaging: u32,
    },
}

/// Time limits of a bench.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeouts {
    /// How long the DUT may take to start and show `ready` (default 10 s).
    pub start: Duration,
    /// Multiplies every case timeout on this bench (default 1; slow boards > 1).
    pub case_scale: f64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            start: Duration::from_secs(10),
            case_scale: 1.0,
        }
    }
}

impl Bench {
    /// Reads and validates a bench file (and the device profile it names).
    pub fn load(path: &Path) -> Result<Self, Diagnostics> {
        let src = SourceFile::read(path)?;
        Self::parse(&src)
    }

    /// Validates bench text. Relative paths are resolved against the
    /// directory of `src.path()`.
    pub fn parse(src: &SourceFile) -> Result<Self, Diagnostics> {
        let doc = src.parse()?;
        let dir = src
            .path()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut cx = Checker::new(src);
        let mut root = cx.root(&doc);

        let mut name = None;
        let mut description = String::new();
        let mut declared = BTreeSet::new();
        if let Some(mut t) = root
            .required(&mut cx, "bench", "a table with at least `name`")
            .and_then(|i| i.table(&mut cx))
        {
            name = t
                .required(&mut cx, "name", "the bench's name")
                .and_then(|i| i.non_empty_str(&mut cx));
            if let Some(d) = t.get("description").and_then(|i| i.str(&mut cx)) {
                description = d.to_string();
            }
            if let Some(list) = t.get("features").and_then(|i| i.str_array(&mut cx)) {
                for f in list {
                    if valid_feature(f.get_ref()) {
                        declared.insert(f.into_inner());
                    } else {
                        cx.error(
                            f.span(),
                            "bench.features",
                            format!(
                                "feature `{}` must be lower-case letters, digits and `-`",
                                f.get_ref()
                            ),
                        );
                    }
                }
            }
            t.finish(&mut cx);
        }

        let target = root
            .required(&mut cx, "target", "the DUT: a table with `kind`")
            .and_then(|i| i.table(&mut cx))
            .and_then(|t| target(&mut cx, t, &dir));

        let network = match root.get("network").and_then(|i| i.table(&mut cx)) {
            Some(t) => network(&mut cx, t),
            None => Some(NetworkSpec::Loopback),
        };

        let power = match root.get("power") {
            Some(i) => i.table(&mut cx).and_then(|t| power(&mut cx, t)).map(Some),
            None => Some(None),
        };

        let mut timeouts = Timeouts::default();
        if let Some(mut t) = root.get("timeouts").and_then(|i| i.table(&mut cx)) {
            if let Some(s) = t
                .get("start_s")
                .and_then(|i| i.number(&mut cx, 0.0, 3600.0))
            {
                timeouts.start = Duration::from_secs_f64(s);
            }
            if let Some(s) = t
                .get("case_scale")
                .and_then(|i| i.number(&mut cx, 0.0, 1000.0))
            {
                timeouts.case_scale = s;
            }
            t.finish(&mut cx);
        }
        let security = match root.get("security") {
            Some(i) => i.table(&mut cx).and_then(|t| security(&mut cx, t, &dir)),
            None => Some(SecuritySpec::defaults(&dir)),
        };
        root.finish(&mut cx);

        let bench = (|| {
            let target = target?;
            let network = network?;
            let power = power?;
            let security = security?;
            let mut features = declared;
            features.insert("lwm2m".into());
            features.insert("udp".into());
            if target.profile.is_some() || matches!(target.kind, TargetKind::Sim { .. }) {
                features.insert("console".into());
            }
            if matches!(network, NetworkSpec::Sim { .. } | NetworkSpec::Nic { .. }) {
                // Every frame crosses the rig's bridge or its capture: byte and
                // packet counts are measured, never estimated.
                features.insert("capture".into());
            }
            if matches!(
                network,
                NetworkSpec::Sim { impair: true } | NetworkSpec::Nic { impair: true, .. }
            ) {
                features.insert("impair".into());
            }
            if power.is_some() {
                features.insert("power".into());
            }
            Some(Bench {
                name: name?.to_string(),
                path: src.path().to_path_buf(),
                description,
                target,
                network,
                power,
                features,
                timeouts,
                security,
            })
        })();
        let mut result = cx.into_result(bench);
        if let Err(d) = &mut result {
            crate::diag::sort(d);
        }
        result
    }
}

fn valid_feature(f: &str) -> bool {
    !f.is_empty()
        && f.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Keys of `[target]` and the kinds they belong to.
const TARGET_KEYS: &[(&str, &[&str])] = &[
    ("agent", &["sim", "ssh"]),
    ("args", &["sim", "ssh"]),
    ("command", &["process", "ssh"]),
    ("cwd", &["process"]),
    ("env", &["process"]),
    ("profile", &["sim", "process", "probe-rs", "ssh"]),
    ("console", &["process", "probe-rs", "ssh"]),
    ("chip", &["probe-rs"]),
    ("probe", &["probe-rs"]),
    ("firmware", &["probe-rs"]),
    ("base_address", &["probe-rs"]),
    ("host", &["ssh"]),
    ("power_switch", &["sim", "process", "probe-rs", "ssh"]),
    ("user", &["ssh"]),
    ("port", &["ssh"]),
    ("identity", &["ssh"]),
    ("known_hosts", &["ssh"]),
    ("strict_host_key", &["ssh"]),
    ("remote_dir", &["ssh"]),
    ("run_as", &["ssh"]),
    ("connect_timeout_s", &["ssh"]),
];

fn target(cx: &mut Checker<'_>, mut t: TableReader<'_, '_>, dir: &Path) -> Option<TargetSpec> {
    let kind = t
        .required(
            cx,
            "kind",
            "one of \"sim\", \"process\", \"probe-rs\", \"ssh\"",
        )
        .and_then(|i| i.one_of(cx, TARGET_KINDS));
    let Some(kind) = kind else {
        // Without a kind the other keys cannot be judged; still report unknown ones.
        t.allow(&TARGET_KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>());
        t.finish(cx);
        return None;
    };
    for (key, kinds) in TARGET_KEYS {
        if !kinds.contains(&kind) {
            let list = kinds
                .iter()
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(" or ");
            t.reject(
                cx,
                key,
                &format!("it applies to kind = {list}, not \"{kind}\""),
            );
        }
    }

    let profile = match t.get("profile") {
        Some(i) => match i.non_empty_str(cx) {
            Some(p) => load_profile(cx, &i, dir, p).map(Some),
            None => None,
        },
        None if kind == "sim" => Some(Some(Profile::rig_agent())),
        None => Some(None),
    };

    let console = match t.get("console") {
        Some(i) => i.table(cx).and_then(|c| console(cx, c)).map(Some),
        None => Some(None),
    };
    let power_switch = match t.get("power_switch") {
        Some(i) => i.table(cx).and_then(|s| power_switch(cx, s)).map(Some),
        None => Some(None),
    };

    let spec = match kind {
        "sim" => {
            let agent = match t.get("agent") {
                Some(i) => i.non_empty_str(cx).map(|s| {
                    if s == "auto" {
                        AgentLocation::Auto
                    } else {
                        AgentLocation::Path(dir.join(s))
                    }
                }),
                None => Some(AgentLocation::Auto),
            };
            let args = match t.get("args") {
                Some(i) => templates(cx, &i),
                None => Some(Vec::new()),
            };
            Some(TargetKind::Sim {
                agent: agent?,
                args: args?,
            })
        }
        "process" => {
            let command = t
                .required(
                    cx,
                    "command",
                    "the program and its arguments, e.g. [\"./client\", \"{server_uri}\"]",
                )
                .and_then(|i| non_empty_templates(cx, &i));
            let cwd = match t.get("cwd") {
                Some(i) => i.non_empty_str(cx).map(|s| Some(dir.join(s))),
                None => Some(None),
            };
            let env = match t.get("env") {
                Some(i) => env(cx, &i),
                None => Some(BTreeMap::new()),
            };
            Some(TargetKind::Process {
                command: command?,
                cwd: cwd?,
                env: env?,
            })
        }
        "probe-rs" => {
            let chip = t
                .required(cx, "chip", "the probe-rs chip name, e.g. \"nRF52840_xxAA\"")
                .and_then(|i| i.non_empty_str(cx));
            let probe = match t.get("probe") {
                Some(i) => i
                    .non_empty_str(cx)
                    .and_then(|p| probe_selector(cx, &i, p))
                    .map(Some),
                None => Some(None),
            };
            let firmware = t
                .required(cx, "firmware", "the image to flash (ELF, HEX or BIN)")
                .and_then(|i| i.non_empty_str(cx))
                .map(|s| dir.join(s));
            let base_address = match t.get("base_address") {
                Some(i) => i
                    .int(cx, 0..=i64::from(u32::MAX))
                    .and_then(|a| u64::try_from(a).ok())
                    .map(Some),
                None => Some(None),
            };
            Some(TargetKind::ProbeRs {
                chip: chip?.to_string(),
                probe: probe?,
                firmware: firmware?,
                base_address: base_address?,
            })
        }
        _ => ssh_target(cx, &mut t, dir).map(TargetKind::Ssh),
    };
    t.finish(cx);
    let kind = spec?;
    let mut profile = profile?;
    if profile.is_none()
        && let TargetKind::Ssh(SshSpec {
            program: SshProgram::Agent { .. },
            ..
        }) = &kind
    {
        // The deployed agent is the reference agent: its profile by default.
        profile = Some(Profile::rig_agent());
    }
    Some(TargetSpec {
        kind,
        console: console?,
        profile,
        power_switch: power_switch?,
    })
}

/// Characters allowed in `target.remote_dir` (it is used in remote shell
/// commands and unit names, so nothing that needs quoting).
fn plain_remote_path(s: &str) -> bool {
    s.starts_with('/')
        && s.len() > 1
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))
}

/// A host or user name that ssh cannot mistake for an option or a
/// `user@host` pair.
fn plain_ssh_word(s: &str, at_allowed: bool) -> bool {
    !s.starts_with('-')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && (at_allowed || !s.contains('@'))
}

fn ssh_target(cx: &mut Checker<'_>, t: &mut TableReader<'_, '_>, dir: &Path) -> Option<SshSpec> {
    let host = t
        .required(cx, "host", "the board's host name or address")
        .and_then(|i| {
            let s = i.non_empty_str(cx)?;
            if plain_ssh_word(s, false) {
                Some(s.to_string())
            } else {
                cx.error(
                    i.span(),
                    &i.field,
                    format!("\"{s}\" is not a host name or address (no spaces, `@` or leading `-`); put the user in `target.user`"),
                );
                None
            }
        });
    let port = match t.get("port") {
        Some(i) => i.int(cx, 1..=65535).and_then(|p| u16::try_from(p).ok()),
        None => Some(22),
    };
    let user = match t.get("user") {
        Some(i) => i.non_empty_str(cx).and_then(|s| {
            if plain_ssh_word(s, false) {
                Some(Some(s.to_string()))
            } else {
                cx.error(
                    i.span(),
                    &i.field,
                    format!("\"{s}\" is not a user name (no spaces, `@` or leading `-`)"),
                );
                None
            }
        }),
        None => Some(None),
    };
    let identity = match t.get("identity") {
        Some(i) => i.non_empty_str(cx).and_then(|s| {
            let path = dir.join(s);
            if path.is_file() {
                Some(Some(path))
            } else {
                cx.error_help(
                    i.span(),
                    &i.field,
                    format!("key file `{s}` not found (looked at {})", path.display()),
                    format!(
                        "make one with `ssh-keygen -t ed25519 -N '' -f {}` and install it on the board with `ssh-copy-id -i {}.pub <user>@<host>`",
                        path.display(),
                        path.display()
                    ),
                );
                None
            }
        }),
        None => Some(None),
    };
    let strict_host_key = match t.get("strict_host_key") {
        Some(i) => i.bool(cx),
        None => Some(true),
    };
    let known_hosts = match t.get("known_hosts") {
        Some(i) => i.non_empty_str(cx).and_then(|s| {
            let path = dir.join(s);
            if path.is_file() || strict_host_key == Some(false) {
                Some(Some(path))
            } else {
                cx.error_help(
                    i.span(),
                    &i.field,
                    format!(
                        "known-hosts file `{s}` not found (looked at {}), and unknown host keys are refused (strict_host_key = true)",
                        path.display()
                    ),
                    format!(
                        "record the board's key with `ssh-keyscan -p {} {} >> {}` and compare its fingerprint (`ssh-keygen -lf`) with the board's own (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the board)",
                        port.unwrap_or(22),
                        host.as_deref().unwrap_or("<host>"),
                        path.display()
                    ),
                );
                None
            }
        }),
        None => Some(None),
    };
    let agent_item = t.get("agent");
    let args_item = t.get("args");
    let command_item = t.get("command");
    let program = if let Some(c) = command_item {
        let mut clash = false;
        for other in [&agent_item, &args_item].into_iter().flatten() {
            clash = true;
            cx.error_help(
                other.span(),
                &other.field,
                "cannot be combined with `target.command`",
                "use `agent` (the rig copies the reference agent to the board and starts it) or `command` (a program already installed there), not both",
            );
        }
        let command = non_empty_templates(cx, &c);
        if clash {
            None
        } else {
            command.map(SshProgram::Command)
        }
    } else {
        let source = match &agent_item {
            None => Some(AgentSource::Local(AgentLocation::Auto)),
            Some(i) => match i.value.get_ref() {
                toml::de::DeValue::Table(_) => i.table(cx).and_then(|mut a| {
                    let cross = a
                        .required(
                            cx,
                            "cross",
                            "the Rust target to cross-build for, e.g. \"aarch64-unknown-linux-gnu\"",
                        )
                        .and_then(|c| {
                            let s = c.non_empty_str(cx)?;
                            if s.split('-').count() >= 3
                                && s.chars().all(|ch| {
                                    ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.')
                                })
                            {
                                Some(s.to_string())
                            } else {
                                cx.error_help(
                                    c.span(),
                                    &c.field,
                                    format!("\"{s}\" is not a Rust target triple"),
                                    "a Raspberry Pi 3/4/5 on 64-bit Raspberry Pi OS is \"aarch64-unknown-linux-gnu\"; `rustc --print target-list` lists them",
                                );
                                None
                            }
                        });
                    a.finish(cx);
                    cross.map(AgentSource::Cross)
                }),
                _ => i.non_empty_str(cx).map(|s| {
                    if s == "auto" {
                        AgentSource::Local(AgentLocation::Auto)
                    } else {
                        AgentSource::Local(AgentLocation::Path(dir.join(s)))
                    }
                }),
            },
        };
        let args = match &args_item {
            Some(i) => templates(cx, i),
            None => Some(Vec::new()),
        };
        match (source, args) {
            (Some(source), Some(args)) => Some(SshProgram::Agent { source, args }),
            _ => None,
        }
    };
    let remote_dir = match t.get("remote_dir") {
        Some(i) => i.non_empty_str(cx).and_then(|s| {
            let s = s.trim_end_matches('/');
            if plain_remote_path(s) {
                Some(s.to_string())
            } else {
                cx.error(
                    i.span(),
                    &i.field,
                    format!(
                        "expected an absolute path of letters, digits and `/._-` (not `/` itself), found \"{s}\""
                    ),
                );
                None
            }
        }),
        None => Some("/opt/rig".to_string()),
    };
    let run_as = match t.get("run_as") {
        Some(i) => i.one_of(cx, RUN_AS).map(|r| {
            if r == "service" {
                RunAs::Service
            } else {
                RunAs::Process
            }
        }),
        None => Some(RunAs::Process),
    };
    let connect_timeout = match t.get("connect_timeout_s") {
        Some(i) => i.number(cx, 0.0, 300.0).map(Duration::from_secs_f64),
        None => Some(Duration::from_secs(10)),
    };
    Some(SshSpec {
        host: host?,
        port: port?,
        user: user?,
        identity: identity?,
        known_hosts: known_hosts?,
        strict_host_key: strict_host_key?,
        program: program?,
        remote_dir: remote_dir?,
        run_as: run_as?,
        connect_timeout: connect_timeout?,
    })
}

fn power_switch(cx: &mut Checker<'_>, mut t: TableReader<'_, '_>) -> Option<PowerSwitch> {
    let command = t.get("command");
    let uhubctl = t.get("uhubctl");
    let out = match (command, uhubctl) {
        (Some(c), None) => {
            let list = c.str_array(cx)?;
            if list.first().is_none_or(|s| s.get_ref().trim().is_empty()) {
                cx.error(
                    c.span(),
                    &c.field,
                    "must name a program: a non-empty first element",
                );
                None
            } else {
                Some(PowerSwitch::Command(
                    list.into_iter().map(|s| s.into_inner()).collect(),
                ))
            }
        }
        (None, Some(u)) => {
            let mut u = u.table(cx)?;
            let hub = u
                .required(
                    cx,
                    "hub",
                    "the hub location, e.g. \"1-1\" (`uhubctl` lists them)",
                )
                .and_then(|i| i.non_empty_str(cx))
                .map(str::to_string);
            let port = u
                .required(cx, "port", "the port number on the hub")
                .and_then(|i| i.int(cx, 1..=255))
                .and_then(|p| u32::try_from(p).ok());
            u.finish(cx);
            Some(PowerSwitch::Uhubctl {
                hub: hub?,
                port: port?,
            })
        }
        _ => {
            cx.error(
                t.span(),
                t.field(),
                "expected exactly one of `command = [...]` or `uhubctl = { hub, port }`",
            );
            None
        }
    };
    t.finish(cx);
    out
}

fn load_profile(
    cx: &mut Checker<'_>,
    item: &Item<'_, '_>,
    dir: &Path,
    rel: &str,
) -> Option<Profile> {
    let path = dir.join(rel);
    if !path.is_file() {
        cx.error_help(
            item.span(),
            &item.field,
            format!("profile file `{rel}` not found (looked at {})", path.display()),
            "profile paths are relative to the bench file's directory, e.g. \"profiles/rig-agent.toml\"",
        );
        return None;
    }
    match Profile::load(&path) {
        Ok(p) => Some(p),
        Err(d) => {
            cx.error(
                item.span(),
                &item.field,
                format!("profile `{rel}` is invalid (problems listed below)"),
            );
            cx.extend(d);
            None
        }
    }
}

fn templates(cx: &mut Checker<'_>, item: &Item<'_, '_>) -> Option<Vec<Template>> {
    let list = item.str_array(cx)?;
    let mut out = Vec::new();
    let mut ok = true;
    for (n, s) in list.iter().enumerate() {
        match Template::parse(s.get_ref(), false) {
            Ok(t) => out.push(t),
            Err(e) => {
                ok = false;
                let field = format!("{}[{n}]", item.field);
                crate::profile::report_template_error(cx, s.span(), &field, s.get_ref(), &e);
            }
        }
    }
    ok.then_some(out)
}

fn non_empty_templates(cx: &mut Checker<'_>, item: &Item<'_, '_>) -> Option<Vec<Template>> {
    let list = templates(cx, item)?;
    if list.first().is_none_or(|t| t.as_str().trim().is_empty()) {
        cx.error(
            item.span(),
            &item.field,
            "must name a program: a non-empty first element",
        );
        return None;
    }
    Some(list)
}

fn env(cx: &mut Checker<'_>, item: &Item<'_, '_>) -> Option<BTreeMap<String, Template>> {
    let t = item.table(cx)?;
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, v) in t.entries() {
        match template(cx, &v, false) {
            Some(tpl) => {
                out.insert(k, tpl);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn probe_selector(cx: &mut Checker<'_>, item: &Item<'_, '_>, p: &str) -> Option<String> {
    let parts: Vec<&str> = p.split(':').collect();
    let hex4 = |s: &str| s.len() == 4 && s.chars().all(|c| c.is_ascii_hexdigit());
    if parts.len() >= 2 && parts.len() <= 3 && hex4(parts[0]) && hex4(parts[1]) {
        return Some(p.to_string());
    }
    cx.error_help(
        item.span(),
        &item.field,
        format!("expected VID:PID[:serial] with 4-digit hex ids, found \"{p}\""),
        "e.g. \"1366:1015:000683\"; `probe-rs list` shows attached probes",
    );
    None
}

fn console(cx: &mut Checker<'_>, mut t: TableReader<'_, '_>) -> Option<ConsoleSpec> {
    let port = t
        .required(cx, "port", "a /dev/serial/by-id/... path")
        .and_then(|i| {
            let s = i.non_empty_str(cx)?;
            if s.starts_with(SERIAL_BY_ID) && s.len() > SERIAL_BY_ID.len() {
                Some(PathBuf::from(s))
            } else {
                cx.error_help(
                    i.span(),
                    &i.field,
                    format!("expected a stable path under {SERIAL_BY_ID}, found \"{s}\""),
                    "names like /dev/ttyACM0 change between boots; `ls -l /dev/serial/by-id/` lists the stable ones",
                );
                None
            }
        });
    let baud = match t.get("baud") {
        Some(i) => i
            .int(cx, 300..=4_000_000)
            .and_then(|b| u32::try_from(b).ok()),
        None => Some(115_200),
    };
    let data_bits = match t.get("data_bits") {
        Some(i) => i.int(cx, 5..=8).and_then(|b| u8::try_from(b).ok()),
        None => Some(8),
    };
    let parity = match t.get("parity") {
        Some(i) => i.one_of(cx, PARITIES),
        None => Some("none"),
    };
    let stop_bits = match t.get("stop_bits") {
        Some(i) => i.int(cx, 1..=2).and_then(|b| u8::try_from(b).ok()),
        None => Some(1),
    };
    let flow_control = match t.get("flow_control") {
        Some(i) => i.one_of(cx, FLOW_CONTROLS),
        None => Some("none"),
    };
    let reconnect = match t.get("reconnect_s") {
        Some(i) => i.number(cx, 0.0, 600.0).map(Duration::from_secs_f64),
        None => Some(Duration::from_secs(10)),
    };
    t.finish(cx);
    Some(ConsoleSpec {
        port: port?,
        baud: baud?,
        data_bits: data_bits?,
        parity: parity?.to_string(),
        stop_bits: stop_bits?,
        flow_control: flow_control?.to_string(),
        reconnect: reconnect?,
    })
}

fn network(cx: &mut Checker<'_>, mut t: TableReader<'_, '_>) -> Option<NetworkSpec> {
    let kind = t
        .required(cx, "kind", "one of \"loopback\", \"sim\", \"nic\"")
        .and_then(|i| i.one_of(cx, NETWORK_KINDS));
    let impair_item = t.get("impair");
    let impair = match &impair_item {
        Some(i) => i.bool(cx),
        None => Some(false),
    };
    let out = match kind {
        Some("loopback") => {
            t.reject(cx, "interface", "it applies to kind = \"nic\" only");
            if let (Some(i), Some(true)) = (&impair_item, impair) {
                cx.error(
                    i.span(),
                    &i.field,
                    "a loopback network cannot be impaired; use kind = \"sim\"",
                );
                None
            } else {
                Some(NetworkSpec::Loopback)
            }
        }
        Some("sim") => {
            t.reject(cx, "interface", "it applies to kind = \"nic\" only");
            impair.map(|impair| NetworkSpec::Sim { impair })
        }
        Some(_) => {
            let interface = t
                .required(cx, "interface", "the NIC the DUT is on, e.g. \"eth1\"")
                .and_then(|i| i.non_empty_str(cx));
            match (interface, impair) {
                (Some(i), Some(impair)) => Some(NetworkSpec::Nic {
                    interface: i.to_string(),
                    impair,
                }),
                _ => None,
            }
        }
        None => {
            t.allow(&["interface"]);
            None
        }
    };
    t.finish(cx);
    out
}

fn power(cx: &mut Checker<'_>, mut t: TableReader<'_, '_>) -> Option<PowerSpec> {
    let kind = t
        .required(cx, "kind", "one of \"model\", \"ina219\"")
        .and_then(|i| i.one_of(cx, POWER_KINDS));
    let out = match kind {
        Some("model") => {
            for k in ["bus", "address", "shunt_ohms", "max_current_a", "averaging"] {
                t.reject(cx, k, "it applies to kind = \"ina219\" only");
            }
            t.required(cx, "profile", "the energy model, e.g. \"lte-m\"")
                .and_then(|i| i.one_of(cx, crate::power::model::PROFILES))
                .map(|p| PowerSpec::Model {
                    profile: p.to_string(),
                })
        }
        Some(_) => {
            t.reject(cx, "profile", "it applies to kind = \"model\" only");
            let bus = t
                .required(cx, "bus", "the I2C device, e.g. \"/dev/i2c-1\"")
                .and_then(|i| i.non_empty_str(cx))
                .map(PathBuf::from);
            let address = t
                .required(cx, "address", "the 7-bit I2C address, 0x40 to 0x4F")
                .and_then(|i| i.int(cx, 0x40..=0x4F))
                .and_then(|a| u8::try_from(a).ok());
            let shunt = t
                .required(cx, "shunt_ohms", "the shunt resistance, e.g. 0.1")
                .and_then(|i| i.number(cx, 0.0, 100.0));
            let max_current = match t.get("max_current_a") {
                Some(i) => i.number(cx, 0.0, 100.0).and_then(|a| {
                    // The shunt voltage at full scale must fit the widest PGA range.
                    let mv = shunt.map_or(0.0, |r| a * r * 1000.0);
                    if mv > 320.0 + 1e-6 {
                        cx.error_help(
                            i.span(),
                            &i.field,
                            format!(
                                "{a} A through the {} Ω shunt is {mv:.0} mV, beyond the INA219's ±320 mV",
                                shunt.unwrap_or_default()
                            ),
                            "use a smaller shunt, or a lower max_current_a",
                        );
                        None
                    } else {
                        Some(a)
                    }
                }),
                None => Some(3.2),
            };
            let averaging = match t.get("averaging") {
                Some(i) => i.int(cx, 1..=128).and_then(|n| {
                    let ok = crate::power::AVERAGING.iter().any(|a| i64::from(*a) == n);
                    if !ok {
                        cx.error(
                            i.span(),
                            &i.field,
                            format!("expected one of 1, 2, 4, 8, 16, 32, 64, 128, found {n}"),
                        );
                    }
                    u32::try_from(n).ok().filter(|_| ok)
                }),
                None => Some(1),
            };
            match (bus, address, shunt, max_current, averaging) {
                (
                    Some(bus),
                    Some(address),
                    Some(shunt_ohms),
                    Some(max_current_a),
                    Some(averaging),
                ) => {
                    let spec = PowerSpec::Ina219 {
                        bus,
                        address,
                        shunt_ohms,
                        max_current_a,
                        averaging,
                    };
                    // The calibration register must be reachable with these numbers.
                    if let Err(e) = crate::power::MeterConfig::from_spec(&spec).calibration() {
                        cx.error(t.span(), "power.max_current_a", e.to_string());
                        None
                    } else {
                        Some(spec)
                    }
                }
                _ => None,
            }
        }
        None => {
            t.allow(&[
                "profile",
                "bus",
                "address",
                "shunt_ohms",
                "max_current_a",
                "averaging",
            ]);
            None
        }
    };
    t.finish(cx);
    out
}

/// The folder of the test PKI, relative to the repository root.
pub const PKI_DIR: &str = "fixtures/pki";

/// The credentials of the secure modes (`[security]`): what the device holds
/// (the rig provisions the reference agent with it) and what the rig's server
/// uses. Every path is absolute after loading: relative paths in the file are
/// relative to the bench file's directory; a key left out defaults to its file
/// in the test PKI (`fixtures/pki/`, found from the bench file's directory
/// upwards, else from the current directory upwards; see [`find_pki`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecuritySpec {
    /// The server's credential store (`rig_dtls::CredentialStore` TOML): which
    /// PSK identity, certificate CN or public key belongs to which endpoint.
    pub store: PathBuf,
    /// The device's PSK identity; `None` = the store's first `[[psk]]` entry.
    pub psk_identity: Option<String>,
    /// The device's PSK key in hex (`psk_key_hex`, or read from `psk_key_file`);
    /// `None` = the store's key for the identity.
    pub psk_key_hex: Option<String>,
    /// The file the key came from, if `psk_key_file` gave it.
    pub psk_key_file: Option<PathBuf>,
    /// The device's certificate (PEM); its CN is the endpoint in X.509 mode.
    pub client_cert: PathBuf,
    /// The device's private key for `client_cert` (PEM).
    pub client_key: PathBuf,
    /// The CA both sides trust: the device checks the server's certificate
    /// against it, the server the device's.
    pub ca: PathBuf,
    /// The server's certificate chain (PEM, leaf first).
    pub server_cert: PathBuf,
    /// The server's private key (PEM).
    pub server_key: PathBuf,
    /// The name the device checks the server's certificate against (and sends
    /// as SNI), e.g. `server.example.com`.
    pub server_name: String,
    /// A server certificate for another host (ETS int-403).
    pub wrong_host_cert: PathBuf,
    /// The key of `wrong_host_cert`.
    pub wrong_host_key: PathBuf,
    /// The device's raw public key pair (private key PEM), RPK mode.
    pub rpk_client_key: PathBuf,
    /// The server's raw public key pair (private key PEM), RPK mode.
    pub rpk_server_key: PathBuf,
    /// The server's public key (PEM) that the device pins, RPK mode.
    pub rpk_server_public: PathBuf,
}

/// The path keys of `[security]` and their default files in the test PKI.
const SECURITY_FILES: &[(&str, &str)] = &[
    ("store", "store.toml"),
    ("client_cert", "client-dev-1.pem"),
    ("client_key", "client-dev-1.key"),
    ("ca", "ca.pem"),
    ("server_cert", "server-chain.pem"),
    ("server_key", "server.key"),
    ("wrong_host_cert", "server-wrong-host.pem"),
    ("wrong_host_key", "server-wrong-host.key"),
    ("rpk_client_key", "rpk-dev-3.key"),
    ("rpk_server_key", "rpk-server.key"),
    ("rpk_server_public", "rpk-server.pub.pem"),
];

/// The default `server_name`: a DNS name in the test server certificate.
pub const DEFAULT_SERVER_NAME: &str = "server.example.com";

/// Finds the test PKI: `fixtures/pki` in `dir` or one of its parents, else
/// in the current directory or one of its parents, else `fixtures/pki` under
/// the current directory (which may not exist: using it then fails naming
/// the file).
pub fn find_pki(dir: &Path) -> PathBuf {
    let start = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|c| c.join(dir))
            .unwrap_or_else(|_| dir.to_path_buf())
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    for from in [start.as_path(), cwd.as_path()] {
        let mut at = Some(from);
        while let Some(d) = at {
            let candidate = d.join(PKI_DIR);
            if candidate.join("store.toml").is_file() {
                return candidate;
            }
            at = d.parent();
        }
    }
    cwd.join(PKI_DIR)
}

impl SecuritySpec {
    /// The defaults: every file from the test PKI found from `dir`.
    pub fn defaults(dir: &Path) -> Self {
        let pki = find_pki(dir);
        let file = |key: &str| {
            let name = SECURITY_FILES
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(key, |(_, f)| *f);
            pki.join(name)
        };
        Self {
            store: file("store"),
            psk_identity: None,
            psk_key_hex: None,
            psk_key_file: None,
            client_cert: file("client_cert"),
            client_key: file("client_key"),
            ca: file("ca"),
            server_cert: file("server_cert"),
            server_key: file("server_key"),
            server_name: DEFAULT_SERVER_NAME.to_string(),
            wrong_host_cert: file("wrong_host_cert"),
            wrong_host_key: file("wrong_host_key"),
            rpk_client_key: file("rpk_client_key"),
            rpk_server_key: file("rpk_server_key"),
            rpk_server_public: file("rpk_server_public"),
        }
    }

    fn set_path(&mut self, key: &str, path: PathBuf) {
        let slot = match key {
            "store" => &mut self.store,
            "client_cert" => &mut self.client_cert,
            "client_key" => &mut self.client_key,
            "ca" => &mut self.ca,
            "server_cert" => &mut self.server_cert,
            "server_key" => &mut self.server_key,
            "wrong_host_cert" => &mut self.wrong_host_cert,
            "wrong_host_key" => &mut self.wrong_host_key,
            "rpk_client_key" => &mut self.rpk_client_key,
            "rpk_server_key" => &mut self.rpk_server_key,
            _ => &mut self.rpk_server_public,
        };
        *slot = path;
    }
}

/// Longest PSK identity (bytes) LwM2M allows.
const MAX_PSK_IDENTITY: usize = 128;
/// Longest PSK key (bytes) the rig accepts.
const MAX_PSK_KEY: usize = 64;

/// Checks hex key text: even length, hex digits only, 1 to 64 bytes. On error:
/// the byte offset of the problem in the text and the message.
fn check_key_hex(text: &str) -> Result<(), (usize, String)> {
    if let Some((at, c)) = text.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err((at, format!("`{c}` is not a hex digit")));
    }
    if text.is_empty() {
        return Err((0, "the key is empty".into()));
    }
    if !text.len().is_multiple_of(2) {
        return Err((
            0,
            format!("odd number of hex digits ({}): two per byte", text.len()),
        ));
    }
    if text.len() / 2 > MAX_PSK_KEY {
        return Err((
            0,
            format!(
                "the key has {} bytes; at most {MAX_PSK_KEY} are allowed",
                text.len() / 2
            ),
        ));
    }
    Ok(())
}

fn security(cx: &mut Checker<'_>, mut t: TableReader<'_, '_>, dir: &Path) -> Option<SecuritySpec> {
    let mut spec = SecuritySpec::defaults(dir);
    let mut ok = true;
    for (key, _) in SECURITY_FILES {
        let Some(i) = t.get(key) else { continue };
        let Some(rel) = i.non_empty_str(cx) else {
            ok = false;
            continue;
        };
        let shown = dir.join(rel);
        let path = if shown.is_absolute() {
            shown.clone()
        } else {
            std::env::current_dir()
                .map(|c| c.join(&shown))
                .unwrap_or_else(|_| shown.clone())
        };
        if !path.is_file() {
            cx.error_help(
                i.span(),
                &i.field,
                format!("file `{rel}` not found (looked at {})", shown.display()),
                "paths in [security] are relative to the bench file's directory",
            );
            ok = false;
            continue;
        }
        spec.set_path(key, path);
    }
    if let Some(i) = t.get("psk_identity") {
        match i.non_empty_str(cx) {
            Some(id) if id.len() > MAX_PSK_IDENTITY => {
                cx.error(
                    i.span(),
                    &i.field,
                    format!(
                        "the identity has {} bytes; LwM2M allows at most {MAX_PSK_IDENTITY}",
                        id.len()
                    ),
                );
                ok = false;
            }
            Some(id) => spec.psk_identity = Some(id.to_string()),
            None => ok = false,
        }
    }
    let hex = t.get("psk_key_hex");
    let file = t.get("psk_key_file");
    match (hex, file) {
        (Some(h), Some(f)) => {
            cx.error_help(
                f.key_span.clone(),
                &f.field,
                "`psk_key_file` and `psk_key_hex` are both given",
                "give the key once: inline as hex, or in a file",
            );
            let _ = h;
            ok = false;
        }
        (Some(i), None) => match i.str(cx) {
            Some(text) => match check_key_hex(text) {
                Ok(()) => spec.psk_key_hex = Some(text.to_ascii_lowercase()),
                Err((at, message)) => {
                    // Point at the offending digit: the value starts with its quote.
                    let start = i.span().start + 1 + at;
                    let span = if at == 0 { i.span() } else { start..start + 1 };
                    cx.error_help(
                        span,
                        &i.field,
                        format!("bad PSK key: {message}"),
                        "e.g. psk_key_hex = \"000102030405060708090a0b0c0d0e0f\" (16 bytes)",
                    );
                    ok = false;
                }
            },
            None => ok = false,
        },
        (None, Some(i)) => match i.non_empty_str(cx) {
            Some(rel) => {
                let path = dir.join(rel);
                match std::fs::read_to_string(&path) {
                    Ok(text) => match check_key_hex(text.trim()) {
                        Ok(()) => {
                            spec.psk_key_hex = Some(text.trim().to_ascii_lowercase());
                            spec.psk_key_file = Some(path);
                        }
                        Err((_, message)) => {
                            cx.error_help(
                                i.span(),
                                &i.field,
                                format!("bad PSK key in {}: {message}", path.display()),
                                "the file holds the key as hex digits on one line",
                            );
                            ok = false;
                        }
                    },
                    Err(e) => {
                        cx.error(
                            i.span(),
                            &i.field,
                            format!("cannot read `{rel}` ({}): {e}", path.display()),
                        );
                        ok = false;
                    }
                }
            }
            None => ok = false,
        },
        (None, None) => {}
    }
    if let Some(i) = t.get("server_name") {
        match i.non_empty_str(cx) {
            Some(n) => spec.server_name = n.to_string(),
            None => ok = false,
        }
    }
    t.finish(cx);
    ok.then_some(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Bench, Diagnostics> {
        Bench::parse(&SourceFile::new("b.toml", text))
    }

    #[test]
    fn a_minimal_sim_bench_gets_defaults_and_derived_features() {
        let b = parse("[bench]\nname = \"x\"\n[target]\nkind = \"sim\"\n").unwrap();
        assert_eq!(b.network, NetworkSpec::Loopback);
        assert_eq!(
            b.target.kind,
            TargetKind::Sim {
                agent: AgentLocation::Auto,
                args: vec![]
            }
        );
        assert_eq!(
            b.target.profile.as_ref().map(|p| p.name.as_str()),
            Some("rig-agent")
        );
        let f: Vec<&str> = b.features.iter().map(String::as_str).collect();
        assert_eq!(f, ["console", "lwm2m", "udp"]);
        assert_eq!(b.timeouts, Timeouts::default());
    }

    #[test]
    fn impair_and_power_are_derived() {
        let b = parse(
            "[bench]\nname = \"x\"\nfeatures = [\"dtls-psk\"]\n[target]\nkind = \"sim\"\n\
             [network]\nkind = \"sim\"\nimpair = true\n\
             [power]\nkind = \"ina219\"\nbus = \"/dev/i2c-1\"\naddress = 0x40\nshunt_ohms = 0.1\n",
        )
        .unwrap();
        for f in ["impair", "power", "dtls-psk"] {
            assert!(b.features.contains(f), "{f}");
        }
        assert_eq!(
            b.power,
            Some(PowerSpec::Ina219 {
                bus: "/dev/i2c-1".into(),
                address: 0x40,
                shunt_ohms: 0.1,
                max_current_a: 3.2,
                averaging: 1,
            })
        );
    }

    #[test]
    fn keys_of_another_kind_are_rejected_with_the_reason() {
        let e = parse("[bench]\nname = \"x\"\n[target]\nkind = \"sim\"\ncommand = [\"a\"]\n")
            .unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(
            e.0[0]
                .message
                .contains("applies to kind = \"process\" or \"ssh\""),
            "{e}"
        );
    }

    #[test]
    fn process_command_placeholders_are_parsed() {
        let b = parse(
            "[bench]\nname = \"x\"\n[target]\nkind = \"process\"\n\
             command = [\"client\", \"-s\", \"{server_uri}\", \"-e\", \"{endpoint}\"]\nenv = { EP = \"{endpoint}\" }\n",
        )
        .unwrap();
        let TargetKind::Process { command, env, .. } = &b.target.kind else {
            panic!()
        };
        assert_eq!(command.len(), 5);
        assert_eq!(env["EP"].as_str(), "{endpoint}");
        assert!(b.target.profile.is_none());
        assert!(!b.features.contains("console"));
    }

    #[test]
    fn security_defaults_to_the_test_pki_and_resolves_paths_from_the_bench_folder() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let b = Bench::load(&root.join("hardware/sim.toml")).unwrap();
        let s = &b.security;
        assert!(s.store.ends_with("fixtures/pki/store.toml"), "{s:?}");
        assert!(s.store.is_file() && s.ca.is_file() && s.rpk_server_public.is_file());
        assert_eq!(s.server_name, DEFAULT_SERVER_NAME);
        assert_eq!((&s.psk_identity, &s.psk_key_hex), (&None, &None));

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dev.psk"), "C7FFBEDD\n").unwrap();
        std::fs::write(dir.path().join("dev.pem"), "x").unwrap();
        let path = dir.path().join("b.toml");
        std::fs::write(
            &path,
            "[bench]\nname = \"b\"\n[target]\nkind = \"sim\"\n[security]\n\
             psk_identity = \"dev\"\npsk_key_file = \"dev.psk\"\nclient_cert = \"dev.pem\"\n\
             server_name = \"lwm2m.example.net\"\n",
        )
        .unwrap();
        let b = Bench::load(&path).unwrap();
        assert_eq!(b.security.psk_identity.as_deref(), Some("dev"));
        assert_eq!(b.security.psk_key_hex.as_deref(), Some("c7ffbedd"));
        assert_eq!(b.security.client_cert, dir.path().join("dev.pem"));
        assert_eq!(b.security.server_name, "lwm2m.example.net");
        // Keys left out still come from the test PKI (found from the cwd).
        assert!(b.security.server_key.ends_with("fixtures/pki/server.key"));
    }

    #[test]
    fn a_bad_psk_key_is_reported_at_its_digit() {
        let e = parse(
            "[bench]\nname = \"b\"\n[target]\nkind = \"sim\"\n[security]\npsk_key_hex = \"00g1\"\n",
        )
        .unwrap_err();
        let d = &e.0[0];
        assert_eq!(
            (d.line, d.column, d.field.as_str()),
            (6, 18, "security.psk_key_hex")
        );
        assert!(d.message.contains("`g` is not a hex digit"), "{d}");
        for bad in ["\"0\"", "\"\"", &format!("\"{}\"", "00".repeat(65))] {
            let text = format!(
                "[bench]\nname = \"b\"\n[target]\nkind = \"sim\"\n[security]\npsk_key_hex = {bad}\n"
            );
            assert!(parse(&text).is_err(), "{bad}");
        }
    }
}
