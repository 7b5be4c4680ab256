//! Mirrored logs: every record twice; one damaged copy of a record never
//! loses it, in any flush set, the last included.

use super::*;
use crate::dev::{CrashMode, FaultDevice};

const EXT: Range<u64> = 0..(64 << 10);

fn rec(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 29 + j * 11 + 3) as u8).collect()
}

fn read_all(log: &Mlog) -> (Vec<Vec<u8>>, Option<String>) {
    let mut out = Vec::new();
    for r in log.reader().unwrap() {
        match r {
            Ok(x) => out.push(x),
            Err(e) => return (out, Some(e.to_string())),
        }
    }
    (out, None)
}

/// A mirrored log holding `sizes` records, one flush set each; its durable
/// image and the records.
fn build(sector: u32, sizes: &[usize]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let f = Arc::new(FaultDevice::new(EXT.end, sector));
    let log = Mlog::create_with(f.clone(), EXT, 77, true).unwrap();
    assert!(log.is_mirrored());
    let recs: Vec<_> = sizes.iter().enumerate().map(|(i, &n)| rec(i, n)).collect();
    for r in &recs {
        log.append(r, true).unwrap();
    }
    drop(log);
    (f.durable_image(), recs)
}

fn open_img(img: Vec<u8>, sector: u32) -> Mlog {
    Mlog::open(Arc::new(FaultDevice::from_image(img, sector)), EXT, 77).unwrap()
}

#[test]
fn mirrored_round_trip_reopen_and_erase() {
    for sector in [512u32, 4096] {
        let f = Arc::new(FaultDevice::new(EXT.end, sector));
        let log = Mlog::create_with(f.clone(), EXT, 5, true).unwrap();
        let sizes = [0usize, 1, 35, 36, 100, 443, 444, 445, 480, 1000, 5000, 3];
        let recs: Vec<_> = sizes.iter().enumerate().map(|(i, &n)| rec(i, n)).collect();
        let mut plain_len = 0;
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(log.append(r, i % 3 == 0).unwrap(), Lsn(i as u64));
            plain_len += r.len() as u64 + REC_HDR_LEN;
        }
        // Both copies count.
        assert!(log.len() >= 2 * plain_len, "{} < 2 * {plain_len}", log.len());
        assert_eq!(log.records(), recs.len() as u64);
        assert_eq!(read_all(&log), (recs.clone(), None));
        let mut rd = log.seek_read(5).unwrap();
        assert_eq!(rd.next_record().unwrap().unwrap(), (Lsn(5), recs[5].clone()));
        drop(rd);
        drop(log);
        let d: Arc<dyn Device> = Arc::new(f.reboot(CrashMode::DropAll));
        let log = Mlog::open(d.clone(), EXT, 5).unwrap();
        assert!(log.is_mirrored());
        assert!(log.corruption().is_none());
        assert_eq!(read_all(&log).0, recs);
        // Appends after a reopen (a new epoch) are mirrored too.
        log.append(b"after", true).unwrap();
        drop(log);
        let log = Mlog::open(d.clone(), EXT, 5).unwrap();
        assert_eq!(read_all(&log).0.last().unwrap(), b"after");
        // An erase may change the flag; the header says it.
        log.erase_with(0, false).unwrap();
        log.append(b"plain", true).unwrap();
        drop(log);
        let log = Mlog::open(d.clone(), EXT, 5).unwrap();
        assert!(!log.is_mirrored());
        assert_eq!(read_all(&log).0, vec![b"plain".to_vec()]);
        log.erase_with(0, true).unwrap();
        drop(log);
        let log = Mlog::open(d, EXT, 5).unwrap();
        assert!(log.is_mirrored());
        assert!(read_all(&log).0.is_empty());
    }
}

#[test]
fn mirrored_records_are_at_most_half_the_log() {
    let f = Arc::new(FaultDevice::new(EXT.end, 512));
    let log = Mlog::create_with(f.clone(), EXT, 5, true).unwrap();
    let max = log.max_record();
    assert!(max < Geom { bs: 512, nblocks: 126 }.max_record() / 2 + 512);
    assert!(matches!(
        log.append(&vec![1u8; max as usize + 1], true),
        Err(MlogError::RecordTooLarge { .. })
    ));
    log.append(&vec![1u8; max as usize], true).unwrap();
    assert!(matches!(
        log.append(b"x", true),
        Err(MlogError::LogFull { .. })
    ));
    drop(log);
    let log = Mlog::open(f, EXT, 5).unwrap();
    assert_eq!(read_all(&log).0, vec![vec![1u8; max as usize]]);
}

/// Where the copies of record `i` are (data-area positions of the headers).
fn copies(sector: u32, sizes: &[usize], i: usize) -> (u64, u64) {
    let g = Geom {
        bs: u64::from(sector),
        nblocks: EXT.end / u64::from(sector) - 2,
    };
    let mut p = 0u64;
    for (k, &n) in sizes.iter().enumerate() {
        let h = g.hdr_pos(p).unwrap();
        let h2 = g.copy_pos(h, n as u64).unwrap();
        if k == i {
            return (h, h2);
        }
        p = g.rec_end(h2, n as u64).unwrap();
    }
    unreachable!()
}

/// Every byte of every record's either copy (and of the block headers),
/// one flipped at a time, in every flush set, the last included: the log
/// opens clean with exactly its records, and appends after them.
#[test]
fn one_damaged_copy_anywhere_loses_nothing() {
    for sector in [512u32, 4096] {
        let sizes: &[usize] = if sector == 512 {
            &[10, 700, 1, 300, 1200, 50, 22]
        } else {
            &[10, 5000, 1, 300, 2000, 50, 22]
        };
        let (img, recs) = build(sector, sizes);
        let data = 2 * sector as usize;
        let (_, last_copy) = copies(sector, sizes, sizes.len() - 1);
        let used = data + (last_copy as usize + 36 + sizes[sizes.len() - 1]);
        let mut flips = 0;
        for off in data..used {
            let mut bad = img.clone();
            bad[off] ^= 0x21;
            let log = open_img(bad, sector);
            assert!(
                log.corruption().is_none(),
                "sector {sector} flip at {off}: {:?}",
                log.corruption()
            );
            assert_eq!(read_all(&log), (recs.clone(), None), "sector {sector} flip at {off}");
            let sc = log.lock().open_tail;
            assert_eq!(sc, Some(recs.len() as u64 - 1));
            flips += 1;
            // Appends go on after the last record.
            log.append(b"next", true).unwrap();
            let (got, err) = read_all(&log);
            assert!(err.is_none(), "flip at {off}: {err:?}");
            assert_eq!(got.len(), recs.len() + 1);
        }
        assert!(flips > 1000, "{flips} flips");
    }
}

#[test]
fn the_primary_damaged_is_read_from_the_copy_the_copy_damaged_is_skipped() {
    let sizes = [100usize, 200, 300];
    let (img, recs) = build(512, &sizes);
    let data = 1024usize;
    let (p1, c1) = copies(512, &sizes, 1);
    for at in [p1, c1] {
        // Payload byte of record 1 (first copy, then second copy).
        let mut bad = img.clone();
        bad[data + at as usize + 36 + 50] ^= 1;
        let f = Arc::new(FaultDevice::from_image(bad, 512));
        let log = Mlog::open(f.clone(), EXT, 77).unwrap();
        assert_eq!(read_all(&log), (recs.clone(), None));
        // Rot after the open: readers use the other copy too.
        f.flip_bit(2 * 512 + at + 36 + 60, 3);
        assert_eq!(read_all(&log), (recs.clone(), None));
    }
}

#[test]
fn both_copies_damaged_before_a_later_flush_set_is_corrupt() {
    let sizes = [100usize, 200, 300, 40];
    let (img, recs) = build(512, &sizes);
    let data = 1024usize;
    let (p1, c1) = copies(512, &sizes, 1);
    let mut bad = img.clone();
    bad[data + p1 as usize + 40] ^= 1;
    bad[data + c1 as usize + 40] ^= 1;
    let log = open_img(bad, 512);
    let (off, _) = log.corruption().expect("corruption reported");
    assert_eq!(off, p1, "the failure names the record's first copy");
    let (got, err) = read_all(&log);
    assert_eq!(got, recs[..1].to_vec());
    assert!(err.is_some_and(|e| e.contains("corrupt")));
    assert!(matches!(log.append(b"x", true), Err(MlogError::Corrupt { .. })));
}

#[test]
fn a_damaged_last_copy_is_overwritten_by_the_next_epoch_and_reopens() {
    let sizes = [100usize, 200];
    let (img, recs) = build(512, &sizes);
    let (_, c1) = copies(512, &sizes, 1);
    let mut bad = img;
    bad[1024 + c1 as usize + 3] ^= 0x80;
    let f = Arc::new(FaultDevice::from_image(bad, 512));
    let log = Mlog::open(f.clone(), EXT, 77).unwrap();
    assert_eq!(read_all(&log).0, recs);
    // The log ends after the first copy: the next record goes where the
    // damaged copy was.
    assert_eq!(log.len(), c1);
    log.append(b"third", true).unwrap();
    log.append(b"fourth", false).unwrap();
    drop(log);
    for mode in [CrashMode::DropAll, CrashMode::KeepAll] {
        let log = Mlog::open(Arc::new(f.reboot(mode)), EXT, 77).unwrap();
        let (got, err) = read_all(&log);
        assert!(err.is_none());
        assert_eq!(got[..2], recs[..]);
        assert_eq!(got[2], b"third");
    }
    // The record written in place of the lost copy is found from its own
    // copy when its first copy rots.
    let d: Arc<dyn Device> = f.clone();
    let img = f.durable_image();
    let mut bad = img;
    bad[1024 + c1 as usize + 36 + 2] ^= 4;
    drop(d);
    let log = open_img(bad, 512);
    let (got, err) = read_all(&log);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(got[2], b"third");
    assert_eq!(got.len(), 4);
}

/// A torn or lost last flush set of a mirrored log: whatever pieces land,
/// the log opens clean with the acknowledged records and a prefix of the
/// rest, and appends after them survive a reboot.
#[test]
fn torn_tails_of_mirrored_logs_are_prefixes() {
    for sector in [512u32, 4096] {
        for seed in 0..200u64 {
            let f = Arc::new(FaultDevice::new(EXT.end, sector));
            let log = Mlog::create_with(f.clone(), EXT, 9, true).unwrap();
            let mut recs = Vec::new();
            for i in 0..6 {
                let r = rec(i, 30 + (seed as usize * 37 + i * 101) % 900);
                log.append(&r, true).unwrap();
                recs.push(r);
            }
            for i in 6..10 {
                let r = rec(i, 1 + (seed as usize * 53 + i * 71) % 1500);
                log.append(&r, false).unwrap();
                recs.push(r);
            }
            f.crash_after(f.stats().ops + 1 + seed % 3);
            let _ = log.flush();
            drop(log);
            let mode = CrashMode::Random {
                keep: 0.6,
                tear: 0.8,
                seed,
            };
            let d: Arc<dyn Device> = Arc::new(f.reboot(mode));
            let log = Mlog::open(d.clone(), EXT, 9).unwrap();
            assert!(log.corruption().is_none(), "seed {seed}");
            let (got, err) = read_all(&log);
            assert!(err.is_none(), "seed {seed}: {err:?}");
            assert!(got.len() >= 6 && got.len() <= 10, "seed {seed}");
            assert_eq!(got[..], recs[..got.len()], "seed {seed}");
            log.append(b"post", true).unwrap();
            drop(log);
            let log = Mlog::open(d, EXT, 9).unwrap();
            let (again, err) = read_all(&log);
            assert!(err.is_none());
            assert_eq!(again.len(), got.len() + 1, "seed {seed}");
            assert_eq!(again.last().unwrap(), b"post");
        }
    }
}

#[test]
fn mirrored_images_decode_and_old_readers_refuse_them() {
    let (img, recs) = build(512, &[10, 600, 3]);
    let (res, got) = decode_image(&img, 512, 77).unwrap();
    assert_eq!(got, recs);
    assert_eq!(res.records, 3);
    // The header says version 2 (older code reads version 1 only).
    assert_eq!(
        u32::from_le_bytes(img[8..12].try_into().unwrap()),
        format::LOG_VERSION_FLAGS
    );
}

#[test]
fn last_flush_set_covers_the_last_records() {
    let f = Arc::new(FaultDevice::new(EXT.end, 512));
    let log = Mlog::create_with(f.clone(), EXT, 5, true).unwrap();
    assert_eq!(log.last_flush_set().unwrap(), None);
    log.append(&[1u8; 600], true).unwrap();
    log.append(&[2u8; 10], false).unwrap();
    log.append(&[3u8; 10], true).unwrap();
    let r = log.last_flush_set().unwrap().unwrap();
    let base = 2 * 512;
    // Record 0's two copies end at 1368 (block 2), where the last flush
    // set starts; its 4 copies of 46 bytes end at 1552, in block 3.
    assert_eq!(r, base + 2 * 512..base + 4 * 512);
}
