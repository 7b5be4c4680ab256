//! An mblock deleted while mapped stays readable through the maps that
//! hold it, and its zone is not reused until the last of them drops; a
//! crash in between leaks nothing after reopen.

use super::common::{commit, fault_pool, pattern, serial};
use mpool::dev::{CrashMode, DeviceRef};
use mpool::{Advice, MediaClass, Pool};
use std::sync::Arc;

const ZONE: u64 = 64 << 10;
const LEN: usize = 50_000;

fn free_zones(pool: &Pool) -> u64 {
    pool.usage()[0].free / pool.usage()[0].zone_size
}

#[test]
fn deleted_while_mapped_stays_readable_and_its_zone_held() {
    let _s = serial();
    let (_dev, pool) = fault_pool(96, ZONE);
    let a = commit(&pool, &pattern(10, LEN));
    let b = commit(&pool, &pattern(11, LEN));
    let zone_a = pool.object_props(a).unwrap().zone;
    let zone_b = pool.object_props(b).unwrap().zone;
    let m1 = pool.mcache_map(&[a, b], Advice::Cold).unwrap();
    let m2 = pool.mcache_map(&[a], Advice::Hot).unwrap();
    // Part of a resident before the delete, none of b.
    assert_eq!(m1.slice(0).unwrap()[..4096], pattern(10, LEN)[..4096]);
    let free0 = free_zones(&pool);

    pool.mblock_delete(a).unwrap(); // durable
    pool.mblock_delete_deferred(b).unwrap();
    pool.sync().unwrap(); // b's delete durable: its zone would be free now
    assert!(pool.object_props(a).is_err() && pool.object_props(b).is_err());
    assert_eq!(free_zones(&pool), free0, "a held zone was released");

    // Fill every free zone: none of them is a or b's.
    let mut fill = Vec::new();
    while let Ok(id) = pool.mblock_alloc(MediaClass::Capacity) {
        let z = pool.object_props(id).unwrap().zone;
        assert!(z != zone_a && z != zone_b, "held zone {z} reused");
        fill.push(id);
    }
    for id in &fill {
        pool.mblock_abort(*id).unwrap();
    }
    // Still readable, pages faulted in after the delete included.
    assert_eq!(m1.slice(0).unwrap(), &pattern(10, LEN)[..]);
    assert_eq!(&*m1.get(1).unwrap(), &pattern(11, LEN)[..]);
    assert_eq!(&*m2.get(0).unwrap(), &pattern(10, LEN)[..]);
    // After an eviction too (read again from the held zone).
    assert!(m1.evict(1) > 0);
    assert_eq!(m1.object_resident_bytes(1), 0);
    assert_eq!(m1.slice(1).unwrap(), &pattern(11, LEN)[..]);

    drop(m1); // b's last holder: its zone is free
    assert_eq!(free_zones(&pool), free0 + 1);
    drop(m2); // a's last holder
    assert_eq!(free_zones(&pool), free0 + 2);
    // The zones are reusable.
    let c = commit(&pool, &pattern(12, 100));
    let d = commit(&pool, &pattern(13, 100));
    let mut zs = [
        pool.object_props(c).unwrap().zone,
        pool.object_props(d).unwrap().zone,
    ];
    zs.sort();
    let mut want = [zone_a, zone_b];
    want.sort();
    assert_eq!(zs, want);
}

#[test]
fn a_crash_while_a_deleted_mblock_is_mapped_leaks_nothing() {
    let _s = serial();
    let (dev, pool) = fault_pool(96, ZONE);
    let a = commit(&pool, &pattern(20, LEN));
    let keep = commit(&pool, &pattern(21, LEN));
    let free_before_delete = free_zones(&pool);
    let map = pool.mcache_map(&[a, keep], Advice::WillNeed).unwrap();
    pool.mblock_delete(a).unwrap();
    assert_eq!(free_zones(&pool), free_before_delete);
    assert_eq!(map.slice(0).unwrap(), &pattern(20, LEN)[..]);
    // Power cut with the map alive: the delete is durable, the hold is not.
    dev.crash_now();
    let image = dev.reboot(CrashMode::DropAll);
    drop(map);
    drop(pool);
    let d: DeviceRef = Arc::new(image);
    let pool = Pool::open_on(vec![d], false).unwrap();
    assert!(pool.object_props(a).is_err(), "the delete was durable");
    assert_eq!(free_zones(&pool), free_before_delete + 1, "a's zone leaked");
    let map = pool.mcache_map(&[keep], Advice::Warm).unwrap();
    assert_eq!(map.slice(0).unwrap(), &pattern(21, LEN)[..]);
}
