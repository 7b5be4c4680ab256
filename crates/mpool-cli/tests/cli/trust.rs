//! The run directory and the device list are trusted only when nobody else
//! could have written them: owned by the caller (or root), not writable by
//! group or others, not symbolic links; entries are never read or written
//! through a link.

use crate::common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const NOBODY: u32 = 65534;

fn chmod(p: &std::path::Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_run_directory_writable_by_others_is_refused() {
    let sb = Sandbox::new();
    std::fs::create_dir(sb.rundir()).unwrap();
    chmod(&sb.rundir(), 0o777);
    let o = sb.fail_with(
        &["list"],
        &[
            &format!("run directory {} is writable", sb.rundir().display()),
            "mode 0777",
            "chmod go-w",
            "MPOOL_RUNDIR",
        ],
    );
    assert!(!o.status.success());
    sb.fail_with(
        &["create", "t", &sb.p("a.img"), "--size", "64MiB"],
        &["writable"],
    );
    assert!(!sb.path("a.img").exists(), "nothing created");
    // Fixed as the message says: it works.
    chmod(&sb.rundir(), 0o755);
    sb.ok(&["list"]);
}

#[test]
fn a_device_list_that_is_a_symbolic_link_is_refused() {
    let sb = Sandbox::new();
    sb.create_small("t", "a.img");
    sb.ok(&["deactivate", "t"]);
    std::fs::rename(sb.config(), sb.path("elsewhere")).unwrap();
    std::os::unix::fs::symlink(sb.path("elsewhere"), sb.config()).unwrap();
    let msg = format!("device list {} is a symbolic link", sb.config().display());
    sb.fail_with(&["scan"], &[&msg, "MPOOL_CONFIG"]);
    sb.fail_with(&["activate", "t"], &[&msg]);
    // Nothing was written through the link.
    assert_eq!(
        std::fs::read_to_string(sb.path("elsewhere")).unwrap(),
        format!("{}\n", sb.p("a.img"))
    );
    // A device list writable by others is refused too.
    std::fs::remove_file(sb.config()).unwrap();
    std::fs::rename(sb.path("elsewhere"), sb.config()).unwrap();
    chmod(&sb.config(), 0o666);
    sb.fail_with(&["scan"], &["device list", "is writable by"]);
    chmod(&sb.config(), 0o644);
    sb.ok(&["activate", "t"]);
}

#[test]
fn an_entry_replaced_by_a_symbolic_link_is_not_followed() {
    let sb = Sandbox::new();
    sb.create_small("t", "a.img");
    let uuid = sb.props("t")["uuid"].as_str().unwrap().to_string();
    // Someone replaces the entry with a link to an entry of their own.
    let entry = sb.rundir().join("t.pool");
    std::fs::rename(&entry, sb.path("planted.pool")).unwrap();
    std::os::unix::fs::symlink(sb.path("planted.pool"), &entry).unwrap();
    assert!(sb.active_names().is_empty(), "a linked entry is not read");
    sb.fail_with(&["get", "t"], &["no pool 't'"]);
    // The holder record of an open pool is not written through a link.
    std::fs::remove_file(&entry).unwrap();
    std::fs::rename(sb.path("planted.pool"), &entry).unwrap();
    std::fs::write(sb.path("victim"), "keep").unwrap();
    let pid = sb.rundir().join(format!("{uuid}.pid"));
    let _ = std::fs::remove_file(&pid);
    std::os::unix::fs::symlink(sb.path("victim"), &pid).unwrap();
    sb.ok(&["set", "t", "label=x"]);
    assert_eq!(std::fs::read_to_string(sb.path("victim")).unwrap(), "keep");
}

#[test]
fn a_run_directory_owned_by_another_user_is_refused() {
    if !is_root() {
        eprintln!("SKIPPED: ownership test needs root (to chown the run directory)");
        return;
    }
    let sb = Sandbox::new();
    std::fs::create_dir(sb.rundir()).unwrap();
    std::os::unix::fs::chown(sb.rundir(), Some(NOBODY), Some(NOBODY)).unwrap();
    sb.fail_with(
        &["list"],
        &[&format!(
            "run directory {} is owned by uid {NOBODY}, not you (0): remove it",
            sb.rundir().display()
        )],
    );
    // A device list owned by another user is refused the same way.
    std::os::unix::fs::chown(sb.rundir(), Some(0), Some(0)).unwrap();
    std::fs::write(sb.config(), "").unwrap();
    std::os::unix::fs::chown(sb.config(), Some(NOBODY), Some(NOBODY)).unwrap();
    sb.fail_with(
        &["scan"],
        &["device list", &format!("owned by uid {NOBODY}")],
    );
}

/// The attack of issue 15: another user creates the shared fallback
/// `/tmp/mpool-UID` before its owner does. Run as uid 65534 with TMPDIR in
/// the sandbox, against a `mpool-65534` that uid 1001 made.
#[test]
fn the_tmp_fallback_made_by_another_user_is_refused() {
    let Some(setpriv) = setpriv_for("trust::the_tmp_fallback_made_by_another_user_is_refused")
    else {
        return;
    };
    let sb = Sandbox::new();
    sb.open_up();
    let tmp = sb.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    chmod(&tmp, 0o1777);
    let planted = tmp.join(format!("mpool-{NOBODY}"));
    std::fs::create_dir(&planted).unwrap();
    std::os::unix::fs::chown(&planted, Some(1001), Some(1001)).unwrap();
    chmod(&planted, 0o755);
    let mut c = Command::new(&setpriv);
    c.arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .arg(env!("CARGO_BIN_EXE_mpool"))
        .arg("list")
        .env_remove("MPOOL_RUNDIR")
        .env_remove("XDG_RUNTIME_DIR")
        .env("TMPDIR", &tmp)
        .env("MPOOL_CONFIG", tmp.join("devices"))
        .current_dir(sb.dir.path());
    let probe = Command::new(&setpriv)
        .args([
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".into(),
        ])
        .arg(env!("CARGO_BIN_EXE_mpool"))
        .arg("--version")
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: uid {NOBODY} cannot run the mpool binary");
        return;
    }
    let o = output(&mut c);
    assert!(!o.status.success(), "{}", o.all());
    assert!(
        o.stderr.contains(&format!(
            "run directory {} is owned by uid 1001, not you ({NOBODY})",
            planted.display()
        )),
        "{}",
        o.all()
    );
    assert!(o.stderr.contains("MPOOL_RUNDIR"), "{}", o.all());
}
