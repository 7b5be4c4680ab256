//! A follower sees records as producers append them.

use crate::common::*;
use mpool::Durability;
use std::time::Duration;

#[test]
fn follower_waits_for_new_records() {
    let pool = mem_pool(32, false);
    pool.stream_create("f", &small(8 << 10)).unwrap();
    let s = pool.stream_open("f").unwrap();
    s.append(b"before").unwrap();
    let mut f = s.follow(0);
    assert_eq!(f.next().unwrap().unwrap(), (0, b"before".to_vec()));
    assert!(f
        .next_timeout(Some(Duration::from_millis(20)))
        .unwrap()
        .is_none());
    let prod = {
        let s = s.clone();
        std::thread::spawn(move || {
            for i in 1..500u64 {
                let d = if i % 3 == 0 {
                    Durability::Sync
                } else {
                    Durability::Group
                };
                s.append_with(&record(i, 300), d).unwrap();
            }
        })
    };
    for i in 1..500u64 {
        let (off, b) = f.next().unwrap().unwrap();
        assert_eq!((off, b), (i, record(i, 300)));
    }
    prod.join().unwrap();
    assert_eq!(f.position(), 500);
}
