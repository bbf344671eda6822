//! The agent's MQTT client (MQTT 3.1.1 over TLS 1.2 with a client
//! certificate, on rumqttc): the MQTT side of the MachNation comparison.
//!
//! With `--mqtt mqtts://host:port` the agent speaks MQTT instead of LwM2M.
//! Two variants (`--mqtt-variant`, see `reference/mqtt-baseline.md` §6.2 and
//! §6.3):
//!
//! - `aws`: copies what the AWS IoT Device SDK for Python 1.4.7 does where the
//!   study's figures depend on it: keepalive 600 s, clean session, the
//!   metrics username `?SDK=Python&Version=1.4.7`, persistent shadow
//!   subscriptions to `update/accepted` and `update/rejected` sent as two
//!   separate SUBSCRIBEs (each after the previous SUBACK), jobs `notify-next`
//!   at QoS 1, shadow updates published at QoS 0 as JSON with Python's
//!   `json.dumps` spacing and a `<client>_<thing>_<seq>_<5 letters>` clientToken.
//! - `plain`: protocol only. No username; telemetry is a QoS 0 PUBLISH to
//!   `d/<id>/o/33333` whose payload is byte-identical to the LwM2M
//!   notification of `/33333/0` (TLV).
//!
//! Both subscribe to `d/<id>/w/#` at QoS 0, the plain command topic the
//! study used for its platform-to-device write. A command
//! `d/<id>/w/33333/0/1` with a text payload writes that resource.
//!
//! The test object is reported every `--report-every S` (scaled by
//! `--time-scale`) and on the console command `report`. Console lines are in
//! the agent's README.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::tokio_rustls::rustls;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;
use tokio::time::Instant;

use rig_proto::content::{self, ContentFormat};
use rig_proto::path::ObjectPath;
use rig_proto::value::Value;

use crate::config::AgentConfig;
use crate::driver::AgentError;
use crate::objects::{ObjectStore, TEST_OBJECT};

/// Which MQTT baseline the agent plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MqttVariant {
    /// AWS-IoT-like: Device Shadow JSON, SDK 1.4.7 behaviour.
    Aws,
    /// Protocol only: the LwM2M TLV payload on a plain topic.
    Plain,
}

/// The keepalive of SDK 1.4.7's `connect()`.
pub const AWS_KEEPALIVE: Duration = Duration::from_secs(600);

/// The longest a connection (TCP, TLS and CONNACK) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The CONNECT username SDK 1.4.7 sends with metrics on (the default).
pub const METRICS_USERNAME: &str = "?SDK=Python&Version=1.4.7";

/// `mqtts://host:port` → address (a literal IP; the rig uses fixed addresses).
pub fn parse_url(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("mqtts://")
        .ok_or_else(|| format!("--mqtt `{url}`: expected mqtts://host:port (TLS only)"))?;
    let rest = rest.trim_end_matches('/');
    rest.parse::<SocketAddr>()
        .map_err(|e| format!("--mqtt `{url}`: `{rest}` is not an IP address and port: {e}"))
}

fn read(path: &Option<std::path::PathBuf>, what: &str) -> Result<Vec<u8>, String> {
    let p = path
        .as_ref()
        .ok_or_else(|| format!("--mqtt needs --{what} (PEM)"))?;
    std::fs::read(p).map_err(|e| format!("--{what} {}: {e}", p.display()))
}

/// The TLS 1.2 client configuration: trust `--ca`, present `--cert`/`--key`.
pub fn tls_config(cfg: &AgentConfig) -> Result<rustls::ClientConfig, String> {
    let ca = read(&cfg.ca, "ca")?;
    let cert = read(&cfg.cert, "cert")?;
    let key = read(&cfg.key, "key")?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&ca) {
        let c = c.map_err(|e| format!("--ca: {e}"))?;
        roots.add(c).map_err(|e| format!("--ca: {e}"))?;
    }
    if roots.is_empty() {
        return Err("--ca holds no certificate".into());
    }
    let certs = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--cert: {e}"))?;
    if certs.is_empty() {
        return Err("--cert holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| format!("--key: {e}"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| format!("--cert/--key: {e}"))
}

/// The topics of one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    /// `<root>/things/<thing>/shadow/update`.
    pub shadow_update: String,
    /// The subscriptions, in the order they are sent, with their QoS.
    pub subscriptions: Vec<(String, QoS)>,
    /// Plain telemetry topic `d/<id>/o/33333`.
    pub telemetry: String,
    /// Plain command prefix `d/<id>/w/`.
    pub command_prefix: String,
}

impl Topics {
    /// The topics for `id` (thing name = client id) under the AWS `root`.
    pub fn new(variant: MqttVariant, root: &str, id: &str) -> Topics {
        let shadow = format!("{root}/things/{id}/shadow/update");
        let command_prefix = format!("d/{id}/w/");
        let mut subscriptions = Vec::new();
        if variant == MqttVariant::Aws {
            subscriptions.push((format!("{shadow}/accepted"), QoS::AtMostOnce));
            subscriptions.push((format!("{shadow}/rejected"), QoS::AtMostOnce));
            subscriptions.push((
                format!("{root}/things/{id}/jobs/notify-next"),
                QoS::AtLeastOnce,
            ));
        }
        subscriptions.push((format!("{command_prefix}#"), QoS::AtMostOnce));
        Topics {
            shadow_update: shadow,
            subscriptions,
            telemetry: format!("d/{id}/o/{TEST_OBJECT}"),
            command_prefix,
        }
    }
}

/// The test object's four values as the shadow's reported state, in
/// Python `json.dumps` spacing (`", "` and `": "`).
pub fn shadow_update_json(store: &ObjectStore, token: &str) -> String {
    let get = |r| store.get(&ObjectPath::resource(TEST_OBJECT, 0, r));
    let name = match get(0) {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let count = match get(1) {
        Some(Value::Integer(v)) => *v,
        _ => 0,
    };
    let temp = match get(2) {
        Some(Value::Float(v)) => *v,
        _ => 0.0,
    };
    let on = matches!(get(3), Some(Value::Boolean(true)));
    let name = serde_like_escape(&name);
    let temp = python_float(temp);
    format!(
        "{{\"state\": {{\"reported\": {{\"name\": \"{name}\", \"count\": {count}, \"temp\": {temp}, \"on\": {on}}}}}, \"clientToken\": \"{token}\"}}"
    )
}

/// Python's `repr(float)` for the values the rig uses (`21.5`, `3.0`).
fn python_float(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e16 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// JSON string escaping (quotes, backslashes, control characters).
fn serde_like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The plain variant's telemetry payload: `/33333/0` in TLV, the same bytes
/// an LwM2M notification of that instance carries.
pub fn plain_payload(store: &ObjectStore) -> Result<Vec<u8>, String> {
    let path = ObjectPath::instance(TEST_OBJECT, 0);
    let records = store.read(&path).map_err(|r| r.reason.to_string())?;
    content::encode(ContentFormat::Tlv, &path, &records, store.defs()).map_err(|e| e.to_string())
}

/// Five pseudo-random lowercase letters (the SDK's token suffix).
fn letters(seed: &mut u64) -> String {
    (0..5)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            char::from(b'a' + (*seed % 26) as u8)
        })
        .collect()
}

/// rumqttc options for the agent.
pub fn options(cfg: &AgentConfig, broker: SocketAddr) -> Result<MqttOptions, String> {
    let tls = tls_config(cfg)?;
    let mut o = MqttOptions::new(cfg.endpoint.clone(), broker.ip().to_string(), broker.port());
    let base = cfg
        .mqtt_keepalive
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(AWS_KEEPALIVE, Duration::from_secs_f64);
    let keepalive = base.div_f64(cfg.time_scale.max(1.0));
    o.set_keep_alive(keepalive.max(Duration::from_secs(1)));
    o.set_clean_session(true);
    o.set_max_packet_size(1 << 20, 1 << 20);
    if cfg.mqtt_variant == MqttVariant::Aws {
        o.set_credentials(METRICS_USERNAME, "");
    }
    o.set_transport(rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(
        Arc::new(tls),
    )));
    Ok(o)
}

struct Device {
    cfg: AgentConfig,
    store: ObjectStore,
    topics: Topics,
    client: AsyncClient,
    output: mpsc::UnboundedSender<String>,
    log: mpsc::UnboundedSender<String>,
    /// Subscriptions still to send (one at a time, after each SUBACK).
    pending_subs: Vec<(String, QoS)>,
    connected: bool,
    seq: u64,
    rng: u64,
    reported: u64,
    /// FOTA jobs (`--mqtt-fota`, aws variant; see `fota/mqtt.rs`).
    fota: Option<crate::fota::mqtt::JobsFota>,
}

impl Device {
    fn out(&self, line: String) {
        let _ = self.output.send(line.replace(['\n', '\r'], " "));
    }

    fn logln(&self, line: String) {
        let _ = self.log.send(format!("mqtt: {line}"));
    }

    fn subscribe_next(&mut self) {
        if self.pending_subs.is_empty() {
            return;
        }
        let (topic, qos) = self.pending_subs.remove(0);
        self.logln(format!("-> SUBSCRIBE {topic} qos {}", qos as u8));
        if let Err(e) = self.client.try_subscribe(topic.clone(), qos) {
            self.out(format!("error subscribe: {topic}: {e}"));
        }
    }

    fn report(&mut self) -> Result<(), String> {
        if !self.connected {
            return Err("not connected".into());
        }
        let (topic, payload) = match self.cfg.mqtt_variant {
            MqttVariant::Aws => {
                self.seq += 1;
                let token = format!(
                    "{}_{}_{}_{}",
                    self.cfg.endpoint,
                    self.cfg.endpoint,
                    self.seq,
                    letters(&mut self.rng)
                );
                (
                    self.topics.shadow_update.clone(),
                    shadow_update_json(&self.store, &token).into_bytes(),
                )
            }
            MqttVariant::Plain => (self.topics.telemetry.clone(), plain_payload(&self.store)?),
        };
        let len = payload.len();
        self.client
            .try_publish(topic.clone(), QoS::AtMostOnce, false, payload)
            .map_err(|e| e.to_string())?;
        self.reported += 1;
        self.logln(format!("-> PUBLISH {topic} ({len} bytes)"));
        self.out(format!("reported {} {len}", self.reported));
        Ok(())
    }

    /// Publishes and prints what the FOTA jobs flow queued.
    fn fota_flush(&mut self) {
        let Some(f) = self.fota.as_mut() else { return };
        let mut pubs = Vec::new();
        let mut lines = Vec::new();
        let mut logs = Vec::new();
        while let Some(p) = f.poll_publish() {
            pubs.push(p);
        }
        while let Some(l) = f.poll_line() {
            lines.push(l);
        }
        while let Some(l) = f.poll_log() {
            logs.push(l);
        }
        for (topic, qos, payload) in pubs {
            self.logln(format!("-> PUBLISH {topic} ({} bytes)", payload.len()));
            if let Err(e) = self.client.try_publish(topic.clone(), qos, false, payload) {
                self.out(format!("error publish: {topic}: {e}"));
            }
        }
        for l in lines {
            self.out(l);
        }
        for l in logs {
            self.logln(l);
        }
    }

    fn on_publish(&mut self, topic: &str, payload: &[u8]) {
        if let Some(f) = self.fota.as_mut()
            && f.on_publish(topic, payload)
        {
            self.fota_flush();
            return;
        }
        if let Some(path) = topic.strip_prefix(&self.topics.command_prefix) {
            let text = String::from_utf8_lossy(payload).to_string();
            match ObjectPath::parse(&format!("/{path}")) {
                Ok(p) => match self.write(&p, &text) {
                    Ok(()) => self.out(format!("written /{path} {text}")),
                    Err(e) => self.out(format!("error command: /{path}: {e}")),
                },
                Err(e) => self.out(format!("error command: `{topic}`: bad path: {e:?}")),
            }
        } else if topic.ends_with("/shadow/update/accepted") {
            let version = serde_version(payload);
            self.out(format!("accepted {version}"));
        } else if topic.ends_with("/shadow/update/rejected") {
            self.out(format!(
                "rejected {}",
                String::from_utf8_lossy(payload)
                    .chars()
                    .take(120)
                    .collect::<String>()
            ));
        } else if topic.ends_with("/jobs/notify-next") {
            self.out(format!("job-notify {} bytes", payload.len()));
        } else {
            self.logln(format!(
                "<- PUBLISH {topic} ({} bytes) ignored",
                payload.len()
            ));
        }
    }

    /// A text value written to a resource of the store (as a server would).
    fn write(&mut self, path: &ObjectPath, text: &str) -> Result<(), String> {
        if path.resource_id().is_none() {
            return Err("commands address a single resource".into());
        }
        let records = content::decode(
            ContentFormat::Text,
            path,
            text.as_bytes(),
            self.store.defs(),
        )
        .map_err(|e| e.to_string())?;
        self.store
            .write(path, records, true)
            .map(drop)
            .map_err(|r| r.reason.to_string())
    }
}

/// The `"version":N` of a shadow reply, or `?`.
fn serde_version(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    text.split("\"version\":")
        .nth(1)
        .map(|rest| {
            rest.trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "?".into())
}

/// Runs the MQTT device until `quit` (or the end of the command stream).
pub async fn run(
    cfg: AgentConfig,
    mut commands: mpsc::Receiver<String>,
    output: mpsc::UnboundedSender<String>,
    log: mpsc::UnboundedSender<String>,
) -> Result<(), AgentError> {
    let url = cfg.mqtt.clone().unwrap_or_default();
    let broker = parse_url(&url).map_err(AgentError::Config)?;
    let opts = options(&cfg, broker).map_err(AgentError::Config)?;
    let (client, mut eventloop): (AsyncClient, EventLoop) = AsyncClient::new(opts, 16);
    // rumqttc gives TCP + TLS + CONNACK 5 s by default; over NB-IoT (1.4 s
    // round trips, 26 kbit/s down) the AWS-like handshake alone takes
    // longer. A device on such a link waits longer too.
    eventloop
        .network_options
        .set_connection_timeout(CONNECT_TIMEOUT.as_secs());
    let topics = Topics::new(cfg.mqtt_variant, &cfg.mqtt_topic_root, &cfg.endpoint);
    let report_every = cfg
        .report_every
        .map(|s| Duration::from_secs_f64(s).div_f64(cfg.time_scale.max(1.0)));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    let mut dev = Device {
        store: ObjectStore::factory(&cfg),
        topics,
        client,
        output,
        log,
        pending_subs: Vec::new(),
        connected: false,
        seq: 0,
        rng: seed,
        reported: 0,
        fota: None,
        cfg,
    };
    let (fota_tx, mut fota_events) = mpsc::unbounded_channel();
    if dev.cfg.mqtt_no_jobs {
        // The shadow sample has no Jobs client: no jobs topics at all.
        dev.topics
            .subscriptions
            .retain(|(t, _)| !t.contains("/jobs/"));
    } else if dev.cfg.mqtt_variant == MqttVariant::Aws {
        dev.fota = Some(crate::fota::mqtt::JobsFota::new(
            &dev.cfg,
            &dev.cfg.mqtt_topic_root,
            &dev.cfg.endpoint,
            fota_tx,
        ));
    }
    dev.out("ready".into());
    let mut next_report: Option<Instant> = None;
    let mut quitting = false;
    let mut commands_open = true;
    let mut backoff = Duration::from_secs(1);
    loop {
        let deadline = next_report;
        tokio::select! {
            ev = eventloop.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    dev.connected = true;
                    backoff = Duration::from_secs(1);
                    dev.out(format!("connected {broker}"));
                    dev.logln(format!("<- CONNACK {:?}", ack.code));
                    dev.pending_subs = dev.topics.subscriptions.clone();
                    if let Some(f) = dev.fota.as_ref() {
                        for s in f.subscriptions() {
                            if !dev.pending_subs.iter().any(|(t, _)| *t == s.0) {
                                dev.pending_subs.push(s);
                            }
                        }
                    }
                    dev.subscribe_next();
                    if let Some(every) = report_every {
                        next_report = Some(Instant::now() + every);
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    dev.logln(format!("<- SUBACK {:?}", ack.return_codes));
                    if dev.pending_subs.is_empty() {
                        dev.out("subscribed".into());
                        if let Some(f) = dev.fota.as_mut() {
                            f.on_subscribed();
                        }
                        dev.fota_flush();
                        if dev.cfg.report_on_connect
                            && let Err(e) = dev.report()
                        {
                            dev.out(format!("error report: {e}"));
                        }
                    }
                    dev.subscribe_next();
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = p.topic.clone();
                    dev.on_publish(&topic, &p.payload);
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) if quitting => {
                    dev.out("ok quit".into());
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => {
                    if quitting {
                        dev.out("ok quit".into());
                        return Ok(());
                    }
                    dev.connected = false;
                    next_report = None;
                    dev.out(format!("disconnected {e}"));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(16));
                }
            },
            line = commands.recv(), if commands_open => {
                let cmd = match line {
                    Some(l) => l.trim().to_string(),
                    None => { commands_open = false; "quit".to_string() }
                };
                match cmd.as_str() {
                    "" => {}
                    c if c.starts_with('#') => {}
                    "report" => match dev.report() {
                        Ok(()) => dev.out("ok report".into()),
                        Err(e) => dev.out(format!("error report: {e}")),
                    },
                    "status" => {
                        let state = if dev.connected { "connected" } else { "connecting" };
                        dev.out(format!("status {state} reported={}", dev.reported));
                        dev.out("ok status".into());
                    }
                    "quit" => {
                        quitting = true;
                        if !dev.connected || dev.client.try_disconnect().is_err() {
                            dev.out("ok quit".into());
                            return Ok(());
                        }
                    }
                    other => {
                        let word = other.split_whitespace().next().unwrap_or_default();
                        dev.out(format!("error {word}: unknown command in MQTT mode (expected report, status or quit)"));
                    }
                }
            },
            Some(ev) = fota_events.recv() => {
                if let Some(f) = dev.fota.as_mut() {
                    f.on_event(ev);
                }
                dev.fota_flush();
            },
            _ = sleep_until(deadline) => {
                if let Err(e) = dev.report() {
                    dev.out(format!("error report: {e}"));
                }
                next_report = report_every.map(|every| Instant::now() + every);
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn cfg(extra: &[&str]) -> AgentConfig {
        let mut v = vec![
            "rig-agent",
            "--endpoint",
            "dev1",
            "--mqtt",
            "mqtts://10.77.0.1:8883",
        ];
        v.extend_from_slice(extra);
        AgentConfig::try_parse_from(v).unwrap()
    }

    #[test]
    fn urls_need_mqtts_and_an_address() {
        assert_eq!(
            parse_url("mqtts://10.77.0.1:8883").unwrap(),
            "10.77.0.1:8883".parse().unwrap()
        );
        assert!(
            parse_url("mqtt://10.77.0.1:1883")
                .unwrap_err()
                .contains("TLS only")
        );
        assert!(
            parse_url("mqtts://broker:8883")
                .unwrap_err()
                .contains("not an IP")
        );
    }

    #[test]
    fn aws_subscribes_like_sdk_1_4_7_one_filter_per_subscribe() {
        let t = Topics::new(MqttVariant::Aws, "$aws", "dev1");
        let names: Vec<&str> = t.subscriptions.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "$aws/things/dev1/shadow/update/accepted",
                "$aws/things/dev1/shadow/update/rejected",
                "$aws/things/dev1/jobs/notify-next",
                "d/dev1/w/#"
            ]
        );
        assert_eq!(t.subscriptions[0].1, QoS::AtMostOnce);
        assert_eq!(t.subscriptions[2].1, QoS::AtLeastOnce);
        let p = Topics::new(MqttVariant::Plain, "$aws", "dev1");
        assert_eq!(p.subscriptions.len(), 1);
        assert_eq!(p.telemetry, "d/dev1/o/33333");
    }

    #[test]
    fn shadow_json_has_python_spacing() {
        let c = cfg(&[
            "--test-string",
            "alpha",
            "--test-int",
            "42",
            "--test-float",
            "21.5",
            "--test-bool",
        ]);
        let store = ObjectStore::factory(&c);
        assert_eq!(
            shadow_update_json(&store, "t_1"),
            r#"{"state": {"reported": {"name": "alpha", "count": 42, "temp": 21.5, "on": true}}, "clientToken": "t_1"}"#
        );
        assert_eq!(python_float(3.0), "3.0");
    }

    #[test]
    fn plain_payload_is_the_tlv_of_the_instance() {
        let c = cfg(&["--test-string", "ab", "--test-int", "1"]);
        let store = ObjectStore::factory(&c);
        let p = plain_payload(&store).unwrap();
        // string resource 0: type byte 0xc8 (id 8-bit, length in 3 bits), id 0, "ab".
        assert_eq!(&p[..4], &[0xc2, 0x00, b'a', b'b']);
    }

    #[test]
    fn options_carry_keepalive_and_metrics_username() {
        // No certificate files: a clear error naming the flag.
        let e = options(&cfg(&[]), "10.77.0.1:8883".parse().unwrap()).unwrap_err();
        assert!(e.contains("--ca"), "{e}");
    }

    #[test]
    fn versions_are_read_from_replies() {
        assert_eq!(serde_version(br#"{"state":{},"version":17,"x":1}"#), "17");
        assert_eq!(serde_version(b"{}"), "?");
    }
}
