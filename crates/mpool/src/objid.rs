//! Object IDs: a type, the MDC that owns the object, and a uniquifier.
//!
//! ```text
//! bit 63 ........................ 12 | 11 ...... 4 | 3 .. 0
//!          uniquifier (52 bits)      | MDC (1..255)| type
//! ```
//!
//! The uniquifier is never reused, across crashes too: each MDC persists a
//! checkpoint above every uniquifier it has handed out (see `pmd`).

use std::fmt;
use std::str::FromStr;

/// What an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjType {
    /// A write-once mblock.
    Mblock,
    /// A user mlog.
    Mlog,
    /// A user MDC (a pair of mlogs).
    Mdc,
}

impl ObjType {
    fn code(self) -> u64 {
        match self {
            ObjType::Mblock => 1,
            ObjType::Mlog => 2,
            ObjType::Mdc => 3,
        }
    }

    fn from_code(c: u64) -> Option<Self> {
        match c {
            1 => Some(ObjType::Mblock),
            2 => Some(ObjType::Mlog),
            3 => Some(ObjType::Mdc),
            _ => None,
        }
    }
}

impl fmt::Display for ObjType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjType::Mblock => "mblock",
            ObjType::Mlog => "mlog",
            ObjType::Mdc => "mdc",
        })
    }
}

/// Largest uniquifier.
pub const UNIQ_MAX: u64 = (1 << 52) - 1;

/// An object ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(into = "String")]
pub struct ObjectId(u64);

impl From<ObjectId> for String {
    fn from(id: ObjectId) -> String {
        id.to_string()
    }
}

impl ObjectId {
    /// Compose an ID. `mdc` is 1..=255, `uniq` at most `UNIQ_MAX` (2^52 - 1).
    pub fn new(ty: ObjType, mdc: u8, uniq: u64) -> Self {
        ObjectId((uniq & UNIQ_MAX) << 12 | u64::from(mdc) << 4 | ty.code())
    }

    /// From the raw value, if its type and MDC fields are valid.
    pub fn from_raw(v: u64) -> Option<Self> {
        ObjType::from_code(v & 0xf)?;
        ((v >> 4) & 0xff != 0).then_some(ObjectId(v))
    }

    /// The raw value.
    pub fn raw(self) -> u64 {
        self.0
    }

    /// The object's type.
    pub fn ty(self) -> ObjType {
        // Every ID is made by `new` or a checked `from_raw`: its type code
        // is valid (the fallback is unreachable; debug builds check).
        let ty = ObjType::from_code(self.0 & 0xf);
        debug_assert!(ty.is_some(), "object ID {:#x} has no valid type", self.0);
        ty.unwrap_or(ObjType::Mblock)
    }

    /// The MDC that owns it (1..=255).
    pub fn mdc(self) -> u8 {
        ((self.0 >> 4) & 0xff) as u8
    }

    /// The uniquifier.
    pub fn uniq(self) -> u64 {
        self.0 >> 12
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:016x}", self.0)
    }
}

impl FromStr for ObjectId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let v = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            Some(h) => u64::from_str_radix(h, 16),
            None => t.parse::<u64>(),
        }
        .map_err(|_| {
            format!("'{s}' is not an object ID (expected a number such as 0x0000000000001011)")
        })?;
        ObjectId::from_raw(v)
            .ok_or_else(|| format!("'{s}' is not a valid object ID (bad type or MDC field)"))
    }
}

/// Typed object IDs: an [`ObjectId`] known, at compile time, to name an
/// object of one type. The pool's calls on one type of object take its
/// typed ID, so an mblock's ID cannot be passed to an mlog call.
macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $ty:expr, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(into = "String")]
        pub struct $name(ObjectId);

        impl $name {
            /// The type of object this ID names.
            pub const TYPE: ObjType = $ty;

            /// The untyped ID.
            pub fn object_id(self) -> ObjectId {
                self.0
            }

            /// Wrap an ID the catalog made for an object of this type.
            pub(crate) fn new_unchecked(id: ObjectId) -> Self {
                debug_assert_eq!(id.ty(), $ty, "object ID {id} is not of type {}", $ty);
                $name(id)
            }
        }

        impl From<$name> for ObjectId {
            fn from(id: $name) -> ObjectId {
                id.0
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.to_string()
            }
        }

        /// Fails with [`crate::ObjectError::WrongType`] when the ID names an
        /// object of another type.
        impl TryFrom<ObjectId> for $name {
            type Error = crate::error::Error;
            fn try_from(id: ObjectId) -> Result<Self, crate::error::Error> {
                if id.ty() == $ty {
                    Ok($name(id))
                } else {
                    Err(crate::error::ObjectError::WrongType { id, expected: $ty }.into())
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        /// Parses an [`ObjectId`], then checks its type: the ID of an
        /// object of another type is refused with a message that names
        /// both types.
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let id: ObjectId = s.parse()?;
                $name::try_from(id).map_err(|_| {
                    format!("{id} is an {}, not {}", id.ty(), $what)
                })
            }
        }
    };
}

typed_id!(
    /// The ID of an mblock.
    MblockId,
    ObjType::Mblock,
    "an mblock"
);
typed_id!(
    /// The ID of a user mlog.
    MlogId,
    ObjType::Mlog,
    "an mlog"
);
typed_id!(
    /// The ID of a user MDC.
    MdcId,
    ObjType::Mdc,
    "an MDC"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let id = ObjectId::new(ObjType::Mlog, 7, 123_456);
        assert_eq!(id.ty(), ObjType::Mlog);
        assert_eq!(id.mdc(), 7);
        assert_eq!(id.uniq(), 123_456);
        assert_eq!(id.to_string().parse::<ObjectId>().unwrap(), id);
        assert_eq!(id.raw().to_string().parse::<ObjectId>().unwrap(), id);
        assert!("0x0".parse::<ObjectId>().is_err());
        assert!("zz".parse::<ObjectId>().is_err());
        assert!(ObjectId::from_raw(0x15).is_none()); // type 5
        assert!(ObjectId::from_raw(0x001).is_none()); // MDC 0
    }

    #[test]
    fn typed_ids_round_trip_through_text_and_object_ids() {
        let raw = ObjectId::new(ObjType::Mblock, 3, 99);
        let id = MblockId::try_from(raw).unwrap();
        assert_eq!(id.object_id(), raw);
        assert_eq!(ObjectId::from(id), raw);
        assert_eq!(id.to_string(), raw.to_string());
        assert_eq!(id.to_string().parse::<MblockId>().unwrap(), id);
        assert_eq!(raw.raw().to_string().parse::<MblockId>().unwrap(), id);
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            serde_json::to_string(&raw).unwrap()
        );
        let log = MlogId::try_from(ObjectId::new(ObjType::Mlog, 1, 7)).unwrap();
        assert_eq!(log.to_string().parse::<MlogId>().unwrap(), log);
        let mdc = MdcId::try_from(ObjectId::new(ObjType::Mdc, 1, 8)).unwrap();
        assert_eq!(mdc.to_string().parse::<MdcId>().unwrap(), mdc);
        assert_eq!(MdcId::TYPE, ObjType::Mdc);
    }

    #[test]
    fn a_typed_id_of_another_type_is_refused() {
        let raw = ObjectId::new(ObjType::Mlog, 2, 5);
        match MblockId::try_from(raw) {
            Err(crate::error::Error::Object(crate::error::ObjectError::WrongType {
                id,
                expected,
            })) => {
                assert_eq!((id, expected), (raw, ObjType::Mblock));
            }
            other => panic!("expected WrongType, got {other:?}"),
        }
        let e = raw.to_string().parse::<MblockId>().unwrap_err();
        assert_eq!(e, format!("{raw} is an mlog, not an mblock"));
        let e = raw.to_string().parse::<MdcId>().unwrap_err();
        assert_eq!(e, format!("{raw} is an mlog, not an MDC"));
        let mb = ObjectId::new(ObjType::Mblock, 2, 5).to_string();
        assert_eq!(
            mb.parse::<MlogId>().unwrap_err(),
            format!("{mb} is an mblock, not an mlog")
        );
        // Not an ID at all: the untyped parser's message.
        assert!("zz"
            .parse::<MlogId>()
            .unwrap_err()
            .contains("not an object ID"));
    }
}
