//! `MPOOL_META_LOCKING=owner`: the metadata appends of MDC1..N made by
//! per-MDC owner threads (the alternative measured against the shared
//! locks, docs/architecture.md "Concurrency") keep every commit and delete
//! as the default path does, from several threads, across a reopen with
//! the default path.

use mpool::{CreateOptions, MblockId, MediaClass, ObjType, ObjectId, OpenOptions, Pool};

fn data(n: usize, seed: u64) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u64).wrapping_mul(131).wrapping_add(seed) as u8)
        .collect()
}

/// Names of this process' threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
                .map(|s| s.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn owner_threads_keep_every_commit_and_delete() {
    let _env = crate::env_lock();
    let d = crate::scratch_env();
    let spec = crate::cap_spec(d.path(), 64 << 20, 64 << 10);
    drop(Pool::create("own", &spec, &CreateOptions::default()).unwrap());

    std::env::set_var("MPOOL_META_LOCKING", "owner");
    let pool = Pool::open("own", &OpenOptions::default());
    std::env::remove_var("MPOOL_META_LOCKING");
    let pool = pool.unwrap();
    let kept: Vec<(MblockId, Vec<u8>)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4u64)
            .map(|t| {
                let pool = &pool;
                s.spawn(move || {
                    let mut kept = Vec::new();
                    for i in 0..40u64 {
                        let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
                        let bytes = data(4096, t * 1000 + i);
                        pool.mblock_write(id, &bytes).unwrap();
                        pool.mblock_commit(id).unwrap();
                        match i % 3 {
                            0 => pool.mblock_delete(id).unwrap(),
                            1 => pool.mblock_delete_deferred(id).unwrap(),
                            _ => kept.push((id, bytes)),
                        }
                    }
                    kept
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    // The owner threads served the appends (and have named themselves by now).
    assert!(
        thread_names().iter().any(|n| n.starts_with("mpool-mdc")),
        "no MDC owner thread: {:?}",
        thread_names()
    );
    // Deferred deletes free their zones once durable.
    pool.sync().unwrap();
    let free = pool.usage()[0].free;
    drop(pool);
    // The owner threads end with the pool: joined by its drop. A joined
    // thread can still be listed in /proc for a moment (the kernel wakes
    // the joiner when the thread lets go of its memory, before it takes
    // the task out of the list), so the list is read until it is gone.
    let gone = (0..1000).any(|_| {
        let any = thread_names().iter().any(|n| n.starts_with("mpool-mdc"));
        if any {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        !any
    });
    assert!(
        gone,
        "MDC owner threads outlived the pool: {:?}",
        thread_names()
    );

    // Reopened the default way: exactly the kept mblocks, byte for byte.
    let pool = Pool::open("own", &OpenOptions::default()).unwrap();
    assert_eq!(pool.usage()[0].free, free);
    let listed: Vec<ObjectId> = pool
        .objects()
        .unwrap()
        .into_iter()
        .filter(|p| p.ty == ObjType::Mblock)
        .map(|p| p.id)
        .collect();
    let mut want: Vec<ObjectId> = kept.iter().map(|(id, _)| ObjectId::from(*id)).collect();
    want.sort();
    assert_eq!(listed, want);
    for (id, bytes) in &kept {
        let mut got = vec![0u8; bytes.len()];
        pool.mblock_read(*id, 0, &mut got).unwrap();
        assert_eq!(&got, bytes);
    }
}
