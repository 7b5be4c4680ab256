//! A mapped slice behaves like ordinary memory: passed to write(2) (a
//! pipe, a file) before any of it was resident, handed to other threads.
//! As root (full userfaultfd) and as an unprivileged user (`nobody`, in a
//! child process: user-mode faults only, where the map loads what it
//! hands out), and with user mode forced.

use super::common::{commit, is_root, mem_pool, pattern, serial};
use mpool::{mcache, Advice};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::process::Command;

const LEN: usize = 300_000;

/// write(2) straight from the mapped bytes (no copy through a buffer of
/// ours): the kernel takes the faults.
fn write_all_raw(fd: i32, mut buf: &[u8]) {
    while !buf.is_empty() {
        // SAFETY: `buf` is a live slice of `buf.len()` readable bytes.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        assert!(
            n > 0,
            "write(2) of a mapped slice: {}",
            std::io::Error::last_os_error()
        );
        buf = &buf[n as usize..];
    }
}

/// What every mode must do; returns the mode seen.
fn exercise() -> mcache::FaultMode {
    let mode = mcache::fault_mode().unwrap();
    let pool = mem_pool(64, 1 << 20);
    let ids: Vec<_> = (0..4)
        .map(|i| commit(&pool, &pattern(40 + i, LEN)))
        .collect();
    let map = pool.mcache_map(&ids, Advice::Cold).unwrap();
    assert_eq!(map.resident_bytes(), 0);

    // A guard's bytes into a pipe, read back by another thread.
    let (mut rx, tx) = std::io::pipe().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        rx.read_to_end(&mut v).unwrap();
        v
    });
    {
        let g = map.get(0).unwrap();
        write_all_raw(tx.as_raw_fd(), &g);
    }
    drop(tx);
    assert_eq!(reader.join().unwrap(), pattern(40, LEN));

    // A range of a slice into a file, and the whole slice of another.
    let mut f = tempfile::tempfile().unwrap();
    let r = map.range(1, 1000..250_000).unwrap();
    write_all_raw(f.as_raw_fd(), &r);
    drop(r);
    write_all_raw(f.as_raw_fd(), map.slice(2).unwrap());
    f.flush().unwrap();
    f.rewind().unwrap();
    let mut back = Vec::new();
    f.read_to_end(&mut back).unwrap();
    assert_eq!(&back[..249_000], &pattern(41, LEN)[1000..250_000]);
    assert_eq!(&back[249_000..], &pattern(42, LEN)[..]);

    // Slices handed to other threads, reading the same pages at once.
    let s = map.slice(3).unwrap();
    std::thread::scope(|sc| {
        for t in 0..4 {
            sc.spawn(move || {
                let want = pattern(43, LEN);
                for i in (t * 997..LEN).step_by(4099) {
                    assert_eq!(s[i], want[i]);
                }
                assert_eq!(s, &want[..]);
            });
        }
    });
    assert!(map.resident_bytes() > 0);

    // Guards under constant eviction: another thread evicts everything it
    // may, over and over, while guards are taken and written with
    // write(2). A guard's bytes stay resident while it lives (with
    // user-mode faults a page evicted under it would be EFAULT here).
    let devnull = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let want = [pattern(40, LEN), pattern(41, LEN)];
    std::thread::scope(|sc| {
        sc.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                mcache::reap(u64::MAX).unwrap();
            }
        });
        for k in 0..3000usize {
            let i = k % 2;
            let off = (k * 4099) % (LEN - 5000);
            let g = map.range(i, off as u64..off as u64 + 5000).unwrap();
            // The other object, not in use, goes now; this one may not.
            map.evict(1 - i);
            write_all_raw(devnull.as_raw_fd(), &g);
            assert_eq!(&g[..], &want[i][off..off + 5000]);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert!(mcache::stats().evictions >= 2900);
    mode
}

#[test]
fn mapped_slices_work_in_system_calls_and_threads() {
    let _s = serial();
    let mode = exercise();
    if is_root() {
        assert_eq!(mode, mcache::FaultMode::Full);
    }
}

/// The child half of the tests below: run in a process of its own.
#[test]
fn kernel_access_child_body() {
    let Ok(want) = std::env::var("MPOOL_MCACHE_CHILD") else {
        return;
    };
    let mode = exercise();
    assert_eq!(format!("{mode:?}"), want);
    println!("CHILD OK {mode:?}");
}

fn child(envs: &[(&str, &str)], uid: Option<u32>) {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "kernel_access::kernel_access_child_body",
        "--nocapture",
    ]);
    cmd.envs(envs.iter().copied());
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
        // A home nobody may read, for anything that looks at $TMPDIR.
        cmd.env("TMPDIR", "/tmp");
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("CHILD OK"),
        "{:?}: {text}",
        out.status
    );
}

#[test]
fn user_mode_faults_forced() {
    let _s = serial();
    child(
        &[
            ("MPOOL_MCACHE_CHILD", "UserOnly"),
            ("MPOOL_MCACHE_UFFD", "user"),
        ],
        None,
    );
}

#[test]
fn unprivileged_user() {
    let _s = serial();
    if !is_root() {
        println!(
            "SKIPPED: needs root to start a child as nobody (this run is unprivileged itself)"
        );
        return;
    }
    let exe = std::env::current_exe().unwrap();
    // nobody must be able to run the test binary.
    let meta = std::fs::metadata(&exe).unwrap();
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o001 == 0 || !dirs_searchable(&exe) {
        println!("SKIPPED: the test binary is not executable by nobody");
        return;
    }
    let full_for_all = std::fs::read_to_string("/proc/sys/vm/unprivileged_userfaultfd")
        .is_ok_and(|v| v.trim() == "1");
    let want = if full_for_all { "Full" } else { "UserOnly" };
    child(&[("MPOOL_MCACHE_CHILD", want)], Some(65534));
}

fn dirs_searchable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.ancestors()
        .skip(1)
        .filter(|d| !d.as_os_str().is_empty())
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}
