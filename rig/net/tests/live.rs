//! Live tests on real namespaces, veths and the bridge (need root, as in CI).
//! Each test builds its own SimNetwork, so they run in parallel.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{mac, tshark_counts, tshark_io_stat};
use rig_net::account::Direction;
use rig_net::netns::{DUT_MAC, SERVICES_ADDR};
use rig_net::{BridgeConfig, DirectionConfig, LossModel, SimNetwork, account_pcap};

/// Live tests take turns: the delay and rate checks measure wall-clock
/// timing, which other tests' traffic on the same 2 cores would disturb.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn svc(port: u16) -> SocketAddr {
    SocketAddr::new(SERVICES_ADDR.into(), port)
}

fn udp_pair(net: &SimNetwork, port: u16) -> (UdpSocket, UdpSocket) {
    let server = net.services().bind_udp(svc(port)).unwrap();
    let client = net.dut().bind_udp("0.0.0.0:0".parse().unwrap()).unwrap();
    for s in [&server, &client] {
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
    }
    client.connect(svc(port)).unwrap();
    (server, client)
}

#[test]
fn live_capture_accounting_equals_tshark_to_the_byte() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let net = SimNetwork::create("live-exact").unwrap();
    // A command really runs inside the DUT namespace.
    let out = net
        .dut()
        .command("ip")
        .unwrap()
        .args(["-4", "addr"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("10.77.0.2/24") && !text.contains("10.77.0.1/"),
        "{text}"
    );

    let cfg = BridgeConfig {
        run_pcap: Some(dir.path().join("run.pcap")),
        ..Default::default()
    };
    let bridge = net.start_bridge(cfg).unwrap();
    let case_pcap = dir.path().join("case.pcap");
    bridge.start_case(&case_pcap).unwrap();

    // UDP echo on the CoAP port, sizes 1..=1472 (a full 1514-byte frame).
    let (server, client) = udp_pair(&net, 5683);
    let mut buf = vec![0u8; 2000];
    for (i, size) in [1usize, 4, 100, 500, 1000, 1472, 1472, 37]
        .iter()
        .cycle()
        .take(64)
        .enumerate()
    {
        client.send(&vec![i as u8; *size]).unwrap();
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!(n, *size);
        server.send_to(&buf[..n / 2 + 1], from).unwrap();
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(n, size / 2 + 1);
    }

    // TCP both ways on the MQTT port: 300 kB up, 100 kB down.
    let listener = net.services().bind_tcp(svc(1883)).unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = vec![0u8; 300_000];
        s.read_exact(&mut got).unwrap();
        s.write_all(&vec![7u8; 100_000]).unwrap();
        got.iter().map(|b| u64::from(*b)).sum::<u64>()
    });
    let mut c = net
        .dut()
        .connect_tcp(svc(1883), Duration::from_secs(5))
        .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(&vec![1u8; 300_000]).unwrap();
    let mut back = vec![0u8; 100_000];
    c.read_exact(&mut back).unwrap();
    drop(c);
    assert_eq!(server.join().unwrap(), 300_000);
    std::thread::sleep(Duration::from_millis(200)); // let FIN/ACKs cross

    let case = bridge.end_case().unwrap();
    let summary = bridge.stop().unwrap();
    let ts = tshark_counts(&case.pcap, &mac(DUT_MAC));
    let acc = &case.accounting;
    assert_eq!(acc.dir(Direction::Up).total, ts.up, "up: ours vs tshark");
    assert_eq!(
        acc.dir(Direction::Down).total,
        ts.down,
        "down: ours vs tshark"
    );
    assert!(
        ts.max_frame_len <= 1514,
        "offloads off: max frame {}",
        ts.max_frame_len
    );
    assert_eq!(ts.max_frame_len, 1514, "a full-MTU frame was sent");
    // tshark's own io,stat agrees too.
    let (frames, bytes) = tshark_io_stat(&case.pcap, &format!("eth.src=={}", mac(DUT_MAC)));
    assert_eq!((frames, bytes), (ts.up.packets, ts.up.l2_bytes));
    // Accounting recomputed from the file equals the live one.
    let from_file = account_pcap(&case.pcap, DUT_MAC).unwrap();
    assert_eq!(from_file.dir(Direction::Up).total, ts.up);
    assert_eq!(from_file.dir(Direction::Down).total, ts.down);
    // Protocol split: the UDP echo is CoAP, the TCP stream is MQTT.
    let up = acc.dir(Direction::Up);
    assert_eq!(up.class(rig_net::frame::ProtoClass::Coap).packets, 64);
    assert!(up.class(rig_net::frame::ProtoClass::Mqtt).payload_bytes == 300_000);
    assert_eq!(
        acc.dir(Direction::Down)
            .class(rig_net::frame::ProtoClass::Mqtt)
            .payload_bytes,
        100_000
    );
    assert_eq!(
        up.ipv6_packets + acc.dir(Direction::Down).ipv6_packets,
        0,
        "no IPv6 chatter"
    );
    // Nothing dropped, nothing lost, everything captured in the run file.
    assert_eq!(summary.kernel_drops, [0, 0]);
    assert_eq!(summary.oversize_frames, 0);
    assert_eq!(summary.dropped, [0, 0]);
    assert_eq!(
        summary.captured,
        summary.forwarded[0] + summary.forwarded[1]
    );
    let run = tshark_counts(&dir.path().join("run.pcap"), &mac(DUT_MAC));
    assert_eq!(run.up.packets + run.down.packets, summary.captured);
    assert_eq!(std::fs::metadata(&case.dropped_pcap).unwrap().len(), 24);
    net.teardown().unwrap();
}

#[test]
fn live_loss_and_manual_cut() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let net = SimNetwork::create("live-loss").unwrap();
    let cfg = BridgeConfig {
        seed: 99,
        up: DirectionConfig {
            loss: Some(LossModel::Random { probability: 0.2 }),
            ..Default::default()
        },
        ..Default::default()
    };
    let bridge = net.start_bridge(cfg).unwrap();
    let (server, client) = udp_pair(&net, 5684);
    // Prime ARP so it does not take part in the loss below: retry until a
    // datagram gets through (each try has its own chance of loss).
    server
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let mut primed = false;
    for _ in 0..50 {
        client.send(b"prime").unwrap();
        if server.recv(&mut buf).is_ok() {
            primed = true;
            break;
        }
    }
    assert!(primed);
    while server.recv(&mut buf).is_ok() {}
    bridge.start_case(&dir.path().join("loss.pcap")).unwrap();
    let n = 2000u32;
    // Read concurrently so the receiver's socket buffer never overflows.
    let reader = {
        let server = server.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let mut got = 0u32;
            server
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            while server.recv(&mut buf).is_ok() {
                got += 1;
            }
            got
        })
    };
    for i in 0..n {
        client.send(&i.to_be_bytes()).unwrap();
        if i % 20 == 0 {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    let got = reader.join().unwrap();
    let case = bridge.end_case().unwrap();
    let lost = f64::from(n - got) / f64::from(n);
    assert!((lost - 0.2).abs() < 0.03, "loss {lost}");
    assert_eq!(case.accounting.dropped[0], u64::from(n - got));
    let dropped = tshark_counts(&case.dropped_pcap, &mac(DUT_MAC));
    assert_eq!(dropped.up.packets, u64::from(n - got));
    let passed = tshark_counts(&case.pcap, &mac(DUT_MAC));
    assert_eq!(passed.up.packets, u64::from(got));

    // A manual cut drops everything; restore lets traffic through again.
    bridge.cut(None, None).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    for _ in 0..20 {
        client.send(b"x").unwrap();
    }
    server
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(server.recv(&mut buf).is_err(), "cut link delivered a frame");
    bridge.restore(None).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let mut through = 0;
    for _ in 0..20 {
        client.send(b"y").unwrap();
    }
    while server.recv(&mut buf).is_ok() {
        through += 1;
    }
    assert!(through > 5, "after restore only {through} of 20 (20% loss)");
    let summary = bridge.stop().unwrap();
    assert!(summary.events.len() >= 4, "{:?}", summary.events);
}

#[test]
fn live_cut_after_bytes_of_a_flow_cuts_both_ways_from_that_frame() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let net = SimNetwork::create("live-cutbytes").unwrap();
    let cfg = BridgeConfig {
        cut_both_ways: true,
        up: DirectionConfig {
            cut: Some(rig_net::CutSpec {
                trigger: rig_net::CutTrigger::AfterBytes {
                    bytes: 1000,
                    flow: rig_net::FlowMatch {
                        port: Some(5687),
                        ..Default::default()
                    },
                },
                duration_ms: None,
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let bridge = net.start_bridge(cfg).unwrap();
    bridge.start_case(&dir.path().join("cut.pcap")).unwrap();
    let (server, client) = udp_pair(&net, 5687);
    server
        .set_read_timeout(Some(Duration::from_millis(150)))
        .unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(150)))
        .unwrap();
    let mut buf = [0u8; 256];
    let mut delivered = Vec::new();
    for i in 0..15u8 {
        client.send(&[i; 100]).unwrap();
        if let Ok(n) = server.recv(&mut buf) {
            delivered.push(buf[0]);
            assert_eq!(n, 100);
        }
    }
    // 10 × 100 payload bytes = 1000 pass; the 11th frame starts the cut.
    assert_eq!(delivered, (0..10).collect::<Vec<u8>>());
    // The other direction is cut too.
    let dut_addr = client.local_addr().unwrap().port();
    server
        .send_to(
            b"down",
            SocketAddr::new(rig_net::netns::DUT_ADDR.into(), dut_addr),
        )
        .unwrap();
    assert!(client.recv(&mut buf).is_err(), "downlink should be cut too");
    let case = bridge.end_case().unwrap();
    let dropped = tshark_counts(&case.dropped_pcap, &mac(DUT_MAC));
    assert_eq!(dropped.up.packets, 5);
    assert_eq!(dropped.up.payload_bytes, 500);
    assert_eq!(dropped.down.packets, 1);
    bridge.stop().unwrap();
}

/// Indices (first 4 payload bytes) of the uplink datagrams in a capture.
fn indices(pcap: &std::path::Path) -> Vec<u32> {
    rig_net::pcap::read_pcap(pcap)
        .unwrap()
        .iter()
        .filter(|r| r.data.len() >= 46 && r.data[6..12] == DUT_MAC && r.data[23] == 17)
        .map(|r| u32::from_be_bytes([r.data[42], r.data[43], r.data[44], r.data[45]]))
        .collect()
}

#[test]
fn live_same_seed_drops_the_same_datagrams_as_the_pure_core() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let net = SimNetwork::create("live-seed").unwrap();
    // Fill both ARP caches first, so only our datagrams cross below.
    let bridge = net.start_bridge(BridgeConfig::default()).unwrap();
    let (server, client) = udp_pair(&net, 5688);
    let mut buf = [0u8; 64];
    client.send(b"hello").unwrap();
    let (_, from) = server.recv_from(&mut buf).unwrap();
    server.send_to(b"hi", from).unwrap();
    client.recv(&mut buf).unwrap();
    bridge.stop().unwrap();

    let loss = DirectionConfig {
        loss: Some(LossModel::Random { probability: 0.3 }),
        ..Default::default()
    };
    let mut runs = Vec::new();
    for (i, seed) in [7u64, 7, 8].into_iter().enumerate() {
        let pcap = dir.path().join(format!("seed{i}.pcap"));
        let bridge = net
            .start_bridge(BridgeConfig {
                seed,
                up: loss.clone(),
                ..Default::default()
            })
            .unwrap();
        bridge.start_case(&pcap).unwrap();
        for k in 0..500u32 {
            client.send(&k.to_be_bytes()).unwrap();
            std::thread::sleep(Duration::from_micros(100));
        }
        std::thread::sleep(Duration::from_millis(50));
        let case = bridge.end_case().unwrap();
        bridge.stop().unwrap();
        let passed = indices(&case.pcap);
        let dropped = indices(&case.dropped_pcap);
        assert_eq!(passed.len() + dropped.len(), 500, "seed {seed}");
        runs.push(dropped);
    }
    assert_eq!(runs[0], runs[1], "same seed, same drops");
    assert_ne!(runs[0], runs[2], "other seed, other drops");
    // And they are exactly the frames the pure core drops for that seed.
    let mut p = rig_net::Pipeline::new(&loss, 7, 0).unwrap();
    let mut expect = Vec::new();
    for k in 0..500u32 {
        p.handle_frame(Duration::ZERO, vec![0; 60]);
        if p.poll_dropped().is_some() {
            expect.push(k);
        }
    }
    assert_eq!(runs[0], expect);
}

fn rtt_median(client: &UdpSocket, server: &UdpSocket, n: usize) -> Duration {
    let mut buf = [0u8; 64];
    let mut v = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        client.send(b"ping").unwrap();
        let (_, from) = server.recv_from(&mut buf).unwrap();
        server.send_to(b"pong", from).unwrap();
        client.recv(&mut buf).unwrap();
        v.push(t.elapsed());
    }
    v.sort();
    v[n / 2]
}

#[test]
fn live_delay_is_within_one_ms_and_rate_within_two_percent() {
    let _serial = serial();
    let net = SimNetwork::create("live-delay").unwrap();
    let bridge = net.start_bridge(BridgeConfig::default()).unwrap();
    let (server, client) = udp_pair(&net, 5685);
    rtt_median(&client, &server, 5);
    let base = rtt_median(&client, &server, 50);
    bridge.stop().unwrap();
    let cfg = BridgeConfig {
        up: DirectionConfig {
            delay_ms: 15.0,
            ..Default::default()
        },
        down: DirectionConfig {
            delay_ms: 10.0,
            ..Default::default()
        },
        ..Default::default()
    };
    let bridge = net.start_bridge(cfg).unwrap();
    let delayed = rtt_median(&client, &server, 50);
    let added = delayed.saturating_sub(base).as_secs_f64() * 1000.0;
    assert!(
        (added - 25.0).abs() <= 1.0,
        "added {added} ms (base {base:?})"
    );
    bridge.stop().unwrap();

    // Rate limit: 2 Mbit/s with a queue big enough for the whole burst.
    let cfg = BridgeConfig {
        up: DirectionConfig {
            rate_kbit: Some(2000.0),
            queue_bytes: Some(10_000_000),
            ..Default::default()
        },
        ..Default::default()
    };
    let bridge = net.start_bridge(cfg).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let n = 300usize;
    for _ in 0..n {
        client.send(&[0u8; 1000]).unwrap(); // 1042-byte frames
    }
    let mut buf = [0u8; 2048];
    let mut first = None;
    let mut last = Instant::now();
    for _ in 0..n {
        server.recv(&mut buf).unwrap();
        last = Instant::now();
        first.get_or_insert(last);
    }
    let span = last - first.unwrap();
    let rate = (n - 1) as f64 * 1042.0 * 8.0 / span.as_secs_f64();
    assert!(
        (rate - 2_000_000.0).abs() / 2_000_000.0 < 0.02,
        "rate {rate}"
    );
    bridge.stop().unwrap();
}

#[test]
fn live_nat_rebinding_changes_the_source_port_and_maps_replies() {
    let _serial = serial();
    let net = SimNetwork::create("live-nat").unwrap();
    let bridge = net
        .start_bridge(BridgeConfig {
            seed: 3,
            ..Default::default()
        })
        .unwrap();
    let (server, client) = udp_pair(&net, 5686);
    let mut buf = [0u8; 64];
    client.send(b"a").unwrap();
    let (_, from1) = server.recv_from(&mut buf).unwrap();
    assert_eq!(from1.port(), client.local_addr().unwrap().port());
    bridge.rebind_nat().unwrap();
    std::thread::sleep(Duration::from_millis(10));
    client.send(b"b").unwrap();
    let (_, from2) = server.recv_from(&mut buf).unwrap();
    assert_ne!(from2.port(), from1.port(), "source port changed");
    // A reply to the new binding reaches the DUT (checksums fixed, else
    // the DUT's kernel would drop it).
    server.send_to(b"new", from2).unwrap();
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"new");
    // A reply to the old binding is dropped.
    server.send_to(b"old", from1).unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(client.recv(&mut buf).is_err());
    let s = bridge.stop().unwrap();
    assert_eq!(s.dropped[1], 1);
}

#[test]
fn two_runs_coexist_and_stale_namespaces_are_cleaned() {
    let _serial = serial();
    let a = SimNetwork::create("coexist-a").unwrap();
    let b = SimNetwork::create("coexist-b").unwrap();
    assert_ne!(a.dut().name(), b.dut().name());
    // A leftover from a "crashed" run: a PID that cannot exist.
    let stale = "rig-4194999-crashed-dut";
    assert!(!std::path::Path::new("/proc/4194999").exists());
    let st = std::process::Command::new("ip")
        .args(["netns", "add", stale])
        .status()
        .unwrap();
    assert!(st.success());
    // (Another test's create() may clean it first; either way it is gone.)
    rig_net::cleanup_stale().unwrap();
    assert!(!std::path::Path::new("/var/run/netns").join(stale).exists());
    let name = a.dut().name().to_owned();
    assert!(
        std::path::Path::new("/var/run/netns").join(&name).exists(),
        "live run kept"
    );
    drop(a);
    assert!(
        !std::path::Path::new("/var/run/netns").join(&name).exists(),
        "Drop tears down"
    );
    b.teardown().unwrap();
    // The Ctrl-C path: delete this process's namespaces without a handle.
    let c = SimNetwork::create("coexist-c").unwrap();
    let removed = rig_net::cleanup_own().unwrap();
    assert!(removed.iter().any(|r| r == c.dut().name()), "{removed:?}");
    assert!(!c.dut().path().exists());
    drop(c); // finds nothing left, quietly
}

/// The real-bench path: libpcap on an interface with a BPF filter. Here the
/// "NIC" is the DUT namespace's eth0 (opened from inside it).
#[cfg(feature = "libpcap")]
#[test]
fn libpcap_capture_on_an_interface_matches_tshark() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let net = SimNetwork::create("live-libpcap").unwrap();
    let bridge = net.start_bridge(BridgeConfig::default()).unwrap();
    let out = dir.path().join("nic.pcap");
    let mut cap = net
        .dut()
        .run(|| rig_net::nic::NicCapture::open("eth0", "udp port 5689", DUT_MAC, &out))
        .unwrap()
        .unwrap();
    let (server, client) = udp_pair(&net, 5689);
    let mut buf = [0u8; 2048];
    for i in 0..20usize {
        client.send(&vec![1u8; 10 + i * 50]).unwrap();
        let (n, from) = server.recv_from(&mut buf).unwrap();
        server.send_to(&buf[..n / 3], from).unwrap();
        client.recv(&mut buf).unwrap();
    }
    // Unrelated traffic the BPF filter must exclude.
    let (s2, c2) = udp_pair(&net, 5690);
    c2.send(b"not captured").unwrap();
    s2.recv(&mut buf).unwrap();
    let mut got = 0;
    for _ in 0..40 {
        got += cap.poll().unwrap();
        if got >= 40 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let acc = cap.finish().unwrap();
    assert_eq!(got, 40);
    let ts = tshark_counts(&out, &mac(DUT_MAC));
    assert_eq!(acc.dir(Direction::Up).total, ts.up);
    assert_eq!(acc.dir(Direction::Down).total, ts.down);
    assert_eq!(ts.up.packets, 20);
    assert_eq!(ts.down.packets, 20);
    bridge.stop().unwrap();
}
