//! Regenerates the golden captures in `fixtures/pcap/` (run as root):
//!
//! ```sh
//! cargo run -p rig-net --example golden -- fixtures/pcap
//! sh fixtures/pcap/counts.sh     # tshark's counts beside each file
//! ```
//!
//! - `udp-coap.pcap`: a live CoAP-sized UDP exchange over the bridge
//!   (with the ARP that precedes it).
//! - `tcp-mqtt.pcap`: a live TCP session on port 1883, handshake to FIN.
//! - `edge-cases.pcap`: hand-built frames: VLAN tag, IPv6/UDP, ICMP,
//!   Ethernet padding (frame longer than IP), a non-first IPv4 fragment,
//!   an unknown EtherType, TCP with options on 8883.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use rig_net::frame::{fix_ipv4_udp_checksum, internet_checksum};
use rig_net::netns::{DUT_MAC, SERVICES_ADDR, SERVICES_MAC};
use rig_net::pcap::PcapWriter;
use rig_net::{BridgeConfig, NetError, SimNetwork};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fixtures/pcap".into()),
    );
    std::fs::create_dir_all(&out)?;
    live(&out)?;
    edge_cases(&out.join("edge-cases.pcap"))?;
    println!("wrote captures to {}", out.display());
    Ok(())
}

fn live(out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let net = SimNetwork::create("golden")?;
    let bridge = net.start_bridge(BridgeConfig::default())?;
    let svc = |p| SocketAddr::new(SERVICES_ADDR.into(), p);

    bridge.start_case(&out.join("udp-coap.pcap"))?;
    let server = net.services().bind_udp(svc(5683))?;
    let client = net.dut().bind_udp("0.0.0.0:56830".parse()?)?;
    server.set_read_timeout(Some(Duration::from_secs(2)))?;
    client.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0u8; 2048];
    for size in [20usize, 112, 1024, 4] {
        client.send_to(&vec![0x42; size], svc(5683))?;
        let (n, from) = server.recv_from(&mut buf)?;
        server.send_to(&buf[..n.min(16)], from)?;
        client.recv(&mut buf)?;
    }
    std::thread::sleep(Duration::from_millis(50));
    let c = bridge.end_case()?;
    println!(
        "udp-coap: {:?}",
        c.accounting.dir(rig_net::Direction::Up).total
    );

    bridge.start_case(&out.join("tcp-mqtt.pcap"))?;
    let listener = net.services().bind_tcp(svc(1883))?;
    let t = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        let mut b = vec![0u8; 5000];
        s.read_exact(&mut b)?;
        s.write_all(&[0x20, 0x02, 0x00, 0x00])?;
        let mut rest = Vec::new();
        s.read_to_end(&mut rest)?;
        Ok(())
    });
    let mut s = net.dut().connect_tcp(svc(1883), Duration::from_secs(2))?;
    s.write_all(&vec![0x10; 5000])?;
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack)?;
    drop(s);
    t.join().map_err(|_| "server thread panicked")??;
    std::thread::sleep(Duration::from_millis(100));
    let c = bridge.end_case()?;
    println!(
        "tcp-mqtt: {:?}",
        c.accounting.dir(rig_net::Direction::Up).total
    );
    bridge.stop()?;
    net.teardown()?;
    for f in ["udp-coap", "tcp-mqtt"] {
        // The dropped files are empty here; keep only the main captures.
        std::fs::remove_file(out.join(format!("{f}.dropped.pcap"))).ok();
    }
    Ok(())
}

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], payload: &[u8], frag: u16) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 0, 0x12, 0x34, 0, 0, 64, proto, 0, 0];
    let total = (20 + payload.len()) as u16;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6..8].copy_from_slice(&frag.to_be_bytes());
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = internet_checksum(0, &ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(payload);
    ip
}

fn udp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    u
}

fn edge_cases(path: &Path) -> Result<(), NetError> {
    const DUT: [u8; 4] = [10, 77, 0, 2];
    const SVC: [u8; 4] = [10, 77, 0, 1];
    let mut frames: Vec<Vec<u8>> = Vec::new();
    // ARP request from the DUT (42 bytes, unpadded as on veth).
    let mut arp = eth([0xff; 6], DUT_MAC, 0x0806);
    arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&DUT_MAC);
    arp.extend_from_slice(&DUT);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&SVC);
    frames.push(arp);
    // VLAN 7, IPv4/UDP to CoAP.
    let mut v = eth(SERVICES_MAC, DUT_MAC, 0x8100);
    v.extend_from_slice(&[0x00, 0x07, 0x08, 0x00]);
    v.extend_from_slice(&ipv4(17, DUT, SVC, &udp(40001, 5683, b"vlan-coap"), 0));
    frames.push(v);
    // IPv6/UDP from services to DUT on 5684.
    let mut v6 = eth(DUT_MAC, SERVICES_MAC, 0x86dd);
    let u = udp(5684, 40002, &[0x17; 33]);
    v6.extend_from_slice(&[0x60, 0, 0, 0]);
    v6.extend_from_slice(&(u.len() as u16).to_be_bytes());
    v6.extend_from_slice(&[17, 64]);
    v6.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    v6.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    v6.extend_from_slice(&u);
    frames.push(v6);
    // ICMP echo request from the DUT.
    let mut icmp = vec![8, 0, 0, 0, 0, 1, 0, 1];
    icmp.extend_from_slice(&[0xab; 56]);
    let c = internet_checksum(0, &icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = eth(SERVICES_MAC, DUT_MAC, 0x0800);
    f.extend_from_slice(&ipv4(1, DUT, SVC, &icmp, 0));
    frames.push(f);
    // Tiny UDP padded to the 60-byte Ethernet minimum (frame > IP).
    let mut f = eth(DUT_MAC, SERVICES_MAC, 0x0800);
    f.extend_from_slice(&ipv4(17, SVC, DUT, &udp(1883, 40003, b"p"), 0));
    fix_ipv4_udp_checksum(&mut f);
    f.resize(60, 0);
    frames.push(f);
    // A non-first IPv4 fragment (offset 185 * 8 = 1480) of a UDP datagram.
    let mut f = eth(SERVICES_MAC, DUT_MAC, 0x0800);
    f.extend_from_slice(&ipv4(17, DUT, SVC, &[0x55; 100], 185));
    frames.push(f);
    // Unknown EtherType (LLDP).
    let mut f = eth([0x01, 0x80, 0xc2, 0, 0, 0x0e], SERVICES_MAC, 0x88cc);
    f.extend_from_slice(&[0; 46]);
    frames.push(f);
    // TCP with timestamps on 8883 from services, 100 bytes of data.
    let mut tcp = vec![
        0x22, 0xb3, 0x9c, 0x44, 0, 0, 0, 1, 0, 0, 0, 1, 0x80, 0x18, 0x01, 0xf5, 0, 0, 0, 0,
    ];
    tcp.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    tcp.extend_from_slice(&[0x30; 100]);
    let mut f = eth(DUT_MAC, SERVICES_MAC, 0x0800);
    f.extend_from_slice(&ipv4(6, SVC, DUT, &tcp, 0x4000));
    frames.push(f);

    let mut w = PcapWriter::create(path)?;
    let t0 = UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    for (i, f) in frames.iter().enumerate() {
        w.write(t0 + Duration::from_millis(37 * i as u64), f)?;
    }
    w.flush()?;
    Ok(())
}
