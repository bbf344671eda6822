//! OMA LwM2M TLV (11542), LwM2M 1.1 Core TS §7.4.3; usable on its own.
//!
//! Layout of one TLV: a type byte, an 8- or 16-bit identifier, an optional
//! 8/16/24-bit length, then the value.
//!
//! ```text
//! type byte: 7-6 identifier kind (00 object instance, 01 resource instance,
//!                10 multiple resource, 11 resource with value)
//!            5   identifier length (0: 8 bits, 1: 16 bits)
//!            4-3 length type (00: length in bits 2-0, 01/10/11: 8/16/24-bit length follows)
//!            2-0 value length when length type is 00
//! ```
//!
//! [`parse`] gives the raw, checked tree ([`Tlv`]); [`decode`] types it into
//! [`Record`]s using the object registry; [`encode`] does the reverse.
//! Integers take 1, 2, 4 or 8 bytes (two's complement); unsigned integers the
//! same, unsigned; floats 4 bytes when lossless else 8; booleans 1 byte 0/1;
//! object links 4 bytes (object id, instance id).

use alloc::string::String;
use alloc::vec::Vec;

use super::{ContentFormat, DecodeError, DecodeErrorKind, EncodeError};
use crate::object::{Registry, ResourceType};
use crate::path::ObjectPath;
use crate::value::{Record, Records, Value};

const F: ContentFormat = ContentFormat::Tlv;

/// The four TLV identifier kinds (type byte bits 7-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlvKind {
    /// `00`: an object instance, containing resources.
    ObjectInstance,
    /// `01`: a resource instance, with a value.
    ResourceInstance,
    /// `10`: a multiple resource, containing resource instances.
    MultipleResource,
    /// `11`: a resource with a value.
    Resource,
}

impl TlvKind {
    fn bits(self) -> u8 {
        match self {
            TlvKind::ObjectInstance => 0b00,
            TlvKind::ResourceInstance => 0b01,
            TlvKind::MultipleResource => 0b10,
            TlvKind::Resource => 0b11,
        }
    }
    fn from_bits(b: u8) -> Self {
        match b & 0b11 {
            0b00 => TlvKind::ObjectInstance,
            0b01 => TlvKind::ResourceInstance,
            0b10 => TlvKind::MultipleResource,
            _ => TlvKind::Resource,
        }
    }
    fn is_container(self) -> bool {
        matches!(self, TlvKind::ObjectInstance | TlvKind::MultipleResource)
    }
}

/// One parsed TLV element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// Identifier kind.
    pub kind: TlvKind,
    /// Identifier.
    pub id: u16,
    /// Byte offset of the type byte in the payload.
    pub offset: usize,
    /// Byte offset of the value.
    pub value_offset: usize,
    /// The raw value (for containers: the encoded children).
    pub value: &'a [u8],
    /// Children, parsed, for containers.
    pub children: Vec<Tlv<'a>>,
}

fn take<'a>(
    b: &'a [u8],
    pos: usize,
    n: usize,
    what: &'static str,
    base: usize,
) -> Result<&'a [u8], DecodeError> {
    b.get(pos..pos + n).ok_or_else(|| {
        DecodeError::new(
            F,
            base + b.len(),
            DecodeErrorKind::Truncated {
                what,
                need: pos + n - b.len(),
            },
        )
    })
}

/// Parse a TLV sequence into a tree, checking lengths and nesting (object
/// instances hold resources; multiple resources hold resource instances).
pub fn parse(bytes: &[u8]) -> Result<Vec<Tlv<'_>>, DecodeError> {
    parse_seq(bytes, 0, None)
}

fn parse_seq<'a>(
    b: &'a [u8],
    base: usize,
    parent: Option<TlvKind>,
) -> Result<Vec<Tlv<'a>>, DecodeError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < b.len() {
        let start = pos;
        let t = b[pos];
        pos += 1;
        let kind = TlvKind::from_bits(t >> 6);
        let id_len = if t & 0x20 != 0 { 2 } else { 1 };
        let id_bytes = take(b, pos, id_len, "identifier", base)?;
        let id = if id_len == 2 {
            u16::from_be_bytes([id_bytes[0], id_bytes[1]])
        } else {
            u16::from(id_bytes[0])
        };
        pos += id_len;
        let len_type = (t >> 3) & 0b11;
        let len = if len_type == 0 {
            usize::from(t & 0b111)
        } else {
            let n = usize::from(len_type);
            let lb = take(b, pos, n, "length", base)?;
            pos += n;
            lb.iter()
                .fold(0usize, |acc, &x| (acc << 8) | usize::from(x))
        };
        if len_type != 0 && t & 0b111 != 0 {
            return Err(DecodeError::new(
                F,
                base + start,
                DecodeErrorKind::Invalid(alloc::format!(
                    "type byte 0x{t:02x}: bits 2-0 must be 0 when a length field follows"
                )),
            ));
        }
        let value_offset = pos;
        let value = take(b, pos, len, "value", base)?;
        pos += len;
        let allowed = match parent {
            None => true,
            Some(TlvKind::ObjectInstance) => {
                matches!(kind, TlvKind::Resource | TlvKind::MultipleResource)
            }
            Some(TlvKind::MultipleResource) => kind == TlvKind::ResourceInstance,
            Some(_) => false,
        };
        if !allowed {
            return Err(DecodeError::new(
                F,
                base + start,
                DecodeErrorKind::Nesting(alloc::format!(
                    "{kind:?} {id} inside {:?}",
                    parent.unwrap_or(kind)
                )),
            ));
        }
        let children = if kind.is_container() {
            parse_seq(value, base + value_offset, Some(kind))?
        } else {
            Vec::new()
        };
        if out.iter().any(|o: &Tlv<'_>| {
            o.id == id && (o.kind == TlvKind::ObjectInstance) == (kind == TlvKind::ObjectInstance)
        }) {
            return Err(DecodeError::new(
                F,
                base + start,
                DecodeErrorKind::Nesting(alloc::format!(
                    "{kind:?} id {id} appears twice at the same level"
                )),
            ));
        }
        out.push(Tlv {
            kind,
            id,
            offset: base + start,
            value_offset: base + value_offset,
            value,
            children,
        });
    }
    Ok(out)
}

/// Decode a TLV payload received for `base` (`/o`, `/o/i`, `/o/i/r` or `/o/i/r/ri`).
pub fn decode(
    base: &ObjectPath,
    bytes: &[u8],
    registry: &Registry,
) -> Result<Records, DecodeError> {
    let tree = parse(bytes)?;
    let mut out = Vec::new();
    match *base {
        ObjectPath::Root => {
            return Err(DecodeError::new(
                F,
                0,
                DecodeErrorKind::UnsupportedLevel(*base),
            ));
        }
        ObjectPath::Object(o) => {
            for t in &tree {
                if t.kind != TlvKind::ObjectInstance {
                    return Err(nest(
                        t,
                        "a payload for an object must hold object instances",
                    ));
                }
                let ip = ObjectPath::instance(o.0, t.id);
                instance_records(&ip, &t.children, registry, &mut out)?;
            }
        }
        ObjectPath::Instance(o, i) => {
            if tree.iter().any(|t| t.kind == TlvKind::ObjectInstance) {
                // Wrapped form: exactly one object instance with the right id.
                match tree.as_slice() {
                    [t] if t.id == i.0 => instance_records(base, &t.children, registry, &mut out)?,
                    [t] => return Err(nest(t, "object instance id differs from the request path")),
                    _ => {
                        return Err(nest(
                            &tree[1],
                            "more than one object instance for an instance path",
                        ));
                    }
                }
            } else {
                let ip = ObjectPath::Instance(o, i);
                for t in &tree {
                    resource_records(&ip, t, registry, &mut out)?;
                }
            }
        }
        ObjectPath::Resource(o, i, r) => match tree.as_slice() {
            [t] if t.id == r.0
                && matches!(t.kind, TlvKind::Resource | TlvKind::MultipleResource) =>
            {
                resource_records(&ObjectPath::Instance(o, i), t, registry, &mut out)?
            }
            [t] => {
                return Err(nest(
                    t,
                    "expected one resource with the request's resource id",
                ));
            }
            [] => {
                return Err(DecodeError::new(
                    F,
                    0,
                    DecodeErrorKind::Truncated {
                        what: "resource TLV",
                        need: 2,
                    },
                ));
            }
            [_, t, ..] => return Err(nest(t, "more than one TLV for a resource path")),
        },
        ObjectPath::ResourceInstance(_, _, _, ri) => match tree.as_slice() {
            // Found by fuzzing (content_tlv): the encoder refuses an instance
            // of a single resource, so must the decoder.
            [t] if registry.resource_at(base).is_some_and(|d| !d.multiple) => {
                return Err(DecodeError::new(
                    F,
                    t.offset,
                    DecodeErrorKind::Multiplicity {
                        path: *base,
                        problem: "single resource given a resource instance",
                    },
                ));
            }
            [t] if t.id == ri.0 && t.kind == TlvKind::ResourceInstance => {
                let rec = typed(base, t, registry)?;
                out.push(rec);
            }
            [t] => {
                return Err(nest(
                    t,
                    "expected one resource instance with the request's id",
                ));
            }
            [] => {
                return Err(DecodeError::new(
                    F,
                    0,
                    DecodeErrorKind::Truncated {
                        what: "resource instance TLV",
                        need: 2,
                    },
                ));
            }
            [_, t, ..] => return Err(nest(t, "more than one TLV for a resource instance path")),
        },
    }
    Ok(out)
}

fn nest(t: &Tlv<'_>, msg: &str) -> DecodeError {
    DecodeError::new(
        F,
        t.offset,
        DecodeErrorKind::Nesting(alloc::format!("{:?} {}: {msg}", t.kind, t.id)),
    )
}

fn instance_records(
    ip: &ObjectPath,
    children: &[Tlv<'_>],
    registry: &Registry,
    out: &mut Records,
) -> Result<(), DecodeError> {
    for c in children {
        resource_records(ip, c, registry, out)?;
    }
    Ok(())
}

fn resource_records(
    ip: &ObjectPath,
    t: &Tlv<'_>,
    registry: &Registry,
    out: &mut Records,
) -> Result<(), DecodeError> {
    let rp = ip.child(t.id).ok_or_else(|| nest(t, "bad resource id"))?;
    match t.kind {
        TlvKind::Resource => {
            if registry.resource_at(&rp).is_some_and(|d| d.multiple) {
                return Err(DecodeError::new(
                    F,
                    t.offset,
                    DecodeErrorKind::Multiplicity {
                        path: rp,
                        problem: "multiple resource sent as a single resource TLV",
                    },
                ));
            }
            out.push(typed(&rp, t, registry)?);
        }
        TlvKind::MultipleResource => {
            if registry.resource_at(&rp).is_some_and(|d| !d.multiple) {
                return Err(DecodeError::new(
                    F,
                    t.offset,
                    DecodeErrorKind::Multiplicity {
                        path: rp,
                        problem: "single resource sent as a multiple resource TLV",
                    },
                ));
            }
            for c in &t.children {
                let rip = rp
                    .child(c.id)
                    .ok_or_else(|| nest(c, "resource instance id 65535 is reserved"))?;
                out.push(typed(&rip, c, registry)?);
            }
        }
        _ => return Err(nest(t, "expected a resource or multiple resource")),
    }
    Ok(())
}

fn typed(path: &ObjectPath, t: &Tlv<'_>, registry: &Registry) -> Result<Record, DecodeError> {
    let kind = match registry.kind_at(path) {
        Some(ResourceType::None) => {
            return Err(DecodeError::new(
                F,
                t.offset,
                DecodeErrorKind::FormatNotForType {
                    path: *path,
                    kind: ResourceType::None,
                },
            ));
        }
        Some(k) => k,
        None => ResourceType::Opaque,
    };
    let value = decode_value(kind, t.value).map_err(|k| {
        // Point at the bad byte where there is one, else at the value's start.
        let (at, k) = match k {
            ValueDecodeError::Length => (
                0,
                DecodeErrorKind::BadLength {
                    path: *path,
                    kind,
                    len: t.value.len(),
                },
            ),
            ValueDecodeError::Utf8(n) => (n, DecodeErrorKind::InvalidUtf8),
            ValueDecodeError::Bool(b) => (
                0,
                DecodeErrorKind::Invalid(alloc::format!(
                    "{path}: boolean byte must be 0 or 1, got {b}"
                )),
            ),
        };
        DecodeError::new(F, t.value_offset + at, k)
    })?;
    Ok(Record { path: *path, value })
}

/// Why a TLV value could not be read as a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueDecodeError {
    /// A length the type does not allow.
    Length,
    /// Not UTF-8 (valid up to the given offset).
    Utf8(usize),
    /// A boolean byte other than 0 or 1.
    Bool(u8),
}

/// Read one TLV value of type `kind` (LwM2M 1.1 Core TS Table 7.4.3-2 / Appendix C).
pub fn decode_value(kind: ResourceType, v: &[u8]) -> Result<Value, ValueDecodeError> {
    Ok(match kind {
        ResourceType::String | ResourceType::CoreLink => {
            let s = core::str::from_utf8(v).map_err(|e| ValueDecodeError::Utf8(e.valid_up_to()))?;
            if kind == ResourceType::String {
                Value::String(String::from(s))
            } else {
                Value::CoreLink(String::from(s))
            }
        }
        ResourceType::Integer | ResourceType::Time => {
            let i = match v.len() {
                1 => i64::from(v[0] as i8),
                2 => i64::from(i16::from_be_bytes([v[0], v[1]])),
                4 => i64::from(i32::from_be_bytes([v[0], v[1], v[2], v[3]])),
                8 => i64::from_be_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]),
                _ => return Err(ValueDecodeError::Length),
            };
            if kind == ResourceType::Time {
                Value::Time(i)
            } else {
                Value::Integer(i)
            }
        }
        ResourceType::UnsignedInteger => Value::UnsignedInteger(match v.len() {
            1 | 2 | 4 | 8 => v.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b)),
            _ => return Err(ValueDecodeError::Length),
        }),
        ResourceType::Float => Value::Float(match v.len() {
            4 => f64::from(f32::from_be_bytes([v[0], v[1], v[2], v[3]])),
            8 => f64::from_be_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]),
            _ => return Err(ValueDecodeError::Length),
        }),
        ResourceType::Boolean => match v {
            [0] => Value::Boolean(false),
            [1] => Value::Boolean(true),
            [b] => return Err(ValueDecodeError::Bool(*b)),
            _ => return Err(ValueDecodeError::Length),
        },
        ResourceType::Opaque => Value::Opaque(v.to_vec()),
        ResourceType::ObjectLink => match v {
            [a, b, c, d] => {
                Value::ObjectLink(u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))
            }
            _ => return Err(ValueDecodeError::Length),
        },
        ResourceType::None => return Err(ValueDecodeError::Length),
    })
}

/// The TLV value bytes of `value` (shortest allowed integer width; 4-byte
/// float when lossless).
pub fn encode_value(value: &Value) -> Vec<u8> {
    match value {
        Value::String(s) | Value::CoreLink(s) => s.as_bytes().to_vec(),
        Value::Integer(i) | Value::Time(i) => {
            let i = *i;
            if let Ok(x) = i8::try_from(i) {
                x.to_be_bytes().to_vec()
            } else if let Ok(x) = i16::try_from(i) {
                x.to_be_bytes().to_vec()
            } else if let Ok(x) = i32::try_from(i) {
                x.to_be_bytes().to_vec()
            } else {
                i.to_be_bytes().to_vec()
            }
        }
        Value::UnsignedInteger(u) => {
            let u = *u;
            if let Ok(x) = u8::try_from(u) {
                alloc::vec![x]
            } else if let Ok(x) = u16::try_from(u) {
                x.to_be_bytes().to_vec()
            } else if let Ok(x) = u32::try_from(u) {
                x.to_be_bytes().to_vec()
            } else {
                u.to_be_bytes().to_vec()
            }
        }
        Value::Float(f) => {
            let s = *f as f32;
            if f64::from(s) == *f || f.is_nan() && s.is_nan() {
                s.to_be_bytes().to_vec()
            } else {
                f.to_be_bytes().to_vec()
            }
        }
        Value::Boolean(b) => alloc::vec![u8::from(*b)],
        Value::Opaque(b) => b.clone(),
        Value::ObjectLink(o, i) => {
            let mut v = o.to_be_bytes().to_vec();
            v.extend_from_slice(&i.to_be_bytes());
            v
        }
    }
}

/// Append one TLV (header + value) to `out`. Fails for values over 16 MiB - 1.
pub fn write_tlv(out: &mut Vec<u8>, kind: TlvKind, id: u16, value: &[u8]) -> Result<(), usize> {
    let len = value.len();
    if len > 0xFF_FFFF {
        return Err(len);
    }
    let mut t = kind.bits() << 6;
    if id > 0xFF {
        t |= 0x20;
    }
    let len_bytes: usize = if len <= 7 {
        t |= len as u8;
        0
    } else if len <= 0xFF {
        t |= 0b01 << 3;
        1
    } else if len <= 0xFFFF {
        t |= 0b10 << 3;
        2
    } else {
        t |= 0b11 << 3;
        3
    };
    out.push(t);
    if id > 0xFF {
        out.extend_from_slice(&id.to_be_bytes());
    } else {
        out.push(id as u8);
    }
    for k in (0..len_bytes).rev() {
        out.push((len >> (8 * k)) as u8);
    }
    out.extend_from_slice(value);
    Ok(())
}

fn too_big(path: ObjectPath) -> impl Fn(usize) -> EncodeError {
    move |len| EncodeError::Unrepresentable {
        path,
        what: alloc::format!("a TLV value of {len} bytes"),
    }
}

/// Encode records (already checked against `base`) as TLV for `base`.
///
/// `/o/i/r/ri` gives one resource instance TLV; `/o/i/r` one resource or
/// multiple resource TLV; `/o/i` the instance's resources without an object
/// instance wrapper (as in the spec's Read /3/0 example); `/o` one object
/// instance TLV per instance.
pub fn encode(
    base: &ObjectPath,
    records: &[Record],
    registry: &Registry,
) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    match base.level() {
        0 => {
            return Err(EncodeError::UnsupportedLevel {
                format: F,
                base: *base,
            });
        }
        4 => match records {
            [r] if r.path == *base => {
                let id = base.resource_instance_id().map_or(0, |x| x.0);
                write_tlv(
                    &mut out,
                    TlvKind::ResourceInstance,
                    id,
                    &encode_value(&r.value),
                )
                .map_err(too_big(r.path))?;
            }
            _ => {
                return Err(EncodeError::NotSingle {
                    format: F,
                    count: records.len(),
                });
            }
        },
        3 => {
            if records.is_empty() {
                // No value at a resource path is a multiple resource without
                // instances (`88 id 00`); a known single resource needs one.
                if registry.resource_at(base).is_some_and(|d| !d.multiple) {
                    return Err(EncodeError::NotSingle {
                        format: F,
                        count: 0,
                    });
                }
                let rid = base.resource_id().map_or(0, |r| r.0);
                write_tlv(&mut out, TlvKind::MultipleResource, rid, &[]).map_err(too_big(*base))?;
                return Ok(out);
            }
            write_resource(&mut out, base, records, registry)?;
        }
        2 => write_instance_body(&mut out, records, registry)?,
        _ => {
            let mut sorted: Vec<&Record> = records.iter().collect();
            sorted.sort_by_key(|r| r.path.instance_id());
            let mut i = 0;
            while i < sorted.len() {
                let iid = sorted[i].path.instance_id();
                let j = i + sorted[i..]
                    .iter()
                    .take_while(|r| r.path.instance_id() == iid)
                    .count();
                let group: Vec<Record> = sorted[i..j].iter().map(|r| (*r).clone()).collect();
                let mut body = Vec::new();
                write_instance_body(&mut body, &group, registry)?;
                let p = sorted[i].path;
                write_tlv(
                    &mut out,
                    TlvKind::ObjectInstance,
                    iid.map_or(0, |x| x.0),
                    &body,
                )
                .map_err(too_big(p))?;
                i = j;
            }
        }
    }
    Ok(out)
}

/// Resources of one instance, in first-appearance order, grouping instances of a multiple resource.
fn write_instance_body(
    out: &mut Vec<u8>,
    records: &[Record],
    registry: &Registry,
) -> Result<(), EncodeError> {
    let mut done: Vec<ObjectPath> = Vec::new();
    for r in records {
        let Some(rp) = r.path.resource_path() else {
            return Err(EncodeError::NotUnderBase {
                path: r.path,
                base: r.path,
            });
        };
        if done.contains(&rp) {
            continue;
        }
        done.push(rp);
        let group: Vec<Record> = records
            .iter()
            .filter(|x| x.path.resource_path() == Some(rp))
            .cloned()
            .collect();
        write_resource(out, &rp, &group, registry)?;
    }
    Ok(())
}

fn write_resource(
    out: &mut Vec<u8>,
    rp: &ObjectPath,
    group: &[Record],
    registry: &Registry,
) -> Result<(), EncodeError> {
    let rid = rp.resource_id().map_or(0, |r| r.0);
    let multiple = group.iter().any(|r| r.path.level() == 4)
        || registry.resource_at(rp).is_some_and(|d| d.multiple);
    if multiple {
        let mut body = Vec::new();
        for r in group {
            let Some(ri) = r.path.resource_instance_id() else {
                return Err(EncodeError::Multiplicity {
                    path: r.path,
                    problem: "multiple resource needs resource instance paths",
                });
            };
            write_tlv(
                &mut body,
                TlvKind::ResourceInstance,
                ri.0,
                &encode_value(&r.value),
            )
            .map_err(too_big(r.path))?;
        }
        write_tlv(out, TlvKind::MultipleResource, rid, &body).map_err(too_big(*rp))?;
    } else {
        match group {
            [r] => write_tlv(out, TlvKind::Resource, rid, &encode_value(&r.value))
                .map_err(too_big(r.path))?,
            _ => return Err(EncodeError::Duplicate(*rp)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_forms() {
        let mut v = Vec::new();
        write_tlv(&mut v, TlvKind::Resource, 0, b"abc").unwrap();
        assert_eq!(v, [0xC3, 0x00, b'a', b'b', b'c']);
        let mut v = Vec::new();
        write_tlv(&mut v, TlvKind::Resource, 300, &[0u8; 8]).unwrap();
        assert_eq!(&v[..5], [0xE8, 0x01, 0x2C, 0x08, 0x00]);
        let mut v = Vec::new();
        write_tlv(&mut v, TlvKind::ObjectInstance, 1, &[0u8; 300]).unwrap();
        assert_eq!(&v[..4], [0x10, 0x01, 0x01, 0x2C]);
        let mut v = Vec::new();
        write_tlv(&mut v, TlvKind::Resource, 1, &[0u8; 70000]).unwrap();
        assert_eq!(&v[..5], [0xD8, 0x01, 0x01, 0x11, 0x70]);
        assert_eq!(parse(&v).unwrap()[0].value.len(), 70000);
    }

    #[test]
    fn parse_errors_have_offsets() {
        // Value overruns: declares 5 bytes, has 2.
        let e = parse(&[0xC5, 0x00, 1, 2]).unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(matches!(
            e.kind,
            DecodeErrorKind::Truncated {
                what: "value",
                need: 3
            }
        ));
        // Resource instance inside an object instance.
        let e = parse(&[0x08, 0x00, 0x03, 0x41, 0x00, 0x01]).unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(matches!(e.kind, DecodeErrorKind::Nesting(_)));
        // Truncated 16-bit id.
        let e = parse(&[0xE1, 0x01]).unwrap_err();
        assert!(matches!(
            e.kind,
            DecodeErrorKind::Truncated {
                what: "identifier",
                ..
            }
        ));
        // Duplicate resource id.
        let e = parse(&[0xC1, 0x00, 0x01, 0xC1, 0x00, 0x02]).unwrap_err();
        assert_eq!(e.offset, 3);
    }

    #[test]
    fn values() {
        assert_eq!(encode_value(&Value::Integer(-1)), [0xFF]);
        assert_eq!(encode_value(&Value::Integer(128)), [0x00, 0x80]);
        assert_eq!(encode_value(&Value::Integer(1 << 40)).len(), 8);
        assert_eq!(encode_value(&Value::UnsignedInteger(255)), [0xFF]);
        assert_eq!(encode_value(&Value::Float(1.5)).len(), 4);
        assert_eq!(encode_value(&Value::Float(0.1)).len(), 8);
        assert_eq!(encode_value(&Value::ObjectLink(3, 0x0102)), [0, 3, 1, 2]);
        assert_eq!(
            decode_value(ResourceType::Integer, &[0xFF, 0xFE]),
            Ok(Value::Integer(-2))
        );
        assert_eq!(
            decode_value(ResourceType::Integer, &[1, 2, 3]),
            Err(ValueDecodeError::Length)
        );
        assert_eq!(
            decode_value(ResourceType::Boolean, &[2]),
            Err(ValueDecodeError::Bool(2))
        );
        assert_eq!(
            decode_value(ResourceType::String, &[b'a', 0xFF]),
            Err(ValueDecodeError::Utf8(1))
        );
    }
}
