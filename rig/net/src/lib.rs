//! rig-net: the simulated and measured network. rig **is** the router
//! upstream of the device: it sees every frame, impairs the link
//! deterministically, captures to pcap and counts bytes exactly.
//!
//! Layers, bottom to top:
//!
//! - [`frame`]: just enough Ethernet/IP/UDP/TCP parsing for accounting and
//!   NAT, with checksum helpers.
//! - [`pcap`]: writing and reading classic pcap files.
//! - [`impair`]: the sans-IO impairment core ([`Pipeline`]), a pure
//!   function of (frames, timestamps, seed): cut, loss (random and
//!   Gilbert-Elliott), duplication, rate limit with a bounded queue, delay
//!   with jitter, reordering. [`nat`]: seeded NAT rebinding.
//! - [`account`]: per-window, per-direction accounting and its named
//!   measurements (`net.packets.up`, `net.l2_bytes.down.coap`, ...).
//! - [`netns`]: the simulated bench ([`SimNetwork`]): DUT and services
//!   namespaces joined through a third one where [`bridge`] runs.
//! - [`bridge`]: the thread that moves frames through the pipelines,
//!   captures per run and per case, and keeps accounting windows.
//! - [`profiles`]: NB-IoT, LTE-M and home Wi-Fi as data.
//! - `nic` (feature `libpcap`): capture on a real NIC with libpcap.
//!
//! Typical use by the engine:
//!
//! ```no_run
//! # fn main() -> Result<(), rig_net::NetError> {
//! use rig_net::{BridgeConfig, SimNetwork};
//! let net = SimNetwork::create("run-2026-11-27T21:00")?;
//! let bridge = net.start_bridge(BridgeConfig::default())?;
//! let server = net.services().bind_udp("10.77.0.1:5683".parse().unwrap())?;
//! let dut = net.dut().command("agent")?.spawn();
//! bridge.start_case(std::path::Path::new("reports/x/captures/case1.pcap"))?;
//! // ... the case runs ...
//! let case = bridge.end_case()?;
//! for m in case.accounting.measurements() { println!("{} = {} {}", m.name, m.value, m.unit); }
//! # drop((server, dut)); Ok(()) }
//! ```

pub mod account;
pub mod bridge;
pub mod error;
pub mod frame;
pub mod impair;
pub mod nat;
pub mod netns;
#[cfg(feature = "libpcap")]
pub mod nic;
pub mod pcap;
pub mod profiles;
mod sys;

pub use account::{Accounting, Direction, Measurement, account_pcap};
pub use bridge::{
    Bridge, BridgeConfig, BridgeControl, BridgeSummary, CaseCapture, FrameTap, TappedFrame,
    dropped_path,
};
pub use error::NetError;
pub use impair::{CutSpec, CutTrigger, DirectionConfig, FlowMatch, LossModel, Pipeline};
pub use netns::{
    DirectLink, Namespace, SimNetwork, check_capabilities, cleanup_own, cleanup_stale,
};
pub use profiles::Profile;
