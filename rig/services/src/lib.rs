//! rig-services: what the DUT talks to.
//!
//! Each service is a cheap, cloneable async handle over one tokio task that
//! owns a socket (a *thin driver*: it moves datagrams and time into a rig-proto
//! state machine and moves datagrams out; it decides nothing). The protocol
//! decisions live in rig-proto and in each service's core module.
//!
//! - [`lwm2m`]: the LwM2M server (registration interface, device management
//!   operations), strict: every deviation from the spec it sees is recorded.
//! - [`deviation`]: the record of one spec deviation seen from one peer.
//!
//! Bootstrap server, MQTT broker and file servers come with their own issues.

pub mod bootstrap;
pub mod deviation;
pub mod file_server;
pub mod lwm2m;
pub mod mqtt;

mod error;
pub use error::{OpError, ServiceError};
