//! Properties of the agent's sans-IO client: whatever a server sends (random
//! datagrams, or well-formed requests with random methods, paths, formats and
//! payloads), the client never panics, always answers a CON request, and keeps
//! its output bounded.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;

use clap::Parser;
use proptest::prelude::*;
use rig_agent::client::Client;
use rig_agent::config::AgentConfig;
use rig_proto::coap::{CoapOption, MessageType, Method, Packet, message};
use rig_proto::time::Instant;

fn client() -> (Client, SocketAddr) {
    let server: SocketAddr = "127.0.0.1:5683".parse().unwrap();
    let cfg = AgentConfig::try_parse_from([
        "rig-agent",
        "--server",
        "coap://127.0.0.1:5683",
        "--endpoint",
        "prop",
    ])
    .unwrap();
    let mut c = Client::new(cfg, server, 7);
    c.start(Instant::from_millis(0));
    while c.poll_transmit().is_some() {}
    (c, server)
}

fn drain(c: &mut Client) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some((_, bytes)) = c.poll_transmit() {
        out.push(bytes);
        assert!(out.len() < 64, "unbounded output");
    }
    while c.poll_log().is_some() {}
    while c.poll_output().is_some() {}
    out
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Get),
        Just(Method::Put),
        Just(Method::Post),
        Just(Method::Delete),
        Just(Method::Fetch)
    ]
}

fn path() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        Just(0u32),
        Just(1),
        Just(3),
        Just(4),
        Just(8),
        Just(11),
        Just(33333),
        0u32..70000
    ];
    proptest::collection::vec(seg, 0..5).prop_map(|v| {
        v.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("/")
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_datagrams_never_panic(datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..20)) {
        let (mut c, server) = client();
        for (i, d) in datagrams.iter().enumerate() {
            c.handle_datagram(Instant::from_millis(10 * i as u64 + 1), server, d);
            drain(&mut c);
        }
        c.handle_timeout(Instant::from_millis(100_000));
        drain(&mut c);
    }

    #[test]
    fn every_con_request_gets_an_answer(
        requests in proptest::collection::vec(
            (method(), path(), proptest::option::of(prop_oneof![Just(0u32), Just(40), Just(42), Just(60), Just(110), Just(112), Just(11542), Just(11543), Just(11544), Just(9999)]),
             proptest::option::of(prop_oneof![Just(0u32), Just(11542), Just(110), Just(40), Just(1)]),
             proptest::collection::vec(any::<u8>(), 0..24)),
            1..12),
    ) {
        let (mut c, server) = client();
        for (i, (m, p, cf, accept, payload)) in requests.into_iter().enumerate() {
            let mut req = message::request(m, true, &p);
            let mid = 100 + i as u16;
            req.header.message_id = mid;
            req.set_token(vec![0xA0, i as u8]);
            if let Some(cf) = cf {
                message::set_uint_option(&mut req, CoapOption::ContentFormat, cf);
            }
            if let Some(a) = accept {
                message::set_uint_option(&mut req, CoapOption::Accept, a);
            }
            req.payload = payload;
            c.handle_datagram(Instant::from_millis(1000 * (i as u64 + 1)), server, &req.to_bytes().unwrap());
            let out = drain(&mut c);
            let answered = out.iter().filter_map(|b| Packet::from_bytes(b).ok()).any(|r| {
                r.header.get_type() == MessageType::Acknowledgement && r.header.message_id == mid
            });
            prop_assert!(answered, "no ACK for {:?} /{}", m, p);
            // Give any Update/Register the client started time to settle.
            c.handle_timeout(Instant::from_millis(1000 * (i as u64 + 1) + 500));
            drain(&mut c);
        }
    }
}

#[test]
fn console_parse_never_panics_on_odd_input() {
    for line in [
        "\u{0}",
        "   update   ",
        "update\tnow",
        "ü",
        "#",
        "quit quit",
    ] {
        let _ = rig_agent::console::parse(line);
    }
}
