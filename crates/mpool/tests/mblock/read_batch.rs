//! Batched mblock reads: many spans of many mblocks, on both media classes,
//! at any offsets and lengths, in one call; a bad span fails the call
//! before any I/O, with the same typed errors as a single read.

use mpool::dev::{DeviceRef, MemDevice};
use mpool::{Error, MblockRead, MediaClass, ObjectError, Pool};
use std::sync::Arc;

const ZONE: u64 = 64 * 1024;

#[test]
fn batched_reads_match_single_reads() {
    let cap: DeviceRef = Arc::new(MemDevice::new(64 * ZONE, 4096));
    let stg: DeviceRef = Arc::new(MemDevice::new(16 * ZONE, 512));
    Pool::format_on(
        "rb",
        &[
            (Arc::clone(&cap), MediaClass::Capacity, ZONE),
            (Arc::clone(&stg), MediaClass::Staging, ZONE),
        ],
        "",
    )
    .unwrap();
    let pool = Pool::open_on(vec![cap, stg], false).unwrap();
    let mut blocks = Vec::new();
    for (i, class) in [
        MediaClass::Capacity,
        MediaClass::Staging,
        MediaClass::Capacity,
    ]
    .into_iter()
    .enumerate()
    {
        let data: Vec<u8> = (0..(20_000 + i * 7_777))
            .map(|j| (j * (i + 3)) as u8)
            .collect();
        let id = pool.mblock_alloc(class).unwrap();
        pool.mblock_write(id, &data).unwrap();
        pool.mblock_commit(id).unwrap();
        blocks.push((id, data));
    }
    let spans: Vec<(usize, usize, usize)> = vec![
        (0, 0, 1),
        (1, 511, 2),
        (2, 4095, 9000),
        (0, 19_999, 1),
        (1, 0, 27_777),
        (2, 100, 0),
        (0, 8192, 4096),
    ];
    let mut bufs: Vec<Vec<u8>> = spans.iter().map(|s| vec![0u8; s.2]).collect();
    let mut reads: Vec<MblockRead<'_>> = spans
        .iter()
        .zip(bufs.iter_mut())
        .map(|(s, b)| MblockRead {
            id: blocks[s.0].0,
            offset: s.1 as u64,
            buf: b,
        })
        .collect();
    let depth = reads.len();
    pool.mblock_read_batch(&mut reads, depth).unwrap();
    drop(reads);
    for (s, b) in spans.iter().zip(&bufs) {
        assert_eq!(&b[..], &blocks[s.0].1[s.1..s.1 + s.2], "span {s:?}");
    }
    // One bad span: the whole call fails, typed like a single read.
    let mut a = [0u8; 10];
    let mut b = [0u8; 10];
    let len = blocks[0].1.len() as u64;
    let mut bad = [
        MblockRead {
            id: blocks[1].0,
            offset: 0,
            buf: &mut a,
        },
        MblockRead {
            id: blocks[0].0,
            offset: len - 5,
            buf: &mut b,
        },
    ];
    assert!(matches!(
        pool.mblock_read_batch(&mut bad, 2),
        Err(Error::Object(ObjectError::ReadOutOfRange { .. }))
    ));
    let open = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    let mut c = [0u8; 1];
    assert!(matches!(
        pool.mblock_read_batch(
            &mut [MblockRead {
                id: open,
                offset: 0,
                buf: &mut c
            }],
            1
        ),
        Err(Error::Object(ObjectError::NotCommitted(_)))
    ));
}

#[test]
fn queued_reads_on_a_file_match_the_content() {
    let d = tempfile::tempdir().unwrap();
    let file = mpool::dev::FileDevice::open(
        d.path().join("cap.img"),
        &mpool::dev::OpenOptions {
            create_size: Some(64 * ZONE),
            ..Default::default()
        },
    )
    .unwrap();
    let dev: DeviceRef = Arc::new(file);
    Pool::format_on("rq", &[(Arc::clone(&dev), MediaClass::Capacity, ZONE)], "").unwrap();
    let pool = Pool::open_on(vec![dev], false).unwrap();
    let mut blocks = Vec::new();
    // Full mblocks: their zone, less the room of their checksum table.
    let cap = pool.mblock_capacity(MediaClass::Capacity).unwrap();
    assert!((ZONE - 4096..ZONE).contains(&cap));
    for i in 0..8u64 {
        let data: Vec<u8> = (0..cap)
            .map(|j| (j as u8).wrapping_mul(i as u8 + 1))
            .collect();
        let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
        pool.mblock_write(id, &data).unwrap();
        pool.mblock_commit(id).unwrap();
        blocks.push((id, data));
    }
    for depth in [1usize, 4, 32] {
        let mut bufs = vec![vec![0u8; 4096]; 200];
        let picks: Vec<(usize, u64)> = (0..200u64)
            .map(|k| ((k * 7 % 8) as usize, (k * 13 % 15) * 4096))
            .collect();
        let mut reads: Vec<MblockRead<'_>> = picks
            .iter()
            .zip(bufs.iter_mut())
            .map(|(p, b)| MblockRead {
                id: blocks[p.0].0,
                offset: p.1,
                buf: b,
            })
            .collect();
        pool.mblock_read_batch(&mut reads, depth).unwrap();
        drop(reads);
        for (p, b) in picks.iter().zip(&bufs) {
            let at = p.1 as usize;
            assert_eq!(&b[..], &blocks[p.0].1[at..at + 4096], "depth {depth}");
        }
    }
}

#[test]
fn a_batch_of_depth_zero_is_refused() {
    let cap: DeviceRef = Arc::new(MemDevice::new(64 * ZONE, 4096));
    Pool::format_on("rz", &[(Arc::clone(&cap), MediaClass::Capacity, ZONE)], "").unwrap();
    let pool = Pool::open_on(vec![cap], false).unwrap();
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(id, &[5u8; 100]).unwrap();
    pool.mblock_commit(id).unwrap();
    let mut b = [0u8; 10];
    let mut reads = [MblockRead {
        id,
        offset: 0,
        buf: &mut b,
    }];
    assert!(matches!(
        pool.mblock_read_batch(&mut reads, 0),
        Err(Error::InvalidArgument(_))
    ));
    pool.mblock_read_batch(&mut reads, 1).unwrap();
    assert_eq!(b, [5u8; 10]);
}
