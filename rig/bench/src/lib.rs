//! rig-bench: the places the rig runs on, and the devices and instruments in them.
//!
//! - [`diag`]: file diagnostics shared by every TOML file the rig reads
//!   (`path:line:column`, field, expected, "did you mean").
//! - [`file`]: bench files (TOML), read into raw types and validated into [`file::Bench`].
//! - [`profile`]: device profiles that map DUT actions to console lines.
//! - [`console`]: the captured DUT console (timestamped lines, log file, waits).
//! - [`dut`]: the [`dut::Dut`] trait every target implements.
//! - [`target`]: target kinds (`sim`, `process`), opened with [`target::open`].
//! - [`template`]: `{placeholder}` templates in command and console lines.
//! - [`doctor`]: what a bench needs from the host, checked.

pub mod console;
pub mod diag;
pub mod doctor;
pub mod dut;
pub mod file;
pub mod profile;
pub mod target;
pub mod template;

mod error;
pub use error::BenchError;
