//! Pools: create, open, properties, media classes, and the lifecycle verbs
//! (destroy, activate, deactivate, rename) that act on whole pools.

pub use crate::catalog::{AlignedRead, MblockRead};
use crate::catalog::{Catalog, ClassDev, Layout};
pub use crate::catalog::{MblockReader, ObjectProps};
use crate::dev::{
    DevError, Device, DeviceKind, DeviceRef, FileDevice, OpenOptions as DevOpenOptions,
};
use crate::error::{Error, Result};
use crate::format::superblock::{
    validate_label, validate_name, Mdc0Loc, MediaClass, Member, Superblock, MAX_MEMBERS, ZONE_MAX,
    ZONE_MIN,
};
use crate::io::{AlignedBuf, EngineChoice};
use crate::mdc::Mdc;
use crate::mlog::Mlog;
use crate::objid::{ObjType, ObjectId};
use crate::rundir::{self, ActiveEntry};
use crate::scan;
use crate::space_map::ClassMap;
use crate::superblock::{self, Signature};
use serde::Serialize;
use std::fs::TryLockError;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use uuid::Uuid;

/// Default zone (mblock) size: 32 MiB.
pub const DEFAULT_ZONE_SIZE: u64 = 32 << 20;
/// Zones reserved at the start of every device (superblocks).
pub const SB_ZONES: u64 = 1;
/// Zones per MDC0 log.
pub const MDC0_ZONES: u32 = 1;
/// Fewest zones a capacity device may have.
pub const MIN_CAPACITY_ZONES: u64 = 8;
/// Fewest zones a staging device may have.
pub const MIN_STAGING_ZONES: u64 = 4;

/// How to open a pool.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Open read-only: shared lock, no writes.
    pub read_only: bool,
    /// I/O engine; `None` reads `MPOOL_IO_ENGINE` (default auto).
    pub engine: Option<EngineChoice>,
    /// Inspect only: read-only, take no lock, repair nothing (for `list`
    /// and `get` while another process has the pool open).
    pub inspect: bool,
}

impl OpenOptions {
    fn engine(&self) -> Result<EngineChoice> {
        match self.engine {
            Some(e) => Ok(e),
            None => EngineChoice::from_env()
                .map_err(|e| Error::InvalidArgument(format!("MPOOL_IO_ENGINE: {e}"))),
        }
    }
}

/// A device given to `create` or `add`.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    /// File or block device path.
    pub path: PathBuf,
    /// Create a sparse file of this size when the path does not exist.
    pub create_size: Option<u64>,
    /// Zone (mblock) size for this device's class.
    pub zone_size: u64,
}

impl DeviceSpec {
    /// An existing device with the default zone size.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            create_size: None,
            zone_size: DEFAULT_ZONE_SIZE,
        }
    }
}

/// How to create a pool.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The optional staging device.
    pub staging: Option<DeviceSpec>,
    /// Owner uid (default: this process' effective uid).
    pub uid: Option<u32>,
    /// Owner gid (default: this process' effective gid).
    pub gid: Option<u32>,
    /// Permission bits (default 0660).
    pub mode: Option<u32>,
    /// Free-form label.
    pub label: String,
    /// Discard every device before use.
    pub discard: bool,
    /// Overwrite foreign signatures (a filesystem, LVM, an inactive pool).
    pub force: bool,
    /// Record the pool in the run directory so it opens by name (default true).
    pub activate: bool,
    /// Open options for the returned pool.
    pub open: OpenOptions,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            staging: None,
            uid: None,
            gid: None,
            mode: None,
            label: String::new(),
            discard: false,
            force: false,
            activate: true,
            open: OpenOptions::default(),
        }
    }
}

/// One member device of an open pool.
#[derive(Debug)]
struct MemberDev {
    path: Option<PathBuf>,
    dev: DeviceRef,
    class: MediaClass,
    dev_uuid: Uuid,
    zone_size: u64,
    damaged: Vec<(usize, String)>,
}

#[derive(Debug)]
struct PoolInner {
    pmd: Option<Catalog>,
    name: String,
    uuid: Uuid,
    read_only: bool,
    sb: Mutex<Superblock>,
    members: Mutex<Vec<MemberDev>>,
}

/// An open pool. Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

/// Space of one media class.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClassUsage {
    /// The class.
    pub class: MediaClass,
    /// Zone (mblock) size.
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
    "mblocksize_capacity",
    "mblocksize_staging",
    "devices",
];

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

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

fn min_size(class: MediaClass, zone: u64) -> u64 {
    zone * match class {
        MediaClass::Capacity => MIN_CAPACITY_ZONES,
        MediaClass::Staging => MIN_STAGING_ZONES,
    }
}

fn open_file_dev(
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

/// Take the pool lock on a member device: exclusive for writers, shared for readers.
fn lock_member(f: &FileDevice, read_only: bool, name: &str, uuid: &Uuid) -> Result<()> {
    let r = if read_only {
        f.file().try_lock_shared()
    } else {
        f.file().try_lock()
    };
    match r {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(Error::PoolBusy {
            name: name.to_string(),
            pid: rundir::read_holder(&uuid.to_string()),
        }),
        Err(TryLockError::Error(e)) => {
            Err(Error::file(f.info().path.clone().unwrap_or_default(), e))
        }
    }
}

/// Parse a size: `4096`, `64KiB`, `64K`, `1G`, `1.5GiB`, `10MB` (decimal with B).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        Error::InvalidArgument(format!(
            "bad size '{s}' (examples: 4096, 64KiB, 512M, 1G, 2TiB)"
        ))
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(bad()),
    };
    let v = n * mult as f64;
    if !v.is_finite() || v < 1.0 || v > u64::MAX as f64 || (unit.is_empty() && num.contains('.')) {
        return Err(bad());
    }
    Ok(v as u64)
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
            return Err(Error::Superblock {
                device: name,
                source,
            });
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
        return Err(Error::Incomplete {
            name: newest.name.clone(),
            missing,
        });
    }
    let mut members = Vec::new();
    for (p, _, d, s, mut damaged) in found {
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
    let pmd = match Catalog::open(classes, layout, read_only, newest.version >= 2) {
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

/// Owner and permissions applied to member devices.
#[derive(Debug, Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
    mode: u32,
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
        version: crate::format::superblock::SB_VERSION,
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

/// A media class of an open pool: its device, zone size and (empty) space map.
fn class_dev(dev: DeviceRef, class: MediaClass, zone_size: u64, spare_pct: u8) -> ClassDev {
    let zones = u32::try_from(dev.size() / zone_size).unwrap_or(u32::MAX);
    ClassDev {
        map: ClassMap::new(class, SB_ZONES as u32, zones, spare_pct),
        dev,
        zone_size,
    }
}

/// Check a device for `create`/`add`: size, signatures, other pools.
fn vet_device(
    dev: &dyn Device,
    path: &str,
    class: MediaClass,
    zone: u64,
    force: bool,
) -> Result<()> {
    let min = min_size(class, zone);
    if dev.size() < min {
        return Err(Error::TooSmall {
            device: path.to_string(),
            size: dev.size(),
            min,
            class,
            zone_size: zone,
        });
    }
    if let Some(sig) = superblock::probe(dev)? {
        if let Signature::Mpool { name, uuid } = &sig {
            if let Some(a) = rundir::find_active(&uuid.to_string())? {
                return Err(Error::InOtherPool {
                    device: format!("{path} (active)"),
                    pool: a.name,
                });
            }
            if !force {
                return Err(Error::InOtherPool {
                    device: path.to_string(),
                    pool: name.clone(),
                });
            }
        } else if !force {
            return Err(Error::Signature {
                device: path.to_string(),
                sig,
            });
        }
    }
    Ok(())
}

fn check_type(id: ObjectId, ty: ObjType) -> Result<()> {
    if id.ty() == ty {
        Ok(())
    } else {
        Err(Error::WrongType { id, expected: ty })
    }
}

fn apply_ownership(path: &Path, uid: u32, gid: u32, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| Error::file(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| Error::file(path, e))
}

impl Pool {
    /// Create a pool named `name` on `capacity` (and `opts.staging`).
    ///
    /// Refuses, changing nothing on any device: a bad name, a name already
    /// active, a missing or too-small device, a device holding a pool,
    /// filesystem or LVM signature (unless `force`), the same device twice.
    pub fn create(name: &str, capacity: &DeviceSpec, opts: &CreateOptions) -> Result<Pool> {
        validate_name(name).map_err(Error::InvalidName)?;
        validate_label(&opts.label).map_err(Error::InvalidArgument)?;
        let engine = opts.open.engine()?;
        if let Some(a) = rundir::find_active(name)? {
            return Err(Error::PoolExists {
                name: name.into(),
                detail: format!("active, uuid {}", a.uuid),
            });
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
        // Check everything before writing anything. Files we create are removed on refusal.
        let mut created: Vec<PathBuf> = Vec::new();
        let mut devs = Vec::new();
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
                vet_device(
                    d.as_ref(),
                    &s.path.display().to_string(),
                    *class,
                    s.zone_size,
                    opts.force,
                )?;
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
        let pool_uuid = Uuid::new_v4();
        for (d, _, _, _) in &devs {
            lock_member(d, false, name, &pool_uuid)?;
        }
        if opts.discard {
            for (d, _, _, _) in &devs {
                d.discard(0, d.size() - d.size() % u64::from(d.sector()))?;
            }
        }
        if opts.force {
            for (d, _, _, _) in &devs {
                superblock::wipe_signatures(d.as_ref())?;
            }
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
        let on: Vec<(DeviceRef, MediaClass, u64)> = devs
            .iter()
            .map(|(d, _, c, z)| (d.clone() as DeviceRef, *c, *z))
            .collect();
        format_pool(pool_uuid, name, &on, owner, &opts.label)?;
        drop(on); // the handles (and the locks they hold) go before the reopen below
        for (_, path, _, _) in &devs {
            apply_ownership(path, owner.uid, owner.gid, owner.mode)?;
        }
        let paths: Vec<PathBuf> = devs.iter().map(|(_, p, _, _)| p.clone()).collect();
        let file_paths: Vec<PathBuf> = devs
            .iter()
            .filter(|(d, ..)| d.info().kind == DeviceKind::File)
            .map(|(_, p, ..)| p.clone())
            .collect();
        rundir::remember_paths(&file_paths)?;
        if opts.activate {
            rundir::write_active(&ActiveEntry {
                name: name.to_string(),
                uuid: pool_uuid.to_string(),
                devices: paths
                    .iter()
                    .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
                    .collect(),
                activated: now(),
            })?;
        }
        drop(devs);
        Pool::open_paths(&paths, &opts.open)
    }

    fn from_parts(
        sb: Superblock,
        members: Vec<MemberDev>,
        read_only: bool,
        pmd: Option<Catalog>,
    ) -> Pool {
        Pool {
            inner: Arc::new(PoolInner {
                pmd,
                name: sb.name.clone(),
                uuid: sb.pool_uuid,
                read_only,
                sb: Mutex::new(sb),
                members: Mutex::new(members),
            }),
        }
    }

    /// Open an active pool by name or UUID.
    pub fn open(name_or_uuid: &str, opts: &OpenOptions) -> Result<Pool> {
        let Some(ent) = rundir::find_active(name_or_uuid)? else {
            return Err(Error::PoolNotFound(name_or_uuid.to_string()));
        };
        Self::open_paths(&ent.devices, opts)
    }

    /// Open the pool whose member devices are `paths` (all of them).
    pub fn open_paths(paths: &[PathBuf], opts: &OpenOptions) -> Result<Pool> {
        let engine = opts.engine()?;
        let read_only = opts.read_only || opts.inspect;
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
        }
        Ok(pool)
    }

    /// Create a pool on devices that are already open (memory, fault-injecting
    /// or files opened by the caller): no signature checks, ownership, locks or
    /// run directory. Returns the pool UUID; open it with [`Pool::open_on`].
    pub fn format_on(
        name: &str,
        devs: &[(DeviceRef, MediaClass, u64)],
        label: &str,
    ) -> Result<Uuid> {
        validate_name(name).map_err(Error::InvalidName)?;
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
                return Err(Error::TooSmall {
                    device: d.info().name(),
                    size: d.size(),
                    min,
                    class: *class,
                    zone_size: *zone,
                });
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
        )?;
        Ok(uuid)
    }

    /// Open a pool on devices that are already open (see [`Pool::format_on`]).
    pub fn open_on(devs: Vec<DeviceRef>, read_only: bool) -> Result<Pool> {
        assemble(
            devs.into_iter().map(|d| (None, d)).collect(),
            read_only,
            true,
        )
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
            m.damaged.clear();
        }
        Ok(())
    }

    /// Write the pool superblock (after `f` changed it) to every member, one at a time.
    fn update_sb(&self, f: impl FnOnce(&mut Superblock) -> Result<()>) -> Result<()> {
        if self.inner.read_only {
            return Err(Error::ReadOnly(self.inner.name.clone()));
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

    /// Pool name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Pool UUID.
    pub fn uuid(&self) -> Uuid {
        self.inner.uuid
    }

    /// A copy of the current pool superblock (as the capacity device holds it).
    pub fn superblock(&self) -> Superblock {
        lock(&self.inner.sb).clone()
    }

    /// The device of a media class.
    pub fn device(&self, class: MediaClass) -> Result<DeviceRef> {
        lock(&self.inner.members)
            .iter()
            .find(|m| m.class == class)
            .map(|m| Arc::clone(&m.dev))
            .ok_or(Error::NoSuchClass(class))
    }

    /// Media classes present.
    pub fn classes(&self) -> Vec<MediaClass> {
        lock(&self.inner.members).iter().map(|m| m.class).collect()
    }

    /// Member device paths.
    pub fn device_paths(&self) -> Vec<PathBuf> {
        lock(&self.inner.members)
            .iter()
            .filter_map(|m| m.path.clone())
            .collect()
    }

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

    /// Health: `ok`, or what is wrong.
    pub fn health(&self) -> String {
        let members = lock(&self.inner.members);
        let bad: Vec<String> = members
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
            .collect();
        if bad.is_empty() {
            "ok".into()
        } else {
            format!("degraded ({})", bad.join("; "))
        }
    }

    /// Every property.
    pub fn props(&self) -> PoolProps {
        let sb = lock(&self.inner.sb).clone();
        let devices = lock(&self.inner.members)
            .iter()
            .map(|m| {
                let i = m.dev.info();
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
            classes: self.usage(),
            devices,
        }
    }

    /// One property's value as text.
    pub fn get(&self, prop: &str) -> Result<String> {
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
            "mblocksize_capacity" => {
                class(MediaClass::Capacity).map_or_else(|| "-".into(), |u| u.zone_size.to_string())
            }
            "mblocksize_staging" => {
                class(MediaClass::Staging).map_or_else(|| "-".into(), |u| u.zone_size.to_string())
            }
            "devices" => p
                .devices
                .iter()
                .map(|d| format!("{}:{}", d.class, d.path))
                .collect::<Vec<_>>()
                .join(","),
            other => {
                return Err(Error::UnknownProperty {
                    name: other.into(),
                    known: PROPERTIES.join(", "),
                })
            }
        })
    }

    /// Set properties (`uid`, `gid`, `mode`, `label`, `spare_capacity`,
    /// `spare_staging`). All are checked before any is written; ownership
    /// is applied to every member device.
    pub fn set(&self, props: &[(String, String)]) -> Result<()> {
        let mut sb = lock(&self.inner.sb).clone();
        for (k, v) in props {
            let bad = |why: &str| Error::InvalidArgument(format!("{k}={v}: {why}"));
            match k.as_str() {
                "uid" => sb.uid = v.parse().map_err(|_| bad("not a numeric uid"))?,
                "gid" => sb.gid = v.parse().map_err(|_| bad("not a numeric gid"))?,
                "mode" => {
                    let m = u32::from_str_radix(v.trim_start_matches("0o"), 8)
                        .map_err(|_| bad("not an octal mode"))?;
                    if m > 0o7777 {
                        return Err(bad("not a permission mode"));
                    }
                    sb.mode = m;
                }
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
                    return Err(Error::UnknownProperty {
                        name: other.into(),
                        known: SETTABLE.join(", "),
                    })
                }
            }
        }
        let (uid, gid, mode, spare) = (sb.uid, sb.gid, sb.mode, sb.spare_pct);
        self.update_sb(move |s| {
            *s = Superblock {
                generation: s.generation,
                members: s.members.clone(),
                ..sb
            };
            Ok(())
        })?;
        if let Some(p) = self.inner.pmd.as_ref() {
            for c in MediaClass::ALL {
                p.set_spare(c, spare[c.index()]);
            }
        }
        for p in self.device_paths() {
            apply_ownership(&p, uid, gid, mode)?;
        }
        Ok(())
    }

    /// Add a media class on `spec`'s device. Usable at once.
    pub fn add(&self, class: MediaClass, spec: &DeviceSpec, force: bool) -> Result<()> {
        if self.inner.read_only {
            return Err(Error::ReadOnly(self.inner.name.clone()));
        }
        check_zone_size(spec.zone_size)?;
        if self.classes().contains(&class) {
            return Err(Error::ClassExists(class));
        }
        let sb0 = self.superblock();
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
            if let Some(Signature::Mpool { name, uuid }) = superblock::probe(d.as_ref())? {
                if uuid == self.uuid() {
                    return Err(Error::InvalidArgument(format!(
                        "{path} is already a device of pool '{name}'"
                    )));
                }
                if rundir::find_active(&uuid.to_string())?.is_some() || !force {
                    return Err(Error::InOtherPool {
                        device: path.clone(),
                        pool: name,
                    });
                }
            }
            vet_device(d.as_ref(), &path, class, spec.zone_size, force)?;
            lock_member(&d, false, self.name(), &self.uuid())
        })();
        if let Err(e) = vet {
            if !existed {
                let _ = std::fs::remove_file(&spec.path);
            }
            return Err(e);
        }
        let m = Member {
            dev_uuid: Uuid::new_v4(),
            class,
            zone_size: spec.zone_size,
            size: d.size(),
        };
        if force {
            superblock::wipe_signatures(d.as_ref())?;
        }
        // The new device gets its superblock first; the others then list it.
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
        if let Some(p) = self.inner.pmd.as_ref() {
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
        lock(&self.inner.members).push(MemberDev {
            path: Some(spec.path.clone()),
            dev: d.clone() as DeviceRef,
            class,
            dev_uuid: m.dev_uuid,
            zone_size: spec.zone_size,
            damaged: Vec::new(),
        });
        self.update_sb(|s| {
            s.members.push(m);
            Ok(())
        })?;
        apply_ownership(&spec.path, sb0.uid, sb0.gid, sb0.mode)?;
        if d.info().kind == DeviceKind::File {
            rundir::remember_paths(std::slice::from_ref(&spec.path))?;
        }
        if let Some(mut ent) = rundir::find_active(&self.uuid().to_string())? {
            ent.devices
                .push(std::fs::canonicalize(&spec.path).unwrap_or_else(|_| spec.path.clone()));
            rundir::write_active(&ent)?;
        }
        Ok(())
    }

    fn pmd(&self) -> Result<&Catalog> {
        self.inner.pmd.as_ref().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "pool '{}' was opened for inspection only",
                self.inner.name
            ))
        })
    }

    /// Allocate an mblock in `class`. It holds up to one zone (the class'
    /// mblock size) and vanishes on a crash until committed.
    pub fn mblock_alloc(&self, class: MediaClass) -> Result<ObjectId> {
        self.pmd()?.mblock_alloc(class)
    }

    /// Append `data` to an uncommitted mblock (any length; large writes go
    /// to the device as many requests in flight).
    pub fn mblock_write(&self, id: ObjectId, data: &[u8]) -> Result<()> {
        self.pmd()?.mblock_write(id, data)
    }

    /// Append all of `buf` to an uncommitted mblock, as
    /// [`Pool::mblock_write`], and hand the buffer back for reuse. When
    /// the mblock's content so far is a whole number of sectors and the
    /// buffer is aligned at least to the pool's sector size, the device
    /// writes straight from the buffer, in one request (no copy); otherwise
    /// its bytes are copied as by `mblock_write`. Its length is its
    /// [`AlignedBuf::len`], a multiple of its alignment; for a shorter last
    /// piece use `mblock_write`. On an error the buffer is dropped.
    pub fn mblock_write_aligned(&self, id: ObjectId, buf: AlignedBuf) -> Result<AlignedBuf> {
        self.pmd()?.mblock_write_buf(id, buf)
    }

    /// Commit: the data is flushed, then the commit record (with the content
    /// CRC) is made durable. Returns when the mblock is durable and immutable.
    pub fn mblock_commit(&self, id: ObjectId) -> Result<ObjectProps> {
        self.pmd()?.mblock_commit(id)
    }

    /// Discard an uncommitted mblock.
    pub fn mblock_abort(&self, id: ObjectId) -> Result<()> {
        check_type(id, ObjType::Mblock)?;
        self.pmd()?.abort(id)
    }

    /// Delete a committed mblock: durable when this returns (a crash can
    /// never bring it back), and only then is its zone free for reuse.
    pub fn mblock_delete(&self, id: ObjectId) -> Result<()> {
        check_type(id, ObjType::Mblock)?;
        self.pmd()?.delete(id, true)
    }

    /// Delete a committed mblock without waiting for the delete to be
    /// durable: it is gone for readers at once, and its record rides on the
    /// next flush of its metadata log (a later commit or durable delete in
    /// the same log, [`Pool::sync`], a compaction, the background thread
    /// within about 100 ms, or closing the pool). Until then a crash brings
    /// it back whole, never partly; its zone is not reused before the
    /// delete is durable. For engines that delete many objects whose loss
    /// they record elsewhere (an LSM-tree's compaction inputs): one flush
    /// serves many deletes. [`Pool::sync`] makes every deferred delete
    /// durable.
    pub fn mblock_delete_deferred(&self, id: ObjectId) -> Result<()> {
        check_type(id, ObjType::Mblock)?;
        self.pmd()?.delete(id, false)
    }

    /// Make every deferred delete durable ([`Pool::mblock_delete_deferred`]);
    /// their zones are then free.
    pub fn sync(&self) -> Result<()> {
        self.pmd()?.sync()
    }

    /// Read `buf.len()` bytes at `offset` of a committed mblock.
    pub fn mblock_read(&self, id: ObjectId, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.pmd()?.mblock_read(id, offset, buf)
    }

    /// Several reads of committed mblocks at once: with io_uring all of them
    /// are in flight together (a multi-get keeps the device's queue full from
    /// one thread). Every read is checked before any I/O is issued.
    pub fn mblock_read_batch(&self, reads: &mut [MblockRead<'_>]) -> Result<()> {
        self.pmd()?.mblock_read_batch(reads, usize::MAX)
    }

    /// As [`Pool::mblock_read_batch`], with at most `depth` device requests
    /// in flight at a time, refilled as each completes: a long list of reads
    /// becomes a queue of that depth (what fio calls `--iodepth`).
    pub fn mblock_read_queued(&self, reads: &mut [MblockRead<'_>], depth: usize) -> Result<()> {
        self.pmd()?.mblock_read_batch(reads, depth.max(1))
    }

    /// Reads of committed mblocks into owned aligned buffers, with at most
    /// `depth` device requests in flight: the zero-copy form of
    /// [`Pool::mblock_read_queued`] for a caller that keeps its own aligned
    /// buffers (a storage engine's block cache).
    ///
    /// A read whose offset is a multiple of the pool's sector size, into a
    /// buffer aligned at least that much, goes from the device straight into
    /// its buffer; any other is read through a bounce buffer and copied.
    /// A buffer may run past the end of the content up to the next multiple
    /// of its alignment (so a whole mblock reads into one buffer), and those
    /// bytes come back zero; past that, or past the mblock's zone, the read
    /// is refused with [`Error::ReadOutOfRange`]. Every read is checked
    /// before any I/O is issued. The buffers come back in the order given;
    /// on an I/O error they are dropped with the batch.
    pub fn mblock_read_aligned(
        &self,
        reads: Vec<AlignedRead>,
        depth: usize,
    ) -> Result<Vec<AlignedRead>> {
        self.pmd()?.mblock_read_aligned(reads, depth.max(1))
    }

    /// A reader that keeps up to `depth` (1 to 256) reads of committed
    /// mblocks in flight across calls, into the caller's aligned buffers:
    /// push reads as they are known, take completed ones as they come, and
    /// the device's queue never drains between batches. See
    /// [`MblockReader`].
    pub fn mblock_reader(&self, depth: usize) -> Result<MblockReader<'_>> {
        Ok(MblockReader::new(self.pmd()?, depth))
    }

    /// Properties of any object, committed or not (`find`).
    pub fn object_props(&self, id: ObjectId) -> Result<ObjectProps> {
        self.pmd()?.props(id)
    }

    /// Every committed object, sorted by ID.
    pub fn objects(&self) -> Result<Vec<ObjectProps>> {
        self.pmd()?.objects()
    }

    /// Number of committed objects.
    pub fn object_count(&self) -> Result<u64> {
        Ok(self.pmd()?.count())
    }

    /// Verify a committed mblock's content against the CRC recorded at commit.
    pub fn mblock_verify(&self, id: ObjectId) -> Result<()> {
        self.pmd()?.verify(id)
    }

    /// Allocate a user mlog of at least `capacity` bytes (whole zones) in `class`.
    pub fn mlog_alloc(&self, class: MediaClass, capacity: u64) -> Result<ObjectId> {
        self.pmd()?.log_alloc(ObjType::Mlog, class, capacity)
    }

    /// Commit a user mlog: it survives crashes from now on.
    pub fn mlog_commit(&self, id: ObjectId) -> Result<ObjectProps> {
        check_type(id, ObjType::Mlog)?;
        self.pmd()?.log_commit(id)
    }

    /// Discard an uncommitted user mlog.
    pub fn mlog_abort(&self, id: ObjectId) -> Result<()> {
        check_type(id, ObjType::Mlog)?;
        self.pmd()?.abort(id)
    }

    /// Delete a committed user mlog (refused while a handle is open).
    pub fn mlog_delete(&self, id: ObjectId) -> Result<()> {
        check_type(id, ObjType::Mlog)?;
        self.pmd()?.delete(id, true)
    }

    /// Open a user mlog. Every caller shares one handle per mlog.
    pub fn mlog_open(&self, id: ObjectId) -> Result<Arc<Mlog>> {
        self.pmd()?.mlog_open(id)
    }

    /// Allocate a user MDC whose two logs hold at least `capacity` bytes each.
    pub fn mdc_alloc(&self, class: MediaClass, capacity: u64) -> Result<ObjectId> {
        self.pmd()?.log_alloc(ObjType::Mdc, class, capacity)
    }

    /// Commit a user MDC.
    pub fn mdc_commit(&self, id: ObjectId) -> Result<ObjectProps> {
        check_type(id, ObjType::Mdc)?;
        self.pmd()?.log_commit(id)
    }

    /// Discard an uncommitted user MDC.
    pub fn mdc_abort(&self, id: ObjectId) -> Result<()> {
        check_type(id, ObjType::Mdc)?;
        self.pmd()?.abort(id)
    }

    /// Delete a committed user MDC (refused while a handle is open).
    pub fn mdc_delete(&self, id: ObjectId) -> Result<()> {
        check_type(id, ObjType::Mdc)?;
        self.pmd()?.delete(id, true)
    }

    /// Open a user MDC. Every caller shares one handle per MDC.
    pub fn mdc_open(&self, id: ObjectId) -> Result<Arc<Mdc>> {
        self.pmd()?.mdc_open(id)
    }

    /// The user root MDC: where a client keeps its own metadata, found by
    /// this fixed call (created with the pool).
    pub fn root_mdc(&self) -> Result<Arc<Mdc>> {
        let p = self.pmd()?;
        p.mdc_open(p.root())
    }

    /// The root MDC's object ID.
    pub fn root_mdc_id(&self) -> Result<ObjectId> {
        Ok(self.pmd()?.root())
    }

    /// Compact every pool-metadata MDC now (normally done in the background).
    pub fn compact_metadata(&self) -> Result<()> {
        self.pmd()?.compact_all()
    }

    /// State of each pool-metadata MDC.
    pub fn metadata_stats(&self) -> Result<Vec<crate::catalog::MdcStats>> {
        Ok(self.pmd()?.mdc_stats())
    }

    /// Background compactions done since open.
    pub fn compactions(&self) -> Result<u64> {
        Ok(self.pmd()?.compactions())
    }

    /// Close the pool (also done on drop of the last clone).
    pub fn close(self) {
        drop(self);
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        if !self.read_only {
            rundir::clear_holder(&self.uuid.to_string());
        }
    }
}

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
        [] => Err(Error::PoolNotFound(name_or_uuid.to_string())),
        [p] => {
            if !p.missing.is_empty() {
                return Err(Error::Incomplete {
                    name: p.name.clone(),
                    missing: p.missing.len(),
                });
            }
            Ok((p.devices.iter().map(|d| d.path.clone()).collect(), false))
        }
        many => Err(Error::Ambiguous(format!(
            "{} pools are named '{name_or_uuid}' ({}); name one by UUID",
            many.len(),
            many.iter()
                .map(|p| p.uuid.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Destroy a pool: wipe its superblocks on every member and forget it.
/// Refused while another process has it open.
pub fn destroy(name_or_uuid: &str) -> Result<()> {
    let (paths, _) = locate(name_or_uuid)?;
    let pool = Pool::open_paths(
        &paths,
        &OpenOptions {
            read_only: false,
            engine: Some(EngineChoice::Sync),
            inspect: false,
        },
    )?;
    let name = pool.name().to_string();
    let members = lock(&pool.inner.members);
    // Capacity last: until then the pool is still recognisable as incomplete.
    for m in members.iter().rev() {
        superblock::wipe(m.dev.as_ref())?;
    }
    drop(members);
    rundir::remove_active(&name)?;
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
    if let Some(a) = rundir::find_active(&pool.uuid().to_string())? {
        return Ok(a);
    }
    if let Some(a) = rundir::find_active(pool.name())? {
        return Err(Error::PoolExists {
            name: pool.name().into(),
            detail: format!("another pool with that name is active, uuid {}", a.uuid),
        });
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
    let files: Vec<PathBuf> = lock(&pool.inner.members)
        .iter()
        .filter(|m| m.dev.info().kind == DeviceKind::File)
        .filter_map(|m| m.path.clone())
        .collect();
    rundir::remember_paths(&files)?;
    rundir::write_active(&ent)?;
    Ok(ent)
}

/// Remove an active pool from the run directory. Refused while it is open.
pub fn deactivate(name_or_uuid: &str) -> Result<()> {
    let Some(a) = rundir::find_active(name_or_uuid)? else {
        return Err(Error::PoolNotFound(name_or_uuid.to_string()));
    };
    // Taking the write lock proves nobody has it open.
    let pool = Pool::open_paths(
        &a.devices,
        &OpenOptions {
            read_only: false,
            engine: Some(EngineChoice::Sync),
            inspect: false,
        },
    );
    match pool {
        Ok(_)
        | Err(Error::Dev(DevError::NotFound { .. }))
        | Err(Error::Incomplete { .. })
        | Err(Error::Superblock { .. }) => {}
        Err(e) => return Err(e),
    }
    rundir::remove_active(&a.name)
}

/// Rename an inactive pool.
pub fn rename(old: &str, new: &str) -> Result<()> {
    validate_name(new).map_err(Error::InvalidName)?;
    if rundir::find_active(old)?.is_some() {
        return Err(Error::PoolActive(old.to_string()));
    }
    if let Some(a) = rundir::find_active(new)? {
        return Err(Error::PoolExists {
            name: new.into(),
            detail: format!("active, uuid {}", a.uuid),
        });
    }
    let rep = scan::scan(&[])?;
    if let Some(p) = rep.pools.iter().find(|p| p.name == new) {
        return Err(Error::PoolExists {
            name: new.into(),
            detail: format!("uuid {}", p.uuid),
        });
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
