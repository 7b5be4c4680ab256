//! `mpool demo` creates a file-backed pool, and reopens it on a second run
//! (also after the pool was deactivated).

use crate::common;
use common::*;

#[test]
fn demo_twice() {
    let sb = Sandbox::new();
    let dir = sb.p("demo");
    let o = sb.ok(&["demo", "--dir", &dir]);
    assert!(o.stdout.contains("created pool 'demo'"), "{}", o.all());
    assert!(sb.path("demo/mpool-demo-capacity.img").exists());
    assert!(sb.path("demo/mpool-demo-staging.img").exists());
    let v = sb.json(&["list", "--json"]);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    let p = &v[0]["props"];
    assert_eq!(p["name"], "demo");
    assert_eq!(p["health"], "ok");
    assert!(p["label"].as_str().unwrap().starts_with("mpool demo"));
    assert_eq!(p["spare_staging"], 10);
    assert_eq!(p["classes"].as_array().unwrap().len(), 2);
    let uuid = p["uuid"].as_str().unwrap().to_string();

    // Second run: reopens the same pool.
    let o = sb.ok(&["demo", "--dir", &dir]);
    assert!(o.stdout.contains("reopened pool 'demo'"), "{}", o.all());
    assert!(o.stdout.contains(&uuid), "{}", o.all());
    // Third run after deactivate: found again by scanning.
    sb.ok(&["deactivate", "demo"]);
    let o = sb.ok(&["demo", "--dir", &dir]);
    assert!(o.stdout.contains("reopened pool 'demo'"), "{}", o.all());
    let v = sb.json(&["list", "--json"]);
    assert_eq!(v[0]["uuid"], uuid.as_str());
    assert!(v[0]["props"]["generation"].as_u64().unwrap() >= 3);

    // Another name in the same directory is another pool.
    sb.ok(&["demo", "--dir", &dir, "--name", "demo2"]);
    let mut names = sb.active_names();
    names.sort();
    assert_eq!(names, ["demo", "demo2"]);

    // The demo refuses a file that holds no pool.
    let other = sb.p("other");
    std::fs::create_dir_all(&other).unwrap();
    sparse(sb.path("other/mpool-x-capacity.img"), 1 << 20);
    sb.fail_with(
        &["demo", "--dir", &other, "--name", "x"],
        &["holds no pool"],
    );
    // And an active name living elsewhere.
    sb.fail_with(
        &["demo", "--dir", &other, "--name", "demo"],
        &["lives elsewhere"],
    );
    sb.ok(&["destroy", "demo"]);
    sb.ok(&["destroy", "demo2"]);
}
