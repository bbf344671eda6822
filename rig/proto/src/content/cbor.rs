//! CBOR (60): one value at a resource or resource-instance path, LwM2M 1.1
//! Core TS §7.4.6. Integers are CBOR integers, floats are written as single
//! precision when lossless (else double), booleans, text strings, byte
//! strings for opaque, `"oid:iid"` text for object links, and time as an
//! integer tagged 1 (epoch seconds; the tag is optional on input).
//!
//! Also holds the CBOR value helpers SenML CBOR and LwM2M CBOR share.

use alloc::string::ToString;
use alloc::vec::Vec;

use minicbor::data::{Tag, Type};
use minicbor::{Decoder, Encoder};

use super::{ContentFormat, DecodeError, DecodeErrorKind, EncodeError, single_record};
use crate::object::{Registry, ResourceType};
use crate::path::ObjectPath;
use crate::value::{Record, Records, Value};

type EncErr = minicbor::encode::Error<core::convert::Infallible>;

/// Write a float as f32 when that loses nothing, else f64.
pub(crate) fn write_float(e: &mut Encoder<Vec<u8>>, f: f64) -> Result<(), EncErr> {
    let s = f as f32;
    if f64::from(s) == f || f.is_nan() {
        e.f32(s)?;
    } else {
        e.f64(f)?;
    }
    Ok(())
}

/// Write a bare CBOR value (LwM2M CBOR and CBOR 60 representation).
pub(crate) fn write_value(
    e: &mut Encoder<Vec<u8>>,
    v: &Value,
    tag_time: bool,
) -> Result<(), EncErr> {
    match v {
        Value::String(s) | Value::CoreLink(s) => {
            e.str(s)?;
        }
        Value::Integer(i) => {
            e.i64(*i)?;
        }
        Value::Time(i) => {
            if tag_time {
                e.tag(Tag::new(1))?;
            }
            e.i64(*i)?;
        }
        Value::UnsignedInteger(u) => {
            e.u64(*u)?;
        }
        Value::Float(f) => write_float(e, *f)?,
        Value::Boolean(b) => {
            e.bool(*b)?;
        }
        Value::Opaque(b) => {
            e.bytes(b)?;
        }
        Value::ObjectLink(o, i) => {
            e.str(&alloc::format!("{o}:{i}"))?;
        }
    }
    Ok(())
}

/// Write the SenML CBOR label and value of `v` (v 2, vs 3, vb 4, vd 8, "vlo").
pub(crate) fn write_senml_value(e: &mut Encoder<Vec<u8>>, v: &Value) -> Result<(), EncErr> {
    match v {
        Value::String(s) | Value::CoreLink(s) => {
            e.u8(3)?.str(s)?;
        }
        Value::Boolean(b) => {
            e.u8(4)?.bool(*b)?;
        }
        Value::Opaque(b) => {
            e.u8(8)?.bytes(b)?;
        }
        Value::ObjectLink(o, i) => {
            e.str("vlo")?.str(&alloc::format!("{o}:{i}"))?;
        }
        Value::Integer(i) | Value::Time(i) => {
            e.u8(2)?.i64(*i)?;
        }
        Value::UnsignedInteger(u) => {
            e.u8(2)?.u64(*u)?;
        }
        Value::Float(f) => {
            e.u8(2)?;
            write_float(e, *f)?;
        }
    }
    Ok(())
}

/// Read a CBOR number (any integer width or float) if the next item is one;
/// `Ok(None)` without consuming anything otherwise.
pub(crate) fn read_number(d: &mut Decoder<'_>) -> Result<Option<Value>, minicbor::decode::Error> {
    Ok(Some(match d.datatype()? {
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => {
            let u = d.u64()?;
            match i64::try_from(u) {
                Ok(i) => Value::Integer(i),
                Err(_) => Value::UnsignedInteger(u),
            }
        }
        Type::I8 | Type::I16 | Type::I32 | Type::I64 | Type::Int => {
            let i = d.int()?;
            match i64::try_from(i) {
                Ok(i) => Value::Integer(i),
                Err(_) => {
                    return Err(minicbor::decode::Error::message(
                        "integer out of 64-bit range",
                    ));
                }
            }
        }
        Type::F16 => {
            let p = d.position();
            let b = d.input();
            let (Some(&hi), Some(&lo)) = (b.get(p + 1), b.get(p + 2)) else {
                return Err(minicbor::decode::Error::end_of_input());
            };
            d.set_position(p + 3);
            Value::Float(half_to_f64(u16::from_be_bytes([hi, lo])))
        }
        Type::F32 => Value::Float(f64::from(d.f32()?)),
        Type::F64 => Value::Float(d.f64()?),
        _ => return Ok(None),
    }))
}

/// Parse an RFC 3339 date/time (`2016-10-11T11:50:13Z`, optional fraction,
/// `Z` or `±hh:mm` offset) to Unix seconds (fraction dropped).
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: core::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(part.iter().fold(0i64, |a, &c| a * 10 + i64::from(c - b'0')))
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let o = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *c == b'+' { o } else { -o }
        }
        _ => return None,
    };
    // Days from civil (proleptic Gregorian), Howard Hinnant's algorithm.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// IEEE 754 binary16 to f64 (RFC 8949 Appendix D).
fn half_to_f64(h: u16) -> f64 {
    let sign = u64::from(h >> 15) << 63;
    let exp = u64::from((h >> 10) & 0x1f);
    let mant = u64::from(h & 0x3ff);
    let val = if exp == 0 {
        // Subnormal (or zero): mant * 2^-24, exact in f64.
        (mant as f64) * 5.960_464_477_539_063e-8
    } else if exp == 31 {
        if mant == 0 { f64::INFINITY } else { f64::NAN }
    } else {
        f64::from_bits(((exp + 1023 - 15) << 52) | (mant << 42))
    };
    if sign != 0 { -val } else { val }
}

/// Read one bare CBOR value (CBOR 60 / LwM2M CBOR), typed by `kind` when known.
pub(crate) fn read_value(
    d: &mut Decoder<'_>,
    kind: Option<ResourceType>,
) -> Result<Result<Value, &'static str>, minicbor::decode::Error> {
    let ty = d.datatype()?;
    if ty == Type::Tag {
        let t = d.tag()?;
        if t == Tag::new(0) {
            // LwM2M 1.1.1 Table C.2 says Time is a date/time string (RFC 7049 §2.4.1, tag 0).
            if d.datatype()? != Type::String {
                return Ok(Err("tag 0 must hold a text date/time"));
            }
            return Ok(parse_rfc3339(d.str()?)
                .map(Value::Time)
                .ok_or("tag 0 must hold an RFC 3339 date/time like 2016-10-11T11:50:13Z"));
        }
        if t != Tag::new(1) {
            return Ok(Err(
                "unexpected CBOR tag (only tags 0 and 1, date/time, are allowed)",
            ));
        }
        return Ok(match read_number(d)? {
            Some(Value::Integer(i)) => Ok(Value::Time(i)),
            Some(Value::Float(f)) => match crate::value::exact_i64(f) {
                Some(i) => Ok(Value::Time(i)),
                None => Err("tag 1 must hold a whole number of seconds"),
            },
            _ => Err("tag 1 must hold an integer"),
        });
    }
    if let Some(n) = read_number(d)? {
        return Ok(Ok(n));
    }
    Ok(Ok(match ty {
        Type::Bool => Value::Boolean(d.bool()?),
        Type::String => {
            let s = d.str()?;
            match kind {
                Some(ResourceType::ObjectLink) => {
                    match Value::from_text(ResourceType::ObjectLink, s) {
                        Ok(v) => v,
                        Err(_) => return Ok(Err("object link must be \"oid:iid\"")),
                    }
                }
                Some(ResourceType::CoreLink) => Value::CoreLink(s.to_string()),
                _ => Value::String(s.to_string()),
            }
        }
        Type::Bytes => Value::Opaque(d.bytes()?.to_vec()),
        Type::StringIndef | Type::BytesIndef => {
            return Ok(Err("indefinite-length strings are not allowed"));
        }
        _ => return Ok(Err("not a CBOR value LwM2M allows here")),
    }))
}

/// Encode one value as CBOR.
pub fn encode(
    base: &ObjectPath,
    records: &[Record],
    registry: &Registry,
) -> Result<Vec<u8>, EncodeError> {
    let r = single_record(ContentFormat::Cbor, base, records, registry)?;
    let mut e = Encoder::new(Vec::new());
    write_value(&mut e, &r.value, true).map_err(|_| EncodeError::Unrepresentable {
        path: r.path,
        what: "CBOR".into(),
    })?;
    Ok(e.into_writer())
}

/// Decode one CBOR value at `base`.
pub fn decode(
    base: &ObjectPath,
    bytes: &[u8],
    registry: &Registry,
) -> Result<Records, DecodeError> {
    const F: ContentFormat = ContentFormat::Cbor;
    super::check_single_level(F, base, registry)?;
    let mut d = Decoder::new(bytes);
    let kind = registry.kind_at(base);
    let v = read_value(&mut d, kind)
        .map_err(|e| DecodeError::new(F, d.position(), DecodeErrorKind::Syntax(e.to_string())))?
        .map_err(|m| DecodeError::new(F, 0, DecodeErrorKind::Invalid(m.into())))?;
    if d.position() != bytes.len() {
        return Err(DecodeError::new(
            F,
            d.position(),
            DecodeErrorKind::Trailing(bytes.len() - d.position()),
        ));
    }
    let rec = super::finish_record(F, 0, base, *base, v, registry)?;
    Ok(alloc::vec![rec])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("2016-10-11T11:50:13Z"), Some(1_476_186_613));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2013-05-02T12:40:15.25+02:00"),
            Some(1_367_491_215)
        );
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Some(-1));
        assert_eq!(parse_rfc3339("2016-13-11T11:50:13Z"), None);
        assert_eq!(parse_rfc3339("2016-10-11 11:50:13Z"), None);
        assert_eq!(parse_rfc3339("2016-10-11T11:50:13"), None);
    }

    #[test]
    fn time_forms_in_cbor() {
        let reg = Registry::core();
        let p = ObjectPath::resource(3, 0, 13);
        let want = alloc::vec![Record {
            path: p,
            value: Value::Time(1_476_186_613)
        }];
        // tag 1 + int, bare int, tag 0 + string
        let tag1 = [0xC1, 0x1A, 0x57, 0xFC, 0xD1, 0xF5];
        assert_eq!(decode(&p, &tag1, &reg).unwrap(), want);
        assert_eq!(decode(&p, &tag1[1..], &reg).unwrap(), want);
        let mut tag0 = alloc::vec![0xC0, 0x74];
        tag0.extend_from_slice(b"2016-10-11T11:50:13Z");
        assert_eq!(decode(&p, &tag0, &reg).unwrap(), want);
        assert!(decode(&p, &[0xC2, 0x00], &reg).is_err());
    }
}
