//! A damaged record is a typed error naming the stream and the offset.

use crate::common::*;
use mpool::{Durability, Error, StreamError};

#[test]
fn a_flipped_byte_in_a_sealed_segment_is_a_typed_error() {
    let (dev, pool) = fault_pool(64);
    pool.stream_create("z", &small(256 << 10)).unwrap();
    let s = pool.stream_open("z").unwrap();
    // A marker record, findable on the device.
    let marker = b"MARKER-RECORD-0123456789-MARKER".to_vec();
    let n = 6000u64;
    for i in 0..n {
        let r = if i == 3700 {
            marker.clone()
        } else {
            record(i, 40)
        };
        s.append_with(&r, Durability::Group).unwrap();
    }
    s.sync().unwrap();
    s.roll().unwrap();
    s.wait_sealed().unwrap();
    assert_eq!(s.stat().segments.len(), 1);
    drop(s);
    pool.close().unwrap();
    let img = dev.live_image();
    // The segment's copy (the tail log was deleted, but its bytes may
    // remain: flip every copy).
    let mut found = 0;
    let mut at = 0;
    while let Some(p) = img[at..].windows(marker.len()).position(|w| w == marker) {
        dev.flip_bit((at + p + 10) as u64, 3);
        found += 1;
        at += p + 1;
    }
    assert!(found >= 1);
    let pool = reopen(&dev);
    let s = pool.stream_open("z").unwrap();
    // Records far from the damage read (the pool's checksum blocks are
    // smaller than the segment).
    assert_eq!(s.read(0).unwrap(), record(0, 40));
    assert_eq!(s.read(n - 1).unwrap(), record(n - 1, 40));
    match s.read(3700) {
        Err(Error::Stream(StreamError::Corrupt { stream, offset, .. })) => {
            assert_eq!((stream.as_str(), offset), ("z", 3700));
        }
        other => panic!("expected a corrupt record error, got {other:?}"),
    }
    // An iterator stops at the first damaged record, naming its offset.
    let e = s.iter(3000).find_map(|r| r.err()).unwrap();
    assert!(
        matches!(e, Error::Stream(StreamError::Corrupt { .. })),
        "{e}"
    );
}

#[test]
fn a_flipped_byte_in_the_tail_opens_with_a_typed_error_at_its_offset() {
    let (dev, pool) = fault_pool(64);
    pool.stream_create("t", &small(256 << 10)).unwrap();
    let s = pool.stream_open("t").unwrap();
    let marker = b"TAIL-MARKER-RECORD-0123456789".to_vec();
    for i in 0..50u64 {
        let r = if i == 20 {
            marker.clone()
        } else {
            record(i, 40)
        };
        // Sync appends: each in a flush of its own, so later records prove
        // the damaged one was durable (the mlog's bit-rot rule).
        s.append(&r).unwrap();
    }
    drop(s);
    pool.close().unwrap();
    let img = dev.live_image();
    let p = img
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the marker is on the device");
    dev.flip_bit((p + 5) as u64, 2);
    let pool = reopen(&dev);
    // The open succeeds: the records before the damaged one are readable,
    // the damaged one (and any later) is a typed error naming its offset,
    // appends are refused (offsets after it were durable once).
    let s = pool.stream_open("t").unwrap();
    for i in 0..20u64 {
        assert_eq!(s.read(i).unwrap(), record(i, 40), "record {i}");
    }
    for off in [20u64, 21, 49] {
        match s.read(off) {
            Err(Error::Stream(StreamError::Corrupt { stream, offset, .. })) => {
                assert_eq!((stream.as_str(), offset), ("t", off));
            }
            other => panic!("expected a corrupt record error at {off}, got {other:?}"),
        }
    }
    let got: Vec<_> = s.iter(0).collect();
    assert_eq!(got.len(), 21, "20 records, then the error");
    assert!(got[..20].iter().all(|r| r.is_ok()));
    assert!(matches!(
        &got[20],
        Err(Error::Stream(StreamError::Corrupt { offset: 20, .. }))
    ));
    assert!(matches!(
        s.append(b"more"),
        Err(Error::Stream(StreamError::Failed { .. }))
    ));
}
