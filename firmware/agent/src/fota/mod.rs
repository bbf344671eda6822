//! Firmware update: Object 5 (`/5/0`) of the agent, push and pull, the
//! package checks and the resume store. The contract with the rig's cases is
//! in `firmware/agent/README.md` ("Firmware update").
//!
//! - [`package`]: the package header of `fixtures/firmware/README.md` and
//!   the checks that give Update Results 2, 5 and 6.
//! - [`resume`]: what survives a restart in `--state-dir`.
//! - [`pull`]: the download task (CoAP Block2 over UDP or DTLS, HTTP(S)
//!   with Range + If-Match), retries and resume.
//! - [`Fota`] (here): the object instance. It runs rig-proto's
//!   [`FirmwareUpdate`] state machine, answers Write `/5/0/0` and `/5/0/1`
//!   and Execute `/5/0/2`, mirrors its resources into the agent's
//!   [`ObjectStore`] (so Read, Discover and Observe work as for any other
//!   object) and prints the `fota …` console lines.
//!
//! [`Fota`] is driven like the client that owns it: `intercept` for server
//! requests, `pump(now)` after every input, `poll_timeout` for its timer.
//! A download runs as a tokio task and reports on a channel; the client has
//! no waker for that channel, so while a download runs `poll_timeout` asks
//! to be called again every [`TICK`] and `pump` drains the channel.

pub mod mqtt;
pub mod package;
pub mod pull;
pub mod resume;
pub mod stream;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use rig_proto::coap::{CoapOption, MessageClass, Method, Packet, ResponseCode, message};
use rig_proto::content::{self, ContentFormat};
use rig_proto::fota::{FirmwareState, FirmwareUpdate, UpdateResult};
use rig_proto::path::ObjectPath;
use rig_proto::time::Instant;
use rig_proto::value::Value;
use tokio::sync::mpsc;

use crate::config::AgentConfig;
use crate::objects::ObjectStore;
use pull::{PackageUri, PullConfig, PullEvent};
use resume::{ResumeStore, Saved};

/// Object 5.
pub const FIRMWARE_UPDATE: u16 = 5;

/// How often a running download's events are collected.
pub const TICK: Duration = Duration::from_millis(20);

/// How long Updating (State 3) lasts before the result is reported, so an
/// observer sees 2 → 3 → 0.
pub const UPDATING_FOR: Duration = Duration::from_millis(500);

/// The FOTA settings from the command line.
#[derive(Clone, Debug)]
pub struct FotaSettings {
    /// The resume store's directory.
    pub state_dir: PathBuf,
    /// How downloads are done.
    pub pull: PullConfig,
}

impl FotaSettings {
    /// From the command line (`--state-dir`, `--fota-*`, the DTLS flags for
    /// `coaps://`). The default state directory is a fresh one under the
    /// system temp directory, for this process only.
    pub fn from_config(cfg: &AgentConfig) -> FotaSettings {
        let state_dir = cfg.state_dir.clone().unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            std::env::temp_dir().join(format!("rig-agent-{}-{nanos}", std::process::id()))
        });
        let trust = cfg.fota_ca.clone().or_else(|| cfg.ca.clone()).or_else(|| {
            let p = PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../fixtures/pki/ca.pem"
            ));
            p.exists().then_some(p)
        });
        FotaSettings {
            state_dir,
            pull: PullConfig {
                block_size: cfg.fota_block_size,
                max_size: cfg.fota_max_size,
                retries: cfg.fota_retries,
                time_scale: cfg.time_scale,
                idle_timeout: Duration::from_secs_f64(cfg.fota_idle_timeout),
                resume: true,
                trust,
                dtls: cfg.dtls_config().ok().flatten(),
            },
        }
    }
}

/// A running download.
struct Task {
    handle: tokio::task::JoinHandle<()>,
    events: mpsc::UnboundedReceiver<PullEvent>,
}

/// The Object 5 instance `/5/0`; see the module doc.
pub struct Fota {
    settings: FotaSettings,
    store: ResumeStore,
    machine: FirmwareUpdate,
    saved: Saved,
    task: Option<Task>,
    /// A download to resume once a runtime is there (after a restart).
    resume_pending: bool,
    /// When the Updating state ends.
    update_due: Option<Instant>,
    /// A Block1 push is under way: when its last block arrived. The state
    /// is Downloading from its first block (so an observer sees 1, then 2).
    push_since: Option<Instant>,
    /// When `pump` must run again to collect download events.
    tick: Option<Instant>,
    /// The (state, result) last printed.
    printed: Option<(i64, i64)>,
    lines: VecDeque<String>,
    logs: VecDeque<String>,
    changed: Vec<ObjectPath>,
}

fn r(id: u16) -> ObjectPath {
    ObjectPath::resource(FIRMWARE_UPDATE, 0, id)
}

impl Fota {
    /// The instance, restored from the resume store: a download cut by a
    /// restart resumes (on the first `pump`), Downloaded stays Downloaded,
    /// and an update that was running is reported as done.
    pub fn new(cfg: &AgentConfig) -> Fota {
        let settings = FotaSettings::from_config(cfg);
        let store = ResumeStore::new(&settings.state_dir);
        let mut f = Fota {
            store,
            settings,
            machine: FirmwareUpdate::new(),
            saved: Saved::default(),
            task: None,
            resume_pending: false,
            update_due: None,
            push_since: None,
            tick: None,
            printed: None,
            lines: VecDeque::new(),
            logs: VecDeque::new(),
            changed: Vec::new(),
        };
        match f.store.load() {
            Ok(Some(saved)) => f.restore(saved),
            Ok(None) => {}
            Err(e) => f
                .logs
                .push_back(format!("fota: ignoring the resume store: {e}")),
        }
        f
    }

    fn restore(&mut self, saved: Saved) {
        let state = FirmwareState::from_i64(saved.state).unwrap_or(FirmwareState::Idle);
        let result = UpdateResult::from_i64(saved.result).unwrap_or(UpdateResult::Initial);
        self.saved = saved;
        match state {
            FirmwareState::Downloading if !self.saved.uri.is_empty() => {
                self.machine = FirmwareUpdate::restore(state, result);
                self.resume_pending = true;
            }
            FirmwareState::Downloading => {
                // A push cut by the restart: the server must push again.
                self.store.clear();
                self.saved = Saved::default();
            }
            FirmwareState::Downloaded => {
                self.machine = FirmwareUpdate::restore(state, result);
            }
            FirmwareState::Updating => {
                // The restart was the update: report its outcome now.
                self.machine = FirmwareUpdate::restore(state, result);
                self.update_due = Some(Instant::ZERO);
            }
            FirmwareState::Idle => {
                self.machine = FirmwareUpdate::restore(state, result);
            }
        }
    }

    /// The resume store's directory.
    pub fn state_dir(&self) -> &std::path::Path {
        self.store.dir()
    }

    /// Writes `/5/0`'s resources into `store` (at start and after a factory
    /// reset, which keeps the firmware state: it lives in the resume store).
    pub fn install(&mut self, store: &mut ObjectStore) {
        store.add_instance(FIRMWARE_UPDATE, 0);
        store.add_executable(r(2));
        for (i, proto) in [0i64, 1, 2, 3].into_iter().enumerate() {
            store.set_value(
                ObjectPath::resource_instance(FIRMWARE_UPDATE, 0, 8, i as u16),
                Value::Integer(proto),
            );
        }
        store.set_value(r(9), Value::Integer(2));
        // No state line for the state the agent starts in: only changes print.
        self.printed = Some((
            self.machine.state().as_i64(),
            self.machine.result().as_i64(),
        ));
        self.publish(store);
        self.changed.clear();
    }

    /// Mirrors the state into the store, persists it, and prints the state
    /// line when State or Update Result changed.
    fn publish(&mut self, store: &mut ObjectStore) {
        let state = self.machine.state().as_i64();
        let result = self.machine.result().as_i64();
        let values = [
            (r(1), Value::String(self.saved.uri.clone())),
            (r(3), Value::Integer(state)),
            (r(5), Value::Integer(result)),
            (r(6), Value::String(self.saved.name.clone())),
            (r(7), Value::String(self.saved.version.clone())),
        ];
        for (p, v) in values {
            if store.get(&p) != Some(&v) {
                store.set_value(p, v);
                self.changed.push(p);
            }
        }
        if self.printed != Some((state, result)) {
            self.printed = Some((state, result));
            self.lines
                .push_back(format!("fota state={state} result={result}"));
        }
        self.saved.state = state;
        self.saved.result = result;
        let persist = if state == 0 && result == 0 && self.saved.uri.is_empty() {
            self.store.clear();
            Ok(())
        } else {
            self.store.save(&self.saved)
        };
        if let Err(e) = persist {
            self.logs.push_back(format!("fota: cannot persist: {e}"));
        }
    }

    /// The next console line (`fota …`).
    pub fn poll_line(&mut self) -> Option<String> {
        self.lines.pop_front()
    }

    /// The next log line.
    pub fn poll_log(&mut self) -> Option<String> {
        self.logs.pop_front()
    }

    /// When [`Fota::pump`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let push_gives_up = self.push_since.map(|t| t + self.settings.pull.idle_timeout);
        [self.update_due, self.tick, push_gives_up]
            .into_iter()
            .flatten()
            .min()
    }

    /// A block of a Block1 Write to `/5/0/0` arrived (before the endpoint
    /// reassembles it). The first block (num 0, more to come) enters
    /// Downloading, so that State 1 is notified while the push runs; the
    /// reassembled Write then completes it. A push whose blocks stop for
    /// the idle timeout ends with Result 4 (connection lost).
    pub fn push_block(&mut self, now: Instant, num: u32, more: bool, store: &mut ObjectStore) {
        if !more {
            return;
        }
        if num == 0 {
            let state = self.machine.state();
            if state == FirmwareState::Idle {
                if self.machine.write_package(false).is_err() {
                    return;
                }
                self.abort_task();
                self.saved = Saved::default();
                self.store.clear();
                self.publish(store);
            } else if !(state == FirmwareState::Downloading && self.push_since.is_some()) {
                // Not ours to start (a pull runs, or an image waits): the
                // reassembled Write gets the state machine's 4.05.
                return;
            }
            self.push_since = Some(now);
        } else if self.push_since.is_some() {
            self.push_since = Some(now);
        }
    }

    /// Whether a download task runs.
    pub fn downloading(&self) -> bool {
        self.task.is_some()
    }

    /// Handles a server request on `/5/0/0`, `/5/0/1` (Write) or `/5/0/2`
    /// (Execute); `None` for anything else (the client's usual handling).
    pub fn intercept(
        &mut self,
        now: Instant,
        req: &Packet,
        path: &ObjectPath,
        store: &mut ObjectStore,
    ) -> Option<Packet> {
        if path.object_id().map(|o| o.0) != Some(FIRMWARE_UPDATE)
            || path.instance_id().map(|i| i.0) != Some(0)
            || path.resource_instance_id().is_some()
        {
            return None;
        }
        let method = match req.header.code {
            MessageClass::Request(m) => m,
            _ => return None,
        };
        let rid = path.resource_id()?.0;
        let answer = match (method, rid) {
            (Method::Put, 0) => match self.decode(req, path, store) {
                Ok(Value::Opaque(b)) => self.push(now, &b, store),
                Ok(Value::String(s)) => self.push(now, s.as_bytes(), store),
                Ok(_) | Err(()) => message::response(ResponseCode::BadRequest),
            },
            (Method::Put, 1) => match self.decode(req, path, store) {
                Ok(Value::String(s)) => self.write_uri(now, s.trim_end_matches('\0'), store),
                Ok(Value::Opaque(b)) => {
                    let s = String::from_utf8_lossy(&b).to_string();
                    self.write_uri(now, s.trim_end_matches('\0'), store)
                }
                Ok(_) | Err(()) => message::response(ResponseCode::BadRequest),
            },
            (Method::Post, 2) => self.execute_update(now, store),
            _ => return None,
        };
        Some(answer)
    }

    /// The single value of a Write on a resource, in any content format.
    fn decode(
        &mut self,
        req: &Packet,
        path: &ObjectPath,
        store: &ObjectStore,
    ) -> Result<Value, ()> {
        let format = message::uint_option(req, CoapOption::ContentFormat)
            .and_then(Result::ok)
            .and_then(|n| u16::try_from(n).ok())
            .and_then(ContentFormat::from_u16);
        match format {
            None | Some(ContentFormat::Opaque) if path.resource_id().map(|r| r.0) == Some(0) => {
                Ok(Value::Opaque(req.payload.clone()))
            }
            None | Some(ContentFormat::Text) => Ok(Value::String(
                String::from_utf8_lossy(&req.payload).to_string(),
            )),
            Some(f) => match content::decode(f, path, &req.payload, store.defs()) {
                Ok(records) => records.into_iter().next().map(|r| r.value).ok_or(()),
                Err(e) => {
                    self.logs
                        .push_back(format!("fota: Write on {path}: cannot decode {f}: {e}"));
                    Err(())
                }
            },
        }
    }

    fn refuse(&mut self, e: rig_proto::fota::FotaError) -> Packet {
        self.logs.push_back(format!("fota: {e}"));
        message::response(e.code)
    }

    /// Write `/5/0/0`: the package itself (Block1 already reassembled).
    fn push(&mut self, _now: Instant, bytes: &[u8], store: &mut ObjectStore) -> Packet {
        let empty = bytes.is_empty() || bytes == [0];
        let block1_push = self.push_since.take().is_some()
            && self.machine.state() == FirmwareState::Downloading
            && !empty;
        if !block1_push && let Err(e) = self.machine.write_package(empty) {
            return self.refuse(e);
        }
        self.abort_task();
        if empty {
            self.saved = Saved::default();
            self.store.clear();
            self.publish(store);
            return message::response(ResponseCode::Changed);
        }
        self.saved = Saved::default();
        self.publish(store);
        if bytes.len() as u64 > self.settings.pull.max_size {
            self.fail(
                store,
                UpdateResult::NotEnoughFlash,
                format!(
                    "the package has {} bytes, the storage holds {}",
                    bytes.len(),
                    self.settings.pull.max_size
                ),
            );
            return message::response(ResponseCode::Changed);
        }
        if let Err(e) = self.store.write_image(bytes) {
            self.fail(store, UpdateResult::NotEnoughFlash, format!("storage: {e}"));
            return message::response(ResponseCode::Changed);
        }
        self.finish_download(store, "push".into());
        message::response(ResponseCode::Changed)
    }

    /// Write `/5/0/1`: start a pull, or (empty) cancel and reset.
    fn write_uri(&mut self, _now: Instant, uri: &str, store: &mut ObjectStore) -> Packet {
        let empty = uri.is_empty();
        if let Err(e) = self.machine.write_package_uri(empty) {
            return self.refuse(e);
        }
        self.abort_task();
        self.store.clear();
        self.saved = Saved::default();
        if empty {
            self.publish(store);
            return message::response(ResponseCode::Changed);
        }
        self.saved.uri = uri.to_string();
        self.publish(store);
        match PackageUri::parse(uri) {
            Ok(u) => {
                self.saved.name = u.file_name();
                self.start_pull(store, None);
            }
            Err(rej) => self.fail(store, rej.result, rej.reason),
        }
        message::response(ResponseCode::Changed)
    }

    /// Execute `/5/0/2`: Updating now, the outcome after [`UPDATING_FOR`].
    fn execute_update(&mut self, now: Instant, store: &mut ObjectStore) -> Packet {
        if let Err(e) = self.machine.execute_update() {
            return self.refuse(e);
        }
        self.update_due = Some(now + UPDATING_FOR);
        self.publish(store);
        message::response(ResponseCode::Changed)
    }

    fn abort_task(&mut self) {
        if let Some(t) = self.task.take() {
            t.handle.abort();
        }
        self.tick = None;
    }

    fn fail(&mut self, store: &mut ObjectStore, why: UpdateResult, reason: String) {
        self.abort_task();
        self.logs.push_back(format!(
            "fota: download failed (result {}): {reason}",
            why.as_i64()
        ));
        if let Err(e) = self.machine.download_failed(why) {
            self.logs.push_back(format!("fota: {e}"));
        }
        self.store.clear();
        self.publish(store);
    }

    fn start_pull(&mut self, store: &mut ObjectStore, etag: Option<String>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.fail(
                store,
                UpdateResult::ConnectionLost,
                "no async runtime to download in".into(),
            );
            return;
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = rt.spawn(pull::pull(
            self.saved.uri.clone(),
            self.settings.pull.clone(),
            self.store.clone(),
            etag,
            tx,
        ));
        self.logs
            .push_back(format!("fota: pulling {}", self.saved.uri));
        self.task = Some(Task { handle, events: rx });
    }

    /// The image file is complete: report its hash and check it.
    fn finish_download(&mut self, store: &mut ObjectStore, how: String) {
        let bytes = match self.store.read_image() {
            Ok(b) => b,
            Err(e) => {
                return self.fail(store, UpdateResult::NotEnoughFlash, format!("storage: {e}"));
            }
        };
        self.lines.push_back(format!(
            "fota downloaded bytes={} sha256={}",
            bytes.len(),
            package::sha256_hex(&bytes)
        ));
        match package::check_complete(&bytes, self.settings.pull.max_size) {
            Ok(c) => {
                self.logs.push_back(format!(
                    "fota: {how}: {} bytes, version {}, checks passed",
                    bytes.len(),
                    c.header.version
                ));
                self.saved.version = c.header.version.clone();
                self.saved.install_fails = c.header.install_fails();
                if let Err(e) = self.machine.download_complete() {
                    self.logs.push_back(format!("fota: {e}"));
                }
                self.publish(store);
            }
            Err(rej) => self.fail(store, rej.result, rej.reason),
        }
    }

    /// Collects what happened since the last call; returns the `/5/0`
    /// resources whose value changed (for Observe).
    pub fn pump(&mut self, now: Instant, store: &mut ObjectStore) -> Vec<ObjectPath> {
        if self.resume_pending {
            self.resume_pending = false;
            let etag = self.saved.etag.clone();
            self.logs.push_back(format!(
                "fota: resuming the pull of {} ({} bytes held)",
                self.saved.uri,
                self.store.image_len()
            ));
            self.publish(store);
            self.start_pull(store, etag);
        }
        if self
            .push_since
            .is_some_and(|t| t + self.settings.pull.idle_timeout <= now)
        {
            self.push_since = None;
            self.fail(
                store,
                UpdateResult::ConnectionLost,
                format!(
                    "the Block1 push to /5/0/0 stopped: no block for {:.1} s",
                    self.settings.pull.idle_timeout.as_secs_f64()
                ),
            );
        }
        if self.update_due.is_some_and(|t| t <= now) {
            self.update_due = None;
            self.finish_update(store);
        }
        let mut events = Vec::new();
        if let Some(t) = self.task.as_mut() {
            while let Ok(e) = t.events.try_recv() {
                events.push(e);
            }
        }
        for e in events {
            self.on_pull_event(store, e);
        }
        self.tick = self.task.as_ref().map(|_| now + TICK);
        std::mem::take(&mut self.changed)
    }

    fn on_pull_event(&mut self, store: &mut ObjectStore, e: PullEvent) {
        match e {
            PullEvent::Progress(n) => self.lines.push_back(format!("fota progress bytes={n}")),
            PullEvent::Resumed(at) => self.lines.push_back(format!("fota resumed at={at}")),
            PullEvent::Restarted(why) => {
                self.lines.push_back(format!("fota restarted reason={why}"))
            }
            PullEvent::Etag(tag) => {
                self.saved.etag = Some(tag);
                if let Err(e) = self.store.save(&self.saved) {
                    self.logs.push_back(format!("fota: cannot persist: {e}"));
                }
            }
            PullEvent::Log(l) => self.logs.push_back(format!("fota: {l}")),
            // Only MQTT stream downloads publish.
            PullEvent::Publish(..) => {}
            PullEvent::Complete => {
                self.task = None;
                self.finish_download(store, "pull".into());
            }
            PullEvent::Failed(rej) => {
                self.task = None;
                self.fail(store, rej.result, rej.reason);
            }
        }
    }

    /// The end of Updating: success (Idle, 1) or, for a package flagged
    /// install-fails, failure (Downloaded, 8, image kept).
    fn finish_update(&mut self, store: &mut ObjectStore) {
        if self.machine.state() != FirmwareState::Updating {
            return;
        }
        if self.saved.install_fails {
            self.logs
                .push_back("fota: the install failed (package flag bit 0)".into());
            let _ = self.machine.update_failed(true);
        } else {
            self.logs.push_back(format!(
                "fota: update to {} reported successful (not applied: this is a test agent)",
                self.saved.version
            ));
            let _ = self.machine.update_succeeded();
            let fw = ObjectPath::resource(3, 0, 3);
            let v = Value::String(self.saved.version.clone());
            if !self.saved.version.is_empty() && store.get(&fw) != Some(&v) {
                store.set_value(fw, v);
                self.changed.push(fw);
            }
            self.store.clear();
            self.saved.uri.clear();
            self.saved.etag = None;
        }
        self.publish(store);
    }
}

impl Drop for Fota {
    fn drop(&mut self) {
        self.abort_task();
    }
}
