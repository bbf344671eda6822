//! The `probe-rs` target: a board flashed through a debug probe.
//!
//! Order of work, cheapest and safest first, so a wrong bench file never
//! touches hardware:
//!
//! 1. [`lookup_chip`]: the chip in probe-rs's built-in target database, with
//!    "did you mean" for a wrong name.
//! 2. [`check_fit`]: the firmware (ELF, Intel HEX, or raw BIN at a base
//!    address) fits the chip's flash, and an ELF's RAM segments fit its RAM.
//! 3. [`select_probe`]: the probe by `VID:PID[:serial]`; with several
//!    attached and no selector, rig refuses to guess; with none, the error says
//!    so and lists the USB devices that were seen.
//! 4. [`flash`]: attach, download with [`FlashEvent`]s (erase, program,
//!    verify) for a progress bar, reset.
//!
//! [`ProbeDut`] wraps this as a [`Dut`]: the serial console (if the bench has
//! one) is opened *before* the flash, so the boot banner after the reset is
//! captured; then it waits for the profile's `ready` line with the bench's
//! start timeout. Where the firmware has an RTT control block
//! (`_SEGGER_RTT`) and no serial console is configured, up channel 0 is
//! read into the console instead.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use object::{Object, ObjectSegment};
use probe_rs::config::{MemoryRegion, Registry};
use probe_rs::flashing::{
    BinOptions, DownloadOptions, ElfOptions, FlashProgress, ProgressEvent, ProgressOperation,
};
use probe_rs::probe::DebugProbeSelector;
use probe_rs::probe::list::Lister;
use probe_rs::{Permissions, Target};

use crate::BenchError;
use crate::console::{Console, Stream};
use crate::dut::{ConsoleLog, Dut, DutAction, DutConfig};
use crate::file::ConsoleSpec;
use crate::profile::{Profile, action_args, action_name};
use crate::serial::{LineSettings, SerialConsole};
use crate::template;

/// Finds a chip in probe-rs's built-in database.
pub fn lookup_chip(name: &str) -> Result<Target, BenchError> {
    let registry = Registry::from_builtin_families();
    registry.get_target_by_name(name).map_err(|e| {
        let all = registry.search_chips("");
        let lower = name.to_ascii_lowercase();
        let lowered: Vec<String> = all.iter().map(|c| c.to_ascii_lowercase()).collect();
        let mut hint = crate::diag::did_you_mean(&lower, lowered.iter().map(String::as_str))
            .and_then(|l| lowered.iter().position(|c| c == l))
            .map(|i| format!(" (did you mean \"{}\"?)", all[i]))
            .unwrap_or_default();
        if hint.is_empty() {
            // A prefix of a family, e.g. "nrf52840": list what it matches.
            let prefix: Vec<String> = registry.search_chips(name).into_iter().take(5).collect();
            if !prefix.is_empty() {
                hint = format!(" (chips starting so: {})", prefix.join(", "));
            }
        }
        BenchError::Probe(format!(
            "unknown chip \"{name}\" in probe-rs's target database{hint}: {e}. \
             `probe-rs chip list` shows every name"
        ))
    })
}

/// A firmware image format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirmwareFormat {
    /// An ELF file (flashed by physical load address).
    Elf,
    /// Intel HEX.
    Hex,
    /// A raw binary, placed at `base`.
    Bin {
        /// The flash address of the first byte.
        base: u64,
    },
}

/// What a firmware image occupies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FirmwareFit {
    /// Bytes that go to flash (NVM).
    pub flash_bytes: u64,
    /// The chip's flash size (sum of its NVM regions).
    pub flash_size: u64,
    /// Bytes of RAM the image's segments claim (ELF only).
    pub ram_bytes: u64,
    /// The chip's RAM size.
    pub ram_size: u64,
}

/// The format from the file's first bytes and extension. A `.bin` needs `base`.
pub fn detect_format(
    path: &Path,
    bytes: &[u8],
    base: Option<u64>,
) -> Result<FirmwareFormat, BenchError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if bytes.starts_with(b"\x7fELF") {
        return Ok(FirmwareFormat::Elf);
    }
    if bytes.first() == Some(&b':') || ext == "hex" || ext == "ihex" {
        return Ok(FirmwareFormat::Hex);
    }
    match base {
        Some(base) => Ok(FirmwareFormat::Bin { base }),
        None => Err(BenchError::Firmware {
            path: path.to_path_buf(),
            problem: "a raw binary needs a base address (target.base_address, e.g. 0x0) \
                      to know where it goes in flash"
                .into(),
        }),
    }
}

type Regions = Vec<(String, Range<u64>)>;

/// Flash and RAM regions, aliases included (an image may be linked at either
/// view of the same memory, e.g. nRF52's code-bus and data-bus RAM).
fn regions(target: &Target) -> (Regions, Regions) {
    let mut nvm = Vec::new();
    let mut ram = Vec::new();
    for r in &target.memory_map {
        match r {
            MemoryRegion::Nvm(n) => nvm.push((
                n.name.clone().unwrap_or_else(|| "flash".into()),
                n.range.clone(),
            )),
            MemoryRegion::Ram(m) => ram.push((
                m.name.clone().unwrap_or_else(|| "RAM".into()),
                m.range.clone(),
            )),
            MemoryRegion::Generic(_) => {}
        }
    }
    (nvm, ram)
}

/// Sizes without aliases.
fn sizes(target: &Target) -> (u64, u64) {
    let (mut flash, mut ram) = (0, 0);
    for r in &target.memory_map {
        match r {
            MemoryRegion::Nvm(n) if !n.is_alias => flash += n.range.end - n.range.start,
            MemoryRegion::Ram(m) if !m.is_alias => ram += m.range.end - m.range.start,
            _ => {}
        }
    }
    (flash, ram)
}

fn describe(regions: &[(String, Range<u64>)]) -> String {
    regions
        .iter()
        .map(|(n, r)| format!("{n} {:#010x}..{:#010x}", r.start, r.end))
        .collect::<Vec<_>>()
        .join(", ")
}

fn inside(regions: &[(String, Range<u64>)], range: &Range<u64>) -> bool {
    regions
        .iter()
        .any(|(_, r)| r.start <= range.start && range.end <= r.end)
}

/// Checks, without touching any probe, that the image fits the chip: every
/// byte bound for flash inside one flash (NVM) region, and (ELF) every
/// segment that lives in RAM inside a RAM region.
pub fn check_fit(
    target: &Target,
    firmware: &Path,
    base: Option<u64>,
) -> Result<(FirmwareFormat, FirmwareFit), BenchError> {
    let bad = |problem: String| BenchError::Firmware {
        path: firmware.to_path_buf(),
        problem,
    };
    let bytes = std::fs::read(firmware).map_err(|e| bad(format!("cannot read: {e}")))?;
    let format = detect_format(firmware, &bytes, base)?;
    let (nvm, ram) = regions(target);
    let (flash_size, ram_size) = sizes(target);
    let mut fit = FirmwareFit {
        flash_size,
        ram_size,
        ..FirmwareFit::default()
    };
    let mut flash_chunks: Vec<Range<u64>> = Vec::new();
    match format {
        FirmwareFormat::Elf => {
            let elf = object::File::parse(&*bytes)
                .map_err(|e| bad(format!("not a valid ELF file: {e}")))?;
            let (object::File::Elf32(_) | object::File::Elf64(_)) = &elf else {
                return Err(bad("not an ELF file".into()));
            };
            let phdrs = elf_load_segments(&elf);
            if phdrs.is_empty() {
                return Err(bad("the ELF file has no loadable segment".into()));
            }
            for (paddr, vaddr, filesz, memsz) in phdrs {
                if filesz > 0 {
                    flash_chunks.push(paddr..paddr + filesz);
                }
                // A segment whose run-time address differs (initialised data
                // copied at start) or that has no file bytes (.bss, stack)
                // lives in RAM.
                let in_ram = vaddr != paddr || filesz == 0;
                if in_ram && memsz > 0 {
                    let r = vaddr..vaddr + memsz;
                    if !inside(&ram, &r) {
                        return Err(bad(format!(
                            "a {memsz}-byte RAM segment at {:#010x}..{:#010x} is outside the RAM of {} ({})",
                            r.start,
                            r.end,
                            target.name,
                            describe(&ram)
                        )));
                    }
                    fit.ram_bytes += memsz;
                }
            }
        }
        FirmwareFormat::Hex => {
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| bad("an Intel HEX file must be ASCII text".into()))?;
            let mut upper: u64 = 0;
            for (n, rec) in ihex::Reader::new(text).enumerate() {
                let rec = rec.map_err(|e| bad(format!("Intel HEX record {}: {e}", n + 1)))?;
                match rec {
                    ihex::Record::Data { offset, value } => {
                        let start = upper + u64::from(offset);
                        flash_chunks.push(start..start + value.len() as u64);
                    }
                    ihex::Record::ExtendedSegmentAddress(s) => upper = u64::from(s) << 4,
                    ihex::Record::ExtendedLinearAddress(u) => upper = u64::from(u) << 16,
                    _ => {}
                }
            }
        }
        FirmwareFormat::Bin { base } => {
            flash_chunks.push(base..base + bytes.len() as u64);
        }
    }
    if flash_chunks.iter().all(|c| c.is_empty()) {
        return Err(bad("the image has no bytes to flash".into()));
    }
    for c in &flash_chunks {
        if !inside(&nvm, c) {
            return Err(bad(format!(
                "{} bytes at {:#010x}..{:#010x} do not fit the flash of {} ({})",
                c.end - c.start,
                c.start,
                c.end,
                target.name,
                describe(&nvm)
            )));
        }
        fit.flash_bytes += c.end - c.start;
    }
    Ok((format, fit))
}

/// `(paddr, vaddr, filesz, memsz)` of every PT_LOAD segment.
fn elf_load_segments(elf: &object::File<'_>) -> Vec<(u64, u64, u64, u64)> {
    use object::read::elf::ProgramHeader as _;
    fn collect<E: object::read::elf::FileHeader>(
        f: &object::read::elf::ElfFile<'_, E>,
    ) -> Vec<(u64, u64, u64, u64)> {
        let endian = f.endian();
        f.elf_program_headers()
            .iter()
            .filter(|ph| ph.p_type(endian) == object::elf::PT_LOAD)
            .map(|ph| {
                (
                    ph.p_paddr(endian).into(),
                    ph.p_vaddr(endian).into(),
                    ph.p_filesz(endian).into(),
                    ph.p_memsz(endian).into(),
                )
            })
            .collect()
    }
    match elf {
        object::File::Elf32(f) => collect(f),
        object::File::Elf64(f) => collect(f),
        _ => elf
            .segments()
            .map(|s| (s.address(), s.address(), s.size(), s.size()))
            .collect(),
    }
}

/// Whether an ELF image has an RTT control block (`_SEGGER_RTT`).
pub fn has_rtt(firmware: &Path) -> bool {
    std::fs::read(firmware).ok().is_some_and(|b| {
        object::File::parse(&*b).is_ok_and(|f| {
            use object::ObjectSymbol as _;
            f.symbols().any(|s| s.name() == Ok("_SEGGER_RTT"))
        })
    })
}

/// A debug probe as seen on USB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeInfo {
    /// The probe's product name.
    pub identifier: String,
    /// USB vendor id.
    pub vendor_id: u16,
    /// USB product id.
    pub product_id: u16,
    /// USB serial number.
    pub serial: Option<String>,
    /// The driver probe-rs would use (CMSIS-DAP, J-Link, ST-Link ...).
    pub probe_type: String,
}

impl ProbeInfo {
    /// `VID:PID[:serial]`, as a bench's `target.probe` names it.
    pub fn selector(&self) -> String {
        match &self.serial {
            Some(s) => format!("{:04x}:{:04x}:{s}", self.vendor_id, self.product_id),
            None => format!("{:04x}:{:04x}", self.vendor_id, self.product_id),
        }
    }
}

impl std::fmt::Display for ProbeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, {})",
            self.selector(),
            self.identifier,
            self.probe_type
        )
    }
}

/// The debug probes attached now.
pub fn list_probes() -> Vec<ProbeInfo> {
    Lister::new()
        .list_all()
        .into_iter()
        .map(|p| ProbeInfo {
            identifier: p.identifier.clone(),
            vendor_id: p.vendor_id,
            product_id: p.product_id,
            serial: p.serial_number.clone(),
            probe_type: p.probe_type(),
        })
        .collect()
}

/// The USB devices in sysfs, as `VID:PID product` lines (what was seen when
/// no probe was found).
pub fn usb_devices() -> Vec<String> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/sys/bus/usb/devices") else {
        return out;
    };
    for e in dir.flatten() {
        let p = e.path();
        let read = |f: &str| {
            std::fs::read_to_string(p.join(f))
                .ok()
                .map(|s| s.trim().to_string())
        };
        if let (Some(v), Some(d)) = (read("idVendor"), read("idProduct")) {
            let product = read("product").unwrap_or_default();
            out.push(format!("{v}:{d} {product}").trim_end().to_string());
        }
    }
    out.sort();
    out
}

/// Picks the probe a bench names among those attached. Never guesses: with
/// several attached and no selector it fails, listing them.
pub fn select_probe(selector: Option<&str>, probes: &[ProbeInfo]) -> Result<ProbeInfo, BenchError> {
    let list = |ps: &[ProbeInfo]| {
        ps.iter()
            .map(|p| format!("  {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    if probes.is_empty() {
        let seen = usb_devices();
        let seen = if seen.is_empty() {
            "no USB devices at all (is this a container or VM without USB passthrough?)".into()
        } else {
            format!(
                "these USB devices, none a known debug probe:\n  {}",
                seen.join("\n  ")
            )
        };
        return Err(BenchError::Probe(format!(
            "no debug probe found{}: probe-rs looked for CMSIS-DAP, J-Link, ST-Link, ESP USB-JTAG and others and saw {seen}. \
             Check the USB cable and that this user may open the probe (probe-rs udev rules, or run as root)",
            selector
                .map(|s| format!(" matching {s}"))
                .unwrap_or_default()
        )));
    }
    let Some(sel) = selector else {
        return match probes {
            [one] => Ok(one.clone()),
            many => Err(BenchError::Probe(format!(
                "{} debug probes are attached and the bench does not say which to use; \
                 set target.probe to one of:\n{}",
                many.len(),
                list(many)
            ))),
        };
    };
    let parsed: DebugProbeSelector = sel
        .parse()
        .map_err(|e| BenchError::Probe(format!("target.probe \"{sel}\": {e}")))?;
    let matching: Vec<&ProbeInfo> = probes
        .iter()
        .filter(|p| {
            p.vendor_id == parsed.vendor_id
                && p.product_id == parsed.product_id
                && parsed
                    .serial_number
                    .as_ref()
                    .is_none_or(|s| p.serial.as_deref() == Some(s.as_str()))
        })
        .collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(BenchError::Probe(format!(
            "no debug probe matches target.probe = \"{sel}\"; attached:\n{}",
            list(probes)
        ))),
        many => Err(BenchError::Probe(format!(
            "{} probes match target.probe = \"{sel}\"; add the serial number to choose one:\n{}",
            many.len(),
            many.iter()
                .map(|p| format!("  {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        ))),
    }
}

/// A step of a download, for a progress bar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlashEvent {
    /// A phase begins; `total` bytes if known.
    Begin {
        /// `erase`, `program`, `verify` or `fill`.
        phase: &'static str,
        /// Bytes the phase will cover.
        total: Option<u64>,
    },
    /// `bytes` more were done in a phase.
    Advance {
        /// The phase.
        phase: &'static str,
        /// Bytes done in this step.
        bytes: u64,
    },
    /// A phase finished (`ok = false`: it failed).
    End {
        /// The phase.
        phase: &'static str,
        /// Whether it succeeded.
        ok: bool,
    },
    /// A message from the flash algorithm.
    Message(String),
}

fn phase(op: ProgressOperation) -> &'static str {
    match op {
        ProgressOperation::Fill => "fill",
        ProgressOperation::Erase => "erase",
        ProgressOperation::Program => "program",
        ProgressOperation::Verify => "verify",
    }
}

/// What to flash, where.
#[derive(Clone, Debug, PartialEq)]
pub struct FlashJob {
    /// The probe-rs chip name.
    pub chip: String,
    /// `VID:PID[:serial]`, if the bench names one.
    pub probe: Option<String>,
    /// The image.
    pub firmware: PathBuf,
    /// Base address for a raw binary.
    pub base_address: Option<u64>,
    /// Verify after programming.
    pub verify: bool,
}

/// Checks, selects, downloads with progress events, and resets the core
/// (blocking: run it on a blocking thread). Returns what the image occupies
/// and the probe used.
pub fn flash(
    job: &FlashJob,
    mut progress: impl FnMut(FlashEvent) + Send,
) -> Result<(FirmwareFit, ProbeInfo), BenchError> {
    let target = lookup_chip(&job.chip)?;
    let (format, fit) = check_fit(&target, &job.firmware, job.base_address)?;
    // The first USB access.
    let chosen = select_probe(job.probe.as_deref(), &list_probes())?;
    let probe = Lister::new()
        .open(
            chosen
                .selector()
                .parse::<DebugProbeSelector>()
                .map_err(|e| BenchError::Probe(format!("probe {chosen}: {e}")))?,
        )
        .map_err(|e| BenchError::Probe(format!("cannot open the probe {chosen}: {e}")))?;
    let mut session = probe.attach(target, Permissions::default()).map_err(|e| {
        BenchError::Probe(format!(
            "cannot attach to {} through {chosen}: {e}",
            job.chip
        ))
    })?;
    let mut opts = DownloadOptions::default();
    opts.verify = job.verify;
    opts.progress = FlashProgress::new(|e: ProgressEvent| {
        let ev = match e {
            ProgressEvent::AddProgressBar { operation, total } => FlashEvent::Begin {
                phase: phase(operation),
                total,
            },
            ProgressEvent::Progress {
                operation, size, ..
            } => FlashEvent::Advance {
                phase: phase(operation),
                bytes: size,
            },
            ProgressEvent::Finished(op) => FlashEvent::End {
                phase: phase(op),
                ok: true,
            },
            ProgressEvent::Failed(op) => FlashEvent::End {
                phase: phase(op),
                ok: false,
            },
            ProgressEvent::DiagnosticMessage { message } => FlashEvent::Message(message),
            _ => return,
        };
        progress(ev);
    });
    let result = match format {
        FirmwareFormat::Elf => probe_rs::flashing::download_file_with_options(
            &mut session,
            &job.firmware,
            probe_rs::flashing::ElfLoader(ElfOptions::default()),
            opts,
        ),
        FirmwareFormat::Hex => probe_rs::flashing::download_file_with_options(
            &mut session,
            &job.firmware,
            probe_rs::flashing::HexLoader,
            opts,
        ),
        FirmwareFormat::Bin { base } => probe_rs::flashing::download_file_with_options(
            &mut session,
            &job.firmware,
            probe_rs::flashing::BinLoader(BinOptions {
                base_address: Some(base),
                skip: 0,
            }),
            opts,
        ),
    };
    result.map_err(|e| {
        BenchError::Probe(format!(
            "flashing {} onto {} failed: {e}",
            job.firmware.display(),
            job.chip
        ))
    })?;
    session
        .core(0)
        .and_then(|mut c| c.reset())
        .map_err(|e| BenchError::Probe(format!("cannot reset {} after flashing: {e}", job.chip)))?;
    Ok((fit, chosen))
}

/// Reads RTT up channel 0 into the console until `stop` (a thread of its own;
/// the probe session lives there).
fn spawn_rtt(job: FlashJob, chosen: ProbeInfo, console: Arc<Console>, stop: Arc<AtomicBool>) {
    let _ = std::thread::Builder::new()
        .name("rig-rtt".into())
        .spawn(move || {
            let run = || -> Result<(), String> {
                let sel: DebugProbeSelector =
                    chosen.selector().parse().map_err(|e| format!("{e}"))?;
                let probe = Lister::new().open(sel).map_err(|e| e.to_string())?;
                let mut session = probe
                    .attach(job.chip.as_str(), Permissions::default())
                    .map_err(|e| e.to_string())?;
                let mut core = session.core(0).map_err(|e| e.to_string())?;
                let mut rtt = probe_rs::rtt::Rtt::attach(&mut core).map_err(|e| e.to_string())?;
                console.push(Stream::Rig, "RTT attached: reading up channel 0");
                let mut pending = Vec::new();
                let mut buf = [0u8; 1024];
                while !stop.load(Ordering::SeqCst) {
                    let n = match rtt.up_channels().first_mut() {
                        Some(ch) => ch.read(&mut core, &mut buf).map_err(|e| e.to_string())?,
                        None => return Err("the firmware has no RTT up channel".into()),
                    };
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=i).collect();
                        console.push(
                            Stream::Stdout,
                            String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']),
                        );
                    }
                    if n == 0 {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                Ok(())
            };
            if let Err(e) = run() {
                console.push(Stream::Rig, &format!("RTT console stopped: {e}"));
            }
        });
}

/// A board flashed through a probe, driven over its serial (or RTT) console.
pub struct ProbeDut {
    job: FlashJob,
    console_spec: Option<ConsoleSpec>,
    profile: Option<Profile>,
    start_timeout: Duration,
    console: Arc<Console>,
    serial: Option<SerialConsole>,
    rtt_stop: Option<Arc<AtomicBool>>,
    cursor: usize,
    values: BTreeMap<String, String>,
    identity: BTreeMap<String, String>,
    progress: Option<Arc<dyn Fn(FlashEvent) + Send + Sync>>,
    power_switch: Option<crate::file::PowerSwitch>,
}

impl std::fmt::Debug for ProbeDut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeDut")
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

impl ProbeDut {
    /// A probe DUT; nothing is touched until [`Dut::start`].
    pub fn new(
        job: FlashJob,
        console_spec: Option<ConsoleSpec>,
        profile: Option<Profile>,
        start_timeout: Duration,
        log: Option<&Path>,
    ) -> Result<Self, BenchError> {
        let mut identity = BTreeMap::new();
        identity.insert("kind".into(), "probe-rs".into());
        identity.insert("chip".into(), job.chip.clone());
        identity.insert("firmware".into(), job.firmware.display().to_string());
        if let Ok(bytes) = std::fs::read(&job.firmware) {
            use sha2::Digest as _;
            let d = sha2::Sha256::digest(&bytes);
            identity.insert(
                "firmware_sha256".into(),
                d.iter().map(|b| format!("{b:02x}")).collect(),
            );
        }
        if let Some(p) = &profile {
            identity.insert("profile".into(), p.name.clone());
        }
        Ok(Self {
            job,
            console_spec,
            profile,
            start_timeout,
            console: Arc::new(Console::new(log)?),
            serial: None,
            rtt_stop: None,
            cursor: 0,
            values: BTreeMap::new(),
            identity,
            progress: None,
            power_switch: None,
        })
    }

    /// The bench's power switch, for [`Dut::power_cycle`].
    pub fn set_power_switch(&mut self, switch: Option<crate::file::PowerSwitch>) {
        self.power_switch = switch;
    }

    /// Where download progress goes (the CLI turns it into a progress bar).
    pub fn on_progress(&mut self, f: Arc<dyn Fn(FlashEvent) + Send + Sync>) {
        self.progress = Some(f);
    }

    fn ending(&self) -> &str {
        self.profile
            .as_ref()
            .map_or("\n", |p| p.line_ending.as_str())
    }

    fn send(&self, line: &str) -> Result<(), BenchError> {
        match &self.serial {
            Some(s) => s.send_line(line, self.ending()),
            None => Err(BenchError::NotSupported {
                what: "sending console lines without a serial console (target.console)".into(),
            }),
        }
    }

    async fn wait_for(
        &mut self,
        pattern: &str,
        fail: Option<(&str, &str)>,
        timeout: Duration,
    ) -> Result<String, BenchError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.console.subscribe();
        loop {
            rx.borrow_and_update();
            let lines = self.console.lines_from(self.cursor);
            for (i, line) in lines.iter().enumerate() {
                if line.stream == Stream::Rig {
                    continue;
                }
                if let Some((action, f)) = fail
                    && line.text.contains(f)
                {
                    self.cursor += i + 1;
                    return Err(BenchError::ActionFailed {
                        action: action.into(),
                        line: line.text.clone(),
                    });
                }
                if line.text.contains(pattern) {
                    self.cursor += i + 1;
                    return Ok(line.text.clone());
                }
            }
            self.cursor += lines.len();
            if !self.console.is_running() {
                return Err(BenchError::NotRunning(format!(
                    "waiting for `{pattern}`: {}",
                    self.console
                        .exit_note()
                        .unwrap_or_else(|| "not started".into())
                )));
            }
            if !matches!(
                tokio::time::timeout_at(deadline, rx.changed()).await,
                Ok(Ok(()))
            ) {
                return Err(BenchError::ConsoleTimeout {
                    pattern: pattern.into(),
                    timeout,
                    last_line: self.console.last_dut_line(),
                });
            }
        }
    }
}

#[async_trait]
impl Dut for ProbeDut {
    async fn start(&mut self, config: &DutConfig) -> Result<(), BenchError> {
        self.stop().await?;
        self.values = template::values(config);
        // Console first, so the boot banner after the reset is captured.
        if let Some(spec) = &self.console_spec {
            self.serial = Some(SerialConsole::open(
                &spec.port,
                LineSettings::from_spec(spec),
                self.console.clone(),
            )?);
        }
        self.cursor = self.console.len();
        self.console.push(
            Stream::Rig,
            &format!(
                "flashing {} onto {}",
                self.job.firmware.display(),
                self.job.chip
            ),
        );
        let job = self.job.clone();
        let progress = self.progress.clone();
        let console = self.console.clone();
        let (fit, chosen) = tokio::task::spawn_blocking(move || {
            flash(&job, |e| {
                if let FlashEvent::End { phase, ok } = &e {
                    console.push(
                        Stream::Rig,
                        &format!("{phase} {}", if *ok { "done" } else { "FAILED" }),
                    );
                }
                if let Some(p) = &progress {
                    p(e);
                }
            })
        })
        .await
        .map_err(|e| BenchError::Probe(format!("the flashing thread failed: {e}")))??;
        self.identity.insert("probe".into(), chosen.to_string());
        self.identity
            .insert("flash_bytes".into(), fit.flash_bytes.to_string());
        self.console.push(
            Stream::Rig,
            &format!(
                "flashed {} of {} flash bytes; reset",
                fit.flash_bytes, fit.flash_size
            ),
        );
        if self.serial.is_none() {
            self.console.started("no serial console: RTT only");
            if has_rtt(&self.job.firmware) {
                let stop = Arc::new(AtomicBool::new(false));
                spawn_rtt(self.job.clone(), chosen, self.console.clone(), stop.clone());
                self.rtt_stop = Some(stop);
            }
        }
        let Some(profile) = self.profile.clone() else {
            return Ok(());
        };
        let wait = self.start_timeout.max(profile.ready_timeout);
        if let Some(boot) = &profile.boot {
            self.wait_for(boot, None, wait).await?;
        }
        if let Some(start) = &profile.start {
            let line = start
                .render(&self.values, &[])
                .map_err(BenchError::Template)?;
            self.send(&line)?;
        }
        if let Some(ready) = &profile.ready {
            self.wait_for(ready, None, wait).await?;
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), BenchError> {
        if let Some(stop) = self.profile.as_ref().and_then(|p| p.stop.clone())
            && self.serial.is_some()
        {
            let _ = self.send(&stop);
        }
        if let Some(s) = self.rtt_stop.take() {
            s.store(true, Ordering::SeqCst);
        }
        if let Some(mut s) = self.serial.take() {
            s.close();
        }
        Ok(())
    }

    async fn act(&mut self, action: &DutAction) -> Result<(), BenchError> {
        let name = action_name(action).to_string();
        let (spec, fail) = self
            .profile
            .as_ref()
            .and_then(|p| {
                p.action(action)
                    .map(|a| (a.clone(), a.fail.clone().or_else(|| p.fail.clone())))
            })
            .ok_or_else(|| BenchError::Unsupported(name.clone()))?;
        let args = action_args(action);
        if args.len() != spec.arity() {
            return Err(BenchError::Template(format!(
                "action `{name}` takes {} argument(s), {} given",
                spec.arity(),
                args.len()
            )));
        }
        let line = spec
            .send
            .render(&self.values, args)
            .map_err(BenchError::Template)?;
        self.cursor = self.console.len();
        self.send(&line)?;
        if let Some(expect) = &spec.expect {
            self.wait_for(
                expect,
                fail.as_deref().map(|f| (name.as_str(), f)),
                spec.timeout,
            )
            .await?;
        }
        Ok(())
    }

    fn supports(&self, action: &DutAction) -> bool {
        self.profile
            .as_ref()
            .is_some_and(|p| p.action(action).is_some())
    }

    async fn expect_console(
        &mut self,
        pattern: &str,
        timeout: Duration,
    ) -> Result<String, BenchError> {
        self.wait_for(pattern, None, timeout).await
    }

    fn console(&self) -> &dyn ConsoleLog {
        &*self.console
    }

    fn is_running(&mut self) -> bool {
        self.console.is_running()
    }

    fn identity(&self) -> BTreeMap<String, String> {
        self.identity.clone()
    }

    async fn power_cycle(&mut self) -> Result<(), BenchError> {
        let Some(switch) = self.power_switch.clone() else {
            return Err(BenchError::Unsupported("power_cycle".into()));
        };
        // The serial port re-enumerates with the board; the console reconnects.
        crate::switch::power_cycle(&switch, &self.console).await
    }
}
