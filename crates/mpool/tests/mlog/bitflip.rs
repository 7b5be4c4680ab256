//! Bit rot in an mlog is never returned as data. A flipped bit in a record
//! (or block header) that a later flush set follows is reported as
//! `MlogError::Corrupt` at that record; in the last flush set it cannot be
//! told from a torn write and ends the log there (docs/format.md, "Mlog").

use mpool::dev::{Device, FaultDevice};
use mpool::mlog::{Mlog, MlogError};
use std::sync::Arc;

const EXT: std::ops::Range<u64> = 0..(16 << 10);

fn rec(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 13 + j * 5 + 1) as u8).collect()
}

fn build(sector: u32) -> (Vec<u8>, Vec<Vec<u8>>, u64) {
    let f = Arc::new(FaultDevice::new(16 << 10, sector));
    let log = Mlog::create(f.clone(), EXT, 42).unwrap();
    let sizes: &[usize] = if sector == 512 {
        &[10, 700, 1, 300, 1200, 50]
    } else {
        &[10, 5000, 1, 300, 2000, 50]
    };
    let recs: Vec<_> = sizes.iter().enumerate().map(|(i, &n)| rec(i, n)).collect();
    for r in &recs {
        log.append(r, true).unwrap(); // one flush set per record
    }
    let used = 2 * u64::from(sector) + log.len();
    drop(log);
    (f.durable_image(), recs, used)
}

/// Flip every bit position (one byte sample per 512 bytes elsewhere) of the
/// used part of a log: never wrong data; only the last record may vanish
/// silently; anything else missing comes with a Corrupt error.
#[test]
fn every_flip_is_detected_or_at_the_tail() {
    for sector in [512u32, 4096] {
        let (img, recs, used) = build(sector);
        let n = recs.len();
        let mut corrupt_seen = 0;
        for off in 0..used as usize {
            for bit in [0u8, 5] {
                let mut bad = img.clone();
                bad[off] ^= 1 << bit;
                let d: Arc<dyn Device> = Arc::new(FaultDevice::from_image(bad, sector));
                let log =
                    Mlog::open(d, EXT, 42).unwrap_or_else(|e| panic!("open, flip at {off}: {e}"));
                let mut got = Vec::new();
                let mut err = None;
                for r in log.reader().unwrap() {
                    match r {
                        Ok(x) => got.push(x),
                        Err(e) => {
                            err = Some(e);
                            break;
                        }
                    }
                }
                assert!(got.len() <= n);
                assert_eq!(got[..], recs[..got.len()], "wrong data, flip at {off}");
                match err {
                    None => assert!(
                        got.len() + 1 >= n,
                        "flip at {off} (sector {sector}) silently lost {} records",
                        n - got.len()
                    ),
                    Some(MlogError::Corrupt { .. }) => {
                        corrupt_seen += 1;
                        assert!(log.corruption().is_some());
                        assert!(matches!(
                            log.append(b"x", true),
                            Err(MlogError::Corrupt { .. })
                        ));
                    }
                    Some(e) => panic!("flip at {off}: unexpected {e}"),
                }
            }
        }
        assert!(corrupt_seen > 100, "sector {sector}: {corrupt_seen}");
    }
}

#[test]
fn corrupt_offset_names_the_bad_record_and_erase_recovers() {
    let (mut img, recs, _) = build(512);
    // Record 1 (700 bytes) starts at data offset 32 + 36 + 10 = 78; flip in its payload.
    img[1024 + 78 + 36 + 100] ^= 0x10;
    let d: Arc<dyn Device> = Arc::new(FaultDevice::from_image(img, 512));
    let log = Mlog::open(d.clone(), EXT, 42).unwrap();
    let mut rd = log.reader().unwrap();
    assert_eq!(rd.next().unwrap().unwrap(), recs[0]);
    match rd.next() {
        Some(Err(MlogError::Corrupt { offset, .. })) => assert_eq!(offset, 78),
        other => panic!("{other:?}"),
    }
    assert!(rd.next().is_none());
    log.erase(0).unwrap();
    log.append(b"fresh", true).unwrap();
    drop(log);
    let log = Mlog::open(d, EXT, 42).unwrap();
    let all: Vec<_> = log.reader().unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(all, vec![b"fresh".to_vec()]);
}

/// Rot that happens while the log is open is caught by the reader.
#[test]
fn reader_verifies_after_open() {
    let f = Arc::new(FaultDevice::new(16 << 10, 512));
    let log = Mlog::create(f.clone(), EXT, 42).unwrap();
    for i in 0..4 {
        log.append(&rec(i, 200), true).unwrap();
    }
    f.flip_bit(1024 + 32 + 36 + 5, 2);
    let r: Vec<_> = log.reader().unwrap().collect();
    assert!(matches!(r[0], Err(MlogError::Corrupt { offset: 32, .. })));
    assert_eq!(r.len(), 1);
}
