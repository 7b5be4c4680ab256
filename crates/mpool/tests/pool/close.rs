//! `Pool::close` reports what failed: Ok on a healthy pool (deferred
//! deletes durable after it), the flush error when the metadata cannot be
//! made durable, and, with other clones alive, a sync that leaves the pool
//! open.

use mpool::dev::{CrashMode, DeviceRef, FaultDevice};
use mpool::{MblockId, MediaClass, Pool};
use std::sync::Arc;

const ZONE: u64 = 64 * 1024;

fn setup(name: &str) -> (Arc<FaultDevice>, Pool) {
    let dev = Arc::new(FaultDevice::new(72 * ZONE, 4096));
    let d: DeviceRef = dev.clone();
    Pool::format_on(name, &[(d.clone(), MediaClass::Capacity, ZONE)], "").unwrap();
    (dev, Pool::open_on(vec![d], false).unwrap())
}

fn commit(pool: &Pool, data: &[u8]) -> MblockId {
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(id, data).unwrap();
    pool.mblock_commit(id).unwrap();
    id
}

fn reopen(dev: &FaultDevice) -> Pool {
    let d: DeviceRef = Arc::new(dev.reboot(CrashMode::DropAll));
    Pool::open_on(vec![d], false).unwrap()
}

#[test]
fn close_of_a_healthy_pool_is_ok_and_leaves_deferred_deletes_durable() {
    let (dev, pool) = setup("close-ok");
    let kept = commit(&pool, b"kept");
    let gone = commit(&pool, b"gone");
    pool.mblock_delete_deferred(gone).unwrap();
    pool.close().unwrap();
    // Nothing unflushed is left: a reboot that loses every unflushed
    // write changes nothing.
    let p = reopen(&dev);
    assert!(
        p.object_props(gone).is_err(),
        "the deferred delete was undone"
    );
    let mut b = [0u8; 4];
    p.mblock_read(kept, 0, &mut b).unwrap();
    assert_eq!(&b, b"kept");
    p.close().unwrap();
}

#[test]
fn close_reports_a_failed_flush() {
    let (dev, pool) = setup("close-eio");
    let id = commit(&pool, b"doomed delete");
    // From now on every device operation fails: the deferred delete's
    // record cannot be made durable, neither by the background thread nor
    // by the close.
    dev.crash_now();
    pool.mblock_delete_deferred(id).unwrap();
    let err = pool.close().expect_err("a close whose flush failed was Ok");
    assert!(
        matches!(
            err,
            mpool::Error::Storage(mpool::StorageError::Dev(_))
                | mpool::Error::Metadata(mpool::MetadataError::Mlog(_))
                | mpool::Error::Metadata(mpool::MetadataError::Mdc(_))
        ),
        "{err:?}"
    );
    // The pool is closed all the same; what was durable is there.
    let p = reopen(&dev);
    assert!(
        p.object_props(id).is_ok(),
        "the delete never became durable"
    );
}

#[test]
fn close_of_one_clone_syncs_and_leaves_the_pool_open() {
    let (dev, pool) = setup("close-clone");
    let other = pool.clone();
    let gone = commit(&pool, b"gone");
    pool.mblock_delete_deferred(gone).unwrap();
    pool.close().unwrap();
    // Durable already, and the other clone still works.
    let kept = commit(&other, b"kept");
    let p = reopen(&dev);
    assert!(p.object_props(gone).is_err(), "close did not sync");
    assert!(p.object_props(kept).is_ok());
    drop(p);
    other.close().unwrap();
}

#[test]
fn close_of_a_read_only_pool_is_ok() {
    let (dev, pool) = setup("close-ro");
    let id = commit(&pool, b"there");
    pool.close().unwrap();
    let d: DeviceRef = dev.clone();
    let ro = Pool::open_on(vec![d], true).unwrap();
    assert!(ro.object_props(id).is_ok());
    let clone = ro.clone();
    ro.close().unwrap();
    clone.close().unwrap();
}
