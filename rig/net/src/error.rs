//! The crate's error type: one enum, each variant carrying what failed and
//! the context needed to fix it (file, namespace, interface, command).

use std::path::PathBuf;

/// Everything that can go wrong in rig-net.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The process lacks a capability needed to build the simulated network.
    #[error(
        "missing capability {missing}: the simulated network needs CAP_NET_ADMIN, CAP_NET_RAW \
         and CAP_SYS_ADMIN (named namespaces are bind mounts). Run rig as root, or grant them \
         with `sudo setcap cap_net_admin,cap_net_raw,cap_sys_admin+ep <path to rig>`"
    )]
    MissingCapability {
        /// The capabilities that are missing, comma separated.
        missing: String,
    },
    /// A helper command (`ip ...`) failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status, or the spawn error.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done (names the namespace or interface).
        what: String,
        /// The OS error.
        source: nix::Error,
    },
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done (names the file).
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A capture file is malformed.
    #[error("bad capture {path}: {reason}")]
    BadCapture {
        /// The file.
        path: PathBuf,
        /// What is wrong and where.
        reason: String,
    },
    /// An impairment or profile description is invalid.
    #[error("bad impairment config {source_name}: {reason}")]
    BadConfig {
        /// Where it came from (profile name or file).
        source_name: String,
        /// What is wrong (field and value).
        reason: String,
    },
    /// The bridge thread is gone (it stopped or failed).
    #[error("the link bridge is not running: {0}")]
    BridgeGone(String),
}

/// Result alias for this crate.
pub type Result<T, E = NetError> = std::result::Result<T, E>;
