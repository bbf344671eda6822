//! The MachNation table: rig's figures for each scenario and variant, with
//! the 2020 study's figures beside them and the % difference.
//!
//! Cases are found by id, `machnation.<scenario>.<variant>` (and
//! `machnation.<scenario>.compare` for the LwM2M ÷ MQTT ratios), and read
//! through their measurements (`machnation.bytes`, `machnation.packets.up`,
//! `power.energy_wh`, `ratio.bytes.mqtt-aws`...). A name that is absent is
//! shown as `–`; a run without any such case has no table at all.
//!
//! The study's figures come from `fixtures/machnation/study.toml`, compiled
//! in, each with the line of the reference it was transcribed from.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::events::{CaseRecord, Verdict};

/// The study file, compiled in.
const STUDY_TOML: &str = include_str!("../../../fixtures/machnation/study.toml");

/// The scenarios, in the study's order.
pub const SCENARIOS: [&str; 9] = [
    "initial-connection",
    "steady-state",
    "observation",
    "write",
    "ota",
    "power-idle",
    "power-1s",
    "power-30s",
    "power-60s",
];

/// The variants rig runs, LwM2M first.
pub const VARIANTS: [&str; 3] = ["lwm2m", "mqtt-aws", "mqtt-plain"];

/// The traffic metrics of the table: (key in the study file and after
/// `machnation.`, column heading).
pub const METRICS: [(&str, &str); 8] = [
    ("bytes", "Bytes"),
    ("packets", "Packets"),
    ("avg_packet_len", "Avg packet (B)"),
    ("bytes.up", "Bytes up"),
    ("bytes.down", "Bytes down"),
    ("packets.up", "Packets up"),
    ("packets.down", "Packets down"),
    ("burstiness", "Burstiness"),
];

/// One figure of the study.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Figure {
    /// Scenario, e.g. `observation`.
    pub scenario: String,
    /// Variant, `lwm2m` or `mqtt-aws`.
    pub variant: String,
    /// Metric key (see [`METRICS`], or `energy_wh`).
    pub metric: String,
    /// The figure.
    pub value: f64,
    /// True when computed from the study's words rather than printed.
    #[serde(default)]
    pub derived: bool,
    /// The reference line it comes from.
    pub source: String,
}

/// Why rig's figures may differ from the study's in one scenario.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Note {
    /// Scenario.
    pub scenario: String,
    /// The explanation.
    pub text: String,
}

/// The study's figures and notes.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Study {
    /// Figures.
    #[serde(default, rename = "figure")]
    pub figures: Vec<Figure>,
    /// Notes.
    #[serde(default, rename = "note")]
    pub notes: Vec<Note>,
}

impl Study {
    /// Parses a study file; the error names the line and field.
    pub fn parse(text: &str) -> Result<Study, String> {
        toml::from_str(text).map_err(|e| format!("fixtures/machnation/study.toml: {e}"))
    }

    /// The compiled-in study (an error text if it does not parse, which a
    /// unit test rules out).
    pub fn builtin() -> &'static Result<Study, String> {
        static STUDY: OnceLock<Result<Study, String>> = OnceLock::new();
        STUDY.get_or_init(|| Study::parse(STUDY_TOML))
    }

    /// A figure, if the study has one.
    pub fn figure(&self, scenario: &str, variant: &str, metric: &str) -> Option<&Figure> {
        self.figures
            .iter()
            .find(|f| f.scenario == scenario && f.variant == variant && f.metric == metric)
    }

    /// The note of a scenario.
    pub fn note(&self, scenario: &str) -> Option<&str> {
        self.notes
            .iter()
            .find(|n| n.scenario == scenario)
            .map(|n| n.text.as_str())
    }
}

/// One MachNation case of the run.
#[derive(Clone, Debug, PartialEq)]
pub struct Row<'a> {
    /// Scenario (the id's second part).
    pub scenario: String,
    /// Variant (the rest of the id), or `compare`.
    pub variant: String,
    /// Index of the case in the run.
    pub index: usize,
    /// The case.
    pub case: &'a CaseRecord,
}

impl Row<'_> {
    /// A measurement by full name; `None` when absent or not finite.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.case
            .measurements
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
            .filter(|v| v.is_finite())
    }

    /// A traffic metric (`machnation.<metric>`).
    pub fn metric(&self, metric: &str) -> Option<f64> {
        self.get(&format!("machnation.{metric}"))
    }

    /// Energy over the scenario's window (mJ): the case's
    /// `machnation.power.energy_mj`, else the whole case's `power.energy_mj`.
    pub fn energy_mj(&self) -> Option<f64> {
        self.get("machnation.power.energy_mj")
            .or_else(|| self.get("power.energy_mj"))
    }

    /// Energy over the study's 10-minute window (Wh), to set beside the
    /// study's: the energy model's at real time
    /// (`machnation.power.model.energy_wh`, a modelled meter), else
    /// `machnation.power.study_window.energy_wh` (mean power × the study's
    /// window), else the whole case's `power.energy_wh`.
    pub fn energy_wh_study(&self) -> Option<f64> {
        self.get("machnation.power.model.energy_wh")
            .or_else(|| self.get("machnation.power.study_window.energy_wh"))
            .or_else(|| self.get("power.energy_wh"))
    }

    /// Whether this case produced figures (it ran and was applicable).
    pub fn ran(&self) -> bool {
        self.case.ran && self.case.verdict != Verdict::NotApplicable
    }
}

fn scenario_rank(s: &str) -> usize {
    SCENARIOS
        .iter()
        .position(|x| *x == s)
        .unwrap_or(SCENARIOS.len())
}

fn variant_rank(v: &str) -> usize {
    VARIANTS
        .iter()
        .position(|x| *x == v)
        .unwrap_or(if v == "compare" { 100 } else { VARIANTS.len() })
}

/// The MachNation cases of a run, sorted by scenario (study order) and
/// variant (LwM2M first, `compare` last).
pub fn rows(cases: &[CaseRecord]) -> Vec<Row<'_>> {
    let mut rows: Vec<Row<'_>> = cases
        .iter()
        .enumerate()
        .filter_map(|(index, case)| {
            let rest = case.id.strip_prefix("machnation.")?;
            let (scenario, variant) = rest.split_once('.')?;
            if scenario.is_empty() || variant.is_empty() {
                return None;
            }
            Some(Row {
                scenario: scenario.to_string(),
                variant: variant.to_string(),
                index,
                case,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        (
            scenario_rank(&a.scenario),
            &a.scenario,
            variant_rank(&a.variant),
            &a.variant,
        )
            .cmp(&(
                scenario_rank(&b.scenario),
                &b.scenario,
                variant_rank(&b.variant),
                &b.variant,
            ))
    });
    rows
}

/// Is this a power scenario (energy, not traffic, is its point)?
pub fn is_power(scenario: &str) -> bool {
    scenario.starts_with("power")
}

/// `(ours - study) / study` in %, or `None` when either is missing or the
/// study's figure is zero (then only equality makes sense: 0 %).
pub fn diff_pct(ours: Option<f64>, study: Option<f64>) -> Option<f64> {
    let (o, s) = (ours?, study?);
    if s == 0.0 {
        return (o == 0.0).then_some(0.0);
    }
    let d = (o - s) / s * 100.0;
    d.is_finite().then_some(d)
}

/// A % difference for display: `+12.3 %`, `−4.0 %`, `–` when absent.
pub fn pct(d: Option<f64>) -> String {
    match d {
        None => "–".to_string(),
        Some(d) if d.abs() < 0.05 => "0.0 %".to_string(),
        Some(d) if d > 0.0 => format!("+{d:.1} %"),
        Some(d) => format!("−{:.1} %", -d),
    }
}

/// Scenarios present in the rows, in order, each with its rows.
pub fn by_scenario<'r, 'a>(rows: &'r [Row<'a>]) -> BTreeMap<(usize, String), Vec<&'r Row<'a>>> {
    let mut out: BTreeMap<(usize, String), Vec<&Row<'a>>> = BTreeMap::new();
    for r in rows {
        out.entry((scenario_rank(&r.scenario), r.scenario.clone()))
            .or_default()
            .push(r);
    }
    out
}

/// A table as text cells, rendered by the Markdown and HTML reporters with
/// their own escaping.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    /// Column headings.
    pub head: Vec<String>,
    /// Rows of cells (as many as headings). The first cell of a row is a
    /// case id link target: `(index of the case, text)`.
    pub rows: Vec<(usize, Vec<String>)>,
}

/// The tables of a run: traffic, power and comparison ratios, and the notes
/// of the scenarios present. Empty tables have no rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tables {
    /// Bytes, packets, average length, direction split, burstiness.
    pub traffic: Table,
    /// Energy per power scenario.
    pub power: Table,
    /// The `compare` cases' ratios, with the study's ratio where it has both figures.
    pub compare: Table,
    /// `(scenario, why we differ)` for the scenarios present.
    pub notes: Vec<(String, String)>,
    /// Set when the study file could not be read (then no study columns).
    pub study_error: Option<String>,
}

fn ours(v: Option<f64>) -> String {
    v.map(crate::svg::num).unwrap_or_else(|| "–".to_string())
}

fn theirs(f: Option<&Figure>) -> String {
    match f {
        None => "–".to_string(),
        Some(f) if f.derived => format!("≈{}", crate::svg::num(f.value)),
        Some(f) => crate::svg::num(f.value),
    }
}

/// Builds the tables from the run's MachNation rows.
pub fn tables(rows: &[Row<'_>]) -> Tables {
    let empty = Study::default();
    let (study, study_error) = match Study::builtin() {
        Ok(s) => (s, None),
        Err(e) => (&empty, Some(e.clone())),
    };
    let mut t = Tables {
        study_error,
        ..Tables::default()
    };
    t.traffic.head = ["Scenario", "Variant", "Verdict"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for (key, heading) in METRICS {
        t.traffic.head.push(heading.to_string());
        if !key.starts_with("packets.") && key != "burstiness" {
            t.traffic.head.push("Study".into());
            t.traffic.head.push("Δ".into());
        }
    }
    t.power.head = [
        "Scenario",
        "Variant",
        "Verdict",
        "Energy in window (mJ)",
        "Energy, 10 min (Wh)",
        "Study (Wh)",
        "Δ",
        "Avg current (mA)",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    t.compare.head = [
        "Scenario",
        "Ratio (LwM2M ÷ MQTT)",
        "Value",
        "Study",
        "Verdict",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for r in rows {
        let verdict = if r.case.ran {
            r.case.verdict.as_str().replace('_', " ")
        } else {
            "not run".to_string()
        };
        if r.variant == "compare" {
            for m in r
                .case
                .measurements
                .iter()
                .filter(|m| m.name.starts_with("ratio."))
            {
                // ratio.<metric>.<mqtt-variant>
                let mut parts = m.name.splitn(3, '.').skip(1);
                let (metric, variant) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let study_key = if metric == "energy" {
                    "energy_wh"
                } else {
                    metric
                };
                let s = match (
                    study.figure(&r.scenario, "lwm2m", study_key),
                    study.figure(&r.scenario, variant, study_key),
                ) {
                    (Some(l), Some(q)) if q.value != 0.0 => {
                        format!(
                            "≈{}",
                            crate::svg::num((l.value / q.value * 1000.0).round() / 1000.0)
                        )
                    }
                    _ => "–".to_string(),
                };
                t.compare.rows.push((
                    r.index,
                    vec![
                        r.scenario.clone(),
                        m.name.clone(),
                        ours(Some(m.value).filter(|v| v.is_finite())),
                        s,
                        verdict.clone(),
                    ],
                ));
            }
            continue;
        }
        if is_power(&r.scenario) {
            let wh = r.energy_wh_study();
            let f = study.figure(&r.scenario, &r.variant, "energy_wh");
            t.power.rows.push((
                r.index,
                vec![
                    r.scenario.clone(),
                    r.variant.clone(),
                    verdict.clone(),
                    ours(r.energy_mj()),
                    ours(wh),
                    theirs(f),
                    pct(diff_pct(wh, f.map(|f| f.value))),
                    ours(r.get("power.avg_ma")),
                ],
            ));
            // A power case that also counted traffic goes in both tables.
            if r.metric("bytes").is_none() {
                continue;
            }
        }
        let mut cells = vec![r.scenario.clone(), r.variant.clone(), verdict];
        for (key, _) in METRICS {
            let o = r.metric(key);
            cells.push(ours(o));
            if !key.starts_with("packets.") && key != "burstiness" {
                let f = study.figure(&r.scenario, &r.variant, key);
                cells.push(theirs(f));
                cells.push(pct(diff_pct(o, f.map(|f| f.value))));
            }
        }
        t.traffic.rows.push((r.index, cells));
    }
    let mut seen: Vec<&str> = Vec::new();
    for r in rows {
        if !seen.contains(&r.scenario.as_str()) {
            seen.push(&r.scenario);
            if let Some(n) = study.note(&r.scenario) {
                t.notes.push((r.scenario.clone(), n.to_string()));
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Measurement, PlannedCase};

    #[test]
    fn the_builtin_study_parses_and_every_figure_names_a_known_cell() {
        let study = Study::builtin().as_ref().unwrap();
        assert!(study.figures.len() >= 30, "{}", study.figures.len());
        for f in &study.figures {
            assert!(SCENARIOS.contains(&f.scenario.as_str()), "{f:?}");
            assert!(["lwm2m", "mqtt-aws"].contains(&f.variant.as_str()), "{f:?}");
            assert!(
                METRICS.iter().any(|(k, _)| *k == f.metric) || f.metric == "energy_wh",
                "{f:?}"
            );
            assert!(f.source.starts_with("machnation-2020.md:"), "{f:?}");
            assert!(f.value.is_finite() && f.value >= 0.0, "{f:?}");
        }
        // The calibration figures of issue 8.
        let get = |s, v, m| study.figure(s, v, m).map(|f| f.value);
        assert_eq!(get("steady-state", "lwm2m", "bytes"), Some(179.0));
        assert_eq!(get("steady-state", "mqtt-aws", "packets"), Some(3.0));
        assert_eq!(get("observation", "mqtt-aws", "bytes"), Some(15394.0));
        assert!(study.note("ota").is_some());
    }

    #[test]
    fn a_bad_study_file_names_the_field() {
        let err = Study::parse("[[figure]]\nscenario = \"x\"\nvariant = 3\n").unwrap_err();
        assert!(err.contains("variant"), "{err}");
        assert!(err.contains("line 3") || err.contains("3 |"), "{err}");
    }

    #[test]
    fn rows_are_found_by_id_and_sorted_in_study_order() {
        let mk = |id: &str| {
            let mut c = CaseRecord::not_run(
                &PlannedCase {
                    id: id.into(),
                    title: id.into(),
                    suite: "machnation".into(),
                },
                "x",
            );
            c.ran = true;
            c.verdict = Verdict::Pass;
            c.measurements.push(Measurement {
                name: "machnation.bytes".into(),
                unit: "B".into(),
                value: 10.0,
                limits: None,
            });
            c
        };
        let cases = vec![
            mk("machnation.observation.compare"),
            mk("LightweightM2M-1.1-int-101"),
            mk("machnation.observation.mqtt-aws"),
            mk("machnation.steady-state.lwm2m"),
            mk("machnation.observation.lwm2m"),
            mk("machnation."),
        ];
        let r = rows(&cases);
        let ids: Vec<_> = r.iter().map(|r| r.case.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "machnation.steady-state.lwm2m",
                "machnation.observation.lwm2m",
                "machnation.observation.mqtt-aws",
                "machnation.observation.compare"
            ]
        );
        assert_eq!(r[0].metric("bytes"), Some(10.0));
        assert_eq!(r[0].metric("packets"), None);
    }

    #[test]
    fn differences() {
        assert_eq!(diff_pct(Some(110.0), Some(100.0)), Some(10.0));
        assert_eq!(diff_pct(Some(0.0), Some(0.0)), Some(0.0));
        assert_eq!(diff_pct(Some(1.0), Some(0.0)), None);
        assert_eq!(diff_pct(None, Some(1.0)), None);
        assert_eq!(pct(Some(-4.0)), "−4.0 %");
        assert_eq!(pct(Some(12.34)), "+12.3 %");
        assert_eq!(pct(None), "–");
    }
}
