//! An object of the catalog: the committed record kept in memory, the
//! pending (uncommitted) state, and the properties reported for both.

use super::mblock::WriteState;
use super::{lock, rlock, Catalog};
use crate::error::{invariant_broken, ObjectError, Result};
use crate::format::record::{CatalogRecord, CsumLayout};
use crate::format::superblock::MediaClass;
use crate::objid::{ObjType, ObjectId};
use serde::Serialize;

/// A committed object, as kept in memory (16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Obj {
    pub(super) zone: u32,
    /// Mblock: content length. Mlog/MDC: zones per log.
    pub(super) a: u32,
    /// Mblock: content CRC (legacy), or the CRC of its checksum table
    /// (`shift` > 0). MDC: zone of log B. Mlog: 0.
    pub(super) b: u32,
    /// Mblock with a checksum table (record type 8): log2 of its checksum
    /// block size. 0 for every other object and for legacy mblocks.
    pub(super) shift: u8,
    /// Its media class (a [`MediaClass`], not a code: an unknown class
    /// code is rejected when a record is decoded and cannot get here).
    pub(super) class: MediaClass,
}

// The table holds one of these per object.
const _: () = assert!(std::mem::size_of::<Obj>() <= 16);

impl Obj {
    pub(super) fn class(&self) -> MediaClass {
        self.class
    }

    pub(super) fn zones(&self, ty: ObjType) -> Vec<(u32, u32)> {
        match ty {
            ObjType::Mblock => vec![(self.zone, 1)],
            ObjType::Mlog => vec![(self.zone, self.a)],
            ObjType::Mdc => vec![(self.zone, self.a), (self.b, self.a)],
        }
    }

    pub(super) fn record(&self, id: ObjectId) -> CatalogRecord {
        match id.ty() {
            ObjType::Mblock if self.shift > 0 => CatalogRecord::MblockCsum {
                id,
                class: self.class(),
                zone: self.zone,
                len: self.a,
                csum_shift: self.shift,
                shared_flush: false,
                table_crc: self.b,
            },
            ObjType::Mblock => CatalogRecord::Mblock {
                id,
                class: self.class(),
                zone: self.zone,
                len: self.a,
                crc: self.b,
                shared_flush: false,
            },
            ObjType::Mlog => CatalogRecord::Mlog {
                id,
                class: self.class(),
                zone: self.zone,
                zone_b: 0,
                zones: self.a,
            },
            ObjType::Mdc => CatalogRecord::Mlog {
                id,
                class: self.class(),
                zone: self.zone,
                zone_b: self.b,
                zones: self.a,
            },
        }
    }
}

/// An object allocated but not committed: it vanishes on a crash.
#[derive(Debug)]
pub(super) enum Pending {
    Mblock {
        class: MediaClass,
        zone: u32,
        ws: WriteState,
    },
    Log {
        class: MediaClass,
        zone: u32,
        zone_b: u32,
        zones: u32,
    },
}

/// Properties of an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectProps {
    /// ID.
    pub id: ObjectId,
    /// Type.
    #[serde(rename = "type")]
    pub ty: ObjType,
    /// Media class.
    pub class: MediaClass,
    /// Bytes written (mblock) or log capacity in bytes (mlog, MDC per log).
    #[serde(rename = "length")]
    pub len: u64,
    /// Bytes the object can hold (mblock: its zone size, less the room
    /// its checksum table takes in a format-3 pool).
    pub capacity: u64,
    /// Committed (durable and, for mblocks, immutable).
    pub committed: bool,
    /// Committed mblocks: CRC-32C of the content (legacy mblocks), or of
    /// its table of block checksums (`csum_block` is set); in JSON as
    /// `crc32c`, 8 lowercase hex digits, as the tables show it (null for
    /// logs).
    #[serde(rename = "crc32c", serialize_with = "crc_hex")]
    pub crc: Option<u32>,
    /// Mblocks with per-block checksums (format version 3): the checksum
    /// block size in bytes.
    pub csum_block: Option<u32>,
    /// First zone.
    pub zone: u32,
}

fn crc_hex<S: serde::Serializer>(crc: &Option<u32>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match crc {
        Some(c) => s.serialize_str(&format!("{c:08x}")),
        None => s.serialize_none(),
    }
}

impl Catalog {
    /// Properties of any object, committed or not.
    pub(crate) fn props(&self, id: ObjectId) -> Result<ObjectProps> {
        if let Some(o) = self.committed(id)? {
            return self.obj_props(id, &o);
        }
        let Some(p) = self.pending(id) else {
            return Err(ObjectError::NotFound(id).into());
        };
        let g = lock(&p);
        match g.as_ref() {
            Some(Pending::Mblock { class, zone, ws }) => Ok(ObjectProps {
                id,
                ty: ObjType::Mblock,
                class: *class,
                len: ws.written,
                capacity: ws.cap,
                committed: false,
                crc: None,
                csum_block: ws.csums.as_ref().map(|c| 1u32 << c.shift),
                zone: *zone,
            }),
            Some(Pending::Log {
                class, zone, zones, ..
            }) => {
                let zs = self.inner.class(*class)?.zone_size;
                Ok(ObjectProps {
                    id,
                    ty: id.ty(),
                    class: *class,
                    len: 0,
                    capacity: u64::from(*zones) * zs,
                    committed: false,
                    crc: None,
                    csum_block: None,
                    zone: *zone,
                })
            }
            None => Err(ObjectError::NotFound(id).into()),
        }
    }

    pub(super) fn obj_props(&self, id: ObjectId, o: &Obj) -> Result<ObjectProps> {
        let c = self.inner.class(o.class())?;
        let zs = c.zone_size;
        Ok(match id.ty() {
            ObjType::Mblock => ObjectProps {
                id,
                ty: ObjType::Mblock,
                class: o.class(),
                len: u64::from(o.a),
                capacity: if o.shift > 0 {
                    CsumLayout::capacity(zs, u64::from(c.dev.sector()), o.shift)
                } else {
                    zs
                },
                committed: true,
                crc: Some(o.b),
                csum_block: (o.shift > 0).then(|| 1u32 << o.shift),
                zone: o.zone,
            },
            ty => ObjectProps {
                id,
                ty,
                class: o.class(),
                len: 0,
                capacity: u64::from(o.a) * zs,
                committed: true,
                crc: None,
                csum_block: None,
                zone: o.zone,
            },
        })
    }

    /// Every committed object (sorted by ID).
    pub(crate) fn objects(&self) -> Result<Vec<ObjectProps>> {
        let mut out = Vec::new();
        for s in &self.inner.shards {
            let objs: Vec<(u64, Obj)> = rlock(&s.objs).iter().map(|(k, v)| (*k, *v)).collect();
            for (raw, o) in objs {
                let id = ObjectId::from_raw(raw)
                    .ok_or_else(|| invariant_broken(format!("object table key {raw:#x}")))?;
                out.push(self.obj_props(id, &o)?);
            }
        }
        out.sort_by_key(|p| p.id);
        Ok(out)
    }
}
