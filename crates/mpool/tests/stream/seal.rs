//! Sealing: full tails become committed segments read through the cache,
//! in the background and by age.

use crate::common::*;
use mpool::{Durability, StreamOptions};
use std::time::{Duration, Instant};

#[test]
fn full_tails_are_sealed_in_the_background() {
    let (_dev, pool) = fault_pool(64);
    pool.stream_create("s", &small(32 << 10)).unwrap();
    let s = pool.stream_open("s").unwrap();
    let n = 3000;
    for i in 0..n {
        s.append_with(&record(i, 100), Durability::Group).unwrap();
    }
    s.sync().unwrap();
    // No call seals: the background thread does (bounded wait, not a timing assertion).
    let t = Instant::now();
    while s.stat().segments.len() < 3 && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let st = s.stat();
    assert!(st.segments.len() >= 3, "{st:?}");
    let mut expect = 0;
    for seg in &st.segments {
        assert_eq!(seg.base, expect);
        expect += seg.count;
    }
    // Every record, from sealed segments and the tail, twice (hot the second time).
    for _ in 0..2 {
        for i in 0..n {
            assert_eq!(s.read(i).unwrap(), record(i, 100), "offset {i}");
        }
    }
    let from: Vec<u64> = s.iter(1234).map(|r| r.unwrap().0).collect();
    assert_eq!(from, (1234..n).collect::<Vec<_>>());
}

#[test]
fn an_old_tail_is_sealed_by_age() {
    let pool = mem_pool(32, false);
    let opts = StreamOptions {
        max_age: Some(Duration::from_millis(50)),
        ..StreamOptions::default()
    };
    pool.stream_create("aged", &opts).unwrap();
    let s = pool.stream_open("aged").unwrap();
    s.append(b"one").unwrap();
    let t = Instant::now();
    while s.stat().segments.is_empty() && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(s.stat().segments.len(), 1);
    assert_eq!(s.read(0).unwrap(), b"one");
    assert_eq!(s.append(b"two").unwrap(), 1);
}

/// A segment of several MiB is copied in 1 MiB writes, paced: every
/// record reads back from the sealed segment, before and after a crash.
#[test]
fn a_segment_of_many_mib_is_sealed_in_paced_pieces() {
    use mpool::dev::{CrashMode, DeviceRef, FaultDevice};
    use mpool::{MediaClass, Pool};
    use std::sync::Arc;
    let zone = 8u64 << 20;
    let dev = Arc::new(FaultDevice::new(12 * zone, 4096));
    let d: DeviceRef = dev.clone();
    Pool::format_on("big", &[(Arc::clone(&d), MediaClass::Capacity, zone)], "").unwrap();
    let pool = Pool::open_on(vec![d], false).unwrap();
    pool.stream_create("s", &StreamOptions::default()).unwrap();
    let s = pool.stream_open("s").unwrap();
    // 6.5 MiB of records of 1 B..16 KiB: seven and a half pieces, paced.
    let (mut n, mut bytes) = (0u64, 0usize);
    while bytes < (13 << 19) {
        let r = record(n, 16 << 10);
        bytes += r.len();
        s.append_with(&r, Durability::Group).unwrap();
        n += 1;
    }
    s.sync().unwrap();
    s.roll().unwrap();
    s.wait_sealed().unwrap();
    let st = s.stat();
    assert_eq!(st.segments.len(), 1, "{st:?}");
    assert_eq!(st.segments[0].count, n);
    for i in 0..n {
        assert_eq!(s.read(i).unwrap(), record(i, 16 << 10), "offset {i}");
    }
    drop(s);
    dev.crash_now();
    let image = dev.reboot(CrashMode::DropAll);
    drop(pool);
    let d: DeviceRef = Arc::new(image);
    let pool = Pool::open_on(vec![d], false).unwrap();
    let s = pool.stream_open("s").unwrap();
    assert_eq!(s.stat().segments.len(), 1);
    for i in 0..n {
        assert_eq!(
            s.read(i).unwrap(),
            record(i, 16 << 10),
            "offset {i} after the crash"
        );
    }
}
