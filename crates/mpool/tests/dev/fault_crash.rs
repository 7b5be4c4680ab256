//! FaultDevice crash simulation: crash_after(n) lets exactly n operations
//! complete (each request of a batch, each flush and each discard counts);
//! reboot keeps flushed writes and loses (DropAll) or keeps (KeepAll) the rest.

use mpool::dev::{CrashMode, DevError, Device, FaultDevice};
use mpool::io::{AlignedBuf, IoReq};

const SIZE: u64 = 1 << 20;

fn filled(v: u8, len: usize) -> AlignedBuf {
    let mut b = AlignedBuf::new(len, 512);
    b.fill(v);
    b
}

fn crashed(e: &Result<(), DevError>, after: u64) -> bool {
    matches!(e, Err(DevError::Crashed { after_op }) if *after_op == after)
}

fn res(dev: &FaultDevice, r: &mut IoReq) -> Result<(), DevError> {
    let (k, o) = (r.kind, r.offset);
    r.take_result()
        .map_err(|e| mpool::dev::from_req_err(dev.info(), k, o, e))
}

#[test]
fn crash_after_counts_each_request() {
    let dev = FaultDevice::new(SIZE, 512);
    dev.crash_after(3);
    assert!(!dev.crashed());
    let reqs = (0..5u64)
        .map(|i| IoReq::write(i * 4096, filled(i as u8 + 1, 4096)))
        .collect();
    let mut done = dev.submit(reqs);
    for (i, r) in done.iter_mut().enumerate() {
        let e = res(&dev, r);
        if i < 3 {
            assert!(e.is_ok(), "request {i}: {e:?}");
        } else {
            assert!(crashed(&e, 3), "request {i}: {e:?}");
            assert!(e.unwrap_err().is_media_error());
        }
    }
    assert!(dev.crashed());
    // Every later operation fails the same way: reads, writes, flush, discard.
    let mut b = AlignedBuf::new(4096, 512);
    assert!(crashed(&dev.read_at(0, &mut b), 3));
    assert!(crashed(&dev.write_at(0, &mut b), 3));
    assert!(crashed(&dev.flush(), 3));
    assert!(crashed(&dev.discard(0, 4096), 3));
    let st = dev.stats();
    assert_eq!((st.ops, st.writes, st.flushes, st.pending), (3, 3, 0, 3));
    // Invalid requests are refused before they count (or crash anything).
    let d2 = FaultDevice::new(SIZE, 512);
    d2.crash_after(1);
    let mut done = d2.submit(vec![
        IoReq::write(SIZE, filled(1, 512)),
        IoReq::write(0, filled(1, 512)),
    ]);
    assert!(matches!(
        res(&d2, &mut done[0]),
        Err(DevError::OutOfRange { .. })
    ));
    assert!(res(&d2, &mut done[1]).is_ok());
    assert!(crashed(&d2.flush(), 1));
}

#[test]
fn crash_after_counts_flush_and_discard() {
    // ops: 1 write, 2 flush, 3 discard, 4 read -> crash_after(3) fails the read.
    let dev = FaultDevice::new(SIZE, 512);
    dev.crash_after(3);
    dev.write_at(0, &mut filled(7, 512)).unwrap();
    dev.flush().unwrap();
    dev.discard(4096, 4096).unwrap();
    let mut b = AlignedBuf::new(512, 512);
    assert!(crashed(&dev.read_at(0, &mut b), 3));
    // crash_after(0) fails the very next operation; armed late, it reports
    // the operations that really completed.
    let dev = FaultDevice::new(SIZE, 512);
    dev.crash_after(0);
    assert!(crashed(&dev.flush(), 0));
    let dev = FaultDevice::new(SIZE, 512);
    for _ in 0..5 {
        dev.read_at(0, &mut b).unwrap();
    }
    dev.crash_after(2);
    assert!(dev.crashed());
    assert!(crashed(&dev.read_at(0, &mut b), 5));
    let dev = FaultDevice::new(SIZE, 512);
    dev.read_at(0, &mut b).unwrap();
    dev.crash_now();
    assert!(crashed(&dev.read_at(0, &mut b), 1));
}

#[test]
fn reboot_keeps_flushed_drops_or_keeps_unflushed() {
    let dev = FaultDevice::new(SIZE, 512);
    dev.write_at(0, &mut filled(0xAA, 8192)).unwrap();
    dev.flush().unwrap();
    dev.write_at(8192, &mut filled(0xBB, 4096)).unwrap();
    dev.write_at(0, &mut filled(0xCC, 512)).unwrap(); // overwrites flushed data
    dev.discard(4096, 512).unwrap(); // discard of flushed data, unflushed
    assert_eq!(dev.stats().pending, 3);
    // Reads see everything, flushed or not.
    let live = dev.live_image();
    assert!(live[..512].iter().all(|&b| b == 0xCC));
    assert!(live[4096..4608].iter().all(|&b| b == 0));
    assert!(live[8192..12288].iter().all(|&b| b == 0xBB));
    assert_eq!(dev.durable_image()[..8192], [0xAA; 8192][..]);

    dev.crash_now();
    let drop_all = dev.reboot(CrashMode::DropAll);
    let img = drop_all.live_image();
    assert!(
        img[..8192].iter().all(|&b| b == 0xAA),
        "flushed data survives"
    );
    assert!(
        img[8192..].iter().all(|&b| b == 0),
        "unflushed data is lost"
    );
    assert_eq!(img, drop_all.durable_image());
    assert!(!drop_all.crashed(), "reboot brings the device back");
    assert_eq!(drop_all.stats().ops, 0);
    let mut b = AlignedBuf::new(512, 512);
    drop_all.read_at(0, &mut b).unwrap();
    assert!(b.iter().all(|&x| x == 0xAA));

    let keep_all = dev.reboot(CrashMode::KeepAll);
    assert_eq!(keep_all.live_image(), live, "KeepAll is the live image");

    // Random with keep = 1, tear = 0 is KeepAll; keep = 0 is DropAll.
    let all = CrashMode::Random {
        keep: 1.0,
        tear: 0.0,
        seed: 1,
    };
    let none = CrashMode::Random {
        keep: 0.0,
        tear: 0.5,
        seed: 1,
    };
    assert_eq!(dev.crash_image(all), live);
    assert_eq!(dev.crash_image(none), dev.durable_image());
    // The sector size carries over.
    let d4 = FaultDevice::new(SIZE, 4096).reboot(CrashMode::DropAll);
    assert_eq!(d4.sector(), 4096);
}
