//! Power in `rig run`: when the bench has `[power]`, its meter is sampled on
//! its own thread for the whole run (`power/run.csv`), and each case gets
//! `power/<case-id>.csv`, the `power.*` measurements (`power.energy_mj`,
//! `power.energy_wh`, `power.avg_mw`, `power.peak_ma`, `power.samples`) and
//! an energy-per-interval series for the report's chart
//! (`series/<case-id>.power.json`). On a `sim` network the energy model is fed
//! live by the bridge's frame tap, so the simulated INA219 follows the DUT's
//! real traffic. [`RunHooks`] runs these hooks next to the network's.

use std::path::{Path, PathBuf};

use rig_bench::file::Bench;
use rig_bench::power::{CasePower, Direction, FrameEvent, FrameFeed, PowerSession};
use rig_report::events::{Artifact, ArtifactKind, Measurement};
use rig_report::series::{Point, Series, SeriesKind};
use rig_suite::engine::CaseHooks;

use super::simnet::SimNet;

/// Frames the bridge's tap holds before it drops (and counts) them.
const TAP_CAPACITY: usize = 65_536;

/// The run's power session, as per-case hooks.
pub(crate) struct PowerHooks {
    session: PowerSession,
    out: PathBuf,
}

impl PowerHooks {
    /// Opens the bench's meter, if it has one; the simulated network's frame
    /// tap, if there is one, feeds the energy model (a real INA219 needs none).
    pub(crate) fn open(
        bench: &Bench,
        out: &Path,
        net: Option<&SimNet>,
    ) -> Result<Option<Self>, String> {
        let Some(spec) = &bench.power else {
            return Ok(None);
        };
        let tap = match net {
            Some(net) => net.frame_tap(TAP_CAPACITY)?,
            None => None,
        };
        let session = PowerSession::open_with(spec, out, |epoch| {
            tap.map(|tap| -> FrameFeed {
                Box::new(move |buf: &mut Vec<FrameEvent>| {
                    for f in tap.try_iter() {
                        buf.push(FrameEvent {
                            at: f.at.saturating_duration_since(epoch),
                            bytes: f.l2_len,
                            direction: match f.direction {
                                rig_net::Direction::Up => Direction::Tx,
                                rig_net::Direction::Down => Direction::Rx,
                            },
                            ip: f.ip,
                        });
                    }
                })
            })
        })
        .map_err(|e| format!("{}: [power]: {e}", bench.path.display()))?;
        Ok(Some(Self {
            session,
            out: out.to_path_buf(),
        }))
    }

    /// What cases get as `CaseContext::power`.
    pub(crate) fn case_power(&self) -> CasePower {
        self.session.case_power()
    }

    /// Stops sampling; a problem to warn about, if any.
    pub(crate) fn stop(self) -> Option<String> {
        let what = self.session.describe().to_string();
        self.session
            .stop()
            .err()
            .map(|e| format!("power sampler ({what}): {e}"))
    }
}

impl CaseHooks for PowerHooks {
    fn before_case(&mut self, id: &str) -> Result<(), String> {
        self.session.begin_case(id).map_err(|e| e.to_string())
    }

    fn after_case(&mut self, id: &str) -> Result<(Vec<Measurement>, Vec<Artifact>), String> {
        let case = self.session.end_case().map_err(|e| e.to_string())?;
        let measurements = case
            .energy
            .measurements()
            .into_iter()
            .map(|(name, value, unit)| Measurement {
                name,
                unit: unit.to_string(),
                value,
                limits: None,
            })
            .collect();
        let mut artifacts = vec![Artifact {
            kind: ArtifactKind::Power,
            path: case.csv.clone(),
        }];
        let series = Series {
            name: "power.energy_mj".into(),
            kind: SeriesKind::Timeline,
            x_unit: "s".into(),
            unit: "mJ".into(),
            bin: Some(case.bin_s),
            points: case
                .bins_mj
                .iter()
                .enumerate()
                .map(|(i, &y)| Point {
                    x: i as f64 * case.bin_s,
                    y,
                })
                .collect(),
        };
        // Without the series the case keeps its measurements and CSV; only
        // the chart is missing, so this is a warning.
        match write_series(&self.out, id, &series) {
            Ok(path) => artifacts.push(Artifact {
                kind: ArtifactKind::Other,
                path,
            }),
            Err(e) => eprintln!("warning: case {id}: {e}"),
        }
        Ok((measurements, artifacts))
    }
}

/// Writes `series/<id>.power.json` (read back by the report with the case's
/// other series); returns its path relative to the run directory.
fn write_series(out: &Path, id: &str, series: &Series) -> Result<PathBuf, String> {
    let net = rig_report::series::relative_path(id);
    let rel = net.with_extension("power.json");
    let text = serde_json::to_string(&[series]).map_err(|e| format!("power series: {e}"))?;
    rig_report::atomic::write_atomic(&out.join(&rel), text.as_bytes())
        .map_err(|e| e.to_string())?;
    Ok(rel)
}

/// The hooks of a run: the simulated network's and the power meter's, each
/// if present, in that order. Their measurements and artifacts add up; their
/// errors are joined.
pub(crate) struct RunHooks<'a> {
    /// The simulated network, if the bench has one.
    pub(crate) net: Option<&'a mut SimNet>,
    /// The power meter, if the bench has one.
    pub(crate) power: Option<&'a mut PowerHooks>,
}

impl CaseHooks for RunHooks<'_> {
    fn before_case(&mut self, id: &str) -> Result<(), String> {
        let mut errors = Vec::new();
        if let Some(net) = self.net.as_deref_mut()
            && let Err(e) = net.before_case(id)
        {
            errors.push(e);
        }
        if let Some(power) = self.power.as_deref_mut()
            && let Err(e) = power.before_case(id)
        {
            errors.push(e);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    fn after_case(&mut self, id: &str) -> Result<(Vec<Measurement>, Vec<Artifact>), String> {
        let (mut measurements, mut artifacts, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        let hooks: [Option<&mut dyn CaseHooks>; 2] = [
            self.net.as_deref_mut().map(|h| h as &mut dyn CaseHooks),
            self.power.as_deref_mut().map(|h| h as &mut dyn CaseHooks),
        ];
        for h in hooks.into_iter().flatten() {
            match h.after_case(id) {
                Ok((m, a)) => {
                    measurements.extend(m);
                    artifacts.extend(a);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok((measurements, artifacts))
        } else if measurements.is_empty() && artifacts.is_empty() {
            Err(errors.join("; "))
        } else {
            // Keep what the other hooks measured; the error can only go to
            // stderr (the hooks' interface returns one or the other).
            for e in &errors {
                eprintln!("warning: case {id}: {e}");
            }
            Ok((measurements, artifacts))
        }
    }
}
