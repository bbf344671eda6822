//! Observe (RFC 7641) through two endpoints: registration, CON and NON
//! notifications, reordering detection, cancellation by RST, by GET with
//! Observe=1 and by notification timeout.

#![allow(clippy::unwrap_used, clippy::panic)]

mod coap_support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use coap_support::{Dir, Pair};
use rig_proto::coap::message::{self, request, response};
use rig_proto::coap::{
    CancelReason, CoapOption, Config, Endpoint, Event, MessageType, Method, ObservationId, Packet,
    ResponseCode,
};
use rig_proto::time::Instant;

fn observe_get(path: &str) -> Packet {
    let mut p = request(Method::Get, true, path);
    message::set_uint_option(&mut p, CoapOption::Observe, 0);
    p
}

fn content(v: &str) -> Packet {
    let mut r = response(ResponseCode::Content);
    r.payload = v.as_bytes().to_vec();
    r
}

/// A pair whose server accepts observations and records their ids.
fn observing_pair() -> (Pair, Rc<RefCell<Vec<ObservationId>>>) {
    let mut p = Pair::new(
        Endpoint::new(
            Config {
                ack_random_factor: 1.0,
                ..Config::default()
            },
            21,
        ),
        Endpoint::new(
            Config {
                ack_random_factor: 1.0,
                ..Config::default()
            },
            22,
        ),
    );
    let obs = Rc::new(RefCell::new(Vec::new()));
    let o2 = obs.clone();
    p.server_app = Some(Box::new(move |ep, now, ev| {
        if let Event::Request { id, request, .. } = ev {
            if message::uint_option(request, CoapOption::Observe) == Some(Ok(0)) {
                o2.borrow_mut()
                    .push(ep.respond_observe(now, *id, content("20")).unwrap());
            } else {
                ep.respond(now, *id, content("plain")).unwrap();
            }
        }
    }));
    (p, obs)
}

fn notifications(p: &Pair) -> Vec<(u32, Vec<u8>)> {
    p.client_events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Notification { response, .. } => Some((
                message::uint_option(response, CoapOption::Observe)
                    .unwrap()
                    .unwrap(),
                response.payload.clone(),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn register_then_con_and_non_notifications_arrive_in_order() {
    let (mut p, obs) = observing_pair();
    let id = p
        .client
        .send_request(p.now, p.server_addr, observe_get("/3303/0/5700"))
        .unwrap();
    p.drive_for(Duration::from_secs(1));
    assert_eq!(p.client_responses().len(), 1);
    let first_seq = message::uint_option(p.client_responses()[0], CoapOption::Observe)
        .unwrap()
        .unwrap();
    let oid = obs.borrow()[0];
    for (i, con) in [(1, true), (2, false), (3, true)] {
        p.server
            .notify(p.now, oid, content(&format!("2{i}")), con)
            .unwrap();
        p.drive_for(Duration::from_secs(1));
    }
    let n = notifications(&p);
    assert_eq!(n.len(), 3);
    assert_eq!(
        n.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![first_seq + 1, first_seq + 2, first_seq + 3]
    );
    assert_eq!(n[2].1, b"23");
    // CON notifications were ACKed (no retransmission happened).
    p.drive_for(Duration::from_secs(60));
    assert_eq!(p.server.stats().retransmissions, 0);
    assert!(p.client_events.iter().all(|(_, e)| match e {
        Event::Response { id: i, .. } | Event::Notification { id: i, .. } => *i == id,
        _ => false,
    }));
    assert_eq!(p.client.open_requests(), 1, "observation stays open");
}

#[test]
fn stale_notification_is_dropped_by_the_section_3_4_rule() {
    let mut client = Endpoint::new(Config::default(), 3);
    let server = coap_support::addr(9);
    let id = client
        .send_request(Instant::ZERO, server, observe_get("/x"))
        .unwrap();
    let req = Packet::from_bytes(&client.poll_transmit().unwrap().payload).unwrap();
    let notif = |ty: MessageType, mid: u16, seq: u32, body: &str| {
        let mut r = content(body);
        r.header.set_type(ty);
        r.header.message_id = mid;
        r.set_token(req.get_token().to_vec());
        message::set_uint_option(&mut r, CoapOption::Observe, seq);
        r.to_bytes().unwrap()
    };
    let t = Instant::ZERO;
    client.handle_datagram(
        t,
        server,
        &notif(MessageType::Acknowledgement, req.header.message_id, 10, "a"),
    );
    assert!(matches!(client.poll_event(), Some(Event::Response { .. })));
    client.handle_datagram(t, server, &notif(MessageType::NonConfirmable, 500, 12, "c"));
    client.handle_datagram(t, server, &notif(MessageType::NonConfirmable, 501, 11, "b"));
    let got: Vec<Vec<u8>> = std::iter::from_fn(|| client.poll_event())
        .map(|e| match e {
            Event::Notification {
                id: i, response, ..
            } => {
                assert_eq!(i, id);
                response.payload
            }
            e => panic!("{e:?}"),
        })
        .collect();
    assert_eq!(got, vec![b"c".to_vec()]);
    assert_eq!(client.stats().stale_notifications, 1);
    // More than 128 s later, an older number counts as fresh again.
    let later = t + Duration::from_secs(129);
    client.handle_datagram(
        later,
        server,
        &notif(MessageType::NonConfirmable, 502, 5, "d"),
    );
    assert!(matches!(
        client.poll_event(),
        Some(Event::Notification { .. })
    ));
    // 5 -> 0xfffff0 is a jump of more than 2^23 forward, i.e. older: stale.
    client.handle_datagram(
        later,
        server,
        &notif(MessageType::NonConfirmable, 503, 0xff_fff0, "e"),
    );
    assert!(client.poll_event().is_none());
    // 0xfffff0 -> 3 after wrap-around would be fresh relative to 0xfffff0;
    // relative to the accepted 5 it is older (3 < 5): stale.
    client.handle_datagram(
        later,
        server,
        &notif(MessageType::NonConfirmable, 504, 3, "f"),
    );
    assert!(client.poll_event().is_none());
    client.handle_datagram(
        later,
        server,
        &notif(MessageType::NonConfirmable, 505, 6, "g"),
    );
    assert!(matches!(
        client.poll_event(),
        Some(Event::Notification { .. })
    ));
}

#[test]
fn reactive_cancel_answers_the_next_notification_with_rst() {
    let (mut p, obs) = observing_pair();
    let id = p
        .client
        .send_request(p.now, p.server_addr, observe_get("/o"))
        .unwrap();
    p.drive_for(Duration::from_secs(1));
    assert!(p.client.cancel(id));
    let oid = obs.borrow()[0];
    p.server.notify(p.now, oid, content("x"), true).unwrap();
    p.drive_for(Duration::from_secs(1));
    let last = p.sent(Dir::ToServer).last().unwrap().bytes.clone();
    assert_eq!(last[0] & 0x30, 0x30, "RST");
    assert!(p.server_events.iter().any(|(_, e)| matches!(
        e,
        Event::ObservationCancelled { id, reason: CancelReason::Reset, .. } if *id == oid
    )));
    assert_eq!(p.server.observation_count(), 0);
    assert!(notifications(&p).is_empty());
}

#[test]
fn proactive_cancel_sends_get_with_observe_1() {
    let (mut p, obs) = observing_pair();
    let id = p
        .client
        .send_request(p.now, p.server_addr, observe_get("/o"))
        .unwrap();
    p.drive_for(Duration::from_secs(1));
    p.client.cancel_observe(p.now, id).unwrap();
    p.drive_for(Duration::from_secs(1));
    let reqs = p.server_requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        message::uint_option(reqs[1], CoapOption::Observe),
        Some(Ok(1))
    );
    assert_eq!(reqs[1].get_token(), reqs[0].get_token(), "same token");
    let oid = obs.borrow()[0];
    assert!(p.server_events.iter().any(|(_, e)| matches!(
        e,
        Event::ObservationCancelled { id, reason: CancelReason::Deregistered, .. } if *id == oid
    )));
    assert_eq!(p.client_responses().len(), 2);
    assert_eq!(p.client_responses()[1].payload, b"plain");
    assert_eq!(p.client.open_requests(), 0);
    assert!(p.server.notify(p.now, oid, content("late"), false).is_err());
}

#[test]
fn unacknowledged_con_notification_ends_the_observation() {
    let (mut p, obs) = observing_pair();
    p.client
        .send_request(p.now, p.server_addr, observe_get("/o"))
        .unwrap();
    p.drive_for(Duration::from_secs(1));
    p.drop = Box::new(|dir, _, _| dir == Dir::ToClient);
    let oid = obs.borrow()[0];
    p.server.notify(p.now, oid, content("x"), true).unwrap();
    p.drive_for(Duration::from_secs(100));
    assert!(p.server_events.iter().any(|(_, e)| matches!(
        e,
        Event::ObservationCancelled {
            reason: CancelReason::TimedOut,
            ..
        }
    )));
    assert_eq!(p.server.stats().retransmissions, 4);
}

#[test]
fn newer_con_notification_replaces_the_one_in_flight() {
    let (mut p, obs) = observing_pair();
    p.client
        .send_request(p.now, p.server_addr, observe_get("/o"))
        .unwrap();
    p.drive_for(Duration::from_secs(1));
    let oid = obs.borrow()[0];
    // Lose the first CON notification and its retransmissions until the
    // second notification replaces it.
    p.drop = Box::new(|dir, n, _| dir == Dir::ToClient && n == 1);
    p.server.notify(p.now, oid, content("old"), true).unwrap();
    p.drive_for(Duration::from_millis(500));
    p.drop = Box::new(|_, _, _| false);
    p.server.notify(p.now, oid, content("new"), true).unwrap();
    p.drive_for(Duration::from_secs(60));
    let n = notifications(&p);
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].1, b"new");
    assert_eq!(
        p.server.stats().retransmissions,
        0,
        "old one no longer retransmitted"
    );
}

#[test]
fn large_notification_is_completed_with_block2_gets_before_delivery() {
    // RFC 7959 §3.4: the notification carries block 0; the client fetches
    // the rest with plain GETs (served from the server's block cache) and
    // delivers one notification with the whole body.
    let (mut p, obs) = observing_pair();
    let id = p
        .client
        .send_request(p.now, p.server_addr, observe_get("/big"))
        .unwrap();
    p.drive_for(Duration::from_secs(1));
    let oid = obs.borrow()[0];
    let big: String = "0123456789".repeat(300);
    p.server.notify(p.now, oid, content(&big), false).unwrap();
    p.drive_for(Duration::from_secs(5));
    let n = notifications(&p);
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].1, big.as_bytes());
    assert_eq!(p.server.stats().blocks_served_from_cache, 2);
    assert_eq!(
        p.server_requests().len(),
        1,
        "follow-ups never reach the server app"
    );
    let follow_ups: Vec<Packet> = p
        .sent(Dir::ToServer)
        .iter()
        .map(|l| Packet::from_bytes(&l.bytes).unwrap())
        .filter(|r| r.get_first_option(CoapOption::Block2).is_some())
        .collect();
    assert_eq!(follow_ups.len(), 2);
    assert!(
        follow_ups
            .iter()
            .all(|r| r.get_first_option(CoapOption::Observe).is_none())
    );
    assert!(p.client_events.iter().all(|(_, e)| match e {
        Event::Response { id: i, .. } | Event::Notification { id: i, .. } => *i == id,
        e => panic!("unexpected {e:?}"),
    }));
}

#[test]
fn notification_crossing_the_deregistration_is_not_taken_as_its_answer() {
    let mut client = Endpoint::new(Config::default(), 3);
    let server = coap_support::addr(9);
    let id = client
        .send_request(Instant::ZERO, server, observe_get("/x"))
        .unwrap();
    let req = Packet::from_bytes(&client.poll_transmit().unwrap().payload).unwrap();
    let msg = |ty: MessageType, mid: u16, seq: Option<u32>, body: &str| {
        let mut r = content(body);
        r.header.set_type(ty);
        r.header.message_id = mid;
        r.set_token(req.get_token().to_vec());
        if let Some(seq) = seq {
            message::set_uint_option(&mut r, CoapOption::Observe, seq);
        }
        r.to_bytes().unwrap()
    };
    let t = Instant::ZERO;
    client.handle_datagram(
        t,
        server,
        &msg(
            MessageType::Acknowledgement,
            req.header.message_id,
            Some(1),
            "a",
        ),
    );
    assert!(matches!(client.poll_event(), Some(Event::Response { .. })));
    client.cancel_observe(t, id).unwrap();
    let dereg = Packet::from_bytes(&client.poll_transmit().unwrap().payload).unwrap();
    assert_eq!(
        message::uint_option(&dereg, CoapOption::Observe),
        Some(Ok(1))
    );
    assert_eq!(dereg.get_token(), req.get_token());
    // A NON notification crosses the GET: dropped.
    client.handle_datagram(
        t,
        server,
        &msg(MessageType::NonConfirmable, 900, Some(2), "late"),
    );
    assert!(client.poll_event().is_none());
    // The real answer has no Observe option.
    client.handle_datagram(
        t,
        server,
        &msg(
            MessageType::Acknowledgement,
            dereg.header.message_id,
            None,
            "final",
        ),
    );
    match client.poll_event() {
        Some(Event::Response {
            id: i, response, ..
        }) => {
            assert_eq!(i, id);
            assert_eq!(response.payload, b"final");
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(client.open_requests(), 0);
}
