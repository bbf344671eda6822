//! The rig's bootstrap server against the reference agent (a real process)
//! on loopback: every bootstrap operation, the 4.06 answer to an
//! inconsistent configuration, server-initiated bootstrap (Execute /1/0/9),
//! and the provisioning of NoSec, PSK and X.509 accounts followed by the
//! Register at the rig's LwM2M server in that mode.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use rig_services::bootstrap::{
    AccountSecurity, BootstrapEvent, BootstrapServer, Provisioning, parse_links, wait_for,
};
use rig_services::lwm2m::{self, Code, Lwm2mServer, ObjectPath, ServerConfig, ServerEvent};

const WAIT: Duration = Duration::from_secs(15);

mod common;
use common::Agent;

/// Starts the agent with `args`.
fn spawn_agent(args: &[&str]) -> Agent {
    Agent::spawn(args, WAIT)
}

fn pki(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/pki")
        .join(name)
}

fn store() -> rig_dtls::CredentialStore {
    toml::from_str(&std::fs::read_to_string(pki("store.toml")).unwrap()).unwrap()
}

async fn bs_server() -> BootstrapServer {
    BootstrapServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// Starts the agent in configuration C.13 (bootstrap account only) and
/// waits for its Bootstrap-Request.
async fn start_c13(bs: &BootstrapServer, ep: &str) -> Agent {
    let mut events = bs.events();
    let uri = bs.uri();
    let agent = spawn_agent(&[
        "--server",
        "coap://127.0.0.1:9",
        "--endpoint",
        ep,
        "--bootstrap-uri",
        &uri,
        "--bootstrap-only",
    ]);
    let ev = wait_for(&mut events, WAIT, |e| {
        matches!(e, BootstrapEvent::BootstrapRequest { .. })
    })
    .await
    .expect("a Bootstrap-Request");
    let BootstrapEvent::BootstrapRequest { endpoint, .. } = ev else {
        unreachable!()
    };
    assert_eq!(endpoint, ep);
    agent
}

async fn registered(events: &mut tokio::sync::broadcast::Receiver<ServerEvent>, ep: &str) {
    lwm2m::wait_for(
        events,
        WAIT,
        |e| matches!(e, ServerEvent::Registered { endpoint, .. } if endpoint == ep),
    )
    .await
    .unwrap_or_else(|| panic!("no Register from {ep}"));
}

#[tokio::test]
async fn every_bootstrap_operation_then_register_and_server_initiated_bootstrap() {
    let bs = bs_server().await;
    let lw = Lwm2mServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut lw_events = lw.events();
    let ep = "bs-nosec";
    let mut agent = start_c13(&bs, ep).await;

    // Discover: the version link, the bootstrap account, the Device object.
    let d = bs.discover(ep, &ObjectPath::Root).await.unwrap();
    assert_eq!(d.code, Code::CONTENT);
    let links = parse_links(&d).unwrap();
    assert_eq!(links[0].param("lwm2m"), Some("1.1"));
    let text = d.text();
    assert!(text.contains("</0/1>") && text.contains("</3/0>"), "{text}");
    assert!(!text.contains("</1/"), "{text}");
    // Read of /0 is refused; Finish now is 4.06 (int-9).
    let r = bs.read(ep, &ObjectPath::object(0), None).await.unwrap();
    assert_eq!(r.code, Code::BAD_REQUEST);
    let f = bs.finish(ep).await.unwrap();
    assert_eq!(f.code, Code::NOT_ACCEPTABLE, "{}", f.text());
    // Delete, Write, Read back, Finish.
    assert_eq!(
        bs.delete(ep, &ObjectPath::Root).await.unwrap().code,
        Code::DELETED
    );
    assert_eq!(
        bs.delete(ep, &ObjectPath::Root).await.unwrap().code,
        Code::DELETED
    );
    let mut account = Provisioning::nosec(&lw.uri());
    account.lifetime_s = 120;
    let r = bs
        .write(ep, &ObjectPath::instance(0, 0), &account.security_records())
        .await
        .unwrap();
    assert_eq!(r.code, Code::CHANGED);
    let r = bs
        .write(ep, &ObjectPath::instance(1, 0), &account.server_records())
        .await
        .unwrap();
    assert_eq!(r.code, Code::CHANGED);
    let r = bs.read(ep, &ObjectPath::object(1), None).await.unwrap();
    assert_eq!(r.code, Code::CONTENT);
    let values = r.decoded.unwrap();
    assert!(
        values
            .iter()
            .any(|x| x.path == ObjectPath::resource(1, 0, 1) && x.value.as_i64() == Some(120))
    );
    let d = bs.discover(ep, &ObjectPath::Root).await.unwrap();
    assert!(d.text().contains("</0/0>;ssid=1"), "{}", d.text());
    assert_eq!(bs.finish(ep).await.unwrap().code, Code::CHANGED);
    agent.expect("bootstrapped").await;
    registered(&mut lw_events, ep).await;
    assert_eq!(lw.registration(ep).unwrap().lifetime_s, Some(120));
    assert!(bs.deviations(ep).is_empty(), "{:?}", bs.deviations(ep));

    // Server-initiated bootstrap (int-5): Execute /1/0/9.
    let mut bs_events = bs.events();
    let r = lw
        .execute(ep, &ObjectPath::resource(1, 0, 9), None)
        .await
        .unwrap();
    assert_eq!(r.code, Code::CHANGED);
    wait_for(&mut bs_events, WAIT, |e| {
        matches!(e, BootstrapEvent::BootstrapRequest { .. })
    })
    .await
    .expect("a second Bootstrap-Request");
    assert_eq!(bs.session(ep).unwrap().requests, 2);
    let f = bs
        .provision(ep, &Provisioning::nosec(&lw.uri()))
        .await
        .unwrap();
    assert_eq!(f.code, Code::CHANGED);
    registered(&mut lw_events, ep).await;
}

#[tokio::test]
async fn psk_account_is_provisioned_and_used() {
    let bs = bs_server().await;
    let lw = Lwm2mServer::bind_secure(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig::default(),
        rig_dtls::ServerConfig::new(store()),
    )
    .await
    .unwrap();
    let mut lw_events = lw.events();
    let ep = "rig-dev-psk";
    let _agent = start_c13(&bs, ep).await;
    let mut account = Provisioning::nosec(&lw.uri());
    account.security = AccountSecurity::Psk {
        identity: b"rig-dev-psk".to_vec(),
        key: rig_dtls::from_hex("c7ffbeddffd4dc8c4787b554a90a9184").unwrap(),
    };
    let f = bs.provision(ep, &account).await.unwrap();
    assert_eq!(f.code, Code::CHANGED);
    let ev = lwm2m::wait_for(&mut lw_events, WAIT, |e| {
        matches!(e, ServerEvent::SecureSession { .. })
    })
    .await
    .expect("a DTLS session");
    let ServerEvent::SecureSession { endpoint, .. } = ev else {
        unreachable!()
    };
    assert_eq!(endpoint.as_deref(), Some(ep));
    registered(&mut lw_events, ep).await;
    assert!(lw.deviations(ep).is_empty(), "{:?}", lw.deviations(ep));
}

#[tokio::test]
async fn x509_account_is_provisioned_and_used() {
    let bs = bs_server().await;
    let mut dtls = rig_dtls::ServerConfig::new(store());
    dtls.identity = Some(rig_dtls::ServerIdentity {
        key: rig_dtls::load_private_key(&pki("server.key")).unwrap(),
        chain: rig_dtls::load_certificates(&pki("server.pem")).unwrap(),
    });
    dtls.client_ca = rig_dtls::load_certificates(&pki("ca.pem")).unwrap();
    let lw = Lwm2mServer::bind_secure(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig::default(),
        dtls,
    )
    .await
    .unwrap();
    let mut lw_events = lw.events();
    let ep = "rig-dev-1";
    let _agent = start_c13(&bs, ep).await;
    let der_cert = |f: &str| {
        rig_dtls::load_certificates(&pki(f)).unwrap()[0]
            .to_der()
            .unwrap()
    };
    let mut account = Provisioning::nosec(&lw.uri());
    account.security = AccountSecurity::Certificate {
        client_cert_der: der_cert("client-dev-1.pem"),
        client_private_der: rig_dtls::load_private_key(&pki("client-dev-1.key"))
            .unwrap()
            .private_key_to_der()
            .unwrap(),
        server_cert_der: der_cert("ca.pem"),
    };
    let f = bs.provision(ep, &account).await.unwrap();
    assert_eq!(f.code, Code::CHANGED);
    registered(&mut lw_events, ep).await;
    assert!(lw.deviations(ep).is_empty(), "{:?}", lw.deviations(ep));
}
