//! Finding pools: read superblocks from block devices and known files.
//!
//! The block devices are those of `/sys/class/block`, narrowed by
//! `$MPOOL_SCAN_DEVICES` ([`ScanDevices`]): `none` for none, or
//! `:`-separated devices (an entry ending in a digit names one path only)
//! and path prefixes. Tests and tools set it so they
//! never see, let alone activate, pools of other users of the machine.

use super::rundir;
use crate::dev::{DevError, FileDevice, OpenOptions};
use crate::error::Result;
use crate::format::superblock::{MediaClass, Member};
use crate::io::EngineChoice;
use crate::superblock;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A device found holding an mpool superblock.
#[derive(Debug, Clone, Serialize)]
pub struct ScannedDevice {
    /// Path.
    pub path: PathBuf,
    /// Media class.
    pub class: MediaClass,
    /// Device UUID.
    pub uuid: String,
    /// Superblock generation.
    pub generation: u64,
    /// `ok`, or which copy is damaged.
    pub health: String,
}

/// One member of a pool found on more than one device: all but one are
/// copies (a backup image, a cloned LUN). A pool with duplicates is neither
/// activated nor opened.
#[derive(Debug, Clone, Serialize)]
pub struct DuplicateMember {
    /// The member's device UUID.
    pub uuid: String,
    /// Its media class.
    pub class: MediaClass,
    /// Every device carrying it.
    pub paths: Vec<PathBuf>,
}

/// A device with the mpool superblock magic but no valid superblock copy.
#[derive(Debug, Clone, Serialize)]
pub struct DamagedDevice {
    /// Path.
    pub path: PathBuf,
    /// What is wrong with each copy.
    pub why: String,
}

/// A pool found by scanning.
#[derive(Debug, Clone, Serialize)]
pub struct ScannedPool {
    /// Name (from the newest superblock).
    pub name: String,
    /// UUID.
    pub uuid: String,
    /// Devices found.
    pub devices: Vec<ScannedDevice>,
    /// Members listed in the superblock but not found.
    pub missing: Vec<Member>,
    /// Members found on more than one device (copies).
    pub duplicates: Vec<DuplicateMember>,
    /// Recorded in the run directory.
    pub active: bool,
}

/// What a scan saw.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ScanReport {
    /// Pools found.
    pub pools: Vec<ScannedPool>,
    /// Devices and files examined.
    pub examined: usize,
    /// Paths that could not be read, with why (only paths named explicitly
    /// or listed in the configuration; unreadable block devices are counted).
    pub unreadable: Vec<(PathBuf, String)>,
    /// Block devices skipped because they could not be opened (busy, no permission).
    pub skipped_block_devices: usize,
    /// Devices with the mpool magic whose superblock copies are all damaged.
    pub damaged: Vec<DamagedDevice>,
}

impl ScannedPool {
    /// The error that refuses this pool when one of its members is on
    /// more than one device.
    pub fn duplicate_error(&self) -> Option<crate::error::Error> {
        let d = self.duplicates.first()?;
        let path = |i: usize| d.paths.get(i).map(|p| p.display().to_string());
        Some(
            crate::error::PoolError::DuplicateMember {
                pool: self.name.clone(),
                member: d.uuid.parse().unwrap_or_default(),
                class: d.class,
                first: path(0).unwrap_or_default(),
                second: path(1).unwrap_or_default(),
            }
            .into(),
        )
    }
}

/// The variable that restricts which block devices [`scan`] looks at.
pub const SCAN_DEVICES_VAR: &str = "MPOOL_SCAN_DEVICES";

/// Which block devices a scan looks at, from `$MPOOL_SCAN_DEVICES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanDevices {
    /// Every block device (the variable unset or empty).
    All,
    /// No block device (`none`); paths named and the device list still are.
    None,
    /// Only these entries (`:`-separated absolute paths): an entry that is
    /// a block device (or a link to one, as in `/dev/disk/by-id/`) names
    /// that device only; so does an entry ending in a digit, even while no
    /// such device exists (`/dev/loop1`, detached, never means `/dev/loop10`);
    /// any other entry is a prefix of device paths (`/dev/loop` for every
    /// loop device, `/dev/nvme0n` for every namespace of `nvme0`).
    Only(Vec<PathBuf>),
}

impl ScanDevices {
    /// Parse a value of `$MPOOL_SCAN_DEVICES`: unset or empty for every
    /// block device, `none` for none, else `:`-separated absolute paths
    /// (empty entries ignored).
    pub fn parse(value: Option<&std::ffi::OsStr>) -> Result<Self> {
        use std::os::unix::ffi::OsStrExt;
        let Some(v) = value.filter(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace)) else {
            return Ok(Self::All);
        };
        if v.as_bytes().trim_ascii() == b"none" {
            return Ok(Self::None);
        }
        let mut out = Vec::new();
        for e in v.as_bytes().split(|b| *b == b':') {
            if e.is_empty() {
                continue;
            }
            let p = PathBuf::from(std::ffi::OsStr::from_bytes(e));
            if !p.is_absolute() {
                return Err(crate::error::Error::InvalidArgument(format!(
                    "{SCAN_DEVICES_VAR}: '{}' is not an absolute path (give ':'-separated \
                     device paths or prefixes such as /dev/loop, or 'none')",
                    p.display()
                )));
            }
            out.push(p);
        }
        Ok(if out.is_empty() {
            Self::All
        } else {
            Self::Only(out)
        })
    }

    /// From the environment.
    pub fn from_env() -> Result<Self> {
        Self::parse(std::env::var_os(SCAN_DEVICES_VAR).as_deref())
    }

    /// Whether the block device `dev` (a `/dev/NAME` path) is looked at.
    /// `resolve` gives what an entry names when it is a block device (its
    /// canonical path), `None` otherwise (then an entry ending in a digit
    /// names that exact path, and any other entry is a prefix).
    pub fn wants(&self, dev: &Path, resolve: impl Fn(&Path) -> Option<PathBuf>) -> bool {
        use std::os::unix::ffi::OsStrExt;
        match self {
            Self::All => true,
            Self::None => false,
            Self::Only(entries) => entries.iter().any(|e| match resolve(e) {
                Some(target) => target == dev || resolve(dev).is_some_and(|d| d == target),
                // A device's name, not a prefix, even while it is absent.
                None if e
                    .as_os_str()
                    .as_bytes()
                    .last()
                    .is_some_and(u8::is_ascii_digit) =>
                {
                    dev == e.as_path()
                }
                None => dev
                    .as_os_str()
                    .as_bytes()
                    .starts_with(e.as_os_str().as_bytes()),
            }),
        }
    }
}

/// The canonical path of `p` if it is a block device.
fn block_device_target(p: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    let c = std::fs::canonicalize(p).ok()?;
    std::fs::metadata(&c)
        .ok()
        .filter(|m| m.file_type().is_block_device())
        .map(|_| c)
}

/// Block devices listed in /sys/class/block with a non-zero size, as far
/// as `$MPOOL_SCAN_DEVICES` lets a scan look at them ([`ScanDevices`]).
pub fn block_devices() -> Result<Vec<PathBuf>> {
    let filter = ScanDevices::from_env()?;
    if filter == ScanDevices::None {
        return Ok(Vec::new());
    }
    let Ok(rd) = std::fs::read_dir("/sys/class/block") else {
        return Ok(Vec::new());
    };
    let mut out: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("size"))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .is_some_and(|n| n > 0)
        })
        .map(|e| Path::new("/dev").join(e.file_name()))
        .filter(|p| p.exists())
        .filter(|p| filter.wants(p, block_device_target))
        .collect();
    out.sort();
    Ok(out)
}

/// Scan block devices (those `$MPOOL_SCAN_DEVICES` allows), `extra` paths
/// and the configured device list.
pub fn scan(extra: &[PathBuf]) -> Result<ScanReport> {
    let mut rep = ScanReport::default();
    let mut seen = std::collections::HashSet::new();
    let mut cands: Vec<(PathBuf, bool)> = Vec::new();
    for p in extra.iter().cloned().chain(rundir::known_paths()?) {
        cands.push((p, true));
    }
    for p in block_devices()? {
        cands.push((p, false));
    }
    let active = rundir::list_active()?;
    let mut pools: BTreeMap<String, ScannedPool> = BTreeMap::new();
    let mut newest: BTreeMap<String, crate::format::superblock::Superblock> = BTreeMap::new();
    for (path, named) in cands {
        let canon = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if !seen.insert(canon.clone()) {
            continue;
        }
        rep.examined += 1;
        let o = OpenOptions {
            read_only: true,
            create_size: None,
            engine: EngineChoice::Sync,
            direct: true,
        };
        let dev = match FileDevice::open(&canon, &o) {
            Ok(d) => d,
            Err(e) => {
                if named {
                    rep.unreadable.push((path, e.to_string()));
                } else {
                    rep.skipped_block_devices += 1;
                }
                continue;
            }
        };
        let r = match superblock::read(&dev) {
            Ok(r) => r,
            Err(DevError::OutOfRange { .. }) => continue,
            Err(e) => {
                if named {
                    rep.unreadable.push((path, e.to_string()));
                } else {
                    rep.skipped_block_devices += 1;
                }
                continue;
            }
        };
        let Some(s) = r.best().cloned() else {
            if r.has_magic() {
                rep.damaged.push(DamagedDevice {
                    path: canon,
                    why: r
                        .copies
                        .iter()
                        .enumerate()
                        .filter_map(|(i, c)| c.as_ref().err().map(|e| format!("copy {i}: {e}")))
                        .collect::<Vec<_>>()
                        .join("; "),
                });
            }
            continue;
        };
        let damaged = r.damaged();
        let health = if damaged.is_empty() {
            "ok".to_string()
        } else {
            damaged
                .iter()
                .map(|(i, w)| format!("copy {i}: {w}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let key = s.pool_uuid.to_string();
        let entry = pools.entry(key.clone()).or_insert_with(|| ScannedPool {
            name: s.name.clone(),
            uuid: key.clone(),
            devices: Vec::new(),
            missing: Vec::new(),
            duplicates: Vec::new(),
            active: active.iter().any(|a| a.uuid == key),
        });
        entry.devices.push(ScannedDevice {
            path: canon,
            class: s.class,
            uuid: s.dev_uuid.to_string(),
            generation: s.generation,
            health,
        });
        let n = newest.entry(key).or_insert_with(|| s.clone());
        if s.generation > n.generation {
            *n = s;
        }
    }
    for (k, p) in pools.iter_mut() {
        if let Some(n) = newest.get(k) {
            p.name = n.name.clone();
            p.missing = n
                .members
                .iter()
                .filter(|m| !p.devices.iter().any(|d| d.uuid == m.dev_uuid.to_string()))
                .copied()
                .collect();
            // Devices of the pool that the newest superblock no longer lists are leftovers.
            p.devices
                .retain(|d| n.members.iter().any(|m| m.dev_uuid.to_string() == d.uuid));
        }
        p.devices.sort_by_key(|d| d.class);
        let mut dups: Vec<DuplicateMember> = Vec::new();
        for d in &p.devices {
            if let Some(x) = dups.iter_mut().find(|x| x.uuid == d.uuid) {
                x.paths.push(d.path.clone());
            } else if p.devices.iter().filter(|e| e.uuid == d.uuid).count() > 1 {
                dups.push(DuplicateMember {
                    uuid: d.uuid.clone(),
                    class: d.class,
                    paths: vec![d.path.clone()],
                });
            }
        }
        p.duplicates = dups;
    }
    rep.pools = pools.into_values().collect();
    rep.pools.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::ScanDevices;
    use std::ffi::OsStr;
    use std::path::{Path, PathBuf};

    fn parse(v: &str) -> ScanDevices {
        ScanDevices::parse(Some(OsStr::new(v))).unwrap()
    }

    #[test]
    fn scan_devices_parsing() {
        assert_eq!(ScanDevices::parse(None).unwrap(), ScanDevices::All);
        assert_eq!(parse(""), ScanDevices::All);
        assert_eq!(parse("  "), ScanDevices::All);
        assert_eq!(parse(":"), ScanDevices::All);
        assert_eq!(parse("none"), ScanDevices::None);
        assert_eq!(parse(" none\n"), ScanDevices::None);
        assert_eq!(
            parse("/dev/loop3"),
            ScanDevices::Only(vec![PathBuf::from("/dev/loop3")])
        );
        assert_eq!(
            parse("/dev/loop3::/dev/nvme0:"),
            ScanDevices::Only(vec![
                PathBuf::from("/dev/loop3"),
                PathBuf::from("/dev/nvme0")
            ])
        );
        // Relative entries (and misspelt keywords) are refused, naming the variable.
        for bad in ["None", "loop0", "/dev/sda:sdb", "all"] {
            let e = ScanDevices::parse(Some(OsStr::new(bad))).unwrap_err();
            assert!(e.to_string().contains("MPOOL_SCAN_DEVICES"), "{bad}: {e}");
        }
    }

    #[test]
    fn scan_devices_matching() {
        // Pretend /dev/loop1 and /dev/disk/by-id/x (a link to /dev/sdb) are
        // block devices; everything else is not.
        let resolve = |p: &Path| -> Option<PathBuf> {
            match p.to_str()? {
                "/dev/loop1" | "/dev/loop10" | "/dev/sdb" => Some(p.to_path_buf()),
                "/dev/disk/by-id/x" => Some(PathBuf::from("/dev/sdb")),
                _ => None,
            }
        };
        let wants = |f: &ScanDevices, d: &str| f.wants(Path::new(d), resolve);
        assert!(wants(&ScanDevices::All, "/dev/sda"));
        assert!(!wants(&ScanDevices::None, "/dev/loop1"));
        // A device names itself only: /dev/loop1 is not a prefix of /dev/loop10.
        let one = parse("/dev/loop1");
        assert!(wants(&one, "/dev/loop1"));
        assert!(!wants(&one, "/dev/loop10"));
        assert!(!wants(&one, "/dev/sda"));
        // A link names its target.
        let link = parse("/dev/disk/by-id/x");
        assert!(wants(&link, "/dev/sdb"));
        assert!(!wants(&link, "/dev/sda"));
        // An entry ending in a digit names that path only, even while no
        // such device exists (/dev/loop2 detached): never /dev/loop20.
        let absent = parse("/dev/loop2:/dev/nvme0");
        assert!(wants(&absent, "/dev/loop2"));
        assert!(!wants(&absent, "/dev/loop20"));
        assert!(!wants(&absent, "/dev/loop21"));
        assert!(wants(&absent, "/dev/nvme0"));
        assert!(!wants(&absent, "/dev/nvme0n1p2"));
        // Anything else is a prefix.
        let loops = parse("/dev/loop:/dev/nvme0n");
        assert!(wants(&loops, "/dev/loop1"));
        assert!(wants(&loops, "/dev/loop10"));
        assert!(wants(&loops, "/dev/nvme0n1p2"));
        assert!(!wants(&loops, "/dev/nvme1n1"));
        assert!(!wants(&loops, "/dev/sda"));
    }
}
