//! `scan` reports a device whose superblock copies are both damaged (the
//! mpool magic present, neither copy valid) with its path and why, instead
//! of skipping it.

use crate::common;
use common::*;

#[test]
fn scan_reports_a_device_with_both_superblock_copies_damaged() {
    let sb = Sandbox::new();
    sb.create_small("dmg", "cap.img");
    sb.ok(&["deactivate", "dmg"]);
    // Inside each copy's checksummed range (bytes 0..4092).
    flip(&sb, "cap.img", 100);
    flip(&sb, "cap.img", 32768 + 100);
    let cap = sb.p("cap.img");

    let v = sb.json(&["scan", "--json"]);
    let damaged = v["report"]["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{v}");
    assert_eq!(damaged[0]["path"], cap.as_str());
    let why = damaged[0]["why"].as_str().unwrap();
    assert!(why.contains("copy 0") && why.contains("copy 1"), "{v}");
    assert!(why.contains("checksum"), "{v}");

    let o = sb.ok(&["scan", &cap]);
    let line = o
        .stdout
        .lines()
        .find(|l| l.contains("damaged"))
        .unwrap_or_default();
    assert!(
        line.contains(&cap) && line.contains("checksum"),
        "{}",
        o.all()
    );

    // A blank file is not damaged: not reported.
    sparse(sb.path("blank.img"), 1 << 20);
    sparse(sb.path("tiny.img"), 4096);
    let v = sb.json(&["scan", &sb.p("blank.img"), &sb.p("tiny.img"), "--json"]);
    assert_eq!(v["report"]["damaged"].as_array().unwrap().len(), 1, "{v}");
}
