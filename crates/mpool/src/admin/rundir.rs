//! The run directory (active pools) and the list of known device files.
//!
//! Activation records a pool's member devices in the run directory so later
//! commands and `Pool::open("name")` resolve by name: `$MPOOL_RUNDIR`, else
//! `/run/mpool` when writable, else `$XDG_RUNTIME_DIR/mpool`, else
//! `/tmp/mpool-UID`. File-backed devices are not found by scanning
//! `/sys/class/block`, so `create` and `add` remember them in a plain list
//! (one path a line): `$MPOOL_CONFIG`, else `/etc/mpool/devices` for root,
//! else `$XDG_CONFIG_HOME/mpool/devices` (or `~/.config/mpool/devices`).
//!
//! `create`, `activate` and `rename` check and claim a pool name under an
//! exclusive lock on `.names.lock` in the run directory. The device list
//! also keeps, as comment lines `#node UID GID MODE PATH`, the owner and
//! mode a device node had before `create` gave it to a pool; `destroy`
//! gives them back.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// An active pool's record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ActiveEntry {
    /// Pool name.
    pub name: String,
    /// Pool UUID.
    pub uuid: String,
    /// Member device paths.
    pub devices: Vec<PathBuf>,
    /// When it was activated (seconds since the epoch).
    pub activated: u64,
}

fn writable_dir(p: &Path) -> bool {
    if std::fs::create_dir_all(p).is_err() {
        return false;
    }
    let probe = p.join(format!(".probe-{}", std::process::id()));
    let ok = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

/// The run directory, created if needed.
pub fn run_dir() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("MPOOL_RUNDIR") {
        let p = PathBuf::from(p);
        std::fs::create_dir_all(&p).map_err(|e| Error::file(&p, e))?;
        return Ok(p);
    }
    let mut cands = vec![PathBuf::from("/run/mpool")];
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
        cands.push(PathBuf::from(x).join("mpool"));
    }
    cands.push(std::env::temp_dir().join(format!("mpool-{}", rustix::process::geteuid().as_raw())));
    for c in &cands {
        if writable_dir(c) {
            return Ok(c.clone());
        }
    }
    Err(Error::file(
        cands.remove(0),
        std::io::Error::other("no writable run directory (set MPOOL_RUNDIR)"),
    ))
}

fn entry_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.pool"))
}

/// Every active pool.
pub fn list_active() -> Result<Vec<ActiveEntry>> {
    let dir = run_dir()?;
    let mut out = Vec::new();
    let rd = std::fs::read_dir(&dir).map_err(|e| Error::file(&dir, e))?;
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "pool") {
            if let Ok(text) = std::fs::read_to_string(&p) {
                if let Ok(ent) = serde_json::from_str::<ActiveEntry>(&text) {
                    out.push(ent);
                }
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The active pool with this name or UUID.
pub fn find_active(name_or_uuid: &str) -> Result<Option<ActiveEntry>> {
    Ok(list_active()?
        .into_iter()
        .find(|e| e.name == name_or_uuid || e.uuid.eq_ignore_ascii_case(name_or_uuid)))
}

/// Record (or replace) an active pool.
pub(crate) fn write_active(ent: &ActiveEntry) -> Result<()> {
    let dir = run_dir()?;
    let p = entry_path(&dir, &ent.name);
    let tmp = dir.join(format!(".{}.tmp{}", ent.name, std::process::id()));
    let text =
        serde_json::to_string_pretty(ent).map_err(|e| Error::file(&p, std::io::Error::other(e)))?;
    std::fs::write(&tmp, text).map_err(|e| Error::file(&tmp, e))?;
    std::fs::rename(&tmp, &p).map_err(|e| Error::file(&p, e))
}

/// Forget an active pool (no error when absent).
pub(crate) fn remove_active(name: &str) -> Result<()> {
    let p = entry_path(&run_dir()?, name);
    match std::fs::remove_file(&p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::file(&p, e)),
        _ => Ok(()),
    }
}

/// Record which process holds a pool open (best effort, for error messages).
pub(crate) fn write_holder(uuid: &str) {
    if let Ok(d) = run_dir() {
        let _ = std::fs::write(
            d.join(format!("{uuid}.pid")),
            std::process::id().to_string(),
        );
    }
}

/// Which process holds a pool open, if recorded and still alive.
pub(crate) fn read_holder(uuid: &str) -> Option<u32> {
    let d = run_dir().ok()?;
    let pid: u32 = std::fs::read_to_string(d.join(format!("{uuid}.pid")))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// Forget the holder record if it is ours.
pub(crate) fn clear_holder(uuid: &str) {
    if read_holder(uuid) == Some(std::process::id()) {
        if let Ok(d) = run_dir() {
            let _ = std::fs::remove_file(d.join(format!("{uuid}.pid")));
        }
    }
}

/// The known-devices list file.
pub fn config_path() -> PathBuf {
    if let Some(p) = std::env::var_os("MPOOL_CONFIG") {
        return PathBuf::from(p);
    }
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/etc/mpool/devices");
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("mpool").join("devices")
}

/// Device paths listed in the configuration file (comments with `#`).
pub fn known_paths() -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(config_path()) else {
        return Vec::new();
    };
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// Add paths to the list (absolute, deduplicated). Returns the paths it
/// added (those not listed before), so a failed `create` can take them out.
pub fn remember_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let cfg = config_path();
    let known = known_paths();
    let mut add = Vec::new();
    for p in paths {
        let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        if !known.contains(&abs) && !add.contains(&abs) {
            add.push(abs);
        }
    }
    if add.is_empty() {
        return Ok(add);
    }
    if let Some(d) = cfg.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::file(d, e))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&cfg)
        .map_err(|e| Error::file(&cfg, e))?;
    for p in &add {
        writeln!(f, "{}", p.display()).map_err(|e| Error::file(&cfg, e))?;
    }
    Ok(add)
}

/// Remove paths from the list.
pub fn forget_paths(paths: &[PathBuf]) -> Result<()> {
    let cfg = config_path();
    let Ok(text) = std::fs::read_to_string(&cfg) else {
        return Ok(());
    };
    let drop: Vec<PathBuf> = paths
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            !drop.iter().any(|d| {
                Path::new(l.trim()) == d.as_path()
                    || parse_node_line(l).is_some_and(|n| n.path == *d)
            })
        })
        .collect();
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    std::fs::write(&cfg, out).map_err(|e| Error::file(&cfg, e))
}

/// The lock that makes checking and claiming a pool name one step: held
/// (exclusive) by `create`, `activate` and `rename` from their check that no
/// active pool has the name until they recorded theirs. Released on drop.
pub(crate) struct NameLock(#[allow(dead_code)] std::fs::File);

/// Take the name lock (`.names.lock` in the run directory), waiting for it.
pub(crate) fn lock_names() -> Result<NameLock> {
    let p = run_dir()?.join(".names.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| Error::file(&p, e))?;
    f.lock().map_err(|e| Error::file(&p, e))?;
    Ok(NameLock(f))
}

/// A device node's owner and mode before `create` gave it to a pool, kept in
/// the device list as a comment line (`#node UID GID MODE PATH`), which
/// `destroy` restores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeOwner {
    /// The node (canonical path).
    pub path: PathBuf,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Permission bits.
    pub mode: u32,
}

const NODE_TAG: &str = "#node ";

fn parse_node_line(l: &str) -> Option<NodeOwner> {
    let rest = l.trim().strip_prefix(NODE_TAG)?;
    let mut it = rest.splitn(4, ' ');
    let uid = it.next()?.parse().ok()?;
    let gid = it.next()?.parse().ok()?;
    let mode = u32::from_str_radix(it.next()?, 8).ok()?;
    let path = PathBuf::from(it.next()?);
    Some(NodeOwner {
        path,
        uid,
        gid,
        mode,
    })
}

/// The recorded original owner of a device node, if any.
pub fn node_owner(path: &Path) -> Option<NodeOwner> {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let text = std::fs::read_to_string(config_path()).ok()?;
    text.lines()
        .filter_map(parse_node_line)
        .find(|n| n.path == abs)
}

/// Record a node's original owner, unless one is recorded already (the
/// first record is the original). Returns whether it added one.
pub(crate) fn remember_node(n: &NodeOwner) -> Result<bool> {
    if node_owner(&n.path).is_some() {
        return Ok(false);
    }
    let cfg = config_path();
    if let Some(d) = cfg.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::file(d, e))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&cfg)
        .map_err(|e| Error::file(&cfg, e))?;
    writeln!(
        f,
        "{NODE_TAG}{} {} {:o} {}",
        n.uid,
        n.gid,
        n.mode,
        n.path.display()
    )
    .map_err(|e| Error::file(&cfg, e))?;
    Ok(true)
}
