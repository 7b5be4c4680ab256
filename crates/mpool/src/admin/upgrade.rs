//! `mpool upgrade`: convert a pool of an older format version (1 or 2) in
//! place to the current one (format version 3), crash-safely.
//!
//! The steps, each one crash-safe on its own:
//!
//! 1. The pool is opened read-only (a shared lock: refused while another
//!    process has it open read-write) and must replay cleanly; each
//!    member's superblocks are read to see what is left to do.
//! 2. Opened read-write (exclusive lock; this also rewrites stale or
//!    damaged superblock copies, as every read-write open does), its
//!    superblocks are rewritten on every member as version 3 with a bumped
//!    generation and the `upgrade_pending` flag, through the pool's one
//!    superblock update (per member: copy 0, flush, copy 1, flush). A crash
//!    between members leaves some members at the old version and some at
//!    version 3: the newest generation (version 3) speaks for the pool, and
//!    the next read-write open (any, `upgrade` included) rewrites the stale
//!    members.
//! 3. Reopened as version 3, [`rewrite_metadata`] rewrites the pool
//!    metadata, then a second superblock update clears `upgrade_pending`.
//!    A crash before that leaves a version-3 pool with the flag set, which
//!    opens as version 3; running `upgrade` again redoes this step.
//!
//! A pool already at the current version on every member, without the
//! flag, is left alone: nothing is written.

use crate::error::{Error, PoolError, Result};
use crate::format::superblock::{MediaClass, SB_VERSION};
use crate::pool::Pool;
use crate::superblock;
use serde::Serialize;

/// What `upgrade` found on one member before it started.
#[derive(Debug, Clone, Serialize)]
pub struct MemberState {
    /// Its path (or device name, for a pool opened on devices).
    pub device: String,
    /// Its media class.
    pub class: MediaClass,
    /// Format version of its newest valid superblock copy.
    pub version: u16,
    /// Generation of that copy.
    pub generation: u64,
    /// True when a copy is damaged or older than the other.
    pub damaged: bool,
}

/// What [`upgrade`] did, or with `dry_run` would do.
#[derive(Debug, Clone, Serialize)]
pub struct UpgradeReport {
    /// Pool name.
    pub name: String,
    /// Pool UUID.
    pub uuid: String,
    /// The pool's format version before (its newest superblock's).
    pub version_before: u16,
    /// Its format version after (with `dry_run`: what it would be).
    pub version_after: u16,
    /// Superblock generation before.
    pub generation_before: u64,
    /// Superblock generation after (with `dry_run`: unchanged).
    pub generation_after: u64,
    /// The members as found.
    pub members: Vec<MemberState>,
    /// The steps taken (with `dry_run`: those that would be taken), in order.
    pub steps: Vec<String>,
    /// Nothing to do: the pool was already at the current version.
    pub already_current: bool,
    /// Nothing was written: a dry run.
    pub dry_run: bool,
}

/// Options of [`upgrade`].
#[derive(Debug, Clone, Copy, Default)]
pub struct UpgradeOptions {
    /// Say what would change, write nothing.
    pub dry_run: bool,
}

/// Rewrite the pool metadata of a pool whose superblocks were just made
/// version 3 (`pool` is open read-write, as version 3): the metadata logs
/// become mirrored ([`Pool::mirror_metadata`] compacts MDC0 and every
/// MDC1..N whose active log is not mirrored yet; see "Mirrored logs" in
/// `docs/format.md`). Older mblock records keep their whole-content CRC
/// and are verified through it; new commits get per-block checksums. It
/// is idempotent: a crash during it leaves `upgrade_pending` set and the
/// next `upgrade` calls it again on whatever the crash left (a complete
/// old or new state of each container, as compaction guarantees), and
/// containers already mirrored are left alone. Returns how many
/// containers it rewrote.
pub fn rewrite_metadata(pool: &Pool) -> Result<u32> {
    pool.mirror_metadata()
}

/// Upgrade the pool named (by name or UUID; active or found by scanning)
/// to the current format version; `progress` is told each step as it
/// starts. Refused while another process has the pool open, and when its
/// metadata does not replay cleanly ([`PoolError::NotUpgradable`]).
pub fn upgrade(
    name_or_uuid: &str,
    opts: &UpgradeOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<UpgradeReport> {
    let (paths, _active) = super::lifecycle::locate(name_or_uuid)?;
    let mut open = |read_only: bool| super::lifecycle::open_admin(&paths, read_only);
    run(name_or_uuid, &mut open, opts, progress)
}

/// [`upgrade`] on devices already open (a pool made by
/// [`Pool::format_on`]); for the crash sweeps. With the `internals`
/// feature only.
#[cfg(feature = "internals")]
pub fn upgrade_on(
    devs: &[crate::dev::DeviceRef],
    opts: &UpgradeOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<UpgradeReport> {
    let mut open = |read_only: bool| Pool::open_on(devs.to_vec(), read_only);
    run("(on devices)", &mut open, opts, progress)
}

/// An open that failed on the pool's metadata (or an object in it): the
/// pool does not replay cleanly and is not upgraded.
fn not_clean(name: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::Metadata(_) | Error::Object(_) => PoolError::NotUpgradable {
            name: name.to_string(),
            why: format!("its metadata does not replay cleanly ({e})"),
        }
        .into(),
        e => e,
    }
}

/// True when `e` comes from a write to a device opened read-only: a
/// read-only open met something only a read-write open finishes.
fn needs_write(e: &Error) -> bool {
    use crate::dev::DevError;
    use crate::error::{MetadataError, StorageError};
    use crate::mdc::MdcError;
    use crate::mlog::MlogError;
    let mlog = |m: &MlogError| matches!(m, MlogError::Dev(DevError::ReadOnly { .. }));
    match e {
        Error::Storage(StorageError::Dev(DevError::ReadOnly { .. })) => true,
        Error::Metadata(MetadataError::Mlog(m)) => mlog(m),
        Error::Metadata(MetadataError::Mdc(MdcError::Mlog(m))) => mlog(m),
        _ => false,
    }
}

fn run(
    asked: &str,
    open: &mut dyn FnMut(bool) -> Result<Pool>,
    opts: &UpgradeOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<UpgradeReport> {
    // 1. Look, read-only: the pool must replay cleanly. A pool whose
    //    replay must write to finish (an MDC whose compaction left its old
    //    log to be erased) is looked at read-write, as `check --repair`
    //    would open it, unless this is a dry run.
    let ro = match open(true) {
        Ok(p) => p,
        Err(e) if !opts.dry_run && needs_write(&e) => open(false).map_err(not_clean(asked))?,
        Err(e) if needs_write(&e) => {
            return Err(PoolError::NotUpgradable {
                name: asked.to_string(),
                why: format!(
                    "only a read-write open can finish its recovery ({e}), and a dry run \
                     writes nothing"
                ),
            }
            .into())
        }
        Err(e) => return Err(not_clean(asked)(e)),
    };
    let sb = ro.sb();
    let mut members = Vec::new();
    for (path, dev) in ro.members() {
        let r = superblock::read(dev.as_ref())?;
        let device = path.map_or_else(|| dev.info().name(), |p| p.display().to_string());
        let Some(best) = r.best() else {
            // Assembly found a valid copy on every member; a device whose
            // copies changed since is not upgraded.
            return Err(PoolError::NotUpgradable {
                name: sb.name.clone(),
                why: format!("{device} has no valid superblock copy"),
            }
            .into());
        };
        members.push(MemberState {
            device,
            class: best.class,
            version: best.version,
            generation: best.generation,
            damaged: !r.damaged().is_empty(),
        });
    }
    ro.close()?;
    let mut rep = UpgradeReport {
        name: sb.name.clone(),
        uuid: sb.pool_uuid.to_string(),
        version_before: sb.version,
        version_after: SB_VERSION.max(sb.version),
        generation_before: sb.generation,
        generation_after: sb.generation,
        members,
        steps: Vec::new(),
        already_current: false,
        dry_run: opts.dry_run,
    };
    let flip = sb.version < SB_VERSION;
    let stale: Vec<MemberState> = rep
        .members
        .iter()
        .filter(|m| m.damaged || m.version != sb.version || m.generation != sb.generation)
        .cloned()
        .collect();
    if !flip && !sb.upgrade_pending && stale.is_empty() {
        rep.already_current = true;
        return Ok(rep);
    }
    let n = rep.members.len();
    let stale_step = (!stale.is_empty()).then(|| {
        format!(
            "rewrite the superblocks of {} (left behind by an interrupted update, or damaged)",
            stale
                .iter()
                .map(|m| format!(
                    "{} (version {}, generation {})",
                    m.device, m.version, m.generation
                ))
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    let flip_step = format!(
        "rewrite the superblocks of {n} member(s) as format version {SB_VERSION} \
         (generation {} -> {})",
        sb.generation,
        sb.generation + 1
    );
    let metadata_step = "rewrite the pool metadata (compact every metadata container)";
    let mark_step = "mark the upgrade finished in every member's superblocks";
    if opts.dry_run {
        rep.steps.extend(stale_step);
        if flip {
            rep.steps.push(flip_step);
        }
        if flip || sb.upgrade_pending {
            rep.steps.push(metadata_step.to_string());
            rep.steps.push(mark_step.to_string());
        }
        return Ok(rep);
    }
    let mut step = |rep: &mut UpgradeReport, s: String| {
        progress(&s);
        rep.steps.push(s);
    };

    // 2. Read-write (which rewrites stale or damaged superblock copies),
    //    then the superblocks. What is done follows what this open found
    //    (another process may have changed the pool since the look).
    let name = rep.name.clone();
    let not_clean = not_clean(&name);
    let mut pool = open(false).map_err(&not_clean)?;
    if let Some(s) = stale_step {
        step(&mut rep, s);
    }
    if pool.sb().version < SB_VERSION {
        step(&mut rep, flip_step);
        pool.update_sb(|s| {
            s.version = SB_VERSION;
            s.upgrade_pending = true;
            Ok(())
        })?;
        pool.close()?;
        pool = open(false).map_err(&not_clean)?;
    }
    // 3. The metadata, then the flag.
    if pool.sb().upgrade_pending {
        step(&mut rep, metadata_step.to_string());
        rewrite_metadata(&pool)?;
        // Reopened read-write before the flag is cleared: the open erases
        // the logs the compactions left behind (an MDC open erases its
        // inactive log when it holds records; a read-only open leaves it).
        pool.close()?;
        pool = open(false).map_err(&not_clean)?;
        step(&mut rep, mark_step.to_string());
        pool.update_sb(|s| {
            s.upgrade_pending = false;
            Ok(())
        })?;
    }
    let after = pool.sb();
    rep.version_after = after.version;
    rep.generation_after = after.generation;
    pool.close()?;
    Ok(rep)
}
