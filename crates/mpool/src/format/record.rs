//! Pool-metadata records, stored in MDC0 and MDC1..N. See `docs/format.md`,
//! "Pool metadata". Each record is one mlog record (the mlog checksums it).

use crate::format::codec::{Reader, Short, Writer};
use crate::format::superblock::MediaClass;
use crate::objid::ObjectId;

/// A pool-metadata record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogRecord {
    /// MDC0: MDC number `index` lives in two logs of `zones` zones at
    /// `zone_a` and `zone_b` on the capacity device.
    MdcLoc {
        /// 1..=255.
        index: u8,
        /// First zone of log A.
        zone_a: u32,
        /// First zone of log B.
        zone_b: u32,
        /// Zones per log.
        zones: u32,
    },
    /// MDC0: the user root MDC.
    RootMdc {
        /// Its object ID.
        id: ObjectId,
    },
    /// MDC1..N: uniquifiers below `next` may have been handed out.
    UniqCkpt {
        /// The checkpoint.
        next: u64,
    },
    /// MDC1..N: a committed mblock.
    Mblock {
        /// ID.
        id: ObjectId,
        /// Media class.
        class: MediaClass,
        /// Its zone.
        zone: u32,
        /// Bytes written.
        len: u32,
        /// CRC-32C of the content.
        crc: u32,
        /// The content was flushed together with this record rather than
        /// before it (type 7, format version 2): while the record is in its
        /// log's last flush set, replay verifies the content against `crc`
        /// and drops a commit whose content did not land.
        shared_flush: bool,
    },
    /// MDC1..N: a committed mlog, or a committed user MDC (two logs).
    Mlog {
        /// ID (type mlog or mdc).
        id: ObjectId,
        /// Media class.
        class: MediaClass,
        /// First zone (log A for an MDC).
        zone: u32,
        /// First zone of log B (MDC), or 0 for an mlog.
        zone_b: u32,
        /// Zones per log.
        zones: u32,
    },
    /// MDC1..N: an object was deleted.
    Delete {
        /// ID.
        id: ObjectId,
    },
}

/// The longest encoded record (an mblock or mlog record: type, class, ID,
/// three 32-bit fields).
pub const RECORD_MAX_LEN: usize = 1 + 1 + 8 + 4 + 4 + 4;
// A record, with its MDC tag byte and the mlog's block and record headers,
// fits one block of the smallest sector size.
const _: () = assert!(
    crate::mlog::format::BLK_HDR_LEN + crate::mlog::format::REC_HDR_LEN + 1 + RECORD_MAX_LEN as u64
        <= crate::format::superblock::SECTOR_MIN as u64
);

const T_MDCLOC: u8 = 1;
const T_ROOT: u8 = 2;
const T_UNIQ: u8 = 3;
const T_MBLOCK: u8 = 4;
const T_MLOG: u8 = 5;
const T_DELETE: u8 = 6;
const T_MBLOCK_SHARED: u8 = 7;

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad pool-metadata record: {0}")]
pub struct RecordDecodeError(pub String);

impl CatalogRecord {
    /// Encode.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = [0u8; RECORD_MAX_LEN];
        let mut w = Writer::new(&mut b);
        // Every record fits in RECORD_MAX_LEN bytes.
        let written = self.put(&mut w);
        debug_assert_eq!(written, Ok(()));
        let n = w.pos();
        b.get(..n).unwrap_or_default().to_vec()
    }

    fn put(&self, w: &mut Writer<'_>) -> Result<(), Short> {
        match *self {
            CatalogRecord::MdcLoc {
                index,
                zone_a,
                zone_b,
                zones,
            } => {
                w.u8(T_MDCLOC)?
                    .u8(index)?
                    .u32(zone_a)?
                    .u32(zone_b)?
                    .u32(zones)?;
            }
            CatalogRecord::RootMdc { id } => {
                w.u8(T_ROOT)?.u64(id.raw())?;
            }
            CatalogRecord::UniqCkpt { next } => {
                w.u8(T_UNIQ)?.u64(next)?;
            }
            CatalogRecord::Mblock {
                id,
                class,
                zone,
                len,
                crc,
                shared_flush,
            } => {
                let t = if shared_flush {
                    T_MBLOCK_SHARED
                } else {
                    T_MBLOCK
                };
                w.u8(t)?
                    .u8(class.code())?
                    .u64(id.raw())?
                    .u32(zone)?
                    .u32(len)?
                    .u32(crc)?;
            }
            CatalogRecord::Mlog {
                id,
                class,
                zone,
                zone_b,
                zones,
            } => {
                w.u8(T_MLOG)?
                    .u8(class.code())?
                    .u64(id.raw())?
                    .u32(zone)?
                    .u32(zone_b)?
                    .u32(zones)?;
            }
            CatalogRecord::Delete { id } => {
                w.u8(T_DELETE)?.u64(id.raw())?;
            }
        }
        Ok(())
    }

    /// Decode; never panics. Lengths must be exact.
    pub fn decode(b: &[u8]) -> Result<CatalogRecord, RecordDecodeError> {
        let err =
            |w: &str| RecordDecodeError(format!("{w} ({} bytes, type {:?})", b.len(), b.first()));
        let short = |_: Short| err("short");
        let id = |r: &mut Reader<'_>| -> Result<ObjectId, RecordDecodeError> {
            let raw = r.u64().map_err(short)?;
            ObjectId::from_raw(raw).ok_or_else(|| err("invalid object ID"))
        };
        let class = |r: &mut Reader<'_>| -> Result<MediaClass, RecordDecodeError> {
            MediaClass::from_code(r.u8().map_err(short)?).ok_or_else(|| err("invalid media class"))
        };
        let u32 = |r: &mut Reader<'_>| r.u32().map_err(short);
        let exact = |n: usize| {
            if b.len() == n {
                Ok(())
            } else {
                Err(err("wrong length"))
            }
        };
        let mut r = Reader::new(b);
        let r = &mut r;
        match r.u8().ok() {
            Some(T_MDCLOC) => {
                exact(14)?;
                let index = r.u8().map_err(short)?;
                if index == 0 {
                    return Err(err("MDC index 0"));
                }
                Ok(CatalogRecord::MdcLoc {
                    index,
                    zone_a: u32(r)?,
                    zone_b: u32(r)?,
                    zones: u32(r)?,
                })
            }
            Some(T_ROOT) => {
                exact(9)?;
                Ok(CatalogRecord::RootMdc { id: id(r)? })
            }
            Some(T_UNIQ) => {
                exact(9)?;
                Ok(CatalogRecord::UniqCkpt {
                    next: r.u64().map_err(short)?,
                })
            }
            Some(t @ (T_MBLOCK | T_MBLOCK_SHARED)) => {
                exact(22)?;
                Ok(CatalogRecord::Mblock {
                    class: class(r)?,
                    id: id(r)?,
                    zone: u32(r)?,
                    len: u32(r)?,
                    crc: u32(r)?,
                    shared_flush: t == T_MBLOCK_SHARED,
                })
            }
            Some(T_MLOG) => {
                exact(22)?;
                Ok(CatalogRecord::Mlog {
                    class: class(r)?,
                    id: id(r)?,
                    zone: u32(r)?,
                    zone_b: u32(r)?,
                    zones: u32(r)?,
                })
            }
            Some(T_DELETE) => {
                exact(9)?;
                Ok(CatalogRecord::Delete { id: id(r)? })
            }
            _ => Err(err("unknown type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objid::ObjType;

    #[test]
    fn round_trip_and_refusals() {
        let id = ObjectId::new(ObjType::Mblock, 3, 99);
        let recs = [
            CatalogRecord::MdcLoc {
                index: 2,
                zone_a: 5,
                zone_b: 7,
                zones: 2,
            },
            CatalogRecord::RootMdc {
                id: ObjectId::new(ObjType::Mdc, 1, 1),
            },
            CatalogRecord::UniqCkpt { next: 1 << 40 },
            CatalogRecord::Mblock {
                id,
                class: MediaClass::Staging,
                zone: 9,
                len: 12345,
                crc: 0xdead_beef,
                shared_flush: false,
            },
            CatalogRecord::Mblock {
                id,
                class: MediaClass::Capacity,
                zone: 11,
                len: 1,
                crc: 7,
                shared_flush: true,
            },
            CatalogRecord::Mlog {
                id: ObjectId::new(ObjType::Mlog, 3, 5),
                class: MediaClass::Capacity,
                zone: 10,
                zone_b: 0,
                zones: 3,
            },
            CatalogRecord::Delete { id },
        ];
        for r in recs {
            let b = r.encode();
            assert_eq!(CatalogRecord::decode(&b).unwrap(), r);
            assert!(CatalogRecord::decode(&b[..b.len() - 1]).is_err());
            let mut longer = b.clone();
            longer.push(0);
            assert!(CatalogRecord::decode(&longer).is_err());
        }
        assert!(CatalogRecord::decode(&[]).is_err());
        assert!(CatalogRecord::decode(&[99]).is_err());
        assert!(CatalogRecord::decode(&[8]).is_err());
        assert_eq!(recs[3].encode()[0], 4);
        assert_eq!(recs[4].encode()[0], 7);
        let mut bad = recs[3].encode();
        bad[1] = 7;
        assert!(CatalogRecord::decode(&bad).is_err());
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            if let Ok(r) = CatalogRecord::decode(&b) {
                proptest::prop_assert_eq!(r.encode(), b);
            }
        }
    }
}
