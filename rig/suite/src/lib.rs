//! rig-suite: the engine that runs cases against a DUT, and the case library.
//!
//! Layout:
//! - [`file`]: suite files (TOML), read into raw types and validated.
//! - [`case`]: what a case is ([`case::CaseDef`]) and the context its body gets.
//! - [`start`]: bringing the DUT to a case's start state (ETS appendix C).
//! - [`engine`]: plan, run each case under nested timeouts, emit events.
//! - [`repeat`]: pass rates of `rig run --repeat N`.
//! - [`cases`]: the case library (OMA ETS cases by id, MachNation scenarios).
//!
//! The engine never parses bytes and never formats output: it drives cases and
//! emits [`rig_report::events::RunEvent`]s for the reporters.

pub mod case;
pub mod cases;
pub mod engine;
pub mod file;
pub mod repeat;
pub mod start;
