//! `set` is all or nothing: a chown or chmod the caller may not do leaves
//! the superblock unwritten and the devices as they were; an owner of
//! 4294967295 (chown's "no change") or out of range is refused.

use crate::common;
use common::*;

/// What `set` must not change when refused.
fn recorded(sb: &Sandbox) -> Vec<serde_json::Value> {
    let p = sb.props("own");
    ["label", "uid", "gid", "mode", "generation"]
        .iter()
        .map(|k| p[k].clone())
        .collect()
}

#[test]
fn refused_chown_changes_nothing() {
    let Some(setpriv) = setpriv_for("set_atomic::refused_chown_changes_nothing") else {
        return;
    };
    let sb = Sandbox::new();
    sb.open_up();
    let probe = as_nobody(&sb, &setpriv, &["--version"]);
    if !probe.status.success() {
        eprintln!(
            "SKIPPED: uid {NOBODY} cannot run the mpool binary: {}",
            probe.all()
        );
        return;
    }
    sb.ok(&[
        "create",
        "own",
        &sb.p("cap.img"),
        "--size",
        "64MiB",
        "--mblock-size",
        "1MiB",
        "--staging",
        &sb.p("stg.img"),
        "--staging-size",
        "16MiB",
        "--uid",
        &NOBODY.to_string(),
        "--gid",
        &NOBODY.to_string(),
        "--mode",
        "0600",
    ]);
    let rec = recorded(&sb);
    let cap = fingerprint(sb.path("cap.img"));

    // The owner may not give the devices to root: neither the label nor the
    // recorded uid changes.
    let o = as_nobody(&sb, &setpriv, &["set", "own", "label=x", "uid=0"]);
    assert!(!o.status.success(), "{}", o.all());
    assert!(
        o.stderr.to_lowercase().contains("not permitted"),
        "{}",
        o.all()
    );
    assert_eq!(recorded(&sb), rec, "refused set changed the superblock");
    assert_unchanged(sb.path("cap.img"), &cap, "refused set");

    // The staging device belongs to root (writable by all): the capacity
    // device's chmod succeeds, the staging device's chown fails, and the
    // capacity device gets its mode back.
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::chown(sb.path("stg.img"), Some(0), Some(0)).unwrap();
    std::fs::set_permissions(sb.path("stg.img"), std::fs::Permissions::from_mode(0o666)).unwrap();
    let stg = fingerprint(sb.path("stg.img"));
    let o = as_nobody(&sb, &setpriv, &["set", "own", "mode=0640", "label=y"]);
    assert!(!o.status.success(), "{}", o.all());
    assert!(o.stderr.contains(&sb.p("stg.img")), "{}", o.all());
    assert_eq!(recorded(&sb), rec, "refused set changed the superblock");
    assert_unchanged(sb.path("cap.img"), &cap, "refused set, undone");
    assert_unchanged(sb.path("stg.img"), &stg, "refused set");

    // What the owner may do, it does.
    std::os::unix::fs::chown(sb.path("stg.img"), Some(NOBODY), Some(NOBODY)).unwrap();
    let o = as_nobody(&sb, &setpriv, &["set", "own", "mode=0640", "label=z"]);
    assert!(o.status.success(), "{}", o.all());
    assert_eq!(sb.props("own")["label"], "z");
    assert_eq!(sb.props("own")["mode"], "0640");
}

#[test]
fn no_change_owner_values_are_refused() {
    let sb = Sandbox::new();
    sparse(sb.path("cap.img"), 64 << 20);
    let before = fingerprint(sb.path("cap.img"));
    for flag in ["--uid", "--gid"] {
        sb.fail_with(
            &[
                "create",
                "own",
                &sb.p("cap.img"),
                "--mblock-size",
                "1MiB",
                flag,
                "4294967295",
            ],
            &["4294967295"],
        );
        assert_unchanged(sb.path("cap.img"), &before, "refused create");
    }
    assert!(sb.active_names().is_empty());
    sb.ok(&["create", "own", &sb.p("cap.img"), "--mblock-size", "1MiB"]);
    let rec = recorded(&sb);
    let cap = fingerprint(sb.path("cap.img"));
    for bad in [
        "uid=4294967295",
        "gid=4294967295",
        "uid=4294967296",
        "gid=-1",
        "uid=99999999999",
    ] {
        let o = sb.fail(&["set", "own", "label=changed", bad]);
        assert!(
            o.stderr.contains(bad.split_once('=').unwrap().1),
            "{bad}: {}",
            o.all()
        );
        assert_eq!(recorded(&sb), rec, "{bad}: refused set changed the pool");
        assert_unchanged(sb.path("cap.img"), &cap, bad);
    }
}
