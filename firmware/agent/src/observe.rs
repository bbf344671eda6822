//! Observe and notifications on the client side (LwM2M 1.1 Core TS §6.4.1 and
//! §5.1.2, RFC 7641): which observations are active, which notification
//! attributes apply to each, and when each must notify.
//!
//! Sans-IO and clock-free like the rest of the client: [`Observations`] keeps
//! one rig-proto [`Notifier`] per observation and answers "who must notify
//! now" and "when to come back". The [`crate::client::Client`] owns the CoAP
//! endpoint, so it encodes and sends the notifications themselves (NON, as
//! Anjay does by default) and tells this module about value changes,
//! cancellations (RST or GET with Observe=1, both seen by the endpoint) and
//! Write-Attributes.
//!
//! Attributes are inherited: a resource's own attributes win over its
//! instance's, which win over its object's; pmin and pmax fall back to the
//! Server object's defaults `/1/x/2` and `/1/x/3` (ETS configuration C.3 sets
//! 1 s and 10 s there).

use rig_proto::attributes::{Decision, NotificationAttributes, Notifier, Sample};
use rig_proto::coap::ObservationId;
use rig_proto::content::ContentFormat;
use rig_proto::link::Attributes;
use rig_proto::path::ObjectPath;
use rig_proto::time::Instant;

/// One established observation.
#[derive(Debug)]
struct Observed {
    id: ObservationId,
    path: ObjectPath,
    format: ContentFormat,
    notifier: Notifier,
    next: Option<Instant>,
    due: bool,
}

impl Observed {
    fn apply(&mut self, d: Decision) {
        self.due |= d.notify;
        self.next = d.next;
    }
}

/// A notification to send now: the observation, its path and the content
/// format of the Observe response (notifications keep it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    /// The endpoint's observation.
    pub id: ObservationId,
    /// The observed path.
    pub path: ObjectPath,
    /// The format of the notification's payload.
    pub format: ContentFormat,
}

/// The client's observations and written attributes; see the module doc.
#[derive(Debug, Default)]
pub struct Observations {
    /// Attributes written with Write-Attributes, per path, in write order.
    written: Vec<(ObjectPath, Attributes)>,
    active: Vec<Observed>,
    time_scale: u32,
}

impl Observations {
    /// No observations; notification periods divided by `time_scale`.
    pub fn new(time_scale: u32) -> Observations {
        Observations {
            written: Vec::new(),
            active: Vec::new(),
            time_scale: time_scale.max(1),
        }
    }

    /// Number of active observations.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    /// True when nothing is observed.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Write-Attributes on `path`: sets the given attributes and removes the
    /// ones named without a value (`?pmin`). Refuses gt/lt/st above the
    /// resource level (LwM2M 1.1 TS §5.1.2: they apply to numeric resources)
    /// and a pmax below pmin.
    pub fn write_attributes(
        &mut self,
        now: Instant,
        path: ObjectPath,
        new: &Attributes,
        defaults: (Option<u32>, Option<u32>),
    ) -> Result<(), String> {
        if path.resource_id().is_none()
            && (new.gt.is_some() || new.lt.is_some() || new.st.is_some())
        {
            return Err(format!("gt, lt and st apply to resources, not to {path}"));
        }
        let mut merged = self
            .written
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, a)| a.clone())
            .unwrap_or_default();
        macro_rules! take {
            ($($f:ident),*) => {$(
                if new.$f.is_some() { merged.$f = new.$f; }
                if new.cleared.iter().any(|c| c == stringify!($f)) { merged.$f = None; }
            )*};
        }
        take!(pmin, pmax, gt, lt, st, epmin, epmax);
        if let (Some(min), Some(max)) = (merged.pmin, merged.pmax)
            && max < min
        {
            return Err(format!("pmax {max} is smaller than pmin {min}"));
        }
        self.written.retain(|(p, _)| *p != path);
        self.written.push((path, merged));
        // Running observations at or below the path take the new attributes.
        for i in 0..self.active.len() {
            let o_path = self.active[i].path;
            if path.is_prefix_of(&o_path) {
                let attrs = self.effective(o_path, defaults);
                let o = &mut self.active[i];
                o.notifier.set_attributes(attrs);
                let d = o.notifier.on_timeout(now);
                o.apply(d);
            }
        }
        Ok(())
    }

    /// The attributes in force for an observation of `path`.
    pub fn effective(
        &self,
        path: ObjectPath,
        (default_pmin, default_pmax): (Option<u32>, Option<u32>),
    ) -> NotificationAttributes {
        let mut out = NotificationAttributes {
            pmin: default_pmin,
            pmax: default_pmax,
            ..NotificationAttributes::default()
        };
        // Object, then instance, then resource: the more specific one wins.
        let mut levels: Vec<&(ObjectPath, Attributes)> = self
            .written
            .iter()
            .filter(|(p, _)| p.is_prefix_of(&path) && !p.is_root())
            .collect();
        levels.sort_by_key(|(p, _)| p.level());
        for (_, a) in levels {
            let n = NotificationAttributes::from(a);
            out.pmin = n.pmin.or(out.pmin);
            out.pmax = n.pmax.or(out.pmax);
            out.gt = n.gt.or(out.gt);
            out.lt = n.lt.or(out.lt);
            out.st = n.st.or(out.st);
            out.epmin = n.epmin.or(out.epmin);
            out.epmax = n.epmax.or(out.epmax);
        }
        out
    }

    /// The client answered an Observe with 2.05 and the endpoint registered
    /// observation `id`.
    pub fn start(
        &mut self,
        now: Instant,
        id: ObservationId,
        path: ObjectPath,
        format: ContentFormat,
        attrs: NotificationAttributes,
        value: Sample,
    ) {
        self.active.retain(|o| o.id != id);
        let mut notifier = Notifier::new(attrs, self.time_scale);
        let d = notifier.start(now, value);
        let mut o = Observed {
            id,
            path,
            format,
            notifier,
            next: None,
            due: false,
        };
        o.apply(d);
        self.active.push(o);
    }

    /// Observation `id` takes new attributes (an Observe-Composite whose
    /// listed paths got new attributes).
    pub fn set_attributes(
        &mut self,
        now: Instant,
        id: ObservationId,
        attrs: NotificationAttributes,
    ) {
        if let Some(o) = self.active.iter_mut().find(|o| o.id == id) {
            o.notifier.set_attributes(attrs);
            let d = o.notifier.on_timeout(now);
            o.apply(d);
        }
    }

    /// The observation ended (RST, GET with Observe=1, or a CON notification
    /// that was never acknowledged). Returns whether it was known.
    pub fn cancel(&mut self, id: ObservationId) -> bool {
        let before = self.active.len();
        self.active.retain(|o| o.id != id);
        self.active.len() != before
    }

    /// Forgets every observation (reboot); written attributes too when `all`.
    pub fn clear(&mut self, all: bool) {
        self.active.clear();
        if all {
            self.written.clear();
        }
    }

    /// Values changed at these paths; `sample` gives the new sample of an
    /// observed path.
    pub fn changed(
        &mut self,
        now: Instant,
        changed: &[ObjectPath],
        mut sample: impl FnMut(&ObjectPath) -> Sample,
    ) {
        for o in &mut self.active {
            let hit = changed
                .iter()
                .any(|c| o.path.is_prefix_of(c) || c.is_prefix_of(&o.path));
            if hit {
                let d = o.notifier.on_value(now, sample(&o.path));
                o.apply(d);
            }
        }
    }

    /// A deadline from [`Observations::poll_timeout`] passed. Observations
    /// whose epmax asks for a fresh sample get `sample`.
    pub fn handle_timeout(&mut self, now: Instant, mut sample: impl FnMut(&ObjectPath) -> Sample) {
        for o in &mut self.active {
            if o.next.is_some_and(|t| t <= now) {
                let d = o.notifier.on_timeout(now);
                o.apply(d);
                if d.sample {
                    let d = o.notifier.on_value(now, sample(&o.path));
                    o.apply(d);
                }
            }
        }
    }

    /// The attributes written with Write-Attributes, per path (for Discover).
    pub fn written(&self) -> &[(ObjectPath, Attributes)] {
        &self.written
    }

    /// The observed paths.
    pub fn paths(&self) -> Vec<ObjectPath> {
        self.active.iter().map(|o| o.path).collect()
    }

    /// The earliest deadline of any observation.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.active.iter().filter_map(|o| o.next).min()
    }

    /// The notifications to send now (each at most once).
    pub fn take_due(&mut self) -> Vec<Due> {
        let mut out = Vec::new();
        for o in &mut self.active {
            if std::mem::take(&mut o.due) {
                out.push(Due {
                    id: o.id,
                    path: o.path,
                    format: o.format,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(s: u64) -> Instant {
        Instant::ZERO + Duration::from_secs(s)
    }

    fn attrs(q: &[&str]) -> Attributes {
        Attributes::from_query(q).unwrap()
    }

    #[test]
    fn inherits_from_object_to_resource_with_server_defaults() {
        let mut o = Observations::new(1);
        let p = ObjectPath::resource(33333, 0, 1);
        assert_eq!(o.effective(p, (Some(1), Some(10))).pmin, Some(1));
        o.write_attributes(
            at(0),
            ObjectPath::object(33333),
            &attrs(&["pmin=5", "pmax=50"]),
            (None, None),
        )
        .unwrap();
        o.write_attributes(
            at(0),
            ObjectPath::instance(33333, 0),
            &attrs(&["pmax=30"]),
            (None, None),
        )
        .unwrap();
        let e = o.effective(p, (Some(1), Some(10)));
        assert_eq!((e.pmin, e.pmax), (Some(5), Some(30)));
        // Clearing pmax on the instance falls back to the object's.
        o.write_attributes(
            at(0),
            ObjectPath::instance(33333, 0),
            &attrs(&["pmax"]),
            (None, None),
        )
        .unwrap();
        assert_eq!(o.effective(p, (None, None)).pmax, Some(50));
    }

    #[test]
    fn refuses_pmax_below_pmin_and_steps_on_instances() {
        let mut o = Observations::new(1);
        let e = o
            .write_attributes(
                at(0),
                ObjectPath::instance(3, 0),
                &attrs(&["pmin=10", "pmax=5"]),
                (None, None),
            )
            .unwrap_err();
        assert!(e.contains("pmax 5"), "{e}");
        let e = o
            .write_attributes(
                at(0),
                ObjectPath::instance(3, 0),
                &attrs(&["st=1"]),
                (None, None),
            )
            .unwrap_err();
        assert!(e.contains("resources"), "{e}");
    }

    #[test]
    fn pmax_makes_periodic_notifications_and_cancel_stops_them() {
        let mut o = Observations::new(1);
        let id = ObservationId(7);
        let p = ObjectPath::instance(33333, 0);
        let a = NotificationAttributes {
            pmin: Some(30),
            pmax: Some(30),
            ..Default::default()
        };
        o.start(at(0), id, p, ContentFormat::Tlv, a, Sample::Changed);
        assert!(o.take_due().is_empty());
        // pmax = pmin: pmax is ignored by the rules, so a change drives it.
        o.changed(at(10), &[ObjectPath::resource(33333, 0, 1)], |_| {
            Sample::Changed
        });
        assert!(o.take_due().is_empty(), "pmin holds the change back");
        let next = o.poll_timeout().unwrap();
        assert_eq!(next, at(30));
        o.handle_timeout(next, |_| Sample::Changed);
        assert_eq!(o.take_due().len(), 1);
        assert!(o.take_due().is_empty(), "each notification is taken once");
        assert!(o.cancel(id));
        assert!(o.poll_timeout().is_none());
        assert!(!o.cancel(id));
    }

    #[test]
    fn unrelated_changes_do_not_notify() {
        let mut o = Observations::new(1);
        let a = NotificationAttributes::default();
        o.start(
            at(0),
            ObservationId(1),
            ObjectPath::resource(33333, 0, 1),
            ContentFormat::Text,
            a,
            Sample::Number(1.0),
        );
        o.changed(at(5), &[ObjectPath::resource(33333, 0, 2)], |_| {
            Sample::Number(2.0)
        });
        assert!(o.take_due().is_empty());
        o.changed(at(6), &[ObjectPath::instance(33333, 0)], |_| {
            Sample::Number(2.0)
        });
        assert_eq!(o.take_due().len(), 1);
    }
}
