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

/// coap_endpoint_ops, 2026-11-28 (10 M campaign, input
/// `fixtures/corpus/coap_endpoint_ops/regression-oversized-datagram`): a
/// confirmable FETCH with a 1 389-byte body went out block-wise (Block1, 1 024-byte
/// blocks), but once the upload ended and the response came block-wise
/// (Block2), every follow-up request repeated the WHOLE body: a 1 404-byte
/// datagram with a `max_message_size` of 1 152. RFC 7959 §3.3 (Figure 9): the
/// Block2 follow-ups of a block-wise request carry Block2 only, no Block1 and
/// no payload, as the server already holds the request. Spelled out here with
/// the fuzz case's token length (5) and the exact follow-up bytes.
#[test]
fn block2_follow_ups_after_a_block1_body_carry_no_payload() {
    use rig_proto::coap::message::{self, request, response};
    use rig_proto::coap::{
        BlockValue, CoapOption, Config, Endpoint, Event, Method, RequestOptions, ResponseCode,
    };
    use rig_proto::time::Instant;
    use std::net::SocketAddr;

    let c_addr: SocketAddr = "10.0.0.2:5683".parse().unwrap();
    let s_addr: SocketAddr = "10.0.0.1:5683".parse().unwrap();
    let cfg = Config {
        token_len: 5,
        ..Config::default()
    };
    let max = cfg.max_message_size;
    assert_eq!(max, 1152);
    let mut client = Endpoint::new(cfg.clone(), 0x0403);
    let mut server = Endpoint::new(cfg, 0x0200);
    let now = Instant::ZERO;
    let body: Vec<u8> = (0..1389u32).map(|i| i as u8).collect();
    let mut req = request(Method::Fetch, true, "/rd");
    req.payload = body.clone();
    let opts = RequestOptions {
        block_size: Some(1024),
        ..RequestOptions::default()
    };
    let id = client.send_request_with(now, s_addr, req, opts).unwrap();

    // Block1 0/M/1024 (with Size1), answered 2.31 Continue.
    let t1 = client.poll_transmit().unwrap();
    assert!(t1.payload.len() <= max, "{} bytes", t1.payload.len());
    let p1 = message::parse(&t1.payload).unwrap();
    assert_eq!(
        BlockValue::from_packet(&p1, CoapOption::Block1),
        Some(Ok(BlockValue::new(0, true, 1024)))
    );
    assert_eq!(p1.payload, body[..1024]);
    server.handle_datagram(now, c_addr, &t1.payload);
    let cont = server.poll_transmit().unwrap();
    assert_eq!(
        message::response_code(&message::parse(&cont.payload).unwrap()),
        Some(ResponseCode::Continue)
    );
    client.handle_datagram(now, s_addr, &cont.payload);

    // Block1 1/-/1024: the last 365 bytes; the server app gets the whole body
    // and answers with a 2 100-byte representation, so Block2 0/M/1024.
    let t2 = client.poll_transmit().unwrap();
    let p2 = message::parse(&t2.payload).unwrap();
    assert_eq!(p2.payload, body[1024..]);
    server.handle_datagram(now, c_addr, &t2.payload);
    let Some(Event::Request {
        id: incoming,
        request: got,
        ..
    }) = server.poll_event()
    else {
        panic!("no request event")
    };
    assert_eq!(got.payload, body);
    let mut r = response(ResponseCode::Content);
    r.payload = vec![0x5a; 2100];
    server.respond(now, incoming, r).unwrap();
    let b0 = server.poll_transmit().unwrap();
    assert!(b0.payload.len() <= max);
    client.handle_datagram(now, s_addr, &b0.payload);

    // The follow-up for block 1: this datagram was 1 404 bytes. Now exactly
    // CON FETCH, next message id, same token, Uri-Path "rd", Block2 1/0/1024.
    let t3 = client.poll_transmit().unwrap();
    let mid = u16::from_be_bytes([t1.payload[2], t1.payload[3]]).wrapping_add(2);
    let mut want = vec![0x45, 0x05];
    want.extend_from_slice(&mid.to_be_bytes());
    want.extend_from_slice(&t1.payload[4..9]); // the 5-byte token
    want.extend_from_slice(&[0xb2, b'r', b'd', 0xc1, 0x16]);
    assert_eq!(t3.payload, want);

    // Blocks 1 and 2 come from the server's block cache; the client
    // reassembles the 2 100 bytes.
    server.handle_datagram(now, c_addr, &t3.payload);
    let b1 = server.poll_transmit().unwrap();
    client.handle_datagram(now, s_addr, &b1.payload);
    let t4 = client.poll_transmit().unwrap();
    assert!(message::parse(&t4.payload).unwrap().payload.is_empty());
    server.handle_datagram(now, c_addr, &t4.payload);
    let b2 = server.poll_transmit().unwrap();
    client.handle_datagram(now, s_addr, &b2.payload);
    match client.poll_event() {
        Some(Event::Response {
            id: done, response, ..
        }) => {
            assert_eq!(done, id);
            assert_eq!(response.payload, vec![0x5a; 2100]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(client.poll_timeout(), None);
}

/// The same fix's other side: `send_request_with` now refuses a request whose
/// largest message (its options, one block or the whole body, and the Block1,
/// Size1 and Block2 options at their longest) would exceed
/// `max_message_size`, so the endpoint never has to send one.
#[test]
fn send_request_refuses_what_cannot_fit_with_block_options() {
    use rig_proto::coap::message::request;
    use rig_proto::coap::{Config, Endpoint, Method, SendError};
    use rig_proto::time::Instant;

    let peer = "10.0.0.1:5683".parse().unwrap();
    let cfg = Config {
        max_message_size: 64,
        preferred_block_size: 32,
        ..Config::default()
    };
    let mut ep = Endpoint::new(cfg, 7);
    // 4 header + 8 token + 3 Uri-Path + Block1 (4) + Size1 (2) + Block2 (4) + 1 marker + 32 = 58.
    let mut ok = request(Method::Put, true, "/a");
    ok.payload = vec![1; 100];
    ep.send_request(Instant::ZERO, peer, ok).unwrap();
    let t = ep.poll_transmit().unwrap();
    assert!(t.payload.len() <= 64, "{} bytes", t.payload.len());
    // Seven more bytes of Uri-Path push the largest block message over 64.
    let mut big = request(Method::Put, true, "/abcdefgh");
    big.payload = vec![1; 100];
    match ep.send_request(Instant::ZERO, peer, big) {
        Err(SendError::TooLarge { size, limit: 64 }) => assert_eq!(size, 65),
        other => panic!("{other:?}"),
    }
}

/// coap_endpoint_ops, 2026-11-28 (2.07 M campaign, input
/// `fixtures/corpus/coap_endpoint_ops/regression-queue-stalled`): with NSTART
/// reached, a streamed Block2 request queued itself for its next block; the
/// block it already had came again (a notification, new message id) and
/// failed the transfer while it sat in the NSTART queue, and its id stayed
/// there. When its turn came the
/// endpoint popped the dead id and started nothing, so every request queued
/// behind it waited forever ("request never ended"). Ended requests now
/// leave the queue, and a stale id is skipped.
#[test]
fn a_request_that_fails_while_queued_does_not_stall_the_nstart_queue() {
    use rig_proto::coap::message::{self, request, response};
    use rig_proto::coap::{
        Block2Mode, Config, Endpoint, Event, Method, RequestOptions, ResponseCode,
    };
    use rig_proto::time::Instant;
    use std::net::SocketAddr;

    let c_addr: SocketAddr = "10.0.0.2:5683".parse().unwrap();
    let s_addr: SocketAddr = "10.0.0.1:5683".parse().unwrap();
    let cfg = Config {
        nstart: 1,
        preferred_block_size: 16,
        ..Config::default()
    };
    let mut client = Endpoint::new(cfg.clone(), 1);
    let mut server = Endpoint::new(cfg, 2);
    let now = Instant::ZERO;
    let path = |t: &rig_proto::coap::Transmit| {
        let p = message::parse(&t.payload).unwrap();
        p.get_option(rig_proto::coap::CoapOption::UriPath)
            .map(|v| {
                v.iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_default()
    };
    // Answers the one request the server has pending with `body`.
    let answer = |client: &mut Endpoint, server: &mut Endpoint, body: usize| {
        let t = client.poll_transmit().expect("a request went out");
        server.handle_datagram(now, c_addr, &t.payload);
        let Some(Event::Request { id, .. }) = server.poll_event() else {
            panic!("server got no request for {}", path(&t))
        };
        let mut r = response(ResponseCode::Content);
        r.payload = vec![0x5a; body];
        server.respond(now, id, r).unwrap();
        let reply = server.poll_transmit().unwrap();
        client.handle_datagram(now, s_addr, &reply.payload);
        (path(&t), reply.payload)
    };

    // R1 streams a 40-byte body in 16-byte blocks (NON, so its responses are
    // NON too); R2 waits in the queue for R1's slot.
    let stream = RequestOptions {
        block2: Block2Mode::Stream,
        ..RequestOptions::default()
    };
    let r1 = client
        .send_request_with(now, s_addr, request(Method::Get, false, "/big"), stream)
        .unwrap();
    let r2 = client
        .send_request(now, s_addr, request(Method::Get, false, "/two"))
        .unwrap();
    // Block 0 of R1 arrives: R2 takes the slot, R1 queues for block 1.
    let (p, block0) = answer(&mut client, &mut server, 40);
    assert_eq!(p, "big");
    assert!(matches!(client.poll_event(), Some(Event::ResponseBlock { id, .. }) if id == r1));
    // R3 queues behind R1.
    let r3 = client
        .send_request(now, s_addr, request(Method::Get, false, "/three"))
        .unwrap();
    // Block 0 again under a new message id (as a notification would come)
    // fails R1, which expects block 1, while it is queued.
    let mut again = block0.clone();
    again[2] ^= 0x80; // far from the server's next message ids
    client.handle_datagram(now, s_addr, &again);
    assert!(matches!(client.poll_event(), Some(Event::TransferFailed { id, .. }) if id == r1));
    // R2's response frees the slot: R3 must go out (it used to wait forever).
    let (p, _) = answer(&mut client, &mut server, 4);
    assert_eq!(p, "two");
    assert!(matches!(client.poll_event(), Some(Event::Response { id, .. }) if id == r2));
    let (p, _) = answer(&mut client, &mut server, 4);
    assert_eq!(p, "three");
    assert!(matches!(client.poll_event(), Some(Event::Response { id, .. }) if id == r3));
    assert_eq!(client.open_requests(), 0);
    assert!(client.poll_transmit().is_none());
}
