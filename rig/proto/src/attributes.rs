//! Notification attribute evaluation (LwM2M 1.1 TS §5.1.2, "Attributes
//! classification" for Observe): decides when a client sends a notification
//! for an observed resource, given pmin, pmax, gt, lt, st, epmin and epmax.
//!
//! A pure state machine in the crate's vocabulary: feed it value changes and
//! timer expiries with `now`, it answers with a [`Decision`] (notify now?
//! sample now? next deadline?). It never reads a clock.
//!
//! Rules implemented:
//! - notify when (a change condition holds AND pmin has elapsed since the
//!   last notification) OR pmax has expired;
//! - a change condition that holds before pmin elapses stays pending and
//!   fires when pmin elapses;
//! - pmax is ignored unless it is greater than pmin (and non-zero);
//! - without gt/lt/st any change of value is a change condition; with them,
//!   a condition is: the value crossed gt or lt (in either direction)
//!   compared with the previous sample, or moved by at least st from the
//!   last notified value (the conditions are OR-ed);
//! - epmin: samples closer than epmin to the previous evaluation are held
//!   and evaluated when epmin elapses; epmax: the machine asks for a sample
//!   ([`Decision::sample`]) at least every epmax.
//!
//! Call order: [`Notifier::new`] → [`Notifier::start`] when the Observe
//! registration is answered → [`Notifier::on_value`] for every new sample →
//! [`Notifier::on_timeout`] whenever [`Decision::next`] passes. When a
//! decision says `notify`, send the notification: the machine already
//! counts it as sent.

use core::time::Duration;

use crate::time::{Instant, scale_down};

/// The notification attributes of one observation (seconds for periods).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NotificationAttributes {
    /// Minimum period between notifications.
    pub pmin: Option<u32>,
    /// Maximum period between notifications.
    pub pmax: Option<u32>,
    /// Greater-than threshold.
    pub gt: Option<f64>,
    /// Less-than threshold.
    pub lt: Option<f64>,
    /// Step.
    pub st: Option<f64>,
    /// Minimum evaluation period.
    pub epmin: Option<u32>,
    /// Maximum evaluation period.
    pub epmax: Option<u32>,
}

impl From<&crate::link::Attributes> for NotificationAttributes {
    fn from(a: &crate::link::Attributes) -> Self {
        NotificationAttributes {
            pmin: a.pmin,
            pmax: a.pmax,
            gt: a.gt,
            lt: a.lt,
            st: a.st,
            epmin: a.epmin,
            epmax: a.epmax,
        }
    }
}

impl NotificationAttributes {
    /// pmax if it takes effect (non-zero and greater than pmin).
    pub fn effective_pmax(&self) -> Option<u32> {
        match (self.pmax, self.pmin) {
            (Some(0), _) | (None, _) => None,
            (Some(max), Some(min)) if max <= min => None,
            (Some(max), _) => Some(max),
        }
    }

    fn has_conditions(&self) -> bool {
        self.gt.is_some() || self.lt.is_some() || self.st.is_some()
    }
}

/// What to do now, and when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Send a notification with the latest value now.
    pub notify: bool,
    /// Take a fresh sample and feed it to [`Notifier::on_value`] (epmax).
    pub sample: bool,
    /// Call [`Notifier::on_timeout`] at this instant.
    pub next: Option<Instant>,
}

/// A sampled value: numbers take part in gt/lt/st; anything else only
/// signals "changed".
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    /// A numeric resource value.
    Number(f64),
    /// A non-numeric value that changed.
    Changed,
}

/// The per-observation attribute state machine.
#[derive(Debug, Clone)]
pub struct Notifier {
    attrs: NotificationAttributes,
    time_scale: u32,
    last_notify: Instant,
    last_notified: Option<f64>,
    previous: Option<f64>,
    latest: Option<Sample>,
    pending: bool,
    deferred: bool,
    last_eval: Instant,
}

impl Notifier {
    /// A notifier for `attrs`, with every period divided by `time_scale`.
    pub fn new(attrs: NotificationAttributes, time_scale: u32) -> Notifier {
        Notifier {
            attrs,
            time_scale,
            last_notify: Instant::ZERO,
            last_notified: None,
            previous: None,
            latest: None,
            pending: false,
            deferred: false,
            last_eval: Instant::ZERO,
        }
    }

    /// The attributes in force.
    pub fn attributes(&self) -> &NotificationAttributes {
        &self.attrs
    }

    /// Replaces the attributes (Write-Attributes); timers restart from the last notification.
    pub fn set_attributes(&mut self, attrs: NotificationAttributes) {
        self.attrs = attrs;
    }

    fn secs(&self, s: u32) -> Duration {
        scale_down(Duration::from_secs(u64::from(s)), self.time_scale)
    }

    /// The observation was established at `now` with `value` (the Observe
    /// response counts as the first notification).
    pub fn start(&mut self, now: Instant, value: Sample) -> Decision {
        self.last_notify = now;
        self.last_eval = now;
        self.latest = Some(value);
        if let Sample::Number(v) = value {
            self.last_notified = Some(v);
            self.previous = Some(v);
        }
        self.pending = false;
        self.deferred = false;
        self.decide(now, false)
    }

    /// A new sample of the observed value at `now`.
    pub fn on_value(&mut self, now: Instant, value: Sample) -> Decision {
        self.latest = Some(value);
        if let Some(epmin) = self.attrs.epmin
            && now < self.last_eval + self.secs(epmin)
        {
            self.deferred = true;
            return self.decide(now, false);
        }
        self.evaluate(now);
        self.decide(now, false)
    }

    /// A deadline returned in [`Decision::next`] has passed.
    pub fn on_timeout(&mut self, now: Instant) -> Decision {
        if self.deferred {
            let epmin = self.attrs.epmin.map_or(Duration::ZERO, |e| self.secs(e));
            if now >= self.last_eval + epmin {
                self.deferred = false;
                self.evaluate(now);
            }
        }
        let sample = self
            .attrs
            .epmax
            .is_some_and(|e| now >= self.last_eval + self.secs(e));
        if sample {
            // The caller will feed a fresh sample; restart the epmax window.
            self.last_eval = now;
        }
        self.decide(now, sample)
    }

    fn evaluate(&mut self, now: Instant) {
        self.last_eval = now;
        let Some(sample) = self.latest else { return };
        let cond = match sample {
            Sample::Changed => true,
            Sample::Number(v) => {
                let cond = if !self.attrs.has_conditions() {
                    self.last_notified != Some(v)
                } else {
                    let crossed = |t: f64| {
                        self.previous
                            .is_some_and(|p| (p <= t && v > t) || (p > t && v <= t))
                    };
                    let gt = self.attrs.gt.is_some_and(crossed);
                    let lt = self.attrs.lt.is_some_and(|t| {
                        self.previous
                            .is_some_and(|p| (p >= t && v < t) || (p < t && v >= t))
                    });
                    let st = self.attrs.st.is_some_and(|s| {
                        self.last_notified.is_none_or(|last| (v - last).abs() >= s)
                    });
                    gt || lt || st
                };
                self.previous = Some(v);
                cond
            }
        };
        if cond {
            self.pending = true;
        }
    }

    fn decide(&mut self, now: Instant, sample: bool) -> Decision {
        let pmin = self.secs(self.attrs.pmin.unwrap_or(0));
        let pmax = self.attrs.effective_pmax().map(|p| self.secs(p));
        let mut notify = false;
        if self.pending && now >= self.last_notify + pmin {
            notify = true;
        }
        if pmax.is_some_and(|p| now >= self.last_notify + p) {
            notify = true;
        }
        if notify {
            self.last_notify = now;
            self.pending = false;
            if let Some(Sample::Number(v)) = self.latest {
                self.last_notified = Some(v);
            }
        }
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        if self.pending {
            at(self.last_notify + pmin);
        }
        if let Some(p) = pmax {
            at(self.last_notify + p);
        }
        if let (true, Some(e)) = (self.deferred, self.attrs.epmin) {
            at(self.last_eval + self.secs(e));
        }
        if let Some(e) = self.attrs.epmax {
            at(self.last_eval + self.secs(e));
        }
        Decision {
            notify,
            sample,
            next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> Instant {
        Instant::ZERO + Duration::from_secs(s)
    }

    fn attrs(pmin: Option<u32>, pmax: Option<u32>) -> NotificationAttributes {
        NotificationAttributes {
            pmin,
            pmax,
            ..NotificationAttributes::default()
        }
    }

    #[test]
    fn change_before_pmin_waits_for_pmin() {
        let mut n = Notifier::new(attrs(Some(10), None), 1);
        n.start(t(0), Sample::Number(1.0));
        let d = n.on_value(t(3), Sample::Number(2.0));
        assert!(!d.notify);
        assert_eq!(d.next, Some(t(10)));
        let d = n.on_timeout(t(10));
        assert!(d.notify);
        assert_eq!(d.next, None);
        // After pmin, a change notifies at once.
        let d = n.on_value(t(25), Sample::Number(3.0));
        assert!(d.notify);
        // Same value again: no change condition.
        let d = n.on_value(t(40), Sample::Number(3.0));
        assert!(!d.notify);
    }

    #[test]
    fn pmax_forces_periodic_notifications_and_is_ignored_when_not_above_pmin() {
        let mut n = Notifier::new(attrs(Some(5), Some(30)), 1);
        let d = n.start(t(0), Sample::Number(1.0));
        assert_eq!(d.next, Some(t(30)));
        let d = n.on_timeout(t(30));
        assert!(d.notify);
        assert_eq!(d.next, Some(t(60)));
        let mut n = Notifier::new(attrs(Some(30), Some(30)), 1);
        assert_eq!(n.start(t(0), Sample::Number(1.0)).next, None);
        assert_eq!(attrs(Some(30), Some(10)).effective_pmax(), None);
        assert_eq!(attrs(None, Some(0)).effective_pmax(), None);
        assert_eq!(attrs(None, Some(10)).effective_pmax(), Some(10));
    }

    #[test]
    fn gt_and_lt_fire_on_crossing_in_either_direction() {
        let a = NotificationAttributes {
            gt: Some(25.0),
            lt: Some(10.0),
            ..NotificationAttributes::default()
        };
        let mut n = Notifier::new(a, 1);
        n.start(t(0), Sample::Number(20.0));
        assert!(
            !n.on_value(t(1), Sample::Number(24.0)).notify,
            "no crossing"
        );
        assert!(
            n.on_value(t(2), Sample::Number(26.0)).notify,
            "crossed gt upwards"
        );
        assert!(
            !n.on_value(t(3), Sample::Number(30.0)).notify,
            "still above"
        );
        assert!(
            n.on_value(t(4), Sample::Number(24.0)).notify,
            "crossed gt downwards"
        );
        assert!(n.on_value(t(5), Sample::Number(9.0)).notify, "crossed lt");
        assert!(!n.on_value(t(6), Sample::Number(5.0)).notify);
    }

    #[test]
    fn st_measures_from_the_last_notified_value() {
        let a = NotificationAttributes {
            st: Some(2.0),
            ..NotificationAttributes::default()
        };
        let mut n = Notifier::new(a, 1);
        n.start(t(0), Sample::Number(10.0));
        assert!(!n.on_value(t(1), Sample::Number(11.0)).notify);
        assert!(!n.on_value(t(2), Sample::Number(11.9)).notify);
        assert!(n.on_value(t(3), Sample::Number(12.0)).notify);
        assert!(!n.on_value(t(4), Sample::Number(10.5)).notify);
        assert!(n.on_value(t(5), Sample::Number(9.5)).notify);
    }

    #[test]
    fn epmin_defers_and_epmax_asks_for_samples() {
        let a = NotificationAttributes {
            epmin: Some(5),
            epmax: Some(20),
            ..NotificationAttributes::default()
        };
        let mut n = Notifier::new(a, 1);
        n.start(t(0), Sample::Number(1.0));
        let d = n.on_value(t(2), Sample::Number(2.0));
        assert!(!d.notify);
        assert_eq!(d.next, Some(t(5)));
        let d = n.on_timeout(t(5));
        assert!(d.notify, "deferred evaluation at epmin");
        assert_eq!(d.next, Some(t(25)));
        let d = n.on_timeout(t(25));
        assert!(d.sample && !d.notify);
    }

    #[test]
    fn time_scale_divides_periods_and_non_numeric_changes_notify() {
        let mut n = Notifier::new(attrs(Some(10), Some(60)), 10);
        assert_eq!(n.start(t(0), Sample::Changed).next, Some(t(6)));
        let d = n.on_value(t(0), Sample::Changed);
        assert_eq!(d.next, Some(t(1)));
        assert!(n.on_timeout(t(1)).notify);
    }

    proptest::proptest! {
        /// Driving the machine at its own deadlines: notifications are never
        /// closer than pmin (except none) and never further apart than pmax.
        #[test]
        fn periods_are_respected(pmin in 0u32..20, pmax in 0u32..60,
                                 changes in proptest::collection::vec((1u64..30, -50i32..50), 0..40)) {
            let a = attrs(Some(pmin), Some(pmax));
            let mut n = Notifier::new(a, 1);
            let mut now = t(0);
            let mut sent = vec![now];
            let mut d = n.start(now, Sample::Number(0.0));
            for (dt, v) in changes {
                let target = now + Duration::from_secs(dt);
                // Timers due before the change.
                while let Some(next) = d.next.filter(|x| *x <= target) {
                    now = next;
                    d = n.on_timeout(now);
                    if d.notify { sent.push(now); }
                }
                now = target;
                d = n.on_value(now, Sample::Number(f64::from(v)));
                if d.notify { sent.push(now); }
            }
            for w in sent.windows(2) {
                let gap = w[1].saturating_duration_since(w[0]);
                proptest::prop_assert!(gap >= Duration::from_secs(u64::from(pmin)), "gap {gap:?} < pmin {pmin}");
                if let Some(p) = a.effective_pmax() {
                    proptest::prop_assert!(gap <= Duration::from_secs(u64::from(p)), "gap {gap:?} > pmax {p}");
                }
            }
        }
    }
}
