//! A completion callback (`Device::submit_each`) that panics while other
//! requests are in flight: the panic goes on to the caller, and the next
//! batches on the same thread (reads and writes, deep and shallow) see
//! exactly their own data, every byte, with no completion of the broken
//! batch credited to them. A callback that submits a batch of its own on
//! the same thread works too.

use crate::io_common;

use io_common::{engines, open_new, pattern, req_result, scratch};
use mpool::dev::{Device, FileDevice};
use mpool::io::{AlignedBuf, EngineChoice, IoReq};
use std::panic::{catch_unwind, AssertUnwindSafe};

const BLOCK: usize = 64 * 1024;
const COUNT: u64 = 64;

fn writes(seed: u64) -> Vec<IoReq> {
    (0..COUNT)
        .map(|i| {
            let off = i * BLOCK as u64;
            IoReq::write(off, pattern(seed ^ off, BLOCK, 4096))
        })
        .collect()
}

fn reads() -> Vec<IoReq> {
    (0..COUNT)
        .map(|i| IoReq::read(i * BLOCK as u64, AlignedBuf::new(BLOCK, 4096)))
        .collect()
}

/// Submit `reqs` with a callback that panics at its `at`-th call.
fn panicking_batch(dev: &FileDevice, reqs: Vec<IoReq>, at: usize) {
    let mut calls = 0usize;
    let r = catch_unwind(AssertUnwindSafe(|| {
        dev.submit_each(reqs, 32, &mut |_, _| {
            calls += 1;
            if calls == at {
                panic!("callback panics on purpose");
            }
        })
    }));
    assert!(r.is_err(), "the panic reaches the caller");
}

/// Write every block with `seed` in one batch, checking each result.
fn write_all(dev: &FileDevice, seed: u64, depth: usize) {
    let mut out = dev.submit_each(writes(seed), depth, &mut |_, r| {
        assert!(r.result.is_some());
    });
    assert_eq!(out.len(), COUNT as usize);
    for r in &mut out {
        req_result(dev, r).expect("write");
    }
}

/// Read every block back in one batch and check every byte against `seed`.
fn check_all(dev: &FileDevice, seed: u64, depth: usize, label: &str) {
    let mut seen = vec![0u32; COUNT as usize];
    let mut out = dev.submit_each(reads(), depth, &mut |i, r| {
        seen[i] += 1;
        assert!(r.result.is_some(), "{label}: reported before its result");
    });
    assert!(
        seen.iter().all(|&c| c == 1),
        "{label}: every read reported exactly once: {seen:?}"
    );
    for (i, r) in out.iter_mut().enumerate() {
        let off = i as u64 * BLOCK as u64;
        assert_eq!(r.offset, off, "{label}: order kept");
        req_result(dev, r).expect("read");
        let want = pattern(seed ^ off, BLOCK, 4096);
        assert!(r.buf[..] == want[..], "{label}: bytes of block {i}");
    }
}

#[test]
fn a_panicking_callback_leaves_the_thread_ring_clean() {
    let dir = scratch();
    for engine in engines() {
        let size = COUNT * BLOCK as u64;
        let (_p, dev) = open_new(dir.path(), &format!("panic-{engine}"), size, engine);
        write_all(&dev, 1, 64);
        check_all(&dev, 1, 64, &format!("{engine} before"));
        let mut seed = 1;
        for (round, at) in [1usize, 5, 17, 40, 64].into_iter().enumerate() {
            // A read batch that panics early, with most reads in flight.
            panicking_batch(&dev, reads(), at);
            check_all(&dev, seed, 32, &format!("{engine} read panic {round}"));
            // A write batch that panics: the writes it got to may or may
            // not have landed; a full rewrite then reads back exactly.
            seed += 1;
            panicking_batch(&dev, writes(seed), at);
            seed += 1;
            write_all(&dev, seed, 8);
            check_all(&dev, seed, 1, &format!("{engine} write panic {round}"));
            check_all(&dev, seed, usize::MAX, &format!("{engine} deep {round}"));
        }
    }
}

#[test]
fn a_callback_may_submit_a_batch_of_its_own() {
    let dir = scratch();
    let size = COUNT * BLOCK as u64;
    let engine = if mpool::io::uring_available() {
        EngineChoice::Uring
    } else {
        EngineChoice::Sync
    };
    let (_p, dev) = open_new(dir.path(), "nested", size, engine);
    write_all(&dev, 9, 16);
    let mut inner_ok = 0;
    let mut out = dev.submit_each(reads(), 16, &mut |i, r| {
        assert!(r.result.is_some());
        if i % 16 == 0 {
            // The same thread, another batch, while the outer one is in flight.
            let off = (COUNT - 1 - i as u64) * BLOCK as u64;
            let mut b = dev.submit(vec![IoReq::read(off, AlignedBuf::new(BLOCK, 4096))]);
            if let Some(r) = b.first_mut() {
                req_result(&dev, r).expect("inner read");
                assert!(r.buf[..] == pattern(9 ^ off, BLOCK, 4096)[..]);
                inner_ok += 1;
            }
        }
    });
    assert_eq!(inner_ok, 4);
    for (i, r) in out.iter_mut().enumerate() {
        let off = i as u64 * BLOCK as u64;
        req_result(&dev, r).expect("outer read");
        assert!(r.buf[..] == pattern(9 ^ off, BLOCK, 4096)[..]);
    }
    check_all(&dev, 9, 32, "after nesting");
}
