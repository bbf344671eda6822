//! The MQTT file-stream download (`--mqtt-fota stream`): the image of a job
//! fetched block by block over MQTT, AWS-IoT-style ("MQTT-based file
//! delivery", `reference/mqtt-baseline.md` §3 path B; the rig side is
//! `rig/services/src/mqtt/streams.rs`).
//!
//! ```text
//!  agent → <root>/things/<thing>/streams/<stream>/describe/cbor  {c}
//!  rig   → …/description/cbor  {c, s: version, r, f: [{f: file, z: size}]}
//!  agent → …/get/cbor  {c, s, f, l: block size, o: first block,
//!                       n: blocks covered, b: bitmap of the blocks wanted}
//!  rig   → …/data/cbor  {f, i: block id, l: bytes, p: payload}   (per block)
//!  rig   → …/rejected/cbor  {o: error code, m: message, c}
//! ```
//!
//! The agent keeps a bitmap of the blocks it holds, in RAM only: while the
//! process lives, a lost connection or a silent link costs only the blocks
//! that were in flight (after [`StreamConfig::rerequest`] without a block,
//! the missing blocks are asked for again, the wait doubling up to 8 times
//! that while nothing comes, so that a stalled connection does not pile up
//! answers to repeated requests); a restart loses the bitmap and
//! the job starts over from block 0 (what the AWS OTA library does unless
//! the platform layer saves it). At most [`StreamConfig::window`] blocks are
//! asked for at a time; the next request leaves when half of them arrived.
//! Blocks are written at their offset in the resume store's image file.
//!
//! One download is one tokio task ([`run`]); MQTT messages reach it on a
//! channel ([`StreamIn`]) and its requests leave as [`PullEvent::Publish`].
//! A `VersionMismatch` rejection (the stream changed) starts over from zero
//! (`fota restarted reason=stream-version`); silence for longer than
//! [`StreamConfig::max_silence`] ends with Update Result 4.

use std::collections::BTreeSet;
use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use rig_proto::fota::UpdateResult;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::package::Rejection;
use super::pull::PullEvent;
use super::resume::ResumeStore;

/// A stream message for the running download.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamIn {
    /// `…/description/cbor`.
    Description(Vec<u8>),
    /// `…/data/cbor`.
    Data(Vec<u8>),
    /// `…/rejected/cbor`.
    Rejected(Vec<u8>),
}

/// What to fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamJob {
    /// `<root>/things/<thing>/streams/<stream>/`.
    pub topic_base: String,
    /// File id in the stream.
    pub file: u32,
    /// Block size (1024 or 4096).
    pub block_size: u32,
    /// Client token of the requests.
    pub token: String,
}

/// Timers and limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    /// Most blocks asked for and not yet received.
    pub window: u32,
    /// No block for this long: ask again for what is missing (the AWS
    /// library waits 10 s).
    pub rerequest: Duration,
    /// Silence (no block, no description) after which the download fails
    /// (Result 4).
    pub max_silence: Duration,
    /// The largest file the agent stores.
    pub max_size: u64,
}

/// Largest bitmap of one request (bytes): 1024 blocks.
const MAX_BITMAP: u32 = 128;

fn failed(result: UpdateResult, reason: String) -> Rejection {
    Rejection { result, reason }
}

fn storage(e: impl std::fmt::Display) -> Rejection {
    failed(UpdateResult::NotEnoughFlash, format!("storage: {e}"))
}

/// A CBOR map of text keys, read entry by entry; `f` returns false for a
/// key it does not take (the value is skipped).
fn each_entry<'b>(
    bytes: &'b [u8],
    mut f: impl FnMut(&str, &mut minicbor::Decoder<'b>) -> Result<bool, String>,
) -> Result<(), String> {
    let mut d = minicbor::Decoder::new(bytes);
    let len = d.map().map_err(|e| format!("not a CBOR map: {e}"))?;
    let mut i = 0u64;
    loop {
        let done = match len {
            Some(n) => i >= n,
            None => d.datatype().map_err(|e| e.to_string())? == minicbor::data::Type::Break,
        };
        if done {
            return Ok(());
        }
        let key = d
            .str()
            .map_err(|e| format!("map key {i}: {e}"))?
            .to_string();
        if !f(&key, &mut d)? {
            d.skip().map_err(|e| format!("field `{key}`: {e}"))?;
        }
        i += 1;
        if i > 64 {
            return Err("more than 64 map entries".into());
        }
    }
}

fn uint(d: &mut minicbor::Decoder<'_>, key: &str) -> Result<u64, String> {
    d.u64().map_err(|e| format!("field `{key}`: {e}"))
}

/// A data message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// `f`.
    pub file: u32,
    /// `i`.
    pub id: u32,
    /// `p`.
    pub payload: Vec<u8>,
}

/// Decodes `…/data/cbor`.
pub fn decode_block(bytes: &[u8]) -> Result<Block, String> {
    let (mut f, mut i, mut l, mut p) = (None, None, None, None);
    each_entry(bytes, |k, d| {
        match k {
            "f" => f = Some(uint(d, "f")?),
            "i" => i = Some(uint(d, "i")?),
            "l" => l = Some(uint(d, "l")?),
            "p" => p = Some(d.bytes().map_err(|e| format!("field `p`: {e}"))?.to_vec()),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let payload = p.ok_or("no field `p` (payload)")?;
    if let Some(l) = l
        && l != payload.len() as u64
    {
        return Err(format!(
            "field `l` says {l} bytes, `p` has {}",
            payload.len()
        ));
    }
    let small = |v: u64, k: &str| u32::try_from(v).map_err(|_| format!("field `{k}`: {v}"));
    Ok(Block {
        file: small(f.ok_or("no field `f` (file id)")?, "f")?,
        id: small(i.ok_or("no field `i` (block id)")?, "i")?,
        payload,
    })
}

/// Decodes `…/description/cbor`: the stream version and the size of `file`.
pub fn decode_description(bytes: &[u8], file: u32) -> Result<(u32, u64), String> {
    let (mut version, mut size) = (None, None);
    each_entry(bytes, |k, d| {
        match k {
            "s" => version = Some(uint(d, "s")?),
            "f" => {
                let n = d
                    .array()
                    .map_err(|e| format!("field `f`: {e}"))?
                    .ok_or("field `f`: an indefinite array")?;
                for _ in 0..n.min(256) {
                    let (mut id, mut z) = (None, None);
                    let start = d.position();
                    let rest = &d.input()[start..];
                    let mut inner = minicbor::Decoder::new(rest);
                    let len = inner.map().map_err(|e| format!("field `f`: {e}"))?;
                    for _ in 0..len.unwrap_or(0).min(16) {
                        match inner.str().map_err(|e| format!("field `f`: {e}"))? {
                            "f" => id = Some(uint(&mut inner, "f.f")?),
                            "z" => z = Some(uint(&mut inner, "f.z")?),
                            _ => inner.skip().map_err(|e| format!("field `f`: {e}"))?,
                        }
                    }
                    d.set_position(start + inner.position());
                    if id == Some(u64::from(file)) {
                        size = z;
                    }
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let version = version.ok_or("no field `s` (stream version)")?;
    let version = u32::try_from(version).map_err(|_| format!("field `s`: {version}"))?;
    let size = size.ok_or(format!("the description lists no file {file}"))?;
    Ok((version, size))
}

/// The error code and message of `…/rejected/cbor`.
pub fn decode_rejected(bytes: &[u8]) -> (String, String) {
    let (mut code, mut msg) = (String::new(), String::new());
    let _ = each_entry(bytes, |k, d| {
        match k {
            "o" => code = d.str().map_err(|e| e.to_string())?.to_string(),
            "m" => msg = d.str().map_err(|e| e.to_string())?.to_string(),
            _ => return Ok(false),
        }
        Ok(true)
    });
    (code, msg)
}

/// Encodes a GetStream request.
pub fn encode_get(job: &StreamJob, version: u32, first: u32, wanted: &[u32]) -> Vec<u8> {
    let span = wanted.iter().max().map_or(0, |m| m - first + 1);
    let mut bitmap = vec![0u8; span.div_ceil(8) as usize];
    for b in wanted {
        let k = (b - first) as usize;
        bitmap[k / 8] |= 1 << (k % 8);
    }
    let mut e = minicbor::Encoder::new(Vec::new());
    let _ = e.map(7);
    let _ = e.str("c").and_then(|e| e.str(&job.token));
    let _ = e.str("s").and_then(|e| e.u32(version));
    let _ = e.str("f").and_then(|e| e.u32(job.file));
    let _ = e.str("l").and_then(|e| e.u32(job.block_size));
    let _ = e.str("o").and_then(|e| e.u32(first));
    let _ = e.str("n").and_then(|e| e.u32(span));
    let _ = e.str("b").and_then(|e| e.bytes(&bitmap));
    e.into_writer()
}

fn encode_describe(job: &StreamJob) -> Vec<u8> {
    let mut e = minicbor::Encoder::new(Vec::new());
    let _ = e.map(1);
    let _ = e.str("c").and_then(|e| e.str(&job.token));
    e.into_writer()
}

/// Which blocks the next request asks for: the first missing ones not in
/// flight, at most `room`, within one bitmap (1024 blocks from the first).
pub fn next_request(have: &[bool], in_flight: &BTreeSet<u32>, room: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut first = None;
    for (i, held) in have.iter().enumerate() {
        let i = i as u32;
        if *held || in_flight.contains(&i) {
            continue;
        }
        let f = *first.get_or_insert(i);
        if i - f >= MAX_BITMAP * 8 || out.len() as u32 >= room {
            break;
        }
        out.push(i);
    }
    out
}

/// Runs one stream download into `store`'s image file; the last event is
/// [`PullEvent::Complete`] or [`PullEvent::Failed`].
pub async fn run(
    job: StreamJob,
    cfg: StreamConfig,
    store: ResumeStore,
    mut rx: UnboundedReceiver<StreamIn>,
    events: UnboundedSender<PullEvent>,
) {
    let end = download(&job, &cfg, &store, &mut rx, &events).await;
    let _ = events.send(match end {
        Ok(()) => PullEvent::Complete,
        Err(r) => PullEvent::Failed(r),
    });
}

struct Io<'a> {
    job: &'a StreamJob,
    cfg: &'a StreamConfig,
    events: &'a UnboundedSender<PullEvent>,
    /// Rounds without a block, and how long they lasted.
    silent: u32,
    silent_for: Duration,
}

impl Io<'_> {
    fn emit(&self, e: PullEvent) {
        let _ = self.events.send(e);
    }

    fn publish(&self, op: &str, payload: Vec<u8>) {
        self.emit(PullEvent::Publish(
            format!("{}{op}/cbor", self.job.topic_base),
            payload,
        ));
    }

    /// How long to wait for the next message: the re-request time,
    /// doubled per silent round up to 8 times.
    fn wait(&self) -> Duration {
        self.cfg.rerequest * (1u32 << self.silent.min(3))
    }

    /// Something arrived: the silence is over.
    fn heard(&mut self) {
        self.silent = 0;
        self.silent_for = Duration::ZERO;
    }

    /// A wait of `waited` ended without a block; Result 4 when the silence
    /// lasted longer than `max_silence`.
    fn silent_round(&mut self, what: &str, waited: Duration) -> Result<(), Rejection> {
        self.silent += 1;
        self.silent_for += waited;
        if self.silent_for >= self.cfg.max_silence {
            return Err(failed(
                UpdateResult::ConnectionLost,
                format!(
                    "{what}: nothing from the stream service for {:.0} s ({} requests)",
                    self.silent_for.as_secs_f64(),
                    self.silent
                ),
            ));
        }
        self.emit(PullEvent::Log(format!(
            "stream: {what}: nothing for {:.1} s, asking again (silent {:.0} of {:.0} s)",
            waited.as_secs_f64(),
            self.silent_for.as_secs_f64(),
            self.cfg.max_silence.as_secs_f64()
        )));
        Ok(())
    }
}

fn rejection(bytes: &[u8]) -> Rejection {
    let (code, msg) = decode_rejected(bytes);
    let result = if code == "ResourceNotFound" {
        UpdateResult::InvalidUri
    } else {
        UpdateResult::UpdateFailed
    };
    failed(
        result,
        format!("the stream service rejected: {code}: {msg}"),
    )
}

/// Describes the stream: its version and the file's size.
async fn describe(
    io: &mut Io<'_>,
    rx: &mut UnboundedReceiver<StreamIn>,
) -> Result<(u32, u64), Rejection> {
    loop {
        io.publish("describe", encode_describe(io.job));
        let waited = io.wait();
        let deadline = tokio::time::Instant::now() + waited;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(StreamIn::Description(b))) => {
                    io.heard();
                    return decode_description(&b, io.job.file).map_err(|e| {
                        failed(
                            UpdateResult::UpdateFailed,
                            format!("stream description: {e}"),
                        )
                    });
                }
                Ok(Some(StreamIn::Rejected(b))) => return Err(rejection(&b)),
                // A block of an earlier request: not wanted now.
                Ok(Some(StreamIn::Data(_))) => {}
                Ok(None) => {
                    return Err(failed(
                        UpdateResult::ConnectionLost,
                        "the MQTT client stopped".into(),
                    ));
                }
                Err(_) => break,
            }
        }
        io.silent_round("describe", waited)?;
    }
}

async fn download(
    job: &StreamJob,
    cfg: &StreamConfig,
    store: &ResumeStore,
    rx: &mut UnboundedReceiver<StreamIn>,
    events: &UnboundedSender<PullEvent>,
) -> Result<(), Rejection> {
    let mut io = Io {
        job,
        cfg,
        events,
        silent: 0,
        silent_for: Duration::ZERO,
    };
    let bs = u64::from(job.block_size);
    'fresh: loop {
        let (version, size) = describe(&mut io, rx).await?;
        if size > cfg.max_size {
            return Err(failed(
                UpdateResult::NotEnoughFlash,
                format!(
                    "the stream's file has {size} bytes, the storage holds {}",
                    cfg.max_size
                ),
            ));
        }
        let total = u32::try_from(size.div_ceil(bs))
            .map_err(|_| failed(UpdateResult::NotEnoughFlash, format!("{size} bytes")))?;
        store.truncate_image(0).map_err(storage)?;
        let mut file = store.open_random().map_err(storage)?;
        file.set_len(size).map_err(storage)?;
        io.emit(PullEvent::Log(format!(
            "stream: version {version}, file {} of {size} bytes, {total} blocks of {bs}",
            job.file
        )));
        let mut have = vec![false; total as usize];
        let mut held = 0u32;
        let mut bytes = 0u64;
        let mut next_tenth = 1u64;
        let mut in_flight = BTreeSet::new();
        while held < total {
            if in_flight.len() as u32 <= cfg.window / 2 {
                let room = cfg.window - in_flight.len() as u32;
                let want = next_request(&have, &in_flight, room);
                if let Some(first) = want.first().copied() {
                    io.publish("get", encode_get(job, version, first, &want));
                    in_flight.extend(want);
                }
            }
            let waited = io.wait();
            match tokio::time::timeout(waited, rx.recv()).await {
                Ok(Some(StreamIn::Data(b))) => {
                    let blk = match decode_block(&b) {
                        Ok(blk) => blk,
                        Err(e) => {
                            io.emit(PullEvent::Log(format!("stream: bad data message: {e}")));
                            continue;
                        }
                    };
                    let expect = if blk.id + 1 == total {
                        size - u64::from(blk.id) * bs
                    } else {
                        bs
                    };
                    if blk.file != job.file || blk.id >= total || blk.payload.len() as u64 != expect
                    {
                        io.emit(PullEvent::Log(format!(
                            "stream: ignoring block {} of file {} ({} bytes; expected file {}, \
                             blocks below {total}, {expect} bytes)",
                            blk.id,
                            blk.file,
                            blk.payload.len(),
                            job.file
                        )));
                        continue;
                    }
                    io.heard();
                    in_flight.remove(&blk.id);
                    if have[blk.id as usize] {
                        continue;
                    }
                    file.seek(SeekFrom::Start(u64::from(blk.id) * bs))
                        .and_then(|_| file.write_all(&blk.payload))
                        .map_err(storage)?;
                    have[blk.id as usize] = true;
                    held += 1;
                    bytes += expect;
                    let tenths = bytes.saturating_mul(10) / size.max(1);
                    if tenths >= next_tenth {
                        next_tenth = tenths + 1;
                        io.emit(PullEvent::Progress(bytes));
                    }
                }
                Ok(Some(StreamIn::Rejected(b))) => {
                    let (code, msg) = decode_rejected(&b);
                    if code == "VersionMismatch" {
                        io.emit(PullEvent::Log(format!("stream: {msg}")));
                        io.emit(PullEvent::Restarted("stream-version".into()));
                        continue 'fresh;
                    }
                    return Err(rejection(&b));
                }
                Ok(Some(StreamIn::Description(_))) => {}
                Ok(None) => {
                    return Err(failed(
                        UpdateResult::ConnectionLost,
                        "the MQTT client stopped".into(),
                    ));
                }
                Err(_) => {
                    io.silent_round(
                        &format!(
                            "{} of {total} blocks held, {} asked for",
                            held,
                            in_flight.len()
                        ),
                        waited,
                    )?;
                    // Whatever was in flight is lost: ask again.
                    in_flight.clear();
                }
            }
        }
        file.flush().map_err(storage)?;
        return Ok(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> StreamJob {
        StreamJob {
            topic_base: "aws/things/t/streams/s/".into(),
            file: 0,
            block_size: 1024,
            token: "rdy".into(),
        }
    }

    #[test]
    fn the_next_request_takes_the_first_missing_blocks_in_one_bitmap() {
        let mut have = vec![false; 3000];
        have[0] = true;
        have[2] = true;
        let in_flight: BTreeSet<u32> = [1].into_iter().collect();
        assert_eq!(next_request(&have, &in_flight, 4), vec![3, 4, 5, 6]);
        // Never wider than one 128-byte bitmap.
        let mut sparse = vec![true; 3000];
        sparse[10] = false;
        sparse[2000] = false;
        assert_eq!(next_request(&sparse, &BTreeSet::new(), 32), vec![10]);
        assert!(next_request(&[true, true], &BTreeSet::new(), 8).is_empty());
    }

    #[test]
    fn a_request_carries_the_bitmap_of_the_wanted_blocks() {
        let bytes = encode_get(&job(), 3, 8, &[8, 9, 12]);
        let mut bitmap = None;
        let mut n = None;
        each_entry(&bytes, |k, d| {
            match k {
                "b" => bitmap = Some(d.bytes().unwrap().to_vec()),
                "n" => n = Some(d.u32().unwrap()),
                _ => return Ok(false),
            }
            Ok(true)
        })
        .unwrap();
        assert_eq!(bitmap, Some(vec![0b0001_0011]));
        assert_eq!(n, Some(5));
    }

    #[test]
    fn data_descriptions_and_rejections_decode_or_name_the_field() {
        let mut e = minicbor::Encoder::new(Vec::new());
        e.map(4).unwrap();
        e.str("f").unwrap().u32(0).unwrap();
        e.str("i").unwrap().u32(7).unwrap();
        e.str("l").unwrap().u32(3).unwrap();
        e.str("p").unwrap().bytes(b"abc").unwrap();
        let b = decode_block(&e.into_writer()).unwrap();
        assert_eq!((b.file, b.id, b.payload.as_slice()), (0, 7, &b"abc"[..]));
        let mut e = minicbor::Encoder::new(Vec::new());
        e.map(2).unwrap();
        e.str("f").unwrap().u32(0).unwrap();
        e.str("i").unwrap().u32(7).unwrap();
        let err = decode_block(&e.into_writer()).unwrap_err();
        assert!(err.contains("`p`"), "{err}");

        let mut e = minicbor::Encoder::new(Vec::new());
        e.map(3).unwrap();
        e.str("s").unwrap().u32(2).unwrap();
        e.str("r").unwrap().str("x").unwrap();
        e.str("f").unwrap().array(2).unwrap();
        e.map(2).unwrap();
        e.str("f").unwrap().u32(1).unwrap();
        e.str("z").unwrap().u64(10).unwrap();
        e.map(2).unwrap();
        e.str("f").unwrap().u32(0).unwrap();
        e.str("z").unwrap().u64(1_048_576).unwrap();
        let d = e.into_writer();
        assert_eq!(decode_description(&d, 0), Ok((2, 1_048_576)));
        assert!(decode_description(&d, 5).unwrap_err().contains("no file 5"));

        let mut e = minicbor::Encoder::new(Vec::new());
        e.map(2).unwrap();
        e.str("o").unwrap().str("VersionMismatch").unwrap();
        e.str("m").unwrap().str("old").unwrap();
        assert_eq!(
            decode_rejected(&e.into_writer()),
            ("VersionMismatch".into(), "old".into())
        );
    }
}
