//! The agent's LwM2M client logic, sans-IO: registration with the server,
//! and the device management operations the server sends.
//!
//! [`Client`] owns the rig-proto CoAP [`Endpoint`] and the [`ObjectStore`].
//! The driver (see `driver.rs`) feeds it datagrams, console commands and the
//! time, and drains datagrams, console lines and log lines:
//!
//! ```text
//!   handle_datagram(now, peer, bytes) ─┐            ┌─► poll_transmit()  → socket
//!   handle_command(now, cmd)          ─┼─► Client ──┼─► poll_output()    → stdout
//!   handle_timeout(now)               ─┘            ├─► poll_log()       → stderr
//!                                                    └─► poll_timeout()   → timer
//! ```
//!
//! Protocol timers of the registration (the Update schedule, the disable
//! timeout, the retry delay) are divided by `--time-scale`; CoAP's own
//! retransmission timers are not (the endpoint keeps RFC 7252's defaults).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use rig_proto::coap::{
    self, CoapOption, Endpoint, Event, IncomingId, Method, Packet, RequestId, ResponseCode, message,
};
use rig_proto::content::{self, ContentFormat};
use rig_proto::link::{self, Link, LinkParam};
use rig_proto::path::ObjectPath;
use rig_proto::registration::{
    ClientRegistration, RegistrationConfig, RegistrationEvent, RegistrationState,
};
use rig_proto::time::Instant;

use crate::config::{AgentConfig, Deviation};
use crate::console::{Command, Output};
use crate::objects::{ObjectStore, Refusal};
use crate::observe::Observations;

mod core;
mod dm;
mod multi;

/// What follows a De-register.
#[derive(Clone, Copy, Debug, PartialEq)]
enum AfterDeregister {
    /// Stay off for the disable timeout, then register again (`/1/x/4`).
    Disable,
    /// Stop (console `quit`).
    Quit,
}

/// What a Write on the Server object changed that an Update must carry.
#[derive(Clone, Debug, Default, PartialEq)]
struct UpdateParams {
    lifetime: bool,
    binding: bool,
}

/// The client; see the module doc.
pub struct Client {
    cfg: AgentConfig,
    server: SocketAddr,
    store: ObjectStore,
    coap: Endpoint,
    seed: u64,
    /// rig-proto's registration state machine (Register, Update schedule, De-register).
    reg: ClientRegistration,
    /// The CoAP request carrying the registration machine's request in flight.
    reg_request: Option<RequestId>,
    /// What to do once the De-register in flight completes.
    after_deregister: Option<AfterDeregister>,
    /// Disabled by `/1/x/4` until then (register again at that time).
    disabled_until: Option<Instant>,
    stopped: bool,
    /// Queue mode: when the agent is reachable (`queue.rs`).
    queue: crate::queue::QueueMode,
    outputs: VecDeque<Output>,
    logs: VecDeque<String>,
    /// Datagrams of a CoAP endpoint dropped by a reboot, still to be sent
    /// (the 2.04 answering Execute /3/0/4 must still go out).
    leftover: VecDeque<(SocketAddr, Vec<u8>)>,
    /// The `quit` command is waiting for the De-register to finish.
    quitting: bool,
    /// Active observations and written notification attributes (`observe.rs`).
    observations: Observations,
    /// The time of the input being handled (for Write-Attributes).
    last_now: Instant,
    /// A bootstrap is due (Execute `/1/x/9`, or a failed Register with a
    /// bootstrap account); the driver takes it with [`Client::take_bootstrap_request`].
    bootstrap_requested: bool,
    /// The path lists of Observe-Composite observations (see `dm.rs`).
    composite: Vec<(rig_proto::coap::ObservationId, Vec<ObjectPath>)>,
    /// Object 5, firmware update (`fota/`).
    fota: crate::fota::Fota,
    /// Console `send`s that came while the Register was in flight; they go
    /// out once it succeeds (and fail if it does not).
    sends_after_register: Vec<Vec<String>>,
    /// Connectivity Statistics collection (`client/core.rs`).
    stats: core::Stats,
    /// The second server of `--server2` (`client/multi.rs`).
    second: Option<multi::Second>,
}

impl Client {
    /// A client for `cfg`, talking to `server`. `seed` seeds CoAP message ids and tokens.
    pub fn new(cfg: AgentConfig, server: SocketAddr, seed: u64) -> Client {
        let cfg = crate::queue::normalize(cfg);
        let queue = crate::queue::QueueMode::new(&cfg);
        let mut store = ObjectStore::factory(&cfg);
        let mut fota = crate::fota::Fota::new(&cfg);
        fota.install(&mut store);
        let reg = ClientRegistration::new(registration_config(&cfg, &store));
        let second = match cfg.server2_addr() {
            Some(Ok(addr)) => Some(multi::Second::new(
                addr,
                ClientRegistration::new(registration_config(&cfg, &store)),
                cfg.time_scale_u32(),
            )),
            _ => None,
        };
        Client {
            second,
            coap: Endpoint::new(coap::Config::default(), seed),
            observations: Observations::new(cfg.time_scale_u32()),
            last_now: Instant::ZERO,
            seed,
            cfg,
            server,
            store,
            reg,
            reg_request: None,
            after_deregister: None,
            disabled_until: None,
            stopped: false,
            queue,
            outputs: VecDeque::new(),
            logs: VecDeque::new(),
            leftover: VecDeque::new(),
            quitting: false,
            bootstrap_requested: false,
            composite: Vec::new(),
            fota,
            sends_after_register: Vec::new(),
            stats: core::Stats::default(),
        }
    }

    /// Whether a bootstrap is due (then the driver leaves this client and
    /// runs the bootstrap); clears the request.
    pub fn take_bootstrap_request(&mut self) -> bool {
        std::mem::take(&mut self.bootstrap_requested)
    }

    /// Starts the client: prints `ready` and sends the first Register.
    pub fn start(&mut self, now: Instant) {
        self.outputs.push_back(Output::Ready);
        self.start_announced(now);
    }

    /// Starts the client when `ready` was already printed (by the driver,
    /// before a DTLS handshake, so a refused handshake is seen as the DUT's
    /// behaviour and not as a DUT that never came up): sends the first Register.
    pub fn start_announced(&mut self, now: Instant) {
        self.reg.register(now);
        self.second_register(now);
        self.pump(now);
    }

    /// The object store (for tests and `status`).
    pub fn store(&self) -> &ObjectStore {
        &self.store
    }

    /// True once the client has stopped (after `quit`).
    pub fn is_finished(&self) -> bool {
        self.stopped
    }

    // ---- outputs --------------------------------------------------------

    /// The next datagram to send: `(destination, bytes)`.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        if let Some(t) = self.leftover.pop_front() {
            self.core_count(true, t.1.len());
            return Some(t);
        }
        let t = self.coap.poll_transmit().map(|t| (t.peer, t.payload));
        if let Some((_, bytes)) = &t {
            self.queue.on_traffic(self.last_now);
            self.core_count(true, bytes.len());
        }
        t
    }

    /// The next console line to print on stdout.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The next log line for stderr.
    pub fn poll_log(&mut self) -> Option<String> {
        self.logs.pop_front()
    }

    /// When [`Client::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.coap.poll_timeout(),
            self.reg.poll_timeout(),
            self.disabled_until,
            self.observations.poll_timeout(),
            self.queue.poll_timeout(),
            self.fota.poll_timeout(),
            self.core_poll_timeout(),
            self.second_poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ---- inputs ---------------------------------------------------------

    /// A datagram arrived.
    pub fn handle_datagram(&mut self, now: Instant, peer: SocketAddr, bytes: &[u8]) {
        self.last_now = now;
        // A request (code class 0, not empty) reaches a sleeping queue-mode
        // client's radio only in its RX window.
        let request = bytes.get(1).is_some_and(|c| *c != 0 && c >> 5 == 0);
        if request && self.queue.drops_request(now) {
            self.log(format!("queue mode: asleep, dropped a request from {peer}"));
            return;
        }
        self.queue.on_traffic(now);
        self.core_count(false, bytes.len());
        // A Block1 PUT (code 0.03) from the server: Object 5 sees each block
        // of a push to /5/0/0 before the endpoint reassembles the Write.
        if peer == self.server && bytes.get(1) == Some(&3) {
            self.fota_block1(now, bytes);
        }
        self.coap.handle_datagram(now, peer, bytes);
        self.process(now);
        self.pump(now);
    }

    /// The deadline from [`Client::poll_timeout`] passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        if let Some(line) = self.queue.handle_timeout(now) {
            self.log(line);
        }
        self.coap.handle_timeout(now);
        self.process(now);
        if !self.cfg.deviates(Deviation::NoPeriodicUpdate) {
            self.reg.handle_timeout(now);
        }
        if self.disabled_until.is_some_and(|t| t <= now) {
            self.disabled_until = None;
            self.log("disable timeout over: registering again".into());
            self.reg.register(now);
        }
        self.core_timeout(now);
        self.second_timeout(now);
        self.observe_timeout(now);
        if self.second.is_some() {
            self.swap_second();
            self.observe_timeout(now);
            self.swap_second();
        }
        self.pump(now);
    }

    /// A console command.
    pub fn handle_command(&mut self, now: Instant, cmd: Command) {
        self.last_now = now;
        match cmd {
            Command::Update => match self.reg.state() {
                RegistrationState::Registered => {
                    self.outputs.push_back(Output::Ok("update"));
                    self.reg.trigger_update(now);
                }
                RegistrationState::Idle | RegistrationState::Deregistered if !self.stopped => {
                    self.outputs.push_back(Output::Ok("update"));
                    self.disabled_until = None;
                    self.reg.register(now);
                }
                _ => self.outputs.push_back(Output::Error(
                    "update".into(),
                    format!("busy ({})", self.state_name()),
                )),
            },
            Command::Reboot => {
                self.outputs.push_back(Output::Ok("reboot"));
                self.reboot(now, false);
            }
            Command::FactoryReset => {
                self.outputs.push_back(Output::Ok("factory-reset"));
                self.reboot(now, true);
            }
            Command::Status => {
                let lt = self.lifetime_s();
                let line = match self.reg.state() {
                    RegistrationState::Registered => {
                        format!("registered /{} lt={lt}", self.reg.location().join("/"))
                    }
                    _ => format!("{} lt={lt}", self.state_name()),
                };
                self.outputs.push_back(Output::Status(line));
                self.outputs.push_back(Output::Ok("status"));
            }
            Command::Send(paths) => self.dm_send(now, &paths),
            Command::Quit => {
                self.quitting = true;
                match self.reg.state() {
                    RegistrationState::Registered | RegistrationState::Deregistering => {
                        self.after_deregister = Some(AfterDeregister::Quit);
                        self.reg.deregister(now);
                    }
                    _ => self.stop(),
                }
            }
        }
        self.pump(now);
    }

    // ---- registration ---------------------------------------------------

    fn state_name(&self) -> &'static str {
        if self.stopped {
            return "stopped";
        }
        if self.disabled_until.is_some() {
            return "disabled";
        }
        match self.reg.state() {
            RegistrationState::Idle | RegistrationState::Registering => "registering",
            RegistrationState::Registered => "registered",
            RegistrationState::Deregistering => "deregistering",
            RegistrationState::Deregistered => "deregistered",
        }
    }

    fn binding(&self) -> String {
        self.store
            .get_str(&ObjectPath::resource(1, 0, 7))
            .unwrap_or("U")
            .to_string()
    }

    fn lifetime_s(&self) -> u64 {
        self.store
            .get_u64(&ObjectPath::resource(1, 0, 1))
            .unwrap_or(u64::from(self.cfg.lifetime))
    }

    /// Sends whatever the registration machine has queued.
    fn pump(&mut self, now: Instant) {
        self.fota_pump(now);
        self.second_pump(now);
        if self.reg_request.is_some() {
            return;
        }
        let Some(mut req) = self.reg.poll_request(now) else {
            return;
        };
        if self.cfg.deviates(Deviation::NoLwm2mVersion) {
            let queries: Vec<String> = message::uri_queries(&req)
                .into_iter()
                .filter(|q| !q.starts_with("lwm2m="))
                .collect();
            req.clear_option(CoapOption::UriQuery);
            for q in &queries {
                message::add_uri_query(&mut req, q);
            }
        }
        if self.cfg.deviates(Deviation::RegisterWrongContentFormat)
            && message::uri_path(&req) == "rd"
        {
            message::set_uint_option(
                &mut req,
                CoapOption::ContentFormat,
                u32::from(ContentFormat::Text.as_u16()),
            );
        }
        let line = describe(&req);
        match self.coap.send_request(now, self.server, req) {
            Ok(id) => {
                self.log(format!("-> {line}"));
                self.reg_request = Some(id);
            }
            Err(e) => {
                self.log(format!("cannot send {line}: {e}"));
                if let Some(ev) = self.reg.handle_failure(now) {
                    self.on_registration_event(now, ev);
                }
            }
        }
    }

    fn on_registration_event(&mut self, now: Instant, ev: RegistrationEvent) {
        match ev {
            RegistrationEvent::Registered { location } => {
                self.outputs
                    .push_back(Output::Registered(format!("/{}", location.join("/"))));
                for paths in std::mem::take(&mut self.sends_after_register) {
                    self.dm_send(now, &paths);
                }
            }
            RegistrationEvent::Updated => self.outputs.push_back(Output::Updated),
            RegistrationEvent::Deregistered => {
                self.outputs.push_back(Output::Deregistered);
                match self.after_deregister.take() {
                    Some(AfterDeregister::Quit) => self.stop(),
                    Some(AfterDeregister::Disable) if self.quitting => self.stop(),
                    Some(AfterDeregister::Disable) => {
                        let timeout = self
                            .store
                            .get_u64(&ObjectPath::resource(1, 0, 5))
                            .unwrap_or(86_400);
                        let off = self.cfg.scaled(Duration::from_secs(timeout));
                        self.log(format!("disabled for {:.1} s", off.as_secs_f64()));
                        self.disabled_until = Some(now + off);
                    }
                    None => {}
                }
            }
            RegistrationEvent::RegisterFailed { code } => {
                self.outputs.push_back(Output::RegistrationFailed(format!(
                    "Register: {}",
                    code.unwrap_or_else(|| "no response".into())
                )));
                for _ in std::mem::take(&mut self.sends_after_register) {
                    self.outputs.push_back(Output::Error(
                        "send".into(),
                        "not registered (the Register failed)".into(),
                    ));
                }
                // Fall back to the bootstrap server (ETS int-7).
                self.bootstrap_requested |= self.cfg.bootstrap_uri.is_some();
            }
            RegistrationEvent::UpdateFailed { code } => {
                self.outputs.push_back(Output::RegistrationFailed(format!(
                    "Update: {}; registering again",
                    code.unwrap_or_else(|| "no response".into())
                )));
                if self.cfg.deviates(Deviation::IgnoreUpdateNotFound) {
                    // Test only: forget the Register rig-proto queued.
                    self.reg = ClientRegistration::new(registration_config(&self.cfg, &self.store));
                }
            }
        }
    }

    fn stop(&mut self) {
        self.stopped = true;
        self.disabled_until = None;
        if self.quitting {
            self.outputs.push_back(Output::Ok("quit"));
            self.quitting = false;
        }
    }

    /// Reboot (or factory reset): drop every CoAP exchange and the
    /// registration, as a power cycle would, and register afresh.
    fn reboot(&mut self, now: Instant, factory: bool) {
        self.log(if factory {
            "factory reset".into()
        } else {
            "reboot".into()
        });
        if factory {
            self.store = ObjectStore::factory(&self.cfg);
            self.fota.install(&mut self.store);
        }
        while let Some(t) = self.coap.poll_transmit() {
            self.leftover.push_back((t.peer, t.payload));
        }
        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.coap = Endpoint::new(coap::Config::default(), self.seed);
        self.reg = ClientRegistration::new(registration_config(&self.cfg, &self.store));
        self.reg_request = None;
        self.after_deregister = None;
        self.disabled_until = None;
        self.observations.clear(factory);
        self.composite.clear();
        self.reg.register(now);
        self.second_register(now);
    }

    /// The Content-Format of a Write or Create on `path`, or the error
    /// response it calls for (a missing one is logged).
    fn format_of(
        &mut self,
        req: &Packet,
        op: &str,
        path: &ObjectPath,
    ) -> Result<ContentFormat, ResponseCode> {
        let format = dm::request_format(req);
        if format == Err(ResponseCode::BadRequest) {
            self.log(format!("{op} on {path} without Content-Format"));
        }
        format
    }

    fn log(&mut self, line: String) {
        self.logs.push_back(line);
    }

    // ---- events ---------------------------------------------------------

    fn process(&mut self, now: Instant) {
        while let Some(event) = self.coap.poll_event() {
            match event {
                Event::Request { id, peer, request } => self.on_request(now, id, peer, request),
                Event::Response { id, response, .. } => self.on_response(now, id, Ok(response)),
                Event::RequestTimedOut { id } => {
                    self.on_response(now, id, Err("no response (timed out)".into()))
                }
                Event::Reset { id } => {
                    self.on_response(now, id, Err("the server answered with a Reset".into()))
                }
                Event::TransferFailed { id, error } => {
                    self.on_response(now, id, Err(format!("block-wise transfer failed: {error}")))
                }
                Event::Malformed { peer, error } => {
                    self.log(format!("malformed datagram from {peer}: {error}"))
                }
                Event::ResponseFailed { id, reset } => self.log(format!(
                    "separate response {} {}",
                    id.0,
                    if reset { "reset" } else { "not acknowledged" }
                )),
                Event::ObservationCancelled { id, reason, .. } => {
                    let second = self
                        .second
                        .as_mut()
                        .is_some_and(|s| s.observations.cancel(id));
                    if self.observations.cancel(id) || second {
                        self.log(format!("observation {} cancelled ({reason:?})", id.0));
                    }
                }
                Event::ResponseBlock { .. } | Event::Notification { .. } => {}
            }
            self.pump(now);
        }
    }

    fn on_response(&mut self, now: Instant, id: RequestId, result: Result<Packet, String>) {
        if self.second_response(now, id, &result) {
            return;
        }
        if self.reg_request != Some(id) {
            return self.log(format!("<- late answer to request {}", id.0));
        }
        self.reg_request = None;
        let event = match &result {
            Ok(p) => {
                let code = message::response_code(p).map(code_name).unwrap_or("?");
                self.log(format!(
                    "<- {} {code}",
                    message::code_string(u8::from(p.header.code))
                ));
                self.reg.handle_response(now, p)
            }
            Err(e) => {
                self.log(format!("<- {e}"));
                self.reg.handle_failure(now)
            }
        };
        if let Some(ev) = event {
            self.on_registration_event(now, ev);
        }
    }

    fn on_request(&mut self, now: Instant, id: IncomingId, peer: SocketAddr, request: Packet) {
        let line = describe(&request);
        // A request of the second server sees its own observations.
        let second = self.is_second(peer);
        if second {
            self.swap_second();
        }
        let (response, action) = if peer != self.server && !second {
            (message::response(ResponseCode::Unauthorized), None)
        } else {
            self.dispatch(&request)
        };
        let code = message::response_code(&response)
            .map(code_name)
            .unwrap_or("?");
        self.log(format!("<- {line} from {peer} -> {code}"));
        self.answer(now, id, &request, response, &line);
        if let Some(action) = action {
            self.act(now, action);
        }
        if second {
            self.swap_second();
        }
        self.pump(now);
    }

    /// Decides the answer to a server request, and what to do after answering.
    fn dispatch(&mut self, req: &Packet) -> (Packet, Option<Action>) {
        let uri = message::uri_path(req);
        let path = match ObjectPath::parse(&format!("/{uri}")) {
            Ok(p) => p,
            Err(_) => return (message::response(ResponseCode::NotFound), None),
        };
        let method = match req.header.code {
            coap::MessageClass::Request(m) => m,
            _ => return (message::response(ResponseCode::BadRequest), None),
        };
        let has_query = message::has_option(req, CoapOption::UriQuery);
        let now = self.last_now;
        if let Some(answer) = self.fota.intercept(now, req, &path, &mut self.store) {
            return (answer, None);
        }
        match method {
            Method::Get => (self.read(req, &path), None),
            Method::Put if has_query && req.payload.is_empty() => {
                (self.write_attributes(req, &path), None)
            }
            Method::Put => self.write(req, &path, true),
            Method::Post if path.resource_id().is_some() => self.execute(&path),
            Method::Post if path.instance_id().is_some() => self.write(req, &path, false),
            Method::Fetch if path.is_root() => (self.dm_fetch(req), None),
            Method::IPatch if path.is_root() => self.dm_ipatch(req),
            Method::Post if path.level() == 1 => self.core_create(req, &path),
            Method::Delete if path.level() == 2 => self.core_delete(&path),
            Method::Post | Method::Delete => {
                (message::response(ResponseCode::MethodNotAllowed), None)
            }
            _ => (message::response(ResponseCode::MethodNotAllowed), None),
        }
    }

    fn read(&mut self, req: &Packet, path: &ObjectPath) -> Packet {
        let accept = match message::uint_option(req, CoapOption::Accept) {
            None => None,
            Some(Ok(n)) => match u16::try_from(n).ok().and_then(ContentFormat::from_u16) {
                Some(cf) => Some(cf),
                None => return message::response(ResponseCode::NotAcceptable),
            },
            Some(Err(())) => return message::response(ResponseCode::BadOption),
        };
        if let Some(resp) = self.dm_read_deviation(path, accept) {
            return resp;
        }
        if accept == Some(ContentFormat::Link) {
            return match self.store.discover(path) {
                Ok(mut links) => {
                    self.dm_discover_attributes(path, &mut links);
                    let mut resp = message::response(ResponseCode::Content);
                    message::set_uint_option(
                        &mut resp,
                        CoapOption::ContentFormat,
                        u32::from(ContentFormat::Link.as_u16()),
                    );
                    resp.payload = link::format(&links).into_bytes();
                    resp
                }
                Err(r) => self.refused(r),
            };
        }
        let records = match self.store.read(path) {
            Ok(r) => r,
            Err(r) => return self.refused(r),
        };
        let single = path.resource_id().is_some()
            && (path.resource_instance_id().is_some()
                || !self
                    .store
                    .defs()
                    .resource_at(path)
                    .is_some_and(|d| d.multiple));
        let format = accept.unwrap_or(if single {
            match self.store.kind_at(path) {
                Some(rig_proto::object::ResourceType::Opaque) => ContentFormat::Opaque,
                _ => ContentFormat::Text,
            }
        } else {
            ContentFormat::Tlv
        });
        match content::encode(format, path, &records, self.store.defs()) {
            Ok(bytes) => {
                let mut resp = message::response(ResponseCode::Content);
                message::set_uint_option(
                    &mut resp,
                    CoapOption::ContentFormat,
                    u32::from(format.as_u16()),
                );
                resp.payload = bytes;
                resp
            }
            Err(e) => {
                self.log(format!("cannot encode {path} as {format}: {e}"));
                message::response(ResponseCode::NotAcceptable)
            }
        }
    }

    fn write(
        &mut self,
        req: &Packet,
        path: &ObjectPath,
        replace: bool,
    ) -> (Packet, Option<Action>) {
        let format = match self.format_of(req, "Write", path) {
            Ok(cf) => cf,
            Err(code) => return (message::response(code), None),
        };
        let records = match content::decode(format, path, &req.payload, self.store.defs()) {
            Ok(r) => r,
            Err(e) => {
                self.log(format!("Write on {path}: cannot decode {format}: {e}"));
                return (message::response(ResponseCode::BadRequest), None);
            }
        };
        if let Some(answer) = self.dm_write_deviation(path, format, &records, replace) {
            return answer;
        }
        match self.store.write(path, records, replace) {
            Ok(changed) => {
                let lifetime = ObjectPath::resource(1, 0, 1);
                let binding = ObjectPath::resource(1, 0, 7);
                let mut params = UpdateParams::default();
                for p in &changed {
                    if p.instance_path() == Some(ObjectPath::instance(1, 0)) {
                        params.lifetime |= *p == lifetime;
                        params.binding |= *p == binding;
                    }
                }
                let action = (params != UpdateParams::default()
                    && !self.dm_suppress_update(replace))
                .then_some(Action::UpdateWith(params));
                (message::response(ResponseCode::Changed), action)
            }
            Err(r) => (self.refused(r), None),
        }
    }

    fn execute(&mut self, path: &ObjectPath) -> (Packet, Option<Action>) {
        if let Err(r) = self.store.check_execute(path) {
            return (self.refused(r), None);
        }
        let ids = path.ids();
        let action = match (ids[0], ids[2]) {
            (1, 4) => Some(Action::Disable),
            (1, 8) => Some(Action::UpdateWith(UpdateParams::default())),
            (1, 9) => Some(Action::Bootstrap),
            (3, 4) => (!self.dm_suppress_reboot()).then_some(Action::Reboot),
            (3, 5) => Some(Action::FactoryReset),
            _ => {
                self.core_execute(path);
                None
            }
        };
        // The store only accepts the executables listed above.
        let code = if (ids[0], ids[2]) == (1, 8) && self.cfg.deviates(Deviation::TriggerWrongCode) {
            ResponseCode::Content
        } else {
            ResponseCode::Changed
        };
        (message::response(code), action)
    }

    fn refused(&mut self, r: Refusal) -> Packet {
        self.log(format!("refused: {}", r.reason));
        message::response(r.code)
    }

    fn act(&mut self, now: Instant, action: Action) {
        match action {
            Action::UpdateWith(params)
                if params.lifetime
                    && self.cfg.deviates(Deviation::ReregisterOnLifetimeExtension)
                    && self.lifetime_s() > u64::from(self.reg.config().lifetime) =>
            {
                self.reg = ClientRegistration::new(registration_config(&self.cfg, &self.store));
                self.reg.register(now);
            }
            Action::UpdateWith(params) => {
                if params.lifetime && !self.cfg.deviates(Deviation::IgnoreLifetimeWrite) {
                    let lt = u32::try_from(self.lifetime_s()).unwrap_or(u32::MAX);
                    self.reg.set_lifetime(now, lt);
                }
                if params.binding {
                    let b = self.binding();
                    self.reg.set_binding(now, &b);
                }
                if !params.lifetime && !params.binding {
                    if self.cfg.deviates(Deviation::TriggerUpdateWithParams) {
                        // set_binding always marks `b` for the next Update.
                        self.reg.set_binding(now, &self.binding());
                    } else {
                        self.reg.trigger_update(now);
                    }
                }
            }
            Action::Disable if self.cfg.deviates(Deviation::IgnoreDisable) => {}
            Action::Disable => {
                self.after_deregister = Some(AfterDeregister::Disable);
                self.reg.deregister(now);
            }
            Action::Reboot => self.reboot(now, false),
            Action::FactoryReset => self.reboot(now, true),
            Action::Bootstrap => {
                self.bootstrap_requested = !self.cfg.deviates(Deviation::IgnoreBootstrapTrigger)
            }
            Action::ObjectsChanged(path) => self.core_objects_changed(now, path),
        }
    }
}

/// What the client does after answering a server request.
#[derive(Clone, Debug, PartialEq)]
enum Action {
    /// Send an Update carrying these parameters (none: Registration Update Trigger).
    UpdateWith(UpdateParams),
    /// De-register and stay off for the disable timeout (`/1/x/4`).
    Disable,
    /// Reboot (`/3/0/4`).
    Reboot,
    /// Factory reset (`/3/0/5`).
    FactoryReset,
    /// Bootstrap-Request Trigger (`/1/x/9`): bootstrap again.
    Bootstrap,
    /// An instance was created or deleted (`client/core.rs`).
    ObjectsChanged(ObjectPath),
}

fn code_name(c: ResponseCode) -> &'static str {
    match c {
        ResponseCode::Created => "Created",
        ResponseCode::Deleted => "Deleted",
        ResponseCode::Changed => "Changed",
        ResponseCode::Content => "Content",
        ResponseCode::BadRequest => "Bad Request",
        ResponseCode::Unauthorized => "Unauthorized",
        ResponseCode::NotFound => "Not Found",
        ResponseCode::MethodNotAllowed => "Method Not Allowed",
        ResponseCode::NotAcceptable => "Not Acceptable",
        ResponseCode::UnsupportedContentFormat => "Unsupported Content-Format",
        ResponseCode::NotImplemented => "Not Implemented",
        _ => "",
    }
}

/// `POST /rd?ep=..&lt=..` for logs.
fn describe(p: &Packet) -> String {
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
    if !p.payload.is_empty() {
        s.push_str(&format!(" ({} bytes)", p.payload.len()));
    }
    s
}

/// The registration machine's configuration from the command line and the
/// Server object (lifetime and binding as currently stored).
fn registration_config(cfg: &AgentConfig, store: &ObjectStore) -> RegistrationConfig {
    let lifetime = store
        .get_u64(&ObjectPath::resource(1, 0, 1))
        .unwrap_or(u64::from(cfg.lifetime));
    let mut rc = RegistrationConfig::new(
        &cfg.endpoint,
        u32::try_from(lifetime).unwrap_or(u32::MAX),
        &object_links(store, cfg.deviates(Deviation::ListSecurityObject)),
    );
    rc.binding = Some(
        store
            .get_str(&ObjectPath::resource(1, 0, 7))
            .unwrap_or("U")
            .to_string(),
    );
    rc.time_scale = cfg.time_scale_u32();
    crate::queue::configure(cfg, &mut rc);
    rc
}

/// The registration's object list: every instance except the Security
/// object's, with `ver` on objects whose version is not 1.0 (LwM2M 1.1 Core
/// TS §6.2.1), in rig-proto's link format.
fn object_links(store: &ObjectStore, list_security: bool) -> String {
    let mut links = Vec::new();
    let mut last_object = None;
    // Objects served without an instance are listed as `</o>` in id order
    // (only with `--objects`: a Portfolio whose instances were deleted).
    let mut entries: Vec<(u16, Option<u16>)> =
        store.instances().map(|(o, i)| (o, Some(i))).collect();
    entries.extend(store.empty_objects().into_iter().map(|o| (o, None)));
    entries.sort();
    for (o, i) in entries {
        if o == crate::objects::SECURITY && !list_security {
            continue;
        }
        if last_object != Some(o) {
            last_object = Some(o);
            let ver = store.object_version(o);
            if ver != "1.0" {
                let mut l = Link::path(ObjectPath::object(o));
                l.params.push(LinkParam {
                    name: "ver".into(),
                    value: Some(ver.to_string()),
                    quoted: false,
                });
                links.push(l);
            }
        }
        match i {
            Some(i) => links.push(Link::path(ObjectPath::instance(o, i))),
            None if store.object_version(o) == "1.0" => {
                links.push(Link::path(ObjectPath::object(o)))
            }
            None => {}
        }
    }
    link::format(&links)
}

// ---- Firmware update (see `fota/`) ----------------------------------------

impl Client {
    /// Collects Object 5's events: console lines, logs, and notifications
    /// of the `/5/0` resources that changed.
    fn fota_pump(&mut self, now: Instant) {
        let changed = self.fota.pump(now, &mut self.store);
        while let Some(line) = self.fota.poll_line() {
            self.outputs.push_back(Output::Fota(line));
        }
        while let Some(line) = self.fota.poll_log() {
            self.logs.push_back(line);
        }
        if !changed.is_empty() {
            self.values_changed(now, &changed);
        }
    }

    /// Passes a block of a Block1 Write to `/5/0/0` to Object 5.
    fn fota_block1(&mut self, now: Instant, bytes: &[u8]) {
        let Ok(p) = message::parse(bytes) else {
            return;
        };
        if message::uri_path(&p) != "5/0/0" {
            return;
        }
        if let Some(Ok(b)) = coap::BlockValue::from_packet(&p, CoapOption::Block1) {
            self.fota.push_block(now, b.num, b.more, &mut self.store);
            self.fota_pump(now);
        }
    }
}

// ---- Observe and Write-Attributes (see `observe.rs`) ----------------------

impl Client {
    /// The Server object's default pmin and pmax (`/1/0/2`, `/1/0/3`).
    fn default_periods(&self) -> (Option<u32>, Option<u32>) {
        let get = |r| {
            self.store
                .get_u64(&ObjectPath::resource(1, 0, r))
                .and_then(|v| u32::try_from(v).ok())
        };
        (get(2), get(3))
    }

    /// The attribute machine's sample of `path`: a number for a numeric
    /// resource, "changed" for anything else.
    fn sample(&self, path: &ObjectPath) -> rig_proto::attributes::Sample {
        use rig_proto::attributes::Sample;
        use rig_proto::value::Value;
        match self.store.get(path) {
            Some(Value::Integer(v)) => Sample::Number(*v as f64),
            Some(Value::UnsignedInteger(v)) => Sample::Number(*v as f64),
            Some(Value::Float(v)) => Sample::Number(*v),
            _ => Sample::Changed,
        }
    }

    /// Write-Attributes (`PUT` with a query and no payload).
    fn write_attributes(&mut self, req: &Packet, path: &ObjectPath) -> Packet {
        if let Some(resp) = self.dm_write_attributes_guard(path) {
            return resp;
        }
        let queries = message::uri_queries(req);
        let attrs = match rig_proto::link::Attributes::from_query(&queries) {
            Ok(a) => a,
            Err((i, why)) => {
                self.log(format!(
                    "Write-Attributes on {path}: query {}: {why}",
                    i + 1
                ));
                return message::response(ResponseCode::BadRequest);
            }
        };
        if self.store.defs().resource_at(path).is_none() && path.resource_id().is_some()
            || path.is_root()
        {
            return message::response(ResponseCode::NotFound);
        }
        let now = self.last_now;
        let defaults = self.default_periods();
        match self
            .observations
            .write_attributes(now, *path, &attrs, defaults)
        {
            Ok(()) => {
                self.dm_composite_attributes_changed(now, path);
                message::response(ResponseCode::Changed)
            }
            Err(why) => {
                self.log(format!("Write-Attributes on {path}: {why}"));
                message::response(ResponseCode::BadRequest)
            }
        }
    }

    /// Sends the answer to a server request: a 2.05 to a GET with Observe=0
    /// registers the observation; a successful Write makes observations of
    /// the written path re-evaluate.
    fn answer(
        &mut self,
        now: Instant,
        id: IncomingId,
        request: &Packet,
        response: Packet,
        line: &str,
    ) {
        let observe = matches!(
            request.header.code,
            coap::MessageClass::Request(Method::Get | Method::Fetch)
        ) && matches!(
            message::uint_option(request, CoapOption::Observe),
            Some(Ok(0))
        );
        let success = message::response_code(&response)
            .is_some_and(|c| matches!(c, ResponseCode::Content | ResponseCode::Changed));
        let path = ObjectPath::parse(&format!("/{}", message::uri_path(request))).ok();
        if observe
            && success
            && let Some(path) = path
        {
            let format = message::uint_option(&response, CoapOption::ContentFormat)
                .and_then(Result::ok)
                .and_then(|n| u16::try_from(n).ok())
                .and_then(ContentFormat::from_u16)
                .unwrap_or(ContentFormat::Text);
            match self.coap.respond_observe(now, id, response) {
                Ok(oid) => {
                    let attrs = if path.is_root() {
                        self.dm_composite_start(oid, request)
                    } else {
                        self.observations.effective(path, self.default_periods())
                    };
                    let attrs = self.dm_observe_attributes(attrs);
                    let sample = self.sample(&path);
                    self.observations
                        .start(now, oid, path, format, attrs, sample);
                    self.log(format!(
                        "observation {} of {path} (pmin {:?}, pmax {:?})",
                        oid.0, attrs.pmin, attrs.pmax
                    ));
                }
                Err(e) => self.log(format!("cannot answer {line}: {e}")),
            }
            return;
        }
        let write = matches!(
            request.header.code,
            coap::MessageClass::Request(Method::Put | Method::Post)
        ) && !request.payload.is_empty();
        if let Err(e) = self.coap.respond(now, id, response) {
            self.log(format!("cannot answer {line}: {e}"));
        }
        if write
            && success
            && let Some(path) = path
        {
            self.values_changed(now, &[path]);
        }
    }

    /// Values changed at these paths (a server Write or a console `set`).
    pub(crate) fn values_changed(&mut self, now: Instant, paths: &[ObjectPath]) {
        let samples: Vec<(ObjectPath, rig_proto::attributes::Sample)> = self
            .observations
            .paths()
            .into_iter()
            .map(|p| (p, self.sample(&p)))
            .collect();
        self.observations.changed(now, paths, |p| {
            samples
                .iter()
                .find(|(q, _)| q == p)
                .map_or(rig_proto::attributes::Sample::Changed, |(_, s)| *s)
        });
        self.send_notifications(now);
    }

    /// Runs the observations' timers and sends what is due.
    fn observe_timeout(&mut self, now: Instant) {
        self.last_now = now;
        let samples: Vec<(ObjectPath, rig_proto::attributes::Sample)> = self
            .observations
            .paths()
            .into_iter()
            .map(|p| (p, self.sample(&p)))
            .collect();
        self.observations.handle_timeout(now, |p| {
            samples
                .iter()
                .find(|(q, _)| q == p)
                .map_or(rig_proto::attributes::Sample::Changed, |(_, s)| *s)
        });
        self.send_notifications(now);
    }

    /// Encodes and sends every due notification (NON, as Anjay's default).
    fn send_notifications(&mut self, now: Instant) {
        for due in self.observations.take_due() {
            let records = match self.dm_notification_records(&due.path, due.id) {
                Ok(r) => r,
                Err(r) => {
                    self.log(format!("cannot read {} to notify: {}", due.path, r.reason));
                    continue;
                }
            };
            let payload = match content::encode(due.format, &due.path, &records, self.store.defs())
            {
                Ok(b) => b,
                Err(e) => {
                    self.log(format!("cannot encode {} as {}: {e}", due.path, due.format));
                    continue;
                }
            };
            let mut n = message::response(ResponseCode::Content);
            message::set_uint_option(
                &mut n,
                CoapOption::ContentFormat,
                u32::from(due.format.as_u16()),
            );
            n.payload = payload;
            let len = n.payload.len();
            match self.coap.notify(now, due.id, n, false) {
                Ok(()) => self.log(format!("-> notify {} ({len} bytes)", due.path)),
                Err(e) => self.log(format!("cannot notify {}: {e}", due.path)),
            }
        }
    }
}
