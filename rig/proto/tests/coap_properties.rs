//! Properties of the CoAP message layer: any sequence of datagrams,
//! timeouts and app calls never panics, never livelocks the timer and never
//! produces more than a bounded number of datagrams; the strict parser
//! agrees with coap-lite's encoder.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use rig_proto::coap::message::{self, parse, request, response};
use rig_proto::coap::{
    BlockValue, CoapOption, Config, Endpoint, Event, IncomingId, Method, ObservationId, Packet,
    ResponseCode,
};
use rig_proto::time::Instant;

#[derive(Debug, Clone)]
enum Op {
    /// Raw bytes from peer n.
    Datagram(u8, Vec<u8>),
    /// A valid-looking message with some fields chosen by proptest.
    Valid {
        peer: u8,
        ty: u8,
        code: u8,
        mid: u16,
        token: Vec<u8>,
        block: Option<u32>,
        observe: Option<u32>,
        payload: Vec<u8>,
    },
    Advance(u32),
    Timeout,
    Send {
        peer: u8,
        con: bool,
        observe: bool,
        payload_len: u16,
    },
    RespondOldest {
        observe: bool,
        payload_len: u16,
    },
    Notify {
        con: bool,
    },
    Cancel(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3, proptest::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(p, b)| Op::Datagram(p, b)),
        (
            0u8..3,
            0u8..4,
            prop_oneof![
                Just(0u8),
                Just(1),
                Just(2),
                Just(4),
                Just(0x44),
                Just(0x45),
                Just(0x5f),
                Just(0x84),
                any::<u8>()
            ],
            0u16..8,
            proptest::collection::vec(any::<u8>(), 0..3),
            proptest::option::of(0u32..0x100),
            proptest::option::of(0u32..4),
            proptest::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(
                |(peer, ty, code, mid, token, block, observe, payload)| Op::Valid {
                    peer,
                    ty,
                    code,
                    mid,
                    token,
                    block,
                    observe,
                    payload
                }
            ),
        (0u32..200_000_000).prop_map(Op::Advance),
        Just(Op::Timeout),
        (0u8..3, any::<bool>(), any::<bool>(), 0u16..3000).prop_map(
            |(peer, con, observe, payload_len)| Op::Send {
                peer,
                con,
                observe,
                payload_len
            }
        ),
        (any::<bool>(), 0u16..3000).prop_map(|(observe, payload_len)| Op::RespondOldest {
            observe,
            payload_len
        }),
        any::<bool>().prop_map(|con| Op::Notify { con }),
        any::<u8>().prop_map(Op::Cancel),
    ]
}

fn peer(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 5683 + u16::from(n)))
}

fn build_valid(
    ty: u8,
    code: u8,
    mid: u16,
    token: &[u8],
    block: Option<u32>,
    observe: Option<u32>,
    payload: &[u8],
) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(match ty {
        0 => rig_proto::coap::MessageType::Confirmable,
        1 => rig_proto::coap::MessageType::NonConfirmable,
        2 => rig_proto::coap::MessageType::Acknowledgement,
        _ => rig_proto::coap::MessageType::Reset,
    });
    p.header.code = code.into();
    p.header.message_id = mid;
    p.set_token(token.to_vec());
    if let Some(b) = block {
        p.add_option(CoapOption::Block2, message::encode_uint(b));
        p.add_option(CoapOption::Block1, message::encode_uint(b));
    }
    if let Some(o) = observe {
        message::set_uint_option(&mut p, CoapOption::Observe, o);
    }
    message::set_uri_path(&mut p, "/a");
    p.payload = payload.to_vec();
    p.to_bytes_unlimited().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_sequence_never_panics_and_stays_bounded(ops in proptest::collection::vec(op(), 1..80), seed in any::<u64>()) {
        let cfg = Config { max_dedup_entries: 64, max_block_states: 4, ..Config::default() };
        let mut ep = Endpoint::new(cfg, seed);
        let mut now = Instant::from_micros(0);
        let mut pending: Vec<IncomingId> = Vec::new();
        let mut observations: Vec<ObservationId> = Vec::new();
        let mut requests = Vec::new();
        let mut total = 0usize;
        for op in ops {
            match op {
                Op::Datagram(p, b) => ep.handle_datagram(now, peer(p), &b),
                Op::Valid { peer: p, ty, code, mid, token, block, observe, payload } => {
                    let bytes = build_valid(ty, code, mid, &token, block, observe, &payload);
                    ep.handle_datagram(now, peer(p), &bytes);
                }
                Op::Advance(us) => now = now + Duration::from_micros(u64::from(us)),
                Op::Timeout => {
                    ep.handle_timeout(now);
                    if let Some(t) = ep.poll_timeout() {
                        prop_assert!(t > now, "timer not advanced: {t} <= {now}");
                    }
                }
                Op::Send { peer: p, con, observe, payload_len } => {
                    let mut r = request(Method::Put, con, "/x");
                    if observe {
                        r.header.code = rig_proto::coap::MessageClass::Request(Method::Get);
                        message::set_uint_option(&mut r, CoapOption::Observe, 0);
                    }
                    r.payload = vec![7; usize::from(payload_len)];
                    if let Ok(id) = ep.send_request(now, peer(p), r) {
                        requests.push(id);
                    }
                }
                Op::RespondOldest { observe, payload_len } => {
                    if !pending.is_empty() {
                        let id = pending.remove(0);
                        let mut r = response(ResponseCode::Content);
                        r.payload = vec![1; usize::from(payload_len)];
                        if observe {
                            if let Ok(o) = ep.respond_observe(now, id, r) {
                                observations.push(o);
                            }
                        } else {
                            let _ = ep.respond(now, id, r);
                        }
                    }
                }
                Op::Notify { con } => {
                    if let Some(o) = observations.first() {
                        let _ = ep.notify(now, *o, response(ResponseCode::Content), con);
                    }
                }
                Op::Cancel(i) => {
                    if !requests.is_empty() {
                        let id = requests[usize::from(i) % requests.len()];
                        ep.cancel(id);
                    }
                }
            }
            let mut n = 0;
            while let Some(t) = ep.poll_transmit() {
                prop_assert!(t.payload.len() <= 1152 + 64, "oversized datagram {}", t.payload.len());
                prop_assert!(parse(&t.payload).is_ok(), "we emitted a malformed datagram");
                n += 1;
            }
            // One input never triggers a burst: each step sends a bounded number.
            prop_assert!(n <= 16, "{n} datagrams from one step");
            total += n;
            while let Some(e) = ep.poll_event() {
                if let Event::Request { id, .. } = e {
                    pending.push(id);
                }
            }
        }
        prop_assert!(total <= 16 * 80);
    }

    #[test]
    fn parse_never_panics_and_agrees_with_reencoding(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        if let Ok(p) = parse(&bytes) {
            let again = p.to_bytes_unlimited().unwrap();
            let p2 = parse(&again).unwrap();
            prop_assert_eq!(&p.header, &p2.header);
            prop_assert_eq!(p.get_token(), p2.get_token());
            prop_assert_eq!(&p.payload, &p2.payload);
        }
    }

    #[test]
    fn valid_messages_round_trip(ty in 0u8..2, code in 1u8..5, mid in any::<u16>(),
                                 token in proptest::collection::vec(any::<u8>(), 0..9),
                                 path in proptest::collection::vec("[a-z0-9]{1,20}", 0..4),
                                 num in 0u32..0xfffff, szx in 0u8..7,
                                 payload in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut p = request(Method::Get, ty == 0, &path.join("/"));
        p.header.code = code.into();
        p.header.message_id = mid;
        p.set_token(token);
        BlockValue { num, more: num % 2 == 0, szx }.set_on(&mut p, CoapOption::Block2);
        p.payload = payload;
        let bytes = p.to_bytes_unlimited().unwrap();
        let q = parse(&bytes).unwrap();
        prop_assert_eq!(&q, &p);
        prop_assert_eq!(BlockValue::from_packet(&q, CoapOption::Block2), Some(Ok(BlockValue { num, more: num % 2 == 0, szx })));
    }
}
