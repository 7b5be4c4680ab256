//! `mpool check` reports the repairs its open made (a damaged superblock
//! copy rewritten), in text and JSON, rather than "0 problem(s)" alone.

use crate::common;
use common::*;

#[test]
fn check_reports_a_rewritten_superblock_copy() {
    let sb = Sandbox::new();
    sb.create_small("mend", "cap.img");
    let cap = sb.p("cap.img");

    flip(&sb, "cap.img", 32768 + 100);
    let v = sb.json(&["check", "mend", "--json"]);
    let repairs = v["repairs"].as_array().unwrap();
    assert_eq!(repairs.len(), 1, "{v}");
    assert!(repairs[0]["object"].as_str().unwrap().contains(&cap), "{v}");
    assert!(
        repairs[0]["repair"].as_str().unwrap().contains("copy 1"),
        "{v}"
    );
    assert_eq!(v["problems"].as_array().unwrap().len(), 0, "{v}");

    // Repaired: nothing to do the next time.
    let v = sb.json(&["check", "mend", "--json"]);
    assert_eq!(v["repairs"].as_array().unwrap().len(), 0, "{v}");

    // Text.
    flip(&sb, "cap.img", 200);
    let o = sb.ok(&["check", "mend"]);
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
