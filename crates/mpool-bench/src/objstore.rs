//! `mpool-bench objstore`: the `object_store` backend (crates/
//! mpool-object-store) against object_store's own `LocalFileSystem` on
//! the same filesystem, in one run, at equal durability.
//!
//! `LocalFileSystem` does not sync by default: a put writes a staging
//! file and renames it, and a power cut can lose it. Here it runs with
//! `with_fsync(true)` (object_store 0.14.2: `File::sync_all` on the file,
//! then an fsync of its directory), so both sides' puts survive a power
//! cut when they return. Its gets go through the page cache; before each
//! get phase its files' pages are dropped (`POSIX_FADV_DONTNEED`), and
//! mpool's content cache (`StoreOptions::cache_bytes`, on by default:
//! mpool reads O_DIRECT, and keeps what it read recently in a cache of
//! its own) is emptied, so both sides read from the device. (The cache's
//! spare large read buffers, memory without content, stay: see
//! BENCHMARKS.md, issue #13's fourth pass.)
//!
//! Phases, each side in turn (mpool, then the filesystem, then again, the
//! best of the rounds kept):
//! - put and get of 4 KiB, 64 KiB, 1 MiB and 64 MiB objects from 1 and 8
//!   tasks, then the same gets again with the caches as the first left
//!   them (hot: the filesystem's page cache, mpool's content cache);
//!   mpool's objects deleted after each phase, not timed, the
//!   filesystem's at the end of the run (on a file system mounted with
//!   online discard, deleted files make the next fsyncs wait for their
//!   discards);
//! - `list` of 100,000 paths (and one `list_with_delimiter`);
//! - a slatedb load: N 100-byte puts (then a flush), then N/50 random gets
//!   (slatedb without its optional block cache: each get reads the store),
//!   then N/50 more after the filesystem's page cache and mpool's content
//!   cache are dropped.
//!
//! Each put phase also measures the device's floor in the same rounds:
//! fio writing each object once, O_DIRECT, with an fdatasync after it, one
//! job per task (`--no-fio` skips it), and with several tasks also one fio
//! io_uring job keeping that many writes in flight with one fdatasync per
//! that many (one flush shared by all tasks, group commit at its best);
//! the better of the two is the floor. A put that writes an object and
//! its metadata and makes both durable cannot beat it; the table
//! shows how far above the filesystem the floor lies and how close mpool
//! comes to it. For one task and an object in one mblock, a second floor:
//! the writes such a put makes by mpool's format (content and checksum
//! table, commit record, PUT record) as one batch through mpool's device
//! layer, then a flush, with none of mpool's code around them.
//!
//! The pool lives on a preallocated file in `--dir`; the filesystem side
//! in a directory next to it, the floor's file beside them. The pool's
//! file and the floor's stay for the next run (which reuses them): deleted
//! on a file system mounted with online discard, they would slow the
//! next run's filesystem side.

use crate::common;
use crate::report::{fmt_rate, fmt_ratio, Table};
use anyhow::{Context, Result};
use futures_util::StreamExt;
use mpool::dev::{Device, DeviceRef, FileDevice, OpenOptions as DevOpenOptions};
use mpool::{MediaClass, Pool};
use mpool_object_store::{MpoolStore, StoreOptions};
use object_store::local::LocalFileSystem;
use object_store::path::Path as OsPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Options of the object-store benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct ObjstoreArgs {
    /// Directory for the pool file and the filesystem side's files.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Size of the pool file (preallocated).
    #[arg(long, default_value = "4G", value_parser = mpool_cli::size::parse_size)]
    pub size: u64,
    /// The pool's mblock size (a 1 MiB object needs a little more than
    /// 1 MiB: its checksum table).
    #[arg(long, default_value = "2M", value_parser = mpool_cli::size::parse_size)]
    pub mblock_size: u64,
    /// Object sizes of the put/get phases.
    #[arg(long, value_delimiter = ',', default_value = "4K,64K,1M,64M", value_parser = mpool_cli::size::parse_size)]
    pub objects: Vec<u64>,
    /// Task counts of the put/get phases.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub tasks: Vec<usize>,
    /// Bytes put per phase (the object count is this over the object
    /// size, at least one per task and at most --max-count).
    #[arg(long, default_value = "256M", value_parser = mpool_cli::size::parse_size)]
    pub bytes: u64,
    /// Most objects per phase.
    #[arg(long, default_value_t = 1000)]
    pub max_count: u64,
    /// Paths of the list phase (0: skip).
    #[arg(long, default_value_t = 100_000)]
    pub list_paths: u64,
    /// Keys of the slatedb load (0: skip).
    #[arg(long, default_value_t = 1_000_000)]
    pub slatedb_keys: u64,
    /// Skip the put/get phases.
    #[arg(long)]
    pub no_put_get: bool,
    /// Rounds (alternating sides); the best of them is reported.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Cap of mpool's content cache (`StoreOptions::cache_bytes`; 0
    /// turns it off). Default: the store's own, a quarter of the memory
    /// the process may use, shrinking under memory pressure.
    #[arg(long, value_parser = mpool_cli::size::parse_size)]
    pub cache_bytes: Option<u64>,
    /// Do not cache the buffers of reads over 4 MiB
    /// (`StoreOptions::cache_large_reads(false)`): the third pass's
    /// behaviour, for an A/B.
    #[arg(long)]
    pub no_cache_large: bool,
    /// Put/get phases: send every call's blocking work to tokio's
    /// blocking pool (the store's default), as before session 15, for an
    /// A/B. Without it they run it in place (`StoreOptions::run_in_place`:
    /// each of their tasks makes one call at a time); the slatedb load
    /// always uses the default.
    #[arg(long)]
    pub pooled: bool,
    /// Skip the device floor of the put phases (fio writing each object
    /// with an fdatasync after it, O_DIRECT, one job per task).
    #[arg(long)]
    pub no_fio: bool,
    /// Seconds of each floor measurement.
    #[arg(long, default_value_t = 2)]
    pub fio_secs: u64,
    /// Print, for each get pass, each task's time and the kernel's
    /// memory counters that moved (`/proc/vmstat`: direct reclaim,
    /// compaction, huge-page faults) to stderr.
    #[arg(long)]
    pub trace: bool,
    /// Before the run, wait until five minutes have passed since this
    /// bench last deleted its LocalFileSystem files in --dir: ext4
    /// without a journal does not reuse a deleted file's inode for five
    /// minutes, and the filesystem side's creates are slower meanwhile
    /// (without this flag such a run is marked in its notes).
    #[arg(long)]
    pub wait_quiet: bool,
}

/// Seconds after a deletion during which ext4 without a journal skips the
/// deleted inodes when it allocates one (`recently_deleted` in
/// `fs/ext4/ialloc.c`), which slows LocalFileSystem's creates.
const QUIET_SECS: u64 = 300;

/// The file in --dir whose modification time says when this bench last
/// deleted its filesystem side's files there.
const DELETED_MARK: &str = "objstore-bench.deleted";

/// Record that the filesystem side's files in `dir` were deleted now.
fn mark_deleted(dir: &Path) {
    let _ = std::fs::write(
        dir.join(DELETED_MARK),
        "mpool-bench objstore deleted its LocalFileSystem files here at this file's modification time\n",
    );
}

/// Seconds since this bench last deleted its filesystem side's files in
/// `dir`, when that is less than [`QUIET_SECS`] ago.
fn since_deletions(dir: &Path) -> Option<u64> {
    let at = std::fs::metadata(dir.join(DELETED_MARK))
        .and_then(|m| m.modified())
        .ok()?;
    // A time in the future (a clock set back) counts as now.
    let secs = at.elapsed().map_or(0, |d| d.as_secs());
    (secs < QUIET_SECS).then_some(secs)
}

/// The `/proc/vmstat` counters `--trace` prints: the memory work a read
/// into fresh memory can wait on.
const VMSTAT: &[&str] = &[
    "allocstall_normal",
    "allocstall_movable",
    "pgscan_direct",
    "pgsteal_direct",
    "pgscan_kswapd",
    "compact_stall",
    "compact_fail",
    "compact_success",
    "thp_fault_alloc",
    "thp_fault_fallback",
    "pgfault",
    "pgmajfault",
];

fn vmstat() -> Vec<u64> {
    let text = std::fs::read_to_string("/proc/vmstat").unwrap_or_default();
    VMSTAT
        .iter()
        .map(|name| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        })
        .collect()
}

/// The fields of a block device's `stat` file `--trace` prints (index,
/// name); sectors are 512 bytes.
const DISKSTAT: &[(usize, &str)] = &[
    (0, "reads"),
    (2, "read_sectors"),
    (3, "read_ms"),
    (4, "writes"),
    (6, "write_sectors"),
    (7, "write_ms"),
    // Time with at least one request in flight: near the phase's time, the
    // device was never idle.
    (9, "busy_ms"),
    (11, "discards"),
    (13, "discard_sectors"),
    (14, "discard_ms"),
    (15, "flushes"),
    (16, "flush_ms"),
];

/// The `stat` file of the block device under `dir` (its whole disk when
/// it is a partition), if there is one.
fn diskstat_path(dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir).ok()?.dev();
    let (maj, min) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let p = PathBuf::from(format!("/sys/dev/block/{maj}:{min}/stat"));
    p.exists().then_some(p)
}

/// The memory, disk and CPU counters `--trace` compares.
struct Counters {
    vm: Vec<u64>,
    disk: Vec<u64>,
    cpu: Vec<u64>,
}

/// The CPU figures `--trace` prints: this process' user and system time
/// and context switches (`getrusage`), the whole machine's busy and idle
/// time (`/proc/stat`, all CPUs; busy includes this process), and the
/// KiB of free memory reported to the hypervisor (in a VM with free page
/// reporting).
const CPU: &[&str] = &[
    "self_user_ms",
    "self_sys_ms",
    "self_vcsw",
    "self_ivcsw",
    "machine_busy_ms",
    "machine_idle_ms",
    "machine_iowait_ms",
    "reported_kib",
];

fn cpu() -> Vec<u64> {
    // SAFETY: getrusage only writes the struct it is given, which lives
    // on this stack frame.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
    let f = crate::common::proc_stat_cpu();
    // user nice system idle iowait irq softirq steal; 100 ticks a second.
    let g = |i: usize| f.get(i).copied().unwrap_or(0) * 10;
    // Free memory the guest kernel handed back to its hypervisor (free
    // page reporting, a virtio-balloon feature): touching it again makes
    // the host fault it back in.
    let reported = std::fs::read_to_string("/sys/module/page_reporting/parameters/reported_kib")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    vec![
        ms(ru.ru_utime),
        ms(ru.ru_stime),
        ru.ru_nvcsw as u64,
        ru.ru_nivcsw as u64,
        g(0) + g(1) + g(2) + g(5) + g(6) + g(7),
        g(3),
        g(4),
        reported,
    ]
}

fn counters(disk: Option<&Path>) -> Counters {
    let fields: Vec<u64> = disk
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| {
            t.split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    Counters {
        cpu: cpu(),
        vm: vmstat(),
        disk: DISKSTAT
            .iter()
            .map(|&(i, _)| fields.get(i).copied().unwrap_or(0))
            .collect(),
    }
}

/// The counters that moved from `before` to now.
fn counters_delta(before: &Counters, disk: Option<&Path>) -> String {
    let now = counters(disk);
    let names = VMSTAT
        .iter()
        .copied()
        .chain(DISKSTAT.iter().map(|d| d.1))
        .chain(CPU.iter().copied());
    now.vm
        .iter()
        .chain(&now.disk)
        .chain(&now.cpu)
        .zip(before.vm.iter().chain(&before.disk).chain(&before.cpu))
        .zip(names)
        .filter(|((a, b), _)| a != b)
        .map(|((a, b), n)| format!("{n} +{}", a.saturating_sub(*b)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `list_with_delimiter` calls timed together in each round.
const DELIM_CALLS: u32 = 50;

fn open_pool(path: &Path) -> Result<Pool> {
    let dev: DeviceRef = Arc::new(FileDevice::open(path, &DevOpenOptions::default())?);
    Ok(Pool::open_on(vec![dev], false)?)
}

fn mpool_store(path: &Path, name: &str, a: &ObjstoreArgs) -> Result<MpoolStore> {
    let mut o = StoreOptions::default()
        .name(name)
        .catalog_bytes(64 << 20)
        .cache_large_reads(!a.no_cache_large)
        .run_in_place(!a.pooled);
    if let Some(n) = a.cache_bytes {
        o = o.cache_bytes(n);
    }
    Ok(MpoolStore::open(open_pool(path)?, &o)?)
}

fn payload(size: u64, seed: u64) -> bytes::Bytes {
    let mut v = vec![0u8; size as usize];
    let mut x = seed | 1;
    for c in v.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        c.copy_from_slice(&b[..c.len()]);
    }
    bytes::Bytes::from(v)
}

/// Drop the page cache of every file under `dir` (clean pages: the puts
/// synced them).
fn drop_cache(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            drop_cache(&p);
        } else if let Ok(f) = std::fs::File::open(&p) {
            let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed);
        }
    }
}

/// Put `count` objects of `size` bytes from `tasks` tasks; returns seconds.
async fn put_phase(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    size: u64,
    count: u64,
    tasks: usize,
) -> Result<f64> {
    let data = payload(size, size);
    let t = Instant::now();
    let mut hs = Vec::new();
    for k in 0..tasks as u64 {
        let (s, data, prefix) = (store.clone(), data.clone(), prefix.to_string());
        hs.push(tokio::spawn(async move {
            let mut i = k;
            while i < count {
                s.put(
                    &OsPath::from(format!("{prefix}/{i:08}")),
                    data.clone().into(),
                )
                .await?;
                i += tasks as u64;
            }
            Ok::<_, object_store::Error>(())
        }));
    }
    for h in hs {
        h.await??;
    }
    Ok(t.elapsed().as_secs_f64())
}

async fn get_phase(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    size: u64,
    count: u64,
    tasks: usize,
    trace: Option<(&str, Option<&Path>)>,
) -> Result<f64> {
    let before = trace.map(|(_, disk)| counters(disk));
    let t = Instant::now();
    let mut hs = Vec::new();
    for k in 0..tasks as u64 {
        let (s, prefix) = (store.clone(), prefix.to_string());
        hs.push(tokio::spawn(async move {
            let mut i = k;
            let mut gets = Vec::new();
            while i < count {
                let g = Instant::now();
                let b = s
                    .get(&OsPath::from(format!("{prefix}/{i:08}")))
                    .await?
                    .bytes()
                    .await?;
                if b.len() as u64 != size {
                    return Err(anyhow::anyhow!("short read: {} of {size}", b.len()));
                }
                gets.push(g.elapsed().as_secs_f64() * 1e3);
                i += tasks as u64;
            }
            Ok(gets)
        }));
    }
    let mut per_task = Vec::new();
    for h in hs {
        per_task.push(h.await??);
    }
    let took = t.elapsed().as_secs_f64();
    if let (Some((what, disk)), Some(before)) = (trace, before) {
        let tasks: Vec<String> = per_task
            .iter()
            .map(|g| {
                let sum: f64 = g.iter().sum();
                let max = g.iter().copied().fold(0f64, f64::max);
                format!("{sum:.0} ms ({} gets, slowest {max:.1} ms)", g.len())
            })
            .collect();
        eprintln!(
            "    trace {what}: {:.1} ms; tasks: {}; counters: {}",
            took * 1e3,
            tasks.join(", "),
            counters_delta(&before, disk)
        );
    }
    Ok(took)
}

async fn delete_all(store: &Arc<dyn ObjectStore>, prefix: &str) -> Result<()> {
    let paths = store
        .list(Some(&OsPath::from(prefix)))
        .map(|m| m.map(|m| m.location))
        .boxed();
    let mut s = store.delete_stream(paths);
    while let Some(r) = s.next().await {
        r?;
    }
    Ok(())
}

struct Side {
    name: &'static str,
    store: Arc<dyn ObjectStore>,
    fs_dir: Option<PathBuf>,
    mpool: Option<MpoolStore>,
}

impl Side {
    /// Drop what the side keeps in memory of its objects' content: the
    /// filesystem's page cache of its files, mpool's content cache.
    fn drop_caches(&self) {
        if let Some(d) = &self.fs_dir {
            drop_cache(d);
        }
        if let Some(m) = &self.mpool {
            m.clear_cache();
        }
    }
}

/// The device time of the writes a put of a one-mblock object makes, by
/// mpool's format, without any of mpool's code around them; one put at a
/// time, on `path` (the floor's file), for `secs` seconds, through
/// mpool's device layer, each put's writes as one batch, then one flush.
/// Puts per second. Up to `MBLOCK_HOLD_MAX` (a sealed commit): one write
/// of the content, its checksum table and the seal (`size` rounded up to
/// 4 KiB, plus 8 KiB). Larger: the content with its table, the pool's
/// commit record and the catalog's PUT record (4 KiB each, in two logs
/// far from the content).
///
/// The content goes as mpool writes it: with its table in one buffer up
/// to `HOLD_MAX` (256 KiB), else in chunks of 1 MiB and the table in a
/// write of its own; from huge-page write buffers where mpool takes them
/// (`mpool::io::write_buf`), else from the heap.
fn writes_floor(path: &Path, size: u64, secs: u64) -> Result<f64> {
    use mpool::io::{AlignedBuf, IoReq};
    let dev = FileDevice::open(path, &DevOpenOptions::default())?;
    let file = dev.info().size;
    let content = size.div_ceil(4096) * 4096 + 4096;
    // Two log regions in the first 16 MiB, the zones after them.
    let zones = (file.saturating_sub(16 << 20) / content).min(256);
    anyhow::ensure!(
        zones > 0,
        "{} is too small for {size}-byte objects",
        path.display()
    );
    const HOLD_MAX: u64 = 256 << 10;
    const CHUNK: u64 = 1 << 20;
    let buf = |len: u64| {
        mpool::io::write_buf(len as usize, 4096)
            .unwrap_or_else(|| AlignedBuf::new(len as usize, 4096))
    };
    // The content's writes: (offset in the zone, length).
    let pieces: Vec<(u64, u64)> = if content - 4096 <= HOLD_MAX {
        vec![(0, content)]
    } else {
        let data = content - 4096;
        let mut v: Vec<(u64, u64)> = (0..data.div_ceil(CHUNK))
            .map(|i| (i * CHUNK, (data - i * CHUNK).min(CHUNK)))
            .collect();
        v.push((data, 4096));
        v
    };
    // A put of at most MBLOCK_HOLD_MAX bytes is a sealed commit: one
    // write of the content, its table and the seal (a sector each here),
    // no record. A larger one writes the content, then its commit record
    // and its PUT record in one batch.
    let sealed = size <= mpool::MBLOCK_HOLD_MAX as u64;
    let pieces = if sealed {
        vec![(0, content + 4096)]
    } else {
        pieces
    };
    // The buffers are reused, as mpool reuses its write buffers.
    let mut bufs: Vec<AlignedBuf> = pieces.iter().map(|&(_, l)| buf(l)).collect();
    if !sealed {
        bufs.push(AlignedBuf::new(4096, 4096));
        bufs.push(AlignedBuf::new(4096, 4096));
    }
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed().as_secs_f64() < secs as f64 {
        let rec = (n % 1024) * 4096;
        let zone = (16 << 20) + (n % zones) * content;
        let mut at: Vec<u64> = pieces.iter().map(|&(o, _)| zone + o).collect();
        if !sealed {
            at.extend([rec, (8 << 20) + rec]);
        }
        let reqs = at
            .iter()
            .zip(bufs.drain(..))
            .map(|(&o, b)| IoReq::write(o, b));
        for r in dev.submit_depth(reqs.collect(), usize::MAX) {
            if let Some(Err(e)) = &r.result {
                anyhow::bail!("write to {}: {e}", path.display());
            }
            bufs.push(r.buf);
        }
        dev.flush()?;
        n += 1;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// Size of the floor's file: room for each task's region of the largest
/// object, at least 1 GiB (one size for the usual runs, so that the next
/// run reuses the file rather than delete and write it again).
fn floor_file_size(a: &ObjstoreArgs) -> u64 {
    let largest = a.objects.iter().copied().max().unwrap_or(0);
    let tasks = a.tasks.iter().copied().max().unwrap_or(1).max(1) as u64;
    largest.saturating_mul(tasks).saturating_mul(2).max(1 << 30)
}

/// Run the benchmark.
pub fn run(a: &ObjstoreArgs) -> Result<Table> {
    let fio_bin = if a.no_fio || a.no_put_get {
        None
    } else {
        Some(crate::fio::find_fio().context("the put phases' device floor (or --no-fio)")?)
    };
    let dir = common::scratch_env(&a.dir)?;
    let img = dir.join("objstore-bench.img");
    common::prefill(&img, a.size)?;
    let floor_img = dir.join("objstore-bench-floor.img");
    let floor_size = floor_file_size(a);
    if fio_bin.is_some() {
        common::prefill(&floor_img, floor_size)?;
    }
    {
        let dev: DeviceRef = Arc::new(FileDevice::open(&img, &DevOpenOptions::default())?);
        Pool::format_on(
            "objbench",
            &[(dev, MediaClass::Capacity, a.mblock_size)],
            "",
        )?;
    }
    let fs_dir = dir.join("objstore-bench-fs");
    // Left by a run that did not finish.
    if std::fs::remove_dir_all(&fs_dir).is_ok() {
        mark_deleted(&dir);
    }
    let mut too_soon = since_deletions(&dir);
    if let Some(secs) = too_soon {
        let left = QUIET_SECS - secs;
        if a.wait_quiet {
            eprintln!(
                "waiting {left} s: this bench deleted its LocalFileSystem files in {} {secs} s ago \
                 (ext4 without a journal skips deleted inodes for {QUIET_SECS} s, slowing the filesystem side)",
                dir.display()
            );
            std::thread::sleep(std::time::Duration::from_secs(left));
            too_soon = None;
        } else {
            eprintln!(
                "warning: this bench deleted its LocalFileSystem files in {} {secs} s ago; on ext4 \
                 without a journal the filesystem side is slower for {left} s more (--wait-quiet waits)",
                dir.display()
            );
        }
    }
    std::fs::create_dir_all(&fs_dir)?;
    let rt = tokio::runtime::Runtime::new()?;
    let mps = mpool_store(&img, "bench", a)?;
    eprintln!("  mpool content cache at open: {:?}", mps.cache_stats());
    let mp: Arc<dyn ObjectStore> = Arc::new(mps.clone());
    let fs: Arc<dyn ObjectStore> = Arc::new(
        LocalFileSystem::new_with_prefix(&fs_dir)
            .context("LocalFileSystem")?
            .with_fsync(true),
    );
    let sides = [
        Side {
            name: "mpool",
            store: mp,
            fs_dir: None,
            mpool: Some(mps),
        },
        Side {
            name: "LocalFileSystem+fsync",
            store: fs,
            fs_dir: Some(fs_dir.clone()),
            mpool: None,
        },
    ];
    let disk = if a.trace { diskstat_path(&dir) } else { None };
    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    let mut notes = Vec::new();
    // `floor`: the device floor of a put phase (fio), where measured.
    let mut row = |what: String,
                   unit: &str,
                   m: f64,
                   f: f64,
                   floor: Option<f64>,
                   rows: &mut Vec<Vec<String>>| {
        let ratio = if f > 0.0 { Some(m / f) } else { None };
        let floor = floor.filter(|x| *x > 0.0);
        let floor_fs = floor.filter(|_| f > 0.0).map(|x| x / f);
        let of_floor = floor.map(|x| m / x);
        rows.push(vec![
            what.clone(),
            format!("{} {unit}", fmt_rate(m)),
            format!("{} {unit}", fmt_rate(f)),
            fmt_ratio(ratio),
            floor.map_or("-".into(), |x| format!("{} {unit}", fmt_rate(x))),
            fmt_ratio(floor_fs),
            fmt_ratio(of_floor),
        ]);
        json_rows.push(json!({
            "what": what, "unit": unit, "mpool": m, "filesystem": f, "ratio": ratio,
            "floor": floor, "floor_over_filesystem": floor_fs, "mpool_over_floor": of_floor,
        }));
    };
    let sizes: &[u64] = if a.no_put_get { &[] } else { &a.objects };
    for &size in sizes {
        for &tasks in &a.tasks {
            let count = (a.bytes / size).clamp(tasks as u64, a.max_count.max(tasks as u64));
            let mut best = [[0f64; 3]; 2]; // [side][put, get, get again] ops/s
            let mut best_floor: Option<f64> = None;
            let mut best_writes: Option<f64> = None;
            for r in 0..a.rounds {
                // The device floor, in the same rounds: fio writing each
                // object once and syncing it, one job per task.
                if let Some(bin) = &fio_bin {
                    let f =
                        crate::churn::floor(bin, &floor_img, floor_size, size, tasks, a.fio_secs)?;
                    eprintln!(
                        "  fio floor {size} B, {tasks} job(s), round {r}: {f:.0} durable writes/s"
                    );
                    best_floor = Some(best_floor.map_or(f, |b: f64| b.max(f)));
                    // Several tasks: also the floor of one flush shared by
                    // all their writes; the better of the two counts.
                    if tasks > 1 {
                        let job = crate::fio::FioJob::group_commit_writes(
                            &floor_img, floor_size, size, tasks, a.fio_secs,
                        )?;
                        let g = crate::fio::run_moving(bin, &job, true)?.1.iops;
                        eprintln!(
                            "  fio group-commit floor {size} B, {tasks} in flight, round {r}: \
                             {g:.0} durable writes/s"
                        );
                        best_floor = best_floor.map(|b| b.max(g));
                    }
                    // One put at a time, of an object in one mblock.
                    if tasks == 1
                        && size > mpool_object_store::DEFAULT_INLINE_MAX
                        && size + 4096 <= a.mblock_size
                    {
                        let w = writes_floor(&floor_img, size, a.fio_secs)?;
                        eprintln!(
                            "  a put's own writes {size} B, round {r}: {w:.0} batches + flushes/s"
                        );
                        best_writes = Some(best_writes.map_or(w, |b: f64| b.max(w)));
                    }
                }
                for (i, s) in sides.iter().enumerate() {
                    let prefix = format!("p{size}-{tasks}-{r}");
                    let before = a.trace.then(|| counters(disk.as_deref()));
                    let put = rt.block_on(put_phase(&s.store, &prefix, size, count, tasks))?;
                    if let Some(b) = &before {
                        eprintln!(
                            "    trace {} {size} B, {tasks} task(s), put: {:.1} ms; counters: {}",
                            s.name,
                            put * 1e3,
                            counters_delta(b, disk.as_deref())
                        );
                    }
                    s.drop_caches();
                    let trace = |pass: &str| {
                        a.trace
                            .then(|| format!("{} {size} B, {tasks} task(s), {pass}", s.name))
                    };
                    let get = rt.block_on(get_phase(
                        &s.store,
                        &prefix,
                        size,
                        count,
                        tasks,
                        trace("cold").as_deref().map(|t| (t, disk.as_deref())),
                    ))?;
                    // The same objects again, as the first pass left the
                    // caches (the page cache, mpool's content cache).
                    let hot = rt.block_on(get_phase(
                        &s.store,
                        &prefix,
                        size,
                        count,
                        tasks,
                        trace("hot").as_deref().map(|t| (t, disk.as_deref())),
                    ))?;
                    let before = a.trace.then(|| (counters(disk.as_deref()), Instant::now()));
                    // The filesystem side's files stay until the end of
                    // the run: deleted, they would make its next fsyncs
                    // wait for their discards (a file system mounted with
                    // online discard; BENCHMARKS.md, session 12).
                    if s.mpool.is_some() {
                        rt.block_on(delete_all(&s.store, &prefix))?;
                    }
                    if let Some((b, t)) = &before {
                        eprintln!(
                            "    trace {} {size} B, {tasks} task(s), delete: {:.1} ms; counters: {}",
                            s.name,
                            t.elapsed().as_secs_f64() * 1e3,
                            counters_delta(b, disk.as_deref())
                        );
                    }
                    best[i][0] = best[i][0].max(count as f64 / put);
                    best[i][1] = best[i][1].max(count as f64 / get);
                    best[i][2] = best[i][2].max(count as f64 / hot);
                    eprintln!(
                        "  {} {size} B x {count}, {tasks} task(s), round {r}: put {:.0}/s, get {:.0}/s, again {:.0}/s",
                        s.name,
                        count as f64 / put,
                        count as f64 / get,
                        count as f64 / hot
                    );
                }
            }
            let label = mpool_cli_size(size);
            row(
                format!("put {label}, {tasks} task(s)"),
                "obj/s",
                best[0][0],
                best[1][0],
                best_floor,
                &mut rows,
            );
            if let Some(w) = best_writes {
                row(
                    format!("  a put's own writes, {label}"),
                    "obj/s",
                    best[0][0],
                    best[1][0],
                    Some(w),
                    &mut rows,
                );
            }
            row(
                format!("get {label}, {tasks} task(s)"),
                "obj/s",
                best[0][1],
                best[1][1],
                None,
                &mut rows,
            );
            row(
                format!("get {label} again (hot), {tasks} task(s)"),
                "obj/s",
                best[0][2],
                best[1][2],
                None,
                &mut rows,
            );
        }
    }
    if a.list_paths > 0 {
        let mut best = [0f64; 2];
        let mut best_d = [0f64; 2];
        for (i, s) in sides.iter().enumerate() {
            // Populate (not timed; the filesystem side without fsync, which
            // the listing does not depend on).
            let store: Arc<dyn ObjectStore> = match &s.fs_dir {
                Some(d) => Arc::new(LocalFileSystem::new_with_prefix(d)?),
                None => s.store.clone(),
            };
            let n = a.list_paths;
            rt.block_on(async {
                let mut hs = Vec::new();
                for k in 0..8u64 {
                    let st = store.clone();
                    hs.push(tokio::spawn(async move {
                        let mut i = k;
                        while i < n {
                            st.put(
                                &OsPath::from(format!("list/d{:03}/o{i:08}", i % 100)),
                                "x".into(),
                            )
                            .await?;
                            i += 8;
                        }
                        Ok::<_, object_store::Error>(())
                    }));
                }
                for h in hs {
                    h.await??;
                }
                Ok::<_, anyhow::Error>(())
            })?;
            for _ in 0..a.rounds {
                let t = Instant::now();
                let got = rt.block_on(async {
                    let mut n = 0u64;
                    let mut l = s.store.list(Some(&OsPath::from("list")));
                    while let Some(m) = l.next().await {
                        m?;
                        n += 1;
                    }
                    Ok::<_, object_store::Error>(n)
                })?;
                anyhow::ensure!(got == n, "{} listed {got} of {n}", s.name);
                best[i] = best[i].max(n as f64 / t.elapsed().as_secs_f64());
                // Several calls: one lasts about a millisecond.
                let t = Instant::now();
                for _ in 0..DELIM_CALLS {
                    let d =
                        rt.block_on(s.store.list_with_delimiter(Some(&OsPath::from("list"))))?;
                    anyhow::ensure!(d.common_prefixes.len() == 100.min(n as usize));
                }
                best_d[i] = best_d[i].max(DELIM_CALLS as f64 / t.elapsed().as_secs_f64());
            }
            if s.mpool.is_some() {
                rt.block_on(delete_all(&store, "list"))?;
            }
        }
        row(
            format!("list {} paths", a.list_paths),
            "paths/s",
            best[0],
            best[1],
            None,
            &mut rows,
        );
        row(
            "list_with_delimiter (100 prefixes)".into(),
            "calls/s",
            best_d[0],
            best_d[1],
            None,
            &mut rows,
        );
    }
    if a.slatedb_keys > 0 {
        let mut put = [0f64; 2];
        let mut get = [0f64; 2];
        let mut cold = [0f64; 2];
        for (i, s) in sides.iter().enumerate() {
            // slatedb may join calls in one task: the store's default.
            let store = match &s.mpool {
                Some(m) => Arc::new(m.in_place(false)) as Arc<dyn ObjectStore>,
                None => s.store.clone(),
            };
            let (p, g, c) = rt.block_on(slatedb_load(store, a.slatedb_keys, s))?;
            eprintln!(
                "  slatedb on {}: {p:.0} puts/s, {g:.0} gets/s, {c:.0} gets/s after the cache drop",
                s.name
            );
            if let Some(m) = &s.mpool {
                eprintln!(
                    "  mpool content cache after the slatedb load: {:?}",
                    m.cache_stats()
                );
            }
            put[i] = p;
            get[i] = g;
            cold[i] = c;
        }
        row(
            format!("slatedb: {} puts of 100 B + flush", a.slatedb_keys),
            "puts/s",
            put[0],
            put[1],
            None,
            &mut rows,
        );
        row(
            format!(
                "slatedb: {} random gets (caches warm)",
                (a.slatedb_keys / 50).max(1)
            ),
            "gets/s",
            get[0],
            get[1],
            None,
            &mut rows,
        );
        row(
            format!(
                "slatedb: {} random gets (caches dropped)",
                (a.slatedb_keys / 50).max(1)
            ),
            "gets/s",
            cold[0],
            cold[1],
            None,
            &mut rows,
        );
    }
    let put_counts = sides
        .iter()
        .find_map(|s| s.mpool.as_ref())
        .map(|m| m.stats());
    drop(sides);
    let _ = std::fs::remove_dir_all(&fs_dir);
    mark_deleted(&dir);
    notes.push("ratio = mpool / LocalFileSystem (with fsync); higher is better for mpool".into());
    if let Some(secs) = too_soon {
        notes.push(format!(
            "this run began {secs} s after this bench last deleted its LocalFileSystem files in the \
             same directory: on ext4 without a journal, deleted inodes are skipped for {QUIET_SECS} s \
             and the filesystem side's puts are slower then, which flatters mpool's ratios \
             (--wait-quiet waits; BENCHMARKS.md, session 13)"
        ));
    }
    if fio_bin.is_some() {
        notes.push(format!(
            "fio floor = the device's durable writes of one object each: fio psync, O_DIRECT, \
             an fdatasync after each write, one job per task on its own region of a {} file in \
             the same directory, in the same rounds (best kept): what a store that writes an \
             object and syncs it, with nothing else to write, reaches per task on this device; \
             with several tasks the better of that and the group-commit floor (one fio io_uring \
             job keeping as many object writes in flight as there are tasks, one fdatasync per \
             that many writes: one flush shared by every task's write, which is what group \
             commit can reach at best); floor/fs = how far above the \
             filesystem that floor lies, mpool/floor = how close mpool comes to it; \
             \"a put's own writes\": the same columns against the device time of the writes a \
             put of a one-mblock object makes by mpool's format (up to 256 KiB, a sealed commit: \
             one write of the content, its checksum table and the seal; larger, the content and \
             its table, the commit record, the PUT record in one batch; through mpool's device \
             layer, then one flush, one put at a time, on the floor's file)",
            mpool_cli_size(floor_size)
        ));
    }
    notes.push(format!(
        "objects of at most {} bytes are kept inline in mpool's catalog (one log append per put)",
        mpool_object_store::DEFAULT_INLINE_MAX
    ));
    if let Some(Ok(st)) = put_counts {
        notes.push(format!(
            "mpool's puts of content in mblocks: {} sealed (one write and one flush), {} the usual \
             way (a synced PUT record, then the commits: objects of several mblocks, or no \
             reserved mblock ready)",
            st.sealed_puts, st.unsealed_puts
        ));
    }
    let d = mpool_object_store::dispatch_stats();
    notes.push(format!(
        "mpool's calls: {} ran their blocking work in place on the polling worker thread, {} on \
         tokio's blocking pool ({})",
        d.in_place,
        d.pooled,
        if a.pooled {
            "--pooled: every call to the pool"
        } else {
            "put/get phases in place (StoreOptions::run_in_place), work of at most 1 MiB; the \
             slatedb load on the pool, the store's default"
        }
    ));
    notes.push(if a.cache_bytes != Some(0) {
        format!(
            "mpool's content cache: {} cap, reads up to {} through it in {} chunks, larger reads {}, \
             filled by reads only; emptied where the filesystem's page cache is dropped (before \
             each get phase, before the second slatedb pass)",
            a.cache_bytes.map_or_else(
                || format!("auto (1/{} of the memory limit)", mpool_object_store::AUTO_SHARE),
                mpool_cli_size
            ),
            mpool_cli_size(mpool_object_store::DEFAULT_CACHE_MAX_READ),
            mpool_cli_size(mpool_object_store::CACHE_CHUNK),
            if a.no_cache_large {
                "not cached"
            } else {
                "cached whole"
            },
        )
    } else {
        "mpool's content cache: off (--cache-bytes 0)".into()
    });
    Ok(Table {
        title: "object_store: mpool vs LocalFileSystem (fsync on), same filesystem, one run".into(),
        context: common::context(&img, None),
        header: vec![
            "phase".into(),
            "mpool".into(),
            "LocalFileSystem+fsync".into(),
            "ratio".into(),
            "fio floor".into(),
            "floor/fs".into(),
            "mpool/floor".into(),
        ],
        rows,
        json_rows,
        notes,
    })
}

fn mpool_cli_size(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{} MiB", b >> 20)
    } else {
        format!("{} KiB", b >> 10)
    }
}

/// slatedb on `store`: `n` 100-byte puts (the last awaited durable, then
/// a memtable flush), then `n / 50` random gets, then (after `side`'s
/// caches are dropped: the page cache of the filesystem side's files,
/// mpool's content cache) `n / 50` other random gets. Returns (puts/s,
/// gets/s, gets/s after the drop).
async fn slatedb_load(store: Arc<dyn ObjectStore>, n: u64, side: &Side) -> Result<(f64, f64, f64)> {
    use slatedb::config::{FlushOptions, FlushType};
    let db = slatedb::Db::builder("slatedb-bench", store).build().await?;
    let value = vec![7u8; 100];
    let t = Instant::now();
    let mut last = None;
    for i in 0..n {
        last = Some(
            db.put(
                format!("key{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                &value,
            )
            .await?,
        );
    }
    if let Some(h) = last {
        h.await_durable().await?;
    }
    db.flush_with_options(FlushOptions {
        flush_type: FlushType::MemTable,
    })
    .await?;
    let puts = n as f64 / t.elapsed().as_secs_f64();
    let gets_n = (n / 50).max(1);
    let mut rates = [0f64; 2];
    for (pass, seed) in [0x5eedu64, 0xc01d].into_iter().enumerate() {
        if pass == 1 {
            side.drop_caches();
        }
        let mut x = seed;
        let t = Instant::now();
        for _ in 0..gets_n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = x % n;
            let got = db
                .get(format!("key{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
                .await?;
            anyhow::ensure!(got.is_some(), "slatedb lost key {i}");
        }
        rates[pass] = gets_n as f64 / t.elapsed().as_secs_f64();
    }
    db.close().await?;
    Ok((puts, rates[0], rates[1]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_run_knows_how_long_ago_the_last_one_deleted_its_files() {
        let dir = std::env::temp_dir().join(format!(
            "mpool-bench-quiet-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Never deleted here: nothing to wait for.
        assert_eq!(since_deletions(&dir), None);
        mark_deleted(&dir);
        assert!(since_deletions(&dir).is_some_and(|s| s < 5));
        // Deleted long enough ago.
        let f = std::fs::File::options()
            .write(true)
            .open(dir.join(DELETED_MARK))
            .unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(QUIET_SECS + 100))
            .unwrap();
        assert_eq!(since_deletions(&dir), None);
        // Deleted 200 s ago: 200 s of the quiet time gone.
        f.set_modified(SystemTime::now() - Duration::from_secs(200))
            .unwrap();
        assert!(since_deletions(&dir).is_some_and(|s| (200..205).contains(&s)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
