//! Queue mode and forgotten registrations, the handle's side (the core's
//! side, which holds requests and releases them, is `core/queue.rs`).

use std::time::Duration;

use super::{ContentFormat, Lwm2mServer, ObjectPath, Operation, Registration, Response};
use crate::OpError;

impl Lwm2mServer {
    /// How long the server deems a queue-mode client reachable after it was
    /// last heard from: CoAP's MAX_TRANSMIT_WAIT (93 s) divided by the
    /// server's time scale. After that, operations on it are held until its
    /// next uplink.
    pub fn queue_awake_window(&self) -> Duration {
        super::core::queue_awake_window(self.config().time_scale)
    }

    /// When `endpoint` was last heard from (any datagram), if ever.
    pub fn last_heard(&self, endpoint: &str) -> Option<tokio::time::Instant> {
        self.state().last_heard.get(endpoint).copied()
    }

    /// How many operations the server holds for `endpoint` (a sleeping
    /// queue-mode client) until its next uplink.
    pub fn held_requests(&self, endpoint: &str) -> usize {
        self.state().held.get(endpoint).copied().unwrap_or(0)
    }

    /// Read, sent at once even if `endpoint` is a queue-mode client that
    /// should sleep (a probe: a sleeping client must not answer it; one that
    /// does is recorded as a deviation). Other operations on a sleeping
    /// queue-mode client are held until its next uplink.
    pub async fn read_now(
        &self,
        endpoint: &str,
        path: &ObjectPath,
        accept: Option<ContentFormat>,
    ) -> Result<Response, OpError> {
        self.op_with(
            endpoint,
            Operation::Read {
                path: *path,
                accept,
            },
            true,
        )
        .await
    }

    /// The Updates (`POST`) and De-registers (`DELETE`) the server answered
    /// 4.04 Not Found because it knew no registration at their location:
    /// `(method, location, when)`, oldest first.
    pub fn unknown_location_requests(&self) -> Vec<(&'static str, String, tokio::time::Instant)> {
        self.state().unknown_locations.clone()
    }

    /// Makes the server forget `endpoint`'s registration without telling
    /// the client (ETS int-105): its next Update is answered 4.04 Not Found,
    /// which must make it register afresh. Returns the forgotten
    /// registration, if there was one.
    pub fn forget_registration(&self, endpoint: &str) -> Option<Registration> {
        let mut st = self.state();
        let reg = st.registrations.remove(endpoint)?;
        st.forgotten.push(reg.location.clone());
        st.last_heard.remove(endpoint);
        Some(reg)
    }
}
