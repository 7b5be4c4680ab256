//! A metadata compaction that fails with an I/O error at any one of its
//! device operations: either it was abandoned before its end marker (the
//! pool goes on in the old logs: commits and deletes work) or the end
//! marker itself is in doubt (that MDC refuses records with
//! `MetadataFailed` until reopen). Either way nothing committed is lost,
//! across a reopen and across a crash.

use mpool::dev::{CrashMode, DeviceRef, FaultDevice};
use mpool::{Error, MblockId, MediaClass, MetadataError, Pool};
use std::collections::BTreeMap;
use std::sync::Arc;

const ZONE: u64 = 64 * 1024;

fn setup(dev: &Arc<FaultDevice>) -> (Pool, BTreeMap<MblockId, Vec<u8>>) {
    let d: DeviceRef = dev.clone();
    Pool::format_on("cfail", &[(d.clone(), MediaClass::Capacity, ZONE)], "").unwrap();
    let pool = Pool::open_on(vec![d], false).unwrap();
    let mut live = BTreeMap::new();
    // Commits and deletes, so the compaction has garbage to drop and many
    // records to write (several blocks per MDC).
    for i in 0..600u32 {
        let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
        let data = vec![i as u8; 100 + i as usize];
        pool.mblock_write(id, &data).unwrap();
        pool.mblock_commit(id).unwrap();
        if i % 3 == 0 {
            pool.mblock_delete(id).unwrap();
        } else {
            live.insert(id, data);
        }
    }
    (pool, live)
}

fn verify(pool: &Pool, live: &BTreeMap<MblockId, Vec<u8>>) {
    let ids: Vec<MblockId> = pool
        .objects()
        .unwrap()
        .iter()
        .filter(|o| o.ty == mpool::ObjType::Mblock)
        .map(|o| MblockId::try_from(o.id).unwrap())
        .collect();
    assert_eq!(ids, live.keys().copied().collect::<Vec<_>>());
    for (id, data) in live {
        let mut buf = vec![0u8; data.len()];
        pool.mblock_read(*id, 0, &mut buf).unwrap();
        assert_eq!(&buf, data);
    }
}

#[test]
fn a_compaction_failing_anywhere_loses_nothing() {
    // How many device operations a compaction of this pool takes.
    let dev = Arc::new(FaultDevice::new(700 * ZONE, 4096));
    let (pool, _) = setup(&dev);
    let before = dev.stats().ops;
    pool.compact_metadata().unwrap();
    let total = dev.stats().ops - before;
    drop(pool);
    assert!(total >= 4, "a compaction took {total} operations");

    let (mut abandoned, mut in_doubt) = (0, 0);
    for p in 1..=total {
        let dev = Arc::new(FaultDevice::new(700 * ZONE, 4096));
        let (pool, mut live) = setup(&dev);
        dev.fail_op(dev.stats().ops + p);
        let res = pool.compact_metadata();
        dev.clear_failures();
        if res.is_ok() {
            continue; // the failed operation was one a retry covered
        }
        // The pool goes on: a commit lands in an MDC that still takes
        // records, or is refused as MetadataFailed by one whose end marker
        // is in doubt or whose log failed (the failed operation may be a
        // flush of the active log, the compaction's or, depending on
        // timing, the background thread's).
        let id = pool.mblock_alloc(MediaClass::Capacity);
        let mut failed_mdc = false;
        match id {
            Ok(id) => {
                pool.mblock_write(id, b"after").unwrap();
                match pool.mblock_commit(id) {
                    Ok(_) => {
                        live.insert(id, b"after".to_vec());
                    }
                    Err(Error::Metadata(MetadataError::Failed { .. })) => failed_mdc = true,
                    Err(e) => panic!("op {p}: commit after the failed compaction: {e:?}"),
                }
            }
            Err(Error::Metadata(MetadataError::Failed { .. })) => failed_mdc = true,
            Err(e) => panic!("op {p}: alloc after the failed compaction: {e:?}"),
        }
        if failed_mdc {
            in_doubt += 1;
        } else {
            abandoned += 1;
        }
        verify(&pool, &live);
        // A clean reopen, and a crash that loses every unflushed write.
        drop(pool);
        for mode in [CrashMode::KeepAll, CrashMode::DropAll] {
            let d: DeviceRef = Arc::new(dev.reboot(mode));
            let pool = Pool::open_on(vec![d], false)
                .unwrap_or_else(|e| panic!("op {p}, {mode:?}: reopen: {e:?}"));
            verify(&pool, &live);
            // And compacts fine now.
            pool.compact_metadata().unwrap();
            verify(&pool, &live);
        }
    }
    assert!(abandoned > 0, "no failure left the compaction abandoned");
    eprintln!("{total} operations: {abandoned} abandoned, {in_doubt} in doubt");
}
