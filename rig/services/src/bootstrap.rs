//! The rig's LwM2M bootstrap server (LwM2M 1.1 TS §5.2, §6.1): it accepts
//! Bootstrap-Request, and offers Bootstrap-Discover, -Read, -Write, -Delete
//! and -Finish on a bootstrapping client as an async API for test cases.
//!
//! ```text
//!  case body ──discover/write/finish──► BootstrapServer (handle, Clone)
//!                                           │ mpsc BsRequest
//!                                           ▼
//!  UDP or DTLS socket ◄──► driver task ──► core::BootstrapCore ──► rig-proto coap::Endpoint
//!                                           └──► broadcast BootstrapEvent, shared State
//! ```
//!
//! Same shape as [`crate::lwm2m`]: a thin driver moves datagrams and time,
//! the core decides. The server is strict: a wrong response code, a
//! Discover answer without `lwm2m="1.x"` or with bad link format, a Read of
//! an object other than /1 or /2 answered with 2.05, a Bootstrap-Request
//! without `ep`... is recorded as a [`Deviation`] per endpoint and broadcast
//! as [`BootstrapEvent::Deviation`].
//!
//! [`Provisioning`] describes one LwM2M server account (URI, security mode
//! and credentials, Short Server ID, lifetime); [`BootstrapServer::provision`]
//! writes it as `/0/x` and `/1/x` in TLV and finishes, and
//! [`BootstrapServer::serve_scripted`] does that for every client that asks.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

pub use crate::lwm2m::{Code, ContentFormat, ObjectPath, Record, Records, Response, Value};

use crate::deviation::Deviation;
use crate::{OpError, ServiceError};

mod core;

/// What happened at the bootstrap server, in order. Subscribe with [`BootstrapServer::events`].
#[derive(Clone, Debug, PartialEq)]
pub enum BootstrapEvent {
    /// A Bootstrap-Request (`POST /bs?ep=...`) was accepted (2.04 sent).
    BootstrapRequest {
        /// Endpoint name (`ep`).
        endpoint: String,
        /// The client's address.
        peer: SocketAddr,
        /// `pct` (LwM2M 1.1 preferred content format), if sent.
        preferred_format: Option<ContentFormat>,
        /// When it arrived.
        at: Instant,
    },
    /// A Bootstrap-Finish was answered.
    Finished {
        /// Endpoint name.
        endpoint: String,
        /// The client's answer (2.04, or 4.06 for an inconsistent configuration).
        code: Code,
    },
    /// A deviation from the spec was seen.
    Deviation(Deviation),
    /// (`coaps://` only) A DTLS handshake completed.
    SecureSession {
        /// The client's address.
        peer: SocketAddr,
        /// The endpoint its credentials map to in the credential store.
        endpoint: Option<String>,
        /// The negotiated suite.
        cipher_suite: Option<String>,
    },
    /// (`coaps://` only) A DTLS handshake failed or a datagram was refused.
    HandshakeFailed {
        /// The client's address.
        peer: SocketAddr,
        /// rig-dtls's stable reason tag, e.g. `wrong_psk`.
        reason: String,
        /// rig-dtls's full text.
        message: String,
    },
}

/// Waits for the first event matching `pred`, at most `timeout` (lagged
/// events are skipped).
pub async fn wait_for<F>(
    events: &mut broadcast::Receiver<BootstrapEvent>,
    timeout: Duration,
    mut pred: F,
) -> Option<BootstrapEvent>
where
    F: FnMut(&BootstrapEvent) -> bool,
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

/// A client that sent a Bootstrap-Request.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    /// Endpoint name.
    pub endpoint: String,
    /// The client's address (of its latest Bootstrap-Request).
    pub peer: SocketAddr,
    /// `pct`, if sent.
    pub preferred_format: Option<ContentFormat>,
    /// When the latest Bootstrap-Request arrived.
    pub requested_at: Instant,
    /// How many Bootstrap-Requests this endpoint sent since the server started.
    pub requests: u32,
}

/// What the server task holds that handles may read.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) sessions: BTreeMap<String, Session>,
    pub(crate) deviations: BTreeMap<String, Vec<Deviation>>,
}

/// A bootstrap operation, as data.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum BsOperation {
    Discover {
        path: ObjectPath,
    },
    Read {
        path: ObjectPath,
        accept: Option<ContentFormat>,
    },
    Write {
        path: ObjectPath,
        format: ContentFormat,
        payload: Vec<u8>,
    },
    Delete {
        path: ObjectPath,
    },
    Finish,
}

impl BsOperation {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            BsOperation::Discover { .. } => "Bootstrap-Discover",
            BsOperation::Read { .. } => "Bootstrap-Read",
            BsOperation::Write { .. } => "Bootstrap-Write",
            BsOperation::Delete { .. } => "Bootstrap-Delete",
            BsOperation::Finish => "Bootstrap-Finish",
        }
    }
    pub(crate) fn path_text(&self) -> String {
        match self {
            BsOperation::Discover { path }
            | BsOperation::Read { path, .. }
            | BsOperation::Write { path, .. }
            | BsOperation::Delete { path } => path.to_string(),
            BsOperation::Finish => "/bs".to_string(),
        }
    }
}

/// An operation asked of the server task.
#[derive(Debug)]
pub(crate) struct BsRequest {
    pub(crate) endpoint: String,
    pub(crate) operation: BsOperation,
    pub(crate) reply: oneshot::Sender<Result<Response, OpError>>,
}

/// The security mode of a provisioned account (`/0/x/2`) and its credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum AccountSecurity {
    /// Mode 3, NoSec.
    NoSec,
    /// Mode 0, pre-shared key: `/0/x/3` identity, `/0/x/5` key.
    Psk {
        /// PSK identity.
        identity: Vec<u8>,
        /// PSK key.
        key: Vec<u8>,
    },
    /// Mode 1, raw public key: `/0/x/3` the client's public key (DER SPKI),
    /// `/0/x/4` the server's public key (DER SPKI), `/0/x/5` the client's
    /// private key (DER).
    RawPublicKey {
        /// The client's public key, DER SPKI.
        client_public_der: Vec<u8>,
        /// The client's private key, DER.
        client_private_der: Vec<u8>,
        /// The server's public key, DER SPKI.
        server_public_der: Vec<u8>,
    },
    /// Mode 2, certificate: `/0/x/3` the client certificate (DER), `/0/x/4`
    /// the certificate the client trusts for the server (DER; the rig
    /// provisions its CA, read as a trust anchor), `/0/x/5` the client's
    /// private key (DER).
    Certificate {
        /// The client certificate, DER.
        client_cert_der: Vec<u8>,
        /// The client's private key, DER.
        client_private_der: Vec<u8>,
        /// The server's certificate or its CA, DER.
        server_cert_der: Vec<u8>,
    },
}

impl AccountSecurity {
    /// The `/0/x/2` value.
    pub fn mode(&self) -> i64 {
        match self {
            AccountSecurity::Psk { .. } => 0,
            AccountSecurity::RawPublicKey { .. } => 1,
            AccountSecurity::Certificate { .. } => 2,
            AccountSecurity::NoSec => 3,
        }
    }
    /// The mode's name, e.g. `psk`.
    pub fn name(&self) -> &'static str {
        match self {
            AccountSecurity::Psk { .. } => "psk",
            AccountSecurity::RawPublicKey { .. } => "rpk",
            AccountSecurity::Certificate { .. } => "x509",
            AccountSecurity::NoSec => "nosec",
        }
    }
}

impl fmt::Debug for AccountSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        write!(f, "AccountSecurity({})", self.name())
    }
}

/// One LwM2M server account to provision: a Security instance and a Server instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Provisioning {
    /// `/0/x/0`, e.g. `coaps://10.77.0.1:5684`.
    pub server_uri: String,
    /// Mode and credentials.
    pub security: AccountSecurity,
    /// `/0/x/10` and `/1/y/0`.
    pub ssid: u16,
    /// `/1/y/1`, seconds.
    pub lifetime_s: u32,
    /// `/1/y/7`.
    pub binding: String,
    /// The Security instance id `x` (the bootstrap account keeps its own).
    pub security_instance: u16,
    /// The Server instance id `y`.
    pub server_instance: u16,
}

impl Provisioning {
    /// A NoSec account for `server_uri`, SSID 1, lifetime 86400 s, binding U,
    /// in `/0/0` and `/1/0` (ETS configuration C.1 over the bootstrap
    /// interface; the bootstrap account of C.13 lives in `/0/1`).
    pub fn nosec(server_uri: &str) -> Provisioning {
        Provisioning {
            server_uri: server_uri.to_string(),
            security: AccountSecurity::NoSec,
            ssid: 1,
            lifetime_s: 86_400,
            binding: "U".to_string(),
            security_instance: 0,
            server_instance: 0,
        }
    }

    /// The Security instance's resources.
    pub fn security_records(&self) -> Records {
        let i = self.security_instance;
        let r = |res: u16, v: Value| Record::new(ObjectPath::resource(0, i, res), v);
        let (pk, spk, sk) = match &self.security {
            AccountSecurity::NoSec => (Vec::new(), Vec::new(), Vec::new()),
            AccountSecurity::Psk { identity, key } => (identity.clone(), Vec::new(), key.clone()),
            AccountSecurity::RawPublicKey {
                client_public_der,
                client_private_der,
                server_public_der,
            } => (
                client_public_der.clone(),
                server_public_der.clone(),
                client_private_der.clone(),
            ),
            AccountSecurity::Certificate {
                client_cert_der,
                client_private_der,
                server_cert_der,
            } => (
                client_cert_der.clone(),
                server_cert_der.clone(),
                client_private_der.clone(),
            ),
        };
        vec![
            r(0, Value::String(self.server_uri.clone())),
            r(1, Value::Boolean(false)),
            r(2, Value::Integer(self.security.mode())),
            r(3, Value::Opaque(pk)),
            r(4, Value::Opaque(spk)),
            r(5, Value::Opaque(sk)),
            r(10, Value::Integer(i64::from(self.ssid))),
        ]
    }

    /// The Server instance's resources.
    pub fn server_records(&self) -> Records {
        let i = self.server_instance;
        let r = |res: u16, v: Value| Record::new(ObjectPath::resource(1, i, res), v);
        vec![
            r(0, Value::Integer(i64::from(self.ssid))),
            r(1, Value::Integer(i64::from(self.lifetime_s))),
            r(6, Value::Boolean(false)),
            r(7, Value::String(self.binding.clone())),
        ]
    }
}

struct Shared {
    local_addr: SocketAddr,
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<BootstrapEvent>,
    ops: mpsc::Sender<BsRequest>,
    shutdown: watch::Sender<bool>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// A cheap, cloneable handle to the rig's bootstrap server. The server runs
/// as one tokio task over one socket; it stops on [`BootstrapServer::shutdown`]
/// or when the last handle is dropped.
#[derive(Clone)]
pub struct BootstrapServer {
    shared: Arc<Shared>,
    op_timeout: Duration,
    secure: bool,
}

impl fmt::Debug for BootstrapServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootstrapServer")
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

/// How long an operation waits for its answer by default.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(30);

impl BootstrapServer {
    /// Binds a UDP socket on `addr` (`coap://`; port 0 picks a free port).
    /// Must be called inside a tokio runtime.
    pub async fn bind(addr: SocketAddr) -> Result<BootstrapServer, ServiceError> {
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|source| ServiceError::Bind { addr, source })?;
        let local = socket
            .local_addr()
            .map_err(|source| ServiceError::Bind { addr, source })?;
        Ok(Self::start(Transport::Udp(socket), local, false))
    }

    /// Binds a DTLS 1.2 server on `addr` (`coaps://`, PSK, RPK or X.509 as
    /// `dtls` allows). Handshake outcomes are broadcast as events; a
    /// Bootstrap-Request whose `ep` differs from the endpoint the peer's
    /// credentials map to is a deviation.
    pub async fn bind_secure(
        addr: SocketAddr,
        dtls: rig_dtls::ServerConfig,
    ) -> Result<BootstrapServer, ServiceError> {
        let socket = rig_dtls::DtlsServerSocket::bind(addr, dtls)
            .await
            .map_err(|e| ServiceError::Bind {
                addr,
                source: std::io::Error::other(e.to_string()),
            })?;
        let local = socket.local_addr();
        Ok(Self::start(Transport::Dtls(socket), local, true))
    }

    /// Starts the server on an already bound UDP socket (e.g. one bound inside
    /// a network namespace). Must be called inside a tokio runtime.
    pub fn from_std(socket: std::net::UdpSocket) -> Result<BootstrapServer, ServiceError> {
        let addr = socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let socket = socket
            .set_nonblocking(true)
            .and_then(|()| UdpSocket::from_std(socket))
            .map_err(|source| ServiceError::Bind { addr, source })?;
        Ok(Self::start(Transport::Udp(socket), addr, false))
    }

    fn start(socket: Transport, local_addr: SocketAddr, secure: bool) -> BootstrapServer {
        let state = Arc::new(Mutex::new(State::default()));
        let (events, _) = broadcast::channel(1024);
        let (ops_tx, ops_rx) = mpsc::channel(64);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let core = core::BootstrapCore::new(state.clone(), events.clone());
        tokio::spawn(run(socket, core, ops_rx, shutdown_rx));
        BootstrapServer {
            shared: Arc::new(Shared {
                local_addr,
                state,
                events,
                ops: ops_tx,
                shutdown: shutdown_tx,
            }),
            op_timeout: DEFAULT_OP_TIMEOUT,
            secure,
        }
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The URI a client uses, e.g. `coap://127.0.0.1:5683` (`coaps://` for
    /// [`BootstrapServer::bind_secure`]); an unspecified address is given as loopback.
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

    /// Stops the server task; pending operations fail with [`OpError::ShutDown`].
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    /// A handle whose operations wait at most `timeout` for their response.
    pub fn with_op_timeout(&self, timeout: Duration) -> BootstrapServer {
        BootstrapServer {
            shared: self.shared.clone(),
            op_timeout: timeout,
            secure: self.secure,
        }
    }

    /// Subscribes to the events from now on.
    pub fn events(&self) -> broadcast::Receiver<BootstrapEvent> {
        self.shared.events.subscribe()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The latest Bootstrap-Request of an endpoint.
    pub fn session(&self, endpoint: &str) -> Option<Session> {
        self.state().sessions.get(endpoint).cloned()
    }

    /// The deviations recorded for an endpoint.
    pub fn deviations(&self, endpoint: &str) -> Vec<Deviation> {
        self.state()
            .deviations
            .get(endpoint)
            .cloned()
            .unwrap_or_default()
    }

    /// Deviations not tied to an endpoint (e.g. a Bootstrap-Request without `ep`).
    pub fn unattributed_deviations(&self) -> Vec<Deviation> {
        self.deviations("")
    }

    /// Forgets the recorded deviations of an endpoint.
    pub fn clear_deviations(&self, endpoint: &str) {
        self.state().deviations.remove(endpoint);
    }

    async fn op(&self, endpoint: &str, operation: BsOperation) -> Result<Response, OpError> {
        let name = operation.name();
        let path = operation.path_text();
        let (reply, rx) = oneshot::channel();
        let req = BsRequest {
            endpoint: endpoint.to_string(),
            operation,
            reply,
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

    /// Bootstrap-Discover (`GET path` with Accept 40). See [`parse_links`].
    pub async fn discover(&self, endpoint: &str, path: &ObjectPath) -> Result<Response, OpError> {
        self.op(endpoint, BsOperation::Discover { path: *path })
            .await
    }

    /// Bootstrap-Read (`GET path`; LwM2M 1.1 allows /1 and /2 only), with an
    /// optional Accept. The answer is decoded into [`Response::decoded`].
    pub async fn read(
        &self,
        endpoint: &str,
        path: &ObjectPath,
        accept: Option<ContentFormat>,
    ) -> Result<Response, OpError> {
        self.op(
            endpoint,
            BsOperation::Read {
                path: *path,
                accept,
            },
        )
        .await
    }

    /// Bootstrap-Write (`PUT path`) of `records`, encoded in TLV.
    pub async fn write(
        &self,
        endpoint: &str,
        path: &ObjectPath,
        records: &[Record],
    ) -> Result<Response, OpError> {
        let payload = rig_proto::content::encode(
            ContentFormat::Tlv,
            path,
            records,
            &rig_proto::object::Registry::core(),
        )
        .map_err(|e| OpError::Request {
            endpoint: endpoint.to_string(),
            operation: "Bootstrap-Write",
            reason: format!("cannot encode the records for {path} as TLV: {e}"),
        })?;
        self.write_raw(endpoint, path, ContentFormat::Tlv, payload)
            .await
    }

    /// Bootstrap-Write of an already encoded payload.
    pub async fn write_raw(
        &self,
        endpoint: &str,
        path: &ObjectPath,
        format: ContentFormat,
        payload: Vec<u8>,
    ) -> Result<Response, OpError> {
        self.op(
            endpoint,
            BsOperation::Write {
                path: *path,
                format,
                payload,
            },
        )
        .await
    }

    /// Bootstrap-Delete (`DELETE path`; `/` deletes all but the bootstrap account).
    pub async fn delete(&self, endpoint: &str, path: &ObjectPath) -> Result<Response, OpError> {
        self.op(endpoint, BsOperation::Delete { path: *path }).await
    }

    /// Bootstrap-Finish (`POST /bs`). The answer's code is the client's
    /// verdict on the configuration: 2.04, or 4.06 when it is inconsistent.
    pub async fn finish(&self, endpoint: &str) -> Result<Response, OpError> {
        self.op(endpoint, BsOperation::Finish).await
    }

    /// Provisions one server account: Bootstrap-Delete `/`, Bootstrap-Write
    /// of the Security and the Server instance, Bootstrap-Finish. Returns
    /// the Finish answer; an earlier step that does not succeed is an
    /// [`OpError::Request`] naming it and the code.
    pub async fn provision(
        &self,
        endpoint: &str,
        account: &Provisioning,
    ) -> Result<Response, OpError> {
        let step_failed = |what: String, code: Code| OpError::Request {
            endpoint: endpoint.to_string(),
            operation: "provisioning",
            reason: format!("{what} answered {code}"),
        };
        let r = self.delete(endpoint, &ObjectPath::Root).await?;
        if !r.code.is_success() {
            return Err(step_failed("Bootstrap-Delete /".into(), r.code));
        }
        let sec = ObjectPath::instance(0, account.security_instance);
        let r = self
            .write(endpoint, &sec, &account.security_records())
            .await?;
        if !r.code.is_success() {
            return Err(step_failed(format!("Bootstrap-Write {sec}"), r.code));
        }
        let srv = ObjectPath::instance(1, account.server_instance);
        let r = self
            .write(endpoint, &srv, &account.server_records())
            .await?;
        if !r.code.is_success() {
            return Err(step_failed(format!("Bootstrap-Write {srv}"), r.code));
        }
        self.finish(endpoint).await
    }

    /// Scripted mode: from now on, provisions `account` for every client that
    /// sends a Bootstrap-Request (what `rig serve` uses). The task ends with
    /// the server. Outcomes are visible as [`BootstrapEvent::Finished`].
    pub fn serve_scripted(&self, account: Provisioning) {
        let server = self.clone();
        let mut events = self.events();
        let mut shutdown = self.shared.shutdown.subscribe();
        // Hold only a weak link: the scripted task must not keep the server alive.
        let weak = Arc::downgrade(&server.shared);
        let op_timeout = server.op_timeout;
        let secure = server.secure;
        drop(server);
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    e = events.recv() => e,
                    _ = shutdown.changed() => return,
                };
                match event {
                    Ok(BootstrapEvent::BootstrapRequest { endpoint, .. }) => {
                        let Some(shared) = weak.upgrade() else { return };
                        let server = BootstrapServer {
                            shared,
                            op_timeout,
                            secure,
                        };
                        let account = account.clone();
                        tokio::spawn(async move {
                            // The outcome is an event (Finished) or a deviation.
                            let _ = server.provision(&endpoint, &account).await;
                        });
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
}

/// The links of a Bootstrap-Discover answer (rig-proto's strict parser).
pub fn parse_links(response: &Response) -> Result<Vec<rig_proto::link::Link>, String> {
    rig_proto::link::parse_bytes(&response.payload).map_err(|e| e.to_string())
}

// ---- the driver ----------------------------------------------------------

/// The largest datagram accepted.
const MAX_DATAGRAM: usize = 65_535;

/// Plain UDP (`coap://`) or DTLS (`coaps://`).
enum Transport {
    Udp(UdpSocket),
    Dtls(rig_dtls::DtlsServerSocket),
}

impl Transport {
    async fn send_to(&self, bytes: &[u8], peer: SocketAddr) {
        // A send error is a peer problem; CoAP retransmission handles it.
        match self {
            Transport::Udp(s) => {
                let _ = s.send_to(bytes, peer).await;
            }
            Transport::Dtls(s) => {
                let _ = s.send_to(bytes, peer).await;
            }
        }
    }

    async fn recv_from(&self, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        match self {
            Transport::Udp(s) => s.recv_from(buf).await.ok(),
            Transport::Dtls(s) => s.recv_from(buf).await.ok(),
        }
    }

    fn try_event(&self) -> Option<rig_dtls::ServerEvent> {
        match self {
            Transport::Udp(_) => None,
            Transport::Dtls(s) => s.try_event(),
        }
    }

    async fn next_event(&self) -> Option<rig_dtls::ServerEvent> {
        match self {
            Transport::Udp(_) => std::future::pending().await,
            Transport::Dtls(s) => s.next_event().await,
        }
    }
}

/// The thin driver: datagrams, operations, deadlines and shutdown in; no decisions.
async fn run(
    socket: Transport,
    mut core: core::BootstrapCore,
    mut ops: mpsc::Receiver<BsRequest>,
    mut shutdown: watch::Receiver<bool>,
) {
    let epoch = Instant::now();
    core.set_epoch(epoch);
    let now = move || rig_proto::time::Instant::from_micros(epoch.elapsed().as_micros() as u64);
    let to_tokio = move |t: rig_proto::time::Instant| epoch + Duration::from_micros(t.as_micros());
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut ops_open = true;
    loop {
        while let Some((peer, bytes)) = core.poll_transmit() {
            socket.send_to(&bytes, peer).await;
        }
        let deadline = core.poll_timeout().map(to_tokio);
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            received = socket.recv_from(&mut buf) => {
                if let Some((n, peer)) = received {
                    while let Some(event) = socket.try_event() {
                        core.handle_dtls_event(event);
                    }
                    core.handle_datagram(now(), peer, &buf[..n]);
                }
            }
            event = socket.next_event() => {
                if let Some(event) = event {
                    core.handle_dtls_event(event);
                }
            }
            op = ops.recv(), if ops_open => {
                match op {
                    Some(op) => core.handle_op(now(), op),
                    None => ops_open = false,
                }
            }
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => core.handle_timeout(now()),
        }
    }
    core.shutdown();
}

#[cfg(test)]
mod tests;
