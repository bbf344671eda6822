//! rig-services: what the DUT talks to (being written).

pub mod lwm2m;
