//! Hermetic tests (issue 15): another user of the machine has a pool on a
//! loop device, with a run directory and device list of their own and no
//! `MPOOL_SCAN_DEVICES`. A sandboxed `mpool` (`MPOOL_SCAN_DEVICES=none`)
//! neither lists, nor activates, nor writes to it, even when its own pool
//! has the same name; a sandbox whose `MPOOL_SCAN_DEVICES` names the loop
//! device does see it, so the first result is no accident. Needs root and
//! `losetup`; skipped (loudly) otherwise.

mod common;
use common::*;

/// The unrelated pool: destroyed with its owner's run directory, then the
/// loop device detached, then its directory removed, even when the test
/// fails half-way.
struct Unrelated {
    uuid: String,
    lo: Loop,
    owner: Sandbox,
}

impl Drop for Unrelated {
    fn drop(&mut self) {
        if !self.uuid.is_empty() {
            let _ = self.owner.run(&["destroy", "--yes", &self.uuid]);
        }
        // Then `lo` (losetup -d), then `owner` (its directory).
    }
}

/// Every byte of a device.
fn contents(dev: &str) -> Vec<u8> {
    std::fs::read(dev).unwrap_or_else(|e| panic!("{dev}: {e}"))
}

fn pool_uuids(scan: &serde_json::Value) -> Vec<String> {
    scan["report"]["pools"]
        .as_array()
        .expect("report.pools")
        .iter()
        .map(|p| p["uuid"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_unrelated_pool_on_a_loop_device_is_left_alone() {
    if !is_root() || which("losetup").is_none() {
        eprintln!("SKIPPED: hermetic test needs root and losetup");
        return;
    }
    // The other user: a directory, run directory and device list of its
    // own, and scans of every block device (MPOOL_SCAN_DEVICES empty).
    let mut owner = Sandbox::new();
    owner.scan_devices = String::new();
    sparse(owner.path("backing.img"), 64 << 20);
    let Some(lo) = attach(&owner.path("backing.img")) else {
        eprintln!("SKIPPED: hermetic test needs root and a loop device (losetup failed)");
        return;
    };
    let dev = lo.dev.clone();
    let mut other = Unrelated {
        uuid: String::new(),
        lo,
        owner,
    };
    // The same name as the sandbox's pool below.
    other
        .owner
        .ok(&["create", "shared", &dev, "--mblock-size", "1MiB"]);
    let v = other.owner.json(&["list", "--json"]);
    other.uuid = v[0]["uuid"].as_str().expect("uuid").to_string();
    let uuid = other.uuid.clone();
    assert_eq!(other.lo.dev, dev);
    let before = contents(&dev);
    let attrs = fingerprint(&dev);

    // The sandbox, as every CLI test runs: no block device of the host.
    let sb = Sandbox::new();
    sb.create_small("shared", "cap.img");
    let mine = sb.json(&["list", "--json"])[0]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(mine, uuid);
    sb.ok(&["deactivate", "shared"]);

    // Listed nowhere.
    let v = sb.json(&["scan", "--json"]);
    assert_eq!(pool_uuids(&v), vec![mine.clone()], "{v}");
    assert_eq!(v["report"]["examined"], 1, "{v}");
    let o = sb.ok(&["scan"]);
    assert!(
        !o.stdout.contains(&dev) && !o.stdout.contains(&uuid),
        "{}",
        o.all()
    );

    // Not activated by scan --activate.
    let v = sb.json(&["scan", "--activate", "--json"]);
    assert_eq!(v["activated"], serde_json::json!(["shared"]), "{v}");
    assert_eq!(v["activation_errors"], serde_json::json!([]), "{v}");
    let v = sb.json(&["list", "--json"]);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["uuid"], mine.as_str(), "{v}");
    assert_eq!(v[0]["devices"][0]["path"], sb.p("cap.img").as_str(), "{v}");

    // Activated by name: the sandbox's own, not ambiguous with the other.
    sb.ok(&["deactivate", "shared"]);
    sb.ok(&["activate", "shared"]);
    assert_eq!(sb.json(&["list", "--json"])[0]["uuid"], mine.as_str());
    sb.ok(&["deactivate", "shared"]);
    sb.ok(&["scan", "--activate", "shared"]);
    assert_eq!(sb.json(&["list", "--json"])[0]["uuid"], mine.as_str());

    // The other pool by UUID or device: not found, nothing done to it.
    sb.fail_with(&["activate", &uuid], &["no pool"]);
    sb.fail_with(&["scan", "--activate", &uuid], &[&uuid]);
    sb.fail_with(&["destroy", "--yes", &uuid], &["no pool"]);
    sb.fail_with(&["rename", &uuid, "taken"], &["no pool"]);
    assert_eq!(sb.active_names(), vec!["shared".to_string()]);
    assert!(
        sb.known_paths().iter().all(|l| !l.contains(&dev)),
        "{:?}",
        sb.known_paths()
    );
    assert!(
        !sb.rundir().exists()
            || walk(&sb.rundir())
                .iter()
                .all(|t| !t.contains(&dev) && !t.contains(&uuid)),
        "the sandbox's run directory mentions {dev}"
    );
    sb.ok(&["destroy", "--yes", "shared"]);

    // A sandbox told to look at the loop device does see the pool (and
    // only looks: no --activate), so the results above are no accident.
    let mut seeing = Sandbox::new();
    seeing.scan_devices = dev.clone();
    let v = seeing.json(&["scan", "--json"]);
    assert_eq!(pool_uuids(&v), vec![uuid.clone()], "{v}");
    seeing.scan_devices = "/dev/loop".to_string();
    let v = seeing.json(&["scan", "--json"]);
    assert!(pool_uuids(&v).contains(&uuid), "{v}");

    // Not a byte written; still the other user's active pool.
    assert_unchanged(&dev, &attrs, "the unrelated pool's device");
    assert!(
        contents(&dev) == before,
        "the unrelated pool's device {dev} changed"
    );
    let v = other.owner.json(&["list", "--json"]);
    assert_eq!(v[0]["uuid"], uuid.as_str(), "{v}");
    assert_eq!(v[0]["devices"][0]["path"], dev.as_str(), "{v}");

    // Cleanup by its owner (the guard does it too when a step above fails).
    other.owner.ok(&["destroy", "--yes", &uuid]);
    other.uuid.clear();
}

/// Every file under `dir`, as its path and contents.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            let text = std::fs::read(&p).unwrap_or_default();
            out.push(format!(
                "{} {}",
                p.display(),
                String::from_utf8_lossy(&text)
            ));
        }
    }
    out
}
