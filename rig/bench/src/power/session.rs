//! A run's power session: one [`Sampler`] for the whole run, cut into cases
//! and into the windows cases ask for.
//!
//! `rig run` opens one [`PowerSession`] when the bench has `[power]`: a real
//! INA219 through linux-embedded-hal's I2cdev, or the simulated INA219 whose
//! model is fed live by the bridge's frame tap. The sampler runs on its own
//! thread at the chip's conversion rate and writes `power/run.csv`. Around each
//! case the session writes `power/<case-id>.csv` (the case's rows, times on the
//! run's power clock) and returns the case's [`CaseEnergy`]: the `power.*`
//! measurements and energy per interval for the report's chart. Cases measure
//! their own windows through a cloneable [`CasePower`] (and may switch the
//! model's profile). Drivers never decide verdicts: limits are the engine's.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{
    CSV_HEADER, Energy, Meter, MeterConfig, PowerModel, PowerProfile, PowerTrace, Sampler,
    open_i2c, open_sim_fed, sim::FrameFeed,
};
use crate::BenchError;
use crate::file::PowerSpec;

/// The folder of power traces under the run directory.
pub const POWER_DIR: &str = "power";

/// At most this many intervals in a case's energy series.
const MAX_BINS: usize = 300;

/// The shortest interval of a case's energy series (s).
const MIN_BIN_S: f64 = 0.1;

/// How long to wait, past the chip's conversion period, for the conversion
/// that closes a window.
const CLOSE_GRACE: Duration = Duration::from_millis(50);

/// One case's power, as [`PowerSession::end_case`] returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseEnergy {
    /// Energy, mean power, peak current and sample count of the case.
    pub energy: Energy,
    /// The case's CSV, relative to the run directory (`power/<id>.csv`).
    pub csv: PathBuf,
    /// The case's length (s).
    pub duration_s: f64,
    /// The width of one interval of [`Self::bins_mj`] (s).
    pub bin_s: f64,
    /// Energy per interval from the case's start (mJ).
    pub bins_mj: Vec<f64>,
}

/// Energy over a window a case opened with [`CasePower::begin_window`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PowerWindow {
    /// Energy (mJ).
    pub energy_mj: f64,
    /// Energy (Wh).
    pub energy_wh: f64,
    /// Mean power (mW).
    pub avg_mw: f64,
    /// Highest sampled current (mA).
    pub peak_ma: f64,
    /// Conversions in the window.
    pub samples: usize,
    /// The window's length (s).
    pub duration_s: f64,
}

impl PowerWindow {
    fn of(e: Energy, duration_s: f64) -> Self {
        Self {
            energy_mj: e.mj,
            energy_wh: e.wh,
            avg_mw: e.mean_mw,
            peak_ma: e.peak_ma,
            samples: e.samples,
            duration_s,
        }
    }

    /// As `(name, value, unit)` measurements named `<prefix>.energy_mj`,
    /// `<prefix>.energy_wh`, `<prefix>.avg_mw`, `<prefix>.peak_ma`.
    pub fn measurements(&self, prefix: &str) -> Vec<(String, f64, &'static str)> {
        vec![
            (format!("{prefix}.energy_mj"), self.energy_mj, "mJ"),
            (format!("{prefix}.energy_wh"), self.energy_wh, "Wh"),
            (format!("{prefix}.avg_mw"), self.avg_mw, "mW"),
            (format!("{prefix}.peak_ma"), self.peak_ma, "mA"),
        ]
    }
}

/// What a case sees of the run's power meter: named energy windows, and the
/// energy model's profile on a simulated bench. Cheap to clone.
#[derive(Clone)]
pub struct CasePower {
    trace: Arc<Mutex<PowerTrace>>,
    epoch: Instant,
    period: Duration,
    model: Option<Arc<Mutex<PowerModel>>>,
    windows: Arc<Mutex<BTreeMap<String, f64>>>,
}

impl std::fmt::Debug for CasePower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CasePower")
            .field("period", &self.period)
            .field("profile", &self.profile())
            .finish_non_exhaustive()
    }
}

impl CasePower {
    fn now_s(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    /// Opens (or restarts) the window `name` now.
    pub fn begin_window(&self, name: &str) {
        let now = self.now_s();
        self.windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), now);
    }

    /// Closes the window `name` now and returns its energy. Waits for the
    /// conversion that covers the window's end (at most one conversion
    /// period and 50 ms).
    pub async fn end_window(&self, name: &str) -> Result<PowerWindow, BenchError> {
        let end = self.now_s();
        let start = self
            .windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .ok_or_else(|| {
                BenchError::power(format!(
                    "no power window named {name:?} is open (begin_window first)"
                ))
            })?;
        let deadline = Instant::now() + self.period + CLOSE_GRACE;
        while !covered(&self.trace, end) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let slice = self
            .trace
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .slice(start, end);
        Ok(PowerWindow::of(slice.energy(start, end), end - start))
    }

    /// The energy model's profile (`None` on a real INA219).
    pub fn profile(&self) -> Option<String> {
        self.model.as_ref().map(|m| {
            m.lock()
                .unwrap_or_else(|e| e.into_inner())
                .profile()
                .name
                .to_string()
        })
    }

    /// Switches the energy model to the profile `name` (`ethernet`, `wifi`,
    /// `lte-m`, `nb-iot`) from now on; the radio starts at the new profile's
    /// floor. An error on a real INA219 or for an unknown profile.
    pub fn set_profile(&self, name: &str) -> Result<(), BenchError> {
        let model = self.model.as_ref().ok_or_else(|| {
            BenchError::power("this bench measures a real INA219: its profile cannot change")
        })?;
        let profile = PowerProfile::by_name(name).ok_or_else(|| {
            BenchError::power(format!(
                "no power profile {name:?}; known: {}",
                super::model::PROFILES.join(", ")
            ))
        })?;
        model
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_profile(profile);
        Ok(())
    }
}

/// Whether the trace has a conversion at or after `t_s`.
fn covered(trace: &Mutex<PowerTrace>, t_s: f64) -> bool {
    trace
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .samples
        .last()
        .is_some_and(|s| s.t_s >= t_s)
}

/// A run's power meter, sampled for the whole run; see the module docs.
pub struct PowerSession {
    sampler: Sampler,
    case: CasePower,
    out: PathBuf,
    current: Option<(String, f64)>,
    what: String,
}

impl std::fmt::Debug for PowerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerSession")
            .field("what", &self.what)
            .field("out", &self.out)
            .finish_non_exhaustive()
    }
}

impl PowerSession {
    /// Opens the bench's meter and starts sampling into `<out>/power/run.csv`:
    /// the INA219 on its I2C bus (`kind = "ina219"`), or the simulated INA219
    /// of the energy model (`kind = "model"`), fed live by `feed` (frame
    /// times on the clock of [`Self::epoch`], which `feed` gets as its
    /// argument when it is built; see [`Self::open_with`]).
    pub fn open(spec: &PowerSpec, out: &Path) -> Result<Self, BenchError> {
        Self::open_with(spec, out, |_| None)
    }

    /// As [`Self::open`]; `make_feed` is called with the session's epoch and
    /// returns the model's frame feed (ignored for a real INA219).
    pub fn open_with(
        spec: &PowerSpec,
        out: &Path,
        make_feed: impl FnOnce(Instant) -> Option<FrameFeed>,
    ) -> Result<Self, BenchError> {
        let epoch = Instant::now();
        let config = MeterConfig::from_spec(spec);
        match spec {
            PowerSpec::Model { profile } => {
                let p = PowerProfile::by_name(profile)
                    .ok_or_else(|| BenchError::power(format!("no power profile {profile:?}")))?;
                let (meter, model) = open_sim_fed(p, config, epoch, make_feed(epoch))?;
                Self::start(
                    Box::new(meter),
                    epoch,
                    Some(model),
                    out,
                    format!("simulated INA219, energy model `{profile}`"),
                )
            }
            PowerSpec::Ina219 { bus, address, .. } => {
                let meter = open_i2c(bus, config, epoch)?;
                Self::start(
                    Box::new(meter),
                    epoch,
                    None,
                    out,
                    format!("INA219 at {address:#04x} on {}", bus.display()),
                )
            }
        }
    }

    /// Starts sampling `meter` (its sample times count from `epoch`); `model`
    /// is the energy model behind a simulated chip, if any. This is the path
    /// [`Self::open`] takes for both kinds; tests give it a meter on a
    /// simulated bus.
    pub fn start(
        meter: Box<dyn Meter>,
        epoch: Instant,
        model: Option<Arc<Mutex<PowerModel>>>,
        out: &Path,
        what: String,
    ) -> Result<Self, BenchError> {
        let period = meter.conversion_period();
        let run_csv = out.join(POWER_DIR).join("run.csv");
        let sampler = Sampler::start(meter, Some(run_csv.as_path()))?;
        let case = CasePower {
            trace: sampler.shared(),
            epoch,
            period,
            model,
            windows: Arc::new(Mutex::new(BTreeMap::new())),
        };
        Ok(Self {
            sampler,
            case,
            out: out.to_path_buf(),
            current: None,
            what,
        })
    }

    /// The instant sample times count from.
    pub fn epoch(&self) -> Instant {
        self.case.epoch
    }

    /// The chip's conversion period (the sampling interval).
    pub fn conversion_period(&self) -> Duration {
        self.case.period
    }

    /// What is measured, for messages (e.g. `INA219 at 0x40 on /dev/i2c-1`).
    pub fn describe(&self) -> &str {
        &self.what
    }

    /// The handle cases get (`CaseContext::power`).
    pub fn case_power(&self) -> CasePower {
        self.case.clone()
    }

    fn check_running(&self) -> Result<(), BenchError> {
        if self.sampler.is_finished() {
            return Err(BenchError::power(format!(
                "the power sampler ({}) has stopped; its error is reported at the end of the run",
                self.what
            )));
        }
        Ok(())
    }

    /// Starts the case `id` now.
    pub fn begin_case(&mut self, id: &str) -> Result<(), BenchError> {
        self.current = Some((id.to_string(), self.case.now_s()));
        self.check_running()
    }

    /// Ends the case begun last: waits for the conversion that covers its
    /// end, writes `power/<id>.csv` and returns its energy.
    pub fn end_case(&mut self) -> Result<CaseEnergy, BenchError> {
        let end = self.case.now_s();
        let (id, start) = self
            .current
            .take()
            .ok_or_else(|| BenchError::power("end_case without begin_case"))?;
        self.check_running()?;
        let deadline = Instant::now() + self.case.period + CLOSE_GRACE;
        while !covered(&self.case.trace, end) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let slice = self.sampler.window(start, end);
        let rel = Path::new(POWER_DIR).join(format!("{}.csv", safe_name(&id)));
        write_csv(&self.out.join(&rel), &slice, start, end)?;
        let duration_s = end - start;
        let bin_s = (duration_s / MAX_BINS as f64).max(MIN_BIN_S);
        let energy = slice.energy(start, end);
        let bins_mj = slice.energy_bins(start, end, bin_s);
        // Free what no open window needs any more (run.csv keeps it all).
        let keep_from = self
            .case
            .windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .fold(end, |a, &b| a.min(b));
        self.sampler.discard_before(keep_from);
        Ok(CaseEnergy {
            energy,
            csv: rel,
            duration_s,
            bin_s,
            bins_mj,
        })
    }

    /// Stops sampling; returns the sampler's error if it stopped on one.
    pub fn stop(self) -> Result<(), BenchError> {
        self.sampler.stop().map(|_| ())
    }
}

/// A case id as a file name (no path separators).
fn safe_name(id: &str) -> String {
    id.chars()
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect()
}

/// Writes the samples of `[from_s, to_s)` as CSV (header, then one row per
/// conversion).
fn write_csv(path: &Path, trace: &PowerTrace, from_s: f64, to_s: f64) -> Result<(), BenchError> {
    let err =
        |e: std::io::Error| BenchError::power(format!("cannot write {}: {e}", path.display()));
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(err)?;
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(err)?);
    writeln!(f, "{CSV_HEADER}").map_err(err)?;
    for s in trace
        .samples
        .iter()
        .filter(|s| s.t_s >= from_s && s.t_s < to_s)
    {
        writeln!(f, "{}", s.csv_row()).map_err(err)?;
    }
    f.flush().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::model::{Direction, FrameEvent};
    use crate::power::{Ina219Meter, SimClock, SimIna219};

    #[test]
    fn case_file_names_have_no_separators() {
        assert_eq!(safe_name("a/b\\c[psk]"), "a_b_c[psk]");
    }

    /// The session on the same driver path as a real bench (the `ina219`
    /// driver through `Ina219Meter`), on a simulated bus whose model is fed
    /// from a channel as the bridge's tap feeds it.
    fn fed_session(
        dir: &Path,
        profile: &str,
    ) -> (PowerSession, std::sync::mpsc::Sender<FrameEvent>) {
        let (tx, rx) = std::sync::mpsc::channel::<FrameEvent>();
        let epoch = Instant::now();
        let model = Arc::new(Mutex::new(PowerModel::new(
            PowerProfile::by_name(profile).unwrap(),
        )));
        let config = MeterConfig::for_profile(&PowerProfile::by_name(profile).unwrap());
        let chip = SimIna219::new(
            0x40,
            config.shunt_ohms,
            model.clone(),
            SimClock::Real(epoch),
        )
        .with_feed(Box::new(move |buf: &mut Vec<FrameEvent>| {
            buf.extend(rx.try_iter())
        }));
        let meter = Ina219Meter::new(chip, config, epoch).unwrap();
        let session =
            PowerSession::start(Box::new(meter), epoch, Some(model), dir, "test".into()).unwrap();
        (session, tx)
    }

    #[test]
    fn cases_get_their_csv_energy_and_bins_and_fed_frames_raise_the_energy() {
        let dir = tempfile::tempdir().unwrap();
        let (mut session, tx) = fed_session(dir.path(), "lte-m");
        assert_eq!(session.conversion_period(), Duration::from_micros(1_064));
        session.begin_case("quiet").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let quiet = session.end_case().unwrap();
        session.begin_case("busy/1").unwrap();
        let t = session.epoch().elapsed();
        for i in 0..5 {
            tx.send(FrameEvent {
                at: t + Duration::from_millis(10 * i),
                bytes: 1_000,
                direction: Direction::Tx,
                ip: true,
            })
            .unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        let busy = session.end_case().unwrap();
        // Quiet: the module's 0.5 mA baseline (plus the PSM floor) at 3.7 V.
        assert!(
            (quiet.energy.mean_mw - 0.5027 * 3.7).abs() < 0.3,
            "{quiet:?}"
        );
        // Busy: five 1000-byte transmissions at 120 mA, then the 6 mA tail.
        assert!(
            busy.energy.mean_mw > 10.0 * quiet.energy.mean_mw,
            "{busy:?}"
        );
        assert!(busy.energy.peak_ma > 100.0, "{busy:?}");
        assert_eq!(busy.csv, Path::new("power/busy_1.csv"));
        let csv = std::fs::read_to_string(dir.path().join(&busy.csv)).unwrap();
        assert_eq!(csv.lines().next(), Some(CSV_HEADER));
        assert_eq!(csv.lines().count() - 1, busy.energy.samples);
        assert!(busy.energy.samples > 100, "{busy:?}");
        let sum: f64 = busy.bins_mj.iter().sum();
        assert!((sum - busy.energy.mj).abs() < 1e-6 * busy.energy.mj.max(1.0));
        assert!((busy.bin_s - MIN_BIN_S).abs() < 1e-12);
        assert!(dir.path().join("power/run.csv").is_file());
        session.stop().unwrap();
    }

    #[test]
    fn cases_measure_their_own_windows_and_switch_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let (session, _tx) = fed_session(dir.path(), "ethernet");
        let power = session.case_power();
        assert_eq!(power.profile().as_deref(), Some("ethernet"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            power.begin_window("idle");
            tokio::time::sleep(Duration::from_millis(200)).await;
            let w = power.end_window("idle").await.unwrap();
            // 540 mA from 5.1 V less the shunt's drop: ≈ 2.72 W.
            assert!((w.avg_mw - 2_725.0).abs() < 40.0, "{w:?}");
            assert!((w.energy_mj - w.avg_mw * w.duration_s).abs() < 1e-6 * w.energy_mj);
            assert!((w.energy_wh - w.energy_mj / 3.6e6).abs() < 1e-15);
            assert!(w.samples > 50, "{w:?}");
            assert_eq!(w.measurements("power.idle")[0].0, "power.idle.energy_mj");
            let e = power.end_window("idle").await.unwrap_err().to_string();
            assert!(e.contains("\"idle\""), "{e}");

            power.set_profile("nb-iot").unwrap();
            assert_eq!(power.profile().as_deref(), Some("nb-iot"));
            tokio::time::sleep(Duration::from_millis(20)).await;
            power.begin_window("psm");
            tokio::time::sleep(Duration::from_millis(100)).await;
            let w = power.end_window("psm").await.unwrap();
            assert!(w.avg_mw < 5.0, "{w:?}");
        });
        let e = power.set_profile("5g").unwrap_err().to_string();
        assert!(e.contains("lte-m"), "{e}");
        session.stop().unwrap();
    }

    #[test]
    fn a_missing_i2c_bus_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let spec = PowerSpec::Ina219 {
            bus: "/dev/i2c-does-not-exist".into(),
            address: 0x40,
            shunt_ohms: 0.1,
            max_current_a: 3.2,
            averaging: 1,
        };
        let e = PowerSession::open(&spec, dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("/dev/i2c-does-not-exist"), "{e}");
    }
}
