//! The store's cache of object content read recently: what the page
//! cache gives a file system's readers, for a store whose reads are
//! O_DIRECT.
//!
//! Content is cached in *chunks*: [`ContentCache::chunk`] bytes at a
//! multiple of that size in one mblock (the last chunk of an mblock ends
//! with its content), keyed by the mblock's object ID and the chunk's
//! index. A committed mblock never changes and its ID is never used again
//! (the pool's uniquifiers are not reused, across crashes too), so a
//! cached chunk can never be stale: an overwrite puts new mblocks under
//! the path, a delete removes the path from the catalog (a get then fails
//! before it looks here), and a copy or rename names the same mblocks
//! with the same bytes. The chunks of mblocks that are freed are dropped
//! ([`ContentCache::forget`]) only to give their memory back.
//!
//! Chunks live in the *buffers* the device reads landed in: a small read
//! reads its missing chunks in runs (one buffer per run of consecutive
//! chunks of an mblock), a large read reads its whole range into one
//! buffer and caches the whole chunks inside it. The buffer is the unit of
//! memory and of replacement: it is charged to the budget while at least
//! one of its chunks is cached, and the CLOCK (second chance) hand evicts
//! whole buffers, a buffer used since the hand last passed being kept once
//! more. A buffer of a small read comes in marked used; a buffer of a
//! large read comes in unmarked, so that a large read nobody repeats is
//! the first to go and a scan does not push out what small reads keep
//! using.
//!
//! The budget follows the memory the process may use
//! ([`ContentCache::check_memory`], at most every [`CHECK_EVERY`] from a
//! miss and from a background thread, never from a hit): it is the cap
//! (explicit, or a share of the memory limit) as long as the process or
//! the machine stays below its watermark, and shrinks, evicting, as the
//! rest of the memory in use grows past it.

use bytes::Bytes;
use mpool::mcache::MemoryPressure;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// A chunk: (mblock object ID, chunk index).
pub type Key = (u64, u64);

/// Where the cache reads the memory the process may use and uses.
pub type MemorySource = Arc<dyn Fn() -> Option<MemoryPressure> + Send + Sync>;

/// The cache checks the memory at most this often (from a miss, and
/// from its background thread).
pub const CHECK_EVERY: Duration = Duration::from_millis(20);

/// How often the background thread looks at every store's cache.
const BACKGROUND_EVERY: Duration = Duration::from_millis(50);

/// A cache without an explicit size takes this share (1/n) of the memory
/// the process may use ([`MemoryPressure::limit`]) as its cap.
pub const AUTO_SHARE: u64 = 4;

/// The cap when the memory cannot be read and no size was given.
pub const FALLBACK_CAP: u64 = 256 << 20;

/// A large read's buffer is cached only if it takes at most this share
/// (1/n) of the budget.
const LARGE_SHARE: u64 = 4;

/// A cached chunk: bytes `off..off + len` of `run`, a buffer read from
/// the device (tagged `alloc`).
#[derive(Clone, Debug)]
pub struct Chunk {
    /// The whole buffer of the read that brought the chunk in.
    pub run: Bytes,
    /// The chunk's first byte in `run`.
    pub off: usize,
    /// Its length.
    pub len: usize,
    /// The buffer's tag (chunks of one read share it).
    pub alloc: u64,
}

#[cfg(test)]
impl Chunk {
    /// The chunk's bytes.
    pub fn bytes(&self) -> Bytes {
        self.run.slice(self.off..self.off + self.len)
    }
}

/// A cached buffer.
#[derive(Debug)]
struct Buf {
    run: Bytes,
    /// Bytes it takes (its allocation).
    size: u64,
    alloc: u64,
    /// Its chunks cached (each in the map).
    keys: Vec<Key>,
    referenced: bool,
}

/// A chunk's place: its buffer's slot, and the bytes in the buffer.
#[derive(Debug, Clone, Copy)]
struct Place {
    slot: usize,
    off: usize,
    len: usize,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Key, Place>,
    bufs: Vec<Option<Buf>>,
    free: Vec<usize>,
    hand: usize,
    /// Bytes of the buffers cached.
    charged: u64,
}

impl Inner {
    /// Take the buffer in `slot` out, with its chunks.
    fn remove_buf(&mut self, slot: usize) {
        let Some(b) = self.bufs.get_mut(slot).and_then(Option::take) else {
            return;
        };
        for k in &b.keys {
            self.map.remove(k);
        }
        self.free.push(slot);
        self.charged = self.charged.saturating_sub(b.size);
    }

    /// Evict (CLOCK) until at most `budget` bytes are charged. Returns
    /// the chunks evicted.
    fn shrink(&mut self, budget: u64) -> u64 {
        let mut evicted = 0;
        // Two sweeps clear every referenced bit and then evict: enough.
        let mut steps = 2 * self.bufs.len() + 1;
        while self.charged > budget && steps > 0 && !self.bufs.is_empty() {
            steps -= 1;
            if self.hand >= self.bufs.len() {
                self.hand = 0;
            }
            let i = self.hand;
            self.hand += 1;
            match self.bufs.get_mut(i) {
                Some(Some(b)) if b.referenced => b.referenced = false,
                Some(Some(b)) => {
                    evicted += b.keys.len() as u64;
                    self.remove_buf(i);
                }
                _ => {}
            }
        }
        evicted
    }
}

/// The size the cache was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// A share ([`AUTO_SHARE`]) of the memory the process may use.
    Auto,
    /// At most this many bytes (0: off).
    Cap(u64),
}

/// The cache of one store (see the module's documentation).
pub struct ContentCache {
    size: Size,
    /// The cap now (the explicit size, or the share of the limit last
    /// read).
    cap: AtomicU64,
    /// The budget now: the cap, less what memory pressure takes.
    budget: AtomicU64,
    max_read: u64,
    large: bool,
    chunk: u64,
    source: MemorySource,
    inner: Mutex<Inner>,
    /// Nanoseconds after `epoch` of the last memory check.
    checked: AtomicU64,
    epoch: Instant,
    next_alloc: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    pressure_evictions: AtomicU64,
    checks: AtomicU64,
    hit_bytes: AtomicU64,
    miss_bytes: AtomicU64,
    large_hits: AtomicU64,
    large_inserts: AtomicU64,
    /// Read buffers of 1 MiB or more given back, by size, kept for the
    /// next reads.
    spares: Mutex<HashMap<usize, Vec<Vec<u8>>>>,
    spare_bytes: AtomicU64,
    spare_reuses: AtomicU64,
    me: Weak<ContentCache>,
}

impl std::fmt::Debug for ContentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentCache")
            .field("size", &self.size)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Figures of a store's content cache ([`crate::MpoolStore::cache_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// The budget now (bytes; 0: the cache is off or memory is short):
    /// the cap, less what memory pressure takes.
    pub budget: u64,
    /// The cap: the explicit size ([`crate::StoreOptions::cache_bytes`]),
    /// or the share of the memory limit last read.
    pub cap: u64,
    /// Reads longer than this are read straight into one buffer (and
    /// cached whole, unless that is off).
    pub max_read: u64,
    /// The chunk size.
    pub chunk: u64,
    /// Bytes held now (whole read buffers with a chunk cached).
    pub bytes: u64,
    /// Chunks cached now.
    pub chunks: u64,
    /// Buffers cached now.
    pub buffers: u64,
    /// Chunks found cached by reads.
    pub hits: u64,
    /// Chunks reads had to read from the device.
    pub misses: u64,
    /// Chunks evicted (for room, or for memory pressure).
    pub evictions: u64,
    /// Of those, chunks evicted because the budget shrank under memory
    /// pressure.
    pub pressure_evictions: u64,
    /// Memory checks done.
    pub checks: u64,
    /// Bytes of reads served from cached chunks.
    pub hit_bytes: u64,
    /// Bytes read from the device into the cache.
    pub miss_bytes: u64,
    /// Large reads (over `max_read`) served whole from the cache.
    pub large_hits: u64,
    /// Large reads' buffers cached.
    pub large_inserts: u64,
    /// Bytes of spare read buffers (1 MiB or more) kept for reuse (counted in the
    /// budget with `bytes`).
    pub spare_bytes: u64,
    /// Read buffers taken from the spares.
    pub spare_reuses: u64,
}

/// Every cache alive, for the background thread.
fn registry() -> &'static Mutex<Vec<Weak<ContentCache>>> {
    static REG: OnceLock<Mutex<Vec<Weak<ContentCache>>>> = OnceLock::new();
    REG.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("mpool-objcache".into())
            .spawn(background);
        if let Err(e) = spawned {
            // The caches still check from their misses.
            tracing::warn!("object store cache: no background memory thread: {e}");
        }
        Mutex::new(Vec::new())
    })
}

/// The background thread: checks every live cache's memory.
fn background() {
    loop {
        std::thread::sleep(BACKGROUND_EVERY);
        let live: Vec<Arc<ContentCache>> = {
            let mut g = crate::lock(registry());
            g.retain(|w| w.strong_count() > 0);
            g.iter().filter_map(Weak::upgrade).collect()
        };
        for c in live {
            c.maybe_check();
        }
    }
}

/// The budget that leaves the process (a cgroup limit) or the machine at
/// its watermark, given `p`, the bytes the cache holds (`charged`, part
/// of `p.used`) and the cap: the reaper's watermarks of `mpool::mcache`
/// (87 % of a cgroup's limit, 7/8 of the machine).
pub fn budget_for(p: Option<MemoryPressure>, charged: u64, cap: u64) -> u64 {
    let Some(p) = p else {
        return cap;
    };
    let mark = if p.cgroup {
        p.limit / 100 * 87
    } else {
        p.limit - p.limit / 8
    };
    let others = p.used.saturating_sub(charged);
    cap.min(mark.saturating_sub(others))
}

impl ContentCache {
    /// A cache of `size` of chunks of `chunk` bytes (a power of two) for
    /// reads of at most `max_read` bytes (and of larger reads whole, if
    /// `large`), sized by the memory `source` reports.
    pub fn new(
        size: Size,
        max_read: u64,
        large: bool,
        chunk: u64,
        source: MemorySource,
    ) -> Arc<ContentCache> {
        let c = Arc::new_cyclic(|me| ContentCache {
            me: me.clone(),
            spares: Mutex::new(HashMap::new()),
            spare_bytes: AtomicU64::new(0),
            spare_reuses: AtomicU64::new(0),
            size,
            cap: AtomicU64::new(0),
            budget: AtomicU64::new(0),
            max_read,
            large,
            chunk: chunk.max(1).next_power_of_two(),
            source,
            inner: Mutex::new(Inner::default()),
            checked: AtomicU64::new(0),
            epoch: Instant::now(),
            next_alloc: AtomicU64::new(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            pressure_evictions: AtomicU64::new(0),
            checks: AtomicU64::new(0),
            hit_bytes: AtomicU64::new(0),
            miss_bytes: AtomicU64::new(0),
            large_hits: AtomicU64::new(0),
            large_inserts: AtomicU64::new(0),
        });
        if size != Size::Cap(0) {
            c.check_memory();
            crate::lock(registry()).push(Arc::downgrade(&c));
        }
        c
    }

    /// The chunk size.
    pub fn chunk(&self) -> u64 {
        self.chunk
    }

    /// Whether the cache is on at all.
    pub fn on(&self) -> bool {
        self.size != Size::Cap(0)
    }

    /// Whether a read of `len` bytes goes through the cache in chunks
    /// (else it is read whole: [`ContentCache::takes_large`]).
    pub fn serves(&self, len: u64) -> bool {
        self.on() && len <= self.max_read
    }

    /// Whether a read longer than the chunked ones is looked up here and
    /// cached whole.
    pub fn takes_large(&self) -> bool {
        self.on() && self.large
    }

    /// Check the memory now: read the cap and the pressure, set the
    /// budget, and evict down to it. Returns the budget.
    pub fn check_memory(&self) -> u64 {
        self.checked.store(
            self.epoch.elapsed().as_nanos() as u64 | 1,
            Ordering::Relaxed,
        );
        self.checks.fetch_add(1, Ordering::Relaxed);
        let p = (self.source)();
        let cap = match self.size {
            Size::Cap(n) => n,
            Size::Auto => p.map_or(FALLBACK_CAP, |p| p.limit / AUTO_SHARE),
        };
        let spare = self.spare_bytes.load(Ordering::Relaxed);
        let mut g = crate::lock(&self.inner);
        let budget = budget_for(p, g.charged + spare, cap);
        self.cap.store(cap, Ordering::Relaxed);
        self.budget.store(budget, Ordering::Relaxed);
        if g.charged + spare > budget {
            // The spares go first: they hold no content.
            let over = g.charged + spare - budget;
            drop(g);
            self.drop_spares(over);
            g = crate::lock(&self.inner);
        }
        if g.charged > budget {
            let n = g.shrink(budget);
            drop(g);
            self.evictions.fetch_add(n, Ordering::Relaxed);
            self.pressure_evictions.fetch_add(n, Ordering::Relaxed);
        }
        budget
    }

    /// [`ContentCache::check_memory`] if the last check is older than
    /// [`CHECK_EVERY`].
    fn maybe_check(&self) {
        let now = self.epoch.elapsed().as_nanos() as u64;
        let last = self.checked.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= CHECK_EVERY.as_nanos() as u64 {
            self.check_memory();
        }
    }

    /// The cached chunks of `keys` (`None` where not cached), each found
    /// one's buffer marked as used.
    pub fn lookup(&self, keys: &[Key]) -> Vec<Option<Chunk>> {
        let mut g = crate::lock(&self.inner);
        let g = &mut *g;
        let out: Vec<Option<Chunk>> = keys
            .iter()
            .map(|k| {
                let p = *g.map.get(k)?;
                let b = g.bufs.get_mut(p.slot)?.as_mut()?;
                b.referenced = true;
                Some(Chunk {
                    run: b.run.clone(),
                    off: p.off,
                    len: p.len,
                    alloc: b.alloc,
                })
            })
            .collect();
        let (mut n, mut bytes) = (0, 0);
        for c in out.iter().flatten() {
            n += 1;
            bytes += c.len as u64;
        }
        self.hits.fetch_add(n, Ordering::Relaxed);
        self.hit_bytes.fetch_add(bytes, Ordering::Relaxed);
        out
    }

    /// Whether the chunks of `keys` are all cached (not counted as used).
    pub fn has_all(&self, keys: &[Key]) -> bool {
        let g = crate::lock(&self.inner);
        keys.iter().all(|k| g.map.contains_key(k))
    }

    /// A large read was served whole from here.
    pub fn count_large_hit(&self) {
        self.large_hits.fetch_add(1, Ordering::Relaxed);
    }

    /// A new buffer tag.
    pub fn new_alloc(&self) -> u64 {
        self.next_alloc.fetch_add(1, Ordering::Relaxed)
    }

    /// Cache `chunks` (read by one device read into `run`, whose buffer
    /// takes `size` bytes, tagged `alloc`), then evict down to the budget.
    /// A chunk cached already keeps its entry. A small read's buffer comes
    /// in marked used; a `large` read's comes in unmarked, and only if it
    /// takes at most a quarter of the budget.
    pub fn insert(
        &self,
        run: &Bytes,
        size: usize,
        alloc: u64,
        chunks: &[(Key, usize, usize)],
        large: bool,
    ) {
        self.misses
            .fetch_add(chunks.len() as u64, Ordering::Relaxed);
        self.miss_bytes
            .fetch_add(chunks.iter().map(|c| c.2 as u64).sum(), Ordering::Relaxed);
        if !self.on() {
            return;
        }
        self.maybe_check();
        let budget = self.budget.load(Ordering::Relaxed);
        let size = size as u64;
        if size > budget || (large && size > budget / LARGE_SHARE) {
            return;
        }
        let mut g = crate::lock(&self.inner);
        let slot = match g.free.pop() {
            Some(i) => i,
            None => {
                g.bufs.push(None);
                g.bufs.len() - 1
            }
        };
        let mut keys = Vec::with_capacity(chunks.len());
        for &(key, off, len) in chunks {
            if g.map.contains_key(&key) {
                continue;
            }
            g.map.insert(key, Place { slot, off, len });
            keys.push(key);
        }
        if keys.is_empty() {
            g.free.push(slot);
            return;
        }
        g.bufs[slot] = Some(Buf {
            run: run.clone(),
            size,
            alloc,
            keys,
            referenced: !large,
        });
        g.charged += size;
        let evicted = g.shrink(budget.saturating_sub(self.spare_bytes.load(Ordering::Relaxed)));
        drop(g);
        if large {
            self.large_inserts.fetch_add(1, Ordering::Relaxed);
        }
        self.evictions.fetch_add(evicted, Ordering::Relaxed);
    }

    /// Drop the chunks of mblock `id` (whose content is `len` bytes): it
    /// was freed. A buffer goes when its last chunk does.
    pub fn forget(&self, id: u64, len: u64) {
        let mut g = crate::lock(&self.inner);
        if g.map.is_empty() {
            return;
        }
        for c in 0..len.div_ceil(self.chunk).max(1) {
            let Some(p) = g.map.remove(&(id, c)) else {
                continue;
            };
            let gone = match g.bufs.get_mut(p.slot) {
                Some(Some(b)) => {
                    b.keys.retain(|k| *k != (id, c));
                    b.keys.is_empty()
                }
                _ => false,
            };
            if gone {
                g.remove_buf(p.slot);
            }
        }
    }

    /// A spare read buffer of exactly `cap` bytes, if one was given
    /// back ([`ContentCache::give_back`]): memory already faulted in, that
    /// a read fills again without a page fault or a zeroing pass.
    pub fn take_spare(&self, cap: usize) -> Option<Vec<u8>> {
        let mut g = crate::lock(&self.spares);
        let v = g.get_mut(&cap)?.pop()?;
        self.spare_bytes
            .fetch_sub(v.capacity() as u64, Ordering::Relaxed);
        self.spare_reuses.fetch_add(1, Ordering::Relaxed);
        Some(v)
    }

    /// `v` (bytes `range` of it) as [`Bytes`] that give `v` back to the
    /// spares when the last of them goes.
    pub fn spare_owner(&self, v: Vec<u8>, range: std::ops::Range<usize>) -> Bytes {
        Bytes::from_owner(Spare {
            v,
            home: self.me.clone(),
        })
        .slice(range)
    }

    /// Keep `v` for a next large read if the spares stay within a quarter
    /// of the budget (the cached buffers take the rest: an insert evicts
    /// down to the budget less the spares, a memory check frees spares
    /// first); else free it. Called where a buffer's last reference goes,
    /// under the cache's lock too: it takes only the spares' lock.
    fn give_back(&self, v: Vec<u8>) {
        let size = v.capacity() as u64;
        let budget = self.budget.load(Ordering::Relaxed);
        let mut g = crate::lock(&self.spares);
        let spare = self.spare_bytes.load(Ordering::Relaxed);
        if !self.on() || spare + size > budget / LARGE_SHARE {
            return;
        }
        self.spare_bytes.fetch_add(size, Ordering::Relaxed);
        g.entry(v.capacity()).or_default().push(v);
    }

    /// Free spares until `bytes` are freed (or none is left).
    fn drop_spares(&self, mut bytes: u64) {
        let mut g = crate::lock(&self.spares);
        for list in g.values_mut() {
            while bytes > 0 {
                let Some(v) = list.pop() else {
                    break;
                };
                let n = v.capacity() as u64;
                self.spare_bytes.fetch_sub(n, Ordering::Relaxed);
                bytes = bytes.saturating_sub(n);
            }
        }
        g.retain(|_, l| !l.is_empty());
    }

    /// Drop every chunk.
    pub fn clear(&self) {
        let mut g = crate::lock(&self.inner);
        *g = Inner::default();
    }

    /// Figures.
    pub fn stats(&self) -> CacheStats {
        let g = crate::lock(&self.inner);
        CacheStats {
            budget: self.budget.load(Ordering::Relaxed),
            cap: self.cap.load(Ordering::Relaxed),
            max_read: self.max_read,
            chunk: self.chunk,
            bytes: g.charged,
            chunks: g.map.len() as u64,
            buffers: g.bufs.iter().flatten().count() as u64,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            pressure_evictions: self.pressure_evictions.load(Ordering::Relaxed),
            checks: self.checks.load(Ordering::Relaxed),
            hit_bytes: self.hit_bytes.load(Ordering::Relaxed),
            miss_bytes: self.miss_bytes.load(Ordering::Relaxed),
            large_hits: self.large_hits.load(Ordering::Relaxed),
            large_inserts: self.large_inserts.load(Ordering::Relaxed),
            spare_bytes: self.spare_bytes.load(Ordering::Relaxed),
            spare_reuses: self.spare_reuses.load(Ordering::Relaxed),
        }
    }
}

/// A read buffer (1 MiB or more) handed out as [`Bytes`]: given back to its cache's
/// spares when dropped.
struct Spare {
    v: Vec<u8>,
    home: Weak<ContentCache>,
}

impl AsRef<[u8]> for Spare {
    fn as_ref(&self) -> &[u8] {
        &self.v
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        if let Some(c) = self.home.upgrade() {
            c.give_back(std::mem::take(&mut self.v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(n: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; n])
    }

    /// A memory source reporting `limit` and `used` (a machine, no
    /// cgroup).
    fn machine(limit: u64, used: Arc<AtomicU64>) -> MemorySource {
        Arc::new(move || {
            Some(MemoryPressure {
                limit,
                used: used.load(Ordering::Relaxed),
                cgroup: false,
            })
        })
    }

    fn plenty() -> MemorySource {
        machine(1 << 40, Arc::new(AtomicU64::new(0)))
    }

    fn cache(cap: u64, chunk: u64) -> Arc<ContentCache> {
        ContentCache::new(Size::Cap(cap), 1 << 20, true, chunk, plenty())
    }

    #[test]
    fn a_chunk_inserted_is_found_and_the_budget_holds() {
        let c = cache(4096, 1024);
        let a = c.new_alloc();
        let r = run(2048, 7);
        c.insert(
            &r,
            r.len(),
            a,
            &[((1, 0), 0, 1024), ((1, 1), 1024, 1024)],
            false,
        );
        let got = c.lookup(&[(1, 0), (1, 1), (1, 2)]);
        assert_eq!(got[0].as_ref().map(|x| x.bytes()), Some(run(1024, 7)));
        assert!(got[1].is_some() && got[2].is_none());
        assert_eq!(c.stats().bytes, 2048);
        // Two more buffers of 2 KiB: the budget is 4 KiB, so one buffer
        // goes (both of its chunks).
        for id in 2..4 {
            let a = c.new_alloc();
            c.insert(&run(2048, id as u8), 2048, a, &[((id, 0), 0, 2048)], false);
        }
        let s = c.stats();
        assert!(s.bytes <= 4096, "{s:?}");
        assert!(s.evictions >= 1, "{s:?}");
    }

    #[test]
    fn a_buffer_stays_charged_while_one_of_its_chunks_is_cached() {
        let c = cache(1 << 20, 1024);
        let a = c.new_alloc();
        c.insert(
            &run(3072, 1),
            3072,
            a,
            &[((9, 0), 0, 1024), ((9, 1), 1024, 1024)],
            false,
        );
        assert_eq!(c.stats().bytes, 3072);
        c.forget(9, 1024); // chunk 0 only
        assert_eq!(c.stats().chunks, 1);
        assert_eq!(c.stats().bytes, 3072);
        c.forget(9, 2048);
        assert_eq!(c.stats().chunks, 0);
        assert_eq!(c.stats().bytes, 0);
        assert_eq!(c.stats().buffers, 0);
    }

    #[test]
    fn used_buffers_get_a_second_chance() {
        // Room for two 1 KiB buffers.
        let c = cache(2048, 1024);
        for id in 0..2 {
            let a = c.new_alloc();
            c.insert(&run(1024, 0), 1024, a, &[((id, 0), 0, 1024)], false);
        }
        // A pass clears both bits and evicts one of them.
        let a = c.new_alloc();
        c.insert(&run(1024, 0), 1024, a, &[((2, 0), 0, 1024)], false);
        assert_eq!(c.stats().chunks, 2);
        let kept: Vec<u64> = (0..2)
            .filter(|id| c.lookup(&[(*id, 0)])[0].is_some())
            .collect();
        assert_eq!(kept.len(), 1);
        // The survivor was just used: the next insert evicts chunk 2.
        let a = c.new_alloc();
        c.insert(&run(1024, 0), 1024, a, &[((3, 0), 0, 1024)], false);
        assert!(c.lookup(&[(kept[0], 0)])[0].is_some());
        assert!(c.lookup(&[(2, 0)])[0].is_none());
    }

    #[test]
    fn a_large_read_goes_before_the_small_reads_in_use() {
        let c = cache(16 << 10, 1024);
        for id in 0..2 {
            let a = c.new_alloc();
            c.insert(&run(1024, 0), 1024, a, &[((id, 0), 0, 1024)], false);
        }
        // A large read of 4 KiB (a quarter of the budget) comes in
        // unmarked; one of 8 KiB is not cached at all.
        let a = c.new_alloc();
        let chunks: Vec<_> = (0..4).map(|i| ((10, i), i as usize * 1024, 1024)).collect();
        c.insert(&run(4096, 1), 4096, a, &chunks, true);
        assert_eq!(c.stats().large_inserts, 1);
        let a = c.new_alloc();
        let chunks: Vec<_> = (0..8).map(|i| ((11, i), i as usize * 1024, 1024)).collect();
        c.insert(&run(8192, 1), 8192, a, &chunks, true);
        assert_eq!(c.stats().large_inserts, 1);
        assert!(c.lookup(&[(11, 0)])[0].is_none());
        // Squeeze: the unmarked large buffer goes first, whole.
        let a = c.new_alloc();
        c.insert(&run(11 << 10, 2), 11 << 10, a, &[((12, 0), 0, 1024)], false);
        let s = c.stats();
        assert!(s.bytes <= 16 << 10, "{s:?}");
        assert!(c.lookup(&[(10, 0)])[0].is_none(), "{s:?}");
        assert!(c.lookup(&[(10, 3)])[0].is_none(), "{s:?}");
        assert!(c.lookup(&[(0, 0)])[0].is_some(), "{s:?}");
    }

    #[test]
    fn the_budget_follows_the_memory_left() {
        let used = Arc::new(AtomicU64::new(0));
        let c = ContentCache::new(
            Size::Cap(64 << 10),
            1 << 20,
            true,
            1024,
            machine(1 << 20, used.clone()),
        );
        // 1 MiB machine: the watermark is 7/8 of it; nothing else in use.
        assert_eq!(c.check_memory(), 64 << 10);
        for id in 0..32 {
            let a = c.new_alloc();
            c.insert(&run(2048, 0), 2048, a, &[((id, 0), 0, 2048)], false);
        }
        assert_eq!(c.stats().bytes, 64 << 10);
        // The rest of the machine uses all but 32 KiB below the mark
        // (the cache's own 64 KiB count as used too). The simulated use
        // does not fall as the cache evicts, so a later check (the
        // background thread's) may shrink it further: only bounds hold.
        used.store((7 << 17) - (32 << 10) + (64 << 10), Ordering::Relaxed);
        assert!(c.check_memory() <= 32 << 10);
        let s = c.stats();
        assert!(s.bytes <= 32 << 10, "{s:?}");
        assert!(s.pressure_evictions >= 16, "{s:?}");
        // Over the mark: nothing is kept.
        used.store(1 << 20, Ordering::Relaxed);
        assert_eq!(c.check_memory(), 0);
        assert_eq!(c.stats().bytes, 0);
        c.insert(
            &run(2048, 0),
            2048,
            c.new_alloc(),
            &[((99, 0), 0, 2048)],
            false,
        );
        assert_eq!(c.stats().bytes, 0);
        // The pressure goes: the budget is the cap again.
        used.store(0, Ordering::Relaxed);
        assert_eq!(c.check_memory(), 64 << 10);
        c.insert(
            &run(2048, 0),
            2048,
            c.new_alloc(),
            &[((99, 0), 0, 2048)],
            false,
        );
        assert_eq!(c.stats().bytes, 2048);
    }

    #[test]
    fn without_a_size_the_cap_is_a_share_of_the_limit() {
        let c = ContentCache::new(
            Size::Auto,
            1 << 20,
            true,
            1024,
            machine(8 << 30, Arc::new(AtomicU64::new(0))),
        );
        assert_eq!(c.stats().cap, (8 << 30) / AUTO_SHARE);
        assert_eq!(c.stats().budget, (8 << 30) / AUTO_SHARE);
        let none = ContentCache::new(Size::Auto, 1 << 20, true, 1024, Arc::new(|| None));
        assert_eq!(none.stats().budget, FALLBACK_CAP);
        // A cgroup: the mark is 87 % of its limit.
        let p = MemoryPressure {
            limit: 1000 << 20,
            used: 900 << 20,
            cgroup: true,
        };
        assert_eq!(budget_for(Some(p), 0, u64::MAX), 0);
        assert_eq!(budget_for(Some(p), 100 << 20, u64::MAX), 70 << 20);
    }

    #[test]
    fn a_large_buffer_dropped_is_kept_for_the_next_large_read() {
        let c = cache(1 << 30, 1024);
        let b = c.spare_owner(vec![1u8; 8 << 20], 5..100);
        let b2 = b.clone();
        drop(b);
        assert_eq!(c.stats().spare_bytes, 0, "still held");
        drop(b2);
        assert_eq!(c.stats().spare_bytes, 8 << 20);
        assert!(c.take_spare(4 << 20).is_none());
        let v = c.take_spare(8 << 20).unwrap();
        assert_eq!(v.capacity(), 8 << 20);
        assert_eq!((c.stats().spare_bytes, c.stats().spare_reuses), (0, 1));
        // Cached, then evicted: given back too; under pressure they go
        // before any content.
        let a = c.new_alloc();
        let run = c.spare_owner(v, 0..8 << 20);
        c.insert(&run, 8 << 20, a, &[((1, 0), 0, 1024)], false);
        drop(run);
        c.clear();
        assert_eq!(c.stats().spare_bytes, 8 << 20);
    }

    #[test]
    fn a_cache_of_no_bytes_serves_nothing() {
        let c = cache(0, 1024);
        assert!(!c.serves(1));
        assert!(!c.takes_large());
        c.insert(&run(1024, 0), 1024, 1, &[((1, 0), 0, 1024)], false);
        assert_eq!(c.stats().chunks, 0);
    }
}
