//! Event streams: named, append-only record logs with dense 64-bit offsets,
//! an appendable tail (an mlog, on the staging class when the pool has
//! one) and sealed, immutable segments (committed mblocks on the capacity
//! class, each with an index footer), read through mcache maps.
//!
//! # Layout
//!
//! The pool's streams are listed in a *stream catalog*: an MDC of its own,
//! named by one record of the user root MDC (prefix `MPSTRCAT`). The
//! catalog logs each stream's creation, its tails, its seals, trims and
//! deletion (docs/format.md, "Event streams"). A stream is:
//!
//! - **the tail**: an mlog whose records are *batches* (first offset,
//!   count, then each record framed with its length and CRC-32C). One
//!   [`Stream::append_batch`] is one mlog record, so a batch is atomic.
//!   The tail's records are also kept in memory, for reads and for the seal.
//! - **sealed segments**: when the tail reaches the segment size (or its
//!   age limit), appends move to a new tail (a spare made ahead of time in
//!   the background), and the background thread writes the old tail's
//!   frames into an mblock on the capacity class, followed by a sparse
//!   offset index and a trailer, commits it, logs the seal and deletes the
//!   old tail. A crash at any point leaves either the tail (sealed again
//!   at the next open) or the committed segment, never both, never neither.
//!
//! # Durability and offsets
//!
//! [`Durability::Sync`]: the call returns once its records are durable;
//! appenders of many threads share device flushes (the mlog's group
//! commit). [`Durability::Group`]: the call returns at once, with the
//! offsets; the records become durable at the stream's next group flush
//! (every [`StreamOptions::group_flush`], 2 ms by default) or at
//! [`Stream::sync`]/[`Stream::wait_durable`]. Readers see durable records
//! only. Offsets start at 0 and are dense; an offset that was durable is
//! never given to another record, even across crashes (a grouped append
//! that a crash lost leaves its offset to the next append: it never
//! existed).
//!
//! # Reads
//!
//! [`Stream::read`] one record, [`Stream::iter`] from any offset across the
//! sealed segments and the tail, [`Stream::follow`] a cursor that waits
//! for new records. Sealed segments are read through an mcache map (see
//! [`crate::mcache`]) of each segment, so hot data comes from memory; where
//! the process cannot map (no userfaultfd), a segment is read once into
//! memory and kept (at most [`FALLBACK_SEGMENTS`] of them per stream). Each
//! record's CRC-32C is checked on every read: a mismatch is
//! [`StreamError::Corrupt`] naming the stream and offset.
//!
//! # Recovery
//!
//! Opening a stream reads the catalog, then each sealed segment's footer
//! (index and trailer: a few KiB, never its records), and scans the
//! unsealed tails only.

mod catalog;
mod error;
pub mod format;

pub use catalog::SegMeta;
pub use error::StreamError;

use crate::error::{Error, ObjectError, Result};
use crate::format::superblock::MediaClass;
use crate::lock::lock;
use crate::mcache::{Advice, McacheMap};
use crate::mlog::{Mlog, MlogError};
use crate::objid::{MblockId, MlogId, ObjectId};
use crate::Pool;
use catalog::{is_not_found, Catalog, Meta};
use format::{CatRecord, IndexEntry, Trailer, FRAME_HDR, INDEX_EVERY, TRAILER_LEN};
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Segments a stream keeps in memory when it cannot map them.
pub const FALLBACK_SEGMENTS: usize = 16;
/// Tails rolled and not yet sealed before a roll waits for a seal.
pub const MAX_ROLLED: usize = 3;
/// Bytes of a new tail's memory whose pages are touched ahead of its
/// appends.
const PREFAULT_MAX: usize = 64 << 20;
/// A seal copies a segment into its mblock in writes of this size.
const SEAL_CHUNK: usize = 1 << 20;
/// A seal of at least this many bytes is paced: its writes are spread over
/// `1 / SEAL_PACE_DIV` of the time the segment took to fill (at most
/// `SEAL_PACE_MAX`), so that the device sees a steady stream beside the
/// tail's flushes instead of a burst that every flush in its wake waits
/// behind. An eighth, by measurement (BENCHMARKS.md, "Session 8"): half
/// made every flush slower, none left the burst.
const SEAL_PACE_MIN: usize = 4 << 20;
const SEAL_PACE_DIV: u32 = 8;
const SEAL_PACE_MAX: Duration = Duration::from_millis(500);
/// Default group flush interval.
pub const DEFAULT_GROUP_FLUSH: Duration = Duration::from_millis(2);

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Return once the records are durable (flushes shared between threads).
    Sync,
    /// Return at once; durable at the next group flush.
    Group,
}

/// Options of a new stream.
#[derive(Debug, Clone, Default)]
pub struct StreamOptions {
    /// Segment size (bytes of framed records, 8 bytes of framing each);
    /// `None` or larger than an mblock holds: as large as an mblock holds.
    pub segment_bytes: Option<u64>,
    /// Seal the tail once its first record is this old (`None`: by size only).
    pub max_age: Option<Duration>,
    /// Group flush interval for this handle (not stored; default
    /// [`DEFAULT_GROUP_FLUSH`]).
    pub group_flush: Option<Duration>,
}

/// The state of a stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StreamStat {
    /// Name.
    pub name: String,
    /// First offset held (records below were trimmed).
    pub first: u64,
    /// The next offset an append gets.
    pub next: u64,
    /// Offsets below this are durable (readable).
    pub durable: u64,
    /// Sealed segments.
    pub segments: Vec<SegMeta>,
    /// Bytes of the sealed segments.
    pub sealed_bytes: u64,
    /// Records in the tail (sealed ones included until their seal ends).
    pub tail_records: u64,
    /// Bytes of framed records in the tail.
    pub tail_bytes: u64,
    /// Media class of the tail.
    pub tail_class: String,
    /// Segment size limit.
    pub segment_bytes: u64,
    /// Age limit of the tail (ms; 0: none).
    pub max_age_ms: u64,
    /// Creation time (ms since the epoch).
    pub created_ms: u64,
}

/// What a trim removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct TrimReport {
    /// Segments deleted.
    pub segments: u64,
    /// Their bytes (back to the pool).
    pub bytes: u64,
    /// First offset held now.
    pub first: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn check_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(StreamError::InvalidName {
            name: name.to_string(),
            reason,
        }
        .into())
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 255 {
        return bad("longer than 255 bytes");
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad("holds white space or control characters");
    }
    Ok(())
}

/// A tail's records in memory.
#[derive(Debug)]
struct MemSeg {
    mlog: u64,
    base: u64,
    data: Arc<Vec<u8>>,
    /// Frame position of each record.
    pos: Vec<u32>,
    started: Option<Instant>,
    /// The catalog lists this tail (a spare promoted by a roll is listed
    /// as a tail by the background thread afterwards).
    logged: bool,
}

impl MemSeg {
    fn end(&self) -> u64 {
        self.base + self.pos.len() as u64
    }
}

#[derive(Debug)]
struct Tail {
    active: Option<Arc<Mlog>>,
    /// The tail before the active one, until its records are durable: a
    /// sync append flushes it before its own log (offsets become durable
    /// in order).
    prev: Option<Arc<Mlog>>,
    next: u64,
    first: u64,
    /// The last is the active tail; earlier ones await their seal.
    mem: VecDeque<MemSeg>,
    spare: Option<u64>,
    /// The spare tail, open and ready: a roll only switches to it.
    spare_log: Option<Arc<Mlog>>,
    /// Memory for the next tail's records, its pages already touched (a
    /// sealed tail's, reused, or one the background thread made).
    spare_buf: Option<Vec<u8>>,
    failed: Option<String>,
    /// Logs to delete (busy when last tried).
    deletes: Vec<u64>,
    /// The last seal failed: appends do not wait for seals.
    seal_failed: bool,
    /// The background thread failed to make a spare tail: a roll makes
    /// one itself (and reports why it cannot).
    spare_failed: bool,
    stop: bool,
}

enum SegData {
    Map(McacheMap),
    Mem(Arc<Vec<u8>>),
    /// Neither mapped nor read whole (a damaged block): read per record.
    Direct(MblockId),
}

struct Seg {
    meta: SegMeta,
    index: Vec<IndexEntry>,
    data_len: u64,
    /// Why the footer could not be used.
    bad: Option<String>,
    data: Mutex<Option<Arc<SegData>>>,
}

/// The shared state of an open stream.
pub struct StreamInner {
    pool: Pool,
    cat: Arc<Catalog>,
    name: String,
    no: u64,
    seg_limit: u64,
    max_batch: u64,
    max_age: Option<Duration>,
    group_every: Duration,
    tail_class: MediaClass,
    created_ms: u64,
    st: Mutex<Tail>,
    cv: Condvar,
    /// Offsets below this are durable (raised without the tail lock).
    durable: AtomicU64,
    /// Threads waiting on `cv` for `durable` to rise (a raise notifies
    /// only when there are some).
    waiters: AtomicUsize,
    /// One thread at a time logs promoted tails in the catalog.
    tail_log_lock: Mutex<()>,
    /// Where the open found the tail corrupt: (offset, reason). Records
    /// before it are readable; it and later ones are the error.
    corrupt_at: Option<(u64, String)>,
    sealed: RwLock<Vec<Arc<Seg>>>,
    /// Segments read into memory (fallback), oldest first.
    loaded: Mutex<VecDeque<Arc<Seg>>>,
    /// The background thread.
    bg: std::sync::OnceLock<std::thread::Thread>,
    /// Its handle, for [`Stream::close`].
    join: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// One seal at a time (the background thread, [`Stream::wait_sealed`]).
    seal_lock: Mutex<()>,
}

impl std::fmt::Debug for StreamInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("name", &self.name).finish()
    }
}

/// An open event stream. `Send + Sync`, cheap to clone (one shared state
/// per stream and pool). See the [module docs](crate::stream).
#[derive(Debug, Clone)]
pub struct Stream {
    inner: Arc<StreamInner>,
}

/// Event streams (see [`Stream`]).
impl Pool {
    /// Create a stream named `name` (empty; its first record gets offset 0).
    pub fn stream_create(&self, name: &str, opts: &StreamOptions) -> Result<()> {
        check_name(name)?;
        let cat = Catalog::get(self, true)?;
        if cat.meta(name).is_some() {
            return Err(StreamError::Exists(name.to_string()).into());
        }
        let max = segment_limit(self)?;
        let seg = opts
            .segment_bytes
            .map_or(max, |b| b.clamp(FRAME_HDR as u64 + 1, max));
        let no = cat.next_no();
        cat.log(CatRecord::Create {
            no,
            created_ms: now_ms(),
            seg_bytes: seg,
            max_age_ms: opts.max_age.map_or(0, |d| d.as_millis().max(1) as u64),
            name: name.to_string(),
        })?;
        // The first tail: logged before its commit (a crash in between
        // leaves a tail that never existed: an empty one).
        let class = tail_class(self);
        let mlog = self.mlog_alloc(class, tail_capacity(self, seg)?)?;
        cat.log(CatRecord::Tail {
            no,
            mlog: mlog.object_id().raw(),
            base: 0,
        })?;
        self.mlog_commit(mlog)?;
        Ok(())
    }

    /// Open the stream named `name` (one shared state per stream: a second
    /// open returns the same stream).
    pub fn stream_open(&self, name: &str) -> Result<Stream> {
        self.stream_open_with(name, &StreamOptions::default())
    }

    /// [`Pool::stream_open`] with this handle's group flush interval
    /// ([`StreamOptions::group_flush`]; the other options are the stream's).
    pub fn stream_open_with(&self, name: &str, opts: &StreamOptions) -> Result<Stream> {
        let cat = Catalog::get(self, false)?;
        let mut open = lock(&cat.open);
        if let Some(s) = open.get(name).and_then(Weak::upgrade) {
            return Ok(Stream { inner: s });
        }
        let meta = cat
            .meta(name)
            .ok_or_else(|| StreamError::NotFound(name.to_string()))?;
        let inner = StreamInner::open(self, &cat, meta, opts)?;
        open.insert(name.to_string(), Arc::downgrade(&inner));
        drop(open);
        if !self.is_read_only() {
            let w = Arc::downgrade(&inner);
            let h = std::thread::Builder::new()
                .name(format!("mpool-stream-{}", inner.no))
                .spawn(move || background(w))
                .map_err(|e| Error::Internal(format!("starting a stream thread: {e}")))?;
            let _ = inner.bg.set(h.thread().clone());
            *lock(&inner.join) = Some(h);
        }
        Ok(Stream { inner })
    }

    /// Delete a stream and every segment of it (refused while it is open).
    pub fn stream_delete(&self, name: &str) -> Result<()> {
        let cat = Catalog::get(self, false)?;
        // The background thread of a stream whose last handle was just
        // dropped may hold it for the rest of a step: wait a little.
        let mut tries = 0;
        let open = loop {
            let open = lock(&cat.open);
            if open.get(name).and_then(Weak::upgrade).is_none() {
                break open;
            }
            if tries == 100 {
                return Err(StreamError::Busy(name.to_string()).into());
            }
            drop(open);
            tries += 1;
            std::thread::sleep(Duration::from_millis(10));
        };
        let meta = cat
            .meta(name)
            .ok_or_else(|| StreamError::NotFound(name.to_string()))?;
        cat.log(CatRecord::Delete { no: meta.no })?;
        drop(open);
        for s in &meta.sealed {
            cat.drop_object(s.mblock);
        }
        for t in &meta.tails {
            cat.drop_object(t.0);
        }
        if let Some(id) = meta.spare {
            cat.drop_object(id);
        }
        Ok(())
    }

    /// The stream catalog's MDC, once the pool has one (the first
    /// [`Pool::stream_create`] makes it).
    pub fn stream_catalog(&self) -> Result<Option<crate::MdcId>> {
        Ok(Catalog::get(self, false)?.mdc_id())
    }

    /// Every object the catalog lists for stream `name` (sealed segments,
    /// tails, spare tail, segments being written), without opening it.
    pub fn stream_objects(&self, name: &str) -> Result<Vec<ObjectId>> {
        let cat = Catalog::get(self, false)?;
        let m = cat
            .meta(name)
            .ok_or_else(|| StreamError::NotFound(name.to_string()))?;
        let mut v: Vec<u64> = m.sealed.iter().map(|s| s.mblock).collect();
        v.extend(m.tails.iter().map(|t| t.0));
        v.extend(m.spare);
        v.extend(m.pending.iter().map(|p| p.0));
        Ok(v.into_iter().filter_map(ObjectId::from_raw).collect())
    }

    /// The names of the pool's streams, sorted.
    pub fn streams(&self) -> Result<Vec<String>> {
        let cat = Catalog::get(self, false)?;
        Ok(cat.all().into_iter().map(|m| m.name).collect())
    }
}

/// Largest segment (bytes of frames) a capacity-class mblock holds with
/// its footer and the padding in front of it.
fn segment_limit(pool: &Pool) -> Result<u64> {
    let cap = pool.mblock_capacity(MediaClass::Capacity)?;
    let align = u64::from(pool.csum_block()?.unwrap_or(0)).max(4096);
    Ok(cap.saturating_sub(TRAILER_LEN as u64 + 8 * (cap / INDEX_EVERY + 2) + align))
}

fn tail_class(pool: &Pool) -> MediaClass {
    if pool.classes().contains(&MediaClass::Staging) {
        MediaClass::Staging
    } else {
        MediaClass::Capacity
    }
}

/// Capacity of a tail mlog for segments of `seg` bytes: the segment and
/// the log's framing (a few percent), within one zone of the tail's class
/// (a tail that fills first is sealed smaller).
fn tail_capacity(pool: &Pool, seg: u64) -> Result<u64> {
    let zone = pool.mblock_capacity(tail_class(pool))?;
    Ok((seg + seg / 16 + (64 << 10))
        .min(zone.saturating_sub(64 << 10))
        .max(4096))
}

/// The in-memory tails not yet listed in the catalog: (mlog, base), in order.
fn unlogged(mem: &VecDeque<MemSeg>) -> Vec<(u64, u64)> {
    mem.iter()
        .filter(|m| !m.logged)
        .map(|m| (m.mlog, m.base))
        .collect()
}

/// Mark the tail on mlog `raw` as listed in the catalog.
fn mark_logged(mem: &mut VecDeque<MemSeg>, raw: u64) {
    if let Some(m) = mem.iter_mut().find(|m| m.mlog == raw) {
        m.logged = true;
    }
}

fn mlog_id(raw: u64) -> Result<MlogId> {
    ObjectId::from_raw(raw)
        .and_then(|o| MlogId::try_from(o).ok())
        .ok_or_else(|| StreamError::Catalog(format!("{raw:#x} is not an mlog")).into())
}

fn mblock_id(raw: u64) -> Result<MblockId> {
    ObjectId::from_raw(raw)
        .and_then(|o| MblockId::try_from(o).ok())
        .ok_or_else(|| StreamError::Catalog(format!("{raw:#x} is not an mblock")).into())
}

impl StreamInner {
    fn corrupt(&self, offset: u64, reason: impl Into<String>) -> Error {
        format::corrupt(&self.name, offset, reason.into()).into()
    }

    fn open(
        pool: &Pool,
        cat: &Arc<Catalog>,
        meta: Meta,
        opts: &StreamOptions,
    ) -> Result<Arc<Self>> {
        // Sealed segments: their footers only.
        let mut sealed = Vec::with_capacity(meta.sealed.len());
        for s in &meta.sealed {
            let id = mblock_id(s.mblock)?;
            // A segment whose footer cannot be read or fails its checks
            // stays in the stream: reading its records is the error.
            let (index, data_len, bad) = match read_footer(pool, id, meta.no, s) {
                Ok((index, data_len)) => (index, data_len, None),
                Err(e) => (Vec::new(), 0, Some(e)),
            };
            sealed.push(Arc::new(Seg {
                meta: s.clone(),
                index,
                data_len,
                bad,
                data: Mutex::new(None),
            }));
        }
        // Tails: scanned. A corrupt record ends the scan: the records
        // before it stay readable, reading it (or past it) is the error,
        // appends are refused (the offsets after it were durable once).
        let mut mem = VecDeque::new();
        let mut next = sealed
            .last()
            .map_or(meta.first, |s: &Arc<Seg>| s.meta.base + s.meta.count);
        let mut active = None;
        let mut corrupt_at: Option<(u64, String)> = None;
        let ntails = meta.tails.len();
        for (i, &(raw, base)) in meta.tails.iter().enumerate() {
            if base != next && !(mem.is_empty() && sealed.is_empty() && base >= next) {
                corrupt_at = Some((
                    next,
                    format!("tail {raw:#x} starts at offset {base}, expected {next}"),
                ));
                break;
            }
            next = base;
            let id = mlog_id(raw)?;
            let log = match pool.mlog_open(id) {
                Ok(l) => Some(l),
                // Logged and never committed: a tail without records.
                Err(e) if is_not_found(&e) => None,
                Err(e) => return Err(e),
            };
            let mut seg = MemSeg {
                mlog: raw,
                base,
                data: Arc::new(Vec::new()),
                pos: Vec::new(),
                started: None,
                logged: true,
            };
            if let Some(log) = &log {
                if let Some((at, why)) = scan_tail(log, &mut seg, &mut next)? {
                    corrupt_at = Some((at, why));
                    mem.push_back(seg);
                    break;
                }
            }
            if i + 1 == ntails && log.is_some() {
                active = log;
            }
            mem.push_back(seg);
        }
        // The spare: a roll switches appends to it before the catalog lists
        // it as a tail. Records in it that continue the last tail make it
        // the active tail; others were never acknowledged (the tail before
        // them was not durable): erased.
        let mut spare = meta.spare;
        let mut promoted = None;
        let mut spare_log = None;
        if let (Some(raw), None) = (spare, &corrupt_at) {
            match pool.mlog_open(mlog_id(raw)?) {
                Ok(log) => {
                    let mut seg = MemSeg {
                        mlog: raw,
                        base: next,
                        data: Arc::new(Vec::new()),
                        pos: Vec::new(),
                        started: None,
                        logged: false,
                    };
                    let mut end = next;
                    let ok = scan_tail(&log, &mut seg, &mut end)?.is_none();
                    if ok && !seg.pos.is_empty() {
                        next = end;
                        spare = None;
                        promoted = Some((raw, seg.base));
                        mem.push_back(seg);
                        active = Some(log);
                    } else if pool.is_read_only() {
                    } else if seg.pos.is_empty() && ok {
                        spare_log = Some(log);
                    } else {
                        log.erase(0).map_err(Error::from)?;
                        spare_log = Some(log);
                    }
                }
                // Logged and never committed: gone.
                Err(e) if is_not_found(&e) => spare = None,
                Err(e) => return Err(e),
            }
        }
        let tail_class = tail_class(pool);
        let seg_limit = meta.seg_bytes.min(segment_limit(pool)?);
        let inner = Arc::new(StreamInner {
            pool: pool.clone(),
            cat: Arc::clone(cat),
            name: meta.name.clone(),
            no: meta.no,
            seg_limit,
            max_batch: seg_limit,
            max_age: (meta.max_age_ms > 0).then(|| Duration::from_millis(meta.max_age_ms)),
            group_every: opts.group_flush.unwrap_or(DEFAULT_GROUP_FLUSH),
            tail_class,
            created_ms: meta.created_ms,
            st: Mutex::new(Tail {
                active: active.clone(),
                prev: None,
                next,
                first: meta.first,
                mem,
                spare,
                spare_log,
                spare_buf: None,
                failed: corrupt_at
                    .as_ref()
                    .map(|(at, why)| format!("the tail is corrupt at offset {at}: {why}")),
                deletes: Vec::new(),
                seal_failed: false,
                spare_failed: false,
                stop: false,
            }),
            cv: Condvar::new(),
            durable: AtomicU64::new(next),
            waiters: AtomicUsize::new(0),
            tail_log_lock: Mutex::new(()),
            corrupt_at,
            sealed: RwLock::new(sealed),
            loaded: Mutex::new(VecDeque::new()),
            bg: std::sync::OnceLock::new(),
            join: Mutex::new(None),
            seal_lock: Mutex::new(()),
        });
        if !pool.is_read_only() && inner.corrupt_at.is_none() {
            // The promoted spare is a tail from now on.
            if let Some((raw, base)) = promoted {
                inner.cat.log(CatRecord::Tail {
                    no: inner.no,
                    mlog: raw,
                    base,
                })?;
                if let Some(m) = lock(&inner.st).mem.back_mut() {
                    m.logged = true;
                }
            }
            let mut g = lock(&inner.st);
            if active.is_none() {
                g = inner.roll(g)?;
            }
            let max = g.active.as_ref().map_or(0, |l| l.max_record());
            drop(g);
            let mut me = inner;
            if let Some(m) = Arc::get_mut(&mut me) {
                m.max_batch = m
                    .max_batch
                    .min(max.saturating_sub(format::BATCH_HDR as u64));
            }
            return Ok(me);
        }
        Ok(inner)
    }

    /// Move appends to a new tail (under the tail lock): the spare tail the
    /// background thread made and opened ahead of time, so that a roll on
    /// an appender's thread costs no device I/O and no catalog write (the
    /// background thread lists the new tail in the catalog afterwards; an
    /// open finds a spare holding records as the tail). Without a spare
    /// ready, waits for the background thread to make one; without a
    /// background thread (or when it failed to), makes one here.
    fn roll<'a>(&'a self, mut g: MutexGuard<'a, Tail>) -> Result<MutexGuard<'a, Tail>> {
        let mut waited = 0u32;
        while g.spare_log.is_none() || g.spare.is_none() {
            if let Some(f) = &g.failed {
                return Err(StreamError::Failed {
                    stream: self.name.clone(),
                    reason: f.clone(),
                }
                .into());
            }
            let bg = self.bg.get().is_some() && !g.stop;
            // A background thread that failed, or is slow (a second):
            // the spare is made here.
            if !bg || (waited > 0 && g.spare_failed) || waited >= 100 {
                // Promoted tails are listed before a new spare (a spare
                // record replaces the catalog's spare).
                if let Ok(_one) = self.tail_log_lock.try_lock() {
                    let todo = unlogged(&g.mem);
                    // The records below a listed tail are durable first:
                    // those not yet are in the tail before the active one
                    // (the active tail is the last one listed).
                    if !todo.is_empty() {
                        if let Some(p) = &g.prev {
                            p.flush()?;
                        }
                    }
                    self.log_tail_list(todo, |raw| mark_logged(&mut g.mem, raw))?;
                    let (raw, log) = self.make_spare()?;
                    g.spare = Some(raw);
                    g.spare_log = Some(log);
                    break;
                }
            }
            self.wake();
            g = self
                .cv
                .wait_timeout(g, Duration::from_millis(10))
                .unwrap_or_else(|p| p.into_inner())
                .0;
            waited += 1;
        }
        // The tail before the last one is durable before it is forgotten
        // (its flush ended long ago, normally: a no-op).
        if let Some(p) = g.prev.take() {
            if let Err(e) = p.flush() {
                g.prev = Some(p);
                return Err(e.into());
            }
        }
        let (Some(raw), Some(log)) = (g.spare.take(), g.spare_log.take()) else {
            return Err(Error::Internal("stream roll without a spare tail".into()));
        };
        g.prev = g.active.replace(log);
        let data = Arc::new(g.spare_buf.take().unwrap_or_default());
        let base = g.next;
        g.mem.push_back(MemSeg {
            mlog: raw,
            base,
            data,
            pos: Vec::new(),
            started: None,
            logged: false,
        });
        self.cv.notify_all();
        self.wake();
        Ok(g)
    }

    /// Make a spare tail: allocated, listed in the catalog, committed, open.
    fn make_spare(&self) -> Result<(u64, Arc<Mlog>)> {
        let id = self
            .pool
            .mlog_alloc(self.tail_class, tail_capacity(&self.pool, self.seg_limit)?)?;
        let raw = id.object_id().raw();
        if let Err(e) = self.cat.log(CatRecord::Spare {
            no: self.no,
            mlog: raw,
        }) {
            let _ = self.pool.mlog_abort(id);
            return Err(e);
        }
        self.pool.mlog_commit(id)?;
        let log = self.pool.mlog_open(mlog_id(raw)?)?;
        Ok((raw, log))
    }

    /// Log a `T` record for each of `todo` (mlog, base), in order, and
    /// `mark` each listed once its record is durable; the caller holds
    /// `tail_log_lock`.
    fn log_tail_list(&self, todo: Vec<(u64, u64)>, mut mark: impl FnMut(u64)) -> Result<()> {
        for (raw, base) in todo {
            self.cat.log(CatRecord::Tail {
                no: self.no,
                mlog: raw,
                base,
            })?;
            mark(raw);
        }
        Ok(())
    }

    /// List in the catalog the tails a roll promoted (in order), once the
    /// records below them are durable: an open takes a listed tail to
    /// start where the records before it end, and records lost in a crash
    /// below a listed tail would leave a gap it reports as corruption.
    fn log_tails(&self) -> Result<()> {
        let _one = lock(&self.tail_log_lock);
        let todo = unlogged(&lock(&self.st).mem);
        let below = todo.iter().map(|&(_, base)| base).max().unwrap_or(0);
        if self.durable() < below {
            self.sync()?;
        }
        self.log_tail_list(todo, |raw| mark_logged(&mut lock(&self.st).mem, raw))?;
        Ok(())
    }

    /// `roll` with back-pressure: while the background
    /// thread is `MAX_ROLLED` tails behind, wait for a seal (the tail's
    /// class would fill otherwise).
    fn roll_waiting<'a>(&'a self, mut g: MutexGuard<'a, Tail>) -> Result<MutexGuard<'a, Tail>> {
        while g.mem.len() > MAX_ROLLED && g.failed.is_none() && !g.stop && !g.seal_failed {
            self.wake();
            g = self
                .cv
                .wait_timeout(g, Duration::from_millis(10))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        self.roll(g)
    }

    /// Wake the background thread.
    fn wake(&self) {
        if let Some(t) = self.bg.get() {
            t.unpark();
        }
    }

    fn append_batch(&self, recs: &[&[u8]], d: Durability) -> Result<Range<u64>> {
        let bytes: u64 = recs.iter().map(|r| r.len() as u64 + FRAME_HDR as u64).sum();
        if bytes > self.max_batch {
            return Err(StreamError::TooLarge {
                stream: self.name.clone(),
                len: bytes,
                max: self.max_batch,
            }
            .into());
        }
        if recs.is_empty() {
            let g = lock(&self.st);
            return Ok(g.next..g.next);
        }
        // The frame headers (length, CRC-32C), computed before the lock;
        // the batch goes to the log in pieces, without a copy of its own.
        let n = recs.len();
        let frame_hdr = |r: &[u8]| -> [u8; FRAME_HDR] {
            let mut h = [0u8; FRAME_HDR];
            h[..4].copy_from_slice(&(r.len() as u32).to_le_bytes());
            h[4..].copy_from_slice(&format::record_crc(r).to_le_bytes());
            h
        };
        let hdrs: Vec<[u8; FRAME_HDR]> = recs.iter().map(|r| frame_hdr(r)).collect();
        let mut g = lock(&self.st);
        if let Some(f) = &g.failed {
            return Err(StreamError::Failed {
                stream: self.name.clone(),
                reason: f.clone(),
            }
            .into());
        }
        if self.pool.is_read_only() {
            return Err(crate::PoolError::ReadOnly(self.pool.name().to_string()).into());
        }
        let full = |g: &Tail| {
            g.mem
                .back()
                .is_some_and(|m| !m.pos.is_empty() && m.data.len() as u64 + bytes > self.seg_limit)
        };
        if full(&g) || g.active.is_none() {
            g = self.roll_waiting(g)?;
        }
        let first = g.next;
        let mut head = [0u8; format::BATCH_HDR + FRAME_HDR];
        head[..8].copy_from_slice(&first.to_le_bytes());
        head[8..12].copy_from_slice(&(n as u32).to_le_bytes());
        head[12..].copy_from_slice(&hdrs[0]);
        let mut parts: Vec<&[u8]> = Vec::with_capacity(2 * n);
        parts.push(&head);
        parts.push(recs[0]);
        for (h, r) in hdrs.iter().zip(recs).skip(1) {
            parts.push(h);
            parts.push(r);
        }
        let mut tries = 0;
        let log = loop {
            let Some(log) = g.active.clone() else {
                return Err(Error::Internal("stream without a tail".into()));
            };
            match log.append_v(&parts, false) {
                Ok(_) => break log,
                Err(MlogError::LogFull { .. }) if tries == 0 => {
                    tries += 1;
                    g = self.roll_waiting(g)?;
                }
                Err(e) => {
                    g.failed = Some(e.to_string());
                    return Err(e.into());
                }
            }
        };
        let Some(m) = g.mem.back_mut() else {
            return Err(Error::Internal("stream without a tail".into()));
        };
        // The frames, in memory (for reads and the seal).
        let data = Arc::make_mut(&mut m.data);
        data.reserve(bytes as usize);
        for (h, r) in hdrs.iter().zip(recs) {
            m.pos.push(data.len() as u32);
            data.extend_from_slice(h);
            data.extend_from_slice(r);
        }
        if m.started.is_none() {
            m.started = Some(Instant::now());
        }
        let end = first + n as u64;
        g.next = end;
        let prev = if d == Durability::Sync {
            g.prev.clone()
        } else {
            None
        };
        drop(g);
        if d == Durability::Sync {
            // The tail before this one first: offsets become durable in
            // order.
            let r = match prev {
                Some(p) => p.flush().and_then(|()| log.flush()),
                None => log.flush(),
            };
            if let Err(e) = r {
                lock(&self.st).failed = Some(e.to_string());
                return Err(e.into());
            }
            self.mark_durable(end);
        }
        Ok(first..end)
    }

    fn mark_durable(&self, end: u64) {
        let old = self.durable.fetch_max(end, Ordering::SeqCst);
        // Followers wait on the condition variable: notified only when
        // there are some (a notify is a system call).
        if end > old && self.waiters.load(Ordering::SeqCst) > 0 {
            let _g = lock(&self.st);
            self.cv.notify_all();
        }
    }

    fn durable(&self) -> u64 {
        self.durable.load(Ordering::SeqCst)
    }

    /// Make every record appended so far durable.
    fn sync(&self) -> Result<()> {
        let (prev, log, end) = {
            let g = lock(&self.st);
            (g.prev.clone(), g.active.clone(), g.next)
        };
        if let Some(p) = prev {
            p.flush()?;
        }
        if let Some(log) = log {
            log.flush()?;
        }
        self.mark_durable(end);
        Ok(())
    }

    fn read(&self, offset: u64) -> Result<Vec<u8>> {
        {
            let g = lock(&self.st);
            if offset < g.first {
                return Err(StreamError::Trimmed {
                    stream: self.name.clone(),
                    offset,
                    first: g.first,
                }
                .into());
            }
            let durable = self.durable();
            if offset >= durable {
                if let Some((at, why)) = &self.corrupt_at {
                    if offset == *at {
                        return Err(self.corrupt(offset, why.clone()));
                    }
                    return Err(self.corrupt(
                        offset,
                        format!("after the corrupt tail record at offset {at}: {why}"),
                    ));
                }
                return Err(StreamError::Beyond {
                    stream: self.name.clone(),
                    offset,
                    end: durable,
                }
                .into());
            }
            // The tail first: a segment leaves it only once it is sealed.
            if let Some(m) = g.mem.iter().find(|m| m.base <= offset && offset < m.end()) {
                let pos = m.pos[(offset - m.base) as usize] as usize;
                let r = format::frame_at(&m.data, pos).map_err(|e| self.corrupt(offset, e))?;
                return Ok(m.data[r].to_vec());
            }
        }
        let seg = {
            let s = crate::lock::read(&self.sealed);
            let i = s.partition_point(|x| x.meta.base + x.meta.count <= offset);
            match s.get(i) {
                Some(x) if x.meta.base <= offset => Arc::clone(x),
                _ => {
                    let first = lock(&self.st).first;
                    return Err(StreamError::Trimmed {
                        stream: self.name.clone(),
                        offset,
                        first,
                    }
                    .into());
                }
            }
        };
        self.read_sealed(&seg, offset)
    }

    fn seg_data(&self, seg: &Arc<Seg>) -> Result<Arc<SegData>> {
        let mut d = lock(&seg.data);
        if let Some(x) = &*d {
            return Ok(Arc::clone(x));
        }
        let id = mblock_id(seg.meta.mblock)?;
        let x = match self.pool.mcache_map(&[id], Advice::Hot) {
            Ok(m) => Arc::new(SegData::Map(m)),
            Err(e) if is_not_found(&e) => return Err(e),
            Err(e) => {
                tracing::debug!(
                    "stream {}: segment {id} not mapped ({e}); read into memory",
                    self.name
                );
                let mut buf = vec![0u8; seg.data_len as usize];
                if self.pool.mblock_read(id, 0, &mut buf).is_err() {
                    return Ok(Arc::new(SegData::Direct(id)));
                }
                let mut l = lock(&self.loaded);
                l.push_back(Arc::clone(seg));
                if l.len() > FALLBACK_SEGMENTS {
                    if let Some(old) = l.pop_front() {
                        if !Arc::ptr_eq(&old, seg) {
                            *lock(&old.data) = None;
                        }
                    }
                }
                Arc::new(SegData::Mem(Arc::new(buf)))
            }
        };
        *d = Some(Arc::clone(&x));
        Ok(x)
    }

    fn read_sealed(&self, seg: &Arc<Seg>, offset: u64) -> Result<Vec<u8>> {
        if let Some(bad) = &seg.bad {
            return Err(self.corrupt(offset, format!("segment footer: {bad}")));
        }
        let rel = offset - seg.meta.base;
        // The index entry at or before the record, and the next one: the
        // record lies between their positions.
        let i = seg.index.partition_point(|e| u64::from(e.0) <= rel);
        let Some(&(erel, epos)) = i.checked_sub(1).and_then(|i| seg.index.get(i)) else {
            return Err(self.corrupt(offset, "segment index has no entry for it"));
        };
        let end = seg.index.get(i).map_or(seg.data_len, |e| u64::from(e.1));
        if u64::from(epos) > end || end > seg.data_len {
            return Err(self.corrupt(offset, "segment index out of order"));
        }
        let range = u64::from(epos)..end;
        let data = self.seg_data(seg)?;
        let walk = |bytes: &[u8]| -> Result<Vec<u8>> {
            let mut pos = 0usize;
            let mut at = erel;
            // Frames before the record: their lengths only (the target's
            // checksum is what a read verifies).
            while u64::from(at) < rel {
                pos = format::skip_frame(bytes, pos)
                    .map_err(|e| self.corrupt(seg.meta.base + u64::from(at), e))?;
                at += 1;
            }
            let r = format::frame_at(bytes, pos).map_err(|e| self.corrupt(offset, e))?;
            Ok(bytes[r].to_vec())
        };
        match &*data {
            SegData::Map(m) => {
                m.load(0, range.clone())
                    .map_err(|e| seg_read_err(&self.name, offset, e))?;
                let g = m
                    .range(0, range)
                    .map_err(|e| seg_read_err(&self.name, offset, e))?;
                walk(&g)
            }
            SegData::Mem(b) => walk(&b[range.start as usize..range.end as usize]),
            SegData::Direct(id) => {
                let mut b = vec![0u8; (range.end - range.start) as usize];
                self.pool
                    .mblock_read(*id, range.start, &mut b)
                    .map_err(|e| seg_read_err(&self.name, offset, e))?;
                walk(&b)
            }
        }
    }

    /// Seal the oldest rolled tail; `Ok(false)`: nothing to seal.
    fn seal_one(&self) -> Result<bool> {
        let _one = lock(&self.seal_lock);
        // The tail to seal is listed in the catalog, and its records are
        // durable (the roll left its flush to the appenders).
        let (logged, prev) = {
            let g = lock(&self.st);
            if g.mem.len() < 2 {
                return Ok(false);
            }
            (g.mem.front().is_some_and(|m| m.logged), g.prev.clone())
        };
        if !logged {
            self.log_tails()?;
        }
        if let Some(p) = prev {
            p.flush()?;
        }
        let (mlog, base, data, pos, pace) = {
            let g = lock(&self.st);
            let Some(m) = g.mem.front() else {
                return Ok(false);
            };
            // Spread the copy over an eighth of the time the segment took
            // to fill (at most SEAL_PACE_MAX), unless another segment waits.
            let pace = if m.data.len() >= SEAL_PACE_MIN && g.mem.len() <= 2 {
                m.started
                    .map_or(Duration::ZERO, |t| t.elapsed() / SEAL_PACE_DIV)
                    .min(SEAL_PACE_MAX)
            } else {
                Duration::ZERO
            };
            (m.mlog, m.base, Arc::clone(&m.data), m.pos.clone(), pace)
        };
        let no = self.no;
        if pos.is_empty() {
            // An empty tail (one whose commit a crash prevented): no
            // segment, the catalog just forgets it.
            self.cat.log(CatRecord::Sealed {
                no,
                mblock: 0,
                mlog,
                base,
                count: 0,
                bytes: 0,
                sealed_ms: now_ms(),
            })?;
            let mut g = lock(&self.st);
            if g.mem.front().is_some_and(|m| m.mlog == mlog) {
                g.mem.pop_front();
            }
            self.cv.notify_all();
            return Ok(true);
        }
        let mut index: Vec<IndexEntry> = Vec::new();
        let mut last: Option<u64> = None;
        for (i, &p) in pos.iter().enumerate() {
            if last.is_none_or(|l| u64::from(p) >= l + INDEX_EVERY) {
                index.push((i as u32, p));
                last = Some(u64::from(p));
            }
        }
        let sealed_ms = now_ms();
        let t = Trailer {
            entries: index.len() as u32,
            no,
            base,
            count: pos.len() as u64,
            data_len: data.len() as u64,
            sealed_ms,
        };
        let footer = format::encode_footer(&t, &index);
        // The footer starts at a checksum block (and page) boundary, so
        // that damage to records never makes it unreadable.
        let align = u64::from(self.pool.csum_block()?.unwrap_or(0)).max(4096);
        let pad = (data.len() as u64).next_multiple_of(align) - data.len() as u64;
        let id = self.pool.mblock_alloc(MediaClass::Capacity)?;
        let raw = id.object_id().raw();
        let write = || -> Result<()> {
            self.cat.log(CatRecord::Pending {
                no,
                mblock: raw,
                mlog,
            })?;
            let chunks = data.len().div_ceil(SEAL_CHUNK).max(1);
            let nap = pace / chunks as u32;
            for (i, c) in data.chunks(SEAL_CHUNK).enumerate() {
                if i > 0 && !nap.is_zero() {
                    std::thread::sleep(nap);
                }
                self.pool.mblock_write(id, c)?;
            }
            if pad > 0 {
                self.pool.mblock_write(id, &vec![0u8; pad as usize])?;
            }
            self.pool.mblock_write(id, &footer)?;
            self.pool.mblock_commit(id)?;
            Ok(())
        };
        if let Err(e) = write() {
            let _ = self.pool.mblock_abort(id);
            return Err(e);
        }
        let bytes = data.len() as u64 + pad + footer.len() as u64;
        self.cat.log(CatRecord::Sealed {
            no,
            mblock: raw,
            mlog,
            base,
            count: t.count,
            bytes,
            sealed_ms,
        })?;
        let seg = Arc::new(Seg {
            meta: SegMeta {
                mblock: raw,
                mlog,
                base,
                count: t.count,
                bytes,
                sealed_ms,
            },
            index,
            data_len: t.data_len,
            bad: None,
            data: Mutex::new(None),
        });
        crate::lock::write(&self.sealed).push(seg);
        drop(data);
        let mut g = lock(&self.st);
        if g.mem.front().is_some_and(|m| m.mlog == mlog) {
            if let Some(m) = g.mem.pop_front() {
                // Its memory (pages touched) holds the next tail's records.
                if g.spare_buf.is_none() {
                    if let Ok(mut b) = Arc::try_unwrap(m.data) {
                        b.clear();
                        g.spare_buf = Some(b);
                    }
                }
            }
        }
        g.deletes.push(mlog);
        self.cv.notify_all();
        Ok(true)
    }

    fn trim(&self, pick: impl Fn(&SegMeta, usize, &[Arc<Seg>]) -> bool) -> Result<TrimReport> {
        let mut s = crate::lock::write(&self.sealed);
        let mut n = 0;
        while n < s.len() && pick(&s[n].meta, n, &s) {
            n += 1;
        }
        let first = lock(&self.st).first;
        if n == 0 {
            return Ok(TrimReport {
                first,
                ..TrimReport::default()
            });
        }
        let new_first = s[n - 1].meta.base + s[n - 1].meta.count;
        self.cat.log(CatRecord::Trim {
            no: self.no,
            first: new_first,
        })?;
        let gone: Vec<Arc<Seg>> = s.drain(..n).collect();
        drop(s);
        lock(&self.st).first = new_first.max(first);
        lock(&self.loaded).retain(|x| !gone.iter().any(|g| Arc::ptr_eq(g, x)));
        let mut rep = TrimReport {
            segments: n as u64,
            bytes: 0,
            first: new_first,
        };
        for seg in gone {
            rep.bytes += seg.meta.bytes;
            *lock(&seg.data) = None; // the map, so that the zone goes back now
            self.cat.drop_object(seg.meta.mblock);
        }
        Ok(rep)
    }
}

/// Scan a tail's records into `seg` (from `*next`, raised past each
/// batch). `Ok(Some((offset, reason)))`: the first record that is corrupt
/// or out of sequence (those before it are in `seg`); `Err`: the log
/// could not be read.
fn scan_tail(log: &Mlog, seg: &mut MemSeg, next: &mut u64) -> Result<Option<(u64, String)>> {
    let data = Arc::make_mut(&mut seg.data);
    let r = (|| -> Result<Option<(u64, String)>> {
        let mut rd = log.reader()?;
        while let Some(r) = rd.next_record() {
            let rec = match r {
                Ok((_, rec)) => rec,
                Err(MlogError::Corrupt { reason, .. }) => return Ok(Some((*next, reason))),
                Err(e) => return Err(e.into()),
            };
            let (first, frames, ranges) = match format::decode_batch(&rec) {
                Ok(b) => b,
                Err(e) => return Ok(Some((*next, e))),
            };
            if first != *next {
                return Ok(Some((
                    *next,
                    format!("tail batch at offset {first}, expected {next}"),
                )));
            }
            let at = data.len();
            data.extend_from_slice(frames);
            for r in &ranges {
                seg.pos.push((at + r.start - FRAME_HDR) as u32);
            }
            *next += ranges.len() as u64;
        }
        Ok(None)
    })();
    if !seg.pos.is_empty() {
        seg.started = Some(Instant::now());
    }
    r
}

/// Read and check a segment's footer: (index, bytes of records).
fn read_footer(
    pool: &Pool,
    id: MblockId,
    no: u64,
    s: &SegMeta,
) -> std::result::Result<(Vec<IndexEntry>, u64), String> {
    let len = pool.object_props(id).map_err(|e| e.to_string())?.len;
    if len < TRAILER_LEN as u64 {
        return Err(format!("segment {id} of {len} bytes"));
    }
    // One read of the segment's last bytes holds the whole footer of a
    // segment of up to 32 MiB (8 bytes of index per 4 KiB of records).
    // (When that read fails, records in front of the footer may be
    // damaged: the trailer alone, then the footer alone.)
    let mut guess = len.min(68 << 10);
    let mut last = vec![0u8; guess as usize];
    if pool.mblock_read(id, len - guess, &mut last).is_err() {
        guess = TRAILER_LEN as u64;
        last = vec![0u8; TRAILER_LEN];
        pool.mblock_read(id, len - guess, &mut last)
            .map_err(|e| format!("segment {id}: {e}"))?;
    }
    let t = format::decode_trailer(&last[last.len() - TRAILER_LEN..])
        .map_err(|e| format!("segment {id}: {e}"))?;
    let flen = u64::from(t.entries) * 8 + TRAILER_LEN as u64;
    if t.no != no || t.base != s.base || t.count != s.count || flen > len || t.data_len > len - flen
    {
        return Err(format!(
            "segment {id}: footer (stream {}, base {}, {} records, {} bytes) does not match the catalog",
            t.no, t.base, t.count, t.data_len
        ));
    }
    let footer = if flen <= guess {
        last.split_off((guess - flen) as usize)
    } else {
        let mut f = vec![0u8; flen as usize];
        pool.mblock_read(id, len - flen, &mut f)
            .map_err(|e| format!("segment {id}: {e}"))?;
        f
    };
    let index = format::check_footer(&footer).map_err(|e| format!("segment {id}: {e}"))?;
    Ok((index, t.data_len))
}

fn seg_read_err(stream: &str, offset: u64, e: Error) -> Error {
    match e {
        Error::Object(ObjectError::Checksum { .. }) => {
            format::corrupt(stream, offset, format!("segment read: {e}")).into()
        }
        e => e,
    }
}

/// The background thread of an open stream: group flushes, age rolls,
/// seals, spare tails, deferred deletes.
fn background(w: Weak<StreamInner>) {
    let mut backoff = Duration::ZERO;
    loop {
        // No strong reference while idle: the last handle's drop closes
        // the stream on the caller's thread.
        let wait = {
            let Some(s) = w.upgrade() else { return };
            let g = lock(&s.st);
            if g.stop {
                return;
            }
            let idle = g.mem.len() < 2 && s.durable() >= g.next;
            let every = s.group_every;
            if idle {
                every.max(Duration::from_millis(20))
            } else {
                every
            }
        };
        std::thread::park_timeout(wait.max(backoff));
        let Some(s) = w.upgrade() else { return };
        if lock(&s.st).stop {
            return;
        }
        if let Err(e) = s.sync() {
            tracing::warn!("stream {}: group flush: {e}", s.name);
            lock(&s.st).failed.get_or_insert(e.to_string());
        }
        let mut errs = false;
        // Tails a roll promoted go into the catalog first (before any seal
        // or new spare record).
        if let Err(e) = s.log_tails() {
            tracing::warn!("stream {}: listing a tail: {e}", s.name);
            lock(&s.st).spare_failed = true;
            s.cv.notify_all();
            errs = true;
        }
        if let Some(age) = s.max_age {
            let g = lock(&s.st);
            let old = g
                .mem
                .back()
                .and_then(|m| m.started)
                .is_some_and(|t| t.elapsed() >= age);
            // Only onto a spare made ready (this thread makes it below).
            if old && g.failed.is_none() && g.spare_log.is_some() {
                if let Err(e) = s.roll(g) {
                    tracing::warn!("stream {}: rolling the tail: {e}", s.name);
                    errs = true;
                }
            }
        }
        loop {
            match s.seal_one() {
                Ok(true) => {
                    lock(&s.st).seal_failed = false;
                    continue;
                }
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!("stream {}: sealing: {e}", s.name);
                    lock(&s.st).seal_failed = true;
                    s.cv.notify_all();
                    errs = true;
                    break;
                }
            }
        }
        let (need_spare, need_buf, deletes) = {
            let mut g = lock(&s.st);
            let unlogged = g.mem.iter().any(|m| !m.logged);
            (
                g.spare.is_none() && g.failed.is_none() && !unlogged,
                g.spare_buf.is_none()
                    && g.mem
                        .back()
                        .is_some_and(|m| m.data.len() as u64 >= s.seg_limit / 8),
                std::mem::take(&mut g.deletes),
            )
        };
        for raw in deletes {
            let r = mlog_id(raw).and_then(|id| s.pool.mlog_delete(id));
            match r {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(_) => lock(&s.st).deletes.push(raw),
            }
        }
        if need_spare {
            match s.make_spare() {
                Ok((raw, log)) => {
                    let mut g = lock(&s.st);
                    g.spare = Some(raw);
                    g.spare_log = Some(log);
                    g.spare_failed = false;
                    s.cv.notify_all();
                }
                Err(e) => {
                    tracing::warn!("stream {}: spare tail: {e}", s.name);
                    lock(&s.st).spare_failed = true;
                    s.cv.notify_all();
                    errs = true;
                }
            }
        }
        if need_buf {
            // Memory for the next tail, its pages touched here rather
            // than by the appends (a page fault per 4 KiB appended).
            let cap = s.seg_limit as usize;
            let mut b: Vec<u8> = Vec::new();
            if b.try_reserve_exact(cap).is_ok() {
                let n = cap.min(PREFAULT_MAX);
                // One byte per page: the write faults the page in.
                for page in b.spare_capacity_mut()[..n].chunks_mut(4096) {
                    page[0] = std::mem::MaybeUninit::new(0);
                }
                let mut g = lock(&s.st);
                if g.spare_buf.is_none() {
                    g.spare_buf = Some(b);
                }
            }
        }
        backoff = if errs {
            Duration::from_millis(200)
        } else {
            Duration::ZERO
        };
    }
}

impl Drop for StreamInner {
    fn drop(&mut self) {
        let g = self.st.get_mut().unwrap_or_else(|p| p.into_inner());
        g.stop = true;
        if let Some(t) = self.bg.get() {
            t.unpark();
        }
        for l in g.prev.iter().chain(&g.active) {
            if let Err(e) = l.flush() {
                tracing::warn!("stream {}: final flush: {e}", self.name);
            }
        }
    }
}

impl Stream {
    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Make every record durable, stop the stream's background thread
    /// (waiting for a seal in progress), seal the tails already rolled
    /// (not the active one) and drop this handle. Other
    /// handles of the stream keep working, without background work
    /// (group flushes then happen at their [`Stream::sync`] calls).
    /// Dropping the last handle without `close` flushes too, but lets a
    /// background step in progress finish on its own.
    pub fn close(self) -> Result<()> {
        let r = self.inner.sync();
        lock(&self.inner.st).stop = true;
        self.inner.wake();
        let h = lock(&self.inner.join).take();
        if let Some(h) = h {
            if h.thread().id() != std::thread::current().id() && h.join().is_err() {
                return Err(Error::Internal(
                    "a stream's background thread panicked".into(),
                ));
            }
        }
        r?;
        if !self.inner.pool.is_read_only() {
            while self.inner.seal_one()? {}
        }
        Ok(())
    }

    /// Append one record, durable on return; its offset.
    pub fn append(&self, record: &[u8]) -> Result<u64> {
        Ok(self.inner.append_batch(&[record], Durability::Sync)?.start)
    }

    /// Append one record with the given durability; its offset.
    pub fn append_with(&self, record: &[u8], d: Durability) -> Result<u64> {
        Ok(self.inner.append_batch(&[record], d)?.start)
    }

    /// Append records atomically (all or none survive a crash), at
    /// consecutive offsets; the range of their offsets.
    pub fn append_batch(&self, records: &[&[u8]], d: Durability) -> Result<Range<u64>> {
        self.inner.append_batch(records, d)
    }

    /// Make every record appended so far durable.
    pub fn sync(&self) -> Result<()> {
        self.inner.sync()
    }

    /// Wait until the record at `offset` is durable (flushing if needed).
    pub fn wait_durable(&self, offset: u64) -> Result<()> {
        if self.inner.durable() > offset {
            return Ok(());
        }
        self.inner.sync()
    }

    /// The record at `offset`, checked against its CRC.
    pub fn read(&self, offset: u64) -> Result<Vec<u8>> {
        self.inner.read(offset)
    }

    /// The first offset held (records below were trimmed).
    pub fn first(&self) -> u64 {
        lock(&self.inner.st).first
    }

    /// The next offset an append gets.
    pub fn next_offset(&self) -> u64 {
        lock(&self.inner.st).next
    }

    /// Offsets below this are durable and readable.
    pub fn durable(&self) -> u64 {
        self.inner.durable()
    }

    /// Records from `from` up to the durable end as of each step:
    /// `(offset, bytes)`. Starts at the first offset held when `from` was
    /// trimmed.
    pub fn iter(&self, from: u64) -> StreamIter {
        let from = from.max(self.first());
        StreamIter {
            s: self.clone(),
            next: from,
            done: false,
        }
    }

    /// A cursor from `from` that waits for new records.
    pub fn follow(&self, from: u64) -> Follower {
        Follower {
            s: self.clone(),
            next: from.max(self.first()),
        }
    }

    /// The stream's state.
    pub fn stat(&self) -> StreamStat {
        let i = &self.inner;
        let segments: Vec<SegMeta> = crate::lock::read(&i.sealed)
            .iter()
            .map(|s| s.meta.clone())
            .collect();
        let g = lock(&i.st);
        StreamStat {
            name: i.name.clone(),
            first: g.first,
            next: g.next,
            durable: i.durable(),
            sealed_bytes: segments.iter().map(|s| s.bytes).sum(),
            segments,
            tail_records: g.mem.iter().map(|m| m.pos.len() as u64).sum(),
            tail_bytes: g.mem.iter().map(|m| m.data.len() as u64).sum(),
            tail_class: i.tail_class.to_string(),
            segment_bytes: i.seg_limit,
            max_age_ms: i.max_age.map_or(0, |d| d.as_millis() as u64),
            created_ms: i.created_ms,
        }
    }

    /// Every object the stream holds: its sealed segments (mblocks), its
    /// tails and its spare tail (mlogs).
    pub fn objects(&self) -> Vec<ObjectId> {
        let i = &self.inner;
        let mut v: Vec<u64> = crate::lock::read(&i.sealed)
            .iter()
            .map(|s| s.meta.mblock)
            .collect();
        let g = lock(&i.st);
        v.extend(g.mem.iter().map(|m| m.mlog));
        v.extend(g.spare);
        v.extend(g.deletes.iter().copied());
        v.into_iter().filter_map(ObjectId::from_raw).collect()
    }

    /// Seal the tail now (a new tail takes the appends; the background
    /// thread writes the segment). [`Stream::wait_sealed`] waits for it.
    pub fn roll(&self) -> Result<()> {
        let g = lock(&self.inner.st);
        if g.mem.back().is_some_and(|m| m.pos.is_empty()) {
            return Ok(());
        }
        self.inner.roll(g).map(drop)
    }

    /// Seal every rolled tail on this thread (what the background thread
    /// does); returns once none is left.
    pub fn wait_sealed(&self) -> Result<()> {
        while self.inner.seal_one()? {}
        Ok(())
    }

    /// Delete the sealed segments whose records are all below `offset`.
    pub fn trim_before(&self, offset: u64) -> Result<TrimReport> {
        self.inner.trim(|m, _, _| m.base + m.count <= offset)
    }

    /// Delete the oldest sealed segments until the sealed ones take at
    /// most `bytes`.
    pub fn trim_to_size(&self, bytes: u64) -> Result<TrimReport> {
        self.inner
            .trim(|_, n, all| all[n..].iter().map(|s| s.meta.bytes).sum::<u64>() > bytes)
    }

    /// Delete the sealed segments sealed more than `age` ago.
    pub fn trim_older_than(&self, age: Duration) -> Result<TrimReport> {
        let limit = now_ms().saturating_sub(age.as_millis() as u64);
        self.inner.trim(|m, _, _| m.sealed_ms < limit)
    }
}

/// Records of a stream from an offset (see [`Stream::iter`]).
#[derive(Debug)]
pub struct StreamIter {
    s: Stream,
    next: u64,
    done: bool,
}

impl StreamIter {
    /// The offset of the next record.
    pub fn position(&self) -> u64 {
        self.next
    }
}

impl Iterator for StreamIter {
    type Item = Result<(u64, Vec<u8>)>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.next >= self.s.durable() {
            // A tail found corrupt at open: its record is the error.
            match &self.s.inner.corrupt_at {
                Some((at, _)) if *at == self.next => {}
                _ => return None,
            }
        }
        let off = self.next;
        match self.s.read(off) {
            Ok(b) => {
                self.next += 1;
                Some(Ok((off, b)))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// A cursor that waits for new records (see [`Stream::follow`]).
#[derive(Debug)]
pub struct Follower {
    s: Stream,
    next: u64,
}

impl Follower {
    /// The offset of the next record.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The next record, waiting up to `timeout` for it (`None`: forever);
    /// `Ok(None)` when none came in time.
    pub fn next_timeout(&mut self, timeout: Option<Duration>) -> Result<Option<(u64, Vec<u8>)>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let i = &self.s.inner;
        if i.durable() <= self.next && i.corrupt_at.is_none() {
            // Woken by the append that makes the record durable (see
            // `mark_durable`: it notifies when `waiters` is not zero).
            let mut g = lock(&i.st);
            i.waiters.fetch_add(1, Ordering::SeqCst);
            let r = loop {
                if i.durable() > self.next {
                    break true;
                }
                let wait = match deadline {
                    Some(d) => match d.checked_duration_since(Instant::now()) {
                        Some(w) if !w.is_zero() => w,
                        _ => break false,
                    },
                    None => Duration::from_millis(100),
                };
                g =
                    i.cv.wait_timeout(g, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
            };
            i.waiters.fetch_sub(1, Ordering::SeqCst);
            drop(g);
            if !r {
                return Ok(None);
            }
        }
        let off = self.next;
        let b = self.s.read(off)?;
        self.next += 1;
        Ok(Some((off, b)))
    }
}

impl Iterator for Follower {
    type Item = Result<(u64, Vec<u8>)>;
    /// Blocks until the next record is durable.
    fn next(&mut self) -> Option<Self::Item> {
        self.next_timeout(None).transpose()
    }
}
