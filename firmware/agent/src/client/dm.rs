//! Device management beyond the single-path operations: Read-Composite
//! (`FETCH /`), Write-Composite (`iPATCH /`), the notification attributes a
//! Discover reports, the Security object's closure to Write-Attributes, and
//! the test-only deviations of the ETS 2xx/3xx cases (`--deviate`).
//!
//! A child module of `client`, so it works on the client's own state; the
//! client calls it through small hooks in `read`, `write`, `execute`,
//! `write_attributes` and the observation start.

use rig_proto::attributes::NotificationAttributes;
use rig_proto::coap::{CoapOption, Packet, ResponseCode, message};
use rig_proto::content::{self, ContentFormat};
use rig_proto::link::{Link, LinkParam};
use rig_proto::path::ObjectPath;
use rig_proto::value::{Record, Value};

use super::{Action, Client, UpdateParams};
use crate::config::Deviation;
use crate::objects::SECURITY;

/// The request's Content-Format, or the answer that refuses the request.
pub(super) fn request_format(req: &Packet) -> Result<ContentFormat, ResponseCode> {
    match message::uint_option(req, CoapOption::ContentFormat) {
        None => Err(ResponseCode::BadRequest),
        Some(Ok(n)) => u16::try_from(n)
            .ok()
            .and_then(ContentFormat::from_u16)
            .ok_or(ResponseCode::UnsupportedContentFormat),
        Some(Err(())) => Err(ResponseCode::BadOption),
    }
}

fn content(format: ContentFormat, payload: Vec<u8>) -> Packet {
    let mut resp = message::response(ResponseCode::Content);
    message::set_uint_option(
        &mut resp,
        CoapOption::ContentFormat,
        u32::from(format.as_u16()),
    );
    resp.payload = payload;
    resp
}

fn param(name: &str, value: String) -> LinkParam {
    LinkParam {
        name: name.into(),
        value: Some(value),
        quoted: false,
    }
}

/// The link parameters of written attributes, in a fixed order.
fn attribute_params(a: &NotificationAttributes, swap_gt_lt: bool) -> Vec<LinkParam> {
    let mut out = Vec::new();
    let num = |v: f64| {
        if v.fract() == 0.0 && v.abs() < 1e15 {
            format!("{}", v as i64)
        } else {
            format!("{v}")
        }
    };
    if let Some(v) = a.pmin {
        out.push(param("pmin", v.to_string()));
    }
    if let Some(v) = a.pmax {
        out.push(param("pmax", v.to_string()));
    }
    let (gt, lt) = if swap_gt_lt {
        (a.lt, a.gt)
    } else {
        (a.gt, a.lt)
    };
    if let Some(v) = gt {
        out.push(param("gt", num(v)));
    }
    if let Some(v) = lt {
        out.push(param("lt", num(v)));
    }
    if let Some(v) = a.st {
        out.push(param("st", num(v)));
    }
    if let Some(v) = a.epmin {
        out.push(param("epmin", v.to_string()));
    }
    if let Some(v) = a.epmax {
        out.push(param("epmax", v.to_string()));
    }
    out
}

impl Client {
    /// The attributes written at exactly `path`.
    fn written_at(&self, path: &ObjectPath) -> NotificationAttributes {
        self.observations
            .written()
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, a)| NotificationAttributes::from(a))
            .unwrap_or_default()
    }

    /// The attributes a resource inherits: object, then instance, then its
    /// own (the more specific wins), without the Server object's defaults.
    fn inherited_at(&self, path: &ObjectPath) -> NotificationAttributes {
        self.observations.effective(*path, (None, None))
    }

    /// Adds the written attributes to Discover links (LwM2M 1.1 Core TS
    /// §5.4.2): every link carries the attributes written at its own level;
    /// on a Discover of a resource, the resource also carries those it
    /// inherits from its instance and object.
    pub(super) fn dm_discover_attributes(&self, target: &ObjectPath, links: &mut Vec<Link>) {
        if target.level() == 3
            && self
                .store
                .defs()
                .resource_at(target)
                .is_some_and(|d| d.multiple)
            && let Ok(recs) = self.store.read(target)
        {
            // A multiple resource lists those of its instances that carry
            // attributes of their own (int-260 lists none, int-261 one).
            for r in recs.iter().filter(|r| r.path.level() == 4) {
                if self
                    .observations
                    .written()
                    .iter()
                    .any(|(p, _)| *p == r.path)
                {
                    links.push(Link::path(r.path));
                }
            }
        }
        let swap = self.cfg.deviates(Deviation::DiscoverSwapsGtLt);
        let skip_instances = self
            .cfg
            .deviates(Deviation::DiscoverDropsInstanceAttributes);
        for l in links.iter_mut() {
            let rig_proto::link::LinkTarget::Path(p) = l.target else {
                continue;
            };
            let attrs = if p == *target && p.level() == 3 {
                self.inherited_at(&p)
            } else if p.level() == 4 && skip_instances {
                NotificationAttributes::default()
            } else {
                self.written_at(&p)
            };
            // After `dim`, if any (link parameter order is not significant).
            l.params.extend(attribute_params(&attrs, swap));
        }
    }

    /// Write-Attributes on the Security object is for the Bootstrap-Server
    /// only (ETS int-221): 4.01.
    pub(super) fn dm_write_attributes_guard(&mut self, path: &ObjectPath) -> Option<Packet> {
        (path.object_id().map(|o| o.0) == Some(SECURITY)).then(|| {
            self.log(format!(
                "Write-Attributes on {path}: the Security object is closed"
            ));
            message::response(ResponseCode::Unauthorized)
        })
    }

    /// A planted deviation for a Read, if one applies: the answer to send
    /// instead.
    pub(super) fn dm_read_deviation(
        &mut self,
        path: &ObjectPath,
        accept: Option<ContentFormat>,
    ) -> Option<Packet> {
        let ids = path.ids();
        if self.cfg.deviates(Deviation::SecurityReadable) && ids.first() == Some(&SECURITY) {
            let recs = vec![Record::new(
                ObjectPath::resource(0, 0, 0),
                self.cfg.server.as_str(),
            )];
            let bytes = content::encode(ContentFormat::Tlv, path, &recs, self.store.defs()).ok()?;
            return Some(content(ContentFormat::Tlv, bytes));
        }
        if self.cfg.deviates(Deviation::DeviceInfoAsOpaque)
            && accept == Some(ContentFormat::Text)
            && ids.len() == 3
            && ids[0] == 3
            && ids[2] <= 2
        {
            let v = self.store.get_str(path)?.as_bytes().to_vec();
            return Some(content(ContentFormat::Opaque, v));
        }
        if self.cfg.deviates(Deviation::Lwm2mJsonAsSenml)
            && accept == Some(ContentFormat::Lwm2mJson)
        {
            let recs = self.store.read(path).ok()?;
            let bytes =
                content::encode(ContentFormat::SenmlJson, path, &recs, self.store.defs()).ok()?;
            return Some(content(ContentFormat::SenmlJson, bytes));
        }
        if self.cfg.deviates(Deviation::CborBooleanAsInteger)
            && accept == Some(ContentFormat::Cbor)
            && let Some(Value::Boolean(b)) = self.store.get(path)
        {
            // CBOR unsigned integer 0 or 1 instead of false/true.
            return Some(content(ContentFormat::Cbor, vec![u8::from(*b)]));
        }
        if self.cfg.deviates(Deviation::TlvWrongInstance)
            && accept == Some(ContentFormat::Tlv)
            && ids.len() == 2
        {
            // The instance's resources wrapped in an Object Instance TLV
            // that names instance id + 1.
            let moved: Vec<Record> = self
                .store
                .read(path)
                .ok()?
                .into_iter()
                .filter_map(|r| {
                    let mut i = r.path.ids();
                    i[1] += 1;
                    let p = match i.as_slice() {
                        [o, n, r] => ObjectPath::resource(*o, *n, *r),
                        [o, n, r, ri] => ObjectPath::resource_instance(*o, *n, *r, *ri),
                        _ => return None,
                    };
                    Some(Record {
                        path: p,
                        value: r.value,
                    })
                })
                .collect();
            let base = ObjectPath::object(ids[0]);
            let bytes =
                content::encode(ContentFormat::Tlv, &base, &moved, self.store.defs()).ok()?;
            return Some(content(ContentFormat::Tlv, bytes));
        }
        None
    }

    /// A planted deviation for a Write, if one applies: the answer (and the
    /// action) to use instead of the real Write.
    pub(super) fn dm_write_deviation(
        &mut self,
        path: &ObjectPath,
        format: ContentFormat,
        records: &[Record],
        replace: bool,
    ) -> Option<(Packet, Option<Action>)> {
        if self.cfg.deviates(Deviation::CborWriteRefused) && format == ContentFormat::Cbor {
            return Some((
                message::response(ResponseCode::UnsupportedContentFormat),
                None,
            ));
        }
        if self.cfg.deviates(Deviation::WriteReadOnly)
            && records
                .iter()
                .any(|r| r.path == ObjectPath::resource(1, 0, 0))
        {
            for r in records {
                self.store.force_set(r.path, r.value.clone());
            }
            return Some((message::response(ResponseCode::Changed), None));
        }
        if self.cfg.deviates(Deviation::PartialUpdateReplaces) && !replace && path.level() == 2 {
            // Drop the writable resources the request did not carry.
            let written: Vec<ObjectPath> = records.iter().map(|r| r.path).collect();
            self.store.drop_writable_except(path, &written);
        }
        None
    }

    /// Whether a planted deviation suppresses the Update a partial update
    /// of the lifetime asks for.
    pub(super) fn dm_suppress_update(&self, replace: bool) -> bool {
        !replace && self.cfg.deviates(Deviation::PartialUpdateNoUpdate)
    }

    /// Whether a planted deviation swallows the reboot of Execute /3/0/4.
    pub(super) fn dm_suppress_reboot(&self) -> bool {
        self.cfg.deviates(Deviation::RebootWithoutRegister)
    }

    /// Planted timing deviations of a new observation's attributes.
    pub(super) fn dm_observe_attributes(
        &self,
        mut a: NotificationAttributes,
    ) -> NotificationAttributes {
        if self.cfg.deviates(Deviation::LateNotification) {
            a.pmax = a.pmax.map(|p| p.saturating_mul(2));
        }
        if self.cfg.deviates(Deviation::EarlyNotification) {
            a.pmax = a.pmin.map(|p| (p / 2).max(1));
            a.pmin = Some(0);
        }
        a
    }

    /// Read-Composite (`FETCH /`, LwM2M 1.1 Core TS §6.3.8): the body lists
    /// paths (SenML JSON or CBOR); the answer holds the readable values
    /// under them, in the Accept format (default: the request's). A path
    /// that does not exist or cannot be read is left out (ETS int-236,
    /// int-281); `/` means every object but Security.
    pub(super) fn dm_fetch(&mut self, req: &Packet) -> Packet {
        let format = match request_format(req) {
            Ok(f) => f,
            Err(code) => return message::response(code),
        };
        let paths = match content::senml::decode_paths(format, &req.payload) {
            Ok(p) => p,
            Err(e) => {
                self.log(format!("Read-Composite: cannot decode the path list: {e}"));
                return message::response(ResponseCode::BadRequest);
            }
        };
        let accept = match message::uint_option(req, CoapOption::Accept) {
            None => format,
            Some(Ok(n)) => match u16::try_from(n).ok().and_then(ContentFormat::from_u16) {
                Some(cf) => cf,
                None => return message::response(ResponseCode::NotAcceptable),
            },
            Some(Err(())) => return message::response(ResponseCode::BadOption),
        };
        let accept = if self.cfg.deviates(Deviation::CompositeIgnoresAccept)
            && accept == ContentFormat::SenmlJson
        {
            ContentFormat::SenmlCbor
        } else {
            accept
        };
        if !matches!(accept, ContentFormat::SenmlJson | ContentFormat::SenmlCbor) {
            return message::response(ResponseCode::NotAcceptable);
        }
        let missing_fails = self.cfg.deviates(Deviation::CompositeMissingPathFails);
        let records = match self.read_paths("Read-Composite", &paths, missing_fails) {
            Ok(r) => r,
            Err(code) => return message::response(code),
        };
        match content::encode(accept, &ObjectPath::Root, &records, self.store.defs()) {
            Ok(bytes) => content(accept, bytes),
            Err(e) => {
                self.log(format!("Read-Composite: cannot encode: {e}"));
                message::response(ResponseCode::InternalServerError)
            }
        }
    }

    /// Write-Composite (`iPATCH /`, LwM2M 1.1 Core TS §6.3.9): every record
    /// is checked and applied, or none is.
    pub(super) fn dm_ipatch(&mut self, req: &Packet) -> (Packet, Option<Action>) {
        let format = match request_format(req) {
            Ok(f) => f,
            Err(code) => return (message::response(code), None),
        };
        if !matches!(format, ContentFormat::SenmlJson | ContentFormat::SenmlCbor) {
            return (
                message::response(ResponseCode::UnsupportedContentFormat),
                None,
            );
        }
        let records =
            match content::decode(format, &ObjectPath::Root, &req.payload, self.store.defs()) {
                Ok(r) => r,
                Err(e) => {
                    self.log(format!("Write-Composite: cannot decode {format}: {e}"));
                    return (message::response(ResponseCode::BadRequest), None);
                }
            };
        let mut trial = self.store.clone();
        let mut changed = Vec::new();
        for rec in records {
            let target = rec.path;
            match trial.write(&target, vec![rec], true) {
                Ok(c) => changed.extend(c),
                Err(r) => return (self.refused(r), None),
            }
        }
        self.store = trial;
        let mut params = UpdateParams::default();
        for p in &changed {
            params.lifetime |= *p == ObjectPath::resource(1, 0, 1);
            params.binding |= *p == ObjectPath::resource(1, 0, 7);
        }
        let action = (params != UpdateParams::default()).then_some(Action::UpdateWith(params));
        (message::response(ResponseCode::Changed), action)
    }
}

impl Client {
    /// Console `send <path>...`: LwM2M Send (`POST /dp`, LwM2M 1.1 Core TS
    /// §6.4.5) of the readable values under the paths, in SenML CBOR. Held
    /// while the Register is in flight; refused while not registered, and
    /// while `/1/0/23` (Mute Send) is true.
    pub(super) fn dm_send(&mut self, now: rig_proto::time::Instant, paths: &[String]) {
        use crate::console::Output;
        use rig_proto::registration::RegistrationState;
        match self.reg.state() {
            RegistrationState::Registered => {}
            // The Register is in flight (its 2.01 may be on the wire): send
            // once it succeeds, as a device would, within reason.
            RegistrationState::Registering if self.sends_after_register.len() < 8 => {
                self.sends_after_register.push(paths.to_vec());
                return;
            }
            _ => {
                self.outputs
                    .push_back(Output::Error("send".into(), "not registered".into()));
                return;
            }
        }
        let mut targets = Vec::new();
        for p in paths {
            match p.parse::<ObjectPath>() {
                Ok(t) => targets.push(t),
                Err(_) => {
                    self.outputs
                        .push_back(Output::Error("send".into(), format!("`{p}` is not a path")));
                    return;
                }
            }
        }
        let muted = self.store.get(&ObjectPath::resource(1, 0, 23)) == Some(&Value::Boolean(true));
        if muted && !self.cfg.deviates(Deviation::SendIgnoresMute) {
            self.outputs.push_back(Output::Error(
                "send".into(),
                "muted by /1/0/23 (Mute Send)".into(),
            ));
            return;
        }
        if self.cfg.deviates(Deviation::SendSecurityObject)
            && targets.iter().any(|t| t.level() == 1)
        {
            targets.push(ObjectPath::object(SECURITY));
        }
        let mut records: Vec<Record> = Vec::new();
        for t in &targets {
            let found = if t.object_id().map(|o| o.0) == Some(SECURITY) {
                // Only the planted deviation gets here.
                Ok(self
                    .store
                    .security_values()
                    .into_iter()
                    .map(|(p, v)| Record { path: p, value: v })
                    .collect())
            } else {
                self.store.read(t)
            };
            match found {
                Ok(r) => {
                    for rec in r {
                        if !records.iter().any(|x| x.path == rec.path) {
                            records.push(rec);
                        }
                    }
                }
                Err(r) => {
                    self.outputs
                        .push_back(Output::Error("send".into(), format!("{t}: {}", r.reason)));
                    return;
                }
            }
        }
        let format = if self.cfg.deviates(Deviation::SendInLwm2mJson)
            && targets.iter().all(|t| t.level() >= 3)
        {
            // SenML JSON bytes labelled as LwM2M JSON (11543).
            ContentFormat::Lwm2mJson
        } else {
            ContentFormat::SenmlCbor
        };
        let body_format = if format == ContentFormat::Lwm2mJson {
            ContentFormat::SenmlJson
        } else {
            format
        };
        let payload =
            match content::encode(body_format, &ObjectPath::Root, &records, self.store.defs()) {
                Ok(b) => b,
                Err(e) => {
                    self.outputs
                        .push_back(Output::Error("send".into(), format!("cannot encode: {e}")));
                    return;
                }
            };
        let mut req = message::request(rig_proto::coap::Method::Post, true, "/dp");
        message::set_uint_option(
            &mut req,
            CoapOption::ContentFormat,
            u32::from(format.as_u16()),
        );
        req.payload = payload;
        let len = req.payload.len();
        match self.coap.send_request(now, self.server, req) {
            Ok(_) => {
                self.log(format!(
                    "-> POST /dp ({len} bytes, {} values)",
                    records.len()
                ));
                self.outputs.push_back(Output::Ok("send"));
            }
            Err(e) => self
                .outputs
                .push_back(Output::Error("send".into(), e.to_string())),
        }
    }
}

impl Client {
    /// The readable values under `paths` (`/`: every object but Security),
    /// each once, in path order; a path that cannot be read is left out.
    fn composite_records(&mut self, paths: &[ObjectPath]) -> Vec<Record> {
        self.read_paths("composite", paths, false)
            .unwrap_or_default()
    }

    /// The readable values under `paths` (`/`: every object but Security),
    /// each once, in path order. A path that cannot be read is left out and
    /// logged under `what`, except that with `missing_fails` a path that does
    /// not exist makes the whole read 4.04.
    fn read_paths(
        &mut self,
        what: &str,
        paths: &[ObjectPath],
        missing_fails: bool,
    ) -> Result<Vec<Record>, ResponseCode> {
        let mut records: Vec<Record> = Vec::new();
        for p in paths {
            let found = if p.is_root() {
                let objects: Vec<u16> = self
                    .store
                    .instances()
                    .map(|(o, _)| o)
                    .filter(|o| *o != SECURITY)
                    .collect();
                let mut all = Vec::new();
                for o in dedup(objects) {
                    if let Ok(r) = self.store.read(&ObjectPath::object(o)) {
                        all.extend(r);
                    }
                }
                Ok(all)
            } else {
                self.store.read(p)
            };
            match found {
                Ok(r) => {
                    for rec in r {
                        if !records.iter().any(|x| x.path == rec.path) {
                            records.push(rec);
                        }
                    }
                }
                Err(r) if missing_fails && r.code == ResponseCode::NotFound => {
                    return Err(ResponseCode::NotFound);
                }
                Err(r) => self.log(format!("{what}: {p} left out: {}", r.reason)),
            }
        }
        records.sort_by_key(|r| r.path);
        Ok(records)
    }

    /// An Observe-Composite was established: remembers its path list and
    /// returns its attributes, those in force for the first listed path that
    /// has attributes written at or above it, else the Server's defaults.
    pub(super) fn dm_composite_start(
        &mut self,
        id: rig_proto::coap::ObservationId,
        req: &Packet,
    ) -> NotificationAttributes {
        let paths = request_format(req)
            .ok()
            .and_then(|f| content::senml::decode_paths(f, &req.payload).ok())
            .unwrap_or_default();
        let attrs = self.composite_attributes(&paths);
        self.composite.retain(|(i, _)| *i != id);
        self.composite.push((id, paths));
        attrs
    }

    /// The attributes in force for an Observe-Composite of `paths`: those
    /// of the first path at or under a Write-Attributes target, else the
    /// root's (the defaults).
    fn composite_attributes(&self, paths: &[ObjectPath]) -> NotificationAttributes {
        let defaults = self.default_periods();
        paths
            .iter()
            .find(|p| {
                self.observations
                    .written()
                    .iter()
                    .any(|(w, _)| !w.is_root() && w.is_prefix_of(p))
            })
            .map(|p| self.observations.effective(*p, defaults))
            .unwrap_or_else(|| self.observations.effective(ObjectPath::Root, defaults))
    }

    /// Write-Attributes on `written` changed the attributes in force for
    /// the Observe-Composite observations listing a path at or under it
    /// (ETS int-310): they take the new ones, as `dm_composite_start` picks.
    pub(super) fn dm_composite_attributes_changed(
        &mut self,
        now: rig_proto::time::Instant,
        written: &ObjectPath,
    ) {
        let mut updates = Vec::new();
        for (id, paths) in &self.composite {
            if !paths.iter().any(|p| written.is_prefix_of(p)) {
                continue;
            }
            let attrs = self.composite_attributes(paths);
            updates.push((*id, self.dm_observe_attributes(attrs)));
        }
        for (id, attrs) in updates {
            self.observations.set_attributes(now, id, attrs);
        }
        self.send_notifications(now);
    }

    /// The values a notification carries: the observed path's, or for an
    /// Observe-Composite those under its path list.
    pub(super) fn dm_notification_records(
        &mut self,
        path: &ObjectPath,
        id: rig_proto::coap::ObservationId,
    ) -> Result<Vec<Record>, crate::objects::Refusal> {
        if !path.is_root() {
            return self.store.read(path);
        }
        let paths = self
            .composite
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, p)| p.clone())
            .unwrap_or_default();
        Ok(self.composite_records(&paths))
    }
}

fn dedup(mut v: Vec<u16>) -> Vec<u16> {
    v.dedup();
    v
}
