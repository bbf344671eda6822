//! `rig list`: the cases suites select (or every case), with the bench
//! features each needs and whether the bench provides them. A suite with a
//! security matrix lists each variant (`<id>[psk]`, ...) on its own row.

use rig_suite::engine::{self, PlanOptions, SuiteSelection};

use crate::{ListArgs, exit};

/// Runs `rig list`.
pub(crate) fn main(args: ListArgs) -> u8 {
    let bench = match super::load_bench(&args.bench.bench) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let suites = if args.suites.is_empty() {
        vec![SuiteSelection {
            name: "(all cases)".to_string(),
            selectors: vec!["*".to_string()],
            requires: vec![],
            time_scale: None,
            timeout: None,
            matrix: vec![],
            source: String::new(),
            params: Default::default(),
            limits: Default::default(),
        }]
    } else {
        match super::load_suites(&args.suites) {
            Ok(s) => s,
            Err(code) => return code,
        }
    };
    let options = PlanOptions {
        filters: vec![],
        features: bench.features.clone(),
        allow_empty: true,
    };
    let plan = match engine::plan(suites, rig_suite::cases::all(), &options) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let rows: Vec<[String; 6]> = plan
        .entries
        .iter()
        .map(|e| {
            let m = &e.case.meta;
            let provided = match &e.not_applicable {
                None => "yes".to_string(),
                Some(why) => format!("no: {why}"),
            };
            [
                plan.suites[e.suite].name.clone(),
                e.id(),
                m.title.to_string(),
                m.area.as_str().to_string(),
                m.requires.join(","),
                provided,
            ]
        })
        .collect();
    let header = ["SUITE", "ID", "TITLE", "AREA", "REQUIRES", "PROVIDED"].map(String::from);
    let mut widths = header.clone().map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(widths).enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        println!("{}", line.trim_end());
    }
    println!(
        "{} case{} on bench `{}` (features: {})",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        bench.name,
        bench
            .features
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    exit::OK
}
