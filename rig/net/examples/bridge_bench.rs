//! Benchmark of the link bridge against a plain veth pair, in one run
//! (needs root). Prints figures; speed targets live here, not in tests.
//!
//! ```sh
//! cargo run --release -p rig-net --example bridge_bench [-- seconds round_trips]
//! ```
//!
//! - Latency: UDP ping-pong with 1472-byte payloads (1514-byte frames),
//!   one-way = RTT / 2; median and p99; the bridge's added latency per
//!   frame is the difference from the plain pair.
//! - Throughput: one sender blasts 1514-byte frames for a few seconds; the
//!   receiver counts. Frames/s and Mbit/s (L2), and the ratio to the
//!   plain pair.
//! - Capture completeness: the run pcap must hold every frame the bridge
//!   forwarded (read back and counted), with capture on throughout.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rig_net::netns::SERVICES_ADDR;
use rig_net::{BridgeConfig, DirectLink, Namespace, SimNetwork};

/// The paced load at which no frame may be lost anywhere (frames/s).
const PACED_RATE: u64 = 10_000;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct Figures {
    median_us: f64,
    p99_us: f64,
    frames_per_s: f64,
    mbit_per_s: f64,
    sent: u64,
    received: u64,
    paced_sent: u64,
    paced_received: u64,
}

/// Sends `rate` frames/s for `secs` in 1 ms batches; returns (sent, received).
fn paced(dut: &Namespace, svc: &Namespace, rate: u64, secs: f64) -> Res<(u64, u64)> {
    let (server, client) = sockets(dut, svc, 9002)?;
    server.set_read_timeout(Some(Duration::from_millis(300)))?;
    let rx = std::thread::spawn(move || {
        let mut buf = vec![0u8; 2048];
        let mut n = 0u64;
        while server.recv(&mut buf).is_ok() {
            n += 1;
        }
        n
    });
    let payload = vec![0x33; 1472];
    let per_ms = rate / 1000;
    let start = Instant::now();
    let ticks = (secs * 1000.0) as u64;
    let mut sent = 0;
    for tick in 0..ticks {
        let at = start + Duration::from_millis(tick);
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for _ in 0..per_ms {
            if client.send(&payload).is_ok() {
                sent += 1;
            }
        }
    }
    let got = rx.join().map_err(|_| "receiver panicked")?;
    Ok((sent, got))
}

fn sockets(dut: &Namespace, svc: &Namespace, port: u16) -> Res<(UdpSocket, UdpSocket)> {
    let server = svc.bind_udp(SocketAddr::new(SERVICES_ADDR.into(), port))?;
    let client = dut.bind_udp("0.0.0.0:0".parse()?)?;
    client.connect(SocketAddr::new(SERVICES_ADDR.into(), port))?;
    for s in [&server, &client] {
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
    }
    Ok((server, client))
}

fn measure(dut: &Namespace, svc: &Namespace, secs: f64, round_trips: usize) -> Res<Figures> {
    let (server, client) = sockets(dut, svc, 9000)?;
    let payload = vec![0x5a; 1472];
    let mut buf = vec![0u8; 2048];
    // Warm up (ARP, caches).
    for _ in 0..50 {
        client.send(&payload)?;
        let (_, from) = server.recv_from(&mut buf)?;
        server.send_to(&buf[..1472], from)?;
        client.recv(&mut buf)?;
    }
    let mut one_way = Vec::with_capacity(round_trips);
    for _ in 0..round_trips {
        let t = Instant::now();
        client.send(&payload)?;
        let (_, from) = server.recv_from(&mut buf)?;
        server.send_to(&buf[..1472], from)?;
        client.recv(&mut buf)?;
        one_way.push(t.elapsed().as_secs_f64() * 1e6 / 2.0);
    }
    one_way.sort_by(f64::total_cmp);
    let median_us = one_way[one_way.len() / 2];
    let p99_us = one_way[one_way.len() * 99 / 100];

    // Throughput: blast for `secs`, count what arrives.
    let (server, client) = sockets(dut, svc, 9001)?;
    server.set_read_timeout(Some(Duration::from_millis(300)))?;
    let stop = Arc::new(AtomicBool::new(false));
    let rx = std::thread::spawn(move || {
        let mut buf = vec![0u8; 2048];
        let mut n = 0u64;
        let mut first = None;
        let mut last = Instant::now();
        while server.recv(&mut buf).is_ok() {
            n += 1;
            last = Instant::now();
            first.get_or_insert(last);
        }
        (n, first.map(|f| last - f).unwrap_or_default())
    });
    let stop2 = stop.clone();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut sent = 0u64;
    while Instant::now() < deadline && !stop2.load(Ordering::Relaxed) {
        for _ in 0..64 {
            if client.send(&payload).is_ok() {
                sent += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (received, span) = rx.join().map_err(|_| "receiver panicked")?;
    let span = span.as_secs_f64().max(1e-9);
    let frames_per_s = received as f64 / span;
    let (paced_sent, paced_received) = paced(dut, svc, PACED_RATE, secs)?;
    Ok(Figures {
        paced_sent,
        paced_received,
        median_us,
        p99_us,
        frames_per_s,
        mbit_per_s: frames_per_s * 1514.0 * 8.0 / 1e6,
        sent,
        received,
    })
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(3.0);
    let rts: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(5000);

    let plain = {
        let link = DirectLink::create("bench-plain")?;
        measure(link.dut(), link.services(), secs, rts)?
    };

    let dir = std::env::temp_dir().join(format!("rig-net-bench-{}", std::process::id()));
    let run_pcap = dir.join("run.pcap");
    let net = SimNetwork::create("bench-bridge")?;
    let bridge = net.start_bridge(BridgeConfig {
        run_pcap: Some(run_pcap.clone()),
        ..Default::default()
    })?;
    let bridged = measure(net.dut(), net.services(), secs, rts)?;
    let summary = bridge.stop()?;
    let in_file = rig_net::pcap::read_pcap(&run_pcap)?.len() as u64;
    let forwarded = summary.forwarded[0] + summary.forwarded[1];
    std::fs::remove_dir_all(&dir).ok();

    println!("rig-net bridge benchmark ({secs} s blast, {rts} round trips, 1514-byte frames)");
    println!("| | plain veth | bridge + capture | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| one-way latency median (µs) | {:.1} | {:.1} | {:.2} |",
        plain.median_us,
        bridged.median_us,
        bridged.median_us / plain.median_us
    );
    println!(
        "| one-way latency p99 (µs) | {:.1} | {:.1} | {:.2} |",
        plain.p99_us,
        bridged.p99_us,
        bridged.p99_us / plain.p99_us
    );
    println!(
        "| throughput (frames/s) | {:.0} | {:.0} | {:.2} |",
        plain.frames_per_s,
        bridged.frames_per_s,
        bridged.frames_per_s / plain.frames_per_s
    );
    println!(
        "| throughput (Mbit/s, L2) | {:.0} | {:.0} | {:.2} |",
        plain.mbit_per_s,
        bridged.mbit_per_s,
        bridged.mbit_per_s / plain.mbit_per_s
    );
    println!(
        "| frames sent / received | {} / {} | {} / {} | |",
        plain.sent, plain.received, bridged.sent, bridged.received
    );
    println!(
        "| paced {PACED_RATE} frames/s: sent / received | {} / {} | {} / {} | |",
        plain.paced_sent, plain.paced_received, bridged.paced_sent, bridged.paced_received
    );
    println!(
        "added latency per frame: median {:.1} µs, p99 {:.1} µs",
        bridged.median_us - plain.median_us,
        bridged.p99_us - plain.p99_us
    );
    println!(
        "capture: {in_file} frames in the pcap, {forwarded} forwarded by the bridge, \
         {} lost in the bridge's socket buffers before capture, {} send failures",
        summary.kernel_drops[0] + summary.kernel_drops[1],
        summary.send_failures
    );
    if in_file != forwarded {
        return Err(
            format!("capture lost frames: {in_file} in file, {forwarded} forwarded").into(),
        );
    }
    println!("capture complete: every forwarded frame is in the pcap");
    net.teardown()?;
    Ok(())
}
