//! The stream torture: random appends (sync, grouped, batches), rolls,
//! seals, trims and reopens of one event stream from several threads on a
//! fault-injecting device, a crash at a chosen device operation, a reboot
//! that loses or tears unflushed writes, a reopen, and a check against a
//! model of what was acknowledged:
//!
//! - every acknowledged record at or above the first offset held reads
//!   back bit-exact at its offset (no offset reused);
//! - every offset between the first held and the next is readable (none
//!   skipped), and holds a record that was appended (nothing invented);
//! - the next offset is past every acknowledged one;
//! - the first offset held is at least what an acknowledged trim left (no
//!   trimmed segment returns) and at most what any trim asked for;
//! - free space is exact: the pool's objects are the root MDC, the stream
//!   catalog and what the streams hold, and deleting the stream gives the
//!   pool back the space it had before the stream was created.

use super::{mix, TortureReport, Violation};
use crate::dev::{CrashMode, DeviceRef, FaultDevice};
use crate::format::superblock::MediaClass;
use crate::pool::Pool;
use crate::stream::{Durability, StreamOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

/// Zone size of the torture pools.
const ZONE: u64 = 256 << 10;
/// Crash points replayed on one workload instance.
const POINTS_PER_INSTANCE: u64 = 25;
/// Open / work / close rounds of one run.
const ROUNDS: usize = 3;

/// Settings of a stream torture run.
#[derive(Debug, Clone)]
pub struct StreamTortureConfig {
    /// Seed of everything random.
    pub seed: u64,
    /// Crash points to replay in total.
    pub crash_points: u64,
    /// Worker threads (1..=8).
    pub threads: usize,
    /// Operations per thread per round.
    pub ops_per_thread: usize,
    /// Zones of the capacity device.
    pub zones: u64,
}

impl Default for StreamTortureConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            crash_points: 300,
            threads: 3,
            ops_per_thread: 40,
            zones: 96,
        }
    }
}

/// The record a thread appends as its `i`-th: a tag, then bytes that
/// depend on it.
fn record(seed: u64, tag: u64) -> Vec<u8> {
    let h = mix(seed ^ tag);
    let len = if h.is_multiple_of(16) {
        2000 + (h >> 8) % 5000
    } else {
        1 + (h >> 8) % 300
    } as usize;
    let mut v = tag.to_le_bytes().to_vec();
    v.extend((0..len).map(|j| (h >> (j % 56)) as u8 ^ j as u8));
    v
}

fn tag_of(rec: &[u8]) -> Option<u64> {
    let b: [u8; 8] = rec.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

#[derive(Debug, Default)]
struct Seen {
    /// Acknowledged records: offset -> tag.
    acked: BTreeMap<u64, u64>,
    /// Every tag an append was attempted with.
    tried: HashSet<u64>,
    /// First offset an acknowledged trim left.
    trim_acked: u64,
    /// Most any trim asked for.
    trim_asked: u64,
}

struct Instance {
    seed: u64,
    sector: u32,
    image: Vec<u8>,
    /// Bytes used with the anchor stream only.
    base_used: u64,
}

fn used(pool: &Pool) -> u64 {
    pool.usage()
        .iter()
        .filter(|u| u.class == MediaClass::Capacity)
        .map(|u| u.used)
        .sum()
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
    let pool = Pool::open_on(vec![d], false).map_err(|e| format!("open: {e}"))?;
    // An anchor stream makes the catalog; the space with it is the baseline.
    pool.stream_create("anchor", &StreamOptions::default())
        .map_err(|e| format!("create anchor: {e}"))?;
    let base_used = used(&pool);
    let opts = StreamOptions {
        segment_bytes: Some(6 << 10),
        ..StreamOptions::default()
    };
    pool.stream_create("t", &opts)
        .map_err(|e| format!("create: {e}"))?;
    pool.close().map_err(|e| format!("close: {e}"))?;
    Ok(Instance {
        seed,
        sector,
        image: dev.durable_image(),
        base_used,
    })
}

fn worker(s: &crate::Stream, seed: u64, tag0: u64, ops: usize, seen: &Mutex<Seen>) {
    let mut rng = StdRng::seed_from_u64(mix(seed ^ tag0));
    let mut group: Vec<(u64, u64)> = Vec::new();
    for i in 0..ops as u64 {
        let tag = tag0 + i * 4;
        let op = rng.random_range(0..100);
        let ok = match op {
            0..45 => {
                let r = record(seed, tag);
                crate::lock::lock(seen).tried.insert(tag);
                match s.append(&r) {
                    Ok(off) => {
                        crate::lock::lock(seen).acked.insert(off, tag);
                        true
                    }
                    Err(_) => false,
                }
            }
            45..70 => {
                let r = record(seed, tag);
                crate::lock::lock(seen).tried.insert(tag);
                match s.append_with(&r, Durability::Group) {
                    Ok(off) => {
                        group.push((off, tag));
                        true
                    }
                    Err(_) => false,
                }
            }
            70..80 => {
                let tags = [tag, tag + 1, tag + 2];
                let recs: Vec<Vec<u8>> = tags.iter().map(|&t| record(seed, t)).collect();
                let refs: Vec<&[u8]> = recs.iter().map(|r| r.as_slice()).collect();
                crate::lock::lock(seen).tried.extend(tags);
                match s.append_batch(&refs, Durability::Sync) {
                    Ok(r) => {
                        let mut g = crate::lock::lock(seen);
                        for (off, t) in r.zip(tags) {
                            g.acked.insert(off, t);
                        }
                        true
                    }
                    Err(_) => false,
                }
            }
            80..88 => match s.sync() {
                Ok(()) => {
                    let mut g = crate::lock::lock(seen);
                    g.acked.extend(group.drain(..));
                    true
                }
                Err(_) => false,
            },
            88..93 => s.roll().is_ok(),
            93..96 => s.wait_sealed().is_ok(),
            _ => {
                let d = s.durable();
                let to = if d == 0 { 0 } else { rng.random_range(0..d) };
                {
                    let mut g = crate::lock::lock(seen);
                    g.trim_asked = g.trim_asked.max(to);
                }
                match s.trim_before(to) {
                    Ok(r) => {
                        let mut g = crate::lock::lock(seen);
                        g.trim_acked = g.trim_acked.max(r.first);
                        true
                    }
                    Err(_) => false,
                }
            }
        };
        if !ok {
            return;
        }
    }
    if s.sync().is_ok() {
        crate::lock::lock(seen).acked.extend(group.drain(..));
    }
}

fn run_once(
    inst: &Instance,
    cfg: &StreamTortureConfig,
    point: Option<u64>,
) -> Result<(Arc<FaultDevice>, Seen), String> {
    let dev = Arc::new(FaultDevice::from_image(inst.image.clone(), inst.sector));
    if let Some(p) = point {
        dev.crash_after(dev.stats().ops + p);
    }
    let seen = Mutex::new(Seen::default());
    for round in 0..ROUNDS {
        let d: DeviceRef = dev.clone();
        let pool = match Pool::open_on(vec![d], false) {
            Ok(p) => p,
            Err(e) if dev.crashed() => {
                let _ = e;
                break;
            }
            Err(e) => return Err(format!("open in round {round}: {e}")),
        };
        let s = match pool.stream_open("t") {
            Ok(s) => s,
            Err(_) if dev.crashed() => break,
            Err(e) => return Err(format!("stream open in round {round}: {e}")),
        };
        std::thread::scope(|sc| {
            for t in 0..cfg.threads {
                let (s, seen) = (&s, &seen);
                let tag0 = ((round * 8 + t) as u64) << 32;
                sc.spawn(move || worker(s, inst.seed, tag0, cfg.ops_per_thread, seen));
            }
        });
        let closed = s.close().and(pool.close());
        if dev.crashed() {
            break;
        }
        if point.is_none() {
            closed.map_err(|e| format!("close in round {round}: {e}"))?;
        }
    }
    Ok((dev, seen.into_inner().unwrap_or_else(|p| p.into_inner())))
}

fn check(inst: &Instance, dev: FaultDevice, seen: &Seen) -> Vec<String> {
    let mut v = Vec::new();
    let d: DeviceRef = Arc::new(dev);
    let pool = match Pool::open_on(vec![d], false) {
        Ok(p) => p,
        Err(e) => return vec![format!("the pool does not open after the crash: {e}")],
    };
    let s = match pool.stream_open("t") {
        Ok(s) => s,
        Err(e) => return vec![format!("the stream does not open after the crash: {e}")],
    };
    let (first, next) = (s.first(), s.next_offset());
    if first < seen.trim_acked {
        v.push(format!(
            "first offset {first} below what an acknowledged trim left ({}): a trimmed segment returned",
            seen.trim_acked
        ));
    }
    if first > seen.trim_asked.max(seen.trim_acked) {
        v.push(format!(
            "first offset {first} above every trim asked ({})",
            seen.trim_asked
        ));
    }
    if let Some((&last, _)) = seen.acked.iter().next_back() {
        if next <= last {
            v.push(format!(
                "next offset {next} not past acknowledged offset {last}"
            ));
        }
    }
    for off in first..next {
        match s.read(off) {
            Ok(rec) => {
                let Some(tag) = tag_of(&rec) else {
                    v.push(format!(
                        "offset {off}: a record of {} bytes, never appended",
                        rec.len()
                    ));
                    continue;
                };
                if !seen.tried.contains(&tag) || rec != record(inst.seed, tag) {
                    v.push(format!(
                        "offset {off}: a record that was never appended (tag {tag:#x})"
                    ));
                }
                if let Some(&want) = seen.acked.get(&off) {
                    if want != tag {
                        v.push(format!(
                            "offset {off}: acknowledged tag {want:#x}, read {tag:#x}"
                        ));
                    }
                }
            }
            Err(e) => v.push(format!("offset {off} (first {first}, next {next}): {e}")),
        }
        if v.len() > 5 {
            return v;
        }
    }
    // Appends work after recovery, at the next offset.
    match s.append(b"after") {
        Ok(o) if o == next => {}
        Ok(o) => v.push(format!(
            "append after recovery got offset {o}, expected {next}"
        )),
        Err(e) => v.push(format!("append after recovery: {e}")),
    }
    if let Err(e) = s.close() {
        v.push(format!("closing the stream: {e}"));
    }
    // The objects: root MDC, catalog, the anchor's and this stream's.
    let mut known: HashSet<crate::ObjectId> = HashSet::new();
    for name in ["t", "anchor"] {
        match pool.stream_objects(name) {
            Ok(o) => known.extend(o),
            Err(e) => v.push(format!("objects of stream {name}: {e}")),
        }
    }
    if let Ok(Some(c)) = pool.stream_catalog() {
        known.insert(c.object_id());
    }
    if let Ok(r) = pool.root_mdc_id() {
        known.insert(r.object_id());
    }
    match pool.objects() {
        Ok(objs) => {
            for o in objs {
                if !known.contains(&o.id) {
                    v.push(format!("object {} ({}) leaked", o.id, o.id.ty()));
                }
            }
        }
        Err(e) => v.push(format!("listing objects: {e}")),
    }
    if let Err(e) = pool.stream_delete("t") {
        v.push(format!("deleting the stream: {e}"));
    } else {
        let u = used(&pool);
        if u != inst.base_used {
            v.push(format!(
                "space not exact: {u} bytes used after deleting the stream, {} before it was created",
                inst.base_used
            ));
        }
    }
    v
}

/// Run the stream torture. `progress(done, total)` is called as crash points complete.
pub fn run_stream(cfg: &StreamTortureConfig, progress: &mut dyn FnMut(u64, u64)) -> TortureReport {
    let mut cfg = cfg.clone();
    cfg.threads = cfg.threads.clamp(1, 8);
    let mut rep = TortureReport::default();
    let mut done = 0u64;
    let mut w = 0u64;
    while done < cfg.crash_points {
        let iseed = mix(cfg.seed ^ w.wrapping_mul(0x1000_0001));
        let sector = if w.is_multiple_of(2) { 4096 } else { 512 };
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
        let total_ops = match run_once(&inst, &cfg, None) {
            Ok((dev, seen)) => {
                let ops = dev.stats().ops;
                for what in check(&inst, dev.reboot(CrashMode::DropAll), &seen) {
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
        let mut prng = StdRng::seed_from_u64(iseed ^ 0x5eed);
        for k in 0..n {
            let point = prng.random_range(0..=total_ops + total_ops / 10);
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
                    for what in check(&inst, dev.reboot(mode), &seen) {
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
