//! Resource values and the flat data model every content format decodes into.
//!
//! A payload becomes an ordered list of [`Record`]s: `(ObjectPath, Value)`
//! pairs at resource (`/o/i/r`) or resource-instance (`/o/i/r/ri`) level,
//! SenML-like and flat. TLV's nesting and LwM2M CBOR's maps are flattened on
//! decode and rebuilt on encode, so callers handle one shape whatever the
//! format. [`group_by_instance`] and [`Content`] give the nested view back.
//!
//! Values are typed by [`ResourceType`] from the object registry: formats that
//! carry no type (TLV, text) need it to decode; formats that do (SenML, CBOR)
//! are checked against it ([`Value::coerce`]).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::object::ResourceType;
use crate::path::ObjectPath;

/// One resource (or resource instance) value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// UTF-8 string.
    String(String),
    /// Signed integer.
    Integer(i64),
    /// Unsigned integer.
    UnsignedInteger(u64),
    /// Float.
    Float(f64),
    /// Boolean.
    Boolean(bool),
    /// Opaque bytes.
    Opaque(Vec<u8>),
    /// Unix time, seconds.
    Time(i64),
    /// Object link `(object id, instance id)`.
    ObjectLink(u16, u16),
    /// CoRE link text (RFC 6690).
    CoreLink(String),
}

/// A value that cannot be read or converted as the resource type demands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{expected} expected, got {got}")]
pub struct ValueError {
    /// The type the resource has.
    pub expected: ResourceType,
    /// What was found instead (short description).
    pub got: String,
}

impl Value {
    /// The resource type this value has.
    pub fn kind(&self) -> ResourceType {
        match self {
            Value::String(_) => ResourceType::String,
            Value::Integer(_) => ResourceType::Integer,
            Value::UnsignedInteger(_) => ResourceType::UnsignedInteger,
            Value::Float(_) => ResourceType::Float,
            Value::Boolean(_) => ResourceType::Boolean,
            Value::Opaque(_) => ResourceType::Opaque,
            Value::Time(_) => ResourceType::Time,
            Value::ObjectLink(..) => ResourceType::ObjectLink,
            Value::CoreLink(_) => ResourceType::CoreLink,
        }
    }

    fn describe(&self) -> String {
        match self {
            Value::String(s) => format!("string {s:?}"),
            Value::Integer(i) => format!("integer {i}"),
            Value::UnsignedInteger(u) => format!("unsigned integer {u}"),
            Value::Float(f) => format!("float {f}"),
            Value::Boolean(b) => format!("boolean {b}"),
            Value::Opaque(b) => format!("{} opaque bytes", b.len()),
            Value::Time(t) => format!("time {t}"),
            Value::ObjectLink(o, i) => format!("object link {o}:{i}"),
            Value::CoreLink(s) => format!("core link {s:?}"),
        }
    }

    /// Convert to `kind` where the formats allow it without loss: integers
    /// between Integer, UnsignedInteger and Time (when in range), an integer to
    /// Float (when exact), a string to CoreLink and back. Anything else is a
    /// [`ValueError`]. `ResourceType::None` accepts nothing.
    pub fn coerce(self, kind: ResourceType) -> Result<Value, ValueError> {
        if self.kind() == kind {
            return Ok(self);
        }
        let err = |v: &Value| ValueError {
            expected: kind,
            got: v.describe(),
        };
        let out = match (&self, kind) {
            (Value::Integer(i), ResourceType::UnsignedInteger) => {
                u64::try_from(*i).ok().map(Value::UnsignedInteger)
            }
            (Value::Integer(i), ResourceType::Time) => Some(Value::Time(*i)),
            (Value::Time(i), ResourceType::Integer) => Some(Value::Integer(*i)),
            (Value::Time(i), ResourceType::UnsignedInteger) => {
                u64::try_from(*i).ok().map(Value::UnsignedInteger)
            }
            (Value::UnsignedInteger(u), ResourceType::Integer) => {
                i64::try_from(*u).ok().map(Value::Integer)
            }
            (Value::UnsignedInteger(u), ResourceType::Time) => {
                i64::try_from(*u).ok().map(Value::Time)
            }
            (Value::Integer(i), ResourceType::Float) => exact_f64_i(*i).map(Value::Float),
            (Value::UnsignedInteger(u), ResourceType::Float) => exact_f64_u(*u).map(Value::Float),
            (Value::Float(f), ResourceType::Integer) => exact_i64(*f).map(Value::Integer),
            (Value::Float(f), ResourceType::UnsignedInteger) => exact_i64(*f)
                .and_then(|i| u64::try_from(i).ok())
                .map(Value::UnsignedInteger),
            (Value::Float(f), ResourceType::Time) => exact_i64(*f).map(Value::Time),
            (Value::String(s), ResourceType::CoreLink) => Some(Value::CoreLink(s.clone())),
            (Value::CoreLink(s), ResourceType::String) => Some(Value::String(s.clone())),
            _ => None,
        };
        out.ok_or_else(|| err(&self))
    }

    /// The value as an `i64` (Integer, Time, or UnsignedInteger that fits).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(i) | Value::Time(i) => Some(*i),
            Value::UnsignedInteger(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }

    /// The value as a `u64` (UnsignedInteger, or a non-negative Integer/Time).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::UnsignedInteger(u) => Some(*u),
            Value::Integer(i) | Value::Time(i) => u64::try_from(*i).ok(),
            _ => None,
        }
    }

    /// The value as an `f64` (Float, or an integer that converts exactly).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Integer(i) | Value::Time(i) => exact_f64_i(*i),
            Value::UnsignedInteger(u) => exact_f64_u(*u),
            _ => None,
        }
    }

    /// The value as a `bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The text of a String or CoreLink value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::CoreLink(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes of an Opaque value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Opaque(b) => Some(b),
            _ => None,
        }
    }

    /// The LwM2M plain-text form (LwM2M 1.1 Core TS §7.3.1 / Table 7.3.1-1):
    /// decimal numbers, `0`/`1` for booleans, `oid:iid` for object links,
    /// base64 for opaque.
    pub fn to_text(&self) -> String {
        match self {
            Value::String(s) | Value::CoreLink(s) => s.clone(),
            Value::Integer(i) | Value::Time(i) => i.to_string(),
            Value::UnsignedInteger(u) => u.to_string(),
            Value::Float(f) => format_float(*f),
            Value::Boolean(b) => (if *b { "1" } else { "0" }).to_string(),
            Value::Opaque(b) => crate::content::base64::encode(b, crate::content::base64::STANDARD),
            Value::ObjectLink(o, i) => format!("{o}:{i}"),
        }
    }

    /// Parse the plain-text form of a value of type `kind`.
    pub fn from_text(kind: ResourceType, s: &str) -> Result<Value, ValueError> {
        let err = || ValueError {
            expected: kind,
            got: format!("text {s:?}"),
        };
        Ok(match kind {
            ResourceType::String => Value::String(s.to_string()),
            ResourceType::CoreLink => Value::CoreLink(s.to_string()),
            ResourceType::Integer => Value::Integer(parse_int(s).ok_or_else(err)?),
            ResourceType::Time => Value::Time(parse_int(s).ok_or_else(err)?),
            ResourceType::UnsignedInteger => {
                if !s.bytes().all(|b| b.is_ascii_digit()) || s.is_empty() {
                    return Err(err());
                }
                Value::UnsignedInteger(s.parse().map_err(|_| err())?)
            }
            ResourceType::Float => Value::Float(parse_float(s).ok_or_else(err)?),
            ResourceType::Boolean => match s {
                "0" => Value::Boolean(false),
                "1" => Value::Boolean(true),
                _ => return Err(err()),
            },
            ResourceType::Opaque => Value::Opaque(
                crate::content::base64::decode(s.as_bytes(), crate::content::base64::STANDARD)
                    .map_err(|_| err())?,
            ),
            ResourceType::ObjectLink => {
                let (o, i) = s.split_once(':').ok_or_else(err)?;
                let o = parse_u16(o).ok_or_else(err)?;
                let i = parse_u16(i).ok_or_else(err)?;
                Value::ObjectLink(o, i)
            }
            ResourceType::None => return Err(err()),
        })
    }
}

fn parse_u16(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parse a decimal float strictly: optional `-`, digits, optional fraction,
/// optional exponent. No `inf`, `nan`, `+`, or surrounding space.
pub(crate) fn parse_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == f {
            return None;
        }
        digits += i - f;
    }
    if digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    // A literal too large for an f64 (`1e999`) would read as infinity, which no
    // format can carry: reject it like any other malformed number.
    s.parse().ok().filter(|f: &f64| f.is_finite())
}

/// Shortest decimal text that reads back as the same f64 (Rust's `{}` for
/// finite values, which never uses an exponent).
pub(crate) fn format_float(f: f64) -> String {
    if f.is_finite() {
        format!("{f}")
    } else {
        format!("{f:?}")
    }
}

/// 2^63, exactly representable.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

pub(crate) fn exact_i64(f: f64) -> Option<i64> {
    if (-TWO_POW_63..TWO_POW_63).contains(&f) && (f as i64) as f64 == f {
        Some(f as i64)
    } else {
        None
    }
}

fn exact_f64_i(i: i64) -> Option<f64> {
    let f = i as f64;
    (exact_i64(f) == Some(i)).then_some(f)
}

fn exact_f64_u(u: u64) -> Option<f64> {
    let f = u as f64;
    (f < 1.844_674_407_370_955_2e19 && (f as u64) == u).then_some(f)
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::UnsignedInteger(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Opaque(v)
    }
}

/// One value at a resource or resource-instance path.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// `/o/i/r` or `/o/i/r/ri`.
    pub path: ObjectPath,
    /// The value.
    pub value: Value,
}

impl Record {
    /// A record from a path and anything convertible into a [`Value`].
    pub fn new(path: ObjectPath, value: impl Into<Value>) -> Self {
        Record {
            path,
            value: value.into(),
        }
    }
}

/// The flat list of records a payload decodes into, in payload order.
pub type Records = Vec<Record>;

/// Group records by object instance (`/o/i`), keeping payload order inside
/// each group. Records above instance level (none are produced by the
/// decoders) are left out.
pub fn group_by_instance(records: &[Record]) -> BTreeMap<ObjectPath, Vec<&Record>> {
    let mut out: BTreeMap<ObjectPath, Vec<&Record>> = BTreeMap::new();
    for r in records {
        if let Some(ip) = r.path.instance_path() {
            out.entry(ip).or_default().push(r);
        }
    }
    out
}

/// A convenience view over decoded records: look values up by path.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Content {
    /// The records, in payload order.
    pub records: Records,
}

impl Content {
    /// Wrap decoded records.
    pub fn new(records: Records) -> Self {
        Content { records }
    }

    /// The value at exactly `path`.
    pub fn get(&self, path: &ObjectPath) -> Option<&Value> {
        self.records
            .iter()
            .find(|r| r.path == *path)
            .map(|r| &r.value)
    }

    /// Every record under `prefix` (inclusive).
    pub fn under<'a>(&'a self, prefix: &'a ObjectPath) -> impl Iterator<Item = &'a Record> + 'a {
        self.records
            .iter()
            .filter(move |r| prefix.is_prefix_of(&r.path))
    }

    /// The resource instances of multiple resource `path` (`/o/i/r`), by instance id.
    pub fn instances_of(&self, path: &ObjectPath) -> BTreeMap<u16, &Value> {
        self.records
            .iter()
            .filter(|r| r.path.parent() == Some(*path) && r.path.level() == 4)
            .filter_map(|r| Some((r.path.resource_instance_id()?.0, &r.value)))
            .collect()
    }

    /// The object instances present, in order.
    pub fn instance_paths(&self) -> Vec<ObjectPath> {
        group_by_instance(&self.records).into_keys().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms() {
        assert_eq!(
            Value::from_text(ResourceType::Integer, "-42").unwrap(),
            Value::Integer(-42)
        );
        assert!(Value::from_text(ResourceType::Integer, "+4").is_err());
        assert!(Value::from_text(ResourceType::Integer, " 4").is_err());
        assert!(Value::from_text(ResourceType::Integer, "99999999999999999999").is_err());
        assert!(Value::from_text(ResourceType::UnsignedInteger, "-1").is_err());
        assert_eq!(
            Value::from_text(ResourceType::Boolean, "1").unwrap(),
            Value::Boolean(true)
        );
        assert!(Value::from_text(ResourceType::Boolean, "true").is_err());
        assert_eq!(
            Value::from_text(ResourceType::Float, "1.5e3").unwrap(),
            Value::Float(1500.0)
        );
        assert!(Value::from_text(ResourceType::Float, "nan").is_err());
        assert!(Value::from_text(ResourceType::Float, "1.").is_err());
        assert_eq!(
            Value::from_text(ResourceType::ObjectLink, "3:0").unwrap(),
            Value::ObjectLink(3, 0)
        );
        assert!(Value::from_text(ResourceType::ObjectLink, "3:").is_err());
        assert_eq!(Value::Float(-0.5).to_text(), "-0.5");
        assert_eq!(Value::Float(1e21).to_text(), "1000000000000000000000");
        assert_eq!(Value::Opaque(b"hi".to_vec()).to_text(), "aGk=");
        assert_eq!(
            Value::from_text(ResourceType::Opaque, "aGk=").unwrap(),
            Value::Opaque(b"hi".to_vec())
        );
    }

    #[test]
    fn accessors() {
        assert_eq!(Value::Integer(-3).as_i64(), Some(-3));
        assert_eq!(Value::Integer(-3).as_u64(), None);
        assert_eq!(Value::UnsignedInteger(u64::MAX).as_i64(), None);
        assert_eq!(Value::Integer(7).as_f64(), Some(7.0));
        assert_eq!(Value::Boolean(true).as_bool(), Some(true));
        assert_eq!(Value::from("x").as_str(), Some("x"));
        assert_eq!(Value::Opaque(alloc::vec![1]).as_bytes(), Some(&[1u8][..]));
        assert_eq!(Value::Float(1.5).as_i64(), None);
    }

    #[test]
    fn coercion() {
        assert_eq!(
            Value::Integer(5)
                .coerce(ResourceType::UnsignedInteger)
                .unwrap(),
            Value::UnsignedInteger(5)
        );
        assert!(
            Value::Integer(-5)
                .coerce(ResourceType::UnsignedInteger)
                .is_err()
        );
        assert_eq!(
            Value::Integer(5).coerce(ResourceType::Float).unwrap(),
            Value::Float(5.0)
        );
        assert!(Value::Float(5.5).coerce(ResourceType::Integer).is_err());
        assert!(Value::Boolean(true).coerce(ResourceType::Integer).is_err());
        let e = Value::String("x".into())
            .coerce(ResourceType::Boolean)
            .unwrap_err();
        assert_eq!(e.to_string(), "Boolean expected, got string \"x\"");
    }

    #[test]
    fn grouping() {
        let c = Content::new(alloc::vec![
            Record::new(ObjectPath::resource(3, 0, 0), "a"),
            Record::new(ObjectPath::resource_instance(3, 0, 6, 1), 5i64),
            Record::new(ObjectPath::resource_instance(3, 0, 6, 0), 1i64),
            Record::new(ObjectPath::resource(3, 1, 0), "b"),
        ]);
        assert_eq!(
            c.instance_paths(),
            [ObjectPath::instance(3, 0), ObjectPath::instance(3, 1)]
        );
        let m = c.instances_of(&ObjectPath::resource(3, 0, 6));
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), [0, 1]);
        assert_eq!(
            c.get(&ObjectPath::resource(3, 1, 0)),
            Some(&Value::from("b"))
        );
        assert_eq!(c.under(&ObjectPath::instance(3, 0)).count(), 3);
    }
}
