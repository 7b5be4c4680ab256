//! The live figures a pool's holder publishes (what `mpool status` shows)
//! count the holder's mcache maps of that pool: maps, objects, resident
//! bytes; none once the maps are gone.

use super::common::{commit, mem_pool, pattern, serial};
use mpool::mcache::McachePoolFigures;
use mpool::Advice;

#[test]
fn live_figures_count_the_maps_of_the_pool() {
    let _s = serial();
    let pool = mem_pool(64, 1 << 20);
    let other = mem_pool(64, 1 << 20);
    let ids: Vec<_> = (0..5)
        .map(|i| commit(&pool, &pattern(90 + i, 20_000)))
        .collect();
    let o = commit(&other, &pattern(99, 20_000));
    assert_eq!(pool.live_figures().mcache, None);
    let a = pool.mcache_map(&ids[..3], Advice::Warm).unwrap();
    let b = pool.mcache_map(&ids[2..], Advice::Cold).unwrap();
    let c = other.mcache_map(&[o], Advice::Cold).unwrap();
    a.load(0, 0..20_000).unwrap();
    assert_eq!(
        pool.live_figures().mcache,
        Some(McachePoolFigures {
            maps: 2,
            objects: 6,
            resident_bytes: 5 * 4096,
        })
    );
    // The figures survive their JSON form (the run directory's file).
    let f = pool.live_figures();
    let back: mpool::LiveFigures =
        serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
    assert_eq!(back, f);
    assert_eq!(other.live_figures().mcache.map(|m| m.objects), Some(1));
    drop((a, b, c));
    assert_eq!(pool.live_figures().mcache, None);
}
