//! `Device::submit_beside` performs every request and runs the caller's
//! `side` exactly once, on every engine and on the fault device (whose
//! default runs it after the batch): with valid batches, with a request
//! the device refuses, and with a `side` that does device I/O of its own
//! on the same thread (a small write, and a batch large enough to take
//! the thread's io_uring ring).

use crate::io_common;

use io_common::{engines, open_new, scratch};
use mpool::dev::{Device, FaultDevice};
use mpool::io::{AlignedBuf, IoReq};

const BLOCK: usize = 4096;

fn fill(i: u64) -> u8 {
    (i as u8).wrapping_mul(7).wrapping_add(1)
}

fn check_device(dev: &dyn Device, label: &str) {
    // The batch: 16 writes at blocks 0..16. The side: one write at block
    // 100, then a 512 KiB batch at blocks 200.. (past the size the auto
    // engine serves without the ring).
    let batch: Vec<IoReq> = (0..16u64)
        .map(|i| IoReq::write(i * 4096, AlignedBuf::from_slice(&[fill(i); BLOCK], 4096)))
        .collect();
    let mut sides = 0;
    let out = dev.submit_beside(batch, &mut || {
        sides += 1;
        dev.write_slice(100 * 4096, &[fill(100); BLOCK]).unwrap();
        let big: Vec<IoReq> = vec![IoReq::write(
            200 * 4096,
            AlignedBuf::from_slice(&[fill(200); 128 * BLOCK], 4096),
        )];
        for mut r in dev.submit(big) {
            r.take_result().unwrap();
        }
    });
    assert_eq!(sides, 1, "{label}: side ran once");
    assert_eq!(out.len(), 16, "{label}: every request comes back");
    for (i, mut r) in out.into_iter().enumerate() {
        assert_eq!(r.offset, i as u64 * 4096, "{label}: order kept");
        r.take_result()
            .unwrap_or_else(|e| panic!("{label}: write {i}: {e}"));
    }
    let mut back = vec![0u8; 4096 * 328];
    dev.read_slice(0, &mut back).unwrap();
    for b in 0..328u64 {
        let want = match b {
            0..16 => fill(b),
            100 => fill(100),
            200..328 => fill(200),
            _ => 0,
        };
        let got = &back[(b as usize) * BLOCK..][..BLOCK];
        assert!(
            got.iter().all(|&x| x == want),
            "{label}: block {b} holds {} where {want} was expected",
            got[0]
        );
    }

    // A refused request (misaligned) fails alone; side still runs once.
    let batch = vec![
        IoReq::write(300 * 4096, AlignedBuf::from_slice(&[9; BLOCK], 4096)),
        IoReq::write(100, AlignedBuf::from_slice(&[9; BLOCK], 4096)),
    ];
    let mut sides = 0;
    let out = dev.submit_beside(batch, &mut || sides += 1);
    assert_eq!(sides, 1, "{label}: side ran once beside a refused request");
    let results: Vec<bool> = out
        .into_iter()
        .map(|mut r| r.take_result().is_ok())
        .collect();
    assert_eq!(
        results,
        vec![true, false],
        "{label}: only the refused one fails"
    );

    // An empty batch still runs side.
    let mut sides = 0;
    let out = dev.submit_beside(Vec::new(), &mut || sides += 1);
    assert!(out.is_empty());
    assert_eq!(sides, 1, "{label}: side ran once for an empty batch");
}

#[test]
fn side_runs_once_and_every_request_lands() {
    let dir = scratch();
    for engine in engines() {
        let (_p, dev) = open_new(dir.path(), &format!("beside-{engine}"), 4 << 20, engine);
        check_device(&dev, &format!("file/{engine}"));
    }
    let fault = FaultDevice::new(4 << 20, 4096);
    check_device(&fault, "fault");
    // A file in memory (tmpfs) writes first and runs the side after.
    match tempfile::Builder::new()
        .prefix("mpool-io-beside-")
        .tempdir_in("/dev/shm")
    {
        Ok(shm) => {
            for engine in engines() {
                let (_p, dev) = open_new(shm.path(), &format!("beside-{engine}"), 4 << 20, engine);
                check_device(&dev, &format!("tmpfs/{engine}"));
            }
        }
        Err(e) => eprintln!("SKIPPED: no /dev/shm here ({e}); the in-memory file was not tested"),
    }
}
