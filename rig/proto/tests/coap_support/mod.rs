//! Test kit for the CoAP message layer: two [`Endpoint`]s on a simulated
//! clock joined by a lossy, logged link (quinn-proto's `Pair` pattern).
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::panic
)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use rig_proto::coap::{Endpoint, Event, Packet, Transmit};
use rig_proto::time::Instant;

/// Direction of a datagram on the simulated link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    ToServer,
    ToClient,
}

/// One datagram seen on the link.
#[derive(Debug, Clone)]
pub struct Logged {
    pub at: Instant,
    pub dir: Dir,
    pub bytes: Vec<u8>,
    pub dropped: bool,
}

type App = Box<dyn FnMut(&mut Endpoint, Instant, &Event)>;
pub type Filter = Box<dyn FnMut(Dir, usize, &[u8]) -> bool>;

pub struct Pair {
    pub now: Instant,
    pub client: Endpoint,
    pub server: Endpoint,
    pub client_addr: SocketAddr,
    pub server_addr: SocketAddr,
    pub client_events: Vec<(Instant, Event)>,
    pub server_events: Vec<(Instant, Event)>,
    pub log: Vec<Logged>,
    /// Return true to DROP the n-th datagram of that direction.
    pub drop: Filter,
    pub latency: Duration,
    pub server_app: Option<App>,
    pub client_app: Option<App>,
    in_flight: VecDeque<(Instant, Dir, Vec<u8>)>,
    counts: [usize; 2],
}

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl Pair {
    pub fn new(client: Endpoint, server: Endpoint) -> Pair {
        Pair {
            now: Instant::from_micros(1_000_000),
            client,
            server,
            client_addr: addr(40000),
            server_addr: addr(5683),
            client_events: Vec::new(),
            server_events: Vec::new(),
            log: Vec::new(),
            drop: Box::new(|_, _, _| false),
            latency: Duration::ZERO,
            server_app: None,
            client_app: None,
            in_flight: VecDeque::new(),
            counts: [0, 0],
        }
    }

    /// A server that answers every request with 2.05 and `payload`.
    pub fn echo_server(&mut self, payload: &'static [u8]) {
        self.server_app = Some(Box::new(move |ep, now, ev| {
            if let Event::Request { id, .. } = ev {
                let mut r =
                    rig_proto::coap::message::response(rig_proto::coap::ResponseCode::Content);
                r.payload = payload.to_vec();
                ep.respond(now, *id, r).unwrap();
            }
        }));
    }

    fn collect(&mut self) -> bool {
        let mut progressed = false;
        while let Some(Transmit { peer, payload }) = self.client.poll_transmit() {
            assert_eq!(peer, self.server_addr, "client sent to an unknown peer");
            self.send(Dir::ToServer, payload);
            progressed = true;
        }
        while let Some(Transmit { peer, payload }) = self.server.poll_transmit() {
            assert_eq!(peer, self.client_addr, "server sent to an unknown peer");
            self.send(Dir::ToClient, payload);
            progressed = true;
        }
        while let Some(ev) = self.server.poll_event() {
            if let Some(app) = self.server_app.as_mut() {
                app(&mut self.server, self.now, &ev);
            }
            self.server_events.push((self.now, ev));
            progressed = true;
        }
        while let Some(ev) = self.client.poll_event() {
            if let Some(app) = self.client_app.as_mut() {
                app(&mut self.client, self.now, &ev);
            }
            self.client_events.push((self.now, ev));
            progressed = true;
        }
        progressed
    }

    fn send(&mut self, dir: Dir, bytes: Vec<u8>) {
        let i = dir as usize;
        let n = self.counts[i];
        self.counts[i] += 1;
        let dropped = (self.drop)(dir, n, &bytes);
        self.log.push(Logged {
            at: self.now,
            dir,
            bytes: bytes.clone(),
            dropped,
        });
        if !dropped {
            self.in_flight
                .push_back((self.now + self.latency, dir, bytes));
        }
    }

    /// Runs until simulated time reaches `until` (or nothing is left to do),
    /// with a bound on the number of steps.
    pub fn drive_until(&mut self, until: Instant) {
        for _ in 0..1_000_000 {
            if self.collect() {
                continue;
            }
            // Deliver anything due now.
            if let Some(pos) = self.in_flight.iter().position(|(t, _, _)| *t <= self.now) {
                let (_, dir, bytes) = self.in_flight.remove(pos).unwrap();
                match dir {
                    Dir::ToServer => {
                        self.server
                            .handle_datagram(self.now, self.client_addr, &bytes)
                    }
                    Dir::ToClient => {
                        self.client
                            .handle_datagram(self.now, self.server_addr, &bytes)
                    }
                }
                continue;
            }
            let next = [
                self.in_flight.iter().map(|(t, _, _)| *t).min(),
                self.client.poll_timeout(),
                self.server.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    if self.client.poll_timeout().is_some_and(|c| c <= self.now) {
                        self.client.handle_timeout(self.now);
                    }
                    if self.server.poll_timeout().is_some_and(|c| c <= self.now) {
                        self.server.handle_timeout(self.now);
                    }
                }
                _ => {
                    self.now = self.now.max(until);
                    return;
                }
            }
        }
        panic!("drive_until: step bound exceeded (livelock?)");
    }

    /// Drives for `d` of simulated time.
    pub fn drive_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.drive_until(until);
    }

    pub fn client_responses(&self) -> Vec<&Packet> {
        self.client_events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Response { response, .. } => Some(response),
                _ => None,
            })
            .collect()
    }

    pub fn server_requests(&self) -> Vec<&Packet> {
        self.server_events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Request { request, .. } => Some(request),
                _ => None,
            })
            .collect()
    }

    pub fn sent(&self, dir: Dir) -> Vec<&Logged> {
        self.log.iter().filter(|l| l.dir == dir).collect()
    }
}
