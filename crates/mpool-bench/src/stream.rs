//! `mpool-bench stream`: event streams against Kafka-style segment files
//! on the same filesystem, in the same run, alternating sides.
//!
//! - **appends**: 1/2/4/8 producers × record sizes; every append is
//!   acknowledged durable (mpool: `Stream::append`, sync, group commit;
//!   files: `write` under the log's lock (one append point, as Kafka's
//!   `Log.append`), then `fdatasync` per append, rolling to a new file at
//!   the same segment size). Appends/s and p50/p99/p99.9.
//! - **hot sealed reads**: one consumer reads every record of sealed
//!   segments twice; the second pass is timed (mpool: `Stream::iter`
//!   through mcache maps; files: `pread` of each frame through the page
//!   cache with an in-memory position index, as Kafka's offset index).
//! - **tail on tmpfs**: the same append loop with the pool's staging
//!   device (the tail) on a file in `--tmpfs`, 1 producer, 4 KiB records,
//!   against fio's 4 KiB O_DIRECT writes on a file of the same tmpfs
//!   (buffered where the kernel's tmpfs refuses O_DIRECT; said in the
//!   output). Both files are allocated before the timed writes (fio lays
//!   its file out, the pool's files are preallocated).
//! - **open**: time to open a stream with many sealed segments (pool
//!   already open; footers read, no record scanned); with `--open-bytes`,
//!   of a stream of that many bytes in sealed segments of `--segment`
//!   bytes, built on `--dir` (and removed after), also from a pool opened
//!   afresh.

use crate::common::{self, histogram};
use crate::fio::{self, FioEngine, FioJob, Limit};
use crate::report::{fmt_rate, fmt_us, Table};
use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use mpool::{CreateOptions, DeviceSpec, Durability, OpenOptions, Pool, StreamOptions};
use serde_json::json;
use std::fs::{File, OpenOptions as FsOpen};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Options of the stream workload.
#[derive(Debug, Clone, clap::Args)]
pub struct StreamArgs {
    /// Directory for the pool file and the segment files.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// A tmpfs directory for the staging (tail) device of the tmpfs run.
    #[arg(long, default_value = "/dev/shm")]
    pub tmpfs: PathBuf,
    /// Pool file size.
    #[arg(long, default_value = "2G", value_parser = mpool_cli::size::parse_size)]
    pub size: u64,
    /// Segment size (and the pool's mblock size).
    #[arg(long, default_value = "32M", value_parser = mpool_cli::size::parse_size)]
    pub segment: u64,
    /// Producer counts.
    #[arg(long, default_value = "1,2,4,8", value_delimiter = ',')]
    pub producers: Vec<usize>,
    /// Record sizes.
    #[arg(long, default_value = "100,1024,16384", value_delimiter = ',')]
    pub records: Vec<usize>,
    /// Milliseconds per cell and side, per round.
    #[arg(long, default_value_t = 1000)]
    pub ms: u64,
    /// Alternating rounds (mpool, files, mpool, files, ...).
    #[arg(long, default_value_t = 2)]
    pub rounds: u32,
    /// Bytes of records for the hot-read test.
    #[arg(long, default_value = "256M", value_parser = mpool_cli::size::parse_size)]
    pub read_bytes: u64,
    /// Sealed segments for the open test (of 1 MiB each, in a pool of its own).
    #[arg(long, default_value_t = 1024)]
    pub open_segments: u64,
    /// Open test of a stream of this many bytes in sealed segments of
    /// `--segment` bytes instead of `--open-segments` of 1 MiB.
    #[arg(long, value_parser = mpool_cli::size::parse_size)]
    pub open_bytes: Option<u64>,
    /// Tests to run: append, read, tmpfs, open.
    #[arg(long, default_value = "append,read,tmpfs,open", value_delimiter = ',')]
    pub tests: Vec<String>,
}

/// Kafka-style segment files: one append point under a lock, roll at the
/// segment size, `fdatasync` after each acknowledged append.
struct Files {
    dir: PathBuf,
    seg: u64,
    st: Mutex<FileTail>,
}

struct FileTail {
    file: File,
    n: u64,
    len: u64,
    /// Per record: (file number, position, length).
    index: Vec<(u64, u64, u32)>,
}

impl Files {
    fn new(dir: &Path, seg: u64) -> Result<Files> {
        std::fs::create_dir_all(dir)?;
        let file = Self::open(dir, 0)?;
        Ok(Files {
            dir: dir.to_path_buf(),
            seg,
            st: Mutex::new(FileTail {
                file,
                n: 0,
                len: 0,
                index: Vec::new(),
            }),
        })
    }
    fn path(dir: &Path, n: u64) -> PathBuf {
        dir.join(format!("{:020}.log", n))
    }
    fn open(dir: &Path, n: u64) -> Result<File> {
        Ok(FsOpen::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(Self::path(dir, n))?)
    }
    /// Append one record (length, CRC-32C, bytes) and make it durable.
    fn append(&self, rec: &[u8]) -> Result<u64> {
        let mut frame = Vec::with_capacity(rec.len() + 8);
        frame.extend_from_slice(&(rec.len() as u32).to_le_bytes());
        frame.extend_from_slice(&mpool::stream::format::record_crc(rec).to_le_bytes());
        frame.extend_from_slice(rec);
        let (file, off) = {
            let mut g = crate::common::lock(&self.st);
            if g.len + frame.len() as u64 > self.seg && g.len > 0 {
                g.file.sync_data()?;
                g.n += 1;
                g.file = Self::open(&self.dir, g.n)?;
                g.len = 0;
            }
            g.file.write_all(&frame)?;
            let at = (g.n, g.len, frame.len() as u32);
            g.index.push(at);
            g.len += frame.len() as u64;
            (g.file.try_clone()?, g.index.len() as u64 - 1)
        };
        file.sync_data()?;
        Ok(off)
    }
}

/// A pool named `name` on a new file `path` of `size` bytes with zones
/// (and segments) of `zone` bytes, written over if it exists.
fn file_pool(name: &str, path: &Path, size: u64, zone: u64, preallocate: bool) -> Result<Pool> {
    Pool::create(
        name,
        &DeviceSpec {
            path: path.to_path_buf(),
            create_size: Some(size),
            zone_size: zone,
        },
        &CreateOptions {
            force: true,
            preallocate,
            ..CreateOptions::default()
        },
    )
    .with_context(|| format!("creating the pool on {}", path.display()))
}

fn cell<F: Fn(usize, &[u8]) -> Result<()> + Sync>(
    producers: usize,
    rec: usize,
    dur: Duration,
    f: F,
) -> Result<(u64, Histogram<u64>, f64)> {
    let start = Instant::now();
    let (n, h) = common::in_threads(producers, "producer", |t| {
        let data = vec![(t * 7 + 1) as u8; rec];
        let mut h = histogram();
        let mut n = 0;
        let end = Instant::now() + dur;
        while Instant::now() < end {
            let t0 = Instant::now();
            f(t, &data)?;
            h.record(t0.elapsed().as_nanos().max(1) as u64)?;
            n += 1;
        }
        Ok((n, h))
    })?;
    Ok((n, h, start.elapsed().as_secs_f64()))
}

fn q(h: &Histogram<u64>, p: f64) -> f64 {
    h.value_at_quantile(p) as f64
}

pub fn run(a: &StreamArgs) -> Result<Table> {
    let dir = common::scratch_env(&a.dir)?;
    let name = common::pool_name("stream");
    let path = dir.join(format!("{name}.img"));
    let files_dir = dir.join(format!("{name}-files"));
    let mut t = Table {
        title: "event streams: mpool Stream vs Kafka-style segment files (same filesystem, alternating)".into(),
        context: common::context(&path, fio::find_fio().ok().as_deref()),
        header: ["test", "producers", "record", "side", "appends/s", "p50", "p99", "p99.9", "ratio"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ..Table::default()
    };
    t.context.push((
        "method".into(),
        format!(
            "{} ms per cell and side per round, {} rounds alternating mpool/files; every append acknowledged durable; segments of {} MiB",
            a.ms, a.rounds, a.segment >> 20
        ),
    ));
    let res = (|| -> Result<()> {
        let pool = file_pool(&name, &path, a.size, a.segment, true)?;
        let mut sn = 0;
        let run_appends = a.tests.iter().any(|t| t == "append");
        for &rec in a.records.iter().filter(|_| run_appends) {
            for &p in &a.producers {
                let mut m = (0u64, histogram(), 0f64);
                let mut f = (0u64, histogram(), 0f64);
                for _ in 0..a.rounds.max(1) {
                    sn += 1;
                    let sname = format!("s{sn}");
                    pool.stream_create(&sname, &StreamOptions::default())?;
                    let s = pool.stream_open(&sname)?;
                    let r = cell(p, rec, Duration::from_millis(a.ms), |_, d| {
                        s.append(d)?;
                        Ok(())
                    })?;
                    m.0 += r.0;
                    m.1.add(&r.1)?;
                    m.2 += r.2;
                    s.close()?;
                    pool.stream_delete(&sname)?;
                    let _ = std::fs::remove_dir_all(&files_dir);
                    let files = Files::new(&files_dir, a.segment)?;
                    let r = cell(p, rec, Duration::from_millis(a.ms), |_, d| {
                        files.append(d)?;
                        Ok(())
                    })?;
                    f.0 += r.0;
                    f.1.add(&r.1)?;
                    f.2 += r.2;
                }
                let (mr, fr) = (m.0 as f64 / m.2, f.0 as f64 / f.2);
                for (side, x, rate, ratio) in
                    [("mpool", &m, mr, Some(mr / fr)), ("files", &f, fr, None)]
                {
                    t.rows.push(vec![
                        "append".into(),
                        p.to_string(),
                        rec.to_string(),
                        side.into(),
                        fmt_rate(rate),
                        fmt_us(q(&x.1, 0.5)),
                        fmt_us(q(&x.1, 0.99)),
                        fmt_us(q(&x.1, 0.999)),
                        ratio.map_or("-".into(), |r| format!("{r:.2}")),
                    ]);
                    t.json_rows.push(json!({
                        "test": "append", "producers": p, "record": rec, "side": side,
                        "appends_per_s": rate, "p50_ns": q(&x.1, 0.5), "p99_ns": q(&x.1, 0.99),
                        "p999_ns": q(&x.1, 0.999),
                    }));
                }
            }
        }
        let _ = std::fs::remove_dir_all(&files_dir);
        if !a.tests.iter().any(|t| t == "read") {
            pool.close()?;
            return Ok(());
        }
        // Hot sealed reads: 1 KiB records.
        let rec = 1024usize;
        let n = (a.read_bytes / rec as u64).max(1);
        pool.stream_create("hot", &StreamOptions::default())?;
        let s = pool.stream_open("hot")?;
        let files = Files::new(&files_dir, a.segment)?;
        let data = vec![0x42u8; rec];
        let batch: Vec<&[u8]> = (0..256).map(|_| data.as_slice()).collect();
        let mut w = 0;
        while w < n {
            s.append_batch(&batch, Durability::Group)?;
            w += batch.len() as u64;
        }
        s.sync()?;
        s.roll()?;
        s.wait_sealed()?;
        {
            let mut g = crate::common::lock(&files.st);
            let mut frame = Vec::new();
            for _ in 0..w {
                frame.clear();
                frame.extend_from_slice(&(rec as u32).to_le_bytes());
                frame.extend_from_slice(&mpool::stream::format::record_crc(&data).to_le_bytes());
                frame.extend_from_slice(&data);
                if g.len + frame.len() as u64 > a.segment {
                    g.n += 1;
                    g.file = Files::open(&files_dir, g.n)?;
                    g.len = 0;
                }
                g.file.write_all(&frame)?;
                let at = (g.n, g.len, frame.len() as u32);
                g.index.push(at);
                g.len += frame.len() as u64;
            }
            g.file.sync_data()?;
        }
        let read_files = || -> Result<u64> {
            let g = crate::common::lock(&files.st);
            let mut open: Vec<File> = Vec::new();
            for k in 0..=g.n {
                open.push(File::open(Files::path(&files_dir, k))?);
            }
            let mut buf = vec![0u8; rec + 8];
            let mut sum = 0u64;
            for &(k, pos, len) in &g.index {
                let b = &mut buf[..len as usize];
                open[k as usize].read_exact_at(b, pos)?;
                let l = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let c = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
                anyhow::ensure!(
                    mpool::stream::format::record_crc(&b[8..8 + l]) == c,
                    "file record checksum"
                );
                sum += b[8..8 + l].to_vec().len() as u64;
            }
            Ok(sum)
        };
        let read_mpool = || -> Result<u64> {
            let mut sum = 0u64;
            for r in s.iter(0) {
                sum += r?.1.len() as u64;
            }
            Ok(sum)
        };
        read_mpool()?;
        read_files()?;
        let (mut mt, mut ft) = (0f64, 0f64);
        for _ in 0..a.rounds.max(1) {
            let t0 = Instant::now();
            read_mpool()?;
            mt += t0.elapsed().as_secs_f64();
            let t0 = Instant::now();
            read_files()?;
            ft += t0.elapsed().as_secs_f64();
        }
        let k = f64::from(a.rounds.max(1));
        let (mr, fr) = (w as f64 * k / mt, w as f64 * k / ft);
        for (side, rate, ratio) in [("mpool", mr, Some(mr / fr)), ("files", fr, None)] {
            t.rows.push(vec![
                "hot read".into(),
                "1".into(),
                rec.to_string(),
                side.into(),
                fmt_rate(rate),
                "-".into(),
                "-".into(),
                "-".into(),
                ratio.map_or("-".into(), |r| format!("{r:.2}")),
            ]);
            t.json_rows.push(json!({"test": "hot_read", "record": rec, "records": w, "side": side, "records_per_s": rate}));
        }
        t.notes.push(format!(
            "hot read: {w} records of {rec} B in {} sealed segments, read twice per round (the first read warms), records/s of the timed passes; mcache resident {} MiB",
            s.stat().segments.len(),
            mpool::mcache::stats().resident_bytes >> 20
        ));
        s.close()?;
        pool.stream_delete("hot")?;
        let _ = std::fs::remove_dir_all(&files_dir);
        pool.close()?;
        Ok(())
    })();
    common::forget_pool(&name, &path);
    let _ = std::fs::remove_dir_all(&files_dir);
    res?;
    if !a.tests.iter().any(|t| t == "tmpfs") {
    } else if let Err(e) = tmpfs_run(a, &dir, &mut t) {
        t.notes.push(format!("the tmpfs run failed: {e:#}"));
    }
    if !a.tests.iter().any(|t| t == "open") {
    } else if let Err(e) = if let Some(b) = a.open_bytes {
        open_big(a, b, &dir, &mut t)
    } else {
        open_run(a, &dir, &mut t)
    } {
        t.notes.push(format!("the open run failed: {e:#}"));
    }
    Ok(t)
}

/// The tail on tmpfs: 1 producer, 4 KiB, against fio on the same tmpfs.
fn tmpfs_run(a: &StreamArgs, dir: &Path, t: &mut Table) -> Result<()> {
    let name = common::pool_name("stream-tmpfs");
    let path = dir.join(format!("{name}.img"));
    let stg = a.tmpfs.join(format!("{name}-staging.img"));
    let fio_file = a.tmpfs.join(format!("{name}-fio.img"));
    let res = (|| -> Result<()> {
        let pool = Pool::create(
            &name,
            &DeviceSpec {
                path: path.clone(),
                create_size: Some(2 << 30),
                zone_size: a.segment,
            },
            &CreateOptions {
                force: true,
                preallocate: true,
                staging: Some(DeviceSpec {
                    path: stg.clone(),
                    create_size: Some(1 << 30),
                    zone_size: a.segment,
                }),
                ..CreateOptions::default()
            },
        )
        .context("creating the pool with a tmpfs staging device")?;
        let fio_bin = fio::find_fio().ok();
        let mut m = histogram();
        let mut fio_p50 = Vec::new();
        let mut cmd = String::new();
        let mut direct = true;
        for r in 0..a.rounds.max(1) {
            let sname = format!("tmpfs{r}");
            pool.stream_create(&sname, &StreamOptions::default())?;
            let s = pool.stream_open(&sname)?;
            // At most 300 ms: the sealed segments pile up on the capacity file.
            let x = cell(1, 4096, Duration::from_millis(a.ms.min(300)), |_, d| {
                s.append(d)?;
                Ok(())
            })?;
            m.add(&x.1)?;
            s.close()?;
            pool.stream_delete(&sname)?;
            if let Some(f) = &fio_bin {
                let mut job = FioJob::new(
                    &fio_file,
                    "write",
                    4096,
                    1,
                    FioEngine::Psync,
                    64 << 20,
                    Limit::Seconds((a.ms / 1000).max(1)),
                );
                job.direct = direct;
                let (res, d) = match fio::run_moving(f, &job, true) {
                    Ok(x) => x,
                    Err(_) if direct => {
                        // This kernel's tmpfs refuses O_DIRECT.
                        direct = false;
                        job.direct = false;
                        fio::run_moving(f, &job, true)?
                    }
                    Err(e) => return Err(e),
                };
                fio_p50.push(d.p50_ns);
                cmd = res.command;
            }
        }
        let fp = if fio_p50.is_empty() {
            None
        } else {
            Some(fio_p50.iter().sum::<f64>() / fio_p50.len() as f64)
        };
        t.rows.push(vec![
            "tail on tmpfs".into(),
            "1".into(),
            "4096".into(),
            "mpool".into(),
            "-".into(),
            fmt_us(q(&m, 0.5)),
            fmt_us(q(&m, 0.99)),
            fmt_us(q(&m, 0.999)),
            fp.map_or("-".into(), |f| {
                format!("+{:.1} us", (q(&m, 0.5) - f) / 1000.0)
            }),
        ]);
        if let Some(f) = fp {
            t.rows.push(vec![
                "tail on tmpfs".into(),
                "1".into(),
                "4096".into(),
                "fio write".into(),
                "-".into(),
                fmt_us(f),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
            t.notes.push(if direct {
                format!("tmpfs fio (O_DIRECT): {cmd}")
            } else {
                format!("tmpfs fio (buffered, this tmpfs refuses O_DIRECT): {cmd}")
            });
        }
        t.json_rows.push(json!({"test": "tmpfs_tail", "mpool_p50_ns": q(&m, 0.5), "mpool_p99_ns": q(&m, 0.99), "fio_p50_ns": fp}));
        pool.close()?;
        Ok(())
    })();
    common::forget_pool(&name, &path);
    let _ = std::fs::remove_file(&stg);
    let _ = std::fs::remove_file(&fio_file);
    res
}

/// Open time of a stream with many sealed segments.
fn open_run(a: &StreamArgs, dir: &Path, t: &mut Table) -> Result<()> {
    let name = common::pool_name("stream-open");
    let path = dir.join(format!("{name}.img"));
    let seg = 1u64 << 20;
    let res = (|| -> Result<()> {
        let size = (a.open_segments * 2 + 256) * seg;
        let pool = file_pool(&name, &path, size, seg, false)?;
        pool.stream_create("many", &StreamOptions::default())?;
        let s = pool.stream_open("many")?;
        let data = vec![7u8; 4096];
        let batch: Vec<&[u8]> = (0..64).map(|_| data.as_slice()).collect();
        while (s.stat().segments.len() as u64) < a.open_segments {
            s.append_batch(&batch, Durability::Group)?;
            s.wait_sealed()?;
        }
        s.sync()?;
        s.wait_sealed()?;
        let st = s.stat();
        s.close()?;
        pool.close()?;
        let mut best = f64::MAX;
        for _ in 0..3 {
            let pool = Pool::open(&name, &OpenOptions::default())?;
            let t0 = Instant::now();
            let s = pool.stream_open("many")?;
            let e = t0.elapsed().as_secs_f64();
            best = best.min(e);
            let after = s.stat().segments.len();
            anyhow::ensure!(
                after == st.segments.len(),
                "{after} segments after reopen, {} before",
                st.segments.len()
            );
            s.close()?;
            pool.close()?;
        }
        t.rows.push(vec![
            "open".into(),
            "-".into(),
            "-".into(),
            "mpool".into(),
            format!("{:.1} ms", best * 1e3),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ]);
        t.notes.push(format!(
            "open: stream_open of a stream with {} sealed segments ({} MiB sealed), best of 3 (pool already open)",
            st.segments.len(),
            st.sealed_bytes >> 20
        ));
        t.json_rows.push(json!({"test": "open", "segments": st.segments.len(), "sealed_bytes": st.sealed_bytes, "open_s": best}));
        Ok(())
    })();
    common::forget_pool(&name, &path);
    res
}

/// Open time of a stream of `--open-bytes` in sealed segments of
/// `--segment` bytes: built with grouped 1 MiB batches, then opened 3
/// times with the pool already open and 3 times with the pool opened
/// afresh (its devices read O_DIRECT: no page cache helps either).
fn open_big(a: &StreamArgs, bytes: u64, dir: &Path, t: &mut Table) -> Result<()> {
    let name = common::pool_name("stream-open");
    let path = dir.join(format!("{name}.img"));
    let seg = a.segment;
    let res = (|| -> Result<()> {
        let segs = bytes.div_ceil(seg);
        let size = (segs + 16) * seg + bytes / 16 + (256 << 20);
        let pool = file_pool(&name, &path, size, seg, false)?;
        pool.stream_create("big", &StreamOptions::default())?;
        let s = pool.stream_open("big")?;
        let data = vec![7u8; 4096];
        let batch: Vec<&[u8]> = (0..256).map(|_| data.as_slice()).collect();
        let t0 = Instant::now();
        while s.stat().sealed_bytes < bytes {
            for _ in 0..32 {
                s.append_batch(&batch, Durability::Group)?;
            }
        }
        s.sync()?;
        // Every rolled tail sealed before the count (close seals what is
        // left, and the reopened stream would count those too).
        s.wait_sealed()?;
        let st = s.stat();
        let build = t0.elapsed().as_secs_f64();
        s.close()?;
        pool.close()?;
        let (mut warm, mut cold) = (f64::MAX, f64::MAX);
        let mut first_cold = 0f64;
        for k in 0..3 {
            let t0 = Instant::now();
            let pool = Pool::open(&name, &OpenOptions::default())?;
            let t1 = Instant::now();
            let s = pool.stream_open("big")?;
            let e = t0.elapsed().as_secs_f64();
            let stream_only = t1.elapsed().as_secs_f64();
            if k == 0 {
                first_cold = e;
            }
            cold = cold.min(e);
            warm = warm.min(stream_only);
            let after = s.stat().segments.len();
            anyhow::ensure!(
                after == st.segments.len(),
                "{after} segments after reopen, {} before",
                st.segments.len()
            );
            drop(s);
            // The same stream again on the open pool (its state dropped).
            let t0 = Instant::now();
            let s = pool.stream_open("big")?;
            warm = warm.min(t0.elapsed().as_secs_f64());
            drop(s);
            pool.close()?;
        }
        t.rows.push(vec![
            "open".into(),
            "-".into(),
            "-".into(),
            "mpool".into(),
            format!("{:.1} ms", warm * 1e3),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ]);
        t.rows.push(vec![
            "pool+open".into(),
            "-".into(),
            "-".into(),
            "mpool".into(),
            format!("{:.1} ms", cold * 1e3),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ]);
        t.notes.push(format!(
            "open: a stream of {} sealed segments ({} MiB sealed, built in {build:.0} s); open: best stream_open (pool open); pool+open: best Pool::open + stream_open of 3 (first {:.1} ms)",
            st.segments.len(),
            st.sealed_bytes >> 20,
            first_cold * 1e3
        ));
        t.json_rows.push(json!({"test": "open", "segments": st.segments.len(), "sealed_bytes": st.sealed_bytes, "open_s": warm, "pool_open_s": cold, "first_pool_open_s": first_cold}));
        Ok(())
    })();
    common::forget_pool(&name, &path);
    res
}
