//! One FileDevice shared by 8 threads: each thread gets its own ring, and
//! concurrent batches neither mix up completions nor corrupt data.

use crate::io_common;

use io_common::{engines, open_new, pattern, req_result, scratch};
use mpool::dev::Device;
use mpool::io::IoReq;
use std::sync::{Arc, Barrier};

const THREADS: u64 = 8;
const REGION: u64 = 4 << 20;
const BLOCK: usize = 16 << 10;

#[test]
fn eight_threads_one_device() {
    for e in engines() {
        eprintln!("engine {e}");
        let dir = scratch();
        let (_p, dev) = open_new(dir.path(), "mt", THREADS * REGION, e);
        let dev = Arc::new(dev);
        let barrier = Arc::new(Barrier::new(THREADS as usize));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let dev = Arc::clone(&dev);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let base = t * REGION;
                    let n = (REGION / BLOCK as u64) as usize;
                    barrier.wait();
                    for round in 0..3u64 {
                        let seed = (t << 32) | round;
                        // Batches of 64, plus lone requests (the Auto sync path).
                        let reqs: Vec<IoReq> = (0..n)
                            .map(|i| {
                                let off = base + (i * BLOCK) as u64;
                                IoReq::write(off, pattern(seed ^ off, BLOCK, 4096))
                            })
                            .collect();
                        let mut it = reqs.into_iter().peekable();
                        while it.peek().is_some() {
                            let batch: Vec<IoReq> =
                                it.by_ref().take(if round == 1 { 1 } else { 64 }).collect();
                            for mut r in dev.submit(batch) {
                                req_result(&*dev, &mut r).expect("write");
                            }
                        }
                        dev.flush().expect("flush");
                        let reads: Vec<IoReq> = (0..n)
                            .map(|i| IoReq::read(base + (i * BLOCK) as u64, dev.alloc_buf(BLOCK)))
                            .collect();
                        for mut r in dev.submit(reads) {
                            req_result(&*dev, &mut r).expect("read");
                            let want = pattern(seed ^ r.offset, BLOCK, 4096);
                            assert!(
                                r.buf[..] == want[..],
                                "thread {t} round {round} at {}",
                                r.offset
                            );
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread panicked");
        }
    }
}
