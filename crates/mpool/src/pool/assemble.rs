//! Opening a pool: opening and locking its member devices, assembling one
//! complete pool from them, and keeping their superblocks in step (repair
//! of damaged copies, updates written to every member).

use super::options::{OpenOptions, SB_ZONES};
use super::{lock, MemberDev, Pool};
use crate::admin::rundir;
use crate::catalog::{Catalog, ClassDev, Layout};
use crate::check::CheckRepair;
use crate::dev::{Device, DeviceRef, FileDevice, OpenOptions as DevOpenOptions};
use crate::error::{Error, PoolError, Result};
use crate::format::superblock::{MediaClass, Superblock};
use crate::io::EngineChoice;
use crate::space_map::ClassMap;
use crate::superblock;
use std::fs::TryLockError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uuid::Uuid;

/// Open a member device by path (creating a sparse file of `create_size`).
pub(super) fn open_file_dev(
    path: &Path,
    create_size: Option<u64>,
    read_only: bool,
    engine: EngineChoice,
) -> Result<Arc<FileDevice>> {
    let o = DevOpenOptions {
        read_only,
        create_size,
        engine,
        direct: true,
    };
    Ok(Arc::new(FileDevice::open(path, &o)?))
}

/// Try `lock` until it succeeds, fails otherwise than by contention, or
/// the contention has a live holder recorded in the run directory (or a
/// second has passed): a lock with no live holder is taken to be one
/// whose holder exited a moment ago and whose files the kernel has not let
/// go yet. A holder that ends normally unlocks as its devices are dropped
/// (`FileDevice`'s `Drop`); one that was killed leaves that to the kernel,
/// which lets go of files used by io_uring only after the exit.
fn try_lock_settled(
    uuid: &str,
    lock: impl FnMut() -> std::result::Result<(), TryLockError>,
) -> std::result::Result<(), TryLockError> {
    retry_unheld(lock, || rundir::read_holder(uuid).is_some())
}

/// [`try_lock_settled`] with the question "is a live holder recorded?"
/// asked of `held`.
fn retry_unheld(
    mut lock: impl FnMut() -> std::result::Result<(), TryLockError>,
    held: impl Fn() -> bool,
) -> std::result::Result<(), TryLockError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        match lock() {
            Err(TryLockError::WouldBlock) if !held() && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            r => return r,
        }
    }
}

/// Take the pool lock on a member device: exclusive for writers, shared for readers.
pub(super) fn lock_member(f: &FileDevice, read_only: bool, name: &str, uuid: &Uuid) -> Result<()> {
    let r = try_lock_settled(&uuid.to_string(), || {
        if read_only {
            f.file().try_lock_shared()
        } else {
            f.file().try_lock()
        }
    });
    match r {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(PoolError::Busy {
            name: name.to_string(),
            pid: rundir::read_holder(&uuid.to_string()),
        }
        .into()),
        Err(TryLockError::Error(e)) => {
            Err(Error::file(f.info().path.clone().unwrap_or_default(), e))
        }
    }
}

/// Build an open pool from its member devices: check they form one complete
/// pool, then replay its metadata (best effort when `replay` is false:
/// inspection without a lock).
fn assemble(
    devs: Vec<(Option<PathBuf>, DeviceRef)>,
    read_only: bool,
    replay: bool,
) -> Result<Pool> {
    let mut found = Vec::new();
    for (p, d) in devs {
        let name = p
            .as_ref()
            .map_or_else(|| d.info().name(), |p| p.display().to_string());
        let r = superblock::read(d.as_ref())?;
        let Some(s) = r.best().cloned() else {
            let source = r
                .copies
                .iter()
                .find_map(|c| c.as_ref().err().cloned())
                .unwrap_or(crate::format::superblock::SuperblockError::NoMagic);
            return Err(PoolError::Superblock {
                device: name,
                source,
            }
            .into());
        };
        let damaged = r.damaged();
        found.push((p, name, d, s, damaged));
    }
    let Some((_, _, _, first, _)) = found.first() else {
        return Err(Error::InvalidArgument("no devices given".into()));
    };
    let uuid = first.pool_uuid;
    if let Some((_, n, _, s, _)) = found.iter().find(|f| f.3.pool_uuid != uuid) {
        return Err(Error::InvalidArgument(format!(
            "{n} belongs to pool '{}' ({}), not to pool '{}' ({uuid})",
            s.name, s.pool_uuid, first.name
        )));
    }
    // Two devices with one member identity (pool UUID, device UUID): one is
    // a copy of the other. Refused before anything is written to either.
    for (i, a) in found.iter().enumerate() {
        if let Some((j, b)) = found
            .iter()
            .enumerate()
            .skip(i + 1)
            .find(|(_, b)| b.3.dev_uuid == a.3.dev_uuid)
        {
            // Devices opened without a path may share a name: number them.
            let (first, second) = if a.1 == b.1 {
                (
                    format!("{} (device {i})", a.1),
                    format!("{} (device {j})", b.1),
                )
            } else {
                (a.1.clone(), b.1.clone())
            };
            return Err(PoolError::DuplicateMember {
                pool: a.3.name.clone(),
                member: a.3.dev_uuid,
                class: a.3.class,
                first,
                second,
            }
            .into());
        }
    }
    // The newest superblock of the pool speaks for it.
    let newest = found
        .iter()
        .map(|f| &f.3)
        .max_by_key(|s| s.generation)
        .cloned()
        .unwrap_or_else(|| first.clone());
    let missing = newest
        .members
        .iter()
        .filter(|m| !found.iter().any(|f| f.3.dev_uuid == m.dev_uuid))
        .count();
    if missing > 0 {
        return Err(PoolError::Incomplete {
            name: newest.name.clone(),
            missing,
        }
        .into());
    }
    // A member smaller than recorded (a truncated file, a shrunk LUN) would
    // have zones in use past its end.
    for (_, n, d, s, _) in &found {
        let joined = newest
            .members
            .iter()
            .find(|m| m.dev_uuid == s.dev_uuid)
            .map_or(0, |m| m.size);
        let recorded = s.dev_size.max(joined);
        if d.size() < recorded {
            return Err(PoolError::MemberShrunk {
                device: n.clone(),
                recorded,
                actual: d.size(),
            }
            .into());
        }
    }
    let mut members = Vec::new();
    for (p, name, d, s, mut damaged) in found {
        if s.generation != newest.generation {
            damaged.push((
                0,
                format!(
                    "superblock generation {} behind {}",
                    s.generation, newest.generation
                ),
            ));
        }
        members.push(MemberDev {
            name,
            path: p,
            dev: d,
            class: s.class,
            dev_uuid: s.dev_uuid,
            zone_size: s.zone_size,
            damaged,
        });
    }
    members.sort_by_key(|m| m.class);
    let mut classes: [Option<ClassDev>; 2] = [None, None];
    for m in &members {
        classes[m.class.index()] = Some(class_dev(
            Arc::clone(&m.dev),
            m.class,
            m.zone_size,
            newest.spare_pct[m.class.index()],
        ));
    }
    let layout = Layout {
        mdc0_zone: newest.mdc0.zone,
        mdc0_zones: newest.mdc0.zones,
    };
    let pmd = match Catalog::open(
        classes,
        layout,
        read_only,
        crate::format::Features::new(newest.version),
    ) {
        Ok(p) => Some(p),
        // Inspecting (no lock, possibly while a writer works): the metadata is
        // replayed read-only when it can be; otherwise the superblock speaks.
        Err(_) if !replay => None,
        Err(e) => return Err(e),
    };
    let pool = Pool::from_parts(newest, members, read_only, pmd);
    if !read_only {
        pool.repair_superblocks()?;
    }
    Ok(pool)
}

/// A media class of an open pool: its device, zone size and (empty) space map.
pub(super) fn class_dev(
    dev: DeviceRef,
    class: MediaClass,
    zone_size: u64,
    spare_pct: u8,
) -> ClassDev {
    let zones = u32::try_from(dev.size() / zone_size).unwrap_or(u32::MAX);
    ClassDev {
        map: ClassMap::new(class, SB_ZONES as u32, zones, spare_pct),
        dev,
        zone_size,
    }
}

impl Pool {
    /// Open an active pool by name or UUID.
    pub fn open(name_or_uuid: &str, opts: &OpenOptions) -> Result<Pool> {
        let Some(ent) = rundir::find_active(name_or_uuid)? else {
            return Err(PoolError::NotFound(name_or_uuid.to_string()).into());
        };
        Self::open_paths(&ent.devices, opts)
    }

    /// Open the pool whose member devices are `paths` (all of them).
    pub fn open_paths(paths: &[PathBuf], opts: &OpenOptions) -> Result<Pool> {
        let engine = opts.engine()?;
        let read_only = opts.read_only || opts.inspect;
        let mut canon: Vec<PathBuf> = Vec::new();
        for p in paths {
            let c = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
            if canon.contains(&c) {
                return Err(Error::InvalidArgument(format!(
                    "{} is named twice",
                    p.display()
                )));
            }
            canon.push(c);
        }
        let mut files = Vec::new();
        for p in paths {
            files.push((p.clone(), open_file_dev(p, None, read_only, engine)?));
        }
        if !opts.inspect {
            // Lock first, so that no other writer changes what we then read.
            let hint = files.iter().find_map(|(_, d)| {
                superblock::read(d.as_ref())
                    .ok()
                    .and_then(|r| r.best().cloned())
            });
            let (name, uuid) = hint.map_or_else(
                || (String::from("?"), Uuid::nil()),
                |h| (h.name, h.pool_uuid),
            );
            for (_, d) in &files {
                lock_member(d, read_only, &name, &uuid)?;
            }
        }
        let devs = files
            .into_iter()
            .map(|(p, d)| (Some(p), d as DeviceRef))
            .collect();
        let pool = assemble(devs, read_only, !opts.inspect)?;
        if !read_only {
            rundir::write_holder(&pool.uuid().to_string());
            *super::lock(&pool.inner.live) = Some(super::live::Publisher::start(&pool));
        }
        Ok(pool)
    }

    /// Fail with [`PoolError::Busy`] if a process holds the pool on `paths`
    /// open read-write or read-only (its lock on a member). Reads and writes
    /// nothing: each device is opened read-only, only to try the exclusive
    /// lock, and closed again. A path that no longer exists is skipped.
    pub(crate) fn ensure_not_open(paths: &[PathBuf], name: &str, uuid: &str) -> Result<()> {
        for p in paths {
            let d = match open_file_dev(p, None, true, EngineChoice::Sync) {
                Ok(d) => d,
                Err(Error::Storage(crate::error::StorageError::Dev(
                    crate::dev::DevError::NotFound { .. },
                ))) => continue,
                Err(e) => return Err(e),
            };
            match try_lock_settled(uuid, || d.file().try_lock()) {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(PoolError::Busy {
                        name: name.to_string(),
                        pid: rundir::read_holder(uuid),
                    }
                    .into())
                }
                Err(TryLockError::Error(e)) => return Err(Error::file(p, e)),
            }
        }
        Ok(())
    }

    /// Open a pool on devices that are already open (see [`Pool::format_on`]).
    /// With the `internals` feature only.
    #[cfg(feature = "internals")]
    pub fn open_on(devs: Vec<DeviceRef>, read_only: bool) -> Result<Pool> {
        assemble(
            devs.into_iter().map(|d| (None, d)).collect(),
            read_only,
            true,
        )
    }

    /// Repairs made since the pool was opened.
    pub(crate) fn repairs(&self) -> Vec<CheckRepair> {
        lock(&self.inner.repairs).clone()
    }

    /// Rewrite superblocks of members that had a damaged or stale copy.
    fn repair_superblocks(&self) -> Result<()> {
        let sb = lock(&self.inner.sb).clone();
        let mut members = lock(&self.inner.members);
        for m in members.iter_mut().filter(|m| !m.damaged.is_empty()) {
            let s = Superblock {
                dev_uuid: m.dev_uuid,
                class: m.class,
                sector: m.dev.sector(),
                dev_size: m.dev.size(),
                zone_size: m.zone_size,
                ..sb.clone()
            };
            superblock::write(m.dev.as_ref(), &s)?;
            let why = m
                .damaged
                .iter()
                .map(|(i, w)| format!("copy {i}: {w}"))
                .collect::<Vec<_>>()
                .join("; ");
            lock(&self.inner.repairs).push(CheckRepair {
                object: format!("superblock {}", m.name),
                repair: format!("rewrote both superblock copies ({why})"),
            });
            m.damaged.clear();
        }
        Ok(())
    }

    /// Write the pool superblock (after `f` changed it) to every member, one at a time.
    pub(crate) fn update_sb(&self, f: impl FnOnce(&mut Superblock) -> Result<()>) -> Result<()> {
        if self.inner.read_only {
            return Err(PoolError::ReadOnly(self.inner.name.clone()).into());
        }
        let mut cur = lock(&self.inner.sb);
        let mut next = cur.clone();
        f(&mut next)?;
        next.generation += 1;
        let members = lock(&self.inner.members);
        for m in members.iter().rev() {
            let s = Superblock {
                dev_uuid: m.dev_uuid,
                class: m.class,
                sector: m.dev.sector(),
                dev_size: m.dev.size(),
                zone_size: m.zone_size,
                ..next.clone()
            };
            superblock::write(m.dev.as_ref(), &s)?;
        }
        *cur = next;
        Ok(())
    }
}

#[cfg(test)]
mod lock_tests {
    use super::retry_unheld;
    use std::fs::TryLockError;

    /// Contention without a live holder on record is waited out (an exited
    /// process's files let go late); with one, it is reported at once; a
    /// lock that never comes is reported after the second.
    #[test]
    fn contention_without_a_live_holder_is_waited_out() {
        let mut left = 3;
        let r = retry_unheld(
            || {
                if left == 0 {
                    return Ok(());
                }
                left -= 1;
                Err(TryLockError::WouldBlock)
            },
            || false,
        );
        assert!(r.is_ok() && left == 0);
        let mut tries = 0;
        let r = retry_unheld(
            || {
                tries += 1;
                Err(TryLockError::WouldBlock)
            },
            || true,
        );
        assert!(matches!(r, Err(TryLockError::WouldBlock)) && tries == 1);
        let t0 = std::time::Instant::now();
        let r = retry_unheld(|| Err(TryLockError::WouldBlock), || false);
        assert!(matches!(r, Err(TryLockError::WouldBlock)));
        assert!(t0.elapsed() >= std::time::Duration::from_secs(1));
    }
}
