//! The JSON outputs (create, list, scan, get) parse and carry the fields
//! scripts rely on, with the right types.

use crate::common;
use common::*;

#[test]
fn json_outputs() {
    let sb = Sandbox::new();
    // Empty states.
    assert_eq!(sb.json(&["list", "--json"]), serde_json::json!([]));
    let v = sb.json(&["scan", "--json"]);
    assert_eq!(v["activated"], serde_json::json!([]));
    assert!(v["report"]["examined"].is_u64());
    assert!(v["report"]["unreadable"].is_array());

    let v = sb.json(&[
        "create",
        "js",
        &sb.p("c.img"),
        "--size",
        "64MiB",
        "--mblock-size",
        "1MiB",
        "--staging",
        &sb.p("s.img"),
        "--staging-size",
        "16MiB",
        "--label",
        "j",
        "--json",
    ]);
    assert_eq!(v["name"], "js");
    assert_eq!(v["label"], "j");
    assert_eq!(v["generation"], 1);
    assert_eq!(v["format_version"], 3, "new pools are format version 3");
    let uuid = v["uuid"].as_str().unwrap().to_string();
    assert_eq!(uuid.len(), 36);
    let created = v.clone();
    let devs = v["devices"].as_array().unwrap();
    assert_eq!(devs.len(), 2);
    for d in devs {
        assert_eq!(d["kind"], "file");
        assert!(d["sector"].as_u64().unwrap() >= 512);
        assert!(d["engine"].is_string());
        assert!(d["direct"].is_boolean());
        assert_eq!(d["uuid"].as_str().unwrap().len(), 36);
    }

    // list: entries with props; classes with numeric space fields.
    let v = sb.json(&["list", "--json"]);
    let e = &v[0];
    assert_eq!(e["uuid"], uuid.as_str());
    assert!(e["error"].is_null(), "{e}");
    assert_eq!(e["state"], "active", "{e}");
    let p = &e;
    for k in [
        "uid",
        "gid",
        "spare_capacity",
        "spare_staging",
        "generation",
        "format_version",
        "ctime",
    ] {
        assert!(p[k].is_u64(), "{k}: {p}");
    }
    assert!(p["mode"].is_string());
    for c in p["classes"].as_array().unwrap() {
        for k in ["mblock_size", "size", "zones", "used", "spare", "free"] {
            assert!(c[k].is_u64(), "{k}: {c}");
        }
    }
    // list NAME --json / -v --json.
    assert_eq!(sb.json(&["list", "js", "--json"])[0]["name"], "js");
    assert_eq!(sb.json(&["list", &uuid, "--json", "-v"])[0]["name"], "js");

    // get: numbers are numbers, mode and names are strings.
    let g = sb.props("js");
    assert!(g["size"].is_u64() && g["free"].is_u64() && g["used"].is_u64());
    assert_eq!(g["mode"], "0660");
    assert_eq!(g["uuid"], uuid.as_str());
    let sum: u64 = p["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["free"].as_u64().unwrap())
        .sum();
    assert_eq!(g["free"].as_u64().unwrap(), sum);
    // A numeric-looking label stays a string.
    sb.ok(&["set", "js", "label=12345"]);
    assert_eq!(sb.json(&["get", "js", "label", "--json"])["label"], "12345");
    let g = sb.json(&["get", "js", "label", "mode", "--json"]);
    assert_eq!(g.as_object().unwrap().len(), 2);
    // So does a numeric pool name; an absent class is null.
    sb.create_small("2024", "n.img");
    let g = sb.json(&[
        "get",
        "2024",
        "name",
        "mblock_size_staging",
        "uid",
        "--json",
    ]);
    assert_eq!(g["name"], "2024");
    assert_eq!(g["mblock_size_staging"], serde_json::Value::Null);
    assert!(g["uid"].is_u64());
    sb.ok(&["destroy", "2024"]);

    // One schema per concept: devices and classes are the same arrays in
    // list, get and status; mblock list and mlog list entries have the
    // same keys (mlog list adds `root`); check names its pool.
    let classes_key = "classes".to_string();
    // (Without the host filesystem's figures, which other tests change.)
    let steady = |mut v: serde_json::Value| {
        for d in v["devices"].as_array_mut().unwrap() {
            for k in ["allocated", "fs_free", "sparse_shortfall"] {
                d.as_object_mut().unwrap().remove(k);
            }
        }
        v
    };
    let l = &steady(sb.json(&["list", "js", "--json"])[0].clone());
    let g = steady(sb.props("js"));
    assert_eq!(l["devices"], g["devices"]);
    assert!(
        g["devices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["path"].as_str().unwrap().starts_with('/')),
        "absolute paths: {g}"
    );
    for k in g.as_object().unwrap().keys() {
        assert_eq!(l[k], g[k], "{k}: list and get agree");
    }
    let mut lk: Vec<&String> = l.as_object().unwrap().keys().collect();
    lk.retain(|k| !["state", "error", "classes"].contains(&k.as_str()));
    lk.sort();
    let mut gk: Vec<&String> = g.as_object().unwrap().keys().collect();
    gk.sort();
    assert_eq!(
        lk, gk,
        "list entries are get's properties plus state, error, classes"
    );
    let mut ck: Vec<&String> = created.as_object().unwrap().keys().collect();
    ck.sort();
    let mut gk2: Vec<&String> = g.as_object().unwrap().keys().collect();
    gk2.push(&classes_key);
    gk2.sort();
    assert_eq!(ck, gk2, "create --json is get --json (with classes)");
    let st = &sb.json(&["status", "js", "--json"])[0];
    assert_eq!(st["classes"], l["classes"]);
    let f = sb.path("x.bin");
    std::fs::write(&f, b"abc").unwrap();
    sb.ok(&["mblock", "write", "js", f.to_str().unwrap()]);
    let mb = sb.json(&["mblock", "list", "js", "--json"]);
    let ml = sb.json(&["mlog", "list", "js", "--json"]);
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let mut mk = keys(&mb[0]);
    mk.push("root".into());
    mk.sort();
    assert_eq!(mk, keys(&ml[0]));
    let crc = mb[0]["crc32c"].as_str().unwrap();
    assert!(
        crc.len() == 8
            && crc
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{crc}"
    );
    assert!(ml[0]["crc32c"].is_null());
    let c = sb.json(&["check", "js", "--json"]);
    assert_eq!(
        (c["pool"].as_str(), c["uuid"].as_str()),
        (Some("js"), Some(uuid.as_str()))
    );

    // scan: devices with class, path, generation, health.
    sb.ok(&["deactivate", "js"]);
    let v = sb.json(&["scan", "--json"]);
    let pool = v["report"]["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["uuid"] == uuid.as_str())
        .unwrap()
        .clone();
    assert_eq!(pool["active"], false);
    for d in pool["devices"].as_array().unwrap() {
        assert!(d["class"].is_string() && d["path"].is_string());
        assert_eq!(d["generation"], 2);
        assert_eq!(d["health"], "ok");
    }
    // unreadable named paths are reported as [path, why].
    let o = sb.run(&["scan", &sb.p("nope.img"), "--json"]);
    assert!(!o.status.success());
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let u = &v["report"]["unreadable"][0];
    assert_eq!(u[0], sb.p("nope.img").as_str());
    assert!(u[1].as_str().unwrap().contains("no such file"), "{v}");
}
