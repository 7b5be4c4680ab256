//! A reader that keeps a queue of mblock reads in flight across calls.
//!
//! [`crate::Pool::mblock_read_batch`] keeps `depth` reads in flight while
//! one call lasts and drains the queue before it returns. A storage engine
//! reading a stream of blocks (a scan, a compaction, a prefetcher) wants the
//! queue never to drain: it pushes reads as it learns of them and takes
//! completed ones as they come. [`MblockReader`] does that on a queue of
//! each device it reads from ([`crate::dev::Device::queue`]: an io_uring
//! queue of its own on a file device): a read pushed goes to the device
//! into the caller's buffer, and [`Iterator::next`] hands it back when it
//! completed.

use super::mblock::Table;
use super::read::Target;
use super::{AlignedRead, Catalog};
use crate::dev::{from_req_err, DevQueue};
use crate::error::{invariant_broken, Error, Result, StorageError};
use crate::format::superblock::MediaClass;
use crate::io::{AlignedBuf, Arena, IoKind, IoReq};
use crate::objid::MblockId;
use std::collections::VecDeque;
use std::sync::Arc;

/// What the reader remembers of a read in flight.
#[derive(Debug, Clone, Copy)]
struct Flight {
    id: MblockId,
    offset: u64,
    class: MediaClass,
    /// Where the mblock is (its content length, its record).
    target: Target,
    /// Device offset of the read.
    at: u64,
}

/// Reads of committed mblocks into the caller's aligned buffers, kept in
/// flight across calls; completed reads come back in completion order.
/// Made by [`crate::Pool::mblock_reader`].
///
/// A read whose offset is a multiple of the pool's sector size, into a
/// buffer aligned at least that much, goes to its device's queue
/// (the device layer's queue of reads in flight): on a file or block device with the
/// io_uring engine it goes from the device straight into its buffer and
/// stays in flight until it completes; other devices serve it through
/// their own read path (with a fault device's faults). Any other read is
/// done when it is pushed, through a bounce buffer and a copy, and waits,
/// complete, for [`Iterator::next`]. So is a read that does not cover
/// whole checksum blocks of its mblock (it needs the rest of them to be
/// verified).
///
/// Every read is verified against its mblock's checksums before it comes
/// back; a mismatch is read again once, and a second mismatch comes back
/// as [`crate::ObjectError::Checksum`] naming the damaged bytes.
///
/// A buffer may run past the end of the content up to the next multiple
/// of its alignment (so a whole mblock reads into one buffer), and those
/// bytes come back zero; past that, or past the mblock's zone, the read
/// is refused by [`MblockReader::push`] with
/// [`crate::ObjectError::ReadOutOfRange`], before any I/O.
///
/// The reader stays on the thread that made it (its rings are set up for
/// a single issuer). Dropping it waits for the reads still in flight.
///
/// As with every read, the caller keeps an mblock from being deleted while
/// it reads it: a read still in flight when its mblock is deleted and its
/// zone written again may return the new bytes.
pub struct MblockReader<'a> {
    pmd: &'a Catalog,
    /// A queue per media class read so far (`None`: given up after it
    /// failed; that class's reads are then done when pushed).
    queues: Vec<(MediaClass, Option<Box<dyn DevQueue + 'a>>)>,
    depth: usize,
    /// Reads in flight, by tag.
    flights: Vec<Option<Flight>>,
    /// The checksum table of each read in flight, by tag.
    tables: Vec<Option<Arc<Table>>>,
    free: Vec<usize>,
    /// Completed reads not yet taken.
    ready: VecDeque<Result<AlignedRead>>,
    reaped: Vec<(u64, IoReq)>,
    /// The buffers of [`MblockReader::register_buffers`] (registered with
    /// the ring when it allowed, plain memory otherwise).
    bufs: Option<std::sync::Arc<Arena>>,
    /// The checksum tables this reader used last, by object ID, in
    /// `MEMO` slots (direct-mapped): a read of an mblock read recently
    /// takes its table from here, without the pool's table cache (its
    /// lock and its hash). A table never changes once loaded, and object
    /// IDs are never used again, so an entry stays right; it only costs
    /// its memory until the reader is dropped or the slot reused.
    memo: Vec<Option<(u64, Arc<Table>)>>,
}

/// Slots of [`MblockReader`]'s table memo (a power of two).
const MEMO: usize = 64;

/// The memo slot of object `raw`.
fn memo_slot(raw: u64) -> usize {
    // Fibonacci hashing: the top bits of the product, MEMO = 2^6.
    (raw.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - MEMO.trailing_zeros())) as usize
}

impl std::fmt::Debug for MblockReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MblockReader")
            .field("depth", &self.depth)
            .field("pending", &self.pending())
            .finish()
    }
}

impl<'a> MblockReader<'a> {
    pub(crate) fn new(pmd: &'a Catalog, depth: usize) -> Self {
        let depth = depth.clamp(1, 256);
        let mut rd = Self {
            pmd,
            queues: Vec::with_capacity(2),
            depth,
            flights: vec![None; depth],
            tables: vec![None; depth],
            free: (0..depth).rev().collect(),
            ready: VecDeque::new(),
            reaped: Vec::new(),
            bufs: None,
            memo: vec![None; MEMO],
        };
        // The capacity device's queue now (its ring set up before the
        // first read); another class's when it is first read.
        rd.queue_of(MediaClass::Capacity);
        rd
    }

    /// The queue of `class`'s device, made on first use (with the
    /// reader's buffers registered); `None` when it was given up or the
    /// class has no device.
    fn queue_of(&mut self, class: MediaClass) -> Option<&mut Box<dyn DevQueue + 'a>> {
        let i = match self.queues.iter().position(|(c, _)| *c == class) {
            Some(i) => i,
            None => {
                let pmd: &'a Catalog = self.pmd;
                let dev = pmd.class_dev(class).ok()?;
                let mut q = dev.queue(self.depth);
                if let Some(a) = &self.bufs {
                    q.register_arena(a);
                }
                self.queues.push((class, Some(q)));
                self.queues.len() - 1
            }
        };
        self.queues.get_mut(i).and_then(|(_, q)| q.as_mut())
    }

    /// Set up `count` read buffers of `len` bytes each (rounded up to a
    /// multiple of 4 KiB, or of a larger sector size of the pool), handed
    /// out by
    /// [`MblockReader::take_buf`] and free again when dropped. They are
    /// one allocation registered with the reader's ring, so reads into them
    /// skip pinning their pages for each read (fio's `--fixedbufs`); that
    /// is worth about 5 % at 4 KiB and queue depth 32. Returns whether they
    /// are registered: where io_uring is missing or refuses (for instance
    /// over `RLIMIT_MEMLOCK`, or for more than 1 GiB in all), they are
    /// plain buffers, and reads work the same. Once per reader.
    pub fn register_buffers(&mut self, count: usize, len: usize) -> Result<bool> {
        if self.bufs.is_some() {
            return Err(Error::InvalidArgument(
                "this reader's buffers are set up already".into(),
            ));
        }
        let align = [MediaClass::Capacity, MediaClass::Staging]
            .into_iter()
            .filter_map(|c| self.pmd.class_dev(c).ok())
            .map(|d| d.sector() as usize)
            .fold(crate::io::DEFAULT_ALIGN, usize::max);
        let arena = Arena::new(count, len, align).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "cannot set up {count} buffers of {len} bytes (none, empty, too large, or no memory)"
            ))
        })?;
        let mut registered = false;
        for q in self.queues.iter_mut().filter_map(|(_, q)| q.as_mut()) {
            registered |= q.register_arena(&arena);
        }
        self.bufs = Some(arena);
        Ok(registered)
    }

    /// A free buffer of those set up by [`MblockReader::register_buffers`]:
    /// `None` when none were set up or all are in use. A buffer handed out
    /// again holds the bytes of its last use.
    pub fn take_buf(&self) -> Option<AlignedBuf> {
        self.bufs.as_ref()?.take()
    }

    /// The most reads in flight at once.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Reads pushed and not yet taken with [`Iterator::next`]
    /// (in flight or complete).
    pub fn pending(&self) -> usize {
        self.depth - self.free.len() + self.ready.len()
    }

    /// True when no read is in flight or waiting to be taken.
    pub fn is_idle(&self) -> bool {
        self.pending() == 0
    }

    /// Queue a read. It is checked now: a read of an object that is not a
    /// committed mblock, or outside it, is refused here (its buffer is
    /// dropped). With `depth` reads in flight this first waits for some
    /// to complete. The read goes to the device before this returns.
    /// Device errors come back through [`Iterator::next`], each with its
    /// read.
    ///
    /// Every read is verified against its mblock's checksums before it
    /// comes back (the first read of an mblock loads its checksum table,
    /// here). A read that does not cover whole checksum blocks is done when
    /// pushed, through a bounce buffer holding them.
    pub fn push(&mut self, read: AlignedRead) -> Result<()> {
        let target = self.pmd.aligned_target(&read)?;
        let table = self.table(read.id.object_id(), &target.obj)?;
        let class = target.class;
        let dev = self.pmd.class_dev(class)?;
        let at = target.base + read.offset;
        let read_offset = read.offset;
        if !super::mblock::direct_read_ok(dev.as_ref(), at, &read.buf)
            || !super::read::whole_blocks(&table, read.offset, read.buf.len(), target.len)
        {
            self.read_now(read);
            return Ok(());
        }
        // A free slot, waiting for a quarter of the queue if there is none
        // (if a queue fails meanwhile, it is given up and its reads in
        // flight come back as errors, which frees their slots).
        while self.free.is_empty() {
            // Only what the live queues hold can complete and free a slot.
            let live: usize = self
                .queues
                .iter()
                .filter_map(|(_, q)| q.as_ref())
                .map(|q| q.in_flight())
                .sum();
            if live == 0 {
                break;
            }
            let _ = self.reap(self.depth.div_ceil(4));
        }
        let Some(tag) = self.free.last().copied() else {
            self.read_now(read);
            return Ok(());
        };
        let Some(q) = self.queue_of(class) else {
            self.read_now(read);
            return Ok(());
        };
        match q.push(IoReq::read(at, read.buf), tag as u64) {
            Ok(()) => {
                self.free.pop();
                self.flights[tag] = Some(Flight {
                    id: read.id,
                    offset: read.offset,
                    class,
                    target,
                    at,
                });
                table.prefetch(read_offset);
                self.tables[tag] = Some(table);
                // To the device now, as fio does at its default batch of
                // one: a read pushed while the caller takes completed ones
                // from `ready` would otherwise wait for the next reap, and
                // the queue would run that much below its depth (0.93-0.95
                // of fio at depth 32 on the disk, against 0.96-1.04;
                // BENCHMARKS.md). Its failure comes back with its reads.
                let _ = self.reap(0);
                Ok(())
            }
            Err(req) => {
                // Not expected (a slot was free): read it now instead.
                self.read_now(AlignedRead {
                    id: read.id,
                    offset: read.offset,
                    buf: req.buf,
                });
                Ok(())
            }
        }
    }

    /// The checksum table of committed mblock `id` (record `o`): from the
    /// memo, else from the pool (and then kept in the memo).
    fn table(&mut self, id: crate::objid::ObjectId, o: &super::object::Obj) -> Result<Arc<Table>> {
        let raw = id.raw();
        let slot = memo_slot(raw);
        if let Some(Some((k, t))) = self.memo.get(slot) {
            if *k == raw {
                return Ok(Arc::clone(t));
            }
        }
        let t = self.pmd.table(id, o)?;
        if let Some(m) = self.memo.get_mut(slot) {
            *m = Some((raw, Arc::clone(&t)));
        }
        Ok(t)
    }

    /// Reads in the device queues (pushed, not yet reaped).
    fn in_queues(&self) -> usize {
        self.depth - self.free.len()
    }

    /// Do `read` synchronously; it waits, complete, in `ready`.
    fn read_now(&mut self, read: AlignedRead) {
        let done = self
            .pmd
            .mblock_read_aligned(vec![read], 1)
            .and_then(|mut v| {
                v.pop().ok_or_else(|| {
                    crate::error::invariant_broken("a read of one request returned no request")
                })
            });
        self.ready.push_back(done);
    }

    /// Hand pushed reads to the device now, without waiting, and collect
    /// the completions already there; reports a failed queue (a `push`
    /// hands each read over itself, and its reads report such a failure
    /// as their errors).
    pub fn submit(&mut self) -> Result<()> {
        self.reap(0)
    }

    /// Submit, wait for `min` completions (over all queues), move them
    /// to `ready`.
    fn reap(&mut self, min: usize) -> Result<()> {
        let mut want = min;
        let mut failed = None;
        for i in 0..self.queues.len() {
            let mut reaped = std::mem::take(&mut self.reaped);
            reaped.clear();
            let Some((class, Some(q))) = self.queues.get_mut(i) else {
                self.reaped = reaped;
                continue;
            };
            let class = *class;
            let res = q.reap(want.min(q.in_flight()), &mut reaped);
            want = want.saturating_sub(reaped.len());
            for (tag, req) in reaped.drain(..) {
                self.complete(tag, req);
            }
            self.reaped = reaped;
            if let Err(e) = res {
                failed = Some(self.give_up(i, class, &e));
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Read `tag` completed as `req`: it waits in `ready`.
    fn complete(&mut self, tag: u64, mut req: IoReq) {
        let flight = usize::try_from(tag)
            .ok()
            .and_then(|t| Some((t, self.flights.get_mut(t)?.take()?)));
        let Some((tag, f)) = flight else {
            // A completion under a tag with no read in flight: a bug, told
            // to the caller as one, never credited to a read.
            self.ready.push_back(Err(invariant_broken(format!(
                "a queued read completed under tag {tag}, which has no read in flight"
            ))));
            return;
        };
        self.free.push(tag);
        let table = self.tables.get_mut(tag).and_then(Option::take);
        let done = match req.take_result() {
            Ok(()) => {
                let mut read = AlignedRead {
                    id: f.id,
                    offset: f.offset,
                    buf: req.buf,
                };
                let verified = match (&table, self.pmd.class_dev(f.class)) {
                    (Some(t), Ok(dev)) => {
                        self.pmd
                            .verify_in_place(dev.as_ref(), &f.target, t, &mut read)
                    }
                    (None, _) => Err(invariant_broken(format!(
                        "a queued read of {} completed with no checksum table",
                        f.id
                    ))),
                    (_, Err(e)) => Err(e),
                };
                verified.map(|()| {
                    super::mblock::zero_past_content(&mut read.buf, f.offset, f.target.len);
                    read
                })
            }
            Err(e) => self
                .pmd
                .class_dev(f.class)
                .map(|d| {
                    Error::Storage(StorageError::Dev(from_req_err(
                        d.info(),
                        IoKind::Read,
                        req.offset,
                        e,
                    )))
                })
                .and_then(Err),
        };
        self.ready.push_back(done);
    }

    /// Queue `i` (of `class`) failed with `e`: give it up (dropping it
    /// waits for what it can). Its reads still in flight come back as
    /// errors, each naming its device and offset; later ones of that class
    /// are done when pushed. A queue that failed on a completion it could
    /// not match (an engine bug) is an internal error, not a device's.
    fn give_up(&mut self, i: usize, class: MediaClass, e: &std::io::Error) -> Error {
        if let Some((_, q)) = self.queues.get_mut(i) {
            *q = None;
        }
        let bug = e
            .get_ref()
            .is_some_and(|i| i.is::<crate::io::StrayCompletion>());
        let dev = self.pmd.class_dev(class).ok().cloned();
        let lost = |at: u64| -> Error {
            if bug {
                return Error::Internal(e.to_string());
            }
            let src = std::io::Error::new(e.kind(), e.to_string());
            match &dev {
                Some(d) => StorageError::Dev(from_req_err(d.info(), IoKind::Read, at, src)).into(),
                None => Error::Internal(format!("a queue of a missing {class} class failed: {e}")),
            }
        };
        for (tag, f) in self.flights.iter_mut().enumerate() {
            if let Some(fl) = f.filter(|f| f.class == class) {
                *f = None;
                if let Some(t) = self.tables.get_mut(tag) {
                    *t = None;
                }
                self.free.push(tag);
                self.ready.push_back(Err(lost(fl.at)));
            }
        }
        lost(0)
    }
}

/// Completed reads, in completion order.
impl Iterator for MblockReader<'_> {
    type Item = Result<AlignedRead>;

    /// A completed read, waiting for one if none is: `None` when nothing
    /// is pending. When it has to wait, it waits for a quarter of the reads
    /// in flight (at least one) to complete, so that one wake-up serves
    /// several reads (the queue is refilled meanwhile by the caller's
    /// pushes). A read that failed comes back as its error, buffer dropped.
    fn next(&mut self) -> Option<Result<AlignedRead>> {
        // Each wait completes a read or gives up a queue (one per media
        // class at most), so a few rounds always settle it.
        for _ in 0..self.queues.len() + 2 {
            if let Some(done) = self.ready.pop_front() {
                return Some(done);
            }
            let in_flight = self.in_queues();
            if in_flight == 0 {
                return None;
            }
            // A failed queue's reads in flight come back as their errors
            // (in `ready`); the failure itself, which belongs to no read,
            // is not an item (`submit` reports it).
            let _ = self.reap((in_flight / 4).max(1));
        }
        Some(Err(invariant_broken(
            "reads are recorded in flight that no queue holds",
        )))
    }
}
