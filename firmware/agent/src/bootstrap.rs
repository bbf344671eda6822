//! The agent's bootstrap: its accounts (Security `/0`, Server `/1` and
//! Access Control `/2` instances, as data that survives a re-bootstrap) and
//! the client-initiated bootstrap session (LwM2M 1.1 TS §6.1), sans-IO.
//!
//! [`Accounts`] is what the factory provisioned (a bootstrap account in
//! `/0/1` with `--bootstrap-uri`, a server account in `/0/0` + `/1/0` unless
//! `--bootstrap-only`) and what bootstrap servers wrote since. The driver
//! asks it which server to register with ([`Accounts::server_account`]),
//! in the mode and with the credentials `/0/x/2..5` hold.
//!
//! [`BootstrapSession`] runs one bootstrap over rig-proto's
//! [`BootstrapClient`]: Bootstrap-Request, then it serves Bootstrap-Discover,
//! -Read (/1 and /2 only), -Write and -Delete on the accounts, and answers
//! Bootstrap-Finish after the consistency check (4.06 when no usable server
//! account exists). Same vocabulary as [`crate::client::Client`]:
//! `handle_*` in, `poll_*` out.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use rig_proto::bootstrap::{
    BootstrapClient, BootstrapEvent, BootstrapOperation, SecurityEntry, ServerEntry,
    check_consistency,
};
use rig_proto::coap::{
    self, CoapOption, Endpoint, Event, IncomingId, Packet, RequestId, ResponseCode, message,
};
use rig_proto::content::{self, ContentFormat};
use rig_proto::link::{self, Link, LinkParam, LinkTarget};
use rig_proto::object::Registry;
use rig_proto::path::ObjectPath;
use rig_proto::time::Instant;
use rig_proto::value::{Record, Value};

use crate::config::{AgentConfig, SecurityMode};

/// The objects a bootstrap server may write and delete.
const BOOTSTRAP_OBJECTS: [u16; 3] = [0, 1, 2];

/// How long a bootstrap may take from the accepted request to Finish (unscaled).
pub const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(60);

/// Security, Server and Access Control instances: `(object, instance)` → resource id → value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Accounts {
    instances: BTreeMap<(u16, u16), BTreeMap<u16, Value>>,
    /// Multiple-resource instances: `(object, instance, resource)` → instance → value.
    multi: BTreeMap<(u16, u16, u16), BTreeMap<u16, Value>>,
}

/// The server account the agent registers with, as `/0/x` and `/1/y` say.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerAccount {
    /// `/0/x/0`.
    pub uri: String,
    /// `/0/x/2` as the agent's mode.
    pub security: SecurityMode,
    /// `/0/x/3` (PSK identity, client public key or certificate).
    pub public: Vec<u8>,
    /// `/0/x/4` (server public key or certificate).
    pub server_public: Vec<u8>,
    /// `/0/x/5` (PSK key or private key).
    pub secret: Vec<u8>,
    /// `/0/x/10`.
    pub ssid: u16,
    /// `/1/y/1`.
    pub lifetime: u32,
    /// `/1/y/7`.
    pub binding: String,
}

fn int(v: Option<&Value>) -> Option<i64> {
    v.and_then(Value::as_i64)
}

fn bytes(v: Option<&Value>) -> Vec<u8> {
    match v {
        Some(Value::Opaque(b)) => b.clone(),
        Some(Value::String(s)) => s.clone().into_bytes(),
        _ => Vec::new(),
    }
}

impl Accounts {
    /// The factory configuration from the command line.
    pub fn factory(cfg: &AgentConfig) -> Accounts {
        let mut a = Accounts::default();
        if !cfg.bootstrap_only {
            let mode = match cfg.security {
                SecurityMode::Psk => 0,
                SecurityMode::Rpk => 1,
                SecurityMode::X509 => 2,
                SecurityMode::Nosec => 3,
            };
            let s = a.instances.entry((0, 0)).or_default();
            s.insert(0, Value::String(cfg.server.clone()));
            s.insert(1, Value::Boolean(false));
            s.insert(2, Value::Integer(mode));
            s.insert(10, Value::Integer(i64::from(cfg.ssid)));
            let v = a.instances.entry((1, 0)).or_default();
            v.insert(0, Value::Integer(i64::from(cfg.ssid)));
            v.insert(1, Value::Integer(i64::from(cfg.lifetime)));
            v.insert(6, Value::Boolean(false));
            v.insert(7, Value::String(cfg.binding.clone()));
        }
        if let Some(uri) = &cfg.bootstrap_uri {
            let s = a.instances.entry((0, 1)).or_default();
            s.insert(0, Value::String(uri.clone()));
            s.insert(1, Value::Boolean(true));
            let mode = if uri.starts_with("coaps://") { 0 } else { 3 };
            s.insert(2, Value::Integer(mode));
        }
        a
    }

    /// Whether `/0/x` is a bootstrap account.
    fn is_bootstrap(&self, o: u16, i: u16) -> bool {
        o == 0
            && self
                .instances
                .get(&(0, i))
                .and_then(|r| r.get(&1))
                .and_then(Value::as_bool)
                .unwrap_or(false)
    }

    /// The bootstrap account's URI, if there is one.
    pub fn bootstrap_uri(&self) -> Option<String> {
        self.instances
            .iter()
            .find(|((o, i), _)| self.is_bootstrap(*o, *i))
            .and_then(|(_, r)| r.get(&0))
            .and_then(|v| v.as_str().map(str::to_string))
    }

    fn security_entries(&self) -> Vec<SecurityEntry> {
        self.instances
            .iter()
            .filter(|((o, _), _)| *o == 0)
            .map(|((_, i), r)| SecurityEntry {
                instance: *i,
                uri: r.get(&0).and_then(|v| v.as_str()).unwrap_or("").to_string(),
                bootstrap: r.get(&1).and_then(Value::as_bool).unwrap_or(false),
                ssid: int(r.get(&10)).and_then(|v| u16::try_from(v).ok()),
            })
            .collect()
    }

    fn server_entries(&self) -> Vec<ServerEntry> {
        self.instances
            .iter()
            .filter(|((o, _), _)| *o == 1)
            .filter_map(|((_, i), r)| {
                Some(ServerEntry {
                    instance: *i,
                    ssid: u16::try_from(int(r.get(&0))?).ok()?,
                    lifetime: int(r.get(&1))
                        .and_then(|v| u32::try_from(v).ok())
                        .unwrap_or(86_400),
                })
            })
            .collect()
    }

    /// The Bootstrap-Finish consistency check (rig-proto's).
    pub fn check(&self) -> Result<(), String> {
        check_consistency(&self.security_entries(), &self.server_entries())
    }

    /// The first usable server account (a non-bootstrap Security instance
    /// whose SSID a Server instance carries), or why there is none.
    pub fn server_account(&self) -> Result<ServerAccount, String> {
        let servers = self.server_entries();
        for s in self.security_entries() {
            if s.bootstrap || s.uri.is_empty() {
                continue;
            }
            let Some(ssid) = s.ssid else { continue };
            let Some(server) = servers.iter().find(|v| v.ssid == ssid) else {
                continue;
            };
            let r = &self.instances[&(0, s.instance)];
            let security = match int(r.get(&2)) {
                Some(0) => SecurityMode::Psk,
                Some(1) => SecurityMode::Rpk,
                Some(2) => SecurityMode::X509,
                Some(3) | None => SecurityMode::Nosec,
                Some(m) => {
                    return Err(format!(
                        "/0/{}/2 Security Mode {m} is not supported (0 PSK, 1 RPK, 2 certificate, 3 NoSec)",
                        s.instance
                    ));
                }
            };
            let binding = self
                .instances
                .get(&(1, server.instance))
                .and_then(|r| r.get(&7))
                .and_then(|v| v.as_str())
                .unwrap_or("U")
                .to_string();
            return Ok(ServerAccount {
                uri: s.uri,
                security,
                public: bytes(r.get(&3)),
                server_public: bytes(r.get(&4)),
                secret: bytes(r.get(&5)),
                ssid,
                lifetime: server.lifetime.max(1),
                binding,
            });
        }
        Err(self
            .check()
            .err()
            .unwrap_or_else(|| "no usable LwM2M server account".to_string()))
    }

    /// Bootstrap-Write: merges the records into the instances they name
    /// (creating them). Only /0, /1 and /2 are writable here.
    pub fn write(&mut self, path: &ObjectPath, records: &[Record]) -> Result<(), String> {
        let o = path.object_id().map(|o| o.0);
        if !o.is_some_and(|o| BOOTSTRAP_OBJECTS.contains(&o)) {
            return Err(format!(
                "{path}: this agent accepts Bootstrap-Write on /0, /1 and /2 only"
            ));
        }
        for rec in records {
            if !path.is_prefix_of(&rec.path) {
                return Err(format!("{} is outside the target {path}", rec.path));
            }
        }
        for rec in records {
            let ids = rec.path.ids();
            match ids.as_slice() {
                [o, i, r] => {
                    self.instances
                        .entry((*o, *i))
                        .or_default()
                        .insert(*r, rec.value.clone());
                }
                [o, i, r, ri] => {
                    self.instances.entry((*o, *i)).or_default();
                    self.multi
                        .entry((*o, *i, *r))
                        .or_default()
                        .insert(*ri, rec.value.clone());
                }
                _ => return Err(format!("{}: not a resource", rec.path)),
            }
        }
        Ok(())
    }

    /// Bootstrap-Delete of `path`: `/` and `/0`, `/1`, `/2` delete every
    /// instance except the bootstrap account; `/o/i` deletes one instance.
    pub fn delete(&mut self, path: &ObjectPath) -> Result<(), String> {
        let ids = path.ids();
        let keep = |s: &Accounts, o: u16, i: u16| s.is_bootstrap(o, i);
        let targets: Vec<(u16, u16)> = match ids.as_slice() {
            [] => self.instances.keys().copied().collect(),
            [o] if BOOTSTRAP_OBJECTS.contains(o) => self
                .instances
                .keys()
                .copied()
                .filter(|(obj, _)| obj == o)
                .collect(),
            [o, i] if BOOTSTRAP_OBJECTS.contains(o) => {
                if keep(self, *o, *i) {
                    return Err(format!("{path} is the bootstrap account"));
                }
                vec![(*o, *i)]
            }
            _ => {
                return Err(format!(
                    "{path}: Bootstrap-Delete applies to /, /0, /1, /2 and their instances"
                ));
            }
        };
        for (o, i) in targets {
            if keep(self, o, i) {
                continue;
            }
            self.instances.remove(&(o, i));
            self.multi.retain(|(mo, mi, _), _| !(*mo == o && *mi == i));
        }
        Ok(())
    }

    /// Bootstrap-Read records at and under `path` (the caller checks /1, /2).
    pub fn read(&self, path: &ObjectPath) -> Result<Vec<Record>, ResponseCode> {
        let mut out = Vec::new();
        for ((o, i), res) in &self.instances {
            for (r, v) in res {
                let p = ObjectPath::resource(*o, *i, *r);
                if path.is_prefix_of(&p) {
                    out.push(Record::new(p, v.clone()));
                }
            }
        }
        for ((o, i, r), insts) in &self.multi {
            for (ri, v) in insts {
                let p = ObjectPath::resource_instance(*o, *i, *r, *ri);
                if path.is_prefix_of(&p) {
                    out.push(Record::new(p, v.clone()));
                }
            }
        }
        out.sort_by_key(|r| r.path.ids());
        if out.is_empty() && path.instance_id().is_some() {
            return Err(ResponseCode::NotFound);
        }
        Ok(out)
    }

    /// Bootstrap-Discover links at `path` (LwM2M 1.1 TS §5.2.7.3): `</>;lwm2m="1.1"`
    /// first at the root, then every instance of /0 (with `ssid` and `uri` for
    /// server accounts), /1 (with `ssid`), /2, and the other objects' instances.
    pub fn discover(&self, path: &ObjectPath, others: &[(u16, u16)]) -> Vec<Link> {
        let mut links = Vec::new();
        let quoted = |name: &str, v: String| LinkParam {
            name: name.into(),
            value: Some(v),
            quoted: true,
        };
        if path.is_root() {
            links.push(Link {
                target: LinkTarget::Path(ObjectPath::Root),
                params: vec![quoted("lwm2m", "1.1".into())],
            });
        }
        let mut all: Vec<(u16, u16)> = self.instances.keys().copied().collect();
        all.extend_from_slice(others);
        all.sort_unstable();
        all.dedup();
        for (o, i) in all {
            let p = ObjectPath::instance(o, i);
            if !path.is_prefix_of(&p) {
                continue;
            }
            let mut l = Link::path(p);
            let r = self.instances.get(&(o, i));
            let ssid = |res: u16| r.and_then(|r| int(r.get(&res)));
            match o {
                0 if !self.is_bootstrap(0, i) => {
                    if let Some(s) = ssid(10) {
                        l.params.push(LinkParam {
                            name: "ssid".into(),
                            value: Some(s.to_string()),
                            quoted: false,
                        });
                    }
                    if let Some(uri) = r.and_then(|r| r.get(&0)).and_then(|v| v.as_str()) {
                        l.params.push(quoted("uri", uri.to_string()));
                    }
                }
                1 => {
                    if let Some(s) = ssid(0) {
                        l.params.push(LinkParam {
                            name: "ssid".into(),
                            value: Some(s.to_string()),
                            quoted: false,
                        });
                    }
                }
                _ => {}
            }
            links.push(l);
        }
        links
    }
}

/// How a bootstrap session ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Bootstrap-Finish answered 2.04.
    Finished,
    /// The bootstrap failed (request refused, no response, no Finish in time).
    Failed(String),
}

/// One client-initiated bootstrap; see the module doc.
pub struct BootstrapSession {
    coap: Endpoint,
    bs: BootstrapClient,
    server: SocketAddr,
    accounts: Accounts,
    defs: Registry,
    /// Object instances other than /0, /1, /2 to list in Discover.
    others: Vec<(u16, u16)>,
    request: Option<RequestId>,
    outcome: Option<Outcome>,
    outputs: VecDeque<String>,
    logs: VecDeque<String>,
    /// Test-only deviations (`--deviate`).
    deviate: Vec<crate::config::Deviation>,
}

impl BootstrapSession {
    /// A session for `cfg`'s endpoint with the bootstrap server at `server`.
    pub fn new(
        cfg: &AgentConfig,
        accounts: Accounts,
        server: SocketAddr,
        seed: u64,
    ) -> BootstrapSession {
        let mut others = vec![(3, 0), (rig_proto::object::defs::TEST_OBJECT_ID, 0)];
        others.sort_unstable();
        BootstrapSession {
            coap: Endpoint::new(coap::Config::default(), seed),
            bs: BootstrapClient::new(&cfg.endpoint, BOOTSTRAP_TIMEOUT, cfg.time_scale_u32()),
            server,
            accounts,
            defs: Registry::core(),
            others,
            request: None,
            outcome: None,
            outputs: VecDeque::new(),
            logs: VecDeque::new(),
            deviate: cfg.deviate.clone(),
        }
    }

    fn deviates(&self, d: crate::config::Deviation) -> bool {
        self.deviate.contains(&d)
    }

    /// Sends the Bootstrap-Request.
    pub fn start(&mut self, now: Instant) {
        self.bs.start(now);
        self.pump(now);
    }

    /// The accounts (as written so far).
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// The accounts, once the session is over.
    pub fn into_accounts(self) -> Accounts {
        self.accounts
    }

    /// How it ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.coap.poll_transmit().map(|t| (t.peer, t.payload))
    }

    /// The next console line: `bootstrapped`, or `bootstrap-failed <reason>`.
    pub fn poll_output(&mut self) -> Option<String> {
        self.outputs.pop_front()
    }

    /// The next log line.
    pub fn poll_log(&mut self) -> Option<String> {
        self.logs.pop_front()
    }

    /// When to call [`BootstrapSession::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.coap.poll_timeout(), self.bs.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// A datagram arrived.
    pub fn handle_datagram(&mut self, now: Instant, peer: SocketAddr, bytes: &[u8]) {
        self.coap.handle_datagram(now, peer, bytes);
        self.process(now);
    }

    /// The deadline passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.coap.handle_timeout(now);
        self.process(now);
        if let Some(ev) = self.bs.handle_timeout(now) {
            self.on_event(ev);
        }
    }

    fn pump(&mut self, now: Instant) {
        if self.request.is_some() {
            return;
        }
        let Some(req) = self.bs.poll_request(now) else {
            return;
        };
        let line = format!("POST /bs?{}", message::uri_queries(&req).join("&"));
        match self.coap.send_request(now, self.server, req) {
            Ok(id) => {
                self.logs.push_back(format!("-> {line}"));
                self.request = Some(id);
            }
            Err(e) => {
                self.logs.push_back(format!("cannot send {line}: {e}"));
                if let Some(ev) = self.bs.handle_failure(now) {
                    self.on_event(ev);
                }
            }
        }
    }

    fn on_event(&mut self, ev: BootstrapEvent) {
        match ev {
            BootstrapEvent::Accepted => self.logs.push_back("bootstrap request accepted".into()),
            BootstrapEvent::Finished => {
                self.outputs.push_back("bootstrapped".to_string());
                self.outcome = Some(Outcome::Finished);
            }
            BootstrapEvent::Failed(why) => {
                self.outputs.push_back(format!(
                    "bootstrap-failed {}",
                    why.replace(['\n', '\r'], " ")
                ));
                self.outcome = Some(Outcome::Failed(why));
            }
        }
    }

    fn process(&mut self, now: Instant) {
        while let Some(event) = self.coap.poll_event() {
            match event {
                Event::Request { id, peer, request } => self.on_request(now, id, peer, request),
                Event::Response { id, response, .. } if self.request == Some(id) => {
                    self.request = None;
                    self.logs.push_back(format!(
                        "<- {}",
                        message::code_string(u8::from(response.header.code))
                    ));
                    if let Some(ev) = self.bs.handle_response(now, &response) {
                        self.on_event(ev);
                    }
                }
                Event::RequestTimedOut { id } | Event::Reset { id } if self.request == Some(id) => {
                    self.request = None;
                    if let Some(ev) = self.bs.handle_failure(now) {
                        self.on_event(ev);
                    }
                }
                Event::Malformed { peer, error } => self
                    .logs
                    .push_back(format!("malformed datagram from {peer}: {error}")),
                _ => {}
            }
        }
    }

    fn on_request(&mut self, now: Instant, id: IncomingId, peer: SocketAddr, request: Packet) {
        let line = format!("{:?} /{}", request.header.code, message::uri_path(&request));
        let (response, finished) = if peer != self.server {
            (message::response(ResponseCode::Unauthorized), None)
        } else {
            self.dispatch(now, &request)
        };
        self.logs.push_back(format!(
            "<- {line} -> {}",
            message::code_string(u8::from(response.header.code))
        ));
        if let Err(e) = self.coap.respond(now, id, response) {
            self.logs.push_back(format!("cannot answer {line}: {e}"));
        }
        if let Some(ev) = finished {
            self.on_event(ev);
        }
    }

    fn dispatch(&mut self, now: Instant, req: &Packet) -> (Packet, Option<BootstrapEvent>) {
        let refuse = |code: ResponseCode, why: String, logs: &mut VecDeque<String>| {
            logs.push_back(format!("refused: {why}"));
            let mut r = message::response(code);
            r.payload = why.into_bytes();
            (r, None)
        };
        match self.bs.classify(req) {
            BootstrapOperation::Finish => {
                let check = if self.deviates(crate::config::Deviation::FinishAcceptsInconsistent) {
                    Ok(())
                } else {
                    self.accounts.check()
                };
                if let Err(why) = &check {
                    self.logs
                        .push_back(format!("Bootstrap-Finish refused (4.06): {why}"));
                }
                self.bs.finish(now, check)
            }
            BootstrapOperation::Write(path) => {
                let format = match message::uint_option(req, CoapOption::ContentFormat) {
                    Some(Ok(n)) => match u16::try_from(n).ok().and_then(ContentFormat::from_u16) {
                        Some(cf) => cf,
                        None => {
                            return refuse(
                                ResponseCode::UnsupportedContentFormat,
                                format!("content format {n}"),
                                &mut self.logs,
                            );
                        }
                    },
                    _ => {
                        return refuse(
                            ResponseCode::BadRequest,
                            format!("Bootstrap-Write on {path} without Content-Format"),
                            &mut self.logs,
                        );
                    }
                };
                let records = match content::decode(format, &path, &req.payload, &self.defs) {
                    Ok(r) => r,
                    Err(e) => {
                        return refuse(
                            ResponseCode::BadRequest,
                            format!("Bootstrap-Write on {path}: {e}"),
                            &mut self.logs,
                        );
                    }
                };
                match self.accounts.write(&path, &records) {
                    Ok(()) => (message::response(ResponseCode::Changed), None),
                    Err(why) => refuse(ResponseCode::BadRequest, why, &mut self.logs),
                }
            }
            BootstrapOperation::Delete(path) => match self.accounts.delete(&path) {
                Ok(())
                    if self.deviates(crate::config::Deviation::DeleteBootstrapAccount)
                        && path.instance_id().is_none()
                        && path.object_id().is_none_or(|o| o.0 == 0) =>
                {
                    self.accounts.instances.retain(|(o, _), _| *o != 0);
                    (message::response(ResponseCode::Deleted), None)
                }
                Ok(()) => (message::response(ResponseCode::Deleted), None),
                Err(why) => refuse(ResponseCode::BadRequest, why, &mut self.logs),
            },
            BootstrapOperation::Read(path) => {
                let records = match self.accounts.read(&path) {
                    Ok(r) => r,
                    Err(code) => {
                        return refuse(code, format!("nothing at {path}"), &mut self.logs);
                    }
                };
                let accept = match message::uint_option(req, CoapOption::Accept) {
                    Some(Ok(n)) => u16::try_from(n).ok().and_then(ContentFormat::from_u16),
                    _ => Some(ContentFormat::Tlv),
                };
                let Some(format) = accept else {
                    return refuse(
                        ResponseCode::NotAcceptable,
                        "unknown Accept".into(),
                        &mut self.logs,
                    );
                };
                match content::encode(format, &path, &records, &self.defs) {
                    Ok(bytes) => {
                        let mut r = message::response(ResponseCode::Content);
                        let label =
                            if self.deviates(crate::config::Deviation::BootstrapReadWrongFormat) {
                                ContentFormat::SenmlJson
                            } else {
                                format
                            };
                        message::set_uint_option(
                            &mut r,
                            CoapOption::ContentFormat,
                            u32::from(label.as_u16()),
                        );
                        r.payload = bytes;
                        (r, None)
                    }
                    Err(e) => refuse(
                        ResponseCode::NotAcceptable,
                        format!("cannot encode {path} as {format}: {e}"),
                        &mut self.logs,
                    ),
                }
            }
            BootstrapOperation::Discover(path) => {
                let mut links = self.accounts.discover(&path, &self.others);
                if self.deviates(crate::config::Deviation::DiscoverWithoutSsid) {
                    for l in &mut links {
                        l.params.retain(|p| p.name != "ssid");
                    }
                }
                let mut r = message::response(ResponseCode::Content);
                message::set_uint_option(
                    &mut r,
                    CoapOption::ContentFormat,
                    u32::from(ContentFormat::Link.as_u16()),
                );
                r.payload = link::format(&links).into_bytes();
                (r, None)
            }
            BootstrapOperation::Invalid { code, reason } => refuse(code, reason, &mut self.logs),
        }
    }
}

/// The DTLS client configuration for a server account's mode and credentials
/// (`None` for NoSec). Errors name the resource that is wrong.
pub fn dtls_config(account: &ServerAccount) -> Result<Option<rig_dtls::ClientConfig>, String> {
    use rig_dtls::{ClientCredentials as C, PKey, X509};
    let creds = match account.security {
        SecurityMode::Nosec => return Ok(None),
        SecurityMode::Psk => C::Psk {
            identity: account.public.clone(),
            key: account.secret.clone(),
        },
        SecurityMode::Rpk => C::RawPublicKey {
            key: PKey::private_key_from_der(&account.secret)
                .map_err(|e| format!("/0/x/5 is not a DER private key: {e}"))?,
            server_keys: vec![
                PKey::public_key_from_der(&account.server_public)
                    .map_err(|e| format!("/0/x/4 is not a DER public key: {e}"))?,
            ],
        },
        SecurityMode::X509 => C::Certificate {
            chain: vec![
                X509::from_der(&account.public)
                    .map_err(|e| format!("/0/x/3 is not a DER certificate: {e}"))?,
            ],
            key: PKey::private_key_from_der(&account.secret)
                .map_err(|e| format!("/0/x/5 is not a DER private key: {e}"))?,
            trust: vec![
                X509::from_der(&account.server_public)
                    .map_err(|e| format!("/0/x/4 is not a DER certificate: {e}"))?,
            ],
            server_name: uri_host(&account.uri),
        },
    };
    Ok(Some(rig_dtls::ClientConfig::new(creds)))
}

/// The host of a `coap[s]://host:port` URI, without brackets.
pub fn uri_host(uri: &str) -> Option<String> {
    let rest = uri
        .strip_prefix("coaps://")
        .or_else(|| uri.strip_prefix("coap://"))?;
    let hostport = rest.trim_end_matches('/');
    if let Some(v6) = hostport.strip_prefix('[') {
        return v6.split(']').next().map(str::to_string);
    }
    hostport.split(':').next().map(str::to_string)
}

/// The configuration to register with `account`: `cfg` with the account's
/// URI, mode, SSID, lifetime and binding.
pub fn server_config(cfg: &AgentConfig, account: &ServerAccount) -> AgentConfig {
    let mut c = cfg.clone();
    c.server = account.uri.clone();
    c.security = account.security;
    c.ssid = account.ssid;
    c.lifetime = account.lifetime;
    c.binding = account.binding.clone();
    c
}

mod driver;
pub(crate) use driver::run;

#[cfg(test)]
mod tests;
