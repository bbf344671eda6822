//! The FOTA interruption table: each delivery path × each interruption, with
//! the extra bytes, duplicated payload, extra handshakes and extra time
//! against the path's uninterrupted baseline, and whether the image arrived
//! intact; plus a chart of the extra bytes.
//!
//! Cases are found by id, `fota.<path>.<interruption>` (see
//! `rig/suite/src/cases/fota/interrupt.rs`), and read through their
//! measurements (`fota.extra_bytes`, `fota.duplicated_payload_bytes`,
//! `fota.extra_handshakes`, `fota.extra_time_s`, `fota.time_to_complete_s`,
//! `fota.image_intact`). A missing figure shows as `–`; a run without such a
//! case has no table.
//!
//! Next to the table, the floor ratio of the CoAPS Block2 pull (issue 7
//! item 7, case [`FLOOR_CASE`]): bytes on the wire over the minimum the
//! framing allows (`fota.floor_ratio`, `fota.wire_bytes`,
//! `fota.floor_bytes`, `fota.session_setup_bytes`).

use std::fmt::Write as _;

use crate::events::{CaseRecord, Verdict};
use crate::svg::{self, Bar, Group};

/// The delivery paths, in table order.
pub const PATHS: [&str; 6] = [
    "lwm2m-coap-block2",
    "lwm2m-http-range",
    "lwm2m-push-block1",
    "mqtt-https",
    "mqtt-https-range",
    "mqtt-stream",
];

/// The interruptions, in table order.
pub const INTERRUPTIONS: [&str; 8] = [
    "baseline",
    "cut-5s",
    "cut-60s",
    "cut-300s",
    "restart",
    "nat-rebind",
    "etag-change",
    "weak-etag-restart",
];

/// One row: a case of the matrix and its figures.
#[derive(Clone, Debug)]
pub struct Row<'a> {
    /// Delivery path.
    pub path: &'static str,
    /// Interruption.
    pub interruption: &'static str,
    /// The case record.
    pub case: &'a CaseRecord,
}

impl Row<'_> {
    /// A measurement by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.case
            .measurements
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }
}

/// The matrix's cases in table order (path, then interruption).
pub fn rows(cases: &[CaseRecord]) -> Vec<Row<'_>> {
    let mut out = Vec::new();
    for (pi, path) in PATHS.iter().enumerate() {
        for (ii, i) in INTERRUPTIONS.iter().enumerate() {
            let id = format!("fota.{path}.{i}");
            if let Some(c) = cases.iter().find(|c| c.id == id) {
                out.push((
                    (pi, ii),
                    Row {
                        path,
                        interruption: i,
                        case: c,
                    },
                ));
            }
        }
    }
    out.sort_by_key(|(k, _)| *k);
    out.into_iter().map(|(_, r)| r).collect()
}

/// The table's heading.
pub const HEAD: [&str; 9] = [
    "Path",
    "Interruption",
    "Verdict",
    "Extra bytes",
    "Duplicated payload (B)",
    "Extra handshakes",
    "Extra time (s)",
    "Time (s)",
    "Image intact",
];

/// The case that measures the CoAPS Block2 pull against its framing floor.
pub const FLOOR_CASE: &str = "fota.lwm2m-coaps-block2.floor";

/// The floor sentence (plain text), or `None` when the run has no floor case.
pub fn floor_line(cases: &[CaseRecord]) -> Option<String> {
    let c = cases.iter().find(|c| c.id == FLOOR_CASE)?;
    let get = |n: &str| {
        c.measurements
            .iter()
            .find(|m| m.name == n)
            .map(|m| m.value)
            .filter(|v| v.is_finite())
    };
    let verdict = c.verdict.as_str().replace('_', " ");
    let ran = c.ran && c.verdict != Verdict::NotApplicable;
    Some(match (ran, get("fota.floor_ratio")) {
        (true, Some(ratio)) => format!(
            "CoAPS Block2 floor ratio: {ratio:.4} ({} B on the wire against a floor of {} B for \
             the 1 MiB image in 1024-byte blocks over DTLS with CCM_8; the DTLS handshake, {} B, \
             is left out; limit 1.02): {verdict}.",
            fmt(get("fota.wire_bytes")),
            fmt(get("fota.floor_bytes")),
            fmt(get("fota.session_setup_bytes")),
        ),
        _ => {
            let why = if c.message.is_empty() {
                String::new()
            } else {
                format!(" ({})", c.message)
            };
            format!("CoAPS Block2 floor ratio: – ({verdict}{why}).")
        }
    })
}

fn fmt(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => {
            if (x - x.round()).abs() < 1e-9 {
                format!("{}", x.round() as i64)
            } else {
                format!("{x:.1}")
            }
        }
        _ => "–".to_string(),
    }
}

/// The table's cells, one row per case.
pub fn cells(rows: &[Row<'_>]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| {
            let ran = r.case.ran && r.case.verdict != Verdict::NotApplicable;
            let get = |n: &str| if ran { r.get(n) } else { None };
            vec![
                r.path.to_string(),
                r.interruption.to_string(),
                r.case.verdict.as_str().replace('_', " "),
                fmt(get("fota.extra_bytes")),
                fmt(get("fota.duplicated_payload_bytes")),
                fmt(get("fota.extra_handshakes")),
                fmt(get("fota.extra_time_s")),
                fmt(get("fota.time_to_complete_s")),
                match get("fota.image_intact") {
                    Some(v) if v >= 0.5 => "yes".into(),
                    Some(_) => "no".into(),
                    None => "–".into(),
                },
            ]
        })
        .collect()
}

fn md_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown section (nothing when the run has no matrix case).
pub fn markdown(md: &mut String, cases: &[CaseRecord]) {
    let rows = rows(cases);
    let floor = floor_line(cases);
    if rows.is_empty() {
        if let Some(f) = floor {
            let _ = writeln!(
                md,
                "\n## Firmware update: CoAPS Block2 floor\n\n{}",
                md_cell(&f)
            );
        }
        return;
    }
    let _ = writeln!(md, "\n## Firmware update under interruption\n");
    let _ = writeln!(
        md,
        "Each delivery path × each interruption at 50% of the 1 MiB image, against the same \
         path's uninterrupted baseline. Extra bytes are whole Ethernet frames both ways on the \
         simulated network (file bytes served on loopback). Chart: \
         [report.html](report.html#fota).\n"
    );
    let _ = writeln!(md, "| {} |", HEAD.join(" | "));
    let _ = writeln!(
        md,
        "|{}",
        HEAD.iter()
            .enumerate()
            .map(|(i, _)| if i < 3 { "---|" } else { "---:|" })
            .collect::<String>()
    );
    for c in cells(&rows) {
        let _ = writeln!(
            md,
            "| {} |",
            c.iter().map(|x| md_cell(x)).collect::<Vec<_>>().join(" | ")
        );
    }
    if let Some(f) = floor {
        let _ = writeln!(md, "\n{}", md_cell(&f));
    }
}

/// The HTML section with its chart (nothing without a matrix case).
pub fn html(html: &mut String, cases: &[CaseRecord]) {
    let rows = rows(cases);
    let floor = floor_line(cases)
        .map(|f| format!("<p id=\"fota-floor\">{}</p>\n", svg::esc(&f)))
        .unwrap_or_default();
    if rows.is_empty() {
        if !floor.is_empty() {
            html.push_str("<h2 id=\"fota\">Firmware update: CoAPS Block2 floor</h2>\n");
            html.push_str(&floor);
        }
        return;
    }
    html.push_str("<h2 id=\"fota\">Firmware update under interruption</h2>\n");
    html.push_str(
        "<p>Each delivery path × each interruption at 50% of the 1 MiB image, against the same \
         path's uninterrupted baseline. Extra bytes are whole Ethernet frames both ways on the \
         simulated network (file bytes served on loopback).</p>\n",
    );
    html.push_str("<div class=\"scroll\"><table><tr>");
    for h in HEAD {
        let _ = write!(html, "<th>{}</th>", svg::esc(h));
    }
    html.push_str("</tr>\n");
    for c in cells(&rows) {
        html.push_str("<tr>");
        for (i, x) in c.iter().enumerate() {
            let class = if i >= 3 { " class=\"n\"" } else { "" };
            let _ = write!(html, "<td{class}>{}</td>", svg::esc(x));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table></div>\n");
    html.push_str(&floor);
    let groups = chart_groups(&rows);
    html.push_str("<div class=\"charts\">\n");
    html.push_str(&svg::bars(
        "bars",
        "fota-extra-bytes",
        "Extra bytes per interruption",
        "B",
        &groups,
    ));
    html.push_str("</div>\n");
}

/// One group per interruption, one bar per path (its extra bytes).
pub fn chart_groups(rows: &[Row<'_>]) -> Vec<Group> {
    INTERRUPTIONS
        .iter()
        .filter(|i| **i != "baseline")
        .filter_map(|i| {
            let bars: Vec<Bar> = rows
                .iter()
                .filter(|r| r.interruption == *i && r.case.verdict != Verdict::NotApplicable)
                .filter_map(|r| {
                    Some(Bar {
                        label: r.path.to_string(),
                        value: r.get("fota.extra_bytes")?,
                        class: r.path.to_string(),
                    })
                })
                .collect();
            (!bars.is_empty()).then(|| Group {
                label: (*i).to_string(),
                bars,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Measurement;

    fn case(id: &str, verdict: Verdict, m: &[(&str, f64)]) -> CaseRecord {
        CaseRecord {
            id: id.into(),
            title: "t".into(),
            suite: "fota".into(),
            verdict,
            duration_s: 1.0,
            message: String::new(),
            measurements: m
                .iter()
                .map(|(n, v)| Measurement {
                    name: (*n).into(),
                    unit: "B".into(),
                    value: *v,
                    limits: None,
                })
                .collect(),
            artifacts: Vec::new(),
            ran: true,
            reading: None,
            console_tail: String::new(),
            started_at: None,
        }
    }

    #[test]
    fn the_table_orders_paths_and_interruptions_and_shows_missing_figures() {
        let cases = vec![
            case("LightweightM2M-1.1-int-101", Verdict::Pass, &[]),
            case(
                "fota.mqtt-https.restart",
                Verdict::Pass,
                &[("fota.extra_bytes", 560_000.0), ("fota.image_intact", 1.0)],
            ),
            case(
                "fota.lwm2m-coap-block2.cut-5s",
                Verdict::Pass,
                &[
                    ("fota.extra_bytes", 1500.0),
                    ("fota.extra_time_s", 5.26),
                    ("fota.image_intact", 1.0),
                ],
            ),
            case(
                "fota.lwm2m-coap-block2.nat-rebind",
                Verdict::NotApplicable,
                &[],
            ),
        ];
        let rows = rows(&cases);
        let ids: Vec<_> = rows.iter().map(|r| r.case.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "fota.lwm2m-coap-block2.cut-5s",
                "fota.lwm2m-coap-block2.nat-rebind",
                "fota.mqtt-https.restart"
            ]
        );
        let c = cells(&rows);
        assert_eq!(c[0][3], "1500");
        assert_eq!(c[0][6], "5.3");
        assert_eq!(c[0][8], "yes");
        assert_eq!(c[1][3], "–");
        let mut md = String::new();
        markdown(&mut md, &cases);
        assert!(
            md.contains("| lwm2m-coap-block2 | cut-5s | pass | 1500 |"),
            "{md}"
        );
        let mut h = String::new();
        html(&mut h, &cases);
        assert!(h.contains("id=\"fota\""));
        assert!(h.contains("<svg"));
        let g = chart_groups(&rows);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].label, "cut-5s");
    }

    #[test]
    fn the_floor_ratio_is_printed_next_to_the_table_or_alone() {
        let floor = case(
            FLOOR_CASE,
            Verdict::Pass,
            &[
                ("fota.floor_bytes", 1_214_432.0),
                ("fota.wire_bytes", 1_232_221.0),
                ("fota.session_setup_bytes", 1130.0),
                ("fota.floor_ratio", 1.014_648),
            ],
        );
        let line = "CoAPS Block2 floor ratio: 1.0146 (1232221 B on the wire against a floor of \
                    1214432 B";
        let mut md = String::new();
        markdown(&mut md, std::slice::from_ref(&floor));
        assert!(
            md.contains("## Firmware update: CoAPS Block2 floor"),
            "{md}"
        );
        assert!(md.contains(line), "{md}");
        assert!(
            md.contains("1130 B, is left out; limit 1.02): pass."),
            "{md}"
        );
        let with_table = vec![
            case(
                "fota.lwm2m-coap-block2.baseline",
                Verdict::Pass,
                &[("fota.image_intact", 1.0)],
            ),
            floor.clone(),
        ];
        let mut md = String::new();
        markdown(&mut md, &with_table);
        let table = md.find("| lwm2m-coap-block2 | baseline |").unwrap();
        assert!(md.find(line).unwrap() > table, "{md}");
        let mut h = String::new();
        html(&mut h, &with_table);
        assert!(h.contains("<p id=\"fota-floor\">"), "{h}");
        assert!(h.contains(line), "{h}");
        let mut h = String::new();
        html(&mut h, std::slice::from_ref(&floor));
        assert!(h.contains(line), "{h}");
        // Not applicable (loopback): no figure, the reason instead.
        let mut na = case(FLOOR_CASE, Verdict::NotApplicable, &[]);
        na.message = "needs the simulated network".into();
        assert_eq!(
            floor_line(&[na]).unwrap(),
            "CoAPS Block2 floor ratio: – (not applicable (needs the simulated network))."
        );
    }

    #[test]
    fn no_matrix_case_no_section() {
        let mut md = String::new();
        markdown(&mut md, &[case("x", Verdict::Pass, &[])]);
        assert!(md.is_empty());
    }
}
