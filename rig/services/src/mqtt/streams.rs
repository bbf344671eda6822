//! AWS-IoT-like MQTT file streams ("MQTT-based file delivery"), the block
//! path of the MQTT firmware update (`mqtt-baseline.md` §3, path B).
//!
//! A stream holds files (id → bytes). A device asks for blocks with a CBOR
//! GetStream request and receives one CBOR data message per block:
//!
//! ```text
//!  device → R/things/<thing>/streams/<stream>/get/cbor
//!           {c: token, s: version, f: file, l: block size, o: offset,
//!            n: number of blocks, b: bitmap of blocks still wanted}
//!  rig    → R/things/<thing>/streams/<stream>/data/cbor     (once per block)
//!           {f: file, i: block id, l: bytes in this block, p: payload}
//!  device → R/things/<thing>/streams/<stream>/describe/cbor  {c: token}
//!  rig    → R/things/<thing>/streams/<stream>/description/cbor
//!           {c, s: version, r: description, f: [{f: file, z: size}]}
//!  rig    → R/things/<thing>/streams/<stream>/rejected/cbor
//!           {o: error code, m: message, c}
//! ```
//!
//! Which blocks a request wants: with a bitmap `b`, bit `k` (byte `k / 8`,
//! least significant bit first, as the AWS OTA library builds it) set means
//! block `o + k`, limited to `n` blocks when `n` is given; without `b`, the
//! `n` blocks from `o`. Block sizes: powers of two from 256 B to 128 KiB (the
//! AWS limits; the cases use 1 KiB and 4 KiB). A request for a block past the
//! end, an unknown stream or file, a stale version or a bad block size gets a
//! `rejected` message naming the field, as AWS does.
//!
//! [`StreamCore`] is sans-IO: topic and payload in, replies out, and a
//! record of every block served with repeats and duplicated bytes (a device
//! that resumes from its bitmap re-asks for nothing it has; one that lost its
//! bitmap across a restart shows up as repeats). [`StreamService`] runs it as
//! its own rumqttc client next to the [`super::Platform`], with the same TLS
//! material; it is additive, the platform's topics are untouched.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Packet, QoS, SubscribeReasonCode};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{ClientTls, MqttError};
use crate::file_server::record::Coverage;

/// Smallest block size a request may ask for.
pub const MIN_BLOCK_SIZE: u32 = 256;
/// Largest block size a request may ask for.
pub const MAX_BLOCK_SIZE: u32 = 128 * 1024;
/// Most blocks one request may ask for (a 128-byte bitmap).
pub const MAX_BLOCKS_PER_REQUEST: u32 = 1024;

/// A GetStream request, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GetStream {
    /// `c`: client token.
    pub client_token: Option<String>,
    /// `s`: the stream version the device believes in.
    pub version: Option<u32>,
    /// `f`: file id.
    pub file: u32,
    /// `l`: block size.
    pub block_size: u32,
    /// `o`: first block.
    pub offset: u32,
    /// `n`: number of blocks.
    pub count: Option<u32>,
    /// `b`: bitmap of the blocks wanted, relative to `offset`.
    pub bitmap: Option<Vec<u8>>,
}

/// One data message: a block of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataBlock {
    /// `f`: file id.
    pub file: u32,
    /// `i`: block id.
    pub block: u32,
    /// `l`: bytes in this block.
    pub size: u32,
    /// `p`: the bytes.
    pub payload: Vec<u8>,
}

/// A CBOR message that could not be read, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}")]
pub struct StreamCodecError {
    /// What was wrong (field and reason).
    pub what: String,
}

fn codec(what: impl Into<String>) -> StreamCodecError {
    StreamCodecError { what: what.into() }
}

fn key_err(key: &str) -> impl Fn(minicbor::decode::Error) -> StreamCodecError + '_ {
    move |e| codec(format!("field `{key}`: {e}"))
}

fn u32_of(d: &mut minicbor::Decoder<'_>, key: &str) -> Result<u32, StreamCodecError> {
    let v = d.u64().map_err(key_err(key))?;
    u32::try_from(v).map_err(|_| codec(format!("field `{key}`: {v} does not fit 32 bits")))
}

/// Reads a definite- or indefinite-length CBOR map, calling `f` per text key.
fn each_entry<'b>(
    bytes: &'b [u8],
    mut f: impl FnMut(&str, &mut minicbor::Decoder<'b>) -> Result<bool, StreamCodecError>,
) -> Result<(), StreamCodecError> {
    let mut d = minicbor::Decoder::new(bytes);
    let len = d.map().map_err(|e| codec(format!("not a CBOR map: {e}")))?;
    let mut i = 0u64;
    loop {
        let done = match len {
            Some(n) => i >= n,
            None => d.datatype().map_err(|e| codec(e.to_string()))? == minicbor::data::Type::Break,
        };
        if done {
            break;
        }
        let key = d
            .str()
            .map_err(|e| codec(format!("map key {i}: {e}")))?
            .to_string();
        if !f(&key, &mut d)? {
            d.skip().map_err(|e| codec(format!("field `{key}`: {e}")))?;
        }
        i += 1;
        if i > 64 {
            return Err(codec("more than 64 map entries"));
        }
    }
    Ok(())
}

impl GetStream {
    /// Decodes a request. Missing `f` or `l` is an error naming the field.
    pub fn decode(bytes: &[u8]) -> Result<GetStream, StreamCodecError> {
        let mut r = GetStream::default();
        let (mut file, mut size) = (None, None);
        each_entry(bytes, |key, d| {
            match key {
                "c" => r.client_token = Some(d.str().map_err(key_err("c"))?.to_string()),
                "s" => r.version = Some(u32_of(d, "s")?),
                "f" => file = Some(u32_of(d, "f")?),
                "l" => size = Some(u32_of(d, "l")?),
                "o" => r.offset = u32_of(d, "o")?,
                "n" => r.count = Some(u32_of(d, "n")?),
                "b" => r.bitmap = Some(d.bytes().map_err(key_err("b"))?.to_vec()),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        r.file = file.ok_or_else(|| codec("missing field `f` (file id)"))?;
        r.block_size = size.ok_or_else(|| codec("missing field `l` (block size)"))?;
        Ok(r)
    }

    /// Encodes the request (keys in the order c, s, f, l, o, n, b).
    pub fn encode(&self) -> Vec<u8> {
        let n = 3
            + u64::from(self.client_token.is_some())
            + u64::from(self.version.is_some())
            + u64::from(self.count.is_some())
            + u64::from(self.bitmap.is_some());
        let mut e = minicbor::Encoder::new(Vec::new());
        // Writing into a Vec cannot fail.
        let _ = e.map(n);
        if let Some(c) = &self.client_token {
            let _ = e.str("c").and_then(|e| e.str(c));
        }
        if let Some(s) = self.version {
            let _ = e.str("s").and_then(|e| e.u32(s));
        }
        let _ = e.str("f").and_then(|e| e.u32(self.file));
        let _ = e.str("l").and_then(|e| e.u32(self.block_size));
        let _ = e.str("o").and_then(|e| e.u32(self.offset));
        if let Some(n) = self.count {
            let _ = e.str("n").and_then(|e| e.u32(n));
        }
        if let Some(b) = &self.bitmap {
            let _ = e.str("b").and_then(|e| e.bytes(b));
        }
        e.into_writer()
    }

    /// The block ids this request wants, in order (at most
    /// [`MAX_BLOCKS_PER_REQUEST`] + 1, so an oversized request is detectable).
    pub fn wanted(&self) -> Vec<u32> {
        let limit = MAX_BLOCKS_PER_REQUEST as usize + 1;
        match &self.bitmap {
            Some(bits) => {
                let n = self.count.map_or(bits.len() * 8, |n| n as usize);
                (0..(bits.len() * 8).min(n))
                    .filter(|k| bits[k / 8] & (1 << (k % 8)) != 0)
                    .map(|k| self.offset.saturating_add(k as u32))
                    .take(limit)
                    .collect()
            }
            None => (0..self.count.unwrap_or(1).min(limit as u32))
                .map(|k| self.offset.saturating_add(k))
                .collect(),
        }
    }
}

/// Builds a bitmap (LSB first) with a bit for each of `blocks` relative to `offset`.
pub fn bitmap(offset: u32, blocks: &[u32]) -> Vec<u8> {
    let max = blocks
        .iter()
        .filter(|b| **b >= offset)
        .map(|b| b - offset)
        .max();
    let Some(max) = max else {
        return Vec::new();
    };
    let mut out = vec![0u8; max as usize / 8 + 1];
    for b in blocks.iter().filter(|b| **b >= offset) {
        let k = (b - offset) as usize;
        out[k / 8] |= 1 << (k % 8);
    }
    out
}

impl DataBlock {
    /// Encodes `{f, i, l, p}`.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = minicbor::Encoder::new(Vec::new());
        let _ = e.map(4);
        let _ = e.str("f").and_then(|e| e.u32(self.file));
        let _ = e.str("i").and_then(|e| e.u32(self.block));
        let _ = e.str("l").and_then(|e| e.u32(self.size));
        let _ = e.str("p").and_then(|e| e.bytes(&self.payload));
        e.into_writer()
    }

    /// Decodes a data message (a device's view; used by tests and the agent).
    pub fn decode(bytes: &[u8]) -> Result<DataBlock, StreamCodecError> {
        let (mut f, mut i, mut l, mut p) = (None, None, None, None);
        each_entry(bytes, |key, d| {
            match key {
                "f" => f = Some(u32_of(d, "f")?),
                "i" => i = Some(u32_of(d, "i")?),
                "l" => l = Some(u32_of(d, "l")?),
                "p" => p = Some(d.bytes().map_err(key_err("p"))?.to_vec()),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        let payload = p.ok_or_else(|| codec("missing field `p` (payload)"))?;
        Ok(DataBlock {
            file: f.ok_or_else(|| codec("missing field `f` (file id)"))?,
            block: i.ok_or_else(|| codec("missing field `i` (block id)"))?,
            size: l.unwrap_or(payload.len() as u32),
            payload,
        })
    }
}

/// One block the service sent (or one request it refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRecord {
    /// Since the core was made.
    pub since_start: Duration,
    /// The thing that asked.
    pub thing: String,
    /// The stream.
    pub stream: String,
    /// File id.
    pub file: u32,
    /// Block id (`None` for a refused request).
    pub block: Option<u32>,
    /// Block size asked for.
    pub block_size: u32,
    /// Payload bytes sent.
    pub bytes: usize,
    /// True if this block of this stream version had been sent before.
    pub repeat: bool,
    /// Why the request was refused, if it was.
    pub rejected: Option<String>,
}

/// Totals over the records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamSummary {
    /// GetStream requests seen.
    pub requests: u64,
    /// Describe requests seen.
    pub describes: u64,
    /// Data messages sent.
    pub blocks: u64,
    /// Blocks sent before (same stream version and file).
    pub repeats: u64,
    /// Payload bytes sent.
    pub payload_bytes: u64,
    /// Distinct payload bytes sent.
    pub unique_bytes: u64,
    /// `payload_bytes - unique_bytes`.
    pub duplicate_bytes: u64,
    /// Requests refused.
    pub rejected: u64,
}

#[derive(Debug, Clone)]
struct Stream {
    version: u32,
    description: String,
    files: BTreeMap<u32, Arc<Vec<u8>>>,
}

/// The sans-IO stream service: streams in, replies and records out.
#[derive(Debug)]
pub struct StreamCore {
    root: String,
    streams: BTreeMap<String, Stream>,
    records: Vec<BlockRecord>,
    summary: StreamSummary,
    coverage: BTreeMap<(String, u32, u32), Coverage>,
    started: Instant,
}

/// Something to publish: full topic and payload.
pub type Outgoing = (String, Vec<u8>);

fn rejected(code: &str, message: &str, token: Option<&str>) -> Vec<u8> {
    let mut e = minicbor::Encoder::new(Vec::new());
    let _ = e.map(if token.is_some() { 3 } else { 2 });
    let _ = e.str("o").and_then(|e| e.str(code));
    let _ = e.str("m").and_then(|e| e.str(message));
    if let Some(t) = token {
        let _ = e.str("c").and_then(|e| e.str(t));
    }
    e.into_writer()
}

impl StreamCore {
    /// A core for topic root `root` (`$aws`, or `aws` on rumqttd).
    pub fn new(root: &str) -> StreamCore {
        StreamCore {
            root: root.to_string(),
            streams: BTreeMap::new(),
            records: Vec::new(),
            summary: StreamSummary::default(),
            coverage: BTreeMap::new(),
            started: Instant::now(),
        }
    }

    /// Creates or replaces stream `id` (a replacement should bump `version`).
    pub fn put_stream(&mut self, id: &str, version: u32, files: Vec<(u32, Arc<Vec<u8>>)>) {
        self.streams.insert(
            id.to_string(),
            Stream {
                version,
                description: format!("rig firmware stream {id}"),
                files: files.into_iter().collect(),
            },
        );
    }

    /// The topic filters the service subscribes to.
    pub fn filters(&self) -> [String; 2] {
        [
            format!("{}/things/+/streams/+/get/cbor", self.root),
            format!("{}/things/+/streams/+/describe/cbor", self.root),
        ]
    }

    /// The request topic a device publishes GetStream to.
    pub fn get_topic(&self, thing: &str, stream: &str) -> String {
        format!("{}/things/{thing}/streams/{stream}/get/cbor", self.root)
    }

    /// Handles one PUBLISH; returns what to publish in reply (nothing for a
    /// topic that is not a stream request).
    pub fn handle(&mut self, topic: &str, payload: &[u8]) -> Vec<Outgoing> {
        let prefix = format!("{}/things/", self.root);
        let Some(rest) = topic.strip_prefix(&prefix) else {
            return Vec::new();
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let [thing, "streams", stream, op, "cbor"] = parts[..] else {
            return Vec::new();
        };
        let base = format!("{prefix}{thing}/streams/{stream}/");
        match op {
            "get" => self.get(thing, stream, &base, payload),
            "describe" => self.describe(stream, &base, payload),
            _ => Vec::new(),
        }
    }

    fn describe(&mut self, stream: &str, base: &str, payload: &[u8]) -> Vec<Outgoing> {
        self.summary.describes += 1;
        let mut token = None;
        // An empty or unreadable describe still gets a description.
        let _ = each_entry(payload, |key, d| {
            if key == "c" {
                token = Some(d.str().map_err(key_err("c"))?.to_string());
                return Ok(true);
            }
            Ok(false)
        });
        let Some(s) = self.streams.get(stream) else {
            return vec![(
                format!("{base}rejected/cbor"),
                rejected(
                    "ResourceNotFound",
                    &format!("no stream {stream:?}"),
                    token.as_deref(),
                ),
            )];
        };
        let mut e = minicbor::Encoder::new(Vec::new());
        let _ = e.map(if token.is_some() { 4 } else { 3 });
        if let Some(t) = &token {
            let _ = e.str("c").and_then(|e| e.str(t));
        }
        let _ = e.str("s").and_then(|e| e.u32(s.version));
        let _ = e.str("r").and_then(|e| e.str(&s.description));
        let _ = e.str("f").and_then(|e| e.array(s.files.len() as u64));
        for (id, bytes) in &s.files {
            let _ = e.map(2);
            let _ = e.str("f").and_then(|e| e.u32(*id));
            let _ = e.str("z").and_then(|e| e.u64(bytes.len() as u64));
        }
        vec![(format!("{base}description/cbor"), e.into_writer())]
    }

    fn refuse(
        &mut self,
        thing: &str,
        stream: &str,
        base: &str,
        req: Option<&GetStream>,
        code: &str,
        message: String,
    ) -> Vec<Outgoing> {
        self.summary.rejected += 1;
        self.records.push(BlockRecord {
            since_start: self.started.elapsed(),
            thing: thing.to_string(),
            stream: stream.to_string(),
            file: req.map_or(0, |r| r.file),
            block: None,
            block_size: req.map_or(0, |r| r.block_size),
            bytes: 0,
            repeat: false,
            rejected: Some(format!("{code}: {message}")),
        });
        let token = req.and_then(|r| r.client_token.as_deref());
        vec![(
            format!("{base}rejected/cbor"),
            rejected(code, &message, token),
        )]
    }

    fn get(&mut self, thing: &str, stream: &str, base: &str, payload: &[u8]) -> Vec<Outgoing> {
        self.summary.requests += 1;
        let req = match GetStream::decode(payload) {
            Ok(r) => r,
            Err(e) => {
                return self.refuse(thing, stream, base, None, "InvalidRequest", e.what);
            }
        };
        let Some(s) = self.streams.get(stream).cloned() else {
            let m = format!("no stream {stream:?}");
            return self.refuse(thing, stream, base, Some(&req), "ResourceNotFound", m);
        };
        if let Some(v) = req.version
            && v != s.version
        {
            let m = format!("stream version {v} is not the current {}", s.version);
            return self.refuse(thing, stream, base, Some(&req), "VersionMismatch", m);
        }
        let Some(file) = s.files.get(&req.file).cloned() else {
            let m = format!("no file {} in stream {stream:?}", req.file);
            return self.refuse(thing, stream, base, Some(&req), "ResourceNotFound", m);
        };
        let size = req.block_size;
        if !size.is_power_of_two() || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&size) {
            let m = format!(
                "block size `l` = {size}: must be a power of two from {MIN_BLOCK_SIZE} to {MAX_BLOCK_SIZE}"
            );
            return self.refuse(thing, stream, base, Some(&req), "BlockSizeOutOfBounds", m);
        }
        let wanted = req.wanted();
        if wanted.len() as u32 > MAX_BLOCKS_PER_REQUEST {
            let m = format!("more than {MAX_BLOCKS_PER_REQUEST} blocks in one request");
            return self.refuse(thing, stream, base, Some(&req), "InvalidRequest", m);
        }
        let blocks_total = (file.len() as u64).div_ceil(u64::from(size));
        if let Some(bad) = wanted.iter().find(|b| u64::from(**b) >= blocks_total) {
            let m = format!(
                "block {bad} is past the end of file {} ({blocks_total} blocks of {size} B)",
                req.file
            );
            return self.refuse(thing, stream, base, Some(&req), "OffsetOutOfBounds", m);
        }
        let mut out = Vec::with_capacity(wanted.len());
        for b in wanted {
            let start = u64::from(b) * u64::from(size);
            let end = (start + u64::from(size)).min(file.len() as u64);
            let bytes = file[start as usize..end as usize].to_vec();
            let cov = self
                .coverage
                .entry((stream.to_string(), s.version, req.file))
                .or_default();
            let new = cov.insert(start, end);
            let len = end - start;
            let repeat = new == 0 && len > 0;
            let sm = &mut self.summary;
            sm.blocks += 1;
            sm.payload_bytes += len;
            sm.unique_bytes += new;
            sm.duplicate_bytes += len - new;
            if repeat {
                sm.repeats += 1;
            }
            self.records.push(BlockRecord {
                since_start: self.started.elapsed(),
                thing: thing.to_string(),
                stream: stream.to_string(),
                file: req.file,
                block: Some(b),
                block_size: size,
                bytes: bytes.len(),
                repeat,
                rejected: None,
            });
            let msg = DataBlock {
                file: req.file,
                block: b,
                size: bytes.len() as u32,
                payload: bytes,
            };
            out.push((format!("{base}data/cbor"), msg.encode()));
        }
        out
    }

    /// Every block sent and request refused, in order.
    pub fn records(&self) -> &[BlockRecord] {
        &self.records
    }

    /// Totals so far.
    pub fn summary(&self) -> StreamSummary {
        self.summary
    }

    /// Forgets records and totals.
    pub fn clear_records(&mut self) {
        self.records.clear();
        self.summary = StreamSummary::default();
        self.coverage.clear();
    }
}

/// How to run a [`StreamService`].
#[derive(Debug, Clone)]
pub struct StreamServiceConfig {
    /// The broker's address.
    pub broker: SocketAddr,
    /// TLS material (a client certificate the broker accepts).
    pub tls: ClientTls,
    /// The service's MQTT client id (its certificate's Common Name).
    pub client_id: String,
    /// Topic root: `$aws`, or `aws` on rumqttd.
    pub aws_root: String,
    /// How long [`StreamService::start`] waits for CONNACK and SUBACK.
    pub connect_timeout: Duration,
}

impl StreamServiceConfig {
    /// Defaults: client id `rig-streams`, root `$aws`, 10 s connect timeout.
    pub fn new(broker: SocketAddr, tls: ClientTls) -> StreamServiceConfig {
        StreamServiceConfig {
            broker,
            tls,
            client_id: "rig-streams".into(),
            aws_root: "$aws".into(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// The stream service on a broker. Dropping it disconnects it.
#[derive(Debug)]
pub struct StreamService {
    core: Arc<Mutex<StreamCore>>,
    client: AsyncClient,
    task: JoinHandle<()>,
}

fn lock(core: &Mutex<StreamCore>) -> std::sync::MutexGuard<'_, StreamCore> {
    core.lock().unwrap_or_else(|e| e.into_inner())
}

impl StreamService {
    /// Connects and subscribes; returns once the SUBACK came (bounded by
    /// `connect_timeout`), or with the connection error.
    pub async fn start(cfg: StreamServiceConfig) -> Result<StreamService, MqttError> {
        let opts = super::mqtt_options(
            &cfg.client_id,
            cfg.broker,
            &cfg.tls,
            Duration::from_secs(60),
        )?;
        let (client, mut eventloop) = AsyncClient::new(opts, 4096);
        let core = Arc::new(Mutex::new(StreamCore::new(&cfg.aws_root)));
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
        let (me_core, me_client) = (core.clone(), client.clone());
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let filters = lock(&me_core)
                            .filters()
                            .into_iter()
                            .map(|f| rumqttc::SubscribeFilter::new(f, QoS::AtMostOnce));
                        if let Err(e) = me_client.try_subscribe_many(filters)
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
                                Err("the broker refused a stream subscription".into())
                            } else {
                                Ok(())
                            });
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let replies = lock(&me_core).handle(&p.topic, &p.payload);
                        for (topic, payload) in replies {
                            // Data at QoS 0, as AWS sends it; a full queue
                            // loses the block, and the device re-asks.
                            let _ = me_client
                                .publish(topic, QoS::AtMostOnce, false, payload)
                                .await;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(Err(e.to_string()));
                            return;
                        }
                        // rumqttc reconnects on the next poll; do not spin.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        let fail = |reason: String| MqttError::Connection {
            client_id: cfg.client_id.clone(),
            addr: cfg.broker,
            reason,
        };
        match tokio::time::timeout(cfg.connect_timeout, ready_rx).await {
            Ok(Ok(Ok(()))) => Ok(StreamService { core, client, task }),
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

    /// Creates or replaces a stream.
    pub fn put_stream(&self, id: &str, version: u32, files: Vec<(u32, Arc<Vec<u8>>)>) {
        lock(&self.core).put_stream(id, version, files);
    }

    /// Every block sent and request refused so far.
    pub fn records(&self) -> Vec<BlockRecord> {
        lock(&self.core).records().to_vec()
    }

    /// Totals so far.
    pub fn summary(&self) -> StreamSummary {
        lock(&self.core).summary()
    }

    /// Forgets records and totals.
    pub fn clear_records(&self) {
        lock(&self.core).clear_records();
    }

    /// Disconnects (bounded: at most 2 s).
    pub async fn shutdown(self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.disconnect()).await;
        self.task.abort();
    }
}

impl Drop for StreamService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core_with(len: usize) -> (StreamCore, Arc<Vec<u8>>) {
        let bytes: Arc<Vec<u8>> = Arc::new((0..len).map(|i| (i % 251) as u8).collect());
        let mut c = StreamCore::new("aws");
        c.put_stream("fw", 1, vec![(0, bytes.clone())]);
        (c, bytes)
    }

    #[test]
    fn request_round_trips_and_bitmap_selects_blocks() {
        let req = GetStream {
            client_token: Some("rdy".into()),
            version: Some(1),
            file: 0,
            block_size: 1024,
            offset: 8,
            count: Some(16),
            bitmap: Some(bitmap(8, &[8, 10, 23])),
        };
        let bytes = req.encode();
        // {"c": "rdy", ...}: a 7-entry map whose first key is the text "c".
        assert_eq!(&bytes[..6], &[0xa7, 0x61, b'c', 0x63, b'r', b'd']);
        let back = GetStream::decode(&bytes).unwrap();
        assert_eq!(back, req);
        assert_eq!(back.wanted(), vec![8, 10, 23]);
        let plain = GetStream {
            offset: 3,
            count: Some(2),
            block_size: 4096,
            ..GetStream::default()
        };
        assert_eq!(plain.wanted(), vec![3, 4]);
    }

    #[test]
    fn missing_fields_are_named() {
        let mut e = minicbor::Encoder::new(Vec::new());
        e.map(1).unwrap().str("f").unwrap().u32(0).unwrap();
        let err = GetStream::decode(&e.into_writer()).unwrap_err();
        assert!(err.what.contains("`l`"), "{err}");
        assert!(GetStream::decode(&[0x01]).unwrap_err().what.contains("map"));
    }

    #[test]
    fn serves_blocks_and_counts_repeats() {
        let (mut c, bytes) = core_with(5000);
        let topic = c.get_topic("dev1", "fw");
        let req = GetStream {
            file: 0,
            block_size: 1024,
            offset: 0,
            count: Some(5),
            ..GetStream::default()
        };
        let out = c.handle(&topic, &req.encode());
        assert_eq!(out.len(), 5);
        assert!(out[0].0.ends_with("dev1/streams/fw/data/cbor"));
        let mut got = Vec::new();
        for (_, p) in &out {
            got.extend(DataBlock::decode(p).unwrap().payload);
        }
        assert_eq!(&got, bytes.as_ref());
        let last = DataBlock::decode(&out[4].1).unwrap();
        assert_eq!((last.block, last.size), (4, 5000 - 4096));
        // Ask again for blocks 1 and 4 only: two repeats, their bytes duplicated.
        let again = GetStream {
            bitmap: Some(bitmap(0, &[1, 4])),
            count: None,
            ..req
        };
        assert_eq!(c.handle(&topic, &again.encode()).len(), 2);
        let s = c.summary();
        assert_eq!((s.blocks, s.repeats), (7, 2));
        assert_eq!(s.unique_bytes, 5000);
        assert_eq!(s.duplicate_bytes, 1024 + 904);
    }

    #[test]
    fn bad_requests_are_rejected_with_the_reason() {
        let (mut c, _) = core_with(4096);
        let topic = c.get_topic("dev1", "fw");
        let past_end = GetStream {
            file: 0,
            block_size: 1024,
            offset: 4,
            count: Some(1),
            ..GetStream::default()
        };
        let out = c.handle(&topic, &past_end.encode());
        assert_eq!(out.len(), 1);
        assert!(out[0].0.ends_with("/rejected/cbor"));
        let text = String::from_utf8_lossy(&out[0].1);
        assert!(text.contains("OffsetOutOfBounds"), "{text}");
        let odd_size = GetStream {
            block_size: 1000,
            offset: 0,
            ..past_end.clone()
        };
        let text = String::from_utf8_lossy(&c.handle(&topic, &odd_size.encode())[0].1).to_string();
        assert!(text.contains("BlockSizeOutOfBounds"), "{text}");
        let other = c.get_topic("dev1", "nope");
        let text = String::from_utf8_lossy(&c.handle(&other, &past_end.encode())[0].1).to_string();
        assert!(text.contains("ResourceNotFound"), "{text}");
        assert_eq!(c.summary().rejected, 3);
        assert!(c.handle("aws/things/dev1/shadow/update", b"{}").is_empty());
    }

    #[test]
    fn describe_lists_files_and_sizes() {
        let (mut c, _) = core_with(3000);
        let out = c.handle("aws/things/d/streams/fw/describe/cbor", &[0xa0]);
        assert_eq!(out.len(), 1);
        assert!(out[0].0.ends_with("/description/cbor"));
        // {s: 1, r: "...", f: [{f: 0, z: 3000}]}, in that order.
        let mut d = minicbor::Decoder::new(&out[0].1);
        assert_eq!(d.map().unwrap(), Some(3));
        assert_eq!(d.str().unwrap(), "s");
        assert_eq!(d.u32().unwrap(), 1);
        assert_eq!(d.str().unwrap(), "r");
        d.skip().unwrap();
        assert_eq!(d.str().unwrap(), "f");
        assert_eq!(d.array().unwrap(), Some(1));
        assert_eq!(d.map().unwrap(), Some(2));
        assert_eq!((d.str().unwrap(), d.u32().unwrap()), ("f", 0));
        assert_eq!((d.str().unwrap(), d.u64().unwrap()), ("z", 3000));
    }

    proptest::proptest! {
        #[test]
        fn bitmap_and_wanted_agree(offset in 0u32..1000, blocks in proptest::collection::btree_set(0u32..1024, 1..64)) {
            let blocks: Vec<u32> = blocks.into_iter().map(|b| b + offset).collect();
            let req = GetStream { offset, bitmap: Some(bitmap(offset, &blocks)), block_size: 1024, ..GetStream::default() };
            proptest::prop_assert_eq!(req.wanted(), blocks);
        }
    }
}
