//! create → list (text, JSON, -v) → destroy, and the device is free again.

use crate::common;
use common::*;

#[test]
fn create_list_destroy() {
    let sb = Sandbox::new();
    let o = sb.ok(&[
        "create",
        "tank",
        &sb.p("cap.img"),
        "--size",
        "64MiB",
        "--mblock-size",
        "1MiB",
        "--staging",
        &sb.p("stg.img"),
        "--staging-size",
        "16MiB",
        "--staging-mblock-size",
        "64KiB",
        "--label",
        "my label",
    ]);
    assert!(o.stdout.contains("created pool 'tank'"), "{}", o.all());
    assert_eq!(
        std::fs::metadata(sb.path("cap.img")).unwrap().len(),
        64 << 20
    );
    assert_eq!(
        std::fs::metadata(sb.path("stg.img")).unwrap().len(),
        16 << 20
    );
    // Activation recorded the pool; the files are remembered for scanning.
    assert!(sb.rundir().join("tank.pool").exists());
    let known = sb.known_paths();
    assert!(known.contains(&sb.p("cap.img")), "{known:?}");
    assert!(known.contains(&sb.p("stg.img")), "{known:?}");

    // Plain list: one row with size, used, free, classes, label, health.
    let o = sb.ok(&["list"]);
    let header = o.stdout.lines().next().unwrap();
    for col in ["NAME", "SIZE", "USED", "FREE", "CLASSES", "LABEL", "HEALTH"] {
        assert!(header.contains(col), "{}", o.all());
    }
    let row = o.stdout.lines().find(|l| l.contains("tank")).expect("row");
    assert!(row.contains("80.0 MiB"), "{row}");
    assert!(row.contains("capacity,staging"), "{row}");
    assert!(row.contains("my label"), "{row}");
    assert!(row.trim_end().ends_with("ok"), "{row}");

    // JSON: per-class numbers add up.
    let v = sb.json(&["list", "--json"]);
    let e = &v[0];
    assert_eq!(e["name"], "tank");
    let p = &e;
    assert_eq!(p["label"], "my label");
    assert_eq!(p["health"], "ok");
    let classes = p["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 2);
    let cap = &classes[0];
    assert_eq!(cap["class"], "capacity");
    assert_eq!(cap["size"], 64u64 << 20);
    assert_eq!(cap["mblock_size"], 1u64 << 20);
    let stg = &classes[1];
    assert_eq!(stg["class"], "staging");
    assert_eq!(stg["size"], 16u64 << 20);
    assert_eq!(stg["mblock_size"], 64u64 << 10);
    for c in classes {
        let (size, used, free) = (
            c["size"].as_u64().unwrap(),
            c["used"].as_u64().unwrap(),
            c["free"].as_u64().unwrap(),
        );
        assert!(used + free <= size, "{c}");
        assert!(free > 0, "{c}");
    }

    // -v adds the uuid and one line per member device.
    let o = sb.ok(&["list", "-v"]);
    assert!(
        o.stdout.contains(e["uuid"].as_str().unwrap()),
        "{}",
        o.all()
    );
    assert!(o.stdout.contains(&sb.p("cap.img")), "{}", o.all());
    assert!(o.stdout.contains(&sb.p("stg.img")), "{}", o.all());

    // list NAME; list of an unknown name fails.
    sb.ok(&["list", "tank"]);
    sb.fail_with(&["list", "tank", "nosuch"], &["no active pool 'nosuch'"]);

    // destroy: gone from the run dir, the device list, and from the devices.
    let o = sb.ok(&["destroy", "tank"]);
    assert!(o.stdout.contains("destroyed pool 'tank'"), "{}", o.all());
    assert!(sb.active_names().is_empty());
    assert!(sb.known_paths().is_empty(), "{:?}", sb.known_paths());
    let o = sb.ok(&["list"]);
    assert!(o.stdout.contains("no active pools"), "{}", o.all());
    let v = sb.json(&["scan", &sb.p("cap.img"), &sb.p("stg.img"), "--json"]);
    assert!(
        !v["report"]["pools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "tank"),
        "{v}"
    );
    sb.fail_with(&["destroy", "tank"], &["no pool 'tank'"]);

    // The devices take a new pool without --force.
    sb.create_with_staging("tank2", "cap.img", "stg.img");
    sb.ok(&["destroy", "tank2"]);
}

#[test]
fn create_on_existing_file_and_mblock_default() {
    let sb = Sandbox::new();
    sparse(sb.path("f.img"), 320 << 20);
    // No --mblock-size: 32 MiB mblocks, 320 MiB is 10 of them (>= 8).
    sb.ok(&["create", "deflt", &sb.p("f.img")]);
    let p = sb.props("deflt");
    assert_eq!(p["mblock_size_capacity"], 32u64 << 20);
    assert_eq!(p["mblock_size_staging"], serde_json::Value::Null);
    assert_eq!(p["size"], 320u64 << 20);
    // Defaults: mode 0660, owner is us.
    assert_eq!(p["mode"], "0660");
    assert_eq!(p["uid"], rustix::process::geteuid().as_raw());
    sb.ok(&["destroy", "deflt"]);
}
