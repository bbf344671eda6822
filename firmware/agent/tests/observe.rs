//! The agent's Observe support: against the rig's LwM2M server over real UDP
//! on loopback (Observe, Write-Attributes, notifications per pmax and on
//! change, cancel by GET with Observe=1).

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Stdio;
use std::time::Duration;

use rig_services::lwm2m::{
    Code, ContentFormat, Lwm2mServer, ObjectPath, ServerEvent, Value, wait_for,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(10);

fn p(s: &str) -> ObjectPath {
    s.parse().unwrap()
}

async fn spawn_registered(server: &Lwm2mServer, ep: &str, extra: &[&str]) -> Child {
    let mut events = server.events();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rig-agent"))
        .args(["--server", &server.uri(), "--endpoint", ep])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn rig-agent");
    let stdout = child.stdout.take().unwrap();
    // Keep reading stdout so the agent never blocks on a full pipe.
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(_)) = lines.next_line().await {}
    });
    wait_for(
        &mut events,
        WAIT,
        |e| matches!(e, ServerEvent::Registered { endpoint, .. } if endpoint == ep),
    )
    .await
    .expect("Register");
    child
}

async fn notifications(
    events: &mut tokio::sync::broadcast::Receiver<ServerEvent>,
    ep: &str,
    n: usize,
    within: Duration,
) -> Vec<rig_services::lwm2m::Response> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while out.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match wait_for(
            events,
            left,
            |e| matches!(e, ServerEvent::Notification { endpoint, .. } if endpoint == ep),
        )
        .await
        {
            Some(ServerEvent::Notification { response, .. }) => out.push(response),
            _ => break,
        }
    }
    out
}

#[tokio::test]
async fn pmax_drives_periodic_notifications_until_cancelled() {
    let server = Lwm2mServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let _agent = spawn_registered(
        &server,
        "ep-obs",
        &[
            "--time-scale",
            "10",
            "--test-string",
            "alpha",
            "--test-int",
            "42",
        ],
    )
    .await;
    // pmax 10 s at time scale 10: a notification about every second.
    let r = server
        .write_attributes("ep-obs", &p("/33333/0"), "pmax=10")
        .await
        .unwrap();
    assert_eq!(r.code, Code::CHANGED);
    let mut events = server.events();
    let r = server
        .observe("ep-obs", &p("/33333/0"), Some(ContentFormat::Tlv))
        .await
        .unwrap();
    assert_eq!(r.code, Code::CONTENT);
    let obs = r
        .observation
        .expect("the agent established the observation");
    let got = notifications(&mut events, "ep-obs", 2, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 2, "expected 2 notifications within 5 s");
    for n in &got {
        assert_eq!(n.content_format, Some(ContentFormat::Tlv));
        let recs = n.decoded.as_ref().expect("decodable TLV");
        let s = recs
            .iter()
            .find(|r| r.path == p("/33333/0/0"))
            .map(|r| r.value.clone());
        assert_eq!(s, Some(Value::String("alpha".into())));
    }
    // Cancel with GET Observe=1: the answer is a plain 2.05, and no more notifications.
    let r = server
        .cancel_observe("ep-obs", obs, &p("/33333/0"))
        .await
        .unwrap();
    assert_eq!(r.code, Code::CONTENT);
    let mut events = server.events();
    let late = notifications(&mut events, "ep-obs", 1, Duration::from_millis(2500)).await;
    assert!(late.is_empty(), "notification after cancel: {late:?}");
}

#[tokio::test]
async fn a_write_notifies_the_observer_of_the_resource() {
    let server = Lwm2mServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let _agent = spawn_registered(&server, "ep-obs-w", &[]).await;
    let mut events = server.events();
    let r = server
        .observe("ep-obs-w", &p("/33333/0/1"), None)
        .await
        .unwrap();
    assert_eq!(r.text(), "0");
    assert!(r.observation.is_some());
    let w = server
        .write(
            "ep-obs-w",
            &p("/33333/0/1"),
            ContentFormat::Text,
            b"7".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(w.code, Code::CHANGED);
    let got = notifications(&mut events, "ep-obs-w", 1, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 1, "no notification after the write");
    assert_eq!(got[0].text(), "7");
}

#[tokio::test]
async fn bad_write_attributes_are_refused() {
    let server = Lwm2mServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let _agent = spawn_registered(&server, "ep-obs-a", &[]).await;
    for q in ["pmin=10&pmax=5", "pmin=abc", "st=1"] {
        let path = if q == "st=1" {
            "/33333/0"
        } else {
            "/33333/0/1"
        };
        let r = server
            .write_attributes("ep-obs-a", &p(path), q)
            .await
            .unwrap();
        assert_eq!(r.code, Code::BAD_REQUEST, "{q} on {path}");
    }
}
