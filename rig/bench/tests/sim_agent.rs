//! The shipped `hardware/loopback.toml` bench opened as a real sim DUT: the
//! reference agent `rig-agent` is spawned with the rig-agent profile, shows
//! `ready`, sends its Register to the server URI it was given (a plain UDP
//! socket here, which never answers), takes profile actions, and stops through
//! its `quit` line. If the agent binary is not built yet, the test builds it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rig_bench::dut::{DutAction, DutConfig};
use rig_bench::file::{AgentLocation, Bench};
use rig_bench::target::{find_agent, open};

fn ensure_agent() {
    if find_agent(&AgentLocation::Auto).is_ok() {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = std::process::Command::new(cargo)
        .args(["build", "-p", "rig-agent"])
        .current_dir(root)
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo build -p rig-agent failed");
    find_agent(&AgentLocation::Auto).expect("agent after build");
}

#[tokio::test]
async fn the_agent_runs_as_a_sim_dut() {
    ensure_agent();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bench = Bench::load(&root.join("hardware/loopback.toml")).unwrap();
    let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().unwrap().port();
    let config = DutConfig {
        endpoint: "sim-ep-7".into(),
        server_uri: format!("coap://127.0.0.1:{port}"),
        ssid: 1,
        lifetime_s: 300,
        binding: "U".into(),
        default_pmin_s: None,
        default_pmax_s: None,
        time_scale: 1.0,
        extra: BTreeMap::new(),
    };
    let evidence = tempfile::tempdir().unwrap();
    let mut dut = open(&bench, evidence.path()).unwrap();
    // Known before the start: the report takes the identity first.
    assert_eq!(dut.identity()["program_sha256"].len(), 64);
    dut.start(&config).await.unwrap();
    assert!(dut.is_running());

    // The agent registers with the URI and endpoint it was given.
    let mut buf = [0u8; 1500];
    let (n, _) = tokio::time::timeout(Duration::from_secs(10), server.recv_from(&mut buf))
        .await
        .expect("a Register within 10 s")
        .unwrap();
    let datagram = &buf[..n];
    assert_eq!(datagram[0] >> 6, 1, "CoAP version 1");
    assert_eq!(datagram[1], 0x02, "POST");
    let has = |needle: &[u8]| datagram.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"rd"), "Uri-Path rd in {datagram:02x?}");
    assert!(has(b"ep=sim-ep-7"), "ep= query in {datagram:02x?}");

    // A profile action the agent answers on its console.
    dut.act(&DutAction::Custom("status".into(), vec![]))
        .await
        .unwrap();
    assert!(dut.supports(&DutAction::TriggerUpdate));

    let id = dut.identity();
    assert_eq!(id["kind"], "sim");
    assert_eq!(id["profile"], "rig-agent");
    assert_eq!(id["program_sha256"].len(), 64, "{id:?}");

    dut.stop().await.unwrap();
    assert!(!dut.is_running());
    let log = std::fs::read_to_string(evidence.path().join("console/dut.log")).unwrap();
    assert!(log.contains("out] ready"), "{log}");
    assert!(log.contains("--endpoint sim-ep-7"), "{log}");
    assert!(log.contains("rig] sent: quit"), "{log}");
    assert!(log.contains("exited with status 0"), "{log}");
}
