//! The bootstrap server's logic: which requests it accepts, which operation a
//! response completes, and what is a deviation.
//!
//! [`BootstrapCore`] is driven by the driver in `super` with the sans-IO
//! vocabulary of rig-proto (`handle_*` in, `poll_*` out) and owns the
//! rig-proto CoAP [`Endpoint`]. It writes sessions and deviations into the
//! shared [`State`] and broadcasts [`BootstrapEvent`]s.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rig_proto::coap::{
    self, CoapOption, Endpoint, Event, IncomingId, Method, Packet, RequestId, ResponseCode, message,
};
use rig_proto::content::ContentFormat;
use rig_proto::object::Registry;
use rig_proto::time::Instant as ProtoInstant;
use tokio::sync::{broadcast, oneshot};
use tokio::time::Instant;

use super::{BootstrapEvent, BsOperation, BsRequest, Session, State};
use crate::OpError;
use crate::deviation::Deviation;
use crate::lwm2m::{Code, Response};

/// An operation waiting for its response.
struct Pending {
    endpoint: String,
    operation: BsOperation,
    reply: oneshot::Sender<Result<Response, OpError>>,
}

/// The bootstrap server's state machine; see the module doc.
pub(crate) struct BootstrapCore {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<BootstrapEvent>,
    endpoint: Endpoint,
    epoch: Instant,
    pending: HashMap<RequestId, Pending>,
    defs: Registry,
    /// DTLS only: the endpoint each peer's credentials map to.
    authenticated: HashMap<SocketAddr, Option<String>>,
}

impl BootstrapCore {
    pub(crate) fn new(state: Arc<Mutex<State>>, events: broadcast::Sender<BootstrapEvent>) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0xb005);
        BootstrapCore {
            state,
            events,
            endpoint: Endpoint::new(coap::Config::default(), seed),
            epoch: Instant::now(),
            pending: HashMap::new(),
            defs: Registry::core(),
            authenticated: HashMap::new(),
        }
    }

    pub(crate) fn set_epoch(&mut self, epoch: Instant) {
        self.epoch = epoch;
    }

    fn tokio_time(&self, now: ProtoInstant) -> Instant {
        self.epoch + Duration::from_micros(now.as_micros())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, event: BootstrapEvent) {
        // No subscriber is fine: sessions and deviations are in the State too.
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
        self.emit(BootstrapEvent::Deviation(d));
    }

    // ---- inputs ---------------------------------------------------------

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
                self.emit(BootstrapEvent::SecureSession {
                    peer,
                    endpoint,
                    cipher_suite: cipher_suite.map(|s| s.name.to_string()),
                });
            }
            E::Failed(f) => self.emit(BootstrapEvent::HandshakeFailed {
                peer: f.peer,
                reason: f.reason.kind().to_string(),
                message: text,
            }),
            E::Rejected { peer, reason } => self.emit(BootstrapEvent::HandshakeFailed {
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
        self.endpoint.handle_datagram(now, peer, bytes);
        self.process(now);
    }

    pub(crate) fn handle_timeout(&mut self, now: ProtoInstant) {
        self.endpoint.handle_timeout(now);
        self.process(now);
    }

    pub(crate) fn handle_op(&mut self, now: ProtoInstant, op: BsRequest) {
        let BsRequest {
            endpoint,
            operation,
            reply,
        } = op;
        let Some(peer) = self.lock().sessions.get(&endpoint).map(|s| s.peer) else {
            let _ = reply.send(Err(no_session(&endpoint, &operation)));
            return;
        };
        let packet = build_request(&operation);
        match self.endpoint.send_request(now, peer, packet) {
            Ok(id) => {
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
        self.endpoint.poll_timeout()
    }

    // ---- the logic ------------------------------------------------------

    fn process(&mut self, now: ProtoInstant) {
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                Event::Request { id, peer, request } => self.on_request(now, id, peer, request),
                Event::Response { id, response, .. } => self.on_response(id, response),
                Event::RequestTimedOut { id } => self.fail_pending(id, |p| OpError::Timeout {
                    endpoint: p.endpoint.clone(),
                    operation: p.operation.name(),
                    path: p.operation.path_text(),
                    timeout: coap::Config::default().max_transmit_wait(),
                }),
                Event::Reset { id } => self.fail_pending(id, |p| OpError::Reset {
                    endpoint: p.endpoint.clone(),
                    operation: p.operation.name(),
                    path: p.operation.path_text(),
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
                Event::ResponseFailed { .. }
                | Event::Notification { .. }
                | Event::ResponseBlock { .. }
                | Event::ObservationCancelled { .. } => {}
            }
        }
    }

    fn endpoint_of_peer(&self, peer: SocketAddr) -> Option<String> {
        self.lock()
            .sessions
            .values()
            .find(|s| s.peer == peer)
            .map(|s| s.endpoint.clone())
    }

    fn fail_pending(&mut self, id: RequestId, err: impl FnOnce(&Pending) -> OpError) {
        if let Some(p) = self.pending.remove(&id) {
            let e = err(&p);
            let _ = p.reply.send(Err(e));
        }
    }

    fn on_request(&mut self, now: ProtoInstant, id: IncomingId, peer: SocketAddr, request: Packet) {
        let excerpt = excerpt_of(&request);
        let response = self.answer(now, peer, &request, &excerpt);
        // The exchange may already be gone (a duplicate); nothing to do then.
        let _ = self.endpoint.respond(now, id, response);
    }

    /// The answer to a request the client sent: only Bootstrap-Request
    /// (`POST /bs?ep=...`) exists on a bootstrap server.
    fn answer(
        &mut self,
        now: ProtoInstant,
        peer: SocketAddr,
        request: &Packet,
        excerpt: &str,
    ) -> Packet {
        let path = message::uri_path(request);
        let is_post = matches!(
            request.header.code,
            coap::MessageClass::Request(Method::Post)
        );
        if path != "bs" || !is_post {
            let ep = self.endpoint_of_peer(peer);
            self.deviation(
                ep.as_deref(),
                peer,
                "request to the bootstrap server that is not a Bootstrap-Request (POST /bs?ep=...)"
                    .to_string(),
                excerpt.to_string(),
            );
            return message::response(if path == "bs" {
                ResponseCode::MethodNotAllowed
            } else {
                ResponseCode::NotFound
            });
        }
        let queries = message::uri_queries(request);
        let mut endpoint = None;
        let mut pct = None;
        let mut problems = Vec::new();
        for q in &queries {
            let (k, v) = q.split_once('=').unwrap_or((q.as_str(), ""));
            match k {
                "ep" if endpoint.is_none() && !v.is_empty() => endpoint = Some(v.to_string()),
                "ep" if v.is_empty() => problems.push("`ep` is empty".to_string()),
                "ep" => problems.push("`ep` appears twice".to_string()),
                "pct" => match v.parse::<u16>().ok().and_then(ContentFormat::from_u16) {
                    Some(cf) => pct = Some(cf),
                    None => problems.push(format!("`pct={v}` is not a known content format")),
                },
                other => problems.push(format!("unknown query parameter `{other}`")),
            }
        }
        let Some(endpoint) = endpoint else {
            self.deviation(
                None,
                peer,
                format!(
                    "Bootstrap-Request has no `ep` query parameter{}",
                    if problems.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", problems.join("; "))
                    }
                ),
                excerpt.to_string(),
            );
            return message::response(ResponseCode::BadRequest);
        };
        for p in problems {
            self.deviation(
                Some(&endpoint),
                peer,
                format!("Bootstrap-Request: {p}"),
                excerpt.to_string(),
            );
        }
        if let Some(Some(auth)) = self.authenticated.get(&peer)
            && *auth != endpoint
        {
            self.deviation(
                Some(&endpoint),
                peer,
                format!(
                    "Bootstrap-Request: `ep={endpoint}` does not match the endpoint `{auth}` its DTLS credentials authenticate"
                ),
                excerpt.to_string(),
            );
        }
        let at = self.tokio_time(now);
        let session = Session {
            endpoint: endpoint.clone(),
            peer,
            preferred_format: pct,
            requested_at: at,
            requests: 1 + self
                .lock()
                .sessions
                .get(&endpoint)
                .map_or(0, |s| s.requests),
        };
        self.lock().sessions.insert(endpoint.clone(), session);
        self.emit(BootstrapEvent::BootstrapRequest {
            endpoint,
            peer,
            preferred_format: pct,
            at,
        });
        message::response(ResponseCode::Changed)
    }

    fn on_response(&mut self, id: RequestId, response: Packet) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        let code = Code(u8::from(response.header.code));
        let content_format = content_format_of(&response);
        let peer = self.lock().sessions.get(&p.endpoint).map(|s| s.peer);
        if let Some(peer) = peer {
            self.check_response(&p, peer, code, content_format, &response);
        }
        let decoded = match (&p.operation, content_format) {
            (BsOperation::Read { path, .. }, Some(cf)) if code == Code::CONTENT => {
                rig_proto::content::decode(cf, path, &response.payload, &self.defs).ok()
            }
            _ => None,
        };
        if matches!(p.operation, BsOperation::Finish) {
            self.emit(BootstrapEvent::Finished {
                endpoint: p.endpoint.clone(),
                code,
            });
        }
        let _ = p.reply.send(Ok(Response {
            code,
            content_format,
            payload: response.payload,
            decoded,
            observation: None,
        }));
    }

    /// Strict checks on a bootstrap operation's response.
    fn check_response(
        &self,
        p: &Pending,
        peer: SocketAddr,
        code: Code,
        cf: Option<ContentFormat>,
        response: &Packet,
    ) {
        let what = format!("{} {}", p.operation.name(), p.operation.path_text());
        let excerpt = format!(
            "{code} cf={}",
            cf.map(|c| c.as_u16().to_string())
                .unwrap_or_else(|| "-".into())
        );
        let dev = |text: String| self.deviation(Some(&p.endpoint), peer, text, excerpt.clone());
        for problem in check(&p.operation, code, cf, &response.payload) {
            dev(format!("{what}: {problem}"));
        }
    }
}

/// The strict checks of one response, as problem texts (empty = correct).
/// Codes follow LwM2M 1.1 TS §6.1.7 (Bootstrap Interface).
pub(crate) fn check(
    op: &BsOperation,
    code: Code,
    cf: Option<ContentFormat>,
    payload: &[u8],
) -> Vec<String> {
    let mut problems = Vec::new();
    let allowed: &[Code] = match op {
        BsOperation::Discover { .. } => &[Code::CONTENT, Code::BAD_REQUEST, Code::NOT_FOUND],
        BsOperation::Read { .. } => &[
            Code::CONTENT,
            Code::BAD_REQUEST,
            Code::UNAUTHORIZED,
            Code::NOT_FOUND,
            Code::METHOD_NOT_ALLOWED,
            Code::NOT_ACCEPTABLE,
        ],
        BsOperation::Write { .. } => &[Code::CHANGED, Code::BAD_REQUEST, Code::new(4, 15)],
        BsOperation::Delete { .. } => &[Code::DELETED, Code::BAD_REQUEST],
        BsOperation::Finish => &[Code::CHANGED, Code::BAD_REQUEST, Code::NOT_ACCEPTABLE],
    };
    if !allowed.contains(&code) {
        let list: Vec<String> = allowed.iter().map(Code::to_string).collect();
        problems.push(format!(
            "answered {code}, which this operation never answers (allowed: {})",
            list.join(", ")
        ));
    }
    match op {
        BsOperation::Discover { .. } if code == Code::CONTENT => {
            if cf != Some(ContentFormat::Link) {
                problems.push(format!(
                    "2.05 must carry Content-Format 40 (link format), saw {}",
                    cf.map_or("none".to_string(), |c| c.as_u16().to_string())
                ));
            }
            match rig_proto::link::parse_bytes(payload) {
                Err(e) => problems.push(format!("the link format does not parse: {e}")),
                Ok(links) => {
                    let version = links.iter().find_map(|l| l.param("lwm2m"));
                    match version {
                        None => problems.push(
                            "no `lwm2m=\"1.x\"` version link (LwM2M 1.1 TS §5.2.7.3)".to_string(),
                        ),
                        Some(v) if v.starts_with("1.") => {}
                        Some(v) => problems.push(format!("`lwm2m={v}` is not a 1.x version")),
                    }
                }
            }
        }
        BsOperation::Read { path, .. } if code == Code::CONTENT => {
            if cf.is_none() {
                problems.push("2.05 with no Content-Format".to_string());
            }
            if !matches!(path.object_id().map(|o| o.0), Some(1) | Some(2)) {
                problems.push(format!(
                    "Bootstrap-Read of {path} must be refused (only /1 and /2 may be read, LwM2M 1.1 TS §6.1.7.2)"
                ));
            }
        }
        _ => {}
    }
    problems
}

fn no_session(endpoint: &str, op: &BsOperation) -> OpError {
    OpError::Request {
        endpoint: endpoint.to_string(),
        operation: op.name(),
        reason: "no Bootstrap-Request from this endpoint yet".to_string(),
    }
}

/// `POST /bs?ep=...` style excerpt of a request, for deviation messages.
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

/// The CoAP request of a bootstrap operation.
pub(crate) fn build_request(op: &BsOperation) -> Packet {
    match op {
        BsOperation::Discover { path } => {
            let mut p = message::request(Method::Get, true, &path.to_string());
            message::set_uint_option(
                &mut p,
                CoapOption::Accept,
                u32::from(ContentFormat::Link.as_u16()),
            );
            p
        }
        BsOperation::Read { path, accept } => {
            let mut p = message::request(Method::Get, true, &path.to_string());
            if let Some(cf) = accept {
                message::set_uint_option(&mut p, CoapOption::Accept, u32::from(cf.as_u16()));
            }
            p
        }
        BsOperation::Write {
            path,
            format,
            payload,
        } => {
            let mut p = message::request(Method::Put, true, &path.to_string());
            message::set_uint_option(
                &mut p,
                CoapOption::ContentFormat,
                u32::from(format.as_u16()),
            );
            p.payload = payload.clone();
            p
        }
        BsOperation::Delete { path } => message::request(Method::Delete, true, &path.to_string()),
        BsOperation::Finish => message::request(Method::Post, true, "bs"),
    }
}

fn content_format_of(p: &Packet) -> Option<ContentFormat> {
    match message::uint_option(p, CoapOption::ContentFormat) {
        Some(Ok(n)) => u16::try_from(n).ok().and_then(ContentFormat::from_u16),
        _ => None,
    }
}
