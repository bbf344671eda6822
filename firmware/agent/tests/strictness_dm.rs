//! Strictness of the device management (2xx) and information reporting
//! (3xx) cases: each test starts the agent with one planted deviation
//! (`--deviate <switch>`), checks that the case it targets fails with a
//! message naming the deviation, and that the neighbouring cases exercising
//! the same operations still pass (so the failure is that case's, not a
//! broken agent's).

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::dut::caught;

#[tokio::test]
async fn device_info_as_opaque_fails_201() {
    caught(
        "device-info-as-opaque",
        1.0,
        &[(
            201,
            "Read /3/0/0 (Accept 0): expected Content-Format 0 (text/plain), saw 42",
        )],
        &[224],
    )
    .await;
}

#[tokio::test]
async fn tlv_for_the_wrong_instance_fails_203() {
    caught(
        "tlv-wrong-instance",
        1.0,
        &[(
            203,
            "Read /3/0 (Accept 11542): expected the Object Instance TLV of /3/0, saw one for instance 1",
        )],
        &[224],
    )
    .await;
}

#[tokio::test]
async fn lwm2m_json_as_senml_fails_204() {
    caught(
        "lwm2m-json-as-senml",
        1.0,
        &[(
            204,
            "asked for content format 11543, the client answered 110",
        )],
        &[220],
    )
    .await;
}

#[tokio::test]
async fn cbor_boolean_as_integer_fails_211() {
    caught(
        "cbor-boolean-as-integer",
        1.0,
        &[(
            211,
            "Read /1/0/6 (Accept 60): expected the CBOR item [f4], saw [00]",
        )],
        &[212],
    )
    .await;
}

#[tokio::test]
async fn cbor_write_refused_fails_212() {
    caught(
        "cbor-write-refused",
        1.0,
        &[(
            212,
            "Write /1/0/2 = 101 (60): expected 2.04 Changed, got 4.15 Unsupported Content-Format",
        )],
        &[205],
    )
    .await;
}

#[tokio::test]
async fn partial_update_as_replace_fails_215_and_220() {
    let text = "read after the partial update: /1/0/1: expected 86400, saw no value";
    caught(
        "partial-update-replaces",
        1.0,
        &[(215, text), (220, text)],
        &[226],
    )
    .await;
}

#[tokio::test]
async fn readable_security_object_fails_221() {
    caught(
        "security-readable",
        1.0,
        &[(221, "Read /0: expected 4.01 Unauthorized, got 2.05 Content")],
        &[222],
    )
    .await;
}

#[tokio::test]
async fn no_update_after_partial_update_fails_226() {
    caught(
        "partial-update-no-update",
        1.0,
        &[(
            226,
            "expected an Update with lt=65 within 10.0 s of the partial update; saw none",
        )],
        &[227],
    )
    .await;
}

#[tokio::test]
async fn composite_answer_in_the_wrong_format_fails_229() {
    caught(
        "composite-ignores-accept",
        1.0,
        &[(
            229,
            "Read-Composite /3, /1/0, /1/0/1, /3/0/11/0 (110): expected Content-Format 110, saw 112",
        )],
        &[280],
    )
    .await;
}

#[tokio::test]
async fn composite_failing_on_a_missing_path_fails_236() {
    caught(
        "composite-missing-path-fails",
        1.0,
        &[(
            236,
            "Read-Composite /1/0/1, /3/0/0, /3339/0/5522, /3353/0/6030 (112): expected 2.05 Content, got 4.04 Not Found",
        )],
        &[280, 281],
    )
    .await;
}

#[tokio::test]
async fn reboot_without_register_fails_241() {
    // At time scale 6 the 30 s wait for the new Register is the 5 s floor.
    caught(
        "reboot-without-register",
        6.0,
        &[(
            241,
            "expected a new Register within 5.0 s of Execute /3/0/4 (Reboot); saw none",
        )],
        &[],
    )
    .await;
}

#[tokio::test]
async fn accepted_read_only_write_fails_256() {
    caught(
        "write-read-only",
        1.0,
        &[(
            256,
            "Write /1/0/0 = 123 (read-only): expected 4.05 Method Not Allowed, got 2.04 Changed",
        )],
        &[224],
    )
    .await;
}

#[tokio::test]
async fn swapped_gt_lt_in_discover_fails_260() {
    caught(
        "discover-swaps-gt-lt",
        1.0,
        &[(
            260,
            "Discover /3/0/7: expected `</3/0/7>;pmin=10;pmax=200;dim=2;lt=1;gt=6;st=1`, saw `</3/0/7>;dim=2;pmin=10;pmax=200;gt=1;lt=6;st=1`",
        )],
        &[261],
    )
    .await;
}

#[tokio::test]
async fn dropped_resource_instance_attributes_fail_261() {
    caught(
        "discover-drops-instance-attributes",
        1.0,
        &[(
            261,
            "Discover /3/0/11: expected `</3/0/11>;dim=1;pmin=10;pmax=320,</3/0/11/0>;pmax=100;epmin=1;epmax=20`, saw `</3/0/11>;dim=1;pmin=10;pmax=320,</3/0/11/0>`",
        )],
        &[260],
    )
    .await;
}

#[tokio::test]
async fn late_notification_fails_301() {
    caught(
        "late-notification",
        5.0,
        &[(301, "after pmax (15 s scaled = 3.00 s")],
        &[],
    )
    .await;
}

#[tokio::test]
async fn early_notification_fails_301() {
    caught(
        "early-notification",
        5.0,
        &[(301, "before pmin (5 s scaled = 1.00 s")],
        &[],
    )
    .await;
}

#[tokio::test]
async fn security_object_in_a_send_fails_306() {
    caught(
        "send-security-object",
        1.0,
        &[(
            306,
            "Send: /0/0/0 is in object /0, which the client did not register",
        )],
        &[311],
    )
    .await;
}

#[tokio::test]
async fn send_while_muted_fails_307() {
    caught(
        "send-ignores-mute",
        1.0,
        &[(
            307,
            "with /1/0/23 (Mute Send) = true, expected no Send; the server got one",
        )],
        &[306],
    )
    .await;
}

#[tokio::test]
async fn send_in_lwm2m_json_fails_311() {
    caught(
        "send-in-lwm2m-json",
        1.0,
        &[(
            311,
            "Send of /1/0/1 and /3/0/11/0: the server refused the report with 4.15 (Content-Format 11543)",
        )],
        &[306],
    )
    .await;
}
