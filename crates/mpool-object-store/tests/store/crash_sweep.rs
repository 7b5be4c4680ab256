//! A bounded object-store crash sweep (what `mpool torture objstore`
//! runs longer): puts in every mode, multipart completions and aborts,
//! copies, renames, deletes and compactions on a fault device, crashes at
//! sampled operations, reboots that drop, keep or tear unflushed writes;
//! the checker must find nothing wrong.

use mpool_object_store::torture::{run_objstore, ObjstoreTortureConfig};

fn sweep(seed: u64, threads: usize, points: u64) {
    let cfg = ObjstoreTortureConfig {
        seed,
        crash_points: points,
        threads,
        ..Default::default()
    };
    let rep = run_objstore(&cfg, &mut |_, _| {});
    for v in &rep.details {
        eprintln!("{v}");
    }
    eprintln!(
        "instances {:?}, {} crash points cut an operation, {} objects at the end of clean runs",
        rep.instances, rep.cut_ops, rep.objects_at_end
    );
    assert_eq!(rep.crash_points, points);
    // The sweep did work: crashes cut operations off, objects were left.
    assert!(
        rep.cut_ops > points / 4,
        "{} of {points} crash points cut an operation",
        rep.cut_ops
    );
    assert!(rep.objects_at_end > 0);
    assert_eq!(rep.violations, 0, "{} violations", rep.violations);
}

#[test]
fn objstore_single_thread_sweep_is_clean() {
    sweep(21, 1, 80);
}

#[test]
fn objstore_multi_thread_sweep_is_clean() {
    sweep(22, 4, 80);
}
