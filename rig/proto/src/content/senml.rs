//! SenML JSON (110) and SenML CBOR (112): RFC 8428 as LwM2M 1.1 Core TS
//! §7.4.4/§7.4.5 uses it.
//!
//! A record's name is the base name (`bn`, which stays in force until the next
//! `bn`) followed by the record's `n`; it must be an LwM2M path at resource or
//! resource-instance level. Values: `v` numbers, `vs` strings, `vb` booleans,
//! `vd` opaque data (base64url without padding in JSON, a byte string in CBOR),
//! `vlo` object links (`"oid:iid"`, an LwM2M extension). SenML CBOR uses the
//! RFC 8428 §6 integer labels (bn -2, bt -3, n 0, v 2, vs 3, vb 4, t 6, vd 8)
//! and the text label `"vlo"`. Times (`bt`, `t`) are accepted and ignored.
//!
//! Every level is allowed, including composite payloads for base `/`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use minicbor::data::Type;
use serde_json::{Map, Number, Value as Json};

use super::base64::{self, URL_NO_PAD};
use super::json_offsets::{line_col_offset, object_starts};
use super::{
    ContentFormat, DecodeError, DecodeErrorKind, EncodeError, check_duplicates, finish_record,
};
use crate::object::Registry;
use crate::path::ObjectPath;
use crate::value::{Record, Records, Value};

/// A raw SenML value before typing against the registry.
enum Raw {
    Num(Value),
    Str(String),
    Bool(bool),
    Data(Vec<u8>),
    Link(String),
}

/// Split each record's path into (bn, n) strings: bn on the first record only.
fn names(base: &ObjectPath, records: &[Record]) -> Vec<(Option<String>, Option<String>)> {
    let bn = if base.is_root() {
        None
    } else if records.len() == 1 && records[0].path == *base {
        Some(base.to_string())
    } else {
        Some(alloc::format!("{base}/"))
    };
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let full = r.path.to_string();
            let n = match &bn {
                Some(b) => full.strip_prefix(b.as_str()).unwrap_or(&full).to_string(),
                None => full,
            };
            let b = if i == 0 { bn.clone() } else { None };
            (b, if n.is_empty() { None } else { Some(n) })
        })
        .collect()
}

fn json_number(path: &ObjectPath, v: &Value) -> Result<Number, EncodeError> {
    Ok(match v {
        Value::Integer(i) | Value::Time(i) => Number::from(*i),
        Value::UnsignedInteger(u) => Number::from(*u),
        Value::Float(f) => Number::from_f64(*f).ok_or_else(|| EncodeError::Unrepresentable {
            path: *path,
            what: "a non-finite float in JSON".into(),
        })?,
        _ => {
            return Err(EncodeError::Unrepresentable {
                path: *path,
                what: "a non-number".into(),
            });
        }
    })
}

/// Encode records as SenML JSON.
pub fn encode_json(base: &ObjectPath, records: &[Record]) -> Result<Vec<u8>, EncodeError> {
    let mut arr = Vec::with_capacity(records.len());
    for (r, (bn, n)) in records.iter().zip(names(base, records)) {
        let mut m = Map::new();
        if let Some(bn) = bn {
            m.insert("bn".into(), Json::String(bn));
        }
        if let Some(n) = n {
            m.insert("n".into(), Json::String(n));
        }
        let (k, v) = match &r.value {
            Value::String(s) | Value::CoreLink(s) => ("vs", Json::String(s.clone())),
            Value::Boolean(b) => ("vb", Json::Bool(*b)),
            Value::Opaque(d) => ("vd", Json::String(base64::encode(d, URL_NO_PAD))),
            Value::ObjectLink(o, i) => ("vlo", Json::String(alloc::format!("{o}:{i}"))),
            num => ("v", Json::Number(json_number(&r.path, num)?)),
        };
        m.insert(k.into(), v);
        arr.push(Json::Object(m));
    }
    serde_json::to_vec(&Json::Array(arr)).map_err(|e| EncodeError::Unrepresentable {
        path: *base,
        what: e.to_string(),
    })
}

/// Decode a SenML JSON payload for `base`.
pub fn decode_json(
    base: &ObjectPath,
    bytes: &[u8],
    registry: &Registry,
) -> Result<Records, DecodeError> {
    const F: ContentFormat = ContentFormat::SenmlJson;
    let doc: Json = serde_json::from_slice(bytes).map_err(|e| {
        DecodeError::new(
            F,
            line_col_offset(bytes, e.line(), e.column()),
            DecodeErrorKind::Syntax(e.to_string()),
        )
    })?;
    let Json::Array(items) = doc else {
        return Err(DecodeError::new(
            F,
            0,
            DecodeErrorKind::Invalid("SenML pack must be a JSON array".into()),
        ));
    };
    let starts = object_starts(bytes, 1);
    let mut bn: Option<String> = None;
    let mut out = Vec::with_capacity(items.len());
    let mut offs = Vec::with_capacity(items.len());
    for (idx, item) in items.iter().enumerate() {
        let at = starts.get(idx).copied().unwrap_or(0);
        let err = |k: DecodeErrorKind| DecodeError::new(F, at, k);
        let Json::Object(m) = item else {
            return Err(err(DecodeErrorKind::Invalid(alloc::format!(
                "record {idx} is not a JSON object"
            ))));
        };
        let mut n: Option<&str> = None;
        let mut raw: Option<Raw> = None;
        for (k, v) in m {
            let bad = || {
                err(DecodeErrorKind::Invalid(alloc::format!(
                    "record {idx}: field {k:?} has the wrong type"
                )))
            };
            let set = |raw: &mut Option<Raw>, x: Raw| {
                if raw.is_some() {
                    Err(err(DecodeErrorKind::Invalid(alloc::format!(
                        "record {idx}: more than one value field"
                    ))))
                } else {
                    *raw = Some(x);
                    Ok(())
                }
            };
            match k.as_str() {
                "bn" => bn = Some(v.as_str().ok_or_else(bad)?.to_string()),
                "n" => n = Some(v.as_str().ok_or_else(bad)?),
                "bt" | "t" | "bver" | "u" | "bu" | "s" | "ut" => {}
                "v" => {
                    let num = v.as_number().ok_or_else(bad)?;
                    let val = if let Some(i) = num.as_i64() {
                        Value::Integer(i)
                    } else if let Some(u) = num.as_u64() {
                        Value::UnsignedInteger(u)
                    } else {
                        Value::Float(num.as_f64().ok_or_else(bad)?)
                    };
                    set(&mut raw, Raw::Num(val))?;
                }
                "vs" => set(&mut raw, Raw::Str(v.as_str().ok_or_else(bad)?.to_string()))?,
                "vb" => set(&mut raw, Raw::Bool(v.as_bool().ok_or_else(bad)?))?,
                "vd" => {
                    let s = v.as_str().ok_or_else(bad)?;
                    let d = base64::decode(s.as_bytes(), URL_NO_PAD).map_err(|_| {
                        err(DecodeErrorKind::Invalid(alloc::format!(
                            "record {idx}: vd is not base64url"
                        )))
                    })?;
                    set(&mut raw, Raw::Data(d))?;
                }
                "vlo" => set(&mut raw, Raw::Link(v.as_str().ok_or_else(bad)?.to_string()))?,
                other if other.ends_with('_') => {
                    return Err(err(DecodeErrorKind::Invalid(alloc::format!(
                        "record {idx}: mandatory-to-understand field {other:?} (RFC 8428 §4.4)"
                    ))));
                }
                _ => {}
            }
        }
        let rec = record(F, at, idx, base, bn.as_deref(), n, raw, registry)?;
        out.push(rec);
        offs.push(at);
    }
    check_duplicates(F, &out, &offs)?;
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn record(
    f: ContentFormat,
    at: usize,
    idx: usize,
    base: &ObjectPath,
    bn: Option<&str>,
    n: Option<&str>,
    raw: Option<Raw>,
    registry: &Registry,
) -> Result<Record, DecodeError> {
    let err = |k: DecodeErrorKind| DecodeError::new(f, at, k);
    if bn.is_none() && n.is_none() {
        return Err(err(DecodeErrorKind::MissingName(idx)));
    }
    let mut name = String::from(bn.unwrap_or(""));
    name.push_str(n.unwrap_or(""));
    let path =
        ObjectPath::parse(&name).map_err(|e| err(DecodeErrorKind::BadPath(e.to_string())))?;
    let raw = raw.ok_or_else(|| err(DecodeErrorKind::MissingValue(idx)))?;
    let value = match raw {
        Raw::Num(v) => v,
        Raw::Str(s) => Value::String(s),
        Raw::Bool(b) => Value::Boolean(b),
        Raw::Data(d) => Value::Opaque(d),
        Raw::Link(s) => Value::from_text(crate::object::ResourceType::ObjectLink, &s)
            .map_err(|e| super::value_error(f, at, &path, e))?,
    };
    finish_record(f, at, base, path, value, registry)
}

/// Encode records as SenML CBOR.
pub fn encode_cbor(base: &ObjectPath, records: &[Record]) -> Result<Vec<u8>, EncodeError> {
    let mut e = minicbor::Encoder::new(Vec::new());
    let io = |_| EncodeError::Unrepresentable {
        path: *base,
        what: "CBOR".into(),
    };
    e.array(records.len() as u64).map_err(io)?;
    for (r, (bn, n)) in records.iter().zip(names(base, records)) {
        let len = 1 + u64::from(bn.is_some()) + u64::from(n.is_some());
        e.map(len).map_err(io)?;
        if let Some(bn) = &bn {
            e.i8(-2).map_err(io)?.str(bn).map_err(io)?;
        }
        if let Some(n) = &n {
            e.u8(0).map_err(io)?.str(n).map_err(io)?;
        }
        super::cbor::write_senml_value(&mut e, &r.value).map_err(io)?;
    }
    Ok(e.into_writer())
}

/// Decode a SenML CBOR payload for `base`.
pub fn decode_cbor(
    base: &ObjectPath,
    bytes: &[u8],
    registry: &Registry,
) -> Result<Records, DecodeError> {
    const F: ContentFormat = ContentFormat::SenmlCbor;
    let mut d = minicbor::Decoder::new(bytes);
    let cerr = |d: &minicbor::Decoder<'_>, e: minicbor::decode::Error| {
        DecodeError::new(F, d.position(), DecodeErrorKind::Syntax(e.to_string()))
    };
    let n_items = match d.array() {
        Ok(Some(n)) => n,
        Ok(None) => {
            return Err(DecodeError::new(
                F,
                0,
                DecodeErrorKind::Invalid("indefinite-length pack not supported".into()),
            ));
        }
        Err(e) => return Err(cerr(&d, e)),
    };
    let mut bn: Option<String> = None;
    let mut out = Vec::new();
    let mut offs = Vec::new();
    for idx in 0..n_items {
        let at = d.position();
        let n_fields = match d.map() {
            Ok(Some(n)) => n,
            Ok(None) => {
                return Err(DecodeError::new(
                    F,
                    at,
                    DecodeErrorKind::Invalid("indefinite-length record".into()),
                ));
            }
            Err(e) => return Err(cerr(&d, e)),
        };
        let mut n: Option<String> = None;
        let mut raw: Option<Raw> = None;
        for _ in 0..n_fields {
            let kpos = d.position();
            let key: Key = match d.datatype().map_err(|e| cerr(&d, e))? {
                Type::String => match d.str().map_err(|e| cerr(&d, e))? {
                    "vlo" => Key::Vlo,
                    _ => Key::Other,
                },
                Type::U8
                | Type::U16
                | Type::U32
                | Type::U64
                | Type::I8
                | Type::I16
                | Type::I32
                | Type::I64
                | Type::Int => {
                    let k = d.i64().map_err(|e| cerr(&d, e))?;
                    Key::Label(k)
                }
                t => {
                    return Err(DecodeError::new(
                        F,
                        kpos,
                        DecodeErrorKind::Invalid(alloc::format!("record {idx}: label of type {t}")),
                    ));
                }
            };
            let vpos = d.position();
            let wrong = |what: &str| {
                DecodeError::new(
                    F,
                    vpos,
                    DecodeErrorKind::Invalid(alloc::format!("record {idx}: {what}")),
                )
            };
            let new_raw = match key {
                Key::Label(-2) => {
                    bn = Some(d.str().map_err(|e| cerr(&d, e))?.to_string());
                    None
                }
                Key::Label(0) => {
                    n = Some(d.str().map_err(|e| cerr(&d, e))?.to_string());
                    None
                }
                Key::Label(2) => {
                    // A number; a tag 1/tag 0 date/time is accepted too (LwM2M Table C.2).
                    let tagged = d.datatype().map_err(|e| cerr(&d, e))? == Type::Tag;
                    let v = if tagged {
                        super::cbor::read_value(&mut d, None)
                            .map_err(|e| cerr(&d, e))?
                            .map_err(&wrong)?
                    } else {
                        super::cbor::read_number(&mut d)
                            .map_err(|e| cerr(&d, e))?
                            .ok_or_else(|| wrong("v is not a number"))?
                    };
                    Some(Raw::Num(v))
                }
                Key::Label(3) => Some(Raw::Str(d.str().map_err(|e| cerr(&d, e))?.to_string())),
                Key::Label(4) => Some(Raw::Bool(d.bool().map_err(|e| cerr(&d, e))?)),
                Key::Label(8) => Some(Raw::Data(d.bytes().map_err(|e| cerr(&d, e))?.to_vec())),
                Key::Vlo => Some(Raw::Link(d.str().map_err(|e| cerr(&d, e))?.to_string())),
                Key::Label(k) if k < -3 || k == -1 => {
                    // bver (-1) and other negative base labels: skip.
                    d.skip().map_err(|e| cerr(&d, e))?;
                    None
                }
                Key::Label(_) | Key::Other => {
                    d.skip().map_err(|e| cerr(&d, e))?;
                    None
                }
            };
            if let Some(x) = new_raw {
                if raw.is_some() {
                    return Err(wrong("more than one value field"));
                }
                raw = Some(x);
            }
        }
        let rec = record(
            F,
            at,
            idx as usize,
            base,
            bn.as_deref(),
            n.as_deref(),
            raw,
            registry,
        )?;
        out.push(rec);
        offs.push(at);
    }
    if d.position() != bytes.len() {
        return Err(DecodeError::new(
            F,
            d.position(),
            DecodeErrorKind::Trailing(bytes.len() - d.position()),
        ));
    }
    check_duplicates(F, &out, &offs)?;
    Ok(out)
}

enum Key {
    Label(i64),
    Vlo,
    Other,
}

/// Encode a list of paths (the body of a Read-Composite or Observe-Composite
/// request, LwM2M 1.1 Core TS §6.3.8/§6.4.x): records with only a name.
pub fn encode_paths(format: ContentFormat, paths: &[ObjectPath]) -> Result<Vec<u8>, EncodeError> {
    match format {
        ContentFormat::SenmlJson => {
            let arr: Vec<Json> = paths
                .iter()
                .map(|p| {
                    let mut m = Map::new();
                    m.insert("n".into(), Json::String(p.to_string()));
                    Json::Object(m)
                })
                .collect();
            serde_json::to_vec(&Json::Array(arr)).map_err(|e| EncodeError::Unrepresentable {
                path: ObjectPath::Root,
                what: e.to_string(),
            })
        }
        ContentFormat::SenmlCbor => {
            let mut e = minicbor::Encoder::new(Vec::new());
            let io = |_| EncodeError::Unrepresentable {
                path: ObjectPath::Root,
                what: "CBOR".into(),
            };
            e.array(paths.len() as u64).map_err(io)?;
            for p in paths {
                e.map(1)
                    .map_err(io)?
                    .u8(0)
                    .map_err(io)?
                    .str(&p.to_string())
                    .map_err(io)?;
            }
            Ok(e.into_writer())
        }
        other => Err(EncodeError::UnsupportedLevel {
            format: other,
            base: ObjectPath::Root,
        }),
    }
}

/// Decode the body of a Read-Composite / Observe-Composite request: SenML
/// records that carry only a name (`bn` + `n`), at any level including `/`.
/// A record with a value is rejected: that is a Write-Composite body.
pub fn decode_paths(format: ContentFormat, bytes: &[u8]) -> Result<Vec<ObjectPath>, DecodeError> {
    let mut names: Vec<(usize, Option<String>, Option<String>)> = Vec::new();
    match format {
        ContentFormat::SenmlJson => {
            let doc: Json = serde_json::from_slice(bytes).map_err(|e| {
                DecodeError::new(
                    format,
                    line_col_offset(bytes, e.line(), e.column()),
                    DecodeErrorKind::Syntax(e.to_string()),
                )
            })?;
            let Json::Array(items) = doc else {
                return Err(DecodeError::new(
                    format,
                    0,
                    DecodeErrorKind::Invalid("SenML pack must be a JSON array".into()),
                ));
            };
            let starts = object_starts(bytes, 1);
            for (idx, item) in items.iter().enumerate() {
                let at = starts.get(idx).copied().unwrap_or(0);
                let err = |m: String| DecodeError::new(format, at, DecodeErrorKind::Invalid(m));
                let Json::Object(m) = item else {
                    return Err(err(alloc::format!("record {idx} is not a JSON object")));
                };
                let mut bn = None;
                let mut n = None;
                for (k, v) in m {
                    match k.as_str() {
                        "bn" => {
                            bn = Some(
                                v.as_str()
                                    .ok_or_else(|| {
                                        err(alloc::format!("record {idx}: bn must be a string"))
                                    })?
                                    .to_string(),
                            )
                        }
                        "n" => {
                            n = Some(
                                v.as_str()
                                    .ok_or_else(|| {
                                        err(alloc::format!("record {idx}: n must be a string"))
                                    })?
                                    .to_string(),
                            )
                        }
                        "v" | "vs" | "vb" | "vd" | "vlo" => {
                            return Err(err(alloc::format!(
                                "record {idx}: a composite request name carries no value"
                            )));
                        }
                        _ => {}
                    }
                }
                names.push((at, bn, n));
            }
        }
        ContentFormat::SenmlCbor => {
            let mut d = minicbor::Decoder::new(bytes);
            let cerr = |d: &minicbor::Decoder<'_>, e: minicbor::decode::Error| {
                DecodeError::new(format, d.position(), DecodeErrorKind::Syntax(e.to_string()))
            };
            let n_items = match d.array() {
                Ok(Some(n)) => n,
                Ok(None) => {
                    return Err(DecodeError::new(
                        format,
                        0,
                        DecodeErrorKind::Invalid("indefinite-length pack".into()),
                    ));
                }
                Err(e) => return Err(cerr(&d, e)),
            };
            for idx in 0..n_items {
                let at = d.position();
                let n_fields = match d.map() {
                    Ok(Some(n)) => n,
                    Ok(None) => {
                        return Err(DecodeError::new(
                            format,
                            at,
                            DecodeErrorKind::Invalid("indefinite-length record".into()),
                        ));
                    }
                    Err(e) => return Err(cerr(&d, e)),
                };
                let mut bn = None;
                let mut n = None;
                for _ in 0..n_fields {
                    let key = match d.datatype().map_err(|e| cerr(&d, e))? {
                        Type::String => {
                            d.str().map_err(|e| cerr(&d, e))?;
                            None
                        }
                        _ => Some(d.i64().map_err(|e| cerr(&d, e))?),
                    };
                    match key {
                        Some(-2) => bn = Some(d.str().map_err(|e| cerr(&d, e))?.to_string()),
                        Some(0) => n = Some(d.str().map_err(|e| cerr(&d, e))?.to_string()),
                        Some(2 | 3 | 4 | 8) | None => {
                            return Err(DecodeError::new(
                                format,
                                at,
                                DecodeErrorKind::Invalid(alloc::format!(
                                    "record {idx}: a composite request name carries no value"
                                )),
                            ));
                        }
                        Some(_) => d.skip().map_err(|e| cerr(&d, e))?,
                    }
                }
                names.push((at, bn, n));
            }
            if d.position() != bytes.len() {
                return Err(DecodeError::new(
                    format,
                    d.position(),
                    DecodeErrorKind::Trailing(bytes.len() - d.position()),
                ));
            }
        }
        _ => {
            return Err(DecodeError::new(
                format,
                0,
                DecodeErrorKind::UnsupportedLevel(ObjectPath::Root),
            ));
        }
    }
    let mut bn: Option<String> = None;
    let mut out = Vec::with_capacity(names.len());
    for (idx, (at, b, n)) in names.into_iter().enumerate() {
        if b.is_some() {
            bn = b;
        }
        if bn.is_none() && n.is_none() {
            return Err(DecodeError::new(
                format,
                at,
                DecodeErrorKind::MissingName(idx),
            ));
        }
        let mut name = bn.clone().unwrap_or_default();
        name.push_str(n.as_deref().unwrap_or(""));
        let p = ObjectPath::parse(&name)
            .map_err(|e| DecodeError::new(format, at, DecodeErrorKind::BadPath(e.to_string())))?;
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_request_paths() {
        let paths = [
            ObjectPath::instance(3, 0),
            ObjectPath::resource(1, 0, 1),
            ObjectPath::Root,
        ];
        for f in [ContentFormat::SenmlJson, ContentFormat::SenmlCbor] {
            let b = encode_paths(f, &paths).unwrap();
            assert_eq!(decode_paths(f, &b).unwrap(), paths);
        }
        assert_eq!(
            encode_paths(ContentFormat::SenmlJson, &paths[..1]).unwrap(),
            br#"[{"n":"/3/0"}]"#
        );
        let e = decode_paths(
            ContentFormat::SenmlJson,
            br#"[{"n":"/3/0"},{"n":"/1/0/1","v":5}]"#,
        )
        .unwrap_err();
        assert_eq!(e.offset, 14);
        let got = decode_paths(
            ContentFormat::SenmlJson,
            br#"[{"bn":"/3/0/","n":"1"},{"n":"2"}]"#,
        )
        .unwrap();
        assert_eq!(
            got,
            [ObjectPath::resource(3, 0, 1), ObjectPath::resource(3, 0, 2)]
        );
    }
}
