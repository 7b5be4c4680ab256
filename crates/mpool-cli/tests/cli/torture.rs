//! `mpool torture {mlog,pool,upgrade}`: the last line of stdout is exactly
//! `crash_points=K violations=0` and the exit code 0; bad arguments refused.

use crate::common;

use common::Sandbox;

#[test]
fn torture_commands_report_on_their_last_line() {
    let sb = Sandbox::new();
    for (what, k) in [("mlog", "60"), ("pool", "60")] {
        let o = sb.ok(&[
            "torture",
            what,
            "--seed",
            "5",
            "--crash-points",
            k,
            "--threads",
            "2",
        ]);
        assert_eq!(
            o.stdout.lines().last(),
            Some(format!("crash_points={k} violations=0").as_str()),
            "{}",
            o.all()
        );
    }
    let o = sb.ok(&["torture", "upgrade", "--seed", "5", "--crash-points", "80"]);
    assert_eq!(
        o.stdout.lines().last(),
        Some("crash_points=80 violations=0"),
        "{}",
        o.all()
    );
    sb.fail_with(&["torture", "pool", "--threads", "0"], &["--threads"]);
    sb.fail_with(&["torture", "mlog", "--threads", "99"], &["--threads"]);
}
