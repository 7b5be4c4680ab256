//! get (all, some, JSON) and set of every settable property; ownership is
//! applied to every member device; bad values change nothing.

use crate::common;
use common::*;
use std::os::unix::fs::MetadataExt;

fn owner(path: &std::path::Path) -> (u32, u32, u32) {
    let m = std::fs::metadata(path).unwrap();
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

#[test]
fn get_and_set_properties() {
    let sb = Sandbox::new();
    sb.create_with_staging("props", "cap.img", "stg.img");

    // get: every property, as a table and as JSON.
    let o = sb.ok(&["get", "props"]);
    for k in mpool::PROPERTIES {
        assert!(
            o.stdout.lines().any(|l| l.trim_start().starts_with(k)),
            "{k} missing:\n{}",
            o.all()
        );
    }
    let p = sb.props("props");
    assert_eq!(p.as_object().unwrap().len(), mpool::PROPERTIES.len());
    assert_eq!(p["name"], "props");
    assert_eq!(p["generation"], 1);
    assert_eq!(p["mblock_size_capacity"], 1u64 << 20);
    assert_eq!(p["mblock_size_staging"], 1u64 << 20);
    assert_eq!(p["size"], 80u64 << 20);
    assert_eq!(p["mode"], "0660");
    assert_eq!(p["spare_capacity"], 0);
    let free0 = p["free"].as_u64().unwrap();
    // Selected properties, in the order asked.
    let o = sb.ok(&["get", "props", "label", "mode"]);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", o.all());
    assert!(lines[1].contains("label") && lines[2].contains("0660"));
    let v = sb.json(&["get", "props", "uuid", "size", "--json"]);
    assert_eq!(v.as_object().unwrap().len(), 2);
    assert!(v["size"].is_u64());

    // set: label and spare percentages.
    let o = sb.ok(&[
        "set",
        "props",
        "label=hello world",
        "spare_capacity=10",
        "spare_staging=50%",
    ]);
    assert!(o.stdout.contains("label=hello world"), "{}", o.all());
    let p = sb.props("props");
    assert_eq!(p["label"], "hello world");
    assert_eq!(p["spare_capacity"], 10);
    assert_eq!(p["spare_staging"], 50);
    assert_eq!(p["generation"], 2);
    assert!(p["free"].as_u64().unwrap() < free0);
    // Clearing the label.
    sb.ok(&["set", "props", "label="]);
    assert_eq!(sb.props("props")["label"], "");

    // Ownership: applied to both member files, by number and by name.
    sb.ok(&["set", "props", "uid=1234", "gid=4321", "mode=0640"]);
    for f in ["cap.img", "stg.img"] {
        assert_eq!(owner(&sb.path(f)), (1234, 4321, 0o640), "{f}");
    }
    let p = sb.props("props");
    assert_eq!(
        (p["uid"].as_u64(), p["gid"].as_u64()),
        (Some(1234), Some(4321))
    );
    assert_eq!(p["mode"], "0640");
    sb.ok(&["set", "props", "uid=root", "gid=0", "mode=600"]);
    for f in ["cap.img", "stg.img"] {
        assert_eq!(owner(&sb.path(f)), (0, 0, 0o600), "{f}");
    }
    assert_eq!(sb.props("props")["mode"], "0600");
    // Ownership given at create applies to both files too.
    sb.ok(&[
        "create",
        "owned",
        &sb.p("o1.img"),
        "--size",
        "64MiB",
        "--mblock-size",
        "1MiB",
        "--staging",
        &sb.p("o2.img"),
        "--staging-size",
        "16MiB",
        "--uid",
        "77",
        "--gid",
        "88",
        "--mode",
        "0604",
    ]);
    for f in ["o1.img", "o2.img"] {
        assert_eq!(owner(&sb.path(f)), (77, 88, 0o604), "{f}");
    }

    // Refusals: nothing changes on either device, the generation stays.
    let gen = sb.props("props")["generation"].clone();
    let cap = fingerprint(sb.path("cap.img"));
    let stg = fingerprint(sb.path("stg.img"));
    let cases: &[(&[&str], &str)] = &[
        (&["set", "props", "bogus=1"], "unknown property 'bogus'"),
        (
            &["set", "props", "label=ok", "bogus=1"],
            "unknown property 'bogus'",
        ),
        (&["set", "props", "name=x"], "read-only"),
        (&["set", "props", "size=1"], "read-only"),
        (&["set", "props", "label"], "not prop=value"),
        (&["set", "props", "mode=999"], "bad mode"),
        (&["set", "props", "mode=17777"], "bad mode"),
        (&["set", "props", "mode=abc"], "bad mode"),
        (&["set", "props", "uid=no-such-user-xyz"], "unknown user"),
        (&["set", "props", "uid=-1"], "unknown user"),
        (&["set", "props", "gid=no-such-group-xyz"], "unknown group"),
        (&["set", "props", "spare_capacity=100"], "percentage"),
        (&["set", "props", "spare_staging=-5"], "percentage"),
        (&["set", "props", "spare_staging=lots"], "percentage"),
        (
            &["set", "props", "label=ok", "spare_capacity=100"],
            "percentage",
        ),
        (&["get", "props", "bogus"], "unknown property 'bogus'"),
        (
            &["get", "props", "label", "bogus", "--json"],
            "unknown property 'bogus'",
        ),
        (&["get", "nosuch"], "no pool 'nosuch'"),
        (&["set", "nosuch", "label=x"], "no pool 'nosuch'"),
    ];
    for (args, msg) in cases {
        let o = sb.fail_with(args, &[msg]);
        assert!(o.stdout.is_empty(), "{args:?} printed: {}", o.all());
        assert_unchanged(sb.path("cap.img"), &cap, &format!("{args:?}"));
        assert_unchanged(sb.path("stg.img"), &stg, &format!("{args:?}"));
    }
    let long = "x".repeat(64);
    sb.fail(&["set", "props", &format!("label={long}")]);
    assert_unchanged(sb.path("cap.img"), &cap, "long label");
    let p = sb.props("props");
    assert_eq!(p["generation"], gen);
    assert_eq!(p["label"], "");
    assert_eq!(p["health"], "ok");
    // Settings survive deactivate/activate (they are on the devices).
    sb.ok(&["set", "props", "label=kept"]);
    sb.ok(&["deactivate", "props"]);
    sb.ok(&["activate", "props"]);
    assert_eq!(sb.props("props")["label"], "kept");
    assert_eq!(sb.props("props")["spare_staging"], 50);
}
