//! Spec deviations the rig's servers see, recorded per peer.
//!
//! A strict server never silently tolerates a client's mistake: it answers as
//! the spec says (often still serving the client) and records a [`Deviation`]
//! naming what was wrong, so a case can fail with a precise reason.

use std::fmt;
use std::net::SocketAddr;

/// One deviation from the LwM2M or CoAP specifications, seen from one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deviation {
    /// The endpoint name, if the message could be tied to one.
    pub endpoint: Option<String>,
    /// The peer's transport address.
    pub peer: SocketAddr,
    /// What was wrong, e.g. "Register has no `ep` query parameter".
    pub what: String,
    /// A short printable excerpt of the offending message (method, URI, options).
    pub message_excerpt: String,
}

impl fmt::Display for Deviation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.endpoint {
            Some(ep) => write!(f, "{} (endpoint `{ep}`, peer {})", self.what, self.peer)?,
            None => write!(f, "{} (peer {})", self.what, self.peer)?,
        }
        if !self.message_excerpt.is_empty() {
            write!(f, " in `{}`", self.message_excerpt)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_endpoint_peer_and_excerpt() {
        let d = Deviation {
            endpoint: Some("ep1".into()),
            peer: "127.0.0.1:5000".parse().unwrap(),
            what: "Register has no `lt`".into(),
            message_excerpt: "POST /rd?ep=ep1".into(),
        };
        assert_eq!(
            d.to_string(),
            "Register has no `lt` (endpoint `ep1`, peer 127.0.0.1:5000) in `POST /rd?ep=ep1`"
        );
    }
}
