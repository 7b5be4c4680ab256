//! The commands that only look at a pool write nothing to it: `list`,
//! `get`, `mblock list/stat/read`, `mlog list/dump`, `check` (without
//! `--repair`) and `deactivate`. A damaged superblock copy makes any
//! read-write open rewrite it, so a pool with one shows whether a command
//! opened it read-write.

use crate::common;
use common::*;

#[test]
fn inspecting_commands_and_deactivate_write_nothing() {
    let sb = Sandbox::new();
    sb.create_small("ro", "cap.img");
    std::fs::write(sb.path("in.bin"), b"some content").unwrap();
    let mb = sb.ok(&["mblock", "write", "ro", &sb.p("in.bin")]);
    let mb = mb.stdout.split_whitespace().next().unwrap().to_string();
    let ml = sb.ok(&["mlog", "create", "ro", "--capacity", "1MiB"]);
    let ml = ml.stdout.trim().to_string();
    sb.ok(&["mlog", "append", "ro", &ml, "one", "two"]);

    // Copy 1 of the superblock damaged: a read-write open would rewrite it.
    let mut b = [0u8; 1];
    std::os::unix::fs::FileExt::read_exact_at(
        &std::fs::File::open(sb.path("cap.img")).unwrap(),
        &mut b,
        32768 + 100,
    )
    .unwrap();
    poke(sb.path("cap.img"), 32768 + 100, &[b[0] ^ 0x40]);
    let before = std::fs::read(sb.path("cap.img")).unwrap();

    for args in [
        vec!["list"],
        vec!["list", "--json"],
        vec!["list", "-v"],
        vec!["get", "ro"],
        vec!["mblock", "list", "ro"],
        vec!["mblock", "stat", "ro", &mb],
        vec!["mblock", "read", "ro", &mb],
        vec!["mlog", "list", "ro"],
        vec!["mlog", "dump", "ro", &ml],
    ] {
        sb.ok(&args);
    }
    // The damage is a problem that check reports, not repairs.
    let o = sb.run(&["check", "ro"]);
    assert!(
        o.stdout.contains("1 problem(s), 0 repair(s)"),
        "{}",
        o.all()
    );
    sb.ok(&["deactivate", "ro"]);
    let after = std::fs::read(sb.path("cap.img")).unwrap();
    assert!(
        before == after,
        "a read-only command or deactivate wrote to the pool (first difference at byte {:?})",
        before.iter().zip(&after).position(|(x, y)| x != y)
    );

    // Activated again, `check --repair` rewrites the copy.
    sb.ok(&["activate", "ro"]);
    let o = sb.ok(&["check", "ro", "--repair"]);
    assert!(
        o.stdout.contains("0 problem(s), 1 repair(s)"),
        "{}",
        o.all()
    );
}
