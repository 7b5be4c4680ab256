//! Lifecycle verbs that act on whole pools, found by name or UUID whether
//! active or not: destroy, activate, deactivate, rename.

use super::ownership::apply_ownership;
use super::rundir::{self, ActiveEntry};
use super::scan;
use crate::dev::DeviceKind;
use crate::error::{PoolError, Result};
use crate::format::superblock::validate_name;
use crate::io::EngineChoice;
use crate::pool::{now, OpenOptions, Pool};
use crate::superblock;
use std::path::PathBuf;

/// Find a pool by name or UUID: active pools first, then by scanning.
fn locate(name_or_uuid: &str) -> Result<(Vec<PathBuf>, bool)> {
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
        many => Err(PoolError::Ambiguous(format!(
            "{} pools are named '{name_or_uuid}' ({}); name one by UUID",
            many.len(),
            many.iter()
                .map(|p| p.uuid.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into()),
    }
}

/// Destroy a pool: wipe its superblocks on every member, give device nodes
/// back the owner and mode recorded when the pool was created, and forget it.
/// Refused while another process has it open.
pub fn destroy(name_or_uuid: &str) -> Result<()> {
    let (paths, active) = locate(name_or_uuid)?;
    if active {
        // A copy of a member found elsewhere (a cloned LUN, a backup image
        // in the device list) leaves it unclear which device is the pool:
        // wipe neither.
        let rep = scan::scan(&paths)?;
        let canon: Vec<PathBuf> = paths
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .collect();
        if let Some(e) = rep
            .pools
            .iter()
            .filter(|p| p.devices.iter().any(|d| canon.contains(&d.path)))
            .find_map(scan::ScannedPool::duplicate_error)
        {
            return Err(e);
        }
    }
    let pool = Pool::open_paths(
        &paths,
        &OpenOptions {
            read_only: false,
            engine: Some(EngineChoice::Sync),
            inspect: false,
        },
    )?;
    let name = pool.name().to_string();
    // Capacity last: until then the pool is still recognisable as incomplete.
    for (_, dev) in pool.members().iter().rev() {
        superblock::wipe(dev.as_ref())?;
    }
    drop(pool);
    rundir::remove_active(&name)?;
    // Device nodes get back the owner and mode they had before `create`.
    for p in &paths {
        if let Some(n) = rundir::node_owner(p) {
            apply_ownership(p, n.uid, n.gid, n.mode)?;
        }
    }
    rundir::forget_paths(&paths)?;
    Ok(())
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
    rundir::remove_active(&a.name)
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
    let pool = Pool::open_paths(
        &paths,
        &OpenOptions {
            read_only: false,
            engine: Some(EngineChoice::Sync),
            inspect: false,
        },
    )?;
    pool.update_sb(|s| {
        s.name = new.to_string();
        Ok(())
    })
}
