//! What the bench's tests share: a run of `mpool-bench` in a directory of
//! the test's own.

use std::path::Path;
use std::process::Command;

/// A fresh directory under the target's scratch space, removed when the
/// returned value goes.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in(Path::new(env!("CARGO_TARGET_TMPDIR"))).unwrap()
}

/// Run `mpool-bench` with `args`, `--json` and `--dir dir`; it must
/// succeed. Its JSON output and its standard error.
pub fn run_json(args: &[&str], dir: &Path) -> (serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mpool-bench"))
        .args(args)
        .arg("--json")
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let v = serde_json::from_slice(&out.stdout).unwrap();
    (v, stderr)
}
