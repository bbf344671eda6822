//! Bad payloads give errors that say what is wrong and where (byte offset),
//! in every format, through the public API a server or agent uses.

#![allow(clippy::unwrap_used, clippy::panic)] // test code: a failed unwrap is a failed test

use rig_proto::content::{self, ContentFormat, DecodeErrorKind};
use rig_proto::object::Registry;
use rig_proto::path::ObjectPath;

fn err(format: ContentFormat, base: ObjectPath, bytes: &[u8]) -> content::DecodeError {
    content::decode(format, &base, bytes, &Registry::core()).unwrap_err()
}

#[test]
fn tlv_value_overrun_names_offset_and_need() {
    // Object instance claims 10 bytes, only 3 follow.
    let e = err(
        ContentFormat::Tlv,
        ObjectPath::object(3),
        &[0x08, 0x00, 0x0A, 0xC1, 0x09, 0x64],
    );
    assert_eq!(e.offset, 6);
    assert!(matches!(
        e.kind,
        DecodeErrorKind::Truncated {
            what: "value",
            need: 7
        }
    ));
    assert_eq!(
        e.to_string(),
        "application/vnd.oma.lwm2m+tlv (11542): truncated: value needs 7 more byte(s) (at byte 6)"
    );
}

#[test]
fn tlv_instance_id_must_match_request() {
    let e = err(
        ContentFormat::Tlv,
        ObjectPath::instance(3, 0),
        &[0x03, 0x01, 0xC1, 0x09, 0x64],
    );
    assert_eq!(e.offset, 0);
    assert!(e.to_string().contains("object instance id differs"), "{e}");
}

#[test]
fn tlv_single_resource_sent_as_multiple() {
    // /3/0/9 Battery Level is single; sent as a multiple resource.
    let e = err(
        ContentFormat::Tlv,
        ObjectPath::instance(3, 0),
        &[0x83, 0x09, 0x41, 0x00, 0x64],
    );
    assert!(
        e.to_string()
            .contains("/3/0/9: single resource sent as a multiple resource TLV"),
        "{e}"
    );
}

#[test]
fn text_rejects_multiple_resource_and_bad_utf8() {
    let e = err(ContentFormat::Text, ObjectPath::resource(3, 0, 6), b"1");
    assert!(
        matches!(e.kind, DecodeErrorKind::Multiplicity { .. }),
        "{e}"
    );
    let e = err(
        ContentFormat::Text,
        ObjectPath::resource(3, 0, 0),
        b"ab\xffcd",
    );
    assert_eq!((e.offset, e.kind), (2, DecodeErrorKind::InvalidUtf8));
    let e = err(ContentFormat::Text, ObjectPath::instance(3, 0), b"x");
    assert!(
        matches!(e.kind, DecodeErrorKind::UnsupportedLevel(_)),
        "{e}"
    );
}

#[test]
fn cbor_of_wrong_type_for_resource() {
    // /3/0/9 is Integer; CBOR text "x".
    let e = err(
        ContentFormat::Cbor,
        ObjectPath::resource(3, 0, 9),
        &[0x61, b'x'],
    );
    assert!(
        e.to_string()
            .contains("value for /3/0/9: Integer expected, got string \"x\""),
        "{e}"
    );
}

#[test]
fn senml_json_syntax_error_has_offset() {
    let bytes = b"[{\"n\":\"/3/0/9\",\"v\":}]";
    let e = err(ContentFormat::SenmlJson, ObjectPath::Root, bytes);
    assert!(matches!(e.kind, DecodeErrorKind::Syntax(_)), "{e}");
    assert_eq!(e.offset, 19);
}

#[test]
fn senml_path_outside_request() {
    let e = err(
        ContentFormat::SenmlJson,
        ObjectPath::instance(3, 0),
        br#"[{"n":"/4/0/0","v":1}]"#,
    );
    assert!(
        e.to_string()
            .contains("/4/0/0 is not under the request path /3/0"),
        "{e}"
    );
}

#[test]
fn senml_cbor_trailing_garbage() {
    let bytes = [0x80, 0x00];
    let e = err(ContentFormat::SenmlCbor, ObjectPath::Root, &bytes);
    assert_eq!((e.offset, e.kind), (1, DecodeErrorKind::Trailing(1)));
}

#[test]
fn duplicate_path_is_reported_at_second_record() {
    let bytes = br#"[{"n":"/3/0/9","v":1},{"n":"/3/0/9","v":2}]"#;
    let e = err(ContentFormat::SenmlJson, ObjectPath::Root, bytes);
    assert_eq!(e.offset, 22);
    assert!(matches!(e.kind, DecodeErrorKind::Duplicate(_)), "{e}");
}

#[test]
fn lwm2m_cbor_deeper_than_four_levels() {
    // {3: {0: {6: {0: {1: 1}}}}}
    let bytes = [
        0xA1, 0x03, 0xA1, 0x00, 0xA1, 0x06, 0xA1, 0x00, 0xA1, 0x01, 0x01,
    ];
    let e = err(ContentFormat::Lwm2mCbor, ObjectPath::Root, &bytes);
    assert_eq!(e.offset, 9);
    assert!(matches!(e.kind, DecodeErrorKind::BadPath(_)), "{e}");
}

#[test]
fn lwm2m_json_missing_e() {
    let e = err(
        ContentFormat::Lwm2mJson,
        ObjectPath::instance(3, 0),
        br#"{"bn":"/3/0/"}"#,
    );
    assert!(e.to_string().contains("missing \"e\" array"), "{e}");
}

#[test]
fn opaque_only_for_opaque_resources() {
    let e = err(ContentFormat::Opaque, ObjectPath::resource(3, 0, 0), b"abc");
    assert!(e.to_string().contains("/3/0/0 is String"), "{e}");
    let ok = content::decode(
        ContentFormat::Opaque,
        &ObjectPath::resource(5, 0, 0),
        b"\x00\x01",
        &Registry::core(),
    )
    .unwrap();
    assert_eq!(ok.len(), 1);
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    // SenML CBOR record {9: [[[[...]]]]} with 200 000 nested arrays, then garbage.
    let mut b = vec![0x81, 0xA1, 0x09];
    b.extend(std::iter::repeat_n(0x81u8, 200_000));
    b.push(0x00);
    let _ = content::decode(
        ContentFormat::SenmlCbor,
        &ObjectPath::Root,
        &b,
        &Registry::core(),
    );
    let _ = content::senml::decode_paths(ContentFormat::SenmlCbor, &b);
    // The same depth of JSON.
    let mut j = b"[{\"x\":".to_vec();
    j.extend(std::iter::repeat_n(b'[', 200_000));
    let e = err(ContentFormat::SenmlJson, ObjectPath::Root, &j);
    assert!(matches!(e.kind, DecodeErrorKind::Syntax(_)), "{e}");
    let e = err(ContentFormat::Lwm2mJson, ObjectPath::Root, &j);
    assert!(matches!(e.kind, DecodeErrorKind::Syntax(_)), "{e}");
}
