//! `mpool torture stream`: a short sweep ends with the exact summary line.

use crate::common;

use common::Sandbox;

#[test]
fn torture_stream_prints_the_summary_line() {
    let sb = Sandbox::new();
    let out = sb.ok(&[
        "torture",
        "stream",
        "--seed",
        "5",
        "--crash-points",
        "10",
        "--threads",
        "2",
    ]);
    assert_eq!(
        out.stdout.lines().last(),
        Some("crash_points=10 violations=0"),
        "{}",
        out.all()
    );
    sb.fail_with(&["torture", "stream", "--threads", "9"], &["--threads"]);
}
