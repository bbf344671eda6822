//! The client side of the LwM2M Client Registration Interface (LwM2M 1.1
//! TS §6.2) as a sans-IO state machine: Register, Update before the
//! lifetime runs out, re-register when an Update is refused, De-register.
//!
//! The machine never sends anything itself. Call order:
//! 1. [`ClientRegistration::new`], then [`ClientRegistration::register`]`(now)`.
//! 2. Take [`ClientRegistration::poll_request`]`(now)` and send it with
//!    [`Endpoint::send_request`](crate::coap::Endpoint::send_request) (one
//!    request at a time; the machine waits for its outcome).
//! 3. Feed the outcome back: [`ClientRegistration::handle_response`] with
//!    the response, or [`ClientRegistration::handle_failure`] on time-out or
//!    RST. Take the returned [`RegistrationEvent`], if any.
//! 4. Arm a timer at [`ClientRegistration::poll_timeout`] and call
//!    [`ClientRegistration::handle_timeout`] when it fires (that schedules
//!    the periodic Update), then go to 2.
//!
//! App-driven changes: [`ClientRegistration::set_lifetime`] (Update with
//! `lt`), [`ClientRegistration::set_objects`] (Update with the new link
//! list), [`ClientRegistration::trigger_update`] (Update without
//! parameters, e.g. Registration Update Trigger /1/x/8) and
//! [`ClientRegistration::deregister`].

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use coap_lite::{CoapOption, Packet, RequestType, ResponseType};

use crate::coap::message::{self, add_uri_query, location_path, request, response_code};
use crate::registry::LINK_FORMAT;
use crate::time::{Instant, scale_down};

/// Static parameters of a client registration.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrationConfig {
    /// Endpoint client name (`ep`).
    pub endpoint: String,
    /// Lifetime in seconds (`lt`).
    pub lifetime: u32,
    /// LwM2M version (`lwm2m`), e.g. `1.1`.
    pub lwm2m_version: String,
    /// Binding (`b`), e.g. `U`; `None` omits the parameter.
    pub binding: Option<String>,
    /// Queue mode (`Q`, LwM2M 1.1).
    pub queue_mode: bool,
    /// SMS number (`sms`).
    pub sms: Option<String>,
    /// The object links payload (link format), e.g. `</1/0>,</3/0>`.
    pub objects: String,
    /// Registration interface root path, normally `rd`.
    pub root: String,
    /// Send CON requests (default true).
    pub confirmable: bool,
    /// Divides every timer (lifetime-based schedule and retry delay).
    pub time_scale: u32,
    /// Fixed margin before expiry at which to Update. `None` uses
    /// `min(lifetime / 2, MAX_TRANSMIT_WAIT)` (93 s).
    pub update_margin: Option<Duration>,
    /// Wait before retrying a failed Register (unscaled, default 60 s).
    pub retry_delay: Duration,
}

impl RegistrationConfig {
    /// A configuration with the usual defaults (LwM2M 1.1, binding U, CON).
    pub fn new(endpoint: &str, lifetime: u32, objects: &str) -> RegistrationConfig {
        RegistrationConfig {
            endpoint: endpoint.to_string(),
            lifetime,
            lwm2m_version: "1.1".to_string(),
            binding: Some("U".to_string()),
            queue_mode: false,
            sms: None,
            objects: objects.to_string(),
            root: "rd".to_string(),
            confirmable: true,
            time_scale: 1,
            update_margin: None,
            retry_delay: Duration::from_secs(60),
        }
    }
}

/// Where the registration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationState {
    /// Not registered and not trying.
    Idle,
    /// A Register is queued or in flight.
    Registering,
    /// Registered at `location`.
    Registered,
    /// A De-register is queued or in flight.
    Deregistering,
    /// De-registered (or the De-register failed; either way, not registered).
    Deregistered,
}

/// Which request is in flight or queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationOp {
    /// POST /rd?ep=...
    Register,
    /// POST /rd/{location}
    Update,
    /// DELETE /rd/{location}
    Deregister,
}

/// What a response or failure meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationEvent {
    /// 2.01 Created: registered at `location` (path segments).
    Registered {
        /// Location-Path segments from the response.
        location: Vec<String>,
    },
    /// 2.04 Changed to an Update.
    Updated,
    /// 2.02 Deleted (or the De-register could not be delivered).
    Deregistered,
    /// The Register failed (error code, time-out or RST); it is retried
    /// after the retry delay.
    RegisterFailed {
        /// The error code, or `None` for a time-out/RST.
        code: Option<String>,
    },
    /// The Update was refused or lost; the client registers again.
    UpdateFailed {
        /// The error code, or `None` for a time-out/RST.
        code: Option<String>,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
struct PendingUpdate {
    lifetime: bool,
    binding: bool,
    objects: bool,
}

/// The registration state machine of one client towards one server.
#[derive(Debug, Clone)]
pub struct ClientRegistration {
    config: RegistrationConfig,
    state: RegistrationState,
    location: Vec<String>,
    in_flight: Option<(RegistrationOp, Instant)>,
    queued: Option<RegistrationOp>,
    pending: PendingUpdate,
    /// Parameters sent with the Update in flight.
    sent_update: PendingUpdate,
    expires_at: Option<Instant>,
    update_at: Option<Instant>,
    retry_at: Option<Instant>,
}

impl ClientRegistration {
    /// A machine in [`RegistrationState::Idle`].
    pub fn new(config: RegistrationConfig) -> ClientRegistration {
        ClientRegistration {
            config,
            state: RegistrationState::Idle,
            location: Vec::new(),
            in_flight: None,
            queued: None,
            pending: PendingUpdate::default(),
            sent_update: PendingUpdate::default(),
            expires_at: None,
            update_at: None,
            retry_at: None,
        }
    }

    /// Current state.
    pub fn state(&self) -> &RegistrationState {
        &self.state
    }

    /// Location-Path segments given by the server (empty if not registered).
    pub fn location(&self) -> &[String] {
        &self.location
    }

    /// The configuration (with any lifetime/objects changes applied).
    pub fn config(&self) -> &RegistrationConfig {
        &self.config
    }

    /// When the server will consider the registration expired.
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }

    /// When the next periodic Update is due.
    pub fn update_at(&self) -> Option<Instant> {
        self.update_at
    }

    /// The request in flight, if any.
    pub fn in_flight(&self) -> Option<RegistrationOp> {
        self.in_flight.map(|(op, _)| op)
    }

    /// Starts (or restarts) registration: queues a Register.
    pub fn register(&mut self, _now: Instant) {
        self.state = RegistrationState::Registering;
        self.queued = Some(RegistrationOp::Register);
        self.retry_at = None;
        self.update_at = None;
    }

    /// Queues an Update without parameters (Registration Update Trigger).
    pub fn trigger_update(&mut self, _now: Instant) {
        self.queue_update();
    }

    /// Changes the lifetime; queues an Update carrying `lt`.
    pub fn set_lifetime(&mut self, _now: Instant, lifetime: u32) {
        if lifetime != self.config.lifetime {
            self.config.lifetime = lifetime;
            self.pending.lifetime = true;
        }
        self.queue_update();
    }

    /// Changes the binding; queues an Update carrying `b`.
    pub fn set_binding(&mut self, _now: Instant, binding: &str) {
        self.config.binding = Some(binding.to_string());
        self.pending.binding = true;
        self.queue_update();
    }

    /// Changes the object links; queues an Update carrying them.
    pub fn set_objects(&mut self, _now: Instant, objects: &str) {
        if objects != self.config.objects {
            self.config.objects = objects.to_string();
            self.pending.objects = true;
        }
        self.queue_update();
    }

    /// Queues a De-register (drops a queued Register/Update).
    pub fn deregister(&mut self, _now: Instant) {
        match self.state {
            RegistrationState::Registered | RegistrationState::Deregistering => {
                self.state = RegistrationState::Deregistering;
                self.queued = Some(RegistrationOp::Deregister);
            }
            _ => {
                self.state = RegistrationState::Deregistered;
                self.queued = None;
            }
        }
        self.update_at = None;
        self.retry_at = None;
    }

    fn queue_update(&mut self) {
        if self.state == RegistrationState::Registered && self.queued.is_none() {
            self.queued = Some(RegistrationOp::Update);
        }
    }

    /// The next request to send, if one is queued and none is in flight.
    pub fn poll_request(&mut self, now: Instant) -> Option<Packet> {
        if self.in_flight.is_some() {
            return None;
        }
        let op = self.queued.take()?;
        let c = &self.config;
        let p = match op {
            RegistrationOp::Register => {
                let mut p = request(RequestType::Post, c.confirmable, &c.root);
                add_uri_query(&mut p, &alloc::format!("ep={}", c.endpoint));
                add_uri_query(&mut p, &alloc::format!("lt={}", c.lifetime));
                add_uri_query(&mut p, &alloc::format!("lwm2m={}", c.lwm2m_version));
                if let Some(b) = &c.binding {
                    add_uri_query(&mut p, &alloc::format!("b={b}"));
                }
                if let Some(s) = &c.sms {
                    add_uri_query(&mut p, &alloc::format!("sms={s}"));
                }
                if c.queue_mode {
                    add_uri_query(&mut p, "Q");
                }
                message::set_uint_option(&mut p, CoapOption::ContentFormat, u32::from(LINK_FORMAT));
                p.payload = c.objects.as_bytes().to_vec();
                self.pending = PendingUpdate::default();
                p
            }
            RegistrationOp::Update => {
                let mut p = request(RequestType::Post, c.confirmable, "");
                for seg in &self.location {
                    p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
                }
                if self.pending.lifetime {
                    add_uri_query(&mut p, &alloc::format!("lt={}", c.lifetime));
                }
                if let (true, Some(b)) = (self.pending.binding, &c.binding) {
                    add_uri_query(&mut p, &alloc::format!("b={b}"));
                }
                if self.pending.objects {
                    message::set_uint_option(
                        &mut p,
                        CoapOption::ContentFormat,
                        u32::from(LINK_FORMAT),
                    );
                    p.payload = c.objects.as_bytes().to_vec();
                }
                self.sent_update = core::mem::take(&mut self.pending);
                p
            }
            RegistrationOp::Deregister => {
                let mut p = request(RequestType::Delete, c.confirmable, "");
                for seg in &self.location {
                    p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
                }
                p
            }
        };
        self.in_flight = Some((op, now));
        Some(p)
    }

    fn lifetime(&self) -> Duration {
        scale_down(
            Duration::from_secs(u64::from(self.config.lifetime)),
            self.config.time_scale,
        )
    }

    fn schedule_update(&mut self, sent_at: Instant) {
        let lifetime = self.lifetime();
        let margin = match self.config.update_margin {
            Some(m) => scale_down(m, self.config.time_scale),
            None => {
                let mtw = scale_down(Duration::from_secs(93), self.config.time_scale);
                (lifetime / 2).min(mtw)
            }
        };
        let expires = sent_at + lifetime;
        self.expires_at = Some(expires);
        self.update_at = Some(expires.checked_sub(margin.min(lifetime)).unwrap_or(sent_at));
    }

    /// Feeds the response to the request in flight.
    pub fn handle_response(
        &mut self,
        now: Instant,
        response: &Packet,
    ) -> Option<RegistrationEvent> {
        let (op, sent_at) = self.in_flight.take()?;
        let code = response_code(response);
        let ok = matches!(
            (op, code),
            (RegistrationOp::Register, Some(ResponseType::Created))
                | (RegistrationOp::Update, Some(ResponseType::Changed))
                | (RegistrationOp::Deregister, Some(ResponseType::Deleted))
        );
        let code_text = alloc::format!("{}", response.header.code);
        match op {
            RegistrationOp::Register if ok => {
                self.location = location_path(response);
                self.state = RegistrationState::Registered;
                self.schedule_update(sent_at);
                Some(RegistrationEvent::Registered {
                    location: self.location.clone(),
                })
            }
            RegistrationOp::Register => self.register_failed(now, Some(code_text)),
            RegistrationOp::Update if ok => {
                self.schedule_update(sent_at);
                self.sent_update = PendingUpdate::default();
                Some(RegistrationEvent::Updated)
            }
            RegistrationOp::Update => self.update_failed(now, Some(code_text)),
            RegistrationOp::Deregister => {
                self.deregistered();
                Some(RegistrationEvent::Deregistered)
            }
        }
    }

    /// The request in flight timed out or was answered with RST.
    pub fn handle_failure(&mut self, now: Instant) -> Option<RegistrationEvent> {
        let (op, _) = self.in_flight.take()?;
        match op {
            RegistrationOp::Register => self.register_failed(now, None),
            RegistrationOp::Update => self.update_failed(now, None),
            RegistrationOp::Deregister => {
                self.deregistered();
                Some(RegistrationEvent::Deregistered)
            }
        }
    }

    fn deregistered(&mut self) {
        self.state = RegistrationState::Deregistered;
        self.location.clear();
        self.expires_at = None;
        self.update_at = None;
        self.queued = None;
    }

    fn register_failed(&mut self, now: Instant, code: Option<String>) -> Option<RegistrationEvent> {
        self.state = RegistrationState::Registering;
        self.retry_at = Some(now + scale_down(self.config.retry_delay, self.config.time_scale));
        Some(RegistrationEvent::RegisterFailed { code })
    }

    fn update_failed(&mut self, now: Instant, code: Option<String>) -> Option<RegistrationEvent> {
        // LwM2M 1.1 TS §6.2.2: a refused Update means the server lost the
        // registration; register again (with every parameter).
        let _ = now;
        self.location.clear();
        self.expires_at = None;
        self.update_at = None;
        self.state = RegistrationState::Registering;
        if self.queued != Some(RegistrationOp::Deregister) {
            self.queued = Some(RegistrationOp::Register);
        }
        Some(RegistrationEvent::UpdateFailed { code })
    }

    /// The next instant [`ClientRegistration::handle_timeout`] must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.update_at, self.retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs due timers: queues the periodic Update or the Register retry.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            if self.state == RegistrationState::Registering && self.queued.is_none() {
                self.queued = Some(RegistrationOp::Register);
            }
        }
        if self.update_at.is_some_and(|t| t <= now) {
            self.update_at = None;
            self.queue_update();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coap::message::{response, uri_path, uri_queries};

    fn created(loc: &[&str]) -> Packet {
        let mut r = response(ResponseType::Created);
        for s in loc {
            r.add_option(CoapOption::LocationPath, s.as_bytes().to_vec());
        }
        r
    }

    fn at(s: u64) -> Instant {
        Instant::ZERO + Duration::from_secs(s)
    }

    #[test]
    fn register_builds_the_request_and_schedules_the_update() {
        let mut m = ClientRegistration::new(RegistrationConfig::new("dev1", 300, "</1/0>,</3/0>"));
        m.register(at(0));
        let req = m.poll_request(at(0)).unwrap();
        assert!(m.poll_request(at(0)).is_none(), "one request at a time");
        assert_eq!(uri_path(&req), "rd");
        assert_eq!(
            uri_queries(&req),
            vec!["ep=dev1", "lt=300", "lwm2m=1.1", "b=U"]
        );
        assert_eq!(
            message::uint_option(&req, CoapOption::ContentFormat),
            Some(Ok(40))
        );
        assert_eq!(req.payload, b"</1/0>,</3/0>");
        let ev = m.handle_response(at(1), &created(&["rd", "5"]));
        assert_eq!(
            ev,
            Some(RegistrationEvent::Registered {
                location: vec!["rd".into(), "5".into()]
            })
        );
        // Update at expiry - min(lt/2, 93 s) = 300 - 93 = 207 s after sending.
        assert_eq!(m.update_at(), Some(at(207)));
        assert_eq!(m.expires_at(), Some(at(300)));
        m.handle_timeout(at(206));
        assert!(m.poll_request(at(206)).is_none());
        m.handle_timeout(at(207));
        let upd = m.poll_request(at(207)).unwrap();
        assert_eq!(uri_path(&upd), "rd/5");
        assert!(
            uri_queries(&upd).is_empty(),
            "periodic Update carries no parameters"
        );
        assert!(upd.payload.is_empty());
        assert_eq!(
            m.handle_response(at(208), &response(ResponseType::Changed)),
            Some(RegistrationEvent::Updated)
        );
        assert_eq!(m.update_at(), Some(at(207 + 207)));
    }

    #[test]
    fn short_lifetime_updates_at_half_and_time_scale_divides() {
        let mut cfg = RegistrationConfig::new("d", 20, "</1/0>");
        cfg.time_scale = 10;
        let mut m = ClientRegistration::new(cfg);
        m.register(at(0));
        m.poll_request(at(0)).unwrap();
        m.handle_response(at(0), &created(&["rd", "1"]));
        // lt 20 s scaled to 2 s; margin min(1 s, 9.3 s) = 1 s.
        assert_eq!(m.update_at(), Some(at(1)));
    }

    #[test]
    fn update_carries_only_changed_parameters() {
        let mut m = ClientRegistration::new(RegistrationConfig::new("d", 300, "</1/0>"));
        m.register(at(0));
        m.poll_request(at(0)).unwrap();
        m.handle_response(at(0), &created(&["rd", "1"]));
        m.set_lifetime(at(10), 20);
        let upd = m.poll_request(at(10)).unwrap();
        assert_eq!(uri_queries(&upd), vec!["lt=20"]);
        assert!(upd.payload.is_empty());
        m.handle_response(at(10), &response(ResponseType::Changed));
        assert_eq!(m.update_at(), Some(at(20)));
        m.set_objects(at(11), "</1/0>,</3/0>");
        let upd = m.poll_request(at(11)).unwrap();
        assert!(uri_queries(&upd).is_empty());
        assert_eq!(upd.payload, b"</1/0>,</3/0>");
    }

    #[test]
    fn refused_update_reregisters_and_failed_register_retries() {
        let mut m = ClientRegistration::new(RegistrationConfig::new("d", 300, "</1/0>"));
        m.register(at(0));
        m.poll_request(at(0)).unwrap();
        m.handle_response(at(0), &created(&["rd", "1"]));
        m.trigger_update(at(5));
        m.poll_request(at(5)).unwrap();
        let ev = m.handle_response(at(5), &response(ResponseType::NotFound));
        assert_eq!(
            ev,
            Some(RegistrationEvent::UpdateFailed {
                code: Some("4.04".into())
            })
        );
        let again = m.poll_request(at(5)).unwrap();
        assert_eq!(uri_path(&again), "rd");
        assert!(uri_queries(&again).contains(&"ep=d".to_string()));
        // The Register times out: retried after 60 s.
        assert_eq!(
            m.handle_failure(at(100)),
            Some(RegistrationEvent::RegisterFailed { code: None })
        );
        assert!(m.poll_request(at(100)).is_none());
        assert_eq!(m.poll_timeout(), Some(at(160)));
        m.handle_timeout(at(160));
        assert!(m.poll_request(at(160)).is_some());
    }

    #[test]
    fn deregister_sends_delete_to_the_location() {
        let mut m = ClientRegistration::new(RegistrationConfig::new("d", 300, "</1/0>"));
        m.register(at(0));
        m.poll_request(at(0)).unwrap();
        m.handle_response(at(0), &created(&["rd", "x1"]));
        m.deregister(at(1));
        let del = m.poll_request(at(1)).unwrap();
        assert_eq!(
            del.header.code,
            coap_lite::MessageClass::Request(RequestType::Delete)
        );
        assert_eq!(uri_path(&del), "rd/x1");
        assert_eq!(
            m.handle_response(at(1), &response(ResponseType::Deleted)),
            Some(RegistrationEvent::Deregistered)
        );
        assert_eq!(m.state(), &RegistrationState::Deregistered);
        assert_eq!(m.poll_timeout(), None);
    }
}
