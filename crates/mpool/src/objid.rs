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
    /// Compose an ID. `mdc` is 1..=255, `uniq` at most [`UNIQ_MAX`].
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
}
