//! A device file that was deleted: `scan` warns and says how to stop the
//! warning, `forget` takes it out of the device list, and `destroy` of a
//! pool with a missing member erases what is left and says what was missing.

use crate::common;
use common::*;

#[test]
fn a_deleted_member_file_is_forgotten() {
    let sb = Sandbox::new();
    sb.create_with_staging("f", "cap.img", "stg.img");
    sb.ok(&["deactivate", "f"]);
    std::fs::remove_file(sb.path("stg.img")).unwrap();
    let stg = sb.p("stg.img");

    let o = sb.ok(&["scan"]);
    assert!(
        o.stderr.contains(&format!("cannot read {stg}")),
        "{}",
        o.all()
    );
    assert!(
        o.stderr.contains(&format!("`mpool forget {stg}`")),
        "{}",
        o.all()
    );

    let v = sb.json(&["forget", &stg, &sb.p("never.img"), "--json"]);
    assert_eq!(v["paths"], serde_json::json!([stg]), "{v}");
    assert_eq!(
        v["not_listed"],
        serde_json::json!([sb.p("never.img")]),
        "{v}"
    );
    assert!(!sb.known_paths().contains(&stg), "{:?}", sb.known_paths());
    assert!(sb.known_paths().contains(&sb.p("cap.img")));

    let o = sb.ok(&["scan"]);
    assert!(!o.stderr.contains("cannot read"), "{}", o.all());
    assert!(!o.stderr.contains("forget"), "{}", o.all());
    // Forgetting it again: nothing to forget, and said so.
    let o = sb.ok(&["forget", &stg]);
    assert!(o.stderr.contains("not in the device list"), "{}", o.all());
}

#[test]
fn forget_by_pool_name() {
    let sb = Sandbox::new();
    sb.create_with_staging("g", "cap.img", "stg.img");
    // An active pool whose devices are all there keeps its entry.
    let v = sb.json(&["forget", "g", "--json"]);
    assert_eq!(v["paths"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["deactivated"], serde_json::Value::Null);
    assert_eq!(sb.active_names(), ["g"]);
    // Once a device is gone, its entry goes too.
    sb.ok(&["activate", "g"]);
    std::fs::remove_file(sb.path("stg.img")).unwrap();
    let v = sb.json(&["forget", "g", "--json"]);
    assert_eq!(v["deactivated"], "g", "{v}");
    assert!(sb.active_names().is_empty());
    // Refused while the pool is open (its lock held as an open pool holds it).
    sb.create_small("h", "h.img");
    let held = std::fs::File::open(sb.path("h.img")).unwrap();
    held.lock().unwrap();
    sb.fail_with(&["forget", "h"], &["pool 'h' is open"]);
    drop(held);
    assert!(sb.known_paths().contains(&sb.p("h.img")));
    sb.fail_with(&["forget", "nosuch"], &["no pool 'nosuch'"]);
}

#[test]
fn destroy_with_a_missing_member_erases_what_is_left() {
    let sb = Sandbox::new();
    sb.create_with_staging("d", "cap.img", "stg.img");
    let uuid = sb.props("d")["uuid"].as_str().unwrap().to_string();
    std::fs::remove_file(sb.path("stg.img")).unwrap();
    let stg = sb.p("stg.img");

    // Refused while the capacity device is held open, and nothing erased.
    let held = std::fs::File::open(sb.path("cap.img")).unwrap();
    held.lock().unwrap();
    let before = fingerprint(sb.path("cap.img"));
    sb.fail_with(&["destroy", "d", "--yes"], &["pool 'd' is open"]);
    assert_unchanged(sb.path("cap.img"), &before, "refused destroy");
    drop(held);

    let o = sb.ok(&["destroy", "d", "--yes"]);
    assert!(
        o.stderr.contains("missing 1 member(s): staging"),
        "{}",
        o.all()
    );
    assert!(o.stderr.contains(&stg), "{}", o.all());
    assert!(o.stdout.contains("destroyed pool 'd'"), "{}", o.all());
    // The capacity device's superblocks are erased: nothing finds the pool.
    let v = sb.json(&["scan", &sb.p("cap.img"), "--json"]);
    assert!(v["report"]["pools"].as_array().unwrap().is_empty(), "{v}");
    assert!(!v.to_string().contains(&uuid), "{v}");
    // Forgotten: the entry and both paths.
    assert!(sb.active_names().is_empty());
    assert!(sb.known_paths().is_empty(), "{:?}", sb.known_paths());
    let o = sb.ok(&["scan"]);
    assert!(!o.stderr.contains("cannot read"), "{}", o.all());
    // The capacity file can hold a new pool without --force.
    sb.ok(&["create", "d2", &sb.p("cap.img"), "--mblock-size", "1MiB"]);
}

#[test]
fn destroy_of_an_inactive_pool_with_a_missing_member() {
    let sb = Sandbox::new();
    sb.create_with_staging("e", "cap.img", "stg.img");
    sb.ok(&["deactivate", "e"]);
    std::fs::remove_file(sb.path("stg.img")).unwrap();
    let o = sb.ok(&["destroy", "e", "--yes"]);
    assert!(
        o.stderr.contains("missing 1 member(s): staging"),
        "{}",
        o.all()
    );
    let v = sb.json(&["scan", &sb.p("cap.img"), "--json"]);
    assert!(v["report"]["pools"].as_array().unwrap().is_empty(), "{v}");
}

#[test]
fn forget_of_an_open_pool_with_a_deleted_member_is_refused() {
    let sb = Sandbox::new();
    sb.create_with_staging("k", "cap.img", "stg.img");
    // Another process holds the pool open (its lock held as an open pool
    // holds it), and one member file is deleted meanwhile.
    let held = std::fs::File::open(sb.path("cap.img")).unwrap();
    held.lock().unwrap();
    std::fs::remove_file(sb.path("stg.img")).unwrap();
    let before = fingerprint(sb.path("cap.img"));
    sb.fail_with(&["forget", "k"], &["pool 'k' is open"]);
    assert_eq!(sb.active_names(), ["k"], "the open pool's entry must stay");
    assert!(sb.known_paths().contains(&sb.p("cap.img")));
    assert!(sb.known_paths().contains(&sb.p("stg.img")));
    assert_unchanged(sb.path("cap.img"), &before, "refused forget");
    drop(held);
    // Once nobody holds it, the pool whose member is gone is forgotten.
    let v = sb.json(&["forget", "k", "--json"]);
    assert_eq!(v["deactivated"], "k", "{v}");
    assert!(sb.active_names().is_empty());
}
