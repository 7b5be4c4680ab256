//! What `mpool get`/`set` show and change: [`PoolProps`], [`DeviceProps`],
//! [`ClassUsage`], properties by name, health, and the mode parser.

use super::create::check_id;
use super::options::SB_ZONES;
use super::{lock, Pool};
use crate::admin::ownership::apply_ownership;
use crate::catalog::Catalog;
use crate::dev::DeviceKind;
use crate::error::{Error, PoolError, Result};
use crate::format::superblock::{validate_label, MediaClass, Superblock};
use serde::Serialize;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// Space of one media class.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ClassUsage {
    /// The class.
    pub class: MediaClass,
    /// Zone (mblock) size (`mblock_size` in JSON, as everywhere).
    #[serde(rename = "mblock_size", alias = "zone_size")]
    pub zone_size: u64,
    /// Device bytes.
    pub size: u64,
    /// Zones that can hold objects (excludes reserved zones).
    pub zones: u64,
    /// Bytes in use (objects and pool metadata).
    pub used: u64,
    /// Bytes held back as spare.
    pub spare: u64,
    /// Bytes that can still be allocated.
    pub free: u64,
}

/// A metadata container that could not be replayed (see [`Pool::damaged_mdcs`]).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DamagedMdcInfo {
    /// MDC number.
    pub mdc: u8,
    /// What is wrong with it.
    pub reason: String,
    /// Objects its readable records name; they cannot be read while it is damaged.
    pub objects: Vec<crate::objid::ObjectId>,
}

/// Properties of a pool, as `mpool get` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct PoolProps {
    /// Name.
    pub name: String,
    /// UUID.
    pub uuid: String,
    /// Label.
    pub label: String,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Mode, octal text.
    pub mode: String,
    /// Spare percentage of the capacity class.
    pub spare_capacity: u8,
    /// Spare percentage of the staging class.
    pub spare_staging: u8,
    /// Superblock generation.
    pub generation: u64,
    /// On-media format version (docs/format.md, "Version history").
    pub format_version: u16,
    /// Creation time (seconds since the epoch).
    pub ctime: u64,
    /// Health: `ok`, or what is wrong.
    pub health: String,
    /// Committed objects (mblocks, mlogs, MDCs), when the metadata was read.
    pub objects: Option<u64>,
    /// Usage per class.
    pub classes: Vec<ClassUsage>,
    /// Member devices.
    pub devices: Vec<DeviceProps>,
}

/// One member device, as `mpool list -v` and `get` show it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceProps {
    /// Path (or `<memory>`).
    pub path: String,
    /// Class.
    pub class: MediaClass,
    /// File or block device.
    pub kind: DeviceKind,
    /// Bytes.
    pub size: u64,
    /// Logical sector size.
    pub sector: u32,
    /// Whether I/O bypasses the page cache.
    pub direct: bool,
    /// I/O engine.
    pub engine: String,
    /// Device UUID.
    pub uuid: String,
    /// A file device: bytes its filesystem has allocated to it
    /// (`st_blocks`); less than `size` for a sparse file.
    pub allocated: Option<u64>,
    /// A file device: bytes free on its filesystem (`statvfs`, as this
    /// process may use them).
    pub fs_free: Option<u64>,
    /// A sparse file device whose filesystem cannot hold the free space of
    /// its media class: the bytes missing (the class' free bytes, at most
    /// the file's unallocated bytes, less `fs_free`). Writes of objects
    /// may fail for want of space before the pool is full (the pool
    /// metadata is allocated at create and keeps working).
    pub sparse_shortfall: Option<u64>,
}

/// Names of the settable properties.
pub const SETTABLE: &[&str] = &[
    "uid",
    "gid",
    "mode",
    "label",
    "spare_capacity",
    "spare_staging",
];
/// Names of every property `get` knows.
pub const PROPERTIES: &[&str] = &[
    "name",
    "uuid",
    "label",
    "uid",
    "gid",
    "mode",
    "spare_capacity",
    "spare_staging",
    "generation",
    "format_version",
    "ctime",
    "health",
    "size",
    "used",
    "free",
    "mblock_size_capacity",
    "mblock_size_staging",
    "objects",
    "devices",
];

/// Older names of properties, still accepted by [`Pool::get`].
pub const PROPERTY_ALIASES: &[(&str, &str)] = &[
    ("mblocksize_capacity", "mblock_size_capacity"),
    ("mblocksize_staging", "mblock_size_staging"),
];

/// A property's current name (older names are aliases).
pub fn canonical_property(name: &str) -> &str {
    PROPERTY_ALIASES
        .iter()
        .find(|(old, _)| *old == name)
        .map_or(name, |(_, new)| new)
}

/// Parse a permission mode in octal: `0660`, `660` or `0o660`; refuses
/// anything that is not octal or is above `7777`.
pub fn parse_mode(s: &str) -> Result<u32> {
    let bad = |why: &str| Error::InvalidArgument(format!("bad mode '{s}' ({why})"));
    let m =
        u32::from_str_radix(s.trim_start_matches("0o"), 8).map_err(|_| bad("octal, e.g. 0660"))?;
    if m > 0o7777 {
        return Err(bad("octal permission bits, at most 7777"));
    }
    Ok(m)
}

/// A file's allocated bytes and the bytes free on its filesystem (each
/// none when it cannot be read).
fn file_space(path: &std::path::Path) -> (Option<u64>, Option<u64>) {
    let allocated = std::fs::metadata(path).ok().map(|m| m.blocks() * 512);
    let free = rustix::fs::statvfs(path)
        .ok()
        .map(|st| st.f_bavail.saturating_mul(st.f_frsize));
    (allocated, free)
}

impl Pool {
    /// Space per media class.
    pub fn usage(&self) -> Vec<ClassUsage> {
        let sb = lock(&self.inner.sb).clone();
        lock(&self.inner.members)
            .iter()
            .map(|m| {
                let (zones, used_z, free_z, spare_z) =
                    match self.inner.pmd.as_ref().and_then(|p| p.space(m.class)) {
                        Some(x) => x,
                        None => {
                            // Inspecting only: what the superblock tells (the metadata is not replayed).
                            let zones = (m.dev.size() / m.zone_size).saturating_sub(SB_ZONES);
                            let used_z = if m.class == MediaClass::Capacity {
                                2 * u64::from(sb.mdc0.zones)
                            } else {
                                0
                            };
                            (
                                zones,
                                used_z,
                                zones.saturating_sub(used_z),
                                zones * u64::from(sb.spare_pct[m.class.index()]) / 100,
                            )
                        }
                    };
                ClassUsage {
                    class: m.class,
                    zone_size: m.zone_size,
                    size: m.dev.size(),
                    zones,
                    used: used_z * m.zone_size,
                    spare: spare_z * m.zone_size,
                    free: free_z.saturating_sub(spare_z) * m.zone_size,
                }
            })
            .collect()
    }

    /// Damaged superblock copies, as `device superblock copy N: why`.
    pub(crate) fn superblock_damage(&self) -> Vec<String> {
        let members = lock(&self.inner.members);
        members
            .iter()
            .flat_map(|m| {
                let name = m
                    .path
                    .as_ref()
                    .map_or_else(|| m.dev.info().name(), |p| p.display().to_string());
                m.damaged
                    .iter()
                    .map(move |(i, why)| format!("{name} superblock copy {i}: {why}"))
            })
            .collect()
    }

    /// Health: `ok`, or `degraded (...)` saying what is wrong: damaged
    /// superblock copies, the checksum mismatches found in mblock content
    /// by any process ([`Pool::checksum_damage`]), as `N checksum
    /// error(s)`, and metadata containers that could not be replayed.
    pub fn health(&self) -> String {
        let mut bad = self.superblock_damage();
        let n = self.checksum_damage().len();
        if n > 0 {
            bad.push(format!("{n} checksum error(s)"));
        }
        for d in self.damaged_mdcs() {
            bad.push(format!(
                "MDC{} damaged: {}; {}",
                d.mdc,
                d.reason,
                match d.objects.len() {
                    0 => "its objects are unknown".to_string(),
                    n => format!(
                        "{n} known object(s) unreadable: {}",
                        d.objects
                            .iter()
                            .take(8)
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(" ")
                            + if n > 8 { " ..." } else { "" }
                    ),
                }
            ));
        }
        if bad.is_empty() {
            "ok".into()
        } else {
            format!("degraded ({})", bad.join("; "))
        }
    }

    /// Metadata containers that could not be replayed when the pool was
    /// opened: the pool is open degraded (objects of the other MDCs are
    /// readable; the pool takes no changes).
    pub fn damaged_mdcs(&self) -> Vec<DamagedMdcInfo> {
        self.inner.pmd.as_ref().map_or_else(Vec::new, |p| {
            p.damaged()
                .iter()
                .map(|d| DamagedMdcInfo {
                    mdc: d.index,
                    reason: d.reason.clone(),
                    objects: d.known.clone(),
                })
                .collect()
        })
    }

    /// Every property.
    pub fn props(&self) -> PoolProps {
        let sb = lock(&self.inner.sb).clone();
        let classes = self.usage();
        let devices = lock(&self.inner.members)
            .iter()
            .map(|m| {
                let i = m.dev.info();
                let (allocated, fs_free) = match (&m.path, i.kind) {
                    (Some(p), DeviceKind::File) => file_space(p),
                    _ => (None, None),
                };
                let class_free = classes
                    .iter()
                    .find(|c| c.class == m.class)
                    .map_or(0, |c| c.free);
                let sparse_shortfall = allocated.zip(fs_free).and_then(|(a, f)| {
                    let unallocated = i.size.saturating_sub(a);
                    let short = class_free.min(unallocated).saturating_sub(f);
                    (short > 0).then_some(short)
                });
                DeviceProps {
                    path: m
                        .path
                        .as_ref()
                        .map_or_else(|| i.name(), |p| p.display().to_string()),
                    class: m.class,
                    kind: i.kind,
                    size: i.size,
                    sector: i.logical_sector,
                    direct: i.direct,
                    engine: i.engine.to_string(),
                    uuid: m.dev_uuid.to_string(),
                    allocated,
                    fs_free,
                    sparse_shortfall,
                }
            })
            .collect();
        PoolProps {
            name: sb.name.clone(),
            uuid: sb.pool_uuid.to_string(),
            label: sb.label.clone(),
            uid: sb.uid,
            gid: sb.gid,
            mode: format!("{:04o}", sb.mode),
            spare_capacity: sb.spare_pct[0],
            spare_staging: sb.spare_pct[1],
            generation: sb.generation,
            format_version: sb.version,
            ctime: sb.ctime,
            health: self.health(),
            objects: self.inner.pmd.as_ref().map(Catalog::count),
            classes,
            devices,
        }
    }

    /// One property's value as text.
    pub fn get(&self, prop: &str) -> Result<String> {
        let prop = canonical_property(prop);
        let p = self.props();
        let class = |c: MediaClass| p.classes.iter().find(|u| u.class == c).cloned();
        let sum = |f: fn(&ClassUsage) -> u64| p.classes.iter().map(f).sum::<u64>().to_string();
        Ok(match prop {
            "name" => p.name,
            "uuid" => p.uuid,
            "label" => p.label,
            "uid" => p.uid.to_string(),
            "gid" => p.gid.to_string(),
            "mode" => p.mode,
            "spare_capacity" => p.spare_capacity.to_string(),
            "spare_staging" => p.spare_staging.to_string(),
            "generation" => p.generation.to_string(),
            "format_version" => p.format_version.to_string(),
            "ctime" => p.ctime.to_string(),
            "health" => p.health,
            "size" => sum(|u| u.size),
            "used" => sum(|u| u.used),
            "free" => sum(|u| u.free),
            "mblock_size_capacity" => {
                class(MediaClass::Capacity).map_or_else(|| "-".into(), |u| u.zone_size.to_string())
            }
            "mblock_size_staging" => {
                class(MediaClass::Staging).map_or_else(|| "-".into(), |u| u.zone_size.to_string())
            }
            "objects" => p.objects.map_or_else(|| "-".into(), |n| n.to_string()),
            "devices" => p
                .devices
                .iter()
                .map(|d| format!("{}:{}", d.class, d.path))
                .collect::<Vec<_>>()
                .join(","),
            other => {
                return Err(PoolError::UnknownProperty {
                    name: other.into(),
                    known: PROPERTIES.join(", "),
                }
                .into())
            }
        })
    }

    /// Set properties (`uid`, `gid`, `mode`, `label`, `spare_capacity`,
    /// `spare_staging`). All or nothing: all are checked before any is
    /// applied (a uid or gid of `u32::MAX`, chown's "no change", is
    /// refused); ownership is applied to every member device first, and
    /// only then is the superblock written. If a chown or chmod fails, the
    /// devices changed so far get their owner and mode back and no
    /// superblock is written. If the superblock write fails, the owners and
    /// modes are put back too; the superblock is written one member at a
    /// time, so a member written before the failure may hold the new values
    /// (a later `set` or open makes the members agree again).
    pub fn set(&self, props: &[(String, String)]) -> Result<()> {
        let mut sb = lock(&self.inner.sb).clone();
        for (k, v) in props {
            let bad = |why: &str| Error::InvalidArgument(format!("{k}={v}: {why}"));
            match k.as_str() {
                "uid" => {
                    sb.uid = v.parse().map_err(|_| bad("not a numeric uid"))?;
                    check_id("uid", Some(sb.uid))?;
                }
                "gid" => {
                    sb.gid = v.parse().map_err(|_| bad("not a numeric gid"))?;
                    check_id("gid", Some(sb.gid))?;
                }
                "mode" => sb.mode = parse_mode(v)?,
                "label" => {
                    validate_label(v).map_err(|e| bad(&e))?;
                    sb.label = v.clone();
                }
                "spare_capacity" | "spare_staging" => {
                    let pct: u8 = v
                        .trim_end_matches('%')
                        .parse()
                        .map_err(|_| bad("not a percentage 0..99"))?;
                    if pct > 99 {
                        return Err(bad("not a percentage 0..99"));
                    }
                    sb.spare_pct[usize::from(k == "spare_staging")] = pct;
                }
                other if PROPERTIES.contains(&other) => {
                    return Err(Error::InvalidArgument(format!(
                        "property '{other}' is read-only (settable: {})",
                        SETTABLE.join(", ")
                    )))
                }
                other => {
                    return Err(PoolError::UnknownProperty {
                        name: other.into(),
                        known: SETTABLE.join(", "),
                    }
                    .into())
                }
            }
        }
        let (uid, gid, mode, spare) = (sb.uid, sb.gid, sb.mode, sb.spare_pct);
        if self.inner.read_only {
            return Err(PoolError::ReadOnly(self.inner.name.clone()).into());
        }
        // The devices first: a refused chown or chmod leaves the superblock
        // as it was, and the devices changed so far are put back.
        let mut changed: Vec<(PathBuf, Metadata)> = Vec::new();
        let applied = (|| -> Result<()> {
            for p in self.device_paths() {
                let m = std::fs::metadata(&p).map_err(|e| Error::file(&p, e))?;
                changed.push((p.clone(), m));
                apply_ownership(&p, uid, gid, mode)?;
            }
            Ok(())
        })();
        let written = applied.and_then(|()| {
            self.update_sb(move |s| {
                *s = Superblock {
                    generation: s.generation,
                    members: s.members.clone(),
                    ..sb
                };
                Ok(())
            })
        });
        if let Err(e) = written {
            for (p, m) in changed.iter().rev() {
                let _ = apply_ownership(p, m.uid(), m.gid(), m.mode());
            }
            return Err(e);
        }
        if let Some(p) = self.inner.pmd.as_ref() {
            for c in MediaClass::ALL {
                p.set_spare(c, spare[c.index()]);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_mode;

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0660").ok(), Some(0o660));
        assert_eq!(parse_mode("755").ok(), Some(0o755));
        assert_eq!(parse_mode("0o7777").ok(), Some(0o7777));
        for bad in ["999", "17777", "8", "rw", ""] {
            let e = parse_mode(bad).err().map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|e| e.contains("bad mode")),
                "{bad}: {e:?}"
            );
        }
    }
}
