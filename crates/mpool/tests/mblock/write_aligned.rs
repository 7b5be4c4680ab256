//! Zero-copy mblock writes from owned aligned buffers
//! (`Pool::mblock_write_aligned`): one device request straight from the
//! buffer when the content so far is whole sectors, a copy otherwise;
//! mixed with byte writes, on both media classes, the content, its
//! checksum and its durability are those of `mblock_write`.

use crate::pool_common;

use mpool::dev::{CrashMode, DeviceRef, FaultDevice};
use mpool::io::AlignedBuf;
use mpool::{Error, MblockId, MediaClass, ObjectError, Pool, StorageError};
use std::sync::Arc;

const ZONE: u64 = 4 << 20;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

fn setup() -> (Arc<FaultDevice>, Arc<FaultDevice>, Pool) {
    let cap = Arc::new(FaultDevice::new(16 * ZONE, 4096));
    let stg = Arc::new(FaultDevice::new(4 * ZONE, 512));
    let pool = pool_common::two_class_pool("wal", cap.clone(), stg.clone(), ZONE);
    (cap, stg, pool)
}

fn aligned(data: &[u8], align: usize) -> AlignedBuf {
    AlignedBuf::from_slice(data, align)
}

fn read_all(pool: &Pool, id: MblockId, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    pool.mblock_read(id, 0, &mut out).unwrap();
    out
}

#[test]
fn aligned_writes_go_straight_to_the_device_and_read_back() {
    let (cap, _stg, pool) = setup();
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    // 2 MiB: the copying path would split it into two 1 MiB requests.
    let a = pattern(2 << 20, 1);
    let before = cap.stats().writes;
    let buf = aligned(&a, 4096);
    let ptr = buf.as_ptr();
    let back = pool.mblock_write_aligned(id, buf).unwrap();
    assert_eq!(back.as_ptr(), ptr, "the buffer comes back");
    assert_eq!(
        cap.stats().writes - before,
        1,
        "one request, from the buffer"
    );
    // A byte write leaves a partial sector pending: the next aligned
    // buffer is copied behind it, and content stays exact.
    let b = pattern(1000, 2);
    pool.mblock_write(id, &b).unwrap();
    let c = pattern(8192, 3);
    let back = pool.mblock_write_aligned(id, aligned(&c, 4096)).unwrap();
    assert_eq!(&back[..], &c[..], "a copied buffer comes back unchanged");
    // A buffer aligned less than the device's sector is copied too.
    let d = pattern(512, 4);
    pool.mblock_write_aligned(id, aligned(&d, 512)).unwrap();
    let props = pool.mblock_commit(id).unwrap();
    let all: Vec<u8> = [&a[..], &b, &c, &d].concat();
    assert_eq!(props.len, all.len() as u64);
    assert_eq!(props.crc, Some(table_crc(&all)));
    assert!(read_all(&pool, id, all.len()) == all, "content read back");
    let report = pool.check(&mut |_, _| {}).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn staging_class_with_small_sectors() {
    let (_cap, stg, pool) = setup();
    let id = pool.mblock_alloc(MediaClass::Staging).unwrap();
    let a = pattern(3 * 512, 9);
    let before = stg.stats().writes;
    pool.mblock_write_aligned(id, aligned(&a, 512)).unwrap();
    assert_eq!(stg.stats().writes - before, 1);
    pool.mblock_write_aligned(id, aligned(&a, 4096)).unwrap(); // 4096 bytes
    let mut all = a.clone();
    all.extend_from_slice(&a);
    all.resize(3 * 512 + 4096, 0);
    pool.mblock_commit(id).unwrap();
    assert!(read_all(&pool, id, all.len()) == all);
}

#[test]
fn committed_aligned_content_survives_a_crash() {
    let (cap, stg, pool) = setup();
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    let a = pattern(512 * 1024, 5);
    pool.mblock_write_aligned(id, aligned(&a, 4096)).unwrap();
    pool.mblock_commit(id).unwrap();
    // An uncommitted one written the same way is gone after the crash.
    let gone = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write_aligned(gone, aligned(&a, 4096)).unwrap();
    std::mem::forget(pool); // the crash: no close
    let c: DeviceRef = Arc::new(cap.reboot(CrashMode::DropAll));
    let s: DeviceRef = Arc::new(stg.reboot(CrashMode::DropAll));
    let pool = Pool::open_on(vec![c, s], false).unwrap();
    assert!(read_all(&pool, id, a.len()) == a);
    assert!(matches!(
        pool.object_props(gone),
        Err(Error::Object(ObjectError::NotFound(_)))
    ));
}

#[test]
fn full_and_failed_writes_are_refused() {
    let (cap, _stg, pool) = setup();
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    let before = cap.stats().writes;
    let err = pool
        .mblock_write_aligned(id, AlignedBuf::new(2 * ZONE as usize, 4096))
        .unwrap_err();
    assert!(
        matches!(err, Error::Object(ObjectError::MblockFull { .. })),
        "{err:?}"
    );
    assert_eq!(cap.stats().writes, before, "nothing written");
    // Not an mblock, not pending, committed.
    let ml = pool.mlog_alloc(MediaClass::Capacity, ZONE).unwrap();
    // An mlog's ID does not become an mblock's: the call cannot be made.
    let err = MblockId::try_from(ml.object_id()).unwrap_err();
    assert!(
        matches!(err, Error::Object(ObjectError::WrongType { .. })),
        "{err:?}"
    );
    pool.mblock_write_aligned(id, AlignedBuf::new(4096, 4096))
        .unwrap();
    pool.mblock_commit(id).unwrap();
    let err = pool
        .mblock_write_aligned(id, AlignedBuf::new(4096, 4096))
        .unwrap_err();
    assert!(
        matches!(err, Error::Object(ObjectError::Committed(_))),
        "{err:?}"
    );
    // A device error fails the mblock: later writes are refused; abort works.
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    let base = u64::from(pool.object_props(id).unwrap().zone) * ZONE;
    cap.fail_writes(base..base + ZONE);
    let err = pool
        .mblock_write_aligned(id, AlignedBuf::new(8192, 4096))
        .unwrap_err();
    assert!(
        matches!(err, Error::Storage(StorageError::Dev(_))),
        "{err:?}"
    );
    cap.clear_failures();
    let err = pool
        .mblock_write_aligned(id, AlignedBuf::new(4096, 4096))
        .unwrap_err();
    assert!(
        matches!(err, Error::Object(ObjectError::WriteFailed(_))),
        "{err:?}"
    );
    pool.mblock_abort(id).unwrap();
}

#[test]
fn a_failed_commit_leaves_the_mblock_writable_at_the_right_offset() {
    // The staging class flushes its content inside the commit: make that
    // flush fail after the partial last sector was written.
    let (_cap, stg, pool) = setup();
    for aligned_next in [false, true] {
        let id = pool.mblock_alloc(MediaClass::Staging).unwrap();
        let a = pattern(100, 1);
        pool.mblock_write(id, &a).unwrap();
        let ops = stg.stats().ops;
        stg.fail_op(ops + 2); // the tail sector's write, then the flush
        let err = pool.mblock_commit(id).unwrap_err();
        assert!(
            matches!(err, Error::Storage(StorageError::Dev(_))),
            "{err:?}"
        );
        stg.clear_failures();
        let b = pattern(4096, 2);
        if aligned_next {
            pool.mblock_write_aligned(id, aligned(&b, 512)).unwrap();
        } else {
            pool.mblock_write(id, &b).unwrap();
        }
        let props = pool.mblock_commit(id).unwrap();
        let all: Vec<u8> = [&a[..], &b].concat();
        assert_eq!(props.len, all.len() as u64);
        assert_eq!(props.crc, Some(table_crc(&all)));
        assert!(read_all(&pool, id, all.len()) == all, "content read back");
    }
    let report = pool.check(&mut |_, _| {}).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// The CRC of a format-3 mblock's checksum table: CRC-32C over the
/// CRC-32C of each 4 KiB block of `content`, little endian.
fn table_crc(content: &[u8]) -> u32 {
    let table: Vec<u8> = content
        .chunks(4096)
        .flat_map(|b| crc32c::crc32c(b).to_le_bytes())
        .collect();
    crc32c::crc32c(&table)
}
