//! The reaper: one thread per process that advances the access clock,
//! keeps each object's heat (its pages used per 200 ms window, decayed)
//! and, under memory pressure or over the explicit budget, evicts the
//! pages of the objects used least (per page) first, whole objects when
//! none of their pages was used in the current window.

use super::cache::Cache;
use super::map::{MapInner, PAGE};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the reaper looks.
pub(super) const TICK: Duration = Duration::from_millis(20);

/// Memory the process may use and uses now: its cgroup's limit and
/// usage (v2, then v1), or the machine's total and total minus
/// `MemAvailable`.
/// Read with [`memory_pressure`](crate::mcache::memory_pressure): other
/// caches of the process (the object store's) size themselves by it as
/// the reaper does.
#[derive(Debug, Clone, Copy)]
pub struct Pressure {
    /// Bytes the process may use: the cgroup's limit, else `MemTotal`.
    pub limit: u64,
    /// Bytes in use: the cgroup's usage, else `MemTotal - MemAvailable`.
    pub used: u64,
    /// From a cgroup (else from /proc/meminfo).
    pub cgroup: bool,
}

fn read_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The cgroup memory limit and usage of this process, if it has a limit.
fn cgroup() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
        if ctrl.is_empty() {
            for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                let max = std::fs::read_to_string(format!("{root}{path}/memory.max"));
                if let Ok(max) = max {
                    let Ok(limit) = max.trim().parse::<u64>() else {
                        continue; // "max"
                    };
                    let used = read_u64(&format!("{root}{path}/memory.current"))?;
                    return Some((limit, used));
                }
            }
        } else if ctrl.split(',').any(|c| c == "memory") {
            let dir = format!("/sys/fs/cgroup/memory{path}");
            let limit = read_u64(&format!("{dir}/memory.limit_in_bytes"))?;
            // No limit reads as a page-rounded i64::MAX.
            if limit >= 1 << 62 {
                continue;
            }
            let used = read_u64(&format!("{dir}/memory.usage_in_bytes"))?;
            return Some((limit, used));
        }
    }
    None
}

fn meminfo() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|k| k * 1024)
    };
    let total = field("MemTotal:")?;
    let avail = field("MemAvailable:")?;
    Some((total, total.saturating_sub(avail)))
}

/// The memory this process may use and uses now (`None` when neither the
/// cgroup files nor /proc/meminfo can be read).
pub fn pressure() -> Option<Pressure> {
    if let Some((limit, used)) = cgroup() {
        return Some(Pressure {
            limit,
            used,
            cgroup: true,
        });
    }
    meminfo().map(|(limit, used)| Pressure {
        limit,
        used,
        cgroup: false,
    })
}

/// Bytes to free now: above 90 % of a cgroup's limit, down to 87 % of it
/// (the kernel cannot free the cache's anonymous pages without swap: at
/// the limit it stalls, then kills; the 10 % left covers the process'
/// other memory and bursts of fills: at 95 % the experiment's side was
/// OOM-killed once in four runs); above 7/8 of the machine,
/// down to 7/8; over the explicit budget, down to 15/16 of it.
pub(super) fn to_free(p: Option<Pressure>, resident: u64, budget: u64) -> u64 {
    let mut need = 0;
    if let Some(p) = p {
        let (high, low) = if p.cgroup {
            (p.limit / 100 * 90, p.limit / 100 * 87)
        } else {
            (p.limit - p.limit / 8, p.limit - p.limit / 8)
        };
        if p.used > high {
            need = p.used - low;
        }
    }
    if budget > 0 && resident > budget {
        need = need.max(resident - (budget - budget / 16));
    }
    need.min(resident)
}

/// Reaper ticks per harvest of the referenced bits (200 ms).
pub(super) const HARVEST_TICKS: u64 = 10;

/// What one referenced page of a harvest window adds to its object's
/// heat (the heat loses an eighth of itself per window: in a steady
/// state it is 128 times the pages referenced per window, and a window
/// counts for about a fifth after 12 windows, 2.4 s).
const HEAT_UNIT: u32 = 16;

/// The reaper thread.
pub(super) fn run(c: &'static Cache) {
    short_slice();
    let mut ticks = 0u64;
    loop {
        std::thread::sleep(TICK);
        c.clock.fetch_add(1, Ordering::Relaxed);
        if !c.reaper_on.load(Ordering::Relaxed) {
            continue;
        }
        ticks += 1;
        let resident = c.stats.resident.load(Ordering::Relaxed);
        if resident == 0 {
            continue;
        }
        let need = to_free(pressure(), resident, c.budget.load(Ordering::Relaxed));
        if need > 0 {
            let t = Instant::now();
            reap(c, need);
            c.stats.reaper_runs.fetch_add(1, Ordering::Relaxed);
            c.stats
                .reaper_ns
                .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        // After the eviction: a page referenced within the window that
        // ends here was spared by it.
        if ticks.is_multiple_of(HARVEST_TICKS) {
            harvest(c);
        }
    }
}

/// End a harvest window: every object's referenced pages (set by the
/// guards, faults and touches since the last harvest, misses included)
/// are counted into its heat and cleared; the heat decays by an eighth.
/// So the heat follows how many of an object's pages are used per
/// window: its rate of use, measured over the whole object (hundreds of
/// pages) instead of page by page, where a page read once a few seconds
/// apart looks no different from one read once.
pub(super) fn harvest(c: &Cache) {
    let maps: Vec<Arc<MapInner>> = crate::lock::read(&c.maps).values().cloned().collect();
    harvest_maps(&maps);
}

/// [`harvest`] over `maps`.
fn harvest_maps(maps: &[Arc<MapInner>]) {
    for map in maps {
        for o in &map.objs {
            let mut refs = 0u32;
            for w in o.refd().iter() {
                if w.load(Ordering::Relaxed) != 0 {
                    refs += w.swap(0, Ordering::Relaxed).count_ones();
                }
            }
            let h = o.heat.load(Ordering::Relaxed);
            let next = h - h / 8 + refs.saturating_mul(HEAT_UNIT);
            if next != h {
                o.heat.store(next, Ordering::Relaxed);
            }
        }
    }
}

/// Free `need` bytes, the objects used least first: by heat per page
/// (the heat with the current window's referenced pages, over the
/// object's pages), scaled by advice (a hot object counts four times
/// its heat, a warm one twice); among equals (heat 0: loaded, never
/// read), the longest idle first (time since the last access over the
/// advice's TTL scale). In that order, first each object's pages not
/// referenced in the current window (the whole object when none was),
/// then, if that was not enough, whole objects. Objects in use (a live
/// guard) or kept are skipped.
///
/// Why by object: under a skewed load the pages of an object are used at
/// about the object's rate, which the reaper sees from hundreds of pages
/// per window, while one page is read too rarely for its own recency to
/// tell a warm page from a cold one (page LRU keeps every page read once
/// for a whole turn; see BENCHMARKS.md, mcache, session 10).
pub(super) fn reap(c: &Cache, need: u64) -> u64 {
    let maps: Vec<Arc<MapInner>> = crate::lock::read(&c.maps).values().cloned().collect();
    reap_maps(c, &maps, need)
}

/// [`reap`] over `maps`.
fn reap_maps(c: &Cache, maps: &[Arc<MapInner>], need: u64) -> u64 {
    let now = c.tick();
    // Objects pinned in threads' slots now (a pre-filter; eviction checks
    // the pins again after announcing itself).
    let busy = super::pins::snapshot();
    // (heat per page, -(idle / scale), map, object)
    let mut cand: Vec<(u64, std::cmp::Reverse<u64>, usize, usize)> = Vec::new();
    for (m, map) in maps.iter().enumerate() {
        let scale = map.advice().ttl_scale();
        for (i, o) in map.objs.iter().enumerate() {
            if o.resident.load(Ordering::Relaxed) == 0
                || o.pins.load(Ordering::Relaxed) > 0
                || busy.binary_search(&o.key()).is_ok()
                || o.kept.load(Ordering::Relaxed)
            {
                continue;
            }
            let refs: u32 = o
                .refd()
                .iter()
                .map(|w| w.load(Ordering::Relaxed).count_ones())
                .sum();
            let heat =
                u64::from(o.heat.load(Ordering::Relaxed)) + u64::from(refs) * u64::from(HEAT_UNIT);
            let per_page = heat * scale * 1024 / o.pages.max(1) as u64;
            let idle = now.saturating_sub(o.last.load(Ordering::Relaxed));
            cand.push((per_page, std::cmp::Reverse((idle + 1) * 1024 / scale), m, i));
        }
    }
    cand.sort_unstable();
    let mut freed = 0;
    // The unreferenced pages, coldest objects first; objects with none
    // referenced go whole, batched per map (one `madvise` per run of
    // neighbours).
    let mut whole: Vec<Vec<usize>> = vec![Vec::new(); maps.len()];
    let mut planned = 0;
    for &(_, _, m, i) in &cand {
        if planned >= need {
            break;
        }
        let o = &maps[m].objs[i];
        if o.refd().iter().all(|w| w.load(Ordering::Relaxed) == 0) {
            planned += u64::from(o.resident.load(Ordering::Relaxed)) * PAGE as u64;
            whole[m].push(i);
        } else {
            let f = maps[m].evict_unreferenced(c, i, &busy);
            planned += f;
            freed += f;
        }
    }
    for (map, mut idx) in maps.iter().zip(whole) {
        if !idx.is_empty() {
            freed += map.evict_many(c, &mut idx, false);
        }
    }
    // Then whole objects, in the same order.
    for &(_, _, m, i) in &cand {
        if freed >= need {
            break;
        }
        freed += maps[m].evict_many(c, &mut [i], false);
    }
    freed
}

/// Ask the scheduler for a short time slice (100 us) for this thread,
/// at its usual weight: a long reaper pass then runs in short turns, so
/// that a reader woken meanwhile (its read completed) runs after at most
/// one of them instead of waiting out a default slice (0.75-3 ms): the
/// reads' p99.99 (BENCHMARKS.md, mcache, session 10). Linux 6.12 and
/// later (EEVDF custom slices); elsewhere it changes nothing.
fn short_slice() {
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    // SAFETY: getpriority(2) reads this thread's nice value.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        nice,
        priority: 0,
        runtime: 100_000,
        deadline: 0,
        period: 0,
    };
    // SAFETY: sched_setattr(2) of the calling thread (pid 0) with a
    // complete `struct sched_attr` of the size it says; the kernel only
    // reads it.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if r != 0 {
        tracing::debug!(
            "mcache: a short slice for the reaper: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::{DeviceRef, MemDevice};
    use crate::mcache::Advice;
    use crate::MediaClass;

    /// A pool on a memory device holding `n` committed mblocks of 64
    /// pages, and a map of them (advice cold).
    fn mapped(n: u8) -> (crate::Pool, crate::McacheMap) {
        let zone = 1 << 20;
        let d: DeviceRef = Arc::new(MemDevice::new(16 * zone, 4096));
        crate::Pool::format_on("heat", &[(Arc::clone(&d), MediaClass::Capacity, zone)], "")
            .unwrap();
        let pool = crate::Pool::open_on(vec![d], false).unwrap();
        let ids: Vec<_> = (0..n)
            .map(|k| {
                let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
                pool.mblock_write(id, &vec![k + 1; 64 * PAGE]).unwrap();
                pool.mblock_commit(id).unwrap();
                id
            })
            .collect();
        let map = pool.mcache_map(&ids, Advice::Cold).unwrap();
        (pool, map)
    }

    /// Read pages `pages` of object `i` through guards.
    fn read(map: &crate::McacheMap, i: usize, pages: std::ops::Range<u64>) {
        for p in pages {
            let at = p * PAGE as u64;
            assert_eq!(map.range(i, at..at + 10).unwrap()[0], i as u8 + 1);
        }
    }

    #[test]
    fn a_harvest_counts_the_referenced_pages_into_the_heat_and_decays_it() {
        set_reaper_for_test();
        let (_pool, map) = mapped(1);
        let maps = [Arc::clone(&map.inner)];
        let heat = || map.inner.objs[0].heat.load(Ordering::Relaxed);
        read(&map, 0, 0..10);
        read(&map, 0, 0..10); // the same pages again: counted once
        harvest_maps(&maps);
        assert_eq!(heat(), 10 * HEAT_UNIT);
        assert!(map.inner.objs[0]
            .refd()
            .iter()
            .all(|w| w.load(Ordering::Relaxed) == 0));
        harvest_maps(&maps);
        assert_eq!(heat(), 10 * HEAT_UNIT - 10 * HEAT_UNIT / 8);
        read(&map, 0, 20..24);
        harvest_maps(&maps);
        let h = 10 * HEAT_UNIT - 10 * HEAT_UNIT / 8;
        assert_eq!(heat(), h - h / 8 + 4 * HEAT_UNIT);
    }

    /// The reaper evicts by heat, not by recency: an object read steadily
    /// keeps its pages over one loaded whole and read once since (the
    /// most recent access); when the steady one stops being read and the
    /// other is read steadily, the order turns.
    #[test]
    fn the_object_used_most_keeps_its_pages_whatever_was_used_last() {
        // The reaper thread harvests and evicts nothing meanwhile (it
        // would also see the other tests' maps: these calls see this one).
        set_reaper_for_test();
        let (_pool, map) = mapped(2);
        let c = map.inner.cache;
        let maps = [Arc::clone(&map.inner)];
        let all = 64 * PAGE as u64;
        map.load(0, 0..all).unwrap();
        for _ in 0..6 {
            read(&map, 0, 0..16);
            harvest_maps(&maps);
        }
        map.load(1, 0..all).unwrap();
        read(&map, 1, 3..4);
        assert!(
            map.inner.objs[1].last.load(Ordering::Relaxed)
                >= map.inner.objs[0].last.load(Ordering::Relaxed)
        );
        // One page's worth: object 1's unreferenced pages go, object 0
        // keeps all of its own (not one of them referenced now).
        assert_eq!(reap_maps(c, &maps, PAGE as u64), 63 * PAGE as u64);
        assert_eq!(map.object_resident_bytes(0), all);
        assert_eq!(map.object_resident_bytes(1), PAGE as u64);

        // Now object 1 is the one read, object 0 not at all.
        map.load(1, 0..all).unwrap();
        for _ in 0..24 {
            read(&map, 1, 0..16);
            harvest_maps(&maps);
        }
        assert_eq!(reap_maps(c, &maps, PAGE as u64), all);
        assert_eq!(map.object_resident_bytes(0), 0);
        assert_eq!(map.object_resident_bytes(1), all);
        // Nothing referenced in the window and more needed: whole objects.
        assert_eq!(reap_maps(c, &maps, u64::MAX), all);
        assert_eq!(map.resident_bytes(), 0);
    }

    /// The reaper thread off for the unit tests that drive it by hand
    /// (no unit test needs it on), and a pass it began before ended.
    fn set_reaper_for_test() {
        crate::mcache::set_reaper(false).unwrap();
        std::thread::sleep(TICK * 2);
    }

    #[test]
    fn budget_and_pressure() {
        assert_eq!(to_free(None, 100, 0), 0);
        assert_eq!(to_free(None, 100, 200), 0);
        assert_eq!(to_free(None, 1600, 1600), 0);
        assert_eq!(to_free(None, 1700, 1600), 200);
        let p = Pressure {
            limit: 3200,
            used: 3100,
            cgroup: true,
        };
        // Over 2880 (90 %): down to 2784 (87 %).
        assert_eq!(to_free(Some(p), 600, 0), 316);
        assert_eq!(to_free(Some(p), 100, 0), 100);
        let q = Pressure { cgroup: false, ..p };
        // Over 2800 (7/8): down to it.
        assert_eq!(to_free(Some(q), 500, 0), 300);
        let low = Pressure { used: 2870, ..p };
        assert_eq!(to_free(Some(low), 500, 0), 0);
        let q = Pressure { used: 2750, ..q };
        assert_eq!(to_free(Some(q), 500, 0), 0);
    }
}
