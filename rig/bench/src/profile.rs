//! Device profiles: how to drive a DUT through its console.
//!
//! A profile (TOML, in `hardware/profiles/`) maps the DUT actions cases need
//! (reboot, trigger an Update, factory reset, and custom ones with `{0}`-style
//! arguments) to console lines to send and text to expect back. It also says
//! what to send right after the DUT starts (`start`), what shows it is ready
//! (`ready`), and how to ask it to stop (`stop`). The schema is documented in
//! `hardware/README.md`; the reference agent's profile is built in
//! ([`Profile::rig_agent`]) and kept in `hardware/profiles/rig-agent.toml`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::diag::{Checker, Diagnostics, Item, SourceFile};
use crate::dut::DutAction;
use crate::template::{Template, TemplateError};

/// The reference agent's profile text, as shipped in `hardware/profiles/`.
pub const RIG_AGENT_PROFILE: &str = include_str!("../../../hardware/profiles/rig-agent.toml");

/// How console lines end when the rig sends them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineEnding {
    /// `\n`
    Lf,
    /// `\r\n` (typical of serial shells and AT modems)
    CrLf,
}

impl LineEnding {
    /// The bytes to append to a line.
    pub fn as_str(self) -> &'static str {
        match self {
            LineEnding::Lf => "\n",
            LineEnding::CrLf => "\r\n",
        }
    }
}

/// One action: a line to send, and what to expect back.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionSpec {
    /// The line to send (placeholders and `{0}` arguments allowed).
    pub send: Template,
    /// A substring that shows the action was carried out.
    pub expect: Option<String>,
    /// A substring that shows the DUT refused the action.
    pub fail: Option<String>,
    /// How long to wait for `expect`.
    pub timeout: Duration,
}

impl ActionSpec {
    /// The number of positional arguments the action takes.
    pub fn arity(&self) -> usize {
        self.send.arity()
    }
}

/// A validated device profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// The profile's name.
    pub name: String,
    /// Where it was read from.
    pub path: PathBuf,
    /// What DUT it drives.
    pub description: String,
    /// A substring of the boot banner: on boards that are flashed or reset
    /// (probe-rs), the rig waits for it (at most `ready_timeout`) before
    /// sending `start`, so the line is not lost while the shell comes up.
    pub boot: Option<String>,
    /// A line sent right after the DUT is spawned (placeholders allowed).
    pub start: Option<Template>,
    /// A substring that shows the DUT is up, expected after `start`.
    pub ready: Option<String>,
    /// How long to wait for `ready`.
    pub ready_timeout: Duration,
    /// A line that asks the DUT to stop before it is signalled.
    pub stop: Option<String>,
    /// How long to wait for the DUT to exit after `stop` (and after SIGTERM).
    pub stop_timeout: Duration,
    /// The default failure substring for actions that set none.
    pub fail: Option<String>,
    /// Line ending for sent lines.
    pub line_ending: LineEnding,
    /// Whether `ready`, `expect` and `fail` patterns also match stderr lines
    /// (`match_stderr`, default true; the agent keeps protocol lines on stdout).
    pub match_stderr: bool,
    /// Whether this is the copy compiled into the rig ([`Profile::rig_agent`]),
    /// not a file read at run time.
    pub built_in: bool,
    /// Actions by name (`reboot`, `trigger_update`, `factory_reset`, custom ones).
    pub actions: BTreeMap<String, ActionSpec>,
}

/// The profile action name of a [`DutAction`].
pub fn action_name(action: &DutAction) -> &str {
    match action {
        DutAction::Reboot => "reboot",
        DutAction::TriggerUpdate => "trigger_update",
        DutAction::FactoryReset => "factory_reset",
        DutAction::Custom(name, _) => name,
    }
}

/// The arguments of a [`DutAction`].
pub fn action_args(action: &DutAction) -> &[String] {
    match action {
        DutAction::Custom(_, args) => args,
        _ => &[],
    }
}

impl Profile {
    /// Reads and validates a profile file.
    pub fn load(path: &Path) -> Result<Self, Diagnostics> {
        let src = SourceFile::read(path)?;
        Self::parse(&src)
    }

    /// Validates profile text (`src.path()` is used in messages and as [`Profile::path`]).
    pub fn parse(src: &SourceFile) -> Result<Self, Diagnostics> {
        let doc = src.parse()?;
        let mut cx = Checker::new(src);
        let mut root = cx.root(&doc);
        let profile = root
            .required(&mut cx, "profile", "a table with at least `name`")
            .and_then(|i| i.table(&mut cx));
        let mut p = Profile {
            name: String::new(),
            path: src.path().to_path_buf(),
            description: String::new(),
            boot: None,
            start: None,
            ready: None,
            ready_timeout: Duration::from_secs(10),
            stop: None,
            stop_timeout: Duration::from_secs(5),
            fail: None,
            line_ending: LineEnding::Lf,
            match_stderr: true,
            built_in: false,
            actions: BTreeMap::new(),
        };
        if let Some(mut t) = profile {
            if let Some(n) = t
                .required(&mut cx, "name", "the profile's name")
                .and_then(|i| i.non_empty_str(&mut cx))
            {
                p.name = n.to_string();
            }
            if let Some(d) = t.get("description").and_then(|i| i.str(&mut cx)) {
                p.description = d.to_string();
            }
            p.boot = t
                .get("boot")
                .and_then(|i| i.non_empty_str(&mut cx))
                .map(str::to_string);
            if let Some(i) = t.get("start") {
                p.start = template(&mut cx, &i, false);
            }
            p.ready = t
                .get("ready")
                .and_then(|i| i.non_empty_str(&mut cx))
                .map(str::to_string);
            if let Some(s) = t
                .get("ready_timeout_s")
                .and_then(|i| i.number(&mut cx, 0.0, 3600.0))
            {
                p.ready_timeout = Duration::from_secs_f64(s);
            }
            p.stop = t
                .get("stop")
                .and_then(|i| i.non_empty_str(&mut cx))
                .map(str::to_string);
            if let Some(s) = t
                .get("stop_timeout_s")
                .and_then(|i| i.number(&mut cx, 0.0, 600.0))
            {
                p.stop_timeout = Duration::from_secs_f64(s);
            }
            p.fail = t
                .get("fail")
                .and_then(|i| i.non_empty_str(&mut cx))
                .map(str::to_string);
            if let Some(le) = t
                .get("line_ending")
                .and_then(|i| i.one_of(&mut cx, &["lf", "crlf"]))
            {
                p.line_ending = if le == "crlf" {
                    LineEnding::CrLf
                } else {
                    LineEnding::Lf
                };
            }
            if let Some(b) = t.get("match_stderr").and_then(|i| i.bool(&mut cx)) {
                p.match_stderr = b;
            }
            t.finish(&mut cx);
        }
        if let Some(actions) = root.get("actions").and_then(|i| i.table(&mut cx)) {
            for (name, item) in actions.entries() {
                if !valid_action_name(&name) {
                    cx.error(
                        item.key_span.clone(),
                        &item.field,
                        format!(
                            "action name `{name}` must be lower-case letters, digits, `_` or `-`"
                        ),
                    );
                    continue;
                }
                if let Some(a) = action(&mut cx, &item) {
                    p.actions.insert(name, a);
                }
            }
        }
        root.finish(&mut cx);
        let ok = cx.is_clean();
        cx.into_result(ok.then_some(p))
    }

    /// The reference agent's built-in profile.
    pub fn rig_agent() -> Self {
        let src = SourceFile::new("hardware/profiles/rig-agent.toml", RIG_AGENT_PROFILE);
        // The file is compiled in and checked by a unit test; a broken copy is a
        // build defect, reported as an empty profile rather than a panic.
        let mut p = Self::parse(&src).unwrap_or_else(|_| Profile {
            name: "rig-agent (invalid built-in profile)".into(),
            path: src.path().to_path_buf(),
            description: String::new(),
            boot: None,
            start: None,
            ready: None,
            ready_timeout: Duration::from_secs(10),
            stop: None,
            stop_timeout: Duration::from_secs(5),
            fail: None,
            line_ending: LineEnding::Lf,
            match_stderr: true,
            built_in: false,
            actions: BTreeMap::new(),
        });
        p.built_in = true;
        p
    }

    /// The spec of an action, if the profile defines it.
    pub fn action(&self, action: &DutAction) -> Option<&ActionSpec> {
        self.actions.get(action_name(action))
    }
}

fn valid_action_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn action(cx: &mut Checker<'_>, item: &Item<'_, '_>) -> Option<ActionSpec> {
    let mut t = item.table(cx)?;
    let send = t
        .required(cx, "send", "the console line to send")
        .and_then(|i| template(cx, &i, true));
    let expect = t
        .get("expect")
        .and_then(|i| i.non_empty_str(cx))
        .map(str::to_string);
    let fail = t
        .get("fail")
        .and_then(|i| i.non_empty_str(cx))
        .map(str::to_string);
    let timeout = t
        .get("timeout_s")
        .and_then(|i| i.number(cx, 0.0, 3600.0))
        .map_or(Duration::from_secs(10), Duration::from_secs_f64);
    t.finish(cx);
    Some(ActionSpec {
        send: send?,
        expect,
        fail,
        timeout,
    })
}

/// Reads a string item as a template, reporting a bad placeholder at its place
/// inside the string.
pub(crate) fn template(
    cx: &mut Checker<'_>,
    item: &Item<'_, '_>,
    positional: bool,
) -> Option<Template> {
    let text = item.str(cx)?;
    match Template::parse(text, positional) {
        Ok(t) => Some(t),
        Err(e) => {
            report_template_error(cx, item.span(), &item.field, text, &e);
            None
        }
    }
}

/// Points a template error at the offending characters when the TOML string is
/// written plainly (no escapes); otherwise at the string.
pub(crate) fn report_template_error(
    cx: &mut Checker<'_>,
    span: Range<usize>,
    field: &str,
    text: &str,
    e: &TemplateError,
) {
    let raw = cx.source().text().get(span.clone()).unwrap_or("");
    let inner = raw.get(1..raw.len().saturating_sub(1)).unwrap_or("");
    let at = if inner == text && raw.len() >= 2 {
        let start = span.start + 1 + e.offset;
        start..start + e.len
    } else {
        span
    };
    match &e.help {
        Some(h) => cx.error_help(at, field, e.message.clone(), h.clone()),
        None => cx.error(at, field, e.message.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_agent_profile_is_valid_and_complete() {
        let src = SourceFile::new("hardware/profiles/rig-agent.toml", RIG_AGENT_PROFILE);
        let p = Profile::parse(&src).unwrap();
        assert_eq!(p.ready.as_deref(), Some("ready"));
        assert_eq!(p.stop.as_deref(), Some("quit"));
        for a in [
            DutAction::Reboot,
            DutAction::TriggerUpdate,
            DutAction::FactoryReset,
        ] {
            assert!(p.action(&a).is_some(), "{a:?}");
        }
        assert_eq!(
            p.action(&DutAction::TriggerUpdate)
                .unwrap()
                .expect
                .as_deref(),
            Some("ok update")
        );
    }

    #[test]
    fn the_shell_template_is_valid() {
        let text = include_str!("../../../hardware/profiles/shell-client-template.toml");
        let p = Profile::parse(&SourceFile::new("shell.toml", text)).unwrap();
        assert_eq!(p.line_ending, LineEnding::CrLf);
        assert!(p.start.unwrap().as_str().contains("{endpoint}"));
    }

    #[test]
    fn positional_arguments_set_the_arity() {
        let text = "[profile]\nname = \"x\"\n[actions.write]\nsend = \"set {0} {1}\"\n";
        let p = Profile::parse(&SourceFile::new("x.toml", text)).unwrap();
        assert_eq!(p.actions["write"].arity(), 2);
        assert_eq!(p.actions["write"].timeout, Duration::from_secs(10));
    }

    #[test]
    fn bad_placeholders_point_inside_the_string() {
        let text = "[profile]\nname = \"x\"\nstart = \"go {endpont}\"\n";
        let e = Profile::parse(&SourceFile::new("x.toml", text)).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!((e.0[0].line, e.0[0].column), (3, 13));
        assert_eq!(e.0[0].help.as_deref(), Some("did you mean `{endpoint}`?"));
    }
}
