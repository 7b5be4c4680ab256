//! deactivate → scan finds the pool → activate (by name, by UUID, or
//! `scan --activate`); a second pool with an active name is refused.

use crate::common;
use common::*;
use serde_json::Value;

fn find<'a>(scan: &'a Value, name: &str) -> Vec<&'a Value> {
    scan["report"]["pools"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == name)
        .collect()
}

#[test]
fn deactivate_scan_activate() {
    let sb = Sandbox::new();
    sb.create_with_staging("sa1", "cap.img", "stg.img");
    let uuid = sb.props("sa1")["uuid"].as_str().unwrap().to_string();

    let o = sb.ok(&["deactivate", "sa1"]);
    assert!(o.stdout.contains("deactivated pool 'sa1'"), "{}", o.all());
    assert!(!sb.rundir().join("sa1.pool").exists());
    assert!(sb.active_names().is_empty());
    sb.fail_with(&["get", "sa1"], &["no pool 'sa1'"]);
    sb.fail_with(&["deactivate", "sa1"], &["no pool 'sa1'"]);

    // Found through the remembered file list, without naming paths.
    let v = sb.json(&["scan", "--json"]);
    let hits = find(&v, "sa1");
    assert_eq!(hits.len(), 1, "{v}");
    let p = hits[0];
    assert_eq!(p["uuid"], uuid.as_str());
    assert_eq!(p["active"], false);
    assert_eq!(p["missing"].as_array().unwrap().len(), 0);
    let devs = p["devices"].as_array().unwrap();
    assert_eq!(devs.len(), 2);
    assert_eq!(devs[0]["class"], "capacity");
    assert_eq!(devs[0]["path"], sb.p("cap.img").as_str());
    assert_eq!(devs[1]["class"], "staging");
    assert_eq!(devs[1]["health"], "ok");
    let o = sb.ok(&["scan"]);
    let row = o.stdout.lines().find(|l| l.contains("sa1")).unwrap();
    assert!(row.contains("inactive") && row.contains("2/2"), "{row}");

    // activate by name.
    let o = sb.ok(&["activate", "sa1"]);
    assert!(o.stdout.contains(&uuid), "{}", o.all());
    assert_eq!(sb.active_names(), ["sa1"]);
    let v = sb.json(&["scan", "--json"]);
    assert_eq!(find(&v, "sa1")[0]["active"], true);
    // Activating an active pool is a no-op success.
    sb.ok(&["activate", "sa1"]);

    // deactivate by UUID, activate by UUID.
    sb.ok(&["deactivate", &uuid]);
    assert!(sb.active_names().is_empty());
    sb.ok(&["activate", &uuid.to_uppercase()]);
    assert_eq!(sb.active_names(), ["sa1"]);

    // scan --activate, with the device list gone: name the paths.
    sb.ok(&["deactivate", "sa1"]);
    std::fs::remove_file(sb.config()).unwrap();
    let v = sb.json(&["scan", "--json"]);
    assert!(find(&v, "sa1").is_empty(), "{v}");
    let v = sb.json(&[
        "scan",
        &sb.p("cap.img"),
        &sb.p("stg.img"),
        "--activate",
        "--json",
    ]);
    assert_eq!(v["activated"], serde_json::json!(["sa1"]), "{v}");
    assert_eq!(sb.active_names(), ["sa1"]);
    let p = sb.props("sa1");
    assert_eq!(p["generation"], 1);
    assert_eq!(p["health"], "ok");

    // Activation remembered the files: a plain scan finds them again.
    sb.ok(&["deactivate", "sa1"]);
    let v = sb.json(&["scan", "--json"]);
    assert_eq!(find(&v, "sa1").len(), 1, "{v}");

    // Only one of the two devices named: incomplete, not activated.
    std::fs::remove_file(sb.config()).unwrap();
    let v = sb.json(&["scan", &sb.p("cap.img"), "--activate", "--json"]);
    let p = find(&v, "sa1")[0];
    assert_eq!(p["missing"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["activated"], serde_json::json!([]));
    let o = sb.ok(&["scan", &sb.p("cap.img")]);
    assert!(o.stdout.contains("incomplete"), "{}", o.all());
    assert!(sb.active_names().is_empty());

    // A named path that does not exist makes scan fail, after reporting.
    let o = sb.fail(&["scan", &sb.p("nope.img")]);
    assert!(o.stderr.contains("nope.img"), "{}", o.all());
}

#[test]
fn second_pool_with_an_active_name_is_refused() {
    let sb = Sandbox::new();
    sb.create_small("dup", "a.img");
    let ua = sb.props("dup")["uuid"].as_str().unwrap().to_string();
    // create refuses the active name and leaves the device alone.
    sparse(sb.path("b.img"), 64 << 20);
    let before = fingerprint(sb.path("b.img"));
    sb.fail_with(
        &["create", "dup", &sb.p("b.img"), "--mblock-size", "1MiB"],
        &["'dup' already exists"],
    );
    assert_unchanged(sb.path("b.img"), &before, "create with an active name");

    // Two inactive pools with one name: each activates alone, never both.
    sb.ok(&["deactivate", "dup"]);
    sb.ok(&["create", "dup", &sb.p("b.img"), "--mblock-size", "1MiB"]);
    let ub = sb.props("dup")["uuid"].as_str().unwrap().to_string();
    assert_ne!(ua, ub);
    let before = fingerprint(sb.path("a.img"));
    sb.fail_with(&["activate", &ua], &["'dup' already exists"]);
    assert_unchanged(sb.path("a.img"), &before, "activate with an active name");
    assert_eq!(sb.active_names(), ["dup"]);
    assert_eq!(sb.props("dup")["uuid"], ub.as_str());

    // By name it is ambiguous once both are inactive.
    sb.ok(&["deactivate", "dup"]);
    sb.fail_with(&["activate", "dup"], &["2 pools are named 'dup'"]);
    // scan --activate activates one and reports the other; exit non-zero.
    let o = sb.run(&["scan", "--activate"]);
    assert!(!o.status.success(), "{}", o.all());
    assert!(o.stdout.contains("activated pool 'dup'"), "{}", o.all());
    assert!(o.stderr.contains("could not activate dup"), "{}", o.all());
    assert_eq!(sb.active_names(), ["dup"]);
}
