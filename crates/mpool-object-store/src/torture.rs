//! The object-store crash sweep behind `mpool torture objstore`: puts (in
//! every mode), multipart completions and aborts, copies, renames,
//! deletes and catalog compactions from several threads on a
//! fault-injecting device, a crash at a chosen device operation, a reboot
//! that drops, keeps or tears unflushed writes, a reopen, and a check
//! against a model of what was acknowledged:
//!
//! - every acknowledged operation is there, with the exact content;
//! - the operation in flight at the crash is entirely there or entirely
//!   absent (both paths of a copy or rename together);
//! - no mblock leaks: after the reopen every committed mblock of the pool
//!   belongs to an object of the store;
//! - the store works after recovery: a new object survives a reopen.
//!
//! Each thread works on paths of its own (`t<T>/p<N>`), so the model of
//! each path is sequential.

use crate::{MpoolStore, StoreOptions};
use mpool::dev::{CrashMode, DeviceRef, FaultDevice};
use mpool::{MediaClass, Pool};
use object_store::PutMode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Settings of an object-store torture run.
#[derive(Debug, Clone)]
pub struct ObjstoreTortureConfig {
    /// Seed of everything random.
    pub seed: u64,
    /// Crash points to replay in total.
    pub crash_points: u64,
    /// Worker threads (1..=8).
    pub threads: usize,
    /// Operations per thread per workload instance.
    pub ops_per_thread: usize,
}

impl Default for ObjstoreTortureConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            crash_points: 200,
            threads: 2,
            ops_per_thread: 24,
        }
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct ObjstoreTortureReport {
    /// Crash points replayed.
    pub crash_points: u64,
    /// Violations found (all counted; `details` keeps the first 100).
    pub violations: u64,
    /// The violations, each naming its instance seed, crash point and
    /// crash mode.
    pub details: Vec<String>,
    /// `(instance seed, sector, device operations of one full run)` per
    /// workload instance.
    pub instances: Vec<(u64, u32, u64)>,
    /// Crash points that cut an operation off (the rest fell before or
    /// after the workload's device operations).
    pub cut_ops: u64,
    /// Objects present at the end of the clean runs.
    pub objects_at_end: u64,
}

impl ObjstoreTortureReport {
    fn add(&mut self, what: String) {
        self.violations += 1;
        if self.details.len() < 100 {
            self.details.push(what);
        }
    }
}

const ZONE: u64 = 64 * 1024;
const ZONES: u64 = 256;
const PATHS: u64 = 5;
const POINTS_PER_INSTANCE: u64 = 40;

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An object as the model knows it: the seed and size of its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Obj {
    seed: u64,
    size: usize,
}

fn content(o: Obj) -> Vec<u8> {
    let mut out = Vec::with_capacity(o.size + 8);
    let mut x = mix(o.seed);
    while out.len() < o.size {
        x = mix(x);
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(o.size);
    out
}

/// Paths with their state before and after the operation in flight.
type InFlight = Vec<(String, Option<Obj>, Option<Obj>)>;

#[derive(Debug, Default)]
struct Seen {
    /// Acknowledged state of every path of every thread.
    model: HashMap<String, Option<Obj>>,
    /// The operations that did not return, one per thread at most.
    in_flight: Vec<InFlight>,
    /// Problems seen while the device was healthy.
    bad: Vec<String>,
}

/// A catalog of one zone a log: the live state of the threads' paths
/// (small objects inline, up to 5000 bytes each) outgrows half of it, so
/// the sweeps cut the catalog's growth into a larger MDC too.
fn store_opts() -> StoreOptions {
    StoreOptions::default().catalog_bytes(ZONE)
}

fn make_instance(sector: u32) -> Result<Vec<u8>, String> {
    let dev = Arc::new(FaultDevice::new(ZONES * ZONE, sector));
    let d: DeviceRef = dev.clone();
    Pool::format_on("torture", &[(d.clone(), MediaClass::Capacity, ZONE)], "")
        .map_err(|e| format!("format: {e}"))?;
    let pool = Pool::open_on(vec![d], false).map_err(|e| format!("open: {e}"))?;
    let store = MpoolStore::open(pool.clone(), &store_opts()).map_err(|e| format!("store: {e}"))?;
    drop(store);
    pool.close().map_err(|e| format!("close: {e}"))?;
    Ok(dev.durable_image())
}

/// One thread's workload. Returns when done or at the first failure the
/// model did not expect (the crash).
fn worker(
    store: &MpoolStore,
    dev: &FaultDevice,
    seed: u64,
    t: usize,
    ops: usize,
    seen: &Mutex<Seen>,
) {
    let path = |i: u64| format!("t{t}/p{i}");
    let mut model: HashMap<String, Option<Obj>> = (0..PATHS).map(|i| (path(i), None)).collect();
    let mut etags: HashMap<String, String> = HashMap::new();
    let mut x = mix(seed ^ (t as u64).wrapping_mul(0x5151));
    let mut next = || {
        x = mix(x);
        x
    };
    let mut flight: Option<InFlight> = None;
    for i in 0..ops {
        let r = next();
        let a = path(next() % PATHS);
        let b = path(next() % PATHS);
        let obj = Obj {
            seed: mix(seed ^ ((t as u64) << 32) ^ i as u64),
            // Small (kept inline in the catalog) or 0 to ~2.5 mblocks
            // (objects span mblocks).
            size: if next() % 4 == 0 {
                (next() % 5000) as usize
            } else {
                (next() % (150 * 1024)) as usize
            },
        };
        let cur_a = model.get(&a).copied().flatten();
        let cur_b = model.get(&b).copied().flatten();
        // (result, paths changed if it succeeds, whether the model expects
        // a refusal)
        let (res, after, refused): (object_store::Result<()>, InFlight, bool) = match r % 12 {
            0..=2 => {
                let data = content(obj);
                let res = store.put_blocking(&a, &data, PutMode::Overwrite).map(|e| {
                    etags.insert(a.clone(), e);
                });
                (res, vec![(a.clone(), cur_a, Some(obj))], false)
            }
            3 => {
                let data = content(obj);
                let res = store.put_blocking(&a, &data, PutMode::Create).map(|e| {
                    etags.insert(a.clone(), e);
                });
                (res, vec![(a.clone(), cur_a, Some(obj))], cur_a.is_some())
            }
            4 => {
                // Update with the e_tag last seen (stale after a copy or
                // rename onto the path: then refused).
                let data = content(obj);
                let tag = etags.get(&a).cloned();
                let live = store.head_blocking(&a).map(|(e, _)| e);
                let ok = cur_a.is_some() && tag.is_some() && tag == live;
                let res = store
                    .put_blocking(
                        &a,
                        &data,
                        PutMode::Update(object_store::UpdateVersion {
                            e_tag: tag,
                            version: None,
                        }),
                    )
                    .map(|e| {
                        etags.insert(a.clone(), e);
                    });
                (res, vec![(a.clone(), cur_a, Some(obj))], !ok)
            }
            5 => {
                let res = store.delete_blocking(&a).map(|_| ());
                (res, vec![(a.clone(), cur_a, None)], false)
            }
            6 | 7 => {
                let create = r % 2 == 0;
                let res = store.copy_blocking(&a, &b, false, create);
                let refused = cur_a.is_none() || (create && cur_b.is_some());
                let ch = if a == b {
                    vec![(a.clone(), cur_a, cur_a)]
                } else {
                    vec![(b.clone(), cur_b, cur_a)]
                };
                (res, ch, refused)
            }
            8 | 9 => {
                let create = r % 2 == 0;
                let res = store.copy_blocking(&a, &b, true, create);
                let refused = cur_a.is_none() || (create && cur_b.is_some());
                let ch = if a == b {
                    vec![(a.clone(), cur_a, cur_a)]
                } else {
                    vec![(a.clone(), cur_a, None), (b.clone(), cur_b, cur_a)]
                };
                (res, ch, refused)
            }
            10 => {
                let data = content(obj);
                let cut = data.len() / 3;
                let complete = next() % 4 != 0;
                let parts = [&data[..cut], &data[cut..2 * cut], &data[2 * cut..]];
                let res = store.multipart_blocking(&a, &parts, complete).map(|e| {
                    if let Some(e) = e {
                        etags.insert(a.clone(), e);
                    }
                });
                let ch = if complete {
                    vec![(a.clone(), cur_a, Some(obj))]
                } else {
                    vec![(a.clone(), cur_a, cur_a)]
                };
                (res, ch, false)
            }
            _ => {
                if next() % 3 == 0 {
                    let res = store.compact().map_err(object_store::Error::from);
                    (res, Vec::new(), false)
                } else {
                    // A read: what the model says.
                    let res = match (store.get_blocking(&a), cur_a) {
                        (Ok(got), Some(o)) if got == content(o) => Ok(()),
                        (Ok(_), Some(_)) => {
                            crate::lock(seen)
                                .bad
                                .push(format!("{a}: content differs from the model"));
                            Ok(())
                        }
                        (Ok(_), None) => {
                            crate::lock(seen)
                                .bad
                                .push(format!("{a}: exists, the model has none"));
                            Ok(())
                        }
                        (Err(object_store::Error::NotFound { .. }), None) => Ok(()),
                        (Err(e), _) => Err(e),
                    };
                    (res, Vec::new(), false)
                }
            }
        };
        match (res, refused) {
            (Ok(()), false) => {
                for (p, _, new) in after {
                    model.insert(p, new);
                }
            }
            (
                Err(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. }
                    | object_store::Error::NotFound { .. },
                ),
                true,
            ) => {}
            (Ok(()), true) => {
                crate::lock(seen).bad.push(format!(
                    "op {i} of thread {t} on {a}/{b} succeeded where the model expects a refusal"
                ));
                break;
            }
            (Err(e), _) => {
                if !dev.crashed() {
                    crate::lock(seen)
                        .bad
                        .push(format!("op {i} of thread {t} failed without a crash: {e}"));
                }
                flight = Some(after);
                break;
            }
        }
    }
    let mut s = crate::lock(seen);
    s.model.extend(model);
    if let Some(f) = flight {
        s.in_flight.push(f);
    }
}

fn run_once(
    image: &[u8],
    sector: u32,
    cfg: &ObjstoreTortureConfig,
    seed: u64,
    point: Option<u64>,
) -> Result<(Arc<FaultDevice>, Seen), String> {
    let dev = Arc::new(FaultDevice::from_image(image.to_vec(), sector));
    let d: DeviceRef = dev.clone();
    let pool =
        Pool::open_on(vec![d], false).map_err(|e| format!("open before the workload: {e}"))?;
    let store = MpoolStore::open(pool.clone(), &store_opts())
        .map_err(|e| format!("store open before the workload: {e}"))?;
    if let Some(p) = point {
        dev.crash_after(dev.stats().ops + p);
    }
    let seen = Mutex::new(Seen::default());
    std::thread::scope(|s| {
        for t in 0..cfg.threads {
            let (store, seen, dev) = (&store, &seen, &*dev);
            s.spawn(move || worker(store, dev, seed, t, cfg.ops_per_thread, seen));
        }
    });
    drop(store);
    let closed = pool.close();
    if point.is_none() {
        closed.map_err(|e| format!("close after the workload: {e}"))?;
    }
    Ok((dev, seen.into_inner().unwrap_or_else(|p| p.into_inner())))
}

fn state_of(store: &MpoolStore, path: &str) -> Result<Option<Vec<u8>>, String> {
    match store.get_blocking(path) {
        Ok(v) => Ok(Some(v)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(format!("{path}: read failed: {e}")),
    }
}

fn matches(got: &Option<Vec<u8>>, want: Option<Obj>) -> bool {
    match (got, want) {
        (None, None) => true,
        (Some(g), Some(o)) => *g == content(o),
        _ => false,
    }
}

fn describe(got: &Option<Vec<u8>>) -> String {
    match got {
        None => "absent".into(),
        Some(g) => format!("{} bytes", g.len()),
    }
}

/// Check a rebooted device against the model. Returns what is wrong.
fn check(dev: FaultDevice, seen: &Seen) -> Vec<String> {
    let mut bad = seen.bad.clone();
    let d: DeviceRef = Arc::new(dev);
    let pool = match Pool::open_on(vec![d.clone()], false) {
        Ok(p) => p,
        Err(e) => return vec![format!("the pool does not open after the crash: {e}")],
    };
    let store = match MpoolStore::open(pool.clone(), &store_opts()) {
        Ok(s) => s,
        Err(e) => return vec![format!("the store does not open after the crash: {e}")],
    };
    let mut flight_paths: HashMap<&str, usize> = HashMap::new();
    for (k, f) in seen.in_flight.iter().enumerate() {
        for (p, _, _) in f {
            flight_paths.insert(p, k);
        }
    }
    for (p, want) in &seen.model {
        if flight_paths.contains_key(p.as_str()) {
            continue;
        }
        match state_of(&store, p) {
            Ok(got) if matches(&got, *want) => {}
            Ok(got) => bad.push(format!(
                "{p}: {} after the crash, acknowledged {}",
                describe(&got),
                want.map_or("absent".into(), |o| format!("{} bytes", o.size))
            )),
            Err(e) => bad.push(e),
        }
    }
    for f in &seen.in_flight {
        let mut got = Vec::new();
        for (p, _, _) in f {
            match state_of(&store, p) {
                Ok(g) => got.push(g),
                Err(e) => {
                    bad.push(e);
                    return bad;
                }
            }
        }
        let before = f.iter().zip(&got).all(|((_, b, _), g)| matches(g, *b));
        let after = f.iter().zip(&got).all(|((_, _, a), g)| matches(g, *a));
        if !before && !after {
            let names: Vec<String> = f
                .iter()
                .zip(&got)
                .map(|((p, _, _), g)| format!("{p}: {}", describe(g)))
                .collect();
            bad.push(format!(
                "the operation in flight is neither entirely there nor entirely absent ({})",
                names.join(", ")
            ));
        }
    }
    // No leak: every committed mblock belongs to an object.
    if let Err(e) = pool.sync() {
        bad.push(format!("sync after recovery failed: {e}"));
    }
    let mut held: Vec<mpool::ObjectId> = store
        .objects("")
        .into_iter()
        .flat_map(|o| o.mblocks)
        .map(mpool::ObjectId::from)
        .collect();
    held.sort();
    held.dedup();
    match pool.objects() {
        Ok(objs) => {
            let n = objs
                .iter()
                .filter(|o| o.ty == mpool::ObjType::Mblock && held.binary_search(&o.id).is_err())
                .count();
            if n > 0 {
                bad.push(format!("{n} mblocks leaked: committed, held by no object"));
            }
            // Nor an MDC: the root MDC and the store's catalog only (the
            // catalogs it grew out of are deleted).
            let keep: Vec<mpool::ObjectId> = [pool.root_mdc_id().ok(), store.catalog_mdc()]
                .into_iter()
                .flatten()
                .map(mpool::ObjectId::from)
                .collect();
            let m: Vec<String> = objs
                .iter()
                .filter(|o| o.ty == mpool::ObjType::Mdc && !keep.contains(&o.id))
                .map(|o| o.id.to_string())
                .collect();
            if !m.is_empty() {
                bad.push(format!(
                    "{} MDCs leaked (committed, neither root {:?} nor catalog {:?}): {}",
                    m.len(),
                    pool.root_mdc_id().ok(),
                    store.catalog_mdc(),
                    m.join(", ")
                ));
            }
        }
        Err(e) => bad.push(format!("listing objects failed: {e}")),
    }
    // The store works: a new object survives a reopen.
    let probe = Obj {
        seed: 77,
        size: 70_000,
    };
    if let Err(e) = store.put_blocking("probe", &content(probe), PutMode::Overwrite) {
        bad.push(format!("a put after recovery failed: {e}"));
        return bad;
    }
    drop(store);
    if let Err(e) = pool.close() {
        bad.push(format!("close after recovery failed: {e}"));
        return bad;
    }
    match Pool::open_on(vec![d], false)
        .map_err(|e| e.to_string())
        .and_then(|p| MpoolStore::open(p, &store_opts()).map_err(|e| e.to_string()))
    {
        Ok(s) => match state_of(&s, "probe") {
            Ok(g) if matches(&g, Some(probe)) => {}
            Ok(g) => bad.push(format!(
                "the object put after recovery is {} at the next open",
                describe(&g)
            )),
            Err(e) => bad.push(e),
        },
        Err(e) => bad.push(format!("second reopen failed: {e}")),
    }
    bad
}

/// Run the sweep. `progress(done, total)` is called as crash points
/// complete.
pub fn run_objstore(
    cfg: &ObjstoreTortureConfig,
    progress: &mut dyn FnMut(u64, u64),
) -> ObjstoreTortureReport {
    let mut cfg = cfg.clone();
    cfg.threads = cfg.threads.clamp(1, 8);
    let mut rep = ObjstoreTortureReport::default();
    let mut done = 0u64;
    let mut w = 0u64;
    while done < cfg.crash_points {
        let iseed = mix(cfg.seed ^ w.wrapping_mul(0x1000_0001));
        let sector = if w.is_multiple_of(2) { 4096 } else { 512 };
        w += 1;
        let image = match make_instance(sector) {
            Ok(i) => i,
            Err(e) => {
                rep.add(format!("instance {iseed}: {e}"));
                done += 1;
                continue;
            }
        };
        let total_ops = match run_once(&image, sector, &cfg, iseed, None) {
            Ok((dev, seen)) => {
                for what in check(dev.reboot(CrashMode::DropAll), &seen) {
                    rep.add(format!(
                        "instance {iseed} sector {sector}, clean shutdown: {what}"
                    ));
                }
                rep.objects_at_end += seen.model.values().filter(|o| o.is_some()).count() as u64;
                let ops = dev.stats().ops;
                rep.instances.push((iseed, sector, ops));
                ops
            }
            Err(e) => {
                rep.add(format!("instance {iseed}: {e}"));
                done += 1;
                continue;
            }
        };
        let n = POINTS_PER_INSTANCE.min(cfg.crash_points - done);
        let mut x = mix(iseed ^ 0xc0ffee);
        for k in 0..n {
            x = mix(x);
            let point = if total_ops <= n {
                k
            } else {
                x % (total_ops + total_ops / 10 + 1)
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
            match run_once(&image, sector, &cfg, iseed, Some(point)) {
                Ok((dev, seen)) => {
                    rep.cut_ops += u64::from(!seen.in_flight.is_empty());
                    for what in check(dev.reboot(mode), &seen) {
                        rep.add(format!(
                            "instance {iseed} sector {sector} threads {} crash point {point} {mode:?}: {what}",
                            cfg.threads
                        ));
                    }
                }
                Err(e) => rep.add(format!("instance {iseed} crash point {point}: {e}")),
            }
            rep.crash_points += 1;
            done += 1;
            progress(done, cfg.crash_points);
        }
    }
    rep
}
