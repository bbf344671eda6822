//! The client side of the LwM2M Bootstrap Interface (LwM2M 1.1 TS §6.1,
//! client-initiated bootstrap) as a sans-IO state machine: Bootstrap-Request,
//! then the bootstrap server's Write / Delete / Read / Discover operations,
//! then Bootstrap-Finish with the consistency check (4.06 Not Acceptable
//! when the configuration cannot work).
//!
//! Call order:
//! 1. [`BootstrapClient::new`], [`BootstrapClient::start`]`(now)`.
//! 2. Send [`BootstrapClient::poll_request`]; feed its outcome to
//!    [`BootstrapClient::handle_response`] / [`BootstrapClient::handle_failure`].
//! 3. For each request the bootstrap server sends, call
//!    [`BootstrapClient::classify`]; apply Writes/Deletes to the object
//!    store yourself; for [`BootstrapOperation::Finish`] run
//!    [`check_consistency`] on the store and answer with
//!    [`BootstrapClient::finish`].
//! 4. Arm a timer at [`BootstrapClient::poll_timeout`]; on expiry,
//!    [`BootstrapClient::handle_timeout`] fails the bootstrap if no Finish came.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};

use crate::coap::message::{self, add_uri_query, request, response, response_code};
use crate::path::ObjectPath;
use crate::time::{Instant, scale_down};

/// Where the bootstrap stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapState {
    /// Not started.
    Idle,
    /// Bootstrap-Request queued or in flight.
    Requesting,
    /// Request accepted; the server is configuring the client.
    Bootstrapping,
    /// Bootstrap-Finish accepted: the client may register.
    Finished,
    /// Failed, with the reason.
    Failed(String),
}

/// A request from the bootstrap server, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum BootstrapOperation {
    /// Bootstrap-Write (PUT) to a path.
    Write(ObjectPath),
    /// Bootstrap-Delete (DELETE) of a path (`/` deletes everything but the bootstrap account).
    Delete(ObjectPath),
    /// Bootstrap-Read (GET, LwM2M 1.1: /1 and /2 only).
    Read(ObjectPath),
    /// Bootstrap-Discover (GET with Accept 40).
    Discover(ObjectPath),
    /// Bootstrap-Finish (POST /bs).
    Finish,
    /// Anything else; the answer is the contained code.
    Invalid {
        /// Code to answer with.
        code: ResponseType,
        /// Why.
        reason: String,
    },
}

/// What a response or timer meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapEvent {
    /// 2.04 to the Bootstrap-Request: configuration follows.
    Accepted,
    /// The bootstrap failed.
    Failed(String),
    /// Finish accepted.
    Finished,
}

/// One Security object (0) instance, as far as the check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEntry {
    /// Instance id.
    pub instance: u16,
    /// /0/x/0 LwM2M Server URI.
    pub uri: String,
    /// /0/x/1 Bootstrap-Server.
    pub bootstrap: bool,
    /// /0/x/10 Short Server ID.
    pub ssid: Option<u16>,
}

/// One Server object (1) instance, as far as the check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEntry {
    /// Instance id.
    pub instance: u16,
    /// /1/x/0 Short Server ID.
    pub ssid: u16,
    /// /1/x/1 Lifetime.
    pub lifetime: u32,
}

/// The Bootstrap-Finish consistency check (LwM2M 1.1 TS §6.1.7.7): at least
/// one LwM2M server account exists, i.e. a non-bootstrap Security instance
/// with a URI and a Short Server ID that a Server instance carries. Every
/// problem is listed in the error.
pub fn check_consistency(
    security: &[SecurityEntry],
    servers: &[ServerEntry],
) -> Result<(), String> {
    let mut problems: Vec<String> = Vec::new();
    let accounts: Vec<&SecurityEntry> = security.iter().filter(|s| !s.bootstrap).collect();
    if accounts.is_empty() {
        problems.push(
            "no LwM2M server Security instance (all are bootstrap accounts or none exist)"
                .to_string(),
        );
    }
    let mut usable = 0;
    for s in &accounts {
        if s.uri.is_empty() {
            problems.push(format!("/0/{}/0 Server URI is empty", s.instance));
            continue;
        }
        match s.ssid {
            None => problems.push(format!("/0/{}/10 Short Server ID missing", s.instance)),
            Some(id) if servers.iter().any(|sv| sv.ssid == id) => usable += 1,
            Some(id) => problems.push(format!(
                "/0/{} has Short Server ID {id} but no Server (/1) instance carries it",
                s.instance
            )),
        }
    }
    for sv in servers {
        if !accounts.iter().any(|s| s.ssid == Some(sv.ssid)) {
            problems.push(format!(
                "/1/{} (ssid {}) has no matching Security instance",
                sv.instance, sv.ssid
            ));
        }
    }
    if usable > 0
        && problems
            .iter()
            .all(|p| p.contains("has no matching Security"))
    {
        // A dangling Server instance alone does not make the set unusable.
        return Ok(());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The client bootstrap state machine.
#[derive(Debug, Clone)]
pub struct BootstrapClient {
    endpoint: String,
    preferred_format: Option<u16>,
    state: BootstrapState,
    queued: bool,
    in_flight: bool,
    deadline: Option<Instant>,
    timeout: Duration,
    time_scale: u32,
}

impl BootstrapClient {
    /// A client for endpoint `ep`; the bootstrap fails if Finish does not
    /// arrive within `timeout` (unscaled) of the request being accepted.
    pub fn new(endpoint: &str, timeout: Duration, time_scale: u32) -> BootstrapClient {
        BootstrapClient {
            endpoint: endpoint.to_string(),
            preferred_format: None,
            state: BootstrapState::Idle,
            queued: false,
            in_flight: false,
            deadline: None,
            timeout,
            time_scale,
        }
    }

    /// Adds `pct=<format>` (LwM2M 1.1 preferred content format) to the request.
    pub fn with_preferred_format(mut self, format: u16) -> BootstrapClient {
        self.preferred_format = Some(format);
        self
    }

    /// Current state.
    pub fn state(&self) -> &BootstrapState {
        &self.state
    }

    /// Queues the Bootstrap-Request.
    pub fn start(&mut self, _now: Instant) {
        self.state = BootstrapState::Requesting;
        self.queued = true;
        self.deadline = None;
    }

    /// The Bootstrap-Request to send (POST /bs?ep=...), once.
    pub fn poll_request(&mut self, _now: Instant) -> Option<Packet> {
        if !self.queued || self.in_flight {
            return None;
        }
        self.queued = false;
        self.in_flight = true;
        let mut p = request(RequestType::Post, true, "bs");
        add_uri_query(&mut p, &format!("ep={}", self.endpoint));
        if let Some(f) = self.preferred_format {
            add_uri_query(&mut p, &format!("pct={f}"));
        }
        Some(p)
    }

    /// The response to the Bootstrap-Request.
    pub fn handle_response(&mut self, now: Instant, resp: &Packet) -> Option<BootstrapEvent> {
        if !self.in_flight {
            return None;
        }
        self.in_flight = false;
        if response_code(resp) == Some(ResponseType::Changed) {
            self.state = BootstrapState::Bootstrapping;
            self.deadline = Some(now + scale_down(self.timeout, self.time_scale));
            Some(BootstrapEvent::Accepted)
        } else {
            let why = format!("Bootstrap-Request answered {}", resp.header.code);
            self.state = BootstrapState::Failed(why.clone());
            Some(BootstrapEvent::Failed(why))
        }
    }

    /// The Bootstrap-Request timed out or was reset.
    pub fn handle_failure(&mut self, _now: Instant) -> Option<BootstrapEvent> {
        if !self.in_flight {
            return None;
        }
        self.in_flight = false;
        let why = "Bootstrap-Request got no response".to_string();
        self.state = BootstrapState::Failed(why.clone());
        Some(BootstrapEvent::Failed(why))
    }

    /// Classifies a request from the bootstrap server. Requests arriving
    /// outside [`BootstrapState::Bootstrapping`] are still classified (a
    /// server may start right after its 2.04); after Finish they are Invalid.
    pub fn classify(&self, req: &Packet) -> BootstrapOperation {
        if matches!(self.state, BootstrapState::Finished) {
            return BootstrapOperation::Invalid {
                code: ResponseType::MethodNotAllowed,
                reason: "bootstrap already finished".to_string(),
            };
        }
        let path_text = message::uri_path(req);
        let method = match req.header.code {
            MessageClass::Request(m) => m,
            _ => {
                return BootstrapOperation::Invalid {
                    code: ResponseType::BadRequest,
                    reason: "not a request".to_string(),
                };
            }
        };
        if method == RequestType::Post && path_text == "bs" {
            return BootstrapOperation::Finish;
        }
        let path = match ObjectPath::parse(&format!("/{path_text}")) {
            Ok(p) => p,
            Err(e) => {
                return BootstrapOperation::Invalid {
                    code: ResponseType::BadRequest,
                    reason: format!("`/{path_text}`: {e}"),
                };
            }
        };
        match method {
            RequestType::Put if path.level() >= 1 => BootstrapOperation::Write(path),
            RequestType::Delete if path.level() <= 2 => BootstrapOperation::Delete(path),
            RequestType::Get => {
                let accept = message::uint_option(req, CoapOption::Accept).and_then(Result::ok);
                if accept == Some(40) {
                    BootstrapOperation::Discover(path)
                } else if matches!(path.object_id().map(|o| o.0), Some(1) | Some(2)) {
                    BootstrapOperation::Read(path)
                } else {
                    BootstrapOperation::Invalid {
                        code: ResponseType::BadRequest,
                        reason: format!("Bootstrap-Read of {path} (only /1 and /2 may be read)"),
                    }
                }
            }
            _ => BootstrapOperation::Invalid {
                code: ResponseType::MethodNotAllowed,
                reason: format!("{method:?} on {path} is not a bootstrap operation"),
            },
        }
    }

    /// Answers Bootstrap-Finish with the consistency check's verdict:
    /// 2.04 and state Finished, or 4.06 Not Acceptable (the state stays
    /// Bootstrapping so the server can fix the configuration).
    pub fn finish(
        &mut self,
        _now: Instant,
        check: Result<(), String>,
    ) -> (Packet, Option<BootstrapEvent>) {
        match check {
            Ok(()) => {
                self.state = BootstrapState::Finished;
                self.deadline = None;
                (
                    response(ResponseType::Changed),
                    Some(BootstrapEvent::Finished),
                )
            }
            Err(why) => {
                let mut r = response(ResponseType::NotAcceptable);
                r.payload = why.into_bytes();
                (r, None)
            }
        }
    }

    /// When the bootstrap times out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Fails the bootstrap if Finish did not arrive in time.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<BootstrapEvent> {
        if self.deadline.is_some_and(|d| d <= now) {
            self.deadline = None;
            let why = "no Bootstrap-Finish before the bootstrap timeout".to_string();
            self.state = BootstrapState::Failed(why.clone());
            return Some(BootstrapEvent::Failed(why));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Instant {
        Instant::ZERO + Duration::from_secs(s)
    }

    #[test]
    fn request_accept_operations_finish() {
        let mut b =
            BootstrapClient::new("dev1", Duration::from_secs(60), 1).with_preferred_format(112);
        b.start(at(0));
        let req = b.poll_request(at(0)).unwrap();
        assert!(b.poll_request(at(0)).is_none());
        assert_eq!(message::uri_path(&req), "bs");
        assert_eq!(message::uri_queries(&req), vec!["ep=dev1", "pct=112"]);
        assert_eq!(
            b.handle_response(at(1), &response(ResponseType::Changed)),
            Some(BootstrapEvent::Accepted)
        );
        assert_eq!(b.poll_timeout(), Some(at(61)));
        let del = request(RequestType::Delete, true, "/");
        assert_eq!(
            b.classify(&del),
            BootstrapOperation::Delete(ObjectPath::parse("/").unwrap())
        );
        let put = request(RequestType::Put, true, "/0/1");
        assert_eq!(
            b.classify(&put),
            BootstrapOperation::Write(ObjectPath::instance(0, 1))
        );
        let mut disc = request(RequestType::Get, true, "/");
        message::set_uint_option(&mut disc, CoapOption::Accept, 40);
        assert!(matches!(b.classify(&disc), BootstrapOperation::Discover(_)));
        let read3 = request(RequestType::Get, true, "/3/0");
        assert!(matches!(
            b.classify(&read3),
            BootstrapOperation::Invalid {
                code: ResponseType::BadRequest,
                ..
            }
        ));
        let fin = request(RequestType::Post, true, "/bs");
        assert_eq!(b.classify(&fin), BootstrapOperation::Finish);
        let (resp, ev) = b.finish(at(2), Err("x".into()));
        assert_eq!(response_code(&resp), Some(ResponseType::NotAcceptable));
        assert_eq!(ev, None);
        let (resp, ev) = b.finish(at(3), Ok(()));
        assert_eq!(response_code(&resp), Some(ResponseType::Changed));
        assert_eq!(ev, Some(BootstrapEvent::Finished));
        assert_eq!(b.state(), &BootstrapState::Finished);
        assert_eq!(b.poll_timeout(), None);
    }

    #[test]
    fn missing_finish_times_out_and_rejected_request_fails() {
        let mut b = BootstrapClient::new("d", Duration::from_secs(60), 10);
        b.start(at(0));
        b.poll_request(at(0)).unwrap();
        b.handle_response(at(0), &response(ResponseType::Changed));
        assert_eq!(b.handle_timeout(at(5)), None);
        assert!(matches!(
            b.handle_timeout(at(6)),
            Some(BootstrapEvent::Failed(_))
        ));
        let mut b = BootstrapClient::new("d", Duration::from_secs(60), 1);
        b.start(at(0));
        b.poll_request(at(0)).unwrap();
        let ev = b.handle_response(at(0), &response(ResponseType::BadRequest));
        assert_eq!(
            ev,
            Some(BootstrapEvent::Failed(
                "Bootstrap-Request answered 4.00".into()
            ))
        );
    }

    #[test]
    fn consistency_check_names_every_problem() {
        let bs = SecurityEntry {
            instance: 0,
            uri: "coap://bs".into(),
            bootstrap: true,
            ssid: None,
        };
        let dm = SecurityEntry {
            instance: 1,
            uri: "coap://dm".into(),
            bootstrap: false,
            ssid: Some(1),
        };
        let srv = ServerEntry {
            instance: 0,
            ssid: 1,
            lifetime: 300,
        };
        assert_eq!(
            check_consistency(&[bs.clone(), dm.clone()], core::slice::from_ref(&srv)),
            Ok(())
        );
        let e = check_consistency(core::slice::from_ref(&bs), &[]).unwrap_err();
        assert!(e.contains("no LwM2M server Security instance"), "{e}");
        let e = check_consistency(&[bs, dm], &[ServerEntry { ssid: 2, ..srv }]).unwrap_err();
        assert!(e.contains("Short Server ID 1 but no Server"), "{e}");
        assert!(e.contains("ssid 2) has no matching Security"), "{e}");
    }
}
