//! Reopen after a clean close and after crashes: acknowledged records stay
//! at their offsets, and offsets go on from the last one.

use crate::common::*;
use mpool::dev::CrashMode;
use mpool::dev::DeviceRef;
use mpool::{Durability, Pool};
use std::sync::Arc;

#[test]
fn reopen_reads_footers_and_the_tail() {
    let (dev, pool) = fault_pool(64);
    pool.stream_create("r", &small(16 << 10)).unwrap();
    let s = pool.stream_open("r").unwrap();
    for i in 0..1500 {
        s.append_with(&record(i, 50), Durability::Group).unwrap();
    }
    s.sync().unwrap();
    s.roll().unwrap();
    s.wait_sealed().unwrap();
    for i in 1500..1600 {
        s.append(&record(i, 50)).unwrap();
    }
    let segs = s.stat().segments;
    drop(s);
    pool.close().unwrap();
    let pool = reopen(&dev);
    let s = pool.stream_open("r").unwrap();
    let st = s.stat();
    assert_eq!(st.segments, segs);
    assert_eq!((st.next, st.tail_records), (1600, 100));
    for i in 0..1600 {
        assert_eq!(s.read(i).unwrap(), record(i, 50));
    }
    assert_eq!(s.append(b"x").unwrap(), 1600);
}

#[test]
fn crashes_keep_acknowledged_records_and_never_reuse_their_offsets() {
    for (k, mode) in [
        CrashMode::DropAll,
        CrashMode::KeepAll,
        CrashMode::Random {
            keep: 0.5,
            tear: 0.5,
            seed: 7,
        },
    ]
    .into_iter()
    .enumerate()
    {
        let (dev, pool) = fault_pool(64);
        pool.stream_create("c", &small(8 << 10)).unwrap();
        let s = pool.stream_open("c").unwrap();
        let mut acked = 0;
        for i in 0..400u64 {
            s.append(&record(i, 120)).unwrap();
            acked = i + 1;
        }
        // Then a crash in the middle of more appends and seals.
        dev.crash_after(dev.stats().ops + 40 + k as u64 * 25);
        for i in 400..800u64 {
            match s.append(&record(i, 120)) {
                Ok(off) => {
                    assert_eq!(off, i);
                    acked = i + 1;
                }
                Err(_) => break,
            }
        }
        drop(s);
        drop(pool);
        let d: DeviceRef = Arc::new(dev.reboot(mode));
        let pool = Pool::open_on(vec![d], false).unwrap();
        let s = pool.stream_open("c").unwrap();
        let next = s.next_offset();
        assert!(next >= acked, "next {next} below acknowledged {acked}");
        for i in 0..next {
            assert_eq!(s.read(i).unwrap(), record(i, 120), "offset {i} ({mode:?})");
        }
        assert_eq!(s.append(b"after").unwrap(), next);
    }
}

/// A roll switches appends to the spare tail before the catalog lists it
/// as a tail (the background thread does that afterwards): a crash in
/// between must keep the acknowledged records appended to the spare.
#[test]
fn records_in_a_spare_the_catalog_does_not_list_yet_survive_a_crash() {
    let (dev, pool) = fault_pool(64);
    pool.stream_create("p", &small(64 << 10)).unwrap();
    let s = pool.stream_open("p").unwrap();
    for i in 0..10u64 {
        assert_eq!(s.append(&record(i, 100)).unwrap(), i);
    }
    // The background thread makes a spare tail (tail + spare: 2 objects).
    let t0 = std::time::Instant::now();
    while s.objects().len() < 2 {
        assert!(t0.elapsed().as_secs() < 60, "no spare tail made");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Stop the background thread (closing one handle), so that nothing
    // lists the spare as a tail after the roll.
    s.clone().close().unwrap();
    s.roll().unwrap();
    for i in 10..20u64 {
        assert_eq!(s.append(&record(i, 100)).unwrap(), i);
    }
    dev.crash_after(dev.stats().ops);
    drop(s);
    drop(pool);
    let dev = Arc::new(dev.reboot(CrashMode::DropAll));
    let d: DeviceRef = dev.clone();
    let pool = Pool::open_on(vec![d], false).unwrap();
    let s = pool.stream_open("p").unwrap();
    assert_eq!(s.next_offset(), 20);
    for i in 0..20u64 {
        assert_eq!(s.read(i).unwrap(), record(i, 100), "offset {i}");
    }
    assert_eq!(s.append(b"after").unwrap(), 20);
    s.close().unwrap();
    pool.close().unwrap();
    // Listed as a tail by the open: a second open finds it the same way.
    let d: DeviceRef = Arc::new(dev.reboot(CrashMode::KeepAll));
    let pool = Pool::open_on(vec![d], false).unwrap();
    let s = pool.stream_open("p").unwrap();
    assert_eq!(s.next_offset(), 21);
    assert_eq!(s.read(20).unwrap(), b"after");
}
