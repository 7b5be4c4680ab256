//! Allocations that write a uniquifier checkpoint (the first one in each MDC
//! after an open) racing metadata compactions must neither deadlock nor lose
//! the checkpoint. A watchdog turns a deadlock into a failure, not a hang.

use mpool::dev::{DeviceRef, MemDevice};
use mpool::{MblockId, MediaClass, Pool};
use std::collections::HashSet;
use std::sync::{mpsc, Arc};
use std::time::Duration;

const ZONE: u64 = 64 * 1024;

#[test]
fn checkpoint_writes_race_compaction_without_deadlock() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let dev: DeviceRef = Arc::new(MemDevice::new(512 * ZONE, 4096));
        Pool::format_on(
            "race",
            &[(Arc::clone(&dev), MediaClass::Capacity, ZONE)],
            "",
        )
        .unwrap();
        let mut seen = HashSet::<MblockId>::new();
        for _round in 0..40 {
            let pool = Pool::open_on(vec![Arc::clone(&dev)], false).unwrap();
            let ids: Vec<MblockId> = std::thread::scope(|s| {
                let p = &pool;
                s.spawn(move || {
                    for _ in 0..20 {
                        p.compact_metadata().unwrap();
                    }
                });
                let hs: Vec<_> = (0..6)
                    .map(|_| {
                        s.spawn(move || {
                            (0..4)
                                .map(|_| {
                                    let id = p.mblock_alloc(MediaClass::Capacity).unwrap();
                                    p.mblock_abort(id).unwrap();
                                    id
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
            });
            for id in ids {
                assert!(
                    seen.insert(id),
                    "object ID {id} handed out twice across reopens"
                );
            }
        }
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("allocations racing compaction deadlocked (no progress in 120 s)");
}
