//! Queue mode (LwM2M 1.1 TS §6.5) and forgotten registrations, in the core.
//!
//! A client that registered with `Q` is reachable only for CoAP's
//! MAX_TRANSMIT_WAIT (93 s, divided by the server's time scale) after it was
//! last heard from; then it sleeps until its next uplink. The core therefore
//! HOLDS every operation asked for a sleeping queue-mode client and sends the
//! held operations, in order, right after the client's next datagram (its
//! Update, usually), once that datagram was answered. An operation marked
//! `immediate` (a probe, [`super::super::Lwm2mServer::read_now`]) is sent
//! anyway; if the client answers it before any uplink of its own, it was
//! awake when it should sleep, and that is a [`Deviation`](crate::deviation::Deviation).
//!
//! Forgetting a registration (ETS int-105) drops it from the registry on the
//! core's next input, so the client's next Update is answered 4.04.

use std::time::Duration;

use rig_proto::coap::{self, RequestId};
use rig_proto::time::Instant as ProtoInstant;
use tokio::time::Instant;

use super::{Pending, ServerCore};
use crate::lwm2m::OpRequest;

impl ServerCore {
    /// How long a queue-mode client stays reachable after its last message.
    pub(super) fn awake_window(&self) -> Duration {
        queue_awake_window(self.time_scale)
    }

    /// If `endpoint` is a queue-mode client that should sleep now: the time
    /// it was last heard from.
    pub(super) fn asleep_since(&self, now: ProtoInstant, endpoint: &str) -> Option<Instant> {
        let at = self.tokio_time(now);
        let window = self.awake_window();
        let st = self.lock();
        let reg = st.registrations.get(endpoint)?;
        if !reg.queue_mode {
            return None;
        }
        let last = st
            .last_heard
            .get(endpoint)
            .copied()
            .unwrap_or_else(|| reg.refreshed_at());
        (at > last + window).then_some(last)
    }

    /// Holds `op` if its client sleeps (and it is not a probe); otherwise
    /// gives it back to be sent.
    pub(super) fn queue_hold(&mut self, now: ProtoInstant, op: OpRequest) -> Option<OpRequest> {
        if op.immediate || self.asleep_since(now, &op.endpoint).is_none() {
            return Some(op);
        }
        let ep = op.endpoint.clone();
        let held = self.held.entry(ep.clone()).or_default();
        held.push(op);
        let n = held.len();
        self.lock().held.insert(ep, n);
        None
    }

    /// After a datagram from `peer`: remember when its endpoint was heard
    /// from, and send what was held for it.
    pub(super) fn queue_after_datagram(&mut self, now: ProtoInstant, peer: std::net::SocketAddr) {
        let Some(ep) = self.endpoint_of_peer(peer) else {
            return;
        };
        let at = self.tokio_time(now);
        {
            let mut st = self.lock();
            st.last_heard.insert(ep.clone(), at);
            st.held.remove(&ep);
        }
        if let Some(ops) = self.held.remove(&ep) {
            for op in ops {
                self.handle_op(now, op);
            }
        }
    }

    /// A response to a request sent while the client should sleep: a
    /// deviation if no uplink of the client came in between.
    pub(super) fn check_queue_answer(&mut self, id: RequestId, p: &Pending) {
        let Some(last_before) = self.sent_asleep.remove(&id) else {
            return;
        };
        let (peer, last) = {
            let st = self.lock();
            (
                st.registrations.get(&p.endpoint).map(|r| r.peer),
                st.last_heard.get(&p.endpoint).copied(),
            )
        };
        if last.is_some_and(|l| l > last_before) {
            return;
        }
        if let Some(peer) = peer {
            let window = self.awake_window();
            self.deviation(
                Some(&p.endpoint),
                peer,
                format!(
                    "{} {}: a queue-mode client answered while it should sleep \
                     (no uplink for more than MAX_TRANSMIT_WAIT, {:.1} s)",
                    p.operation.name(),
                    p.operation.path(),
                    window.as_secs_f64()
                ),
                String::new(),
            );
        }
    }

    /// An Update or De-register for an unknown location was answered 4.04.
    pub(super) fn note_unknown_location(&self, at: Instant, location: &str, method: &'static str) {
        self.lock()
            .unknown_locations
            .push((method, location.to_string(), at));
    }

    /// Drops the registrations the handles asked to forget from the registry.
    pub(super) fn apply_forgets(&mut self) {
        let locations = std::mem::take(&mut self.lock().forgotten);
        for loc in locations {
            let id = loc.rsplit('/').next().unwrap_or_default().to_string();
            self.registry.deregister(&id);
        }
    }
}

/// MAX_TRANSMIT_WAIT of the default CoAP parameters divided by `time_scale`
/// (values below 1 count as 1).
pub(crate) fn queue_awake_window(time_scale: f64) -> Duration {
    let scale = if time_scale.is_finite() && time_scale >= 1.0 {
        time_scale
    } else {
        1.0
    };
    coap::Config::default().max_transmit_wait().div_f64(scale)
}
