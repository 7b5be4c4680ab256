//! A put of an object of at most `MBLOCK_HOLD_MAX` bytes takes one device
//! write and one flush once the store's reserve of mblocks is filled (a
//! sealed commit: the mblock's seal carries its PUT record), and what it
//! wrote survives a crash right after, whether its record reached the
//! catalog's log or not.

use mpool::dev::{CrashMode, DeviceRef, FaultDevice};
use mpool::{MediaClass, Pool};
use mpool_object_store::{MpoolStore, StoreOptions};
use object_store::PutMode;
use std::sync::Arc;

const ZONE: u64 = 256 << 10;

/// A pool of one capacity device of 256 zones on a fault device, and
/// a store on it with a catalog of one zone a log.
fn store_on(name: &str) -> (Arc<FaultDevice>, Pool, MpoolStore, StoreOptions) {
    let fault = Arc::new(FaultDevice::new(256 * ZONE, 4096));
    let d: DeviceRef = fault.clone();
    Pool::format_on(name, &[(d.clone(), MediaClass::Capacity, ZONE)], "").unwrap();
    let pool = Pool::open_on(vec![d], false).unwrap();
    let opts = StoreOptions::default().catalog_bytes(ZONE);
    let store = MpoolStore::open(pool.clone(), &opts).unwrap();
    (fault, pool, store, opts)
}

/// Every committed mblock of the pool is held by an object of the store
/// (after the pool's deferred deletes are durable).
fn assert_no_leak(pool: &Pool, store: &MpoolStore) {
    pool.sync().unwrap();
    let held: usize = store.objects("").iter().map(|o| o.mblocks.len()).sum();
    let committed = pool
        .objects()
        .unwrap()
        .into_iter()
        .filter(|p| p.ty == mpool::ObjType::Mblock)
        .count();
    assert_eq!(held, committed, "no mblock leaked");
}

fn content(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

#[test]
fn a_put_into_a_reserved_mblock_takes_one_flush() {
    let (fault, pool, store, opts) = store_on("oneflush");
    // The catalog log's first flush after the open writes its header; the
    // first put of an mblock fills the reserve.
    store
        .put_blocking("tiny", &content(0, 10), PutMode::Overwrite)
        .unwrap();
    store
        .put_blocking("warm", &content(1, 64 << 10), PutMode::Overwrite)
        .unwrap();
    let mut per_put = Vec::new();
    for i in 0..3u8 {
        let before = fault.stats();
        store
            .put_blocking(
                &format!("p{i}"),
                &content(10 + i, 64 << 10),
                PutMode::Overwrite,
            )
            .unwrap();
        let after = fault.stats();
        per_put.push((after.writes - before.writes, after.flushes - before.flushes));
    }
    assert_eq!(
        per_put,
        vec![(1, 1); 3],
        "device writes and flushes per put"
    );
    // A small object still takes one flush (inline in its record, after
    // the records of the sealed puts), a large one spanning mblocks the
    // two-flush way.
    let before = fault.stats().flushes;
    store
        .put_blocking("small", &content(3, 100), PutMode::Overwrite)
        .unwrap();
    assert_eq!(fault.stats().flushes - before, 1);
    let big = content(4, 600 << 10);
    store.put_blocking("big", &big, PutMode::Overwrite).unwrap();

    // Crash now, every unflushed write lost: every acknowledged put is there.
    let f2 = Arc::new(fault.reboot(CrashMode::DropAll));
    let rebooted: DeviceRef = f2.clone();
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
    // Sealed puts whose records never reached the log: found by their
    // seals after a crash.
    for i in 0..3u8 {
        store
            .put_blocking(&format!("q{i}"), &content(20 + i, 5000), PutMode::Overwrite)
            .unwrap();
    }
    store
        .put_blocking("q0", &content(30, 6000), PutMode::Overwrite)
        .unwrap();
    let rebooted: DeviceRef = Arc::new(f2.reboot(CrashMode::DropAll));
    drop(store);
    drop(pool);
    let pool = Pool::open_on(vec![rebooted], false).unwrap();
    let store = MpoolStore::open(pool.clone(), &opts).unwrap();
    assert_eq!(store.get_blocking("q0").unwrap(), content(30, 6000));
    for i in 1..3u8 {
        assert_eq!(
            store.get_blocking(&format!("q{i}")).unwrap(),
            content(20 + i, 5000)
        );
    }
    assert_eq!(store.get_blocking("p1").unwrap(), content(11, 64 << 10));
    // The reserve the crash cut off left no committed mblock behind.
    assert_no_leak(&pool, &store);
}

/// A record appended after a sealed put of its path follows that put in
/// the log, even before the sealed put's own record would have been
/// appended: after a crash, a deleted path stays deleted, a renamed one
/// is at its new path only, and an overwrite by a sealed put wins.
#[test]
fn records_after_sealed_puts_keep_their_order_across_a_crash() {
    let (fault, pool, store, opts) = store_on("sealorder");
    let put = |p: &str, seed: u8| {
        store
            .put_blocking(p, &content(seed, 20_000), PutMode::Overwrite)
            .unwrap();
    };
    put("a", 1);
    put("b", 2);
    put("c", 3);
    store.delete_blocking("a").unwrap();
    store.copy_blocking("b", "b2", true, false).unwrap();
    put("c", 4);
    put("d", 5);
    let f2: DeviceRef = Arc::new(fault.reboot(CrashMode::DropAll));
    drop(store);
    drop(pool);
    let pool = Pool::open_on(vec![f2], false).unwrap();
    let store = MpoolStore::open(pool.clone(), &opts).unwrap();
    assert!(store.get_blocking("a").is_err(), "deleted");
    assert!(store.get_blocking("b").is_err(), "renamed");
    assert_eq!(store.get_blocking("b2").unwrap(), content(2, 20_000));
    assert_eq!(store.get_blocking("c").unwrap(), content(4, 20_000));
    assert_eq!(store.get_blocking("d").unwrap(), content(5, 20_000));
    assert_no_leak(&pool, &store);
}

/// Eight threads putting one-mblock objects at once on a file-backed pool
/// (where a refill of the reserve, one synced record, takes a device
/// flush): every put is a sealed commit. A put that finds the reserve
/// empty while another thread refills it waits for the refill instead of
/// going the usual way (a synced PUT record, then the commit: two
/// flushes), and the refill starts while half the reserve is left.
#[test]
fn concurrent_puts_all_commit_sealed() {
    let dir = crate::common::scratch();
    let img = crate::common::format(dir.path(), 256 << 20, 256 << 10);
    let store = crate::common::open_store(&img);
    let (threads, each) = (8usize, 40usize);
    std::thread::scope(|s| {
        for t in 0..threads {
            let store = &store;
            s.spawn(move || {
                for i in 0..each {
                    store
                        .put_blocking(
                            &format!("t{t}/{i}"),
                            &content((t * each + i) as u8, 64 << 10),
                            PutMode::Overwrite,
                        )
                        .unwrap();
                }
            });
        }
    });
    let st = store.stats().unwrap();
    assert_eq!(
        (st.sealed_puts, st.unsealed_puts),
        ((threads * each) as u64, 0),
        "puts by how they committed"
    );
    for t in 0..threads {
        let i = each - 1;
        assert_eq!(
            store.get_blocking(&format!("t{t}/{i}")).unwrap(),
            content((t * each + i) as u8, 64 << 10)
        );
    }
    crate::common::assert_no_leak(&store);
}
