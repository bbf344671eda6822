//! Regression tests for inputs the cargo-fuzz targets (`rig/fuzz/`) found.
//! Each test holds the crashing input inline and asserts the fixed
//! behaviour; the same input is kept in the target's seed corpus
//! (`fixtures/corpus/<target>/regression-*`) so the fuzzer re-checks it too.

#![allow(clippy::unwrap_used, clippy::panic)] // test code: a failed unwrap is a failed test

use rig_proto::content::{self, ContentFormat, DecodeErrorKind};
use rig_proto::object::Registry;
use rig_proto::path::ObjectPath;

/// content_text, 2026-11-27: `/3/0/0/22` (an instance of the single resource
/// Manufacturer) decoded as plain text although the encoder refuses to write
/// it, so decode → encode failed. The single-value decoders (text, opaque,
/// CBOR) must reject a resource-instance path under a single resource.
#[test]
fn single_value_formats_reject_an_instance_of_a_single_resource() {
    let reg = Registry::core();
    let base = ObjectPath::parse("/3/0/0/22").unwrap();
    let payload = b"\x00/AO3:00";
    for (format, bytes) in [
        (ContentFormat::Text, &payload[..]),
        (ContentFormat::Cbor, &b"\x63abc"[..]),
        (ContentFormat::Opaque, &b"\x01"[..]),
    ] {
        let e = content::decode(format, &base, bytes, &reg).unwrap_err();
        assert_eq!(e.offset, 0, "{format}: {e}");
        assert!(
            matches!(
                e.kind,
                DecodeErrorKind::Multiplicity { .. } | DecodeErrorKind::FormatNotForType { .. }
            ),
            "{format}: {e}"
        );
    }
    // A multiple resource's instance still decodes (/3/0/7/0, Power Source Voltage).
    let ok = ObjectPath::parse("/3/0/7/0").unwrap();
    let recs = content::decode(ContentFormat::Text, &ok, b"3800", &reg).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(
        content::encode(ContentFormat::Text, &ok, &recs, &reg).unwrap(),
        b"3800"
    );
}

/// content_tlv, 2026-11-27: a Resource Instance TLV (`41 01 05`) for
/// `/1/0/3/1`, an instance of the single resource Server/Default Minimum
/// Period, decoded although the encoder refuses it. Rejected now at the TLV's
/// offset; the same TLV for a multiple resource (`/3/0/7/1`) still decodes.
#[test]
fn tlv_rejects_an_instance_of_a_single_resource() {
    let reg = Registry::core();
    let base = ObjectPath::parse("/1/0/3/1").unwrap();
    let e = content::decode(ContentFormat::Tlv, &base, &[0x41, 0x01, 0x05], &reg).unwrap_err();
    assert_eq!(e.offset, 0, "{e}");
    assert!(
        matches!(e.kind, DecodeErrorKind::Multiplicity { .. }),
        "{e}"
    );
    let ok = ObjectPath::parse("/3/0/7/1").unwrap();
    let recs = content::decode(ContentFormat::Tlv, &ok, &[0x41, 0x01, 0x05], &reg).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(
        content::encode(ContentFormat::Tlv, &ok, &recs, &reg).unwrap(),
        [0x41, 0x01, 0x05]
    );
}

/// content_text, 2026-11-27 (CI's bounded run): `10e1333...0` for the float
/// resource /6/0/9 overflowed to infinity, which decoded but no format can
/// encode. An out-of-range literal is now a malformed number.
#[test]
fn text_rejects_a_float_literal_that_overflows() {
    let reg = Registry::core();
    let base = ObjectPath::parse("/6/0/9").unwrap();
    let mut text = b"10e1".to_vec();
    text.extend(std::iter::repeat_n(b'3', 85));
    text.push(b'0');
    let e = content::decode(ContentFormat::Text, &base, &text, &reg).unwrap_err();
    assert_eq!(e.offset, 0, "{e}");
    let recs = content::decode(ContentFormat::Text, &base, b"10e3", &reg).unwrap();
    assert_eq!(
        content::encode(ContentFormat::Text, &base, &recs, &reg).unwrap(),
        b"10000"
    );
}

/// link_format, 2026-11-27 (CI's bounded run): a quoted-pair escaping a
/// character that needs no escape (`\|`) is valid (RFC 6690 takes RFC 2616's
/// quoted-string); it is accepted and unescaped, and the formatted text
/// parses back to the same links.
#[test]
fn link_format_accepts_a_redundant_escape_in_a_quoted_string() {
    let links = rig_proto::link::parse(r#"</3/0>;uri="a\|b""#).unwrap();
    assert_eq!(links[0].param("uri"), Some("a|b"));
    let text = rig_proto::link::format(&links);
    assert_eq!(text, r#"</3/0>;uri="a|b""#);
    assert_eq!(rig_proto::link::parse(&text).unwrap(), links);
}

/// content_tlv, 2026-11-28 (10 M campaign): `88 00 00` for `/31/3/0` is a
/// Multiple Resource TLV with no instances; it decoded to no records, but the
/// encoder refused to write no value at a resource path. Now an empty set of
/// values at a resource path that is not a known single resource encodes as
/// that empty Multiple Resource TLV again; a known single resource still needs
/// exactly one value.
#[test]
fn tlv_empty_multiple_resource_round_trips() {
    let reg = Registry::core();
    for path in ["/31/3/0", "/3/0/7"] {
        let base = ObjectPath::parse(path).unwrap();
        let recs = content::decode(
            ContentFormat::Tlv,
            &base,
            &[0x88, tlv_id(&base), 0x00],
            &reg,
        );
        let recs = recs.unwrap();
        assert!(recs.is_empty(), "{path}: {recs:?}");
        let bytes = content::encode(ContentFormat::Tlv, &base, &recs, &reg).unwrap();
        // The shortest form of the same TLV (length in the type byte).
        assert_eq!(bytes, [0x80, tlv_id(&base)], "{path}");
        let again = content::decode(ContentFormat::Tlv, &base, &bytes, &reg).unwrap();
        assert!(again.is_empty(), "{path}: {again:?}");
    }
    let single = ObjectPath::parse("/3/0/0").unwrap();
    assert!(content::encode(ContentFormat::Tlv, &single, &[], &reg).is_err());
}

fn tlv_id(path: &ObjectPath) -> u8 {
    path.resource_id().map_or(0, |r| r.0 as u8)
}

/// content_senml_json and content_lwm2m_json, 2026-11-28 (10 M campaign): a
/// float such as 1.3674913000000001e51 was written exactly but read back one
/// ULP off (serde_json's default float parser is not correctly rounded), so
/// decode → encode → decode changed the value. rig-proto now enables
/// serde_json's `float_roundtrip`.
#[test]
fn json_floats_round_trip_exactly() {
    let reg = Registry::core();
    let base = ObjectPath::parse("/3/0/43").unwrap();
    for f in [
        1.3674913000000001e51_f64,
        1.3674912444444445e51,
        0.1 + 0.2,
        5e-324,
    ] {
        let recs = vec![rig_proto::value::Record {
            path: base,
            value: rig_proto::value::Value::Float(f),
        }];
        for format in [ContentFormat::SenmlJson, ContentFormat::Lwm2mJson] {
            let bytes = content::encode(format, &base, &recs, &reg).unwrap();
            let back = content::decode(format, &base, &bytes, &reg).unwrap();
            assert_eq!(back, recs, "{format}: {}", String::from_utf8_lossy(&bytes));
        }
    }
}
