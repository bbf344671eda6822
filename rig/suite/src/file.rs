//! Suite files: which cases to run, with which parameters, on which benches.
//!
//! A suite file (TOML, in `suites/`) selects cases by id or glob, sets the
//! suite's time scale and timeout, names the bench features every case of the
//! suite needs, and sets per-case parameters. It never names hardware. It is
//! read into a spanned document and validated with [`rig_bench::diag`], so every
//! problem is reported at once with `path:line:column` and the field. The
//! schema, with examples, is in `suites/README.md`.
//!
//! [`SuiteFile::selection`] turns it into the engine's
//! [`SuiteSelection`];
//! [`SuiteFile::check_selectors`] reports selectors that match no case with
//! their place in the file.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{Glob, GlobMatcher};
use rig_bench::diag::{Checker, Diagnostic, Diagnostics, Item, SourceFile, did_you_mean};

use crate::case::SecurityMode;
use crate::engine::SuiteSelection;

/// Security modes a `[[matrix]]` entry may list.
pub const SECURITY_MODES: &[&str] = &["nosec", "psk", "rpk", "x509"];

/// A case selector as written, with where it was written.
#[derive(Clone, Debug)]
pub struct Selector {
    /// The id or glob.
    pub pattern: String,
    /// Its matcher.
    pub matcher: GlobMatcher,
    span: Range<usize>,
}

/// Parameters for the cases a pattern selects.
#[derive(Clone, Debug)]
pub struct ParamSet {
    /// The id or glob the parameters apply to.
    pub pattern: String,
    /// Its matcher.
    pub matcher: GlobMatcher,
    /// Parameter values, typed as written.
    pub values: BTreeMap<String, toml::Value>,
}

/// Limits on measurements for the cases a pattern selects
/// (`[limits."<glob>"] "<measurement>" = { low, high, marginal_low, marginal_high }`).
#[derive(Clone, Debug)]
pub struct LimitSet {
    /// The id or glob the limits apply to.
    pub pattern: String,
    /// Its matcher.
    pub matcher: GlobMatcher,
    /// Limits by measurement name.
    pub values: BTreeMap<String, rig_report::events::Limits>,
}

/// One entry of the security matrix (`[[matrix]]`): the suite runs once per mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatrixEntry {
    /// Security modes.
    pub security: Vec<String>,
}

/// A validated suite file.
#[derive(Clone, Debug)]
pub struct SuiteFile {
    /// The suite's name (`suite.name`, default: the file stem).
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// What the suite is for.
    pub description: String,
    /// Time scale divisor (`suite.time_scale`), if set.
    pub time_scale: Option<f64>,
    /// Wall-time limit for the whole suite, if set.
    pub timeout: Option<Duration>,
    /// Bench features every case of the suite needs.
    pub requires: Vec<String>,
    /// Case selectors in file order.
    pub cases: Vec<Selector>,
    /// Parameter sets in file order (later ones override earlier ones).
    pub params: Vec<ParamSet>,
    /// Limit sets in file order (later ones override earlier ones, per
    /// measurement).
    pub limits: Vec<LimitSet>,
    /// The security matrix: the suite's cases run once per mode (see
    /// [`SuiteFile::security_modes`]).
    pub matrix: Vec<MatrixEntry>,
    source: SourceFile,
}

impl SuiteFile {
    /// Reads and validates a suite file.
    pub fn load(path: &Path) -> Result<Self, Diagnostics> {
        let src = SourceFile::read(path)?;
        Self::parse(src)
    }

    /// Validates suite text (`src.path()` is used in messages).
    pub fn parse(src: SourceFile) -> Result<Self, Diagnostics> {
        let doc = src.parse()?;
        let mut cx = Checker::new(&src);
        let mut root = cx.root(&doc);
        let stem = src
            .path()
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut name = Some(stem);
        let mut description = String::new();
        let mut time_scale = None;
        let mut timeout = None;
        let mut requires = Vec::new();
        let mut cases = None;
        if let Some(mut t) = root
            .required(&mut cx, "suite", "a table with at least `cases`")
            .and_then(|i| i.table(&mut cx))
        {
            if let Some(i) = t.get("name") {
                name = i.non_empty_str(&mut cx).map(str::to_string);
            }
            if let Some(d) = t.get("description").and_then(|i| i.str(&mut cx)) {
                description = d.to_string();
            }
            if let Some(i) = t.get("time_scale") {
                time_scale = i.number(&mut cx, f64::MIN, 100_000.0);
                if let Some(s) = time_scale
                    && s < 1.0
                {
                    cx.error_help(
                        i.span(),
                        &i.field,
                        format!("expected a number of at least 1, found {s}"),
                        "the time scale divides protocol timers: 1 is real time, 60 runs a minute in a second",
                    );
                    time_scale = None;
                }
            }
            if let Some(s) = t
                .get("timeout_s")
                .and_then(|i| i.number(&mut cx, 0.0, 7.0 * 86_400.0))
            {
                timeout = Some(Duration::from_secs_f64(s));
            }
            if let Some(list) = t.get("requires").and_then(|i| i.str_array(&mut cx)) {
                for f in list {
                    let ok = !f.get_ref().is_empty()
                        && f.get_ref()
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                    if ok {
                        requires.push(f.into_inner());
                    } else {
                        cx.error(
                            f.span(),
                            "suite.requires",
                            format!(
                                "feature `{}` must be lower-case letters, digits and `-`",
                                f.get_ref()
                            ),
                        );
                    }
                }
            }
            cases = t
                .required(
                    &mut cx,
                    "cases",
                    "case ids or globs, e.g. [\"LightweightM2M-1.1-int-10[1-4]\"]",
                )
                .and_then(|i| selectors(&mut cx, &i));
            t.finish(&mut cx);
        }

        let mut params = Vec::new();
        if let Some(t) = root.get("params").and_then(|i| i.table(&mut cx)) {
            for (pattern, item) in t.entries() {
                let matcher = match glob(&pattern) {
                    Ok(m) => m,
                    Err(e) => {
                        cx.error(
                            item.key_span.clone(),
                            &item.field,
                            format!("`{pattern}` is not a valid glob: {e}"),
                        );
                        continue;
                    }
                };
                let Some(values) = item.table(&mut cx) else {
                    continue;
                };
                let values = values
                    .entries()
                    .into_iter()
                    .map(|(k, v)| (k, v.to_value()))
                    .collect();
                params.push(ParamSet {
                    pattern,
                    matcher,
                    values,
                });
            }
        }

        let mut limits = Vec::new();
        if let Some(t) = root.get("limits").and_then(|i| i.table(&mut cx)) {
            limits = limit_sets(&mut cx, &t);
        }

        let mut matrix = Vec::new();
        if let Some(i) = root.get("matrix") {
            matrix = matrix_entries(&mut cx, &i).unwrap_or_default();
        }
        root.finish(&mut cx);

        let value = match (name, cases) {
            (Some(name), Some(cases)) => Some(SuiteFile {
                name,
                path: src.path().to_path_buf(),
                description,
                time_scale,
                timeout,
                requires,
                cases,
                params,
                limits,
                matrix,
                source: src.clone(),
            }),
            _ => None,
        };
        let mut result = cx.into_result(value);
        if let Err(d) = &mut result {
            rig_bench::diag::sort(d);
        }
        result
    }

    /// What the engine needs to plan this suite.
    pub fn selection(&self) -> SuiteSelection {
        SuiteSelection {
            name: self.name.clone(),
            selectors: self.cases.iter().map(|s| s.pattern.clone()).collect(),
            requires: self.requires.clone(),
            time_scale: self.time_scale,
            timeout: self.timeout,
            matrix: self.security_modes(),
            source: self.path.display().to_string(),
            params: crate::cases::all()
                .iter()
                .map(|c| c.meta.id)
                .filter(|id| self.selects(id))
                .map(|id| (id.to_string(), self.params_for(id)))
                .filter(|(_, p)| !p.is_empty())
                .collect(),
            limits: crate::cases::all()
                .iter()
                .map(|c| c.meta.id)
                .filter(|id| self.selects(id))
                .map(|id| (id.to_string(), self.limits_for(id)))
                .filter(|(_, l)| !l.is_empty())
                .collect(),
        }
    }

    /// The limits for a case's measurements: every matching
    /// `[limits."<pattern>"]`, in file order, later ones overriding earlier
    /// ones per measurement.
    pub fn limits_for(&self, case_id: &str) -> BTreeMap<String, rig_report::events::Limits> {
        let mut out = BTreeMap::new();
        for l in self.limits.iter().filter(|l| l.matcher.is_match(case_id)) {
            out.extend(l.values.clone());
        }
        out
    }

    /// The security modes of the `[[matrix]]` entries, in file order, each
    /// once; empty when the suite has no matrix.
    pub fn security_modes(&self) -> Vec<SecurityMode> {
        let mut out = Vec::new();
        for m in self.matrix.iter().flat_map(|e| &e.security) {
            if let Some(mode) = SecurityMode::parse(m)
                && !out.contains(&mode)
            {
                out.push(mode);
            }
        }
        out
    }

    /// Whether the suite selects a case id.
    pub fn selects(&self, case_id: &str) -> bool {
        self.cases.iter().any(|s| s.matcher.is_match(case_id))
    }

    /// The parameters for a case: every matching `[params.<pattern>]`, in file
    /// order, later values overriding earlier ones.
    pub fn params_for(&self, case_id: &str) -> BTreeMap<String, toml::Value> {
        let mut out = BTreeMap::new();
        for p in self.params.iter().filter(|p| p.matcher.is_match(case_id)) {
            out.extend(p.values.clone());
        }
        out
    }

    /// Reports, at their place in the file, the selectors that match none of
    /// `case_ids`, with the closest id as a hint.
    pub fn check_selectors<'a>(
        &self,
        case_ids: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Result<(), Diagnostics> {
        let mut diags = Vec::new();
        for (n, s) in self.cases.iter().enumerate() {
            if case_ids
                .clone()
                .into_iter()
                .any(|id| s.matcher.is_match(id))
            {
                continue;
            }
            let mut d: Diagnostic = self.source.diagnostic(
                s.span.clone(),
                format!("suite.cases[{n}]"),
                format!("`{}` matches no case in the library", s.pattern),
            );
            if let Some(best) = did_you_mean(&s.pattern, case_ids.clone()) {
                d = d.with_help(format!("did you mean `{best}`?"));
            }
            diags.push(d);
        }
        if diags.is_empty() {
            Ok(())
        } else {
            Err(Diagnostics(diags))
        }
    }
}

/// Reads `[limits]`: a table per case glob, a table of bounds per measurement.
fn limit_sets(cx: &mut Checker<'_>, t: &rig_bench::diag::TableReader<'_, '_>) -> Vec<LimitSet> {
    let mut out = Vec::new();
    for (pattern, item) in t.entries() {
        let matcher = match glob(&pattern) {
            Ok(m) => m,
            Err(e) => {
                cx.error(
                    item.key_span.clone(),
                    &item.field,
                    format!("`{pattern}` is not a valid glob: {e}"),
                );
                continue;
            }
        };
        let Some(measurements) = item.table(cx) else {
            continue;
        };
        let mut values = BTreeMap::new();
        for (name, item) in measurements.entries() {
            let Some(mut bounds) = item.table(cx) else {
                continue;
            };
            let mut read = |key: &'static str| {
                bounds
                    .get(key)
                    .and_then(|i| i.number(cx, f64::MIN, f64::MAX))
            };
            let limits = rig_report::events::Limits {
                low: read("low"),
                high: read("high"),
                marginal_low: read("marginal_low"),
                marginal_high: read("marginal_high"),
            };
            let span = bounds.span();
            bounds.finish(cx);
            let order = [
                ("low", limits.low),
                ("marginal_low", limits.marginal_low),
                ("marginal_high", limits.marginal_high),
                ("high", limits.high),
            ];
            let given: Vec<(&str, f64)> = order
                .iter()
                .filter_map(|(k, v)| v.map(|v| (*k, v)))
                .collect();
            if given.is_empty() {
                cx.error_help(
                    span,
                    &item.field,
                    "no bound given",
                    "give at least one of low, high, marginal_low, marginal_high,                      e.g. { high = 50, marginal_high = 40 }",
                );
                continue;
            }
            if let Some(w) = given.windows(2).find(|w| w[0].1 > w[1].1) {
                cx.error(
                    span,
                    &item.field,
                    format!(
                        "bounds out of order: {} = {} is above {} = {} \
                         (expected low <= marginal_low <= marginal_high <= high)",
                        w[0].0, w[0].1, w[1].0, w[1].1
                    ),
                );
                continue;
            }
            values.insert(name, limits);
        }
        out.push(LimitSet {
            pattern,
            matcher,
            values,
        });
    }
    out
}

fn glob(pattern: &str) -> Result<GlobMatcher, String> {
    Glob::new(pattern)
        .map(|g| g.compile_matcher())
        .map_err(|e| e.kind().to_string())
}

fn selectors(cx: &mut Checker<'_>, item: &Item<'_, '_>) -> Option<Vec<Selector>> {
    let list = item.str_array(cx)?;
    if list.is_empty() {
        cx.error(
            item.span(),
            &item.field,
            "selects no case: give at least one id or glob",
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (n, s) in list.into_iter().enumerate() {
        let field = format!("{}[{n}]", item.field);
        if s.get_ref().trim().is_empty() {
            cx.error(s.span(), &field, "must not be empty");
            ok = false;
            continue;
        }
        match glob(s.get_ref()) {
            Ok(matcher) => out.push(Selector {
                pattern: s.get_ref().clone(),
                matcher,
                span: s.span(),
            }),
            Err(e) => {
                cx.error(
                    s.span(),
                    &field,
                    format!("`{}` is not a valid glob: {e}", s.get_ref()),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn matrix_entries(cx: &mut Checker<'_>, item: &Item<'_, '_>) -> Option<Vec<MatrixEntry>> {
    let toml::de::DeValue::Array(a) = item.value.get_ref() else {
        cx.error(
            item.span(),
            &item.field,
            "expected an array of tables: write `[[matrix]]`",
        );
        return None;
    };
    let mut out = Vec::new();
    for (n, v) in a.iter().enumerate() {
        let entry = Item {
            key_span: v.span(),
            value: v,
            field: format!("matrix[{n}]"),
        };
        let Some(mut t) = entry.table(cx) else {
            continue;
        };
        let security = t
            .required(cx, "security", "security modes, e.g. [\"nosec\", \"psk\"]")
            .and_then(|i| {
                let toml::de::DeValue::Array(list) = i.value.get_ref() else {
                    cx.error(i.span(), &i.field, "expected an array of security modes");
                    return None;
                };
                let mut modes = Vec::new();
                for (k, m) in list.iter().enumerate() {
                    let mi = Item {
                        key_span: m.span(),
                        value: m,
                        field: format!("{}[{k}]", i.field),
                    };
                    modes.push(mi.one_of(cx, SECURITY_MODES)?.to_string());
                }
                Some(modes)
            });
        t.finish(cx);
        if let Some(security) = security {
            out.push(MatrixEntry { security });
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SuiteFile, Diagnostics> {
        SuiteFile::parse(SourceFile::new("suites/x.toml", text))
    }

    #[test]
    fn the_smoke_suite_selects_the_four_registration_cases() {
        let text = include_str!("../../../suites/smoke.toml");
        let s = parse(text).unwrap();
        for n in 101..=104 {
            assert!(s.selects(&format!("LightweightM2M-1.1-int-{n}")), "{n}");
        }
        assert!(!s.selects("LightweightM2M-1.1-int-105"));
        assert!(!s.selects("LightweightM2M-1.1-int-201"));
        let sel = s.selection();
        assert_eq!(sel.name, "smoke");
        assert!(sel.requires.contains(&"lwm2m".to_string()));
    }

    #[test]
    fn params_merge_in_file_order() {
        let s = parse(
            "[suite]\ncases = [\"a-*\"]\n[params.\"a-*\"]\nx = 1\ny = \"s\"\n[params.a-2]\nx = 2\n",
        )
        .unwrap();
        assert_eq!(s.name, "x");
        assert_eq!(s.params_for("a-1")["x"], toml::Value::Integer(1));
        assert_eq!(s.params_for("a-2")["x"], toml::Value::Integer(2));
        assert_eq!(s.params_for("a-2")["y"], toml::Value::String("s".into()));
        assert!(s.params_for("b").is_empty());
    }

    #[test]
    fn unmatched_selectors_are_reported_at_their_place() {
        let s = parse(
            "[suite]\ncases = [\"LightweightM2M-1.1-int-101\", \"LightweightM2M-1.1-int-1o2\"]\n",
        )
        .unwrap();
        let e = s
            .check_selectors(["LightweightM2M-1.1-int-101", "LightweightM2M-1.1-int-102"])
            .unwrap_err();
        assert_eq!(e.len(), 1);
        let d = &e.0[0];
        assert_eq!(
            (d.line, d.column, d.field.as_str()),
            (2, 40, "suite.cases[1]")
        );
        assert_eq!(
            d.help.as_deref(),
            Some("did you mean `LightweightM2M-1.1-int-102`?")
        );
    }

    #[test]
    fn the_matrix_is_validated() {
        let s = parse("[suite]\ncases = [\"x\"]\n[[matrix]]\nsecurity = [\"nosec\", \"psk\"]\n")
            .unwrap();
        assert_eq!(
            s.matrix,
            vec![MatrixEntry {
                security: vec!["nosec".into(), "psk".into()]
            }]
        );
        let e = parse("[suite]\ncases = [\"x\"]\n[[matrix]]\nsecurity = [\"psq\"]\n").unwrap_err();
        assert!(e.to_string().contains("did you mean \"psk\"?"), "{e}");
    }

    #[test]
    fn readme_examples_are_valid() {
        let readme = include_str!("../../../suites/README.md");
        let mut checked = 0;
        for block in readme.split("```toml\n").skip(1) {
            let text = block.split("```").next().unwrap_or("");
            if text.starts_with("[suite]") {
                parse(text).unwrap_or_else(|d| panic!("{d}"));
                checked += 1;
            } else {
                // A fragment: valid once a [suite] table is added.
                parse(&format!("[suite]\ncases = [\"x\"]\n{text}"))
                    .unwrap_or_else(|d| panic!("{d}"));
            }
        }
        assert!(checked >= 1);
    }

    /// Every `fixtures/invalid/suite-*.toml` gives exactly the text in its
    /// `.expected` file (set `RIG_BLESS=1` to rewrite them after a deliberate change).
    #[test]
    fn invalid_suite_fixtures_match_their_snapshots() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = root.join("fixtures/invalid");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("suite-") && n.ends_with(".toml"))
            .collect();
        names.sort();
        assert!(names.len() >= 4, "too few suite fixtures: {names:?}");
        let bless = std::env::var_os("RIG_BLESS").is_some();
        let mut mismatches = Vec::new();
        for name in names {
            let rel = PathBuf::from("fixtures/invalid").join(&name);
            let text = std::fs::read_to_string(root.join(&rel)).unwrap();
            let got = match SuiteFile::parse(SourceFile::new(&rel, text)) {
                Ok(_) => format!("(no error: {name} loads fine)"),
                Err(d) => d.to_string(),
            } + "\n";
            let expected_path = root.join(rel.with_extension("expected"));
            if bless {
                std::fs::write(&expected_path, &got).unwrap();
                continue;
            }
            let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
            if expected != got {
                mismatches.push(format!("--- {name}: expected\n{expected}--- got\n{got}"));
            }
        }
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    }
}
