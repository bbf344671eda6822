//! Seeded random loss on both directions: every request still ends in
//! exactly one terminal event, the server application sees every request
//! exactly once (deduplication), and answers arrive intact.

#![allow(clippy::unwrap_used, clippy::panic)]

mod coap_support;

use std::collections::BTreeMap;
use std::time::Duration;

use coap_support::Pair;
use proptest::prelude::*;
use rig_proto::coap::message::{self, request, response};
use rig_proto::coap::{Config, Endpoint, Event, Method, ResponseCode};

/// xorshift for the drop pattern, seeded per case.
fn lossy(seed: u64, percent: u64) -> coap_support::Filter {
    let mut x = seed | 1;
    Box::new(move |_, _, _| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % 100 < percent
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_request_ends_once_and_reaches_the_app_at_most_once(seed in any::<u64>(), loss in 0u64..35, n in 1usize..25, con in any::<bool>()) {
        let mut p = Pair::new(Endpoint::new(Config::default(), seed), Endpoint::new(Config::default(), !seed));
        p.drop = lossy(seed, loss);
        p.server_app = Some(Box::new(|ep, now, ev| {
            if let Event::Request { id, request, .. } = ev {
                let mut r = response(ResponseCode::Content);
                r.payload = message::uri_path(request).into_bytes();
                ep.respond(now, *id, r).unwrap();
            }
        }));
        let mut ids = BTreeMap::new();
        for i in 0..n {
            let id = p.client.send_request(p.now, p.server_addr, request(Method::Get, con, &format!("/r/{i}"))).unwrap();
            ids.insert(id, format!("r/{i}"));
        }
        // NON requests hold the NSTART slot until MAX_TRANSMIT_WAIT when lost.
        p.drive_for(Duration::from_secs(100 * n as u64 + 300));
        let mut ended = BTreeMap::new();
        for (_, e) in &p.client_events {
            let (id, ok) = match e {
                Event::Response { id, response, .. } => {
                    prop_assert_eq!(String::from_utf8_lossy(&response.payload), ids[id].as_str());
                    (*id, true)
                }
                Event::RequestTimedOut { id } => (*id, false),
                e => panic!("unexpected {e:?}"),
            };
            prop_assert!(ended.insert(id, ok).is_none(), "two terminal events for {:?}", id);
        }
        prop_assert_eq!(ended.len(), n, "every request ends");
        // Dedup: a CON request reaches the app at most once.
        let mut seen = BTreeMap::new();
        for r in p.server_requests() {
            *seen.entry(message::uri_path(r)).or_insert(0) += 1;
        }
        if con {
            prop_assert!(seen.values().all(|c| *c == 1));
        }
        prop_assert_eq!(p.client.open_requests(), 0);
    }
}

#[test]
fn fifty_con_requests_under_ten_percent_loss_all_succeed() {
    // Deterministic (seeded endpoints and drop pattern).
    let mut p = Pair::new(
        Endpoint::new(Config::default(), 7),
        Endpoint::new(Config::default(), 8),
    );
    p.drop = lossy(0x5eed, 10);
    p.echo_server(b"ok");
    for i in 0..50 {
        p.client
            .send_request(
                p.now,
                p.server_addr,
                request(Method::Get, true, &format!("/{i}")),
            )
            .unwrap();
    }
    p.drive_for(Duration::from_secs(3600));
    assert_eq!(p.client_responses().len(), 50);
    assert_eq!(p.server_requests().len(), 50);
    assert!(
        p.client.stats().retransmissions > 0,
        "the loss pattern must have bitten"
    );
    assert!(p.log.iter().any(|l| l.dropped));
}
