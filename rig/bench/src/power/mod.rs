//! Power: an INA219 read through the `ina219` crate's driver, sampled on its own
//! thread, written to CSV and integrated into energy per window.
//!
//! ```text
//!  real bench:  linux_embedded_hal::I2cdev ─┐
//!  sim bench:   SimIna219 (registers) ◄─────┤  Ina219Meter<I2C> (ina219::SyncIna219,
//!               ▲ PowerModel ◄─ frames      │   calibration from the bench)
//!                                           └─► Sampler thread ─► power.csv + PowerTrace
//!                                                                 └─► energy_mj / Wh per window
//! ```
//!
//! The same driver code runs on both buses: [`Ina219Meter`] is generic over
//! `embedded_hal::i2c::I2c`. [`MeterConfig`] turns the bench's `[power]` keys
//! (shunt, maximum current, averaging) into the calibration register, the PGA
//! range and the ADC mode, with the datasheet's equations. The [`Sampler`]
//! polls at the chip's conversion period and keeps only conversions the chip
//! flags as ready, so each sample is one real conversion. Drivers never decide
//! verdicts: [`PowerTrace::measurements`] returns `(name, value, unit)` and the
//! caller applies limits (see [`crate::limits`]).

pub mod model;
pub mod session;
pub mod sim;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use embedded_hal::i2c::I2c;
use ina219::SyncIna219;
use ina219::address::Address;
use ina219::calibration::{IntCalibration, MicroAmpere};
use ina219::configuration::{
    BusVoltageRange, Configuration, MeasuredSignals, OperatingMode, Reset, Resolution,
    ShuntVoltageRange,
};

use crate::BenchError;
use crate::file::PowerSpec;
pub use model::{Direction, FrameEvent, PowerModel, PowerProfile};
pub use session::{CaseEnergy, CasePower, PowerSession, PowerWindow};
pub use sim::{FrameFeed, SimClock, SimIna219};

/// Averaging counts the INA219 supports (`power.averaging`).
pub const AVERAGING: &[u32] = &[1, 2, 4, 8, 16, 32, 64, 128];

/// How to set up an INA219: from the bench's `[power]` table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeterConfig {
    /// 7-bit I2C address.
    pub address: u8,
    /// Shunt resistance (Ω).
    pub shunt_ohms: f64,
    /// The largest current expected (A): sets the current LSB and the PGA range.
    pub max_current_a: f64,
    /// Samples averaged per conversion (1, 2, 4 ... 128; 1 = plain 12-bit).
    pub averaging: u32,
}

impl Default for MeterConfig {
    fn default() -> Self {
        Self {
            address: 0x40,
            shunt_ohms: 0.1,
            max_current_a: 3.2,
            averaging: 1,
        }
    }
}

impl MeterConfig {
    /// The current LSB in µA: `max_current / 2^15` (datasheet eq. 2), rounded
    /// up to a whole µA so the register math stays in integers.
    pub fn current_lsb_ua(&self) -> i64 {
        ((self.max_current_a * 1e6 / 32768.0).ceil() as i64).max(1)
    }

    /// The shunt in µΩ.
    pub fn shunt_uohm(&self) -> u32 {
        (self.shunt_ohms * 1e6)
            .round()
            .clamp(1.0, f64::from(u32::MAX)) as u32
    }

    /// The calibration (datasheet eq. 1: `trunc(0.04096 / (LSB × R))`).
    pub fn calibration(&self) -> Result<IntCalibration, BenchError> {
        IntCalibration::new(MicroAmpere(self.current_lsb_ua()), self.shunt_uohm()).ok_or_else(
            || {
                BenchError::power(format!(
                    "no valid INA219 calibration for shunt {} Ω and max current {} A \
                     (the calibration register must be 2..65535): pick another max_current_a",
                    self.shunt_ohms, self.max_current_a
                ))
            },
        )
    }

    /// The ADC setting for the averaging count.
    pub fn resolution(&self) -> Resolution {
        match self.averaging {
            0 | 1 => Resolution::Res12Bit,
            2 => Resolution::Avg2,
            3 | 4 => Resolution::Avg4,
            5..=8 => Resolution::Avg8,
            9..=16 => Resolution::Avg16,
            17..=32 => Resolution::Avg32,
            33..=64 => Resolution::Avg64,
            _ => Resolution::Avg128,
        }
    }

    /// The smallest PGA range that holds `max_current × shunt`.
    pub fn shunt_range(&self) -> ShuntVoltageRange {
        let mv = self.max_current_a * self.shunt_ohms * 1000.0;
        if mv <= 40.0 {
            ShuntVoltageRange::Fsr40mv
        } else if mv <= 80.0 {
            ShuntVoltageRange::Fsr80mv
        } else if mv <= 160.0 {
            ShuntVoltageRange::Fsr160mv
        } else {
            ShuntVoltageRange::Fsr320mv
        }
    }

    /// The configuration register: 32 V bus range, the PGA range, the
    /// averaging on both ADCs, continuous shunt and bus conversions.
    pub fn configuration(&self) -> Configuration {
        Configuration {
            reset: Reset::Run,
            bus_voltage_range: BusVoltageRange::Fsr32v,
            shunt_voltage_range: self.shunt_range(),
            bus_resolution: self.resolution(),
            shunt_resolution: self.resolution(),
            operating_mode: OperatingMode::Continous(MeasuredSignals::ShutAndBusVoltage),
        }
    }

    /// The time one conversion of shunt and bus takes with this averaging.
    pub fn conversion_period(&self) -> Duration {
        Duration::from_micros(u64::from(2 * self.resolution().conversion_time_us()))
    }

    /// A calibration that suits a simulated profile: full scale at 1.5 times
    /// the profile's highest current, on a 0.1 Ω shunt for a board that draws
    /// amperes (a Pi) and a 1 Ω shunt for a module that draws milliamperes
    /// (LTE-M, NB-IoT), so its idle current is tens of LSBs, not a few (with
    /// 0.1 Ω and 3.2 A, 0.5 mA would read as zero power).
    pub fn for_profile(profile: &PowerProfile) -> Self {
        let peak_a = (profile.baseline_ma + profile.tx_ma.max(profile.rx_ma)) / 1000.0;
        let max_current_a = (peak_a * 1.5).max(0.01);
        let shunt_ohms = if max_current_a > 0.32 { 0.1 } else { 1.0 };
        Self {
            shunt_ohms,
            max_current_a,
            ..Self::default()
        }
    }

    /// From a bench's `[power]` table; a `model` table has no chip settings
    /// and gets [`Self::for_profile`] of its profile.
    pub fn from_spec(spec: &PowerSpec) -> Self {
        match spec {
            PowerSpec::Ina219 {
                address,
                shunt_ohms,
                max_current_a,
                averaging,
                ..
            } => Self {
                address: *address,
                shunt_ohms: *shunt_ohms,
                max_current_a: *max_current_a,
                averaging: *averaging,
            },
            PowerSpec::Model { profile } => PowerProfile::by_name(profile)
                .map(|p| Self::for_profile(&p))
                .unwrap_or_default(),
        }
    }
}

/// One conversion, as read from the chip.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Time since the sampler's epoch (s).
    pub t_s: f64,
    /// Bus voltage (V).
    pub bus_v: f64,
    /// Shunt voltage (mV).
    pub shunt_mv: f64,
    /// Current (mA).
    pub current_ma: f64,
    /// Power (mW), from the chip's power register.
    pub power_mw: f64,
}

/// The CSV header of a power trace.
pub const CSV_HEADER: &str = "t_s,bus_v,shunt_mv,current_ma,power_mw";

impl Sample {
    /// The sample as a CSV row (no newline).
    pub fn csv_row(&self) -> String {
        format!(
            "{:.6},{:.3},{:.2},{:.3},{:.3}",
            self.t_s, self.bus_v, self.shunt_mv, self.current_ma, self.power_mw
        )
    }
}

/// Something that yields INA219 conversions.
pub trait Meter: Send {
    /// The next conversion if the chip has one ready, else `None`.
    fn poll(&mut self) -> Result<Option<Sample>, BenchError>;
    /// How often a conversion completes.
    fn conversion_period(&self) -> Duration;
}

/// The `ina219` driver on any embedded-hal 1.0 I2C bus, calibrated from a [`MeterConfig`].
pub struct Ina219Meter<I2C> {
    chip: SyncIna219<I2C, IntCalibration>,
    config: MeterConfig,
    epoch: Instant,
}

impl<I2C> std::fmt::Debug for Ina219Meter<I2C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ina219Meter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<I2C: I2c> Ina219Meter<I2C>
where
    I2C::Error: std::fmt::Debug,
{
    /// Resets the chip, writes the calibration and the configuration.
    /// Sample times count from `epoch`.
    pub fn new(i2c: I2C, config: MeterConfig, epoch: Instant) -> Result<Self, BenchError> {
        let address = Address::from_byte(config.address)
            .map_err(|e| BenchError::power(format!("I2C address {:#04x}: {e}", config.address)))?;
        let calibration = config.calibration()?;
        let mut chip = SyncIna219::new_calibrated(i2c, address, calibration).map_err(|e| {
            BenchError::power(format!(
                "no INA219 answered at {:#04x} as expected: {e:?}",
                config.address
            ))
        })?;
        chip.set_configuration(config.configuration())
            .map_err(|e| BenchError::power(format!("cannot configure the INA219: {e:?}")))?;
        Ok(Self {
            chip,
            config,
            epoch,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &MeterConfig {
        &self.config
    }

    /// The bus, back (for tests that inspect the simulated chip).
    pub fn into_inner(self) -> I2C {
        self.chip.destroy()
    }
}

impl<I2C: I2c + Send> Meter for Ina219Meter<I2C>
where
    I2C::Error: std::fmt::Debug,
{
    fn poll(&mut self) -> Result<Option<Sample>, BenchError> {
        let t_s = self.epoch.elapsed().as_secs_f64();
        match self.chip.next_measurement() {
            Ok(None) => Ok(None),
            Ok(Some(m)) => Ok(Some(Sample {
                t_s,
                bus_v: f64::from(m.bus_voltage.voltage_mv()) / 1000.0,
                shunt_mv: f64::from(m.shunt_voltage.shunt_voltage_uv()) / 1000.0,
                current_ma: m.current.0 as f64 / 1000.0,
                power_mw: m.power.0 as f64 / 1000.0,
            })),
            Err(e) => Err(BenchError::power(format!(
                "reading the INA219 at {:#04x}: {e:?}",
                self.config.address
            ))),
        }
    }

    fn conversion_period(&self) -> Duration {
        self.config.conversion_period()
    }
}

/// Opens the real INA219 a bench names, on its Linux I2C bus.
pub fn open_i2c(
    bus: &Path,
    config: MeterConfig,
    epoch: Instant,
) -> Result<Ina219Meter<linux_embedded_hal::I2cdev>, BenchError> {
    let dev = linux_embedded_hal::I2cdev::new(bus).map_err(|e| {
        BenchError::power(format!(
            "cannot open the I2C bus {}: {e} (is i2c-dev loaded and the bus enabled? `ls /dev/i2c-*`)",
            bus.display()
        ))
    })?;
    Ina219Meter::new(dev, config, epoch)
}

/// A simulated INA219 fed by an energy model, as a meter: the model handle is
/// where frames go.
pub fn open_sim(
    profile: PowerProfile,
    config: MeterConfig,
    epoch: Instant,
) -> Result<(Ina219Meter<SimIna219>, Arc<Mutex<PowerModel>>), BenchError> {
    open_sim_fed(profile, config, epoch, None)
}

/// As [`open_sim`], with the model fed live from `feed` (frame times on the
/// `epoch` clock) before every register access.
pub fn open_sim_fed(
    profile: PowerProfile,
    config: MeterConfig,
    epoch: Instant,
    feed: Option<FrameFeed>,
) -> Result<(Ina219Meter<SimIna219>, Arc<Mutex<PowerModel>>), BenchError> {
    let model = Arc::new(Mutex::new(PowerModel::new(profile)));
    let mut chip = SimIna219::new(
        config.address,
        config.shunt_ohms,
        model.clone(),
        SimClock::Real(epoch),
    );
    if let Some(feed) = feed {
        chip = chip.with_feed(feed);
    }
    Ok((Ina219Meter::new(chip, config, epoch)?, model))
}

/// A finished (or running) power trace: the samples, in time order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PowerTrace {
    /// The samples.
    pub samples: Vec<Sample>,
}

/// Energy over a window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Energy {
    /// Millijoules.
    pub mj: f64,
    /// Watt-hours.
    pub wh: f64,
    /// Mean power (mW).
    pub mean_mw: f64,
    /// The highest current of a sample in the window (mA; 0 without samples).
    pub peak_ma: f64,
    /// Samples in the window.
    pub samples: usize,
}

impl Energy {
    /// As `(name, value, unit)` measurements (see [`PowerTrace::measurements`]).
    pub fn measurements(&self) -> Vec<(String, f64, &'static str)> {
        vec![
            ("power.energy_mj".into(), self.mj, "mJ"),
            ("power.energy_wh".into(), self.wh, "Wh"),
            ("power.avg_mw".into(), self.mean_mw, "mW"),
            ("power.peak_ma".into(), self.peak_ma, "mA"),
            ("power.samples".into(), self.samples as f64, "count"),
        ]
    }
}

impl PowerTrace {
    /// Energy over `[from_s, to_s)`: each sample's power holds from the
    /// previous sample's time (a conversion averages the period before it),
    /// clipped to the window.
    pub fn energy(&self, from_s: f64, to_s: f64) -> Energy {
        let mut mj = 0.0;
        let mut n = 0;
        let mut peak_ma: f64 = 0.0;
        let mut prev: Option<f64> = None;
        for s in &self.samples {
            let start = prev.unwrap_or(s.t_s);
            prev = Some(s.t_s);
            let (a, b) = (start.max(from_s), s.t_s.min(to_s));
            if b > a {
                mj += s.power_mw * (b - a);
            }
            if s.t_s >= from_s && s.t_s < to_s {
                n += 1;
                peak_ma = peak_ma.max(s.current_ma);
            }
        }
        let d = to_s - from_s;
        Energy {
            mj,
            wh: mj / 3.6e6,
            mean_mw: if d > 0.0 { mj / d } else { 0.0 },
            peak_ma,
            samples: n,
        }
    }

    /// Energy per bin of `bin_s` seconds over `[from_s, to_s)`, in one pass
    /// (mJ per bin; the last bin may be shorter).
    pub fn energy_bins(&self, from_s: f64, to_s: f64, bin_s: f64) -> Vec<f64> {
        if bin_s.is_nan() || bin_s <= 0.0 || to_s <= from_s {
            return Vec::new();
        }
        let n = ((to_s - from_s) / bin_s).ceil().max(1.0) as usize;
        let mut bins = vec![0.0; n];
        let mut prev: Option<f64> = None;
        for s in &self.samples {
            let start = prev.unwrap_or(s.t_s);
            prev = Some(s.t_s);
            let (mut a, b) = (start.max(from_s), s.t_s.min(to_s));
            // Spread the sample's energy over the bins its period covers.
            while b > a {
                let i = (((a - from_s) / bin_s) as usize).min(n - 1);
                let edge = (from_s + (i + 1) as f64 * bin_s).min(b);
                let edge = if edge <= a { b } else { edge };
                bins[i] += s.power_mw * (edge - a);
                a = edge;
            }
        }
        bins
    }

    /// The samples with `from_s <= t_s < to_s`, plus the one just before
    /// and the one just after (whose periods reach into the window), as a
    /// new trace with the same energy over the window.
    pub fn slice(&self, from_s: f64, to_s: f64) -> PowerTrace {
        let lo = self.samples.partition_point(|s| s.t_s < from_s);
        let hi = self.samples.partition_point(|s| s.t_s < to_s);
        let (lo, hi) = (lo.saturating_sub(1), (hi + 1).min(self.samples.len()));
        PowerTrace {
            samples: self.samples[lo..hi.max(lo)].to_vec(),
        }
    }

    /// Measurements of a window as `(name, value, unit)`, with the names
    /// `rig run` records per case (`reports/README.md`): `power.energy_mj`,
    /// `power.energy_wh`, `power.avg_mw`, `power.peak_ma`, `power.samples`.
    pub fn measurements(&self, from_s: f64, to_s: f64) -> Vec<(String, f64, &'static str)> {
        self.energy(from_s, to_s).measurements()
    }
}

/// Samples a meter on its own thread at the chip's conversion rate, writing
/// every sample to a CSV file as it comes.
#[derive(Debug)]
pub struct Sampler {
    stop: Arc<AtomicBool>,
    trace: Arc<Mutex<PowerTrace>>,
    thread: Option<JoinHandle<Result<(), BenchError>>>,
    csv: Option<PathBuf>,
}

impl Sampler {
    /// Starts sampling `meter`; samples go to `csv` (created, with its folder)
    /// if given.
    pub fn start(mut meter: Box<dyn Meter>, csv: Option<&Path>) -> Result<Self, BenchError> {
        let mut file = match csv {
            Some(p) => {
                if let Some(d) = p.parent() {
                    std::fs::create_dir_all(d).map_err(|e| {
                        BenchError::power(format!("cannot create {}: {e}", d.display()))
                    })?;
                }
                let mut f = std::io::BufWriter::new(std::fs::File::create(p).map_err(|e| {
                    BenchError::power(format!("cannot create {}: {e}", p.display()))
                })?);
                writeln!(f, "{CSV_HEADER}")
                    .map_err(|e| BenchError::power(format!("cannot write {}: {e}", p.display())))?;
                Some((f, p.to_path_buf()))
            }
            None => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let trace = Arc::new(Mutex::new(PowerTrace::default()));
        let (stop2, trace2) = (stop.clone(), trace.clone());
        let thread = std::thread::Builder::new()
            .name("rig-power-sampler".into())
            .spawn(move || {
                let period = meter.conversion_period();
                // Poll a little faster than the chip converts, so no
                // conversion is missed; not-ready polls return None.
                let poll = (period / 2).max(Duration::from_micros(200));
                let mut next = Instant::now();
                while !stop2.load(Ordering::SeqCst) {
                    if let Some(s) = meter.poll()? {
                        if let Some((f, p)) = file.as_mut() {
                            writeln!(f, "{}", s.csv_row()).map_err(|e| {
                                BenchError::power(format!("cannot write {}: {e}", p.display()))
                            })?;
                        }
                        trace2
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .samples
                            .push(s);
                    }
                    next += poll;
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    } else {
                        next = now;
                    }
                }
                if let Some((f, p)) = file.as_mut() {
                    f.flush().map_err(|e| {
                        BenchError::power(format!("cannot write {}: {e}", p.display()))
                    })?;
                }
                Ok(())
            })
            .map_err(|e| BenchError::power(format!("cannot start the sampler thread: {e}")))?;
        Ok(Self {
            stop,
            trace,
            thread: Some(thread),
            csv: csv.map(Path::to_path_buf),
        })
    }

    /// A copy of the samples so far.
    pub fn snapshot(&self) -> PowerTrace {
        self.trace.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The samples of `[from_s, to_s)` (see [`PowerTrace::slice`]), copied.
    pub fn window(&self, from_s: f64, to_s: f64) -> PowerTrace {
        self.trace
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .slice(from_s, to_s)
    }

    /// Frees the samples older than `t_s` (keeping the one just before, whose
    /// period reaches `t_s`); the CSV file keeps them all.
    pub fn discard_before(&self, t_s: f64) {
        let mut trace = self.trace.lock().unwrap_or_else(|e| e.into_inner());
        let k = trace
            .samples
            .partition_point(|s| s.t_s < t_s)
            .saturating_sub(1);
        trace.samples.drain(..k);
    }

    /// The live trace the thread appends to.
    pub(crate) fn shared(&self) -> Arc<Mutex<PowerTrace>> {
        self.trace.clone()
    }

    /// Whether the thread has stopped (an error, or [`Self::stop`]).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// The CSV file, if any.
    pub fn csv_path(&self) -> Option<&Path> {
        self.csv.as_deref()
    }

    /// Stops the thread (within one poll period) and returns the whole trace,
    /// or the error that stopped it early.
    pub fn stop(mut self) -> Result<PowerTrace, BenchError> {
        self.finish()?;
        Ok(self.snapshot())
    }

    fn finish(&mut self) -> Result<(), BenchError> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(BenchError::power("the sampler thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_follows_the_datasheet_example() {
        // Datasheet §8.5.1 style: 0.1 Ω, 3.2 A max → LSB 97.66 µA → 98 µA,
        // Cal = trunc(0.04096 / (98e-6 × 0.1)) = 4179 → 4178 (bit 0 reads 0).
        let c = MeterConfig::default();
        assert_eq!(c.current_lsb_ua(), 98);
        let cal = c.calibration().unwrap();
        assert_eq!(cal.as_bits(), 4178);
        assert_eq!(cal.power_lsb().0, 20 * 98);
        assert_eq!(c.shunt_range(), ShuntVoltageRange::Fsr320mv);
        // 1 A through 0.1 Ω is 100 mV: the 160 mV range.
        let c = MeterConfig {
            max_current_a: 1.0,
            averaging: 16,
            ..Default::default()
        };
        assert_eq!(c.shunt_range(), ShuntVoltageRange::Fsr160mv);
        assert_eq!(c.resolution(), Resolution::Avg16);
        assert_eq!(c.conversion_period(), Duration::from_micros(2 * 8_510));
        // Configuration bits: BRNG=1, PG=10, BADC=SADC=1100, MODE=111.
        assert_eq!(c.configuration().as_bits(), 0b0011_0110_0110_0111);
    }

    #[test]
    fn the_bench_files_calibration_reaches_the_chips_registers() {
        use embedded_hal::i2c::I2c as _;
        let text = "[bench]\nname = \"pi\"\n\n[target]\nkind = \"process\"\ncommand = [\"true\"]\n\n\
                    [power]\nkind = \"ina219\"\nbus = \"/dev/i2c-1\"\naddress = 0x41\n\
                    shunt_ohms = 0.05\nmax_current_a = 2.0\naveraging = 16\n";
        let bench = crate::file::Bench::parse(&crate::diag::SourceFile::new("pi.toml", text))
            .unwrap_or_else(|d| panic!("{d}"));
        let config = MeterConfig::from_spec(bench.power.as_ref().unwrap());
        assert_eq!(config.address, 0x41);
        let model = std::sync::Arc::new(std::sync::Mutex::new(PowerModel::new(
            PowerProfile::by_name("lte-m").unwrap(),
        )));
        let (clock, _now) = SimClock::manual();
        let chip = SimIna219::new(0x41, 0.05, model, clock);
        let meter = Ina219Meter::new(chip, config, Instant::now()).unwrap();
        let mut chip = meter.into_inner();
        let mut read = |reg: u8| {
            let mut buf = [0u8; 2];
            chip.write_read(0x41, &[reg], &mut buf).unwrap();
            u16::from_be_bytes(buf)
        };
        // Datasheet eq. 2 and 1, worked by hand: LSB = 2 A / 2^15 = 61.04 µA,
        // rounded up to 62 µA; Cal = trunc(0.04096 / (62e-6 × 0.05)) = 13212.
        assert_eq!(read(0x05), 13_212);
        // 2 A × 0.05 Ω = 100 mV: PGA /4 (160 mV); 16 samples on both ADCs:
        // BRNG=1, PG=10, BADC=SADC=1100, MODE=111.
        assert_eq!(read(0x00), 0b0011_0110_0110_0111);
        // The defaults would have written something else.
        assert_ne!(
            MeterConfig::default().calibration().unwrap().as_bits(),
            13_212
        );
    }

    #[test]
    fn simulated_profiles_get_a_calibration_that_resolves_their_idle_current() {
        let eth = MeterConfig::for_profile(&PowerProfile::by_name("ethernet").unwrap());
        assert_eq!(eth.shunt_ohms, 0.1);
        assert!((eth.max_current_a - 0.9).abs() < 1e-9);
        let lte = MeterConfig::for_profile(&PowerProfile::by_name("lte-m").unwrap());
        assert_eq!(lte.shunt_ohms, 1.0);
        // 0.5 mA idle is at least 50 current LSBs.
        assert!(500.0 / lte.current_lsb_ua() as f64 >= 50.0, "{lte:?}");
        for p in model::PROFILES {
            let c = MeterConfig::for_profile(&PowerProfile::by_name(p).unwrap());
            c.calibration().unwrap();
            assert!(c.max_current_a * c.shunt_ohms <= 0.32, "{p}: {c:?}");
        }
    }

    #[test]
    fn an_impossible_calibration_is_a_clear_error() {
        let c = MeterConfig {
            shunt_ohms: 100.0,
            max_current_a: 30.0,
            ..Default::default()
        };
        let e = c.calibration().unwrap_err().to_string();
        assert!(e.contains("max_current_a"), "{e}");
    }

    #[test]
    fn energy_of_a_constant_trace_is_power_times_time() {
        let trace = PowerTrace {
            samples: (0..=100)
                .map(|i| Sample {
                    t_s: f64::from(i) * 0.1,
                    bus_v: 5.0,
                    shunt_mv: 50.0,
                    current_ma: 500.0,
                    power_mw: 2500.0,
                })
                .collect(),
        };
        let e = trace.energy(0.0, 10.0);
        assert!((e.mj - 25_000.0).abs() < 1e-6, "{e:?}");
        assert!((e.wh - 25.0 / 3600.0).abs() < 1e-9);
        assert!((e.mean_mw - 2500.0).abs() < 1e-6);
        let half = trace.energy(2.5, 7.5);
        assert!((half.mj - 12_500.0).abs() < 1e-6, "{half:?}");
        assert!((e.peak_ma - 500.0).abs() < 1e-9);
        let m = trace.measurements(0.0, 10.0);
        assert_eq!(m[0].0, "power.energy_mj");
        assert_eq!(m[1].2, "Wh");
        // Bins add up to the whole, and split at their edges.
        let bins = trace.energy_bins(0.0, 10.0, 0.25);
        assert_eq!(bins.len(), 40);
        assert!((bins.iter().sum::<f64>() - 25_000.0).abs() < 1e-6);
        assert!(bins.iter().all(|b| (b - 625.0).abs() < 1e-6), "{bins:?}");
        let s = trace.slice(2.0, 3.0);
        assert_eq!(s.samples.len(), 12);
        assert!((s.energy(2.0, 3.0).mj - 2500.0).abs() < 1e-6);
    }
}
