//! ETS registration cases (100-199): LightweightM2M-1.1-int-101 to -107
//! (queue mode, 108 and 109, is in `queue.rs`).
//!
//! Each body follows the "Srv does" and "pass criteria" columns of the ETS
//! catalogue (`shared/reference/oma-interop-cases.md` §2.2). Every wait is
//! bounded and scaled by the run's time scale; every failure names what was
//! expected and what was seen.

use std::time::Duration;

use rig_services::lwm2m::{self, ContentFormat, Registration, ServerEvent};
use tokio::time::Instant;

use super::device_management::{no_deviations, path};
use crate::case::{
    Area, CaseContext, CaseDef, CaseFailure, CaseMeta, CaseResult, EtsConfig, StartState,
};
use crate::start::{self, prompt_wait};

const REQUIRES: &[&str] = &["lwm2m"];

/// The lifetime (s) that 102 and 104 write to `/1/0/1`.
const SHORT_LIFETIME_S: u32 = 20;

/// The registration cases, in id order.
pub(crate) fn cases() -> Vec<CaseDef> {
    vec![
        CaseDef {
            meta: CaseMeta {
                id: "LightweightM2M-1.1-int-101",
                title: "Initial Registration",
                area: Area::Registration,
                requires: REQUIRES,
                start: StartState::Stopped,
                timeout: Duration::from_secs(60),
                reading: Some(
                    "The Register must carry ep, lwm2m=1.1 (or later 1.x) and the C.1 lifetime; \
                     an absent lt is read as the default 86400 s and accepted, an absent b as the \
                     default U. The object list must hold /1 and /3 links and no /0 (nor /21) link. \
                     Any deviation the strict server recorded for the endpoint fails the case.",
                ),
                unscaled_timeout: false,
                max_time_scale: None,
            },
            body: |cx| Box::pin(int_101(cx)),
        },
        CaseDef {
            meta: CaseMeta {
                id: "LightweightM2M-1.1-int-102",
                title: "Registration Update",
                area: Area::Registration,
                requires: REQUIRES,
                start: StartState::Registered(EtsConfig::C1),
                timeout: Duration::from_secs(90),
                reading: Some(
                    "After the lifetime write, an Update with lt=20 must arrive promptly; then a \
                     further Update (parameterless is expected; any Update of the endpoint counts) \
                     must arrive before 20 s (scaled) have passed since the lt=20 Update.",
                ),
                unscaled_timeout: false,
                max_time_scale: None,
            },
            body: |cx| Box::pin(int_102(cx)),
        },
        CaseDef {
            meta: CaseMeta {
                id: "LightweightM2M-1.1-int-103",
                title: "Deregistration",
                area: Area::Registration,
                requires: REQUIRES,
                start: StartState::Registered(EtsConfig::C3),
                timeout: Duration::from_secs(60),
                reading: None,
                unscaled_timeout: false,
                max_time_scale: None,
            },
            body: |cx| Box::pin(int_103(cx)),
        },
        CaseDef {
            meta: CaseMeta {
                id: "LightweightM2M-1.1-int-104",
                title: "Registration Update Trigger",
                area: Area::Registration,
                requires: REQUIRES,
                start: StartState::Registered(EtsConfig::C1),
                timeout: Duration::from_secs(90),
                reading: Some(
                    "The 20 s lifetime is set with a Write on /1/0/1 (answered by an Update with \
                     lt=20) before the trigger. After Execute /1/0/8, an Update with no parameters \
                     must arrive promptly, and the client must still be registered 20 s (scaled) \
                     after that lt=20 Update, the original lifetime.",
                ),
                unscaled_timeout: false,
                max_time_scale: None,
            },
            body: |cx| Box::pin(int_104(cx)),
        },
        CaseDef {
            meta: CaseMeta {
                id: "LightweightM2M-1.1-int-105",
                title: "Discarded Register Update",
                area: Area::Registration,
                requires: REQUIRES,
                start: StartState::Registered(EtsConfig::C1),
                timeout: Duration::from_secs(90),
                reading: Some(
                    "The server forgets the registration itself (no spoofed De-register is \
                     needed when the rig is the server). To get an Update soon, the lifetime is \
                     first set to 20 s with a Write on /1/0/1. The next Update must arrive within \
                     that lifetime (scaled) and is answered 4.04; then a fresh Register (POST \
                     /rd) must follow within 10 s (scaled, at least 5 s real).",
                ),
                unscaled_timeout: false,
                max_time_scale: None,
            },
            body: |cx| Box::pin(int_105(cx)),
        },
        CaseDef {
            meta: CaseMeta {
                id: "LightweightM2M-1.1-int-106",
                title: "TCP binding",
                area: Area::Registration,
                requires: REQUIRES,
                start: StartState::Stopped,
                timeout: Duration::from_secs(10),
                reading: Some(
                    "CoAP over TCP (RFC 8323, binding T) is not offered by the rig's LwM2M server \
                     nor by the reference agent: the case is Not Applicable until both exist.",
                ),
                unscaled_timeout: false,
                max_time_scale: None,
            },
            body: |cx| Box::pin(int_106(cx)),
        },
        CaseDef {
            meta: CaseMeta {
                id: "LightweightM2M-1.1-int-107",
                title: "Extending the lifetime",
                area: Area::Registration,
                requires: REQUIRES,
                start: StartState::Registered(EtsConfig::C1),
                timeout: Duration::from_secs(300),
                reading: Some(
                    "C.1 registers with lt=86400, so the ETS start (lt=60) is reached with a Write \
                     of /1/0/1 = 60 (answered by an Update with lt=60). Then /1/0/1 = 120: an \
                     Update with lt=120 must follow promptly (10 s scaled, at least 5 s real), and \
                     the next Update must arrive within 120 s (scaled) of it. An early Update is \
                     allowed; the registration must never expire.",
                ),
                unscaled_timeout: false,
                max_time_scale: None,
            },
            body: |cx| Box::pin(int_107(cx)),
        },
    ]
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// 101: Initial Registration.
async fn int_101(cx: &mut CaseContext) -> CaseResult {
    let cfg = start::dut_config(cx, EtsConfig::C1);
    let (event, started) = start::start_and_wait_register(cx, &cfg, "C.1")
        .await
        .map_err(|f| {
            // Here the Register *is* the case: no Register is a failure, not an
            // unreached start state.
            if f.verdict == rig_report::events::Verdict::Inconclusive {
                CaseFailure::fail(f.message.replace("could not reach start state C.1: ", ""))
            } else {
                f
            }
        })?;
    let ServerEvent::Registered {
        registration: reg,
        at,
        ..
    } = &event
    else {
        return Err(CaseFailure::infra(
            "wait_for returned an event that is not a Register",
        ));
    };
    cx.measure(
        "registration.latency_s",
        "s",
        at.duration_since(started).as_secs_f64(),
    );
    check_register(cx, reg, cfg.lifetime_s)?;
    no_deviations(cx)
}

/// The pass criteria of 101 on one registration.
fn check_register(cx: &CaseContext, reg: &Registration, lifetime_s: u32) -> CaseResult {
    let mut problems = Vec::new();
    if reg.endpoint != cx.endpoint {
        problems.push(format!(
            "expected ep=`{}`, saw ep=`{}`",
            cx.endpoint, reg.endpoint
        ));
    }
    match reg.lifetime_s {
        None => {} // default 86400 = the C.1 lifetime
        Some(lt) if lt == lifetime_s => {}
        Some(lt) => problems.push(format!(
            "expected lt={lifetime_s} (configuration C.1), saw lt={lt}"
        )),
    }
    match reg.lwm2m_version.as_deref() {
        None => problems.push("expected lwm2m=1.1, saw no lwm2m parameter".to_string()),
        Some(v) if v == "1.1" || v == "1.2" => {}
        Some(v) => problems.push(format!("expected lwm2m=1.1, saw lwm2m={v}")),
    }
    match reg.binding.as_deref() {
        None | Some("U") => {}
        Some(b) => problems.push(format!("expected b=U (configuration C.1), saw b={b}")),
    }
    let links = &reg.object_links;
    let has_object = |o: u16| links.iter().any(|l| link_object(l) == Some(o));
    for mandatory in [1u16, 3] {
        if !has_object(mandatory) {
            problems.push(format!(
                "expected a link to object /{mandatory} in the object list, saw {}",
                show_links(links)
            ));
        }
    }
    for forbidden in [0u16, 21] {
        if has_object(forbidden) {
            problems.push(format!(
                "expected no /{forbidden} link in the object list, saw {}",
                show_links(links)
            ));
        }
    }
    if reg.location.is_empty() {
        problems.push("the server answered without a Location-Path".to_string());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CaseFailure::fail(format!(
            "Register from `{}`: {}",
            reg.endpoint,
            problems.join("; ")
        )))
    }
}

/// The object id a link target such as `/3/0` names, if any.
fn link_object(target: &str) -> Option<u16> {
    target
        .trim_start_matches('/')
        .split('/')
        .next()?
        .parse()
        .ok()
}

fn show_links(links: &[String]) -> String {
    if links.is_empty() {
        "an empty list".to_string()
    } else {
        links
            .iter()
            .map(|l| format!("<{l}>"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Writes `/1/0/1` = `lifetime` (text) and waits for the Update with that lt.
/// Returns the time the Update arrived.
async fn write_lifetime(cx: &mut CaseContext, lifetime: u32) -> Result<Instant, CaseFailure> {
    let mut events = cx.server.events();
    cx.step(format!("writing /1/0/1 = {lifetime}"));
    let resp = cx
        .server
        .write(
            &cx.endpoint,
            &path("/1/0/1")?,
            ContentFormat::Text,
            lifetime.to_string().into_bytes(),
        )
        .await
        .map_err(|e| {
            CaseFailure::fail(format!(
                "Write /1/0/1 = {lifetime}: expected 2.04 Changed, got {e}"
            ))
        })?;
    if resp.code != lwm2m::Code::CHANGED {
        return Err(CaseFailure::fail(format!(
            "Write /1/0/1 = {lifetime}: expected 2.04 Changed, got {}",
            resp.code
        )));
    }
    let wait = prompt_wait(cx, Duration::from_secs(u64::from(lifetime)));
    let ep = cx.endpoint.clone();
    let update = lwm2m::wait_for(&mut events, wait, |e| {
        matches!(e, ServerEvent::Updated { endpoint, update, .. } if *endpoint == ep && update.lifetime_s == Some(lifetime))
    })
    .await;
    match update {
        Some(ServerEvent::Updated { at, .. }) => Ok(at),
        _ => {
            let last = cx
                .server
                .registration(&cx.endpoint)
                .map(|r| describe_last_update(&r))
                .unwrap_or_else(|| "the endpoint is no longer registered".to_string());
            Err(CaseFailure::fail(format!(
                "expected an Update with lt={lifetime} within {} of the Write; saw none ({last})",
                secs(wait)
            )))
        }
    }
}

fn describe_last_update(reg: &Registration) -> String {
    match (reg.last_update_at, &reg.last_update) {
        (Some(at), Some(params)) => {
            format!("last Update {} ago with {}", secs(at.elapsed()), params)
        }
        _ => format!(
            "no Update since the Register {} ago",
            secs(reg.registered_at.elapsed())
        ),
    }
}

/// 102: Registration Update.
async fn int_102(cx: &mut CaseContext) -> CaseResult {
    let mut events = cx.server.events();
    let first = write_lifetime(cx, SHORT_LIFETIME_S).await?;
    let window = cx.scaled(Duration::from_secs(u64::from(SHORT_LIFETIME_S)));
    cx.step(format!(
        "waiting for the next Update within {}",
        secs(window)
    ));
    let ep = cx.endpoint.clone();
    let deadline = first + window;
    let remaining = deadline.saturating_duration_since(Instant::now());
    let next = lwm2m::wait_for(&mut events, remaining, |e| match e {
        ServerEvent::Updated { endpoint, at, .. } => *endpoint == ep && *at > first,
        ServerEvent::Deregistered { endpoint, .. } | ServerEvent::Expired { endpoint, .. } => {
            *endpoint == ep
        }
        _ => false,
    })
    .await;
    match next {
        Some(ServerEvent::Updated { at, .. }) => {
            let interval = at.duration_since(first);
            // Report in protocol seconds (time scale 1), so runs compare.
            cx.measure(
                "registration.update_interval_s",
                "s",
                interval.as_secs_f64() * cx.time_scale.max(1.0),
            );
            no_deviations(cx)
        }
        Some(ServerEvent::Expired { .. }) => Err(CaseFailure::fail(format!(
            "expected an Update within the lifetime of {SHORT_LIFETIME_S} s; the registration expired after {} without one",
            secs(Instant::now().duration_since(first))
        ))),
        Some(other) => Err(CaseFailure::fail(format!(
            "expected an Update within {}; the client de-registered instead ({other:?})",
            secs(window)
        ))),
        None => Err(CaseFailure::fail(format!(
            "expected an Update within {} of the lt={SHORT_LIFETIME_S} Update; saw none",
            secs(window)
        ))),
    }
}

/// 103: Deregistration.
async fn int_103(cx: &mut CaseContext) -> CaseResult {
    let mut events = cx.server.events();
    cx.step("executing /1/0/4 (Disable)");
    let resp = cx
        .server
        .execute(&cx.endpoint, &path("/1/0/4")?, None)
        .await
        .map_err(|e| {
            CaseFailure::fail(format!("Execute /1/0/4: expected 2.04 Changed, got {e}"))
        })?;
    if resp.code != lwm2m::Code::CHANGED {
        return Err(CaseFailure::fail(format!(
            "Execute /1/0/4: expected 2.04 Changed, got {}",
            resp.code
        )));
    }
    let wait = prompt_wait(cx, Duration::from_secs(10));
    let ep = cx.endpoint.clone();
    let gone = lwm2m::wait_for(
        &mut events,
        wait,
        |e| matches!(e, ServerEvent::Deregistered { endpoint, .. } if *endpoint == ep),
    )
    .await;
    if gone.is_none() {
        return Err(CaseFailure::fail(format!(
            "expected a De-register (DELETE /rd/...) within {} of the Disable; saw none",
            secs(wait)
        )));
    }
    if let Some(reg) = cx.server.registration(&cx.endpoint) {
        return Err(CaseFailure::fail(format!(
            "after the De-register, endpoint `{}` is still in the registry (location {})",
            cx.endpoint, reg.location
        )));
    }
    no_deviations(cx)
}

/// 104: Registration Update Trigger.
async fn int_104(cx: &mut CaseContext) -> CaseResult {
    let lt_update = write_lifetime(cx, SHORT_LIFETIME_S).await?;
    let mut events = cx.server.events();
    cx.step("executing /1/0/8 (Registration Update Trigger)");
    let resp = cx
        .server
        .execute(&cx.endpoint, &path("/1/0/8")?, None)
        .await
        .map_err(|e| {
            CaseFailure::fail(format!("Execute /1/0/8: expected 2.04 Changed, got {e}"))
        })?;
    if resp.code != lwm2m::Code::CHANGED {
        return Err(CaseFailure::fail(format!(
            "Execute /1/0/8: expected 2.04 Changed, got {}",
            resp.code
        )));
    }
    let wait = prompt_wait(cx, Duration::from_secs(10));
    let ep = cx.endpoint.clone();
    let triggered = lwm2m::wait_for(
        &mut events,
        wait,
        |e| matches!(e, ServerEvent::Updated { endpoint, .. } if *endpoint == ep),
    )
    .await;
    match triggered {
        Some(ServerEvent::Updated { update, .. }) if update.is_empty() => {}
        Some(ServerEvent::Updated { update, .. }) => {
            return Err(CaseFailure::fail(format!(
                "expected an Update with no parameters after Execute /1/0/8; saw an Update with {update}"
            )));
        }
        _ => {
            return Err(CaseFailure::fail(format!(
                "expected an Update within {} of Execute /1/0/8; saw none",
                secs(wait)
            )));
        }
    }
    // Still registered after the original lifetime (counted from the lt=20 Update).
    let original = cx.scaled(Duration::from_secs(u64::from(SHORT_LIFETIME_S)));
    let check_at = lt_update + original + cx.scaled(Duration::from_secs(1));
    cx.step(format!(
        "checking the registration is alive after the original lifetime ({})",
        secs(original)
    ));
    tokio::time::sleep_until(check_at).await;
    if cx.server.registration(&cx.endpoint).is_none() {
        return Err(CaseFailure::fail(format!(
            "expected endpoint `{}` still registered {} after the lt={SHORT_LIFETIME_S} Update; it is gone",
            cx.endpoint,
            secs(original)
        )));
    }
    no_deviations(cx)
}

/// 105: Discarded Register Update.
async fn int_105(cx: &mut CaseContext) -> CaseResult {
    let first = write_lifetime(cx, SHORT_LIFETIME_S).await?;
    let mut events = cx.server.events();
    let ep = cx.endpoint.clone();
    let Some(forgotten) = cx.server.forget_registration(&ep) else {
        return Err(CaseFailure::infra(format!(
            "endpoint `{ep}` was not registered when the server was to forget it"
        )));
    };
    let loc = forgotten.location.clone();
    let loc_id = loc.rsplit('/').next().unwrap_or_default().to_string();
    cx.step(format!(
        "the server forgot the registration at {loc}; waiting for the next Update"
    ));
    let lifetime = cx.scaled(Duration::from_secs(u64::from(SHORT_LIFETIME_S)));
    let wait = (first + lifetime + prompt_wait(cx, Duration::from_secs(10)))
        .saturating_duration_since(Instant::now());
    let registered = lwm2m::wait_for(
        &mut events,
        wait,
        |e| matches!(e, ServerEvent::Registered { endpoint, .. } if *endpoint == ep),
    )
    .await;
    let refused: Vec<_> = cx
        .server
        .unknown_location_requests()
        .into_iter()
        .filter(|(m, l, at)| *m == "POST" && *l == loc_id && *at > first)
        .collect();
    let Some((_, _, refused_at)) = refused.first().cloned() else {
        return Err(CaseFailure::fail(format!(
            "expected an Update to the forgotten location {loc} within the lifetime of \
             {SHORT_LIFETIME_S} s ({} scaled); saw none{}",
            secs(lifetime),
            if registered.is_some() {
                " (the client registered again without one)"
            } else {
                ""
            }
        )));
    };
    cx.measure(
        "registration.update_after_forget_s",
        "s",
        refused_at.duration_since(first).as_secs_f64() * cx.time_scale.max(1.0),
    );
    match registered {
        Some(ServerEvent::Registered {
            registration, at, ..
        }) => {
            if at < refused_at {
                return Err(CaseFailure::fail(
                    "the client registered again before its Update was answered 4.04",
                ));
            }
            if registration.location == loc {
                return Err(CaseFailure::infra(format!(
                    "the server gave the new registration the forgotten location {loc}"
                )));
            }
            cx.measure(
                "registration.reregister_after_404_s",
                "s",
                at.duration_since(refused_at).as_secs_f64(),
            );
            no_deviations(cx)
        }
        _ => Err(CaseFailure::fail(format!(
            "the Update to {loc} was answered 4.04 Not Found; expected a fresh Register \
             (POST /rd) within {} after it, saw none",
            secs(prompt_wait(cx, Duration::from_secs(10)))
        ))),
    }
}

/// 106: TCP binding.
async fn int_106(_cx: &mut CaseContext) -> CaseResult {
    Err(CaseFailure::not_applicable(
        "CoAP over TCP (RFC 8323, binding T): neither the rig's LwM2M server nor the \
         reference agent has a TCP transport yet",
    ))
}

/// 107: Extending the lifetime.
async fn int_107(cx: &mut CaseContext) -> CaseResult {
    const START_S: u32 = 60;
    const EXTENDED_S: u32 = 120;
    write_lifetime(cx, START_S).await?;
    let mut events = cx.server.events();
    let extended = write_lifetime(cx, EXTENDED_S).await?;
    let window = cx.scaled(Duration::from_secs(u64::from(EXTENDED_S)));
    cx.step(format!(
        "waiting for the next Update within {} of the lt={EXTENDED_S} Update",
        secs(window)
    ));
    let ep = cx.endpoint.clone();
    let remaining = (extended + window).saturating_duration_since(Instant::now());
    let next = lwm2m::wait_for(&mut events, remaining, |e| match e {
        ServerEvent::Updated { endpoint, at, .. } => *endpoint == ep && *at > extended,
        ServerEvent::Registered { endpoint, .. }
        | ServerEvent::Deregistered { endpoint, .. }
        | ServerEvent::Expired { endpoint, .. } => *endpoint == ep,
        _ => false,
    })
    .await;
    match next {
        Some(ServerEvent::Updated { at, update, .. }) => {
            if update.lifetime_s.is_some_and(|lt| lt != EXTENDED_S) {
                return Err(CaseFailure::fail(format!(
                    "after the lifetime extension to {EXTENDED_S} s the next Update carried {update}"
                )));
            }
            cx.measure(
                "registration.update_interval_s",
                "s",
                at.duration_since(extended).as_secs_f64() * cx.time_scale.max(1.0),
            );
            no_deviations(cx)
        }
        Some(ServerEvent::Registered { .. }) => Err(CaseFailure::fail(format!(
            "after the lt={EXTENDED_S} Update the client registered again instead of updating"
        ))),
        Some(other) => Err(CaseFailure::fail(format!(
            "expected an Update within {} of the lt={EXTENDED_S} Update; the registration ended \
             instead ({other:?})",
            secs(window)
        ))),
        None => Err(CaseFailure::fail(format!(
            "expected an Update within {} (the extended lifetime of {EXTENDED_S} s, scaled) of \
             the lt={EXTENDED_S} Update; saw none",
            secs(window)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_object_reads_the_object_id() {
        assert_eq!(link_object("/3/0"), Some(3));
        assert_eq!(link_object("/1"), Some(1));
        assert_eq!(link_object("/"), None);
        assert_eq!(link_object("/33333/0"), Some(33333));
    }
}
