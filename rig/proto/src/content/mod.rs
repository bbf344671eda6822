//! Content formats: every LwM2M payload encoding, to and from the flat
//! [`Record`] model of [`crate::value`].
//!
//! [`encode`] and [`decode`] dispatch on [`ContentFormat`]. Both take the
//! request's base path (the Uri-Path the payload belongs to, or `/` for a
//! composite operation) and the object [`Registry`] (typeless formats need
//! it to know a resource's type; typed formats are checked against it).
//!
//! Every decoder is a pure function of its input bytes that never panics and
//! returns a [`DecodeError`] naming what is wrong and the byte offset where
//! it was found. That makes each one a ready fuzz target.
//!
//! | format | module | levels |
//! |---|---|---|
//! | text/plain 0 | [`text`] | resource, resource instance |
//! | opaque 42 | [`text`] | resource, resource instance |
//! | CBOR 60 | [`cbor`] | resource, resource instance |
//! | SenML JSON 110, SenML CBOR 112 | [`senml`] | all, composite |
//! | TLV 11542 | [`tlv`] | resource instance, resource, instance, object |
//! | LwM2M JSON 11543 | [`lwm2m_json`] | resource instance, resource, instance, object, root |
//! | LwM2M CBOR 11544 | [`lwm2m_cbor`] | all, composite |
//!
//! Link format (40) is not a resource-value format: use [`crate::link`].
//!
//! Resources the registry does not know are still decoded: TLV gives their
//! value as Opaque bytes, plain text as a String, and the typed formats as
//! whatever type the payload carries (numbers as Integer or Float). Add the
//! object to the [`Registry`] to get typed values.
//!
//! Read-Composite and Observe-Composite request bodies (names without
//! values) are handled by [`senml::encode_paths`] and [`senml::decode_paths`].

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::object::{Registry, ResourceType};
use crate::path::ObjectPath;
use crate::value::{Record, Records, Value, ValueError};

pub mod base64;
pub mod cbor;
pub mod lwm2m_cbor;
pub mod lwm2m_json;
pub mod senml;
pub mod text;
pub mod tlv;

mod json_offsets;

/// A CoAP Content-Format that LwM2M uses (IANA CoAP Content-Formats registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContentFormat {
    /// `text/plain;charset=utf-8` (0).
    Text,
    /// `application/link-format` (40).
    Link,
    /// `application/octet-stream` (42).
    Opaque,
    /// `application/cbor` (60).
    Cbor,
    /// `application/senml+json` (110).
    SenmlJson,
    /// `application/senml+cbor` (112).
    SenmlCbor,
    /// `application/vnd.oma.lwm2m+tlv` (11542).
    Tlv,
    /// `application/vnd.oma.lwm2m+json` (11543).
    Lwm2mJson,
    /// `application/vnd.oma.lwm2m+cbor` (11544).
    Lwm2mCbor,
}

impl ContentFormat {
    /// Every format, in number order.
    pub const ALL: [ContentFormat; 9] = [
        ContentFormat::Text,
        ContentFormat::Link,
        ContentFormat::Opaque,
        ContentFormat::Cbor,
        ContentFormat::SenmlJson,
        ContentFormat::SenmlCbor,
        ContentFormat::Tlv,
        ContentFormat::Lwm2mJson,
        ContentFormat::Lwm2mCbor,
    ];

    /// The CoAP Content-Format number.
    pub const fn as_u16(self) -> u16 {
        match self {
            ContentFormat::Text => 0,
            ContentFormat::Link => 40,
            ContentFormat::Opaque => 42,
            ContentFormat::Cbor => 60,
            ContentFormat::SenmlJson => 110,
            ContentFormat::SenmlCbor => 112,
            ContentFormat::Tlv => 11542,
            ContentFormat::Lwm2mJson => 11543,
            ContentFormat::Lwm2mCbor => 11544,
        }
    }

    /// The format for a Content-Format number, including the pre-IANA numbers
    /// old LwM2M 1.0 clients use (1541 text, 1542 TLV, 1543 JSON, 1544 opaque).
    pub const fn from_u16(n: u16) -> Option<Self> {
        Some(match n {
            0 | 1541 => ContentFormat::Text,
            40 => ContentFormat::Link,
            42 | 1544 => ContentFormat::Opaque,
            60 => ContentFormat::Cbor,
            110 => ContentFormat::SenmlJson,
            112 => ContentFormat::SenmlCbor,
            11542 | 1542 => ContentFormat::Tlv,
            11543 | 1543 => ContentFormat::Lwm2mJson,
            11544 => ContentFormat::Lwm2mCbor,
            _ => return None,
        })
    }

    /// True for the pre-IANA numbers 1541-1544.
    pub const fn is_legacy_number(n: u16) -> bool {
        matches!(n, 1541..=1544)
    }

    /// The media type name.
    pub const fn media_type(self) -> &'static str {
        match self {
            ContentFormat::Text => "text/plain;charset=utf-8",
            ContentFormat::Link => "application/link-format",
            ContentFormat::Opaque => "application/octet-stream",
            ContentFormat::Cbor => "application/cbor",
            ContentFormat::SenmlJson => "application/senml+json",
            ContentFormat::SenmlCbor => "application/senml+cbor",
            ContentFormat::Tlv => "application/vnd.oma.lwm2m+tlv",
            ContentFormat::Lwm2mJson => "application/vnd.oma.lwm2m+json",
            ContentFormat::Lwm2mCbor => "application/vnd.oma.lwm2m+cbor",
        }
    }

    /// True when the format can carry several values (an instance, an object...).
    pub const fn is_multi_value(self) -> bool {
        matches!(
            self,
            ContentFormat::SenmlJson
                | ContentFormat::SenmlCbor
                | ContentFormat::Tlv
                | ContentFormat::Lwm2mJson
                | ContentFormat::Lwm2mCbor
        )
    }

    /// True when the format can carry values from several objects (composite operations).
    pub const fn is_composite_capable(self) -> bool {
        matches!(
            self,
            ContentFormat::SenmlJson | ContentFormat::SenmlCbor | ContentFormat::Lwm2mCbor
        )
    }
}

impl fmt::Display for ContentFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.media_type(), self.as_u16())
    }
}

/// What is wrong with a payload (see [`DecodeError`] for where).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeErrorKind {
    /// The payload ended inside an element.
    #[error("truncated: {what} needs {need} more byte(s)")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes missing.
        need: usize,
    },
    /// Bytes after the end of the payload's top-level element.
    #[error("{0} unexpected trailing byte(s)")]
    Trailing(usize),
    /// Text that is not UTF-8.
    #[error("not valid UTF-8")]
    InvalidUtf8,
    /// A value that does not fit the resource type.
    #[error("value for {path}: {error}")]
    BadValue {
        /// The resource.
        path: ObjectPath,
        /// What was expected and found.
        error: ValueError,
    },
    /// A value of a length the type does not allow (TLV integer of 3 bytes).
    #[error("value for {path}: {kind} cannot be {len} byte(s) long")]
    BadLength {
        /// The resource.
        path: ObjectPath,
        /// Its type.
        kind: ResourceType,
        /// The length found.
        len: usize,
    },
    /// A path outside the request's base path.
    #[error("{path} is not under the request path {base}")]
    NotUnderBase {
        /// Path found in the payload.
        path: ObjectPath,
        /// Path of the request.
        base: ObjectPath,
    },
    /// A path that is not a valid LwM2M path, or at the wrong level.
    #[error("bad path {0:?}")]
    BadPath(String),
    /// The same path twice where the format forbids it.
    #[error("{0} appears twice")]
    Duplicate(ObjectPath),
    /// An element nested where the format does not allow it.
    #[error("wrong nesting: {0}")]
    Nesting(String),
    /// The format cannot carry a payload for this request path.
    #[error("this format cannot carry a payload for {0}")]
    UnsupportedLevel(ObjectPath),
    /// The format cannot carry values of this resource type.
    #[error("{path} is {kind}, which this format cannot carry")]
    FormatNotForType {
        /// The resource.
        path: ObjectPath,
        /// Its type.
        kind: ResourceType,
    },
    /// A multiple resource where a single value was expected, or the reverse.
    #[error("{path}: {problem}")]
    Multiplicity {
        /// The resource.
        path: ObjectPath,
        /// What is wrong.
        problem: &'static str,
    },
    /// A SenML / LwM2M JSON record without a name.
    #[error("record {0} has no name (neither bn nor n)")]
    MissingName(usize),
    /// A record without a value.
    #[error("record {0} has no value")]
    MissingValue(usize),
    /// Syntax error of the underlying JSON / CBOR.
    #[error("syntax: {0}")]
    Syntax(String),
    /// Structurally wrong (wrong CBOR type, missing field ...).
    #[error("{0}")]
    Invalid(String),
    /// The format has no value decoder (link format).
    #[error("not a resource value format; use the link module")]
    NotAValueFormat,
}

/// A payload that could not be decoded: what and at which byte offset.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{format}: {kind} (at byte {offset})")]
pub struct DecodeError {
    /// The format being decoded.
    pub format: ContentFormat,
    /// Byte offset in the payload where the problem was found.
    pub offset: usize,
    /// What is wrong.
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    /// Build an error.
    pub fn new(format: ContentFormat, offset: usize, kind: DecodeErrorKind) -> Self {
        DecodeError {
            format,
            offset,
            kind,
        }
    }
}

pub(crate) fn value_error(
    format: ContentFormat,
    offset: usize,
    path: &ObjectPath,
    error: ValueError,
) -> DecodeError {
    DecodeError::new(
        format,
        offset,
        DecodeErrorKind::BadValue { path: *path, error },
    )
}

/// Why records could not be encoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    /// The format cannot carry a payload for this request path.
    #[error("{format} cannot carry a payload for {base}")]
    UnsupportedLevel {
        /// The format.
        format: ContentFormat,
        /// The request path.
        base: ObjectPath,
    },
    /// A record outside the base path, or not at resource / resource-instance level.
    #[error("record {path} does not belong in a payload for {base}")]
    NotUnderBase {
        /// The record's path.
        path: ObjectPath,
        /// The request path.
        base: ObjectPath,
    },
    /// A single-value format was given zero or several records.
    #[error("{format} carries exactly one value, got {count}")]
    NotSingle {
        /// The format.
        format: ContentFormat,
        /// Number of records given.
        count: usize,
    },
    /// The value's type does not match the resource, or the format cannot carry it.
    #[error("{path}: {format} cannot carry a {kind} value here")]
    WrongType {
        /// The record's path.
        path: ObjectPath,
        /// The format.
        format: ContentFormat,
        /// The value's type.
        kind: ResourceType,
    },
    /// The value's type does not match the registry's type for the resource.
    #[error("{path}: {error}")]
    TypeMismatch {
        /// The record's path.
        path: ObjectPath,
        /// Expected vs got.
        error: ValueError,
    },
    /// A record at resource level for a multiple resource, or mixed levels.
    #[error("{path}: {problem}")]
    Multiplicity {
        /// The record's path.
        path: ObjectPath,
        /// What is wrong.
        problem: &'static str,
    },
    /// The same path twice.
    #[error("{0} appears twice")]
    Duplicate(ObjectPath),
    /// A value the format cannot represent (NaN in JSON, >16 MiB TLV value).
    #[error("{path}: cannot represent {what}")]
    Unrepresentable {
        /// The record's path.
        path: ObjectPath,
        /// What.
        what: String,
    },
    /// The format has no value encoder (link format).
    #[error("{0} is not a resource value format; use the link module")]
    NotAValueFormat(ContentFormat),
}

/// Encode `records` for a request on `base` in `format`.
///
/// Records must lie under `base` and be at resource (`/o/i/r`) or resource
/// instance (`/o/i/r/ri`) level. Values are checked against (and converted
/// to) the registry's resource types where the resource is known.
pub fn encode(
    format: ContentFormat,
    base: &ObjectPath,
    records: &[Record],
    registry: &Registry,
) -> Result<Vec<u8>, EncodeError> {
    let checked = check_records(base, records, registry)?;
    let records = &checked[..];
    match format {
        ContentFormat::Text => text::encode_text(base, records, registry),
        ContentFormat::Opaque => text::encode_opaque(base, records, registry),
        ContentFormat::Cbor => cbor::encode(base, records, registry),
        ContentFormat::SenmlJson => senml::encode_json(base, records),
        ContentFormat::SenmlCbor => senml::encode_cbor(base, records),
        ContentFormat::Tlv => tlv::encode(base, records, registry),
        ContentFormat::Lwm2mJson => lwm2m_json::encode(base, records),
        ContentFormat::Lwm2mCbor => lwm2m_cbor::encode(base, records),
        ContentFormat::Link => Err(EncodeError::NotAValueFormat(format)),
    }
}

/// Decode a payload received for a request on `base` (use `/` for composite
/// operations). Never panics; errors carry the byte offset.
pub fn decode(
    format: ContentFormat,
    base: &ObjectPath,
    bytes: &[u8],
    registry: &Registry,
) -> Result<Records, DecodeError> {
    match format {
        ContentFormat::Text => text::decode_text(base, bytes, registry),
        ContentFormat::Opaque => text::decode_opaque(base, bytes, registry),
        ContentFormat::Cbor => cbor::decode(base, bytes, registry),
        ContentFormat::SenmlJson => senml::decode_json(base, bytes, registry),
        ContentFormat::SenmlCbor => senml::decode_cbor(base, bytes, registry),
        ContentFormat::Tlv => tlv::decode(base, bytes, registry),
        ContentFormat::Lwm2mJson => lwm2m_json::decode(base, bytes, registry),
        ContentFormat::Lwm2mCbor => lwm2m_cbor::decode(base, bytes, registry),
        ContentFormat::Link => Err(DecodeError::new(
            format,
            0,
            DecodeErrorKind::NotAValueFormat,
        )),
    }
}

/// Encode a single value at `path` (a resource or resource instance).
pub fn encode_resource_value(
    format: ContentFormat,
    path: &ObjectPath,
    value: &Value,
    registry: &Registry,
) -> Result<Vec<u8>, EncodeError> {
    encode(
        format,
        path,
        &[Record {
            path: *path,
            value: value.clone(),
        }],
        registry,
    )
}

/// Decode a payload that must hold exactly the one value at `path`.
pub fn decode_resource_value(
    format: ContentFormat,
    path: &ObjectPath,
    bytes: &[u8],
    registry: &Registry,
) -> Result<Value, DecodeError> {
    let mut recs = decode(format, path, bytes, registry)?;
    match (recs.len(), recs.first()) {
        (1, Some(r)) if r.path == *path => Ok(recs.remove(0).value),
        _ => Err(DecodeError::new(
            format,
            0,
            DecodeErrorKind::Multiplicity {
                path: *path,
                problem: "expected exactly one value at this path",
            },
        )),
    }
}

/// Validate records against the base path and registry and coerce their
/// values to the registry types. Shared by every encoder.
fn check_records(
    base: &ObjectPath,
    records: &[Record],
    registry: &Registry,
) -> Result<Records, EncodeError> {
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        if r.path.level() < 3 || !base.is_prefix_of(&r.path) {
            return Err(EncodeError::NotUnderBase {
                path: r.path,
                base: *base,
            });
        }
        let mut value = r.value.clone();
        if let Some(def) = registry.resource_at(&r.path) {
            if def.kind == ResourceType::None {
                return Err(EncodeError::TypeMismatch {
                    path: r.path,
                    error: ValueError {
                        expected: ResourceType::None,
                        got: alloc::format!("{} (resource is executable)", value.kind()),
                    },
                });
            }
            value = value
                .coerce(def.kind)
                .map_err(|error| EncodeError::TypeMismatch {
                    path: r.path,
                    error,
                })?;
            match (def.multiple, r.path.level()) {
                (true, 3) => {
                    return Err(EncodeError::Multiplicity {
                        path: r.path,
                        problem: "multiple resource: give values at resource instance paths",
                    });
                }
                (false, 4) => {
                    return Err(EncodeError::Multiplicity {
                        path: r.path,
                        problem: "single resource has no resource instances",
                    });
                }
                _ => {}
            }
        }
        out.push(Record {
            path: r.path,
            value,
        });
    }
    let mut paths: Vec<&ObjectPath> = out.iter().map(|r| &r.path).collect();
    paths.sort();
    for w in paths.windows(2) {
        if w[0] == w[1] {
            return Err(EncodeError::Duplicate(*w[0]));
        }
        if w[0].is_prefix_of(w[1]) {
            return Err(EncodeError::Multiplicity {
                path: *w[0],
                problem: "a value at both resource and resource instance level",
            });
        }
    }
    Ok(out)
}

/// For the single-value formats: the base must be a resource (single) or a
/// resource instance, and exactly one record at `base`.
pub(crate) fn single_record<'a>(
    format: ContentFormat,
    base: &ObjectPath,
    records: &'a [Record],
    registry: &Registry,
) -> Result<&'a Record, EncodeError> {
    if base.level() < 3
        || registry
            .resource_at(base)
            .is_some_and(|d| d.multiple && base.level() == 3)
    {
        return Err(EncodeError::UnsupportedLevel {
            format,
            base: *base,
        });
    }
    match records {
        [r] if r.path == *base => Ok(r),
        [r] => Err(EncodeError::NotUnderBase {
            path: r.path,
            base: *base,
        }),
        _ => Err(EncodeError::NotSingle {
            format,
            count: records.len(),
        }),
    }
}

/// Decoder-side twin of [`single_record`]'s level check.
pub(crate) fn check_single_level(
    format: ContentFormat,
    base: &ObjectPath,
    registry: &Registry,
) -> Result<(), DecodeError> {
    if base.level() < 3 {
        return Err(DecodeError::new(
            format,
            0,
            DecodeErrorKind::UnsupportedLevel(*base),
        ));
    }
    if base.level() == 3 && registry.resource_at(base).is_some_and(|d| d.multiple) {
        return Err(DecodeError::new(
            format,
            0,
            DecodeErrorKind::Multiplicity {
                path: *base,
                problem: "multiple resource needs a multi-value format",
            },
        ));
    }
    // Found by fuzzing (content_text): the encoder refuses this, so must the decoder.
    if base.level() == 4 && registry.resource_at(base).is_some_and(|d| !d.multiple) {
        return Err(DecodeError::new(
            format,
            0,
            DecodeErrorKind::Multiplicity {
                path: *base,
                problem: "single resource given a resource instance",
            },
        ));
    }
    Ok(())
}

/// Check a decoded path: resource or resource-instance level, under `base`,
/// multiplicity as the registry says; then type the value.
pub(crate) fn finish_record(
    format: ContentFormat,
    offset: usize,
    base: &ObjectPath,
    path: ObjectPath,
    value: Value,
    registry: &Registry,
) -> Result<Record, DecodeError> {
    if path.level() < 3 {
        return Err(DecodeError::new(
            format,
            offset,
            DecodeErrorKind::BadPath(alloc::format!("{path} (not a resource)")),
        ));
    }
    if !base.is_prefix_of(&path) {
        return Err(DecodeError::new(
            format,
            offset,
            DecodeErrorKind::NotUnderBase { path, base: *base },
        ));
    }
    let mut value = value;
    if let Some(def) = registry.resource_at(&path) {
        match (def.multiple, path.level()) {
            (true, 3) => {
                return Err(DecodeError::new(
                    format,
                    offset,
                    DecodeErrorKind::Multiplicity {
                        path,
                        problem: "multiple resource given a single value",
                    },
                ));
            }
            (false, 4) => {
                return Err(DecodeError::new(
                    format,
                    offset,
                    DecodeErrorKind::Multiplicity {
                        path,
                        problem: "single resource given a resource instance",
                    },
                ));
            }
            _ => {}
        }
        if def.kind == ResourceType::None {
            return Err(DecodeError::new(
                format,
                offset,
                DecodeErrorKind::FormatNotForType {
                    path,
                    kind: def.kind,
                },
            ));
        }
        value = value
            .coerce(def.kind)
            .map_err(|e| value_error(format, offset, &path, e))?;
    }
    Ok(Record { path, value })
}

/// Reject the same path twice, or a resource given both a value and instances.
pub(crate) fn check_duplicates(
    format: ContentFormat,
    records: &[Record],
    offsets: &[usize],
) -> Result<(), DecodeError> {
    let mut idx: Vec<usize> = (0..records.len()).collect();
    idx.sort_by(|&a, &b| records[a].path.cmp(&records[b].path).then(a.cmp(&b)));
    for w in idx.windows(2) {
        let (a, b) = (&records[w[0]].path, &records[w[1]].path);
        let at = offsets.get(w[0].max(w[1])).copied().unwrap_or(0);
        if a == b {
            return Err(DecodeError::new(format, at, DecodeErrorKind::Duplicate(*a)));
        }
        if a.is_prefix_of(b) {
            return Err(DecodeError::new(
                format,
                at,
                DecodeErrorKind::Multiplicity {
                    path: *a,
                    problem: "value at both resource and resource instance level",
                },
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numbers_and_legacy_numbers() {
        for f in ContentFormat::ALL {
            assert_eq!(ContentFormat::from_u16(f.as_u16()), Some(f));
        }
        assert_eq!(ContentFormat::from_u16(1542), Some(ContentFormat::Tlv));
        assert_eq!(
            ContentFormat::from_u16(1543),
            Some(ContentFormat::Lwm2mJson)
        );
        assert_eq!(ContentFormat::from_u16(1541), Some(ContentFormat::Text));
        assert_eq!(ContentFormat::from_u16(1544), Some(ContentFormat::Opaque));
        assert_eq!(ContentFormat::from_u16(50), None);
    }

    #[test]
    fn encode_checks_types_and_levels() {
        let reg = Registry::core();
        let p = ObjectPath::resource(3, 0, 9);
        let e =
            encode_resource_value(ContentFormat::Text, &p, &Value::from("x"), &reg).unwrap_err();
        assert!(matches!(e, EncodeError::TypeMismatch { .. }), "{e}");
        let e = encode(ContentFormat::Text, &ObjectPath::instance(3, 0), &[], &reg).unwrap_err();
        assert!(matches!(e, EncodeError::UnsupportedLevel { .. }), "{e}");
        let e = encode(
            ContentFormat::Tlv,
            &ObjectPath::instance(3, 0),
            &[Record::new(ObjectPath::resource(3, 1, 0), "x")],
            &reg,
        )
        .unwrap_err();
        assert!(matches!(e, EncodeError::NotUnderBase { .. }), "{e}");
        let e = encode(
            ContentFormat::Tlv,
            &ObjectPath::instance(3, 0),
            &[Record::new(ObjectPath::resource(3, 0, 11), 0i64)],
            &reg,
        )
        .unwrap_err();
        assert!(matches!(e, EncodeError::Multiplicity { .. }), "{e}");
        assert_eq!(
            decode_resource_value(ContentFormat::Text, &p, b"42", &reg).unwrap(),
            Value::Integer(42)
        );
    }

    fn bases() -> impl Strategy<Value = ObjectPath> {
        prop::sample::select(vec![
            ObjectPath::Root,
            ObjectPath::object(3),
            ObjectPath::instance(3, 0),
            ObjectPath::resource(3, 0, 0),
            ObjectPath::resource(3, 0, 6),
            ObjectPath::resource_instance(3, 0, 6, 1),
            ObjectPath::instance(33333, 0),
            ObjectPath::resource(19, 0, 0),
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Fuzz-readiness: no decoder panics on arbitrary bytes, at any base.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96), base in bases()) {
            let reg = Registry::core();
            for f in ContentFormat::ALL {
                if let Err(e) = decode(f, &base, &bytes, &reg) {
                    prop_assert!(e.offset <= bytes.len(), "{f}: offset {} beyond {}", e.offset, bytes.len());
                }
            }
            for f in [ContentFormat::SenmlJson, ContentFormat::SenmlCbor] {
                if let Err(e) = senml::decode_paths(f, &bytes) {
                    prop_assert!(e.offset <= bytes.len());
                }
            }
            if let Err(e) = crate::link::parse_bytes(&bytes) {
                prop_assert!(e.offset <= bytes.len());
            }
        }

        /// Structured-ish inputs reach deeper code: TLV headers and CBOR maps.
        #[test]
        fn tlv_and_cbor_shaped_bytes_never_panic(
            parts in proptest::collection::vec((prop::sample::select(vec![0x00u8, 0x08, 0x41, 0x61, 0x86, 0x88, 0xC1, 0xC8, 0xE8, 0xA1, 0xA2, 0x81, 0x83, 0x21, 0xFA, 0xC1, 0x63]), any::<u8>()), 0..40),
            base in bases(),
        ) {
            let bytes: Vec<u8> = parts.into_iter().flat_map(|(a, b)| [a, b]).collect();
            let reg = Registry::core();
            for f in ContentFormat::ALL {
                let _ = decode(f, &base, &bytes, &reg);
            }
        }
    }
}
