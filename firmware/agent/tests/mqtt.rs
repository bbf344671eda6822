//! The agent in MQTT mode (`--mqtt`) against the rig's brokers and platform
//! emulator, over real TLS 1.2 with client certificates on loopback: the AWS
//! variant (shadow update → accepted; SDK-style subscriptions) and the plain
//! variant (TLV telemetry; a command written to the test object), on the
//! embedded rumqttd and on Debian's mosquitto.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Stdio;
use std::time::Duration;

use rig_services::mqtt::{
    Broker, BrokerConfig, BrokerKind, ClientTls, PkiProfile, Platform, PlatformConfig, QoS, TestPki,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const WAIT: Duration = Duration::from_secs(15);

struct Agent {
    _child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    seen: Vec<String>,
}

impl Agent {
    async fn expect(&mut self, prefix: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let line = tokio::time::timeout_at(deadline, self.stdout.next_line())
                .await
                .unwrap_or_else(|_| {
                    panic!("no line {prefix:?} within {WAIT:?}; saw {:?}", self.seen)
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

struct Rig {
    _dir: tempfile::TempDir,
    pki: TestPki,
    broker: Broker,
    platform: Platform,
}

async fn rig(kind: BrokerKind, device: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let pki =
        TestPki::generate(dir.path(), PkiProfile::Protocol, &[device, "rig-platform"]).unwrap();
    let broker = Broker::start(BrokerConfig::new(kind, pki.broker_tls()))
        .await
        .unwrap();
    let mut pc = PlatformConfig::new(
        broker.local_addr(),
        ClientTls::new(pki.ca_pem(), pki.client("rig-platform").unwrap()),
    );
    pc.aws_root = broker.aws_topic_root().to_string();
    let platform = Platform::start(pc).await.unwrap();
    Rig {
        _dir: dir,
        pki,
        broker,
        platform,
    }
}

fn spawn(rig: &Rig, device: &str, variant: &str, extra: &[&str]) -> Agent {
    let creds = rig.pki.client(device).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rig-agent"))
        .args(["--endpoint", device])
        .args(["--mqtt", &format!("mqtts://{}", rig.broker.local_addr())])
        .args(["--mqtt-variant", variant])
        .args(["--mqtt-topic-root", rig.broker.aws_topic_root()])
        .arg("--cert")
        .arg(&creds.cert_path)
        .arg("--key")
        .arg(&creds.key_path)
        .arg("--ca")
        .arg(rig.pki.ca_path())
        .args([
            "--test-string",
            "alpha",
            "--test-int",
            "42",
            "--test-float",
            "21.5",
            "--test-bool",
        ])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    Agent {
        stdin: child.stdin.take().unwrap(),
        stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
        _child: child,
        seen: Vec::new(),
    }
}

async fn aws_shadow_report(kind: BrokerKind) {
    let dev = "dev-aws";
    let rig = rig(kind, dev).await;
    let mut a = spawn(&rig, dev, "aws", &[]);
    a.expect("ready").await;
    a.expect("connected ").await;
    a.expect("subscribed").await;
    a.send("report").await;
    a.expect("reported 1 ").await;
    let accepted = a.expect("accepted ").await;
    assert_eq!(accepted, "accepted 1");
    let m = rig
        .platform
        .wait_for("shadow update", WAIT, |m| {
            m.topic == rig.platform.shadow_topic(dev, "update")
        })
        .await
        .unwrap();
    assert_eq!(m.qos, 0, "SDK 1.4.7 publishes shadow updates at QoS 0");
    let text = String::from_utf8(m.payload.clone()).unwrap();
    assert!(
        text.starts_with(r#"{"state": {"reported": {"name": "alpha", "count": 42, "temp": 21.5, "on": true}}, "clientToken": "dev-aws_dev-aws_1_"#),
        "{text}"
    );
    let doc = rig.platform.shadow_document(dev).unwrap();
    assert_eq!(doc["state"]["reported"]["count"], 42);
    a.send("quit").await;
    a.expect("ok quit").await;
}

#[tokio::test]
async fn aws_variant_reports_to_the_shadow_on_rumqttd() {
    aws_shadow_report(BrokerKind::Embedded).await;
}

#[tokio::test]
async fn aws_variant_reports_to_the_shadow_on_mosquitto() {
    aws_shadow_report(BrokerKind::Mosquitto).await;
}

#[tokio::test]
async fn plain_variant_sends_tlv_periodically_and_takes_commands() {
    let dev = "dev-plain";
    let rig = rig(BrokerKind::Embedded, dev).await;
    // Every 10 s at time scale 10: about one report a second.
    let mut a = spawn(
        &rig,
        dev,
        "plain",
        &["--report-every", "10", "--time-scale", "10"],
    );
    a.expect("connected ").await;
    a.expect("subscribed").await;
    a.expect("reported 1 ").await;
    a.expect("reported 2 ").await;
    let m = rig
        .platform
        .wait_for("telemetry", WAIT, |m| m.topic == format!("d/{dev}/o/33333"))
        .await
        .unwrap();
    assert_eq!(m.qos, 0);
    // TLV of /33333/0: string resource 0 first.
    assert_eq!(&m.payload[..7], &[0xc5, 0x00, b'a', b'l', b'p', b'h', b'a']);
    rig.platform
        .publish_command(dev, "/33333/0/1", b"7", QoS::AtMostOnce)
        .unwrap();
    assert_eq!(a.expect("written ").await, "written /33333/0/1 7");
    rig.platform
        .publish_command(dev, "/33333/0/1", b"seven", QoS::AtMostOnce)
        .unwrap();
    let e = a.expect("error command").await;
    assert!(e.contains("/33333/0/1"), "{e}");
    a.send("quit").await;
    a.expect("ok quit").await;
}

#[tokio::test]
async fn missing_certificates_are_a_clear_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rig-agent"))
        .args(["--endpoint", "x", "--mqtt", "mqtts://127.0.0.1:1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--mqtt needs --ca"), "{err}");
}
