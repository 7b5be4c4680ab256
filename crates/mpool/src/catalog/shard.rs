//! One of MDC1..N: its log, object table, uniquifier and deferred
//! deletes, and the appends that change them.

use super::object::Obj;
use super::{lock, rlock, wlock, Catalog, ClassDev, Inner, UNIQ_STEP};
use crate::error::{
    ensure_invariant, invariant_broken, Error, MetadataError, ObjectError, PoolError, Result,
};
use crate::format::record::CatalogRecord;
use crate::format::superblock::MediaClass;
use crate::mdc::{Mdc, MdcError};
use crate::mlog::MlogError;
use crate::objid::{ObjType, ObjectId, UNIQ_MAX};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

/// Appends to a full MDC log: each compacts it and tries again. More than
/// one: with more threads than CPUs, the other appenders can fill the
/// compacted log again while the compacting thread waits for a CPU before
/// its own retry (a 2-CPU machine under 8 threads of metadata operations,
/// BENCHMARKS.md, session 26); a compacted state too large for the log
/// fails the compaction itself.
const FULL_ATTEMPTS: usize = 4;

/// State of one pool-metadata MDC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MdcStats {
    /// MDC number (1..N).
    pub index: u8,
    /// Records in its active log (live and superseded).
    pub records: u64,
    /// Live objects it holds.
    pub objects: u64,
    /// Bytes used in its active log.
    pub used: u64,
    /// Bytes its active log can hold.
    pub capacity: u64,
}

#[derive(Debug)]
pub(super) struct Shard {
    pub(super) index: u8,
    pub(super) mdc: RwLock<Mdc>,
    pub(super) objs: RwLock<HashMap<u64, Obj>>,
    /// Reserved mblocks (see `seal.rs`): their reserve records are
    /// durable. Lock order: `objs` before this.
    pub(super) reserved: Mutex<HashMap<u64, super::seal::Reservation>>,
    /// `reserved` has held an entry since the open (set under the `objs`
    /// write lock before the first insert): commits and deletes of a
    /// pool that never reserved skip its lock.
    pub(super) any_reserved: AtomicBool,
    /// Held by an adoption's append and by a delete of a reserved mblock
    /// (`reserve.rs`): a commit record never follows its delete record.
    pub(super) adopting: Mutex<()>,
    /// Changes of `objs` so far: a thread's memo of committed records
    /// ([`super::Catalog::committed`]) is good while this has not moved.
    pub(super) objs_gen: AtomicU64,
    /// The next uniquifier to hand out.
    pub(super) uniq: Mutex<u64>,
    /// The durable checkpoint: every uniquifier handed out is below it. An
    /// atomic, set while the checkpoint's append still excludes compaction,
    /// so that compaction reads it without the `uniq` lock (lock order: a
    /// thread holding `uniq` may take `mdc`, never the other way round).
    pub(super) ckpt: AtomicU64,
    /// Records in the active log (live and garbage).
    pub(super) records: AtomicU64,
    /// Zones per log and first zones, for `check` and stats.
    pub(super) loc: (u32, u32, u32),
    /// Zones of deferred deletes whose record is not known durable yet:
    /// returned to the space map by the next sync of this MDC.
    pub(super) awaiting: Mutex<Vec<(MediaClass, u32, u32)>>,
    /// Appends so far (the background thread tells an idle MDC by it).
    pub(super) appends: AtomicU64,
    /// A shared-flush commit record may be in the last flush set.
    pub(super) unsealed: AtomicBool,
    /// Set when a compaction failed with its outcome unknown (or a failed
    /// commit's delete record could not be appended): the MDC takes no more
    /// records until the pool is reopened. The first reason stays. Read at
    /// every append: a load, where a mutex was two writes of a line the
    /// MDC's appenders share.
    pub(super) broken: std::sync::OnceLock<String>,
    /// The owner thread that makes this MDC's appends, when the pool was
    /// opened with `MPOOL_META_LOCKING=owner` (see `owner.rs`).
    pub(super) owner: Option<super::owner::Owner>,
}

/// IDs a thread takes in a row from one shard (see `Inner::new_id`).
pub(super) const SHARD_RUN: u32 = 64;

thread_local! {
    /// The calling thread's run of IDs: the pool (its table cache's
    /// number, unique in the process), the cursor value naming the shard,
    /// and how many IDs are left in the run.
    static SHARD_RUNS: std::cell::Cell<(u64, usize, u32)> = const { std::cell::Cell::new((0, 0, 0)) };
}

impl Shard {
    /// Refuse work on an MDC whose compaction ended in doubt.
    pub(super) fn check_broken(&self) -> Result<()> {
        match self.broken.get() {
            Some(why) => Err(MetadataError::Failed {
                mdc: self.index,
                reason: why.clone(),
            }
            .into()),
            None => Ok(()),
        }
    }

    /// An error of this MDC's log, as the catalog reports it. A log that
    /// failed (an I/O error writing or flushing it, met by this call or
    /// an earlier one in any thread: a commit's flush, the background
    /// thread's sync) takes no more records until the pool is reopened,
    /// as an MDC whose compaction ended in doubt does: the same error,
    /// [`MetadataError::Failed`], with the log's reason. Any other error is
    /// the log's own.
    pub(super) fn log_error(&self, e: MdcError) -> Error {
        match e {
            MdcError::Mlog(MlogError::Failed { reason }) => MetadataError::Failed {
                mdc: self.index,
                reason: format!("its log failed: {reason}"),
            }
            .into(),
            e => e.into(),
        }
    }
}

/// The zones of a shard's deferred deletes appended so far.
pub(super) fn take_awaiting(s: &Shard) -> Vec<(MediaClass, u32, u32)> {
    std::mem::take(&mut *lock(&s.awaiting))
}
impl Inner {
    pub(super) fn class(&self, class: MediaClass) -> Result<&ClassDev> {
        self.classes[class.index()]
            .get()
            .ok_or(PoolError::NoSuchClass(class).into())
    }

    pub(super) fn shard(&self, id: ObjectId) -> Result<&Shard> {
        let i = id.mdc();
        if let Some(s) = self
            .shards
            .get(usize::from(i).wrapping_sub(1))
            .filter(|s| s.index == i)
        {
            return Ok(s);
        }
        if let Some(d) = self.damaged.iter().find(|d| d.index == i) {
            return Err(MetadataError::Damaged {
                mdc: i,
                reason: d.reason.clone(),
            }
            .into());
        }
        self.shards
            .iter()
            .find(|s| s.index == i)
            .ok_or(ObjectError::NotFound(id).into())
    }

    pub(super) fn check_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(PoolError::ReadOnly("pool".into()).into());
        }
        if let Some(d) = self.damaged.first() {
            return Err(MetadataError::Damaged {
                mdc: d.index,
                reason: d.reason.clone(),
            }
            .into());
        }
        Ok(())
    }

    /// Return zones of durable deletes to their space maps.
    /// Each was allocated or claimed once and is released once: a failure
    /// is a bug, reported after every other zone is returned.
    pub(super) fn release(&self, zones: Vec<(MediaClass, u32, u32)>) -> Result<()> {
        let mut first = Ok(());
        for (class, z, n) in zones {
            // Held by an mcache map: released when the last hold goes.
            if self.defer_held(class, z, n) {
                continue;
            }
            let r = match self.classes[class.index()].get() {
                Some(c) => c.map.release(z, n),
                None => Err(invariant_broken(format!(
                    "zones {z}+{n} of a deleted object are in the {class} class, \
                     which the pool lacks"
                ))),
            };
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// Make an MDC's appends durable; then the zones of its deferred
    /// deletes are free. With `seal`, also end a last flush set holding
    /// shared-flush commits (a checkpoint record, synced).
    pub(super) fn sync_shard(&self, s: &Shard, seal: bool) -> Result<()> {
        if seal && s.unsealed.swap(false, Ordering::Relaxed) {
            let next = s.ckpt.load(Ordering::Acquire);
            if let Err(e) = self.log(s, CatalogRecord::UniqCkpt { next }, true, |_| {}) {
                s.unsealed.store(true, Ordering::Relaxed);
                return Err(e);
            }
            return Ok(());
        }
        // Always sync, even with nothing awaiting here: another thread's
        // sync append may have taken deletes that are not durable yet, and
        // the log's sync waits for every record appended before it.
        let done = take_awaiting(s);
        let r = rlock(&s.mdc).sync();
        match r {
            Ok(()) => self.release(done),
            Err(e) => {
                lock(&s.awaiting).extend(done);
                Err(s.log_error(e))
            }
        }
    }

    /// Append a record to a shard's MDC (durably with `sync`) and apply
    /// `then` to the object table while still excluding compaction.
    /// Compacts and retries when the log is full, up to
    /// [`FULL_ATTEMPTS`] times. A sync append also
    /// makes every deferred delete appended before it durable, and frees
    /// their zones.
    pub(super) fn log(
        &self,
        s: &Shard,
        rec: CatalogRecord,
        sync: bool,
        then: impl FnOnce(&mut HashMap<u64, Obj>),
    ) -> Result<()> {
        s.check_broken()?;
        let bytes = rec.encode();
        // What is written is what replay will read back.
        debug_assert_eq!(CatalogRecord::decode(&bytes).ok(), Some(rec));
        let mut then = Some(then);
        // Taken before the append: these records precede ours in the log.
        let done = if sync { take_awaiting(s) } else { Vec::new() };
        let give_back = |e: Error| {
            lock(&s.awaiting).extend(done.iter().copied());
            e
        };
        for attempt in 0..FULL_ATTEMPTS {
            {
                let mdc = rlock(&s.mdc);
                let appended = match &s.owner {
                    Some(o) => o.append(&mdc, &bytes, sync),
                    None => mdc.append(&bytes, sync).map(|_| ()),
                };
                match appended {
                    Ok(()) => {
                        s.records.fetch_add(1, Ordering::Relaxed);
                        s.appends.fetch_add(1, Ordering::Relaxed);
                        if let Some(f) = then.take() {
                            let mut objs = wlock(&s.objs);
                            f(&mut objs);
                            // Under the lock: a reader that filled its memo
                            // before this change sees the count move.
                            s.objs_gen.fetch_add(1, Ordering::Release);
                        }
                        drop(mdc);
                        // A failure is a bug (the append itself is done).
                        let released = self.release(done);
                        self.compact_if_due(s);
                        return released;
                    }
                    // Nothing was written: compact and try again.
                    Err(MdcError::Mlog(MlogError::LogFull { .. })) => {}
                    Err(e) => return Err(give_back(s.log_error(e))),
                }
            }
            if attempt + 1 < FULL_ATTEMPTS {
                self.compact(s).map_err(give_back)?;
            }
        }
        Err(give_back(MetadataError::Full { mdc: s.index }.into()))
    }

    /// A new ID in the calling thread's current shard; a checkpoint is
    /// made durable first when needed.
    ///
    /// A thread takes [`SHARD_RUN`] IDs in a row from one shard, then the
    /// shard the pool's cursor names next: the shards fill evenly (in runs
    /// instead of one by one), and threads that allocate at the same time
    /// mostly work in different shards, so their commits and deletes meet
    /// on no log, lock or cache line of one (BENCHMARKS.md, session 22:
    /// with IDs dealt round the shards one by one, two threads on tmpfs
    /// spent twice the CPU per operation of one).
    pub(super) fn new_id(&self, ty: ObjType) -> Result<ObjectId> {
        let n = self.shards.len().max(1);
        let at = SHARD_RUNS.with(|c| {
            let (pool, at, left) = c.get();
            if pool == self.csums.cache.gen && left > 0 {
                c.set((pool, at, left - 1));
                at
            } else {
                let at = self.cursor.fetch_add(1, Ordering::Relaxed);
                c.set((self.csums.cache.gen, at, SHARD_RUN - 1));
                at
            }
        });
        let s = self
            .shards
            .get(at % n)
            .ok_or_else(|| invariant_broken("an open pool with no MDCs"))?;
        let mut u = lock(&s.uniq);
        if *u >= UNIQ_MAX {
            return Err(MetadataError::IdsExhausted { mdc: s.index }.into());
        }
        if *u >= s.ckpt.load(Ordering::Acquire) {
            let next = *u + UNIQ_STEP;
            // Published before the append stops excluding compaction, so a
            // compaction right after it writes this checkpoint, not the old one.
            self.log(s, CatalogRecord::UniqCkpt { next }, true, |_| {
                s.ckpt.store(next, Ordering::Release)
            })?;
        }
        // Every ID handed out is below the durable checkpoint: a reopen
        // after a crash never hands it out again.
        ensure_invariant!(
            *u < s.ckpt.load(Ordering::Acquire),
            "MDC{}: ID {} handed out at or above the checkpoint",
            s.index,
            *u
        );
        let id = ObjectId::new(ty, s.index, *u);
        *u += 1;
        Ok(id)
    }
}

impl Catalog {
    /// Every MDC's state, for `check` and stats.
    pub(crate) fn mdc_stats(&self) -> Vec<MdcStats> {
        self.inner
            .shards
            .iter()
            .map(|s| {
                let u = rlock(&s.mdc).usage();
                MdcStats {
                    index: s.index,
                    records: s.records.load(Ordering::Relaxed),
                    objects: rlock(&s.objs).len() as u64,
                    used: u.len,
                    capacity: u.capacity,
                }
            })
            .collect()
    }
}
