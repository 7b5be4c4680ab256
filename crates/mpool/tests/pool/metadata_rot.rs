//! Rot in the last flush set of a metadata log is never taken for a torn
//! write (issue #10): in a version-3 pool every metadata log is mirrored,
//! and one flipped byte anywhere in the last flush set of MDC0, of each of
//! MDC1..N or of a user MDC leaves the pool opening with exactly the object
//! set it had, or failing with a typed error (docs/format.md, "Mirrored
//! logs").

use mpool::dev::{DeviceRef, FaultDevice};
use mpool::{Error, MblockId, MdcId, MediaClass, MlogId, ObjType, Pool};
use std::sync::Arc;

const ZONE: u64 = 64 << 10;
const ZONES: u64 = 256;

fn content(i: usize) -> Vec<u8> {
    (0..700 + i * 300).map(|j| (i * 7 + j * 13) as u8).collect()
}

/// Everything a client can see of the pool: objects (ID, kind, class,
/// length, zone, committed, recorded CRC), each mblock's content CRC, each
/// mlog's and user MDC's records.
fn state(p: &Pool) -> Result<Vec<String>, Error> {
    let mut objs = p.objects()?;
    objs.sort_by_key(|o| o.id.raw());
    let mut out = Vec::new();
    for o in objs {
        out.push(format!(
            "{} {:?} {:?} len {} zone {} committed {} crc {:?}",
            o.id, o.ty, o.class, o.len, o.zone, o.committed, o.crc
        ));
        match o.ty {
            ObjType::Mblock => {
                let id = MblockId::try_from(o.id)?;
                let mut buf = vec![0u8; o.len as usize];
                p.mblock_read(id, 0, &mut buf)?;
                out.push(format!("  content crc {:#x}", crc32c::crc32c(&buf)));
            }
            ObjType::Mlog => {
                let log = p.mlog_open(MlogId::try_from(o.id)?)?;
                for r in log.reader().map_err(mpool::MetadataError::from)? {
                    let r = r.map_err(mpool::MetadataError::from)?;
                    out.push(format!("  record {r:?}"));
                }
            }
            ObjType::Mdc => {
                let mdc = p.mdc_open(MdcId::try_from(o.id)?)?;
                for r in mdc.reader().map_err(mpool::MetadataError::from)? {
                    let r = r.map_err(mpool::MetadataError::from)?;
                    out.push(format!("  record {r:?}"));
                }
            }
        }
    }
    Ok(out)
}

struct Built {
    dev: Arc<FaultDevice>,
    deleted: MblockId,
    user_mdc: MdcId,
}

/// A version-3 pool with committed mblocks (some in each MDC), an mblock
/// whose durable `Delete` is the last record of its MDC, a committed mlog
/// with records and a user MDC with records.
fn build() -> Built {
    let dev = Arc::new(FaultDevice::new(ZONES * ZONE, 512));
    let d: DeviceRef = dev.clone();
    Pool::format_on("rot", &[(d.clone(), MediaClass::Capacity, ZONE)], "").unwrap();
    let p = Pool::open_on(vec![d.clone()], false).unwrap();
    assert!(
        p.metadata_mirrored().unwrap(),
        "a new pool mirrors its metadata"
    );
    let mut mbs = Vec::new();
    for i in 0..6 {
        let id = p.mblock_alloc(MediaClass::Capacity).unwrap();
        p.mblock_write(id, &content(i)).unwrap();
        p.mblock_commit(id).unwrap();
        mbs.push(id);
    }
    let log = p.mlog_alloc(MediaClass::Capacity, ZONE).unwrap();
    p.mlog_commit(log).unwrap();
    let l = p.mlog_open(log).unwrap();
    for i in 0..5u8 {
        l.append(&[i; 40], true).unwrap();
    }
    drop(l);
    let user_mdc = p.mdc_alloc(MediaClass::Capacity, ZONE).unwrap();
    p.mdc_commit(user_mdc).unwrap();
    let m = p.mdc_open(user_mdc).unwrap();
    for i in 0..4u8 {
        m.append(&[0x30 + i; 25], i % 2 == 1).unwrap();
    }
    m.sync().unwrap();
    drop(m);
    p.close().unwrap();
    // A new session: the deletes are the last records of their MDCs (no
    // commit in this session, so the close seals nothing after them).
    let p = Pool::open_on(vec![d], false).unwrap();
    let deleted = mbs[0];
    p.mblock_delete(deleted).unwrap();
    p.mblock_delete(mbs[3]).unwrap();
    p.close().unwrap();
    Built {
        dev,
        deleted,
        user_mdc,
    }
}

fn open_ro(b: &Built) -> Result<Pool, Error> {
    let d: DeviceRef = b.dev.clone();
    Pool::open_on(vec![d], true)
}

/// The metadata logs' last flush sets, and the user MDC's, as device ranges.
fn tails(b: &Built) -> Vec<(String, std::ops::Range<u64>)> {
    let p = open_ro(b).unwrap();
    let mut t = p.metadata_last_flush_sets().unwrap();
    let m = p.mdc_open(b.user_mdc).unwrap();
    t.push((
        format!("user MDC {}", b.user_mdc),
        m.last_flush_set().unwrap().unwrap(),
    ));
    t
}

#[test]
fn every_byte_of_every_metadata_log_tail_flipped_keeps_the_exact_state() {
    let t0 = std::time::Instant::now();
    let b = build();
    let want = {
        let p = open_ro(&b).unwrap();
        state(&p).unwrap()
    };
    assert!(want.iter().any(|l| l.contains("record")));
    let tails = tails(&b);
    assert!(tails.len() >= 6, "MDC0, MDC1..4, the user MDC: {tails:?}");
    let (mut flips, mut errors) = (0u64, 0u64);
    for (name, range) in &tails {
        for off in range.clone() {
            let bit = (off % 8) as u8;
            b.dev.flip_bit(off, bit);
            match open_ro(&b).and_then(|p| state(&p)) {
                Ok(got) => assert_eq!(
                    got, want,
                    "{name}: flip of bit {bit} at device offset {off} changed the object set"
                ),
                Err(e) => {
                    // Allowed only as a typed metadata error that names
                    // the MDC and the record.
                    let s = e.to_string();
                    assert!(
                        matches!(e, Error::Metadata(_))
                            && s.contains("MDC")
                            && s.contains("offset"),
                        "{name}: flip at {off}: {e:?}"
                    );
                    errors += 1;
                }
            }
            b.dev.flip_bit(off, bit);
            flips += 1;
        }
    }
    eprintln!(
        "{flips} flips over {} log tails ({errors} typed errors) in {:?}",
        tails.len(),
        t0.elapsed()
    );
    assert_eq!(
        errors, 0,
        "every single flip is repaired from the other copy"
    );
}

/// The original report: one id byte of the durable `Delete` at the end of
/// an MDC flipped brought the deleted mblock back, and `check` found
/// nothing. Now it stays deleted, the pool takes appends, and `check` finds
/// no problem.
#[test]
fn a_flipped_delete_record_keeps_the_mblock_deleted() {
    let b = build();
    let want = state(&open_ro(&b).unwrap()).unwrap();
    let id = b.deleted;
    let name = format!("MDC{}", id.object_id().mdc());
    let (_, range) = tails(&b).into_iter().find(|(n, _)| *n == name).unwrap();
    let img = b.dev.durable_image();
    let bytes = id.object_id().raw().to_le_bytes();
    let at = (range.start as usize..range.end as usize - 8)
        .find(|&o| img[o..o + 8] == bytes)
        .expect("the Delete record's id in the log's last flush set");
    b.dev.flip_bit(at as u64 + 2, 4);
    let d: DeviceRef = b.dev.clone();
    let p = Pool::open_on(vec![d.clone()], false).unwrap();
    assert_eq!(state(&p).unwrap(), want, "the deleted mblock stays deleted");
    assert!(p.objects().unwrap().iter().all(|o| o.id != id.object_id()));
    let rep = p.check(&mut |_, _| {}).unwrap();
    assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    // The pool goes on: a commit after the repaired tail survives a reopen.
    let m = p.mblock_alloc(MediaClass::Capacity).unwrap();
    p.mblock_write(m, b"after").unwrap();
    p.mblock_commit(m).unwrap();
    p.close().unwrap();
    let p = Pool::open_on(vec![d], false).unwrap();
    let ids: Vec<_> = p.objects().unwrap().iter().map(|o| o.id).collect();
    assert!(ids.contains(&m.object_id()) && !ids.contains(&id.object_id()));
}

/// The golden version-1 pool (plain metadata logs), its superblock set to
/// version 3 as an upgrade does.
fn golden_as_v3() -> Arc<FaultDevice> {
    let f = include_bytes!("../golden/pool-v1.img");
    let size = u64::from_le_bytes(f[8..16].try_into().unwrap()) as usize;
    let mut img = vec![0u8; size];
    let mut rest = &f[20..];
    while !rest.is_empty() {
        let off = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
        img[off..off + 512].copy_from_slice(&rest[8..8 + 512]);
        rest = &rest[8 + 512..];
    }
    let dev = Arc::new(FaultDevice::from_image(img, 512));
    let d: DeviceRef = dev.clone();
    let read = mpool::superblock::read(d.as_ref()).unwrap();
    let mut sb = read.copies[0].clone().unwrap();
    assert_eq!(sb.version, 1);
    sb.version = 3;
    mpool::superblock::write(d.as_ref(), &sb).unwrap();
    dev
}

/// An older pool's plain metadata logs become mirrored through
/// `mirror_metadata` (MDC0 included), keep their objects, and a crash at
/// any device operation of the conversion leaves each MDC whole: the pool
/// opens with the same objects, and converting again finishes the job.
#[test]
fn mirror_metadata_converts_plain_logs_crash_safely() {
    let dev = golden_as_v3();
    let d: DeviceRef = dev.clone();
    let want = state(&Pool::open_on(vec![d.clone()], true).unwrap()).unwrap();
    let p = Pool::open_on(vec![d.clone()], false).unwrap();
    assert!(!p.metadata_mirrored().unwrap());
    let ops = dev.stats().ops;
    let n = p.mirror_metadata().unwrap();
    let total = dev.stats().ops - ops;
    assert!(n >= 2, "MDC0 and MDC1..N: {n}");
    assert!(p.metadata_mirrored().unwrap());
    assert_eq!(p.mirror_metadata().unwrap(), 0);
    p.close().unwrap();
    let p = Pool::open_on(vec![d], false).unwrap();
    assert!(p.metadata_mirrored().unwrap());
    assert_eq!(state(&p).unwrap(), want);
    drop(p);
    // A crash after each device operation of the conversion.
    for k in 0..total {
        let dev = golden_as_v3();
        let d: DeviceRef = dev.clone();
        let p = Pool::open_on(vec![d], false).unwrap();
        dev.crash_after(dev.stats().ops + k);
        let _ = p.mirror_metadata();
        drop(p);
        for mode in [
            mpool::dev::CrashMode::DropAll,
            mpool::dev::CrashMode::KeepAll,
        ] {
            let r: DeviceRef = Arc::new(dev.reboot(mode));
            let p = Pool::open_on(vec![r.clone()], false).unwrap();
            assert_eq!(state(&p).unwrap(), want, "crash after op {k}");
            p.mirror_metadata().unwrap();
            assert!(p.metadata_mirrored().unwrap());
            p.close().unwrap();
            let p = Pool::open_on(vec![r], true).unwrap();
            assert_eq!(state(&p).unwrap(), want, "crash after op {k}, converted");
        }
    }
}

/// Mirrored metadata needs version 3: an older pool is refused.
#[test]
fn mirror_metadata_refuses_an_older_pool() {
    let dev = golden_as_v3();
    let d: DeviceRef = dev.clone();
    let read = mpool::superblock::read(d.as_ref()).unwrap();
    let mut sb = read.copies[0].clone().unwrap();
    sb.version = 2;
    mpool::superblock::write(d.as_ref(), &sb).unwrap();
    let p = Pool::open_on(vec![d], false).unwrap();
    assert!(matches!(
        p.mirror_metadata(),
        Err(Error::InvalidArgument(_))
    ));
    assert!(!p.metadata_mirrored().unwrap());
}

/// Both copies of a durable record damaged (a double fault) before a later
/// flush set: the pool opens degraded with that MDC reported damaged, by
/// name and record, never with an object set silently changed.
#[test]
fn both_copies_of_an_earlier_record_damaged_open_the_pool_degraded() {
    let b = build();
    let id = b.deleted;
    let name = format!("MDC{}", id.object_id().mdc());
    let (_, range) = tails(&b).into_iter().find(|(n, _)| *n == name).unwrap();
    // The MDC's active log is one zone: from its start to its last flush
    // set, the id appears in the commit record's two copies, then in the
    // Delete's two.
    let start = range.start / ZONE * ZONE;
    let img = b.dev.durable_image();
    let bytes = id.object_id().raw().to_le_bytes();
    let at: Vec<u64> = (start as usize..range.end as usize - 8)
        .filter(|&o| img[o..o + 8] == bytes)
        .map(|o| o as u64)
        .collect();
    assert_eq!(at.len(), 4, "commit and Delete, two copies each: {at:?}");
    b.dev.flip_bit(at[0] + 1, 0);
    b.dev.flip_bit(at[1] + 1, 0);
    // The pool opens degraded: that MDC is reported damaged, by name and
    // with the record's offset; its objects are not shown (nor the deleted
    // one brought back).
    let p = open_ro(&b).expect("opens degraded");
    let damaged = p.damaged_mdcs();
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    assert_eq!(format!("MDC{}", damaged[0].mdc), name);
    assert!(
        damaged[0].reason.contains(&format!("{name}:")) && damaged[0].reason.contains("offset"),
        "{damaged:?}"
    );
    assert!(p.objects().unwrap().iter().all(|o| o.id != id.object_id()));
    match p.object_props(id) {
        Err(Error::Metadata(mpool::MetadataError::Damaged { mdc, .. })) => {
            assert_eq!(mdc, id.object_id().mdc())
        }
        other => panic!("expected the damaged-MDC error, got {other:?}"),
    }
    drop(p);
    // One copy repaired: the exact state again.
    b.dev.flip_bit(at[1] + 1, 0);
    let p = open_ro(&b).unwrap();
    assert!(p.objects().unwrap().iter().all(|o| o.id != id.object_id()));
}

/// A user mlog asked to be mirrored keeps every record through one flipped
/// byte in its last flush set; a plain one is refused nothing, and an older
/// pool refuses mirrored mlogs.
#[test]
fn a_mirrored_user_mlog_survives_rot_in_its_last_flush_set() {
    let dev = Arc::new(FaultDevice::new(ZONES * ZONE, 512));
    let d: DeviceRef = dev.clone();
    Pool::format_on("mlogrot", &[(d.clone(), MediaClass::Capacity, ZONE)], "").unwrap();
    let p = Pool::open_on(vec![d.clone()], false).unwrap();
    let id = p.mlog_alloc_mirrored(MediaClass::Capacity, ZONE).unwrap();
    p.mlog_commit(id).unwrap();
    let log = p.mlog_open(id).unwrap();
    assert!(log.is_mirrored());
    let recs: Vec<Vec<u8>> = (0..6u8)
        .map(|i| vec![i; 30 + usize::from(i) * 50])
        .collect();
    for r in &recs {
        log.append(r, true).unwrap();
    }
    let tail = log.last_flush_set().unwrap().unwrap();
    drop(log);
    p.close().unwrap();
    for off in tail {
        dev.flip_bit(off, (off % 8) as u8);
        let p = Pool::open_on(vec![d.clone()], true).unwrap();
        let got: Vec<Vec<u8>> = p
            .mlog_open(id)
            .unwrap()
            .reader()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got, recs, "flip at {off}");
        drop(p);
        dev.flip_bit(off, (off % 8) as u8);
    }
    // Older pools refuse mirrored mlogs.
    let old = golden_as_v3();
    let od: DeviceRef = old.clone();
    let read = mpool::superblock::read(od.as_ref()).unwrap();
    let mut sb = read.copies[0].clone().unwrap();
    sb.version = 2;
    mpool::superblock::write(od.as_ref(), &sb).unwrap();
    let p = Pool::open_on(vec![od], false).unwrap();
    assert!(matches!(
        p.mlog_alloc_mirrored(MediaClass::Capacity, ZONE),
        Err(Error::InvalidArgument(_))
    ));
}
