//! Shared helpers of the `mpool` CLI tests: a sandbox whose run directory and
//! device list live in a temporary directory, so tests never touch
//! /run/mpool or /etc and run in parallel, and whose scans look at no block
//! device of the host (`MPOOL_SCAN_DEVICES=none`), so pools of other users
//! of the machine are neither seen nor activated.

#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// The result of one `mpool` run.
#[derive(Debug)]
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Stdout and stderr together, for error messages.
    pub fn all(&self) -> String {
        format!(
            "status {:?}\n--- stdout\n{}--- stderr\n{}",
            self.status.code(),
            self.stdout,
            self.stderr
        )
    }
}

/// A temporary directory with its own MPOOL_RUNDIR and MPOOL_CONFIG, and
/// MPOOL_SCAN_DEVICES (`none` unless a test gives it its own devices).
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    /// The value of MPOOL_SCAN_DEVICES: the block devices scans look at.
    pub scan_devices: String,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("mpool-cli-test")
                .tempdir()
                .expect("tempdir"),
            scan_devices: "none".to_string(),
        }
    }

    /// A path inside the sandbox.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A path inside the sandbox, as text.
    pub fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    pub fn rundir(&self) -> PathBuf {
        self.path("run")
    }

    pub fn config(&self) -> PathBuf {
        self.path("devices")
    }

    /// `mpool` with the sandbox's environment.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mpool"));
        c.env("MPOOL_RUNDIR", self.rundir())
            .env("MPOOL_CONFIG", self.config())
            .env("MPOOL_SCAN_DEVICES", &self.scan_devices)
            .env_remove("MPOOL_IO_ENGINE")
            .current_dir(self.dir.path());
        c
    }

    /// Run `mpool ARGS` and capture what it printed.
    pub fn run(&self, args: &[&str]) -> Out {
        output(self.cmd().args(args))
    }

    /// Run and require success.
    pub fn ok(&self, args: &[&str]) -> Out {
        let o = self.run(args);
        assert!(o.status.success(), "mpool {args:?} failed:\n{}", o.all());
        o
    }

    /// Run and require a failure with a message on stderr.
    pub fn fail(&self, args: &[&str]) -> Out {
        let o = self.run(args);
        assert!(
            !o.status.success(),
            "mpool {args:?} should have failed:\n{}",
            o.all()
        );
        assert!(o.status.code().is_some(), "killed by a signal: {}", o.all());
        assert!(
            !o.stderr.trim().is_empty(),
            "mpool {args:?} failed without a message:\n{}",
            o.all()
        );
        o
    }

    /// Run and require a failure whose stderr contains every one of `needles`.
    pub fn fail_with(&self, args: &[&str], needles: &[&str]) -> Out {
        let o = self.fail(args);
        for n in needles {
            assert!(
                o.stderr.contains(n),
                "mpool {args:?}: stderr lacks {n:?}:\n{}",
                o.all()
            );
        }
        o
    }

    /// Run with `--json` already in `args`, require success, parse stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let o = self.ok(args);
        serde_json::from_str(&o.stdout)
            .unwrap_or_else(|e| panic!("mpool {args:?}: bad JSON ({e}):\n{}", o.all()))
    }

    /// Create a capacity-only pool on a new 64 MiB sparse file with 1 MiB mblocks.
    pub fn create_small(&self, name: &str, file: &str) -> Out {
        self.ok(&[
            "create",
            name,
            &self.p(file),
            "--size",
            "64MiB",
            "--mblock-size",
            "1MiB",
        ])
    }

    /// Create a pool with a 64 MiB capacity file and a 16 MiB staging file.
    pub fn create_with_staging(&self, name: &str, cap: &str, stg: &str) -> Out {
        self.ok(&[
            "create",
            name,
            &self.p(cap),
            "--size",
            "64MiB",
            "--mblock-size",
            "1MiB",
            "--staging",
            &self.p(stg),
            "--staging-size",
            "16MiB",
        ])
    }

    /// `mpool get NAME --json`.
    pub fn props(&self, pool: &str) -> serde_json::Value {
        self.json(&["get", pool, "--json"])
    }

    /// Names of the active pools (`list --json`).
    pub fn active_names(&self) -> Vec<String> {
        self.json(&["list", "--json"])
            .as_array()
            .expect("list --json is an array")
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Paths in the known-devices list.
    pub fn known_paths(&self) -> Vec<String> {
        std::fs::read_to_string(self.config())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Make the sandbox reachable by other users (permission tests).
    pub fn open_up(&self) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

pub fn output(c: &mut Command) -> Out {
    let o = c.output().expect("run mpool");
    Out {
        status: o.status,
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// What a refused command must leave alone: the first MiB (both superblock
/// copies and every signature probed), the size, owner and mode.
#[derive(Debug, PartialEq, Eq)]
pub struct Fingerprint {
    head: Vec<u8>,
    len: u64,
    uid: u32,
    gid: u32,
    mode: u32,
}

pub fn fingerprint(path: impl AsRef<Path>) -> Fingerprint {
    use std::io::Read;
    let path = path.as_ref();
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut head = Vec::new();
    std::fs::File::open(path)
        .unwrap()
        .take(1 << 20)
        .read_to_end(&mut head)
        .unwrap();
    Fingerprint {
        head,
        len: meta.len(),
        uid: meta.uid(),
        gid: meta.gid(),
        mode: meta.mode() & 0o7777,
    }
}

/// Assert that a device is byte-for-byte and attribute-for-attribute unchanged.
#[track_caller]
pub fn assert_unchanged(path: impl AsRef<Path>, before: &Fingerprint, what: &str) {
    let after = fingerprint(path.as_ref());
    assert!(
        after.head == before.head,
        "{what}: the first MiB of {} changed",
        path.as_ref().display()
    );
    assert_eq!(
        (after.len, after.uid, after.gid, after.mode),
        (before.len, before.uid, before.gid, before.mode),
        "{what}: size/owner/mode of {} changed",
        path.as_ref().display()
    );
}

/// Create a sparse file of `size` bytes.
pub fn sparse(path: impl AsRef<Path>, size: u64) {
    let f = std::fs::File::create(path.as_ref()).unwrap();
    f.set_len(size).unwrap();
}

/// Write `bytes` at `offset` of an existing file.
pub fn poke(path: impl AsRef<Path>, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path.as_ref())
        .unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A program on PATH, if present.
pub fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// The uid and gid `as_nobody` runs as.
pub const NOBODY: u32 = 65534;

/// Run `mpool ARGS` as user and group nobody (through `setpriv`), in the
/// sandbox's run directory and device list.
pub fn as_nobody(sb: &Sandbox, setpriv: &std::path::Path, args: &[&str]) -> Out {
    let mut c = std::process::Command::new(setpriv);
    c.arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .arg(env!("CARGO_BIN_EXE_mpool"))
        .args(args)
        .env("MPOOL_RUNDIR", sb.rundir())
        .env("MPOOL_CONFIG", sb.config())
        .env("MPOOL_SCAN_DEVICES", &sb.scan_devices)
        .current_dir(sb.dir.path());
    output(&mut c)
}

/// Flip one bit (0x40) of the byte at `offset` of the sandbox file `name`.
pub fn flip(sb: &Sandbox, name: &str, offset: u64) {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 1];
    std::fs::File::open(sb.path(name))
        .unwrap()
        .read_exact_at(&mut b, offset)
        .unwrap();
    poke(sb.path(name), offset, &[b[0] ^ 0x40]);
}

/// Detaches the loop device and restores its node's owner and mode.
pub struct Loop {
    pub dev: String,
    uid: u32,
    gid: u32,
    mode: u32,
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::os::unix::fs::chown(&self.dev, Some(self.uid), Some(self.gid));
        let _ = std::fs::set_permissions(
            &self.dev,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(self.mode),
        );
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.dev])
            .status();
    }
}

/// Attach `backing` to a free loop device (`losetup --find --show`).
pub fn attach(backing: &std::path::Path) -> Option<Loop> {
    let o = std::process::Command::new(which("losetup")?)
        .args(["--find", "--show"])
        .arg(backing)
        .output()
        .ok()?;
    if !o.status.success() {
        eprintln!("losetup: {}", String::from_utf8_lossy(&o.stderr));
        return None;
    }
    let dev = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let m = std::fs::metadata(&dev).ok()?;
    Some(Loop {
        dev,
        uid: m.uid(),
        gid: m.gid(),
        mode: m.mode() & 0o7777,
    })
}

/// `setpriv`, when this test can run the CLI as another user (as root,
/// with util-linux's `setpriv`); otherwise None, after saying loudly that
/// `test` is skipped and why.
pub fn setpriv_for(test: &str) -> Option<PathBuf> {
    if !is_root() {
        eprintln!("SKIPPED: {test} needs root (to run the CLI as another user)");
        return None;
    }
    let found = which("setpriv");
    if found.is_none() {
        eprintln!("SKIPPED: {test} needs setpriv (util-linux)");
    }
    found
}

/// `blkid -p -o export PATH`: its KEY=value lines, and its exit status
/// (nothing and `None` without blkid).
pub fn blkid_export(path: &std::path::Path) -> (Vec<(String, String)>, Option<i32>) {
    let Some(blkid) = which("blkid") else {
        return (Vec::new(), None);
    };
    let out = std::process::Command::new(blkid)
        .args(["-p", "-o", "export"])
        .arg(path)
        .output()
        .expect("run blkid");
    let kv = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (kv, out.status.code())
}
