//! Pools: the [`Pool`] handle and its object operations, which delegate to
//! the catalog. Opening lives in `assemble`, creating and adding devices in
//! `create`, options in `options`, properties in `properties`; the verbs on
//! inactive pools (destroy, activate, rename) live in [`crate::admin`].

mod assemble;
mod create;
mod options;
mod properties;

pub use crate::catalog::{AlignedRead, MblockRead, MblockReader, ObjectProps};
pub use options::{CreateOptions, DeviceSpec, OpenOptions, DEFAULT_ZONE_SIZE};
pub use properties::{parse_mode, ClassUsage, DeviceProps, PoolProps, PROPERTIES, SETTABLE};

use crate::admin::rundir;
use crate::catalog::Catalog;
use crate::dev::DeviceRef;
use crate::error::{Error, ObjectError, Result};
use crate::format::superblock::{MediaClass, Superblock};
use crate::io::AlignedBuf;
use crate::mdc::Mdc;
use crate::mlog::Mlog;
use crate::objid::{ObjType, ObjectId};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// One member device of an open pool.
#[derive(Debug)]
struct MemberDev {
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
}

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

fn check_type(id: ObjectId, ty: ObjType) -> Result<()> {
    if id.ty() == ty {
        Ok(())
    } else {
        Err(ObjectError::WrongType { id, expected: ty }.into())
    }
}

impl Pool {
    fn from_parts(
        sb: Superblock,
        members: Vec<MemberDev>,
        read_only: bool,
        pmd: Option<Catalog>,
    ) -> Pool {
        Pool {
            inner: Arc::new(PoolInner {
                pmd,
                name: sb.name.clone(),
                uuid: sb.pool_uuid,
                read_only,
                sb: Mutex::new(sb),
                members: Mutex::new(members),
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
    pub fn mblock_alloc(&self, class: MediaClass) -> Result<ObjectId> {
        self.pmd()?.mblock_alloc(class)
    }

    /// Append `data` to an uncommitted mblock (any length; large writes go
    /// to the device as many requests in flight).
    pub fn mblock_write(&self, id: ObjectId, data: &[u8]) -> Result<()> {
        self.pmd()?.mblock_write(id, data)
    }

    /// Append all of `buf` to an uncommitted mblock, as
    /// [`Pool::mblock_write`], and hand the buffer back for reuse. When
    /// the mblock's content so far is a whole number of sectors and the
    /// buffer is aligned at least to the pool's sector size, the device
    /// writes straight from the buffer, in one request (no copy); otherwise
    /// its bytes are copied as by `mblock_write`. Its length is its
    /// [`AlignedBuf::len`], a multiple of its alignment; for a shorter last
    /// piece use `mblock_write`. On an error the buffer is dropped.
    pub fn mblock_write_aligned(&self, id: ObjectId, buf: AlignedBuf) -> Result<AlignedBuf> {
        self.pmd()?.mblock_write_buf(id, buf)
    }

    /// Commit: the data is flushed, then the commit record (with the content
    /// CRC) is made durable. Returns when the mblock is durable and immutable.
    pub fn mblock_commit(&self, id: ObjectId) -> Result<ObjectProps> {
        self.pmd()?.mblock_commit(id)
    }

    /// Discard an uncommitted mblock.
    pub fn mblock_abort(&self, id: ObjectId) -> Result<()> {
        check_type(id, ObjType::Mblock)?;
        self.pmd()?.abort(id)
    }

    /// Delete a committed mblock: durable when this returns (a crash can
    /// never bring it back), and only then is its zone free for reuse.
    pub fn mblock_delete(&self, id: ObjectId) -> Result<()> {
        check_type(id, ObjType::Mblock)?;
        self.pmd()?.delete(id, true)
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
    pub fn mblock_delete_deferred(&self, id: ObjectId) -> Result<()> {
        check_type(id, ObjType::Mblock)?;
        self.pmd()?.delete(id, false)
    }

    /// Make every deferred delete durable ([`Pool::mblock_delete_deferred`]);
    /// their zones are then free.
    pub fn sync(&self) -> Result<()> {
        self.pmd()?.sync()
    }

    /// Read `buf.len()` bytes at `offset` of a committed mblock.
    pub fn mblock_read(&self, id: ObjectId, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.pmd()?.mblock_read(id, offset, buf)
    }

    /// Several reads of committed mblocks at once: with io_uring all of them
    /// are in flight together (a multi-get keeps the device's queue full from
    /// one thread). Every read is checked before any I/O is issued.
    pub fn mblock_read_batch(&self, reads: &mut [MblockRead<'_>]) -> Result<()> {
        self.pmd()?.mblock_read_batch(reads, usize::MAX)
    }

    /// As [`Pool::mblock_read_batch`], with at most `depth` device requests
    /// in flight at a time, refilled as each completes: a long list of reads
    /// becomes a queue of that depth (what fio calls `--iodepth`).
    pub fn mblock_read_queued(&self, reads: &mut [MblockRead<'_>], depth: usize) -> Result<()> {
        self.pmd()?.mblock_read_batch(reads, depth.max(1))
    }

    /// Reads of committed mblocks into owned aligned buffers, with at most
    /// `depth` device requests in flight: the zero-copy form of
    /// [`Pool::mblock_read_queued`] for a caller that keeps its own aligned
    /// buffers (a storage engine's block cache).
    ///
    /// A read whose offset is a multiple of the pool's sector size, into a
    /// buffer aligned at least that much, goes from the device straight into
    /// its buffer; any other is read through a bounce buffer and copied.
    /// A buffer may run past the end of the content up to the next multiple
    /// of its alignment (so a whole mblock reads into one buffer), and those
    /// bytes come back zero; past that, or past the mblock's zone, the read
    /// is refused with [`ObjectError::ReadOutOfRange`]. Every read is checked
    /// before any I/O is issued. The buffers come back in the order given;
    /// on an I/O error they are dropped with the batch.
    pub fn mblock_read_aligned(
        &self,
        reads: Vec<AlignedRead>,
        depth: usize,
    ) -> Result<Vec<AlignedRead>> {
        self.pmd()?.mblock_read_aligned(reads, depth.max(1))
    }

    /// A reader that keeps up to `depth` (1 to 256) reads of committed
    /// mblocks in flight across calls, into the caller's aligned buffers:
    /// push reads as they are known, take completed ones as they come, and
    /// the device's queue never drains between batches. See
    /// [`MblockReader`].
    pub fn mblock_reader(&self, depth: usize) -> Result<MblockReader<'_>> {
        Ok(MblockReader::new(self.pmd()?, depth))
    }

    /// Properties of any object, committed or not (`find`).
    pub fn object_props(&self, id: ObjectId) -> Result<ObjectProps> {
        self.pmd()?.props(id)
    }

    /// Every committed object, sorted by ID.
    pub fn objects(&self) -> Result<Vec<ObjectProps>> {
        self.pmd()?.objects()
    }

    /// Number of committed objects.
    pub fn object_count(&self) -> Result<u64> {
        Ok(self.pmd()?.count())
    }

    /// Verify a committed mblock's content against the CRC recorded at commit.
    pub fn mblock_verify(&self, id: ObjectId) -> Result<()> {
        self.pmd()?.verify(id)
    }

    /// Allocate a user mlog of at least `capacity` bytes (whole zones) in `class`.
    pub fn mlog_alloc(&self, class: MediaClass, capacity: u64) -> Result<ObjectId> {
        self.pmd()?.log_alloc(ObjType::Mlog, class, capacity)
    }

    /// Commit a user mlog: it survives crashes from now on.
    pub fn mlog_commit(&self, id: ObjectId) -> Result<ObjectProps> {
        check_type(id, ObjType::Mlog)?;
        self.pmd()?.log_commit(id)
    }

    /// Discard an uncommitted user mlog.
    pub fn mlog_abort(&self, id: ObjectId) -> Result<()> {
        check_type(id, ObjType::Mlog)?;
        self.pmd()?.abort(id)
    }

    /// Delete a committed user mlog (refused while a handle is open).
    pub fn mlog_delete(&self, id: ObjectId) -> Result<()> {
        check_type(id, ObjType::Mlog)?;
        self.pmd()?.delete(id, true)
    }

    /// Open a user mlog. Every caller shares one handle per mlog.
    pub fn mlog_open(&self, id: ObjectId) -> Result<Arc<Mlog>> {
        self.pmd()?.mlog_open(id)
    }

    /// Allocate a user MDC whose two logs hold at least `capacity` bytes each.
    pub fn mdc_alloc(&self, class: MediaClass, capacity: u64) -> Result<ObjectId> {
        self.pmd()?.log_alloc(ObjType::Mdc, class, capacity)
    }

    /// Commit a user MDC.
    pub fn mdc_commit(&self, id: ObjectId) -> Result<ObjectProps> {
        check_type(id, ObjType::Mdc)?;
        self.pmd()?.log_commit(id)
    }

    /// Discard an uncommitted user MDC.
    pub fn mdc_abort(&self, id: ObjectId) -> Result<()> {
        check_type(id, ObjType::Mdc)?;
        self.pmd()?.abort(id)
    }

    /// Delete a committed user MDC (refused while a handle is open).
    pub fn mdc_delete(&self, id: ObjectId) -> Result<()> {
        check_type(id, ObjType::Mdc)?;
        self.pmd()?.delete(id, true)
    }

    /// Open a user MDC. Every caller shares one handle per MDC.
    pub fn mdc_open(&self, id: ObjectId) -> Result<Arc<Mdc>> {
        self.pmd()?.mdc_open(id)
    }

    /// The user root MDC: where a client keeps its own metadata, found by
    /// this fixed call (created with the pool).
    pub fn root_mdc(&self) -> Result<Arc<Mdc>> {
        let p = self.pmd()?;
        p.mdc_open(p.root())
    }

    /// The root MDC's object ID.
    pub fn root_mdc_id(&self) -> Result<ObjectId> {
        Ok(self.pmd()?.root())
    }

    /// Compact every pool-metadata MDC now (normally done in the background).
    pub fn compact_metadata(&self) -> Result<()> {
        self.pmd()?.compact_all()
    }

    /// State of each pool-metadata MDC.
    pub fn metadata_stats(&self) -> Result<Vec<crate::catalog::MdcStats>> {
        Ok(self.pmd()?.mdc_stats())
    }

    /// Background compactions done since open.
    pub fn compactions(&self) -> Result<u64> {
        Ok(self.pmd()?.compactions())
    }

    /// Close the pool (also done on drop of the last clone).
    pub fn close(self) {
        drop(self);
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        if !self.read_only {
            rundir::clear_holder(&self.uuid.to_string());
        }
    }
}
