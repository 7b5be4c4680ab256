//! `mpool-bench device`: mpool's Device layer against fio on the same file.
//!
//! Cases (each for the sync and the uring engine): sequential 1 MiB writes
//! with 32 in flight, and 4 KiB random reads at queue depth 1 and 32. All
//! I/O is O_DIRECT on one preallocated file; for every case mpool runs first
//! and fio immediately after, on the same file, region, block size and depth.

use crate::fio::{self, FioEngine, FioJob, Limit};
use crate::report::{Report, Row, Side};
use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use mpool::dev::{Device, FileDevice, OpenOptions};
use mpool::io::{AlignedBuf, EngineChoice, IoReq};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Options of the device workload.
#[derive(Debug, Clone, clap::Args)]
pub struct DeviceArgs {
    /// Directory for the test file (it is created there and removed after).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Size of the test file (e.g. 1G, 512M, 4096; see `mpool_cli::size`).
    #[arg(long, default_value = "1G", value_parser = mpool_cli::size::parse_size)]
    pub size: u64,
    /// Seconds per case and side.
    #[arg(long, default_value_t = 5)]
    pub runtime: u64,
    /// Engines to measure, comma separated: sync, uring.
    #[arg(long, default_value = "sync,uring", value_delimiter = ',')]
    pub engines: Vec<EngineChoice>,
    /// Measure mpool only (no side-by-side fio run, no ratios).
    #[arg(long)]
    pub no_fio: bool,
    /// Keep the test file afterwards (a later run reuses it without refilling).
    #[arg(long)]
    pub keep_file: bool,
}

/// One workload case.
#[derive(Debug, Clone, Copy)]
struct Case {
    name: &'static str,
    write: bool,
    random: bool,
    bs: usize,
    qd: usize,
}

const CASES: [Case; 3] = [
    Case {
        name: "seqwrite 1m qd32",
        write: true,
        random: false,
        bs: 1 << 20,
        qd: 32,
    },
    Case {
        name: "randread 4k qd1",
        write: false,
        random: true,
        bs: 4096,
        qd: 1,
    },
    Case {
        name: "randread 4k qd32",
        write: false,
        random: true,
        bs: 4096,
        qd: 32,
    },
];

use crate::common::Rng;

fn open(path: &Path, engine: EngineChoice, create: Option<u64>) -> Result<FileDevice> {
    let dev = FileDevice::open(
        path,
        &OpenOptions {
            engine,
            create_size: create,
            ..OpenOptions::default()
        },
    )
    .with_context(|| format!("opening {}", path.display()))?;
    if !dev.info().direct {
        bail!(
            "{} does not support O_DIRECT: choose another --dir",
            path.display()
        );
    }
    Ok(dev)
}

fn check(reqs: &mut [IoReq]) -> Result<()> {
    for r in reqs {
        r.take_result()
            .with_context(|| format!("{:?} at offset {}", r.kind, r.offset))?;
    }
    Ok(())
}

/// Write the whole file once so reads hit allocated blocks, not holes.
fn fill(dev: &FileDevice) -> Result<Duration> {
    let t = Instant::now();
    let bs = 1usize << 20;
    let size = dev.size();
    let mut off = 0u64;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    while off < size {
        let reqs: Vec<IoReq> = (0..32)
            .map_while(|_| {
                if off >= size {
                    return None;
                }
                let len = bs.min((size - off) as usize);
                let mut b = AlignedBuf::new(len, dev.sector() as usize);
                for c in b.chunks_mut(8) {
                    c.copy_from_slice(&rng.next().to_le_bytes()[..c.len()]);
                }
                let r = IoReq::write(off, b);
                off += len as u64;
                Some(r)
            })
            .collect();
        check(&mut dev.submit(reqs))?;
    }
    dev.flush()?;
    Ok(t.elapsed())
}

fn is_filled(path: &Path, size: u64) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).is_ok_and(|m| m.len() == size && m.blocks() * 512 >= size)
}

/// Run one case on mpool's device layer for `runtime`.
fn mpool_case(dev: &FileDevice, case: Case, runtime: Duration, seed: u64) -> Result<Side> {
    let size = dev.size();
    let blocks = size / case.bs as u64;
    if blocks < case.qd as u64 {
        bail!("--size {size} is too small for {}", case.name);
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000_000, 3)?;
    let mut rng = Rng(seed | 1);
    let mut bufs: Vec<AlignedBuf> = (0..case.qd)
        .map(|i| {
            let mut b = AlignedBuf::new(case.bs, dev.sector() as usize);
            b.fill(i as u8 ^ 0x5A);
            b
        })
        .collect();
    let mut next_block = 0u64;
    let mut ios = 0u64;
    let start = Instant::now();
    while start.elapsed() < runtime {
        let reqs: Vec<IoReq> = bufs
            .drain(..)
            .map(|b| {
                let blk = if case.random {
                    rng.next() % blocks
                } else {
                    let n = next_block;
                    next_block = (next_block + 1) % blocks;
                    n
                };
                let off = blk * case.bs as u64;
                if case.write {
                    IoReq::write(off, b)
                } else {
                    IoReq::read(off, b)
                }
            })
            .collect();
        let t = Instant::now();
        let mut done = dev.submit(reqs);
        let ns = t.elapsed().as_nanos() as u64;
        check(&mut done)?;
        hist.record(ns.max(1))?;
        ios += done.len() as u64;
        bufs.extend(done.into_iter().map(|r| r.buf));
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Side {
        iops: ios as f64 / secs,
        bw_bytes: (ios * case.bs as u64) as f64 / secs,
        p50_ns: hist.value_at_quantile(0.5) as f64,
        p99_ns: hist.value_at_quantile(0.99) as f64,
    })
}

fn fio_case(
    fio_bin: &Path,
    path: &Path,
    size: u64,
    case: Case,
    engine: FioEngine,
    runtime: u64,
) -> Result<Side> {
    let rw = match (case.write, case.random) {
        (true, false) => "write",
        (true, true) => "randwrite",
        (false, false) => "read",
        (false, true) => "randread",
    };
    let qd = if engine == FioEngine::IoUring {
        case.qd as u32
    } else {
        1
    };
    let job = FioJob::new(
        path,
        rw,
        case.bs as u64,
        qd,
        engine,
        size,
        Limit::Seconds(runtime),
    );
    let (_, d) = fio::run_moving(fio_bin, &job, case.write)?;
    Ok(Side {
        iops: d.iops,
        bw_bytes: d.bw_bytes,
        p50_ns: d.p50_ns,
        p99_ns: d.p99_ns,
    })
}

/// Facts that explain the numbers: the common ones, plus size and runtime.
fn context(path: &Path, args: &DeviceArgs, fio_bin: Option<&Path>) -> Vec<(String, String)> {
    let mut c = crate::common::context(path, fio_bin);
    let at = 1.min(c.len()); // after "file", where these rows always stood
    c.insert(at, ("size".into(), format!("{} MiB", args.size >> 20)));
    c.insert(
        at + 1,
        (
            "runtime".into(),
            format!("{} s per case and side", args.runtime),
        ),
    );
    c.push((
        "method".into(),
        "mpool then fio, same file/region/bs/depth, O_DIRECT; mpool QD32 = batches of 32 through Device::submit".into(),
    ));
    c
}

/// The mount (source, fstype) holding `path`: the longest matching mount point.
pub(crate) fn mount_of(path: &Path) -> Option<(String, String)> {
    let abs = std::fs::canonicalize(path).ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (src, mp, ty) = (f.next()?, f.next()?, f.next()?);
            abs.starts_with(mp)
                .then(|| (mp.len(), src.to_string(), ty.to_string()))
        })
        .max_by_key(|(n, _, _)| *n)
        .map(|(_, s, t)| (s, t))
}

/// Run the device workload and return its report.
pub fn run(args: &DeviceArgs) -> Result<Report> {
    let fio_bin = if args.no_fio {
        None
    } else {
        Some(fio::find_fio()?)
    };
    if args.engines.is_empty() {
        bail!("--engines is empty");
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let path = args.dir.join("mpool-bench-device.dat");
    let size = args.size / (1 << 20) * (1 << 20);
    if size < (64 << 20) {
        bail!("--size must be at least 64M");
    }
    if path.exists() && !is_filled(&path, size) {
        std::fs::remove_file(&path)?;
    }
    let runtime = Duration::from_secs(args.runtime.max(1));
    {
        let dev = open(&path, EngineChoice::Uring, Some(size))?;
        if !is_filled(&path, size) {
            eprintln!("filling {} ({} MiB) ...", path.display(), size >> 20);
            let t = fill(&dev)?;
            eprintln!("  filled in {:.1} s", t.as_secs_f64());
        }
    }
    let mut rep = Report {
        title: "mpool-bench device: mpool Device layer vs fio, same file".into(),
        context: context(&path, args, fio_bin.as_deref()),
        rows: Vec::new(),
    };
    let result = (|| -> Result<()> {
        for case in CASES {
            for &engine in &args.engines {
                let (name, fio_engine) = match engine {
                    EngineChoice::Sync => ("sync", FioEngine::Psync),
                    EngineChoice::Uring => ("uring", FioEngine::IoUring),
                    EngineChoice::Auto => ("auto", FioEngine::IoUring),
                };
                eprintln!("{} [{name}]: mpool ...", case.name);
                let dev = open(&path, engine, None)?;
                let m = mpool_case(&dev, case, runtime, 0xC0FFEE ^ case.bs as u64)?;
                drop(dev);
                let f = match &fio_bin {
                    Some(bin) => {
                        eprintln!(
                            "{} [{name}]: fio --ioengine={} ...",
                            case.name,
                            fio_engine.name()
                        );
                        Some(fio_case(
                            bin,
                            &path,
                            size,
                            case,
                            fio_engine,
                            args.runtime.max(1),
                        )?)
                    }
                    None => None,
                };
                let sync_batch = engine == EngineChoice::Sync && case.qd > 1;
                rep.rows.push(Row {
                    case: case.name.into(),
                    engine: name.into(),
                    fio_engine: if fio_engine == FioEngine::IoUring {
                        format!("io_uring qd{}", case.qd)
                    } else {
                        "psync qd1".into()
                    },
                    lat_unit: if case.qd > 1 {
                        format!(
                            "batch of {}{}",
                            case.qd,
                            if sync_batch { " (serial)" } else { "" }
                        )
                    } else {
                        "io".into()
                    },
                    mpool: m,
                    fio: f,
                });
            }
        }
        Ok(())
    })();
    if !args.keep_file {
        let _ = std::fs::remove_file(&path);
    }
    result?;
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpool_case_runs_on_a_small_file() {
        let dir = tempfile_dir();
        let path = dir.join("f");
        let dev = open(&path, EngineChoice::Sync, Some(64 << 20)).unwrap();
        fill(&dev).unwrap();
        for case in CASES {
            let s = mpool_case(&dev, case, Duration::from_millis(50), 1).unwrap();
            assert!(s.iops > 0.0 && s.p99_ns >= s.p50_ns, "{case:?} {s:?}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/tmp")
            .join(format!("mpool-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
