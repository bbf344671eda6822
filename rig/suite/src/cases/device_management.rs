//! ETS device management cases (200-299): Read, Write, Execute, Discover,
//! Write-Attributes and the composite operations, each by its ETS id.
//!
//! Each body follows the "Srv does" and "pass criteria" columns of the ETS
//! catalogue (`shared/reference/oma-interop-cases.md` §2.3). The DUT starts
//! registered in configuration C.1 or C.3 (appendix C); every Write a case
//! makes is undone by the next case's start state (the DUT is restarted).
//! Every operation waits at most the server's operation timeout; every other
//! wait is bounded and scaled. A failure names the operation, the path, what
//! was expected and what was seen; any deviation the strict server recorded
//! during the body fails the case too.

use std::time::Duration;

use rig_proto::object::Registry;
use rig_services::OpError;
use rig_services::lwm2m::{
    self, Code, ContentFormat, ObjectPath, Record, Response, ServerEvent, Value,
};

use crate::case::{
    Area, CaseContext, CaseDef, CaseFailure, CaseMeta, CaseResult, EtsConfig, StartState,
};
use crate::start::prompt_wait;

pub(crate) mod composite;

const REQUIRES: &[&str] = &["lwm2m"];

/// The device management cases, in id order.
pub(crate) fn cases() -> Vec<CaseDef> {
    let mut v = vec![
        case(
            201,
            "Query basic info, Plain Text",
            EtsConfig::C1,
            None,
            |cx| Box::pin(int_201(cx)),
        ),
        case(
            203,
            "Query basic info, TLV",
            EtsConfig::C1,
            Some(
                "The 2.05 must be TLV (11542) holding /3/0/0, 1, 2, 3, 11/0 and 16=\"U\". \
                 The catalogue expects an Object Instance TLV around the resources, the TS's \
                 own Read /3/0 example has none: both are accepted, but a wrapper must name \
                 instance 0.",
            ),
            |cx| Box::pin(int_203(cx)),
        ),
        case(
            204,
            "Query basic info, JSON",
            EtsConfig::C1,
            Some(
                "LwM2M JSON is the OMA JSON format 11543 (not SenML JSON 110); same content as 203.",
            ),
            |cx| Box::pin(int_204(cx)),
        ),
        case(
            205,
            "Set basic info, Plain Text",
            EtsConfig::C3,
            Some(
                "Each value is written in plain text and read back in plain text; the case \
                 restores 1/10/86400 afterwards and every Write must be 2.04.",
            ),
            |cx| Box::pin(int_205(cx)),
        ),
        case(
            211,
            "Query basic info, CBOR",
            EtsConfig::C1,
            Some(
                "CBOR (60) carries one value (OI #585): /1/0/0, /1/0/6, /1/0/7 are read one \
                 by one and must be exactly the CBOR items 1, false (0xf4) and \"U\".",
            ),
            |cx| Box::pin(int_211(cx)),
        ),
        case(
            212,
            "Set basic info, CBOR",
            EtsConfig::C3,
            Some(
                "The values are written one resource at a time in CBOR (60), since CBOR holds \
                 a single value (OI #585); /1/0 is read back in the client's preferred format.",
            ),
            |cx| Box::pin(int_212(cx)),
        ),
        case(
            215,
            "Set basic info, TLV",
            EtsConfig::C3,
            Some(
                "The replace (PUT /1/0) carries every writable resource of the saved read, \
                 Lifetime included (OI #236); resources the partial update did not carry \
                 (the Lifetime) must be unchanged after it.",
            ),
            |cx| Box::pin(int_215(cx)),
        ),
        case(
            220,
            "Set basic info, JSON",
            EtsConfig::C3,
            Some(
                "As 215 with LwM2M JSON (11543) request bodies; read-backs use the client's \
                 preferred format.",
            ),
            |cx| Box::pin(int_220(cx)),
        ),
        case(
            221,
            "Operations on the Security object",
            EtsConfig::C1,
            Some(
                "Read /0, Write /0/0/0 and Write-Attributes /0 must each be answered 4.01 \
                 Unauthorized; 4.04 or 4.05 are not accepted.",
            ),
            |cx| Box::pin(int_221(cx)),
        ),
        case(
            222,
            "Read on Object",
            EtsConfig::C1,
            Some(
                "Every value of a 2.05 to Read /1 and /3 must lie under that object, and /x/0 must be there.",
            ),
            |cx| Box::pin(int_222(cx)),
        ),
        case(
            223,
            "Read on Object Instance",
            EtsConfig::C1,
            Some("Every value of a 2.05 to Read /1/0 and /3/0 must lie under that instance."),
            |cx| Box::pin(int_223(cx)),
        ),
        case(
            224,
            "Read on Resource",
            EtsConfig::C1,
            Some("Each answer must hold exactly one value, at the resource read."),
            |cx| Box::pin(int_224(cx)),
        ),
        case(
            225,
            "Read on Resource Instance",
            EtsConfig::C1,
            Some("The answer must hold exactly one value, at /3/0/11/0 (the C.1 value 0)."),
            |cx| Box::pin(int_225(cx)),
        ),
        case(
            226,
            "Write (partial update) on Object Instance",
            EtsConfig::C1,
            Some(
                "The partial update (POST /1/0, TLV) sets Lifetime 65 and storing true; an \
                 Update with lt=65 must follow promptly, and a read-back must show both.",
            ),
            |cx| Box::pin(int_226(cx)),
        ),
        case(
            227,
            "Write (replace) on Resource",
            EtsConfig::C1,
            None,
            |cx| Box::pin(int_227(cx)),
        ),
        case(
            237,
            "Read on Object without Accept",
            EtsConfig::C1,
            Some(
                "Without Accept the client picks its format: any of TLV, LwM2M JSON, SenML \
                 JSON/CBOR or LwM2M CBOR is accepted, as long as it carries a Content-Format \
                 and decodes to values under the object.",
            ),
            |cx| Box::pin(int_237(cx)),
        ),
        case(
            241,
            "Execute Reboot",
            EtsConfig::C1,
            Some(
                "After the 2.04, a new Register (a new registration of the endpoint) must arrive promptly.",
            ),
            |cx| Box::pin(int_241(cx)),
        ),
        case(256, "Write Operation Failure", EtsConfig::C1, None, |cx| {
            Box::pin(int_256(cx))
        }),
        case(
            260,
            "Discover",
            EtsConfig::C1,
            Some(
                "LwM2M 1.1: Write-Attributes pmin=10&pmax=200 on /3 (OI #234); a Discover of a \
                 resource reports the attributes it inherits. Link parameter order is not \
                 significant: the last answer must hold exactly the link </3/0/7> with \
                 pmin=10, pmax=200, dim=2, lt=1, gt=6, st=1.",
            ),
            |cx| Box::pin(int_260(cx)),
        ),
        case(
            261,
            "Write-Attributes on a multiple resource",
            EtsConfig::C1,
            Some(
                "The three writes are /3?pmin=10, /3/0?pmax=320 and \
                 /3/0/11/0?pmax=100&epmin=1&epmax=20. The final Discover of /3/0/11 must be \
                 exactly </3/0/11>;dim=1;pmin=10;pmax=320,</3/0/11/0>;pmax=100;epmin=1;epmax=20 \
                 (parameter order within a link is not significant; a resource instance is \
                 listed when it carries attributes of its own).",
            ),
            |cx| Box::pin(int_261(cx)),
        ),
    ];
    v.extend(composite::cases());
    v.sort_by_key(|c| c.meta.id);
    v
}

/// A case of this area.
pub(crate) fn case(
    n: u16,
    title: &'static str,
    config: EtsConfig,
    reading: Option<&'static str>,
    body: for<'a> fn(&'a mut CaseContext) -> crate::case::CaseFuture<'a>,
) -> CaseDef {
    CaseDef {
        meta: CaseMeta {
            id: id_of(n),
            title,
            area: Area::DeviceManagement,
            requires: REQUIRES,
            start: StartState::Registered(config),
            timeout: Duration::from_secs(90),
            reading,
            unscaled_timeout: false,
            max_time_scale: None,
        },
        body,
    }
}

/// The static case id `LightweightM2M-1.1-int-<n>`.
pub(crate) fn id_of(n: u16) -> &'static str {
    // Interned once per case: the library is built once (a LazyLock).
    Box::leak(format!("LightweightM2M-1.1-int-{n}").into_boxed_str())
}

// ---- helpers shared with the reporting cases ---------------------------

/// Parses a path written in the case.
pub(crate) fn path(p: &str) -> Result<ObjectPath, CaseFailure> {
    p.parse()
        .map_err(|e| CaseFailure::infra(format!("bad path `{p}` in the case: {e:?}")))
}

fn code_name(c: Code) -> String {
    let name = match (c.class(), c.detail()) {
        (2, 1) => "Created",
        (2, 2) => "Deleted",
        (2, 4) => "Changed",
        (2, 5) => "Content",
        (4, 0) => "Bad Request",
        (4, 1) => "Unauthorized",
        (4, 4) => "Not Found",
        (4, 5) => "Method Not Allowed",
        (4, 6) => "Not Acceptable",
        (4, 15) => "Unsupported Content-Format",
        _ => "",
    };
    if name.is_empty() {
        c.to_string()
    } else {
        format!("{c} {name}")
    }
}

/// The operation's answer, which must carry `code`. `what` names the
/// operation and path (`Read /3/0/0`).
pub(crate) fn expect(
    what: &str,
    result: Result<Response, OpError>,
    code: Code,
) -> Result<Response, CaseFailure> {
    match result {
        Ok(r) if r.code == code => Ok(r),
        Ok(r) => Err(CaseFailure::fail(format!(
            "{what}: expected {}, got {}{}",
            code_name(code),
            code_name(r.code),
            if r.payload.is_empty() || r.code.is_success() {
                String::new()
            } else {
                format!(" ({})", r.text())
            }
        ))),
        Err(e) => Err(CaseFailure::fail(format!(
            "{what}: expected {}, got {e}",
            code_name(code)
        ))),
    }
}

/// Fails if the strict server recorded any deviation for the endpoint.
pub(crate) fn no_deviations(cx: &CaseContext) -> CaseResult {
    let deviations = cx.server.deviations(&cx.endpoint);
    if deviations.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = deviations.iter().map(|d| d.to_string()).collect();
    Err(CaseFailure::fail(format!(
        "the server recorded {} deviation(s) from endpoint `{}`: {}",
        list.len(),
        cx.endpoint,
        list.join("; ")
    )))
}

/// The decoded values of a 2.05, or a failure naming the format.
pub(crate) fn decoded<'a>(what: &str, r: &'a Response) -> Result<&'a [Record], CaseFailure> {
    r.decoded.as_deref().ok_or_else(|| {
        CaseFailure::fail(format!(
            "{what}: the 2.05 payload ({} bytes, Content-Format {}) does not decode",
            r.payload.len(),
            r.content_format
                .map(|c| c.as_u16().to_string())
                .unwrap_or_else(|| "none".into())
        ))
    })
}

/// The value at `path` among `records`.
pub(crate) fn value_at<'a>(records: &'a [Record], path: &ObjectPath) -> Option<&'a Value> {
    records.iter().find(|r| r.path == *path).map(|r| &r.value)
}

/// A numeric value as i64 (integer, unsigned, time, or a whole float).
pub(crate) fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) | Value::Time(i) => Some(*i),
        Value::UnsignedInteger(u) => i64::try_from(*u).ok(),
        Value::Float(f) if f.fract() == 0.0 => Some(*f as i64),
        _ => None,
    }
}

/// Whether `got` is the value `want` (numbers compared as numbers).
pub(crate) fn same_value(got: &Value, want: &Value) -> bool {
    match (as_i64(got), as_i64(want)) {
        (Some(a), Some(b)) => a == b,
        _ => got == want,
    }
}

/// Checks that `records` hold `want` at each path.
pub(crate) fn check_values(
    what: &str,
    records: &[Record],
    want: &[(ObjectPath, Value)],
) -> CaseResult {
    let mut problems = Vec::new();
    for (p, v) in want {
        match value_at(records, p) {
            Some(got) if same_value(got, v) => {}
            Some(got) => problems.push(format!("{p}: expected {v}, saw {got}")),
            None => problems.push(format!("{p}: expected {v}, saw no value")),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CaseFailure::fail(format!(
            "{what}: {}",
            problems.join("; ")
        )))
    }
}

/// Write (partial update) of `records` to `inst` in `format`, which must
/// answer 2.04; `note` follows the path in the failure message (e.g.
/// `" restoring the values"`).
pub(crate) async fn write_partial(
    cx: &CaseContext,
    inst: &ObjectPath,
    format: ContentFormat,
    records: &[Record],
    note: &str,
) -> Result<Response, CaseFailure> {
    let body = encode(format, inst, records)?;
    expect(
        &format!("Write (partial update) {inst}{note} ({})", format.as_u16()),
        cx.server
            .write_partial(&cx.endpoint, inst, format, body)
            .await,
        Code::CHANGED,
    )
}

/// Encodes records for a request body with rig-proto's content formats.
pub(crate) fn encode(
    format: ContentFormat,
    base: &ObjectPath,
    records: &[Record],
) -> Result<Vec<u8>, CaseFailure> {
    rig_proto::content::encode(format, base, records, &Registry::core()).map_err(|e| {
        CaseFailure::infra(format!(
            "cannot encode the case's {format} body for {base}: {e}"
        ))
    })
}

/// Reads `p` with `accept` and expects 2.05.
pub(crate) async fn read(
    cx: &CaseContext,
    p: &str,
    accept: Option<ContentFormat>,
) -> Result<Response, CaseFailure> {
    let target = path(p)?;
    let what = match accept {
        Some(cf) => format!("Read {p} (Accept {})", cf.as_u16()),
        None => format!("Read {p}"),
    };
    expect(
        &what,
        cx.server.read(&cx.endpoint, &target, accept).await,
        Code::CONTENT,
    )
}

/// Writes (replace) one value in `format` and expects 2.04.
pub(crate) async fn write_value(
    cx: &CaseContext,
    p: &str,
    format: ContentFormat,
    value: Value,
) -> CaseResult {
    let target = path(p)?;
    let body = encode(format, &target, &[Record::new(target, value.clone())])?;
    cx.step(format!("writing {p} = {value} ({format})"));
    expect(
        &format!("Write {p} = {value} ({})", format.as_u16()),
        cx.server.write(&cx.endpoint, &target, format, body).await,
        Code::CHANGED,
    )?;
    Ok(())
}

/// Waits for an Update of the endpoint with `lt=lifetime`, promptly.
pub(crate) async fn wait_update_lt(
    cx: &CaseContext,
    events: &mut tokio::sync::broadcast::Receiver<ServerEvent>,
    lifetime: u32,
    after: &str,
) -> CaseResult {
    let wait = prompt_wait(cx, Duration::from_secs(10));
    let ep = cx.endpoint.clone();
    let got = lwm2m::wait_for(events, wait, |e| {
        matches!(e, ServerEvent::Updated { endpoint, update, .. }
            if *endpoint == ep && update.lifetime_s == Some(lifetime))
    })
    .await;
    match got {
        Some(_) => Ok(()),
        None => Err(CaseFailure::fail(format!(
            "expected an Update with lt={lifetime} within {:.1} s of {after}; saw none",
            wait.as_secs_f64()
        ))),
    }
}

fn int(v: i64) -> Value {
    Value::Integer(v)
}

// ---- the cases ------------------------------------------------------------

/// 201: Query basic info, Plain Text.
async fn int_201(cx: &mut CaseContext) -> CaseResult {
    for p in ["/3/0/0", "/3/0/1", "/3/0/2"] {
        cx.step(format!("reading {p} as plain text"));
        let r = read(cx, p, Some(ContentFormat::Text)).await?;
        if r.content_format != Some(ContentFormat::Text) {
            return Err(CaseFailure::fail(format!(
                "Read {p} (Accept 0): expected Content-Format 0 (text/plain), saw {}",
                r.content_format
                    .map(|c| c.as_u16().to_string())
                    .unwrap_or_else(|| "none".into())
            )));
        }
        if std::str::from_utf8(&r.payload).is_err() {
            return Err(CaseFailure::fail(format!(
                "Read {p}: the text/plain payload is not UTF-8: {:02x?}",
                r.payload
            )));
        }
    }
    no_deviations(cx)
}

/// The C.1 content of `/3/0` that 203 and 204 expect.
fn basic_info_check(what: &str, records: &[Record]) -> CaseResult {
    let mut missing = Vec::new();
    for p in ["/3/0/0", "/3/0/1", "/3/0/2", "/3/0/3", "/3/0/11/0"] {
        if value_at(records, &path(p)?).is_none() {
            missing.push(p);
        }
    }
    if !missing.is_empty() {
        return Err(CaseFailure::fail(format!(
            "{what}: expected values at {}, saw none",
            missing.join(", ")
        )));
    }
    check_values(
        what,
        records,
        &[(path("/3/0/16")?, Value::String("U".into()))],
    )
}

/// 203: Query basic info, TLV.
async fn int_203(cx: &mut CaseContext) -> CaseResult {
    cx.step("reading /3/0 as TLV");
    let r = read(cx, "/3/0", Some(ContentFormat::Tlv)).await?;
    let what = "Read /3/0 (Accept 11542)";
    match r.payload.as_slice() {
        [] => return Err(CaseFailure::fail(format!("{what}: empty payload"))),
        [b, rest @ ..] if b >> 6 == 0 => {
            // An Object Instance TLV: its id (8 or 16 bits) must be 0.
            let id = if b & 0x20 == 0 {
                rest.first().map(|x| u16::from(*x))
            } else {
                rest.get(..2).map(|x| u16::from_be_bytes([x[0], x[1]]))
            };
            if id != Some(0) {
                return Err(CaseFailure::fail(format!(
                    "{what}: expected the Object Instance TLV of /3/0, saw one for instance {}",
                    id.map(|i| i.to_string()).unwrap_or_else(|| "?".into())
                )));
            }
        }
        _ => {}
    }
    basic_info_check(what, decoded(what, &r)?)?;
    no_deviations(cx)
}

/// 204: Query basic info, JSON.
async fn int_204(cx: &mut CaseContext) -> CaseResult {
    cx.step("reading /3/0 as LwM2M JSON");
    let r = read(cx, "/3/0", Some(ContentFormat::Lwm2mJson)).await?;
    no_deviations(cx)?;
    let what = "Read /3/0 (Accept 11543)";
    basic_info_check(what, decoded(what, &r)?)?;
    Ok(())
}

/// Writes `values` one by one in `format` (2.04 each).
async fn write_values(
    cx: &CaseContext,
    format: ContentFormat,
    values: &[(&str, Value)],
) -> CaseResult {
    for (p, v) in values {
        write_value(cx, p, format, v.clone()).await?;
    }
    Ok(())
}

/// 205: Set basic info, Plain Text.
async fn int_205(cx: &mut CaseContext) -> CaseResult {
    let set = [
        ("/1/0/2", int(101)),
        ("/1/0/3", int(1010)),
        ("/1/0/5", int(2000)),
    ];
    write_values(cx, ContentFormat::Text, &set).await?;
    for (p, v) in &set {
        let r = read(cx, p, Some(ContentFormat::Text)).await?;
        let what = format!("read-back of {p}");
        check_values(&what, decoded(&what, &r)?, &[(path(p)?, v.clone())])?;
    }
    let restore = [
        ("/1/0/2", int(1)),
        ("/1/0/3", int(10)),
        ("/1/0/5", int(86_400)),
    ];
    write_values(cx, ContentFormat::Text, &restore).await?;
    no_deviations(cx)
}

/// 211: Query basic info, CBOR.
async fn int_211(cx: &mut CaseContext) -> CaseResult {
    let want: [(&str, &[u8]); 3] = [
        ("/1/0/0", &[0x01]),
        ("/1/0/6", &[0xf4]),
        ("/1/0/7", &[0x61, b'U']),
    ];
    for (p, bytes) in want {
        cx.step(format!("reading {p} as CBOR"));
        let r = read(cx, p, Some(ContentFormat::Cbor)).await?;
        if r.payload != bytes {
            return Err(CaseFailure::fail(format!(
                "Read {p} (Accept 60): expected the CBOR item {bytes:02x?}, saw {:02x?}",
                r.payload
            )));
        }
    }
    no_deviations(cx)
}

/// 212: Set basic info, CBOR.
async fn int_212(cx: &mut CaseContext) -> CaseResult {
    let set = [
        ("/1/0/2", int(101)),
        ("/1/0/3", int(1010)),
        ("/1/0/6", Value::Boolean(true)),
    ];
    write_values(cx, ContentFormat::Cbor, &set).await?;
    let r = read(cx, "/1/0", None).await?;
    let mut want: Vec<(ObjectPath, Value)> = Vec::new();
    for (p, v) in &set {
        want.push((path(p)?, v.clone()));
    }
    check_values("read-back of /1/0", decoded("Read /1/0", &r)?, &want)?;
    no_deviations(cx)
}

/// The writable resources of the Server object the ETS cases touch.
const SERVER_WRITABLE: [u16; 6] = [1, 2, 3, 5, 6, 7];

/// 215 and 220: partial update, read, replace with the saved values, read.
async fn set_basic_info(cx: &mut CaseContext, format: ContentFormat) -> CaseResult {
    let inst = path("/1/0")?;
    let saved_resp = read(cx, "/1/0", None).await?;
    let saved: Vec<Record> = decoded("Read /1/0", &saved_resp)?
        .iter()
        .filter(|r| {
            r.path.level() == 3
                && r.path
                    .resource_id()
                    .is_some_and(|id| SERVER_WRITABLE.contains(&id.0))
        })
        .cloned()
        .collect();
    let lifetime_before = value_at(&saved, &path("/1/0/1")?).cloned();
    let update = vec![
        Record::new(path("/1/0/2")?, int(101)),
        Record::new(path("/1/0/3")?, int(1010)),
        Record::new(path("/1/0/5")?, int(2000)),
        Record::new(path("/1/0/6")?, Value::Boolean(true)),
        Record::new(path("/1/0/7")?, Value::String("U".into())),
    ];
    cx.step(format!("partial update of /1/0 in {format}"));
    write_partial(cx, &inst, format, &update, "").await?;
    let r = read(cx, "/1/0", None).await?;
    let mut want: Vec<(ObjectPath, Value)> =
        update.iter().map(|r| (r.path, r.value.clone())).collect();
    if let Some(lt) = lifetime_before {
        // Not carried by the partial update: must be unchanged.
        want.push((path("/1/0/1")?, lt));
    }
    check_values(
        "read after the partial update",
        decoded("Read /1/0", &r)?,
        &want,
    )?;
    cx.step(format!("replacing /1/0 with the saved values in {format}"));
    let body = encode(format, &inst, &saved)?;
    expect(
        &format!("Write (replace) /1/0 ({})", format.as_u16()),
        cx.server.write(&cx.endpoint, &inst, format, body).await,
        Code::CHANGED,
    )?;
    let r = read(cx, "/1/0", None).await?;
    let want: Vec<(ObjectPath, Value)> = saved.iter().map(|r| (r.path, r.value.clone())).collect();
    check_values("read after the replace", decoded("Read /1/0", &r)?, &want)?;
    no_deviations(cx)
}

/// 215: Set basic info, TLV.
async fn int_215(cx: &mut CaseContext) -> CaseResult {
    set_basic_info(cx, ContentFormat::Tlv).await
}

/// 220: Set basic info, JSON.
async fn int_220(cx: &mut CaseContext) -> CaseResult {
    set_basic_info(cx, ContentFormat::Lwm2mJson).await
}

/// 221: Operations on the Security object.
async fn int_221(cx: &mut CaseContext) -> CaseResult {
    let sec = path("/0")?;
    let uri = path("/0/0/0")?;
    cx.step("reading /0");
    expect(
        "Read /0",
        cx.server.read(&cx.endpoint, &sec, None).await,
        Code::UNAUTHORIZED,
    )?;
    cx.step("writing /0/0/0");
    let body = b"coap://192.0.2.1:5683".to_vec();
    expect(
        "Write /0/0/0",
        cx.server
            .write(&cx.endpoint, &uri, ContentFormat::Text, body)
            .await,
        Code::UNAUTHORIZED,
    )?;
    cx.step("Write-Attributes on /0");
    expect(
        "Write-Attributes /0?pmin=10",
        cx.server
            .write_attributes(&cx.endpoint, &sec, "pmin=10")
            .await,
        Code::UNAUTHORIZED,
    )?;
    // 4.01 is the expected answer; the server records nothing for it.
    no_deviations(cx)
}

/// Checks that every value lies under `base` and that `must` is present.
fn all_under(what: &str, records: &[Record], base: &ObjectPath, must: &ObjectPath) -> CaseResult {
    if let Some(r) = records.iter().find(|r| !base.is_prefix_of(&r.path)) {
        return Err(CaseFailure::fail(format!(
            "{what}: expected only values under {base}, saw {}",
            r.path
        )));
    }
    if !records.iter().any(|r| must.is_prefix_of(&r.path)) {
        return Err(CaseFailure::fail(format!(
            "{what}: expected values of {must}, saw none"
        )));
    }
    Ok(())
}

/// 222: Read on Object.
async fn int_222(cx: &mut CaseContext) -> CaseResult {
    for (o, i) in [("/1", "/1/0"), ("/3", "/3/0")] {
        let r = read(cx, o, None).await?;
        let what = format!("Read {o}");
        all_under(&what, decoded(&what, &r)?, &path(o)?, &path(i)?)?;
    }
    no_deviations(cx)
}

/// 223: Read on Object Instance.
async fn int_223(cx: &mut CaseContext) -> CaseResult {
    for i in ["/1/0", "/3/0"] {
        let r = read(cx, i, None).await?;
        let what = format!("Read {i}");
        all_under(&what, decoded(&what, &r)?, &path(i)?, &path(i)?)?;
    }
    no_deviations(cx)
}

/// Checks a Read of a single resource (instance) holds exactly one value there.
fn single_value(what: &str, r: &Response, p: &ObjectPath) -> Result<Value, CaseFailure> {
    let recs = decoded(what, r)?;
    match recs {
        [one] if one.path == *p => Ok(one.value.clone()),
        _ => Err(CaseFailure::fail(format!(
            "{what}: expected exactly one value at {p}, saw {}",
            recs.iter()
                .map(|r| r.path.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// 224: Read on Resource.
async fn int_224(cx: &mut CaseContext) -> CaseResult {
    for p in ["/1/0/0", "/1/0/1", "/1/0/6", "/1/0/7", "/3/0/16"] {
        let r = read(cx, p, None).await?;
        single_value(&format!("Read {p}"), &r, &path(p)?)?;
    }
    no_deviations(cx)
}

/// 225: Read on Resource Instance.
async fn int_225(cx: &mut CaseContext) -> CaseResult {
    let p = "/3/0/11/0";
    let r = read(cx, p, None).await?;
    let v = single_value(&format!("Read {p}"), &r, &path(p)?)?;
    if !same_value(&v, &int(0)) {
        return Err(CaseFailure::fail(format!(
            "Read {p}: expected the C.1 value 0, saw {v}"
        )));
    }
    no_deviations(cx)
}

/// 226: Write (partial update) on Object Instance.
async fn int_226(cx: &mut CaseContext) -> CaseResult {
    let inst = path("/1/0")?;
    let mut events = cx.server.events();
    let recs = [
        Record::new(path("/1/0/1")?, int(65)),
        Record::new(path("/1/0/6")?, Value::Boolean(true)),
    ];
    cx.step("partial update of /1/0: lifetime 65, storing true");
    write_partial(cx, &inst, ContentFormat::Tlv, &recs, "").await?;
    wait_update_lt(cx, &mut events, 65, "the partial update").await?;
    let r = read(cx, "/1/0", None).await?;
    let want: Vec<(ObjectPath, Value)> = recs.iter().map(|r| (r.path, r.value.clone())).collect();
    check_values("read-back of /1/0", decoded("Read /1/0", &r)?, &want)?;
    no_deviations(cx)
}

/// 227: Write (replace) on Resource.
async fn int_227(cx: &mut CaseContext) -> CaseResult {
    let mut events = cx.server.events();
    write_value(cx, "/1/0/1", ContentFormat::Text, int(63)).await?;
    wait_update_lt(cx, &mut events, 63, "the Write").await?;
    let r = read(cx, "/1/0/1", None).await?;
    let v = single_value("Read /1/0/1", &r, &path("/1/0/1")?)?;
    if !same_value(&v, &int(63)) {
        return Err(CaseFailure::fail(format!(
            "Read /1/0/1 after the Write: expected 63, saw {v}"
        )));
    }
    no_deviations(cx)
}

/// 237: Read on Object without Accept.
async fn int_237(cx: &mut CaseContext) -> CaseResult {
    for o in ["/1", "/3"] {
        let r = read(cx, o, None).await?;
        let what = format!("Read {o} (no Accept)");
        match r.content_format {
            Some(
                ContentFormat::Tlv
                | ContentFormat::Lwm2mJson
                | ContentFormat::SenmlJson
                | ContentFormat::SenmlCbor
                | ContentFormat::Lwm2mCbor,
            ) => {}
            other => {
                return Err(CaseFailure::fail(format!(
                    "{what}: expected a multi-value format (11542, 11543, 110, 112, 11544), saw {}",
                    other
                        .map(|c| c.as_u16().to_string())
                        .unwrap_or_else(|| "no Content-Format".into())
                )));
            }
        }
        let inst = format!("{o}/0");
        all_under(&what, decoded(&what, &r)?, &path(o)?, &path(&inst)?)?;
    }
    no_deviations(cx)
}

/// 241: Execute Reboot.
async fn int_241(cx: &mut CaseContext) -> CaseResult {
    let mut events = cx.server.events();
    let before = cx
        .server
        .registration(&cx.endpoint)
        .map(|r| r.registered_at);
    cx.step("executing /3/0/4 (Reboot)");
    expect(
        "Execute /3/0/4",
        cx.server
            .execute(&cx.endpoint, &path("/3/0/4")?, None)
            .await,
        Code::CHANGED,
    )?;
    let wait = prompt_wait(cx, Duration::from_secs(30));
    let ep = cx.endpoint.clone();
    let got = lwm2m::wait_for(
        &mut events,
        wait,
        |e| matches!(e, ServerEvent::Registered { endpoint, .. } if *endpoint == ep),
    )
    .await;
    match got {
        Some(ServerEvent::Registered { registration, .. })
            if Some(registration.registered_at) != before =>
        {
            no_deviations(cx)
        }
        _ => Err(CaseFailure::fail(format!(
            "expected a new Register within {:.1} s of Execute /3/0/4 (Reboot); saw none",
            wait.as_secs_f64()
        ))),
    }
}

/// 256: Write Operation Failure.
async fn int_256(cx: &mut CaseContext) -> CaseResult {
    let ssid = path("/1/0/0")?;
    cx.step("writing the read-only /1/0/0 = 123");
    expect(
        "Write /1/0/0 = 123 (read-only)",
        cx.server
            .write(&cx.endpoint, &ssid, ContentFormat::Text, b"123".to_vec())
            .await,
        Code::METHOD_NOT_ALLOWED,
    )?;
    let r = read(cx, "/1/0/0", None).await?;
    let v = single_value("Read /1/0/0", &r, &ssid)?;
    if !same_value(&v, &int(1)) {
        return Err(CaseFailure::fail(format!(
            "Read /1/0/0 after the refused Write: expected the unchanged value 1, saw {v}"
        )));
    }
    no_deviations(cx)
}

/// One link of a link-format text: target and parameters, split (no
/// parameter values with commas or semicolons occur in Discover answers).
fn parse_links(text: &str) -> Vec<(String, Vec<String>)> {
    text.split(',')
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.trim().split(';');
            let target = parts.next().unwrap_or_default().trim().to_string();
            let mut params: Vec<String> = parts.map(|p| p.trim().to_string()).collect();
            params.sort();
            (target, params)
        })
        .collect()
}

/// Discover `p` and expect 2.05 with a link-format body.
pub(crate) async fn discover(cx: &CaseContext, p: &str) -> Result<String, CaseFailure> {
    cx.step(format!("discovering {p}"));
    let r = expect(
        &format!("Discover {p}"),
        cx.server.discover(&cx.endpoint, &path(p)?).await,
        Code::CONTENT,
    )?;
    Ok(r.text())
}

/// Compares a Discover answer with the expected links (order of parameters
/// within a link not significant).
fn links_equal(what: &str, got: &str, want: &str) -> CaseResult {
    if parse_links(got) == parse_links(want) {
        Ok(())
    } else {
        Err(CaseFailure::fail(format!(
            "{what}: expected `{want}`, saw `{got}`"
        )))
    }
}

/// Write-Attributes with 2.04 expected.
pub(crate) async fn write_attributes(cx: &CaseContext, p: &str, query: &str) -> CaseResult {
    cx.step(format!("Write-Attributes {p}?{query}"));
    expect(
        &format!("Write-Attributes {p}?{query}"),
        cx.server
            .write_attributes(&cx.endpoint, &path(p)?, query)
            .await,
        Code::CHANGED,
    )?;
    Ok(())
}

/// 260: Discover.
async fn int_260(cx: &mut CaseContext) -> CaseResult {
    let obj = discover(cx, "/3").await?;
    let links = parse_links(&obj);
    for r in ["</3/0/6>", "</3/0/7>", "</3/0/8>"] {
        match links.iter().find(|(t, _)| t == r) {
            Some((_, params)) if params.iter().any(|p| p == "dim=2") => {}
            Some(_) => {
                return Err(CaseFailure::fail(format!(
                    "Discover /3: expected {r} with dim=2, saw `{obj}`"
                )));
            }
            None => {
                return Err(CaseFailure::fail(format!(
                    "Discover /3: expected a link {r} (configuration C.4), saw `{obj}`"
                )));
            }
        }
    }
    write_attributes(cx, "/3", "pmin=10&pmax=200").await?;
    let inst = discover(cx, "/3/0").await?;
    if !parse_links(&inst).iter().any(|(t, _)| t == "</3/0/7>") {
        return Err(CaseFailure::fail(format!(
            "Discover /3/0: expected a link </3/0/7>, saw `{inst}`"
        )));
    }
    write_attributes(cx, "/3/0/7", "lt=1&gt=6&st=1").await?;
    let res = discover(cx, "/3/0/7").await?;
    links_equal(
        "Discover /3/0/7",
        &res,
        "</3/0/7>;pmin=10;pmax=200;dim=2;lt=1;gt=6;st=1",
    )?;
    no_deviations(cx)
}

/// 261: Write-Attributes on a multiple resource.
async fn int_261(cx: &mut CaseContext) -> CaseResult {
    let first = discover(cx, "/3/0/11").await?;
    if !parse_links(&first)
        .iter()
        .any(|(t, p)| t == "</3/0/11>" && p.iter().any(|x| x == "dim=1"))
    {
        return Err(CaseFailure::fail(format!(
            "Discover /3/0/11: expected </3/0/11> with dim=1, saw `{first}`"
        )));
    }
    write_attributes(cx, "/3", "pmin=10").await?;
    write_attributes(cx, "/3/0", "pmax=320").await?;
    write_attributes(cx, "/3/0/11/0", "pmax=100&epmin=1&epmax=20").await?;
    let last = discover(cx, "/3/0/11").await?;
    links_equal(
        "Discover /3/0/11",
        &last,
        "</3/0/11>;dim=1;pmin=10;pmax=320,</3/0/11/0>;pmax=100;epmin=1;epmax=20",
    )?;
    no_deviations(cx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_compare_without_parameter_order() {
        assert!(links_equal("d", "</3/0/7>;dim=2;pmin=10", "</3/0/7>;pmin=10;dim=2").is_ok());
        let e = links_equal("d", "</3/0/7>;dim=2", "</3/0/7>;pmin=10;dim=2").unwrap_err();
        assert_eq!(
            e.message,
            "d: expected `</3/0/7>;pmin=10;dim=2`, saw `</3/0/7>;dim=2`"
        );
    }

    #[test]
    fn every_dm_and_reporting_case_is_in_the_library() {
        use crate::case::Area;
        for n in [
            201, 203, 204, 205, 211, 212, 215, 220, 221, 222, 223, 224, 225, 226, 227, 229, 231,
            232, 235, 236, 237, 241, 256, 257, 260, 261, 280, 281,
        ] {
            let id = format!("LightweightM2M-1.1-int-{n}");
            let c = crate::cases::find(&id).unwrap_or_else(|| panic!("{id} missing"));
            assert_eq!(c.meta.area, Area::DeviceManagement, "{id}");
            assert_eq!(c.meta.requires, &["lwm2m"], "{id}");
        }
        for n in [301, 302, 303, 304, 305, 306, 307, 311] {
            let id = format!("LightweightM2M-1.1-int-{n}");
            let c = crate::cases::find(&id).unwrap_or_else(|| panic!("{id} missing"));
            assert_eq!(c.meta.area, Area::InformationReporting, "{id}");
            assert!(
                c.meta.reading.is_some_and(|r| !r.is_empty()),
                "{id} states no reading"
            );
        }
    }

    #[test]
    fn numbers_compare_across_integer_kinds() {
        assert!(same_value(&Value::UnsignedInteger(63), &Value::Integer(63)));
        assert!(!same_value(&Value::Boolean(true), &Value::Integer(1)));
    }
}
