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
    /// MDC1..N: a committed mblock whose zone holds a table of per-block
    /// CRC-32C checksums after its content (type 8, format version 3; see
    /// [`CsumLayout`]).
    MblockCsum {
        /// ID.
        id: ObjectId,
        /// Media class.
        class: MediaClass,
        /// Its zone.
        zone: u32,
        /// Bytes written.
        len: u32,
        /// log2 of the checksum block size ([`CSUM_SHIFT_MIN`]..=[`CSUM_SHIFT_MAX`]).
        csum_shift: u8,
        /// The content and table were flushed together with this record
        /// (flags bit 0; as type 7).
        shared_flush: bool,
        /// CRC-32C of the table's checksum bytes (not its padding).
        table_crc: u32,
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
    /// MDC1..N: an uncommitted mblock whose zone is held across a crash
    /// for `owner` (type 9, format version 3): it may become committed by
    /// one write of its content, checksum table and a *seal* naming
    /// `nonce` (see "Sealed commits" in `docs/format.md`), found by the
    /// owner after a crash.
    MblockReserve {
        /// ID.
        id: ObjectId,
        /// Media class.
        class: MediaClass,
        /// Its zone.
        zone: u32,
        /// Who reserved it (an opaque tag of the pool's client).
        owner: u64,
        /// A random number only the pool's metadata and the seal hold.
        nonce: u64,
    },
}

/// The longest encoded record (a type-9 reserve record: type, class, ID,
/// zone, owner, nonce).
pub const RECORD_MAX_LEN: usize = 1 + 1 + 8 + 4 + 8 + 8;
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
const T_MBLOCK_CSUM: u8 = 8;
const T_MBLOCK_RESERVE: u8 = 9;
/// Type-8 flags bit 0: the content shared its record's flush.
const F_SHARED: u8 = 1;

/// Smallest checksum block of a type-8 mblock: 4 KiB.
pub const CSUM_SHIFT_MIN: u8 = 12;
/// Largest checksum block of a type-8 mblock: 64 KiB.
pub const CSUM_SHIFT_MAX: u8 = 16;

/// Where the checksum table of a type-8 mblock lies in its zone (see
/// "Mblock content" in `docs/format.md`): content of `len` bytes in
/// blocks of `1 << shift` bytes, on a device of `sector`-byte sectors.
/// The table holds one CRC-32C (u32, little endian) per block, block `i`
/// covering content bytes `i << shift .. min((i + 1) << shift, len)`; it
/// starts at the first sector boundary at or after the content's end and
/// is zero-padded to a whole sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsumLayout {
    /// Content length.
    pub len: u64,
    /// log2 of the block size.
    pub shift: u8,
    /// Sector size (a power of two).
    pub sector: u64,
}

impl CsumLayout {
    /// Checksum block size in bytes.
    pub fn block(&self) -> u64 {
        1u64 << self.shift
    }
    /// Number of blocks (and table entries).
    pub fn blocks(&self) -> u64 {
        self.len.div_ceil(self.block())
    }
    /// Byte offset of the table in the zone: `round_up(len, sector)`.
    pub fn table_offset(&self) -> u64 {
        self.len.div_ceil(self.sector) * self.sector
    }
    /// Bytes of checksums in the table (`4 * blocks`).
    pub fn table_bytes(&self) -> u64 {
        4 * self.blocks()
    }
    /// Bytes the table takes on the device (whole sectors).
    pub fn table_span(&self) -> u64 {
        self.table_bytes().div_ceil(self.sector) * self.sector
    }
    /// Bytes of the zone content and table take (whole sectors).
    pub fn footprint(&self) -> u64 {
        self.table_offset() + self.table_span()
    }
    /// The most content a zone of `zone` bytes holds with its table: the
    /// largest `len` whose footprint fits. With `t` sectors of table, the
    /// content may take the rest of the zone and as many blocks as `t`
    /// sectors hold entries; the best `t` is the first at which the
    /// entries are no longer the limit.
    pub fn capacity(zone: u64, sector: u64, shift: u8) -> u64 {
        let sector = sector.max(4);
        let mut best = 0;
        let mut t = 0u64;
        while t * sector < zone {
            let room = zone - t * sector;
            let covered = (t * sector / 4) << shift;
            best = best.max(room.min(covered));
            if covered >= room {
                break;
            }
            t += 1;
        }
        best
    }
}

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
            CatalogRecord::MblockCsum {
                id,
                class,
                zone,
                len,
                csum_shift,
                shared_flush,
                table_crc,
            } => {
                w.u8(T_MBLOCK_CSUM)?
                    .u8(class.code())?
                    .u64(id.raw())?
                    .u32(zone)?
                    .u32(len)?
                    .u8(csum_shift)?
                    .u8(if shared_flush { F_SHARED } else { 0 })?
                    .u32(table_crc)?;
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
            CatalogRecord::MblockReserve {
                id,
                class,
                zone,
                owner,
                nonce,
            } => {
                w.u8(T_MBLOCK_RESERVE)?
                    .u8(class.code())?
                    .u64(id.raw())?
                    .u32(zone)?
                    .u64(owner)?
                    .u64(nonce)?;
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
            Some(T_MBLOCK_CSUM) => {
                exact(24)?;
                let class = class(r)?;
                let id = id(r)?;
                let zone = u32(r)?;
                let len = u32(r)?;
                let csum_shift = r.u8().map_err(short)?;
                if !(CSUM_SHIFT_MIN..=CSUM_SHIFT_MAX).contains(&csum_shift) {
                    return Err(err("checksum block shift out of range"));
                }
                let flags = r.u8().map_err(short)?;
                if flags & !F_SHARED != 0 {
                    return Err(err("unknown flags"));
                }
                Ok(CatalogRecord::MblockCsum {
                    class,
                    id,
                    zone,
                    len,
                    csum_shift,
                    shared_flush: flags & F_SHARED != 0,
                    table_crc: u32(r)?,
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
            Some(T_MBLOCK_RESERVE) => {
                exact(30)?;
                let class = class(r)?;
                let id = id(r)?;
                if id.ty() != crate::objid::ObjType::Mblock {
                    return Err(err("a reserve record of an object that is not an mblock"));
                }
                Ok(CatalogRecord::MblockReserve {
                    class,
                    id,
                    zone: u32(r)?,
                    owner: r.u64().map_err(short)?,
                    nonce: r.u64().map_err(short)?,
                })
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
            CatalogRecord::MblockCsum {
                id,
                class: MediaClass::Capacity,
                zone: 12,
                len: 100_000,
                csum_shift: 12,
                shared_flush: true,
                table_crc: 0x1234_5678,
            },
            CatalogRecord::MblockCsum {
                id,
                class: MediaClass::Staging,
                zone: 13,
                len: 0,
                csum_shift: 16,
                shared_flush: false,
                table_crc: 0,
            },
            CatalogRecord::MblockReserve {
                id,
                class: MediaClass::Capacity,
                zone: 14,
                owner: 0x0123_4567_89ab_cdef,
                nonce: u64::MAX - 1,
            },
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
        assert!(CatalogRecord::decode(&[9]).is_err());
        assert_eq!(recs[3].encode()[0], 4);
        assert_eq!(recs[7].encode()[0], 8);
        assert_eq!(recs[7].encode().len(), 24);
        // A shift outside 12..=16 and unknown flags are refused.
        for (at, v) in [(18usize, 11u8), (18, 17), (19, 2), (19, 0x80)] {
            let mut bad = recs[7].encode();
            bad[at] = v;
            assert!(CatalogRecord::decode(&bad).is_err(), "byte {at} = {v}");
        }
        assert_eq!(recs[9].encode()[0], 9);
        assert_eq!(recs[9].encode().len(), RECORD_MAX_LEN);
        // A reserve record names an mblock, nothing else.
        let mut bad = recs[9].encode();
        bad[2..10].copy_from_slice(&ObjectId::new(ObjType::Mlog, 3, 99).raw().to_le_bytes());
        assert!(CatalogRecord::decode(&bad).is_err());
        assert_eq!(recs[4].encode()[0], 7);
        let mut bad = recs[3].encode();
        bad[1] = 7;
        assert!(CatalogRecord::decode(&bad).is_err());
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            // Type-8 records of the right length reach the field checks too.
            if let Ok(r) = CatalogRecord::decode(&b) {
                proptest::prop_assert_eq!(r.encode(), b);
            }
        }
    }
}

#[cfg(test)]
mod layout_tests {
    use super::CsumLayout;

    #[test]
    fn table_follows_content_and_capacity_leaves_room_for_it() {
        let l = CsumLayout {
            len: 10_000,
            shift: 12,
            sector: 4096,
        };
        assert_eq!(
            (l.blocks(), l.table_offset(), l.table_bytes(), l.table_span()),
            (3, 12288, 12, 4096)
        );
        let empty = CsumLayout {
            len: 0,
            shift: 12,
            sector: 512,
        };
        assert_eq!((empty.blocks(), empty.footprint()), (0, 0));
        for (zone, sector, shift) in [
            (64u64 << 10, 512u64, 12u8),
            (64 << 10, 4096, 16),
            (32 << 20, 4096, 12),
            (32 << 20, 512, 16),
            (1 << 30, 4096, 12),
        ] {
            let cap = CsumLayout::capacity(zone, sector, shift);
            let fits = |len| {
                CsumLayout {
                    len,
                    shift,
                    sector,
                }
                .footprint()
                    <= zone
            };
            assert!(fits(cap), "{zone} {sector} {shift}");
            assert!(!fits(cap + 1), "{zone} {sector} {shift}");
            // Largest: no longer content fits (brute force near the top).
            assert!((cap + 1..(cap + 3 * sector).min(zone)).all(|l| !fits(l)));
            assert!(cap < zone);
        }
        assert_eq!(CsumLayout::capacity(32 << 20, 4096, 12), (32 << 20) - 32768);
    }
}
