//! `mpool-bench mlog`: sync appends of 4 KiB records to one mlog from 1, 2,
//! 4 and 8 threads (group commit), against fio's 4 KiB O_DIRECT writes with
//! `--fdatasync=1` and with `--sync=1` on the same file and thread counts.
//!
//! The mlog lives in a preallocated file (every byte written once, so no
//! holes), opened with O_DIRECT through `FileDevice` (engine auto) and
//! wrapped in a counting device that also yields the per-append breakdown:
//! device writes, bytes and flushes per append and where the time goes.
//! fio job i of N writes its own region (1/N of the file,
//! `--offset_increment`), sequentially, one `psync` write at a time.

use crate::common::{self, Snap};
use crate::fio::{self, FioJob};
use crate::report::{fmt_rate, fmt_ratio, fmt_us, Table};
use anyhow::{bail, Context, Result};
use mpool::dev::{DevError, DevQueue, Device, DeviceInfo, FileDevice, OpenOptions};
use mpool::io::EngineChoice;
use mpool::io::{AlignedBuf, IoKind, IoReq};
use mpool::mlog::{Mlog, MlogError};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of the mlog workload.
#[derive(Debug, Clone, clap::Args)]
pub struct MlogArgs {
    /// Directory for the test file (created there, removed after).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Size of the preallocated file holding the mlog (and fio's regions).
    #[arg(long, default_value = "1G", value_parser = mpool_cli::size::parse_size)]
    pub size: u64,
    /// Record size in bytes (fio's block size).
    #[arg(long, default_value = "4K", value_parser = mpool_cli::size::parse_size)]
    pub record: u64,
    /// Thread counts (fio numjobs), comma separated.
    #[arg(long, default_value = "1,2,4,8", value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Seconds per thread count and side, split over --rounds slices.
    #[arg(long, default_value_t = 4)]
    pub runtime: u64,
    /// Alternate mpool, fio fdatasync and fio O_SYNC this many times per
    /// thread count (each slice runtime/rounds long), so that all three see
    /// the same background load of a shared disk.
    #[arg(long, default_value_t = 2)]
    pub rounds: u32,
    /// Measure mpool only.
    #[arg(long)]
    pub no_fio: bool,
    /// Keep the preallocated file (a later run reuses it).
    #[arg(long)]
    pub keep_file: bool,
}

/// The bench's counting device: it counts every write and flush and
/// times one call in [`SAMPLE`] (scaled up), so that the clock reads of
/// the instrument stay out of a path that costs 1-2 us per append on
/// memory-speed media. It passes `write_slice` through, so that the
/// device writes straight from the log's buffer as it would unwrapped.
///
/// Each thread counts in a slot of its own, on cache lines of its own,
/// and a snapshot sums the slots: counters shared by all threads moved
/// their line between the CPUs several times per append, a cost of the
/// instrument that the log's own scaling then seemed to pay (session 25).
/// A thread that holds a slot alone (`slot_index`) adds with a plain load
/// and store: an atomic add is a locked instruction, which waits for the
/// thread's earlier stores (a record's copy) to land, about 18 of them per
/// append (session 28).
#[derive(Debug)]
struct Sampled {
    inner: Arc<dyn Device>,
    slots: Box<[Slot]>,
    /// The counters of threads that found every slot taken (atomic adds).
    shared: Slot,
}

/// One thread's counters: submits, writes, write_bytes, flushes,
/// write_ns, flush_ns, write calls, flush calls.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot([AtomicU64; 8]);

/// Counter slots of a [`Sampled`] device, one bit each in [`TAKEN`]:
/// threads past this many at once count in its `shared` slot.
const SLOTS: usize = 64;

/// The slots held by a living thread (bit `i`: slot `i`).
static TAKEN: AtomicU64 = AtomicU64::new(0);

/// A slot held by the calling thread until it ends.
struct Held(Option<usize>);

impl Held {
    fn take() -> Held {
        let mut w = TAKEN.load(Ordering::Acquire);
        while w != u64::MAX {
            let i = w.trailing_ones() as usize;
            match TAKEN.compare_exchange(w, w | 1 << i, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Held(Some(i)),
                Err(now) => w = now,
            }
        }
        Held(None)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            // Release: the next holder's loads see this thread's counts.
            TAKEN.fetch_and(!(1 << i), Ordering::Release);
        }
    }
}

/// The calling thread's slot, its alone while it lives (None: every
/// slot is taken).
fn slot_index() -> Option<usize> {
    thread_local! {
        static IDX: Held = Held::take();
    }
    IDX.with(|h| h.0)
}

/// One write or flush call in this many is timed.
const SAMPLE: u64 = 16;

/// Largest file of a fio job apart (each job on a file of its own): the
/// jobs wrap around in it, and the N files sit beside the log's in memory
/// on tmpfs.
const APART_MAX: u64 = 256 << 20;

impl Sampled {
    fn new(inner: Arc<dyn Device>) -> Sampled {
        Sampled {
            inner,
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
            shared: Slot::default(),
        }
    }

    fn snap(&self) -> Snap {
        let g = |i: usize| -> u64 {
            self.slots
                .iter()
                .chain(std::iter::once(&self.shared))
                .map(|s| s.0[i].load(Ordering::Relaxed))
                .sum()
        };
        Snap {
            submits: g(0),
            writes: g(1),
            write_bytes: g(2),
            flushes: g(3),
            write_ns: g(4) * SAMPLE,
            flush_ns: g(5) * SAMPLE,
            ..Snap::default()
        }
    }

    /// The calling thread's counters, and whether they are its alone.
    fn mine(&self) -> (&Slot, bool) {
        match slot_index() {
            Some(k) => (&self.slots[k], true),
            None => (&self.shared, false),
        }
    }

    /// Add `n` to the calling thread's counter `i`; its value before.
    fn add(&self, i: usize, n: u64) -> u64 {
        bump(self.mine(), i, n)
    }

    /// Run `f`, timing it when its turn comes (one call of its kind in
    /// [`SAMPLE`] of the calling thread's), into counter `ns` (4: writes,
    /// 5: flushes).
    fn timed<T>(&self, ns: usize, f: impl FnOnce() -> T) -> T {
        let mine = self.mine();
        if !bump(mine, ns + 2, 1).is_multiple_of(SAMPLE) {
            return f();
        }
        let t = Instant::now();
        let r = f();
        bump(mine, ns, t.elapsed().as_nanos() as u64);
        r
    }

    fn count_write(&self, writes: u64, bytes: u64) {
        let mine = self.mine();
        bump(mine, 0, 1);
        bump(mine, 1, writes);
        bump(mine, 2, bytes);
    }
}

/// Add `n` to counter `i` of `slot` (`.1`: the calling thread's alone, so
/// a plain load and store; otherwise an atomic add); its value before.
fn bump(slot: (&Slot, bool), i: usize, n: u64) -> u64 {
    let c = &slot.0 .0[i];
    if slot.1 {
        let v = c.load(Ordering::Relaxed);
        c.store(v.wrapping_add(n), Ordering::Relaxed);
        v
    } else {
        c.fetch_add(n, Ordering::Relaxed)
    }
}

impl Device for Sampled {
    fn info(&self) -> &DeviceInfo {
        self.inner.info()
    }

    fn submit(&self, reqs: Vec<IoReq>) -> Vec<IoReq> {
        let w: Vec<u64> = reqs
            .iter()
            .filter(|q| q.kind == IoKind::Write)
            .map(|q| q.buf.len() as u64)
            .collect();
        if w.is_empty() {
            return self.inner.submit(reqs);
        }
        self.count_write(w.len() as u64, w.iter().sum());
        self.timed(4, || self.inner.submit(reqs))
    }

    fn write_at(&self, offset: u64, buf: &mut AlignedBuf) -> Result<(), DevError> {
        self.count_write(1, buf.len() as u64);
        self.timed(4, || self.inner.write_at(offset, buf))
    }

    fn write_slice(&self, offset: u64, data: &[u8]) -> Result<(), DevError> {
        self.count_write(1, data.len() as u64);
        self.timed(4, || self.inner.write_slice(offset, data))
    }

    fn queue(&self, depth: usize) -> Box<dyn DevQueue + '_> {
        self.inner.queue(depth)
    }

    fn write_bytes(&self, offset: u64, data: &[u8]) -> Option<Result<(), DevError>> {
        let Some(r) = self.timed(4, || self.inner.write_bytes(offset, data)) else {
            // Not byte-addressable: nothing written, the call not counted
            // (the sector write that follows is).
            self.add(6, 1u64.wrapping_neg());
            return None;
        };
        self.count_write(1, data.len() as u64);
        Some(r)
    }

    fn will_write(&self, offset: u64, len: u64) {
        self.inner.will_write(offset, len)
    }

    fn prepare_writes(&self, offset: u64, len: u64) {
        self.inner.prepare_writes(offset, len)
    }

    fn flush(&self) -> Result<(), DevError> {
        self.add(3, 1);
        self.timed(5, || self.inner.flush())
    }

    fn discard(&self, offset: u64, len: u64) -> Result<(), DevError> {
        self.inner.discard(offset, len)
    }
}

/// What the mpool side measured for one thread count.
#[derive(Debug, Clone, Copy)]
struct Measured {
    appends: u64,
    secs: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    /// CPU time of the process meanwhile (every thread), s.
    cpu: f64,
    dev: Snap,
    /// Slices that ended early because the log filled.
    full: u32,
}

impl Measured {
    /// All slices as one run; percentiles are the means of the slices'.
    fn merge(v: &[Measured]) -> Measured {
        let k = v.len().max(1) as f64;
        let mut dev = Snap::default();
        for m in v {
            dev = dev.plus(&m.dev);
        }
        Measured {
            appends: v.iter().map(|m| m.appends).sum(),
            secs: v.iter().map(|m| m.secs).sum(),
            p50: v.iter().map(|m| m.p50).sum::<f64>() / k,
            p99: v.iter().map(|m| m.p99).sum::<f64>() / k,
            p999: v.iter().map(|m| m.p999).sum::<f64>() / k,
            cpu: v.iter().map(|m| m.cpu).sum(),
            dev,
            full: v.iter().map(|m| m.full).sum(),
        }
    }
}

impl FioSide {
    /// Equal-length slices: the mean of each figure.
    fn mean(v: &[FioSide]) -> Option<FioSide> {
        if v.is_empty() {
            return None;
        }
        let k = v.len() as f64;
        Some(FioSide {
            iops: v.iter().map(|f| f.iops).sum::<f64>() / k,
            p50: v.iter().map(|f| f.p50).sum::<f64>() / k,
            p99: v.iter().map(|f| f.p99).sum::<f64>() / k,
            p999: v.iter().map(|f| f.p999).sum::<f64>() / k,
            cpu_us: v.iter().map(|f| f.cpu_us).sum::<f64>() / k,
        })
    }
}

fn mpool_case(
    log: &Arc<Mlog>,
    c: &Sampled,
    threads: usize,
    rec: usize,
    runtime: Duration,
) -> Result<Measured> {
    let before = c.snap();
    let start = Instant::now();
    let cpu0 = common::cpu_seconds();
    // Set by the first appender that finds the log full: the slice ends
    // there for every thread, and is measured over the time it ran.
    let full = AtomicBool::new(false);
    let (appends, hist) = common::in_threads(threads, "append", |t| {
        let mut h = common::histogram();
        let data: Vec<u8> = (0..rec).map(|i| (i as u8) ^ (t as u8)).collect();
        let mut n = 0u64;
        // The clock of the run's end is read every 16 appends.
        while !(n.is_multiple_of(16) && start.elapsed() >= runtime) {
            let t0 = Instant::now();
            match log.append(&data, true) {
                Ok(_) => {}
                Err(MlogError::LogFull { .. }) => {
                    full.store(true, Ordering::Relaxed);
                    break;
                }
                Err(e) => return Err(e).context("mlog append"),
            }
            h.record((t0.elapsed().as_nanos() as u64).max(1))?;
            n += 1;
            // Another thread found the log full: this append counts, and
            // the slice ends here too.
            if full.load(Ordering::Relaxed) {
                break;
            }
        }
        Ok((n, h))
    })?;
    let secs = start.elapsed().as_secs_f64();
    let dev = c.snap().since(&before);
    Ok(Measured {
        appends,
        secs,
        p50: hist.value_at_quantile(0.5) as f64,
        p99: hist.value_at_quantile(0.99) as f64,
        p999: hist.value_at_quantile(0.999) as f64,
        cpu: common::cpu_seconds() - cpu0,
        dev,
        full: u32::from(full.load(Ordering::Relaxed)),
    })
}

/// fio's figures: IOPS, p50, p99 and p99.9 per write including its sync (ns).
#[derive(Debug, Clone, Copy)]
struct FioSide {
    iops: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    /// CPU time per write (with its sync), us: fio's usr+sys over its jobs.
    cpu_us: f64,
}

fn fio_case(bin: &Path, job: &FioJob) -> Result<FioSide> {
    let (fdatasync, threads) = (job.fdatasync > 0, job.numjobs);
    let (r, w) = fio::run_moving(bin, job, true)?;
    // With --fdatasync=1 fio's write latency excludes the fdatasync that
    // follows: add the medians (and the 99th percentiles) of both.
    let (s50, s99) = if fdatasync {
        r.sync_lat.unwrap_or((0.0, 0.0))
    } else {
        (0.0, 0.0)
    };
    let s999 = if fdatasync {
        r.sync_p999.unwrap_or(0.0)
    } else {
        0.0
    };
    Ok(FioSide {
        iops: w.iops,
        p50: w.p50_ns + s50,
        p99: w.p99_ns + s99,
        p999: w.p999_ns + s999,
        // fio's CPU share is per job in a grouped report.
        cpu_us: r.cpus * threads as f64 / w.iops.max(1.0) * 1e6,
    })
}

/// Run the mlog workload.
pub fn run(args: &MlogArgs) -> Result<Table> {
    let fio_bin = if args.no_fio {
        None
    } else {
        Some(fio::find_fio()?)
    };
    let dir = common::scratch_env(&args.dir)?;
    if args.threads.is_empty() || args.threads.contains(&0) {
        bail!("--threads needs positive counts");
    }
    let size = args.size / (1 << 20) * (1 << 20);
    if size < (64 << 20) {
        bail!("--size must be at least 64M");
    }
    if args.record == 0 || !args.record.is_multiple_of(512) {
        bail!("--record must be a positive multiple of 512 (fio's O_DIRECT block size)");
    }
    let path = dir.join("mpool-bench-mlog.dat");
    common::prefill(&path, size)?;
    let runtime = args.runtime.max(1);
    let mut t = Table {
        title: format!(
            "mpool-bench mlog: sync append of {} B records vs fio write+fdatasync / O_SYNC, same file",
            args.record
        ),
        context: common::context(&path, fio_bin.as_deref()),
        header: [
            "threads", "mpool IOPS", "fio fdsync IOPS", "mpool/fdsync", "fio O_SYNC IOPS", "mpool/osync",
            "mpool p50 us", "mpool p99 us", "mpool p99.9 us", "fdsync p50 us", "fdsync p99 us", "fdsync p99.9 us", "osync p50 us", "osync p99 us", "osync p99.9 us",
            "CPUs used", "CPU us/app", "fdsync CPU us/op", "osync CPU us/op", "writes/app", "KiB/app", "flushes/app", "flush ms/s", "write ms/s",
            "floor IOPS", "mpool/floor", "shared floor IOPS", "mpool/shared", "shared CPU us/app", "shared p99.9 us",
            "apart IOPS", "apart p99 us", "apart p99.9 us", "line ns",
        ]
        .map(String::from)
        .to_vec(),
        ..Table::default()
    };
    t.context
        .push(("size".into(), format!("{} MiB, preallocated", size >> 20)));
    t.context
        .push(("runtime".into(), format!("{runtime} s per thread count and side, in {} alternating rounds (percentiles: mean over rounds)", args.rounds.max(1))));
    t.context.push((
        "method".into(),
        "mpool: Mlog::create on the whole file (FileDevice, O_DIRECT, engine auto), N threads append(rec, sync=true); \
         fio: --rw=write --ioengine=psync --direct=1 (--fdatasync=1 | --sync=1) --numjobs=N, job i on its own 1/N of the file; \
         fdsync latency = write + fdatasync percentiles added; \
         apart (N > 1): fio --fdatasync=1 with each job on a file of its own, sharing nothing but the machine"
            .into(),
    ));
    let mut apart_files = Vec::new();
    let res = (|| -> Result<()> {
        let file: Arc<dyn Device> = Arc::new(FileDevice::open(
            &path,
            &OpenOptions {
                engine: EngineChoice::Auto,
                ..OpenOptions::default()
            },
        )?);
        // The bytes a record may cost on the device (issue #12: the record
        // rounded up to the sector, plus one sector): fio writing that many
        // per synced write is the floor of a log that writes them.
        let sector = u64::from(file.sector());
        let allowed = args.record.div_ceil(sector) * sector + sector;
        t.context.push((
            "floor".into(),
            format!(
                "fio --fdatasync=1 --bs={allowed} (the record rounded up to the {sector}-byte sector plus one sector: \
                 the device bytes a record may cost), same numjobs, in the same rounds"
            ),
        ));
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        // The floor frames records straight onto the device: a file in
        // memory (mapped) takes writes of any bytes, one on a disk does not
        // (its logs write whole sectors, and the floor does not apply).
        let bytes_writable = file.write_bytes(0, &[]).is_some();
        if bytes_writable {
            t.context.push((
                "shared floor".into(),
                format!(
                    "the least a log shared by N threads costs on this file: an atomic add on a shared tail, \
                     the record's CRC-32C, its header and bytes copied through the device, a mark, and a wait until every earlier \
                     record is marked (a shared durable count), spinning, and with more threads than the {cpus} CPUs yielding the CPU \
                     after a microsecond (no help for a preempted appender); in the same rounds, see shared_floor.rs"
                ),
            ));
        } else {
            t.context.push((
                "shared floor".into(),
                "none: the device takes no writes of any bytes (not a file in memory), and a log on it writes whole sectors".into(),
            ));
        }
        // The jobs apart write files of their own, prefilled like the log's
        // (tmpfs allocates a page at its first write).
        let most = args.threads.iter().copied().max().unwrap_or(1);
        let apart_size = (size / most as u64).min(APART_MAX) / (1 << 20) * (1 << 20);
        let apart_path = dir.join("mpool-bench-mlog-apart.dat");
        if fio_bin.is_some() && most > 1 {
            let job = FioJob::durable_writes(&apart_path, size, args.record, most, true, 1)?;
            for f in job.apart(apart_size)?.job_files() {
                apart_files.push(f.clone());
                common::prefill(&f, apart_size)?;
            }
        }
        let counting = Arc::new(Sampled::new(Arc::clone(&file)));
        let dev: Arc<dyn Device> = counting.clone();
        let log = Arc::new(Mlog::create(dev, 0..size, 0x6d6c_6f67)?);
        let mut one_thread = None;
        let mut floors = Vec::new();
        let rounds = args.rounds.max(1);
        let slice = (runtime as f64 / f64::from(rounds)).max(1.0);
        for &n in &args.threads {
            let mut ms = Vec::new();
            let (mut fds, mut oss, mut fls) = (Vec::new(), Vec::new(), Vec::new());
            let mut aps = Vec::new();
            let mut shared = Vec::new();
            let mut lines = Vec::new();
            let mut steals = Vec::new();
            for round in 1..=rounds {
                log.erase(0)?;
                // Where the host placed the two CPUs for this slice: a
                // line's round trip between them (see `machine`).
                if let Some(t) = crate::machine::cache_line_round_trip() {
                    lines.push(t.ns);
                }
                eprintln!("mlog {n} thread(s), round {round}/{rounds}: mpool, fio --fdatasync=1, fio --sync=1, fio floor{} ...",
                    if n > 1 { ", fio apart" } else { "" });
                let steal0 = steal_ticks();
                let m = mpool_case(
                    &log,
                    &counting,
                    n,
                    args.record as usize,
                    Duration::from_secs_f64(slice),
                )?;
                // The share of the CPUs' time the host gave others (steal,
                // 100 ticks a second) while mpool ran.
                if let (Some(a), Some(b)) = (steal0, steal_ticks()) {
                    steals.push(
                        b.saturating_sub(a) as f64 / 100.0 / (m.secs * cpus as f64).max(1e-9),
                    );
                }
                ms.push(m);
                if bytes_writable {
                    shared.push(crate::shared_floor::run(
                        file.as_ref(),
                        size,
                        n,
                        args.record as usize,
                        Duration::from_secs_f64(slice),
                    )?);
                }
                if let Some(bin) = &fio_bin {
                    let secs = slice.round() as u64;
                    let job = |p: &Path, bs: u64, fdatasync: bool| {
                        FioJob::durable_writes(p, size, bs, n, fdatasync, secs)
                    };
                    fds.push(fio_case(bin, &job(&path, args.record, true)?)?);
                    oss.push(fio_case(bin, &job(&path, args.record, false)?)?);
                    fls.push(fio_case(bin, &job(&path, allowed, true)?)?);
                    if n > 1 {
                        let apart = job(&apart_path, args.record, true)?.apart(apart_size)?;
                        aps.push(fio_case(bin, &apart)?);
                    }
                }
            }
            let m = Measured::merge(&ms);
            let (fd, os, fl, ap) = (
                FioSide::mean(&fds),
                FioSide::mean(&oss),
                FioSide::mean(&fls),
                FioSide::mean(&aps),
            );
            let iops = m.appends as f64 / m.secs;
            if m.full > 0 {
                t.notes.push(format!(
                    "{n} thread(s): the {} MiB log filled in {} of {rounds} slice(s), which ended there: {:.2} s measured of {:.2} s asked (a larger --size gives whole slices)",
                    size >> 20,
                    m.full,
                    m.secs,
                    slice * f64::from(rounds)
                ));
            }
            let per = |x: u64| x as f64 / m.appends.max(1) as f64;
            let r_fd = fd.map(|f| iops / f.iops);
            let r_os = os.map(|f| iops / f.iops);
            let r_fl = fl.map(|f| iops / f.iops);
            let sh = (!shared.is_empty()).then(|| {
                let appends: u64 = shared.iter().map(|f| f.appends).sum();
                let secs: f64 = shared.iter().map(|f| f.secs).sum();
                let cpu: f64 = shared.iter().map(|f| f.cpu).sum();
                let k = shared.len() as f64;
                (
                    appends as f64 / secs,
                    cpu * 1e6 / appends.max(1) as f64,
                    shared.iter().map(|f| f.p50).sum::<f64>() / k,
                    shared.iter().map(|f| f.p99).sum::<f64>() / k,
                    shared.iter().map(|f| f.p999).sum::<f64>() / k,
                )
            });
            if n == 1 {
                one_thread = Some((iops, m, fd));
            }
            let o = |v: Option<f64>, f: fn(f64) -> String| v.map_or("-".into(), f);
            t.rows.push(vec![
                n.to_string(),
                fmt_rate(iops),
                o(fd.map(|f| f.iops), fmt_rate),
                fmt_ratio(r_fd),
                o(os.map(|f| f.iops), fmt_rate),
                fmt_ratio(r_os),
                fmt_us(m.p50),
                fmt_us(m.p99),
                fmt_us(m.p999),
                o(fd.map(|f| f.p50), fmt_us),
                o(fd.map(|f| f.p99), fmt_us),
                o(fd.map(|f| f.p999), fmt_us),
                o(os.map(|f| f.p50), fmt_us),
                o(os.map(|f| f.p99), fmt_us),
                o(os.map(|f| f.p999), fmt_us),
                format!("{:.2}", m.cpu / m.secs),
                format!("{:.2}", m.cpu * 1e6 / m.appends.max(1) as f64),
                o(fd.map(|f| f.cpu_us), |x| format!("{x:.2}")),
                o(os.map(|f| f.cpu_us), |x| format!("{x:.2}")),
                format!("{:.2}", per(m.dev.writes)),
                format!("{:.1}", per(m.dev.write_bytes) / 1024.0),
                format!("{:.2}", per(m.dev.flushes)),
                format!("{:.0}", m.dev.flush_ns as f64 / 1e6 / m.secs),
                format!("{:.0}", m.dev.write_ns as f64 / 1e6 / m.secs),
                o(fl.map(|f| f.iops), fmt_rate),
                fmt_ratio(r_fl),
                o(sh.map(|s| s.0), fmt_rate),
                fmt_ratio(sh.map(|s| iops / s.0)),
                o(sh.map(|s| s.1), |x| format!("{x:.2}")),
                o(sh.map(|s| s.4), fmt_us),
                o(ap.map(|f| f.iops), fmt_rate),
                o(ap.map(|f| f.p99), fmt_us),
                o(ap.map(|f| f.p999), fmt_us),
                line_range(&lines),
            ]);
            t.json_rows.push(json!({
                "threads": n,
                "mpool": { "iops": iops, "appends": m.appends, "secs": m.secs, "slices_ended_full": m.full, "p50_ns": m.p50, "p99_ns": m.p99, "p999_ns": m.p999, "cpus_used": m.cpu / m.secs,
                    "cpu_ns_per_append": m.cpu * 1e9 / m.appends.max(1) as f64 },
                "fio_fdatasync": fd.map(|f| json!({ "iops": f.iops, "p50_ns": f.p50, "p99_ns": f.p99, "p999_ns": f.p999, "cpu_ns_per_op": f.cpu_us * 1e3 })),
                "fio_osync": os.map(|f| json!({ "iops": f.iops, "p50_ns": f.p50, "p99_ns": f.p99, "p999_ns": f.p999, "cpu_ns_per_op": f.cpu_us * 1e3 })),
                "ratio_fdatasync": r_fd,
                "ratio_osync": r_os,
                "fio_floor": fl.map(|f| json!({ "bs": allowed, "iops": f.iops, "p50_ns": f.p50, "p99_ns": f.p99, "p999_ns": f.p999, "cpu_ns_per_op": f.cpu_us * 1e3 })),
                "ratio_floor": r_fl,
                "shared_floor": sh.map(|s| json!({ "iops": s.0, "cpu_ns_per_append": s.1 * 1e3, "p50_ns": s.2, "p99_ns": s.3, "p999_ns": s.4 })),
                "ratio_shared_floor": sh.map(|s| iops / s.0),
                "fio_apart": ap.map(|f| json!({ "per_job_bytes": apart_size, "iops": f.iops, "p50_ns": f.p50, "p99_ns": f.p99, "p999_ns": f.p999, "cpu_ns_per_op": f.cpu_us * 1e3 })),
                "line_round_trip_ns": lines,
                // Each slice on its own: the host may move the CPUs
                // between slices, and the rates follow the line's cost.
                "slices": ms.iter().enumerate().map(|(i, m)| json!({
                    "line_round_trip_ns": lines.get(i),
                    "steal_share": steals.get(i),
                    "mpool_iops": m.appends as f64 / m.secs,
                    "mpool_cpu_ns_per_append": m.cpu * 1e9 / m.appends.max(1) as f64,
                    "shared_floor_iops": shared.get(i).map(|f| f.appends as f64 / f.secs),
                    "shared_floor_p999_ns": shared.get(i).map(|f| f.p999),
                    "mpool_p99_ns": m.p99,
                    "mpool_p999_ns": m.p999,
                    "fio_apart_p999_ns": aps.get(i).map(|f| f.p999),
                })).collect::<Vec<_>>(),
                "per_append": {
                    "device_writes": per(m.dev.writes),
                    "submits": per(m.dev.submits),
                    "bytes_written": per(m.dev.write_bytes),
                    "flushes": per(m.dev.flushes),
                    "flush_ns": per(m.dev.flush_ns),
                    "write_ns": per(m.dev.write_ns),
                },
            }));
            if let (Some(f), Some(fl)) = (fd, fl) {
                floors.push(format!(
                    "{n}: {} ({:.2}x fio's {} B writes; mpool {:.2}x of it)",
                    fmt_rate(fl.iops),
                    fl.iops / f.iops,
                    args.record,
                    iops / fl.iops
                ));
            }
            if let (Some(f), Some(o)) = (fd, os) {
                let best = if f.iops >= o.iops { f } else { o };
                if n > 1 {
                    let met = |b: bool| if b { "met" } else { "MISSED" };
                    t.notes.push(format!(
                        "{n} threads: mpool {} vs fio's better per-write sync {} ({:.2}x, target >= 1.0: {}); p99 {} vs {} (target <= 2x: {}); p99.9 {} (fio {}, fio with a file per job {}, shared floor {}; target < 50 us: {})",
                        fmt_rate(iops),
                        fmt_rate(best.iops),
                        iops / best.iops,
                        met(iops >= best.iops),
                        fmt_us(m.p99),
                        fmt_us(best.p99),
                        met(m.p99 <= 2.0 * best.p99),
                        fmt_us(m.p999),
                        fmt_us(best.p999),
                        ap.map_or("-".into(), |a| fmt_us(a.p999)),
                        sh.map_or("-".into(), |s| fmt_us(s.4)),
                        met(m.p999 < 50_000.0),
                    ));
                }
            }
        }
        if let Some((iops, m, Some(fd))) = one_thread {
            let r = iops / fd.iops;
            t.notes.insert(
                0,
                format!(
                    "1 thread: mpool/fio(fdatasync) = {r:.2} (target >= 0.80: {}); per append the mlog did {:.2} device writes of {:.1} KiB in all and {:.2} flushes; \
                     flush {:.0} us + write {:.0} us of the {:.0} us mean append",
                    if r >= 0.8 { "met" } else { "MISSED" },
                    m.dev.writes as f64 / m.appends as f64,
                    m.dev.write_bytes as f64 / m.appends as f64 / 1024.0,
                    m.dev.flushes as f64 / m.appends as f64,
                    m.dev.flush_ns as f64 / m.appends as f64 / 1e3,
                    m.dev.write_ns as f64 / m.appends as f64 / 1e3,
                    m.secs * 1e6 / m.appends as f64,
                ),
            );
        }
        if !floors.is_empty() {
            t.notes.push(format!(
                "floor (fio --fdatasync=1 writing {allowed} B per write, the bytes a {} B record may cost), by threads: {}",
                args.record,
                floors.join("; ")
            ));
        }
        t.notes.push("line ns: a cache line's round trip between two CPUs, measured before each mpool slice (lowest-highest over the slices): a host that places the virtual CPUs far apart makes every line the appenders share dearer, which fio's independent jobs do not notice (BENCHMARKS.md, session 25)".into());
        t.notes.push("CPUs used: mpool's process CPU time over wall time (below the thread count when other processes hold the CPUs); CPU us/app, CPU us/op: CPU time per append or write (fio: its usr+sys), which other processes on the CPUs disturb less than rates; writes/app, KiB/app, flushes/app: device operations per append (counting device); flush/write ms/s: time inside fdatasync / writes per second of run, summed over threads (one call in 16 timed, scaled up)".into());
        Ok(())
    })();
    if !args.keep_file {
        let _ = std::fs::remove_file(&path);
        for f in &apart_files {
            let _ = std::fs::remove_file(f);
        }
    }
    res?;
    Ok(t)
}

/// The machine's steal time so far (/proc/stat), in ticks.
fn steal_ticks() -> Option<u64> {
    common::proc_stat_cpu().get(7).copied()
}

/// The lowest and highest of the slices' line round trips, in ns.
fn line_range(ns: &[f64]) -> String {
    let lo = ns.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ns.iter().copied().fold(0.0, f64::max);
    if ns.is_empty() {
        "-".into()
    } else if hi - lo < 1.0 {
        format!("{lo:.0}")
    } else {
        format!("{lo:.0}-{hi:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpool::dev::MemDevice;

    /// More threads at once than slots, each writing and flushing through
    /// the counting device, then as many again (the slots given back
    /// and taken by new threads): every write, byte and flush is counted,
    /// by the threads that held a slot alone and by those that shared.
    #[test]
    fn the_counting_device_counts_every_call_of_more_threads_than_slots() {
        let sampled = Sampled::new(Arc::new(MemDevice::new(1 << 20, 512)));
        let threads = SLOTS + 8;
        let each = 200u64;
        for _ in 0..2 {
            let start = std::sync::Barrier::new(threads);
            std::thread::scope(|s| {
                for t in 0..threads {
                    let (sampled, start) = (&sampled, &start);
                    s.spawn(move || {
                        start.wait();
                        for i in 0..each {
                            let at = (t as u64 * each + i) % 4096 * 100;
                            assert!(sampled.write_bytes(at, &[t as u8; 100]).unwrap().is_ok());
                            sampled.flush().unwrap();
                        }
                    });
                }
            });
        }
        let n = 2 * threads as u64 * each;
        let snap = sampled.snap();
        assert_eq!(
            (snap.submits, snap.writes, snap.write_bytes),
            (n, n, 100 * n)
        );
        assert_eq!(snap.flushes, n);
    }
}
