//! Lifecycle verbs that act on whole pools, found by name or UUID whether
//! active or not: destroy, activate, deactivate, rename.

use super::ownership::apply_ownership;
use super::rundir::{self, ActiveEntry};
use super::scan;
use crate::dev::{DeviceKind, FileDevice, OpenOptions as DevOpenOptions};
use crate::error::{Error, PoolError, Result};
use crate::format::superblock::{validate_name, MediaClass};
use crate::io::EngineChoice;
use crate::pool::{now, OpenOptions, Pool};
use crate::superblock;
use serde::Serialize;
use std::fs::TryLockError;
use std::path::PathBuf;

/// Find a pool by name or UUID: active pools first, then by scanning.
pub(super) fn locate(name_or_uuid: &str) -> Result<(Vec<PathBuf>, bool)> {
    if let Some(a) = rundir::find_active(name_or_uuid)? {
        return Ok((a.devices, true));
    }
    let rep = scan::scan(&[])?;
    let hits: Vec<_> = rep
        .pools
        .iter()
        .filter(|p| p.name == name_or_uuid || p.uuid.eq_ignore_ascii_case(name_or_uuid))
        .collect();
    match hits.as_slice() {
        [] => Err(PoolError::NotFound(name_or_uuid.to_string()).into()),
        [p] => {
            if let Some(e) = p.duplicate_error() {
                return Err(e);
            }
            if !p.missing.is_empty() {
                return Err(PoolError::Incomplete {
                    name: p.name.clone(),
                    missing: p.missing.len(),
                }
                .into());
            }
            Ok((p.devices.iter().map(|d| d.path.clone()).collect(), false))
        }
        many => Err(ambiguous(name_or_uuid, many)),
    }
}

/// A member a pool's newest superblock lists but no device was found for.
#[derive(Debug, Clone, Serialize)]
pub struct MissingMember {
    /// Its media class.
    pub class: MediaClass,
    /// Its device UUID.
    pub uuid: String,
}

/// What [`destroy`] erases (or erased): the members found, and those missing.
#[derive(Debug, Clone, Serialize)]
pub struct DestroyPlan {
    /// Pool name.
    pub name: String,
    /// Pool UUID.
    pub uuid: String,
    /// Member devices found, with their class: their superblocks are erased.
    pub erased: Vec<(MediaClass, PathBuf)>,
    /// Members that no device was found for (nothing to erase there).
    pub missing: Vec<MissingMember>,
    /// Paths recorded for the pool (in its run-directory entry) that no
    /// longer exist; forgotten with the others.
    pub gone: Vec<PathBuf>,
    /// The run-directory entry's name, when the pool is active.
    #[serde(skip)]
    active: Option<String>,
}

fn ambiguous(name_or_uuid: &str, many: &[&scan::ScannedPool]) -> Error {
    PoolError::Ambiguous(format!(
        "{} pools are named '{name_or_uuid}' ({}); name one by UUID",
        many.len(),
        many.iter()
            .map(|p| p.uuid.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .into()
}

/// What `destroy` would erase: for a complete pool, every member; for a
/// pool some of whose members are gone (a deleted file, a removed disk),
/// the members that are left, and which are missing.
pub fn destroy_plan(name_or_uuid: &str) -> Result<DestroyPlan> {
    let active = rundir::find_active(name_or_uuid)?;
    let (gone, rep) = match &active {
        Some(a) => {
            let (here, gone): (Vec<PathBuf>, Vec<PathBuf>) = a
                .devices
                .iter()
                .cloned()
                .partition(|p| std::fs::symlink_metadata(p).is_ok());
            (gone, scan::scan(&here)?)
        }
        None => (Vec::new(), scan::scan(&[])?),
    };
    let hits: Vec<&scan::ScannedPool> = rep
        .pools
        .iter()
        .filter(|p| match &active {
            Some(a) => p.uuid.eq_ignore_ascii_case(&a.uuid),
            None => p.name == name_or_uuid || p.uuid.eq_ignore_ascii_case(name_or_uuid),
        })
        .collect();
    let p = match hits.as_slice() {
        [] => {
            return Err(match &active {
                // Recorded, but none of its devices is left to erase.
                Some(a) => PoolError::Incomplete {
                    name: a.name.clone(),
                    missing: a.devices.len(),
                }
                .into(),
                None => PoolError::NotFound(name_or_uuid.to_string()).into(),
            });
        }
        [p] => *p,
        many => return Err(ambiguous(name_or_uuid, many)),
    };
    // A copy of a member found elsewhere (a cloned LUN, a backup image in
    // the device list) leaves it unclear which device is the pool: wipe
    // neither.
    if let Some(e) = p.duplicate_error() {
        return Err(e);
    }
    let mut erased: Vec<(MediaClass, PathBuf)> = p
        .devices
        .iter()
        .map(|d| (d.class, d.path.clone()))
        .collect();
    // Capacity last: until then the pool is still recognisable as incomplete.
    erased.sort_by_key(|(c, _)| *c == MediaClass::Capacity);
    Ok(DestroyPlan {
        name: p.name.clone(),
        uuid: p.uuid.clone(),
        erased,
        missing: p
            .missing
            .iter()
            .map(|m| MissingMember {
                class: m.class,
                uuid: m.dev_uuid.to_string(),
            })
            .collect(),
        gone,
        active: active.map(|a| a.name),
    })
}

/// Open the pool on `paths` for an administrative verb (destroy, rename,
/// upgrade): locked like any open, with the synchronous engine (a verb
/// does a few small I/Os, not worth a ring).
pub(super) fn open_admin(paths: &[PathBuf], read_only: bool) -> Result<Pool> {
    Pool::open_paths(
        paths,
        &OpenOptions {
            read_only,
            engine: Some(EngineChoice::Sync),
            inspect: false,
        },
    )
}

/// Destroy a pool: wipe its superblocks on every member, give device nodes
/// back the owner and mode recorded when the pool was created, and forget it
/// (its run-directory entry and its paths in the device list). A pool some
/// of whose members are gone is destroyed too: the members left are erased
/// and the missing ones forgotten (the plan returned says which). Refused
/// while another process has it open.
pub fn destroy(name_or_uuid: &str) -> Result<DestroyPlan> {
    let plan = destroy_plan(name_or_uuid)?;
    let paths: Vec<PathBuf> = plan.erased.iter().map(|(_, p)| p.clone()).collect();
    if plan.missing.is_empty() {
        let pool = open_admin(&paths, false)?;
        for (_, dev) in pool.members().iter().rev() {
            superblock::wipe(dev.as_ref())?;
        }
    } else {
        // The pool cannot be opened: lock and check what is left by hand.
        let mut devs = Vec::new();
        for p in &paths {
            let d = FileDevice::open(
                p,
                &DevOpenOptions {
                    read_only: false,
                    create_size: None,
                    engine: EngineChoice::Sync,
                    direct: true,
                },
            )?;
            match d.file().try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(PoolError::Busy {
                        name: plan.name.clone(),
                        pid: rundir::read_holder(&plan.uuid),
                    }
                    .into())
                }
                Err(TryLockError::Error(e)) => return Err(Error::file(p, e)),
            }
            // Still a member of this pool now that it is locked.
            let r = superblock::read(&d)?;
            if r.best()
                .is_none_or(|s| s.pool_uuid.to_string() != plan.uuid)
            {
                return Err(Error::InvalidArgument(format!(
                    "{} no longer holds a member of pool '{}'; nothing was erased",
                    p.display(),
                    plan.name
                )));
            }
            devs.push(d);
        }
        for d in &devs {
            superblock::wipe(d)?;
        }
    }
    if let Some(n) = &plan.active {
        rundir::remove_active(n)?;
    }
    // Device nodes get back the owner and mode they had before `create`.
    for p in &paths {
        if let Some(n) = rundir::node_owner(p)? {
            apply_ownership(p, n.uid, n.gid, n.mode)?;
        }
    }
    let mut all = paths;
    all.extend(plan.gone.iter().cloned());
    rundir::forget_paths(&all)?;
    // The pool is gone: so are its records in the run directory.
    rundir::remove_pool_files(&plan.uuid);
    Ok(plan)
}

/// What [`forget_paths`] or [`forget_pool`] took out of the device list and the run directory.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Forgotten {
    /// Paths removed from the device list.
    pub paths: Vec<PathBuf>,
    /// Paths asked for that the list did not hold.
    pub not_listed: Vec<PathBuf>,
    /// The pool whose run-directory entry was removed, if any.
    pub deactivated: Option<String>,
}

/// Take paths out of the device list, so scans stop looking at them (a
/// file that was deleted, a device that went away).
pub fn forget_paths(paths: &[PathBuf]) -> Result<Forgotten> {
    let removed = rundir::forget_paths(paths)?;
    let listed = |p: &PathBuf| {
        let abs = std::fs::canonicalize(p)
            .or_else(|_| std::path::absolute(p))
            .unwrap_or_else(|_| p.clone());
        removed.contains(&abs)
    };
    Ok(Forgotten {
        not_listed: paths.iter().filter(|p| !listed(p)).cloned().collect(),
        paths: removed,
        deactivated: None,
    })
}

/// Forget a pool by name or UUID: every path recorded for it (its
/// run-directory entry lists them; an inactive pool's are the devices a
/// scan finds it on) leaves the device list, and an active pool whose
/// devices are gone leaves the run directory. Refused while the pool is
/// open.
pub fn forget_pool(name_or_uuid: &str) -> Result<Forgotten> {
    if let Some(a) = rundir::find_active(name_or_uuid)? {
        // Only the locks say whether it is open: nothing is read or written
        // (a pool on a full filesystem must still be forgettable), and a
        // member that is gone does not hide that another process holds it.
        Pool::ensure_not_open(&a.devices, &a.name, &a.uuid)?;
        let devices_gone = a
            .devices
            .iter()
            .any(|p| std::fs::symlink_metadata(p).is_err());
        let mut f = forget_paths(&a.devices)?;
        f.not_listed.clear();
        if devices_gone {
            rundir::remove_active(&a.name)?;
            f.deactivated = Some(a.name);
        }
        return Ok(f);
    }
    let rep = scan::scan(&[])?;
    let hits: Vec<&scan::ScannedPool> = rep
        .pools
        .iter()
        .filter(|p| p.name == name_or_uuid || p.uuid.eq_ignore_ascii_case(name_or_uuid))
        .collect();
    match hits.as_slice() {
        [] => Err(PoolError::NotFound(name_or_uuid.to_string()).into()),
        [p] => {
            let paths: Vec<PathBuf> = p.devices.iter().map(|d| d.path.clone()).collect();
            let mut f = forget_paths(&paths)?;
            f.not_listed.clear();
            Ok(f)
        }
        many => Err(ambiguous(name_or_uuid, many)),
    }
}

/// Record a scanned, complete pool in the run directory.
pub fn activate(name_or_uuid: &str) -> Result<ActiveEntry> {
    if let Some(a) = rundir::find_active(name_or_uuid)? {
        return Ok(a);
    }
    let (paths, _) = locate(name_or_uuid)?;
    activate_paths(&paths)
}

/// Record the pool whose member devices are `paths` (all of them) in the run
/// directory: for devices a scan found at paths named on its command line,
/// which `locate` (known files and block devices only) would not find again.
/// File devices are remembered so later scans find them.
pub fn activate_paths(paths: &[PathBuf]) -> Result<ActiveEntry> {
    let pool = Pool::open_paths(
        paths,
        &OpenOptions {
            read_only: true,
            engine: Some(EngineChoice::Sync),
            inspect: true,
        },
    )?;
    let _names = rundir::lock_names()?;
    if let Some(a) = rundir::find_active(&pool.uuid().to_string())? {
        return Ok(a);
    }
    if let Some(a) = rundir::find_active(pool.name())? {
        return Err(PoolError::Exists {
            name: pool.name().into(),
            detail: format!("another pool with that name is active, uuid {}", a.uuid),
        }
        .into());
    }
    let ent = ActiveEntry {
        name: pool.name().to_string(),
        uuid: pool.uuid().to_string(),
        devices: paths
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .collect(),
        activated: now(),
    };
    let files: Vec<PathBuf> = pool
        .members()
        .into_iter()
        .filter(|(_, d)| d.info().kind == DeviceKind::File)
        .filter_map(|(p, _)| p)
        .collect();
    rundir::remember_paths(&files)?;
    rundir::write_active(&ent)?;
    Ok(ent)
}

/// Remove an active pool from the run directory. Refused while it is open.
/// Writes nothing to the pool's devices.
pub fn deactivate(name_or_uuid: &str) -> Result<()> {
    let Some(a) = rundir::find_active(name_or_uuid)? else {
        return Err(PoolError::NotFound(name_or_uuid.to_string()).into());
    };
    // Taking the lock proves nobody has it open; nothing is read or
    // written (a pool whose filesystem is full must still deactivate).
    Pool::ensure_not_open(&a.devices, &a.name, &a.uuid)?;
    rundir::remove_active(&a.name)?;
    // The error counts are per activation (removing a run-directory file
    // writes nothing to the pool).
    rundir::clear_errors(&a.uuid);
    Ok(())
}

/// Rename an inactive pool.
pub fn rename(old: &str, new: &str) -> Result<()> {
    validate_name(new).map_err(PoolError::InvalidName)?;
    // Held until the superblocks carry the new name.
    let _names = rundir::lock_names()?;
    if rundir::find_active(old)?.is_some() {
        return Err(PoolError::Active(old.to_string()).into());
    }
    if let Some(a) = rundir::find_active(new)? {
        return Err(PoolError::Exists {
            name: new.into(),
            detail: format!("active, uuid {}", a.uuid),
        }
        .into());
    }
    let rep = scan::scan(&[])?;
    if let Some(p) = rep.pools.iter().find(|p| p.name == new) {
        return Err(PoolError::Exists {
            name: new.into(),
            detail: format!("uuid {}", p.uuid),
        }
        .into());
    }
    let (paths, _) = locate(old)?;
    let pool = open_admin(&paths, false)?;
    pool.update_sb(|s| {
        s.name = new.to_string();
        Ok(())
    })
}
