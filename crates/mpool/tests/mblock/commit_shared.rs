//! Format version 2 commits an mblock with one flush: the content and its
//! commit record are made durable by the same flush, and replay verifies the
//! content of commits in a metadata log's last flush set. These tests make
//! the record land without the content (a crash between write and flush,
//! the content's writes lost) and check the commit is dropped, stays
//! dropped, and that finished commits are never dropped.

use crate::pool_common;

use mpool::dev::{CrashMode, DeviceRef, FaultDevice};
use mpool::{MediaClass, Pool};
use std::sync::Arc;

const ZONE: u64 = 64 * 1024;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

fn fresh_pool() -> Arc<FaultDevice> {
    let dev = Arc::new(FaultDevice::new(72 * ZONE, 512));
    let d: DeviceRef = dev.clone();
    Pool::format_on("shared", &[(d, MediaClass::Capacity, ZONE)], "").unwrap();
    dev
}

fn open(dev: &Arc<FaultDevice>, read_only: bool) -> Pool {
    let d: DeviceRef = dev.clone();
    Pool::open_on(vec![d], read_only).unwrap()
}

/// Content length of the commit that crashes: whole sectors, so the commit
/// writes only its record.
const LEN: usize = 40_960;

/// A pool with a committed `keep` and an mblock `id` of [`LEN`] bytes
/// written, crashed `k` device operations into `id`'s commit and rebooted
/// with every write kept.
struct Crashed {
    after: Arc<FaultDevice>,
    committed: bool,
    id: mpool::MblockId,
    keep: mpool::MblockId,
    zone: u32,
}

fn crash_in_commit(k: u64) -> Crashed {
    let dev = fresh_pool();
    let pool = open(&dev, false);
    // One commit first, so the log's header and checkpoint are durable.
    let keep = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(keep, &pattern(1000, 1)).unwrap();
    pool.mblock_commit(keep).unwrap();
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(id, &pattern(LEN, 2)).unwrap();
    let zone = pool.object_props(id).unwrap().zone;
    dev.crash_after(dev.stats().ops + k);
    let committed = pool.mblock_commit(id).is_ok();
    drop(pool);
    Crashed {
        after: Arc::new(dev.reboot(CrashMode::KeepAll)),
        committed,
        id,
        keep,
        zone,
    }
}

#[test]
fn commit_record_without_its_content_is_dropped_for_good() {
    let len = LEN;
    let mut record_landed = 0;
    let mut committed = 0;
    for k in 0..12u64 {
        let Crashed {
            after,
            committed: ok,
            id,
            keep,
            zone,
        } = crash_in_commit(k);
        if ok {
            committed += 1;
            let p = open(&after, false);
            let mut got = vec![0u8; len];
            p.mblock_read(id, 0, &mut got).unwrap();
            assert_eq!(got, pattern(len, 2), "point {k}: finished commit lost");
            continue;
        }
        if open(&after, true).object_props(id).is_ok() {
            record_landed += 1;
        }
        after.poke(u64::from(zone) * ZONE, &vec![0u8; len]);
        // Read-only inspection drops it without writing.
        assert!(open(&after, true).object_props(id).is_err(), "point {k}");
        let p = open(&after, false);
        assert!(
            p.object_props(id).is_err(),
            "point {k}: commit whose content never landed is readable"
        );
        assert!(p.object_props(keep).is_ok());
        assert_eq!(
            p.usage()[0].used,
            open(&fresh_pool(), true).usage()[0].used + ZONE
        );
        // More work moves the dropped record out of the last flush set; it
        // must not come back.
        let more = p.mblock_alloc(MediaClass::Capacity).unwrap();
        p.mblock_write(more, &pattern(700, 3)).unwrap();
        p.mblock_commit(more).unwrap();
        drop(p);
        let p = open(&after, false);
        assert!(
            p.object_props(id).is_err(),
            "point {k}: dropped commit is back"
        );
        assert!(p.object_props(more).is_ok());
        let ids: Vec<_> = p.objects().unwrap().iter().map(|o| o.id).collect();
        assert!(!ids.contains(&id.object_id()));
        p.compact_metadata().unwrap();
        drop(p);
        assert!(open(&after, false).object_props(id).is_err());
    }
    assert!(
        record_landed > 0,
        "no crash point left the record without its content: the test tests nothing"
    );
    assert!(committed > 0, "no crash point came after the commit");
}

#[test]
fn rot_after_a_clean_close_is_reported_not_dropped() {
    // Closing seals the log: the last commit is no longer in an unflushed
    // flush set, so damage found later is a checksum error, never a silent
    // loss of an acknowledged object.
    let dev = fresh_pool();
    let pool = open(&dev, false);
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(id, &pattern(5000, 4)).unwrap();
    let zone = pool.mblock_commit(id).unwrap().zone;
    drop(pool);
    dev.poke(u64::from(zone) * ZONE + 100, b"rot");
    let pool = open(&dev, false);
    assert!(pool.object_props(id).is_ok(), "acknowledged commit dropped");
    assert!(matches!(
        pool.mblock_verify(id),
        Err(mpool::Error::Object(mpool::ObjectError::Checksum { .. }))
    ));
}

#[test]
fn idle_log_is_sealed_in_the_background() {
    let dev = fresh_pool();
    let pool = open(&dev, false);
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(id, &pattern(3000, 5)).unwrap();
    let zone = pool.mblock_commit(id).unwrap().zone;
    // The background thread seals an MDC idle for a tick (100 ms): wait
    // until a flush follows the commit, bounded.
    let flushes = dev.stats().flushes;
    let t = std::time::Instant::now();
    while dev.stats().flushes == flushes && t.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(dev.stats().flushes > flushes, "no seal within 10 s");
    // Crash now (nothing unflushed matters) and rot the content: the sealed
    // commit is kept and reported.
    let after = Arc::new(dev.reboot(CrashMode::DropAll));
    drop(pool);
    after.poke(u64::from(zone) * ZONE, b"rot");
    let p = open(&after, false);
    assert!(p.object_props(id).is_ok());
    assert!(p.mblock_verify(id).is_err());
}

#[test]
fn staging_commits_flush_content_first() {
    // The metadata lives on the capacity device, so a staging mblock's
    // content is flushed before its record (the version-1 way).
    let cap = Arc::new(FaultDevice::new(72 * ZONE, 512));
    let stg = Arc::new(FaultDevice::new(32 * ZONE, 512));
    let pool = pool_common::two_class_pool("two", cap.clone(), stg.clone(), ZONE);
    let id = pool.mblock_alloc(MediaClass::Staging).unwrap();
    pool.mblock_write(id, &pattern(4096, 6)).unwrap();
    let before = stg.stats().flushes;
    pool.mblock_commit(id).unwrap();
    assert_eq!(
        stg.stats().flushes,
        before + 1,
        "staging content flushed at commit"
    );
    let id2 = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(id2, &pattern(4096, 7)).unwrap();
    let before = cap.stats().flushes;
    pool.mblock_commit(id2).unwrap();
    assert_eq!(
        cap.stats().flushes,
        before + 1,
        "a capacity commit takes one flush"
    );
}

/// A device image where an mblock's commit record landed but its content
/// did not, with a committed `keep` beside it.
fn record_without_content() -> (Vec<u8>, mpool::MblockId, mpool::MblockId) {
    for k in 0..12u64 {
        let c = crash_in_commit(k);
        if c.committed || open(&c.after, true).object_props(c.id).is_err() {
            continue; // finished, or the record did not land either
        }
        c.after.poke(u64::from(c.zone) * ZONE, &vec![0u8; LEN]);
        return (c.after.durable_image(), c.id, c.keep);
    }
    panic!("no crash point left a commit record without its content");
}

#[test]
fn a_crash_inside_the_recovery_that_drops_a_commit_keeps_it_dropped() {
    let (img, id, keep) = record_without_content();
    let mut crashed_inside = 0;
    for k in 0..40u64 {
        for mode in [
            CrashMode::DropAll,
            CrashMode::KeepAll,
            CrashMode::Random {
                keep: 0.5,
                tear: 0.5,
                seed: k,
            },
        ] {
            let dev = Arc::new(FaultDevice::from_image(img.clone(), 512));
            dev.crash_after(k);
            let d: DeviceRef = dev.clone();
            match Pool::open_on(vec![d], false) {
                Ok(p) => drop(p),
                Err(_) => crashed_inside += 1,
            }
            let after = Arc::new(dev.reboot(mode));
            let p = open(&after, false);
            assert!(
                p.object_props(id).is_err(),
                "crash point {k} {mode:?}: the dropped commit is back"
            );
            assert!(p.object_props(keep).is_ok(), "crash point {k}: lost {keep}");
            // More work, another reopen: still gone.
            let more = p.mblock_alloc(MediaClass::Capacity).unwrap();
            p.mblock_write(more, &pattern(512, 9)).unwrap();
            p.mblock_commit(more).unwrap();
            drop(p);
            let p = open(&after, false);
            assert!(
                p.object_props(id).is_err(),
                "crash point {k} {mode:?}: back later"
            );
            assert!(p.object_props(more).is_ok());
        }
    }
    assert!(
        crashed_inside > 0,
        "no crash point fell inside the recovery"
    );
}

#[test]
fn a_commit_that_failed_writing_its_record_holds_its_zone_until_reopen() {
    let dev = fresh_pool();
    let pool = open(&dev, false);
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(id, &pattern(4096, 8)).unwrap();
    let used = pool.usage()[0].used;
    // The content's last write (its checksum table) lands, the record's
    // write fails.
    dev.crash_after(dev.stats().ops + 1);
    assert!(pool.mblock_commit(id).is_err());
    pool.mblock_abort(id).unwrap();
    assert_eq!(
        pool.usage()[0].used,
        used,
        "the zone of a commit in doubt was freed for reuse"
    );
    drop(pool);
    for mode in [CrashMode::DropAll, CrashMode::KeepAll] {
        let p = open(&Arc::new(dev.reboot(mode)), false);
        let live = p
            .objects()
            .unwrap()
            .iter()
            .filter(|o| o.id == id.object_id())
            .count() as u64;
        assert_eq!(p.usage()[0].used, used - ZONE + live * ZONE);
    }
}

#[test]
fn a_one_flush_commit_record_in_a_format_1_pool_is_corruption() {
    // A format-3 pool with a one-flush block-checksum commit (type 8),
    // then its superblocks rewritten as format 1 and as format 2: neither
    // has such records, so the open does not guess what the record means:
    // its MDC is damaged, and the object unreadable with an error naming it.
    for version in [1u16, 2] {
        let dev = fresh_pool();
        let pool = open(&dev, false);
        let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
        pool.mblock_write(id, &pattern(2000, 3)).unwrap();
        pool.mblock_commit(id).unwrap();
        drop(pool);
        let d: DeviceRef = dev.clone();
        let read = mpool::superblock::read(d.as_ref()).unwrap();
        let mut sb = read.copies[0].clone().unwrap();
        assert_eq!(sb.version, mpool::format::superblock::SB_VERSION);
        sb.version = version;
        mpool::superblock::write(d.as_ref(), &sb).unwrap();
        let pool = Pool::open_on(vec![Arc::clone(&d)], true).expect("opens degraded");
        let damaged = pool.damaged_mdcs();
        assert_eq!(damaged.len(), 1, "{damaged:?}");
        assert_eq!(damaged[0].mdc, id.object_id().mdc());
        let why = &damaged[0].reason;
        assert!(why.contains("type 8"), "{why}");
        assert!(why.contains(&format!("format-{version}")), "{why}");
        let mut buf = [0u8; 16];
        match pool.mblock_read(id, 0, &mut buf) {
            Err(mpool::Error::Metadata(mpool::MetadataError::Damaged { mdc, .. })) => {
                assert_eq!(mdc, id.object_id().mdc())
            }
            other => panic!("expected the damaged-MDC error, got {other:?}"),
        }
    }
}

#[test]
fn an_unreadable_commit_in_the_last_flush_set_is_kept_and_reads_report_it() {
    // A read error is no evidence that the commit did not finish: the
    // object stays, and its reads report the error instead of data.
    let c = (0..12u64)
        .map(crash_in_commit)
        .find(|c| !c.committed && open(&c.after, true).object_props(c.id).is_ok())
        .expect("a crash point that leaves the record on the media");
    let base = u64::from(c.zone) * ZONE;
    c.after.fail_reads(base..base + LEN as u64);
    let p = open(&c.after, false);
    assert!(p.object_props(c.id).is_ok(), "unverifiable commit dropped");
    assert!(p.mblock_read(c.id, 0, &mut [0u8; 16]).is_err());
    assert!(p.object_props(c.keep).is_ok());
}

#[test]
fn a_compaction_whose_end_marker_failed_stops_its_mdc_until_reopen() {
    // Which log a reopen takes is unknown once the end marker's write or
    // flush failed: the MDC must take no more records, not append to a log
    // that may be abandoned.
    let dev = fresh_pool();
    let pool = open(&dev, false);
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(id, &pattern(3000, 4)).unwrap();
    pool.mblock_commit(id).unwrap();
    drop(pool);
    let img = dev.durable_image();
    // Count a compaction's operations on one copy of the pool...
    let probe = Arc::new(FaultDevice::from_image(img.clone(), 512));
    let p = open(&probe, false);
    let before = probe.stats().ops;
    p.compact_metadata().unwrap();
    let ops = probe.stats().ops - before;
    drop(p);
    // ...and fail the last one (inside `cend`) on another.
    let dev = Arc::new(FaultDevice::from_image(img, 512));
    let p = open(&dev, false);
    dev.fail_op(dev.stats().ops + ops);
    assert!(p.compact_metadata().is_err());
    dev.clear_failures();
    let more = p.mblock_alloc(MediaClass::Capacity);
    let r = more.and_then(|m| {
        p.mblock_write(m, &pattern(100, 5))?;
        p.mblock_commit(m).map(|_| ())
    });
    assert!(
        matches!(
            r,
            Err(mpool::Error::Metadata(mpool::MetadataError::Failed { .. }))
        ),
        "the MDC took a record after a compaction in doubt: {r:?}"
    );
    drop(p);
    let p = open(&Arc::new(dev.reboot(CrashMode::KeepAll)), false);
    let mut got = vec![0u8; 3000];
    p.mblock_read(id, 0, &mut got).unwrap();
    assert_eq!(got, pattern(3000, 4));
}
