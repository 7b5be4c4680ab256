//! One map: its reserved address range, the objects laid out in it, and
//! per object the resident pages, last access, pins and advice.

use super::cache::Cache;
use super::uffd::FaultMode;
use super::Advice;
use crate::catalog::{MapTarget, ZoneHolds};
use crate::error::{Error, Result};
use crate::lock::lock;
use crate::pool::Pool;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, RwLock};

/// The page size the cache fills and evicts by.
pub(crate) const PAGE: usize = 4096;

/// Poisoned pages of one object (a page poisoned after a failed checksum
/// is resident as far as the kernel is concerned: an access raises
/// SIGBUS); held while pages are filled or evicted.
#[derive(Debug, Default)]
pub(super) struct Pages {
    bad: Vec<u64>,
}

fn bit(v: &[u64], p: usize) -> bool {
    v.get(p / 64).is_some_and(|w| w & (1 << (p % 64)) != 0)
}
fn set(v: &mut [u64], p: usize, on: bool) {
    if let Some(w) = v.get_mut(p / 64) {
        if on {
            *w |= 1 << (p % 64);
        } else {
            *w &= !(1 << (p % 64));
        }
    }
}

/// The resident word and the referenced word of the same 64 pages, side
/// by side in one 16-byte aligned pair: a guard's residency check and its
/// mark read one cache line, not two.
#[derive(Debug, Default)]
#[repr(C, align(16))]
pub(super) struct Pair([AtomicU64; 2]);

/// One of the two bitmaps of an object (the resident pages or the
/// referenced ones), a view over its pairs.
#[derive(Clone, Copy)]
pub(super) struct Bits<'a>(&'a [Pair], usize);

impl<'a> Bits<'a> {
    /// Word `w` (pages `64 * w ..`).
    #[inline]
    pub(super) fn get(&self, w: usize) -> Option<&'a AtomicU64> {
        self.0.get(w).map(|p| &p.0[self.1])
    }
    /// The words in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &'a AtomicU64> + 'a {
        let k = self.1;
        self.0.iter().map(move |p| &p.0[k])
    }
    /// Words.
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}

/// Resident pages, read without a lock, changed under the object's lock.
fn res_bit(v: Bits<'_>, p: usize) -> bool {
    v.get(p / 64)
        .is_some_and(|w| w.load(Ordering::Acquire) & (1 << (p % 64)) != 0)
}
fn res_set(v: Bits<'_>, p: usize, on: bool) {
    if let Some(w) = v.get(p / 64) {
        if on {
            w.fetch_or(1 << (p % 64), Ordering::Release);
        } else {
            w.fetch_and(!(1 << (p % 64)), Ordering::Release);
        }
    }
}

/// One mapped object. The fields a guard reads (length, place, the
/// pairs' address, last access, the poisoned flag) come first, in the
/// object's first cache line; the rest is for fills and the reaper.
#[derive(Debug)]
#[repr(C, align(64))]
pub(super) struct Obj {
    /// Content length (the target's, kept here: read by every guard).
    pub len: usize,
    /// Byte offset of its slot in the map's range.
    pub off: usize,
    pub pages: usize,
    /// Per 64 pages: the resident word (poisoned pages included) and the
    /// referenced word (set by every access the cache sees: guards,
    /// faults, touches; cleared by the reaper's second-chance sweep; a
    /// resident page found unreferenced is evicted). See [`Obj::res`]
    /// and [`Obj::refd`].
    pub words: Box<[Pair]>,
    /// The access clock at the last access.
    pub last: AtomicU64,
    /// Guards that could not pin in their thread's slot (see `pins`), and
    /// user-mode `slice` loads: never evicted while above zero.
    pub pins: AtomicU32,
    pub resident: AtomicU32,
    /// Some page is poisoned.
    pub poisoned: AtomicBool,
    /// Loaded for a slice valid as long as the map (user-mode faults
    /// only): never evicted.
    pub kept: AtomicBool,
    /// The object's heat: the pages of it referenced per harvest window
    /// of the reaper (200 ms), decayed (see `reaper::harvest`); the
    /// reaper's estimate of how often the object is used.
    pub heat: AtomicU32,
    pub target: MapTarget,
    pub state: Mutex<Pages>,
}

impl Obj {
    /// The resident pages (poisoned ones included).
    #[inline]
    pub(super) fn res(&self) -> Bits<'_> {
        Bits(&self.words, 0)
    }

    /// The referenced pages.
    #[inline]
    pub(super) fn refd(&self) -> Bits<'_> {
        Bits(&self.words, 1)
    }

    /// The object's identity in the pin slots: its address, which stays
    /// put while its map lives (and so while a guard on it does).
    #[inline]
    pub(super) fn key(&self) -> usize {
        self as *const Obj as usize
    }

    /// Stamp an access at clock `now`: a store only when the clock moved
    /// since the last stamp, so that guards on a hot object mostly leave
    /// its line shared between the readers' caches.
    #[inline]
    pub(super) fn stamp(&self, now: u64) {
        if self.last.load(Ordering::Relaxed) != now {
            self.last.store(now, Ordering::Relaxed);
        }
    }

    /// In use: a guard pins it, in a thread's slot or through the shared
    /// count. Call it after clearing the resident bits of what is to be
    /// evicted (step (b) of the ordering argument in `pins`).
    pub(super) fn pinned(&self) -> bool {
        self.pins.load(Ordering::SeqCst) > 0 || super::pins::pinned(self.key())
    }
}

/// The state of a map, shared with the fault handlers and the reaper.
#[derive(Debug)]
pub(crate) struct MapInner {
    /// The process' cache (kept here: a guard needs no lookup).
    pub cache: &'static Cache,
    pub base: usize,
    pub size: usize,
    pub objs: Vec<Obj>,
    pub advice: AtomicU8,
    pub resident: AtomicU64,
    /// The pool and the holds on the zones the map reads, while the map is
    /// live; taken (and so released) when the map is dropped, under the
    /// write lock, so no page is filled after and no fill is still reading
    /// a zone that a released hold lets the pool reuse. A reaper pass that
    /// still has the map's `Arc` keeps neither the zones held nor the pool
    /// open.
    live: RwLock<Option<(Pool, ZoneHolds)>>,
    pool_uuid: uuid::Uuid,
}

/// An mmap'ed range, unmapped on drop (for a map that failed halfway).
struct Region(usize, usize);
impl Drop for Region {
    fn drop(&mut self) {
        if self.1 > 0 {
            // SAFETY: the range was mapped by `reserve` and nothing refers
            // to it any more.
            unsafe { libc::munmap(self.0 as *mut libc::c_void, self.1) };
        }
    }
}

fn reserve(size: usize) -> std::io::Result<Region> {
    // SAFETY: a new private anonymous mapping at an address the kernel
    // picks; no existing memory is affected.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let region = Region(p as usize, size);
    // A forked child gets no fault handling for the range: with the range
    // not copied at all, its access is a SIGSEGV instead of zeros.
    // SAFETY: advice on the range just mapped.
    if unsafe { libc::madvise(p, size, libc::MADV_DONTFORK) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(region)
}

impl MapInner {
    pub(super) fn new(
        c: &'static Cache,
        pool: Pool,
        targets: Vec<MapTarget>,
        holds: ZoneHolds,
        advice: Advice,
    ) -> Result<MapInner> {
        let mut objs = Vec::with_capacity(targets.len());
        let mut off = 0usize;
        for t in targets {
            let pages = (t.len() as usize).div_ceil(PAGE);
            let words = pages.div_ceil(64);
            objs.push(Obj {
                len: t.len() as usize,
                target: t,
                off,
                pages,
                words: (0..words).map(|_| Pair::default()).collect(),
                poisoned: AtomicBool::new(false),
                state: Mutex::new(Pages::default()),
                resident: AtomicU32::new(0),
                last: AtomicU64::new(c.tick()),
                pins: AtomicU32::new(0),
                kept: AtomicBool::new(false),
                heat: AtomicU32::new(0),
            });
            off += pages * PAGE;
        }
        // One page at least, so that an empty map still has an address.
        let size = off.max(PAGE);
        let budget = c.address_budget.load(Ordering::Relaxed);
        let before = c.stats.reserved.fetch_add(size as u64, Ordering::Relaxed);
        if before + size as u64 > budget {
            c.stats.reserved.fetch_sub(size as u64, Ordering::Relaxed);
            return Err(Error::InvalidArgument(format!(
                "an mcache map of {size} bytes would exceed the address-space budget \
                 ({before} of {budget} bytes reserved)"
            )));
        }
        let region = reserve(size)
            .and_then(|r| c.uffd.register(r.0, r.1).map(|()| r))
            .map_err(|e| {
                c.stats.reserved.fetch_sub(size as u64, Ordering::Relaxed);
                super::cache::os_err("mmap", e)
            })?;
        let base = region.0;
        std::mem::forget(region);
        c.stats
            .objects
            .fetch_add(objs.len() as u64, Ordering::Relaxed);
        c.stats.maps.fetch_add(1, Ordering::Relaxed);
        Ok(MapInner {
            cache: c,
            base,
            size,
            objs,
            advice: AtomicU8::new(advice as u8),
            resident: AtomicU64::new(0),
            pool_uuid: pool.uuid(),
            live: RwLock::new(Some((pool, holds))),
        })
    }

    /// The UUID of the pool the map reads.
    pub(super) fn pool_uuid(&self) -> uuid::Uuid {
        self.pool_uuid
    }

    pub(super) fn advice(&self) -> Advice {
        Advice::from_u8(self.advice.load(Ordering::Relaxed))
    }

    /// The bytes of object `i`.
    pub(super) fn bytes(&self, i: usize) -> &[u8] {
        let o = &self.objs[i];
        let len = o.len;
        if len == 0 {
            return &[];
        }
        // SAFETY: the slot lies inside the range mapped for this map's
        // lifetime (which the borrow of `self` bounds), read-only; its
        // pages read as the object's verified bytes: filled by the fault
        // handler on first access, or loaded before this is handed out
        // (user-mode faults); a page that failed its checksum raises SIGBUS
        // instead of being read.
        unsafe { std::slice::from_raw_parts((self.base + o.off) as *const u8, len) }
    }

    /// Object index of an address inside the map.
    fn index_of(&self, addr: usize) -> Option<usize> {
        let off = addr.checked_sub(self.base)?;
        let i = self.objs.partition_point(|o| o.off <= off).checked_sub(1)?;
        (off < self.objs[i].off + self.objs[i].pages * PAGE).then_some(i)
    }

    /// Whether pages `pages` of object `i` are all resident and none is
    /// poisoned (no lock: a guard's fast path).
    pub(super) fn all_resident(&self, i: usize, pages: std::ops::Range<usize>) -> bool {
        let o = &self.objs[i];
        !o.poisoned.load(Ordering::SeqCst)
            && pages.into_iter().all(|p| {
                o.res()
                    .get(p / 64)
                    .is_some_and(|w| w.load(Ordering::SeqCst) & (1 << (p % 64)) != 0)
            })
    }

    /// Mark pages `pages` of object `i` referenced (one load per word,
    /// an atomic OR only when a bit is not set yet).
    pub(super) fn mark(&self, i: usize, pages: std::ops::Range<usize>) {
        let o = &self.objs[i];
        let end = pages.end.min(o.pages);
        let mut p = pages.start;
        while p < end {
            let w = p / 64;
            let hi = end.min((w + 1) * 64);
            let n = hi - p;
            let mask = if n == 64 {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << (p % 64)
            };
            if let Some(word) = o.refd().get(w) {
                if word.load(Ordering::Relaxed) & mask != mask {
                    word.fetch_or(mask, Ordering::Relaxed);
                }
            }
            p = hi;
        }
    }

    /// The pages a miss on `pages` of object `i` loads: the advice's
    /// window around them.
    pub(super) fn window(&self, i: usize, pages: std::ops::Range<usize>) -> std::ops::Range<usize> {
        let o = &self.objs[i];
        let win = match self.advice() {
            Advice::WillNeed => o.pages.max(1),
            a => a.window_pages(),
        };
        (pages.start / win * win)..pages.end.div_ceil(win).saturating_mul(win).min(o.pages)
    }

    /// Serve a missing-page fault at `addr` of thread `tid` (a
    /// fault-handler thread).
    pub(super) fn fault(&self, c: &Cache, addr: usize, tid: u32) {
        let page_addr = addr & !(PAGE - 1);
        let Some(i) = self.index_of(addr) else {
            if let Err(e) = c.uffd.poison_or_kill(page_addr, PAGE, tid) {
                tracing::error!("mcache: fault at {addr:#x} between objects: {e}");
            }
            return;
        };
        let o = &self.objs[i];
        let p = (addr - self.base - o.off) / PAGE;
        let w = self.window(i, p..p + 1);
        let (first, last) = (w.start, w.end);
        o.stamp(c.tick());
        self.mark(i, p..p + 1);
        let filled = match self.fill(c, i, first..last) {
            Ok(f) => Ok(f),
            Err(_) if last - first > 1 => self.fill(c, i, p..p + 1),
            Err(e) => Err(e),
        };
        match filled {
            Ok(_) => {
                // Installed (which woke the thread), or present already
                // (another thread filled it): woken either way.
                if let Err(e) = c.uffd.wake(page_addr, PAGE) {
                    tracing::error!("mcache: waking at {addr:#x}: {e}");
                }
            }
            Err(e) => {
                tracing::warn!(
                    "mcache: {} page {p}: {e}; the page is poisoned",
                    o.target.id()
                );
                let mut st = lock(&o.state);
                if !res_bit(o.res(), p) {
                    if st.bad.is_empty() {
                        st.bad = vec![0; o.res().len()];
                    }
                    res_set(o.res(), p, true);
                    set(&mut st.bad, p, true);
                    o.poisoned.store(true, Ordering::Release);
                    c.stats.poisoned.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = c.uffd.poison_or_kill(page_addr, PAGE, tid) {
                        tracing::error!("mcache: poisoning {addr:#x}: {e}");
                    }
                } else if let Err(e) = c.uffd.wake(page_addr, PAGE) {
                    tracing::error!("mcache: waking at {addr:#x}: {e}");
                }
            }
        }
    }

    /// Load the missing pages of `pages` of object `i`, verified, and
    /// install them; the pages installed. A poisoned page in the range is
    /// read again and, when it now verifies, replaces the poison. Nothing
    /// is installed from a read that failed.
    pub(super) fn fill(
        &self,
        c: &Cache,
        i: usize,
        pages: std::ops::Range<usize>,
    ) -> Result<std::ops::Range<usize>> {
        let live = crate::lock::read(&self.live);
        let Some((pool, _)) = &*live else {
            return Ok(0..0);
        };
        let o = &self.objs[i];
        let missing = |st: &Pages, p: usize| !res_bit(o.res(), p) || bit(&st.bad, p);
        let (a, b) = {
            let st = lock(&o.state);
            let Some(a) = pages.clone().find(|&p| missing(&st, p)) else {
                return Ok(0..0);
            };
            let b = pages
                .clone()
                .rev()
                .find(|&p| missing(&st, p))
                .map_or(a, |b| b)
                + 1;
            (a, b)
        };
        let len = o.target.len() as usize;
        let from = a * PAGE;
        let to = (b * PAGE).min(len);
        let mut buf = vec![0u8; (b - a) * PAGE];
        // Read without the object's lock (misses of two threads in one
        // object overlap, as the kernel's faults on one file do); the bytes
        // are immutable, and what another thread installed meanwhile is
        // skipped below.
        pool.mcache_read(&o.target, from as u64, &mut buf[..to - from])?;
        let mut st = lock(&o.state);
        c.stats.faults.fetch_add(1, Ordering::Relaxed);
        c.clock.fetch_add(1, Ordering::Relaxed);
        let mut added = 0u32;
        for p in a..b {
            if !missing(&st, p) {
                continue;
            }
            let dst = self.base + o.off + p * PAGE;
            if bit(&st.bad, p) {
                // SAFETY: one page of this map's range; a poisoned page
                // holds nothing anyone can read.
                unsafe { libc::madvise(dst as *mut libc::c_void, PAGE, libc::MADV_DONTNEED) };
                set(&mut st.bad, p, false);
                res_set(o.res(), p, false);
            }
            let src = &buf[(p - a) * PAGE..(p - a + 1) * PAGE];
            match c.uffd.copy(dst, src) {
                Ok(()) => {}
                Err((e, _)) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err((e, _)) => {
                    tracing::error!("mcache: installing a page at {dst:#x}: {e}");
                    continue;
                }
            }
            res_set(o.res(), p, true);
            added += 1;
        }
        if st.bad.iter().all(|&w| w == 0) {
            o.poisoned.store(false, Ordering::Release);
        }
        o.resident.fetch_add(added, Ordering::Relaxed);
        let bytes = u64::from(added) * PAGE as u64;
        self.resident.fetch_add(bytes, Ordering::Relaxed);
        c.stats.resident.fetch_add(bytes, Ordering::Relaxed);
        c.stats.fault_bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(a..b)
    }

    /// Drop object `i`'s resident pages unless it is in use (`force`:
    /// even then, for a caller that knows better; never a kept object, nor
    /// one in use with user-mode fault handling). The bytes freed.
    pub(super) fn evict(&self, c: &Cache, i: usize, force: bool) -> u64 {
        self.evict_many(c, &mut [i], force)
    }

    /// Evict objects `idx` (reordered) as [`MapInner::evict`] does, with
    /// one `madvise` per run of neighbouring objects (fewer TLB
    /// shootdowns). The bytes freed.
    pub(super) fn evict_many(&self, c: &Cache, idx: &mut [usize], force: bool) -> u64 {
        let live = crate::lock::read(&self.live);
        if live.is_none() {
            return 0;
        }
        idx.sort_unstable();
        let may_evict_in_use = force && c.uffd.mode == FaultMode::Full;
        let mut freed = 0;
        let mut k = 0;
        while k < idx.len() {
            // A run of neighbours, each locked while its pages go.
            let mut run = Vec::new();
            let mut next = idx[k];
            while k < idx.len() && idx[k] == next {
                let o = &self.objs[idx[k]];
                k += 1;
                next += 1;
                if o.kept.load(Ordering::Relaxed) {
                    break;
                }
                let st = lock(&o.state);
                if o.resident.load(Ordering::Relaxed) == 0 && st.bad.is_empty() {
                    break;
                }
                // Announce the eviction (clear the resident bits), then look
                // for users: a guard pins first, then checks the bits (both
                // sequentially consistent), so either it sees them cleared
                // and loads again under this lock, or this sees its pin (in
                // a thread's slot or the shared count: see `pins`).
                let snap: Vec<u64> = o
                    .res()
                    .iter()
                    .map(|w| w.swap(0, Ordering::SeqCst))
                    .collect();
                if (!may_evict_in_use && o.pinned()) || o.kept.load(Ordering::SeqCst) {
                    for (w, v) in o.res().iter().zip(snap) {
                        w.fetch_or(v, Ordering::SeqCst);
                    }
                    break;
                }
                run.push((o, st));
            }
            let (Some(first), Some(last)) = (run.first().map(|r| r.0), run.last().map(|r| r.0))
            else {
                continue;
            };
            let from = self.base + first.off;
            let to = self.base + last.off + last.pages * PAGE;
            // SAFETY: whole slots of objects inside this map's range; their
            // pages are refilled with the same bytes on the next access.
            unsafe { libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_DONTNEED) };
            for (o, mut st) in run {
                let n = o.resident.swap(0, Ordering::Relaxed);
                o.res().iter().for_each(|w| w.store(0, Ordering::Release));
                o.refd().iter().for_each(|w| w.store(0, Ordering::Relaxed));
                st.bad = Vec::new();
                o.poisoned.store(false, Ordering::Release);
                let bytes = u64::from(n) * PAGE as u64;
                self.resident.fetch_sub(bytes, Ordering::Relaxed);
                c.stats.resident.fetch_sub(bytes, Ordering::Relaxed);
                c.stats.evictions.fetch_add(1, Ordering::Relaxed);
                c.stats.evicted_bytes.fetch_add(bytes, Ordering::Relaxed);
                freed += bytes;
            }
        }
        freed
    }

    /// Evict object `i`'s resident pages not referenced since the
    /// reaper's last harvest (all of them, as one object eviction, when
    /// none was), leaving the referenced bits as they are. An object in
    /// use (a live guard), kept, or with a poisoned page and referenced
    /// pages is left alone. The bytes freed.
    ///
    /// `busy` is a sorted snapshot of the pinned objects' keys (a cheap
    /// pre-filter: the pins are checked again after the announcement).
    pub(super) fn evict_unreferenced(&self, c: &Cache, i: usize, busy: &[usize]) -> u64 {
        let o = &self.objs[i];
        if o.resident.load(Ordering::Relaxed) == 0
            || o.pins.load(Ordering::Relaxed) > 0
            || busy.binary_search(&o.key()).is_ok()
            || o.kept.load(Ordering::Relaxed)
        {
            return 0;
        }
        let refd: Vec<u64> = o.refd().iter().map(|w| w.load(Ordering::Relaxed)).collect();
        if o.res()
            .iter()
            .zip(&refd)
            .all(|(r, f)| r.load(Ordering::Relaxed) & !f == 0)
        {
            return 0; // every resident page was used
        }
        if refd.iter().all(|&w| w == 0) || o.poisoned.load(Ordering::Relaxed) {
            if refd.iter().any(|&w| w != 0) {
                return 0;
            }
            return self.evict_many(c, &mut [i], false);
        }
        let live = crate::lock::read(&self.live);
        if live.is_none() {
            return 0;
        }
        let st = lock(&o.state);
        if !st.bad.is_empty() {
            return 0;
        }
        // Announce (clear the victims' resident bits), then look for users,
        // as `evict_many` does: a guard pins before it checks residency.
        let victims: Vec<u64> = o
            .res()
            .iter()
            .zip(&refd)
            .map(|(r, f)| {
                let v = r.load(Ordering::SeqCst) & !f;
                r.fetch_and(!v, Ordering::SeqCst);
                v
            })
            .collect();
        if o.pinned() || o.kept.load(Ordering::SeqCst) {
            for (w, v) in o.res().iter().zip(&victims) {
                w.fetch_or(*v, Ordering::SeqCst);
            }
            return 0;
        }
        // One `madvise` per span of pages that holds no page kept (a span
        // may cover pages that are not resident: harmless).
        let keep = |p: usize| res_bit(o.res(), p);
        let victim = |p: usize| {
            victims
                .get(p / 64)
                .is_some_and(|w| w & (1 << (p % 64)) != 0)
        };
        let mut p = 0;
        while p < o.pages {
            if !victim(p) {
                p += 1;
                continue;
            }
            let from = p;
            let mut to = p + 1;
            let mut last_victim = p;
            while to < o.pages && !keep(to) {
                if victim(to) {
                    last_victim = to;
                }
                to += 1;
            }
            let a = self.base + o.off + from * PAGE;
            let len = (last_victim + 1 - from) * PAGE;
            // SAFETY: pages of this object's slot in this map's range, none
            // of them in use (no pin) or kept; they are refilled with the
            // same bytes on the next access.
            unsafe { libc::madvise(a as *mut libc::c_void, len, libc::MADV_DONTNEED) };
            p = to;
        }
        drop(st);
        let n: u32 = victims.iter().map(|w| w.count_ones()).sum();
        o.resident.fetch_sub(n, Ordering::Relaxed);
        let bytes = u64::from(n) * PAGE as u64;
        self.resident.fetch_sub(bytes, Ordering::Relaxed);
        c.stats.resident.fetch_sub(bytes, Ordering::Relaxed);
        c.stats
            .page_evictions
            .fetch_add(u64::from(n), Ordering::Relaxed);
        c.stats.evicted_bytes.fetch_add(bytes, Ordering::Relaxed);
        bytes
    }

    /// Stop filling pages and give the range back (the map's drop).
    pub(super) fn close(&self, c: &Cache) {
        let live = crate::lock::write(&self.live).take();
        drop(live);
        let bytes = self.resident.swap(0, Ordering::Relaxed);
        c.stats.resident.fetch_sub(bytes, Ordering::Relaxed);
        c.stats
            .objects
            .fetch_sub(self.objs.len() as u64, Ordering::Relaxed);
        c.stats.maps.fetch_sub(1, Ordering::Relaxed);
        drop(Region(self.base, self.size));
        c.stats
            .reserved
            .fetch_sub(self.size as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, offset_of, size_of};

    /// What a guard reads of its object lies in the object's first cache
    /// line, and a page's resident and referenced words share a line: a
    /// guard on a resident page reads two lines of the cache's own (plus
    /// its thread's pin slot), where it read four (measured in
    /// BENCHMARKS.md, "What makes side 1 swing").
    #[test]
    fn a_guard_reads_one_line_of_its_object_and_one_of_its_bits() {
        assert_eq!(align_of::<Obj>(), 64);
        for end in [
            offset_of!(Obj, len) + size_of::<usize>(),
            offset_of!(Obj, off) + size_of::<usize>(),
            offset_of!(Obj, pages) + size_of::<usize>(),
            offset_of!(Obj, words) + size_of::<Box<[Pair]>>(),
            offset_of!(Obj, last) + size_of::<AtomicU64>(),
            offset_of!(Obj, poisoned) + 1,
        ] {
            assert!(end <= 64, "a guard's field ends at byte {end}");
        }
        assert_eq!((size_of::<Pair>(), align_of::<Pair>()), (16, 16));
        let words: Box<[Pair]> = (0..4).map(|_| Pair::default()).collect();
        let (res, refd) = (Bits(&words, 0), Bits(&words, 1));
        for w in 0..4 {
            let (a, b) = (res.get(w).unwrap(), refd.get(w).unwrap());
            let (a, b) = (a as *const _ as usize, b as *const _ as usize);
            assert_eq!(b, a + 8);
            assert_eq!(a / 64, b / 64, "word {w}: two lines");
        }
        // The two views are distinct bitmaps.
        res_set(res, 70, true);
        assert!(res_bit(res, 70));
        assert!(!res_bit(refd, 70));
        assert_eq!(
            refd.iter().map(|w| w.load(Ordering::Relaxed)).sum::<u64>(),
            0
        );
        assert_eq!(
            res.iter().map(|w| w.load(Ordering::Relaxed)).sum::<u64>(),
            1 << 6
        );
        assert_eq!((res.len(), refd.len()), (4, 4));
    }
}
