//! rig-report: the events the engine emits and the reporters that consume them.

pub mod events;
