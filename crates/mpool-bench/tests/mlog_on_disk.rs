//! The mlog benchmark on a file that a disk holds (no mapping: records
//! are written in whole sectors), where the shared-log floor does not
//! apply: the run completes and says so, instead of failing.

use std::process::Command;

#[test]
fn the_mlog_bench_runs_on_a_file_a_disk_holds() {
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::tempdir_in(base).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mpool-bench"))
        .args([
            "mlog",
            "--no-fio",
            "--threads",
            "1,2",
            "--runtime",
            "1",
            "--rounds",
            "1",
        ])
        .args(["--size", "64M", "--json", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
