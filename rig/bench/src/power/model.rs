//! The energy model behind the simulated INA219: a CPU baseline plus a radio
//! whose state follows a timeline of frames.
//!
//! The model is piecewise constant. A frame makes the radio active (transmit or
//! receive current) for its air time, `per_frame_s + bytes * 8 / rate`. After
//! the last activity the radio walks down its *tail*: a list of
//! `(duration, current)` stages (for LTE: RRC connected with connected-mode DRX,
//! then RRC idle with paging until the PSM active timer expires), and finally
//! rests at its floor (PSM for cellular, idle for Ethernet/Wi-Fi). New activity
//! during a tail cuts it short and the tail starts again after it.
//!
//! Because the current is piecewise constant, [`PowerModel::charge_mas`] is an
//! exact integral, which is what the tests compare the sampled energy with.
//! Profiles are data ([`PowerProfile`]); their numbers and sources are in
//! `rig/bench/src/power/README.md`.

use std::time::Duration;

/// Which way a frame went, seen from the DUT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Sent by the DUT (uplink).
    Tx,
    /// Received by the DUT (downlink).
    Rx,
}

/// One frame on the DUT's link, at a time since the model's start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameEvent {
    /// When the frame started.
    pub at: Duration,
    /// Its size (layer 2).
    pub bytes: usize,
    /// Its direction.
    pub direction: Direction,
    /// An IP packet; false for ARP and other link-layer frames, which a
    /// cellular radio never sends ([`PowerProfile::ip_only`]).
    pub ip: bool,
}

/// The numbers of one energy profile. Currents in mA at `supply_v`.
#[derive(Clone, Debug, PartialEq)]
pub struct PowerProfile {
    /// The profile's name (`ethernet`, `wifi`, `lte-m`, `nb-iot`).
    pub name: &'static str,
    /// Supply voltage on the measured rail (V).
    pub supply_v: f64,
    /// CPU and board baseline, always drawn (mA).
    pub baseline_ma: f64,
    /// Radio current while transmitting (mA, on top of the baseline).
    pub tx_ma: f64,
    /// Radio current while receiving (mA).
    pub rx_ma: f64,
    /// Uplink rate (bit/s).
    pub tx_rate_bps: f64,
    /// Downlink rate (bit/s).
    pub rx_rate_bps: f64,
    /// Fixed active time per frame (scheduling, preamble, acknowledgement) (s).
    pub per_frame_s: f64,
    /// The tail after the last activity: `(duration s, current mA)` stages.
    pub tail: Vec<(f64, f64)>,
    /// The radio's resting current once the tail is over (mA).
    pub floor_ma: f64,
    /// The radio carries IP packets only (a cellular modem: no ARP or other
    /// link-layer frames on the air), so the model ignores the bridge's
    /// other frames.
    pub ip_only: bool,
}

/// Profile names [`PowerProfile::by_name`] knows.
pub const PROFILES: &[&str] = &["ethernet", "wifi", "lte-m", "nb-iot"];

impl PowerProfile {
    /// A built-in profile by name, or `None`.
    pub fn by_name(name: &str) -> Option<Self> {
        Some(match name {
            // A Raspberry Pi 4 B on wired Ethernet, measured on its 5 V input.
            "ethernet" => PowerProfile {
                name: "ethernet",
                supply_v: 5.1,
                baseline_ma: 540.0,
                tx_ma: 60.0,
                rx_ma: 40.0,
                tx_rate_bps: 100e6,
                rx_rate_bps: 100e6,
                per_frame_s: 0.000_1,
                tail: vec![],
                floor_ma: 0.0,
                ip_only: false,
            },
            // The same board on Wi-Fi (CYW43455) in power-save mode.
            "wifi" => PowerProfile {
                name: "wifi",
                supply_v: 5.1,
                baseline_ma: 540.0,
                tx_ma: 200.0,
                rx_ma: 100.0,
                tx_rate_bps: 20e6,
                rx_rate_bps: 20e6,
                per_frame_s: 0.001,
                tail: vec![(0.24, 60.0)],
                floor_ma: 5.0,
                ip_only: false,
            },
            // An nRF9160-class LTE-M module on 3.7 V, with PSM.
            "lte-m" => PowerProfile {
                name: "lte-m",
                supply_v: 3.7,
                baseline_ma: 0.5,
                tx_ma: 120.0,
                rx_ma: 45.0,
                tx_rate_bps: 300e3,
                rx_rate_bps: 300e3,
                per_frame_s: 0.01,
                tail: vec![(10.0, 6.0), (20.0, 0.6)],
                floor_ma: 0.0027,
                ip_only: true,
            },
            // The same module on NB-IoT, with PSM.
            "nb-iot" => PowerProfile {
                name: "nb-iot",
                supply_v: 3.7,
                baseline_ma: 0.5,
                tx_ma: 110.0,
                rx_ma: 45.0,
                tx_rate_bps: 25e3,
                rx_rate_bps: 25e3,
                per_frame_s: 0.05,
                tail: vec![(20.0, 4.0), (20.0, 0.5)],
                floor_ma: 0.0027,
                ip_only: true,
            },
            _ => return None,
        })
    }

    /// How long the radio stays above its floor after its last activity:
    /// the tail's stages end to end (s).
    pub fn tail_s(&self) -> f64 {
        self.tail.iter().map(|&(s, _)| s).sum()
    }

    /// The air time of a frame (s).
    pub fn air_time_s(&self, bytes: usize, direction: Direction) -> f64 {
        let rate = match direction {
            Direction::Tx => self.tx_rate_bps,
            Direction::Rx => self.rx_rate_bps,
        };
        self.per_frame_s + bytes as f64 * 8.0 / rate
    }
}

/// A constant-current stretch of the timeline: `[start, end)` in s, radio mA.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Segment {
    start: f64,
    end: f64,
    radio_ma: f64,
}

/// A profile plus the frames seen so far: the current at any time, and exact
/// charge over any window.
#[derive(Clone, Debug)]
pub struct PowerModel {
    profile: PowerProfile,
    /// Active intervals `(start, end, mA)`, sorted and non-overlapping.
    active: Vec<(f64, f64, f64)>,
    /// Derived timeline; rebuilt when frames are added.
    segments: Vec<Segment>,
    dirty: bool,
}

impl PowerModel {
    /// A model with no frames yet (the radio at its floor).
    pub fn new(profile: PowerProfile) -> Self {
        Self {
            profile,
            active: Vec::new(),
            segments: Vec::new(),
            dirty: true,
        }
    }

    /// The profile.
    pub fn profile(&self) -> &PowerProfile {
        &self.profile
    }

    /// Adds a frame. Frames may come in any order; overlapping air times
    /// merge (the higher current wins for the overlap's whole interval).
    pub fn add_frame(&mut self, frame: FrameEvent) {
        if self.profile.ip_only && !frame.ip {
            return;
        }
        let start = frame.at.as_secs_f64();
        let end = start + self.profile.air_time_s(frame.bytes, frame.direction);
        let ma = match frame.direction {
            Direction::Tx => self.profile.tx_ma,
            Direction::Rx => self.profile.rx_ma,
        };
        self.active.push((start, end, ma));
        self.dirty = true;
    }

    fn rebuild(&mut self) {
        if !self.dirty {
            return;
        }
        self.active.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut merged: Vec<(f64, f64, f64)> = Vec::new();
        for &(s, e, ma) in &self.active {
            match merged.last_mut() {
                Some(last) if s <= last.1 => {
                    last.1 = last.1.max(e);
                    last.2 = last.2.max(ma);
                }
                _ => merged.push((s, e, ma)),
            }
        }
        let mut segs = Vec::new();
        let mut cursor = 0.0_f64;
        let mut after_activity = false;
        for &(s, e, ma) in &merged {
            if s > cursor {
                self.fill_rest(&mut segs, cursor, s, after_activity);
            }
            segs.push(Segment {
                start: s.max(cursor),
                end: e,
                radio_ma: ma,
            });
            cursor = e;
            after_activity = true;
        }
        self.fill_rest(&mut segs, cursor, f64::INFINITY, after_activity);
        self.segments = segs;
        self.dirty = false;
    }

    /// Fills `[from, to)` with the tail (if activity preceded) then the floor.
    fn fill_rest(&self, segs: &mut Vec<Segment>, from: f64, to: f64, after_activity: bool) {
        let mut t = from;
        if after_activity {
            for &(d, ma) in &self.profile.tail {
                if t >= to {
                    return;
                }
                let end = (t + d).min(to);
                segs.push(Segment {
                    start: t,
                    end,
                    radio_ma: ma,
                });
                t = end;
            }
        }
        if t < to {
            segs.push(Segment {
                start: t,
                end: to,
                radio_ma: self.profile.floor_ma,
            });
        }
    }

    /// Forgets frames whose air time and tail were over before `t`, so a
    /// live model fed for hours stays small. Only queries of times at or
    /// after `t` keep their exact values.
    pub fn forget_before(&mut self, t: Duration) {
        let cutoff = t.as_secs_f64() - self.profile.tail_s();
        let before = self.active.len();
        self.active.retain(|&(_, end, _)| end >= cutoff);
        if self.active.len() != before {
            self.dirty = true;
        }
    }

    /// How many frames the model holds (after [`Self::forget_before`]).
    pub fn frames(&self) -> usize {
        self.active.len()
    }

    /// Switches to another profile: the frames so far are forgotten and the
    /// radio rests at the new profile's floor until the next frame.
    pub fn set_profile(&mut self, profile: PowerProfile) {
        self.profile = profile;
        self.active.clear();
        self.dirty = true;
    }

    /// The current drawn at `t` (mA), baseline included.
    pub fn current_ma(&mut self, t: Duration) -> f64 {
        self.rebuild();
        let t = t.as_secs_f64();
        let i = self.segments.partition_point(|s| s.end <= t);
        let radio = self
            .segments
            .get(i)
            .map_or(self.profile.floor_ma, |s| s.radio_ma);
        self.profile.baseline_ma + radio
    }

    /// The charge drawn over `[from, to)` in mA·s, exact for this model.
    pub fn charge_mas(&mut self, from: Duration, to: Duration) -> f64 {
        self.rebuild();
        let (a, b) = (from.as_secs_f64(), to.as_secs_f64());
        if b <= a {
            return 0.0;
        }
        let mut q = self.profile.baseline_ma * (b - a);
        let first = self.segments.partition_point(|s| s.end <= a);
        for s in &self.segments[first..] {
            if s.start >= b {
                break;
            }
            let overlap = s.end.min(b) - s.start.max(a);
            if overlap > 0.0 {
                q += s.radio_ma * overlap;
            }
        }
        q
    }

    /// The energy delivered to the load over `[from, to)` in mJ when the
    /// current flows through a shunt of `shunt_ohms` first: `∫ I·(V − I·R) dt`,
    /// which is what a high-side INA219 reports (its bus voltage is the load side).
    pub fn load_energy_mj(&mut self, from: Duration, to: Duration, shunt_ohms: f64) -> f64 {
        self.rebuild();
        let (a, b) = (from.as_secs_f64(), to.as_secs_f64());
        let v = self.profile.supply_v;
        let base = self.profile.baseline_ma;
        let mut e = 0.0;
        let first = self.segments.partition_point(|s| s.end <= a);
        for s in &self.segments[first..] {
            if s.start >= b {
                break;
            }
            let overlap = s.end.min(b) - s.start.max(a);
            if overlap > 0.0 {
                let i_a = (base + s.radio_ma) / 1000.0;
                e += i_a * (v - i_a * shunt_ohms) * overlap * 1000.0;
            }
        }
        e
    }

    /// The mean current over `[from, to)` (mA); the current at `from` for an
    /// empty window.
    pub fn mean_current_ma(&mut self, from: Duration, to: Duration) -> f64 {
        let d = to.saturating_sub(from).as_secs_f64();
        if d <= 0.0 {
            return self.current_ma(from);
        }
        self.charge_mas(from, to) / d
    }

    /// The energy over `[from, to)` in mJ at the profile's supply voltage.
    pub fn energy_mj(&mut self, from: Duration, to: Duration) -> f64 {
        self.charge_mas(from, to) * self.profile.supply_v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: f64) -> Duration {
        Duration::from_secs_f64(x)
    }

    #[test]
    fn every_named_profile_exists() {
        for p in PROFILES {
            assert_eq!(PowerProfile::by_name(p).map(|p| p.name), Some(*p));
        }
        assert!(PowerProfile::by_name("5g").is_none());
    }

    #[test]
    fn idle_model_draws_baseline_plus_floor() {
        let mut m = PowerModel::new(PowerProfile::by_name("lte-m").unwrap());
        assert!((m.current_ma(s(5.0)) - (0.5 + 0.0027)).abs() < 1e-12);
        assert!((m.charge_mas(s(0.0), s(10.0)) - 10.0 * 0.5027).abs() < 1e-9);
    }

    #[test]
    fn a_frame_is_followed_by_the_tail_then_the_floor() {
        let p = PowerProfile::by_name("lte-m").unwrap();
        let air = p.air_time_s(100, Direction::Tx); // 0.01 + 800/300e3
        let mut m = PowerModel::new(p);
        m.add_frame(FrameEvent {
            at: s(1.0),
            bytes: 100,
            direction: Direction::Tx,
            ip: true,
        });
        assert!((m.current_ma(s(1.0 + air / 2.0)) - 120.5).abs() < 1e-9);
        assert!((m.current_ma(s(1.0 + air + 5.0)) - 6.5).abs() < 1e-9);
        assert!((m.current_ma(s(1.0 + air + 15.0)) - 1.1).abs() < 1e-9);
        assert!((m.current_ma(s(1.0 + air + 31.0)) - 0.5027).abs() < 1e-9);
        // Exact integral over 0..100 s.
        let expected = 0.5 * 100.0
            + 0.0027 * 1.0
            + 120.0 * air
            + 6.0 * 10.0
            + 0.6 * 20.0
            + 0.0027 * (100.0 - 1.0 - air - 30.0);
        assert!((m.charge_mas(s(0.0), s(100.0)) - expected).abs() < 1e-9);
    }

    #[test]
    fn forgetting_old_frames_keeps_recent_values_exact() {
        let mut fed = PowerModel::new(PowerProfile::by_name("lte-m").unwrap());
        for i in 0..200 {
            fed.add_frame(FrameEvent {
                at: s(f64::from(i)),
                bytes: 200,
                direction: Direction::Tx,
                ip: true,
            });
        }
        let mut full = fed.clone();
        fed.forget_before(s(150.0));
        // Tail of 30 s: frames that ended before 120 s are gone.
        assert!(fed.frames() < 90, "{}", fed.frames());
        for t in [150.0, 170.5, 199.0, 215.0, 240.0] {
            assert!((fed.current_ma(s(t)) - full.current_ma(s(t))).abs() < 1e-12);
        }
        assert!(
            (fed.charge_mas(s(150.0), s(300.0)) - full.charge_mas(s(150.0), s(300.0))).abs() < 1e-9
        );
        fed.set_profile(PowerProfile::by_name("ethernet").unwrap());
        assert_eq!(fed.frames(), 0);
        assert!((fed.current_ma(s(199.0)) - 540.0).abs() < 1e-12);
    }

    #[test]
    fn activity_during_a_tail_restarts_it() {
        let mut m = PowerModel::new(PowerProfile::by_name("wifi").unwrap());
        for at in [1.0, 1.1] {
            m.add_frame(FrameEvent {
                at: s(at),
                bytes: 0,
                direction: Direction::Rx,
                ip: true,
            });
        }
        // The second frame ends at 1.101; its tail lasts until 1.341.
        assert!((m.current_ma(s(1.3)) - 600.0).abs() < 1e-9);
        assert!((m.current_ma(s(1.35)) - 545.0).abs() < 1e-9);
    }
}
