//! ETS information reporting cases (300-399): Observe with notification
//! attributes, its cancellation by RST and by Observe=1, and Send (with
//! Mute Send).
//!
//! Timing: a notification interval (from the Observe answer to the first
//! notification, and between notifications) must lie within
//! `[pmin - tol, pmax + tol]`, with `tol` = 1 s at time scale 1 (scaled)
//! plus 0.25 s of real time for scheduling on a loaded machine. The
//! tolerance is stated in each case's reading and in its failure message.

use std::time::Duration;

use rig_bench::dut::DutAction;
use rig_services::lwm2m::{
    self, Code, ContentFormat, ObjectPath, ObservationId, Record, Response, SendReport,
    ServerEvent, Value,
};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::case::{
    Area, CaseContext, CaseDef, CaseFailure, CaseMeta, CaseResult, EtsConfig, StartState,
};
use crate::cases::device_management::{
    check_values, expect, id_of, no_deviations, path, read, write_attributes, write_value,
};
use crate::start::prompt_wait;

const REQUIRES: &[&str] = &["lwm2m"];

/// Real slack added to every timing bound (scheduling, not protocol).
const REAL_SLACK: Duration = Duration::from_millis(250);

/// Protocol tolerance on a notification time, before scaling.
const PROTOCOL_TOLERANCE: Duration = Duration::from_secs(1);

fn case(
    n: u16,
    title: &'static str,
    timeout_s: u64,
    reading: &'static str,
    body: for<'a> fn(&'a mut CaseContext) -> crate::case::CaseFuture<'a>,
) -> CaseDef {
    CaseDef {
        meta: CaseMeta {
            id: id_of(n),
            title,
            area: Area::InformationReporting,
            requires: REQUIRES,
            start: StartState::Registered(EtsConfig::C3),
            timeout: Duration::from_secs(timeout_s),
            reading: Some(reading),
            unscaled_timeout: false,
            max_time_scale: None,
        },
        body,
    }
}

/// The information reporting cases, in id order.
pub(crate) fn cases() -> Vec<CaseDef> {
    vec![
        case(
            301,
            "Observation and Notification",
            150,
            "Write-Attributes /3/0/7?pmin=5&pmax=15 and /3/0/8?pmin=10&pmax=20, then \
             Observe both for 45 s. The values do not change, so each resource must notify \
             at least twice, and every interval (from the Observe answer, then between \
             notifications) must lie within [pmin - 1 s, pmax + 1 s] (scaled) plus 0.25 s \
             of real slack.",
            |cx| Box::pin(int_301(cx)),
        ),
        case(
            302,
            "Cancel Observation by Reset",
            90,
            "pmin=1&pmax=2 on /3/0/7 and /3/0/8 so the streams are quick. After the first \
             notification of /3/0/7 the server forgets the observation: the next notification \
             is answered with RST, and none may follow within 3 pmax (scaled, + 1 s \
             tolerance); /3/0/8 must keep notifying meanwhile. Then the same for /3/0/8.",
            |cx| Box::pin(int_302(cx)),
        ),
        case(
            303,
            "Cancel Observation with Observe=1",
            90,
            "Cancelled per resource (Z and A; OI #236 says the ETS's /3/0 is the wrong \
             level). pmin=1&pmax=2 on /3/0/7 and /3/0/8. The cancel (GET with Observe=1 and \
             the same token) must get 2.05; afterwards at most one notification that crossed \
             the cancel may arrive, and none after 3 pmax; /3/0/8 keeps notifying until it \
             is cancelled in turn.",
            |cx| Box::pin(int_303(cx)),
        ),
        case(
            304,
            "Observe-Composite",
            120,
            "Write-Attributes /1/0/1?pmin=30&pmax=45, then Observe-Composite (FETCH with \
             Observe=0, SenML CBOR) of /1/0/1, /3/0/11/0, /3/0/16. The values do not change: \
             the first notification must come within [30 s - 1 s, 45 s + 1 s] (scaled, plus \
             0.25 s real) and carry values of all three paths. The client applies the \
             attributes of the listed paths (here /1/0/1's).",
            |cx| Box::pin(int_304(cx)),
        ),
        case(
            305,
            "Cancel Observe-Composite",
            60,
            "pmin=1&pmax=2 on /1/0/1; Observe-Composite of /1/0/1, /3/0/11/0, /3/0/16; after \
             the first notification, FETCH with Observe=1 and the same token and path list \
             must get 2.05, and at most one notification that crossed it may follow within \
             3 pmax (scaled, + 1 s tolerance).",
            |cx| Box::pin(int_305(cx)),
        ),
        case(
            306,
            "Send",
            60,
            "The DUT is made to Send /1 and /3 (device-profile action `send`; Not \
             Applicable without it). The report must come promptly, in SenML JSON or CBOR \
             (the server answers 2.04), hold values under /1 and /3, and only objects the \
             client registered.",
            |cx| Box::pin(int_306(cx)),
        ),
        case(
            307,
            "Muting Send",
            60,
            "With /1/0/23 (Mute Send) = true, a triggered Send must not reach the server \
             within 5 s (the DUT may refuse the action or store the data); with it false \
             again, a triggered Send must arrive promptly.",
            |cx| Box::pin(int_307(cx)),
        ),
        case(
            311,
            "Send command",
            60,
            "The DUT is made to Send /1/0/1 and /3/0/11/0: the server must get exactly these \
             two values (86400 and 0 in C.3) and answer 2.04.",
            |cx| Box::pin(int_311(cx)),
        ),
    ]
}

const COMPOSITE: [&str; 3] = ["/1/0/1", "/3/0/11/0", "/3/0/16"];

/// Observe-Composite of `paths` in SenML CBOR; 2.05 with an established
/// observation expected. Returns it, when the 2.05 came, and the 2.05.
pub(crate) async fn observe_composite(
    cx: &CaseContext,
    paths: &[&str],
) -> Result<(ObservationId, Instant, Response), CaseFailure> {
    let list: Vec<ObjectPath> = paths.iter().map(|p| path(p)).collect::<Result<_, _>>()?;
    let what = format!("Observe-Composite {}", paths.join(", "));
    cx.step(what.clone());
    let r = expect(
        &what,
        cx.server
            .observe_composite(
                &cx.endpoint,
                &list,
                ContentFormat::SenmlCbor,
                Some(ContentFormat::SenmlCbor),
            )
            .await,
        Code::CONTENT,
    )?;
    let at = Instant::now();
    match r.observation {
        Some(o) => Ok((o, at, r)),
        None => Err(CaseFailure::fail(format!(
            "{what}: the 2.05 carried no Observe option, so no observation was established"
        ))),
    }
}

/// 304: Observe-Composite.
async fn int_304(cx: &mut CaseContext) -> CaseResult {
    write_attributes(cx, "/1/0/1", "pmin=30&pmax=45").await?;
    let mut events = cx.server.events();
    let (o, t0, _) = observe_composite(cx, &COMPOSITE).await?;
    let (recs, d) = first_in_window(cx, &mut events, o, t0).await?;
    for p in COMPOSITE {
        let want = path(p)?;
        if !recs.iter().any(|r| want.is_prefix_of(&r.path)) {
            return Err(CaseFailure::fail(format!(
                "Observe-Composite: the notification carries no value of {p} (saw {})",
                recs.iter()
                    .map(|r| r.path.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    cx.measure(
        "observe.composite_first_s",
        "s",
        d.as_secs_f64() * cx.time_scale.max(1.0),
    );
    no_deviations(cx)
}

/// 305: Cancel Observe-Composite.
async fn int_305(cx: &mut CaseContext) -> CaseResult {
    write_attributes(cx, "/1/0/1", "pmin=1&pmax=2").await?;
    let mut events = cx.server.events();
    let (o, _, _) = observe_composite(cx, &COMPOSITE).await?;
    first_notification(cx, &mut events, o, "Observe-Composite").await?;
    let rejected_before = cx.server.rejected_notifications(&cx.endpoint).len();
    cx.step("cancelling the Observe-Composite with Observe=1");
    expect(
        "Cancel Observe-Composite (FETCH with Observe=1)",
        cx.server
            .cancel_observe(&cx.endpoint, o, &ObjectPath::Root)
            .await,
        Code::CONTENT,
    )?;
    let window = cx.scaled(Duration::from_secs(6)) + tolerance(cx);
    let seen = collect(cx, &mut events, Instant::now() + window).await;
    let rejected = cx.server.rejected_notifications(&cx.endpoint).len() - rejected_before;
    let after = seen.iter().filter(|n| n.0 == o).count();
    if after > 0 || rejected > 1 {
        return Err(CaseFailure::fail(format!(
            "Observe-Composite: the client kept notifying after the cancel ({} notification(s) within {})",
            after + rejected,
            secs(window)
        )));
    }
    no_deviations(cx)
}

/// Makes the DUT Send `paths` through its device profile's `send` action,
/// which takes one argument: the paths separated by spaces (`send = "send
/// {0}"` in `hardware/profiles/rig-agent.toml`). `Ok(Err(reason))` when the
/// DUT refused (printed the action's failure).
async fn trigger_send(
    cx: &mut CaseContext,
    paths: &[&str],
) -> Result<Result<(), String>, CaseFailure> {
    let action = DutAction::Custom("send".into(), vec![paths.join(" ")]);
    if !cx.dut.supports(&action) {
        return Err(CaseFailure::not_applicable(
            "the DUT's device profile has no `send` action, so the case cannot make it Send",
        ));
    }
    cx.step(format!("making the DUT Send {}", paths.join(" ")));
    Ok(cx.dut.act(&action).await.map_err(|e| e.to_string()))
}

/// Waits until the endpoint made more than `before` Send reports.
async fn wait_send(cx: &CaseContext, before: usize, wait: Duration) -> Option<SendReport> {
    let deadline = Instant::now() + wait;
    loop {
        let sends = cx.server.sends(&cx.endpoint);
        if sends.len() > before {
            return sends.into_iter().nth(before);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Triggers a Send and waits for its report.
async fn send_and_wait(cx: &mut CaseContext, paths: &[&str]) -> Result<SendReport, CaseFailure> {
    let before = cx.server.sends(&cx.endpoint).len();
    if let Err(why) = trigger_send(cx, paths).await? {
        return Err(CaseFailure::fail(format!(
            "the DUT refused to Send {}: {why}",
            paths.join(" ")
        )));
    }
    let wait = prompt_wait(cx, Duration::from_secs(5));
    wait_send(cx, before, wait).await.ok_or_else(|| {
        CaseFailure::fail(format!(
            "expected a Send (POST /dp) of {} within {}; saw none",
            paths.join(" "),
            secs(wait)
        ))
    })
}

fn send_records<'a>(what: &str, r: &'a SendReport) -> Result<&'a [Record], CaseFailure> {
    if r.code != Code::CHANGED {
        return Err(CaseFailure::fail(format!(
            "{what}: the server refused the report with {} (Content-Format {})",
            r.code,
            r.content_format
                .map(|c| c.as_u16().to_string())
                .unwrap_or_else(|| "none".into())
        )));
    }
    r.records
        .as_deref()
        .ok_or_else(|| CaseFailure::fail(format!("{what}: the payload does not decode")))
}

/// 306: Send.
async fn int_306(cx: &mut CaseContext) -> CaseResult {
    let r = send_and_wait(cx, &["/1", "/3"]).await?;
    no_deviations(cx)?;
    let recs = send_records("Send of /1 and /3", &r)?;
    for o in [1u16, 3] {
        if !recs
            .iter()
            .any(|r| r.path.object_id().map(|x| x.0) == Some(o))
        {
            return Err(CaseFailure::fail(format!(
                "Send of /1 and /3: expected values of /{o}, saw none"
            )));
        }
    }
    Ok(())
}

/// 307: Muting Send.
async fn int_307(cx: &mut CaseContext) -> CaseResult {
    write_value(cx, "/1/0/23", ContentFormat::Text, Value::Boolean(true)).await?;
    let before = cx.server.sends(&cx.endpoint).len();
    let refused = trigger_send(cx, &["/3/0/0"]).await?;
    let quiet = prompt_wait(cx, Duration::from_secs(5));
    if let Some(r) = wait_send(cx, before, quiet).await {
        return Err(CaseFailure::fail(format!(
            "with /1/0/23 (Mute Send) = true, expected no Send; the server got one ({} bytes){}",
            r.payload.len(),
            if refused.is_ok() {
                ""
            } else {
                " although the DUT refused the action"
            }
        )));
    }
    write_value(cx, "/1/0/23", ContentFormat::Text, Value::Boolean(false)).await?;
    let r = send_and_wait(cx, &["/3/0/0"]).await?;
    send_records("Send after unmuting", &r)?;
    no_deviations(cx)
}

/// 311: Send command.
async fn int_311(cx: &mut CaseContext) -> CaseResult {
    let r = send_and_wait(cx, &["/1/0/1", "/3/0/11/0"]).await?;
    let what = "Send of /1/0/1 and /3/0/11/0";
    let recs = send_records(what, &r)?;
    let paths: Vec<String> = recs.iter().map(|r| r.path.to_string()).collect();
    if paths != ["/1/0/1", "/3/0/11/0"] {
        return Err(CaseFailure::fail(format!(
            "{what}: expected exactly /1/0/1 and /3/0/11/0, saw {}",
            paths.join(", ")
        )));
    }
    check_values(
        what,
        recs,
        &[
            (path("/1/0/1")?, Value::Integer(86_400)),
            (path("/3/0/11/0")?, Value::Integer(0)),
        ],
    )?;
    no_deviations(cx)
}

/// The first notification of `o`, which must come within [30, 45] s
/// (scaled, with tolerance) of `t0`: its records and when it came after `t0`.
pub(crate) async fn first_in_window(
    cx: &CaseContext,
    events: &mut tokio::sync::broadcast::Receiver<ServerEvent>,
    o: ObservationId,
    t0: Instant,
) -> Result<(Vec<Record>, Duration), CaseFailure> {
    let tol = tolerance(cx);
    let lo = cx.scaled(Duration::from_secs(30)).saturating_sub(tol);
    let hi = cx.scaled(Duration::from_secs(45)) + tol;
    let left = (t0 + hi).saturating_duration_since(Instant::now());
    let got = lwm2m::wait_for(
        events,
        left,
        |e| matches!(e, ServerEvent::Notification { observation, .. } if *observation == o),
    )
    .await;
    let Some(ServerEvent::Notification { response, at, .. }) = got else {
        return Err(CaseFailure::fail(format!(
            "Observe-Composite: expected the first notification within pmax (45 s scaled = {}, tolerance {}); saw none",
            secs(cx.scaled(Duration::from_secs(45))),
            secs(tol)
        )));
    };
    let d = at.duration_since(t0);
    if d < lo {
        return Err(CaseFailure::fail(format!(
            "Observe-Composite: the first notification came {} after the Observe, before pmin (30 s scaled = {}, tolerance {})",
            secs(d),
            secs(cx.scaled(Duration::from_secs(30))),
            secs(tol)
        )));
    }
    Ok((response.decoded.unwrap_or_default(), d))
}

pub(crate) fn tolerance(cx: &CaseContext) -> Duration {
    cx.scaled(PROTOCOL_TOLERANCE) + REAL_SLACK
}

pub(crate) fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Observes `p`; 2.05 with an established observation expected.
pub(crate) async fn observe(
    cx: &CaseContext,
    p: &str,
) -> Result<(ObservationId, Instant), CaseFailure> {
    cx.step(format!("observing {p}"));
    let r = expect(
        &format!("Observe {p}"),
        cx.server.observe(&cx.endpoint, &path(p)?, None).await,
        Code::CONTENT,
    )?;
    let at = Instant::now();
    r.observation.map(|o| (o, at)).ok_or_else(|| {
        CaseFailure::fail(format!(
            "Observe {p}: the 2.05 carried no Observe option, so no observation was established"
        ))
    })
}

/// Notifications of the endpoint seen until `deadline`, as (observation, time, code).
pub(crate) async fn collect(
    cx: &CaseContext,
    events: &mut broadcast::Receiver<ServerEvent>,
    deadline: Instant,
) -> Vec<(ObservationId, Instant, Code, ObjectPath, bool)> {
    let mut out = Vec::new();
    let ep = cx.endpoint.clone();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return out;
        }
        match lwm2m::wait_for(
            events,
            left,
            |e| matches!(e, ServerEvent::Notification { endpoint, .. } if *endpoint == ep),
        )
        .await
        {
            Some(ServerEvent::Notification {
                observation,
                response,
                at,
                path,
                ..
            }) => {
                let has_value = response
                    .decoded
                    .as_ref()
                    .is_some_and(|d| d.iter().any(|r| path.is_prefix_of(&r.path)));
                out.push((observation, at, response.code, path, has_value));
            }
            _ => return out,
        }
    }
}

/// Checks the notification times of one observation against pmin/pmax.
pub(crate) fn check_intervals(
    cx: &CaseContext,
    p: &str,
    start: Instant,
    end: Instant,
    times: &[Instant],
    (pmin_s, pmax_s): (u64, u64),
    min_count: usize,
) -> CaseResult {
    let tol = tolerance(cx);
    let lo = cx.scaled(Duration::from_secs(pmin_s)).saturating_sub(tol);
    let hi = cx.scaled(Duration::from_secs(pmax_s)) + tol;
    let mut prev = start;
    for (i, t) in times.iter().enumerate() {
        let d = t.duration_since(prev);
        if d < lo {
            return Err(CaseFailure::fail(format!(
                "{p}: notification {} came {} after the previous one, before pmin ({pmin_s} s scaled = {}, tolerance {})",
                i + 1,
                secs(d),
                secs(cx.scaled(Duration::from_secs(pmin_s))),
                secs(tol)
            )));
        }
        if d > hi {
            return Err(CaseFailure::fail(format!(
                "{p}: notification {} came {} after the previous one, after pmax ({pmax_s} s scaled = {}, tolerance {})",
                i + 1,
                secs(d),
                secs(cx.scaled(Duration::from_secs(pmax_s))),
                secs(tol)
            )));
        }
        prev = *t;
    }
    let quiet = end.saturating_duration_since(prev);
    if quiet > hi {
        return Err(CaseFailure::fail(format!(
            "{p}: no notification for {} after the previous one (or the Observe), after pmax ({pmax_s} s scaled = {}, tolerance {})",
            secs(quiet),
            secs(cx.scaled(Duration::from_secs(pmax_s))),
            secs(tol)
        )));
    }
    if times.len() < min_count {
        return Err(CaseFailure::fail(format!(
            "{p} (pmin {pmin_s} s, pmax {pmax_s} s): expected at least {min_count} notifications, saw {}",
            times.len()
        )));
    }
    Ok(())
}

/// 301: Observation and Notification.
async fn int_301(cx: &mut CaseContext) -> CaseResult {
    read(cx, "/3/0/6", None).await?;
    write_attributes(cx, "/3/0/7", "pmin=5&pmax=15").await?;
    write_attributes(cx, "/3/0/8", "pmin=10&pmax=20").await?;
    let mut events = cx.server.events();
    let (o7, t7) = observe(cx, "/3/0/7").await?;
    let (o8, t8) = observe(cx, "/3/0/8").await?;
    let window = cx.scaled(Duration::from_secs(45)) + tolerance(cx);
    cx.step(format!("collecting notifications for {}", secs(window)));
    let end = t7 + window;
    let seen = collect(cx, &mut events, end).await;
    for (o, p) in [(o7, "/3/0/7"), (o8, "/3/0/8")] {
        if let Some((_, _, code, ..)) = seen.iter().find(|n| n.0 == o && n.2 != Code::CONTENT) {
            return Err(CaseFailure::fail(format!(
                "{p}: expected notifications with 2.05, saw {code}"
            )));
        }
        if seen.iter().any(|n| n.0 == o && !n.4) {
            return Err(CaseFailure::fail(format!(
                "{p}: a notification did not carry a decodable value of {p}"
            )));
        }
    }
    let times = |o: ObservationId| -> Vec<Instant> {
        seen.iter().filter(|n| n.0 == o).map(|n| n.1).collect()
    };
    check_intervals(cx, "/3/0/7", t7, end, &times(o7), (5, 15), 2)?;
    check_intervals(cx, "/3/0/8", t8, end, &times(o8), (10, 20), 2)?;
    cx.measure("observe.notifications", "count", seen.len() as f64);
    no_deviations(cx)
}

/// Waits for the first notification of `o`.
async fn first_notification(
    cx: &CaseContext,
    events: &mut broadcast::Receiver<ServerEvent>,
    o: ObservationId,
    p: &str,
) -> CaseResult {
    let wait = cx.scaled(Duration::from_secs(2)) + tolerance(cx) * 2;
    let got = lwm2m::wait_for(
        events,
        wait,
        |e| matches!(e, ServerEvent::Notification { observation, .. } if *observation == o),
    )
    .await;
    got.map(|_| ()).ok_or_else(|| {
        CaseFailure::fail(format!(
            "{p} (pmax 2 s): expected a notification within {}; saw none",
            secs(wait)
        ))
    })
}

/// 302: Cancel Observation by Reset.
async fn int_302(cx: &mut CaseContext) -> CaseResult {
    for p in ["/3/0/7", "/3/0/8"] {
        write_attributes(cx, p, "pmin=1&pmax=2").await?;
    }
    let mut events = cx.server.events();
    let (o7, _) = observe(cx, "/3/0/7").await?;
    let (o8, _) = observe(cx, "/3/0/8").await?;
    let mut rejected_before = cx.server.rejected_notifications(&cx.endpoint).len();
    for (o, p, other) in [(o7, "/3/0/7", Some((o8, "/3/0/8"))), (o8, "/3/0/8", None)] {
        first_notification(cx, &mut events, o, p).await?;
        cx.step(format!(
            "forgetting the observation of {p}: its next notification gets RST"
        ));
        let known = cx
            .server
            .forget_observation(&cx.endpoint, o)
            .await
            .map_err(|e| {
                CaseFailure::infra(format!("cannot forget the observation of {p}: {e}"))
            })?;
        if !known {
            return Err(CaseFailure::infra(format!(
                "the server no longer held the observation of {p}"
            )));
        }
        let window = cx.scaled(Duration::from_secs(6)) + tolerance(cx);
        let seen = collect(cx, &mut events, Instant::now() + window).await;
        let rejected = cx.server.rejected_notifications(&cx.endpoint).len() - rejected_before;
        rejected_before += rejected;
        if rejected == 0 {
            return Err(CaseFailure::fail(format!(
                "{p}: expected the next notification (to be answered with RST) within {}; saw none",
                secs(window)
            )));
        }
        if rejected > 1 {
            return Err(CaseFailure::fail(format!(
                "{p}: the client sent {} more notifications after the RST within {} (the observation was not removed)",
                rejected - 1,
                secs(window)
            )));
        }
        if let Some((other, q)) = other
            && !seen.iter().any(|n| n.0 == other)
        {
            return Err(CaseFailure::fail(format!(
                "{q}: expected its notifications to go on while {p} was cancelled; saw none in {}",
                secs(window)
            )));
        }
    }
    no_deviations(cx)
}

/// 303: Cancel Observation with Observe=1.
async fn int_303(cx: &mut CaseContext) -> CaseResult {
    for p in ["/3/0/7", "/3/0/8"] {
        write_attributes(cx, p, "pmin=1&pmax=2").await?;
    }
    let mut events = cx.server.events();
    let (o7, _) = observe(cx, "/3/0/7").await?;
    let (o8, _) = observe(cx, "/3/0/8").await?;
    let mut rejected_before = cx.server.rejected_notifications(&cx.endpoint).len();
    for (o, p, other) in [(o7, "/3/0/7", Some((o8, "/3/0/8"))), (o8, "/3/0/8", None)] {
        first_notification(cx, &mut events, o, p).await?;
        cx.step(format!("cancelling the observation of {p} with Observe=1"));
        expect(
            &format!("Cancel Observation {p} (GET with Observe=1)"),
            cx.server.cancel_observe(&cx.endpoint, o, &path(p)?).await,
            Code::CONTENT,
        )?;
        let window = cx.scaled(Duration::from_secs(6)) + tolerance(cx);
        let seen = collect(cx, &mut events, Instant::now() + window).await;
        let rejected = cx.server.rejected_notifications(&cx.endpoint).len() - rejected_before;
        rejected_before += rejected;
        if seen.iter().any(|n| n.0 == o) || rejected > 1 {
            return Err(CaseFailure::fail(format!(
                "{p}: the client kept notifying after the cancel ({} notification(s) within {})",
                rejected + seen.iter().filter(|n| n.0 == o).count(),
                secs(window)
            )));
        }
        if let Some((other, q)) = other
            && !seen.iter().any(|n| n.0 == other)
        {
            return Err(CaseFailure::fail(format!(
                "{q}: expected its notifications to go on while {p} was cancelled; saw none in {}",
                secs(window)
            )));
        }
    }
    no_deviations(cx)
}
