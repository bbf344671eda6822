//! The agent's command line: which server, which endpoint, which timers.

use std::time::Duration;

use clap::Parser;

/// An LwM2M 1.1 client (the rig's reference DUT), driven by a line console on
/// stdin/stdout. The console protocol is described in firmware/agent/README.md.
///
/// Example:
///   rig-agent --server coap://127.0.0.1:5683 --endpoint ep1 --lifetime 86400
#[derive(Clone, Debug, Parser, PartialEq)]
#[command(name = "rig-agent", version, about, long_about)]
pub struct AgentConfig {
    /// The LwM2M server URI, `coap://host:port` (NoSec over UDP) or
    /// `coaps://host:port` (DTLS 1.2; needs `--security psk|rpk|x509`).
    /// Not needed (and not used) with `--mqtt`.
    #[arg(
        long,
        value_name = "URI",
        required_unless_present = "mqtt",
        default_value = ""
    )]
    pub server: String,
    /// Security mode (`/0/0/2`): nosec, psk, rpk or x509.
    #[arg(long, value_name = "MODE", value_enum, default_value_t = SecurityMode::Nosec)]
    pub security: SecurityMode,
    /// PSK identity (`/0/0/3` in PSK mode), as text.
    #[arg(long, value_name = "ID")]
    pub psk_identity: Option<String>,
    /// PSK key (`/0/0/5` in PSK mode), hex.
    #[arg(long, value_name = "HEX")]
    pub psk_key_hex: Option<String>,
    /// Our certificate chain, PEM (x509), leaf first.
    #[arg(long, value_name = "FILE")]
    pub cert: Option<std::path::PathBuf>,
    /// Our private key, PEM (x509, rpk).
    #[arg(long, value_name = "FILE")]
    pub key: Option<std::path::PathBuf>,
    /// x509: the CA certificates we trust (PEM); rpk: the server public key we pin (PEM).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
    /// x509: the name the server certificate must carry (default: the URI host).
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// The DTLS implementation: openssl (rig-dtls; PSK, RPK, X.509) or webrtc
    /// (webrtc-dtls, pure Rust; PSK and X.509 only).
    #[arg(long, value_name = "BACKEND", value_enum, default_value_t = DtlsBackend::Openssl)]
    pub dtls_backend: DtlsBackend,
    /// The DTLS handshake's first retransmission timeout, in seconds
    /// (openssl: doubles on each retry; webrtc: its fixed flight interval). RFC 6347's 1 s is below
    /// the round trip of a slow link (NB-IoT: up to 2 s, plus the flight's
    /// air time), where every flight would go twice; RFC 7925 §11 asks for
    /// more on constrained networks. Not scaled by --time-scale.
    #[arg(long, value_name = "S", default_value_t = 1.0, value_parser = parse_retransmit)]
    pub dtls_retransmit_initial: f64,
    /// The endpoint client name sent as `ep=`.
    #[arg(long, value_name = "EP")]
    pub endpoint: String,
    /// Registration lifetime `/1/0/1`, in seconds.
    #[arg(long, value_name = "S", default_value_t = 86_400, value_parser = clap::value_parser!(u32).range(1..))]
    pub lifetime: u32,
    /// Divides the agent's protocol timers (Update schedule, disable timeout);
    /// wire values are unchanged. CoAP retransmission timers are never scaled.
    #[arg(long, value_name = "N", default_value_t = 1.0, value_parser = parse_scale)]
    pub time_scale: f64,
    /// Short Server ID `/1/0/0` (and `/0/0/10`).
    #[arg(long, value_name = "ID", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..65535))]
    pub ssid: u16,
    /// Binding `/1/0/7`.
    #[arg(long, value_name = "B", default_value = "U", value_parser = parse_binding)]
    pub binding: String,
    /// Default minimum period `/1/0/2`, in seconds.
    #[arg(long, value_name = "S")]
    pub pmin: Option<u32>,
    /// Default maximum period `/1/0/3`, in seconds.
    #[arg(long, value_name = "S")]
    pub pmax: Option<u32>,
    /// Disable timeout `/1/0/5`, in seconds.
    #[arg(long, value_name = "S", default_value_t = 86_400)]
    pub disable_timeout: u32,
    /// The bootstrap server URI (`coap://` or `coaps://`; with `coaps://` the
    /// `--security` credentials are the bootstrap account's): adds a
    /// bootstrap account `/0/1` to the factory configuration. The agent
    /// bootstraps when it has no usable server account, when registration
    /// fails, and on Execute `/1/x/9`.
    #[arg(long, value_name = "URI")]
    pub bootstrap_uri: Option<String>,
    /// The factory configuration holds only the bootstrap account (ETS
    /// configuration C.13): `--server` is ignored and the agent bootstraps
    /// first. Needs `--bootstrap-uri`.
    #[arg(long, requires = "bootstrap_uri")]
    pub bootstrap_only: bool,
    /// TEST ONLY: plant one specific protocol deviation, to prove the rig
    /// catches it (repeatable). See firmware/agent/README.md.
    #[arg(long = "deviate", value_name = "DEVIATION", value_enum, hide = true)]
    pub deviate: Vec<Deviation>,
    /// Queue mode (LwM2M 1.1 `Q`): after MAX_TRANSMIT_WAIT (93 s, scaled by
    /// --time-scale) without traffic the agent sleeps (ignores requests)
    /// until its next uplink. `--binding UQ` (1.0 style) turns it on too.
    #[arg(long)]
    pub queue_mode: bool,
    /// MQTT mode: speak MQTT 3.1.1 over TLS 1.2 to this broker
    /// (`mqtts://ip:port`) instead of LwM2M; needs `--cert`, `--key`, `--ca`.
    #[arg(long, value_name = "URL")]
    pub mqtt: Option<String>,
    /// MQTT mode: `aws` (AWS-IoT-like shadow, SDK 1.4.7 behaviour) or `plain`.
    #[arg(long, value_name = "VARIANT", value_enum, default_value_t = crate::mqtt::MqttVariant::Aws)]
    pub mqtt_variant: crate::mqtt::MqttVariant,
    /// MQTT mode: first level of the AWS topics (`$aws`; `aws` on rumqttd).
    #[arg(long, value_name = "ROOT", default_value = "$aws")]
    pub mqtt_topic_root: String,
    /// MQTT mode: report the test object every S seconds (scaled by --time-scale).
    #[arg(long, value_name = "S")]
    pub report_every: Option<f64>,
    /// MQTT mode: report the test object once as soon as the subscriptions
    /// are done (the SDK sample's first shadow update; MachNation scenario 1).
    #[arg(long)]
    pub report_on_connect: bool,
    /// MQTT mode: keepalive in seconds (default 600, SDK 1.4.7's; scaled by
    /// --time-scale).
    #[arg(long, value_name = "S")]
    pub mqtt_keepalive: Option<f64>,
    /// Extra objects to serve, beyond the default 0, 1, 3, 5 and 33333 (the
    /// default Register is unchanged without it): a comma list of 4
    /// (Connectivity Monitoring), 6 (Location), 7 (Connectivity Statistics)
    /// and 16 (Portfolio), or `core` for all four. Any of them also sets the
    /// Device object's UTC Offset `/3/0/14` and Timezone `/3/0/15`.
    /// The last `--objects` given wins.
    #[arg(long, value_name = "LIST", default_value = "", value_parser = parse_objects, overrides_with = "objects")]
    pub objects: ObjectList,
    /// A second LwM2M server, `coap://host:port` (NoSec; ETS configuration
    /// C.14): server account `/0/1` + `/1/1` with Short Server ID
    /// `--ssid2`. The agent registers with both servers; each server's
    /// Write-Attributes and observations are its own.
    #[arg(long, value_name = "URI", conflicts_with = "bootstrap_uri")]
    pub server2: Option<String>,
    /// Short Server ID of `--server2`.
    #[arg(long, value_name = "ID", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..65535))]
    pub ssid2: u16,
    /// MQTT mode, aws variant: no AWS IoT Jobs (no jobs subscriptions and no
    /// `start-next` after connecting), as the SDK's basicShadowUpdater
    /// sample, the study's telemetry client. Without it the agent also runs
    /// the Jobs FOTA flow (`--mqtt-fota`).
    #[arg(long)]
    pub mqtt_no_jobs: bool,
    /// Test object `/33333/0/0` (string) at start.
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub test_string: String,
    /// Test object `/33333/0/1` (integer) at start.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub test_int: i64,
    /// Test object `/33333/0/2` (float) at start.
    #[arg(
        long,
        value_name = "X",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub test_float: f64,
    /// Test object `/33333/0/3` (boolean) at start: true when given.
    #[arg(long)]
    pub test_bool: bool,
    /// Firmware update: where the partial image, its URI, ETag and offset are
    /// kept so a restarted agent resumes (default: a temp dir for this process).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<std::path::PathBuf>,
    /// Firmware update: CoAP Block2 size of a pull (16..=1024, a power of two).
    #[arg(long, value_name = "BYTES", default_value_t = 1024, value_parser = parse_block_size)]
    pub fota_block_size: usize,
    /// Firmware update: the largest package the agent stores (bigger: Update Result 2).
    #[arg(long, value_name = "BYTES", default_value_t = 4 * 1024 * 1024)]
    pub fota_max_size: u64,
    /// Firmware update: retries after a lost connection (then Update Result 4).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub fota_retries: u32,
    /// Firmware update: a download with no byte for S seconds has lost its connection.
    #[arg(long, value_name = "S", default_value_t = 30.0, value_parser = parse_positive)]
    pub fota_idle_timeout: f64,
    /// Firmware update: CA certificates (PEM) trusted for `https://` pulls
    /// (default: `--ca`, else the test CA fixtures/pki/ca.pem).
    #[arg(long, value_name = "FILE")]
    pub fota_ca: Option<std::path::PathBuf>,
    /// MQTT mode: how a FOTA job is delivered: https (start over after a
    /// cut), https-range (resume with Range + If-Match) or stream (MQTT file
    /// streams, resume from the block bitmap kept in RAM).
    #[arg(long, value_name = "MODE", value_enum, default_value_t = crate::fota::mqtt::MqttFota::Https)]
    pub mqtt_fota: crate::fota::mqtt::MqttFota,
    /// MQTT mode: block size of MQTT file streams (1024 or 4096).
    #[arg(long, value_name = "BYTES", default_value_t = 1024, value_parser = parse_stream_block)]
    pub mqtt_stream_block: usize,
}

/// The extra objects of `--objects`, in id order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectList(pub Vec<u16>);

impl ObjectList {
    /// Whether object `id` is served.
    pub fn has(&self, id: u16) -> bool {
        self.0.contains(&id)
    }
}

/// The objects `--objects` may add.
pub const EXTRA_OBJECTS: [u16; 4] = [4, 6, 7, 16];

fn parse_objects(s: &str) -> Result<ObjectList, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part == "core" {
            out.extend(EXTRA_OBJECTS);
            continue;
        }
        match part.parse::<u16>() {
            Ok(id) if EXTRA_OBJECTS.contains(&id) => out.push(id),
            _ => {
                return Err(format!(
                    "`{part}` is not an object this agent can add; use 4, 6, 7, 16 or `core`"
                ));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(ObjectList(out))
}

fn parse_block_size(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (16..=1024).contains(&n) && n.is_power_of_two() => Ok(n),
        _ => Err(format!(
            "`{s}` is not a CoAP block size (16, 32, 64, 128, 256, 512 or 1024)"
        )),
    }
}

fn parse_stream_block(s: &str) -> Result<usize, String> {
    match s {
        "1024" => Ok(1024),
        "4096" => Ok(4096),
        _ => Err(format!("`{s}`: MQTT stream blocks are 1024 or 4096 bytes")),
    }
}

fn parse_positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a positive number of seconds")),
    }
}

/// The LwM2M security modes the agent speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SecurityMode {
    /// NoSec (`coap://`).
    Nosec,
    /// DTLS with a pre-shared key.
    Psk,
    /// DTLS with RFC 7250 raw public keys.
    Rpk,
    /// DTLS with X.509 certificates.
    X509,
}

/// The DTLS implementation the agent uses for `coaps://`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DtlsBackend {
    /// rig-dtls on OpenSSL (every mode).
    Openssl,
    /// webrtc-dtls 0.12, pure Rust (PSK and X.509; needs the `webrtc-dtls` feature).
    Webrtc,
}

/// A deviation the agent can plant on purpose (test only): each one breaks
/// exactly one pass criterion of one ETS case, so a test can prove that the
/// rig fails that case and names the deviation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Deviation {
    /// List the Security object `</0/0>` in the Register (int-101).
    ListSecurityObject,
    /// Omit the `lwm2m` parameter from the Register (int-101).
    NoLwm2mVersion,
    /// Answer a lifetime Write but send no Update with `lt` (int-102).
    IgnoreLifetimeWrite,
    /// Never send the periodic Update before the lifetime runs out (int-102).
    NoPeriodicUpdate,
    /// Answer Execute /1/x/4 (Disable) but do not de-register (int-103).
    IgnoreDisable,
    /// Answer Execute /1/x/8 with an Update that carries parameters (int-104).
    TriggerUpdateWithParams,
    // ---- registration and bootstrap, second set (see `strict_reg.rs`) ----
    /// Send the Register's object list as text/plain instead of link format (int-101).
    RegisterWrongContentFormat,
    /// Answer Execute /1/x/8 with 2.05 Content instead of 2.04 Changed (int-104).
    TriggerWrongCode,
    /// After an Update answered 4.04, do not register again (int-105).
    IgnoreUpdateNotFound,
    /// Answer a Write that extends the lifetime with a new Register instead
    /// of an Update (int-107).
    ReregisterOnLifetimeExtension,
    /// Queue mode as LwM2M 1.0 did it, `b=UQ`, instead of the 1.1 `Q` parameter (int-108).
    QueueModeInBinding,
    /// In queue mode, keep answering requests after MAX_TRANSMIT_WAIT (int-109).
    AnswerWhileSleeping,
    /// In queue mode, once asleep, never answer a request again (int-109).
    NoWakeOnUpdate,
    /// Bootstrap-Discover without `ssid` on the server account instances (int-0).
    DiscoverWithoutSsid,
    /// Bootstrap-Delete of /0 also deletes the bootstrap account (int-4).
    DeleteBootstrapAccount,
    /// Answer Execute /1/x/9 but never send a Bootstrap-Request (int-5).
    IgnoreBootstrapTrigger,
    /// Bootstrap-Read answers TLV labelled as SenML JSON (int-8).
    BootstrapReadWrongFormat,
    /// Answer Bootstrap-Finish 2.04 even with no usable server account (int-9).
    FinishAcceptsInconsistent,
    /// Bootstrap at start even when the factory server account works (int-6).
    BootstrapDespiteServer,
    /// Answer a plain-text Read of `/3/0/0`-`/3/0/2` as opaque, CF 42 (int-201).
    DeviceInfoAsOpaque,
    /// Answer a TLV Read of an object instance wrapped in an Object Instance
    /// TLV that names the next instance id (int-203).
    TlvWrongInstance,
    /// Answer a Read with Accept LwM2M JSON (11543) in SenML JSON (int-204).
    Lwm2mJsonAsSenml,
    /// Encode a boolean as the CBOR integer 0/1 for Accept CBOR (int-211).
    CborBooleanAsInteger,
    /// Refuse a Write in CBOR (CF 60) with 4.15 (int-212).
    CborWriteRefused,
    /// Treat a partial update (POST) as a replace: drop the writable
    /// resources it does not carry (int-215).
    PartialUpdateReplaces,
    /// Make the Security object readable by the server (int-221).
    SecurityReadable,
    /// Send no Update after a partial update (POST) of the lifetime (int-226).
    PartialUpdateNoUpdate,
    /// Answer Read-Composite with SenML CBOR when SenML JSON was asked (int-229).
    CompositeIgnoresAccept,
    /// Fail a whole Read-Composite with 4.04 when one path is missing (int-236).
    CompositeMissingPathFails,
    /// Answer Execute /3/0/4 (Reboot) but do not reboot nor register (int-241).
    RebootWithoutRegister,
    /// Accept a Write to the read-only Short Server ID `/1/0/0` (int-256).
    WriteReadOnly,
    /// Report `gt` and `lt` swapped in Discover (int-260).
    DiscoverSwapsGtLt,
    /// Leave the attributes of resource instances out of Discover (int-261).
    DiscoverDropsInstanceAttributes,
    /// Notify at twice the pmax in force (int-301).
    LateNotification,
    /// Notify at half the pmin, ignoring pmin (int-301).
    EarlyNotification,
    /// Add the Security object's values to a Send of whole objects (int-306).
    SendSecurityObject,
    /// Send even while `/1/x/23` (Mute Send) is true (int-307).
    SendIgnoresMute,
    /// Label a Send of resource values as LwM2M JSON (11543) (int-311).
    SendInLwm2mJson,
    // ---- core objects (see `client/core.rs`) ----
    /// Accept a Create on the Device object `/3` with 2.01 (int-680).
    CreateDeviceInstance,
    /// Leave the mandatory IP Addresses `/4/0/4` out of Connectivity Monitoring (int-701).
    NoIpAddresses,
    /// Leave the mandatory Timestamp `/6/0/5` out of Location (int-801).
    NoLocationTimestamp,
    /// Keep counting Connectivity Statistics after Execute Stop `/7/0/7` (int-901).
    StatsCountAfterStop,
    /// Answer Delete of a Portfolio instance 2.02 but keep it (int-1635).
    DeleteKeepsInstance,
    /// Keep one set of written attributes for both servers of `--server2` (int-951).
    SharedAttributes,
}

fn parse_scale(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if !(v.is_finite() && v >= 1.0) {
        return Err(format!("the time scale must be a number >= 1, got `{s}`"));
    }
    Ok(v)
}

fn parse_retransmit(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if !(v.is_finite() && (0.1..=60.0).contains(&v)) {
        return Err(format!(
            "the DTLS retransmission timeout must be 0.1 to 60 seconds, got `{s}`"
        ));
    }
    Ok(v)
}

fn parse_binding(s: &str) -> Result<String, String> {
    if s == "U" || s == "UQ" {
        Ok(s.to_string())
    } else {
        Err(format!(
            "binding `{s}` is not supported; this agent supports only `U` (UDP) and `UQ` (UDP, queue mode)"
        ))
    }
}

impl AgentConfig {
    /// A protocol duration divided by the time scale.
    pub fn scaled(&self, d: Duration) -> Duration {
        d.div_f64(self.time_scale)
    }

    /// Whether a test-only deviation is switched on.
    pub fn deviates(&self, d: Deviation) -> bool {
        self.deviate.contains(&d)
    }

    /// The time scale as the integer divisor rig-proto's timers take (rounded).
    pub fn time_scale_u32(&self) -> u32 {
        self.time_scale.round().clamp(1.0, f64::from(u32::MAX)) as u32
    }

    /// The host part of `--server` (without brackets), for the x509 name check.
    pub fn server_host(&self) -> Option<String> {
        let rest = self
            .server
            .strip_prefix("coaps://")
            .or_else(|| self.server.strip_prefix("coap://"))?;
        let hostport = rest.trim_end_matches('/');
        if let Some(v6) = hostport.strip_prefix('[') {
            return v6.split(']').next().map(str::to_string);
        }
        hostport.split(':').next().map(str::to_string)
    }

    /// The DTLS client configuration for `--security` (`None` for nosec).
    /// Errors name the flag or file that is wrong.
    pub fn dtls_config(&self) -> Result<Option<rig_dtls::ClientConfig>, String> {
        use rig_dtls::ClientCredentials as C;
        let need = |v: &Option<std::path::PathBuf>, flag: &str| {
            v.clone()
                .ok_or_else(|| format!("--security {:?} needs {flag}", self.security))
        };
        let creds = match self.security {
            SecurityMode::Nosec => return Ok(None),
            SecurityMode::Psk => {
                let identity = self
                    .psk_identity
                    .clone()
                    .ok_or("--security psk needs --psk-identity")?;
                let hex = self
                    .psk_key_hex
                    .as_deref()
                    .ok_or("--security psk needs --psk-key-hex")?;
                let key = rig_dtls::from_hex(hex).map_err(|e| format!("--psk-key-hex: {e}"))?;
                C::Psk {
                    identity: identity.into_bytes(),
                    key,
                }
            }
            SecurityMode::X509 => {
                let cert = need(&self.cert, "--cert")?;
                let key = need(&self.key, "--key")?;
                let ca = need(&self.ca, "--ca")?;
                C::Certificate {
                    chain: rig_dtls::load_certificates(&cert)
                        .map_err(|e| format!("--cert {}: {e}", cert.display()))?,
                    key: rig_dtls::load_private_key(&key)
                        .map_err(|e| format!("--key {}: {e}", key.display()))?,
                    trust: rig_dtls::load_certificates(&ca)
                        .map_err(|e| format!("--ca {}: {e}", ca.display()))?,
                    server_name: self.server_name.clone().or_else(|| self.server_host()),
                }
            }
            SecurityMode::Rpk => {
                let key = need(&self.key, "--key")?;
                let ca = need(&self.ca, "--ca")?;
                C::RawPublicKey {
                    key: rig_dtls::load_private_key(&key)
                        .map_err(|e| format!("--key {}: {e}", key.display()))?,
                    server_keys: vec![
                        rig_dtls::load_public_key(&ca)
                            .map_err(|e| format!("--ca {}: {e}", ca.display()))?,
                    ],
                }
            }
        };
        let mut c = rig_dtls::ClientConfig::new(creds);
        self.tune_dtls(&mut c);
        Ok(Some(c))
    }

    /// Applies `--dtls-retransmit-initial` to a DTLS client configuration.
    pub fn tune_dtls(&self, c: &mut rig_dtls::ClientConfig) {
        c.tuning.retransmit_initial =
            std::time::Duration::from_secs_f64(self.dtls_retransmit_initial);
    }

    /// The socket address of `--server2` (NoSec `coap://` only), if given.
    pub fn server2_addr(&self) -> Option<Result<std::net::SocketAddr, String>> {
        let uri = self.server2.as_ref()?;
        let mut c = self.clone();
        c.server = uri.clone();
        c.security = SecurityMode::Nosec;
        Some(
            c.server_addr()
                .map_err(|e| e.replace("--server ", "--server2 ")),
        )
    }

    /// The server's socket address from `--server` (`coap://host:port`, port
    /// 5683 if absent; `coaps://host:port`, port 5684 if absent, only with a
    /// security mode). Host names are resolved.
    pub fn server_addr(&self) -> Result<std::net::SocketAddr, String> {
        let (rest, default_port) = match (
            self.server.strip_prefix("coap://"),
            self.server.strip_prefix("coaps://"),
        ) {
            (Some(r), _) if self.security == SecurityMode::Nosec => (r, 5683),
            (_, Some(r)) if self.security != SecurityMode::Nosec => (r, 5684),
            (Some(_), _) => {
                return Err(format!(
                    "--server `{}`: a `coap://` URI is NoSec; use `coaps://` with --security {:?}",
                    self.server, self.security
                ));
            }
            (_, Some(_)) => {
                return Err(format!(
                    "--server `{}`: a `coaps://` URI needs --security psk, rpk or x509",
                    self.server
                ));
            }
            _ => {
                return Err(format!(
                    "--server `{}`: only `coap://` (NoSec) and `coaps://` (DTLS) are supported",
                    self.server
                ));
            }
        };
        let hostport = rest.trim_end_matches('/');
        if hostport.is_empty() || hostport.contains('/') {
            return Err(format!(
                "--server `{}`: expected coap://host:port",
                self.server
            ));
        }
        let with_port = if hostport.ends_with(']') || !hostport.contains(':') {
            format!("{hostport}:{default_port}")
        } else {
            hostport.to_string()
        };
        use std::net::ToSocketAddrs;
        with_port
            .to_socket_addrs()
            .map_err(|e| {
                format!(
                    "--server `{}`: cannot resolve `{with_port}`: {e}",
                    self.server
                )
            })?
            .next()
            .ok_or_else(|| {
                format!(
                    "--server `{}`: `{with_port}` resolves to no address",
                    self.server
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Result<AgentConfig, clap::Error> {
        let mut v = vec![
            "rig-agent",
            "--server",
            "coap://127.0.0.1:5683",
            "--endpoint",
            "ep",
        ];
        v.extend_from_slice(args);
        AgentConfig::try_parse_from(v)
    }

    #[test]
    fn defaults_are_configuration_c1() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.lifetime, 86_400);
        assert_eq!(c.ssid, 1);
        assert_eq!(c.binding, "U");
        assert_eq!(c.time_scale, 1.0);
        assert_eq!(c.server_addr().unwrap(), "127.0.0.1:5683".parse().unwrap());
    }

    #[test]
    fn the_dtls_retransmission_timer_reaches_the_dtls_configuration() {
        let psk = [
            "--security",
            "psk",
            "--psk-identity",
            "a",
            "--psk-key-hex",
            "00ff",
        ];
        let c = cfg(&psk).unwrap().dtls_config().unwrap().unwrap();
        assert_eq!(
            c.tuning.retransmit_initial,
            std::time::Duration::from_secs(1)
        );
        let mut slow = psk.to_vec();
        slow.extend(["--dtls-retransmit-initial", "5.75"]);
        let c = cfg(&slow).unwrap().dtls_config().unwrap().unwrap();
        assert_eq!(
            c.tuning.retransmit_initial,
            std::time::Duration::from_millis(5750)
        );
        for bad in ["0", "61", "nan", "x"] {
            let e = cfg(&["--dtls-retransmit-initial", bad])
                .unwrap_err()
                .to_string();
            assert!(e.contains("--dtls-retransmit-initial"), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let e = cfg(&["--time-scale", "0.5"]).unwrap_err().to_string();
        assert!(e.contains("--time-scale"), "{e}");
        let e = cfg(&["--binding", "T"]).unwrap_err().to_string();
        assert!(e.contains("only `U`"), "{e}");
        let e = cfg(&["--lifetime", "0"]).unwrap_err().to_string();
        assert!(e.contains("--lifetime"), "{e}");
        let c = cfg(&["--security", "psk", "--psk-identity", "a"]).unwrap();
        assert!(c.dtls_config().unwrap_err().contains("--psk-key-hex"));
        let c = cfg(&[
            "--security",
            "psk",
            "--psk-identity",
            "a",
            "--psk-key-hex",
            "zz",
        ])
        .unwrap();
        assert!(c.dtls_config().unwrap_err().contains("--psk-key-hex"));
        let c = cfg(&[
            "--security",
            "x509",
            "--cert",
            "/nonexistent.pem",
            "--key",
            "k",
            "--ca",
            "c",
        ])
        .unwrap();
        assert!(c.dtls_config().unwrap_err().contains("/nonexistent.pem"));
    }

    #[test]
    fn objects_list_parses_ids_and_core() {
        assert_eq!(cfg(&[]).unwrap().objects, ObjectList::default());
        assert_eq!(
            cfg(&["--objects", "16,4"]).unwrap().objects,
            ObjectList(vec![4, 16])
        );
        assert_eq!(
            cfg(&["--objects", "core"]).unwrap().objects,
            ObjectList(vec![4, 6, 7, 16])
        );
        let e = cfg(&["--objects", "5"]).unwrap_err().to_string();
        assert!(e.contains("`5` is not an object"), "{e}");
    }

    #[test]
    fn server_uri_forms() {
        let mut c = cfg(&[]).unwrap();
        c.server = "coap://127.0.0.1".into();
        assert_eq!(c.server_addr().unwrap().port(), 5683);
        c.server = "coaps://127.0.0.1:5684".into();
        assert!(c.server_addr().unwrap_err().contains("needs --security"));
        c.security = SecurityMode::Psk;
        assert_eq!(c.server_addr().unwrap(), "127.0.0.1:5684".parse().unwrap());
        c.server = "coaps://localhost".into();
        assert_eq!(c.server_addr().unwrap().port(), 5684);
        assert_eq!(c.server_host().as_deref(), Some("localhost"));
        c.server = "coap://127.0.0.1".into();
        assert!(c.server_addr().unwrap_err().contains("NoSec"));
        c.security = SecurityMode::Nosec;
        c.server = "coap://[::1]:7000".into();
        assert_eq!(c.server_addr().unwrap(), "[::1]:7000".parse().unwrap());
    }
}
