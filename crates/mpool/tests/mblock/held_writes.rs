//! An mblock's first 256 KiB wait in memory until its commit, which writes
//! them with the checksum table in one request; past that, writes go to
//! the device as they come. Either way the committed content reads back
//! whole, and an aborted mblock wrote nothing.

use mpool::dev::{DeviceRef, FaultDevice};
use mpool::{MediaClass, Pool};
use std::sync::Arc;

const ZONE: u64 = 1 << 20;

fn bytes(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

#[test]
fn a_small_mblock_is_one_write_at_its_commit() {
    let fault = Arc::new(FaultDevice::new(64 * ZONE, 4096));
    let dev: DeviceRef = fault.clone();
    Pool::format_on(
        "held",
        &[(Arc::clone(&dev), MediaClass::Capacity, ZONE)],
        "",
    )
    .unwrap();
    let pool = Pool::open_on(vec![Arc::clone(&dev)], false).unwrap();

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
