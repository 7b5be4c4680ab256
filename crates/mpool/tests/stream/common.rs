//! Helpers of the stream tests.
#![allow(dead_code)]

use mpool::dev::{DeviceRef, FaultDevice, MemDevice};
use mpool::{MediaClass, Pool, StreamOptions};
use std::sync::Arc;

/// Zone size of the test pools.
pub const ZONE: u64 = 1 << 20;

/// Record `i` of a test: length varies with `i`, bytes depend on it.
pub fn record(i: u64, max: usize) -> Vec<u8> {
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 17;
    let len = 1 + (h as usize % max);
    (0..len).map(|j| (i as usize * 31 + j * 7) as u8).collect()
}

/// A pool on a fault device of `zones` zones (its device, for crashes).
pub fn fault_pool(zones: u64) -> (Arc<FaultDevice>, Pool) {
    let dev = Arc::new(FaultDevice::new(zones * ZONE, 4096));
    let d: DeviceRef = dev.clone();
    Pool::format_on(
        "stream",
        &[(Arc::clone(&d), MediaClass::Capacity, ZONE)],
        "",
    )
    .unwrap();
    (dev, Pool::open_on(vec![d], false).unwrap())
}

/// Reopen a pool on `dev`.
pub fn reopen(dev: &Arc<FaultDevice>) -> Pool {
    let d: DeviceRef = dev.clone();
    Pool::open_on(vec![d], false).unwrap()
}

/// A pool on memory devices: capacity, and staging when `staging`.
pub fn mem_pool(zones: u64, staging: bool) -> Pool {
    let d: DeviceRef = Arc::new(MemDevice::new(zones * ZONE, 512));
    let mut devs = vec![(d, MediaClass::Capacity, ZONE)];
    if staging {
        let s: DeviceRef = Arc::new(MemDevice::new(16 * ZONE, 512));
        devs.push((s, MediaClass::Staging, ZONE));
    }
    Pool::format_on("stream", &devs, "").unwrap();
    let ds = devs.into_iter().map(|d| d.0).collect();
    Pool::open_on(ds, false).unwrap()
}

/// Options with small segments.
pub fn small(seg: u64) -> StreamOptions {
    StreamOptions {
        segment_bytes: Some(seg),
        ..StreamOptions::default()
    }
}

/// Zones in use on the capacity class.
pub fn used(pool: &Pool) -> u64 {
    pool.usage()
        .iter()
        .filter(|u| u.class == MediaClass::Capacity)
        .map(|u| u.used)
        .sum()
}
