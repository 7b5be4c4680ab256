//! A pool written by format version 2 (mpool 0.2.0) opens and reads back
//! exactly, and `upgrade` converts it (and the version-1 golden pool) to
//! the current version with every object read back identically.
//!
//! `golden/pool-v2.img` was made with the `mpool` command built from commit
//! da2aae6 (format version 2, before the version-3 superblock): `create
//! golden-v2 cap.img --size 4608KiB --mblock-size 64KiB --label "v2
//! golden"`, `mblock write` of files of 100, 65536 and 5000 bytes, one of
//! 777 bytes written then `mblock delete`d, `mlog create --capacity 128KiB`
//! and `mlog append` of "one", "two", "three". Content byte `i` of an
//! mblock of length `len` is `(i * 31 + len) as u8`. File layout as the
//! version-1 image (`MPGOLD1\0`, device size u64, sector u32, then (offset
//! u64, sector bytes) for each non-zero sector), with 4096-byte sectors.

use mpool::admin::upgrade::{upgrade_on, UpgradeOptions};
use mpool::dev::{DeviceRef, FaultDevice};
use mpool::{ObjType, Pool};
use std::sync::Arc;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) + len) as u8).collect()
}

fn image() -> (Vec<u8>, u32) {
    let f = include_bytes!("../golden/pool-v2.img");
    assert_eq!(&f[..8], b"MPGOLD1\0");
    let size = u64::from_le_bytes(f[8..16].try_into().unwrap()) as usize;
    let sector = u32::from_le_bytes(f[16..20].try_into().unwrap());
    assert_eq!(sector, 4096);
    let s = sector as usize;
    let mut img = vec![0u8; size];
    let mut rest = &f[20..];
    while !rest.is_empty() {
        let off = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
        img[off..off + s].copy_from_slice(&rest[8..8 + s]);
        rest = &rest[8 + s..];
    }
    (img, sector)
}

/// Everything the pool holds, read back: (type, id, length, crc, content).
type Snapshot = Vec<(ObjType, String, u64, Option<u32>, Vec<Vec<u8>>)>;

fn snapshot(pool: &Pool) -> Snapshot {
    let mut out = Vec::new();
    for o in pool.objects().unwrap() {
        let content = match o.ty {
            ObjType::Mblock => {
                let mut got = vec![0u8; o.len as usize];
                pool.mblock_read(o.id.try_into().unwrap(), 0, &mut got)
                    .unwrap();
                vec![got]
            }
            ObjType::Mlog => pool
                .mlog_open(o.id.try_into().unwrap())
                .unwrap()
                .reader()
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap(),
            _ => pool
                .mdc_open(o.id.try_into().unwrap())
                .unwrap()
                .reader()
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap(),
        };
        out.push((o.ty, o.id.to_string(), o.len, o.crc, content));
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

fn check_v2_contents(snap: &Snapshot) {
    let mblocks: Vec<_> = snap.iter().filter(|o| o.0 == ObjType::Mblock).collect();
    let mut lens: Vec<u64> = mblocks.iter().map(|o| o.2).collect();
    lens.sort();
    assert_eq!(
        lens,
        vec![100, 5000, 65536],
        "committed mblocks (777 deleted)"
    );
    for o in &mblocks {
        assert_eq!(o.4[0], pattern(o.2 as usize), "content of {}", o.1);
        assert_eq!(o.3, Some(crc32c::crc32c(&o.4[0])));
    }
    let logs: Vec<_> = snap.iter().filter(|o| o.0 == ObjType::Mlog).collect();
    assert_eq!(logs.len(), 1, "one user mlog");
    assert_eq!(
        logs[0].4,
        vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
}

/// Upgrade the pool on `dev`, check the result and what it holds.
fn upgrade_and_compare(dev: &DeviceRef, from: u16, before: &Snapshot) {
    let devs = vec![Arc::clone(dev)];
    let mut steps = Vec::new();
    let rep = upgrade_on(&devs, &UpgradeOptions { dry_run: false }, &mut |s| {
        steps.push(s.to_string())
    })
    .unwrap();
    assert_eq!((rep.version_before, rep.version_after), (from, 3));
    assert!(!rep.already_current);
    assert_eq!(steps, rep.steps);
    assert!(rep.generation_after > rep.generation_before);
    let ro = Pool::open_on(devs.clone(), true).unwrap();
    let sb = ro.superblock();
    assert_eq!((sb.version, sb.upgrade_pending), (3, false));
    assert_eq!(&snapshot(&ro), before, "objects after the upgrade");
    drop(ro);
    // Both superblock copies are version 3, with libblkid's descriptor.
    let r = mpool::superblock::read(dev.as_ref()).unwrap();
    for c in &r.copies {
        assert_eq!(c.as_ref().map(|s| s.version), Ok(3));
    }
    let mut b = dev.alloc_buf(4096);
    dev.read_at(0, &mut b).unwrap();
    assert_eq!(&b[..8], b"mpoolDev");
    // Again: nothing to do, nothing written.
    let again = upgrade_on(&devs, &UpgradeOptions { dry_run: false }, &mut |_| {}).unwrap();
    assert!(again.already_current);
    assert_eq!(again.generation_after, rep.generation_after);
    // A read-write open and new objects work on the upgraded pool.
    let pool = Pool::open_on(devs, false).unwrap();
    let id = pool.mblock_alloc(mpool::MediaClass::Capacity).unwrap();
    pool.mblock_write(id, &pattern(4321)).unwrap();
    pool.mblock_commit(id).unwrap();
    let mut got = vec![0u8; 4321];
    pool.mblock_read(id, 0, &mut got).unwrap();
    assert_eq!(got, pattern(4321));
}

#[test]
fn format_v2_pool_opens_reads_back_and_upgrades() {
    let (img, sector) = image();
    let dev: DeviceRef = Arc::new(FaultDevice::from_image(img, sector));
    let ro = Pool::open_on(vec![Arc::clone(&dev)], true).unwrap();
    assert_eq!(ro.name(), "golden-v2");
    assert_eq!(ro.superblock().version, 2);
    let before = snapshot(&ro);
    check_v2_contents(&before);
    drop(ro);
    // A dry run writes nothing.
    let durable = |d: &DeviceRef| {
        let mut b = d.alloc_buf(d.size() as usize);
        d.read_at(0, &mut b).unwrap();
        b.to_vec()
    };
    let was = durable(&dev);
    let dry = upgrade_on(
        &[Arc::clone(&dev)],
        &UpgradeOptions { dry_run: true },
        &mut |_| panic!("a dry run reports no progress"),
    )
    .unwrap();
    assert!(dry.dry_run && !dry.steps.is_empty());
    assert_eq!(durable(&dev), was, "the dry run wrote");
    upgrade_and_compare(&dev, 2, &before);
}

#[test]
fn format_v1_golden_pool_upgrades() {
    let dev: DeviceRef = Arc::new(FaultDevice::from_image(
        super::format_golden_v1::image(),
        512,
    ));
    let ro = Pool::open_on(vec![Arc::clone(&dev)], true).unwrap();
    assert_eq!(ro.superblock().version, 1);
    super::format_golden_v1::check_contents(&ro);
    let before = snapshot(&ro);
    drop(ro);
    upgrade_and_compare(&dev, 1, &before);
}
