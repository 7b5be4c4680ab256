//! A byte-for-byte copy of a member device (a backup image, a cloned LUN)
//! is the same member twice: `scan` reports it naming both paths, and
//! `scan --activate`, `activate`, `destroy` refuse naming both, writing
//! nothing to either.

use crate::common;
use common::*;
use serde_json::Value;

fn whole(sb: &Sandbox, name: &str) -> Vec<u8> {
    std::fs::read(sb.path(name)).unwrap()
}

fn list_copy(sb: &Sandbox, name: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(sb.config())
        .unwrap();
    writeln!(f, "{}", sb.p(name)).unwrap();
}

#[test]
fn a_copied_member_is_reported_and_refused_by_scan_activate_and_destroy() {
    let sb = Sandbox::new();
    sb.create_small("twin", "cap.img");
    sb.ok(&["deactivate", "twin"]);
    std::fs::copy(sb.path("cap.img"), sb.path("copy.img")).unwrap();
    let image = whole(&sb, "cap.img");
    assert!(whole(&sb, "copy.img") == image);
    let (cap, copy) = (sb.p("cap.img"), sb.p("copy.img"));
    let untouched = |what: &str| {
        assert!(whole(&sb, "cap.img") == image, "{what}: cap.img changed");
        assert!(whole(&sb, "copy.img") == image, "{what}: copy.img changed");
    };

    // scan reports the duplicate, text and JSON.
    let v = sb.json(&["scan", &copy, "--json"]);
    let pools: Vec<&Value> = v["report"]["pools"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "twin")
        .collect();
    assert_eq!(pools.len(), 1, "{v}");
    let dups = pools[0]["duplicates"].as_array().unwrap();
    assert_eq!(dups.len(), 1, "{v}");
    assert_eq!(dups[0]["class"], "capacity");
    let paths: Vec<&str> = dups[0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&cap.as_str()) && paths.contains(&copy.as_str()),
        "{v}"
    );
    let o = sb.ok(&["scan", &copy]);
    let row = o
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("twin"))
        .unwrap_or_default();
    assert!(
        row.contains("duplicate") && row.contains("1/1"),
        "{}",
        o.all()
    );
    let line = o
        .stdout
        .lines()
        .find(|l| l.contains("copy of"))
        .unwrap_or_default();
    assert!(line.contains(&cap) && line.contains(&copy), "{}", o.all());

    // scan --activate refuses, naming both.
    let o = sb.run(&["scan", &copy, "--activate"]);
    assert!(!o.status.success(), "{}", o.all());
    assert!(o.stderr.contains("could not activate twin"), "{}", o.all());
    assert!(
        o.stderr.contains(&cap) && o.stderr.contains(&copy),
        "{}",
        o.all()
    );
    assert!(sb.active_names().is_empty());
    let o = sb.run(&["scan", &copy, "--activate", "--json"]);
    assert!(!o.status.success(), "{}", o.all());
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    let errs = v["activation_errors"].to_string();
    assert!(errs.contains(&cap) && errs.contains(&copy), "{v}");
    untouched("scan --activate");

    // The copy is in the device list, as a cloned LUN every scan sees:
    // activate and destroy by name refuse.
    list_copy(&sb, "copy.img");
    sb.fail_with(&["activate", "twin"], &[&cap, &copy, "copy of the other"]);
    assert!(sb.active_names().is_empty());
    sb.fail_with(&["destroy", "twin"], &[&cap, &copy, "copy of the other"]);
    untouched("activate and destroy of the inactive pool");

    // Active with the original only: destroy still sees the copy and refuses.
    std::fs::remove_file(sb.config()).unwrap();
    sb.ok(&["scan", &cap, "--activate"]);
    assert_eq!(sb.active_names(), ["twin"]);
    let image = whole(&sb, "cap.img");
    let copy_image = whole(&sb, "copy.img");
    list_copy(&sb, "copy.img");
    sb.fail_with(&["destroy", "twin"], &[&cap, &copy]);
    assert!(
        whole(&sb, "cap.img") == image,
        "destroy of the active pool changed cap.img"
    );
    assert!(
        whole(&sb, "copy.img") == copy_image,
        "destroy of the active pool changed copy.img"
    );
    assert_eq!(sb.active_names(), ["twin"]);

    // With the copy gone, the pool is whole again.
    std::fs::remove_file(sb.path("copy.img")).unwrap();
    sb.ok(&["destroy", "twin"]);
}
