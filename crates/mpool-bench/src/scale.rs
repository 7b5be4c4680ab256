//! `mpool-bench scale`: a pool holding N committed mblocks (default one
//! million, 64 KiB mblocks on a sparse file, a few bytes each, created from
//! many threads), then closed; measured: the time `Pool::open` takes and the
//! memory the open pool needs per object.
//!
//! Both are measured in fresh child processes of this binary (`scale-open`),
//! so nothing of the creation stays in the heap: each child reads its VmRSS
//! and VmHWM, opens the pool, and reads them again. Memory per object is
//! (child peak RSS for the full pool − child peak RSS for an empty pool of
//! the same size) / N; the steady figure (VmRSS after open) is given too.

use crate::common;
use crate::report::Table;
use anyhow::{anyhow, bail, Context, Result};
use mpool::{CreateOptions, DeviceSpec, MediaClass, OpenOptions, Pool};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Options of the scale workload.
#[derive(Debug, Clone, clap::Args)]
pub struct ScaleArgs {
    /// Directory for the pool files (sparse).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Committed mblocks in the pool.
    #[arg(long, default_value_t = 1_000_000)]
    pub objects: u64,
    /// Threads creating them.
    #[arg(long, default_value_t = 32)]
    pub threads: usize,
    /// Open each pool this many times (fresh child each); the best open time counts.
    #[arg(long, default_value_t = 3)]
    pub opens: u32,
    /// Keep the full pool (a later run with the same --objects reuses it).
    #[arg(long)]
    pub keep: bool,
}

/// Arguments of the hidden child subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct OpenChildArgs {
    /// Pool name.
    #[arg(long)]
    pub name: String,
}

const ZONE: u64 = 64 << 10;

/// VmRSS and VmHWM of this process, in bytes.
fn rss() -> Result<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/self/status")?;
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .ok_or_else(|| anyhow!("{k} missing in /proc/self/status"))
    };
    Ok((get("VmRSS:")?, get("VmHWM:")?))
}

/// The child: open the pool, report time and memory as one JSON line.
pub fn open_child(a: &OpenChildArgs) -> Result<Value> {
    let (rss0, hwm0) = rss()?;
    let t = Instant::now();
    let pool = Pool::open(&a.name, &OpenOptions::default())?;
    let open_ns = t.elapsed().as_nanos() as u64;
    let (rss1, hwm1) = rss()?;
    let count = pool.object_count()?;
    drop(pool);
    Ok(
        json!({ "open_ns": open_ns, "objects": count, "rss_before": rss0, "hwm_before": hwm0, "rss_after": rss1, "hwm_after": hwm1 }),
    )
}

fn run_child(name: &str) -> Result<Value> {
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe)
        .args(["--json", "scale-open", "--name", name])
        .output()
        .context("running the scale-open child")?;
    if !out.status.success() {
        bail!(
            "scale-open child failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn pool_size(objects: u64) -> u64 {
    // Zones for the objects, 5 % spare, metadata (1/256 of the pool) and slack.
    (objects + objects / 8 + 1024) * ZONE
}

fn create(name: &str, path: &Path, objects: u64) -> Result<Pool> {
    Pool::create(
        name,
        &DeviceSpec {
            path: path.to_path_buf(),
            create_size: Some(pool_size(objects)),
            zone_size: ZONE,
        },
        &CreateOptions {
            force: true,
            ..CreateOptions::default()
        },
    )
    .with_context(|| format!("creating pool {name} on {}", path.display()))
}

fn fill(pool: &Pool, objects: u64, threads: usize) -> Result<f64> {
    let done = AtomicU64::new(0);
    let next = AtomicU64::new(0);
    let start = Instant::now();
    let res: Vec<Result<()>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads.max(1))
            .map(|_| {
                let pool = pool.clone();
                let (done, next) = (&done, &next);
                s.spawn(move || -> Result<()> {
                    while next.fetch_add(1, Ordering::Relaxed) < objects {
                        let id = pool.mblock_alloc(MediaClass::Capacity)?;
                        pool.mblock_write(id, &id.object_id().raw().to_le_bytes())?;
                        pool.mblock_commit(id)?;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        let mut last = Instant::now();
        while hs.iter().any(|h| !h.is_finished()) {
            std::thread::sleep(Duration::from_millis(100));
            if last.elapsed() >= Duration::from_secs(10) {
                last = Instant::now();
                let d = done.load(Ordering::Relaxed);
                let rate = d as f64 / start.elapsed().as_secs_f64();
                eprintln!(
                    "  {d}/{objects} committed, {rate:.0}/s, about {:.0} s left",
                    (objects - d.min(objects)) as f64 / rate.max(1.0)
                );
            }
        }
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("creator thread panicked")))
            })
            .collect()
    });
    for r in res {
        r?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Run the scale workload.
pub fn run(args: &ScaleArgs) -> Result<Table> {
    let dir = common::scratch_env(&args.dir)?;
    let n = args.objects;
    if n == 0 {
        bail!("--objects must be positive");
    }
    let full_path = dir.join(format!("mpool-bench-scale-{n}.dat"));
    let empty_path = dir.join("mpool-bench-scale-empty.dat");
    let full = format!("bench-scale-{n}");
    let empty = common::pool_name("scale-empty");
    common::forget_pool(&empty, &empty_path);
    let mut t = Table {
        title: format!("mpool-bench scale: Pool::open and memory with {n} committed mblocks"),
        context: common::context(&full_path, None),
        header: ["figure", "value", "target", "verdict"]
            .map(String::from)
            .to_vec(),
        ..Table::default()
    };
    let res = (|| -> Result<()> {
        // Reuse a kept pool with the same object count.
        let reuse = full_path.exists()
            && mpool::admin::rundir::find_active(&full)
                .ok()
                .flatten()
                .is_some()
            && Pool::open(&full, &OpenOptions::default())
                .and_then(|p| p.object_count())
                .ok()
                == Some(n + 1);
        let mut create_secs = None;
        if !reuse {
            common::forget_pool(&full, &full_path);
            eprintln!(
                "creating {n} mblocks of {} KiB ({} threads) in {} ...",
                ZONE >> 10,
                args.threads,
                full_path.display()
            );
            let pool = create(&full, &full_path, n)?;
            let base = pool.object_count()?; // the root MDC
            let secs = fill(&pool, n, args.threads)?;
            let c = pool.object_count()? - base;
            if c != n {
                bail!("pool holds {c} objects besides the root MDC, expected {n}");
            }
            eprintln!("  created in {secs:.1} s ({:.0}/s)", n as f64 / secs);
            create_secs = Some(secs);
        }
        drop(create(&empty, &empty_path, n)?);
        let mut fulls = Vec::new();
        let mut empties = Vec::new();
        for i in 1..=args.opens.max(1) {
            eprintln!("open {i}: empty pool, full pool (fresh child processes) ...");
            empties.push(run_child(&empty)?);
            fulls.push(run_child(&full)?);
        }
        let f = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        for v in &fulls {
            if f(v, "objects") != n + f(&empties[0], "objects") {
                bail!(
                    "the child saw {} objects, expected {n} and the root MDC",
                    f(v, "objects")
                );
            }
        }
        let best = |vs: &[Value], k: &str| vs.iter().map(|v| f(v, k)).min().unwrap_or(0);
        let open_full = best(&fulls, "open_ns") as f64 / 1e9;
        let open_empty = best(&empties, "open_ns") as f64 / 1e9;
        let hwm_full = best(&fulls, "hwm_after");
        let hwm_empty = best(&empties, "hwm_after");
        let rss_full = best(&fulls, "rss_after");
        let rss_empty = best(&empties, "rss_after");
        let peak_per = (hwm_full as f64 - hwm_empty as f64) / n as f64;
        let steady_per = (rss_full as f64 - rss_empty as f64) / n as f64;
        let all_opens: Vec<f64> = fulls.iter().map(|v| f(v, "open_ns") as f64 / 1e9).collect();
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" }.to_string();
        t.rows.push(vec![
            "Pool::open, full pool (best of runs)".into(),
            format!("{open_full:.3} s"),
            "< 2 s".into(),
            verdict(open_full < 2.0),
        ]);
        t.rows.push(vec![
            "Pool::open, empty pool of the same size".into(),
            format!("{open_empty:.3} s"),
            "-".into(),
            "-".into(),
        ]);
        t.rows.push(vec![
            "memory per object, peak (VmHWM delta / N)".into(),
            format!("{peak_per:.0} B"),
            "< 128 B".into(),
            verdict(peak_per < 128.0),
        ]);
        t.rows.push(vec![
            "memory per object, after open (VmRSS delta / N)".into(),
            format!("{steady_per:.0} B"),
            "< 128 B".into(),
            verdict(steady_per < 128.0),
        ]);
        t.rows.push(vec![
            "child peak RSS, full / empty".into(),
            format!("{} / {} MiB", hwm_full >> 20, hwm_empty >> 20),
            "-".into(),
            "-".into(),
        ]);
        if let Some(s) = create_secs {
            t.rows.push(vec![
                "creation (alloc+write+commit)".into(),
                format!("{s:.0} s, {:.0}/s", n as f64 / s),
                "-".into(),
                "-".into(),
            ]);
        }
        t.json_rows.push(json!({
            "objects": n, "open_s_best": open_full, "open_s_all": all_opens, "open_empty_s": open_empty,
            "peak_bytes_per_object": peak_per, "steady_bytes_per_object": steady_per,
            "hwm_full": hwm_full, "hwm_empty": hwm_empty, "rss_full": rss_full, "rss_empty": rss_empty,
            "create_s": create_secs, "children": { "full": fulls, "empty": empties },
        }));
        t.context.push((
            "pool".into(),
            format!(
                "{} GiB sparse file, {} KiB mblocks, each holding 8 bytes (one 4 KiB sector)",
                pool_size(n) >> 30,
                ZONE >> 10
            ),
        ));
        t.context.push((
            "opens".into(),
            format!(
                "full pool: {}",
                all_opens
                    .iter()
                    .map(|s| format!("{s:.3} s"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
        Ok(())
    })();
    common::forget_pool(&empty, &empty_path);
    if !args.keep {
        common::forget_pool(&full, &full_path);
    }
    res?;
    Ok(t)
}
