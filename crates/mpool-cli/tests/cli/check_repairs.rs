//! `mpool check` is read-only: it reports a damaged superblock copy as a
//! problem and writes nothing. `mpool check --repair` opens the pool
//! read-write and reports the repairs its open made (a damaged superblock
//! copy rewritten), in text and JSON, rather than "0 problem(s)" alone.

use crate::common;
use common::*;

#[test]
fn check_reports_a_rewritten_superblock_copy() {
    let sb = Sandbox::new();
    sb.create_small("mend", "cap.img");
    let cap = sb.p("cap.img");

    flip(&sb, "cap.img", 32768 + 100);
    // Plain check: the damage is a problem, and nothing is written.
    let before = fingerprint(sb.path("cap.img"));
    let o = sb.run(&["check", "mend", "--json"]);
    assert!(!o.status.success(), "{}", o.all());
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["repairs"].as_array().unwrap().len(), 0, "{v}");
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{v}");
    assert!(
        problems[0]["problem"].as_str().unwrap().contains("copy 1"),
        "{v}"
    );
    let o = sb.run(&["check", "mend"]);
    assert!(o.stdout.contains("--repair"), "{}", o.all());
    assert_unchanged(sb.path("cap.img"), &before, "check without --repair");

    let v = sb.json(&["check", "mend", "--repair", "--json"]);
    let repairs = v["repairs"].as_array().unwrap();
    assert_eq!(repairs.len(), 1, "{v}");
    assert!(repairs[0]["object"].as_str().unwrap().contains(&cap), "{v}");
    assert!(
        repairs[0]["repair"].as_str().unwrap().contains("copy 1"),
        "{v}"
    );
    assert_eq!(v["problems"].as_array().unwrap().len(), 0, "{v}");

    // Repaired: nothing to do the next time.
    let v = sb.json(&["check", "mend", "--repair", "--json"]);
    assert_eq!(v["repairs"].as_array().unwrap().len(), 0, "{v}");
    let v = sb.json(&["check", "mend", "--json"]);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0, "{v}");

    // Text.
    flip(&sb, "cap.img", 200);
    let o = sb.ok(&["check", "mend", "--repair"]);
    let line = o
        .stdout
        .lines()
        .find(|l| l.starts_with("REPAIRED"))
        .unwrap_or_default();
    assert!(
        line.contains(&cap) && line.contains("copy 0"),
        "{}",
        o.all()
    );
    assert!(
        o.stdout.contains("0 problem(s), 1 repair(s)"),
        "{}",
        o.all()
    );
    assert_eq!(sb.props("mend")["health"], "ok");
}
