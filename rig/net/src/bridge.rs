//! The link bridge: a thread in the bridge namespace that moves every
//! frame between the DUT's and the services' veth ends through one
//! impairment [`Pipeline`] per direction, captures what crosses (and,
//! separately, what is dropped) to pcap, and keeps accounting windows.
//!
//! It is a thin driver over the sans-IO pieces ([`Pipeline`],
//! [`NatRebinder`], [`Accounting`], [`PcapWriter`]): receive → `handle_frame`
//! → `poll_transmit` until empty → sleep (ppoll, ns resolution) until
//! `poll_at` or the next frame or command. Commands come from a [`Bridge`]
//! handle over a channel plus a wake-up socket; every command that waits for
//! an answer has a timeout.
//!
//! Where things are seen: uplink frames are NAT-rewritten as they arrive,
//! then impaired, then captured and sent; downlink frames are impaired,
//! then NAT-mapped back, then captured and sent. So a capture holds exactly
//! the frames delivered across the link, as the upstream side sees them
//! (after NAT for uplink, before reverse NAT for downlink, i.e. the
//! external port in both directions).
//!
//! A [`FrameTap`] (from [`BridgeControl::tap`]) sees the frames the DUT's
//! radio handled, for the power model: uplink frames when the DUT sent them
//! (at ingress, before impairment, so a frame the link then drops still
//! cost the DUT its transmission), downlink frames when they reach the DUT.
//! A tap is a bounded channel: when its reader lags, frames are dropped and
//! counted, never waited for.

use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use crate::account::{Accounting, Direction};
use crate::error::NetError;
use crate::frame::FrameInfo;
use crate::impair::{DirectionConfig, DropReason, LinkEvent, Packet, Pipeline};
use crate::nat::NatRebinder;
use crate::netns::{DUT_ADDR, Namespace};
use crate::pcap::PcapWriter;
use crate::sys::{self, PacketSocket};

const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_WAKE: Duration = Duration::from_millis(100);

/// What the bridge does to the link.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// Seed of every random decision.
    #[serde(default)]
    pub seed: u64,
    /// DUT → network impairments.
    #[serde(default)]
    pub up: DirectionConfig,
    /// Network → DUT impairments.
    #[serde(default)]
    pub down: DirectionConfig,
    /// When a configured cut starts in one direction, cut the other one too
    /// for the same duration (a dead radio link is dead both ways).
    #[serde(default)]
    pub cut_both_ways: bool,
    /// Rewrite the DUT's UDP source port at these times (ms since start).
    #[serde(default)]
    pub nat_rebind_at_ms: Vec<f64>,
    /// The run's capture file (its drops go to `<stem>.dropped.pcap`).
    #[serde(skip)]
    pub run_pcap: Option<PathBuf>,
}

/// The pcap path for frames dropped while capturing to `pcap`:
/// `x.pcap` → `x.dropped.pcap`.
pub fn dropped_path(pcap: &Path) -> PathBuf {
    let stem = pcap
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "capture".into());
    pcap.with_file_name(format!("{stem}.dropped.pcap"))
}

/// The result of one case's capture.
#[derive(Debug, Clone)]
pub struct CaseCapture {
    /// Frames that crossed the link.
    pub pcap: PathBuf,
    /// Frames the bridge dropped.
    pub dropped_pcap: PathBuf,
    /// Accounting of the case's window.
    pub accounting: Accounting,
    /// Cut events during the case (bridge clock).
    pub events: Vec<(Direction, LinkEvent)>,
}

/// Totals when the bridge stops.
#[derive(Debug, Clone)]
pub struct BridgeSummary {
    /// Accounting of the whole run.
    pub accounting: Accounting,
    /// Frames forwarded per direction [up, down].
    pub forwarded: [u64; 2],
    /// Frames dropped by impairment or NAT per direction.
    pub dropped: [u64; 2],
    /// Frames the kernel dropped before the bridge read them (socket
    /// buffer full), per receiving side [dut side, services side].
    pub kernel_drops: [u64; 2],
    /// Frames that could not be sent (queue full after retries).
    pub send_failures: u64,
    /// Frames longer than 1514 bytes (would mean offloads are on).
    pub oversize_frames: u64,
    /// Frames written to the run capture.
    pub captured: u64,
    /// Cut events (bridge clock).
    pub events: Vec<(Direction, LinkEvent)>,
}

/// One frame the DUT's radio handled, as a [`FrameTap`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TappedFrame {
    /// When the bridge saw it (monotonic clock).
    pub at: Instant,
    /// The same time on the bridge's clock (since the bridge started; the
    /// clock of pcap timestamps and accounting windows).
    pub since_start: Duration,
    /// Up: the DUT sent it. Down: the DUT received it.
    pub direction: Direction,
    /// Whole Ethernet frame length (B).
    pub l2_len: usize,
    /// An IPv4 or IPv6 packet (false: ARP and other link-layer frames).
    pub ip: bool,
}

/// The reading end of a frame tap: a bounded channel the bridge never
/// blocks on. Dropping it detaches the tap.
#[derive(Debug)]
pub struct FrameTap {
    rx: Receiver<TappedFrame>,
    dropped: Arc<AtomicU64>,
}

impl FrameTap {
    /// The frames waiting now, without blocking.
    pub fn try_iter(&self) -> impl Iterator<Item = TappedFrame> + '_ {
        self.rx.try_iter()
    }

    /// The next frame, waiting at most `timeout`; `None` on timeout or once
    /// the bridge has stopped.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<TappedFrame> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Frames the bridge could not hand over because this tap was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

type Reply<T> = Sender<Result<T, NetError>>;

enum Cmd {
    StartCase(PathBuf, Reply<()>),
    EndCase(Reply<CaseCapture>),
    BeginWindow(String, Reply<()>),
    EndWindow(String, Reply<Accounting>),
    Cut(Option<Direction>, Option<Duration>),
    Restore(Option<Direction>),
    Rebind,
    SetLink(Box<[Pipeline; 2]>, Reply<()>),
    AddTap(SyncSender<TappedFrame>, Arc<AtomicU64>, Reply<()>),
    Stop(Reply<BridgeSummary>),
}

/// Handle on a running bridge. Dropping it stops the bridge. It derefs to a
/// [`BridgeControl`], which is what cases share while the run owns this.
#[derive(Debug)]
pub struct Bridge {
    control: BridgeControl,
    thread: Option<JoinHandle<()>>,
}

/// A cloneable remote control of a running [`Bridge`]: captures, accounting
/// windows, cuts, NAT rebinding and link changes. Every command fails with
/// [`NetError::BridgeGone`] once the bridge has stopped; none blocks for more
/// than 10 s.
#[derive(Debug, Clone)]
pub struct BridgeControl {
    tx: Sender<Cmd>,
    wake: Arc<UnixDatagram>,
    seed: u64,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

struct Sink {
    pcap: PcapWriter,
    dropped: PcapWriter,
}

impl Sink {
    fn create(path: &Path) -> Result<Self, NetError> {
        Ok(Self {
            pcap: PcapWriter::create(path)?,
            dropped: PcapWriter::create(&dropped_path(path))?,
        })
    }
}

struct Case {
    sink: Sink,
    acc: Accounting,
    events: Vec<(Direction, LinkEvent)>,
}

struct State {
    cfg: BridgeConfig,
    t0: Instant,
    wall0: SystemTime,
    pipes: [Pipeline; 2],
    nat: Option<NatRebinder>,
    nat_next: usize,
    run_sink: Option<Sink>,
    run_acc: Accounting,
    case: Option<Case>,
    windows: HashMap<String, Accounting>,
    summary_forwarded: [u64; 2],
    summary_dropped: [u64; 2],
    send_failures: u64,
    oversize: u64,
    events: Vec<(Direction, LinkEvent)>,
    error: Option<NetError>,
    taps: Vec<(SyncSender<TappedFrame>, Arc<AtomicU64>)>,
}

fn idx(d: Direction) -> usize {
    match d {
        Direction::Up => 0,
        Direction::Down => 1,
    }
}

fn dirs(d: Option<Direction>) -> Vec<Direction> {
    match d {
        Some(d) => vec![d],
        None => vec![Direction::Up, Direction::Down],
    }
}

impl State {
    fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    fn record_err(&mut self, r: Result<(), NetError>) {
        if let Err(e) = r
            && self.error.is_none()
        {
            self.error = Some(e);
        }
    }

    /// Hands a frame to every tap; a full tap counts a drop, a closed one
    /// is detached.
    fn tap(&mut self, dir: Direction, now: Duration, bytes: &[u8]) {
        if self.taps.is_empty() {
            return;
        }
        let ethertype = bytes.get(12..14).map(|t| u16::from_be_bytes([t[0], t[1]]));
        let frame = TappedFrame {
            at: self.t0 + now,
            since_start: now,
            direction: dir,
            l2_len: bytes.len(),
            ip: matches!(
                ethertype,
                Some(crate::frame::ETHERTYPE_IPV4 | crate::frame::ETHERTYPE_IPV6)
            ),
        };
        self.taps.retain(|(tx, dropped)| match tx.try_send(frame) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
    }

    fn delivered(&mut self, dir: Direction, now: Duration, frame: &[u8]) {
        if dir == Direction::Down {
            self.tap(dir, now, frame);
        }
        let info = FrameInfo::parse(frame);
        if info.l2_len > 1514 {
            self.oversize += 1;
        }
        let ts = self.wall0 + now;
        self.run_acc.add_info(now, dir, &info);
        for w in self.windows.values_mut() {
            w.add_info(now, dir, &info);
        }
        let mut r = Ok(());
        if let Some(s) = &mut self.run_sink {
            r = s.pcap.write(ts, frame);
        }
        if let Some(c) = &mut self.case {
            c.acc.add_info(now, dir, &info);
            r = r.and(c.sink.pcap.write(ts, frame));
        }
        self.record_err(r);
        self.summary_forwarded[idx(dir)] += 1;
    }

    fn dropped(&mut self, dir: Direction, now: Duration, frame: &[u8], _why: DropReason) {
        let ts = self.wall0 + now;
        self.run_acc.add_dropped(dir);
        for w in self.windows.values_mut() {
            w.add_dropped(dir);
        }
        let mut r = Ok(());
        if let Some(s) = &mut self.run_sink {
            r = s.dropped.write(ts, frame);
        }
        if let Some(c) = &mut self.case {
            c.acc.add_dropped(dir);
            r = r.and(c.sink.dropped.write(ts, frame));
        }
        self.record_err(r);
        self.summary_dropped[idx(dir)] += 1;
    }

    fn drain_events(&mut self, now: Duration) {
        for d in [Direction::Up, Direction::Down] {
            while let Some(ev) = self.pipes[idx(d)].poll_event() {
                self.events.push((d, ev));
                if let Some(c) = &mut self.case {
                    c.events.push((d, ev));
                }
                if let LinkEvent::CutStarted(_) = ev
                    && self.cfg.cut_both_ways
                {
                    let other = match d {
                        Direction::Up => Direction::Down,
                        Direction::Down => Direction::Up,
                    };
                    let spec = match d {
                        Direction::Up => self.cfg.up.cut,
                        Direction::Down => self.cfg.down.cut,
                    };
                    let dur = spec
                        .and_then(|s| s.duration_ms)
                        .map(|m| Duration::from_secs_f64(m / 1000.0));
                    if !self.pipes[idx(other)].is_cut() {
                        self.pipes[idx(other)].cut(now, dur);
                    }
                }
            }
        }
    }

    fn command(&mut self, cmd: Cmd) -> Option<Reply<BridgeSummary>> {
        let now = self.now();
        match cmd {
            Cmd::StartCase(path, reply) => {
                let r = Sink::create(&path).map(|sink| {
                    self.case = Some(Case {
                        sink,
                        acc: Accounting::new(now),
                        events: Vec::new(),
                    });
                });
                reply.send(r).ok();
            }
            Cmd::EndCase(reply) => {
                let r = match self.case.take() {
                    None => Err(NetError::BridgeGone("end_case without start_case".into())),
                    Some(mut c) => {
                        c.acc.finish(now);
                        let flushed = c.sink.pcap.flush().and(c.sink.dropped.flush());
                        flushed.map(|()| CaseCapture {
                            pcap: c.sink.pcap.path().to_owned(),
                            dropped_pcap: c.sink.dropped.path().to_owned(),
                            accounting: c.acc,
                            events: c.events,
                        })
                    }
                };
                reply.send(r).ok();
            }
            Cmd::BeginWindow(name, reply) => {
                self.windows.insert(name, Accounting::new(now));
                reply.send(Ok(())).ok();
            }
            Cmd::EndWindow(name, reply) => {
                let r = self.windows.remove(&name).map(|mut a| {
                    a.finish(now);
                    a
                });
                reply
                    .send(r.ok_or_else(|| {
                        NetError::BridgeGone(format!("no accounting window named {name:?}"))
                    }))
                    .ok();
            }
            Cmd::Cut(d, dur) => {
                for d in dirs(d) {
                    self.pipes[idx(d)].cut(now, dur);
                }
            }
            Cmd::Restore(d) => {
                for d in dirs(d) {
                    self.pipes[idx(d)].restore(now);
                }
            }
            Cmd::SetLink(pipes, reply) => {
                self.pipes = *pipes;
                reply.send(Ok(())).ok();
            }
            Cmd::AddTap(tx, dropped, reply) => {
                self.taps.push((tx, dropped));
                reply.send(Ok(())).ok();
            }
            Cmd::Rebind => {
                if let Some(n) = &mut self.nat {
                    n.rebind();
                } else {
                    let mut n = NatRebinder::new(DUT_ADDR, self.cfg.seed);
                    n.rebind();
                    self.nat = Some(n);
                }
            }
            Cmd::Stop(reply) => return Some(reply),
        }
        self.drain_events(now);
        None
    }

    fn finish(mut self, kernel_drops: [u64; 2]) -> Result<BridgeSummary, NetError> {
        let now = self.now();
        self.run_acc.finish(now);
        let captured = match &mut self.run_sink {
            Some(s) => {
                let r = s.pcap.flush().and(s.dropped.flush());
                let n = s.pcap.frames();
                self.record_err(r);
                n
            }
            None => 0,
        };
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        Ok(BridgeSummary {
            accounting: self.run_acc,
            forwarded: self.summary_forwarded,
            dropped: self.summary_dropped,
            kernel_drops,
            send_failures: self.send_failures,
            oversize_frames: self.oversize,
            captured,
            events: self.events,
        })
    }
}

fn run_loop(mut st: State, socks: [PacketSocket; 2], rx: Receiver<Cmd>, wake: UnixDatagram) {
    let mut buf = vec![0u8; 65_536];
    let mut kernel_drops = [0u64; 2];
    let fds = [socks[0].raw(), socks[1].raw(), {
        use std::os::fd::AsRawFd;
        wake.as_raw_fd()
    }];
    let nat_times: Vec<Duration> = st
        .cfg
        .nat_rebind_at_ms
        .iter()
        .map(|m| Duration::from_secs_f64(m.max(0.0) / 1000.0))
        .collect();
    let stop_reply = loop {
        let now = st.now();
        let mut next = [
            st.pipes[0].poll_at(),
            st.pipes[1].poll_at(),
            nat_times.get(st.nat_next).copied(),
        ]
        .into_iter()
        .flatten()
        .min();
        if next.is_some_and(|n| n <= now) {
            next = Some(now);
        }
        let timeout = next.map_or(IDLE_WAKE, |n| n.saturating_sub(now).min(IDLE_WAKE));
        let ready = match sys::ppoll_readable(&fds, timeout) {
            Ok(r) => r,
            Err(e) => {
                st.record_err(Err(e));
                vec![false; 3]
            }
        };
        if ready[2] {
            let mut b = [0u8; 64];
            while wake.recv(&mut b).is_ok() {}
        }
        let mut stop = None;
        while let Ok(cmd) = rx.try_recv() {
            if let Some(r) = st.command(cmd) {
                stop = Some(r);
            }
        }
        // The handle is gone: stop.
        if stop.is_none() && matches!(rx.try_recv(), Err(mpsc::TryRecvError::Disconnected)) {
            break None;
        }
        // Ingress: side 0 is the DUT (up), side 1 the services (down).
        for (side, dir) in [(0usize, Direction::Up), (1, Direction::Down)] {
            if !ready[side] {
                continue;
            }
            for _ in 0..256 {
                match socks[side].recv(&mut buf) {
                    Ok(Some(n)) => {
                        let n = n.min(buf.len());
                        let mut frame = buf[..n].to_vec();
                        if dir == Direction::Up
                            && let Some(nat) = &mut st.nat
                        {
                            nat.translate_up(&mut frame);
                        }
                        let now = st.now();
                        if dir == Direction::Up {
                            st.tap(dir, now, &frame);
                        }
                        st.pipes[idx(dir)].handle_frame(now, frame);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        st.record_err(Err(e));
                        break;
                    }
                }
            }
        }
        let now = st.now();
        while nat_times.get(st.nat_next).is_some_and(|t| *t <= now) {
            st.nat_next += 1;
            st.command(Cmd::Rebind);
        }
        st.drain_events(now);
        // Drops first (they happened at ingress), then releases.
        for dir in [Direction::Up, Direction::Down] {
            while let Some((p, why)) = st.pipes[idx(dir)].poll_dropped() {
                st.dropped(dir, now, &p.data, why);
            }
        }
        for (dir, out) in [(Direction::Up, 1usize), (Direction::Down, 0)] {
            while let Some(Packet { mut data, .. }) = st.pipes[idx(dir)].poll_transmit(now) {
                if dir == Direction::Down
                    && let Some(nat) = &mut st.nat
                    && !nat.translate_down(&mut data)
                {
                    st.dropped(dir, now, &data, DropReason::NatUnmapped);
                    continue;
                }
                match socks[out].send(&data) {
                    Ok(true) => st.delivered(dir, now, &data),
                    Ok(false) => st.send_failures += 1,
                    Err(e) => st.record_err(Err(e)),
                }
            }
        }
        if let Some(r) = stop {
            break Some(r);
        }
    };
    for (i, s) in socks.iter().enumerate() {
        kernel_drops[i] += u64::from(s.stats().1);
    }
    let summary = st.finish(kernel_drops);
    if let Some(reply) = stop_reply {
        reply.send(summary).ok();
    }
}

impl Bridge {
    /// Starts the bridge thread in namespace `ns` between interfaces
    /// `dut_if` (DUT side) and `svc_if` (services side).
    pub fn start(
        ns: &Namespace,
        dut_if: &str,
        svc_if: &str,
        cfg: BridgeConfig,
    ) -> Result<Bridge, NetError> {
        let seed = cfg.seed;
        let pipes = [
            Pipeline::new(&cfg.up, cfg.seed, 0).map_err(|e| rename(e, "up"))?,
            Pipeline::new(&cfg.down, cfg.seed, 1).map_err(|e| rename(e, "down"))?,
        ];
        let run_sink = match &cfg.run_pcap {
            Some(p) => Some(Sink::create(p)?),
            None => None,
        };
        let (wake_tx, wake_rx) = UnixDatagram::pair().map_err(|source| NetError::Io {
            what: "creating the bridge's wake-up socket".into(),
            source,
        })?;
        for s in [&wake_tx, &wake_rx] {
            s.set_nonblocking(true).map_err(|source| NetError::Io {
                what: "setting the wake-up socket non-blocking".into(),
                source,
            })?;
        }
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), NetError>>();
        let fd = sys::open_netns(&ns.path())?;
        let name = ns.name().to_owned();
        let (dut_if, svc_if) = (dut_if.to_owned(), svc_if.to_owned());
        let thread = std::thread::Builder::new()
            .name("rig-net-bridge".into())
            .spawn(move || {
                let opened = sys::setns_net(&fd, &name).and_then(|()| {
                    Ok([PacketSocket::open(&dut_if)?, PacketSocket::open(&svc_if)?])
                });
                let socks = match opened {
                    Ok(s) => s,
                    Err(e) => {
                        ready_tx.send(Err(e)).ok();
                        return;
                    }
                };
                ready_tx.send(Ok(())).ok();
                let st = State {
                    t0: Instant::now(),
                    wall0: SystemTime::now(),
                    pipes,
                    // Identity until the first rebind, but it must see the
                    // DUT's ports from the start to know what goes stale.
                    nat: Some(NatRebinder::new(DUT_ADDR, cfg.seed)),
                    nat_next: 0,
                    run_sink,
                    run_acc: Accounting::new(Duration::ZERO),
                    case: None,
                    windows: HashMap::new(),
                    summary_forwarded: [0; 2],
                    summary_dropped: [0; 2],
                    send_failures: 0,
                    oversize: 0,
                    events: Vec::new(),
                    error: None,
                    taps: Vec::new(),
                    cfg,
                };
                run_loop(st, socks, rx, wake_rx);
            })
            .map_err(|source| NetError::Io {
                what: "spawning the bridge thread".into(),
                source,
            })?;
        match ready_rx.recv_timeout(REPLY_TIMEOUT) {
            Ok(Ok(())) => Ok(Bridge {
                control: BridgeControl {
                    tx,
                    wake: Arc::new(wake_tx),
                    seed,
                },
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                thread.join().ok();
                Err(e)
            }
            Err(_) => Err(NetError::BridgeGone(
                "the bridge thread did not start within 10 s".into(),
            )),
        }
    }

    /// A cloneable control of this bridge, for whoever needs to cut, window
    /// or re-profile the link while the run owns the bridge.
    pub fn control(&self) -> BridgeControl {
        self.control.clone()
    }

    /// Stops the bridge and returns the run's totals.
    pub fn stop(mut self) -> Result<BridgeSummary, NetError> {
        let r = self.ask(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            t.join().ok();
        }
        r
    }
}

impl BridgeControl {
    fn send(&self, cmd: Cmd) -> Result<(), NetError> {
        self.tx
            .send(cmd)
            .map_err(|_| NetError::BridgeGone("its thread has exited".into()))?;
        // A full wake-up socket already means "wake up".
        self.wake.send(&[1]).ok();
        Ok(())
    }

    fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> Result<T, NetError> {
        let (tx, rx) = mpsc::channel();
        self.send(make(tx))?;
        match rx.recv_timeout(REPLY_TIMEOUT) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(NetError::BridgeGone(
                "no answer from the bridge within 10 s".into(),
            )),
            Err(RecvTimeoutError::Disconnected) => {
                Err(NetError::BridgeGone("its thread has exited".into()))
            }
        }
    }

    /// Starts capturing a case to `pcap` (drops to `<stem>.dropped.pcap`)
    /// and opens the case's accounting window. A case already open is
    /// replaced (its data is discarded).
    pub fn start_case(&self, pcap: &Path) -> Result<(), NetError> {
        self.ask(|r| Cmd::StartCase(pcap.to_owned(), r))
    }

    /// Ends the case: closes its files and returns its accounting.
    pub fn end_case(&self) -> Result<CaseCapture, NetError> {
        self.ask(Cmd::EndCase)
    }

    /// Opens a named accounting window (any number may be open at once).
    pub fn begin_window(&self, name: &str) -> Result<(), NetError> {
        self.ask(|r| Cmd::BeginWindow(name.to_owned(), r))
    }

    /// Closes a named window and returns its accounting.
    pub fn end_window(&self, name: &str) -> Result<Accounting, NetError> {
        self.ask(|r| Cmd::EndWindow(name.to_owned(), r))
    }

    /// Cuts one direction, or both (`None`), now; for `duration` or until
    /// [`Self::restore`].
    pub fn cut(&self, dir: Option<Direction>, duration: Option<Duration>) -> Result<(), NetError> {
        self.send(Cmd::Cut(dir, duration))
    }

    /// Ends a cut in one direction or both.
    pub fn restore(&self, dir: Option<Direction>) -> Result<(), NetError> {
        self.send(Cmd::Restore(dir))
    }

    /// Rebinds the NAT now: the DUT's UDP source ports change.
    pub fn rebind_nat(&self) -> Result<(), NetError> {
        self.send(Cmd::Rebind)
    }

    /// Attaches a frame tap holding at most `capacity` frames (at least 1):
    /// from now on every frame the DUT sends (at ingress) or receives (on
    /// delivery) is offered to it, and dropped and counted when it is full.
    pub fn tap(&self, capacity: usize) -> Result<FrameTap, NetError> {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let d = dropped.clone();
        self.ask(|r| Cmd::AddTap(tx, d, r))?;
        Ok(FrameTap { rx, dropped })
    }

    /// Replaces both directions' impairment pipelines with `up` and `down`
    /// (e.g. a link profile for one case), now. Frames queued in the old
    /// pipelines are discarded. The seed is the bridge's.
    pub fn set_link(&self, up: &DirectionConfig, down: &DirectionConfig) -> Result<(), NetError> {
        let pipes = [
            Pipeline::new(up, self.seed, 0).map_err(|e| rename(e, "up"))?,
            Pipeline::new(down, self.seed, 1).map_err(|e| rename(e, "down"))?,
        ];
        self.ask(|r| Cmd::SetLink(Box::new(pipes), r))
    }
}

impl std::ops::Deref for Bridge {
    type Target = BridgeControl;
    fn deref(&self) -> &BridgeControl {
        &self.control
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let (tx, _rx) = mpsc::channel();
            if self.send(Cmd::Stop(tx)).is_ok() {
                t.join().ok();
            }
        }
    }
}

fn rename(e: NetError, dir: &str) -> NetError {
    match e {
        NetError::BadConfig { reason, .. } => NetError::BadConfig {
            source_name: format!("bridge.{dir}"),
            reason,
        },
        e => e,
    }
}
