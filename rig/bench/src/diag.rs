//! Diagnostics for every TOML file the rig reads (bench, suite, device profile).
//!
//! A file is parsed into a *spanned* document ([`toml::de::DeTable`]) and then
//! walked by code that knows the schema, through [`TableReader`] and [`Item`].
//! Nothing stops at the first problem: each reader pushes its complaints into a
//! [`Checker`] and carries on, so one run over a file reports every problem in
//! it. Byte offsets become `line:column` here, once, and every complaint names
//! the dotted field (`target.console.port`) and, where it can, offers a "did you
//! mean" from the keys or values that were expected.
//!
//! Call order:
//! 1. [`SourceFile::read`] (or [`SourceFile::new`]) and [`SourceFile::parse`]
//!    (syntax errors come back as [`Diagnostics`] already);
//! 2. [`Checker::new`], then [`Checker::root`] and the `TableReader`
//!    methods, which return `Option`s (`None` = missing or wrong, already reported);
//! 3. [`TableReader::finish`] on each table to report unknown keys;
//! 4. [`Checker::into_result`] to get the validated value or all diagnostics.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One problem in one file, at one place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as the user named it.
    pub path: PathBuf,
    /// 1-based line; 0 when the problem has no position (e.g. unreadable file).
    pub line: usize,
    /// 1-based column in characters; 0 when there is no position.
    pub column: usize,
    /// The dotted field, e.g. `target.kind` (empty for syntax errors).
    pub field: String,
    /// What is wrong: expected vs found.
    pub message: String,
    /// A hint, e.g. `did you mean "sim"?`.
    pub help: Option<String>,
    /// The source line and the width of the span on it, for a caret excerpt.
    pub excerpt: Option<(String, usize)>,
}

impl Diagnostic {
    /// A diagnostic with no position (e.g. the file cannot be read).
    pub fn whole_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            line: 0,
            column: 0,
            field: String::new(),
            message: message.into(),
            help: None,
            excerpt: None,
        }
    }

    /// Adds a hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        write!(f, ": ")?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, " ({help})")?;
        }
        if let Some((text, width)) = &self.excerpt {
            let num = self.line.to_string();
            let pad = " ".repeat(num.len());
            let lead = " ".repeat(self.column.saturating_sub(1));
            let carets = "^".repeat((*width).max(1));
            write!(f, "\n{pad} |\n{num} | {text}\n{pad} | {lead}{carets}")?;
        }
        Ok(())
    }
}

/// Every problem found in a file (or in several files, e.g. a bench and its profile).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Whether there is no problem.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Iterates over the problems.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Self(vec![d])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// A file's text with its line index, to turn byte offsets into positions.
#[derive(Clone, Debug)]
pub struct SourceFile {
    path: PathBuf,
    text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// Wraps text that came from `path` (the path is only used in messages).
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            path: path.into(),
            text,
            line_starts,
        }
    }

    /// Reads a file; an unreadable file is a diagnostic naming it.
    pub fn read(path: &Path) -> Result<Self, Diagnostics> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Self::new(path, text)),
            Err(e) => {
                Err(Diagnostic::whole_file(path, format!("cannot read the file: {e}")).into())
            }
        }
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(1, |s| s.chars().count() + 1);
        (line + 1, column)
    }

    fn line_text(&self, line: usize) -> &str {
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |e| e - 1);
        self.text
            .get(start..end)
            .unwrap_or("")
            .trim_end_matches('\r')
    }

    /// A diagnostic at a span of this file.
    pub fn diagnostic(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let (line, column) = self.position(span.start);
        let text = self.line_text(line).to_string();
        // Carets cover the span, clipped to the end of its first line.
        let on_line = self
            .text
            .get(span.start..span.end.max(span.start))
            .map_or(1, |s| s.split('\n').next().unwrap_or("").chars().count());
        let width = on_line
            .min(text.chars().count().saturating_sub(column - 1))
            .max(1);
        Diagnostic {
            path: self.path.clone(),
            line,
            column,
            field: field.into(),
            message: message.into(),
            help: None,
            excerpt: Some((text, width)),
        }
    }

    /// Parses the TOML text; every syntax error becomes a diagnostic.
    pub fn parse(&self) -> Result<Spanned<DeTable<'_>>, Diagnostics> {
        let (doc, errors) = DeTable::parse_recoverable(&self.text);
        if errors.is_empty() {
            return Ok(doc);
        }
        let diags = errors
            .iter()
            .map(|e| {
                let span = e.span().unwrap_or(0..0);
                let message = format!("TOML syntax error: {}", e.message().trim_end());
                self.diagnostic(span, "", message)
            })
            .collect();
        Err(Diagnostics(diags))
    }
}

/// Collects diagnostics while a file is walked.
#[derive(Debug)]
pub struct Checker<'s> {
    src: &'s SourceFile,
    diags: Vec<Diagnostic>,
}

impl<'s> Checker<'s> {
    /// A checker for one file.
    pub fn new(src: &'s SourceFile) -> Self {
        Self {
            src,
            diags: Vec::new(),
        }
    }

    /// The file being checked.
    pub fn source(&self) -> &'s SourceFile {
        self.src
    }

    /// A reader over the document's root table.
    pub fn root<'d, 'i>(&self, doc: &'d Spanned<DeTable<'i>>) -> TableReader<'d, 'i> {
        TableReader {
            table: doc.get_ref(),
            span: 0..0,
            field: String::new(),
            known: Vec::new(),
        }
    }

    /// Reports a problem at a span.
    pub fn error(&mut self, span: Range<usize>, field: &str, message: impl Into<String>) {
        let d = self.src.diagnostic(span, field, message);
        self.diags.push(d);
    }

    /// Reports a problem with a hint.
    pub fn error_help(
        &mut self,
        span: Range<usize>,
        field: &str,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        let d = self.src.diagnostic(span, field, message).with_help(help);
        self.diags.push(d);
    }

    /// Adds diagnostics found elsewhere (e.g. in a file this one refers to).
    pub fn extend(&mut self, other: Diagnostics) {
        self.diags.extend(other.0);
    }

    /// Whether nothing was reported so far.
    pub fn is_clean(&self) -> bool {
        self.diags.is_empty()
    }

    /// `Ok(value)` if nothing was reported, else every diagnostic.
    pub fn into_result<T>(self, value: Option<T>) -> Result<T, Diagnostics> {
        match value {
            Some(v) if self.diags.is_empty() => Ok(v),
            _ if self.diags.is_empty() => Err(Diagnostic::whole_file(
                self.src.path(),
                "the file is invalid (no detail was recorded; this is a rig bug)",
            )
            .into()),
            _ => Err(Diagnostics(self.diags)),
        }
    }
}

/// The closest candidate to `found`, if it is close enough to suggest.
pub fn did_you_mean<'a>(
    found: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(found, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn join_field(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// A table being read: remembers which keys the schema asked for, so that
/// [`TableReader::finish`] can report the rest as unknown.
#[derive(Debug)]
pub struct TableReader<'d, 'i> {
    table: &'d DeTable<'i>,
    span: Range<usize>,
    field: String,
    known: Vec<&'static str>,
}

impl<'d, 'i> TableReader<'d, 'i> {
    /// The dotted name of this table (empty for the root).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// Where the table starts (its header or inline table).
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// The dotted name of a key in this table.
    pub fn field_of(&self, key: &str) -> String {
        join_field(&self.field, key)
    }

    /// A value, if present (marks the key as known).
    pub fn get(&mut self, key: &'static str) -> Option<Item<'d, 'i>> {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
        self.table.get_key_value(key).map(|(k, v)| Item {
            key_span: k.span(),
            value: v,
            field: join_field(&self.field, key),
        })
    }

    /// A value that must be present; reports it missing otherwise.
    pub fn required(
        &mut self,
        cx: &mut Checker<'_>,
        key: &'static str,
        what: &str,
    ) -> Option<Item<'d, 'i>> {
        let item = self.get(key);
        if item.is_none() {
            let where_ = if self.field.is_empty() {
                "the file".to_string()
            } else {
                format!("[{}]", self.field)
            };
            cx.error(
                self.span.clone(),
                &join_field(&self.field, key),
                format!("missing required key `{key}` in {where_}: {what}"),
            );
        }
        item
    }

    /// Marks keys as known without reading them (e.g. read by another pass).
    pub fn allow(&mut self, keys: &[&'static str]) {
        for k in keys {
            if !self.known.contains(k) {
                self.known.push(k);
            }
        }
    }

    /// Reports a key that is valid elsewhere but not here (e.g. a key of another
    /// target kind), with the reason, and marks it as known.
    pub fn reject(&mut self, cx: &mut Checker<'_>, key: &'static str, reason: &str) {
        if let Some(item) = self.get(key) {
            cx.error(
                item.key_span.clone(),
                &item.field,
                format!("`{key}` is not allowed here: {reason}"),
            );
        }
    }

    /// Keys present in the table with their items, in file order.
    pub fn entries(&self) -> Vec<(String, Item<'d, 'i>)> {
        let mut v: Vec<(String, Item<'d, 'i>)> = self
            .table
            .iter()
            .map(|(k, v)| {
                let key = k.get_ref().to_string();
                let item = Item {
                    key_span: k.span(),
                    value: v,
                    field: join_field(&self.field, &key),
                };
                (key, item)
            })
            .collect();
        v.sort_by_key(|(_, item)| item.key_span.start);
        v
    }

    /// Reports every key the schema did not ask for, with a "did you mean".
    pub fn finish(self, cx: &mut Checker<'_>) {
        for key in self.table.keys() {
            let name: &str = key.get_ref();
            if self.known.contains(&name) {
                continue;
            }
            let field = join_field(&self.field, name);
            let message = format!("unknown key `{name}`");
            match did_you_mean(name, self.known.iter().copied()) {
                Some(best) => cx.error_help(
                    key.span(),
                    &field,
                    message,
                    format!("did you mean `{best}`?"),
                ),
                None => {
                    let mut known = self.known.clone();
                    known.sort_unstable();
                    let list = known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    cx.error_help(
                        key.span(),
                        &field,
                        message,
                        format!("expected one of {list}"),
                    )
                }
            }
        }
    }
}

/// One value in a document, with its dotted field name and spans.
#[derive(Clone, Debug)]
pub struct Item<'d, 'i> {
    /// Span of the key (for "unknown key" and "not allowed" messages).
    pub key_span: Range<usize>,
    /// The value with its span.
    pub value: &'d Spanned<DeValue<'i>>,
    /// Dotted field name.
    pub field: String,
}

impl<'d, 'i> Item<'d, 'i> {
    /// The value's span.
    pub fn span(&self) -> Range<usize> {
        self.value.span()
    }

    fn wrong_type(&self, cx: &mut Checker<'_>, expected: &str) {
        cx.error(
            self.span(),
            &self.field,
            format!(
                "expected {expected}, found {}",
                type_name(self.value.get_ref())
            ),
        );
    }

    /// A string.
    pub fn str(&self, cx: &mut Checker<'_>) -> Option<&'d str> {
        match self.value.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.wrong_type(cx, "a string");
                None
            }
        }
    }

    /// A non-empty string.
    pub fn non_empty_str(&self, cx: &mut Checker<'_>) -> Option<&'d str> {
        let s = self.str(cx)?;
        if s.trim().is_empty() {
            cx.error(self.span(), &self.field, "must not be empty");
            return None;
        }
        Some(s)
    }

    /// A boolean.
    pub fn bool(&self, cx: &mut Checker<'_>) -> Option<bool> {
        match self.value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(cx, "a boolean (true or false)");
                None
            }
        }
    }

    /// An integer within `range` (inclusive).
    pub fn int(&self, cx: &mut Checker<'_>, range: std::ops::RangeInclusive<i64>) -> Option<i64> {
        let DeValue::Integer(i) = self.value.get_ref() else {
            self.wrong_type(cx, "an integer");
            return None;
        };
        let Ok(n) = i64::from_str_radix(i.as_str(), i.radix()) else {
            cx.error(
                self.span(),
                &self.field,
                format!("integer {i} is too large"),
            );
            return None;
        };
        if !range.contains(&n) {
            cx.error(
                self.span(),
                &self.field,
                format!(
                    "expected an integer from {} to {}, found {n}",
                    range.start(),
                    range.end()
                ),
            );
            return None;
        }
        Some(n)
    }

    /// A number (integer or float) that must be `> min_exclusive` and `<= max`
    /// (`f64::MIN` as `min_exclusive` means no lower bound).
    pub fn number(&self, cx: &mut Checker<'_>, min_exclusive: f64, max: f64) -> Option<f64> {
        let n = match self.value.get_ref() {
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            _ => {
                self.wrong_type(cx, "a number");
                return None;
            }
        };
        match n {
            Some(n) if n.is_finite() && n > min_exclusive && n <= max => Some(n),
            Some(n) => {
                let expected = if min_exclusive == f64::MIN {
                    format!("a number of at most {max}")
                } else {
                    format!("a number greater than {min_exclusive} and at most {max}")
                };
                cx.error(
                    self.span(),
                    &self.field,
                    format!("expected {expected}, found {n}"),
                );
                None
            }
            None => {
                cx.error(self.span(), &self.field, "not a valid number");
                None
            }
        }
    }

    /// One of a fixed set of strings.
    pub fn one_of(&self, cx: &mut Checker<'_>, choices: &[&'static str]) -> Option<&'static str> {
        let s = self.str(cx)?;
        if let Some(c) = choices.iter().find(|c| **c == s) {
            return Some(c);
        }
        let list = choices
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let message = format!("expected one of {list}, found \"{s}\"");
        match did_you_mean(s, choices.iter().copied()) {
            Some(best) => cx.error_help(
                self.span(),
                &self.field,
                message,
                format!("did you mean \"{best}\"?"),
            ),
            None => cx.error(self.span(), &self.field, message),
        }
        None
    }

    /// An array of strings (each element checked).
    pub fn str_array(&self, cx: &mut Checker<'_>) -> Option<Vec<Spanned<String>>> {
        let DeValue::Array(a) = self.value.get_ref() else {
            self.wrong_type(cx, "an array of strings");
            return None;
        };
        let mut out = Vec::with_capacity(a.len());
        let mut ok = true;
        for (i, v) in a.iter().enumerate() {
            match v.get_ref() {
                DeValue::String(s) => out.push(Spanned::new(v.span(), s.to_string())),
                other => {
                    ok = false;
                    cx.error(
                        v.span(),
                        &format!("{}[{i}]", self.field),
                        format!("expected a string, found {}", type_name(other)),
                    );
                }
            }
        }
        ok.then_some(out)
    }

    /// A table (`[x]` or inline `{ ... }`).
    pub fn table(&self, cx: &mut Checker<'_>) -> Option<TableReader<'d, 'i>> {
        match self.value.get_ref() {
            DeValue::Table(t) => Some(TableReader {
                table: t,
                span: self.key_span.start..self.key_span.end,
                field: self.field.clone(),
                known: Vec::new(),
            }),
            _ => {
                self.wrong_type(cx, "a table");
                None
            }
        }
    }

    /// A table of string values (e.g. `env = { A = "1" }`).
    pub fn str_map(
        &self,
        cx: &mut Checker<'_>,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        let t = self.table(cx)?;
        let mut out = std::collections::BTreeMap::new();
        let mut ok = true;
        for (k, item) in t.entries() {
            match item.str(cx) {
                Some(s) => {
                    out.insert(k, s.to_string());
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// The value as a plain [`toml::Value`] (for parameters kept typed).
    pub fn to_value(&self) -> toml::Value {
        to_value(self.value.get_ref())
    }
}

/// Converts a spanned document value into a plain [`toml::Value`].
pub fn to_value(v: &DeValue<'_>) -> toml::Value {
    match v {
        DeValue::String(s) => toml::Value::String(s.to_string()),
        DeValue::Integer(i) => {
            toml::Value::Integer(i64::from_str_radix(i.as_str(), i.radix()).unwrap_or(i64::MAX))
        }
        DeValue::Float(f) => {
            toml::Value::Float(f.as_str().replace('_', "").parse().unwrap_or(f64::NAN))
        }
        DeValue::Boolean(b) => toml::Value::Boolean(*b),
        DeValue::Datetime(d) => toml::Value::Datetime(*d),
        DeValue::Array(a) => toml::Value::Array(a.iter().map(|x| to_value(x.get_ref())).collect()),
        DeValue::Table(t) => toml::Value::Table(
            t.iter()
                .map(|(k, x)| (k.get_ref().to_string(), to_value(x.get_ref())))
                .collect(),
        ),
    }
}

/// Sorts diagnostics by line and column within each file, keeping files in
/// the order they first appear (a bench file before the profile it names).
pub fn sort(diags: &mut Diagnostics) {
    let mut order: Vec<PathBuf> = Vec::new();
    for d in &diags.0 {
        if !order.contains(&d.path) {
            order.push(d.path.clone());
        }
    }
    let rank = |p: &PathBuf| order.iter().position(|o| o == p).unwrap_or(usize::MAX);
    diags.0.sort_by_key(|d| (rank(&d.path), d.line, d.column));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let src = SourceFile::new("x.toml", "a = 1\nbé = \"x\"\n");
        assert_eq!(src.position(0), (1, 1));
        assert_eq!(src.position(6), (2, 1));
        // `=` after `bé ` is byte 10 (é is two bytes), character column 4.
        assert_eq!(src.position(10), (2, 4));
    }

    #[test]
    fn collects_every_problem_in_one_pass() {
        let src = SourceFile::new("t.toml", "[target]\nkind = \"simm\"\nconsle = 3\n");
        let doc = src.parse().unwrap();
        let mut cx = Checker::new(&src);
        let mut root = cx.root(&doc);
        let mut t = root
            .required(&mut cx, "target", "the DUT")
            .unwrap()
            .table(&mut cx)
            .unwrap();
        let kind = t
            .required(&mut cx, "kind", "")
            .unwrap()
            .one_of(&mut cx, &["sim", "process"]);
        assert_eq!(kind, None);
        t.get("console");
        t.finish(&mut cx);
        root.finish(&mut cx);
        let err = cx.into_result::<()>(None).unwrap_err();
        assert_eq!(err.len(), 2);
        let text = err.to_string();
        assert!(
            text.contains("t.toml:2:8: target.kind: expected one of \"sim\", \"process\", found \"simm\" (did you mean \"sim\"?)"),
            "{text}"
        );
        assert!(
            text.contains(
                "t.toml:3:1: target.consle: unknown key `consle` (did you mean `console`?)"
            ),
            "{text}"
        );
    }

    #[test]
    fn syntax_errors_have_positions() {
        let src = SourceFile::new("s.toml", "[bench]\nname = \"x\nother = 1\n");
        let err = src.parse().unwrap_err();
        let first = &err.0[0];
        assert_eq!(first.line, 2);
        assert!(
            first.message.starts_with("TOML syntax error"),
            "{}",
            first.message
        );
    }

    #[test]
    fn did_you_mean_needs_a_close_candidate() {
        assert_eq!(did_you_mean("simm", ["sim", "process"]), Some("sim"));
        assert_eq!(did_you_mean("zzz", ["sim", "process"]), None);
    }
}
