//! Just enough frame parsing for accounting and NAT: Ethernet II (with one
//! optional 802.1Q tag), IPv4, IPv6, UDP and TCP.
//!
//! [`FrameInfo::parse`] never panics: a frame too short for the header it
//! claims to carry is accounted as far as it could be read (its L2 length
//! always counts; L3 and payload only when their headers are whole).
//! The lengths follow tshark's fields: `frame.len`, `ip.len` /
//! `ipv6.plen + 40`, `udp.length - 8`, `tcp.len`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_VLAN: u16 = 0x8100;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// The protocol classes that accounting splits by (by UDP/TCP port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtoClass {
    /// CoAP and CoAP over DTLS: UDP/TCP ports 5683, 5684, 5783, 5784.
    Coap,
    /// MQTT and MQTT over TLS: ports 1883, 8883.
    Mqtt,
    /// HTTP and HTTPS: ports 80, 443, 8080, 8443.
    Http,
    /// Everything else, including ARP and non-IP frames.
    Other,
}

impl ProtoClass {
    /// All classes, in report order.
    pub const ALL: [ProtoClass; 4] = [Self::Coap, Self::Mqtt, Self::Http, Self::Other];

    /// The class of a port, if it is one of the well-known ones.
    pub fn of_port(port: u16) -> Option<Self> {
        match port {
            5683 | 5684 | 5783 | 5784 => Some(Self::Coap),
            1883 | 8883 => Some(Self::Mqtt),
            80 | 443 | 8080 | 8443 => Some(Self::Http),
            _ => None,
        }
    }

    /// The lower-case name used in measurement names (`coap`, `mqtt`, `http`, `other`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Coap => "coap",
            Self::Mqtt => "mqtt",
            Self::Http => "http",
            Self::Other => "other",
        }
    }
}

/// Transport protocol of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// Another IP protocol (ICMP, ...), with its number.
    OtherIp(u8),
    /// Not IP (ARP, LLDP, ...) or unreadable.
    None,
}

/// A 5-tuple identifying a UDP or TCP flow in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Transport protocol (`Udp` or `Tcp`).
    pub transport: Transport,
    /// Source address.
    pub src: IpAddr,
    /// Source port.
    pub src_port: u16,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port.
    pub dst_port: u16,
}

/// What accounting needs to know about one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// Whole Ethernet frame length, no FCS (tshark `frame.len`).
    pub l2_len: usize,
    /// IP packet length (IPv4 total length, or IPv6 40 + payload length); 0 if not IP.
    pub l3_len: usize,
    /// Transport payload length (UDP length - 8, or TCP segment data); 0 otherwise.
    pub payload_len: usize,
    /// EtherType after any VLAN tag (0 if the frame is shorter than 14 bytes).
    pub ethertype: u16,
    /// Source MAC address (zeros if the frame is too short).
    pub src_mac: [u8; 6],
    /// Transport protocol.
    pub transport: Transport,
    /// The flow, for UDP and TCP with a whole header.
    pub flow: Option<FlowKey>,
    /// Protocol class by port.
    pub class: ProtoClass,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

impl FrameInfo {
    /// Parses an Ethernet frame. Never panics; see the module doc.
    pub fn parse(frame: &[u8]) -> FrameInfo {
        let mut info = FrameInfo {
            l2_len: frame.len(),
            l3_len: 0,
            payload_len: 0,
            ethertype: 0,
            src_mac: [0; 6],
            transport: Transport::None,
            flow: None,
            class: ProtoClass::Other,
        };
        if frame.len() < 14 {
            return info;
        }
        info.src_mac.copy_from_slice(&frame[6..12]);
        let mut off = 12;
        let mut ethertype = be16(frame, off).unwrap_or(0);
        if ethertype == ETHERTYPE_VLAN {
            off += 4;
            ethertype = be16(frame, off).unwrap_or(0);
        }
        off += 2;
        info.ethertype = ethertype;
        let ip = &frame[off.min(frame.len())..];
        let (proto, l4, src, dst, l4_len) = match ethertype {
            ETHERTYPE_IPV4 => {
                if ip.len() < 20 || ip[0] >> 4 != 4 {
                    return info;
                }
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                let total = usize::from(be16(ip, 2).unwrap_or(0));
                info.l3_len = total;
                // A non-first fragment carries no transport header.
                let frag_off = be16(ip, 6).unwrap_or(0) & 0x1fff;
                if ihl < 20 || total < ihl || ip.len() < ihl || frag_off != 0 {
                    info.transport = Transport::OtherIp(ip[9]);
                    return info;
                }
                let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
                let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
                (
                    ip[9],
                    &ip[ihl..],
                    IpAddr::V4(src),
                    IpAddr::V4(dst),
                    total - ihl,
                )
            }
            ETHERTYPE_IPV6 => {
                if ip.len() < 40 || ip[0] >> 4 != 6 {
                    return info;
                }
                let plen = usize::from(be16(ip, 4).unwrap_or(0));
                info.l3_len = 40 + plen;
                let mut s = [0u8; 16];
                let mut d = [0u8; 16];
                s.copy_from_slice(&ip[8..24]);
                d.copy_from_slice(&ip[24..40]);
                (
                    ip[6],
                    &ip[40..],
                    IpAddr::V6(Ipv6Addr::from(s)),
                    IpAddr::V6(Ipv6Addr::from(d)),
                    plen,
                )
            }
            _ => return info,
        };
        let (transport, payload, sport, dport) = match proto {
            IPPROTO_UDP if l4.len() >= 8 => {
                let len = usize::from(be16(l4, 4).unwrap_or(0));
                (
                    Transport::Udp,
                    len.saturating_sub(8),
                    be16(l4, 0),
                    be16(l4, 2),
                )
            }
            IPPROTO_TCP if l4.len() >= 20 => {
                let hdr = usize::from(l4[12] >> 4) * 4;
                (
                    Transport::Tcp,
                    l4_len.saturating_sub(hdr),
                    be16(l4, 0),
                    be16(l4, 2),
                )
            }
            p => (Transport::OtherIp(p), 0, None, None),
        };
        info.transport = transport;
        info.payload_len = payload;
        if let (Some(sp), Some(dp)) = (sport, dport) {
            info.flow = Some(FlowKey {
                transport,
                src,
                src_port: sp,
                dst,
                dst_port: dp,
            });
            info.class = ProtoClass::of_port(dp)
                .or_else(|| ProtoClass::of_port(sp))
                .unwrap_or(ProtoClass::Other);
        }
        info
    }
}

/// The Internet checksum (RFC 1071) of `data`, folded, starting from `initial`.
pub fn internet_checksum(initial: u32, data: &[u8]) -> u16 {
    let mut sum = initial;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        // Fold early so the sum never overflows, whatever the length.
        if sum > 0xffff_0000 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(u16::from_be_bytes([*last, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Location of the UDP header of an IPv4/UDP Ethernet frame, if it is one.
/// Returns `(ip_offset, udp_offset, udp_len)`.
pub(crate) fn ipv4_udp_offsets(frame: &[u8]) -> Option<(usize, usize, usize)> {
    let mut off = 12;
    let mut et = be16(frame, off)?;
    if et == ETHERTYPE_VLAN {
        off += 4;
        et = be16(frame, off)?;
    }
    off += 2;
    if et != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = frame.get(off..)?;
    if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != IPPROTO_UDP {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if be16(ip, 6)? & 0x1fff != 0 || ihl < 20 {
        return None;
    }
    let udp_len = usize::from(be16(ip, ihl + 4)?);
    if udp_len < 8 || ip.len() < ihl + udp_len {
        return None;
    }
    Some((off, off + ihl, udp_len))
}

/// Recomputes the UDP checksum of an IPv4/UDP frame in place. A zero
/// checksum (sender chose none) stays zero. Returns false if the frame is
/// not IPv4/UDP.
pub fn fix_ipv4_udp_checksum(frame: &mut [u8]) -> bool {
    let Some((ip, udp, len)) = ipv4_udp_offsets(frame) else {
        return false;
    };
    if frame[udp + 6] == 0 && frame[udp + 7] == 0 {
        return true;
    }
    frame[udp + 6] = 0;
    frame[udp + 7] = 0;
    let mut pseudo: u32 = 0;
    for i in (ip + 12..ip + 20).step_by(2) {
        pseudo += u32::from(u16::from_be_bytes([frame[i], frame[i + 1]]));
    }
    pseudo += u32::from(IPPROTO_UDP);
    pseudo += len as u32;
    let mut sum = internet_checksum(pseudo, &frame[udp..udp + len]);
    if sum == 0 {
        sum = 0xffff;
    }
    frame[udp + 6..udp + 8].copy_from_slice(&sum.to_be_bytes());
    true
}

/// Checks the IPv4 header checksum and, when present, the UDP checksum of
/// an IPv4/UDP frame. Returns None if the frame is not IPv4/UDP.
pub fn ipv4_udp_checksums_ok(frame: &[u8]) -> Option<bool> {
    let (ip, udp, len) = ipv4_udp_offsets(frame)?;
    let ihl = udp - ip;
    let ip_ok = internet_checksum(0, &frame[ip..ip + ihl]) == 0;
    if frame[udp + 6] == 0 && frame[udp + 7] == 0 {
        return Some(ip_ok);
    }
    let mut pseudo: u32 = 0;
    for i in (ip + 12..ip + 20).step_by(2) {
        pseudo += u32::from(u16::from_be_bytes([frame[i], frame[i + 1]]));
    }
    pseudo += u32::from(IPPROTO_UDP) + len as u32;
    Some(ip_ok && internet_checksum(pseudo, &frame[udp..udp + len]) == 0)
}

#[cfg(test)]
pub(crate) mod test {
    use super::*;

    /// A UDP datagram 10.77.0.2:40000 -> 10.77.0.1:5683 carrying 4 bytes
    /// (a CoAP empty CON), with valid IPv4 and UDP checksums
    /// (verified with tshark `-o udp.check_checksum:TRUE`).
    pub(crate) static UDP_FRAME: [u8; 46] = [
        0x02, 0x72, 0x69, 0x67, 0x00, 0x01, // dst mac
        0x02, 0x72, 0x69, 0x67, 0x00, 0x02, // src mac
        0x08, 0x00, // IPv4
        0x45, 0x00, 0x00, 0x20, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, // ihl..csum
        10, 77, 0, 2, 10, 77, 0, 1, // addrs
        0x9c, 0x40, 0x16, 0x33, 0x00, 0x0c, 0x00, 0x00, // udp
        0x40, 0x00, 0x12, 0x34, // CoAP
    ];

    pub(crate) fn udp_frame() -> Vec<u8> {
        let mut f = UDP_FRAME.to_vec();
        let c = internet_checksum(0, &f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f[40] = 1; // nonzero so fix recomputes it
        assert!(fix_ipv4_udp_checksum(&mut f));
        f
    }

    #[test]
    fn test_parse_udp() {
        let f = udp_frame();
        let i = FrameInfo::parse(&f);
        assert_eq!(i.l2_len, 46);
        assert_eq!(i.l3_len, 32);
        assert_eq!(i.payload_len, 4);
        assert_eq!(i.transport, Transport::Udp);
        assert_eq!(i.class, ProtoClass::Coap);
        let flow = i.flow.expect("flow");
        assert_eq!(flow.src_port, 40000);
        assert_eq!(flow.dst_port, 5683);
        assert_eq!(ipv4_udp_checksums_ok(&f), Some(true));
    }

    #[test]
    fn test_checksum_rfc1071_example() {
        // RFC 1071 §3 example: 0001 f203 f4f5 f6f7 sums to ddf2, checksum 220d.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet_checksum(0, &d), 0x220d);
    }

    #[test]
    fn test_short_and_garbage_frames() {
        assert_eq!(FrameInfo::parse(&[]).l2_len, 0);
        let i = FrameInfo::parse(&[0u8; 13]);
        assert_eq!((i.l2_len, i.l3_len), (13, 0));
        let mut f = udp_frame();
        f.truncate(30);
        let i = FrameInfo::parse(&f);
        assert_eq!((i.l2_len, i.l3_len, i.payload_len), (30, 0, 0));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let i = FrameInfo::parse(&data);
            proptest::prop_assert_eq!(i.l2_len, data.len());
        }

        #[test]
        fn fix_checksum_after_port_change(port in 1u16.., payload in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut f = udp_frame();
            f.truncate(42);
            f.extend_from_slice(&payload);
            let ulen = (8 + payload.len()) as u16;
            f[38..40].copy_from_slice(&ulen.to_be_bytes());
            let tot = (28 + payload.len()) as u16;
            f[16..18].copy_from_slice(&tot.to_be_bytes());
            f[24] = 0; f[25] = 0;
            let c = internet_checksum(0, &f[14..34]);
            f[24..26].copy_from_slice(&c.to_be_bytes());
            f[34..36].copy_from_slice(&port.to_be_bytes());
            f[40] = 0xaa;
            proptest::prop_assert!(fix_ipv4_udp_checksum(&mut f));
            proptest::prop_assert_eq!(ipv4_udp_checksums_ok(&f), Some(true));
        }
    }
}
