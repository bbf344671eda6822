//! The [`Endpoint`] state machine: exchanges, reliability, deduplication,
//! block-wise transfers and observations for one local socket.
//!
//! Internal layout (all keyed maps, no hashing so it works without std):
//! - `requests`: requests this endpoint sent, by [`RequestId`]; `tokens`
//!   maps `(peer, token)` back to them for response matching.
//! - `retx`: every CON message awaiting an ACK, by `(peer, message id)`,
//!   with its retransmission state and its owner (request, separate response
//!   or notification).
//! - `incoming` and `dedup`: requests received and not yet answered, and the
//!   reply to re-send when a duplicate arrives.
//! - `block2_cache` / `block1_rx`: server-side block-wise state.
//! - `observations`: server-side observations.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};

use super::block::{self, BlockValue};
use super::message::{self, has_option, resource_key, uint_option};
use super::observe::{self, is_fresh};
use super::rng::Rng;
use super::{
    Block2Mode, CancelReason, Config, Event, IncomingId, ObservationId, RequestId, RequestOptions,
    RespondError, SendError, TransferError, Transmit,
};
use crate::time::Instant;

/// Counters of things the endpoint handled silently, for tests and reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handed to `handle_datagram`.
    pub datagrams_received: u64,
    /// Datagrams produced by `poll_transmit`.
    pub datagrams_sent: u64,
    /// Retransmissions of CON messages.
    pub retransmissions: u64,
    /// Duplicate CON/NON messages (answered from the dedup cache or dropped).
    pub duplicates: u64,
    /// ACKs that matched no outstanding CON.
    pub unknown_acks: u64,
    /// RSTs that matched nothing.
    pub unknown_resets: u64,
    /// Responses whose token matched no request.
    pub unmatched_responses: u64,
    /// Malformed datagrams.
    pub malformed: u64,
    /// Empty CON messages ("CoAP ping") answered with RST.
    pub pings: u64,
    /// Notifications dropped as stale by the RFC 7641 §3.4 rule.
    pub stale_notifications: u64,
    /// Block2 requests served from the block cache without asking the app.
    pub blocks_served_from_cache: u64,
    /// Block-wise notifications whose remaining blocks could not be fetched.
    pub failed_notification_fetches: u64,
}

/// Who owns a CON message awaiting its ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Request(RequestId),
    Response(IncomingId),
    Notification(ObservationId),
}

#[derive(Debug, Clone)]
struct Retx {
    bytes: Vec<u8>,
    next: Instant,
    timeout: Duration,
    count: u8,
    owner: Owner,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for an NSTART slot.
    Queued,
    /// Sent; `mid` is the current message; `acked` once an empty ACK came.
    Waiting {
        mid: u16,
        acked: bool,
        deadline: Instant,
    },
    /// Observation established; notifications flow.
    Observing,
}

#[derive(Debug, Clone)]
struct ClientBlock2 {
    buf: Vec<u8>,
    etag: Option<Vec<u8>>,
    next_num: u32,
    szx: u8,
    started: bool,
}

#[derive(Debug, Clone)]
struct OutRequest {
    peer: SocketAddr,
    token: Vec<u8>,
    /// The request without payload, token set, message id unset.
    template: Packet,
    body: Vec<u8>,
    confirmable: bool,
    phase: Phase,
    holds_slot: bool,
    /// Block1 upload: (current block number, szx).
    block1: Option<(u32, u8)>,
    /// The body goes out block-wise (Block1), starting with this SZX. Its
    /// Block2 follow-ups then carry no payload (RFC 7959 §3.3), and a
    /// re-sent request (`cancel_observe`) uploads the body block-wise again.
    block1_szx: Option<u8>,
    block2: ClientBlock2,
    mode: Block2Mode,
    /// Observe=0 was asked for.
    observe: bool,
    last_notification: Option<(u32, Instant)>,
    /// For an internal fetch of the remaining blocks of a notification
    /// (RFC 7959 §3.4): the observation it belongs to and its first block.
    parent: Option<(RequestId, Packet)>,
    /// A GET with Observe=1 is in flight: late notifications are not its answer.
    deregistering: bool,
}

#[derive(Debug, Clone)]
struct Incoming {
    peer: SocketAddr,
    mid: u16,
    token: Vec<u8>,
    confirmable: bool,
    acked: bool,
    ack_deadline: Option<Instant>,
    expires: Instant,
    key: Vec<u8>,
    block2_req: Option<BlockValue>,
    block1_echo: Option<BlockValue>,
    observe_req: Option<u32>,
}

#[derive(Debug, Clone)]
struct Dedup {
    expires: Instant,
    reply: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
struct Block2Cache {
    etag: Vec<u8>,
    template: Packet,
    body: Vec<u8>,
    szx: u8,
    expires: Instant,
}

#[derive(Debug, Clone)]
struct Block1Rx {
    buf: Vec<u8>,
    next_num: u32,
    szx: u8,
    expires: Instant,
}

#[derive(Debug, Clone)]
struct Observation {
    peer: SocketAddr,
    token: Vec<u8>,
    key: Vec<u8>,
    seq: u32,
    /// Message id of the CON notification in flight, if any.
    pending_con: Option<u16>,
    /// Message id of the last NON notification (an RST to it cancels).
    last_non: Option<u16>,
}

/// One CoAP endpoint (one local socket, many peers), as a sans-IO state
/// machine. See the [module documentation](super) for the call order.
#[derive(Debug)]
pub struct Endpoint {
    config: Config,
    rng: Rng,
    next_mid: u16,
    next_id: u64,
    requests: BTreeMap<RequestId, OutRequest>,
    tokens: BTreeMap<(SocketAddr, Vec<u8>), RequestId>,
    slots: BTreeMap<SocketAddr, (usize, VecDeque<RequestId>)>,
    retx: BTreeMap<(SocketAddr, u16), Retx>,
    incoming: BTreeMap<IncomingId, Incoming>,
    dedup: BTreeMap<(SocketAddr, u16), Dedup>,
    dedup_order: VecDeque<(Instant, SocketAddr, u16)>,
    block2_cache: BTreeMap<(SocketAddr, Vec<u8>), Block2Cache>,
    block1_rx: BTreeMap<(SocketAddr, Vec<u8>), Block1Rx>,
    observations: BTreeMap<ObservationId, Observation>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    /// The latest `now` seen, for calls that take no time (`cancel`).
    last_now: Instant,
}

fn empty_message(ty: MessageType, mid: u16) -> Vec<u8> {
    let t: u8 = match ty {
        MessageType::Confirmable => 0,
        MessageType::NonConfirmable => 1,
        MessageType::Acknowledgement => 2,
        MessageType::Reset => 3,
    };
    let m = mid.to_be_bytes();
    alloc::vec![0x40 | (t << 4), 0, m[0], m[1]]
}

/// 8-byte FNV-1a of a body, used as ETag when the application gave none.
fn fnv_etag(body: &[u8]) -> Vec<u8> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.to_be_bytes().to_vec()
}

fn is_success(code: ResponseType) -> bool {
    u8::from(MessageClass::Response(code)) >> 5 == 2
}

impl Endpoint {
    /// A new endpoint. `seed` drives message ids, tokens and retransmission
    /// jitter, so equal seeds and inputs give byte-identical outputs.
    pub fn new(config: Config, seed: u64) -> Endpoint {
        let mut rng = Rng::new(seed);
        let next_mid = rng.next_u64() as u16;
        Endpoint {
            config,
            rng,
            next_mid,
            next_id: 0,
            requests: BTreeMap::new(),
            tokens: BTreeMap::new(),
            slots: BTreeMap::new(),
            retx: BTreeMap::new(),
            incoming: BTreeMap::new(),
            dedup: BTreeMap::new(),
            dedup_order: VecDeque::new(),
            block2_cache: BTreeMap::new(),
            block1_rx: BTreeMap::new(),
            observations: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            last_now: Instant::ZERO,
        }
    }

    /// The configuration this endpoint runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters of silently handled things.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Number of requests sent and not finished (including established observations).
    pub fn open_requests(&self) -> usize {
        self.requests.len()
    }

    /// Number of observations this endpoint serves.
    pub fn observation_count(&self) -> usize {
        self.observations.len()
    }

    /// The observer and token of an observation, if it exists.
    pub fn observation(&self, id: ObservationId) -> Option<(SocketAddr, &[u8])> {
        self.observations
            .get(&id)
            .map(|o| (o.peer, o.token.as_slice()))
    }

    // ------------------------------------------------------------------
    // outputs

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.transmits.pop_front();
        if t.is_some() {
            self.stats.datagrams_sent += 1;
        }
        t
    }

    /// The next event for the application, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest instant at which [`Endpoint::handle_timeout`] must be
    /// called, or `None` if no timer is running.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut min = |i: Instant| {
            t = Some(t.map_or(i, |c: Instant| c.min(i)));
        };
        for r in self.retx.values() {
            min(r.next);
        }
        for inc in self.incoming.values() {
            if let Some(d) = inc.ack_deadline {
                min(d);
            }
            min(inc.expires);
        }
        for r in self.requests.values() {
            if let Phase::Waiting { deadline, .. } = r.phase {
                min(deadline);
            }
        }
        if let Some((e, _, _)) = self.dedup_order.front() {
            min(*e);
        }
        for c in self.block2_cache.values() {
            min(c.expires);
        }
        for c in self.block1_rx.values() {
            min(c.expires);
        }
        t
    }

    // ------------------------------------------------------------------
    // app calls: client role

    /// Sends a request (CON or NON, per the packet's type) with default
    /// [`RequestOptions`]. The endpoint assigns the message id, and a token
    /// of [`Config::token_len`] bytes if the packet's token is empty. Payloads
    /// larger than the block size go out block by block (Block1).
    pub fn send_request(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        request: Packet,
    ) -> Result<RequestId, SendError> {
        self.send_request_with(now, peer, request, RequestOptions::default())
    }

    /// [`Endpoint::send_request`] with explicit block-wise options.
    pub fn send_request_with(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        mut request: Packet,
        options: RequestOptions,
    ) -> Result<RequestId, SendError> {
        self.last_now = self.last_now.max(now);
        let MessageClass::Request(_) = request.header.code else {
            return Err(SendError::NotARequest(format!("{}", request.header.code)));
        };
        let confirmable = match request.header.get_type() {
            MessageType::Confirmable => true,
            MessageType::NonConfirmable => false,
            MessageType::Acknowledgement => return Err(SendError::BadType("ACK")),
            MessageType::Reset => return Err(SendError::BadType("RST")),
        };
        let token = if request.get_token().is_empty() {
            self.fresh_token(peer)
        } else {
            request.get_token().to_vec()
        };
        if self.tokens.contains_key(&(peer, token.clone())) {
            return Err(SendError::InvalidState(
                "token already in use for this peer",
            ));
        }
        request.set_token(token.clone());
        let body = core::mem::take(&mut request.payload);
        let block_size = options
            .block_size
            .map(|s| block::szx_to_size(block::size_to_szx(s)))
            .unwrap_or(self.config.block_size());
        let szx = block::size_to_szx(block_size);
        let block1 = (body.len() > block_size && !has_option(&request, CoapOption::Block1))
            .then_some((0u32, szx));
        // Size check of the largest message this request can become: its
        // options, the largest payload it carries (one block, or the whole
        // body), and the Block1, Size1 and Block2 options the endpoint may
        // add, each at its longest encoding.
        let first_len = body.len().min(if block1.is_some() {
            block_size
        } else {
            body.len()
        });
        let mut probe = request.clone();
        probe.payload = alloc::vec![0; first_len];
        if let Some((_, szx)) = block1 {
            BlockValue {
                num: block::MAX_NUM,
                more: true,
                szx,
            }
            .set_on(&mut probe, CoapOption::Block1);
            block::set_size(&mut probe, CoapOption::Size1, body.len());
        }
        BlockValue {
            num: block::MAX_NUM,
            more: false,
            szx,
        }
        .set_on(&mut probe, CoapOption::Block2);
        let size = probe
            .to_bytes_unlimited()
            .map_err(|e| SendError::Encode(format!("{e}")))?
            .len();
        if size > self.config.max_message_size {
            return Err(SendError::TooLarge {
                size,
                limit: self.config.max_message_size,
            });
        }
        let observe = matches!(uint_option(&request, CoapOption::Observe), Some(Ok(0)));
        let id = RequestId(self.alloc_id());
        let block2_start = options.block2_start;
        self.requests.insert(
            id,
            OutRequest {
                peer,
                token: token.clone(),
                template: request,
                body,
                confirmable,
                phase: Phase::Queued,
                holds_slot: false,
                block1,
                block1_szx: block1.map(|(_, szx)| szx),
                block2: ClientBlock2 {
                    buf: Vec::new(),
                    etag: None,
                    next_num: block2_start,
                    szx,
                    started: block2_start > 0,
                },
                mode: options.block2,
                observe,
                last_notification: None,
                parent: None,
                deregistering: false,
            },
        );
        self.tokens.insert((peer, token), id);
        self.start_or_queue(now, id);
        Ok(id)
    }

    /// Forgets a request: no more retransmissions, and no event for it. For
    /// an established observation this is the "reactive" cancel of RFC 7641
    /// §3.6: the next notification is answered with RST. Returns false if
    /// the id is unknown.
    pub fn cancel(&mut self, id: RequestId) -> bool {
        let Some(req) = self.requests.get(&id) else {
            return false;
        };
        if let Phase::Waiting { mid, .. } = req.phase {
            let key = (req.peer, mid);
            if self
                .retx
                .get(&key)
                .is_some_and(|r| r.owner == Owner::Request(id))
            {
                self.retx.remove(&key);
            }
        }
        let peer = req.peer;
        if let Some((_, q)) = self.slots.get_mut(&peer) {
            q.retain(|r| *r != id);
        }
        let now = self.last_now;
        self.finish_request(now, id, false);
        true
    }

    /// Proactively cancels an established observation (RFC 7641 §3.6): sends
    /// a GET with Observe=1 and the same token. The response ends the request
    /// with [`Event::Response`].
    pub fn cancel_observe(&mut self, now: Instant, id: RequestId) -> Result<(), SendError> {
        let req = self
            .requests
            .get_mut(&id)
            .ok_or(SendError::UnknownRequest(id))?;
        if req.phase != Phase::Observing {
            return Err(SendError::InvalidState(
                "the request is not an established observation",
            ));
        }
        message::set_uint_option(&mut req.template, CoapOption::Observe, 1);
        message::remove_option(&mut req.template, CoapOption::Block2);
        req.observe = false;
        req.deregistering = true;
        req.phase = Phase::Queued;
        // The GET/FETCH with Observe=1 repeats the request, body included.
        req.block1 = req.block1_szx.map(|szx| (0, szx));
        req.block2 = ClientBlock2 {
            buf: Vec::new(),
            etag: None,
            next_num: 0,
            szx: req.block2.szx,
            started: false,
        };
        self.start_or_queue(now, id);
        Ok(())
    }

    // ------------------------------------------------------------------
    // app calls: server role

    /// Answers an incoming request. The response is piggybacked in the ACK
    /// when the empty ACK has not gone out yet, else sent as a separate
    /// response (CON for a CON request, NON for a NON one). Token, message id
    /// and type are set by the endpoint. A payload larger than the block size
    /// (or than the client's Block2 size) is served block by block.
    pub fn respond(
        &mut self,
        now: Instant,
        id: IncomingId,
        response: Packet,
    ) -> Result<(), RespondError> {
        let MessageClass::Response(_) = response.header.code else {
            return Err(RespondError::NotAResponse(format!(
                "{}",
                response.header.code
            )));
        };
        let inc = self
            .incoming
            .remove(&id)
            .ok_or(RespondError::UnknownExchange(id))?;
        self.respond_inner(now, id, inc, response, None)
    }

    /// Answers a GET with Observe=0 and registers the observation (RFC 7641).
    /// The response must be 2.xx; the endpoint sets its Observe sequence
    /// number. Use [`Endpoint::notify`] for later notifications.
    pub fn respond_observe(
        &mut self,
        now: Instant,
        id: IncomingId,
        response: Packet,
    ) -> Result<ObservationId, RespondError> {
        let code = message::response_code(&response)
            .ok_or_else(|| RespondError::NotAResponse(format!("{}", response.header.code)))?;
        let inc = self
            .incoming
            .get(&id)
            .ok_or(RespondError::UnknownExchange(id))?;
        if inc.observe_req != Some(0) {
            return Err(RespondError::NotObservable(
                "the request did not carry Observe=0",
            ));
        }
        if !is_success(code) {
            return Err(RespondError::NotObservable(
                "only a 2.xx response registers an observer",
            ));
        }
        let inc = self
            .incoming
            .remove(&id)
            .ok_or(RespondError::UnknownExchange(id))?;
        // A registration with the same token from the same peer replaces the old one.
        let old: Vec<ObservationId> = self
            .observations
            .iter()
            .filter(|(_, o)| o.peer == inc.peer && o.token == inc.token)
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            self.observations.remove(&k);
        }
        let oid = ObservationId(self.alloc_id());
        let seq = (self.rng.next_u64() as u32) & 0xffff;
        self.observations.insert(
            oid,
            Observation {
                peer: inc.peer,
                token: inc.token.clone(),
                key: inc.key.clone(),
                seq,
                pending_con: None,
                last_non: None,
            },
        );
        if let Err(e) = self.respond_inner(now, id, inc, response, Some(seq)) {
            self.observations.remove(&oid);
            return Err(e);
        }
        Ok(oid)
    }

    /// Sends a notification for an observation (CON if `confirmable`). The
    /// endpoint sets token, message id, type and the next 24-bit Observe
    /// sequence number. A new CON notification replaces one still in flight
    /// and inherits its retransmission state (RFC 7641 §4.5.2). A payload
    /// larger than the block size sends the first block; the client fetches
    /// the rest (served from the block cache).
    pub fn notify(
        &mut self,
        now: Instant,
        id: ObservationId,
        mut notification: Packet,
        confirmable: bool,
    ) -> Result<(), RespondError> {
        let MessageClass::Response(_) = notification.header.code else {
            return Err(RespondError::NotAResponse(format!(
                "{}",
                notification.header.code
            )));
        };
        let obs = self
            .observations
            .get(&id)
            .ok_or(RespondError::UnknownObservation(id))?;
        let peer = obs.peer;
        let seq = observe::next_sequence(obs.seq);
        let token = obs.token.clone();
        let key = obs.key.clone();
        self.apply_block2(now, peer, &key, &mut notification, None)?;
        notification.set_token(token);
        message::set_uint_option(&mut notification, CoapOption::Observe, seq);
        let mid = self.alloc_mid();
        notification.header.message_id = mid;
        notification.header.set_type(if confirmable {
            MessageType::Confirmable
        } else {
            MessageType::NonConfirmable
        });
        let bytes = self.encode(&notification)?;
        let obs = self
            .observations
            .get_mut(&id)
            .ok_or(RespondError::UnknownObservation(id))?;
        obs.seq = seq;
        let inherited = obs
            .pending_con
            .take()
            .and_then(|m| self.retx.remove(&(peer, m)));
        if confirmable {
            obs.pending_con = Some(mid);
            let (timeout, count) = match inherited {
                Some(r) => (r.timeout, r.count),
                None => (self.initial_timeout(), 0),
            };
            self.retx.insert(
                (peer, mid),
                Retx {
                    bytes: bytes.clone(),
                    next: now + timeout,
                    timeout,
                    count,
                    owner: Owner::Notification(id),
                },
            );
        } else {
            obs.last_non = Some(mid);
        }
        self.transmits.push_back(Transmit {
            peer,
            payload: bytes,
        });
        Ok(())
    }

    /// Stops serving an observation without telling the client (the next
    /// notification would have been its last anyway). Returns false if unknown.
    pub fn cancel_observation(&mut self, id: ObservationId) -> bool {
        match self.observations.remove(&id) {
            Some(o) => {
                if let Some(m) = o.pending_con {
                    self.retx.remove(&(o.peer, m));
                }
                true
            }
            None => false,
        }
    }

    // ------------------------------------------------------------------
    // inputs

    /// Feeds one received datagram from `peer`.
    pub fn handle_datagram(&mut self, now: Instant, peer: SocketAddr, datagram: &[u8]) {
        self.last_now = self.last_now.max(now);
        self.stats.datagrams_received += 1;
        let packet = match message::parse(datagram) {
            Ok(p) => p,
            Err(error) => {
                self.stats.malformed += 1;
                if let (true, Some(mid)) = (error.confirmable, error.message_id) {
                    self.transmits.push_back(Transmit {
                        peer,
                        payload: empty_message(MessageType::Reset, mid),
                    });
                }
                self.events.push_back(Event::Malformed { peer, error });
                return;
            }
        };
        let mid = packet.header.message_id;
        match (packet.header.get_type(), packet.header.code) {
            (MessageType::Acknowledgement, _) => self.on_ack(now, peer, packet),
            (MessageType::Reset, _) => self.on_reset(now, peer, mid),
            (MessageType::Confirmable, MessageClass::Empty) => {
                self.stats.pings += 1;
                self.transmits.push_back(Transmit {
                    peer,
                    payload: empty_message(MessageType::Reset, mid),
                });
            }
            (MessageType::NonConfirmable, MessageClass::Empty) => {
                // RFC 7252 §4.3: a NON message is never Empty; ignore it.
                self.stats.malformed += 1;
            }
            (ty, code) => {
                let con = ty == MessageType::Confirmable;
                if let Some(d) = self.dedup.get(&(peer, mid)) {
                    self.stats.duplicates += 1;
                    if let Some(reply) = d.reply.clone() {
                        self.transmits.push_back(Transmit {
                            peer,
                            payload: reply,
                        });
                    }
                    return;
                }
                let life = if con {
                    self.config.scaled_exchange_lifetime()
                } else {
                    self.config.scaled_non_lifetime()
                };
                self.remember(peer, mid, now + life);
                match code {
                    MessageClass::Request(_) => self.on_request(now, peer, packet, con),
                    MessageClass::Response(_) => self.on_response(now, peer, packet, con),
                    _ => {
                        // Reserved codes were rejected by `parse`; treat as unknown.
                        if con {
                            self.reply(peer, mid, empty_message(MessageType::Reset, mid));
                        }
                    }
                }
            }
        }
    }

    /// Runs every timer that is due at `now`: retransmissions, give-ups,
    /// delayed empty ACKs and the expiry of dedup and block state.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        // Retransmissions.
        let due: Vec<(SocketAddr, u16)> = self
            .retx
            .iter()
            .filter(|(_, r)| r.next <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            let Some(r) = self.retx.get_mut(&key) else {
                continue;
            };
            if r.count < self.config.max_retransmit {
                r.count += 1;
                r.timeout = r.timeout.saturating_mul(2);
                r.next = now + r.timeout;
                let payload = r.bytes.clone();
                self.stats.retransmissions += 1;
                self.transmits.push_back(Transmit {
                    peer: key.0,
                    payload,
                });
            } else if let Some(r) = self.retx.remove(&key) {
                match r.owner {
                    Owner::Request(id) => {
                        self.terminal(Event::RequestTimedOut { id });
                        self.finish_request(now, id, false);
                    }
                    Owner::Response(id) => {
                        self.events
                            .push_back(Event::ResponseFailed { id, reset: false });
                    }
                    Owner::Notification(id) => {
                        if self.observations.remove(&id).is_some() {
                            self.events.push_back(Event::ObservationCancelled {
                                id,
                                peer: key.0,
                                reason: CancelReason::TimedOut,
                            });
                        }
                    }
                }
            }
        }
        // Requests waiting for a (separate or NON) response.
        let late: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, r)| matches!(r.phase, Phase::Waiting { deadline, .. } if deadline <= now))
            .map(|(k, _)| *k)
            .collect();
        for id in late {
            if let Some(Phase::Waiting { mid, .. }) = self.requests.get(&id).map(|r| r.phase) {
                let peer = self.requests.get(&id).map(|r| r.peer);
                if let Some(peer) = peer {
                    self.retx.remove(&(peer, mid));
                }
            }
            self.terminal(Event::RequestTimedOut { id });
            self.finish_request(now, id, false);
        }
        // Delayed empty ACKs and expired incoming exchanges.
        let ids: Vec<IncomingId> = self.incoming.keys().copied().collect();
        for id in ids {
            let Some(inc) = self.incoming.get_mut(&id) else {
                continue;
            };
            if inc.ack_deadline.is_some_and(|d| d <= now) && !inc.acked {
                inc.acked = true;
                inc.ack_deadline = None;
                let (peer, mid) = (inc.peer, inc.mid);
                self.reply(peer, mid, empty_message(MessageType::Acknowledgement, mid));
            }
            if self.incoming.get(&id).is_some_and(|i| i.expires <= now) {
                self.incoming.remove(&id);
            }
        }
        // Dedup expiry (entries are appended in expiry order per lifetime
        // class; pop while the front is due and re-check the rest lazily).
        while let Some(&(e, peer, mid)) = self.dedup_order.front() {
            if e > now {
                break;
            }
            self.dedup_order.pop_front();
            if self
                .dedup
                .get(&(peer, mid))
                .is_some_and(|d| d.expires <= now)
            {
                self.dedup.remove(&(peer, mid));
            }
        }
        self.block2_cache.retain(|_, c| c.expires > now);
        self.block1_rx.retain(|_, c| c.expires > now);
    }

    // ------------------------------------------------------------------
    // internals: ids

    fn alloc_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn alloc_mid(&mut self) -> u16 {
        self.next_mid = self.next_mid.wrapping_add(1);
        self.next_mid
    }

    fn fresh_token(&mut self, peer: SocketAddr) -> Vec<u8> {
        let len = usize::from(self.config.token_len.min(8));
        loop {
            let bytes = self.rng.next_u64().to_be_bytes();
            let t = bytes[..len].to_vec();
            if len == 0 || !self.tokens.contains_key(&(peer, t.clone())) {
                return t;
            }
        }
    }

    fn initial_timeout(&mut self) -> Duration {
        let base = self.config.scaled_ack_timeout();
        let base_us = u64::try_from(base.as_micros()).unwrap_or(u64::MAX);
        let spread = (base_us as f64 * (self.config.factor() - 1.0)) as u64;
        // At least 1 µs, so a zero (or fully scaled-away) ACK_TIMEOUT still
        // moves the retransmission timer forward.
        Duration::from_micros(base_us.saturating_add(self.rng.up_to(spread)).max(1))
    }

    fn encode(&self, p: &Packet) -> Result<Vec<u8>, RespondError> {
        let bytes = p
            .to_bytes_unlimited()
            .map_err(|e| RespondError::Encode(format!("{e}")))?;
        if bytes.len() > self.config.max_message_size {
            return Err(RespondError::TooLarge {
                size: bytes.len(),
                limit: self.config.max_message_size,
            });
        }
        Ok(bytes)
    }

    fn remember(&mut self, peer: SocketAddr, mid: u16, expires: Instant) {
        while self.dedup.len() >= self.config.max_dedup_entries.max(1) {
            match self.dedup_order.pop_front() {
                Some((_, p, m)) => {
                    self.dedup.remove(&(p, m));
                }
                None => {
                    self.dedup.clear();
                }
            }
        }
        self.dedup.insert(
            (peer, mid),
            Dedup {
                expires,
                reply: None,
            },
        );
        self.dedup_order.push_back((expires, peer, mid));
    }

    /// Sends `bytes` and stores it as the reply to duplicates of `(peer, mid)`.
    fn reply(&mut self, peer: SocketAddr, mid: u16, bytes: Vec<u8>) {
        if let Some(d) = self.dedup.get_mut(&(peer, mid)) {
            d.reply = Some(bytes.clone());
        }
        self.transmits.push_back(Transmit {
            peer,
            payload: bytes,
        });
    }

    // ------------------------------------------------------------------
    // internals: client role

    fn start_or_queue(&mut self, now: Instant, id: RequestId) {
        let Some(peer) = self.requests.get(&id).map(|r| r.peer) else {
            return;
        };
        let nstart = self.config.nstart.max(1);
        let entry = self.slots.entry(peer).or_default();
        if entry.0 < nstart {
            entry.0 += 1;
            if let Some(r) = self.requests.get_mut(&id) {
                r.holds_slot = true;
            }
            self.transmit_request(now, id);
        } else {
            entry.1.push_back(id);
            if let Some(r) = self.requests.get_mut(&id) {
                r.phase = Phase::Queued;
            }
        }
    }

    fn release_slot(&mut self, now: Instant, id: RequestId) {
        let Some(r) = self.requests.get_mut(&id) else {
            return;
        };
        if !r.holds_slot {
            return;
        }
        r.holds_slot = false;
        let peer = r.peer;
        if let Some(entry) = self.slots.get_mut(&peer) {
            entry.0 = entry.0.saturating_sub(1);
        }
        // Start the next queued request that still exists. (`finish_request`
        // takes ended requests out of the queue; skipping here as well keeps
        // one stale id from stalling the queue for good, which left a NON
        // Block1 upload queued with no slot in use: fuzz regression
        // `coap_endpoint_ops/regression-queue-stalled`.)
        while let Some(next) = self.slots.get_mut(&peer).and_then(|e| e.1.pop_front()) {
            if self.requests.contains_key(&next) {
                self.start_or_queue(now, next);
                break;
            }
        }
        if self
            .slots
            .get(&peer)
            .is_some_and(|e| e.0 == 0 && e.1.is_empty())
        {
            self.slots.remove(&peer);
        }
    }

    /// Builds and sends the current message of request `id` (first message,
    /// next Block1 block, or next Block2 follow-up).
    fn transmit_request(&mut self, now: Instant, id: RequestId) {
        let mid = self.alloc_mid();
        let timeout = self.initial_timeout();
        let wait = self.config.scaled_max_transmit_wait();
        // Safety net: a CON exchange never outlives EXCHANGE_LIFETIME even if
        // its retransmission state were lost (the back-off gives up earlier).
        let life = self.config.scaled_exchange_lifetime();
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        let mut p = req.template.clone();
        p.header.message_id = mid;
        if let Some((num, szx)) = req.block1 {
            let size = block::szx_to_size(szx);
            let start = (num as usize).saturating_mul(size).min(req.body.len());
            let end = start.saturating_add(size).min(req.body.len());
            let more = end < req.body.len();
            BlockValue { num, more, szx }.set_on(&mut p, CoapOption::Block1);
            if num == 0 {
                block::set_size(&mut p, CoapOption::Size1, req.body.len());
            }
            p.payload = req.body[start..end].to_vec();
        } else if req.block1_szx.is_none() {
            p.payload = req.body.clone();
        }
        // else: a Block2 follow-up after a block-wise body: the server holds
        // the request, so no payload (RFC 7959 §3.3).
        if req.block2.started {
            BlockValue {
                num: req.block2.next_num,
                more: false,
                szx: req.block2.szx,
            }
            .set_on(&mut p, CoapOption::Block2);
            // Follow-up blocks of an observe response are plain GETs.
            if req.block2.next_num > 0 && req.observe {
                message::remove_option(&mut p, CoapOption::Observe);
            }
        }
        let max = self.config.max_message_size;
        let bytes = match p.to_bytes_unlimited() {
            Ok(b) if b.len() <= max => b,
            Ok(b) => {
                // `send_request_with` checked the largest message this
                // request can become, so this is a bug; fail the request
                // rather than send a datagram over the limit.
                debug_assert!(b.len() <= max, "request message of {} bytes", b.len());
                let error = format!("{} bytes exceed max_message_size {max}", b.len());
                self.terminal(Event::TransferFailed {
                    id,
                    error: TransferError::Encode(error),
                });
                self.finish_request(now, id, false);
                return;
            }
            Err(e) => {
                self.terminal(Event::TransferFailed {
                    id,
                    error: TransferError::Encode(format!("{e}")),
                });
                self.finish_request(now, id, false);
                return;
            }
        };
        let peer = req.peer;
        if req.confirmable {
            req.phase = Phase::Waiting {
                mid,
                acked: false,
                deadline: now + life,
            };
            self.retx.insert(
                (peer, mid),
                Retx {
                    bytes: bytes.clone(),
                    next: now + timeout,
                    timeout,
                    count: 0,
                    owner: Owner::Request(id),
                },
            );
        } else {
            req.phase = Phase::Waiting {
                mid,
                acked: true,
                deadline: now + wait,
            };
        }
        self.transmits.push_back(Transmit {
            peer,
            payload: bytes,
        });
    }

    /// Ends a request: forgets its token and frees its NSTART slot.
    fn finish_request(&mut self, now: Instant, id: RequestId, _ok: bool) {
        self.release_slot(now, id);
        if let Some(peer) = self.requests.get(&id).map(|r| r.peer)
            && let Some(entry) = self.slots.get_mut(&peer)
        {
            entry.1.retain(|q| *q != id);
            if entry.0 == 0 && entry.1.is_empty() {
                self.slots.remove(&peer);
            }
        }
        if let Some(req) = self.requests.remove(&id)
            && self.tokens.get(&(req.peer, req.token.clone())) == Some(&id)
        {
            self.tokens.remove(&(req.peer, req.token));
        }
    }

    fn on_ack(&mut self, now: Instant, peer: SocketAddr, packet: Packet) {
        let mid = packet.header.message_id;
        let Some(r) = self.retx.remove(&(peer, mid)) else {
            self.stats.unknown_acks += 1;
            return;
        };
        match r.owner {
            Owner::Request(id) => {
                if packet.header.code == MessageClass::Empty {
                    let lifetime = self.config.scaled_exchange_lifetime();
                    if let Some(req) = self.requests.get_mut(&id)
                        && let Phase::Waiting { mid: m, .. } = req.phase
                    {
                        req.phase = Phase::Waiting {
                            mid: m,
                            acked: true,
                            deadline: now + lifetime,
                        };
                    }
                    self.release_slot(now, id);
                } else if packet.get_token()
                    == self
                        .requests
                        .get(&id)
                        .map(|q| q.token.as_slice())
                        .unwrap_or(&[])
                {
                    self.handle_response_for(now, id, peer, packet);
                } else {
                    // Piggybacked response with a wrong token: treat as an
                    // empty ACK plus an unmatched response.
                    self.stats.unmatched_responses += 1;
                }
            }
            Owner::Response(_) => {}
            Owner::Notification(oid) => {
                if let Some(o) = self.observations.get_mut(&oid)
                    && o.pending_con == Some(mid)
                {
                    o.pending_con = None;
                }
            }
        }
    }

    fn on_reset(&mut self, now: Instant, peer: SocketAddr, mid: u16) {
        if let Some(r) = self.retx.remove(&(peer, mid)) {
            match r.owner {
                Owner::Request(id) => {
                    self.terminal(Event::Reset { id });
                    self.finish_request(now, id, false);
                }
                Owner::Response(id) => {
                    self.events
                        .push_back(Event::ResponseFailed { id, reset: true });
                }
                Owner::Notification(id) => {
                    if self.observations.remove(&id).is_some() {
                        self.events.push_back(Event::ObservationCancelled {
                            id,
                            peer,
                            reason: CancelReason::Reset,
                        });
                    }
                }
            }
            return;
        }
        // RST to a NON notification cancels the observation (RFC 7641 §3.6).
        let hit = self
            .observations
            .iter()
            .find(|(_, o)| o.peer == peer && o.last_non == Some(mid))
            .map(|(k, _)| *k);
        if let Some(id) = hit {
            self.observations.remove(&id);
            self.events.push_back(Event::ObservationCancelled {
                id,
                peer,
                reason: CancelReason::Reset,
            });
            return;
        }
        // RST to a NON request.
        let hit = self
            .requests
            .iter()
            .find(|(_, r)| {
                r.peer == peer && matches!(r.phase, Phase::Waiting { mid: m, .. } if m == mid)
            })
            .map(|(k, _)| *k);
        if let Some(id) = hit {
            self.terminal(Event::Reset { id });
            self.finish_request(now, id, false);
            return;
        }
        self.stats.unknown_resets += 1;
    }

    /// A CON or NON response (separate response or notification).
    fn on_response(&mut self, now: Instant, peer: SocketAddr, packet: Packet, con: bool) {
        let mid = packet.header.message_id;
        let Some(&id) = self.tokens.get(&(peer, packet.get_token().to_vec())) else {
            self.stats.unmatched_responses += 1;
            // Reject: RST for CON (RFC 7252 §4.2), and for NON too, which
            // also tells an observer we are no longer interested (RFC 7641 §3.6).
            self.reply(peer, mid, empty_message(MessageType::Reset, mid));
            return;
        };
        if con {
            self.reply(peer, mid, empty_message(MessageType::Acknowledgement, mid));
        }
        if self.requests.get(&id).is_some_and(|r| r.deregistering)
            && has_option(&packet, CoapOption::Observe)
        {
            // A notification that crossed our GET with Observe=1: neither
            // its answer nor its acknowledgement.
            self.stats.stale_notifications += 1;
            return;
        }
        // A separate response also acknowledges our CON if its ACK was lost.
        if let Some(Phase::Waiting { mid: m, .. }) = self.requests.get(&id).map(|r| r.phase)
            && self
                .retx
                .get(&(peer, m))
                .is_some_and(|r| r.owner == Owner::Request(id))
        {
            self.retx.remove(&(peer, m));
        }
        self.handle_response_for(now, id, peer, packet);
    }

    /// Emits a request's terminal failure event, unless the request is an
    /// internal notification fetch (the app never saw its id).
    fn terminal(&mut self, event: Event) {
        let id = match &event {
            Event::RequestTimedOut { id }
            | Event::Reset { id }
            | Event::TransferFailed { id, .. } => Some(*id),
            _ => None,
        };
        if id.is_some_and(|id| self.requests.get(&id).is_some_and(|r| r.parent.is_some())) {
            self.stats.failed_notification_fetches += 1;
        } else {
            self.events.push_back(event);
        }
    }

    fn fail(&mut self, now: Instant, id: RequestId, error: TransferError) {
        self.terminal(Event::TransferFailed { id, error });
        self.finish_request(now, id, false);
    }

    fn handle_response_for(
        &mut self,
        now: Instant,
        id: RequestId,
        peer: SocketAddr,
        mut packet: Packet,
    ) {
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        let code = message::response_code(&packet).unwrap_or(ResponseType::UnKnown);
        let observe_value = uint_option(&packet, CoapOption::Observe).and_then(Result::ok);

        // Notifications of an established observation.
        if req.phase == Phase::Observing {
            match observe_value {
                Some(v) if is_success(code) => {
                    let window =
                        crate::time::scale_down(observe::FRESHNESS_WINDOW, self.config.time_scale);
                    if let Some((v1, t1)) = req.last_notification
                        && !is_fresh(v1, t1, v, now, window)
                    {
                        self.stats.stale_notifications += 1;
                        return;
                    }
                    req.last_notification = Some((v, now));
                    if let Some(Ok(b)) = BlockValue::from_packet(&packet, CoapOption::Block2)
                        && b.more
                        && b.num == 0
                    {
                        // RFC 7959 §3.4: fetch the rest with plain GETs, then
                        // deliver the whole notification.
                        let mut template = req.template.clone();
                        let confirmable = req.confirmable;
                        message::remove_option(&mut template, CoapOption::Observe);
                        message::remove_option(&mut template, CoapOption::Block2);
                        let etag = packet.get_first_option(CoapOption::ETag).cloned();
                        let token = self.fresh_token(peer);
                        template.set_token(token.clone());
                        let child = RequestId(self.alloc_id());
                        self.requests.insert(
                            child,
                            OutRequest {
                                peer,
                                token: token.clone(),
                                template,
                                body: Vec::new(),
                                confirmable,
                                phase: Phase::Queued,
                                holds_slot: false,
                                block1: None,
                                block1_szx: None,
                                block2: ClientBlock2 {
                                    buf: packet.payload.clone(),
                                    etag,
                                    next_num: 1,
                                    szx: b.szx,
                                    started: true,
                                },
                                mode: Block2Mode::Reassemble,
                                observe: false,
                                last_notification: None,
                                parent: Some((id, packet)),
                                deregistering: false,
                            },
                        );
                        self.tokens.insert((peer, token), child);
                        self.start_or_queue(now, child);
                        return;
                    }
                    self.events.push_back(Event::Notification {
                        id,
                        peer,
                        response: packet,
                    });
                }
                _ => {
                    // A non-2.xx or an Observe-less response ends the observation.
                    self.events.push_back(Event::Response {
                        id,
                        peer,
                        response: packet,
                    });
                    self.finish_request(now, id, true);
                }
            }
            return;
        }

        self.release_slot(now, id);
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };

        // Block1 upload in progress: 2.31 Continue asks for the next block.
        if let Some((num, szx)) = req.block1 {
            if code == ResponseType::Continue {
                let server = match block::BlockValue::from_packet(&packet, CoapOption::Block1) {
                    Some(Ok(v)) => v,
                    Some(Err(e)) => {
                        let error = TransferError::BadBlockOption(format!("{e}"));
                        self.fail(now, id, error);
                        return;
                    }
                    None => BlockValue {
                        num,
                        more: true,
                        szx,
                    },
                };
                let new_szx = server.szx.min(szx);
                // RFC 7959 §2.5: the server echoes our block number; a
                // smaller SZX in the echo applies to the following blocks.
                let next_offset = (num as usize + 1).saturating_mul(block::szx_to_size(szx));
                if next_offset >= req.body.len() || server.num != num {
                    let error = TransferError::UnexpectedBlock {
                        expected: num,
                        got: server.num,
                    };
                    self.fail(now, id, error);
                    return;
                }
                req.block1 = Some(((next_offset / block::szx_to_size(new_szx)) as u32, new_szx));
                self.start_or_queue(now, id);
                return;
            }
            // Any other code ends the upload (success or error).
            req.block1 = None;
        }

        // Block2 download.
        let block2 = match block::BlockValue::from_packet(&packet, CoapOption::Block2) {
            Some(Ok(v)) => Some(v),
            Some(Err(e)) => {
                let error = TransferError::BadBlockOption(format!("{e}"));
                self.fail(now, id, error);
                return;
            }
            None => None,
        };
        let method_fetches = matches!(
            req.template.header.code,
            MessageClass::Request(RequestType::Get) | MessageClass::Request(RequestType::Fetch)
        );
        if let (Some(b), true, true) = (block2, is_success(code), method_fetches) {
            let etag = packet.get_first_option(CoapOption::ETag).cloned();
            if !req.block2.started || (req.block2.buf.is_empty() && req.block2.next_num == b.num) {
                if !req.block2.started {
                    req.block2.started = true;
                    req.block2.next_num = b.num;
                }
                req.block2.etag = etag.clone();
            }
            if req.block2.etag != etag {
                self.fail(now, id, TransferError::EtagMismatch);
                return;
            }
            if b.num != req.block2.next_num {
                let error = TransferError::UnexpectedBlock {
                    expected: req.block2.next_num,
                    got: b.num,
                };
                self.fail(now, id, error);
                return;
            }
            // The server may pick a smaller size than we asked for.
            req.block2.szx = b.szx;
            let observe_established = req.observe && observe_value.is_some() && b.num == 0;
            if observe_established {
                req.last_notification = observe_value.map(|v| (v, now));
            }
            match req.mode {
                Block2Mode::Reassemble => {
                    let size = req.block2.buf.len() + packet.payload.len();
                    if size > self.config.max_body_size {
                        let limit = self.config.max_body_size;
                        self.fail(now, id, TransferError::TooLarge { size, limit });
                        return;
                    }
                    req.block2.buf.extend_from_slice(&packet.payload);
                    if b.more {
                        req.block2.next_num = b.num + 1;
                        self.start_or_queue(now, id);
                        return;
                    }
                    packet.payload = core::mem::take(&mut req.block2.buf);
                }
                Block2Mode::Stream => {
                    if b.more {
                        req.block2.next_num = b.num + 1;
                        self.events.push_back(Event::ResponseBlock {
                            id,
                            peer,
                            block: b,
                            response: packet,
                        });
                        self.start_or_queue(now, id);
                        return;
                    }
                }
            }
        }

        // Final response.
        if let Some((parent, mut first)) = req.parent.take() {
            // The rest of a block-wise notification arrived.
            if is_success(code)
                && self
                    .requests
                    .get(&parent)
                    .is_some_and(|p| p.phase == Phase::Observing)
            {
                first.payload = packet.payload;
                message::remove_option(&mut first, CoapOption::Block2);
                self.events.push_back(Event::Notification {
                    id: parent,
                    peer,
                    response: first,
                });
            } else {
                self.stats.failed_notification_fetches += 1;
            }
            self.finish_request(now, id, true);
            return;
        }
        let establish = req.observe && observe_value.is_some() && is_success(code);
        self.events.push_back(Event::Response {
            id,
            peer,
            response: packet,
        });
        if establish {
            if req.last_notification.is_none() {
                req.last_notification = observe_value.map(|v| (v, now));
            }
            req.phase = Phase::Observing;
            req.block2 = ClientBlock2 {
                buf: Vec::new(),
                etag: None,
                next_num: 0,
                szx: req.block2.szx,
                started: false,
            };
        } else {
            self.finish_request(now, id, true);
        }
    }

    // ------------------------------------------------------------------
    // internals: server role

    fn on_request(&mut self, now: Instant, peer: SocketAddr, mut packet: Packet, con: bool) {
        let mid = packet.header.message_id;
        let token = packet.get_token().to_vec();
        let key = resource_key(&packet);
        let map_key = (peer, key.clone());

        // RFC 7252 §5.4.1: an unrecognized critical (odd) option in a
        // request is answered with 4.02 Bad Option.
        let unknown_critical = packet
            .options()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, _)| *n)
            .find(|n| n % 2 == 1 && matches!(CoapOption::from(*n), CoapOption::Unknown(_)));
        if let Some(n) = unknown_critical {
            let mut diag = Packet::new();
            diag.payload = format!("unrecognized critical option {n}").into_bytes();
            self.auto_respond(
                now,
                peer,
                mid,
                &token,
                con,
                ResponseType::BadOption,
                None,
                Some(diag),
            );
            return;
        }

        // Block options of the request.
        let block1 = block::BlockValue::from_packet(&packet, CoapOption::Block1);
        let block2 = block::BlockValue::from_packet(&packet, CoapOption::Block2);
        if matches!(block1, Some(Err(_))) {
            self.auto_respond(
                now,
                peer,
                mid,
                &token,
                con,
                ResponseType::BadOption,
                None,
                None,
            );
            return;
        }
        if let Some(Err(_)) = block2 {
            self.auto_respond(
                now,
                peer,
                mid,
                &token,
                con,
                ResponseType::BadOption,
                None,
                None,
            );
            return;
        }
        let block2 = block2.and_then(Result::ok);
        let mut block1_echo = None;
        if let Some(Ok(b1)) = block1 {
            let limit = self.config.max_body_size;
            let lifetime = self.config.scaled_exchange_lifetime();
            if b1.num == 0 {
                self.block1_rx.remove(&map_key);
            }
            let offset_ok = self
                .block1_rx
                .get(&map_key)
                .map_or(b1.num == 0, |s| b1.offset() == s.buf.len());
            if !offset_ok {
                // RFC 7959 §2.9.2: 4.08 Request Entity Incomplete.
                self.block1_rx.remove(&map_key);
                self.auto_respond(
                    now,
                    peer,
                    mid,
                    &token,
                    con,
                    ResponseType::RequestEntityIncomplete,
                    None,
                    None,
                );
                return;
            }
            let total =
                self.block1_rx.get(&map_key).map_or(0, |s| s.buf.len()) + packet.payload.len();
            let announced = uint_option(&packet, CoapOption::Size1)
                .and_then(Result::ok)
                .unwrap_or(0) as usize;
            if total > limit || announced > limit {
                self.block1_rx.remove(&map_key);
                let mut size1 = Packet::new();
                block::set_size(&mut size1, CoapOption::Size1, limit);
                self.auto_respond(
                    now,
                    peer,
                    mid,
                    &token,
                    con,
                    ResponseType::RequestEntityTooLarge,
                    None,
                    Some(size1),
                );
                return;
            }
            if b1.more && packet.payload.len() != b1.size() {
                self.block1_rx.remove(&map_key);
                self.auto_respond(
                    now,
                    peer,
                    mid,
                    &token,
                    con,
                    ResponseType::BadRequest,
                    None,
                    None,
                );
                return;
            }
            // Answer with our preferred (possibly smaller) block size.
            let our_szx = b1.szx.min(block::size_to_szx(self.config.block_size()));
            if b1.more {
                if self.block1_rx.len() >= self.config.max_block_states.max(1)
                    && !self.block1_rx.contains_key(&map_key)
                    && let Some(k) = self.block1_rx.keys().next().cloned()
                {
                    self.block1_rx.remove(&k);
                }
                let st = self.block1_rx.entry(map_key.clone()).or_insert(Block1Rx {
                    buf: Vec::new(),
                    next_num: 0,
                    szx: b1.szx,
                    expires: now + lifetime,
                });
                st.buf.extend_from_slice(&packet.payload);
                st.szx = our_szx;
                st.next_num = (st.buf.len() / block::szx_to_size(our_szx)) as u32;
                st.expires = now + lifetime;
                let echo = BlockValue {
                    num: b1.num,
                    more: true,
                    szx: our_szx,
                };
                self.auto_respond(
                    now,
                    peer,
                    mid,
                    &token,
                    con,
                    ResponseType::Continue,
                    Some(echo),
                    None,
                );
                return;
            }
            // Last block: deliver the whole body.
            if let Some(mut st) = self.block1_rx.remove(&map_key) {
                st.buf.extend_from_slice(&packet.payload);
                packet.payload = st.buf;
            }
            block1_echo = Some(BlockValue {
                num: b1.num,
                more: false,
                szx: b1.szx,
            });
        }

        // Block2 follow-up served from the cache.
        if let Some(b2) = block2.filter(|b| b.num > 0)
            && let Some(cache) = self.block2_cache.get(&map_key)
        {
            let matches_etag = packet
                .get_option(CoapOption::ETag)
                .is_none_or(|l| l.is_empty() || l.iter().any(|e| *e == cache.etag));
            if matches_etag {
                let szx = b2.szx.min(cache.szx);
                let size = block::szx_to_size(szx);
                let start = (b2.num as usize).saturating_mul(size);
                let mut resp = cache.template.clone();
                if start >= cache.body.len() {
                    resp = message::response(ResponseType::BadOption);
                } else {
                    let end = start.saturating_add(size).min(cache.body.len());
                    resp.payload = cache.body[start..end].to_vec();
                    BlockValue {
                        num: b2.num,
                        more: end < cache.body.len(),
                        szx,
                    }
                    .set_on(&mut resp, CoapOption::Block2);
                }
                self.stats.blocks_served_from_cache += 1;
                self.send_auto(peer, mid, &token, con, resp);
                return;
            }
        }

        let observe_req = uint_option(&packet, CoapOption::Observe).and_then(Result::ok);
        if observe_req == Some(1) {
            let hit = self
                .observations
                .iter()
                .find(|(_, o)| o.peer == peer && o.token == token)
                .map(|(k, _)| *k);
            if let Some(oid) = hit {
                self.cancel_observation(oid);
                self.events.push_back(Event::ObservationCancelled {
                    id: oid,
                    peer,
                    reason: CancelReason::Deregistered,
                });
            }
        }

        let id = IncomingId(self.alloc_id());
        let delay = crate::time::scale_down(self.config.empty_ack_delay, self.config.time_scale);
        self.incoming.insert(
            id,
            Incoming {
                peer,
                mid,
                token,
                confirmable: con,
                acked: false,
                ack_deadline: con.then(|| now + delay),
                expires: now + self.config.scaled_exchange_lifetime(),
                key,
                block2_req: block2,
                block1_echo,
                observe_req,
            },
        );
        self.events.push_back(Event::Request {
            id,
            peer,
            request: packet,
        });
    }

    /// Answers a request on the layer's own behalf (2.31, 4.08, 4.13, 4.02).
    #[allow(clippy::too_many_arguments)]
    fn auto_respond(
        &mut self,
        _now: Instant,
        peer: SocketAddr,
        mid: u16,
        token: &[u8],
        con: bool,
        code: ResponseType,
        block1: Option<BlockValue>,
        extra: Option<Packet>,
    ) {
        let mut resp = extra.unwrap_or_default();
        resp.header.code = MessageClass::Response(code);
        if let Some(b) = block1 {
            b.set_on(&mut resp, CoapOption::Block1);
        }
        self.send_auto(peer, mid, token, con, resp);
    }

    fn send_auto(&mut self, peer: SocketAddr, mid: u16, token: &[u8], con: bool, mut resp: Packet) {
        resp.set_token(token.to_vec());
        if con {
            resp.header.set_type(MessageType::Acknowledgement);
            resp.header.message_id = mid;
        } else {
            resp.header.set_type(MessageType::NonConfirmable);
            resp.header.message_id = self.alloc_mid();
        }
        match resp.to_bytes_unlimited() {
            Ok(bytes) => {
                if con {
                    self.reply(peer, mid, bytes);
                } else {
                    self.transmits.push_back(Transmit {
                        peer,
                        payload: bytes,
                    });
                }
            }
            Err(_) => {
                // Cannot happen for the small packets built here; stay silent.
            }
        }
    }

    /// Slices a response body for Block2 when needed and fills the cache.
    fn apply_block2(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        key: &[u8],
        resp: &mut Packet,
        requested: Option<BlockValue>,
    ) -> Result<(), RespondError> {
        let mut szx = block::size_to_szx(self.config.block_size());
        if let Some(r) = requested {
            szx = szx.min(r.szx);
        }
        let size = block::szx_to_size(szx);
        let num = requested.map_or(0, |r| r.num);
        let code = message::response_code(resp).unwrap_or(ResponseType::UnKnown);
        if !is_success(code) || (resp.payload.len() <= size && num == 0 && requested.is_none()) {
            return Ok(());
        }
        if resp.payload.len() <= size && num == 0 {
            // Client asked with Block2 but everything fits: answer block 0, no more.
            BlockValue {
                num: 0,
                more: false,
                szx,
            }
            .set_on(resp, CoapOption::Block2);
            return Ok(());
        }
        let body = core::mem::take(&mut resp.payload);
        if !has_option(resp, CoapOption::ETag) {
            resp.add_option(CoapOption::ETag, fnv_etag(&body));
        }
        let start = (num as usize).saturating_mul(size);
        if start >= body.len() {
            *resp = message::response(ResponseType::BadOption);
            return Ok(());
        }
        let end = start.saturating_add(size).min(body.len());
        let etag = resp
            .get_first_option(CoapOption::ETag)
            .cloned()
            .unwrap_or_default();
        let mut template = resp.clone();
        message::remove_option(&mut template, CoapOption::Observe);
        block::set_size(&mut template, CoapOption::Size2, body.len());
        if num == 0 {
            block::set_size(resp, CoapOption::Size2, body.len());
        }
        BlockValue {
            num,
            more: end < body.len(),
            szx,
        }
        .set_on(resp, CoapOption::Block2);
        resp.payload = body[start..end].to_vec();
        if end < body.len() {
            // The later blocks are served from the cache (`send_auto`): the
            // largest of them (longest Block2 value, an 8-byte token) must
            // fit too.
            let mut probe = template.clone();
            probe.set_token(alloc::vec![0; 8]);
            BlockValue {
                num: block::MAX_NUM,
                more: true,
                szx,
            }
            .set_on(&mut probe, CoapOption::Block2);
            probe.payload = alloc::vec![0; size];
            self.encode(&probe)?;
            let ck = (peer, key.to_vec());
            if self.block2_cache.len() >= self.config.max_block_states.max(1)
                && !self.block2_cache.contains_key(&ck)
            {
                // Evict the entry closest to expiry.
                if let Some(k) = self
                    .block2_cache
                    .iter()
                    .min_by_key(|(_, c)| c.expires)
                    .map(|(k, _)| k.clone())
                {
                    self.block2_cache.remove(&k);
                }
            }
            self.block2_cache.insert(
                ck,
                Block2Cache {
                    etag,
                    template,
                    body,
                    szx,
                    expires: now + self.config.scaled_exchange_lifetime(),
                },
            );
        }
        Ok(())
    }

    fn respond_inner(
        &mut self,
        now: Instant,
        id: IncomingId,
        inc: Incoming,
        mut response: Packet,
        observe_seq: Option<u32>,
    ) -> Result<(), RespondError> {
        self.last_now = self.last_now.max(now);
        let key = inc.key.clone();
        if let Err(e) = self.apply_block2(now, inc.peer, &key, &mut response, inc.block2_req) {
            self.incoming.insert(id, inc);
            return Err(e);
        }
        response.set_token(inc.token.clone());
        if let Some(seq) = observe_seq {
            message::set_uint_option(&mut response, CoapOption::Observe, seq);
        }
        if let Some(b1) = inc.block1_echo {
            b1.set_on(&mut response, CoapOption::Block1);
        }
        let piggyback = inc.confirmable && !inc.acked;
        let mid = if piggyback { inc.mid } else { self.alloc_mid() };
        response.header.message_id = mid;
        response.header.set_type(if piggyback {
            MessageType::Acknowledgement
        } else if inc.confirmable {
            MessageType::Confirmable
        } else {
            MessageType::NonConfirmable
        });
        let bytes = match self.encode(&response) {
            Ok(b) => b,
            Err(e) => {
                self.incoming.insert(id, inc);
                return Err(e);
            }
        };
        if piggyback {
            self.reply(inc.peer, inc.mid, bytes);
        } else if inc.confirmable {
            let timeout = self.initial_timeout();
            self.retx.insert(
                (inc.peer, mid),
                Retx {
                    bytes: bytes.clone(),
                    next: now + timeout,
                    timeout,
                    count: 0,
                    owner: Owner::Response(id),
                },
            );
            self.transmits.push_back(Transmit {
                peer: inc.peer,
                payload: bytes,
            });
        } else {
            self.transmits.push_back(Transmit {
                peer: inc.peer,
                payload: bytes,
            });
        }
        Ok(())
    }
}
