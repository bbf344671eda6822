//! Errors of reporters: which file could not be written, and why.

use std::path::PathBuf;

/// What went wrong while writing a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file or directory could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file a reporter reads (a case's series) could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file a reporter reads is not what it should be.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line and column where known.
        message: String,
    },
    /// A report could not be serialized.
    #[error("cannot serialize {what}: {message}")]
    Serialize {
        /// Which report (`junit.xml`, `run.json`, ...).
        what: &'static str,
        /// The serializer's message.
        message: String,
    },
}
