//! A bounded crash sweep of `upgrade` (`mpool torture upgrade`): a
//! version-2 pool crashed after each operation of its upgrade reopens with
//! the same objects, and a second upgrade completes.

use mpool::torture::{run_upgrade, UpgradeTortureConfig};

#[test]
fn upgrade_crash_sweep_is_clean() {
    let cfg = UpgradeTortureConfig {
        seed: 21,
        crash_points: 400,
        ..Default::default()
    };
    let rep = run_upgrade(&cfg, &mut |_, _| {});
    for v in &rep.details {
        eprintln!("{v}");
    }
    assert_eq!(rep.crash_points, 400);
    assert!(!rep.instances.is_empty());
    assert_eq!(rep.violations, 0, "{} violations", rep.violations);
}
