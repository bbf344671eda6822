//! Strictness of the registration, queue-mode and bootstrap cases: each
//! test turns on one test-only `--deviate` switch of the reference agent,
//! runs the case the deviation must break and its neighbours through
//! rig-suite (start state, then body, as the engine does), over real UDP on
//! loopback, and checks that exactly the named case fails, with a message
//! naming the deviation, while the neighbours pass. The first tests check
//! that every new case passes against the honest agent.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::dut::{AgentDut, assert_failed, context, id, run_case};
use rig_report::events::Verdict;
use rig_suite::case::{CaseContext, CaseFailure};

/// The time scale of these tests: every case proves the same at 10.
const SCALE: f64 = 10.0;

/// Runs `n` against the agent with `deviate` switched on.
async fn run(n: &str, deviate: &[&str]) -> (Result<(), CaseFailure>, CaseContext) {
    let tag = deviate.first().copied().unwrap_or("honest");
    let ep = format!("strict-{tag}-{n}");
    let mut cx = context(SCALE, &ep, AgentDut::deviating(deviate)).await;
    let r = run_case(&id(n), &mut cx).await;
    (r, cx)
}

/// With `switch` on: case `failing` fails (verdict Fail, message containing
/// `text`), and each of `passing` passes.
async fn assert_caught(switch: &str, failing: &str, text: &str, passing: &[&str]) {
    let (r, _) = run(failing, &[switch]).await;
    assert_failed(switch, failing, r, text);
    for n in passing {
        let (r, _) = run(n, &[switch]).await;
        if let Err(f) = r {
            panic!("--deviate {switch} must not fail int-{n}: {f:?}");
        }
    }
}

// ---- the honest agent passes ------------------------------------------------

#[tokio::test]
async fn honest_agent_passes_105_and_107() {
    for n in ["105", "107"] {
        let (r, cx) = run(n, &[]).await;
        r.unwrap_or_else(|f| panic!("int-{n}: {f:?}"));
        assert!(
            cx.measurements.iter().any(|m| m.unit == "s"),
            "int-{n} measured nothing"
        );
    }
}

#[tokio::test]
async fn int_106_is_not_applicable_with_the_reason() {
    let (r, _) = run("106", &[]).await;
    let f = r.unwrap_err();
    assert_eq!(f.verdict, Verdict::NotApplicable);
    assert!(f.message.contains("CoAP over TCP"), "{}", f.message);
}

#[tokio::test]
async fn honest_agent_passes_108_and_109_and_the_server_held_the_read() {
    for n in ["108", "109"] {
        let (r, cx) = run(n, &[]).await;
        r.unwrap_or_else(|f| panic!("int-{n}: {f:?}"));
        if n == "109" {
            let m = cx
                .measurements
                .iter()
                .find(|m| m.name == "queue.held_read_answer_s")
                .expect("held read measured");
            assert!(m.value < 5.0, "{}", m.value);
        }
    }
}

#[tokio::test]
async fn honest_agent_passes_bootstrap_1_2_and_6() {
    for n in ["1", "2", "6"] {
        let (r, _) = run(n, &[]).await;
        r.unwrap_or_else(|f| panic!("int-{n}: {f:?}"));
    }
}

/// int-7 waits for CoAP's unscaled MAX_TRANSMIT_WAIT (about 93 s): at a
/// time scale too, as the case's timeout is `unscaled_timeout`.
#[tokio::test]
async fn honest_agent_falls_back_to_bootstrap_in_int_7() {
    let mut cx = context(SCALE, "strict-honest-7", AgentDut::new(&[])).await;
    let r = run_case(&id(7), &mut cx).await;
    r.unwrap_or_else(|f| panic!("int-7: {f:?}"));
    let m = cx
        .measurements
        .iter()
        .find(|m| m.name == "bootstrap.fallback_s")
        .unwrap();
    assert!(m.value > 30.0 && m.value < 123.0, "{}", m.value);
}

// ---- one switch, one failing case --------------------------------------------

#[tokio::test]
async fn register_in_text_plain_fails_only_101() {
    assert_caught(
        "register-wrong-content-format",
        "101",
        "payload has Content-Format 0, expected 40",
        &["103"],
    )
    .await;
}

#[tokio::test]
async fn trigger_answered_2_05_fails_only_104() {
    assert_caught(
        "trigger-wrong-code",
        "104",
        "Execute /1/0/8: expected 2.04 Changed, got 2.05",
        &["103"],
    )
    .await;
}

#[tokio::test]
async fn no_register_after_404_fails_only_105() {
    assert_caught(
        "ignore-update-not-found",
        "105",
        "was answered 4.04 Not Found; expected a fresh Register (POST /rd)",
        &["102"],
    )
    .await;
}

#[tokio::test]
async fn register_instead_of_update_on_extension_fails_only_107() {
    assert_caught(
        "reregister-on-lifetime-extension",
        "107",
        "expected an Update with lt=120",
        &["102", "105"],
    )
    .await;
}

#[tokio::test]
async fn queue_mode_as_binding_uq_fails_only_108() {
    assert_caught(
        "queue-mode-in-binding",
        "108",
        "the Register carried b=UQ (the LwM2M 1.0 form) and no Q",
        &["101"],
    )
    .await;
}

#[tokio::test]
async fn answering_while_asleep_fails_only_109() {
    assert_caught(
        "answer-while-sleeping",
        "109",
        "while it should sleep in queue mode",
        &["108"],
    )
    .await;
}

#[tokio::test]
async fn never_waking_again_fails_only_109() {
    assert_caught(
        "no-wake-on-update",
        "109",
        "the held Read went out after the client's Update, but",
        &["108"],
    )
    .await;
}

#[tokio::test]
async fn discover_without_ssid_fails_only_int_0() {
    assert_caught(
        "discover-without-ssid",
        "0",
        "Bootstrap-Discover /: expected </0/0> with ssid=1",
        &["4", "9"],
    )
    .await;
}

#[tokio::test]
async fn deleting_the_bootstrap_account_fails_only_int_4() {
    assert_caught(
        "delete-bootstrap-account",
        "4",
        "after Bootstrap-Delete /0 the bootstrap account /0/1 must survive",
        &["0"],
    )
    .await;
}

#[tokio::test]
async fn ignoring_the_bootstrap_trigger_fails_only_int_5() {
    assert_caught(
        "ignore-bootstrap-trigger",
        "5",
        "no Bootstrap-Request within",
        &["0"],
    )
    .await;
}

#[tokio::test]
async fn bootstrap_read_in_the_wrong_format_fails_only_int_8() {
    assert_caught(
        "bootstrap-read-wrong-format",
        "8",
        "Bootstrap-Read /1: expected /1/0/1 = 86400",
        &["0"],
    )
    .await;
}

#[tokio::test]
async fn finish_accepting_an_inconsistent_configuration_fails_only_int_9() {
    assert_caught(
        "finish-accepts-inconsistent",
        "9",
        "Bootstrap-Finish with no server Security instance: expected 4.06",
        &["0"],
    )
    .await;
}

#[tokio::test]
async fn bootstrapping_despite_a_working_server_fails_only_int_6() {
    assert_caught(
        "bootstrap-despite-server",
        "6",
        "with a working factory server account the DUT sent a Bootstrap-Request",
        &["0"],
    )
    .await;
}
