//! Helpers of the mcache tests.
#![allow(dead_code)]

use mpool::dev::{DeviceRef, FaultDevice, MemDevice};
use mpool::{MblockId, MediaClass, Pool};
use std::sync::{Arc, Mutex, MutexGuard};

/// Tests of this binary share the process' cache: one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static L: Mutex<()> = Mutex::new(());
    L.lock().unwrap_or_else(|p| p.into_inner())
}

/// The bytes of object `seed`, `len` long.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let x = (i as u64)
                .wrapping_mul(0x9E37_79B9)
                .wrapping_add(seed * 7919);
            (x ^ (x >> 13) ^ (i as u64 >> 12)) as u8
        })
        .collect()
}

/// A pool on a fault device of `zones` zones of `zone` bytes.
pub fn fault_pool(zones: u64, zone: u64) -> (Arc<FaultDevice>, Pool) {
    let dev = Arc::new(FaultDevice::new(zones * zone, 4096));
    let d: DeviceRef = dev.clone();
    Pool::format_on(
        "mcache",
        &[(Arc::clone(&d), MediaClass::Capacity, zone)],
        "",
    )
    .unwrap();
    (dev, Pool::open_on(vec![d], false).unwrap())
}

/// A pool on a memory device with 512-byte sectors.
pub fn mem_pool(zones: u64, zone: u64) -> Pool {
    let d: DeviceRef = Arc::new(MemDevice::new(zones * zone, 512));
    Pool::format_on(
        "mcache",
        &[(Arc::clone(&d), MediaClass::Capacity, zone)],
        "",
    )
    .unwrap();
    Pool::open_on(vec![d], false).unwrap()
}

/// Commit an mblock holding `data`.
pub fn commit(pool: &Pool, data: &[u8]) -> MblockId {
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(id, data).unwrap();
    pool.mblock_commit(id).unwrap();
    id
}

/// Mappings (VMAs) of this process.
pub fn vmas() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

/// Read-only private anonymous mappings of this process: what an mcache
/// map reserves (thread stacks, heaps and files are other kinds, and come
/// and go with threads and allocations that have nothing to do with maps).
pub fn map_vmas() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&"r--p") && f.get(4) == Some(&"0") && f.len() == 5
        })
        .count()
}

/// Whether this process is root.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}
