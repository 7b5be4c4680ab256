//! FaultDevice injections: bit flips, EIO by range and by operation number,
//! misdirected writes, poke, discard.

use mpool::dev::{CrashMode, DevError, Device, FaultDevice};
use mpool::io::{AlignedBuf, IoReq};

const SIZE: u64 = 64 << 10;

fn filled(v: u8, len: usize) -> AlignedBuf {
    let mut b = AlignedBuf::new(len, 512);
    b.fill(v);
    b
}

fn is_eio(r: &Result<(), DevError>, want_op: &str) -> bool {
    match r {
        Err(e @ DevError::Io { op, source, .. }) => {
            *op == want_op && source.raw_os_error() == Some(libc::EIO) && e.is_media_error()
        }
        _ => false,
    }
}

#[test]
fn flip_bit_flips_one_bit() {
    let dev = FaultDevice::new(SIZE, 512);
    dev.write_at(0, &mut filled(0x5A, 4096)).unwrap();
    dev.flush().unwrap();
    let before = dev.live_image();
    dev.flip_bit(1000, 3);
    for img in [
        dev.live_image(),
        dev.durable_image(),
        dev.reboot(CrashMode::DropAll).live_image(),
    ] {
        let diff: u32 = img
            .iter()
            .zip(&before)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        assert_eq!(diff, 1);
        assert_eq!(img[1000], 0x5A ^ 0x08);
    }
    let mut b = AlignedBuf::new(512, 512);
    dev.read_at(512, &mut b).unwrap();
    assert_eq!(b[1000 - 512], 0x5A ^ 0x08, "reads see the flip");
    dev.flip_bit(1000, 3);
    assert_eq!(dev.live_image(), before, "flipping twice restores");
    // Out of range is ignored, not a panic.
    dev.flip_bit(SIZE + 10, 0);
    assert_eq!(dev.live_image(), before);
}

#[test]
fn eio_ranges_hit_only_overlapping_requests() {
    let dev = FaultDevice::new(SIZE, 512);
    dev.write_at(4096, &mut filled(1, 4096)).unwrap();
    dev.fail_reads(4096..8192);
    dev.fail_writes(16384..16385);
    let mut b = AlignedBuf::new(4096, 512);
    assert!(
        dev.read_at(0, &mut b).is_ok(),
        "ends where the range starts"
    );
    assert!(
        dev.read_at(8192, &mut b).is_ok(),
        "starts where the range ends"
    );
    assert!(is_eio(&dev.read_at(4096, &mut b), "read"));
    assert!(is_eio(
        &dev.read_at(7680, &mut AlignedBuf::new(512, 512)),
        "read"
    ));
    assert!(is_eio(
        &dev.read_at(0, &mut AlignedBuf::new(8192, 512)),
        "read"
    ));
    // Read ranges do not fail writes, and the reverse.
    assert!(dev.write_at(4096, &mut filled(2, 4096)).is_ok());
    assert!(dev.read_at(16384, &mut b).is_ok());
    // A one-byte write range fails every write covering that byte.
    assert!(is_eio(&dev.write_at(16384, &mut filled(3, 512)), "write"));
    assert!(is_eio(&dev.write_at(12288, &mut filled(3, 8192)), "write"));
    assert!(dev.write_at(16384 + 512, &mut filled(3, 512)).is_ok());
    assert!(dev.write_at(12288, &mut filled(3, 4096)).is_ok());
    // A failed write changes nothing.
    assert!(dev.live_image()[16384..16896].iter().all(|&x| x == 0));
    // In a batch, only the overlapping request fails.
    let mut done = dev.submit(vec![
        IoReq::read(0, AlignedBuf::new(512, 512)),
        IoReq::read(4096, AlignedBuf::new(512, 512)),
        IoReq::write(16384, filled(4, 512)),
        IoReq::write(20480, filled(4, 512)),
    ]);
    let ok: Vec<bool> = done.iter_mut().map(|r| r.take_result().is_ok()).collect();
    assert_eq!(ok, [true, false, false, true]);
    dev.clear_failures();
    assert!(dev.read_at(4096, &mut b).is_ok());
    assert!(b.iter().all(|&x| x == 2));
    assert!(dev.write_at(16384, &mut filled(5, 512)).is_ok());
}

#[test]
fn fail_op_fails_exactly_that_operation() {
    for n in 1..=6u64 {
        let dev = FaultDevice::new(SIZE, 512);
        dev.fail_op(n);
        // ops: 1 write, 2 read, 3 flush, 4 discard, 5 write, 6 read
        let r = [
            dev.write_at(0, &mut filled(1, 512)),
            dev.read_at(0, &mut AlignedBuf::new(512, 512)),
            dev.flush(),
            dev.discard(4096, 512),
            dev.write_at(8192, &mut filled(2, 512)),
            dev.read_at(8192, &mut AlignedBuf::new(512, 512)),
        ];
        let names = ["write", "read", "flush", "discard", "write", "read"];
        for (i, r) in r.iter().enumerate() {
            if i as u64 + 1 == n {
                assert!(is_eio(r, names[i]), "op {n}: {r:?}");
            } else {
                assert!(r.is_ok(), "op {} with fail_op({n}): {r:?}", i + 1);
            }
        }
        assert_eq!(dev.stats().ops, 6, "failed operations still count");
        if n == 3 {
            assert_eq!(
                dev.durable_image()[0],
                0,
                "a failed flush makes nothing durable"
            );
        }
    }
}

#[test]
fn misdirected_write_lands_elsewhere() {
    let dev = FaultDevice::new(SIZE, 512);
    dev.write_at(0, &mut filled(9, 4096)).unwrap();
    dev.misdirect_next_write(32768);
    assert!(
        dev.write_at(0, &mut filled(7, 4096)).is_ok(),
        "the write reports success"
    );
    let img = dev.live_image();
    assert!(
        img[..4096].iter().all(|&x| x == 9),
        "the aimed-at place is unchanged"
    );
    assert!(
        img[32768..36864].iter().all(|&x| x == 7),
        "the data is elsewhere"
    );
    // Only the next write is misdirected, and the misdirected one is what
    // a crash keeps.
    dev.write_at(8192, &mut filled(6, 512)).unwrap();
    assert!(dev.live_image()[8192..8704].iter().all(|&x| x == 6));
    dev.flush().unwrap();
    let d = dev.durable_image();
    assert!(d[..4096].iter().all(|&x| x == 9));
    assert!(d[32768..36864].iter().all(|&x| x == 7));
}

#[test]
fn discard_zeroes_and_poke_overwrites() {
    let dev = FaultDevice::new(SIZE, 512);
    dev.write_at(0, &mut filled(0xEE, 16384)).unwrap();
    dev.flush().unwrap();
    dev.discard(4096, 4096).unwrap();
    let mut b = AlignedBuf::new(16384, 512);
    dev.read_at(0, &mut b).unwrap();
    assert!(b[..4096].iter().all(|&x| x == 0xEE));
    assert!(b[4096..8192].iter().all(|&x| x == 0));
    assert!(b[8192..].iter().all(|&x| x == 0xEE));
    assert!(matches!(
        dev.discard(100, 512),
        Err(DevError::Unaligned { .. })
    ));
    assert!(matches!(
        dev.discard(SIZE, 512),
        Err(DevError::OutOfRange { .. })
    ));
    // An unflushed discard is lost like any write.
    assert!(dev.reboot(CrashMode::DropAll).live_image()[4096..8192]
        .iter()
        .all(|&x| x == 0xEE));
    dev.flush().unwrap();
    assert!(dev.durable_image()[4096..8192].iter().all(|&x| x == 0));

    // poke: hostile bytes on the media and in reads, clipped at the end.
    dev.poke(10, b"junk");
    dev.poke(SIZE - 2, b"tail!");
    let img = dev.durable_image();
    assert_eq!(&img[10..14], b"junk");
    assert_eq!(&img[SIZE as usize - 2..], b"ta");
    assert_eq!(dev.live_image(), img);
}
