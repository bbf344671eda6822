//! Capture on a real NIC through libpcap (feature `libpcap`): a real bench
//! has the DUT on a dedicated interface, and rig only captures there, with
//! a BPF filter for the DUT. Frames go to the same [`PcapWriter`] and
//! [`Accounting`] as on the simulated bench; the direction comes from the
//! DUT's MAC address.

use std::path::Path;
use std::time::Duration;

use crate::account::{Accounting, Direction};
use crate::error::NetError;
use crate::pcap::PcapWriter;

/// A running libpcap capture on one interface.
pub struct NicCapture {
    cap: pcap::Capture<pcap::Active>,
    writer: PcapWriter,
    acc: Accounting,
    dut_mac: [u8; 6],
    start: Option<Duration>,
}

impl std::fmt::Debug for NicCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NicCapture")
            .field("writer", &self.writer)
            .finish()
    }
}

fn err(what: String) -> impl FnOnce(pcap::Error) -> NetError {
    move |e| NetError::Io {
        what,
        source: std::io::Error::other(e.to_string()),
    }
}

impl NicCapture {
    /// Opens `interface` with `filter` (BPF, e.g. `ether host 02:..`),
    /// writing to `out`.
    pub fn open(
        interface: &str,
        filter: &str,
        dut_mac: [u8; 6],
        out: &Path,
    ) -> Result<Self, NetError> {
        let mut cap = pcap::Capture::from_device(interface)
            .map_err(err(format!("opening {interface} with libpcap")))?
            .promisc(true)
            .immediate_mode(true)
            .open()
            .map_err(err(format!("activating capture on {interface}")))?
            // Non-blocking: libpcap's read timeout may never fire when no
            // packet arrives, and nothing here may hang.
            .setnonblock()
            .map_err(err(format!("non-blocking capture on {interface}")))?;
        cap.filter(filter, true)
            .map_err(err(format!("BPF filter {filter:?} on {interface}")))?;
        Ok(Self {
            cap,
            writer: PcapWriter::create(out)?,
            acc: Accounting::new(Duration::ZERO),
            dut_mac,
            start: None,
        })
    }

    /// Reads every frame queued now, without waiting; returns how many.
    pub fn poll(&mut self) -> Result<usize, NetError> {
        let mut n = 0;
        loop {
            match self.cap.next_packet() {
                Ok(p) => {
                    let ts = Duration::new(
                        p.header.ts.tv_sec as u64,
                        (p.header.ts.tv_usec as u32) * 1000,
                    );
                    let start = *self.start.get_or_insert(ts);
                    if self.acc.dir(Direction::Up).total.packets == 0
                        && self.acc.dir(Direction::Down).total.packets == 0
                    {
                        self.acc = Accounting::new(start);
                    }
                    let dir = if p.data.get(6..12) == Some(&self.dut_mac[..]) {
                        Direction::Up
                    } else {
                        Direction::Down
                    };
                    self.acc.add(ts, dir, p.data);
                    self.writer.write(std::time::UNIX_EPOCH + ts, p.data)?;
                    n += 1;
                }
                Err(pcap::Error::TimeoutExpired) => return Ok(n),
                Err(e) => return Err(err("reading from libpcap".into())(e)),
            }
        }
    }

    /// Stops and returns the accounting.
    pub fn finish(mut self) -> Result<Accounting, NetError> {
        self.writer.flush()?;
        Ok(self.acc)
    }
}
