//! CrashMode::Random: deterministic per seed; over many seeds it keeps some
//! unflushed writes and drops others (a later one surviving where an earlier
//! one was lost), tears writes at exactly 512-byte pieces, and never puts a
//! byte on the media that was not written.

use mpool::dev::{CrashMode, Device, FaultDevice};
use mpool::io::AlignedBuf;

const PIECE: usize = 512;
const WRITE: usize = 8 * PIECE;
const N: usize = 16;

/// Distinct bytes for (write, piece, byte): a piece copied from anywhere
/// else would show.
fn content(w: usize, len: usize) -> AlignedBuf {
    let mut b = AlignedBuf::new(len, 512);
    for (i, x) in b.iter_mut().enumerate() {
        *x = (w as u8).wrapping_mul(31) ^ (i / PIECE) as u8 ^ (i as u8).rotate_left(3) ^ 0x80;
    }
    b
}

/// Durable base plus N unflushed non-overlapping writes, and two writes
/// to the same place (an overwrite) after them.
fn setup() -> (FaultDevice, Vec<AlignedBuf>) {
    let size = (N + 2) * WRITE;
    let base: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let dev = FaultDevice::from_image(base, 512);
    let mut writes = Vec::new();
    for w in 0..N {
        let mut b = content(w, WRITE);
        dev.write_at((w * WRITE) as u64, &mut b).unwrap();
        writes.push(b);
    }
    for w in [N, N + 1] {
        let mut b = content(w, WRITE);
        dev.write_at((N * WRITE) as u64, &mut b).unwrap();
        writes.push(b);
    }
    assert_eq!(dev.stats().pending, N + 2);
    (dev, writes)
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum Fate {
    Kept,
    Dropped,
    Torn,
}

#[test]
fn random_crash_images() {
    let (dev, writes) = setup();
    let base = dev.durable_image();
    let (mut kept, mut dropped, mut torn, mut reordered) = (0, 0, 0, 0);
    let mut torn_pieces_mixed = false;
    for seed in 0..200u64 {
        let mode = CrashMode::Random {
            keep: 0.5,
            tear: 0.5,
            seed,
        };
        let img = dev.crash_image(mode);
        assert_eq!(img, dev.crash_image(mode), "seed {seed} is deterministic");
        assert_eq!(img, dev.reboot(mode).live_image());

        let mut fates = Vec::new();
        for (w, write) in writes.iter().enumerate().take(N) {
            let off = w * WRITE;
            let mut landed = 0;
            for p in 0..WRITE / PIECE {
                let r = off + p * PIECE..off + (p + 1) * PIECE;
                let got = &img[r.clone()];
                let new = &write[p * PIECE..(p + 1) * PIECE];
                if got == new {
                    landed += 1;
                } else {
                    // Piece granularity: a piece is all new or all old.
                    assert_eq!(got, &base[r], "seed {seed} write {w} piece {p} mixes bytes");
                }
            }
            fates.push(match landed {
                0 => Fate::Dropped,
                8 => Fate::Kept,
                _ => Fate::Torn,
            });
        }
        for f in &fates {
            match f {
                Fate::Kept => kept += 1,
                Fate::Dropped => dropped += 1,
                Fate::Torn => torn += 1,
            }
        }
        torn_pieces_mixed |= fates.contains(&Fate::Torn);
        if let Some(first_lost) = fates.iter().position(|f| *f == Fate::Dropped) {
            if fates[first_lost..].contains(&Fate::Kept) {
                reordered += 1;
            }
        }
        // The overwritten place holds, piece by piece, the base or one of
        // the two writes aimed at it: never anything else.
        let off = N * WRITE;
        for p in 0..WRITE / PIECE {
            let got = &img[off + p * PIECE..off + (p + 1) * PIECE];
            let ok = got == &base[off + p * PIECE..off + (p + 1) * PIECE]
                || got == &writes[N][p * PIECE..(p + 1) * PIECE]
                || got == &writes[N + 1][p * PIECE..(p + 1) * PIECE];
            assert!(
                ok,
                "seed {seed}: overwrite piece {p} holds bytes never written"
            );
        }
        // Nothing outside the written ranges changes.
        assert_eq!(img[(N + 1) * WRITE..], base[(N + 1) * WRITE..]);
    }
    eprintln!("kept {kept} dropped {dropped} torn {torn} reordered {reordered}");
    assert!(
        kept > 100 && dropped > 100 && torn > 100,
        "{kept} {dropped} {torn}"
    );
    assert!(
        reordered > 10,
        "a later write survives where an earlier one was lost"
    );
    assert!(torn_pieces_mixed);
    // Different seeds give different images.
    let a = dev.crash_image(CrashMode::Random {
        keep: 0.5,
        tear: 0.5,
        seed: 1,
    });
    let b = dev.crash_image(CrashMode::Random {
        keep: 0.5,
        tear: 0.5,
        seed: 2,
    });
    assert_ne!(a, b);
}

#[test]
fn tear_only_splits_whole_pieces() {
    // keep = 1, tear = 1: every write survives torn; over seeds, each piece
    // both lands and fails to land, always on 512-byte boundaries.
    let (dev, writes) = setup();
    let base = dev.durable_image();
    let mut seen = vec![[false; 2]; N * WRITE / PIECE];
    for seed in 0..64u64 {
        let img = dev.crash_image(CrashMode::Random {
            keep: 1.0,
            tear: 1.0,
            seed,
        });
        for (w, write) in writes.iter().enumerate().take(N) {
            for p in 0..WRITE / PIECE {
                let at = w * WRITE + p * PIECE;
                let got = &img[at..at + PIECE];
                let landed = got == &write[p * PIECE..(p + 1) * PIECE];
                assert!(landed || got == &base[at..at + PIECE]);
                seen[at / PIECE][usize::from(landed)] = true;
            }
        }
    }
    assert!(
        seen.iter().all(|s| s[0] && s[1]),
        "every piece both lands and is lost"
    );
}
