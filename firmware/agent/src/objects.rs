//! The agent's object store: objects 0, 1, 3 and 33333 as data (with
//! `--objects`, also 4, 6, 7 and 16; with `--server2`, a second server
//! account), and the LwM2M access rules for Read, Write, Execute, Create
//! and Delete on them.
//!
//! Values are kept flat, as rig-proto's [`Record`]s are: one [`Value`] per
//! resource path (`/o/i/r`) or resource-instance path (`/o/i/r/ri`). Types,
//! operations and multiplicity come from rig-proto's object definitions
//! ([`Registry::core`]); the store never invents its own. The store decides
//! nothing about registration: it reports what a Write changed and which
//! resource an Execute hit, and the client acts on it.

use std::collections::{BTreeMap, BTreeSet};

use rig_proto::coap::ResponseCode;
use rig_proto::link::{Link, LinkParam};
use rig_proto::object::{Registry, ResourceType};
use rig_proto::path::ObjectPath;
use rig_proto::value::{Record, Value};

use crate::config::AgentConfig;

/// Object ids the agent serves.
pub const SECURITY: u16 = 0;
/// Server object.
pub const SERVER: u16 = 1;
/// Device object.
pub const DEVICE: u16 = 3;
/// Connectivity Monitoring (`--objects`).
pub const CONNECTIVITY_MONITORING: u16 = 4;
/// Location (`--objects`).
pub const LOCATION: u16 = 6;
/// Connectivity Statistics (`--objects`).
pub const CONNECTIVITY_STATISTICS: u16 = 7;
/// Portfolio (`--objects`).
pub const PORTFOLIO: u16 = 16;
/// The rig test object.
pub const TEST_OBJECT: u16 = rig_proto::object::defs::TEST_OBJECT_ID;

/// Why the store refused an operation: the CoAP code to answer and a reason for the log.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    /// The response code (4.xx).
    pub code: ResponseCode,
    /// Why, for the agent's log.
    pub reason: String,
}

fn refuse(code: ResponseCode, reason: impl Into<String>) -> Refusal {
    Refusal {
        code,
        reason: reason.into(),
    }
}

/// The objects and their values.
#[derive(Clone, Debug)]
pub struct ObjectStore {
    defs: Registry,
    instances: BTreeSet<(u16, u16)>,
    values: BTreeMap<ObjectPath, Value>,
    /// The executable resources this agent implements (the others of the
    /// definitions are absent: 4.04).
    executables: BTreeSet<ObjectPath>,
    /// Objects served even when they have no instance (`--objects`; a
    /// Portfolio with every instance deleted is still `</16>`).
    supported: BTreeSet<u16>,
    /// Objects whose instances the server may Create and Delete (16).
    creatable: BTreeSet<u16>,
}

impl ObjectStore {
    /// The factory configuration from the command line: ETS configuration
    /// C.1 (C.3 when pmin/pmax are given) for one NoSec server account.
    pub fn factory(cfg: &AgentConfig) -> ObjectStore {
        let mut s = ObjectStore {
            defs: Registry::core(),
            instances: BTreeSet::new(),
            values: BTreeMap::new(),
            executables: BTreeSet::new(),
            supported: BTreeSet::new(),
            creatable: BTreeSet::new(),
        };
        let r = ObjectPath::resource;
        s.instances.insert((SECURITY, 0));
        s.set(r(0, 0, 0), Value::String(cfg.server.clone()));
        s.set(r(0, 0, 1), Value::Boolean(false));
        s.set(r(0, 0, 2), Value::Integer(3)); // NoSec
        s.set(r(0, 0, 3), Value::Opaque(Vec::new()));
        s.set(r(0, 0, 4), Value::Opaque(Vec::new()));
        s.set(r(0, 0, 5), Value::Opaque(Vec::new()));
        s.set(r(0, 0, 10), Value::Integer(i64::from(cfg.ssid)));

        s.instances.insert((SERVER, 0));
        s.set(r(1, 0, 0), Value::Integer(i64::from(cfg.ssid)));
        s.set(r(1, 0, 1), Value::UnsignedInteger(u64::from(cfg.lifetime)));
        if let Some(pmin) = cfg.pmin {
            s.set(r(1, 0, 2), Value::Integer(i64::from(pmin)));
        }
        if let Some(pmax) = cfg.pmax {
            s.set(r(1, 0, 3), Value::Integer(i64::from(pmax)));
        }
        s.set(r(1, 0, 5), Value::Integer(i64::from(cfg.disable_timeout)));
        s.set(r(1, 0, 6), Value::Boolean(false));
        s.set(r(1, 0, 7), Value::String(cfg.binding.clone()));
        s.set(r(1, 0, 23), Value::Boolean(false)); // Mute Send

        s.executables.insert(r(1, 0, 4)); // Disable
        s.executables.insert(r(1, 0, 8)); // Registration Update Trigger
        if cfg.bootstrap_uri.is_some() {
            s.executables.insert(r(1, 0, 9)); // Bootstrap-Request Trigger
        }

        s.instances.insert((DEVICE, 0));
        s.executables.insert(r(3, 0, 4)); // Reboot
        s.executables.insert(r(3, 0, 5)); // Factory Reset
        s.set(r(3, 0, 0), Value::String("rig".into()));
        s.set(r(3, 0, 1), Value::String("rig-agent".into()));
        s.set(r(3, 0, 2), Value::String(cfg.endpoint.clone()));
        s.set(r(3, 0, 3), Value::String(env!("CARGO_PKG_VERSION").into()));
        s.set(
            ObjectPath::resource_instance(3, 0, 11, 0),
            Value::Integer(0),
        );
        s.set(r(3, 0, 16), Value::String("U".into()));
        s.set(r(3, 0, 13), Value::Time(0));
        // ETS configuration C.4: two power sources (DC, battery) with their
        // voltage (mV) and current (mA).
        let ri = ObjectPath::resource_instance;
        s.set(ri(3, 0, 6, 0), Value::Integer(0));
        s.set(ri(3, 0, 6, 1), Value::Integer(1));
        s.set(ri(3, 0, 7, 0), Value::Integer(5000));
        s.set(ri(3, 0, 7, 1), Value::Integer(3700));
        s.set(ri(3, 0, 8, 0), Value::Integer(120));
        s.set(ri(3, 0, 8, 1), Value::Integer(80));

        s.instances.insert((TEST_OBJECT, 0));
        s.set(r(TEST_OBJECT, 0, 0), Value::String(cfg.test_string.clone()));
        s.set(r(TEST_OBJECT, 0, 1), Value::Integer(cfg.test_int));
        s.set(r(TEST_OBJECT, 0, 2), Value::Float(cfg.test_float));
        s.set(r(TEST_OBJECT, 0, 3), Value::Boolean(cfg.test_bool));
        s.install_extra_objects(cfg);
        if let Some(uri) = &cfg.server2 {
            // ETS configuration C.14: a second server account.
            s.instances.insert((SECURITY, 1));
            s.set(r(0, 1, 0), Value::String(uri.clone()));
            s.set(r(0, 1, 1), Value::Boolean(false));
            s.set(r(0, 1, 2), Value::Integer(3));
            s.set(r(0, 1, 10), Value::Integer(i64::from(cfg.ssid2)));
            s.instances.insert((SERVER, 1));
            s.set(r(1, 1, 0), Value::Integer(i64::from(cfg.ssid2)));
            s.set(r(1, 1, 1), Value::UnsignedInteger(u64::from(cfg.lifetime)));
            s.set(r(1, 1, 5), Value::Integer(i64::from(cfg.disable_timeout)));
            s.set(r(1, 1, 6), Value::Boolean(false));
            s.set(r(1, 1, 7), Value::String(cfg.binding.clone()));
            s.executables.insert(r(1, 1, 8));
        }
        s
    }

    /// The objects of `--objects` (ETS configurations C.5, C.7, C.9, C.12)
    /// and the Device object's time zone resources. Nothing without the flag.
    fn install_extra_objects(&mut self, cfg: &AgentConfig) {
        let objects = &cfg.objects;
        if objects.0.is_empty() {
            return;
        }
        let r = ObjectPath::resource;
        let ri = ObjectPath::resource_instance;
        self.set(r(3, 0, 14), Value::String("+00:00".into()));
        self.set(r(3, 0, 15), Value::String("Etc/UTC".into()));
        let ids: Vec<u16> = objects.0.clone();
        for id in ids {
            self.supported.insert(id);
            match id {
                CONNECTIVITY_MONITORING => {
                    // An Ethernet-like bearer (41) on loopback.
                    self.instances.insert((id, 0));
                    self.set(r(id, 0, 0), Value::Integer(41));
                    self.set(ri(id, 0, 1, 0), Value::Integer(41));
                    self.set(r(id, 0, 2), Value::Integer(-60));
                    self.set(r(id, 0, 3), Value::Integer(100));
                    if !cfg.deviates(crate::config::Deviation::NoIpAddresses) {
                        self.set(ri(id, 0, 4, 0), Value::String("127.0.0.1".into()));
                    }
                    self.set(ri(id, 0, 5, 0), Value::String("127.0.0.1".into()));
                }
                LOCATION => {
                    self.instances.insert((id, 0));
                    self.set(r(id, 0, 0), Value::Float(48.8566));
                    self.set(r(id, 0, 1), Value::Float(2.3522));
                    self.set(r(id, 0, 2), Value::Float(35.0));
                    self.set(r(id, 0, 3), Value::Float(10.0));
                    if !cfg.deviates(crate::config::Deviation::NoLocationTimestamp) {
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_secs() as i64)
                            .unwrap_or(0);
                        self.set(r(id, 0, 5), Value::Time(now));
                    }
                }
                CONNECTIVITY_STATISTICS => {
                    self.instances.insert((id, 0));
                    for res in 0..=5 {
                        self.set(r(id, 0, res), Value::Integer(0));
                    }
                    self.set(r(id, 0, 8), Value::Integer(0));
                    self.executables.insert(r(id, 0, 6)); // Start
                    self.executables.insert(r(id, 0, 7)); // Stop
                }
                PORTFOLIO => {
                    // ETS configuration C.12: the host device's identity.
                    self.creatable.insert(id);
                    self.instances.insert((id, 0));
                    self.set(ri(id, 0, 0, 0), Value::String("rig-host-1".into()));
                    self.set(ri(id, 0, 0, 1), Value::String("rig".into()));
                    self.set(ri(id, 0, 0, 2), Value::String("rig-host".into()));
                    self.set(
                        ri(id, 0, 0, 3),
                        Value::String(env!("CARGO_PKG_VERSION").into()),
                    );
                }
                _ => {}
            }
        }
    }

    /// Whether the server may Create and Delete instances of `object`.
    pub fn is_creatable(&self, object: u16) -> bool {
        self.creatable.contains(&object)
    }

    /// Whether object `object` is served (with or without instances).
    pub fn has_object(&self, object: u16) -> bool {
        self.supported.contains(&object) || self.instances.iter().any(|(o, _)| *o == object)
    }

    /// The served objects that have no instance (listed as `</o>` in the
    /// Register).
    pub fn empty_objects(&self) -> Vec<u16> {
        self.supported
            .iter()
            .copied()
            .filter(|o| !self.instances.iter().any(|(x, _)| x == o))
            .collect()
    }

    /// Create: a new instance of `object` (the lowest free id unless the
    /// records name one) holding `records`. Returns the instance id.
    pub fn create(&mut self, object: u16, records: Vec<Record>) -> Result<u16, Refusal> {
        if !self.has_object(object) {
            return Err(refuse(
                ResponseCode::NotFound,
                format!("no object /{object}"),
            ));
        }
        if !self.creatable.contains(&object) {
            return Err(refuse(
                ResponseCode::MethodNotAllowed,
                format!("Create on /{object}: its instances are fixed"),
            ));
        }
        let named: BTreeSet<u16> = records
            .iter()
            .filter_map(|r| r.path.instance_id().map(|i| i.0))
            .collect();
        let id = match named.len() {
            0 => self.free_instance(object)?,
            1 => *named.iter().next().unwrap_or(&0),
            _ => {
                return Err(refuse(
                    ResponseCode::BadRequest,
                    format!("Create on /{object} names several instances"),
                ));
            }
        };
        if self.instances.contains(&(object, id)) {
            return Err(refuse(
                ResponseCode::BadRequest,
                format!("instance /{object}/{id} exists"),
            ));
        }
        let inst = ObjectPath::instance(object, id);
        self.instances.insert((object, id));
        if let Err(e) = self.write(&inst, records, true) {
            self.instances.remove(&(object, id));
            self.values.retain(|p, _| !inst.is_prefix_of(p));
            return Err(e);
        }
        Ok(id)
    }

    /// The lowest instance id of `object` not in use.
    pub fn free_instance(&self, object: u16) -> Result<u16, Refusal> {
        (0..u16::MAX)
            .find(|i| !self.instances.contains(&(object, *i)))
            .ok_or_else(|| refuse(ResponseCode::BadRequest, "no free instance id"))
    }

    /// Delete: removes instance `/object/instance` and its values.
    pub fn delete(&mut self, object: u16, instance: u16) -> Result<(), Refusal> {
        let inst = ObjectPath::instance(object, instance);
        self.check_object(&inst)?;
        if !self.creatable.contains(&object) {
            return Err(refuse(
                ResponseCode::MethodNotAllowed,
                format!("Delete on {inst}: its instances are fixed"),
            ));
        }
        self.instances.remove(&(object, instance));
        self.values.retain(|p, _| !inst.is_prefix_of(p));
        Ok(())
    }

    fn set(&mut self, path: ObjectPath, value: Value) {
        self.values.insert(path, value);
    }

    /// Sets a value the agent itself owns (Object 5's resources, see `fota`).
    pub(crate) fn set_value(&mut self, path: ObjectPath, value: Value) {
        self.set(path, value);
    }

    /// Adds an object instance (Object 5's `/5/0`, see `fota`).
    pub(crate) fn add_instance(&mut self, object: u16, instance: u16) {
        self.instances.insert((object, instance));
    }

    /// Marks an executable resource as implemented (`/5/0/2`, see `fota`).
    pub(crate) fn add_executable(&mut self, path: ObjectPath) {
        self.executables.insert(path);
    }

    /// The Security object's values (test-only deviations; servers never
    /// get them).
    pub fn security_values(&self) -> Vec<(ObjectPath, Value)> {
        self.values
            .iter()
            .filter(|(p, _)| p.object_id().map(|o| o.0) == Some(SECURITY))
            .map(|(p, v)| (*p, v.clone()))
            .collect()
    }

    /// Sets a value without any access check (test-only deviations).
    pub fn force_set(&mut self, path: ObjectPath, value: Value) {
        self.values.insert(path, value);
    }

    /// Removes the writable resources under `instance` that are not in
    /// `keep` (test-only deviation: a partial update treated as a replace).
    pub fn drop_writable_except(&mut self, instance: &ObjectPath, keep: &[ObjectPath]) {
        let defs = &self.defs;
        self.values.retain(|p, _| {
            !(instance.is_prefix_of(p)
                && !keep.iter().any(|k| k.is_prefix_of(p))
                && defs.resource_at(p).is_some_and(|d| d.operations.writable()))
        });
    }

    /// The value at a resource (or resource instance) path, if set.
    pub fn get(&self, path: &ObjectPath) -> Option<&Value> {
        self.values.get(path)
    }

    /// An unsigned value (lifetime and such), if set and numeric.
    pub fn get_u64(&self, path: &ObjectPath) -> Option<u64> {
        match self.get(path)? {
            Value::UnsignedInteger(u) => Some(*u),
            Value::Integer(i) | Value::Time(i) => u64::try_from(*i).ok(),
            _ => None,
        }
    }

    /// A string value, if set.
    pub fn get_str(&self, path: &ObjectPath) -> Option<&str> {
        match self.get(path)? {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The object definitions the store uses.
    pub fn defs(&self) -> &Registry {
        &self.defs
    }

    /// The object instances, in order (`/0/0` included).
    pub fn instances(&self) -> impl Iterator<Item = (u16, u16)> + '_ {
        self.instances.iter().copied()
    }

    /// The object version of object `id` (`1.0` if unknown).
    pub fn object_version(&self, id: u16) -> &str {
        self.defs
            .get(id)
            .map(|d| d.version.as_ref())
            .unwrap_or("1.0")
    }

    fn check_object(&self, path: &ObjectPath) -> Result<u16, Refusal> {
        let Some(o) = path.object_id() else {
            return Err(refuse(
                ResponseCode::MethodNotAllowed,
                "no operation on the root path",
            ));
        };
        if o.0 == SECURITY {
            return Err(refuse(
                ResponseCode::Unauthorized,
                "the Security object is for the Bootstrap-Server only",
            ));
        }
        if !self.has_object(o.0) {
            return Err(refuse(ResponseCode::NotFound, format!("no object {path}")));
        }
        if let Some(i) = path.instance_id()
            && !self.instances.contains(&(o.0, i.0))
        {
            return Err(refuse(
                ResponseCode::NotFound,
                format!("no instance {}", ObjectPath::instance(o.0, i.0)),
            ));
        }
        Ok(o.0)
    }

    /// Read: every readable value at or under `path`, in path order.
    pub fn read(&self, path: &ObjectPath) -> Result<Vec<Record>, Refusal> {
        self.check_object(path)?;
        if path.resource_id().is_some() {
            let def = self
                .defs
                .resource_at(path)
                .ok_or_else(|| refuse(ResponseCode::NotFound, format!("no resource {path}")))?;
            if !def.operations.readable() {
                return Err(refuse(
                    ResponseCode::MethodNotAllowed,
                    format!("{path} is not readable"),
                ));
            }
        }
        let records: Vec<Record> = self
            .values
            .iter()
            .filter(|(p, _)| path.is_prefix_of(p))
            .filter(|(p, _)| {
                self.defs
                    .resource_at(p)
                    .is_some_and(|d| d.operations.readable())
            })
            .map(|(p, v)| Record {
                path: *p,
                value: v.clone(),
            })
            .collect();
        if records.is_empty() && path.resource_id().is_some() {
            return Err(refuse(
                ResponseCode::NotFound,
                format!("{path} has no value"),
            ));
        }
        Ok(records)
    }

    /// The type of the resource at `path` (for decoding a Write payload).
    pub fn kind_at(&self, path: &ObjectPath) -> Option<ResourceType> {
        self.defs.kind_at(path)
    }

    /// Write (`replace` for PUT, partial update for POST): checks every record
    /// first, then applies them all. Returns the paths whose value changed.
    pub fn write(
        &mut self,
        path: &ObjectPath,
        records: Vec<Record>,
        replace: bool,
    ) -> Result<Vec<ObjectPath>, Refusal> {
        self.check_object(path)?;
        if path.instance_id().is_none() {
            return Err(refuse(
                ResponseCode::MethodNotAllowed,
                format!("Write on object level {path}"),
            ));
        }
        if !replace && path.resource_id().is_some() {
            // Partial update (POST) is defined on object instances only; POST
            // on a resource is Execute, handled by the client.
            return Err(refuse(
                ResponseCode::MethodNotAllowed,
                format!("partial update on {path}"),
            ));
        }
        let mut checked = Vec::with_capacity(records.len());
        for rec in records {
            if !path.is_prefix_of(&rec.path) {
                return Err(refuse(
                    ResponseCode::BadRequest,
                    format!("{} is outside the target {path}", rec.path),
                ));
            }
            let def = self.defs.resource_at(&rec.path).ok_or_else(|| {
                refuse(ResponseCode::NotFound, format!("no resource {}", rec.path))
            })?;
            if !def.operations.writable() {
                return Err(refuse(
                    ResponseCode::MethodNotAllowed,
                    format!("{} is not writable", rec.path),
                ));
            }
            if def.multiple != (rec.path.level() == 4) && rec.path.level() >= 3 {
                return Err(refuse(
                    ResponseCode::BadRequest,
                    format!(
                        "{}: {} resource written at the wrong level",
                        rec.path,
                        if def.multiple { "multiple" } else { "single" }
                    ),
                ));
            }
            let value = rec
                .value
                .coerce(def.kind)
                .map_err(|e| refuse(ResponseCode::BadRequest, format!("{}: {e}", rec.path)))?;
            checked.push((rec.path, value));
        }
        if replace && path.resource_id().is_some() && path.resource_instance_id().is_none() {
            // Replacing a multiple resource drops the instances not written.
            self.values
                .retain(|p, _| !(p.level() == 4 && path.is_prefix_of(p)));
        }
        let mut changed = Vec::new();
        for (p, v) in checked {
            if self.values.get(&p) != Some(&v) {
                changed.push(p);
            }
            self.values.insert(p, v);
        }
        Ok(changed)
    }

    /// Execute: checks that `path` is an executable resource of an existing instance.
    pub fn check_execute(&self, path: &ObjectPath) -> Result<(), Refusal> {
        self.check_object(path)?;
        if path.resource_id().is_none() || path.resource_instance_id().is_some() {
            return Err(refuse(
                ResponseCode::MethodNotAllowed,
                format!("Execute on {path}: not a resource"),
            ));
        }
        let def = self
            .defs
            .resource_at(path)
            .ok_or_else(|| refuse(ResponseCode::NotFound, format!("no resource {path}")))?;
        if !def.operations.executable() {
            return Err(refuse(
                ResponseCode::MethodNotAllowed,
                format!("{path} is not executable"),
            ));
        }
        if !self.executables.contains(path) {
            return Err(refuse(
                ResponseCode::NotFound,
                format!("{path} is not implemented by this agent"),
            ));
        }
        Ok(())
    }

    /// Discover: the links at and under `path` (LwM2M 1.1 Core TS §5.4.2):
    /// the object (with `ver` when not 1.0), its instances, and every present
    /// resource (with `dim` for multiple resources). Attributes set by
    /// Write-Attributes are not kept yet, so none are reported.
    pub fn discover(&self, path: &ObjectPath) -> Result<Vec<Link>, Refusal> {
        let o = self.check_object(path)?;
        if path.resource_instance_id().is_some() {
            return Err(refuse(
                ResponseCode::BadRequest,
                format!("Discover on a resource instance {path}"),
            ));
        }
        let mut present: BTreeSet<ObjectPath> = self.executables.iter().copied().collect();
        for p in self.values.keys() {
            if let Some(r) = p.resource_path() {
                present.insert(r);
            }
        }
        if path.resource_id().is_some() && !present.contains(path) {
            return Err(refuse(
                ResponseCode::NotFound,
                format!("no resource {path}"),
            ));
        }
        let mut links = Vec::new();
        if path.instance_id().is_none() {
            let mut l = Link::path(ObjectPath::object(o));
            let ver = self.object_version(o);
            if ver != "1.0" {
                l.params.push(LinkParam {
                    name: "ver".into(),
                    value: Some(ver.to_string()),
                    quoted: false,
                });
            }
            links.push(l);
        }
        for (obj, inst) in self.instances.iter().copied().filter(|(obj, _)| *obj == o) {
            let ip = ObjectPath::instance(obj, inst);
            if !(path.is_prefix_of(&ip) || ip.is_prefix_of(path)) {
                continue;
            }
            if path.resource_id().is_none() {
                links.push(Link::path(ip));
            }
            for r in present
                .iter()
                .filter(|r| ip.is_prefix_of(r) && path.is_prefix_of(r))
            {
                let mut l = Link::path(*r);
                if self.defs.resource_at(r).is_some_and(|d| d.multiple) {
                    let dim = self
                        .values
                        .keys()
                        .filter(|p| p.level() == 4 && r.is_prefix_of(p))
                        .count();
                    l.params.push(LinkParam {
                        name: "dim".into(),
                        value: Some(dim.to_string()),
                        quoted: false,
                    });
                }
                links.push(l);
            }
        }
        Ok(links)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn store() -> ObjectStore {
        let cfg = AgentConfig::try_parse_from([
            "rig-agent",
            "--server",
            "coap://127.0.0.1:5683",
            "--endpoint",
            "ep9",
            "--lifetime",
            "300",
        ])
        .unwrap();
        ObjectStore::factory(&cfg)
    }

    fn p(s: &str) -> ObjectPath {
        s.parse().unwrap()
    }

    #[test]
    fn device_object_holds_configuration_c1_values() {
        let s = store();
        let recs = s.read(&p("/3/0")).unwrap();
        let get = |path: &str| {
            recs.iter()
                .find(|r| r.path == p(path))
                .map(|r| r.value.clone())
        };
        assert_eq!(get("/3/0/0"), Some(Value::String("rig".into())));
        assert_eq!(get("/3/0/1"), Some(Value::String("rig-agent".into())));
        assert_eq!(get("/3/0/2"), Some(Value::String("ep9".into())));
        assert_eq!(get("/3/0/11/0"), Some(Value::Integer(0)));
        assert_eq!(get("/3/0/16"), Some(Value::String("U".into())));
        assert_eq!(s.get_u64(&p("/1/0/1")), Some(300));
    }

    #[test]
    fn security_object_is_closed_to_servers() {
        let mut s = store();
        assert_eq!(
            s.read(&p("/0")).unwrap_err().code,
            ResponseCode::Unauthorized
        );
        assert_eq!(
            s.write(&p("/0/0/0"), vec![Record::new(p("/0/0/0"), "x")], true)
                .unwrap_err()
                .code,
            ResponseCode::Unauthorized
        );
    }

    #[test]
    fn write_checks_operations_and_types_before_changing_anything() {
        let mut s = store();
        let e = s
            .write(&p("/1/0/0"), vec![Record::new(p("/1/0/0"), 5i64)], true)
            .unwrap_err();
        assert_eq!(e.code, ResponseCode::MethodNotAllowed);
        let e = s
            .write(
                &p("/1/0"),
                vec![
                    Record::new(p("/1/0/1"), 20i64),
                    Record::new(p("/1/0/6"), "yes"),
                ],
                false,
            )
            .unwrap_err();
        assert_eq!(e.code, ResponseCode::BadRequest);
        assert_eq!(
            s.get_u64(&p("/1/0/1")),
            Some(300),
            "nothing applied after a refused record"
        );
        let changed = s
            .write(&p("/1/0/1"), vec![Record::new(p("/1/0/1"), 20i64)], true)
            .unwrap();
        assert_eq!(changed, vec![p("/1/0/1")]);
        assert_eq!(s.get(&p("/1/0/1")), Some(&Value::UnsignedInteger(20)));
    }

    #[test]
    fn reads_refuse_missing_and_unreadable_paths() {
        let s = store();
        assert_eq!(s.read(&p("/5")).unwrap_err().code, ResponseCode::NotFound);
        assert_eq!(s.read(&p("/3/1")).unwrap_err().code, ResponseCode::NotFound);
        assert_eq!(
            s.read(&p("/3/0/4")).unwrap_err().code,
            ResponseCode::MethodNotAllowed
        );
        assert_eq!(
            s.read(&p("/3/0/9")).unwrap_err().code,
            ResponseCode::NotFound
        );
    }

    #[test]
    fn discover_lists_object_instances_and_present_resources() {
        let s = store();
        let text = |p: &str| rig_proto::link::format(&s.discover(&self::p(p)).unwrap());
        let obj = text("/3");
        assert!(
            obj.starts_with(
                "</3>;ver=1.1,</3/0>,</3/0/0>,</3/0/1>,</3/0/2>,</3/0/3>,</3/0/4>,</3/0/5>"
            ),
            "{obj}"
        );
        assert!(obj.contains("</3/0/11>;dim=1"), "{obj}");
        assert!(obj.ends_with("</3/0/16>"), "{obj}");
        assert_eq!(text("/3/0/11"), "</3/0/11>;dim=1");
        assert_eq!(
            text("/33333/0"),
            "</33333/0>,</33333/0/0>,</33333/0/1>,</33333/0/2>,</33333/0/3>"
        );
        assert_eq!(
            s.discover(&p("/3/0/9")).unwrap_err().code,
            ResponseCode::NotFound
        );
        assert_eq!(
            s.discover(&p("/0")).unwrap_err().code,
            ResponseCode::Unauthorized
        );
    }

    #[test]
    fn execute_only_on_executable_resources() {
        let s = store();
        assert!(s.check_execute(&p("/1/0/8")).is_ok());
        assert!(s.check_execute(&p("/3/0/4")).is_ok());
        assert_eq!(
            s.check_execute(&p("/1/0/1")).unwrap_err().code,
            ResponseCode::MethodNotAllowed
        );
        assert_eq!(
            s.check_execute(&p("/1/0")).unwrap_err().code,
            ResponseCode::MethodNotAllowed
        );
        // Defined as executable but not implemented by the agent: absent.
        assert_eq!(
            s.check_execute(&p("/1/0/9")).unwrap_err().code,
            ResponseCode::NotFound
        );
    }
}
