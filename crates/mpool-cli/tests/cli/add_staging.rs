//! add a staging class to a capacity-only pool; refusals of add.

use crate::common;
use common::*;

#[test]
fn add_staging_class() {
    let sb = Sandbox::new();
    sb.create_small("grow", "cap.img");
    assert_eq!(
        sb.props("grow")["mblock_size_staging"],
        serde_json::Value::Null
    );
    sb.ok(&["set", "grow", "mode=0640", "uid=55"]);

    let o = sb.ok(&[
        "add",
        "grow",
        &sb.p("stg.img"),
        "--class",
        "staging",
        "--size",
        "16MiB",
        "--mblock-size",
        "256KiB",
    ]);
    assert!(o.stdout.contains("added staging class"), "{}", o.all());
    let p = sb.props("grow");
    assert_eq!(p["mblock_size_staging"], 256u64 << 10);
    assert_eq!(p["size"], 80u64 << 20);
    assert_eq!(p["health"], "ok");
    assert!(
        p["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["class"] == "staging" && d["path"] == sb.p("stg.img").as_str()),
        "{p}"
    );
    // The pool's ownership applies to the new device.
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(sb.path("stg.img")).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (55, 0o640));
    assert!(sb.known_paths().contains(&sb.p("stg.img")));
    let v = sb.json(&["list", "--json"]);
    let classes = v[0]["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 2);
    assert_eq!(classes[1]["class"], "staging");

    // The pool is whole after deactivate + scan, and opens by name.
    sb.ok(&["deactivate", "grow"]);
    let v = sb.json(&["scan", "--activate", "--json"]);
    assert_eq!(v["activated"], serde_json::json!(["grow"]), "{v}");
    assert_eq!(sb.props("grow")["mblock_size_staging"], 256u64 << 10);

    // A second staging class: refused, the new file is not left behind.
    sb.fail_with(
        &[
            "add",
            "grow",
            &sb.p("s2.img"),
            "--class",
            "staging",
            "--size",
            "16MiB",
        ],
        &["already has a staging"],
    );
    assert!(!sb.path("s2.img").exists());
    sb.fail_with(
        &[
            "add",
            "grow",
            &sb.p("s2.img"),
            "--class",
            "capacity",
            "--size",
            "16MiB",
        ],
        &["already has a capacity"],
    );
    assert!(!sb.path("s2.img").exists());
}

#[test]
fn add_refusals_change_nothing() {
    let sb = Sandbox::new();
    sb.create_small("host", "cap.img");
    sb.create_small("neighbour", "n.img");
    let host = fingerprint(sb.path("cap.img"));
    let neigh = fingerprint(sb.path("n.img"));
    let gen = sb.props("host")["generation"].clone();

    // Unknown class (clap) — no file created.
    sb.fail_with(
        &[
            "add",
            "host",
            &sb.p("x.img"),
            "--class",
            "foo",
            "--size",
            "16MiB",
        ],
        &["unknown media class 'foo'"],
    );
    assert!(!sb.path("x.img").exists());
    // A device of another active pool.
    sb.fail_with(
        &["add", "host", &sb.p("n.img"), "--class", "staging"],
        &["n.img", "belongs to pool 'neighbour'"],
    );
    sb.fail_with(
        &[
            "add",
            "host",
            &sb.p("n.img"),
            "--class",
            "staging",
            "--force",
        ],
        &["belongs to pool 'neighbour'"],
    );
    assert_unchanged(sb.path("n.img"), &neigh, "add of an active pool's device");
    // ... and of an inactive one, without --force.
    sb.ok(&["deactivate", "neighbour"]);
    sb.fail_with(
        &["add", "host", &sb.p("n.img"), "--class", "staging"],
        &["belongs to pool 'neighbour'"],
    );
    assert_unchanged(sb.path("n.img"), &neigh, "add of an inactive pool's device");
    // The pool's own device.
    sb.fail_with(
        &["add", "host", &sb.p("cap.img"), "--class", "staging"],
        &["already a device of pool 'host'"],
    );
    // Missing device, too-small device, bad sizes, bad mblock size.
    sb.fail_with(
        &["add", "host", &sb.p("missing.img"), "--class", "staging"],
        &["missing.img"],
    );
    sb.fail_with(
        &[
            "add",
            "host",
            &sb.p("tiny.img"),
            "--class",
            "staging",
            "--size",
            "1MiB",
        ],
        &["tiny.img is 1048576 bytes"],
    );
    assert!(!sb.path("tiny.img").exists());
    sb.fail_with(
        &[
            "add",
            "host",
            &sb.p("y.img"),
            "--class",
            "staging",
            "--size",
            "12XB",
        ],
        &["bad size '12XB'"],
    );
    sb.fail_with(
        &[
            "add",
            "host",
            &sb.p("y.img"),
            "--class",
            "staging",
            "--size",
            "16MiB",
            "--mblock-size",
            "3MiB",
        ],
        &["power of two"],
    );
    assert!(!sb.path("y.img").exists());
    // A filesystem signature without --force.
    sparse(sb.path("fs.img"), 16 << 20);
    poke(sb.path("fs.img"), 0x438, &[0x53, 0xEF]);
    let fs = fingerprint(sb.path("fs.img"));
    sb.fail_with(
        &["add", "host", &sb.p("fs.img"), "--class", "staging"],
        &["ext2/3/4", "--force"],
    );
    assert_unchanged(sb.path("fs.img"), &fs, "add of an ext4 device");
    sb.fail_with(
        &["add", "nosuch", &sb.p("fs.img"), "--class", "staging"],
        &["no pool 'nosuch'"],
    );

    assert_unchanged(sb.path("cap.img"), &host, "refused adds");
    let p = sb.props("host");
    assert_eq!(p["generation"], gen);
    assert_eq!(p["mblock_size_staging"], serde_json::Value::Null);
    // --force takes the filesystem device.
    sb.ok(&[
        "add",
        "host",
        &sb.p("fs.img"),
        "--class",
        "staging",
        "--force",
    ]);
    assert_eq!(sb.props("host")["mblock_size_staging"], 1u64 << 20);
}
