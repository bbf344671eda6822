//! Loading object definitions from the JSON description format documented in
//! `fixtures/objects/README.md` (one object, or an array of objects).
//!
//! JSON rather than XML: it is a dozen lines per object, `serde_json` already
//! works without `std`, and every error names the field that is wrong.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::{Map, Value as Json};

use super::{ObjectDef, Operations, ResourceDef, ResourceType};

/// Why an object description was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectDefError {
    /// The text is not JSON.
    #[error("object description is not valid JSON: {message} (line {line}, column {column})")]
    Syntax {
        /// serde_json's message.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A field is missing or has the wrong type or value.
    #[error("object description: field `{field}`: {problem}")]
    Field {
        /// Where, e.g. `[0].resources[3].type`.
        field: String,
        /// What is wrong.
        problem: String,
    },
}

fn field_err(field: &str, problem: impl Into<String>) -> ObjectDefError {
    ObjectDefError::Field {
        field: field.to_string(),
        problem: problem.into(),
    }
}

/// Parse one object description or an array of them.
pub fn parse_object_defs(text: &str) -> Result<Vec<ObjectDef>, ObjectDefError> {
    let v: Json = serde_json::from_str(text).map_err(|e| ObjectDefError::Syntax {
        message: e.to_string(),
        line: e.line(),
        column: e.column(),
    })?;
    match v {
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_object(item, &format!("[{i}]")))
            .collect(),
        item => Ok(alloc::vec![parse_object(&item, "")?]),
    }
}

fn obj<'a>(v: &'a Json, at: &str) -> Result<&'a Map<String, Json>, ObjectDefError> {
    v.as_object()
        .ok_or_else(|| field_err(at_or_root(at), "expected a JSON object"))
}

fn at_or_root(at: &str) -> &str {
    if at.is_empty() { "<root>" } else { at }
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

fn check_keys(m: &Map<String, Json>, at: &str, allowed: &[&str]) -> Result<(), ObjectDefError> {
    for k in m.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(field_err(
                &join(at, k),
                format!("unknown field (expected one of {})", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

fn get_u16(m: &Map<String, Json>, at: &str, key: &str) -> Result<u16, ObjectDefError> {
    let f = join(at, key);
    let v = m.get(key).ok_or_else(|| field_err(&f, "missing"))?;
    v.as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| field_err(&f, format!("expected an integer in 0..=65535, got {v}")))
}

fn get_str(
    m: &Map<String, Json>,
    at: &str,
    key: &str,
    default: Option<&str>,
) -> Result<String, ObjectDefError> {
    let f = join(at, key);
    match (m.get(key), default) {
        (None, Some(d)) => Ok(d.to_string()),
        (None, None) => Err(field_err(&f, "missing")),
        (Some(Json::String(s)), _) => Ok(s.clone()),
        (Some(v), _) => Err(field_err(&f, format!("expected a string, got {v}"))),
    }
}

fn get_bool(
    m: &Map<String, Json>,
    at: &str,
    key: &str,
    default: bool,
) -> Result<bool, ObjectDefError> {
    match m.get(key) {
        None => Ok(default),
        Some(Json::Bool(b)) => Ok(*b),
        Some(v) => Err(field_err(
            &join(at, key),
            format!("expected true or false, got {v}"),
        )),
    }
}

fn parse_object(v: &Json, at: &str) -> Result<ObjectDef, ObjectDefError> {
    let m = obj(v, at)?;
    check_keys(
        m,
        at,
        &[
            "id",
            "name",
            "version",
            "lwm2m_version",
            "urn",
            "multiple",
            "mandatory",
            "resources",
        ],
    )?;
    let id = get_u16(m, at, "id")?;
    let name = get_str(m, at, "name", None)?;
    let version = get_str(m, at, "version", Some("1.0"))?;
    let lwm2m_version = get_str(m, at, "lwm2m_version", Some("1.1"))?;
    let urn = match m.get("urn") {
        None => format!("urn:oma:lwm2m:x:{id}"),
        Some(_) => get_str(m, at, "urn", None)?,
    };
    let multiple = get_bool(m, at, "multiple", false)?;
    let mandatory = get_bool(m, at, "mandatory", false)?;
    let rf = join(at, "resources");
    let list = m
        .get("resources")
        .ok_or_else(|| field_err(&rf, "missing"))?
        .as_array()
        .ok_or_else(|| field_err(&rf, "expected an array"))?;
    let mut resources = Vec::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        resources.push(parse_resource(r, &format!("{rf}[{i}]"))?);
    }
    resources.sort_by_key(|r: &ResourceDef| r.id);
    for w in resources.windows(2) {
        if w[0].id == w[1].id {
            return Err(field_err(
                &rf,
                format!("resource id {} defined twice", w[0].id),
            ));
        }
    }
    Ok(ObjectDef {
        id,
        name: Cow::Owned(name),
        version: Cow::Owned(version),
        lwm2m_version: Cow::Owned(lwm2m_version),
        urn: Cow::Owned(urn),
        multiple,
        mandatory,
        resources: Cow::Owned(resources),
    })
}

fn parse_resource(v: &Json, at: &str) -> Result<ResourceDef, ObjectDefError> {
    let m = obj(v, at)?;
    check_keys(
        m,
        at,
        &[
            "id",
            "name",
            "operations",
            "multiple",
            "mandatory",
            "type",
            "units",
        ],
    )?;
    let id = get_u16(m, at, "id")?;
    let name = get_str(m, at, "name", None)?;
    let ops_s = get_str(m, at, "operations", None)?;
    let operations = match ops_s.as_str() {
        "" => Operations::None,
        "R" => Operations::R,
        "W" => Operations::W,
        "RW" => Operations::RW,
        "E" => Operations::E,
        other => {
            return Err(field_err(
                &join(at, "operations"),
                format!("{other:?} is not one of \"\", R, W, RW, E"),
            ));
        }
    };
    let type_s = get_str(
        m,
        at,
        "type",
        Some(if operations == Operations::E {
            ""
        } else {
            "\u{0}"
        }),
    )?;
    if type_s == "\u{0}" {
        return Err(field_err(&join(at, "type"), "missing"));
    }
    let kind = ResourceType::parse(&type_s).ok_or_else(|| {
        field_err(
            &join(at, "type"),
            format!(
                "{type_s:?} is not one of String, Integer, Unsigned Integer, Float, Boolean, Opaque, Time, Objlnk, Corelnk, \"\""
            ),
        )
    })?;
    if (operations == Operations::E) != (kind == ResourceType::None) {
        return Err(field_err(
            &join(at, "type"),
            "executable resources, and only they, have no type (\"\")",
        ));
    }
    Ok(ResourceDef {
        id,
        name: Cow::Owned(name),
        operations,
        multiple: get_bool(m, at, "multiple", false)?,
        mandatory: get_bool(m, at, "mandatory", false)?,
        kind,
        units: Cow::Owned(get_str(m, at, "units", Some(""))?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Registry;

    const EXAMPLE: &str = r#"{
        "id": 33334, "name": "Valve", "version": "1.0", "multiple": true,
        "resources": [
            {"id": 1, "name": "Open", "operations": "E"},
            {"id": 0, "name": "Position", "operations": "RW", "type": "Float", "units": "%", "mandatory": true}
        ]
    }"#;

    #[test]
    fn loads_example_and_registry_uses_it() {
        let mut r = Registry::core();
        assert_eq!(r.add_json(EXAMPLE).unwrap(), [33334]);
        let d = r.get(33334).unwrap();
        assert_eq!(d.urn, "urn:oma:lwm2m:x:33334");
        assert_eq!(d.resources[0].id, 0);
        assert_eq!(d.resources[0].kind, ResourceType::Float);
        assert_eq!(d.resources[1].operations, Operations::E);
    }

    #[cfg(feature = "std")]
    #[test]
    fn loads_the_fixture_example() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/objects/example-valve.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let defs = parse_object_defs(&text).unwrap();
        assert_eq!(defs[0].id, 33334);
        assert_eq!(
            defs[0].resource(2).unwrap().kind,
            ResourceType::UnsignedInteger
        );
        assert!(defs[0].resource(3).unwrap().multiple);
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_object_defs(r#"[{"id":1,"name":"x","resources":[{"id":0,"name":"a","operations":"RW","type":"Strng"}]}]"#)
            .unwrap_err();
        assert!(e.to_string().contains("[0].resources[0].type"), "{e}");
        let e = parse_object_defs(r#"{"id":70000,"name":"x","resources":[]}"#).unwrap_err();
        assert!(e.to_string().contains("`id`"), "{e}");
        let e = parse_object_defs(r#"{"id":1,"name":"x","resources":[],"colour":1}"#).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let e = parse_object_defs("{\n\"id\": }").unwrap_err();
        assert!(matches!(e, ObjectDefError::Syntax { line: 2, .. }), "{e}");
        let e = parse_object_defs(
            r#"{"id":1,"name":"x","resources":[{"id":0,"name":"a","operations":"RW"}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("resources[0].type`: missing"), "{e}");
    }
}
