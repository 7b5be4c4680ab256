//! util-linux sees mpool members: `blkid -p` on every member of a new
//! pool prints TYPE="mpool", the pool name as LABEL and the pool UUID;
//! `wipefs` (listing only) shows the signature; after `mpool destroy`
//! `blkid -p` finds nothing. Skipped loudly without blkid or wipefs.

use crate::common;
use common::*;

pub fn get<'a>(kv: &'a [(String, String)], key: &str) -> Option<&'a str> {
    kv.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// What `wipefs PATH` (no `-a`: it only lists) prints.
pub fn wipefs_list(path: &std::path::Path) -> String {
    let out = std::process::Command::new(which("wipefs").expect("wipefs"))
        .arg(path)
        .output()
        .expect("run wipefs");
    assert!(out.status.success(), "wipefs: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every member in `paths` is libblkid's mpool of pool `name`/`uuid`.
pub fn assert_members_seen(paths: &[std::path::PathBuf], name: &str, uuid: &str) {
    for p in paths {
        let (kv, code) = blkid_export(p);
        assert_eq!(code, Some(0), "blkid -p {}: {kv:?}", p.display());
        assert_eq!(get(&kv, "TYPE"), Some("mpool"), "{}: {kv:?}", p.display());
        assert_eq!(get(&kv, "LABEL"), Some(name), "{}: {kv:?}", p.display());
        assert_eq!(get(&kv, "UUID"), Some(uuid), "{}: {kv:?}", p.display());
        let w = wipefs_list(p);
        let line = w
            .lines()
            .find(|l| l.contains("mpool"))
            .unwrap_or_else(|| panic!("wipefs {} lists no mpool signature:\n{w}", p.display()));
        assert!(line.contains("0x0"), "{line}");
        assert!(line.contains(uuid) && line.contains(name), "{line}");
    }
}

/// Nothing for libblkid on any of `paths`.
pub fn assert_nothing_seen(paths: &[std::path::PathBuf]) {
    for p in paths {
        let (kv, code) = blkid_export(p);
        assert!(
            kv.is_empty(),
            "blkid -p {} after destroy: {kv:?}",
            p.display()
        );
        assert_eq!(code, Some(2), "blkid -p {}: exit status", p.display());
        assert!(
            !wipefs_list(p).contains("mpool"),
            "wipefs still lists {}",
            p.display()
        );
    }
}

pub fn tools_present(test: &str) -> bool {
    let missing: Vec<&str> = ["blkid", "wipefs"]
        .into_iter()
        .filter(|t| which(t).is_none())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "SKIPPED: {test} needs util-linux's {}",
            missing.join(" and ")
        );
    }
    missing.is_empty()
}

#[test]
fn blkid_and_wipefs_see_every_member_until_destroy() {
    if !tools_present("blkid_and_wipefs_see_every_member_until_destroy") {
        return;
    }
    let sb = Sandbox::new();
    sb.create_with_staging("seen", "cap.img", "stg.img");
    let uuid = sb.props("seen")["uuid"].as_str().unwrap().to_string();
    let paths = [sb.path("cap.img"), sb.path("stg.img")];
    assert_members_seen(&paths, "seen", &uuid);
    // A property change rewrites the superblocks (new generation): still seen.
    sb.ok(&["set", "seen", "label=after"]);
    assert_members_seen(&paths, "seen", &uuid);
    sb.ok(&["destroy", "seen", "--yes"]);
    assert_nothing_seen(&paths);
}
