//! A structured driver for fuzzing the message layer: interprets arbitrary
//! bytes as a sequence of operations (datagrams from a few peers, time
//! steps, timeouts and app calls) against one [`Endpoint`], and checks the
//! layer's invariants after every step.
//!
//! A cargo-fuzz target only needs `rig_proto::coap::fuzz::exercise(data)`.
//! Invariants checked (a violation panics, which is what a fuzzer looks for):
//! every datagram the endpoint emits parses strictly and fits
//! [`Config::max_message_size`] plus option overhead; one step emits a
//! bounded number of datagrams; after `handle_timeout(now)` the next
//! deadline is later than `now`.

use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use super::message::{self, parse, request, response};
use super::{
    CoapOption, Config, Endpoint, Event, IncomingId, Method, ObservationId, RequestId, ResponseCode,
};
use crate::time::Instant;

/// What one run did (for corpus statistics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Operations executed.
    pub ops: usize,
    /// Datagrams emitted.
    pub datagrams: usize,
    /// Events emitted.
    pub events: usize,
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

fn peer(n: u8) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        5683 + u16::from(n % 4),
    )
}

/// Runs the operations encoded in `data` against a fresh endpoint with a
/// small-state default configuration.
pub fn exercise(data: &[u8]) -> Summary {
    let cfg = Config {
        max_dedup_entries: 64,
        max_block_states: 4,
        ..Config::default()
    };
    exercise_with(cfg, data)
}

/// [`exercise`] with any configuration (including absurd ones: the
/// endpoint must not panic on those either).
pub fn exercise_with(cfg: Config, data: &[u8]) -> Summary {
    let limit = cfg.max_message_size.saturating_add(64).max(1152 + 64);
    let mut r = Reader(data);
    let seed = u64::from(r.u16().unwrap_or(0));
    let mut ep = Endpoint::new(cfg, seed);
    let mut now = Instant::ZERO;
    let mut incoming: Vec<IncomingId> = Vec::new();
    let mut observations: Vec<ObservationId> = Vec::new();
    let mut requests: Vec<RequestId> = Vec::new();
    let mut s = Summary::default();
    while let Some(op) = r.byte() {
        s.ops += 1;
        match op % 8 {
            0 | 1 => {
                let p = r.byte().unwrap_or(0);
                let len = usize::from(r.byte().unwrap_or(0));
                let bytes = r.take(len).to_vec();
                ep.handle_datagram(now, peer(p), &bytes);
            }
            2 => {
                let ms = u64::from(r.u16().unwrap_or(0));
                now = now + Duration::from_millis(ms * 8);
            }
            3 => {
                ep.handle_timeout(now);
                if let Some(t) = ep.poll_timeout() {
                    assert!(t > now, "timer did not move forward: {t} <= {now}");
                }
            }
            4 => {
                let flags = r.byte().unwrap_or(0);
                let p = r.byte().unwrap_or(0);
                let len = usize::from(r.u16().unwrap_or(0) % 4096);
                let mut q = request(
                    if flags & 1 == 0 {
                        Method::Get
                    } else {
                        Method::Put
                    },
                    flags & 2 == 0,
                    "/f",
                );
                if flags & 4 != 0 {
                    message::set_uint_option(&mut q, CoapOption::Observe, 0);
                }
                q.payload = alloc::vec![0x5a; len];
                if let Ok(id) = ep.send_request(now, peer(p), q) {
                    requests.push(id);
                }
            }
            5 => {
                let flags = r.byte().unwrap_or(0);
                let len = usize::from(r.u16().unwrap_or(0) % 4096);
                if !incoming.is_empty() {
                    let id = incoming.remove(usize::from(flags) % incoming.len());
                    let mut resp = response(ResponseCode::Content);
                    resp.payload = alloc::vec![0xa5; len];
                    if flags & 1 != 0 {
                        if let Ok(o) = ep.respond_observe(now, id, resp) {
                            observations.push(o);
                        }
                    } else {
                        let _ = ep.respond(now, id, resp);
                    }
                }
            }
            6 => {
                let flags = r.byte().unwrap_or(0);
                if let Some(o) = observations.get(usize::from(flags) % observations.len().max(1)) {
                    let _ = ep.notify(now, *o, response(ResponseCode::Content), flags & 1 == 0);
                }
            }
            _ => {
                let i = usize::from(r.byte().unwrap_or(0));
                if !requests.is_empty() {
                    let id = requests[i % requests.len()];
                    if i & 0x80 != 0 {
                        let _ = ep.cancel_observe(now, id);
                    } else {
                        ep.cancel(id);
                    }
                }
            }
        }
        let mut n = 0;
        while let Some(t) = ep.poll_transmit() {
            assert!(
                t.payload.len() <= limit,
                "oversized datagram: {}",
                t.payload.len()
            );
            assert!(parse(&t.payload).is_ok(), "emitted a malformed datagram");
            n += 1;
        }
        assert!(n <= 16, "{n} datagrams from one operation");
        s.datagrams += n;
        while let Some(e) = ep.poll_event() {
            s.events += 1;
            if let Event::Request { id, .. } = e {
                incoming.push(id);
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exercises_a_request_and_a_datagram() {
        // seed 0; send CON GET to peer 0; feed a CON GET datagram from peer 1; respond; timeout.
        let mut data = alloc::vec![0, 0, 4, 0, 0, 0, 0];
        let get = [0x40, 0x01, 0x00, 0x01, 0xb1, b'a'];
        data.extend_from_slice(&[0, 1, get.len() as u8]);
        data.extend_from_slice(&get);
        data.extend_from_slice(&[5, 0, 0, 0, 2, 0xff, 0xff, 3]);
        let s = exercise(&data);
        assert_eq!(s.ops, 5);
        assert!(s.datagrams >= 2, "{s:?}");
        assert!(s.events >= 1);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_configs_never_panic(
            ack_ms in proptest::prelude::any::<u32>(),
            factor in proptest::prelude::any::<f64>(),
            max_retransmit in proptest::prelude::any::<u8>(),
            nstart in 0usize..4,
            time_scale in proptest::prelude::any::<u32>(),
            token_len in proptest::prelude::any::<u8>(),
            max_message_size in 0usize..3000,
            block in 0usize..5000,
            body in 0usize..100_000,
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
        ) {
            let cfg = Config {
                ack_timeout: Duration::from_millis(u64::from(ack_ms)),
                ack_random_factor: factor,
                max_retransmit,
                nstart,
                time_scale,
                token_len,
                max_message_size,
                preferred_block_size: block,
                max_body_size: body,
                max_dedup_entries: nstart,
                max_block_states: nstart,
                ..Config::default()
            };
            exercise_with(cfg, &data);
        }

        #[test]
        fn arbitrary_bytes_keep_the_invariants(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            exercise(&data);
        }
    }
}

#[cfg(test)]
mod zero_timeout {
    use super::*;

    #[test]
    fn zero_ack_timeout_still_moves_the_timer_forward() {
        let cfg = Config {
            ack_timeout: Duration::ZERO,
            ..Config::default()
        };
        // seed; send CON GET (op 4); then 10 × handle_timeout (op 3).
        let mut data = alloc::vec![0, 0, 4, 0, 0, 0, 0];
        data.extend_from_slice(&[3; 10]);
        let s = exercise_with(cfg, &data);
        assert_eq!(s.ops, 11);
    }
}
