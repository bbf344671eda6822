//! NAT rebinding, as a carrier-grade NAT does it to an idle device: the
//! DUT's UDP source port, as the services see it, changes.
//!
//! Pure and seeded like the impairment core. Until the first
//! [`NatRebinder::rebind`] it is the identity. After a rebind every DUT UDP
//! port gets a fresh external port: uplink frames have their source port
//! rewritten, downlink frames to the current external port are mapped back
//! to the DUT's port, and downlink frames to an external port that is no
//! longer current are dropped (the old binding is gone), which is what a
//! server replying to a stale address sees. Checksums are fixed: the IPv4
//! header does not change, the UDP checksum is recomputed.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use crate::frame::{fix_ipv4_udp_checksum, ipv4_udp_offsets};
use crate::impair::SplitMix64;

/// The NAT state.
#[derive(Debug)]
pub struct NatRebinder {
    dut: Ipv4Addr,
    rng: SplitMix64,
    generation: u32,
    /// DUT port → external port (only after a rebind).
    out: HashMap<u16, u16>,
    /// External port → DUT port.
    back: HashMap<u16, u16>,
    /// External ports used before and no longer current.
    stale: HashSet<u16>,
}

fn ipv4_at(frame: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(frame[at], frame[at + 1], frame[at + 2], frame[at + 3])
}

impl NatRebinder {
    /// A NAT for the DUT at `dut`, seeded.
    pub fn new(dut: Ipv4Addr, seed: u64) -> Self {
        Self {
            dut,
            rng: SplitMix64::new(seed ^ 0x6e61_7400),
            generation: 0,
            out: HashMap::new(),
            back: HashMap::new(),
            stale: HashSet::new(),
        }
    }

    /// How many times it has rebound.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    fn fresh_port(&mut self) -> u16 {
        loop {
            let p = 20_000 + (self.rng.next_u64() % 40_000) as u16;
            if !self.back.contains_key(&p) && !self.stale.contains(&p) && !self.out.contains_key(&p)
            {
                return p;
            }
        }
    }

    /// Gives every known DUT port a new external port; the old ones go stale.
    pub fn rebind(&mut self) {
        self.generation += 1;
        let ports: Vec<u16> = self.out.keys().copied().collect();
        for p in &ports {
            if let Some(old) = self.out.get(p).copied() {
                self.back.remove(&old);
                self.stale.insert(old);
            }
        }
        for p in ports {
            let ext = self.fresh_port();
            self.out.insert(p, ext);
            self.back.insert(ext, p);
        }
    }

    /// Rewrites an uplink frame in place (DUT → network).
    pub fn translate_up(&mut self, frame: &mut [u8]) {
        let Some((ip, udp, _)) = ipv4_udp_offsets(frame) else {
            return;
        };
        if ipv4_at(frame, ip + 12) != self.dut {
            return;
        }
        let port = u16::from_be_bytes([frame[udp], frame[udp + 1]]);
        let ext = match self.out.get(&port) {
            Some(e) => *e,
            None if self.generation == 0 => {
                // Identity until the first rebind; remember the port so the
                // rebind moves it, and so replies to it go stale after.
                self.out.insert(port, port);
                self.back.insert(port, port);
                port
            }
            None => {
                let e = self.fresh_port();
                self.out.insert(port, e);
                self.back.insert(e, port);
                e
            }
        };
        if ext != port {
            frame[udp..udp + 2].copy_from_slice(&ext.to_be_bytes());
            fix_ipv4_udp_checksum(frame);
        }
    }

    /// Maps a downlink frame back in place (network → DUT). Returns false
    /// if the frame must be dropped (sent to a stale binding).
    pub fn translate_down(&mut self, frame: &mut [u8]) -> bool {
        let Some((ip, udp, _)) = ipv4_udp_offsets(frame) else {
            return true;
        };
        if ipv4_at(frame, ip + 16) != self.dut {
            return true;
        }
        let port = u16::from_be_bytes([frame[udp + 2], frame[udp + 3]]);
        if let Some(&inner) = self.back.get(&port) {
            if inner != port {
                frame[udp + 2..udp + 4].copy_from_slice(&inner.to_be_bytes());
                fix_ipv4_udp_checksum(frame);
            }
            return true;
        }
        !self.stale.contains(&port)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::frame::ipv4_udp_checksums_ok;

    fn up() -> Vec<u8> {
        crate::frame::test::udp_frame()
    }

    fn down_to(port: u16) -> Vec<u8> {
        let mut f = up();
        // swap addresses and ports
        let (a, b) = (f[26..30].to_vec(), f[30..34].to_vec());
        f[26..30].copy_from_slice(&b);
        f[30..34].copy_from_slice(&a);
        f[34..36].copy_from_slice(&5683u16.to_be_bytes());
        f[36..38].copy_from_slice(&port.to_be_bytes());
        f[40] = 1;
        fix_ipv4_udp_checksum(&mut f);
        f
    }

    #[test]
    fn identity_until_rebind_then_new_port_with_valid_checksums() {
        let dut = Ipv4Addr::new(10, 77, 0, 2);
        let mut nat = NatRebinder::new(dut, 5);
        let orig = up();
        let mut f = orig.clone();
        nat.translate_up(&mut f);
        assert_eq!(f, orig);
        let mut d = down_to(40000);
        assert!(nat.translate_down(&mut d));
        assert_eq!(d, down_to(40000));

        nat.rebind();
        let mut f = orig.clone();
        nat.translate_up(&mut f);
        let ext = u16::from_be_bytes([f[34], f[35]]);
        assert_ne!(ext, 40000);
        assert_eq!(ipv4_udp_checksums_ok(&f), Some(true));
        // Only the port and the UDP checksum changed.
        let diff: Vec<usize> = (0..f.len()).filter(|&i| f[i] != orig[i]).collect();
        assert!(
            diff.iter()
                .all(|&i| (34..36).contains(&i) || (40..42).contains(&i))
        );

        // Replies to the new port reach the DUT's real port.
        let mut d = down_to(ext);
        assert!(nat.translate_down(&mut d));
        assert_eq!(d, down_to(40000));
        assert_eq!(ipv4_udp_checksums_ok(&d), Some(true));
        // Replies to the old binding are dropped.
        assert!(!nat.translate_down(&mut down_to(40000)));
        // A second rebind makes the first external port stale too.
        nat.rebind();
        assert!(!nat.translate_down(&mut down_to(ext)));
        // Same seed, same ports.
        let mut again = NatRebinder::new(dut, 5);
        again.translate_up(&mut orig.clone());
        again.rebind();
        let mut g = orig.clone();
        again.translate_up(&mut g);
        assert_eq!(u16::from_be_bytes([g[34], g[35]]), ext);
    }
}
