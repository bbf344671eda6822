//! CoRE Link Format (RFC 6690, content format 40) with the LwM2M attributes.
//!
//! Used for Register/Update payloads (`</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>;ver=1.1`),
//! Discover and Bootstrap-Discover responses, and (through
//! [`Attributes::from_query`]) Write-Attributes queries (`?pmin=10&pmax=200`).
//!
//! The parser is strict (RFC 6690 §2 grammar, no whitespace) and every error
//! gives the byte offset. A [`Link`] keeps its parameters in order, quoted or
//! not as received, so [`format()`] reproduces the input byte for byte; typed
//! LwM2M attributes are read with [`Link::attributes`] and checked at parse
//! time. Unknown parameters are kept.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::path::ObjectPath;
use crate::value::parse_float;

/// A link-format payload or query that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("link format: {message} (at byte {offset})")]
pub struct LinkError {
    /// Byte offset of the problem.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

fn err(offset: usize, message: impl Into<String>) -> LinkError {
    LinkError {
        offset,
        message: message.into(),
    }
}

/// The target of a link: an LwM2M path when it is one, else the raw URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkTarget {
    /// `</3/0>`.
    Path(ObjectPath),
    /// Anything else (`</lwm2m>` alternate path, `</rd?ep=x>`).
    Raw(String),
}

impl fmt::Display for LinkTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkTarget::Path(p) => write!(f, "{p}"),
            LinkTarget::Raw(s) => f.write_str(s),
        }
    }
}

/// One link parameter as it appeared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkParam {
    /// Parameter name (`pmin`, `rt`).
    pub name: String,
    /// Value, unquoted; `None` for a bare name.
    pub value: Option<String>,
    /// True when the value was (or must be) a quoted string.
    pub quoted: bool,
}

/// One link: `<target>;param;param=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The URI reference between `<` and `>`.
    pub target: LinkTarget,
    /// Parameters, in order.
    pub params: Vec<LinkParam>,
}

impl Link {
    /// A link to `path` with no parameters.
    pub fn path(path: ObjectPath) -> Self {
        Link {
            target: LinkTarget::Path(path),
            params: Vec::new(),
        }
    }

    /// A link to `path` carrying `attributes` as parameters (a Discover entry).
    pub fn with_attributes(path: ObjectPath, attributes: &Attributes) -> Self {
        Link {
            target: LinkTarget::Path(path),
            params: attributes.to_params(),
        }
    }

    /// The value of parameter `name` (first occurrence).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.value.as_deref())
    }

    /// True when a parameter `name` is present (with or without value).
    pub fn has_param(&self, name: &str) -> bool {
        self.params.iter().any(|p| p.name == name)
    }

    /// The LwM2M path, if the target is one.
    pub fn object_path(&self) -> Option<ObjectPath> {
        match self.target {
            LinkTarget::Path(p) => Some(p),
            LinkTarget::Raw(_) => None,
        }
    }

    /// The typed LwM2M attributes (already validated by [`parse`]).
    pub fn attributes(&self) -> Attributes {
        let mut a = Attributes::default();
        for p in &self.params {
            // Validated at parse time; a hand-built bad value lands in `other`.
            if a.set(&p.name, p.value.as_deref()).is_err() {
                a.other.push((p.name.clone(), p.value.clone()));
            }
        }
        a
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.target)?;
        for p in &self.params {
            write!(f, ";{}", p.name)?;
            if let Some(v) = &p.value {
                if p.quoted || !v.bytes().all(is_ptoken) || v.is_empty() {
                    f.write_str("=\"")?;
                    for c in v.chars() {
                        if c == '"' || c == '\\' {
                            f.write_str("\\")?;
                        }
                        write!(f, "{c}")?;
                    }
                    f.write_str("\"")?;
                } else {
                    write!(f, "={v}")?;
                }
            }
        }
        Ok(())
    }
}

/// Format links as a link-format payload (`,`-separated, no spaces).
pub fn format(links: &[Link]) -> String {
    let mut s = String::new();
    for (i, l) in links.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&l.to_string());
    }
    s
}

fn is_parmname(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&c)
}

fn is_ptoken(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'()*+-./:<=>?@[]^_`{|}~".contains(&c)
}

/// Parse a link-format payload (bytes, so non-UTF-8 input gets an offset too).
pub fn parse_bytes(b: &[u8]) -> Result<Vec<Link>, LinkError> {
    let s = core::str::from_utf8(b).map_err(|e| err(e.valid_up_to(), "not valid UTF-8"))?;
    parse(s)
}

/// Parse a link-format payload strictly. An empty payload is zero links.
pub fn parse(s: &str) -> Result<Vec<Link>, LinkError> {
    let b = s.as_bytes();
    let mut links = Vec::new();
    if b.is_empty() {
        return Ok(links);
    }
    let mut i = 0usize;
    loop {
        if b.get(i) != Some(&b'<') {
            return Err(err(i, "expected '<' to start a link"));
        }
        let start = i + 1;
        let end = start
            + b[start..]
                .iter()
                .position(|&c| c == b'>')
                .ok_or_else(|| err(i, "unterminated '<'"))?;
        let uri = &s[start..end];
        if let Some(bad) = uri
            .bytes()
            .position(|c| c <= b' ' || c == b'<' || c == b'"' || c >= 0x7f)
        {
            return Err(err(start + bad, "invalid character in URI reference"));
        }
        let target = if uri.starts_with('/') {
            match ObjectPath::parse(uri) {
                Ok(p) => LinkTarget::Path(p),
                Err(_) => LinkTarget::Raw(uri.to_string()),
            }
        } else {
            LinkTarget::Raw(uri.to_string())
        };
        i = end + 1;
        let mut params = Vec::new();
        while b.get(i) == Some(&b';') {
            i += 1;
            let ns = i;
            while i < b.len() && is_parmname(b[i]) {
                i += 1;
            }
            if i == ns {
                return Err(err(i, "expected a parameter name after ';'"));
            }
            let name = s[ns..i].to_string();
            let (value, quoted, vstart) = if b.get(i) == Some(&b'=') {
                i += 1;
                let vs = i;
                if b.get(i) == Some(&b'"') {
                    i += 1;
                    let mut v = String::new();
                    loop {
                        match b.get(i) {
                            None => return Err(err(vs, "unterminated quoted string")),
                            Some(b'"') => {
                                i += 1;
                                break;
                            }
                            Some(b'\\') => {
                                let c = s[i + 1..]
                                    .chars()
                                    .next()
                                    .ok_or_else(|| err(i, "dangling '\\'"))?;
                                v.push(c);
                                i += 1 + c.len_utf8();
                            }
                            Some(_) => {
                                let c = s[i..]
                                    .chars()
                                    .next()
                                    .ok_or_else(|| err(i, "bad character"))?;
                                v.push(c);
                                i += c.len_utf8();
                            }
                        }
                    }
                    (Some(v), true, vs)
                } else {
                    while i < b.len() && is_ptoken(b[i]) && b[i] != b',' && b[i] != b';' {
                        i += 1;
                    }
                    if i == vs {
                        return Err(err(i, "expected a value after '='"));
                    }
                    (Some(s[vs..i].to_string()), false, vs)
                }
            } else {
                (None, false, i)
            };
            let mut probe = Attributes::default();
            if let Err(m) = probe.set(&name, value.as_deref()) {
                return Err(err(vstart, alloc::format!("attribute {name}: {m}")));
            }
            params.push(LinkParam {
                name,
                value,
                quoted,
            });
        }
        links.push(Link { target, params });
        match b.get(i) {
            None => break,
            Some(b',') => i += 1,
            Some(_) => return Err(err(i, "expected ',' or ';' or end of payload")),
        }
    }
    Ok(links)
}

/// The LwM2M attributes (LwM2M 1.1 Core TS §5.1.2 and Table 5.1.2-1, plus
/// the registration ones), typed. Unknown parameters are kept in `other`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attributes {
    /// Minimum period (s).
    pub pmin: Option<u32>,
    /// Maximum period (s).
    pub pmax: Option<u32>,
    /// Greater than.
    pub gt: Option<f64>,
    /// Less than.
    pub lt: Option<f64>,
    /// Step.
    pub st: Option<f64>,
    /// Minimum evaluation period (s).
    pub epmin: Option<u32>,
    /// Maximum evaluation period (s).
    pub epmax: Option<u32>,
    /// Number of resource instances (Discover).
    pub dim: Option<u16>,
    /// Short server id (Bootstrap-Discover).
    pub ssid: Option<u16>,
    /// Server URI (Bootstrap-Discover).
    pub uri: Option<String>,
    /// Object version (`1.1`).
    pub ver: Option<String>,
    /// LwM2M version (`1.1`, Bootstrap-Discover on `/`).
    pub lwm2m: Option<String>,
    /// Names given without a value (`?pmin` in Write-Attributes: remove it).
    pub cleared: Vec<String>,
    /// Anything else, in order (`rt`, `ct`, vendor parameters).
    pub other: Vec<(String, Option<String>)>,
}

fn uint<T: TryFrom<u64>>(v: &str) -> Result<T, &'static str> {
    if v.is_empty() || !v.bytes().all(|c| c.is_ascii_digit()) {
        return Err("expected an unsigned integer");
    }
    v.parse::<u64>()
        .ok()
        .and_then(|n| T::try_from(n).ok())
        .ok_or("integer out of range")
}

impl Attributes {
    /// Set one attribute from its text form; `None` marks it cleared for the
    /// known numeric ones. Errors say what the value should be.
    pub fn set(&mut self, name: &str, value: Option<&str>) -> Result<(), &'static str> {
        const KNOWN: [&str; 12] = [
            "pmin", "pmax", "gt", "lt", "st", "epmin", "epmax", "dim", "ssid", "uri", "ver",
            "lwm2m",
        ];
        let Some(v) = value else {
            if KNOWN.contains(&name) {
                self.cleared.push(name.to_string());
            } else {
                self.other.push((name.to_string(), None));
            }
            return Ok(());
        };
        let float = |v: &str| parse_float(v).ok_or("expected a decimal number");
        match name {
            "pmin" => self.pmin = Some(uint(v)?),
            "pmax" => self.pmax = Some(uint(v)?),
            "epmin" => self.epmin = Some(uint(v)?),
            "epmax" => self.epmax = Some(uint(v)?),
            "gt" => self.gt = Some(float(v)?),
            "lt" => self.lt = Some(float(v)?),
            "st" => {
                let x = float(v)?;
                if x < 0.0 {
                    return Err("step must not be negative");
                }
                self.st = Some(x)
            }
            "dim" => self.dim = Some(uint(v)?),
            "ssid" => self.ssid = Some(uint(v)?),
            "uri" => self.uri = Some(v.to_string()),
            "ver" | "lwm2m" => {
                let ok = v.split_once('.').is_some_and(|(a, b)| {
                    !a.is_empty()
                        && !b.is_empty()
                        && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
                });
                if !ok {
                    return Err("expected a version like 1.1");
                }
                if name == "ver" {
                    self.ver = Some(v.to_string())
                } else {
                    self.lwm2m = Some(v.to_string())
                }
            }
            _ => self.other.push((name.to_string(), Some(v.to_string()))),
        }
        Ok(())
    }

    /// Parse Uri-Query option values (`["pmin=10", "pmax=200"]`), as in
    /// Write-Attributes. On error returns the index of the bad option and why.
    pub fn from_query<S: AsRef<str>>(query: &[S]) -> Result<Attributes, (usize, String)> {
        let mut a = Attributes::default();
        for (i, q) in query.iter().enumerate() {
            let q = q.as_ref();
            let (name, value) = match q.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (q, None),
            };
            if name.is_empty() || !name.bytes().all(is_parmname) {
                return Err((i, alloc::format!("bad attribute name in {q:?}")));
            }
            a.set(name, value)
                .map_err(|m| (i, alloc::format!("{name}: {m}")))?;
        }
        Ok(a)
    }

    /// The Uri-Query option values for these attributes, in a fixed order
    /// (pmin, pmax, gt, lt, st, epmin, epmax, dim, ssid, uri, ver, lwm2m, others, cleared).
    pub fn to_query(&self) -> Vec<String> {
        let mut q = Vec::new();
        let mut push = |n: &str, v: Option<String>| {
            if let Some(v) = v {
                q.push(alloc::format!("{n}={v}"));
            }
        };
        push("pmin", self.pmin.map(|x| x.to_string()));
        push("pmax", self.pmax.map(|x| x.to_string()));
        push("gt", self.gt.map(crate::value::format_float));
        push("lt", self.lt.map(crate::value::format_float));
        push("st", self.st.map(crate::value::format_float));
        push("epmin", self.epmin.map(|x| x.to_string()));
        push("epmax", self.epmax.map(|x| x.to_string()));
        push("dim", self.dim.map(|x| x.to_string()));
        push("ssid", self.ssid.map(|x| x.to_string()));
        push("uri", self.uri.clone());
        push("ver", self.ver.clone());
        push("lwm2m", self.lwm2m.clone());
        for (n, v) in &self.other {
            match v {
                Some(v) => q.push(alloc::format!("{n}={v}")),
                None => q.push(n.clone()),
            }
        }
        for n in &self.cleared {
            q.push(n.clone());
        }
        q
    }

    /// These attributes as link parameters (same order as [`Attributes::to_query`];
    /// `uri` quoted).
    pub fn to_params(&self) -> Vec<LinkParam> {
        self.to_query()
            .into_iter()
            .map(|q| match q.split_once('=') {
                Some((n, v)) => LinkParam {
                    quoted: n == "uri",
                    name: n.to_string(),
                    value: Some(v.to_string()),
                },
                None => LinkParam {
                    name: q,
                    value: None,
                    quoted: false,
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn registration_payload_round_trips() {
        let s = r#"</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>;ver=1.1"#;
        let links = parse(s).unwrap();
        assert_eq!(links.len(), 3);
        assert_eq!(links[0].target, LinkTarget::Path(ObjectPath::Root));
        assert_eq!(links[0].param("rt"), Some("oma.lwm2m"));
        assert_eq!(links[0].param("ct"), Some("11543"));
        assert_eq!(links[2].attributes().ver.as_deref(), Some("1.1"));
        assert_eq!(format(&links), s);
    }

    #[test]
    fn discover_attributes() {
        let a = Attributes {
            dim: Some(2),
            pmin: Some(10),
            ..Default::default()
        };
        assert_eq!(
            Link::with_attributes(ObjectPath::resource(3, 0, 7), &a).to_string(),
            "</3/0/7>;pmin=10;dim=2"
        );
        let s = "</3/0/7>;dim=2;pmin=10;pmax=60;gt=50.5;st=0.5,</3/0/1>";
        let links = parse(s).unwrap();
        let a = links[0].attributes();
        assert_eq!(
            (a.dim, a.pmin, a.pmax, a.gt, a.st),
            (Some(2), Some(10), Some(60), Some(50.5), Some(0.5))
        );
        assert_eq!(format(&links), s);
    }

    #[test]
    fn errors_have_offsets() {
        assert_eq!(parse("</3/0>;pmin=x").unwrap_err().offset, 12);
        assert_eq!(parse("</3/0>, </4>").unwrap_err().offset, 7);
        assert_eq!(parse("</3/0").unwrap_err().offset, 0);
        assert_eq!(parse("</3/0>;rt=\"abc").unwrap_err().offset, 10);
        assert_eq!(parse("</3/0>;").unwrap_err().offset, 7);
        assert_eq!(parse("</3/0>x").unwrap_err().offset, 6);
        assert_eq!(parse_bytes(b"</3/\xff>").unwrap_err().offset, 4);
        assert_eq!(parse("</1>;ver=1").unwrap_err().offset, 9);
    }

    #[test]
    fn query_form() {
        let a = Attributes::from_query(&["pmin=10", "pmax=200", "gt=-1.5", "st"]).unwrap();
        assert_eq!((a.pmin, a.pmax, a.gt), (Some(10), Some(200), Some(-1.5)));
        assert_eq!(a.cleared, ["st"]);
        assert_eq!(a.to_query(), ["pmin=10", "pmax=200", "gt=-1.5", "st"]);
        assert_eq!(
            Attributes::from_query(&["pmin=10", "pmax=-1"])
                .unwrap_err()
                .0,
            1
        );
    }

    #[test]
    fn rfc6690_examples() {
        // RFC 6690 §5 examples (whitespace between links removed: the RFC
        // folds lines for display only).
        let s = r#"</sensors/temp>;if="sensor",</sensors/light>;if="sensor""#;
        let l = parse(s).unwrap();
        assert_eq!(l[1].target, LinkTarget::Raw("/sensors/light".into()));
        assert_eq!(format(&l), s);
        let s = r#"</sensors>;ct=40;title="Sensor Index",</sensors/temp>;rt="temperature-c";if="sensor",</sensors/light>;rt="light-lux";if="sensor",<http://www.example.com/sensors/t123>;anchor="/sensors/temp";rel="describedby",</t>;anchor="/sensors/temp";rel="alternate""#;
        let l = parse(s).unwrap();
        assert_eq!(l.len(), 5);
        assert_eq!(l[3].param("anchor"), Some("/sensors/temp"));
        assert_eq!(format(&l), s);
    }

    proptest! {
        #[test]
        fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_bytes(&b);
        }

        #[test]
        fn format_parse_round_trip(ids in proptest::collection::vec((0u16..100, 0u16..3, 0u32..1000), 1..6)) {
            let links: Vec<Link> = ids.iter().map(|&(o, i, p)| {
                let mut l = Link::path(ObjectPath::instance(o, i));
                l.params = Attributes { pmin: Some(p), ver: Some("1.1".into()), ..Default::default() }.to_params();
                l
            }).collect();
            let s = format(&links);
            prop_assert_eq!(parse(&s).unwrap(), links);
        }
    }
}
