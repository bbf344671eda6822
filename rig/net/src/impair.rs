//! The impairment core: a pure function of (frames, timestamps, seed).
//!
//! One [`Pipeline`] serves one direction of the link. It is sans-IO, in the
//! quinn/smoltcp vocabulary:
//!
//! 1. [`Pipeline::handle_frame`] with the frame and the time it arrived;
//! 2. [`Pipeline::poll_transmit`] with the current time, until `None`, to
//!    get frames whose release time has come;
//! 3. [`Pipeline::poll_dropped`] until `None`, for frames that were dropped
//!    (and why), so they can go to the `*.dropped.pcap`;
//! 4. [`Pipeline::poll_at`] tells when to call `poll_transmit` next.
//!
//! Commands from a case: [`Pipeline::cut`] and [`Pipeline::restore`].
//!
//! Inside, frames flow through stages like smoltcp's phy middleware, in
//! this order: cut → loss → duplicate → rate limit (bounded queue) → delay
//! and jitter (FIFO) → reorder. Each stage is a [`Stage`]; custom stages
//! can be appended with [`Pipeline::push_stage`]. Every random stage draws
//! from its own generator, seeded from (seed, direction, stage), so the
//! same seed and the same input give the same output, and turning one
//! stage on does not change what another one decides.
//!
//! Times are [`Duration`]s since the bridge started.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use serde::Deserialize;

use crate::error::NetError;
use crate::frame::FrameInfo;

/// A small, fast, seedable generator (SplitMix64). Its output for a seed is
/// fixed forever, which is the point: results do not change when a
/// dependency is upgraded.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform value in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }
}

fn stage_seed(seed: u64, dir: u64, stage: u64) -> u64 {
    let mut g = SplitMix64::new(seed ^ (dir << 56) ^ (stage << 48));
    g.next_u64()
}

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The link was cut.
    Cut,
    /// Random or burst loss.
    Loss,
    /// The rate limiter's queue was full.
    QueueFull,
    /// A reply to a NAT port that is no longer mapped.
    NatUnmapped,
}

/// A frame inside the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The Ethernet frame.
    pub data: Vec<u8>,
    /// When it arrived at the bridge.
    pub arrived: Duration,
    /// When it may leave (stages push this later).
    pub due: Duration,
    /// Arrival order (duplicates get a fresh number).
    pub seq: u64,
}

/// What a stage did with a packet.
#[derive(Debug)]
pub enum Step {
    /// Pass it on to the next stage.
    Pass(Packet),
    /// Drop it.
    Drop(Packet, DropReason),
}

/// One impairment, composable with the others.
pub trait Stage: Send + std::fmt::Debug {
    /// Handles one packet, pushing zero or more results into `out`.
    fn process(&mut self, pkt: Packet, out: &mut Vec<Step>);
}

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v.max(0.0) / 1000.0)
}

/// Loss models.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(tag = "model", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LossModel {
    /// Each frame is lost independently with `probability` (0..=1).
    Random {
        /// Loss probability.
        probability: f64,
    },
    /// Gilbert-Elliott two-state bursts: per frame, the state moves
    /// Good→Bad with `p_enter_bad` and Bad→Good with `p_leave_bad`; a frame
    /// is lost with `loss_in_good` or `loss_in_bad` depending on the state.
    /// Long-run loss = (π_G·loss_in_good + π_B·loss_in_bad) with
    /// π_B = p_enter_bad / (p_enter_bad + p_leave_bad).
    GilbertElliott {
        /// P(Good → Bad) per frame.
        p_enter_bad: f64,
        /// P(Bad → Good) per frame.
        p_leave_bad: f64,
        /// Loss probability in Good.
        #[serde(default)]
        loss_in_good: f64,
        /// Loss probability in Bad.
        #[serde(default = "one")]
        loss_in_bad: f64,
    },
}

fn one() -> f64 {
    1.0
}

impl LossModel {
    /// The long-run loss probability.
    pub fn mean_loss(&self) -> f64 {
        match *self {
            Self::Random { probability } => probability,
            Self::GilbertElliott {
                p_enter_bad,
                p_leave_bad,
                loss_in_good,
                loss_in_bad,
            } => {
                let total = p_enter_bad + p_leave_bad;
                if total <= 0.0 {
                    return loss_in_good;
                }
                let pb = p_enter_bad / total;
                (1.0 - pb) * loss_in_good + pb * loss_in_bad
            }
        }
    }
}

/// Which frames count towards a byte-triggered cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FlowMatch {
    /// Match a UDP/TCP port (source or destination); any if absent.
    pub port: Option<u16>,
    /// Match `udp` or `tcp` only.
    #[serde(default)]
    pub tcp_only: bool,
    /// Match UDP only.
    #[serde(default)]
    pub udp_only: bool,
}

impl FlowMatch {
    fn matches(&self, info: &FrameInfo) -> bool {
        let Some(flow) = info.flow else {
            return false;
        };
        if self.tcp_only && flow.transport != crate::frame::Transport::Tcp {
            return false;
        }
        if self.udp_only && flow.transport != crate::frame::Transport::Udp {
            return false;
        }
        self.port
            .is_none_or(|p| flow.src_port == p || flow.dst_port == p)
    }
}

/// When a configured cut starts.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(tag = "trigger", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CutTrigger {
    /// At `at_ms` after the bridge started.
    At {
        /// Start time in ms.
        at_ms: f64,
    },
    /// When the matching flow's transport payload would pass `bytes`: frames
    /// pass while the running total stays ≤ `bytes`; the first frame that
    /// would exceed it is dropped and the cut begins with it.
    AfterBytes {
        /// Payload bytes allowed through.
        bytes: u64,
        /// Which frames count.
        #[serde(default, rename = "match")]
        flow: FlowMatch,
    },
}

/// A cut configured ahead of time (cases can also cut by hand).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CutSpec {
    /// When it starts.
    #[serde(flatten)]
    pub trigger: CutTrigger,
    /// How long it lasts; until [`Pipeline::restore`] if absent.
    pub duration_ms: Option<f64>,
}

/// Impairments of one direction. All default to "none".
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DirectionConfig {
    /// Loss model.
    pub loss: Option<LossModel>,
    /// One-way delay in ms.
    #[serde(default)]
    pub delay_ms: f64,
    /// Jitter in ms: each frame's delay is uniform in delay ± jitter
    /// (never below zero); order is kept (FIFO), as on a real link.
    #[serde(default)]
    pub jitter_ms: f64,
    /// Rate limit in kbit/s of Ethernet frame bytes; none if absent.
    pub rate_kbit: Option<f64>,
    /// Queue bound in bytes in front of the rate limiter (default 64 KiB).
    pub queue_bytes: Option<usize>,
    /// Probability that a frame is sent twice.
    #[serde(default)]
    pub duplicate: f64,
    /// Probability that a frame is held back by `reorder_ms` so that later
    /// frames overtake it.
    #[serde(default)]
    pub reorder: f64,
    /// Extra hold for reordered frames, in ms (default 10).
    pub reorder_ms: Option<f64>,
    /// A cut configured ahead of time.
    pub cut: Option<CutSpec>,
}

impl DirectionConfig {
    /// Checks every field; the error names the field and value.
    pub fn validate(&self, source_name: &str) -> Result<(), NetError> {
        let bad = |reason: String| NetError::BadConfig {
            source_name: source_name.to_owned(),
            reason,
        };
        let prob = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(bad(format!("{name} = {v}: must be a probability in 0..=1")))
            }
        };
        let nonneg = |name: &str, v: f64| {
            if v >= 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(bad(format!("{name} = {v}: must be ≥ 0")))
            }
        };
        match self.loss {
            Some(LossModel::Random { probability }) => prob("loss.probability", probability)?,
            Some(LossModel::GilbertElliott {
                p_enter_bad,
                p_leave_bad,
                loss_in_good,
                loss_in_bad,
            }) => {
                prob("loss.p_enter_bad", p_enter_bad)?;
                prob("loss.p_leave_bad", p_leave_bad)?;
                prob("loss.loss_in_good", loss_in_good)?;
                prob("loss.loss_in_bad", loss_in_bad)?;
            }
            None => {}
        }
        nonneg("delay_ms", self.delay_ms)?;
        nonneg("jitter_ms", self.jitter_ms)?;
        prob("duplicate", self.duplicate)?;
        prob("reorder", self.reorder)?;
        if let Some(r) = self.reorder_ms {
            nonneg("reorder_ms", r)?;
        }
        if let Some(r) = self.rate_kbit
            && !(r > 0.0 && r.is_finite())
        {
            return Err(bad(format!("rate_kbit = {r}: must be > 0")));
        }
        if self.queue_bytes == Some(0) {
            return Err(bad("queue_bytes = 0: must be ≥ 1".into()));
        }
        if let Some(c) = &self.cut {
            if let Some(d) = c.duration_ms {
                nonneg("cut.duration_ms", d)?;
            }
            if let CutTrigger::At { at_ms } = c.trigger {
                nonneg("cut.at_ms", at_ms)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct LossStage {
    model: LossModel,
    bad: bool,
    rng: SplitMix64,
}

impl Stage for LossStage {
    fn process(&mut self, pkt: Packet, out: &mut Vec<Step>) {
        let lost = match self.model {
            LossModel::Random { probability } => self.rng.chance(probability),
            LossModel::GilbertElliott {
                p_enter_bad,
                p_leave_bad,
                loss_in_good,
                loss_in_bad,
            } => {
                self.bad = if self.bad {
                    !self.rng.chance(p_leave_bad)
                } else {
                    self.rng.chance(p_enter_bad)
                };
                self.rng
                    .chance(if self.bad { loss_in_bad } else { loss_in_good })
            }
        };
        out.push(if lost {
            Step::Drop(pkt, DropReason::Loss)
        } else {
            Step::Pass(pkt)
        });
    }
}

#[derive(Debug)]
struct DuplicateStage {
    p: f64,
    rng: SplitMix64,
    next_seq: u64,
}

impl Stage for DuplicateStage {
    fn process(&mut self, pkt: Packet, out: &mut Vec<Step>) {
        if self.rng.chance(self.p) {
            let mut copy = pkt.clone();
            // Duplicates sort after their original (high bit marks copies).
            copy.seq = (1 << 63) | self.next_seq;
            self.next_seq += 1;
            out.push(Step::Pass(pkt));
            out.push(Step::Pass(copy));
        } else {
            out.push(Step::Pass(pkt));
        }
    }
}

/// A token-free rate limiter: frames are serialised back to back at
/// `bytes_per_sec` behind a queue of at most `queue_bytes`; a frame that
/// does not fit is dropped (tail drop).
#[derive(Debug)]
struct RateStage {
    bytes_per_sec: f64,
    queue_bytes: usize,
    link_free: Duration,
    in_queue: VecDeque<(Duration, usize)>,
    queued: usize,
}

impl Stage for RateStage {
    fn process(&mut self, mut pkt: Packet, out: &mut Vec<Step>) {
        let t = pkt.due;
        // Frames whose serialisation has started by `t` have left the queue.
        while let Some(&(start, len)) = self.in_queue.front() {
            if start <= t {
                self.in_queue.pop_front();
                self.queued -= len;
            } else {
                break;
            }
        }
        let len = pkt.data.len();
        if self.queued + len > self.queue_bytes {
            out.push(Step::Drop(pkt, DropReason::QueueFull));
            return;
        }
        let start = self.link_free.max(t);
        let done = start + Duration::from_secs_f64(len as f64 / self.bytes_per_sec);
        self.link_free = done;
        if start > t {
            self.in_queue.push_back((start, len));
            self.queued += len;
        }
        pkt.due = done;
        out.push(Step::Pass(pkt));
    }
}

#[derive(Debug)]
struct DelayStage {
    base: Duration,
    jitter: Duration,
    rng: SplitMix64,
    last_due: Duration,
}

impl Stage for DelayStage {
    fn process(&mut self, mut pkt: Packet, out: &mut Vec<Step>) {
        let mut d = self.base.as_secs_f64();
        if !self.jitter.is_zero() {
            d += (self.rng.unit() * 2.0 - 1.0) * self.jitter.as_secs_f64();
        }
        let due = pkt.due + Duration::from_secs_f64(d.max(0.0));
        pkt.due = due.max(self.last_due);
        self.last_due = pkt.due;
        out.push(Step::Pass(pkt));
    }
}

#[derive(Debug)]
struct ReorderStage {
    p: f64,
    hold: Duration,
    rng: SplitMix64,
}

impl Stage for ReorderStage {
    fn process(&mut self, mut pkt: Packet, out: &mut Vec<Step>) {
        if self.rng.chance(self.p) {
            pkt.due += self.hold;
        }
        out.push(Step::Pass(pkt));
    }
}

/// Events a pipeline reports about its cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEvent {
    /// A cut began at this time (bridge clock).
    CutStarted(Duration),
    /// A cut ended at this time.
    CutEnded(Duration),
}

#[derive(Debug, Default)]
struct CutState {
    spec: Option<CutSpec>,
    spec_fired: bool,
    flow_bytes: u64,
    /// Active cut: (start, end or None for "until restored").
    active: Option<(Duration, Option<Duration>)>,
    events: VecDeque<LinkEvent>,
}

impl CutState {
    fn start(&mut self, now: Duration, dur: Option<Duration>) {
        if self.active.is_none() {
            self.events.push_back(LinkEvent::CutStarted(now));
        }
        self.active = Some((now, dur.map(|d| now + d)));
    }

    /// Updates the state for a frame arriving at `now`; true if it is cut.
    fn cuts(&mut self, now: Duration, info: &FrameInfo) -> bool {
        if let Some((_, Some(end))) = self.active
            && now >= end
        {
            self.active = None;
            self.events.push_back(LinkEvent::CutEnded(end));
        }
        if let Some(spec) = self.spec
            && !self.spec_fired
        {
            let dur = spec.duration_ms.map(ms);
            match spec.trigger {
                CutTrigger::At { at_ms } => {
                    let at = ms(at_ms);
                    if now >= at {
                        self.spec_fired = true;
                        let end = dur.map(|d| at + d);
                        if end.is_none_or(|e| now < e) {
                            self.events.push_back(LinkEvent::CutStarted(at));
                            self.active = Some((at, end));
                        }
                    }
                }
                CutTrigger::AfterBytes { bytes, flow } => {
                    if flow.matches(info) {
                        let total = self.flow_bytes + info.payload_len as u64;
                        if total > bytes {
                            self.spec_fired = true;
                            self.start(now, dur);
                        } else {
                            self.flow_bytes = total;
                        }
                    }
                }
            }
        }
        self.active.is_some()
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Scheduled {
    due: Duration,
    seq: u64,
    data: Vec<u8>,
    arrived: Duration,
}

/// One direction of the link: cut and stages, and the release queue.
#[derive(Debug)]
pub struct Pipeline {
    cut: CutState,
    stages: Vec<Box<dyn Stage>>,
    ready: BinaryHeap<Reverse<Scheduled>>,
    dropped: VecDeque<(Packet, DropReason)>,
    next_seq: u64,
    scratch_a: Vec<Step>,
    scratch_b: Vec<Step>,
}

impl Pipeline {
    /// A pipeline with no impairment at all (frames leave when they arrive).
    pub fn transparent() -> Self {
        Self {
            cut: CutState::default(),
            stages: Vec::new(),
            ready: BinaryHeap::new(),
            dropped: VecDeque::new(),
            next_seq: 0,
            scratch_a: Vec::new(),
            scratch_b: Vec::new(),
        }
    }

    /// Builds the pipeline for `cfg`. `direction` (0 = up, 1 = down) is
    /// mixed into the seed so the two directions differ.
    pub fn new(cfg: &DirectionConfig, seed: u64, direction: u8) -> Result<Self, NetError> {
        cfg.validate("direction config")?;
        let d = u64::from(direction);
        let mut p = Self::transparent();
        p.cut.spec = cfg.cut;
        if let Some(model) = cfg.loss {
            p.push_stage(Box::new(LossStage {
                model,
                bad: false,
                rng: SplitMix64::new(stage_seed(seed, d, 1)),
            }));
        }
        if cfg.duplicate > 0.0 {
            p.push_stage(Box::new(DuplicateStage {
                p: cfg.duplicate,
                rng: SplitMix64::new(stage_seed(seed, d, 2)),
                next_seq: 0,
            }));
        }
        if let Some(kbit) = cfg.rate_kbit {
            p.push_stage(Box::new(RateStage {
                bytes_per_sec: kbit * 1000.0 / 8.0,
                queue_bytes: cfg.queue_bytes.unwrap_or(64 * 1024),
                link_free: Duration::ZERO,
                in_queue: VecDeque::new(),
                queued: 0,
            }));
        }
        if cfg.delay_ms > 0.0 || cfg.jitter_ms > 0.0 {
            p.push_stage(Box::new(DelayStage {
                base: ms(cfg.delay_ms),
                jitter: ms(cfg.jitter_ms),
                rng: SplitMix64::new(stage_seed(seed, d, 3)),
                last_due: Duration::ZERO,
            }));
        }
        if cfg.reorder > 0.0 {
            p.push_stage(Box::new(ReorderStage {
                p: cfg.reorder,
                hold: ms(cfg.reorder_ms.unwrap_or(10.0)),
                rng: SplitMix64::new(stage_seed(seed, d, 4)),
            }));
        }
        Ok(p)
    }

    /// Appends a custom stage after the built-in ones.
    pub fn push_stage(&mut self, stage: Box<dyn Stage>) {
        self.stages.push(stage);
    }

    /// Cuts the link from `now`, for `duration` or until [`Self::restore`].
    pub fn cut(&mut self, now: Duration, duration: Option<Duration>) {
        self.cut.start(now, duration);
    }

    /// Ends any cut now.
    pub fn restore(&mut self, now: Duration) {
        if self.cut.active.take().is_some() {
            self.cut.events.push_back(LinkEvent::CutEnded(now));
        }
    }

    /// True while the link is cut (as of the last frame or command).
    pub fn is_cut(&self) -> bool {
        self.cut.active.is_some()
    }

    /// Feeds one frame that arrived at `now`.
    pub fn handle_frame(&mut self, now: Duration, data: Vec<u8>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let pkt = Packet {
            data,
            arrived: now,
            due: now,
            seq,
        };
        let info = FrameInfo::parse(&pkt.data);
        if self.cut.cuts(now, &info) {
            self.dropped.push_back((pkt, DropReason::Cut));
            return;
        }
        let mut cur = std::mem::take(&mut self.scratch_a);
        let mut next = std::mem::take(&mut self.scratch_b);
        cur.push(Step::Pass(pkt));
        for stage in &mut self.stages {
            for step in cur.drain(..) {
                match step {
                    Step::Pass(p) => stage.process(p, &mut next),
                    Step::Drop(p, r) => self.dropped.push_back((p, r)),
                }
            }
            std::mem::swap(&mut cur, &mut next);
        }
        for step in cur.drain(..) {
            match step {
                Step::Pass(p) => self.ready.push(Reverse(Scheduled {
                    due: p.due,
                    seq: p.seq,
                    data: p.data,
                    arrived: p.arrived,
                })),
                Step::Drop(p, r) => self.dropped.push_back((p, r)),
            }
        }
        self.scratch_a = cur;
        self.scratch_b = next;
    }

    /// The next frame whose release time is ≤ `now`, in release order.
    pub fn poll_transmit(&mut self, now: Duration) -> Option<Packet> {
        if self.ready.peek().is_some_and(|Reverse(s)| s.due <= now) {
            let Reverse(s) = self.ready.pop()?;
            return Some(Packet {
                data: s.data,
                arrived: s.arrived,
                due: s.due,
                seq: s.seq,
            });
        }
        None
    }

    /// The next dropped frame and the reason.
    pub fn poll_dropped(&mut self) -> Option<(Packet, DropReason)> {
        self.dropped.pop_front()
    }

    /// The next cut event.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.cut.events.pop_front()
    }

    /// When the next frame is due, if any is waiting.
    pub fn poll_at(&self) -> Option<Duration> {
        self.ready.peek().map(|Reverse(s)| s.due)
    }

    /// Frames waiting for their release time.
    pub fn queued(&self) -> usize {
        self.ready.len()
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn frame(n: usize) -> Vec<u8> {
        let mut f = crate::frame::test::udp_frame();
        f.resize(n.max(46), 0);
        f
    }

    type Outcome = (Vec<(u64, Duration, Duration)>, Vec<(u64, DropReason)>);

    /// Runs `n` frames spaced `gap` apart through a pipeline; returns the
    /// released (seq, arrived, due) and dropped seqs.
    fn run(cfg: &DirectionConfig, seed: u64, n: u64, gap: Duration, len: usize) -> Outcome {
        let mut p = Pipeline::new(cfg, seed, 0).unwrap();
        let mut out = Vec::new();
        let mut drops = Vec::new();
        for i in 0..n {
            let now = gap * i as u32;
            p.handle_frame(now, frame(len));
            while let Some(x) = p.poll_transmit(now) {
                out.push((x.seq, x.arrived, x.due));
            }
            while let Some((x, r)) = p.poll_dropped() {
                drops.push((x.seq, r));
            }
        }
        while let Some(x) = p.poll_transmit(Duration::MAX) {
            out.push((x.seq, x.arrived, x.due));
        }
        (out, drops)
    }

    #[test]
    fn random_loss_over_100k_frames_is_within_one_percent() {
        for prob in [0.01, 0.05, 0.2, 0.5] {
            let cfg = DirectionConfig {
                loss: Some(LossModel::Random { probability: prob }),
                ..Default::default()
            };
            let (out, drops) = run(&cfg, 42, 100_000, Duration::from_micros(10), 60);
            assert_eq!(out.len() + drops.len(), 100_000);
            let rate = drops.len() as f64 / 100_000.0;
            assert!((rate - prob).abs() <= 0.01, "p={prob} measured {rate}");
        }
    }

    #[test]
    fn gilbert_elliott_loss_matches_its_stationary_rate_and_is_bursty() {
        let model = LossModel::GilbertElliott {
            p_enter_bad: 0.01,
            p_leave_bad: 0.2,
            loss_in_good: 0.001,
            loss_in_bad: 0.8,
        };
        let cfg = DirectionConfig {
            loss: Some(model),
            ..Default::default()
        };
        let (_, drops) = run(&cfg, 7, 100_000, Duration::from_micros(10), 60);
        let rate = drops.len() as f64 / 100_000.0;
        assert!((rate - model.mean_loss()).abs() <= 0.01, "{rate}");
        // Bursty: consecutive losses are far more common than under
        // independent loss at the same rate.
        let consecutive = drops.windows(2).filter(|w| w[1].0 == w[0].0 + 1).count() as f64;
        let expected_indep = drops.len() as f64 * rate;
        assert!(
            consecutive > 5.0 * expected_indep,
            "{consecutive} vs {expected_indep}"
        );
    }

    #[test]
    fn same_seed_drops_the_same_frames_and_other_seeds_differ() {
        let cfg = DirectionConfig {
            loss: Some(LossModel::Random { probability: 0.1 }),
            duplicate: 0.05,
            reorder: 0.05,
            delay_ms: 5.0,
            jitter_ms: 2.0,
            ..Default::default()
        };
        let a = run(&cfg, 1234, 20_000, Duration::from_micros(100), 100);
        let b = run(&cfg, 1234, 20_000, Duration::from_micros(100), 100);
        let c = run(&cfg, 1235, 20_000, Duration::from_micros(100), 100);
        assert_eq!(a, b);
        assert_ne!(a.1, c.1);
    }

    #[test]
    fn delay_is_exact_and_jitter_stays_in_bounds_in_order() {
        let cfg = DirectionConfig {
            delay_ms: 20.0,
            ..Default::default()
        };
        let (out, _) = run(&cfg, 0, 1000, Duration::from_millis(1), 100);
        for (_, a, d) in &out {
            let delay = (*d - *a).as_secs_f64() * 1000.0;
            assert!((delay - 20.0).abs() < 1.0, "{delay}");
        }
        let cfg = DirectionConfig {
            delay_ms: 20.0,
            jitter_ms: 5.0,
            ..Default::default()
        };
        let (out, _) = run(&cfg, 3, 10_000, Duration::from_millis(5), 100);
        let mut sum = 0.0;
        for w in out.windows(2) {
            assert!(w[1].2 >= w[0].2, "FIFO order kept");
            assert!(w[1].0 > w[0].0);
        }
        for (_, a, d) in &out {
            let delay = (*d - *a).as_secs_f64() * 1000.0;
            assert!((15.0 - 1e-6..=25.0 + 1e-6).contains(&delay), "{delay}");
            sum += delay;
        }
        let mean = sum / out.len() as f64;
        assert!((mean - 20.0).abs() < 1.0, "mean {mean}");
    }

    #[test]
    fn rate_limit_delivers_within_two_percent_and_bounds_the_queue() {
        // Offer 2 Mbit/s of 1514-byte frames to a 1 Mbit/s link for 10 s.
        let cfg = DirectionConfig {
            rate_kbit: Some(1000.0),
            queue_bytes: Some(30_000),
            ..Default::default()
        };
        let gap = Duration::from_secs_f64(1514.0 * 8.0 / 2_000_000.0);
        let n = (10.0 / gap.as_secs_f64()) as u64;
        let (out, drops) = run(&cfg, 0, n, gap, 1514);
        assert!(drops.iter().all(|d| d.1 == DropReason::QueueFull));
        assert!(!drops.is_empty());
        let first = out.first().unwrap().2;
        let last = out.last().unwrap().2;
        let bits = (out.len() - 1) as f64 * 1514.0 * 8.0;
        let rate = bits / (last - first).as_secs_f64();
        assert!((rate - 1_000_000.0).abs() / 1_000_000.0 < 0.02, "{rate}");
        // Queueing delay never exceeds queue/rate (+ one frame).
        let max_wait = out.iter().map(|(_, a, d)| *d - *a).max().unwrap();
        assert!(max_wait.as_secs_f64() <= (30_000.0 + 1514.0) * 8.0 / 1e6 + 1e-6);
    }

    #[test]
    fn cut_after_bytes_drops_exactly_from_the_trigger_point() {
        let cfg = DirectionConfig {
            cut: Some(CutSpec {
                trigger: CutTrigger::AfterBytes {
                    bytes: 1000,
                    flow: FlowMatch {
                        port: Some(5683),
                        ..Default::default()
                    },
                },
                duration_ms: Some(50.0),
            }),
            ..Default::default()
        };
        // Each frame of 146 bytes carries 146 - 42 = 104 payload bytes.
        let mut p = Pipeline::new(&cfg, 0, 0).unwrap();
        let mut passed = Vec::new();
        let mut dropped = Vec::new();
        for i in 0..100u32 {
            let now = Duration::from_millis(u64::from(i));
            let mut f = frame(146);
            f[16..18].copy_from_slice(&132u16.to_be_bytes());
            f[38..40].copy_from_slice(&112u16.to_be_bytes());
            p.handle_frame(now, f);
            while let Some(x) = p.poll_transmit(now) {
                passed.push(x.seq);
            }
            while let Some((x, r)) = p.poll_dropped() {
                assert_eq!(r, DropReason::Cut);
                dropped.push(x.seq);
            }
        }
        // 9 frames = 936 bytes ≤ 1000; the 10th (seq 9) would make 1040.
        assert_eq!(&passed[..9], &(0..9).collect::<Vec<_>>()[..]);
        assert_eq!(
            dropped,
            (9..59).collect::<Vec<_>>(),
            "cut for 50 ms from t=9 ms"
        );
        assert_eq!(passed[9], 59);
        assert_eq!(
            p.poll_event(),
            Some(LinkEvent::CutStarted(Duration::from_millis(9)))
        );
        assert_eq!(
            p.poll_event(),
            Some(LinkEvent::CutEnded(Duration::from_millis(59)))
        );
    }

    #[test]
    fn cut_at_time_and_manual_cut_and_restore() {
        let cfg = DirectionConfig {
            cut: Some(CutSpec {
                trigger: CutTrigger::At { at_ms: 10.0 },
                duration_ms: None,
            }),
            ..Default::default()
        };
        let mut p = Pipeline::new(&cfg, 0, 0).unwrap();
        let mut seen = Vec::new();
        for i in 0..30u64 {
            let now = Duration::from_millis(i);
            if i == 20 {
                p.restore(now);
            }
            if i == 25 {
                p.cut(now, Some(Duration::from_millis(2)));
            }
            p.handle_frame(now, frame(60));
            seen.push(p.poll_transmit(now).is_some());
        }
        let expect: Vec<bool> = (0..30)
            .map(|i| !((10..20).contains(&i) || (25..27).contains(&i)))
            .collect();
        assert_eq!(seen, expect);
    }

    #[test]
    fn duplicate_and_reorder_do_what_they_say() {
        let cfg = DirectionConfig {
            duplicate: 0.1,
            ..Default::default()
        };
        let (out, _) = run(&cfg, 9, 10_000, Duration::from_micros(100), 60);
        let extra = out.len() - 10_000;
        assert!((900..=1100).contains(&extra), "{extra}");
        let cfg = DirectionConfig {
            reorder: 0.1,
            reorder_ms: Some(1.0),
            ..Default::default()
        };
        let (out, _) = run(&cfg, 9, 10_000, Duration::from_micros(100), 60);
        assert_eq!(out.len(), 10_000);
        let inversions = out.windows(2).filter(|w| w[1].0 < w[0].0).count();
        assert!(inversions > 500, "{inversions}");
    }

    #[test]
    fn bad_config_names_the_field() {
        let cfg = DirectionConfig {
            loss: Some(LossModel::Random { probability: 1.5 }),
            ..Default::default()
        };
        let e = Pipeline::new(&cfg, 0, 0).unwrap_err().to_string();
        assert!(e.contains("loss.probability = 1.5"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn every_frame_is_released_or_dropped(
            seed in proptest::num::u64::ANY,
            loss in 0.0f64..0.5,
            dup in 0.0f64..0.3,
            gaps in proptest::collection::vec(0u64..5000, 1..200),
        ) {
            let cfg = DirectionConfig {
                loss: Some(LossModel::Random { probability: loss }),
                duplicate: dup,
                rate_kbit: Some(5000.0),
                queue_bytes: Some(5000),
                delay_ms: 1.0,
                jitter_ms: 0.5,
                ..Default::default()
            };
            let mut p = Pipeline::new(&cfg, seed, 1).unwrap();
            let mut now = Duration::ZERO;
            let mut out = 0usize;
            let mut dropped = 0usize;
            for g in &gaps {
                now += Duration::from_micros(*g);
                p.handle_frame(now, frame(500));
                while p.poll_transmit(now).is_some() { out += 1; }
                while p.poll_dropped().is_some() { dropped += 1; }
            }
            while p.poll_transmit(Duration::MAX).is_some() { out += 1; }
            proptest::prop_assert!(out + dropped >= gaps.len());
            proptest::prop_assert_eq!(p.queued(), 0);
        }
    }
}
