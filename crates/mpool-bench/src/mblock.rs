//! `mpool-bench mblock`: whole-mblock sequential writes and 4 KiB random
//! reads at queue depth 1 and 32 through the Pool API, next to fio on the
//! same (preallocated) pool file.
//!
//! - seqwrite: alloc, `mblock_write_aligned` of the whole mblock from an
//!   aligned buffer (no copy, like fio's own buffers), commit; repeated.
//!   When the pool runs out of free zones the oldest mblock is deleted,
//!   outside the timed part. fio: `--rw=write --bs=1m --ioengine=io_uring
//!   --iodepth=32 --fdatasync=<writes per mblock>` (one flush per mblock,
//!   like commit) on a second preallocated file, alternating in rounds.
//! - randread: a random committed mblock and a random 4 KiB-aligned offset
//!   in it. Depth 1: one `mblock_read` per read. Depth 32, each form of the
//!   API: an `MblockReader` kept full (the form closest to fio's
//!   `--iodepth`), lists of 1024 pushed through an `MblockReader` and
//!   drained (zero copy) and through `mblock_read_batch` at depth 32 (byte
//!   slices: bounce buffers and a copy), these three alternating with fio
//!   in rounds; then `mblock_read_batch` with whole batches in flight from
//!   1 and 4 threads, and 32 threads of `mblock_read`. fio:
//!   `--rw=randread --bs=4k --ioengine=io_uring --iodepth=1|32` over the
//!   pool's zones, and, for 32 threads, `--ioengine=psync --numjobs=32`.
//! - threads: `mblock_read` at queue depth 1 from 1, 2, 4, 8, 16 and 32
//!   threads, each beside fio `--ioengine=psync --numjobs=N` (threads,
//!   IOPS, bandwidth, mean latency: the shape of the ZUFS seed's table).
//!
//! `--cases` picks the cases (the writes always run: they make the mblocks
//! the reads read).

use crate::common::{self, histogram};
use crate::fio::{self, FioEngine, FioJob, Limit};
use crate::report::{fmt_rate, fmt_ratio, fmt_us, Table};
use anyhow::{bail, Context, Result};
use mpool::io::AlignedBuf;
use mpool::{AlignedRead, CreateOptions, DeviceSpec, MblockId, MediaClass, OpenOptions, Pool};
use serde_json::json;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Options of the mblock workload.
#[derive(Debug, Clone, clap::Args)]
pub struct MblockArgs {
    /// Directory for the pool file (created there, removed after).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Size of the pool file (preallocated: every byte written once).
    #[arg(long, default_value = "2G", value_parser = mpool_cli::size::parse_size)]
    pub size: u64,
    /// Mblock (zone) size.
    #[arg(long, default_value = "32M", value_parser = mpool_cli::size::parse_size)]
    pub mblock_size: u64,
    /// Size of each mblock_write (default: a whole mblock in one call, which
    /// the pool splits into 1 MiB requests all in flight at once).
    #[arg(long, default_value = "32M", value_parser = mpool_cli::size::parse_size)]
    pub write_size: u64,
    /// Seconds per case and side.
    #[arg(long, default_value_t = 5)]
    pub runtime: u64,
    /// Threads for the queue-depth-32 read case.
    #[arg(long, default_value_t = 32)]
    pub qd: usize,
    /// Alternate mpool and fio this many times in the write case and the
    /// queued read cases.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Measure mpool only.
    #[arg(long)]
    pub no_fio: bool,
    /// Checksum block size of the mblocks written (format version 3: a
    /// power of two, 4K to 64K; default: the pool's default).
    #[arg(long, value_parser = mpool_cli::size::parse_size)]
    pub csum_block: Option<u64>,
    /// Which cases to run, comma-separated: `seqwrite`, `qd1`, `qd32`
    /// (every queue-depth-32 form), `threads` (queue depth 1 per thread
    /// from 1 to 32 threads, against fio psync with as many jobs). The
    /// sequential writes always run (they write the mblocks the reads
    /// read); without `seqwrite` they are not compared with fio.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "seqwrite,qd1,qd32,threads"
    )]
    pub cases: Vec<Case>,
}

/// A case of the mblock workload (`--cases`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Case {
    /// Sequential whole-mblock writes against fio.
    Seqwrite,
    /// 4 KiB random reads at queue depth 1 from one thread.
    Qd1,
    /// 4 KiB random reads at queue depth 32, every form of the API.
    Qd32,
    /// 4 KiB random reads at queue depth 1 from 1, 2, 4, 8, 16 and 32
    /// threads, against fio psync with as many jobs.
    Threads,
}

/// One side's figures.
#[derive(Debug, Clone, Copy, Default)]
struct Fig {
    iops: f64,
    bw: f64,
    p50: f64,
    p99: f64,
    /// Mean latency (ns); 0 where not measured.
    mean: f64,
    /// CPUs busy on average while it ran (user + system time / wall time);
    /// 0 where not measured.
    cpu: f64,
}

impl Fig {
    /// The mean of several runs of one case; `None` for none.
    fn mean(figs: &[Fig]) -> Option<Fig> {
        if figs.is_empty() {
            return None;
        }
        let k = figs.len() as f64;
        let avg = |f: fn(&Fig) -> f64| figs.iter().map(f).sum::<f64>() / k;
        Some(Fig {
            iops: avg(|f| f.iops),
            bw: avg(|f| f.bw),
            p50: avg(|f| f.p50),
            p99: avg(|f| f.p99),
            mean: avg(|f| f.mean),
            cpu: avg(|f| f.cpu),
        })
    }

    fn json(&self) -> serde_json::Value {
        json!({ "iops": self.iops, "bw_bytes": self.bw, "p50_ns": self.p50, "p99_ns": self.p99, "mean_ns": self.mean, "cpus": self.cpu })
    }
}

use crate::common::Rng;

fn fio_fig(bin: &Path, job: &FioJob, write: bool) -> Result<Fig> {
    let (r, d) = fio::run_moving(bin, job, write)?;
    Ok(Fig {
        iops: d.iops,
        bw: d.bw_bytes,
        p50: d.p50_ns,
        p99: d.p99_ns,
        mean: d.clat_mean_ns,
        cpu: r.cpus,
    })
}

/// State of the sequential-write case across its slices.
struct SeqState {
    live: VecDeque<MblockId>,
    max_live: usize,
    h: hdrhistogram::Histogram<u64>,
    /// Content bytes written.
    bytes: u64,
    busy: Duration,
}

/// Sequential whole-mblock writes for `runtime` (timed: alloc, writes,
/// commit; deletes of old mblocks to make room are not timed).
fn seqwrite(pool: &Pool, args: &MblockArgs, runtime: Duration, st: &mut SeqState) -> Result<()> {
    let data: Vec<u8> = (0..args.write_size).map(|i| (i % 251) as u8).collect();
    // Written from an aligned buffer, as fio writes from its own: straight
    // to the device, no copy.
    let mut buf = Some(AlignedBuf::from_slice(&data, 4096));
    // A whole mblock holds its zone less its checksum table: the last
    // write of each is shortened to fit (a separate aligned buffer).
    let cap = pool.mblock_capacity(MediaClass::Capacity)?;
    let per = cap.div_ceil(args.write_size).max(1);
    let last_len = cap - (per - 1) * args.write_size;
    let mut last = Some(AlignedBuf::from_slice(&data[..last_len as usize], 4096));
    let SeqState {
        live,
        max_live,
        h,
        bytes,
        busy,
    } = st;
    let max_live = *max_live;
    let start = Instant::now();
    while start.elapsed() < runtime {
        if live.len() >= max_live {
            if let Some(old) = live.pop_front() {
                pool.mblock_delete(old)?;
            }
        }
        let t0 = Instant::now();
        let id = pool.mblock_alloc(MediaClass::Capacity)?;
        for k in 0..per {
            let t = Instant::now();
            let slot = if k + 1 == per { &mut last } else { &mut buf };
            let b = slot.take().context("write buffer lost")?;
            *bytes += b.len() as u64;
            *slot = Some(pool.mblock_write_aligned(id, b)?);
            h.record((t.elapsed().as_nanos() as u64).max(1))?;
        }
        pool.mblock_commit(id)?;
        *busy += t0.elapsed();
        live.push_back(id);
    }
    Ok(())
}

/// 4 KiB random reads of committed mblocks through `Pool::mblock_read_batch`:
/// `threads` threads each keep batches of `qd / threads` reads in flight, so
/// about `qd` reads are in flight in all (latency per batch).
fn randread_batch(
    pool: &Pool,
    ids: &[MblockId],
    len: u64,
    qd: usize,
    threads: usize,
    runtime: Duration,
) -> Result<Fig> {
    read_load(
        pool,
        ids,
        len,
        threads,
        (qd / threads.max(1)).max(1),
        Mode::Batch,
        runtime,
    )
}

/// 4 KiB random reads of committed mblocks from `threads` threads, one
/// `mblock_read` at a time.
fn randread(
    pool: &Pool,
    ids: &[MblockId],
    len: u64,
    threads: usize,
    runtime: Duration,
) -> Result<Fig> {
    read_load(pool, ids, len, threads, 1, Mode::Single, runtime)
}

/// 4 KiB random reads of committed mblocks from one thread, as lists of
/// `list` reads with `qd` in flight (a queue refilled as each read
/// completes, like fio's iodepth): into the caller's aligned buffers
/// through an `MblockReader` (every read of the list pushed, then all
/// taken) when `aligned`, else into plain byte buffers through
/// `Pool::mblock_read_batch` at depth `qd` (read into bounce buffers, then
/// copied).
fn randread_queued(
    pool: &Pool,
    ids: &[MblockId],
    len: u64,
    qd: usize,
    list: usize,
    aligned: bool,
    runtime: Duration,
) -> Result<Fig> {
    let mode = if aligned {
        Mode::Aligned(qd)
    } else {
        Mode::Queued(qd)
    };
    read_load(pool, ids, len, 1, list, mode, runtime)
}

/// 4 KiB random reads of committed mblocks from one thread through an
/// `MblockReader` of depth `qd`, kept full (like fio's iodepth: a read is
/// issued as soon as one completes, into the buffer it returned); with
/// `registered`, into buffers registered with the reader's ring.
fn randread_stream(
    pool: &Pool,
    ids: &[MblockId],
    len: u64,
    qd: usize,
    registered: bool,
    runtime: Duration,
) -> Result<Fig> {
    read_load(pool, ids, len, 1, qd, Mode::Stream(qd, registered), runtime)
}

/// How a reader thread issues its reads.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// One `mblock_read` per read.
    Single,
    /// All of a call's reads at once through `mblock_read_batch`.
    Batch,
    /// A call's reads through `mblock_read_batch` at this depth.
    Queued(usize),
    /// A call's reads into aligned buffers, pushed through an
    /// `MblockReader` of this depth and all taken before the next call.
    Aligned(usize),
    /// An `MblockReader` of this depth kept full: a read is pushed as soon
    /// as one completes, with the completed one's buffer (latency per read).
    Stream(usize, bool),
}

/// `threads` threads reading `per` random 4 KiB blocks of committed mblocks
/// per call, the way `mode` says.
fn read_load(
    pool: &Pool,
    ids: &[MblockId],
    len: u64,
    threads: usize,
    per: usize,
    mode: Mode,
    runtime: Duration,
) -> Result<Fig> {
    let blocks = (len / 4096).max(1);
    let cpu0 = common::cpu_seconds();
    let start = Instant::now();
    let (n, h) = common::in_threads(threads, "reader", |t| {
        let mut rng =
            Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1).wrapping_mul(0x1234_5678_9ABC_DEF1));
        let mut h = histogram();
        let mut bufs = vec![vec![0u8; 4096]; per];
        let mut abufs: Vec<AlignedBuf> = (0..per).map(|_| AlignedBuf::new(4096, 4096)).collect();
        let mut n = 0u64;
        if let Mode::Stream(qd, registered) = mode {
            let mut rd = pool.mblock_reader(qd)?;
            let mut sent: std::collections::HashMap<usize, Instant> =
                std::collections::HashMap::new();
            let mut spare: Vec<AlignedBuf> = if registered {
                if !rd.register_buffers(qd, 4096)? {
                    bail!("the reader's buffers could not be registered");
                }
                (0..qd).filter_map(|_| rd.take_buf()).collect()
            } else {
                (0..qd).map(|_| AlignedBuf::new(4096, 4096)).collect()
            };
            while start.elapsed() < runtime {
                while let Some(buf) = spare.pop() {
                    sent.insert(buf.as_ptr() as usize, Instant::now());
                    rd.push(AlignedRead {
                        id: ids[(rng.next() % ids.len() as u64) as usize],
                        offset: (rng.next() % blocks) * 4096,
                        buf,
                    })?;
                }
                let Some(done) = rd.next() else { break };
                let done = done?;
                if let Some(t0) = sent.remove(&(done.buf.as_ptr() as usize)) {
                    h.record((t0.elapsed().as_nanos() as u64).max(1))?;
                }
                spare.push(done.buf);
                n += 1;
            }
            for done in rd {
                done?;
            }
            return Ok((n, h));
        }
        if let Mode::Single = mode {
            // Into page-aligned buffers, as fio reads into its own: the
            // pool reads straight into them. One clock read per call: the
            // end of one call is the start of the next (at queue depth 1
            // the latencies then add up to the run's time), and the same
            // reading ends the run.
            let mut t0 = Instant::now();
            loop {
                for b in abufs.iter_mut() {
                    let id = ids[(rng.next() % ids.len() as u64) as usize];
                    pool.mblock_read(id, (rng.next() % blocks) * 4096, b)?;
                }
                let t1 = Instant::now();
                h.record((t1.duration_since(t0).as_nanos() as u64).max(1))?;
                n += abufs.len() as u64;
                if t1.duration_since(start) >= runtime {
                    return Ok((n, h));
                }
                t0 = t1;
            }
        }
        let mut list_reader = match mode {
            Mode::Aligned(qd) => Some(pool.mblock_reader(qd)?),
            _ => None,
        };
        while start.elapsed() < runtime {
            if let Some(rd) = list_reader.as_mut() {
                let t0 = Instant::now();
                let mut count = 0usize;
                for buf in abufs.drain(..) {
                    rd.push(AlignedRead {
                        id: ids[(rng.next() % ids.len() as u64) as usize],
                        offset: (rng.next() % blocks) * 4096,
                        buf,
                    })?;
                    count += 1;
                }
                for _ in 0..count {
                    let done = rd.next().context("a read of the list was lost")??;
                    abufs.push(done.buf);
                }
                h.record((t0.elapsed().as_nanos() as u64).max(1))?;
                n += count as u64;
                continue;
            }
            let mut reads: Vec<mpool::MblockRead<'_>> = bufs
                .iter_mut()
                .map(|b| mpool::MblockRead {
                    id: ids[(rng.next() % ids.len() as u64) as usize],
                    offset: (rng.next() % blocks) * 4096,
                    buf: b,
                })
                .collect();
            let t0 = Instant::now();
            match mode {
                Mode::Batch => {
                    let depth = reads.len();
                    pool.mblock_read_batch(&mut reads, depth)?
                }
                Mode::Queued(qd) | Mode::Aligned(qd) | Mode::Stream(qd, _) => {
                    pool.mblock_read_batch(&mut reads, qd)?
                }
                Mode::Single => unreachable!("single reads are done above"),
            }
            h.record((t0.elapsed().as_nanos() as u64).max(1))?;
            n += reads.len() as u64;
        }
        Ok((n, h))
    })?;
    let secs = start.elapsed().as_secs_f64();
    let cpu = (common::cpu_seconds() - cpu0) / secs;
    Ok(Fig {
        iops: n as f64 / secs,
        bw: (n * 4096) as f64 / secs,
        p50: h.value_at_quantile(0.5) as f64,
        p99: h.value_at_quantile(0.99) as f64,
        mean: h.mean(),
        cpu,
    })
}

/// A row of the table (and its JSON and note): `m` against `f`, whose
/// ratio is held against `target`.
fn push_row(t: &mut Table, case: &str, refname: &str, m: Fig, f: Option<Fig>, target: f64) {
    let ratio = f.filter(|f| f.iops > 0.0).map(|f| m.iops / f.iops);
    let o = |v: Option<f64>, g: fn(f64) -> String| v.map_or("-".into(), g);
    let mib = |v: f64| format!("{:.0}", v / (1 << 20) as f64);
    let cpus = |v: f64| {
        if v > 0.0 {
            format!("{v:.2}")
        } else {
            "-".into()
        }
    };
    t.rows.push(vec![
        case.into(),
        refname.into(),
        fmt_rate(m.iops),
        o(f.map(|f| f.iops), fmt_rate),
        fmt_ratio(ratio),
        mib(m.bw),
        o(f.map(|f| f.bw), mib),
        fmt_us(m.p50),
        fmt_us(m.p99),
        o(f.map(|f| f.p50), fmt_us),
        o(f.map(|f| f.p99), fmt_us),
        cpus(m.cpu),
        o(f.map(|f| f.cpu), cpus),
    ]);
    t.json_rows.push(json!({
        "case": case, "reference": refname, "mpool": m.json(),
        "fio": f.map(|f| f.json()), "ratio": ratio,
    }));
    if let Some(r) = ratio {
        t.notes.push(format!(
            "{case} vs {refname}: {r:.2} (target >= {target}: {})",
            if r >= target { "met" } else { "MISSED" }
        ));
    }
}

/// Thread counts of the queue-depth-1 scaling table (the seed's shape).
const THREAD_COUNTS: [usize; 6] = [1, 2, 4, 8, 16, 32];

/// 4 KiB random reads at queue depth 1 per thread, from 1 to 32 threads,
/// each count beside fio psync with as many jobs (`fio` runs one job of
/// it; `None` without fio): threads, IOPS, bandwidth, mean latency.
fn threads_table(
    t: &mut Table,
    pool: &Pool,
    ids: &[MblockId],
    cap: u64,
    rt: Duration,
    fio: &dyn Fn(FioEngine, u32, u32) -> Result<Option<Fig>>,
) -> Result<()> {
    let mut rows = Vec::new();
    for n in THREAD_COUNTS {
        eprintln!("randread qd1 x {n} thread(s): mpool, fio psync numjobs={n} ...");
        let m = randread(pool, ids, cap, n, rt)?;
        let f = fio(FioEngine::Psync, 1, n as u32)?;
        rows.push((n, m, f));
    }
    for (n, m, f) in rows {
        let case = format!(
            "randread 4k qd1, {n} thread(s) of mblock_read (mean latency {:.1} us; fio {})",
            m.mean / 1e3,
            f.map_or("-".into(), |f| format!("{:.1} us", f.mean / 1e3))
        );
        push_row(t, &case, &format!("fio psync numjobs={n}"), m, f, 0.8);
        if let Some(f) = f.filter(|f| f.iops > 0.0 && m.iops > 0.0) {
            t.notes.push(cpu_per_read_note(n, &m, &f));
        }
    }
    Ok(())
}

/// What one read cost in CPU time on each side of a row of the threads
/// table (mpool: the process's CPU time; fio: its jobs' `usr_cpu +
/// sys_cpu`, which it reports per job), and which side the scheduler gave
/// more CPUs. fio starts each job in a session of its own, so where
/// autogroup scheduling is on (the Linux default) its N jobs get N shares
/// of the CPUs against other processes' load, while mpool's N threads,
/// one process, get one: on a machine busy with other work, the IOPS
/// ratio of N > 1 threads then measures that, and the CPU per read is
/// the figure to compare.
fn cpu_per_read_note(n: usize, m: &Fig, f: &Fig) -> String {
    let (m_cpus, f_cpus) = (m.cpu, f.cpu * n as f64);
    let (m_ns, f_ns) = (m_cpus / m.iops * 1e9, f_cpus / f.iops * 1e9);
    let mut s = format!(
        "{n} thread(s): CPU per read mpool {m_ns:.0} ns, fio {f_ns:.0} ns (fio/mpool {:.2}); CPUs used mpool {m_cpus:.2}, fio {f_cpus:.2}",
        f_ns / m_ns.max(1e-9)
    );
    if n > 1 && m_cpus < 0.9 * f_cpus {
        s.push_str(
            " -- mpool's threads got fewer CPUs than fio's jobs (a busy machine: fio's jobs each run in a session, and so a scheduler autogroup, of their own)",
        );
    }
    s
}

/// Run the mblock workload.
pub fn run(args: &MblockArgs) -> Result<Table> {
    let fio_bin = if args.no_fio {
        None
    } else {
        Some(fio::find_fio()?)
    };
    let dir = common::scratch_env(&args.dir)?;
    let zone = args.mblock_size;
    if args.write_size == 0
        || !args.write_size.is_multiple_of(4096)
        || !zone.is_multiple_of(args.write_size)
    {
        bail!("--write-size must be a multiple of 4K that divides --mblock-size");
    }
    let size = args.size / zone * zone;
    if size < 16 * zone {
        bail!("--size must hold at least 16 mblocks");
    }
    let path = dir.join("mpool-bench-mblock.dat");
    let name = common::pool_name("mblock");
    common::forget_pool(&name, &path);
    common::prefill(&path, size)?;
    // fio's sequential writes go to a second preallocated file on the same
    // filesystem (writing the pool file would destroy the pool), alternating
    // with mpool's; its reads go to the pool file itself.
    let fio_path = dir.join("mpool-bench-mblock-fio.dat");
    let fio_size = (1u64 << 30).min(size);
    if fio_bin.is_some() {
        common::prefill(&fio_path, fio_size)?;
    }
    let runtime = args.runtime.max(1);
    let rt = Duration::from_secs(runtime);
    let has = |c: Case| args.cases.contains(&c);
    let mut t = Table {
        title: "mpool-bench mblock: Pool mblock writes and 4 KiB reads vs fio, same pool file"
            .into(),
        context: common::context(&path, fio_bin.as_deref()),
        header: [
            "case",
            "reference",
            "mpool IOPS",
            "ref IOPS",
            "mpool/ref",
            "mpool MiB/s",
            "ref MiB/s",
            "mpool p50 us",
            "mpool p99 us",
            "ref p50 us",
            "ref p99 us",
            "mpool CPUs",
            "ref CPUs",
        ]
        .map(String::from)
        .to_vec(),
        ..Table::default()
    };
    t.context.push((
        "pool".into(),
        format!(
            "{} MiB file, preallocated; mblock size {} MiB; engine auto",
            size >> 20,
            zone >> 20
        ),
    ));
    t.context
        .push(("runtime".into(), format!("{runtime} s per case and side")));
    let push = |t: &mut Table, case: &str, refname: &str, m: Fig, f: Option<Fig>| {
        push_row(t, case, refname, m, f, 0.95)
    };
    let res = (|| -> Result<()> {
        let pool = Pool::create(
            &name,
            &DeviceSpec {
                path: path.clone(),
                create_size: Some(size),
                zone_size: zone,
            },
            &CreateOptions {
                force: true,
                ..CreateOptions::default()
            },
        )
        .context("creating the pool")?;
        drop(pool);
        let pool = Pool::open(&name, &OpenOptions::default()).context("opening the pool")?;
        if let Some(b) = args.csum_block {
            let b = u32::try_from(b).context("--csum-block")?;
            pool.set_csum_block(b).context("--csum-block")?;
        }
        let cap = pool.mblock_capacity(MediaClass::Capacity)?;
        let free = pool
            .usage()
            .iter()
            .find(|u| u.class == MediaClass::Capacity)
            .map_or(0, |u| u.free);
        let mut st = SeqState {
            live: VecDeque::new(),
            max_live: (free / zone).saturating_sub(1).max(1) as usize,
            h: histogram(),
            bytes: 0,
            busy: Duration::ZERO,
        };
        let rounds = args.rounds.max(1);
        let slice = (runtime as f64 / f64::from(rounds)).max(1.0);
        let mut fs = Vec::new();
        let (mut cpu, mut wall) = (0.0, 0.0);
        for r in 1..=rounds {
            eprintln!("seqwrite round {r}/{rounds}: mpool, fio ...");
            let (c0, w0) = (common::cpu_seconds(), Instant::now());
            seqwrite(&pool, args, Duration::from_secs_f64(slice), &mut st)?;
            cpu += common::cpu_seconds() - c0;
            wall += w0.elapsed().as_secs_f64();
            if let (Some(bin), true) = (&fio_bin, has(Case::Seqwrite)) {
                // 1 MiB writes with as many in flight as one mpool call has
                // (a whole mblock: 32), one fdatasync per mblock like commit.
                let depth = (args.write_size >> 20).clamp(1, 32) as u32;
                let mut j = FioJob::new(
                    &fio_path,
                    "write",
                    1 << 20,
                    depth,
                    FioEngine::IoUring,
                    fio_size,
                    Limit::Seconds(slice.round() as u64),
                );
                j.fdatasync = (zone >> 20).max(1) as u32;
                fs.push(fio_fig(bin, &j, true)?);
            }
        }
        let secs = st.busy.as_secs_f64();
        // Counted in 1 MiB writes, the unit of the fio job beside it.
        let m = Fig {
            iops: st.bytes as f64 / (1 << 20) as f64 / secs,
            bw: st.bytes as f64 / secs,
            p50: st.h.value_at_quantile(0.5) as f64,
            p99: st.h.value_at_quantile(0.99) as f64,
            mean: st.h.mean(),
            cpu: cpu / wall.max(1e-9),
        };
        let fio_seq = Fig::mean(&fs);
        if has(Case::Seqwrite) {
            push(
            &mut t,
            &format!("seqwrite: {} MiB per mblock_write_aligned, commit per {} MiB (1 MiB units, latency per call)", args.write_size >> 20, zone >> 20),
            &format!("fio io_uring bs=1m qd{} fdatasync={}", (args.write_size >> 20).clamp(1, 32), (zone >> 20).max(1)),
            m,
            fio_seq,
        );
        }
        let live = st.live;
        let ids: Vec<MblockId> = live.iter().copied().collect();
        if ids.is_empty() {
            bail!("no mblock was committed");
        }
        let rd_fixed =
            |engine: FioEngine, qd: u32, jobs: u32, fixed: bool| -> Result<Option<Fig>> {
                let Some(bin) = &fio_bin else { return Ok(None) };
                let mut j = FioJob::new(
                    &path,
                    "randread",
                    4096,
                    qd,
                    engine,
                    size - zone,
                    Limit::Seconds(runtime),
                );
                j.offset = zone;
                j.numjobs = jobs;
                j.fixedbufs = fixed;
                Ok(Some(fio_fig(bin, &j, false)?))
            };
        let rd = |engine: FioEngine, qd: u32, jobs: u32| rd_fixed(engine, qd, jobs, false);
        if has(Case::Qd1) {
            eprintln!("randread qd1: mpool, fio ...");
            let m1 = randread(&pool, &ids, cap, 1, rt)?;
            let f1 = rd(FioEngine::IoUring, 1, 1)?;
            let s1 = rd(FioEngine::Psync, 1, 1)?;
            push(
                &mut t,
                "randread 4k qd1 (1 thread)",
                "fio psync qd1",
                m1,
                s1,
            );
            push(
                &mut t,
                "randread 4k qd1 (1 thread)",
                "fio io_uring qd1",
                m1,
                f1,
            );
        }
        if has(Case::Qd32) {
            eprintln!("randread qd{}: mpool, fio ...", args.qd);
            let m32 = randread(&pool, &ids, cap, args.qd, rt)?;
            let p32 = rd(FioEngine::Psync, 1, args.qd as u32)?;
            // The queue-depth target: the two queued forms and fio alternate,
            // `rounds` times, so that drift of the device between runs falls
            // on all three alike.
            let (mut ms, mut ma, mut mq, mut fq) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let (mut mr, mut fr) = (Vec::new(), Vec::new());
            for r in 1..=rounds {
                eprintln!(
                "randread qd{} queued round {r}/{rounds}: mpool reader (registered, own buffers), mpool aligned, mpool copied, fio, fio fixedbufs ...",
                args.qd
            );
                mr.push(randread_stream(&pool, &ids, cap, args.qd, true, rt)?);
                ms.push(randread_stream(&pool, &ids, cap, args.qd, false, rt)?);
                ma.push(randread_queued(&pool, &ids, cap, args.qd, 1024, true, rt)?);
                mq.push(randread_queued(&pool, &ids, cap, args.qd, 1024, false, rt)?);
                if let Some(f) = rd(FioEngine::IoUring, args.qd as u32, 1)? {
                    fq.push(f);
                }
                if let Some(f) = rd_fixed(FioEngine::IoUring, args.qd as u32, 1, true)? {
                    fr.push(f);
                }
            }
            let f32 = Fig::mean(&fq);
            let mr = Fig::mean(&mr).context("no registered reader round")?;
            let how = format!(
            "randread 4k qd{0} (1 thread, MblockReader of depth {0} kept full, registered buffers)",
            args.qd
        );
            push(
                &mut t,
                &how,
                &format!("fio io_uring qd{}", args.qd),
                mr,
                f32,
            );
            push(
                &mut t,
                &how,
                &format!("fio io_uring qd{} fixedbufs", args.qd),
                mr,
                Fig::mean(&fr),
            );
            for (how, figs) in [
                (
                    format!(
                        "MblockReader of depth {} kept full, own aligned buffers",
                        args.qd
                    ),
                    &ms,
                ),
                (
                    "lists of 1024 into aligned buffers via MblockReader".to_string(),
                    &ma,
                ),
                (
                    "lists of 1024 into byte slices via mblock_read_batch".to_string(),
                    &mq,
                ),
            ] {
                push(
                    &mut t,
                    &format!("randread 4k qd{} (1 thread, {how})", args.qd),
                    &format!("fio io_uring qd{}", args.qd),
                    Fig::mean(figs).context("no queued read round")?,
                    f32,
                );
            }
            for bt in [1usize, 4] {
                eprintln!("randread qd{} batched, {bt} thread(s): mpool ...", args.qd);
                let mb = randread_batch(&pool, &ids, cap, args.qd, bt, rt)?;
                let case = format!(
                    "randread 4k qd{} ({bt} thread(s) x batches of {} via mblock_read_batch)",
                    args.qd,
                    args.qd / bt
                );
                push(
                    &mut t,
                    &case,
                    &format!("fio io_uring qd{}", args.qd),
                    mb,
                    f32,
                );
            }
            let case = format!("randread 4k qd{0} ({0} threads)", args.qd);
            push(
                &mut t,
                &case,
                &format!("fio io_uring qd{}", args.qd),
                m32,
                f32,
            );
            push(
                &mut t,
                &case,
                &format!("fio psync numjobs={}", args.qd),
                m32,
                p32,
            );
        }
        if has(Case::Threads) {
            threads_table(&mut t, &pool, &ids, cap, rt, &rd)?;
        }
        t.context.push((
            "checksums".into(),
            match pool.csum_block()? {
                Some(b) => format!(
                    "per-block CRC-32C, {} KiB blocks (mblock capacity {} bytes)",
                    b >> 10,
                    cap
                ),
                None => "whole-content CRC (format version before 3)".into(),
            },
        ));
        t.context.push((
            "mblocks read".into(),
            format!("{} committed mblocks of {} MiB", ids.len(), zone >> 20),
        ));
        drop(pool);
        Ok(())
    })();
    common::forget_pool(&name, &path);
    let _ = std::fs::remove_file(&fio_path);
    res?;
    Ok(t)
}
