//! Out-of-range and unaligned requests fail with typed errors while the
//! valid requests of the same batch still complete; a read-only device
//! refuses writes and discards.

use crate::io_common;

use io_common::{engines, open, open_new, pattern, read_back, req_result, scratch};
use mpool::dev::{DevError, Device};
use mpool::io::{AlignedBuf, EngineChoice, IoReq};

const SIZE: u64 = 4 << 20;

fn mixed_batch(engine: EngineChoice) {
    let dir = scratch();
    let (_p, dev) = open_new(dir.path(), "mixed", SIZE, engine);
    let sector = dev.sector() as usize;
    assert_eq!(sector, 4096);
    let reqs = vec![
        IoReq::write(0, pattern(1, 8192, sector)),           // 0 ok
        IoReq::write(SIZE, pattern(2, 4096, sector)),        // 1 starts at the end
        IoReq::write(8192, pattern(3, 4096, sector)),        // 2 ok
        IoReq::write(SIZE - 4096, pattern(4, 8192, sector)), // 3 runs past the end
        IoReq::write(512, AlignedBuf::new(4096, sector)),    // 4 unaligned offset
        IoReq::write(16384, AlignedBuf::new(512, 512)),      // 5 unaligned length
        IoReq::read(u64::MAX - 4095, AlignedBuf::new(4096, sector)), // 6 offset+len overflows
        IoReq::write(SIZE - 4096, pattern(7, 4096, sector)), // 7 ok, last sector
    ];
    let mut done = dev.submit(reqs);
    assert_eq!(done.len(), 8);
    let res: Vec<Result<(), DevError>> = done.iter_mut().map(|r| req_result(&dev, r)).collect();
    assert!(res[0].is_ok(), "{:?}", res[0]);
    assert!(
        matches!(res[1], Err(DevError::OutOfRange { offset, len: 4096, size, .. }) if offset == SIZE && size == SIZE),
        "{:?}",
        res[1]
    );
    assert!(res[2].is_ok(), "{:?}", res[2]);
    assert!(
        matches!(res[3], Err(DevError::OutOfRange { .. })),
        "{:?}",
        res[3]
    );
    assert!(
        matches!(
            res[4],
            Err(DevError::Unaligned {
                offset: 512,
                align: 4096,
                ..
            })
        ),
        "{:?}",
        res[4]
    );
    assert!(
        matches!(res[5], Err(DevError::Unaligned { len: 512, .. })),
        "{:?}",
        res[5]
    );
    assert!(
        matches!(res[6], Err(DevError::OutOfRange { .. })),
        "{:?}",
        res[6]
    );
    assert!(res[7].is_ok(), "{:?}", res[7]);
    // Errors are misuse, not media errors.
    assert!(!res[1].as_ref().unwrap_err().is_media_error());
    // Buffers come back with their requests, in order.
    assert_eq!(done[0].buf.len(), 8192);
    assert_eq!(done[5].buf.len(), 512);

    // The valid writes landed; the invalid ones wrote nothing.
    assert!(read_back(&dev, 0, 8192)[..] == pattern(1, 8192, sector)[..]);
    assert!(read_back(&dev, 8192, 4096)[..] == pattern(3, 4096, sector)[..]);
    assert!(read_back(&dev, SIZE - 4096, 4096)[..] == pattern(7, 4096, sector)[..]);
    assert!(read_back(&dev, 16384, 4096).iter().all(|&b| b == 0));
    assert_eq!(
        std::fs::metadata(&_p).unwrap().len(),
        SIZE,
        "nothing grew the file"
    );

    // Single-request helpers give the same typed errors.
    let mut b = AlignedBuf::new(4096, sector);
    assert!(matches!(
        dev.read_at(SIZE, &mut b),
        Err(DevError::OutOfRange { .. })
    ));
    assert_eq!(b.len(), 4096, "buffer comes back on error too");
    assert!(matches!(
        dev.write_at(100, &mut b),
        Err(DevError::Unaligned { .. })
    ));
    assert!(matches!(
        dev.discard(SIZE - 4096, 8192),
        Err(DevError::OutOfRange { .. })
    ));
    assert!(matches!(
        dev.discard(4096, 100),
        Err(DevError::Unaligned { .. })
    ));
}

#[test]
fn invalid_requests_fail_alone() {
    for e in engines() {
        eprintln!("engine {e}");
        mixed_batch(e);
    }
}

fn read_only(engine: EngineChoice) {
    let dir = scratch();
    let (path, dev) = open_new(dir.path(), "ro", SIZE, engine);
    let mut b = pattern(9, 4096, 4096);
    dev.write_at(4096, &mut b).unwrap();
    dev.flush().unwrap();
    drop(dev);

    let ro = open(&path, engine, true).expect("read-only open");
    assert!(ro.info().read_only);
    let mut w = pattern(10, 4096, 4096);
    assert!(matches!(
        ro.write_at(0, &mut w),
        Err(DevError::ReadOnly { .. })
    ));
    assert!(matches!(
        ro.discard(0, 4096),
        Err(DevError::ReadOnly { .. })
    ));
    // A batch mixing a write and a read: the read still completes.
    let mut done = ro.submit(vec![
        IoReq::write(0, pattern(11, 4096, 4096)),
        IoReq::read(4096, AlignedBuf::new(4096, 4096)),
    ]);
    assert!(matches!(
        req_result(&ro, &mut done[0]),
        Err(DevError::ReadOnly { .. })
    ));
    req_result(&ro, &mut done[1]).expect("read on a read-only device");
    assert!(done[1].buf[..] == b[..]);
    assert!(
        read_back(&ro, 0, 4096).iter().all(|&x| x == 0),
        "the write did not land"
    );
    // Flushing a read-only device is harmless.
    ro.flush().expect("flush read-only");
}

#[test]
fn read_only_refuses_writes() {
    for e in engines() {
        eprintln!("engine {e}");
        read_only(e);
    }
}
