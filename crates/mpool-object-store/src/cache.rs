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
//! A miss is read from the device in *runs* (consecutive missing chunks
//! of one mblock, one aligned buffer each); every chunk cached keeps its
//! run's buffer alive. The budget is counted in whole run buffers: a
//! buffer is charged while at least one of its chunks is cached, so the
//! memory the cache holds is at most its budget (the buffers handed out to
//! callers are theirs, as a page cache's copies are). Replacement is
//! CLOCK (second chance): a chunk used since the hand last passed it is
//! kept once more.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A chunk: (mblock object ID, chunk index).
pub type Key = (u64, u64);

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

#[derive(Debug)]
struct Slot {
    key: Key,
    chunk: Chunk,
    referenced: bool,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Key, usize>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    hand: usize,
    /// Buffers with chunks cached: tag → (bytes, chunks cached).
    allocs: HashMap<u64, (u64, u64)>,
    /// Bytes of those buffers.
    charged: u64,
}

impl Inner {
    /// Take slot `i` out (it holds a chunk).
    fn remove_slot(&mut self, i: usize) {
        let Some(s) = self.slots.get_mut(i).and_then(Option::take) else {
            return;
        };
        self.map.remove(&s.key);
        self.free.push(i);
        if let Some(a) = self.allocs.get_mut(&s.chunk.alloc) {
            a.1 = a.1.saturating_sub(1);
            if a.1 == 0 {
                self.charged = self.charged.saturating_sub(a.0);
                self.allocs.remove(&s.chunk.alloc);
            }
        }
    }

    /// Evict (CLOCK) until at most `budget` bytes are charged. Returns
    /// the chunks evicted.
    fn shrink(&mut self, budget: u64) -> u64 {
        let mut evicted = 0;
        // Two sweeps clear every referenced bit and then evict: enough.
        let mut steps = 2 * self.slots.len() + 1;
        while self.charged > budget && steps > 0 && !self.slots.is_empty() {
            steps -= 1;
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let i = self.hand;
            self.hand += 1;
            match self.slots.get_mut(i) {
                Some(Some(s)) if s.referenced => s.referenced = false,
                Some(Some(_)) => {
                    self.remove_slot(i);
                    evicted += 1;
                }
                _ => {}
            }
        }
        evicted
    }
}

/// The cache of one store (see the module's documentation).
#[derive(Debug)]
pub struct ContentCache {
    budget: u64,
    max_read: u64,
    chunk: u64,
    inner: Mutex<Inner>,
    next_alloc: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    hit_bytes: AtomicU64,
    miss_bytes: AtomicU64,
}

/// Figures of a store's content cache ([`crate::MpoolStore::cache_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// The budget (bytes; 0: the cache is off).
    pub budget: u64,
    /// Reads longer than this bypass the cache.
    pub max_read: u64,
    /// The chunk size.
    pub chunk: u64,
    /// Bytes held now (whole read buffers with a chunk cached).
    pub bytes: u64,
    /// Chunks cached now.
    pub chunks: u64,
    /// Chunks found cached by reads.
    pub hits: u64,
    /// Chunks reads had to read from the device.
    pub misses: u64,
    /// Chunks evicted for room.
    pub evictions: u64,
    /// Bytes of reads served from cached chunks.
    pub hit_bytes: u64,
    /// Bytes read from the device into the cache.
    pub miss_bytes: u64,
}

impl ContentCache {
    /// A cache of at most `budget` bytes of chunks of `chunk` bytes (a
    /// power of two) for reads of at most `max_read` bytes.
    pub fn new(budget: u64, max_read: u64, chunk: u64) -> ContentCache {
        ContentCache {
            budget,
            max_read,
            chunk: chunk.max(1).next_power_of_two(),
            inner: Mutex::new(Inner::default()),
            next_alloc: AtomicU64::new(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            hit_bytes: AtomicU64::new(0),
            miss_bytes: AtomicU64::new(0),
        }
    }

    /// The chunk size.
    pub fn chunk(&self) -> u64 {
        self.chunk
    }

    /// Whether a read of `len` bytes goes through the cache.
    pub fn serves(&self, len: u64) -> bool {
        self.budget > 0 && len <= self.max_read
    }

    /// The cached chunks of `keys` (`None` where not cached), each found
    /// one marked as used.
    pub fn lookup(&self, keys: &[Key]) -> Vec<Option<Chunk>> {
        let mut g = crate::lock(&self.inner);
        let out: Vec<Option<Chunk>> = keys
            .iter()
            .map(|k| {
                let i = *g.map.get(k)?;
                let s = g.slots.get_mut(i)?.as_mut()?;
                s.referenced = true;
                Some(s.chunk.clone())
            })
            .collect();
        drop(g);
        let (mut n, mut b) = (0, 0);
        for c in out.iter().flatten() {
            n += 1;
            b += c.len as u64;
        }
        self.hits.fetch_add(n, Ordering::Relaxed);
        self.hit_bytes.fetch_add(b, Ordering::Relaxed);
        out
    }

    /// A new buffer tag.
    pub fn new_alloc(&self) -> u64 {
        self.next_alloc.fetch_add(1, Ordering::Relaxed)
    }

    /// Cache `chunks` (read by one device read into `run`, whose buffer
    /// takes `size` bytes, tagged `alloc`), then evict down to the budget.
    /// A chunk cached already keeps its entry; a buffer larger than the
    /// whole budget is not cached.
    pub fn insert(&self, run: &Bytes, size: usize, alloc: u64, chunks: &[(Key, usize, usize)]) {
        self.misses
            .fetch_add(chunks.len() as u64, Ordering::Relaxed);
        self.miss_bytes
            .fetch_add(chunks.iter().map(|c| c.2 as u64).sum(), Ordering::Relaxed);
        let size = size as u64;
        if self.budget == 0 || size > self.budget {
            return;
        }
        let mut g = crate::lock(&self.inner);
        for &(key, off, len) in chunks {
            if g.map.contains_key(&key) {
                continue;
            }
            let slot = Slot {
                key,
                chunk: Chunk {
                    run: run.clone(),
                    off,
                    len,
                    alloc,
                },
                referenced: true,
            };
            let i = match g.free.pop() {
                Some(i) => {
                    g.slots[i] = Some(slot);
                    i
                }
                None => {
                    g.slots.push(Some(slot));
                    g.slots.len() - 1
                }
            };
            g.map.insert(key, i);
            let a = g.allocs.entry(alloc).or_insert((size, 0));
            a.1 += 1;
            if a.1 == 1 {
                g.charged += size;
            }
        }
        let evicted = g.shrink(self.budget);
        drop(g);
        self.evictions.fetch_add(evicted, Ordering::Relaxed);
    }

    /// Drop the chunks of mblock `id` (whose content is `len` bytes): it
    /// was freed.
    pub fn forget(&self, id: u64, len: u64) {
        let mut g = crate::lock(&self.inner);
        if g.map.is_empty() {
            return;
        }
        for c in 0..len.div_ceil(self.chunk).max(1) {
            if let Some(i) = g.map.get(&(id, c)).copied() {
                g.remove_slot(i);
            }
        }
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
            budget: self.budget,
            max_read: self.max_read,
            chunk: self.chunk,
            bytes: g.charged,
            chunks: g.map.len() as u64,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            hit_bytes: self.hit_bytes.load(Ordering::Relaxed),
            miss_bytes: self.miss_bytes.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(n: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; n])
    }

    #[test]
    fn a_chunk_inserted_is_found_and_the_budget_holds() {
        let c = ContentCache::new(4096, 1 << 20, 1024);
        let a = c.new_alloc();
        let r = run(2048, 7);
        c.insert(&r, r.len(), a, &[((1, 0), 0, 1024), ((1, 1), 1024, 1024)]);
        let got = c.lookup(&[(1, 0), (1, 1), (1, 2)]);
        assert_eq!(got[0].as_ref().map(|x| x.bytes()), Some(run(1024, 7)));
        assert!(got[1].is_some() && got[2].is_none());
        assert_eq!(c.stats().bytes, 2048);
        // Two more buffers of 2 KiB: the budget is 4 KiB, so one buffer
        // goes (both of its chunks).
        for id in 2..4 {
            let a = c.new_alloc();
            c.insert(&run(2048, id as u8), 2048, a, &[((id, 0), 0, 2048)]);
        }
        let s = c.stats();
        assert!(s.bytes <= 4096, "{s:?}");
        assert!(s.evictions >= 1, "{s:?}");
    }

    #[test]
    fn a_buffer_stays_charged_while_one_of_its_chunks_is_cached() {
        let c = ContentCache::new(1 << 20, 1 << 20, 1024);
        let a = c.new_alloc();
        c.insert(
            &run(3072, 1),
            3072,
            a,
            &[((9, 0), 0, 1024), ((9, 1), 1024, 1024)],
        );
        assert_eq!(c.stats().bytes, 3072);
        c.forget(9, 1024); // chunk 0 only
        assert_eq!(c.stats().chunks, 1);
        assert_eq!(c.stats().bytes, 3072);
        c.forget(9, 2048);
        assert_eq!(c.stats().chunks, 0);
        assert_eq!(c.stats().bytes, 0);
    }

    #[test]
    fn used_chunks_get_a_second_chance() {
        // Room for two 1 KiB buffers.
        let c = ContentCache::new(2048, 1 << 20, 1024);
        for id in 0..2 {
            let a = c.new_alloc();
            c.insert(&run(1024, 0), 1024, a, &[((id, 0), 0, 1024)]);
        }
        // A pass clears both bits and evicts one of them.
        let a = c.new_alloc();
        c.insert(&run(1024, 0), 1024, a, &[((2, 0), 0, 1024)]);
        assert_eq!(c.stats().chunks, 2);
        let kept: Vec<u64> = (0..2)
            .filter(|id| c.lookup(&[(*id, 0)])[0].is_some())
            .collect();
        assert_eq!(kept.len(), 1);
        // The survivor was just used: the next insert evicts chunk 2.
        let a = c.new_alloc();
        c.insert(&run(1024, 0), 1024, a, &[((3, 0), 0, 1024)]);
        assert!(c.lookup(&[(kept[0], 0)])[0].is_some());
        assert!(c.lookup(&[(2, 0)])[0].is_none());
    }

    #[test]
    fn a_cache_of_no_bytes_serves_nothing() {
        let c = ContentCache::new(0, 1 << 20, 1024);
        assert!(!c.serves(1));
        c.insert(&run(1024, 0), 1024, 1, &[((1, 0), 0, 1024)]);
        assert_eq!(c.stats().chunks, 0);
    }
}
