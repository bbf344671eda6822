//! Decode + encode the Device object instance /3/0 (the spec's TLV example
//! values) in every multi-value content format.

#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use rig_proto::content::{self, ContentFormat};
use rig_proto::object::Registry;
use rig_proto::path::ObjectPath;
use rig_proto::value::{Record, Value};

fn device_records() -> Vec<Record> {
    let p = |r| ObjectPath::resource(3, 0, r);
    let ri = |r, i| ObjectPath::resource_instance(3, 0, r, i);
    vec![
        Record::new(p(0), "Open Mobile Alliance"),
        Record::new(p(1), "Lightweight M2M Client"),
        Record::new(p(2), "345000123"),
        Record::new(p(3), "1.0"),
        Record::new(ri(6, 0), 1i64),
        Record::new(ri(6, 1), 5i64),
        Record::new(ri(7, 0), 3800i64),
        Record::new(ri(7, 1), 5000i64),
        Record::new(ri(8, 0), 125i64),
        Record::new(ri(8, 1), 900i64),
        Record::new(p(9), 100i64),
        Record::new(p(10), 15i64),
        Record::new(ri(11, 0), 0i64),
        Record {
            path: p(13),
            value: Value::Time(1_367_491_215),
        },
        Record::new(p(14), "+02:00"),
        Record::new(p(16), "U"),
    ]
}

fn bench(c: &mut Criterion) {
    let reg = Registry::core();
    let base = ObjectPath::instance(3, 0);
    let recs = device_records();
    let mut g = c.benchmark_group("device_3_0_decode_encode");
    for f in [
        ContentFormat::Tlv,
        ContentFormat::SenmlJson,
        ContentFormat::SenmlCbor,
        ContentFormat::Lwm2mJson,
        ContentFormat::Lwm2mCbor,
    ] {
        let bytes = content::encode(f, &base, &recs, &reg).expect("encode");
        g.bench_function(format!("{:?} ({} bytes)", f, bytes.len()), |b| {
            b.iter(|| {
                let r =
                    content::decode(f, &base, std::hint::black_box(&bytes), &reg).expect("decode");
                content::encode(f, &base, &r, &reg).expect("encode")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
