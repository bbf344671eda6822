//! Object definitions as data: which resources an LwM2M object has, their
//! types, operations, multiplicity and whether they are mandatory.
//!
//! The built-in definitions ([`defs`]) are transcribed from the OMA LwM2M
//! registry (<https://github.com/OpenMobileAlliance/lwm2m-registry>); each one
//! names the object version and URN it follows. A [`Registry`] looks them up
//! by id, and takes custom objects at runtime, either built in Rust or loaded
//! from the small JSON description documented in `fixtures/objects/README.md`
//! ([`Registry::add_json`]).

use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

pub mod defs;
mod json;

pub use json::{ObjectDefError, parse_object_defs};

use crate::path::{ObjectId, ObjectPath, ResourceId};

/// The operations a resource allows (registry `<Operations>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operations {
    /// No operation for an LwM2M Server (Security object resources: bootstrap only).
    None,
    /// Read only.
    R,
    /// Write only.
    W,
    /// Read and write.
    RW,
    /// Execute.
    E,
}

impl Operations {
    /// True if a server may Read the resource.
    pub fn readable(self) -> bool {
        matches!(self, Operations::R | Operations::RW)
    }
    /// True if a server may Write the resource.
    pub fn writable(self) -> bool {
        matches!(self, Operations::W | Operations::RW)
    }
    /// True if a server may Execute the resource.
    pub fn executable(self) -> bool {
        matches!(self, Operations::E)
    }
    /// The registry spelling (`""`, `R`, `W`, `RW`, `E`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operations::None => "",
            Operations::R => "R",
            Operations::W => "W",
            Operations::RW => "RW",
            Operations::E => "E",
        }
    }
}

/// The data type of a resource (registry `<Type>`; LwM2M 1.1 Core TS Appendix C).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceType {
    /// UTF-8 string.
    String,
    /// Signed integer (up to 64 bits).
    Integer,
    /// Unsigned integer (up to 64 bits), LwM2M 1.1.
    UnsignedInteger,
    /// IEEE 754 float (32 or 64 bits).
    Float,
    /// Boolean.
    Boolean,
    /// Opaque bytes.
    Opaque,
    /// Unix time in seconds (signed).
    Time,
    /// Object link `oid:iid`.
    ObjectLink,
    /// CoRE link (RFC 6690 text), LwM2M 1.1.
    CoreLink,
    /// No value (executable resources).
    None,
}

impl ResourceType {
    /// The registry spelling (`Unsigned Integer`, `Objlnk`, `Corelnk` ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::String => "String",
            ResourceType::Integer => "Integer",
            ResourceType::UnsignedInteger => "Unsigned Integer",
            ResourceType::Float => "Float",
            ResourceType::Boolean => "Boolean",
            ResourceType::Opaque => "Opaque",
            ResourceType::Time => "Time",
            ResourceType::ObjectLink => "Objlnk",
            ResourceType::CoreLink => "Corelnk",
            ResourceType::None => "",
        }
    }

    /// Parse the registry spelling (also accepts `UnsignedInteger`, `ObjectLink`, `CoreLink`, `None`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "String" => ResourceType::String,
            "Integer" => ResourceType::Integer,
            "Unsigned Integer" | "UnsignedInteger" => ResourceType::UnsignedInteger,
            "Float" => ResourceType::Float,
            "Boolean" => ResourceType::Boolean,
            "Opaque" => ResourceType::Opaque,
            "Time" => ResourceType::Time,
            "Objlnk" | "ObjectLink" => ResourceType::ObjectLink,
            "Corelnk" | "CoreLink" => ResourceType::CoreLink,
            "" | "None" => ResourceType::None,
            _ => return None,
        })
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResourceType::None => "none",
            t => t.as_str(),
        })
    }
}

/// One resource of an object definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceDef {
    /// Resource id.
    pub id: u16,
    /// Registry name (`Manufacturer`).
    pub name: Cow<'static, str>,
    /// Allowed operations.
    pub operations: Operations,
    /// True for a multiple-instance resource (values at `/o/i/r/ri`).
    pub multiple: bool,
    /// True when a client must implement it.
    pub mandatory: bool,
    /// Data type.
    pub kind: ResourceType,
    /// Units (`s`, `mV`, `%`), empty when none.
    pub units: Cow<'static, str>,
}

impl ResourceDef {
    /// A `const` constructor for built-in tables.
    pub const fn new(
        id: u16,
        name: &'static str,
        operations: Operations,
        multiple: bool,
        mandatory: bool,
        kind: ResourceType,
        units: &'static str,
    ) -> Self {
        ResourceDef {
            id,
            name: Cow::Borrowed(name),
            operations,
            multiple,
            mandatory,
            kind,
            units: Cow::Borrowed(units),
        }
    }
}

/// An object definition: id, name, version and its resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectDef {
    /// Object id.
    pub id: u16,
    /// Registry name (`Device`).
    pub name: Cow<'static, str>,
    /// Object version (`1.1`) this definition follows.
    pub version: Cow<'static, str>,
    /// LwM2M enabler version the object needs (`1.0`, `1.1`).
    pub lwm2m_version: Cow<'static, str>,
    /// Object URN (`urn:oma:lwm2m:oma:3:1.1`).
    pub urn: Cow<'static, str>,
    /// True when a client may have several instances.
    pub multiple: bool,
    /// True when every client must have it.
    pub mandatory: bool,
    /// Resources, sorted by id.
    pub resources: Cow<'static, [ResourceDef]>,
}

impl ObjectDef {
    /// The resource with `id`, if defined.
    pub fn resource(&self, id: u16) -> Option<&ResourceDef> {
        self.resources.iter().find(|r| r.id == id)
    }
}

/// Object definitions by id: the built-in ones plus any the user adds.
#[derive(Debug, Clone)]
pub struct Registry {
    objects: BTreeMap<u16, ObjectDef>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::core()
    }
}

impl Registry {
    /// An empty registry (no objects at all).
    pub fn empty() -> Self {
        Registry {
            objects: BTreeMap::new(),
        }
    }

    /// The built-in objects: 0-7, 16, 19, 3303 and the rig test object 33333.
    pub fn core() -> Self {
        let mut r = Self::empty();
        for def in defs::ALL {
            r.objects.insert(def.id, def.clone());
        }
        r
    }

    /// The definition of object `id`.
    pub fn get(&self, id: u16) -> Option<&ObjectDef> {
        self.objects.get(&id)
    }

    /// The definition of object `id` (typed id).
    pub fn object(&self, id: ObjectId) -> Option<&ObjectDef> {
        self.get(id.0)
    }

    /// The definition of resource `r` of object `o`.
    pub fn resource(&self, o: ObjectId, r: ResourceId) -> Option<&ResourceDef> {
        self.get(o.0)?.resource(r.0)
    }

    /// The resource definition a path at resource or resource-instance level points at.
    pub fn resource_at(&self, path: &ObjectPath) -> Option<&ResourceDef> {
        self.resource(path.object_id()?, path.resource_id()?)
    }

    /// The type of the resource at `path`, if known.
    pub fn kind_at(&self, path: &ObjectPath) -> Option<ResourceType> {
        self.resource_at(path).map(|r| r.kind)
    }

    /// Add or replace an object definition; returns the one it replaced.
    pub fn insert(&mut self, def: ObjectDef) -> Option<ObjectDef> {
        self.objects.insert(def.id, def)
    }

    /// Parse a JSON object description (one object or an array of them, see
    /// `fixtures/objects/README.md`) and add every object; returns their ids.
    pub fn add_json(&mut self, text: &str) -> Result<Vec<u16>, ObjectDefError> {
        let defs = parse_object_defs(text)?;
        let ids = defs.iter().map(|d| d.id).collect();
        for d in defs {
            self.insert(d);
        }
        Ok(ids)
    }

    /// Every object definition, by id.
    pub fn iter(&self) -> impl Iterator<Item = &ObjectDef> {
        self.objects.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_has_the_objects_the_suites_need() {
        let r = Registry::core();
        for id in [0, 1, 2, 3, 4, 5, 6, 7, 16, 19, 3303, 33333] {
            let d = r.get(id).unwrap();
            assert!(!d.urn.is_empty() && !d.version.is_empty(), "{id}");
            let ids: Vec<u16> = d.resources.iter().map(|r| r.id).collect();
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(ids, sorted, "object {id} resources sorted and unique");
            for res in d.resources.iter() {
                assert_eq!(
                    res.operations == Operations::E,
                    res.kind == ResourceType::None,
                    "/{id}/x/{}",
                    res.id
                );
            }
        }
        let dev = r.get(3).unwrap();
        assert_eq!(dev.resource(0).unwrap().name, "Manufacturer");
        assert!(dev.resource(11).unwrap().multiple);
        assert!(dev.resource(11).unwrap().mandatory);
        assert_eq!(dev.resource(13).unwrap().kind, ResourceType::Time);
        assert_eq!(dev.resource(4).unwrap().operations, Operations::E);
        assert_eq!(
            r.kind_at(&ObjectPath::resource_instance(3, 0, 6, 1)),
            Some(ResourceType::Integer)
        );
        assert_eq!(
            r.kind_at(&ObjectPath::resource(1, 0, 1)),
            Some(ResourceType::UnsignedInteger)
        );
        assert_eq!(
            r.kind_at(&ObjectPath::resource(3303, 0, 5700)),
            Some(ResourceType::Float)
        );
        assert_eq!(r.kind_at(&ObjectPath::resource(3, 0, 99)), None);
    }

    #[test]
    fn type_spelling_round_trips() {
        for t in [
            ResourceType::String,
            ResourceType::Integer,
            ResourceType::UnsignedInteger,
            ResourceType::Float,
            ResourceType::Boolean,
            ResourceType::Opaque,
            ResourceType::Time,
            ResourceType::ObjectLink,
            ResourceType::CoreLink,
            ResourceType::None,
        ] {
            assert_eq!(ResourceType::parse(t.as_str()), Some(t));
        }
    }
}
