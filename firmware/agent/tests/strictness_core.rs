//! Strictness of the core-object and Portfolio cases: each test starts the
//! agent with one planted deviation (`--deviate <switch>`), checks that the
//! case it targets fails with a message naming the deviation, and that the
//! neighbouring cases on the same object still pass.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::dut::caught;

#[tokio::test]
async fn create_on_device_fails_680() {
    caught(
        "create-device-instance",
        1.0,
        &[(
            680,
            "Create /3: expected 4.05 Method Not Allowed, got 2.01 Created",
        )],
        &[685],
    )
    .await;
}

#[tokio::test]
async fn missing_ip_addresses_fail_701() {
    caught(
        "no-ip-addresses",
        1.0,
        &[(
            701,
            "Read /4/0: expected the mandatory resources 0, 1, 2, 4; missing /4/0/4",
        )],
        &[801],
    )
    .await;
}

#[tokio::test]
async fn missing_location_timestamp_fails_801() {
    caught(
        "no-location-timestamp",
        1.0,
        &[(
            801,
            "Read /6/0: expected the mandatory resources 0, 1, 5; missing /6/0/5",
        )],
        &[701],
    )
    .await;
}

#[tokio::test]
async fn counting_after_stop_fails_901() {
    caught(
        "stats-count-after-stop",
        1.0,
        &[(901, "after Stop /7/0/7 the counters kept counting")],
        &[905],
    )
    .await;
}

#[tokio::test]
async fn delete_keeping_the_instance_fails_1635() {
    caught(
        "delete-keeps-instance",
        1.0,
        &[(
            1635,
            "Discover /16 after deleting every instance: expected `</16>`, saw `</16>,</16/0>",
        )],
        &[1630],
    )
    .await;
}

#[tokio::test]
async fn attributes_shared_between_servers_fail_951() {
    caught(
        "shared-attributes",
        1.0,
        &[(
            951,
            "server 1: Discover /3/0 must show only its own attributes on </3/0> (pmax=10;pmin=2)",
        )],
        &[950],
    )
    .await;
}
