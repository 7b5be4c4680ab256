//! Create, list, append (sync, grouped, batches), read, iterate, stat, delete.

use crate::common::*;
use mpool::{Durability, Error, MediaClass, StreamError, StreamOptions};

#[test]
fn offsets_start_at_zero_and_are_dense() {
    let pool = mem_pool(32, false);
    assert!(pool.streams().unwrap().is_empty());
    pool.stream_create("orders", &StreamOptions::default())
        .unwrap();
    pool.stream_create("audit", &StreamOptions::default())
        .unwrap();
    assert_eq!(pool.streams().unwrap(), vec!["audit", "orders"]);
    assert!(matches!(
        pool.stream_create("orders", &StreamOptions::default()),
        Err(Error::Stream(StreamError::Exists(_)))
    ));
    assert!(matches!(
        pool.stream_create("bad name", &StreamOptions::default()),
        Err(Error::Stream(StreamError::InvalidName { .. }))
    ));
    let s = pool.stream_open("orders").unwrap();
    assert_eq!(s.append(b"a").unwrap(), 0);
    assert_eq!(s.append_with(b"bb", Durability::Group).unwrap(), 1);
    let r = s
        .append_batch(&[b"c", b"", b"ddd"], Durability::Sync)
        .unwrap();
    assert_eq!(r, 2..5);
    s.sync().unwrap();
    assert_eq!(s.read(1).unwrap(), b"bb");
    assert_eq!(s.read(3).unwrap(), b"");
    let all: Vec<(u64, Vec<u8>)> = s.iter(0).map(|r| r.unwrap()).collect();
    assert_eq!(all.len(), 5);
    assert_eq!(all[4], (4, b"ddd".to_vec()));
    assert_eq!(s.iter(3).count(), 2);
    assert!(matches!(
        s.read(5),
        Err(Error::Stream(StreamError::Beyond {
            offset: 5,
            end: 5,
            ..
        }))
    ));
    let st = s.stat();
    assert_eq!(
        (st.first, st.next, st.durable, st.tail_records),
        (0, 5, 5, 5)
    );
    assert_eq!(st.tail_class, MediaClass::Capacity.to_string());
    // Open twice: one shared stream.
    let s2 = pool.stream_open("orders").unwrap();
    assert_eq!(s2.append(b"e").unwrap(), 5);
    assert_eq!(s.read(5).unwrap(), b"e");
    assert!(matches!(
        pool.stream_delete("orders"),
        Err(Error::Stream(StreamError::Busy(_)))
    ));
    drop((s, s2));
    pool.stream_delete("orders").unwrap();
    assert_eq!(pool.streams().unwrap(), vec!["audit"]);
    assert!(matches!(
        pool.stream_open("orders"),
        Err(Error::Stream(StreamError::NotFound(_)))
    ));
}

#[test]
fn tail_on_staging_when_the_pool_has_it() {
    let pool = mem_pool(32, true);
    pool.stream_create("s", &small(64 << 10)).unwrap();
    let s = pool.stream_open("s").unwrap();
    for i in 0..2000 {
        s.append_with(&record(i, 200), Durability::Group).unwrap();
    }
    s.sync().unwrap();
    s.roll().unwrap();
    s.wait_sealed().unwrap();
    let st = s.stat();
    assert_eq!(st.tail_class, MediaClass::Staging.to_string());
    assert!(st.segments.len() >= 2, "{st:?}");
    for i in 0..2000 {
        assert_eq!(s.read(i).unwrap(), record(i, 200));
    }
}

#[test]
fn records_of_one_mib_and_too_large_batches() {
    let pool = mem_pool(64, false);
    pool.stream_create("big", &StreamOptions::default())
        .unwrap();
    let s = pool.stream_open("big").unwrap();
    // 1 MiB zones hold a bit less than 1 MiB of frames: ask the limit.
    let one = vec![0x5a; 900 << 10];
    for i in 0..4 {
        assert_eq!(s.append(&one).unwrap(), i);
    }
    let huge = vec![1u8; 2 << 20];
    assert!(matches!(
        s.append(&huge),
        Err(Error::Stream(StreamError::TooLarge { .. }))
    ));
    s.wait_sealed().unwrap();
    for i in 0..4 {
        assert_eq!(s.read(i).unwrap(), one);
    }
}

#[test]
fn records_of_more_than_one_mib_with_larger_zones() {
    use mpool::dev::{DeviceRef, MemDevice};
    let zone = 4u64 << 20;
    let d: DeviceRef = std::sync::Arc::new(MemDevice::new(24 * zone, 4096));
    mpool::Pool::format_on("big", &[(d.clone(), MediaClass::Capacity, zone)], "").unwrap();
    let pool = mpool::Pool::open_on(vec![d], false).unwrap();
    pool.stream_create("big", &StreamOptions::default())
        .unwrap();
    let s = pool.stream_open("big").unwrap();
    let big: Vec<u8> = (0..(1 << 20) + 4096).map(|i| (i % 251) as u8).collect();
    for i in 0..6 {
        assert_eq!(s.append(&big).unwrap(), 2 * i);
        assert_eq!(s.append(b"x").unwrap(), 2 * i + 1);
    }
    s.roll().unwrap();
    s.wait_sealed().unwrap();
    assert!(!s.stat().segments.is_empty());
    for i in 0..6 {
        assert_eq!(s.read(2 * i).unwrap(), big);
        assert_eq!(s.read(2 * i + 1).unwrap(), b"x");
    }
}

#[test]
fn producers_on_many_threads_share_flushes_and_offsets_stay_dense() {
    let pool = mem_pool(64, false);
    pool.stream_create("mt", &small(128 << 10)).unwrap();
    let s = pool.stream_open("mt").unwrap();
    let got = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for t in 0..4u64 {
            let (s, got) = (&s, &got);
            sc.spawn(move || {
                for i in 0..300u64 {
                    let v = t * 1000 + i;
                    let d = if i % 2 == 0 {
                        Durability::Sync
                    } else {
                        Durability::Group
                    };
                    let off = s.append_with(&v.to_le_bytes(), d).unwrap();
                    got.lock().unwrap().push((off, v));
                }
            });
        }
    });
    s.sync().unwrap();
    let mut got = got.into_inner().unwrap();
    got.sort();
    assert_eq!(got.len(), 1200);
    for (i, (off, v)) in got.iter().enumerate() {
        assert_eq!(*off, i as u64);
        assert_eq!(s.read(*off).unwrap(), v.to_le_bytes());
    }
}
