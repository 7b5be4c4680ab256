//! A put of an object that fits one mblock takes one device flush once the
//! store's reserve of mblocks is filled (its PUT record shares the flush of
//! the mblock's commit), and what it wrote survives a crash right after.

use mpool::dev::{CrashMode, DeviceRef, FaultDevice};
use mpool::{MediaClass, Pool};
use mpool_object_store::{MpoolStore, StoreOptions};
use object_store::PutMode;
use std::sync::Arc;

const ZONE: u64 = 256 << 10;

fn content(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

#[test]
fn a_put_into_a_reserved_mblock_takes_one_flush() {
    let fault = Arc::new(FaultDevice::new(256 * ZONE, 4096));
    let d: DeviceRef = fault.clone();
    Pool::format_on("oneflush", &[(d.clone(), MediaClass::Capacity, ZONE)], "").unwrap();
    let pool = Pool::open_on(vec![d.clone()], false).unwrap();
    let opts = StoreOptions::default().catalog_bytes(ZONE);
    let store = MpoolStore::open(pool.clone(), &opts).unwrap();
    // The first put fills the reserve (two flushes: record, then commit).
    store
        .put_blocking("warm", &content(1, 64 << 10), PutMode::Overwrite)
        .unwrap();
    let mut per_put = Vec::new();
    for i in 0..3u8 {
        let before = fault.stats().flushes;
        store
            .put_blocking(
                &format!("p{i}"),
                &content(10 + i, 64 << 10),
                PutMode::Overwrite,
            )
            .unwrap();
        per_put.push(fault.stats().flushes - before);
    }
    assert_eq!(per_put, vec![1, 1, 1], "device flushes per put");
    // A small object still takes one (inline in its record), a large one
    // spanning mblocks the two-flush way.
    let before = fault.stats().flushes;
    store
        .put_blocking("small", &content(3, 100), PutMode::Overwrite)
        .unwrap();
    assert_eq!(fault.stats().flushes - before, 1);
    let big = content(4, 600 << 10);
    store.put_blocking("big", &big, PutMode::Overwrite).unwrap();

    // Crash now, every unflushed write lost: every acknowledged put is there.
    let rebooted: DeviceRef = Arc::new(fault.reboot(CrashMode::DropAll));
    // (The old handles close on the old device, after the crash image was
    // taken.)
    drop(store);
    drop(pool);
    let pool = Pool::open_on(vec![rebooted], false).unwrap();
    let store = MpoolStore::open(pool.clone(), &opts).unwrap();
    for i in 0..3u8 {
        assert_eq!(
            store.get_blocking(&format!("p{i}")).unwrap(),
            content(10 + i, 64 << 10)
        );
    }
    assert_eq!(store.get_blocking("warm").unwrap(), content(1, 64 << 10));
    assert_eq!(store.get_blocking("small").unwrap(), content(3, 100));
    assert_eq!(store.get_blocking("big").unwrap(), big);
    // The reserve the crash cut off left no committed mblock behind.
    pool.sync().unwrap();
    let held: usize = store.objects("").iter().map(|o| o.mblocks.len()).sum();
    let committed = pool
        .objects()
        .unwrap()
        .into_iter()
        .filter(|p| p.ty == mpool::ObjType::Mblock)
        .count();
    assert_eq!(held, committed);
}
