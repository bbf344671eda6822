//! The cloud emulator: an AWS-IoT-like platform (Device Shadow, Jobs) and a
//! plain-MQTT telemetry/command endpoint, as one MQTT client inside the rig.
//!
//! [`Platform`] connects to the broker with its own client certificate,
//! subscribes **explicitly** to the request topics (a `#` filter never matches
//! topics that start with `$`), answers shadow and jobs requests from the
//! sans-IO cores in [`super::shadow`] and [`super::jobs`], and records every
//! message it receives or publishes ([`SeenMessage`]) so cases can check
//! topics, QoS, sizes and timing.
//!
//! Subscribed filters, with `R` the AWS topic root (`$aws`, or `aws` on the
//! embedded broker) and `P` the plain prefix (`d`):
//! `R/things/+/shadow/{update,get,delete}`, `R/things/+/jobs/{start-next,get}`,
//! `R/things/+/jobs/+/{get,update}`, `P/+/o/#`.
//!
//! Shadow replies go out at QoS 0 (AWS has no QoS 2 and the SDK uses 0), jobs
//! replies and notifications at QoS 1 (the broker downgrades to the device's
//! subscription QoS). With `coalesce_replies`, `update/accepted` and
//! `update/documents` (and `delta`) are queued back to back so they can leave
//! in one TCP segment; otherwise they are spaced by `reply_gap`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rumqttc::{AsyncClient, Event, Packet, QoS, SubscribeReasonCode};
use serde_json::Value;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::jobs::JobStore;
use super::shadow::{ShadowOp, ShadowStore};
use super::{ClientTls, MqttError};

/// How to run the platform emulator.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// The broker's address.
    pub broker: SocketAddr,
    /// The platform's MQTT client id (its certificate's Common Name).
    pub client_id: String,
    /// TLS material.
    pub tls: ClientTls,
    /// First level of AWS topics: `$aws`, or `aws` on rumqttd (see [`super::Broker::aws_topic_root`]).
    pub aws_root: String,
    /// First level of the plain-MQTT topics (`d`).
    pub plain_prefix: String,
    /// Queue accepted + documents (+ delta) back to back.
    pub coalesce_replies: bool,
    /// Gap between those replies when not coalescing.
    pub reply_gap: Duration,
    /// MQTT keepalive of the platform's own connection.
    pub keepalive: Duration,
    /// How long [`Platform::start`] waits for CONNACK and SUBACK.
    pub connect_timeout: Duration,
}

impl PlatformConfig {
    /// Defaults: client id `rig-platform`, root `$aws`, prefix `d`, coalescing
    /// on, 50 ms gap, keepalive 60 s, connect timeout 10 s.
    pub fn new(broker: SocketAddr, tls: ClientTls) -> Self {
        PlatformConfig {
            broker,
            client_id: "rig-platform".into(),
            tls,
            aws_root: "$aws".into(),
            plain_prefix: "d".into(),
            coalesce_replies: true,
            reply_gap: Duration::from_millis(50),
            keepalive: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Whether the platform received or sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received from the broker (published by a device).
    In,
    /// Published by the platform.
    Out,
}

/// One message the platform saw.
#[derive(Debug, Clone)]
pub struct SeenMessage {
    /// Received or sent.
    pub direction: Direction,
    /// Topic.
    pub topic: String,
    /// QoS (0, 1 or 2) as received, or as published.
    pub qos: u8,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// The payload.
    pub payload: Vec<u8>,
    /// Time since the platform started.
    pub at: Duration,
}

impl SeenMessage {
    /// The payload as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.payload).ok()
    }
}

struct State {
    shadows: ShadowStore,
    jobs: JobStore,
    seen: Vec<SeenMessage>,
    last_error: Option<String>,
}

struct Shared {
    cfg: PlatformConfig,
    client: AsyncClient,
    started: Instant,
    state: Mutex<State>,
    seen_count: watch::Sender<usize>,
}

/// The running platform emulator. Dropping it disconnects it.
pub struct Platform {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("client_id", &self.shared.cfg.client_id)
            .finish()
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn qos_u8(q: QoS) -> u8 {
    match q {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
        QoS::ExactlyOnce => 2,
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, direction: Direction, topic: &str, qos: u8, payload: &[u8]) {
        let n = {
            let mut st = self.lock();
            st.seen.push(SeenMessage {
                direction,
                topic: topic.to_string(),
                qos,
                payload_len: payload.len(),
                payload: payload.to_vec(),
                at: self.started.elapsed(),
            });
            st.seen.len()
        };
        self.seen_count.send_replace(n);
    }

    fn publish(&self, topic: String, qos: QoS, payload: Vec<u8>) -> Result<(), MqttError> {
        self.record(Direction::Out, &topic, qos_u8(qos), &payload);
        self.client
            .try_publish(topic, qos, false, payload)
            .map_err(|e| MqttError::Client {
                client_id: self.cfg.client_id.clone(),
                reason: e.to_string(),
            })
    }

    /// Publishes replies in order: back to back when coalescing, else spaced by `reply_gap`.
    fn publish_replies(self: &Arc<Self>, replies: Vec<(String, QoS, Vec<u8>)>) {
        if self.cfg.coalesce_replies || replies.len() < 2 {
            for (t, q, p) in replies {
                let _ = self.publish(t, q, p);
            }
            return;
        }
        let me = Arc::clone(self);
        tokio::spawn(async move {
            for (i, (t, q, p)) in replies.into_iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(me.cfg.reply_gap).await;
                }
                let _ = me.publish(t, q, p);
            }
        });
    }

    /// The request filters. Shadow and telemetry at QoS 0, jobs at QoS 1:
    /// rumqttd delivers at the subscription's QoS even when the publish had a
    /// lower one, so subscribing higher would add PUBACKs mosquitto would not.
    fn filters(&self) -> Vec<(String, QoS)> {
        let r = &self.cfg.aws_root;
        let p = &self.cfg.plain_prefix;
        let (q0, q1) = (QoS::AtMostOnce, QoS::AtLeastOnce);
        vec![
            (format!("{r}/things/+/shadow/update"), q0),
            (format!("{r}/things/+/shadow/get"), q0),
            (format!("{r}/things/+/shadow/delete"), q0),
            (format!("{r}/things/+/jobs/start-next"), q1),
            (format!("{r}/things/+/jobs/get"), q1),
            (format!("{r}/things/+/jobs/+/get"), q1),
            (format!("{r}/things/+/jobs/+/update"), q1),
            (format!("{p}/+/o/#"), q0),
        ]
    }

    fn on_publish(self: &Arc<Self>, topic: &str, qos: u8, payload: &[u8]) {
        self.record(Direction::In, topic, qos, payload);
        let root = format!("{}/things/", self.cfg.aws_root);
        let Some(rest) = topic.strip_prefix(&root) else {
            return;
        };
        let Some((thing, rest)) = rest.split_once('/') else {
            return;
        };
        let now = now_s();
        if let Some(op) = rest.strip_prefix("shadow/").and_then(ShadowOp::parse) {
            let replies = self.lock().shadows.handle(thing, op, payload, now);
            let base = format!("{root}{thing}/shadow/");
            let out = replies
                .into_iter()
                .map(|r| {
                    (
                        format!("{base}{}", r.suffix),
                        QoS::AtMostOnce,
                        to_bytes(&r.payload),
                    )
                })
                .collect();
            self.publish_replies(out);
        } else if let Some(jobs_rest) = rest.strip_prefix("jobs/") {
            let replies = self.lock().jobs.handle(thing, jobs_rest, payload, now);
            let base = format!("{root}{thing}/jobs/");
            for r in replies.unwrap_or_default() {
                let _ = self.publish(
                    format!("{base}{}", r.suffix),
                    QoS::AtLeastOnce,
                    to_bytes(&r.payload),
                );
            }
        }
    }
}

fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

impl Platform {
    /// Connects to the broker and subscribes; returns once the SUBACK came
    /// (bounded by `connect_timeout`), or with the connection error.
    pub async fn start(cfg: PlatformConfig) -> Result<Platform, MqttError> {
        let opts = super::mqtt_options(&cfg.client_id, cfg.broker, &cfg.tls, cfg.keepalive)?;
        let (client, mut eventloop) = AsyncClient::new(opts, 1024);
        let (seen_count, _) = watch::channel(0usize);
        let shared = Arc::new(Shared {
            cfg: cfg.clone(),
            client,
            started: Instant::now(),
            state: Mutex::new(State {
                shadows: ShadowStore::new(),
                jobs: JobStore::new(),
                seen: Vec::new(),
                last_error: None,
            }),
            seen_count,
        });
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
        let me = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let filters = me
                            .filters()
                            .into_iter()
                            .map(|(f, q)| rumqttc::SubscribeFilter::new(f, q));
                        if let Err(e) = me.client.try_subscribe_many(filters)
                            && let Some(tx) = ready.take()
                        {
                            let _ = tx.send(Err(e.to_string()));
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        let refused = ack
                            .return_codes
                            .iter()
                            .any(|c| matches!(c, SubscribeReasonCode::Failure));
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(if refused {
                                Err("the broker refused a subscription".into())
                            } else {
                                Ok(())
                            });
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        me.on_publish(&p.topic, qos_u8(p.qos), &p.payload);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let msg = e.to_string();
                        me.lock().last_error = Some(msg.clone());
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(Err(msg));
                            return;
                        }
                        // rumqttc reconnects on the next poll; do not spin.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        let outcome = tokio::time::timeout(cfg.connect_timeout, ready_rx).await;
        let fail = |reason: String| MqttError::Connection {
            client_id: cfg.client_id.clone(),
            addr: cfg.broker,
            reason,
        };
        match outcome {
            Ok(Ok(Ok(()))) => Ok(Platform { shared, task }),
            Ok(Ok(Err(reason))) => {
                task.abort();
                Err(fail(reason))
            }
            Ok(Err(_)) => {
                task.abort();
                Err(fail("the event loop ended".into()))
            }
            Err(_) => {
                task.abort();
                Err(fail(format!(
                    "no CONNACK/SUBACK within {:.1} s",
                    cfg.connect_timeout.as_secs_f64()
                )))
            }
        }
    }

    /// The shadow document of `thing` as `get/accepted` would show it (state with
    /// delta, metadata, version), or `None` if it has no shadow.
    pub fn shadow_document(&self, thing: &str) -> Option<Value> {
        self.shared.lock().shadows.get(thing).map(|s| s.document())
    }

    /// The platform (an app or the console) changes the desired state of `thing`:
    /// publishes `update/documents` and, when desired ≠ reported, `update/delta`.
    pub fn update_desired(&self, thing: &str, desired: Value) -> Result<(), MqttError> {
        let req = serde_json::json!({"state": {"desired": desired}});
        let replies =
            self.shared
                .lock()
                .shadows
                .handle(thing, ShadowOp::Update, &to_bytes(&req), now_s());
        let base = format!("{}/things/{thing}/shadow/", self.shared.cfg.aws_root);
        let mut out = Vec::new();
        for r in replies {
            if r.suffix.ends_with("rejected") {
                return Err(MqttError::NotFound(format!(
                    "desired update of `{thing}` rejected: {}",
                    r.payload
                )));
            }
            if r.suffix != "update/accepted" {
                out.push((
                    format!("{base}{}", r.suffix),
                    QoS::AtMostOnce,
                    to_bytes(&r.payload),
                ));
            }
        }
        self.shared.publish_replies(out);
        Ok(())
    }

    /// Plain variant: publishes a command to `<prefix>/<device>/w/<path>`.
    pub fn publish_command(
        &self,
        device: &str,
        path: &str,
        payload: &[u8],
        qos: QoS,
    ) -> Result<(), MqttError> {
        let topic = format!(
            "{}/{device}/w/{}",
            self.shared.cfg.plain_prefix,
            path.trim_start_matches('/')
        );
        self.shared.publish(topic, qos, payload.to_vec())
    }

    /// Queues a job for `thing`, publishing `notify-next` if it became the next job.
    pub fn create_job(&self, thing: &str, job_id: &str, document: Value) -> Result<(), MqttError> {
        let replies = self
            .shared
            .lock()
            .jobs
            .create(thing, job_id, document, now_s())
            .map_err(MqttError::NotFound)?;
        let base = format!("{}/things/{thing}/jobs/", self.shared.cfg.aws_root);
        for r in replies {
            self.shared.publish(
                format!("{base}{}", r.suffix),
                QoS::AtLeastOnce,
                to_bytes(&r.payload),
            )?;
        }
        Ok(())
    }

    /// The status of a job execution (`QUEUED`, `IN_PROGRESS`, `SUCCEEDED`, ...).
    pub fn job_status(&self, thing: &str, job_id: &str) -> Option<super::JobStatus> {
        let st = self.shared.lock();
        st.jobs
            .executions(thing)
            .iter()
            .find(|e| e.job_id == job_id)
            .map(|e| e.status)
    }

    /// Every message seen so far, in order.
    pub fn messages(&self) -> Vec<SeenMessage> {
        self.shared.lock().seen.clone()
    }

    /// The last connection error of the platform's own client, if any.
    pub fn last_error(&self) -> Option<String> {
        self.shared.lock().last_error.clone()
    }

    /// Waits until a seen message (past or future) matches `predicate`, and returns the first match.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        predicate: impl Fn(&SeenMessage) -> bool,
    ) -> Result<SeenMessage, MqttError> {
        let mut rx = self.shared.seen_count.subscribe();
        let search = async {
            loop {
                if let Some(m) = self.shared.lock().seen.iter().find(|m| predicate(m)) {
                    return Some(m.clone());
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        match tokio::time::timeout(timeout, search).await {
            Ok(Some(m)) => Ok(m),
            _ => Err(MqttError::Timeout {
                what: what.to_string(),
                timeout,
            }),
        }
    }

    /// The topic of a shadow operation for `thing`, e.g. `shadow_topic("t", "update/accepted")`.
    pub fn shadow_topic(&self, thing: &str, suffix: &str) -> String {
        format!(
            "{}/things/{thing}/shadow/{suffix}",
            self.shared.cfg.aws_root
        )
    }

    /// The topic of a jobs operation for `thing`, e.g. `jobs_topic("t", "notify-next")`.
    pub fn jobs_topic(&self, thing: &str, suffix: &str) -> String {
        format!("{}/things/{thing}/jobs/{suffix}", self.shared.cfg.aws_root)
    }

    /// Disconnects (bounded: 2 s) and stops the event loop.
    pub async fn shutdown(self) {
        let _ = self.shared.client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                if self.task.is_finished() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        self.task.abort();
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.task.abort();
    }
}
