//! Replay of one of MDC1..N at open, and the check of the shared-flush
//! commits in its last flush set.

use super::mblock;
use super::object::Obj;
use super::seal::{Reservation, State};
use super::ClassDev;
use crate::dev::DevError;
use crate::error::{MetadataError, Result};
use crate::format::record::{CatalogRecord, CsumLayout};
use crate::format::Features;
use crate::mdc::Mdc;
use crate::mlog::Lsn;
use crate::objid::ObjectId;
use std::collections::HashMap;

/// Every record of an MDC's active log.
pub(super) fn mdc_records(mdc: &Mdc) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for r in mdc.reader()? {
        out.push(r?);
    }
    Ok(out)
}

/// What replaying one of MDC1..N found.
pub(super) struct Replayed {
    pub(super) objs: HashMap<u64, Obj>,
    pub(super) records: u64,
    pub(super) ckpt: u64,
    pub(super) max_uniq: u64,
    /// Shared-flush mblock commits in the log's last flush set.
    pub(super) tail_commits: Vec<ObjectId>,
    /// Reserved mblocks (type 9) not committed or deleted since.
    pub(super) reserved: HashMap<u64, Reservation>,
}

impl Replayed {
    /// An mblock commit record (type 4, 7 or 8): the object added (or
    /// replaced); `tail_commit`: a shared-flush commit in the log's last
    /// flush set, to verify before it counts.
    fn add_mblock(&mut self, id: ObjectId, o: Obj, tail_commit: bool) {
        self.max_uniq = self.max_uniq.max(id.uniq());
        if tail_commit {
            self.tail_commits.push(id);
        }
        self.reserved.remove(&id.raw());
        self.objs.insert(id.raw(), o);
    }
}

/// Replay an MDC's records in order, streaming (no copy of the whole log).
/// `features`: which record types the pool's format allows (type 7 from
/// version 2, type 8 from version 3).
pub(super) fn replay(index: u8, mdc: &Mdc, features: Features) -> Result<Replayed> {
    let shared_commits = features.shared_commit();
    let tail = mdc.open_tail().unwrap_or(Lsn(u64::MAX));
    let mut r = Replayed {
        objs: HashMap::new(),
        records: 0,
        ckpt: 0,
        max_uniq: 0,
        tail_commits: Vec::new(),
        reserved: HashMap::new(),
    };
    let mut rd = mdc.reader()?;
    while let Some(rec) = rd.next_record() {
        let (lsn, rec) = rec?;
        r.records += 1;
        match decode(index, &rec)? {
            CatalogRecord::UniqCkpt { next } => r.ckpt = r.ckpt.max(next),
            CatalogRecord::Mblock {
                id,
                class,
                zone,
                len,
                crc,
                shared_flush,
            } => {
                if shared_flush && !shared_commits {
                    return Err(MetadataError::Corrupt(format!(
                        "MDC{index}: a one-flush commit record (type 7) in a format-1 pool"
                    ))
                    .into());
                }
                r.add_mblock(
                    id,
                    Obj {
                        zone,
                        a: len,
                        b: crc,
                        class,
                        shift: 0,
                    },
                    shared_flush && lsn >= tail,
                );
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
                if !features.block_csums() {
                    return Err(MetadataError::Corrupt(format!(
                        "MDC{index}: a block-checksum commit record (type 8) in a format-{} pool",
                        features.version
                    ))
                    .into());
                }
                r.add_mblock(
                    id,
                    Obj {
                        zone,
                        a: len,
                        b: table_crc,
                        class,
                        shift: csum_shift,
                    },
                    shared_flush && lsn >= tail,
                );
            }
            CatalogRecord::Mlog {
                id,
                class,
                zone,
                zone_b,
                zones,
            } => {
                r.max_uniq = r.max_uniq.max(id.uniq());
                r.objs.insert(
                    id.raw(),
                    Obj {
                        zone,
                        a: zones,
                        b: zone_b,
                        class,
                        shift: 0,
                    },
                );
            }
            CatalogRecord::Delete { id } => {
                r.objs.remove(&id.raw());
                r.reserved.remove(&id.raw());
            }
            CatalogRecord::MblockReserve {
                id,
                class,
                zone,
                owner,
                nonce,
            } => {
                if !features.block_csums() {
                    return Err(MetadataError::Corrupt(format!(
                        "MDC{index}: an mblock reserve record (type 9) in a format-{} pool",
                        features.version
                    ))
                    .into());
                }
                if r.objs.contains_key(&id.raw()) {
                    return Err(MetadataError::Corrupt(format!(
                        "MDC{index}: a reserve record of mblock {id}, which is committed"
                    ))
                    .into());
                }
                r.max_uniq = r.max_uniq.max(id.uniq());
                r.reserved.insert(
                    id.raw(),
                    Reservation {
                        class,
                        zone,
                        owner,
                        nonce,
                        state: State::Unknown,
                    },
                );
            }
            other => {
                return Err(MetadataError::Corrupt(format!(
                    "MDC{index} holds an MDC0 record: {other:?}"
                ))
                .into())
            }
        }
    }
    Ok(r)
}

/// Of the shared-flush commits in an MDC's last flush set, those whose
/// content does not match its record: the crash came before the flush that
/// would have made both durable, so the commit never returned and is
/// dropped. A commit whose content cannot be read is kept (nothing proves
/// it incomplete; `check` reports the read error).
pub(super) fn unfinished_commits(
    index: u8,
    classes: &[Option<ClassDev>; 2],
    objs: &HashMap<u64, Obj>,
    tail: &[ObjectId],
) -> Vec<ObjectId> {
    let mut bad = Vec::new();
    for id in tail {
        let Some(o) = objs.get(&id.raw()) else {
            continue; // deleted later in the same flush set
        };
        let Some(c) = classes[o.class().index()].as_ref() else {
            continue; // the open fails on the missing class below
        };
        if u64::from(o.a) > c.zone_size || c.off(o.zone).saturating_add(c.zone_size) > c.dev.size()
        {
            continue; // not a zone of this device: the open fails on it below
        }
        let (dev, base, len) = (c.dev.as_ref(), c.off(o.zone), u64::from(o.a));
        if o.shift > 0
            && (CsumLayout {
                len,
                shift: o.shift,
                sector: u64::from(dev.sector()),
            })
            .footprint()
                > c.zone_size
        {
            continue; // content and table overflow the zone: the open fails on it below
        }
        // What the content holds: a whole-content CRC (legacy), or
        // whether the table matches its record and the content its table.
        let landed = || -> std::result::Result<std::result::Result<(), String>, DevError> {
            if o.shift == 0 {
                let crc = mblock::content_crc(dev, base, len)?;
                return Ok(if crc == o.b {
                    Ok(())
                } else {
                    Err(format!("CRC {crc:#010x}, recorded {:#010x}", o.b))
                });
            }
            let t = mblock::read_table(dev, base, len, o.shift)?;
            if t.crc() != o.b {
                return Ok(Err(format!(
                    "checksum table CRC {:#010x}, recorded {:#010x}",
                    t.crc(),
                    o.b
                )));
            }
            Ok(match mblock::bad_blocks(dev, base, len, &t)?.first() {
                None => Ok(()),
                Some(r) => Err(format!(
                    "bytes {}..{} do not match the table",
                    r.offset,
                    r.offset + r.len
                )),
            })
        };
        // A read error may pass: three tries before giving up on the check.
        match landed().or_else(|_| landed()).or_else(|_| landed()) {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                tracing::warn!(
                    "MDC{index}: mblock {id} was being committed at a crash and its content \
                     did not land ({why}): the commit is dropped"
                );
                bad.push(*id);
            }
            // Kept: a read error is no evidence that the commit did not
            // finish. Its reads report the error and `check` lists it.
            Err(e) => tracing::warn!(
                "MDC{index}: mblock {id} was being committed at a crash; its content \
                 cannot be read to verify it ({e}); it is kept"
            ),
        }
    }
    bad
}

pub(super) fn decode(shard: u8, rec: &[u8]) -> Result<CatalogRecord> {
    CatalogRecord::decode(rec)
        .map_err(|e| MetadataError::Corrupt(format!("MDC{shard}: {e}")).into())
}

/// The objects a damaged MDC is known to hold: its records read up to the
/// first that fails (adds minus deletes). Best effort, for the report of a
/// degraded open; nothing here is trusted for anything else.
pub(super) fn known_objects(index: u8, mdc: Option<&Mdc>) -> Vec<ObjectId> {
    let mut live = std::collections::BTreeSet::new();
    let Some(mdc) = mdc else {
        return Vec::new();
    };
    let Ok(mut rd) = mdc.reader() else {
        return Vec::new();
    };
    while let Some(Ok((_, rec))) = rd.next_record() {
        match decode(index, &rec) {
            Ok(CatalogRecord::Mblock { id, .. })
            | Ok(CatalogRecord::MblockCsum { id, .. })
            | Ok(CatalogRecord::MblockReserve { id, .. })
            | Ok(CatalogRecord::Mlog { id, .. }) => {
                live.insert(id.raw());
            }
            Ok(CatalogRecord::Delete { id }) => {
                live.remove(&id.raw());
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    live.into_iter().filter_map(ObjectId::from_raw).collect()
}
