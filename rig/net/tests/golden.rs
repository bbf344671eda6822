//! Exactness on the golden captures in `fixtures/pcap/`: our accounting of
//! each file equals tshark's counts, run now, and the counts stored beside
//! it by `fixtures/pcap/counts.sh` (tshark + awk, independent of our code).
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use common::{mac, tshark_counts, tshark_io_stat};
use rig_net::account::{Counts, Direction};
use rig_net::netns::DUT_MAC;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pcap")
}

fn stored(name: &str) -> (Counts, Counts) {
    let text = std::fs::read_to_string(fixtures().join(format!("{name}.counts"))).unwrap();
    let mut up = Counts::default();
    let mut down = Counts::default();
    for line in text.lines() {
        let v: Vec<&str> = line.split_whitespace().collect();
        let n = |i: usize| v[i].parse::<u64>().unwrap();
        let c = Counts {
            packets: n(1),
            l2_bytes: n(2),
            l3_bytes: n(3),
            payload_bytes: n(4),
        };
        match v[0] {
            "up" => up = c,
            "down" => down = c,
            other => panic!("bad line {other}"),
        }
    }
    (up, down)
}

#[test]
fn golden_captures_match_tshark_to_the_byte() {
    let mut seen = 0;
    for e in std::fs::read_dir(fixtures()).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".pcap") else {
            continue;
        };
        seen += 1;
        let ours = rig_net::account_pcap(&path, DUT_MAC).unwrap();
        let ts = tshark_counts(&path, &mac(DUT_MAC));
        let (up, down) = stored(stem);
        assert_eq!(ours.dir(Direction::Up).total, ts.up, "{name} up vs tshark");
        assert_eq!(
            ours.dir(Direction::Down).total,
            ts.down,
            "{name} down vs tshark"
        );
        assert_eq!(
            ours.dir(Direction::Up).total,
            up,
            "{name} up vs stored counts"
        );
        assert_eq!(
            ours.dir(Direction::Down).total,
            down,
            "{name} down vs stored counts"
        );
        let all = tshark_io_stat(&path, "frame");
        let m = ours.measurements();
        let get = |n: &str| m.iter().find(|x| x.name == n).unwrap().value as u64;
        assert_eq!(
            (get("net.packets"), get("net.l2_bytes")),
            all,
            "{name} io,stat"
        );
    }
    assert!(
        seen >= 3,
        "golden captures missing in {}",
        fixtures().display()
    );
}

#[test]
fn a_broken_capture_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut.pcap");
    let bytes = std::fs::read(fixtures().join("udp-coap.pcap")).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
    let e = rig_net::account_pcap(&p, DUT_MAC).unwrap_err().to_string();
    assert!(e.contains("cut.pcap") && e.contains("record 10"), "{e}");
}
