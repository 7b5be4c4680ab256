//! `mpool status`, and the output options of list-like commands (`-H`,
//! `-o`, `-p`).

use crate::common;
use common::*;

#[test]
fn status_shows_state_health_devices_objects_and_the_last_check() {
    let sb = Sandbox::new();
    sb.create_with_staging("st", "cap.img", "stg.img");
    let f = sb.path("data.bin");
    std::fs::write(&f, vec![7u8; 5000]).unwrap();
    sb.ok(&["mblock", "write", "st", f.to_str().unwrap()]);

    let v = sb.json(&["status", "st", "--json"]);
    let s = &v[0];
    assert_eq!(s["name"], "st", "{v}");
    assert_eq!(s["state"], "active", "{v}");
    assert_eq!(s["health"], "ok", "{v}");
    assert!(s["action"].is_null(), "{v}");
    assert!(s["holder_pid"].is_null(), "{v}");
    assert_eq!(s["figures_from"], "metadata", "{v}");
    assert_eq!(s["objects"]["mblocks"], 1, "{v}");
    assert_eq!(s["objects"]["mdcs"], 1, "the root MDC: {v}");
    assert!(s["last_check"].is_null(), "{v}");
    let devs = s["devices"].as_array().unwrap();
    assert_eq!(devs.len(), 2, "{v}");
    assert!(devs.iter().all(|d| d["state"] == "ok"), "{v}");
    assert!(devs
        .iter()
        .any(|d| d["path"] == sb.p("cap.img") && d["class"] == "capacity"));
    assert_eq!(s["classes"].as_array().unwrap().len(), 2, "{v}");

    // The last check is remembered, with its result.
    sb.ok(&["check", "st"]);
    let o = sb.ok(&["status", "st"]);
    for needle in [
        "pool: st",
        "health: ok",
        "active (not open)",
        "check: ",
        "0 problem(s)",
        "1 mblock(s)",
    ] {
        assert!(o.stdout.contains(needle), "{needle:?}:\n{}", o.all());
    }
    assert!(o.stdout.contains(&sb.p("stg.img")), "{}", o.all());
    let v = sb.json(&["status", "--json"]);
    assert_eq!(v[0]["last_check"]["problems"], 0, "{v}");
    assert_eq!(v[0]["last_check"]["mblocks"], 1, "{v}");

    // An unknown pool: named, exit 1.
    sb.fail_with(&["status", "nope"], &["no active pool 'nope'"]);
}

#[test]
fn status_tells_what_to_do_about_a_damaged_superblock_copy_and_missing_devices() {
    let sb = Sandbox::new();
    sb.create_with_staging("dm", "cap.img", "stg.img");
    // Copy 1 of the capacity device's superblock (at 32 KiB): damaged.
    flip(&sb, "cap.img", 32768 + 100);
    let o = sb.run(&["status", "dm"]);
    assert_eq!(o.status.code(), Some(1), "{}", o.all());
    assert!(o.stdout.contains("degraded"), "{}", o.all());
    assert!(o.stdout.contains("mpool check dm --repair"), "{}", o.all());
    sb.ok(&["check", "dm", "--repair"]);
    let v = sb.json(&["status", "dm", "--json"]);
    assert_eq!(v[0]["health"], "ok", "{v}");

    // A member file gone: unavailable, the missing device named, a way out.
    std::fs::remove_file(sb.path("stg.img")).unwrap();
    let o = sb.run(&["status", "dm", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", o.all());
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v[0]["state"], "unavailable", "{v}");
    assert!(
        v[0]["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["state"].as_str().unwrap().starts_with("missing")),
        "{v}"
    );
    assert!(
        v[0]["action"]
            .as_str()
            .unwrap()
            .contains("mpool destroy dm"),
        "{v}"
    );
}

#[test]
fn list_takes_scripted_mode_fields_and_exact_numbers() {
    let sb = Sandbox::new();
    sb.create_small("lo", "cap.img");
    let o = sb.ok(&["list", "-H", "-p", "-o", "name,size,objects,format_version"]);
    let fields: Vec<&str> = o.stdout.trim().split('\t').collect();
    assert_eq!(fields.len(), 4, "{}", o.all());
    assert_eq!(fields[0], "lo");
    let size: u64 = fields[1].parse().expect("-p prints bytes");
    assert_eq!(size, 64 << 20);
    assert_eq!(fields[2], "1", "the root MDC");
    assert_eq!(fields[3], "3");
    // Without -p: units; with headers.
    let o = sb.ok(&["list", "-o", "name,size"]);
    assert!(
        o.stdout.contains("NAME") && o.stdout.contains("64.0 MiB"),
        "{}",
        o.all()
    );
    // Unknown fields are refused with the list of fields.
    sb.fail_with(
        &["list", "-o", "name,bogus"],
        &["unknown field 'bogus'", "name,uuid,size"],
    );

    let f = sb.path("d.bin");
    std::fs::write(&f, vec![1u8; 3000]).unwrap();
    let id = sb
        .ok(&["mblock", "write", "lo", f.to_str().unwrap()])
        .stdout
        .trim()
        .to_string();
    let o = sb.ok(&[
        "mblock",
        "list",
        "lo",
        "-H",
        "-p",
        "-o",
        "id,length,capacity",
    ]);
    assert_eq!(
        o.stdout.trim(),
        // 1 MiB less one 4 KiB sector for the table of block checksums.
        format!("{id}\t3000\t1044480"),
        "{}",
        o.all()
    );
    let o = sb.ok(&["mlog", "list", "lo", "-H", "-o", "type,root"]);
    assert_eq!(o.stdout.trim(), "mdc\tyes", "{}", o.all());
}

#[test]
fn status_counts_the_errors_readers_met_since_activation() {
    let sb = Sandbox::new();
    sb.create_small("er", "cap.img");
    let f = sb.path("d.bin");
    std::fs::write(&f, vec![3u8; 9000]).unwrap();
    let id = sb
        .ok(&["mblock", "write", "er", f.to_str().unwrap()])
        .stdout
        .trim()
        .to_string();
    let v = sb.json(&["status", "er", "--json"]);
    assert_eq!(v[0]["errors"]["checksum"], 0, "{v}");
    let zone = sb.json(&["mblock", "stat", "er", &id, "--json"])["zone"]
        .as_u64()
        .unwrap();
    flip(&sb, "cap.img", zone * (1 << 20) + 500);
    // Unhealthy from here on: status exits 1, and still prints its JSON.
    let status = || -> serde_json::Value {
        let o = sb.run(&["status", "er", "--json"]);
        assert_eq!(o.status.code(), Some(1), "{}", o.all());
        serde_json::from_str(&o.stdout).unwrap()
    };
    sb.fail_with(&["mblock", "read", "er", &id], &["checksum"]);
    sb.fail_with(&["mblock", "read", "er", &id], &["checksum"]);
    let v = status();
    assert_eq!(v[0]["errors"]["checksum"], 2, "{v}");
    assert_eq!(v[0]["errors"]["read"], 0, "{v}");
    let o = sb.run(&["status", "er"]);
    assert!(
        o.stdout.contains("2 checksum (since activation)"),
        "{}",
        o.all()
    );
    // A new activation starts the counts again.
    sb.ok(&["deactivate", "er"]);
    sb.ok(&["activate", "er"]);
    let v = status();
    assert_eq!(v[0]["errors"]["checksum"], 0, "{v}");
    // Destroyed: none of its records stay in the run directory.
    let uuid = v[0]["uuid"].as_str().unwrap().to_string();
    sb.ok(&["destroy", "er", "--yes"]);
    let left: Vec<String> = std::fs::read_dir(sb.rundir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&uuid))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
