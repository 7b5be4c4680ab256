//! A pool written by format version 1 (mpool 0.1.0) still opens and reads
//! back exactly, read-only and read-write, and takes new objects.
//!
//! `golden/pool-v1.img` holds the non-zero 512-byte sectors of a 4.5 MiB
//! pool (72 zones of 64 KiB) made by the 0.1.0 code: mblocks of 100, 65536
//! and 5000 bytes committed (the last after a metadata compaction), one of
//! 777 bytes committed then deleted, one of 300 bytes never committed, a
//! user mlog holding "one", "two", "three", and two root-MDC records.
//! Content byte `i` of an mblock of length `len` is `(i * 31 + len) as u8`.
//! File layout: `MPGOLD1\0`, device size u64, sector u32, then (offset u64,
//! 512 bytes) for each non-zero sector, little-endian.

use mpool::dev::{DeviceRef, FaultDevice};
use mpool::{MediaClass, ObjType, Pool};
use std::sync::Arc;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) + len) as u8).collect()
}

pub(super) fn image() -> Vec<u8> {
    let f = include_bytes!("../golden/pool-v1.img");
    assert_eq!(&f[..8], b"MPGOLD1\0");
    let size = u64::from_le_bytes(f[8..16].try_into().unwrap()) as usize;
    let sector = u32::from_le_bytes(f[16..20].try_into().unwrap()) as usize;
    assert_eq!(sector, 512);
    let mut img = vec![0u8; size];
    let mut rest = &f[20..];
    while !rest.is_empty() {
        let off = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
        img[off..off + sector].copy_from_slice(&rest[8..8 + sector]);
        rest = &rest[8 + sector..];
    }
    img
}

pub(super) fn check_contents(pool: &Pool) {
    let objs = pool.objects().unwrap();
    let mut lens: Vec<u64> = objs
        .iter()
        .filter(|o| o.ty == ObjType::Mblock)
        .map(|o| o.len)
        .collect();
    lens.sort();
    assert_eq!(lens, vec![100, 5000, 65536], "committed mblocks");
    for o in objs.iter().filter(|o| o.ty == ObjType::Mblock) {
        let mut got = vec![0u8; o.len as usize];
        pool.mblock_read(o.id.try_into().unwrap(), 0, &mut got)
            .unwrap();
        assert_eq!(got, pattern(o.len as usize), "content of {}", o.id);
        assert_eq!(o.crc, Some(crc32c::crc32c(&got)));
    }
    let logs: Vec<_> = objs.iter().filter(|o| o.ty == ObjType::Mlog).collect();
    assert_eq!(logs.len(), 1, "one user mlog");
    let recs: Vec<Vec<u8>> = pool
        .mlog_open(logs[0].id.try_into().unwrap())
        .unwrap()
        .reader()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        recs,
        vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
    let roots: Vec<Vec<u8>> = pool
        .root_mdc()
        .unwrap()
        .reader()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        roots,
        vec![b"root record 1".to_vec(), b"root record 2".to_vec()]
    );
}

#[test]
fn format_v1_pool_opens_and_reads_back() {
    let img = image();
    let dev: DeviceRef = Arc::new(FaultDevice::from_image(img.clone(), 512));
    let ro = Pool::open_on(vec![Arc::clone(&dev)], true).unwrap();
    assert_eq!(ro.name(), "golden-v1");
    check_contents(&ro);
    drop(ro);

    let pool = Pool::open_on(vec![Arc::clone(&dev)], false).unwrap();
    check_contents(&pool);
    // New objects in an old pool: commit, delete, reopen.
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(id, &pattern(4321)).unwrap();
    pool.mblock_commit(id).unwrap();
    let gone = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(gone, &pattern(10)).unwrap();
    pool.mblock_commit(gone).unwrap();
    pool.mblock_delete(gone).unwrap();
    drop(pool);
    let pool = Pool::open_on(vec![Arc::clone(&dev)], false).unwrap();
    let mut got = vec![0u8; 4321];
    pool.mblock_read(id, 0, &mut got).unwrap();
    assert_eq!(got, pattern(4321));
    assert!(pool.object_props(gone).is_err(), "deleted object is back");
    assert_eq!(
        pool.object_count().unwrap(),
        6,
        "4 mblocks, the mlog and the root MDC"
    );
}
