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
    // `parse` has no size limit of its own (the Endpoint refuses datagrams over
    // `Config::max_message_size` before parsing), so compare without
    // coap-lite's 1280-byte emit limit.
    let out = p
        .to_bytes_unlimited()
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

/// A path string: what parses is canonical (prints back as the input) and
/// survives the segment and id round trips; parent/child agree.
pub fn path_parse(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    // The same text as CoAP Uri-Path segments (split on '/' after the first).
    let segs: Vec<&str> = s.strip_prefix('/').unwrap_or(s).split('/').collect();
    let from_segs = ObjectPath::from_segments(&segs);
    let p = match ObjectPath::parse(s) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    assert_eq!(p.to_string(), s, "accepted path is not canonical");
    assert_eq!(ObjectPath::parse(&p.to_string()), Ok(p));
    assert_eq!(ObjectPath::from_segments(&p.to_segments()), Ok(p));
    assert_eq!(
        from_segs,
        Ok(p),
        "Uri-Path segments disagree with the string"
    );
    assert_eq!(ObjectPath::from_ids(&p.ids()), Some(p));
    assert_eq!(p.level(), p.ids().len());
    if let Some(parent) = p.parent() {
        assert!(parent.is_prefix_of(&p) && parent != p);
        assert_eq!(parent.level() + 1, p.level());
        if let Some(last) = p.ids().last() {
            assert_eq!(parent.child(*last), Some(p));
        }
    } else {
        assert!(p.is_root());
    }
    assert!(p.is_prefix_of(&p));
}

/// A link-format payload: what parses prints back byte for byte and
/// re-parses to the same links; the typed attributes of each link survive
/// the Write-Attributes query round trip.
pub fn link_format(data: &[u8]) {
    use rig_proto::link::{self, Attributes};
    // The bytes as a Write-Attributes query too (`pmin=1&pmax=5`).
    if let Ok(s) = std::str::from_utf8(data) {
        let q: Vec<&str> = s.split('&').collect();
        if let Ok(a) = Attributes::from_query(&q) {
            let back = Attributes::from_query(&a.to_query())
                .unwrap_or_else(|e| panic!("{a:?} -> {:?} does not parse: {e:?}", a.to_query()));
            assert_eq!(
                back,
                a,
                "attributes changed through to_query: {:?}",
                a.to_query()
            );
        }
    }
    let links = match link::parse_bytes(data) {
        Ok(l) => l,
        Err(e) => {
            assert!(e.offset <= data.len(), "error offset beyond the input: {e}");
            return;
        }
    };
    let text = link::format(&links);
    // A quoted-pair may escape any character (RFC 6690 uses RFC 2616's
    // quoted-string), and `format()` writes only the escapes it needs, so
    // byte-exact reproduction holds for inputs without a backslash; with one,
    // the parsed links must survive the trip unchanged.
    if !data.contains(&b'\\') {
        assert_eq!(
            text.as_bytes(),
            data,
            "format() does not reproduce the input"
        );
    }
    assert_eq!(link::parse(&text).as_ref(), Ok(&links));
    for l in &links {
        let _ = l.attributes();
        let _ = l.object_path();
    }
}

/// Datagrams (`<len><bytes>` records) that parse as CoAP requests are fed to
/// one [`rig_proto::registry::Registry`] (Register, Update, De-register) with
/// time advancing. Checks: the response is a well-formed message, a
/// Register's Location-Path is the registration's location and finds it,
/// the two indexes agree, and expiry removes exactly what is due.
pub fn registry_register(data: &[u8]) {
    use core::time::Duration;
    use rig_proto::coap::CoapOption;
    use rig_proto::registry::{self, Operation, Registry, RegistryEvent};
    use rig_proto::time::Instant;

    let peer_of = |b: u8| -> std::net::SocketAddr {
        std::net::SocketAddr::from(([10, 0, 0, 1 + b % 3], 5683))
    };
    let mut reg = Registry::new(1 + u32::from(data.first().copied().unwrap_or(0) % 4));
    let mut now = Instant::ZERO;
    let mut rest = data.get(1..).unwrap_or(&[]);
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (dgram, tail) = tail.split_at(n);
        rest = tail;
        // Step time by the length byte's low bits (in units of 37 s).
        now = now + Duration::from_secs(37 * u64::from(len & 0x7));
        let Ok(req) = message::parse(dgram) else {
            continue;
        };
        let _ = registry::parse_params(Operation::Register, &req);
        let _ = registry::parse_params(Operation::Update, &req);
        let (resp, ev) = reg.handle_request(now, peer_of(len >> 6), &req);
        if let Some(resp) = &resp {
            let bytes = resp
                .to_bytes()
                .unwrap_or_else(|e| panic!("registry response does not encode: {e}"));
            assert!(
                message::parse(&bytes).is_ok(),
                "registry response is malformed"
            );
        }
        match ev {
            RegistryEvent::Registered { registration, .. } => {
                let resp = resp.expect("a Register gets a response");
                let loc: Vec<String> = resp
                    .get_option(CoapOption::LocationPath)
                    .map(|l| {
                        l.iter()
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                assert_eq!(loc, registration.location);
                let id = loc.last().expect("location has an id");
                assert_eq!(reg.by_location(id), Some(&registration));
                assert_eq!(reg.get(&registration.endpoint), Some(&registration));
                assert!(registration.expires_at >= now);
            }
            RegistryEvent::Updated { registration, .. } => {
                assert!(registration.expires_at >= now);
            }
            _ => {}
        }
        for r in reg.iter() {
            // The endpoint index points at the same registration.
            assert_eq!(reg.get(&r.endpoint), Some(r), "indexes disagree");
        }
        if len & 0x38 == 0x38 {
            let due: usize = reg.iter().filter(|r| r.expires_at <= now).count();
            let before = reg.len();
            let gone = reg.expire(now);
            assert_eq!(gone.len(), due);
            assert_eq!(reg.len(), before - due);
            if let Some(t) = reg.next_expiry() {
                assert!(t > now, "next expiry {t} not after {now}");
            }
        }
    }
}
