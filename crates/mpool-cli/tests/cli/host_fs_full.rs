//! A sparse pool file on a filesystem that fills up (issue 15), on a
//! 48 MiB tmpfs mounted in the sandbox (root only; SKIPPED otherwise):
//! `create --preallocate` of a 256 MiB file is refused, naming the bytes,
//! and leaves nothing behind; a sparse 256 MiB pool is created (its
//! metadata allocated) and filled with mblocks, the tmpfs is filled, and
//! then mblock writes that need new pages fail cleanly while commits and
//! deletes (more than a page of metadata), `check`, `list` and
//! `deactivate` work, and
//! `list` warns that the filesystem cannot hold the pool's free space.

use crate::common;
use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Unmounts the tmpfs however the test ends.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

fn mount_tmpfs(dir: &Path) -> Option<Mounted> {
    if !is_root() {
        eprintln!("SKIPPED: host_fs_full needs root (to mount a tmpfs)");
        return None;
    }
    if which("mount").is_none() || which("umount").is_none() {
        eprintln!("SKIPPED: host_fs_full needs mount and umount (util-linux)");
        return None;
    }
    std::fs::create_dir_all(dir).unwrap();
    let o = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=48m", "tmpfs"])
        .arg(dir)
        .output()
        .unwrap();
    if !o.status.success() {
        eprintln!(
            "SKIPPED: host_fs_full cannot mount a tmpfs: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
        return None;
    }
    Some(Mounted(dir.to_path_buf()))
}

/// Write a file until the filesystem is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5au8; 64 << 10];
    loop {
        match f.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    let _ = f.sync_all();
}

#[test]
fn a_full_host_filesystem_leaves_the_pool_manageable() {
    let sb = Sandbox::new();
    let dir = sb.path("fs");
    let Some(_mounted) = mount_tmpfs(&dir) else {
        return;
    };
    let img = dir.join("pool.img");
    let img_s = img.display().to_string();

    // Whole preallocation of more than the filesystem holds: refused,
    // naming the bytes, nothing left behind.
    let o = sb.fail_with(
        &[
            "create",
            "full",
            &img_s,
            "--size",
            "256MiB",
            "--mblock-size",
            "1MiB",
            "--preallocate",
        ],
        &["cannot reserve 268435456 bytes", &img_s],
    );
    assert!(!img.exists(), "a refused create left {img_s}: {}", o.all());
    assert!(sb.active_names().is_empty(), "{}", o.all());

    // 4 MiB mblocks: 64 zones, one metadata log (MDC1), 24 MiB of
    // metadata allocated at create.
    sb.ok(&[
        "create",
        "full",
        &img_s,
        "--size",
        "256MiB",
        "--mblock-size",
        "4MiB",
    ]);
    // Every zone of the pool holds a small mblock (one page of the file
    // each), until the pool itself is full.
    std::fs::write(sb.path("small.bin"), b"kept while the filesystem fills").unwrap();
    let mut ids = Vec::new();
    loop {
        let o = sb.run(&["mblock", "write", "full", &sb.p("small.bin")]);
        if !o.status.success() {
            assert!(!o.stderr.contains("No space left on device"), "{}", o.all());
            break;
        }
        ids.push(o.stdout.trim().to_string());
        assert!(ids.len() < 64, "the pool never filled up");
    }
    assert!(ids.len() > 40, "{} mblocks", ids.len());

    fill(&dir.join("filler"));

    // Object writes that need new pages of the file fail cleanly, with the reason.
    let freed = ids.pop().unwrap();
    sb.ok(&["mblock", "delete", "full", &freed]);
    let big: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7) as u8).collect();
    std::fs::write(sb.path("big.bin"), &big).unwrap();
    for _ in 0..3 {
        let o = sb.run(&["mblock", "write", "full", &sb.p("big.bin")]);
        assert!(!o.status.success(), "{}", o.all());
        assert!(
            o.stderr.contains("No space left on device") && !o.stderr.contains("panicked"),
            "{}",
            o.all()
        );
    }
    // Small writes into the page of the zone freed, and deletes, go on
    // (their metadata runs over more than a page of the log, all of it
    // allocated at create).
    for _ in 0..30 {
        let o = sb.ok(&["mblock", "write", "full", &sb.p("small.bin")]);
        sb.ok(&["mblock", "delete", "full", o.stdout.trim()]);
    }
    let kept = &ids[0];
    // Deletes, check, list work.
    sb.ok(&["mblock", "delete", "full", &ids[1], &ids[2]]);
    let o = sb.ok(&["check", "full"]);
    assert!(o.stdout.contains("0 problem(s)"), "{}", o.all());
    assert_eq!(
        sb.ok(&["mblock", "read", "full", kept]).stdout,
        "kept while the filesystem fills"
    );
    let o = sb.ok(&["list"]);
    assert!(
        o.stderr.contains("warning") && o.stderr.contains("sparse file"),
        "list does not warn about the shortfall: {}",
        o.all()
    );
    let v = sb.json(&["list", "--json"]);
    let dev = &v[0]["devices"][0];
    let short = dev["sparse_shortfall"].as_u64().unwrap_or(0);
    assert!(short >= 8 << 20, "shortfall {short}: {v}");
    assert!(dev["fs_free"].as_u64().unwrap() < 1 << 20, "{v}");
    // And deactivate, which writes nothing.
    sb.ok(&["deactivate", "full"]);
    assert!(sb.active_names().is_empty());
}
