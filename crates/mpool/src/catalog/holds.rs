//! Holds on the zones of committed mblocks that mcache maps read from.
//!
//! A map keeps reading an mblock after it was deleted, so the mblock's
//! zone must not be reused while a map holds it: a delete (durable, or
//! deferred and then synced) whose zone is held leaves the zone allocated
//! and marks it; the last hold dropped returns it to the space map. The
//! delete record is durable as before, so a crash in between leaks
//! nothing: replay rebuilds the space map from the live objects.
//!
//! The registry is one per process (a pool's zones are keyed by its
//! catalog's address, which cannot be reused while a hold keeps the
//! catalog alive). A hold is taken while the object's MDC table is read
//! locked and the object is in it, so a delete either sees the hold or
//! happened before (and the map call fails with `NotFound`).

use super::object::Obj;
use super::{lock, mblock, rlock, Catalog, Inner};
use crate::error::{ObjectError, Result};
use crate::format::superblock::MediaClass;
use crate::objid::{ObjType, ObjectId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// (catalog address, class index, zone).
type Key = (usize, usize, u32);

#[derive(Debug, Default)]
struct Entry {
    holds: u32,
    /// The object was deleted: zones to release when the last hold goes.
    released: Option<u32>,
}

fn registry() -> &'static Mutex<HashMap<Key, Entry>> {
    static R: OnceLock<Mutex<HashMap<Key, Entry>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// Entries in the registry, stored under its lock at every change: a
/// release with none to look for skips the process-wide lock (every
/// delete's zone passes `defer_held`). A hold is registered before its
/// table's read lock is dropped, and a delete takes that table's write
/// lock before it releases the zone, so the release sees the count the
/// hold left.
static ENTRIES: AtomicUsize = AtomicUsize::new(0);

fn key(inner: &Inner, class: MediaClass, zone: u32) -> Key {
    (inner as *const Inner as usize, class.index(), zone)
}

impl Inner {
    /// A deleted object's zones `z..z+n` of `class`: when a map holds
    /// them, keep them allocated until the last hold is dropped (true);
    /// otherwise the caller releases them now (false).
    pub(super) fn defer_held(&self, class: MediaClass, z: u32, n: u32) -> bool {
        if ENTRIES.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mut r = lock(registry());
        match r.get_mut(&key(self, class, z)) {
            Some(e) if e.holds > 0 => {
                e.released = Some(n);
                true
            }
            _ => false,
        }
    }
}

/// Where a mapped mblock's bytes are, independent of the catalog's table
/// (they stay readable after a delete while the zone is held).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MapTarget {
    id: ObjectId,
    obj: Obj,
    base: u64,
    len: u64,
}

impl MapTarget {
    /// Content length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }
    /// The mblock's ID.
    pub(crate) fn id(&self) -> ObjectId {
        self.id
    }
}

/// Holds on the zones of a set of mapped mblocks; dropping it releases
/// the zones of those deleted meanwhile.
#[derive(Debug)]
pub(crate) struct ZoneHolds {
    inner: Arc<Inner>,
    zones: Vec<(MediaClass, u32)>,
}

impl Drop for ZoneHolds {
    fn drop(&mut self) {
        let mut free = Vec::new();
        {
            let mut r = lock(registry());
            for &(class, z) in &self.zones {
                let k = key(&self.inner, class, z);
                if let Some(e) = r.get_mut(&k) {
                    e.holds = e.holds.saturating_sub(1);
                    if e.holds == 0 {
                        if let Some(n) = e.released {
                            free.push((class, z, n));
                        }
                        r.remove(&k);
                    }
                }
            }
            ENTRIES.store(r.len(), Ordering::Release);
        }
        if !free.is_empty() {
            if let Err(e) = self.inner.release(free) {
                tracing::error!("releasing the zones of deleted mapped mblocks: {e}");
            }
        }
    }
}

impl Catalog {
    /// Check that every ID is a committed mblock and hold its zone: the
    /// targets in order, and the holds (dropped when the map goes).
    pub(crate) fn mcache_pin(&self, ids: &[ObjectId]) -> Result<(Vec<MapTarget>, ZoneHolds)> {
        let mut holds = ZoneHolds {
            inner: Arc::clone(&self.inner),
            zones: Vec::with_capacity(ids.len()),
        };
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            Self::expect_type(id, ObjType::Mblock)?;
            let s = self.inner.shard(id)?;
            let objs = rlock(&s.objs);
            let Some(o) = objs.get(&id.raw()).copied() else {
                drop(objs);
                return Err(self.unread(id));
            };
            let c = self.inner.class(o.class())?;
            let len = u64::from(o.a);
            if len > c.zone_size {
                return Err(ObjectError::ReadOutOfRange {
                    id,
                    offset: 0,
                    len,
                    size: c.zone_size,
                }
                .into());
            }
            // Under the table's read lock: a delete sees this hold.
            let mut r = lock(registry());
            r.entry(key(&self.inner, o.class(), o.zone))
                .or_default()
                .holds += 1;
            ENTRIES.store(r.len(), Ordering::Release);
            drop(r);
            holds.zones.push((o.class(), o.zone));
            out.push(MapTarget {
                id,
                obj: o,
                base: c.off(o.zone),
                len,
            });
        }
        Ok((out, holds))
    }

    /// Read `buf.len()` bytes at `offset` of a mapped mblock (inside its
    /// content), verified against its checksums, whether or not it was
    /// deleted since it was mapped. Never touches a map.
    pub(crate) fn mcache_read(&self, t: &MapTarget, offset: u64, buf: &mut [u8]) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > t.len)
        {
            return Err(ObjectError::ReadOutOfRange {
                id: t.id,
                offset,
                len: buf.len() as u64,
                size: t.len,
            }
            .into());
        }
        let table = self.table(t.id, &t.obj)?;
        let dev = self.class_dev(t.obj.class())?.as_ref();
        let mut spans = [mblock::Span {
            base: t.base,
            len: t.len,
            offset,
            buf,
            table: Some(&table),
        }];
        mblock::read_many(dev, &mut spans, usize::MAX).map_err(|e| self.read_err(t.id, e))
    }
}
