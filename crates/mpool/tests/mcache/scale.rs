//! 100,000 mblocks mapped at once over 1,000 maps work at the default
//! `vm.max_map_count` (65530), and a map takes one VMA whatever its object
//! count: mapping and dropping a map of 100 objects adds and removes
//! exactly one mapping.

use super::common::{mem_pool, serial, vmas};
use mpool::{mcache, Advice, MblockId, MediaClass, Pool};

const OBJECTS: usize = 100_000;
const PER_MAP: usize = 100;

/// Object `i`'s bytes: 700 bytes naming it.
fn content(i: usize) -> Vec<u8> {
    let mut v = format!("object {i:06} ").into_bytes();
    v.resize(700, (i % 251) as u8);
    v
}

fn commit_all(pool: &Pool) -> Vec<MblockId> {
    (0..OBJECTS)
        .map(|i| {
            let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
            pool.mblock_write(id, &content(i)).unwrap();
            pool.mblock_commit(id).unwrap();
            id
        })
        .collect()
}

#[test]
fn hundred_thousand_mblocks_over_a_thousand_maps() {
    let _s = serial();
    if let Ok(n) = std::fs::read_to_string("/proc/sys/vm/max_map_count") {
        println!("vm.max_map_count = {}", n.trim());
    }
    // 100,000 mblocks and metadata logs that hold their records (a
    // pool's logs take 1/256 of its capacity): 128 KiB zones, on a memory
    // device of which only the pages written are ever allocated.
    let pool = mem_pool(OBJECTS as u64 + 4096, 128 << 10);
    let ids = commit_all(&pool);
    // The cache's threads (their stacks are mappings too) start first.
    mcache::fault_mode().unwrap();

    let before = vmas();
    let maps: Vec<_> = ids
        .chunks(PER_MAP)
        .map(|c| pool.mcache_map(c, Advice::Cold).unwrap())
        .collect();
    let during = vmas();
    assert_eq!(maps.len(), OBJECTS / PER_MAP);
    assert_eq!(mcache::stats().objects, OBJECTS as u64);
    // One VMA per map; adjacent ranges of equal flags may even merge.
    assert!(
        during - before <= maps.len(),
        "{} VMAs for {} maps",
        during - before,
        maps.len()
    );
    // Every object reads back through its map: one per map faulted in
    // fully, the first bytes of every object of a sample of maps.
    for (m, map) in maps.iter().enumerate() {
        let i = m % PER_MAP;
        assert_eq!(map.slice(i).unwrap(), &content(m * PER_MAP + i)[..]);
    }
    for (m, map) in maps.iter().enumerate().step_by(97) {
        for i in 0..PER_MAP {
            let want = format!("object {:06} ", m * PER_MAP + i);
            assert_eq!(&map.slice(i).unwrap()[..14], want.as_bytes());
        }
    }

    // Mapping and dropping one more map of 100 objects: one VMA in, one out.
    for round in 0..3 {
        let v0 = vmas();
        let extra = pool
            .mcache_map(&ids[round * PER_MAP..(round + 1) * PER_MAP], Advice::Hot)
            .unwrap();
        let v1 = vmas();
        assert!(v1 <= v0 + 1, "a map of 100 objects took {} VMAs", v1 - v0);
        assert_eq!(extra.get(7).unwrap()[..], content(round * PER_MAP + 7)[..]);
        drop(extra);
        assert_eq!(vmas(), v0, "dropping the map left mappings");
    }
    drop(maps);
    let after = vmas();
    println!("VMAs: {before} before, {during} with 1,000 maps of 100 objects, {after} after");
    // The maps' ranges are gone (the allocator may have kept a few
    // mappings of its own for the 100,000 objects' state).
    assert!(
        after <= before + 8,
        "{after} VMAs after dropping every map ({before} before)"
    );
    assert_eq!(mcache::stats().objects, 0);
    assert_eq!(mcache::stats().resident_bytes, 0);
}
