//! The pool torture: random mblock alloc/write/commit/abort/delete and
//! user-mlog appends from several threads on a fault-injecting device, a
//! crash at a chosen device operation, a reboot that loses or tears unflushed
//! writes, a reopen, and a check against a model of what was acknowledged:
//!
//! - every committed mblock readable bit-exact, with its recorded CRC;
//! - every uncommitted one gone; no deleted object back (a deferred delete
//!   may be undone by a crash until a `Pool::sync` after it returned, or
//!   the pool was closed; the object is then back whole);
//! - no object ID reused (new IDs after recovery are unseen);
//! - space accounting exact: used zones = metadata zones + live objects (a
//!   zone claimed twice fails the open, and counts as a violation);
//! - the user mlog holds a prefix of what was appended, at least up to the
//!   last acknowledged sync append;
//! - the pool works after recovery: a new mblock commits and survives a
//!   reopen, and that reopen shows exactly the objects of the first plus
//!   the new one (what recovery dropped stays dropped).
//!
//! Some operations compact the pool metadata, so crashes land inside MDC
//! compactions as well.

use super::{mix, TortureReport, Violation};
use crate::dev::{CrashMode, DeviceRef, FaultDevice};
use crate::format::superblock::MediaClass;
use crate::objid::{MblockId, MlogId, ObjType, ObjectId};
use crate::pool::Pool;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Settings of a pool torture run.
#[derive(Debug, Clone)]
pub struct PoolTortureConfig {
    /// Seed of everything random.
    pub seed: u64,
    /// Crash points to replay in total.
    pub crash_points: u64,
    /// Worker threads (1..=8).
    pub threads: usize,
    /// Operations per thread per workload instance.
    pub ops_per_thread: usize,
    /// Zones of the capacity device (64 KiB each).
    pub zones: u64,
    /// Sector sizes to exercise, alternating between instances.
    pub sectors: Vec<u32>,
}

impl Default for PoolTortureConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            crash_points: 500,
            threads: 4,
            ops_per_thread: 24,
            zones: 72,
            sectors: vec![512, 4096],
        }
    }
}

const ZONE: u64 = 64 * 1024;
/// Crash points replayed per workload instance before a new one is drawn.
const POINTS_PER_INSTANCE: u64 = 40;

/// Deterministic content of an mblock (from the run seed and its ID).
fn content(seed: u64, id: ObjectId, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x = mix(seed ^ id.raw());
    while out.len() < len {
        x = mix(x);
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn mlog_record(seed: u64, i: u64) -> Vec<u8> {
    let len = 1 + (mix(seed ^ 0x6d6c_6f67 ^ i) % 700) as usize;
    let mut r = content(seed ^ 0x5eed, ObjectId::new(ObjType::Mlog, 1, i + 1), len);
    r[..len.min(8)].copy_from_slice(&i.to_le_bytes()[..len.min(8)]);
    r
}

/// What one thread saw acknowledged.
#[derive(Debug, Default)]
struct Seen {
    handed: Vec<ObjectId>,
    committed: HashMap<ObjectId, usize>,
    deleted: HashSet<ObjectId>,
    /// Commits whose outcome is unknown (the call failed at the crash), one per thread at most.
    commit_unknown: Vec<(ObjectId, usize)>,
    /// Deletes whose outcome is unknown.
    delete_unknown: Vec<ObjectId>,
    /// Deferred deletes not yet followed by a `Pool::sync` of their thread.
    deferred: HashSet<ObjectId>,
    /// User-mlog records appended (attempted) and the count a sync acknowledged.
    mlog_attempted: u64,
    mlog_durable: u64,
}

/// One workload thread.
fn worker(pool: &Pool, seed: u64, t: usize, ops: usize, mlog: Option<MlogId>, seen: &Mutex<Seen>) {
    let mut rng = StdRng::seed_from_u64(mix(seed ^ (t as u64 + 1)));
    let mut mine: Vec<MblockId> = Vec::new();
    // This thread's deferred deletes since its last sync.
    let mut undone: Vec<MblockId> = Vec::new();
    let lock = || crate::lock::lock(seen);
    for _ in 0..ops {
        let roll = rng.random_range(0..100);
        if roll < 55 {
            let Ok(id) = pool.mblock_alloc(MediaClass::Capacity) else {
                return;
            };
            lock().handed.push(id.object_id());
            // The most an mblock holds: its zone, less its checksum table.
            let cap = pool
                .mblock_capacity(MediaClass::Capacity)
                .map_or(ZONE as usize, |c| c as usize);
            let len = match rng.random_range(0..4) {
                0 => rng.random_range(1..600),
                1 => rng.random_range(1..cap),
                2 => cap,
                _ => rng.random_range(4000..20_000),
            };
            let data = content(seed, id.object_id(), len);
            // Write in one or several pieces; some whole 4 KiB pieces from
            // an aligned buffer (straight to the device when nothing is
            // pending, copied behind a pending partial sector otherwise).
            let mut at = 0;
            while at < len {
                let pages = (len - at) / 4096;
                let written = if pages > 0 && rng.random_bool(0.3) {
                    let n = 4096 * rng.random_range(1..=pages);
                    let buf = crate::io::AlignedBuf::from_slice(&data[at..at + n], 4096);
                    pool.mblock_write_aligned(id, buf).map(|_| n)
                } else {
                    let n = if rng.random_bool(0.5) {
                        len - at
                    } else {
                        rng.random_range(1..=len - at)
                    };
                    pool.mblock_write(id, &data[at..at + n]).map(|_| n)
                };
                let Ok(n) = written else {
                    return;
                };
                at += n;
            }
            match rng.random_range(0..10) {
                0 => {
                    if pool.mblock_abort(id).is_err() {
                        return;
                    }
                }
                1 => {} // left uncommitted: must vanish
                _ => match pool.mblock_commit(id) {
                    Ok(_) => {
                        lock().committed.insert(id.object_id(), len);
                        mine.push(id);
                    }
                    Err(_) => {
                        lock().commit_unknown.push((id.object_id(), len));
                        return;
                    }
                },
            }
        } else if roll < 80 {
            if mine.is_empty() {
                continue;
            }
            let id = mine.swap_remove(rng.random_range(0..mine.len()));
            let deferred = rng.random_bool(0.5);
            let r = if deferred {
                pool.mblock_delete_deferred(id)
            } else {
                pool.mblock_delete(id)
            };
            match r {
                Ok(()) if deferred => {
                    lock().deferred.insert(id.object_id());
                    undone.push(id);
                }
                Ok(()) => {
                    lock().deleted.insert(id.object_id());
                }
                Err(_) => {
                    lock().delete_unknown.push(id.object_id());
                    return;
                }
            }
        } else if (92..96).contains(&roll) {
            // Make this thread's deferred deletes durable.
            if pool.sync().is_err() {
                return;
            }
            let mut g = lock();
            for id in undone.drain(..) {
                g.deferred.remove(&id.object_id());
                g.deleted.insert(id.object_id());
            }
        } else if roll >= 96 {
            // Compact the pool metadata now: crashes land inside compactions too.
            if pool.compact_metadata().is_err() {
                return;
            }
        } else if let Some(mid) = mlog {
            if t != 0 {
                continue; // one appender keeps the expected order exact
            }
            let Ok(log) = pool.mlog_open(mid) else { return };
            let sync = rng.random_bool(0.6);
            let i = lock().mlog_attempted;
            lock().mlog_attempted = i + 1;
            match log.append(&mlog_record(seed, i), sync) {
                Ok(_) if sync => lock().mlog_durable = i + 1,
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }
}

struct Instance {
    seed: u64,
    sector: u32,
    image: Vec<u8>,
    mlog: MlogId,
    base_used: u64,
}

fn make_instance(seed: u64, sector: u32, zones: u64) -> Result<Instance, String> {
    let dev = Arc::new(FaultDevice::new(zones * ZONE, sector));
    let d: DeviceRef = dev.clone();
    Pool::format_on(
        "torture",
        &[(Arc::clone(&d), MediaClass::Capacity, ZONE)],
        "",
    )
    .map_err(|e| format!("format: {e}"))?;
    let pool = Pool::open_on(vec![Arc::clone(&d)], false).map_err(|e| format!("open: {e}"))?;
    let mlog = pool
        .mlog_alloc(MediaClass::Capacity, ZONE)
        .map_err(|e| format!("mlog alloc: {e}"))?;
    pool.mlog_commit(mlog)
        .map_err(|e| format!("mlog commit: {e}"))?;
    let base_used = pool.usage().first().map_or(0, |u| u.used / ZONE);
    pool.close().map_err(|e| format!("close: {e}"))?;
    Ok(Instance {
        seed,
        sector,
        image: dev.durable_image(),
        mlog,
        base_used,
    })
}

/// Run the workload on a copy of the instance, crashing after `point`
/// operations (None: no crash). Returns the device and what was seen.
fn run_once(
    inst: &Instance,
    cfg: &PoolTortureConfig,
    point: Option<u64>,
) -> Result<(Arc<FaultDevice>, Seen), String> {
    let dev = Arc::new(FaultDevice::from_image(inst.image.clone(), inst.sector));
    let d: DeviceRef = dev.clone();
    let pool =
        Pool::open_on(vec![d], false).map_err(|e| format!("open before the workload: {e}"))?;
    if let Some(p) = point {
        dev.crash_after(dev.stats().ops + p);
    }
    let seen = Mutex::new(Seen::default());
    std::thread::scope(|s| {
        for t in 0..cfg.threads {
            let (pool, seen) = (&pool, &seen);
            s.spawn(move || {
                worker(
                    pool,
                    inst.seed,
                    t,
                    cfg.ops_per_thread,
                    Some(inst.mlog),
                    seen,
                )
            });
        }
    });
    // Without a crash the close must succeed; after one it fails, as the
    // device does.
    let closed = pool.close();
    if point.is_none() {
        closed.map_err(|e| format!("close after the workload: {e}"))?;
    }
    Ok((dev, seen.into_inner().unwrap_or_else(|p| p.into_inner())))
}

enum QueuedErr {
    /// The read failed.
    Read(crate::error::Error),
    /// The reader misbehaved.
    Bad(String),
}

/// Read mblock `o` (`len` bytes of content) through an
/// [`crate::MblockReader`]: first with an EIO injected into the device
/// under its first sector, which must come back from the reader as that
/// read's error, then cleanly. Bytes past the content must read as zero.
fn read_queued(
    pool: &Pool,
    dev: &FaultDevice,
    id: MblockId,
    o: &crate::pool::ObjectProps,
    len: usize,
) -> Result<Vec<u8>, QueuedErr> {
    let mut rd = pool.mblock_reader(4).map_err(QueuedErr::Read)?;
    let read = || crate::pool::AlignedRead {
        id,
        offset: 0,
        buf: crate::io::AlignedBuf::new(len, 4096),
    };
    let base = u64::from(o.zone) * ZONE;
    dev.fail_reads(base..base + 1);
    let pushed = rd.push(read());
    let injected = rd.next();
    dev.clear_failures();
    pushed.map_err(QueuedErr::Read)?;
    match injected {
        Some(Err(crate::error::Error::Storage(crate::error::StorageError::Dev(
            crate::dev::DevError::Io { source, .. },
        )))) if source.raw_os_error() == Some(libc::EIO) => {}
        other => {
            return Err(QueuedErr::Bad(format!(
                "mblock {}: an EIO injected under a queued read did not surface: {:?}",
                o.id,
                other.map(|r| r.map(|_| ()))
            )))
        }
    }
    rd.push(read()).map_err(QueuedErr::Read)?;
    let buf = match rd.next() {
        Some(Ok(r)) => r.buf,
        Some(Err(e)) => return Err(QueuedErr::Read(e)),
        None => return Err(QueuedErr::Bad(format!("mblock {}: queued read lost", o.id))),
    };
    if buf.get(len..).is_some_and(|t| t.iter().all(|&b| b == 0)) {
        Ok(buf.get(..len).map(<[u8]>::to_vec).unwrap_or_default())
    } else {
        Ok(Vec::new()) // reported as differing content
    }
}

/// One aligned read through a fresh [`crate::MblockReader`]: the buffer
/// back filled (empty if the reader lost it).
fn read_one(pool: &Pool, read: crate::pool::AlignedRead) -> crate::Result<crate::io::AlignedBuf> {
    let mut rd = pool.mblock_reader(8)?;
    rd.push(read)?;
    match rd.next() {
        Some(r) => r.map(|r| r.buf),
        None => Ok(crate::io::AlignedBuf::default()),
    }
}

/// Check a rebooted device against what the workload saw. Returns what is wrong.
/// `clean`: the pool was closed before the crash, so deferred deletes are durable.
fn check(inst: &Instance, dev: FaultDevice, seen: &Seen, clean: bool) -> Vec<String> {
    let mut bad = Vec::new();
    let dev = Arc::new(dev);
    let d: DeviceRef = dev.clone();
    let pool = match Pool::open_on(vec![Arc::clone(&d)], false) {
        Ok(p) => p,
        Err(e) => return vec![format!("the pool does not open after the crash: {e}")],
    };
    let objs = match pool.objects() {
        Ok(o) => o,
        Err(e) => return vec![format!("listing objects failed: {e}")],
    };
    let mut present = HashSet::new();
    let mut mblocks = 0u64;
    for o in &objs {
        if o.ty != ObjType::Mblock {
            continue;
        }
        mblocks += 1;
        present.insert(o.id);
        let Ok(mid) = MblockId::try_from(o.id) else {
            bad.push(format!("object {} is listed as an mblock", o.id));
            continue;
        };
        let expected_len = if let Some(l) = seen.committed.get(&o.id) {
            if seen.deleted.contains(&o.id) {
                bad.push(format!("deleted mblock {} is back", o.id));
                continue;
            }
            if clean && seen.deferred.contains(&o.id) {
                bad.push(format!(
                    "mblock {} deleted (deferred) before a clean close is back",
                    o.id
                ));
                continue;
            }
            *l
        } else if let Some((_, l)) = seen.commit_unknown.iter().find(|(id, _)| *id == o.id) {
            *l
        } else {
            bad.push(format!(
                "mblock {} was never committed, yet it exists",
                o.id
            ));
            continue;
        };
        if o.len != expected_len as u64 {
            bad.push(format!(
                "mblock {} has length {}, committed with {expected_len}",
                o.id, o.len
            ));
            continue;
        }
        let want = content(inst.seed, o.id, expected_len);
        // The record's CRC: of the content, or (format version 3) of its
        // table of block checksums.
        let recorded = match o.csum_block {
            Some(b) => {
                let table: Vec<u8> = want
                    .chunks(b as usize)
                    .flat_map(|c| crate::crc::crc32c(c).to_le_bytes())
                    .collect();
                crate::crc::crc32c(&table)
            }
            None => crate::crc::crc32c(&want),
        };
        if o.crc != Some(recorded) {
            bad.push(format!(
                "mblock {}: recorded CRC differs from the committed content's",
                o.id
            ));
        }
        // Read back as bytes, into an aligned buffer (the zero-copy
        // path; the buffer runs past the content to a whole 4 KiB, and
        // those bytes must read as zero), or through an MblockReader (its
        // device queue, with an EIO injected first).
        let got = if o.id.raw() % 3 == 0 {
            let mut got = vec![0u8; expected_len];
            pool.mblock_read(mid, 0, &mut got).map(|()| got)
        } else if o.id.raw() % 3 == 1 {
            match read_queued(&pool, &dev, mid, o, expected_len) {
                Ok(got) => Ok(got),
                Err(QueuedErr::Read(e)) => Err(e),
                Err(QueuedErr::Bad(what)) => {
                    bad.push(what);
                    continue;
                }
            }
        } else {
            let read = crate::pool::AlignedRead {
                id: mid,
                offset: 0,
                buf: crate::io::AlignedBuf::new(expected_len, 4096),
            };
            read_one(&pool, read).map(|buf| {
                if buf
                    .get(expected_len..)
                    .is_some_and(|t| t.iter().all(|&b| b == 0))
                {
                    buf.get(..expected_len)
                        .map(<[u8]>::to_vec)
                        .unwrap_or_default()
                } else {
                    Vec::new() // reported below as differing content
                }
            })
        };
        match got {
            Ok(got) if got == want => {}
            Ok(_) => bad.push(format!(
                "mblock {}: content differs from what was committed",
                o.id
            )),
            Err(e) => bad.push(format!("mblock {}: read failed: {e}", o.id)),
        }
    }
    for id in seen.committed.keys() {
        if !seen.deleted.contains(id)
            && !seen.delete_unknown.contains(id)
            && !seen.deferred.contains(id)
            && !present.contains(id)
        {
            bad.push(format!("committed mblock {id} is missing"));
        }
    }
    // Space: metadata zones + one zone per live mblock, exactly.
    let used = pool.usage().first().map_or(0, |u| u.used / ZONE);
    if used != inst.base_used + mblocks {
        bad.push(format!(
            "space accounting: {used} zones in use, expected {} (metadata) + {mblocks} (mblocks)",
            inst.base_used
        ));
    }
    // The user mlog: a prefix of what was appended, at least up to the last acknowledged sync.
    match pool.mlog_open(inst.mlog) {
        Ok(log) => match log.reader() {
            Ok(rd) => {
                let mut n = 0u64;
                for r in rd {
                    match r {
                        Ok(rec) if n < seen.mlog_attempted && rec == mlog_record(inst.seed, n) => {
                            n += 1
                        }
                        Ok(_) => {
                            bad.push(format!(
                                "user mlog record {n} is not what was appended (or is extra)"
                            ));
                            break;
                        }
                        Err(e) => {
                            bad.push(format!("user mlog read failed at record {n}: {e}"));
                            break;
                        }
                    }
                }
                if n < seen.mlog_durable {
                    bad.push(format!(
                        "user mlog holds {n} records; {} were acknowledged durable",
                        seen.mlog_durable
                    ));
                }
            }
            Err(e) => bad.push(format!("user mlog reader failed: {e}")),
        },
        Err(e) => bad.push(format!("user mlog does not open: {e}")),
    }
    let first: HashSet<ObjectId> = objs.iter().map(|o| o.id).collect();
    // No ID reused, and the pool works: a new mblock commits and survives a reopen.
    let handed: HashSet<ObjectId> = seen.handed.iter().copied().collect();
    let mut fresh = None;
    for _ in 0..3 {
        match pool.mblock_alloc(MediaClass::Capacity) {
            Ok(id) if handed.contains(&id.object_id()) => {
                bad.push(format!("object ID {id} handed out again after recovery"))
            }
            Ok(id) => fresh = Some(id),
            Err(crate::Error::Storage(crate::error::StorageError::NoSpace(_))) => {}
            Err(e) => bad.push(format!("alloc after recovery failed: {e}")),
        }
    }
    if let Some(id) = fresh {
        let data = content(inst.seed ^ 1, id.object_id(), 3000);
        if let Err(e) = pool
            .mblock_write(id, &data)
            .and_then(|_| pool.mblock_commit(id).map(|_| ()))
        {
            bad.push(format!("commit after recovery failed: {e}"));
        } else {
            drop(pool);
            match Pool::open_on(vec![Arc::clone(&d)], false) {
                Ok(p) => {
                    let mut want = first.clone();
                    want.insert(id.object_id());
                    match p.objects() {
                        Ok(o) => {
                            let now: HashSet<ObjectId> = o.iter().map(|o| o.id).collect();
                            for x in now.difference(&want) {
                                bad.push(format!("object {x} appeared at the second reopen"));
                            }
                            for x in want.difference(&now) {
                                bad.push(format!("object {x} vanished at the second reopen"));
                            }
                        }
                        Err(e) => bad.push(format!("listing at the second reopen failed: {e}")),
                    }
                    let mut got = vec![0u8; data.len()];
                    if p.mblock_read(id, 0, &mut got)
                        .map(|_| got != data)
                        .unwrap_or(true)
                    {
                        bad.push(format!(
                            "mblock {id} committed after recovery did not survive a reopen"
                        ));
                    }
                }
                Err(e) => bad.push(format!("second reopen failed: {e}")),
            }
        }
    }
    bad
}

/// Run the pool torture. `progress(done, total)` is called as crash points complete.
pub fn run_pool(cfg: &PoolTortureConfig, progress: &mut dyn FnMut(u64, u64)) -> TortureReport {
    let mut cfg = cfg.clone();
    cfg.threads = cfg.threads.clamp(1, 8);
    if cfg.sectors.is_empty() {
        cfg.sectors = vec![512, 4096];
    }
    let mut rep = TortureReport::default();
    let mut done = 0u64;
    let mut w = 0u64;
    while done < cfg.crash_points {
        let iseed = mix(cfg.seed ^ w.wrapping_mul(0x1000_0001));
        let sector = cfg.sectors[(w as usize) % cfg.sectors.len()];
        w += 1;
        let viol = |what: String, point: Option<u64>, mode: String| Violation {
            seed: iseed,
            sector,
            crash_point: point,
            mode,
            what,
            threads: cfg.threads,
        };
        let inst = match make_instance(iseed, sector, cfg.zones) {
            Ok(i) => i,
            Err(e) => {
                rep.add(viol(e, None, "-".into()));
                done += 1;
                continue;
            }
        };
        // A full run without a crash: counts the operations, and must check clean.
        let total_ops = match run_once(&inst, &cfg, None) {
            Ok((dev, seen)) => {
                let ops = dev.stats().ops;
                for what in check(&inst, dev.reboot(CrashMode::DropAll), &seen, true) {
                    rep.add(viol(what, None, "clean shutdown".into()));
                }
                ops
            }
            Err(e) => {
                rep.add(viol(e, None, "-".into()));
                done += 1;
                continue;
            }
        };
        rep.instances.push((iseed, sector, total_ops));
        let n = POINTS_PER_INSTANCE.min(cfg.crash_points - done);
        let mut prng = StdRng::seed_from_u64(iseed ^ 0xc0ffee);
        for k in 0..n {
            // Sweep the start densely, sample the rest (thread timing varies the op count).
            let point = if total_ops <= n {
                k
            } else {
                prng.random_range(0..=total_ops + total_ops / 10)
            };
            let mode = match k % 3 {
                0 => CrashMode::DropAll,
                1 => CrashMode::KeepAll,
                _ => CrashMode::Random {
                    keep: 0.5,
                    tear: 0.5,
                    seed: mix(iseed ^ k),
                },
            };
            let mode_s = format!("{mode:?}");
            match run_once(&inst, &cfg, Some(point)) {
                Ok((dev, seen)) => {
                    for what in check(&inst, dev.reboot(mode), &seen, false) {
                        rep.add(viol(what, Some(point), mode_s.clone()));
                    }
                }
                Err(e) => rep.add(viol(e, Some(point), mode_s)),
            }
            rep.crash_points += 1;
            done += 1;
            progress(done, cfg.crash_points);
        }
    }
    rep
}
