//! Placeholder templates: `{server_uri}`, `{endpoint}`, `{0}` in command lines
//! and console lines.
//!
//! A template is parsed once, when its file is loaded, so an unknown
//! placeholder is a load-time diagnostic rather than a surprise in the middle
//! of a run. `{{` and `}}` stand for literal braces.

use std::collections::BTreeMap;
use std::fmt;

use crate::dut::DutConfig;

/// Every named placeholder a template may use, with what it becomes.
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    (
        "server_uri",
        "the LwM2M server URI, e.g. coap://127.0.0.1:5683",
    ),
    ("server_host", "the server's host (address) part of the URI"),
    ("server_port", "the server's port"),
    (
        "endpoint",
        "the endpoint client name the DUT must register with",
    ),
    ("lifetime", "the registration lifetime in seconds"),
    ("time_scale", "the time scale divisor (1 = real time)"),
    ("ssid", "the Short Server ID"),
    ("binding", "the binding, e.g. U"),
    (
        "security",
        "the security mode: nosec, psk, rpk or x509 (security cases)",
    ),
    ("psk_identity", "the PSK identity (security cases)"),
    ("psk_key_hex", "the PSK key in hex (security cases)"),
    (
        "psk_key_file",
        "a file holding the PSK key (security cases)",
    ),
    ("cert_file", "the client certificate file (security cases)"),
    ("key_file", "the client private key file (security cases)"),
    ("ca_file", "the CA certificate file (security cases)"),
    (
        "server_name",
        "the name the server certificate must carry (security cases)",
    ),
];

/// The [`DutConfig::extra`] keys that carry the security settings, and the
/// reference agent's option for each (`firmware/agent/README.md`). In RPK mode
/// `key_file` is the device's private key and `ca_file` the server's pinned
/// public key.
pub const SECURITY_ARGS: &[(&str, &str)] = &[
    ("security", "--security"),
    ("psk_identity", "--psk-identity"),
    ("psk_key_hex", "--psk-key-hex"),
    ("cert_file", "--cert"),
    ("key_file", "--key"),
    ("ca_file", "--ca"),
    ("server_name", "--server-name"),
];

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Text copied as is.
    Literal(String),
    /// A named placeholder from [`PLACEHOLDERS`].
    Named(String),
    /// A positional argument `{0}`, `{1}`...
    Positional(usize),
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
}

/// Why a template does not parse. `offset` is a byte offset in the template text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte offset of the problem in the template text.
    pub offset: usize,
    /// Length of the offending text.
    pub len: usize,
    /// What is wrong.
    pub message: String,
    /// A hint, e.g. a close placeholder name.
    pub help: Option<String>,
}

impl Template {
    /// Parses a template. `positional` says whether `{0}`-style arguments are allowed.
    pub fn parse(text: &str, positional: bool) -> Result<Self, TemplateError> {
        let mut segments = Vec::new();
        let mut lit = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    lit.push('}');
                }
                '}' => {
                    return Err(TemplateError {
                        offset: i,
                        len: 1,
                        message: "unmatched `}`".into(),
                        help: Some("write `}}` for a literal brace".into()),
                    });
                }
                '{' => {
                    let rest = &text[i + 1..];
                    let Some(end) = rest.find('}') else {
                        return Err(TemplateError {
                            offset: i,
                            len: text.len() - i,
                            message: "unclosed `{`".into(),
                            help: Some("write `{{` for a literal brace".into()),
                        });
                    };
                    let name = &rest[..end];
                    if let Some(inner) = name.find('{') {
                        return Err(TemplateError {
                            offset: i,
                            len: inner + 1,
                            message: "unclosed `{`".into(),
                            help: Some("write `{{` for a literal brace".into()),
                        });
                    }
                    for _ in 0..name.chars().count() + 1 {
                        chars.next();
                    }
                    if !lit.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut lit)));
                    }
                    segments.push(Self::placeholder(name, i, positional)?);
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            segments.push(Segment::Literal(lit));
        }
        Ok(Self {
            source: text.to_string(),
            segments,
        })
    }

    fn placeholder(name: &str, offset: usize, positional: bool) -> Result<Segment, TemplateError> {
        let len = name.len() + 2;
        if let Ok(n) = name.parse::<usize>() {
            if positional {
                return Ok(Segment::Positional(n));
            }
            return Err(TemplateError {
                offset,
                len,
                message: format!(
                    "positional argument `{{{n}}}` is only allowed in profile actions"
                ),
                help: None,
            });
        }
        if PLACEHOLDERS.iter().any(|(p, _)| *p == name) {
            return Ok(Segment::Named(name.to_string()));
        }
        let help = crate::diag::did_you_mean(name, PLACEHOLDERS.iter().map(|(p, _)| *p))
            .map(|b| format!("did you mean `{{{b}}}`?"))
            .or_else(|| {
                let all = PLACEHOLDERS
                    .iter()
                    .map(|(p, _)| format!("{{{p}}}"))
                    .collect::<Vec<_>>();
                Some(format!("known placeholders: {}", all.join(", ")))
            });
        Err(TemplateError {
            offset,
            len,
            message: format!("unknown placeholder `{{{name}}}`"),
            help,
        })
    }

    /// A template that is only literal text (no placeholders are looked for).
    pub fn literal(text: &str) -> Self {
        let segments = if text.is_empty() {
            Vec::new()
        } else {
            vec![Segment::Literal(text.to_string())]
        };
        Self {
            source: text.replace('{', "{{").replace('}', "}}"),
            segments,
        }
    }

    /// The template text as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// How many positional arguments the template needs (highest index + 1).
    pub fn arity(&self) -> usize {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Positional(n) => Some(n + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Fills the template. Fails naming the first placeholder without a value.
    pub fn render(
        &self,
        values: &BTreeMap<String, String>,
        args: &[String],
    ) -> Result<String, String> {
        let mut out = String::new();
        for s in &self.segments {
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Named(n) => match values.get(n) {
                    Some(v) => out.push_str(v),
                    None => {
                        return Err(format!(
                            "placeholder `{{{n}}}` in `{}` has no value for this case",
                            self.source
                        ));
                    }
                },
                Segment::Positional(i) => match args.get(*i) {
                    Some(v) => out.push_str(v),
                    None => {
                        return Err(format!(
                            "`{}` needs {} argument(s), {} given",
                            self.source,
                            self.arity(),
                            args.len()
                        ));
                    }
                },
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// The placeholder values a [`DutConfig`] provides: everything it knows, then
/// its `extra` map (which may add the credential placeholders or override).
pub fn values(config: &DutConfig) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("server_uri".into(), config.server_uri.clone());
    if let Some((host, port)) = split_uri(&config.server_uri) {
        v.insert("server_host".into(), host);
        v.insert("server_port".into(), port);
    }
    v.insert("endpoint".into(), config.endpoint.clone());
    v.insert("lifetime".into(), config.lifetime_s.to_string());
    v.insert("time_scale".into(), config.time_scale.to_string());
    v.insert("ssid".into(), config.ssid.to_string());
    v.insert("binding".into(), config.binding.clone());
    for (k, x) in &config.extra {
        v.insert(k.clone(), x.clone());
    }
    v
}

/// Splits `scheme://host:port/...` into host and port (default port by scheme).
fn split_uri(uri: &str) -> Option<(String, String)> {
    let (scheme, rest) = uri.split_once("://")?;
    let hostport = rest.split('/').next()?;
    let default = if scheme.ends_with('s') {
        "5684"
    } else {
        "5683"
    };
    if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').unwrap_or(default);
        return Some((host.to_string(), port.to_string()));
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.to_string())),
        None => Some((hostport.to_string(), default.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_named_positional_and_escaped() {
        let t = Template::parse("x {endpoint} {{lit}} {1}", true).unwrap();
        assert_eq!(t.arity(), 2);
        let mut v = BTreeMap::new();
        v.insert("endpoint".to_string(), "ep".to_string());
        assert_eq!(
            t.render(&v, &["a".into(), "b".into()]).unwrap(),
            "x ep {lit} b"
        );
        assert!(
            t.render(&v, &["a".into()])
                .unwrap_err()
                .contains("needs 2 argument")
        );
    }

    #[test]
    fn unknown_placeholder_suggests_a_close_one() {
        let e = Template::parse("--ep {endpiont}", false).unwrap_err();
        assert_eq!(e.offset, 5);
        assert_eq!(e.message, "unknown placeholder `{endpiont}`");
        assert_eq!(e.help.as_deref(), Some("did you mean `{endpoint}`?"));
        assert!(Template::parse("{0}", false).is_err());
        assert!(
            Template::parse("a { b", false)
                .unwrap_err()
                .message
                .contains("unclosed")
        );
        let e = Template::parse("w {0 {1}", true).unwrap_err();
        assert_eq!(
            (e.offset, e.len, e.message.as_str()),
            (2, 3, "unclosed `{`")
        );
    }

    #[test]
    fn literals_keep_their_braces() {
        let t = Template::literal("/opt/{x}/rig-agent");
        assert_eq!(
            t.render(&BTreeMap::new(), &[]).unwrap(),
            "/opt/{x}/rig-agent"
        );
        assert_eq!(Template::parse(t.as_str(), false).unwrap(), t);
    }

    fn config(extra: &[(&str, &str)]) -> DutConfig {
        DutConfig {
            endpoint: "ep".into(),
            server_uri: "coaps://10.77.0.1:40000".into(),
            ssid: 1,
            lifetime_s: 86_400,
            binding: "U".into(),
            default_pmin_s: None,
            default_pmax_s: None,
            time_scale: 1.0,
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn security_keys_become_placeholders_and_agent_options() {
        let c = config(&[
            ("security", "x509"),
            ("cert_file", "/pki/dev.pem"),
            ("key_file", "/pki/dev.key"),
            ("ca_file", "/pki/ca.pem"),
            ("server_name", "server.example.com"),
            ("unrelated", "kept as a placeholder value only"),
        ]);
        let t =
            Template::parse("--mode {security} --sni {server_name} {server_port}", false).unwrap();
        assert_eq!(
            t.render(&values(&c), &[]).unwrap(),
            "--mode x509 --sni server.example.com 40000"
        );
        assert_eq!(
            crate::target::security_args(&c),
            [
                "--security",
                "x509",
                "--cert",
                "/pki/dev.pem",
                "--key",
                "/pki/dev.key",
                "--ca",
                "/pki/ca.pem",
                "--server-name",
                "server.example.com"
            ]
        );
        let args = crate::target::agent_args(&c);
        assert!(args.ends_with(&["--server-name".to_string(), "server.example.com".into()]));
        // PSK: identity and key; NoSec: nothing, and an unknown key never
        // becomes an option.
        let p = config(&[
            ("security", "psk"),
            ("psk_identity", "dev"),
            ("psk_key_hex", "00ff"),
        ]);
        assert_eq!(
            crate::target::security_args(&p),
            [
                "--security",
                "psk",
                "--psk-identity",
                "dev",
                "--psk-key-hex",
                "00ff"
            ]
        );
        let n = config(&[("security", "nosec"), ("psk_identity", "dev")]);
        assert!(crate::target::security_args(&n).is_empty());
        assert!(crate::target::security_args(&config(&[])).is_empty());
        // An existing template without security placeholders is unaffected.
        let t = Template::parse("{server_uri} {endpoint}", false).unwrap();
        assert_eq!(
            t.render(&values(&c), &[]).unwrap(),
            "coaps://10.77.0.1:40000 ep"
        );
    }

    #[test]
    fn uri_parts() {
        assert_eq!(
            split_uri("coap://127.0.0.1:5683"),
            Some(("127.0.0.1".into(), "5683".into()))
        );
        assert_eq!(
            split_uri("coaps://[::1]/x"),
            Some(("::1".into(), "5684".into()))
        );
        assert_eq!(
            split_uri("coap://host"),
            Some(("host".into(), "5683".into()))
        );
    }
}
