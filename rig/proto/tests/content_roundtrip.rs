//! Round-trip properties: for valid records, `decode(encode(records)) == records`
//! in every multi-value format, at instance, object and composite level, and
//! for single values in the single-value formats.

#![allow(clippy::unwrap_used, clippy::panic)] // test code: a failed unwrap is a failed test

use proptest::prelude::*;
use rig_proto::content::{self, ContentFormat};
use rig_proto::object::Registry;
use rig_proto::path::ObjectPath;
use rig_proto::value::{Record, Value};

/// Floats that every format carries exactly (k / 1024).
fn nice_float() -> impl Strategy<Value = f64> {
    (-1_000_000i32..1_000_000).prop_map(|k| f64::from(k) / 1024.0)
}

fn text() -> impl Strategy<Value = String> {
    "[ -~é€]{0,24}"
}

/// Records for one instance of the test object (33333) and of Device (3),
/// BinaryAppData (19), Server (1), in path order.
fn instance_records(obj: u16, iid: u16) -> BoxedStrategy<Vec<Record>> {
    match obj {
        33333 => (text(), any::<i64>(), nice_float(), any::<bool>())
            .prop_map(move |(s, i, f, b)| {
                vec![
                    Record::new(ObjectPath::resource(33333, iid, 0), s),
                    Record::new(ObjectPath::resource(33333, iid, 1), i),
                    Record::new(ObjectPath::resource(33333, iid, 2), f),
                    Record::new(ObjectPath::resource(33333, iid, 3), b),
                ]
            })
            .boxed(),
        3 => (
            text(),
            proptest::collection::btree_map(0u16..700, any::<i64>(), 1..4),
            any::<i64>(),
            (0u16..10, 0u16..10),
        )
            .prop_map(move |(s, errs, t, (lo, li))| {
                let mut v = vec![Record::new(ObjectPath::resource(3, iid, 0), s)];
                for (ri, e) in errs {
                    v.push(Record::new(
                        ObjectPath::resource_instance(3, iid, 11, ri),
                        e,
                    ));
                }
                v.push(Record {
                    path: ObjectPath::resource(3, iid, 13),
                    value: Value::Time(t),
                });
                v.push(Record {
                    path: ObjectPath::resource_instance(3, iid, 22, 0),
                    value: Value::ObjectLink(lo, li),
                });
                v
            })
            .boxed(),
        19 => proptest::collection::btree_map(
            0u16..300,
            proptest::collection::vec(any::<u8>(), 0..40),
            1..3,
        )
        .prop_map(move |m| {
            m.into_iter()
                .map(|(ri, d)| Record::new(ObjectPath::resource_instance(19, iid, 0, ri), d))
                .collect()
        })
        .boxed(),
        _ => (any::<u64>(), 1i64..65535)
            .prop_map(move |(life, ssid)| {
                vec![
                    Record::new(ObjectPath::resource(1, iid, 0), ssid),
                    Record::new(ObjectPath::resource(1, iid, 1), life),
                ]
            })
            .boxed(),
    }
}

const MULTI: [ContentFormat; 5] = [
    ContentFormat::Tlv,
    ContentFormat::SenmlJson,
    ContentFormat::SenmlCbor,
    ContentFormat::Lwm2mJson,
    ContentFormat::Lwm2mCbor,
];

fn check(
    format: ContentFormat,
    base: &ObjectPath,
    records: &[Record],
) -> Result<(), TestCaseError> {
    let reg = Registry::core();
    // Only the test object's float resource must compare exactly; LwM2M JSON
    // carries u64 above i64::MAX as a plain number, which is fine too.
    let bytes = content::encode(format, base, records, &reg)
        .map_err(|e| TestCaseError::fail(format!("{format} encode: {e}")))?;
    let back = content::decode(format, base, &bytes, &reg)
        .map_err(|e| TestCaseError::fail(format!("{format} decode: {e}")))?;
    prop_assert_eq!(back, records.to_vec(), "{} {}", format, base);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn instance_level_round_trips(
        (obj, iid, recs) in (prop::sample::select(vec![33333u16, 3, 19, 1]), 0u16..5)
            .prop_flat_map(|(o, i)| instance_records(o, i).prop_map(move |r| (o, i, r)))
    ) {
        for f in MULTI {
            check(f, &ObjectPath::instance(obj, iid), &recs)?;
        }
    }

    #[test]
    fn object_level_round_trips(a in instance_records(33333, 0), b in instance_records(33333, 7)) {
        let recs: Vec<Record> = a.into_iter().chain(b).collect();
        for f in MULTI {
            check(f, &ObjectPath::object(33333), &recs)?;
        }
    }

    #[test]
    fn composite_round_trips(a in instance_records(3, 0), b in instance_records(33333, 0)) {
        let recs: Vec<Record> = a.into_iter().chain(b).collect();
        for f in [ContentFormat::SenmlJson, ContentFormat::SenmlCbor, ContentFormat::Lwm2mCbor] {
            check(f, &ObjectPath::Root, &recs)?;
        }
    }

    #[test]
    fn single_values_round_trip(s in text(), i in any::<i64>(), f in nice_float(), b in any::<bool>(), d in proptest::collection::vec(any::<u8>(), 0..64)) {
        let cases = [
            Record::new(ObjectPath::resource(33333, 0, 0), s),
            Record::new(ObjectPath::resource(33333, 0, 1), i),
            Record::new(ObjectPath::resource(33333, 0, 2), f),
            Record::new(ObjectPath::resource(33333, 0, 3), b),
            Record::new(ObjectPath::resource_instance(19, 0, 0, 3), d.clone()),
        ];
        for r in &cases {
            for fm in [ContentFormat::Text, ContentFormat::Cbor, ContentFormat::Tlv, ContentFormat::SenmlJson, ContentFormat::SenmlCbor, ContentFormat::Lwm2mJson, ContentFormat::Lwm2mCbor] {
                check(fm, &r.path, std::slice::from_ref(r))?;
            }
        }
        check(ContentFormat::Opaque, &cases[4].path, &cases[4..])?;
    }
}

#[test]
fn any_f64_round_trips_in_binary_formats() {
    let reg = Registry::core();
    for f in [0.1, -1e300, f64::MIN_POSITIVE, 1.0 / 3.0, 16_777_217.0] {
        let r = [Record::new(ObjectPath::resource(33333, 0, 2), f)];
        for fm in [
            ContentFormat::Tlv,
            ContentFormat::Cbor,
            ContentFormat::SenmlCbor,
            ContentFormat::Lwm2mCbor,
            ContentFormat::Text,
        ] {
            let b = content::encode(fm, &r[0].path, &r, &reg).unwrap();
            assert_eq!(
                content::decode(fm, &r[0].path, &b, &reg).unwrap(),
                r,
                "{fm} {f}"
            );
        }
    }
}
