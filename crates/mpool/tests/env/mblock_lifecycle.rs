//! Mblocks: alloc, write, commit, read at any offset, abort, delete, typed
//! errors for misuse, and everything as it was after a reopen.

use mpool::DeviceSpec;
use mpool::{CreateOptions, Error, MediaClass, ObjectError, OpenOptions, Pool, PoolError};

fn setup() -> (tempfile::TempDir, DeviceSpec) {
    let d = crate::scratch_env();
    let spec = crate::cap_spec(d.path(), 64 << 20, 1 << 20);
    (d, spec)
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn mblock_lifecycle_and_reopen() {
    let _env = crate::env_lock();
    let (_d, spec) = setup();
    let pool = Pool::create("mb", &spec, &CreateOptions::default()).unwrap();
    let free0 = pool.usage()[0].free;

    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    assert!(matches!(
        pool.mblock_read(id, 0, &mut [0u8; 1]),
        Err(Error::Object(ObjectError::NotCommitted(_)))
    ));
    assert!(matches!(
        pool.mblock_delete(id),
        Err(Error::Object(ObjectError::NotCommitted(_)))
    ));
    let a = data(100_000, 1);
    pool.mblock_write(id, &a[..777]).unwrap();
    pool.mblock_write(id, &a[777..]).unwrap();
    let p = pool.mblock_commit(id).unwrap();
    assert!(p.committed);
    assert_eq!(p.len, a.len() as u64);
    // A format-3 commit records the CRC of its table of 4 KiB block CRCs.
    let table: Vec<u8> = a
        .chunks(4096)
        .flat_map(|b| crc32c::crc32c(b).to_le_bytes())
        .collect();
    assert_eq!(p.crc, Some(crc32c::crc32c(&table)));
    assert_eq!(p.csum_block, Some(4096));
    assert!(matches!(
        pool.mblock_write(id, b"x"),
        Err(Error::Object(ObjectError::Committed(_)))
    ));
    assert!(matches!(
        pool.mblock_commit(id),
        Err(Error::Object(ObjectError::Committed(_)))
    ));
    assert!(matches!(
        pool.mblock_abort(id),
        Err(Error::Object(ObjectError::Committed(_)))
    ));
    let mut buf = vec![0u8; 5000];
    pool.mblock_read(id, 4093, &mut buf).unwrap();
    assert_eq!(&buf[..], &a[4093..9093]);
    assert!(matches!(
        pool.mblock_read(id, 99_999, &mut [0u8; 2]),
        Err(Error::Object(ObjectError::ReadOutOfRange { .. }))
    ));
    assert!(matches!(
        pool.mblock_write(id, &vec![0u8; 2 << 20]),
        Err(Error::Object(ObjectError::Committed(_)))
    ));

    let full = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    assert!(matches!(
        pool.mblock_write(full, &vec![0u8; (1 << 20) + 1]),
        Err(Error::Object(ObjectError::MblockFull { .. }))
    ));
    pool.mblock_abort(full).unwrap();
    assert!(matches!(
        pool.mblock_abort(full),
        Err(Error::Object(ObjectError::NotFound(_)))
    ));

    let gone = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(gone, b"bye").unwrap();
    pool.mblock_commit(gone).unwrap();
    pool.mblock_delete(gone).unwrap();
    assert!(matches!(
        pool.mblock_delete(gone),
        Err(Error::Object(ObjectError::NotFound(_)))
    ));
    assert!(matches!(
        pool.mblock_alloc(MediaClass::Staging),
        Err(Error::Pool(PoolError::NoSuchClass(MediaClass::Staging)))
    ));
    let uncommitted = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(uncommitted, b"lost on close").unwrap();
    drop(pool);

    let pool = Pool::open("mb", &OpenOptions::default()).unwrap();
    let objs = pool.objects().unwrap();
    assert!(objs
        .iter()
        .any(|o| o.id == id.object_id() && o.committed && o.len == a.len() as u64));
    assert!(!objs
        .iter()
        .any(|o| o.id == gone.object_id() || o.id == uncommitted.object_id()));
    let mut all = vec![0u8; a.len()];
    pool.mblock_read(id, 0, &mut all).unwrap();
    assert_eq!(all, a);
    pool.mblock_verify(id).unwrap();
    // Only the committed mblock's zone is in use beyond what a new pool uses.
    assert_eq!(pool.usage()[0].free, free0 - (1 << 20));
    // IDs are never reused.
    let next = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    assert!(![id, gone, uncommitted, full].contains(&next));
}

/// A read-only open writes nothing, even where a read-write open would
/// clean up: after a metadata compaction the previous logs still hold
/// records, and opening the pool read-only (on a read-only device) must
/// neither erase them nor fail.
#[test]
fn a_compacted_pool_opens_read_only() {
    let _env = crate::env_lock();
    let d = crate::scratch_env();
    let cap = crate::cap_spec(d.path(), 64 << 20, 1 << 20);
    let pool = mpool::Pool::create("rocompact", &cap, &mpool::CreateOptions::default()).unwrap();
    let id = pool.mblock_alloc(mpool::MediaClass::Capacity).unwrap();
    pool.mblock_write(id, b"kept across a compaction").unwrap();
    pool.mblock_commit(id).unwrap();
    pool.compact_metadata().unwrap();
    pool.close().unwrap();
    let before = std::fs::read(&cap.path).unwrap();
    let ro = mpool::OpenOptions {
        read_only: true,
        ..Default::default()
    };
    let pool = mpool::Pool::open("rocompact", &ro).expect("read-only open after a compaction");
    let mut buf = vec![0u8; 24];
    pool.mblock_read(id, 0, &mut buf).unwrap();
    assert_eq!(&buf, b"kept across a compaction");
    drop(pool);
    assert!(
        std::fs::read(&cap.path).unwrap() == before,
        "a read-only open wrote to the device"
    );
}

/// A large write from an aligned buffer on a file device is written from
/// the caller's buffer while its block checksums are computed beside it:
/// the content reads back exact, and a flipped byte in it is caught by the
/// checksums computed on that path.
#[test]
fn a_large_aligned_write_is_checksummed_while_it_is_written() {
    let _env = crate::env_lock();
    let d = crate::scratch_env();
    let cap = crate::cap_spec(d.path(), 64 << 20, 4 << 20);
    let pool = mpool::Pool::create("overlap", &cap, &mpool::CreateOptions::default()).unwrap();
    let id = pool.mblock_alloc(mpool::MediaClass::Capacity).unwrap();
    let mut buf = mpool::AlignedBuf::new(3 << 20, 4096);
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i as u64).wrapping_mul(0x9E37_79B9) as u8 ^ (i >> 12) as u8;
    }
    let want = buf.to_vec();
    pool.mblock_write_aligned(id, buf).unwrap();
    let props = pool.mblock_commit(id).unwrap();
    let mut got = vec![0u8; want.len()];
    pool.mblock_read(id, 0, &mut got).unwrap();
    assert!(got == want, "content differs");
    pool.close().unwrap();
    // Flip a byte in the second MiB, then reopen: its block is refused.
    let at = u64::from(props.zone) * (4 << 20) + (1 << 20) + 12345;
    flip_byte(&cap.path, at, 1);
    let pool = mpool::Pool::open("overlap", &mpool::OpenOptions::default()).unwrap();
    let mut one = vec![0u8; 4096];
    match pool.mblock_read(id, (1 << 20) + 12288, &mut one) {
        Err(mpool::Error::Object(mpool::ObjectError::Checksum { offset, .. })) => {
            assert_eq!(offset, (1 << 20) + 12288)
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
    pool.mblock_read(id, 0, &mut one).unwrap();
    assert_eq!(one, want[..4096]);
}

/// A large aligned write that fills the mblock to its capacity: its
/// checksum table is final, and is written while the content is (not at
/// commit). After a reopen every block verifies against it, and a flipped
/// byte in the last block is refused.
#[test]
fn a_write_that_fills_the_mblock_writes_its_table_with_the_content() {
    let _env = crate::env_lock();
    let d = crate::scratch_env();
    let zone = 4u64 << 20;
    let cap = crate::cap_spec(d.path(), 64 << 20, zone);
    let pool = mpool::Pool::create("filled", &cap, &mpool::CreateOptions::default()).unwrap();
    let full = pool.mblock_capacity(mpool::MediaClass::Capacity).unwrap() as usize;
    assert!(
        full >= 1 << 20 && full.is_multiple_of(4096),
        "capacity {full}"
    );
    let id = pool.mblock_alloc(mpool::MediaClass::Capacity).unwrap();
    let mut buf = mpool::AlignedBuf::new(full, 4096);
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i as u64).wrapping_mul(0x2545_F491) as u8 ^ (i >> 9) as u8;
    }
    let want = buf.to_vec();
    pool.mblock_write_aligned(id, buf).unwrap();
    let props = pool.mblock_commit(id).unwrap();
    assert_eq!(props.len, full as u64);
    pool.close().unwrap();
    let pool = mpool::Pool::open("filled", &mpool::OpenOptions::default()).unwrap();
    let mut got = mpool::AlignedBuf::new(full, 4096);
    pool.mblock_read(id, 0, &mut got[..])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(got[..] == want[..], "content differs");
    // Read against the table on the media: a missing or damaged table
    // would have been rebuilt from the content and recorded as damage.
    assert_eq!(pool.health(), "ok");
    pool.close().unwrap();
    // The last content byte sits in the last checksum block.
    let at = u64::from(props.zone) * zone + full as u64 - 1;
    flip_byte(&cap.path, at, 0x40);
    let pool = mpool::Pool::open("filled", &mpool::OpenOptions::default()).unwrap();
    let mut last = vec![0u8; 4096];
    match pool.mblock_read(id, full as u64 - 4096, &mut last) {
        Err(mpool::Error::Object(mpool::ObjectError::Checksum { offset, .. })) => {
            assert_eq!(offset, full as u64 - 4096)
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
    // The whole mblock in one aligned read (one request of 4 MiB): refused
    // at the same block, and no unverified byte is left in the buffer (the
    // blocks that verified may be there).
    let mut all = mpool::AlignedBuf::new(full, 4096);
    match pool.mblock_read(id, 0, &mut all[..]) {
        Err(mpool::Error::Object(mpool::ObjectError::Checksum { offset, .. })) => {
            assert_eq!(offset, full as u64 - 4096)
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
    assert!(
        all[full - 4096..].iter().all(|&b| b == 0),
        "damaged bytes left in the buffer"
    );
    assert!(
        all[..full - 4096]
            .iter()
            .zip(&want)
            .all(|(&g, &w)| g == 0 || g == w),
        "bytes in the buffer that are not the content"
    );
}

/// XOR byte `at` of the file at `path` with `mask`, behind the pool's back.
fn flip_byte(path: &std::path::Path, at: u64, mask: u8) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, at).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[b[0] ^ mask], at).unwrap();
}

/// A checksum mismatch this process records is forgotten by its own
/// delete of that mblock at once, even right after another delete found
/// no record (deletes look at the record at most every 100 ms; the
/// process's own records mark it).
#[test]
fn a_mismatch_recorded_here_is_forgotten_by_a_delete_right_after() {
    let _env = crate::env_lock();
    let (_d, cap) = setup();
    let zone = cap.zone_size;
    let pool = Pool::create("forget", &cap, &CreateOptions::default()).unwrap();
    let mut ids = Vec::new();
    for seed in 0..2u8 {
        let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
        pool.mblock_write(id, &data(64 << 10, seed)).unwrap();
        ids.push((id, pool.mblock_commit(id).unwrap().zone));
    }
    pool.close().unwrap();
    let (bad, bad_zone) = ids[0];
    flip_byte(&cap.path, u64::from(bad_zone) * zone + 100, 1);
    let pool = Pool::open("forget", &OpenOptions::default()).unwrap();
    // A delete that finds no record of mismatches (and remembers that).
    pool.mblock_delete(ids[1].0).unwrap();
    assert_eq!(pool.health(), "ok");
    let mut buf = vec![0u8; 4096];
    assert!(matches!(
        pool.mblock_read(bad, 0, &mut buf),
        Err(Error::Object(ObjectError::Checksum { .. }))
    ));
    assert_eq!(pool.health(), "degraded (1 checksum error(s))");
    pool.mblock_delete(bad).unwrap();
    assert_eq!(
        pool.health(),
        "ok",
        "the deleted mblock's mismatch is forgotten"
    );
}
