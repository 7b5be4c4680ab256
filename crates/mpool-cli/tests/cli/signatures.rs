//! Filesystem and LVM signatures: refused without --force (device
//! unchanged), taken with --force, and no foreign signature survives.

use crate::common;
use common::*;

fn scan_sees_no_pool(sb: &Sandbox, path: &str) {
    let v = sb.json(&["scan", path, "--json"]);
    let pools = v["report"]["pools"].as_array().unwrap();
    assert!(
        !pools.iter().any(|p| p["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["path"] == path)),
        "{v}"
    );
}

fn refuse_then_force(sb: &Sandbox, file: &str, what: &str, extra: &[&str]) {
    let path = sb.p(file);
    let before = fingerprint(&path);
    let mut args = vec!["create", "sig", &path, "--mblock-size", "1MiB"];
    args.extend_from_slice(extra);
    sb.fail_with(&args, &[&path, what, "without --force"]);
    assert_unchanged(&path, &before, &format!("create on {what}"));
    assert!(sb.active_names().is_empty());
    scan_sees_no_pool(sb, &path);

    args.push("--force");
    sb.ok(&args);
    assert_eq!(sb.props("sig")["health"], "ok");
    // After destroy the device is blank: no pool and no old signature.
    sb.ok(&["destroy", "sig"]);
    sb.ok(&["create", "sig", &path, "--mblock-size", "1MiB"]);
    sb.ok(&["destroy", "sig"]);
}

#[test]
fn ext4_signature() {
    let sb = Sandbox::new();
    let path = sb.path("ext.img");
    sparse(&path, 64 << 20);
    let made = which("mkfs.ext4").is_some_and(|m| {
        std::process::Command::new(m)
            .args(["-q", "-F"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success())
    });
    if !made {
        eprintln!("note: mkfs.ext4 unavailable; writing the ext magic by hand");
        poke(&path, 0x438, &[0x53, 0xEF]);
    }
    refuse_then_force(&sb, "ext.img", "ext2/3/4 filesystem", &[]);
    // --discard with --force also works.
    sparse(sb.path("ext2.img"), 64 << 20);
    poke(sb.path("ext2.img"), 0x438, &[0x53, 0xEF]);
    refuse_then_force(&sb, "ext2.img", "ext2/3/4", &["--discard"]);
}

#[test]
fn lvm_signature() {
    let sb = Sandbox::new();
    let path = sb.path("pv.img");
    sparse(&path, 64 << 20);
    poke(&path, 512, b"LABELONE");
    poke(&path, 536, b"LVM2 001");
    refuse_then_force(&sb, "pv.img", "LVM physical volume", &[]);
}

#[test]
fn btrfs_signature_is_wiped_by_a_forced_create() {
    // The btrfs superblock lives at 64 KiB, outside the mpool superblock
    // copies: a forced create must still erase it.
    let sb = Sandbox::new();
    let path = sb.path("btrfs.img");
    sparse(&path, 64 << 20);
    poke(&path, 65536 + 0x40, b"_BHRfS_M");
    refuse_then_force(&sb, "btrfs.img", "Btrfs filesystem", &[]);
}

#[test]
fn staging_device_signature() {
    let sb = Sandbox::new();
    sparse(sb.path("stg.img"), 16 << 20);
    poke(sb.path("stg.img"), 0x438, &[0x53, 0xEF]);
    let stg = fingerprint(sb.path("stg.img"));
    sparse(sb.path("cap.img"), 64 << 20);
    let cap = fingerprint(sb.path("cap.img"));
    let args = [
        "create",
        "sig",
        &sb.p("cap.img"),
        "--mblock-size",
        "1MiB",
        "--staging",
        &sb.p("stg.img"),
    ];
    sb.fail_with(&args, &["stg.img holds an ext2/3/4 filesystem"]);
    assert_unchanged(
        sb.path("cap.img"),
        &cap,
        "create with an ext4 staging device",
    );
    assert_unchanged(
        sb.path("stg.img"),
        &stg,
        "create with an ext4 staging device",
    );
    let mut forced = args.to_vec();
    forced.push("--force");
    sb.ok(&forced);
    assert_eq!(sb.props("sig")["mblocksize_staging"], 1u64 << 20);
}
