//! `mpool mblock`: write a file or stdin into a committed mblock (its ID the
//! only line of stdout), read it back whole or in part, stat, list, delete;
//! misuse is refused with a message and a non-zero exit.

use crate::common;

use common::Sandbox;
use std::io::Write;
use std::process::Stdio;

#[test]
fn mblock_write_read_stat_list_delete() {
    let sb = Sandbox::new();
    sb.create_small("mb", "cap.img");
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(sb.path("in.bin"), &data).unwrap();

    let out = sb.ok(&["mblock", "write", "mb", &sb.p("in.bin")]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "the ID is the only line: {}", out.all());
    let id = lines[0].to_string();
    assert!(id.starts_with("0x"), "{id}");

    sb.ok(&["mblock", "read", "mb", &id, "-o", &sb.p("out.bin")]);
    assert_eq!(std::fs::read(sb.path("out.bin")).unwrap(), data);
    let part = sb
        .cmd()
        .args([
            "mblock", "read", "mb", &id, "--offset", "1000", "--length", "10",
        ])
        .output()
        .unwrap();
    assert!(part.status.success());
    assert_eq!(&part.stdout[..], &data[1000..1010]);

    // Standard input.
    let mut child = sb
        .cmd()
        .args(["mblock", "write", "mb"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    let id2 = String::from_utf8(o.stdout).unwrap().trim().to_string();
    assert_eq!(sb.ok(&["mblock", "read", "mb", &id2]).stdout, "from stdin");

    let st = sb.json(&["mblock", "stat", "mb", &id, "--json"]);
    assert_eq!(st["length"], 300_000);
    assert_eq!(st["committed"], true);
    assert_eq!(st["type"], "mblock");
    // A format-3 mblock's record holds the CRC of its table of 4 KiB
    // block CRCs (docs/format.md, "Mblock content").
    assert_eq!(st["csum_block"], 4096);
    let table: Vec<u8> = data
        .chunks(4096)
        .flat_map(|b| (crc(b) as u32).to_le_bytes())
        .collect();
    assert_eq!(st["crc32c"], format!("{:08x}", crc(&table)));
    let list = sb.json(&["mblock", "list", "mb", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(
        sb.ok(&["list"]).stdout.contains(" 3 "),
        "object count (2 mblocks + root MDC) in list"
    );

    sb.ok(&["mblock", "delete", "mb", &id]);
    sb.fail_with(&["mblock", "delete", "mb", &id], &["no object"]);
    sb.fail_with(&["mblock", "read", "mb", &id], &["no object"]);
    sb.fail_with(&["mblock", "read", "mb", "zz"], &["not an object ID"]);
    sb.fail_with(
        &["mblock", "read", "mb", &id2, "--offset", "100"],
        &["past the end"],
    );
    sb.fail_with(&["mblock", "write", "mb", &sb.p("missing")], &["missing"]);
    sb.fail_with(
        &[
            "mblock",
            "write",
            "mb",
            &sb.p("in.bin"),
            "--class",
            "staging",
        ],
        &["no staging media class"],
    );
    sb.fail_with(&["mblock", "list", "nosuchpool"], &["nosuchpool"]);
    // A file larger than an mblock is refused, and nothing is left allocated.
    std::fs::write(sb.path("big.bin"), vec![1u8; (1 << 20) + 1]).unwrap();
    sb.fail_with(
        &["mblock", "write", "mb", &sb.p("big.bin")],
        &["more than one mblock holds"],
    );
    assert_eq!(
        sb.json(&["mblock", "list", "mb", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let chk = sb.ok(&["check", "mb"]);
    assert!(chk.stdout.contains("0 problem(s)"), "{}", chk.all());
}

fn crc(d: &[u8]) -> u64 {
    // CRC-32C (Castagnoli), bitwise, to check the CLI's figure independently.
    let mut c: u32 = !0;
    for &b in d {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
        }
    }
    u64::from(!c)
}

/// An mlog's ID given where an mblock's is expected is refused as it is
/// parsed, with a message that names both types; an mblock's ID given to
/// `mlog append` likewise.
#[test]
fn an_id_of_another_type_is_refused_by_type() {
    let sb = Sandbox::new();
    sb.create_small("ty", "cap.img");
    let log = sb
        .ok(&["mlog", "create", "ty", "--capacity", "1MiB"])
        .stdout
        .trim()
        .to_string();
    let want = format!("{log} is an mlog, not an mblock");
    sb.fail_with(&["mblock", "read", "ty", &log], &[&want]);
    sb.fail_with(&["mblock", "delete", "ty", &log], &[&want]);
    std::fs::write(sb.path("in.bin"), b"x").unwrap();
    let mb = sb
        .ok(&["mblock", "write", "ty", &sb.p("in.bin")])
        .stdout
        .trim()
        .to_string();
    let want = format!("{mb} is an mblock, not an mlog");
    sb.fail_with(&["mlog", "append", "ty", &mb, "r"], &[&want]);
    // Stat takes any object.
    assert_eq!(
        sb.json(&["mblock", "stat", "ty", &log, "--json"])["type"],
        "mlog"
    );
}

/// Input larger than the pool's mblock size (issue 15): a file is refused
/// before anything is allocated, naming the limit and what to do; standard
/// input, whose size is found out as it is read, fails with the same advice
/// as a hint. Nothing is left allocated either way.
#[test]
fn input_larger_than_the_mblock_size_is_refused_with_the_limit() {
    let sb = Sandbox::new();
    sb.create_small("big", "cap.img");
    std::fs::write(sb.path("big.bin"), vec![7u8; 5_000_000]).unwrap();
    let o = sb.fail_with(
        &["mblock", "write", "big", &sb.p("big.bin")],
        &[
            "is 4.8 MiB (5000000 bytes), more than one mblock holds, ",
            "(1044480 bytes: the pool's mblock size, 1.0 MiB (1048576 bytes), less the mblock's checksum table)",
            "nothing written",
            "split the data",
            "--mblock-size",
        ],
    );
    assert!(!o.stderr.contains("is full"), "{}", o.all());

    let mut child = sb
        .cmd()
        .args(["mblock", "write", "big"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The command stops reading when it fails: a closed pipe is fine.
    let _ = stdin.write_all(&vec![7u8; (1 << 20) + 1]);
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("mpool: hint: ")
            && err.contains("(1044480 bytes) is the most one mblock holds (the pool's mblock size, less the mblock's checksum table in a format-3 pool); split the data")
            && err.contains("--mblock-size"),
        "{err}"
    );
    assert_eq!(
        sb.json(&["mblock", "list", "big", "--json"]),
        serde_json::json!([])
    );
    assert!(sb.ok(&["check", "big"]).stdout.contains("0 problem(s)"));
}

/// Empty input (issue 15) is refused unless --allow-empty: an empty mblock
/// still takes a whole zone.
#[test]
fn empty_input_is_refused_unless_allowed() {
    let sb = Sandbox::new();
    sb.create_small("em", "cap.img");
    let before = sb.props("em")["used"].clone();
    std::fs::write(sb.path("empty.bin"), b"").unwrap();
    sb.fail_with(
        &["mblock", "write", "em", &sb.p("empty.bin")],
        &[
            "is empty",
            "a whole zone of the pool's mblock size, 1.0 MiB",
            "--allow-empty",
        ],
    );
    let o = common::output(
        sb.cmd()
            .args(["mblock", "write", "em"])
            .stdin(Stdio::null()),
    );
    assert!(!o.status.success(), "{}", o.all());
    assert!(o.stderr.contains("standard input is empty"), "{}", o.all());
    assert_eq!(
        sb.json(&["mblock", "list", "em", "--json"]),
        serde_json::json!([])
    );
    assert_eq!(sb.props("em")["used"], before);

    let o = common::output(
        sb.cmd()
            .args(["mblock", "write", "em", "--allow-empty"])
            .stdin(Stdio::null()),
    );
    assert!(o.status.success(), "{}", o.all());
    let id = o.stdout.trim().to_string();
    assert_eq!(
        sb.json(&["mblock", "stat", "em", &id, "--json"])["length"],
        0
    );
}
