//! The second LwM2M server of `--server2` (ETS configuration C.14, cases
//! int-950 and int-951): its own registration (Register, Update schedule)
//! and its own observations and written attributes; the object store is
//! shared. NoSec only; access control is not enforced.
//!
//! A child module of `client`. Requests from the second server run through
//! the same `dispatch` with the second server's [`Observations`] swapped in,
//! so Write-Attributes, Discover and Observe see only that server's state.

use std::net::SocketAddr;

use rig_proto::coap::{Packet, RequestId};
use rig_proto::registration::ClientRegistration;
use rig_proto::time::Instant;

use super::Client;
use crate::observe::Observations;

/// The second server's state.
pub(super) struct Second {
    pub(super) addr: SocketAddr,
    reg: ClientRegistration,
    reg_request: Option<RequestId>,
    pub(super) observations: Observations,
}

impl Second {
    pub(super) fn new(addr: SocketAddr, reg: ClientRegistration, time_scale: u32) -> Second {
        Second {
            addr,
            reg,
            reg_request: None,
            observations: Observations::new(time_scale),
        }
    }
}

impl Client {
    /// Swaps the second server's observations with the client's (around the
    /// handling of a request from it, and its timers).
    pub(super) fn swap_second(&mut self) {
        if self
            .cfg
            .deviates(crate::config::Deviation::SharedAttributes)
        {
            return;
        }
        if let Some(s) = self.second.as_mut() {
            std::mem::swap(&mut self.observations, &mut s.observations);
        }
    }

    /// Whether `peer` is the second server.
    pub(super) fn is_second(&self, peer: SocketAddr) -> bool {
        self.second.as_ref().is_some_and(|s| s.addr == peer)
    }

    /// Registers with the second server (start, reboot).
    pub(super) fn second_register(&mut self, now: Instant) {
        let cfg = super::registration_config(&self.cfg, &self.store);
        let scale = self.cfg.time_scale_u32();
        if let Some(s) = self.second.as_mut() {
            *s = Second::new(s.addr, ClientRegistration::new(cfg), scale);
            s.reg.register(now);
        }
    }

    /// Sends what the second registration machine has queued.
    pub(super) fn second_pump(&mut self, now: Instant) {
        let Some(s) = self.second.as_mut() else {
            return;
        };
        if s.reg_request.is_some() {
            return;
        }
        let Some(req) = s.reg.poll_request(now) else {
            return;
        };
        let line = super::describe(&req);
        let addr = s.addr;
        match self.coap.send_request(now, addr, req) {
            Ok(id) => {
                if let Some(s) = self.second.as_mut() {
                    s.reg_request = Some(id);
                }
                self.log(format!("-> {line} (server 2)"));
            }
            Err(e) => self.log(format!("cannot send {line} to server 2: {e}")),
        }
    }

    /// An answer to the second registration's request, if it is one.
    pub(super) fn second_response(
        &mut self,
        now: Instant,
        id: RequestId,
        result: &Result<Packet, String>,
    ) -> bool {
        let Some(s) = self.second.as_mut() else {
            return false;
        };
        if s.reg_request != Some(id) {
            return false;
        }
        s.reg_request = None;
        let event = match result {
            Ok(p) => s.reg.handle_response(now, p),
            Err(_) => s.reg.handle_failure(now),
        };
        if let Some(ev) = event {
            self.log(format!("server 2: {ev:?}"));
        }
        true
    }

    /// The second registration's and observations' next deadline.
    pub(super) fn second_poll_timeout(&self) -> Option<Instant> {
        let s = self.second.as_ref()?;
        [s.reg.poll_timeout(), s.observations.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs the second registration's timers.
    pub(super) fn second_timeout(&mut self, now: Instant) {
        if let Some(s) = self.second.as_mut() {
            s.reg.handle_timeout(now);
        }
    }

    /// The second server's object list changed (Create, Delete).
    pub(super) fn second_set_objects(&mut self, now: Instant, links: &str) {
        if let Some(s) = self.second.as_mut() {
            s.reg.set_objects(now, links);
        }
    }
}
