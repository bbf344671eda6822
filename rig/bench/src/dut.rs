//! The device under test as the engine and the cases see it.
//!
//! Every target kind (sim, process, and later probe-rs and ssh) implements
//! [`Dut`]. A [`DutConfig`] says how the DUT should be provisioned when it
//! starts; the target turns that into command-line placeholders or console lines
//! through its device profile. Drivers never decide verdicts: they report what
//! happened as [`BenchError`]s and console text.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use crate::BenchError;

/// How the DUT's LwM2M client is provisioned at start (ETS appendix C, reduced
/// to what the DUT needs to know).
#[derive(Clone, Debug, PartialEq)]
pub struct DutConfig {
    /// The endpoint name the DUT registers with.
    pub endpoint: String,
    /// The LwM2M server's URI, e.g. `coap://127.0.0.1:5683`.
    pub server_uri: String,
    /// Short Server ID of the server account.
    pub ssid: u16,
    /// Registration lifetime in seconds (at time scale 1).
    pub lifetime_s: u32,
    /// Binding, e.g. `U`.
    pub binding: String,
    /// Default minimum period (`/1/x/2`), if set.
    pub default_pmin_s: Option<u32>,
    /// Default maximum period (`/1/x/3`), if set.
    pub default_pmax_s: Option<u32>,
    /// Time scale divisor the DUT should apply to its own protocol timers
    /// (only the reference agent honours it; 1.0 = real time).
    pub time_scale: f64,
    /// Extra placeholders for a process command line or profile lines.
    pub extra: BTreeMap<String, String>,
}

/// Something a case asks the DUT to do, mapped to console lines by the profile.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DutAction {
    /// Reboot the device (it registers again afterwards).
    Reboot,
    /// Send a Registration Update now.
    TriggerUpdate,
    /// Factory reset.
    FactoryReset,
    /// A profile-defined action by name, with arguments.
    Custom(String, Vec<String>),
}

/// The console log captured from the DUT since it was first started.
pub trait ConsoleLog: Send + Sync {
    /// A position in the log, to take a slice later.
    fn mark(&self) -> usize;
    /// The text since a mark.
    fn since(&self, mark: usize) -> String;
    /// The last `n` lines.
    fn tail(&self, n: usize) -> String;
    /// The file the whole log is written to, if any.
    fn path(&self) -> Option<PathBuf>;
}

/// A device under test.
#[async_trait]
pub trait Dut: Send + Sync {
    /// Starts the DUT (spawning, flashing or deploying as its kind needs) with this
    /// provisioning. If it is already running, it is stopped first.
    async fn start(&mut self, config: &DutConfig) -> Result<(), BenchError>;

    /// Stops the DUT. Stopping a stopped DUT is not an error.
    async fn stop(&mut self) -> Result<(), BenchError>;

    /// Performs an action through the device profile: sends its line and, if the
    /// profile says what to expect, waits for it (only output after the line
    /// was sent counts). Returns [`BenchError::Unsupported`] if the profile does
    /// not define it, and [`BenchError::ActionFailed`] if the DUT printed the
    /// action's failure pattern.
    async fn act(&mut self, action: &DutAction) -> Result<(), BenchError>;

    /// Whether the profile defines an action.
    fn supports(&self, action: &DutAction) -> bool;

    /// Waits until the console shows a line matching `pattern` (a plain substring),
    /// at most `timeout`. Returns the matching line.
    ///
    /// The console is read like a stream with a cursor: the search starts after
    /// the last line a previous expectation (or action) consumed, or after the
    /// DUT's start, so a line printed just before the call is still found, and
    /// each line is consumed once. A DUT that has exited fails the wait at once
    /// ([`BenchError::NotRunning`] with its exit status), not at the timeout.
    async fn expect_console(
        &mut self,
        pattern: &str,
        timeout: Duration,
    ) -> Result<String, BenchError>;

    /// The console log.
    fn console(&self) -> &dyn ConsoleLog;

    /// Whether the DUT process (or board) is alive, as far as the target can tell.
    fn is_running(&mut self) -> bool;

    /// Identity facts for the report: kind, command or chip, firmware hash, versions.
    fn identity(&self) -> BTreeMap<String, String>;

    /// Cuts and restores the DUT's power through the bench's
    /// `target.power_switch`, to recover a board that stopped answering;
    /// call [`Dut::start`] afterwards. [`BenchError::Unsupported`] when the
    /// bench has no switch.
    async fn power_cycle(&mut self) -> Result<(), BenchError> {
        Err(BenchError::Unsupported("power_cycle".into()))
    }
}
