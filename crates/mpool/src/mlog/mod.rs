//! The mlog engine: a crash-safe record log in a byte extent of a device.
//!
//! An [`Mlog`] lives in a sector-aligned extent. Its first two blocks are
//! header blocks (ping-pong copies, newest valid wins), the rest is the data
//! area, a sequence of log blocks of the device's logical sector size, each
//! starting with a 32-byte block header. Records of any size are framed with
//! a 36-byte header (checksum, length, generation, sequence number, epoch,
//! flush set) and may span blocks. The exact bytes and the recovery rules are
//! in `docs/format.md` ("Mlog").
//!
//! Appends are buffered in memory and written in flush sets ("batches")
//! through [`Device::submit`], followed by a device flush. Sync appends from
//! many threads share flushes (group commit): one thread at a time is the
//! flusher; it writes everything appended so far and flushes; the others wait
//! until their own record is durable, and the next flusher takes everything
//! that accumulated meanwhile. How they wait follows the flush cost the log
//! measures: on a slow device a would-be flusher lets runnable appenders
//! join its flush set and waiters sleep; on memory-speed media an appender
//! alone in its flush set spins briefly for another appender's record only
//! while other sync appenders are around, and waiters spin while a CPU is
//! left for the flusher.
//!
//! On a device that takes writes of any bytes (memory, a file mapped in
//! it: [`Device::write_bytes`]) none of that applies: each append places
//! its record with a compare and swap of a 16-byte word that says where
//! the next record goes (`head.rs`; under the log's lock where the word
//! cannot say: the first record after an open or erase, a new epoch, a
//! full ring), frames it straight onto the device without the lock,
//! marks it written in a ring of marks (moving the durable counter over
//! every record marked), and returns once every record before it is
//! written too. Records placed while others are being written join their
//! flush set. The device's bytes are the records'
//! and block headers' only; padding and the rest of the last block keep
//! what they held, which the recovery rules never take for records (only
//! the current epoch's records follow the last one, and this epoch wrote
//! nothing past the end).
//!
//! A plain log created by this code is *padded*: a record that would touch
//! one block more where the log ends than from the next block's start
//! begins there, so that a record of R bytes costs at most R rounded up to
//! the block size plus one block of device writes (`docs/format.md`,
//! "Padded logs").
//!
//! # Crash safety in brief
//!
//! - Bytes of a flushed record are never changed: a flush rewrites the
//!   partly filled tail block with exactly the same bytes in front of the new
//!   records (block headers carry no per-flush state), so a torn rewrite can
//!   only damage records that were not yet acknowledged.
//! - Each open for append raises the epoch in a header block (written and
//!   flushed before any record of the new epoch), and an erase raises the
//!   generation. A record is accepted only if its checksum verifies, it has
//!   the log's generation, the next sequence number, an epoch no lower than
//!   its predecessor's and a consecutive flush set number. Stale records left
//!   past the end by an earlier epoch or generation can therefore never join
//!   the log, whatever pieces of later writes land.
//! - The first record that fails ends the log, unless a valid record found
//!   past it proves that the failed one was durable (it sits in a flush set
//!   that was flushed before a later one was written): that is corruption,
//!   reported as [`MlogError::Corrupt`] by readers, and appends are refused.
// Items here that only the tooling of the `internals` feature uses (the
// benchmarks' raw engine runs, the crash tests, the fuzz targets) are not
// dead code in a build without it.
#![cfg_attr(not(feature = "internals"), allow(dead_code, unused_imports))]

pub mod format;
mod head;
mod image;
mod scan;

pub use scan::{ScanResult, MIRRORED_MAX_RECORD};

use crate::dev::{DevError, Device};
use crate::lock::Padded;
use crate::io::{AlignedBuf, IoReq};
use image::Image;
use format::{
    payload_pieces, BlockHeader, Geom, LogHeader, RecordHeader, BLK_HDR_LEN, REC_HDR_LEN,
};
use scan::{Chain, DevBlocks, LogView, SliceBlocks, Step};
use std::ops::Range;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Errors of the mlog engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MlogError {
    /// The device failed.
    #[error(transparent)]
    Dev(#[from] DevError),
    /// The record does not fit in the space left; erase the log.
    #[error("log full: record needs {need} bytes, {free} bytes left")]
    LogFull {
        /// Bytes the record needs (with framing).
        need: u64,
        /// Bytes left in the log.
        free: u64,
    },
    /// The record is larger than an empty log could hold.
    #[error("record of {len} bytes is larger than the largest record the log can hold ({max})")]
    RecordTooLarge {
        /// Record length.
        len: u64,
        /// Largest record the log can hold.
        max: u64,
    },
    /// A record or block that must be valid is not (bit rot, overwritten).
    #[error("corrupt log at offset {offset}: {reason}")]
    Corrupt {
        /// Byte offset in the log's data area.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Neither header block holds a valid header for this log.
    #[error("no valid mlog header: {reason}")]
    NoHeader {
        /// What was found.
        reason: String,
    },
    /// The extent cannot hold a log on this device.
    #[error("bad mlog extent {start}..{end}: {reason}")]
    BadExtent {
        /// Extent start.
        start: u64,
        /// Extent end.
        end: u64,
        /// Why.
        reason: String,
    },
    /// A counter of the log ran out: its epoch (raised at every open and
    /// every 2^32 flushes; erase the log to start again at 1) or its
    /// generation (raised at every erase; the log cannot be erased again:
    /// make a new one). Only damaged or hostile media get there.
    #[error("the log's {counter} counter is exhausted")]
    Exhausted {
        /// `"epoch"` or `"generation"`.
        counter: &'static str,
    },
    /// An earlier write or flush of this log failed; reopen the log.
    #[error("log unusable after an earlier I/O failure ({reason}); reopen it")]
    Failed {
        /// The earlier failure.
        reason: String,
    },
}

/// Result of mlog operations.
pub type Result<T, E = MlogError> = std::result::Result<T, E>;

/// A record's log sequence number: its index in the current generation
/// (0 for the first record after create or erase).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

/// An async append is written (and flushed) once this many bytes are pending.
const ASYNC_FLUSH_BYTES: u64 = 1 << 20;
/// The last flush set number of an epoch.
#[cfg(not(test))]
const MAX_FSEQ: u32 = u32::MAX - 1;
/// Small in unit tests, so that they cross epochs often.
#[cfg(test)]
const MAX_FSEQ: u32 = 5;
/// A waiter spins (instead of sleeping) while the flush it waits for is
/// expected to end within this many nanoseconds: memory-speed media, where
/// a sleep and wake-up would cost more than the flush.
const SPIN_MAX_NS: u64 = 20_000;
/// A flush expected to cost at most this many nanoseconds is made while
/// holding the log's lock ([`Mlog::flush_inline`]).
const INLINE_MAX_NS: u64 = 2_000;
/// How long an appender spins for the lock when flushes are made under
/// it, before it sleeps on it (a few flushes' worth).
const LOCK_SPIN_NS: u64 = 8_000;
/// How long the record every waiter waits for may stay unwritten, on a
/// log written straight onto its device, before a waiter writes it for
/// its appender (preempted, most likely: an append's own write of a
/// 4 KiB record takes under a microsecond on memory).
const HELP_AFTER_NS: u64 = 5_000;
/// Rounds of [`SPIN_MAX_NS`] a waiter on such a log spins (and helps)
/// without seeing a record become durable before it sleeps instead.
const SPIN_ROUNDS: u32 = 4;
/// How far past the log's end appenders keep writes announced
/// ([`Device::will_write`]): on a mapped file, its thread making the page
/// table entries must stay ahead of appenders that write gigabytes a
/// second while it gets a small share of the CPUs (at 512 KiB, eight
/// appenders on two CPUs caught up with it, faulting: BENCHMARKS.md,
/// session 26). Each append announces only what lies past the last
/// announcement.
const WILL_WRITE_AHEAD: u64 = 32 << 20;
/// The least an append announces past the last announcement (see
/// [`WILL_WRITE_AHEAD`]).
const ANNOUNCE_STEP: u64 = 1 << 20;
/// Initial estimate of a flush (write and device flush), until one is measured:
/// long enough that the first flushes gather followers as on a disk.
const FLUSH_NS_INIT: u64 = 100_000;
/// One flush in this many is timed for the flush cost estimate.
const FLUSH_SAMPLE: u64 = 4;
/// A flush set up to this size is written with one `Device::write_slice`
/// (one `pwrite` on a file, which the kernel splits as the device needs),
/// straight from the image; a larger one (async appends piling up) goes
/// as requests of `MAX_REQ_BYTES` that the device may run in parallel.
/// 16 KiB records from 8 producers make flush sets of 130 KiB: one write
/// instead of three copied requests (BENCHMARKS.md, "Session 8").
const SLICE_MAX: usize = 4 << 20;
/// Largest single write request of a flush.
const MAX_REQ_BYTES: usize = 64 * 1024;
// Requests split at this size stay whole sectors of every accepted size.
const _: () = assert!(MAX_REQ_BYTES.is_multiple_of(crate::format::superblock::SECTOR_MAX as usize));

/// The log's state under its lock. `repr(C)`, the fields every append
/// of a log written straight onto its device reads or writes first: they
/// follow the lock's word on as few cache lines as hold them, and with
/// two appenders each of those lines moves between the CPUs at every
/// append (with the compiler's order they were spread over the struct).
#[derive(Debug)]
#[repr(C)]
struct State {
    next_seq: u64,
    /// End of the appended records (position in the data area).
    end: u64,
    /// Records with seq below this are durable.
    durable_seq: u64,
    /// Records before this position are written (and flushed, unless
    /// `unflushed` says otherwise).
    written_end: u64,
    /// Seq of the first record of the open flush set.
    batch_first: Option<u64>,
    /// Epoch of records appended now.
    epoch: u32,
    /// Flush set that appends join now.
    fseq: u32,
    // (The lock's word and the fields above fill the lock's first line;
    // those below are read-mostly on a log written straight onto its
    // device, whose appends write only that line: see `Mlog::st`.)
    gen: u64,
    /// Image of blocks `buf_block..` up to the block holding `end` (a log
    /// written straight onto its device has none).
    buf: Image,
    buf_block: u64,
    failed: Option<String>,
    corrupt: Option<(u64, String)>,
    /// Every record is written twice (the header flag of this generation).
    mirrored: bool,
    /// Records may start at the next block (the header flag of this
    /// generation; plain logs made by this code).
    padded: bool,
    /// Whether a header with (gen, epoch) is durable.
    hdr_durable: bool,
    /// No epoch is left above the last one used: appends are refused until
    /// an erase starts the epochs again (a saturated epoch would let new
    /// records break the sequencing rules and vanish at the next open).
    epochs_exhausted: bool,
    /// Slot (0 or 1) of the newest valid header.
    newest_slot: u8,
    /// The header in `newest_slot`.
    newest_hdr: LogHeader,
    /// The other slot, when its copy was found damaged at open and has not
    /// been written since: (slot, what is wrong).
    damaged_slot: Option<(u8, String)>,
    /// The image a flush wrote from, kept for the next flush set's appends
    /// (its memory reused, never reallocated per flush).
    spare: Option<Image>,
    /// A flush set written without a device flush
    /// ([`Mlog::append_written`]): the seqs `first..end` of its records.
    /// It becomes durable with the next device flush: the next flush set
    /// flushes the device before it is written (a set is written only
    /// after the one before it is durable), or the caller reports a device
    /// flush that began after the write ([`Mlog::note_flushed`]).
    unflushed: Option<(u64, u64)>,
    flushing: bool,
    /// Flushes begun (the number of the one in progress, if any).
    flush_no: u64,
    /// Records with seq below this are in the flush in progress.
    inflight_seq: u64,
    /// Threads asleep on each condition variable (nobody to wake: no
    /// wake-up call).
    sleepers: [u32; 2],
    /// Records in the last flush set written: more than one means other
    /// appenders are around to join a flush set (group commit pays).
    last_set_records: u64,
    /// Moving average of the cost of one flush (write and device flush), ns.
    flush_ns: u64,
    /// Sync appenders waiting for their records to be durable now.
    inside: u32,
    /// How many sync appenders there are, as far as seen: the most
    /// `inside` reached since the last gathering that timed out.
    peak_inside: u32,
    /// Follower waits on fast media that ended with nobody coming, in a
    /// row, and the chances to wait still to let go after the last of them
    /// (`2^misses`, at most 64): where followers keep not coming in time
    /// (a slowed CPU), the waits stop costing.
    follow_misses: u32,
    follow_skip: u32,
    /// The follower wait's length when set (tests), else half a flush.
    #[cfg(test)]
    follow_wait_ns: Option<u64>,
    /// The flush cost estimate, when set (tests), whatever is measured.
    #[cfg(test)]
    fixed_flush_ns: Option<u64>,
    /// A would-be flusher waits for followers (on `Mlog::joined`) until
    /// the open flush set holds `gather_want` records.
    gathering: bool,
    gather_want: u64,
    /// First record of the last flush set the open scan found.
    open_tail: Option<u64>,
    /// [`Mlog::head`] is open: records are placed with it, and the
    /// placing fields above (`next_seq`, `end`, `batch_first`, `fseq`)
    /// are stale until [`Mlog::freeze`] closes it. Only the lock's holder
    /// opens or closes it.
    head_open: bool,
}

/// A record placed in a log written straight onto its device, to be
/// written without the lock ([`Mlog::write_placed`]).
#[derive(Clone, Copy)]
struct Placed {
    seq: u64,
    /// Its header, the checksum not yet computed.
    hdr: RecordHeader,
    /// Where the records before it end.
    prev_end: u64,
    h: u64,
    end1: u64,
    copy: Option<u64>,
    /// Where it ends.
    end: u64,
}

/// A flush set closed for writing ([`Mlog::close_set`]): what its write
/// needs, and what [`Mlog::end_set`] records when it ends.
#[derive(Debug)]
struct SetWrite {
    /// End of its records, and the seq after its last.
    snap_end: u64,
    snap_seq: u64,
    /// The end seq of a set written unflushed, flushed before this one.
    pre_flush: Option<u64>,
    /// A header to write (and flush) before the set: (slot, header).
    hdr: Option<(u8, LogHeader)>,
    /// The image it is written from: bytes `..nbytes`, at device byte `base`.
    out: Image,
    base: u64,
    nbytes: usize,
    /// Records in the set.
    set_records: u64,
}

impl SetWrite {
    fn data(&self) -> &[u8] {
        self.out.bytes().get(..self.nbytes).unwrap_or(&[])
    }
}

/// One record appended by [`Mlog::stage_written`], its flush set closed
/// and not yet written: the caller writes it in a batch of its own
/// ([`StagedWrite::requests`]) and reports the outcome with
/// [`StagedWrite::done`]. The log takes appends meanwhile but writes
/// nothing (it is busy flushing this set). Dropped without `done`, the set
/// is taken as failed and so is the log (its bytes may or may not have
/// reached the device).
#[derive(Debug)]
#[must_use = "the log writes nothing until `done` reports the write"]
pub struct StagedWrite<'a> {
    log: &'a Mlog,
    set: Option<SetWrite>,
    lsn: Lsn,
}

impl StagedWrite<'_> {
    /// The record's place in the log.
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// The writes that put the set on the device (copies of its bytes).
    pub fn requests(&self) -> Vec<IoReq> {
        self.set
            .as_ref()
            .map(|s| self.log.set_requests(s))
            .unwrap_or_default()
    }

    /// Report the requests of [`StagedWrite::requests`] as the device
    /// completed them. With every one done, the record is written, not
    /// durable: it is durable after a device flush that begins after this
    /// returns ([`Mlog::note_flushed`]). A failed or missing request fails
    /// the log.
    pub fn done(mut self, completed: &mut [IoReq]) -> Result<Lsn> {
        let Some(set) = self.set.take() else {
            // `done` takes the write by value: it cannot be reported twice.
            return Ok(self.lsn);
        };
        let info = self.log.dev.info();
        let mut r = Ok(());
        let want: usize = set.data().chunks(MAX_REQ_BYTES).count();
        if completed.len() != want {
            let e = std::io::Error::other(format!(
                "{} of the {want} writes of a staged log write were reported",
                completed.len()
            ));
            r = Err(crate::dev::io_err(info, "write", set.base, e).into());
        }
        for q in completed.iter_mut() {
            let (kind, off) = (q.kind, q.offset);
            if let Err(e) = q.take_result() {
                if r.is_ok() {
                    r = Err(crate::dev::from_req_err(info, kind, off, e).into());
                }
            }
        }
        let (_g, r) = self.log.end_set(set, r, None, false);
        r.map(|()| self.lsn)
    }
}

impl Drop for StagedWrite<'_> {
    fn drop(&mut self) {
        if let Some(set) = self.set.take() {
            let e = std::io::Error::other("a staged log write was dropped before its outcome was known");
            let e = crate::dev::io_err(self.log.dev.info(), "write", set.base, e);
            let _ = self.log.end_set(set, Err(e.into()), None, false);
        }
    }
}

/// A record log on a device extent. `Send + Sync`: share it (e.g. in an
/// `Arc`) between threads; sync appends from several threads share flushes.
///
/// Open a log once: two handles on one extent would each append from what
/// they saw at open (and dropping a handle flushes its pending appends).
/// Typical use, e.g. for a benchmark: `Mlog::create(Arc::new(file_device),
/// zone_start..zone_end, id)`, then `append(rec, true)` from N threads.
#[derive(Debug)]
pub struct Mlog {
    dev: Arc<dyn Device>,
    id: u64,
    /// Device offset of the extent (header block 0).
    start: u64,
    geom: Geom,
    /// The log's state behind its lock, on lines of its own: on a log
    /// written straight onto its device, an append writes only the
    /// lock's first line (the lock's word and the placing fields that
    /// follow it, `State` being `repr(C)`), which moves between the
    /// appenders' CPUs at every append; a second line written each time
    /// was a second move (BENCHMARKS.md, session 29).
    st: Padded<Mutex<State>>,
    /// Waiters for flush number k sleep on `cv[k % 2]`: the end of a
    /// flush wakes the threads whose records it made durable, not those
    /// whose records wait for the next one.
    cv: [Condvar; 2],
    /// Flushes completed (raised under the lock): spinning waiters watch it
    /// without taking the lock.
    flushes_done: AtomicU64,
    /// Waiters spinning now (see `dev::spin_slot`).
    spinners: AtomicU32,
    /// The next record's sequence number, mirrored (stored under the lock
    /// at each append): an appender that waits for a follower on fast
    /// media watches it without the lock.
    appended: AtomicU64,
    /// A would-be flusher gathering followers waits here; the append that
    /// brings the flush set to the size it waits for wakes it.
    joined: Condvar,
    /// The largest record of a plain and of a mirrored generation.
    max_rec: (u64, u64),
    /// The device takes writes of any bytes ([`Device::write_bytes`]:
    /// memory, a file mapped in it): each append places its record under
    /// the lock and frames it straight onto the device, with no image in
    /// between (`Mlog::place_direct`, `Mlog::write_placed`).
    direct: bool,
    /// Flushes are made under the lock (the flush cost is at most
    /// [`INLINE_MAX_NS`]): appenders spin briefly for the lock.
    inline: std::sync::atomic::AtomicBool,
    /// The end of the appended records (`State::end`) for
    /// [`Device::will_write`] before the lock: on a log written straight
    /// onto its device, mirrored only when an append crosses into another
    /// [`ANNOUNCE_STEP`] (the announcement goes [`WILL_WRITE_AHEAD`] past
    /// it, so a hint up to a step behind costs nothing), so that appenders
    /// do not write one more line in common at every append.
    end_hint: AtomicU64,
    /// How far [`Device::will_write`] was told of the writes to come
    /// (from the data area's start), on a log written straight onto its
    /// device: each append announces only what lies past it.
    announced: AtomicU64,
    /// `State::durable_seq` of a log written straight onto its device,
    /// mirrored: appenders waiting for the records before theirs watch it
    /// without the lock.
    /// On lines of its own: waiters spin reading it while appenders write
    /// the counters around it.
    durable_hint: Padded<AtomicU64>,
    /// A log written straight onto its device: slot `seq % RING` tracks
    /// record `seq` while it is in flight ([`Slot`]). The writer of a
    /// record marks it there and moves `durable_hint` over every record
    /// marked from there on, without the log's lock: an append takes the
    /// lock once, to place its record (each slot on lines of its own: the
    /// writers of neighbouring records share no line). Empty otherwise.
    ring: Box<[Padded<Slot>]>,
    /// The generation (`State::gen`) of a log written straight onto its
    /// device, mirrored: a helper writes a record only of the current one
    /// (see [`Mlog::help`]).
    gen_hint: AtomicU64,
    /// Threads asleep in [`Mlog::wait_direct`]: a writer that moved
    /// `durable_hint` takes the lock to wake them only when there are.
    sleeping: AtomicU32,
    /// A log written straight onto its device places its records with a
    /// compare and swap of this word while it is open
    /// ([`Mlog::place_free`]); closed, under the lock (`State` then says
    /// where the next record goes). See [`head`].
    head: Padded<head::Head>,
    /// `head` is used: a log written straight onto its device, on a
    /// machine with a 16-byte compare and swap.
    lockfree: bool,
    /// What a record placed with `head` takes from the generation and
    /// epoch, which change only while `head` is closed: the epoch (low 32
    /// bits), mirrored (bit 32), padded (bit 33). Stored before `head`
    /// opens.
    layout: AtomicU64,
    /// Records placed with `head` (tests: that the path runs).
    #[cfg(test)]
    placed_free: AtomicU64,
}

/// One record in flight in a log written straight onto its device (slot
/// `seq % RING` of [`Mlog::ring`]).
///
/// Its appender writes it without the lock; one preempted before it is
/// done would hold back every record placed after it (a record is durable
/// only with all before it), for a scheduler's turn: milliseconds, with
/// more appenders than CPUs. So the record's placement and payload stay
/// published in `job` until its appender is done, and a waiter that sees
/// the record stay unwritten for [`HELP_AFTER_NS`] writes it itself
/// ([`Mlog::help`]): the same bytes at the same place, whoever is first.
/// The counters keep what the two need alive: the appender's slices until
/// no helper reads them, and the ring's marks until no writer of an old
/// generation can set one ([`Mlog::erase_with`]).
#[derive(Debug, Default)]
struct Slot {
    /// `seq + 1` once record `seq` is written.
    written: AtomicU64,
    /// Where record `seq` ends, tagged with the low 16 bits of `seq`
    /// ([`slot_end`]): set when it is placed, read by [`Mlog::catch_up`],
    /// which takes it only for the record it wants (a record placed with
    /// [`Mlog::head`] may take the slot over meanwhile).
    end: AtomicU64,
    /// The record's [`Job`] while its appender may still need a helper
    /// (null otherwise).
    job: AtomicPtr<()>,
    /// Appenders writing and marking a record of this slot (counted under
    /// the lock, when the record is placed).
    owners: AtomicU32,
    /// Helpers reading a `job` of this slot, writing and marking its record
    /// (counted before they look at `job`).
    helpers: AtomicU32,
}

/// What a helper needs to write a placed record for its appender: the
/// placement, and the payload (the appender's own slices).
#[derive(Clone, Copy)]
struct Job<'a> {
    placed: Placed,
    parts: &'a [&'a [u8]],
}

/// An appender's record published in its [`Slot`] (counted in `owners`,
/// its [`Job`] in `job`). Dropped (also when the append fails or
/// unwinds): the appender no longer writes (`owners`), the job is taken
/// back, and the drop returns only once no helper reads it: the slices it
/// points to are the caller's.
struct Published<'a> {
    slot: &'a Slot,
    job: *mut (),
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        self.slot.owners.fetch_sub(1, Ordering::SeqCst);
        // A later record of the slot may have replaced the job already.
        let _ = self.slot.job.compare_exchange(
            self.job,
            std::ptr::null_mut(),
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        // A helper counts itself before it reads `job` (both sequentially
        // consistent): one that read this job is seen here.
        wait_for_zero(&self.slot.helpers);
    }
}

/// Wait (spinning, then yielding the CPU) until `c` is 0: a thread
/// between two steps that take well under a microsecond, unless it was
/// preempted.
fn wait_for_zero(c: &AtomicU32) {
    let mut n = 0u32;
    while c.load(Ordering::SeqCst) != 0 {
        n = n.saturating_add(1);
        if n < 256 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// Slots of [`Mlog::ring`]: records placed and not yet durable at
/// once. Each belongs to an appender waiting for it, so more only when
/// more threads append at once; the placing appender then waits.
#[cfg(not(test))]
const RING: u64 = 64;
/// Few in unit tests, so that appenders fill them.
#[cfg(test)]
const RING: u64 = 4;

fn check_extent(dev: &dyn Device, extent: &Range<u64>) -> Result<Geom> {
    let bs = u64::from(dev.sector());
    let bad = |reason: &str| MlogError::BadExtent {
        start: extent.start,
        end: extent.end,
        reason: reason.to_string(),
    };
    if !extent.start.is_multiple_of(bs) || !extent.end.is_multiple_of(bs) {
        return Err(bad("not aligned to the device's sector size"));
    }
    if extent.end > dev.size() || extent.start >= extent.end {
        return Err(bad("empty or past the end of the device"));
    }
    let blocks = (extent.end - extent.start) / bs;
    if blocks < 3 {
        return Err(bad("too small: needs at least 3 blocks"));
    }
    let nblocks = blocks - 2;
    if nblocks > u64::from(u32::MAX) {
        return Err(bad("too large: at most 2^32-1 data blocks"));
    }
    Ok(Geom { bs, nblocks })
}

impl Mlog {
    internals_pub! {
        /// Format a new, empty log in `extent` and open it.
        ///
        /// The first generation is random (below 2^48), so that records an
        /// earlier log with the same id left in the extent are never taken for
        /// this log's.
        fn create(dev: Arc<dyn Device>, extent: Range<u64>, id: u64) -> Result<Mlog> {
            Mlog::create_with(dev, extent, id, false)
        }
    }

    internals_pub! {
        /// [`Mlog::create`], mirrored or not: a mirrored log writes every
        /// record twice, back to back, in the same flush set, so that one
        /// damaged copy of a durable record never loses it
        /// (docs/format.md, "Mirrored logs").
        fn create_with(
            dev: Arc<dyn Device>,
            extent: Range<u64>,
            id: u64,
            mirrored: bool,
        ) -> Result<Mlog> {
            let geom = check_extent(dev.as_ref(), &extent)?;
            let hdr = LogHeader {
                log_id: id,
                gen: 1 + (rand::random::<u64>() >> 16),
                epoch: 1,
                block_size: geom.bs as u32,
                nblocks: geom.nblocks,
                mirrored,
                padded: !mirrored,
            };
            let bs = geom.bs as usize;
            let mut reqs = Vec::new();
            for slot in 0..2u64 {
                let mut b = dev.alloc_buf(bs);
                hdr.encode(&mut b);
                reqs.push(IoReq::write(extent.start + slot * geom.bs, b));
            }
            submit_all(dev.as_ref(), reqs)?;
            dev.flush()?;
            Ok(Mlog::from_parts(dev, id, extent.start, geom, hdr, 0, None))
        }
    }

    internals_pub! {
        /// Open an existing log: find the newest valid header, run the recovery
        /// scan and position appends after the last valid record.
        ///
        /// A log whose scan found corruption opens anyway: readers return its
        /// valid records and then [`MlogError::Corrupt`]; appends are refused
        /// until the log is erased.
        fn open(dev: Arc<dyn Device>, extent: Range<u64>, id: u64) -> Result<Mlog> {
            let geom = check_extent(dev.as_ref(), &extent)?;
            let (hdr, slot, other) = read_header(dev.as_ref(), extent.start, geom, id)?;
            let base = extent.start + 2 * geom.bs;
            let mut src = DevBlocks::new(dev.as_ref(), base, geom, geom.nblocks);
            let view = LogView {
                g: geom,
                log_id: id,
                gen: hdr.gen,
                mirrored: hdr.mirrored,
                padded: hdr.padded,
            };
            let res = scan::scan(&mut src, &view)?;
            if res.repaired > 0 {
                tracing::warn!(
                    "mlog {id:#x}: {} records read from their second copy (the first is damaged)",
                    res.repaired
                );
            }
            let mut log = Mlog::from_parts(dev, id, extent.start, geom, hdr, slot, Some(&res));
            if let Some(why) = other {
                tracing::warn!("mlog {id:#x}: header {why}");
                if let Ok(st) = log.st.get_mut() {
                    st.damaged_slot = Some((1 - slot, why));
                }
            }
            // The tail block's bytes before the end are rewritten by the next flush.
            let st = log.st.get_mut().map_err(|_| MlogError::Failed {
                reason: "lock poisoned".into(),
            })?;
            if st.end % geom.bs != 0 {
                let tb = st.end / geom.bs;
                let mut b = log.dev.alloc_buf(geom.bs as usize);
                log.dev.read_at(base + tb * geom.bs, &mut b)?;
                let keep = (st.end % geom.bs) as usize;
                st.buf.clear();
                st.buf.extend(b.get(..keep).unwrap_or(&[]));
                st.buf.grow(geom.bs as usize);
            }
            Ok(log)
        }
    }

    fn from_parts(
        dev: Arc<dyn Device>,
        id: u64,
        start: u64,
        geom: Geom,
        hdr: LogHeader,
        slot: u8,
        scan: Option<&ScanResult>,
    ) -> Mlog {
        let (end, next_seq, epoch, hdr_durable, corrupt) = match scan {
            None => (0, 0, Some(hdr.epoch), true, None),
            Some(s) => (
                s.end,
                s.last.map_or(0, |l| l.seq.saturating_add(1)),
                hdr.epoch.max(s.max_epoch).checked_add(1),
                false,
                s.corrupt.clone(),
            ),
        };
        let epochs_exhausted = epoch.is_none();
        let epoch = epoch.unwrap_or(u32::MAX);
        let next_seq_hint = next_seq;
        let st = State {
            gen: hdr.gen,
            mirrored: hdr.mirrored,
            padded: hdr.padded && !hdr.mirrored,
            epoch,
            hdr_durable,
            newest_slot: slot,
            newest_hdr: hdr,
            damaged_slot: None,
            next_seq,
            fseq: 1,
            batch_first: None,
            end,
            buf: Image::new(geom.bs as usize),
            buf_block: end / geom.bs,
            spare: None,
            written_end: end,
            durable_seq: next_seq,
            unflushed: None,
            flushing: false,
            flush_no: 0,
            inflight_seq: 0,
            sleepers: [0; 2],
            last_set_records: 0,
            flush_ns: FLUSH_NS_INIT,
            inside: 0,
            peak_inside: 0,
            gathering: false,
            follow_misses: 0,
            follow_skip: 0,
            #[cfg(test)]
            follow_wait_ns: None,
            #[cfg(test)]
            fixed_flush_ns: None,
            gather_want: 0,
            failed: None,
            corrupt,
            epochs_exhausted,
            open_tail: scan.and_then(|s| s.last.map(|l| l.batch_first())),
            head_open: false,
        };
        let end = st.end;
        // A write of no bytes tells whether the device takes any bytes.
        let direct = dev.write_bytes(0, &[]).is_some();
        if direct {
            // Appenders write straight onto the device, the whole extent
            // over the log's life: what the device can make for those
            // writes it makes now, not under their feet (a mapped file's
            // page tables: appenders that fault them in, or that catch up
            // with the thread making them, wait, and a record everyone
            // waits for waits with them: BENCHMARKS.md, session 26).
            dev.prepare_writes(start + 2 * geom.bs, geom.size());
        }
        Mlog {
            direct,
            dev,
            id,
            start,
            geom,
            st: Padded(Mutex::new(st)),
            cv: [Condvar::new(), Condvar::new()],
            flushes_done: AtomicU64::new(0),
            appended: AtomicU64::new(0),
            spinners: AtomicU32::new(0),
            joined: Condvar::new(),
            inline: std::sync::atomic::AtomicBool::new(false),
            end_hint: AtomicU64::new(end),
            announced: AtomicU64::new(0),
            durable_hint: Padded(AtomicU64::new(next_seq_hint)),
            ring: if direct {
                (0..RING).map(|_| Padded(Slot::default())).collect()
            } else {
                Box::new([])
            },
            gen_hint: AtomicU64::new(hdr.gen),
            sleeping: AtomicU32::new(0),
            head: Padded(head::Head::new(head::CLOSED_WORD)),
            lockfree: direct && head::Head::lock_free() && geom.size() < head::END_LIMIT,
            layout: AtomicU64::new(0),
            #[cfg(test)]
            placed_free: AtomicU64::new(0),
            max_rec: (
                geom.max_record().min(u64::from(u32::MAX)),
                geom.max_record_mirrored()
                    .min(MIRRORED_MAX_RECORD)
                    .min(u64::from(u32::MAX)),
            ),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        let mut g = crate::lock::lock(&self.st.0);
        self.catch_up(&mut g);
        g
    }

    /// The lock, [`Mlog::head`] closed: `State` says where the next record
    /// goes (tests).
    #[cfg(test)]
    fn frozen(&self) -> MutexGuard<'_, State> {
        let mut g = self.lock();
        self.freeze(&mut g);
        g
    }

    fn base(&self) -> u64 {
        self.start + 2 * self.geom.bs
    }

    /// The log's identifier.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The current generation.
    pub fn gen(&self) -> u64 {
        self.lock().gen
    }

    /// Bytes of the data area in use (records, framing, padding), including
    /// appends not yet flushed.
    pub fn len(&self) -> u64 {
        // Open, the head says (without the lock); closed, the state under
        // the lock does, unless the head opened meanwhile.
        if let Some(o) = self.open_head() {
            return o.end;
        }
        let g = self.lock();
        if g.head_open {
            // Only the lock's holder closes it.
            if let Some(o) = self.open_head() {
                return o.end;
            }
        }
        g.end
    }

    /// True when the log holds no record.
    pub fn is_empty(&self) -> bool {
        self.records() == 0
    }

    /// Number of records in the log (including appends not yet flushed).
    pub fn records(&self) -> u64 {
        if let Some(n) = self.open_next_seq() {
            return n;
        }
        self.next_seq_now(&self.lock())
    }

    /// [`Mlog::head`]'s fields, when it is open.
    fn open_head(&self) -> Option<head::Open> {
        if !self.lockfree {
            return None;
        }
        head::Open::unpack(self.head.load())
    }

    /// The next record's sequence number, from [`Mlog::head`] when it is
    /// open.
    fn open_next_seq(&self) -> Option<u64> {
        if !self.lockfree {
            return None;
        }
        loop {
            // The word's next record lies between the durable counter
            // before it and RING past the counter after it: within 2^16
            // of the first, unless that many records became durable
            // between the two looks (then look again).
            let d1 = self.durable_hint.load(Ordering::SeqCst);
            let w = self.head.load();
            let d2 = self.durable_hint.load(Ordering::SeqCst);
            let o = head::Open::unpack(w)?;
            if d2 - d1 < (1 << 16) - RING {
                return Some(o.seq(d1));
            }
        }
    }

    /// The next record's sequence number, the lock held: `State`'s, or
    /// [`Mlog::head`]'s while that is open.
    fn next_seq_now(&self, g: &State) -> u64 {
        if g.head_open {
            // Only the lock's holder closes it.
            if let Some(n) = self.open_next_seq() {
                return n;
            }
        }
        g.next_seq
    }

    /// Bytes of the data area (the most [`Mlog::len`] can reach).
    pub fn capacity(&self) -> u64 {
        self.geom.size()
    }

    /// The largest record an empty log can hold (in a mirrored log, two
    /// copies of it, and at most 1 MiB).
    pub fn max_record(&self) -> u64 {
        let mirrored = self.lock().mirrored;
        self.max_for(mirrored)
    }

    fn max_for(&self, mirrored: bool) -> u64 {
        if mirrored {
            self.max_rec.1
        } else {
            self.max_rec.0
        }
    }

    /// Whether every record is written twice (docs/format.md, "Mirrored logs").
    pub fn is_mirrored(&self) -> bool {
        self.lock().mirrored
    }

    /// The first record of the flush set that was the log's last when it
    /// was opened: from it up to the end the open found, records may have
    /// been written without their flush ever completing (a crash in
    /// flight). Every earlier record was durable before any of these was
    /// written. `None` for a log that was created, empty, or erased since.
    pub fn open_tail(&self) -> Option<Lsn> {
        self.lock().open_tail.map(Lsn)
    }

    /// The corruption the open scan found, if any: `(offset, reason)`.
    pub fn corruption(&self) -> Option<(u64, String)> {
        self.lock().corrupt.clone()
    }

    /// Append one record. With `sync`, returns only once the record (and
    /// every record before it) is durable.
    pub fn append(&self, record: &[u8], sync: bool) -> Result<Lsn> {
        self.append_v(&[record], sync)
    }

    /// Append one record made of the concatenation of `parts`.
    pub fn append_v(&self, parts: &[&[u8]], sync: bool) -> Result<Lsn> {
        let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        if self.direct {
            // Whatever the device can do ahead for the writes at the log's
            // end (a mapped file's page tables) it starts here, before the
            // lock (the end read without it: a hint).
            let at = self.end_hint.load(Ordering::Relaxed);
            let to = self.geom.size().min(at.saturating_add(WILL_WRITE_AHEAD));
            let from = self.announced.load(Ordering::Relaxed).max(at);
            // In steps of a MiB (or the rest of the extent): the
            // announcement is a write of a line the other appenders read.
            if (to >= from + ANNOUNCE_STEP || (to == self.geom.size() && to > from))
                && self.announced.fetch_max(to, Ordering::Relaxed) < to
            {
                self.dev.will_write(self.base() + from, to - from);
            }
            let free = if self.lockfree {
                self.place_free(len)
            } else {
                None
            };
            let placed = match free {
                Some(r) => r?,
                None => self.place_locked(len)?,
            };
            let seq = placed.seq;
            if placed.prev_end / ANNOUNCE_STEP != placed.end / ANNOUNCE_STEP {
                self.end_hint.store(placed.end, Ordering::Relaxed);
            }
            let job = Job { placed, parts };
            let slot = self.slot(seq);
            // (Counted in `owners` by the placement.)
            let published = Published {
                slot,
                job: std::ptr::from_ref(&job).cast_mut().cast(),
            };
            slot.job.store(published.job, Ordering::SeqCst);
            let mut p = placed;
            let r = self.write_placed(&mut p, parts).map(|()| self.mark_written(seq));
            drop(published);
            self.written_or_failed(r)?;
            // Wait without the lock while records keep becoming durable
            // (a record's durability is its mark and every earlier one:
            // a failed write marks nothing, and its waiters go on to the
            // lock, where the failure is).
            for _ in 0..SPIN_ROUNDS {
                if self.durable_hint.load(Ordering::Acquire) > seq {
                    return Ok(Lsn(seq));
                }
                if !self.spin_helping(seq, Duration::from_nanos(SPIN_MAX_NS))
                    && self.durable_hint.load(Ordering::Acquire) <= seq
                {
                    break;
                }
            }
            if self.durable_hint.load(Ordering::Acquire) > seq {
                return Ok(Lsn(seq));
            }
            let (_g, r) = self.wait_direct(self.lock(), seq);
            return r.map(|()| Lsn(seq));
        }
        let mut g = if self.inline.load(Ordering::Relaxed) {
            crate::lock::lock_spin(
                &self.st.0,
                &self.spinners,
                Duration::from_nanos(LOCK_SPIN_NS),
            )
        } else {
            self.lock()
        };
        let max = self.max_for(g.mirrored);
        if len > max {
            return Err(MlogError::RecordTooLarge { len, max });
        }
        usable(&g)?;
        let seq = self.encode(&mut g, parts, len)?;
        self.appended.store(g.next_seq, Ordering::Release);
        self.end_hint.store(g.end, Ordering::Relaxed);
        if g.gathering && g.batch_first.is_some_and(|f| g.next_seq - f >= g.gather_want) {
            self.joined.notify_one();
        }
        if sync || g.end.saturating_sub(g.written_end) >= ASYNC_FLUSH_BYTES {
            let (_g, r) = self.wait_durable(g, seq);
            r?;
        }
        Ok(Lsn(seq))
    }

    /// Write every appended record and make it durable.
    pub fn flush(&self) -> Result<()> {
        let g = self.lock();
        if let Some(f) = &g.failed {
            return Err(MlogError::Failed { reason: f.clone() });
        }
        let next = self.next_seq_now(&g);
        if next == 0 || g.durable_seq >= next {
            return Ok(());
        }
        let (_g, r) = self.wait_durable(g, next - 1);
        r
    }

    /// Same as [`Mlog::flush`].
    pub fn sync(&self) -> Result<()> {
        self.flush()
    }

    /// Erase the log: every record goes away. The generation rises to at
    /// least `min_gen` (and at least by one). Pending appends are flushed
    /// first. Durable when it returns.
    pub fn erase(&self, min_gen: u64) -> Result<u64> {
        let mirrored = self.lock().mirrored;
        self.erase_with(min_gen, mirrored)
    }

    /// [`Mlog::erase`], and the new generation is mirrored or not (the
    /// header flag is per generation).
    pub fn erase_with(&self, min_gen: u64, mirrored: bool) -> Result<u64> {
        let mut g = self.lock();
        self.freeze(&mut g);
        if let Some(f) = &g.failed {
            return Err(MlogError::Failed { reason: f.clone() });
        }
        if g.corrupt.is_none() && g.next_seq > 0 && g.durable_seq < g.next_seq {
            let seq = g.next_seq - 1;
            let (g2, r) = self.wait_durable(g, seq);
            g = g2;
            r?;
            // Appends placed while it waited (without the lock) may
            // have opened the head again.
            self.freeze(&mut g);
        }
        while g.flushing {
            g = self.sleep(g);
        }
        let Some(gen) = g.gen.checked_add(1).map(|n| n.max(min_gen)) else {
            return Err(MlogError::Exhausted {
                counter: "generation",
            });
        };
        let hdr = LogHeader {
            log_id: self.id,
            gen,
            epoch: 1,
            block_size: self.geom.bs as u32,
            nblocks: self.geom.nblocks,
            mirrored,
            // A log made padded stays padded; one made by older code
            // stays readable by it.
            padded: !mirrored && g.padded,
        };
        // Both copies, one at a time, each followed by a flush.
        let first = 1 - g.newest_slot;
        let r = (|| -> Result<()> {
            for slot in [first, 1 - first] {
                self.write_header(slot, &hdr)?;
                self.dev.flush()?;
            }
            Ok(())
        })();
        if let Err(e) = r {
            g.failed = Some(e.to_string());
            return Err(e);
        }
        g.gen = gen;
        g.mirrored = mirrored;
        g.padded = hdr.padded;
        g.epoch = 1;
        g.hdr_durable = true;
        g.newest_slot = 1 - first;
        g.newest_hdr = hdr;
        g.damaged_slot = None;
        g.next_seq = 0;
        g.open_tail = None;
        g.fseq = 1;
        g.batch_first = None;
        g.end = 0;
        self.end_hint.store(0, Ordering::Relaxed);
        self.announced.store(0, Ordering::Relaxed);
        g.buf.clear();
        g.buf_block = 0;
        g.written_end = 0;
        g.durable_seq = 0;
        // Nothing is in flight (every record was waited for above): the
        // marks of the old sequence numbers go before the numbers start
        // again, or a stale one would pass for a new record written. A
        // record's appender and a helper may both still be writing it
        // (the other one marked it): a helper that has not yet looked at
        // the generation sees the new one and leaves, and the others are
        // waited for (none needs the lock to finish).
        self.gen_hint.store(gen, Ordering::SeqCst);
        for s in self.ring.iter() {
            wait_for_zero(&s.owners);
            wait_for_zero(&s.helpers);
        }
        for s in self.ring.iter() {
            s.written.store(0, Ordering::Relaxed);
        }
        self.durable_hint.store(0, Ordering::Release);
        g.unflushed = None;
        g.corrupt = None;
        g.epochs_exhausted = false;
        Ok(gen)
    }

    /// A reader over every record from the start (flushes pending appends
    /// first, so it sees them).
    pub fn reader(&self) -> Result<MlogReader<'_>> {
        self.flush()?;
        let g = self.lock();
        let end = g.written_end;
        let limit = end.div_ceil(self.geom.bs);
        Ok(MlogReader {
            src: DevBlocks::new(self.dev.as_ref(), self.base(), self.geom, limit),
            view: LogView {
                g: self.geom,
                log_id: self.id,
                gen: g.gen,
                mirrored: g.mirrored,
                padded: g.padded,
            },
            end,
            chain: Chain::new(end),
            corrupt: g.corrupt.clone(),
            done: false,
        })
    }

    internals_pub! {
        /// The device bytes the last flush set of the log wrote: every data
        /// block from the one where the flush set began (the end of the
        /// records before it) to the one holding the end, block headers
        /// included. None for an empty log. Flushes pending appends first.
        /// For tests that damage a log's last flush set.
        fn last_flush_set(&self) -> Result<Option<Range<u64>>> {
            let mut rd = self.reader()?;
            let mut starts = Vec::new();
            loop {
                match rd.chain.next(&mut rd.src, &rd.view, false)? {
                    Step::Rec { hdr, at, .. } => starts.push((hdr.seq, at)),
                    Step::End => break,
                    Step::Stop { at, why } => {
                        return Err(MlogError::Corrupt {
                            offset: at,
                            reason: why.to_string(),
                        })
                    }
                }
            }
            let Some(last) = rd.chain.last else {
                return Ok(None);
            };
            let first = last.batch_first();
            let Some(&(_, from)) = starts.iter().find(|(s, _)| *s == first) else {
                return Ok(None);
            };
            let bs = self.geom.bs;
            let base = self.base();
            Ok(Some(
                base + (from / bs) * bs..base + rd.end.div_ceil(bs) * bs,
            ))
        }
    }

    /// A reader positioned after the first `skip` records.
    pub fn seek_read(&self, skip: u64) -> Result<MlogReader<'_>> {
        let mut r = self.reader()?;
        r.seek(skip)?;
        Ok(r)
    }

    /// The header copy found damaged at open and not rewritten since:
    /// (slot, what is wrong). The log works on its other copy; the next
    /// header update (the first flush of an epoch, an erase) or
    /// [`Mlog::repair_header`] rewrites it.
    pub fn header_damage(&self) -> Option<(u8, String)> {
        self.lock().damaged_slot.clone()
    }

    /// Rewrite a damaged header copy with the newest one (then flush), so
    /// that the log has two good copies again. Returns what was repaired;
    /// `None` when there was nothing to repair, or a flush is writing
    /// headers right now (the copy is then rewritten by it, or later).
    pub fn repair_header(&self) -> Result<Option<(u8, String)>> {
        let mut g = self.lock();
        let Some((slot, why)) = g.damaged_slot.clone() else {
            return Ok(None);
        };
        if g.flushing || slot == g.newest_slot {
            return Ok(None);
        }
        let hdr = g.newest_hdr;
        self.write_header(slot, &hdr)?;
        self.dev.flush()?;
        g.damaged_slot = None;
        Ok(Some((slot, why)))
    }

    fn write_header(&self, slot: u8, hdr: &LogHeader) -> Result<()> {
        let mut b = self.dev.alloc_buf(self.geom.bs as usize);
        hdr.encode(&mut b);
        self.dev
            .write_at(self.start + u64::from(slot) * self.geom.bs, &mut b)?;
        Ok(())
    }

    /// Frame a record into the buffer (twice in a mirrored log); returns its seq.
    /// Where a record of `len` bytes appended at `at` goes: its header,
    /// the end of its first copy, its second copy's header (mirrored) and
    /// where it ends; `LogFull` when it does not fit.
    fn place(&self, st: &State, at: u64, len: u64) -> Result<(u64, u64, Option<u64>, u64)> {
        self.place_at(st.mirrored, st.padded, at, len)
    }

    /// [`Mlog::place`] in a generation mirrored or not, padded or not.
    fn place_at(
        &self,
        mirrored: bool,
        padded: bool,
        at: u64,
        len: u64,
    ) -> Result<(u64, u64, Option<u64>, u64)> {
        let g = self.geom;
        let free = g.size().saturating_sub(at);
        let copies = if mirrored { 2 } else { 1 };
        let full = || MlogError::LogFull {
            need: copies * (len + REC_HDR_LEN),
            free,
        };
        let h = g.next_hdr(at, len, padded).ok_or_else(full)?;
        let end1 = g.rec_end(h, len).ok_or_else(full)?;
        let (copy, end) = if mirrored {
            let h2 = g.hdr_pos(end1).ok_or_else(full)?;
            (Some(h2), g.rec_end(h2, len).ok_or_else(full)?)
        } else {
            (None, end1)
        };
        if end > g.size() {
            return Err(full());
        }
        Ok((h, end1, copy, end))
    }

    fn encode(&self, st: &mut State, parts: &[&[u8]], len: u64) -> Result<u64> {
        let g = self.geom;
        let bs = g.bs;
        let (h, end1, copy, end) = self.place(st, st.end, len)?;
        let full = || MlogError::LogFull {
            need: len + REC_HDR_LEN,
            free: g.size().saturating_sub(st.end),
        };
        let seq = st.next_seq;
        let bdelta = match st.batch_first {
            Some(f) => u32::try_from(seq - f).map_err(|_| full())?,
            None => 0,
        };
        let hdr = self.record_header(st, len, bdelta, parts);
        if h / bs > st.end / bs
            && st.end == st.written_end
            && st.buf_block == st.end / bs
            && st.buf.len() >= bs as usize
        {
            // The record starts in a later block than the one where the
            // log ends, and that block holds nothing unwritten: the next
            // flush need not write it again.
            st.buf.drop_front(bs as usize);
            st.buf_block += 1;
        }
        let need = ((end.div_ceil(bs) - st.buf_block) * bs) as usize;
        st.buf.grow(need);
        self.frame(st, &hdr, st.end, h, parts);
        if let Some(h2) = copy {
            // The second copy, byte for byte the same record, right after.
            self.frame(st, &hdr, end1, h2, parts);
        }
        st.next_seq += 1;
        st.end = end;
        if st.batch_first.is_none() {
            st.batch_first = Some(seq);
        }
        Ok(seq)
    }

    /// The header of the next record (seq `next_seq`, the open flush set)
    /// of `len` bytes made of `parts`, its checksum computed.
    fn record_header(&self, st: &State, len: u64, bdelta: u32, parts: &[&[u8]]) -> RecordHeader {
        let mut hdr = record_fields(st, len, bdelta);
        self.checksum(&mut hdr, parts);
        hdr
    }

    /// Compute `hdr`'s checksum over its fields and `parts`.
    fn checksum(&self, hdr: &mut RecordHeader, parts: &[&[u8]]) {
        let mut crc = hdr.crc_start(self.id);
        for p in parts {
            crc = crate::crc::crc32c_append(crc, p);
        }
        hdr.crc = crc;
    }

    /// Write one copy of a record, header at `h`, into the buffer (which
    /// holds it already); `prev_end` is where the records before it end.
    fn frame(&self, st: &mut State, hdr: &RecordHeader, prev_end: u64, h: u64, parts: &[&[u8]]) {
        let from = st.buf_block * self.geom.bs;
        let gen = st.gen;
        let buf = &mut st.buf;
        // Copies into memory: nothing fails.
        let _ = self.frame_with(gen, hdr, prev_end, h, parts, &mut |pos, bytes| {
            let o = (pos - from) as usize;
            if let Some(d) = buf.bytes_mut().get_mut(o..o + bytes.len()) {
                d.copy_from_slice(bytes);
            }
            Ok(())
        });
    }

    /// The bytes of one copy of a record of generation `gen`, header at
    /// `h` (`prev_end`: where the records before it end), handed to `put`
    /// as (position in the data area, bytes) in order: the block headers
    /// the record starts, its header, its payload piece by piece (the
    /// caller's slices, not copied). The first error `put` returns ends it.
    fn frame_with(
        &self,
        gen: u64,
        hdr: &RecordHeader,
        prev_end: u64,
        h: u64,
        parts: &[&[u8]],
        put: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let g = self.geom;
        let bs = g.bs;
        let len = u64::from(hdr.len);
        let Some(end) = g.rec_end(h, len) else {
            return Ok(());
        };
        let hb = h / bs;
        let blk_hdr = |b: u64, first_rec: u32, put: &mut dyn FnMut(u64, &[u8]) -> Result<()>| {
            let bh = BlockHeader {
                log_id: self.id,
                gen,
                block_no: b as u32,
                first_rec,
            };
            let mut out = [0u8; BLK_HDR_LEN as usize];
            bh.encode(&mut out);
            put(b * bs, &out)
        };
        if prev_end <= hb * bs {
            blk_hdr(hb, BLK_HDR_LEN as u32, put)?;
        }
        let mut out = [0u8; REC_HDR_LEN as usize];
        hdr.encode(&mut out);
        put(h, &out)?;
        let last_block = (end - 1) / bs;
        let mut cur = Cursor {
            parts,
            i: 0,
            off: 0,
        };
        for (b, off, n) in payload_pieces(&g, h, len) {
            if b != hb {
                let first = if b == last_block {
                    g.first_rec_after(end)
                } else {
                    0
                };
                blk_hdr(b, first, put)?;
            }
            let mut at = b * bs + off as u64;
            cur.take(n, &mut |piece| {
                let r = put(at, piece);
                at += piece.len() as u64;
                r
            })?;
        }
        Ok(())
    }

    /// Wait until record `seq` is durable, becoming the flusher when nobody is.
    ///
    /// Group commit adapts to the device's flush cost (both measured as
    /// moving averages): a would-be flusher lets other appenders join its
    /// flush set only when there are others (the last flush set held more
    /// than one record) and a flush costs more than the wait for them; a
    /// thread waiting for someone else's flush spins when that flush is
    /// expected to end sooner than a sleep and wake-up would take, and
    /// sleeps otherwise.
    fn wait_durable<'a>(
        &'a self,
        mut g: MutexGuard<'a, State>,
        seq: u64,
    ) -> (MutexGuard<'a, State>, Result<()>) {
        g.inside += 1;
        g.peak_inside = g.peak_inside.max(g.inside);
        let (mut g, r) = self.wait_durable_in(g, seq);
        g.inside -= 1;
        (g, r)
    }

    fn wait_durable_in<'a>(
        &'a self,
        mut g: MutexGuard<'a, State>,
        seq: u64,
    ) -> (MutexGuard<'a, State>, Result<()>) {
        if self.direct {
            return self.wait_direct(g, seq);
        }
        let mut gathered = false;
        loop {
            if let Some(r) = settled(&g, seq) {
                return (g, r);
            }
            if !g.flushing {
                if g.flush_ns <= SPIN_MAX_NS {
                    // Fast media: a flush costs less than a sleep, so the
                    // appender that finds no flush in progress writes and
                    // flushes at once, itself; followers join a flush set
                    // that is open while a flush is in progress. Alone in
                    // its set while other sync appenders are around, it
                    // first spins (on a CPU of its own) for half a flush's
                    // cost for one of them to append: the next appender
                    // then flushes both, one write of three pages instead
                    // of two of two (4 KiB records on memory).
                    if !gathered
                        && g.flush_ns > INLINE_MAX_NS
                        && g.peak_inside > 1
                        && g.batch_first.is_some_and(|f| g.next_seq - f < 2)
                    {
                        gathered = true;
                        if g.follow_skip > 0 {
                            g.follow_skip -= 1;
                        } else if crate::dev::spin_slot(&self.spinners) {
                            g = self.await_follower(g);
                            continue;
                        }
                    }
                    let (g2, r) = self.flush_once(g, true);
                    g = g2;
                    if let Err(e) = r {
                        return (g, Err(e));
                    }
                    continue;
                }
                // Group commit on slow media: before closing the flush set,
                // wait for the other sync appenders seen lately (often the
                // ones the last flush just woke) to join it, for at most
                // one flush's cost. Without the wait, appenders split into
                // two halves that take turns, each flush set holding half
                // of them: one flush per half instead of one for all.
                if g.gathering {
                    // Another appender gathers this set: its flush is next.
                    g = self.sleep_next(g);
                    continue;
                }
                if !gathered && g.last_set_records > 1 {
                    gathered = true;
                    g = self.gather(g);
                    continue;
                }
                let (g2, r) = self.flush_once(g, true);
                g = g2;
                if let Err(e) = r {
                    return (g, Err(e));
                }
                continue;
            }
            if g.flush_ns <= SPIN_MAX_NS && crate::dev::spin_slot(&self.spinners) {
                // Spin for up to twice a flush's expected cost, watching the
                // completion count without the lock (while a CPU is left
                // for the flusher).
                let budget = Duration::from_nanos(2 * g.flush_ns);
                let seen = self.flushes_done.load(Ordering::Acquire);
                drop(g);
                crate::dev::spin_until(budget, || {
                    self.flushes_done.load(Ordering::Acquire) != seen
                });
                self.spinners.fetch_sub(1, Ordering::AcqRel);
                g = self.lock();
                if self.flushes_done.load(Ordering::Acquire) != seen || !g.flushing {
                    continue;
                }
            }
            g = self.sleep_for(g, Some(seq));
        }
    }

    /// Wait (the flush set open, no flush in progress) until the open set
    /// holds as many records as there are sync appenders (`peak_inside`),
    /// for at most one flush's cost; a flush started meanwhile by another
    /// thread ends the wait. A wait that times out lowers the estimate to
    /// the appenders that came, so that a producer that went away costs
    /// one timed-out wait, not one per flush.
    fn gather<'a>(&'a self, mut g: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let open = |g: &State| g.batch_first.map_or(0, |f| g.next_seq - f);
        let want = u64::from(g.peak_inside);
        if open(&g) >= want {
            return g;
        }
        let deadline = Instant::now() + Duration::from_nanos(g.flush_ns);
        g.gathering = true;
        g.gather_want = want;
        loop {
            if open(&g) >= want || g.flushing || g.failed.is_some() {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                let came = u32::try_from(open(&g)).unwrap_or(u32::MAX);
                g.peak_inside = g.inside.max(came).max(1);
                break;
            }
            g = crate::lock::wait_timeout(&self.joined, g, deadline - now).0;
        }
        g.gathering = false;
        g
    }

    /// Spin (the caller holds a spinning slot) for half a flush's cost until
    /// another record is appended or a flush starts or ends; one that does
    /// not come lowers the count of sync appenders seen (`peak_inside`) to
    /// those inside now, so that a lone appender pays one wait, not one per
    /// flush, and lets the next `2^misses` chances to wait go by (misses in
    /// a row, at most 64).
    fn await_follower<'a>(&'a self, g: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        #[cfg(not(test))]
        let budget = Duration::from_nanos(g.flush_ns / 2);
        #[cfg(test)]
        let budget = Duration::from_nanos(g.follow_wait_ns.unwrap_or(g.flush_ns / 2));
        let flushes = self.flushes_done.load(Ordering::Acquire);
        let appended = self.appended.load(Ordering::Acquire);
        drop(g);
        crate::dev::spin_until(budget, || {
            self.appended.load(Ordering::Acquire) != appended
                || self.flushes_done.load(Ordering::Acquire) != flushes
        });
        self.spinners.fetch_sub(1, Ordering::AcqRel);
        let mut g = self.lock();
        if self.appended.load(Ordering::Acquire) == appended && !g.flushing {
            g.peak_inside = g.inside.max(1);
            g.follow_skip = 1 << g.follow_misses.min(6);
            g.follow_misses = g.follow_misses.saturating_add(1);
        } else {
            g.follow_misses = 0;
        }
        g
    }

    /// Sleep until the next flush (none is in progress) ends.
    fn sleep_next<'a>(&'a self, g: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let no = g.flush_no + 1;
        self.sleep_until_flush(g, no)
    }

    /// Sleep on the condition variable of flush number `no` until it ends.
    fn sleep_until_flush<'a>(
        &'a self,
        mut g: MutexGuard<'a, State>,
        no: u64,
    ) -> MutexGuard<'a, State> {
        let k = (no % 2) as usize;
        g.sleepers[k] += 1;
        let mut g = crate::lock::wait(&self.cv[k], g);
        g.sleepers[k] -= 1;
        g
    }

    /// Sleep until a flush ends: the one in progress when it holds `seq`
    /// (or when `seq` is `None`), else the next one (which ends the sleep
    /// of one waiter at once when nobody else starts it).
    fn sleep_for<'a>(
        &'a self,
        g: MutexGuard<'a, State>,
        seq: Option<u64>,
    ) -> MutexGuard<'a, State> {
        let next = g.flushing && seq.is_some_and(|s| s >= g.inflight_seq);
        let no = g.flush_no + u64::from(next);
        self.sleep_until_flush(g, no)
    }

    /// Sleep until the flush in progress ends.
    fn sleep<'a>(&'a self, g: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.sleep_for(g, None)
    }

    /// Write everything appended so far as one flush set, then flush the
    /// device (without `dev_flush`, leave the set `unflushed`). A set
    /// written unflushed before is made durable first.
    fn flush_once<'a>(
        &'a self,
        g: MutexGuard<'a, State>,
        dev_flush: bool,
    ) -> (MutexGuard<'a, State>, Result<()>) {
        let pre_flush = g.unflushed.map(|(_, end)| end);
        if g.end == g.written_end {
            if pre_flush.is_some() {
                return self.flush_unflushed(g);
            }
            let mut g = g;
            g.durable_seq = g.durable_seq.max(g.next_seq);
            return (g, Ok(()));
        }
        if g.flush_ns <= INLINE_MAX_NS && dev_flush {
            let mut g = g;
            let r = self.flush_inline(&mut g);
            return (g, r);
        }
        let set = self.close_set(g);
        let t = self.flush_timer();
        let r = self.write_set(&set, dev_flush);
        let ns = t.map(|t| t.elapsed().as_nanos() as u64);
        self.end_set(set, r, ns, dev_flush)
    }

    /// Timing every flush would cost two clock reads per append on a
    /// single thread: the first flushes are timed and then one in
    /// [`FLUSH_SAMPLE`].
    fn flush_timer(&self) -> Option<Instant> {
        let done = self.flushes_done.load(Ordering::Relaxed);
        (done < 2 * FLUSH_SAMPLE || done.is_multiple_of(FLUSH_SAMPLE)).then(Instant::now)
    }

    /// Write a closed set (the header before it, when it has one), then
    /// flush the device (with `dev_flush`).
    fn write_set(&self, set: &SetWrite, dev_flush: bool) -> Result<()> {
        if set.pre_flush.is_some() {
            // The set written unflushed is durable before this one is
            // written.
            self.dev.flush()?;
        }
        if let Some((slot, h)) = &set.hdr {
            self.write_header(*slot, h)?;
            self.dev.flush()?;
        }
        let data = set.data();
        if data.len() <= SLICE_MAX {
            self.dev.write_slice(set.base, data)?;
        } else {
            // Large (async) flush sets: requests the device may run in
            // parallel.
            submit_all(self.dev.as_ref(), self.set_requests(set))?;
        }
        if dev_flush {
            self.dev.flush()?;
        }
        Ok(())
    }

    /// Write and flush the open set without letting go of the lock: on
    /// media where that costs about what handing the lock to another
    /// thread and back would (a file mapped in memory), appenders take
    /// turns on the lock, each writing its own record, instead of waiting
    /// for each other's flushes.
    fn flush_inline(&self, g: &mut State) -> Result<()> {
        let set = self.close_set_in(g);
        let t = self.flush_timer();
        let r = self.write_set(&set, true);
        let ns = t.map(|t| t.elapsed().as_nanos() as u64);
        self.end_set_in(g, set, &r, ns, true);
        r
    }

    /// Close the open flush set for writing (under the lock, which it
    /// releases): the log is `flushing` until [`Mlog::end_set`] reports
    /// the write's outcome; appends meanwhile go to the next set.
    fn close_set(&self, mut g: MutexGuard<'_, State>) -> SetWrite {
        self.close_set_in(&mut g)
    }

    /// [`Mlog::close_set`] on the state, the lock held.
    fn close_set_in(&self, g: &mut State) -> SetWrite {
        let snap_end = g.end;
        let snap_seq = g.next_seq;
        let pre_flush = g.unflushed.map(|(_, end)| end);
        g.flushing = true;
        g.flush_no += 1;
        if g.gathering {
            // Its wait is over: the set it gathered for is closing.
            self.joined.notify_one();
        }
        g.inflight_seq = snap_seq;
        let bs = self.geom.bs;
        let first_block = g.buf_block;
        let nbytes = ((snap_end.div_ceil(bs) - first_block) * bs) as usize;
        let base = self.base() + first_block * bs;
        // The flush writes straight from the image; appends meanwhile go
        // to the spare one, which starts with a copy of the partly filled
        // tail block (the next flush writes it again, the same bytes in
        // front of the new records).
        let spare = g
            .spare
            .take()
            .unwrap_or_else(|| Image::new(bs as usize));
        let out = std::mem::replace(&mut g.buf, spare);
        let tail = snap_end / bs;
        g.buf_block = tail;
        if !snap_end.is_multiple_of(bs) {
            let o = ((tail - first_block) * bs) as usize;
            g.buf
                .extend(out.bytes().get(o..o + bs as usize).unwrap_or(&[]));
        }
        let set_records = g.batch_first.map_or(0, |f| snap_seq - f);
        let hdr = (!g.hdr_durable).then(|| self.next_header(g));
        if g.batch_first.is_some() {
            g.batch_first = None;
            next_set(g);
        }
        SetWrite {
            snap_end,
            snap_seq,
            pre_flush,
            hdr,
            out,
            base,
            nbytes,
            set_records,
        }
    }

    /// The header a flush writes before the records of a new epoch or
    /// generation: (slot, header).
    fn next_header(&self, g: &State) -> (u8, LogHeader) {
        (
            1 - g.newest_slot,
            LogHeader {
                log_id: self.id,
                gen: g.gen,
                epoch: g.epoch,
                block_size: self.geom.bs as u32,
                nblocks: self.geom.nblocks,
                mirrored: g.mirrored,
                padded: g.padded,
            },
        )
    }

    /// Place a record in a log written straight onto its device (see
    /// `Mlog::direct`), under the lock: its position, sequence number and
    /// flush set. A new flush set begins when no record is being written
    /// (a new epoch's header is written first); otherwise the record joins
    /// the open one, so that a record written completely after one torn by
    /// a crash is never in a later set than it (which would prove the torn
    /// one durable: corruption to an open).
    fn place_direct(&self, g: &mut State, len: u64) -> Result<Placed> {
        let (h, end1, copy, end) = self.place(g, g.end, len)?;
        let seq = g.next_seq;
        let bdelta = match g.batch_first {
            // Records in flight (`durable_seq` is caught up under the lock).
            Some(f) if g.durable_seq < g.next_seq => {
                u32::try_from(seq - f).map_err(|_| MlogError::LogFull {
                    need: len + REC_HDR_LEN,
                    free: self.geom.size().saturating_sub(g.end),
                })?
            }
            _ => {
                if !g.hdr_durable {
                    let (slot, hdr) = self.next_header(g);
                    let r = self.write_header(slot, &hdr).and_then(|()| Ok(self.dev.flush()?));
                    if let Err(e) = r {
                        g.failed = Some(e.to_string());
                        return Err(e);
                    }
                    header_written(g, slot, hdr);
                }
                g.batch_first = Some(seq);
                0
            }
        };
        let hdr = record_fields(g, len, bdelta);
        let placed = Placed {
            seq,
            hdr,
            prev_end: g.end,
            h,
            end1,
            copy,
            end,
        };
        g.next_seq = seq + 1;
        g.end = end;
        // Read by `catch_up` under the lock, once the record is durable.
        self.slot(seq).end.store(self.slot_end_word(seq, end), Ordering::SeqCst);
        Ok(placed)
    }

    /// Write a placed record: its block headers, header and payload
    /// (copied once from the caller's slices), and its second copy in a
    /// mirrored log; then flush the device (no system call on a mapped
    /// file).
    fn write_placed(&self, p: &mut Placed, parts: &[&[u8]]) -> Result<()> {
        self.checksum(&mut p.hdr, parts);
        let base = self.base();
        let dev = self.dev.as_ref();
        let mut put = |pos: u64, bytes: &[u8]| -> Result<()> {
            match dev.write_bytes(base + pos, bytes) {
                Some(r) => Ok(r?),
                None => Err(MlogError::Failed {
                    reason: "the device stopped taking writes of any bytes".into(),
                }),
            }
        };
        self.frame_with(p.hdr.gen, &p.hdr, p.prev_end, p.h, parts, &mut put)?;
        if let Some(h2) = p.copy {
            // The second copy, byte for byte the same record, right after.
            self.frame_with(p.hdr.gen, &p.hdr, p.end1, h2, parts, &mut put)?;
        }
        Ok(self.dev.flush()?)
    }

    /// Record `seq` of a log written straight onto its device is written:
    /// mark it in its slot, and move `durable_hint` over every record
    /// marked from where it stands (whichever writer finds the next one
    /// marked moves it: the one whose record was the last missing, or one
    /// that marked its own after that). True when it moved. Called while
    /// counted in the slot (`owners` or `helpers`), so that no mark of an
    /// erased generation is left behind.
    fn mark_written(&self, seq: u64) -> bool {
        // Sequentially consistent, the mark and the moves: a writer that
        // marks its record after another one looked at its slot sees
        // that one's move, and moves on from there itself. The largest
        // mark stays: a helper late with the mark of a record its
        // appender marked long ago must not take back the mark of the
        // slot's next record.
        self.slot(seq).written.fetch_max(seq + 1, Ordering::SeqCst);
        let mut moved = false;
        loop {
            let d = self.durable_hint.load(Ordering::SeqCst);
            if self.slot(d).written.load(Ordering::SeqCst) != d + 1 {
                break;
            }
            moved |= self
                .durable_hint
                .compare_exchange(d, d + 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
        }
        moved
    }

    /// The outcome of a record's write and mark (`Ok(true)`: the mark
    /// moved `durable_hint`): a move wakes the sleepers; a failed write
    /// fails the log (its waiters woken to see it).
    fn written_or_failed(&self, r: Result<bool>) -> Result<()> {
        match r {
            Ok(moved) => {
                if moved {
                    self.wake_direct();
                }
                Ok(())
            }
            Err(e) => {
                let mut g = self.lock();
                // Appends now go to the lock, and see the failure there.
                self.freeze(&mut g);
                g.failed.get_or_insert_with(|| e.to_string());
                drop(g);
                self.cv[0].notify_all();
                Err(e)
            }
        }
    }

    /// `durable_hint` moved: wake the threads asleep in
    /// [`Mlog::wait_direct`], if any.
    fn wake_direct(&self) {
        if self.sleeping.load(Ordering::SeqCst) > 0 {
            // A sleeper counts itself and looks at `durable_hint` under
            // the lock before it sleeps: once the lock is had here, it
            // either saw the move or sleeps on the condition variable.
            drop(self.lock());
            self.cv[0].notify_all();
        }
    }

    /// The slot of record `seq` in [`Mlog::ring`].
    fn slot(&self, seq: u64) -> &Slot {
        &self.ring[(seq % RING) as usize]
    }

    /// Write record `seq` for its appender, if it is placed, not yet
    /// durable, and its appender is still inside (its job published):
    /// every waiter waits for it, and its appender, most likely, was
    /// preempted. The appender may be writing it too: both copy the same
    /// bytes to the same place.
    fn help(&self, seq: u64) {
        let slot = self.slot(seq);
        slot.helpers.fetch_add(1, Ordering::SeqCst);
        let p = slot.job.load(Ordering::SeqCst).cast::<Job<'_>>();
        let mut out = None;
        if !p.is_null() {
            // SAFETY: a job is published by its appender, which keeps it
            // (on its stack, with the slices it points to) until it has
            // taken it back and seen `helpers` at 0 (`Published::drop`);
            // this thread was counted there before it loaded the pointer,
            // both sequentially consistent, so that drop waits for it.
            // The job is copied out, and its slices read, before the
            // count goes down.
            let job = unsafe { *p };
            // A job of another record of the slot, of an erased generation
            // (the count above orders this against `erase_with`, which
            // sets `gen_hint` and then waits for the count), or of a
            // record that is durable already: nothing to do.
            if job.placed.seq == seq
                && job.placed.hdr.gen == self.gen_hint.load(Ordering::SeqCst)
                && self.durable_hint.load(Ordering::SeqCst) <= seq
                && slot.written.load(Ordering::SeqCst) != seq + 1
            {
                let mut placed = job.placed;
                out = Some(
                    self.write_placed(&mut placed, job.parts)
                        .map(|()| self.mark_written(seq)),
                );
            }
        }
        slot.helpers.fetch_sub(1, Ordering::SeqCst);
        if let Some(r) = out {
            // A failure is the log's now; the helper's own append sees it.
            let _ = self.written_or_failed(r);
        }
    }

    /// Wait for record `seq` of a log written straight onto its device to
    /// be durable, without the lock, for at most `budget`: spin watching
    /// `durable_hint`, and write the record it stands at when that stays
    /// unwritten for [`HELP_AFTER_NS`] ([`Mlog::help`]). True when
    /// `durable_hint` moved meanwhile.
    fn spin_helping(&self, seq: u64, budget: Duration) -> bool {
        let start = std::time::Instant::now();
        let first = self.durable_hint.load(Ordering::Acquire);
        let mut seen = first;
        let mut since = start;
        loop {
            for _ in 0..64 {
                if self.durable_hint.load(Ordering::Acquire) > seq {
                    return true;
                }
                std::hint::spin_loop();
            }
            let now = std::time::Instant::now();
            let d = self.durable_hint.load(Ordering::Acquire);
            if d != seen {
                seen = d;
                since = now;
            } else if now.duration_since(since) >= Duration::from_nanos(HELP_AFTER_NS) {
                self.help(d);
                since = now;
            }
            if now.duration_since(start) >= budget {
                return seen != first;
            }
        }
    }

    /// Take in what the writers of a log written straight onto its device
    /// did without the lock: the records before `durable_hint` are
    /// durable, and once none is left in flight the flush set is whole
    /// (the next record begins another; while [`Mlog::head`] is open its
    /// placers decide that themselves).
    fn catch_up(&self, g: &mut State) {
        if !self.direct {
            return;
        }
        let mut d = self.durable_hint.load(Ordering::SeqCst);
        while g.durable_seq < d {
            // Record `d - 1`'s slot holds its end until record
            // `d - 1 + RING` takes it: under the lock (not now), or
            // without it once `durable_hint` has passed `d` (see
            // `Mlog::place_free`): a slot that holds
            // another record's end (its tag), or a counter that moved by
            // RING or more since (a slot taken again by a record of the
            // same tag) means look again, at the counter's new value.
            let w = self.slot(d - 1).end.load(Ordering::SeqCst);
            let d2 = self.durable_hint.load(Ordering::SeqCst);
            match self.slot_end(d - 1, w) {
                Some(end) if d2 - d < RING => {
                    g.written_end = end;
                    g.durable_seq = d;
                }
                _ => d = d2,
            }
        }
        if !g.head_open && d == g.next_seq && g.batch_first.is_some() {
            // Nothing in flight: the flush set is whole. (Nobody watches
            // `flushes_done` on such a log: it has no flusher.)
            g.last_set_records = g.next_seq - g.batch_first.unwrap_or(g.next_seq);
            g.batch_first = None;
            next_set(g);
        }
    }

    /// What slot `end` holds for record `seq` ending at `end`: the end,
    /// tagged with `seq`'s low 16 bits above bit 48 where records are
    /// placed without the lock (see `Slot::end`).
    fn slot_end_word(&self, seq: u64, end: u64) -> u64 {
        if self.lockfree {
            (u64::from(seq as u16) << 48) | end
        } else {
            end
        }
    }

    /// Record `seq`'s end from its slot's word `w`; `None` when the word
    /// is another record's.
    fn slot_end(&self, seq: u64, w: u64) -> Option<u64> {
        if !self.lockfree {
            return Some(w);
        }
        ((w >> 48) as u16 == seq as u16).then_some(w & (head::END_LIMIT - 1))
    }

    /// Place a record under the log's lock (see [`Mlog::place_direct`]),
    /// [`Mlog::head`] closed first (`State` then says where records go),
    /// and open it again after, where the next record may be placed
    /// without the lock ([`Mlog::thaw`]). Counts the record's appender in
    /// its slot.
    fn place_locked(&self, len: u64) -> Result<Placed> {
        let mut g =
            crate::lock::lock_spin(&self.st.0, &self.spinners, Duration::from_nanos(LOCK_SPIN_NS));
        self.catch_up(&mut g);
        loop {
            self.freeze(&mut g);
            let max = self.max_for(g.mirrored);
            if len > max {
                return Err(MlogError::RecordTooLarge { len, max });
            }
            usable(&g)?;
            if g.next_seq - g.durable_seq >= RING {
                // Every slot holds a record in flight (more appenders
                // than slots): theirs are written without the lock.
                let oldest = g.durable_seq;
                drop(g);
                self.spin_helping(oldest, Duration::from_nanos(SPIN_MAX_NS));
                g = self.lock();
                continue;
            }
            let placed = self.place_direct(&mut g, len)?;
            // Counted under the lock: an erase (which holds it) sees every
            // record placed before it (see `erase_with`).
            self.slot(placed.seq).owners.fetch_add(1, Ordering::SeqCst);
            self.thaw(&mut g);
            return Ok(placed);
        }
    }

    /// Place a record with a compare and swap of [`Mlog::head`], without
    /// the lock: `None` when the head is closed, or the record needs what
    /// only the lock's holder does (a new epoch and its header, a flush
    /// set distance past 16 bits, a full log). Counts the record's
    /// appender in its slot.
    ///
    /// The rules are those of [`Mlog::place_direct`]: a record begins a
    /// new flush set only when no record is in flight, which the swap
    /// decides with the placement (a record placed since the look at the
    /// durable counter changed the word, and the swap fails), and joins
    /// the last one otherwise (one whose records have all become durable
    /// since may be joined: a record torn by a crash ends the log there
    /// and takes nothing before it along).
    fn place_free(&self, len: u64) -> Option<Result<Placed>> {
        let mut cur = self.head.load();
        loop {
            let o = head::Open::unpack(cur)?;
            let d = self.durable_hint.load(Ordering::SeqCst);
            // Exact when the swap below succeeds (the word was current:
            // its next record is at most RING - 1 past the counter).
            let seq = o.seq(d);
            if seq - d >= RING - 1 {
                // Every slot holds a record in flight but one: the last
                // one goes to the lock, whose holders `catch_up` excludes.
                // Placed here, record `d - 1 + RING` could take the slot
                // of record `d - 1` while `catch_up` reads its end with
                // the counter still at `d`.
                return None;
            }
            // The generation and layout change only while the head is
            // closed, and stored before it opens: read after the word, they
            // are its own or newer (and then the word changed).
            let gen = self.gen_hint.load(Ordering::SeqCst);
            let layout = self.layout.load(Ordering::SeqCst);
            if head::gen_low(gen) != o.gen_low {
                cur = self.head.load();
                continue;
            }
            let (epoch, mirrored, padded) = (layout as u32, layout & (1 << 32) != 0, layout & (1 << 33) != 0);
            let max = self.max_for(mirrored);
            if len > max {
                return Some(Err(MlogError::RecordTooLarge { len, max }));
            }
            let (fseq, bdelta) = if d == seq {
                if o.fseq >= MAX_FSEQ {
                    return None;
                }
                (o.fseq + 1, 0)
            } else {
                if o.bdelta_next == u16::MAX {
                    return None;
                }
                (o.fseq, o.bdelta_next)
            };
            let (h, end1, copy, end) = self.place_at(mirrored, padded, o.end, len).ok()?;
            if end >= head::END_LIMIT {
                return None;
            }
            let next = head::Open {
                end,
                gen_low: o.gen_low,
                seq_low: o.seq_low.wrapping_add(1),
                bdelta_next: bdelta + 1,
                fseq,
            }
            .pack();
            let slot = self.slot(seq);
            // Counted before the swap: an erase closes the head before it
            // waits for the counts, and sees every record placed before.
            slot.owners.fetch_add(1, Ordering::SeqCst);
            let was = self.head.swap_if(cur, next);
            if was != cur {
                slot.owners.fetch_sub(1, Ordering::SeqCst);
                cur = was;
                continue;
            }
            slot.end.store(self.slot_end_word(seq, end), Ordering::SeqCst);
            #[cfg(test)]
            self.placed_free.fetch_add(1, Ordering::Relaxed);
            let hdr = RecordHeader {
                crc: 0,
                len: len as u32,
                gen,
                seq,
                epoch,
                fseq,
                bdelta: u32::from(bdelta),
            };
            return Some(Ok(Placed {
                seq,
                hdr,
                prev_end: o.end,
                h,
                end1,
                copy,
                end,
            }));
        }
    }

    /// Close [`Mlog::head`] (the lock held) and take into `State` where
    /// the next record goes: from here records are placed under the lock.
    fn freeze(&self, g: &mut State) {
        if !g.head_open {
            return;
        }
        let mut cur = self.head.load();
        loop {
            let was = self.head.swap_if(cur, head::closed(cur));
            if was == cur {
                break;
            }
            cur = was;
        }
        g.head_open = false;
        let Some(o) = head::Open::unpack(cur) else {
            // Only the lock's holder closes it.
            return;
        };
        // Closed, the word's next record is at most RING - 1 past the
        // counter read now.
        let d = self.durable_hint.load(Ordering::SeqCst);
        let seq = o.seq(d);
        g.next_seq = seq;
        g.end = o.end;
        g.fseq = o.fseq;
        g.batch_first = Some(seq - u64::from(o.bdelta_next));
        self.catch_up(g);
    }

    /// Open [`Mlog::head`] (the lock held, after a record was placed under
    /// it), unless what comes next needs the lock: a failed, damaged or
    /// exhausted log, a header to write first, a flush set already too
    /// long for the word, an end past it.
    fn thaw(&self, g: &mut State) {
        if !self.lockfree || g.head_open {
            return;
        }
        let Some(first) = g.batch_first else {
            return;
        };
        let Ok(bdelta_next) = u16::try_from(g.next_seq - first) else {
            return;
        };
        if usable(g).is_err() || !g.hdr_durable || g.end >= head::END_LIMIT {
            return;
        }
        let layout = u64::from(g.epoch)
            | (u64::from(g.mirrored) << 32)
            | (u64::from(g.padded) << 33);
        self.layout.store(layout, Ordering::SeqCst);
        let w = head::Open {
            end: g.end,
            gen_low: head::gen_low(g.gen),
            seq_low: g.next_seq as u16,
            bdelta_next,
            fseq: g.fseq,
        }
        .pack();
        // Closed: nobody else changes it.
        let cur = self.head.load();
        let _ = self.head.swap_if(cur, w);
        g.head_open = true;
    }

    /// Whether record `seq` of a log written straight onto its device is
    /// marked written (tests).
    #[cfg(test)]
    fn is_written(&self, seq: u64) -> bool {
        self.slot(seq).written.load(Ordering::SeqCst) == seq + 1
    }

    /// Wait until record `seq` of a log written straight onto its device is
    /// durable (every record up to it written): spin (and help,
    /// [`Mlog::spin_helping`]) without the lock while records keep
    /// becoming durable, then sleep.
    fn wait_direct<'a>(
        &'a self,
        mut g: MutexGuard<'a, State>,
        seq: u64,
    ) -> (MutexGuard<'a, State>, Result<()>) {
        let mut rounds = 0;
        loop {
            self.catch_up(&mut g);
            if let Some(r) = settled(&g, seq) {
                return (g, r);
            }
            if rounds < SPIN_ROUNDS {
                rounds += 1;
                drop(g);
                if self.spin_helping(seq, Duration::from_nanos(SPIN_MAX_NS)) {
                    rounds = 0;
                }
                g = self.lock();
                continue;
            }
            // Counted before the last look (see `wake_direct`).
            self.sleeping.fetch_add(1, Ordering::SeqCst);
            if self.durable_hint.load(Ordering::SeqCst) > seq || g.failed.is_some() {
                self.sleeping.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            g = crate::lock::wait(&self.cv[0], g);
            self.sleeping.fetch_sub(1, Ordering::SeqCst);
            // Woken because a record was marked: one more round of
            // spinning and helping before sleeping again, so that a
            // record whose appender was preempted right after is written
            // by a waiter instead of waiting for that appender's turn.
            rounds = SPIN_ROUNDS - 1;
        }
    }

    /// The write of a closed set's bytes, as requests of at most
    /// [`MAX_REQ_BYTES`] the device may run in parallel.
    fn set_requests(&self, set: &SetWrite) -> Vec<IoReq> {
        let bs = self.geom.bs as usize;
        set.data()
            .chunks(MAX_REQ_BYTES)
            .enumerate()
            .map(|(i, c)| {
                IoReq::write(
                    set.base + (i * MAX_REQ_BYTES) as u64,
                    AlignedBuf::from_slice(c, bs),
                )
            })
            .collect()
    }

    /// The write of a closed set ended with `r` (a device flush after it
    /// with `dev_flush`; `ns`, its cost when timed): the log takes appends
    /// to flush again, and the threads the set made durable are woken.
    fn end_set(
        &self,
        set: SetWrite,
        r: Result<()>,
        ns: Option<u64>,
        dev_flush: bool,
    ) -> (MutexGuard<'_, State>, Result<()>) {
        let mut g = self.lock();
        self.end_set_in(&mut g, set, &r, ns, dev_flush);
        (g, r)
    }

    /// [`Mlog::end_set`] on the state, the lock held.
    fn end_set_in(
        &self,
        g: &mut State,
        set: SetWrite,
        r: &Result<()>,
        ns: Option<u64>,
        dev_flush: bool,
    ) {
        let SetWrite {
            snap_end,
            snap_seq,
            pre_flush,
            hdr,
            out,
            set_records,
            ..
        } = set;
        g.flushing = false;
        if g.spare.is_none() {
            let mut out = out;
            out.clear();
            g.spare = Some(out);
        }
        if let (Some(ns), true) = (ns, dev_flush) {
            g.flush_ns = crate::dev::ewma(g.flush_ns, ns);
            #[cfg(test)]
            if let Some(f) = g.fixed_flush_ns {
                g.flush_ns = f;
            }
            self.inline
                .store(g.flush_ns <= INLINE_MAX_NS, Ordering::Relaxed);
        }
        g.last_set_records = set_records;
        match &r {
            Ok(()) => {
                if let Some((slot, h)) = hdr {
                    header_written(g, slot, h);
                }
                g.written_end = snap_end;
                if let Some(end) = pre_flush {
                    g.durable_seq = g.durable_seq.max(end);
                }
                if dev_flush {
                    g.durable_seq = g.durable_seq.max(snap_seq);
                    g.unflushed = None;
                } else {
                    g.unflushed = Some((g.durable_seq, snap_seq));
                }
            }
            Err(e) => g.failed = Some(e.to_string()),
        }
        self.flush_ended(g);
    }

    /// A flush ended (under the lock): count it and wake the threads whose
    /// records it made durable, and one owner of the next flush set.
    fn flush_ended(&self, g: &State) {
        self.flushes_done.fetch_add(1, Ordering::Release);
        let k = (g.flush_no % 2) as usize;
        if g.sleepers[k] > 0 {
            self.cv[k].notify_all();
        }
        // Records appended during this flush whose appenders sleep: one of
        // them starts the next flush (unless an appender that is running
        // does first).
        if g.failed.is_some() {
            // Every waiter returns the error.
            self.cv[1 - k].notify_all();
        } else if g.end > g.written_end && g.sleepers[1 - k] > 0 {
            self.cv[1 - k].notify_one();
        }
    }
}

impl Mlog {
    /// Flush the device to make the set written unflushed durable (nothing
    /// new to write).
    fn flush_unflushed<'a>(
        &'a self,
        mut g: MutexGuard<'a, State>,
    ) -> (MutexGuard<'a, State>, Result<()>) {
        let Some((_, end)) = g.unflushed else {
            return (g, Ok(()));
        };
        g.flushing = true;
        g.flush_no += 1;
        g.inflight_seq = end;
        drop(g);
        let r = (|| -> Result<()> {
            self.dev.flush()?;
            Ok(())
        })();
        let mut g = self.lock();
        g.flushing = false;
        match &r {
            Ok(()) => {
                g.durable_seq = g.durable_seq.max(end);
                if g.unflushed.is_some_and(|(_, e)| e <= end) {
                    g.unflushed = None;
                }
            }
            Err(e) => g.failed = Some(e.to_string()),
        }
        self.flush_ended(&g);
        (g, r)
    }

    /// Append one record and write it to the device now, as a flush set of
    /// its own (with the records appended before it), but without flushing
    /// the device: on return the record is on its way to the media, not
    /// durable. It becomes durable with the next device flush: report one
    /// that began after this returned with [`Mlog::note_flushed`] (e.g. the
    /// flush of another log on the same device), or it is made durable by
    /// the next sync append, [`Mlog::flush`], or any later flush set (the
    /// log flushes the device before writing the next set).
    ///
    /// Returns `None`, having appended nothing, when the log is not idle: a
    /// flush in progress, sync appenders waiting, a set written unflushed
    /// already, or a header to write first; and always on a device that
    /// takes writes of any bytes, where an append is durable when it
    /// returns. Append the usual way then.
    ///
    /// This lets a record share a device flush that the caller makes
    /// anyway (one flush instead of two); what is durable after a crash
    /// before that flush is then any subset of the writes made since the
    /// last one, which the caller's recovery must allow for.
    pub fn append_written(&self, parts: &[&[u8]]) -> Result<Option<Lsn>> {
        let Some(staged) = self.stage_written(parts)? else {
            return Ok(None);
        };
        let mut out = self.dev.submit(staged.requests());
        staged.done(&mut out).map(Some)
    }

    /// As [`Mlog::append_written`], but the caller writes the record's
    /// flush set, in a batch with writes of its own (e.g. to other logs on
    /// the same device, then one device flush for all): see
    /// [`StagedWrite`]. `None`, nothing appended, when the log is not idle.
    pub fn stage_written(&self, parts: &[&[u8]]) -> Result<Option<StagedWrite<'_>>> {
        self.stage_written_many(&[parts])
    }

    /// As [`Mlog::stage_written`] with several records (each given as
    /// its parts), all in one flush set, in order; none is appended when
    /// one is refused (too large, or the log has no room for them all).
    /// The [`StagedWrite`]'s LSN is the first record's.
    pub fn stage_written_many(&self, records: &[&[&[u8]]]) -> Result<Option<StagedWrite<'_>>> {
        let lens: Vec<u64> = records
            .iter()
            .map(|parts| parts.iter().map(|p| p.len() as u64).sum())
            .collect();
        let mut g = self.lock();
        if self.direct
            || g.flushing
            || g.gathering
            || g.inside > 0
            || g.unflushed.is_some()
            || !g.hdr_durable
        {
            // (A log written directly appends the usual way: each record
            // is durable when it returns.)
            return Ok(None);
        }
        if records.is_empty() {
            return Ok(None);
        }
        let max = self.max_for(g.mirrored);
        if let Some(&len) = lens.iter().find(|&&l| l > max) {
            return Err(MlogError::RecordTooLarge { len, max });
        }
        usable(&g)?;
        // All of them fit, or none is appended.
        let mut at = g.end;
        for &len in &lens {
            at = self.place(&g, at, len)?.3;
        }
        let mut first = None;
        for (parts, &len) in records.iter().zip(&lens) {
            let seq = self.encode(&mut g, parts, len)?;
            first.get_or_insert(seq);
        }
        let Some(first) = first else {
            return Ok(None);
        };
        // Idle and the header durable: nothing to flush or write first.
        let set = self.close_set(g);
        Ok(Some(StagedWrite {
            log: self,
            set: Some(set),
            lsn: Lsn(first),
        }))
    }

    /// Report a device flush that began after [`Mlog::append_written`]
    /// returned `lsn`: its flush set is durable. Nothing happens when the
    /// set was made durable since, by the log itself.
    pub fn note_flushed(&self, lsn: Lsn) {
        let mut g = self.lock();
        if let Some((first, end)) = g.unflushed {
            if (first..end).contains(&lsn.0) {
                g.durable_seq = g.durable_seq.max(end);
                g.unflushed = None;
            }
        }
    }
}

impl Drop for Mlog {
    fn drop(&mut self) {
        // Best effort: a clean close makes async appends durable.
        let _ = self.flush();
    }
}

/// The header of the next record (seq `next_seq`, the open flush set) of
/// `len` bytes, its checksum still 0.
fn record_fields(st: &State, len: u64, bdelta: u32) -> RecordHeader {
    RecordHeader {
        crc: 0,
        len: len as u32,
        gen: st.gen,
        seq: st.next_seq,
        epoch: st.epoch,
        fseq: st.fseq,
        bdelta,
    }
}

/// A flush set closed: later appends join the next one. Before the flush
/// set number runs out, move to a new epoch instead (its header is written
/// by the next flush, before its records).
fn next_set(g: &mut State) {
    if g.fseq >= MAX_FSEQ {
        match g.epoch.checked_add(1) {
            Some(e) => {
                g.epoch = e;
                g.fseq = 1;
                g.hdr_durable = false;
            }
            None => g.epochs_exhausted = true,
        }
    } else {
        g.fseq += 1;
    }
}

/// Header `h` was written (and flushed) to `slot`.
fn header_written(g: &mut State, slot: u8, h: LogHeader) {
    g.newest_slot = slot;
    g.newest_hdr = h;
    if g.damaged_slot.as_ref().is_some_and(|d| d.0 == slot) {
        g.damaged_slot = None;
    }
    if (h.gen, h.epoch) == (g.gen, g.epoch) {
        g.hdr_durable = true;
    }
}

/// Whether a wait for record `seq` to be durable is over: Ok once it is,
/// the log's failure once it failed.
fn settled(g: &State, seq: u64) -> Option<Result<()>> {
    if g.durable_seq > seq {
        return Some(Ok(()));
    }
    g.failed
        .as_ref()
        .map(|f| Err(MlogError::Failed { reason: f.clone() }))
}

fn usable(g: &State) -> Result<()> {
    if let Some(f) = &g.failed {
        return Err(MlogError::Failed { reason: f.clone() });
    }
    if let Some((offset, reason)) = &g.corrupt {
        return Err(MlogError::Corrupt {
            offset: *offset,
            reason: reason.clone(),
        });
    }
    if g.epochs_exhausted {
        return Err(MlogError::Exhausted { counter: "epoch" });
    }
    Ok(())
}

struct Cursor<'a> {
    parts: &'a [&'a [u8]],
    i: usize,
    off: usize,
}

impl Cursor<'_> {
    /// Hand the next `n` bytes to `f`, as slices of the parts.
    fn take(&mut self, mut n: usize, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        while n > 0 {
            let Some(p) = self.parts.get(self.i) else {
                return Ok(());
            };
            let src = p.get(self.off..).unwrap_or(&[]);
            if src.is_empty() {
                self.i += 1;
                self.off = 0;
                continue;
            }
            let k = src.len().min(n);
            f(&src[..k])?;
            self.off += k;
            n -= k;
        }
        Ok(())
    }
}

fn submit_all(dev: &dyn Device, reqs: Vec<IoReq>) -> Result<()> {
    let info = dev.info();
    for mut r in dev.submit(reqs) {
        let (kind, off) = (r.kind, r.offset);
        r.take_result()
            .map_err(|e| crate::dev::from_req_err(info, kind, off, e))?;
    }
    Ok(())
}

/// Read both header blocks and pick the newest valid one for `id`.
/// The newest valid header copy and its slot, and what is wrong with the
/// other copy when it is damaged (not merely older).
fn read_header(
    dev: &dyn Device,
    start: u64,
    geom: Geom,
    id: u64,
) -> Result<(LogHeader, u8, Option<String>)> {
    let mut best: Option<(LogHeader, u8)> = None;
    let mut why = Vec::new();
    for slot in 0..2u8 {
        let mut b = dev.alloc_buf(geom.bs as usize);
        dev.read_at(start + u64::from(slot) * geom.bs, &mut b)?;
        match LogHeader::decode(&b) {
            Ok(h) if h.log_id != id => {
                why.push(format!("copy {slot}: log id {} not {id}", h.log_id))
            }
            Ok(h) if u64::from(h.block_size) != geom.bs || h.nblocks != geom.nblocks => {
                why.push(format!(
                    "copy {slot}: geometry {}x{} does not match the extent ({}x{})",
                    h.block_size, h.nblocks, geom.bs, geom.nblocks
                ))
            }
            Ok(h) => {
                if best.is_none_or(|(b, _)| h.order() > b.order()) {
                    best = Some((h, slot));
                }
            }
            Err(f) => why.push(format!("copy {slot}: {f:?}")),
        }
    }
    match best {
        Some((h, slot)) => Ok((h, slot, why.pop())),
        None => Err(MlogError::NoHeader {
            reason: why.join("; "),
        }),
    }
}

/// An iterator over a log's records, from the start. Yields owned records;
/// a record that fails verification yields [`MlogError::Corrupt`] and ends
/// the iteration, as does a device error.
pub struct MlogReader<'a> {
    src: DevBlocks<'a>,
    view: LogView,
    end: u64,
    chain: Chain,
    corrupt: Option<(u64, String)>,
    done: bool,
}

impl MlogReader<'_> {
    /// Back to the first record.
    pub fn rewind(&mut self) {
        self.chain = Chain::new(self.end);
        self.done = false;
    }

    /// Skip the next `n` records (fewer if the log ends first).
    pub fn seek(&mut self, n: u64) -> Result<()> {
        for _ in 0..n {
            match self.step(false) {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        Ok(())
    }

    /// The next record with its sequence number.
    pub fn next_record(&mut self) -> Option<Result<(Lsn, Vec<u8>)>> {
        self.step(true)
    }

    /// Each record once: in a mirrored log its second copy is skipped, or
    /// used when the first does not verify; every record is verified again.
    fn step(&mut self, want: bool) -> Option<Result<(Lsn, Vec<u8>)>> {
        if self.done {
            return None;
        }
        if self.chain.pos >= self.end {
            self.done = true;
            return self
                .corrupt
                .take()
                .map(|(offset, reason)| Err(MlogError::Corrupt { offset, reason }));
        }
        match self.chain.next(&mut self.src, &self.view, want) {
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
            Ok(Step::Rec { hdr, payload, .. }) => {
                Some(Ok((Lsn(hdr.seq), payload.unwrap_or_default())))
            }
            Ok(Step::Stop { at, why }) => {
                self.done = true;
                Some(Err(MlogError::Corrupt {
                    offset: at,
                    reason: why.to_string(),
                }))
            }
            Ok(Step::End) => {
                self.done = true;
                self.corrupt
                    .take()
                    .map(|(offset, reason)| Err(MlogError::Corrupt { offset, reason }))
            }
        }
    }
}

impl Iterator for MlogReader<'_> {
    type Item = Result<Vec<u8>>;
    fn next(&mut self) -> Option<Self::Item> {
        self.step(true).map(|r| r.map(|(_, d)| d))
    }
}

/// Decode a log image (both header blocks followed by the data area, as
/// laid out on a device with `sector`-byte blocks) without a device: the
/// header, the recovery scan and every record. For fuzzing and tools; never
/// panics on any input.
pub fn decode_image(image: &[u8], sector: u32, id: u64) -> Result<(ScanResult, Vec<Vec<u8>>)> {
    let bs = u64::from(sector.max(512));
    let slot = |i: u64| image.get((i * bs) as usize..((i + 1) * bs) as usize);
    let mut best: Option<LogHeader> = None;
    for i in 0..2 {
        if let Some(Ok(h)) = slot(i).map(LogHeader::decode) {
            if h.log_id == id && best.is_none_or(|b| h.order() > b.order()) {
                best = Some(h);
            }
        }
    }
    let hdr = best.ok_or_else(|| MlogError::NoHeader {
        reason: "no valid header copy".into(),
    })?;
    let data = image.get((2 * bs) as usize..).unwrap_or(&[]);
    let geom = Geom {
        bs,
        nblocks: (data.len() as u64 / bs).min(hdr.nblocks),
    };
    let mut src = SliceBlocks { data, bs };
    let view = LogView {
        g: geom,
        log_id: id,
        gen: hdr.gen,
        mirrored: hdr.mirrored,
        padded: hdr.padded,
    };
    let res = scan::scan(&mut src, &view)?;
    let mut out = Vec::new();
    let mut chain = Chain::new(res.end);
    while chain.pos < res.end {
        match chain.next(&mut src, &view, true)? {
            Step::Rec { payload, .. } => out.push(payload.unwrap_or_default()),
            Step::End => break,
            Step::Stop { at, .. } => {
                return Err(MlogError::Corrupt {
                    offset: at,
                    reason: "record changed between scan and read".into(),
                })
            }
        }
    }
    if out.len() as u64 != res.records {
        return Err(MlogError::Corrupt {
            offset: chain.pos,
            reason: "the read saw another number of records than the scan".into(),
        });
    }
    Ok((res, out))
}

#[cfg(test)]
mod mirror_tests;
#[cfg(test)]
mod tests;
