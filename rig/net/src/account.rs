//! Byte-exact accounting per window and direction, as a router upstream of
//! the device would count: packets, L2 bytes (whole Ethernet frame, no
//! FCS), L3 bytes (IP packet), transport payload bytes, a packet-length
//! histogram, bytes per 100 ms with burstiness (peak / mean), each split by
//! protocol class. [`Accounting::measurements`] turns it into named
//! measurements (`net.packets.up`, `net.l2_bytes.down.coap`, ...).
//!
//! [`account_pcap`] computes the same from a capture file; the direction of
//! each frame comes from its source MAC (`up` when it is the DUT's).

use std::path::Path;
use std::time::Duration;

use crate::error::NetError;
use crate::frame::{FrameInfo, ProtoClass};
use crate::pcap::read_pcap;

/// Link direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// DUT → network.
    Up,
    /// Network → DUT.
    Down,
}

impl Direction {
    /// `up` or `down`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Up => 0,
            Self::Down => 1,
        }
    }
}

/// Length-histogram bucket lower bounds, the same as tshark's
/// `-z plen,tree` (0-19, 20-39, 40-79, ... 2560-5119, 5120 and greater).
pub const HIST_BOUNDS: [usize; 10] = [0, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120];

/// Width of a time-series bin.
pub const BIN: Duration = Duration::from_millis(100);

/// Packet and byte counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Frames.
    pub packets: u64,
    /// Ethernet bytes (tshark `frame.len`).
    pub l2_bytes: u64,
    /// IP bytes (tshark `ip.len`, `ipv6.plen` + 40).
    pub l3_bytes: u64,
    /// UDP/TCP payload bytes (tshark `udp.length` - 8, `tcp.len`).
    pub payload_bytes: u64,
}

impl Counts {
    fn add(&mut self, i: &FrameInfo) {
        self.packets += 1;
        self.l2_bytes += i.l2_len as u64;
        self.l3_bytes += i.l3_len as u64;
        self.payload_bytes += i.payload_len as u64;
    }
}

/// Everything counted in one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirStats {
    /// All frames.
    pub total: Counts,
    /// Per protocol class, indexed like [`ProtoClass::ALL`].
    pub by_class: [Counts; 4],
    /// Frame-length histogram over [`HIST_BOUNDS`].
    pub histogram: [u64; 10],
    /// L2 bytes per 100 ms bin since the window start.
    pub bins: Vec<u64>,
    /// IPv6 frames (reported separately: IPv6 is switched off on the
    /// simulated link, so any here came from elsewhere).
    pub ipv6_packets: u64,
}

fn class_index(c: ProtoClass) -> usize {
    match c {
        ProtoClass::Coap => 0,
        ProtoClass::Mqtt => 1,
        ProtoClass::Http => 2,
        ProtoClass::Other => 3,
    }
}

impl DirStats {
    /// Counts of one class.
    pub fn class(&self, c: ProtoClass) -> Counts {
        self.by_class[class_index(c)]
    }

    /// Peak bytes in any 100 ms bin.
    pub fn peak_100ms(&self) -> u64 {
        self.bins.iter().copied().max().unwrap_or(0)
    }
}

/// A measurement: plain name, unit and value (the engine maps it).
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Dotted name, e.g. `net.l2_bytes.up.coap`.
    pub name: String,
    /// Unit: `packets`, `bytes`, `ratio`, `s`.
    pub unit: &'static str,
    /// Value.
    pub value: f64,
}

/// Accounting of one window (a case, a run, or any span a case chooses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accounting {
    start: Duration,
    end: Option<Duration>,
    dirs: [DirStats; 2],
    /// Frames dropped by impairment, per direction (not in the counts above).
    pub dropped: [u64; 2],
}

impl Accounting {
    /// An empty window starting at `start` (any clock, as long as frames
    /// use the same one).
    pub fn new(start: Duration) -> Self {
        Self {
            start,
            end: None,
            dirs: [DirStats::default(), DirStats::default()],
            dropped: [0, 0],
        }
    }

    /// Counts one frame seen at `ts` in direction `dir`.
    pub fn add(&mut self, ts: Duration, dir: Direction, frame: &[u8]) {
        self.add_info(ts, dir, &FrameInfo::parse(frame));
    }

    /// Counts one already-parsed frame.
    pub fn add_info(&mut self, ts: Duration, dir: Direction, info: &FrameInfo) {
        let d = &mut self.dirs[dir.index()];
        d.total.add(info);
        d.by_class[class_index(info.class)].add(info);
        let h = HIST_BOUNDS
            .iter()
            .rposition(|&b| info.l2_len >= b)
            .unwrap_or(0);
        d.histogram[h] += 1;
        let bin = (ts.saturating_sub(self.start).as_nanos() / BIN.as_nanos()) as usize;
        if d.bins.len() <= bin {
            d.bins.resize(bin + 1, 0);
        }
        d.bins[bin] += info.l2_len as u64;
        if info.ethertype == crate::frame::ETHERTYPE_IPV6 {
            d.ipv6_packets += 1;
        }
    }

    /// Counts a frame the impairment dropped.
    pub fn add_dropped(&mut self, dir: Direction) {
        self.dropped[dir.index()] += 1;
    }

    /// Closes the window at `end` (fixes the duration used for burstiness).
    pub fn finish(&mut self, end: Duration) {
        self.end = Some(end.max(self.start));
    }

    /// Window length (up to the last frame if not finished).
    pub fn duration(&self) -> Duration {
        match self.end {
            Some(e) => e - self.start,
            None => {
                let bins = self.dirs.iter().map(|d| d.bins.len()).max().unwrap_or(0);
                BIN * bins as u32
            }
        }
    }

    /// One direction's counters.
    pub fn dir(&self, dir: Direction) -> &DirStats {
        &self.dirs[dir.index()]
    }

    /// Peak / mean of L2 bytes per 100 ms over the window, or 0 if empty.
    pub fn burstiness(&self, dir: Direction) -> f64 {
        let d = self.dir(dir);
        let nbins = (self.duration().as_nanos().div_ceil(BIN.as_nanos()) as usize)
            .max(d.bins.len())
            .max(1);
        let mean = d.total.l2_bytes as f64 / nbins as f64;
        if mean == 0.0 {
            0.0
        } else {
            d.peak_100ms() as f64 / mean
        }
    }

    /// L2 bytes over the window in bins of a round width (100 ms, 200 ms,
    /// 500 ms, 1 s, 2 s, 5 s, 10 s, ...) chosen so there are at most
    /// `max_points` bins (at least one). Returns the bin width and the bytes
    /// per bin, covering the whole window (trailing quiet bins included).
    pub fn bytes_over_time(&self, dir: Direction, max_points: usize) -> (Duration, Vec<u64>) {
        let fine = &self.dir(dir).bins;
        let nfine = (self.duration().as_nanos().div_ceil(BIN.as_nanos()) as usize)
            .max(fine.len())
            .max(1);
        let max_points = max_points.max(1);
        // Multiples of the 100 ms bin: 1, 2, 5, 10, 20, 50 ...
        let mut k: usize = 1;
        let mut step = 0;
        while nfine.div_ceil(k) > max_points {
            k = [2, 5, 10][step % 3] * 10usize.pow((step / 3) as u32);
            step += 1;
        }
        let mut out = vec![0u64; nfine.div_ceil(k)];
        for (i, b) in fine.iter().enumerate() {
            out[i / k] += b;
        }
        (BIN * k as u32, out)
    }

    /// The frame-length histogram of one direction as `(lower bound, frames)`
    /// per bucket of [`HIST_BOUNDS`].
    pub fn length_histogram(&self, dir: Direction) -> Vec<(usize, u64)> {
        HIST_BOUNDS
            .iter()
            .copied()
            .zip(self.dir(dir).histogram.iter().copied())
            .collect()
    }

    /// All measurements of this window. Names:
    /// `net.{packets,l2_bytes,l3_bytes,payload_bytes}` (both directions),
    /// with `.up`/`.down`, and `.up.coap` ... `.down.other`;
    /// `net.frame_len.{up,down}.{lo}_{hi}` (histogram buckets, packets);
    /// `net.peak_100ms.{up,down}` (bytes), `net.burstiness.{up,down}`;
    /// `net.ipv6_packets.{up,down}`; `net.dropped.{up,down}`;
    /// `net.window` (seconds).
    pub fn measurements(&self) -> Vec<Measurement> {
        let mut out = Vec::new();
        let mut push = |name: String, unit: &'static str, value: f64| {
            out.push(Measurement { name, unit, value });
        };
        type Get = fn(&Counts) -> u64;
        let metrics: [(&str, &'static str, Get); 4] = [
            ("packets", "packets", |c| c.packets),
            ("l2_bytes", "bytes", |c| c.l2_bytes),
            ("l3_bytes", "bytes", |c| c.l3_bytes),
            ("payload_bytes", "bytes", |c| c.payload_bytes),
        ];
        for (m, unit, get) in metrics {
            let both = get(&self.dirs[0].total) + get(&self.dirs[1].total);
            push(format!("net.{m}"), unit, both as f64);
            for dir in [Direction::Up, Direction::Down] {
                let d = self.dir(dir);
                push(
                    format!("net.{m}.{}", dir.name()),
                    unit,
                    get(&d.total) as f64,
                );
                for c in ProtoClass::ALL {
                    push(
                        format!("net.{m}.{}.{}", dir.name(), c.name()),
                        unit,
                        get(&d.class(c)) as f64,
                    );
                }
            }
        }
        for dir in [Direction::Up, Direction::Down] {
            let d = self.dir(dir);
            for (i, &lo) in HIST_BOUNDS.iter().enumerate() {
                let name = match HIST_BOUNDS.get(i + 1) {
                    Some(hi) => format!("net.frame_len.{}.{lo}_{}", dir.name(), hi - 1),
                    None => format!("net.frame_len.{}.{lo}_up", dir.name()),
                };
                push(name, "packets", d.histogram[i] as f64);
            }
            push(
                format!("net.peak_100ms.{}", dir.name()),
                "bytes",
                d.peak_100ms() as f64,
            );
            push(
                format!("net.burstiness.{}", dir.name()),
                "ratio",
                self.burstiness(dir),
            );
            push(
                format!("net.ipv6_packets.{}", dir.name()),
                "packets",
                d.ipv6_packets as f64,
            );
            push(
                format!("net.dropped.{}", dir.name()),
                "packets",
                self.dropped[dir.index()] as f64,
            );
        }
        push("net.window".into(), "s", self.duration().as_secs_f64());
        out
    }
}

/// Accounts a pcap file; frames whose source MAC is `dut_mac` are `up`,
/// all others `down`. The window runs from the first to the last frame.
pub fn account_pcap(path: &Path, dut_mac: [u8; 6]) -> Result<Accounting, NetError> {
    let recs = read_pcap(path)?;
    let start = recs.first().map(|r| r.ts).unwrap_or_default();
    let mut acc = Accounting::new(start);
    let mut last = start;
    for r in &recs {
        let info = FrameInfo::parse(&r.data);
        // A snapped capture counts the length on the wire, like tshark.
        let info = FrameInfo {
            l2_len: r.orig_len as usize,
            ..info
        };
        let dir = if info.src_mac == dut_mac {
            Direction::Up
        } else {
            Direction::Down
        };
        acc.add_info(r.ts, dir, &info);
        last = last.max(r.ts);
    }
    acc.finish(last);
    Ok(acc)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn counts_histogram_bins_and_names() {
        let f = crate::frame::test::udp_frame();
        let mut a = Accounting::new(Duration::from_secs(10));
        a.add(Duration::from_secs(10), Direction::Up, &f);
        a.add(Duration::from_millis(10_050), Direction::Up, &f);
        a.add(Duration::from_millis(10_250), Direction::Down, &f);
        a.finish(Duration::from_millis(10_400));
        let up = a.dir(Direction::Up);
        assert_eq!(
            up.total,
            Counts {
                packets: 2,
                l2_bytes: 92,
                l3_bytes: 64,
                payload_bytes: 8
            }
        );
        assert_eq!(up.class(ProtoClass::Coap).packets, 2);
        assert_eq!(up.histogram[2], 2);
        assert_eq!(up.bins, vec![92]);
        assert_eq!(a.dir(Direction::Down).bins, vec![0, 0, 46]);
        // 4 bins of 100 ms, 92 bytes in one: peak/mean = 92 / 23 = 4.
        assert!((a.burstiness(Direction::Up) - 4.0).abs() < 1e-9);
        let m = a.measurements();
        let get = |n: &str| m.iter().find(|x| x.name == n).map(|x| x.value);
        assert_eq!(get("net.packets"), Some(3.0));
        assert_eq!(get("net.l2_bytes.up"), Some(92.0));
        assert_eq!(get("net.l3_bytes.down"), Some(32.0));
        assert_eq!(get("net.payload_bytes.up.coap"), Some(8.0));
        assert_eq!(get("net.packets.up.mqtt"), Some(0.0));
        assert_eq!(get("net.frame_len.up.40_79"), Some(2.0));
        assert_eq!(get("net.frame_len.up.5120_up"), Some(0.0));
    }

    #[test]
    fn bytes_over_time_rebins_to_round_widths_and_keeps_every_byte() {
        let f = crate::frame::test::udp_frame();
        let mut a = Accounting::new(Duration::ZERO);
        for ms in [0u64, 50, 950, 1_000, 12_345, 59_999] {
            a.add(Duration::from_millis(ms), Direction::Up, &f);
        }
        a.finish(Duration::from_secs(60));
        // 600 fine bins: at most 100 points gives 1 s bins (k = 10).
        let (bin, v) = a.bytes_over_time(Direction::Up, 100);
        assert_eq!(bin, Duration::from_secs(1));
        assert_eq!(v.len(), 60);
        assert_eq!(v[0], 3 * 46);
        assert_eq!(v[1], 46);
        assert_eq!(v[12], 46);
        assert_eq!(v[59], 46);
        assert_eq!(v.iter().sum::<u64>(), a.dir(Direction::Up).total.l2_bytes);
        // Fine enough already: 100 ms bins stay.
        let (bin, v) = a.bytes_over_time(Direction::Up, 1000);
        assert_eq!((bin, v.len()), (BIN, 600));
        // 600 bins into at most 7 points: 10 s bins.
        let (bin, v) = a.bytes_over_time(Direction::Up, 7);
        assert_eq!((bin, v.len()), (Duration::from_secs(10), 6));
        // An empty window still has one (empty) bin.
        let e = Accounting::new(Duration::ZERO);
        assert_eq!(e.bytes_over_time(Direction::Down, 0), (BIN, vec![0]));
        let h = a.length_histogram(Direction::Up);
        assert_eq!(h.len(), HIST_BOUNDS.len());
        assert_eq!(h[2], (40, 6));
    }
}
