//! The mlog/MDC crash sweep (`mpool torture mlog`).
//!
//! Workload (per instance, seeded): `threads` threads append records of 1
//! byte to 3 blocks, sync or not, to one shared mlog in rounds; between
//! rounds the log is synced and then erased, reopened (a new epoch) or left
//! as is. Meanwhile one more thread drives an MDC: appends (sync or not) and
//! compactions (`cstart`, re-append the last few records, `cend`).
//!
//! Every mlog record names its thread and index in its first byte
//! (`thread << 4 | index & 15`) and is otherwise a deterministic function of
//! (instance, round, thread, index), so the checker can match each record
//! read back to the one expected next from its thread, bit-exact.
//!
//! Checks after each crash and reopen: the log opens without reporting
//! corruption; each completed round is present exactly; in the round in
//! flight each thread's records form a prefix of what it appended that
//! covers everything it saw acknowledged (a sync append, or a sync of the
//! log); record sequence numbers are consecutive and agree with those the
//! appends returned; nothing else is present (no garbage, no duplicate, no
//! record of an erased generation), except that an erase in flight may have
//! emptied the log. The MDC holds exactly its old state (a prefix of it
//! covering every acknowledged record) or exactly the compacted state of a
//! compaction in flight. Finally a record appended and synced after
//! recovery is there after another reboot.

use super::{mix, TortureReport, Violation};
use crate::dev::{CrashMode, Device, FaultDevice};
use crate::mdc::Mdc;
use crate::mlog::format::{Geom, REC_HDR_LEN};
use crate::mlog::{Lsn, Mlog, MlogError};
use std::collections::HashMap;
use std::sync::Arc;

/// Configuration of the mlog crash sweep.
#[derive(Debug, Clone)]
pub struct MlogTortureConfig {
    /// Seed of everything random.
    pub seed: u64,
    /// Number of crash points to replay in total.
    pub crash_points: u64,
    /// Appending threads (1..=14).
    pub threads: usize,
    /// Rounds of appends per workload instance.
    pub rounds: usize,
    /// Records each thread appends per round.
    pub records_per_round: usize,
    /// MDC operations per workload instance.
    pub mdc_steps: usize,
    /// Sector sizes to exercise, alternating between instances.
    pub sectors: Vec<u32>,
    /// Whether the log and the MDC are mirrored (docs/format.md, "Mirrored
    /// logs"): each instance takes one of these, chosen by its seed (so a
    /// replay reproduces it; see [`instance_mirrored`]).
    pub mirrored: Vec<bool>,
    /// Replay one crash point only: `(instance seed, sector, crash point)`,
    /// as a [`Violation`] names them. `crash_points` is ignored then.
    pub replay: Option<(u64, u32, u64)>,
}

impl Default for MlogTortureConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            crash_points: 2000,
            threads: 4,
            rounds: 4,
            records_per_round: 8,
            mdc_steps: 30,
            sectors: vec![512, 4096],
            mirrored: vec![false, true],
            replay: None,
        }
    }
}

/// Whether the instance of seed `seed` runs on mirrored logs.
pub fn instance_mirrored(cfg: &MlogTortureConfig, seed: u64) -> bool {
    match cfg.mirrored.len() {
        0 => false,
        n => cfg.mirrored[(mix(seed ^ 0x6d69_7272) % n as u64) as usize],
    }
}

const DEV_SIZE: u64 = 2 << 20;
const LOG_EXT: std::ops::Range<u64> = 0..(1 << 20);
const MDC_A: std::ops::Range<u64> = (1 << 20)..(3 << 19);
const MDC_B: std::ops::Range<u64> = (3 << 19)..(2 << 20);
const LOG_ID: u64 = 0x6d6c_6f67;
const MDC_ID: u64 = 0x006d_6463;
const POST_RECORD: &[u8] = b"\xffpost-recovery record";
// Records appended after recovery start with 0xff: no workload thread has
// that number.

/// One round of mlog appends, as the workload saw it.
#[derive(Debug, Default, Clone)]
struct Round {
    /// Per thread: records appended (returned Ok, or the one that failed).
    sent: Vec<Vec<Vec<u8>>>,
    /// Per thread: how many of `sent` are acknowledged durable.
    acked: Vec<usize>,
    /// Seq returned by an append -> (thread, index).
    lsn: HashMap<u64, (usize, usize)>,
    /// The round-end sync returned Ok: every record is durable.
    complete: bool,
}

/// What the mlog workload saw.
#[derive(Debug, Default)]
struct LogModel {
    /// Rounds since the last acknowledged erase.
    rounds: Vec<Round>,
    /// An erase was started and did not return Ok.
    erase_in_flight: bool,
}

/// What the MDC driver saw.
#[derive(Debug, Default)]
struct MdcModel {
    /// The committed state's records, in log order (with maybe-unsynced tail).
    list: Vec<Vec<u8>>,
    /// How many of `list` are acknowledged durable.
    acked: usize,
    /// The compacted state of a compaction whose `cend` did not return Ok.
    pending: Option<Vec<Vec<u8>>>,
}

/// Deterministic record of (instance, round, thread, index).
fn log_record(inst: u64, round: usize, t: usize, i: usize, bs: usize) -> (Vec<u8>, bool) {
    let h = mix(inst ^ mix(((round as u64) << 40) ^ ((t as u64) << 20) ^ i as u64));
    let len = match h % 10 {
        0..=3 => 1 + (h >> 8) as usize % 64,
        4..=7 => 64 + (h >> 8) as usize % bs,
        8 => bs + (h >> 8) as usize % (2 * bs),
        // Fills a fresh block exactly, so records often end on a block
        // boundary (the case where stale successors survive a rewrite).
        _ => bs - 68,
    };
    let sync = (h >> 40).is_multiple_of(2);
    let mut r = Vec::with_capacity(len);
    r.push(((t as u8) << 4) | (i as u8 & 15));
    let mut x = h;
    while r.len() < len {
        x = mix(x);
        r.extend_from_slice(&x.to_le_bytes()[..(len - r.len()).min(8)]);
    }
    (r, sync)
}

fn mdc_record(inst: u64, step: usize) -> (Vec<u8>, bool) {
    let h = mix(inst ^ 0x6d64_6300_0000 ^ step as u64);
    let len = 1 + (h % 300) as usize;
    let mut r = Vec::with_capacity(len);
    let mut x = h;
    while r.len() < len {
        x = mix(x);
        r.extend_from_slice(&x.to_le_bytes()[..(len - r.len()).min(8)]);
    }
    (r, (h >> 33).is_multiple_of(3))
}

struct Instance<'a> {
    cfg: &'a MlogTortureConfig,
    seed: u64,
    sector: u32,
    mirrored: bool,
}

impl Instance<'_> {
    /// A fresh device with the log and the MDC created.
    fn setup(&self) -> Option<Arc<FaultDevice>> {
        let f = Arc::new(FaultDevice::new(DEV_SIZE, self.sector));
        let d: Arc<dyn Device> = f.clone();
        Mlog::create_with(d.clone(), LOG_EXT, LOG_ID, self.mirrored).ok()?;
        Mdc::create_with(d, MDC_A, MDC_B, MDC_ID, self.mirrored).ok()?;
        Some(f)
    }

    /// Run the workload until it ends or the device crashes.
    fn workload(&self, f: &Arc<FaultDevice>) -> (LogModel, MdcModel) {
        let d: Arc<dyn Device> = f.clone();
        let threads = self.cfg.threads;
        let bs = self.sector as usize;
        let inst = self.seed;
        std::thread::scope(|s| {
            let mdc_thread = s.spawn(|| self.mdc_driver(d.clone()));
            let mut model = LogModel::default();
            let mut log = Mlog::open(d.clone(), LOG_EXT, LOG_ID).ok();
            'rounds: for round in 0..self.cfg.rounds {
                let Some(lg) = log.as_ref() else { break };
                let mut results = Vec::new();
                std::thread::scope(|s2| {
                    let hs: Vec<_> = (0..threads)
                        .map(|t| {
                            s2.spawn(move || {
                                let mut sent = Vec::new();
                                let mut acked = 0;
                                let mut lsns = Vec::new();
                                let mut failed = false;
                                for i in 0..self.cfg.records_per_round {
                                    let (rec, sync) = log_record(inst, round, t, i, bs);
                                    match lg.append(&rec, sync) {
                                        Ok(Lsn(l)) => {
                                            sent.push(rec);
                                            lsns.push((l, i));
                                            if sync {
                                                acked = sent.len();
                                            }
                                        }
                                        Err(MlogError::LogFull { .. })
                                        | Err(MlogError::RecordTooLarge { .. }) => break,
                                        Err(_) => {
                                            sent.push(rec);
                                            failed = true;
                                            break;
                                        }
                                    }
                                }
                                (sent, acked, lsns, failed)
                            })
                        })
                        .collect();
                    for h in hs {
                        results.push(h.join());
                    }
                });
                let mut r = Round::default();
                let mut failed = false;
                for (t, res) in results.into_iter().enumerate() {
                    match res {
                        Ok((sent, acked, lsns, fl)) => {
                            for (l, i) in lsns {
                                r.lsn.insert(l, (t, i));
                            }
                            r.sent.push(sent);
                            r.acked.push(acked);
                            failed |= fl;
                        }
                        Err(_) => {
                            r.sent.push(Vec::new());
                            r.acked.push(0);
                            failed = true;
                        }
                    }
                }
                model.rounds.push(r);
                if failed {
                    break;
                }
                if lg.sync().is_err() {
                    break;
                }
                if let Some(r) = model.rounds.last_mut() {
                    r.complete = true;
                    for (a, s) in r.acked.iter_mut().zip(&r.sent) {
                        *a = s.len();
                    }
                }
                if round + 1 == self.cfg.rounds {
                    break;
                }
                match mix(inst ^ 0xe5a5e ^ round as u64) % 3 {
                    0 => {
                        model.erase_in_flight = true;
                        if lg.erase(0).is_err() {
                            break 'rounds;
                        }
                        model.erase_in_flight = false;
                        model.rounds.clear();
                    }
                    1 => {
                        drop(log.take());
                        log = Mlog::open(d.clone(), LOG_EXT, LOG_ID).ok();
                    }
                    _ => {}
                }
            }
            drop(log);
            let mdc = mdc_thread.join().unwrap_or_default();
            (model, mdc)
        })
    }

    fn mdc_driver(&self, d: Arc<dyn Device>) -> MdcModel {
        let mut m = MdcModel::default();
        let Ok(mdc) = Mdc::open(d, MDC_A, MDC_B, MDC_ID) else {
            return m;
        };
        for step in 0..self.cfg.mdc_steps {
            if step % 9 == 8 {
                let keep = m.list.len().min(3);
                let snap = m.list[m.list.len() - keep..].to_vec();
                m.pending = Some(snap.clone());
                if mdc.cstart().is_err() {
                    return m;
                }
                m.acked = m.list.len();
                for r in &snap {
                    if mdc.append(r, false).is_err() {
                        return m;
                    }
                }
                if mdc.cend().is_err() {
                    return m;
                }
                m.list = snap;
                m.acked = m.list.len();
                m.pending = None;
                continue;
            }
            let (rec, sync) = mdc_record(self.seed, step);
            match mdc.append(&rec, sync) {
                Ok(_) => {
                    m.list.push(rec);
                    if sync {
                        m.acked = m.list.len();
                    }
                }
                Err(crate::mdc::MdcError::Mlog(MlogError::LogFull { .. })) => return m,
                Err(_) => {
                    m.list.push(rec);
                    return m;
                }
            }
        }
        m
    }
}

/// Read a whole log with sequence numbers.
fn read_log(log: &Mlog) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let mut rd = log.reader().map_err(|e| format!("mlog reader: {e}"))?;
    let mut out = Vec::new();
    while let Some(r) = rd.next_record() {
        match r {
            Ok((Lsn(l), d)) => out.push((l, d)),
            Err(e) => return Err(format!("mlog read after {} records: {e}", out.len())),
        }
    }
    Ok(out)
}

fn check_log(model: &LogModel, got: &[(u64, Vec<u8>)], threads: usize) -> Result<(), String> {
    if model.erase_in_flight && got.is_empty() {
        return Ok(());
    }
    let mut k = 0usize;
    let n = model.rounds.len();
    for (ri, round) in model.rounds.iter().enumerate() {
        let total: usize = round.sent.iter().map(Vec::len).sum();
        let mut cur = vec![0usize; threads];
        let mut taken = 0usize;
        let last = ri + 1 == n;
        while k < got.len() && (last || taken < total) {
            let (lsn, rec) = &got[k];
            if *lsn != k as u64 {
                return Err(format!("record {k} has sequence number {lsn}"));
            }
            let Some(&first) = rec.first() else {
                return Err(format!("record {k} is empty (garbage)"));
            };
            let t = usize::from(first >> 4);
            if t >= threads {
                return Err(format!("record {k} names thread {t} (garbage)"));
            }
            let i = cur[t];
            let Some(want) = round.sent.get(t).and_then(|s| s.get(i)) else {
                return Err(format!(
                    "record {k} ({} bytes) is an extra record of thread {t} in round {ri} (duplicate, stale or garbage)",
                    rec.len()
                ));
            };
            if want != rec {
                return Err(format!(
                    "record {k}: thread {t} record {i} of round {ri} differs ({} bytes read, {} expected)",
                    rec.len(),
                    want.len()
                ));
            }
            if let Some(&(lt, li)) = round.lsn.get(lsn) {
                if (lt, li) != (t, i) {
                    return Err(format!(
                        "record {k}: append returned this seq for thread {lt} record {li}, found thread {t} record {i}"
                    ));
                }
            }
            cur[t] += 1;
            taken += 1;
            k += 1;
        }
        for (t, have) in cur.iter().enumerate() {
            let acked = round.acked.get(t).copied().unwrap_or(0);
            if *have < acked {
                return Err(format!(
                    "round {ri}: thread {t} has {have} records, {acked} were acknowledged (lost acknowledged records)"
                ));
            }
        }
        if !last && taken < total {
            return Err(format!(
                "completed round {ri} has {taken} of its {total} records"
            ));
        }
    }
    if k < got.len() {
        return Err(format!(
            "{} records past everything appended (stale or garbage)",
            got.len() - k
        ));
    }
    Ok(())
}

fn check_mdc(m: &MdcModel, got: &[Vec<u8>]) -> Result<(), String> {
    let old_ok = got.len() >= m.acked && got.len() <= m.list.len() && got == &m.list[..got.len()];
    let new_ok = m.pending.as_deref() == Some(got);
    if old_ok || new_ok {
        Ok(())
    } else {
        Err(format!(
            "MDC holds {} records: neither the old state ({} records, {} acknowledged) nor the compacted one ({:?} records)",
            got.len(),
            m.list.len(),
            m.acked,
            m.pending.as_ref().map(Vec::len)
        ))
    }
}

fn read_mdc(mdc: &Mdc) -> Result<Vec<Vec<u8>>, String> {
    let rd = mdc.reader().map_err(|e| format!("MDC reader: {e}"))?;
    rd.collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("MDC read: {e}"))
}

/// Reopen after the crash, check against the model, then append after
/// recovery and check that too.
fn verify(
    g: FaultDevice,
    lm: &LogModel,
    mm: &MdcModel,
    threads: usize,
    mirrored: bool,
) -> Result<(), String> {
    let g = Arc::new(g);
    let d: Arc<dyn Device> = g.clone();
    let log = Mlog::open(d.clone(), LOG_EXT, LOG_ID).map_err(|e| format!("mlog open: {e}"))?;
    if log.is_mirrored() != mirrored {
        return Err(format!("the log opens with mirrored {}", log.is_mirrored()));
    }
    if let Some((off, why)) = log.corruption() {
        return Err(format!("mlog open reports corruption at {off}: {why}"));
    }
    let got = read_log(&log)?;
    check_log(lm, &got, threads)?;
    let mdc = Mdc::open(d.clone(), MDC_A, MDC_B, MDC_ID).map_err(|e| format!("MDC open: {e}"))?;
    let mgot = read_mdc(&mdc)?;
    check_mdc(mm, &mgot)?;
    // Append after recovery, reboot, and look again.
    // First a record that fills the block up to its end exactly (a stale
    // record of the crashed flush set may sit right after it), then a short
    // one, all synced.
    let mut posts = Vec::new();
    let geom = Geom {
        bs: u64::from(g.sector()),
        nblocks: log.capacity() / u64::from(g.sector()),
    };
    let fill = geom.hdr_pos(log.len()).map_or(0, |h| {
        let r = h % geom.bs;
        (geom.bs - r).saturating_sub(REC_HDR_LEN)
    });
    let mut fill_rec = POST_RECORD.to_vec();
    fill_rec.resize((fill as usize).max(POST_RECORD.len()), 0xee);
    for r in [fill_rec, POST_RECORD.to_vec()] {
        match log.append(&r, true) {
            Ok(_) => posts.push(r),
            Err(MlogError::LogFull { .. }) => break,
            Err(e) => return Err(format!("append after recovery: {e}")),
        }
    }
    let mdc_post = match mdc.append(POST_RECORD, true) {
        Ok(_) => true,
        Err(crate::mdc::MdcError::Mlog(MlogError::LogFull { .. })) => false,
        Err(e) => return Err(format!("MDC append after recovery: {e}")),
    };
    drop(log);
    drop(mdc);
    let h: Arc<dyn Device> = Arc::new(g.reboot(CrashMode::DropAll));
    let log = Mlog::open(h.clone(), LOG_EXT, LOG_ID).map_err(|e| format!("second open: {e}"))?;
    let again = read_log(&log)?;
    let mut want: Vec<Vec<u8>> = got.into_iter().map(|(_, r)| r).collect();
    want.extend(posts);
    if again.into_iter().map(|(_, r)| r).collect::<Vec<_>>() != want {
        return Err(
            "after recovery, append + sync + reopen does not show the log plus the new record"
                .into(),
        );
    }
    let mdc = Mdc::open(h, MDC_A, MDC_B, MDC_ID).map_err(|e| format!("second MDC open: {e}"))?;
    let mut mwant = mgot;
    if mdc_post {
        mwant.push(POST_RECORD.to_vec());
    }
    if read_mdc(&mdc)? != mwant {
        return Err(
            "after recovery, MDC append + sync + reopen does not show the new record".into(),
        );
    }
    Ok(())
}

fn crash_mode(seed: u64, point: u64) -> CrashMode {
    let h = mix(seed ^ mix(point));
    match h % 8 {
        0 | 1 => CrashMode::DropAll,
        2 => CrashMode::KeepAll,
        3..=5 => CrashMode::Random {
            keep: 0.5,
            tear: 0.5,
            seed: h >> 8,
        },
        _ => CrashMode::Random {
            keep: 0.8,
            tear: 0.9,
            seed: h >> 8,
        },
    }
}

fn mode_name(m: &CrashMode) -> String {
    match m {
        CrashMode::DropAll => "drop-all".into(),
        CrashMode::KeepAll => "keep-all".into(),
        CrashMode::Random { keep, tear, seed } => {
            format!("random(keep {keep}, tear {tear}, seed {seed})")
        }
    }
}

/// Run the mlog/MDC crash sweep: `cfg.crash_points` crash points spread over
/// as many workload instances as needed (each instance's operations are
/// swept one by one when they fit in what is left, sampled otherwise),
/// alternating sector sizes. `progress(done, total)` is called after every
/// crash point.
pub fn run_mlog(cfg: &MlogTortureConfig, progress: &mut dyn FnMut(u64, u64)) -> TortureReport {
    let mut cfg = cfg.clone();
    cfg.threads = cfg.threads.clamp(1, 14);
    if cfg.sectors.is_empty() {
        cfg.sectors = vec![512, 4096];
    }
    let mut rep = TortureReport::default();
    if let Some((seed, sector, p)) = cfg.replay {
        replay_one(&cfg, seed, sector, p, &mut rep);
        progress(1, 1);
        return rep;
    }
    let total = cfg.crash_points;
    let mut done = 0u64;
    let mut w = 0u64;
    while done < total {
        let sector = cfg.sectors[(w % cfg.sectors.len() as u64) as usize];
        let seed = if w == 0 {
            cfg.seed
        } else {
            mix(cfg.seed ^ mix(w))
        };
        w += 1;
        let inst = Instance {
            cfg: &cfg,
            seed,
            sector,
            mirrored: instance_mirrored(&cfg, seed),
        };
        let viol = |point: Option<u64>, mode: String, what: String| Violation {
            seed,
            sector,
            crash_point: point,
            mode,
            what,
            threads: cfg.threads,
        };
        // Dry run: count operations, and check the crash-free outcome.
        let Some(f) = inst.setup() else {
            rep.add(viol(None, "none".into(), "create failed".into()));
            break;
        };
        let base = f.stats().ops;
        let (lm, mm) = inst.workload(&f);
        let ops = f.stats().ops - base;
        rep.instances.push((seed, sector, ops));
        if let Err(e) = verify(
            f.reboot(CrashMode::DropAll),
            &lm,
            &mm,
            cfg.threads,
            inst.mirrored,
        ) {
            rep.add(viol(None, "drop-all".into(), e));
        }
        // Crash points of this instance.
        let left = total - done;
        let points: Vec<u64> = if ops < left {
            (0..=ops).collect()
        } else {
            let mut v: Vec<u64> = (0..left)
                .map(|j| mix(seed ^ (j << 1) ^ 1) % (ops + 1))
                .collect();
            v.sort_unstable();
            v
        };
        for p in points {
            let mode = crash_mode(seed, p);
            let Some(f) = inst.setup() else {
                rep.add(viol(Some(p), mode_name(&mode), "create failed".into()));
                continue;
            };
            f.crash_after(f.stats().ops + p);
            let (lm, mm) = inst.workload(&f);
            if let Err(e) = verify(f.reboot(mode), &lm, &mm, cfg.threads, inst.mirrored) {
                rep.add(viol(Some(p), mode_name(&mode), e));
            }
            done += 1;
            rep.crash_points = done;
            progress(done, total);
        }
    }
    rep
}

/// Replay crash point `p` of the instance `(seed, sector)`.
fn replay_one(cfg: &MlogTortureConfig, seed: u64, sector: u32, p: u64, rep: &mut TortureReport) {
    let inst = Instance {
        cfg,
        seed,
        sector,
        mirrored: instance_mirrored(cfg, seed),
    };
    let mode = crash_mode(seed, p);
    let viol = |what: String| Violation {
        seed,
        sector,
        crash_point: Some(p),
        mode: mode_name(&mode),
        what,
        threads: cfg.threads,
    };
    let Some(f) = inst.setup() else {
        rep.add(viol("create failed".into()));
        return;
    };
    f.crash_after(f.stats().ops + p);
    let (lm, mm) = inst.workload(&f);
    if let Err(e) = verify(f.reboot(mode), &lm, &mm, cfg.threads, inst.mirrored) {
        rep.add(viol(e));
    }
    rep.crash_points = 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sweep_finds_nothing() {
        let cfg = MlogTortureConfig {
            seed: 7,
            crash_points: 60,
            threads: 3,
            rounds: 3,
            records_per_round: 5,
            mdc_steps: 20,
            sectors: vec![512, 4096],
            mirrored: vec![false, true],
            replay: None,
        };
        let rep = run_mlog(&cfg, &mut |_, _| {});
        for v in &rep.details {
            eprintln!("{v}");
        }
        assert_eq!(rep.crash_points, 60);
        assert_eq!(rep.violations, 0);
        // Mirrored logs only.
        let cfg = MlogTortureConfig {
            seed: 8,
            mirrored: vec![true],
            ..cfg
        };
        let rep = run_mlog(&cfg, &mut |_, _| {});
        for v in &rep.details {
            eprintln!("{v}");
        }
        assert_eq!(rep.crash_points, 60);
        assert_eq!(rep.violations, 0);
    }

    #[test]
    fn checker_catches_loss_and_garbage() {
        let r = Round {
            sent: vec![vec![vec![0x00, 1], vec![0x01, 2]]],
            acked: vec![2],
            ..Default::default()
        };
        let m = LogModel {
            rounds: vec![r],
            erase_in_flight: false,
        };
        assert!(check_log(&m, &[(0, vec![0x00, 1]), (1, vec![0x01, 2])], 1).is_ok());
        assert!(check_log(&m, &[(0, vec![0x00, 1])], 1).is_err());
        assert!(check_log(&m, &[(0, vec![0x00, 1]), (1, vec![0x01, 3])], 1).is_err());
        assert!(check_log(
            &m,
            &[(0, vec![0x00, 1]), (1, vec![0x01, 2]), (2, vec![0x00, 1])],
            1
        )
        .is_err());
        let mm = MdcModel {
            list: vec![b"a".to_vec(), b"b".to_vec()],
            acked: 1,
            pending: Some(vec![b"b".to_vec()]),
        };
        assert!(check_mdc(&mm, &[b"a".to_vec()]).is_ok());
        assert!(check_mdc(&mm, &[b"b".to_vec()]).is_ok());
        assert!(check_mdc(&mm, &[]).is_err());
    }
}
