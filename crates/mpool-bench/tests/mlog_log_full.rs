//! A log that fills before its slice ends ends that slice: the bench
//! measures the time it ran and says so, instead of failing the run.

mod common;

#[test]
fn the_mlog_bench_ends_a_slice_at_a_full_log_and_says_so() {
    let dir = common::scratch();
    // 128 records of 512 KiB fill the 64 MiB log long before 30 s.
    let args = [
        "mlog",
        "--no-fio",
        "--threads",
        "1",
        "--rounds",
        "1",
        "--runtime",
        "30",
        "--size",
        "64M",
        "--record",
        "512K",
    ];
    let (v, _) = common::run_json(&args, dir.path());
    let row = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["threads"] == 1)
        .unwrap_or_else(|| panic!("no row of 1 thread: {v}"));
    let m = &row["mpool"];
    assert_eq!(m["slices_ended_full"], 1, "{v}");
    let appends = m["appends"].as_u64().unwrap();
    // Every record that fits was appended (a record also costs its header).
    assert!((100..128).contains(&appends), "{appends} appends: {v}");
    assert!(m["secs"].as_f64().unwrap() < 30.0, "{v}");
    let notes = v["notes"].to_string();
    assert!(
        notes.contains("filled in 1 of 1 slice(s)"),
        "no note of the full log: {notes}"
    );
}
