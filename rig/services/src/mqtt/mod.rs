//! The MQTT side of the rig: brokers, the cloud emulator and a test PKI.
//!
//! - [`broker`]: [`Broker`], rumqttd in-process ([`BrokerKind::Embedded`], the
//!   default) or Debian's mosquitto ([`BrokerKind::Mosquitto`], the
//!   reference). Both speak MQTT 3.1.1 over TLS and require client certificates.
//! - [`platform`]: [`Platform`], the AWS-IoT-like cloud (Device Shadow, Jobs)
//!   and the plain-MQTT endpoint, as one rumqttc client that records every
//!   message it sees.
//! - [`shadow`] and [`jobs`]: the sans-IO cores the platform drives.
//! - [`streams`]: [`streams::StreamService`], AWS-IoT-like MQTT file streams
//!   (CBOR block requests with a bitmap), the MQTT block path of FOTA.
//! - [`pki`]: [`TestPki`], CA, broker and client certificates made at run time.
//! - [`client`]: rumqttc options with mutual TLS 1.2, for the platform and for devices.
//!
//! See `README.md` in this directory for topics, document shapes, variants,
//! and what is faithful to AWS and what is not.

pub mod broker;
pub mod client;
pub mod jobs;
pub mod pki;
pub mod platform;
pub mod shadow;
pub mod streams;

mod error;

pub use broker::{Broker, BrokerConfig, BrokerKind, BrokerTls};
pub use client::{ClientTls, mqtt_options, rustls_client_config};
pub use error::MqttError;
pub use jobs::{JobStatus, ota_job_document, presigned_url};
pub use pki::{ClientCreds, PkiProfile, TestPki};
pub use platform::{Direction, Platform, PlatformConfig, SeenMessage};
pub use rumqttc::QoS;
