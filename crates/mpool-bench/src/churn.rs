//! `mpool-bench churn`: object churn. mpool: `mblock_alloc`, one 1 MiB
//! `mblock_write`, `mblock_commit`, `mblock_delete`, repeated. The user's
//! alternative on the same filesystem, in the same run: create a file,
//! write 1 MiB with O_DIRECT, fsync it and its directory, unlink it and
//! fsync the directory again (a durable delete). The two alternate in
//! rounds so both see the same background load.
//!
//! The pool lives on a preallocated file (every byte written once), the
//! stand-in for a raw device; the filesystem side allocates fresh blocks for
//! every file, as it must. A short extra pass opens the same pool through a
//! counting device and reports device writes and flushes per operation.

use crate::common::{self, histogram, Counting};
use crate::report::{fmt_rate, fmt_ratio, fmt_us, Table};
use anyhow::{bail, Context, Result};
use mpool::dev::{Device, DeviceRef, FileDevice, OpenOptions as DevOpenOptions};
use mpool::io::AlignedBuf;
use mpool::{CreateOptions, DeviceSpec, MediaClass, OpenOptions, Pool};
use serde_json::json;
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of the churn workload.
#[derive(Debug, Clone, clap::Args)]
pub struct ChurnArgs {
    /// Directory for the pool file and the filesystem side's files.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Size of the pool file (preallocated).
    #[arg(long, default_value = "1G", value_parser = crate::dev::parse_size)]
    pub size: u64,
    /// Object size (and the pool's mblock size).
    #[arg(long, default_value = "1M", value_parser = crate::dev::parse_size)]
    pub object: u64,
    /// Seconds per side, split over --rounds alternating slices.
    #[arg(long, default_value_t = 24)]
    pub runtime: u64,
    /// Alternations of mpool and the filesystem.
    #[arg(long, default_value_t = 4)]
    pub rounds: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Fig {
    ops: u64,
    secs: f64,
}

fn mpool_slice(
    pool: &Pool,
    data: &[u8],
    rt: Duration,
    h: &mut hdrhistogram::Histogram<u64>,
) -> Result<Fig> {
    let start = Instant::now();
    let mut ops = 0;
    while start.elapsed() < rt {
        let t = Instant::now();
        let id = pool.mblock_alloc(MediaClass::Capacity)?;
        pool.mblock_write(id, data)?;
        pool.mblock_commit(id)?;
        pool.mblock_delete(id)?;
        h.record((t.elapsed().as_nanos() as u64).max(1))?;
        ops += 1;
    }
    Ok(Fig {
        ops,
        secs: start.elapsed().as_secs_f64(),
    })
}

fn fs_slice(
    dir: &Path,
    buf: &AlignedBuf,
    rt: Duration,
    seq: &mut u64,
    h: &mut hdrhistogram::Histogram<u64>,
) -> Result<Fig> {
    let d = File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let start = Instant::now();
    let mut ops = 0;
    while start.elapsed() < rt {
        let p = dir.join(format!("obj-{seq}"));
        *seq += 1;
        let t = Instant::now();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_DIRECT)
            .open(&p)
            .with_context(|| format!("creating {}", p.display()))?;
        f.write_all_at(buf, 0)?;
        f.sync_all()?;
        d.sync_all()?;
        drop(f);
        std::fs::remove_file(&p)?;
        d.sync_all()?;
        h.record((t.elapsed().as_nanos() as u64).max(1))?;
        ops += 1;
    }
    Ok(Fig {
        ops,
        secs: start.elapsed().as_secs_f64(),
    })
}

/// Run the churn workload.
pub fn run(args: &ChurnArgs) -> Result<Table> {
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
    let rounds = args.rounds.max(1);
    let slice = Duration::from_secs_f64((args.runtime.max(1) as f64 / f64::from(rounds)).max(0.5));
    let mut t = Table {
        title: format!("mpool-bench churn: alloc+write {} KiB+commit+delete vs file create+write+fsync+unlink, same filesystem", obj >> 10),
        context: common::context(&path, None),
        header: ["side", "ops/s", "mpool/fs", "p50 us", "p99 us", "ops"].map(String::from).to_vec(),
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
    t.context.push(("filesystem side".into(), format!("{}: open(O_CREAT|O_EXCL|O_DIRECT), pwrite, fsync, fsync(dir), close, unlink, fsync(dir)", fsdir.display())));
    t.context.push((
        "runtime".into(),
        format!(
            "{} s per side in {rounds} alternating rounds",
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
        drop(pool);
        let pool = Pool::open(&name, &OpenOptions::default())?;
        let data: Vec<u8> = (0..obj).map(|i| (i % 253) as u8).collect();
        let mut buf = AlignedBuf::new(obj as usize, 4096);
        buf.copy_from_slice(&data);
        let (mut hm, mut hf) = (histogram(), histogram());
        let (mut m, mut f) = (Fig::default(), Fig::default());
        let mut seq = 0u64;
        for r in 1..=rounds {
            eprintln!("churn round {r}/{rounds}: mpool, filesystem ...");
            let a = mpool_slice(&pool, &data, slice, &mut hm)?;
            let b = fs_slice(&fsdir, &buf, slice, &mut seq, &mut hf)?;
            m.ops += a.ops;
            m.secs += a.secs;
            f.ops += b.ops;
            f.secs += b.secs;
        }
        drop(pool);
        // Breakdown: the same pool through a counting device, briefly.
        eprintln!("churn: device operations per op ...");
        let file: DeviceRef = Arc::new(FileDevice::open(&path, &DevOpenOptions::default())?);
        let c = Arc::new(Counting::new(file));
        let pool = Pool::open_on(vec![c.clone() as Arc<dyn Device>], false)?;
        let before = c.c.snap();
        let mut hb = histogram();
        let b = mpool_slice(&pool, &data, Duration::from_secs(2), &mut hb)?;
        let d = c.c.snap().since(&before);
        drop(pool);
        let (mr, fr) = (m.ops as f64 / m.secs, f.ops as f64 / f.secs);
        let ratio = mr / fr;
        let per = |x: u64| x as f64 / b.ops.max(1) as f64;
        t.rows.push(vec![
            "mpool".into(),
            fmt_rate(mr),
            fmt_ratio(Some(ratio)),
            fmt_us(hm.value_at_quantile(0.5) as f64),
            fmt_us(hm.value_at_quantile(0.99) as f64),
            m.ops.to_string(),
        ]);
        t.rows.push(vec![
            "filesystem".into(),
            fmt_rate(fr),
            "1.00".into(),
            fmt_us(hf.value_at_quantile(0.5) as f64),
            fmt_us(hf.value_at_quantile(0.99) as f64),
            f.ops.to_string(),
        ]);
        let q = |h: &hdrhistogram::Histogram<u64>, x: f64| h.value_at_quantile(x) as f64;
        t.json_rows.push(json!({"side": "mpool", "ops_per_s": mr, "p50_ns": q(&hm, 0.5), "p99_ns": q(&hm, 0.99), "ops": m.ops, "ratio": ratio,
            "per_op": {"device_writes": per(d.writes), "submits": per(d.submits), "bytes_written": per(d.write_bytes), "flushes": per(d.flushes), "flush_ns": per(d.flush_ns), "write_ns": per(d.write_ns)}}));
        t.json_rows.push(json!({"side": "filesystem", "ops_per_s": fr, "p50_ns": q(&hf, 0.5), "p99_ns": q(&hf, 0.99), "ops": f.ops}));
        t.notes.push(format!(
            "mpool/filesystem = {ratio:.2} (target >= 3: {})",
            if ratio >= 3.0 { "met" } else { "MISSED" }
        ));
        t.notes.push(format!(
            "per mpool op (counting device, {} ops in 2 s): {:.2} write submits, {:.2} write requests, {:.0} KiB written, {:.2} flushes; {:.0} us in flushes + {:.0} us in writes of a {:.0} us op",
            b.ops, per(d.submits), per(d.writes), per(d.write_bytes) / 1024.0, per(d.flushes), per(d.flush_ns) / 1e3, per(d.write_ns) / 1e3, b.secs * 1e6 / b.ops.max(1) as f64
        ));
        Ok(())
    })();
    common::forget_pool(&name, &path);
    let _ = std::fs::remove_dir_all(&fsdir);
    res?;
    Ok(t)
}
