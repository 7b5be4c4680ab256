//! `MblockReader`: reads kept in flight across calls on an io_uring queue
//! of its own (file devices), or served at push through the device's own
//! read path (memory and fault devices, with their faults; unaligned reads);
//! every read comes back once, with its content, bytes
//! past the content zero; bad reads are refused at push; device errors
//! come back with their read; dropping a busy reader waits for it.

use crate::pool_common;

use mpool::dev::{DevError, Device, DeviceRef, FaultDevice, FileDevice, MemDevice, OpenOptions};
use mpool::io::{AlignedBuf, EngineChoice, IoReq, Queue};
use mpool::{AlignedRead, Error, MblockId, MediaClass, ObjectError, Pool, StorageError};
use std::collections::HashMap;
use std::sync::Arc;

const ZONE: u64 = 1 << 20;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 7) as u8).wrapping_mul(29).wrapping_add(seed) | 1)
        .collect()
}

fn uring() -> bool {
    if mpool::io::uring_available() {
        return true;
    }
    eprintln!("SKIPPED: io_uring is not available here; the queued path is not exercised");
    false
}

/// A pool on a file (io_uring engine) with a staging class in memory.
fn file_pool(dir: &std::path::Path) -> (Arc<FileDevice>, Pool) {
    let opts = OpenOptions {
        create_size: Some(24 * ZONE),
        engine: EngineChoice::Uring,
        direct: true,
        ..Default::default()
    };
    let file = Arc::new(FileDevice::open(dir.join("pool.img"), &opts).unwrap());
    let stg: DeviceRef = Arc::new(MemDevice::new(4 * ZONE, 512));
    let pool = pool_common::two_class_pool("reader", file.clone(), stg, ZONE);
    (file, pool)
}

fn commit(pool: &Pool, class: MediaClass, data: &[u8]) -> MblockId {
    let id = pool.mblock_alloc(class).unwrap();
    pool.mblock_write(id, data).unwrap();
    pool.mblock_commit(id).unwrap();
    id
}

#[test]
fn every_read_comes_back_once_with_its_content() {
    if !uring() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (file, pool) = file_pool(dir.path());
    assert!(file.queue(8).depth() == 8);
    let mut blocks: HashMap<MblockId, Vec<u8>> = HashMap::new();
    for (i, class) in [
        MediaClass::Capacity,
        MediaClass::Capacity,
        MediaClass::Staging,
        MediaClass::Capacity,
    ]
    .into_iter()
    .enumerate()
    {
        let data = pattern(300_000 + i * 12_345, i as u8);
        blocks.insert(commit(&pool, class, &data), data);
    }
    let ids: Vec<MblockId> = {
        let mut v: Vec<_> = blocks.keys().copied().collect();
        v.sort();
        v
    };
    let mut rd = pool.mblock_reader(8).unwrap();
    assert_eq!(rd.depth(), 8);
    assert!(rd.next().is_none(), "nothing pushed, nothing to wait for");
    let mut want: HashMap<(MblockId, u64), usize> = HashMap::new();
    let mut got = 0usize;
    let mut x = 12345u64;
    let check = |r: AlignedRead, want: &mut HashMap<(MblockId, u64), usize>| {
        let len = want.remove(&(r.id, r.offset)).expect("a read pushed once");
        assert_eq!(r.buf.len(), len);
        let data = &blocks[&r.id];
        let off = r.offset as usize;
        let inside = (data.len() - off).min(len);
        assert!(
            r.buf[..inside] == data[off..off + inside],
            "content at {off}"
        );
        assert!(r.buf[inside..].iter().all(|&b| b == 0), "zero past content");
    };
    for k in 0..200u64 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let id = ids[(x >> 33) as usize % ids.len()];
        let len = blocks[&id].len() as u64;
        // Mostly aligned 4 KiB reads; some unaligned, some at the very end.
        let (offset, size, align) = match k % 5 {
            0 => ((x >> 20) % len, 512, 512),
            1 => (len / 4096 * 4096, 4096, 4096),
            _ => (((x >> 20) % (len / 4096)) * 4096, 4096, 4096),
        };
        if want.contains_key(&(id, offset)) {
            continue;
        }
        let mut buf = AlignedBuf::new(size, align);
        buf.fill(0xEE);
        want.insert((id, offset), buf.len());
        rd.push(AlignedRead { id, offset, buf }).unwrap();
        assert!(rd.pending() <= want.len());
        if k % 3 == 0 {
            if let Some(r) = rd.next() {
                check(r.unwrap(), &mut want);
                got += 1;
            }
        }
    }
    rd.submit().unwrap();
    for r in rd.by_ref() {
        check(r.unwrap(), &mut want);
        got += 1;
    }
    assert!(want.is_empty(), "{} reads never came back", want.len());
    assert!(rd.is_idle());
    assert!(got > 100);
}

#[test]
fn bad_reads_are_refused_at_push_and_the_reader_goes_on() {
    let dev = Arc::new(FaultDevice::new(24 * ZONE, 4096));
    let d: DeviceRef = dev.clone();
    Pool::format_on("rdf", &[(d.clone(), MediaClass::Capacity, ZONE)], "").unwrap();
    let pool = Pool::open_on(vec![d], false).unwrap();
    let data = pattern(50_000, 3);
    let id = commit(&pool, MediaClass::Capacity, &data);
    let pending = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    let mut rd = pool.mblock_reader(4).unwrap();
    let read = |id, offset| AlignedRead {
        id,
        offset,
        buf: AlignedBuf::new(4096, 4096),
    };
    assert!(matches!(
        rd.push(read(id, 53_248)),
        Err(Error::Object(ObjectError::ReadOutOfRange { .. }))
    ));
    assert!(matches!(
        rd.push(read(pending, 0)),
        Err(Error::Object(ObjectError::NotCommitted(_)))
    ));
    assert!(rd.is_idle());
    // A device error comes back with its read; the others are fine.
    let base = u64::from(pool.object_props(id).unwrap().zone) * ZONE;
    dev.fail_reads(base + 8192..base + 12288);
    rd.push(read(id, 4096)).unwrap();
    rd.push(read(id, 8192)).unwrap();
    rd.push(read(id, 12288)).unwrap();
    let mut ok = 0;
    let mut failed = 0;
    for r in rd {
        match r {
            Ok(r) => {
                let off = r.offset as usize;
                assert!(r.buf[..] == data[off..off + 4096]);
                ok += 1;
            }
            Err(Error::Storage(StorageError::Dev(_))) => failed += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((ok, failed), (2, 1));
}

#[test]
fn dropping_a_busy_reader_waits_for_its_reads() {
    if !uring() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_file, pool) = file_pool(dir.path());
    // As much as an mblock holds (its zone, less its checksum table).
    let cap = pool.mblock_capacity(MediaClass::Capacity).unwrap();
    let data = pattern(cap as usize, 9);
    let id = commit(&pool, MediaClass::Capacity, &data);
    for _ in 0..20 {
        let mut rd = pool.mblock_reader(32).unwrap();
        for k in 0..32u64 {
            rd.push(AlignedRead {
                id,
                offset: k * 16384,
                buf: AlignedBuf::new(16384, 4096),
            })
            .unwrap();
        }
        rd.submit().unwrap();
        drop(rd);
    }
    // The pool is intact and reads on.
    let mut rd = pool.mblock_reader(2).unwrap();
    rd.push(AlignedRead {
        id,
        offset: 0,
        buf: AlignedBuf::new(4096, 4096),
    })
    .unwrap();
    let r = rd.next().unwrap().unwrap();
    assert!(r.buf[..] == data[..4096]);
}

/// A file in a fresh directory holding `len` bytes of pattern `seed`,
/// open for reading (buffered: the queue needs no O_DIRECT).
fn file_of(len: usize, seed: u8) -> (tempfile::TempDir, std::fs::File, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.img");
    let content = pattern(len, seed);
    std::fs::write(&path, &content).unwrap();
    let f = std::fs::File::open(&path).unwrap();
    (dir, f, content)
}

#[test]
fn io_queue_reads_tags_short_files_and_drop() {
    if !uring() {
        return;
    }
    let (_dir, f, content) = file_of(64 * 1024, 5);
    let mut q = Queue::for_file(&f, 4).unwrap();
    // The queue holds the file open itself.
    drop(f);
    assert_eq!(q.depth(), 4);
    // An empty buffer comes back at once: there is nothing to read.
    let back = q
        .push(IoReq::read(0, AlignedBuf::empty(4096)), 8)
        .unwrap_err();
    assert!(back.buf.is_empty());
    assert_eq!(q.in_flight(), 0);
    for k in 0..4u64 {
        q.push(IoReq::read(k * 8192, AlignedBuf::new(4096, 4096)), 100 + k)
            .unwrap();
    }
    // Full: the fifth comes back.
    let back = q
        .push(IoReq::read(0, AlignedBuf::new(4096, 4096)), 9)
        .unwrap_err();
    assert_eq!(back.buf.len(), 4096);
    let mut out = Vec::new();
    while q.in_flight() > 0 {
        q.reap(1, &mut out).unwrap();
    }
    out.sort_by_key(|(t, _)| *t);
    for (k, (tag, mut req)) in out.into_iter().enumerate() {
        assert_eq!(tag, 100 + k as u64);
        req.take_result().unwrap();
        let off = k * 8192;
        assert!(req.buf[..] == content[off..off + 4096]);
    }
    // Past the end of the file: an error, not a hang.
    q.push(IoReq::read(1 << 20, AlignedBuf::new(4096, 4096)), 1)
        .unwrap();
    let mut out = Vec::new();
    q.reap(1, &mut out).unwrap();
    let (_, mut req) = out.pop().unwrap();
    assert!(req.take_result().is_err());
    // Dropped with requests in flight.
    for k in 0..4u64 {
        q.push(IoReq::read(k * 4096, AlignedBuf::new(4096, 4096)), k)
            .unwrap();
    }
    q.reap(0, &mut Vec::new()).unwrap();
    drop(q);
}

#[test]
fn registered_buffers_are_handed_out_reused_and_read_into() {
    if !uring() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_file, pool) = file_pool(dir.path());
    let data = pattern(300_000, 4);
    let id = commit(&pool, MediaClass::Capacity, &data);
    let mut rd = pool.mblock_reader(4).unwrap();
    assert!(rd.take_buf().is_none(), "none set up yet");
    assert!(rd.register_buffers(0, 4096).is_err());
    assert!(rd.register_buffers(3, usize::MAX).is_err());
    let registered = rd.register_buffers(3, 4096).unwrap();
    assert!(registered, "io_uring registers 12 KiB of buffers");
    assert!(rd.register_buffers(3, 4096).is_err(), "once per reader");
    let bufs: Vec<AlignedBuf> = (0..3).map(|_| rd.take_buf().unwrap()).collect();
    assert!(rd.take_buf().is_none(), "all three are in use");
    for (k, buf) in bufs.into_iter().enumerate() {
        assert_eq!(buf.len(), 4096);
        let offset = 8192 * k as u64;
        rd.push(AlignedRead { id, offset, buf }).unwrap();
    }
    let mut back = Vec::new();
    for r in rd.by_ref() {
        let r = r.unwrap();
        let off = r.offset as usize;
        assert!(r.buf[..] == data[off..off + 4096], "content at {off}");
        back.push(r.buf);
    }
    assert_eq!(back.len(), 3);
    // Dropped, on another thread too, a buffer is free again.
    let one = back.pop().unwrap();
    std::thread::spawn(move || drop(one)).join().unwrap();
    let again = rd.take_buf().expect("a dropped buffer is free again");
    drop(back);
    rd.push(AlignedRead {
        id,
        offset: 299_008,
        buf: again,
    })
    .unwrap();
    let r = rd.next().unwrap().unwrap();
    assert!(r.buf[..992] == data[299_008..]);
    assert!(r.buf[992..].iter().all(|&b| b == 0));
    // Buffers outlive their reader.
    drop(rd);
    assert_eq!(r.buf.len(), 4096);
}

#[test]
fn io_queue_fixed_buffers() {
    if !uring() {
        return;
    }
    let (_dir, f, content) = file_of(64 * 1024, 8);
    let mut q = Queue::for_file(&f, 4).unwrap();
    // The queue holds the file open itself.
    drop(f);
    assert!(q.take_buf().is_none(), "nothing registered yet");
    q.register_buffers(2, 8192, 4096).unwrap();
    assert!(q.register_buffers(2, 8192, 4096).is_err());
    let (a, b) = (q.take_buf().unwrap(), q.take_buf().unwrap());
    assert!(q.take_buf().is_none());
    q.push(IoReq::read(8192, a), 1).unwrap();
    q.push(IoReq::read(40960, b), 2).unwrap();
    // A plain buffer on the same queue goes as an ordinary read.
    q.push(IoReq::read(0, AlignedBuf::new(4096, 4096)), 3)
        .unwrap();
    let mut out = Vec::new();
    while q.in_flight() > 0 {
        q.reap(1, &mut out).unwrap();
    }
    out.sort_by_key(|(t, _)| *t);
    for (tag, mut req) in out {
        req.take_result().unwrap();
        let off = req.offset as usize;
        let n = req.buf.len();
        assert!(req.buf[..] == content[off..off + n], "tag {tag}");
    }
}

/// Queued reads go through the device's own read path on a fault device:
/// they are counted by it, an injected EIO comes back from the reader as
/// that read's error (the others are fine), and after a crash every read
/// fails with the crash.
#[test]
fn fault_device_faults_reach_queued_reads() {
    let dev = Arc::new(FaultDevice::new(24 * ZONE, 4096));
    let d: DeviceRef = dev.clone();
    Pool::format_on("rdq", &[(d.clone(), MediaClass::Capacity, ZONE)], "").unwrap();
    let pool = Pool::open_on(vec![d], false).unwrap();
    let data = pattern(64 * 1024, 6);
    let id = commit(&pool, MediaClass::Capacity, &data);
    let base = u64::from(pool.object_props(id).unwrap().zone) * ZONE;
    let mut rd = pool.mblock_reader(8).unwrap();
    let push = |rd: &mut mpool::MblockReader<'_>, k: u64| {
        rd.push(AlignedRead {
            id,
            offset: k * 4096,
            buf: AlignedBuf::new(4096, 4096),
        })
        .unwrap()
    };
    // Healthy: every read served by the device itself (after the first
    // read of the mblock, which loads its checksum table).
    pool.mblock_read(id, 0, &mut [0u8; 1]).unwrap();
    let before = dev.stats().reads;
    for k in 0..6 {
        push(&mut rd, k);
    }
    let mut n = 0;
    for r in rd.by_ref() {
        let r = r.unwrap();
        let off = r.offset as usize;
        assert!(r.buf[..] == data[off..off + 4096], "content at {off}");
        n += 1;
    }
    assert_eq!(n, 6);
    assert_eq!(dev.stats().reads, before + 6, "the device served them");
    // EIO on one 4 KiB block of the mblock.
    dev.fail_reads(base + 8192..base + 12288);
    for k in 0..6 {
        push(&mut rd, k);
    }
    let (mut ok, mut eio) = (0, 0);
    for r in rd.by_ref() {
        match r {
            Ok(r) => {
                assert_ne!(r.offset, 8192);
                let off = r.offset as usize;
                assert!(r.buf[..] == data[off..off + 4096], "content at {off}");
                ok += 1;
            }
            Err(Error::Storage(StorageError::Dev(DevError::Io {
                op, offset, source, ..
            }))) => {
                assert_eq!((op, offset), ("read", base + 8192));
                assert_eq!(source.raw_os_error(), Some(5), "EIO: {source}");
                eio += 1;
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((ok, eio), (5, 1));
    // A crash: every queued read fails with it.
    dev.clear_failures();
    dev.crash_now();
    for k in 0..3 {
        push(&mut rd, k);
    }
    let crashed = rd
        .by_ref()
        .filter(|r| {
            matches!(
                r,
                Err(Error::Storage(StorageError::Dev(DevError::Crashed { .. })))
            )
        })
        .count();
    assert_eq!(crashed, 3);
    assert!(rd.is_idle());
}

/// The queue of a file device checks requests like `Device::submit`: a
/// misaligned or out-of-range read completes at once with its typed error.
#[test]
fn file_device_queue_checks_requests() {
    let dir = tempfile::tempdir().unwrap();
    for engine in [EngineChoice::Sync, EngineChoice::Auto, EngineChoice::Uring] {
        if engine == EngineChoice::Uring && !uring() {
            continue;
        }
        let opts = OpenOptions {
            create_size: Some(1 << 20),
            engine,
            ..Default::default()
        };
        let file = FileDevice::open(dir.path().join(format!("q-{engine}.img")), &opts).unwrap();
        let mut w = file.alloc_buf(8192);
        w.fill(0x5A);
        file.write_at(4096, &mut w).unwrap();
        let mut q = file.queue(4);
        q.push(IoReq::read(4096, AlignedBuf::new(8192, 4096)), 1)
            .unwrap();
        q.push(IoReq::read(100, AlignedBuf::new(4096, 4096)), 2)
            .unwrap();
        q.push(IoReq::read(1 << 20, AlignedBuf::new(4096, 4096)), 3)
            .unwrap();
        let mut out = Vec::new();
        while q.in_flight() > 0 {
            q.reap(1, &mut out).unwrap();
        }
        out.sort_by_key(|(t, _)| *t);
        let mut res: Vec<_> = out
            .into_iter()
            .map(|(_, mut r)| {
                let (k, o) = (r.kind, r.offset);
                let res = r.take_result();
                (
                    r,
                    res.map_err(|e| mpool::dev::from_req_err(file.info(), k, o, e)),
                )
            })
            .collect();
        let (r1, res1) = res.remove(0);
        res1.unwrap();
        assert!(r1.buf.iter().all(|&b| b == 0x5A), "{engine}");
        assert!(
            matches!(res[0].1, Err(DevError::Unaligned { .. })),
            "{engine}"
        );
        assert!(
            matches!(res[1].1, Err(DevError::OutOfRange { .. })),
            "{engine}"
        );
    }
}
