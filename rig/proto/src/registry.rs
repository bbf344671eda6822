//! Server-side registration data (LwM2M 1.1 TS §6.2, Client Registration
//! Interface): the [`Registry`] of registered clients, strict parsing of
//! Register and Update requests into [`Registration`]s, location allocation
//! and lifetime expiry.
//!
//! Parsing never rejects silently: every departure from the specification is
//! returned as a [`Deviation`] so the rig can fail a case with a precise
//! reason, while still accepting what a lenient server would accept (only a
//! missing endpoint name, or an unusable lifetime, rejects a Register with
//! 4.00).
//!
//! Sans-IO like the rest of the crate: [`Registry::handle_request`] takes a
//! decoded request, the peer and `now`, and returns the response packet to
//! hand to [`Endpoint::respond`](crate::coap::Endpoint::respond) plus what
//! happened.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};

use crate::coap::message::{self, uri_path, uri_queries};
use crate::path::ObjectPath;
use crate::time::Instant;

/// Default lifetime when `lt` is absent (LwM2M 1.1 TS §6.2.1: 86400 s).
pub const DEFAULT_LIFETIME: u32 = 86_400;

/// The Content-Format number of CoRE link format.
pub const LINK_FORMAT: u16 = 40;

/// LwM2M versions this registry knows.
pub const KNOWN_VERSIONS: &[&str] = &["1.0", "1.1", "1.2"];

/// One departure from the specification seen in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deviation {
    /// The field or part of the message concerned (`ep`, `lt`, `payload`, `Content-Format`...).
    pub field: String,
    /// What is wrong, with the value seen.
    pub what: String,
}

impl Deviation {
    fn new(field: &str, what: impl Into<String>) -> Deviation {
        Deviation {
            field: field.to_string(),
            what: what.into(),
        }
    }
}

impl core::fmt::Display for Deviation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.field, self.what)
    }
}

/// One link of the registration payload (`</3/0>;ver=1.1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredLink {
    /// The link target as written, without `<>`.
    pub target: String,
    /// The target as an LwM2M path, if it is one (relative to the alternate path).
    pub path: Option<ObjectPath>,
    /// Attributes in order, values without quotes.
    pub attributes: Vec<(String, Option<String>)>,
}

impl RegisteredLink {
    /// The value of attribute `name`, if present with a value.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// A registered client as the server sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    /// Endpoint client name (`ep`).
    pub endpoint: String,
    /// Location path segments given to the client, e.g. `["rd", "3"]`.
    pub location: Vec<String>,
    /// Lifetime in seconds (unscaled, as sent).
    pub lifetime: u32,
    /// LwM2M version (`lwm2m`).
    pub lwm2m_version: String,
    /// Binding mode (`b`), default `U`.
    pub binding: String,
    /// Queue mode (`Q` in 1.1, or `Q` in the 1.0 binding).
    pub queue_mode: bool,
    /// SMS number (`sms`).
    pub sms: Option<String>,
    /// Alternate path from `</path>;rt="oma.lwm2m"`, default `/`.
    pub alternate_path: String,
    /// Object and object instance links (the root link excluded).
    pub objects: Vec<RegisteredLink>,
    /// The client's transport address.
    pub peer: SocketAddr,
    /// When the Register arrived.
    pub registered_at: Instant,
    /// When the last Register or Update arrived.
    pub last_update: Instant,
    /// When the registration expires unless updated.
    pub expires_at: Instant,
}

impl Registration {
    /// The location as a path string, e.g. `/rd/3`.
    pub fn location_path(&self) -> String {
        let mut s = String::new();
        for seg in &self.location {
            s.push('/');
            s.push_str(seg);
        }
        s
    }

    /// True if the client registered object instance or object `path`.
    pub fn has_object(&self, path: &ObjectPath) -> bool {
        self.objects.iter().any(|l| l.path.as_ref() == Some(path))
    }
}

/// Parameters of a Register or Update, as parsed (absent = `None`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegistrationParams {
    /// `ep`.
    pub endpoint: Option<String>,
    /// `lt` (seconds).
    pub lifetime: Option<u32>,
    /// `lwm2m`.
    pub lwm2m_version: Option<String>,
    /// `b`.
    pub binding: Option<String>,
    /// `Q` present.
    pub queue_mode: bool,
    /// `sms`.
    pub sms: Option<String>,
    /// Payload links (None if no payload).
    pub objects: Option<Vec<RegisteredLink>>,
    /// Alternate path from the root link, if one was given.
    pub alternate_path: Option<String>,
}

/// Which operation [`parse_params`] checks against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Register (POST /rd).
    Register,
    /// Update (POST /rd/{location}).
    Update,
}

/// Parses the query and payload of a Register or Update strictly. Returns
/// the parameters and every deviation found.
pub fn parse_params(op: Operation, request: &Packet) -> (RegistrationParams, Vec<Deviation>) {
    let mut params = RegistrationParams::default();
    let mut devs = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for q in uri_queries(request) {
        let (k, v) = match q.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (q.clone(), None),
        };
        if seen.contains(&k) {
            devs.push(Deviation::new(
                &k,
                format!("parameter `{k}` given more than once"),
            ));
        }
        seen.push(k.clone());
        let allowed_in_update = matches!(k.as_str(), "lt" | "b" | "sms" | "Q");
        if op == Operation::Update && !allowed_in_update {
            devs.push(Deviation::new(
                &k,
                format!("parameter `{k}` is not allowed in an Update (only lt, b, sms)"),
            ));
        }
        match (k.as_str(), v) {
            ("ep", Some(v)) if !v.is_empty() => params.endpoint = Some(v),
            ("ep", _) => devs.push(Deviation::new("ep", "empty endpoint name")),
            ("lt", Some(v)) => match v.parse::<u32>() {
                Ok(0) => devs.push(Deviation::new("lt", "lifetime 0 is not allowed")),
                Ok(n) => params.lifetime = Some(n),
                Err(_) => devs.push(Deviation::new(
                    "lt",
                    format!("`{v}` is not an unsigned integer"),
                )),
            },
            ("lt", None) => devs.push(Deviation::new("lt", "lt without a value")),
            ("lwm2m", Some(v)) => {
                if !KNOWN_VERSIONS.contains(&v.as_str()) {
                    devs.push(Deviation::new(
                        "lwm2m",
                        format!("unknown LwM2M version `{v}`"),
                    ));
                }
                params.lwm2m_version = Some(v);
            }
            ("lwm2m", None) => devs.push(Deviation::new("lwm2m", "lwm2m without a value")),
            ("b", Some(v)) => params.binding = Some(v),
            ("b", None) => devs.push(Deviation::new("b", "b without a value")),
            ("sms", Some(v)) => params.sms = Some(v),
            ("sms", None) => devs.push(Deviation::new("sms", "sms without a value")),
            ("Q", None) => params.queue_mode = true,
            ("Q", Some(v)) => {
                devs.push(Deviation::new("Q", format!("Q takes no value (got `{v}`)")));
                params.queue_mode = true;
            }
            (other, _) => devs.push(Deviation::new(
                other,
                format!("unknown parameter `{other}`"),
            )),
        }
    }
    if op == Operation::Register {
        if params.endpoint.is_none() && !seen.iter().any(|k| k == "ep") {
            devs.push(Deviation::new(
                "ep",
                "missing endpoint name (ep is mandatory)",
            ));
        }
        if params.lwm2m_version.is_none() && !seen.iter().any(|k| k == "lwm2m") {
            devs.push(Deviation::new(
                "lwm2m",
                "missing LwM2M version (lwm2m is mandatory)",
            ));
        }
    }
    // Binding letters depend on the version.
    if let Some(b) = &params.binding {
        let v11 = params.lwm2m_version.as_deref().is_none_or(|v| v != "1.0");
        let allowed: &[char] = if v11 {
            &['U', 'M', 'H', 'T', 'S', 'N']
        } else {
            &['U', 'Q', 'S']
        };
        if b.is_empty() {
            devs.push(Deviation::new("b", "empty binding"));
        }
        for c in b.chars() {
            if !allowed.contains(&c) {
                devs.push(Deviation::new(
                    "b",
                    format!("binding `{b}`: letter `{c}` is not allowed (allowed: {allowed:?})"),
                ));
            }
        }
        if !v11 && b.contains('Q') {
            params.queue_mode = true;
        }
    }
    // Content-Format and payload.
    let cf = message::uint_option(request, CoapOption::ContentFormat);
    if !request.payload.is_empty() {
        match cf {
            Some(Ok(n)) if n == u32::from(LINK_FORMAT) => {}
            Some(Ok(n)) => devs.push(Deviation::new(
                "Content-Format",
                format!("payload has Content-Format {n}, expected 40 (application/link-format)"),
            )),
            Some(Err(())) => devs.push(Deviation::new(
                "Content-Format",
                "unreadable Content-Format",
            )),
            None => devs.push(Deviation::new(
                "Content-Format",
                "payload without Content-Format (expected 40, application/link-format)",
            )),
        }
        match core::str::from_utf8(&request.payload) {
            Ok(text) => {
                // Syntax: the crate's strict RFC 6690 parser (with byte offsets).
                let syntax_ok = match crate::link::parse(text) {
                    Ok(_) => true,
                    Err(e) => {
                        devs.push(Deviation::new("payload", format!("bad link format: {e}")));
                        false
                    }
                };
                let (links, alt, mut d) = parse_links(text, syntax_ok);
                devs.append(&mut d);
                params.objects = Some(links);
                params.alternate_path = alt;
            }
            Err(e) => devs.push(Deviation::new(
                "payload",
                format!("not UTF-8 at byte {}", e.valid_up_to()),
            )),
        }
    } else if op == Operation::Register {
        devs.push(Deviation::new("payload", "Register without object links"));
    }
    (params, devs)
}

/// Parses a registration payload (`</>;rt="oma.lwm2m",</1/0>,</3/0>;ver=1.1`)
/// into links, the alternate path and deviations (with byte offsets).
fn parse_links(
    text: &str,
    report_syntax: bool,
) -> (Vec<RegisteredLink>, Option<String>, Vec<Deviation>) {
    let mut links = Vec::new();
    let mut devs = Vec::new();
    let mut alt = None;
    let mut offset = 0usize;
    for item in split_outside_quotes(text, ',') {
        let start = offset;
        offset += item.len() + 1;
        let item_trim = item.trim();
        let mut parts = split_outside_quotes(item_trim, ';').into_iter();
        let target = parts.next().unwrap_or("");
        let Some(target) = target.strip_prefix('<').and_then(|t| t.strip_suffix('>')) else {
            if report_syntax {
                devs.push(Deviation::new(
                    "payload",
                    format!("link at byte {start} is not `<target>`: `{item_trim}`"),
                ));
            }
            continue;
        };
        let mut attributes = Vec::new();
        for a in parts {
            let (k, v) = match a.split_once('=') {
                Some((k, v)) => (
                    k.trim().to_string(),
                    Some(v.trim().trim_matches('"').to_string()),
                ),
                None => (a.trim().to_string(), None),
            };
            if k.is_empty() {
                devs.push(Deviation::new(
                    "payload",
                    format!("empty attribute in link at byte {start}"),
                ));
            }
            attributes.push((k, v));
        }
        let link = RegisteredLink {
            target: target.to_string(),
            path: None,
            attributes,
        };
        if link.attribute("rt") == Some("oma.lwm2m") {
            alt = Some(target.to_string());
            continue;
        }
        let base = alt.as_deref().unwrap_or("/").trim_end_matches('/');
        let rel = target.strip_prefix(base).unwrap_or(target);
        match ObjectPath::parse(rel) {
            Ok(p) => {
                match p.level() {
                    1 | 2 => {}
                    _ => devs.push(Deviation::new(
                        "payload",
                        format!("link <{target}> at byte {start}: only objects and object instances may be registered"),
                    )),
                }
                let obj = p.object_id().map(|o| o.0);
                if obj == Some(0) {
                    devs.push(Deviation::new(
                        "payload",
                        format!("link <{target}> at byte {start}: the Security object (0) must not be registered"),
                    ));
                }
                if obj == Some(21) {
                    devs.push(Deviation::new(
                        "payload",
                        format!("link <{target}> at byte {start}: the OSCORE object (21) must not be registered"),
                    ));
                }
                links.push(RegisteredLink {
                    path: Some(p),
                    ..link
                });
            }
            Err(e) => {
                devs.push(Deviation::new(
                    "payload",
                    format!("link <{target}> at byte {start}: not an LwM2M path ({e})"),
                ));
                links.push(link);
            }
        }
    }
    (links, alt, devs)
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// What [`Registry::handle_request`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistryEvent {
    /// A client registered (a previous registration of the same endpoint, if
    /// any, is in `replaced`).
    Registered {
        /// The new registration.
        registration: Registration,
        /// The registration it replaced.
        replaced: Option<Registration>,
        /// Deviations seen.
        deviations: Vec<Deviation>,
    },
    /// A Register was rejected (4.00).
    Rejected {
        /// The endpoint name, if one was given.
        endpoint: Option<String>,
        /// Why.
        deviations: Vec<Deviation>,
    },
    /// A client updated its registration.
    Updated {
        /// The registration after the update.
        registration: Registration,
        /// The parameters the Update carried.
        params: RegistrationParams,
        /// Deviations seen.
        deviations: Vec<Deviation>,
    },
    /// An Update or De-register for an unknown location (4.04).
    UnknownLocation {
        /// The location asked for.
        location: String,
        /// The method used.
        method: &'static str,
    },
    /// A client de-registered.
    Deregistered {
        /// The registration removed.
        registration: Registration,
    },
    /// The request is not for the registration interface (not under the
    /// registry's root path); the caller handles it.
    NotRegistrationInterface,
}

/// The registry of registered clients.
#[derive(Debug, Clone)]
pub struct Registry {
    root: String,
    time_scale: u32,
    /// Location ids are left-padded with `0` to at least this many characters.
    min_location_len: usize,
    next_location: u32,
    by_location: BTreeMap<String, Registration>,
    by_endpoint: BTreeMap<String, String>,
}

impl Registry {
    /// An empty registry serving the interface under `/rd`. Lifetimes are
    /// divided by `time_scale` when computing expiry.
    pub fn new(time_scale: u32) -> Registry {
        Registry {
            root: "rd".to_string(),
            time_scale: time_scale.max(1),
            min_location_len: 0,
            next_location: 0,
            by_location: BTreeMap::new(),
            by_endpoint: BTreeMap::new(),
        }
    }

    /// Makes new location ids at least `n` characters long (left-padded
    /// with `0`, e.g. `00000000a`): a server whose Location-Path has a given
    /// length, as the MachNation calibration needs (9 characters).
    pub fn set_min_location_len(&mut self, n: usize) {
        self.min_location_len = n.min(64);
    }

    /// The registration of endpoint `ep`.
    pub fn get(&self, ep: &str) -> Option<&Registration> {
        self.by_endpoint
            .get(ep)
            .and_then(|l| self.by_location.get(l))
    }

    /// The registration at location id `loc` (the last path segment).
    pub fn by_location(&self, loc: &str) -> Option<&Registration> {
        self.by_location.get(loc)
    }

    /// All registrations.
    pub fn iter(&self) -> impl Iterator<Item = &Registration> {
        self.by_location.values()
    }

    /// Number of registrations.
    pub fn len(&self) -> usize {
        self.by_location.len()
    }

    /// True if nobody is registered.
    pub fn is_empty(&self) -> bool {
        self.by_location.is_empty()
    }

    fn expiry(&self, now: Instant, lifetime: u32) -> Instant {
        now + Duration::from_secs(u64::from(lifetime)) / self.time_scale
    }

    fn allocate_location(&mut self) -> String {
        // Short ids: base-36 counter, skipping ids still in use.
        loop {
            self.next_location = self.next_location.wrapping_add(1);
            let mut n = self.next_location;
            let mut s = Vec::new();
            while n > 0 {
                let d = (n % 36) as u8;
                s.push(if d < 10 { b'0' + d } else { b'a' + d - 10 });
                n /= 36;
            }
            while s.len() < self.min_location_len {
                s.push(b'0');
            }
            s.reverse();
            let id = String::from_utf8(s).unwrap_or_default();
            if !id.is_empty() && !self.by_location.contains_key(&id) {
                return id;
            }
        }
    }

    /// Handles a Register (POST /rd), Update (POST /rd/{id}) or De-register
    /// (DELETE /rd/{id}) and returns the response to send (code, and
    /// Location-Path for a Register) with what happened. Other requests give
    /// `(None, NotRegistrationInterface)`.
    pub fn handle_request(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        request: &Packet,
    ) -> (Option<Packet>, RegistryEvent) {
        let path = uri_path(request);
        let mut segs = path.split('/').filter(|s| !s.is_empty());
        if segs.next() != Some(self.root.as_str()) {
            return (None, RegistryEvent::NotRegistrationInterface);
        }
        let loc = segs.next().map(ToString::to_string);
        let extra = segs.next().is_some();
        let method = match request.header.code {
            MessageClass::Request(m) => m,
            _ => return (None, RegistryEvent::NotRegistrationInterface),
        };
        match (method, loc, extra) {
            (RequestType::Post, None, _) => {
                let (resp, ev) = self.register(now, peer, request);
                (Some(resp), ev)
            }
            (RequestType::Post, Some(loc), false) => {
                let (resp, ev) = self.update(now, peer, &loc, request);
                (Some(resp), ev)
            }
            (RequestType::Delete, Some(loc), false) => match self.deregister(&loc) {
                Some(registration) => (
                    Some(message::response(ResponseType::Deleted)),
                    RegistryEvent::Deregistered { registration },
                ),
                None => (
                    Some(message::response(ResponseType::NotFound)),
                    RegistryEvent::UnknownLocation {
                        location: loc,
                        method: "DELETE",
                    },
                ),
            },
            _ => (
                Some(message::response(ResponseType::MethodNotAllowed)),
                RegistryEvent::NotRegistrationInterface,
            ),
        }
    }

    /// Registers a client from a Register request. Rejects (4.00) only
    /// without a usable endpoint name.
    pub fn register(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        request: &Packet,
    ) -> (Packet, RegistryEvent) {
        let (params, deviations) = parse_params(Operation::Register, request);
        let Some(endpoint) = params.endpoint.clone() else {
            return (
                message::response(ResponseType::BadRequest),
                RegistryEvent::Rejected {
                    endpoint: None,
                    deviations,
                },
            );
        };
        let replaced = self
            .by_endpoint
            .get(&endpoint)
            .cloned()
            .and_then(|l| self.deregister(&l));
        let id = self.allocate_location();
        let lifetime = params.lifetime.unwrap_or(DEFAULT_LIFETIME);
        let binding = params.binding.clone().unwrap_or_else(|| "U".to_string());
        let registration = Registration {
            endpoint: endpoint.clone(),
            location: alloc::vec![self.root.clone(), id.clone()],
            lifetime,
            lwm2m_version: params
                .lwm2m_version
                .clone()
                .unwrap_or_else(|| "1.0".to_string()),
            binding,
            queue_mode: params.queue_mode,
            sms: params.sms.clone(),
            alternate_path: params
                .alternate_path
                .clone()
                .unwrap_or_else(|| "/".to_string()),
            objects: params.objects.clone().unwrap_or_default(),
            peer,
            registered_at: now,
            last_update: now,
            expires_at: self.expiry(now, lifetime),
        };
        self.by_location.insert(id.clone(), registration.clone());
        self.by_endpoint.insert(endpoint, id.clone());
        let mut resp = message::response(ResponseType::Created);
        resp.add_option(CoapOption::LocationPath, self.root.as_bytes().to_vec());
        resp.add_option(CoapOption::LocationPath, id.into_bytes());
        (
            resp,
            RegistryEvent::Registered {
                registration,
                replaced,
                deviations,
            },
        )
    }

    /// Applies an Update to the registration at `loc` (4.04 if unknown).
    pub fn update(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        loc: &str,
        request: &Packet,
    ) -> (Packet, RegistryEvent) {
        let (params, mut deviations) = parse_params(Operation::Update, request);
        let scale = self.time_scale;
        let Some(reg) = self.by_location.get_mut(loc) else {
            return (
                message::response(ResponseType::NotFound),
                RegistryEvent::UnknownLocation {
                    location: loc.to_string(),
                    method: "POST",
                },
            );
        };
        if reg.peer != peer {
            deviations.push(Deviation::new(
                "peer",
                format!(
                    "Update from {peer}, registered from {} (address changed)",
                    reg.peer
                ),
            ));
            reg.peer = peer;
        }
        if let Some(lt) = params.lifetime {
            reg.lifetime = lt;
        }
        if let Some(b) = &params.binding {
            reg.binding = b.clone();
        }
        if params.queue_mode {
            reg.queue_mode = true;
        }
        if let Some(s) = &params.sms {
            reg.sms = Some(s.clone());
        }
        if let Some(objs) = &params.objects {
            reg.objects = objs.clone();
        }
        reg.last_update = now;
        reg.expires_at = now + Duration::from_secs(u64::from(reg.lifetime)) / scale;
        let registration = reg.clone();
        (
            message::response(ResponseType::Changed),
            RegistryEvent::Updated {
                registration,
                params,
                deviations,
            },
        )
    }

    /// Removes the registration at location id `loc`.
    pub fn deregister(&mut self, loc: &str) -> Option<Registration> {
        let reg = self.by_location.remove(loc)?;
        if self.by_endpoint.get(&reg.endpoint).map(String::as_str) == Some(loc) {
            self.by_endpoint.remove(&reg.endpoint);
        }
        Some(reg)
    }

    /// The earliest expiry of any registration.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.by_location.values().map(|r| r.expires_at).min()
    }

    /// Removes and returns every registration whose lifetime has run out.
    pub fn expire(&mut self, now: Instant) -> Vec<Registration> {
        let gone: Vec<String> = self
            .by_location
            .iter()
            .filter(|(_, r)| r.expires_at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        gone.iter().filter_map(|l| self.deregister(l)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coap::message::{add_uri_query, request};

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 5000))
    }

    fn register_req(queries: &[&str], payload: &str, cf: Option<u32>) -> Packet {
        let mut p = request(RequestType::Post, true, "/rd");
        for q in queries {
            add_uri_query(&mut p, q);
        }
        if let Some(cf) = cf {
            message::set_uint_option(&mut p, CoapOption::ContentFormat, cf);
        }
        p.payload = payload.as_bytes().to_vec();
        p
    }

    #[test]
    fn clean_register_has_no_deviations_and_gets_2_01_with_location() {
        let mut reg = Registry::new(1);
        let req = register_req(
            &["ep=dev1", "lt=300", "lwm2m=1.1", "b=U"],
            "</>;rt=\"oma.lwm2m\";ct=11543,</1/0>,</3/0>,</33333/0>;ver=1.0",
            Some(40),
        );
        let (resp, ev) = reg.handle_request(Instant::ZERO, peer(), &req);
        let resp = resp.unwrap();
        assert_eq!(message::response_code(&resp), Some(ResponseType::Created));
        assert_eq!(message::location_path(&resp), vec!["rd", "1"]);
        match ev {
            RegistryEvent::Registered {
                registration,
                deviations,
                replaced,
            } => {
                assert!(deviations.is_empty(), "{deviations:?}");
                assert!(replaced.is_none());
                assert_eq!(registration.endpoint, "dev1");
                assert_eq!(registration.lifetime, 300);
                assert_eq!(registration.lwm2m_version, "1.1");
                assert_eq!(registration.binding, "U");
                assert_eq!(registration.objects.len(), 3);
                assert!(registration.has_object(&ObjectPath::instance(3, 0)));
                assert_eq!(registration.objects[2].attribute("ver"), Some("1.0"));
                assert_eq!(
                    registration.expires_at,
                    Instant::ZERO + Duration::from_secs(300)
                );
                assert_eq!(registration.location_path(), "/rd/1");
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn strict_checks_report_each_deviation() {
        let mut reg = Registry::new(1);
        let req = register_req(
            &["lt=abc", "lwm2m=9.9", "b=UQ", "x=1"],
            "</0/0>,</1/0>,</3/0/1>,garbage",
            Some(0),
        );
        let (resp, ev) = reg.handle_request(Instant::ZERO, peer(), &req);
        assert_eq!(
            message::response_code(&resp.unwrap()),
            Some(ResponseType::BadRequest)
        );
        let RegistryEvent::Rejected { deviations, .. } = ev else {
            panic!("{ev:?}")
        };
        let text: Vec<String> = deviations.iter().map(|d| d.to_string()).collect();
        let all = text.join("\n");
        for needle in [
            "lt: `abc` is not an unsigned integer",
            "lwm2m: unknown LwM2M version `9.9`",
            "unknown parameter `x`",
            "ep: missing endpoint name",
            "Content-Format 0, expected 40",
            "Security object (0) must not be registered",
            "only objects and object instances",
            "bad link format",
        ] {
            assert!(all.contains(needle), "missing `{needle}` in:\n{all}");
        }
    }

    #[test]
    fn update_refreshes_expiry_and_unknown_location_is_4_04() {
        let mut reg = Registry::new(10);
        let req = register_req(&["ep=a", "lt=100", "lwm2m=1.1"], "</1/0>", Some(40));
        reg.handle_request(Instant::ZERO, peer(), &req);
        let t = Instant::ZERO + Duration::from_secs(5);
        let mut upd = request(RequestType::Post, true, "/rd/1");
        add_uri_query(&mut upd, "lt=50");
        let (resp, ev) = reg.handle_request(t, peer(), &upd);
        assert_eq!(
            message::response_code(&resp.unwrap()),
            Some(ResponseType::Changed)
        );
        let RegistryEvent::Updated {
            registration,
            deviations,
            ..
        } = ev
        else {
            panic!()
        };
        assert!(deviations.is_empty());
        assert_eq!(registration.lifetime, 50);
        assert_eq!(registration.expires_at, t + Duration::from_secs(5));
        let mut bad = request(RequestType::Post, true, "/rd/zz");
        add_uri_query(&mut bad, "ep=a");
        let (resp, _) = reg.handle_request(t, peer(), &bad);
        assert_eq!(
            message::response_code(&resp.unwrap()),
            Some(ResponseType::NotFound)
        );
        // Expiry.
        assert_eq!(reg.next_expiry(), Some(t + Duration::from_secs(5)));
        assert!(reg.expire(t + Duration::from_secs(4)).is_empty());
        assert_eq!(reg.expire(t + Duration::from_secs(5)).len(), 1);
        assert!(reg.is_empty());
    }

    #[test]
    fn update_with_ep_is_a_deviation_and_deregister_removes() {
        let mut reg = Registry::new(1);
        let req = register_req(&["ep=a", "lwm2m=1.1"], "</1/0>", Some(40));
        reg.handle_request(Instant::ZERO, peer(), &req);
        let mut upd = request(RequestType::Post, true, "/rd/1");
        add_uri_query(&mut upd, "ep=a");
        let (_, ev) = reg.handle_request(Instant::ZERO, peer(), &upd);
        let RegistryEvent::Updated { deviations, .. } = ev else {
            panic!()
        };
        assert_eq!(deviations.len(), 1);
        assert!(deviations[0].what.contains("not allowed in an Update"));
        let del = request(RequestType::Delete, true, "/rd/1");
        let (resp, ev) = reg.handle_request(Instant::ZERO, peer(), &del);
        assert_eq!(
            message::response_code(&resp.unwrap()),
            Some(ResponseType::Deleted)
        );
        assert!(matches!(ev, RegistryEvent::Deregistered { .. }));
        assert!(reg.get("a").is_none());
        // Re-register gets a fresh short id.
        let (resp, ev) = reg.handle_request(Instant::ZERO, peer(), &req);
        assert_eq!(message::location_path(&resp.unwrap()), vec!["rd", "2"]);
        assert!(matches!(
            ev,
            RegistryEvent::Registered { replaced: None, .. }
        ));
        let (_, ev) = reg.handle_request(Instant::ZERO, peer(), &req);
        assert!(matches!(
            ev,
            RegistryEvent::Registered {
                replaced: Some(_),
                ..
            }
        ));
        assert_eq!(reg.len(), 1);
    }
}
