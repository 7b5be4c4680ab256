//! A crash at any device operation of an MDC compaction (cstart, appends of
//! the compacted state, cend) leaves, after reopen, exactly the old state or
//! exactly the new one, whatever happens to unflushed writes.

use mpool::dev::{CrashMode, Device, FaultDevice};
use mpool::mdc::Mdc;
use std::sync::Arc;

const A: std::ops::Range<u64> = 0..(64 << 10);
const B: std::ops::Range<u64> = (64 << 10)..(128 << 10);

fn rec(i: usize) -> Vec<u8> {
    (0..(1 + i * 37 % 700)).map(|j| (i + j * 3) as u8).collect()
}

/// Old state: records 0..8, synced. New state: records 5..8 then 100..103.
fn scenario(f: &Arc<FaultDevice>, crash_at: Option<u64>) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, bool) {
    let d: Arc<dyn Device> = f.clone();
    let m = Mdc::create(d, A, B, 9).unwrap();
    let old: Vec<_> = (0..8).map(rec).collect();
    for r in &old {
        m.append(r, false).unwrap();
    }
    m.sync().unwrap();
    // Second compaction round too, so both logs have history.
    let new: Vec<_> = (5..8).chain(100..103).map(rec).collect();
    if let Some(p) = crash_at {
        f.crash_after(f.stats().ops + p);
    }
    let done = (|| {
        m.cstart()?;
        for r in &new {
            m.append(r, false)?;
        }
        m.cend()
    })()
    .is_ok();
    (old, new, done)
}

fn read(d: Arc<dyn Device>) -> Vec<Vec<u8>> {
    let m = Mdc::open(d, A, B, 9).unwrap();
    m.reader().unwrap().map(|r| r.unwrap()).collect()
}

#[test]
fn crash_anywhere_in_compaction_gives_old_or_new() {
    for sector in [512u32, 4096] {
        // Count the operations of the compaction (everything after setup).
        let f = Arc::new(FaultDevice::new(128 << 10, sector));
        let (_, _, done) = scenario(&f, Some(1 << 40));
        assert!(done);
        let ops_total = f.stats().ops;
        let f = Arc::new(FaultDevice::new(128 << 10, sector));
        let _ = scenario(&f, Some(0));
        let total = ops_total - f.stats().ops;
        assert!(total >= 6, "compaction took {total} operations");
        let mut saw = [0usize; 2];
        for p in 0..=total {
            let modes = [
                CrashMode::DropAll,
                CrashMode::KeepAll,
                CrashMode::Random {
                    keep: 0.5,
                    tear: 0.5,
                    seed: p,
                },
                CrashMode::Random {
                    keep: 0.8,
                    tear: 1.0,
                    seed: p + 1000,
                },
            ];
            for mode in modes {
                let f = Arc::new(FaultDevice::new(128 << 10, sector));
                let (old, new, done) = scenario(&f, Some(p));
                let g: Arc<dyn Device> = Arc::new(f.reboot(mode));
                let got = read(g.clone());
                if got == old {
                    assert!(
                        !done,
                        "point {p} {mode:?}: compaction acknowledged but old state"
                    );
                    saw[0] += 1;
                } else if got == new {
                    saw[1] += 1;
                } else {
                    panic!(
                        "sector {sector} point {p} {mode:?}: neither old nor new: {} records",
                        got.len()
                    );
                }
                // Reopen again (after the repair) shows the same.
                assert_eq!(read(g), got);
            }
        }
        assert!(saw[0] > 0 && saw[1] > 0, "{saw:?}");
    }
}
