//! `mpool object {put,get,ls,rm}`: objects stored by path in the pool's
//! object store, listed in path order with their mblocks, read back,
//! removed (their mblocks freed); `mpool torture objstore` reports on its
//! last line.

use crate::common;

use common::Sandbox;
use std::io::Write;
use std::process::Stdio;

#[test]
fn object_put_get_ls_rm() {
    let sb = Sandbox::new();
    sb.create_small("ob", "cap.img");
    // No store yet: listing says so.
    sb.fail_with(&["object", "ls", "ob"], &["holds no object store"]);

    // Larger than one mblock of the small pool: spans several.
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(sb.path("big.bin"), &data).unwrap();
    let tag = sb.ok(&["object", "put", "ob", "dir/big", &sb.p("big.bin")]);
    assert!(tag.stdout.trim().starts_with('"'), "{}", tag.all());

    let mut child = sb
        .cmd()
        .args(["object", "put", "ob", "dir/small"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello").unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    sb.ok(&["object", "put", "ob", "top", &sb.p("big.bin")]);
    sb.fail_with(
        &[
            "object",
            "put",
            "ob",
            "top",
            &sb.p("big.bin"),
            "--if-not-exists",
        ],
        &["already exists"],
    );

    sb.ok(&["object", "get", "ob", "dir/big", "-o", &sb.p("out.bin")]);
    assert_eq!(std::fs::read(sb.path("out.bin")).unwrap(), data);
    assert_eq!(sb.ok(&["object", "get", "ob", "dir/small"]).stdout, "hello");
    sb.fail_with(&["object", "get", "ob", "nothing"], &["not found"]);

    let ls = sb.json(&["object", "ls", "ob", "--json"]);
    let paths: Vec<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["dir/big", "dir/small", "top"]);
    assert_eq!(ls[0]["size"], 3_000_000);
    assert!(ls[0]["mblocks"].as_array().unwrap().len() > 1, "{ls}");
    let under = sb.json(&["object", "ls", "ob", "dir/", "--json"]);
    assert_eq!(under.as_array().unwrap().len(), 2);
    let table = sb.ok(&["object", "ls", "ob"]).stdout;
    assert!(
        table.contains("dir/small") && table.contains("3 object(s)"),
        "{table}"
    );

    // rm frees the mblocks: the pool's mblock count drops.
    let before = sb
        .json(&["mblock", "list", "ob", "--json"])
        .as_array()
        .unwrap()
        .len();
    let n_big = ls[0]["mblocks"].as_array().unwrap().len();
    sb.ok(&["object", "rm", "ob", "dir/big"]);
    let after = sb
        .json(&["mblock", "list", "ob", "--json"])
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before - after, n_big);
    sb.fail_with(
        &["object", "rm", "ob", "dir/big"],
        &["no object at: dir/big"],
    );
    sb.ok(&["object", "rm", "ob", "dir/big", "--force"]);
    let ls = sb.json(&["object", "ls", "ob", "--json"]);
    assert_eq!(ls.as_array().unwrap().len(), 2);
    sb.fail_with(
        &["object", "ls", "ob", "--store", "other"],
        &["named 'other'", "default"],
    );
}

#[test]
fn torture_objstore_reports_on_its_last_line() {
    let sb = Sandbox::new();
    let o = sb.ok(&[
        "torture",
        "objstore",
        "--seed",
        "5",
        "--crash-points",
        "40",
        "--threads",
        "2",
    ]);
    assert_eq!(
        o.stdout.lines().last(),
        Some("crash_points=40 violations=0"),
        "{}",
        o.all()
    );
    sb.fail_with(&["torture", "objstore", "--threads", "0"], &["--threads"]);
}
