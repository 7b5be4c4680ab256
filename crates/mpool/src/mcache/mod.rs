//! mcache maps: committed mblocks mapped into memory, a collection at a
//! time, and the reaper that evicts them by object.
//!
//! [`crate::Pool::mcache_map`] maps a list of committed mblocks (of any
//! media class) with one call. The map is one reserved anonymous address
//! range (one VMA, `MAP_NORESERVE`, read-only) registered with
//! userfaultfd(2); the objects lie in it one after the other, each at a
//! page boundary. Nothing is read at map time: the first access to a page
//! faults, and one of the process' fault-handler threads reads the page
//! (and, by the map's [`Advice`], its neighbours) from the device with
//! O_DIRECT through the pool's verified read path, checks every byte
//! against the mblock's per-block checksums, and installs it
//! (`UFFDIO_COPY`); a guard ([`McacheMap::get`], [`McacheMap::range`])
//! does the same in the calling thread before it returns, so its bytes
//! never fault. Eviction is `MADV_DONTNEED` of a whole object's
//! range, or of the pages of an object that were not used lately. So mapping a map costs three system calls (`mmap`,
//! `madvise(MADV_DONTFORK)`, `UFFDIO_REGISTER`) and dropping it one
//! (`munmap`) whatever its object count, 100,000 objects over 1,000 maps
//! are at most 1,000 VMAs, and the page cache is never involved: direct reads
//! ([`crate::Pool::mblock_read`], [`crate::MblockReader`]) never populate
//! this cache, and mapped reads never populate the kernel's.
//!
//! # Media errors under a map
//!
//! A page whose bytes fail their checksum (twice: the read is retried)
//! is never installed. Instead it is *poisoned* (`UFFDIO_POISON`): the
//! thread that touched it gets **SIGBUS** (which ends the process unless
//! handled), and a system call given such a slice fails with `EFAULT`.
//! To get a typed error instead, call [`McacheMap::load`] on the range
//! first: it reads and verifies it and returns
//! [`crate::ObjectError::Checksum`] (or the device error); a range that
//! loaded without error is resident and cannot fault until it is evicted.
//! The guards ([`McacheMap::get`], [`McacheMap::range`]) do that for
//! their own bytes.
//! A poisoned page is read again by the next `load` of it, and by the
//! next fault after an eviction.
//!
//! # Privileges: full and user-mode fault handling
//!
//! Faults the kernel takes on the process' behalf (a mapped slice passed
//! to `write(2)`, `send(2)`, …) are served only by a *full* userfaultfd:
//! root, `CAP_SYS_PTRACE`, `vm.unprivileged_userfaultfd=1`, or read-write
//! access to `/dev/userfaultfd` (a udev rule or ACL for the service's
//! group). Any other user gets `UFFD_USER_MODE_ONLY`, where such a fault
//! fails with `EFAULT`. [`fault_mode`] tells which one the process has.
//! The API is sound in both. [`McacheMap::get`] and [`McacheMap::range`]
//! load (and verify) what is not resident before they return, in the
//! calling thread, and pin the object until the guard drops: in either
//! mode their bytes never fault (and a damaged block is their error, not
//! a SIGBUS). [`McacheMap::slice`] is lazy in full mode (pages come on
//! access, through the fault handler); in user mode it loads the whole
//! object and keeps it resident for the map's lifetime.
//!
//! # The reaper
//!
//! One thread per process, for all pools and maps. Every 20 ms it reads
//! the memory pressure: the cgroup's limit and usage (v2 `memory.max` /
//! `memory.current`, v1 `memory.limit_in_bytes` /
//! `memory.usage_in_bytes`), or without a limit the machine's
//! `MemTotal` and `MemAvailable`, and the explicit budget
//! ([`set_budget`]). Above 90 % of a cgroup limit it frees down to 87 %
//! (without a cgroup: above 7/8 of the machine, down to 7/8); over the
//! budget, down to 15/16 of it. Use is kept per page and per object:
//! every use the cache sees (guards, faults, touches; misses included)
//! sets the page's referenced bit (one atomic load, and an atomic OR the
//! first time), and every 200 ms the reaper *harvests* them: each
//! object's referenced pages are counted into its *heat* (which loses an
//! eighth of itself per harvest) and cleared. The heat per page of the
//! object, scaled by advice (hot 4, warm and will-need 2, cold 1), is the
//! order of eviction, least used first; among equals (never read:
//! loaded ahead) the longest idle first (time since the object's last
//! access over the same scale). In that order the reaper evicts each
//! object's pages not referenced since the last harvest
//! (`MADV_DONTNEED`, one call per span of them; the whole object when
//! none was, neighbours in one call), and if that was not enough, whole
//! objects. So the pages of the objects used least go first, a page read
//! once in a cold object does not stay for a whole turn of a clock, and
//! an object in the middle of its use keeps the pages it is using. Why
//! by object: under a skewed load an object's pages are used at about
//! the object's rate, which the reaper measures from hundreds of pages,
//! where one page is read too rarely for its own recency to tell warm
//! from cold (BENCHMARKS.md, mcache, session 10: 0.218 misses per read
//! with page recency, 0.176 with the heat, 0.164 with new maps loaded
//! ahead). The reaper thread runs with a short time slice (100 us, Linux
//! 6.12+), so that a long pass holds a woken reader for at most one
//! short turn. An object in use (a live
//! [`MappedRef`]) is never
//! touched. Time here is the access clock, which advances by one
//! at every fill (a miss) and every reaper tick: recency is ordered
//! finely under misses (a 20 ms clock left most candidates tied) and
//! still moves when nothing misses. [`set_reaper`] turns it off;
//! [`stats`] counts its work.
//! Accesses are stamped (object and pages) by the fault handler and by
//! every [`McacheMap::get`], [`McacheMap::range`], [`McacheMap::touch`]
//! and [`McacheMap::touch_range`] ([`McacheMap::load`] stamps the object
//! only: pages loaded ahead count as used once they are read); plain reads of an
//! already resident slice are invisible to it (no page-table access bits
//! are read), so a caller that reads through [`McacheMap::slice`] should
//! `touch_range` what it uses.
//!
//! A forked child does not inherit the fault handling, so it does not
//! inherit the maps either (`MADV_DONTFORK`): touching one in the child is
//! a SIGSEGV, never zeros.
//!
//! Poisoning needs Linux 6.6 (`UFFDIO_POISON`); on an older kernel the
//! thread that touched a damaged page is sent SIGBUS directly.

mod cache;
mod map;
mod pins;
mod reaper;
mod uffd;

pub use reaper::{pressure as memory_pressure, Pressure as MemoryPressure};
pub use uffd::FaultMode;

use crate::error::{ObjectError, Result};
use crate::objid::MblockId;
use map::{MapInner, PAGE};
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// How a map's objects are expected to be used: how much a fault reads
/// and how long the reaper keeps an idle object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Advice {
    /// Read often: a fault loads 64 KiB around the page; kept 4x as long.
    Hot = 0,
    /// A fault loads 16 KiB; kept twice as long as cold.
    Warm = 1,
    /// Read rarely: a fault loads its 4 KiB page.
    Cold = 2,
    /// The whole object is loaded on its first fault ("will need").
    WillNeed = 3,
}

impl Advice {
    fn from_u8(v: u8) -> Advice {
        match v {
            0 => Advice::Hot,
            1 => Advice::Warm,
            3 => Advice::WillNeed,
            _ => Advice::Cold,
        }
    }
    /// Pages a fault loads (aligned window around the faulting page).
    fn window_pages(self) -> usize {
        match self {
            Advice::Hot => 16,
            Advice::Warm => 4,
            Advice::Cold => 1,
            Advice::WillNeed => usize::MAX,
        }
    }
    /// How much longer than a cold object an idle object is kept.
    fn ttl_scale(self) -> u64 {
        match self {
            Advice::Hot => 4,
            Advice::Warm | Advice::WillNeed => 2,
            Advice::Cold => 1,
        }
    }
}

/// The process' cache counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct McacheStats {
    /// Live maps.
    pub maps: u64,
    /// Objects in live maps.
    pub objects: u64,
    /// Bytes of address space reserved by live maps.
    pub reserved_bytes: u64,
    /// Bytes resident in live maps.
    pub resident_bytes: u64,
    /// Reads from the devices to fill pages (faults and loads).
    pub fills: u64,
    /// Bytes installed by them.
    pub fill_bytes: u64,
    /// Pages poisoned after a failed checksum.
    pub poisoned_pages: u64,
    /// Objects evicted whole (by the reaper or [`McacheMap::evict`]).
    pub evictions: u64,
    /// Pages evicted from objects that kept others (the reaper's
    /// page-granular second chance).
    pub page_evictions: u64,
    /// Bytes evicted (whole objects and pages).
    pub evicted_bytes: u64,
    /// Reaper passes that evicted.
    pub reaper_runs: u64,
    /// Time the reaper spent in them (nanoseconds).
    pub reaper_ns: u64,
}

/// The mcache maps of one pool in this process (what `mpool status` shows
/// of a pool whose holder has maps).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct McachePoolFigures {
    /// Live maps of the pool.
    pub maps: u64,
    /// Objects in them.
    pub objects: u64,
    /// Bytes of them resident.
    pub resident_bytes: u64,
}

/// The maps of pool `uuid` in this process, if it has any.
pub(crate) fn pool_figures(uuid: uuid::Uuid) -> Option<McachePoolFigures> {
    let c = cache::started()?;
    let maps = crate::lock::read(&c.maps);
    let mut f = McachePoolFigures::default();
    for m in maps.values().filter(|m| m.pool_uuid() == uuid) {
        f.maps += 1;
        f.objects += m.objs.len() as u64;
        f.resident_bytes += m.resident.load(Ordering::Relaxed);
    }
    (f.maps > 0).then_some(f)
}

/// The counters of the process' cache (zeros before the first map).
pub fn stats() -> McacheStats {
    let Some(c) = cache::started() else {
        return McacheStats::default();
    };
    let s = &c.stats;
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    McacheStats {
        maps: l(&s.maps),
        objects: l(&s.objects),
        reserved_bytes: l(&s.reserved),
        resident_bytes: l(&s.resident),
        fills: l(&s.faults),
        fill_bytes: l(&s.fault_bytes),
        poisoned_pages: l(&s.poisoned),
        evictions: l(&s.evictions),
        page_evictions: l(&s.page_evictions),
        evicted_bytes: l(&s.evicted_bytes),
        reaper_runs: l(&s.reaper_runs),
        reaper_ns: l(&s.reaper_ns),
    }
}

/// How this process' faults are served (starts the cache).
pub fn fault_mode() -> Result<FaultMode> {
    Ok(cache::cache()?.uffd.mode)
}

/// Set the explicit cache budget: the reaper keeps the resident bytes of
/// all maps under it (`None`: memory pressure alone).
pub fn set_budget(bytes: Option<u64>) -> Result<()> {
    cache::cache()?
        .budget
        .store(bytes.unwrap_or(0), Ordering::Relaxed);
    Ok(())
}

/// Turn the reaper on (the default) or off.
pub fn set_reaper(on: bool) -> Result<()> {
    cache::cache()?.reaper_on.store(on, Ordering::Relaxed);
    Ok(())
}

/// Set the address-space budget of all maps together (16 TiB by
/// default): a map that would go over it is refused.
pub fn set_address_budget(bytes: u64) -> Result<()> {
    cache::cache()?
        .address_budget
        .store(bytes, Ordering::Relaxed);
    Ok(())
}

/// Evict, now, at least `bytes` (when there is that much not in use) as
/// the reaper would: the least used objects first (by heat per page,
/// then idle time), their pages not referenced since the last harvest,
/// then whole objects; the bytes freed.
pub fn reap(bytes: u64) -> Result<u64> {
    let c = cache::cache()?;
    c.clock.fetch_add(1, Ordering::Relaxed);
    Ok(reaper::reap(c, bytes))
}

/// Committed mblocks mapped into memory (see the [module
/// documentation](self)). `Send + Sync`; dropping it unmaps the range
/// and releases the zones of objects deleted meanwhile.
#[derive(Debug)]
pub struct McacheMap {
    inner: Arc<MapInner>,
}

/// A guard over the bytes of one mapped object (or a range of them): the
/// object counts as in use, so the reaper leaves it, until it drops.
/// Dereferences to the bytes.
#[derive(Debug)]
pub struct MappedRef<'a> {
    map: &'a MapInner,
    index: usize,
    bytes: &'a [u8],
    /// The pin in the taking thread's slot (None: the object's shared
    /// count).
    pin: Option<pins::Pin>,
}

impl std::ops::Deref for MappedRef<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes
    }
}

impl Drop for MappedRef<'_> {
    fn drop(&mut self) {
        let o = &self.map.objs[self.index];
        o.stamp(self.map.cache.tick());
        match &self.pin {
            Some(p) => p.release(),
            None => {
                o.pins.fetch_sub(1, Ordering::Release);
            }
        }
    }
}

impl McacheMap {
    /// Map the committed mblocks `targets` (holding their zones).
    pub(crate) fn new(
        pool: crate::Pool,
        targets: Vec<crate::catalog::MapTarget>,
        holds: crate::catalog::ZoneHolds,
        advice: Advice,
    ) -> Result<McacheMap> {
        let c = cache::cache()?;
        let inner = Arc::new(MapInner::new(c, pool, targets, holds, advice)?);
        crate::lock::write(&c.maps).insert(inner.base, Arc::clone(&inner));
        Ok(McacheMap { inner })
    }

    fn check(&self, i: usize) -> Result<()> {
        if i >= self.inner.objs.len() {
            return Err(crate::Error::InvalidArgument(format!(
                "object {i} of a map of {} objects",
                self.inner.objs.len()
            )));
        }
        Ok(())
    }

    /// Objects in the map.
    pub fn len(&self) -> usize {
        self.inner.objs.len()
    }

    /// The map holds no objects.
    pub fn is_empty(&self) -> bool {
        self.inner.objs.is_empty()
    }

    /// The ID of object `i` (in the order given to the map call).
    pub fn id(&self, i: usize) -> Option<MblockId> {
        let o = self.inner.objs.get(i)?;
        MblockId::try_from(o.target.id()).ok()
    }

    /// Content length of object `i`.
    pub fn object_len(&self, i: usize) -> Option<u64> {
        Some(self.inner.objs.get(i)?.len as u64)
    }

    /// The bytes of object `i`, valid while the map lives. With full
    /// fault handling, pages are read on access and the reaper may evict
    /// them (they come back on the next access); stamp use with
    /// [`McacheMap::touch`]. With user-mode faults only, the object is
    /// loaded now and kept resident until the map drops, so that the
    /// slice works in system calls too: prefer [`McacheMap::get`] there.
    pub fn slice(&self, i: usize) -> Result<&[u8]> {
        self.check(i)?;
        let c = cache::cache()?;
        let o = &self.inner.objs[i];
        if c.uffd.mode == FaultMode::UserOnly && !o.kept.load(Ordering::Acquire) {
            o.pins.fetch_add(1, Ordering::SeqCst);
            let r = self.inner.fill(c, i, 0..o.pages);
            if r.is_ok() {
                o.kept.store(true, Ordering::SeqCst);
            }
            o.pins.fetch_sub(1, Ordering::SeqCst);
            r?;
        }
        Ok(self.inner.bytes(i))
    }

    /// The bytes of object `i` behind a guard that stamps the access and
    /// keeps the object in use (the reaper leaves it) until it drops. What
    /// is not resident is loaded and verified first, in the calling thread:
    /// a damaged block is an error here ([`crate::ObjectError::Checksum`]),
    /// never a SIGBUS later, and the bytes work in system calls in either
    /// fault mode.
    pub fn get(&self, i: usize) -> Result<MappedRef<'_>> {
        let len = self.object_len(i).unwrap_or(0);
        self.range(i, 0..len)
    }

    /// Object `i` exists and `range` lies inside it (else
    /// [`ObjectError::ReadOutOfRange`]).
    fn check_range(&self, i: usize, range: &Range<u64>) -> Result<()> {
        self.check(i)?;
        let o = &self.inner.objs[i];
        let len = o.len as u64;
        if range.start > range.end || range.end > len {
            return Err(ObjectError::ReadOutOfRange {
                id: o.target.id(),
                offset: range.start,
                len: range.end.saturating_sub(range.start),
                size: len,
            }
            .into());
        }
        Ok(())
    }

    /// Bytes `range` of object `i` behind a guard, like [`McacheMap::get`]:
    /// the range's pages (and, on a miss, the advice's window around them)
    /// are loaded first when they are not resident.
    pub fn range(&self, i: usize, range: Range<u64>) -> Result<MappedRef<'_>> {
        self.check_range(i, &range)?;
        let c = self.inner.cache;
        let o = &self.inner.objs[i];
        // Pinned before residency is checked (see the ordering argument
        // in `pins`): in this thread's own slot, so that two threads
        // reading one object write no line in common; through the shared
        // count only when the thread's slots are all in use.
        let pin = pins::pin(o.key());
        if pin.is_none() {
            o.pins.fetch_add(1, Ordering::SeqCst);
        }
        // Stamped only when the clock moved (it moves on fills and reaper
        // ticks): most guards write nothing to the object's line.
        o.stamp(c.tick());
        let guard = MappedRef {
            map: &self.inner,
            index: i,
            bytes: &self.inner.bytes(i)[range.start as usize..range.end as usize],
            pin,
        };
        if !range.is_empty() {
            let pages = range.start as usize / PAGE..(range.end as usize).div_ceil(PAGE);
            self.inner.mark(i, pages.clone());
            if !self.inner.all_resident(i, pages.clone()) {
                // Loaded here, in the caller's thread (no fault, no hand-off
                // to a fault handler), with the advice's window; a damaged
                // block elsewhere in the window does not fail the call.
                let window = self.inner.window(i, pages.clone());
                if self.inner.fill(c, i, window).is_err() {
                    self.inner.fill(c, i, pages)?;
                }
            }
        }
        Ok(guard)
    }

    /// Load `range` of object `i` now, verified: a typed error
    /// ([`crate::ObjectError::Checksum`], a device error) instead of a
    /// SIGBUS on access. Resident pages are not read again; a poisoned
    /// one is.
    pub fn load(&self, i: usize, range: Range<u64>) -> Result<()> {
        self.check_range(i, &range)?;
        let c = cache::cache()?;
        let o = &self.inner.objs[i];
        if range.is_empty() {
            return Ok(());
        }
        o.stamp(c.tick());
        let pages = range.start as usize / PAGE..(range.end as usize).div_ceil(PAGE);
        self.inner.fill(c, i, pages).map(|_| ())
    }

    /// Stamp object `i` as used now, all of its pages referenced.
    pub fn touch(&self, i: usize) {
        if let (Some(o), Ok(c)) = (self.inner.objs.get(i), cache::cache()) {
            o.stamp(c.tick());
            self.inner.mark(i, 0..o.pages);
        }
    }

    /// Stamp bytes `range` of object `i` as used now (their pages
    /// referenced; out-of-range bytes are ignored): for a caller that
    /// reads through [`McacheMap::slice`], so that the reaper keeps the
    /// pages it uses and evicts the others of the object first.
    pub fn touch_range(&self, i: usize, range: Range<u64>) {
        if let (Some(o), Ok(c)) = (self.inner.objs.get(i), cache::cache()) {
            o.stamp(c.tick());
            let pages = range.start as usize / PAGE..(range.end as usize).div_ceil(PAGE);
            self.inner.mark(i, pages);
        }
    }

    /// Evict object `i` now (unless it is in use, or, with user-mode
    /// faults only, kept for [`McacheMap::slice`]); the bytes freed.
    pub fn evict(&self, i: usize) -> u64 {
        match (i < self.len(), cache::cache()) {
            (true, Ok(c)) => self.inner.evict(c, i, true),
            _ => 0,
        }
    }

    /// Bytes of the map resident now.
    pub fn resident_bytes(&self) -> u64 {
        self.inner.resident.load(Ordering::Relaxed)
    }

    /// Bytes of object `i` resident now.
    pub fn object_resident_bytes(&self, i: usize) -> u64 {
        self.inner.objs.get(i).map_or(0, |o| {
            u64::from(o.resident.load(Ordering::Relaxed)) * PAGE as u64
        })
    }

    /// The map's advice.
    pub fn advice(&self) -> Advice {
        self.inner.advice()
    }

    /// Change the map's advice (for the faults and reaper passes to come).
    pub fn set_advice(&self, advice: Advice) {
        self.inner.advice.store(advice as u8, Ordering::Relaxed);
    }
}

impl Drop for McacheMap {
    fn drop(&mut self) {
        if let Ok(c) = cache::cache() {
            crate::lock::write(&c.maps).remove(&self.inner.base);
            self.inner.close(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::{DeviceRef, MemDevice};
    use crate::MediaClass;

    /// The reaper works on clones of a map's `Arc`: a map dropped while a
    /// reaper pass still has its clone releases its zone holds at once.
    #[test]
    fn a_dropped_map_releases_its_holds_while_the_reaper_still_has_it() {
        let zone = 64 << 10;
        let d: DeviceRef = Arc::new(MemDevice::new(32 * zone, 4096));
        crate::Pool::format_on("holds", &[(Arc::clone(&d), MediaClass::Capacity, zone)], "")
            .unwrap();
        let pool = crate::Pool::open_on(vec![d], false).unwrap();
        let free = |p: &crate::Pool| p.usage()[0].free / p.usage()[0].zone_size;
        let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
        pool.mblock_write(id, &[7u8; 10_000]).unwrap();
        pool.mblock_commit(id).unwrap();
        let map = pool.mcache_map(&[id], Advice::Warm).unwrap();
        assert_eq!(map.slice(0).unwrap(), &[7u8; 10_000][..]);
        let before = free(&pool);
        pool.mblock_delete(id).unwrap();
        assert_eq!(free(&pool), before, "the held zone was released");

        let reaper_clone = Arc::clone(&map.inner);
        drop(map);
        assert_eq!(free(&pool), before + 1, "the zone stayed held");
        // What the reaper does with its clone after the drop is a no-op.
        let c = cache::cache().unwrap();
        assert_eq!(reaper_clone.evict_many(c, &mut [0], true), 0);
        drop(reaper_clone);
        assert_eq!(free(&pool), before + 1);
    }

    /// The check an eviction makes after announcing itself (what decides,
    /// whatever the reaper's pre-filter saw) finds a guard's pin in its
    /// thread's slot, in another thread's slot, and in the shared count
    /// when the thread's slots are all taken; and a released pin no longer
    /// holds the object.
    #[test]
    fn evictions_recheck_the_slot_pins() {
        let zone = 1 << 20;
        let d: DeviceRef = Arc::new(MemDevice::new(16 * zone, 4096));
        crate::Pool::format_on("pins", &[(Arc::clone(&d), MediaClass::Capacity, zone)], "")
            .unwrap();
        let pool = crate::Pool::open_on(vec![d], false).unwrap();
        let len = 64usize << 10;
        let ids: Vec<_> = (0..3u8)
            .map(|k| {
                let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
                pool.mblock_write(id, &vec![k + 1; len]).unwrap();
                pool.mblock_commit(id).unwrap();
                id
            })
            .collect();
        let map = pool.mcache_map(&ids, Advice::Cold).unwrap();
        let c = cache::cache().unwrap();
        let all = len as u64;
        for i in 0..3 {
            map.load(i, 0..all).unwrap();
        }
        let resident = |i: usize| map.object_resident_bytes(i);

        // This thread's slot; the pre-filter given nothing (`busy` empty).
        let g = map.range(0, 0..100).unwrap();
        assert!(g.pin.is_some(), "pinned in the thread's slot");
        assert_eq!(map.inner.evict_many(c, &mut [0], false), 0);
        assert_eq!(map.inner.evict_unreferenced(c, 0, &[]), 0);
        assert_eq!(resident(0), all, "a pinned object lost pages");
        assert_eq!(&g[..], &[1u8; 100][..]);

        // A guard taken in another thread (which has ended since), then
        // dropped here.
        let g1 = std::thread::scope(|s| s.spawn(|| map.range(1, 0..100)).join())
            .unwrap()
            .unwrap();
        assert!(g1.pin.is_some());
        assert_eq!(map.inner.evict_many(c, &mut [1], false), 0);
        assert_eq!(resident(1), all);
        drop(g1);
        assert_eq!(map.inner.evict_many(c, &mut [1], false), all);
        assert_eq!(resident(1), 0);

        // More guards than slots: the last ones pin the shared count.
        let mut gs: Vec<MappedRef<'_>> = Vec::new();
        while gs.last().is_none_or(|g| g.pin.is_some()) {
            gs.push(map.range(2, 0..10).unwrap());
        }
        assert_eq!(gs.len(), pins::SLOTS, "one slot is g's");
        let shared = gs.pop().unwrap();
        drop(gs);
        assert_eq!(map.inner.evict_many(c, &mut [2], false), 0);
        assert_eq!(map.inner.evict_unreferenced(c, 2, &[]), 0);
        assert_eq!(resident(2), all);
        drop(shared);
        assert_eq!(map.inner.evict_many(c, &mut [2], false), all);

        drop(g);
        assert_eq!(map.inner.evict_many(c, &mut [0], false), all);
        assert_eq!(map.get(0).unwrap()[..], vec![1u8; len][..]);
    }
}
