//! Unit tests of the agent's accounts and bootstrap session (sans-IO, with
//! hand-built CoAP datagrams from the bootstrap server's side).

use clap::Parser;
use rig_proto::coap::{MessageType, Method};

use super::*;

fn cfg(args: &[&str]) -> AgentConfig {
    let mut v = vec![
        "rig-agent",
        "--server",
        "coap://127.0.0.1:5683",
        "--endpoint",
        "ep1",
    ];
    v.extend_from_slice(args);
    AgentConfig::try_parse_from(v).unwrap()
}

#[test]
fn factory_accounts_c1_and_c13() {
    let plain = Accounts::factory(&cfg(&[]));
    assert!(plain.bootstrap_uri().is_none());
    let acc = plain.server_account().unwrap();
    assert_eq!(acc.uri, "coap://127.0.0.1:5683");
    assert_eq!(acc.security, SecurityMode::Nosec);
    assert_eq!((acc.ssid, acc.lifetime), (1, 86_400));

    let c13 = Accounts::factory(&cfg(&[
        "--bootstrap-uri",
        "coap://127.0.0.1:5690",
        "--bootstrap-only",
    ]));
    assert_eq!(
        c13.bootstrap_uri().as_deref(),
        Some("coap://127.0.0.1:5690")
    );
    let e = c13.server_account().unwrap_err();
    assert!(e.contains("no LwM2M server Security instance"), "{e}");
    assert!(c13.check().is_err());
    // `--bootstrap-only` needs `--bootstrap-uri`.
    let e = AgentConfig::try_parse_from([
        "rig-agent",
        "--server",
        "coap://a",
        "--endpoint",
        "e",
        "--bootstrap-only",
    ])
    .unwrap_err();
    assert!(e.to_string().contains("--bootstrap-uri"), "{e}");
}

#[test]
fn delete_keeps_the_bootstrap_account_and_discover_lists_it() {
    let mut a = Accounts::factory(&cfg(&["--bootstrap-uri", "coap://127.0.0.1:5690"]));
    let links = link::format(&a.discover(&ObjectPath::Root, &[(3, 0)]));
    assert_eq!(
        links,
        r#"</>;lwm2m="1.1",</0/0>;ssid=1;uri="coap://127.0.0.1:5683",</0/1>,</1/0>;ssid=1,</3/0>"#
    );
    a.delete(&ObjectPath::Root).unwrap();
    assert!(a.delete(&ObjectPath::instance(0, 1)).is_err());
    assert_eq!(a.bootstrap_uri().as_deref(), Some("coap://127.0.0.1:5690"));
    assert_eq!(
        link::format(&a.discover(&ObjectPath::object(0), &[(3, 0)])),
        "</0/1>"
    );
    // Deleting twice is fine.
    a.delete(&ObjectPath::object(1)).unwrap();
    assert!(a.delete(&ObjectPath::object(3)).is_err());
}

#[test]
fn writes_make_a_psk_account() {
    let mut a = Accounts::factory(&cfg(&[
        "--bootstrap-uri",
        "coap://127.0.0.1:5690",
        "--bootstrap-only",
    ]));
    let r = |o, i, res, v| Record::new(ObjectPath::resource(o, i, res), v);
    a.write(
        &ObjectPath::instance(0, 0),
        &[
            r(0, 0, 0, Value::String("coaps://127.0.0.1:5684".into())),
            r(0, 0, 1, Value::Boolean(false)),
            r(0, 0, 2, Value::Integer(0)),
            r(0, 0, 3, Value::Opaque(b"id".to_vec())),
            r(0, 0, 5, Value::Opaque(vec![0xaa; 16])),
            r(0, 0, 10, Value::Integer(7)),
        ],
    )
    .unwrap();
    // Only the Security instance: 4.06 material.
    assert!(a.check().unwrap_err().contains("no Server (/1) instance"));
    a.write(
        &ObjectPath::instance(1, 0),
        &[
            r(1, 0, 0, Value::Integer(7)),
            r(1, 0, 1, Value::Integer(30)),
        ],
    )
    .unwrap();
    a.check().unwrap();
    let acc = a.server_account().unwrap();
    assert_eq!(acc.security, SecurityMode::Psk);
    assert_eq!((acc.ssid, acc.lifetime), (7, 30));
    assert_eq!(acc.public, b"id");
    let c = dtls_config(&acc).unwrap().unwrap();
    assert!(matches!(
        c.credentials,
        rig_dtls::ClientCredentials::Psk { .. }
    ));
    let sc = server_config(&cfg(&[]), &acc);
    assert_eq!(sc.server_addr().unwrap(), "127.0.0.1:5684".parse().unwrap());
    // A write outside /0, /1, /2 is refused.
    assert!(a.write(&ObjectPath::instance(3, 0), &[]).is_err());
}

/// A request from the bootstrap server, as bytes.
fn request(method: Method, path: &str, mid: u16, f: impl FnOnce(&mut Packet)) -> Vec<u8> {
    let mut p = message::request(method, true, path);
    p.header.message_id = mid;
    p.set_token(vec![mid as u8]);
    f(&mut p);
    p.to_bytes().unwrap()
}

#[test]
fn session_serves_the_bootstrap_server_and_refuses_an_inconsistent_finish() {
    let bs: SocketAddr = "127.0.0.1:5690".parse().unwrap();
    let c = cfg(&[
        "--bootstrap-uri",
        "coap://127.0.0.1:5690",
        "--bootstrap-only",
    ]);
    let mut s = BootstrapSession::new(&c, Accounts::factory(&c), bs, 1);
    let t0 = Instant::ZERO;
    s.start(t0);
    let (to, bytes) = s.poll_transmit().unwrap();
    assert_eq!(to, bs);
    let req = message::parse(&bytes).unwrap();
    assert_eq!(message::uri_path(&req), "bs");
    assert_eq!(message::uri_queries(&req), vec!["ep=ep1".to_string()]);
    // 2.04 piggy-backed.
    let mut ack = message::response(ResponseCode::Changed);
    ack.header.set_type(MessageType::Acknowledgement);
    ack.header.message_id = req.header.message_id;
    ack.set_token(req.get_token().to_vec());
    s.handle_datagram(t0, bs, &ack.to_bytes().unwrap());

    let answer = |s: &mut BootstrapSession, bytes: Vec<u8>| {
        s.handle_datagram(t0, bs, &bytes);
        let (_, out) = s.poll_transmit().unwrap();
        message::parse(&out).unwrap()
    };
    // Discover.
    let r = answer(
        &mut s,
        request(Method::Get, "/", 10, |p| {
            message::set_uint_option(p, CoapOption::Accept, 40)
        }),
    );
    assert_eq!(message::response_code(&r), Some(ResponseCode::Content));
    assert!(String::from_utf8_lossy(&r.payload).starts_with(r#"</>;lwm2m="1.1",</0/1>"#));
    // Read of /0 is refused (4.00); Finish with no server account is 4.06.
    let r = answer(&mut s, request(Method::Get, "/0", 11, |_| {}));
    assert_eq!(message::response_code(&r), Some(ResponseCode::BadRequest));
    let r = answer(&mut s, request(Method::Post, "/bs", 12, |_| {}));
    assert_eq!(
        message::response_code(&r),
        Some(ResponseCode::NotAcceptable)
    );
    assert!(s.outcome().is_none());
    // Write /1/0 in TLV, then Read it back.
    let defs = Registry::core();
    let recs = vec![
        Record::new(ObjectPath::resource(1, 0, 0), Value::Integer(1)),
        Record::new(ObjectPath::resource(1, 0, 1), Value::Integer(60)),
    ];
    let tlv = content::encode(
        ContentFormat::Tlv,
        &ObjectPath::instance(1, 0),
        &recs,
        &defs,
    )
    .unwrap();
    let r = answer(
        &mut s,
        request(Method::Put, "/1/0", 13, |p| {
            message::set_uint_option(p, CoapOption::ContentFormat, 11542);
            p.payload = tlv.clone();
        }),
    );
    assert_eq!(message::response_code(&r), Some(ResponseCode::Changed));
    let r = answer(&mut s, request(Method::Get, "/1", 14, |_| {}));
    assert_eq!(message::response_code(&r), Some(ResponseCode::Content));
    let back = content::decode(
        ContentFormat::Tlv,
        &ObjectPath::object(1),
        &r.payload,
        &defs,
    )
    .unwrap();
    assert_eq!(back.len(), 2);
    // A NoSec server account in /0/0, then Finish succeeds.
    let sec = vec![
        Record::new(
            ObjectPath::resource(0, 0, 0),
            Value::String("coap://127.0.0.1:5683".into()),
        ),
        Record::new(ObjectPath::resource(0, 0, 1), Value::Boolean(false)),
        Record::new(ObjectPath::resource(0, 0, 2), Value::Integer(3)),
        Record::new(ObjectPath::resource(0, 0, 10), Value::Integer(1)),
    ];
    let tlv =
        content::encode(ContentFormat::Tlv, &ObjectPath::instance(0, 0), &sec, &defs).unwrap();
    let r = answer(
        &mut s,
        request(Method::Put, "/0/0", 15, |p| {
            message::set_uint_option(p, CoapOption::ContentFormat, 11542);
            p.payload = tlv.clone();
        }),
    );
    assert_eq!(message::response_code(&r), Some(ResponseCode::Changed));
    let r = answer(&mut s, request(Method::Post, "/bs", 16, |_| {}));
    assert_eq!(message::response_code(&r), Some(ResponseCode::Changed));
    assert_eq!(s.outcome(), Some(&Outcome::Finished));
    assert_eq!(s.poll_output().as_deref(), Some("bootstrapped"));
    let acc = s.into_accounts().server_account().unwrap();
    assert_eq!(acc.lifetime, 60);
}
