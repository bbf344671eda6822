//! The rig's LwM2M server against the reference agent, over real UDP on
//! loopback: the agent binary runs as a child process, driven through its
//! console, and the server is driven through its async API.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Stdio;
use std::time::Duration;

use rig_services::OpError;
use rig_services::lwm2m::{
    Code, ContentFormat, Lwm2mServer, ObjectPath, ServerConfig, ServerEvent, Value, wait_for,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const WAIT: Duration = Duration::from_secs(10);

struct Agent {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    seen: Vec<String>,
}

impl Agent {
    fn spawn(server: &Lwm2mServer, ep: &str, extra: &[&str]) -> Agent {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rig-agent"))
            .args(["--server", &server.uri(), "--endpoint", ep])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn rig-agent");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Agent {
            child,
            stdin,
            stdout,
            seen: Vec::new(),
        }
    }

    /// Reads console lines until one starts with `prefix` (bounded by WAIT).
    async fn expect(&mut self, prefix: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let line = tokio::time::timeout_at(deadline, self.stdout.next_line())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no console line starting with {prefix:?} within {WAIT:?}; saw {:?}",
                        self.seen
                    )
                })
                .unwrap()
                .unwrap_or_else(|| panic!("agent stdout closed; saw {:?}", self.seen));
            self.seen.push(line.clone());
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    async fn send(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }
}

async fn server() -> Lwm2mServer {
    Lwm2mServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn p(s: &str) -> ObjectPath {
    s.parse().unwrap()
}

async fn registered(server: &Lwm2mServer, ep: &str, extra: &[&str]) -> Agent {
    let mut events = server.events();
    let mut agent = Agent::spawn(server, ep, extra);
    agent.expect("ready").await;
    let line = agent.expect("registered ").await;
    let ev = wait_for(
        &mut events,
        WAIT,
        |e| matches!(e, ServerEvent::Registered { endpoint, .. } if endpoint == ep),
    )
    .await
    .expect("Registered event");
    let ServerEvent::Registered { registration, .. } = ev else {
        unreachable!()
    };
    assert_eq!(line, format!("registered {}", registration.location));
    agent
}

#[tokio::test]
async fn register_carries_configuration_c1_and_no_deviation() {
    let server = server().await;
    let _agent = registered(&server, "ep-reg", &[]).await;
    let reg = server.registration("ep-reg").unwrap();
    assert_eq!(reg.lifetime_s, Some(86_400));
    assert_eq!(reg.lwm2m_version.as_deref(), Some("1.1"));
    assert_eq!(reg.binding.as_deref(), Some("U"));
    assert!(
        reg.object_links.contains(&"/1/0".to_string()),
        "{:?}",
        reg.object_links
    );
    assert!(
        reg.object_links.contains(&"/3/0".to_string()),
        "{:?}",
        reg.object_links
    );
    assert!(
        reg.object_links.contains(&"/33333/0".to_string()),
        "{:?}",
        reg.object_links
    );
    assert!(
        !reg.object_links.iter().any(|l| l.starts_with("/0")),
        "{:?}",
        reg.object_links
    );
    assert!(reg.location.starts_with("/rd/"));
    assert_eq!(server.deviations("ep-reg"), vec![]);
}

#[tokio::test]
async fn reads_in_text_and_tlv() {
    let server = server().await;
    let _agent = registered(&server, "ep-read", &[]).await;
    let r = server
        .read("ep-read", &p("/3/0/0"), Some(ContentFormat::Text))
        .await
        .unwrap();
    assert_eq!(r.code, Code::CONTENT);
    assert_eq!(r.content_format, Some(ContentFormat::Text));
    assert_eq!(r.payload, b"rig");

    let r = server
        .read("ep-read", &p("/3/0"), Some(ContentFormat::Tlv))
        .await
        .unwrap();
    assert_eq!(r.code, Code::CONTENT);
    let recs = r.decoded.expect("TLV decoded");
    let get = |path: &str| {
        recs.iter()
            .find(|rec| rec.path == p(path))
            .map(|rec| rec.value.clone())
    };
    assert_eq!(get("/3/0/0"), Some(Value::String("rig".into())));
    assert_eq!(get("/3/0/1"), Some(Value::String("rig-agent".into())));
    assert_eq!(get("/3/0/2"), Some(Value::String("ep-read".into())));
    assert_eq!(get("/3/0/11/0"), Some(Value::Integer(0)));
    assert_eq!(get("/3/0/16"), Some(Value::String("U".into())));

    // No Accept: a single resource comes as text, an instance as TLV.
    let r = server.read("ep-read", &p("/1/0/1"), None).await.unwrap();
    assert_eq!(
        (r.code, r.content_format, r.text()),
        (Code::CONTENT, Some(ContentFormat::Text), "86400".into())
    );
    let r = server.read("ep-read", &p("/33333/0"), None).await.unwrap();
    assert_eq!(r.content_format, Some(ContentFormat::Tlv));
    assert_eq!(r.decoded.map(|d| d.len()), Some(4));

    assert_eq!(
        server
            .read("ep-read", &p("/3/0/4"), None)
            .await
            .unwrap()
            .code,
        Code::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        server.read("ep-read", &p("/0"), None).await.unwrap().code,
        Code::UNAUTHORIZED
    );
    assert_eq!(
        server.read("ep-read", &p("/6"), None).await.unwrap().code,
        Code::NOT_FOUND
    );
    assert_eq!(server.deviations("ep-read"), vec![]);
}

#[tokio::test]
async fn writes_test_object_values_and_refuses_read_only() {
    let server = server().await;
    let _agent = registered(&server, "ep-write", &[]).await;
    let w = server
        .write(
            "ep-write",
            &p("/33333/0/0"),
            ContentFormat::Text,
            b"hello".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(w.code, Code::CHANGED);
    let w = server
        .write(
            "ep-write",
            &p("/33333/0/1"),
            ContentFormat::Text,
            b"-42".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(w.code, Code::CHANGED);
    let r = server
        .read("ep-write", &p("/33333/0"), Some(ContentFormat::Tlv))
        .await
        .unwrap();
    let recs = r.decoded.unwrap();
    assert!(
        recs.iter()
            .any(|rec| rec.path == p("/33333/0/0") && rec.value == Value::String("hello".into()))
    );
    assert!(
        recs.iter()
            .any(|rec| rec.path == p("/33333/0/1") && rec.value == Value::Integer(-42))
    );
    // Read-only SSID: 4.05 (int-256), bad text for an integer: 4.00.
    let w = server
        .write(
            "ep-write",
            &p("/1/0/0"),
            ContentFormat::Text,
            b"123".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(w.code, Code::METHOD_NOT_ALLOWED);
    let w = server
        .write(
            "ep-write",
            &p("/33333/0/1"),
            ContentFormat::Text,
            b"many".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(w.code, Code::BAD_REQUEST);
}

#[tokio::test]
async fn discover_answers_link_format() {
    let server = server().await;
    let _agent = registered(&server, "ep-disc", &[]).await;
    let r = server.discover("ep-disc", &p("/1/0")).await.unwrap();
    assert_eq!(r.code, Code::CONTENT);
    assert_eq!(r.content_format, Some(ContentFormat::Link));
    assert_eq!(
        r.text(),
        "</1/0>,</1/0/0>,</1/0/1>,</1/0/4>,</1/0/5>,</1/0/6>,</1/0/7>,</1/0/8>,</1/0/23>"
    );
    assert_eq!(
        server
            .discover("ep-disc", &p("/3/0/11"))
            .await
            .unwrap()
            .text(),
        "</3/0/11>;dim=1"
    );
    assert_eq!(server.deviations("ep-disc"), vec![]);
}

#[tokio::test]
async fn lifetime_write_sends_an_update_with_lt() {
    let server = server().await;
    let mut agent = registered(&server, "ep-lt", &[]).await;
    let mut events = server.events();
    let w = server
        .write("ep-lt", &p("/1/0/1"), ContentFormat::Text, b"20".to_vec())
        .await
        .unwrap();
    assert_eq!(w.code, Code::CHANGED);
    let ev = wait_for(&mut events, WAIT, |e| {
        matches!(e, ServerEvent::Updated { .. })
    })
    .await
    .expect("Update");
    let ServerEvent::Updated {
        update,
        registration,
        ..
    } = ev
    else {
        unreachable!()
    };
    assert_eq!(update.lifetime_s, Some(20));
    assert_eq!(update.binding, None);
    assert_eq!(registration.lifetime_s, Some(20));
    agent.expect("updated").await;
}

#[tokio::test]
async fn registration_update_trigger_sends_a_parameterless_update() {
    let server = server().await;
    let _agent = registered(&server, "ep-trig", &[]).await;
    let mut events = server.events();
    let x = server.execute("ep-trig", &p("/1/0/8"), None).await.unwrap();
    assert_eq!(x.code, Code::CHANGED);
    let ev = wait_for(&mut events, WAIT, |e| {
        matches!(e, ServerEvent::Updated { .. })
    })
    .await
    .expect("Update");
    let ServerEvent::Updated { update, .. } = ev else {
        unreachable!()
    };
    assert!(update.is_empty(), "{update}");
    // Executing a non-executable resource is refused.
    assert_eq!(
        server
            .execute("ep-trig", &p("/1/0/1"), None)
            .await
            .unwrap()
            .code,
        Code::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn disable_deregisters_and_registers_again_after_the_disable_timeout() {
    let server = server().await;
    let mut agent = registered(&server, "ep-dis", &["--disable-timeout", "1"]).await;
    let mut events = server.events();
    let x = server.execute("ep-dis", &p("/1/0/4"), None).await.unwrap();
    assert_eq!(x.code, Code::CHANGED);
    wait_for(&mut events, WAIT, |e| {
        matches!(e, ServerEvent::Deregistered { .. })
    })
    .await
    .expect("De-register");
    assert!(server.registration("ep-dis").is_none());
    agent.expect("deregistered").await;
    wait_for(&mut events, WAIT, |e| {
        matches!(e, ServerEvent::Registered { .. })
    })
    .await
    .expect("Register after 1 s");
    agent.expect("registered ").await;
}

#[tokio::test]
async fn reboot_registers_afresh() {
    let server = server().await;
    let mut agent = registered(&server, "ep-boot", &[]).await;
    let first = server.registration("ep-boot").unwrap().location;
    let mut events = server.events();
    let x = server.execute("ep-boot", &p("/3/0/4"), None).await.unwrap();
    assert_eq!(x.code, Code::CHANGED);
    wait_for(&mut events, WAIT, |e| {
        matches!(e, ServerEvent::Registered { .. })
    })
    .await
    .expect("Register");
    let second = agent.expect("registered ").await;
    assert_ne!(second, format!("registered {first}"));
}

#[tokio::test]
async fn console_commands_update_status_and_quit() {
    let server = server().await;
    let mut agent = registered(&server, "ep-con", &["--lifetime", "300"]).await;
    let loc = server.registration("ep-con").unwrap().location;
    agent.send("status").await;
    assert_eq!(
        agent.expect("status").await,
        format!("status registered {loc} lt=300")
    );
    agent.expect("ok status").await;

    let mut events = server.events();
    agent.send("update").await;
    agent.expect("ok update").await;
    agent.expect("updated").await;
    let ev = wait_for(&mut events, WAIT, |e| {
        matches!(e, ServerEvent::Updated { .. })
    })
    .await
    .expect("Update");
    let ServerEvent::Updated { update, .. } = ev else {
        unreachable!()
    };
    assert!(update.is_empty());

    agent.send("fly").await;
    assert!(
        agent
            .expect("error")
            .await
            .starts_with("error fly: unknown command")
    );

    agent.send("quit").await;
    agent.expect("deregistered").await;
    agent.expect("ok quit").await;
    wait_for(&mut events, WAIT, |e| {
        matches!(e, ServerEvent::Deregistered { .. })
    })
    .await
    .expect("De-register");
    let status = tokio::time::timeout(WAIT, agent.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn time_scale_speeds_up_the_update_schedule() {
    let config = ServerConfig {
        time_scale: 10.0,
        ..ServerConfig::default()
    };
    let server = Lwm2mServer::bind_with("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let mut events = server.events();
    // lt=20 at scale 10: the agent updates every 1 s (half the scaled lifetime).
    let _agent = registered(
        &server,
        "ep-fast",
        &["--lifetime", "20", "--time-scale", "10"],
    )
    .await;
    let start = tokio::time::Instant::now();
    for _ in 0..3 {
        wait_for(&mut events, Duration::from_secs(3), |e| {
            matches!(e, ServerEvent::Updated { .. })
        })
        .await
        .expect("Update within 3 s");
    }
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
    assert!(server.registration("ep-fast").is_some());
    assert_eq!(server.registration("ep-fast").unwrap().lifetime_s, Some(20));
}

#[tokio::test]
async fn operations_on_a_silent_client_time_out_and_unknown_endpoints_are_refused() {
    let server = server().await;
    let mut agent = registered(&server, "ep-gone", &[]).await;
    agent.child.kill().await.unwrap();
    let quick = server.with_op_timeout(Duration::from_millis(800));
    let e = quick.read("ep-gone", &p("/3/0/0"), None).await.unwrap_err();
    assert!(matches!(e, OpError::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("no response"), "{e}");
    let e = server.read("nobody", &p("/3/0/0"), None).await.unwrap_err();
    assert_eq!(
        e,
        OpError::NotRegistered {
            endpoint: "nobody".into()
        }
    );
}
