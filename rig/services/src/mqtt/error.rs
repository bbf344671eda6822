//! Errors of the MQTT side: test PKI, brokers, the platform emulator.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Something on the MQTT side could not be set up, or an operation on it failed.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// A file of the test PKI or of a broker could not be written or read.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Generating a key or a certificate failed.
    #[error("test PKI: cannot make {what}: {reason}")]
    Pki {
        /// Which key or certificate.
        what: String,
        /// The generator's message.
        reason: String,
    },
    /// A socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The broker could not be started, or did not accept connections in time.
    #[error("{broker} broker: {reason}")]
    BrokerStart {
        /// `embedded` or `mosquitto`.
        broker: &'static str,
        /// What went wrong, with the broker's own log where there is one.
        reason: String,
    },
    /// A TLS client configuration could not be built from the given PEM data.
    #[error("TLS client configuration: {0}")]
    Tls(String),
    /// The MQTT connection failed (refused, TLS alert, closed).
    #[error("MQTT connection of `{client_id}` to {addr}: {reason}")]
    Connection {
        /// The client id.
        client_id: String,
        /// The broker address.
        addr: SocketAddr,
        /// What happened.
        reason: String,
    },
    /// A publish or subscribe could not be queued (the client has stopped).
    #[error("MQTT client `{client_id}`: {reason}")]
    Client {
        /// The client id.
        client_id: String,
        /// What happened.
        reason: String,
    },
    /// A wait ended without seeing what it waited for.
    #[error("timed out after {:.1} s waiting for {what}", timeout.as_secs_f64())]
    Timeout {
        /// What was awaited.
        what: String,
        /// The time waited.
        timeout: Duration,
    },
    /// A request named something that does not exist (thing, job).
    #[error("{0}")]
    NotFound(String),
}

impl MqttError {
    pub(crate) fn file(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        MqttError::File {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn pki(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        MqttError::Pki {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}
