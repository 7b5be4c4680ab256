//! Pool metadata: the object table kept in MDC0 and MDC1..N, the uniquifier,
//! compaction, and the object operations (mblocks, user mlogs, user MDCs).
//!
//! MDC0 lists MDC1..N and the user root MDC. Each object record lives in the
//! MDC its ID names, so metadata work on different objects spreads over N
//! independent logs, each behind its own locks. The space map is rebuilt at
//! open from the committed objects.
//!
//! This file holds the [`Catalog`] itself, format and open. The rest:
//!
//! - `object`: a committed object in memory, a pending one, their properties;
//! - `shard`: one of MDC1..N, its appends, deferred deletes and ID counter;
//! - `replay`: replay of an MDC at open, verification of unsealed commits;
//! - `compaction`: rewriting an MDC as its live records;
//! - `background`: the thread that syncs, seals and compacts;
//! - `lifecycle`: allocate, write, commit, abort, delete, open user logs;
//! - `read`: reads of committed mblocks and their range checks;
//! - `mblock`: the mblock data path; `reader`: the queued reader.

mod background;
mod batch;
mod compaction;
mod csum;
mod group;
mod holds;
mod idmap;
mod lifecycle;
pub(crate) mod mblock;
mod object;
mod owner;
mod read;
mod reader;
mod replay;
mod reserve;
pub(crate) mod seal;
mod shard;

pub use reader::MblockReader;

pub(crate) use holds::{MapTarget, ZoneHolds};

pub(crate) use csum::csum_shift_of;
pub use csum::{Damage, DEFAULT_CSUM_CACHE_BYTES, DEFAULT_CSUM_SHIFT};

pub use object::ObjectProps;
pub use read::{AlignedRead, MblockRead};
pub use shard::MdcStats;

use crate::dev::DeviceRef;
use crate::error::{
    ensure_invariant, invariant_broken, Error, MetadataError, PoolError, Result, StorageError,
};
use crate::format::record::CatalogRecord;
use crate::format::superblock::MediaClass;
use crate::mdc::Mdc;
use crate::mlog::Mlog;
use crate::objid::{MdcId, ObjType, ObjectId};
use crate::space_map::ClassMap;
use background::spawn_compactor;
use compaction::compact_mdc;
use object::Pending;
use replay::{decode, mdc_records, replay, unfinished_commits};
use shard::Shard;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};

/// Uniquifiers reserved by one checkpoint record.
pub const UNIQ_STEP: u64 = 1024;
/// Log ID of MDC0's logs.
const MDC0_LOG_ID: u64 = 0x4d44_4330; // "MDC0"
                                      // A checkpoint reserves some IDs, and fewer than an MDC can name.
const _: () = assert!(UNIQ_STEP > 0 && UNIQ_STEP < crate::objid::UNIQ_MAX);
// MDC0's log ID is none of MDC1..N's (their index) and no object's (type
// code 0 is no object type), so a log is never taken for another.
const _: () = assert!(MDC0_LOG_ID > u8::MAX as u64 && MDC0_LOG_ID & 0xf == 0);

use crate::lock::{lock, read as rlock, write as wlock};

/// One media class of the pool.
#[derive(Debug)]
pub(crate) struct ClassDev {
    pub dev: DeviceRef,
    pub zone_size: u64,
    pub map: ClassMap,
}

impl ClassDev {
    fn off(&self, zone: u32) -> u64 {
        u64::from(zone) * self.zone_size
    }
    fn extent(&self, zone: u32, zones: u32) -> std::ops::Range<u64> {
        self.off(zone)..self.off(zone) + u64::from(zones) * self.zone_size
    }
    /// The postcondition of an allocation of zones `zone..zone+n`: in use
    /// in the class' space map and inside its device.
    fn check_alloc(&self, zone: u32, n: u32) -> Result<()> {
        ensure_invariant!(
            n > 0
                && (zone..zone.saturating_add(n)).all(|z| self.map.is_used(z))
                && self.extent(zone, n).end <= self.dev.size(),
            "zones {zone}+{n} allocated outside the class or its device ({} bytes)",
            self.dev.size()
        );
        Ok(())
    }
}

/// Where the pool metadata lives, as the superblock says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    /// First zone of MDC0 log A (log B follows).
    pub mdc0_zone: u32,
    /// Zones per MDC0 log.
    pub mdc0_zones: u32,
}

/// Claim MDC0's zones in the space map; the byte extents of its two logs.
fn mdc0_extents(
    cap: &ClassDev,
    layout: Layout,
) -> Result<(std::ops::Range<u64>, std::ops::Range<u64>)> {
    let (m0, z0) = (layout.mdc0_zone, layout.mdc0_zones);
    cap.map.claim(m0, 2 * z0)?;
    Ok((cap.extent(m0, z0), cap.extent(m0 + z0, z0)))
}

/// Refuse devices whose sectors are too large for the superblock layout.
fn check_sectors(classes: &[Option<ClassDev>; 2]) -> Result<()> {
    for c in classes.iter().flatten() {
        crate::superblock::check_sector(c.dev.as_ref())?;
    }
    Ok(())
}

/// The bytes of a device its superblock copies are written to (zone 0
/// holds nothing else).
pub(crate) fn superblock_span(sector: u32) -> std::ops::Range<u64> {
    use crate::format::superblock::{SB_OFFSETS, SB_SIZE};
    0..SB_OFFSETS[1] + (SB_SIZE as u64).max(u64::from(sector))
}

/// Sizing of MDC1..N for a new pool.
pub(crate) fn mdc_plan(cap_zones: u64, zone_size: u64) -> (u8, u32) {
    // N grows with the pool up to 4; each log gets 1/256 of the capacity
    // spread over 2N logs, at least one zone.
    let n = (cap_zones / 64).clamp(1, 4) as u8;
    let bytes = cap_zones * zone_size / 256 / (2 * u64::from(n));
    let zones = bytes.div_ceil(zone_size).clamp(1, 1 << 16) as u32;
    (n, zones)
}

/// An MDC that could not be replayed at open.
#[derive(Debug, Clone)]
pub(crate) struct DamagedMdc {
    /// MDC number.
    pub(crate) index: u8,
    /// What failed.
    pub(crate) reason: String,
    /// Objects its readable records name (adds minus deletes up to the damage).
    pub(crate) known: Vec<ObjectId>,
    /// Its log zones: (log A, log B, zones per log).
    pub(crate) loc: (u32, u32, u32),
}

/// Whether an error replaying an MDC means the MDC is damaged (the pool can
/// open degraded), not that the pool cannot open at all.
fn is_damage(e: &Error) -> bool {
    matches!(e, Error::Metadata(_) | Error::Storage(_) | Error::Object(_))
}

#[derive(Debug)]
struct Inner {
    classes: [OnceLock<ClassDev>; 2],
    /// Held open for the pool's lifetime (MDC0 changes only at create, and
    /// when [`Catalog::mirror_metadata`] compacts it).
    mdc0: Mutex<Mdc0>,
    /// The MDCs replayed (positions need not match their numbers when
    /// some are damaged; see `Inner::shard`).
    shards: Vec<Shard>,
    /// MDCs that could not be replayed.
    damaged: Vec<DamagedMdc>,
    /// Objects allocated and not committed yet, by ID.
    pending: idmap::IdMap<Arc<Mutex<Option<Pending>>>>,
    /// Commits with a caller's record waiting to go to the device in one
    /// batch (`group.rs`).
    group: Mutex<group::Queue>,
    /// Where a new leader waits for the content writes begun before it
    /// took the lead, and for the commits on their way (`group.rs`).
    group_cv: Condvar,
    /// Whether a thread leads a batch (`group::Queue::leading`, kept
    /// with it under `group`'s lock): read without the lock by every
    /// mblock write, which needs the lock only while a batch runs.
    group_leading: crate::lock::Padded<std::sync::atomic::AtomicBool>,
    /// One handle per user log for the pool's lifetime: a second instance of
    /// the same log would not see the first one's buffered appends.
    open_logs: Mutex<HashMap<u64, Arc<Mlog>>>,
    open_mdcs: Mutex<HashMap<u64, Arc<Mdc>>>,
    root: MdcId,
    cursor: AtomicUsize,
    read_only: bool,
    /// Commit capacity-class mblocks with one flush (format version 2).
    features: crate::format::Features,
    /// The background thread's wake-up: the flag is set to stop it.
    wake: (Mutex<bool>, Condvar),
    /// A compaction was asked for since the background thread last looked
    /// (see [`Inner::ask_compaction`]).
    compact_asked: crate::lock::Padded<AtomicBool>,
    compactions: AtomicU64,
    /// Checksum tables of mblocks read, mismatches found.
    csums: csum::Csums,
}

/// MDC0 and the records it holds (rewritten as they are by a compaction).
#[derive(Debug)]
struct Mdc0 {
    mdc: Mdc,
    records: Vec<Vec<u8>>,
}

/// The pool metadata and object operations of an open pool.
#[derive(Debug)]
pub(crate) struct Catalog {
    inner: Arc<Inner>,
    compactor: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Set once closed ([`Catalog::close`] or the drop).
    closed: AtomicBool,
}

impl Catalog {
    /// Format the metadata of a new pool: MDC0, MDC1..N, the user root MDC.
    /// The superblocks are written after this returns: they are the commit point.
    ///
    /// Before anything is written, every zone the metadata takes is given
    /// backing storage ([`crate::dev::Device::reserve`]), so that appends to
    /// the metadata of a sparse file never meet a hole the filesystem can no
    /// longer fill; so is the superblock span of every device, and with
    /// `preallocate` every device whole.
    pub(crate) fn format(
        classes: [Option<ClassDev>; 2],
        layout: Layout,
        preallocate: bool,
    ) -> Result<()> {
        let features = crate::format::Features::new(crate::format::superblock::SB_VERSION);
        Catalog::format_with(classes, layout, preallocate, features)
    }

    /// [`Catalog::format`] for a pool of the format version `features`
    /// names (a version-3 pool's metadata logs are mirrored).
    pub(crate) fn format_with(
        classes: [Option<ClassDev>; 2],
        layout: Layout,
        preallocate: bool,
        features: crate::format::Features,
    ) -> Result<()> {
        let mirrored = features.mirrored_metadata();
        check_sectors(&classes)?;
        let cap = classes[0]
            .as_ref()
            .ok_or(PoolError::NoSuchClass(MediaClass::Capacity))?;
        let (a0, b0) = mdc0_extents(cap, layout)?;
        let (n, zones) = mdc_plan(
            cap.map.total() + u64::from(layout.mdc0_zone + 2 * layout.mdc0_zones),
            cap.zone_size,
        );
        // Every zone first (the same zones, in the same order, as when each
        // MDC was allocated as it was written), then the reservation.
        let mut locs = Vec::new();
        for i in 1..=n {
            let a = cap.map.alloc(zones)?;
            let b = cap.map.alloc(zones)?;
            locs.push((i, a, b));
        }
        let (ra, rb) = (cap.map.alloc(1)?, cap.map.alloc(1)?);
        for (k, c) in classes.iter().enumerate() {
            let Some(c) = c else { continue };
            let mut ranges = Vec::new();
            if preallocate {
                ranges.push(0..c.dev.size());
            } else {
                ranges.push(superblock_span(c.dev.sector()));
                if k == 0 {
                    ranges.extend([a0.clone(), b0.clone()]);
                    for &(_, a, b) in &locs {
                        ranges.extend([cap.extent(a, zones), cap.extent(b, zones)]);
                    }
                    ranges.extend([cap.extent(ra, 1), cap.extent(rb, 1)]);
                }
            }
            c.dev.reserve(&ranges)?;
        }
        let mdc0 = Mdc::create_with(Arc::clone(&cap.dev), a0, b0, MDC0_LOG_ID, mirrored)?;
        let mut first: Option<Mdc> = None;
        for (i, a, b) in locs {
            let m = Mdc::create_with(
                Arc::clone(&cap.dev),
                cap.extent(a, zones),
                cap.extent(b, zones),
                u64::from(i),
                mirrored,
            )?;
            m.append(&CatalogRecord::UniqCkpt { next: 1 }.encode(), false)?;
            mdc0.append(
                &CatalogRecord::MdcLoc {
                    index: i,
                    zone_a: a,
                    zone_b: b,
                    zones,
                }
                .encode(),
                false,
            )?;
            if i == 1 {
                first = Some(m);
            } else {
                m.sync()?;
            }
        }
        // The user root MDC: object 1 of MDC1, two single-zone logs.
        let first = first.ok_or_else(|| invariant_broken(format!("mdc_plan gave {n} MDCs")))?;
        let root = ObjectId::new(ObjType::Mdc, 1, 0);
        Mdc::create_with(
            Arc::clone(&cap.dev),
            cap.extent(ra, 1),
            cap.extent(rb, 1),
            root.raw(),
            mirrored,
        )?
        .sync()?;
        first.append(
            &CatalogRecord::Mlog {
                id: root,
                class: MediaClass::Capacity,
                zone: ra,
                zone_b: rb,
                zones: 1,
            }
            .encode(),
            true,
        )?;
        mdc0.append(&CatalogRecord::RootMdc { id: root }.encode(), true)?;
        Ok(())
    }

    /// MDCs that could not be replayed at open (the pool is degraded).
    pub(crate) fn damaged(&self) -> &[DamagedMdc] {
        &self.inner.damaged
    }

    /// Open the metadata: replay MDC0 and MDC1..N, rebuild the space map.
    /// `features`: what the pool's format version allows.
    pub(crate) fn open(
        classes: [Option<ClassDev>; 2],
        layout: Layout,
        read_only: bool,
        features: crate::format::Features,
    ) -> Result<Catalog> {
        check_sectors(&classes)?;
        let cap = classes[0]
            .as_ref()
            .ok_or(PoolError::NoSuchClass(MediaClass::Capacity))?;
        let (a0, b0) = mdc0_extents(cap, layout)?;
        let mdc0 = Mdc::open_with(
            Arc::clone(&cap.dev),
            a0.clone(),
            b0.clone(),
            MDC0_LOG_ID,
            read_only,
        )
        .map_err(|e| name_mdc(0, e.into()))?;
        mdc0.set_mirror(features.mirrored_metadata());
        let mdc0_records = mdc_records(&mdc0).map_err(|e| name_mdc(0, e))?;
        let mut locs = Vec::new();
        let mut root = None;
        for rec in &mdc0_records {
            match decode(0, rec)? {
                CatalogRecord::MdcLoc {
                    index,
                    zone_a,
                    zone_b,
                    zones,
                } => locs.push((index, zone_a, zone_b, zones)),
                CatalogRecord::RootMdc { id } => root = Some(id),
                other => {
                    return Err(MetadataError::Corrupt(format!(
                        "MDC0 holds an object record: {other:?}"
                    ))
                    .into())
                }
            }
        }
        locs.sort_by_key(|l| l.0);
        if locs.is_empty()
            || locs
                .iter()
                .enumerate()
                .any(|(i, l)| usize::from(l.0) != i + 1)
        {
            return Err(MetadataError::Corrupt(format!(
                "MDC0 lists MDCs {:?}, expected 1..N",
                locs.iter().map(|l| l.0).collect::<Vec<_>>()
            ))
            .into());
        }
        let root = root.ok_or_else(|| MetadataError::Corrupt("MDC0 names no root MDC".into()))?;
        let root = MdcId::try_from(root).map_err(|_| {
            MetadataError::Corrupt(format!("MDC0 names {root}, not an MDC, as the root MDC"))
        })?;
        if !read_only {
            // A pool created before create reserved its metadata (or a file
            // copied sparse): allocate the logs now, where the filesystem
            // still can, before the open or anything after it appends. Best
            // effort: a full filesystem is no reason to refuse the open.
            let mut ranges = vec![superblock_span(cap.dev.sector()), a0.clone(), b0.clone()];
            for &(_, a, b, zones) in &locs {
                ranges.extend([cap.extent(a, zones), cap.extent(b, zones)]);
            }
            if let Err(e) = cap.dev.reserve(&ranges) {
                tracing::warn!("allocating the pool metadata: {e}");
            }
        }
        // Open and replay the shards (in parallel: each is an independent log).
        let replayed: Vec<Result<std::result::Result<Shard, DamagedMdc>>> =
            std::thread::scope(|s| {
                let hs: Vec<_> = locs
                    .iter()
                    .map(|&(index, a, b, zones)| {
                        let dev = Arc::clone(&cap.dev);
                        let (ea, eb) = (cap.extent(a, zones), cap.extent(b, zones));
                        let classes = &classes;
                        s.spawn(move || -> Result<std::result::Result<Shard, DamagedMdc>> {
                            let (dev2, ea2, eb2) = (Arc::clone(&dev), ea.clone(), eb.clone());
                            let res = (|| -> Result<Shard> {
                                let mdc = Mdc::open_with(dev, ea, eb, u64::from(index), read_only)?;
                                // Compactions make a version-3 pool's logs mirrored.
                                mdc.set_mirror(features.mirrored_metadata());
                                let mut r = replay(index, &mdc, features)?;
                                if let Some(bad) =
                                    r.objs.keys().chain(r.reserved.keys()).find(|k| {
                                        ObjectId::from_raw(**k).is_none_or(|id| id.mdc() != index)
                                    })
                                {
                                    return Err(MetadataError::Corrupt(format!(
                                        "MDC{index} holds object {bad:#x} of another MDC"
                                    ))
                                    .into());
                                }
                                let dropped =
                                    unfinished_commits(index, classes, &r.objs, &r.tail_commits);
                                for id in &dropped {
                                    r.objs.remove(&id.raw());
                                }
                                let next = r.ckpt.max(r.max_uniq + 1);
                                // The ID counter starts above every ID replayed.
                                ensure_invariant!(
                            r.objs
                                .keys()
                                .all(|k| ObjectId::from_raw(*k).is_some_and(|id| id.uniq() < next)),
                            "MDC{index}: the ID counter {next} is not above every ID replayed"
                        );
                                if !read_only && !dropped.is_empty() {
                                    // Before anything else is appended, and all at
                                    // once: once a record of the dropped commits is
                                    // no longer in the last flush set it would count.
                                    // A compaction rewrites the live objects only
                                    // (as type 4) and is all-or-nothing.
                                    compact_mdc(&mdc, &r.objs, &r.reserved, next)
                                        .map_err(Error::from)?;
                                    r.records = (r.objs.len() + r.reserved.len()) as u64 + 1;
                                } else if !read_only && !r.tail_commits.is_empty() {
                                    // Seal now: the commits just verified may have
                                    // been read from a volatile cache; this flush
                                    // makes them durable before anyone reads them,
                                    // and the next open need not read them again.
                                    mdc.append(&CatalogRecord::UniqCkpt { next }.encode(), true)?;
                                    r.records += 1;
                                }
                                Ok(Shard {
                                    index,
                                    mdc: RwLock::new(mdc),
                                    records: AtomicU64::new(r.records),
                                    objs: RwLock::new(r.objs),
                                    any_reserved: AtomicBool::new(!r.reserved.is_empty()),
                                    reserved: Mutex::new(r.reserved),
                                    adopting: Mutex::new(()),
                                    objs_gen: AtomicU64::new(0),
                                    // Skip to the checkpoint: IDs below it may have been handed out before the crash.
                                    uniq: Mutex::new(next),
                                    ckpt: AtomicU64::new(next),
                                    loc: (a, b, zones),
                                    awaiting: Mutex::new(Vec::new()),
                                    appends: AtomicU64::new(0),
                                    unsealed: AtomicBool::new(false),
                                    broken: std::sync::OnceLock::new(),
                                    owner: None,
                                })
                            })();
                            match res {
                                Ok(shard) => Ok(Ok(shard)),
                                // The MDC cannot be replayed: the pool opens
                                // degraded, with what it is known to hold.
                                Err(e) if is_damage(&e) => {
                                    // Read only: nothing is written to a damaged MDC.
                                    let mdc =
                                        Mdc::open_with(dev2, ea2, eb2, u64::from(index), true).ok();
                                    Ok(Err(DamagedMdc {
                                        index,
                                        reason: name_mdc(index, e).to_string(),
                                        known: replay::known_objects(index, mdc.as_ref()),
                                        loc: (a, b, zones),
                                    }))
                                }
                                Err(e) => Err(e),
                            }
                        })
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(invariant_broken("an MDC replay thread panicked"))
                        })
                    })
                    .collect()
            });
        let mut shards = Vec::with_capacity(replayed.len());
        let mut damaged = Vec::new();
        for s in replayed {
            match s? {
                Ok(shard) => shards.push(shard),
                Err(d) => {
                    tracing::warn!(
                        "MDC{} is damaged: {}; the pool opens degraded",
                        d.index,
                        d.reason
                    );
                    damaged.push(d);
                }
            }
        }
        // A damaged MDC's own logs stay claimed (its objects' zones are
        // unknown: the pool then takes no changes, see `check_writable`).
        for d in &damaged {
            for z in [d.loc.0, d.loc.1] {
                cap.map
                    .claim(z, d.loc.2)
                    .map_err(|e| MetadataError::Corrupt(format!("MDC{} log: {e}", d.index)))?;
            }
        }
        // Rebuild the space map.
        for s in &shards {
            cap.map
                .claim(s.loc.0, s.loc.2)
                .map_err(|e| MetadataError::Corrupt(format!("MDC{} log A: {e}", s.index)))?;
            cap.map
                .claim(s.loc.1, s.loc.2)
                .map_err(|e| MetadataError::Corrupt(format!("MDC{} log B: {e}", s.index)))?;
            for (id, o) in rlock(&s.objs).iter() {
                // Replay refused an ID of another MDC or of no valid type.
                let id = ObjectId::from_raw(*id)
                    .ok_or_else(|| invariant_broken(format!("object table key {id:#x}")))?;
                let c = classes[o.class().index()].as_ref().ok_or_else(|| {
                    MetadataError::Corrupt(format!(
                        "object {id} is in the {} class, which the pool lacks",
                        o.class()
                    ))
                })?;
                if id.ty() == ObjType::Mblock && u64::from(o.a) > c.zone_size {
                    return Err(MetadataError::Corrupt(format!(
                        "mblock {id} is {} bytes long; its zone holds {}",
                        o.a, c.zone_size
                    ))
                    .into());
                }
                let footprint = crate::format::record::CsumLayout {
                    len: u64::from(o.a),
                    shift: o.shift,
                    sector: u64::from(c.dev.sector()),
                }
                .footprint();
                if id.ty() == ObjType::Mblock && o.shift > 0 && footprint > c.zone_size {
                    return Err(MetadataError::Corrupt(format!(
                        "mblock {id} is {} bytes long; with its checksum table it takes \
                         {footprint} bytes, and its zone holds {}",
                        o.a, c.zone_size
                    ))
                    .into());
                }
                for (z, n) in o.zones(id.ty()) {
                    c.map
                        .claim(z, n)
                        .map_err(|e| MetadataError::Corrupt(format!("object {id}: {e}")))?;
                }
            }
            // Reserved mblocks hold their zones across a crash.
            for (raw, r) in lock(&s.reserved).iter() {
                let id = ObjectId::from_raw(*raw)
                    .ok_or_else(|| invariant_broken(format!("reserve table key {raw:#x}")))?;
                let c = classes[r.class.index()].as_ref().ok_or_else(|| {
                    MetadataError::Corrupt(format!(
                        "reserved mblock {id} is in the {} class, which the pool lacks",
                        r.class
                    ))
                })?;
                c.map
                    .claim(r.zone, 1)
                    .map_err(|e| MetadataError::Corrupt(format!("reserved mblock {id}: {e}")))?;
            }
        }
        if !read_only && owner::Locking::from_env() == owner::Locking::Owner {
            for s in &mut shards {
                match owner::Owner::spawn(s.index) {
                    Ok(o) => s.owner = Some(o),
                    Err(e) => tracing::warn!(
                        "MDC{}: no owner thread ({e}); appends stay on the callers' threads",
                        s.index
                    ),
                }
            }
        }
        // New objects go round the MDCs (in runs, see `Inner::new_id`)
        // starting at the one holding the fewest, so that short-lived
        // processes (each CLI command opens the pool anew) spread them too.
        let first = shards
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| rlock(&s.objs).len())
            .map_or(0, |(i, _)| i);
        let [c0, c1] = classes;
        let inner = Arc::new(Inner {
            classes: [
                c0.map_or_else(OnceLock::new, OnceLock::from),
                c1.map_or_else(OnceLock::new, OnceLock::from),
            ],
            mdc0: Mutex::new(Mdc0 {
                mdc: mdc0,
                records: mdc0_records,
            }),
            shards,
            damaged,
            pending: idmap::IdMap::new(),
            group: Mutex::new(group::Queue::default()),
            group_cv: Condvar::new(),
            group_leading: crate::lock::Padded::default(),
            open_logs: Mutex::new(HashMap::new()),
            open_mdcs: Mutex::new(HashMap::new()),
            root,
            cursor: AtomicUsize::new(first),
            read_only,
            features,
            wake: (Mutex::new(false), Condvar::new()),
            compact_asked: crate::lock::Padded::default(),
            compactions: AtomicU64::new(0),
            csums: csum::Csums::new(),
        });
        let compactor = if read_only {
            None
        } else {
            Some(spawn_compactor(Arc::downgrade(&inner)))
        };
        Ok(Catalog {
            inner,
            compactor: Mutex::new(compactor),
            closed: AtomicBool::new(false),
        })
    }

    /// Zones in use, free and spare per class.
    pub(crate) fn space(&self, class: MediaClass) -> Option<(u64, u64, u64, u64)> {
        let c = self.inner.classes[class.index()].get()?;
        Some((c.map.total(), c.map.used(), c.map.free(), c.map.spare()))
    }

    pub(crate) fn set_spare(&self, class: MediaClass, pct: u8) {
        if let Some(c) = self.inner.classes[class.index()].get() {
            c.map.set_spare_pct(pct);
        }
    }

    /// Make a new media class usable at once (`mpool add`).
    pub(crate) fn add_class(&self, class: MediaClass, c: ClassDev) -> Result<()> {
        crate::superblock::check_sector(c.dev.as_ref())?;
        self.inner.classes[class.index()]
            .set(c)
            .map_err(|_| PoolError::ClassExists(class).into())
    }

    /// Compactions done since open.
    pub(crate) fn compactions(&self) -> u64 {
        self.inner.compactions.load(Ordering::Relaxed)
    }

    /// Number of committed objects.
    pub(crate) fn count(&self) -> u64 {
        self.inner
            .shards
            .iter()
            .map(|s| rlock(&s.objs).len() as u64)
            .sum()
    }

    /// The type of every committed object.
    pub(crate) fn types(&self) -> Vec<crate::objid::ObjType> {
        let mut v = Vec::new();
        for s in &self.inner.shards {
            v.extend(
                rlock(&s.objs)
                    .keys()
                    .filter_map(|&id| crate::objid::ObjectId::from_raw(id).map(|i| i.ty())),
            );
        }
        v
    }

    /// Make every deferred delete durable (and free its zones).
    pub(crate) fn sync(&self) -> Result<()> {
        self.inner.check_writable()?;
        for s in &self.inner.shards {
            self.inner.sync_shard(s, false)?;
        }
        Ok(())
    }

    /// Compact every MDC now.
    pub(crate) fn compact_all(&self) -> Result<()> {
        for s in &self.inner.shards {
            self.inner.compact(s)?;
        }
        Ok(())
    }

    /// Make every pool-metadata log mirrored (docs/format.md, "Mirrored
    /// logs"): compact MDC0 and each of MDC1..N whose active log is not
    /// mirrored. Each is an MDC compaction, so a crash at any point leaves
    /// each MDC in its old or its new state. Only a version-3 pool may
    /// hold mirrored logs (older code refuses them): a pool of an older
    /// version is refused, so an upgrade writes the version first and
    /// calls this on the pool reopened. User MDCs become mirrored at their
    /// next compaction. Returns how many MDCs were compacted.
    pub(crate) fn mirror_metadata(&self) -> Result<u32> {
        self.inner.check_writable()?;
        if !self.inner.features.mirrored_metadata() {
            return Err(Error::InvalidArgument(format!(
                "mirrored metadata needs format version 3; the pool is version {}",
                self.inner.features.version
            )));
        }
        let mut done = 0;
        {
            let m0 = lock(&self.inner.mdc0);
            if !m0.mdc.is_mirrored() {
                compact_mdc0(&m0)?;
                done += 1;
            }
        }
        for s in &self.inner.shards {
            if !rlock(&s.mdc).is_mirrored() {
                self.inner.compact(s)?;
                done += 1;
            }
        }
        Ok(done)
    }

    /// The device bytes (on the capacity device) of the last flush set of
    /// MDC0's and each of MDC1..N's active log, named "MDC0", "MDC1"...
    /// For tests that damage them.
    #[cfg(feature = "internals")]
    pub(crate) fn metadata_last_flush_sets(&self) -> Result<Vec<(String, std::ops::Range<u64>)>> {
        let mut out = Vec::new();
        if let Some(r) = lock(&self.inner.mdc0).mdc.last_flush_set()? {
            out.push(("MDC0".to_string(), r));
        }
        for s in &self.inner.shards {
            if let Some(r) = rlock(&s.mdc).last_flush_set()? {
                out.push((format!("MDC{}", s.index), r));
            }
        }
        Ok(out)
    }

    /// Damaged header copies of the pool-metadata logs (MDC0's and each of
    /// MDC1..N's active log): (name, slot, what is wrong); with `repair`
    /// (a read-write pool), each is rewritten from the good copy first,
    /// and what was rewritten is returned.
    pub(crate) fn metadata_header_damage(&self, repair: bool) -> Result<Vec<(String, u8, String)>> {
        let mut out = Vec::new();
        let mut one = |name: String, mdc: &Mdc| -> Result<()> {
            let found = if repair {
                mdc.repair_header()?
            } else {
                mdc.header_damage()
            };
            if let Some((slot, why)) = found {
                out.push((name, slot, why));
            }
            Ok(())
        };
        one("MDC0".into(), &lock(&self.inner.mdc0).mdc)?;
        for s in &self.inner.shards {
            one(format!("MDC{}", s.index), &rlock(&s.mdc))?;
        }
        Ok(out)
    }

    /// Whether MDC0 and every one of MDC1..N has a mirrored active log.
    pub(crate) fn metadata_mirrored(&self) -> bool {
        lock(&self.inner.mdc0).mdc.is_mirrored()
            && self
                .inner
                .shards
                .iter()
                .all(|s| rlock(&s.mdc).is_mirrored())
    }
}

impl Catalog {
    /// Close: stop the background thread, then make every deferred delete
    /// durable and seal the logs. Every step is tried; the first error
    /// comes back. A background thread that panicked is a bug:
    /// [`invariant_broken`] (a panic in debug builds, [`Error::Internal`]
    /// in release builds).
    pub(crate) fn close(self) -> Result<()> {
        let (panicked, first) = self.shutdown();
        if panicked {
            return Err(invariant_broken(
                "the background thread of the pool metadata panicked",
            ));
        }
        first.map_or(Ok(()), Err)
        // The drop that follows finds it closed.
    }

    /// [`Catalog::close`] behind a shared reference, once: whether the
    /// background thread had panicked, and the first error of the syncs.
    fn shutdown(&self) -> (bool, Option<Error>) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return (false, None);
        }
        {
            let (m, cv) = &self.inner.wake;
            *lock(m) = true;
            cv.notify_all();
        }
        let panicked = lock(&self.compactor)
            .take()
            .is_some_and(|h| h.join().is_err());
        // A clean close leaves deferred deletes durable and no shared-flush
        // commit for the next open to verify.
        let mut first = None;
        if !self.inner.read_only {
            for s in &self.inner.shards {
                if let Err(e) = self.inner.sync_shard(s, true) {
                    tracing::warn!("closing MDC{}: {e}", s.index);
                    first.get_or_insert(e);
                }
            }
        }
        (panicked, first)
    }
}

/// The best effort of [`Catalog::close`] for a catalog that was dropped:
/// errors are logged (a sync's by `shutdown`).
impl Drop for Catalog {
    fn drop(&mut self) {
        if self.shutdown().0 {
            tracing::error!("the background thread of the pool metadata panicked");
        }
    }
}

/// A corrupt record found while opening MDCi, as an error that names the
/// MDC and the record (its offset in the active log's data area).
fn name_mdc(index: u8, e: Error) -> Error {
    use crate::mdc::MdcError;
    use crate::mlog::MlogError;
    match e {
        Error::Metadata(
            MetadataError::Mlog(MlogError::Corrupt { offset, reason })
            | MetadataError::Mdc(MdcError::Mlog(MlogError::Corrupt { offset, reason })),
        ) => MetadataError::Corrupt(format!(
            "MDC{index}: the record at offset {offset} of its log is corrupt: {reason}"
        ))
        .into(),
        other => other,
    }
}

/// Rewrite MDC0 as the records it holds (an MDC compaction: a crash leaves
/// the old log or the new one, whole). MDC0 takes no other appends, so
/// nothing races with it.
fn compact_mdc0(m0: &Mdc0) -> Result<()> {
    m0.mdc.cstart()?;
    let body = (|| -> Result<()> {
        for r in &m0.records {
            m0.mdc.append(r, false)?;
        }
        Ok(())
    })();
    if let Err(e) = body {
        // Before the end marker: the old log is still the one that opens.
        if m0.mdc.cabort().is_err() {
            tracing::warn!("MDC0: abandoning a failed compaction: {e}");
        }
        return Err(e);
    }
    m0.mdc.cend()?;
    Ok(())
}

/// Space-map errors that reach the pool's caller: no space, and claims
/// that fail while the map is rebuilt from the metadata at open (two
/// objects on one zone, a zone outside its class: the media contradicts
/// itself). No space is a [`StorageError`], a failed claim corrupt
/// metadata ([`MetadataError::Corrupt`]). A failed release never comes
/// here: it is a broken invariant (`ClassMap::release`).
impl From<crate::space_map::SpaceMapError> for Error {
    fn from(e: crate::space_map::SpaceMapError) -> Self {
        match e {
            crate::space_map::SpaceMapError::NoSpace { .. } => StorageError::NoSpace(e).into(),
            other => MetadataError::Corrupt(other.to_string()).into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::MemDevice;

    const LAYOUT: Layout = Layout {
        mdc0_zone: 1,
        mdc0_zones: 1,
    };

    /// A capacity class of `zones` zones of `zone` bytes on one memory
    /// device with `sector`-byte sectors: each call a fresh space map, as
    /// each open of a pool makes.
    fn mem_class(zone: u64, zones: u32, sector: u32) -> impl Fn() -> Option<ClassDev> {
        let dev: DeviceRef = Arc::new(MemDevice::new(u64::from(zones) * zone, sector));
        move || {
            Some(ClassDev {
                dev: Arc::clone(&dev),
                zone_size: zone,
                map: ClassMap::new(MediaClass::Capacity, 1, zones, 0),
            })
        }
    }

    fn open_mem(class: &dyn Fn() -> Option<ClassDev>) -> Result<Catalog> {
        Catalog::open(
            [class(), None],
            LAYOUT,
            false,
            crate::format::Features::new(crate::format::superblock::SB_VERSION),
        )
    }

    #[test]
    fn a_device_with_too_large_sectors_is_refused_by_name() {
        use crate::format::superblock::SECTOR_MAX;
        let class = mem_class(1 << 20, 16, SECTOR_MAX * 2);
        for r in [
            Catalog::format([class(), None], LAYOUT, false).map(|_| ()),
            open_mem(&class).map(|_| ()),
        ] {
            match r {
                Err(e @ Error::Pool(PoolError::SectorTooLarge { .. })) => {
                    assert!(e.to_string().contains(&format!("{}-byte", SECTOR_MAX * 2)));
                }
                other => panic!("expected SectorTooLarge, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_thread_takes_ids_from_one_mdc_in_runs_and_the_runs_go_round() {
        let zones = 400u32;
        let class = mem_class(64 * 1024, zones, 512);
        Catalog::format([class(), None], LAYOUT, false).unwrap();
        let pmd = open_mem(&class).unwrap();
        let n = pmd.inner.shards.len();
        assert_eq!(n, 4, "a pool of {zones} zones has four MDCs");
        let run = shard::SHARD_RUN as usize;
        let ids: Vec<ObjectId> = (0..n * run)
            .map(|_| pmd.mblock_alloc(MediaClass::Capacity).unwrap())
            .collect();
        // Runs of SHARD_RUN IDs in one MDC each (the first run may have
        // begun before: this thread's run is per pool, and starts here).
        let mdcs: Vec<u8> = ids.chunks(run).map(|c| c[0].mdc()).collect();
        for (c, m) in ids.chunks(run).zip(&mdcs) {
            assert!(c.iter().all(|id| id.mdc() == *m), "one MDC per run");
        }
        // The runs visit every MDC.
        let distinct: std::collections::HashSet<u8> = mdcs.iter().copied().collect();
        assert_eq!(distinct.len(), n, "runs in {mdcs:?}");
        for id in ids {
            pmd.abort(id).unwrap();
        }
    }

    #[test]
    fn an_mblock_longer_than_its_zone_fails_the_open() {
        let zone = 64 * 1024u64;
        let class = mem_class(zone, 72, 512);
        Catalog::format([class(), None], LAYOUT, false).unwrap();
        let pmd = open_mem(&class).unwrap();
        let index = pmd.inner.shards[0].index;
        let rec = |len: u32| CatalogRecord::Mblock {
            id: ObjectId::new(ObjType::Mblock, index, 5000),
            class: MediaClass::Capacity,
            zone: 60,
            len,
            crc: 0,
            shared_flush: false,
        };
        rlock(&pmd.inner.shards[0].mdc)
            .append(&rec(zone as u32).encode(), true)
            .unwrap();
        drop(pmd);
        // A whole zone is fine.
        let pmd = open_mem(&class).unwrap();
        let s = &pmd.inner.shards[0];
        rlock(&s.mdc)
            .append(&rec(zone as u32 + 1).encode(), true)
            .unwrap();
        drop(pmd);
        match open_mem(&class) {
            Err(Error::Metadata(MetadataError::Corrupt(why))) => {
                assert!(why.contains("its zone holds"), "{why}")
            }
            other => panic!("expected a corruption error, got {other:?}"),
        }
    }
}
