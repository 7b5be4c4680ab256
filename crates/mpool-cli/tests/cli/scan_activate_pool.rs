//! `mpool scan --activate POOL` (issue 15) activates only the named pool
//! (by name or UUID); the other pools found are listed, not activated.

use crate::common;

use common::*;

#[test]
fn scan_activate_one_pool() {
    let sb = Sandbox::new();
    sb.create_small("one", "one.img");
    sb.create_small("two", "two.img");
    let uuid2 = sb.props("two")["uuid"].as_str().unwrap().to_string();
    sb.ok(&["deactivate", "one"]);
    sb.ok(&["deactivate", "two"]);

    let o = sb.ok(&["scan", "--activate", "one"]);
    assert!(o.stdout.contains("activated pool 'one'"), "{}", o.all());
    assert!(!o.stdout.contains("activated pool 'two'"), "{}", o.all());
    let row = o
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("two "))
        .unwrap();
    assert!(row.contains("inactive"), "{}", o.all());
    assert_eq!(sb.active_names(), ["one"]);

    // By UUID (any case), with --json after it.
    let v = sb.json(&["scan", "--activate", &uuid2.to_uppercase(), "--json"]);
    assert_eq!(v["activated"], serde_json::json!(["two"]), "{v}");
    let mut names = sb.active_names();
    names.sort();
    assert_eq!(names, ["one", "two"]);

    // A pool that is not found: refused, nothing activated.
    sb.ok(&["deactivate", "two"]);
    sb.fail_with(
        &["scan", "--activate", "three"],
        &["scan found no pool 'three'"],
    );
    // A file name given where the pool goes: said so.
    sb.fail_with(
        &["scan", "--activate", "two.img"],
        &["no pool 'two.img'", "name it before --activate"],
    );
    assert_eq!(sb.active_names(), ["one"]);
    // A path (a pool name has no '/') is scanned, and everything activated.
    std::fs::remove_file(sb.config()).unwrap();
    let v = sb.json(&["scan", "--activate", &sb.p("two.img"), "--json"]);
    assert_eq!(v["activated"], serde_json::json!(["two"]), "{v}");
    // Plain --activate still activates every pool found.
    sb.ok(&["deactivate", "one"]);
    sb.ok(&["deactivate", "two"]);
    sb.ok(&["scan", &sb.p("one.img"), "--activate"]);
    let mut names = sb.active_names();
    names.sort();
    assert_eq!(names, ["one", "two"]);
}
