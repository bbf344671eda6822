//! Shared checks for the rig-proto fuzz targets (`fuzz_targets/*.rs`).
//!
//! Every target is one line calling a function here, so the checks can be
//! read (and reused) in one place. A check that fails panics: that is what
//! libFuzzer reports as a crash. Input layouts:
//!
//! - content targets: `<base path>\n<payload>`; the first line is the
//!   request path the payload belongs to (`/3/0`, `/` for composite), the
//!   rest the payload bytes. Inputs without a valid first line are skipped.
//! - `link_format`, `path_parse`, `coap_message`: the raw bytes.
//! - `registry_register`: a sequence of `<len u8><datagram>` records fed to
//!   one [`Registry`] as CoAP requests, `now` advancing between them.
//! - `coap_endpoint_ops`: structured (see [`ops`]).

pub mod ops;

use std::sync::OnceLock;

use rig_proto::coap::message;
use rig_proto::content::{self, ContentFormat};
use rig_proto::object::Registry;
use rig_proto::path::ObjectPath;
use rig_proto::value::{Record, Value};

/// The object registry every content target decodes with (the built-in objects).
pub fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(Registry::core)
}

/// Splits `<base path>\n<payload>`; `None` when the first line is not a path.
pub fn split_base(data: &[u8]) -> Option<(ObjectPath, &[u8])> {
    let nl = data.iter().position(|&b| b == b'\n')?;
    let head = std::str::from_utf8(&data[..nl]).ok()?;
    let base = ObjectPath::parse(head).ok()?;
    Some((base, &data[nl + 1..]))
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        _ => a == b,
    }
}

/// Records equal as sets of `(path, value)` (encoders may regroup records,
/// e.g. TLV by instance), NaN equal to NaN.
pub fn same_records(a: &[Record], b: &[Record]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut a: Vec<&Record> = a.iter().collect();
    let mut b: Vec<&Record> = b.iter().collect();
    a.sort_by_key(|r| r.path);
    b.sort_by_key(|r| r.path);
    a.iter()
        .zip(&b)
        .all(|(x, y)| x.path == y.path && same_value(&x.value, &y.value))
}

/// Decodes `<base>\n<payload>` in `format`. What decodes must re-encode,
/// and the re-encoded bytes must decode to the same records and re-encode
/// to the same bytes (encoding is a function of the records).
pub fn content(format: ContentFormat, data: &[u8]) {
    let Some((base, payload)) = split_base(data) else {
        return;
    };
    let reg = registry();
    let records = match content::decode(format, &base, payload, reg) {
        Ok(r) => r,
        Err(e) => {
            // The error names a place inside (or just past) the payload.
            assert!(
                e.offset <= payload.len(),
                "{format}: error offset {} beyond the {}-byte payload: {e}",
                e.offset,
                payload.len()
            );
            let _ = e.to_string();
            return;
        }
    };
    for r in &records {
        assert!(
            base.is_prefix_of(&r.path) && r.path.level() >= 3,
            "{format}: decoded record {} outside base {base} or above resource level",
            r.path
        );
    }
    let bytes = match content::encode(format, &base, &records, reg) {
        Ok(b) => b,
        Err(e) => {
            if encode_may_refuse(format, &e) {
                return;
            }
            panic!("{format}: decoded {records:?} from {payload:02x?} but cannot re-encode: {e}")
        }
    };
    let again = content::decode(format, &base, &bytes, reg).unwrap_or_else(|e| {
        panic!("{format}: re-encoded {records:?} as {bytes:02x?}, which does not decode: {e}")
    });
    assert!(
        same_records(&records, &again),
        "{format}: round trip changed the records\n first: {records:?}\n again: {again:?}\n bytes: {bytes:02x?}"
    );
    let bytes2 = content::encode(format, &base, &again, reg)
        .unwrap_or_else(|e| panic!("{format}: second encode failed: {e}"));
    assert_eq!(bytes, bytes2, "{format}: encoding is not stable");
}

/// Encode refusals that are the format's (documented) limits, not bugs.
fn encode_may_refuse(format: ContentFormat, e: &content::EncodeError) -> bool {
    use content::EncodeError as E;
    match (format, e) {
        // NaN and infinities have no JSON number spelling.
        (ContentFormat::SenmlJson | ContentFormat::Lwm2mJson, E::Unrepresentable { .. }) => true,
        _ => false,
    }
}

/// A CoAP datagram: strict parse; what parses re-encodes byte for byte
/// (the option encoding of RFC 7252 §3.1 is unique) and the helpers that
/// read options never panic.
pub fn coap_message(data: &[u8]) {
    let p = match message::parse(data) {
        Ok(p) => p,
        Err(e) => {
            assert!(e.offset <= data.len(), "error offset beyond datagram: {e}");
            let _ = e.to_string();
            return;
        }
    };
    let out = p
        .to_bytes()
        .unwrap_or_else(|e| panic!("parsed {p:?} but cannot encode it: {e}"));
    assert_eq!(out, data, "re-encoding a parsed datagram changed it");
    let _ = message::uri_path(&p);
    let _ = message::uri_queries(&p);
    let _ = message::location_path(&p);
    let _ = message::response_code(&p);
    let _ = message::code_string(u8::from(p.header.code));
    for opt in [
        rig_proto::coap::CoapOption::Observe,
        rig_proto::coap::CoapOption::ContentFormat,
        rig_proto::coap::CoapOption::Size1,
        rig_proto::coap::CoapOption::Size2,
        rig_proto::coap::CoapOption::MaxAge,
    ] {
        let _ = message::uint_option(&p, opt);
    }
    for opt in [
        rig_proto::coap::CoapOption::Block1,
        rig_proto::coap::CoapOption::Block2,
    ] {
        if let Some(Ok(b)) = rig_proto::coap::BlockValue::from_packet(&p, opt) {
            let back = rig_proto::coap::BlockValue::decode(&b.encode());
            assert_eq!(back, Ok(b), "block option does not round-trip");
        }
    }
}
