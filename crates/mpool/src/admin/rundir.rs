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
//! gives them back. Every change to the list (an append, or a rewrite that
//! takes paths out) holds an exclusive lock on the list's directory.
//!
//! Both are trusted only when nobody else could have written them: the run
//! directory, the device list and the list's directory must be owned by the
//! caller or root, writable by nobody else, and not symbolic links
//! ([`PoolError::Untrusted`] otherwise, which says what to fix); entries and
//! the list are opened with `O_NOFOLLOW` and replaced by renaming a new
//! file over them, never written through a link.

use crate::error::{Error, PoolError, Result};
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

/// Open a file in mpool's own directories without following a symbolic
/// link in its last component (`O_NOFOLLOW`): a link planted there is an
/// error (`ELOOP`), never a way to read or write another file.
fn open_nofollow(p: &Path, opts: &mut std::fs::OpenOptions) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    opts.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .mode(0o644)
        .open(p)
}

fn read_nofollow(p: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = open_nofollow(p, std::fs::OpenOptions::new().read(true))?;
    let mut s = String::new();
    f.read_to_string(&mut s)?;
    Ok(s)
}

/// Replace a file's content: a new file (never an existing one, so never
/// through a link) renamed over it.
fn replace_file(p: &Path, text: &str) -> Result<()> {
    let dir = p.parent().unwrap_or(Path::new("."));
    let base = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{base}.tmp{}.{seq}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = open_nofollow(
        &tmp,
        std::fs::OpenOptions::new().write(true).create_new(true),
    )
    .map_err(|e| Error::file(&tmp, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| Error::file(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, p).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::file(p, e)
    })
}

/// Whether a file or directory of mpool's own can be trusted: not a
/// symbolic link, owned by the caller or by root, writable by nobody else.
/// `what` names it in the error ("run directory", "device list"); `var` is
/// the environment variable that chooses another one.
fn check_trusted(p: &Path, what: &str, var: &str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).map_err(|e| Error::file(p, e))?;
    let me = rustix::process::geteuid().as_raw();
    let kind = if what.ends_with("directory") {
        "directory"
    } else {
        "file"
    };
    let own = if var == CONFIG_VAR {
        "a file of your own"
    } else {
        "a directory of your own"
    };
    let problem = if m.file_type().is_symlink() {
        Some((
            "is a symbolic link".to_string(),
            format!("replace it with the {kind} itself, or set {var} to {own}"),
        ))
    } else if m.uid() != me && m.uid() != 0 {
        Some((
            format!("is owned by uid {}, not you ({me})", m.uid()),
            format!("remove it, or set {var} to {own}"),
        ))
    } else if m.mode() & 0o022 != 0 {
        let text = format!(
            "is writable by {} (mode {:04o})",
            match m.mode() & 0o022 {
                0o020 => "its group",
                0o002 => "others",
                _ => "its group and others",
            },
            m.mode() & 0o7777
        );
        Some((
            text,
            format!(
                "take write access from group and others (chmod go-w {}), or set {var} to {own}",
                p.display()
            ),
        ))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some((problem, fix)) => Err(PoolError::Untrusted {
            what: what.to_string(),
            path: p.to_path_buf(),
            problem,
            fix,
        }
        .into()),
    }
}

/// Create a directory of mpool's own (and missing parents): writable by its
/// owner only, whatever the umask.
fn create_own_dir(p: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(p)
}

const RUNDIR_VAR: &str = "MPOOL_RUNDIR";

/// The run directory, created if needed. Refused unless it is a directory
/// (not a symbolic link) owned by the caller or root and writable by nobody
/// else: anyone who could write there could plant pool entries naming
/// devices of their choosing.
pub fn run_dir() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("MPOOL_RUNDIR") {
        let p = PathBuf::from(p);
        create_own_dir(&p, 0o755).map_err(|e| Error::file(&p, e))?;
        check_trusted(&p, "run directory", RUNDIR_VAR)?;
        return Ok(p);
    }
    let tmp = std::env::temp_dir().join(format!("mpool-{}", rustix::process::geteuid().as_raw()));
    let mut cands = vec![(PathBuf::from("/run/mpool"), 0o755)];
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
        cands.push((PathBuf::from(x).join("mpool"), 0o700));
    }
    cands.push((tmp.clone(), 0o700));
    for (c, mode) in &cands {
        let exists = std::fs::symlink_metadata(c).is_ok();
        // The shared fallback in /tmp is checked even when not writable: a
        // directory someone else made there is an attack to report, not a
        // candidate to pass over silently.
        if exists && *c != tmp && rustix::fs::access(c, rustix::fs::Access::WRITE_OK).is_err() {
            continue;
        }
        if !exists && create_own_dir(c, *mode).is_err() {
            continue;
        }
        check_trusted(c, "run directory", RUNDIR_VAR)?;
        if rustix::fs::access(c, rustix::fs::Access::WRITE_OK).is_ok() {
            return Ok(c.clone());
        }
    }
    Err(Error::file(
        cands.remove(0).0,
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
            // Not through a link: an entry is a file of the run directory's own.
            if let Ok(text) = read_nofollow(&p) {
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
    let text =
        serde_json::to_string_pretty(ent).map_err(|e| Error::file(&p, std::io::Error::other(e)))?;
    replace_file(&p, &text)
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
        let _ = replace_file(
            &d.join(format!("{uuid}.pid")),
            &std::process::id().to_string(),
        );
    }
}

/// Which process holds a pool open, if recorded and still alive.
pub(crate) fn read_holder(uuid: &str) -> Option<u32> {
    let d = run_dir().ok()?;
    let pid: u32 = read_nofollow(&d.join(format!("{uuid}.pid")))
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

/// Write a file of the run directory (replaced atomically).
pub(crate) fn write_entry_file(file: &str, text: &str) -> Result<()> {
    replace_file(&run_dir()?.join(file), text)
}

/// Read a file of the run directory (never through a link).
pub(crate) fn read_entry_file(file: &str) -> Result<String> {
    let p = run_dir()?.join(file);
    read_nofollow(&p).map_err(|e| Error::file(&p, e))
}

/// Remove a file of the run directory (no error when absent).
pub(crate) fn remove_entry_file(file: &str) -> Result<()> {
    let p = run_dir()?.join(file);
    match std::fs::remove_file(&p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::file(&p, e)),
        _ => Ok(()),
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

const CONFIG_VAR: &str = "MPOOL_CONFIG";

/// The device list, checked: it and its directory (where they exist) must
/// be owned by the caller or root and writable by nobody else, and the list
/// must not be a symbolic link: anyone who could write it could name devices
/// for `scan` to activate.
fn trusted_config() -> Result<PathBuf> {
    let cfg = config_path();
    if let Some(d) = cfg.parent().filter(|d| !d.as_os_str().is_empty()) {
        if std::fs::symlink_metadata(d).is_ok() {
            check_trusted(d, "device list directory", CONFIG_VAR)?;
        }
    }
    if std::fs::symlink_metadata(&cfg).is_ok() {
        check_trusted(&cfg, "device list", CONFIG_VAR)?;
    }
    Ok(cfg)
}

/// The device list's text (empty when there is none).
fn read_config() -> Result<(PathBuf, String)> {
    let cfg = trusted_config()?;
    match read_nofollow(&cfg) {
        Ok(t) => Ok((cfg, t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((cfg, String::new())),
        Err(e) => Err(Error::file(&cfg, e)),
    }
}

/// Open the device list to append to it, creating it (and its directory).
fn append_config() -> Result<(PathBuf, std::fs::File)> {
    let cfg = trusted_config()?;
    if let Some(d) = cfg.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_own_dir(d, 0o755).map_err(|e| Error::file(d, e))?;
    }
    let f = open_nofollow(&cfg, std::fs::OpenOptions::new().create(true).append(true))
        .map_err(|e| Error::file(&cfg, e))?;
    Ok((cfg, f))
}

/// The exclusive lock that serialises changes to the device list: held
/// around every read-modify-write (`forget_paths`) and every append
/// (`remember_paths`, `remember_node`), so a line appended meanwhile is not
/// lost by a rewrite that read the list before it. Released on drop.
struct ConfigLock(#[allow(dead_code)] std::fs::File);

/// Take the device list's lock, waiting for it: an exclusive `flock` on the
/// list's directory (trusted like the list, created if needed, opened
/// without following a link). The directory, not a lock file beside the
/// list: nothing is left behind there, so whoever removes the list (the
/// demo, a user) can remove the directory too.
fn lock_config() -> Result<ConfigLock> {
    use std::os::unix::fs::OpenOptionsExt;
    let cfg = trusted_config()?;
    let dir = match cfg.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => {
            create_own_dir(d, 0o755).map_err(|e| Error::file(d, e))?;
            d.to_path_buf()
        }
        None => PathBuf::from("."),
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::DIRECTORY).bits() as i32)
        .open(&dir)
        .map_err(|e| Error::file(&dir, e))?;
    check_trusted(&dir, "device list directory", CONFIG_VAR)?;
    f.lock().map_err(|e| Error::file(&dir, e))?;
    Ok(ConfigLock(f))
}

/// Device paths listed in the configuration file (comments with `#`).
pub fn known_paths() -> Result<Vec<PathBuf>> {
    let (_, text) = read_config()?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect())
}

/// A path as the list records it: canonical, or (for a file that is gone)
/// absolute.
fn listed_form(p: &Path) -> PathBuf {
    std::fs::canonicalize(p)
        .or_else(|_| std::path::absolute(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

/// Add paths to the list (absolute, deduplicated). Returns the paths it
/// added (those not listed before), so a failed `create` can take them out.
pub fn remember_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let known = known_paths()?;
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
    // Check again under the lock: another process may have added some.
    let _lock = lock_config()?;
    let known = known_paths()?;
    add.retain(|p| !known.contains(p));
    if add.is_empty() {
        return Ok(add);
    }
    let (cfg, mut f) = append_config()?;
    for p in &add {
        writeln!(f, "{}", p.display()).map_err(|e| Error::file(&cfg, e))?;
    }
    Ok(add)
}

/// Remove paths (and the owner records of device nodes at them) from the
/// list. Returns the paths that were listed, as listed.
pub fn forget_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let drop: Vec<PathBuf> = paths.iter().map(|p| listed_form(p)).collect();
    // Nothing to take out: no lock needed (nor a writable directory).
    let (_, text) = read_config()?;
    if drop_lines(&text, &drop).0.len() == text.lines().count() {
        return Ok(Vec::new());
    }
    // Read, filter and replace under the lock, so a line appended meanwhile
    // is kept.
    let _lock = lock_config()?;
    let (cfg, text) = read_config()?;
    let (kept, forgotten) = drop_lines(&text, &drop);
    if kept.len() == text.lines().count() {
        return Ok(forgotten);
    }
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    replace_file(&cfg, &out)?;
    Ok(forgotten)
}

/// The list's lines without the paths in `drop` (and their node records),
/// and the paths taken out.
fn drop_lines<'a>(text: &'a str, drop: &[PathBuf]) -> (Vec<&'a str>, Vec<PathBuf>) {
    let mut forgotten = Vec::new();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            let plain = Path::new(l.trim());
            if drop.iter().any(|d| plain == d.as_path()) {
                forgotten.push(plain.to_path_buf());
                return false;
            }
            !drop
                .iter()
                .any(|d| parse_node_line(l).is_some_and(|n| n.path == *d))
        })
        .collect();
    (kept, forgotten)
}

/// The lock that makes checking and claiming a pool name one step: held
/// (exclusive) by `create`, `activate` and `rename` from their check that no
/// active pool has the name until they recorded theirs. Released on drop.
pub(crate) struct NameLock(#[allow(dead_code)] std::fs::File);

/// Take the name lock (`.names.lock` in the run directory), waiting for it.
pub(crate) fn lock_names() -> Result<NameLock> {
    let p = run_dir()?.join(".names.lock");
    let f = open_nofollow(
        &p,
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true),
    )
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
pub fn node_owner(path: &Path) -> Result<Option<NodeOwner>> {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let (_, text) = read_config()?;
    Ok(text
        .lines()
        .filter_map(parse_node_line)
        .find(|n| n.path == abs))
}

/// Record a node's original owner, unless one is recorded already (the
/// first record is the original). Returns whether it added one.
pub(crate) fn remember_node(n: &NodeOwner) -> Result<bool> {
    if node_owner(&n.path)?.is_some() {
        return Ok(false);
    }
    // Check again under the lock: the first record must stay the only one.
    let _lock = lock_config()?;
    if node_owner(&n.path)?.is_some() {
        return Ok(false);
    }
    let (cfg, mut f) = append_config()?;
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

/// The file in the run directory that keeps the checksum mismatches found
/// in a pool's mblocks, by any process (`<uuid>.damage`): one line per
/// damaged range, `ID OFFSET LEN content|table`. Every change holds an
/// exclusive lock on the file; it is rewritten in place (never replaced),
/// so that a lock holder always has the file others append to.
pub(crate) fn damage_path(uuid: &str) -> Result<PathBuf> {
    Ok(run_dir()?.join(format!("{uuid}.damage")))
}

/// Open and lock the damage file of pool `uuid` (creating it with
/// `create`; `None` when it does not exist and `create` is false). A file
/// that was removed while this waited for its lock (its record emptied)
/// is opened again.
fn damage_file(uuid: &str, create: bool) -> Result<Option<(PathBuf, std::fs::File)>> {
    use std::os::unix::fs::MetadataExt;
    let p = damage_path(uuid)?;
    loop {
        let f = match open_nofollow(
            &p,
            std::fs::OpenOptions::new()
                .create(create)
                .truncate(false)
                .read(true)
                .write(true),
        ) {
            Ok(f) => f,
            Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::file(&p, e)),
        };
        f.lock().map_err(|e| Error::file(&p, e))?;
        if f.metadata().map_err(|e| Error::file(&p, e))?.nlink() > 0 {
            return Ok(Some((p, f)));
        }
    }
}

fn damage_line(d: &crate::Damage) -> String {
    format!(
        "{} {} {} {}\n",
        d.id,
        d.offset,
        d.len,
        if d.table { "table" } else { "content" }
    )
}

fn parse_damage(text: &str) -> Vec<crate::Damage> {
    let mut out: Vec<crate::Damage> = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let [id, off, len, what] = f.as_slice() else {
            continue;
        };
        let (Ok(id), Ok(offset), Ok(len)) = (id.parse(), off.parse(), len.parse()) else {
            continue;
        };
        let d = crate::Damage {
            id,
            offset,
            len,
            table: *what == "table",
        };
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

/// Add a checksum mismatch to pool `uuid`'s record (once).
pub(crate) fn record_damage(uuid: &str, d: &crate::Damage) -> Result<()> {
    use std::io::{Read, Seek};
    let Some((p, mut f)) = damage_file(uuid, true)? else {
        return Ok(());
    };
    let mut text = String::new();
    f.read_to_string(&mut text)
        .map_err(|e| Error::file(&p, e))?;
    if parse_damage(&text).contains(d) {
        return Ok(());
    }
    f.seek(std::io::SeekFrom::End(0))
        .and_then(|_| f.write_all(damage_line(d).as_bytes()))
        .map_err(|e| Error::file(&p, e))
}

/// The checksum mismatches recorded for pool `uuid` (none when nothing
/// was recorded or the run directory cannot be read).
pub(crate) fn read_damage(uuid: &str) -> Vec<crate::Damage> {
    damage_path(uuid)
        .ok()
        .and_then(|p| read_nofollow(&p).ok())
        .map_or_else(Vec::new, |t| parse_damage(&t))
}

/// Replace pool `uuid`'s record with the entries `keep` leaves of it, and
/// `add`: what a full scrub found, or the record less a deleted mblock's
/// ranges. An empty record is removed.
pub(crate) fn rewrite_damage(
    uuid: &str,
    keep: impl Fn(&crate::Damage) -> bool,
    add: &[crate::Damage],
) -> Result<()> {
    use std::io::{Read, Seek};
    let Some((p, mut f)) = damage_file(uuid, !add.is_empty())? else {
        return Ok(()); // no record, and nothing to add
    };
    let mut text = String::new();
    f.read_to_string(&mut text)
        .map_err(|e| Error::file(&p, e))?;
    let mut all: Vec<crate::Damage> = parse_damage(&text).into_iter().filter(keep).collect();
    for d in add {
        if !all.contains(d) {
            all.push(*d);
        }
    }
    if all.is_empty() {
        // Under the lock: whoever waits for it finds the file unlinked
        // and opens (creates) it again.
        return std::fs::remove_file(&p).map_err(|e| Error::file(&p, e));
    }
    let out: String = all.iter().map(damage_line).collect();
    f.set_len(0)
        .and_then(|()| f.seek(std::io::SeekFrom::Start(0)))
        .and_then(|_| f.write_all(out.as_bytes()))
        .map_err(|e| Error::file(&p, e))
}

/// Errors a pool's readers and writers met since it was activated, by any
/// process (`<uuid>.errors` in the run directory, JSON; `mpool status`
/// shows them). Device read and write errors, and checksum mismatches
/// (every one, where `<uuid>.damage` keeps each damaged range once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    /// When counting began: the pool's activation (seconds since the epoch).
    pub since: u64,
    /// Device errors while reading object data.
    pub read: u64,
    /// Device errors while writing or committing object data.
    pub write: u64,
    /// Reads refused for a checksum mismatch.
    pub checksum: u64,
}

/// Which count an error goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    Read,
    Write,
    Checksum,
}

/// Count one error of pool `uuid` (best effort: a run directory that
/// cannot be written costs the count, never the caller's result). The
/// counts restart when the pool was activated after they began.
pub(crate) fn count_error(uuid: &str, kind: ErrorKind) {
    let Ok(dir) = run_dir() else { return };
    let p = dir.join(format!("{uuid}.errors"));
    let lock_path = dir.join(format!("{uuid}.errors.lock"));
    let Ok(lock) = open_nofollow(
        &lock_path,
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true),
    ) else {
        return;
    };
    if lock.lock().is_err() {
        return;
    }
    let activated = find_active(uuid).ok().flatten().map_or(0, |e| e.activated);
    let mut c: ErrorCounts = read_nofollow(&p)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    if c.since < activated {
        c = ErrorCounts {
            since: activated,
            ..ErrorCounts::default()
        };
    }
    match kind {
        ErrorKind::Read => c.read += 1,
        ErrorKind::Write => c.write += 1,
        ErrorKind::Checksum => c.checksum += 1,
    }
    if let Ok(text) = serde_json::to_string(&c) {
        let _ = replace_file(&p, &text);
    }
}

/// The error counts of pool `uuid` since its activation (zero when none
/// were recorded, or they predate the activation).
pub fn error_counts(uuid: &str) -> ErrorCounts {
    let Ok(dir) = run_dir() else {
        return ErrorCounts::default();
    };
    let activated = find_active(uuid).ok().flatten().map_or(0, |e| e.activated);
    let c: ErrorCounts = read_nofollow(&dir.join(format!("{uuid}.errors")))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    if c.since < activated {
        ErrorCounts {
            since: activated,
            ..ErrorCounts::default()
        }
    } else {
        c
    }
}

/// Forget the error counts of pool `uuid` (deactivation: they count per
/// activation). Best effort.
pub(crate) fn clear_errors(uuid: &str) {
    if let Ok(dir) = run_dir() {
        let _ = std::fs::remove_file(dir.join(format!("{uuid}.errors")));
    }
}

/// Remove every record a pool left in the run directory (its checksum
/// damage, error counts, last check, live figures), once the pool is
/// destroyed. Best effort.
pub(crate) fn remove_pool_files(uuid: &str) {
    if let Ok(dir) = run_dir() {
        for ext in ["damage", "errors", "errors.lock", "check", "live"] {
            let _ = std::fs::remove_file(dir.join(format!("{uuid}.{ext}")));
        }
    }
}
