//! The reaper keeps the resident bytes under an explicit budget by
//! evicting whole objects, the coldest first (with TTLs scaled by
//! advice), never one in use; its work shows in the statistics; it can
//! be turned off.

use super::common::{commit, mem_pool, pattern, serial};
use mpool::{mcache, Advice};
use std::time::{Duration, Instant};

const LEN: usize = 256 << 10;

/// Wait (at most 20 s) for `cond`.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn reaper_evicts_under_a_budget() {
    let _s = serial();
    let pool = mem_pool(64, 1 << 20);
    let ids: Vec<_> = (0..16)
        .map(|i| commit(&pool, &pattern(50 + i, LEN)))
        .collect();
    let map = pool.mcache_map(&ids, Advice::Warm).unwrap();
    let before = mcache::stats();
    // Off: nothing is evicted, whatever the budget.
    mcache::set_reaper(false).unwrap();
    mcache::set_budget(Some(1 << 20)).unwrap();
    let pinned = map.get(0).unwrap();
    for i in 0..16 {
        map.load(i, 0..LEN as u64).unwrap();
    }
    assert_eq!(map.resident_bytes(), 16 * LEN as u64);
    std::thread::sleep(Duration::from_millis(100)); // several reaper ticks
    assert_eq!(mcache::stats().evictions, before.evictions);
    assert_eq!(map.resident_bytes(), 16 * LEN as u64);

    // On: down to the budget, the pinned object kept.
    mcache::set_reaper(true).unwrap();
    assert!(eventually(|| mcache::stats().resident_bytes <= 1 << 20));
    assert_eq!(
        map.object_resident_bytes(0),
        LEN as u64,
        "an object in use was evicted"
    );
    let after = mcache::stats();
    assert!(after.evictions >= before.evictions + 12);
    assert!(after.evicted_bytes >= before.evicted_bytes + 12 * LEN as u64);
    assert!(after.reaper_runs > before.reaper_runs);
    assert!(after.reaper_ns > before.reaper_ns);
    // Evicted objects read back whole.
    assert_eq!(&*pinned, &pattern(50, LEN)[..]);
    drop(pinned);
    mcache::set_budget(None).unwrap();
    for i in 0..16 {
        assert_eq!(map.slice(i).unwrap(), &pattern(50 + i as u64, LEN)[..]);
    }
}

#[test]
fn coldest_objects_go_first_and_advice_scales_ttl() {
    let _s = serial();
    mcache::set_reaper(false).unwrap();
    let pool = mem_pool(64, 1 << 20);
    let ids: Vec<_> = (0..4)
        .map(|i| commit(&pool, &pattern(70 + i, LEN)))
        .collect();
    let cold = pool.mcache_map(&ids[..2], Advice::Cold).unwrap();
    let hot = pool.mcache_map(&ids[2..], Advice::Hot).unwrap();
    // Access order: cold 0, hot 0, then (later) cold 1 and hot 1.
    cold.load(0, 0..LEN as u64).unwrap();
    hot.load(0, 0..LEN as u64).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    cold.load(1, 0..LEN as u64).unwrap();
    hot.load(1, 0..LEN as u64).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // One object's worth: the least recently used cold one.
    assert_eq!(mcache::reap(LEN as u64).unwrap(), LEN as u64);
    assert_eq!(cold.object_resident_bytes(0), 0);
    assert_eq!(hot.object_resident_bytes(0), LEN as u64);
    // The next: cold 1 (idle ~100 ms, cold) before hot 0 (idle ~400 ms,
    // but hot objects count a quarter of their idle time).
    assert_eq!(mcache::reap(LEN as u64).unwrap(), LEN as u64);
    assert_eq!(cold.object_resident_bytes(1), 0);
    assert_eq!(hot.object_resident_bytes(0), LEN as u64);
    assert_eq!(hot.resident_bytes(), 2 * LEN as u64);
    mcache::set_reaper(true).unwrap();
}
