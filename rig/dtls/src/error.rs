//! Typed errors. A handshake failure names the peer, the stage, the alert (number and name, and
//! whether we sent or received it) and one specific [`Reason`], so a test case can fail with a
//! message such as "peer 127.0.0.1:5000: handshake failed while verifying the client
//! certificate: sent alert 45 certificate_expired (certificate expired: certificate has expired)".

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::record::Alert;

/// Where in the handshake a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeStage {
    /// ClientHello / ServerHello / HelloVerifyRequest: suite and version negotiation.
    Hello,
    /// Checking the server's certificate or raw public key (client side).
    VerifyingServerCertificate,
    /// Checking the client's certificate or raw public key (server side).
    VerifyingClientCertificate,
    /// Key exchange (PSK identity lookup, ECDHE).
    KeyExchange,
    /// ChangeCipherSpec / Finished: the keys are proven here.
    Finished,
    /// Waiting for the peer's next flight.
    Waiting,
}

impl fmt::Display for HandshakeStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hello => "negotiating (hello)",
            Self::VerifyingServerCertificate => "verifying the server certificate",
            Self::VerifyingClientCertificate => "verifying the client certificate",
            Self::KeyExchange => "exchanging keys",
            Self::Finished => "checking the Finished messages",
            Self::Waiting => "waiting for the peer's next flight",
        })
    }
}

/// The specific reason a handshake (or a datagram) was rejected. [`Reason::kind`] gives a short
/// stable tag for logs and reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// The server has no PSK for the identity the client sent.
    #[error("unknown PSK identity {identity:?}")]
    UnknownPskIdentity {
        /// The identity as sent (lossy UTF-8).
        identity: String,
    },
    /// Both sides used the same identity but different keys: the Finished MAC did not verify.
    #[error("wrong pre-shared key (the Finished message did not verify)")]
    WrongPsk,
    /// The peer's certificate chain does not lead to a trusted CA.
    #[error("certificate from an unknown CA ({detail})")]
    UnknownCa {
        /// OpenSSL's verification message.
        detail: String,
    },
    /// The peer's certificate has expired (or is not yet valid).
    #[error("certificate expired ({detail})")]
    CertificateExpired {
        /// OpenSSL's verification message.
        detail: String,
    },
    /// The server's certificate does not name the host the client asked for (ETS int-403).
    #[error("server certificate does not match host {expected:?}")]
    HostnameMismatch {
        /// The name the client expected.
        expected: String,
    },
    /// The peer's raw public key is not the pinned one.
    #[error("peer raw public key does not match the pinned key")]
    PinnedKeyMismatch,
    /// The client's raw public key is not in the server's credential store.
    #[error("raw public key with SPKI SHA-256 {spki_sha256} is not in the credential store")]
    UnknownPublicKey {
        /// Hex SHA-256 of the DER SubjectPublicKeyInfo.
        spki_sha256: String,
    },
    /// Any other certificate verification failure.
    #[error("certificate rejected ({detail})")]
    CertificateRejected {
        /// OpenSSL's verification message.
        detail: String,
    },
    /// The peer sent no certificate although one is required.
    #[error("peer sent no certificate")]
    NoPeerCertificate,
    /// No cipher suite offered by the client is allowed by the server.
    #[error("no cipher suite in common (suite not allowed)")]
    NoSharedCipherSuite,
    /// The peer aborted with an alert and nothing more specific is known.
    #[error("rejected by the peer")]
    RejectedByPeer,
    /// A datagram that is not DTLS (e.g. a NoSec CoAP message) arrived on the secure port.
    #[error("not a DTLS record (a NoSec datagram on the secure port?)")]
    NotDtls,
    /// The handshake did not complete in time (retransmissions exhausted or deadline passed).
    #[error("handshake timed out after {0:?}")]
    TimedOut(Duration),
    /// Something else OpenSSL reported.
    #[error("{0}")]
    Protocol(String),
}

impl Reason {
    /// A short stable tag: `unknown_psk_identity`, `wrong_psk`, `unknown_ca`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnknownPskIdentity { .. } => "unknown_psk_identity",
            Self::WrongPsk => "wrong_psk",
            Self::UnknownCa { .. } => "unknown_ca",
            Self::CertificateExpired { .. } => "certificate_expired",
            Self::HostnameMismatch { .. } => "hostname_mismatch",
            Self::PinnedKeyMismatch => "pinned_key_mismatch",
            Self::UnknownPublicKey { .. } => "unknown_public_key",
            Self::CertificateRejected { .. } => "certificate_rejected",
            Self::NoPeerCertificate => "no_peer_certificate",
            Self::NoSharedCipherSuite => "no_shared_cipher_suite",
            Self::RejectedByPeer => "rejected_by_peer",
            Self::NotDtls => "not_dtls",
            Self::TimedOut(_) => "timed_out",
            Self::Protocol(_) => "protocol",
        }
    }
}

/// Whether an alert was sent by us or received from the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertDirection {
    /// We sent it.
    Sent,
    /// The peer sent it.
    Received,
}

/// A failed handshake, with everything needed to explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeFailure {
    /// The remote address.
    pub peer: SocketAddr,
    /// Where it failed.
    pub stage: HandshakeStage,
    /// The alert that ended it, if any.
    pub alert: Option<(AlertDirection, Alert)>,
    /// Why.
    pub reason: Reason,
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peer {}: handshake failed while {}: ",
            self.peer, self.stage
        )?;
        match self.alert {
            Some((AlertDirection::Sent, a)) => write!(f, "sent {a} ({})", self.reason),
            Some((AlertDirection::Received, a)) => write!(f, "received {a} ({})", self.reason),
            None => write!(f, "{}", self.reason),
        }
    }
}

impl std::error::Error for HandshakeFailure {}

/// Every error rig-dtls returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtlsError {
    /// The handshake failed.
    #[error(transparent)]
    Handshake(Box<HandshakeFailure>),
    /// A datagram was refused before any session existed (e.g. NoSec on the secure port).
    #[error("peer {peer}: datagram rejected: {reason}")]
    Rejected {
        /// The remote address.
        peer: SocketAddr,
        /// Why.
        reason: Reason,
    },
    /// The session is closed (close_notify, or failed earlier).
    #[error("peer {peer}: session closed")]
    Closed {
        /// The remote address.
        peer: SocketAddr,
    },
    /// The server already holds its maximum number of sessions.
    #[error("peer {peer}: refused, session limit of {limit} reached")]
    SessionLimit {
        /// The remote address.
        peer: SocketAddr,
        /// The configured limit.
        limit: usize,
    },
    /// OpenSSL failed outside a handshake (record layer, write, ...).
    #[error("peer {peer}: {message}")]
    Ssl {
        /// The remote address.
        peer: SocketAddr,
        /// OpenSSL's error text.
        message: String,
    },
    /// Invalid configuration or key material.
    #[error("DTLS configuration: {0}")]
    Config(String),
    /// An invalid credential store entry, naming the entry and field.
    #[error("credential store: {entry}: field `{field}`: {message}")]
    Store {
        /// e.g. `psk[2]`.
        entry: String,
        /// The field name.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A socket error (tokio adapter).
    #[error("{context}: {message}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        message: String,
    },
}

impl DtlsError {
    /// The handshake failure, if this is one.
    pub fn handshake_failure(&self) -> Option<&HandshakeFailure> {
        match self {
            Self::Handshake(f) => Some(f),
            _ => None,
        }
    }

    /// The rejection reason for a handshake failure or a rejected datagram.
    pub fn reason(&self) -> Option<&Reason> {
        match self {
            Self::Handshake(f) => Some(&f.reason),
            Self::Rejected { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

impl From<HandshakeFailure> for DtlsError {
    fn from(f: HandshakeFailure) -> Self {
        Self::Handshake(Box::new(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_peer_stage_alert_and_reason() {
        let f = HandshakeFailure {
            peer: "127.0.0.1:5000".parse().unwrap(),
            stage: HandshakeStage::VerifyingClientCertificate,
            alert: Some((AlertDirection::Sent, Alert::fatal(45))),
            reason: Reason::CertificateExpired {
                detail: "certificate has expired".into(),
            },
        };
        assert_eq!(
            f.to_string(),
            "peer 127.0.0.1:5000: handshake failed while verifying the client certificate: \
             sent alert 45 certificate_expired (certificate expired (certificate has expired))"
        );
    }
}
