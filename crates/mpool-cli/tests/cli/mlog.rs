//! `mpool mlog`: create a user mlog, append records from arguments and from
//! standard input, dump them in order, list logs (the root MDC included).

use crate::common;

use common::Sandbox;
use std::io::Write;
use std::process::Stdio;

#[test]
fn mlog_create_append_dump_list() {
    let sb = Sandbox::new();
    sb.create_small("ml", "cap.img");
    let id = sb
        .ok(&["mlog", "create", "ml", "--capacity", "2MiB"])
        .stdout
        .trim()
        .to_string();
    sb.ok(&["mlog", "append", "ml", &id, "one", "two"]);
    let mut child = sb
        .cmd()
        .args(["mlog", "append", "ml", &id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"three\nfour\n")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let dump = sb.ok(&["mlog", "dump", "ml", &id]).stdout;
    let recs: Vec<&str> = dump
        .lines()
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    assert_eq!(recs, ["one", "two", "three", "four"]);
    let j = sb.json(&["mlog", "dump", "ml", &id, "--json"]);
    assert_eq!(j[0], "6f6e65"); // "one"
    let list = sb.json(&["mlog", "list", "ml", "--json"]);
    let logs = list.as_array().unwrap();
    assert_eq!(logs.len(), 2, "the user mlog and the root MDC: {list}");
    assert!(logs.iter().any(|l| l["root"] == true && l["type"] == "mdc"));
    assert!(logs
        .iter()
        .any(|l| l["root"] == false && l["type"] == "mlog"));
    assert!(logs
        .iter()
        .any(|l| l["id"] == id.as_str() && l["type"] == "mlog"));
    // Records survive a deactivate and reactivate.
    sb.ok(&["deactivate", "ml"]);
    sb.ok(&["activate", "ml"]);
    assert_eq!(
        sb.ok(&["mlog", "dump", "ml", &id]).stdout.lines().count(),
        4
    );
    sb.fail_with(
        &["mlog", "append", "ml", "0x0000000000000011", "x"],
        &["0x0000000000000011 is an mblock, not an mlog"],
    );
    sb.fail_with(
        &["mlog", "append", "ml", "0x0000000000999012", "x"],
        &["no object"],
    );
    sb.fail_with(
        &["mlog", "create", "ml", "--capacity", "1TiB"],
        &["no space"],
    );
    sb.fail_with(&["mlog", "dump", "ml", "bogus"], &["not an object ID"]);
}
