//! The lines `rig serve` prints: one per event, with a UTC timestamp, as
//! readable text or (with `--json`) as one JSON object per line.
//!
//! Text: `2026-11-28T00:12:03.123Z lwm2m/coaps   registered    rig-dev-psk 127.0.0.1:40211  at /rd/0, lt=60, ...`
//!
//! JSON: `{"ts":"…","service":"lwm2m/coaps","event":"registered","endpoint":"rig-dev-psk","peer":"127.0.0.1:40211","message":"at /rd/0, …"}`
//! plus event-specific fields (`location`, `reason`, …).

use std::io::Write as _;
use std::net::SocketAddr;

use rig_services::bootstrap::BootstrapEvent;
use rig_services::file_server::{CoapRecord, HttpRecord};
use rig_services::lwm2m::{Response, ServerEvent};
use serde_json::{Map, Value};

/// One printable event.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Line {
    /// Which listener, e.g. `lwm2m/coaps`.
    pub(super) service: String,
    /// What happened, one word, e.g. `registered`.
    pub(super) event: &'static str,
    /// The endpoint, when known.
    pub(super) endpoint: Option<String>,
    /// The peer, when known.
    pub(super) peer: Option<SocketAddr>,
    /// The rest, in words.
    pub(super) message: String,
    /// Extra machine-readable fields for `--json`.
    pub(super) extra: Map<String, Value>,
}

impl Line {
    pub(super) fn new(service: &str, event: &'static str, message: impl Into<String>) -> Line {
        Line {
            service: service.to_string(),
            event,
            endpoint: None,
            peer: None,
            message: message.into(),
            extra: Map::new(),
        }
    }
    fn endpoint(mut self, ep: Option<&str>) -> Line {
        self.endpoint = ep.map(str::to_string);
        self
    }
    fn peer(mut self, peer: Option<SocketAddr>) -> Line {
        self.peer = peer;
        self
    }
    fn field(mut self, k: &str, v: impl Into<Value>) -> Line {
        self.extra.insert(k.to_string(), v.into());
        self
    }

    /// The readable form, after `ts`.
    pub(super) fn text(&self, ts: &str) -> String {
        let mut who = String::new();
        if let Some(ep) = &self.endpoint {
            who.push_str(ep);
        }
        if let Some(p) = self.peer {
            if !who.is_empty() {
                who.push(' ');
            }
            who.push_str(&p.to_string());
        }
        let sep = if who.is_empty() { "" } else { "  " };
        format!(
            "{ts} {:<14} {:<13} {who}{sep}{}",
            self.service, self.event, self.message
        )
    }

    /// The JSON form.
    pub(super) fn json(&self, ts: &str) -> String {
        let mut m = Map::new();
        m.insert("ts".into(), ts.into());
        m.insert("service".into(), self.service.clone().into());
        m.insert("event".into(), self.event.into());
        if let Some(ep) = &self.endpoint {
            m.insert("endpoint".into(), ep.clone().into());
        }
        if let Some(p) = self.peer {
            m.insert("peer".into(), p.to_string().into());
        }
        m.insert("message".into(), self.message.clone().into());
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m).to_string()
    }
}

/// Prints lines to stdout, text or JSON, flushing each one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Emitter {
    pub(super) json: bool,
}

/// Now in UTC, RFC 3339 with milliseconds.
pub(super) fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).unwrap_or_else(|_| t.to_string())
}

impl Emitter {
    pub(super) fn emit(&self, line: &Line) {
        let ts = now();
        let s = if self.json {
            line.json(&ts)
        } else {
            line.text(&ts)
        };
        let mut out = std::io::stdout().lock();
        // A closed stdout (e.g. `| head`) must not kill the services: ignore.
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    }
}

fn payload_text(r: &Response) -> String {
    if let Some(records) = &r.decoded {
        let parts: Vec<String> = records
            .iter()
            .take(8)
            .map(|rec| format!("{}={:?}", rec.path, rec.value))
            .collect();
        let more = if records.len() > 8 { ", …" } else { "" };
        return format!("{}{more}", parts.join(", "));
    }
    match std::str::from_utf8(&r.payload) {
        Ok(s) if s.len() <= 120 => format!("{s:?}"),
        _ => format!("{} bytes", r.payload.len()),
    }
}

/// An LwM2M server event as a line.
/// A deviation the LwM2M or bootstrap server recorded.
fn deviation(service: &str, d: &rig_services::deviation::Deviation) -> Line {
    Line::new(
        service,
        "deviation",
        if d.message_excerpt.is_empty() {
            d.what.clone()
        } else {
            format!("{} in `{}`", d.what, d.message_excerpt)
        },
    )
    .endpoint(d.endpoint.as_deref())
    .peer(Some(d.peer))
}

/// A DTLS handshake that completed.
fn dtls_ok(
    service: &str,
    peer: SocketAddr,
    endpoint: Option<&str>,
    cipher_suite: Option<&str>,
) -> Line {
    Line::new(
        service,
        "dtls-ok",
        format!(
            "handshake done, {}",
            cipher_suite.unwrap_or("unknown suite")
        ),
    )
    .endpoint(endpoint)
    .peer(Some(peer))
    .field("cipher_suite", cipher_suite.map(str::to_string))
}

/// A DTLS handshake the server refused.
fn dtls_failed(service: &str, peer: SocketAddr, reason: &str, message: &str) -> Line {
    Line::new(service, "dtls-failed", format!("{reason}: {message}"))
        .peer(Some(peer))
        .field("reason", reason.to_string())
}

pub(super) fn lwm2m(service: &str, e: &ServerEvent) -> Line {
    match e {
        ServerEvent::Registered {
            endpoint,
            registration: r,
            ..
        } => Line::new(
            service,
            "registered",
            format!(
                "at {}, lt={}, lwm2m={}, b={}{}, objects {}",
                r.location,
                r.lifetime_s
                    .map_or_else(|| "(default 86400)".into(), |l| l.to_string()),
                r.lwm2m_version.as_deref().unwrap_or("(none)"),
                r.binding.as_deref().unwrap_or("(none)"),
                if r.queue_mode { ", queue mode" } else { "" },
                r.object_links.join(" ")
            ),
        )
        .endpoint(Some(endpoint))
        .peer(Some(r.peer))
        .field("location", r.location.clone())
        .field("lifetime_s", r.lifetime_s)
        .field("lwm2m", r.lwm2m_version.clone())
        .field("binding", r.binding.clone())
        .field("objects", r.object_links.clone()),
        ServerEvent::Updated {
            endpoint,
            update,
            registration: r,
            ..
        } => Line::new(service, "updated", format!("{update} (at {})", r.location))
            .endpoint(Some(endpoint))
            .peer(Some(r.peer))
            .field("location", r.location.clone()),
        ServerEvent::Deregistered {
            endpoint, location, ..
        } => Line::new(service, "deregistered", format!("from {location}"))
            .endpoint(Some(endpoint))
            .field("location", location.clone()),
        ServerEvent::Expired {
            endpoint, location, ..
        } => Line::new(
            service,
            "expired",
            format!("lifetime ran out without an Update; {location} removed"),
        )
        .endpoint(Some(endpoint))
        .field("location", location.clone()),
        ServerEvent::Notification {
            endpoint,
            observation,
            path,
            response,
            ..
        } => Line::new(
            service,
            "notification",
            format!("{path} {} {}", response.code, payload_text(response)),
        )
        .endpoint(Some(endpoint))
        .field("path", path.to_string())
        .field("observation", observation.0)
        .field("code", response.code.to_string()),
        ServerEvent::ObservationEnded {
            endpoint,
            observation,
            reason,
        } => Line::new(service, "observe-ended", reason.clone())
            .endpoint(Some(endpoint))
            .field("observation", observation.0),
        ServerEvent::Deviation(d) => deviation(service, d),
        ServerEvent::SecureSession {
            peer,
            endpoint,
            cipher_suite,
        } => dtls_ok(service, *peer, endpoint.as_deref(), cipher_suite.as_deref()),
        ServerEvent::HandshakeFailed {
            peer,
            reason,
            message,
        } => dtls_failed(service, *peer, reason, message),
    }
}

/// A bootstrap server event as a line.
pub(super) fn bootstrap(service: &str, e: &BootstrapEvent) -> Line {
    match e {
        BootstrapEvent::BootstrapRequest {
            endpoint,
            peer,
            preferred_format,
            ..
        } => Line::new(
            service,
            "bs-request",
            match preferred_format {
                Some(f) => format!("Bootstrap-Request, pct={f}"),
                None => "Bootstrap-Request".to_string(),
            },
        )
        .endpoint(Some(endpoint))
        .peer(Some(*peer)),
        BootstrapEvent::Finished { endpoint, code } => Line::new(
            service,
            "bs-finished",
            format!("Bootstrap-Finish answered {code}"),
        )
        .endpoint(Some(endpoint))
        .field("code", code.to_string()),
        BootstrapEvent::Deviation(d) => deviation(service, d),
        BootstrapEvent::SecureSession {
            peer,
            endpoint,
            cipher_suite,
        } => dtls_ok(service, *peer, endpoint.as_deref(), cipher_suite.as_deref()),
        BootstrapEvent::HandshakeFailed {
            peer,
            reason,
            message,
        } => dtls_failed(service, *peer, reason, message),
    }
}

/// A CoAP file server record worth a line: the first and last block of a
/// transfer, and any error (a 1 MiB download is 1024 blocks: one line each
/// would drown everything else).
pub(super) fn coap_file(service: &str, r: &CoapRecord) -> Option<Line> {
    let first = r.requested_block.unwrap_or(0) == 0;
    let error = !r.code.starts_with('2');
    if !(first || !r.more || error) {
        return None;
    }
    let what = match (r.block, r.more) {
        (Some(b), true) => format!("block {b} (more follow)"),
        (Some(b), false) => format!("block {b} (last)"),
        (None, _) => "whole file".to_string(),
    };
    Some(
        Line::new(
            service,
            "file",
            format!(
                "{} /{} → {} {what}, {} bytes{}",
                r.method,
                r.path,
                r.code,
                r.payload_bytes,
                if r.repeat { ", repeated" } else { "" }
            ),
        )
        .peer(Some(r.peer))
        .field("path", r.path.clone())
        .field("code", r.code.clone()),
    )
}

/// An HTTP file server record as a line.
pub(super) fn http_file(service: &str, r: &HttpRecord) -> Line {
    let mut msg = format!("{} {} → {}", r.method, r.path, r.status);
    if let Some(range) = &r.range {
        msg.push_str(&format!(", Range {range}"));
    }
    msg.push_str(&format!(", {} bytes", r.bytes_sent));
    if r.cut {
        msg.push_str(", cut mid-body");
    }
    if let Some(reason) = &r.reason {
        msg.push_str(&format!(" ({reason})"));
    }
    Line::new(service, "file", msg)
        .peer(Some(r.peer))
        .field("path", r.path.clone())
        .field("status", r.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rig_services::deviation::Deviation;

    #[test]
    fn handshake_failure_names_peer_and_reason_in_both_forms() {
        let e = ServerEvent::HandshakeFailed {
            peer: "127.0.0.1:4000".parse().unwrap(),
            reason: "wrong_psk".into(),
            message: "peer 127.0.0.1:4000: bad record mac".into(),
        };
        let line = lwm2m("lwm2m/coaps", &e);
        let text = line.text("T");
        assert!(text.starts_with("T lwm2m/coaps"), "{text}");
        assert!(text.contains("dtls-failed"), "{text}");
        assert!(text.contains("127.0.0.1:4000  wrong_psk: peer"), "{text}");
        let v: Value = serde_json::from_str(&line.json("T")).unwrap();
        assert_eq!(v["event"], "dtls-failed");
        assert_eq!(v["reason"], "wrong_psk");
        assert_eq!(v["peer"], "127.0.0.1:4000");
        assert_eq!(v["ts"], "T");
    }

    #[test]
    fn deviation_carries_endpoint_and_excerpt() {
        let e = ServerEvent::Deviation(Deviation {
            endpoint: Some("ep1".into()),
            peer: "127.0.0.1:5000".parse().unwrap(),
            what: "Register has no `lt`".into(),
            message_excerpt: "POST /rd?ep=ep1".into(),
        });
        let text = lwm2m("lwm2m/coap", &e).text("T");
        assert!(
            text.contains("ep1 127.0.0.1:5000  Register has no `lt` in `POST /rd?ep=ep1`"),
            "{text}"
        );
    }

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        let ts = now();
        assert_eq!(ts.len(), "2026-11-28T00:12:03.123Z".len(), "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
    }

    #[test]
    fn only_first_last_and_failed_blocks_are_printed() {
        let mut r = CoapRecord {
            at: std::time::SystemTime::now(),
            since_start: std::time::Duration::ZERO,
            peer: "127.0.0.1:1".parse().unwrap(),
            method: "GET".into(),
            path: "fw/fw-small".into(),
            requested_block: Some(0),
            block: Some(0),
            szx: Some(6),
            more: true,
            payload_bytes: 1024,
            datagram_bytes: 1040,
            etag: Vec::new(),
            code: "2.05".into(),
            repeat: false,
        };
        assert!(coap_file("files/coap", &r).is_some());
        r.requested_block = Some(5);
        r.block = Some(5);
        assert!(coap_file("files/coap", &r).is_none());
        r.more = false;
        let l = coap_file("files/coap", &r).unwrap();
        assert!(l.message.contains("block 5 (last)"), "{}", l.message);
        r.more = true;
        r.code = "4.04".into();
        assert!(coap_file("files/coap", &r).is_some());
    }
}
