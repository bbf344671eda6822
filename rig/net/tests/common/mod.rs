//! Helpers shared by the live tests: tshark's own counts of a capture.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use rig_net::account::Counts;

/// Counts of one direction as tshark reports them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TsharkCounts {
    pub up: Counts,
    pub down: Counts,
    pub max_frame_len: u64,
}

fn sum_field(v: &str) -> u64 {
    // tshark prints several values comma separated for tunnelled frames;
    // the outer header is the first.
    v.split(',')
        .next()
        .and_then(|x| x.trim().parse().ok())
        .unwrap_or(0)
}

/// Runs tshark on `pcap` and sums frame.len, ip.len (or ipv6.plen + 40),
/// udp.length - 8 and tcp.len per direction (up = source MAC is `dut_mac`).
pub fn tshark_counts(pcap: &Path, dut_mac: &str) -> TsharkCounts {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(pcap)
        .args([
            "-T",
            "fields",
            "-E",
            "separator=;",
            "-e",
            "eth.src",
            "-e",
            "frame.len",
            "-e",
            "ip.len",
            "-e",
            "ipv6.plen",
            "-e",
            "udp.length",
            "-e",
            "tcp.len",
        ])
        .output()
        .expect("tshark runs (apt-get install tshark)");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = TsharkCounts::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split(';').collect();
        assert_eq!(f.len(), 6, "{line}");
        let d = if f[0].eq_ignore_ascii_case(dut_mac) {
            &mut c.up
        } else {
            &mut c.down
        };
        let flen = sum_field(f[1]);
        c.max_frame_len = c.max_frame_len.max(flen);
        d.packets += 1;
        d.l2_bytes += flen;
        d.l3_bytes += if !f[2].is_empty() {
            sum_field(f[2])
        } else if !f[3].is_empty() {
            sum_field(f[3]) + 40
        } else {
            0
        };
        d.payload_bytes += if !f[4].is_empty() {
            sum_field(f[4]).saturating_sub(8)
        } else {
            sum_field(f[5])
        };
    }
    c
}

/// tshark's own total statistics line: frames and bytes (`-z io,stat,0`).
pub fn tshark_io_stat(pcap: &Path, filter: &str) -> (u64, u64) {
    let out = Command::new("tshark")
        .args(["-n", "-q", "-r"])
        .arg(pcap)
        .args(["-z", &format!("io,stat,0,{filter}")])
        .output()
        .expect("tshark runs");
    let text = String::from_utf8_lossy(&out.stdout);
    // The data row looks like "| 0.000 <> 1.234 |   123 |  45678 |".
    for line in text.lines() {
        if line.contains("<>") {
            let cells: Vec<&str> = line
                .split('|')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if cells.len() >= 3 {
                let frames = cells[1].parse().expect("frames");
                let bytes = cells[2].parse().expect("bytes");
                return (frames, bytes);
            }
        }
    }
    panic!("no io,stat row in tshark output:\n{text}");
}

/// The MAC as tshark prints it.
pub fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
