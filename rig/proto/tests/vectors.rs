//! Loads every byte vector in `fixtures/vectors/*.vec` and checks decode (and,
//! where marked, exact re-encode) against it. See `fixtures/vectors/README.md`.

#![allow(clippy::unwrap_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;

use rig_proto::content::{self, ContentFormat};
use rig_proto::link;
use rig_proto::object::{Registry, ResourceType};
use rig_proto::path::ObjectPath;
use rig_proto::value::{Record, Value};

#[derive(Debug, Default)]
struct Vector {
    file: String,
    name: String,
    source: String,
    format: Option<ContentFormat>,
    base: Option<ObjectPath>,
    roundtrip: bool,
    bytes: Vec<u8>,
    records: Vec<Record>,
    error: Option<usize>,
    links: Option<usize>,
}

fn hex(s: &str, at: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).unwrap_or_else(|_| panic!("{at}: bad hex byte {h:?}")))
        .collect()
}

fn load() -> Vec<Vector> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/vectors");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "vec"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let fname = f.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&f).unwrap();
        let mut cur: Option<Vector> = None;
        for (n, line) in text.lines().enumerate() {
            let at = format!("{fname}:{}", n + 1);
            let line = line.trim_end();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line
                .strip_prefix("[vector ")
                .and_then(|l| l.strip_suffix(']'))
            {
                out.extend(cur.take());
                cur = Some(Vector {
                    file: fname.clone(),
                    name: name.into(),
                    ..Default::default()
                });
                continue;
            }
            let v = cur
                .as_mut()
                .unwrap_or_else(|| panic!("{at}: field before [vector]"));
            let (key, val) = line
                .split_once(" = ")
                .unwrap_or_else(|| panic!("{at}: expected `key = value`"));
            match key {
                "source" => v.source = val.into(),
                "format" => v.format = ContentFormat::from_u16(val.parse().unwrap()),
                "base" => v.base = Some(ObjectPath::parse(val).unwrap()),
                "roundtrip" => v.roundtrip = val == "yes",
                "hex" => v.bytes.extend(hex(val, &at)),
                "text" => v.bytes.extend(val.as_bytes()),
                "error" => v.error = Some(val.parse().unwrap()),
                "links" => v.links = Some(val.parse().unwrap()),
                "record" => {
                    let mut parts = val.splitn(3, ' ');
                    let path = ObjectPath::parse(parts.next().unwrap()).unwrap();
                    let kind = ResourceType::parse(parts.next().unwrap())
                        .unwrap_or_else(|| panic!("{at}: type"));
                    let value = Value::from_text(kind, parts.next().unwrap_or("")).unwrap();
                    v.records.push(Record { path, value });
                }
                other => panic!("{at}: unknown key {other}"),
            }
        }
        out.extend(cur.take());
    }
    out
}

fn check_link(v: &Vector, id: &str) {
    match (link::parse_bytes(&v.bytes), v.error) {
        (Err(e), Some(offset)) => assert_eq!(e.offset, offset, "{id}: {e}"),
        (Ok(l), Some(_)) => panic!("{id}: parsed {} links, expected an error", l.len()),
        (Err(e), None) => panic!("{id}: {e}"),
        (Ok(l), None) => {
            assert_eq!(Some(l.len()), v.links, "{id}: number of links");
            if v.roundtrip {
                assert_eq!(
                    link::format(&l).as_bytes(),
                    v.bytes.as_slice(),
                    "{id}: re-format"
                );
            }
        }
    }
}

#[test]
fn every_vector_decodes_as_documented() {
    let registry = Registry::core();
    let vectors = load();
    assert!(
        vectors.len() >= 20,
        "expected the full vector set, found {}",
        vectors.len()
    );
    let mut formats = std::collections::BTreeSet::new();
    for v in &vectors {
        let id = format!("{} [{}] ({})", v.file, v.name, v.source);
        assert!(!v.source.is_empty(), "{id}: every vector cites a source");
        let format = v.format.unwrap_or_else(|| panic!("{id}: format"));
        let base = v.base.unwrap_or_else(|| panic!("{id}: base"));
        formats.insert(format);
        if format == ContentFormat::Link {
            check_link(v, &id);
            continue;
        }
        let got = content::decode(format, &base, &v.bytes, &registry);
        match v.error {
            Some(offset) => {
                let e = got.expect_err(&id);
                assert_eq!(e.offset, offset, "{id}: error offset ({e})");
            }
            None => {
                let recs = got.unwrap_or_else(|e| panic!("{id}: {e}"));
                assert_eq!(recs, v.records, "{id}");
                if v.roundtrip {
                    let enc = content::encode(format, &base, &v.records, &registry).unwrap();
                    assert_eq!(
                        enc, v.bytes,
                        "{id}: re-encoding\n got {:02X?}\nwant {:02X?}",
                        enc, v.bytes
                    );
                }
            }
        }
    }
    for f in [
        ContentFormat::Link,
        ContentFormat::Text,
        ContentFormat::Opaque,
        ContentFormat::Cbor,
        ContentFormat::SenmlJson,
        ContentFormat::SenmlCbor,
        ContentFormat::Tlv,
        ContentFormat::Lwm2mJson,
        ContentFormat::Lwm2mCbor,
    ] {
        assert!(formats.contains(&f), "no vector for {f}");
    }
}
