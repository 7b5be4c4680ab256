//! A bounded stream crash sweep (as CI runs it): appends, seals, trims and
//! reopens from several threads on a fault device, crashes at sampled
//! operations, reboots that lose or tear unflushed writes; the checker
//! must find nothing wrong.

use mpool::torture::{run_stream, StreamTortureConfig};

fn sweep(seed: u64, threads: usize, points: u64) {
    let cfg = StreamTortureConfig {
        seed,
        crash_points: points,
        threads,
        ..Default::default()
    };
    let rep = run_stream(&cfg, &mut |_, _| {});
    for v in &rep.details {
        eprintln!("{v}");
    }
    assert_eq!(rep.crash_points, points);
    assert!(!rep.instances.is_empty());
    assert_eq!(rep.violations, 0, "{} violations", rep.violations);
}

#[test]
fn single_thread_sweep_is_clean() {
    sweep(21, 1, 75);
}

#[test]
fn multi_thread_sweep_is_clean() {
    sweep(22, 4, 75);
}
