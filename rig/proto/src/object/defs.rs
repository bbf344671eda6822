//! Built-in object definitions, transcribed from the OMA LwM2M registry
//! (<https://github.com/OpenMobileAlliance/lwm2m-registry>, files `<id>.xml`
//! and `version_history/`). Each constant says which object version and URN it
//! follows. Where the registry's newest file is a later version than the one
//! cited, only the resources that exist in the cited version are listed.
//!
//! Operations are written as in the registry: the Security object's resources
//! have none (only a Bootstrap-Server may touch them).

use alloc::borrow::Cow;

use super::Operations::{E, None as NoOp, R, RW, W};
use super::ResourceType::{
    Boolean, Float, Integer, None as Exec, ObjectLink, Opaque, String, Time, UnsignedInteger,
};
use super::{ObjectDef, ResourceDef};

#[allow(clippy::too_many_arguments)]
const fn def(
    id: u16,
    name: &'static str,
    version: &'static str,
    lwm2m_version: &'static str,
    urn: &'static str,
    multiple: bool,
    mandatory: bool,
    resources: &'static [ResourceDef],
) -> ObjectDef {
    ObjectDef {
        id,
        name: Cow::Borrowed(name),
        version: Cow::Borrowed(version),
        lwm2m_version: Cow::Borrowed(lwm2m_version),
        urn: Cow::Borrowed(urn),
        multiple,
        mandatory,
        resources: Cow::Borrowed(resources),
    }
}

const S: bool = false; // single
const M: bool = true; // multiple
const MAND: bool = true;
const OPT: bool = false;

macro_rules! res {
    ($id:expr, $name:expr, $ops:expr, $multi:expr, $mand:expr, $kind:expr) => {
        ResourceDef::new($id, $name, $ops, $multi, $mand, $kind, "")
    };
    ($id:expr, $name:expr, $ops:expr, $multi:expr, $mand:expr, $kind:expr, $units:expr) => {
        ResourceDef::new($id, $name, $ops, $multi, $mand, $kind, $units)
    };
}

/// Object 0, LwM2M Security, object version 1.1 (`urn:oma:lwm2m:oma:0:1.1`),
/// resources 0-17 (registry 0.xml; 18-29 arrived in object version 1.2).
/// Name, operations, multiplicity, mandatory and type of 0-17 checked one by
/// one against the registry's 0.xml (object version 1.2) on 2026-11-28.
pub const SECURITY: ObjectDef = def(
    0,
    "LWM2M Security",
    "1.1",
    "1.1",
    "urn:oma:lwm2m:oma:0:1.1",
    M,
    MAND,
    SECURITY_RESOURCES,
);

const SECURITY_RESOURCES: &[ResourceDef] = &[
    res!(0, "LWM2M Server URI", NoOp, S, MAND, String),
    res!(1, "Bootstrap-Server", NoOp, S, MAND, Boolean),
    res!(2, "Security Mode", NoOp, S, MAND, Integer),
    res!(3, "Public Key or Identity", NoOp, S, MAND, Opaque),
    res!(4, "Server Public Key", NoOp, S, MAND, Opaque),
    res!(5, "Secret Key", NoOp, S, MAND, Opaque),
    res!(6, "SMS Security Mode", NoOp, S, OPT, Integer),
    res!(7, "SMS Binding Key Parameters", NoOp, S, OPT, Opaque),
    res!(8, "SMS Binding Secret Key(s)", NoOp, S, OPT, Opaque),
    res!(9, "LwM2M Server SMS Number", NoOp, S, OPT, String),
    res!(10, "Short Server ID", NoOp, S, OPT, Integer),
    res!(11, "Client Hold Off Time", NoOp, S, OPT, Integer, "s"),
    res!(
        12,
        "Bootstrap-Server Account Timeout",
        NoOp,
        S,
        OPT,
        Integer,
        "s"
    ),
    res!(13, "Matching Type", NoOp, S, OPT, UnsignedInteger),
    res!(14, "SNI", NoOp, S, OPT, String),
    res!(15, "Certificate Usage", NoOp, S, OPT, UnsignedInteger),
    res!(16, "DTLS/TLS Ciphersuite", NoOp, M, OPT, UnsignedInteger),
    res!(17, "OSCORE Security Mode", NoOp, S, OPT, ObjectLink),
];

/// Object 1, LwM2M Server, object version 1.1 (`urn:oma:lwm2m:oma:1:1.1`),
/// resources 0-23 (types checked against registry 1.xml; 24+ are 1.2).
/// Name, operations, multiplicity, mandatory and type of 0-23 checked one by
/// one against the registry's 1.xml (object version 1.2) on 2026-11-28.
pub const SERVER: ObjectDef = def(
    1,
    "LwM2M Server",
    "1.1",
    "1.1",
    "urn:oma:lwm2m:oma:1:1.1",
    M,
    MAND,
    SERVER_RESOURCES,
);

const SERVER_RESOURCES: &[ResourceDef] = &[
    res!(0, "Short Server ID", R, S, MAND, Integer),
    res!(1, "Lifetime", RW, S, MAND, UnsignedInteger, "s"),
    res!(2, "Default Minimum Period", RW, S, OPT, Integer, "s"),
    res!(3, "Default Maximum Period", RW, S, OPT, Integer, "s"),
    res!(4, "Disable", E, S, OPT, Exec),
    res!(5, "Disable Timeout", RW, S, OPT, Integer, "s"),
    res!(
        6,
        "Notification Storing When Disabled or Offline",
        RW,
        S,
        MAND,
        Boolean
    ),
    res!(7, "Binding", RW, S, MAND, String),
    res!(8, "Registration Update Trigger", E, S, MAND, Exec),
    res!(9, "Bootstrap-Request Trigger", E, S, OPT, Exec),
    res!(10, "APN Link", RW, S, OPT, ObjectLink),
    res!(11, "TLS-DTLS Alert Code", R, S, OPT, UnsignedInteger),
    res!(12, "Last Bootstrapped", R, S, OPT, Time),
    res!(
        13,
        "Registration Priority Order",
        R,
        S,
        OPT,
        UnsignedInteger
    ),
    res!(
        14,
        "Initial Registration Delay Timer",
        RW,
        S,
        OPT,
        UnsignedInteger,
        "s"
    ),
    res!(15, "Registration Failure Block", R, S, OPT, Boolean),
    res!(16, "Bootstrap on Registration Failure", R, S, OPT, Boolean),
    res!(17, "Communication Retry Count", RW, S, OPT, UnsignedInteger),
    res!(
        18,
        "Communication Retry Timer",
        RW,
        S,
        OPT,
        UnsignedInteger,
        "s"
    ),
    res!(
        19,
        "Communication Sequence Delay Timer",
        RW,
        S,
        OPT,
        UnsignedInteger,
        "s"
    ),
    res!(
        20,
        "Communication Sequence Retry Count",
        RW,
        S,
        OPT,
        UnsignedInteger
    ),
    res!(21, "Trigger", RW, S, OPT, Boolean),
    res!(22, "Preferred Transport", RW, S, OPT, String),
    res!(23, "Mute Send", RW, S, OPT, Boolean),
];

/// Object 2, LwM2M Access Control, object version 1.1 (`urn:oma:lwm2m:oma:2:1.1`,
/// registry 2.xml; same resources as 1.0).
pub const ACCESS_CONTROL: ObjectDef = def(
    2,
    "LwM2M Access Control",
    "1.1",
    "1.0",
    "urn:oma:lwm2m:oma:2:1.1",
    M,
    OPT,
    ACCESS_CONTROL_RESOURCES,
);

const ACCESS_CONTROL_RESOURCES: &[ResourceDef] = &[
    res!(0, "Object ID", R, S, MAND, Integer),
    res!(1, "Object Instance ID", R, S, MAND, Integer),
    res!(2, "ACL", RW, M, OPT, Integer),
    res!(3, "Access Control Owner", RW, S, MAND, Integer),
];

/// Object 3, Device, object version 1.1 (`urn:oma:lwm2m:oma:3:1.1`), resources 0-22
/// (checked against registry 3.xml, whose 1.2 has the same resources).
pub const DEVICE: ObjectDef = def(
    3,
    "Device",
    "1.1",
    "1.1",
    "urn:oma:lwm2m:oma:3:1.1",
    S,
    MAND,
    DEVICE_RESOURCES,
);

const DEVICE_RESOURCES: &[ResourceDef] = &[
    res!(0, "Manufacturer", R, S, OPT, String),
    res!(1, "Model Number", R, S, OPT, String),
    res!(2, "Serial Number", R, S, OPT, String),
    res!(3, "Firmware Version", R, S, OPT, String),
    res!(4, "Reboot", E, S, MAND, Exec),
    res!(5, "Factory Reset", E, S, OPT, Exec),
    res!(6, "Available Power Sources", R, M, OPT, Integer),
    res!(7, "Power Source Voltage", R, M, OPT, Integer),
    res!(8, "Power Source Current", R, M, OPT, Integer),
    res!(9, "Battery Level", R, S, OPT, Integer, "/100"),
    res!(10, "Memory Free", R, S, OPT, Integer),
    res!(11, "Error Code", R, M, MAND, Integer),
    res!(12, "Reset Error Code", E, S, OPT, Exec),
    res!(13, "Current Time", RW, S, OPT, Time),
    res!(14, "UTC Offset", RW, S, OPT, String),
    res!(15, "Timezone", RW, S, OPT, String),
    res!(16, "Supported Binding and Modes", R, S, MAND, String),
    res!(17, "Device Type", R, S, OPT, String),
    res!(18, "Hardware Version", R, S, OPT, String),
    res!(19, "Software Version", R, S, OPT, String),
    res!(20, "Battery Status", R, S, OPT, Integer),
    res!(21, "Memory Total", R, S, OPT, Integer),
    res!(22, "ExtDevInfo", R, M, OPT, ObjectLink),
];

/// Object 4, Connectivity Monitoring, object version 1.3
/// (`urn:oma:lwm2m:oma:4:1.3`, registry 4.xml), resources 0-13.
pub const CONNECTIVITY_MONITORING: ObjectDef = def(
    4,
    "Connectivity Monitoring",
    "1.3",
    "1.1",
    "urn:oma:lwm2m:oma:4:1.3",
    S,
    OPT,
    CONNECTIVITY_MONITORING_RESOURCES,
);

const CONNECTIVITY_MONITORING_RESOURCES: &[ResourceDef] = &[
    res!(0, "Network Bearer", R, S, MAND, Integer),
    res!(1, "Available Network Bearer", R, M, MAND, Integer),
    res!(2, "Radio Signal Strength", R, S, MAND, Integer),
    res!(3, "Link Quality", R, S, OPT, Integer),
    res!(4, "IP Addresses", R, M, MAND, String),
    res!(5, "Router IP Addresses", R, M, OPT, String),
    res!(6, "Link Utilization", R, S, OPT, Integer, "/100"),
    res!(7, "APN", R, M, OPT, String),
    res!(8, "Cell ID", R, S, OPT, Integer),
    res!(9, "SMNC", R, S, OPT, Integer),
    res!(10, "SMCC", R, S, OPT, Integer),
    res!(11, "SignalSNR", R, S, OPT, Integer, "dB"),
    res!(12, "LAC", R, S, OPT, Integer),
    res!(13, "Coverage Enhancement Level", R, S, OPT, Integer),
];

/// Object 5, Firmware Update, object version 1.1 (`urn:oma:lwm2m:oma:5:1.1`, registry 5.xml).
/// Resource 4 does not exist (removed before LwM2M 1.0 was approved).
pub const FIRMWARE_UPDATE: ObjectDef = def(
    5,
    "Firmware Update",
    "1.1",
    "1.1",
    "urn:oma:lwm2m:oma:5:1.1",
    S,
    OPT,
    FIRMWARE_UPDATE_RESOURCES,
);

const FIRMWARE_UPDATE_RESOURCES: &[ResourceDef] = &[
    res!(0, "Package", W, S, MAND, Opaque),
    res!(1, "Package URI", RW, S, MAND, String),
    res!(2, "Update", E, S, MAND, Exec),
    res!(3, "State", R, S, MAND, Integer),
    res!(5, "Update Result", R, S, MAND, Integer),
    res!(6, "PkgName", R, S, OPT, String),
    res!(7, "PkgVersion", R, S, OPT, String),
    res!(8, "Firmware Update Protocol Support", R, M, OPT, Integer),
    res!(9, "Firmware Update Delivery Method", R, S, MAND, Integer),
    res!(10, "Cancel", E, S, OPT, Exec),
    res!(11, "Severity", RW, S, OPT, Integer),
    res!(12, "Last State Change Time", R, S, OPT, Time),
    res!(13, "Maximum Defer Period", RW, S, OPT, UnsignedInteger, "s"),
];

/// Object 6, Location, object version 1.1 (registry 6.xml, whose URN stays
/// `urn:oma:lwm2m:oma:6`; 1.1 made 0-2 writable and added 8-12).
pub const LOCATION: ObjectDef = def(
    6,
    "Location",
    "1.1",
    "1.0",
    "urn:oma:lwm2m:oma:6",
    S,
    OPT,
    LOCATION_RESOURCES,
);

const LOCATION_RESOURCES: &[ResourceDef] = &[
    res!(0, "Latitude", RW, S, MAND, Float, "lat"),
    res!(1, "Longitude", RW, S, MAND, Float, "lon"),
    res!(2, "Altitude", RW, S, OPT, Float, "m"),
    res!(3, "Radius", R, S, OPT, Float, "m"),
    res!(4, "Velocity", R, S, OPT, Opaque),
    res!(5, "Timestamp", R, S, MAND, Time),
    res!(6, "Speed", R, S, OPT, Float, "m/s"),
    res!(8, "Expected Latitude", RW, S, OPT, Float, "lat"),
    res!(9, "Expected Longitude", RW, S, OPT, Float, "lon"),
    res!(10, "Expected Altitude", RW, S, OPT, Float, "m"),
    res!(11, "Location Change Threshold", RW, S, OPT, Float, "m"),
    res!(12, "Location Changed", R, S, OPT, Boolean),
];

/// Object 7, Connectivity Statistics, object version 1.0 (`urn:oma:lwm2m:oma:7`).
pub const CONNECTIVITY_STATISTICS: ObjectDef = def(
    7,
    "Connectivity Statistics",
    "1.0",
    "1.0",
    "urn:oma:lwm2m:oma:7",
    S,
    OPT,
    CONNECTIVITY_STATISTICS_RESOURCES,
);

const CONNECTIVITY_STATISTICS_RESOURCES: &[ResourceDef] = &[
    res!(0, "SMS Tx Counter", R, S, OPT, Integer),
    res!(1, "SMS Rx Counter", R, S, OPT, Integer),
    res!(2, "Tx Data", R, S, OPT, Integer),
    res!(3, "Rx Data", R, S, OPT, Integer),
    res!(4, "Max Message Size", R, S, OPT, Integer, "B"),
    res!(5, "Average Message Size", R, S, OPT, Integer, "B"),
    res!(6, "Start", E, S, MAND, Exec),
    res!(7, "Stop", E, S, MAND, Exec),
    res!(8, "Collection Period", RW, S, OPT, Integer, "s"),
];

/// Object 16, Portfolio, object version 1.0 (`urn:oma:lwm2m:oma:16`).
/// Checked on 2026-11-28 against the OMA registry catalogue entry for object
/// 16 and Zephyr's object 16 implementation: they agree on every resource but
/// AuthData (2), which the catalogue lists as String and Zephyr (and this
/// table) as Opaque; the 1.0 XML file itself was not at hand to settle it.
pub const PORTFOLIO: ObjectDef = def(
    16,
    "Portfolio",
    "1.0",
    "1.0",
    "urn:oma:lwm2m:oma:16",
    M,
    OPT,
    PORTFOLIO_RESOURCES,
);

const PORTFOLIO_RESOURCES: &[ResourceDef] = &[
    res!(0, "Identity", RW, M, MAND, String),
    res!(1, "GetAuthData", E, S, OPT, Exec),
    res!(2, "AuthData", R, M, OPT, Opaque),
    res!(3, "AuthStatus", R, S, OPT, Integer),
];

/// Object 19, BinaryAppDataContainer, object version 1.0 (`urn:oma:lwm2m:oma:19`).
/// Checked on 2026-11-28 against Zephyr's object 19 implementation (same
/// resources, operations and types; Zephyr narrows 1 and 5 to u8/u16).
pub const BINARY_APP_DATA: ObjectDef = def(
    19,
    "BinaryAppDataContainer",
    "1.0",
    "1.0",
    "urn:oma:lwm2m:oma:19",
    M,
    OPT,
    BINARY_APP_DATA_RESOURCES,
);

const BINARY_APP_DATA_RESOURCES: &[ResourceDef] = &[
    res!(0, "Data", RW, M, MAND, Opaque),
    res!(1, "Data Priority", RW, S, OPT, Integer),
    res!(2, "Data Creation Time", RW, S, OPT, Time),
    res!(3, "Data Description", RW, S, OPT, String),
    res!(4, "Data Format", RW, S, OPT, String),
    res!(5, "App ID", RW, S, OPT, Integer),
];

/// Object 3303, Temperature (IPSO), object version 1.1 (`urn:oma:lwm2m:ext:3303:1.1`).
pub const TEMPERATURE: ObjectDef = def(
    3303,
    "Temperature",
    "1.1",
    "1.0",
    "urn:oma:lwm2m:ext:3303:1.1",
    M,
    OPT,
    TEMPERATURE_RESOURCES,
);

const TEMPERATURE_RESOURCES: &[ResourceDef] = &[
    res!(5518, "Timestamp", R, S, OPT, Time),
    res!(5601, "Min Measured Value", R, S, OPT, Float),
    res!(5602, "Max Measured Value", R, S, OPT, Float),
    res!(5603, "Min Range Value", R, S, OPT, Float),
    res!(5604, "Max Range Value", R, S, OPT, Float),
    res!(5605, "Reset Min and Max Measured Values", E, S, OPT, Exec),
    res!(5700, "Sensor Value", R, S, MAND, Float),
    res!(5701, "Sensor Units", R, S, OPT, String),
    res!(5750, "Application Type", RW, S, OPT, String),
    res!(6042, "Measurement Quality Indicator", R, S, OPT, Integer),
    res!(6049, "Measurement Quality Level", R, S, OPT, Integer),
    res!(6050, "Fractional Timestamp", R, S, OPT, Float, "s"),
];

/// Object id of the rig test object.
pub const TEST_OBJECT_ID: u16 = 33333;

/// Object 33333, the rig test object: the MachNation 2020 study's test
/// object with a string, an integer, a float and a boolean, all RW. Not in the
/// OMA registry; 33333 lies in the private range (32769-42767), so it can
/// never collide with a registered object. Single instance, optional.
pub const TEST_OBJECT: ObjectDef = def(
    TEST_OBJECT_ID,
    "rig test object",
    "1.0",
    "1.1",
    "urn:oma:lwm2m:x:33333",
    S,
    OPT,
    TEST_OBJECT_RESOURCES,
);

const TEST_OBJECT_RESOURCES: &[ResourceDef] = &[
    res!(0, "String Value", RW, S, MAND, String),
    res!(1, "Integer Value", RW, S, MAND, Integer),
    res!(2, "Float Value", RW, S, MAND, Float),
    res!(3, "Boolean Value", RW, S, MAND, Boolean),
];

/// Every built-in object definition.
pub const ALL: &[ObjectDef] = &[
    SECURITY,
    SERVER,
    ACCESS_CONTROL,
    DEVICE,
    CONNECTIVITY_MONITORING,
    FIRMWARE_UPDATE,
    LOCATION,
    CONNECTIVITY_STATISTICS,
    PORTFOLIO,
    BINARY_APP_DATA,
    TEMPERATURE,
    TEST_OBJECT,
];
