//! rename works on inactive pools only; the new name survives activation.

use crate::common;
use common::*;

#[test]
fn rename_inactive_pool() {
    let sb = Sandbox::new();
    sb.create_with_staging("old", "cap.img", "stg.img");
    let uuid = sb.props("old")["uuid"].as_str().unwrap().to_string();

    // Active: refused, nothing changed.
    let cap = fingerprint(sb.path("cap.img"));
    let stg = fingerprint(sb.path("stg.img"));
    sb.fail_with(
        &["rename", "old", "new"],
        &["'old' is active", "deactivate"],
    );
    assert_unchanged(sb.path("cap.img"), &cap, "rename of an active pool");
    assert_unchanged(sb.path("stg.img"), &stg, "rename of an active pool");
    assert_eq!(sb.props("old")["generation"], 1);

    sb.ok(&["deactivate", "old"]);
    // Bad new names: refused, nothing changed.
    for bad in ["bad/name", "a b", &"x".repeat(32), ""] {
        sb.fail(&["rename", "old", bad]);
    }
    sb.fail_with(
        &["rename", "old", "--", "-dash"],
        &["must not start with '-'"],
    );
    // A name taken by another (active) pool, or an inactive one: refused.
    sb.create_small("other", "o.img");
    sb.fail_with(&["rename", "old", "other"], &["'other' already exists"]);
    sb.ok(&["deactivate", "other"]);
    sb.fail_with(&["rename", "old", "other"], &["'other' already exists"]);
    sb.fail_with(&["rename", "nosuch", "fresh"], &["no pool 'nosuch'"]);
    assert_unchanged(sb.path("cap.img"), &cap, "refused renames");
    assert_unchanged(sb.path("stg.img"), &stg, "refused renames");

    let o = sb.ok(&["rename", "old", "new"]);
    assert!(
        o.stdout.contains("renamed pool 'old' to 'new'"),
        "{}",
        o.all()
    );
    sb.fail_with(&["activate", "old"], &["no pool 'old'"]);
    sb.ok(&["activate", "new"]);
    let p = sb.props("new");
    assert_eq!(p["name"], "new");
    assert_eq!(p["uuid"], uuid.as_str());
    assert_eq!(p["generation"], 2);
    assert_eq!(p["health"], "ok", "both devices carry the new name: {p}");
    assert_eq!(sb.active_names(), ["new"]);

    // Rename by UUID, and the longest valid name.
    sb.ok(&["deactivate", "new"]);
    let long = "a.b_c-D".repeat(5)[..31].to_string();
    sb.ok(&["rename", &uuid, &long]);
    sb.ok(&["activate", &long]);
    assert_eq!(sb.props(&long)["name"], long.as_str());
}
