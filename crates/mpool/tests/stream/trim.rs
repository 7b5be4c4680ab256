//! Retention: whole sealed segments go, their space returns to the pool,
//! and they stay gone after a reopen.

use crate::common::*;
use mpool::{Durability, Error, StreamError};

#[test]
fn trims_by_offset_and_size_free_space_and_survive_reopen() {
    let (dev, pool) = fault_pool(64);
    pool.stream_create("t", &small(16 << 10)).unwrap();
    let s = pool.stream_open("t").unwrap();
    for i in 0..2000 {
        s.append_with(&record(i, 64), Durability::Group).unwrap();
    }
    s.sync().unwrap();
    s.roll().unwrap();
    s.wait_sealed().unwrap();
    let st = s.stat();
    let segs = st.segments.len();
    assert!(segs >= 4, "{st:?}");
    let before = used(&pool);
    // Below the end of the second segment: two segments go.
    let cut = st.segments[1].base + st.segments[1].count;
    let r = s.trim_before(cut + 1).unwrap();
    assert_eq!((r.segments, r.first), (2, cut));
    assert_eq!(s.first(), cut);
    assert!(used(&pool) < before, "space back to the pool");
    assert!(matches!(
        s.read(cut - 1),
        Err(Error::Stream(StreamError::Trimmed { .. }))
    ));
    assert_eq!(s.read(cut).unwrap(), record(cut, 64));
    // By size: keep at most one segment's bytes.
    let one = s.stat().segments.last().unwrap().bytes;
    let r = s.trim_to_size(one).unwrap();
    assert_eq!(r.segments as usize, segs - 3);
    let first = s.first();
    assert_eq!(s.stat().segments.len(), 1);
    assert_eq!(s.iter(0).next().unwrap().unwrap().0, first);
    drop(s);
    pool.close().unwrap();
    let pool = reopen(&dev);
    let s = pool.stream_open("t").unwrap();
    assert_eq!(s.first(), first);
    assert_eq!(s.stat().segments.len(), 1);
    for i in first..2000 {
        assert_eq!(s.read(i).unwrap(), record(i, 64));
    }
    assert_eq!(s.append(b"next").unwrap(), 2000);
    // By age: everything sealed is older than zero.
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(
        s.trim_older_than(std::time::Duration::ZERO)
            .unwrap()
            .segments,
        1
    );
    // Deleting the stream gives every zone back.
    drop(s);
    let with = used(&pool);
    pool.stream_delete("t").unwrap();
    assert!(used(&pool) < with);
}
