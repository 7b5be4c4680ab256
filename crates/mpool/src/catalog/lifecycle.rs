//! Object lifecycle: allocate, write, commit, abort, delete, and opening
//! user logs.

use super::mblock::{self, WriteState};
use super::object::{Obj, ObjectProps, Pending};
use super::shard::Shard;
use super::{lock, rlock, Catalog};
use crate::error::{
    ensure_invariant, invariant_broken, Error, MetadataError, ObjectError, Result, StorageError,
};
use crate::format::record::CatalogRecord;
use crate::format::superblock::MediaClass;
use crate::io::AlignedBuf;
use crate::mdc::{Mdc, WrittenRecord};
use crate::mlog::Mlog;
use crate::objid::{MdcId, ObjType, ObjectId};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// What a commit does beside its own writes.
enum With<'a> {
    Nothing,
    /// Side work run while its last write is in flight.
    Side(&'a mut dyn FnMut()),
    /// A caller's record for `mdc`, made durable by the commit's flush;
    /// what became of it is stored in `written`.
    Record {
        mdc: &'a Mdc,
        rec: &'a [u8],
        written: &'a mut crate::mdc::Result<Option<WrittenRecord>>,
    },
}

pub(super) fn data_err(id: ObjectId, e: mblock::DataError) -> Error {
    match e {
        mblock::DataError::Full { want, cap } => ObjectError::MblockFull { id, want, cap }.into(),
        mblock::DataError::Dev(d) => StorageError::Dev(d).into(),
        mblock::DataError::Failed => ObjectError::WriteFailed(id).into(),
    }
}

/// Drop the pool's cached handle of a log unless a caller still holds one
/// (then the log is busy: true).
pub(super) fn release_handle<T>(cache: &Mutex<HashMap<u64, Arc<T>>>, id: ObjectId) -> bool {
    let mut c = lock(cache);
    match c.get(&id.raw()) {
        Some(h) if Arc::strong_count(h) > 1 => true,
        Some(_) => {
            c.remove(&id.raw());
            false
        }
        None => false,
    }
}

/// Allocation and lifecycle of objects.
impl Catalog {
    pub(super) fn pending(&self, id: ObjectId) -> Option<Arc<Mutex<Option<Pending>>>> {
        self.inner.pending.get(id.raw())
    }

    /// Why an object is not pending: committed meanwhile, or no such object.
    pub(super) fn gone(&self, id: ObjectId) -> Result<Error> {
        Ok(if self.committed(id)?.is_some() {
            ObjectError::Committed(id).into()
        } else {
            ObjectError::NotFound(id).into()
        })
    }

    /// Why an object is not committed: still pending, or no such object.
    pub(super) fn unread(&self, id: ObjectId) -> Error {
        if self.pending(id).is_some() {
            ObjectError::NotCommitted(id).into()
        } else {
            ObjectError::NotFound(id).into()
        }
    }

    /// The record of committed object `id`, if it is committed. Each
    /// thread keeps the records it looked up last, good while their MDC's
    /// records have not changed since (`Shard::objs_gen`), so that reads
    /// from several threads take no shared lock.
    pub(super) fn committed(&self, id: ObjectId) -> Result<Option<Obj>> {
        let s = self.inner.shard(id)?;
        let gen = s.objs_gen.load(Ordering::Acquire);
        let key = (self.inner.csums.cache.gen, id.raw());
        if let Some(o) = super::csum::memo_obj(key, gen) {
            return Ok(Some(o));
        }
        let o = rlock(&s.objs).get(&id.raw()).copied();
        if let Some(o) = o {
            // Stamped with the count read before the lookup: a change in
            // between makes the entry stale at once.
            super::csum::memo_obj_put(key, gen, o);
        }
        Ok(o)
    }

    pub(super) fn expect_type(id: ObjectId, ty: ObjType) -> Result<()> {
        if id.ty() != ty {
            return Err(ObjectError::WrongType { id, expected: ty }.into());
        }
        Ok(())
    }

    /// Allocate an mblock in `class`; in a format-3 pool with checksum
    /// blocks of the catalog's current size ([`Catalog::csum_block`]).
    pub(crate) fn mblock_alloc(&self, class: MediaClass) -> Result<ObjectId> {
        let shift = self.csum_block().map(|b| b.trailing_zeros() as u8);
        self.mblock_alloc_shift(class, shift)
    }

    /// Allocate an mblock in `class` whose commit stores checksums in
    /// blocks of `block` bytes (a power of two, 4 KiB..64 KiB); refused in
    /// a pool of a format version before 3.
    pub(crate) fn mblock_alloc_csum(&self, class: MediaClass, block: u32) -> Result<ObjectId> {
        let shift = super::csum::csum_shift_of(block)?;
        if !self.inner.features.block_csums() {
            return Err(Error::InvalidArgument(format!(
                "per-block checksums need format version 3; this pool is version {}",
                self.inner.features.version
            )));
        }
        self.mblock_alloc_shift(class, Some(shift))
    }

    fn mblock_alloc_shift(&self, class: MediaClass, shift: Option<u8>) -> Result<ObjectId> {
        self.inner.check_writable()?;
        let c = self.inner.class(class)?;
        let zone = c.map.alloc(1)?;
        c.check_alloc(zone, 1)?;
        let id = match self.inner.new_id(ObjType::Mblock) {
            Ok(id) => id,
            Err(e) => {
                c.map.release(zone, 1)?;
                return Err(e);
            }
        };
        let ws = WriteState::new(c.dev.sector(), c.off(zone), c.zone_size, shift);
        self.inner.pending.insert(
            id.raw(),
            Arc::new(Mutex::new(Some(Pending::Mblock { class, zone, ws }))),
        );
        Ok(id)
    }

    /// Append to an uncommitted mblock.
    pub(crate) fn mblock_write(&self, id: ObjectId, data: &[u8]) -> Result<()> {
        let _ahead = self.ahead_guard();
        self.with_writer(id, |ws, dev| ws.append(dev, data))
    }

    /// Append an owned aligned buffer to an uncommitted mblock, with no
    /// copy where it can; the buffer comes back.
    pub(crate) fn mblock_write_buf(&self, id: ObjectId, buf: AlignedBuf) -> Result<AlignedBuf> {
        let _ahead = self.ahead_guard();
        self.with_writer(id, |ws, dev| ws.append_buf(dev, buf))
    }

    /// Run `f` on the write state of uncommitted mblock `id` and the
    /// device of its class.
    pub(super) fn with_writer<T>(
        &self,
        id: ObjectId,
        f: impl FnOnce(
            &mut WriteState,
            &dyn crate::dev::Device,
        ) -> std::result::Result<T, mblock::DataError>,
    ) -> Result<T> {
        Self::expect_type(id, ObjType::Mblock)?;
        let Some(p) = self.pending(id) else {
            return Err(self.gone(id)?);
        };
        let mut g = lock(&p);
        match g.as_mut() {
            Some(Pending::Mblock { class, ws, .. }) => {
                let dev = self.inner.class(*class)?.dev.as_ref();
                f(ws, dev).map_err(|e| data_err(id, e))
            }
            Some(Pending::Log { .. }) => Err(ObjectError::WrongType {
                id,
                expected: ObjType::Mblock,
            }
            .into()),
            // Committed or aborted by another thread meanwhile.
            None => Err(self.gone(id)?),
        }
    }

    /// Commit an mblock: data flushed, then the commit record made durable.
    pub(crate) fn mblock_commit(&self, id: ObjectId) -> Result<ObjectProps> {
        self.mblock_commit_in(id, With::Nothing)
    }

    /// As [`Self::mblock_commit`], running `side` once: while the last
    /// content write is in flight when there is one (see
    /// `Device::submit_beside`), and always before the commit record is
    /// written and the device flushed.
    pub(crate) fn mblock_commit_beside(
        &self,
        id: ObjectId,
        side: &mut dyn FnMut(),
    ) -> Result<ObjectProps> {
        crate::dev::side_once(side, |s| self.mblock_commit_in(id, With::Side(s)))
    }

    /// [`Self::mblock_commit_with`] for a commit that could not go in a
    /// batch, on the calling thread: `rec` is written beside the mblock's
    /// last write, then the commit record is appended.
    pub(super) fn mblock_commit_with_alone(
        &self,
        id: ObjectId,
        mdc: &Mdc,
        rec: &[u8],
    ) -> (
        Result<ObjectProps>,
        crate::mdc::Result<Option<WrittenRecord>>,
    ) {
        let mut written = Ok(None);
        let r = self.mblock_commit_in(
            id,
            With::Record {
                mdc,
                rec,
                written: &mut written,
            },
        );
        if let (Ok(_), Ok(Some(w))) = (&r, &written) {
            // Written before the commit's flush began: durable.
            mdc.note_flushed(*w);
        }
        (r, written)
    }

    fn mblock_commit_in(&self, id: ObjectId, with: With<'_>) -> Result<ObjectProps> {
        Self::expect_type(id, ObjType::Mblock)?;
        self.inner.check_writable()?;
        let Some(p) = self.pending(id) else {
            return Err(self.gone(id)?);
        };
        let mut g = lock(&p);
        let Some(Pending::Mblock { class, zone, ws }) = g.as_mut() else {
            return Err(self.gone(id)?);
        };
        let class = *class;
        let zone = *zone;
        // The pool metadata lives on the capacity device: there, the flush
        // that makes the commit record durable makes the content durable
        // too, and replay verifies the content of commits in a log's last
        // flush set (docs/format.md, "Transactions"). Elsewhere the content
        // is flushed first.
        let shared = self.inner.features.shared_commit() && class == MediaClass::Capacity;
        let s = self.inner.shard(id)?;
        let dev = self.inner.class(class)?.dev.as_ref();
        let finished = match with {
            With::Nothing => ws.finish(dev, !shared),
            With::Side(side) => ws.finish_beside(dev, !shared, side),
            With::Record { mdc, rec, written } => {
                ws.finish_beside(dev, !shared, &mut || *written = mdc.append_written(rec))
            }
        };
        let table_crc = finished.map_err(|e| data_err(id, e))?;
        let (obj, record) = self.commit_record(id, class, zone, ws, table_crc, shared)?;
        let logged = self.inner.log(s, record, true, |m| {
            m.insert(id.raw(), obj);
            // A reserved mblock committed the usual way.
            if s.any_reserved.load(Ordering::Relaxed) {
                lock(&s.reserved).remove(&id.raw());
            }
        });
        if let Err(e) = logged {
            if !matches!(
                e,
                Error::Metadata(MetadataError::Full { .. })
                    | Error::Metadata(MetadataError::Failed { .. })
            ) {
                // The record may have reached the media: only abort is
                // left, and the zone is not reused before a reopen says.
                ws.failed = true;
                ws.hold_zone = true;
            }
            return Err(e);
        }
        self.commit_done(id, s, shared, &mut g);
        drop(g);
        self.inner.pending.remove(id.raw());
        self.props(id)
    }

    /// An mblock's commit is durable and in its shard's table: cache its
    /// checksum table and end its pending state (the caller then drops
    /// it from the pending map).
    pub(super) fn commit_done(
        &self,
        id: ObjectId,
        s: &Shard,
        shared: bool,
        pending: &mut Option<Pending>,
    ) {
        if shared {
            s.unsealed.store(true, Ordering::Relaxed);
        }
        // The checksum table reads verify against is known now: cached, so
        // the first read of a new mblock does not read it back first.
        if let Some(Pending::Mblock { ws, .. }) = pending.as_ref() {
            if let Some(c) = ws.csums.as_ref() {
                let t = mblock::Table::from_bytes(c.shift, &c.table());
                self.inner.csums.cache.insert(id.raw(), Arc::new(t));
            }
        }
        *pending = None;
    }

    /// The commit record of mblock `id` as written so far (`table_crc`,
    /// its checksum table's CRC), and the object it makes.
    pub(super) fn commit_record(
        &self,
        id: ObjectId,
        class: MediaClass,
        zone: u32,
        ws: &WriteState,
        table_crc: u32,
        shared: bool,
    ) -> Result<(Obj, CatalogRecord)> {
        // Writes past the capacity were refused, the capacity leaves room
        // for the checksum table in the zone, and a zone is at most
        // ZONE_MAX (below 4 GiB): the length fits its record and its zone.
        ensure_invariant!(
            ws.written <= ws.cap && ws.zone == self.inner.class(class)?.zone_size,
            "mblock {id}: {} bytes written into a {}-byte zone",
            ws.written,
            ws.zone
        );
        let len = u32::try_from(ws.written).map_err(|_| {
            invariant_broken(format!("mblock {id}: length {} exceeds 4 GiB", ws.written))
        })?;
        let shift = ws.csums.as_ref().map_or(0, |c| c.shift);
        let obj = Obj {
            zone,
            a: len,
            b: if shift > 0 { table_crc } else { ws.crc },
            class,
            shift,
        };
        let mut rec = obj.record(id);
        match &mut rec {
            CatalogRecord::Mblock { shared_flush, .. }
            | CatalogRecord::MblockCsum { shared_flush, .. } => *shared_flush = shared,
            _ => {}
        }
        Ok((obj, rec))
    }

    /// Discard an uncommitted object (mblock, mlog or MDC).
    pub(crate) fn abort(&self, id: ObjectId) -> Result<()> {
        let busy = match id.ty() {
            ObjType::Mlog => release_handle(&self.inner.open_logs, id),
            ObjType::Mdc => release_handle(&self.inner.open_mdcs, id),
            ObjType::Mblock => false,
        };
        if busy {
            return Err(ObjectError::Busy(id).into());
        }
        let Some(p) = self.pending(id) else {
            return Err(self.gone(id)?);
        };
        let mut g = lock(&p);
        let Some(pend) = g.take() else {
            return Err(ObjectError::NotFound(id).into());
        };
        self.inner.pending.remove(id.raw());
        drop(g);
        if id.ty() == ObjType::Mblock && self.is_reserved(id) {
            // Its reserve record is durable: a delete record frees it.
            return self.drop_reserved(id);
        }
        match pend {
            Pending::Mblock { ws, .. } if ws.hold_zone => {}
            Pending::Mblock { class, zone, .. } => self.inner.class(class)?.map.release(zone, 1)?,
            Pending::Log {
                class,
                zone,
                zone_b,
                zones,
            } => {
                let c = self.inner.class(class)?;
                c.map.release(zone, zones)?;
                if id.ty() == ObjType::Mdc {
                    c.map.release(zone_b, zones)?;
                }
            }
        }
        Ok(())
    }

    /// Delete a committed object: its record is durable before its zones
    /// can be reused. With `durable`, before this returns; otherwise the
    /// record rides on the MDC's next flush (a later sync append to it,
    /// [`Catalog::sync`], a compaction, the background thread within
    /// `background::TICK`, or the close), and a crash before then brings the object
    /// back whole. Either way it is gone for readers at once.
    pub(crate) fn delete(&self, id: ObjectId, durable: bool) -> Result<()> {
        self.inner.check_writable()?;
        if id == self.inner.root.object_id() {
            return Err(Error::InvalidArgument(
                "the root MDC cannot be deleted".into(),
            ));
        }
        if self.pending(id).is_some() {
            return Err(ObjectError::NotCommitted(id).into());
        }
        // A log is busy while a caller holds its handle (the pool's cache holds one).
        let busy = match id.ty() {
            ObjType::Mlog => release_handle(&self.inner.open_logs, id),
            ObjType::Mdc => release_handle(&self.inner.open_mdcs, id),
            ObjType::Mblock => false,
        };
        if busy {
            return Err(ObjectError::Busy(id).into());
        }
        let s = self.inner.shard(id)?;
        let mut removed = None;
        if !rlock(&s.objs).contains_key(&id.raw()) {
            return Err(ObjectError::NotFound(id).into());
        }
        // A sealed mblock not adopted yet: not while it is being adopted.
        let _one = (id.ty() == ObjType::Mblock && self.is_reserved(id)).then(|| lock(&s.adopting));
        self.inner
            .log(s, CatalogRecord::Delete { id }, durable, |m| {
                removed = m.remove(&id.raw());
                if s.any_reserved.load(Ordering::Relaxed) {
                    lock(&s.reserved).remove(&id.raw());
                }
                if let (Some(o), false) = (removed, durable) {
                    // Under the append's exclusion of compaction: a compaction
                    // either sees these zones here or the delete in its old log.
                    lock(&s.awaiting)
                        .extend(o.zones(id.ty()).into_iter().map(|(z, n)| (o.class(), z, n)));
                }
            })?;
        let Some(o) = removed else {
            return Err(ObjectError::NotFound(id).into());
        };
        self.inner.csums.cache.remove(id.raw());
        if durable {
            let c = self.inner.class(o.class())?;
            for (z, n) in o.zones(id.ty()) {
                // Held by an mcache map: released when the last hold goes.
                if !self.inner.defer_held(o.class(), z, n) {
                    c.map.release(z, n)?;
                }
            }
        }
        Ok(())
    }

    /// Allocate a user mlog (`ty` Mlog) or MDC (`ty` Mdc) of at least `capacity` bytes per log.
    pub(crate) fn log_alloc(
        &self,
        ty: ObjType,
        class: MediaClass,
        capacity: u64,
    ) -> Result<ObjectId> {
        self.log_alloc_with(ty, class, capacity, false)
    }

    /// Allocate a user mlog whose records are mirrored (a version-3 pool only).
    pub(crate) fn mlog_alloc_mirrored(&self, class: MediaClass, capacity: u64) -> Result<ObjectId> {
        if !self.inner.features.mirrored_metadata() {
            return Err(Error::InvalidArgument(format!(
                "mirrored mlogs need format version 3; the pool is version {}",
                self.inner.features.version
            )));
        }
        self.log_alloc_with(ObjType::Mlog, class, capacity, true)
    }

    /// [`Catalog::log_alloc`]; `mirror_mlog`: a user mlog is mirrored (a
    /// user MDC is mirrored in a version-3 pool).
    fn log_alloc_with(
        &self,
        ty: ObjType,
        class: MediaClass,
        capacity: u64,
        mirror_mlog: bool,
    ) -> Result<ObjectId> {
        self.inner.check_writable()?;
        let c = self.inner.class(class)?;
        let zones = u32::try_from(capacity.max(1).div_ceil(c.zone_size))
            .map_err(|_| Error::InvalidArgument(format!("log capacity {capacity} is too large")))?;
        let zone = c.map.alloc(zones)?;
        c.check_alloc(zone, zones)?;
        let zone_b = if ty == ObjType::Mdc {
            match c.map.alloc(zones) {
                Ok(z) => {
                    c.check_alloc(z, zones)?;
                    z
                }
                Err(e) => {
                    c.map.release(zone, zones)?;
                    return Err(e.into());
                }
            }
        } else {
            0
        };
        // The pair of the allocations above, on every failure below.
        let release = || -> Result<()> {
            c.map.release(zone, zones)?;
            if ty == ObjType::Mdc {
                c.map.release(zone_b, zones)?;
            }
            Ok(())
        };
        let id = match self.inner.new_id(ty) {
            Ok(id) => id,
            Err(e) => {
                release()?;
                return Err(e);
            }
        };
        // Format the log(s) now so that an open after commit finds them.
        let made: Result<()> = match ty {
            ObjType::Mdc => Mdc::create_with(
                Arc::clone(&c.dev),
                c.extent(zone, zones),
                c.extent(zone_b, zones),
                id.raw(),
                self.inner.features.mirrored_metadata(),
            )
            .and_then(|m| m.sync())
            .map_err(Error::from),
            _ => Mlog::create_with(
                Arc::clone(&c.dev),
                c.extent(zone, zones),
                id.raw(),
                mirror_mlog,
            )
            .and_then(|m| m.sync())
            .map_err(Error::from),
        };
        if let Err(e) = made {
            release()?;
            return Err(e);
        }
        self.inner.pending.insert(
            id.raw(),
            Arc::new(Mutex::new(Some(Pending::Log {
                class,
                zone,
                zone_b,
                zones,
            }))),
        );
        Ok(id)
    }

    /// Commit a user mlog or MDC.
    pub(crate) fn log_commit(&self, id: ObjectId) -> Result<ObjectProps> {
        self.inner.check_writable()?;
        let Some(p) = self.pending(id) else {
            return Err(self.gone(id)?);
        };
        let mut g = lock(&p);
        let Some(Pending::Log {
            class,
            zone,
            zone_b,
            zones,
        }) = g.as_ref()
        else {
            return Err(ObjectError::WrongType {
                id,
                expected: ObjType::Mlog,
            }
            .into());
        };
        let obj = Obj {
            zone: *zone,
            a: *zones,
            b: *zone_b,
            class: *class,
            shift: 0,
        };
        self.inner
            .log(self.inner.shard(id)?, obj.record(id), true, |m| {
                m.insert(id.raw(), obj);
            })?;
        *g = None;
        drop(g);
        self.inner.pending.remove(id.raw());
        self.props(id)
    }

    /// Open a user mlog (committed or not). One shared handle per mlog.
    pub(crate) fn mlog_open(&self, id: ObjectId) -> Result<Arc<Mlog>> {
        Self::expect_type(id, ObjType::Mlog)?;
        let mut open = lock(&self.inner.open_logs);
        if let Some(m) = open.get(&id.raw()) {
            return Ok(Arc::clone(m));
        }
        let (class, zone, zones) = self.log_place(id)?;
        let c = self.inner.class(class)?;
        let m = Arc::new(Mlog::open(
            Arc::clone(&c.dev),
            c.extent(zone, zones),
            id.raw(),
        )?);
        open.insert(id.raw(), Arc::clone(&m));
        Ok(m)
    }

    /// Open a user MDC (committed or not). One shared handle per MDC.
    pub(crate) fn mdc_open(&self, id: ObjectId) -> Result<Arc<Mdc>> {
        Self::expect_type(id, ObjType::Mdc)?;
        let mut open = lock(&self.inner.open_mdcs);
        if let Some(m) = open.get(&id.raw()) {
            return Ok(Arc::clone(m));
        }
        let (class, zone, zones) = self.log_place(id)?;
        let zone_b = match self.committed(id)? {
            Some(o) => o.b,
            None => match self.pending(id).as_ref().map(|p| {
                lock(p).as_ref().map(|x| match x {
                    Pending::Log { zone_b, .. } => *zone_b,
                    Pending::Mblock { .. } => 0,
                })
            }) {
                Some(Some(z)) => z,
                _ => return Err(ObjectError::NotFound(id).into()),
            },
        };
        let c = self.inner.class(class)?;
        let m = Arc::new(Mdc::open_with(
            Arc::clone(&c.dev),
            c.extent(zone, zones),
            c.extent(zone_b, zones),
            id.raw(),
            self.inner.read_only,
        )?);
        // A version-3 pool's user MDCs become mirrored at their next compaction.
        if self.inner.features.mirrored_metadata() {
            m.set_mirror(true);
        }
        open.insert(id.raw(), Arc::clone(&m));
        Ok(m)
    }

    pub(super) fn log_place(&self, id: ObjectId) -> Result<(MediaClass, u32, u32)> {
        if let Some(o) = self.committed(id)? {
            return Ok((o.class(), o.zone, o.a));
        }
        let Some(p) = self.pending(id) else {
            return Err(ObjectError::NotFound(id).into());
        };
        let g = lock(&p);
        match g.as_ref() {
            Some(Pending::Log {
                class, zone, zones, ..
            }) => Ok((*class, *zone, *zones)),
            _ => Err(ObjectError::NotFound(id).into()),
        }
    }

    /// The user root MDC's ID.
    pub(crate) fn root(&self) -> MdcId {
        self.inner.root
    }
}
