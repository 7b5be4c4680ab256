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
//! its own) is emptied, so both sides read from the device.
//!
//! Phases, each side in turn (mpool, then the filesystem, then again, the
//! best of the rounds kept):
//! - put and get of 4 KiB, 64 KiB, 1 MiB and 64 MiB objects from 1 and 8
//!   tasks, then the same gets again with the caches as the first left
//!   them (hot: the filesystem's page cache, mpool's content cache for
//!   reads up to 4 MiB); objects deleted after each phase, not timed;
//! - `list` of 100,000 paths (and one `list_with_delimiter`);
//! - a slatedb load: N 100-byte puts (then a flush), then N/50 random gets
//!   (slatedb without its optional block cache: each get reads the store),
//!   then N/50 more after the filesystem's page cache and mpool's content
//!   cache are dropped.
//!
//! The pool lives on a preallocated file in `--dir`; the filesystem side
//! in a directory next to it.

use crate::common;
use crate::report::{fmt_rate, fmt_ratio, Table};
use anyhow::{Context, Result};
use futures_util::StreamExt;
use mpool::dev::{DeviceRef, FileDevice, OpenOptions as DevOpenOptions};
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
    /// Budget of mpool's content cache (`StoreOptions::cache_bytes`; 0
    /// turns it off).
    #[arg(long, default_value = "256M", value_parser = mpool_cli::size::parse_size)]
    pub cache_bytes: u64,
}

/// `list_with_delimiter` calls timed together in each round.
const DELIM_CALLS: u32 = 50;

fn open_pool(path: &Path) -> Result<Pool> {
    let dev: DeviceRef = Arc::new(FileDevice::open(path, &DevOpenOptions::default())?);
    Ok(Pool::open_on(vec![dev], false)?)
}

fn mpool_store(path: &Path, name: &str, cache_bytes: u64) -> Result<MpoolStore> {
    Ok(MpoolStore::open(
        open_pool(path)?,
        &StoreOptions::default()
            .name(name)
            .catalog_bytes(64 << 20)
            .cache_bytes(cache_bytes),
    )?)
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
) -> Result<f64> {
    let t = Instant::now();
    let mut hs = Vec::new();
    for k in 0..tasks as u64 {
        let (s, prefix) = (store.clone(), prefix.to_string());
        hs.push(tokio::spawn(async move {
            let mut i = k;
            while i < count {
                let b = s
                    .get(&OsPath::from(format!("{prefix}/{i:08}")))
                    .await?
                    .bytes()
                    .await?;
                if b.len() as u64 != size {
                    return Err(anyhow::anyhow!("short read: {} of {size}", b.len()));
                }
                i += tasks as u64;
            }
            Ok(())
        }));
    }
    for h in hs {
        h.await??;
    }
    Ok(t.elapsed().as_secs_f64())
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

/// Run the benchmark.
pub fn run(a: &ObjstoreArgs) -> Result<Table> {
    let dir = common::scratch_env(&a.dir)?;
    let img = dir.join("objstore-bench.img");
    common::prefill(&img, a.size)?;
    {
        let dev: DeviceRef = Arc::new(FileDevice::open(&img, &DevOpenOptions::default())?);
        Pool::format_on(
            "objbench",
            &[(dev, MediaClass::Capacity, a.mblock_size)],
            "",
        )?;
    }
    let fs_dir = dir.join("objstore-bench-fs");
    let _ = std::fs::remove_dir_all(&fs_dir);
    std::fs::create_dir_all(&fs_dir)?;
    let rt = tokio::runtime::Runtime::new()?;
    let mps = mpool_store(&img, "bench", a.cache_bytes)?;
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
    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    let mut notes = Vec::new();
    let mut row = |what: String, unit: &str, m: f64, f: f64, rows: &mut Vec<Vec<String>>| {
        let ratio = if f > 0.0 { Some(m / f) } else { None };
        rows.push(vec![
            what.clone(),
            format!("{} {unit}", fmt_rate(m)),
            format!("{} {unit}", fmt_rate(f)),
            fmt_ratio(ratio),
        ]);
        json_rows
            .push(json!({"what": what, "unit": unit, "mpool": m, "filesystem": f, "ratio": ratio}));
    };
    let sizes: &[u64] = if a.no_put_get { &[] } else { &a.objects };
    for &size in sizes {
        for &tasks in &a.tasks {
            let count = (a.bytes / size).clamp(tasks as u64, a.max_count.max(tasks as u64));
            let mut best = [[0f64; 3]; 2]; // [side][put, get, get again] ops/s
            for r in 0..a.rounds {
                for (i, s) in sides.iter().enumerate() {
                    let prefix = format!("p{size}-{tasks}-{r}");
                    let put = rt.block_on(put_phase(&s.store, &prefix, size, count, tasks))?;
                    s.drop_caches();
                    let get = rt.block_on(get_phase(&s.store, &prefix, size, count, tasks))?;
                    // The same objects again, as the first pass left the
                    // caches (the page cache, mpool's content cache).
                    let hot = rt.block_on(get_phase(&s.store, &prefix, size, count, tasks))?;
                    rt.block_on(delete_all(&s.store, &prefix))?;
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
                &mut rows,
            );
            row(
                format!("get {label}, {tasks} task(s)"),
                "obj/s",
                best[0][1],
                best[1][1],
                &mut rows,
            );
            row(
                format!("get {label} again (hot), {tasks} task(s)"),
                "obj/s",
                best[0][2],
                best[1][2],
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
            rt.block_on(delete_all(&store, "list"))?;
        }
        row(
            format!("list {} paths", a.list_paths),
            "paths/s",
            best[0],
            best[1],
            &mut rows,
        );
        row(
            "list_with_delimiter (100 prefixes)".into(),
            "calls/s",
            best_d[0],
            best_d[1],
            &mut rows,
        );
    }
    if a.slatedb_keys > 0 {
        let mut put = [0f64; 2];
        let mut get = [0f64; 2];
        let mut cold = [0f64; 2];
        for (i, s) in sides.iter().enumerate() {
            let (p, g, c) = rt.block_on(slatedb_load(s.store.clone(), a.slatedb_keys, s))?;
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
            &mut rows,
        );
    }
    drop(sides);
    let _ = std::fs::remove_dir_all(&fs_dir);
    notes.push("ratio = mpool / LocalFileSystem (with fsync); higher is better for mpool".into());
    notes.push(format!(
        "objects of at most {} bytes are kept inline in mpool's catalog (one log append per put)",
        mpool_object_store::DEFAULT_INLINE_MAX
    ));
    notes.push(if a.cache_bytes > 0 {
        format!(
            "mpool's content cache: {} budget, reads up to {} through it in {} chunks, filled by reads \
             only; emptied where the filesystem's page cache is dropped (before each get phase, \
             before the second slatedb pass)",
            mpool_cli_size(a.cache_bytes),
            mpool_cli_size(mpool_object_store::DEFAULT_CACHE_MAX_READ),
            mpool_cli_size(mpool_object_store::CACHE_CHUNK),
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
