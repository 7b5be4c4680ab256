//! Crash sweep of `mpool upgrade`: a version-2 pool (a capacity and a
//! staging device) holding mblocks, a user mlog with records and a
//! deleted mblock is upgraded on fault-injecting devices; the machine
//! crashes after operation `i` of the upgrade (on either device), reboots
//! with unflushed writes dropped, kept or torn, and then:
//!
//! - the pool opens (read-write) as version 2 or 3, with exactly the
//!   objects and contents it had before the upgrade;
//! - running the upgrade again completes: every member's superblocks are
//!   then version 3, of one generation, without the upgrade flag, and the
//!   objects are still exactly the same.

use super::{mix, TortureReport, Violation};
use crate::admin::upgrade::{upgrade_on, UpgradeOptions};
use crate::dev::{CrashMode, DeviceRef, FaultDevice};
use crate::format::superblock::{MediaClass, SB_VERSION};
use crate::objid::ObjType;
use crate::pool::Pool;
use std::sync::Arc;

/// Configuration of [`run_upgrade`].
#[derive(Debug, Clone)]
pub struct UpgradeTortureConfig {
    /// Seed of everything random.
    pub seed: u64,
    /// Crash points to replay in total.
    pub crash_points: u64,
    /// Sector sizes to exercise, alternating between instances.
    pub sectors: Vec<u32>,
}

impl Default for UpgradeTortureConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            crash_points: 200,
            sectors: vec![512, 4096],
        }
    }
}

const ZONE: u64 = 64 * 1024;
const CAP_ZONES: u64 = 80;
const STG_ZONES: u64 = 16;

/// The durable images of a version-2 pool, and what it holds.
struct Instance {
    images: [Vec<u8>; 2],
    sector: u32,
    objects: Snapshot,
}

/// Every object, sorted by ID: (ID, type, class, length, content).
type Snapshot = Vec<(String, ObjType, MediaClass, u64, Vec<Vec<u8>>)>;

fn snapshot(pool: &Pool) -> Result<Snapshot, String> {
    let e = |what: &str, e: crate::Error| format!("{what}: {e}");
    let mut out = Vec::new();
    for o in pool.objects().map_err(|x| e("objects", x))? {
        let content = match o.ty {
            ObjType::Mblock => {
                let id = o.id.try_into().map_err(|x| e("mblock id", x))?;
                let mut b = vec![0u8; o.len as usize];
                pool.mblock_read(id, 0, &mut b)
                    .map_err(|x| e(&format!("read {}", o.id), x))?;
                vec![b]
            }
            ObjType::Mlog => {
                let id = o.id.try_into().map_err(|x| e("mlog id", x))?;
                let log = pool.mlog_open(id).map_err(|x| e("mlog open", x))?;
                let r = log.reader().map_err(|x| e("mlog reader", x.into()))?;
                r.collect::<Result<Vec<_>, _>>()
                    .map_err(|x| e(&format!("read {}", o.id), x.into()))?
            }
            _ => {
                let id = o.id.try_into().map_err(|x| e("mdc id", x))?;
                let mdc = pool.mdc_open(id).map_err(|x| e("mdc open", x))?;
                let r = mdc.reader().map_err(|x| e("mdc reader", x.into()))?;
                r.collect::<Result<Vec<_>, _>>()
                    .map_err(|x| e(&format!("read {}", o.id), x.into()))?
            }
        };
        out.push((o.id.to_string(), o.ty, o.class, o.len, content));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn devices(images: &[Vec<u8>; 2], sector: u32) -> [Arc<FaultDevice>; 2] {
    [
        Arc::new(FaultDevice::from_image(images[0].clone(), sector)),
        Arc::new(FaultDevice::from_image(images[1].clone(), sector)),
    ]
}

fn refs(d: &[Arc<FaultDevice>; 2]) -> Vec<DeviceRef> {
    d.iter().map(|d| Arc::clone(d) as DeviceRef).collect()
}

/// A version-2 pool with a few objects of seeded sizes and contents.
fn make_instance(seed: u64, sector: u32) -> Result<Instance, String> {
    let e = |what: &str, e: crate::Error| format!("building the v2 pool: {what}: {e}");
    let d = [
        Arc::new(FaultDevice::new(CAP_ZONES * ZONE, sector)),
        Arc::new(FaultDevice::new(STG_ZONES * ZONE, sector)),
    ];
    let devs = [
        (Arc::clone(&d[0]) as DeviceRef, MediaClass::Capacity, ZONE),
        (Arc::clone(&d[1]) as DeviceRef, MediaClass::Staging, ZONE),
    ];
    Pool::format_on_version("torture-up", &devs, "v2", 2).map_err(|x| e("format", x))?;
    let pool = Pool::open_on(refs(&d), false).map_err(|x| e("open", x))?;
    let mut r = seed;
    let mut next = |m: u64| {
        r = mix(r);
        r % m
    };
    let n = 3 + next(4);
    for i in 0..n {
        let class = if i % 3 == 2 {
            MediaClass::Staging
        } else {
            MediaClass::Capacity
        };
        let len = 1 + next(ZONE) as usize;
        let fill = next(256) as u8;
        let data: Vec<u8> = (0..len).map(|j| (j as u8).wrapping_mul(7) ^ fill).collect();
        let id = pool.mblock_alloc(class).map_err(|x| e("alloc", x))?;
        pool.mblock_write(id, &data).map_err(|x| e("write", x))?;
        pool.mblock_commit(id).map_err(|x| e("commit", x))?;
        if i == 1 {
            pool.mblock_delete(id).map_err(|x| e("delete", x))?;
        }
    }
    let log = pool
        .mlog_alloc(MediaClass::Capacity, 2 * ZONE)
        .map_err(|x| e("mlog alloc", x))?;
    pool.mlog_commit(log).map_err(|x| e("mlog commit", x))?;
    let ml = pool.mlog_open(log).map_err(|x| e("mlog open", x))?;
    for k in 0..(2 + next(6)) {
        let rec = format!("record {k} of {seed}").into_bytes();
        ml.append(&rec, true)
            .map_err(|x| e("mlog append", x.into()))?;
    }
    drop(ml);
    let objects = snapshot(&pool)?;
    pool.close().map_err(|x| e("close", x))?;
    Ok(Instance {
        images: [d[0].durable_image(), d[1].durable_image()],
        sector,
        objects,
    })
}

/// Check the rebooted devices: opens as v2 or v3 with the same objects;
/// a second upgrade completes. Returns what is wrong.
fn check(inst: &Instance, images: [Vec<u8>; 2]) -> Vec<String> {
    let mut bad = Vec::new();
    let d = devices(&images, inst.sector);
    match Pool::open_on(refs(&d), false) {
        Ok(pool) => {
            let v = pool.superblock().version;
            if v != 2 && v != SB_VERSION {
                bad.push(format!("the pool opened as version {v}"));
            }
            match snapshot(&pool) {
                Ok(s) if s == inst.objects => {}
                Ok(s) => bad.push(format!(
                    "objects differ after the crash: {} found, {} expected",
                    s.len(),
                    inst.objects.len()
                )),
                Err(e) => bad.push(format!("reading after the crash: {e}")),
            }
            if let Err(e) = pool.close() {
                bad.push(format!("closing after the crash: {e}"));
            }
        }
        Err(e) => {
            bad.push(format!("the pool does not open after the crash: {e}"));
            return bad;
        }
    }
    if let Err(e) = upgrade_on(&refs(&d), &UpgradeOptions::default(), &mut |_| {}) {
        bad.push(format!("the second upgrade failed: {e}"));
        return bad;
    }
    let mut gens = Vec::new();
    for (i, dev) in d.iter().enumerate() {
        match crate::superblock::read(dev.as_ref()) {
            Ok(r) => {
                for (c, copy) in r.copies.iter().enumerate() {
                    match copy {
                        Ok(s) if s.version == SB_VERSION && !s.upgrade_pending => {
                            gens.push(s.generation)
                        }
                        Ok(s) => bad.push(format!(
                            "device {i} copy {c}: version {} pending {} after the second upgrade",
                            s.version, s.upgrade_pending
                        )),
                        Err(e) => bad.push(format!("device {i} copy {c}: {e}")),
                    }
                }
            }
            Err(e) => bad.push(format!("device {i}: {e}")),
        }
    }
    if gens.windows(2).any(|w| w[0] != w[1]) {
        bad.push(format!("superblock generations differ: {gens:?}"));
    }
    match Pool::open_on(refs(&d), true) {
        Ok(pool) => match snapshot(&pool) {
            Ok(s) if s == inst.objects => {}
            Ok(_) => bad.push("objects differ after the second upgrade".into()),
            Err(e) => bad.push(format!("reading after the second upgrade: {e}")),
        },
        Err(e) => bad.push(format!("read-only open after the second upgrade: {e}")),
    }
    bad
}

/// Run the sweep; `progress(done, total)` after each crash point. The last
/// line `mpool torture upgrade` prints is `crash_points=K violations=V`.
pub fn run_upgrade(
    cfg: &UpgradeTortureConfig,
    progress: &mut dyn FnMut(u64, u64),
) -> TortureReport {
    let mut rep = TortureReport::default();
    let sectors = if cfg.sectors.is_empty() {
        vec![4096]
    } else {
        cfg.sectors.clone()
    };
    let mut done = 0u64;
    let mut instance = 0u64;
    while done < cfg.crash_points {
        let iseed = mix(cfg.seed ^ instance.wrapping_mul(0x9E37));
        let sector = sectors[instance as usize % sectors.len()];
        instance += 1;
        let viol = |what: String, point: Option<u64>, mode: String| Violation {
            seed: iseed,
            sector,
            crash_point: point,
            mode,
            what,
            threads: 1,
        };
        let inst = match make_instance(iseed, sector) {
            Ok(i) => i,
            Err(e) => {
                rep.add(viol(e, None, "-".into()));
                done += 1;
                continue;
            }
        };
        // A run without a crash counts each device's operations, and must check clean.
        let d = devices(&inst.images, sector);
        if let Err(e) = upgrade_on(&refs(&d), &UpgradeOptions::default(), &mut |_| {}) {
            rep.add(viol(format!("the upgrade failed: {e}"), None, "-".into()));
            done += 1;
            continue;
        }
        let ops = [d[0].stats().ops, d[1].stats().ops];
        for what in check(&inst, [d[0].durable_image(), d[1].durable_image()]) {
            rep.add(viol(what, None, "clean shutdown".into()));
        }
        let total = ops[0] + ops[1];
        rep.instances.push((iseed, sector, total));
        // Every operation of both devices, in order (capacity, then staging).
        let n = total.min(cfg.crash_points - done);
        for k in 0..n {
            let point = if total <= cfg.crash_points - done {
                k
            } else {
                // Fewer points left than operations: spread them evenly.
                k * total / n
            };
            // Points taken in turn get each reboot: unflushed writes all
            // lost, all kept, a random half kept (half of those torn), or
            // every one torn (each 512-byte piece landing or not).
            let mode = match k % 4 {
                0 => CrashMode::DropAll,
                1 => CrashMode::KeepAll,
                2 => CrashMode::Random {
                    keep: 0.5,
                    tear: 0.5,
                    seed: mix(iseed ^ k),
                },
                _ => CrashMode::Random {
                    keep: 1.0,
                    tear: 1.0,
                    seed: mix(iseed ^ k),
                },
            };
            let d = devices(&inst.images, sector);
            let (which, at) = if point < ops[0] {
                (0, point)
            } else {
                (1, point - ops[0])
            };
            d[which].crash_after(at);
            let r = upgrade_on(&refs(&d), &UpgradeOptions::default(), &mut |_| {});
            if r.is_ok() && d[which].crashed() {
                rep.add(viol(
                    "the upgrade reported success across a crash".into(),
                    Some(point),
                    format!("{mode:?}"),
                ));
            }
            // The machine stops: both devices lose what was not flushed.
            for x in &d {
                x.crash_now();
            }
            let images = [d[0].crash_image(mode), d[1].crash_image(mode)];
            for what in check(&inst, images) {
                rep.add(viol(
                    what,
                    Some(point),
                    format!("{mode:?} (device {which})"),
                ));
            }
            rep.crash_points += 1;
            done += 1;
            progress(done, cfg.crash_points);
        }
    }
    rep
}
