//! A bounded crash sweep of the mlog engine and MDCs: 2000 crash points of
//! the randomized multi-threaded workload (sector sizes 512 and 4096, plain
//! and mirrored logs by instance), each rebooted with unflushed writes
//! dropped, kept or torn, must show no violation of the model; then 1000
//! more on mirrored logs only. `mpool torture mlog` runs the same sweep
//! longer.

use mpool::torture::{run_mlog, MlogTortureConfig};

#[test]
fn mlog_crash_sweep_2000_points() {
    let seed = std::env::var("MPOOL_TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let cfg = MlogTortureConfig {
        seed,
        crash_points: 2000,
        threads: 4,
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let rep = run_mlog(&cfg, &mut |_, _| {});
    for v in &rep.details {
        eprintln!("{v}");
    }
    eprintln!(
        "seed {seed}: {} crash points over {} instances {:?} in {:?}",
        rep.crash_points,
        rep.instances.len(),
        rep.instances,
        t.elapsed()
    );
    assert_eq!(rep.crash_points, 2000);
    assert_eq!(rep.violations, 0, "violations found (seed {seed})");
}

#[test]
fn mirrored_mlog_crash_sweep_1000_points() {
    let seed = std::env::var("MPOOL_TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6d69);
    let cfg = MlogTortureConfig {
        seed,
        crash_points: 1000,
        threads: 4,
        mirrored: vec![true],
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let rep = run_mlog(&cfg, &mut |_, _| {});
    for v in &rep.details {
        eprintln!("{v}");
    }
    eprintln!(
        "mirrored, seed {seed}: {} crash points over {} instances in {:?}",
        rep.crash_points,
        rep.instances.len(),
        t.elapsed()
    );
    assert_eq!(rep.crash_points, 1000);
    assert_eq!(rep.violations, 0, "violations found (seed {seed})");
}
