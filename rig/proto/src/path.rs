//! Typed LwM2M paths and ids: `/`, `/o`, `/o/i`, `/o/i/r`, `/o/i/r/ri`.
//!
//! Every id is a `u16` newtype so that an object id can never be passed where
//! a resource id is meant. [`ObjectPath`] is the path itself; it parses
//! strictly (LwM2M 1.1 Core TS §6.1 / §7.1): a leading `/`, decimal segments
//! without sign or leading zeros, no empty segment, no trailing `/` (except
//! the root `/`), at most four levels, and never the reserved id 65535
//! (`MAX_ID`) for an object instance or resource instance.
//!
//! Paths order the way the spec lists them: `/3 < /3/0 < /3/0/0 < /3/0/0/0 <
//! /3/0/1 < /4`, i.e. lexicographically by id sequence with a prefix first.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::fmt;

/// The reserved id (`MAX_ID`, 65535): never a valid object instance or resource instance id.
pub const MAX_ID: u16 = u16::MAX;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u16);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl From<u16> for $name {
            fn from(v: u16) -> Self {
                Self(v)
            }
        }

        impl From<$name> for u16 {
            fn from(v: $name) -> u16 {
                v.0
            }
        }
    };
}

id_newtype!(
    /// An LwM2M Object id (`3` for Device).
    ObjectId
);
id_newtype!(
    /// An Object Instance id (`0` in `/3/0`). 65535 is reserved.
    InstanceId
);
id_newtype!(
    /// A Resource id (`1` in `/3/0/1`).
    ResourceId
);
id_newtype!(
    /// A Resource Instance id (`2` in `/3/0/6/2`). 65535 is reserved.
    ResourceInstanceId
);

/// Why a path string or segment list was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path did not start with `/`.
    #[error("path {path:?} must start with '/'")]
    NoLeadingSlash {
        /// The rejected input.
        path: String,
    },
    /// A segment was empty (`//` or a trailing `/`).
    #[error("path {path:?}: empty segment at byte {offset}")]
    EmptySegment {
        /// The rejected input.
        path: String,
        /// Byte offset of the empty segment.
        offset: usize,
    },
    /// A segment was not a decimal number in 0..=65535 without leading zeros.
    #[error("path {path:?}: segment {segment:?} at byte {offset} is not an id in 0..=65535")]
    BadSegment {
        /// The rejected input.
        path: String,
        /// The segment text.
        segment: String,
        /// Byte offset of the segment.
        offset: usize,
    },
    /// More than four levels.
    #[error("path {path:?} has more than 4 levels (/o/i/r/ri)")]
    TooDeep {
        /// The rejected input.
        path: String,
    },
    /// The reserved id 65535 used as an instance or resource instance id.
    #[error("path {path:?}: id 65535 (MAX_ID) is reserved at level {level}")]
    ReservedId {
        /// The rejected input.
        path: String,
        /// 2 for an object instance, 4 for a resource instance.
        level: u8,
    },
}

/// A typed LwM2M path, from the root `/` down to a resource instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ObjectPath {
    /// `/`: the whole client.
    #[default]
    Root,
    /// `/o`
    Object(ObjectId),
    /// `/o/i`
    Instance(ObjectId, InstanceId),
    /// `/o/i/r`
    Resource(ObjectId, InstanceId, ResourceId),
    /// `/o/i/r/ri`
    ResourceInstance(ObjectId, InstanceId, ResourceId, ResourceInstanceId),
}

impl ObjectPath {
    /// `/o`.
    pub fn object(o: u16) -> Self {
        ObjectPath::Object(ObjectId(o))
    }

    /// `/o/i`.
    pub fn instance(o: u16, i: u16) -> Self {
        ObjectPath::Instance(ObjectId(o), InstanceId(i))
    }

    /// `/o/i/r`.
    pub fn resource(o: u16, i: u16, r: u16) -> Self {
        ObjectPath::Resource(ObjectId(o), InstanceId(i), ResourceId(r))
    }

    /// `/o/i/r/ri`.
    pub fn resource_instance(o: u16, i: u16, r: u16, ri: u16) -> Self {
        ObjectPath::ResourceInstance(
            ObjectId(o),
            InstanceId(i),
            ResourceId(r),
            ResourceInstanceId(ri),
        )
    }

    /// Build a path from 0 to 4 raw ids; `None` for more than 4 or a reserved id.
    pub fn from_ids(ids: &[u16]) -> Option<Self> {
        let p = match *ids {
            [] => ObjectPath::Root,
            [o] => Self::object(o),
            [o, i] => Self::instance(o, i),
            [o, i, r] => Self::resource(o, i, r),
            [o, i, r, ri] => Self::resource_instance(o, i, r, ri),
            _ => return None,
        };
        if p.has_reserved_id() { None } else { Some(p) }
    }

    fn has_reserved_id(&self) -> bool {
        self.instance_id().map(|i| i.0) == Some(MAX_ID)
            || self.resource_instance_id().map(|r| r.0) == Some(MAX_ID)
    }

    /// Parse a path string such as `/3/0/1` strictly (see the module doc).
    pub fn parse(s: &str) -> Result<Self, PathError> {
        if s == "/" {
            return Ok(ObjectPath::Root);
        }
        let Some(rest) = s.strip_prefix('/') else {
            return Err(PathError::NoLeadingSlash {
                path: s.to_string(),
            });
        };
        let mut ids = [0u16; 4];
        let mut n = 0usize;
        let mut offset = 1usize;
        for seg in rest.split('/') {
            if seg.is_empty() {
                return Err(PathError::EmptySegment {
                    path: s.to_string(),
                    offset,
                });
            }
            if n == 4 {
                return Err(PathError::TooDeep {
                    path: s.to_string(),
                });
            }
            ids[n] = parse_id(seg).ok_or_else(|| PathError::BadSegment {
                path: s.to_string(),
                segment: seg.to_string(),
                offset,
            })?;
            n += 1;
            offset += seg.len() + 1;
        }
        Self::checked(s, &ids[..n])
    }

    fn checked(s: &str, ids: &[u16]) -> Result<Self, PathError> {
        if ids.len() > 4 {
            return Err(PathError::TooDeep {
                path: s.to_string(),
            });
        }
        if ids.len() >= 2 && ids[1] == MAX_ID {
            return Err(PathError::ReservedId {
                path: s.to_string(),
                level: 2,
            });
        }
        if ids.len() == 4 && ids[3] == MAX_ID {
            return Err(PathError::ReservedId {
                path: s.to_string(),
                level: 4,
            });
        }
        Self::from_ids(ids).ok_or_else(|| PathError::TooDeep {
            path: s.to_string(),
        })
    }

    /// Build a path from CoAP Uri-Path option values (`["3", "0", "1"]`).
    /// An empty list is the root. A single empty segment (some stacks send
    /// one Uri-Path option of length 0 for `/`) is also the root.
    pub fn from_segments<S: AsRef<str>>(segments: &[S]) -> Result<Self, PathError> {
        let joined = {
            let mut j = String::new();
            for seg in segments {
                j.push('/');
                j.push_str(seg.as_ref());
            }
            j
        };
        if segments.is_empty() || (segments.len() == 1 && segments[0].as_ref().is_empty()) {
            return Ok(ObjectPath::Root);
        }
        let mut ids = Vec::with_capacity(segments.len());
        let mut offset = 1usize;
        for seg in segments {
            let seg = seg.as_ref();
            if seg.is_empty() {
                return Err(PathError::EmptySegment {
                    path: joined,
                    offset,
                });
            }
            let id = parse_id(seg).ok_or_else(|| PathError::BadSegment {
                path: joined.clone(),
                segment: seg.to_string(),
                offset,
            })?;
            ids.push(id);
            offset += seg.len() + 1;
        }
        Self::checked(&joined, &ids)
    }

    /// The CoAP Uri-Path option values for this path (empty for the root).
    pub fn to_segments(&self) -> Vec<String> {
        self.ids().iter().map(|id| id.to_string()).collect()
    }

    /// The raw ids, outermost first (empty for the root).
    pub fn ids(&self) -> Vec<u16> {
        let (a, n) = self.id_array();
        a[..n].to_vec()
    }

    fn id_array(&self) -> ([u16; 4], usize) {
        match *self {
            ObjectPath::Root => ([0; 4], 0),
            ObjectPath::Object(o) => ([o.0, 0, 0, 0], 1),
            ObjectPath::Instance(o, i) => ([o.0, i.0, 0, 0], 2),
            ObjectPath::Resource(o, i, r) => ([o.0, i.0, r.0, 0], 3),
            ObjectPath::ResourceInstance(o, i, r, ri) => ([o.0, i.0, r.0, ri.0], 4),
        }
    }

    /// Depth: 0 for `/`, 1 for `/o`, ... 4 for `/o/i/r/ri`.
    pub fn level(&self) -> usize {
        self.id_array().1
    }

    /// The object id, if the path names one.
    pub fn object_id(&self) -> Option<ObjectId> {
        match *self {
            ObjectPath::Root => None,
            ObjectPath::Object(o)
            | ObjectPath::Instance(o, _)
            | ObjectPath::Resource(o, _, _)
            | ObjectPath::ResourceInstance(o, _, _, _) => Some(o),
        }
    }

    /// The object instance id, if the path names one.
    pub fn instance_id(&self) -> Option<InstanceId> {
        match *self {
            ObjectPath::Instance(_, i)
            | ObjectPath::Resource(_, i, _)
            | ObjectPath::ResourceInstance(_, i, _, _) => Some(i),
            _ => None,
        }
    }

    /// The resource id, if the path names one.
    pub fn resource_id(&self) -> Option<ResourceId> {
        match *self {
            ObjectPath::Resource(_, _, r) | ObjectPath::ResourceInstance(_, _, r, _) => Some(r),
            _ => None,
        }
    }

    /// The resource instance id, if the path names one.
    pub fn resource_instance_id(&self) -> Option<ResourceInstanceId> {
        match *self {
            ObjectPath::ResourceInstance(_, _, _, ri) => Some(ri),
            _ => None,
        }
    }

    /// The path one level up (`None` for the root).
    pub fn parent(&self) -> Option<ObjectPath> {
        match *self {
            ObjectPath::Root => None,
            ObjectPath::Object(_) => Some(ObjectPath::Root),
            ObjectPath::Instance(o, _) => Some(ObjectPath::Object(o)),
            ObjectPath::Resource(o, i, _) => Some(ObjectPath::Instance(o, i)),
            ObjectPath::ResourceInstance(o, i, r, _) => Some(ObjectPath::Resource(o, i, r)),
        }
    }

    /// The path one level down, with `id` appended (`None` below a resource instance
    /// or for a reserved id).
    pub fn child(&self, id: u16) -> Option<ObjectPath> {
        let (mut a, n) = self.id_array();
        if n == 4 {
            return None;
        }
        a[n] = id;
        Self::from_ids(&a[..=n])
    }

    /// The instance-level path (`/o/i`) this path lies in, if it is that deep.
    pub fn instance_path(&self) -> Option<ObjectPath> {
        match (self.object_id(), self.instance_id()) {
            (Some(o), Some(i)) => Some(ObjectPath::Instance(o, i)),
            _ => None,
        }
    }

    /// The resource-level path (`/o/i/r`) this path lies in, if it is that deep.
    pub fn resource_path(&self) -> Option<ObjectPath> {
        match *self {
            ObjectPath::Resource(o, i, r) | ObjectPath::ResourceInstance(o, i, r, _) => {
                Some(ObjectPath::Resource(o, i, r))
            }
            _ => None,
        }
    }

    /// True when `self` equals `other` or is an ancestor of it (`/3/0` is a prefix of `/3/0/1`).
    pub fn is_prefix_of(&self, other: &ObjectPath) -> bool {
        let (a, n) = self.id_array();
        let (b, m) = other.id_array();
        n <= m && a[..n] == b[..n]
    }

    /// True for the root path `/`.
    pub fn is_root(&self) -> bool {
        matches!(self, ObjectPath::Root)
    }
}

fn parse_id(seg: &str) -> Option<u16> {
    let b = seg.as_bytes();
    if b.is_empty() || b.len() > 5 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if b.len() > 1 && b[0] == b'0' {
        return None;
    }
    seg.parse::<u16>().ok()
}

impl Ord for ObjectPath {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, n) = self.id_array();
        let (b, m) = other.id_array();
        a[..n].cmp(&b[..m])
    }
}

impl PartialOrd for ObjectPath {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, n) = self.id_array();
        if n == 0 {
            return f.write_str("/");
        }
        for id in &a[..n] {
            write!(f, "/{id}")?;
        }
        Ok(())
    }
}

impl core::str::FromStr for ObjectPath {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ObjectPath::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_and_display_every_level() {
        for s in [
            "/",
            "/3",
            "/3/0",
            "/3/0/1",
            "/3/0/6/2",
            "/65535",
            "/1/65534/65535",
        ] {
            let p = ObjectPath::parse(s).unwrap();
            assert_eq!(p.to_string(), s);
        }
        assert_eq!(
            ObjectPath::parse("/3/0/1").unwrap(),
            ObjectPath::resource(3, 0, 1)
        );
        assert_eq!(ObjectPath::parse("/3/0/1").unwrap().level(), 3);
    }

    #[test]
    fn parse_rejects_bad_input_with_position() {
        assert!(matches!(
            ObjectPath::parse("3/0"),
            Err(PathError::NoLeadingSlash { .. })
        ));
        assert!(matches!(
            ObjectPath::parse(""),
            Err(PathError::NoLeadingSlash { .. })
        ));
        assert_eq!(
            ObjectPath::parse("/3//1"),
            Err(PathError::EmptySegment {
                path: "/3//1".into(),
                offset: 3
            })
        );
        assert!(matches!(
            ObjectPath::parse("/3/0/"),
            Err(PathError::EmptySegment { offset: 5, .. })
        ));
        assert!(matches!(
            ObjectPath::parse("/3/x"),
            Err(PathError::BadSegment { offset: 3, .. })
        ));
        assert!(matches!(
            ObjectPath::parse("/65536"),
            Err(PathError::BadSegment { .. })
        ));
        assert!(matches!(
            ObjectPath::parse("/03"),
            Err(PathError::BadSegment { .. })
        ));
        assert!(matches!(
            ObjectPath::parse("/+3"),
            Err(PathError::BadSegment { .. })
        ));
        assert!(matches!(
            ObjectPath::parse("/1/2/3/4/5"),
            Err(PathError::TooDeep { .. })
        ));
        assert!(matches!(
            ObjectPath::parse("/3/65535"),
            Err(PathError::ReservedId { level: 2, .. })
        ));
        assert!(matches!(
            ObjectPath::parse("/3/0/6/65535"),
            Err(PathError::ReservedId { level: 4, .. })
        ));
    }

    #[test]
    fn helpers() {
        let p = ObjectPath::resource_instance(3, 0, 6, 1);
        assert_eq!(p.object_id(), Some(ObjectId(3)));
        assert_eq!(p.instance_id(), Some(InstanceId(0)));
        assert_eq!(p.resource_id(), Some(ResourceId(6)));
        assert_eq!(p.parent(), Some(ObjectPath::resource(3, 0, 6)));
        assert_eq!(ObjectPath::Root.parent(), None);
        assert!(ObjectPath::instance(3, 0).is_prefix_of(&p));
        assert!(ObjectPath::Root.is_prefix_of(&p));
        assert!(!ObjectPath::instance(3, 1).is_prefix_of(&p));
        assert!(!p.is_prefix_of(&ObjectPath::instance(3, 0)));
        assert_eq!(
            ObjectPath::instance(3, 0).child(1),
            Some(ObjectPath::resource(3, 0, 1))
        );
        assert_eq!(ObjectPath::object(3).child(65535), None);
        assert_eq!(p.to_segments(), ["3", "0", "6", "1"]);
        assert_eq!(
            ObjectPath::from_segments(&["3", "0"]).unwrap(),
            ObjectPath::instance(3, 0)
        );
        assert_eq!(
            ObjectPath::from_segments::<&str>(&[]).unwrap(),
            ObjectPath::Root
        );
        assert_eq!(ObjectPath::from_segments(&[""]).unwrap(), ObjectPath::Root);
        assert!(ObjectPath::from_segments(&["3", ""]).is_err());
    }

    #[test]
    fn ordering_is_spec_order() {
        let mut v = [
            ObjectPath::object(4),
            ObjectPath::resource(3, 0, 1),
            ObjectPath::resource_instance(3, 0, 0, 0),
            ObjectPath::instance(3, 0),
            ObjectPath::resource(3, 0, 0),
            ObjectPath::object(3),
            ObjectPath::Root,
        ];
        v.sort();
        let s: Vec<String> = v.iter().map(|p| p.to_string()).collect();
        assert_eq!(s, ["/", "/3", "/3/0", "/3/0/0", "/3/0/0/0", "/3/0/1", "/4"]);
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(ids in proptest::collection::vec(0u16..65535, 0..=4)) {
            let p = ObjectPath::from_ids(&ids).unwrap();
            prop_assert_eq!(ObjectPath::parse(&p.to_string()).unwrap(), p);
            prop_assert_eq!(ObjectPath::from_segments(&p.to_segments()).unwrap(), p);
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = ObjectPath::parse(&s);
        }
    }
}
