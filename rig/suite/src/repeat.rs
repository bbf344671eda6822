//! `rig run --repeat N`: each selected case runs N times (ids `<id>#1` to
//! `<id>#N`, see [`crate::engine::Plan::repeated`]); this module sums the
//! runs up per case into a pass rate, for the stdout summary, report.md and
//! the `repeat` key of run.json (documented in reports/README.md).

use std::collections::BTreeMap;

use rig_report::events::{CaseRecord, Verdict};

/// The runs of one case.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct PassRate {
    /// How many runs finished (any verdict but not-run).
    pub runs: u32,
    /// How many passed (Not Applicable counts as neither passed nor failed,
    /// and is left out of `runs`).
    pub passed: u32,
    /// `passed / runs` (0 when no run counted).
    pub pass_rate: f64,
    /// The verdicts of the runs that did not pass: `#k` → verdict and message.
    pub failures: BTreeMap<String, String>,
}

/// The case id of a run id: `X#3` → `X` (ids without `#k` are their own).
pub fn case_of(run_id: &str) -> &str {
    match run_id.rsplit_once('#') {
        Some((id, k)) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) => id,
        _ => run_id,
    }
}

/// Pass rates per case id over the run records, in id order.
pub fn pass_rates(records: &[CaseRecord]) -> BTreeMap<String, PassRate> {
    let mut out: BTreeMap<String, PassRate> = BTreeMap::new();
    for r in records {
        let id = case_of(&r.id);
        let entry = out.entry(id.to_string()).or_default();
        if !r.ran || r.verdict == Verdict::NotApplicable {
            continue;
        }
        entry.runs += 1;
        if r.verdict == Verdict::Pass {
            entry.passed += 1;
        } else {
            let k = r.id[id.len()..].to_string();
            let first_line = r.message.lines().next().unwrap_or_default();
            entry
                .failures
                .insert(k, format!("{}: {first_line}", r.verdict));
        }
    }
    for e in out.values_mut() {
        e.pass_rate = if e.runs == 0 {
            0.0
        } else {
            f64::from(e.passed) / f64::from(e.runs)
        };
    }
    out
}

/// The report.md section: one row per case.
pub fn markdown(rates: &BTreeMap<String, PassRate>, n: u32) -> String {
    let mut s = format!(
        "\n## Repeat: pass rate over {n} runs per case\n\n| Case | Runs | Passed | Pass rate | Runs that did not pass |\n|---|---|---|---|---|\n"
    );
    for (id, r) in rates {
        let failed = if r.failures.is_empty() {
            "-".to_string()
        } else {
            r.failures
                .iter()
                .map(|(k, v)| format!("{k} {}", v.replace('|', "\\|")))
                .collect::<Vec<_>>()
                .join("; ")
        };
        s.push_str(&format!(
            "| {id} | {} | {} | {:.0} % | {failed} |\n",
            r.runs,
            r.passed,
            r.pass_rate * 100.0
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, verdict: Verdict) -> CaseRecord {
        CaseRecord {
            id: id.into(),
            title: "t".into(),
            suite: "s".into(),
            verdict,
            duration_s: 1.0,
            message: if verdict == Verdict::Pass {
                String::new()
            } else {
                "expected X\nmore".into()
            },
            measurements: Vec::new(),
            artifacts: Vec::new(),
            ran: true,
            reading: None,
            console_tail: String::new(),
            started_at: None,
        }
    }

    #[test]
    fn runs_are_summed_per_case() {
        let r = pass_rates(&[
            rec("A-102#1", Verdict::Pass),
            rec("A-102#2", Verdict::Fail),
            rec("A-102#3", Verdict::Pass),
            rec("A-104[psk]#1", Verdict::Pass),
            rec("A-106#1", Verdict::NotApplicable),
        ]);
        assert_eq!(r["A-102"].runs, 3);
        assert_eq!(r["A-102"].passed, 2);
        assert!((r["A-102"].pass_rate - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(r["A-102"].failures["#2"], "fail: expected X");
        assert_eq!(r["A-104[psk]"].pass_rate, 1.0);
        assert_eq!(r["A-106"].runs, 0);
        let md = markdown(&r, 3);
        assert!(
            md.contains("| A-102 | 3 | 2 | 67 % | #2 fail: expected X |"),
            "{md}"
        );
    }

    #[test]
    fn ids_without_a_run_number_are_kept() {
        assert_eq!(case_of("X-1"), "X-1");
        assert_eq!(case_of("X-1#12"), "X-1");
        assert_eq!(case_of("X#y"), "X#y");
    }
}
