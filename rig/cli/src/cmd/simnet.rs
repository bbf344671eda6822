//! The simulated network of a `sim` bench for `rig run`: the namespaces, the
//! bridge with its run capture, and the per-case hooks that capture each case
//! to `captures/<case-id>.pcap` and add its `net.*` measurements and its
//! series (`series/<case-id>.json`: bytes over time and frame-length
//! histograms per direction, drawn in `report.html`).

use std::path::{Path, PathBuf};

use rig_net::account::{Accounting, Direction};
use rig_net::{Bridge, BridgeConfig, SimNetwork};
use rig_report::events::{Artifact, ArtifactKind, Measurement};
use rig_report::series::{Point, Series, SeriesKind};
use rig_suite::engine::CaseHooks;

/// Where the LwM2M server listens inside the services namespace.
pub(crate) const SERVER_ADDR: &str = "10.77.0.1:5683";

/// The capture folder under the run directory.
const CAPTURES: &str = "captures";

/// At most this many time bins per series (the bin width grows to fit).
const MAX_TIME_POINTS: usize = 300;

/// The case's series: L2 bytes over time and frame-length histograms, per
/// direction.
fn case_series(acc: &Accounting) -> Vec<Series> {
    let mut out = Vec::new();
    for dir in [Direction::Up, Direction::Down] {
        let (bin, bytes) = acc.bytes_over_time(dir, MAX_TIME_POINTS);
        let w = bin.as_secs_f64();
        out.push(Series {
            name: format!("net.l2_bytes.{}", dir.name()),
            kind: SeriesKind::Timeline,
            x_unit: "s".into(),
            unit: "B".into(),
            bin: Some(w),
            points: bytes
                .iter()
                .enumerate()
                .map(|(i, &b)| Point {
                    x: i as f64 * w,
                    y: b as f64,
                })
                .collect(),
        });
    }
    for dir in [Direction::Up, Direction::Down] {
        out.push(Series {
            name: format!("net.frame_len.{}", dir.name()),
            kind: SeriesKind::Histogram,
            x_unit: "B".into(),
            unit: "packets".into(),
            bin: None,
            points: acc
                .length_histogram(dir)
                .into_iter()
                .map(|(lo, n)| Point {
                    x: lo as f64,
                    y: n as f64,
                })
                .collect(),
        });
    }
    out
}

/// A running simulated network. Tear it down with [`SimNet::shutdown`];
/// dropping it also tears it down.
pub(crate) struct SimNet {
    net: SimNetwork,
    bridge: Option<Bridge>,
    out: PathBuf,
}

impl SimNet {
    /// Creates the namespaces and starts the bridge, capturing the whole run
    /// to `<out>/captures/run.pcap`.
    pub(crate) fn create(run_id: &str, out: &Path) -> Result<Self, String> {
        if let Ok(stale) = rig_net::cleanup_stale()
            && !stale.is_empty()
        {
            eprintln!(
                "rig: removed {} stale network namespace(s) of earlier runs: {}",
                stale.len(),
                stale.join(", ")
            );
        }
        let captures = out.join(CAPTURES);
        std::fs::create_dir_all(&captures)
            .map_err(|e| format!("cannot create {}: {e}", captures.display()))?;
        let net = SimNetwork::create(run_id)
            .map_err(|e| format!("cannot create the simulated network: {e}"))?;
        let bridge = net
            .start_bridge(BridgeConfig {
                run_pcap: Some(captures.join("run.pcap")),
                ..BridgeConfig::default()
            })
            .map_err(|e| format!("cannot start the bridge of the simulated network: {e}"))?;
        Ok(Self {
            net,
            bridge: Some(bridge),
            out: out.to_path_buf(),
        })
    }

    /// The DUT namespace's name (for `ip netns exec`).
    pub(crate) fn dut_netns(&self) -> String {
        self.net.dut().name().to_string()
    }

    /// The services namespace (where the rig's servers listen).
    pub(crate) fn services_namespace(&self) -> rig_net::Namespace {
        self.net.services().clone()
    }

    /// What cases see of this network: the services namespace and a control
    /// of the bridge.
    pub(crate) fn case_network(&self) -> Option<rig_suite::case::CaseNetwork> {
        let bridge = self.bridge.as_ref()?.control();
        Some(rig_suite::case::CaseNetwork::simulated(
            self.net.services().clone(),
            bridge,
        ))
    }

    /// A tap of the frames the DUT sends and receives (for the power
    /// model); `None` once the bridge has stopped.
    pub(crate) fn frame_tap(&self, capacity: usize) -> Result<Option<rig_net::FrameTap>, String> {
        match &self.bridge {
            Some(b) => b
                .tap(capacity)
                .map(Some)
                .map_err(|e| format!("cannot tap the bridge for the power model: {e}")),
            None => Ok(None),
        }
    }

    /// A UDP socket bound to [`SERVER_ADDR`] inside the services namespace.
    pub(crate) fn bind_server_socket(&self) -> Result<std::net::UdpSocket, String> {
        let addr = SERVER_ADDR
            .parse()
            .map_err(|e| format!("bad server address {SERVER_ADDR}: {e}"))?;
        self.net
            .services()
            .bind_udp(addr)
            .map_err(|e| format!("cannot bind the LwM2M server at {addr}: {e}"))
    }

    /// Stops the bridge and deletes the namespaces; returns the problems.
    pub(crate) fn shutdown(mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(bridge) = self.bridge.take()
            && let Err(e) = bridge.stop()
        {
            problems.push(format!("stopping the bridge: {e}"));
        }
        if let Err(e) = self.net.teardown() {
            problems.push(format!("deleting the network namespaces: {e}"));
        }
        problems
    }
}

impl CaseHooks for SimNet {
    fn before_case(&mut self, id: &str) -> Result<(), String> {
        let bridge = self.bridge.as_ref().ok_or("the bridge is stopped")?;
        let pcap = self.out.join(CAPTURES).join(format!("{id}.pcap"));
        bridge
            .start_case(&pcap)
            .map_err(|e| format!("cannot start the case capture {}: {e}", pcap.display()))
    }

    fn after_case(&mut self, id: &str) -> Result<(Vec<Measurement>, Vec<Artifact>), String> {
        let bridge = self.bridge.as_ref().ok_or("the bridge is stopped")?;
        let case = bridge
            .end_case()
            .map_err(|e| format!("cannot end the case capture: {e}"))?;
        let measurements = case
            .accounting
            .measurements()
            .into_iter()
            .map(|m| Measurement {
                name: m.name,
                unit: m.unit.to_string(),
                value: m.value,
                limits: None,
            })
            .collect();
        let relative = |p: &Path| p.strip_prefix(&self.out).unwrap_or(p).to_path_buf();
        let mut artifacts = vec![Artifact {
            kind: ArtifactKind::Pcap,
            path: relative(&case.pcap),
        }];
        // Without its series file the case keeps its measurements and pcap;
        // only the charts are missing, so this is a warning.
        match rig_report::series::write_case(&self.out, id, &case_series(&case.accounting)) {
            Ok(path) => artifacts.push(Artifact {
                kind: ArtifactKind::Other,
                path,
            }),
            Err(e) => eprintln!("warning: case {id}: {e}"),
        }
        if case.accounting.dropped.iter().sum::<u64>() > 0 && case.dropped_pcap.exists() {
            artifacts.push(Artifact {
                kind: ArtifactKind::Pcap,
                path: relative(&case.dropped_pcap),
            });
        }
        Ok((measurements, artifacts))
    }
}
