//! Batches larger than the ring (256 entries), mixed sizes up to 1 MiB,
//! written and read back bit-exact on every engine, and across engines.

use crate::io_common;

use io_common::{engines, open, open_new, pattern, req_result, scratch, Rng};
use mpool::dev::Device;
use mpool::io::{EngineChoice, IoReq};

const SIZE: u64 = 96 << 20;
const SIZES: [usize; 8] = [4096, 8192, 12288, 65536, 131072, 4096, 16384, 1 << 20];

/// A layout of non-overlapping (offset, len) extents in random sizes.
fn layout(seed: u64, count: usize) -> Vec<(u64, usize)> {
    let mut rng = Rng(seed);
    let mut off = 0u64;
    let mut v = Vec::with_capacity(count);
    for _ in 0..count {
        let len = SIZES[rng.below(SIZES.len() as u64) as usize];
        // Leave some holes between extents.
        off += 4096 * rng.below(3);
        assert!(off + len as u64 <= SIZE, "layout does not fit");
        v.push((off, len));
        off += len as u64;
    }
    v
}

fn write_batch(dev: &dyn Device, ext: &[(u64, usize)], seed: u64) {
    let reqs: Vec<IoReq> = ext
        .iter()
        .map(|&(off, len)| IoReq::write(off, pattern(seed ^ off, len, 4096)))
        .collect();
    let mut done = dev.submit(reqs);
    assert_eq!(done.len(), ext.len(), "every request comes back");
    for (r, &(off, len)) in done.iter_mut().zip(ext) {
        assert_eq!((r.offset, r.buf.len()), (off, len), "order is kept");
        req_result(dev, r).expect("write");
    }
    dev.flush().expect("flush");
}

fn check_batch(dev: &dyn Device, ext: &[(u64, usize)], seed: u64) {
    // Read in reverse order, so a completion mix-up would show.
    let reqs: Vec<IoReq> = ext
        .iter()
        .rev()
        .map(|&(off, len)| IoReq::read(off, dev.alloc_buf(len)))
        .collect();
    let mut done = dev.submit(reqs);
    assert_eq!(done.len(), ext.len());
    for (r, &(off, len)) in done.iter_mut().zip(ext.iter().rev()) {
        assert_eq!((r.offset, r.buf.len()), (off, len), "order is kept");
        req_result(dev, r).expect("read");
        let want = pattern(seed ^ off, len, 4096);
        assert!(r.buf[..] == want[..], "data at {off} (len {len}) differs");
    }
}

fn batch_roundtrip(engine: EngineChoice) {
    let dir = scratch();
    let (_p, dev) = open_new(dir.path(), "batch", SIZE, engine);
    assert!(
        dev.info().direct,
        "O_DIRECT should work on the scratch disk"
    );
    let seed = 0x5eed ^ engine as u64;
    let ext = layout(seed, 300);
    write_batch(&dev, &ext, seed);
    check_batch(&dev, &ext, seed);

    // 600 small requests: more than two rings' worth in one batch.
    let small: Vec<(u64, usize)> = (0..600u64).map(|i| (i * 8192, 4096)).collect();
    write_batch(&dev, &small, seed + 1);
    check_batch(&dev, &small, seed + 1);
}

#[test]
fn batch_roundtrip_every_engine() {
    for e in engines() {
        eprintln!("engine {e}");
        batch_roundtrip(e);
    }
}

/// Data written through one engine reads back identically through another.
#[test]
fn engines_agree_on_the_bytes() {
    let dir = scratch();
    let all = engines();
    let (path, dev) = open_new(dir.path(), "cross", SIZE, all[0]);
    let seed = 77;
    let ext = layout(seed, 64);
    write_batch(&dev, &ext, seed);
    drop(dev);
    for e in all {
        let dev = open(&path, e, true).expect("reopen read-only");
        check_batch(&dev, &ext, seed);
    }
}

/// An empty batch and a batch of one both work.
#[test]
fn empty_and_single_batches() {
    for e in engines() {
        let dir = scratch();
        let (_p, dev) = open_new(dir.path(), "one", 1 << 20, e);
        assert!(dev.submit(Vec::new()).is_empty());
        let mut b = pattern(3, 4096, 4096);
        dev.write_at(8192, &mut b).expect("write one");
        assert_eq!(b.len(), 4096, "buffer comes back");
        let got = io_common::read_back(&dev, 8192, 4096);
        assert!(got[..] == b[..]);
    }
}
