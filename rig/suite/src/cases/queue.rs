//! ETS queue-mode cases: LightweightM2M-1.1-int-108 and -109.
//!
//! The DUT is provisioned for queue mode through its binding: the
//! [`DutConfig`](rig_bench::dut::DutConfig) binding is `UQ` (how LwM2M 1.0
//! provisioned queue mode; the reference agent reads it as "binding U, queue
//! mode on") and `extra` carries `queue_mode = "true"` for device profiles
//! that want a flag. A LwM2M 1.1 client must then register with the `Q`
//! parameter and `b=U`.
//!
//! The rig's LwM2M server deems a queue-mode client reachable for CoAP's
//! MAX_TRANSMIT_WAIT (93 s, scaled) after its last datagram and HOLDS
//! operations asked later until the client's next uplink
//! ([`rig_services::lwm2m::Lwm2mServer::held_requests`]).

use std::time::Duration;

use rig_services::OpError;
use rig_services::lwm2m::{self, ObjectPath, ServerEvent};
use tokio::time::Instant;

use super::device_management::no_deviations;
use crate::case::{
    Area, CaseContext, CaseDef, CaseFailure, CaseMeta, CaseResult, EtsConfig, StartState,
};
use crate::start::{self, prompt_wait};

const REQUIRES: &[&str] = &["lwm2m"];

/// The lifetime of int-109 (ETS): the periodic Update, which wakes the
/// client, comes MAX_TRANSMIT_WAIT before its end.
const QUEUE_LIFETIME_S: u32 = 240;

/// The queue-mode cases, in id order.
pub(crate) fn cases() -> Vec<CaseDef> {
    vec![
        CaseDef {
            meta: CaseMeta {
                id: "LightweightM2M-1.1-int-108",
                title: "Turn on Queue Mode",
                area: Area::Registration,
                requires: REQUIRES,
                start: StartState::Stopped,
                timeout: Duration::from_secs(60),
                reading: Some(
                    "The DUT is provisioned with C.1 and queue mode (binding UQ as LwM2M 1.0 \
                     wrote it). A LwM2M 1.1 Register must carry the Q parameter and a binding \
                     without Q (b=UQ is the 1.0 form and fails). The server then treats the \
                     client as queue mode: a Read right after the Register (inside the awake \
                     window) is sent at once and must be answered 2.05.",
                ),
                unscaled_timeout: false,
                max_time_scale: None,
            },
            body: |cx| Box::pin(int_108(cx)),
        },
        CaseDef {
            meta: CaseMeta {
                id: "LightweightM2M-1.1-int-109",
                title: "Behavior in Queue Mode",
                area: Area::Registration,
                requires: REQUIRES,
                start: StartState::Stopped,
                timeout: Duration::from_secs(400),
                reading: Some(
                    "Queue mode with lifetime 240 s. MAX_TRANSMIT_WAIT (93 s, scaled) plus 10 s \
                     (scaled, at least 1 s real) after the Register, a probe Read is sent anyway: \
                     a sleeping client must not answer it within 2 s (an answer is a deviation). \
                     A Read asked then is held by the server (nothing sent) until the client's \
                     next Update, which must come before the lifetime ends; the held Read must \
                     go out right after that Update and be answered 2.05 within 10 s (scaled, \
                     at least 5 s real).",
                ),
                unscaled_timeout: false,
                max_time_scale: None,
            },
            body: |cx| Box::pin(int_109(cx)),
        },
    ]
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Starts the DUT in C.1 with queue mode and `lifetime_s`; returns the
/// Register's registration and when it arrived.
async fn start_queue_mode(
    cx: &mut CaseContext,
    lifetime_s: u32,
) -> Result<(lwm2m::Registration, Instant), CaseFailure> {
    let mut cfg = start::dut_config(cx, EtsConfig::C1);
    cfg.binding = "UQ".to_string();
    cfg.lifetime_s = lifetime_s;
    cfg.extra.insert("queue_mode".into(), "true".into());
    let (event, _) = start::start_and_wait_register(cx, &cfg, "C.1 with queue mode").await?;
    match event {
        ServerEvent::Registered {
            registration, at, ..
        } => Ok((registration, at)),
        _ => Err(CaseFailure::infra(
            "wait_for returned an event that is not a Register",
        )),
    }
}

/// The 108 criteria on the Register.
fn check_queue_register(reg: &lwm2m::Registration) -> CaseResult {
    let b = reg.binding.as_deref().unwrap_or("U");
    if b.contains('Q') {
        return Err(CaseFailure::fail(format!(
            "a LwM2M {} client must ask for queue mode with the Q parameter; the Register \
             carried b={b} (the LwM2M 1.0 form){}",
            reg.lwm2m_version.as_deref().unwrap_or("1.1"),
            if reg.queue_mode { "" } else { " and no Q" }
        )));
    }
    if !reg.queue_mode {
        return Err(CaseFailure::fail(format!(
            "the DUT was provisioned for queue mode, but its Register carried no Q parameter \
             (b={b})"
        )));
    }
    Ok(())
}

/// 108: Turn on Queue Mode.
async fn int_108(cx: &mut CaseContext) -> CaseResult {
    let (reg, _) = start_queue_mode(cx, start::C1_LIFETIME_S).await?;
    check_queue_register(&reg)?;
    let server = cx
        .server
        .with_op_timeout(prompt_wait(cx, Duration::from_secs(10)));
    cx.step("Read /3/0/0 inside the awake window");
    let r = server
        .read(&cx.endpoint, &ObjectPath::resource(3, 0, 0), None)
        .await
        .map_err(|e| {
            CaseFailure::fail(format!(
                "Read /3/0/0 right after the queue-mode Register (the client is awake): {e}"
            ))
        })?;
    if r.code != lwm2m::Code::CONTENT {
        return Err(CaseFailure::fail(format!(
            "Read /3/0/0 right after the queue-mode Register: expected 2.05, got {}",
            r.code
        )));
    }
    no_deviations(cx)
}

/// 109: Behavior in Queue Mode.
async fn int_109(cx: &mut CaseContext) -> CaseResult {
    let (reg, registered_at) = start_queue_mode(cx, QUEUE_LIFETIME_S).await?;
    if !reg.queue_mode {
        return Err(CaseFailure::fail(
            "the DUT was provisioned for queue mode, but its Register carried no Q parameter",
        ));
    }
    let ep = cx.endpoint.clone();
    let window = cx.server.queue_awake_window();
    let margin = cx
        .scaled(Duration::from_secs(10))
        .max(Duration::from_secs(1));
    let last = cx.server.last_heard(&ep).unwrap_or(registered_at);
    cx.step(format!(
        "waiting {} (MAX_TRANSMIT_WAIT {} + {}) for the client to sleep",
        secs((last + window + margin).saturating_duration_since(Instant::now())),
        secs(window),
        secs(margin)
    ));
    tokio::time::sleep_until(last + window + margin).await;
    let mut events = cx.server.events();
    if cx
        .server
        .registration(&ep)
        .and_then(|r| r.last_update_at)
        .is_some()
    {
        return Err(CaseFailure::inconclusive(format!(
            "the client sent an Update within {} of its Register, before it could sleep; \
             the lifetime of {QUEUE_LIFETIME_S} s leaves no sleeping period to test",
            secs(window + margin)
        )));
    }
    // A probe: sent although the client should sleep.
    let path = ObjectPath::resource(3, 0, 0);
    cx.step("probe: Read /3/0/0 while the client should sleep");
    match cx
        .server
        .with_op_timeout(Duration::from_secs(2))
        .read_now(&ep, &path, None)
        .await
    {
        Err(OpError::Timeout { .. }) => {}
        Ok(r) => {
            return Err(CaseFailure::fail(format!(
                "the client answered a Read ({}) {} after its last uplink, while it should sleep \
                 in queue mode (MAX_TRANSMIT_WAIT {})",
                r.code,
                secs(Instant::now().duration_since(last)),
                secs(window)
            )));
        }
        Err(e) => {
            return Err(CaseFailure::fail(format!(
                "probe Read while the client sleeps: expected no answer, got {e}"
            )));
        }
    }
    // The held Read.
    let lifetime = cx.scaled(Duration::from_secs(u64::from(QUEUE_LIFETIME_S)));
    let until_expiry = (registered_at + lifetime).saturating_duration_since(Instant::now());
    let answer_wait = prompt_wait(cx, Duration::from_secs(10));
    let server = cx.server.with_op_timeout(until_expiry + answer_wait);
    let held_ep = ep.clone();
    cx.step("Read /3/0/0: the server must hold it until the next Update");
    let read = tokio::spawn(async move {
        let r = server.read(&held_ep, &path, None).await;
        (r, Instant::now())
    });
    let hold_deadline = Instant::now() + Duration::from_secs(1);
    while cx.server.held_requests(&ep) == 0 && Instant::now() < hold_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let held = cx.server.held_requests(&ep);
    let update = lwm2m::wait_for(&mut events, until_expiry, |e| match e {
        ServerEvent::Updated { endpoint, .. }
        | ServerEvent::Registered { endpoint, .. }
        | ServerEvent::Expired { endpoint, .. }
        | ServerEvent::Deregistered { endpoint, .. } => *endpoint == ep,
        _ => false,
    })
    .await;
    let woke_at = match update {
        Some(ServerEvent::Updated { at, .. }) | Some(ServerEvent::Registered { at, .. }) => at,
        Some(other) => {
            read.abort();
            return Err(CaseFailure::fail(format!(
                "expected an Update before the lifetime of {QUEUE_LIFETIME_S} s ended; the \
                 registration ended instead ({other:?})"
            )));
        }
        None => {
            read.abort();
            return Err(CaseFailure::fail(format!(
                "expected an Update within the lifetime of {QUEUE_LIFETIME_S} s ({} scaled); saw none",
                secs(lifetime)
            )));
        }
    };
    if held == 0 {
        read.abort();
        return Err(CaseFailure::infra(
            "the server did not hold the Read for the sleeping queue-mode client",
        ));
    }
    let (result, answered_at) = match tokio::time::timeout(answer_wait, read).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return Err(CaseFailure::infra(format!("the Read task failed: {e}"))),
        Err(_) => {
            return Err(CaseFailure::fail(format!(
                "the held Read went out after the client's Update, but got no answer within {}",
                secs(answer_wait)
            )));
        }
    };
    match result {
        Ok(r) if r.code == lwm2m::Code::CONTENT => {}
        Ok(r) => {
            return Err(CaseFailure::fail(format!(
                "the held Read /3/0/0: expected 2.05, got {}",
                r.code
            )));
        }
        Err(e) => {
            return Err(CaseFailure::fail(format!(
                "the held Read went out after the client's Update, but: {e}"
            )));
        }
    }
    cx.measure(
        "queue.held_read_answer_s",
        "s",
        answered_at.duration_since(woke_at).as_secs_f64(),
    );
    no_deviations(cx)
}
