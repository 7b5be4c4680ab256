//! A pool on a real block device (a 128 MiB loop device): create, list,
//! deactivate, scan (found through /sys/class/block, not the file list),
//! activate, destroy, which gives the node back its owner and mode. Scans
//! look at this test's loop device only (`MPOOL_SCAN_DEVICES`). Needs root
//! and a loop device; skipped otherwise.

mod common;
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

#[test]
fn pool_on_a_loop_device() {
    if !is_root() {
        eprintln!("SKIPPED: needs root and a loop device");
        return;
    }
    let mut sb = Sandbox::new();
    sparse(sb.path("backing.img"), 128 << 20);
    let Some(lo) = attach(&sb.path("backing.img")) else {
        eprintln!("SKIPPED: needs root and a loop device (losetup failed)");
        return;
    };
    let dev = lo.dev.clone();
    // Scans look at this loop device and at no other block device.
    sb.scan_devices = dev.clone();
    // A name no other test uses, should the host have a pool of that name.
    let name = format!("loop-test-{}", std::process::id());

    // A node mode of the administrator's choosing, which `destroy` restores.
    std::fs::set_permissions(&dev, std::fs::Permissions::from_mode(0o600)).unwrap();
    let node = std::fs::metadata(&dev).unwrap();
    let node = (node.uid(), node.gid(), node.mode() & 0o7777);

    // Too small for 32 MiB mblocks: refused, device unchanged.
    let before = fingerprint(&dev);
    sb.fail_with(&["create", &name, &dev], &[&dev, "at least"]);
    sb.fail_with(&["create", &name, &dev, "--size", "64MiB"], &[]);
    assert_unchanged(&dev, &before, "refused create on the loop device");

    sb.ok(&[
        "create",
        &name,
        &dev,
        "--mblock-size",
        "1MiB",
        "--mode",
        "0640",
        "--label",
        "loopy",
    ]);
    assert_eq!(std::fs::metadata(&dev).unwrap().mode() & 0o7777, 0o640);
    // Block devices are found by scanning, not remembered in the file list.
    assert!(!sb.known_paths().contains(&dev), "{:?}", sb.known_paths());
    let v = sb.json(&["list", "--json", "-v"]);
    let p = &v[0];
    assert_eq!(p["name"], name.as_str());
    assert_eq!(p["label"], "loopy");
    assert_eq!(p["devices"][0]["kind"], "block");
    assert_eq!(p["devices"][0]["path"], dev.as_str());
    assert_eq!(p["classes"][0]["size"], 128u64 << 20);
    let o = sb.ok(&["list", "-v"]);
    assert!(o.stdout.contains(&dev), "{}", o.all());

    sb.ok(&["deactivate", &name]);
    assert!(sb.active_names().is_empty());
    let v = sb.json(&["scan", "--json"]);
    let hit = v["report"]["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name.as_str())
        .unwrap_or_else(|| panic!("scan did not find the pool on {dev}: {v}"))
        .clone();
    assert_eq!(hit["active"], false);
    assert_eq!(hit["devices"][0]["path"], dev.as_str());
    sb.ok(&["activate", &name]);
    assert_eq!(sb.props(&name)["label"], "loopy");

    // Deactivate, rename, scan --activate under the new name.
    sb.ok(&["deactivate", &name]);
    let renamed = format!("{name}-r");
    sb.ok(&["rename", &name, &renamed]);
    let v = sb.json(&["scan", "--activate", "--json"]);
    assert!(
        v["activated"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == renamed.as_str()),
        "{v}"
    );
    sb.ok(&["set", &renamed, "label=renamed"]);

    // A pool device cannot be taken by another create, even with --force.
    sparse(sb.path("other.img"), 64 << 20);
    let before = fingerprint(&dev);
    sb.fail_with(
        &[
            "create",
            "other",
            &sb.p("other.img"),
            "--mblock-size",
            "1MiB",
            "--staging",
            &dev,
            "--force",
        ],
        &["belongs to pool"],
    );
    assert_unchanged(&dev, &before, "create on an active pool's loop device");

    sb.ok(&["destroy", &renamed]);
    assert!(sb.active_names().is_empty());
    let m = std::fs::metadata(&dev).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777),
        node,
        "destroy did not restore the owner and mode of {dev}"
    );
    assert!(
        sb.known_paths().iter().all(|l| !l.contains(&dev)),
        "{:?}",
        sb.known_paths()
    );
    let v = sb.json(&["scan", "--json"]);
    assert!(
        !v["report"]["pools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == renamed.as_str()),
        "{v}"
    );
    drop(lo);
}

/// util-linux sees a pool member on a block device: `blkid -p` prints
/// TYPE="mpool" with the pool name and UUID, `wipefs` lists it; after
/// `destroy`, neither finds anything. `lsblk -f` is reported, not checked:
/// it reads udev's database, which containers often lack.
#[test]
fn blkid_sees_a_member_on_a_loop_device_until_destroy() {
    if !is_root() {
        eprintln!("SKIPPED: blkid_sees_a_member_on_a_loop_device_until_destroy needs root and a loop device");
        return;
    }
    if which("blkid").is_none() || which("wipefs").is_none() {
        eprintln!(
            "SKIPPED: blkid_sees_a_member_on_a_loop_device_until_destroy needs blkid and wipefs"
        );
        return;
    }
    let mut sb = Sandbox::new();
    sparse(sb.path("backing.img"), 128 << 20);
    let Some(lo) = attach(&sb.path("backing.img")) else {
        eprintln!("SKIPPED: blkid_sees_a_member_on_a_loop_device_until_destroy (losetup failed)");
        return;
    };
    let dev = lo.dev.clone();
    sb.scan_devices = dev.clone();
    let name = format!("blkid-loop-{}", std::process::id());
    sb.ok(&["create", &name, &dev, "--mblock-size", "1MiB"]);
    let uuid = sb.props(&name)["uuid"].as_str().unwrap().to_string();
    let (kv, code) = blkid_export(std::path::Path::new(&dev));
    let get = |k: &str| kv.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
    assert_eq!(code, Some(0), "{kv:?}");
    assert_eq!(get("TYPE").as_deref(), Some("mpool"), "{kv:?}");
    assert_eq!(get("LABEL").as_deref(), Some(name.as_str()), "{kv:?}");
    assert_eq!(get("UUID").as_deref(), Some(uuid.as_str()), "{kv:?}");
    let w = std::process::Command::new(which("wipefs").unwrap())
        .arg(&dev)
        .output()
        .unwrap();
    let w = String::from_utf8_lossy(&w.stdout).into_owned();
    assert!(
        w.lines().any(|l| l.contains("mpool") && l.contains(&uuid)),
        "wipefs {dev}:\n{w}"
    );
    if let Some(lsblk) = which("lsblk") {
        let o = std::process::Command::new(lsblk)
            .args(["-f", "-n", "-o", "FSTYPE,LABEL,UUID", &dev])
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if shown.is_empty() {
            eprintln!(
                "note: lsblk -f shows nothing for {dev} (it reads udev's database, absent here); \
                 not checked"
            );
        } else {
            assert!(
                shown.contains("mpool") && shown.contains(&uuid),
                "lsblk -f: {shown}"
            );
        }
    }
    sb.ok(&["destroy", &name, "--yes"]);
    let (kv, code) = blkid_export(std::path::Path::new(&dev));
    assert!(kv.is_empty(), "blkid -p after destroy: {kv:?}");
    assert_eq!(code, Some(2));
    drop(lo);
}
