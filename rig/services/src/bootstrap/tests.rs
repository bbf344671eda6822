//! Unit tests of the bootstrap server: request bytes, strict checks, and
//! Bootstrap-Request handling over a real UDP socket with hand-built datagrams.

use std::time::Duration;

use rig_proto::coap::message;

use super::core::{build_request, check};
use super::*;

#[test]
fn finish_is_post_bs_and_discover_asks_for_link_format() {
    let finish = build_request(&BsOperation::Finish);
    assert_eq!(message::uri_path(&finish), "bs");
    let mut f = finish.clone();
    f.header.message_id = 0x1234;
    // CON POST, no token, MID 0x1234, Uri-Path "bs".
    assert_eq!(
        f.to_bytes().unwrap(),
        vec![0x40, 0x02, 0x12, 0x34, 0xb2, b'b', b's']
    );
    let mut d = build_request(&BsOperation::Discover {
        path: ObjectPath::Root,
    });
    d.header.message_id = 1;
    // CON GET, MID 1, Accept (17) = 40: delta 17 = 13 + 4 → 0xd1 0x04 0x28.
    assert_eq!(
        d.to_bytes().unwrap(),
        vec![0x40, 0x01, 0x00, 0x01, 0xd1, 0x04, 0x28]
    );
    let del = build_request(&BsOperation::Delete {
        path: ObjectPath::object(0),
    });
    assert_eq!(message::uri_path(&del), "0");
}

#[test]
fn strict_checks_name_the_problem() {
    let discover = BsOperation::Discover {
        path: ObjectPath::Root,
    };
    let good = br#"</>;lwm2m="1.1",</0/0>;ssid=1,</0/1>,</1/0>;ssid=1,</3/0>"#;
    assert!(check(&discover, Code::CONTENT, Some(ContentFormat::Link), good).is_empty());
    let p = check(
        &discover,
        Code::CONTENT,
        Some(ContentFormat::Link),
        b"</0/0>,</1/0>",
    );
    assert!(p[0].contains("lwm2m"), "{p:?}");
    let p = check(&discover, Code::CONTENT, Some(ContentFormat::Text), good);
    assert!(p[0].contains("Content-Format 40"), "{p:?}");
    let p = check(&discover, Code::CONTENT, Some(ContentFormat::Link), b"<0/0");
    assert!(p[0].contains("does not parse"), "{p:?}");

    let read0 = BsOperation::Read {
        path: ObjectPath::object(0),
        accept: None,
    };
    let p = check(&read0, Code::CONTENT, Some(ContentFormat::Tlv), b"");
    assert!(p[0].contains("only /1 and /2"), "{p:?}");
    assert!(check(&read0, Code::BAD_REQUEST, None, b"").is_empty());

    let write = BsOperation::Write {
        path: ObjectPath::instance(0, 0),
        format: ContentFormat::Tlv,
        payload: Vec::new(),
    };
    let p = check(&write, Code::CREATED, None, b"");
    assert!(p[0].contains("answered 2.01"), "{p:?}");
    assert!(check(&write, Code::CHANGED, None, b"").is_empty());
    assert!(check(&BsOperation::Finish, Code::NOT_ACCEPTABLE, None, b"").is_empty());
    assert!(!check(&BsOperation::Finish, Code::DELETED, None, b"").is_empty());
}

#[test]
fn provisioning_records_follow_the_security_object() {
    let mut p = Provisioning::nosec("coap://127.0.0.1:5683");
    p.security = AccountSecurity::Psk {
        identity: b"id".to_vec(),
        key: vec![1, 2],
    };
    let recs = p.security_records();
    let get = |r: u16| {
        recs.iter()
            .find(|x| x.path == ObjectPath::resource(0, 0, r))
            .map(|x| x.value.clone())
    };
    assert_eq!(get(2), Some(Value::Integer(0)));
    assert_eq!(get(3), Some(Value::Opaque(b"id".to_vec())));
    assert_eq!(get(5), Some(Value::Opaque(vec![1, 2])));
    assert_eq!(get(10), Some(Value::Integer(1)));
    assert_eq!(format!("{:?}", p.security), "AccountSecurity(psk)");
    // TLV encoding of both instances works with the core definitions.
    let defs = rig_proto::object::Registry::core();
    rig_proto::content::encode(
        ContentFormat::Tlv,
        &ObjectPath::instance(0, 0),
        &recs,
        &defs,
    )
    .unwrap();
    rig_proto::content::encode(
        ContentFormat::Tlv,
        &ObjectPath::instance(1, 0),
        &p.server_records(),
        &defs,
    )
    .unwrap();
}

/// A CON POST /bs with the given queries, MID 7, token 0xab.
fn bootstrap_request(queries: &[&str]) -> Vec<u8> {
    let mut p = message::request(rig_proto::coap::Method::Post, true, "bs");
    for q in queries {
        message::add_uri_query(&mut p, q);
    }
    p.header.message_id = 7;
    p.set_token(vec![0xab]);
    p.to_bytes().unwrap()
}

async fn exchange(
    sock: &tokio::net::UdpSocket,
    server: SocketAddr,
    bytes: &[u8],
) -> rig_proto::coap::Packet {
    sock.send_to(bytes, server).await.unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    message::parse(&buf[..n]).unwrap()
}

#[tokio::test]
async fn bootstrap_request_is_accepted_and_missing_ep_is_a_deviation() {
    let server = BootstrapServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut events = server.events();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let ack = exchange(&sock, server.local_addr(), &bootstrap_request(&["ep=dev1"])).await;
    // Piggy-backed ACK 2.04 with our MID and token.
    assert_eq!(ack.header.message_id, 7);
    assert_eq!(ack.get_token(), &[0xab]);
    assert_eq!(u8::from(ack.header.code), Code::CHANGED.0);
    let ev = wait_for(&mut events, Duration::from_secs(5), |e| {
        matches!(e, BootstrapEvent::BootstrapRequest { .. })
    })
    .await
    .unwrap();
    let BootstrapEvent::BootstrapRequest { endpoint, peer, .. } = ev else {
        unreachable!()
    };
    assert_eq!(endpoint, "dev1");
    assert_eq!(peer, sock.local_addr().unwrap());
    assert_eq!(server.session("dev1").unwrap().requests, 1);

    let mut no_ep = bootstrap_request(&["pct=11542"]);
    no_ep[2] = 0;
    no_ep[3] = 8; // a new MID
    let r = exchange(&sock, server.local_addr(), &no_ep).await;
    assert_eq!(u8::from(r.header.code), Code::BAD_REQUEST.0);
    let d = server.unattributed_deviations();
    assert_eq!(d.len(), 1);
    assert!(d[0].what.contains("no `ep`"), "{}", d[0]);

    // An operation on an endpoint that never asked fails at once, naming why.
    let e = server.finish("nobody").await.unwrap_err();
    assert!(e.to_string().contains("no Bootstrap-Request"), "{e}");
    server.shutdown();
}

#[tokio::test]
async fn finish_answer_code_is_returned_and_a_silent_client_times_out() {
    let server = BootstrapServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .with_op_timeout(Duration::from_millis(300));
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    exchange(&sock, server.local_addr(), &bootstrap_request(&["ep=dev2"])).await;
    let s2 = server.clone();
    let finish = tokio::spawn(async move {
        s2.with_op_timeout(Duration::from_secs(5))
            .finish("dev2")
            .await
    });
    // Receive the Finish and answer 4.06 piggy-backed.
    let mut buf = [0u8; 1500];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let req = message::parse(&buf[..n]).unwrap();
    assert_eq!(message::uri_path(&req), "bs");
    let mut resp = message::response(rig_proto::coap::ResponseCode::NotAcceptable);
    resp.header
        .set_type(rig_proto::coap::MessageType::Acknowledgement);
    resp.header.message_id = req.header.message_id;
    resp.set_token(req.get_token().to_vec());
    sock.send_to(&resp.to_bytes().unwrap(), from).await.unwrap();
    let r = finish.await.unwrap().unwrap();
    assert_eq!(r.code, Code::NOT_ACCEPTABLE);
    assert!(server.deviations("dev2").is_empty());

    // Nobody answers this Discover: the caller's timeout applies.
    let e = server
        .discover("dev2", &ObjectPath::Root)
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e}");
}
