//! The core objects of `--objects` on the client side: Create and Delete of
//! Portfolio (16) instances, Connectivity Statistics (7) Start/Stop and its
//! counters, and the core-object deviations (`--deviate`).
//!
//! A child module of `client`, so it works on the client's own state; the
//! client calls it from `dispatch`, `execute`, `handle_datagram`,
//! `poll_transmit` and the timers.

use rig_proto::coap::{CoapOption, Packet, ResponseCode, message};
use rig_proto::content;
use rig_proto::path::ObjectPath;
use rig_proto::time::Instant;
use rig_proto::value::Value;

use super::{Action, Client};
use crate::config::Deviation;
use crate::objects::CONNECTIVITY_STATISTICS;

/// Connectivity Statistics (Object 7) collection: bytes and datagrams seen
/// since Execute Start, until Execute Stop or the collection period ends.
#[derive(Clone, Debug, Default)]
pub(super) struct Stats {
    collecting: bool,
    tx_bytes: u64,
    rx_bytes: u64,
    messages: u64,
    total: u64,
    max: u64,
    /// When the collection period (`/7/0/8`, scaled) ends it.
    stop_at: Option<Instant>,
}

/// Kilobytes, rounded up (Tx Data and Rx Data are in kB).
fn kb(bytes: u64) -> i64 {
    i64::try_from(bytes.div_ceil(1024)).unwrap_or(i64::MAX)
}

impl Client {
    /// Create (`POST` to an object, LwM2M 1.1 Core TS §6.3.6): 2.01 with
    /// the new instance's Location-Path, then an Update with the new object
    /// list. Only the Portfolio's instances are created; other objects 4.05.
    pub(super) fn core_create(
        &mut self,
        req: &Packet,
        path: &ObjectPath,
    ) -> (Packet, Option<Action>) {
        let object = path.ids()[0];
        let deviant = self.cfg.deviates(Deviation::CreateDeviceInstance) && object == 3;
        if !deviant && !self.store.is_creatable(object) {
            let code = if self.store.has_object(object) {
                ResponseCode::MethodNotAllowed
            } else {
                ResponseCode::NotFound
            };
            self.log(format!("Create on {path}: refused ({code:?})"));
            return (message::response(code), None);
        }
        if deviant {
            let mut resp = message::response(ResponseCode::Created);
            resp.add_option(CoapOption::LocationPath, b"3".to_vec());
            resp.add_option(CoapOption::LocationPath, b"1".to_vec());
            return (resp, None);
        }
        let format = match self.format_of(req, "Create", path) {
            Ok(cf) => cf,
            Err(code) => return (message::response(code), None),
        };
        // The payload names its instance (an Object Instance TLV, SenML
        // names) or holds bare resources for an instance we pick.
        let defs = self.store.defs().clone();
        let records = match content::decode(format, path, &req.payload, &defs) {
            Ok(r) if r.iter().all(|r| r.path.resource_id().is_some()) => r,
            first => {
                let free = match self.store.free_instance(object) {
                    Ok(i) => i,
                    Err(r) => return (self.refused(r), None),
                };
                let inst = ObjectPath::instance(object, free);
                match content::decode(format, &inst, &req.payload, &defs) {
                    Ok(r) => r,
                    Err(e) => {
                        let why = first.err().map(|e| e.to_string()).unwrap_or_default();
                        self.log(format!(
                            "Create on {path}: cannot decode {format}: {e} ({why})"
                        ));
                        return (message::response(ResponseCode::BadRequest), None);
                    }
                }
            }
        };
        match self.store.create(object, records) {
            Ok(id) => {
                self.log(format!("created /{object}/{id}"));
                let mut resp = message::response(ResponseCode::Created);
                resp.add_option(CoapOption::LocationPath, object.to_string().into_bytes());
                resp.add_option(CoapOption::LocationPath, id.to_string().into_bytes());
                (
                    resp,
                    Some(Action::ObjectsChanged(ObjectPath::instance(object, id))),
                )
            }
            Err(r) => (self.refused(r), None),
        }
    }

    /// Delete (`DELETE` an object instance, §6.3.7): 2.02, then an Update
    /// with the new object list. Fixed instances (`/3/0`...) 4.05.
    pub(super) fn core_delete(&mut self, path: &ObjectPath) -> (Packet, Option<Action>) {
        let ids = path.ids();
        let (object, instance) = (ids[0], ids[1]);
        if self.cfg.deviates(Deviation::DeleteKeepsInstance) && self.store.is_creatable(object) {
            self.log(format!(
                "Delete {path}: answered, instance kept (deviation)"
            ));
            return (message::response(ResponseCode::Deleted), None);
        }
        match self.store.delete(object, instance) {
            Ok(()) => {
                self.log(format!("deleted {path}"));
                (
                    message::response(ResponseCode::Deleted),
                    Some(Action::ObjectsChanged(*path)),
                )
            }
            Err(r) => (self.refused(r), None),
        }
    }

    /// An instance was created or deleted: the Register's object list
    /// changes (an Update carries it) and observations under it re-evaluate.
    pub(super) fn core_objects_changed(&mut self, now: Instant, path: ObjectPath) {
        let links = super::object_links(
            &self.store,
            self.cfg.deviates(Deviation::ListSecurityObject),
        );
        self.reg.set_objects(now, &links);
        self.second_set_objects(now, &links);
        self.values_changed(now, &[path]);
    }

    /// Execute `/7/0/6` (Start: counters to 0, collect) or `/7/0/7` (Stop).
    pub(super) fn core_execute(&mut self, path: &ObjectPath) {
        let ids = path.ids();
        if ids[0] != CONNECTIVITY_STATISTICS {
            return;
        }
        match ids[2] {
            6 => {
                let period = self
                    .store
                    .get_u64(&ObjectPath::resource(7, 0, 8))
                    .unwrap_or(0);
                self.stats = Stats {
                    collecting: true,
                    stop_at: (period > 0).then(|| {
                        self.last_now + self.cfg.scaled(std::time::Duration::from_secs(period))
                    }),
                    ..Stats::default()
                };
                self.log("connectivity statistics: collecting".into());
                self.stats_to_store();
            }
            7 if !self.cfg.deviates(Deviation::StatsCountAfterStop) => {
                self.stats.collecting = false;
                self.stats.stop_at = None;
                self.log("connectivity statistics: stopped".into());
            }
            _ => {}
        }
    }

    /// Counts a datagram sent (`tx`) or received while collecting.
    pub(super) fn core_count(&mut self, tx: bool, len: usize) {
        if !self.stats.collecting {
            return;
        }
        let len = len as u64;
        if tx {
            self.stats.tx_bytes += len;
        } else {
            self.stats.rx_bytes += len;
        }
        self.stats.messages += 1;
        self.stats.total += len;
        self.stats.max = self.stats.max.max(len);
        self.stats_to_store();
    }

    /// When the collection period ends, if it runs.
    pub(super) fn core_poll_timeout(&self) -> Option<Instant> {
        self.stats.stop_at
    }

    /// The collection period ended.
    pub(super) fn core_timeout(&mut self, now: Instant) {
        if self.stats.stop_at.is_some_and(|t| t <= now) {
            self.stats.collecting = false;
            self.stats.stop_at = None;
            self.log("connectivity statistics: collection period over".into());
        }
    }

    fn stats_to_store(&mut self) {
        if !self.store.has_object(CONNECTIVITY_STATISTICS) {
            return;
        }
        let s = &self.stats;
        let avg = s.total.checked_div(s.messages).unwrap_or(0);
        let values = [
            (2, kb(s.tx_bytes)),
            (3, kb(s.rx_bytes)),
            (4, i64::try_from(s.max).unwrap_or(i64::MAX)),
            (5, i64::try_from(avg).unwrap_or(i64::MAX)),
        ];
        for (r, v) in values {
            self.store
                .set_value(ObjectPath::resource(7, 0, r), Value::Integer(v));
        }
    }
}
