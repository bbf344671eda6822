//! FOTA over MQTT (`--mqtt-fota`): AWS-IoT-like Jobs with an HTTPS
//! download, the MQTT side of issue 7 (`reference/mqtt-baseline.md` §3).
//!
//! Flow (`{p}` = `<root>/things/<thing>/jobs`, the root `$aws`, or `aws`
//! on rumqttd):
//!
//! ```text
//!  subscribe {p}/notify-next, {p}/start-next/accepted|rejected,
//!            {p}/+/update/accepted|rejected                 (QoS 1)
//!  connected ──► publish {p}/start-next
//!  notify-next with an execution, no job running ──► publish {p}/start-next
//!  start-next/accepted {execution: {jobId, jobDocument}} ──►
//!      publish {p}/<jobId>/update {"status":"IN_PROGRESS"}; download
//!  download ends ──► {p}/<jobId>/update {"status":"SUCCEEDED"|"FAILED",
//!                                        "statusDetails":{"reason":…}}
//! ```
//!
//! The job document is `{"operation":"fota","url":"https://…","sha256":"…",
//! "size":N}`; the platform emulator's `{"operation":"ota","fileUrl":…}` is
//! accepted too (then without a hash or size to compare). The download is
//! [`super::pull::pull`]: with `https` it starts over after any cut (what
//! the study's SDK client did), with `https-range` it resumes with Range +
//! If-Match, also across a restart (the partial image and its ETag are in
//! `--state-dir`/`mqtt`).
//!
//! With `stream` the document names an MQTT file stream (`streamId`, or
//! `streamname`, and `fileId`) and [`super::stream`] fetches it block by
//! block (`--mqtt-stream-block` 1024 or 4096), keeping the bitmap of the
//! blocks held in RAM: a lost connection costs the blocks in flight, a
//! restart the whole file. The agent subscribes to the stream replies
//! (`<root>/things/<thing>/streams/+/data|description|rejected/cbor`, QoS 0)
//! from the start.
//!
//! The same `fota …` console lines as the LwM2M side are printed:
//! `fota state=1 result=0` when a job starts, progress, resume and restart
//! lines, `fota downloaded bytes=… sha256=…`, and `fota state=2 result=0`
//! (passed) or `fota state=0 result=<n>` (failed, Update Result numbering).

use std::collections::VecDeque;
use std::time::Duration;

use rumqttc::QoS;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::FotaSettings;
use super::package;
use super::pull::{self, PackageUri, PullEvent};
use super::resume::{ResumeStore, Saved};
use super::stream::{self, StreamConfig, StreamIn, StreamJob};

/// How the MQTT agent delivers a FOTA job (`--mqtt-fota`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MqttFota {
    /// HTTPS download that starts over after any cut (the study's SDK client).
    Https,
    /// HTTPS download that resumes with Range + If-Match.
    HttpsRange,
    /// AWS-IoT-like MQTT file streams, resumed from a bitmap kept in RAM.
    Stream,
}

/// A job being worked on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// `jobId`.
    pub id: String,
    /// The file URL.
    pub url: String,
    /// Expected SHA-256 of the file (hex), if the document gives one.
    pub sha256: Option<String>,
    /// Expected size, if given.
    pub size: Option<u64>,
    /// The MQTT file stream of the image (`streamId` or `streamname`).
    pub stream: Option<String>,
    /// The file in that stream (`fileId` or `fileid`, default 0).
    pub file_id: u32,
}

/// Reads a job execution (`execution` of notify-next or start-next/accepted).
pub fn parse_execution(execution: &Value) -> Result<Job, String> {
    let id = execution
        .get("jobId")
        .and_then(Value::as_str)
        .ok_or("execution without `jobId`")?
        .to_string();
    let doc = execution
        .get("jobDocument")
        .ok_or_else(|| format!("job {id}: no `jobDocument`"))?;
    let op = doc.get("operation").and_then(Value::as_str).unwrap_or("");
    if op != "fota" && op != "ota" {
        return Err(format!("job {id}: operation `{op}` is not fota"));
    }
    let stream = doc
        .get("streamId")
        .or_else(|| doc.get("streamname"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let url = match doc.get("url").or_else(|| doc.get("fileUrl")) {
        Some(u) => u
            .as_str()
            .ok_or_else(|| format!("job {id}: `url` is not a string"))?
            .to_string(),
        None if stream.is_some() => String::new(),
        None => {
            return Err(format!(
                "job {id}: the document has no `url` nor `streamId`"
            ));
        }
    };
    let file_id = match doc.get("fileId").or_else(|| doc.get("fileid")) {
        None => 0,
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("job {id}: `fileId` is not a file number: {v}"))?,
    };
    Ok(Job {
        id,
        url,
        stream,
        file_id,
        sha256: doc
            .get("sha256")
            .and_then(Value::as_str)
            .map(str::to_lowercase),
        size: doc.get("size").and_then(Value::as_u64),
    })
}

/// The FOTA side of the MQTT device; see the module doc.
pub struct JobsFota {
    mode: MqttFota,
    prefix: String,
    /// `<root>/things/<thing>/streams/`.
    stream_prefix: String,
    /// The running stream download's inbox (stream id, sender).
    stream_in: Option<(String, mpsc::UnboundedSender<StreamIn>)>,
    stream_block: u32,
    settings: FotaSettings,
    store: ResumeStore,
    job: Option<Job>,
    task: Option<tokio::task::JoinHandle<()>>,
    events: mpsc::UnboundedSender<PullEvent>,
    token: u64,
    client_id: String,
    lines: VecDeque<String>,
    logs: VecDeque<String>,
    publishes: VecDeque<(String, QoS, Vec<u8>)>,
}

impl JobsFota {
    /// For thing `thing` under the AWS topic root `root`. Download events go
    /// to `events`; the MQTT loop hands each back to [`JobsFota::on_event`].
    pub fn new(
        cfg: &crate::config::AgentConfig,
        root: &str,
        thing: &str,
        events: mpsc::UnboundedSender<PullEvent>,
    ) -> JobsFota {
        let settings = FotaSettings::from_config(cfg);
        let store = ResumeStore::new(settings.state_dir.join("mqtt"));
        JobsFota {
            mode: cfg.mqtt_fota,
            prefix: format!("{root}/things/{thing}/jobs"),
            stream_prefix: format!("{root}/things/{thing}/streams/"),
            stream_in: None,
            stream_block: u32::try_from(cfg.mqtt_stream_block).unwrap_or(1024),
            settings,
            store,
            job: None,
            task: None,
            events,
            token: 0,
            client_id: thing.to_string(),
            lines: VecDeque::new(),
            logs: VecDeque::new(),
            publishes: VecDeque::new(),
        }
    }

    /// The subscriptions the jobs flow needs (QoS 1), beyond notify-next.
    pub fn subscriptions(&self) -> Vec<(String, QoS)> {
        let p = &self.prefix;
        let mut subs = vec![
            (format!("{p}/notify-next"), QoS::AtLeastOnce),
            (format!("{p}/start-next/accepted"), QoS::AtLeastOnce),
            (format!("{p}/start-next/rejected"), QoS::AtLeastOnce),
            (format!("{p}/+/update/accepted"), QoS::AtLeastOnce),
            (format!("{p}/+/update/rejected"), QoS::AtLeastOnce),
        ];
        if self.mode == MqttFota::Stream {
            for op in ["data", "description", "rejected"] {
                subs.push((
                    format!("{}+/{op}/cbor", self.stream_prefix),
                    QoS::AtMostOnce,
                ));
            }
        }
        subs
    }

    /// A stream reply: handed to the running stream download (true), or
    /// not a stream topic of this thing (false).
    fn on_stream_publish(&mut self, topic: &str, payload: &[u8]) -> bool {
        let Some(rest) = topic.strip_prefix(self.stream_prefix.as_str()) else {
            return false;
        };
        let Some((stream, op)) = rest.split_once('/') else {
            return false;
        };
        let msg = match op {
            "data/cbor" => StreamIn::Data(payload.to_vec()),
            "description/cbor" => StreamIn::Description(payload.to_vec()),
            "rejected/cbor" => StreamIn::Rejected(payload.to_vec()),
            // Our own requests (get, describe) if the broker echoes them.
            _ => return true,
        };
        match &self.stream_in {
            Some((id, tx)) if id == stream => {
                let _ = tx.send(msg);
            }
            _ => self.logs.push_back(format!(
                "fota: {topic}: no download of stream {stream:?} runs; dropped"
            )),
        }
        true
    }

    /// The next console line.
    pub fn poll_line(&mut self) -> Option<String> {
        self.lines.pop_front()
    }

    /// The next log line.
    pub fn poll_log(&mut self) -> Option<String> {
        self.logs.pop_front()
    }

    /// The next message to publish.
    pub fn poll_publish(&mut self) -> Option<(String, QoS, Vec<u8>)> {
        self.publishes.pop_front()
    }

    fn publish(&mut self, suffix: &str, body: Value) {
        self.publishes.push_back((
            format!("{}/{suffix}", self.prefix),
            QoS::AtLeastOnce,
            body.to_string().into_bytes(),
        ));
    }

    fn start_next(&mut self) {
        self.token += 1;
        let token = format!("{}-{}", self.client_id, self.token);
        self.publish("start-next", json!({"clientToken": token}));
    }

    /// The subscriptions were acknowledged: ask for the next job.
    pub fn on_subscribed(&mut self) {
        if self.job.is_none() {
            self.start_next();
        }
    }

    /// A PUBLISH arrived; true if it was a jobs topic.
    pub fn on_publish(&mut self, topic: &str, payload: &[u8]) -> bool {
        if self.on_stream_publish(topic, payload) {
            return true;
        }
        let Some(suffix) = topic
            .strip_prefix(self.prefix.as_str())
            .and_then(|s| s.strip_prefix('/'))
        else {
            return false;
        };
        let v: Value = match serde_json::from_slice(payload) {
            Ok(v) => v,
            Err(e) => {
                self.logs.push_back(format!("fota: {topic}: not JSON: {e}"));
                return true;
            }
        };
        match suffix {
            "notify-next" => {
                self.lines
                    .push_back(format!("job-notify {} bytes", payload.len()));
                if self.job.is_none() && v.get("execution").is_some() {
                    self.start_next();
                }
            }
            "start-next/accepted" => match v.get("execution") {
                Some(exec) if self.job.is_none() => match parse_execution(exec) {
                    Ok(job) => self.start_job(job),
                    Err(e) => {
                        self.logs.push_back(format!("fota: {e}"));
                        if let Some(id) = exec.get("jobId").and_then(Value::as_str) {
                            let id = id.to_string();
                            self.publish(
                                &format!("{id}/update"),
                                json!({"status": "FAILED", "statusDetails": {"reason": e}}),
                            );
                        }
                    }
                },
                Some(_) => {}
                None => self.logs.push_back("fota: no pending job".into()),
            },
            s if s.ends_with("/rejected") => self.logs.push_back(format!(
                "fota: {topic}: {}",
                String::from_utf8_lossy(payload)
                    .chars()
                    .take(200)
                    .collect::<String>()
            )),
            _ => {}
        }
        true
    }

    fn start_job(&mut self, job: Job) {
        self.lines.push_back(format!("job-start {}", job.id));
        self.publish(
            &format!("{}/update", job.id),
            json!({"status": "IN_PROGRESS", "statusDetails": {"step": "downloading"}}),
        );
        self.lines.push_back("fota state=1 result=0".into());
        let mut cfg = self.settings.pull.clone();
        cfg.resume = self.mode == MqttFota::HttpsRange;
        if self.mode == MqttFota::Stream {
            return self.start_stream(job);
        }
        // Resume only the same file (a presigned URL's query changes per request).
        let same_file = |a: &str, b: &str| a.split('?').next() == b.split('?').next();
        let etag = match self.store.load() {
            Ok(Some(s)) if cfg.resume && same_file(&s.uri, &job.url) => s.etag,
            _ => {
                self.store.clear();
                None
            }
        };
        let saved = Saved {
            state: 1,
            uri: job.url.clone(),
            etag: etag.clone(),
            ..Saved::default()
        };
        if let Err(e) = self.store.save(&saved) {
            self.logs.push_back(format!("fota: cannot persist: {e}"));
        }
        if let Err(r) = PackageUri::parse(&job.url) {
            let id = job.id.clone();
            self.job = Some(job);
            return self.finish(&id, Err((r.result.as_i64(), r.reason)));
        }
        let handle = tokio::spawn(pull::pull(
            job.url.clone(),
            cfg,
            self.store.clone(),
            etag,
            self.events.clone(),
        ));
        self.task = Some(handle);
        self.job = Some(job);
    }

    /// Starts the MQTT stream download of `job` (nothing of an earlier
    /// process is reused: the bitmap lives in RAM).
    fn start_stream(&mut self, job: Job) {
        self.store.clear();
        let Some(stream_id) = job.stream.clone() else {
            let id = job.id.clone();
            self.job = Some(job);
            return self.finish(&id, Err((7, "the job document names no `streamId`".into())));
        };
        self.token += 1;
        let sj = StreamJob {
            topic_base: format!("{}{stream_id}/", self.stream_prefix),
            file: job.file_id,
            block_size: self.stream_block,
            token: format!("{}-{}", self.client_id, self.token),
        };
        let cfg = StreamConfig {
            window: 16,
            rerequest: Duration::from_secs(3)
                .div_f64(self.settings.pull.time_scale.max(1.0))
                .max(Duration::from_millis(500)),
            // After a cut, the broker's TCP connection to the agent
            // retransmits with a doubling timeout and may deliver again up
            // to about two minutes after the link is back (a 60 s cut was
            // seen to need ~100 s): 180 s of silence before Result 4.
            max_silence: Duration::from_secs(180).div_f64(self.settings.pull.time_scale.max(1.0)),
            max_size: self.settings.pull.max_size,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        self.stream_in = Some((stream_id.clone(), tx));
        self.logs.push_back(format!(
            "fota: job {}: MQTT stream {stream_id}, file {}, blocks of {}",
            job.id, job.file_id, self.stream_block
        ));
        self.task = Some(tokio::spawn(stream::run(
            sj,
            cfg,
            self.store.clone(),
            rx,
            self.events.clone(),
        )));
        self.job = Some(job);
    }

    /// Handles a download event (from the channel given to [`JobsFota::new`]).
    pub fn on_event(&mut self, e: PullEvent) {
        let id = self.job.as_ref().map(|j| j.id.clone()).unwrap_or_default();
        match e {
            PullEvent::Progress(n) => self.lines.push_back(format!("fota progress bytes={n}")),
            PullEvent::Resumed(at) => self.lines.push_back(format!("fota resumed at={at}")),
            PullEvent::Restarted(why) => {
                self.lines.push_back(format!("fota restarted reason={why}"))
            }
            PullEvent::Etag(tag) => {
                if let Ok(Some(mut s)) = self.store.load() {
                    s.etag = Some(tag);
                    let _ = self.store.save(&s);
                }
            }
            PullEvent::Log(l) => self.logs.push_back(format!("fota: {l}")),
            PullEvent::Publish(topic, payload) => {
                self.publishes.push_back((topic, QoS::AtMostOnce, payload));
            }
            PullEvent::Complete => {
                self.task = None;
                let verdict = self.check();
                self.finish(&id, verdict);
            }
            PullEvent::Failed(r) => {
                self.task = None;
                self.finish(&id, Err((r.result.as_i64(), r.reason)));
            }
        }
    }

    /// Checks the downloaded file: the document's size and SHA-256, then the package.
    fn check(&mut self) -> Result<(), (i64, String)> {
        let bytes = self.store.read_image().map_err(|e| (2, e))?;
        let sha = package::sha256_hex(&bytes);
        self.lines.push_back(format!(
            "fota downloaded bytes={} sha256={sha}",
            bytes.len()
        ));
        let job = self.job.clone();
        if let Some(size) = job.as_ref().and_then(|j| j.size)
            && size != bytes.len() as u64
        {
            return Err((5, format!("{} bytes, the job says {size}", bytes.len())));
        }
        if let Some(want) = job.as_ref().and_then(|j| j.sha256.clone())
            && want != sha
        {
            return Err((5, format!("SHA-256 {sha}, the job says {want}")));
        }
        package::check_complete(&bytes, self.settings.pull.max_size)
            .map(drop)
            .map_err(|r| (r.result.as_i64(), r.reason))
    }

    fn finish(&mut self, id: &str, verdict: Result<(), (i64, String)>) {
        match verdict {
            Ok(()) => {
                self.lines.push_back("fota state=2 result=0".into());
                self.publish(
                    &format!("{id}/update"),
                    json!({"status": "SUCCEEDED", "statusDetails": {"reason": "downloaded and verified"}}),
                );
                self.lines.push_back(format!("job-done {id} SUCCEEDED"));
            }
            Err((result, reason)) => {
                self.logs
                    .push_back(format!("fota: job {id} failed (result {result}): {reason}"));
                self.lines
                    .push_back(format!("fota state=0 result={result}"));
                self.publish(
                    &format!("{id}/update"),
                    json!({"status": "FAILED", "statusDetails": {"reason": reason, "result": result}}),
                );
                self.lines.push_back(format!("job-done {id} FAILED"));
            }
        }
        self.store.clear();
        self.job = None;
        self.stream_in = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_documents_of_both_shapes_parse() {
        let j = parse_execution(&json!({"jobId": "j1", "jobDocument":
            {"operation": "fota", "url": "https://h/fw", "sha256": "AB", "size": 5}}))
        .unwrap();
        assert_eq!(j.url, "https://h/fw");
        assert_eq!(j.sha256.as_deref(), Some("ab"));
        assert_eq!(j.size, Some(5));
        let j = parse_execution(&json!({"jobId": "j2", "jobDocument":
            {"operation": "ota", "fileUrl": "https://h/x?sig=1"}}))
        .unwrap();
        assert_eq!((j.url.as_str(), j.size), ("https://h/x?sig=1", None));
        let e = parse_execution(&json!({"jobId": "j3", "jobDocument": {"operation": "reboot"}}))
            .unwrap_err();
        assert!(e.contains("not fota"), "{e}");
        assert!(parse_execution(&json!({"jobDocument": {}})).is_err());
    }
}
