//! The reaper: one thread per process that advances the access clock and,
//! under memory pressure or over the explicit budget, evicts the pages not
//! referenced since it last looked (second chance), the coldest objects
//! first, and those whole when none of their pages was referenced.

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

/// The reaper thread.
pub(super) fn run(c: &'static Cache) {
    loop {
        std::thread::sleep(TICK);
        c.clock.fetch_add(1, Ordering::Relaxed);
        if !c.reaper_on.load(Ordering::Relaxed) {
            continue;
        }
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
    }
}

/// Free `need` bytes. First whole objects none of whose pages was
/// referenced since the hand last passed (or ever: loaded, not used),
/// coldest first: the score is the time since the object's last access
/// divided by the advice's TTL scale (a hot object stays four times as
/// long as a cold one). Then a CLOCK hand that keeps its place between
/// calls goes over the objects in address order and gives each page a
/// second chance: an object's resident pages not referenced since the
/// hand's last visit go, and its referenced bits are cleared (a hot
/// object's only every fourth visit, a warm one's every second), for at
/// most two turns per TTL scale. Objects in use (a live guard) or kept
/// are skipped.
pub(super) fn reap(c: &Cache, need: u64) -> u64 {
    let now = c.tick();
    let maps: Vec<Arc<MapInner>> = crate::lock::read(&c.maps).values().cloned().collect();
    // Objects pinned in threads' slots now (a pre-filter; eviction checks
    // the pins again after announcing itself).
    let busy = super::pins::snapshot();
    let mut cand: Vec<(u64, usize, usize)> = Vec::new();
    let mut objects = 0usize;
    for (m, map) in maps.iter().enumerate() {
        let scale = map.advice().ttl_scale();
        objects += map.objs.len();
        for (i, o) in map.objs.iter().enumerate() {
            if o.resident.load(Ordering::Relaxed) == 0
                || o.pins.load(Ordering::Relaxed) > 0
                || busy.binary_search(&o.key()).is_ok()
                || o.kept.load(Ordering::Relaxed)
                || o.refd().iter().any(|w| w.load(Ordering::Relaxed) != 0)
            {
                continue;
            }
            let idle = now.saturating_sub(o.last.load(Ordering::Relaxed));
            cand.push(((idle + 1) * 1024 / scale, m, i));
        }
    }
    cand.sort_unstable_by_key(|c| std::cmp::Reverse(c.0));
    let mut chosen: Vec<Vec<usize>> = vec![Vec::new(); maps.len()];
    let mut planned = 0;
    for (_, m, i) in cand {
        if planned >= need {
            break;
        }
        planned += u64::from(maps[m].objs[i].resident.load(Ordering::Relaxed)) * PAGE as u64;
        chosen[m].push(i);
    }
    let mut freed = 0;
    for (map, mut idx) in maps.iter().zip(chosen) {
        if !idx.is_empty() {
            freed += map.evict_many(c, &mut idx, false);
        }
    }
    if freed >= need || maps.is_empty() {
        return freed;
    }
    // The hand, from where it stopped (the first map at or after it).
    let mut hand = crate::lock::lock(&c.hand);
    let mut m = maps.partition_point(|x| x.base < hand.0);
    let mut i = if maps.get(m).is_some_and(|x| x.base == hand.0) {
        hand.1
    } else {
        0
    };
    let mut steps = 0;
    while freed < need && steps < 8 * objects {
        if m >= maps.len() {
            m = 0;
            i = 0;
        }
        let map = &maps[m];
        if i >= map.objs.len() {
            m += 1;
            i = 0;
            continue;
        }
        steps += 1;
        let o = &map.objs[i];
        let scale = map.advice().ttl_scale() as u32;
        if o.resident.load(Ordering::Relaxed) > 0
            && (scale <= 1
                || o.visits
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(scale))
        {
            freed += map.second_chance(c, i, &busy);
        }
        i += 1;
    }
    *hand = (maps.get(m).map_or(0, |x| x.base), i);
    freed
}

#[cfg(test)]
mod tests {
    use super::*;

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
