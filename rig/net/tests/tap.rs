//! The bridge's frame tap on real namespaces (needs root, as in CI): it sees
//! the DUT's frames with their directions and whole-frame lengths, uplink
//! frames even when the link then drops them, and a full tap drops and
//! counts instead of holding the bridge up.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use rig_net::account::Direction;
use rig_net::netns::SERVICES_ADDR;
use rig_net::{BridgeConfig, SimNetwork, TappedFrame};

/// UDP over IPv4 over Ethernet: 14 + 20 + 8 bytes of headers.
const HEADERS: usize = 42;

fn pair(net: &SimNetwork, port: u16) -> (UdpSocket, UdpSocket) {
    let addr = SocketAddr::new(SERVICES_ADDR.into(), port);
    let server = net.services().bind_udp(addr).unwrap();
    let client = net.dut().bind_udp("0.0.0.0:0".parse().unwrap()).unwrap();
    for s in [&server, &client] {
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
    }
    client.connect(addr).unwrap();
    (server, client)
}

/// The tapped UDP frames with each of `payloads` bytes of payload, waiting
/// at most 2 s for `want` of each. Frames of the other sizes are kept, not
/// dropped: the tap interleaves both directions.
fn udp_frames(tap: &rig_net::FrameTap, payloads: &[usize], want: usize) -> Vec<Vec<TappedFrame>> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut out = vec![Vec::new(); payloads.len()];
    while out.iter().any(|v| v.len() < want) && Instant::now() < deadline {
        if let Some(f) = tap.recv_timeout(Duration::from_millis(50))
            && let Some(i) = payloads.iter().position(|p| f.l2_len == p + HEADERS)
        {
            out[i].push(f);
        }
    }
    out
}

#[test]
fn the_tap_sees_each_frame_the_dut_sends_and_receives() {
    if rig_net::check_capabilities().is_err() {
        eprintln!("skipped: needs CAP_NET_ADMIN (root in CI)");
        return;
    }
    let net = SimNetwork::create("tap-dirs").unwrap();
    let bridge = net.start_bridge(BridgeConfig::default()).unwrap();
    let tap = bridge.tap(1024).unwrap();
    let (server, client) = pair(&net, 6101);
    let mut buf = [0u8; 2048];
    let before = Instant::now();
    for _ in 0..3 {
        client.send(&[7u8; 300]).unwrap();
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!(n, 300);
        server.send_to(&[9u8; 123], from).unwrap();
        assert_eq!(client.recv(&mut buf).unwrap(), 123);
    }
    let mut frames = udp_frames(&tap, &[300, 123], 3).into_iter();
    let (up, down) = (frames.next().unwrap(), frames.next().unwrap());
    assert_eq!(up.len(), 3, "{up:?}");
    assert_eq!(down.len(), 3, "{down:?}");
    assert!(up.iter().all(|f| f.direction == Direction::Up));
    assert!(down.iter().all(|f| f.direction == Direction::Down));
    // Times are the bridge's, in order, and near now.
    for w in up.windows(2) {
        assert!(w[1].at >= w[0].at && w[1].since_start >= w[0].since_start);
    }
    assert!(up[0].at + Duration::from_millis(1) >= before);
    assert!(up[0].at <= Instant::now());
    assert_eq!(tap.dropped(), 0);
    bridge.stop().unwrap();
}

#[test]
fn the_tap_sees_uplink_frames_the_link_drops_and_a_full_tap_counts_drops() {
    if rig_net::check_capabilities().is_err() {
        eprintln!("skipped: needs CAP_NET_ADMIN (root in CI)");
        return;
    }
    let net = SimNetwork::create("tap-full").unwrap();
    let bridge = net.start_bridge(BridgeConfig::default()).unwrap();
    let tap = bridge.tap(1024).unwrap();
    let (server, client) = pair(&net, 6102);
    // One round trip first, so ARP is resolved before the cut.
    let mut buf = [0u8; 2048];
    client.send(&[0u8; 10]).unwrap();
    let (_, from) = server.recv_from(&mut buf).unwrap();
    server.send_to(&[0u8; 10], from).unwrap();
    client.recv(&mut buf).unwrap();
    let small = bridge.tap(2).unwrap();
    // The link is cut: the DUT still transmits, so the tap sees the frames.
    bridge.cut(Some(Direction::Up), None).unwrap();
    for _ in 0..10 {
        client.send(&[1u8; 200]).unwrap();
    }
    assert!(
        server.recv_from(&mut buf).is_err(),
        "the cut let a frame through"
    );
    let up = udp_frames(&tap, &[200], 10).remove(0);
    assert_eq!(up.len(), 10, "{up:?}");
    // The two-frame tap kept two and counted the rest, and the bridge went on.
    let kept = small.try_iter().count();
    assert_eq!(kept, 2);
    assert!(small.dropped() >= 8, "{}", small.dropped());
    bridge.restore(Some(Direction::Up)).unwrap();
    client.send(&[2u8; 50]).unwrap();
    assert_eq!(server.recv_from(&mut buf).unwrap().0, 50);
    // A dropped tap detaches; the bridge keeps forwarding.
    drop(tap);
    client.send(&[3u8; 60]).unwrap();
    assert_eq!(server.recv_from(&mut buf).unwrap().0, 60);
    bridge.stop().unwrap();
}
