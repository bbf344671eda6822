//! LwM2M JSON (11543), OMA LwM2M 1.0 TS §6.4.4 / 1.1 Core TS §7.4.5:
//! `{"bn":"/3/0/","e":[{"n":"0","sv":"Open Mobile Alliance"},{"n":"6/0","v":1}]}`.
//!
//! Names are `bn` + `n`. Values: `v` numbers (Integer, Float, Time ...), `sv`
//! strings (and opaque, base64), `bv` booleans, `ov` object links `"oid:iid"`.
//! As a tolerance for 1.0 clients that send `"bn":"/3/0"` with `"n":"1"`, a
//! `/` is inserted between a base name and a name when neither has one.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::{Map, Value as Json};

use super::base64::{self, STANDARD};
use super::json_offsets::{line_col_offset, object_starts};
use super::{
    ContentFormat, DecodeError, DecodeErrorKind, EncodeError, check_duplicates, finish_record,
};
use crate::object::{Registry, ResourceType};
use crate::path::ObjectPath;
use crate::value::{Record, Records, Value};

const F: ContentFormat = ContentFormat::Lwm2mJson;

/// Encode records as LwM2M JSON.
pub fn encode(base: &ObjectPath, records: &[Record]) -> Result<Vec<u8>, EncodeError> {
    let bn = if records.len() == 1 && records[0].path == *base {
        base.to_string()
    } else if base.is_root() {
        String::from("/")
    } else {
        alloc::format!("{base}/")
    };
    let mut e = Vec::with_capacity(records.len());
    for r in records {
        let full = r.path.to_string();
        let n = full.strip_prefix(bn.as_str()).unwrap_or(&full);
        let mut m = Map::new();
        if !n.is_empty() {
            m.insert("n".into(), Json::String(n.to_string()));
        }
        let (k, v) = match &r.value {
            Value::String(s) | Value::CoreLink(s) => ("sv", Json::String(s.clone())),
            Value::Opaque(d) => ("sv", Json::String(base64::encode(d, STANDARD))),
            Value::Boolean(b) => ("bv", Json::Bool(*b)),
            Value::ObjectLink(o, i) => ("ov", Json::String(alloc::format!("{o}:{i}"))),
            Value::Integer(i) | Value::Time(i) => ("v", Json::from(*i)),
            Value::UnsignedInteger(u) => ("v", Json::from(*u)),
            Value::Float(f) => (
                "v",
                Json::Number(serde_json::Number::from_f64(*f).ok_or_else(|| {
                    EncodeError::Unrepresentable {
                        path: r.path,
                        what: "a non-finite float in JSON".into(),
                    }
                })?),
            ),
        };
        m.insert(k.into(), v);
        e.push(Json::Object(m));
    }
    let mut root = Map::new();
    root.insert("bn".into(), Json::String(bn));
    root.insert("e".into(), Json::Array(e));
    serde_json::to_vec(&Json::Object(root)).map_err(|x| EncodeError::Unrepresentable {
        path: *base,
        what: x.to_string(),
    })
}

/// Decode an LwM2M JSON payload for `base`.
pub fn decode(
    base: &ObjectPath,
    bytes: &[u8],
    registry: &Registry,
) -> Result<Records, DecodeError> {
    let doc: Json = serde_json::from_slice(bytes).map_err(|e| {
        DecodeError::new(
            F,
            line_col_offset(bytes, e.line(), e.column()),
            DecodeErrorKind::Syntax(e.to_string()),
        )
    })?;
    let Json::Object(root) = doc else {
        return Err(DecodeError::new(
            F,
            0,
            DecodeErrorKind::Invalid("payload must be a JSON object".into()),
        ));
    };
    let bn = match root.get("bn") {
        None => None,
        Some(Json::String(s)) => Some(s.as_str()),
        Some(_) => {
            return Err(DecodeError::new(
                F,
                0,
                DecodeErrorKind::Invalid("bn must be a string".into()),
            ));
        }
    };
    for k in root.keys() {
        if !matches!(k.as_str(), "bn" | "bt" | "e") {
            return Err(DecodeError::new(
                F,
                0,
                DecodeErrorKind::Invalid(alloc::format!("unknown field {k:?}")),
            ));
        }
    }
    let Some(Json::Array(entries)) = root.get("e") else {
        return Err(DecodeError::new(
            F,
            0,
            DecodeErrorKind::Invalid("missing \"e\" array".into()),
        ));
    };
    let starts = object_starts(bytes, 2);
    let mut out = Vec::with_capacity(entries.len());
    let mut offs = Vec::with_capacity(entries.len());
    for (idx, item) in entries.iter().enumerate() {
        let at = starts.get(idx).copied().unwrap_or(0);
        let err = |k: DecodeErrorKind| DecodeError::new(F, at, k);
        let Json::Object(m) = item else {
            return Err(err(DecodeErrorKind::Invalid(alloc::format!(
                "entry {idx} is not an object"
            ))));
        };
        let n = match m.get("n") {
            None => None,
            Some(Json::String(s)) => Some(s.as_str()),
            Some(_) => {
                return Err(err(DecodeErrorKind::Invalid(alloc::format!(
                    "entry {idx}: n must be a string"
                ))));
            }
        };
        if bn.is_none() && n.is_none() {
            return Err(err(DecodeErrorKind::MissingName(idx)));
        }
        let mut name = String::from(bn.unwrap_or(""));
        if let Some(n) = n {
            if !name.is_empty() && !name.ends_with('/') && !n.starts_with('/') && !n.is_empty() {
                name.push('/');
            }
            name.push_str(n);
        }
        let path =
            ObjectPath::parse(&name).map_err(|e| err(DecodeErrorKind::BadPath(e.to_string())))?;
        let kind = registry.kind_at(&path);
        let mut value: Option<Value> = None;
        for (k, v) in m {
            let bad = || {
                err(DecodeErrorKind::Invalid(alloc::format!(
                    "entry {idx}: {k:?} has the wrong type"
                )))
            };
            let x = match k.as_str() {
                "n" | "t" => continue,
                "v" => {
                    let num = v.as_number().ok_or_else(bad)?;
                    if let Some(i) = num.as_i64() {
                        Value::Integer(i)
                    } else if let Some(u) = num.as_u64() {
                        Value::UnsignedInteger(u)
                    } else {
                        Value::Float(num.as_f64().ok_or_else(bad)?)
                    }
                }
                "sv" => {
                    let s = v.as_str().ok_or_else(bad)?;
                    match kind {
                        Some(ResourceType::Opaque) => {
                            Value::Opaque(base64::decode(s.as_bytes(), STANDARD).map_err(|_| {
                                err(DecodeErrorKind::Invalid(alloc::format!(
                                    "entry {idx}: opaque sv is not base64"
                                )))
                            })?)
                        }
                        _ => Value::String(s.to_string()),
                    }
                }
                "bv" => Value::Boolean(v.as_bool().ok_or_else(bad)?),
                "ov" => Value::from_text(ResourceType::ObjectLink, v.as_str().ok_or_else(bad)?)
                    .map_err(|e| super::value_error(F, at, &path, e))?,
                other => {
                    return Err(err(DecodeErrorKind::Invalid(alloc::format!(
                        "entry {idx}: unknown field {other:?}"
                    ))));
                }
            };
            if value.replace(x).is_some() {
                return Err(err(DecodeErrorKind::Invalid(alloc::format!(
                    "entry {idx}: more than one value"
                ))));
            }
        }
        let value = value.ok_or_else(|| err(DecodeErrorKind::MissingValue(idx)))?;
        out.push(finish_record(F, at, base, path, value, registry)?);
        offs.push(at);
    }
    check_duplicates(F, &out, &offs)?;
    Ok(out)
}
