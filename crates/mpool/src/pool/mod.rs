//! Pools: the [`Pool`] handle and its object operations, which delegate to
//! the catalog. Opening lives in `assemble`, creating and adding devices in
//! `create`, options in `options`, properties in `properties`; the verbs on
//! inactive pools (destroy, activate, rename) live in [`crate::admin`].

mod assemble;
mod create;
mod live;
mod options;
mod properties;

pub use crate::catalog::{AlignedRead, MblockRead, MblockReader, ObjectProps};
pub use live::{CheckRecord, LiveFigures, ObjectCounts};
pub use options::{CreateOptions, DeviceSpec, OpenOptions, DEFAULT_ZONE_SIZE};
pub use properties::{
    canonical_property, parse_mode, ClassUsage, DamagedMdcInfo, DeviceProps, PoolProps, PROPERTIES,
    PROPERTY_ALIASES, SETTABLE,
};

use crate::admin::rundir;
use crate::catalog::Catalog;
use crate::dev::DeviceRef;
use crate::error::{Error, Result};
use crate::format::superblock::{MediaClass, Superblock};
use crate::io::AlignedBuf;
use crate::mdc::{Mdc, MdcError, WrittenRecord};
use crate::mlog::Mlog;
use crate::objid::{MblockId, MdcId, MlogId, ObjType, ObjectId};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// One member device of an open pool.
#[derive(Debug)]
struct MemberDev {
    /// Path, or the device's own name when opened without one (for messages).
    name: String,
    path: Option<PathBuf>,
    dev: DeviceRef,
    class: MediaClass,
    dev_uuid: Uuid,
    zone_size: u64,
    damaged: Vec<(usize, String)>,
}

#[derive(Debug)]
struct PoolInner {
    pmd: Option<Catalog>,
    name: String,
    uuid: Uuid,
    read_only: bool,
    sb: Mutex<Superblock>,
    members: Mutex<Vec<MemberDev>>,
    /// Repairs made since the pool was opened (superblock copies rewritten).
    repairs: Mutex<Vec<crate::check::CheckRepair>>,
    /// The thread publishing live figures (read-write pools opened by name).
    live: Mutex<Option<live::Publisher>>,
    /// Checksum mismatches are recorded in the run directory (a pool
    /// opened by path).
    persist: bool,
    /// Where this pool's record of checksum mismatches lives (the run
    /// directory, resolved once: a delete only looks whether it exists).
    damage_file: std::sync::OnceLock<Option<std::path::PathBuf>>,
    /// Whether that record existed when last looked at (set at once when
    /// this process records a mismatch), and when that was (ns since
    /// `opened`, 0: never): deletes look again at most every
    /// `DAMAGE_RECHECK`, not each time (a `stat` of a missing file costs
    /// more than the rest of a delete on memory-speed media). A look and
    /// this process's marks take the lock, so that a look which began
    /// before a record cannot clear the mark the record set.
    damage_exists: Arc<(Mutex<()>, std::sync::atomic::AtomicBool)>,
    damage_checked_ns: std::sync::atomic::AtomicU64,
    opened: std::time::Instant,
}

/// How long a delete trusts the last look at the pool's record of checksum
/// mismatches. A record another process adds meanwhile for an mblock that
/// this one deletes stays behind, naming an ID that is never reused.
const DAMAGE_RECHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// An open pool. Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

/// Seconds since the epoch (0 if the clock is before it).
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Lock, even if a panicking holder poisoned the lock.
use crate::lock::lock;

impl Pool {
    fn from_parts(
        sb: Superblock,
        members: Vec<MemberDev>,
        read_only: bool,
        pmd: Option<Catalog>,
    ) -> Pool {
        // A pool opened by path (the pools of the run directory): every
        // checksum mismatch goes to the run directory, where the pool's
        // health, in this process or any other, finds it. A pool on
        // devices the caller opened (`open_on`) keeps them in memory.
        let persist = members.iter().any(|m| m.path.is_some());
        let damage_exists = Arc::new((Mutex::new(()), std::sync::atomic::AtomicBool::new(false)));
        if let (Some(pmd), true) = (&pmd, persist) {
            let uuid = sb.pool_uuid.to_string();
            let exists = Arc::clone(&damage_exists);
            pmd.set_damage_sink(Box::new(move |d| {
                if let Err(e) = rundir::record_damage(&uuid, d) {
                    tracing::warn!("recording a checksum mismatch: {e}");
                }
                // After the record: a look that missed the file is ordered
                // before this mark by the lock.
                let _g = lock(&exists.0);
                exists.1.store(true, std::sync::atomic::Ordering::Release);
            }));
        }
        Pool {
            inner: Arc::new(PoolInner {
                pmd,
                name: sb.name.clone(),
                uuid: sb.pool_uuid,
                read_only,
                sb: Mutex::new(sb),
                members: Mutex::new(members),
                repairs: Mutex::new(Vec::new()),
                live: Mutex::new(None),
                persist,
                damage_file: std::sync::OnceLock::new(),
                damage_exists,
                damage_checked_ns: std::sync::atomic::AtomicU64::new(0),
                opened: std::time::Instant::now(),
            }),
        }
    }

    /// Pool name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Pool UUID.
    pub fn uuid(&self) -> Uuid {
        self.inner.uuid
    }

    /// A copy of the current pool superblock (as the capacity device holds
    /// it). With the `internals` feature only: the on-media codec is not
    /// part of the public API.
    #[cfg(feature = "internals")]
    pub fn superblock(&self) -> Superblock {
        self.sb()
    }

    pub(crate) fn sb(&self) -> Superblock {
        lock(&self.inner.sb).clone()
    }

    /// The device of a media class. With the `internals` feature only: a
    /// library user never writes to a member device behind the pool's back.
    #[cfg(feature = "internals")]
    pub fn device(&self, class: MediaClass) -> Result<DeviceRef> {
        lock(&self.inner.members)
            .iter()
            .find(|m| m.class == class)
            .map(|m| Arc::clone(&m.dev))
            .ok_or(crate::error::PoolError::NoSuchClass(class).into())
    }

    /// Member devices, capacity first, with their paths when opened by path.
    pub(crate) fn members(&self) -> Vec<(Option<PathBuf>, DeviceRef)> {
        lock(&self.inner.members)
            .iter()
            .map(|m| (m.path.clone(), Arc::clone(&m.dev)))
            .collect()
    }

    /// Media classes present.
    pub fn classes(&self) -> Vec<MediaClass> {
        lock(&self.inner.members).iter().map(|m| m.class).collect()
    }

    /// Member device paths.
    pub fn device_paths(&self) -> Vec<PathBuf> {
        lock(&self.inner.members)
            .iter()
            .filter_map(|m| m.path.clone())
            .collect()
    }

    fn pmd(&self) -> Result<&Catalog> {
        self.inner.pmd.as_ref().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "pool '{}' was opened for inspection only",
                self.inner.name
            ))
        })
    }

    /// Allocate an mblock in `class`. It holds up to one zone (the class'
    /// mblock size) and vanishes on a crash until committed.
    pub fn mblock_alloc(&self, class: MediaClass) -> Result<MblockId> {
        self.pmd()?.mblock_alloc(class).map(MblockId::new_unchecked)
    }

    /// Allocate an mblock in `class` whose commit stores a checksum per
    /// `block` bytes of content (a power of two, 4 KiB to 64 KiB), instead
    /// of the pool's current size ([`Pool::set_csum_block`]). Format
    /// version 3 only ([`Error::InvalidArgument`] otherwise).
    pub fn mblock_alloc_csum(&self, class: MediaClass, block: u32) -> Result<MblockId> {
        self.pmd()?
            .mblock_alloc_csum(class, block)
            .map(MblockId::new_unchecked)
    }

    /// The checksum block size of mblocks allocated from now on by
    /// [`Pool::mblock_alloc`] in this handle (and its clones): a power of
    /// two, 4 KiB to 64 KiB; the default is 4 KiB
    /// ([`crate::DEFAULT_CSUM_SHIFT`]). Each mblock's record keeps its own
    /// size, so pools mix them freely.
    pub fn set_csum_block(&self, bytes: u32) -> Result<()> {
        self.pmd()?.set_csum_block(bytes)
    }

    /// The checksum block size [`Pool::mblock_alloc`] gives new mblocks;
    /// `None` in a pool of format version 1 or 2 (no block checksums).
    pub fn csum_block(&self) -> Result<Option<u32>> {
        Ok(self.pmd()?.csum_block())
    }

    /// Bound the memory of cached checksum tables (one per mblock read
    /// recently, about 1/1024 of its content in 4 KiB blocks) to `bytes`;
    /// the least recently used go first. The default is
    /// [`crate::DEFAULT_CSUM_CACHE_BYTES`]. A table not cached is read
    /// again (format version 3) or, for a legacy mblock, derived again by
    /// reading the whole mblock.
    pub fn set_csum_cache_bytes(&self, bytes: u64) -> Result<()> {
        self.pmd()?.set_csum_cache_bytes(bytes);
        Ok(())
    }

    /// Bytes of checksum tables cached now.
    pub fn csum_cache_bytes(&self) -> Result<u64> {
        Ok(self.pmd()?.csum_cache_bytes())
    }

    /// The most content a new mblock of `class` holds: its zone size, less
    /// the room the checksum table of a full mblock takes (format version
    /// 3, at the current checksum block size). [`ObjectProps::capacity`]
    /// tells it for each mblock.
    pub fn mblock_capacity(&self, class: MediaClass) -> Result<u64> {
        match self.pmd()?.csum_block() {
            Some(b) => self.mblock_capacity_with(class, b),
            None => self.zone_of(class),
        }
    }

    /// What an mblock of `class` with checksum blocks of `block` bytes
    /// ([`Pool::mblock_alloc_csum`]) holds at most.
    pub fn mblock_capacity_with(&self, class: MediaClass, block: u32) -> Result<u64> {
        let shift = crate::catalog::csum_shift_of(block)?;
        let zone = self.zone_of(class)?;
        let sector = lock(&self.inner.members)
            .iter()
            .find(|m| m.class == class)
            .map_or(4096, |m| u64::from(m.dev.sector()));
        Ok(crate::format::record::CsumLayout::capacity(
            zone, sector, shift,
        ))
    }

    fn zone_of(&self, class: MediaClass) -> Result<u64> {
        lock(&self.inner.members)
            .iter()
            .find(|m| m.class == class)
            .map(|m| m.zone_size)
            .ok_or_else(|| crate::error::PoolError::NoSuchClass(class).into())
    }

    /// Every checksum mismatch recorded for this pool: found by this
    /// process, or recorded in the run directory by any process since
    /// (`check` replaces the record with what it finds). What the health
    /// counts.
    pub fn checksum_damage(&self) -> Vec<crate::Damage> {
        let mut all = if self.inner.persist {
            rundir::read_damage(&self.inner.uuid.to_string())
        } else {
            Vec::new()
        };
        if let Some(pmd) = &self.inner.pmd {
            for d in pmd.damage_found() {
                if !all.contains(&d) {
                    all.push(d);
                }
            }
        }
        all
    }

    /// Append `data` to an uncommitted mblock (any length; large writes go
    /// to the device as many requests in flight).
    pub fn mblock_write(&self, id: MblockId, data: &[u8]) -> Result<()> {
        let r = self.pmd()?.mblock_write(id.object_id(), data);
        self.count(r, rundir::ErrorKind::Write)
    }

    /// Append all of `buf` to an uncommitted mblock, as
    /// [`Pool::mblock_write`], and hand the buffer back for reuse. When
    /// the mblock's content so far is a whole number of sectors and the
    /// buffer is aligned at least to the pool's sector size, the device
    /// writes straight from the buffer, in one request (no copy); otherwise
    /// its bytes are copied as by `mblock_write`. Its length is its
    /// [`AlignedBuf::len`], a multiple of its alignment; for a shorter last
    /// piece use `mblock_write`. On an error the buffer is dropped.
    pub fn mblock_write_aligned(&self, id: MblockId, buf: AlignedBuf) -> Result<AlignedBuf> {
        let r = self.pmd()?.mblock_write_buf(id.object_id(), buf);
        self.count(r, rundir::ErrorKind::Write)
    }

    /// Commit: the data (and, format version 3, the table of its block
    /// checksums after it) is flushed, then the commit record (with the
    /// table's CRC, or the content CRC before version 3) is made durable.
    /// Returns when the mblock is durable and immutable.
    pub fn mblock_commit(&self, id: MblockId) -> Result<ObjectProps> {
        let r = self.pmd()?.mblock_commit(id.object_id());
        self.count(r, rundir::ErrorKind::Write)
    }

    /// As [`Pool::mblock_commit`], running `side` once before the commit
    /// record is written: while the mblock's last content write is in
    /// flight, where the device can overlap them (a file or block device
    /// with io_uring). A caller writes its own record there, to the same
    /// device, so that the commit's flush makes that record durable too,
    /// one round trip sooner than writing it first. `side` runs exactly
    /// once, also when the commit fails (before or after it).
    pub fn mblock_commit_beside(
        &self,
        id: MblockId,
        side: &mut dyn FnMut(),
    ) -> Result<ObjectProps> {
        let pmd = match self.pmd() {
            Ok(p) => p,
            Err(e) => {
                side();
                return Err(e);
            }
        };
        let r = pmd.mblock_commit_beside(id.object_id(), side);
        self.count(r, rundir::ErrorKind::Write)
    }

    /// As [`Pool::mblock_commit`], appending the record `rec` to `mdc`
    /// too, made durable by the commit's own flush: `mdc` must be on the
    /// capacity device, where the pool's metadata is, and so must the
    /// mblock (else the commit flushes its content first and the record
    /// is written beside the content write). Where the device takes
    /// batches, the mblock's last write, its commit record and `rec` go
    /// to the device together, then one flush: one round trip for the
    /// three writes. Commits made this way from several threads at once
    /// share one batch and one flush (group commit). After a crash before that flush any of the three may
    /// be on the media without the others; a commit without its content
    /// is dropped when the pool opens.
    ///
    /// The second result says what became of `rec`: `Ok(Some(w))` it was
    /// written (durable when the commit succeeded: the commit's flush is
    /// reported to `mdc`; when the commit failed, it may be on the media),
    /// `Ok(None)` it was not appended (the MDC was busy: append it the
    /// usual way), or the append's error.
    pub fn mblock_commit_with(
        &self,
        id: MblockId,
        mdc: &Arc<Mdc>,
        rec: &[u8],
    ) -> (
        Result<ObjectProps>,
        std::result::Result<Option<WrittenRecord>, MdcError>,
    ) {
        let pmd = match self.pmd() {
            Ok(p) => p,
            Err(e) => return (Err(e), Ok(None)),
        };
        let (r, written) = pmd.mblock_commit_with(id.object_id(), mdc, rec);
        (self.count(r, rundir::ErrorKind::Write), written)
    }

    /// Allocate `n` mblocks in `class` reserved for `owner` (any tag that
    /// tells the pool's clients apart): their reserve records are durable
    /// on return. A reserved mblock is written and aborted as any other,
    /// and may be committed by [`Pool::mblock_commit_sealed`]: one write
    /// and one flush, no metadata record. A crash keeps a reserved
    /// mblock's zone until its owner asks what it holds
    /// ([`Pool::mblock_reserved`], [`Pool::mblock_recover`]). Format
    /// version 3 only. See docs/format.md, "Sealed commits".
    pub fn mblock_reserve(&self, class: MediaClass, owner: u64, n: usize) -> Result<Vec<MblockId>> {
        let ids = self.pmd()?.mblock_reserve(class, owner, n);
        let ids = self.count(ids, rundir::ErrorKind::Write)?;
        Ok(ids.into_iter().map(MblockId::new_unchecked).collect())
    }

    /// Commit reserved mblock `id` by a *seal* carrying `client` (at most
    /// [`crate::SEAL_CLIENT_MAX`] bytes) and one flush, with no metadata
    /// record: durable and readable on return. Content of at most
    /// [`crate::MBLOCK_HOLD_MAX`] bytes (held in memory until the commit)
    /// goes in one write with its checksum table and the seal after them;
    /// longer content's last write and the seal, in the zone's last
    /// sectors, go in one batch. After a crash, until the mblock is
    /// adopted ([`Pool::mblock_adopt`]), its owner gets `client` back from
    /// [`Pool::mblock_recover`]; a commit whose writes did not land whole
    /// is not found (the mblock is then deleted). Refused
    /// (`InvalidArgument`, nothing written) when content, table and seal
    /// do not fit the zone (content within about 20 KiB of the mblock's
    /// capacity).
    pub fn mblock_commit_sealed(&self, id: MblockId, client: &[u8]) -> Result<ObjectProps> {
        let r = self.pmd()?.mblock_commit_sealed(id.object_id(), client);
        self.count(r, rundir::ErrorKind::Write)
    }

    /// Give sealed mblocks their commit records (appended without a flush
    /// of their own; durable with their MDCs' next flush, within about
    /// 200 ms when idle): after that their seals no longer count. Call
    /// once what the seals carried is durable elsewhere. mblocks not
    /// sealed (deleted, adopted already) are skipped.
    pub fn mblock_adopt(&self, ids: &[MblockId]) -> Result<()> {
        let ids: Vec<ObjectId> = ids.iter().map(|i| i.object_id()).collect();
        let r = self.pmd()?.mblock_adopt(&ids);
        self.count(r, rundir::ErrorKind::Write)
    }

    /// The mblocks reserved for `owner` that the open found (a crash came
    /// before they were committed by a seal and adopted, or aborted) and
    /// nobody asked about yet: ask [`Pool::mblock_recover`].
    pub fn mblock_reserved(&self, owner: u64) -> Vec<MblockId> {
        self.pmd().map_or_else(
            |_| Vec::new(),
            |p| {
                p.mblock_reserved(owner)
                    .into_iter()
                    .map(MblockId::new_unchecked)
                    .collect()
            },
        )
    }

    /// What a reserved mblock of [`Pool::mblock_reserved`] holds:
    /// `Some(client)` when a sealed commit of it was whole on the media
    /// (it is committed and readable now, and sealed until adopted);
    /// `None` when not (it is deleted, its zone free once that is durable;
    /// a read-only pool leaves it).
    pub fn mblock_recover(&self, id: MblockId) -> Result<Option<Vec<u8>>> {
        let r = self.pmd()?.mblock_recover(id.object_id());
        self.count(r, rundir::ErrorKind::Read)
    }

    /// Commits of [`Pool::mblock_commit_with`] waiting for the next batch
    /// (tests of the group commit). With the `internals` feature only.
    #[cfg(feature = "internals")]
    pub fn commits_waiting(&self) -> usize {
        self.pmd().map_or(0, Catalog::commits_waiting)
    }

    /// Discard an uncommitted mblock.
    pub fn mblock_abort(&self, id: MblockId) -> Result<()> {
        self.pmd()?.abort(id.object_id())
    }

    /// Delete a committed mblock: durable when this returns (a crash can
    /// never bring it back), and only then is its zone free for reuse.
    /// Checksum mismatches recorded for it are forgotten.
    pub fn mblock_delete(&self, id: MblockId) -> Result<()> {
        self.pmd()?.delete(id.object_id(), true)?;
        self.forget_damage(id.object_id());
        Ok(())
    }

    /// Drop a deleted mblock's ranges from the damage record.
    fn forget_damage(&self, id: ObjectId) {
        // The UUID as text only where there is a record to read (not on
        // every delete: formatting it cost more than the check).
        if self.inner.persist && self.damage_recorded() {
            let uuid = self.inner.uuid.to_string();
            if rundir::read_damage(&uuid).iter().any(|d| d.id == id) {
                if let Err(e) = rundir::rewrite_damage(&uuid, |d| d.id != id, &[]) {
                    tracing::warn!("forgetting the checksum mismatches of {id}: {e}");
                }
            }
        }
        if let Some(pmd) = &self.inner.pmd {
            pmd.forget_damage(id);
        }
    }

    /// Whether the pool's record of checksum mismatches exists. Most pools
    /// have none: one `stat` per `DAMAGE_RECHECK`, not the run directory's
    /// checks and an open on every delete.
    fn damage_recorded(&self) -> bool {
        use std::sync::atomic::Ordering;
        let i = &self.inner;
        let now = u64::try_from(i.opened.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let last = i.damage_checked_ns.load(Ordering::Acquire);
        let fresh = last != 0 && now.saturating_sub(last) < DAMAGE_RECHECK.as_nanos() as u64;
        let (lk, mark) = &*i.damage_exists;
        if fresh {
            return mark.load(Ordering::Acquire);
        }
        let _g = lock(lk);
        let exists = i
            .damage_file
            .get_or_init(|| rundir::damage_path(&self.inner.uuid.to_string()).ok())
            .as_deref()
            .is_some_and(|p| std::fs::symlink_metadata(p).is_ok());
        mark.store(exists, Ordering::Release);
        i.damage_checked_ns.store(now, Ordering::Release);
        exists
    }

    /// Delete a committed mblock without waiting for the delete to be
    /// durable: it is gone for readers at once, and its record rides on the
    /// next flush of its metadata log (a later commit or durable delete in
    /// the same log, [`Pool::sync`], a compaction, the background thread
    /// within about 100 ms, or closing the pool). Until then a crash brings
    /// it back whole, never partly; its zone is not reused before the
    /// delete is durable. For engines that delete many objects whose loss
    /// they record elsewhere (an LSM-tree's compaction inputs): one flush
    /// serves many deletes. [`Pool::sync`] makes every deferred delete
    /// durable.
    pub fn mblock_delete_deferred(&self, id: MblockId) -> Result<()> {
        self.pmd()?.delete(id.object_id(), false)?;
        self.forget_damage(id.object_id());
        Ok(())
    }

    /// Make every deferred delete durable ([`Pool::mblock_delete_deferred`]);
    /// their zones are then free.
    pub fn sync(&self) -> Result<()> {
        self.pmd()?.sync()
    }

    /// Read `buf.len()` bytes at `offset` of a committed mblock.
    ///
    /// Every read path verifies the bytes against the mblock's checksums
    /// before it returns them: a mismatch (after a second read) is
    /// [`crate::ObjectError::Checksum`] naming the damaged bytes, is counted
    /// in the pool's health, and no data comes back. The first read of an
    /// mblock loads its checksum table (a legacy mblock, of a format-1 or
    /// -2 pool, is read whole once to check its whole-content CRC).
    ///
    /// The pool has three ways to read: this one, for one read into a byte
    /// slice; [`Pool::mblock_read_batch`], for many reads into byte slices
    /// with a bounded number in flight; and [`Pool::mblock_reader`], for
    /// reads into the caller's aligned buffers (zero copy) kept in flight
    /// across calls.
    pub fn mblock_read(&self, id: MblockId, offset: u64, buf: &mut [u8]) -> Result<()> {
        let r = self.pmd()?.mblock_read(id.object_id(), offset, buf);
        self.count(r, rundir::ErrorKind::Read)
    }

    /// Count an error a data path met in the run directory (pools opened
    /// by path; see [`rundir::error_counts`]): a checksum mismatch, or a
    /// device error counted as `kind`.
    fn count<T>(&self, r: Result<T>, kind: rundir::ErrorKind) -> Result<T> {
        if let Err(e) = &r {
            let k = match e {
                Error::Object(crate::error::ObjectError::Checksum { .. }) => {
                    Some(rundir::ErrorKind::Checksum)
                }
                Error::Storage(crate::error::StorageError::Dev(_)) => Some(kind),
                _ => None,
            };
            if let (Some(k), true) = (k, self.inner.persist) {
                rundir::count_error(&self.inner.uuid.to_string(), k);
            }
        }
        r
    }

    /// Several reads of committed mblocks into byte slices, with at most
    /// `depth` device requests in flight at a time, refilled as each
    /// completes: a long list of reads becomes a queue of that depth (what
    /// fio calls `--iodepth`); `reads.len()` puts all of them in flight at
    /// once (a multi-get keeps the device's queue full from one thread).
    /// A `depth` of 0 is refused with [`Error::InvalidArgument`]. Every
    /// read is checked before any I/O is issued. The bytes go through
    /// aligned buffers of the pool's and are copied; for reads into the
    /// caller's own aligned buffers (no copy) use [`Pool::mblock_reader`].
    pub fn mblock_read_batch(&self, reads: &mut [MblockRead<'_>], depth: usize) -> Result<()> {
        if depth == 0 {
            return Err(Error::InvalidArgument(
                "a batch of mblock reads needs a depth of at least 1".into(),
            ));
        }
        let r = self.pmd()?.mblock_read_batch(reads, depth);
        self.count(r, rundir::ErrorKind::Read)
    }

    /// A reader that keeps up to `depth` (1 to 256) reads of committed
    /// mblocks in flight across calls, into the caller's aligned buffers
    /// (zero copy where the offset and buffer are aligned): push reads as
    /// they are known, take completed ones as they come, and the device's
    /// queue never drains between batches. See [`MblockReader`].
    pub fn mblock_reader(&self, depth: usize) -> Result<MblockReader<'_>> {
        Ok(MblockReader::new(self.pmd()?, depth))
    }

    /// Properties of any object, committed or not (`find`): takes an
    /// [`ObjectId`] or any typed ID.
    pub fn object_props(&self, id: impl Into<ObjectId>) -> Result<ObjectProps> {
        self.pmd()?.props(id.into())
    }

    /// Every committed object, sorted by ID.
    pub fn objects(&self) -> Result<Vec<ObjectProps>> {
        self.pmd()?.objects()
    }

    /// Number of committed objects.
    pub fn object_count(&self) -> Result<u64> {
        Ok(self.pmd()?.count())
    }

    /// Verify a committed mblock's whole content against its checksums
    /// (every block of a format-3 mblock; the whole-content CRC recorded
    /// at commit of a legacy one): the first damaged range is
    /// [`crate::ObjectError::Checksum`].
    pub fn mblock_verify(&self, id: MblockId) -> Result<()> {
        self.pmd()?.verify(id.object_id())
    }

    /// Every damaged range of a committed mblock, reading all of it (a
    /// damaged checksum table included; see [`crate::Damage`]). Each is
    /// recorded for the pool's health.
    pub fn mblock_scrub(&self, id: MblockId) -> Result<Vec<crate::Damage>> {
        self.pmd()?.scrub_id(id.object_id())
    }

    /// Replace the pool's record of checksum mismatches with `found`: what
    /// a scrub of every mblock ([`Pool::check`]) found.
    pub(crate) fn reset_damage(&self, found: &[crate::Damage]) {
        if let Some(pmd) = &self.inner.pmd {
            pmd.reset_damage(found);
        }
        if !self.inner.persist {
            return;
        }
        if let Err(e) = rundir::rewrite_damage(&self.inner.uuid.to_string(), |_| false, found) {
            tracing::warn!("recording the checksum mismatches check found: {e}");
        }
    }

    /// Allocate a user mlog of at least `capacity` bytes (whole zones) in `class`.
    pub fn mlog_alloc(&self, class: MediaClass, capacity: u64) -> Result<MlogId> {
        self.pmd()?
            .log_alloc(ObjType::Mlog, class, capacity)
            .map(MlogId::new_unchecked)
    }

    /// Allocate a user mlog that writes every record twice (see "Mirrored
    /// logs" in `docs/format.md`): a record whose flush completed survives
    /// rot in one copy, for twice the log space and no extra flush. Needs a
    /// version-3 pool; records are at most 1 MiB.
    pub fn mlog_alloc_mirrored(&self, class: MediaClass, capacity: u64) -> Result<MlogId> {
        self.pmd()?
            .mlog_alloc_mirrored(class, capacity)
            .map(MlogId::new_unchecked)
    }

    /// Commit a user mlog: it survives crashes from now on.
    pub fn mlog_commit(&self, id: MlogId) -> Result<ObjectProps> {
        self.pmd()?.log_commit(id.object_id())
    }

    /// Discard an uncommitted user mlog.
    pub fn mlog_abort(&self, id: MlogId) -> Result<()> {
        self.pmd()?.abort(id.object_id())
    }

    /// Delete a committed user mlog (refused while a handle is open).
    pub fn mlog_delete(&self, id: MlogId) -> Result<()> {
        self.pmd()?.delete(id.object_id(), true)
    }

    /// Open a user mlog. Every caller shares one handle per mlog.
    pub fn mlog_open(&self, id: MlogId) -> Result<Arc<Mlog>> {
        self.pmd()?.mlog_open(id.object_id())
    }

    /// Allocate a user MDC whose two logs hold at least `capacity` bytes each.
    pub fn mdc_alloc(&self, class: MediaClass, capacity: u64) -> Result<MdcId> {
        self.pmd()?
            .log_alloc(ObjType::Mdc, class, capacity)
            .map(MdcId::new_unchecked)
    }

    /// Commit a user MDC.
    pub fn mdc_commit(&self, id: MdcId) -> Result<ObjectProps> {
        self.pmd()?.log_commit(id.object_id())
    }

    /// Discard an uncommitted user MDC.
    pub fn mdc_abort(&self, id: MdcId) -> Result<()> {
        self.pmd()?.abort(id.object_id())
    }

    /// Delete a committed user MDC (refused while a handle is open).
    pub fn mdc_delete(&self, id: MdcId) -> Result<()> {
        self.pmd()?.delete(id.object_id(), true)
    }

    /// Open a user MDC. Every caller shares one handle per MDC.
    pub fn mdc_open(&self, id: MdcId) -> Result<Arc<Mdc>> {
        self.pmd()?.mdc_open(id.object_id())
    }

    /// The user root MDC: where a client keeps its own metadata, found by
    /// this fixed call (created with the pool).
    pub fn root_mdc(&self) -> Result<Arc<Mdc>> {
        let p = self.pmd()?;
        p.mdc_open(p.root().object_id())
    }

    /// The root MDC's object ID.
    pub fn root_mdc_id(&self) -> Result<MdcId> {
        Ok(self.pmd()?.root())
    }

    /// Compact every pool-metadata MDC now (normally done in the background).
    pub fn compact_metadata(&self) -> Result<()> {
        self.pmd()?.compact_all()
    }

    /// Whether the pool was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// Damaged header copies of the pool-metadata logs, as (log, slot,
    /// what is wrong); a read-write pool rewrites each from its good copy
    /// first and returns what it rewrote (`check` lists them as repairs).
    pub(crate) fn metadata_header_damage(&self) -> Result<Vec<(String, u8, String)>> {
        self.pmd()?.metadata_header_damage(!self.inner.read_only)
    }

    /// Make every pool-metadata log mirrored (each record written twice,
    /// so that rot in one copy of a durable record never loses it: see
    /// "Mirrored logs" in `docs/format.md`): MDC0 and each of MDC1..N whose
    /// active log is not mirrored yet is compacted, crash-safely. Needs a
    /// version-3 pool (`mpool upgrade` writes the version, reopens, then
    /// calls this); user MDCs become mirrored at their next compaction.
    /// Returns how many MDCs were compacted (0 when all were mirrored).
    pub fn mirror_metadata(&self) -> Result<u32> {
        self.pmd()?.mirror_metadata()
    }

    /// The device bytes (on the capacity device) of the last flush set of
    /// each pool-metadata MDC's active log, named "MDC0", "MDC1"... For
    /// tests that damage them. With the `internals` feature only.
    #[cfg(feature = "internals")]
    pub fn metadata_last_flush_sets(&self) -> Result<Vec<(String, std::ops::Range<u64>)>> {
        self.pmd()?.metadata_last_flush_sets()
    }

    /// Whether every pool-metadata log (MDC0, MDC1..N) is mirrored.
    pub fn metadata_mirrored(&self) -> Result<bool> {
        Ok(self.pmd()?.metadata_mirrored())
    }

    /// State of each pool-metadata MDC.
    pub fn metadata_stats(&self) -> Result<Vec<crate::catalog::MdcStats>> {
        Ok(self.pmd()?.mdc_stats())
    }

    /// Background compactions done since open.
    pub fn compactions(&self) -> Result<u64> {
        Ok(self.pmd()?.compactions())
    }

    /// Close the pool and report what failed. When this is the last clone
    /// of the handle: the background thread is stopped, every deferred
    /// delete is made durable (and the metadata logs are left with nothing
    /// for the next open to verify), and the pool is closed, even when a
    /// step fails. The first error is returned: a failed flush of the
    /// metadata, or, for a background thread that had panicked (a bug in
    /// mpool), [`Error::Internal`] in release builds and a panic in debug
    /// builds. While other clones are alive, the deferred deletes are made
    /// durable ([`Pool::sync`]) and the pool stays open until the last
    /// clone is closed or dropped. A read-only pool has nothing to sync.
    ///
    /// Dropping the last clone does the same, best effort: errors are
    /// logged, not returned.
    pub fn close(self) -> Result<()> {
        // With other clones alive, sync first (they may go on using the
        // pool); then exactly one of any clones closing at the same time
        // gets the inner state (`Arc::into_inner`) and closes the pool. The
        // only handle needs no sync of its own: closing the catalog syncs.
        let synced = match self.inner.pmd.as_ref() {
            Some(pmd) if !self.inner.read_only && Arc::strong_count(&self.inner) > 1 => pmd.sync(),
            _ => Ok(()),
        };
        // Before the handle goes: the clone taken below would make the
        // drop's own check see two users.
        self.stop_publisher_if_last();
        let inner = Arc::clone(&self.inner);
        drop(self);
        let Some(mut inner) = Arc::into_inner(inner) else {
            return synced;
        };
        let closed = inner.pmd.take().map_or(Ok(()), Catalog::close);
        // The run directory's holder entry is cleared once the metadata is closed.
        drop(inner);
        synced.and(closed)
    }

    /// The last user handle (the publishing thread's reference aside)
    /// stops the publisher first, so that the publisher holds no
    /// reference when the pool is taken apart, and the pool is closed
    /// when the handle's close or drop returns (a reopen right after
    /// finds it free).
    fn stop_publisher_if_last(&self) {
        // A user handle and the publisher's make two.
        if Arc::strong_count(&self.inner) > 2 || live::on_publisher_thread() {
            return;
        }
        let live = lock(&self.inner.live);
        let publisher = live.as_ref().map_or(0, live::Publisher::holding);
        if Arc::strong_count(&self.inner).saturating_sub(publisher) <= 1 {
            if let Some(p) = live.as_ref() {
                p.stop();
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop_publisher_if_last();
    }
}

/// mcache maps (see [`crate::mcache`]).
impl Pool {
    /// Map the committed mblocks `ids` (of any media class) into memory
    /// with one call: one reserved address range, each object's bytes a
    /// slice of it, read from the devices and verified on first access.
    /// A map of no IDs is allowed. An ID that is not an mblock
    /// ([`crate::ObjectError::WrongType`]), not committed
    /// ([`crate::ObjectError::NotCommitted`]) or gone
    /// ([`crate::ObjectError::NotFound`]) fails the call, as does a map
    /// over the address-space budget ([`Error::InvalidArgument`]). The
    /// zones of the mapped mblocks stay allocated until the map drops,
    /// even when they are deleted meanwhile (the map still reads them).
    /// The map holds a clone of this handle: the pool stays open while a
    /// map lives ([`Pool::close`] of the other handles syncs and returns).
    pub fn mcache_map(
        &self,
        ids: &[MblockId],
        advice: crate::mcache::Advice,
    ) -> Result<crate::mcache::McacheMap> {
        let ids: Vec<ObjectId> = ids.iter().map(|id| id.object_id()).collect();
        let (targets, holds) = self.pmd()?.mcache_pin(&ids)?;
        crate::mcache::McacheMap::new(self.clone(), targets, holds, advice)
    }

    /// A verified read of a mapped mblock (the fault handler's), counted
    /// like any read.
    pub(crate) fn mcache_read(
        &self,
        t: &crate::catalog::MapTarget,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<()> {
        let r = self.pmd()?.mcache_read(t, offset, buf);
        self.count(r, rundir::ErrorKind::Read)
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // The metadata first (its drop seals the logs), then the holder
        // entry: the pool is not shown free while it is still closing.
        if let Some(p) = lock(&self.live).take() {
            p.stop();
        }
        drop(self.pmd.take());
        if !self.read_only {
            rundir::clear_holder(&self.uuid.to_string());
        }
    }
}
