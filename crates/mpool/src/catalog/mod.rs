//! Pool metadata: the object table kept in MDC0 and MDC1..N, the uniquifier,
//! compaction, and the object operations (mblocks, user mlogs, user MDCs).
//!
//! MDC0 lists MDC1..N and the user root MDC. Each object record lives in the
//! MDC its ID names, so metadata work on different objects spreads over N
//! independent logs, each behind its own locks. The space map is rebuilt at
//! open from the committed objects.

pub(crate) mod mblock;
mod reader;
pub use reader::MblockReader;

use crate::dev::DeviceRef;
use crate::error::{Error, Result};
use crate::format::record::CatalogRecord;
use crate::format::superblock::MediaClass;
use crate::io::AlignedBuf;
use crate::mdc::{Mdc, MdcError};
use crate::mlog::{Lsn, Mlog, MlogError};
use crate::objid::{ObjType, ObjectId, UNIQ_MAX};
use crate::space_map::ClassMap;
use mblock::WriteState;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{
    Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak,
};
use std::time::Duration;

/// Uniquifiers reserved by one checkpoint record.
pub const UNIQ_STEP: u64 = 1024;
/// Log ID of MDC0's logs.
const MDC0_LOG_ID: u64 = 0x4d44_4330; // "MDC0"
/// The MDC compacts in the background when its log is this full...
const COMPACT_FILL_PCT: u64 = 50;
/// ...and at least this share of its records are garbage.
const COMPACT_GARBAGE_PCT: u64 = 50;
/// The background thread looks at every MDC this often: deferred deletes
/// become durable within about this long, and an MDC idle for this long
/// with shared-flush commits in its last flush set is sealed.
const TICK: Duration = Duration::from_millis(100);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}
fn rlock<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    match m.read() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}
fn wlock<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    match m.write() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// A committed object, as kept in memory (16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Obj {
    zone: u32,
    /// Mblock: content length. Mlog/MDC: zones per log.
    a: u32,
    /// Mblock: content CRC. MDC: zone of log B. Mlog: 0.
    b: u32,
    class: u8,
}

impl Obj {
    fn class(&self) -> MediaClass {
        MediaClass::from_code(self.class).unwrap_or(MediaClass::Capacity)
    }

    fn zones(&self, ty: ObjType) -> Vec<(u32, u32)> {
        match ty {
            ObjType::Mblock => vec![(self.zone, 1)],
            ObjType::Mlog => vec![(self.zone, self.a)],
            ObjType::Mdc => vec![(self.zone, self.a), (self.b, self.a)],
        }
    }

    fn record(&self, id: ObjectId) -> CatalogRecord {
        match id.ty() {
            ObjType::Mblock => CatalogRecord::Mblock {
                id,
                class: self.class(),
                zone: self.zone,
                len: self.a,
                crc: self.b,
                shared_flush: false,
            },
            ObjType::Mlog => CatalogRecord::Mlog {
                id,
                class: self.class(),
                zone: self.zone,
                zone_b: 0,
                zones: self.a,
            },
            ObjType::Mdc => CatalogRecord::Mlog {
                id,
                class: self.class(),
                zone: self.zone,
                zone_b: self.b,
                zones: self.a,
            },
        }
    }
}

/// An object allocated but not committed: it vanishes on a crash.
#[derive(Debug)]
enum Pending {
    Mblock {
        class: MediaClass,
        zone: u32,
        ws: WriteState,
    },
    Log {
        class: MediaClass,
        zone: u32,
        zone_b: u32,
        zones: u32,
    },
}

/// State of one pool-metadata MDC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MdcStats {
    /// MDC number (1..N).
    pub index: u8,
    /// Records in its active log (live and superseded).
    pub records: u64,
    /// Live objects it holds.
    pub objects: u64,
    /// Bytes used in its active log.
    pub used: u64,
    /// Bytes its active log can hold.
    pub capacity: u64,
}

/// Properties of an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectProps {
    /// ID.
    pub id: ObjectId,
    /// Type.
    #[serde(rename = "type")]
    pub ty: ObjType,
    /// Media class.
    pub class: MediaClass,
    /// Bytes written (mblock) or log capacity in bytes (mlog, MDC per log).
    pub len: u64,
    /// Bytes the object can hold (mblock: its zone size).
    pub capacity: u64,
    /// Committed (durable and, for mblocks, immutable).
    pub committed: bool,
    /// CRC-32C of the content (committed mblocks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crc: Option<u32>,
    /// First zone.
    pub zone: u32,
}

#[derive(Debug)]
struct Shard {
    index: u8,
    mdc: RwLock<Mdc>,
    objs: RwLock<HashMap<u64, Obj>>,
    /// The next uniquifier to hand out.
    uniq: Mutex<u64>,
    /// The durable checkpoint: every uniquifier handed out is below it. An
    /// atomic, set while the checkpoint's append still excludes compaction,
    /// so that compaction reads it without the `uniq` lock (lock order: a
    /// thread holding `uniq` may take `mdc`, never the other way round).
    ckpt: AtomicU64,
    /// Records in the active log (live and garbage).
    records: AtomicU64,
    /// Zones per log and first zones, for `check` and stats.
    loc: (u32, u32, u32),
    /// Zones of deferred deletes whose record is not known durable yet:
    /// returned to the space map by the next sync of this MDC.
    awaiting: Mutex<Vec<(MediaClass, u32, u32)>>,
    /// Appends so far (the background thread tells an idle MDC by it).
    appends: AtomicU64,
    /// A shared-flush commit record may be in the last flush set.
    unsealed: AtomicBool,
    /// Set when a compaction failed with its outcome unknown: the MDC takes
    /// no more records until the pool is reopened.
    broken: Mutex<Option<String>>,
}

impl Shard {
    /// Refuse work on an MDC whose compaction ended in doubt.
    fn check_broken(&self) -> Result<()> {
        match lock(&self.broken).as_ref() {
            Some(why) => Err(Error::MetadataFailed {
                mdc: self.index,
                reason: why.clone(),
            }),
            None => Ok(()),
        }
    }
}

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

/// Sizing of MDC1..N for a new pool.
pub(crate) fn mdc_plan(cap_zones: u64, zone_size: u64) -> (u8, u32) {
    // N grows with the pool up to 4; each log gets 1/256 of the capacity
    // spread over 2N logs, at least one zone.
    let n = (cap_zones / 64).clamp(1, 4) as u8;
    let bytes = cap_zones * zone_size / 256 / (2 * u64::from(n));
    let zones = bytes.div_ceil(zone_size).clamp(1, 1 << 16) as u32;
    (n, zones)
}

#[derive(Debug)]
struct Inner {
    classes: [OnceLock<ClassDev>; 2],
    /// Held open for the pool's lifetime (MDC0 changes only at create).
    _mdc0: Mdc,
    shards: Vec<Shard>,
    pending: Mutex<HashMap<u64, Arc<Mutex<Option<Pending>>>>>,
    /// One handle per user log for the pool's lifetime: a second instance of
    /// the same log would not see the first one's buffered appends.
    open_logs: Mutex<HashMap<u64, Arc<Mlog>>>,
    open_mdcs: Mutex<HashMap<u64, Arc<Mdc>>>,
    root: ObjectId,
    cursor: AtomicUsize,
    read_only: bool,
    /// Commit capacity-class mblocks with one flush (format version 2).
    shared_commits: bool,
    wake: (Mutex<bool>, Condvar),
    compactions: AtomicU64,
}

/// The pool metadata and object operations of an open pool.
#[derive(Debug)]
pub(crate) struct Catalog {
    inner: Arc<Inner>,
    compactor: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn data_err(id: ObjectId, e: mblock::DataError) -> Error {
    match e {
        mblock::DataError::Full { want, cap } => Error::MblockFull { id, want, cap },
        mblock::DataError::Dev(d) => Error::Dev(d),
        mblock::DataError::Failed => Error::WriteFailed(id),
    }
}

/// Every record of an MDC's active log.
fn mdc_records(mdc: &Mdc) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for r in mdc.reader()? {
        out.push(r?);
    }
    Ok(out)
}

/// What replaying one of MDC1..N found.
struct Replayed {
    objs: HashMap<u64, Obj>,
    records: u64,
    ckpt: u64,
    max_uniq: u64,
    /// Shared-flush mblock commits in the log's last flush set.
    tail_commits: Vec<ObjectId>,
}

/// Replay an MDC's records in order, streaming (no copy of the whole log).
/// `shared_commits`: the pool's format allows type-7 records.
fn replay(index: u8, mdc: &Mdc, shared_commits: bool) -> Result<Replayed> {
    let tail = mdc.open_tail().unwrap_or(Lsn(u64::MAX));
    let mut r = Replayed {
        objs: HashMap::new(),
        records: 0,
        ckpt: 0,
        max_uniq: 0,
        tail_commits: Vec::new(),
    };
    let mut rd = mdc.reader()?;
    while let Some(rec) = rd.next_record() {
        let (lsn, rec) = rec?;
        r.records += 1;
        match decode(index, &rec)? {
            CatalogRecord::UniqCkpt { next } => r.ckpt = r.ckpt.max(next),
            CatalogRecord::Mblock {
                id,
                class,
                zone,
                len,
                crc,
                shared_flush,
            } => {
                if shared_flush && !shared_commits {
                    return Err(Error::Corrupt(format!(
                        "MDC{index}: a one-flush commit record (type 7) in a format-1 pool"
                    )));
                }
                r.max_uniq = r.max_uniq.max(id.uniq());
                if shared_flush && lsn >= tail {
                    r.tail_commits.push(id);
                }
                r.objs.insert(
                    id.raw(),
                    Obj {
                        zone,
                        a: len,
                        b: crc,
                        class: class.code(),
                    },
                );
            }
            CatalogRecord::Mlog {
                id,
                class,
                zone,
                zone_b,
                zones,
            } => {
                r.max_uniq = r.max_uniq.max(id.uniq());
                r.objs.insert(
                    id.raw(),
                    Obj {
                        zone,
                        a: zones,
                        b: zone_b,
                        class: class.code(),
                    },
                );
            }
            CatalogRecord::Delete { id } => {
                r.objs.remove(&id.raw());
            }
            other => {
                return Err(Error::Corrupt(format!(
                    "MDC{index} holds an MDC0 record: {other:?}"
                )))
            }
        }
    }
    Ok(r)
}

/// How a compaction failed.
enum CompactError {
    /// Before the end marker was tried: the old log is still the one in use.
    Abandoned(Error),
    /// The end marker itself failed: which log a reopen takes is unknown.
    InDoubt(Error),
}

impl From<CompactError> for Error {
    fn from(e: CompactError) -> Error {
        match e {
            CompactError::Abandoned(e) | CompactError::InDoubt(e) => e,
        }
    }
}

/// Rewrite an MDC as the checkpoint and one record per object of `objs`
/// (an MDC compaction: a crash leaves exactly the old or the new state).
fn compact_mdc(
    mdc: &Mdc,
    objs: &HashMap<u64, Obj>,
    ckpt: u64,
) -> std::result::Result<(), CompactError> {
    mdc.cstart()
        .map_err(|e| CompactError::Abandoned(e.into()))?;
    let body = (|| -> Result<()> {
        mdc.append(&CatalogRecord::UniqCkpt { next: ckpt }.encode(), false)?;
        for (raw, o) in objs {
            let id = ObjectId::from_raw(*raw)
                .ok_or_else(|| Error::Corrupt(format!("bad object ID {raw:#x}")))?;
            mdc.append(&o.record(id).encode(), false)?;
        }
        Ok(())
    })();
    if let Err(e) = body {
        return Err(match mdc.cabort() {
            Ok(()) => CompactError::Abandoned(e),
            Err(_) => CompactError::InDoubt(e),
        });
    }
    mdc.cend().map_err(|e| CompactError::InDoubt(e.into()))
}

/// Of the shared-flush commits in an MDC's last flush set, those whose
/// content does not match its record: the crash came before the flush that
/// would have made both durable, so the commit never returned and is
/// dropped. A commit whose content cannot be read is kept (nothing proves
/// it incomplete; `check` reports the read error).
fn unfinished_commits(
    index: u8,
    classes: &[Option<ClassDev>; 2],
    objs: &HashMap<u64, Obj>,
    tail: &[ObjectId],
) -> Vec<ObjectId> {
    let mut bad = Vec::new();
    for id in tail {
        let Some(o) = objs.get(&id.raw()) else {
            continue; // deleted later in the same flush set
        };
        let Some(c) = classes[o.class().index()].as_ref() else {
            continue; // the open fails on the missing class below
        };
        if u64::from(o.a) > c.zone_size || c.off(o.zone).saturating_add(c.zone_size) > c.dev.size()
        {
            continue; // not a zone of this device: the open fails on it below
        }
        // A read error may pass: three tries before giving up on the check.
        let read = || mblock::content_crc(c.dev.as_ref(), c.off(o.zone), u64::from(o.a));
        match read().or_else(|_| read()).or_else(|_| read()) {
            Ok(crc) if crc == o.b => {}
            Ok(crc) => {
                tracing::warn!(
                    "MDC{index}: mblock {id} was being committed at a crash and its content \
                     did not land (CRC {crc:#010x}, recorded {:#010x}): the commit is dropped",
                    o.b
                );
                bad.push(*id);
            }
            // Kept: a read error is no evidence that the commit did not
            // finish. Its reads report the error and `check` lists it.
            Err(e) => tracing::warn!(
                "MDC{index}: mblock {id} was being committed at a crash; its content \
                 cannot be read to verify it ({e}); it is kept"
            ),
        }
    }
    bad
}

fn decode(shard: u8, rec: &[u8]) -> Result<CatalogRecord> {
    CatalogRecord::decode(rec).map_err(|e| Error::Corrupt(format!("MDC{shard}: {e}")))
}

impl Catalog {
    /// Format the metadata of a new pool: MDC0, MDC1..N, the user root MDC.
    /// The superblocks are written after this returns: they are the commit point.
    pub(crate) fn format(classes: [Option<ClassDev>; 2], layout: Layout) -> Result<()> {
        let cap = classes[0]
            .as_ref()
            .ok_or(Error::NoSuchClass(MediaClass::Capacity))?;
        let (a0, b0) = mdc0_extents(cap, layout)?;
        let mdc0 = Mdc::create(Arc::clone(&cap.dev), a0, b0, MDC0_LOG_ID)?;
        let (n, zones) = mdc_plan(
            cap.map.total() + u64::from(layout.mdc0_zone + 2 * layout.mdc0_zones),
            cap.zone_size,
        );
        let mut first: Option<Mdc> = None;
        for i in 1..=n {
            let a = cap.map.alloc(zones)?;
            let b = cap.map.alloc(zones)?;
            let m = Mdc::create(
                Arc::clone(&cap.dev),
                cap.extent(a, zones),
                cap.extent(b, zones),
                u64::from(i),
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
        let first = first.ok_or_else(|| Error::Corrupt("no MDC1".into()))?;
        let root = ObjectId::new(ObjType::Mdc, 1, 0);
        let (ra, rb) = (cap.map.alloc(1)?, cap.map.alloc(1)?);
        Mdc::create(
            Arc::clone(&cap.dev),
            cap.extent(ra, 1),
            cap.extent(rb, 1),
            root.raw(),
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

    /// Open the metadata: replay MDC0 and MDC1..N, rebuild the space map.
    /// `shared_commits`: the pool's format (version 2) allows mblock
    /// commits whose content shares its record's flush.
    pub(crate) fn open(
        classes: [Option<ClassDev>; 2],
        layout: Layout,
        read_only: bool,
        shared_commits: bool,
    ) -> Result<Catalog> {
        let cap = classes[0]
            .as_ref()
            .ok_or(Error::NoSuchClass(MediaClass::Capacity))?;
        let (a0, b0) = mdc0_extents(cap, layout)?;
        let mdc0 = Mdc::open(Arc::clone(&cap.dev), a0, b0, MDC0_LOG_ID)?;
        let mut locs = Vec::new();
        let mut root = None;
        for rec in mdc_records(&mdc0)? {
            match decode(0, &rec)? {
                CatalogRecord::MdcLoc {
                    index,
                    zone_a,
                    zone_b,
                    zones,
                } => locs.push((index, zone_a, zone_b, zones)),
                CatalogRecord::RootMdc { id } => root = Some(id),
                other => {
                    return Err(Error::Corrupt(format!(
                        "MDC0 holds an object record: {other:?}"
                    )))
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
            return Err(Error::Corrupt(format!(
                "MDC0 lists MDCs {:?}, expected 1..N",
                locs.iter().map(|l| l.0).collect::<Vec<_>>()
            )));
        }
        let root = root.ok_or_else(|| Error::Corrupt("MDC0 names no root MDC".into()))?;
        // Open and replay the shards (in parallel: each is an independent log).
        let replayed: Vec<Result<Shard>> = std::thread::scope(|s| {
            let hs: Vec<_> =
                locs.iter()
                    .map(|&(index, a, b, zones)| {
                        let dev = Arc::clone(&cap.dev);
                        let (ea, eb) = (cap.extent(a, zones), cap.extent(b, zones));
                        let classes = &classes;
                        s.spawn(move || -> Result<Shard> {
                            let mdc = Mdc::open(dev, ea, eb, u64::from(index))?;
                            let mut r = replay(index, &mdc, shared_commits)?;
                            if let Some(bad) = r.objs.keys().find(|k| {
                                ObjectId::from_raw(**k).is_none_or(|id| id.mdc() != index)
                            }) {
                                return Err(Error::Corrupt(format!(
                                    "MDC{index} holds object {bad:#x} of another MDC"
                                )));
                            }
                            let dropped =
                                unfinished_commits(index, classes, &r.objs, &r.tail_commits);
                            for id in &dropped {
                                r.objs.remove(&id.raw());
                            }
                            let next = r.ckpt.max(r.max_uniq + 1);
                            if !read_only && !dropped.is_empty() {
                                // Before anything else is appended, and all at
                                // once: once a record of the dropped commits is
                                // no longer in the last flush set it would count.
                                // A compaction rewrites the live objects only
                                // (as type 4) and is all-or-nothing.
                                compact_mdc(&mdc, &r.objs, next).map_err(Error::from)?;
                                r.records = r.objs.len() as u64 + 1;
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
                                // Skip to the checkpoint: IDs below it may have been handed out before the crash.
                                uniq: Mutex::new(next),
                                ckpt: AtomicU64::new(next),
                                loc: (a, b, zones),
                                awaiting: Mutex::new(Vec::new()),
                                appends: AtomicU64::new(0),
                                unsealed: AtomicBool::new(false),
                                broken: Mutex::new(None),
                            })
                        })
                    })
                    .collect();
            hs.into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Corrupt("replay thread panicked".into())))
                })
                .collect()
        });
        let mut shards = Vec::with_capacity(replayed.len());
        for s in replayed {
            shards.push(s?);
        }
        // Rebuild the space map.
        for s in &shards {
            cap.map
                .claim(s.loc.0, s.loc.2)
                .map_err(|e| Error::Corrupt(format!("MDC{} log A: {e}", s.index)))?;
            cap.map
                .claim(s.loc.1, s.loc.2)
                .map_err(|e| Error::Corrupt(format!("MDC{} log B: {e}", s.index)))?;
            for (id, o) in rlock(&s.objs).iter() {
                let id = ObjectId::from_raw(*id)
                    .ok_or_else(|| Error::Corrupt(format!("bad object ID {id:#x}")))?;
                let c = classes[o.class().index()].as_ref().ok_or_else(|| {
                    Error::Corrupt(format!(
                        "object {id} is in the {} class, which the pool lacks",
                        o.class()
                    ))
                })?;
                if id.ty() == ObjType::Mblock && u64::from(o.a) > c.zone_size {
                    return Err(Error::Corrupt(format!(
                        "mblock {id} is {} bytes long; its zone holds {}",
                        o.a, c.zone_size
                    )));
                }
                for (z, n) in o.zones(id.ty()) {
                    c.map
                        .claim(z, n)
                        .map_err(|e| Error::Corrupt(format!("object {id}: {e}")))?;
                }
            }
        }
        let [c0, c1] = classes;
        let inner = Arc::new(Inner {
            classes: [
                c0.map_or_else(OnceLock::new, OnceLock::from),
                c1.map_or_else(OnceLock::new, OnceLock::from),
            ],
            _mdc0: mdc0,
            shards,
            pending: Mutex::new(HashMap::new()),
            open_logs: Mutex::new(HashMap::new()),
            open_mdcs: Mutex::new(HashMap::new()),
            root,
            cursor: AtomicUsize::new(0),
            read_only,
            shared_commits,
            wake: (Mutex::new(false), Condvar::new()),
            compactions: AtomicU64::new(0),
        });
        let compactor = if read_only {
            None
        } else {
            Some(spawn_compactor(Arc::downgrade(&inner)))
        };
        Ok(Catalog {
            inner,
            compactor: Mutex::new(compactor),
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
        self.inner.classes[class.index()]
            .set(c)
            .map_err(|_| Error::ClassExists(class))
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
}

impl Drop for Catalog {
    fn drop(&mut self) {
        {
            let (m, cv) = &self.inner.wake;
            *lock(m) = true;
            cv.notify_all();
        }
        if let Some(h) = lock(&self.compactor).take() {
            let _ = h.join();
        }
        // A clean close leaves deferred deletes durable and no shared-flush
        // commit for the next open to verify.
        if !self.inner.read_only {
            for s in &self.inner.shards {
                if let Err(e) = self.inner.sync_shard(s, true) {
                    tracing::warn!("closing MDC{}: {e}", s.index);
                }
            }
        }
    }
}

/// Drop the pool's cached handle of a log unless a caller still holds one
/// (then the log is busy: true).
fn release_handle<T>(cache: &Mutex<HashMap<u64, Arc<T>>>, id: ObjectId) -> bool {
    let mut c = lock(cache);
    match c.get(&id.raw()) {
        Some(h) if Arc::strong_count(h) > 1 => true,
        Some(_) => {
            c.remove(&id.raw());
            false
        }
        None => false,
    }
}

/// The zones of a shard's deferred deletes appended so far.
fn take_awaiting(s: &Shard) -> Vec<(MediaClass, u32, u32)> {
    std::mem::take(&mut *lock(&s.awaiting))
}

fn spawn_compactor(w: Weak<Inner>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("mpool-compactor".into())
        .spawn(move || {
            // Appends per MDC at the previous tick: unchanged means idle.
            let mut seen: Vec<u64> = Vec::new();
            loop {
                let Some(inner) = w.upgrade() else { return };
                {
                    let (m, cv) = &inner.wake;
                    let g = lock(m);
                    if *g {
                        return;
                    }
                    let (g, _) = match cv.wait_timeout(g, TICK) {
                        Ok(x) => x,
                        Err(p) => p.into_inner(),
                    };
                    if *g {
                        return;
                    }
                }
                seen.resize(inner.shards.len(), u64::MAX);
                for (s, last) in inner.shards.iter().zip(seen.iter_mut()) {
                    let now = s.appends.load(Ordering::Relaxed);
                    let idle = now == *last;
                    *last = now;
                    let seal = idle && s.unsealed.load(Ordering::Relaxed);
                    if seal || !lock(&s.awaiting).is_empty() {
                        if let Err(e) = inner.sync_shard(s, seal) {
                            tracing::warn!("background sync of MDC{} failed: {e}", s.index);
                        }
                    }
                    if inner.wants_compaction(s) {
                        if let Err(e) = inner.compact(s) {
                            tracing::warn!("background compaction of MDC{} failed: {e}", s.index);
                        }
                    }
                }
            }
        })
        .unwrap_or_else(|_| std::thread::spawn(|| {}))
}

impl Inner {
    fn class(&self, class: MediaClass) -> Result<&ClassDev> {
        self.classes[class.index()]
            .get()
            .ok_or(Error::NoSuchClass(class))
    }

    fn shard(&self, id: ObjectId) -> Result<&Shard> {
        self.shards
            .get(usize::from(id.mdc()).wrapping_sub(1))
            .ok_or(Error::NotFound(id))
    }

    fn check_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly("pool".into()));
        }
        Ok(())
    }

    fn wants_compaction(&self, s: &Shard) -> bool {
        let mdc = rlock(&s.mdc);
        let u = mdc.usage();
        let (used, cap) = (u.len, u.capacity);
        let recs = s.records.load(Ordering::Relaxed);
        let live = rlock(&s.objs).len() as u64 + 1;
        cap > 0
            && used * 100 >= cap * COMPACT_FILL_PCT
            && recs > 0
            && (recs - live.min(recs)) * 100 >= recs * COMPACT_GARBAGE_PCT
    }

    /// Rewrite an MDC as its live records: crash-safe (an MDC compaction).
    fn compact(&self, s: &Shard) -> Result<()> {
        let mdc = wlock(&s.mdc);
        let objs = rlock(&s.objs);
        let ckpt = s.ckpt.load(Ordering::Acquire);
        s.check_broken()?;
        // Every deferred delete so far is in the old log and absent from
        // `objs`: once the new log is durable, its zones are free.
        let done = take_awaiting(s);
        if let Err(e) = compact_mdc(&mdc, &objs, ckpt) {
            lock(&s.awaiting).extend(done);
            if let CompactError::InDoubt(e) = &e {
                *lock(&s.broken) = Some(format!("compaction ended in doubt: {e}"));
            }
            return Err(e.into());
        }
        // The new log holds no shared-flush records.
        s.unsealed.store(false, Ordering::Relaxed);
        s.records.store(objs.len() as u64 + 1, Ordering::Relaxed);
        s.appends.fetch_add(1, Ordering::Relaxed);
        self.compactions.fetch_add(1, Ordering::Relaxed);
        drop(objs);
        drop(mdc);
        self.release(done);
        Ok(())
    }

    /// Return zones of durable deletes to their space maps.
    fn release(&self, zones: Vec<(MediaClass, u32, u32)>) {
        for (class, z, n) in zones {
            if let Ok(c) = self.class(class) {
                if let Err(e) = c.map.release(z, n) {
                    tracing::warn!("releasing zones {z}+{n} of a deleted object: {e}");
                }
            }
        }
    }

    /// Make an MDC's appends durable; then the zones of its deferred
    /// deletes are free. With `seal`, also end a last flush set holding
    /// shared-flush commits (a checkpoint record, synced).
    fn sync_shard(&self, s: &Shard, seal: bool) -> Result<()> {
        if seal && s.unsealed.swap(false, Ordering::Relaxed) {
            let next = s.ckpt.load(Ordering::Acquire);
            if let Err(e) = self.log(s, CatalogRecord::UniqCkpt { next }, true, |_| {}) {
                s.unsealed.store(true, Ordering::Relaxed);
                return Err(e);
            }
            return Ok(());
        }
        // Always sync, even with nothing awaiting here: another thread's
        // sync append may have taken deletes that are not durable yet, and
        // the log's sync waits for every record appended before it.
        let done = take_awaiting(s);
        let r = rlock(&s.mdc).sync();
        match r {
            Ok(()) => {
                self.release(done);
                Ok(())
            }
            Err(e) => {
                lock(&s.awaiting).extend(done);
                Err(e.into())
            }
        }
    }

    /// Append a record to a shard's MDC (durably with `sync`) and apply
    /// `then` to the object table while still excluding compaction.
    /// Compacts and retries once when the log is full. A sync append also
    /// makes every deferred delete appended before it durable, and frees
    /// their zones.
    fn log(
        &self,
        s: &Shard,
        rec: CatalogRecord,
        sync: bool,
        then: impl FnOnce(&mut HashMap<u64, Obj>),
    ) -> Result<()> {
        s.check_broken()?;
        let bytes = rec.encode();
        let mut then = Some(then);
        // Taken before the append: these records precede ours in the log.
        let done = if sync { take_awaiting(s) } else { Vec::new() };
        let give_back = |e: Error| {
            lock(&s.awaiting).extend(done.iter().copied());
            e
        };
        for attempt in 0..2 {
            {
                let mdc = rlock(&s.mdc);
                match mdc.append(&bytes, sync) {
                    Ok(_) => {
                        s.records.fetch_add(1, Ordering::Relaxed);
                        s.appends.fetch_add(1, Ordering::Relaxed);
                        if let Some(f) = then.take() {
                            f(&mut wlock(&s.objs));
                        }
                        drop(mdc);
                        self.release(done);
                        if self.wants_compaction(s) {
                            let (m, cv) = &self.wake;
                            drop(lock(m));
                            cv.notify_all();
                        }
                        return Ok(());
                    }
                    Err(MdcError::Mlog(MlogError::LogFull { .. })) if attempt == 0 => {}
                    Err(e) => return Err(give_back(e.into())),
                }
            }
            self.compact(s).map_err(give_back)?;
        }
        Err(give_back(Error::MetadataFull { mdc: s.index }))
    }

    /// A new ID in the next shard; a checkpoint is made durable first when needed.
    fn new_id(&self, ty: ObjType) -> Result<ObjectId> {
        let n = self.shards.len().max(1);
        let s = self
            .shards
            .get(self.cursor.fetch_add(1, Ordering::Relaxed) % n)
            .ok_or_else(|| Error::Corrupt("no MDCs".into()))?;
        let mut u = lock(&s.uniq);
        if *u >= UNIQ_MAX {
            return Err(Error::Corrupt(format!(
                "MDC{} has used every object ID",
                s.index
            )));
        }
        if *u >= s.ckpt.load(Ordering::Acquire) {
            let next = *u + UNIQ_STEP;
            // Published before the append stops excluding compaction, so a
            // compaction right after it writes this checkpoint, not the old one.
            self.log(s, CatalogRecord::UniqCkpt { next }, true, |_| {
                s.ckpt.store(next, Ordering::Release)
            })?;
        }
        let id = ObjectId::new(ty, s.index, *u);
        *u += 1;
        Ok(id)
    }
}

/// Allocation and lifecycle of objects.
impl Catalog {
    fn pending(&self, id: ObjectId) -> Option<Arc<Mutex<Option<Pending>>>> {
        lock(&self.inner.pending).get(&id.raw()).cloned()
    }

    /// Why an object is not pending: committed meanwhile, or no such object.
    fn gone(&self, id: ObjectId) -> Result<Error> {
        Ok(if self.committed(id)?.is_some() {
            Error::Committed(id)
        } else {
            Error::NotFound(id)
        })
    }

    /// Why an object is not committed: still pending, or no such object.
    fn unread(&self, id: ObjectId) -> Error {
        if self.pending(id).is_some() {
            Error::NotCommitted(id)
        } else {
            Error::NotFound(id)
        }
    }

    fn committed(&self, id: ObjectId) -> Result<Option<Obj>> {
        Ok(rlock(&self.inner.shard(id)?.objs).get(&id.raw()).copied())
    }

    fn expect_type(id: ObjectId, ty: ObjType) -> Result<()> {
        if id.ty() != ty {
            return Err(Error::WrongType { id, expected: ty });
        }
        Ok(())
    }

    /// Allocate an mblock in `class`.
    pub(crate) fn mblock_alloc(&self, class: MediaClass) -> Result<ObjectId> {
        self.inner.check_writable()?;
        let c = self.inner.class(class)?;
        let zone = c.map.alloc(1)?;
        let id = match self.inner.new_id(ObjType::Mblock) {
            Ok(id) => id,
            Err(e) => {
                let _ = c.map.release(zone, 1);
                return Err(e);
            }
        };
        let ws = WriteState::new(Arc::clone(&c.dev), c.off(zone), c.zone_size);
        lock(&self.inner.pending).insert(
            id.raw(),
            Arc::new(Mutex::new(Some(Pending::Mblock { class, zone, ws }))),
        );
        Ok(id)
    }

    /// Append to an uncommitted mblock.
    pub(crate) fn mblock_write(&self, id: ObjectId, data: &[u8]) -> Result<()> {
        self.with_writer(id, |ws| ws.append(data))
    }

    /// Append an owned aligned buffer to an uncommitted mblock, with no
    /// copy where it can; the buffer comes back.
    pub(crate) fn mblock_write_buf(&self, id: ObjectId, buf: AlignedBuf) -> Result<AlignedBuf> {
        self.with_writer(id, |ws| ws.append_buf(buf))
    }

    /// Run `f` on the write state of uncommitted mblock `id`.
    fn with_writer<T>(
        &self,
        id: ObjectId,
        f: impl FnOnce(&mut WriteState) -> std::result::Result<T, mblock::DataError>,
    ) -> Result<T> {
        Self::expect_type(id, ObjType::Mblock)?;
        let Some(p) = self.pending(id) else {
            return Err(self.gone(id)?);
        };
        let mut g = lock(&p);
        match g.as_mut() {
            Some(Pending::Mblock { ws, .. }) => f(ws).map_err(|e| data_err(id, e)),
            Some(Pending::Log { .. }) => Err(Error::WrongType {
                id,
                expected: ObjType::Mblock,
            }),
            // Committed or aborted by another thread meanwhile.
            None => Err(self.gone(id)?),
        }
    }

    /// Commit an mblock: data flushed, then the commit record made durable.
    pub(crate) fn mblock_commit(&self, id: ObjectId) -> Result<ObjectProps> {
        Self::expect_type(id, ObjType::Mblock)?;
        self.inner.check_writable()?;
        let Some(p) = self.pending(id) else {
            return Err(self.gone(id)?);
        };
        let mut g = lock(&p);
        let Some(Pending::Mblock { class, zone, ws }) = g.as_mut() else {
            return Err(self.gone(id)?);
        };
        // The pool metadata lives on the capacity device: there, the flush
        // that makes the commit record durable makes the content durable
        // too, and replay verifies the content of commits in a log's last
        // flush set (docs/format.md, "Transactions"). Elsewhere the content
        // is flushed first.
        let shared = self.inner.shared_commits && *class == MediaClass::Capacity;
        ws.finish(!shared).map_err(|e| data_err(id, e))?;
        let len = u32::try_from(ws.written)
            .map_err(|_| Error::Corrupt("mblock longer than 4 GiB".into()))?;
        let obj = Obj {
            zone: *zone,
            a: len,
            b: ws.crc,
            class: class.code(),
        };
        let mut rec = obj.record(id);
        if let CatalogRecord::Mblock { shared_flush, .. } = &mut rec {
            *shared_flush = shared;
        }
        let s = self.inner.shard(id)?;
        if let Err(e) = self.inner.log(s, rec, true, |m| {
            m.insert(id.raw(), obj);
        }) {
            if !matches!(e, Error::MetadataFull { .. } | Error::MetadataFailed { .. }) {
                // The record may have reached the media: only abort is
                // left, and the zone is not reused before a reopen says.
                ws.failed = true;
                ws.hold_zone = true;
            }
            return Err(e);
        }
        if shared {
            s.unsealed.store(true, Ordering::Relaxed);
        }
        *g = None;
        drop(g);
        lock(&self.inner.pending).remove(&id.raw());
        self.props(id)
    }

    /// Discard an uncommitted object (mblock, mlog or MDC).
    pub(crate) fn abort(&self, id: ObjectId) -> Result<()> {
        let busy = match id.ty() {
            ObjType::Mlog => release_handle(&self.inner.open_logs, id),
            ObjType::Mdc => release_handle(&self.inner.open_mdcs, id),
            ObjType::Mblock => false,
        };
        if busy {
            return Err(Error::ObjectBusy(id));
        }
        let Some(p) = self.pending(id) else {
            return Err(self.gone(id)?);
        };
        let mut g = lock(&p);
        let Some(pend) = g.take() else {
            return Err(Error::NotFound(id));
        };
        lock(&self.inner.pending).remove(&id.raw());
        drop(g);
        match pend {
            Pending::Mblock { ws, .. } if ws.hold_zone => {}
            Pending::Mblock { class, zone, .. } => self.inner.class(class)?.map.release(zone, 1)?,
            Pending::Log {
                class,
                zone,
                zone_b,
                zones,
            } => {
                let c = self.inner.class(class)?;
                c.map.release(zone, zones)?;
                if id.ty() == ObjType::Mdc {
                    c.map.release(zone_b, zones)?;
                }
            }
        }
        Ok(())
    }

    /// Delete a committed object: its record is durable before its zones
    /// can be reused. With `durable`, before this returns; otherwise the
    /// record rides on the MDC's next flush (a later sync append to it,
    /// [`Catalog::sync`], a compaction, the background thread within
    /// [`TICK`], or the close), and a crash before then brings the object
    /// back whole. Either way it is gone for readers at once.
    pub(crate) fn delete(&self, id: ObjectId, durable: bool) -> Result<()> {
        self.inner.check_writable()?;
        if id == self.inner.root {
            return Err(Error::InvalidArgument(
                "the root MDC cannot be deleted".into(),
            ));
        }
        if self.pending(id).is_some() {
            return Err(Error::NotCommitted(id));
        }
        // A log is busy while a caller holds its handle (the pool's cache holds one).
        let busy = match id.ty() {
            ObjType::Mlog => release_handle(&self.inner.open_logs, id),
            ObjType::Mdc => release_handle(&self.inner.open_mdcs, id),
            ObjType::Mblock => false,
        };
        if busy {
            return Err(Error::ObjectBusy(id));
        }
        let s = self.inner.shard(id)?;
        let mut removed = None;
        if !rlock(&s.objs).contains_key(&id.raw()) {
            return Err(Error::NotFound(id));
        }
        self.inner
            .log(s, CatalogRecord::Delete { id }, durable, |m| {
                removed = m.remove(&id.raw());
                if let (Some(o), false) = (removed, durable) {
                    // Under the append's exclusion of compaction: a compaction
                    // either sees these zones here or the delete in its old log.
                    lock(&s.awaiting)
                        .extend(o.zones(id.ty()).into_iter().map(|(z, n)| (o.class(), z, n)));
                }
            })?;
        let Some(o) = removed else {
            return Err(Error::NotFound(id));
        };
        if durable {
            let c = self.inner.class(o.class())?;
            for (z, n) in o.zones(id.ty()) {
                c.map.release(z, n)?;
            }
        }
        Ok(())
    }

    /// Read from a committed mblock at any offset inside its content.
    pub(crate) fn mblock_read(&self, id: ObjectId, offset: u64, buf: &mut [u8]) -> Result<()> {
        let (class, base, len) = self.read_target(id, offset, buf.len(), 1)?;
        mblock::read(self.class_dev(class)?.as_ref(), base, len, offset, buf)?;
        Ok(())
    }

    /// Where a read of `n` bytes at `offset` of mblock `id` goes: the
    /// mblock's class, the byte offset of its zone, and its content
    /// length. The read must lie inside the content, except that it may
    /// run past the end up to the next multiple of `slack` (1: not at
    /// all), never past the zone.
    fn read_target(
        &self,
        id: ObjectId,
        offset: u64,
        n: usize,
        slack: u64,
    ) -> Result<(MediaClass, u64, u64)> {
        Self::expect_type(id, ObjType::Mblock)?;
        let Some(o) = self.committed(id)? else {
            return Err(self.unread(id));
        };
        let len = u64::from(o.a);
        let c = self.inner.class(o.class())?;
        let limit = len
            .div_ceil(slack.max(1))
            .saturating_mul(slack.max(1))
            .min(c.zone_size);
        if offset.checked_add(n as u64).is_none_or(|end| end > limit) {
            return Err(Error::ReadOutOfRange {
                id,
                offset,
                len: n as u64,
                size: len,
            });
        }
        Ok((o.class(), c.off(o.zone), len))
    }

    /// Several reads of committed mblocks as one batch per device.
    pub(crate) fn mblock_read_batch(
        &self,
        reads: &mut [crate::pool::MblockRead<'_>],
        depth: usize,
    ) -> Result<()> {
        let mut per_class: [Vec<mblock::Span<'_>>; 2] = [Vec::new(), Vec::new()];
        for r in reads.iter_mut() {
            let (class, base, len) = self.read_target(r.id, r.offset, r.buf.len(), 1)?;
            per_class[class.index()].push(mblock::Span {
                base,
                len,
                offset: r.offset,
                buf: &mut *r.buf,
            });
        }
        for class in MediaClass::ALL {
            let spans = &mut per_class[class.index()];
            if !spans.is_empty() {
                mblock::read_many(self.inner.class(class)?.dev.as_ref(), spans, depth)?;
            }
        }
        Ok(())
    }

    /// Where aligned read `r` goes: its mblock's class, the byte offset of
    /// its zone, and its content length. The buffer may run past the
    /// content up to the next multiple of its own alignment (a whole
    /// mblock fits one buffer), never past the zone.
    pub(crate) fn aligned_target(
        &self,
        r: &crate::pool::AlignedRead,
    ) -> Result<(MediaClass, u64, u64)> {
        self.read_target(r.id, r.offset, r.buf.len(), r.buf.align() as u64)
    }

    /// The device of media class `class`.
    pub(crate) fn class_dev(&self, class: MediaClass) -> Result<&DeviceRef> {
        Ok(&self.inner.class(class)?.dev)
    }

    /// Reads of committed mblocks into owned aligned buffers, with at
    /// most `depth` device requests in flight; see
    /// [`crate::Pool::mblock_read_aligned`]. Every read is checked before
    /// any I/O is issued.
    pub(crate) fn mblock_read_aligned(
        &self,
        mut reads: Vec<crate::pool::AlignedRead>,
        depth: usize,
    ) -> Result<Vec<crate::pool::AlignedRead>> {
        // Per read: its class and zone base, and its content length.
        let at = reads
            .iter()
            .map(|r| self.aligned_target(r))
            .collect::<Result<Vec<_>>>()?;
        // Reads go straight into their buffers where they can, the others
        // through bounce buffers and a copy.
        let mut direct = vec![false; reads.len()];
        for class in MediaClass::ALL {
            if !at.iter().any(|a| a.0 == class) {
                continue;
            }
            let dev = self.class_dev(class)?.as_ref();
            let (mut taken, mut bufs) = (Vec::new(), Vec::new());
            for (i, r) in reads.iter_mut().enumerate() {
                let pos = at[i].1 + r.offset;
                if at[i].0 == class && mblock::direct_read_ok(dev, pos, &r.buf) {
                    direct[i] = true;
                    taken.push(i);
                    bufs.push((pos, std::mem::take(&mut r.buf)));
                }
            }
            for (i, b) in taken.into_iter().zip(mblock::read_into(dev, bufs, depth)?) {
                reads[i].buf = b;
            }
            let mut spans: Vec<mblock::Span<'_>> = Vec::new();
            for (i, r) in reads.iter_mut().enumerate() {
                if direct[i] || at[i].0 != class {
                    continue;
                }
                let (_, base, len) = at[i];
                let inside = (len.saturating_sub(r.offset) as usize).min(r.buf.len());
                spans.push(mblock::Span {
                    base,
                    len,
                    offset: r.offset,
                    buf: &mut r.buf[..inside],
                });
            }
            mblock::read_many(dev, &mut spans, depth)?;
        }
        for (r, &(_, _, len)) in reads.iter_mut().zip(&at) {
            mblock::zero_past_content(&mut r.buf, r.offset, len);
        }
        Ok(reads)
    }

    /// Properties of any object, committed or not.
    pub(crate) fn props(&self, id: ObjectId) -> Result<ObjectProps> {
        if let Some(o) = self.committed(id)? {
            return self.obj_props(id, &o);
        }
        let Some(p) = self.pending(id) else {
            return Err(Error::NotFound(id));
        };
        let g = lock(&p);
        match g.as_ref() {
            Some(Pending::Mblock { class, zone, ws }) => Ok(ObjectProps {
                id,
                ty: ObjType::Mblock,
                class: *class,
                len: ws.written,
                capacity: ws.cap,
                committed: false,
                crc: None,
                zone: *zone,
            }),
            Some(Pending::Log {
                class, zone, zones, ..
            }) => {
                let zs = self.inner.class(*class)?.zone_size;
                Ok(ObjectProps {
                    id,
                    ty: id.ty(),
                    class: *class,
                    len: 0,
                    capacity: u64::from(*zones) * zs,
                    committed: false,
                    crc: None,
                    zone: *zone,
                })
            }
            None => Err(Error::NotFound(id)),
        }
    }

    fn obj_props(&self, id: ObjectId, o: &Obj) -> Result<ObjectProps> {
        let zs = self.inner.class(o.class())?.zone_size;
        Ok(match id.ty() {
            ObjType::Mblock => ObjectProps {
                id,
                ty: ObjType::Mblock,
                class: o.class(),
                len: u64::from(o.a),
                capacity: zs,
                committed: true,
                crc: Some(o.b),
                zone: o.zone,
            },
            ty => ObjectProps {
                id,
                ty,
                class: o.class(),
                len: 0,
                capacity: u64::from(o.a) * zs,
                committed: true,
                crc: None,
                zone: o.zone,
            },
        })
    }

    /// Every committed object (sorted by ID).
    pub(crate) fn objects(&self) -> Result<Vec<ObjectProps>> {
        let mut out = Vec::new();
        for s in &self.inner.shards {
            let objs: Vec<(u64, Obj)> = rlock(&s.objs).iter().map(|(k, v)| (*k, *v)).collect();
            for (raw, o) in objs {
                let id = ObjectId::from_raw(raw)
                    .ok_or_else(|| Error::Corrupt(format!("bad object ID {raw:#x}")))?;
                out.push(self.obj_props(id, &o)?);
            }
        }
        out.sort_by_key(|p| p.id);
        Ok(out)
    }

    /// Verify the content CRC of a committed mblock.
    pub(crate) fn verify(&self, id: ObjectId) -> Result<()> {
        let Some(o) = self.committed(id)? else {
            return Err(Error::NotFound(id));
        };
        if id.ty() != ObjType::Mblock {
            return Ok(());
        }
        let c = self.inner.class(o.class())?;
        let crc = mblock::content_crc(c.dev.as_ref(), c.off(o.zone), u64::from(o.a))?;
        if crc != o.b {
            return Err(Error::ChecksumMismatch {
                id,
                stored: o.b,
                computed: crc,
            });
        }
        Ok(())
    }

    /// Allocate a user mlog (`ty` Mlog) or MDC (`ty` Mdc) of at least `capacity` bytes per log.
    pub(crate) fn log_alloc(
        &self,
        ty: ObjType,
        class: MediaClass,
        capacity: u64,
    ) -> Result<ObjectId> {
        self.inner.check_writable()?;
        let c = self.inner.class(class)?;
        let zones = u32::try_from(capacity.max(1).div_ceil(c.zone_size))
            .map_err(|_| Error::InvalidArgument(format!("log capacity {capacity} is too large")))?;
        let zone = c.map.alloc(zones)?;
        let zone_b = if ty == ObjType::Mdc {
            match c.map.alloc(zones) {
                Ok(z) => z,
                Err(e) => {
                    let _ = c.map.release(zone, zones);
                    return Err(e.into());
                }
            }
        } else {
            0
        };
        let release = || {
            let _ = c.map.release(zone, zones);
            if ty == ObjType::Mdc {
                let _ = c.map.release(zone_b, zones);
            }
        };
        let id = match self.inner.new_id(ty) {
            Ok(id) => id,
            Err(e) => {
                release();
                return Err(e);
            }
        };
        // Format the log(s) now so that an open after commit finds them.
        let made: Result<()> = match ty {
            ObjType::Mdc => Mdc::create(
                Arc::clone(&c.dev),
                c.extent(zone, zones),
                c.extent(zone_b, zones),
                id.raw(),
            )
            .and_then(|m| m.sync())
            .map_err(Error::from),
            _ => Mlog::create(Arc::clone(&c.dev), c.extent(zone, zones), id.raw())
                .and_then(|m| m.sync())
                .map_err(Error::from),
        };
        if let Err(e) = made {
            release();
            return Err(e);
        }
        lock(&self.inner.pending).insert(
            id.raw(),
            Arc::new(Mutex::new(Some(Pending::Log {
                class,
                zone,
                zone_b,
                zones,
            }))),
        );
        Ok(id)
    }

    /// Commit a user mlog or MDC.
    pub(crate) fn log_commit(&self, id: ObjectId) -> Result<ObjectProps> {
        self.inner.check_writable()?;
        let Some(p) = self.pending(id) else {
            return Err(self.gone(id)?);
        };
        let mut g = lock(&p);
        let Some(Pending::Log {
            class,
            zone,
            zone_b,
            zones,
        }) = g.as_ref()
        else {
            return Err(Error::WrongType {
                id,
                expected: ObjType::Mlog,
            });
        };
        let obj = Obj {
            zone: *zone,
            a: *zones,
            b: *zone_b,
            class: class.code(),
        };
        self.inner
            .log(self.inner.shard(id)?, obj.record(id), true, |m| {
                m.insert(id.raw(), obj);
            })?;
        *g = None;
        drop(g);
        lock(&self.inner.pending).remove(&id.raw());
        self.props(id)
    }

    /// Open a user mlog (committed or not). One shared handle per mlog.
    pub(crate) fn mlog_open(&self, id: ObjectId) -> Result<Arc<Mlog>> {
        Self::expect_type(id, ObjType::Mlog)?;
        let mut open = lock(&self.inner.open_logs);
        if let Some(m) = open.get(&id.raw()) {
            return Ok(Arc::clone(m));
        }
        let (class, zone, zones) = self.log_place(id)?;
        let c = self.inner.class(class)?;
        let m = Arc::new(Mlog::open(
            Arc::clone(&c.dev),
            c.extent(zone, zones),
            id.raw(),
        )?);
        open.insert(id.raw(), Arc::clone(&m));
        Ok(m)
    }

    /// Open a user MDC (committed or not). One shared handle per MDC.
    pub(crate) fn mdc_open(&self, id: ObjectId) -> Result<Arc<Mdc>> {
        Self::expect_type(id, ObjType::Mdc)?;
        let mut open = lock(&self.inner.open_mdcs);
        if let Some(m) = open.get(&id.raw()) {
            return Ok(Arc::clone(m));
        }
        let (class, zone, zones) = self.log_place(id)?;
        let zone_b = match self.committed(id)? {
            Some(o) => o.b,
            None => match self.pending(id).as_ref().map(|p| {
                lock(p).as_ref().map(|x| match x {
                    Pending::Log { zone_b, .. } => *zone_b,
                    Pending::Mblock { .. } => 0,
                })
            }) {
                Some(Some(z)) => z,
                _ => return Err(Error::NotFound(id)),
            },
        };
        let c = self.inner.class(class)?;
        let m = Arc::new(Mdc::open(
            Arc::clone(&c.dev),
            c.extent(zone, zones),
            c.extent(zone_b, zones),
            id.raw(),
        )?);
        open.insert(id.raw(), Arc::clone(&m));
        Ok(m)
    }

    fn log_place(&self, id: ObjectId) -> Result<(MediaClass, u32, u32)> {
        if let Some(o) = self.committed(id)? {
            return Ok((o.class(), o.zone, o.a));
        }
        let Some(p) = self.pending(id) else {
            return Err(Error::NotFound(id));
        };
        let g = lock(&p);
        match g.as_ref() {
            Some(Pending::Log {
                class, zone, zones, ..
            }) => Ok((*class, *zone, *zones)),
            _ => Err(Error::NotFound(id)),
        }
    }

    /// The user root MDC's ID.
    pub(crate) fn root(&self) -> ObjectId {
        self.inner.root
    }

    /// Every MDC's state, for `check` and stats.
    pub(crate) fn mdc_stats(&self) -> Vec<MdcStats> {
        self.inner
            .shards
            .iter()
            .map(|s| {
                let u = rlock(&s.mdc).usage();
                MdcStats {
                    index: s.index,
                    records: s.records.load(Ordering::Relaxed),
                    objects: rlock(&s.objs).len() as u64,
                    used: u.len,
                    capacity: u.capacity,
                }
            })
            .collect()
    }
}

impl From<crate::space_map::SpaceMapError> for Error {
    fn from(e: crate::space_map::SpaceMapError) -> Self {
        match e {
            crate::space_map::SpaceMapError::NoSpace { .. } => Error::NoSpace(e),
            other => Error::Corrupt(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::MemDevice;

    /// A compaction failing at any one device operation: before its end
    /// marker it is abandoned and the MDC is back on its old log, which
    /// holds every record and takes new ones, across a crash; a failed end
    /// marker leaves it in doubt, and a reopen then finds the old state or
    /// the new one, whole.
    #[test]
    fn a_compaction_failing_anywhere_is_abandoned_or_in_doubt() {
        use crate::dev::{CrashMode, FaultDevice};
        let (a, b) = (0..(4 << 20), (4 << 20)..(8 << 20));
        let old: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 50]).collect();
        // Enough objects that their records fill more than one async flush
        // (1 MiB), so the body writes before the end marker.
        let objs: HashMap<u64, Obj> = (0..30_000u64)
            .map(|n| {
                let id = ObjectId::new(ObjType::Mblock, 1, 100 + n);
                let o = Obj {
                    zone: 5,
                    a: 4096,
                    b: 0,
                    class: MediaClass::Capacity.code(),
                };
                (id.raw(), o)
            })
            .collect();
        let read = |m: &Mdc| -> Vec<Vec<u8>> { m.reader().unwrap().map(|r| r.unwrap()).collect() };
        let setup = || {
            let f = Arc::new(FaultDevice::new(8 << 20, 4096));
            let d: DeviceRef = f.clone();
            let mdc = Mdc::create(d, a.clone(), b.clone(), 3).unwrap();
            for r in &old {
                mdc.append(r, true).unwrap();
            }
            (f, mdc)
        };
        // The MDC as a crash that loses every unflushed write leaves it.
        let crashed = |f: &FaultDevice| -> Mdc {
            Mdc::open(
                Arc::new(f.reboot(CrashMode::DropAll)),
                a.clone(),
                b.clone(),
                3,
            )
            .unwrap()
        };
        let (f, mdc) = setup();
        let ops = f.stats().ops;
        assert!(compact_mdc(&mdc, &objs, 1000).is_ok());
        let total = f.stats().ops - ops;
        let new_len = read(&mdc).len();
        assert_eq!(new_len, objs.len() + 1);
        let (mut abandoned, mut in_doubt) = (0, 0);
        for p in 1..=total {
            let (f, mdc) = setup();
            let active = mdc.active();
            f.fail_op(f.stats().ops + p);
            let res = compact_mdc(&mdc, &objs, 1000);
            f.clear_failures();
            match res {
                Ok(()) => {}
                Err(CompactError::Abandoned(_)) => {
                    abandoned += 1;
                    assert_eq!(mdc.active(), active, "op {p}: back on the old log");
                    mdc.append(b"after", true).unwrap();
                    let mut want = old.clone();
                    want.push(b"after".to_vec());
                    assert_eq!(read(&mdc), want, "op {p}");
                    drop(mdc);
                    assert_eq!(read(&crashed(&f)), want, "op {p}: after a crash");
                }
                Err(CompactError::InDoubt(_)) => {
                    in_doubt += 1;
                    drop(mdc);
                    let got = read(&crashed(&f));
                    assert!(
                        got == old || got.len() == new_len,
                        "op {p}: old or new state"
                    );
                }
            }
        }
        assert!(
            abandoned >= 3 && in_doubt >= 1,
            "{abandoned} abandoned, {in_doubt} in doubt of {total}"
        );
    }

    #[test]
    fn an_mblock_longer_than_its_zone_fails_the_open() {
        let zone = 64 * 1024u64;
        let dev: DeviceRef = Arc::new(MemDevice::new(72 * zone, 512));
        let class = || {
            Some(ClassDev {
                dev: Arc::clone(&dev),
                zone_size: zone,
                map: ClassMap::new(MediaClass::Capacity, 1, 72, 0),
            })
        };
        let layout = Layout {
            mdc0_zone: 1,
            mdc0_zones: 1,
        };
        Catalog::format([class(), None], layout).unwrap();
        let pmd = Catalog::open([class(), None], layout, false, true).unwrap();
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
        let pmd = Catalog::open([class(), None], layout, false, true).unwrap();
        let s = &pmd.inner.shards[0];
        rlock(&s.mdc)
            .append(&rec(zone as u32 + 1).encode(), true)
            .unwrap();
        drop(pmd);
        match Catalog::open([class(), None], layout, false, true) {
            Err(Error::Corrupt(why)) => assert!(why.contains("its zone holds"), "{why}"),
            other => panic!("expected a corruption error, got {other:?}"),
        }
    }
}
