//! The LwM2M 1.1 composite and SenML cases of the device management area:
//! Read-Composite (229, 235, 236, 280, 281), Write-Composite (257) and
//! reads in SenML JSON / CBOR (231, 232).

use rig_services::lwm2m::{Code, ContentFormat, ObjectPath, Record, Response, Value};

use super::{case, check_values, decoded, encode, expect, no_deviations, path, read, value_at};
use crate::case::{CaseContext, CaseDef, CaseFailure, CaseResult, EtsConfig};

/// The composite cases.
pub(crate) fn cases() -> Vec<CaseDef> {
    vec![
        case(
            229,
            "Read-Composite",
            EtsConfig::C1,
            Some(
                "Voided in ETS 1.2.1 in favour of 280, kept for 1.1 clients. The path list \
                 /3, /1/0, /1/0/1, /3/0/11/0 is sent once in SenML JSON and once in SenML \
                 CBOR (request and Accept alike); overlapping paths must give each value \
                 once, every path must be answered and nothing outside them.",
            ),
            |cx| Box::pin(int_229(cx)),
        ),
        case(
            231,
            "Query in SenML JSON",
            EtsConfig::C1,
            Some(
                "Reads /3, /3/0, /3/0/0 and /3/0/11/0 with Accept 110; each answer in 110, values under the path.",
            ),
            |cx| Box::pin(int_231(cx)),
        ),
        case(
            232,
            "Query in SenML CBOR",
            EtsConfig::C1,
            Some(
                "Reads /3, /3/0, /3/0/0 and /3/0/11/0 with Accept 112; each answer in 112, values under the path.",
            ),
            |cx| Box::pin(int_232(cx)),
        ),
        case(
            235,
            "Read-Composite on root path",
            EtsConfig::C1,
            Some(
                "FETCH / (SenML CBOR): the answer must hold the Server and Device values \
                 and nothing of /0 (nor /21, /23).",
            ),
            |cx| Box::pin(int_235(cx)),
        ),
        case(
            236,
            "Read-Composite, partial presence",
            EtsConfig::C1,
            Some(
                "FETCH /1/0/1, /3/0/0, /3339/0/5522, /3353/0/6030 (SenML CBOR): 2.05 with \
                 exactly the values of /1/0/1 and /3/0/0; the missing paths are left out.",
            ),
            |cx| Box::pin(int_236(cx)),
        ),
        case(
            257,
            "Write-Composite (Server + Device)",
            EtsConfig::C1,
            Some(
                "iPATCH / in SenML CBOR sets /1/0/2=5, /1/0/6=true and /3/0/13 (current \
                 time) to a fixed time; each value is read back.",
            ),
            |cx| Box::pin(int_257(cx)),
        ),
        case(
            280,
            "Successful Read-Composite",
            EtsConfig::C1,
            Some(
                "FETCH /3/0/16, /3/0/11/0, /1/0 (SenML CBOR): only values under those paths, \
                 with the C.1 values /3/0/16=\"U\", /3/0/11/0=0, /1/0/0=1, /1/0/1=86400, \
                 /1/0/7=\"U\".",
            ),
            |cx| Box::pin(int_280(cx)),
        ),
        case(
            281,
            "Partially successful Read-Composite",
            EtsConfig::C1,
            Some("FETCH /1/0/1, /1/0/7, /1/0/8 (executable): 2.05 with exactly /1/0/1 and /1/0/7."),
            |cx| Box::pin(int_281(cx)),
        ),
    ]
}

fn paths(list: &[&str]) -> Result<Vec<ObjectPath>, CaseFailure> {
    list.iter().map(|p| path(p)).collect()
}

fn show(list: &[&str]) -> String {
    list.join(", ")
}

fn cf_name(cf: Option<ContentFormat>) -> String {
    cf.map(|c| c.as_u16().to_string())
        .unwrap_or_else(|| "none".into())
}

/// Read-Composite with the list in `format` and Accept `format`; 2.05 in
/// that format expected.
async fn fetch(
    cx: &CaseContext,
    list: &[&str],
    format: ContentFormat,
) -> Result<Response, CaseFailure> {
    cx.step(format!("Read-Composite {} ({format})", show(list)));
    let what = format!("Read-Composite {} ({})", show(list), format.as_u16());
    let r = expect(
        &what,
        cx.server
            .read_composite(&cx.endpoint, &paths(list)?, format, Some(format))
            .await,
        Code::CONTENT,
    )?;
    if r.content_format != Some(format) {
        return Err(CaseFailure::fail(format!(
            "{what}: expected Content-Format {}, saw {}",
            format.as_u16(),
            cf_name(r.content_format)
        )));
    }
    Ok(r)
}

/// Every value lies under one of `list`, and every entry of `must` has a
/// value under it.
fn covers(what: &str, records: &[Record], list: &[&str], must: &[&str]) -> CaseResult {
    let allowed = paths(list)?;
    if let Some(r) = records
        .iter()
        .find(|r| !allowed.iter().any(|a| a.is_prefix_of(&r.path)))
    {
        return Err(CaseFailure::fail(format!(
            "{what}: expected only values under {}, saw {}",
            show(list),
            r.path
        )));
    }
    for m in must {
        let p = path(m)?;
        if !records.iter().any(|r| p.is_prefix_of(&r.path)) {
            return Err(CaseFailure::fail(format!(
                "{what}: expected values under {m}, saw none"
            )));
        }
    }
    Ok(())
}

/// 229: Read-Composite.
async fn int_229(cx: &mut CaseContext) -> CaseResult {
    let list = ["/3", "/1/0", "/1/0/1", "/3/0/11/0"];
    for format in [ContentFormat::SenmlJson, ContentFormat::SenmlCbor] {
        let r = fetch(cx, &list, format).await?;
        let what = format!("Read-Composite ({})", format.as_u16());
        covers(&what, decoded(&what, &r)?, &list, &list)?;
    }
    no_deviations(cx)
}

/// 231 and 232: reads at four levels in a SenML format.
async fn senml_levels(cx: &mut CaseContext, format: ContentFormat) -> CaseResult {
    for p in ["/3", "/3/0", "/3/0/0", "/3/0/11/0"] {
        let r = read(cx, p, Some(format)).await?;
        let what = format!("Read {p} (Accept {})", format.as_u16());
        if r.content_format != Some(format) {
            return Err(CaseFailure::fail(format!(
                "{what}: expected Content-Format {}, saw {}",
                format.as_u16(),
                cf_name(r.content_format)
            )));
        }
        covers(&what, decoded(&what, &r)?, &[p], &[p])?;
    }
    no_deviations(cx)
}

/// 231: Query in SenML JSON.
async fn int_231(cx: &mut CaseContext) -> CaseResult {
    senml_levels(cx, ContentFormat::SenmlJson).await
}

/// 232: Query in SenML CBOR.
async fn int_232(cx: &mut CaseContext) -> CaseResult {
    senml_levels(cx, ContentFormat::SenmlCbor).await
}

/// 235: Read-Composite on root path.
async fn int_235(cx: &mut CaseContext) -> CaseResult {
    let r = fetch(cx, &["/"], ContentFormat::SenmlCbor).await?;
    let what = "Read-Composite /";
    let recs = decoded(what, &r)?;
    for hidden in [0u16, 21, 23] {
        if let Some(rec) = recs
            .iter()
            .find(|r| r.path.object_id().map(|o| o.0) == Some(hidden))
        {
            return Err(CaseFailure::fail(format!(
                "{what}: expected nothing of /{hidden}, saw {}",
                rec.path
            )));
        }
    }
    covers(what, recs, &["/"], &["/1/0/1", "/3/0/0"])?;
    no_deviations(cx)
}

/// 236: Read-Composite, partial presence.
async fn int_236(cx: &mut CaseContext) -> CaseResult {
    let list = ["/1/0/1", "/3/0/0", "/3339/0/5522", "/3353/0/6030"];
    let r = fetch(cx, &list, ContentFormat::SenmlCbor).await?;
    let what = "Read-Composite with missing paths";
    covers(what, decoded(what, &r)?, &list[..2], &list[..2])?;
    no_deviations(cx)
}

/// 257: Write-Composite (Server + Device).
async fn int_257(cx: &mut CaseContext) -> CaseResult {
    let want = [
        (path("/1/0/2")?, Value::Integer(5)),
        (path("/1/0/6")?, Value::Boolean(true)),
        (path("/3/0/13")?, Value::Time(1_700_000_000)),
    ];
    let records: Vec<Record> = want
        .iter()
        .map(|(p, v)| Record::new(*p, v.clone()))
        .collect();
    let body = encode(ContentFormat::SenmlCbor, &ObjectPath::Root, &records)?;
    cx.step("Write-Composite /1/0/2, /1/0/6, /3/0/13");
    expect(
        "Write-Composite /1/0/2, /1/0/6, /3/0/13 (112)",
        cx.server
            .write_composite(&cx.endpoint, ContentFormat::SenmlCbor, body)
            .await,
        Code::CHANGED,
    )?;
    for (p, v) in &want {
        let r = read(cx, &p.to_string(), None).await?;
        let what = format!("read-back of {p}");
        check_values(&what, decoded(&what, &r)?, &[(*p, v.clone())])?;
    }
    no_deviations(cx)
}

/// 280: Successful Read-Composite.
async fn int_280(cx: &mut CaseContext) -> CaseResult {
    let list = ["/3/0/16", "/3/0/11/0", "/1/0"];
    let r = fetch(cx, &list, ContentFormat::SenmlCbor).await?;
    let what = "Read-Composite /3/0/16, /3/0/11/0, /1/0";
    let recs = decoded(what, &r)?;
    covers(what, recs, &list, &list)?;
    check_values(
        what,
        recs,
        &[
            (path("/3/0/16")?, Value::String("U".into())),
            (path("/3/0/11/0")?, Value::Integer(0)),
            (path("/1/0/0")?, Value::Integer(1)),
            (path("/1/0/1")?, Value::Integer(86_400)),
            (path("/1/0/7")?, Value::String("U".into())),
        ],
    )?;
    no_deviations(cx)
}

/// 281: Partially successful Read-Composite.
async fn int_281(cx: &mut CaseContext) -> CaseResult {
    let list = ["/1/0/1", "/1/0/7", "/1/0/8"];
    let r = fetch(cx, &list, ContentFormat::SenmlCbor).await?;
    let what = "Read-Composite /1/0/1, /1/0/7, /1/0/8";
    let recs = decoded(what, &r)?;
    covers(what, recs, &list[..2], &list[..2])?;
    if value_at(recs, &path("/1/0/8")?).is_some() {
        return Err(CaseFailure::fail(format!(
            "{what}: expected no value for the executable /1/0/8"
        )));
    }
    no_deviations(cx)
}
