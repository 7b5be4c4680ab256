//! The mlog benchmark on a file that a disk holds (no mapping: records
//! are written in whole sectors), where the shared-log floor does not
//! apply: the run completes and says so, instead of failing.

mod common;

#[test]
fn the_mlog_bench_runs_on_a_file_a_disk_holds() {
    let dir = common::scratch();
    let args = [
        "mlog",
        "--no-fio",
        "--threads",
        "1,2",
        "--runtime",
        "1",
        "--rounds",
        "1",
        "--size",
        "64M",
    ];
    let (v, _) = common::run_json(&args, dir.path());
    let text = v.to_string();
    let on_tmpfs = text.contains("tmpfs");
    for n in [1, 2] {
        assert!(
            text.contains(&format!("\"threads\":{n}")),
            "no row of {n} thread(s): {text}"
        );
    }
    if !on_tmpfs {
        assert!(
            text.contains("the device takes no writes of any bytes"),
            "{text}"
        );
    }
    // The file goes with the run (no --keep-file).
    assert!(!dir.path().join("mpool-bench-mlog.dat").exists());
}
