//! Making a pool: formatting new member devices, adding a media class to an
//! open pool, and vetting a device before either writes to it.

use super::assemble::{class_dev, lock_member, open_file_dev};
use super::options::{
    CreateOptions, DeviceSpec, MDC0_ZONES, MIN_CAPACITY_ZONES, MIN_STAGING_ZONES, SB_ZONES,
};
use super::{lock, now, MemberDev, Pool};
use crate::admin::ownership::apply_ownership;
use crate::admin::rundir::{self, ActiveEntry, NodeOwner};
use crate::catalog::{Catalog, ClassDev, Layout};
use crate::dev::{Device, DeviceKind, DeviceRef};
use crate::error::{Error, PoolError, Result};
use crate::format::superblock::{
    validate_label, validate_name, Mdc0Loc, MediaClass, Member, Superblock, MAX_MEMBERS, ZONE_MAX,
    ZONE_MIN,
};
use crate::io::EngineChoice;
use crate::superblock::{self, Signature};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uuid::Uuid;

fn check_zone_size(z: u64) -> Result<()> {
    if !z.is_power_of_two() || !(ZONE_MIN..=ZONE_MAX).contains(&z) {
        return Err(Error::InvalidArgument(format!(
            "mblock size {z} must be a power of two from {} KiB to {} MiB",
            ZONE_MIN >> 10,
            ZONE_MAX >> 20
        )));
    }
    Ok(())
}

/// Refuse `u32::MAX` as an owner: chown(2) reads it as "leave unchanged",
/// so the superblock would record an owner the devices never got.
pub(crate) fn check_id(what: &str, id: Option<u32>) -> Result<()> {
    if id == Some(u32::MAX) {
        return Err(Error::InvalidArgument(format!(
            "{what} {} is not a valid owner (chown reads it as \"no change\")",
            u32::MAX
        )));
    }
    Ok(())
}

fn min_size(class: MediaClass, zone: u64) -> u64 {
    zone * match class {
        MediaClass::Capacity => MIN_CAPACITY_ZONES,
        MediaClass::Staging => MIN_STAGING_ZONES,
    }
}

/// Owner and permissions applied to member devices.
#[derive(Debug, Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
    mode: u32,
}

/// What a failed `create` takes back, in reverse order of doing it.
#[derive(Default)]
struct Undo {
    /// Files it created.
    created: Vec<PathBuf>,
    /// Whether it began writing the pool (superblocks are wiped).
    formatted: bool,
    /// Lines it added to the device list.
    listed: Vec<PathBuf>,
    /// Devices whose owner and mode it changed, with what they were.
    owners: Vec<(PathBuf, NodeOwner)>,
    /// Whether it recorded the pool as active.
    active: bool,
    /// `add`: the run-directory entry it extended (the new path is taken out again).
    active_devices: Option<ActiveEntry>,
}

impl Undo {
    /// Best effort: the error that made `create` fail is the one reported.
    fn run(self, name: &str, pool_uuid: &Uuid, paths: &[PathBuf], engine: EngineChoice) {
        if self.active {
            let _ = rundir::remove_active(name);
        }
        if let Some(mut ent) = self.active_devices {
            if let Some(p) = paths.first() {
                let p = crate::dev::canonical(p);
                ent.devices.retain(|d| *d != p);
                let _ = rundir::write_active(&ent);
            }
        }
        if self.formatted {
            // Capacity (the commit point) first.
            for p in paths {
                unformat(p, name, pool_uuid, engine);
            }
        }
        for (p, b) in self.owners.iter().rev() {
            let _ = apply_ownership(p, b.uid, b.gid, b.mode);
        }
        for p in &self.created {
            let _ = std::fs::remove_file(p);
        }
        if !self.listed.is_empty() {
            let _ = rundir::forget_paths(&self.listed);
        }
    }
}

/// What the rollback of a failed `create` does with a device's superblocks.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rollback {
    /// The best copy is of the pool being created: wipe.
    Wipe,
    /// No mpool magic (the failure came before its superblocks): nothing to do.
    Blank,
    /// Anything else (another pool, damaged copies): leave it, with why.
    Leave(String),
}

/// Decide from what `superblock::read` found whether the rollback of the
/// create of pool `pool_uuid` may wipe a device's superblocks.
fn rollback_decision(r: &superblock::SuperblockRead, pool_uuid: &Uuid) -> Rollback {
    match r.best() {
        Some(sb) if sb.pool_uuid == *pool_uuid => Rollback::Wipe,
        Some(sb) => Rollback::Leave(format!(
            "it now carries pool '{}' ({})",
            sb.name, sb.pool_uuid
        )),
        None if r.is_blank() => Rollback::Blank,
        None => Rollback::Leave("its superblocks are damaged".into()),
    }
}

/// Take back the superblocks a failed create of pool `pool_uuid` wrote on
/// `path`: under the device's exclusive lock (not waited for), and only when
/// its best copy is still of that pool; otherwise it is left, with a warning.
fn unformat(path: &Path, name: &str, pool_uuid: &Uuid, engine: EngineChoice) {
    let d = match open_file_dev(path, None, false, engine) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("{}: not rolled back (cannot open it: {e})", path.display());
            return;
        }
    };
    if let Err(e) = lock_member(&d, false, name, pool_uuid) {
        tracing::warn!("{}: not rolled back ({e})", path.display());
        return;
    }
    let r = match superblock::read(d.as_ref()) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(
                "{}: not rolled back (cannot read its superblocks: {e})",
                path.display()
            );
            return;
        }
    };
    match rollback_decision(&r, pool_uuid) {
        Rollback::Wipe => {
            if let Err(e) = superblock::wipe(d.as_ref()) {
                tracing::warn!("{}: rollback wipe failed: {e}", path.display());
            }
        }
        Rollback::Blank => {}
        Rollback::Leave(why) => tracing::warn!(
            "{}: superblocks of the failed create of pool '{name}' ({pool_uuid}) not \
             wiped: {why}",
            path.display()
        ),
    }
}

/// Write a new pool onto open devices: pool metadata first, then the
/// superblocks, staging first and capacity last (the capacity superblock is
/// the commit point of the create).
fn format_pool(
    pool_uuid: Uuid,
    name: &str,
    devs: &[(DeviceRef, MediaClass, u64)],
    owner: Owner,
    label: &str,
    preallocate: bool,
    version: u16,
) -> Result<()> {
    let members: Vec<Member> = devs
        .iter()
        .map(|(d, class, zone)| Member {
            dev_uuid: Uuid::new_v4(),
            class: *class,
            zone_size: *zone,
            size: d.size(),
        })
        .collect();
    let base = Superblock {
        version,
        generation: 1,
        pool_uuid,
        dev_uuid: Uuid::nil(),
        name: name.to_string(),
        class: MediaClass::Capacity,
        sector: 0,
        dev_size: 0,
        zone_size: 0,
        ctime: now(),
        uid: owner.uid,
        gid: owner.gid,
        mode: owner.mode,
        spare_pct: [0, 0],
        label: label.to_string(),
        mdc0: Mdc0Loc {
            zone: SB_ZONES as u32,
            zones: MDC0_ZONES,
        },
        members: members.clone(),
        upgrade_pending: false,
    };
    let mut classes: [Option<ClassDev>; 2] = [None, None];
    for (d, class, zone) in devs {
        classes[class.index()] = Some(class_dev(Arc::clone(d), *class, *zone, 0));
    }
    Catalog::format(
        classes,
        Layout {
            mdc0_zone: base.mdc0.zone,
            mdc0_zones: base.mdc0.zones,
        },
        preallocate,
    )?;
    for ((d, class, zone), m) in devs.iter().zip(&members).rev() {
        let s = Superblock {
            dev_uuid: m.dev_uuid,
            class: *class,
            sector: d.sector(),
            dev_size: d.size(),
            zone_size: *zone,
            ..base.clone()
        };
        superblock::write(d.as_ref(), &s)?;
    }
    Ok(())
}

/// Check a device for `create`/`add`: size, signatures, other pools.
/// `path` is what libblkid probes (as given, bytes and all); its display
/// form names the device in errors.
fn vet_device(
    dev: &dyn Device,
    path: &Path,
    class: MediaClass,
    zone: u64,
    force: bool,
) -> Result<()> {
    let shown = path.display().to_string();
    crate::superblock::check_sector(dev)?;
    let min = min_size(class, zone);
    if dev.size() < min {
        return Err(PoolError::TooSmall {
            device: shown.clone(),
            size: dev.size(),
            min,
            class,
            zone_size: zone,
        }
        .into());
    }
    if let Some(sig) = superblock::probe_with_blkid(dev, path)? {
        if let Signature::Mpool { name, uuid } = &sig {
            if let Some(a) = rundir::find_active(&uuid.to_string())? {
                return Err(PoolError::InOtherPool {
                    device: format!("{shown} (active)"),
                    pool: a.name,
                }
                .into());
            }
            if !force {
                return Err(PoolError::InOtherPool {
                    device: shown.clone(),
                    pool: name.clone(),
                }
                .into());
            }
        } else if !force {
            return Err(PoolError::Signature {
                device: shown.clone(),
                sig,
            }
            .into());
        }
    }
    Ok(())
}

impl Pool {
    /// Create a pool named `name` on `capacity` (and `opts.staging`).
    ///
    /// Refuses, changing nothing on any device: a bad name, a name already
    /// active, a missing or too-small device, a device holding a pool,
    /// filesystem or LVM signature (unless `force`), the same device twice,
    /// a uid or gid of `u32::MAX` (chown's "no change").
    ///
    /// All or nothing: when a step after the checks fails (writing the
    /// pool, the device list, ownership, the run directory, the first
    /// open), the superblocks written are wiped, owners and modes restored,
    /// files it created removed and the device-list lines and run-directory
    /// entry it added removed. (A `discard` or `force` signature wipe done
    /// before the failure cannot be taken back.) The name is checked and
    /// claimed under the run directory's name lock, so of concurrent
    /// creates (and activates, renames) of one name only one succeeds.
    ///
    /// On a regular file the superblock span and every zone of the pool
    /// metadata are allocated before anything is written (all of the file
    /// with [`CreateOptions::preallocate`]): a filesystem that cannot hold
    /// them fails the create with the bytes needed (changing nothing, as
    /// any other failure), and later metadata
    /// writes never need space the filesystem may no longer have.
    pub fn create(name: &str, capacity: &DeviceSpec, opts: &CreateOptions) -> Result<Pool> {
        validate_name(name).map_err(PoolError::InvalidName)?;
        validate_label(&opts.label).map_err(Error::InvalidArgument)?;
        let engine = opts.open.engine()?;
        // Held until the new pool is recorded as active (or refused), so
        // that two creates, or a create and an activate, cannot both take
        // the name.
        let names = rundir::lock_names()?;
        if let Some(a) = rundir::find_active(name)? {
            return Err(PoolError::Exists {
                name: name.into(),
                detail: format!("active, uuid {}", a.uuid),
            }
            .into());
        }
        let mut specs = vec![(capacity, MediaClass::Capacity)];
        if let Some(s) = &opts.staging {
            specs.push((s, MediaClass::Staging));
        }
        for (s, _) in &specs {
            check_zone_size(s.zone_size)?;
        }
        if let [(a, _), (b, _)] = specs.as_slice() {
            if crate::dev::canonical(&a.path) == crate::dev::canonical(&b.path) {
                return Err(Error::InvalidArgument(format!(
                    "{} is given as both capacity and staging device",
                    a.path.display()
                )));
            }
        }
        if let Some(m) = opts.mode {
            if m > 0o7777 {
                return Err(Error::InvalidArgument(format!(
                    "mode {m:o} is not a permission mode"
                )));
            }
        }
        for (what, id) in [("uid", opts.uid), ("gid", opts.gid)] {
            check_id(what, id)?;
        }
        // Check everything before writing anything. Files we create are removed on refusal.
        let mut created: Vec<PathBuf> = Vec::new();
        let mut devs = Vec::new();
        let pool_uuid = Uuid::new_v4();
        let res = (|| -> Result<()> {
            for (s, class) in &specs {
                let existed = s.path.exists();
                if existed && s.create_size.is_some() {
                    let meta = std::fs::metadata(&s.path).map_err(|e| Error::file(&s.path, e))?;
                    if meta.is_file() && Some(meta.len()) != s.create_size {
                        return Err(Error::InvalidArgument(format!(
                            "{} exists with size {}; omit --size to use it as it is",
                            s.path.display(),
                            meta.len()
                        )));
                    }
                }
                let d = open_file_dev(&s.path, s.create_size, false, engine)?;
                if !existed {
                    created.push(s.path.clone());
                }
                // Locked first, then vetted while locked: no other create
                // or open can write it between the checks and the format.
                if let Err(e) = lock_member(&d, false, name, &pool_uuid) {
                    // Held by an open pool: name that pool, not the new one
                    // (a refusal either way; nothing is written).
                    return Err(match superblock::probe(d.as_ref()) {
                        Ok(Some(Signature::Mpool { name: other, .. })) => PoolError::InOtherPool {
                            device: format!("{} (in use)", s.path.display()),
                            pool: other,
                        }
                        .into(),
                        _ => e,
                    });
                }
                vet_device(d.as_ref(), &s.path, *class, s.zone_size, opts.force)?;
                devs.push((Arc::clone(&d), s.path.clone(), *class, s.zone_size));
            }
            Ok(())
        })();
        if let Err(e) = res {
            drop(devs);
            for p in created {
                let _ = std::fs::remove_file(p);
            }
            return Err(e);
        }
        let owner = Owner {
            uid: opts
                .uid
                .unwrap_or_else(|| rustix::process::geteuid().as_raw()),
            gid: opts
                .gid
                .unwrap_or_else(|| rustix::process::getegid().as_raw()),
            mode: opts.mode.unwrap_or(0o660),
        };
        let paths: Vec<PathBuf> = devs.iter().map(|(_, p, _, _)| p.clone()).collect();
        let mut undo = Undo {
            created,
            ..Undo::default()
        };
        let res = (|| -> Result<()> {
            // What the devices looked like before, to restore on failure.
            let mut before = Vec::new();
            for p in &paths {
                let m = std::fs::metadata(p).map_err(|e| Error::file(p, e))?;
                before.push(NodeOwner {
                    path: crate::dev::canonical(p),
                    uid: m.uid(),
                    gid: m.gid(),
                    mode: m.mode() & 0o7777,
                });
            }
            if opts.discard {
                for (d, _, _, _) in &devs {
                    d.discard(0, d.size() - d.size() % u64::from(d.sector()))?;
                }
            }
            if opts.force {
                for (d, p, _, _) in &devs {
                    superblock::wipe_signatures(d.as_ref(), p)?;
                }
            }
            let on: Vec<(DeviceRef, MediaClass, u64)> = devs
                .iter()
                .map(|(d, _, c, z)| (d.clone() as DeviceRef, *c, *z))
                .collect();
            undo.formatted = true;
            format_pool(
                pool_uuid,
                name,
                &on,
                owner,
                &opts.label,
                opts.preallocate,
                crate::format::superblock::SB_VERSION,
            )?;
            let file_paths: Vec<PathBuf> = devs
                .iter()
                .filter(|(d, ..)| d.info().kind == DeviceKind::File)
                .map(|(_, p, ..)| p.clone())
                .collect();
            undo.listed = rundir::remember_paths(&file_paths)?;
            // A device node's owner and mode are restored by `destroy`.
            for ((d, ..), b) in devs.iter().zip(&before) {
                if d.info().kind != DeviceKind::File && rundir::remember_node(b)? {
                    undo.listed.push(b.path.clone());
                }
            }
            for (p, b) in paths.iter().zip(&before) {
                undo.owners.push((p.clone(), b.clone()));
                apply_ownership(p, owner.uid, owner.gid, owner.mode)?;
            }
            if opts.activate {
                undo.active = true;
                rundir::write_active(&ActiveEntry {
                    name: name.to_string(),
                    uuid: pool_uuid.to_string(),
                    devices: paths.iter().map(|p| crate::dev::canonical(p)).collect(),
                    activated: now(),
                })?;
            }
            Ok(())
        })();
        // The handles (and the locks they hold) go before the reopen below.
        drop(devs);
        let res = res.and_then(|()| Pool::open_paths(&paths, &opts.open));
        if res.is_err() {
            undo.run(name, &pool_uuid, &paths, engine);
        }
        drop(names);
        res
    }

    /// Create a pool on devices that are already open (memory, fault-injecting
    /// or files opened by the caller): no signature checks, ownership, locks or
    /// run directory. Returns the pool UUID; open it with [`Pool::open_on`].
    /// With the `internals` feature only.
    #[cfg(feature = "internals")]
    pub fn format_on(
        name: &str,
        devs: &[(DeviceRef, MediaClass, u64)],
        label: &str,
    ) -> Result<Uuid> {
        Self::format_on_version(name, devs, label, crate::format::superblock::SB_VERSION)
    }

    /// [`Pool::format_on`] in an older format `version` (1 or 2, for tests
    /// of `upgrade` and of old pools; the current version is accepted too).
    /// With the `internals` feature only.
    #[cfg(feature = "internals")]
    pub fn format_on_version(
        name: &str,
        devs: &[(DeviceRef, MediaClass, u64)],
        label: &str,
        version: u16,
    ) -> Result<Uuid> {
        use crate::format::superblock::{SB_VERSION, SB_VERSION_MIN};
        if !(SB_VERSION_MIN..=SB_VERSION).contains(&version) {
            return Err(Error::InvalidArgument(format!(
                "format version {version} (this mpool writes {SB_VERSION_MIN} to {SB_VERSION})"
            )));
        }
        validate_name(name).map_err(PoolError::InvalidName)?;
        validate_label(label).map_err(Error::InvalidArgument)?;
        if devs.first().map(|d| d.1) != Some(MediaClass::Capacity)
            || devs.len() > 2
            || (devs.len() == 2 && devs[1].1 != MediaClass::Staging)
        {
            return Err(Error::InvalidArgument(
                "devices must be a capacity device, optionally followed by a staging device".into(),
            ));
        }
        for (d, class, zone) in devs {
            check_zone_size(*zone)?;
            let min = min_size(*class, *zone);
            if d.size() < min {
                return Err(PoolError::TooSmall {
                    device: d.info().name(),
                    size: d.size(),
                    min,
                    class: *class,
                    zone_size: *zone,
                }
                .into());
            }
        }
        let uuid = Uuid::new_v4();
        format_pool(
            uuid,
            name,
            devs,
            Owner {
                uid: 0,
                gid: 0,
                mode: 0o600,
            },
            label,
            false,
            version,
        )?;
        Ok(uuid)
    }

    /// Add a media class on `spec`'s device. Usable at once.
    pub fn add(&self, class: MediaClass, spec: &DeviceSpec, force: bool) -> Result<()> {
        if self.inner.read_only {
            return Err(PoolError::ReadOnly(self.inner.name.clone()).into());
        }
        check_zone_size(spec.zone_size)?;
        if self.classes().contains(&class) {
            return Err(PoolError::ClassExists(class).into());
        }
        let sb0 = self.sb();
        if sb0.members.len() >= MAX_MEMBERS {
            return Err(Error::InvalidArgument(format!(
                "a pool has at most {MAX_MEMBERS} devices"
            )));
        }
        let path = spec.path.display().to_string();
        let existed = spec.path.exists();
        let d = open_file_dev(
            &spec.path,
            spec.create_size,
            false,
            EngineChoice::from_env().unwrap_or_default(),
        )?;
        let vet = (|| {
            let own = |sig: &Option<Signature>| match sig {
                Some(Signature::Mpool { name, uuid }) if *uuid == self.uuid() => Some(
                    Error::InvalidArgument(format!("{path} is already a device of pool '{name}'")),
                ),
                _ => None,
            };
            // Locked first, then vetted while locked. A member of this very
            // pool is locked by it: say so rather than "busy" (a refusal
            // either way; nothing is written).
            if let Err(e) = lock_member(&d, false, self.name(), &self.uuid()) {
                return Err(own(&superblock::probe(d.as_ref()).unwrap_or(None)).unwrap_or(e));
            }
            let sig = superblock::probe(d.as_ref())?;
            if let Some(e) = own(&sig) {
                return Err(e);
            }
            if let Some(Signature::Mpool { name, uuid }) = sig {
                if rundir::find_active(&uuid.to_string())?.is_some() || !force {
                    return Err(PoolError::InOtherPool {
                        device: path.clone(),
                        pool: name,
                    }
                    .into());
                }
            }
            vet_device(d.as_ref(), &spec.path, class, spec.zone_size, force)
        })();
        let vet = vet.and_then(|()| crate::superblock::check_sector(d.as_ref()));
        let mut undo = Undo {
            created: if existed {
                Vec::new()
            } else {
                vec![spec.path.clone()]
            },
            ..Undo::default()
        };
        if let Err(e) = vet {
            drop(d);
            undo.run(self.name(), &self.uuid(), &[], EngineChoice::Sync);
            return Err(e);
        }
        let m = Member {
            dev_uuid: Uuid::new_v4(),
            class,
            zone_size: spec.zone_size,
            size: d.size(),
        };
        // All or nothing: every step that can fail comes before the pool's
        // superblocks list the new member, and is undone if a later one
        // fails; the in-memory pool changes only once nothing can fail.
        let mut members_written = false;
        let res = (|| -> Result<()> {
            let md = std::fs::metadata(&spec.path).map_err(|e| Error::file(&spec.path, e))?;
            let before = NodeOwner {
                path: crate::dev::canonical(&spec.path),
                uid: md.uid(),
                gid: md.gid(),
                mode: md.mode() & 0o7777,
            };
            if d.info().kind == DeviceKind::File {
                undo.listed = rundir::remember_paths(std::slice::from_ref(&spec.path))?;
            } else if rundir::remember_node(&before)? {
                undo.listed.push(before.path.clone());
            }
            undo.owners.push((spec.path.clone(), before));
            apply_ownership(&spec.path, sb0.uid, sb0.gid, sb0.mode)?;
            // Its superblock copies are rewritten by every update: never into a hole.
            d.reserve(&[crate::catalog::superblock_span(d.sector())])?;
            if force {
                superblock::wipe_signatures(d.as_ref(), &spec.path)?;
            }
            // The new device gets its superblock first; the others then list it.
            undo.formatted = true;
            let mut news = sb0.clone();
            news.generation += 1;
            news.members.push(m);
            superblock::write(
                d.as_ref(),
                &Superblock {
                    dev_uuid: m.dev_uuid,
                    class,
                    sector: d.sector(),
                    dev_size: d.size(),
                    zone_size: spec.zone_size,
                    ..news
                },
            )?;
            if let Some(mut ent) = rundir::find_active(&self.uuid().to_string())? {
                ent.devices.push(crate::dev::canonical(&spec.path));
                undo.active_devices = Some(ent.clone());
                rundir::write_active(&ent)?;
            }
            lock(&self.inner.members).push(MemberDev {
                name: spec.path.display().to_string(),
                path: Some(spec.path.clone()),
                dev: d.clone() as DeviceRef,
                class,
                dev_uuid: m.dev_uuid,
                zone_size: spec.zone_size,
                damaged: Vec::new(),
            });
            members_written = true;
            self.update_sb(|s| {
                s.members.push(m);
                Ok(())
            })
        })();
        if let Err(e) = res {
            if members_written {
                // Some members may list the new one: list it nowhere again,
                // at a generation above any the failed update wrote.
                lock(&self.inner.members).retain(|x| x.dev_uuid != m.dev_uuid);
                if let Err(e2) = self.update_sb(|s| {
                    s.generation += 1;
                    Ok(())
                }) {
                    tracing::warn!(
                        "pool '{}': the superblocks of the failed add could not be rolled back: {e2}",
                        self.name()
                    );
                }
            }
            drop(d);
            undo.run(
                self.name(),
                &self.uuid(),
                std::slice::from_ref(&spec.path),
                EngineChoice::from_env().unwrap_or_default(),
            );
            return Err(e);
        }
        if let Some(p) = self.inner.pmd.as_ref() {
            // The sector size was checked above: this cannot fail on it.
            p.add_class(
                class,
                class_dev(
                    d.clone() as DeviceRef,
                    class,
                    spec.zone_size,
                    sb0.spare_pct[class.index()],
                ),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::superblock::SuperblockError;
    use crate::superblock::SuperblockRead;

    fn sb(pool_uuid: Uuid, generation: u64) -> Superblock {
        Superblock {
            version: crate::format::superblock::SB_VERSION,
            generation,
            pool_uuid,
            dev_uuid: Uuid::new_v4(),
            name: "other".into(),
            class: MediaClass::Capacity,
            sector: 512,
            dev_size: 1 << 30,
            zone_size: 1 << 20,
            ctime: 0,
            uid: 0,
            gid: 0,
            mode: 0o600,
            spare_pct: [0, 0],
            label: String::new(),
            mdc0: Mdc0Loc {
                zone: SB_ZONES as u32,
                zones: MDC0_ZONES,
            },
            members: Vec::new(),
            upgrade_pending: false,
        }
    }

    #[test]
    fn rollback_wipes_only_the_pool_being_created() {
        let ours = Uuid::new_v4();
        let theirs = Uuid::new_v4();
        let read = |a, b| SuperblockRead { copies: [a, b] };
        // Both copies, or one (a create cut short), of the new pool: wipe.
        assert_eq!(
            rollback_decision(&read(Ok(sb(ours, 1)), Ok(sb(ours, 1))), &ours),
            Rollback::Wipe
        );
        assert_eq!(
            rollback_decision(&read(Ok(sb(ours, 1)), Err(SuperblockError::NoMagic)), &ours),
            Rollback::Wipe
        );
        // Another pool's (created on the device since): left.
        assert!(matches!(
            rollback_decision(&read(Ok(sb(theirs, 1)), Ok(sb(theirs, 1))), &ours),
            Rollback::Leave(_)
        ));
        // The newest copy decides: another pool's newer copy is not wiped.
        assert!(matches!(
            rollback_decision(&read(Ok(sb(ours, 1)), Ok(sb(theirs, 5))), &ours),
            Rollback::Leave(_)
        ));
        // Nothing written: nothing to do.
        assert_eq!(
            rollback_decision(
                &read(Err(SuperblockError::NoMagic), Err(SuperblockError::NoMagic)),
                &ours
            ),
            Rollback::Blank
        );
        // Damaged copies are not the new pool's for sure: left.
        assert!(matches!(
            rollback_decision(
                &read(
                    Err(SuperblockError::Field {
                        field: "copy",
                        why: "x".into()
                    }),
                    Err(SuperblockError::NoMagic)
                ),
                &ours
            ),
            Rollback::Leave(_)
        ));
    }
}
