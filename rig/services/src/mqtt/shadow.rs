//! The AWS-IoT-like Device Shadow, sans-IO: requests in, replies out.
//!
//! A [`ShadowStore`] keeps one classic (unnamed) shadow per thing and answers
//! `update`, `get` and `delete` requests the way the AWS IoT developer guide
//! describes them (`mqtt-baseline.md` §2). It never touches a socket or a
//! clock: the caller passes the request's payload and the time in epoch
//! seconds, and gets back the replies to publish, each with its topic suffix
//! relative to `<root>/things/<thing>/shadow/`.
//!
//! Rules implemented:
//! - `update`: the payload must be a JSON object with a `state` object holding
//!   `desired` and/or `reported` (each an object or `null`). Keys named are
//!   merged recursively; a `null` leaf deletes the key; `"desired": null`
//!   clears the section. An optional `version` must equal the stored version
//!   or the update is rejected with 409 "Version conflict". Accepted replies
//!   carry the request's state, per-leaf `metadata` `{"timestamp":T}`, the
//!   new `version` (previous + 1), `timestamp` and the `clientToken` if any.
//!   Then `update/documents` (previous and current) and, when the request
//!   touched `desired` and the desired state differs from the reported one,
//!   `update/delta` with only the differing desired keys.
//! - `get`: 404 if no shadow; else state (desired, reported, delta),
//!   metadata, version, timestamp.
//! - `delete`: 404 if no shadow; else `{"version":N,"timestamp":T}`. The
//!   version is kept, so the next update continues from it.
//! - Malformed JSON: 400 "Invalid JSON"; no `state`: 400 "Missing required node: state".
//!
//! Replies are compact JSON (serde_json). Keys come out in sorted order, not
//! AWS's order; the byte count is the same.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// A shadow operation (the topic level after `shadow/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowOp {
    /// `update`
    Update,
    /// `get`
    Get,
    /// `delete`
    Delete,
}

impl ShadowOp {
    /// Parses `update`, `get` or `delete`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "update" => Some(ShadowOp::Update),
            "get" => Some(ShadowOp::Get),
            "delete" => Some(ShadowOp::Delete),
            _ => None,
        }
    }

    /// The topic level.
    pub fn as_str(self) -> &'static str {
        match self {
            ShadowOp::Update => "update",
            ShadowOp::Get => "get",
            ShadowOp::Delete => "delete",
        }
    }
}

/// One reply to publish: topic suffix (e.g. `update/accepted`) and JSON payload.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowReply {
    /// Relative to `<root>/things/<thing>/shadow/`.
    pub suffix: String,
    /// The JSON document.
    pub payload: Value,
}

/// One thing's shadow.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shadow {
    /// `desired` section (an object; empty when absent).
    pub desired: Map<String, Value>,
    /// `reported` section.
    pub reported: Map<String, Value>,
    /// Per-leaf timestamps mirroring `desired`.
    pub desired_meta: Map<String, Value>,
    /// Per-leaf timestamps mirroring `reported`.
    pub reported_meta: Map<String, Value>,
    /// The version, increased by one per accepted update.
    pub version: u64,
    /// False after a delete (the version is kept).
    pub exists: bool,
}

impl Shadow {
    /// The delta: desired keys whose value differs from reported (recursive).
    pub fn delta(&self) -> Map<String, Value> {
        diff(&self.desired, &self.reported)
    }

    fn state_doc(&self, with_delta: bool) -> Value {
        let mut state = Map::new();
        if !self.desired.is_empty() {
            state.insert("desired".into(), Value::Object(self.desired.clone()));
        }
        if !self.reported.is_empty() {
            state.insert("reported".into(), Value::Object(self.reported.clone()));
        }
        if with_delta {
            let d = self.delta();
            if !d.is_empty() {
                state.insert("delta".into(), Value::Object(d));
            }
        }
        Value::Object(state)
    }

    fn meta_doc(&self) -> Value {
        let mut meta = Map::new();
        if !self.desired_meta.is_empty() {
            meta.insert("desired".into(), Value::Object(self.desired_meta.clone()));
        }
        if !self.reported_meta.is_empty() {
            meta.insert("reported".into(), Value::Object(self.reported_meta.clone()));
        }
        Value::Object(meta)
    }

    /// The full document as `get/accepted` shows it (without timestamp and clientToken).
    pub fn document(&self) -> Value {
        json!({"state": self.state_doc(true), "metadata": self.meta_doc(), "version": self.version})
    }

    fn snapshot(&self) -> Value {
        json!({"state": self.state_doc(false), "metadata": self.meta_doc(), "version": self.version})
    }
}

/// All shadows the platform knows, by thing name.
#[derive(Debug, Clone, Default)]
pub struct ShadowStore {
    shadows: BTreeMap<String, Shadow>,
}

impl ShadowStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shadow of `thing`, if it exists.
    pub fn get(&self, thing: &str) -> Option<&Shadow> {
        self.shadows.get(thing).filter(|s| s.exists)
    }

    /// Handles one request; returns the replies in the order to publish them.
    pub fn handle(
        &mut self,
        thing: &str,
        op: ShadowOp,
        payload: &[u8],
        now: u64,
    ) -> Vec<ShadowReply> {
        let request: Option<Value> = if payload.is_empty() {
            Some(Value::Object(Map::new()))
        } else {
            serde_json::from_slice(payload).ok()
        };
        let Some(Value::Object(req)) = request else {
            return vec![rejected(op, 400, "Invalid JSON", None, now)];
        };
        let token = req.get("clientToken").cloned();
        match op {
            ShadowOp::Get => match self.get(thing) {
                None => vec![rejected(
                    op,
                    404,
                    &format!("No shadow exists with name: '{thing}'"),
                    token,
                    now,
                )],
                Some(s) => {
                    let mut doc = s.document();
                    stamp(&mut doc, now, token);
                    vec![ShadowReply {
                        suffix: "get/accepted".into(),
                        payload: doc,
                    }]
                }
            },
            ShadowOp::Delete => match self.shadows.get_mut(thing).filter(|s| s.exists) {
                None => vec![rejected(
                    op,
                    404,
                    &format!("No shadow exists with name: '{thing}'"),
                    token,
                    now,
                )],
                Some(s) => {
                    let version = s.version;
                    *s = Shadow {
                        version,
                        ..Shadow::default()
                    };
                    let mut doc = json!({"version": version});
                    stamp(&mut doc, now, token);
                    vec![ShadowReply {
                        suffix: "delete/accepted".into(),
                        payload: doc,
                    }]
                }
            },
            ShadowOp::Update => self.update(thing, &req, token, now),
        }
    }

    fn update(
        &mut self,
        thing: &str,
        req: &Map<String, Value>,
        token: Option<Value>,
        now: u64,
    ) -> Vec<ShadowReply> {
        let op = ShadowOp::Update;
        let Some(state) = req.get("state") else {
            return vec![rejected(
                op,
                400,
                "Missing required node: state",
                token,
                now,
            )];
        };
        let Value::Object(state) = state else {
            return vec![rejected(
                op,
                400,
                "State node must be an object",
                token,
                now,
            )];
        };
        for (k, v) in state {
            if k != "desired" && k != "reported" {
                return vec![rejected(
                    op,
                    400,
                    &format!("State contains an invalid node: '{k}'"),
                    token,
                    now,
                )];
            }
            if !(v.is_object() || v.is_null()) {
                return vec![rejected(
                    op,
                    400,
                    &format!("Invalid {k} node: must be an object or null"),
                    token,
                    now,
                )];
            }
        }
        let shadow = self.shadows.entry(thing.to_string()).or_default();
        if let Some(v) = req.get("version") {
            let Some(v) = v.as_u64() else {
                return vec![rejected(op, 400, "Invalid version", token, now)];
            };
            if v != shadow.version {
                return vec![rejected(op, 409, "Version conflict", token, now)];
            }
        }
        let previous = shadow.snapshot();
        let mut meta = Map::new();
        for (section, value) in state {
            let (data, data_meta) = if section == "desired" {
                (&mut shadow.desired, &mut shadow.desired_meta)
            } else {
                (&mut shadow.reported, &mut shadow.reported_meta)
            };
            match value {
                Value::Null => {
                    data.clear();
                    data_meta.clear();
                    meta.insert(section.clone(), json!({"timestamp": now}));
                }
                Value::Object(fields) => {
                    merge(data, data_meta, fields, now);
                    meta.insert(section.clone(), metadata_for(fields, now));
                }
                _ => {}
            }
        }
        shadow.version += 1;
        let was_new = !shadow.exists;
        shadow.exists = true;
        let _ = was_new;
        let mut accepted = json!({
            "state": Value::Object(state.clone()),
            "metadata": Value::Object(meta),
            "version": shadow.version,
        });
        stamp(&mut accepted, now, token.clone());
        let mut documents = json!({
            "previous": previous,
            "current": shadow.snapshot(),
        });
        stamp(&mut documents, now, token.clone());
        let mut replies = vec![
            ShadowReply {
                suffix: "update/accepted".into(),
                payload: accepted,
            },
            ShadowReply {
                suffix: "update/documents".into(),
                payload: documents,
            },
        ];
        let delta = shadow.delta();
        if state.contains_key("desired") && !delta.is_empty() {
            let delta_meta: Map<String, Value> = delta
                .keys()
                .filter_map(|k| shadow.desired_meta.get(k).map(|m| (k.clone(), m.clone())))
                .collect();
            let mut d = json!({
                "version": shadow.version,
                "state": Value::Object(delta),
                "metadata": Value::Object(delta_meta),
            });
            stamp(&mut d, now, token);
            replies.push(ShadowReply {
                suffix: "update/delta".into(),
                payload: d,
            });
        }
        replies
    }
}

fn stamp(doc: &mut Value, now: u64, token: Option<Value>) {
    if let Value::Object(m) = doc {
        m.insert("timestamp".into(), json!(now));
        if let Some(t) = token {
            m.insert("clientToken".into(), t);
        }
    }
}

fn rejected(op: ShadowOp, code: u16, message: &str, token: Option<Value>, now: u64) -> ShadowReply {
    let mut doc = json!({"code": code, "message": message});
    stamp(&mut doc, now, token);
    ShadowReply {
        suffix: format!("{}/rejected", op.as_str()),
        payload: doc,
    }
}

/// Metadata mirroring `fields`: `{"timestamp":now}` per leaf.
fn metadata_for(fields: &Map<String, Value>, now: u64) -> Value {
    Value::Object(
        fields
            .iter()
            .map(|(k, v)| {
                let m = match v {
                    Value::Object(inner) if !inner.is_empty() => metadata_for(inner, now),
                    _ => json!({"timestamp": now}),
                };
                (k.clone(), m)
            })
            .collect(),
    )
}

fn merge(
    data: &mut Map<String, Value>,
    meta: &mut Map<String, Value>,
    fields: &Map<String, Value>,
    now: u64,
) {
    for (k, v) in fields {
        match v {
            Value::Null => {
                data.remove(k);
                meta.remove(k);
            }
            Value::Object(inner) if !inner.is_empty() => {
                if !matches!(data.get(k), Some(Value::Object(_))) {
                    data.insert(k.clone(), Value::Object(Map::new()));
                    meta.insert(k.clone(), Value::Object(Map::new()));
                }
                if !matches!(meta.get(k), Some(Value::Object(_))) {
                    meta.insert(k.clone(), Value::Object(Map::new()));
                }
                if let (Some(Value::Object(d)), Some(Value::Object(m))) =
                    (data.get_mut(k), meta.get_mut(k))
                {
                    merge(d, m, inner, now);
                }
            }
            other => {
                data.insert(k.clone(), other.clone());
                meta.insert(k.clone(), json!({"timestamp": now}));
            }
        }
    }
}

fn diff(desired: &Map<String, Value>, reported: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, d) in desired {
        match (d, reported.get(k)) {
            (Value::Object(dm), Some(Value::Object(rm))) => {
                let inner = diff(dm, rm);
                if !inner.is_empty() {
                    out.insert(k.clone(), Value::Object(inner));
                }
            }
            (d, Some(r)) if d == r => {}
            (d, _) => {
                out.insert(k.clone(), d.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(replies: &[ShadowReply], suffix: &str) -> Value {
        replies
            .iter()
            .find(|r| r.suffix == suffix)
            .map(|r| r.payload.clone())
            .unwrap_or_else(|| panic!("no {suffix} in {replies:?}"))
    }

    #[test]
    fn update_then_conflict_then_delta() {
        let mut s = ShadowStore::new();
        let r = s.handle(
            "t",
            ShadowOp::Update,
            br#"{"state":{"reported":{"temp":21}},"clientToken":"a"}"#,
            100,
        );
        let acc = one(&r, "update/accepted");
        assert_eq!(
            serde_json::to_string(&acc).unwrap(),
            r#"{"clientToken":"a","metadata":{"reported":{"temp":{"timestamp":100}}},"state":{"reported":{"temp":21}},"timestamp":100,"version":1}"#
        );
        let docs = one(&r, "update/documents");
        assert_eq!(docs["previous"]["version"], 0);
        assert_eq!(docs["current"]["version"], 1);
        assert!(r.iter().all(|x| x.suffix != "update/delta"));

        let r = s.handle(
            "t",
            ShadowOp::Update,
            br#"{"state":{"desired":{"temp":25}},"version":7,"clientToken":"b"}"#,
            101,
        );
        let rej = one(&r, "update/rejected");
        assert_eq!(rej["code"], 409);
        assert_eq!(rej["clientToken"], "b");
        assert_eq!(s.get("t").unwrap().version, 1);

        let r = s.handle(
            "t",
            ShadowOp::Update,
            br#"{"state":{"desired":{"temp":25,"on":true}},"version":1}"#,
            102,
        );
        let delta = one(&r, "update/delta");
        assert_eq!(delta["state"], json!({"temp":25,"on":true}));
        assert_eq!(delta["version"], 2);
        assert_eq!(delta["metadata"]["temp"]["timestamp"], 102);

        let got = s.handle("t", ShadowOp::Get, b"", 103);
        let doc = one(&got, "get/accepted");
        assert_eq!(doc["state"]["delta"], json!({"temp":25,"on":true}));
        assert_eq!(doc["version"], 2);
    }

    #[test]
    fn null_deletes_and_delete_keeps_version() {
        let mut s = ShadowStore::new();
        s.handle(
            "t",
            ShadowOp::Update,
            br#"{"state":{"reported":{"a":1,"b":{"c":2}}}}"#,
            1,
        );
        s.handle(
            "t",
            ShadowOp::Update,
            br#"{"state":{"reported":{"a":null,"b":{"d":3}}}}"#,
            2,
        );
        let sh = s.get("t").unwrap();
        assert_eq!(
            Value::Object(sh.reported.clone()),
            json!({"b":{"c":2,"d":3}})
        );
        assert_eq!(sh.reported_meta["b"]["d"]["timestamp"], 2);
        let r = s.handle("t", ShadowOp::Delete, b"", 3);
        assert_eq!(one(&r, "delete/accepted")["version"], 2);
        assert!(s.get("t").is_none());
        assert_eq!(
            one(&s.handle("t", ShadowOp::Get, b"", 4), "get/rejected")["code"],
            404
        );
        let r = s.handle(
            "t",
            ShadowOp::Update,
            br#"{"state":{"reported":{"a":1}}}"#,
            5,
        );
        assert_eq!(one(&r, "update/accepted")["version"], 3);
    }

    #[test]
    fn bad_requests_are_rejected_with_400() {
        let mut s = ShadowStore::new();
        for p in [
            &b"{not json"[..],
            br#"[1]"#,
            br#"{"clientToken":"x"}"#,
            br#"{"state":{"foo":{}}}"#,
            br#"{"state":{"desired":3}}"#,
        ] {
            let r = s.handle("t", ShadowOp::Update, p, 9);
            assert_eq!(r.len(), 1, "{}", String::from_utf8_lossy(p));
            assert_eq!(r[0].suffix, "update/rejected");
            assert_eq!(r[0].payload["code"], 400);
        }
        assert!(s.get("t").is_none());
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn section() -> impl Strategy<Value = Map<String, Value>> {
        proptest::collection::btree_map(
            "[a-d]",
            prop_oneof![Just(Value::Null), (0i64..3).prop_map(Value::from)],
            0..4,
        )
        .prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        /// Arbitrary bytes never panic, and always get exactly one reply on a
        /// known topic or an accepted set.
        #[test]
        fn any_payload_is_answered(payload in proptest::collection::vec(any::<u8>(), 0..200), op in 0..3u8) {
            let op = [ShadowOp::Update, ShadowOp::Get, ShadowOp::Delete][op as usize];
            let mut s = ShadowStore::new();
            let r = s.handle("t", op, &payload, 1);
            prop_assert!(!r.is_empty());
            prop_assert!(r[0].suffix.starts_with(op.as_str()));
        }

        /// Over any sequence of updates: the version grows by one per accepted
        /// update, the stored state equals a plain model of the merges, and the
        /// delta is exactly the desired keys whose value differs from reported.
        #[test]
        fn updates_follow_the_model(steps in proptest::collection::vec((any::<bool>(), section()), 1..12)) {
            let mut s = ShadowStore::new();
            let (mut desired, mut reported) = (Map::new(), Map::new());
            for (i, (is_desired, fields)) in steps.iter().enumerate() {
                let key = if *is_desired { "desired" } else { "reported" };
                let req = json!({"state": {key: Value::Object(fields.clone())}, "clientToken": format!("c{i}")});
                let r = s.handle("t", ShadowOp::Update, &serde_json::to_vec(&req).unwrap(), i as u64);
                prop_assert_eq!(&r[0].suffix, "update/accepted");
                prop_assert_eq!(&r[0].payload["version"], &json!(i as u64 + 1));
                prop_assert_eq!(&r[0].payload["clientToken"], &json!(format!("c{i}")));
                let model = if *is_desired { &mut desired } else { &mut reported };
                for (k, v) in fields {
                    if v.is_null() { model.remove(k); } else { model.insert(k.clone(), v.clone()); }
                }
                let sh = s.get("t").unwrap();
                prop_assert_eq!(&sh.desired, &desired);
                prop_assert_eq!(&sh.reported, &reported);
                let expected: Map<String, Value> = desired
                    .iter()
                    .filter(|(k, v)| reported.get(*k) != Some(*v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                prop_assert_eq!(sh.delta(), expected.clone());
                let has_delta = r.iter().any(|x| x.suffix == "update/delta");
                prop_assert_eq!(has_delta, *is_desired && !expected.is_empty());
            }
        }
    }
}
