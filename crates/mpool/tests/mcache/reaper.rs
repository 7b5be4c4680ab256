//! The reaper keeps the resident bytes under an explicit budget, the
//! objects used least first (by heat per page, then idle time, both
//! scaled by advice; the heat is harvested by the reaper thread, off in
//! most of these tests, so they order by idle time): whole objects when
//! none of their pages was used since the last harvest, else the pages
//! not used; never an object in use; its work shows in the statistics;
//! it can be turned off. (The ordering by heat is tested in the lib's
//! `mcache::reaper::tests`, which drive the harvests by hand.)

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

const PAGE: u64 = 4096;

/// Map `a` (the object under test) after `b` (a colder one) and clear
/// `a`'s referenced bits: both loaded, then one reaper step evicts `b`
/// whole after the first pass cleared the bits of both.
fn loaded_with_bits_cleared(map: &mpool::McacheMap, a: usize, b: usize) {
    map.load(b, 0..LEN as u64).unwrap();
    map.load(a, 0..LEN as u64).unwrap();
    assert_eq!(mcache::reap(LEN as u64).unwrap(), LEN as u64);
    assert_eq!(
        map.object_resident_bytes(b),
        0,
        "the colder object goes first"
    );
    assert_eq!(map.object_resident_bytes(a), LEN as u64);
}

#[test]
fn touched_pages_survive_while_untouched_pages_of_the_object_go() {
    let _s = serial();
    mcache::set_reaper(false).unwrap();
    let pool = mem_pool(64, 1 << 20);
    let ids: Vec<_> = (0..2)
        .map(|i| commit(&pool, &pattern(90 + i, LEN)))
        .collect();
    let map = pool.mcache_map(&ids, Advice::Cold).unwrap();
    loaded_with_bits_cleared(&map, 0, 1);
    let before = mcache::stats();
    // Pages 0..8 and 40 used again (through guards), the other 55 not.
    let used: Vec<u64> = (0..8).chain([40]).collect();
    for &p in &used {
        let g = map.range(0, p * PAGE + 10..p * PAGE + 110).unwrap();
        assert_eq!(&*g, &pattern(90, LEN)[(p * PAGE) as usize + 10..][..100]);
    }
    let freed = mcache::reap(PAGE).unwrap();
    assert_eq!(freed, LEN as u64 - used.len() as u64 * PAGE);
    assert_eq!(map.object_resident_bytes(0), used.len() as u64 * PAGE);
    let after = mcache::stats();
    assert_eq!(after.page_evictions - before.page_evictions, 55);
    assert_eq!(after.evictions, before.evictions, "no object went whole");
    // The used pages are still there without a fill; the others come back.
    for &p in &used {
        drop(map.range(0, p * PAGE..p * PAGE + 1).unwrap());
    }
    assert_eq!(mcache::stats().fills, after.fills);
    assert_eq!(map.get(0).unwrap().as_ref(), &pattern(90, LEN)[..]);
    assert!(mcache::stats().fills > after.fills);
    // All of it used since the last harvest: no unreferenced page to
    // take, so the pass takes the object whole.
    assert_eq!(mcache::reap(PAGE).unwrap(), LEN as u64);
    assert_eq!(map.object_resident_bytes(0), 0);
    assert_eq!(mcache::stats().evictions, after.evictions + 1);
    mcache::set_reaper(true).unwrap();
}

#[test]
fn the_reaper_keeps_the_used_pages_under_a_budget() {
    let _s = serial();
    mcache::set_reaper(false).unwrap();
    let pool = mem_pool(64, 1 << 20);
    let ids: Vec<_> = (0..2)
        .map(|i| commit(&pool, &pattern(110 + i, LEN)))
        .collect();
    let map = pool.mcache_map(&ids, Advice::Hot).unwrap();
    loaded_with_bits_cleared(&map, 0, 1);
    let before = mcache::stats();
    // Half the object's size as the budget, pages 0..8 read all along.
    let budget = LEN as u64 / 2;
    mcache::set_budget(Some(budget)).unwrap();
    let touch = || {
        for p in 0..8 {
            drop(map.range(0, p * PAGE..p * PAGE + 100).unwrap());
        }
    };
    touch();
    mcache::set_reaper(true).unwrap();
    assert!(eventually(|| {
        touch();
        mcache::stats().resident_bytes <= budget
    }));
    mcache::set_budget(None).unwrap();
    touch();
    // The used pages stayed (or, at worst, came back); the rest went.
    assert_eq!(map.object_resident_bytes(0), 8 * PAGE);
    let after = mcache::stats();
    assert!(after.page_evictions - before.page_evictions >= 56);
    assert_eq!(after.fills, before.fills, "a used page was evicted");
    assert!(after.reaper_runs > before.reaper_runs);
}

#[test]
fn pinned_objects_keep_every_page() {
    let _s = serial();
    mcache::set_reaper(false).unwrap();
    let pool = mem_pool(64, 1 << 20);
    let ids: Vec<_> = (0..3)
        .map(|i| commit(&pool, &pattern(130 + i, LEN)))
        .collect();
    let map = pool.mcache_map(&ids, Advice::Cold).unwrap();
    loaded_with_bits_cleared(&map, 0, 1);
    map.load(2, 0..LEN as u64).unwrap();
    // A guard over one page of object 0: none of its pages is referenced
    // since the last step, yet none may go while the guard lives.
    let g = map.range(0, 5 * PAGE..5 * PAGE + 64).unwrap();
    let freed = mcache::reap(u64::MAX).unwrap();
    assert_eq!(freed, LEN as u64, "only the unpinned object 2 goes");
    assert_eq!(map.object_resident_bytes(0), LEN as u64);
    assert_eq!(map.object_resident_bytes(2), 0);
    assert_eq!(&*g, &pattern(130, LEN)[5 * PAGE as usize..][..64]);
    drop(g);
    // Unpinned: its unreferenced pages, then (page 5 was referenced) the
    // object whole, and it is gone.
    mcache::reap(u64::MAX).unwrap();
    assert_eq!(map.object_resident_bytes(0), 0);
    mcache::set_reaper(true).unwrap();
}

/// Guards pin their objects in their own thread's slot (two threads
/// reading one object write no line in common); the reaper sees those
/// pins whichever thread holds the guard, where it was taken, and when a
/// thread holds more guards than it has slots.
#[test]
fn pins_of_other_threads_and_beyond_the_slots_keep_their_objects() {
    let _s = serial();
    mcache::set_reaper(false).unwrap();
    let pool = mem_pool(64, 1 << 20);
    let n = 12;
    let ids: Vec<_> = (0..n)
        .map(|i| commit(&pool, &pattern(150 + i, LEN)))
        .collect();
    let map = pool.mcache_map(&ids, Advice::Cold).unwrap();
    for i in 0..n as usize {
        map.load(i, 0..LEN as u64).unwrap();
    }
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        // Owned here, so that a failed assertion below releases the holder.
        let tx = tx;
        // Object 0: a guard that another thread holds while the reaper runs.
        let map = &map;
        let holder = s.spawn(move || {
            let g = map.range(0, 7 * PAGE..7 * PAGE + 32).unwrap();
            ready_tx.send(()).unwrap();
            rx.recv().unwrap();
            assert_eq!(&*g, &pattern(150, LEN)[7 * PAGE as usize..][..32]);
        });
        ready_rx.recv().unwrap();
        // Objects 1..11: one guard each in this thread, more than its slots.
        let guards: Vec<_> = (1..n as usize - 1)
            .map(|i| map.range(i, 0..16).unwrap())
            .collect();
        // Object 11: a guard taken in another thread, held here.
        let sent = s
            .spawn(|| map.range(n as usize - 1, 0..16).unwrap())
            .join()
            .unwrap();
        // Twice: nothing goes whatever the bits.
        assert_eq!(mcache::reap(u64::MAX).unwrap(), 0);
        assert_eq!(mcache::reap(u64::MAX).unwrap(), 0);
        for i in 0..n as usize {
            assert_eq!(map.object_resident_bytes(i), LEN as u64, "object {i} went");
        }
        tx.send(()).unwrap();
        holder.join().unwrap();
        drop(guards);
        drop(sent);
    });
    // All released: everything goes.
    mcache::reap(u64::MAX).unwrap();
    mcache::reap(u64::MAX).unwrap();
    assert_eq!(map.resident_bytes(), 0);
    mcache::set_reaper(true).unwrap();
}
