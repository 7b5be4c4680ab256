//! `mpool-bench churn`: object churn. mpool: `mblock_alloc`, one 1 MiB
//! `mblock_write_aligned` (from the thread's aligned buffer, like the
//! filesystem side's O_DIRECT write), `mblock_commit`, then a delete,
//! repeated. The user's alternative on the same filesystem, in the same
//! run: create a file, write 1 MiB with O_DIRECT, fsync it and its
//! directory, unlink it.
//!
//! Deletes come in two strengths, and each side runs both:
//! - *deferred*: mpool's `mblock_delete_deferred` (durable with the
//!   metadata log's next flush; the zone is reused only after that) against
//!   a plain `unlink` (durable with the filesystem's next journal commit;
//!   the blocks are reused only after that). This is the comparison the
//!   issue defines: create, write, fsync file and directory, unlink.
//! - *durable*: `mblock_delete` (durable on return) against `unlink` plus
//!   `fsync(dir)`.
//!
//! The device sets a floor under both: an object cannot be durable faster
//! than its bytes can be written and flushed. fio measures that floor in the
//! same rounds (`--rw=write --bs=<object> --fdatasync=1`, psync, one job per
//! thread, on a second preallocated file), so the report says how close
//! mpool gets to the device and how much any design could gain over the
//! filesystem here (floor / filesystem).
//!
//! The sides alternate in rounds so all see the same background load,
//! at each thread count (every thread runs the same loop on one pool or one
//! directory). The pool lives on a preallocated file (every byte written
//! once), the stand-in for a raw device; the filesystem side allocates fresh
//! blocks for every file, as it must. A short extra pass per mpool side opens
//! the same pool through a counting device and reports device writes and
//! flushes per operation.

use crate::common::{self, histogram, Counting};
use crate::fio::{self, FioJob};
use crate::report::{fmt_rate, fmt_ratio, fmt_us, Table};
use anyhow::{bail, Context, Result};
use mpool::dev::{Device, DeviceRef, FileDevice, OpenOptions as DevOpenOptions};
use mpool::io::AlignedBuf;
use mpool::{CreateOptions, DeviceSpec, MediaClass, OpenOptions, Pool};
use serde_json::json;
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of the churn workload.
#[derive(Debug, Clone, clap::Args)]
pub struct ChurnArgs {
    /// Directory for the pool file and the filesystem side's files.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Size of the pool file (preallocated).
    #[arg(long, default_value = "1G", value_parser = mpool_cli::size::parse_size)]
    pub size: u64,
    /// Object size (and the pool's mblock size).
    #[arg(long, default_value = "1M", value_parser = mpool_cli::size::parse_size)]
    pub object: u64,
    /// Seconds per side and thread count, split over --rounds alternating slices.
    #[arg(long, default_value_t = 8)]
    pub runtime: u64,
    /// Alternations of the four sides.
    #[arg(long, default_value_t = 4)]
    pub rounds: u32,
    /// Thread counts to run, comma-separated.
    #[arg(long, default_value = "1,4", value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Skip the device floor (fio).
    #[arg(long)]
    pub no_fio: bool,
}

/// The device floor: fio writing one object at a time with fdatasync after
/// each, `threads` jobs on their own regions of `file`. Object writes per second.
pub(crate) fn floor(
    bin: &Path,
    file: &Path,
    file_size: u64,
    obj: u64,
    threads: usize,
    secs: u64,
) -> Result<f64> {
    let job = FioJob::durable_writes(file, file_size, obj, threads, true, secs)?;
    Ok(fio::run_moving(bin, &job, true)?.1.iops)
}

/// One of the four sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    MpoolDeferred,
    FsUnlink,
    MpoolDurable,
    FsUnlinkFsync,
}

impl Side {
    const ALL: [Side; 4] = [
        Side::MpoolDeferred,
        Side::FsUnlink,
        Side::MpoolDurable,
        Side::FsUnlinkFsync,
    ];

    fn name(self) -> &'static str {
        match self {
            Side::MpoolDeferred => "mpool, mblock_delete_deferred",
            Side::FsUnlink => "filesystem, unlink",
            Side::MpoolDurable => "mpool, mblock_delete (durable)",
            Side::FsUnlinkFsync => "filesystem, unlink + fsync(dir)",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Side::MpoolDeferred => "mpool_deferred",
            Side::FsUnlink => "fs_unlink",
            Side::MpoolDurable => "mpool_durable",
            Side::FsUnlinkFsync => "fs_unlink_fsync",
        }
    }

    /// The side this one is compared with.
    fn reference(self) -> Option<Side> {
        match self {
            Side::MpoolDeferred => Some(Side::FsUnlink),
            Side::MpoolDurable => Some(Side::FsUnlinkFsync),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Fig {
    ops: u64,
    secs: f64,
}

/// One mpool object's life; the buffer comes back for the next.
fn mpool_op(pool: &Pool, buf: AlignedBuf, deferred: bool) -> Result<AlignedBuf> {
    let id = pool.mblock_alloc(MediaClass::Capacity)?;
    let buf = pool.mblock_write_aligned(id, buf)?;
    pool.mblock_commit(id)?;
    if deferred {
        pool.mblock_delete_deferred(id)?;
    } else {
        pool.mblock_delete(id)?;
    }
    Ok(buf)
}

/// One file's life.
fn fs_op(d: &File, p: &Path, buf: &AlignedBuf, fsync_unlink: bool) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(p)
        .with_context(|| format!("creating {}", p.display()))?;
    f.write_all_at(buf, 0)?;
    f.sync_all()?;
    d.sync_all()?;
    drop(f);
    std::fs::remove_file(p)?;
    if fsync_unlink {
        d.sync_all()?;
    }
    Ok(())
}

/// Everything one side needs.
struct Env<'a> {
    pool: &'a Pool,
    buf: &'a AlignedBuf,
    fsdir: &'a Path,
    seq: &'a AtomicU64,
}

/// Run `side` from `threads` threads for `rt`; latencies go into `h`.
fn slice(
    env: &Env<'_>,
    side: Side,
    threads: usize,
    rt: Duration,
    h: &mut hdrhistogram::Histogram<u64>,
) -> Result<Fig> {
    let start = Instant::now();
    let (ops, hh) = common::in_threads(threads, "churn", |_| {
        let mut h = histogram();
        let d =
            File::open(env.fsdir).with_context(|| format!("opening {}", env.fsdir.display()))?;
        let mut ops = 0;
        let mut mine = env.buf.clone();
        while start.elapsed() < rt {
            let t = Instant::now();
            match side {
                Side::MpoolDeferred => mine = mpool_op(env.pool, mine, true)?,
                Side::MpoolDurable => mine = mpool_op(env.pool, mine, false)?,
                Side::FsUnlink | Side::FsUnlinkFsync => {
                    let n = env.seq.fetch_add(1, Ordering::Relaxed);
                    let p = env.fsdir.join(format!("obj-{n}"));
                    fs_op(&d, &p, env.buf, side == Side::FsUnlinkFsync)?;
                }
            }
            h.record((t.elapsed().as_nanos() as u64).max(1))?;
            ops += 1;
        }
        Ok((ops, h))
    })?;
    let secs = start.elapsed().as_secs_f64();
    h.add(&hh)?;
    Ok(Fig { ops, secs })
}

/// Run the churn workload.
pub fn run(args: &ChurnArgs) -> Result<Table> {
    let fio_bin = if args.no_fio {
        None
    } else {
        Some(fio::find_fio()?)
    };
    let dir = common::scratch_env(&args.dir)?;
    let obj = args.object;
    if obj < 64 << 10 || !obj.is_power_of_two() {
        bail!("--object must be a power of two of at least 64K (it is the mblock size)");
    }
    let size = args.size / obj * obj;
    if size < 64 * obj {
        bail!("--size must hold at least 64 objects");
    }
    let path = dir.join("mpool-bench-churn.dat");
    let fsdir = dir.join("churn-fs");
    let _ = std::fs::remove_dir_all(&fsdir);
    std::fs::create_dir_all(&fsdir)?;
    let name = common::pool_name("churn");
    common::forget_pool(&name, &path);
    common::prefill(&path, size)?;
    let fio_path = dir.join("mpool-bench-churn-fio.dat");
    let fio_size = (256u64 << 20).max(16 * obj).min(size);
    if fio_bin.is_some() {
        common::prefill(&fio_path, fio_size)?;
    }
    let rounds = args.rounds.max(1);
    let threads = &args.threads;
    if threads.is_empty() || threads.iter().any(|&t| t == 0 || t > 64) {
        bail!("--threads takes counts from 1 to 64");
    }
    let slice_len =
        Duration::from_secs_f64((args.runtime.max(1) as f64 / f64::from(rounds)).max(0.5));
    let mut t = Table {
        title: format!(
            "mpool-bench churn: alloc+write {} KiB+commit+delete vs file create+write+fsync+unlink, same filesystem",
            obj >> 10
        ),
        context: common::context(&path, fio_bin.as_deref()),
        header: ["threads", "side", "ops/s", "vs filesystem", "p50 us", "p99 us", "ops"]
            .map(String::from)
            .to_vec(),
        ..Table::default()
    };
    t.context.push((
        "pool".into(),
        format!(
            "{} MiB file, preallocated; mblock size {} KiB; engine auto",
            size >> 20,
            obj >> 10
        ),
    ));
    t.context.push((
        "filesystem side".into(),
        format!(
            "{}: open(O_CREAT|O_EXCL|O_DIRECT), pwrite, fsync, fsync(dir), close, unlink [, fsync(dir)]",
            fsdir.display()
        ),
    ));
    t.context.push((
        "runtime".into(),
        format!(
            "{} s per side and thread count, in {rounds} alternating rounds",
            args.runtime.max(1)
        ),
    ));
    let res = (|| -> Result<()> {
        let pool = Pool::create(
            &name,
            &DeviceSpec {
                path: path.clone(),
                create_size: Some(size),
                zone_size: obj,
            },
            &CreateOptions {
                force: true,
                ..CreateOptions::default()
            },
        )
        .context("creating the pool")?;
        // An mblock holds its zone less its checksum table (format 3): each
        // side writes what an mblock holds, in whole 4 KiB pages.
        let wr = pool.mblock_capacity(MediaClass::Capacity)? / 4096 * 4096;
        drop(pool);
        t.context.push((
            "object bytes".into(),
            format!("{wr} (the mblock's capacity in whole 4 KiB pages), both sides"),
        ));
        let data: Vec<u8> = (0..wr).map(|i| (i % 253) as u8).collect();
        let mut buf = AlignedBuf::new(wr as usize, 4096);
        buf.copy_from_slice(&data);
        let seq = AtomicU64::new(0);
        let mut verdicts = Vec::new();
        {
            let pool = Pool::open(&name, &OpenOptions::default())?;
            let env = Env {
                pool: &pool,
                buf: &buf,
                fsdir: &fsdir,
                seq: &seq,
            };
            for &n in threads {
                let mut hs: Vec<_> = Side::ALL.iter().map(|_| histogram()).collect();
                let mut figs = [Fig::default(); 4];
                let mut floors = Vec::new();
                for r in 1..=rounds {
                    eprintln!("churn, {n} thread(s), round {r}/{rounds} ...");
                    for (i, side) in Side::ALL.iter().enumerate() {
                        let f = slice(&env, *side, n, slice_len, &mut hs[i])?;
                        figs[i].ops += f.ops;
                        figs[i].secs += f.secs;
                    }
                    if let Some(bin) = &fio_bin {
                        floors.push(floor(bin, &fio_path, fio_size, wr, n, slice_len.as_secs())?);
                    }
                }
                let rate = |s: Side| {
                    let i = Side::ALL.iter().position(|x| *x == s).unwrap_or(0);
                    figs[i].ops as f64 / figs[i].secs.max(1e-9)
                };
                for (i, side) in Side::ALL.iter().enumerate() {
                    let r = rate(*side);
                    let ratio = side.reference().map(|x| r / rate(x));
                    let h = &hs[i];
                    let q = |x: f64| h.value_at_quantile(x) as f64;
                    t.rows.push(vec![
                        n.to_string(),
                        side.name().into(),
                        fmt_rate(r),
                        ratio.map_or("-".into(), |x| fmt_ratio(Some(x))),
                        fmt_us(q(0.5)),
                        fmt_us(q(0.99)),
                        figs[i].ops.to_string(),
                    ]);
                    t.json_rows.push(
                        json!({"threads": n, "side": side.key(), "ops_per_s": r, "ratio": ratio,
                        "p50_ns": q(0.5), "p99_ns": q(0.99), "ops": figs[i].ops}),
                    );
                    if let Some(x) = ratio {
                        verdicts.push((n, *side, x));
                    }
                }
                if !floors.is_empty() {
                    let fl = floors.iter().sum::<f64>() / floors.len() as f64;
                    let (md, fs) = (rate(Side::MpoolDeferred), rate(Side::FsUnlink));
                    t.rows.push(vec![
                        n.to_string(),
                        "device floor: fio write+fdatasync".into(),
                        fmt_rate(fl),
                        fmt_ratio(Some(fl / fs)),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                    ]);
                    t.json_rows.push(json!({"threads": n, "side": "device_floor_fio", "ops_per_s": fl, "ratio": fl / fs}));
                    t.notes.push(format!(
                        "{n} thread(s): mpool (deferred) reaches {:.2} of the device floor; the floor is {:.2}x the filesystem, the most any design can gain here",
                        md / fl,
                        fl / fs
                    ));
                }
            }
        }
        for (n, side, x) in verdicts {
            let target = if side == Side::MpoolDeferred {
                format!(
                    " (target >= 3: {})",
                    if x >= 3.0 { "met" } else { "MISSED" }
                )
            } else {
                String::new()
            };
            t.notes.push(format!(
                "{n} thread(s): {} / {} = {x:.2}{target}",
                side.name(),
                side.reference().map_or("-", |r| r.name())
            ));
        }
        // Breakdown: the same pool through a counting device, briefly, one thread.
        eprintln!("churn: device operations per op ...");
        let file: DeviceRef = Arc::new(FileDevice::open(&path, &DevOpenOptions::default())?);
        let c = Arc::new(Counting::new(file));
        let pool = Pool::open_on(vec![c.clone() as Arc<dyn Device>], false)?;
        let env = Env {
            pool: &pool,
            buf: &buf,
            fsdir: &fsdir,
            seq: &seq,
        };
        for side in [Side::MpoolDeferred, Side::MpoolDurable] {
            let before = c.c.snap();
            let mut hb = histogram();
            let b = slice(&env, side, 1, Duration::from_secs(2), &mut hb)?;
            let d = c.c.snap().since(&before);
            let per = |x: u64| x as f64 / b.ops.max(1) as f64;
            t.notes.push(format!(
                "per op, {} (counting device, {} ops in 2 s, 1 thread): {:.2} write submits, {:.2} write requests, {:.0} KiB written, {:.2} flushes; {:.0} us in flushes + {:.0} us in writes of a {:.0} us op",
                side.name(), b.ops, per(d.submits), per(d.writes), per(d.write_bytes) / 1024.0, per(d.flushes), per(d.flush_ns) / 1e3, per(d.write_ns) / 1e3, b.secs * 1e6 / b.ops.max(1) as f64
            ));
            t.json_rows.push(json!({"side": side.key(), "breakdown_1_thread": {"device_writes": per(d.writes), "submits": per(d.submits),
                "bytes_written": per(d.write_bytes), "flushes": per(d.flushes), "flush_ns": per(d.flush_ns), "write_ns": per(d.write_ns)}}));
        }
        drop(pool);
        Ok(())
    })();
    common::forget_pool(&name, &path);
    let _ = std::fs::remove_dir_all(&fsdir);
    let _ = std::fs::remove_file(&fio_path);
    res?;
    Ok(t)
}
