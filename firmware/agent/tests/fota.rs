//! The agent's firmware update (Object 5) against the rig's real servers on
//! loopback: the LwM2M server pushes (Block1 Write /5/0/0) or writes a
//! Package URI, and the rig-services file servers (CoAP Block2, HTTP,
//! HTTPS) serve seeded images and record what they served. Resume is
//! asserted on those records: which block or byte range was asked for, with
//! which ETag, after a kill and a restart of the agent process. The MQTT
//! file stream (`--mqtt-fota stream`) runs against the rig's broker,
//! platform emulator and stream service.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rig_services::file_server::{
    CoapFileServer, CoapServerConfig, FileStore, FirmwareImage, HttpFileServer, HttpServerConfig,
    ImageSpec, TlsIdentity, Variant,
};
use rig_services::lwm2m::{Code, ContentFormat, Lwm2mServer, ObjectPath, ServerEvent, wait_for};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(20);

fn p(s: &str) -> ObjectPath {
    s.parse().unwrap()
}

fn pki(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/pki")
        .join(name)
}

/// A running agent: its process and its stdout lines.
struct Agent {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Agent {
    /// Waits for a line starting with `prefix`; returns it.
    async fn expect(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.lines.recv()).await {
                Ok(Some(l)) => {
                    self.seen.push(l.clone());
                    if l.starts_with(prefix) {
                        return l;
                    }
                }
                Ok(None) => panic!("the agent exited before `{prefix}`; saw {:#?}", self.seen),
                Err(_) => panic!("no `{prefix}` within {within:?}; saw {:#?}", self.seen),
            }
        }
    }

    async fn kill(mut self) -> Vec<String> {
        self.child.kill().await.unwrap();
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        self.seen
    }
}

/// The agent's stderr: its log when `RIG_AGENT_STDERR=1` (debugging a
/// failure), else discarded.
fn agent_stderr() -> Stdio {
    if std::env::var_os("RIG_AGENT_STDERR").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

async fn spawn_agent(server: &Lwm2mServer, ep: &str, extra: &[&str]) -> Agent {
    let mut events = server.events();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rig-agent"))
        .args(["--server", &server.uri(), "--endpoint", ep])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(agent_stderr())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn rig-agent");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    wait_for(
        &mut events,
        WAIT,
        |e| matches!(e, ServerEvent::Registered { endpoint, .. } if endpoint == ep),
    )
    .await
    .expect("Register");
    Agent {
        child,
        lines: rx,
        seen: Vec::new(),
    }
}

async fn lwm2m() -> Lwm2mServer {
    Lwm2mServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn image(seed: u64, size: u64, variant: Variant) -> FirmwareImage {
    FirmwareImage::from_spec(ImageSpec {
        seed,
        size,
        version: format!("v{seed}"),
        variant,
    })
}

async fn write_uri(server: &Lwm2mServer, ep: &str, uri: &str) {
    let r = server
        .write(
            ep,
            &p("/5/0/1"),
            ContentFormat::Text,
            uri.as_bytes().to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(r.code, Code::CHANGED, "Write /5/0/1 {uri}");
}

async fn read_int(server: &Lwm2mServer, ep: &str, path: &str) -> String {
    let r = server.read(ep, &p(path), None).await.unwrap();
    assert_eq!(r.code, Code::CONTENT, "Read {path}");
    r.text()
}

#[tokio::test]
async fn push_by_block1_then_update_is_observed_1_2_3_0_with_result_1() {
    let server = lwm2m().await;
    let dir = tempfile::tempdir().unwrap();
    let mut agent = spawn_agent(
        &server,
        "ep-push",
        &["--state-dir", dir.path().to_str().unwrap()],
    )
    .await;
    // int-751: the readable resources.
    assert_eq!(read_int(&server, "ep-push", "/5/0/3").await, "0");
    assert_eq!(read_int(&server, "ep-push", "/5/0/5").await, "0");
    assert_eq!(read_int(&server, "ep-push", "/5/0/9").await, "2");
    // int-772: Update without a package is 4.05.
    let r = server.execute("ep-push", &p("/5/0/2"), None).await.unwrap();
    assert_eq!(r.code, Code::METHOD_NOT_ALLOWED);

    let mut events = server.events();
    let obs = server.observe("ep-push", &p("/5/0/3"), None).await.unwrap();
    assert_eq!(obs.code, Code::CONTENT);
    let img = image(11, 20_000, Variant::Valid);
    let r = server
        .write("ep-push", &p("/5/0/0"), ContentFormat::Opaque, img.to_vec())
        .await
        .unwrap();
    assert_eq!(r.code, Code::CHANGED);
    let line = agent.expect("fota downloaded", WAIT).await;
    assert_eq!(
        line,
        format!("fota downloaded bytes=20000 sha256={}", img.sha256_hex())
    );
    agent.expect("fota state=2 result=0", WAIT).await;
    assert_eq!(read_int(&server, "ep-push", "/5/0/7").await, "v11");
    let r = server.execute("ep-push", &p("/5/0/2"), None).await.unwrap();
    assert_eq!(r.code, Code::CHANGED);
    agent.expect("fota state=3 result=0", WAIT).await;
    agent.expect("fota state=0 result=1", WAIT).await;
    assert_eq!(read_int(&server, "ep-push", "/5/0/5").await, "1");
    assert_eq!(read_int(&server, "ep-push", "/3/0/3").await, "v11");
    // The observation saw State go through 3 and end at 0.
    let mut states = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !states.ends_with(&["0".to_string()]) || !states.contains(&"3".to_string()) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match wait_for(
            &mut events,
            left,
            |e| matches!(e, ServerEvent::Notification { endpoint, .. } if endpoint == "ep-push"),
        )
        .await
        {
            Some(ServerEvent::Notification { response, .. }) => states.push(response.text()),
            _ => break,
        }
    }
    assert!(states.contains(&"3".to_string()), "{states:?}");
    assert_eq!(states.last().map(String::as_str), Some("0"), "{states:?}");
    // int-770: Downloading (1) was notified during the Block1 push, before
    // Downloaded (2).
    let at = |v: &str| states.iter().position(|s| s == v);
    assert!(
        at("1").is_some() && at("1") < at("2") && at("2") < at("3"),
        "{states:?}"
    );
}

#[tokio::test]
async fn pull_over_coap_http_and_https_delivers_the_exact_image() {
    let server = lwm2m().await;
    let store = FileStore::new();
    let img = image(12, 50_000, Variant::Valid);
    store.insert("fw-a", img.clone());
    let coap = CoapFileServer::bind("127.0.0.1:0".parse().unwrap(), store.clone())
        .await
        .unwrap();
    let http = HttpFileServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        store.clone(),
        HttpServerConfig::default(),
    )
    .await
    .unwrap();
    let https = HttpFileServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        store.clone(),
        HttpServerConfig {
            tls: Some(TlsIdentity::from_files(&pki("server.pem"), &pki("server.key")).unwrap()),
            ..HttpServerConfig::default()
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = pki("ca.pem");
    let mut agent = spawn_agent(
        &server,
        "ep-pull",
        &[
            "--state-dir",
            dir.path().to_str().unwrap(),
            "--fota-ca",
            ca.to_str().unwrap(),
        ],
    )
    .await;
    let want = format!("fota downloaded bytes=50000 sha256={}", img.sha256_hex());
    for uri in [coap.url("fw-a"), http.url("fw-a"), https.url("fw-a")] {
        write_uri(&server, "ep-pull", &uri).await;
        agent.expect("fota state=1 result=0", WAIT).await;
        assert_eq!(agent.expect("fota downloaded", WAIT).await, want, "{uri}");
        agent.expect("fota state=2 result=0", WAIT).await;
        assert_eq!(read_int(&server, "ep-pull", "/5/0/6").await, "fw-a");
        // Reset for the next scheme.
        write_uri(&server, "ep-pull", "").await;
        agent.expect("fota state=0 result=0", WAIT).await;
    }
    // CoAP: 49 blocks of 1024 bytes, each asked for once.
    let blocks: Vec<_> = coap.records().iter().filter_map(|r| r.block).collect();
    assert_eq!(blocks, (0..49).collect::<Vec<u32>>());
    // HTTP(S): one GET each, no Range.
    for s in [&http, &https] {
        let recs = s.records();
        assert_eq!(recs.len(), 1, "{recs:?}");
        assert_eq!(recs[0].status, 200);
        assert_eq!(recs[0].range, None);
    }
}

#[tokio::test]
async fn each_bad_package_or_uri_ends_with_its_update_result() {
    let server = lwm2m().await;
    let store = FileStore::new();
    store.insert("big", image(13, 9_000, Variant::Valid));
    store.insert("corrupt", image(14, 5_000, Variant::Corrupt));
    store.insert("badtype", image(15, 5_000, Variant::UnsupportedType));
    store.insert("fails", image(16, 5_000, Variant::InstallFails));
    let http = HttpFileServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        store.clone(),
        HttpServerConfig::default(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut agent = spawn_agent(
        &server,
        "ep-err",
        &[
            "--state-dir",
            dir.path().to_str().unwrap(),
            "--fota-max-size",
            "8192",
            "--fota-retries",
            "1",
            "--time-scale",
            "50",
        ],
    )
    .await;
    let closed = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let cases = [
        (http.url("big"), 2),
        (http.url("corrupt"), 5),
        (http.url("badtype"), 6),
        (http.url("nothing-here"), 7),
        ("ftp://127.0.0.1/fw/x".to_string(), 9),
        (format!("coap://{closed}/fw/x"), 4),
    ];
    for (uri, result) in cases {
        write_uri(&server, "ep-err", &uri).await;
        agent
            .expect(&format!("fota state=0 result={result}"), WAIT)
            .await;
        assert_eq!(
            read_int(&server, "ep-err", "/5/0/5").await,
            result.to_string(),
            "{uri}"
        );
    }
    // int-779: the download passes, the install fails: back to 2 with 8.
    write_uri(&server, "ep-err", &http.url("fails")).await;
    agent.expect("fota state=2 result=0", WAIT).await;
    server.execute("ep-err", &p("/5/0/2"), None).await.unwrap();
    agent.expect("fota state=3", WAIT).await;
    agent.expect("fota state=2 result=8", WAIT).await;
}

/// Kills the agent in mid-download once it reported at least `min` bytes,
/// and returns the bytes it last reported.
async fn kill_in_mid_download(mut agent: Agent, min: u64) -> u64 {
    // Only this download's lines count (the agent may have finished an
    // earlier one).
    let from = agent.seen.len();
    loop {
        let l = agent.expect("fota progress bytes=", WAIT).await;
        let n: u64 = l.rsplit('=').next().unwrap().parse().unwrap();
        if n >= min {
            let seen = agent.kill().await.split_off(from);
            assert!(
                !seen.iter().any(|l| l.starts_with("fota downloaded")),
                "finished before the kill: {seen:#?}"
            );
            return n;
        }
    }
}

#[tokio::test]
async fn http_pull_resumes_after_a_restart_with_range_and_if_match() {
    let server = lwm2m().await;
    let store = FileStore::new();
    let img = image(17, 400_000, Variant::Valid);
    store.insert("fw", img.clone());
    let http = HttpFileServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        store.clone(),
        HttpServerConfig {
            throttle_bytes_per_s: Some(200_000),
            chunk_size: Some(4096),
            ..HttpServerConfig::default()
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = ["--state-dir", dir.path().to_str().unwrap()];
    let agent = spawn_agent(&server, "ep-rs", &args).await;
    write_uri(&server, "ep-rs", &http.url("fw")).await;
    kill_in_mid_download(agent, 120_000).await;
    let mut agent = spawn_agent(&server, "ep-rs", &args).await;
    let at: u64 = agent
        .expect("fota resumed at=", WAIT)
        .await
        .rsplit('=')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(at >= 120_000, "resumed at {at}");
    let line = agent.expect("fota downloaded", WAIT).await;
    assert_eq!(
        line,
        format!("fota downloaded bytes=400000 sha256={}", img.sha256_hex())
    );
    agent.expect("fota state=2 result=0", WAIT).await;
    let recs = http.records();
    assert_eq!(recs.len(), 2, "{recs:#?}");
    assert_eq!(
        recs[1].range.as_deref(),
        Some(format!("bytes={at}-").as_str())
    );
    assert_eq!(recs[1].if_match, recs[0].etag);
    assert_eq!(recs[1].status, 206);
}

#[tokio::test]
async fn coap_pull_resumes_at_the_next_block_and_restarts_when_the_etag_changed() {
    let server = lwm2m().await;
    let store = FileStore::new();
    let img = image(18, 300_000, Variant::Valid);
    store.insert("fw", img.clone());
    // 256-byte blocks, each answered after 2 ms: ~1200 round trips, over
    // 2.3 s, slow enough to kill in the middle on a loaded machine.
    let coap = CoapFileServer::start(
        tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        store.clone(),
        CoapServerConfig {
            pace: Some(Duration::from_millis(2)),
            ..CoapServerConfig::default()
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--state-dir",
        dir.path().to_str().unwrap(),
        "--fota-block-size",
        "256",
    ];
    let agent = spawn_agent(&server, "ep-cr", &args).await;
    write_uri(&server, "ep-cr", &coap.url("fw")).await;
    kill_in_mid_download(agent, 60_000).await;
    let before = coap.records().len();
    let mut agent = spawn_agent(&server, "ep-cr", &args).await;
    let at: u64 = agent
        .expect("fota resumed at=", WAIT)
        .await
        .rsplit('=')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(at % 256, 0);
    agent.expect("fota downloaded", WAIT).await;
    agent.expect("fota state=2 result=0", WAIT).await;
    let after = &coap.records()[before..];
    assert_eq!(
        after[0].requested_block,
        Some((at / 256) as u32),
        "{:?}",
        after[0]
    );
    assert!(after.iter().all(|r| r.block.unwrap() >= (at / 256) as u32));

    // The ETag changes while the agent is down: it starts over from zero.
    write_uri(&server, "ep-cr", "").await;
    write_uri(&server, "ep-cr", &coap.url("fw")).await;
    kill_in_mid_download(agent, 60_000).await;
    coap.set_etag("fw", b"new-etag");
    let mut agent = spawn_agent(&server, "ep-cr", &args).await;
    agent.expect("fota resumed at=", WAIT).await;
    agent
        .expect("fota restarted reason=etag-changed", WAIT)
        .await;
    let line = agent.expect("fota downloaded", WAIT).await;
    assert_eq!(
        line,
        format!("fota downloaded bytes=300000 sha256={}", img.sha256_hex())
    );
}

#[tokio::test]
async fn a_weak_etag_is_never_used_to_resume() {
    let server = lwm2m().await;
    let store = FileStore::new();
    let img = image(19, 200_000, Variant::Valid);
    store.insert("fw", img.clone());
    store.set_weak_etag("fw", true);
    let http = HttpFileServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        store.clone(),
        HttpServerConfig::default(),
    )
    .await
    .unwrap();
    http.cut_next_body_after(100_000);
    let dir = tempfile::tempdir().unwrap();
    let mut agent = spawn_agent(
        &server,
        "ep-weak",
        &[
            "--state-dir",
            dir.path().to_str().unwrap(),
            "--time-scale",
            "20",
        ],
    )
    .await;
    write_uri(&server, "ep-weak", &http.url("fw")).await;
    agent.expect("fota restarted reason=weak-etag", WAIT).await;
    agent.expect("fota state=2 result=0", WAIT).await;
    let recs = http.records();
    assert_eq!(recs.len(), 2, "{recs:#?}");
    assert!(recs[0].cut);
    assert_eq!(recs[1].range, None);
    assert_eq!(recs[1].if_match, None);
    // And a strong ETag resumes in-process after the same cut.
    store.set_weak_etag("fw", false);
    http.clear_records();
    http.cut_next_body_after(100_000);
    write_uri(&server, "ep-weak", "").await;
    write_uri(&server, "ep-weak", &http.url("fw")).await;
    let at = agent.expect("fota resumed at=", WAIT).await;
    let at = at.rsplit('=').next().unwrap().to_string();
    agent.expect("fota state=2 result=0", WAIT).await;
    let recs = http.records();
    assert_eq!(recs.len(), 2, "{recs:#?}");
    assert_eq!(recs[1].range, Some(format!("bytes={at}-")));
    assert_eq!(recs[1].if_match, recs[0].etag);
    assert_eq!(recs[1].status, 206);
}

/// MQTT file streams (`--mqtt-fota stream`) with 4 KiB blocks: a job names
/// the stream, the agent describes it, asks for the blocks with bitmaps and
/// gets each block exactly once; the file is intact.
#[tokio::test]
async fn mqtt_stream_fetches_each_4_kib_block_once() {
    use rig_services::mqtt::streams::{StreamService, StreamServiceConfig};
    use rig_services::mqtt::{
        Broker, BrokerConfig, BrokerKind, ClientTls, PkiProfile, Platform, PlatformConfig, TestPki,
    };
    let dir = tempfile::tempdir().unwrap();
    let device = "ep-stream";
    let pki = TestPki::generate(
        dir.path(),
        PkiProfile::Protocol,
        &[device, "rig-platform", "rig-streams"],
    )
    .unwrap();
    let broker = Broker::start(BrokerConfig::new(BrokerKind::Embedded, pki.broker_tls()))
        .await
        .unwrap();
    let root = broker.aws_topic_root().to_string();
    let tls = |id: &str| ClientTls::new(pki.ca_pem(), pki.client(id).unwrap());
    let mut pc = PlatformConfig::new(broker.local_addr(), tls("rig-platform"));
    pc.aws_root = root.clone();
    let platform = Platform::start(pc).await.unwrap();
    let mut sc = StreamServiceConfig::new(broker.local_addr(), tls("rig-streams"));
    sc.aws_root = root.clone();
    let streams = StreamService::start(sc).await.unwrap();
    // Not a multiple of 4096: the last block is short.
    let img = image(21, 300_000, Variant::Valid);
    streams.put_stream("fw", 3, vec![(0, std::sync::Arc::new(img.to_vec()))]);

    let creds = pki.client(device).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rig-agent"))
        .args(["--endpoint", device])
        .args(["--mqtt", &format!("mqtts://{}", broker.local_addr())])
        .args(["--mqtt-variant", "aws", "--mqtt-topic-root", &root])
        .args(["--mqtt-fota", "stream", "--mqtt-stream-block", "4096"])
        .arg("--cert")
        .arg(&creds.cert_path)
        .arg("--key")
        .arg(&creds.key_path)
        .arg("--ca")
        .arg(pki.ca_path())
        .arg("--state-dir")
        .arg(state.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(agent_stderr())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut agent = Agent {
        child,
        lines: rx,
        seen: Vec::new(),
    };
    agent.expect("subscribed", WAIT).await;
    platform
        .create_job(
            device,
            "job-1",
            serde_json::json!({"operation": "fota", "streamId": "fw", "fileId": 0,
                "size": img.len(), "sha256": img.sha256_hex()}),
        )
        .unwrap();
    let line = agent.expect("fota downloaded", WAIT).await;
    assert_eq!(
        line,
        format!("fota downloaded bytes=300000 sha256={}", img.sha256_hex())
    );
    agent.expect("fota state=2 result=0", WAIT).await;
    agent.expect("job-done job-1 SUCCEEDED", WAIT).await;
    let recs = streams.records();
    let blocks: Vec<u32> = recs.iter().filter_map(|r| r.block).collect();
    assert_eq!(blocks.len(), 74, "{recs:#?}");
    assert!(
        recs.iter()
            .all(|r| r.block_size == 4096 && r.rejected.is_none())
    );
    let s = streams.summary();
    assert_eq!(
        (s.repeats, s.duplicate_bytes, s.unique_bytes),
        (0, 0, 300_000)
    );
    // One request per half window at most: far fewer requests than blocks.
    assert!(s.requests < 20, "{s:?}");
}
