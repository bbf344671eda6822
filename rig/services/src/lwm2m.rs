//! The LwM2M server (being written).

/// Handle to the rig's LwM2M server (being written).
#[derive(Clone, Debug)]
pub struct Lwm2mServer;
