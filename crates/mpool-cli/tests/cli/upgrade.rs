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

/// `mpool mblock read POOL ID`: the content, as bytes.
fn read_mblock(sb: &Sandbox, pool: &str, id: &str) -> Vec<u8> {
    let o = sb
        .cmd()
        .args(["mblock", "read", pool, id])
        .output()
        .unwrap();
    assert!(o.status.success(), "mblock read {pool} {id}: {o:?}");
    o.stdout
}

fn contents(sb: &Sandbox) -> Vec<(String, Vec<u8>)> {
    let v = sb.json(&["mblock", "list", "golden-v2", "--json"]);
    let mut out = Vec::new();
    for m in v.as_array().unwrap() {
        let id = m["id"].as_str().unwrap().to_string();
        let content = read_mblock(sb, "golden-v2", &id);
        out.push((id, content));
    }
    let logs = sb.json(&["mlog", "list", "golden-v2", "--json"]);
    for l in logs.as_array().unwrap() {
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

/// Open `path` (creating a sparse file of `size`) as a device of this process.
fn file_dev(path: &std::path::Path, size: u64) -> mpool::dev::DeviceRef {
    std::sync::Arc::new(
        mpool::dev::FileDevice::open(
            path,
            &mpool::dev::OpenOptions {
                read_only: false,
                create_size: Some(size),
                engine: mpool::io::EngineChoice::Sync,
                direct: true,
            },
        )
        .unwrap(),
    )
}

/// A version-2 pool on `cap.img` (64 MiB) and `stg.img` (16 MiB), 1 MiB
/// zones, made by the library in this process, holding one mblock of
/// `data`; the devices are closed again when this returns.
fn v2_pool_on_files(sb: &Sandbox, name: &str, data: &[u8]) -> (String, [mpool::dev::DeviceRef; 2]) {
    use mpool::MediaClass;
    let cap = file_dev(&sb.path("cap.img"), 64 << 20);
    let stg = file_dev(&sb.path("stg.img"), 16 << 20);
    mpool::Pool::format_on_version(
        name,
        &[
            (cap.clone(), MediaClass::Capacity, 1 << 20),
            (stg.clone(), MediaClass::Staging, 1 << 20),
        ],
        "",
        2,
    )
    .unwrap();
    let pool = mpool::Pool::open_on(vec![cap.clone(), stg.clone()], false).unwrap();
    let id = pool.mblock_alloc(MediaClass::Staging).unwrap();
    pool.mblock_write(id, data).unwrap();
    pool.mblock_commit(id).unwrap();
    pool.close().unwrap();
    (id.to_string(), [cap, stg])
}

fn versions(sb: &Sandbox, name: &str) -> Vec<u64> {
    let v = sb.json(&["scan", &sb.p("cap.img"), &sb.p("stg.img"), "--json"]);
    let pool = v["report"]["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} not found: {v}"))
        .clone();
    assert_eq!(pool["devices"].as_array().unwrap().len(), 2, "{pool}");
    let mut out = Vec::new();
    for p in ["cap.img", "stg.img"] {
        let r = mpool::superblock::read(file_dev(&sb.path(p), 0).as_ref()).unwrap();
        out.push(u64::from(r.best().unwrap().version));
    }
    out
}

/// An upgrade interrupted between members (the staging device already
/// version 3 with the upgrade flag, the capacity device still version 2):
/// the pool assembles and opens as version 3, reads back, and the next
/// `upgrade` finishes the job on every member.
#[test]
fn an_upgrade_interrupted_between_members_assembles_and_is_finished() {
    let sb = Sandbox::new();
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let (id, [cap, stg]) = v2_pool_on_files(&sb, "mixed", &data);
    // What `upgrade` writes to the first member it updates (members are
    // written staging first): version 3, the flag, the next generation.
    let r = mpool::superblock::read(stg.as_ref()).unwrap();
    let mut s = r.best().unwrap().clone();
    s.version = 3;
    s.upgrade_pending = true;
    s.generation += 1;
    mpool::superblock::write(stg.as_ref(), &s).unwrap();
    drop((cap, stg));
    assert_eq!(versions(&sb, "mixed"), [2, 3]);

    sb.ok(&["scan", &sb.p("cap.img"), &sb.p("stg.img"), "--activate"]);
    assert_eq!(sb.props("mixed")["format_version"], 3);
    // Reads (read-only opens) work on the mixed pool.
    assert_eq!(read_mblock(&sb, "mixed", &id), data);

    let dry = sb.ok(&["upgrade", "mixed", "--dry-run"]);
    assert!(dry.stdout.contains("cap.img (version 2"), "{}", dry.all());
    assert!(
        dry.stdout.contains("rewrite the pool metadata"),
        "{}",
        dry.all()
    );
    assert_eq!(versions(&sb, "mixed"), [2, 3], "the dry run wrote");
    let v = sb.json(&["upgrade", "mixed", "--json"]);
    assert_eq!(v["already_current"], false, "{v}");
    assert_eq!(v["version_after"], 3, "{v}");
    assert_eq!(versions(&sb, "mixed"), [3, 3]);
    let v = sb.json(&["upgrade", "mixed", "--json"]);
    assert_eq!(v["already_current"], true, "{v}");
    assert_eq!(read_mblock(&sb, "mixed", &id), data);
    let chk = sb.ok(&["check", "mixed"]);
    assert!(chk.stdout.contains("0 problem(s)"), "{}", chk.all());
}

/// A version-2 pool whose metadata was compacted (the old logs still hold
/// records until a read-write open erases them, so a read-only open of it
/// cannot finish): `upgrade` looks at it read-write and converts it.
#[test]
fn upgrade_of_a_compacted_pool() {
    let sb = Sandbox::new();
    let data: Vec<u8> = (0..777u32).map(|i| (i * 7) as u8).collect();
    let (id, devs) = v2_pool_on_files(&sb, "compacted", &data);
    let pool = mpool::Pool::open_on(devs.to_vec(), false).unwrap();
    pool.compact_metadata().unwrap();
    pool.close().unwrap();
    drop(devs);
    sb.ok(&["scan", &sb.p("cap.img"), &sb.p("stg.img"), "--activate"]);
    // (In this state `mpool check`, a read-only open, fails: the MDC open
    // erases each compacted MDC's old log, which it cannot do read-only.)
    let v = sb.json(&["upgrade", "compacted", "--json"]);
    assert_eq!(
        (v["version_before"].as_u64(), v["version_after"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(versions(&sb, "compacted"), [3, 3]);
    let chk = sb.ok(&["check", "compacted"]);
    assert!(chk.stdout.contains("0 problem(s)"), "{}", chk.all());
    assert_eq!(read_mblock(&sb, "compacted", &id), data);
}
