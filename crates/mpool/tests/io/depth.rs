//! A batch submitted with a queue-depth bound completes every request
//! correctly, in order, whatever the bound, on every engine.

use mpool::dev::{Device, FileDevice, OpenOptions};
use mpool::io::{AlignedBuf, EngineChoice, IoReq};

#[test]
fn bounded_depth_batches_are_complete_and_ordered() {
    let dir = tempfile::tempdir().unwrap();
    for engine in [EngineChoice::Sync, EngineChoice::Auto, EngineChoice::Uring] {
        if engine == EngineChoice::Uring && !mpool::io::uring_available() {
            eprintln!("SKIPPED: io_uring is not available here");
            continue;
        }
        let path = dir.path().join(format!("dev-{engine}"));
        let dev = FileDevice::open(
            &path,
            &OpenOptions {
                create_size: Some(4 << 20),
                engine,
                ..Default::default()
            },
        )
        .unwrap();
        for depth in [1usize, 3, 32, 1000] {
            let writes: Vec<IoReq> = (0..300u64)
                .map(|i| {
                    IoReq::write(
                        i * 8192,
                        AlignedBuf::from_slice(&[(i as u8) ^ depth as u8; 8192], 4096),
                    )
                })
                .collect();
            for mut r in dev.submit_depth(writes, depth) {
                r.take_result().unwrap();
            }
            let reads: Vec<IoReq> = (0..300u64)
                .rev()
                .map(|i| IoReq::read(i * 8192, AlignedBuf::new(8192, 4096)))
                .collect();
            let out = dev.submit_depth(reads, depth);
            for (k, mut r) in out.into_iter().enumerate() {
                let i = 299 - k as u64;
                assert_eq!(r.offset, i * 8192, "order kept ({engine} depth {depth})");
                r.take_result().unwrap();
                assert!(
                    r.buf.iter().all(|&b| b == (i as u8) ^ depth as u8),
                    "{engine} depth {depth} block {i}"
                );
            }
        }
    }
}
