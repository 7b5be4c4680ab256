//! `Pool::mblock_commit_with`: an mblock's last write, its commit record
//! and a caller's record in another MDC go to the device in one batch and
//! are made durable by one flush. Each outcome is checked against a crash
//! that drops or keeps every unflushed write.

use mpool::dev::{CrashMode, Device, DeviceRef, FaultDevice};
use mpool::{Error, MdcId, MediaClass, Pool};
use std::sync::Arc;

const ZONE: u64 = 1 << 20;

fn bytes(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A pool of one capacity device of 64 zones on a fault device, with a
/// user MDC committed on it and opened, holding one record ("opened": a
/// log writes its header with its first flush after an open, and takes
/// no records from another batch before that).
fn pool_with_mdc(name: &str) -> (Arc<FaultDevice>, Pool, MdcId) {
    let fault = Arc::new(FaultDevice::new(64 * ZONE, 4096));
    let dev: DeviceRef = fault.clone();
    Pool::format_on(name, &[(Arc::clone(&dev), MediaClass::Capacity, ZONE)], "").unwrap();
    let pool = Pool::open_on(vec![dev], false).unwrap();
    let m = pool.mdc_alloc(MediaClass::Capacity, ZONE).unwrap();
    pool.mdc_commit(m).unwrap();
    pool.mdc_open(m).unwrap().append(b"opened", true).unwrap();
    (fault, pool, m)
}

fn reboot(fault: &FaultDevice, mode: CrashMode) -> (Arc<FaultDevice>, Pool) {
    let f = Arc::new(fault.reboot(mode));
    let dev: DeviceRef = f.clone();
    let pool = Pool::open_on(vec![dev], false).unwrap();
    (f, pool)
}

/// Mblock `k` of `ids` reads back as `bytes(seed + k, len)`, for each k.
fn assert_contents(pool: &Pool, ids: &[mpool::MblockId], seed: u8, len: usize) {
    for (k, id) in ids.iter().enumerate() {
        let mut back = vec![0u8; len];
        pool.mblock_read(*id, 0, &mut back).unwrap();
        assert_eq!(back, bytes(seed + k as u8, len), "mblock {k}");
    }
}

fn records(pool: &Pool, m: MdcId) -> Vec<Vec<u8>> {
    let mdc = pool.mdc_open(m).unwrap();
    let out = mdc.reader().unwrap().map(|r| r.unwrap()).collect();
    out
}

/// The three writes, then one flush: both records and the content are
/// durable when the commit returns (a crash dropping every unflushed write
/// keeps them), with one device flush for all of them.
#[test]
fn content_commit_and_record_are_durable_with_one_flush() {
    let (fault, pool, m) = pool_with_mdc("with");
    let mdc = pool.mdc_open(m).unwrap();
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    let data = bytes(1, 64 << 10);
    pool.mblock_write(id, &data).unwrap();
    let before = fault.stats();
    let (c, w) = pool.mblock_commit_with(id, &mdc, b"the caller's record");
    c.unwrap();
    assert!(
        w.unwrap().is_some(),
        "the record was written with the commit"
    );
    let after = fault.stats();
    assert_eq!(after.flushes - before.flushes, 1, "one flush for the three");
    assert_eq!(after.writes - before.writes, 3, "content, commit, record");
    assert_eq!(after.batches - before.batches, 1, "the three in one batch");
    assert_eq!(after.pending, 0);
    // The commit's flush was reported to the MDC: its next sync append
    // flushes once, not first the set written with the commit.
    mdc.append(b"after", true).unwrap();
    assert_eq!(fault.stats().flushes - after.flushes, 1);
    drop(mdc);
    drop(pool);

    let (_f, pool) = reboot(&fault, CrashMode::DropAll);
    let mut back = vec![0u8; data.len()];
    pool.mblock_read(id, 0, &mut back).unwrap();
    assert_eq!(back, data);
    assert_eq!(
        records(&pool, m),
        vec![
            b"opened".to_vec(),
            b"the caller's record".to_vec(),
            b"after".to_vec()
        ]
    );
}

/// A busy MDC (a staged write of its own outstanding): the commit goes on
/// without the record, which is left to the caller (`Ok(None)`), and the
/// MDC's own write completes afterwards.
#[test]
fn a_busy_mdc_leaves_the_record_to_the_caller() {
    let (fault, pool, m) = pool_with_mdc("with-busy");
    let mdc = pool.mdc_open(m).unwrap();
    let staged = mdc.stage_written(b"first").unwrap().unwrap();
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(id, &bytes(2, 10_000)).unwrap();
    let (c, w) = pool.mblock_commit_with(id, &mdc, b"second");
    c.unwrap();
    assert!(
        matches!(w, Ok(None)),
        "nothing appended to a busy MDC: {w:?}"
    );
    let mut reqs = staged.requests();
    for r in &mut reqs {
        let n = r.buf.len();
        fault.write_slice(r.offset, &r.buf[..n]).unwrap();
        r.result = Some(Ok(()));
    }
    let written = staged.done(&mut reqs).unwrap();
    mdc.sync().unwrap();
    mdc.note_flushed(written);
    mdc.append(b"second", true).unwrap();
    drop(mdc);
    drop(pool);
    let (_f, pool) = reboot(&fault, CrashMode::DropAll);
    assert_eq!(
        records(&pool, m),
        vec![b"opened".to_vec(), b"first".to_vec(), b"second".to_vec()]
    );
    let mut back = vec![0u8; 10_000];
    pool.mblock_read(id, 0, &mut back).unwrap();
    assert_eq!(back, bytes(2, 10_000));
}

/// The content write fails after the commit record was written beside it:
/// the commit fails, the record says it may be on the media, and the
/// mblock never exists, whether the unflushed writes are kept or lost in
/// a crash, or the pool goes on and is closed cleanly.
#[test]
fn a_failed_content_write_leaves_no_mblock() {
    for mode in [None, Some(CrashMode::KeepAll), Some(CrashMode::DropAll)] {
        let (fault, pool, m) = pool_with_mdc("with-eio");
        let mdc = pool.mdc_open(m).unwrap();
        let keep = pool.mblock_alloc(MediaClass::Capacity).unwrap();
        pool.mblock_write(keep, &bytes(3, 5000)).unwrap();
        pool.mblock_commit(keep).unwrap();
        let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
        pool.mblock_write(id, &bytes(4, 20_000)).unwrap();
        let zone = u64::from(pool.object_props(id).unwrap().zone);
        fault.fail_writes(zone * ZONE..(zone + 1) * ZONE);
        let (c, w) = pool.mblock_commit_with(id, &mdc, b"names the mblock");
        assert!(c.is_err(), "{mode:?}: the commit failed");
        assert!(w.is_ok(), "{mode:?}: the record's own write went through");
        fault.clear_failures();
        assert!(
            !pool.object_props(id).unwrap().committed,
            "{mode:?}: the mblock is committed"
        );
        pool.mblock_abort(id).unwrap();
        assert!(matches!(
            pool.object_props(id),
            Err(Error::Object(mpool::ObjectError::NotFound(_)))
        ));
        // Later commits in the same metadata log.
        let after = pool.mblock_alloc(MediaClass::Capacity).unwrap();
        pool.mblock_write(after, &bytes(5, 3000)).unwrap();
        pool.mblock_commit(after).unwrap();
        drop(mdc);
        let (_f, pool) = match mode {
            Some(mode) => {
                let f = fault.clone();
                std::mem::forget(pool);
                reboot(&f, mode)
            }
            None => {
                drop(pool);
                reboot(&fault, CrashMode::DropAll)
            }
        };
        assert!(
            pool.object_props(id).is_err(),
            "{mode:?}: the failed mblock came back"
        );
        for (k, n, seed) in [(keep, 5000, 3), (after, 3000, 5)] {
            let mut back = vec![0u8; n];
            pool.mblock_read(k, 0, &mut back).unwrap();
            assert_eq!(back, bytes(seed, n), "{mode:?}");
        }
        let report = pool.check(&mut |_, _| {}).unwrap();
        assert!(
            report.problems.is_empty(),
            "{mode:?}: {:?}",
            report.problems
        );
    }
}

/// A device whose flushes wait at a gate the test opens, and whose writes
/// into a held range of bytes wait until the test lets them go.
#[derive(Debug)]
struct Gated {
    inner: Arc<FaultDevice>,
    gate: std::sync::Mutex<(bool, usize)>,
    cv: std::sync::Condvar,
    /// The held range, and the writes waiting on it.
    held: std::sync::Mutex<(Option<std::ops::Range<u64>>, usize)>,
    held_cv: std::sync::Condvar,
}

impl Gated {
    fn set_open(&self, open: bool) {
        self.gate.lock().unwrap().0 = open;
        self.cv.notify_all();
    }

    /// Flushes waiting at the closed gate.
    fn waiting(&self) -> usize {
        self.gate.lock().unwrap().1
    }

    /// Hold writes into `range` (`None`: let them all go).
    fn hold_writes(&self, range: Option<std::ops::Range<u64>>) {
        self.held.lock().unwrap().0 = range;
        self.held_cv.notify_all();
    }

    /// Writes waiting in the held range.
    fn writes_held(&self) -> usize {
        self.held.lock().unwrap().1
    }
}

impl Device for Gated {
    fn info(&self) -> &mpool::dev::DeviceInfo {
        self.inner.info()
    }
    fn submit(&self, reqs: Vec<mpool::io::IoReq>) -> Vec<mpool::io::IoReq> {
        let hits = |h: &Option<std::ops::Range<u64>>| {
            h.as_ref().is_some_and(|r| {
                reqs.iter().any(|q| {
                    q.kind == mpool::io::IoKind::Write
                        && q.offset < r.end
                        && q.offset + q.buf.len() as u64 > r.start
                })
            })
        };
        let mut h = self.held.lock().unwrap();
        if hits(&h.0) {
            h.1 += 1;
            while hits(&h.0) {
                h = self.held_cv.wait(h).unwrap();
            }
            h.1 -= 1;
        }
        drop(h);
        self.inner.submit(reqs)
    }
    fn flush(&self) -> Result<(), mpool::DevError> {
        let mut g = self.gate.lock().unwrap();
        g.1 += 1;
        while !g.0 {
            g = self.cv.wait(g).unwrap();
        }
        g.1 -= 1;
        drop(g);
        self.inner.flush()
    }
    fn discard(&self, offset: u64, len: u64) -> Result<(), mpool::DevError> {
        self.inner.discard(offset, len)
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..20_000 {
        if cond() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("gave up waiting for {what}");
}

/// A pool on a fault device behind a flush gate, with a user MDC holding
/// "opened" and four mblocks of `len` bytes (`bytes(seed + k, len)`)
/// written, not committed.
struct GroupSetup {
    fault: Arc<FaultDevice>,
    gated: Arc<Gated>,
    pool: Arc<Pool>,
    m: MdcId,
    mdc: Arc<mpool::Mdc>,
    ids: Vec<mpool::MblockId>,
}

fn group_setup(name: &str, seed: u8, len: usize) -> GroupSetup {
    let fault = Arc::new(FaultDevice::new(64 * ZONE, 4096));
    let d: DeviceRef = fault.clone();
    Pool::format_on(name, &[(d, MediaClass::Capacity, ZONE)], "").unwrap();
    let gated = Arc::new(Gated {
        inner: Arc::clone(&fault),
        gate: std::sync::Mutex::new((true, 0)),
        cv: std::sync::Condvar::new(),
        held: std::sync::Mutex::new((None, 0)),
        held_cv: std::sync::Condvar::new(),
    });
    let dev: DeviceRef = gated.clone();
    let pool = Arc::new(Pool::open_on(vec![dev], false).unwrap());
    let m = pool.mdc_alloc(MediaClass::Capacity, ZONE).unwrap();
    pool.mdc_commit(m).unwrap();
    let mdc = pool.mdc_open(m).unwrap();
    mdc.append(b"opened", true).unwrap();
    let ids = (0..4u8)
        .map(|k| {
            let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
            pool.mblock_write(id, &bytes(seed + k, len)).unwrap();
            id
        })
        .collect();
    GroupSetup {
        fault,
        gated,
        pool,
        m,
        mdc,
        ids,
    }
}

impl GroupSetup {
    /// Commit mblock `k` with the record "record k" on a thread of its
    /// own: (commit succeeded, record written).
    fn commit(&self, k: usize) -> std::thread::JoinHandle<(bool, bool)> {
        let (pool, mdc, id) = (Arc::clone(&self.pool), Arc::clone(&self.mdc), self.ids[k]);
        std::thread::spawn(move || {
            let (c, w) = pool.mblock_commit_with(id, &mdc, format!("record {k}").as_bytes());
            (c.is_ok(), matches!(w, Ok(Some(_))))
        })
    }

    /// Commit 0, hold its flush at the gate, and queue 1..4 behind it;
    /// then open the gate. The four outcomes, in order.
    fn run(&self, between: impl FnOnce()) -> Vec<(bool, bool)> {
        self.gated.set_open(false);
        let first = self.commit(0);
        wait_for("the first flush", || self.gated.waiting() == 1);
        let others: Vec<_> = (1..4).map(|k| self.commit(k)).collect();
        wait_for("three commits waiting", || self.pool.commits_waiting() == 3);
        between();
        self.gated.set_open(true);
        std::iter::once(first)
            .chain(others)
            .map(|t| t.join().unwrap())
            .collect()
    }

    /// Close the pool (every handle dropped); the fault device stays.
    fn close(self) -> (Arc<FaultDevice>, MdcId, Vec<mpool::MblockId>) {
        let GroupSetup {
            fault,
            pool,
            mdc,
            m,
            ids,
            ..
        } = self;
        drop(mdc);
        drop(Arc::into_inner(pool).unwrap());
        (fault, m, ids)
    }
}

/// Commits that arrive while a batch is in flight wait, write their
/// content meanwhile, and then go together: one batch and one flush for
/// the three of them, after the first commit's own.
#[test]
fn commits_that_arrive_together_share_one_batch_and_one_flush() {
    let g = group_setup("group", 10, 64 << 10);
    let before = g.fault.stats();
    let mut mid = before;
    let got = g.run(|| mid = g.fault.stats());
    assert_eq!(got, vec![(true, true); 4], "every commit and record");
    assert_eq!(
        mid.batches - before.batches,
        4,
        "one batch, three contents written ahead"
    );
    let after = g.fault.stats();
    assert_eq!(after.flushes - before.flushes, 2, "a flush per batch");
    assert_eq!(
        after.batches - mid.batches,
        1,
        "the three commits' records in one batch"
    );
    let (fault, m, ids) = g.close();
    let (_f, pool) = reboot(&fault, CrashMode::DropAll);
    assert_contents(&pool, &ids, 10, 64 << 10);
    let mut got = records(&pool, m);
    got.sort();
    let mut want: Vec<Vec<u8>> = (0..4).map(|k| format!("record {k}").into_bytes()).collect();
    want.push(b"opened".to_vec());
    want.sort();
    assert_eq!(got, want);
}

/// A new leader waits for the content writes begun before it took the
/// lead, but only for a while: a content write that does not end holds
/// nobody else's commit back, and its own commit goes once it ends.
#[test]
fn a_content_write_that_does_not_end_holds_no_batch_back() {
    let g = group_setup("group-held", 30, 64 << 10);
    let zone = u64::from(g.pool.object_props(g.ids[3]).unwrap().zone);
    g.gated.set_open(false);
    let first = g.commit(0);
    wait_for("the first flush", || g.gated.waiting() == 1);
    // Commit 3 arrives while the first batch runs and starts its content
    // write, which stays in the device.
    g.gated.hold_writes(Some(zone * ZONE..(zone + 1) * ZONE));
    let held = g.commit(3);
    wait_for("the held content write", || g.gated.writes_held() == 1);
    let others: Vec<_> = (1..3).map(|k| g.commit(k)).collect();
    wait_for("two commits waiting", || g.pool.commits_waiting() == 2);
    // The first batch ends; the next leader finds commit 3's write begun
    // before it and not ended.
    g.gated.set_open(true);
    assert_eq!(first.join().unwrap(), (true, true));
    wait_for("the commits behind the held write", || {
        others.iter().all(|t| t.is_finished())
    });
    for t in others {
        assert_eq!(
            t.join().unwrap(),
            (true, true),
            "a commit behind the held write"
        );
    }
    assert_eq!(g.gated.writes_held(), 1, "commit 3's write is still held");
    assert!(!held.is_finished());
    g.gated.hold_writes(None);
    assert_eq!(held.join().unwrap(), (true, true));
    let (fault, m, ids) = g.close();
    let (_f, pool) = reboot(&fault, CrashMode::DropAll);
    assert_contents(&pool, &ids, 30, 64 << 10);
    assert_eq!(records(&pool, m).len(), 5, "\"opened\" and four records");
}

/// A new leader holds its batch until every caller that was committing
/// at once has a commit queued, so the caller of the batch before, back
/// with its next commit a moment after that batch ends (a millisecond
/// here), joins this one: two flushes for five commits where taking only
/// those queued makes three (the fifth alone).
#[test]
fn a_leader_waits_for_the_callers_of_the_batch_before() {
    let g = group_setup("group-gather", 40, 64 << 10);
    let fifth = g.pool.mblock_alloc(MediaClass::Capacity).unwrap();
    g.pool.mblock_write(fifth, &bytes(44, 64 << 10)).unwrap();
    let before = g.fault.stats();
    g.gated.set_open(false);
    // The first caller commits mblock 0, then, a millisecond after, the
    // fifth.
    let first = {
        let (pool, mdc, ids) = (Arc::clone(&g.pool), Arc::clone(&g.mdc), g.ids.clone());
        std::thread::spawn(move || {
            let mut out = Vec::new();
            for (id, k) in [(ids[0], 0), (fifth, 4)] {
                if k > 0 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                let (c, w) = pool.mblock_commit_with(id, &mdc, format!("record {k}").as_bytes());
                out.push((c.is_ok(), matches!(w, Ok(Some(_)))));
            }
            out
        })
    };
    wait_for("the first flush", || g.gated.waiting() == 1);
    let others: Vec<_> = (1..4).map(|k| g.commit(k)).collect();
    wait_for("three commits waiting", || g.pool.commits_waiting() == 3);
    // The first batch takes a while in the device: the next leader may
    // wait up to that long (at most 10 ms) for the first caller.
    std::thread::sleep(std::time::Duration::from_millis(30));
    g.gated.set_open(true);
    assert_eq!(first.join().unwrap(), vec![(true, true); 2]);
    for t in others {
        assert_eq!(t.join().unwrap(), (true, true));
    }
    let after = g.fault.stats();
    assert_eq!(
        after.flushes - before.flushes,
        2,
        "the first commit's batch, then one for the other four"
    );
    let (fault, m, mut ids) = g.close();
    ids.push(fifth);
    let (_f, pool) = reboot(&fault, CrashMode::DropAll);
    assert_contents(&pool, &ids, 40, 64 << 10);
    assert_eq!(records(&pool, m).len(), 6, "\"opened\" and five records");
}

/// In a group, a commit whose content write failed fails alone: the
/// others in its batch are durable, and it never exists, before or after
/// a crash.
#[test]
fn a_failed_commit_in_a_group_fails_alone() {
    let g = group_setup("group-eio", 20, 48 << 10);
    // The third commit's content cannot be written.
    let bad = u64::from(g.pool.object_props(g.ids[2]).unwrap().zone);
    g.fault.fail_writes(bad * ZONE..(bad + 1) * ZONE);
    let got = g.run(|| {});
    assert_eq!(got[0], (true, true));
    assert_eq!(got[1], (true, true));
    assert!(!got[2].0, "the commit whose content failed");
    assert_eq!(got[3], (true, true));
    g.fault.clear_failures();
    g.pool.mblock_abort(g.ids[2]).unwrap();
    let (fault, m, ids) = g.close();
    for mode in [CrashMode::DropAll, CrashMode::KeepAll] {
        let (_f, pool) = reboot(&fault, mode);
        for k in [0usize, 1, 3] {
            let mut back = vec![0u8; 48 << 10];
            pool.mblock_read(ids[k], 0, &mut back).unwrap();
            assert_eq!(back, bytes(20 + k as u8, 48 << 10), "{mode:?}");
        }
        assert!(pool.object_props(ids[2]).is_err(), "{mode:?}");
        let got = records(&pool, m);
        for k in [0usize, 1, 3] {
            assert!(
                got.contains(&format!("record {k}").into_bytes()),
                "{mode:?}"
            );
        }
        assert!(!got.contains(&b"record 2".to_vec()), "{mode:?}");
        let report = pool.check(&mut |_, _| {}).unwrap();
        assert!(
            report.problems.is_empty(),
            "{mode:?}: {:?}",
            report.problems
        );
    }
}
