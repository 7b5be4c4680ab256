//! An mblock's first 256 KiB wait in memory until its commit, which writes
//! them with the checksum table in one request; past that, writes go to
//! the device as they come. Either way the committed content reads back
//! whole, and an aborted mblock wrote nothing.

use mpool::dev::{CrashMode, Device, DeviceRef, FaultDevice};
use mpool::{MediaClass, Pool};
use std::sync::Arc;

const ZONE: u64 = 1 << 20;

fn bytes(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

/// A pool of one capacity device of 64 zones, on a fault device.
fn fault_pool(name: &str) -> (Arc<FaultDevice>, Pool) {
    let fault = Arc::new(FaultDevice::new(64 * ZONE, 4096));
    let dev: DeviceRef = fault.clone();
    Pool::format_on(name, &[(Arc::clone(&dev), MediaClass::Capacity, ZONE)], "").unwrap();
    let pool = Pool::open_on(vec![dev], false).unwrap();
    (fault, pool)
}

#[test]
fn a_small_mblock_is_one_write_at_its_commit() {
    let (fault, pool) = fault_pool("held");

    // 64 KiB in three pieces: nothing reaches the device before the commit.
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    let data = bytes(1, 64 << 10);
    let before = fault.stats().writes;
    for piece in data.chunks(25_000) {
        pool.mblock_write(id, piece).unwrap();
    }
    assert_eq!(fault.stats().writes, before, "writes before the commit");
    let zone = u64::from(pool.object_props(id).unwrap().zone);
    let at_zone = |f: &FaultDevice| f.live_image()[(zone * ZONE) as usize..][..16].to_vec();
    assert_eq!(
        at_zone(&fault),
        vec![0u8; 16],
        "content on the device before its commit"
    );
    pool.mblock_commit(id).unwrap();
    let mut back = vec![0u8; data.len()];
    pool.mblock_read(id, 0, &mut back).unwrap();
    assert_eq!(back, data);
    assert_eq!(at_zone(&fault), data[..16].to_vec());

    // Aborted while held: nothing was written.
    let gone = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    let before = fault.stats().writes;
    pool.mblock_write(gone, &bytes(2, 100_000)).unwrap();
    pool.mblock_abort(gone).unwrap();
    assert_eq!(fault.stats().writes, before);

    // Past 256 KiB the content goes out as it comes.
    let big = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    let data = bytes(3, 600 << 10);
    let before = fault.stats().writes;
    pool.mblock_write(big, &data[..200 << 10]).unwrap();
    assert_eq!(fault.stats().writes, before, "200 KiB are held");
    pool.mblock_write(big, &data[200 << 10..]).unwrap();
    assert!(fault.stats().writes > before, "600 KiB are not held");
    pool.mblock_commit(big).unwrap();
    let mut back = vec![0u8; data.len()];
    pool.mblock_read(big, 0, &mut back).unwrap();
    assert_eq!(back, data);
}

/// `Pool::mblock_commit_beside` runs the caller's side work exactly once,
/// before the commit's flush: a write the side made to the device is
/// durable when the commit returns (a crash that drops every unflushed
/// write keeps it). On a commit that fails, before or after its content
/// write, the side still runs once.
#[test]
fn a_commit_runs_its_side_work_once_before_its_flush() {
    let (fault, pool) = fault_pool("beside");

    // The side writes a marker into the last zone, which no object uses.
    let marker_at = 63 * ZONE;
    let marker = bytes(9, 4096);
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    let data = bytes(4, 64 << 10);
    pool.mblock_write(id, &data).unwrap();
    let mut sides = 0;
    pool.mblock_commit_beside(id, &mut || {
        sides += 1;
        fault.write_slice(marker_at, &marker).unwrap();
    })
    .unwrap();
    assert_eq!(sides, 1);
    let image = fault.crash_image(CrashMode::DropAll);
    assert!(
        image[marker_at as usize..][..4096] == marker[..],
        "the side's write is durable once the commit returned"
    );
    drop(pool);
    let pool = Pool::open_on(
        vec![Arc::new(fault.reboot(CrashMode::DropAll)) as DeviceRef],
        false,
    )
    .unwrap();
    let mut back = vec![0u8; data.len()];
    pool.mblock_read(id, 0, &mut back).unwrap();
    assert_eq!(back, data);

    // Not an uncommitted mblock any more: the commit fails, the side ran.
    let mut sides = 0;
    assert!(pool.mblock_commit_beside(id, &mut || sides += 1).is_err());
    assert_eq!(sides, 1, "side ran once beside a refused commit");
}

/// A content write that fails: the commit fails, its side ran once, and
/// only abort is left for the mblock.
#[test]
fn a_failed_content_write_still_runs_the_side_once() {
    let (fault, pool) = fault_pool("beside-eio");
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(id, &bytes(5, 10_000)).unwrap();
    let zone = u64::from(pool.object_props(id).unwrap().zone);
    fault.fail_writes(zone * ZONE..(zone + 1) * ZONE);
    let mut sides = 0;
    assert!(pool.mblock_commit_beside(id, &mut || sides += 1).is_err());
    assert_eq!(sides, 1);
    fault.clear_failures();
    pool.mblock_abort(id).unwrap();
}
