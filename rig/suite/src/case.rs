//! What a case is: its metadata, its body, and the context the body works in.
//!
//! A case is Rust code (see [`crate::cases`]) with an id, a title, the bench
//! features it requires, the DUT start state it needs and a timeout. Its body is
//! an async function over a [`CaseContext`]: it drives the services and the DUT,
//! records measurements, and returns `Ok(())` for a pass or a [`CaseFailure`]
//! that carries the verdict and a precise message. The engine applies the
//! timeout; a body never needs its own outer timeout, but every wait *inside* a
//! body is bounded too (use [`CaseContext::scaled`] for protocol times).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rig_bench::dut::Dut;
use rig_report::events::{Measurement, Verdict};
use rig_services::lwm2m::{Lwm2mServer, ServerConfig};

/// The ETS area a case belongs to (for `rig list` and the report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Area {
    /// ETS 0-99.
    Bootstrap,
    /// ETS 100-199.
    Registration,
    /// ETS 200-299.
    DeviceManagement,
    /// ETS 300-399.
    InformationReporting,
    /// ETS 400-499.
    Security,
    /// ETS 500-999 and 1000+.
    CoreObjects,
    /// ETS 750-799 and the FOTA interruption cases.
    FirmwareUpdate,
    /// The MachNation study scenarios.
    MachNation,
}

impl Area {
    /// Short lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Area::Bootstrap => "bootstrap",
            Area::Registration => "registration",
            Area::DeviceManagement => "device-management",
            Area::InformationReporting => "information-reporting",
            Area::Security => "security",
            Area::CoreObjects => "core-objects",
            Area::FirmwareUpdate => "firmware-update",
            Area::MachNation => "machnation",
        }
    }
}

/// The state the DUT must be in when the body starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartState {
    /// The DUT is stopped; the body starts it (e.g. to watch the first Register).
    Stopped,
    /// The DUT was (re)started with the given ETS configuration and has
    /// registered with the rig's LwM2M server.
    Registered(EtsConfig),
}

/// ETS appendix C configurations the rig can provision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtsConfig {
    /// C.1: one server account, lifetime 86400, binding U.
    C1,
    /// C.3: C.1 plus default pmin 1, pmax 10, disable timeout 86400.
    C3,
}

/// Static facts about a case.
#[derive(Clone, Debug)]
pub struct CaseMeta {
    /// Case id, e.g. `LightweightM2M-1.1-int-101`.
    pub id: &'static str,
    /// Human title (the ETS title).
    pub title: &'static str,
    /// ETS area.
    pub area: Area,
    /// Bench features the case needs (e.g. `lwm2m`, `dtls-psk`, `impair`, `power`).
    pub requires: &'static [&'static str],
    /// Start state.
    pub start: StartState,
    /// Case timeout at time scale 1 (the engine divides it by the time scale).
    pub timeout: Duration,
    /// How the case reads an ambiguous ETS text, if it had to choose.
    pub reading: Option<&'static str>,
    /// The case waits on timers of the DUT that no time scale shortens (a
    /// real device's CoAP MAX_TRANSMIT_WAIT, as in int-7), so the engine
    /// never divides its timeout by the time scale.
    pub unscaled_timeout: bool,
    /// The largest time scale the case's counts stay exact at, if it has one
    /// (a MachNation report every second over TCP: at a larger scale the
    /// reports come faster than TCP's delayed ACK and the packet counts
    /// change). The engine runs the case at the smaller of this and the
    /// run's scale: its `CaseContext::time_scale` and its timeout. Only for
    /// cases that start their own servers: the run's LwM2M server keeps the
    /// run's scale.
    pub max_time_scale: Option<f64>,
}

/// Why a case did not pass.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseFailure {
    /// The verdict (never `Pass`).
    pub verdict: Verdict,
    /// What was expected and what was seen.
    pub message: String,
}

impl CaseFailure {
    /// The DUT broke a pass criterion.
    pub fn fail(message: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Fail,
            message: message.into(),
        }
    }
    /// The case could not decide.
    pub fn inconclusive(message: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Inconclusive,
            message: message.into(),
        }
    }
    /// The case does not apply to this DUT or bench.
    pub fn not_applicable(message: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::NotApplicable,
            message: message.into(),
        }
    }
    /// A wait inside the case ran out.
    pub fn out_of_time(message: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::OutOfTime,
            message: message.into(),
        }
    }
    /// The rig itself failed.
    pub fn infra(message: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Error,
            message: message.into(),
        }
    }
}

/// What a case body returns.
pub type CaseResult = Result<(), CaseFailure>;

/// The boxed future of a case body.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = CaseResult> + Send + 'a>>;

/// A case: metadata plus body.
pub struct CaseDef {
    /// Static facts.
    pub meta: CaseMeta,
    /// The body. Write it as `|cx| Box::pin(body(cx))` over an `async fn body(cx: &mut CaseContext) -> CaseResult`.
    pub body: for<'a> fn(&'a mut CaseContext) -> CaseFuture<'a>,
}

impl std::fmt::Debug for CaseDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaseDef")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// An LwM2M security mode (the Security object's `/0/x/2`), as the suite
/// matrix and the bench name it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecurityMode {
    /// NoSec: CoAP over plain UDP (`coap://`).
    #[default]
    NoSec,
    /// DTLS with a pre-shared key.
    Psk,
    /// DTLS with RFC 7250 raw public keys.
    Rpk,
    /// DTLS with X.509 certificates.
    X509,
}

impl SecurityMode {
    /// Every mode, in matrix order.
    pub const ALL: [SecurityMode; 4] = [
        SecurityMode::NoSec,
        SecurityMode::Psk,
        SecurityMode::Rpk,
        SecurityMode::X509,
    ];

    /// The name used in suite files, case-id suffixes and the agent's
    /// `--security` option: `nosec`, `psk`, `rpk`, `x509`.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityMode::NoSec => "nosec",
            SecurityMode::Psk => "psk",
            SecurityMode::Rpk => "rpk",
            SecurityMode::X509 => "x509",
        }
    }

    /// The mode with this name.
    pub fn parse(name: &str) -> Option<SecurityMode> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

impl std::fmt::Display for SecurityMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The future a [`SecureBinder`] returns: a started `coaps://` server, or why not.
pub type SecureBindFuture = Pin<Box<dyn Future<Output = Result<Lwm2mServer, String>> + Send>>;

/// How the run binds a DTLS LwM2M server next to its plain one, in the same
/// place (loopback, or the services namespace of the simulated network). The
/// CLI provides it; cases reach it through [`crate::start::use_secure_server`].
#[derive(Clone)]
pub struct SecureBinder(Arc<BindFn>);

/// What a [`SecureBinder`] calls: the plain server's configuration and the
/// DTLS configuration in, a started server out.
type BindFn = dyn Fn(ServerConfig, rig_dtls::ServerConfig) -> SecureBindFuture + Send + Sync;

impl SecureBinder {
    /// A binder from a function that binds and starts a secure server.
    pub fn new(
        f: impl Fn(ServerConfig, rig_dtls::ServerConfig) -> SecureBindFuture + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(f))
    }

    /// A binder for loopback: `127.0.0.1`, a free port.
    pub fn loopback() -> Self {
        Self::new(|config, dtls| {
            Box::pin(async move {
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
                Lwm2mServer::bind_secure(addr, config, dtls)
                    .await
                    .map_err(|e| e.to_string())
            })
        })
    }

    /// Binds and starts a secure server.
    pub async fn bind(
        &self,
        config: ServerConfig,
        dtls: rig_dtls::ServerConfig,
    ) -> Result<Lwm2mServer, String> {
        (self.0)(config, dtls).await
    }
}

impl std::fmt::Debug for SecureBinder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecureBinder")
    }
}

/// The security side of a case: the mode its server speaks, how to bind a
/// secure server, the bench's credentials, and what the DUT is provisioned
/// with. `Default` is NoSec with no way to go secure (secure cases are then
/// Not Applicable).
#[derive(Clone, Debug, Default)]
pub struct SecurityContext {
    /// The mode of `CaseContext::server` (NoSec unless a secure server was bound).
    pub mode: SecurityMode,
    /// The mode the suite matrix asks of this case variant, if any.
    pub matrix: Option<SecurityMode>,
    /// How to bind a secure server, if the run can.
    pub binder: Option<SecureBinder>,
    /// The bench's `[security]` credentials.
    pub credentials: Option<Arc<rig_bench::file::SecuritySpec>>,
    /// The `DutConfig::extra` keys that provision the DUT's security
    /// (`security`, `psk_identity`, ...): set with the secure server.
    pub dut_extra: BTreeMap<String, String>,
    /// Something a passing case wants in its message (e.g. why the DUT
    /// refused a handshake in int-403).
    pub note: Option<String>,
    /// How to bind a plain UDP socket where the LwM2M server lives (for a
    /// service a case starts itself, e.g. the bootstrap server). `None`: bind
    /// at the server's address directly (loopback).
    pub udp_binder: Option<UdpBinder>,
}

/// Binds a plain UDP socket where the run's LwM2M server lives: on the
/// simulated network that is the services namespace, whose address the rig's
/// own namespace does not have. The CLI provides it.
#[derive(Clone)]
pub struct UdpBinder(Arc<UdpBindFn>);

/// What a [`UdpBinder`] calls: an address in, a bound socket out.
type UdpBindFn = dyn Fn(std::net::SocketAddr) -> std::io::Result<std::net::UdpSocket> + Send + Sync;

impl UdpBinder {
    /// A binder from a function that binds a socket.
    pub fn new(
        f: impl Fn(std::net::SocketAddr) -> std::io::Result<std::net::UdpSocket> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(f))
    }

    /// Binds a socket at `addr` (port 0: a free port).
    pub fn bind(&self, addr: std::net::SocketAddr) -> std::io::Result<std::net::UdpSocket> {
        (self.0)(addr)
    }
}

impl std::fmt::Debug for UdpBinder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UdpBinder")
    }
}

/// The network a case runs on: where the rig's services listen (loopback, or
/// the services namespace of the simulated network), and, on the simulated
/// network, a control of the link bridge for accounting windows, cuts, NAT
/// rebinding and link profiles. A cheap handle; the CLI builds it.
#[derive(Clone, Debug)]
pub struct CaseNetwork {
    services: Option<rig_net::Namespace>,
    services_ip: std::net::IpAddr,
    bridge: Option<rig_net::BridgeControl>,
}

impl Default for CaseNetwork {
    fn default() -> Self {
        Self::loopback()
    }
}

impl CaseNetwork {
    /// Services on `127.0.0.1`, no bridge (nothing measured, nothing impaired).
    pub fn loopback() -> Self {
        Self {
            services: None,
            services_ip: std::net::Ipv4Addr::LOCALHOST.into(),
            bridge: None,
        }
    }

    /// The simulated network: services bound inside `services` (at its
    /// address), the link driven through `bridge`.
    pub fn simulated(services: rig_net::Namespace, bridge: rig_net::BridgeControl) -> Self {
        let services_ip = services
            .addr()
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST)
            .into();
        Self {
            services: Some(services),
            services_ip,
            bridge: Some(bridge),
        }
    }

    /// Whether this is the simulated network (frames cross the bridge).
    pub fn is_simulated(&self) -> bool {
        self.bridge.is_some()
    }

    /// The address the DUT reaches the rig's services at.
    pub fn services_ip(&self) -> std::net::IpAddr {
        self.services_ip
    }

    /// A UDP socket for a service, at [`Self::services_ip`] and `port` (0: a
    /// free port). On the simulated network it is bound inside the services
    /// namespace; turn it into a tokio socket with `set_nonblocking` and
    /// `from_std`.
    pub fn bind_udp(&self, port: u16) -> std::io::Result<std::net::UdpSocket> {
        let addr = std::net::SocketAddr::new(self.services_ip, port);
        match &self.services {
            Some(ns) => ns.bind_udp(addr).map_err(std::io::Error::other),
            None => std::net::UdpSocket::bind(addr),
        }
    }

    /// A TCP listener for a service (a broker, a file server), as
    /// [`Self::bind_udp`].
    pub fn bind_tcp(&self, port: u16) -> std::io::Result<std::net::TcpListener> {
        let addr = std::net::SocketAddr::new(self.services_ip, port);
        match &self.services {
            Some(ns) => ns.bind_tcp(addr).map_err(std::io::Error::other),
            None => std::net::TcpListener::bind(addr),
        }
    }

    /// The link bridge, on the simulated network. Its calls block for at
    /// most 10 s each (a channel round trip to the bridge thread).
    pub fn bridge(&self) -> Option<&rig_net::BridgeControl> {
        self.bridge.as_ref()
    }

    /// The link bridge, or Not Applicable naming what the case needs it for
    /// (`"a cut of the link"`, `"byte accounting"`).
    pub fn require_bridge(&self, what: &str) -> Result<&rig_net::BridgeControl, CaseFailure> {
        self.bridge.as_ref().ok_or_else(|| {
            CaseFailure::not_applicable(format!(
                "{what} needs the simulated network (a bench with network = {{ kind = \"sim\" }}); \
                 this run is on loopback"
            ))
        })
    }
}

/// Everything a case body can use. The engine builds one per case.
pub struct CaseContext {
    /// The rig's LwM2M server (a cheap handle).
    pub server: Lwm2mServer,
    /// The device under test, already in the case's start state.
    pub dut: Box<dyn Dut>,
    /// The endpoint name the DUT registers with.
    pub endpoint: String,
    /// Time scale divisor (1.0 = real time).
    pub time_scale: f64,
    /// Measurements recorded so far.
    pub measurements: Vec<Measurement>,
    /// Progress lines for the reporters.
    pub progress: tokio::sync::mpsc::UnboundedSender<String>,
    /// The security mode, credentials and secure-server binder.
    pub security: SecurityContext,
    /// The network: where services bind, and the link bridge if simulated.
    pub net: CaseNetwork,
    /// The suite file's parameters for this case (`[params."<glob>"]`,
    /// merged in file order); read them with [`CaseContext::param`].
    pub params: BTreeMap<String, toml::Value>,
    /// Where [`CaseContext::params`] came from (the suite file), for messages.
    pub params_source: String,
    /// The bench's power meter, if it has one: energy over windows the case
    /// names (`begin_window` / `end_window`), and the energy model's profile
    /// on a simulated bench (`set_profile`). `None` without `[power]`.
    pub power: Option<rig_bench::power::CasePower>,
}

impl CaseContext {
    /// Records a measurement.
    pub fn measure(&mut self, name: impl Into<String>, unit: impl Into<String>, value: f64) {
        self.measurements.push(Measurement {
            name: name.into(),
            unit: unit.into(),
            value,
            limits: None,
        });
    }

    /// Tells the human what the case is doing now.
    pub fn step(&self, message: impl Into<String>) {
        // A closed channel only means no reporter listens any more.
        let _ = self.progress.send(message.into());
    }

    /// The suite parameter `key` as a `T`, or `default` when the suite does
    /// not set it. A value of the wrong type is an infrastructure error that
    /// names the suite file, the key and what was expected.
    pub fn param<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        default: T,
    ) -> Result<T, CaseFailure> {
        match self.params.get(key) {
            None => Ok(default),
            Some(v) => v.clone().try_into().map_err(|e| {
                CaseFailure::infra(format!(
                    "{}: params.{key} = {v}: {e}",
                    if self.params_source.is_empty() {
                        "suite"
                    } else {
                        &self.params_source
                    }
                ))
            }),
        }
    }

    /// A protocol duration divided by the time scale.
    pub fn scaled(&self, d: Duration) -> Duration {
        d.div_f64(self.time_scale.max(1.0))
    }
}
