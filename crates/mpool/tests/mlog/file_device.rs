//! An mlog on a real file (O_DIRECT where the filesystem allows it), with
//! both I/O engines: sync appends from several threads share flushes and
//! every record is there after reopen.

use mpool::dev::{Device, FileDevice, OpenOptions};
use mpool::io::EngineChoice;
use mpool::mlog::Mlog;
use std::sync::Arc;

#[test]
fn file_device_group_commit_and_reopen() {
    for engine in [EngineChoice::Sync, EngineChoice::Auto] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.img");
        let opts = OpenOptions {
            create_size: Some(8 << 20),
            engine,
            direct: true,
            ..Default::default()
        };
        let dev: Arc<dyn Device> = Arc::new(FileDevice::open(&path, &opts).unwrap());
        let bs = u64::from(dev.sector());
        let ext = bs * 16..(8 << 20);
        let log = Arc::new(Mlog::create(dev.clone(), ext.clone(), 1).unwrap());
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let log = log.clone();
                s.spawn(move || {
                    for i in 0..50u8 {
                        let mut r = vec![t, i];
                        r.resize(2 + usize::from(i) * 97, t ^ i);
                        log.append(&r, i % 2 == 0).unwrap();
                    }
                    log.sync().unwrap();
                });
            }
        });
        drop(log);
        drop(dev);
        let dev: Arc<dyn Device> = Arc::new(
            FileDevice::open(
                &path,
                &OpenOptions {
                    engine,
                    direct: true,
                    ..Default::default()
                },
            )
            .unwrap(),
        );
        let log = Mlog::open(dev, ext, 1).unwrap();
        let mut next = [0u8; 4];
        for r in log.reader().unwrap() {
            let r = r.unwrap();
            let (t, i) = (usize::from(r[0]), r[1]);
            assert_eq!(i, next[t]);
            assert_eq!(r.len(), 2 + usize::from(i) * 97);
            assert!(r[2..].iter().all(|&b| b == r[0] ^ i));
            next[t] += 1;
        }
        assert_eq!(next, [50; 4]);
    }
}
