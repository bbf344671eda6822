//! AWS-IoT-like Jobs, sans-IO: job executions per thing, requests in, replies out.
//!
//! Topics are relative to `<root>/things/<thing>/jobs/` (`mqtt-baseline.md` §3):
//! - `notify-next` is published when the next pending execution changes
//!   (a job created for an idle thing, or the current one reaching a terminal status);
//! - `start-next` → `start-next/accepted` with the execution (now `IN_PROGRESS`)
//!   and its `jobDocument`, or with no `execution` when nothing is pending;
//! - `{jobId}/update` → `{jobId}/update/accepted` or `/rejected`
//!   (`ResourceNotFound`, `VersionMismatch` when `expectedVersion` differs,
//!   `InvalidStateTransition` from a terminal status, `InvalidRequest`);
//! - `{jobId}/get` (also `$next`) → `{jobId}/get/accepted` / `rejected`;
//! - `get` → `get/accepted` with `queuedJobs` and `inProgressJobs`.
//!
//! [`presigned_url`] makes an S3-SigV4-looking HTTPS URL of realistic length
//! (600-1,300 characters, as the real ones are with a session token) for OTA
//! job documents ([`ota_job_document`]).

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// A job execution's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Waiting for the device.
    Queued,
    /// Started by the device.
    InProgress,
    /// Terminal: done.
    Succeeded,
    /// Terminal: failed.
    Failed,
    /// Terminal: rejected by the device.
    Rejected,
    /// Terminal: removed by the operator.
    Removed,
    /// Terminal: cancelled by the operator.
    Canceled,
}

impl JobStatus {
    /// The AWS name (`QUEUED`, `IN_PROGRESS`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "QUEUED",
            JobStatus::InProgress => "IN_PROGRESS",
            JobStatus::Succeeded => "SUCCEEDED",
            JobStatus::Failed => "FAILED",
            JobStatus::Rejected => "REJECTED",
            JobStatus::Removed => "REMOVED",
            JobStatus::Canceled => "CANCELED",
        }
    }

    /// Parses an AWS status name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "QUEUED" => JobStatus::Queued,
            "IN_PROGRESS" => JobStatus::InProgress,
            "SUCCEEDED" => JobStatus::Succeeded,
            "FAILED" => JobStatus::Failed,
            "REJECTED" => JobStatus::Rejected,
            "REMOVED" => JobStatus::Removed,
            "CANCELED" => JobStatus::Canceled,
            _ => return None,
        })
    }

    /// Whether the status is final.
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::InProgress)
    }
}

/// One job execution on one thing.
#[derive(Debug, Clone, PartialEq)]
pub struct JobExecution {
    /// The job id.
    pub job_id: String,
    /// The job document (free-form JSON).
    pub document: Value,
    /// Status.
    pub status: JobStatus,
    /// Status details set by the device.
    pub status_details: Map<String, Value>,
    /// Epoch seconds.
    pub queued_at: u64,
    /// Epoch seconds, when it went `IN_PROGRESS`.
    pub started_at: Option<u64>,
    /// Epoch seconds.
    pub last_updated_at: u64,
    /// Increases with every status change.
    pub version_number: u64,
    /// Always 1 here (no re-runs).
    pub execution_number: u64,
}

impl JobExecution {
    fn execution_doc(&self, with_document: bool) -> Value {
        let mut m = Map::new();
        m.insert("jobId".into(), json!(self.job_id));
        m.insert("status".into(), json!(self.status.as_str()));
        if !self.status_details.is_empty() {
            m.insert(
                "statusDetails".into(),
                Value::Object(self.status_details.clone()),
            );
        }
        m.insert("queuedAt".into(), json!(self.queued_at));
        if let Some(s) = self.started_at {
            m.insert("startedAt".into(), json!(s));
        }
        m.insert("lastUpdatedAt".into(), json!(self.last_updated_at));
        m.insert("versionNumber".into(), json!(self.version_number));
        m.insert("executionNumber".into(), json!(self.execution_number));
        if with_document {
            m.insert("jobDocument".into(), self.document.clone());
        }
        Value::Object(m)
    }

    fn summary(&self) -> Value {
        json!({
            "jobId": self.job_id,
            "queuedAt": self.queued_at,
            "lastUpdatedAt": self.last_updated_at,
            "versionNumber": self.version_number,
            "executionNumber": self.execution_number,
        })
    }
}

/// One reply: topic suffix relative to `<root>/things/<thing>/jobs/`, JSON payload.
#[derive(Debug, Clone, PartialEq)]
pub struct JobsReply {
    /// e.g. `notify-next`, `start-next/accepted`, `job-1/update/rejected`.
    pub suffix: String,
    /// The JSON document.
    pub payload: Value,
}

/// Job executions of every thing.
#[derive(Debug, Clone, Default)]
pub struct JobStore {
    things: std::collections::BTreeMap<String, Vec<JobExecution>>,
}

impl JobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The executions of `thing`, oldest first.
    pub fn executions(&self, thing: &str) -> &[JobExecution] {
        self.things.get(thing).map(Vec::as_slice).unwrap_or(&[])
    }

    fn next(&self, thing: &str) -> Option<&JobExecution> {
        let execs = self.things.get(thing)?;
        execs
            .iter()
            .find(|e| e.status == JobStatus::InProgress)
            .or_else(|| execs.iter().find(|e| e.status == JobStatus::Queued))
    }

    fn notify_next(&self, thing: &str, now: u64) -> JobsReply {
        let mut doc = json!({"timestamp": now});
        if let Some(e) = self.next(thing) {
            doc["execution"] = e.execution_doc(true);
        }
        JobsReply {
            suffix: "notify-next".into(),
            payload: doc,
        }
    }

    /// Queues a job for `thing`. Returns `notify-next` if it became the next job.
    /// An existing job id is an error.
    pub fn create(
        &mut self,
        thing: &str,
        job_id: &str,
        document: Value,
        now: u64,
    ) -> Result<Vec<JobsReply>, String> {
        if job_id.is_empty() || job_id.contains(['/', '+', '#', '$']) {
            return Err(format!("invalid job id `{job_id}`"));
        }
        let before = self.next(thing).map(|e| e.job_id.clone());
        let execs = self.things.entry(thing.to_string()).or_default();
        if execs.iter().any(|e| e.job_id == job_id) {
            return Err(format!("job `{job_id}` already exists for thing `{thing}`"));
        }
        execs.push(JobExecution {
            job_id: job_id.to_string(),
            document,
            status: JobStatus::Queued,
            status_details: Map::new(),
            queued_at: now,
            started_at: None,
            last_updated_at: now,
            version_number: 1,
            execution_number: 1,
        });
        let after = self.next(thing).map(|e| e.job_id.clone());
        Ok(if before != after {
            vec![self.notify_next(thing, now)]
        } else {
            vec![]
        })
    }

    /// Handles a device request on `<root>/things/<thing>/jobs/<rest>`.
    /// `rest` is e.g. `start-next`, `get`, `job-1/update`, `$next/get`.
    /// Returns `None` if `rest` is no request topic.
    pub fn handle(
        &mut self,
        thing: &str,
        rest: &str,
        payload: &[u8],
        now: u64,
    ) -> Option<Vec<JobsReply>> {
        let levels: Vec<&str> = rest.split('/').collect();
        let parsed: Result<Map<String, Value>, ()> = if payload.is_empty() {
            Ok(Map::new())
        } else {
            match serde_json::from_slice(payload) {
                Ok(Value::Object(m)) => Ok(m),
                _ => Err(()),
            }
        };
        let (reply_base, kind) = match levels.as_slice() {
            ["start-next"] => ("start-next".to_string(), Kind::StartNext),
            ["get"] => ("get".to_string(), Kind::List),
            [job, "get"] => (format!("{job}/get"), Kind::Describe(job.to_string())),
            [job, "update"] => (format!("{job}/update"), Kind::Update(job.to_string())),
            _ => return None,
        };
        let Ok(req) = parsed else {
            return Some(vec![reject(
                &reply_base,
                "InvalidRequest",
                "Payload is not a JSON object",
                None,
                now,
            )]);
        };
        let token = req.get("clientToken").cloned();
        Some(match kind {
            Kind::List => {
                let execs = self.executions(thing);
                let pick = |s: JobStatus| -> Vec<Value> {
                    execs
                        .iter()
                        .filter(|e| e.status == s)
                        .map(JobExecution::summary)
                        .collect()
                };
                let mut doc = json!({
                    "queuedJobs": pick(JobStatus::Queued),
                    "inProgressJobs": pick(JobStatus::InProgress),
                    "timestamp": now,
                });
                add_token(&mut doc, token);
                vec![JobsReply {
                    suffix: "get/accepted".into(),
                    payload: doc,
                }]
            }
            Kind::Describe(job) => {
                let with_doc = req
                    .get("includeJobDocument")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                let found = if job == "$next" {
                    self.next(thing)
                } else {
                    self.executions(thing).iter().find(|e| e.job_id == job)
                };
                match found {
                    Some(e) => {
                        let mut doc =
                            json!({"execution": e.execution_doc(with_doc), "timestamp": now});
                        add_token(&mut doc, token);
                        vec![JobsReply {
                            suffix: format!("{reply_base}/accepted"),
                            payload: doc,
                        }]
                    }
                    None if job == "$next" => {
                        let mut doc = json!({"timestamp": now});
                        add_token(&mut doc, token);
                        vec![JobsReply {
                            suffix: format!("{reply_base}/accepted"),
                            payload: doc,
                        }]
                    }
                    None => vec![reject(
                        &reply_base,
                        "ResourceNotFound",
                        &format!("Job execution {job} not found"),
                        token,
                        now,
                    )],
                }
            }
            Kind::StartNext => {
                let details = req.get("statusDetails").and_then(Value::as_object).cloned();
                let next_id = self.next(thing).map(|e| e.job_id.clone());
                let mut doc = json!({"timestamp": now});
                if let Some(id) = next_id
                    && let Some(e) = self
                        .things
                        .get_mut(thing)
                        .and_then(|v| v.iter_mut().find(|e| e.job_id == id))
                {
                    if e.status == JobStatus::Queued {
                        e.status = JobStatus::InProgress;
                        e.started_at = Some(now);
                        e.last_updated_at = now;
                        e.version_number += 1;
                    }
                    if let Some(d) = details {
                        e.status_details = d;
                    }
                    doc["execution"] = e.execution_doc(true);
                }
                add_token(&mut doc, token);
                vec![JobsReply {
                    suffix: "start-next/accepted".into(),
                    payload: doc,
                }]
            }
            Kind::Update(job) => self.update(thing, &job, &reply_base, &req, token, now),
        })
    }

    fn update(
        &mut self,
        thing: &str,
        job: &str,
        base: &str,
        req: &Map<String, Value>,
        token: Option<Value>,
        now: u64,
    ) -> Vec<JobsReply> {
        let Some(status) = req.get("status").and_then(Value::as_str) else {
            return vec![reject(
                base,
                "InvalidRequest",
                "Missing required field: status",
                token,
                now,
            )];
        };
        let Some(status) = JobStatus::parse(status).filter(|s| *s != JobStatus::Queued) else {
            return vec![reject(
                base,
                "InvalidRequest",
                &format!("Invalid status: {status}"),
                token,
                now,
            )];
        };
        let expected = req.get("expectedVersion").map(|v| match v {
            Value::String(s) => s.parse::<u64>().ok(),
            v => v.as_u64(),
        });
        let before = self.next(thing).map(|e| e.job_id.clone());
        let Some(e) = self
            .things
            .get_mut(thing)
            .and_then(|v| v.iter_mut().find(|e| e.job_id == job))
        else {
            return vec![reject(
                base,
                "ResourceNotFound",
                &format!("Job execution {job} not found"),
                token,
                now,
            )];
        };
        if let Some(exp) = expected
            && exp != Some(e.version_number)
        {
            {
                let mut r = reject(
                    base,
                    "VersionMismatch",
                    "The expected version does not match",
                    token,
                    now,
                );
                r.payload["executionState"] =
                    json!({"status": e.status.as_str(), "versionNumber": e.version_number});
                return vec![r];
            }
        }
        if e.status.is_terminal() {
            return vec![reject(
                base,
                "InvalidStateTransition",
                &format!("Job execution is already {}", e.status.as_str()),
                token,
                now,
            )];
        }
        if e.status == JobStatus::Queued && status == JobStatus::InProgress {
            e.started_at = Some(now);
        }
        e.status = status;
        if let Some(d) = req.get("statusDetails").and_then(Value::as_object) {
            e.status_details = d.clone();
        }
        e.last_updated_at = now;
        e.version_number += 1;
        let mut state = json!({"status": e.status.as_str(), "versionNumber": e.version_number});
        if !e.status_details.is_empty() {
            state["statusDetails"] = Value::Object(e.status_details.clone());
        }
        let mut doc = json!({"executionState": state, "timestamp": now});
        if req.get("includeJobDocument").and_then(Value::as_bool) == Some(true) {
            doc["jobDocument"] = e.document.clone();
        }
        add_token(&mut doc, token);
        let mut out = vec![JobsReply {
            suffix: format!("{base}/accepted"),
            payload: doc,
        }];
        let after = self.next(thing).map(|e| e.job_id.clone());
        if before != after {
            out.push(self.notify_next(thing, now));
        }
        out
    }
}

enum Kind {
    StartNext,
    List,
    Describe(String),
    Update(String),
}

fn add_token(doc: &mut Value, token: Option<Value>) {
    if let Some(t) = token {
        doc["clientToken"] = t;
    }
}

fn reject(base: &str, code: &str, message: &str, token: Option<Value>, now: u64) -> JobsReply {
    let mut doc = json!({"code": code, "message": message, "timestamp": now});
    add_token(&mut doc, token);
    JobsReply {
        suffix: format!("{base}/rejected"),
        payload: doc,
    }
}

/// A URL shaped like an S3 SigV4 presigned URL with a session token:
/// `https://<host>/<bucket>/<key>?X-Amz-Algorithm=...&X-Amz-Signature=<64 hex>`.
/// `token_len` sets the length of `X-Amz-Security-Token` (and so of the URL:
/// about 330 characters plus `token_len`). Deterministic for the same inputs.
pub fn presigned_url(
    host_and_bucket: &str,
    key: &str,
    date: &str,
    expires_s: u64,
    token_len: usize,
) -> String {
    let seed = format!("{host_and_bucket}/{key}/{date}/{expires_s}");
    let mut token = String::with_capacity(token_len + 64);
    let mut counter = 0u32;
    while token.len() < token_len {
        let h = Sha256::digest(format!("{seed}/{counter}").as_bytes());
        for b in h {
            // URL-safe, base64-like alphabet
            const ALPHABET: &[u8; 64] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            token.push(ALPHABET[(b & 63) as usize] as char);
        }
        counter += 1;
    }
    token.truncate(token_len);
    let signature: String = Sha256::digest(format!("{seed}/{token}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let day = date.get(..8).unwrap_or(date);
    format!(
        "https://{host_and_bucket}/{key}?X-Amz-Algorithm=AWS4-HMAC-SHA256\
         &X-Amz-Credential=ASIARIGTESTCREDENTIAL%2F{day}%2Fus-east-1%2Fs3%2Faws4_request\
         &X-Amz-Date={date}&X-Amz-Expires={expires_s}&X-Amz-SignedHeaders=host\
         &X-Amz-Security-Token={token}&X-Amz-Signature={signature}"
    )
}

/// An OTA job document: `{"operation":"ota","fileUrl":<url>,"expiresAt":<epoch s>}`.
pub fn ota_job_document(file_url: &str, expires_at: u64) -> Value {
    json!({"operation": "ota", "fileUrl": file_url, "expiresAt": expires_at})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_has_realistic_length_and_shape() {
        let u = presigned_url("s3.local/rig-fw", "fw.bin", "20261127T120000Z", 3600, 600);
        assert!((600..=1300).contains(&u.len()), "{}", u.len());
        assert!(u.starts_with("https://s3.local/rig-fw/fw.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256&"));
        let sig = u.rsplit("X-Amz-Signature=").next().unwrap();
        assert_eq!(sig.len(), 64);
        assert!(sig.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            u,
            presigned_url("s3.local/rig-fw", "fw.bin", "20261127T120000Z", 3600, 600)
        );
    }

    #[test]
    fn job_flow_and_rejections() {
        let mut j = JobStore::new();
        let n = j
            .create("t", "job-1", json!({"operation":"ota"}), 10)
            .unwrap();
        assert_eq!(n[0].suffix, "notify-next");
        assert_eq!(n[0].payload["execution"]["jobId"], "job-1");
        assert!(j.create("t", "job-1", json!({}), 10).is_err());
        let r = j
            .handle("t", "start-next", br#"{"clientToken":"c1"}"#, 11)
            .unwrap();
        assert_eq!(r[0].suffix, "start-next/accepted");
        assert_eq!(r[0].payload["execution"]["status"], "IN_PROGRESS");
        assert_eq!(r[0].payload["execution"]["versionNumber"], 2);
        assert_eq!(r[0].payload["clientToken"], "c1");
        let r = j
            .handle(
                "t",
                "job-1/update",
                br#"{"status":"SUCCEEDED","expectedVersion":"1"}"#,
                12,
            )
            .unwrap();
        assert_eq!(r[0].suffix, "job-1/update/rejected");
        assert_eq!(r[0].payload["code"], "VersionMismatch");
        let r = j
            .handle("t", "job-9/update", br#"{"status":"SUCCEEDED"}"#, 12)
            .unwrap();
        assert_eq!(r[0].payload["code"], "ResourceNotFound");
        let r = j
            .handle(
                "t",
                "job-1/update",
                br#"{"status":"SUCCEEDED","expectedVersion":"2"}"#,
                13,
            )
            .unwrap();
        assert_eq!(r[0].suffix, "job-1/update/accepted");
        assert_eq!(r[0].payload["executionState"]["status"], "SUCCEEDED");
        assert_eq!(r[1].suffix, "notify-next");
        assert!(r[1].payload.get("execution").is_none());
        let r = j
            .handle("t", "job-1/update", br#"{"status":"FAILED"}"#, 14)
            .unwrap();
        assert_eq!(r[0].payload["code"], "InvalidStateTransition");
        let r = j.handle("t", "$next/get", b"", 15).unwrap();
        assert!(r[0].payload.get("execution").is_none());
        let r = j.handle("t", "get", b"not json", 15).unwrap();
        assert_eq!(r[0].payload["code"], "InvalidRequest");
        assert!(j.handle("t", "notify-next", b"", 15).is_none());
    }
}
