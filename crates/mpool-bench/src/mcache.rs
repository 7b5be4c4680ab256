//! `mpool-bench mcache`: an LSM engine's read path under a memory limit,
//! over mcache maps and over one mmap'ed file per object, and the costs of
//! the primitives underneath.
//!
//! Data: `--objects` committed mblocks (as large as a `--mblock-size`
//! zone holds, in whole pages: 1 MiB zones give objects of 1 MiB less a
//! page), and as many files of the same bytes, on the same filesystem.
//! Objects are grouped into collections of `--per-map` (one mcache map, or
//! 100 mmap'ed files, each). Per side, a fresh child process (optionally
//! in a cgroup v1 memory cgroup capped at `--cap-pct` of the data, created
//! and removed by the bench as root) runs `--threads` foreground threads
//! reading 100-1000 bytes inside 4 KiB pages picked by a Zipfian
//! distribution (theta 0.99) over (object age, page): the hot set is the
//! newest objects; and one compaction thread that, at `--compact-mibps`,
//! reads the oldest collection sequentially, writes its objects again as
//! new ones (published as a new collection: the hot set moves on) and
//! deletes the inputs. Sides:
//!
//! 1. `mcache`: mcache maps (advice cold: 4 KiB per miss), reaper on;
//!    compaction with `mblock_read` (O_DIRECT) and `mblock_write` + commit,
//!    each new collection loaded ahead before it is published
//!    (`--preload-newest`).
//! 2. `noreaper`: the same with the reaper off.
//! 3. `files`: one file per object, `mmap` + `MADV_RANDOM`; compaction
//!    with buffered `read` / `write` + `fdatasync`; kernel reclaim only.
//!
//! Both sides' compaction reads and writes in `--compact-chunk` pieces
//! (64 KiB). Each side runs `--warmup` then `--runtime` seconds, sides alternating,
//! `--rounds` times. The last line: `mcache/files=R reaper_on/off=Q` (the
//! best-of-rounds throughput of side 1 over side 3's, and over side 2's).
//!
//! Primitives (in this process, no cap): a resident read through a guard
//! and through a plain slice (ns) against a resident read of an mmap'ed
//! file; a miss (one 4 KiB page, us) against a major fault of an mmap'ed
//! file (`MADV_RANDOM`, its pages dropped with `POSIX_FADV_DONTNEED`) and
//! against fio's 4 KiB QD1 random read (psync, O_DIRECT) on the pool file;
//! map + drop of 100 objects against open + mmap + munmap + close of 100
//! files.

use crate::common::{self, histogram, Rng};
use crate::fio::{self, FioEngine, FioJob, Limit};
use crate::report::{fmt_rate, fmt_us, Table};
use anyhow::{anyhow, bail, Context, Result};
use hdrhistogram::Histogram;
use mpool::{mcache, Advice, CreateOptions, DeviceSpec, MblockId, MediaClass, OpenOptions, Pool};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

const PAGE: usize = 4096;

/// Options of the mcache workload.
#[derive(Debug, Clone, clap::Args)]
pub struct McacheArgs {
    /// Directory for the pool file and the object files (removed after).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Objects.
    #[arg(long, default_value_t = 4096)]
    pub objects: usize,
    /// Mblock (zone) size; objects fill it in whole pages.
    #[arg(long, default_value = "1M", value_parser = mpool_cli::size::parse_size)]
    pub mblock_size: u64,
    /// Objects per map (and per collection of files).
    #[arg(long, default_value_t = 100)]
    pub per_map: usize,
    /// Foreground reader threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Seconds of warm-up per side.
    #[arg(long, default_value_t = 15)]
    pub warmup: u64,
    /// Seconds measured per side.
    #[arg(long, default_value_t = 20)]
    pub runtime: u64,
    /// Rounds (each runs every side once).
    #[arg(long, default_value_t = 2)]
    pub rounds: u32,
    /// Memory cap of the side's cgroup, in percent of the data.
    #[arg(long, default_value_t = 12.5)]
    pub cap_pct: f64,
    /// Run the sides without a cgroup cap.
    #[arg(long)]
    pub no_cap: bool,
    /// Compaction rate (MiB/s read and written).
    #[arg(long, default_value_t = 16)]
    pub compact_mibps: u64,
    /// Skip the primitive costs.
    #[arg(long)]
    pub no_primitives: bool,
    /// Skip the experiment (primitives only).
    #[arg(long)]
    pub no_experiment: bool,
    /// The sides to run, in order, each round.
    #[arg(long, value_delimiter = ',', default_value = "mcache,noreaper,files")]
    pub sides: Vec<String>,
    /// Instead of the benchmark: the floor analysis. Regenerate the
    /// foreground's page-access trace (same generator, seeds, collections
    /// and compaction schedule, at each of `--floor-rates`) and simulate
    /// ideal caches of the cap's size offline; prints misses per read and
    /// the reads/s they allow at the given costs.
    #[arg(long)]
    pub floor: bool,
    /// Foreground reads per second the floor simulation assumes (the
    /// compaction moves the hot set on every 12.5 s whatever the rate, so
    /// the rate sets the reads per move).
    #[arg(long, value_delimiter = ',', default_value = "600000,1000000,1600000")]
    pub floor_rates: Vec<f64>,
    /// Pages of an object in the floor simulation (255: 1 MiB zones).
    #[arg(long, default_value_t = 255)]
    pub floor_obj_pages: usize,
    /// A resident read's cost (ns) for the floor's reads/s.
    #[arg(long, default_value_t = 250.0)]
    pub floor_res_ns: f64,
    /// A miss's cost (us) for the floor's reads/s.
    #[arg(long, default_value_t = 45.0)]
    pub floor_miss_us: f64,
    /// Also simulate Belady's OPT (memory: 12 bytes per read simulated).
    #[arg(long)]
    pub floor_opt: bool,
    /// Print each side's per-second trace (reads, misses, evictions, TLB
    /// shootdowns, CPU of its threads, the machine's CPU and steal).
    #[arg(long)]
    pub trace: bool,
    /// The mcache sides' advice for the newest collection (the hot set;
    /// the older ones are cold): hot, warm, cold or will-need.
    #[arg(long, default_value = "cold", value_parser = parse_advice)]
    pub newest_advice: Advice,
    /// How many of the newest collections get `--newest-advice`.
    #[arg(long, default_value_t = 1)]
    pub newest_colls: usize,
    /// How a Zipfian rank picks the page inside its object. `stable` (the
    /// default since 2026-11-30, session 9): the rank's place inside its
    /// object through a fixed permutation, so every page is read and an
    /// object keeps its hot pages as it ages: the workload. `hash`
    /// (the default of every figure before): a multiplicative hash of the
    /// rank, which reaches only ~23 of an object's 255 pages and a
    /// disjoint set of them each time the object ages by one collection
    /// (every hot-set move reloads the whole working set); kept to compare
    /// with the earlier figures.
    #[arg(long, default_value = "stable", value_parser = ["hash", "stable"])]
    pub page_map: String,
    /// How a reader finds a collection. `snapshot` (the default since
    /// 2026-11-30 06:10): each reader keeps its own copy of the list of
    /// collections and takes it again only when compaction published a
    /// new one (one load of a counter per read, no shared write). `lock`
    /// (every figure before): the list's `RwLock` read-locked and the
    /// collection's `Arc` cloned per read: four atomic read-modify-writes
    /// on two lines both readers write.
    #[arg(long, default_value = "snapshot", value_parser = ["snapshot", "lock"])]
    pub catalog: String,
    /// The mcache sides load each new collection whole before they
    /// publish it (`McacheMap::touch_range` then `load` of every object,
    /// in `--compact-chunk` pieces, in the compaction thread: "will need"
    /// done ahead, as the files side's buffered writes leave the new files
    /// in the page cache): `on` (the default since session 10) or `off`
    /// (every figure before).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub preload_newest: String,
    /// The compaction's reads and writes, in pieces of this many bytes
    /// (both sides; an object's size or more: a whole object per call,
    /// as every figure before session 10). 64 KiB pieces keep a reader's
    /// 4 KiB miss from queueing behind a whole object's read or write on
    /// the device (the reads' p99.99; BENCHMARKS.md, mcache, session 10:
    /// 64 KiB, 128 KiB and 1 MiB measured).
    #[arg(long, default_value = "64K", value_parser = mpool_cli::size::parse_size)]
    pub compact_chunk: Option<u64>,
    /// The compaction thread's I/O priority (both sides): `none` (the
    /// default: the process'), `be7` (best effort, lowest level) or `idle`.
    #[arg(long, default_value = "none", value_parser = ["none", "be7", "idle"])]
    pub compact_ioprio: String,
}

/// The multiplier of `--page-map stable` (coprime with `pages`: a
/// permutation of the pages), 0 for `hash`.
fn page_mult(pages: usize, stable: bool) -> usize {
    if !stable {
        return 0;
    }
    let mut m = pages * 5 / 8 + 1;
    while gcd(m, pages.max(1)) != 1 {
        m += 1;
    }
    m
}

/// The page of rank `rank` inside its object (see `--page-map`; `mult`
/// from [`page_mult`]).
fn page_of(rank: usize, pages: usize, mult: usize) -> usize {
    if mult > 0 {
        (rank % pages) * mult % pages
    } else {
        (rank.wrapping_mul(0x9E37_79B1) >> 7) % pages
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn parse_advice(s: &str) -> std::result::Result<Advice, String> {
    match s {
        "hot" => Ok(Advice::Hot),
        "warm" => Ok(Advice::Warm),
        "cold" => Ok(Advice::Cold),
        "will-need" => Ok(Advice::WillNeed),
        _ => Err(format!("{s}: hot, warm, cold or will-need")),
    }
}

fn advice_name(a: Advice) -> &'static str {
    match a {
        Advice::Hot => "hot",
        Advice::Warm => "warm",
        Advice::Cold => "cold",
        Advice::WillNeed => "will-need",
    }
}

/// Arguments of the hidden child subcommand (one side, one run).
#[derive(Debug, Clone, clap::Args)]
pub struct SideArgs {
    #[arg(long)]
    pub side: String,
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long)]
    pub pool: String,
    #[arg(long)]
    pub objects: usize,
    #[arg(long)]
    pub obj_len: usize,
    #[arg(long)]
    pub per_map: usize,
    #[arg(long)]
    pub threads: usize,
    #[arg(long)]
    pub warmup: u64,
    #[arg(long)]
    pub runtime: u64,
    #[arg(long)]
    pub compact_mibps: u64,
    #[arg(long)]
    pub cgroup: Option<PathBuf>,
    #[arg(long)]
    pub seed: u64,
    #[arg(long)]
    pub trace: bool,
    #[arg(long, value_parser = parse_advice)]
    pub newest_advice: Advice,
    #[arg(long)]
    pub newest_colls: usize,
    #[arg(long)]
    pub page_map: String,
    #[arg(long)]
    pub catalog: String,
    #[arg(long)]
    pub preload_newest: String,
    #[arg(long)]
    pub compact_chunk: Option<u64>,
    #[arg(long)]
    pub compact_ioprio: String,
}

/// Object `seq`'s bytes (any object: a checksum of a read proves nothing,
/// the bytes are verified by the pool; the files side reads the same).
fn content(seq: u64, len: usize) -> Vec<u8> {
    let mut r = Rng(seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&r.next().to_le_bytes());
    }
    v.truncate(len);
    v
}

fn file_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("obj-{seq:08}"))
}

/// The state a side leaves for the next run of the same kind: the live
/// objects, oldest first, and the next sequence number.
fn ids_path(dir: &Path) -> PathBuf {
    dir.join("mcache-ids.txt")
}
fn files_path(dir: &Path) -> PathBuf {
    dir.join("mcache-files.txt")
}

fn save_list(path: &Path, items: &[String]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, items.join("\n"))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn load_list(path: &Path) -> Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// YCSB's Zipfian generator over `0..n` (0 the most popular).
struct Zipf {
    n: f64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

impl Zipf {
    fn new(n: u64, theta: f64) -> Zipf {
        let zeta = |k: u64| (1..=k).map(|i| 1.0 / (i as f64).powf(theta)).sum::<f64>();
        let zetan = zeta(n);
        let zeta2 = zeta(2);
        Zipf {
            n: n as f64,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta: (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan),
        }
    }
    fn next(&self, r: &mut Rng) -> u64 {
        let u = (r.next() >> 11) as f64 / (1u64 << 53) as f64;
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        ((self.n * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64).min(self.n as u64 - 1)
    }
}

/// An mmap'ed file (MADV_RANDOM), unmapped on drop.
struct FileMap {
    ptr: usize,
    len: usize,
}

impl FileMap {
    /// Pages of the file in the page cache (mincore(2)).
    fn resident_pages(&self) -> u64 {
        let mut v = vec![0u8; self.len.div_ceil(PAGE)];
        // SAFETY: the range is this mapping; `v` has one byte per page.
        let r = unsafe { libc::mincore(self.ptr as *mut libc::c_void, self.len, v.as_mut_ptr()) };
        if r != 0 {
            return 0;
        }
        v.iter().filter(|&&b| b & 1 != 0).count() as u64
    }

    fn open(path: &Path) -> Result<FileMap> {
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let len = f.metadata()?.len() as usize;
        // SAFETY: a new shared read-only mapping of an open file; the file
        // is never written while mapped (objects are immutable).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            bail!(
                "mmap {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        // SAFETY: the range just mapped.
        unsafe { libc::madvise(p, len, libc::MADV_RANDOM) };
        Ok(FileMap {
            ptr: p as usize,
            len,
        })
    }
    fn bytes(&self) -> &[u8] {
        // SAFETY: mapped read-only for the lifetime of self.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, no longer borrowed.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

/// Drop a file's cached pages.
fn fadvise_dontneed(path: &Path) {
    if let Ok(f) = std::fs::File::open(path) {
        // SAFETY: advice on an open descriptor; no memory is passed.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
}

/// One collection: a map of mblocks or mapped files.
enum Coll {
    Map {
        map: mcache::McacheMap,
        ids: Vec<MblockId>,
    },
    Files {
        maps: Vec<FileMap>,
        seqs: Vec<u64>,
    },
}

impl Coll {
    fn len(&self) -> usize {
        match self {
            Coll::Map { ids, .. } => ids.len(),
            Coll::Files { seqs, .. } => seqs.len(),
        }
    }
    /// Sum `len` bytes at `off` of object `i` (what a reader does).
    fn read(&self, i: usize, off: usize, len: usize) -> Result<u64> {
        match self {
            Coll::Map { map, .. } => {
                let g = map.range(i, off as u64..(off + len) as u64)?;
                Ok(g.iter().map(|&b| u64::from(b)).sum())
            }
            Coll::Files { maps, .. } => Ok(maps[i].bytes()[off..off + len]
                .iter()
                .map(|&b| u64::from(b))
                .sum()),
        }
    }
}

/// The live collections, oldest first.
type Catalog = RwLock<VecDeque<Arc<Coll>>>;

fn cgroup_join(dir: &Path) -> Result<()> {
    std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string())
        .with_context(|| format!("joining {}", dir.display()))
}

fn rusage_majflt() -> u64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF of this process.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) };
    r.ru_majflt as u64
}

/// The child: one side, one run. Prints one JSON line.
pub fn side(a: &SideArgs) -> Result<Value> {
    if let Some(cg) = &a.cgroup {
        cgroup_join(cg)?;
    }
    let mcache_side = a.side != "files";
    let pool = if mcache_side {
        let p = Pool::open(&a.pool, &OpenOptions::default())?;
        mcache::set_reaper(a.side == "mcache")?;
        Some(p)
    } else {
        None
    };
    let next_seq = AtomicU64::new(0);
    // Reconcile the list with the pool (or the directory) and build the
    // collections.
    let cat: Catalog = RwLock::new(VecDeque::new());
    if let Some(pool) = &pool {
        let listed: Vec<MblockId> = load_list(&ids_path(&a.dir))?
            .iter()
            .map(|s| s.parse().map_err(|e| anyhow!("{s}: {e}")))
            .collect::<Result<_>>()?;
        let live: std::collections::HashSet<u64> = pool
            .objects()?
            .iter()
            .filter(|o| o.id.ty() == mpool::ObjType::Mblock)
            .map(|o| o.id.raw())
            .collect();
        let mut ids: Vec<MblockId> = listed
            .into_iter()
            .filter(|id| live.contains(&id.object_id().raw()))
            .collect();
        // Orphans of a run that was killed: deleted.
        let known: std::collections::HashSet<u64> =
            ids.iter().map(|id| id.object_id().raw()).collect();
        for raw in live.difference(&known) {
            if let Some(id) =
                mpool::ObjectId::from_raw(*raw).and_then(|o| MblockId::try_from(o).ok())
            {
                pool.mblock_delete(id)?;
            }
        }
        while ids.len() < a.objects {
            let id = pool.mblock_alloc(MediaClass::Capacity)?;
            pool.mblock_write(id, &content(ids.len() as u64, a.obj_len))?;
            pool.mblock_commit(id)?;
            ids.push(id);
        }
        let colls = ids.len().div_ceil(a.per_map);
        for (k, c) in ids.chunks(a.per_map).enumerate() {
            let advice = if k + a.newest_colls >= colls {
                a.newest_advice
            } else {
                Advice::Cold
            };
            let map = pool.mcache_map(c, advice)?;
            cat.write()
                .map_err(|_| anyhow!("poisoned"))?
                .push_back(Arc::new(Coll::Map {
                    map,
                    ids: c.to_vec(),
                }));
        }
    } else {
        let seqs: Vec<u64> = load_list(&files_path(&a.dir))?
            .iter()
            .map(|s| s.parse())
            .collect::<std::result::Result<_, _>>()?;
        next_seq.store(seqs.iter().max().map_or(0, |m| m + 1), Ordering::Relaxed);
        for c in seqs.chunks(a.per_map) {
            let mut maps = Vec::new();
            for &s in c {
                let p = file_path(&a.dir, s);
                fadvise_dontneed(&p);
                maps.push(FileMap::open(&p)?);
            }
            cat.write()
                .map_err(|_| anyhow!("poisoned"))?
                .push_back(Arc::new(Coll::Files {
                    maps,
                    seqs: c.to_vec(),
                }));
        }
    }
    let files_resident = |cat: &Catalog| -> u64 {
        cat.read().map_or(0, |c| {
            c.iter()
                .map(|c| match &**c {
                    Coll::Files { maps, .. } => maps.iter().map(FileMap::resident_pages).sum(),
                    Coll::Map { .. } => 0,
                })
                .sum::<u64>()
                * PAGE as u64
        })
    };
    let files_resident_at_start = files_resident(&cat);
    let usage_at_start = a
        .cgroup
        .as_ref()
        .and_then(|d| std::fs::read_to_string(d.join("memory.usage_in_bytes")).ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let pages = a.obj_len / PAGE;
    let zipf = Zipf::new((a.objects * pages) as u64, 0.99);
    let mult = page_mult(pages, a.page_map == "stable");
    // 0 warm-up, 1 measuring, 2 stop.
    let phase = AtomicU8::new(0);
    let compacted = AtomicU64::new(0);
    let start_stats = std::sync::Mutex::new((mcache::stats(), 0u64));
    // CPUs used while measured: the readers, this process, the others.
    let cpu_use = std::sync::Mutex::new([0f64; 3]);

    // Bumped at every change of the list (the readers' snapshots).
    let gen = AtomicU64::new(0);
    // Reads so far per reader (warm-up included), for the trace.
    let progress: Vec<Padded> = (0..a.threads).map(|_| Padded::default()).collect();
    let mut trace: Vec<Value> = Vec::new();

    let (reads, hist, comp) =
        std::thread::scope(|s| -> Result<(u64, Histogram<u64>, Result<()>)> {
            let comp = std::thread::Builder::new()
                .name("mc-compact".into())
                .spawn_scoped(s, || {
                    compact(a, pool.as_ref(), &cat, &gen, &phase, &compacted, &next_seq)
                })?;
            let readers: Vec<_> = (0..a.threads)
                .map(|t| {
                    let (cat, gen, phase, zipf, progress) = (&cat, &gen, &phase, &zipf, &progress);
                    let b = std::thread::Builder::new().name(format!("mc-reader-{t}"));
                    b.spawn_scoped(s, move || -> Result<(u64, Histogram<u64>)> {
                        let mut r = Rng(a.seed.wrapping_mul(31).wrapping_add(t as u64 + 1) | 1);
                        let mut h = histogram();
                        let mut n = 0u64;
                        let mut all = 0u64;
                        // This reader's copy of the list (`--catalog snapshot`).
                        let snapshot = a.catalog == "snapshot";
                        let mut seen = gen.load(Ordering::Acquire);
                        let mut snap: Vec<Arc<Coll>> = Vec::new();
                        let copy = || -> Result<Vec<Arc<Coll>>> {
                            Ok(cat
                                .read()
                                .map_err(|_| anyhow!("poisoned"))?
                                .iter()
                                .cloned()
                                .collect())
                        };
                        if snapshot {
                            snap = copy()?;
                        }
                        let mut sink = 0u64;
                        loop {
                            let ph = phase.load(Ordering::Relaxed);
                            if ph == 2 {
                                break;
                            }
                            let t0 = Instant::now();
                            let rank = zipf.next(&mut r) as usize;
                            let age = rank / pages;
                            let page = page_of(rank, pages, mult);
                            let len = 100 + (r.next() % 901) as usize;
                            let off = page * PAGE + (r.next() as usize % (PAGE - len));
                            // Newest first: the collection from the back.
                            let pick = |len: usize| {
                                let age = age.min((len * a.per_map).saturating_sub(1));
                                len - 1 - age / a.per_map
                            };
                            let held;
                            let coll: &Coll = if snapshot {
                                let g = gen.load(Ordering::Acquire);
                                if g != seen {
                                    snap = copy()?;
                                    seen = g;
                                }
                                &snap[pick(snap.len())]
                            } else {
                                held = {
                                    let c = cat.read().map_err(|_| anyhow!("poisoned"))?;
                                    Arc::clone(&c[pick(c.len())])
                                };
                                &held
                            };
                            let i = (age % a.per_map).min(coll.len() - 1);
                            sink = sink.wrapping_add(coll.read(coll.len() - 1 - i, off, len)?);
                            if ph == 1 {
                                h.record(t0.elapsed().as_nanos() as u64)?;
                                n += 1;
                            }
                            all += 1;
                            if all.is_multiple_of(256) {
                                progress[t].0.store(all, Ordering::Relaxed);
                            }
                        }
                        std::hint::black_box(sink);
                        Ok((n, h))
                    })
                })
                .collect::<std::io::Result<Vec<_>>>()?;
            let t_start = Instant::now();
            let mut prev = Sample::take(&progress);
            let mut wait = |secs: u64, trace: &mut Vec<Value>| {
                if !a.trace {
                    std::thread::sleep(Duration::from_secs(secs));
                    return;
                }
                for _ in 0..secs {
                    std::thread::sleep(Duration::from_secs(1));
                    let now = Sample::take(&progress);
                    trace.push(now.delta(&prev, t_start.elapsed().as_secs_f64()));
                    prev = now;
                }
            };
            wait(a.warmup, &mut trace);
            *start_stats.lock().map_err(|_| anyhow!("poisoned"))? =
                (mcache::stats(), rusage_majflt());
            let cpu0 = Sample::take(&progress);
            compacted.store(0, Ordering::Relaxed);
            phase.store(1, Ordering::Relaxed);
            wait(a.runtime, &mut trace);
            // Before the stop: the readers' threads are gone after it.
            let cpu1 = Sample::take(&progress);
            phase.store(2, Ordering::Relaxed);
            *cpu_use.lock().map_err(|_| anyhow!("poisoned"))? = cpu1.cpus(&cpu0);
            let mut total = 0;
            let mut hist = histogram();
            for h in readers {
                let (n, hh) = h.join().map_err(|_| anyhow!("reader panicked"))??;
                total += n;
                hist.add(&hh)?;
            }
            let comp = comp.join().map_err(|_| anyhow!("compaction panicked"))?;
            Ok((total, hist, comp))
        })?;
    comp?;
    let (s0, maj0) = *start_stats.lock().map_err(|_| anyhow!("poisoned"))?;
    let s1 = mcache::stats();
    let maj = rusage_majflt() - maj0;
    let misses = if mcache_side {
        s1.fills - s0.fills
    } else {
        maj
    };
    let files_resident_at_end = files_resident(&cat);
    // Leave the state for the next run.
    let cat = cat.into_inner().map_err(|_| anyhow!("poisoned"))?;
    let mut ids = Vec::new();
    let mut seqs = Vec::new();
    for c in &cat {
        match &**c {
            Coll::Map { ids: i, .. } => ids.extend(i.iter().map(|id| id.to_string())),
            Coll::Files { seqs: s, .. } => seqs.extend(s.iter().map(|s| s.to_string())),
        }
    }
    if mcache_side {
        save_list(&ids_path(&a.dir), &ids)?;
    } else {
        save_list(&files_path(&a.dir), &seqs)?;
    }
    let peak = a
        .cgroup
        .as_ref()
        .and_then(|d| std::fs::read_to_string(d.join("memory.max_usage_in_bytes")).ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let secs = a.runtime as f64;
    drop(cat);
    if let Some(p) = pool {
        p.close()?;
    }
    Ok(json!({
        "side": a.side,
        "reads": reads,
        "reads_per_s": reads as f64 / secs,
        "p50_ns": hist.value_at_quantile(0.5),
        "p99_ns": hist.value_at_quantile(0.99),
        "p999_ns": hist.value_at_quantile(0.999),
        "p9999_ns": hist.value_at_quantile(0.9999),
        "misses_per_read": misses as f64 / reads.max(1) as f64,
        "evictions": s1.evictions - s0.evictions,
        "page_evictions": s1.page_evictions - s0.page_evictions,
        "evicted_bytes": s1.evicted_bytes - s0.evicted_bytes,
        "files_resident_at_start": files_resident_at_start,
        "files_resident_at_end": files_resident_at_end,
        "reaper_ms": (s1.reaper_ns - s0.reaper_ns) as f64 / 1e6,
        "major_faults": maj,
        "compacted_objects": compacted.load(Ordering::Relaxed),
        "cgroup_peak_bytes": peak,
        "cgroup_usage_at_start": usage_at_start,
        "resident_bytes_at_end": s1.resident_bytes,
        "readers_cpus": cpu_use.lock().map_or(0.0, |c| c[0]),
        "process_cpus": cpu_use.lock().map_or(0.0, |c| c[1]),
        "other_cpus": cpu_use.lock().map_or(0.0, |c| c[2]),
        "trace": trace,
    }))
}

/// A counter on a line of its own.
#[derive(Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

/// What the trace samples each second (all counters since some start).
struct Sample {
    reads: u64,
    stats: mcache::McacheStats,
    majflt: u64,
    /// TLB shootdown, function call and reschedule interrupts (all CPUs).
    tlb: u64,
    cal: u64,
    res: u64,
    /// The machine's CPU time (jiffies): user+nice, system+irq+softirq,
    /// idle+iowait, steal.
    cpu: [u64; 4],
    /// This process' threads' CPU time (jiffies) by kind: readers,
    /// compaction, fault handlers, reaper, others.
    threads: [u64; 5],
    /// Their involuntary context switches (all threads).
    nvcsw: u64,
}

impl Sample {
    fn take(progress: &[Padded]) -> Sample {
        let irq = std::fs::read_to_string("/proc/interrupts").unwrap_or_default();
        let irq_sum = |name: &str| -> u64 {
            irq.lines()
                .find(|l| l.trim_start().starts_with(name))
                .map_or(0, |l| {
                    l.split_whitespace()
                        .skip(1)
                        .map_while(|w| w.parse::<u64>().ok())
                        .sum()
                })
        };
        let f = crate::common::proc_stat_cpu();
        let g = |i: usize| f.get(i).copied().unwrap_or(0);
        let cpu = [g(0) + g(1), g(2) + g(5) + g(6), g(3) + g(4), g(7)];
        let mut threads = [0u64; 5];
        let mut nvcsw = 0;
        if let Ok(rd) = std::fs::read_dir("/proc/self/task") {
            for e in rd.flatten() {
                let Ok(st) = std::fs::read_to_string(e.path().join("stat")) else {
                    continue;
                };
                // comm is in parentheses; utime, stime are fields 14, 15.
                let (Some(a), Some(b)) = (st.find('('), st.rfind(')')) else {
                    continue;
                };
                let comm = &st[a + 1..b];
                let rest: Vec<&str> = st[b + 2..].split_whitespace().collect();
                let t = rest
                    .get(11)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
                    + rest
                        .get(12)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0);
                let k = if comm.starts_with("mc-reader") {
                    0
                } else if comm.starts_with("mc-compact") {
                    1
                } else if comm.starts_with("mpool-mcache") {
                    2
                } else if comm.starts_with("mpool-reaper") {
                    3
                } else {
                    4
                };
                threads[k] += t;
                if let Ok(s) = std::fs::read_to_string(e.path().join("status")) {
                    nvcsw += s
                        .lines()
                        .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
        }
        Sample {
            reads: progress.iter().map(|p| p.0.load(Ordering::Relaxed)).sum(),
            stats: mcache::stats(),
            majflt: rusage_majflt(),
            tlb: irq_sum("TLB:"),
            cal: irq_sum("CAL:"),
            res: irq_sum("RES:"),
            cpu,
            threads,
            nvcsw,
        }
    }

    /// CPUs used on average since `p`: by the readers, by this process,
    /// by everything else on the machine.
    fn cpus(&self, p: &Sample) -> [f64; 3] {
        // SAFETY: sysconf reads a constant.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let d = |a: u64, b: u64| a.saturating_sub(b) as f64;
        let idle = d(self.cpu[2], p.cpu[2]);
        let all = (0..4).map(|k| d(self.cpu[k], p.cpu[k])).sum::<f64>();
        let secs = all / hz / std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
        let secs = secs.max(1e-9);
        let mine = (0..5)
            .map(|k| d(self.threads[k], p.threads[k]))
            .sum::<f64>();
        let busy = all - idle - d(self.cpu[3], p.cpu[3]);
        [
            d(self.threads[0], p.threads[0]) / hz / secs,
            mine / hz / secs,
            (busy - mine).max(0.0) / hz / secs,
        ]
    }

    /// The second since `p`, as JSON.
    fn delta(&self, p: &Sample, t: f64) -> Value {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let (s, q) = (&self.stats, &p.stats);
        json!({
            "t": (t * 10.0).round() / 10.0,
            "reads": d(self.reads, p.reads),
            "fills": d(s.fills, q.fills),
            "majflt": d(self.majflt, p.majflt),
            "evictions": d(s.evictions, q.evictions),
            "page_evictions": d(s.page_evictions, q.page_evictions),
            "reaper_runs": d(s.reaper_runs, q.reaper_runs),
            "reaper_ms": d(s.reaper_ns, q.reaper_ns) as f64 / 1e6,
            "resident_mb": s.resident_bytes >> 20,
            "tlb": d(self.tlb, p.tlb),
            "cal": d(self.cal, p.cal),
            "res": d(self.res, p.res),
            "cpu_user": d(self.cpu[0], p.cpu[0]),
            "cpu_sys": d(self.cpu[1], p.cpu[1]),
            "cpu_idle": d(self.cpu[2], p.cpu[2]),
            "cpu_steal": d(self.cpu[3], p.cpu[3]),
            "t_readers": d(self.threads[0], p.threads[0]),
            "t_compact": d(self.threads[1], p.threads[1]),
            "t_handlers": d(self.threads[2], p.threads[2]),
            "t_reaper": d(self.threads[3], p.threads[3]),
            "t_other": d(self.threads[4], p.threads[4]),
            "nvcsw": d(self.nvcsw, p.nvcsw),
        })
    }
}

/// The compaction thread: the oldest collection, read sequentially at the
/// set rate, written again as new objects (a new collection, the newest),
/// then its inputs deleted.
fn compact(
    a: &SideArgs,
    pool: Option<&Pool>,
    cat: &Catalog,
    gen: &AtomicU64,
    phase: &AtomicU8,
    done: &AtomicU64,
    next_seq: &AtomicU64,
) -> Result<()> {
    let rate = (a.compact_mibps << 20) as f64;
    let t0 = Instant::now();
    let mut bytes = 0f64;
    let mut buf = vec![0u8; a.obj_len];
    let chunk = a
        .compact_chunk
        .map_or(a.obj_len, |c| (c as usize).clamp(1, a.obj_len));
    // ioprio_set(2): IOPRIO_WHO_PROCESS of this thread; class << 13 | level.
    let prio = match a.compact_ioprio.as_str() {
        "be7" => Some((2 << 13) | 7),
        "idle" => Some(3 << 13),
        _ => None,
    };
    if let Some(prio) = prio {
        // SAFETY: a system call on this thread's own I/O priority; no
        // memory is passed.
        let r = unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, prio) };
        if r != 0 {
            bail!("ioprio_set: {}", std::io::Error::last_os_error());
        }
    }
    while phase.load(Ordering::Relaxed) != 2 {
        let oldest = {
            let c = cat.read().map_err(|_| anyhow!("poisoned"))?;
            Arc::clone(c.front().ok_or_else(|| anyhow!("no collections"))?)
        };
        let mut new_ids = Vec::new();
        let mut new_seqs = Vec::new();
        for i in 0..oldest.len() {
            if phase.load(Ordering::Relaxed) == 2 {
                break;
            }
            match (&*oldest, pool) {
                (Coll::Map { ids, .. }, Some(pool)) => {
                    for (k, piece) in buf.chunks_mut(chunk).enumerate() {
                        pool.mblock_read(ids[i], (k * chunk) as u64, piece)?;
                    }
                    let id = pool.mblock_alloc(MediaClass::Capacity)?;
                    for piece in buf.chunks(chunk) {
                        pool.mblock_write(id, piece)?;
                    }
                    pool.mblock_commit(id)?;
                    new_ids.push(id);
                }
                (Coll::Files { seqs, .. }, _) => {
                    use std::io::{Read, Write};
                    let mut f = std::fs::File::open(file_path(&a.dir, seqs[i]))?;
                    for piece in buf.chunks_mut(chunk) {
                        f.read_exact(piece)?;
                    }
                    let s = next_seq.fetch_add(1, Ordering::Relaxed);
                    let mut out = std::fs::File::create(file_path(&a.dir, s))?;
                    for piece in buf.chunks(chunk) {
                        out.write_all(piece)?;
                    }
                    out.sync_data()?;
                    new_seqs.push(s);
                }
                _ => bail!("a map without its pool"),
            }
            done.fetch_add(1, Ordering::Relaxed);
            bytes += 2.0 * a.obj_len as f64;
            let due = Duration::from_secs_f64(bytes / rate);
            if let Some(wait) = due.checked_sub(t0.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        if new_ids.len() + new_seqs.len() < oldest.len() {
            // Stopped halfway: the outputs go, the inputs stay.
            if let Some(pool) = pool {
                for id in new_ids {
                    pool.mblock_delete(id)?;
                }
            }
            for s in new_seqs {
                let _ = std::fs::remove_file(file_path(&a.dir, s));
            }
            break;
        }
        let fresh = match pool {
            Some(pool) => {
                let map = pool.mcache_map(&new_ids, a.newest_advice)?;
                if a.preload_newest == "on" {
                    // Counted as used first, so that the reaper keeps the
                    // pages until their use is measured.
                    for i in 0..map.len() {
                        let len = map.object_len(i).unwrap_or(0);
                        map.touch_range(i, 0..len);
                        let mut at = 0;
                        while at < len {
                            let end = (at + chunk as u64).min(len);
                            map.load(i, at..end)?;
                            at = end;
                        }
                    }
                }
                Coll::Map { map, ids: new_ids }
            }
            None => Coll::Files {
                maps: new_seqs
                    .iter()
                    .map(|&s| FileMap::open(&file_path(&a.dir, s)))
                    .collect::<Result<_>>()?,
                seqs: new_seqs,
            },
        };
        {
            let mut c = cat.write().map_err(|_| anyhow!("poisoned"))?;
            c.push_back(Arc::new(fresh));
            // The collection that leaves the newest ones goes cold.
            if let Some(Coll::Map { map, .. }) = c
                .len()
                .checked_sub(a.newest_colls + 1)
                .and_then(|k| c.get(k))
                .map(|c| &**c)
            {
                map.set_advice(Advice::Cold);
            }
            c.pop_front();
        }
        gen.fetch_add(1, Ordering::Release);
        // The inputs: deleted (a map still reading them holds their zones).
        // As the files' are unlinked without a sync, their deletes are not
        // flushed one by one: they ride on the next commit's flush (a
        // hundred back-to-back flushes held the readers' misses behind
        // them).
        match (&*oldest, pool) {
            (Coll::Map { ids, .. }, Some(pool)) => {
                for &id in ids {
                    pool.mblock_delete_deferred(id)?;
                }
            }
            (Coll::Files { seqs, .. }, _) => {
                for &s in seqs {
                    std::fs::remove_file(file_path(&a.dir, s))?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Run one side in a child process; its JSON, or why it failed.
fn run_side(a: &McacheArgs, side: &str, pool: &str, obj_len: usize, seed: u64) -> Result<Value> {
    let cg = if a.no_cap {
        None
    } else {
        let cap = ((a.objects * obj_len) as f64 * a.cap_pct / 100.0) as u64;
        Some(Cgroup::create(cap)?)
    };
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["mcache-side", "--side", side, "--pool", pool]);
    cmd.arg("--dir").arg(&a.dir);
    for (k, v) in [
        ("--objects", a.objects.to_string()),
        ("--obj-len", obj_len.to_string()),
        ("--per-map", a.per_map.to_string()),
        ("--threads", a.threads.to_string()),
        ("--warmup", a.warmup.to_string()),
        ("--runtime", a.runtime.to_string()),
        ("--compact-mibps", a.compact_mibps.to_string()),
        ("--seed", seed.to_string()),
    ] {
        cmd.args([k, &v]);
    }
    if let Some(cg) = &cg {
        cmd.arg("--cgroup").arg(&cg.0);
    }
    if a.trace {
        cmd.arg("--trace");
    }
    cmd.args(["--newest-advice", advice_name(a.newest_advice)]);
    cmd.args(["--newest-colls", &a.newest_colls.to_string()]);
    cmd.args(["--page-map", &a.page_map]);
    cmd.args(["--preload-newest", &a.preload_newest]);
    if let Some(c) = a.compact_chunk {
        cmd.args(["--compact-chunk", &c.to_string()]);
    }
    cmd.args(["--compact-ioprio", &a.compact_ioprio]);
    cmd.args(["--catalog", &a.catalog]);
    let out = cmd.output()?;
    let oom = cg.as_ref().map_or(0, Cgroup::oom_kills);
    drop(cg);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        use std::os::unix::process::ExitStatusExt;
        return Ok(json!({
            "side": side,
            "failed": format!("{:?}{}", out.status, if oom > 0 { " (OOM-killed in its cgroup)" } else { "" }),
            "signal": out.status.signal(),
            "stderr": String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""),
        }));
    }
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).with_context(|| format!("side {side} printed {line:?}"))
}

/// A cgroup v1 memory cgroup, removed on drop.
struct Cgroup(PathBuf);

impl Cgroup {
    fn create(limit: u64) -> Result<Cgroup> {
        let root = Path::new("/sys/fs/cgroup/memory");
        if !root.join("memory.limit_in_bytes").exists() {
            bail!(
                "no cgroup v1 memory controller at {} (use --no-cap)",
                root.display()
            );
        }
        // Under this process' own memory cgroup where it has one.
        let own = std::fs::read_to_string("/proc/self/cgroup")?
            .lines()
            .find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, c, p) = (f.next()?, f.next()?, f.next()?);
                c.split(',').any(|c| c == "memory").then(|| p.to_string())
            })
            .unwrap_or_default();
        let dir = root
            .join(own.trim_start_matches('/'))
            .join(format!("mpool-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating cgroup {} (root only)", dir.display()))?;
        std::fs::write(dir.join("memory.limit_in_bytes"), limit.to_string())?;
        Ok(Cgroup(dir))
    }
    fn oom_kills(&self) -> u64 {
        std::fs::read_to_string(self.0.join("memory.oom_control"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("oom_kill "))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Empty once the child exited; the kernel may take a moment.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("could not remove cgroup {}", self.0.display());
    }
}

/// Nanoseconds per iteration of `f` over `n` iterations.
fn per_op(n: u64, mut f: impl FnMut(u64) -> Result<u64>) -> Result<f64> {
    let t = Instant::now();
    let mut sink = 0u64;
    for i in 0..n {
        sink = sink.wrapping_add(f(i)?);
    }
    std::hint::black_box(sink);
    Ok(t.elapsed().as_nanos() as f64 / n as f64)
}

/// The primitive costs (rows of the table).
fn primitives(
    a: &McacheArgs,
    pool: &Pool,
    pool_file: &Path,
    ids: &[MblockId],
    seqs: &[u64],
    obj_len: usize,
) -> Result<Vec<(String, f64, f64, String)>> {
    let mut rows = Vec::new();
    let n = a.per_map.min(ids.len() / 2);
    let pages = obj_len / PAGE;
    // Resident reads: one collection loaded whole.
    let map = pool.mcache_map(&ids[..n], Advice::Cold)?;
    let files: Vec<FileMap> = seqs[..n]
        .iter()
        .map(|&s| FileMap::open(&file_path(&a.dir, s)))
        .collect::<Result<_>>()?;
    for (i, f) in files.iter().enumerate() {
        map.load(i, 0..obj_len as u64)?;
        std::hint::black_box(
            f.bytes()
                .iter()
                .step_by(PAGE)
                .map(|&b| b as u64)
                .sum::<u64>(),
        );
    }
    let mut r = Rng(7);
    let mut pick = move || {
        let v = r.next();
        ((v % n as u64) as usize, ((v >> 20) as usize % pages) * PAGE)
    };
    for _ in 0..3 {
        let guard = per_op(2_000_000, |_| {
            let (i, off) = pick();
            Ok(map
                .range(i, off as u64..off as u64 + 100)?
                .iter()
                .map(|&b| u64::from(b))
                .sum())
        })?;
        let slice = per_op(2_000_000, |_| {
            let (i, off) = pick();
            Ok(map.slice(i)?[off..off + 100]
                .iter()
                .map(|&b| u64::from(b))
                .sum())
        })?;
        let file = per_op(2_000_000, |_| {
            let (i, off) = pick();
            Ok(files[i].bytes()[off..off + 100]
                .iter()
                .map(|&b| u64::from(b))
                .sum())
        })?;
        rows.push((
            "resident read 100 B: map.range guard vs file mmap (ns)".into(),
            guard,
            file,
            "ns".into(),
        ));
        rows.push((
            "resident read 100 B: map.slice vs file mmap (ns)".into(),
            slice,
            file,
            "ns".into(),
        ));
    }
    // The same, from `threads` threads at once over the same 8 objects
    // (as the experiment's Zipfian readers share its hottest objects):
    // what a guard's writes to a line the threads share would cost.
    let hot = n.min(8);
    for _ in 0..3 {
        let shared = |guard: bool| -> Result<f64> {
            let per: Vec<f64> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..a.threads.max(1))
                    .map(|t| {
                        let (map, files) = (&map, &files);
                        s.spawn(move || {
                            let mut r = Rng(101 + t as u64);
                            per_op(1_000_000, |_| {
                                let v = r.next();
                                let (i, off) = (
                                    (v % hot as u64) as usize,
                                    ((v >> 20) as usize % pages) * PAGE,
                                );
                                let b: &[u8] = if guard {
                                    &map.range(i, off as u64..off as u64 + 100)?
                                } else {
                                    &files[i].bytes()[off..off + 100]
                                };
                                Ok(b.iter().map(|&b| u64::from(b)).sum())
                            })
                        })
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| h.join().map_err(|_| anyhow!("reader panicked"))?)
                    .collect::<Result<Vec<f64>>>()
            })?;
            Ok(per.iter().sum::<f64>() / per.len() as f64)
        };
        let g = shared(true)?;
        let f = shared(false)?;
        rows.push((
            format!(
                "resident read 100 B, {} threads on the same {hot} objects: guard vs file mmap (ns per read)",
                a.threads.max(1)
            ),
            g,
            f,
            "ns".into(),
        ));
    }
    drop(map);
    drop(files);
    // Misses: one page of an evicted object vs a major fault of a file
    // whose pages were dropped.
    for _ in 0..3 {
        let map = pool.mcache_map(&ids[..n], Advice::Cold)?;
        let files: Vec<FileMap> = seqs[..n]
            .iter()
            .map(|&s| {
                let p = file_path(&a.dir, s);
                fadvise_dontneed(&p);
                FileMap::open(&p)
            })
            .collect::<Result<_>>()?;
        let guards = pool.mcache_map(&ids[n..2 * n], Advice::Cold)?;
        let touches = 2000u64;
        let mut hg = histogram();
        let mut hm = histogram();
        let mut hf = histogram();
        let mut r = Rng(11);
        for k in 0..touches {
            let i = (k as usize) % n;
            let off = ((r.next() as usize) % pages) * PAGE;
            let s = map.slice(i)?;
            let t = Instant::now();
            // SAFETY: a byte of the slice; volatile keeps the touch.
            std::hint::black_box(unsafe { std::ptr::read_volatile(&s[off]) });
            hm.record(t.elapsed().as_nanos() as u64)?;
            let fb = files[i].bytes();
            let t = Instant::now();
            // SAFETY: as above.
            std::hint::black_box(unsafe { std::ptr::read_volatile(&fb[off]) });
            hf.record(t.elapsed().as_nanos() as u64)?;
            let t = Instant::now();
            std::hint::black_box(guards.range(i, off as u64..off as u64 + 100)?[0]);
            hg.record(t.elapsed().as_nanos() as u64)?;
        }
        rows.push((
            "miss, 4 KiB page, median: mcache guard (load in the caller) vs file mmap major fault (us)"
                .into(),
            hg.value_at_quantile(0.5) as f64,
            hf.value_at_quantile(0.5) as f64,
            "us".into(),
        ));
        rows.push((
            "miss, 4 KiB page, median: mcache fault (fault handler) vs file mmap major fault (us)"
                .into(),
            hm.value_at_quantile(0.5) as f64,
            hf.value_at_quantile(0.5) as f64,
            "us".into(),
        ));
    }
    if let Ok(fio_bin) = fio::find_fio() {
        let job = FioJob::new(
            pool_file,
            "randread",
            4096,
            1,
            FioEngine::Psync,
            std::fs::metadata(pool_file)?.len(),
            Limit::Seconds(5),
        );
        let (_, d) = fio::run_moving(&fio_bin, &job, false)?;
        rows.push((
            "fio 4 KiB QD1 randread (psync, O_DIRECT) on the pool file, median (us)".into(),
            d.p50_ns,
            d.p50_ns,
            "us".into(),
        ));
    }
    // Map + drop of 100 objects vs open + mmap + munmap + close of 100 files.
    for _ in 0..3 {
        let m = per_op(2000, |_| {
            let map = pool.mcache_map(&ids[..n], Advice::Cold)?;
            Ok(map.len() as u64)
        })?;
        let f = per_op(200, |_| {
            let v: Vec<FileMap> = seqs[..n]
                .iter()
                .map(|&s| FileMap::open(&file_path(&a.dir, s)))
                .collect::<Result<_>>()?;
            Ok(v.len() as u64)
        })?;
        rows.push((
            format!("map + drop of {n} objects vs {n} files mmap + munmap (us)"),
            m,
            f,
            "us".into(),
        ));
    }
    Ok(rows)
}

/// The whole benchmark.
pub fn run(a: &McacheArgs) -> Result<Table> {
    if a.floor {
        return floor(a);
    }
    let dir = common::scratch_env(&a.dir)?;
    let a = &McacheArgs {
        dir: dir.clone(),
        ..a.clone()
    };
    let name = common::pool_name("mcache");
    let zones = a.objects as u64 + 3 * a.per_map as u64 + 256;
    let pool_file = dir.join(format!("{name}.img"));
    // Whatever way the run ends, the pool, its file and the object files go.
    let _cleanup = Cleanup {
        name: name.clone(),
        pool_file: pool_file.clone(),
        dir: dir.clone(),
    };
    let need = zones * a.mblock_size + a.objects as u64 * a.mblock_size;
    let free = rustix::fs::statvfs(&dir).map(|s| s.f_bavail * s.f_frsize)?;
    if free < need + need / 4 {
        bail!(
            "{} has {} MiB free; the pool file and the object files need {} MiB (and a margin)",
            dir.display(),
            free >> 20,
            need >> 20
        );
    }
    common::prefill(&pool_file, zones * a.mblock_size)?;
    let spec = DeviceSpec {
        path: pool_file.clone(),
        create_size: None,
        zone_size: a.mblock_size,
    };
    let pool = Pool::create(&name, &spec, &CreateOptions::default())?;
    let obj_len = (pool.mblock_capacity(MediaClass::Capacity)? as usize) / PAGE * PAGE;
    eprintln!(
        "writing {} objects of {obj_len} bytes, as mblocks and as files ...",
        a.objects
    );
    let mut ids = Vec::new();
    let mut seqs = Vec::new();
    for s in 0..a.objects as u64 {
        let data = content(s, obj_len);
        let id = pool.mblock_alloc(MediaClass::Capacity)?;
        pool.mblock_write(id, &data)?;
        pool.mblock_commit(id)?;
        ids.push(id);
        let p = file_path(&dir, s);
        std::fs::write(&p, &data)?;
        std::fs::File::open(&p)?.sync_data()?;
        fadvise_dontneed(&p);
        seqs.push(s);
    }
    save_list(
        &ids_path(&dir),
        &ids.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
    )?;
    save_list(
        &files_path(&dir),
        &seqs.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    )?;

    let mut t = Table {
        title: format!(
            "mcache: {} objects of {} KiB in maps of {}, {} readers, compaction {} MiB/s",
            a.objects,
            obj_len >> 10,
            a.per_map,
            a.threads,
            a.compact_mibps
        ),
        context: common::context(&pool_file, fio::find_fio().ok().as_deref()),
        header: ["case", "mpool", "reference", "unit", "mpool/ref"]
            .map(String::from)
            .to_vec(),
        ..Table::default()
    };
    t.context
        .push(("fault mode".into(), format!("{:?}", mcache::fault_mode()?)));
    if !a.no_primitives {
        for (case, m, r, unit) in primitives(a, &pool, &pool_file, &ids, &seqs, obj_len)? {
            let f = |v: f64| {
                if unit == "us" {
                    fmt_us(v)
                } else {
                    format!("{v:.0}")
                }
            };
            t.rows.push(vec![
                case.clone(),
                f(m),
                f(r),
                unit.clone(),
                format!("{:.2}", m / r),
            ]);
            t.json_rows
                .push(json!({"case": case, "mpool": m, "reference": r, "unit": unit}));
        }
    }
    pool.close()?;
    if a.no_experiment {
        return Ok(t);
    }
    // The experiment: sides alternating, each in a fresh child.
    let sides = ["mcache", "noreaper", "files"];
    if let Some(s) = a.sides.iter().find(|s| !sides.contains(&s.as_str())) {
        bail!("unknown side {s} (mcache, noreaper, files)");
    }
    let mut best = [0f64; 3];
    let mut results = Vec::new();
    for round in 0..a.rounds {
        for (k, side) in sides.iter().enumerate() {
            if !a.sides.iter().any(|s| s == side) {
                continue;
            }
            eprintln!("round {} side {side} ...", round + 1);
            let mut v = run_side(a, side, &name, obj_len, u64::from(round) * 10 + k as u64)?;
            if let Some(Value::Array(tr)) = v.as_object_mut().and_then(|o| o.remove("trace")) {
                print_trace(&tr);
                v["trace"] = Value::Array(tr);
                let mut w = v.clone();
                if let Some(o) = w.as_object_mut() {
                    o.remove("trace");
                }
                eprintln!("  {w}");
            } else {
                eprintln!("  {v}");
            }
            if let Some(r) = v["reads_per_s"].as_f64() {
                best[k] = best[k].max(r);
                t.rows.push(vec![
                    format!("round {} {side}", round + 1),
                    fmt_rate(r),
                    format!(
                        "p50 {} p99 {} p99.9 {} p99.99 {}",
                        fmt_us(v["p50_ns"].as_f64().unwrap_or(0.0)),
                        fmt_us(v["p99_ns"].as_f64().unwrap_or(0.0)),
                        fmt_us(v["p999_ns"].as_f64().unwrap_or(0.0)),
                        fmt_us(v["p9999_ns"].as_f64().unwrap_or(0.0)),
                    ),
                    format!(
                        "misses/read {:.4} evictions {} pages {} reaper {:.0} ms; CPUs: readers {:.2} others {:.2}",
                        v["misses_per_read"].as_f64().unwrap_or(0.0),
                        v["evictions"],
                        v["page_evictions"],
                        v["reaper_ms"].as_f64().unwrap_or(0.0),
                        v["readers_cpus"].as_f64().unwrap_or(0.0),
                        v["other_cpus"].as_f64().unwrap_or(0.0),
                    ),
                    "-".into(),
                ]);
            } else {
                t.rows.push(vec![
                    format!("round {} {side}", round + 1),
                    "failed".into(),
                    v["failed"].as_str().unwrap_or("").into(),
                    v["stderr"].as_str().unwrap_or("").into(),
                    "-".into(),
                ]);
            }
            results.push(v);
        }
    }
    t.json_rows.push(json!({"experiment": results}));
    let ratio = |x: f64, y: f64| {
        if y > 0.0 {
            format!("{:.2}", x / y)
        } else {
            "inf".into()
        }
    };
    t.notes.push(format!(
        "cap: {}",
        if a.no_cap {
            "none".to_string()
        } else {
            format!("{}% of the data in a cgroup v1 memory cgroup", a.cap_pct)
        }
    ));
    t.notes.push(format!(
        "mcache sides: the {} newest collections' advice {}, the others cold; new collections preloaded: {}",
        a.newest_colls,
        advice_name(a.newest_advice),
        a.preload_newest
    ));
    t.notes.push(format!(
        "mcache/files={} reaper_on/off={}",
        ratio(best[0], best[2]),
        ratio(best[0], best[1])
    ));
    Ok(t)
}

/// A side's per-second trace, as a table on stderr.
fn print_trace(tr: &[Value]) {
    let cols = [
        "t",
        "reads",
        "fills",
        "majflt",
        "evictions",
        "page_evictions",
        "reaper_ms",
        "resident_mb",
        "tlb",
        "cal",
        "res",
        "cpu_user",
        "cpu_sys",
        "cpu_idle",
        "cpu_steal",
        "t_readers",
        "t_compact",
        "t_handlers",
        "t_reaper",
        "t_other",
        "nvcsw",
    ];
    eprintln!("  trace: {}", cols.join(" "));
    for r in tr {
        let line: Vec<String> = cols.iter().map(|c| r[*c].to_string()).collect();
        eprintln!("  trace: {}", line.join(" "));
    }
}

/// Removes the run's pool, pool file and object files when dropped.
struct Cleanup {
    name: String,
    pool_file: PathBuf,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        common::forget_pool(&self.name, &self.pool_file);
        cleanup_files(&self.dir);
    }
}

fn cleanup_files(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("obj-") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let _ = std::fs::remove_file(ids_path(dir));
    let _ = std::fs::remove_file(files_path(dir));
}

/// An LRU list of keys (slab-linked, O(1) per operation).
struct Lru {
    map: std::collections::HashMap<u64, u32>,
    key: Vec<u64>,
    prev: Vec<u32>,
    next: Vec<u32>,
    free: Vec<u32>,
    /// Most recent, least recent.
    head: u32,
    tail: u32,
}

const NIL: u32 = u32::MAX;

impl Lru {
    fn new() -> Lru {
        Lru {
            map: std::collections::HashMap::new(),
            key: Vec::new(),
            prev: Vec::new(),
            next: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }
    fn len(&self) -> usize {
        self.map.len()
    }
    fn unlink(&mut self, n: u32) {
        let (p, x) = (self.prev[n as usize], self.next[n as usize]);
        if p == NIL {
            self.head = x;
        } else {
            self.next[p as usize] = x;
        }
        if x == NIL {
            self.tail = p;
        } else {
            self.prev[x as usize] = p;
        }
    }
    fn push_front(&mut self, n: u32) {
        self.prev[n as usize] = NIL;
        self.next[n as usize] = self.head;
        if self.head != NIL {
            self.prev[self.head as usize] = n;
        }
        self.head = n;
        if self.tail == NIL {
            self.tail = n;
        }
    }
    /// Touch `k` (made most recent); whether it was present.
    fn touch(&mut self, k: u64) -> bool {
        if let Some(&n) = self.map.get(&k) {
            self.unlink(n);
            self.push_front(n);
            return true;
        }
        let n = match self.free.pop() {
            Some(n) => {
                self.key[n as usize] = k;
                n
            }
            None => {
                self.key.push(k);
                self.prev.push(NIL);
                self.next.push(NIL);
                (self.key.len() - 1) as u32
            }
        };
        self.map.insert(k, n);
        self.push_front(n);
        false
    }
    fn remove(&mut self, k: u64) -> bool {
        match self.map.remove(&k) {
            Some(n) => {
                self.unlink(n);
                self.free.push(n);
                true
            }
            None => false,
        }
    }
    fn pop_lru(&mut self) -> Option<u64> {
        let k = *self.key.get(self.tail as usize)?;
        self.remove(k);
        Some(k)
    }
}

/// One event of the regenerated workload.
#[derive(Clone, Copy)]
enum Ev {
    /// A foreground read of (object, page).
    Read(u32, u32),
    /// Compaction reads object `.0` (the files side's buffered read)
    /// and writes object `.1` (the files side's buffered write).
    Compact(u32, u32),
    /// A collection of objects `.0..` (`.1` of them) was deleted.
    Delete(u32, u32),
}

/// The foreground's accesses and the compaction's steps in time order, as
/// `side` generates them at `rate` reads/s: the same Zipfian generator,
/// seeds (round 1, side 1), rank-to-page hash, collections, and a
/// compaction step (one object read and written) every `2 * obj / rate`
/// seconds; a new collection published (the hot set moves) every `per_map`
/// steps.
fn workload(a: &McacheArgs, rate: f64, mut f: impl FnMut(Ev)) {
    let pages = a.floor_obj_pages;
    let obj_bytes = (pages * PAGE) as f64;
    let zipf = Zipf::new((a.objects * pages) as u64, 0.99);
    let mult = page_mult(pages, a.page_map == "stable");
    let mut colls: VecDeque<Vec<u32>> = (0..a.objects as u32)
        .collect::<Vec<_>>()
        .chunks(a.per_map)
        .map(<[u32]>::to_vec)
        .collect();
    let mut next_obj = a.objects as u32;
    let step_s = 2.0 * obj_bytes / (a.compact_mibps << 20) as f64;
    let reads_per_step = rate * step_s;
    let total = (rate * (a.warmup + a.runtime) as f64) as u64;
    let seed = 0u64; // round 1, side `mcache`
    let mut rngs: Vec<Rng> = (0..a.threads.max(1))
        .map(|t| Rng(seed.wrapping_mul(31).wrapping_add(t as u64 + 1) | 1))
        .collect();
    let mut steps_done = 0u64;
    let mut new_coll: Vec<u32> = Vec::new();
    let mut step_in_coll = 0usize;
    for n in 0..total {
        while (n as f64) >= (steps_done + 1) as f64 * reads_per_step {
            steps_done += 1;
            let oldest = colls.front().map_or(0, |c| c.len());
            let src = colls
                .front()
                .map_or(0, |c| c[step_in_coll.min(c.len() - 1)]);
            f(Ev::Compact(src, next_obj));
            new_coll.push(next_obj);
            next_obj += 1;
            step_in_coll += 1;
            if step_in_coll >= oldest {
                if let Some(old) = colls.pop_front() {
                    f(Ev::Delete(old[0], old.len() as u32));
                }
                colls.push_back(std::mem::take(&mut new_coll));
                step_in_coll = 0;
            }
        }
        let nr = rngs.len() as u64;
        let r = &mut rngs[(n % nr) as usize];
        let rank = zipf.next(r) as usize;
        let age = rank / pages;
        let page = page_of(rank, pages, mult);
        // The same draws as a reader makes (length, offset).
        r.next();
        r.next();
        let total_objs = colls.len() * a.per_map;
        let age = age.min(total_objs.saturating_sub(1));
        let ci = colls.len() - 1 - age / a.per_map;
        let c = &colls[ci];
        let i = (age % a.per_map).min(c.len() - 1);
        f(Ev::Read(c[c.len() - 1 - i], page as u32));
    }
}

/// Misses per measured read of one simulated policy.
#[derive(Default)]
struct Sim {
    reads: u64,
    misses: u64,
}

/// The floor analysis (`--floor`): the best misses per read a cache of the
/// cap's size can achieve on this workload, and the reads/s they allow.
fn floor(a: &McacheArgs) -> Result<Table> {
    let pages = a.floor_obj_pages;
    let cap_bytes = (a.objects * pages * PAGE) as f64 * a.cap_pct / 100.0;
    let cap = (cap_bytes / PAGE as f64) as usize;
    let key = |o: u32, p: u32| (u64::from(o) << 8) | u64::from(p);
    let mut t = Table {
        title: format!(
            "mcache floor: {} objects of {pages} pages, cache of {cap} pages ({:.0} MB, {}% of the data), \
             {} s warm-up + {} s measured",
            a.objects,
            cap_bytes / 1e6,
            a.cap_pct,
            a.warmup,
            a.runtime
        ),
        header: ["rate assumed", "policy", "cache pages", "misses/read", "best reads/s"]
            .map(String::from)
            .to_vec(),
        ..Table::default()
    };
    for &rate in &a.floor_rates {
        let warm = (rate * a.warmup as f64) as u64;
        let mut rows: Vec<(String, usize, Sim)> = Vec::new();
        // Page LRU (what the page-granular reaper approximates), at the
        // whole cap and at the 93 % the reaper keeps.
        for (name, size) in [("page LRU", cap), ("page LRU at 93 %", cap / 100 * 93)] {
            let mut lru = Lru::new();
            let mut s = Sim::default();
            let mut n = 0u64;
            workload(a, rate, |e| match e {
                Ev::Read(o, p) => {
                    let hit = lru.touch(key(o, p));
                    if n >= warm {
                        s.reads += 1;
                        s.misses += u64::from(!hit);
                    }
                    n += 1;
                    while lru.len() > size {
                        lru.pop_lru();
                    }
                }
                Ev::Delete(first, cnt) => {
                    for o in first..first + cnt {
                        for p in 0..pages as u32 {
                            lru.remove(key(o, p));
                        }
                    }
                }
                Ev::Compact(..) => {}
            });
            rows.push((name.into(), size, s));
        }
        // Object LRU with pages loaded on demand (the reaper before: whole
        // objects by last access).
        {
            let mut lru = Lru::new();
            let mut res: std::collections::HashMap<u32, Vec<u64>> = Default::default();
            let mut total = 0usize;
            let mut s = Sim::default();
            let mut n = 0u64;
            let size = cap / 100 * 93;
            workload(a, rate, |e| match e {
                Ev::Read(o, p) => {
                    lru.touch(u64::from(o));
                    let bits = res.entry(o).or_insert_with(|| vec![0; pages.div_ceil(64)]);
                    let hit = bits[p as usize / 64] & (1 << (p % 64)) != 0;
                    if !hit {
                        bits[p as usize / 64] |= 1 << (p % 64);
                        total += 1;
                    }
                    if n >= warm {
                        s.reads += 1;
                        s.misses += u64::from(!hit);
                    }
                    n += 1;
                    while total > size {
                        let Some(v) = lru.pop_lru() else { break };
                        if let Some(b) = res.remove(&(v as u32)) {
                            total -= b.iter().map(|w| w.count_ones() as usize).sum::<usize>();
                        }
                    }
                }
                Ev::Delete(first, cnt) => {
                    for o in first..first + cnt {
                        lru.remove(u64::from(o));
                        if let Some(b) = res.remove(&o) {
                            total -= b.iter().map(|w| w.count_ones() as usize).sum::<usize>();
                        }
                    }
                }
                Ev::Compact(..) => {}
            });
            rows.push(("object LRU at 93 % (the old reaper)".into(), size, s));
        }
        // The reaper since session 10: object heat (pages referenced per
        // 200 ms window, decayed by an eighth per window), evicting from
        // 90 % down to 87 % of the cap the objects with the least heat
        // per page first: their pages not referenced in the current
        // window (whole objects when none was). Second row: the same with
        // each new collection loaded whole when it is published
        // (`--preload-newest`).
        for preload in [false, true] {
            let (high, low) = (cap / 100 * 90, cap / 100 * 87);
            let mut written: Vec<u32> = Vec::new();
            let window = ((rate * 0.2) as u64).max(1);
            let words = pages.div_ceil(64);
            #[derive(Clone, Default)]
            struct O {
                res: Vec<u64>,
                refd: Vec<u64>,
                heat: u64,
                n: usize,
            }
            let mut objs: std::collections::HashMap<u32, O> = Default::default();
            let mut total = 0usize;
            let mut s = Sim::default();
            let mut n = 0u64;
            workload(a, rate, |e| match e {
                Ev::Read(o, p) => {
                    let ob = objs.entry(o).or_insert_with(|| O {
                        res: vec![0; words],
                        refd: vec![0; words],
                        ..O::default()
                    });
                    let (w, b) = (p as usize / 64, 1u64 << (p % 64));
                    let hit = ob.res[w] & b != 0;
                    ob.refd[w] |= b;
                    if !hit {
                        ob.res[w] |= b;
                        ob.n += 1;
                        total += 1;
                    }
                    if n >= warm {
                        s.reads += 1;
                        s.misses += u64::from(!hit);
                    }
                    n += 1;
                    if total > high {
                        let mut cand: Vec<(u64, u32)> = objs
                            .iter()
                            .filter(|(_, x)| x.n > 0)
                            .map(|(&k, x)| {
                                let refs: u32 = x.refd.iter().map(|w| w.count_ones()).sum();
                                ((x.heat + u64::from(refs) * 16) * 1024 / pages as u64, k)
                            })
                            .collect();
                        cand.sort_unstable();
                        for (_, k) in cand {
                            if total <= low {
                                break;
                            }
                            if let Some(x) = objs.get_mut(&k) {
                                let mut freed = 0;
                                for (r, f) in x.res.iter_mut().zip(&x.refd) {
                                    freed += (*r & !f).count_ones() as usize;
                                    *r &= f;
                                }
                                x.n -= freed;
                                total -= freed;
                            }
                        }
                    }
                    if n.is_multiple_of(window) {
                        for x in objs.values_mut() {
                            let refs: u32 = x.refd.iter().map(|w| w.count_ones()).sum();
                            x.refd.iter_mut().for_each(|w| *w = 0);
                            x.heat = x.heat - x.heat / 8 + u64::from(refs) * 16;
                        }
                    }
                }
                Ev::Delete(first, cnt) => {
                    for o in first..first + cnt {
                        if let Some(x) = objs.remove(&o) {
                            total -= x.n;
                        }
                    }
                    if preload {
                        for o in written.drain(..) {
                            let x = objs.entry(o).or_insert_with(|| O {
                                res: vec![0; words],
                                refd: vec![0; words],
                                ..O::default()
                            });
                            for p in 0..pages {
                                x.res[p / 64] |= 1 << (p % 64);
                                x.refd[p / 64] |= 1 << (p % 64);
                            }
                            total += pages - x.n;
                            x.n = pages;
                        }
                    }
                }
                Ev::Compact(_, dst) => written.push(dst),
            });
            let name = if preload {
                "object heat, newest collection preloaded"
            } else {
                "object heat, 90 -> 87 % (the reaper, session 10)"
            };
            rows.push((name.into(), high, s));
        }
        // The files side's model: page LRU of the whole cap, compaction's
        // buffered reads and writes going through it (the written objects
        // are cached before they are published).
        {
            let mut lru = Lru::new();
            let mut s = Sim::default();
            let mut n = 0u64;
            workload(a, rate, |e| {
                match e {
                    Ev::Read(o, p) => {
                        let hit = lru.touch(key(o, p));
                        if n >= warm {
                            s.reads += 1;
                            s.misses += u64::from(!hit);
                        }
                        n += 1;
                    }
                    Ev::Compact(src, dst) => {
                        for p in 0..pages as u32 {
                            lru.touch(key(src, p));
                            lru.touch(key(dst, p));
                        }
                    }
                    Ev::Delete(first, cnt) => {
                        for o in first..first + cnt {
                            for p in 0..pages as u32 {
                                lru.remove(key(o, p));
                            }
                        }
                    }
                }
                while lru.len() > cap {
                    lru.pop_lru();
                }
            });
            rows.push(("files model: page LRU + buffered compaction".into(), cap, s));
        }
        if a.floor_opt {
            rows.push(("page OPT (Belady)".into(), cap, opt(a, rate, cap, warm)));
        }
        for (name, size, s) in rows {
            let m = s.misses as f64 / s.reads.max(1) as f64;
            let best = a.threads as f64 / (a.floor_res_ns * 1e-9 + m * a.floor_miss_us * 1e-6);
            t.rows.push(vec![
                fmt_rate(rate),
                name.clone(),
                size.to_string(),
                format!("{m:.4}"),
                fmt_rate(best),
            ]);
            t.json_rows.push(json!({"rate": rate, "policy": name, "cache_pages": size,
                "reads": s.reads, "misses": s.misses, "misses_per_read": m, "best_reads_per_s": best}));
        }
    }
    t.notes.push(format!(
        "best reads/s = {} threads / ({} ns resident + misses/read x {} us per miss)",
        a.threads, a.floor_res_ns, a.floor_miss_us
    ));
    Ok(t)
}

/// Belady's OPT over the regenerated trace (reads only; the cache must
/// take every page read, the page used furthest in the future goes).
fn opt(a: &McacheArgs, rate: f64, cap: usize, warm: u64) -> Sim {
    let mut trace: Vec<u64> = Vec::new();
    workload(a, rate, |e| {
        if let Ev::Read(o, p) = e {
            trace.push((u64::from(o) << 8) | u64::from(p));
        }
    });
    let mut next = vec![u32::MAX; trace.len()];
    let mut seen: std::collections::HashMap<u64, u32> = Default::default();
    for i in (0..trace.len()).rev() {
        if let Some(j) = seen.insert(trace[i], i as u32) {
            next[i] = j;
        }
    }
    drop(seen);
    let mut res: std::collections::HashMap<u64, u32> = Default::default();
    let mut order: std::collections::BTreeSet<(u32, u64)> = Default::default();
    let mut s = Sim::default();
    for (i, &k) in trace.iter().enumerate() {
        let hit = match res.insert(k, next[i]) {
            Some(old) => {
                order.remove(&(old, k));
                true
            }
            None => {
                if res.len() > cap {
                    if let Some((_, v)) = order.pop_last() {
                        res.remove(&v);
                    }
                }
                false
            }
        };
        order.insert((next[i], k));
        if i as u64 >= warm {
            s.reads += 1;
            s.misses += u64::from(!hit);
        }
    }
    s
}
