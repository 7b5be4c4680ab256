//! Reopen after a clean close and after crashes: acknowledged records stay
//! at their offsets, and offsets go on from the last one.

use crate::common::*;
use mpool::dev::CrashMode;
use mpool::dev::{DeviceRef, FaultDevice};
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

/// The records below a tail the catalog lists are durable before the
/// listing: a crash at any device operation of rolls over unflushed group
/// appends opens without a gap (a tail listed past the records before it
/// is corruption to an open), and appends go on where the records end.
#[test]
fn a_crash_while_rolls_list_tails_over_unflushed_records_leaves_no_gap() {
    let (dev, pool) = fault_pool(12);
    pool.stream_create("g", &small(64 << 10)).unwrap();
    drop(pool);
    let image = dev.durable_image();
    // One run of the workload on a copy of `image`, crashing after `point`
    // device operations (none: a full run); the device and the records
    // acknowledged.
    let run = |point: Option<u64>| -> (FaultDevice, u64) {
        let dev = Arc::new(FaultDevice::from_image(image.clone(), 4096));
        let d: DeviceRef = dev.clone();
        let pool = Pool::open_on(vec![d], false).unwrap();
        let s = pool.stream_open("g").unwrap();
        // The background thread stops (closing one handle) before it
        // does anything: from here on, one thread does everything, and
        // each roll makes its spare and lists the tail before it itself.
        s.clone().close().unwrap();
        if let Some(p) = point {
            dev.crash_after(dev.stats().ops + p);
        }
        let mut acked = 0;
        let mut i = 0u64;
        'work: for _ in 0..3 {
            for _ in 0..5 {
                if s.append_with(&record(i, 300), Durability::Group).is_err() {
                    break 'work;
                }
                i += 1;
            }
            if s.roll().is_err() {
                break;
            }
        }
        if s.sync().is_ok() {
            acked = i;
        }
        drop(s);
        drop(pool);
        let d = Arc::into_inner(dev).expect("the only reference to the device");
        (d, acked)
    };
    let (full, acked) = run(None);
    assert_eq!(acked, 15, "the full run acknowledges every record");
    let total = full.stats().ops;
    assert!(total > 20, "{total} device operations");
    // Every point with unflushed writes lost; every third with them kept
    // or torn at random.
    for point in 0..total {
        let random = CrashMode::Random {
            keep: 0.5,
            tear: 0.5,
            seed: point,
        };
        let modes = if point % 3 == 0 {
            vec![CrashMode::DropAll, random]
        } else {
            vec![CrashMode::DropAll]
        };
        for mode in modes {
            let (dev, acked) = run(Some(point));
            let d: DeviceRef = Arc::new(dev.reboot(mode));
            let pool = Pool::open_on(vec![d], false).unwrap();
            let s = pool.stream_open("g").unwrap();
            let next = s.next_offset();
            assert!(next >= acked, "point {point}: next {next} below {acked}");
            for off in 0..next {
                assert_eq!(s.read(off).unwrap(), record(off, 300), "point {point}");
            }
            let after = s.append(b"after");
            assert_eq!(
                after.as_ref().ok(),
                Some(&next),
                "point {point} ({mode:?}): {after:?}"
            );
        }
    }
}
