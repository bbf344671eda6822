//! ETS core-object cases (500-999: Device, Connectivity Monitoring,
//! Location, Connectivity Statistics, multi-server) and the Portfolio
//! (Object 16) cases: 1630/1635, the device management cases that write
//! it (228, 230, 233, 234) and the Observe-Composite cases that watch its
//! instances come and go (308, 309) or take new attributes (310).
//!
//! Start states: the DUT starts in configuration C.1 (C.3 for 308-310) with
//! the objects of C.5, C.7, C.9 and C.12 (`DutConfig::extra["objects"] =
//! "4,6,7,16"`; the reference agent's `--objects`). A case whose objects the
//! DUT does not register (read from its Register object links) is Not
//! Applicable, with the object named. Each body follows the "Srv does" and
//! "pass criteria" columns of the catalogue (§2.3, §2.4, §2.6, §2.7).
//!
//! Timing (710, 810, 910, 308, 309, 310): a notification interval must lie
//! within `[pmin - tol, pmax + tol]`, `tol` = 1 s scaled + 0.25 s real, as
//! in the reporting cases.

use std::time::Duration;

use rig_services::lwm2m::{self, Code, ContentFormat, ObjectPath, Record, ServerEvent, Value};
use tokio::time::Instant;

use crate::case::{
    Area, CaseContext, CaseDef, CaseFailure, CaseMeta, CaseResult, EtsConfig, StartState,
};
use crate::cases::device_management::{
    as_i64, check_values, decoded, discover, encode, expect, id_of, no_deviations, path, read,
    value_at, wait_update_lt, write_attributes, write_partial, write_value,
};
use crate::cases::reporting::{
    check_intervals, collect, first_in_window, observe, observe_composite, secs, tolerance,
};
use crate::start::{self, prompt_wait};

const REQUIRES: &[&str] = &["lwm2m"];

/// The objects the DUT is asked to serve for these cases.
pub const CORE_OBJECTS: &str = "4,6,7,16";

fn case(
    n: u16,
    title: &'static str,
    area: Area,
    timeout_s: u64,
    reading: &'static str,
    body: for<'a> fn(&'a mut CaseContext) -> crate::case::CaseFuture<'a>,
) -> CaseDef {
    CaseDef {
        meta: CaseMeta {
            id: id_of(n),
            title,
            area,
            requires: REQUIRES,
            // The body provisions the DUT itself (configuration + objects).
            start: StartState::Stopped,
            timeout: Duration::from_secs(timeout_s),
            reading: Some(reading),
            unscaled_timeout: false,
            max_time_scale: None,
        },
        body,
    }
}

/// The core-object and Portfolio cases, in id order.
pub(crate) fn cases() -> Vec<CaseDef> {
    use Area::{CoreObjects as Core, DeviceManagement as Dm, InformationReporting as Ir};
    let mut v = vec![
        case(
            228,
            "Write on Resource Instance",
            Dm,
            60,
            "Configuration C.1 + C.12. PUT /16/0/0/1 = \"test\" (plain text) must get 2.04; a \
             read of /16/0/0 must then show \"test\" at instance 1 and the other instances \
             (0, 2, 3) unchanged.",
            |cx| Box::pin(int_228(cx)),
        ),
        case(
            230,
            "Write-Composite",
            Dm,
            60,
            "Configuration C.1 + C.12. One iPATCH (SenML CBOR) of /1/0/1 = 120, /1/0/6 = true \
             and /16/0/0/0..3 = four new strings must get 2.04 and an Update with lt=120 \
             promptly; reads of /1/0 and /16/0 must show every written value.",
            |cx| Box::pin(int_230(cx)),
        ),
        case(
            233,
            "Set basic info, SenML CBOR",
            Dm,
            60,
            "Configuration C.1 + C.12, every body in SenML CBOR (112): partial update of /1/0 \
             (default pmin 101, pmax 1010, storing true), replace of /16/0/0/0, replace of \
             /1/0/1 = 63; each 2.04, an Update with lt=63 promptly, and the reads (in the \
             client's format) show the values.",
            |cx| Box::pin(int_233(cx)),
        ),
        case(
            234,
            "Set basic info, SenML JSON",
            Dm,
            60,
            "As 233 with SenML JSON (110) bodies.",
            |cx| Box::pin(int_234(cx)),
        ),
        case(
            308,
            "Observe-Composite and Create",
            Ir,
            120,
            "Configuration C.3 + C.12. Write-Attributes /16?pmin=30&pmax=45, Observe-Composite \
             (SenML CBOR) of /16/0 and /16/1: the answer holds /16/0 only. Create /16/1: the \
             first notification must come within [30 s - tol, 45 s + tol] of the Observe \
             (scaled; tol 1 s scaled + 0.25 s real) and hold values of /16/0 and /16/1.",
            |cx| Box::pin(int_308(cx)),
        ),
        case(
            309,
            "Observe-Composite and Delete",
            Ir,
            120,
            "Configuration C.3 + C.12 with /16/1 created first. Write-Attributes \
             /16?pmin=30&pmax=45, Observe-Composite of /16/0 and /16/1 (the answer holds \
             both), Delete /16/1: the first notification must come within [30 s - tol, 45 s + \
             tol] of the Observe and hold /16/0 but nothing of /16/1.",
            |cx| Box::pin(int_309(cx)),
        ),
        case(
            310,
            "Observe-Composite and attribute change",
            Ir,
            90,
            "Configuration C.3 (default pmin 1 s, pmax 10 s). Observe-Composite of /1/0/1 and \
             /3/0, then Write-Attributes /3?pmax=5: the observation takes the new pmax (its \
             listed /3/0 is under /3). From the Write-Attributes on, for 20 s (scaled), every \
             interval must lie within [1 s - tol, 5 s + tol] and at least 3 notifications \
             must arrive, each holding /1/0/1 and /3/0 values.",
            |cx| Box::pin(int_310(cx)),
        ),
        case(
            651,
            "Device: access to resources",
            Core,
            60,
            "Configuration C.1 + C.6. Partial update POST /3/0 (TLV) of /3/0/13 = the rig's \
             Unix time, /3/0/14 = \"+02:00\", /3/0/15 = \"Europe/Paris\", read /3/0, restore \
             the values read before (13 as the device's current time), read again. 14 and 15 \
             must read back exactly; 13 runs on, so it must lie within [written - 2 s, \
             written + elapsed + 2 s].",
            |cx| Box::pin(int_651(cx)),
        ),
        case(
            652,
            "Query firmware version",
            Core,
            30,
            "GET /3/0/3 must get 2.05 with exactly one non-empty string value.",
            |cx| Box::pin(int_652(cx)),
        ),
        case(
            680,
            "Create on the Device object",
            Core,
            30,
            "Create on /3 (TLV, instance /3/1 with a UTC offset) must get 4.05 Method Not \
             Allowed, and /3/1 must not exist afterwards (a Read 4.04).",
            |cx| Box::pin(int_680(cx)),
        ),
        case(
            685,
            "Delete the Device instance",
            Core,
            30,
            "Delete /3/0 must get 4.05 Method Not Allowed, and /3/0/0 must still be readable.",
            |cx| Box::pin(int_685(cx)),
        ),
        case(
            701,
            "Connectivity Monitoring: read",
            Core,
            30,
            "Configuration C.5. GET /4/0 (client's format) must get 2.05 holding the mandatory \
             resources 0 (bearer), 1 (available bearers, at least one instance), 2 (signal \
             strength) and 4 (IP addresses, at least one instance).",
            |cx| Box::pin(int_701(cx)),
        ),
        case(
            710,
            "Connectivity Monitoring: observe",
            Core,
            90,
            "Configuration C.5. Write-Attributes /4/0?pmin=2&pmax=10, Observe /4/0 for 25 s \
             (scaled): at least 2 notifications, every interval within [2 s - tol, 10 s + tol] \
             (tol 1 s scaled + 0.25 s real).",
            |cx| Box::pin(int_710(cx)),
        ),
        case(
            801,
            "Location: read",
            Core,
            30,
            "Configuration C.7. GET /6/0 must get 2.05 holding Latitude (0), Longitude (1) and \
             Timestamp (5).",
            |cx| Box::pin(int_801(cx)),
        ),
        case(
            810,
            "Location: observe",
            Core,
            90,
            "Configuration C.7. As 710 on /6/0: pmin 2 s, pmax 10 s, 25 s window.",
            |cx| Box::pin(int_810(cx)),
        ),
        case(
            901,
            "Connectivity Statistics: collect",
            Core,
            60,
            "Configuration C.9. Execute Start /7/0/6 (2.04), make traffic (12 reads of /3/0), \
             read /7/0: the counters must show the traffic (some of resources 2-5 above 0; Max \
             Message Size >= Average). Execute Stop /7/0/7 (2.04), read /7/0, make the same \
             traffic again, read /7/0: the counters 0-5 must be unchanged (collection \
             stopped). Counters in kB (2, 3) may be rounded either way.",
            |cx| Box::pin(int_901(cx)),
        ),
        case(
            905,
            "Connectivity Statistics: collection period",
            Core,
            30,
            "Configuration C.9. PUT /7/0/8 = 60 (plain text) must get 2.04 and read back 60; \
             the case writes 0 back afterwards (2.04).",
            |cx| Box::pin(int_905(cx)),
        ),
        case(
            910,
            "Connectivity Statistics: observe",
            Core,
            90,
            "Configuration C.9, collection not started. As 710 on /7/0: pmin 2 s, pmax 10 s, \
             25 s window.",
            |cx| Box::pin(int_910(cx)),
        ),
        case(
            950,
            "Multi-Servers Registration",
            Core,
            30,
            "Configuration C.14 without access control instances (the rig does not check \
             ACLs): a second server (SSID 2) is bound next to the rig's server and given to \
             the DUT (DutConfig extra `server2_uri`). Each server must get its own Register \
             (2.01) promptly, and each must be able to Read /3/0/0. A DUT that never \
             registers with the second server cannot reach C.14: Not Applicable.",
            |cx| Box::pin(int_950(cx)),
        ),
        case(
            951,
            "Multi-Servers & Attributes",
            Core,
            30,
            "Configuration C.14 as in 950. Server 1 writes /3/0?pmin=2&pmax=10, server 2 \
             /3/0?pmin=15&pmax=50; each Discovers /3/0 and must see exactly its own pmin and \
             pmax on </3/0> (attributes are per server, LwM2M 1.1 Core TS §5.1.2).",
            |cx| Box::pin(int_951(cx)),
        ),
        case(
            1630,
            "Create Portfolio instance",
            Core,
            60,
            "Configuration C.12. Discover /16/0 must list </16/0/0> with dim=4; Create /16 \
             (TLV) of /16/1 with two Identity strings must get 2.01 and an Update listing \
             /16/1 promptly; Discover /16/1 must list </16/1/0> with dim=2; Read /16 must \
             hold both instances with their values.",
            |cx| Box::pin(int_1630(cx)),
        ),
        case(
            1635,
            "Delete Portfolio instances",
            Core,
            60,
            "Configuration C.12. Every instance the Discover of /16 lists is deleted (2.02 \
             each); the final Discover of /16 must be exactly </16> (the object, no \
             instance).",
            |cx| Box::pin(int_1635(cx)),
        ),
    ];
    v.sort_by_key(|c| c.meta.id);
    v
}

// ---- start state -------------------------------------------------------------

fn object_name(o: u16) -> &'static str {
    match o {
        4 => "Connectivity Monitoring",
        6 => "Location",
        7 => "Connectivity Statistics",
        16 => "Portfolio",
        _ => "object",
    }
}

/// Starts the DUT in `config` with the core objects and waits for its
/// Register; Not Applicable when it does not register every object of
/// `needs`.
async fn begin(cx: &mut CaseContext, config: EtsConfig, needs: &[u16]) -> CaseResult {
    let mut cfg = start::dut_config(cx, config);
    cfg.extra
        .insert("objects".to_string(), CORE_OBJECTS.to_string());
    let what = format!("{} with objects {CORE_OBJECTS}", start::config_name(config));
    let (event, _) = start::start_and_wait_register(cx, &cfg, &what).await?;
    cx.server.clear_deviations(&cx.endpoint);
    let links = match event {
        ServerEvent::Registered { registration, .. } => registration.object_links,
        _ => Vec::new(),
    };
    for o in needs {
        let obj = format!("/{o}");
        let inst = format!("/{o}/");
        if !links.iter().any(|l| *l == obj || l.starts_with(&inst)) {
            return Err(CaseFailure::not_applicable(format!(
                "the DUT does not register object {o} ({}); its Register lists {}",
                object_name(*o),
                links.join(", ")
            )));
        }
    }
    Ok(())
}

fn text(s: &str) -> Value {
    Value::String(s.to_string())
}

/// Reads `p` and returns its decoded values.
async fn read_values(
    cx: &CaseContext,
    p: &str,
    accept: Option<ContentFormat>,
) -> Result<Vec<Record>, CaseFailure> {
    let r = read(cx, p, accept).await?;
    Ok(decoded(&format!("Read {p}"), &r)?.to_vec())
}

// ---- Device (651-685) --------------------------------------------------------

async fn int_651(cx: &mut CaseContext) -> CaseResult {
    begin(cx, EtsConfig::C1, &[]).await?;
    let inst = path("/3/0")?;
    let (p13, p14, p15) = (path("/3/0/13")?, path("/3/0/14")?, path("/3/0/15")?);
    let before = read_values(cx, "/3/0", None).await?;
    let now_unix = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    };
    let written = now_unix();
    let t0 = Instant::now();
    let update = vec![
        Record::new(p13, Value::Time(written)),
        Record::new(p14, text("+02:00")),
        Record::new(p15, text("Europe/Paris")),
    ];
    cx.step("partial update of /3/0: current time, UTC offset +02:00, timezone Europe/Paris");
    write_partial(cx, &inst, ContentFormat::Tlv, &update, "").await?;
    let after = read_values(cx, "/3/0", None).await?;
    check_values(
        "read after the partial update of /3/0",
        &after,
        &[(p14, text("+02:00")), (p15, text("Europe/Paris"))],
    )?;
    let elapsed = t0.elapsed().as_secs() as i64;
    match value_at(&after, &p13).and_then(as_i64) {
        Some(t) if t >= written - 2 && t <= written + elapsed + 2 => {}
        Some(t) => {
            return Err(CaseFailure::fail(format!(
                "read after the partial update: /3/0/13 is {t}, expected the written time {written} \
                 (+ at most {} s elapsed, 2 s tolerance)",
                elapsed + 2
            )));
        }
        None => {
            return Err(CaseFailure::fail(
                "read after the partial update: expected a time at /3/0/13, saw none",
            ));
        }
    }
    // Restore what was there before (the clock as the device keeps it).
    let restore: Vec<Record> = before
        .iter()
        .filter(|r| r.path == p14 || r.path == p15)
        .cloned()
        .chain(std::iter::once(Record::new(p13, Value::Time(now_unix()))))
        .collect();
    cx.step("restoring /3/0/13-15");
    write_partial(
        cx,
        &inst,
        ContentFormat::Tlv,
        &restore,
        " restoring the values",
    )
    .await?;
    let last = read_values(cx, "/3/0", None).await?;
    let want: Vec<(ObjectPath, Value)> = restore
        .iter()
        .filter(|r| r.path != p13)
        .map(|r| (r.path, r.value.clone()))
        .collect();
    check_values("read after the restore", &last, &want)?;
    no_deviations(cx)
}

async fn int_652(cx: &mut CaseContext) -> CaseResult {
    begin(cx, EtsConfig::C1, &[]).await?;
    let p = path("/3/0/3")?;
    let recs = read_values(cx, "/3/0/3", None).await?;
    match recs.as_slice() {
        [one] if one.path == p => match &one.value {
            Value::String(s) if !s.is_empty() => {}
            other => {
                return Err(CaseFailure::fail(format!(
                    "Read /3/0/3: expected a non-empty firmware version string, saw {other}"
                )));
            }
        },
        _ => {
            return Err(CaseFailure::fail(format!(
                "Read /3/0/3: expected exactly one value at /3/0/3, saw {}",
                recs.iter()
                    .map(|r| r.path.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    no_deviations(cx)
}

async fn int_680(cx: &mut CaseContext) -> CaseResult {
    begin(cx, EtsConfig::C1, &[]).await?;
    let obj = path("/3")?;
    let body = encode(
        ContentFormat::Tlv,
        &obj,
        &[Record::new(path("/3/1/14")?, text("+01:00"))],
    )?;
    cx.step("Create on /3");
    expect(
        "Create /3",
        cx.server
            .create(&cx.endpoint, &obj, ContentFormat::Tlv, body)
            .await,
        Code::METHOD_NOT_ALLOWED,
    )?;
    expect(
        "Read /3/1 after the refused Create",
        cx.server.read(&cx.endpoint, &path("/3/1")?, None).await,
        Code::NOT_FOUND,
    )?;
    no_deviations(cx)
}

async fn int_685(cx: &mut CaseContext) -> CaseResult {
    begin(cx, EtsConfig::C1, &[]).await?;
    cx.step("Delete /3/0");
    expect(
        "Delete /3/0",
        cx.server.delete(&cx.endpoint, &path("/3/0")?).await,
        Code::METHOD_NOT_ALLOWED,
    )?;
    read(cx, "/3/0/0", None).await?;
    no_deviations(cx)
}

// ---- Connectivity Monitoring, Location (701-810) ----------------------------

/// Checks that `records` hold a value at each resource of `instance` in
/// `mandatory` (for a multiple resource: at least one instance).
fn mandatory(what: &str, records: &[Record], instance: &str, mandatory: &[u16]) -> CaseResult {
    let mut missing = Vec::new();
    for r in mandatory {
        let p = path(&format!("{instance}/{r}"))?;
        if !records.iter().any(|x| p.is_prefix_of(&x.path)) {
            missing.push(p.to_string());
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CaseFailure::fail(format!(
            "{what}: expected the mandatory resources {}; missing {}",
            mandatory
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            missing.join(", ")
        )))
    }
}

async fn int_701(cx: &mut CaseContext) -> CaseResult {
    begin(cx, EtsConfig::C1, &[4]).await?;
    let recs = read_values(cx, "/4/0", None).await?;
    mandatory("Read /4/0", &recs, "/4/0", &[0, 1, 2, 4])?;
    no_deviations(cx)
}

async fn int_801(cx: &mut CaseContext) -> CaseResult {
    begin(cx, EtsConfig::C1, &[6]).await?;
    let recs = read_values(cx, "/6/0", None).await?;
    mandatory("Read /6/0", &recs, "/6/0", &[0, 1, 5])?;
    no_deviations(cx)
}

/// 710, 810, 910: Write-Attributes pmin 2, pmax 10 on `instance`, observe
/// it for 25 s (scaled), check the intervals.
async fn observe_instance(cx: &mut CaseContext, object: u16) -> CaseResult {
    begin(cx, EtsConfig::C1, &[object]).await?;
    let instance = format!("/{object}/0");
    write_attributes(cx, &instance, "pmin=2&pmax=10").await?;
    let mut events = cx.server.events();
    let (o, t0) = observe(cx, &instance).await?;
    let window = cx.scaled(Duration::from_secs(25)) + tolerance(cx);
    cx.step(format!("collecting notifications for {}", secs(window)));
    let end = t0 + window;
    let seen = collect(cx, &mut events, end).await;
    if let Some(n) = seen.iter().find(|n| n.0 == o && n.2 != Code::CONTENT) {
        return Err(CaseFailure::fail(format!(
            "{instance}: expected notifications with 2.05, saw {}",
            n.2
        )));
    }
    if seen.iter().any(|n| n.0 == o && !n.4) {
        return Err(CaseFailure::fail(format!(
            "{instance}: a notification did not carry a decodable value of {instance}"
        )));
    }
    let times: Vec<Instant> = seen.iter().filter(|n| n.0 == o).map(|n| n.1).collect();
    check_intervals(cx, &instance, t0, end, &times, (2, 10), 2)?;
    cx.measure("observe.notifications", "count", times.len() as f64);
    no_deviations(cx)
}

async fn int_710(cx: &mut CaseContext) -> CaseResult {
    observe_instance(cx, 4).await
}

async fn int_810(cx: &mut CaseContext) -> CaseResult {
    observe_instance(cx, 6).await
}

async fn int_910(cx: &mut CaseContext) -> CaseResult {
    observe_instance(cx, 7).await
}

// ---- Connectivity Statistics (901, 905) ---------------------------------------

async fn traffic(cx: &CaseContext) -> CaseResult {
    for _ in 0..12 {
        read(cx, "/3/0", None).await?;
    }
    Ok(())
}

fn counters(records: &[Record]) -> Result<Vec<(ObjectPath, Option<i64>)>, CaseFailure> {
    let mut out = Vec::new();
    for r in 0..=5 {
        let p = path(&format!("/7/0/{r}"))?;
        out.push((p, value_at(records, &p).and_then(as_i64)));
    }
    Ok(out)
}

fn show(c: &[(ObjectPath, Option<i64>)]) -> String {
    c.iter()
        .filter_map(|(p, v)| v.map(|v| format!("{p}={v}")))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn execute(cx: &CaseContext, p: &str, name: &str) -> CaseResult {
    cx.step(format!("executing {p} ({name})"));
    expect(
        &format!("Execute {p} ({name})"),
        cx.server.execute(&cx.endpoint, &path(p)?, None).await,
        Code::CHANGED,
    )?;
    Ok(())
}

async fn int_901(cx: &mut CaseContext) -> CaseResult {
    begin(cx, EtsConfig::C1, &[7]).await?;
    execute(cx, "/7/0/6", "Start").await?;
    traffic(cx).await?;
    let during = counters(&read_values(cx, "/7/0", None).await?)?;
    let data: i64 = during[2..].iter().filter_map(|(_, v)| *v).sum();
    if data <= 0 {
        return Err(CaseFailure::fail(format!(
            "Read /7/0 after Start and 13 exchanges: expected counters showing the traffic \
             (resources 2-5 above 0), saw {}",
            show(&during)
        )));
    }
    if let (Some(max), Some(avg)) = (during[4].1, during[5].1)
        && max < avg
    {
        return Err(CaseFailure::fail(format!(
            "Read /7/0: Max Message Size {max} is below Average Message Size {avg}"
        )));
    }
    execute(cx, "/7/0/7", "Stop").await?;
    let stopped = counters(&read_values(cx, "/7/0", None).await?)?;
    traffic(cx).await?;
    let later = counters(&read_values(cx, "/7/0", None).await?)?;
    if stopped != later {
        return Err(CaseFailure::fail(format!(
            "after Stop /7/0/7 the counters kept counting: {} after the Stop, {} after 13 more exchanges",
            show(&stopped),
            show(&later)
        )));
    }
    no_deviations(cx)
}

async fn int_905(cx: &mut CaseContext) -> CaseResult {
    begin(cx, EtsConfig::C1, &[7]).await?;
    write_value(cx, "/7/0/8", ContentFormat::Text, Value::Integer(60)).await?;
    let recs = read_values(cx, "/7/0/8", None).await?;
    check_values(
        "read-back of /7/0/8",
        &recs,
        &[(path("/7/0/8")?, Value::Integer(60))],
    )?;
    write_value(cx, "/7/0/8", ContentFormat::Text, Value::Integer(0)).await?;
    no_deviations(cx)
}

// ---- multi-server (950, 951) -----------------------------------------------

/// The second LwM2M server of configuration C.14 (SSID 2), bound next to
/// the case's server.
async fn second_server(cx: &CaseContext) -> Result<lwm2m::Lwm2mServer, CaseFailure> {
    let socket = cx
        .net
        .bind_udp(0)
        .map_err(|e| CaseFailure::infra(format!("cannot bind the second LwM2M server: {e}")))?;
    let config = lwm2m::ServerConfig {
        time_scale: cx.time_scale,
        ..cx.server.config().clone()
    };
    lwm2m::Lwm2mServer::from_std(socket, config)
        .map_err(|e| CaseFailure::infra(format!("cannot start the second LwM2M server: {e}")))
}

/// Starts the DUT in C.14 (C.1 + a second server account, `server2_uri`)
/// and waits for its Register at both servers. Not Applicable when the
/// second server sees no Register (the DUT cannot hold C.14).
async fn begin_c14(cx: &mut CaseContext) -> Result<lwm2m::Lwm2mServer, CaseFailure> {
    let s2 = second_server(cx).await?;
    let mut events2 = s2.events();
    let mut cfg = start::dut_config(cx, EtsConfig::C1);
    cfg.extra.insert("server2_uri".to_string(), s2.uri());
    start::start_and_wait_register(cx, &cfg, "C.14 (two servers)").await?;
    let wait = prompt_wait(cx, Duration::from_secs(10));
    let ep = cx.endpoint.clone();
    let got = lwm2m::wait_for(
        &mut events2,
        wait,
        |e| matches!(e, ServerEvent::Registered { endpoint, .. } if *endpoint == ep),
    )
    .await;
    if got.is_none() && s2.registration(&cx.endpoint).is_none() {
        return Err(CaseFailure::not_applicable(format!(
            "could not reach configuration C.14: the DUT registered with the first server but \
             not with the second ({}) within {}; it cannot hold two server accounts",
            s2.uri(),
            secs(wait)
        )));
    }
    cx.server.clear_deviations(&cx.endpoint);
    Ok(s2)
}

async fn int_950(cx: &mut CaseContext) -> CaseResult {
    let s2 = begin_c14(cx).await?;
    // Each server got its own Register (2.01) and a registration of its own.
    for (name, server) in [("server 1", &cx.server), ("server 2", &s2)] {
        match server.registration(&cx.endpoint) {
            Some(r) if r.object_links.iter().any(|l| l == "/1/0" || l == "/1/1") => {}
            Some(r) => {
                return Err(CaseFailure::fail(format!(
                    "{name}: the Register lists no Server object instance: {}",
                    r.object_links.join(", ")
                )));
            }
            None => {
                return Err(CaseFailure::fail(format!(
                    "{name}: expected a registration of `{}`, saw none",
                    cx.endpoint
                )));
            }
        }
    }
    // Both servers can manage the device.
    read(cx, "/3/0/0", None).await?;
    expect(
        "Read /3/0/0 from server 2",
        s2.read(&cx.endpoint, &path("/3/0/0")?, None).await,
        Code::CONTENT,
    )?;
    let d2 = s2.deviations(&cx.endpoint);
    if !d2.is_empty() {
        return Err(CaseFailure::fail(format!(
            "server 2 recorded {} deviation(s): {}",
            d2.len(),
            d2.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    s2.shutdown();
    no_deviations(cx)
}

/// The parameters of link `target` in a Discover answer, sorted.
fn link_params(text: &str, target: &str) -> Option<Vec<String>> {
    text.split(',').find_map(|l| {
        let mut parts = l.trim().split(';');
        (parts.next().map(str::trim) == Some(target)).then(|| {
            let mut p: Vec<String> = parts.map(|x| x.trim().to_string()).collect();
            p.sort();
            p
        })
    })
}

async fn int_951(cx: &mut CaseContext) -> CaseResult {
    let s2 = begin_c14(cx).await?;
    write_attributes(cx, "/3/0", "pmin=2&pmax=10").await?;
    cx.step("server 2: Write-Attributes /3/0?pmin=15&pmax=50");
    expect(
        "Write-Attributes /3/0?pmin=15&pmax=50 from server 2",
        s2.write_attributes(&cx.endpoint, &path("/3/0")?, "pmin=15&pmax=50")
            .await,
        Code::CHANGED,
    )?;
    let d1 = discover(cx, "/3/0").await?;
    cx.step("server 2: discovering /3/0");
    let d2 = expect(
        "Discover /3/0 from server 2",
        s2.discover(&cx.endpoint, &path("/3/0")?).await,
        Code::CONTENT,
    )?
    .text();
    for (name, got, want) in [
        ("server 1", &d1, ["pmax=10", "pmin=2"]),
        ("server 2", &d2, ["pmax=50", "pmin=15"]),
    ] {
        let params = link_params(got, "</3/0>");
        if params.as_deref() != Some(&want.map(String::from)[..]) {
            return Err(CaseFailure::fail(format!(
                "{name}: Discover /3/0 must show only its own attributes on </3/0> ({}), saw `{got}`",
                want.join(";")
            )));
        }
    }
    s2.shutdown();
    no_deviations(cx)
}

// ---- Portfolio (1630, 1635, 228-234) ------------------------------------------

/// Creates `/16/<n>` with `identities` (TLV) and expects 2.01.
async fn create_portfolio(cx: &CaseContext, n: u16, identities: &[&str]) -> CaseResult {
    let obj = path("/16")?;
    let recs: Vec<Record> = identities
        .iter()
        .enumerate()
        .map(|(i, s)| Ok(Record::new(path(&format!("/16/{n}/0/{i}"))?, text(s))))
        .collect::<Result<_, CaseFailure>>()?;
    cx.step(format!("Create /16/{n}"));
    let body = encode(ContentFormat::Tlv, &obj, &recs)?;
    expect(
        &format!("Create /16 (instance {n})"),
        cx.server
            .create(&cx.endpoint, &obj, ContentFormat::Tlv, body)
            .await,
        Code::CREATED,
    )?;
    Ok(())
}

fn link_has(text: &str, target: &str, param: &str) -> bool {
    text.split(',').any(|l| {
        let mut parts = l.trim().split(';');
        parts.next().map(str::trim) == Some(target) && parts.any(|p| p.trim() == param)
    })
}

async fn int_1630(cx: &mut CaseContext) -> CaseResult {
    begin(cx, EtsConfig::C1, &[16]).await?;
    let first = discover(cx, "/16/0").await?;
    if !link_has(&first, "</16/0/0>", "dim=4") {
        return Err(CaseFailure::fail(format!(
            "Discover /16/0: expected </16/0/0> with dim=4 (configuration C.12), saw `{first}`"
        )));
    }
    let mut events = cx.server.events();
    create_portfolio(cx, 1, &["Host Device ID #2", "Host Device Model #2"]).await?;
    let wait = prompt_wait(cx, Duration::from_secs(10));
    let ep = cx.endpoint.clone();
    let got = lwm2m::wait_for(&mut events, wait, |e| {
        matches!(e, ServerEvent::Updated { endpoint, update, .. }
            if *endpoint == ep
                && update.object_links.as_ref().is_some_and(|l| l.iter().any(|x| x == "/16/1")))
    })
    .await;
    if got.is_none() {
        return Err(CaseFailure::fail(format!(
            "expected an Update listing /16/1 within {} of the Create; saw none",
            secs(wait)
        )));
    }
    let second = discover(cx, "/16/1").await?;
    if !link_has(&second, "</16/1/0>", "dim=2") {
        return Err(CaseFailure::fail(format!(
            "Discover /16/1: expected </16/1/0> with dim=2, saw `{second}`"
        )));
    }
    let recs = read_values(cx, "/16", None).await?;
    check_values(
        "Read /16",
        &recs,
        &[
            (path("/16/1/0/0")?, text("Host Device ID #2")),
            (path("/16/1/0/1")?, text("Host Device Model #2")),
        ],
    )?;
    if value_at(&recs, &path("/16/0/0/0")?).is_none() {
        return Err(CaseFailure::fail(
            "Read /16: expected the values of /16/0 as well, saw none",
        ));
    }
    no_deviations(cx)
}

async fn int_1635(cx: &mut CaseContext) -> CaseResult {
    begin(cx, EtsConfig::C1, &[16]).await?;
    let before = discover(cx, "/16").await?;
    let instances: Vec<String> = before
        .split(',')
        .filter_map(|l| l.trim().split(';').next())
        .map(|t| {
            t.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
        .filter(|t| t.matches('/').count() == 2)
        .collect();
    if instances.is_empty() {
        return Err(CaseFailure::fail(format!(
            "Discover /16: expected the instances of configuration C.12, saw `{before}`"
        )));
    }
    for i in &instances {
        cx.step(format!("Delete {i}"));
        expect(
            &format!("Delete {i}"),
            cx.server.delete(&cx.endpoint, &path(i)?).await,
            Code::DELETED,
        )?;
    }
    let last = discover(cx, "/16").await?;
    if last.trim() != "</16>" {
        return Err(CaseFailure::fail(format!(
            "Discover /16 after deleting every instance: expected `</16>`, saw `{last}`"
        )));
    }
    no_deviations(cx)
}

async fn int_228(cx: &mut CaseContext) -> CaseResult {
    begin(cx, EtsConfig::C1, &[16]).await?;
    let before = read_values(cx, "/16/0/0", None).await?;
    write_value(cx, "/16/0/0/1", ContentFormat::Text, text("test")).await?;
    let after = read_values(cx, "/16/0/0", None).await?;
    let target = path("/16/0/0/1")?;
    let mut want = vec![(target, text("test"))];
    for r in before.iter().filter(|r| r.path != target) {
        want.push((r.path, r.value.clone()));
    }
    check_values("read of /16/0/0 after the Write", &after, &want)?;
    if after.len() != before.len() {
        return Err(CaseFailure::fail(format!(
            "read of /16/0/0 after the Write: expected {} instances, saw {} ({})",
            before.len(),
            after.len(),
            list(&after)
        )));
    }
    no_deviations(cx)
}

async fn int_230(cx: &mut CaseContext) -> CaseResult {
    begin(cx, EtsConfig::C1, &[16]).await?;
    let mut records = vec![
        Record::new(path("/1/0/1")?, Value::Integer(120)),
        Record::new(path("/1/0/6")?, Value::Boolean(true)),
    ];
    for i in 0..4 {
        records.push(Record::new(
            path(&format!("/16/0/0/{i}"))?,
            text(&format!("composite identity {i}")),
        ));
    }
    let body = encode(ContentFormat::SenmlCbor, &ObjectPath::Root, &records)?;
    let mut events = cx.server.events();
    cx.step("Write-Composite of /1/0/1, /1/0/6 and /16/0/0/0..3");
    expect(
        "Write-Composite (iPATCH /, 112)",
        cx.server
            .write_composite(&cx.endpoint, ContentFormat::SenmlCbor, body)
            .await,
        Code::CHANGED,
    )?;
    wait_update_lt(cx, &mut events, 120, "the Write-Composite").await?;
    let mut got = read_values(cx, "/1/0", None).await?;
    got.extend(read_values(cx, "/16/0", None).await?);
    let want: Vec<(ObjectPath, Value)> =
        records.iter().map(|r| (r.path, r.value.clone())).collect();
    check_values("reads after the Write-Composite", &got, &want)?;
    no_deviations(cx)
}

async fn set_in_senml(cx: &mut CaseContext, format: ContentFormat) -> CaseResult {
    begin(cx, EtsConfig::C1, &[16]).await?;
    let inst = path("/1/0")?;
    let partial = vec![
        Record::new(path("/1/0/2")?, Value::Integer(101)),
        Record::new(path("/1/0/3")?, Value::Integer(1010)),
        Record::new(path("/1/0/6")?, Value::Boolean(true)),
    ];
    cx.step(format!("partial update of /1/0 in {format}"));
    write_partial(cx, &inst, format, &partial, "").await?;
    let got = read_values(cx, "/1/0", None).await?;
    let want: Vec<(ObjectPath, Value)> =
        partial.iter().map(|r| (r.path, r.value.clone())).collect();
    check_values("read after the partial update of /1/0", &got, &want)?;
    write_value(cx, "/16/0/0/0", format, text("SenML identity")).await?;
    let got = read_values(cx, "/16/0/0/0", None).await?;
    check_values(
        "read of /16/0/0/0",
        &got,
        &[(path("/16/0/0/0")?, text("SenML identity"))],
    )?;
    let mut events = cx.server.events();
    write_value(cx, "/1/0/1", format, Value::Integer(63)).await?;
    wait_update_lt(cx, &mut events, 63, "the Write of /1/0/1").await?;
    let got = read_values(cx, "/1/0/1", None).await?;
    check_values(
        "read of /1/0/1",
        &got,
        &[(path("/1/0/1")?, Value::Integer(63))],
    )?;
    no_deviations(cx)
}

async fn int_233(cx: &mut CaseContext) -> CaseResult {
    set_in_senml(cx, ContentFormat::SenmlCbor).await
}

async fn int_234(cx: &mut CaseContext) -> CaseResult {
    set_in_senml(cx, ContentFormat::SenmlJson).await
}

// ---- Observe-Composite (308-310) ----------------------------------------------

fn has_under(records: &[Record], p: &str) -> bool {
    path(p).is_ok_and(|p| records.iter().any(|r| p.is_prefix_of(&r.path)))
}

fn list(records: &[Record]) -> String {
    records
        .iter()
        .map(|r| r.path.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn int_308(cx: &mut CaseContext) -> CaseResult {
    begin(cx, EtsConfig::C3, &[16]).await?;
    write_attributes(cx, "/16", "pmin=30&pmax=45").await?;
    let mut events = cx.server.events();
    let (o, t0, first) = observe_composite(cx, &["/16/0", "/16/1"]).await?;
    let initial = first.decoded.unwrap_or_default();
    if !has_under(&initial, "/16/0") || has_under(&initial, "/16/1") {
        return Err(CaseFailure::fail(format!(
            "Observe-Composite /16/0, /16/1: expected values of /16/0 only before the Create, saw {}",
            list(&initial)
        )));
    }
    create_portfolio(cx, 1, &["Host Device ID #2"]).await?;
    let (recs, _) = first_in_window(cx, &mut events, o, t0).await?;
    if !has_under(&recs, "/16/0") || !has_under(&recs, "/16/1") {
        return Err(CaseFailure::fail(format!(
            "the notification after Create /16/1: expected values of /16/0 and /16/1, saw {}",
            list(&recs)
        )));
    }
    no_deviations(cx)
}

async fn int_309(cx: &mut CaseContext) -> CaseResult {
    begin(cx, EtsConfig::C3, &[16]).await?;
    create_portfolio(cx, 1, &["Host Device ID #2"]).await?;
    write_attributes(cx, "/16", "pmin=30&pmax=45").await?;
    let mut events = cx.server.events();
    let (o, t0, first) = observe_composite(cx, &["/16/0", "/16/1"]).await?;
    let initial = first.decoded.unwrap_or_default();
    if !has_under(&initial, "/16/0") || !has_under(&initial, "/16/1") {
        return Err(CaseFailure::fail(format!(
            "Observe-Composite /16/0, /16/1: expected values of both instances, saw {}",
            list(&initial)
        )));
    }
    cx.step("Delete /16/1");
    expect(
        "Delete /16/1",
        cx.server.delete(&cx.endpoint, &path("/16/1")?).await,
        Code::DELETED,
    )?;
    let (recs, _) = first_in_window(cx, &mut events, o, t0).await?;
    if !has_under(&recs, "/16/0") || has_under(&recs, "/16/1") {
        return Err(CaseFailure::fail(format!(
            "the notification after Delete /16/1: expected values of /16/0 and none of /16/1, saw {}",
            list(&recs)
        )));
    }
    no_deviations(cx)
}

async fn int_310(cx: &mut CaseContext) -> CaseResult {
    begin(cx, EtsConfig::C3, &[]).await?;
    let mut events = cx.server.events();
    let (o, _, _) = observe_composite(cx, &["/1/0/1", "/3/0"]).await?;
    write_attributes(cx, "/3", "pmax=5").await?;
    let t0 = Instant::now();
    let window = cx.scaled(Duration::from_secs(20)) + tolerance(cx);
    cx.step(format!("collecting notifications for {}", secs(window)));
    let end = t0 + window;
    let mut times = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match lwm2m::wait_for(
            &mut events,
            left,
            |e| matches!(e, ServerEvent::Notification { observation, .. } if *observation == o),
        )
        .await
        {
            Some(ServerEvent::Notification { response, at, .. }) => {
                let recs = response.decoded.unwrap_or_default();
                if !has_under(&recs, "/1/0/1") || !has_under(&recs, "/3/0") {
                    return Err(CaseFailure::fail(format!(
                        "a notification of the Observe-Composite lacks /1/0/1 or /3/0 values: {}",
                        list(&recs)
                    )));
                }
                // Notifications that crossed the Write-Attributes count from it.
                if at >= t0 {
                    times.push(at);
                }
            }
            _ => break,
        }
    }
    check_intervals(
        cx,
        "Observe-Composite /1/0/1, /3/0",
        t0,
        end,
        &times,
        (1, 5),
        3,
    )?;
    cx.measure("observe.notifications", "count", times.len() as f64);
    no_deviations(cx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_and_portfolio_case_is_listed_with_a_reading() {
        for n in [
            228, 230, 233, 234, 308, 309, 310, 651, 652, 680, 685, 701, 710, 801, 810, 901, 905,
            910, 950, 951, 1630, 1635,
        ] {
            let id = format!("LightweightM2M-1.1-int-{n}");
            let c = crate::cases::find(&id).unwrap_or_else(|| panic!("{id} missing"));
            assert!(c.meta.reading.is_some_and(|r| !r.is_empty()), "{id}");
            assert_eq!(c.meta.requires, &["lwm2m"], "{id}");
        }
    }

    #[test]
    fn links_are_matched_by_target_and_parameter() {
        assert!(link_has("</16/0>,</16/0/0>;dim=4", "</16/0/0>", "dim=4"));
        assert!(!link_has("</16/0/0>;dim=3", "</16/0/0>", "dim=4"));
    }
}
