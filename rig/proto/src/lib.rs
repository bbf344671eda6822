//! rig-proto: the sans-IO LwM2M and CoAP core shared by the rig's servers and
//! the reference agent.
//!
//! Nothing here opens a socket, reads a clock or spawns a task. Callers feed
//! datagrams and the current [`time::Instant`] in, and take datagrams to send
//! and the next deadline out (quinn's vocabulary: `handle_*` in, `poll_*` out).
//!
//! Layers, bottom to top:
//! - [`path`]: typed LwM2M paths and ids (`/o/i/r/ri`).
//! - [`object`]: object definitions (0-7, 16, 19, 3303, the test object) as data.
//! - [`value`] and [`content`]: resource values and every content format
//!   (text, link, opaque, CBOR, SenML JSON/CBOR, TLV, LwM2M JSON/CBOR).
//! - [`link`]: CoRE link format with LwM2M attributes.
//! - [`coap`]: the CoAP message layer (reliability, dedup, Block1/Block2, Observe).
//! - [`attributes`]: notification attribute evaluation (pmin, pmax, gt, lt, st, epmin, epmax).
//! - [`registration`], [`registry`], [`bootstrap`], [`fota`]: LwM2M state machines
//!   that both the client and the server side use.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod time;

pub mod content;
pub mod link;
pub mod object;
pub mod path;
pub mod value;

pub mod attributes;
pub mod bootstrap;
pub mod coap;
pub mod fota;
pub mod registration;
pub mod registry;
