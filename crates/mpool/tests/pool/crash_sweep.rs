//! A bounded pool crash sweep: random mblock and user-mlog work on a fault
//! device, crashes at sampled operations, reboots that lose or tear
//! unflushed writes; the checker must find nothing wrong.

use mpool::torture::{run_pool, PoolTortureConfig};

fn sweep(seed: u64, threads: usize, points: u64) {
    let cfg = PoolTortureConfig {
        seed,
        crash_points: points,
        threads,
        ..Default::default()
    };
    let rep = run_pool(&cfg, &mut |_, _| {});
    for v in &rep.details {
        eprintln!("{v}");
    }
    assert_eq!(rep.crash_points, points);
    assert_eq!(rep.violations, 0, "{} violations", rep.violations);
}

#[test]
fn single_thread_sweep_is_clean() {
    sweep(11, 1, 160);
}

#[test]
fn multi_thread_sweep_is_clean() {
    sweep(12, 4, 160);
}
