//! The byte-flip torture: rot on the media of a committed, closed pool. A
//! seeded pool (mblocks of several sizes, a deleted mblock, user mlogs with
//! records, records in the root MDC) is built once on a simulated device;
//! then, round after round, a few random bytes of a copy of its image are
//! flipped (in the superblocks, the metadata logs, the mblock data, or
//! anywhere), and the pool is opened and read through every read path.
//! What must hold, whatever was flipped:
//!
//! - nothing panics;
//! - no read returns wrong data: every mblock read that succeeds (whole,
//!   partial, batched, queued) returns exactly the bytes committed, and
//!   every log record returned is the record appended at that position;
//! - the object set never changes silently: when the open succeeds, every
//!   object it shows was committed and not deleted, and every committed
//!   object is shown, unless `check` then reports a problem.
//!
//! Rot may make objects unreadable (a typed error), or the pool unopenable;
//! that is detection, not a violation. A user mlog whose *last* flush set
//! rots may end before its last records (the mlog recovery rule cannot
//! tell that from a torn write, see `docs/format.md`); such rounds are
//! counted as `mlog_tails_dropped`, not as violations.

use super::mix;
use crate::dev::{DeviceRef, FaultDevice};
use crate::error::Result;
use crate::format::superblock::MediaClass;
use crate::objid::{MblockId, MlogId, ObjectId};
use crate::pool::{MblockRead, Pool};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Settings of a byte-flip run.
#[derive(Debug, Clone)]
pub struct FlipTortureConfig {
    /// Seed of everything random.
    pub seed: u64,
    /// Rounds (each a fresh copy of the image with its own flips).
    pub rounds: u64,
    /// Most bytes flipped per round (at least 1).
    pub max_flips: usize,
    /// Sector size of the simulated device.
    pub sector: u32,
}

impl Default for FlipTortureConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            rounds: 200,
            max_flips: 3,
            sector: 4096,
        }
    }
}

/// The outcome of a byte-flip run.
#[derive(Debug, Clone, Default)]
pub struct FlipReport {
    /// Rounds run.
    pub rounds: u64,
    /// Rounds whose pool did not open (the damage was refused whole).
    pub open_refused: u64,
    /// Reads that returned an error instead of data.
    pub read_errors: u64,
    /// Reads that returned data (all of it verified).
    pub reads_ok: u64,
    /// Rounds where a user mlog ended before its last records without an error.
    pub mlog_tails_dropped: u64,
    /// Violations (all counted; `details` keeps the first 100).
    pub violations: u64,
    /// Violations by kind: `wrong data`, `object set`, `log records`, `panic`, `build`.
    pub by_kind: std::collections::BTreeMap<&'static str, u64>,
    /// What each violation was, with its round and the flipped offsets.
    pub details: Vec<String>,
}

impl FlipReport {
    fn violation(&mut self, round: u64, flips: &[(u64, u8)], what: String) {
        self.violations += 1;
        let kind = if what.contains("wrong data") {
            "wrong data"
        } else if what.starts_with("object set") {
            "object set"
        } else if what.contains("records that were not appended") {
            "log records"
        } else if what.starts_with("panic") {
            "panic"
        } else {
            "build"
        };
        *self.by_kind.entry(kind).or_default() += 1;
        if self.details.len() < 100 {
            let at: Vec<String> = flips
                .iter()
                .map(|(o, m)| format!("{o:#x}^{m:#04x}"))
                .collect();
            self.details.push(format!(
                "violation: {what} [round {round}, flips {}]",
                at.join(",")
            ));
        }
    }
}

const ZONE: u64 = 64 * 1024;
const ZONES: u64 = 48;

/// What the pool holds, as built.
struct Model {
    image: Vec<u8>,
    mblocks: BTreeMap<u64, Vec<u8>>,
    mlogs: BTreeMap<u64, Vec<Vec<u8>>>,
    root_records: Vec<Vec<u8>>,
    /// Every committed object (mblocks, mlogs, MDCs), deleted ones excluded.
    objects: BTreeSet<u64>,
    /// Byte ranges of interest: (start, end) of zones holding something.
    regions: Vec<(u64, u64)>,
}

fn content(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (mix(seed ^ i.wrapping_mul(0x9E37)) & 0xff) as u8)
        .collect()
}

fn build(cfg: &FlipTortureConfig) -> Result<Model> {
    let dev = Arc::new(FaultDevice::new(ZONES * ZONE, cfg.sector));
    let d: DeviceRef = dev.clone();
    Pool::format_on("flips", &[(d.clone(), MediaClass::Capacity, ZONE)], "")?;
    let pool = Pool::open_on(vec![d], false)?;
    let mut mblocks = BTreeMap::new();
    let mut objects = BTreeSet::new();
    for (i, len) in [1usize, 4095, 4096, 5000, 20_000, 65_536 - 8192, 0]
        .into_iter()
        .enumerate()
    {
        let id = pool.mblock_alloc(MediaClass::Capacity)?;
        let data = content(cfg.seed ^ (i as u64) << 32, len);
        pool.mblock_write(id, &data)?;
        pool.mblock_commit(id)?;
        mblocks.insert(id.object_id().raw(), data);
        objects.insert(id.object_id().raw());
    }
    // One deleted mblock: it must never come back.
    let gone = pool.mblock_alloc(MediaClass::Capacity)?;
    pool.mblock_write(gone, b"deleted")?;
    pool.mblock_commit(gone)?;
    pool.mblock_delete(gone)?;
    let mut mlogs = BTreeMap::new();
    for n in 0..2u64 {
        let id = pool.mlog_alloc(MediaClass::Capacity, ZONE)?;
        pool.mlog_commit(id)?;
        let log = pool.mlog_open(id)?;
        let mut recs = Vec::new();
        for r in 0..(5 + n * 7) {
            let rec = content(cfg.seed ^ (n << 40) ^ r, 10 + (r as usize * 97) % 700);
            log.append(&rec, r % 3 == 0)?;
            recs.push(rec);
        }
        log.sync()?;
        drop(log);
        mlogs.insert(id.object_id().raw(), recs);
        objects.insert(id.object_id().raw());
    }
    let root = pool.root_mdc()?;
    let mut root_records = Vec::new();
    for r in 0..4u64 {
        let rec = format!("root record {r} of seed {}", cfg.seed).into_bytes();
        root.append(&rec, true)?;
        root_records.push(rec);
    }
    drop(root);
    objects.insert(pool.root_mdc_id()?.object_id().raw());
    let mut regions: Vec<(u64, u64)> = vec![(0, ZONE)];
    for o in pool.objects()? {
        let start = u64::from(o.zone) * ZONE;
        regions.push((start, start + o.capacity.max(ZONE)));
    }
    pool.close()?;
    let image = dev.durable_image();
    // Metadata zones: everything used that no object claims (MDC0..N).
    let used: BTreeSet<u64> = regions.iter().map(|r| r.0 / ZONE).collect();
    for z in 1..ZONES {
        if !used.contains(&z)
            && image[(z * ZONE) as usize..((z + 1) * ZONE) as usize]
                .iter()
                .any(|&b| b != 0)
        {
            regions.push((z * ZONE, (z + 1) * ZONE));
        }
    }
    Ok(Model {
        image,
        mblocks,
        mlogs,
        root_records,
        objects,
        regions,
    })
}

/// Run the byte-flip torture; `progress(done, total)` is called per round.
pub fn run_flips(cfg: &FlipTortureConfig, progress: &mut dyn FnMut(u64, u64)) -> FlipReport {
    let mut rep = FlipReport::default();
    let model = match build(cfg) {
        Ok(m) => m,
        Err(e) => {
            rep.violation(0, &[], format!("building the pool failed: {e}"));
            return rep;
        }
    };
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    for round in 0..cfg.rounds {
        let n = rng.random_range(1..=cfg.max_flips.max(1));
        let mut flips = Vec::with_capacity(n);
        for _ in 0..n {
            // Mostly inside what the pool uses (a region's written bytes are
            // near its start), sometimes anywhere.
            let off = if rng.random_bool(0.9) {
                let (a, b) = model.regions[rng.random_range(0..model.regions.len())];
                let span = (b - a).min(if rng.random_bool(0.7) { 8192 } else { b - a });
                a + rng.random_range(0..span)
            } else {
                rng.random_range(0..model.image.len() as u64)
            };
            let mask = 1u8 << rng.random_range(0..8);
            flips.push((off, mask));
        }
        let mut img = model.image.clone();
        for &(o, m) in &flips {
            img[o as usize] ^= m;
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| round_check(cfg, &model, img)));
        match outcome {
            Ok(r) => {
                rep.rounds += 1;
                rep.open_refused += u64::from(r.refused);
                rep.read_errors += r.read_errors;
                rep.reads_ok += r.reads_ok;
                rep.mlog_tails_dropped += u64::from(r.tail_dropped);
                for v in r.violations {
                    rep.violation(round, &flips, v);
                }
            }
            Err(p) => {
                rep.rounds += 1;
                let what = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                rep.violation(round, &flips, format!("panic: {what}"));
            }
        }
        progress(round + 1, cfg.rounds);
    }
    rep
}

#[derive(Default)]
struct Round {
    refused: bool,
    read_errors: u64,
    reads_ok: u64,
    tail_dropped: bool,
    violations: Vec<String>,
}

fn round_check(cfg: &FlipTortureConfig, m: &Model, img: Vec<u8>) -> Round {
    let mut r = Round::default();
    let d: DeviceRef = Arc::new(FaultDevice::from_image(img, cfg.sector));
    // Read-only first (what `mpool mblock read` and `check` do), then
    // read-write (what an application does; it may repair).
    for read_only in [true, false] {
        let pool = match Pool::open_on(vec![d.clone()], read_only) {
            Ok(p) => p,
            Err(_) => {
                r.refused = true;
                return r;
            }
        };
        check_pool(m, &pool, &mut r);
        drop(pool);
    }
    r
}

fn check_pool(m: &Model, pool: &Pool, r: &mut Round) {
    // The object set.
    let shown: BTreeSet<u64> = match pool.objects() {
        Ok(v) => v.iter().map(|o| o.id.raw()).collect(),
        Err(_) => {
            r.read_errors += 1;
            return;
        }
    };
    if shown != m.objects {
        let problems = pool.check(&mut |_, _| {}).map_or(1, |c| c.problems.len());
        if problems == 0 {
            let extra: Vec<String> = shown
                .difference(&m.objects)
                .map(|i| format!("{i:#x}"))
                .collect();
            let lost: Vec<String> = m
                .objects
                .difference(&shown)
                .map(|i| format!("{i:#x}"))
                .collect();
            r.violations.push(format!(
                "object set changed silently: extra [{}], lost [{}]",
                extra.join(" "),
                lost.join(" ")
            ));
        }
    }
    // Every mblock, by every read path.
    for (&raw, data) in &m.mblocks {
        let Some(id) = ObjectId::from_raw(raw).and_then(|o| MblockId::try_from(o).ok()) else {
            continue;
        };
        let mut whole = vec![0u8; data.len()];
        verify(
            r,
            pool.mblock_read(id, 0, &mut whole),
            &whole,
            data,
            raw,
            "read",
        );
        if data.len() > 3000 {
            let (off, len) = (1000usize, data.len() - 2000);
            let mut part = vec![0u8; len];
            verify(
                r,
                pool.mblock_read(id, off as u64, &mut part),
                &part,
                &data[off..off + len],
                raw,
                "partial read",
            );
        }
        let mut a = vec![0u8; data.len().min(4096)];
        let mut b = vec![0u8; data.len().saturating_sub(4096)];
        let res = {
            let mut reads = [
                MblockRead {
                    id,
                    offset: 0,
                    buf: &mut a,
                },
                MblockRead {
                    id,
                    offset: 4096,
                    buf: &mut b,
                },
            ];
            pool.mblock_read_batch(&mut reads, 4)
        };
        if res.is_ok() {
            verify(r, Ok(()), &a, &data[..a.len()], raw, "batch read");
            verify(r, Ok(()), &b, &data[a.len()..], raw, "batch read");
        } else {
            r.read_errors += 1;
        }
    }
    // Every user mlog: a prefix of what was appended, each record exact.
    for (&raw, recs) in &m.mlogs {
        let Some(id) = ObjectId::from_raw(raw).and_then(|o| MlogId::try_from(o).ok()) else {
            continue;
        };
        let log = match pool.mlog_open(id) {
            Ok(l) => l,
            Err(_) => {
                r.read_errors += 1;
                continue;
            }
        };
        let got = match log.reader() {
            Ok(rd) => rd.collect::<std::result::Result<Vec<Vec<u8>>, _>>().ok(),
            Err(_) => None,
        };
        log_compare(r, got, recs, &format!("mlog {raw:#x}"));
    }
    match pool.root_mdc() {
        Ok(root) => {
            let got = match root.reader() {
                Ok(rd) => rd.collect::<std::result::Result<Vec<Vec<u8>>, _>>().ok(),
                Err(_) => None,
            };
            log_compare(r, got, &m.root_records, "root MDC");
        }
        Err(_) => r.read_errors += 1,
    }
}

fn verify(r: &mut Round, res: Result<()>, got: &[u8], want: &[u8], raw: u64, how: &str) {
    match res {
        Err(_) => r.read_errors += 1,
        Ok(()) if got == want => r.reads_ok += 1,
        Ok(()) => {
            let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
            r.violations.push(format!(
                "{how} of mblock {raw:#x} returned wrong data (first difference at byte {at} of {})",
                want.len()
            ));
        }
    }
}

fn log_compare(r: &mut Round, got: Option<Vec<Vec<u8>>>, want: &[Vec<u8>], what: &str) {
    match got {
        None => r.read_errors += 1,
        Some(g) => {
            if g.len() > want.len() || g.iter().zip(want).any(|(a, b)| a != b) {
                r.violations
                    .push(format!("{what} returned records that were not appended"));
            } else if g.len() < want.len() {
                r.tail_dropped = true;
                r.reads_ok += 1;
            } else {
                r.reads_ok += 1;
            }
        }
    }
}
