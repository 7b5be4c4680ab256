//! Per-block checksums (issue #10): a flipped byte in a committed mblock is
//! never returned as data by any read path. Each read path fails with
//! `ObjectError::Checksum` naming the damaged checksum block, reads of
//! the mblock's other blocks still succeed, the pool's health counts the
//! mismatch, and `check` reports the damaged range. Legacy mblocks (a
//! format-2 pool: a whole-content CRC only) are verified too.

use mpool::dev::{DeviceRef, FaultDevice};
use mpool::io::AlignedBuf;
use mpool::{AlignedRead, Error, MblockId, MblockRead, MediaClass, ObjectError, Pool};
use std::sync::Arc;

const ZONE: u64 = 1 << 20;
const SECTOR: u32 = 4096;
const BLOCK: u64 = 4096;
/// Content length: 24 whole 4 KiB blocks and a partial one of 1696 bytes.
const LEN: usize = 100_000;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

/// A pool of format version `version` on a fault device.
fn pool_of_version(version: u16) -> (Arc<FaultDevice>, Pool) {
    let dev = Arc::new(FaultDevice::new(24 * ZONE, SECTOR));
    let d: DeviceRef = dev.clone();
    Pool::format_on("csum", &[(Arc::clone(&d), MediaClass::Capacity, ZONE)], "").unwrap();
    if version != mpool::format::superblock::SB_VERSION {
        // As a pool of that version would have been made: the superblocks
        // say so before anything is written to the pool.
        let read = mpool::superblock::read(d.as_ref()).unwrap();
        let mut sb = read.copies[0].clone().unwrap();
        sb.version = version;
        mpool::superblock::write(d.as_ref(), &sb).unwrap();
    }
    let pool = Pool::open_on(vec![d], false).unwrap();
    assert_eq!(pool.superblock().version, version);
    (dev, pool)
}

fn commit(pool: &Pool, data: &[u8]) -> MblockId {
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(id, data).unwrap();
    pool.mblock_commit(id).unwrap();
    id
}

/// Byte offset of `id`'s zone on the device.
fn base(pool: &Pool, id: MblockId) -> u64 {
    u64::from(pool.object_props(id).unwrap().zone) * ZONE
}

/// Flip one bit of content byte `at` of `id`, on the media.
fn flip(dev: &FaultDevice, pool: &Pool, id: MblockId, at: u64) {
    dev.flip_bit(base(pool, id) + at, 2);
}

fn expect_checksum<T: std::fmt::Debug>(r: mpool::Result<T>, id: MblockId, offset: u64, len: u64) {
    match r {
        Err(Error::Object(ObjectError::Checksum {
            id: got,
            offset: o,
            len: l,
        })) => {
            assert_eq!(got, id.object_id());
            assert_eq!((o, l), (offset, len), "damaged range");
        }
        other => panic!("expected a checksum error at {offset}+{len}, got {other:?}"),
    }
}

fn read(pool: &Pool, id: MblockId, offset: u64, n: usize) -> mpool::Result<Vec<u8>> {
    let mut b = vec![0u8; n];
    pool.mblock_read(id, offset, &mut b).map(|()| b)
}

/// One aligned read through an `MblockReader` (queued when aligned to
/// whole checksum blocks, else done through a bounce buffer at push).
fn reader_read(pool: &Pool, id: MblockId, offset: u64, n: usize) -> mpool::Result<Vec<u8>> {
    let mut rd = pool.mblock_reader(4).unwrap();
    rd.push(AlignedRead {
        id,
        offset,
        // (An aligned buffer's length is a multiple of its alignment.)
        buf: AlignedBuf::new(n, n.min(4096)),
    })?;
    let r = rd.next().expect("a pushed read comes back")?;
    assert!(rd.next().is_none());
    Ok(r.buf[..].to_vec())
}

/// Every read path over the damaged block `bad` (its range) and over the
/// good block at `good`.
fn every_path_refuses(pool: &Pool, id: MblockId, data: &[u8], bad: (u64, u64), good: u64) {
    let (bo, bl) = bad;
    // mblock_read: a few bytes inside the damaged block, and all of it.
    expect_checksum(read(pool, id, bo + 3, 10), id, bo, bl);
    expect_checksum(read(pool, id, bo, bl as usize), id, bo, bl);
    // A read spanning a good block and the damaged one.
    if bo >= BLOCK {
        expect_checksum(read(pool, id, bo - 100, 200), id, bo, bl);
    }
    // The good block reads back, whole and in part.
    let g = good as usize;
    assert_eq!(read(pool, id, good, 4096).unwrap(), &data[g..g + 4096]);
    assert_eq!(read(pool, id, good + 7, 33).unwrap(), &data[g + 7..g + 40]);
    // mblock_read_batch: the damaged read fails the batch; good ones pass.
    let (mut b1, mut b2) = (vec![0u8; 4096], vec![0u8; 100]);
    let mut reads = [
        MblockRead {
            id,
            offset: good,
            buf: &mut b1,
        },
        MblockRead {
            id,
            offset: bo + 1,
            buf: &mut b2,
        },
    ];
    expect_checksum(pool.mblock_read_batch(&mut reads, 4), id, bo, bl);
    let mut reads = [MblockRead {
        id,
        offset: good,
        buf: &mut b1,
    }];
    pool.mblock_read_batch(&mut reads, 4).unwrap();
    assert_eq!(&b1[..], &data[g..g + 4096]);
    // MblockReader: a queued read of the whole block, a read that covers
    // part of it (bounce buffer), and good reads.
    expect_checksum(reader_read(pool, id, bo, 4096), id, bo, bl);
    expect_checksum(reader_read(pool, id, bo + 512, 512), id, bo, bl);
    assert_eq!(
        reader_read(pool, id, good, 4096).unwrap(),
        &data[g..g + 4096]
    );
    // A whole-mblock aligned read (runs past the content, zero there).
    let whole = data.len().div_ceil(4096) * 4096;
    expect_checksum(reader_read(pool, id, 0, whole), id, bo, bl);
    // The scrub of one mblock.
    expect_checksum(pool.mblock_verify(id), id, bo, bl);
}

fn check_reports(pool: &Pool, id: MblockId, ranges: &[(u64, u64)]) {
    let rep = pool.check(&mut |_, _| {}).unwrap();
    for &(o, l) in ranges {
        assert!(
            rep.problems.iter().any(|p| p.object == id.to_string()
                && p.problem.contains(&format!(
                    "bytes {o}..{} do not match their checksums",
                    o + l
                ))),
            "check does not report {id} {o}+{l}: {:?}",
            rep.problems
        );
        assert!(rep
            .damaged
            .iter()
            .any(|d| d.id == id.object_id() && (d.offset, d.len) == (o, l) && !d.table));
    }
    assert_eq!(rep.damaged.len(), ranges.len(), "{:?}", rep.damaged);
}

#[test]
fn a_flipped_byte_at_offset_500_fails_every_read_path_with_its_block() {
    let (dev, pool) = pool_of_version(mpool::format::superblock::SB_VERSION);
    let data = pattern(LEN, 1);
    let id = commit(&pool, &data);
    let other = commit(&pool, &pattern(5000, 2));
    assert_eq!(read(&pool, id, 0, LEN).unwrap(), data);
    assert_eq!(pool.health(), "ok");
    flip(&dev, &pool, id, 500);
    // Verified before the table was cached and after: the same.
    every_path_refuses(&pool, id, &data, (0, BLOCK), 8192);
    assert_eq!(pool.health(), "degraded (1 checksum error(s))");
    assert_eq!(pool.checksum_damage().len(), 1);
    // Another mblock is untouched.
    assert_eq!(read(&pool, other, 0, 5000).unwrap(), pattern(5000, 2));
    check_reports(&pool, id, &[(0, BLOCK)]);
    drop(pool);
    // A fresh open (the table loaded from the media) sees the same.
    let d: DeviceRef = dev.clone();
    let pool = Pool::open_on(vec![d], true).unwrap();
    every_path_refuses(&pool, id, &data, (0, BLOCK), 4096);
}

#[test]
fn a_flipped_byte_in_the_last_partial_block_names_that_block() {
    let (dev, pool) = pool_of_version(mpool::format::superblock::SB_VERSION);
    let data = pattern(LEN, 3);
    let id = commit(&pool, &data);
    flip(&dev, &pool, id, LEN as u64 - 2);
    let last = (LEN as u64 / BLOCK) * BLOCK;
    every_path_refuses(&pool, id, &data, (last, LEN as u64 - last), 0);
    check_reports(&pool, id, &[(last, LEN as u64 - last)]);
}

#[test]
fn damage_in_two_blocks_is_reported_by_check_as_two_ranges() {
    let (dev, pool) = pool_of_version(mpool::format::superblock::SB_VERSION);
    let data = pattern(LEN, 4);
    let id = commit(&pool, &data);
    flip(&dev, &pool, id, 3 * BLOCK + 10);
    flip(&dev, &pool, id, 7 * BLOCK + 4095);
    expect_checksum(read(&pool, id, 0, LEN), id, 3 * BLOCK, BLOCK);
    expect_checksum(
        read(&pool, id, 5 * BLOCK, 4 * BLOCK as usize),
        id,
        7 * BLOCK,
        BLOCK,
    );
    assert_eq!(
        read(&pool, id, 4 * BLOCK, 3 * BLOCK as usize).unwrap(),
        &data[4 * 4096..7 * 4096]
    );
    check_reports(&pool, id, &[(3 * BLOCK, BLOCK), (7 * BLOCK, BLOCK)]);
    assert_eq!(pool.health(), "degraded (2 checksum error(s))");
}

#[test]
fn a_damaged_checksum_table_is_counted_and_the_content_still_verified() {
    let (dev, pool) = pool_of_version(mpool::format::superblock::SB_VERSION);
    let data = pattern(LEN, 5);
    let id = commit(&pool, &data);
    // The table starts at the first sector boundary after the content.
    let table = (LEN as u64).div_ceil(u64::from(SECTOR)) * u64::from(SECTOR);
    flip(&dev, &pool, id, table + 4 * 3 + 1); // block 3's checksum
    drop(pool);
    let d: DeviceRef = dev.clone();
    let pool = Pool::open_on(vec![d], false).unwrap();
    // The table fails its CRC; the content, checksummed again, matches the
    // record's table CRC: every byte is returned, verified.
    assert_eq!(read(&pool, id, 0, LEN).unwrap(), data);
    assert_eq!(
        reader_read(&pool, id, 3 * BLOCK, 4096).unwrap(),
        &data[3 * 4096..4 * 4096]
    );
    assert_eq!(pool.health(), "degraded (1 checksum error(s))");
    let d = pool.checksum_damage();
    assert!(d.len() == 1 && d[0].table && d[0].offset == table, "{d:?}");
    let rep = pool.check(&mut |_, _| {}).unwrap();
    assert!(
        rep.problems
            .iter()
            .any(|p| p.object == id.to_string() && p.problem.contains("checksum table damaged")),
        "{:?}",
        rep.problems
    );
    // Now the content too: blocks whose stored and recomputed checksums
    // disagree (3: its entry; 5: its content) are refused, the rest read.
    flip(&dev, &pool, id, 5 * BLOCK + 1);
    drop(pool);
    let d: DeviceRef = dev.clone();
    let pool = Pool::open_on(vec![d], true).unwrap();
    expect_checksum(read(&pool, id, 5 * BLOCK, 10), id, 5 * BLOCK, BLOCK);
    expect_checksum(read(&pool, id, 3 * BLOCK, 10), id, 3 * BLOCK, BLOCK);
    assert_eq!(
        read(&pool, id, 4 * BLOCK, 4096).unwrap(),
        &data[4 * 4096..5 * 4096]
    );
    assert_eq!(read(&pool, id, 0, 3 * 4096).unwrap(), &data[..3 * 4096]);
}

#[test]
fn a_legacy_mblock_is_verified_by_its_whole_crc_then_by_block() {
    let (dev, pool) = pool_of_version(2);
    assert_eq!(pool.csum_block().unwrap(), None);
    let data = pattern(LEN, 6);
    let id = commit(&pool, &data);
    let props = pool.object_props(id).unwrap();
    assert_eq!(props.crc, Some(crc32c::crc32c(&data)), "a type-7 record");
    assert_eq!(props.csum_block, None);
    assert_eq!(props.capacity, ZONE, "no table: the whole zone");
    let cold = commit(&pool, &data);
    // First read: the whole content checked against its CRC, the block
    // checksums kept; later damage is then found per block.
    assert_eq!(read(&pool, id, 100, 10).unwrap(), &data[100..110]);
    flip(&dev, &pool, id, 2 * BLOCK + 500);
    every_path_refuses(&pool, id, &data, (2 * BLOCK, BLOCK), 0);
    // A legacy mblock damaged before its first read: its one CRC cannot
    // say where, so every read of it fails, naming all of it.
    flip(&dev, &pool, cold, 500);
    expect_checksum(read(&pool, cold, 8192, 10), cold, 0, LEN as u64);
    expect_checksum(reader_read(&pool, cold, 8192, 4096), cold, 0, LEN as u64);
    expect_checksum(pool.mblock_verify(cold), cold, 0, LEN as u64);
    assert_eq!(pool.health(), "degraded (2 checksum error(s))");
    let rep = pool.check(&mut |_, _| {}).unwrap();
    assert!(rep.problems.iter().any(|p| p.object == cold.to_string()
        && p.problem.contains(&format!("bytes 0..{LEN} do not match"))));
    // check reads every mblock from the media: `id` against the block
    // checksums derived while its whole CRC matched.
    assert!(rep.problems.iter().any(|p| p.object == id.to_string()
        && p.problem
            .contains(&format!("bytes {}..{} do not match", 2 * BLOCK, 3 * BLOCK))));
    // Block checksums need format version 3.
    assert!(matches!(
        pool.mblock_alloc_csum(MediaClass::Capacity, 4096),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn capacity_leaves_room_for_the_table_and_is_enforced() {
    let (_dev, pool) = pool_of_version(mpool::format::superblock::SB_VERSION);
    let cap = pool.mblock_capacity(MediaClass::Capacity).unwrap();
    // 1 MiB in 4 KiB blocks: 256 checksums, one 4 KiB sector of table.
    assert_eq!(cap, ZONE - 4096);
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    assert_eq!(pool.object_props(id).unwrap().capacity, cap);
    let data = pattern(cap as usize, 7);
    pool.mblock_write(id, &data).unwrap();
    match pool.mblock_write(id, &[1]) {
        Err(Error::Object(ObjectError::MblockFull { want, cap: c, .. })) => {
            assert_eq!((want, c), (cap + 1, cap))
        }
        other => panic!("expected MblockFull, got {other:?}"),
    }
    let props = pool.mblock_commit(id).unwrap();
    assert_eq!((props.len, props.capacity), (cap, cap));
    assert_eq!(props.csum_block, Some(4096));
    assert_eq!(read(&pool, id, 0, cap as usize).unwrap(), data);
    // A larger block: a smaller table, more room.
    let big = pool
        .mblock_alloc_csum(MediaClass::Capacity, 64 << 10)
        .unwrap();
    let cap64 = pool.object_props(big).unwrap().capacity;
    assert_eq!(
        cap64,
        pool.mblock_capacity_with(MediaClass::Capacity, 64 << 10)
            .unwrap()
    );
    assert_eq!(cap64, ZONE - 4096, "16 checksums still take a sector");
    let d = pattern(70_000, 8);
    pool.mblock_write(big, &d).unwrap();
    assert_eq!(pool.mblock_commit(big).unwrap().csum_block, Some(64 << 10));
    assert_eq!(read(&pool, big, 65_000, 2000).unwrap(), &d[65_000..67_000]);
    for bad in [0u32, 2048, 12_288, 128 << 10] {
        assert!(pool.mblock_alloc_csum(MediaClass::Capacity, bad).is_err());
        assert!(pool.set_csum_block(bad).is_err());
    }
}

#[test]
fn a_block_of_64k_verifies_a_4k_read_through_the_whole_block() {
    let (dev, pool) = pool_of_version(mpool::format::superblock::SB_VERSION);
    pool.set_csum_block(64 << 10).unwrap();
    let data = pattern(200_000, 9);
    let id = commit(&pool, &data);
    flip(&dev, &pool, id, 70_000);
    let b = 64 * 1024;
    expect_checksum(read(&pool, id, 66_000, 100), id, b, b);
    expect_checksum(reader_read(&pool, id, b, 4096), id, b, b);
    assert_eq!(reader_read(&pool, id, 0, 4096).unwrap(), &data[..4096]);
    assert_eq!(
        read(&pool, id, 131_072, 4096).unwrap(),
        &data[131_072..135_168]
    );
}

#[test]
fn the_table_cache_stays_within_its_bound() {
    let (_dev, pool) = pool_of_version(mpool::format::superblock::SB_VERSION);
    let ids: Vec<MblockId> = (0..8).map(|i| commit(&pool, &pattern(LEN, i))).collect();
    for id in &ids {
        read(&pool, *id, 0, 10).unwrap();
    }
    let all = pool.csum_cache_bytes().unwrap();
    assert!(all > 0);
    pool.set_csum_cache_bytes(all / 3).unwrap();
    assert!(pool.csum_cache_bytes().unwrap() <= all / 3);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(read(&pool, *id, 0, LEN).unwrap(), pattern(LEN, i as u8));
        assert!(pool.csum_cache_bytes().unwrap() <= all / 3);
    }
}

#[test]
fn a_deleted_mblock_leaves_the_health() {
    let (dev, pool) = pool_of_version(mpool::format::superblock::SB_VERSION);
    let id = commit(&pool, &pattern(LEN, 10));
    flip(&dev, &pool, id, 10);
    assert!(read(&pool, id, 0, 10).is_err());
    assert_eq!(pool.health(), "degraded (1 checksum error(s))");
    pool.mblock_delete(id).unwrap();
    assert_eq!(pool.health(), "ok");
}

/// A memory device whose next `flips` reads covering byte `at` return that
/// byte flipped (the media stays intact): a transient fault on the way.
#[derive(Debug)]
struct Flaky {
    inner: mpool::dev::MemDevice,
    at: std::sync::atomic::AtomicU64,
    flips: std::sync::atomic::AtomicU32,
}

impl mpool::dev::Device for Flaky {
    fn info(&self) -> &mpool::dev::DeviceInfo {
        self.inner.info()
    }
    fn submit(&self, reqs: Vec<mpool::io::IoReq>) -> Vec<mpool::io::IoReq> {
        use std::sync::atomic::Ordering::SeqCst;
        let mut out = self.inner.submit(reqs);
        let at = self.at.load(SeqCst);
        for r in &mut out {
            let inside = r.offset <= at && at < r.offset + r.buf.len() as u64;
            if r.kind == mpool::io::IoKind::Read
                && inside
                && matches!(r.result, Some(Ok(())))
                && self
                    .flips
                    .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            {
                r.buf[(at - r.offset) as usize] ^= 0x10;
            }
        }
        out
    }
    fn flush(&self) -> Result<(), mpool::DevError> {
        self.inner.flush()
    }
    fn discard(&self, offset: u64, len: u64) -> Result<(), mpool::DevError> {
        self.inner.discard(offset, len)
    }
}

#[test]
fn a_mismatch_read_once_is_read_again_and_not_counted() {
    use std::sync::atomic::Ordering::SeqCst;
    let flaky = Arc::new(Flaky {
        inner: mpool::dev::MemDevice::new(24 * ZONE, SECTOR),
        at: u64::MAX.into(),
        flips: 0.into(),
    });
    let d: DeviceRef = flaky.clone();
    Pool::format_on("flaky", &[(Arc::clone(&d), MediaClass::Capacity, ZONE)], "").unwrap();
    let pool = Pool::open_on(vec![d], false).unwrap();
    let data = pattern(LEN, 11);
    let id = commit(&pool, &data);
    read(&pool, id, 0, 1).unwrap(); // the table is loaded
    flaky.at.store(base(&pool, id) + 500, SeqCst);
    // One bad read, every path: the second read is clean.
    for path in 0..3 {
        flaky.flips.store(1, SeqCst);
        let got = match path {
            0 => read(&pool, id, 0, 4096).unwrap(),
            1 => reader_read(&pool, id, 0, 4096).unwrap(),
            _ => reader_read(&pool, id, 256, 512).unwrap(),
        };
        let off = if path == 2 { 256 } else { 0 };
        assert_eq!(got, &data[off..off + got.len()], "path {path}");
        assert_eq!(
            flaky.flips.load(SeqCst),
            0,
            "path {path}: the fault was met"
        );
    }
    assert_eq!(pool.health(), "ok", "a transient mismatch is not counted");
    // Two bad reads in a row: reported.
    flaky.flips.store(2, SeqCst);
    expect_checksum(read(&pool, id, 0, 4096), id, 0, BLOCK);
    assert_eq!(pool.health(), "degraded (1 checksum error(s))");
}

/// Two pools open in one thread whose mblocks have the same IDs and other
/// bytes: each read is verified against its own pool's table (the
/// thread's table memo tells the pools apart), also after a pool is closed
/// and opened again, and a flipped byte in one pool fails only there.
#[test]
fn pools_with_the_same_mblock_ids_verify_against_their_own_tables() {
    let (dev_a, a) = pool_of_version(mpool::format::superblock::SB_VERSION);
    let (_dev_b, b) = pool_of_version(mpool::format::superblock::SB_VERSION);
    let (da, db) = (pattern(LEN, 1), pattern(LEN, 2));
    let ia = commit(&a, &da);
    let ib = commit(&b, &db);
    assert_eq!(ia, ib, "fresh pools hand out the same first mblock ID");
    let mut buf = vec![0u8; 4096];
    for round in 0..3 {
        for (pool, data, id) in [(&a, &da, ia), (&b, &db, ib)] {
            pool.mblock_read(id, 8192, &mut buf).unwrap();
            assert_eq!(&buf[..], &data[8192..8192 + 4096], "round {round}");
        }
    }
    flip(&dev_a, &a, ia, 8192 + 10);
    expect_checksum(a.mblock_read(ia, 8192, &mut buf), ia, 8192, BLOCK);
    b.mblock_read(ib, 8192, &mut buf).unwrap();
    assert_eq!(&buf[..], &db[8192..8192 + 4096]);
    // Pool b closed, a third made (its catalog may take b's memory): the
    // third's bytes, never b's table.
    b.close().unwrap();
    let (_dev_c, c) = pool_of_version(mpool::format::superblock::SB_VERSION);
    let dc = pattern(LEN, 3);
    let ic = commit(&c, &dc);
    assert_eq!(ic, ia);
    c.mblock_read(ic, 8192, &mut buf).unwrap();
    assert_eq!(&buf[..], &dc[8192..8192 + 4096]);
}

/// A read of whole checksum blocks lands in the caller's buffer and is
/// verified there: when a block fails, the call fails and the buffer holds
/// zeros, not the damaged bytes nor the blocks around them.
#[test]
fn a_failed_whole_block_read_leaves_no_byte_in_the_buffer() {
    let (dev, pool) = pool_of_version(mpool::format::superblock::SB_VERSION);
    let data = pattern(LEN, 12);
    let id = commit(&pool, &data);
    flip(&dev, &pool, id, 3 * BLOCK + 7);
    let mut buf = AlignedBuf::new(4 * BLOCK as usize, 4096);
    buf.fill(0xAA);
    expect_checksum(
        pool.mblock_read(id, 2 * BLOCK, &mut buf),
        id,
        3 * BLOCK,
        BLOCK,
    );
    assert!(buf.iter().all(|&b| b == 0), "bytes left in the buffer");
    // The blocks before the damaged one still read, whole.
    let mut ok = AlignedBuf::new(BLOCK as usize, 4096);
    pool.mblock_read(id, 2 * BLOCK, &mut ok).unwrap();
    assert_eq!(&ok[..], &data[2 * BLOCK as usize..3 * BLOCK as usize]);
}

/// A thread remembers the records of the mblocks it read (no shared lock
/// per read); a delete, by this thread or another, is seen at once: the
/// next read of the deleted mblock fails, in every thread that read it.
#[test]
fn a_deleted_mblock_is_not_read_from_a_threads_memo() {
    let (_dev, pool) = pool_of_version(mpool::format::superblock::SB_VERSION);
    let pool = Arc::new(pool);
    let (a, b) = (
        commit(&pool, &pattern(LEN, 21)),
        commit(&pool, &pattern(LEN, 22)),
    );
    // Both read (and remembered) here and in another thread.
    read(&pool, a, 0, 4096).unwrap();
    read(&pool, b, 0, 4096).unwrap();
    let other = {
        let pool = Arc::clone(&pool);
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            read(&pool, a, 0, 4096).unwrap();
            read(&pool, b, 0, 4096).unwrap();
            done_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            // `a` was deleted by the main thread meanwhile.
            assert!(matches!(
                read(&pool, a, 0, 4096),
                Err(Error::Object(ObjectError::NotFound(_)))
            ));
            assert_eq!(read(&pool, b, 0, 4096).unwrap(), pattern(LEN, 22)[..4096]);
        });
        done_rx.recv().unwrap();
        (h, go_tx)
    };
    pool.mblock_delete(a).unwrap();
    assert!(matches!(
        read(&pool, a, 0, 4096),
        Err(Error::Object(ObjectError::NotFound(_)))
    ));
    other.1.send(()).unwrap();
    other.0.join().unwrap();
    assert_eq!(read(&pool, b, 0, 4096).unwrap(), pattern(LEN, 22)[..4096]);
}
