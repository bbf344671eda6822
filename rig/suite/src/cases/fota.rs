//! Firmware update (issue 7): the ETS Object 5 cases 751-779 and the
//! interruption matrix `fota.<path>.<interruption>` ([`interrupt`]).
//!
//! Every ETS case starts the DUT itself (start state `Stopped`), provisioned
//! as C.1 plus the FOTA keys (`state_dir`, `fota_ca`; see
//! [`support::fota_extra`]), then watches `/5/0/3` State and `/5/0/5` Update
//! Result through Observe ([`support::FwWatch`]) and checks the image that
//! arrived: the agent's `fota downloaded bytes=<n> sha256=<hex>` line against
//! the manifest (`fixtures/firmware/manifest.toml`).
//!
//! The file servers (CoAP, CoAPS, HTTP, HTTPS) are started per case where the
//! DUT reaches the rig's services (`cx.net`), serving the seeded standard
//! images; their records (blocks, ranges, repeats) back the assertions.
//!
//! Case ids: the ETS id, and for 771 one id per pull protocol
//! (`LightweightM2M-1.1-int-771-coap`, `-coaps`, `-http`, `-https`): the
//! engine's matrix is security-only, so the protocol is part of the id.

pub mod floor;
pub mod interrupt;
pub mod support;

use std::time::Duration;

use rig_services::lwm2m::{self, ContentFormat, Value};

use crate::case::{
    Area, CaseContext, CaseDef, CaseFailure, CaseFuture, CaseMeta, CaseResult, EtsConfig,
    SecurityMode, StartState,
};
use crate::start::{self, ServerCert};
use support::{FileServers, FwWatch, IMAGE, Proto};

const REQUIRES: &[&str] = &["lwm2m"];

/// How long a 1 MiB download may take (time scale 1; never scaled: the
/// link's speed does not scale).
pub(crate) const DOWNLOAD_WAIT: Duration = Duration::from_secs(180);

/// The small image for the quick cases.
const SMALL: &str = "fw-small";

/// What a case that needs the agent's FOTA keeps alive while it runs.
pub(crate) struct Fota {
    /// The file servers.
    pub(crate) servers: FileServers,
    /// The Object 5 watcher.
    pub(crate) watch: FwWatch,
    /// The agent's resume store.
    pub(crate) state_dir: tempfile::TempDir,
}

/// Starts the file servers for `protos` (CoAPS also makes the LwM2M server
/// PSK, so the DUT holds the PSK the CoAPS file server knows), starts the
/// DUT as C.1 with the FOTA keys, waits for its Register and observes State
/// and Update Result.
pub(crate) async fn begin(cx: &mut CaseContext, protos: &[Proto]) -> Result<Fota, CaseFailure> {
    let f = begin_with(cx, protos, &[]).await?;
    if f.watch.state() != 0 {
        return Err(CaseFailure::inconclusive(format!(
            "the DUT did not start in State 0 (Idle): {}",
            f.watch.history()
        )));
    }
    Ok(f)
}

fn meta(
    id: &'static str,
    title: &'static str,
    timeout_s: u64,
    reading: Option<&'static str>,
) -> CaseMeta {
    CaseMeta {
        id,
        title,
        area: Area::FirmwareUpdate,
        requires: REQUIRES,
        start: StartState::Stopped,
        timeout: Duration::from_secs(timeout_s),
        reading,
        unscaled_timeout: false,
        max_time_scale: None,
    }
}

/// The ETS firmware-update cases, in id order, then the interruption matrix.
pub(crate) fn cases() -> Vec<CaseDef> {
    let mut v = vec![
        CaseDef {
            meta: meta(
                "LightweightM2M-1.1-int-751",
                "Firmware Update: readable resources",
                60,
                Some(
                    "Read /5/0 (TLV): State 0, Update Result 0, Protocol Support /5/0/8 lists \
                     0..3 (CoAP, CoAPS, HTTP, HTTPS: the agent's contract), Delivery Method \
                     /5/0/9 = 2 (both).",
                ),
            ),
            body: |cx| Box::pin(int_751(cx)),
        },
        CaseDef {
            meta: meta(
                "LightweightM2M-1.1-int-755",
                "Firmware Update: write Package",
                120,
                Some(
                    "Write '\\0' to /5/0/0 (reset): 2.04, State 0 / Result 0. Then push the 16 KiB \
                     valid image (Block1 Write, opaque): 2.04, State 2 (observed), Result 0, and \
                     the received image matches the manifest.",
                ),
            ),
            body: |cx| Box::pin(int_755(cx)),
        },
        CaseDef {
            meta: meta(
                "LightweightM2M-1.1-int-756",
                "Firmware Update: write Package URI",
                120,
                Some(
                    "Write \"\" to /5/0/1 (reset): 2.04, State 0 / Result 0. Then write an http:// \
                     URI of the 16 KiB image: 2.04, State 2 (observed), Result 0, image as in \
                     the manifest.",
                ),
            ),
            body: |cx| Box::pin(int_756(cx)),
        },
        CaseDef {
            meta: meta(
                "LightweightM2M-1.1-int-760",
                "Firmware Update: observe State",
                120,
                Some(
                    "Write-Attributes /5/0?pmin=2&pmax=10, Observe /5/0/3, push the 16 KiB image: \
                     a notification with State 2 must arrive.",
                ),
            ),
            body: |cx| Box::pin(int_760(cx)),
        },
        CaseDef {
            meta: meta(
                "LightweightM2M-1.1-int-770",
                "Successful firmware update via CoAP (push)",
                300,
                Some(
                    "Reset, push the 1 MiB image with a Block1 Write to /5/0/0, observe State 1 \
                     then 2 with Result 0, Execute /5/0/2: State returns to 0 with Result 1. The \
                     agent only verifies the package and reports success (the study's 'update \
                     not applied but reported successful'), so /3/0/3 is not required to change.",
                ),
            ),
            body: |cx| Box::pin(int_770(cx)),
        },
    ];
    fn coap(cx: &mut CaseContext) -> CaseFuture<'_> {
        Box::pin(int_771(cx, Proto::Coap))
    }
    fn coaps(cx: &mut CaseContext) -> CaseFuture<'_> {
        Box::pin(int_771(cx, Proto::Coaps))
    }
    fn http(cx: &mut CaseContext) -> CaseFuture<'_> {
        Box::pin(int_771(cx, Proto::Http))
    }
    fn https(cx: &mut CaseContext) -> CaseFuture<'_> {
        Box::pin(int_771(cx, Proto::Https))
    }
    type Body = for<'a> fn(&'a mut CaseContext) -> CaseFuture<'a>;
    let pulls: [(&'static str, Body); 4] = [
        ("LightweightM2M-1.1-int-771-coap", coap),
        ("LightweightM2M-1.1-int-771-coaps", coaps),
        ("LightweightM2M-1.1-int-771-http", http),
        ("LightweightM2M-1.1-int-771-https", https),
    ];
    for (id, body) in pulls {
        v.push(CaseDef {
            meta: meta(
                id,
                "Successful firmware update via alternate mechanism (pull)",
                300,
                Some(
                    "Reset via /5/0/1 = \"\", write the URI of the 1 MiB image, observe State 1 \
                     then 2 (Result 0), Execute /5/0/2: State 0, Result 1. The image matches the \
                     manifest and was served once: no repeated block or byte range (Anjay's test \
                     asserts exactly one HTTP GET). CoAPS uses PSK with CCM_8, the DUT's own \
                     LwM2M credentials.",
                ),
            ),
            body,
        });
    }
    v.extend([
        CaseDef {
            meta: meta(
                "LightweightM2M-1.1-int-772",
                "Firmware Update error 1: install without a package",
                60,
                Some("Execute /5/0/2 in State 0: 4.05, and State and Result unchanged."),
            ),
            body: |cx| Box::pin(int_772(cx)),
        },
        CaseDef {
            meta: meta(
                "LightweightM2M-1.1-int-773",
                "Firmware Update error 2: not enough storage",
                120,
                Some(
                    "Pull the 64 MiB image over HTTP (the agent's storage is --fota-max-size, \
                     4 MiB): Result 2, final State 0.",
                ),
            ),
            body: |cx| Box::pin(int_773(cx)),
        },
        CaseDef {
            meta: meta(
                "LightweightM2M-1.1-int-774",
                "Firmware Update error 3: out of RAM",
                30,
                Some(
                    "Result 3 (the ETS text says 2: erratum, OI #375). No way to make a Linux \
                     agent run out of RAM on demand exists in the contract, so the case is Not \
                     Applicable rather than faked.",
                ),
            ),
            body: |_cx| {
                Box::pin(async {
                    Err(CaseFailure::not_applicable(
                        "out of RAM (Result 3) cannot be provoked in the reference agent: its FOTA \
                         contract defines no trigger",
                    ))
                })
            },
        },
        CaseDef {
            meta: meta(
                "LightweightM2M-1.1-int-775",
                "Firmware Update error 4: connection lost",
                300,
                Some(
                    "Pull the 1 MiB image over CoAP; at 50% the connection is lost for good (the \
                     simulated link is cut; on loopback the file server stops), so retries run \
                     out: Result 4, final State 0. The DUT is provisioned with \
                     fota_retries = 2 to bound the wait.",
                ),
            ),
            body: |cx| Box::pin(int_775(cx)),
        },
        CaseDef {
            meta: meta(
                "LightweightM2M-1.1-int-776",
                "Firmware Update error 5: integrity check failure",
                180,
                Some("Pull the corrupt 1 MiB image over CoAP: Result 5, final State 0."),
            ),
            body: |cx| Box::pin(int_error_pull(cx, "fw-corrupt", Proto::Coap, 5)),
        },
        CaseDef {
            meta: meta(
                "LightweightM2M-1.1-int-777",
                "Firmware Update error 6: unsupported package type",
                180,
                Some(
                    "Pull the image with magic RIGX over HTTP: Result 6, final State 0 (the ETS \
                     says final State 1; OI #374 says Idle 0, which the rig follows).",
                ),
            ),
            body: |cx| Box::pin(int_error_pull(cx, "fw-bad-type", Proto::Http, 6)),
        },
        CaseDef {
            meta: meta(
                "LightweightM2M-1.1-int-778",
                "Firmware Update error 7: invalid URI",
                60,
                Some("Write a URI that does not parse to /5/0/1: 2.04, then Result 7."),
            ),
            body: |cx| Box::pin(int_778(cx)),
        },
        CaseDef {
            meta: meta(
                "LightweightM2M-1.1-int-779",
                "Firmware Update error 8: unsuccessful update",
                300,
                Some(
                    "Pull the install-fails image over HTTP: State 2; Execute /5/0/2: State back \
                     to 2 and Result 8.",
                ),
            ),
            body: |cx| Box::pin(int_779(cx)),
        },
    ]);
    v.extend(interrupt::cases());
    v.push(CaseDef {
        meta: CaseMeta {
            requires: &["lwm2m", "console", "impair"],
            ..meta(
                "fota.lwm2m-coaps-block2.floor",
                "CoAPS Block2 pull: bytes on the wire against the framing floor",
                300,
                Some(
                    "Pull the 1 MiB image over coaps:// (PSK, CCM_8, 1024-byte blocks) on the \
                     simulated network. The file server's flow in whole Ethernet frames, minus \
                     the DTLS handshake (reported separately), divided by the floor computed \
                     from the framing (rig/suite/src/cases/fota/floor.rs): at most 1.02.",
                ),
            )
        },
        body: |cx| Box::pin(floor::run(cx)),
    });
    v
}

async fn int_751(cx: &mut CaseContext) -> CaseResult {
    let _f = begin(cx, &[]).await?;
    let r = cx
        .server
        .read(
            &cx.endpoint,
            &support::path("/5/0")?,
            Some(ContentFormat::Tlv),
        )
        .await
        .map_err(|e| CaseFailure::fail(format!("Read /5/0: {e}")))?;
    if r.code != lwm2m::Code::CONTENT {
        return Err(CaseFailure::fail(format!(
            "Read /5/0: expected 2.05, got {} ({})",
            r.code,
            r.text()
        )));
    }
    let records = r
        .decoded
        .ok_or_else(|| CaseFailure::fail("Read /5/0: the TLV answer does not decode"))?;
    let int = |v: &Value| match v {
        Value::Integer(i) => Some(*i),
        Value::UnsignedInteger(u) => i64::try_from(*u).ok(),
        _ => None,
    };
    let res = |id: u16| -> Vec<i64> {
        records
            .iter()
            .filter(|r| {
                let ids = r.path.ids();
                ids.first() == Some(&5) && ids.get(2) == Some(&id)
            })
            .filter_map(|r| int(&r.value))
            .collect()
    };
    let (state, result, protocols, delivery) = (res(3), res(5), res(8), res(9));
    if state != [0] || result != [0] {
        return Err(CaseFailure::fail(format!(
            "Read /5/0: expected State 0 and Update Result 0, got State {state:?}, Result {result:?}"
        )));
    }
    let mut p = protocols.clone();
    p.sort();
    if p != [0, 1, 2, 3] {
        return Err(CaseFailure::fail(format!(
            "/5/0/8 Protocol Support: expected 0, 1, 2, 3 (CoAP, CoAPS, HTTP, HTTPS), got {protocols:?}"
        )));
    }
    if delivery != [2] {
        return Err(CaseFailure::fail(format!(
            "/5/0/9 Delivery Method: expected 2 (both), got {delivery:?}"
        )));
    }
    Ok(())
}

/// Reset through /5/0/0 = '\0', then checks State 0 / Result 0.
async fn reset_package(cx: &mut CaseContext, f: &mut Fota) -> CaseResult {
    let code = support::push(cx, vec![0], Duration::from_secs(30)).await?;
    if code != lwm2m::Code::CHANGED {
        return Err(CaseFailure::fail(format!(
            "Write '\\0' to /5/0/0 (reset): expected 2.04, got {code}"
        )));
    }
    expect_idle(cx, f).await
}

async fn expect_idle(cx: &mut CaseContext, f: &mut Fota) -> CaseResult {
    let (s, r) = (
        support::read_int(cx, support::STATE).await?,
        support::read_int(cx, support::RESULT).await?,
    );
    f.watch.drain();
    if (s, r) != (0, 0) {
        return Err(CaseFailure::fail(format!(
            "after the reset: expected State 0 / Result 0, read State {s} / Result {r}"
        )));
    }
    Ok(())
}

async fn push_image(cx: &mut CaseContext, name: &str) -> CaseResult {
    let img = support::image(name)?;
    let code = support::push(cx, img.image.to_vec(), DOWNLOAD_WAIT).await?;
    if code != lwm2m::Code::CHANGED {
        return Err(CaseFailure::fail(format!(
            "Block1 Write of {name} to /5/0/0: expected 2.04 on the last block, got {code}"
        )));
    }
    Ok(())
}

/// Waits for State 2 with Result 0 and checks the received image.
async fn expect_downloaded(cx: &mut CaseContext, f: &mut Fota, name: &str) -> CaseResult {
    f.watch
        .wait(DOWNLOAD_WAIT, "State 2 (Downloaded)", |s, _| s == 2)
        .await?;
    if f.watch.result() != 0 {
        return Err(CaseFailure::fail(format!(
            "Downloaded, but Update Result is {} (expected 0 until the update); {}",
            f.watch.result(),
            f.watch.history()
        )));
    }
    support::expect_downloaded(cx, name, Duration::from_secs(10)).await?;
    Ok(())
}

async fn int_755(cx: &mut CaseContext) -> CaseResult {
    let mut f = begin(cx, &[]).await?;
    reset_package(cx, &mut f).await?;
    push_image(cx, SMALL).await?;
    expect_downloaded(cx, &mut f, SMALL).await
}

async fn int_756(cx: &mut CaseContext) -> CaseResult {
    let mut f = begin(cx, &[Proto::Http]).await?;
    support::write_uri(cx, "").await?;
    expect_idle(cx, &mut f).await?;
    let uri = f.servers.uri(Proto::Http, SMALL)?;
    support::write_uri(cx, &uri).await?;
    expect_downloaded(cx, &mut f, SMALL).await
}

async fn int_760(cx: &mut CaseContext) -> CaseResult {
    let mut f = begin(cx, &[]).await?;
    let r = cx
        .server
        .write_attributes(&cx.endpoint, &support::path("/5/0")?, "pmin=2&pmax=10")
        .await
        .map_err(|e| CaseFailure::fail(format!("Write-Attributes /5/0: {e}")))?;
    if r.code != lwm2m::Code::CHANGED {
        return Err(CaseFailure::fail(format!(
            "Write-Attributes /5/0?pmin=2&pmax=10: expected 2.04, got {}",
            r.code
        )));
    }
    push_image(cx, SMALL).await?;
    f.watch
        .wait(
            start::prompt_wait(cx, Duration::from_secs(30)),
            "a notification of /5/0/3 with State 2",
            |s, _| s == 2,
        )
        .await?;
    support::expect_downloaded(cx, SMALL, Duration::from_secs(10)).await?;
    Ok(())
}

/// Execute /5/0/2 and wait for State 0 with Result 1.
async fn update_and_expect_success(cx: &mut CaseContext, f: &mut Fota) -> CaseResult {
    cx.step("Execute /5/0/2 (Update)");
    let r = cx
        .server
        .execute(&cx.endpoint, &support::path(support::UPDATE)?, None)
        .await
        .map_err(|e| CaseFailure::fail(format!("Execute /5/0/2: {e}")))?;
    if r.code != lwm2m::Code::CHANGED {
        return Err(CaseFailure::fail(format!(
            "Execute /5/0/2 in State 2: expected 2.04, got {} ({})",
            r.code,
            r.text()
        )));
    }
    f.watch
        .wait(
            start::prompt_wait(cx, Duration::from_secs(60)),
            "State 0 with Update Result 1 after the update",
            |s, r| s == 0 && r == 1,
        )
        .await
}

/// The download must have shown State 1 before State 2.
fn check_downloading_seen(f: &Fota) -> CaseResult {
    let s = &f.watch.states;
    let one = s.iter().position(|v| *v == 1);
    let two = s.iter().position(|v| *v == 2);
    match (one, two) {
        (Some(a), Some(b)) if a < b => Ok(()),
        _ => Err(CaseFailure::fail(format!(
            "expected State 1 (Downloading) before State 2; {}",
            f.watch.history()
        ))),
    }
}

async fn int_770(cx: &mut CaseContext) -> CaseResult {
    let mut f = begin(cx, &[]).await?;
    reset_package(cx, &mut f).await?;
    let started = tokio::time::Instant::now();
    push_image(cx, IMAGE).await?;
    expect_downloaded(cx, &mut f, IMAGE).await?;
    cx.measure(
        "fota.time_to_complete_s",
        "s",
        started.elapsed().as_secs_f64(),
    );
    check_downloading_seen(&f)?;
    update_and_expect_success(cx, &mut f).await
}

async fn int_771(cx: &mut CaseContext, proto: Proto) -> CaseResult {
    let mut f = begin(cx, &[proto]).await?;
    support::write_uri(cx, "").await?;
    expect_idle(cx, &mut f).await?;
    let uri = f.servers.uri(proto, IMAGE)?;
    let started = tokio::time::Instant::now();
    support::write_uri(cx, &uri).await?;
    expect_downloaded(cx, &mut f, IMAGE).await?;
    cx.measure(
        "fota.time_to_complete_s",
        "s",
        started.elapsed().as_secs_f64(),
    );
    check_downloading_seen(&f)?;
    let s = f.servers.summary(proto);
    cx.measure("fota.served_bytes", "B", s.payload_bytes as f64);
    if s.duplicate_bytes > 0 || s.unique_bytes != support::image(IMAGE)?.image.len() {
        return Err(CaseFailure::fail(format!(
            "an uninterrupted pull must fetch each byte once: the {} server sent {} bytes, {} of \
             them repeated, {} distinct",
            proto.scheme(),
            s.payload_bytes,
            s.duplicate_bytes,
            s.unique_bytes
        )));
    }
    if let Some(h) = f.servers.http(proto) {
        let bodies = h.records().iter().filter(|r| r.bytes_sent > 0).count();
        if bodies != 1 {
            return Err(CaseFailure::fail(format!(
                "expected exactly one HTTP GET carrying the image, saw {bodies}"
            )));
        }
    }
    update_and_expect_success(cx, &mut f).await
}

async fn int_772(cx: &mut CaseContext) -> CaseResult {
    let mut f = begin(cx, &[]).await?;
    let r = cx
        .server
        .execute(&cx.endpoint, &support::path(support::UPDATE)?, None)
        .await
        .map_err(|e| CaseFailure::fail(format!("Execute /5/0/2: {e}")))?;
    if r.code != lwm2m::Code::METHOD_NOT_ALLOWED {
        return Err(CaseFailure::fail(format!(
            "Execute /5/0/2 in State 0: expected 4.05 Method Not Allowed, got {}",
            r.code
        )));
    }
    let (s, res) = (
        support::read_int(cx, support::STATE).await?,
        support::read_int(cx, support::RESULT).await?,
    );
    f.watch.drain();
    if (s, res) != (0, 0) || f.watch.states.iter().any(|v| *v != 0) {
        return Err(CaseFailure::fail(format!(
            "State and Result must stay 0/0 after the refused Execute: read {s}/{res}; {}",
            f.watch.history()
        )));
    }
    Ok(())
}

/// Pull `name` over `proto` and expect Update Result `want`, final State 0.
async fn int_error_pull(cx: &mut CaseContext, name: &str, proto: Proto, want: i64) -> CaseResult {
    let mut f = begin(cx, &[proto]).await?;
    let uri = f.servers.uri(proto, name)?;
    support::write_uri(cx, &uri).await?;
    f.watch
        .wait(
            DOWNLOAD_WAIT,
            &format!("Update Result {want} with State 0"),
            |s, r| r == want && s == 0,
        )
        .await?;
    if f.watch.states.contains(&2) {
        return Err(CaseFailure::fail(format!(
            "{name} must never reach State 2 (Downloaded); {}",
            f.watch.history()
        )));
    }
    Ok(())
}

async fn int_773(cx: &mut CaseContext) -> CaseResult {
    int_error_pull(cx, "fw-oversized", Proto::Http, 2).await?;
    Ok(())
}

async fn int_775(cx: &mut CaseContext) -> CaseResult {
    let mut f = begin_with(
        cx,
        &[Proto::Coap],
        &[("fota_retries", "2"), ("fota_idle_timeout", "5")],
    )
    .await?;
    let uri = f.servers.uri(Proto::Coap, IMAGE)?;
    support::write_uri(cx, &uri).await?;
    let total = support::image(IMAGE)?.image.len();
    interrupt::wait_served(&f.servers, Proto::Coap, total / 2, DOWNLOAD_WAIT).await?;
    let cut = cx.net.bridge().cloned();
    match &cut {
        Some(b) => {
            cx.step("cutting the link until the DUT gives up");
            b.cut(None, None)
                .map_err(|e| CaseFailure::infra(format!("cut the link: {e}")))?;
        }
        None => {
            cx.step("stopping the file server (loopback: no link to cut)");
            f.servers.stop(Proto::Coap).await;
        }
    }
    // While the link is cut no notification reaches the server: the
    // console says when the DUT gave up, then the link comes back and the
    // server reads the resources.
    let gave_up = cx
        .dut
        .expect_console("result=4", DOWNLOAD_WAIT)
        .await
        .map_err(|e| {
            CaseFailure::fail(format!(
                "the DUT did not report Update Result 4 within {:.0} s of losing the connection: {e}",
                DOWNLOAD_WAIT.as_secs_f64()
            ))
        });
    if let Some(b) = &cut {
        b.restore(None)
            .map_err(|e| CaseFailure::infra(format!("restore the link: {e}")))?;
    }
    gave_up?;
    f.watch.drain();
    let (s, r) = (
        support::read_int(cx, support::STATE).await?,
        support::read_int(cx, support::RESULT).await?,
    );
    if (s, r) != (0, 4) {
        return Err(CaseFailure::fail(format!(
            "after the lost connection: expected State 0 / Result 4, read {s} / {r}; {}",
            f.watch.history()
        )));
    }
    Ok(())
}

async fn int_778(cx: &mut CaseContext) -> CaseResult {
    let mut f = begin(cx, &[]).await?;
    support::write_uri(cx, "coap://[not a host/fw/fw-1mib").await?;
    f.watch
        .wait(
            start::prompt_wait(cx, Duration::from_secs(30)),
            "Update Result 7 (invalid URI)",
            |_, r| r == 7,
        )
        .await
}

async fn int_779(cx: &mut CaseContext) -> CaseResult {
    let name = "fw-install-fails";
    let mut f = begin(cx, &[Proto::Http]).await?;
    let uri = f.servers.uri(Proto::Http, name)?;
    support::write_uri(cx, &uri).await?;
    expect_downloaded(cx, &mut f, name).await?;
    cx.step("Execute /5/0/2 (Update) of a package whose install fails");
    let r = cx
        .server
        .execute(&cx.endpoint, &support::path(support::UPDATE)?, None)
        .await
        .map_err(|e| CaseFailure::fail(format!("Execute /5/0/2: {e}")))?;
    if r.code != lwm2m::Code::CHANGED {
        return Err(CaseFailure::fail(format!(
            "Execute /5/0/2 in State 2: expected 2.04, got {}",
            r.code
        )));
    }
    f.watch
        .wait(
            start::prompt_wait(cx, Duration::from_secs(60)),
            "State 2 with Update Result 8 after the failed update",
            |s, r| s == 2 && r == 8,
        )
        .await
}

/// [`begin`] with more provisioning keys (e.g. `fota_retries`), without
/// the State 0 check.
pub(crate) async fn begin_with(
    cx: &mut CaseContext,
    protos: &[Proto],
    extra: &[(&str, &str)],
) -> Result<Fota, CaseFailure> {
    if protos.contains(&Proto::Coaps) {
        start::use_secure_server(
            cx,
            SecurityMode::Psk,
            &[rig_dtls::CipherSuite::PSK_AES_128_CCM_8],
            ServerCert::Normal,
        )
        .await?;
    }
    let servers = FileServers::start(cx, protos).await?;
    let state_dir = tempfile::tempdir()
        .map_err(|e| CaseFailure::infra(format!("temp dir for the DUT's FOTA state: {e}")))?;
    let mut cfg = start::dut_config(cx, EtsConfig::C1);
    cfg.extra
        .extend(support::fota_extra(state_dir.path(), &servers));
    for (k, v) in extra {
        cfg.extra.insert((*k).to_string(), (*v).to_string());
    }
    start::start_and_wait_register(cx, &cfg, "C.1 with FOTA").await?;
    let watch = FwWatch::start(cx).await?;
    Ok(Fota {
        servers,
        watch,
        state_dir,
    })
}
