//! Zero-copy mblock reads into owned aligned buffers through an
//! `MblockReader` (`Pool::mblock_reader`): aligned and unaligned offsets on
//! both media classes read the content exactly, each buffer coming back;
//! a buffer may run past the content up to its alignment and those bytes
//! come back zero whatever the media holds; a bad read is refused by
//! `push` before any I/O; device errors are typed, each with its read.

use crate::pool_common;

use mpool::dev::{Device, FaultDevice};
use mpool::io::AlignedBuf;
use mpool::{AlignedRead, Error, MblockId, MediaClass, ObjectError, Pool, StorageError};
use std::sync::Arc;

const ZONE: u64 = 64 * 1024;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

struct Setup {
    cap: Arc<FaultDevice>,
    stg: Arc<FaultDevice>,
    pool: Pool,
}

fn setup() -> Setup {
    let cap = Arc::new(FaultDevice::new(48 * ZONE, 4096));
    let stg = Arc::new(FaultDevice::new(16 * ZONE, 512));
    let pool = pool_common::two_class_pool("aligned", cap.clone(), stg.clone(), ZONE);
    Setup { cap, stg, pool }
}

fn commit(pool: &Pool, class: MediaClass, data: &[u8]) -> MblockId {
    let id = pool.mblock_alloc(class).unwrap();
    pool.mblock_write(id, data).unwrap();
    pool.mblock_commit(id).unwrap();
    id
}

/// What a refused read's error must match.
type Expect = fn(&Error) -> bool;

fn read(id: MblockId, offset: u64, len: usize, align: usize) -> AlignedRead {
    let mut buf = AlignedBuf::new(len, align);
    buf.fill(0xEE); // whatever the buffer held must not survive the read
    AlignedRead { id, offset, buf }
}

/// Push every read through a reader of depth `depth` and take them all:
/// completed reads (in completion order) and the errors of failed ones.
fn read_all(pool: &Pool, reads: Vec<AlignedRead>, depth: usize) -> Vec<mpool::Result<AlignedRead>> {
    let mut rd = pool.mblock_reader(depth).unwrap();
    for r in reads {
        rd.push(r).unwrap();
    }
    let out: Vec<_> = rd.by_ref().collect();
    assert!(rd.is_idle());
    out
}

/// The one read of `r`, through a reader.
fn read_one(pool: &Pool, r: AlignedRead) -> AlignedRead {
    let mut out = read_all(pool, vec![r], 8);
    assert_eq!(out.len(), 1);
    out.pop().unwrap().unwrap()
}

#[test]
fn aligned_and_unaligned_reads_return_the_content() {
    let s = setup();
    let a = pattern(40_000, 3);
    let b = pattern(9_999, 8);
    let ida = commit(&s.pool, MediaClass::Capacity, &a);
    let idb = commit(&s.pool, MediaClass::Staging, &b);
    // (id, content, offset, len, buffer alignment)
    let cases: Vec<(MblockId, &[u8], u64, usize, usize)> = vec![
        (ida, &a, 0, 4096, 4096),      // straight into the buffer
        (ida, &a, 8192, 16384, 4096),  // several sectors
        (ida, &a, 4096, 4096, 512),    // buffer aligned less than a sector: bounce
        (ida, &a, 100, 4096, 4096),    // unaligned offset: bounce
        (ida, &a, 36_864, 3136, 4096), // up to the end of the content
        (idb, &b, 512, 1024, 512),     // 512-byte sectors
        (idb, &b, 7, 512, 512),        // unaligned on staging
        (idb, &b, 0, 9_999, 512),      // the whole mblock, padded to 10240
        (ida, &a, 0, 40_000, 4096),    // the whole mblock, padded to 40960
    ];
    let reads = cases
        .iter()
        .map(|c| read(c.0, c.2, c.3, c.4))
        .collect::<Vec<_>>();
    let ptrs: Vec<*const u8> = reads.iter().map(|r| r.buf.as_ptr()).collect();
    let out = read_all(&s.pool, reads, 4);
    assert_eq!(out.len(), cases.len());
    let mut seen = vec![false; cases.len()];
    for r in out {
        let r = r.unwrap();
        // Reads come back in completion order: each buffer is its own.
        let i = ptrs
            .iter()
            .position(|p| *p == r.buf.as_ptr())
            .expect("each buffer comes back");
        assert!(!seen[i], "a buffer came back twice");
        seen[i] = true;
        let c = &cases[i];
        assert_eq!(r.id, c.0);
        assert_eq!(r.offset, c.2);
        let off = c.2 as usize;
        let inside = (c.1.len() - off).min(r.buf.len());
        assert!(
            r.buf[..inside] == c.1[off..off + inside],
            "case {:?}",
            (c.2, c.3, c.4)
        );
        assert!(r.buf[inside..].iter().all(|&x| x == 0), "padding is zero");
    }
    assert!(seen.iter().all(|&x| x));
    // A reader given nothing has nothing to give.
    let mut rd = s.pool.mblock_reader(32).unwrap();
    assert!(rd.is_idle());
    assert!(rd.next().is_none());
}

#[test]
fn bytes_past_the_content_read_zero_whatever_the_media_holds() {
    let s = setup();
    let data = pattern(10_000, 5);
    let id = commit(&s.pool, MediaClass::Capacity, &data);
    let base = u64::from(s.pool.object_props(id).unwrap().zone) * ZONE;
    // Stale bytes after the content: in its last sector's padding (not
    // covered by the content checksum) and in the rest of the zone.
    let mut junk = AlignedBuf::new(ZONE as usize - 8192, 4096);
    junk.fill(0xA5);
    junk[..10_000 - 8192].copy_from_slice(&data[8192..]);
    s.cap.write_at(base + 8192, &mut junk).unwrap();
    s.cap.flush().unwrap();
    // A 16 KiB-aligned buffer may cover the content rounded up to 16 KiB:
    // 6 KiB past the content, partly past its last sector.
    let out = read_one(&s.pool, read(id, 0, 16384, 16384));
    assert!(out.buf[..10_000] == data[..], "content read back");
    assert!(out.buf[10_000..].iter().all(|&x| x == 0));
    // The same range at an unaligned offset goes through a bounce buffer.
    let out = read_one(&s.pool, read(id, 9_000, 1024, 512));
    assert!(out.buf[..1000] == data[9_000..], "content read back");
    assert!(out.buf[1000..].iter().all(|&x| x == 0));
}

#[test]
fn a_bad_read_is_refused_before_any_io() {
    let s = setup();
    let data = pattern(10_000, 9);
    let id = commit(&s.pool, MediaClass::Capacity, &data);
    let pending = s.pool.mblock_alloc(MediaClass::Capacity).unwrap();
    s.pool.mblock_write(pending, &data).unwrap();
    let mlog = s.pool.mlog_alloc(MediaClass::Capacity, ZONE).unwrap();
    let mut rd = s.pool.mblock_reader(4).unwrap();
    let before = (s.cap.stats().reads, s.stg.stats().reads);
    let bad: Vec<(AlignedRead, Expect)> = vec![
        // Past the content rounded up to the buffer's alignment (12288).
        (read(id, 8192, 8192, 4096), |e| {
            matches!(
                e,
                Error::Object(ObjectError::ReadOutOfRange { size: 10_000, .. })
            )
        }),
        // Starting past it.
        (read(id, 12_288, 4096, 4096), |e| {
            matches!(e, Error::Object(ObjectError::ReadOutOfRange { .. }))
        }),
        // Past the zone, however aligned the buffer.
        (read(id, 0, 2 * ZONE as usize, 2 * ZONE as usize), |e| {
            matches!(e, Error::Object(ObjectError::ReadOutOfRange { .. }))
        }),
        (read(id, u64::MAX - 100, 4096, 4096), |e| {
            matches!(e, Error::Object(ObjectError::ReadOutOfRange { .. }))
        }),
        (read(pending, 0, 4096, 4096), |e| {
            matches!(e, Error::Object(ObjectError::NotCommitted(_)))
        }),
    ];
    for (r, want) in bad {
        let err = rd.push(r).unwrap_err();
        assert!(want(&err), "{err:?}");
        assert!(rd.is_idle(), "a refused read is not pending");
    }
    // An mlog's ID does not become an mblock's: no read of it can be made.
    let err = MblockId::try_from(mlog.object_id()).unwrap_err();
    assert!(
        matches!(err, Error::Object(ObjectError::WrongType { .. })),
        "{err:?}"
    );
    assert_eq!(
        (s.cap.stats().reads, s.stg.stats().reads),
        before,
        "nothing was read"
    );
    s.pool.mblock_delete(id).unwrap();
    let err = rd.push(read(id, 0, 4096, 4096)).unwrap_err();
    assert!(
        matches!(err, Error::Object(ObjectError::NotFound(_))),
        "{err:?}"
    );
    assert!(rd.next().is_none());
}

#[test]
fn device_errors_are_reported() {
    let s = setup();
    let data = pattern(20_000, 1);
    let id = commit(&s.pool, MediaClass::Capacity, &data);
    let base = u64::from(s.pool.object_props(id).unwrap().zone) * ZONE;
    s.cap.fail_reads(base + 4096..base + 8192);
    for (off, align) in [(4096, 4096), (4000, 4096), (4096, 512)] {
        let out = read_all(
            &s.pool,
            vec![read(id, 0, 4096, 4096), read(id, off, 4096, align)],
            4,
        );
        assert_eq!(out.len(), 2, "each read comes back");
        let (ok, err): (Vec<_>, Vec<_>) = out.into_iter().partition(|r| r.is_ok());
        assert_eq!(err.len(), 1, "the read over the fault fails: {err:?}");
        assert!(
            matches!(err[0], Err(Error::Storage(StorageError::Dev(_)))),
            "{err:?}"
        );
        let good = ok.into_iter().next().unwrap().unwrap();
        assert_eq!(good.offset, 0);
        assert!(good.buf[..] == data[..4096], "the other read is intact");
    }
    s.cap.clear_failures();
    let out = read_one(&s.pool, read(id, 4096, 4096, 4096));
    assert!(
        out.buf[..] == data[4096..8192],
        "read after the fault cleared"
    );
}
