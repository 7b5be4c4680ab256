//! Sealing many segments in a small pool: old tails go back to the pool,
//! so a pool of N zones holds close to N segments.

use crate::common::*;
use mpool::{Durability, StreamOptions};

#[test]
fn sealed_tails_give_their_zones_back() {
    let pool = mem_pool(100, false);
    pool.stream_create("many", &StreamOptions::default())
        .unwrap();
    let s = pool.stream_open("many").unwrap();
    let data = vec![7u8; 4096];
    let batch: Vec<&[u8]> = (0..64).map(|_| data.as_slice()).collect();
    while s.stat().segments.len() < 60 {
        if let Err(e) = s.append_batch(&batch, Durability::Group) {
            panic!(
                "{e}: {} segments, {} objects, usage {:?}",
                s.stat().segments.len(),
                pool.objects().unwrap().len(),
                pool.usage()
            );
        }
        s.wait_sealed().unwrap();
    }
}
