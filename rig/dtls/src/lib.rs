//! rig-dtls: DTLS 1.2 client and server sessions (PSK, RFC 7250 raw public keys, X.509) on
//! OpenSSL 3.6 (vendored), presented as datagram pipes.
//!
//! Like rustls, this crate does no network I/O of its own in its core: a [`Session`] takes
//! received records and the current time, and yields records to send, decrypted datagrams and
//! its next deadline. [`Server`] demultiplexes one socket's worth of peers into sessions, with
//! cookie exchange, a session limit and idle expiry. The optional `tokio` feature adds
//! [`DtlsServerSocket`] and [`DtlsClientSocket`], which look like plain datagram sockets, so the
//! CoAP layer does not know whether it is secured.
//!
//! Errors name the peer, the handshake stage, the alert and one specific [`Reason`].

mod config;
mod credentials;
mod error;
mod ffi;
mod record;
mod server;
mod session;
#[cfg(feature = "tokio")]
mod socket;
mod suite;

pub use config::{
    ClientConfig, ClientContext, ClientCredentials, ServerConfig, ServerContext, ServerIdentity,
    Tuning,
};
pub use credentials::{
    CertificateEntry, CredentialStore, MAX_PSK_IDENTITY, MAX_PSK_KEY, PskEntry, PublicKeyEntry,
    check_identity, check_key, from_hex, load_certificates, load_private_key, load_public_key,
    public_der, spki_sha256_hex, to_hex,
};
pub use error::{AlertDirection, DtlsError, HandshakeFailure, HandshakeStage, Reason};
pub use openssl::pkey::{PKey, Private, Public};
pub use openssl::x509::X509;
pub use record::{Alert, alert_name};
pub use server::{Server, ServerEvent};
pub use session::{PeerIdentity, Role, Session, SessionState};
#[cfg(feature = "tokio")]
pub use socket::{DtlsClientSocket, DtlsServerSocket};
pub use suite::{CipherSuite, suites_from_iana};
