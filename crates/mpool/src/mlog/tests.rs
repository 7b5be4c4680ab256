use super::*;
use crate::dev::{CrashMode, FaultDevice, MemDevice};

fn fault(size: u64, sector: u32) -> Arc<FaultDevice> {
    Arc::new(FaultDevice::new(size, sector))
}

fn as_dev(f: &Arc<FaultDevice>) -> Arc<dyn Device> {
    f.clone()
}

fn all(log: &Mlog) -> Vec<Vec<u8>> {
    log.reader().unwrap().map(|r| r.unwrap()).collect()
}

fn rec(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}

#[test]
fn append_read_reopen_both_sector_sizes() {
    for sector in [512u32, 4096] {
        let f = fault(1 << 20, sector);
        let ext = 8192..(1 << 20);
        let log = Mlog::create(as_dev(&f), ext.clone(), 9).unwrap();
        let sizes = [
            0usize, 1, 35, 36, 100, 443, 444, 445, 480, 1000, 5000, 9000, 3,
        ];
        let recs: Vec<_> = sizes.iter().enumerate().map(|(i, &n)| rec(i, n)).collect();
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(log.append(r, i % 3 == 0).unwrap(), Lsn(i as u64));
        }
        assert_eq!(all(&log), recs);
        drop(log);
        let g = f.reboot(CrashMode::DropAll);
        let log = Mlog::open(Arc::new(g), ext, 9).unwrap();
        assert_eq!(all(&log), recs);
        assert!(log.corruption().is_none());
    }
}

#[test]
fn append_v_concatenates() {
    let f = fault(256 << 10, 512);
    let log = Mlog::create(as_dev(&f), 0..(256 << 10), 1).unwrap();
    log.append_v(&[b"ab", b"", b"cde"], true).unwrap();
    assert_eq!(all(&log), vec![b"abcde".to_vec()]);
}

#[test]
fn header_ping_pong_torn_newest_falls_back() {
    let f = fault(64 << 10, 512);
    let ext = 0..(64 << 10);
    let log = Mlog::create(as_dev(&f), ext.clone(), 3).unwrap();
    log.append(b"one", true).unwrap();
    drop(log);
    // Reopen and append: bumps the epoch into the other header copy.
    let log = Mlog::open(as_dev(&f), ext.clone(), 3).unwrap();
    log.append(b"two", true).unwrap();
    drop(log);
    let h0 = LogHeader::decode(&f.live_image()[0..512]).unwrap();
    let h1 = LogHeader::decode(&f.live_image()[512..1024]).unwrap();
    assert_ne!(h0.epoch, h1.epoch);
    // Corrupt the newest copy: the other one wins, records still read.
    let newest = if h0.epoch > h1.epoch { 0 } else { 512 };
    f.flip_bit(newest + 20, 3);
    let log = Mlog::open(as_dev(&f), ext.clone(), 3).unwrap();
    assert_eq!(all(&log), vec![b"one".to_vec(), b"two".to_vec()]);
    log.append(b"three", true).unwrap();
    drop(log);
    let log = Mlog::open(as_dev(&f), ext, 3).unwrap();
    assert_eq!(
        all(&log),
        vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
}

#[test]
fn wrong_id_and_no_header() {
    let f = fault(64 << 10, 512);
    let ext = 0..(64 << 10);
    assert!(matches!(
        Mlog::open(as_dev(&f), ext.clone(), 1),
        Err(MlogError::NoHeader { .. })
    ));
    drop(Mlog::create(as_dev(&f), ext.clone(), 1).unwrap());
    assert!(matches!(
        Mlog::open(as_dev(&f), ext.clone(), 2),
        Err(MlogError::NoHeader { .. })
    ));
    assert!(matches!(
        Mlog::open(as_dev(&f), 100..5000, 1),
        Err(MlogError::BadExtent { .. })
    ));
}

/// The tail block is rewritten by every flush; a torn rewrite (any subset of
/// its 512-byte pieces) must not lose the records acknowledged before.
#[test]
fn torn_tail_rewrite_keeps_acknowledged() {
    for seed in 0..60u64 {
        let f = fault(128 << 10, 4096);
        let ext = 0..(128 << 10);
        let log = Mlog::create(as_dev(&f), ext.clone(), 5).unwrap();
        let mut acked = Vec::new();
        for i in 0..3 {
            let r = rec(i, 300 + i * 50);
            log.append(&r, true).unwrap();
            acked.push(r);
        }
        // Crash during the flush of the next append: its write of the tail
        // block may land torn.
        let ops = f.stats().ops;
        f.crash_after(ops + 1); // the block write lands, the flush fails
        let extra = rec(99, 700);
        assert!(log.append(&extra, true).is_err());
        drop(log);
        let mode = CrashMode::Random {
            keep: 1.0,
            tear: 1.0,
            seed,
        };
        let g = Arc::new(f.reboot(mode));
        let log = Mlog::open(g.clone(), ext.clone(), 5).unwrap();
        let got = all(&log);
        assert!(got.len() == 3 || got.len() == 4, "seed {seed}");
        assert_eq!(&got[..3], &acked[..], "seed {seed}");
        if got.len() == 4 {
            assert_eq!(got[3], extra);
        }
        // Appending after recovery works and never re-exposes stale bytes.
        log.append(b"after", true).unwrap();
        drop(log);
        let log = Mlog::open(Arc::new(g.reboot(CrashMode::DropAll)), ext, 5).unwrap();
        let again = all(&log);
        assert_eq!(again.last().unwrap(), b"after");
        assert_eq!(&again[..got.len()], &got[..]);
    }
}

#[test]
fn erase_hides_old_records() {
    let f = fault(128 << 10, 512);
    let ext = 0..(128 << 10);
    let log = Mlog::create(as_dev(&f), ext.clone(), 5).unwrap();
    for i in 0..20 {
        log.append(&rec(i, 200), i % 5 == 0).unwrap();
    }
    let g0 = log.gen();
    let g1 = log.erase(10).unwrap();
    assert_eq!(g1, 10.max(g0 + 1));
    assert!(all(&log).is_empty());
    assert_eq!(log.len(), 0);
    log.append(b"x", true).unwrap();
    drop(log);
    let log = Mlog::open(as_dev(&f), ext.clone(), 5).unwrap();
    assert_eq!(all(&log), vec![b"x".to_vec()]);
    assert_eq!(log.gen(), g1);
    let g2 = log.erase(0).unwrap();
    assert_eq!(g2, g1 + 1);
    drop(log);
    let log = Mlog::open(as_dev(&f), ext, 5).unwrap();
    assert!(all(&log).is_empty());
}

#[test]
fn log_full_and_too_large() {
    let f = fault(64 << 10, 512);
    let ext = 0..(8 << 10); // 16 blocks: 14 data blocks
    let log = Mlog::create(as_dev(&f), ext.clone(), 2).unwrap();
    assert_eq!(log.capacity(), 14 * 512);
    let max = log.max_record();
    assert!(matches!(
        log.append(&vec![0; max as usize + 1], false),
        Err(MlogError::RecordTooLarge { .. })
    ));
    let mut n = 0;
    loop {
        match log.append(&rec(n, 100), false) {
            Ok(_) => n += 1,
            Err(MlogError::LogFull { .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(n > 40);
    log.sync().unwrap();
    drop(log);
    let log = Mlog::open(as_dev(&f), ext.clone(), 2).unwrap();
    assert_eq!(all(&log).len(), n);
    assert!(matches!(
        log.append(&rec(0, 100), true),
        Err(MlogError::LogFull { .. })
    ));
    log.erase(0).unwrap();
    log.append(&vec![7; max as usize], true).unwrap();
    assert_eq!(all(&log), vec![vec![7; max as usize]]);
}

#[test]
fn seek_read_and_rewind() {
    let f = fault(256 << 10, 512);
    let log = Mlog::create(as_dev(&f), 0..(256 << 10), 2).unwrap();
    let recs: Vec<_> = (0..30).map(|i| rec(i, i * 37)).collect();
    for r in &recs {
        log.append(r, false).unwrap();
    }
    let mut rd = log.seek_read(10).unwrap();
    let rest: Vec<_> = rd.by_ref().map(|r| r.unwrap()).collect();
    assert_eq!(rest, recs[10..].to_vec());
    rd.rewind();
    let (lsn, first) = rd.next_record().unwrap().unwrap();
    assert_eq!((lsn, first), (Lsn(0), recs[0].clone()));
    rd.seek(100).unwrap();
    assert!(rd.next().is_none());
}

/// A device whose flush takes a while, like a real one: sync appends from
/// many threads must then share flushes.
#[derive(Debug)]
struct SlowFlush(Arc<FaultDevice>);

impl Device for SlowFlush {
    fn info(&self) -> &crate::dev::DeviceInfo {
        self.0.info()
    }
    fn submit(&self, reqs: Vec<IoReq>) -> Vec<IoReq> {
        self.0.submit(reqs)
    }
    fn flush(&self) -> Result<(), DevError> {
        std::thread::sleep(std::time::Duration::from_millis(2));
        self.0.flush()
    }
    fn discard(&self, offset: u64, len: u64) -> Result<(), DevError> {
        self.0.discard(offset, len)
    }
}

#[test]
fn group_commit_eight_threads() {
    let f = fault(4 << 20, 4096);
    let ext = 0..(4 << 20);
    let slow: Arc<dyn Device> = Arc::new(SlowFlush(f.clone()));
    let log = Arc::new(Mlog::create(slow, ext.clone(), 8).unwrap());
    let per = 40usize;
    std::thread::scope(|s| {
        for t in 0..8usize {
            let log = log.clone();
            s.spawn(move || {
                for i in 0..per {
                    let mut r = vec![t as u8, i as u8];
                    r.extend(rec(t * 1000 + i, i % 50));
                    log.append(&r, true).unwrap();
                }
            });
        }
    });
    let st = f.stats();
    // Shared flushes: far fewer flushes than sync appends.
    assert!(st.flushes < (8 * per as u64) / 2, "flushes {}", st.flushes);
    drop(log);
    let log = Mlog::open(Arc::new(f.reboot(CrashMode::DropAll)), ext, 8).unwrap();
    let mut next = [0usize; 8];
    for r in all(&log) {
        let t = r[0] as usize;
        assert_eq!(r[1] as usize, next[t]);
        let mut want = vec![t as u8, next[t] as u8];
        want.extend(rec(t * 1000 + next[t], next[t] % 50));
        assert_eq!(r, want);
        next[t] += 1;
    }
    assert_eq!(next, [per; 8]);
}

/// On a slow device the appender that would flush waits for the others
/// seen lately to join its flush set (one flush for all of them, not one
/// per half taking turns); once they are gone, one timed-out wait lowers
/// its estimate and a lone appender flushes at once again.
#[test]
fn group_commit_gathers_every_appender_then_lets_a_lone_one_go() {
    let f = fault(8 << 20, 4096);
    let ext = 0..(8 << 20);
    let slow: Arc<dyn Device> = Arc::new(SlowFlush(f.clone()));
    let log = Arc::new(Mlog::create(slow, ext.clone(), 9).unwrap());
    let (threads, per) = (8usize, 30usize);
    std::thread::scope(|s| {
        for t in 0..threads {
            let log = log.clone();
            s.spawn(move || {
                for i in 0..per {
                    log.append(&rec(t * 1000 + i, 64), true).unwrap();
                }
            });
        }
    });
    // How many records a flush set gathers is timing (the benchmark shows
    // it: `mpool-bench mlog` on the disk); here only that sets are shared.
    let appends = (threads * per) as u64;
    assert!(f.stats().flushes * 2 < appends);
    for i in 0..10 {
        log.append(&rec(9000 + i, 64), true).unwrap();
    }
    assert_eq!(log.lock().peak_inside, 1, "the estimate did not come down");
    assert_eq!(log.lock().last_set_records, 1);
    drop(log);
    let log = Mlog::open(Arc::new(f.reboot(CrashMode::DropAll)), ext, 9).unwrap();
    assert_eq!(all(&log).len(), threads * per + 10);
}

/// A flush set larger than one `write_slice` goes as several requests;
/// it reads back whole, before and after a reopen, and survives a crash
/// once synced.
#[test]
fn a_flush_set_over_the_slice_limit_goes_as_requests() {
    let f = fault(16 << 20, 4096);
    let ext = 0..(16 << 20);
    let log = Mlog::create(as_dev(&f), ext.clone(), 10).unwrap();
    let big = rec(1, SLICE_MAX + 3 * MAX_REQ_BYTES + 100);
    log.append(&rec(0, 10), false).unwrap();
    let writes = f.stats().writes;
    log.append(&big, true).unwrap();
    assert!(f.stats().writes - writes > 1, "one request for the whole set");
    assert_eq!(all(&log), vec![rec(0, 10), big.clone()]);
    drop(log);
    let log = Mlog::open(Arc::new(f.reboot(CrashMode::DropAll)), ext, 10).unwrap();
    assert_eq!(all(&log), vec![rec(0, 10), big]);
}

#[test]
fn stale_records_of_lost_flush_never_return() {
    // Epoch 1: A synced; B and C written in one flush set; a crash loses B
    // but C lands. Reopen ends after A; D (same length as B) takes B's
    // place. C now sits exactly where D's successor would be, with the
    // right sequence number: only the epoch rule keeps it out.
    let f = fault(64 << 10, 512);
    let ext = 0..(64 << 10);
    let log = Mlog::create(as_dev(&f), ext.clone(), 4).unwrap();
    log.append(&rec(1, 600), true).unwrap();
    // B ends exactly at the end of data block 2, so C starts in block 3.
    log.append(&rec(2, 768), false).unwrap();
    log.append(&rec(3, 100), false).unwrap();
    log.sync().unwrap();
    drop(log);
    // A's header is at data offset 32 and it ends at 700: B's header is there.
    let b_hdr = 1024 + 700;
    f.poke(b_hdr, &[0u8; 36]);
    let log = Mlog::open(as_dev(&f), ext.clone(), 4).unwrap();
    assert_eq!(all(&log), vec![rec(1, 600)]);
    assert!(log.corruption().is_none(), "{:?}", log.corruption());
    // D ends where B did; its flush does not touch block 3.
    log.append(&rec(4, 768), true).unwrap();
    drop(log);
    let log = Mlog::open(as_dev(&f), ext.clone(), 4).unwrap();
    assert_eq!(all(&log), vec![rec(1, 600), rec(4, 768)]);
}

#[test]
fn memdevice_and_send_sync() {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Mlog>();
    let d: Arc<dyn Device> = Arc::new(MemDevice::new(1 << 20, 4096));
    let log = Mlog::create(d.clone(), 4096 * 4..(1 << 20), 77).unwrap();
    log.append(b"hello", true).unwrap();
    drop(log);
    let log = Mlog::open(d, 4096 * 4..(1 << 20), 77).unwrap();
    assert_eq!(all(&log), vec![b"hello".to_vec()]);
}

#[test]
fn decode_image_matches_device() {
    let f = fault(64 << 10, 512);
    let ext = 0..(64 << 10);
    let log = Mlog::create(as_dev(&f), ext.clone(), 6).unwrap();
    for i in 0..10 {
        log.append(&rec(i, i * 90), true).unwrap();
    }
    drop(log);
    let (res, recs) = decode_image(&f.durable_image(), 512, 6).unwrap();
    assert_eq!(res.records, 10);
    assert_eq!(recs.len(), 10);
    assert_eq!(recs[9], rec(9, 810));
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    fn image(sector: u32) -> (Vec<u8>, Vec<Vec<u8>>) {
        let f = fault(16 << 10, sector);
        let log = Mlog::create(as_dev(&f), 0..(16 << 10), 1).unwrap();
        let recs: Vec<_> = (0..5).map(|i| rec(i, 1 + i * 211)).collect();
        for r in &recs {
            log.append(r, true).unwrap();
        }
        drop(log);
        (f.durable_image(), recs)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Random bytes anywhere in a valid log: open and read never panic
        /// and never return anything but a prefix of the real records.
        #[test]
        fn mutated_images_never_yield_garbage(
            sector in prop_oneof![Just(512u32), Just(4096u32)],
            muts in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..8),
        ) {
            let (mut img, recs) = image(sector);
            let used = img.len();
            for (at, v) in muts {
                let i = at as usize % used;
                img[i] = v;
            }
            let _ = decode_image(&img, sector, 1);
            let d: Arc<dyn Device> = Arc::new(FaultDevice::from_image(img, sector));
            if let Ok(log) = Mlog::open(d, 0..(16 << 10), 1) {
                let mut got = Vec::new();
                for r in log.reader().unwrap() {
                    match r {
                        Ok(x) => got.push(x),
                        Err(_) => break,
                    }
                }
                prop_assert!(got.len() <= recs.len());
                prop_assert_eq!(&got[..], &recs[..got.len()]);
            }
        }

        /// Arbitrary bytes as a whole log image (what the fuzz target does).
        #[test]
        fn random_images_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..6000), sector in prop_oneof![Just(512u32), Just(4096u32)]) {
            let _ = decode_image(&bytes, sector, 0);
            // Valid header blocks in front of garbage, so the scan runs.
            let s = sector as usize;
            let mut img = bytes.clone();
            img.resize(img.len().div_ceil(s).max(3) * s, 0);
            let len = img.len() as u64;
            let hdr = LogHeader { log_id: 0, gen: 1, epoch: 1, block_size: sector, nblocks: len / u64::from(sector) - 2, mirrored: false, padded: bytes.len() % 2 == 0 };
            let mut h = vec![0u8; s];
            hdr.encode(&mut h);
            img[..s].copy_from_slice(&h);
            let _ = decode_image(&img, sector, 0);
            let d: Arc<dyn Device> = Arc::new(FaultDevice::from_image(img, sector));
            if let Ok(log) = Mlog::open(d, 0..len, 0) {
                for r in log.reader().unwrap() {
                    if r.is_err() { break; }
                }
            }
        }
    }
}

#[test]
fn create_over_an_old_log_with_the_same_id_starts_empty() {
    let f = fault(64 << 10, 512);
    let ext = 0..(64 << 10);
    let log = Mlog::create(as_dev(&f), ext.clone(), 5).unwrap();
    for i in 0..10 {
        log.append(&rec(i, 300), true).unwrap();
    }
    drop(log);
    let log = Mlog::create(as_dev(&f), ext.clone(), 5).unwrap();
    assert!(all(&log).is_empty());
    drop(log);
    let log = Mlog::open(as_dev(&f), ext, 5).unwrap();
    assert!(all(&log).is_empty());
    assert!(log.corruption().is_none());
    log.append(b"new", true).unwrap();
    assert_eq!(all(&log), vec![b"new".to_vec()]);
}

/// Write both header copies of the log at `ext` with these counters.
fn plant_headers(dev: &Arc<FaultDevice>, ext: &std::ops::Range<u64>, id: u64, gen: u64, epoch: u32) {
    let bs = 512u64;
    let hdr = LogHeader {
        log_id: id,
        gen,
        epoch,
        block_size: bs as u32,
        nblocks: (ext.end - ext.start) / bs - 2,
        mirrored: false,
        padded: true,
    };
    let reqs = (0..2)
        .map(|i| {
            let mut b = AlignedBuf::new(bs as usize, bs as usize);
            hdr.encode(&mut b);
            IoReq::write(ext.start + i * bs, b)
        })
        .collect();
    for r in dev.submit(reqs) {
        r.result.unwrap().unwrap();
    }
    dev.flush().unwrap();
}

#[test]
fn an_exhausted_epoch_refuses_appends_until_an_erase() {
    let f = fault(64 << 10, 512);
    let ext = 0..(64 << 10);
    drop(Mlog::create(as_dev(&f), ext.clone(), 5).unwrap());
    plant_headers(&f, &ext, 5, 1, u32::MAX);
    let log = Mlog::open(as_dev(&f), ext.clone(), 5).unwrap();
    // No epoch is left above u32::MAX: an append would be lost at the next
    // open, so it is refused.
    let e = log.append(b"lost?", true).unwrap_err();
    assert!(
        matches!(e, MlogError::Exhausted { counter: "epoch" }),
        "{e:?}"
    );
    // An erase starts the epochs again.
    log.erase(0).unwrap();
    log.append(b"kept", true).unwrap();
    drop(log);
    let log = Mlog::open(as_dev(&f), ext, 5).unwrap();
    assert_eq!(all(&log), vec![b"kept".to_vec()]);
}

#[test]
fn an_exhausted_generation_refuses_the_erase_and_keeps_the_records() {
    let f = fault(64 << 10, 512);
    let ext = 0..(64 << 10);
    drop(Mlog::create(as_dev(&f), ext.clone(), 6).unwrap());
    plant_headers(&f, &ext, 6, u64::MAX, 1);
    let log = Mlog::open(as_dev(&f), ext.clone(), 6).unwrap();
    log.append(b"one", true).unwrap();
    // The generation cannot rise: an erase that kept it would leave the
    // "erased" records valid.
    let e = log.erase(0).unwrap_err();
    assert!(
        matches!(e, MlogError::Exhausted { counter: "generation" }),
        "{e:?}"
    );
    drop(log);
    let log = Mlog::open(as_dev(&f), ext, 6).unwrap();
    assert_eq!(all(&log), vec![b"one".to_vec()]);
}

/// Counts the bytes written through it past `from` (a log's data area:
/// header blocks are rewritten at each new epoch, which unit tests reach
/// every few flushes).
#[derive(Debug)]
struct CountWrites {
    inner: Arc<FaultDevice>,
    from: u64,
    bytes: std::sync::atomic::AtomicU64,
}

impl Device for CountWrites {
    fn info(&self) -> &crate::dev::DeviceInfo {
        self.inner.info()
    }
    fn submit(&self, reqs: Vec<IoReq>) -> Vec<IoReq> {
        let n: u64 = reqs
            .iter()
            .filter(|r| r.kind == crate::io::IoKind::Write && r.offset >= self.from)
            .map(|r| r.buf.len() as u64)
            .sum();
        self.bytes
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        self.inner.submit(reqs)
    }
    fn flush(&self) -> Result<(), DevError> {
        self.inner.flush()
    }
    fn discard(&self, offset: u64, len: u64) -> Result<(), DevError> {
        self.inner.discard(offset, len)
    }
}

#[test]
fn a_padded_log_writes_at_most_one_block_more_than_each_record() {
    use std::sync::atomic::Ordering;
    for sector in [512u32, 4096] {
        let bs = u64::from(sector);
        let f = fault(4 << 20, sector);
        let c = Arc::new(CountWrites {
            inner: f.clone(),
            from: 2 * bs,
            bytes: Default::default(),
        });
        let ext = 0..(4 << 20);
        let log = Mlog::create(c.clone(), ext.clone(), 12).unwrap();
        assert!(log.lock().padded);
        // Records of one block exactly (the case that spilled into a third
        // block unpadded), and sizes around block multiples.
        let mut sizes = vec![bs as usize; 40];
        sizes.extend((1..60).map(|i| (i * 97) % (3 * bs as usize) + 1));
        let recs: Vec<_> = sizes.iter().enumerate().map(|(i, &n)| rec(i, n)).collect();
        for r in &recs {
            let before = c.bytes.load(Ordering::Relaxed);
            log.append(r, true).unwrap();
            let wrote = c.bytes.load(Ordering::Relaxed) - before;
            let bound = (r.len() as u64).div_ceil(bs) * bs + bs;
            assert!(
                wrote <= bound.max(bs),
                "sector {sector}: a {}-byte record wrote {wrote} bytes (bound {bound})",
                r.len()
            );
        }
        assert_eq!(all(&log), recs);
        drop(log);
        let log = Mlog::open(Arc::new(f.reboot(CrashMode::DropAll)), ext, 12).unwrap();
        assert_eq!(all(&log), recs);
        assert!(log.corruption().is_none());
    }
}

#[test]
fn a_log_of_older_code_stays_unpadded_and_readable_by_it() {
    let f = fault(256 << 10, 512);
    let ext = 0..(256 << 10);
    drop(Mlog::create(as_dev(&f), ext.clone(), 13).unwrap());
    // Headers as code without padding writes them (version 1, no flags).
    let bs = 512u64;
    let old = LogHeader {
        log_id: 13,
        gen: 7,
        epoch: 1,
        block_size: bs as u32,
        nblocks: (ext.end - ext.start) / bs - 2,
        mirrored: false,
        padded: false,
    };
    for slot in 0..2u64 {
        let mut b = AlignedBuf::new(bs as usize, bs as usize);
        old.encode(&mut b);
        f.write_at(ext.start + slot * bs, &mut b).unwrap();
    }
    f.flush().unwrap();
    let version = |f: &FaultDevice, slot: u64| {
        let img = f.live_image();
        let o = (ext.start + slot * bs) as usize + 8;
        u32::from_le_bytes(img[o..o + 4].try_into().unwrap())
    };
    let log = Mlog::open(as_dev(&f), ext.clone(), 13).unwrap();
    assert!(!log.lock().padded);
    let recs: Vec<_> = (0..20).map(|i| rec(i, 300)).collect();
    for r in &recs {
        log.append(r, true).unwrap();
    }
    log.erase(0).unwrap();
    for r in &recs {
        log.append(r, true).unwrap();
    }
    drop(log);
    // Every header copy is still version 1: older code opens the log.
    assert_eq!((version(&f, 0), version(&f, 1)), (format::LOG_VERSION, format::LOG_VERSION));
    let log = Mlog::open(as_dev(&f), ext, 13).unwrap();
    assert!(!log.lock().padded);
    assert_eq!(all(&log), recs);
}

#[test]
fn a_written_record_is_durable_only_after_a_device_flush() {
    let ext = 0..(256 << 10);
    // Written, never flushed: a crash that drops unflushed writes loses it.
    let f = fault(256 << 10, 512);
    let log = Mlog::create(as_dev(&f), ext.clone(), 21).unwrap();
    log.append(b"durable", true).unwrap();
    let w = log.append_written(&[b"written"]).unwrap().unwrap();
    assert_eq!(w, Lsn(1));
    // On the device already: a crash that keeps unflushed writes has it.
    let kept = Mlog::open(Arc::new(f.reboot(CrashMode::KeepAll)), ext.clone(), 21).unwrap();
    assert_eq!(all(&kept), vec![b"durable".to_vec(), b"written".to_vec()]);
    let lost = Mlog::open(Arc::new(f.reboot(CrashMode::DropAll)), ext.clone(), 21).unwrap();
    assert_eq!(all(&lost), vec![b"durable".to_vec()]);
    // A second one waits its turn: the log is not idle.
    assert_eq!(log.append_written(&[b"again"]).unwrap(), None);
    // A flush of the device made by someone else, reported: durable.
    f.flush().unwrap();
    log.note_flushed(w);
    let after = Mlog::open(Arc::new(f.reboot(CrashMode::DropAll)), ext.clone(), 21).unwrap();
    assert_eq!(all(&after), vec![b"durable".to_vec(), b"written".to_vec()]);
    std::mem::forget(log);
}

/// A staged record: the log writes nothing itself (the caller writes the
/// requests it hands out), takes appends meanwhile without writing them,
/// and after `done` and a reported flush the record is durable; a sync
/// append waiting behind it then goes on.
#[test]
fn a_staged_record_is_written_by_the_caller() {
    let ext = 0..(256 << 10);
    let f = fault(256 << 10, 512);
    let log = Mlog::create(as_dev(&f), ext.clone(), 24).unwrap();
    log.append(b"durable", true).unwrap();
    let st = log.stage_written(&[b"sta", b"ged"]).unwrap().unwrap();
    assert_eq!(st.lsn(), Lsn(1));
    let writes = f.stats().writes;
    // Busy: no second staged or written record, and an async append
    // waits in memory.
    assert!(log.stage_written(&[b"no"]).unwrap().is_none());
    assert_eq!(log.append_written(&[b"no"]).unwrap(), None);
    log.append(b"later", false).unwrap();
    assert_eq!(f.stats().writes, writes, "the log wrote nothing itself");
    let mut reqs = st.requests();
    assert_eq!(reqs.len(), 1);
    let mut reqs = f.submit(std::mem::take(&mut reqs));
    assert_eq!(st.done(&mut reqs).unwrap(), Lsn(1));
    let kept = Mlog::open(Arc::new(f.reboot(CrashMode::KeepAll)), ext.clone(), 24).unwrap();
    assert_eq!(all(&kept), vec![b"durable".to_vec(), b"staged".to_vec()]);
    let lost = Mlog::open(Arc::new(f.reboot(CrashMode::DropAll)), ext.clone(), 24).unwrap();
    assert_eq!(all(&lost), vec![b"durable".to_vec()]);
    f.flush().unwrap();
    log.note_flushed(Lsn(1));
    let after = Mlog::open(Arc::new(f.reboot(CrashMode::DropAll)), ext.clone(), 24).unwrap();
    assert_eq!(all(&after), vec![b"durable".to_vec(), b"staged".to_vec()]);
    // The next sync append writes the async one with it.
    log.append(b"sync", true).unwrap();
    let after = Mlog::open(Arc::new(f.reboot(CrashMode::DropAll)), ext, 24).unwrap();
    assert_eq!(
        all(&after),
        vec![
            b"durable".to_vec(),
            b"staged".to_vec(),
            b"later".to_vec(),
            b"sync".to_vec()
        ]
    );
    std::mem::forget(log);
}

/// A staged write whose request failed, or that was dropped unreported,
/// fails the log: its bytes may or may not be on the device.
#[test]
fn a_staged_write_that_failed_or_was_dropped_fails_the_log() {
    let ext = 0..(256 << 10);
    for drop_it in [false, true] {
        let f = fault(256 << 10, 512);
        let log = Mlog::create(as_dev(&f), ext.clone(), 25).unwrap();
        log.append(b"durable", true).unwrap();
        let st = log.stage_written(&[b"staged"]).unwrap().unwrap();
        if drop_it {
            drop(st);
        } else {
            let mut reqs = st.requests();
            for r in &mut reqs {
                r.result = Some(Err(std::io::Error::other("refused")));
            }
            assert!(st.done(&mut reqs).is_err());
        }
        assert!(log.append(b"more", true).is_err(), "drop {drop_it}");
        std::mem::forget(log);
    }
}

#[test]
fn the_set_after_a_written_one_is_written_only_once_that_one_is_durable() {
    // A crash at every operation of the next sync append, unflushed writes
    // kept at random: its record never survives without the written one.
    let ext = 0..(256 << 10);
    let mut saw_both = false;
    for crash_at in 0..4u64 {
        for seed in 0..30u64 {
            let f = fault(256 << 10, 512);
            let log = Mlog::create(as_dev(&f), ext.clone(), 22).unwrap();
            log.append(b"zero", true).unwrap();
            log.append_written(&[&rec(1, 700)]).unwrap().unwrap();
            f.crash_after(f.stats().ops + crash_at);
            let _ = log.append(&rec(2, 900), true);
            let mode = CrashMode::Random {
                keep: 0.5,
                tear: 0.5,
                seed,
            };
            let back = Mlog::open(Arc::new(f.reboot(mode)), ext.clone(), 22).unwrap();
            let got = all(&back);
            assert_eq!(got.first(), Some(&b"zero".to_vec()), "{crash_at}/{seed}");
            if got.len() == 3 {
                saw_both = true;
                assert_eq!(got[1], rec(1, 700));
                assert_eq!(got[2], rec(2, 900));
            } else {
                assert!(got.len() <= 2, "{crash_at}/{seed}: {got:?}");
                if let Some(r) = got.get(1) {
                    assert_eq!(*r, rec(1, 700), "{crash_at}/{seed}");
                }
            }
            std::mem::forget(log);
        }
    }
    assert!(saw_both);
}

#[test]
fn flush_and_reader_make_a_written_record_durable() {
    let ext = 0..(256 << 10);
    let f = fault(256 << 10, 512);
    let log = Mlog::create(as_dev(&f), ext.clone(), 23).unwrap();
    log.append_written(&[b"w"]).unwrap().unwrap();
    log.flush().unwrap();
    let back = Mlog::open(Arc::new(f.reboot(CrashMode::DropAll)), ext.clone(), 23).unwrap();
    assert_eq!(all(&back), vec![b"w".to_vec()]);
    // A report for a set made durable since changes nothing.
    log.note_flushed(Lsn(0));
    log.append(b"x", true).unwrap();
    let back = Mlog::open(Arc::new(f.reboot(CrashMode::DropAll)), ext, 23).unwrap();
    assert_eq!(all(&back), vec![b"w".to_vec(), b"x".to_vec()]);
    std::mem::forget(log);
}

/// On fast media an appender alone in its flush set while another sync
/// appender is around spins for it, and the other one's append flushes
/// both (one flush set for two records); a wait in which nobody came
/// lowers the appender estimate and backs off. A lone appender never
/// waits: each of its records is a flush set.
#[test]
fn sync_appenders_on_fast_media_share_flush_sets() {
    use std::sync::atomic::Ordering;
    let f = fault(16 << 20, 4096);
    let log = Arc::new(Mlog::create(as_dev(&f), 0..(16 << 20), 21).unwrap());
    let sets = |log: &Mlog| log.flushes_done.load(Ordering::Acquire);
    for i in 0..200 {
        log.append(&rec(i, 100), true).unwrap();
    }
    assert!(log.lock().flush_ns <= SPIN_MAX_NS, "a memory device is fast media");
    {
        // Fast media whatever the machine's load does to the measured
        // flush cost.
        // (Above the cost up to which flushes are made under the lock.)
        let mut g = log.lock();
        g.fixed_flush_ns = Some(5_000);
        g.flush_ns = 5_000;
    }
    let before = sets(&log);
    for i in 0..100 {
        log.append(&rec(i, 4096), true).unwrap();
    }
    assert_eq!(sets(&log) - before, 100, "a lone appender flushes each record at once");

    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("SKIPPED: sharing flush sets needs two CPUs (one spins while the other appends)");
        return;
    }
    // Another appender is around: the first waits for it (a long wait, so
    // that a loaded machine cannot end it first), the second's append
    // finds two records in the open set and flushes them together.
    {
        let mut g = log.lock();
        g.peak_inside = 2;
        g.follow_wait_ns = Some(10_000_000_000);
    }
    let before = sets(&log);
    let first = append_in_thread(&log, rec(1, 4096));
    while log.spinners.load(Ordering::Acquire) == 0 && !first.is_finished() {
        std::thread::yield_now();
    }
    let second = log.append(&rec(2, 4096), true).unwrap();
    let first = first.join().unwrap();
    assert_eq!(sets(&log) - before, 1, "two appends, one flush set");
    assert_eq!(log.lock().follow_misses, 0);

    // Nobody comes: the wait ends, the record goes alone, the estimate
    // falls to the one appender and the next chances to wait go by.
    {
        let mut g = log.lock();
        g.peak_inside = 2;
        g.follow_wait_ns = Some(1_000_000);
    }
    let before = sets(&log);
    let third = log.append(&rec(3, 4096), true).unwrap();
    assert_eq!(sets(&log) - before, 1);
    {
        let g = log.lock();
        assert_eq!((g.peak_inside, g.follow_misses, g.follow_skip), (1, 1, 1));
    }
    let recs = all(&log);
    assert_eq!(recs.len(), 200 + 100 + 3);
    for (lsn, i) in [(first, 1), (second, 2), (third, 3)] {
        assert_eq!(recs[lsn.0 as usize], rec(i, 4096));
    }
}

/// Where a flush costs about what a lock hand-off does, appenders flush
/// under the lock: each sync append is a flush set of its own, nobody
/// waits for anybody's flush, and every record lands in order.
#[test]
fn memory_speed_flushes_are_made_under_the_lock() {
    use std::sync::atomic::Ordering;
    let f = fault(16 << 20, 4096);
    let log = Arc::new(Mlog::create(as_dev(&f), 0..(16 << 20), 24).unwrap());
    log.append(b"first", true).unwrap();
    {
        let mut g = log.lock();
        g.fixed_flush_ns = Some(500);
        g.flush_ns = 500;
    }
    // The next timed flush switches the mode on.
    for i in 0..2 * FLUSH_SAMPLE as usize {
        log.append(&rec(i, 100), true).unwrap();
    }
    assert!(log.inline.load(Ordering::Relaxed));
    let before = log.flushes_done.load(Ordering::Acquire);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                (0..200)
                    .map(|i| (log.append(&rec(t * 1000 + i, 300 + i), true).unwrap(), t * 1000 + i))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let done: Vec<(Lsn, usize)> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert_eq!(
        log.flushes_done.load(Ordering::Acquire) - before,
        800,
        "one flush set per sync append"
    );
    assert!(!log.lock().flushing);
    let back = Mlog::open(Arc::new(f.reboot(CrashMode::DropAll)), 0..(16 << 20), 24).unwrap();
    let recs = all(&back);
    assert_eq!(recs.len(), 1 + 2 * FLUSH_SAMPLE as usize + 800);
    for (lsn, i) in done {
        assert_eq!(recs[lsn.0 as usize], rec(i, 300 + i % 1000));
    }
    std::mem::forget(log);
}

/// On a byte-addressable device (memory) records are framed straight onto
/// the device, with no image in between: the same appends to a memory
/// device and to one that takes only sectors leave the same bytes, and
/// read back the same.
#[test]
fn a_log_framed_onto_the_device_leaves_the_image_sector_writes_leave() {
    let size = 4u64 << 20;
    let mem = Arc::new(MemDevice::new(size, 4096));
    let f = fault(size, 4096);
    assert!(mem.write_bytes(0, &[]).is_some() && f.write_bytes(0, &[]).is_none());
    // One log (its generation is random), copied, opened on each device.
    drop(Mlog::create(as_dev(&f), 0..size, 25).unwrap());
    mem.write_slice(0, &f.live_image()).unwrap();
    let logs = [
        Mlog::open(mem.clone(), 0..size, 25).unwrap(),
        Mlog::open(as_dev(&f), 0..size, 25).unwrap(),
    ];
    assert!(logs[0].direct && !logs[1].direct);
    for log in &logs {
        for i in 0..300usize {
            // Records of every size from a few bytes to more than a block,
            // each a flush set of its own on both, starting mid-block and
            // spanning blocks.
            log.append(&rec(i, (i * 37) % 9000 + 1), true).unwrap();
        }
    }
    let (a, b) = (mem.image(), f.live_image());
    let diff = a.iter().zip(&b).position(|(x, y)| x != y);
    assert_eq!(diff, None, "the two images differ (first at that byte)");
    let back = Mlog::open(mem.clone(), 0..size, 25).unwrap();
    assert_eq!(all(&back), all(&logs[1]));
    drop(back);
    for log in logs {
        std::mem::forget(log);
    }
}

/// A log framed straight onto memory, plain and mirrored, from several
/// threads: every record durable when its append returns and read back
/// after a reopen; a full log refuses appends and an erase empties it.
#[test]
fn a_log_framed_onto_memory_keeps_every_record() {
    for mirrored in [false, true] {
        let size = 2u64 << 20;
        let mem = Arc::new(MemDevice::new(size, 512));
        let log = Arc::new(Mlog::create_with(mem.clone(), 0..size, 26, mirrored).unwrap());
        assert!(log.direct);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    (0..150)
                        .map(|i| {
                            let k = t * 1000 + i;
                            (log.append(&rec(k, (k * 53) % 1500 + 1), i % 2 == 0).unwrap(), k)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let done: Vec<(Lsn, usize)> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        // Every append returned durable: nothing is left to flush.
        {
            let g = log.frozen();
            assert_eq!((g.durable_seq, g.written_end), (g.next_seq, g.end));
        }
        let image = mem.image();
        let copy = Arc::new(MemDevice::new(size, 512));
        copy.write_slice(0, &image).unwrap();
        let back = Mlog::open(copy, 0..size, 26).unwrap();
        let recs = all(&back);
        assert_eq!(recs.len(), 600);
        for (lsn, k) in &done {
            assert_eq!(recs[lsn.0 as usize], rec(*k, (k * 53) % 1500 + 1));
        }
        // Fill it, then erase it.
        let mut n = 0;
        let full = loop {
            match log.append(&[7u8; 1000], true) {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
        };
        assert!(matches!(full, MlogError::LogFull { .. }), "{full}");
        assert!(n > 0);
        log.erase(0).unwrap();
        assert!(all(&log).is_empty());
        log.append(b"after", true).unwrap();
        let back = Mlog::open(mem.clone(), 0..size, 26).unwrap();
        assert_eq!(all(&back), vec![b"after".to_vec()]);
        std::mem::forget(log);
    }
}

/// Append `r` (sync) on a thread of its own.
fn append_in_thread(log: &Arc<Mlog>, r: Vec<u8>) -> std::thread::JoinHandle<Lsn> {
    let log = log.clone();
    std::thread::spawn(move || log.append(&r, true).unwrap())
}

/// Wait (polling) until `done` holds; fail after a minute, saying `what`
/// never happened.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < Duration::from_secs(60), "{what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Which writes of `0xab` pieces a [`GateDevice`] holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Hold {
    /// Every one, until the gate opens.
    Every,
    /// The first one, until the gate opens; later ones pass.
    First,
    /// Arrival `k` (counted from 0) until `release(k)`.
    Numbered,
}

/// Memory whose writes of any bytes stop, before writing, at pieces made
/// only of `0xab` bytes, as `hold` says.
#[derive(Debug)]
struct GateDevice {
    mem: Arc<MemDevice>,
    hold: Hold,
    /// (arrivals so far, the gate is open, the arrivals released)
    gate: Mutex<(usize, bool, Vec<usize>)>,
    cv: Condvar,
}

/// The size of [`gated_log`]'s memory and log.
const GATED_SIZE: u64 = 1 << 20;

/// A log written straight onto memory of [`GATED_SIZE`] bytes in
/// `sector`-byte sectors, through a [`GateDevice`] that holds writes as
/// `hold` says: the memory, the gate and the log.
fn gated_log(
    hold: Hold,
    sector: u32,
    id: u64,
    mirrored: bool,
) -> (Arc<MemDevice>, Arc<GateDevice>, Arc<Mlog>) {
    let mem = Arc::new(MemDevice::new(GATED_SIZE, sector));
    let gate = GateDevice::new(mem.clone(), hold);
    let log = Arc::new(Mlog::create_with(gate.clone(), 0..GATED_SIZE, id, mirrored).unwrap());
    assert!(log.direct);
    (mem, gate, log)
}

impl GateDevice {
    fn new(mem: Arc<MemDevice>, hold: Hold) -> Arc<GateDevice> {
        Arc::new(GateDevice {
            mem,
            hold,
            gate: Mutex::new((0, false, Vec::new())),
            cv: Condvar::new(),
        })
    }

    fn wait_arrival(&self) {
        self.wait_arrivals(1);
    }

    /// Wait until `n` writes arrived at the gate (and no more).
    fn wait_arrivals(&self, n: usize) {
        let t0 = Instant::now();
        let mut g = crate::lock::lock(&self.gate);
        while g.0 < n {
            assert!(t0.elapsed() < Duration::from_secs(60), "arrival {n} never came");
            g = crate::lock::wait_timeout(&self.cv, g, Duration::from_millis(10)).0;
        }
        assert!(self.hold != Hold::Numbered || g.0 == n, "more writes arrived than expected");
    }

    fn open(&self) {
        crate::lock::lock(&self.gate).1 = true;
        self.cv.notify_all();
    }

    fn release(&self, k: usize) {
        crate::lock::lock(&self.gate).2.push(k);
        self.cv.notify_all();
    }
}

impl Device for GateDevice {
    fn info(&self) -> &crate::dev::DeviceInfo {
        self.mem.info()
    }
    fn submit(&self, reqs: Vec<IoReq>) -> Vec<IoReq> {
        self.mem.submit(reqs)
    }
    fn write_bytes(&self, offset: u64, data: &[u8]) -> Option<Result<(), DevError>> {
        if data.len() >= 16 && data.iter().all(|&b| b == 0xab) {
            let mut g = crate::lock::lock(&self.gate);
            let k = g.0;
            g.0 += 1;
            self.cv.notify_all();
            let held = |g: &(usize, bool, Vec<usize>)| match self.hold {
                Hold::Every => !g.1,
                Hold::First => k == 0 && !g.1,
                Hold::Numbered => !g.2.contains(&k),
            };
            while held(&g) {
                g = crate::lock::wait(&self.cv, g);
            }
        }
        self.mem.write_bytes(offset, data)
    }
    fn flush(&self) -> Result<(), DevError> {
        self.mem.flush()
    }
    fn discard(&self, offset: u64, len: u64) -> Result<(), DevError> {
        self.mem.discard(offset, len)
    }
}

/// Records are written straight onto memory without the log's lock, in
/// parallel: while one record's payload is held back, the records placed
/// after it are written but not acknowledged, and an image taken then (a
/// crash) opens without corruption (they joined the held record's flush
/// set) with exactly the records before it. Released, every append returns
/// and all the records read back in order.
#[test]
fn a_record_written_late_holds_back_the_ones_after_it() {
    for mirrored in [false, true] {
        let size = GATED_SIZE;
        let (mem, gate, log) = gated_log(Hold::Every, 512, 27, mirrored);
        let mut want: Vec<Vec<u8>> = (0..5).map(|i| rec(i, 200 + i * 90)).collect();
        for (i, r) in want.iter().enumerate() {
            assert_eq!(log.append(r, true).unwrap(), Lsn(i as u64));
        }
        let held = vec![0xabu8; 700];
        let a = {
            let (log, held) = (log.clone(), held.clone());
            std::thread::spawn(move || log.append(&held, true).unwrap())
        };
        gate.wait_arrival();
        let later: Vec<_> = (0..3)
            .map(|k| {
                let log = log.clone();
                std::thread::spawn(move || {
                    let r = rec(100 + k, 300 + k * 50);
                    (log.append(&r, true).unwrap(), r)
                })
            })
            .collect();
        // The three are placed and written, and wait for the held one.
        let t0 = Instant::now();
        loop {
            {
                let g = log.frozen();
                if g.next_seq - g.durable_seq == 4
                    && (g.durable_seq + 1..g.next_seq).all(|s| log.is_written(s))
                {
                    break;
                }
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "the later appends never wrote");
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(20));
        assert!(!a.is_finished() && later.iter().all(|t| !t.is_finished()));
        // A crash now: the five acknowledged records, no corruption.
        let copy = Arc::new(MemDevice::new(size, 512));
        copy.write_slice(0, &mem.image()).unwrap();
        let back = Mlog::open(copy, 0..size, 27).unwrap();
        assert!(back.corruption().is_none(), "{:?}", back.corruption());
        assert_eq!(all(&back), want);
        back.append(b"after", true).unwrap();
        assert_eq!(all(&back).len(), 6);
        // Released: every append returns, in order.
        gate.open();
        assert_eq!(a.join().unwrap(), Lsn(5));
        want.push(held);
        let mut rest: Vec<(Lsn, Vec<u8>)> = later.into_iter().map(|t| t.join().unwrap()).collect();
        rest.sort();
        for (i, (lsn, r)) in rest.into_iter().enumerate() {
            assert_eq!(lsn, Lsn(6 + i as u64));
            want.push(r);
        }
        assert_eq!(all(&log), want);
        let copy = Arc::new(MemDevice::new(size, 512));
        copy.write_slice(0, &mem.image()).unwrap();
        let back = Mlog::open(copy, 0..size, 27).unwrap();
        assert!(back.corruption().is_none());
        assert_eq!(all(&back), want);
    }
}

/// `n` threads append `each` sync records to `log` at once, record `k`
/// being `rec(k, 64 + k % 1000)` for `k = base + thread * 1000 + i`:
/// every append is durable when it returns and the records of one thread
/// keep their order. Returns each record's LSN and `k`.
fn append_from_threads(log: &Mlog, n: usize, each: usize, base: usize) -> Vec<(Lsn, usize)> {
    use std::sync::atomic::Ordering;
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|t| {
                s.spawn(move || {
                    let mut last = None;
                    (0..each)
                        .map(|i| {
                            let k = base + t * 1000 + i;
                            let lsn = log.append(&rec(k, 64 + i), true).unwrap();
                            let durable = log.durable_hint.load(Ordering::Acquire);
                            assert!(durable > lsn.0, "{lsn:?} returned, durable {durable}");
                            assert!(last.is_none_or(|l: Lsn| l.0 < lsn.0), "one thread's order");
                            last = Some(lsn);
                            (lsn, k)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

/// The log on `dev` reopened holds exactly the records `done` names, each
/// at its LSN (as [`append_from_threads`] made them), and no corruption.
fn reopened_holds(dev: &Arc<dyn Device>, size: u64, id: u64, done: &[(Lsn, usize)]) {
    let back = Mlog::open(dev.clone(), 0..size, id).unwrap();
    assert!(back.corruption().is_none(), "{:?}", back.corruption());
    let recs = all(&back);
    assert_eq!(recs.len(), done.len());
    for &(lsn, k) in done {
        assert_eq!(recs[lsn.0 as usize], rec(k, 64 + k % 1000));
    }
}

/// More appenders than twice the CPUs on a byte-addressable device (so
/// that some are preempted with their records placed and others write
/// those for them, `Mlog::help`): every sync append is durable when it
/// returns, at the place its LSN names, the records of one thread keep
/// their order, and no record is left published in the ring.
#[test]
fn many_more_appenders_than_cpus_on_memory_each_durable_on_return_in_order() {
    let size = 16u64 << 20;
    let dev: Arc<dyn Device> = Arc::new(MemDevice::new(size, 4096));
    let log = Mlog::create(dev.clone(), 0..size, 26).unwrap();
    assert!(log.direct);
    let done = append_from_threads(&log, crate::dev::cpus() as usize * 2 + 6, 150, 0);
    use std::sync::atomic::Ordering;
    for slot in log.ring.iter() {
        assert!(slot.job.load(Ordering::SeqCst).is_null());
        assert_eq!(slot.owners.load(Ordering::SeqCst), 0);
        assert_eq!(slot.helpers.load(Ordering::SeqCst), 0);
    }
    drop(log);
    reopened_holds(&dev, size, 26, &done);
}

/// Appenders on a byte-addressable device, as many as twice the CPUs (so
/// each writes its record outside the lock and marks it written without
/// it), more of them than the slots of marks (few in unit tests): every
/// append is durable when it returns, the records sit at the places
/// their LSNs name after a reopen, and an erase between two such runs
/// leaves no mark of the old records that a new one could pass for.
#[test]
fn appenders_on_memory_mark_their_records_and_each_is_durable_on_return() {
    let size = 16u64 << 20;
    let dev: Arc<dyn Device> = Arc::new(MemDevice::new(size, 4096));
    let log = Mlog::create(dev.clone(), 0..size, 28).unwrap();
    assert!(log.direct);
    let n = (crate::dev::cpus() as usize * 2).max(RING as usize + 1);
    let settled = |log: &Mlog, records: usize| {
        let g = log.frozen();
        assert_eq!(g.durable_seq, g.next_seq);
        assert_eq!(g.next_seq, records as u64);
    };
    let first = append_from_threads(&log, n, 200, 0);
    settled(&log, first.len());
    if head::Head::lock_free() {
        // Most records are placed without the lock (the first of each
        // run, and those past a full ring, take it).
        let free = log.placed_free.load(Ordering::Relaxed);
        assert!(free * 2 > first.len() as u64, "{free} of {} placed with the head", first.len());
    }
    reopened_holds(&dev, size, 28, &first);
    log.erase(0).unwrap();
    // The sequence numbers start again at 0: the old generation's last
    // records left their marks in the slots the new ones use.
    assert_eq!(log.append(&rec(7, 64 + 7), true).unwrap(), Lsn(0));
    let mut second = vec![(Lsn(0), 7)];
    second.extend(append_from_threads(&log, n, 200, 500_000));
    settled(&log, second.len());
    reopened_holds(&dev, size, 28, &second);
}

/// An erase clears the marks of written records (`Mlog::ring`) before
/// the sequence numbers start again: with a new record 0 held back, a
/// record 1 written after it is not acknowledged, though the old
/// generation's record 0 left its mark in the slot the new one uses.
#[test]
fn an_erase_leaves_no_mark_a_new_record_could_pass_for() {
    use std::sync::atomic::Ordering;
    let (_, gate, log) = gated_log(Hold::Every, 512, 29, false);
    for i in 0..3 {
        assert_eq!(log.append(&rec(i, 100), true).unwrap(), Lsn(i as u64));
    }
    log.erase(0).unwrap();
    let held = append_in_thread(&log, vec![0xabu8; 700]);
    gate.wait_arrival();
    let after = append_in_thread(&log, rec(9, 100));
    wait_until("record 1 never written", || log.is_written(1));
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(log.durable_hint.load(Ordering::SeqCst), 0);
    assert!(!after.is_finished(), "record 1 acknowledged before record 0 was written");
    gate.open();
    assert_eq!(held.join().unwrap(), Lsn(0));
    assert_eq!(after.join().unwrap(), Lsn(1));
    assert_eq!(all(&log), vec![vec![0xabu8; 700], rec(9, 100)]);
}

/// An appender stopped between placing its record and writing it (here:
/// held at the gate; in life: preempted) holds back nobody: an appender
/// waiting for it writes the record in its place (`Mlog::help`), and its
/// own append returns durable while the first one is still held. Released,
/// the first one writes the same bytes again and returns. Both records
/// read back, and a reopen finds them.
#[test]
fn a_waiter_writes_the_record_of_an_appender_that_stopped() {
    for mirrored in [false, true] {
        let size = GATED_SIZE;
        let (mem, gate, log) = gated_log(Hold::First, 512, 31, mirrored);
        assert_eq!(log.append(&rec(1, 300), true).unwrap(), Lsn(0));
        let held = append_in_thread(&log, vec![0xabu8; 700]);
        gate.wait_arrival();
        let after = append_in_thread(&log, rec(2, 400));
        wait_until("the append after the stopped one never returned", || {
            after.is_finished()
        });
        assert_eq!(after.join().unwrap(), Lsn(2));
        assert!(!held.is_finished());
        let want = vec![rec(1, 300), vec![0xabu8; 700], rec(2, 400)];
        // An image now (a crash while the first appender is still held)
        // holds all three: the helper's copy of the held record is whole.
        let image = Arc::new(MemDevice::from_image(mem.image(), 512));
        let crashed = Mlog::open(image, 0..size, 31).unwrap();
        assert!(crashed.corruption().is_none(), "{:?}", crashed.corruption());
        assert_eq!(all(&crashed), want);
        gate.open();
        assert_eq!(held.join().unwrap(), Lsn(1));
        assert_eq!(all(&log), want);
        for slot in log.ring.iter() {
            use std::sync::atomic::Ordering;
            assert!(slot.job.load(Ordering::SeqCst).is_null());
            assert_eq!(slot.owners.load(Ordering::SeqCst), 0);
            assert_eq!(slot.helpers.load(Ordering::SeqCst), 0);
        }
        drop(log);
        let back = Mlog::open(mem.clone(), 0..size, 31).unwrap();
        assert_eq!(all(&back), want);
    }
}

/// An erase waits for an appender still writing a record that a helper
/// wrote (and that is durable): its late copy of the old record must land
/// before new records take its place, or it would overwrite them. Here the
/// erase is called while the appender is held, and a record appended after
/// the erase, at the place of the held one, reads back whole.
#[test]
fn an_erase_waits_for_an_appender_still_writing_a_helped_record() {
    let size = GATED_SIZE;
    let (mem, gate, log) = gated_log(Hold::First, 512, 32, false);
    // Record 0 of the generation: the first record after the erase sits
    // at the same place.
    let held = append_in_thread(&log, vec![0xabu8; 700]);
    gate.wait_arrival();
    // Waits for record 0, writes it in the held appender's place.
    assert_eq!(log.append(&rec(3, 100), true).unwrap(), Lsn(1));
    let eraser = {
        let log = log.clone();
        std::thread::spawn(move || {
            log.erase(0).unwrap();
            log.append(&rec(4, 700), true).unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        !eraser.is_finished(),
        "the erase went on while an appender was still writing an old record"
    );
    gate.open();
    assert_eq!(held.join().unwrap(), Lsn(0));
    assert_eq!(eraser.join().unwrap(), Lsn(0));
    assert_eq!(all(&log), vec![rec(4, 700)]);
    drop(log);
    let back = Mlog::open(mem.clone(), 0..size, 32).unwrap();
    assert!(back.corruption().is_none(), "{:?}", back.corruption());
    assert_eq!(all(&back), vec![rec(4, 700)]);
}

/// A helper late with its mark (it wrote record 0 for an appender that
/// then marked it itself) must not take back the mark of the record that
/// uses the slot next (record `RING`): its mark is the larger one and
/// stays. With the late mark stored as it was, the durable counter stops
/// at that record for good and its appender never returns.
#[test]
fn a_late_helper_leaves_the_mark_of_the_slots_next_record() {
    assert_eq!(RING, 4, "the steps below fill a ring of 4 slots");
    let (_, gate, log) = gated_log(Hold::Numbered, 4096, 33, false);
    let held = |n: usize| vec![0xabu8; n];
    let spawn = |r: Vec<u8>| append_in_thread(&log, r);
    // Arrival 0: record 0's appender. Arrival 1: record 1's appender,
    // helping record 0 (the ring has 4 slots in unit tests).
    let a0 = spawn(held(100));
    gate.wait_arrivals(1);
    let a1 = spawn(rec(1, 100));
    gate.wait_arrivals(2);
    // Record 0 written and marked by its appender (which then waits for
    // the helper reading its job); the helper still holds its copy and
    // its mark.
    gate.release(0);
    wait_until("record 0 never marked", || {
        log.durable_hint.load(std::sync::atomic::Ordering::SeqCst) >= 2
    });
    // Arrival 2: record 2's appender. Arrival 3: record 3's appender,
    // helping record 2. Record 4 (slot 0 again) is written and marked;
    // its appender then waits for the helper still counted in the slot.
    let a2 = spawn(held(120));
    gate.wait_arrivals(3);
    let a3 = spawn(rec(3, 100));
    gate.wait_arrivals(4);
    let a4 = spawn(rec(4, 100));
    wait_until("record 4 never marked", || log.is_written(4));
    // The late helper marks record 0 now, then record 2 is written.
    gate.release(1);
    assert_eq!(a1.join().unwrap(), Lsn(1));
    assert_eq!(a0.join().unwrap(), Lsn(0));
    assert!(log.is_written(4), "the late mark of record 0 took back record 4's");
    // Record 4's appender may help record 2 too (arrival 4).
    for k in 2..5 {
        gate.release(k);
    }
    wait_until("an appender never returned", || {
        [&a2, &a3, &a4].iter().all(|a| a.is_finished())
    });
    assert_eq!(
        [a2.join().unwrap(), a3.join().unwrap(), a4.join().unwrap()],
        [Lsn(2), Lsn(3), Lsn(4)]
    );
    assert_eq!(
        all(&log),
        vec![held(100), rec(1, 100), held(120), rec(3, 100), rec(4, 100)]
    );
}

/// A crash at any moment of sync appends from more threads than CPUs on
/// a log written straight onto memory (so that some appenders are
/// preempted between placing and writing their records, and others write
/// those for them): an image taken while they run is such a crash (each
/// write of bytes is in it whole or not at all, as memory keeps it).
/// Every image opens without corruption, holds every record acknowledged
/// before it was taken at the place its LSN names, and holds nothing but
/// records that were appended, each at its own LSN.
#[test]
fn images_taken_while_appenders_run_hold_every_acknowledged_record() {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let len = |k: usize| (k * 53) % 1500 + 1;
    let mut rng = StdRng::seed_from_u64(35);
    // Records in all, images, and the records appended between two
    // images at most (appenders wait for the next image past that, so
    // that a busy machine still takes images all along).
    let (total, shots) = (1600usize, 24usize);
    let step = total / shots;
    for (mirrored, sector) in [(false, 512u32), (true, 512), (false, 4096)] {
        let size = 4u64 << 20;
        let mem = Arc::new(MemDevice::new(size, sector));
        let log = Mlog::create_with(mem.clone(), 0..size, 35, mirrored).unwrap();
        assert!(log.direct);
        let acked: Mutex<Vec<(u64, usize)>> = Mutex::new(Vec::new());
        let (next, taken) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let n = crate::dev::cpus() as usize * 2 + 2;
        let images = std::thread::scope(|s| {
            for _ in 0..n {
                let (log, acked, next, taken) = (&log, &acked, &next, &taken);
                s.spawn(move || loop {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    if k >= total {
                        break;
                    }
                    while k >= (taken.load(Ordering::SeqCst) + 1) * step {
                        std::thread::sleep(Duration::from_micros(20));
                    }
                    let lsn = log.append(&rec(k, len(k)), true).unwrap();
                    crate::lock::lock(acked).push((lsn.0, k));
                });
            }
            let mut images = Vec::new();
            while images.len() < shots {
                std::thread::sleep(Duration::from_micros(rng.random_range(0..200)));
                let before = crate::lock::lock(&acked).clone();
                images.push((before, mem.image()));
                taken.fetch_add(1, Ordering::SeqCst);
            }
            images
        });
        let by_lsn: HashMap<u64, usize> = acked.into_inner().unwrap().into_iter().collect();
        assert_eq!(by_lsn.len(), total, "an LSN given twice");
        for (before, image) in images {
            let crashed = Mlog::open(Arc::new(MemDevice::from_image(image, sector)), 0..size, 35).unwrap();
            assert!(crashed.corruption().is_none(), "{:?}", crashed.corruption());
            let recs = all(&crashed);
            for &(lsn, k) in &before {
                assert_eq!(recs.get(lsn as usize), Some(&rec(k, len(k))), "acknowledged record {lsn} lost");
            }
            for (i, r) in recs.iter().enumerate() {
                let k = by_lsn[&(i as u64)];
                assert_eq!(r, &rec(k, len(k)), "record {i} is not the one appended there");
            }
        }
    }
}

/// What a direct append writes under the lock (the lock's word and the
/// placing fields) lies on the lock's first cache line, and the lock
/// starts one: with two appenders that line moves between their CPUs at
/// every append, and any second line written would move too.
#[test]
fn the_placing_fields_share_the_locks_first_line() {
    let d: Arc<dyn Device> = Arc::new(MemDevice::new(1 << 20, 4096));
    let log = Mlog::create(d, 0..(1 << 20), 5).unwrap();
    assert!(log.direct);
    log.append(b"x", true).unwrap();
    let base = std::ptr::from_ref(&*log.st) as usize;
    assert_eq!(base % 64, 0, "the lock starts a line");
    let g = log.lock();
    let within = |p: usize, size: usize| p - base + size <= 64;
    let addr = |r: &u64| std::ptr::from_ref(r) as usize;
    for (name, p) in [
        ("next_seq", addr(&g.next_seq)),
        ("end", addr(&g.end)),
        ("durable_seq", addr(&g.durable_seq)),
        ("written_end", addr(&g.written_end)),
    ] {
        assert!(within(p, 8), "{name} is past the lock's first line");
    }
    assert!(within(std::ptr::from_ref(&g.batch_first) as usize, 16));
    assert!(within(std::ptr::from_ref(&g.epoch) as usize, 4));
    assert!(within(std::ptr::from_ref(&g.fseq) as usize, 4));
}

/// Records placed without the lock (`Mlog::place_free`), one appender:
/// each record is a flush set of its own, and every few sets (5 in unit
/// tests) a new epoch begins, whose header only the lock's holder writes:
/// the head closes and opens again around it. The log's length and record
/// count read while the head is open are the placed ones; an erase closes
/// it and the next generation's records are placed without the lock
/// again. Every record reads back, also after a reopen.
#[test]
fn records_placed_without_the_lock_cross_epochs_and_erases() {
    if !head::Head::lock_free() {
        eprintln!("SKIPPED: this CPU has no 16-byte compare and swap");
        return;
    }
    for mirrored in [false, true] {
        let size = 1u64 << 20;
        let mem = Arc::new(MemDevice::new(size, 512));
        let log = Mlog::create_with(mem.clone(), 0..size, 36, mirrored).unwrap();
        assert!(log.lockfree);
        let mut want = Vec::new();
        for gen in 0..3 {
            let before = log.placed_free.load(Ordering::Relaxed);
            for i in 0..23 {
                let r = rec(gen * 100 + i, 50 + i * 41);
                assert_eq!(log.append(&r, true).unwrap(), Lsn(i as u64));
                want.push(r);
                if i % 4 == 3 {
                    // (The look under the closed head sends the next
                    // record to the lock.)
                    let (records, len) = (log.records(), log.len());
                    let g = log.frozen();
                    assert_eq!((records, len), (g.next_seq, g.end), "gen {gen} record {i}");
                }
            }
            // The first record of a generation, and of each epoch, takes
            // the lock.
            assert!(log.placed_free.load(Ordering::Relaxed) > before, "gen {gen}: none placed without the lock");
            assert_eq!(all(&log), want);
            let back = Mlog::open(Arc::new(MemDevice::from_image(mem.image(), 512)), 0..size, 36).unwrap();
            assert!(back.corruption().is_none(), "{:?}", back.corruption());
            assert_eq!(all(&back), want);
            // More epochs than the records of one generation: headers were
            // written while records were placed without the lock.
            assert!(back.lock().epoch > 3, "epoch {}", back.lock().epoch);
            log.erase(0).unwrap();
            want.clear();
            assert_eq!((log.records(), log.len()), (0, 0));
        }
    }
}
