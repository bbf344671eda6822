//! rig-agent: the rig's reference DUT, an LwM2M 1.1 client on rig-proto.
//!
//! - [`config`]: the command line.
//! - [`console`]: the line protocol on stdin/stdout (see `README.md`).
//! - [`objects`]: objects 0, 1, 3 and the test object 33333 (4, 6, 7, 16
//!   with `--objects`), with access rules.
//! - [`bootstrap`]: the accounts (/0, /1, /2) and the client-initiated
//!   bootstrap session, sans-IO.
//! - [`client`]: the LwM2M client logic (registration, operations), sans-IO.
//! - [`mqtt`]: the MQTT client (`--mqtt`), AWS-IoT-like or plain.
//! - [`fota`]: firmware update: Object 5, push, pull, resume (`--state-dir`).
//! - [`observe`]: observations, notification attributes and when to notify.
//! - [`queue`]: queue mode, when the agent is reachable.
//! - [`driver`]: the thin tokio driver: socket, console channels, timer.
//! - `dtls_webrtc` (feature `webrtc-dtls`, on by default): the second DTLS
//!   backend, webrtc-dtls (pure Rust), for `--dtls-backend webrtc`.
//!
//! The binary (`main.rs`) connects [`driver::run`] to stdin/stdout; tests run
//! the same driver in-process over channels.

pub mod bootstrap;
pub mod client;
pub mod config;
pub mod console;
pub mod driver;
#[cfg(feature = "webrtc-dtls")]
pub mod dtls_webrtc;
pub mod fota;
pub mod mqtt;
pub mod objects;
pub mod observe;
pub mod queue;
