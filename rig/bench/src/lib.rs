//! rig-bench: the places the rig runs on, and the devices and instruments in them.
//!
//! - [`diag`]: file diagnostics shared by every TOML file the rig reads
//!   (`path:line:column`, field, expected, "did you mean").
//! - [`file`](mod@file): bench files (TOML), read into raw types and validated into [`file::Bench`].
//! - [`profile`]: device profiles that map DUT actions to console lines.
//! - [`console`]: the captured DUT console (timestamped lines, log file, waits).
//! - [`dut`]: the [`dut::Dut`] trait every target implements.
//! - [`target`]: target kinds (`sim`, `process`), opened with [`target::open`].
//! - [`template`]: `{placeholder}` templates in command and console lines.
//! - [`doctor`]: what a bench needs from the host, checked.
//! - [`power`]: INA219 power meter (real I2C or simulated registers fed by an
//!   energy model), sampler thread, CSV and energy per window.
//! - [`serial`]: serial consoles (by-id ports, line settings, break,
//!   reconnect after re-enumeration) into the same [`console::Console`].
//! - [`probe`]: the probe-rs target (chip lookup, firmware-fit checks, probe
//!   selection, download with progress, reset, RTT).
//! - [`lock`]: bench leases (lock file with heartbeat and maximum hold time).
//! - [`scan`]: what is attached (probes, serial ports by id, I2C buses) and a
//!   bench-file skeleton for it (`rig bench scan`).
//! - [`ssh`]: the SSH target (a Linux board such as a Raspberry Pi): deploy
//!   the agent, start it as a process or a systemd service, stream its console.
//! - [`switch`]: power switches (a command or a uhubctl hub port) behind
//!   [`dut::Dut::power_cycle`].
//! - [`limits`]: limits with a marginal band for measurements.
//!
//! How the CLI uses it:
//!
//! ```text
//!  hardware/x.toml ──Bench::load──► Bench ──target::open──► Box<dyn Dut>
//!        │   (every problem at once:        │                    │ start(&DutConfig) → spawn, `ready`
//!        │    Diagnostics with file:line)   │                    │ act(&DutAction)   → profile line, expect
//!        └─ profiles/y.toml ──► Profile ────┘                    │ expect_console, stop (quit → TERM → KILL)
//!                                                                └─► console/dut.log in the evidence folder
//!  doctor::check(&Bench) → Vec<Check>  (facts; the CLI prints them)
//! ```
//!
//! The crate never creates a tokio runtime: [`dut::Dut`] methods are called
//! from the CLI's runtime.

pub mod console;
pub mod diag;
pub mod doctor;
pub mod dut;
pub mod file;
pub mod limits;
pub mod lock;
pub mod power;
pub mod probe;
pub mod profile;
pub mod scan;
pub mod serial;
pub mod ssh;
pub mod switch;
pub mod target;
pub mod template;

mod error;
pub use error::BenchError;
