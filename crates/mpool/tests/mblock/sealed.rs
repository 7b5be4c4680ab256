//! Reserved mblocks and sealed commits (`Pool::mblock_reserve`,
//! `mblock_commit_sealed`, `mblock_adopt`, `mblock_reserved`,
//! `mblock_recover`): one write and one flush commit a reserved mblock,
//! and after a crash its owner finds the seal, or nothing, never a
//! commit whose content did not land.

use mpool::dev::{CrashMode, DeviceRef, FaultDevice};
use mpool::{Error, MblockId, MediaClass, ObjectError, Pool};
use std::sync::Arc;

const ZONE: u64 = 1 << 20;
const OWNER: u64 = 0x5eed;

fn bytes(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed))
        .collect()
}

fn pool(name: &str) -> (Arc<FaultDevice>, Pool) {
    let fault = Arc::new(FaultDevice::new(64 * ZONE, 4096));
    let dev: DeviceRef = fault.clone();
    Pool::format_on(name, &[(Arc::clone(&dev), MediaClass::Capacity, ZONE)], "").unwrap();
    let pool = Pool::open_on(vec![dev], false).unwrap();
    (fault, pool)
}

fn reboot(fault: &FaultDevice, mode: CrashMode) -> (Arc<FaultDevice>, Pool) {
    let f = Arc::new(fault.reboot(mode));
    let dev: DeviceRef = f.clone();
    let pool = Pool::open_on(vec![dev], false).unwrap();
    (f, pool)
}

fn gone(pool: &Pool, id: MblockId) -> bool {
    matches!(
        pool.object_props(id),
        Err(Error::Object(ObjectError::NotFound(_)))
    )
}

fn read(pool: &Pool, id: MblockId, len: usize) -> Vec<u8> {
    let mut back = vec![0u8; len];
    pool.mblock_read(id, 0, &mut back).unwrap();
    back
}

/// One write and one flush commit a reserved mblock; it is readable at
/// once and, after a crash that drops every unflushed write, its owner
/// finds the seal's bytes and the content; a reservation never used is
/// found empty and deleted; once adopted (and synced) nothing is left to
/// find.
#[test]
fn a_sealed_commit_is_one_write_and_one_flush_and_outlives_a_crash() {
    let (fault, pool) = pool("sealed");
    let ids = pool.mblock_reserve(MediaClass::Capacity, OWNER, 2).unwrap();
    let other = pool
        .mblock_reserve(MediaClass::Capacity, OWNER + 1, 1)
        .unwrap();
    let data = bytes(3, 64 << 10);
    pool.mblock_write(ids[0], &data).unwrap();
    let before = fault.stats();
    let props = pool
        .mblock_commit_sealed(ids[0], b"what the caller keeps")
        .unwrap();
    let after = fault.stats();
    assert!(props.committed);
    assert_eq!(props.len, data.len() as u64);
    assert_eq!(
        after.writes - before.writes,
        1,
        "content, table and seal in one write"
    );
    assert_eq!(after.flushes - before.flushes, 1);
    assert_eq!(read(&pool, ids[0], data.len()), data);
    // A second seal of the same mblock is refused.
    assert!(matches!(
        pool.mblock_commit_sealed(ids[0], b"again"),
        Err(Error::InvalidArgument(_))
    ));
    drop(pool);

    let (f2, pool) = reboot(&fault, CrashMode::DropAll);
    let mut mine = pool.mblock_reserved(OWNER);
    mine.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(mine, want, "both reservations are found");
    assert_eq!(pool.mblock_reserved(OWNER + 1), other, "by owner");
    // Not readable before its owner asked.
    assert!(pool.mblock_read(ids[0], 0, &mut [0u8; 16]).is_err());
    assert_eq!(
        pool.mblock_recover(ids[0]).unwrap(),
        Some(b"what the caller keeps".to_vec())
    );
    assert_eq!(pool.mblock_recover(ids[1]).unwrap(), None);
    assert!(gone(&pool, ids[1]));
    assert_eq!(read(&pool, ids[0], data.len()), data);
    assert!(pool.mblock_reserved(OWNER).is_empty());
    pool.mblock_adopt(&[ids[0]]).unwrap();
    pool.sync().unwrap();
    drop(pool);

    let (_f3, pool) = reboot(&f2, CrashMode::DropAll);
    assert!(pool.mblock_reserved(OWNER).is_empty(), "adopted");
    assert_eq!(read(&pool, ids[0], data.len()), data);
    assert!(gone(&pool, ids[1]));
    assert_eq!(pool.mblock_reserved(OWNER + 1), other);
}

/// Crash a sealed commit of `data` after each of its first `ops` device
/// operations, keeping or dropping what was not flushed: the owner finds
/// the whole commit or none of it (and then the commit had failed).
fn crash_sweep(name: &str, data: &[u8], ops: u64) {
    for n in 0..ops {
        for mode in [CrashMode::DropAll, CrashMode::KeepAll] {
            let (fault, pool) = pool(name);
            let id = pool.mblock_reserve(MediaClass::Capacity, OWNER, 1).unwrap()[0];
            pool.mblock_write(id, data).unwrap();
            fault.crash_after(n);
            let r = pool.mblock_commit_sealed(id, b"rec");
            drop(pool);
            let (_f, pool) = reboot(&fault, mode);
            assert_eq!(pool.mblock_reserved(OWNER), vec![id], "op {n} {mode:?}");
            match pool.mblock_recover(id).unwrap() {
                Some(c) => {
                    assert_eq!(c, b"rec");
                    assert_eq!(read(&pool, id, data.len()), data, "op {n} {mode:?}");
                }
                None => {
                    assert!(r.is_err(), "op {n} {mode:?}: acknowledged, then lost");
                    assert!(gone(&pool, id));
                }
            }
        }
    }
}

/// A crash at any device operation of a sealed commit (the write, the
/// flush), keeping or dropping what was not flushed: the owner finds the
/// whole commit or none of it.
#[test]
fn a_crash_anywhere_in_a_sealed_commit_leaves_all_or_nothing() {
    crash_sweep("sealed-crash", &bytes(9, 100_000), 3);
}

/// A seal is trusted only with the content it describes: a byte of the
/// content changed after the commit (as a torn write would leave it)
/// makes the commit not found; so does a changed seal.
#[test]
fn a_seal_over_content_that_does_not_match_is_not_found() {
    for (what, at) in [("content", 5000u64), ("seal", (68 << 10) + 41)] {
        let (fault, pool) = pool("sealed-torn");
        let id = pool.mblock_reserve(MediaClass::Capacity, OWNER, 1).unwrap()[0];
        pool.mblock_write(id, &bytes(1, 64 << 10)).unwrap();
        let zone = pool.mblock_commit_sealed(id, b"rec").unwrap().zone;
        drop(pool);
        fault.flip_bit(u64::from(zone) * ZONE + at, 3);
        let (_f, pool) = reboot(&fault, CrashMode::DropAll);
        assert_eq!(pool.mblock_recover(id).unwrap(), None, "{what}");
        assert!(gone(&pool, id), "{what}");
    }
}

/// Deleted before its adoption, a sealed mblock stays deleted; aborted
/// unsealed, a reservation is gone after a crash; compactions keep
/// reservations and seals.
#[test]
fn deletes_aborts_and_compactions_keep_the_reservations_right() {
    let (fault, pool) = pool("sealed-life");
    let ids = pool.mblock_reserve(MediaClass::Capacity, OWNER, 4).unwrap();
    for (k, id) in ids.iter().enumerate().take(3) {
        pool.mblock_write(*id, &bytes(k as u8, 5000)).unwrap();
        pool.mblock_commit_sealed(*id, &[k as u8]).unwrap();
    }
    pool.mblock_delete(ids[0]).unwrap();
    pool.mblock_abort(ids[3]).unwrap();
    pool.compact_metadata().unwrap();
    pool.mblock_adopt(&[ids[0], ids[2]]).unwrap();
    pool.sync().unwrap();
    drop(pool);
    let (_f, pool) = reboot(&fault, CrashMode::DropAll);
    assert_eq!(pool.mblock_reserved(OWNER), vec![ids[1]]);
    assert!(gone(&pool, ids[0]), "deleted");
    assert!(gone(&pool, ids[3]), "aborted");
    assert_eq!(read(&pool, ids[2], 5000), bytes(2, 5000), "adopted");
    assert_eq!(pool.mblock_recover(ids[1]).unwrap(), Some(vec![1]));
    assert_eq!(read(&pool, ids[1], 5000), bytes(1, 5000));
    // A compaction while it is sealed and not adopted keeps its seal the
    // thing that counts.
    pool.compact_metadata().unwrap();
    drop(pool);
    let (_f, pool) = reboot(&_f, CrashMode::DropAll);
    assert_eq!(pool.mblock_reserved(OWNER), vec![ids[1]]);
    assert_eq!(pool.mblock_recover(ids[1]).unwrap(), Some(vec![1]));
}

/// Content longer than what waits in memory: its last write and the seal
/// in the zone's last sectors go in one batch, then one flush; after a
/// crash at any device operation of the commit the owner finds all of it
/// or nothing.
#[test]
fn a_long_content_is_sealed_in_the_zone_s_last_sectors() {
    let data = bytes(5, mpool::MBLOCK_HOLD_MAX + 100_000);
    let (fault, p) = pool("sealed-long");
    let id = p.mblock_reserve(MediaClass::Capacity, OWNER, 1).unwrap()[0];
    p.mblock_write(id, &data).unwrap();
    let before = fault.stats();
    p.mblock_commit_sealed(id, b"long").unwrap();
    let after = fault.stats();
    assert_eq!(
        after.writes - before.writes,
        2,
        "the last write and the seal"
    );
    assert_eq!(after.flushes - before.flushes, 1);
    drop(p);
    let (_f, back) = reboot(&fault, CrashMode::DropAll);
    assert_eq!(back.mblock_recover(id).unwrap(), Some(b"long".to_vec()));
    assert_eq!(read(&back, id, data.len()), data);

    // The last write, the seal, the flush.
    crash_sweep("sealed-long-crash", &data, 4);
}

/// What cannot be sealed is refused with nothing written: an mblock not
/// reserved, content that leaves no room for the seal, caller bytes past
/// the limit.
#[test]
fn what_cannot_be_sealed_is_refused() {
    let (_fault, pool) = pool("sealed-refused");
    let plain = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(plain, b"x").unwrap();
    assert!(matches!(
        pool.mblock_commit_sealed(plain, b""),
        Err(Error::InvalidArgument(_))
    ));
    pool.mblock_commit(plain).unwrap();
    let ids = pool.mblock_reserve(MediaClass::Capacity, OWNER, 2).unwrap();
    let cap = pool.mblock_capacity(MediaClass::Capacity).unwrap() as usize;
    pool.mblock_write(ids[0], &bytes(0, cap)).unwrap();
    let before = _fault.stats().writes;
    assert!(matches!(
        pool.mblock_commit_sealed(ids[0], b""),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(_fault.stats().writes, before, "nothing written");
    // Still committed the usual way.
    pool.mblock_commit(ids[0]).unwrap();
    assert!(matches!(
        pool.mblock_commit_sealed(ids[1], &vec![0u8; mpool::SEAL_CLIENT_MAX + 1]),
        Err(Error::InvalidArgument(_))
    ));
    pool.mblock_commit_sealed(ids[1], &vec![7u8; mpool::SEAL_CLIENT_MAX])
        .unwrap();
}
