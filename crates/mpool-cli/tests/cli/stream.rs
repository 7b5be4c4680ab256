//! `mpool stream`: create, append (arguments and standard input), read
//! (bytes and JSON), follow, stat, list, trim, delete, and the refusals.

use crate::common;

use common::Sandbox;
use std::io::Write;
use std::process::Stdio;

fn append_stdin(sb: &Sandbox, args: &[&str], input: &[u8]) -> String {
    let mut child = sb
        .cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn stream_create_append_read_follow_trim_delete() {
    let sb = Sandbox::new();
    sb.create_small("sp", "cap.img");
    sb.ok(&["stream", "create", "sp", "ev", "--segment-size", "16KiB"]);
    sb.fail_with(&["stream", "create", "sp", "ev"], &["already exists"]);
    assert_eq!(
        sb.ok(&["stream", "append", "sp", "ev", "one", "two"])
            .stdout,
        "0\n1\n"
    );
    assert_eq!(
        append_stdin(&sb, &["stream", "append", "sp", "ev"], b"three\nfour\n"),
        "2\n3\n"
    );
    let j = sb.json(&["stream", "append", "sp", "ev", "five", "--json"]);
    assert_eq!(j["offsets"][0], 4);
    assert_eq!(
        sb.ok(&["stream", "read", "sp", "ev", "--from", "1", "--count", "3"])
            .stdout,
        "two\nthree\nfour\n"
    );
    let j = sb.json(&["stream", "read", "sp", "ev", "--from", "4", "--json"]);
    assert_eq!(j[0]["offset"], 4);
    assert_eq!(j[0]["record"], "66697665"); // "five"
                                            // Enough records for several sealed segments.
    let many: String = (0..3000).map(|i| format!("record-{i:05}\n")).collect();
    let offs = append_stdin(&sb, &["stream", "append", "sp", "ev"], many.as_bytes());
    assert_eq!(offs.lines().last(), Some("3004"));
    // Reopen (a new process): everything reads back, sealed or not.
    let all = sb.ok(&["stream", "read", "sp", "ev"]).stdout;
    assert_eq!(all.lines().count(), 3005);
    assert_eq!(all.lines().nth(5), Some("record-00000"));
    assert_eq!(all.lines().last(), Some("record-02999"));
    let st = sb.json(&["stream", "stat", "sp", "ev", "--json"]);
    assert_eq!(st["next"], 3005);
    let segs = st["segments"].as_array().unwrap().len();
    assert!(segs >= 2, "{st}");
    let list = sb.json(&["stream", "list", "sp", "--json"]);
    assert_eq!(list[0]["name"], "ev");
    assert!(sb.ok(&["stream", "list", "sp"]).stdout.contains("ev"));
    // follow: from an offset, stops after --count.
    let f = sb.ok(&[
        "stream", "follow", "sp", "ev", "--from", "3003", "--count", "2",
    ]);
    assert_eq!(f.stdout, "record-02998\nrecord-02999\n");
    // follow waits for a record appended later by another process.
    let child = sb
        .cmd()
        .args([
            "stream",
            "follow",
            "sp",
            "ev",
            "--from",
            "3005",
            "--count",
            "1",
            "--interval-ms",
            "20",
            "--json",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    sb.ok(&["stream", "append", "sp", "ev", "late"]);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["offset"], 3005);
    assert_eq!(line["record"], "6c617465"); // "late"
                                            // trim: whole segments below the offset go.
    let t = sb.json(&["stream", "trim", "sp", "ev", "--before", "2000", "--json"]);
    assert!(t["segments"].as_u64().unwrap() >= 1, "{t}");
    let first = t["first"].as_u64().unwrap();
    assert!(first > 0 && first <= 2000);
    let r = sb.json(&["stream", "read", "sp", "ev", "--count", "1", "--json"]);
    assert_eq!(r[0]["offset"], first);
    sb.fail_with(&["stream", "trim", "sp", "ev"], &["--before"]);
    sb.ok(&["stream", "delete", "sp", "ev"]);
    sb.fail_with(&["stream", "read", "sp", "ev"], &["no stream 'ev'"]);
    assert_eq!(
        sb.json(&["stream", "list", "sp", "--json"]),
        serde_json::json!([])
    );
}
