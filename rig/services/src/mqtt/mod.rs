//! MQTT side of the rig (being written).
