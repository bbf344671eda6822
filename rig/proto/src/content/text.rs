//! text/plain (0) and application/octet-stream (42): one value at a resource or
//! resource-instance path (LwM2M 1.1 Core TS §7.4.1 Plain Text, §7.4.2 Opaque).

use alloc::vec::Vec;

use super::{DecodeError, DecodeErrorKind, EncodeError, single_record, value_error};
use crate::content::ContentFormat;
use crate::object::{Registry, ResourceType};
use crate::path::ObjectPath;
use crate::value::{Record, Records, Value};

/// Encode one value as plain text (the [`Value::to_text`] form).
pub fn encode_text(
    base: &ObjectPath,
    records: &[Record],
    registry: &Registry,
) -> Result<Vec<u8>, EncodeError> {
    let r = single_record(ContentFormat::Text, base, records, registry)?;
    if let Value::Float(f) = r.value
        && !f.is_finite()
    {
        return Err(EncodeError::Unrepresentable {
            path: r.path,
            what: "a non-finite float".into(),
        });
    }
    Ok(r.value.to_text().into_bytes())
}

/// Decode a plain-text value at `base` using the registry's resource type
/// (String when the resource is unknown).
pub fn decode_text(
    base: &ObjectPath,
    bytes: &[u8],
    registry: &Registry,
) -> Result<Records, DecodeError> {
    let f = ContentFormat::Text;
    super::check_single_level(f, base, registry)?;
    let text = core::str::from_utf8(bytes)
        .map_err(|e| DecodeError::new(f, e.valid_up_to(), DecodeErrorKind::InvalidUtf8))?;
    let kind = registry.kind_at(base).unwrap_or(ResourceType::String);
    let value = Value::from_text(kind, text).map_err(|e| value_error(f, 0, base, e))?;
    Ok(alloc::vec![Record { path: *base, value }])
}

/// Encode one opaque value as its raw bytes.
pub fn encode_opaque(
    base: &ObjectPath,
    records: &[Record],
    registry: &Registry,
) -> Result<Vec<u8>, EncodeError> {
    let r = single_record(ContentFormat::Opaque, base, records, registry)?;
    match &r.value {
        Value::Opaque(b) => Ok(b.clone()),
        other => Err(EncodeError::WrongType {
            path: r.path,
            format: ContentFormat::Opaque,
            kind: other.kind(),
        }),
    }
}

/// Decode raw bytes as the opaque value at `base`. The resource, when known,
/// must be of type Opaque.
pub fn decode_opaque(
    base: &ObjectPath,
    bytes: &[u8],
    registry: &Registry,
) -> Result<Records, DecodeError> {
    let f = ContentFormat::Opaque;
    super::check_single_level(f, base, registry)?;
    if let Some(kind) = registry.kind_at(base)
        && kind != ResourceType::Opaque
    {
        return Err(DecodeError::new(
            f,
            0,
            DecodeErrorKind::FormatNotForType { path: *base, kind },
        ));
    }
    Ok(alloc::vec![Record {
        path: *base,
        value: Value::Opaque(bytes.to_vec())
    }])
}
