//! The server's strictness, seen from a raw UDP client: hand-built CoAP
//! datagrams in, raw responses and recorded deviations out.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use rig_proto::coap::{CoapOption, MessageType, Method, Packet, ResponseCode, message};
use rig_services::lwm2m::{Lwm2mServer, ServerEvent, wait_for};
use tokio::net::UdpSocket;

const WAIT: Duration = Duration::from_secs(5);

struct RawClient {
    socket: UdpSocket,
    server: std::net::SocketAddr,
    mid: u16,
}

impl RawClient {
    async fn new(server: &Lwm2mServer) -> RawClient {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        RawClient {
            socket,
            server: server.local_addr(),
            mid: 0x1000,
        }
    }

    /// Sends a CON request and returns the piggy-backed response.
    async fn exchange(&mut self, mut req: Packet) -> Packet {
        self.mid += 1;
        req.header.message_id = self.mid;
        req.set_token(self.mid.to_be_bytes().to_vec());
        self.socket
            .send_to(&req.to_bytes().unwrap(), self.server)
            .await
            .unwrap();
        let mut buf = [0u8; 2048];
        let (n, _) = tokio::time::timeout(WAIT, self.socket.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let resp = Packet::from_bytes(&buf[..n]).unwrap();
        assert_eq!(resp.header.get_type(), MessageType::Acknowledgement);
        assert_eq!(resp.header.message_id, self.mid);
        resp
    }
}

fn register(queries: &[&str], cf: Option<u32>, body: &str) -> Packet {
    let mut p = message::request(Method::Post, true, "rd");
    for q in queries {
        message::add_uri_query(&mut p, q);
    }
    if let Some(cf) = cf {
        message::set_uint_option(&mut p, CoapOption::ContentFormat, cf);
    }
    p.payload = body.as_bytes().to_vec();
    p
}

async fn server() -> Lwm2mServer {
    Lwm2mServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_clean_register_gets_2_01_with_a_location_and_no_deviation() {
    let server = server().await;
    let mut c = RawClient::new(&server).await;
    let resp = c
        .exchange(register(
            &["ep=clean", "lt=300", "lwm2m=1.1", "b=U"],
            Some(40),
            "</1>;ver=1.1,</1/0>,</3/0>",
        ))
        .await;
    assert_eq!(message::response_code(&resp), Some(ResponseCode::Created));
    let loc = message::location_path(&resp);
    assert_eq!(loc[0], "rd");
    assert_eq!(loc.len(), 2);
    let reg = server.registration("clean").unwrap();
    assert_eq!(reg.location, format!("/rd/{}", loc[1]));
    assert_eq!(reg.object_links, vec!["/1", "/1/0", "/3/0"]);
    assert_eq!(reg.lifetime_s, Some(300));
    assert!(
        server.deviations("clean").is_empty(),
        "{:?}",
        server.deviations("clean")
    );
}

#[tokio::test]
async fn register_without_ep_is_refused_with_4_00_and_recorded() {
    let server = server().await;
    let mut c = RawClient::new(&server).await;
    let resp = c
        .exchange(register(&["lt=300", "lwm2m=1.1"], Some(40), "</1/0>"))
        .await;
    assert_eq!(
        message::response_code(&resp),
        Some(ResponseCode::BadRequest)
    );
    let d = server.unattributed_deviations();
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].what,
        "Register rejected: ep: missing endpoint name (ep is mandatory)"
    );
    assert!(
        d[0].message_excerpt.starts_with("POST /rd?lt=300"),
        "{}",
        d[0].message_excerpt
    );
}

#[tokio::test]
async fn register_deviations_are_each_named() {
    let server = server().await;
    let mut events = server.events();
    let mut c = RawClient::new(&server).await;
    // No lwm2m, the Security object listed, a wrong content format, an unknown parameter.
    let resp = c
        .exchange(register(
            &["ep=sloppy", "lt=60", "x=1"],
            Some(0),
            "</0/0>,</1/0>,</3/0>",
        ))
        .await;
    assert_eq!(
        message::response_code(&resp),
        Some(ResponseCode::Created),
        "accepted as the spec intends"
    );
    let whats: Vec<String> = server
        .deviations("sloppy")
        .into_iter()
        .map(|d| d.what)
        .collect();
    let has = |s: &str| whats.iter().any(|w| w.contains(s));
    assert!(has("Register: x: unknown parameter `x`"), "{whats:?}");
    assert!(has("Register: lwm2m: missing LwM2M version"), "{whats:?}");
    assert!(
        has("payload has Content-Format 0, expected 40"),
        "{whats:?}"
    );
    assert!(
        has("link </0/0> at byte 0: the Security object (0) must not be registered"),
        "{whats:?}"
    );
    assert_eq!(whats.len(), 4, "{whats:?}");
    let ev = wait_for(&mut events, WAIT, |e| {
        matches!(e, ServerEvent::Deviation(_))
    })
    .await;
    assert!(ev.is_some(), "deviations are broadcast too");
}

#[tokio::test]
async fn bad_lifetime_and_bad_links_are_recorded() {
    let server = server().await;
    let mut c = RawClient::new(&server).await;
    let resp = c
        .exchange(register(
            &["ep=lt", "lt=ten", "lwm2m=1.1"],
            Some(40),
            "</1/0>",
        ))
        .await;
    assert_eq!(
        message::response_code(&resp),
        Some(ResponseCode::Created),
        "accepted with the default lifetime"
    );
    let whats: Vec<String> = server
        .deviations("lt")
        .into_iter()
        .map(|d| d.what)
        .collect();
    assert_eq!(
        whats,
        vec!["Register: lt: `ten` is not an unsigned integer"]
    );
    assert_eq!(
        server.registration("lt").unwrap().effective_lifetime_s(),
        86_400
    );

    let resp = c
        .exchange(register(
            &["ep=links", "lwm2m=1.1"],
            Some(40),
            "</1/0/1>,<3/0>",
        ))
        .await;
    assert_eq!(message::response_code(&resp), Some(ResponseCode::Created));
    let whats: Vec<String> = server
        .deviations("links")
        .into_iter()
        .map(|d| d.what)
        .collect();
    assert!(
        whats
            .iter()
            .any(|w| w.contains("only objects and object instances")),
        "{whats:?}"
    );
    assert!(
        whats
            .iter()
            .any(|w| w.contains("link <3/0> at byte 9: not an LwM2M path")),
        "{whats:?}"
    );
}

#[tokio::test]
async fn update_and_deregister_on_an_unknown_location_get_4_04() {
    let server = server().await;
    let mut c = RawClient::new(&server).await;
    let resp = c
        .exchange(message::request(Method::Post, true, "rd/999"))
        .await;
    assert_eq!(message::response_code(&resp), Some(ResponseCode::NotFound));
    let resp = c
        .exchange(message::request(Method::Delete, true, "rd/999"))
        .await;
    assert_eq!(message::response_code(&resp), Some(ResponseCode::NotFound));
}

#[tokio::test]
async fn update_with_register_only_parameters_is_a_deviation() {
    let server = server().await;
    let mut events = server.events();
    let mut c = RawClient::new(&server).await;
    let resp = c
        .exchange(register(
            &["ep=upd", "lwm2m=1.1", "b=U"],
            Some(40),
            "</1/0>,</3/0>",
        ))
        .await;
    let loc = message::location_path(&resp).join("/");
    let mut upd = message::request(Method::Post, true, &loc);
    message::add_uri_query(&mut upd, "lt=77");
    message::add_uri_query(&mut upd, "ep=upd");
    let resp = c.exchange(upd).await;
    assert_eq!(message::response_code(&resp), Some(ResponseCode::Changed));
    let ev = wait_for(&mut events, WAIT, |e| {
        matches!(e, ServerEvent::Updated { .. })
    })
    .await
    .unwrap();
    let ServerEvent::Updated {
        update,
        registration,
        ..
    } = ev
    else {
        unreachable!()
    };
    assert_eq!(update.lifetime_s, Some(77));
    assert_eq!(registration.updates, 1);
    let whats: Vec<String> = server
        .deviations("upd")
        .into_iter()
        .map(|d| d.what)
        .collect();
    assert_eq!(
        whats,
        vec!["Update: ep: parameter `ep` is not allowed in an Update (only lt, b, sms)"]
    );

    let resp = c
        .exchange(message::request(Method::Delete, true, &loc))
        .await;
    assert_eq!(message::response_code(&resp), Some(ResponseCode::Deleted));
    assert!(server.registration("upd").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_registration_expires_after_its_lifetime_without_update() {
    let server = server().await;
    let mut events = server.events();
    let mut c = RawClient::new(&server).await;
    c.exchange(register(
        &["ep=short", "lt=30", "lwm2m=1.1"],
        Some(40),
        "</1/0>",
    ))
    .await;
    assert!(server.registration("short").is_some());
    let ev = wait_for(&mut events, Duration::from_secs(31), |e| {
        matches!(e, ServerEvent::Expired { .. })
    })
    .await;
    assert!(matches!(ev, Some(ServerEvent::Expired { endpoint, .. }) if endpoint == "short"));
    assert!(server.registration("short").is_none());
}

impl RawClient {
    /// Receives one request from the server.
    async fn receive(&mut self) -> Packet {
        let mut buf = [0u8; 2048];
        let (n, _) = tokio::time::timeout(WAIT, self.socket.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        Packet::from_bytes(&buf[..n]).unwrap()
    }

    /// Answers `req` with a piggy-backed response.
    async fn answer(&mut self, req: &Packet, code: ResponseCode, cf: Option<u32>, payload: &[u8]) {
        let mut resp = message::response(code);
        resp.header.set_type(MessageType::Acknowledgement);
        resp.header.message_id = req.header.message_id;
        resp.set_token(req.get_token().to_vec());
        if let Some(cf) = cf {
            message::set_uint_option(&mut resp, CoapOption::ContentFormat, cf);
        }
        resp.payload = payload.to_vec();
        self.socket
            .send_to(&resp.to_bytes().unwrap(), self.server)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn read_answers_are_checked_and_returned_as_sent() {
    let server = server().await;
    let mut c = RawClient::new(&server).await;
    c.exchange(register(&["ep=reader", "lwm2m=1.1"], Some(40), "</3/0>"))
        .await;
    let path: rig_services::lwm2m::ObjectPath = "/3/0/0".parse().unwrap();

    // A correct text answer: decoded, no deviation.
    let s = server.clone();
    let p = path;
    let op = tokio::spawn(async move {
        s.read("reader", &p, Some(rig_services::lwm2m::ContentFormat::Text))
            .await
    });
    let req = c.receive().await;
    assert_eq!(message::uri_path(&req), "3/0/0");
    assert_eq!(message::uint_option(&req, CoapOption::Accept), Some(Ok(0)));
    c.answer(&req, ResponseCode::Content, Some(0), b"maker")
        .await;
    let r = op.await.unwrap().unwrap();
    assert_eq!(r.code, rig_services::lwm2m::Code::CONTENT);
    let decoded = r.decoded.unwrap();
    assert_eq!(
        decoded[0].value,
        rig_services::lwm2m::Value::String("maker".into())
    );
    assert!(server.deviations("reader").is_empty());

    // 2.04 to a Read and a payload without Content-Format: both recorded.
    let s = server.clone();
    let op = tokio::spawn(async move { s.read("reader", &path, None).await });
    let req = c.receive().await;
    c.answer(&req, ResponseCode::Changed, None, b"x").await;
    let r = op.await.unwrap().unwrap();
    assert_eq!(r.code, rig_services::lwm2m::Code::CHANGED);
    let whats: Vec<String> = server
        .deviations("reader")
        .into_iter()
        .map(|d| d.what)
        .collect();
    assert_eq!(
        whats,
        vec!["Read /3/0/0: a success must be 2.05, the client answered 2.04"]
    );

    let s = server.clone();
    let op = tokio::spawn(async move {
        s.read(
            "reader",
            &path,
            Some(rig_services::lwm2m::ContentFormat::Tlv),
        )
        .await
    });
    let req = c.receive().await;
    c.answer(&req, ResponseCode::Content, Some(0), b"maker")
        .await;
    op.await.unwrap().unwrap();
    let whats: Vec<String> = server
        .deviations("reader")
        .into_iter()
        .map(|d| d.what)
        .collect();
    assert_eq!(
        whats[1],
        "Read /3/0/0: asked for content format 11542, the client answered 0"
    );
}

#[tokio::test]
async fn observe_delivers_notifications_and_cancels_actively() {
    use rig_services::lwm2m::{ContentFormat, Value};
    let server = server().await;
    let mut events = server.events();
    let mut c = RawClient::new(&server).await;
    c.exchange(register(&["ep=obs", "lwm2m=1.1"], Some(40), "</3/0>"))
        .await;
    let path: rig_services::lwm2m::ObjectPath = "/3/0/9".parse().unwrap();

    let s = server.clone();
    let op = tokio::spawn(async move { s.observe("obs", &path, Some(ContentFormat::Text)).await });
    let req = c.receive().await;
    assert_eq!(message::uint_option(&req, CoapOption::Observe), Some(Ok(0)));
    let mut resp = message::response(ResponseCode::Content);
    resp.header.set_type(MessageType::Acknowledgement);
    resp.header.message_id = req.header.message_id;
    resp.set_token(req.get_token().to_vec());
    message::set_uint_option(&mut resp, CoapOption::Observe, 1);
    message::set_uint_option(&mut resp, CoapOption::ContentFormat, 0);
    resp.payload = b"80".to_vec();
    c.socket
        .send_to(&resp.to_bytes().unwrap(), c.server)
        .await
        .unwrap();
    let first = op.await.unwrap().unwrap();
    let observation = first.observation.expect("observation established");
    assert_eq!(first.decoded.unwrap()[0].value, Value::Integer(80));

    // A NON notification with a higher sequence number.
    let mut n = message::response(ResponseCode::Content);
    n.header.set_type(MessageType::NonConfirmable);
    n.header.message_id = 0x7777;
    n.set_token(req.get_token().to_vec());
    message::set_uint_option(&mut n, CoapOption::Observe, 2);
    message::set_uint_option(&mut n, CoapOption::ContentFormat, 0);
    n.payload = b"79".to_vec();
    c.socket
        .send_to(&n.to_bytes().unwrap(), c.server)
        .await
        .unwrap();
    let ev = wait_for(&mut events, WAIT, |e| {
        matches!(e, ServerEvent::Notification { .. })
    })
    .await
    .unwrap();
    let ServerEvent::Notification {
        observation: o,
        response,
        endpoint,
        ..
    } = ev
    else {
        unreachable!()
    };
    assert_eq!((o, endpoint.as_str()), (observation, "obs"));
    assert_eq!(response.decoded.unwrap()[0].value, Value::Integer(79));

    // Active cancel: GET with Observe=1 and the same token.
    let s = server.clone();
    let op = tokio::spawn(async move { s.cancel_observe("obs", observation, &path).await });
    let req2 = c.receive().await;
    assert_eq!(
        message::uint_option(&req2, CoapOption::Observe),
        Some(Ok(1))
    );
    assert_eq!(req2.get_token(), req.get_token());
    c.answer(&req2, ResponseCode::Content, Some(0), b"79").await;
    let r = op.await.unwrap().unwrap();
    assert_eq!(r.code, rig_services::lwm2m::Code::CONTENT);
    assert!(
        server.deviations("obs").is_empty(),
        "{:?}",
        server.deviations("obs")
    );
}
