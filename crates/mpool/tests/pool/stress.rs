//! Eight threads mix every object operation on one pool (mblock alloc, write,
//! commit, abort, delete, read, reads kept in flight by an `MblockReader`;
//! user mlog and MDC appends), with metadata
//! logs small enough that compaction runs throughout. At the end, and again
//! after a reopen: every committed mblock reads back bit-exact, deleted and
//! aborted ones are gone, space accounting is exact, `check` is clean.

use mpool::dev::{DeviceRef, MemDevice};
use mpool::io::AlignedBuf;
use mpool::{AlignedRead, Error, MblockId, MediaClass, ObjType, ObjectError, Pool, StorageError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const ZONE: u64 = 64 * 1024;

fn content(id: MblockId, len: usize) -> Vec<u8> {
    let mut x = id.object_id().raw() | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn verify(pool: &Pool, live: &HashMap<MblockId, usize>, dead: &[MblockId], base_used: u64) {
    for (id, len) in live {
        let mut b = vec![0u8; *len];
        pool.mblock_read(*id, 0, &mut b).unwrap();
        assert!(b == content(*id, *len), "{id} content");
        assert_eq!(pool.object_props(*id).unwrap().len, *len as u64);
    }
    for id in dead {
        assert!(
            matches!(
                pool.object_props(*id),
                Err(Error::Object(ObjectError::NotFound(_)))
            ),
            "{id} should be gone"
        );
    }
    let mblocks = pool
        .objects()
        .unwrap()
        .iter()
        .filter(|o| o.ty == ObjType::Mblock)
        .count();
    assert_eq!(mblocks, live.len());
    let used = pool.usage()[0].used / ZONE;
    assert_eq!(used, base_used + live.len() as u64, "space accounting");
    let rep = pool.check(&mut |_, _| {}).unwrap();
    assert!(rep.problems.is_empty(), "{:?}", rep.problems);
}

#[test]
fn eight_threads_mixing_everything() {
    let dev: DeviceRef = Arc::new(MemDevice::new(1024 * ZONE, 4096));
    Pool::format_on(
        "stress",
        &[(Arc::clone(&dev), MediaClass::Capacity, ZONE)],
        "",
    )
    .unwrap();
    let pool = Pool::open_on(vec![Arc::clone(&dev)], false).unwrap();
    let log = pool.mlog_alloc(MediaClass::Capacity, 4 * ZONE).unwrap();
    pool.mlog_commit(log).unwrap();
    let mdc = pool.mdc_alloc(MediaClass::Capacity, 2 * ZONE).unwrap();
    pool.mdc_commit(mdc).unwrap();
    let base_used = pool.usage()[0].used / ZONE;

    let live = Mutex::new(HashMap::<MblockId, usize>::new());
    let dead = Mutex::new(Vec::<MblockId>::new());
    let appended = Mutex::new(0u64);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        // Metadata compaction runs all along, concurrently with the workers.
        let (pool_c, done_c) = (&pool, &done);
        s.spawn(move || {
            while !done_c.load(std::sync::atomic::Ordering::Relaxed) {
                pool_c.compact_metadata().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        let workers: Vec<_> = (0..8u64)
            .map(|t| {
                let (pool, live, dead, appended) = (&pool, &live, &dead, &appended);
                s.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(t);
                    let mut mine: Vec<(MblockId, usize)> = Vec::new();
                    for _ in 0..250 {
                        match rng.random_range(0..100) {
                            0..=44 => {
                                let id = match pool.mblock_alloc(MediaClass::Capacity) {
                                    Ok(id) => id,
                                    Err(Error::Storage(StorageError::NoSpace(_))) => continue,
                                    Err(e) => panic!("alloc: {e}"),
                                };
                                // Up to what an mblock holds (its zone, less its checksum table).
                                let cap = pool.mblock_capacity(MediaClass::Capacity).unwrap();
                                let len = rng.random_range(1..=cap as usize);
                                let data = content(id, len);
                                let cut = rng.random_range(0..=len);
                                pool.mblock_write(id, &data[..cut]).unwrap();
                                pool.mblock_write(id, &data[cut..]).unwrap();
                                if rng.random_bool(0.1) {
                                    pool.mblock_abort(id).unwrap();
                                    dead.lock().unwrap().push(id);
                                } else {
                                    pool.mblock_commit(id).unwrap();
                                    mine.push((id, len));
                                }
                            }
                            45..=69 if !mine.is_empty() => {
                                let (id, _) = mine.swap_remove(rng.random_range(0..mine.len()));
                                pool.mblock_delete(id).unwrap();
                                assert!(matches!(
                                    pool.mblock_delete(id),
                                    Err(Error::Object(ObjectError::NotFound(_)))
                                ));
                                dead.lock().unwrap().push(id);
                            }
                            70..=76 if !mine.is_empty() => {
                                // Several aligned reads of mine kept in flight.
                                let mut rd = pool.mblock_reader(4).unwrap();
                                let mut want = HashMap::new();
                                for _ in 0..rng.random_range(1..8) {
                                    let (id, len) = mine[rng.random_range(0..mine.len())];
                                    let off = 4096 * rng.random_range(0..len.div_ceil(4096)) as u64;
                                    let buf = AlignedBuf::new(4096, 4096);
                                    if want.insert((id, off), len).is_none() {
                                        rd.push(AlignedRead {
                                            id,
                                            offset: off,
                                            buf,
                                        })
                                        .unwrap();
                                    }
                                }
                                for r in rd {
                                    let r = r.unwrap();
                                    let len = want.remove(&(r.id, r.offset)).unwrap();
                                    let off = r.offset as usize;
                                    let n = (len - off).min(4096);
                                    assert!(r.buf[..n] == content(r.id, len)[off..off + n]);
                                    assert!(r.buf[n..].iter().all(|&b| b == 0));
                                }
                                assert!(want.is_empty());
                            }
                            77..=84 if !mine.is_empty() => {
                                let (id, len) = mine[rng.random_range(0..mine.len())];
                                let off = rng.random_range(0..len);
                                let n = rng.random_range(1..=len - off);
                                let mut b = vec![0u8; n];
                                pool.mblock_read(id, off as u64, &mut b).unwrap();
                                assert!(b[..] == content(id, len)[off..off + n], "{id} read");
                            }
                            85..=94 => {
                                let l = pool.mlog_open(log).unwrap();
                                match l.append(format!("t{t}").as_bytes(), rng.random_bool(0.5)) {
                                    Ok(_) => *appended.lock().unwrap() += 1,
                                    Err(mpool::mlog::MlogError::LogFull { .. }) => {}
                                    Err(e) => panic!("mlog append: {e}"),
                                }
                            }
                            _ => {
                                let m = pool.mdc_open(mdc).unwrap();
                                m.append(format!("t{t}").as_bytes(), true).unwrap();
                            }
                        }
                    }
                    live.lock().unwrap().extend(mine);
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let live = live.into_inner().unwrap();
    let dead = dead.into_inner().unwrap();
    assert!(pool.compactions().unwrap() > 0, "no compaction ran");
    verify(&pool, &live, &dead, base_used);
    let records = pool.mlog_open(log).unwrap().reader().unwrap().count() as u64;
    assert_eq!(records, *appended.lock().unwrap());
    drop(pool);
    let pool = Pool::open_on(vec![dev], false).unwrap();
    verify(&pool, &live, &dead, base_used);
    let records = pool.mlog_open(log).unwrap().reader().unwrap().count() as u64;
    assert_eq!(records, *appended.lock().unwrap());
}
