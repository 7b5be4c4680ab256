//! Deferred deletes: gone for readers at once, durable with the metadata
//! log's next flush, and their zone free only then. A crash before brings
//! the object back whole; `Pool::sync`, a later durable operation in the
//! same log, the background thread and closing the pool each make it stay
//! gone.

use mpool::dev::{CrashMode, DeviceRef, FaultDevice};
use mpool::{Error, MblockId, MediaClass, ObjectError, Pool, PoolError, StorageError};
use std::sync::Arc;

const ZONE: u64 = 64 * 1024;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

fn setup() -> (Arc<FaultDevice>, Pool) {
    let dev = Arc::new(FaultDevice::new(72 * ZONE, 4096));
    let d: DeviceRef = dev.clone();
    Pool::format_on("deferred", &[(d.clone(), MediaClass::Capacity, ZONE)], "").unwrap();
    let pool = Pool::open_on(vec![d], false).unwrap();
    (dev, pool)
}

fn commit(pool: &Pool, len: usize, seed: u8) -> MblockId {
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(id, &pattern(len, seed)).unwrap();
    pool.mblock_commit(id).unwrap();
    id
}

fn reopen(dev: &FaultDevice, mode: CrashMode) -> Pool {
    let d: DeviceRef = Arc::new(dev.reboot(mode));
    Pool::open_on(vec![d], false).unwrap()
}

#[test]
fn deferred_delete_is_gone_at_once_and_frees_its_zone_when_durable() {
    let (dev, pool) = setup();
    let id = commit(&pool, 10_000, 1);
    let used = pool.usage()[0].used;
    let flushes = dev.stats().flushes;
    pool.mblock_delete_deferred(id).unwrap();
    assert_eq!(
        dev.stats().flushes,
        flushes,
        "a deferred delete does not flush"
    );
    assert!(matches!(
        pool.mblock_read(id, 0, &mut [0u8; 1]),
        Err(Error::Object(ObjectError::NotFound(_)))
    ));
    assert!(matches!(
        pool.mblock_delete(id),
        Err(Error::Object(ObjectError::NotFound(_)))
    ));
    assert!(matches!(
        pool.mblock_delete_deferred(id),
        Err(Error::Object(ObjectError::NotFound(_)))
    ));
    assert_eq!(
        pool.usage()[0].used,
        used,
        "zone held until the delete is durable"
    );
    // A crash now brings it back whole.
    let p = reopen(&dev, CrashMode::DropAll);
    let mut got = vec![0u8; 10_000];
    p.mblock_read(id, 0, &mut got).unwrap();
    assert_eq!(got, pattern(10_000, 1));
    drop(p);
    pool.sync().unwrap();
    assert_eq!(pool.usage()[0].used, used - ZONE);
    let p = reopen(&dev, CrashMode::DropAll);
    assert!(
        p.object_props(id).is_err(),
        "synced deferred delete is back"
    );
}

#[test]
fn a_later_durable_operation_in_the_same_log_carries_it() {
    let (dev, pool) = setup();
    // Two in one MDC (a thread takes its IDs in runs from one MDC).
    let ids: Vec<MblockId> = (0..8).map(|i| commit(&pool, 5000, i)).collect();
    let a = ids[0];
    let b = *ids[1..]
        .iter()
        .find(|x| x.object_id().mdc() == a.object_id().mdc())
        .unwrap();
    pool.mblock_delete_deferred(a).unwrap();
    pool.mblock_delete(b).unwrap();
    let p = reopen(&dev, CrashMode::DropAll);
    assert!(
        p.object_props(a).is_err(),
        "deferred delete before a durable one is back"
    );
    assert!(p.object_props(b).is_err());
}

#[test]
fn background_thread_and_close_make_it_durable() {
    let (dev, pool) = setup();
    let id = commit(&pool, 3000, 9);
    let used = pool.usage()[0].used;
    pool.mblock_delete_deferred(id).unwrap();
    let t = std::time::Instant::now();
    while pool.usage()[0].used == used && t.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        pool.usage()[0].used,
        used - ZONE,
        "not made durable in the background within 10 s"
    );
    assert!(reopen(&dev, CrashMode::DropAll).object_props(id).is_err());

    let id2 = commit(&pool, 3000, 10);
    pool.mblock_delete_deferred(id2).unwrap();
    drop(pool);
    assert!(
        reopen(&dev, CrashMode::DropAll).object_props(id2).is_err(),
        "closing the pool left a deferred delete undone"
    );
}

#[test]
fn zones_are_not_reused_before_the_delete_is_durable() {
    let (dev, pool) = setup();
    let free = pool.usage()[0].free;
    let n = (free / ZONE) as usize;
    let ids: Vec<MblockId> = (0..n).map(|i| commit(&pool, 100, i as u8)).collect();
    assert!(matches!(
        pool.mblock_alloc(MediaClass::Capacity),
        Err(Error::Storage(StorageError::NoSpace(_)))
    ));
    pool.mblock_delete_deferred(ids[0]).unwrap();
    // Unless the background thread got there first, the pool is still full.
    match pool.mblock_alloc(MediaClass::Capacity) {
        Err(Error::Storage(StorageError::NoSpace(_))) => {}
        Ok(id) => {
            pool.mblock_abort(id).unwrap();
            assert!(reopen(&dev, CrashMode::DropAll)
                .object_props(ids[0])
                .is_err());
        }
        Err(e) => panic!("{e}"),
    }
    pool.sync().unwrap();
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(id, b"new").unwrap();
    pool.mblock_commit(id).unwrap();
    let p = reopen(&dev, CrashMode::DropAll);
    assert!(p.object_props(ids[0]).is_err());
    let mut got = [0u8; 3];
    p.mblock_read(id, 0, &mut got).unwrap();
    assert_eq!(&got, b"new");
}

#[test]
fn bad_requests_get_typed_errors_and_change_nothing() {
    let (dev, pool) = setup();
    let id = commit(&pool, 1000, 3);
    let pending = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    assert!(matches!(
        pool.mblock_delete_deferred(pending),
        Err(Error::Object(ObjectError::NotCommitted(_)))
    ));
    let log = pool.mlog_alloc(MediaClass::Capacity, ZONE).unwrap();
    pool.mlog_commit(log).unwrap();
    // An mlog's ID does not become an mblock's: the call cannot be made.
    assert!(matches!(
        MblockId::try_from(log.object_id()),
        Err(Error::Object(ObjectError::WrongType { .. }))
    ));
    pool.mblock_abort(pending).unwrap();
    drop(pool);
    let d: DeviceRef = dev.clone();
    let ro = Pool::open_on(vec![d], true).unwrap();
    assert!(matches!(
        ro.mblock_delete_deferred(id),
        Err(Error::Pool(PoolError::ReadOnly(_)))
    ));
    assert!(matches!(
        ro.sync(),
        Err(Error::Pool(PoolError::ReadOnly(_)))
    ));
    drop(ro);
    let p = reopen(&dev, CrashMode::DropAll);
    assert!(p.object_props(id).is_ok() && p.object_props(log).is_ok());
}
