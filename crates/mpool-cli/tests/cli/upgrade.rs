//! `mpool upgrade`: the version-2 golden pool (made by mpool 0.2.0) is
//! converted to version 3 in place, with every object read back
//! identically; `--dry-run` writes nothing; an already-current pool is
//! left alone (exit 0); `--json` reports the result; an open pool and a
//! pool whose metadata does not replay cleanly are refused.

use crate::common;
use common::*;

/// The version-2 golden image (crates/mpool/tests/golden/pool-v2.img) as a
/// device file at `path`.
fn golden_v2(path: &std::path::Path) {
    let f = include_bytes!("../../../mpool/tests/golden/pool-v2.img");
    assert_eq!(&f[..8], b"MPGOLD1\0");
    let size = u64::from_le_bytes(f[8..16].try_into().unwrap());
    let s = u32::from_le_bytes(f[16..20].try_into().unwrap()) as usize;
    sparse(path, size);
    let mut rest = &f[20..];
    while !rest.is_empty() {
        let off = u64::from_le_bytes(rest[..8].try_into().unwrap());
        poke(path, off, &rest[8..8 + s]);
        rest = &rest[8 + s..];
    }
}

fn contents(sb: &Sandbox) -> Vec<(String, Vec<u8>)> {
    let v = sb.json(&["mblock", "list", "golden-v2", "--json"]);
    let mut out = Vec::new();
    for m in v.as_array().unwrap() {
        let id = m["id"].as_str().unwrap().to_string();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_mpool"))
            .envs(sb.cmd().get_envs().filter_map(|(k, v)| Some((k, v?))))
            .current_dir(sb.path(""))
            .args(["mblock", "read", "golden-v2", &id])
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        out.push((id, o.stdout));
    }
    let logs = sb.json(&["mlog", "list", "golden-v2", "--json"]);
    for l in logs["logs"].as_array().unwrap() {
        if l["type"] == "mlog" {
            let id = l["id"].as_str().unwrap();
            out.push((
                id.to_string(),
                sb.ok(&["mlog", "dump", "golden-v2", id])
                    .stdout
                    .into_bytes(),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn upgrade_converts_the_v2_golden_pool() {
    let sb = Sandbox::new();
    let path = sb.path("cap.img");
    golden_v2(&path);
    sb.ok(&["scan", &sb.p("cap.img"), "--activate"]);
    assert_eq!(sb.props("golden-v2")["format_version"], 2);
    let before = contents(&sb);
    assert_eq!(before.len(), 4, "3 mblocks and an mlog: {before:?}");

    // --dry-run: says what would change, writes nothing.
    let fp = fingerprint(&path);
    let o = sb.ok(&["upgrade", "golden-v2", "--dry-run"]);
    assert!(o.stdout.contains("format version 2"), "{}", o.all());
    assert!(o.stdout.contains("as format version 3"), "{}", o.all());
    assert!(o.stdout.contains("nothing was written"), "{}", o.all());
    assert_unchanged(&path, &fp, "upgrade --dry-run");

    let v = sb.json(&["upgrade", "golden-v2", "--json"]);
    assert_eq!(v["version_before"], 2);
    assert_eq!(v["version_after"], 3);
    assert_eq!(v["already_current"], false);
    assert!(v["generation_after"].as_u64() > v["generation_before"].as_u64());
    assert_eq!(v["members"][0]["version"], 2);
    assert_eq!(sb.props("golden-v2")["format_version"], 3);
    assert_eq!(contents(&sb), before, "objects after the upgrade");
    let chk = sb.ok(&["check", "golden-v2"]);
    assert!(chk.stdout.contains("0 problem(s)"), "{}", chk.all());

    // Again: nothing to do, nothing written, exit 0.
    let fp = fingerprint(&path);
    let o = sb.ok(&["upgrade", "golden-v2"]);
    assert!(o.stdout.contains("already format version 3"), "{}", o.all());
    let v = sb.json(&["upgrade", "golden-v2", "--json"]);
    assert_eq!(v["already_current"], true);
    assert_unchanged(&path, &fp, "upgrade of a version-3 pool");

    // libblkid now sees the member.
    if which("blkid").is_some() {
        let o = std::process::Command::new(which("blkid").unwrap())
            .args(["-p", "-o", "value", "-s", "TYPE"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "mpool");
    } else {
        eprintln!("SKIPPED: blkid check of the upgraded member (no blkid)");
    }
}

#[test]
fn upgrade_refuses_unclean_metadata_and_writes_nothing() {
    let sb = Sandbox::new();
    let path = sb.path("cap.img");
    golden_v2(&path);
    sb.ok(&["scan", &sb.p("cap.img"), "--activate"]);
    // Rot in MDC0 (zone 1, 64 KiB zones): its records no longer verify.
    let zone = 64 * 1024u64;
    for off in (zone..3 * zone).step_by(4096) {
        poke(&path, off, &[0xa5; 4096]);
    }
    let fp = fingerprint(&path);
    sb.fail_with(
        &["upgrade", "golden-v2"],
        &["cannot be upgraded", "mpool check"],
    );
    assert_unchanged(&path, &fp, "refused upgrade");
}
