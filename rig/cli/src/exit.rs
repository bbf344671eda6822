//! The exit codes of `rig`, as in ARCHITECTURE §1.
//!
//! 0 all passed · 1 a case failed · 2 infrastructure error · 3 usage or config
//! error · 4 interrupted. A run's code comes from
//! [`rig_suite::engine::exit_code`].

/// Every case passed (or was not applicable); a command succeeded.
pub(crate) const OK: u8 = 0;
/// Infrastructure error: the DUT, the services or the host failed, not the DUT's behaviour.
pub(crate) const INFRA: u8 = 2;
/// Usage or configuration error: bad flags, bad bench or suite file, nothing planned.
pub(crate) const USAGE: u8 = 3;
