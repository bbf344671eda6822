//! The rig's LwM2M server: registration interface and device management
//! operations, as an async API for test cases.
//!
//! ```text
//!  case body ──read/write/execute──► Lwm2mServer (handle, Clone)
//!                                        │ mpsc Command
//!                                        ▼
//!  UDP socket ◄──► driver task ──► core::ServerCore ──► rig-proto coap::Endpoint
//!                       (thin)          │                 rig-proto registry
//!                                        └──► broadcast ServerEvent, shared State
//! ```
//!
//! The driver (module `driver`) only moves datagrams and time: receive →
//! `handle_datagram` → drain `poll_transmit` → sleep until `poll_timeout`.
//! The decisions are in module `core` (which operation a response completes,
//! what is a deviation) and in rig-proto: its `registry` answers Register,
//! Update and De-register strictly, allocates locations and expires
//! registrations; its `coap::Endpoint` does reliability and block-wise.
//!
//! The server is strict: whatever the client gets wrong is recorded as a
//! [`Deviation`] (per endpoint, see [`Lwm2mServer::deviations`]) and
//! broadcast as [`ServerEvent::Deviation`], while the server still answers as
//! the spec says.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

pub use rig_proto::content::ContentFormat;
pub use rig_proto::path::ObjectPath;
pub use rig_proto::value::{Record, Records, Value};

use crate::deviation::Deviation;
use crate::{OpError, ServiceError};

mod core;
mod driver;
mod queue;

/// How the server behaves; [`ServerConfig::default`] is the spec's behaviour at time scale 1.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// Time scale divisor applied to registration lifetimes (expiry); 1.0 = real time.
    pub time_scale: f64,
    /// How long an operation (Read, Write, ...) waits for its response in total.
    pub op_timeout: Duration,
    /// The least length of the location ids the server assigns (left-padded
    /// with `0`); 0 = the shortest (`/rd/3`). The MachNation calibration uses
    /// 9, which makes an Update 87 + 9 bytes on the wire, as in the study.
    pub location_len: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            time_scale: 1.0,
            op_timeout: Duration::from_secs(30),
            location_len: 0,
        }
    }
}

/// A CoAP response code, e.g. `2.04`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(pub u8);

impl Code {
    /// 2.01 Created.
    pub const CREATED: Code = Code::new(2, 1);
    /// 2.02 Deleted.
    pub const DELETED: Code = Code::new(2, 2);
    /// 2.04 Changed.
    pub const CHANGED: Code = Code::new(2, 4);
    /// 2.05 Content.
    pub const CONTENT: Code = Code::new(2, 5);
    /// 4.00 Bad Request.
    pub const BAD_REQUEST: Code = Code::new(4, 0);
    /// 4.01 Unauthorized.
    pub const UNAUTHORIZED: Code = Code::new(4, 1);
    /// 4.04 Not Found.
    pub const NOT_FOUND: Code = Code::new(4, 4);
    /// 4.05 Method Not Allowed.
    pub const METHOD_NOT_ALLOWED: Code = Code::new(4, 5);
    /// 4.06 Not Acceptable.
    pub const NOT_ACCEPTABLE: Code = Code::new(4, 6);

    /// The code `class.detail`.
    pub const fn new(class: u8, detail: u8) -> Code {
        Code((class << 5) | (detail & 0x1f))
    }
    /// The class (2, 4, 5).
    pub fn class(self) -> u8 {
        self.0 >> 5
    }
    /// The detail.
    pub fn detail(self) -> u8 {
        self.0 & 0x1f
    }
    /// Whether the class is 2 (success).
    pub fn is_success(self) -> bool {
        self.class() == 2
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.class(), self.detail())
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The answer a client gave to an operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The response code.
    pub code: Code,
    /// The Content-Format option, if present.
    pub content_format: Option<ContentFormat>,
    /// The payload (reassembled if it came block-wise).
    pub payload: Vec<u8>,
    /// The payload decoded into resource values, when the format is one
    /// rig-proto decodes and the payload was valid; `None` otherwise.
    pub decoded: Option<Records>,
    /// For an Observe whose answer established an observation (2.05 with an
    /// Observe option): its id, for [`ServerEvent::Notification`] and
    /// [`Lwm2mServer::cancel_observe`].
    pub observation: Option<ObservationId>,
}

/// Identifies an observation the server holds on a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObservationId(pub u64);

impl Response {
    /// The payload as UTF-8 text (lossy), for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// The parameters an Update carried (all optional; none = a parameterless Update).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateParams {
    /// `lt`.
    pub lifetime_s: Option<u32>,
    /// `b`.
    pub binding: Option<String>,
    /// `sms`.
    pub sms: Option<String>,
    /// The object links, if the Update had a payload.
    pub object_links: Option<Vec<String>>,
}

impl UpdateParams {
    /// Whether the Update carried no parameter and no payload.
    pub fn is_empty(&self) -> bool {
        *self == UpdateParams::default()
    }
}

impl fmt::Display for UpdateParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(lt) = self.lifetime_s {
            parts.push(format!("lt={lt}"));
        }
        if let Some(b) = &self.binding {
            parts.push(format!("b={b}"));
        }
        if let Some(s) = &self.sms {
            parts.push(format!("sms={s}"));
        }
        if let Some(links) = &self.object_links {
            parts.push(format!("{} object links", links.len()));
        }
        if parts.is_empty() {
            f.write_str("no parameters")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// One client's registration, as the server holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    /// Endpoint name (`ep`).
    pub endpoint: String,
    /// Location path the server assigned, e.g. `/rd/3`.
    pub location: String,
    /// The client's transport address (the latest one seen).
    pub peer: SocketAddr,
    /// `lt` as sent in the Register or the latest Update (`None` = not sent, default 86400).
    pub lifetime_s: Option<u32>,
    /// `lwm2m` as sent.
    pub lwm2m_version: Option<String>,
    /// `b` as sent (or as changed by an Update).
    pub binding: Option<String>,
    /// Whether the client asked for queue mode (`Q`, or `b` containing `Q` in 1.0).
    pub queue_mode: bool,
    /// `sms` as sent.
    pub sms: Option<String>,
    /// Link targets of the object list, e.g. `/1/0`, `/3/0`, in order.
    pub object_links: Vec<String>,
    /// The raw link-format payload of the Register (or of the last Update with one).
    pub links_raw: String,
    /// When the Register arrived.
    pub registered_at: Instant,
    /// When the latest Update arrived, if any.
    pub last_update_at: Option<Instant>,
    /// The parameters of the latest Update, if any.
    pub last_update: Option<UpdateParams>,
    /// Number of Updates since the Register.
    pub updates: u32,
}

impl Registration {
    /// The lifetime in force (the default 86400 s if none was sent).
    pub fn effective_lifetime_s(&self) -> u32 {
        self.lifetime_s.unwrap_or(86_400)
    }
    /// When the registration was last refreshed (Register or Update).
    pub fn refreshed_at(&self) -> Instant {
        self.last_update_at.unwrap_or(self.registered_at)
    }
}

/// What happened at the server, in order. Subscribe with [`Lwm2mServer::events`].
#[derive(Clone, Debug, PartialEq)]
pub enum ServerEvent {
    /// A Register was accepted (2.01 sent).
    Registered {
        /// Endpoint name.
        endpoint: String,
        /// The new registration.
        registration: Registration,
        /// When it arrived.
        at: Instant,
    },
    /// An Update was accepted (2.04 sent).
    Updated {
        /// Endpoint name.
        endpoint: String,
        /// What the Update carried.
        update: UpdateParams,
        /// The registration after the Update.
        registration: Registration,
        /// When it arrived.
        at: Instant,
    },
    /// A De-register was accepted (2.02 sent); the registration is gone.
    Deregistered {
        /// Endpoint name.
        endpoint: String,
        /// Its former location.
        location: String,
        /// When it arrived.
        at: Instant,
    },
    /// A registration's lifetime ran out without an Update; it is gone.
    Expired {
        /// Endpoint name.
        endpoint: String,
        /// Its former location.
        location: String,
        /// When the server noticed.
        at: Instant,
    },
    /// A notification of an established observation arrived.
    Notification {
        /// Endpoint name.
        endpoint: String,
        /// The observation.
        observation: ObservationId,
        /// The observed path.
        path: ObjectPath,
        /// The notification (code, format, payload, decoded values).
        response: Response,
        /// When it arrived.
        at: Instant,
    },
    /// An observation ended without [`Lwm2mServer::cancel_observe`]: the
    /// client answered with an error or without the Observe option.
    ObservationEnded {
        /// Endpoint name.
        endpoint: String,
        /// The observation.
        observation: ObservationId,
        /// Why, in words.
        reason: String,
    },
    /// A deviation from the spec was seen.
    Deviation(Deviation),
    /// (`coaps://` only) A DTLS handshake completed.
    SecureSession {
        /// The client's address.
        peer: SocketAddr,
        /// The endpoint its credentials map to in the credential store.
        endpoint: Option<String>,
        /// The negotiated suite, e.g. `TLS_PSK_WITH_AES_128_CCM_8`.
        cipher_suite: Option<String>,
    },
    /// (`coaps://` only) A DTLS handshake failed or a datagram was refused.
    HandshakeFailed {
        /// The client's address.
        peer: SocketAddr,
        /// rig-dtls's stable reason tag, e.g. `wrong_psk`, `hostname_mismatch`.
        reason: String,
        /// rig-dtls's full text (peer, stage, alert, reason).
        message: String,
    },
}

/// Waits for the first event matching `pred`, at most `timeout`. Events that
/// do not match are skipped; if the receiver lagged, the lost events are
/// skipped too (the channel is large, so this only happens under extreme load).
pub async fn wait_for<F>(
    events: &mut broadcast::Receiver<ServerEvent>,
    timeout: Duration,
    mut pred: F,
) -> Option<ServerEvent>
where
    F: FnMut(&ServerEvent) -> bool,
{
    let deadline = Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_elapsed) => return None,
            Ok(Ok(event)) if pred(&event) => return Some(event),
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(broadcast::error::RecvError::Closed)) => return None,
        }
    }
}

/// What the server task holds that handles may read.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Registrations by endpoint name.
    pub(crate) registrations: BTreeMap<String, Registration>,
    /// Deviations by endpoint name (`""` for those not tied to an endpoint).
    pub(crate) deviations: BTreeMap<String, Vec<Deviation>>,
    /// Queue mode (`queue.rs`): when each endpoint was last heard from.
    pub(crate) last_heard: BTreeMap<String, Instant>,
    /// Queue mode: how many requests the server holds per endpoint until
    /// its next uplink.
    pub(crate) held: BTreeMap<String, usize>,
    /// Registrations a case made the server forget (by location path), to
    /// be dropped from the registry on the core's next input (int-105).
    pub(crate) forgotten: Vec<String>,
    /// Updates and De-registers answered 4.04 (unknown location): method,
    /// location and when.
    pub(crate) unknown_locations: Vec<(&'static str, String, Instant)>,
    /// Notifications answered with RST because no observation matched
    /// their token, by endpoint: when each arrived.
    pub(crate) rejected_notifications: BTreeMap<String, Vec<Instant>>,
    /// LwM2M Send reports (`POST /dp`) by endpoint (`""`: not registered).
    pub(crate) sends: BTreeMap<String, Vec<SendReport>>,
}

/// One LwM2M Send (`POST /dp`, LwM2M 1.1 Core TS §6.4.5) the server got.
#[derive(Clone, Debug, PartialEq)]
pub struct SendReport {
    /// When it arrived.
    pub at: Instant,
    /// Its Content-Format, if present and known.
    pub content_format: Option<ContentFormat>,
    /// The payload.
    pub payload: Vec<u8>,
    /// The payload decoded (with `/` as base), if the format is one
    /// rig-proto decodes and the payload was valid.
    pub records: Option<Records>,
    /// What the server answered (2.04 when the report was accepted).
    pub code: Code,
}

/// A device management operation asked of the server task.
#[derive(Debug)]
pub(crate) struct OpRequest {
    pub(crate) endpoint: String,
    pub(crate) operation: Operation,
    pub(crate) reply: oneshot::Sender<Result<Response, OpError>>,
    /// Send at once even to a queue-mode client that sleeps (a probe).
    pub(crate) immediate: bool,
}

/// The operations, as data.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Operation {
    Read {
        path: ObjectPath,
        accept: Option<ContentFormat>,
    },
    Discover {
        path: ObjectPath,
    },
    Write {
        path: ObjectPath,
        format: ContentFormat,
        payload: Vec<u8>,
        replace: bool,
    },
    WriteAttributes {
        path: ObjectPath,
        query: String,
    },
    Execute {
        path: ObjectPath,
        args: Option<String>,
    },
    Create {
        path: ObjectPath,
        format: ContentFormat,
        payload: Vec<u8>,
    },
    Delete {
        path: ObjectPath,
    },
    Observe {
        path: ObjectPath,
        accept: Option<ContentFormat>,
    },
    CancelObserve {
        observation: ObservationId,
        path: ObjectPath,
    },
    /// Read-Composite (`FETCH /` with a SenML path list).
    ReadComposite {
        paths: Vec<ObjectPath>,
        format: ContentFormat,
        accept: Option<ContentFormat>,
    },
    /// Observe-Composite (`FETCH /` with Observe=0 and a SenML path list).
    ObserveComposite {
        paths: Vec<ObjectPath>,
        format: ContentFormat,
        accept: Option<ContentFormat>,
    },
    /// Write-Composite (`iPATCH /` with SenML records).
    WriteComposite {
        format: ContentFormat,
        payload: Vec<u8>,
    },
    /// Reactive cancel: forget the observation, so its next notification is
    /// answered with RST (RFC 7641 §3.6). Answered at once by the server.
    Forget {
        observation: ObservationId,
    },
}

impl Operation {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Operation::Read { .. } => "Read",
            Operation::Discover { .. } => "Discover",
            Operation::Write { replace: true, .. } => "Write",
            Operation::Write { replace: false, .. } => "Write (partial update)",
            Operation::WriteAttributes { .. } => "Write-Attributes",
            Operation::Execute { .. } => "Execute",
            Operation::Create { .. } => "Create",
            Operation::Delete { .. } => "Delete",
            Operation::Observe { .. } => "Observe",
            Operation::CancelObserve { .. } => "Cancel Observation",
            Operation::ReadComposite { .. } => "Read-Composite",
            Operation::ObserveComposite { .. } => "Observe-Composite",
            Operation::WriteComposite { .. } => "Write-Composite",
            Operation::Forget { .. } => "Cancel Observation (reset)",
        }
    }
    pub(crate) fn path(&self) -> &ObjectPath {
        match self {
            Operation::Read { path, .. }
            | Operation::Discover { path }
            | Operation::Write { path, .. }
            | Operation::WriteAttributes { path, .. }
            | Operation::Execute { path, .. }
            | Operation::Create { path, .. }
            | Operation::Delete { path }
            | Operation::Observe { path, .. }
            | Operation::CancelObserve { path, .. } => path,
            Operation::ReadComposite { .. }
            | Operation::ObserveComposite { .. }
            | Operation::WriteComposite { .. }
            | Operation::Forget { .. } => &ObjectPath::Root,
        }
    }
}

struct Shared {
    local_addr: SocketAddr,
    config: ServerConfig,
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<ServerEvent>,
    ops: mpsc::Sender<OpRequest>,
    shutdown: tokio_shutdown::Trigger,
}

mod tokio_shutdown {
    //! A one-shot shutdown signal shared by every handle.
    use tokio::sync::watch;

    /// Fires once; the driver watches it.
    #[derive(Debug)]
    pub(crate) struct Trigger(pub(crate) watch::Sender<bool>);

    impl Trigger {
        pub(crate) fn fire(&self) {
            // send_replace never fails, even with no receiver left.
            self.0.send_replace(true);
        }
    }
}

/// A cheap, cloneable handle to the rig's LwM2M server.
///
/// The server runs as one tokio task over one UDP socket; it stops when
/// [`Lwm2mServer::shutdown`] is called or the last handle is dropped.
#[derive(Clone)]
pub struct Lwm2mServer {
    shared: Arc<Shared>,
    op_timeout: Duration,
    secure: bool,
}

impl fmt::Debug for Lwm2mServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lwm2mServer")
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.shutdown.fire();
    }
}

impl Lwm2mServer {
    /// Binds a UDP socket on `addr` (port 0 picks a free port) and starts the
    /// server with the default configuration. Must be called inside a tokio runtime.
    pub async fn bind(addr: SocketAddr) -> Result<Lwm2mServer, ServiceError> {
        Self::bind_with(addr, ServerConfig::default()).await
    }

    /// As [`Lwm2mServer::bind`], with a configuration.
    pub async fn bind_with(
        addr: SocketAddr,
        config: ServerConfig,
    ) -> Result<Lwm2mServer, ServiceError> {
        let socket = tokio::net::UdpSocket::bind(addr)
            .await
            .map_err(|source| ServiceError::Bind { addr, source })?;
        Self::start(driver::Transport::Udp(socket), addr, config)
    }

    /// Binds a DTLS 1.2 server on `addr` (port 0 picks a free port) and serves
    /// LwM2M over it (`coaps://`). The CoAP layer is the same as for
    /// [`Lwm2mServer::bind`]; each Register's `ep` is checked against the
    /// endpoint the peer's credentials map to (a mismatch is a [`Deviation`]),
    /// and handshake outcomes are broadcast as [`ServerEvent::SecureSession`]
    /// and [`ServerEvent::HandshakeFailed`].
    pub async fn bind_secure(
        addr: SocketAddr,
        config: ServerConfig,
        dtls: rig_dtls::ServerConfig,
    ) -> Result<Lwm2mServer, ServiceError> {
        let socket = rig_dtls::DtlsServerSocket::bind(addr, dtls)
            .await
            .map_err(|e| ServiceError::Bind {
                addr,
                source: std::io::Error::other(e.to_string()),
            })?;
        let local_addr = socket.local_addr();
        Self::start_on(driver::Transport::Dtls(socket), local_addr, config, true)
    }

    /// As [`Lwm2mServer::bind_secure`], on an already bound socket (e.g. one
    /// bound inside a network namespace on the well-known port 5684). Must be
    /// called inside a tokio runtime.
    pub fn from_std_secure(
        socket: std::net::UdpSocket,
        config: ServerConfig,
        dtls: rig_dtls::ServerConfig,
    ) -> Result<Lwm2mServer, ServiceError> {
        let addr = socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let socket =
            rig_dtls::DtlsServerSocket::from_std(socket, dtls).map_err(|e| ServiceError::Bind {
                addr,
                source: std::io::Error::other(e.to_string()),
            })?;
        let local_addr = socket.local_addr();
        Self::start_on(driver::Transport::Dtls(socket), local_addr, config, true)
    }

    /// Starts the server on an already bound socket (e.g. one bound inside a
    /// network namespace), with a configuration. Must be called inside a
    /// tokio runtime.
    pub fn from_std(
        socket: std::net::UdpSocket,
        config: ServerConfig,
    ) -> Result<Lwm2mServer, ServiceError> {
        let addr = socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        socket
            .set_nonblocking(true)
            .and_then(|()| tokio::net::UdpSocket::from_std(socket))
            .map_err(|source| ServiceError::Bind { addr, source })
            .and_then(|socket| Self::start(driver::Transport::Udp(socket), addr, config))
    }

    fn start(
        socket: driver::Transport,
        addr: SocketAddr,
        config: ServerConfig,
    ) -> Result<Lwm2mServer, ServiceError> {
        let local_addr = match &socket {
            driver::Transport::Udp(s) => s
                .local_addr()
                .map_err(|source| ServiceError::Bind { addr, source })?,
            driver::Transport::Dtls(s) => s.local_addr(),
        };
        Self::start_on(socket, local_addr, config, false)
    }

    fn start_on(
        socket: driver::Transport,
        local_addr: SocketAddr,
        config: ServerConfig,
        secure: bool,
    ) -> Result<Lwm2mServer, ServiceError> {
        let state = Arc::new(Mutex::new(State::default()));
        let (events, _) = broadcast::channel(1024);
        let (ops_tx, ops_rx) = mpsc::channel(64);
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let core = core::ServerCore::new(config.clone(), state.clone(), events.clone());
        tokio::spawn(driver::run(socket, core, ops_rx, shutdown_rx));
        let op_timeout = config.op_timeout;
        Ok(Lwm2mServer {
            shared: Arc::new(Shared {
                local_addr,
                config,
                state,
                events,
                ops: ops_tx,
                shutdown: tokio_shutdown::Trigger(shutdown_tx),
            }),
            op_timeout,
            secure,
        })
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The URI a client uses to reach this server, e.g. `coap://127.0.0.1:5683`
    /// (`coaps://` for a server from [`Lwm2mServer::bind_secure`]).
    /// An unspecified bind address (`0.0.0.0`) is given as loopback.
    pub fn uri(&self) -> String {
        let mut addr = self.shared.local_addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let scheme = if self.secure { "coaps" } else { "coap" };
        format!("{scheme}://{addr}")
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// Stops the server task. Pending operations fail with [`OpError::ShutDown`].
    pub fn shutdown(&self) {
        self.shared.shutdown.fire();
    }

    /// A handle whose operations wait at most `timeout` for their response.
    pub fn with_op_timeout(&self, timeout: Duration) -> Lwm2mServer {
        Lwm2mServer {
            shared: self.shared.clone(),
            op_timeout: timeout,
            secure: self.secure,
        }
    }

    /// Subscribes to the events from now on.
    pub fn events(&self) -> broadcast::Receiver<ServerEvent> {
        self.shared.events.subscribe()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the data is still usable.
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current registration of an endpoint.
    pub fn registration(&self, endpoint: &str) -> Option<Registration> {
        self.state().registrations.get(endpoint).cloned()
    }

    /// Every current registration.
    pub fn registrations(&self) -> Vec<Registration> {
        self.state().registrations.values().cloned().collect()
    }

    /// The deviations recorded for an endpoint since the server started (or
    /// since [`Lwm2mServer::clear_deviations`]).
    pub fn deviations(&self, endpoint: &str) -> Vec<Deviation> {
        self.state()
            .deviations
            .get(endpoint)
            .cloned()
            .unwrap_or_default()
    }

    /// Deviations that could not be tied to an endpoint (unknown location, no `ep`).
    pub fn unattributed_deviations(&self) -> Vec<Deviation> {
        self.deviations("")
    }

    /// Forgets the recorded deviations of an endpoint (e.g. between cases).
    pub fn clear_deviations(&self, endpoint: &str) {
        self.state().deviations.remove(endpoint);
    }

    async fn op(&self, endpoint: &str, operation: Operation) -> Result<Response, OpError> {
        self.op_with(endpoint, operation, false).await
    }

    async fn op_with(
        &self,
        endpoint: &str,
        operation: Operation,
        immediate: bool,
    ) -> Result<Response, OpError> {
        let name = operation.name();
        let path = operation.path().to_string();
        if self.registration(endpoint).is_none() {
            return Err(OpError::NotRegistered {
                endpoint: endpoint.to_string(),
            });
        }
        let (reply, rx) = oneshot::channel();
        let req = OpRequest {
            endpoint: endpoint.to_string(),
            operation,
            reply,
            immediate,
        };
        self.shared
            .ops
            .send(req)
            .await
            .map_err(|_| OpError::ShutDown)?;
        match tokio::time::timeout(self.op_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_dropped)) => Err(OpError::ShutDown),
            Err(_elapsed) => Err(OpError::Timeout {
                endpoint: endpoint.to_string(),
                operation: name,
                path,
                timeout: self.op_timeout,
            }),
        }
    }

    /// Read (`GET`), with an optional Accept.
    pub async fn read(
        &self,
        endpoint: &str,
        path: &ObjectPath,
        accept: Option<ContentFormat>,
    ) -> Result<Response, OpError> {
        self.op(
            endpoint,
            Operation::Read {
                path: *path,
                accept,
            },
        )
        .await
    }

    /// Discover (`GET` with Accept: application/link-format).
    pub async fn discover(&self, endpoint: &str, path: &ObjectPath) -> Result<Response, OpError> {
        self.op(endpoint, Operation::Discover { path: *path }).await
    }

    /// Write, replace (`PUT`).
    pub async fn write(
        &self,
        endpoint: &str,
        path: &ObjectPath,
        format: ContentFormat,
        payload: Vec<u8>,
    ) -> Result<Response, OpError> {
        self.op(
            endpoint,
            Operation::Write {
                path: *path,
                format,
                payload,
                replace: true,
            },
        )
        .await
    }

    /// Write, partial update (`POST` to an object instance).
    pub async fn write_partial(
        &self,
        endpoint: &str,
        path: &ObjectPath,
        format: ContentFormat,
        payload: Vec<u8>,
    ) -> Result<Response, OpError> {
        self.op(
            endpoint,
            Operation::Write {
                path: *path,
                format,
                payload,
                replace: false,
            },
        )
        .await
    }

    /// Write-Attributes (`PUT` with a query and no payload), e.g. `pmin=10&pmax=200`.
    pub async fn write_attributes(
        &self,
        endpoint: &str,
        path: &ObjectPath,
        query: &str,
    ) -> Result<Response, OpError> {
        self.op(
            endpoint,
            Operation::WriteAttributes {
                path: *path,
                query: query.to_string(),
            },
        )
        .await
    }

    /// Execute (`POST` to a resource), with optional arguments (`0='a',1`).
    pub async fn execute(
        &self,
        endpoint: &str,
        path: &ObjectPath,
        args: Option<&str>,
    ) -> Result<Response, OpError> {
        self.op(
            endpoint,
            Operation::Execute {
                path: *path,
                args: args.map(str::to_string),
            },
        )
        .await
    }

    /// Create (`POST` to an object).
    pub async fn create(
        &self,
        endpoint: &str,
        path: &ObjectPath,
        format: ContentFormat,
        payload: Vec<u8>,
    ) -> Result<Response, OpError> {
        self.op(
            endpoint,
            Operation::Create {
                path: *path,
                format,
                payload,
            },
        )
        .await
    }

    /// Observe (`GET` with Observe=0). The answer's
    /// [`Response::observation`] is set when the client established the
    /// observation; notifications then arrive as [`ServerEvent::Notification`].
    pub async fn observe(
        &self,
        endpoint: &str,
        path: &ObjectPath,
        accept: Option<ContentFormat>,
    ) -> Result<Response, OpError> {
        self.op(
            endpoint,
            Operation::Observe {
                path: *path,
                accept,
            },
        )
        .await
    }

    /// Cancels an observation actively (`GET` with Observe=1 and the same
    /// token, RFC 7641 §3.6); returns the client's answer.
    pub async fn cancel_observe(
        &self,
        endpoint: &str,
        observation: ObservationId,
        path: &ObjectPath,
    ) -> Result<Response, OpError> {
        self.op(
            endpoint,
            Operation::CancelObserve {
                observation,
                path: *path,
            },
        )
        .await
    }

    /// Read-Composite (`FETCH /`, LwM2M 1.1 §6.3.8): the request body lists
    /// `paths` in `format` (SenML JSON or CBOR); `accept` asks for the
    /// answer's format. The answer is decoded with `/` as base.
    pub async fn read_composite(
        &self,
        endpoint: &str,
        paths: &[ObjectPath],
        format: ContentFormat,
        accept: Option<ContentFormat>,
    ) -> Result<Response, OpError> {
        self.op(
            endpoint,
            Operation::ReadComposite {
                paths: paths.to_vec(),
                format,
                accept,
            },
        )
        .await
    }

    /// Observe-Composite (`FETCH /` with Observe=0): as
    /// [`Lwm2mServer::read_composite`]; notifications arrive as
    /// [`ServerEvent::Notification`] with path `/`. Cancel it with
    /// [`Lwm2mServer::cancel_observe`] (FETCH with Observe=1 and the same
    /// path list) or [`Lwm2mServer::forget_observation`].
    pub async fn observe_composite(
        &self,
        endpoint: &str,
        paths: &[ObjectPath],
        format: ContentFormat,
        accept: Option<ContentFormat>,
    ) -> Result<Response, OpError> {
        self.op(
            endpoint,
            Operation::ObserveComposite {
                paths: paths.to_vec(),
                format,
                accept,
            },
        )
        .await
    }

    /// Write-Composite (`iPATCH /`, LwM2M 1.1 §6.3.9) with SenML records
    /// already encoded in `format` (SenML JSON or CBOR).
    pub async fn write_composite(
        &self,
        endpoint: &str,
        format: ContentFormat,
        payload: Vec<u8>,
    ) -> Result<Response, OpError> {
        self.op(endpoint, Operation::WriteComposite { format, payload })
            .await
    }

    /// Reactive cancel (RFC 7641 §3.6): the server forgets the observation,
    /// so the client's next notification for it is answered with RST. Returns
    /// whether the observation was known. See
    /// [`Lwm2mServer::rejected_notifications`].
    pub async fn forget_observation(
        &self,
        endpoint: &str,
        observation: ObservationId,
    ) -> Result<bool, OpError> {
        let r = self.op(endpoint, Operation::Forget { observation }).await?;
        Ok(r.code.is_success())
    }

    /// The Send reports (`POST /dp`) `endpoint` made, in order.
    pub fn sends(&self, endpoint: &str) -> Vec<SendReport> {
        self.state()
            .sends
            .get(endpoint)
            .cloned()
            .unwrap_or_default()
    }

    /// When each notification from `endpoint` arrived that matched no
    /// observation (an observation the server cancelled or forgot) and was
    /// therefore answered with RST.
    pub fn rejected_notifications(&self, endpoint: &str) -> Vec<Instant> {
        self.state()
            .rejected_notifications
            .get(endpoint)
            .cloned()
            .unwrap_or_default()
    }

    /// Delete (`DELETE` an object instance).
    pub async fn delete(&self, endpoint: &str, path: &ObjectPath) -> Result<Response, OpError> {
        self.op(endpoint, Operation::Delete { path: *path }).await
    }
}
