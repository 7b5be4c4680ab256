//! Per-block checksums on the read path: the bounded cache of checksum
//! tables, loading a table on the first read of an mblock (from its zone,
//! or derived from a legacy mblock's verified content), and the record of
//! checksum mismatches the pool's health counts.
//!
//! A format-3 mblock's table is read from its zone and checked against
//! the table CRC in its record. A table that fails its CRC (rot in the
//! table itself) is not trusted: the whole content is read and its block
//! checksums recomputed; when their CRC matches the record, the content is
//! intact and the recomputed table serves the reads (the damaged table is
//! recorded, reads succeed); when not, each block whose stored and
//! recomputed checksums disagree is marked bad. A legacy mblock (record
//! types 4 and 7: a whole-content CRC only) is read whole on its first
//! read; when its CRC matches, the block checksums computed on the way are
//! kept as its table. One that does not match gets no table: every read of
//! it fails with the whole content as the damaged range.

use super::mblock::{self, BadRange, Table};
use super::object::Obj;
use super::{Catalog, ClassDev};
use crate::error::{ObjectError, Result};
use crate::format::record::CsumLayout;
use crate::lock::{lock, read as rlock, write as wlock, Padded};
use crate::objid::ObjectId;
use serde::Serialize;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Default bound of the checksum-table cache: 64 MiB, the tables of
/// 64 GiB of content in 4 KiB blocks.
pub const DEFAULT_CSUM_CACHE_BYTES: u64 = 64 << 20;

/// Default checksum block of new mblocks: 4 KiB (log2 12), the size that
/// measured best (BENCHMARKS.md, "Per-block checksums").
pub const DEFAULT_CSUM_SHIFT: u8 = 12;

/// A checksum mismatch found in an mblock: content bytes
/// `offset..offset + len`, or (`table`) its checksum table, bytes
/// `offset..offset + len` of its zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Damage {
    /// The mblock.
    pub id: ObjectId,
    /// First byte.
    pub offset: u64,
    /// Bytes.
    pub len: u64,
    /// The checksum table is damaged (its content verified against the
    /// record nonetheless); `offset` and `len` are zone bytes.
    pub table: bool,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.table {
            write!(
                f,
                "mblock {}: checksum table damaged (zone bytes {}..{}); content verified against its record",
                self.id,
                self.offset,
                self.offset + self.len
            )
        } else {
            write!(
                f,
                "mblock {}: bytes {}..{} do not match their checksums",
                self.id,
                self.offset,
                self.offset + self.len
            )
        }
    }
}

/// Where checksum mismatches go as they are found (the pool persists
/// them for its health).
pub(crate) type DamageSink = Box<dyn Fn(&Damage) + Send + Sync>;

struct Entry {
    table: Arc<Table>,
    used: AtomicU64,
}

type TableMap = super::idmap::IdHashMap<Entry>;

/// Checksum tables by object, bounded in bytes, least recently used out.
/// Lookups take a shared lock and stamp the entry with the current epoch
/// (a plain load of the shared counter, and a store only when the stamp
/// changes: no cache line written by every read); each insert into a cache
/// at least half full starts a new epoch (in one less full, entries
/// inserted meanwhile share one and go in ID order among themselves), and
/// one over the bound evicts the least recently stamped down to 7/8 of the
/// bound (so a full cache sorts its entries once per many inserts, not
/// every time).
///
/// The bytes held are counted per stripe and carried to the shared count
/// only once a stripe's change since it last did passes 1/128 of the
/// bound: two threads that commit and delete in stripes of their own
/// then write no common line but the epoch's. The shared count an insert
/// checks against the bound is short by at most that much per stripe,
/// so the cache can go over its bound by up to an eighth of it before an
/// eviction; [`TableCache::bytes`] adds every stripe's share and is exact.
pub(crate) struct TableCache {
    /// This cache's number, unique in the process: what the threads' table
    /// memos ([`Catalog::with_table`]) tell pools apart by.
    pub(super) gen: u64,
    /// The entries in stripes by MDC (as `idmap`), so that threads
    /// committing and deleting in different MDCs take different locks
    /// (each stripe on lines of its own).
    maps: [Padded<Stripe>; super::idmap::STRIPES],
    /// The counters inserts write, on lines of their own: the bound and
    /// the fields around the cache (the checksum block size every
    /// allocation reads) stay in the readers' caches.
    counts: Padded<Counts>,
    cap: AtomicU64,
}

/// One stripe of a [`TableCache`].
#[derive(Default)]
struct Stripe {
    map: RwLock<TableMap>,
    /// Bytes this stripe's inserts added, less those its removals took,
    /// not yet carried to [`Counts::bytes`]; written under `map`'s
    /// write lock.
    unsettled: AtomicI64,
}

/// The epoch and the bytes held of a [`TableCache`] (less what the
/// stripes have not carried over: [`Stripe::unsettled`]).
#[derive(Debug, Default)]
struct Counts {
    tick: AtomicU64,
    bytes: AtomicI64,
}

impl std::fmt::Debug for TableCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableCache")
            .field("bytes", &self.bytes())
            .field("cap", &self.cap.load(Ordering::Relaxed))
            .finish()
    }
}

impl Default for TableCache {
    fn default() -> Self {
        static GEN: AtomicU64 = AtomicU64::new(1);
        TableCache {
            gen: GEN.fetch_add(1, Ordering::Relaxed),
            maps: std::array::from_fn(|_| Padded(Stripe::default())),
            counts: Padded::default(),
            cap: AtomicU64::new(DEFAULT_CSUM_CACHE_BYTES),
        }
    }
}

impl TableCache {
    fn stripe(&self, id: u64) -> &Stripe {
        &self.maps[super::idmap::stripe_of(id)]
    }

    /// Count `change` bytes in stripe `s` (its write lock held) and
    /// carry the stripe's unsettled bytes to the shared count once they
    /// pass 1/128 of the bound. Returns the shared count with this
    /// stripe's share added: short of the total by the other stripes'
    /// unsettled bytes at most.
    fn account(&self, s: &Stripe, change: i64) -> u64 {
        let cap = self.cap.load(Ordering::Relaxed);
        let step = i64::try_from(cap / (8 * super::idmap::STRIPES as u64)).unwrap_or(i64::MAX);
        let d = s.unsettled.load(Ordering::Relaxed) + change;
        let shared = if d.abs() > step {
            s.unsettled.store(0, Ordering::Relaxed);
            self.counts.bytes.fetch_add(d, Ordering::Relaxed) + d
        } else {
            s.unsettled.store(d, Ordering::Relaxed);
            self.counts.bytes.load(Ordering::Relaxed) + d
        };
        u64::try_from(shared).unwrap_or(0)
    }

    pub(crate) fn get(&self, id: u64) -> Option<Arc<Table>> {
        let m = rlock(&self.stripe(id).map);
        let e = m.get(&id)?;
        let now = self.counts.tick.load(Ordering::Relaxed);
        if e.used.load(Ordering::Relaxed) != now {
            e.used.store(now, Ordering::Relaxed);
        }
        Some(Arc::clone(&e.table))
    }

    pub(crate) fn insert(&self, id: u64, table: Arc<Table>) {
        let cap = self.cap.load(Ordering::Relaxed);
        let n = table.mem_bytes();
        if n > cap {
            return; // larger than the whole cache: used once, not kept
        }
        let total = {
            let s = self.stripe(id);
            let mut m = wlock(&s.map);
            // A new epoch only once the cache is half full: until then no
            // eviction is near, and the inserts (of tables that commits
            // make and deletes drop again at once, in a cache that stays
            // near empty) write no line in common.
            let half = self.counts.bytes.load(Ordering::Relaxed) >= bytes_i64(cap / 2);
            let used = AtomicU64::new(if half {
                self.counts.tick.fetch_add(1, Ordering::Relaxed) + 1
            } else {
                self.counts.tick.load(Ordering::Relaxed)
            });
            let old = m.insert(id, Entry { table, used });
            let change = bytes_i64(n) - old.map_or(0, |o| bytes_i64(o.table.mem_bytes()));
            self.account(s, change)
        };
        if total > cap {
            self.evict(cap - cap / 8, id);
        }
    }

    /// Remove the least recently stamped entries, `keep` excepted, until
    /// the cache holds at most `to` bytes. One stripe's lock at a time.
    fn evict(&self, to: u64, keep: u64) {
        let mut by_age: Vec<(u64, u64)> = Vec::new();
        for s in &self.maps {
            by_age.extend(
                rlock(&s.map)
                    .iter()
                    .filter(|(k, _)| **k != keep)
                    .map(|(k, e)| (e.used.load(Ordering::Relaxed), *k)),
            );
        }
        by_age.sort_unstable();
        let mut held = self.bytes();
        for (_, k) in by_age {
            if held <= to {
                break;
            }
            let s = self.stripe(k);
            let mut m = wlock(&s.map);
            if let Some(e) = m.remove(&k) {
                let n = e.table.mem_bytes();
                self.account(s, -bytes_i64(n));
                held = held.saturating_sub(n);
            }
        }
    }

    pub(crate) fn remove(&self, id: u64) {
        let s = self.stripe(id);
        let mut m = wlock(&s.map);
        if let Some(e) = m.remove(&id) {
            self.account(s, -bytes_i64(e.table.mem_bytes()));
        }
    }

    pub(crate) fn set_cap(&self, cap: u64) {
        self.cap.store(cap, Ordering::Relaxed);
        // Shares kept under the old bound's step: carried now, so that the
        // shared count an insert checks is short by the new step at most.
        for st in &self.maps {
            let _m = wlock(&st.map);
            let d = st.unsettled.swap(0, Ordering::Relaxed);
            self.counts.bytes.fetch_add(d, Ordering::Relaxed);
        }
        if self.bytes() > cap {
            self.evict(cap, u64::MAX);
        }
    }

    /// Bytes of tables held: the shared count and every stripe's
    /// unsettled share.
    pub(crate) fn bytes(&self) -> u64 {
        let unsettled: i64 = self
            .maps
            .iter()
            .map(|s| s.unsettled.load(Ordering::Relaxed))
            .sum();
        u64::try_from(self.counts.bytes.load(Ordering::Relaxed) + unsettled).unwrap_or(0)
    }
}

/// A table's bytes as a signed count (a table is far below `i64::MAX`).
fn bytes_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Entries of each thread's table memo ([`Catalog::with_table`]) and of
/// its record memo: sets of [`MEMO_WAYS`] entries (a power of two of
/// them).
const THREAD_MEMO: usize = 64;

/// Entries per set of a memo: an object may sit in any entry of its set,
/// so a few objects whose hashes meet do not push each other out on every
/// read, as they did in a memo of one entry per hash (about one read in
/// six missed both memos with 24 mblocks read at random). A miss puts
/// the object first in its set and drops the set's last.
const MEMO_WAYS: usize = 4;

/// A memo entry: cache number, object ID, its table.
type MemoEntry = Option<(u64, u64, Arc<Table>)>;

thread_local! {
    static THREAD_TABLES: std::cell::RefCell<Vec<MemoEntry>> =
        std::cell::RefCell::new(vec![None; THREAD_MEMO]);
}

/// A thread's memo of committed records: (cache generation, object, the
/// MDC's change count when looked up, the record).
type ObjMemoEntry = Option<(u64, u64, u64, Obj)>;

thread_local! {
    static THREAD_OBJS: std::cell::RefCell<Vec<ObjMemoEntry>> =
        std::cell::RefCell::new(vec![None; THREAD_MEMO]);
}

/// The memoized record of object `key.1` of the catalog whose cache
/// generation is `key.0`, if it was looked up when its MDC's change count
/// was `gen` (the count now).
pub(super) fn memo_obj(key: (u64, u64), gen: u64) -> Option<Obj> {
    THREAD_OBJS
        .try_with(|m| {
            let m = m.try_borrow().ok()?;
            m.get(memo_set(key.0, key.1))?.iter().find_map(|e| match e {
                Some((c, k, g, o)) if (*c, *k, *g) == (key.0, key.1, gen) => Some(*o),
                _ => None,
            })
        })
        .ok()
        .flatten()
}

/// Remember record `o` of object `key.1`, looked up at change count `gen`.
pub(super) fn memo_obj_put(key: (u64, u64), gen: u64, o: Obj) {
    let _ = THREAD_OBJS.try_with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            if let Some(set) = m.get_mut(memo_set(key.0, key.1)) {
                memo_insert(
                    set,
                    |e| e.is_some_and(|e| (e.0, e.1) == key),
                    (key.0, key.1, gen, o),
                );
            }
        }
    });
}

/// The entries of the memo set of object `raw` of cache `gen`.
fn memo_set(gen: u64, raw: u64) -> std::ops::Range<usize> {
    // Fibonacci hashing: the top bits of the product.
    let set = ((raw ^ gen.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        >> (64 - (THREAD_MEMO / MEMO_WAYS).trailing_zeros())) as usize;
    set * MEMO_WAYS..(set + 1) * MEMO_WAYS
}

/// Put `v` first in memo set `set`: in place of the entry `same` picks
/// (the same object, stale), or else in place of the last one.
fn memo_insert<T>(set: &mut [Option<T>], same: impl Fn(&Option<T>) -> bool, v: T) {
    let end = set
        .iter()
        .position(same)
        .unwrap_or(set.len().saturating_sub(1));
    if let Some(head) = set.get_mut(..=end) {
        head.rotate_right(1);
        if let Some(first) = head.first_mut() {
            *first = Some(v);
        }
    }
}

/// The checksum-related state of an open catalog.
#[derive(Default)]
pub(crate) struct Csums {
    pub(crate) cache: TableCache,
    /// Checksum block of new mblocks (log2), format-3 pools.
    pub(crate) shift: std::sync::atomic::AtomicU8,
    /// Mismatches found since open (each once).
    found: Mutex<Vec<Damage>>,
    /// How many `found` holds (stored under its lock): a delete, which
    /// forgets its object's mismatches, takes the lock only when there
    /// are some, not on every delete of every thread.
    found_len: std::sync::atomic::AtomicUsize,
    sink: std::sync::OnceLock<DamageSink>,
}

impl std::fmt::Debug for Csums {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Csums")
            .field("cache", &self.cache)
            .field("shift", &self.shift)
            .finish()
    }
}

impl Csums {
    pub(crate) fn new() -> Self {
        let c = Csums::default();
        c.shift.store(DEFAULT_CSUM_SHIFT, Ordering::Relaxed);
        c
    }
}

impl Catalog {
    /// Record a mismatch (once per range) and hand it to the sink.
    pub(crate) fn note_damage(&self, d: Damage) {
        let c = &self.inner.csums;
        {
            let mut f = lock(&c.found);
            if f.contains(&d) {
                return;
            }
            f.push(d);
            c.found_len.store(f.len(), Ordering::Release);
        }
        tracing::warn!("{d}");
        if let Some(s) = c.sink.get() {
            s(&d);
        }
    }

    /// Mismatches found by this process since the pool was opened.
    pub(crate) fn damage_found(&self) -> Vec<Damage> {
        lock(&self.inner.csums.found).clone()
    }

    /// Forget the mismatches found in `id` (deleted).
    pub(crate) fn forget_damage(&self, id: ObjectId) {
        let c = &self.inner.csums;
        if c.found_len.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut f = lock(&c.found);
        f.retain(|d| d.id != id);
        c.found_len.store(f.len(), Ordering::Release);
    }

    /// Replace the mismatches found with `found` (a full scrub's).
    pub(crate) fn reset_damage(&self, found: &[Damage]) {
        let c = &self.inner.csums;
        let mut f = lock(&c.found);
        *f = found.to_vec();
        c.found_len.store(f.len(), Ordering::Release);
    }

    /// Where mismatches go as they are found (once).
    pub(crate) fn set_damage_sink(&self, sink: DamageSink) {
        let _ = self.inner.csums.sink.set(sink);
    }

    /// Bound the checksum-table cache to `bytes`.
    pub(crate) fn set_csum_cache_bytes(&self, bytes: u64) {
        self.inner.csums.cache.set_cap(bytes);
    }

    /// Bytes of checksum tables cached.
    pub(crate) fn csum_cache_bytes(&self) -> u64 {
        self.inner.csums.cache.bytes()
    }

    /// The checksum block size of mblocks allocated from now on (format
    /// version 3): a power of two, 4 KiB to 64 KiB.
    pub(crate) fn set_csum_block(&self, bytes: u32) -> Result<()> {
        let shift = csum_shift_of(bytes)?;
        self.inner.csums.shift.store(shift, Ordering::Relaxed);
        Ok(())
    }

    /// The checksum block size new mblocks get; `None` without block
    /// checksums (format versions 1 and 2).
    pub(crate) fn csum_block(&self) -> Option<u32> {
        self.inner
            .features
            .block_csums()
            .then(|| 1u32 << self.inner.csums.shift.load(Ordering::Relaxed))
    }

    /// The checksum error for content bytes `r` of `id`, recorded.
    pub(crate) fn csum_error(&self, id: ObjectId, r: BadRange) -> crate::error::Error {
        self.note_damage(Damage {
            id,
            offset: r.offset,
            len: r.len,
            table: false,
        });
        ObjectError::Checksum {
            id,
            offset: r.offset,
            len: r.len,
        }
        .into()
    }

    /// The table that reads of committed mblock `id` (record `o`) verify
    /// against: cached, or loaded now (see the module's documentation).
    pub(super) fn table(&self, id: ObjectId, o: &Obj) -> Result<Arc<Table>> {
        let cache = &self.inner.csums.cache;
        if let Some(t) = cache.get(id.raw()) {
            return Ok(t);
        }
        let c = self.inner.class(o.class())?;
        let t = Arc::new(self.load_table(id, o, c)?);
        cache.insert(id.raw(), Arc::clone(&t));
        Ok(t)
    }

    /// Run `f` on the table of committed mblock `id` (record `o`), taken
    /// from this thread's memo of the last tables it used when it is
    /// there: a read then touches no lock, hash or reference count that
    /// other threads write (threads reading at once would otherwise trade
    /// those cache lines on every read). On a miss the table comes from
    /// [`Catalog::table`] and goes into the memo. A table never changes
    /// once loaded and object IDs are never used again, so a memo entry
    /// stays right; the memo holds at most `THREAD_MEMO` tables per
    /// thread beyond the cache's bound, until their slots are reused.
    pub(super) fn with_table<R>(
        &self,
        id: ObjectId,
        o: &Obj,
        f: impl FnOnce(&Table) -> R,
    ) -> Result<R> {
        let (gen, raw) = (self.inner.csums.cache.gen, id.raw());
        let set = memo_set(gen, raw);
        let mut f = Some(f);
        let hit = THREAD_TABLES.with(|m| {
            let m = m.try_borrow().ok()?;
            let t = m.get(set.clone())?.iter().find_map(|e| match e {
                Some((g, k, t)) if *g == gen && *k == raw => Some(t),
                _ => None,
            })?;
            f.take().map(|f| f(t))
        });
        if let Some(r) = hit {
            return Ok(r);
        }
        let t = self.table(id, o)?;
        THREAD_TABLES.with(|m| {
            // Busy only if `f` of an outer call reads again: then no memo.
            if let Ok(mut m) = m.try_borrow_mut() {
                if let Some(s) = m.get_mut(set) {
                    memo_insert(s, |_| false, (gen, raw, Arc::clone(&t)));
                }
            }
        });
        match f.take() {
            Some(f) => Ok(f(&t)),
            None => Err(crate::error::invariant_broken(
                "a table memo ran its reader and still missed",
            )),
        }
    }

    fn load_table(&self, id: ObjectId, o: &Obj, c: &ClassDev) -> Result<Table> {
        let (dev, base, len) = (c.dev.as_ref(), c.off(o.zone), u64::from(o.a));
        if o.shift == 0 {
            // Legacy: the whole content once, twice if it does not match.
            let shift = DEFAULT_CSUM_SHIFT;
            let scan = || mblock::scan_content(dev, base, len, Some(shift));
            let mut got = scan()?;
            if got.0 != o.b {
                got = scan()?;
            }
            return match got {
                (crc, Some(t)) if crc == o.b => Ok(t),
                _ => Err(self.csum_error(id, BadRange { offset: 0, len })),
            };
        }
        let mut t = mblock::read_table(dev, base, len, o.shift)?;
        if t.crc() == o.b {
            return Ok(t);
        }
        t = mblock::read_table(dev, base, len, o.shift)?;
        if t.crc() == o.b {
            return Ok(t);
        }
        // The table is damaged: recompute it from the content.
        let layout = CsumLayout {
            len,
            shift: o.shift,
            sector: u64::from(dev.sector()),
        };
        self.note_damage(Damage {
            id,
            offset: layout.table_offset(),
            len: layout.table_span(),
            table: true,
        });
        let (_, derived) = mblock::scan_content(dev, base, len, Some(o.shift))?;
        let mut derived = derived.unwrap_or_else(|| Table::from_bytes(o.shift, &[]));
        if derived.crc() == o.b {
            return Ok(derived);
        }
        // Content damaged too: a block is good where the stored and the
        // recomputed checksums agree.
        derived.bad = (0..derived.crcs.len() as u64)
            .filter(|&i| t.crcs.get(i as usize) != derived.crcs.get(i as usize))
            .collect();
        Ok(derived)
    }

    /// Every damaged range of committed mblock `id` (record `o`), reading
    /// all of it: what `check` reports. Mismatches are recorded.
    pub(super) fn scrub(&self, id: ObjectId, o: &Obj) -> Result<Vec<Damage>> {
        let c = self.inner.class(o.class())?;
        let (dev, base, len) = (c.dev.as_ref(), c.off(o.zone), u64::from(o.a));
        let mut out = Vec::new();
        if o.shift == 0 {
            // A legacy mblock: per block against the table derived when its
            // whole CRC last matched, if it is cached; else by its CRC.
            match self.inner.csums.cache.get(id.raw()) {
                Some(t) => {
                    for r in mblock::bad_blocks(dev, base, len, &t)? {
                        out.push(Damage {
                            id,
                            offset: r.offset,
                            len: r.len,
                            table: false,
                        });
                    }
                }
                None => {
                    if mblock::content_crc(dev, base, len)? != o.b {
                        out.push(Damage {
                            id,
                            offset: 0,
                            len,
                            table: false,
                        });
                    }
                }
            }
        } else {
            // From the media, not from the cache: a scrub reads it all.
            let layout = CsumLayout {
                len,
                shift: o.shift,
                sector: u64::from(dev.sector()),
            };
            if mblock::read_table(dev, base, len, o.shift)?.crc() != o.b {
                out.push(Damage {
                    id,
                    offset: layout.table_offset(),
                    len: layout.table_span(),
                    table: true,
                });
            }
            self.inner.csums.cache.remove(id.raw());
            let t = self.load_table(id, o, c)?;
            for r in mblock::bad_blocks(dev, base, len, &t)? {
                out.push(Damage {
                    id,
                    offset: r.offset,
                    len: r.len,
                    table: false,
                });
            }
        }
        for d in &out {
            self.note_damage(*d);
        }
        Ok(out)
    }
}

/// log2 of a checksum block size, refusing sizes that are not a power of
/// two from 4 KiB to 64 KiB.
pub(crate) fn csum_shift_of(bytes: u32) -> Result<u8> {
    use crate::format::record::{CSUM_SHIFT_MAX, CSUM_SHIFT_MIN};
    let shift = bytes.trailing_zeros() as u8;
    if !bytes.is_power_of_two() || !(CSUM_SHIFT_MIN..=CSUM_SHIFT_MAX).contains(&shift) {
        return Err(crate::error::Error::InvalidArgument(format!(
            "checksum block size {bytes}: a power of two from {} to {} bytes",
            1u32 << CSUM_SHIFT_MIN,
            1u32 << CSUM_SHIFT_MAX
        )));
    }
    Ok(shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: usize) -> Arc<Table> {
        Arc::new(Table {
            shift: 12,
            crcs: vec![0; n],
            bad: Vec::new(),
        })
    }

    /// Objects whose hashes fall in one memo set all stay memoized up to
    /// the set's size (a memo of one entry per hash lost one of any two);
    /// one more drops the oldest, a newer record of an object replaces its
    /// own stale entry, and a stale record is never returned.
    #[test]
    fn objects_of_one_memo_set_stay_memoized_together() {
        std::thread::spawn(|| {
            let gen = 7u64;
            let set = memo_set(gen, 0);
            let same: Vec<u64> = (1..100_000u64)
                .filter(|&raw| memo_set(gen, raw) == set)
                .take(MEMO_WAYS + 1)
                .collect();
            assert_eq!(same.len(), MEMO_WAYS + 1);
            let obj = |zone: u32| Obj {
                zone,
                a: 4096,
                b: 0,
                shift: 12,
                class: crate::format::superblock::MediaClass::Capacity,
            };
            for (i, &raw) in same.iter().take(MEMO_WAYS).enumerate() {
                memo_obj_put((gen, raw), 1, obj(i as u32));
            }
            for (i, &raw) in same.iter().take(MEMO_WAYS).enumerate() {
                assert_eq!(memo_obj((gen, raw), 1).map(|o| o.zone), Some(i as u32));
                assert!(memo_obj((gen, raw), 2).is_none(), "a stale record");
            }
            // A newer record of the newest replaces its entry, in place of
            // taking another.
            memo_obj_put((gen, same[MEMO_WAYS - 1]), 2, obj(99));
            assert_eq!(
                memo_obj((gen, same[MEMO_WAYS - 1]), 2).map(|o| o.zone),
                Some(99)
            );
            assert!(memo_obj((gen, same[0]), 1).is_some());
            // One more object than the set holds: the oldest goes.
            memo_obj_put((gen, same[MEMO_WAYS]), 1, obj(50));
            assert_eq!(
                memo_obj((gen, same[MEMO_WAYS]), 1).map(|o| o.zone),
                Some(50)
            );
            assert!(memo_obj((gen, same[0]), 1).is_none());
            for &raw in &same[1..MEMO_WAYS - 1] {
                assert!(memo_obj((gen, raw), 1).is_some());
            }
        })
        .join()
        .unwrap();
    }

    /// Below 1/128 of the bound a stripe keeps its bytes to itself (the
    /// shared count does not move), `bytes()` still counts them exactly,
    /// and an insert starts no new epoch until the cache is half full.
    #[test]
    fn stripes_keep_small_changes_and_epochs_wait_for_half_full() {
        let c = TableCache::default();
        let one = t(100).mem_bytes();
        c.set_cap(one * 128 * 16 * 4);
        let id = |mdc: u64, u: u64| u << 12 | mdc << 4 | 1;
        for m in 0..4 {
            c.insert(id(m, 1), t(100));
        }
        assert_eq!(
            c.counts.bytes.load(Ordering::Relaxed),
            0,
            "nothing carried yet"
        );
        assert_eq!(c.bytes(), 4 * one);
        assert_eq!(
            c.counts.tick.load(Ordering::Relaxed),
            0,
            "no epoch below half"
        );
        c.remove(id(2, 1));
        assert_eq!(c.bytes(), 3 * one);
        // A new bound carries every stripe's share; over half of it, each
        // insert starts an epoch.
        c.set_cap(one * 4);
        assert_eq!(
            c.counts.bytes.load(Ordering::Relaxed),
            3 * i64::try_from(one).unwrap()
        );
        let before = c.counts.tick.load(Ordering::Relaxed);
        c.insert(id(5, 1), t(100));
        c.insert(id(5, 2), t(100));
        assert_eq!(c.counts.tick.load(Ordering::Relaxed), before + 2);
        assert!(c.bytes() <= one * 4);
    }

    #[test]
    fn the_bound_and_the_order_hold_across_stripes() {
        let c = TableCache::default();
        let one = t(1000).mem_bytes();
        c.set_cap(one * 4);
        // IDs of five MDCs: five stripes.
        let id = |mdc: u64| 7 << 12 | mdc << 4 | 1;
        for m in 1..=4 {
            c.insert(id(m), t(1000));
        }
        assert!(c.get(id(1)).is_some()); // the most recent now
        c.insert(id(5), t(1000));
        assert!(c.bytes() <= one * 4);
        assert!(c.get(id(1)).is_some() && c.get(id(5)).is_some());
        assert!(
            c.get(id(2)).is_none(),
            "the least recently used goes first, whatever its stripe"
        );
        c.set_cap(one);
        assert!(c.bytes() <= one, "a smaller bound empties every stripe");
        c.remove(id(5));
        c.remove(id(1));
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn the_cache_stays_under_its_bound_and_drops_the_least_recently_used() {
        let c = TableCache::default();
        let one = t(1000).mem_bytes();
        c.set_cap(one * 4);
        for id in 0..4 {
            c.insert(id, t(1000));
        }
        assert!(c.get(0).is_some()); // 0 is now the most recent
        c.insert(4, t(1000));
        assert!(c.bytes() <= one * 4);
        assert!(c.get(0).is_some() && c.get(4).is_some());
        assert!(c.get(1).is_none(), "the least recently used goes first");
        c.remove(4);
        c.set_cap(one);
        assert!(c.bytes() <= one);
        c.insert(9, t(100_000)); // larger than the whole cache
        assert!(c.get(9).is_none());
        assert!(csum_shift_of(4096).is_ok() && csum_shift_of(65536).is_ok());
        for bad in [0, 2048, 5000, 131_072] {
            assert!(csum_shift_of(bad).is_err());
        }
    }
}
