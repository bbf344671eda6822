//! End-to-end test of the firmware-update suite's CI subset: the real `rig`
//! binary runs `suites/fota-ci.toml` on the default simulated bench against
//! the real reference agent (ETS 751, 770, 771 over CoAP and HTTP, 772, 776,
//! the quick interruptions, the CoAPS floor ratio), and the report carries
//! the interruption table and the floor ratio. Every wait is bounded: a
//! child that runs too long is killed and the test fails.

#![allow(clippy::panic, clippy::unwrap_used)] // test helpers may panic: that is how a test fails

use std::path::Path;
use std::time::Duration;

mod common;
use common::{ensure_agent, rig, run_bounded, status_of, text};

/// The longest the CI subset may take (the suite's own limit is 900 s).
const RUN_LIMIT: Duration = Duration::from_secs(960);

fn read_json(dir: &Path) -> serde_json::Value {
    let raw = std::fs::read_to_string(dir.join("run.json")).unwrap();
    serde_json::from_str(&raw).unwrap_or_else(|e| panic!("run.json invalid: {e}\n{raw}"))
}

fn measurement(case: &serde_json::Value, name: &str) -> Option<f64> {
    case["measurements"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["value"].as_f64())
}

#[test]
fn the_fota_ci_suite_passes_on_the_simulated_bench() {
    ensure_agent();
    let privileged = rig_net::check_capabilities().is_ok();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = run_bounded(
        rig(&[
            "run",
            "suites/fota-ci.toml",
            "--bench",
            "hardware/sim.toml",
            "--out",
            out.to_str().unwrap(),
        ]),
        RUN_LIMIT,
    );
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    let json = read_json(&out);
    let cases = json["cases"].as_array().unwrap();
    let by_id = |id: &str| {
        cases
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing from run.json"))
    };
    // Without the capabilities the cut case is Not Applicable (loopback);
    // everything else must pass.
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let verdict = case["verdict"].as_str().unwrap();
        if !privileged && (id.contains(".cut-") || id.ends_with(".floor")) {
            assert_eq!(verdict, "not_applicable", "{case}");
        } else {
            assert_eq!(
                verdict, "pass",
                "{id}: {}\nstderr:\n{stderr}",
                case["message"]
            );
        }
    }
    assert_eq!(status_of(&o), 0, "stdout:\n{stdout}\nstderr:\n{stderr}");

    // The pull fetched each byte once; the image arrived intact after a
    // restart, resumed (a CoAP pull re-fetches at most a few blocks), and the
    // naive MQTT/HTTPS client fetched about half the image again.
    let baseline = by_id("fota.lwm2m-coap-block2.baseline");
    assert!(measurement(baseline, "fota.time_to_complete_s").unwrap() > 0.0);
    let coap = by_id("fota.lwm2m-coap-block2.restart");
    assert_eq!(measurement(coap, "fota.image_intact"), Some(1.0));
    assert!(measurement(coap, "fota.duplicated_payload_bytes").unwrap() <= 4096.0);
    let naive = by_id("fota.mqtt-https.restart");
    assert_eq!(measurement(naive, "fota.image_intact"), Some(1.0));
    assert!(
        measurement(naive, "fota.duplicated_payload_bytes").unwrap() >= 400_000.0,
        "{naive}"
    );

    // The MQTT stream keeps its bitmap in RAM only: a restart fetches the
    // blocks it already had again (about half the image).
    let stream = by_id("fota.mqtt-stream.restart");
    assert_eq!(measurement(stream, "fota.image_intact"), Some(1.0));
    assert!(
        measurement(stream, "fota.duplicated_payload_bytes").unwrap() >= 400_000.0,
        "{stream}"
    );

    // The report holds the matrix table and its chart.
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Firmware update under interruption"), "{md}");
    assert!(
        md.contains("| lwm2m-coap-block2 | restart | pass |"),
        "{md}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("id=\"fota\""));
    assert!(html.contains("fota-extra-bytes"));

    // Issue 7 item 7: the clean CoAPS pull stays within 1.02 × the framing
    // floor (1,214,432 B for 1 MiB in 1024-byte blocks), and the report
    // prints the ratio next to the table.
    if privileged {
        let floor = by_id("fota.lwm2m-coaps-block2.floor");
        assert_eq!(
            measurement(floor, "fota.floor_bytes"),
            Some(1_214_432.0),
            "{floor}"
        );
        let ratio = measurement(floor, "fota.floor_ratio").unwrap();
        assert!((1.0..=1.02).contains(&ratio), "{floor}");
        let line = format!("CoAPS Block2 floor ratio: {ratio:.4} (");
        assert!(md.contains(&line), "{md}");
        assert!(html.contains(&line), "{html}");
    }
}
