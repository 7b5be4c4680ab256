//! A fully allocated file on a file system in memory is mapped
//! (`FileDevice::is_mapped`, engine `"mmap"`): its reads and writes are
//! copies through the mapping, coherent with the file, with the checks and
//! errors of the system calls; discards keep its blocks; its flushes make
//! no `fdatasync` (an unmapped file's do); a read-only open
//! refuses writes; a sparse file is not mapped; a pool on a mapped file
//! keeps its objects across a close and a reopen; a mapped file takes
//! writes of any bytes at any offset. Skipped, loudly, where
//! `/dev/shm` is not a tmpfs.

use crate::io_common::{allocated, shm_scratch};
use mpool::dev::{DevError, Device, DeviceRef, FileDevice, OpenOptions};
use mpool::io::{AlignedBuf, IoReq};
use mpool::{MediaClass, Pool};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

fn open(path: &Path, read_only: bool) -> FileDevice {
    FileDevice::open(
        path,
        &OpenOptions {
            read_only,
            ..OpenOptions::default()
        },
    )
    .expect("open")
}

/// A sparse file of 1 MiB made by the device's own create.
fn sparse(path: &Path) -> FileDevice {
    FileDevice::open(
        path,
        &OpenOptions {
            create_size: Some(1 << 20),
            ..OpenOptions::default()
        },
    )
    .expect("create a sparse file")
}

fn pattern(len: usize, seed: u8) -> AlignedBuf {
    let mut b = AlignedBuf::new(len, 4096);
    for (i, x) in b.iter_mut().enumerate() {
        *x = (i as u8).wrapping_mul(31).wrapping_add(seed);
    }
    b
}

fn errors(dev: &FileDevice, done: &mut [IoReq]) -> Vec<Result<(), DevError>> {
    done.iter_mut()
        .map(|r| {
            let (k, o) = (r.kind, r.offset);
            r.take_result()
                .map_err(|e| mpool::dev::from_req_err(dev.info(), k, o, e))
        })
        .collect()
}

#[test]
fn a_fully_allocated_file_in_memory_is_mapped_and_coherent() {
    let Some(dir) = shm_scratch("a_fully_allocated_file_in_memory_is_mapped_and_coherent") else {
        return;
    };
    let size = 1u64 << 20;
    let path = allocated(dir.path(), "dev.img", size);
    let dev = open(&path, false);
    assert!(
        dev.is_mapped(),
        "a fully allocated tmpfs file was not mapped"
    );
    assert_eq!(dev.info().engine, "mmap");

    // write_at / read_at, and the file sees the same bytes.
    let mut w = pattern(8192, 7);
    dev.write_at(4096, &mut w).unwrap();
    let mut r = dev.alloc_buf(8192);
    dev.read_at(4096, &mut r).unwrap();
    assert!(r[..] == w[..], "read back differs");
    let file = std::fs::read(&path).unwrap();
    assert!(
        file[4096..12288] == w[..],
        "the file does not hold the mapped write"
    );

    // A batch keeps its order and reports each invalid request's error.
    let mut done = dev.submit(vec![
        IoReq::write(16384, pattern(4096, 9)),
        IoReq::read(4096, AlignedBuf::new(8192, 4096)),
        IoReq::read(size, AlignedBuf::new(4096, 4096)),
        IoReq::write(512, pattern(4096, 1)),
    ]);
    assert_eq!(done.len(), 4);
    assert!(done[1].buf[..] == w[..], "the batch's read differs");
    let errs = errors(&dev, &mut done);
    assert!(errs[0].is_ok() && errs[1].is_ok(), "{errs:?}");
    assert!(
        matches!(errs[2], Err(DevError::OutOfRange { .. })),
        "{errs:?}"
    );
    assert!(
        matches!(errs[3], Err(DevError::Unaligned { .. })),
        "{errs:?}"
    );
    let file = std::fs::read(&path).unwrap();
    assert!(file[16384..20480] == pattern(4096, 9)[..]);
    assert!(
        file[0..4096].iter().all(|&b| b == 0),
        "the unaligned write landed"
    );

    // Slices from any memory (no O_DIRECT alignment needed).
    let data: Vec<u8> = (0..4096u32).map(|i| (i % 253) as u8).collect();
    dev.write_slice(20480, &data).unwrap();
    let mut back = vec![0u8; 4096];
    dev.read_slice(20480, &mut back).unwrap();
    assert_eq!(back, data);
    assert!(matches!(
        dev.write_slice(size - 2048, &data),
        Err(DevError::Unaligned { .. } | DevError::OutOfRange { .. })
    ));

    // A discard keeps the blocks (and so the bytes) of a mapped file.
    dev.discard(4096, 8192).unwrap();
    dev.read_at(4096, &mut r).unwrap();
    assert!(r[..] == w[..], "a discard changed a mapped file");
    let m = std::fs::metadata(&path).unwrap();
    assert!(m.blocks() * 512 >= size, "a discard punched a hole");
    // tmpfs has nothing to write back: a mapped file's flush makes no
    // fdatasync call.
    dev.flush().unwrap();
    assert_eq!(dev.flush_stats().syncs, 0, "a mapped file's flush synced");
    drop(dev);

    // Read-only: mapped, the same bytes, writes refused.
    let ro = open(&path, true);
    assert!(ro.is_mapped());
    let mut r2 = ro.alloc_buf(8192);
    ro.read_at(4096, &mut r2).unwrap();
    assert!(r2[..] == w[..]);
    assert!(matches!(
        ro.write_at(0, &mut pattern(4096, 3)),
        Err(DevError::ReadOnly { .. })
    ));
    let mut done = ro.submit(vec![IoReq::write(0, pattern(4096, 3))]);
    assert!(matches!(
        errors(&ro, &mut done)[0],
        Err(DevError::ReadOnly { .. })
    ));
    assert!(std::fs::read(&path).unwrap()[..4096]
        .iter()
        .all(|&b| b == 0));
}

/// A mapped file takes writes of any bytes at any offset
/// (`Device::write_bytes`), inside its size and not when opened
/// read-only; announcing writes (`Device::will_write`) changes no byte.
#[test]
fn a_mapped_file_takes_writes_of_any_bytes() {
    let Some(dir) = shm_scratch("a_mapped_file_takes_writes_of_any_bytes") else {
        return;
    };
    let size = 1u64 << 20;
    let path = allocated(dir.path(), "bytes.img", size);
    let dev = open(&path, false);
    assert!(dev.is_mapped());
    dev.will_write(0, size);
    dev.will_write(size - 10, 1 << 30);
    assert!(std::fs::read(&path).unwrap().iter().all(|&b| b == 0));
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8 + 1).collect();
    dev.write_bytes(4097, &data).expect("mapped").unwrap();
    dev.write_bytes(size - 3, &data[..3])
        .expect("mapped")
        .unwrap();
    assert!(matches!(
        dev.write_bytes(size - 2, &data[..3]),
        Some(Err(DevError::Io { .. }))
    ));
    let file = std::fs::read(&path).unwrap();
    assert!(file[4097..4097 + 5000] == data[..]);
    assert!(file[..4097].iter().all(|&b| b == 0));
    assert!(file[4097 + 5000..size as usize - 3].iter().all(|&b| b == 0));
    assert!(file[size as usize - 3..] == data[..3]);
    let ro = open(&path, true);
    assert!(matches!(
        ro.write_bytes(0, &data[..1]),
        Some(Err(DevError::ReadOnly { .. }))
    ));
    // A file on a disk or a sparse one is not byte-addressable: the caller
    // writes sectors.
    let sparse_path = dir.path().join("sparse.img");
    let s = sparse(&sparse_path);
    assert!(s.write_bytes(0, &data[..1]).is_none());
    drop(s);
    assert!(std::fs::read(&sparse_path).unwrap().iter().all(|&b| b == 0));
}

#[test]
fn a_sparse_file_in_memory_is_not_mapped() {
    let Some(dir) = shm_scratch("a_sparse_file_in_memory_is_not_mapped") else {
        return;
    };
    let path = dir.path().join("sparse.img");
    let dev = sparse(&path);
    // Writing through a mapping into a hole could need memory the tmpfs
    // does not have (SIGBUS): such a file goes through system calls.
    assert!(!dev.is_mapped(), "a sparse file was mapped");
    assert_ne!(dev.info().engine, "mmap");
    let mut w = pattern(4096, 5);
    dev.write_at(8192, &mut w).unwrap();
    let mut r = dev.alloc_buf(4096);
    dev.read_at(8192, &mut r).unwrap();
    assert!(r[..] == w[..]);
    dev.flush().unwrap();
    assert_eq!(
        dev.flush_stats().syncs,
        1,
        "an unmapped file's flush did not sync"
    );
}

#[test]
fn a_pool_on_a_mapped_file_keeps_its_objects_across_a_reopen() {
    let Some(dir) = shm_scratch("a_pool_on_a_mapped_file_keeps_its_objects_across_a_reopen") else {
        return;
    };
    const ZONE: u64 = 64 * 1024;
    let path = allocated(dir.path(), "pool.img", 256 * ZONE);
    let dev = |p: &Path| -> DeviceRef {
        let d = open(p, false);
        assert!(d.is_mapped());
        Arc::new(d)
    };
    Pool::format_on("mapped", &[(dev(&path), MediaClass::Capacity, ZONE)], "").unwrap();
    let pool = Pool::open_on(vec![dev(&path)], false).unwrap();
    let mut kept = Vec::new();
    for (i, len) in [100usize, 4096, 40_000, 64 * 1024 - 4096]
        .into_iter()
        .enumerate()
    {
        let data: Vec<u8> = (0..len).map(|k| (k * 7 + i) as u8).collect();
        let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
        pool.mblock_write(id, &data).unwrap();
        pool.mblock_commit(id).unwrap();
        kept.push((id, data));
    }
    let gone = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(gone, b"aborted").unwrap();
    pool.mblock_abort(gone).unwrap();
    pool.close().unwrap();

    let pool = Pool::open_on(vec![dev(&path)], false).unwrap();
    for (id, data) in &kept {
        let mut back = vec![0u8; data.len()];
        pool.mblock_read(*id, 0, &mut back).unwrap();
        assert!(back == *data, "object {id} differs after the reopen");
    }
    assert!(
        pool.object_props(gone).is_err(),
        "the aborted mblock came back"
    );
    pool.close().unwrap();
}
