//! The ETS registration cases (rig-suite) run against the reference agent,
//! over real UDP on loopback, through the agent DUT of `common/dut.rs` (the
//! bench's own targets and the whole CLI are tested by rig-bench and rig).
//! Also: a DUT that never registers makes each case end with a precise message.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::dut::{AgentDut, context, run_case};
use rig_report::events::Verdict;
use rig_suite::case::CaseFailure;

#[tokio::test]
async fn int_101_passes_and_measures_the_registration_latency() {
    let mut cx = context(1.0, "case-101", AgentDut::new(&[])).await;
    run_case("LightweightM2M-1.1-int-101", &mut cx)
        .await
        .unwrap();
    let m = cx
        .measurements
        .iter()
        .find(|m| m.name == "registration.latency_s")
        .expect("latency measured");
    assert_eq!(m.unit, "s");
    assert!(m.value > 0.0 && m.value < 5.0, "{}", m.value);
}

#[tokio::test]
async fn int_102_passes_at_time_scale_10() {
    let mut cx = context(10.0, "case-102", AgentDut::new(&[])).await;
    run_case("LightweightM2M-1.1-int-102", &mut cx)
        .await
        .unwrap();
    let m = cx
        .measurements
        .iter()
        .find(|m| m.name == "registration.update_interval_s")
        .expect("interval");
    // The agent updates at half the lifetime: 10 protocol seconds.
    assert!(m.value > 5.0 && m.value < 20.0, "{}", m.value);
}

#[tokio::test]
async fn int_103_passes() {
    let mut cx = context(1.0, "case-103", AgentDut::new(&[])).await;
    run_case("LightweightM2M-1.1-int-103", &mut cx)
        .await
        .unwrap();
    assert!(cx.server.registration("case-103").is_none());
}

#[tokio::test]
async fn int_104_passes_at_time_scale_10() {
    let mut cx = context(10.0, "case-104", AgentDut::new(&[])).await;
    run_case("LightweightM2M-1.1-int-104", &mut cx)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_dut_that_never_registers_fails_101_with_a_precise_message() {
    let mut cx = context(10.0, "mute", AgentDut::silent()).await;
    let started = tokio::time::Instant::now();
    let f = run_case("LightweightM2M-1.1-int-101", &mut cx)
        .await
        .unwrap_err();
    assert_eq!(f.verdict, Verdict::Fail, "{}", f.message);
    assert!(
        f.message
            .starts_with("no Register from endpoint `mute` within 5.0 s"),
        "{}",
        f.message
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_dut_that_never_registers_leaves_102_inconclusive_at_its_start_state() {
    let mut cx = context(10.0, "mute2", AgentDut::silent()).await;
    let f = run_case("LightweightM2M-1.1-int-102", &mut cx)
        .await
        .unwrap_err();
    assert_eq!(f.verdict, Verdict::Inconclusive, "{}", f.message);
    assert!(
        f.message.starts_with(
            "could not reach start state C.1: no Register from endpoint `mute2` within 5.0 s"
        ),
        "{}",
        f.message
    );
}

const IDS: [&str; 4] = [
    "LightweightM2M-1.1-int-101",
    "LightweightM2M-1.1-int-102",
    "LightweightM2M-1.1-int-103",
    "LightweightM2M-1.1-int-104",
];

/// Runs 101-104 against an agent with one planted deviation; returns the
/// failures by case id.
async fn run_with_deviation(switch: &str) -> BTreeMap<String, CaseFailure> {
    let mut failures = BTreeMap::new();
    for id in IDS {
        let ep = format!("dev-{switch}-{}", &id[id.len() - 3..]);
        let mut cx = context(10.0, &ep, AgentDut::deviating(&[switch])).await;
        if let Err(f) = run_case(id, &mut cx).await {
            failures.insert(id.to_string(), f);
        }
    }
    failures
}

/// Checks that exactly `expected` cases fail, each with a Fail verdict and a
/// message containing the given text.
async fn assert_caught(switch: &str, expected: &[(&str, &str)]) {
    let failures = run_with_deviation(switch).await;
    let ids: Vec<&str> = failures.keys().map(String::as_str).collect();
    let want: Vec<String> = expected
        .iter()
        .map(|(n, _)| format!("LightweightM2M-1.1-int-{n}"))
        .collect();
    assert_eq!(ids, want, "--deviate {switch}: {failures:#?}");
    for (n, text) in expected {
        let f = &failures[&format!("LightweightM2M-1.1-int-{n}")];
        assert_eq!(f.verdict, Verdict::Fail, "{n}: {}", f.message);
        assert!(
            f.message.contains(text),
            "--deviate {switch}, int-{n}: {:?} lacks {text:?}",
            f.message
        );
    }
}

#[tokio::test]
async fn security_object_in_the_register_fails_only_101() {
    assert_caught(
        "list-security-object",
        &[(
            "101",
            "expected no /0 link in the object list, saw </0>,</0/0>,</1>,</1/0>",
        )],
    )
    .await;
}

#[tokio::test]
async fn register_without_lwm2m_version_fails_only_101() {
    assert_caught(
        "no-lwm2m-version",
        &[("101", "expected lwm2m=1.1, saw no lwm2m parameter")],
    )
    .await;
}

#[tokio::test]
async fn ignored_lifetime_write_fails_102_and_104() {
    let msg = "expected an Update with lt=20 within 5.0 s of the Write; saw none";
    assert_caught("ignore-lifetime-write", &[("102", msg), ("104", msg)]).await;
}

#[tokio::test]
async fn missing_periodic_update_fails_102_and_104() {
    assert_caught(
        "no-periodic-update",
        &[
            (
                "102",
                "expected an Update within 2.0 s of the lt=20 Update; saw none",
            ),
            (
                "104",
                "still registered 2.0 s after the lt=20 Update; it is gone",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn ignored_disable_fails_only_103() {
    assert_caught(
        "ignore-disable",
        &[(
            "103",
            "expected a De-register (DELETE /rd/...) within 5.0 s of the Disable; saw none",
        )],
    )
    .await;
}

#[tokio::test]
async fn trigger_update_with_parameters_fails_only_104() {
    assert_caught(
        "trigger-update-with-params",
        &[(
            "104",
            "expected an Update with no parameters after Execute /1/0/8; saw an Update with b=U",
        )],
    )
    .await;
}
