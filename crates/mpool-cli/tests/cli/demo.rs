//! `mpool demo` keeps everything in its directory (its own run directory and
//! device list, whatever the environment says), removes it all at the end
//! unless `--keep`, prints dates rather than seconds, and reopens a pool kept
//! by an earlier run (also after the pool was deactivated).

use crate::common;
use common::*;
use std::path::Path;
use std::process::Command;

/// Every file and directory under `dir`, or none when it does not exist.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            out.push(e.path().display().to_string());
            out.extend(tree(&e.path()));
        }
    }
    out
}

/// `mpool` as the sandbox runs it, with a sandboxed HOME and XDG_RUNTIME_DIR
/// too, so anything written outside the demo's directory shows.
fn demo_cmd(sb: &Sandbox) -> Command {
    std::fs::create_dir_all(sb.path("home")).unwrap();
    std::fs::create_dir_all(sb.path("xdg")).unwrap();
    let mut c = sb.cmd();
    c.env("HOME", sb.path("home"))
        .env("XDG_RUNTIME_DIR", sb.path("xdg"))
        .env_remove("XDG_CONFIG_HOME");
    c
}

fn demo(sb: &Sandbox, args: &[&str]) -> Out {
    let o = output(demo_cmd(sb).arg("demo").args(args));
    assert!(
        o.status.success(),
        "mpool demo {args:?} failed:\n{}",
        o.all()
    );
    o
}

/// Nothing under the sandbox's run directory, device list, HOME or
/// XDG_RUNTIME_DIR.
fn nothing_outside(sb: &Sandbox) {
    assert!(!sb.rundir().exists(), "{:?}", tree(&sb.rundir()));
    assert!(!sb.config().exists());
    assert_eq!(tree(&sb.path("home")), Vec::<String>::new());
    assert_eq!(tree(&sb.path("xdg")), Vec::<String>::new());
}

/// `YYYY-MM-DD HH:MM:SS` somewhere in `s`.
fn has_date(s: &str) -> bool {
    let shape = b"dddd-dd-dd dd:dd:dd";
    s.as_bytes().windows(shape.len()).any(|w| {
        w.iter().zip(shape).all(|(&b, &k)| {
            if k == b'd' {
                b.is_ascii_digit()
            } else {
                b == k
            }
        })
    })
}

/// No run of 10 or more decimal digits: no raw seconds since the epoch.
fn no_raw_seconds(s: &str) {
    // Seconds since 1970 are ten digits until 2286; no group of a UUID
    // (8, 4, 4, 4, 12 characters) or an object ID (0x and 16) has ten.
    for word in s.split(|c: char| !c.is_ascii_alphanumeric()) {
        assert!(
            word.len() != 10 || !word.bytes().all(|b| b.is_ascii_digit()),
            "raw number {word:?} in:\n{s}"
        );
    }
}

/// `mpool` on the demo's own run directory and device list in `dir`.
fn inside(sb: &Sandbox, dir: &str, args: &[&str]) -> Out {
    let o = output(
        sb.cmd()
            .env("MPOOL_RUNDIR", format!("{dir}/run"))
            .env("MPOOL_CONFIG", format!("{dir}/devices"))
            .args(args),
    );
    assert!(o.status.success(), "mpool {args:?} failed:\n{}", o.all());
    o
}

#[test]
fn demo_removes_everything() {
    let sb = Sandbox::new();
    // The default directory, under the working directory; MPOOL_* given.
    let o = demo(&sb, &[]);
    let dir = std::fs::canonicalize(sb.path("."))
        .unwrap()
        .join("mpool-demo");
    assert!(o.stdout.contains("created pool 'demo'"), "{}", o.all());
    assert!(
        o.stdout
            .contains(&format!("its own run directory {}/run", dir.display())),
        "{}",
        o.all()
    );
    assert!(o.stdout.contains("removed"), "{}", o.all());
    assert!(!dir.exists(), "left behind: {:?}", tree(&dir));
    assert!(has_date(&o.stdout), "no date in:\n{}", o.stdout);
    no_raw_seconds(&o.stdout);
    nothing_outside(&sb);
    // No MPOOL_* given: still its own, still nothing left anywhere.
    let o = output(
        demo_cmd(&sb)
            .env_remove("MPOOL_RUNDIR")
            .env_remove("MPOOL_CONFIG")
            .args(["demo", "--dir", &sb.p("d")]),
    );
    assert!(o.status.success(), "{}", o.all());
    assert!(
        !sb.path("d").exists(),
        "left behind: {:?}",
        tree(&sb.path("d"))
    );
    nothing_outside(&sb);
}

#[test]
fn demo_keep_and_reopen() {
    let sb = Sandbox::new();
    let dir = sb.p("demo");
    let o = output(
        demo_cmd(&sb)
            .env_remove("MPOOL_RUNDIR")
            .env_remove("MPOOL_CONFIG")
            .args(["demo", "--dir", &dir, "--keep"]),
    );
    assert!(o.status.success(), "{}", o.all());
    assert!(o.stdout.contains("created pool 'demo'"), "{}", o.all());
    assert!(o.stdout.contains("export MPOOL_RUNDIR="), "{}", o.all());
    assert!(o.stdout.contains("mpool destroy demo --yes"), "{}", o.all());
    no_raw_seconds(&o.stdout);
    // Its run directory and device list are its own, under its directory.
    nothing_outside(&sb);
    assert!(sb.path("demo/mpool-demo-capacity.img").exists());
    assert!(sb.path("demo/mpool-demo-staging.img").exists());
    assert!(sb.path("demo/run/demo.pool").exists());
    let known = std::fs::read_to_string(sb.path("demo/devices")).unwrap();
    assert!(known.contains("mpool-demo-capacity.img"), "{known}");

    let list = |sb: &Sandbox| -> serde_json::Value {
        serde_json::from_str(&inside(sb, &dir, &["list", "--json"]).stdout).unwrap()
    };
    let v = list(&sb);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    let p = &v[0];
    assert_eq!(p["name"], "demo");
    assert_eq!(p["health"], "ok");
    let label = p["label"].as_str().unwrap();
    assert!(label.starts_with("mpool demo, run at "), "{label}");
    assert!(has_date(label), "{label}");
    assert_eq!(p["spare_staging"], 10);
    assert_eq!(p["classes"].as_array().unwrap().len(), 2);
    let uuid = p["uuid"].as_str().unwrap().to_string();

    // Second run: reopens the same pool.
    let o = demo(&sb, &["--dir", &dir, "--keep"]);
    assert!(o.stdout.contains("reopened pool 'demo'"), "{}", o.all());
    assert!(o.stdout.contains(&uuid), "{}", o.all());
    // Third run after deactivate: found again by scanning.
    inside(&sb, &dir, &["deactivate", "demo"]);
    let o = demo(&sb, &["--dir", &dir, "--keep"]);
    assert!(o.stdout.contains("reopened pool 'demo'"), "{}", o.all());
    let v = list(&sb);
    assert_eq!(v[0]["uuid"], uuid.as_str());
    assert!(v[0]["generation"].as_u64().unwrap() >= 3);

    // Another name in the same directory is another pool.
    demo(&sb, &["--dir", &dir, "--name", "demo2", "--keep"]);
    assert_eq!(list(&sb).as_array().unwrap().len(), 2);

    // The demo refuses a file that holds no pool.
    let other = sb.p("other");
    std::fs::create_dir_all(&other).unwrap();
    sparse(sb.path("other/mpool-x-capacity.img"), 1 << 20);
    let o = output(demo_cmd(&sb).args(["demo", "--dir", &other, "--name", "x"]));
    assert!(
        !o.status.success() && o.stderr.contains("holds no pool"),
        "{}",
        o.all()
    );
    // And an active name living elsewhere.
    inside(
        &sb,
        &other,
        &[
            "create",
            "y",
            &sb.p("other/y.img"),
            "--size",
            "64MiB",
            "--mblock-size",
            "1MiB",
        ],
    );
    let o = output(demo_cmd(&sb).args(["demo", "--dir", &other, "--name", "y"]));
    assert!(
        !o.status.success() && o.stderr.contains("lives elsewhere"),
        "{}",
        o.all()
    );
    assert!(!o.stderr.contains("destroy"), "{}", o.all());

    // Without --keep, a run reopens the kept pool and removes it; the run
    // directory and device list stay while demo2 uses them.
    let o = demo(&sb, &["--dir", &dir]);
    assert!(o.stdout.contains("reopened pool 'demo'"), "{}", o.all());
    assert!(!sb.path("demo/mpool-demo-capacity.img").exists());
    assert!(!sb.path("demo/mpool-demo-staging.img").exists());
    assert!(sb.path("demo/run").exists());
    let v = list(&sb);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["name"], "demo2");
    // The last one takes everything with it.
    demo(&sb, &["--dir", &dir, "--name", "demo2"]);
    assert!(!sb.path("demo").exists(), "{:?}", tree(&sb.path("demo")));
    nothing_outside(&sb);
}

/// A `run` directory or `devices` file of the user's in the demo's
/// directory is never used, let alone removed: the demo refuses.
#[test]
fn demo_refuses_a_run_directory_it_did_not_make() {
    let sb = Sandbox::new();
    let dir = sb.path("mine");
    std::fs::create_dir_all(dir.join("run")).unwrap();
    std::fs::write(dir.join("run/precious"), b"keep").unwrap();
    let o = output(demo_cmd(&sb).args(["demo", "--dir", &sb.p("mine")]));
    assert!(!o.status.success(), "{}", o.all());
    assert!(o.stderr.contains("was not made by the demo"), "{}", o.all());
    assert_eq!(std::fs::read(dir.join("run/precious")).unwrap(), b"keep");
    std::fs::remove_dir_all(dir.join("run")).unwrap();
    std::fs::write(dir.join("devices"), b"# mine\n").unwrap();
    let o = output(demo_cmd(&sb).args(["demo", "--dir", &sb.p("mine")]));
    assert!(!o.status.success(), "{}", o.all());
    assert_eq!(std::fs::read(dir.join("devices")).unwrap(), b"# mine\n");
    // In a directory of its own it runs and leaves the user's file alone.
    std::fs::remove_file(dir.join("devices")).unwrap();
    std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
    demo(&sb, &["--dir", &sb.p("mine")]);
    assert_eq!(std::fs::read(dir.join("notes.txt")).unwrap(), b"mine");
    assert!(!dir.join("run").exists());
}
