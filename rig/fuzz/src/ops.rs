//! Structured fuzzing of the CoAP message layer (quinn's `streams.rs` idea):
//! libFuzzer's bytes become, through [`arbitrary`], a list of [`Op`]s that
//! are replayed against two [`Endpoint`]s `A` and `B` joined by a lossy,
//! reorderable simulated link, plus a few "stranger" peers that only ever
//! send what the fuzzer invents and never answer.
//!
//! Invariants checked after every step (a violation panics):
//! - nothing panics inside the endpoints;
//! - every emitted datagram parses strictly and fits the message-size limit;
//! - one input (datagram or app call) makes at most 16 datagrams, one
//!   `handle_timeout` at most 16 plus 2 per operation so far;
//! - after `handle_timeout(now)`, `poll_timeout()` is later than `now`;
//! - every event names a request, incoming request or observation the
//!   application was given, and no plain (non-Observe) request ends twice
//!   or ends after the application cancelled it.
//!
//! Then a settle phase delivers every datagram loss-free, answers every
//! request, and runs the clock: every plain request that was not cancelled
//! must have ended in exactly one terminal event, and both endpoints' timers
//! must stop (nothing retransmits forever).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use arbitrary::Arbitrary;
use rig_proto::coap::message::{self, request, response};
use rig_proto::coap::{
    Block2Mode, BlockValue, CoapOption, Config, Endpoint, Event, IncomingId, MessageClass,
    MessageType, Method, ObservationId, Packet, RequestId, RequestOptions, ResponseCode,
};
use rig_proto::time::Instant;

/// Which endpoint an operation is about.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Endpoint A (10.0.0.1:5683).
    A,
    /// Endpoint B (10.0.0.2:5683).
    B,
}

/// Who a request goes to, or who an injected datagram claims to come from.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Peer {
    /// The other endpoint.
    Partner,
    /// One of four addresses nobody answers from.
    Stranger(u8),
}

/// Option numbers worth trying (the ones the layer interprets), or any.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Opt {
    /// Uri-Path.
    UriPath,
    /// Uri-Query.
    UriQuery,
    /// Observe.
    Observe,
    /// Block1.
    Block1,
    /// Block2.
    Block2,
    /// Size1.
    Size1,
    /// Size2.
    Size2,
    /// ETag.
    ETag,
    /// Content-Format.
    ContentFormat,
    /// Any number.
    Raw(u16),
}

/// A well-formed CoAP message built from arbitrary fields.
#[derive(Arbitrary, Debug, Clone)]
pub struct Msg {
    /// 0 CON, 1 NON, 2 ACK, 3 RST.
    pub ty: u8,
    /// Raw code byte (class.detail).
    pub code: u8,
    /// Message id, unless `echo` borrows one.
    pub mid: u16,
    /// Token (first 8 bytes), unless `echo` borrows one.
    pub token: Vec<u8>,
    /// Take message id and token from the n-th recent datagram the target
    /// endpoint sent (so ACKs, RSTs and responses can match something).
    pub echo: Option<u8>,
    /// Options.
    pub options: Vec<(Opt, Vec<u8>)>,
    /// Payload.
    pub payload: Vec<u8>,
}

/// A request the application sends.
#[derive(Arbitrary, Debug, Clone)]
pub struct Req {
    /// GET, POST, PUT, DELETE, FETCH... (mod 7).
    pub method: u8,
    /// CON (else NON).
    pub confirmable: bool,
    /// Uri-Path, one of a few.
    pub path: u8,
    /// Observe=0.
    pub observe: bool,
    /// Payload length (see [`body_len`]; Block1 above the block size).
    pub payload_len: u16,
    /// Block2 stream mode.
    pub stream: bool,
    /// Block2 start block (mod 4).
    pub block2_start: u8,
    /// Block size for this request (16 << (n mod 7)), if set.
    pub block_size: Option<u8>,
}

/// One step of a fuzz case.
#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    /// Deliver the oldest datagram in flight towards `to`.
    Deliver {
        /// Destination.
        to: Side,
    },
    /// Lose the oldest datagram in flight towards `to`.
    Drop {
        /// Destination.
        to: Side,
    },
    /// Deliver the oldest datagram towards `to` and keep a copy in flight.
    Duplicate {
        /// Destination.
        to: Side,
    },
    /// Move the oldest datagram towards `to` to the back of the queue.
    Reorder {
        /// Destination.
        to: Side,
    },
    /// Arbitrary bytes to `to`, claiming to come from `from`.
    Raw {
        /// Destination.
        to: Side,
        /// Claimed source.
        from: Peer,
        /// The datagram.
        bytes: Vec<u8>,
    },
    /// A well-formed message to `to`, from `from`.
    Message {
        /// Destination.
        to: Side,
        /// Claimed source.
        from: Peer,
        /// The message.
        msg: Msg,
    },
    /// Move the clock forward.
    Advance {
        /// Milliseconds × 4.
        ms: u16,
    },
    /// Jump to the earlier of both endpoints' deadlines and handle it on both.
    NextDeadline,
    /// `handle_timeout(now)` on one endpoint.
    Timeout {
        /// Which.
        on: Side,
    },
    /// `send_request_with`.
    Send {
        /// Sender.
        on: Side,
        /// Destination.
        to: Peer,
        /// The request.
        req: Req,
    },
    /// `respond` / `respond_observe` to a pending incoming request.
    Respond {
        /// Which endpoint answers.
        on: Side,
        /// Which pending request.
        pick: u8,
        /// Response code byte (used when it is a response class).
        code: u8,
        /// Payload length (see [`body_len`]; Block2 above the block size).
        payload_len: u16,
        /// Accept as an observation.
        observe: bool,
    },
    /// `notify` on an observation.
    Notify {
        /// Which endpoint.
        on: Side,
        /// Which observation.
        pick: u8,
        /// CON (else NON).
        confirmable: bool,
        /// Payload length (see [`body_len`]).
        payload_len: u16,
    },
    /// `cancel` a request.
    Cancel {
        /// Which endpoint.
        on: Side,
        /// Which request.
        pick: u8,
    },
    /// `cancel_observe` a request.
    CancelObserve {
        /// Which endpoint.
        on: Side,
        /// Which request.
        pick: u8,
    },
    /// `cancel_observation` on the server side.
    CancelObservation {
        /// Which endpoint.
        on: Side,
        /// Which observation.
        pick: u8,
    },
    /// Drain events of one endpoint.
    Poll {
        /// Which.
        on: Side,
    },
}

/// A whole fuzz case: a small configuration, two seeds and the operations.
#[derive(Arbitrary, Debug, Clone)]
pub struct Case {
    /// NSTART (mod 3, +1).
    pub nstart: u8,
    /// MAX_RETRANSMIT (mod 6).
    pub max_retransmit: u8,
    /// Token length (mod 9).
    pub token_len: u8,
    /// Preferred block size (16 << (n mod 7)).
    pub block: u8,
    /// Seeds of A and B.
    pub seeds: (u16, u16),
    /// The steps (at most 256 are run).
    pub ops: Vec<Op>,
}

/// A body length from a fuzzed `u16`, for a transfer in blocks of `block`
/// bytes: up to 1 499 bytes, but for small blocks mostly at most four blocks
/// and a half, so that block-wise transfers (which the settle phase runs to
/// the end, one round trip per block) stay short. One value in eight keeps
/// the full range, so long transfers (block numbers ≥ 16, two-byte Block
/// values) are still explored. Blocks of 512 and 1 024 bytes keep the full
/// range always, which is what the seeds written before this bound use.
pub fn body_len(raw: u16, block: usize) -> usize {
    let full = raw >> 13 == 7;
    let cap = if full {
        1500
    } else {
        (4 * block + block / 2 + 1).min(1500)
    };
    usize::from(raw) % cap
}

const PATHS: [&str; 4] = ["/3/0", "/rd", "/5/0/0", "/big"];
const MAX_OPS: usize = 256;
const PER_INPUT: usize = 16;

fn addr(side: Side) -> SocketAddr {
    match side {
        Side::A => SocketAddr::from(([10, 0, 0, 1], 5683)),
        Side::B => SocketAddr::from(([10, 0, 0, 2], 5683)),
    }
}

fn other(side: Side) -> Side {
    match side {
        Side::A => Side::B,
        Side::B => Side::A,
    }
}

fn stranger(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 9, n % 4], 5683))
}

/// One endpoint and what its application knows.
struct Node {
    ep: Endpoint,
    /// Requests received and not answered yet, with the Block2 size the
    /// client asked for (if it did).
    incoming: Vec<(IncomingId, Option<usize>)>,
    /// Every incoming id ever handed out.
    known_incoming: BTreeSet<IncomingId>,
    /// Observations this endpoint serves.
    observations: Vec<ObservationId>,
    known_observations: BTreeSet<ObservationId>,
    /// Requests sent: id → asked for Observe.
    requests: BTreeMap<RequestId, bool>,
    /// Plain requests that ended.
    ended: BTreeSet<RequestId>,
    /// Requests the app cancelled.
    cancelled: BTreeSet<RequestId>,
    /// Message id and token of recent datagrams this endpoint sent (for `Msg::echo`).
    recent: VecDeque<(u16, Vec<u8>)>,
    limit: usize,
    /// The configured block size.
    block: usize,
}

impl Node {
    fn new(cfg: Config, seed: u64) -> Node {
        let limit = cfg.max_message_size;
        let block = cfg.block_size();
        Node {
            ep: Endpoint::new(cfg, seed),
            incoming: Vec::new(),
            known_incoming: BTreeSet::new(),
            observations: Vec::new(),
            known_observations: BTreeSet::new(),
            requests: BTreeMap::new(),
            ended: BTreeSet::new(),
            cancelled: BTreeSet::new(),
            recent: VecDeque::new(),
            limit,
            block,
        }
    }

    fn pick<T: Copy>(v: &[T], n: u8) -> Option<T> {
        (!v.is_empty()).then(|| v[usize::from(n) % v.len()])
    }

    fn pick_request(&self, n: u8) -> Option<RequestId> {
        let ids: Vec<RequestId> = self.requests.keys().copied().collect();
        Self::pick(&ids, n)
    }

    fn drain_events(&mut self) {
        while let Some(e) = self.ep.poll_event() {
            self.event(e);
        }
    }

    fn event(&mut self, e: Event) {
        let check_req = |n: &Node, id: RequestId, what: &str| {
            assert!(
                n.requests.contains_key(&id),
                "{what} for request {id:?} the app never sent"
            );
        };
        match e {
            Event::Request { id, request, .. } => {
                assert!(self.known_incoming.insert(id), "incoming id {id:?} reused");
                let block2 = BlockValue::from_packet(&request, CoapOption::Block2)
                    .and_then(Result::ok)
                    .map(BlockValue::size);
                self.incoming.push((id, block2));
            }
            Event::Response { id, .. } => {
                check_req(self, id, "Response");
                self.end(id, "Response");
            }
            Event::RequestTimedOut { id } => {
                check_req(self, id, "RequestTimedOut");
                self.end(id, "RequestTimedOut");
            }
            Event::Reset { id } => {
                check_req(self, id, "Reset");
                self.end(id, "Reset");
            }
            Event::TransferFailed { id, .. } => {
                check_req(self, id, "TransferFailed");
                self.end(id, "TransferFailed");
            }
            Event::ResponseBlock { id, .. } | Event::Notification { id, .. } => {
                check_req(self, id, "ResponseBlock/Notification");
                assert!(
                    !self.cancelled.contains(&id) || self.requests[&id],
                    "event for cancelled plain request {id:?}"
                );
            }
            Event::ResponseFailed { id, .. } => {
                assert!(
                    self.known_incoming.contains(&id),
                    "ResponseFailed for unknown incoming {id:?}"
                );
            }
            Event::ObservationCancelled { id, .. } => {
                assert!(
                    self.known_observations.contains(&id),
                    "ObservationCancelled for unknown {id:?}"
                );
                self.observations.retain(|o| *o != id);
            }
            Event::Malformed { error, .. } => {
                let _ = error.to_string();
            }
        }
    }

    fn end(&mut self, id: RequestId, what: &str) {
        let observe = self.requests.get(&id).copied().unwrap_or(false);
        if observe {
            return; // established observations see several Responses
        }
        assert!(
            !self.cancelled.contains(&id),
            "{what} for request {id:?} after the app cancelled it"
        );
        assert!(
            self.ended.insert(id),
            "second terminal event ({what}) for {id:?}"
        );
    }
}

/// The simulated link and the clock.
struct World {
    a: Node,
    b: Node,
    /// In flight towards A and towards B.
    to_a: VecDeque<Vec<u8>>,
    to_b: VecDeque<Vec<u8>>,
    now: Instant,
    steps: usize,
}

impl World {
    fn node(&mut self, s: Side) -> &mut Node {
        match s {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    fn queue(&mut self, to: Side) -> &mut VecDeque<Vec<u8>> {
        match to {
            Side::A => &mut self.to_a,
            Side::B => &mut self.to_b,
        }
    }

    /// Moves `side`'s transmits onto the link; checks them; returns how many.
    fn collect(&mut self, side: Side) -> usize {
        let mut n = 0;
        loop {
            let node = self.node(side);
            let Some(t) = node.ep.poll_transmit() else {
                break;
            };
            n += 1;
            if t.payload.len() > node.limit {
                let what = message::parse(&t.payload).map(|p| {
                    let opts: Vec<(u16, usize)> = p
                        .options()
                        .map(|(n, v)| (*n, v.iter().map(Vec::len).sum()))
                        .collect();
                    format!(
                        "{:?} {} options {opts:?} payload {} bytes",
                        p.header.get_type(),
                        p.header.code,
                        p.payload.len()
                    )
                });
                panic!(
                    "oversized datagram from {side:?}: {} bytes (limit {}): {what:?}",
                    t.payload.len(),
                    node.limit
                );
            }
            let p = match message::parse(&t.payload) {
                Ok(p) => p,
                Err(e) => panic!("emitted a malformed datagram ({e}): {:02x?}", t.payload),
            };
            let token = p.get_token().to_vec();
            node.recent.push_front((p.header.message_id, token));
            node.recent.truncate(16);
            if t.peer == addr(other(side)) {
                let q = self.queue(other(side));
                if q.len() < 512 {
                    q.push_back(t.payload);
                }
            }
        }
        n
    }

    fn after(&mut self, max_each: usize) {
        for s in [Side::A, Side::B] {
            let n = self.collect(s);
            assert!(
                n <= max_each,
                "{n} datagrams from one step (limit {max_each})"
            );
            self.node(s).drain_events();
        }
    }

    fn deliver(&mut self, to: Side, keep: bool) {
        let Some(d) = self.queue(to).pop_front() else {
            return;
        };
        if keep {
            self.queue(to).push_back(d.clone());
        }
        let now = self.now;
        let from = addr(other(to));
        self.node(to).ep.handle_datagram(now, from, &d);
    }

    fn timeout(&mut self, on: Side) {
        let now = self.now;
        let node = self.node(on);
        node.ep.handle_timeout(now);
        if let Some(t) = node.ep.poll_timeout() {
            assert!(t > now, "timer did not move forward: next {t} <= now {now}");
        }
    }

    fn timeout_limit(&self) -> usize {
        PER_INPUT + 2 * self.steps
    }

    fn step(&mut self, op: Op) {
        self.steps += 1;
        let mut limit = PER_INPUT;
        match op {
            Op::Deliver { to } => self.deliver(to, false),
            Op::Duplicate { to } => self.deliver(to, true),
            Op::Drop { to } => {
                self.queue(to).pop_front();
            }
            Op::Reorder { to } => {
                let q = self.queue(to);
                if let Some(d) = q.pop_front() {
                    q.push_back(d);
                }
            }
            Op::Raw { to, from, bytes } => {
                let from = self.peer(to, from);
                let now = self.now;
                self.node(to).ep.handle_datagram(now, from, &bytes);
            }
            Op::Message { to, from, msg } => {
                let from = self.peer(to, from);
                let node = self.node(to);
                if let Some(bytes) = build(&msg, &node.recent) {
                    let now = self.now;
                    self.node(to).ep.handle_datagram(now, from, &bytes);
                }
            }
            Op::Advance { ms } => {
                self.now = self.now + Duration::from_millis(u64::from(ms) * 4);
            }
            Op::NextDeadline => {
                let t = [self.a.ep.poll_timeout(), self.b.ep.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min();
                if let Some(t) = t {
                    self.now = self.now.max(t);
                }
                self.timeout(Side::A);
                self.timeout(Side::B);
                limit = 2 * self.timeout_limit();
            }
            Op::Timeout { on } => {
                self.timeout(on);
                limit = self.timeout_limit();
            }
            Op::Send { on, to, req } => {
                let peer = match to {
                    Peer::Partner => addr(other(on)),
                    Peer::Stranger(n) => stranger(n),
                };
                self.send(on, peer, &req);
            }
            Op::Respond {
                on,
                pick,
                code,
                payload_len,
                observe,
            } => {
                let now = self.now;
                let node = self.node(on);
                if !node.incoming.is_empty() {
                    let (id, asked) = node
                        .incoming
                        .remove(usize::from(pick) % node.incoming.len());
                    let block = asked.map_or(node.block, |b| b.min(node.block));
                    let mut r = response(ResponseCode::Content);
                    if code >> 5 >= 2 && code >> 5 <= 5 {
                        r.header.code = MessageClass::from(code);
                    }
                    r.payload = vec![0xa5; body_len(payload_len, block)];
                    if observe {
                        if let Ok(o) = node.ep.respond_observe(now, id, r) {
                            assert!(node.known_observations.insert(o), "observation id reused");
                            node.observations.push(o);
                        }
                    } else {
                        let _ = node.ep.respond(now, id, r);
                    }
                }
            }
            Op::Notify {
                on,
                pick,
                confirmable,
                payload_len,
            } => {
                let now = self.now;
                let node = self.node(on);
                if let Some(o) = Node::pick(&node.observations, pick) {
                    let mut r = response(ResponseCode::Content);
                    r.payload = vec![0x5a; body_len(payload_len, node.block)];
                    let _ = node.ep.notify(now, o, r, confirmable);
                }
            }
            Op::Cancel { on, pick } => {
                let node = self.node(on);
                if let Some(id) = node.pick_request(pick)
                    && node.ep.cancel(id)
                {
                    node.cancelled.insert(id);
                }
            }
            Op::CancelObserve { on, pick } => {
                let now = self.now;
                let node = self.node(on);
                if let Some(id) = node.pick_request(pick) {
                    let _ = node.ep.cancel_observe(now, id);
                }
            }
            Op::CancelObservation { on, pick } => {
                let node = self.node(on);
                if let Some(o) = Node::pick(&node.observations, pick)
                    && node.ep.cancel_observation(o)
                {
                    node.observations.retain(|x| *x != o);
                }
            }
            Op::Poll { on } => self.node(on).drain_events(),
        }
        self.after(limit);
    }

    fn peer(&self, to: Side, from: Peer) -> SocketAddr {
        match from {
            Peer::Partner => addr(other(to)),
            Peer::Stranger(n) => stranger(n),
        }
    }

    fn send(&mut self, on: Side, peer: SocketAddr, req: &Req) {
        let method = match req.method % 7 {
            0 => Method::Get,
            1 => Method::Post,
            2 => Method::Put,
            3 => Method::Delete,
            4 => Method::Fetch,
            5 => Method::Patch,
            _ => Method::IPatch,
        };
        let mut p = request(
            method,
            req.confirmable,
            PATHS[usize::from(req.path) % PATHS.len()],
        );
        if req.observe {
            message::set_uint_option(&mut p, CoapOption::Observe, 0);
        }
        let block = req.block_size.map(|n| 16usize << (n % 7));
        p.payload = vec![0x42; body_len(req.payload_len, block.unwrap_or(self.node(on).block))];
        let opts = RequestOptions {
            block2: if req.stream {
                Block2Mode::Stream
            } else {
                Block2Mode::Reassemble
            },
            block2_start: u32::from(req.block2_start % 4),
            block_size: block,
        };
        let now = self.now;
        let node = self.node(on);
        if let Ok(id) = node.ep.send_request_with(now, peer, p, opts) {
            assert!(
                node.requests.insert(id, req.observe).is_none(),
                "request id {id:?} reused"
            );
        }
    }

    /// Loss-free delivery, every request answered, the clock run to the end.
    fn settle(&mut self) {
        for _ in 0..2000 {
            let mut busy = false;
            for to in [Side::A, Side::B] {
                while !self.queue(to).is_empty() {
                    busy = true;
                    self.deliver(to, false);
                    self.after(usize::MAX);
                }
            }
            for on in [Side::A, Side::B] {
                let now = self.now;
                let node = self.node(on);
                for (id, _) in std::mem::take(&mut node.incoming) {
                    busy = true;
                    let _ = node.ep.respond(now, id, response(ResponseCode::Content));
                }
                self.after(usize::MAX);
            }
            if busy {
                continue;
            }
            let t = [self.a.ep.poll_timeout(), self.b.ep.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let Some(t) = t else {
                break;
            };
            self.now = self.now.max(t);
            self.timeout(Side::A);
            self.timeout(Side::B);
            self.after(usize::MAX);
        }
        for (name, n) in [("A", &self.a), ("B", &self.b)] {
            for (id, observe) in &n.requests {
                if !observe && !n.cancelled.contains(id) {
                    assert!(
                        n.ended.contains(id),
                        "{name}: request {id:?} never ended (open: {})",
                        n.ep.open_requests()
                    );
                }
            }
            let obs_open = n
                .requests
                .iter()
                .filter(|(id, o)| **o && !n.cancelled.contains(id))
                .count();
            assert!(
                n.ep.open_requests() <= obs_open,
                "{name}: {} requests still open after settling, {obs_open} may be observations",
                n.ep.open_requests()
            );
            assert_eq!(
                n.ep.poll_timeout(),
                None,
                "{name}: timer still armed after settling"
            );
        }
    }
}

/// Encodes `msg`, borrowing id and token from `recent` if asked.
fn build(msg: &Msg, recent: &VecDeque<(u16, Vec<u8>)>) -> Option<Vec<u8>> {
    let mut p = Packet::new();
    p.header.set_type(match msg.ty % 4 {
        0 => MessageType::Confirmable,
        1 => MessageType::NonConfirmable,
        2 => MessageType::Acknowledgement,
        _ => MessageType::Reset,
    });
    p.header.code = MessageClass::from(msg.code);
    p.header.message_id = msg.mid;
    let mut token = msg.token.clone();
    token.truncate(8);
    if let Some(r) = msg.echo.and_then(|n| recent.get(usize::from(n) % 16)) {
        p.header.message_id = r.0;
        token = r.1.clone();
    }
    p.set_token(token);
    for (o, v) in msg.options.iter().take(12) {
        let opt = match o {
            Opt::UriPath => CoapOption::UriPath,
            Opt::UriQuery => CoapOption::UriQuery,
            Opt::Observe => CoapOption::Observe,
            Opt::Block1 => CoapOption::Block1,
            Opt::Block2 => CoapOption::Block2,
            Opt::Size1 => CoapOption::Size1,
            Opt::Size2 => CoapOption::Size2,
            Opt::ETag => CoapOption::ETag,
            Opt::ContentFormat => CoapOption::ContentFormat,
            Opt::Raw(n) => CoapOption::from(*n),
        };
        let mut v = v.clone();
        v.truncate(270);
        p.add_option(opt, v);
    }
    p.payload = msg.payload.clone();
    p.to_bytes().ok()
}

/// Runs one fuzz case.
pub fn run(case: Case) {
    let cfg = |seed_block: u8| Config {
        nstart: usize::from(case.nstart % 3) + 1,
        max_retransmit: case.max_retransmit % 6,
        token_len: case.token_len % 9,
        preferred_block_size: 16usize << (seed_block % 7),
        max_dedup_entries: 64,
        max_block_states: 8,
        max_body_size: 64 * 1024,
        ..Config::default()
    };
    let mut w = World {
        a: Node::new(cfg(case.block), u64::from(case.seeds.0)),
        b: Node::new(cfg(case.block), u64::from(case.seeds.1)),
        to_a: VecDeque::new(),
        to_b: VecDeque::new(),
        now: Instant::ZERO,
        steps: 0,
    };
    for op in case.ops.into_iter().take(MAX_OPS) {
        w.step(op);
    }
    w.settle();
}
