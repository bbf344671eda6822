//! Errors of bench files, targets and instruments.
//!
//! Each variant says what went wrong and where (file, program, pattern,
//! timeout), so the CLI can print it as is. Infrastructure problems (a program
//! that cannot be spawned) are kept apart from what the DUT did (it exited, it
//! never printed the expected line), so the engine can map them to the right
//! verdict.

use std::path::PathBuf;
use std::time::Duration;

use crate::diag::Diagnostics;

/// What went wrong in a bench operation.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The profile does not define this action.
    #[error("the device profile does not define action `{0}`")]
    Unsupported(String),

    /// A bench, profile or suite file is invalid (every problem listed).
    #[error("{0}")]
    Invalid(Diagnostics),

    /// The target kind (or console kind) exists in the schema but this build
    /// cannot drive it yet.
    #[error("{what} is not supported yet on this build")]
    NotSupported {
        /// What, e.g. `target kind "probe-rs"`.
        what: String,
    },

    /// The reference agent binary was not found.
    #[error(
        "cannot find the reference agent `rig-agent`; looked in: {}. Build it with `cargo build -p rig-agent`, or set RIG_AGENT or `target.agent` in the bench file",
        looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    AgentNotFound {
        /// Every place that was tried.
        looked: Vec<PathBuf>,
    },

    /// The DUT program could not be started.
    #[error("cannot start the DUT `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },

    /// A placeholder or action argument has no value.
    #[error("{0}")]
    Template(String),

    /// The DUT is not running (never started, or exited).
    #[error("the DUT is not running: {0}")]
    NotRunning(String),

    /// The console did not show the expected text in time.
    #[error("the DUT console did not show `{pattern}` within {:.1} s{}", timeout.as_secs_f64(), last_line.as_ref().map(|l| format!(" (last line: `{l}`)")).unwrap_or_default())]
    ConsoleTimeout {
        /// The substring waited for.
        pattern: String,
        /// How long.
        timeout: Duration,
        /// The last console line seen, if any.
        last_line: Option<String>,
    },

    /// The DUT answered an action with its failure pattern.
    #[error("the DUT refused `{action}`: {line}")]
    ActionFailed {
        /// The action.
        action: String,
        /// The console line that reported the failure.
        line: String,
    },

    /// The power meter failed (bus, chip, sampler, CSV file).
    #[error("power meter: {0}")]
    Power(String),

    /// A serial console could not be opened, configured or read.
    #[error("serial console {port}: {what}")]
    Serial {
        /// The by-id path.
        port: PathBuf,
        /// What went wrong.
        what: String,
    },

    /// The chip, the debug probe or the download failed (infrastructure).
    #[error("{0}")]
    Probe(String),

    /// The firmware file does not suit the chip (checked before any probe is touched).
    #[error("firmware {}: {problem}", path.display())]
    Firmware {
        /// The firmware file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },

    /// The bench is leased by another run (or the lease file is unusable).
    #[error("{0}")]
    Lease(String),

    /// Writing to the console or the evidence files failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// Instrument and hardware errors: power meter, serial port, probe, firmware, lease.
impl BenchError {
    /// A power-meter problem (I2C bus, chip, sampler, CSV).
    pub fn power(what: impl Into<String>) -> Self {
        BenchError::Power(what.into())
    }
}

impl From<Diagnostics> for BenchError {
    fn from(d: Diagnostics) -> Self {
        BenchError::Invalid(d)
    }
}
