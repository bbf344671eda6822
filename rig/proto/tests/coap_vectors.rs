//! CoAP byte vectors from `fixtures/vectors/coap/` (RFC 7252, 7959, 7641 and
//! LwM2M Register): each message is parsed and compared field by field, and
//! re-encoded from its fields and compared byte by byte; each malformed
//! datagram must fail with the expected kind at the expected offset.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use rig_proto::coap::message::{FormatErrorKind, parse};
use rig_proto::coap::{CoapOption, MessageType, Packet};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/vectors/coap")
}

/// Sections of `[name]` followed by `key = value` lines.
fn sections(file: &str) -> Vec<(String, Vec<(String, String)>)> {
    let text = std::fs::read_to_string(dir().join(file)).unwrap();
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            out.push((name.to_string(), Vec::new()));
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{file}:{}: expected `key = value`", i + 1));
        out.last_mut()
            .unwrap_or_else(|| panic!("{file}:{}: key before any [section]", i + 1))
            .1
            .push((k.trim().to_string(), v.trim().to_string()));
    }
    out
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn get<'a>(kv: &'a [(String, String)], k: &str) -> &'a str {
    kv.iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("missing key {k}"))
}

#[test]
fn well_formed_vectors_parse_and_encode_exactly() {
    let all = sections("messages.txt");
    assert!(
        all.len() >= 15,
        "expected the full vector set, got {}",
        all.len()
    );
    for (name, kv) in all {
        let bytes = hex(get(&kv, "hex"));
        assert!(
            get(&kv, "source").contains("RFC") || get(&kv, "source").contains("LwM2M"),
            "{name}: no citation"
        );
        let p = parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ty = match get(&kv, "type") {
            "CON" => MessageType::Confirmable,
            "NON" => MessageType::NonConfirmable,
            "ACK" => MessageType::Acknowledgement,
            "RST" => MessageType::Reset,
            t => panic!("{name}: bad type {t}"),
        };
        assert_eq!(p.header.get_type(), ty, "{name}: type");
        assert_eq!(
            format!("{}", p.header.code),
            get(&kv, "code"),
            "{name}: code"
        );
        let mid = u16::from_str_radix(get(&kv, "mid").trim_start_matches("0x"), 16).unwrap();
        assert_eq!(p.header.message_id, mid, "{name}: mid");
        assert_eq!(p.get_token(), hex(get(&kv, "token")), "{name}: token");
        let opts: Vec<(u16, Vec<u8>)> = kv
            .iter()
            .filter(|(k, _)| k == "option")
            .map(|(_, v)| {
                let (n, val) = v.split_once(' ').unwrap_or((v.as_str(), ""));
                (n.parse().unwrap(), hex(val))
            })
            .collect();
        let got: Vec<(u16, Vec<u8>)> = p
            .options()
            .flat_map(|(n, vals)| vals.iter().map(move |v| (*n, v.clone())))
            .collect();
        assert_eq!(got, opts, "{name}: options");
        assert_eq!(p.payload, hex(get(&kv, "payload")), "{name}: payload");

        // Fields -> bytes.
        let mut q = Packet::new();
        q.header.set_type(ty);
        q.header.code = p.header.code;
        q.header.message_id = mid;
        q.set_token(hex(get(&kv, "token")));
        for (n, v) in &opts {
            q.add_option(CoapOption::from(*n), v.clone());
        }
        q.payload = hex(get(&kv, "payload"));
        assert_eq!(q.to_bytes().unwrap(), bytes, "{name}: encoding");
    }
}

#[test]
fn malformed_vectors_fail_at_the_stated_offset() {
    let all = sections("malformed.txt");
    assert!(all.len() >= 10);
    for (name, kv) in all {
        let e = parse(&hex(get(&kv, "hex"))).expect_err(&name);
        let offset: usize = get(&kv, "offset").parse().unwrap();
        assert_eq!(e.offset, offset, "{name}: offset ({e})");
        let kind = format!("{:?}", e.kind);
        assert!(kind.starts_with(get(&kv, "kind")), "{name}: kind {kind}");
        assert!(
            !matches!(e.kind, FormatErrorKind::Codec(_)),
            "{name}: fell through to coap-lite"
        );
    }
}
