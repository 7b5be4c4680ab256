//! Concurrent flushes of a file device share `fdatasync` calls, and every
//! writer's data reads back after its flush returned, on every engine.

use crate::io_common;

use io_common::{engines, open_new, scratch};
use mpool::dev::Device;
use mpool::io::{AlignedBuf, IoReq};

#[test]
fn concurrent_flushes_share_syncs_and_all_succeed() {
    let dir = scratch();
    for engine in engines() {
        let (_p, dev) = open_new(dir.path(), &format!("flush-{engine}"), 8 << 20, engine);
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let dev = &dev;
                s.spawn(move || {
                    for i in 0..40u64 {
                        let off = (t * 40 + i) * 4096;
                        let buf = AlignedBuf::from_slice(&[(t * 40 + i) as u8; 4096], 4096);
                        for mut r in dev.submit(vec![IoReq::write(off, buf)]) {
                            r.take_result().unwrap();
                        }
                        dev.flush().unwrap();
                    }
                });
            }
        });
        let st = dev.flush_stats();
        assert_eq!(st.calls, 320, "{engine}");
        assert!(st.syncs >= 1 && st.syncs <= st.calls, "{engine}: {st:?}");
        eprintln!(
            "{engine}: {} flush calls served by {} fdatasync calls",
            st.calls, st.syncs
        );
        for k in 0..320u64 {
            let mut b = AlignedBuf::new(4096, 4096);
            dev.read_at(k * 4096, &mut b).unwrap();
            assert!(b.iter().all(|&x| x == k as u8), "{engine}: block {k}");
        }
    }
}
