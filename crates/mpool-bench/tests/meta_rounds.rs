//! The metadata benchmark runs every thread count in every round, and
//! its ratios between thread counts come round by round with their
//! median, from the rates it reports per round.

mod common;

#[test]
fn the_meta_bench_gives_each_round_of_each_thread_count_and_the_ratios_of_its_rounds() {
    let dir = common::scratch();
    let args = [
        "meta",
        "--no-fio",
        "--variants",
        "shared",
        "--threads",
        "1,2",
        "--runtime",
        "1",
        "--rounds",
        "3",
        "--size",
        "64M",
    ];
    let (v, stderr) = common::run_json(&args, dir.path());
    // The rounds alternate: round 1 runs both thread counts before round 2.
    let order: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("meta, round"))
        .collect();
    assert_eq!(order.len(), 6, "{stderr}");
    assert!(order[0].contains("round 1/3, 1 thread"), "{order:?}");
    assert!(order[1].contains("round 1/3, 2 thread"), "{order:?}");
    assert!(order[2].contains("round 2/3, 1 thread"), "{order:?}");
    let rows: Vec<&serde_json::Value> = v["rows"].as_array().unwrap().iter().collect();
    let find = |f: &dyn Fn(&serde_json::Value) -> bool| {
        rows.iter()
            .copied()
            .find(|r| f(r))
            .unwrap_or_else(|| panic!("no such row in {v}"))
    };
    let per_round = |n: u64| -> Vec<f64> {
        find(&|r| r["threads"] == n && r["variant"] == "shared")["per_round_ops_per_s"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let (one, two) = (per_round(1), per_round(2));
    assert_eq!((one.len(), two.len()), (3, 3));
    assert!(one.iter().chain(&two).all(|&r| r > 0.0), "{one:?} {two:?}");
    let ratio = find(&|r| r["ratio"] == "2/1" && r["variant"] == "shared");
    let got: Vec<f64> = ratio["per_round"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let mut want: Vec<f64> = two.iter().zip(&one).map(|(t, o)| t / o).collect();
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g - w).abs() < 1e-9 * w.abs().max(1.0),
            "{got:?} vs {want:?}"
        );
    }
    want.sort_by(f64::total_cmp);
    let median = ratio["median"].as_f64().unwrap();
    assert!(
        (median - want[1]).abs() < 1e-9 * want[1].max(1.0),
        "{median} vs {want:?}"
    );
    // The pool file goes with the run.
    assert!(!dir.path().join("mpool-bench-meta.dat").exists());
}
