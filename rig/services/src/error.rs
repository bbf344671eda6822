//! Errors of the services: setting one up, and one operation on it.

use std::net::SocketAddr;
use std::time::Duration;

/// A service could not be set up or has stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Binding the socket failed.
    #[error("cannot bind the LwM2M server to {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The service's task has ended (shut down or crashed).
    #[error("the LwM2M server has shut down")]
    ShutDown,
}

/// Why a server operation (Read, Write, Execute, ...) gave no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// The endpoint has no registration, so the server cannot reach it.
    #[error("endpoint `{endpoint}` is not registered")]
    NotRegistered {
        /// The endpoint name.
        endpoint: String,
    },
    /// No response came in time (retransmissions exhausted or the caller's timeout).
    #[error("{operation} {path} on `{endpoint}`: no response within {:.1} s", timeout.as_secs_f64())]
    Timeout {
        /// The endpoint name.
        endpoint: String,
        /// The operation, e.g. `Read`.
        operation: &'static str,
        /// The path.
        path: String,
        /// The time waited.
        timeout: Duration,
    },
    /// The client answered the request with a CoAP Reset.
    #[error("{operation} {path} on `{endpoint}`: the client answered with a Reset")]
    Reset {
        /// The endpoint name.
        endpoint: String,
        /// The operation.
        operation: &'static str,
        /// The path.
        path: String,
    },
    /// The request could not be built or sent (bad path, encoding, socket error).
    #[error("{operation} on `{endpoint}`: {reason}")]
    Request {
        /// The endpoint name.
        endpoint: String,
        /// The operation.
        operation: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The server has shut down.
    #[error("the LwM2M server has shut down")]
    ShutDown,
}

impl OpError {
    /// Whether the operation got no response in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, OpError::Timeout { .. })
    }
}
