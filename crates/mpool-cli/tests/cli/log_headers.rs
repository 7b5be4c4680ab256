//! A damaged header copy of a log (a user mlog, a pool-metadata log) is
//! reported by `check`, rewritten from the other copy by `check --repair`
//! (listed as a repair), and the next `check` is clean.

use crate::common;
use common::*;

#[test]
fn damaged_log_header_copies_are_reported_then_repaired() {
    let sb = Sandbox::new();
    sb.create_small("hd", "cap.img");
    let log = sb.ok(&["mlog", "create", "hd"]).stdout.trim().to_string();
    sb.ok(&["mlog", "append", "hd", &log, "one", "two"]);
    let zone = sb.json(&["mblock", "stat", "hd", &log, "--json"])["zone"]
        .as_u64()
        .unwrap();
    let mib = 1u64 << 20;
    // The user mlog's header copy 1 (one 4 KiB block after copy 0), and
    // MDC0's log A header copy 1 (MDC0 starts at zone 1).
    flip(&sb, "cap.img", zone * mib + 4096 + 20);
    flip(&sb, "cap.img", mib + 4096 + 20);

    let o = sb.run(&["check", "hd"]);
    assert_eq!(o.status.code(), Some(1), "{}", o.all());
    assert!(
        o.stdout
            .contains(&format!("PROBLEM {log}: log header copy 1 is damaged")),
        "{}",
        o.all()
    );
    assert!(
        o.stdout
            .contains("PROBLEM MDC0: log header copy 1 is damaged"),
        "{}",
        o.all()
    );
    // The records are all there meanwhile.
    let dump = sb.ok(&["mlog", "dump", "hd", &log]).stdout;
    assert!(dump.contains("one") && dump.contains("two"), "{dump}");

    let o = sb.ok(&["check", "hd", "--repair"]);
    assert!(
        o.stdout
            .contains(&format!("REPAIRED {log}: log header copy 1 was damaged")),
        "{}",
        o.all()
    );
    assert!(
        o.stdout
            .contains("REPAIRED MDC0: log header copy 1 was damaged"),
        "{}",
        o.all()
    );
    let o = sb.ok(&["check", "hd"]);
    assert!(
        o.stdout.contains("0 problem(s), 0 repair(s)"),
        "{}",
        o.all()
    );
}
