//! Message-layer scenarios on a simulated clock: piggybacked and separate
//! responses, retransmission timing, deduplication, ping, NSTART, NON,
//! time scale.

#![allow(clippy::unwrap_used, clippy::panic)]

mod coap_support;

use std::time::Duration;

use coap_support::{Dir, Pair};
use rig_proto::coap::message::{self, request, response};
use rig_proto::coap::{Config, Endpoint, Event, MessageType, Method, Packet, ResponseCode};
use rig_proto::time::Instant;

fn exact_config() -> Config {
    // ACK_RANDOM_FACTOR 1.0 makes the initial timeout exactly ACK_TIMEOUT.
    Config {
        ack_random_factor: 1.0,
        ..Config::default()
    }
}

fn pair() -> Pair {
    Pair::new(
        Endpoint::new(exact_config(), 1),
        Endpoint::new(exact_config(), 2),
    )
}

fn get(path: &str) -> Packet {
    request(Method::Get, true, path)
}

#[test]
fn con_get_gets_a_piggybacked_2_05() {
    let mut p = pair();
    p.echo_server(b"hello");
    let id = p
        .client
        .send_request(p.now, p.server_addr, get("/3/0/0"))
        .unwrap();
    p.drive_for(Duration::from_secs(1));

    assert_eq!(p.log.len(), 2, "one CON request, one piggybacked ACK");
    let req = Packet::from_bytes(&p.log[0].bytes).unwrap();
    let ack = Packet::from_bytes(&p.log[1].bytes).unwrap();
    assert_eq!(req.header.get_type(), MessageType::Confirmable);
    assert_eq!(req.get_token().len(), 8);
    assert_eq!(message::uri_path(&req), "3/0/0");
    assert_eq!(ack.header.get_type(), MessageType::Acknowledgement);
    assert_eq!(ack.header.message_id, req.header.message_id);
    assert_eq!(ack.get_token(), req.get_token());
    match &p.client_events[..] {
        [
            (
                _,
                Event::Response {
                    id: rid,
                    peer,
                    response,
                },
            ),
        ] => {
            assert_eq!(*rid, id);
            assert_eq!(*peer, p.server_addr);
            assert_eq!(
                message::response_code(response),
                Some(ResponseCode::Content)
            );
            assert_eq!(response.payload, b"hello");
        }
        other => panic!("unexpected client events {other:?}"),
    }
    assert_eq!(p.client.open_requests(), 0);
}

#[test]
fn retransmission_timing_is_exact_on_the_simulated_clock() {
    let mut p = pair();
    p.drop = Box::new(|dir, _, _| dir == Dir::ToServer);
    let t0 = p.now;
    let id = p
        .client
        .send_request(p.now, p.server_addr, get("/x"))
        .unwrap();
    p.drive_for(Duration::from_secs(100));
    let times: Vec<u64> = p
        .sent(Dir::ToServer)
        .iter()
        .map(|l| (l.at.as_micros() - t0.as_micros()) / 1000)
        .collect();
    // ACK_TIMEOUT 2 s doubling: 0, 2, 6, 14, 30; give up at 62 s.
    assert_eq!(times, vec![0, 2000, 6000, 14000, 30000]);
    let (at, ev) = p.client_events.last().unwrap();
    assert_eq!(*ev, Event::RequestTimedOut { id });
    assert_eq!(at.saturating_duration_since(t0), Duration::from_secs(62));
    // All copies are byte-identical (same message id).
    let first = &p.sent(Dir::ToServer)[0].bytes;
    assert!(p.sent(Dir::ToServer).iter().all(|l| &l.bytes == first));
    assert_eq!(p.client.stats().retransmissions, 4);
}

#[test]
fn randomized_initial_timeout_stays_within_ack_timeout_times_factor() {
    for seed in 0..50 {
        let mut p = Pair::new(
            Endpoint::new(Config::default(), seed),
            Endpoint::new(Config::default(), 99),
        );
        p.drop = Box::new(|dir, _, _| dir == Dir::ToServer);
        let t0 = p.now;
        p.client
            .send_request(p.now, p.server_addr, get("/x"))
            .unwrap();
        p.drive_for(Duration::from_secs(200));
        let sent = p.sent(Dir::ToServer);
        assert_eq!(sent.len(), 5);
        let first = sent[1].at.saturating_duration_since(t0);
        assert!(
            first >= Duration::from_secs(2) && first <= Duration::from_secs(3),
            "{first:?}"
        );
        let end = p
            .client_events
            .last()
            .unwrap()
            .0
            .saturating_duration_since(t0);
        assert!(
            end <= Duration::from_secs(93),
            "MAX_TRANSMIT_WAIT exceeded: {end:?}"
        );
        assert_eq!(end, first * 31);
    }
}

#[test]
fn time_scale_divides_every_timer() {
    let cfg = Config {
        time_scale: 10,
        ..exact_config()
    };
    let mut p = Pair::new(Endpoint::new(cfg.clone(), 1), Endpoint::new(cfg, 2));
    p.drop = Box::new(|dir, _, _| dir == Dir::ToServer);
    let t0 = p.now;
    p.client
        .send_request(p.now, p.server_addr, get("/x"))
        .unwrap();
    p.drive_for(Duration::from_secs(10));
    let times: Vec<u64> = p
        .sent(Dir::ToServer)
        .iter()
        .map(|l| (l.at.as_micros() - t0.as_micros()) / 1000)
        .collect();
    assert_eq!(times, vec![0, 200, 600, 1400, 3000]);
    assert_eq!(
        p.client_events
            .last()
            .unwrap()
            .0
            .saturating_duration_since(t0),
        Duration::from_millis(6200)
    );
}

#[test]
fn lost_ack_makes_the_server_resend_the_same_response_without_a_second_request_event() {
    let mut p = pair();
    p.echo_server(b"v");
    // Drop the first datagram the server sends (the piggybacked ACK).
    p.drop = Box::new(|dir, n, _| dir == Dir::ToClient && n == 0);
    p.client
        .send_request(p.now, p.server_addr, get("/a"))
        .unwrap();
    p.drive_for(Duration::from_secs(10));
    assert_eq!(
        p.server_requests().len(),
        1,
        "duplicate must not reach the app"
    );
    let acks = p.sent(Dir::ToClient);
    assert_eq!(acks.len(), 2);
    assert_eq!(acks[0].bytes, acks[1].bytes, "same cached response re-sent");
    assert_eq!(p.client_responses().len(), 1);
    assert_eq!(p.server.stats().duplicates, 1);
}

#[test]
fn slow_app_gets_empty_ack_then_separate_con_response_which_the_client_acks() {
    let mut p = pair();
    let id = p
        .client
        .send_request(p.now, p.server_addr, get("/slow"))
        .unwrap();
    p.drive_for(Duration::from_secs(1));
    // Server app has not answered: an empty ACK went out after 500 ms.
    let to_client = p.sent(Dir::ToClient);
    assert_eq!(to_client.len(), 1);
    assert_eq!(to_client[0].bytes.len(), 4);
    assert_eq!(to_client[0].bytes[0] & 0x30, 0x20, "ACK");
    let inc = match &p.server_events[0].1 {
        Event::Request { id, .. } => *id,
        e => panic!("{e:?}"),
    };
    let mut r = response(ResponseCode::Content);
    r.payload = b"late".to_vec();
    p.server.respond(p.now, inc, r).unwrap();
    p.drive_for(Duration::from_secs(1));
    let to_client = p.sent(Dir::ToClient);
    assert_eq!(to_client.len(), 2);
    let sep = Packet::from_bytes(&to_client[1].bytes).unwrap();
    assert_eq!(sep.header.get_type(), MessageType::Confirmable);
    let to_server = p.sent(Dir::ToServer);
    assert_eq!(to_server.len(), 2, "request + ACK of the separate response");
    let ack = Packet::from_bytes(&to_server[1].bytes).unwrap();
    assert_eq!(ack.header.get_type(), MessageType::Acknowledgement);
    assert_eq!(ack.header.message_id, sep.header.message_id);
    assert_eq!(p.client_events.len(), 1);
    assert!(
        matches!(&p.client_events[0].1, Event::Response { id: i, response, .. } if *i == id && response.payload == b"late")
    );
    // No retransmission of the separate response after the ACK.
    p.drive_for(Duration::from_secs(60));
    assert_eq!(p.sent(Dir::ToClient).len(), 2);
}

#[test]
fn empty_con_ping_gets_rst() {
    let mut server = Endpoint::new(Config::default(), 1);
    let peer = coap_support::addr(1);
    server.handle_datagram(Instant::ZERO, peer, &[0x40, 0x00, 0x12, 0x34]);
    let t = server.poll_transmit().unwrap();
    assert_eq!(t.payload, vec![0x70, 0x00, 0x12, 0x34]);
    assert!(server.poll_event().is_none());
    assert_eq!(server.stats().pings, 1);
}

#[test]
fn unknown_ack_and_rst_are_ignored_and_counted() {
    let mut ep = Endpoint::new(Config::default(), 1);
    let peer = coap_support::addr(1);
    ep.handle_datagram(Instant::ZERO, peer, &[0x60, 0x00, 0, 1]);
    ep.handle_datagram(Instant::ZERO, peer, &[0x70, 0x00, 0, 2]);
    assert!(ep.poll_transmit().is_none());
    assert!(ep.poll_event().is_none());
    assert_eq!(ep.stats().unknown_acks, 1);
    assert_eq!(ep.stats().unknown_resets, 1);
}

#[test]
fn rst_to_a_request_ends_it_with_reset() {
    let mut p = pair();
    let id = p
        .client
        .send_request(p.now, p.server_addr, get("/x"))
        .unwrap();
    // The "server" answers with RST by hand.
    let t = p.client.poll_transmit().unwrap();
    let req = Packet::from_bytes(&t.payload).unwrap();
    let mid = req.header.message_id.to_be_bytes();
    p.client
        .handle_datagram(p.now, p.server_addr, &[0x70, 0, mid[0], mid[1]]);
    assert_eq!(p.client.poll_event(), Some(Event::Reset { id }));
    assert_eq!(p.client.poll_timeout(), None, "no retransmission after RST");
}

#[test]
fn malformed_datagram_gives_event_with_offset_and_rst_for_con() {
    let mut ep = Endpoint::new(Config::default(), 1);
    let peer = coap_support::addr(1);
    // CON GET, option Uri-Path claims 5 bytes but 1 present.
    ep.handle_datagram(Instant::ZERO, peer, &[0x40, 0x01, 0xab, 0xcd, 0xb5, b'x']);
    assert_eq!(
        ep.poll_transmit().unwrap().payload,
        vec![0x70, 0, 0xab, 0xcd]
    );
    match ep.poll_event() {
        Some(Event::Malformed { peer: p, error }) => {
            assert_eq!(p, peer);
            assert_eq!(error.offset, 4);
            assert!(error.to_string().contains("byte 4"));
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn nstart_1_queues_further_requests_to_the_same_peer() {
    let mut p = pair();
    p.echo_server(b"ok");
    let ids: Vec<_> = (0..3)
        .map(|i| {
            p.client
                .send_request(p.now, p.server_addr, get(&format!("/r{i}")))
                .unwrap()
        })
        .collect();
    // Only one is on the wire before any ACK.
    let mut first = Vec::new();
    while let Some(t) = p.client.poll_transmit() {
        first.push(t);
    }
    assert_eq!(first.len(), 1);
    for t in first {
        p.server.handle_datagram(p.now, p.client_addr, &t.payload);
    }
    p.drive_for(Duration::from_secs(1));
    let got: Vec<_> = p
        .client_events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Response { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(got, ids, "answered in order, one at a time");
    let paths: Vec<String> = p
        .server_requests()
        .iter()
        .map(|r| message::uri_path(r))
        .collect();
    assert_eq!(paths, vec!["r0", "r1", "r2"]);
}

#[test]
fn non_request_gets_non_response_and_non_duplicates_are_dropped() {
    let mut p = pair();
    p.echo_server(b"n");
    let id = p
        .client
        .send_request(p.now, p.server_addr, request(Method::Get, false, "/n"))
        .unwrap();
    let t = p.client.poll_transmit().unwrap();
    // Deliver the NON twice.
    p.server.handle_datagram(p.now, p.client_addr, &t.payload);
    p.server.handle_datagram(p.now, p.client_addr, &t.payload);
    p.drive_for(Duration::from_secs(1));
    assert_eq!(p.server_requests().len(), 1);
    let resp = Packet::from_bytes(&p.sent(Dir::ToClient)[0].bytes).unwrap();
    assert_eq!(resp.header.get_type(), MessageType::NonConfirmable);
    assert!(matches!(&p.client_events[..], [(_, Event::Response { id: i, .. })] if *i == id));
}

#[test]
fn response_with_unknown_token_is_rejected_with_rst() {
    let mut ep = Endpoint::new(Config::default(), 1);
    let peer = coap_support::addr(1);
    // CON 2.05, token 0x01.
    ep.handle_datagram(Instant::ZERO, peer, &[0x41, 0x45, 0x00, 0x07, 0x01]);
    assert_eq!(
        ep.poll_transmit().unwrap().payload,
        vec![0x70, 0, 0x00, 0x07]
    );
    assert_eq!(ep.stats().unmatched_responses, 1);
}

#[test]
fn cancel_stops_retransmissions_and_events() {
    let mut p = pair();
    p.drop = Box::new(|_, _, _| true);
    let id = p
        .client
        .send_request(p.now, p.server_addr, get("/x"))
        .unwrap();
    p.drive_for(Duration::from_secs(3));
    assert!(p.client.cancel(id));
    let before = p.log.len();
    p.drive_for(Duration::from_secs(100));
    assert_eq!(p.log.len(), before);
    assert!(p.client_events.is_empty());
}

#[test]
fn message_ids_and_tokens_are_unique_across_many_requests() {
    let mut p = pair();
    p.echo_server(b"");
    for i in 0..200 {
        p.client
            .send_request(p.now, p.server_addr, get(&format!("/{i}")))
            .unwrap();
    }
    p.drive_for(Duration::from_secs(5));
    let reqs: Vec<Packet> = p
        .sent(Dir::ToServer)
        .iter()
        .map(|l| Packet::from_bytes(&l.bytes).unwrap())
        .collect();
    assert_eq!(reqs.len(), 200);
    let mids: std::collections::BTreeSet<u16> = reqs.iter().map(|r| r.header.message_id).collect();
    let toks: std::collections::BTreeSet<Vec<u8>> =
        reqs.iter().map(|r| r.get_token().to_vec()).collect();
    assert_eq!(mids.len(), 200);
    assert_eq!(toks.len(), 200);
    assert_eq!(p.client_responses().len(), 200);
}

#[test]
fn same_seed_same_bytes() {
    let run = || {
        let mut p = pair();
        p.echo_server(b"x");
        p.client
            .send_request(p.now, p.server_addr, get("/d"))
            .unwrap();
        p.drive_for(Duration::from_secs(1));
        p.log.iter().map(|l| l.bytes.clone()).collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn dedup_state_expires_after_exchange_lifetime() {
    let mut p = pair();
    p.echo_server(b"x");
    p.client
        .send_request(p.now, p.server_addr, get("/d"))
        .unwrap();
    p.drive_for(Duration::from_secs(1));
    let req = p.sent(Dir::ToServer)[0].bytes.clone();
    // Replay within EXCHANGE_LIFETIME: answered from cache.
    p.server.handle_datagram(p.now, p.client_addr, &req);
    assert!(p.server.poll_event().is_none());
    assert!(p.server.poll_transmit().is_some());
    // After 247 s the same message id is a new request.
    p.drive_for(Duration::from_secs(247));
    p.server_app = None;
    p.server.handle_datagram(p.now, p.client_addr, &req);
    assert!(matches!(p.server.poll_event(), Some(Event::Request { .. })));
}

#[test]
fn unknown_critical_option_gets_4_02_and_never_reaches_the_app() {
    let mut server = Endpoint::new(Config::default(), 1);
    let peer = coap_support::addr(1);
    let mut req = get("/x");
    req.header.message_id = 0x0101;
    req.set_token(vec![9]);
    req.add_option(rig_proto::coap::CoapOption::Unknown(19), vec![1]); // Q-Block1: critical, unsupported
    server.handle_datagram(Instant::ZERO, peer, &req.to_bytes().unwrap());
    let r = Packet::from_bytes(&server.poll_transmit().unwrap().payload).unwrap();
    assert_eq!(message::response_code(&r), Some(ResponseCode::BadOption));
    assert_eq!(r.header.message_id, 0x0101);
    assert_eq!(r.payload, b"unrecognized critical option 19");
    assert!(server.poll_event().is_none());
    // An unknown elective (even) option is ignored.
    let mut req = get("/x");
    req.header.message_id = 0x0102;
    req.add_option(rig_proto::coap::CoapOption::Unknown(2048), vec![1]);
    server.handle_datagram(Instant::ZERO, peer, &req.to_bytes().unwrap());
    assert!(matches!(server.poll_event(), Some(Event::Request { .. })));
}
