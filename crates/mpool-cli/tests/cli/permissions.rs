//! Opening a pool without access to its devices fails with an error that
//! names the device and the missing permission; granting access via
//! `set uid=` makes it work.

use crate::common;
use common::*;
use std::process::Command;

#[test]
fn open_without_access_names_device_and_permission() {
    let Some(setpriv) = setpriv_for("permissions::open_without_access_names_device_and_permission")
    else {
        return;
    };
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_mpool"));
    // The binary must be reachable by the other user.
    let probe = Command::new(&setpriv)
        .args([
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".into(),
        ])
        .arg(bin)
        .arg("--version")
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: uid {NOBODY} cannot run {}", bin.display());
        return;
    }
    let sb = Sandbox::new();
    sb.open_up();
    sb.ok(&[
        "create",
        "priv",
        &sb.p("cap.img"),
        "--size",
        "64MiB",
        "--mblock-size",
        "1MiB",
        "--staging",
        &sb.p("stg.img"),
        "--staging-size",
        "16MiB",
        "--mode",
        "0600",
    ]);
    let cap = fingerprint(sb.path("cap.img"));

    // Writers need read-write on the device.
    let o = as_nobody(&sb, &setpriv, &["set", "priv", "label=x"]);
    assert!(!o.status.success(), "{}", o.all());
    assert!(o.stderr.contains("permission denied"), "{}", o.all());
    assert!(o.stderr.contains(&sb.p("cap.img")), "{}", o.all());
    assert!(o.stderr.contains("read-write"), "{}", o.all());
    // Readers need read.
    let o = as_nobody(&sb, &setpriv, &["get", "priv", "label"]);
    assert!(!o.status.success(), "{}", o.all());
    assert!(o.stderr.contains(&sb.p("cap.img")), "{}", o.all());
    assert!(o.stderr.contains("needs read access"), "{}", o.all());
    // list shows the pool as unavailable with the reason, and still succeeds.
    let o = as_nobody(&sb, &setpriv, &["list"]);
    assert!(o.status.success(), "{}", o.all());
    assert!(
        o.stdout.contains("unavailable") && o.stdout.contains("permission denied"),
        "{}",
        o.all()
    );
    assert_unchanged(sb.path("cap.img"), &cap, "refused opens");

    // Read access for the group only: get works, set still names read-write.
    sb.ok(&["set", "priv", &format!("gid={NOBODY}"), "mode=0640"]);
    let o = as_nobody(&sb, &setpriv, &["get", "priv", "label", "--json"]);
    assert!(o.status.success(), "{}", o.all());
    let o = as_nobody(&sb, &setpriv, &["set", "priv", "label=x"]);
    assert!(o.stderr.contains("read-write"), "{}", o.all());

    // Ownership to nobody: the other user can now write.
    sb.ok(&["set", "priv", &format!("uid={NOBODY}"), "mode=0600"]);
    let o = as_nobody(&sb, &setpriv, &["set", "priv", "label=by nobody"]);
    assert!(o.status.success(), "{}", o.all());
    assert_eq!(sb.props("priv")["label"], "by nobody");
    // A single member without access (staging back to root) is named too.
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::chown(sb.path("stg.img"), Some(0), Some(0)).unwrap();
    std::fs::set_permissions(sb.path("stg.img"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = as_nobody(&sb, &setpriv, &["set", "priv", "label=y"]);
    assert!(!o.status.success(), "{}", o.all());
    assert!(o.stderr.contains(&sb.p("stg.img")), "{}", o.all());
    assert!(o.stderr.contains("read-write"), "{}", o.all());
    assert_eq!(sb.props("priv")["label"], "by nobody");
}
