//! rig-agent: the rig's reference DUT, an LwM2M 1.1 client on rig-proto.
//!
//! - [`config`]: the command line.
//! - [`console`]: the line protocol on stdin/stdout (see `README.md`).
//! - [`objects`]: objects 0, 1, 3 and the test object 33333, with access rules.
//! - [`client`]: the LwM2M client logic (registration, operations), sans-IO.
//! - [`driver`]: the thin tokio driver: socket, console channels, timer.
//!
//! The binary (`main.rs`) connects [`driver::run`] to stdin/stdout; tests run
//! the same driver in-process over channels.

pub mod client;
pub mod config;
pub mod console;
pub mod driver;
pub mod objects;
