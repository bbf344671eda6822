//! The server's logic: what a request gets as an answer, what is a deviation,
//! which operation a response completes, when a registration expires.
//!
//! [`ServerCore`] is driven by [`super::driver`] with the same sans-IO
//! vocabulary as rig-proto (`handle_*` in, `poll_*` out) and owns the
//! rig-proto CoAP [`Endpoint`]. It writes the registry into the shared
//! [`State`] and broadcasts [`ServerEvent`]s.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rig_proto::coap::{
    self, CoapOption, Endpoint, Event, IncomingId, Method, Packet, RequestId, ResponseCode, message,
};
use rig_proto::object::Registry;
use rig_proto::registry::{self as proto_registry, RegistryEvent};
use rig_proto::time::Instant as ProtoInstant;
use rig_proto::value::Records;
use tokio::sync::{broadcast, oneshot};
use tokio::time::Instant;

use rig_proto::content::ContentFormat;

use super::{
    Code, ObservationId, OpRequest, Operation, Registration, Response, ServerConfig, ServerEvent,
    State, UpdateParams,
};
use crate::OpError;
use crate::deviation::Deviation;

mod queue;
pub(crate) use queue::queue_awake_window;

/// An operation waiting for its response.
struct Pending {
    endpoint: String,
    operation: Operation,
    reply: oneshot::Sender<Result<Response, OpError>>,
}

/// The server's state machine; see the module doc.
pub(crate) struct ServerCore {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<ServerEvent>,
    endpoint: Endpoint,
    /// tokio time of proto time zero.
    epoch: Instant,
    pending: HashMap<RequestId, Pending>,
    /// Established observations: request id → (endpoint, path).
    observations: HashMap<RequestId, (String, super::ObjectPath)>,
    /// rig-proto's registry: strict parsing, locations, expiry.
    registry: proto_registry::Registry,
    /// Object definitions, to decode typeless formats.
    defs: Registry,
    /// DTLS only: the endpoint each peer's credentials map to (`None` =
    /// authenticated but not in the credential store).
    authenticated: HashMap<SocketAddr, Option<String>>,
    /// Queue mode (`core/queue.rs`): the time scale of the awake window.
    time_scale: f64,
    /// Queue mode: requests held per endpoint until its next uplink.
    held: HashMap<String, Vec<OpRequest>>,
    /// Queue mode: requests sent to a client that should sleep (probes),
    /// with the time of the client's last uplink before them.
    sent_asleep: HashMap<RequestId, Instant>,
}

impl ServerCore {
    pub(crate) fn new(
        config: ServerConfig,
        state: Arc<Mutex<State>>,
        events: broadcast::Sender<ServerEvent>,
    ) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5eed);
        let mut registry = proto_registry::Registry::new(scale_u32(config.time_scale));
        registry.set_min_location_len(config.location_len);
        ServerCore {
            state,
            events,
            endpoint: Endpoint::new(coap::Config::default(), seed),
            epoch: Instant::now(),
            pending: HashMap::new(),
            registry,
            observations: HashMap::new(),
            defs: Registry::core(),
            authenticated: HashMap::new(),
            time_scale: config.time_scale,
            held: HashMap::new(),
            sent_asleep: HashMap::new(),
        }
    }

    /// Sets the tokio instant that proto time zero stands for (the driver's epoch).
    pub(crate) fn set_epoch(&mut self, epoch: Instant) {
        self.epoch = epoch;
    }

    fn tokio_time(&self, now: ProtoInstant) -> Instant {
        self.epoch + Duration::from_micros(now.as_micros())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, event: ServerEvent) {
        // No subscriber is fine: events are also reflected in the State.
        let _ = self.events.send(event);
    }

    fn deviation(&self, endpoint: Option<&str>, peer: SocketAddr, what: String, excerpt: String) {
        let d = Deviation {
            endpoint: endpoint.map(str::to_string),
            peer,
            what,
            message_excerpt: excerpt,
        };
        self.lock()
            .deviations
            .entry(endpoint.unwrap_or("").to_string())
            .or_default()
            .push(d.clone());
        self.emit(ServerEvent::Deviation(d));
    }

    // ---- inputs ---------------------------------------------------------

    /// A DTLS session event: remember who a peer authenticated as, and
    /// broadcast handshake outcomes with rig-dtls's reason text.
    pub(crate) fn handle_dtls_event(&mut self, event: rig_dtls::ServerEvent) {
        use rig_dtls::ServerEvent as E;
        let text = event.to_string();
        match event {
            E::Established {
                peer,
                endpoint,
                cipher_suite,
                ..
            } => {
                self.authenticated.insert(peer, endpoint.clone());
                self.emit(ServerEvent::SecureSession {
                    peer,
                    endpoint,
                    cipher_suite: cipher_suite.map(|s| s.name.to_string()),
                });
            }
            E::Failed(f) => self.emit(ServerEvent::HandshakeFailed {
                peer: f.peer,
                reason: f.reason.kind().to_string(),
                message: text,
            }),
            E::Rejected { peer, reason } => self.emit(ServerEvent::HandshakeFailed {
                peer,
                reason: reason.kind().to_string(),
                message: text,
            }),
            E::Closed { peer } | E::Expired { peer } => {
                self.authenticated.remove(&peer);
            }
        }
    }

    pub(crate) fn handle_datagram(&mut self, now: ProtoInstant, peer: SocketAddr, bytes: &[u8]) {
        self.apply_forgets();
        let unmatched = self.endpoint.stats().unmatched_responses;
        self.endpoint.handle_datagram(now, peer, bytes);
        if self.endpoint.stats().unmatched_responses > unmatched
            && message::parse(bytes).is_ok_and(|p| message::has_option(&p, CoapOption::Observe))
        {
            // A notification for an observation we cancelled or forgot: the
            // endpoint answered it with RST (int-302, int-303 count these).
            let ep = self.endpoint_of_peer(peer).unwrap_or_default();
            let at = self.tokio_time(now);
            self.lock()
                .rejected_notifications
                .entry(ep)
                .or_default()
                .push(at);
        }
        self.process(now);
        self.queue_after_datagram(now, peer);
    }

    pub(crate) fn handle_timeout(&mut self, now: ProtoInstant) {
        self.apply_forgets();
        self.endpoint.handle_timeout(now);
        self.expire(now);
        self.process(now);
    }

    pub(crate) fn handle_op(&mut self, now: ProtoInstant, op: OpRequest) {
        self.apply_forgets();
        let Some(op) = self.queue_hold(now, op) else {
            return;
        };
        let asleep = self.asleep_since(now, &op.endpoint);
        let OpRequest {
            endpoint,
            operation,
            reply,
            ..
        } = op;
        let Some(peer) = self.lock().registrations.get(&endpoint).map(|r| r.peer) else {
            let _ = reply.send(Err(OpError::NotRegistered { endpoint }));
            return;
        };
        if let Operation::Forget { observation } = &operation {
            let id = RequestId(observation.0);
            let known = self.observations.remove(&id).is_some() && self.endpoint.cancel(id);
            let code = if known {
                Code::CHANGED
            } else {
                Code::NOT_FOUND
            };
            let _ = reply.send(Ok(Response {
                code,
                content_format: None,
                payload: Vec::new(),
                decoded: None,
                observation: Some(*observation),
            }));
            return;
        }
        if let Operation::CancelObserve { observation, .. } = &operation {
            let id = RequestId(observation.0);
            match self.endpoint.cancel_observe(now, id) {
                Ok(()) => {
                    self.observations.remove(&id);
                    self.pending.insert(
                        id,
                        Pending {
                            endpoint,
                            operation,
                            reply,
                        },
                    );
                }
                Err(e) => {
                    let _ = reply.send(Err(OpError::Request {
                        endpoint,
                        operation: operation.name(),
                        reason: e.to_string(),
                    }));
                }
            }
            self.process(now);
            return;
        }
        let packet = build_request(&operation);
        match self.endpoint.send_request(now, peer, packet) {
            Ok(id) => {
                if let Some(last) = asleep {
                    self.sent_asleep.insert(id, last);
                }
                self.pending.insert(
                    id,
                    Pending {
                        endpoint,
                        operation,
                        reply,
                    },
                );
            }
            Err(e) => {
                let _ = reply.send(Err(OpError::Request {
                    endpoint,
                    operation: operation.name(),
                    reason: e.to_string(),
                }));
            }
        }
        self.process(now);
    }

    /// Fails every pending operation; called once when the driver stops.
    pub(crate) fn shutdown(&mut self) {
        for (_, p) in self.pending.drain() {
            let _ = p.reply.send(Err(OpError::ShutDown));
        }
    }

    // ---- outputs --------------------------------------------------------

    pub(crate) fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.endpoint.poll_transmit().map(|t| (t.peer, t.payload))
    }

    pub(crate) fn poll_timeout(&self) -> Option<ProtoInstant> {
        let expiry = self.registry.next_expiry();
        match (self.endpoint.poll_timeout(), expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- the logic ------------------------------------------------------

    /// Drains the endpoint's events.
    fn process(&mut self, now: ProtoInstant) {
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                Event::Request { id, peer, request } => self.on_request(now, id, peer, request),
                Event::Response { id, response, .. } => self.on_response(id, response),
                Event::RequestTimedOut { id } => self.fail_pending(id, |p| OpError::Timeout {
                    endpoint: p.endpoint.clone(),
                    operation: p.operation.name(),
                    path: p.operation.path().to_string(),
                    timeout: coap::Config::default().max_transmit_wait(),
                }),
                Event::Reset { id } => self.fail_pending(id, |p| OpError::Reset {
                    endpoint: p.endpoint.clone(),
                    operation: p.operation.name(),
                    path: p.operation.path().to_string(),
                }),
                Event::TransferFailed { id, error } => {
                    self.fail_pending(id, |p| OpError::Request {
                        endpoint: p.endpoint.clone(),
                        operation: p.operation.name(),
                        reason: format!("block-wise transfer failed: {error}"),
                    })
                }
                Event::Malformed { peer, error } => {
                    let ep = self.endpoint_of_peer(peer);
                    self.deviation(
                        ep.as_deref(),
                        peer,
                        format!("malformed CoAP message: {error}"),
                        String::new(),
                    );
                }
                Event::ResponseFailed { id: _, reset } => {
                    // A separate response was not acknowledged; we answer
                    // piggy-backed, so this only happens for late answers.
                    let _ = reset;
                }
                Event::Notification { id, response, .. } => self.on_notification(now, id, response),
                Event::ResponseBlock { .. } | Event::ObservationCancelled { .. } => {}
            }
        }
    }

    fn endpoint_of_peer(&self, peer: SocketAddr) -> Option<String> {
        self.lock()
            .registrations
            .values()
            .find(|r| r.peer == peer)
            .map(|r| r.endpoint.clone())
    }

    fn fail_pending(&mut self, id: RequestId, err: impl FnOnce(&Pending) -> OpError) {
        if let Some(p) = self.pending.remove(&id) {
            let e = err(&p);
            let _ = p.reply.send(Err(e));
        }
    }

    fn on_notification(&mut self, now: ProtoInstant, id: RequestId, response: Packet) {
        let Some((endpoint, path)) = self.observations.get(&id).cloned() else {
            return;
        };
        let content_format = content_format_of(&response);
        let read = Operation::Read { path, accept: None };
        let decoded = decode_payload(&read, content_format, &response.payload, &self.defs);
        let response = Response {
            code: Code(u8::from(response.header.code)),
            content_format,
            payload: response.payload,
            decoded,
            observation: Some(ObservationId(id.0)),
        };
        let at = self.tokio_time(now);
        self.emit(ServerEvent::Notification {
            endpoint,
            observation: ObservationId(id.0),
            path,
            response,
            at,
        });
    }

    fn on_response(&mut self, id: RequestId, response: Packet) {
        if let Some((endpoint, _)) = self.observations.remove(&id) {
            // An established observation ended by the client.
            let reason = format!(
                "the client answered {} {}",
                message::code_string(u8::from(response.header.code)),
                if message::has_option(&response, CoapOption::Observe) {
                    ""
                } else {
                    "without Observe"
                }
            );
            self.emit(ServerEvent::ObservationEnded {
                endpoint,
                observation: ObservationId(id.0),
                reason,
            });
            return;
        }
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        self.check_queue_answer(id, &p);
        let code = Code(u8::from(response.header.code));
        let content_format = content_format_of(&response);
        let observation = match &p.operation {
            Operation::Observe { path, .. }
                if Code(u8::from(response.header.code)).is_success()
                    && message::has_option(&response, CoapOption::Observe) =>
            {
                self.observations.insert(id, (p.endpoint.clone(), *path));
                Some(ObservationId(id.0))
            }
            Operation::ObserveComposite { .. }
                if code.is_success() && message::has_option(&response, CoapOption::Observe) =>
            {
                self.observations
                    .insert(id, (p.endpoint.clone(), super::ObjectPath::Root));
                Some(ObservationId(id.0))
            }
            _ => None,
        };
        let peer = self.lock().registrations.get(&p.endpoint).map(|r| r.peer);
        if let Some(peer) = peer {
            self.check_response(&p, peer, code, content_format, &response);
        }
        let decoded = decode_payload(&p.operation, content_format, &response.payload, &self.defs);
        let _ = p.reply.send(Ok(Response {
            code,
            content_format,
            payload: response.payload,
            decoded,
            observation,
        }));
    }

    /// Strict checks on an operation's response.
    fn check_response(
        &self,
        p: &Pending,
        peer: SocketAddr,
        code: Code,
        cf: Option<ContentFormat>,
        response: &Packet,
    ) {
        let what = format!("{} {}", p.operation.name(), p.operation.path());
        let excerpt = format!(
            "{code} cf={}",
            cf.map(|c| c.as_u16().to_string())
                .unwrap_or_else(|| "-".into())
        );
        let expected_success = match &p.operation {
            Operation::Read { .. }
            | Operation::Discover { .. }
            | Operation::Observe { .. }
            | Operation::ReadComposite { .. }
            | Operation::ObserveComposite { .. } => Code::CONTENT,
            Operation::CancelObserve { .. } => Code::CONTENT,
            Operation::Create { .. } => Code::CREATED,
            Operation::Delete { .. } => Code::DELETED,
            _ => Code::CHANGED,
        };
        if code.is_success() && code != expected_success {
            self.deviation(
                Some(&p.endpoint),
                peer,
                format!("{what}: a success must be {expected_success}, the client answered {code}"),
                excerpt.clone(),
            );
        }
        if code == Code::CONTENT {
            if cf.is_none() && !response.payload.is_empty() {
                self.deviation(
                    Some(&p.endpoint),
                    peer,
                    format!("{what}: 2.05 with a payload but no Content-Format"),
                    excerpt.clone(),
                );
            }
            let asked = match &p.operation {
                Operation::Read { accept, .. }
                | Operation::Observe { accept, .. }
                | Operation::ReadComposite { accept, .. }
                | Operation::ObserveComposite { accept, .. } => *accept,
                Operation::Discover { .. } => Some(ContentFormat::Link),
                _ => None,
            };
            if let (Some(asked), Some(got)) = (asked, cf)
                && asked != got
            {
                self.deviation(
                    Some(&p.endpoint),
                    peer,
                    format!(
                        "{what}: asked for content format {}, the client answered {}",
                        asked.as_u16(),
                        got.as_u16()
                    ),
                    excerpt,
                );
            }
        }
    }

    /// LwM2M Send (`POST /dp`): strict checks, a [`super::SendReport`] for
    /// the endpoint, and the answer (2.04 when accepted).
    fn on_send(&mut self, now: ProtoInstant, peer: SocketAddr, request: &Packet) -> Packet {
        let excerpt = excerpt_of(request);
        let ep = self.endpoint_of_peer(peer);
        let cf = content_format_of(request);
        let records = cf.and_then(|cf| {
            rig_proto::content::decode(cf, &super::ObjectPath::Root, &request.payload, &self.defs)
                .ok()
        });
        let code = match (&ep, cf) {
            (None, _) => {
                self.deviation(
                    None,
                    peer,
                    "Send (POST /dp) from a client that is not registered".into(),
                    excerpt.clone(),
                );
                Code::NOT_FOUND
            }
            (Some(ep), Some(ContentFormat::SenmlJson | ContentFormat::SenmlCbor)) => {
                if records.is_none() {
                    self.deviation(
                        Some(ep.as_str()),
                        peer,
                        "Send: the SenML payload does not decode".into(),
                        excerpt.clone(),
                    );
                    Code::BAD_REQUEST
                } else {
                    Code::CHANGED
                }
            }
            (Some(ep), other) => {
                self.deviation(
                    Some(ep.as_str()),
                    peer,
                    format!(
                        "Send: content format {}; a Send carries SenML JSON (110) or SenML CBOR (112)",
                        other
                            .map(|c| c.as_u16().to_string())
                            .unwrap_or_else(|| "none".into())
                    ),
                    excerpt.clone(),
                );
                Code::new(4, 15)
            }
        };
        if let (Some(ep), Some(recs)) = (&ep, &records) {
            let registered: Vec<u16> = self
                .lock()
                .registrations
                .get(ep)
                .map(|r| {
                    r.object_links
                        .iter()
                        .filter_map(|l| l.trim_start_matches('/').split('/').next()?.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            let mut reported = Vec::new();
            for r in recs {
                if let Some(o) = r.path.object_id().map(|o| o.0)
                    && !registered.contains(&o)
                    && !reported.contains(&o)
                {
                    reported.push(o);
                    self.deviation(
                        Some(ep.as_str()),
                        peer,
                        format!(
                            "Send: {} is in object /{o}, which the client did not register",
                            r.path
                        ),
                        excerpt.clone(),
                    );
                }
            }
        }
        let report = super::SendReport {
            at: self.tokio_time(now),
            content_format: cf,
            payload: request.payload.clone(),
            records,
            code,
        };
        self.lock()
            .sends
            .entry(ep.unwrap_or_default())
            .or_default()
            .push(report);
        message::response(response_code(code))
    }

    fn on_request(&mut self, now: ProtoInstant, id: IncomingId, peer: SocketAddr, request: Packet) {
        if matches!(
            request.header.code,
            coap::MessageClass::Request(Method::Post)
        ) && message::uri_path(&request) == "dp"
        {
            let response = self.on_send(now, peer, &request);
            let _ = self.endpoint.respond(now, id, response);
            return;
        }
        let excerpt = excerpt_of(&request);
        let (response, event) = self.registry.handle_request(now, peer, &request);
        let at = self.tokio_time(now);
        let response = match event {
            RegistryEvent::Registered {
                registration,
                replaced,
                deviations,
            } => {
                let ep = registration.endpoint.clone();
                for d in &deviations {
                    self.deviation(Some(&ep), peer, format!("Register: {d}"), excerpt.clone());
                }
                if let Some(Some(auth)) = self.authenticated.get(&peer)
                    && *auth != ep
                {
                    let what = format!(
                        "Register: `ep={ep}` does not match the endpoint `{auth}` its DTLS credentials authenticate"
                    );
                    self.deviation(Some(&ep), peer, what, excerpt.clone());
                }
                // What the client actually sent (absent = None), beside the
                // registry's effective values.
                let (sent, _) =
                    proto_registry::parse_params(proto_registry::Operation::Register, &request);
                let reg = Registration {
                    endpoint: ep.clone(),
                    location: registration.location_path(),
                    peer,
                    lifetime_s: sent.lifetime,
                    lwm2m_version: sent.lwm2m_version,
                    binding: sent.binding,
                    queue_mode: registration.queue_mode,
                    sms: registration.sms.clone(),
                    object_links: registration
                        .objects
                        .iter()
                        .map(|l| l.target.clone())
                        .collect(),
                    links_raw: String::from_utf8_lossy(&request.payload).into_owned(),
                    registered_at: at,
                    last_update_at: None,
                    last_update: None,
                    updates: 0,
                };
                let _ = replaced;
                self.lock().registrations.insert(ep.clone(), reg.clone());
                self.emit(ServerEvent::Registered {
                    endpoint: ep,
                    registration: reg,
                    at,
                });
                response
            }
            RegistryEvent::Rejected {
                endpoint,
                deviations,
            } => {
                for d in &deviations {
                    self.deviation(
                        endpoint.as_deref(),
                        peer,
                        format!("Register rejected: {d}"),
                        excerpt.clone(),
                    );
                }
                response
            }
            RegistryEvent::Updated {
                registration,
                params,
                deviations,
            } => {
                let ep = registration.endpoint.clone();
                for d in &deviations {
                    self.deviation(Some(&ep), peer, format!("Update: {d}"), excerpt.clone());
                }
                let update = UpdateParams {
                    lifetime_s: params.lifetime,
                    binding: params.binding.clone(),
                    sms: params.sms.clone(),
                    object_links: params
                        .objects
                        .as_ref()
                        .map(|o| o.iter().map(|l| l.target.clone()).collect()),
                };
                let reg = {
                    let mut st = self.lock();
                    let r = st
                        .registrations
                        .entry(ep.clone())
                        .or_insert_with(|| Registration {
                            endpoint: ep.clone(),
                            location: registration.location_path(),
                            peer,
                            lifetime_s: None,
                            lwm2m_version: None,
                            binding: None,
                            queue_mode: false,
                            sms: None,
                            object_links: Vec::new(),
                            links_raw: String::new(),
                            registered_at: at,
                            last_update_at: None,
                            last_update: None,
                            updates: 0,
                        });
                    r.peer = peer;
                    if let Some(lt) = params.lifetime {
                        r.lifetime_s = Some(lt);
                    }
                    if let Some(b) = &params.binding {
                        r.binding = Some(b.clone());
                    }
                    r.queue_mode = registration.queue_mode;
                    r.sms = registration.sms.clone();
                    if let Some(links) = &update.object_links {
                        r.object_links = links.clone();
                        r.links_raw = String::from_utf8_lossy(&request.payload).into_owned();
                    }
                    r.last_update_at = Some(at);
                    r.last_update = Some(update.clone());
                    r.updates += 1;
                    r.clone()
                };
                self.emit(ServerEvent::Updated {
                    endpoint: ep,
                    update,
                    registration: reg,
                    at,
                });
                response
            }
            RegistryEvent::UnknownLocation { location, method } => {
                // Not a deviation: the client learns it must register again (int-105).
                self.note_unknown_location(at, &location, method);
                response
            }
            RegistryEvent::Deregistered { registration } => {
                let ep = registration.endpoint.clone();
                self.lock().registrations.remove(&ep);
                self.emit(ServerEvent::Deregistered {
                    endpoint: ep,
                    location: registration.location_path(),
                    at,
                });
                response
            }
            RegistryEvent::NotRegistrationInterface => {
                let ep = self.endpoint_of_peer(peer);
                let path = message::uri_path(&request);
                let what = if response.is_some() {
                    "not a registration interface operation".to_string()
                } else {
                    format!("request to unknown resource /{path}")
                };
                self.deviation(ep.as_deref(), peer, what, excerpt.clone());
                Some(response.unwrap_or_else(|| message::response(ResponseCode::NotFound)))
            }
        };
        if let Some(response) = response {
            // The exchange may already be gone (e.g. a duplicate); nothing to do then.
            let _ = self.endpoint.respond(now, id, response);
        }
    }

    fn expire(&mut self, now: ProtoInstant) {
        let at = self.tokio_time(now);
        for r in self.registry.expire(now) {
            self.lock().registrations.remove(&r.endpoint);
            self.emit(ServerEvent::Expired {
                endpoint: r.endpoint.clone(),
                location: r.location_path(),
                at,
            });
        }
    }
}

/// `POST /rd?ep=...` style excerpt of a request, for deviation messages.
fn excerpt_of(p: &Packet) -> String {
    let method = match p.header.code {
        coap::MessageClass::Request(m) => format!("{m:?}").to_uppercase(),
        other => format!("{other:?}"),
    };
    let q = message::uri_queries(p);
    let mut s = format!("{method} /{}", message::uri_path(p));
    if !q.is_empty() {
        s.push('?');
        s.push_str(&q.join("&"));
    }
    s
}

/// The CoAP request for an operation (token and message id are the endpoint's).
fn build_request(op: &Operation) -> Packet {
    let path = op.path().to_string();
    match op {
        Operation::Read { accept, .. } => {
            let mut p = message::request(Method::Get, true, &path);
            if let Some(cf) = accept {
                message::set_uint_option(&mut p, CoapOption::Accept, u32::from(cf.as_u16()));
            }
            p
        }
        Operation::Discover { .. } => {
            let mut p = message::request(Method::Get, true, &path);
            message::set_uint_option(
                &mut p,
                CoapOption::Accept,
                u32::from(ContentFormat::Link.as_u16()),
            );
            p
        }
        Operation::Write {
            format,
            payload,
            replace,
            ..
        } => {
            let mut p = message::request(
                if *replace { Method::Put } else { Method::Post },
                true,
                &path,
            );
            message::set_uint_option(
                &mut p,
                CoapOption::ContentFormat,
                u32::from(format.as_u16()),
            );
            p.payload = payload.clone();
            p
        }
        Operation::WriteAttributes { query, .. } => {
            let mut p = message::request(Method::Put, true, &path);
            for q in query.split('&').filter(|q| !q.is_empty()) {
                message::add_uri_query(&mut p, q);
            }
            p
        }
        Operation::Execute { args, .. } => {
            let mut p = message::request(Method::Post, true, &path);
            if let Some(a) = args {
                message::set_uint_option(
                    &mut p,
                    CoapOption::ContentFormat,
                    u32::from(ContentFormat::Text.as_u16()),
                );
                p.payload = a.clone().into_bytes();
            }
            p
        }
        Operation::Create {
            format, payload, ..
        } => {
            let mut p = message::request(Method::Post, true, &path);
            message::set_uint_option(
                &mut p,
                CoapOption::ContentFormat,
                u32::from(format.as_u16()),
            );
            p.payload = payload.clone();
            p
        }
        Operation::Delete { .. } => message::request(Method::Delete, true, &path),
        Operation::Observe { accept, .. } => {
            let mut p = message::request(Method::Get, true, &path);
            message::set_uint_option(&mut p, CoapOption::Observe, 0);
            if let Some(cf) = accept {
                message::set_uint_option(&mut p, CoapOption::Accept, u32::from(cf.as_u16()));
            }
            p
        }
        // Sent by the endpoint itself (`cancel_observe`); never built here.
        Operation::CancelObserve { .. } => message::request(Method::Get, true, &path),
        Operation::ReadComposite {
            paths,
            format,
            accept,
        }
        | Operation::ObserveComposite {
            paths,
            format,
            accept,
        } => {
            let mut p = message::request(Method::Fetch, true, "/");
            if matches!(op, Operation::ObserveComposite { .. }) {
                message::set_uint_option(&mut p, CoapOption::Observe, 0);
            }
            message::set_uint_option(
                &mut p,
                CoapOption::ContentFormat,
                u32::from(format.as_u16()),
            );
            if let Some(cf) = accept {
                message::set_uint_option(&mut p, CoapOption::Accept, u32::from(cf.as_u16()));
            }
            // A path list never fails to encode in SenML JSON/CBOR; another
            // format gives an empty body, which the client refuses (4.00).
            p.payload = rig_proto::content::senml::encode_paths(*format, paths).unwrap_or_default();
            p
        }
        Operation::WriteComposite { format, payload } => {
            let mut p = message::request(Method::IPatch, true, "/");
            message::set_uint_option(
                &mut p,
                CoapOption::ContentFormat,
                u32::from(format.as_u16()),
            );
            p.payload = payload.clone();
            p
        }
        // Answered by the server itself; never sent.
        Operation::Forget { .. } => message::request(Method::Get, true, &path),
    }
}

/// Decodes a Read response with rig-proto's content formats.
fn decode_payload(
    op: &Operation,
    cf: Option<ContentFormat>,
    payload: &[u8],
    defs: &Registry,
) -> Option<Records> {
    let path = match op {
        Operation::Read { path, .. } | Operation::Observe { path, .. } => path,
        Operation::ReadComposite { .. } | Operation::ObserveComposite { .. } => {
            &super::ObjectPath::Root
        }
        _ => return None,
    };
    let cf = cf?;
    if cf == ContentFormat::Link {
        return None;
    }
    rig_proto::content::decode(cf, path, payload, defs).ok()
}

/// rig-proto's registry scales by an integer divisor; the rig's time scale is
/// a float >= 1 and is rounded to the nearest integer for expiry.
fn scale_u32(scale: f64) -> u32 {
    if scale.is_finite() && scale >= 1.0 {
        scale.round().min(f64::from(u32::MAX)) as u32
    } else {
        1
    }
}

/// The CoAP response code for a [`Code`].
fn response_code(code: Code) -> ResponseCode {
    match (code.class(), code.detail()) {
        (2, 4) => ResponseCode::Changed,
        (4, 0) => ResponseCode::BadRequest,
        (4, 4) => ResponseCode::NotFound,
        (4, 15) => ResponseCode::UnsupportedContentFormat,
        _ => ResponseCode::InternalServerError,
    }
}

/// The Content-Format of a message, if present and known.
fn content_format_of(p: &Packet) -> Option<ContentFormat> {
    match message::uint_option(p, CoapOption::ContentFormat) {
        Some(Ok(n)) => u16::try_from(n).ok().and_then(ContentFormat::from_u16),
        _ => None,
    }
}
