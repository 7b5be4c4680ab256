//! A commit that fails with an I/O error at any one of its device
//! operations: later commits land, or are refused with `MetadataFailed` by
//! an MDC whose log failed with it (never with the log's own error, which
//! callers cannot tell from a bug); nothing committed is lost across a
//! reopen.

use mpool::dev::{CrashMode, DeviceRef, FaultDevice};
use mpool::{Error, MblockId, MediaClass, MetadataError, Pool};
use std::collections::BTreeMap;
use std::sync::Arc;

const ZONE: u64 = 64 * 1024;

/// Commit one mblock holding `data`; its ID and the commit's outcome.
fn commit(pool: &Pool, data: &[u8]) -> Result<MblockId, Error> {
    let id = pool.mblock_alloc(MediaClass::Capacity)?;
    pool.mblock_write(id, data)?;
    pool.mblock_commit(id).map(|_| id)
}

/// A new pool on a device that fails operations on demand.
fn fresh() -> (Arc<FaultDevice>, Pool) {
    let dev = Arc::new(FaultDevice::new(64 * ZONE, 4096));
    let d: DeviceRef = dev.clone();
    Pool::format_on("commitfail", &[(d.clone(), MediaClass::Capacity, ZONE)], "").unwrap();
    (dev, Pool::open_on(vec![d], false).unwrap())
}

#[test]
fn after_a_failed_commit_an_mdc_takes_records_or_says_it_failed() {
    // How many device operations a commit takes.
    let (dev, pool) = fresh();
    commit(&pool, b"warm").unwrap();
    let before = dev.stats().ops;
    commit(&pool, b"count").unwrap();
    let per_commit = dev.stats().ops - before;
    drop(pool);
    assert!(per_commit >= 2, "a commit took {per_commit} operations");

    let mut refused = 0;
    for p in 1..=per_commit {
        let (dev, pool) = fresh();
        let mut live = BTreeMap::new();
        for i in 0..3u8 {
            let data = vec![i; 200];
            live.insert(commit(&pool, &data).unwrap(), data);
        }
        dev.fail_op(dev.stats().ops + p);
        let failed = commit(&pool, b"failing");
        dev.clear_failures();
        // Whatever the failed commit did, the ones after it land or are
        // refused by a failed MDC (the same thread keeps to one MDC for a
        // run of IDs, so these meet the failed log if there is one).
        for i in 0..4u8 {
            let data = vec![0x80 | i; 300];
            match commit(&pool, &data) {
                Ok(id) => {
                    live.insert(id, data);
                }
                Err(Error::Metadata(MetadataError::Failed { .. })) => refused += 1,
                Err(e) => {
                    panic!("op {p} (the failed commit: {failed:?}): a commit after it: {e:?}")
                }
            }
        }
        for (id, data) in &live {
            let mut buf = vec![0u8; data.len()];
            pool.mblock_read(*id, 0, &mut buf).unwrap();
            assert_eq!(&buf, data, "op {p}: mblock {id:?}");
        }
        drop(pool);
        // Every commit that returned is there after a crash that keeps
        // only what was flushed.
        let d: DeviceRef = Arc::new(dev.reboot(CrashMode::DropAll));
        let pool = Pool::open_on(vec![d], false)
            .unwrap_or_else(|e| panic!("op {p}: reopen after the failed commit: {e:?}"));
        for (id, data) in &live {
            let mut buf = vec![0u8; data.len()];
            pool.mblock_read(*id, 0, &mut buf)
                .unwrap_or_else(|e| panic!("op {p}: mblock {id:?} after reopen: {e:?}"));
            assert_eq!(&buf, data, "op {p}: mblock {id:?} after reopen");
        }
        commit(&pool, b"after reopen").unwrap();
    }
    // Some failure hit the MDC's log (its write or flush) and the MDC said
    // so; the others hit the mblock's data and left the log alone.
    assert!(
        refused > 0,
        "no failure of {per_commit} left an MDC refusing records"
    );
}
