//! mpool as an [`object_store`] backend.
//!
//! [`MpoolStore`] implements [`ObjectStore`] (and [`MultipartStore`]) over
//! an open [`mpool::Pool`]: an object is a list of mblocks (as many as its
//! size needs), named by a path in a catalog that lives in an MDC of the
//! pool, found from the pool's root MDC by the store's name. Every update
//! (put, multipart completion, copy, rename, delete) is atomic and durable
//! before its call returns; copies and renames share mblocks, which are
//! freed when the last object (and the last reader) holding them goes.
//! The catalog compacts itself.
//!
//! Device I/O never holds up the async runtime: each call's blocking work
//! goes to tokio's blocking pool (`spawn_blocking`), or, with
//! [`StoreOptions::run_in_place`] and when it is short, runs in place
//! through `tokio::task::block_in_place`, which first hands the worker's
//! other tasks to another thread. The store needs a tokio runtime, as
//! object_store's own stores do.
//!
//! Reads are O_DIRECT, so the store keeps what it read recently in a
//! content cache of its own, as the kernel's page cache does for a file
//! system's readers: a read whose bytes are cached is served from memory,
//! without a device read or a blocking call. Its cap is
//! [`StoreOptions::cache_bytes`], by default a quarter of the memory the
//! process may use, and it shrinks as the rest of the memory in use grows
//! (it grows back as memory is freed). Reads of up to
//! [`StoreOptions::cache_max_read`] (4 MiB) go through it in chunks;
//! longer reads go from the device straight into one buffer, several
//! mblocks at once, which the cache keeps. The cache is keyed by mblock,
//! and mblocks never change, so an overwritten or deleted object is never
//! served from it.
//!
//! ```
//! # use mpool::{CreateOptions, DeviceSpec, Pool};
//! # use mpool_object_store::{MpoolStore, StoreOptions};
//! # use object_store::{path::Path, ObjectStoreExt};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # std::env::set_var("MPOOL_RUNDIR", dir.path().join("run"));
//! # std::env::set_var("MPOOL_CONFIG", dir.path().join("devices"));
//! # std::env::set_var("MPOOL_SCAN_DEVICES", "none");
//! # let spec = DeviceSpec { path: dir.path().join("p.img"), create_size: Some(64 << 20), zone_size: 1 << 20 };
//! let pool = Pool::create("objects", &spec, &CreateOptions::default())?;
//! let store = MpoolStore::open(pool, &StoreOptions::default().catalog_bytes(1 << 20))?;
//! let rt = tokio::runtime::Runtime::new()?;
//! rt.block_on(async {
//!     store.put(&Path::from("a/b"), "hello".into()).await?;
//!     let got = store.get(&Path::from("a/b")).await?.bytes().await?;
//!     assert_eq!(&got[..], b"hello");
//!     Ok::<_, object_store::Error>(())
//! })?;
//! # drop(store);
//! # mpool::admin::destroy("objects")?;
//! # Ok(())
//! # }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

mod cache;
mod catalog;
mod data;
mod dispatch;
mod huge;
mod multipart;
pub mod record;
#[cfg(feature = "internals")]
pub mod torture;

pub use cache::{CacheStats, AUTO_SHARE, CHECK_EVERY, FALLBACK_CAP};
pub use catalog::{e_tag, store_names, Entry, StoreError};
pub use dispatch::{stats as dispatch_stats, DispatchStats, IN_PLACE_MAX};

use async_trait::async_trait;
use bytes::Bytes;
use catalog::{Catalog, CatalogOptions, Mode, Refusal};
use chrono::{DateTime, Utc};
use futures_util::stream::{self, BoxStream, StreamExt};
use mpool::{MediaClass, Pool};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, CopyMode, CopyOptions, GetOptions, GetRange, GetResult,
    GetResultPayload, ListResult, MultipartId, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, RenameTargetMode,
};
use record::Attr;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

/// Objects up to this size are kept in the catalog by default
/// ([`StoreOptions::inline_max`]).
pub const DEFAULT_INLINE_MAX: u64 = 4096;

/// Bytes a `get` that bypasses the cache reads per step: an object up to
/// this size comes back as one buffer, a larger one streams in steps of
/// this size (the next read while the caller takes this one).
pub const GET_STEP: u64 = 64 << 20;

/// Reads up to this long go through the content cache by default
/// ([`StoreOptions::cache_max_read`]).
pub const DEFAULT_CACHE_MAX_READ: u64 = 4 << 20;

/// The content cache's chunk: what a miss reads at least (rounded up to
/// the pool's checksum block when that is larger).
pub const CACHE_CHUNK: u64 = 64 << 10;

/// The store's name in object_store errors.
const STORE: &str = "mpool";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Options of [`MpoolStore::open`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    name: String,
    inline_max: u64,
    catalog_bytes: Option<u64>,
    class: MediaClass,
    cache_bytes: Option<u64>,
    cache_max_read: u64,
    cache_large: bool,
    memory: Option<MemoryFn>,
    in_place: bool,
}

/// A memory source of [`StoreOptions::memory_source`].
#[derive(Clone)]
struct MemoryFn(cache::MemorySource);

impl std::fmt::Debug for MemoryFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryFn")
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            name: "default".into(),
            inline_max: DEFAULT_INLINE_MAX,
            catalog_bytes: None,
            class: MediaClass::Capacity,
            cache_bytes: None,
            cache_max_read: DEFAULT_CACHE_MAX_READ,
            cache_large: true,
            memory: None,
            in_place: false,
        }
    }
}

impl StoreOptions {
    /// The store's name: several stores can share a pool (default
    /// `default`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Bytes of each of the catalog MDC's two logs, when the store is
    /// created (rounded up to whole mblock zones; default 16 MiB, or
    /// 1/32 of the media class on a smaller pool). A catalog record takes
    /// about 45 bytes plus the path, the attributes and 16 bytes per
    /// mblock; the log compacts when half full, so 16 MiB holds the
    /// records of about 100,000 objects with short paths. This is only the
    /// first size: when the live state needs more than half of the log,
    /// the catalog moves to a new MDC of at least twice the size (one
    /// compaction), as often as the pool has room.
    pub fn catalog_bytes(mut self, bytes: u64) -> Self {
        self.catalog_bytes = Some(bytes);
        self
    }

    /// Objects of at most this many bytes are kept in their catalog record
    /// (and in memory) instead of mblocks of their own: one log append
    /// makes such a put durable, and it takes no zone of the pool (an
    /// mblock takes a whole zone however small). Default
    /// [`DEFAULT_INLINE_MAX`]; 0 puts every non-empty object in mblocks.
    pub fn inline_max(mut self, bytes: u64) -> Self {
        self.inline_max = bytes;
        self
    }

    /// The media class of object content and of the catalog (default
    /// capacity).
    pub fn class(mut self, class: MediaClass) -> Self {
        self.class = class;
        self
    }

    /// The most memory the store's cache of content read recently may
    /// hold (bytes; 0 turns it off). Without it, the cap is a quarter
    /// ([`AUTO_SHARE`]) of the memory the process may use (its cgroup's
    /// limit, else the machine's memory; [`FALLBACK_CAP`], 256 MiB, when
    /// neither can be read), read again at every memory check.
    ///
    /// mpool reads O_DIRECT: without this cache every get is a device
    /// read, where a file system's readers get what was read recently
    /// from the kernel's page cache. The cache keeps [`CACHE_CHUNK`]
    /// chunks of mblocks in the buffers the reads landed in, kept by
    /// CLOCK (second chance) over whole buffers within the budget, which
    /// counts those buffers' bytes. It fills on reads only (a put does
    /// not fill it). It can never serve stale bytes: chunks are keyed by
    /// mblock, a committed mblock never changes and its ID is never used
    /// again, and an overwrite or delete changes what the catalog names
    /// before any later get looks here (the chunks of freed mblocks are
    /// dropped). Each store has its own cache; [`MpoolStore::cache_stats`]
    /// tells how it does.
    ///
    /// **Memory pressure.** The budget is the cap only while the memory
    /// in use stays below a watermark (87 % of a cgroup's limit, 7/8 of
    /// the machine: those of `mpool::mcache`'s reaper): as the rest of the
    /// memory in use grows, the budget shrinks by as much and the cache
    /// evicts down to it, to nothing if need be; it grows back, up to the
    /// cap, as memory is freed. The memory is checked at most every
    /// [`CHECK_EVERY`] (20 ms) when a read misses, and every 50 ms by a
    /// background thread shared by the process' stores, never when a read
    /// is served from the cache.
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = Some(bytes);
        self
    }

    /// Reads (a get's range, or one range of `get_ranges`) up to this
    /// long go through the content cache in chunks (default
    /// [`DEFAULT_CACHE_MAX_READ`], 4 MiB): the chunks missing are read in
    /// runs and cached. A longer read is served whole from the cache when
    /// every chunk of it is there; else it is read straight into one
    /// buffer, several mblocks at once, and that buffer is cached (see
    /// [`StoreOptions::cache_large_reads`]). `u64::MAX` reads everything
    /// in chunks.
    pub fn cache_max_read(mut self, bytes: u64) -> Self {
        self.cache_max_read = bytes;
        self
    }

    /// Whether a call's short blocking work (a put or read of at most
    /// [`IN_PLACE_MAX`] bytes, a catalog update) runs on the runtime
    /// worker thread that polls the call, through
    /// `tokio::task::block_in_place`, on a multi-threaded runtime
    /// (default off: on tokio's blocking pool, `spawn_blocking`, as
    /// object_store's `LocalFileSystem` does). In place saves the two
    /// thread wake-ups of a hand-off to the pool (a 64 KiB put from one
    /// task: 10-30 % more per second on a virtual machine; BENCHMARKS.md,
    /// session 15), and the runtime's other tasks go on meanwhile on
    /// another thread; but futures that one task polls together (`join!`,
    /// `join_all`, `buffered`) then run one after another. For
    /// applications whose tasks make one call at a time.
    /// [`dispatch_stats`] counts where calls ran.
    pub fn run_in_place(mut self, on: bool) -> Self {
        self.in_place = on;
        self
    }

    /// Whether the buffers of reads longer than
    /// [`StoreOptions::cache_max_read`] are cached (default on). Such a
    /// buffer is cached only when it takes at most a quarter of the
    /// budget, and comes in as not used yet: it is the first to go unless
    /// it is read again, so that a scan of large objects does not push out
    /// what smaller reads keep using.
    pub fn cache_large_reads(mut self, on: bool) -> Self {
        self.cache_large = on;
        self
    }

    /// Where the content cache reads the memory the process may use and
    /// uses (default [`mpool::mcache::memory_pressure`]: the cgroup's
    /// limit and usage, else the machine's `MemTotal` and `MemTotal -
    /// MemAvailable`). For an application that sizes its caches by a
    /// view of its own, and for tests that simulate pressure; `None`
    /// means unknown (no pressure; the fallback cap).
    pub fn memory_source(
        mut self,
        f: impl Fn() -> Option<mpool::mcache::MemoryPressure> + Send + Sync + 'static,
    ) -> Self {
        self.memory = Some(MemoryFn(Arc::new(f)));
        self
    }
}

/// An [`ObjectStore`] over an mpool [`Pool`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MpoolStore {
    cat: Arc<Catalog>,
    cache: Arc<cache::ContentCache>,
    class: MediaClass,
    inline_max: u64,
    name: String,
    uploads: Arc<Mutex<multipart::Uploads>>,
    in_place: bool,
}

impl std::fmt::Display for MpoolStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MpoolStore({}:{})", self.cat.pool().name(), self.name)
    }
}

/// Figures of a store ([`MpoolStore::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// Objects.
    pub objects: u64,
    /// Their total size.
    pub bytes: u64,
    /// Catalog log bytes in use.
    pub log_bytes: u64,
    /// Catalog log capacity.
    pub log_capacity: u64,
    /// Compactions since open (an open that repaired compacts once).
    pub compactions: u64,
    /// Compactions since open that moved the catalog to a larger MDC.
    pub growths: u64,
    /// PUT records the open found unfinished (a crash) and dropped.
    pub dropped_at_open: u64,
    /// mblocks the open freed (held by no object after a crash).
    pub freed_at_open: u64,
    /// Puts since open committed by one write and one flush (a sealed
    /// commit into a reserved mblock: objects of one mblock).
    pub sealed_puts: u64,
    /// Puts of content in mblocks since open committed the usual way (a
    /// synced PUT record, then the mblocks' commits): objects of several
    /// mblocks, or when no reserved mblock was ready (the class short of
    /// space) or the content left no room for the seal.
    pub unsealed_puts: u64,
}

/// One object of a listing, as [`MpoolStore::objects`] gives it.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// Path.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// e_tag.
    pub e_tag: String,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// The mblocks holding it, in order (none when inline).
    pub mblocks: Vec<mpool::MblockId>,
    /// Its content is kept in its catalog record.
    pub inline: bool,
}

fn generic(e: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: Box::new(e),
    }
}

fn msg(s: String) -> object_store::Error {
    generic(std::io::Error::other(s))
}

impl From<StoreError> for object_store::Error {
    fn from(e: StoreError) -> Self {
        generic(e)
    }
}

fn refusal(path: &str, r: Refusal) -> object_store::Error {
    match r {
        Refusal::Exists => object_store::Error::AlreadyExists {
            path: path.to_string(),
            source: "an object exists at this path".into(),
        },
        Refusal::Precondition(s) => object_store::Error::Precondition {
            path: path.to_string(),
            source: s.into(),
        },
        Refusal::NotFound => not_found(path),
    }
}

fn not_found(path: &str) -> object_store::Error {
    object_store::Error::NotFound {
        path: path.to_string(),
        source: "no object at this path".into(),
    }
}

fn to_attrs(a: &Attributes) -> object_store::Result<Vec<Attr>> {
    let mut out = Vec::new();
    for (k, v) in a {
        let (kind, key) = match k {
            Attribute::ContentDisposition => (record::ATTR_CONTENT_DISPOSITION, String::new()),
            Attribute::ContentEncoding => (record::ATTR_CONTENT_ENCODING, String::new()),
            Attribute::ContentLanguage => (record::ATTR_CONTENT_LANGUAGE, String::new()),
            Attribute::ContentType => (record::ATTR_CONTENT_TYPE, String::new()),
            Attribute::CacheControl => (record::ATTR_CACHE_CONTROL, String::new()),
            Attribute::StorageClass => (record::ATTR_STORAGE_CLASS, String::new()),
            Attribute::Metadata(m) => (record::ATTR_METADATA, m.to_string()),
            other => return Err(StoreError::Attribute(format!("{other:?}")).into()),
        };
        out.push(Attr {
            kind,
            key,
            value: v.as_ref().to_string(),
        });
    }
    Ok(out)
}

fn from_attrs(a: &[Attr]) -> Attributes {
    let mut out = Attributes::new();
    for x in a {
        let k = match x.kind {
            record::ATTR_CONTENT_DISPOSITION => Attribute::ContentDisposition,
            record::ATTR_CONTENT_ENCODING => Attribute::ContentEncoding,
            record::ATTR_CONTENT_LANGUAGE => Attribute::ContentLanguage,
            record::ATTR_CONTENT_TYPE => Attribute::ContentType,
            record::ATTR_CACHE_CONTROL => Attribute::CacheControl,
            record::ATTR_STORAGE_CLASS => Attribute::StorageClass,
            _ => Attribute::Metadata(x.key.clone().into()),
        };
        out.insert(k, AttributeValue::from(x.value.clone()));
    }
    out
}

fn meta(path: &str, e: &Entry) -> ObjectMeta {
    ObjectMeta {
        // Paths are stored as object_store printed them: valid.
        location: Path::parse(path).unwrap_or_else(|_| Path::from(path)),
        last_modified: DateTime::<Utc>::from_timestamp_nanos(e.mtime_ns),
        size: e.size,
        e_tag: Some(e.e_tag()),
        version: None,
    }
}

impl MpoolStore {
    /// Open the store `opts.name` of `pool`, creating its catalog on a
    /// read-write pool that has none. Blocking: it replays the catalog
    /// (call it before entering the runtime, or from `spawn_blocking`). On
    /// a read-write pool the replay also repairs what a crash left: put
    /// records whose mblocks never all committed are dropped, mblocks no
    /// object holds are freed.
    pub fn open(pool: Pool, opts: &StoreOptions) -> Result<MpoolStore, StoreError> {
        let catalog_bytes = opts.catalog_bytes.unwrap_or_else(|| {
            let class = pool
                .usage()
                .into_iter()
                .find(|u| u.class == opts.class)
                .map_or(0, |u| u.size);
            (16u64 << 20).min(class / 32).max(1)
        });
        let chunk = CACHE_CHUNK.max(data::read_align(&pool));
        let source: cache::MemorySource = match &opts.memory {
            Some(f) => f.0.clone(),
            None => Arc::new(mpool::mcache::memory_pressure),
        };
        let cache = cache::ContentCache::new(
            match opts.cache_bytes {
                Some(n) => cache::Size::Cap(n),
                None => cache::Size::Auto,
            },
            opts.cache_max_read,
            opts.cache_large,
            chunk,
            source,
        );
        let cat = Catalog::open(
            pool,
            &CatalogOptions {
                name: opts.name.clone(),
                catalog_bytes,
                class: opts.class,
                cache: Some(cache.clone()),
            },
        )?;
        Ok(MpoolStore {
            cat: Arc::new(cat),
            cache,
            class: opts.class,
            inline_max: opts.inline_max,
            name: opts.name.clone(),
            uploads: Arc::default(),
            in_place: opts.in_place,
        })
    }

    /// A handle of this store (the same catalog, cache and objects) whose
    /// calls run their short blocking work in place or not (see
    /// [`StoreOptions::run_in_place`]): an application can use one handle
    /// in tasks that make one call at a time and another where a task
    /// joins calls.
    pub fn in_place(&self, on: bool) -> MpoolStore {
        MpoolStore {
            in_place: on,
            ..self.clone()
        }
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        self.cat.pool()
    }

    /// The catalog MDC.
    pub fn catalog_mdc(&self) -> Option<mpool::MdcId> {
        self.cat.mdc_id()
    }

    /// Figures of the store's content cache ([`StoreOptions::cache_bytes`]).
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Check the memory now (as the cache does by itself at most every
    /// [`CHECK_EVERY`]): set the content cache's budget from the memory
    /// left, evict down to it, and return its figures.
    pub fn check_memory(&self) -> CacheStats {
        self.cache.check_memory();
        self.cache.stats()
    }

    /// Empty the store's content cache (its memory is freed once the
    /// buffers handed out are dropped too): the next reads come from the
    /// device, as a file system's after `POSIX_FADV_DONTNEED`.
    pub fn clear_cache(&self) {
        self.cache.clear()
    }

    /// Compact the catalog now (it also compacts by itself).
    pub fn compact(&self) -> Result<(), StoreError> {
        self.cat.compact()
    }

    /// Figures of the store.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let (objects, bytes) = self.cat.totals();
        let u = self.cat.log_usage()?;
        let (sealed_puts, unsealed_puts) = self.cat.put_counts();
        Ok(StoreStats {
            objects,
            bytes,
            log_bytes: u.len,
            log_capacity: u.capacity,
            compactions: self.cat.compactions(),
            growths: self.cat.growths(),
            dropped_at_open: self.cat.repaired.0,
            freed_at_open: self.cat.repaired.1,
            sealed_puts,
            unsealed_puts,
        })
    }

    /// Every object whose path starts with `prefix` (a string prefix), in
    /// path order, with its mblocks (for operators: `mpool object ls`).
    pub fn objects(&self, prefix: &str) -> Vec<ObjectInfo> {
        self.cat
            .range(prefix, None)
            .into_iter()
            .map(|(path, e)| ObjectInfo {
                e_tag: e.e_tag(),
                size: e.size,
                mtime_ns: e.mtime_ns,
                mblocks: e.blocks.extents.iter().map(|x| x.id).collect(),
                inline: e.inline.is_some(),
                path,
            })
            .collect()
    }

    /// Blocking put of `data` at `path` (any mode), for callers outside
    /// an async runtime (the CLI, the torture harness). Returns the e_tag.
    pub fn put_blocking(
        &self,
        path: &str,
        data: &[u8],
        mode: PutMode,
    ) -> object_store::Result<String> {
        let (ext, inline, size) = if data.len() as u64 <= self.inline_max {
            (
                Vec::new(),
                Some(Bytes::copy_from_slice(data)),
                data.len() as u64,
            )
        } else {
            let len = data.len() as u64;
            let (ext, size) = write_object(self.pool(), &self.cat, self.class, len, || {
                std::iter::once(data)
            })?;
            (ext, None, size)
        };
        let mode = match mode {
            PutMode::Overwrite => Mode::Overwrite,
            PutMode::Create => Mode::Create,
            PutMode::Update(v) => Mode::Update(v.e_tag),
        };
        match self.cat.put(path, ext, inline, size, Vec::new(), mode)? {
            Ok(e) => Ok(e.e_tag()),
            Err(r) => Err(refusal(path, r)),
        }
    }

    /// Blocking multipart upload: each part written into mblocks of its
    /// own, then, with `complete`, made the object at `path` by one
    /// catalog record (as [`MultipartUpload::complete`] does), or else
    /// aborted (as [`MultipartUpload::abort`]). Returns the e_tag when
    /// completed.
    pub fn multipart_blocking(
        &self,
        path: &str,
        parts: &[&[u8]],
        complete: bool,
    ) -> object_store::Result<Option<String>> {
        let mut all = Vec::new();
        let mut size = 0;
        for p in parts {
            let mut w = data::Writer::new(self.pool(), self.class)?;
            if let Err(e) = w.write(p) {
                data::abort_all(self.pool(), &all);
                return Err(e.into());
            }
            let (ext, n) = w.finish();
            all.extend(ext);
            size += n;
        }
        if !complete {
            data::abort_all(self.pool(), &all);
            return Ok(None);
        }
        match self
            .cat
            .put(path, all, None, size, Vec::new(), Mode::Overwrite)?
        {
            Ok(e) => Ok(Some(e.e_tag())),
            Err(r) => Err(refusal(path, r)),
        }
    }

    /// The e_tag and size of the object at `path`.
    pub fn head_blocking(&self, path: &str) -> Option<(String, u64)> {
        self.cat.get(path).map(|e| (e.e_tag(), e.size))
    }

    /// Blocking read of a whole object.
    pub fn get_blocking(&self, path: &str) -> object_store::Result<Vec<u8>> {
        let e = self.cat.get(path).ok_or_else(|| not_found(path))?;
        if let Some(b) = &e.inline {
            return Ok(b.to_vec());
        }
        let mut v = data::read_ranges(
            self.pool(),
            &self.cache,
            &e.blocks.extents,
            std::slice::from_ref(&(0..e.size)),
        )?;
        Ok(v.pop().map(Vec::from).unwrap_or_default())
    }

    /// Blocking delete; whether there was an object.
    pub fn delete_blocking(&self, path: &str) -> object_store::Result<bool> {
        Ok(self.cat.delete(path)?)
    }

    /// Blocking copy or rename (`create`: refused when `to` exists).
    pub fn copy_blocking(
        &self,
        from: &str,
        to: &str,
        rename: bool,
        create: bool,
    ) -> object_store::Result<()> {
        self.cat.copy(from, to, rename, create)?.map_err(|r| {
            refusal(
                if matches!(r, Refusal::NotFound) {
                    from
                } else {
                    to
                },
                r,
            )
        })
    }

    /// Whether blocking work on `bytes` bytes may run in place (see
    /// [`StoreOptions::run_in_place`]).
    fn short(&self, bytes: u64) -> bool {
        self.in_place && bytes <= IN_PLACE_MAX
    }

    async fn write_payload(
        &self,
        payload: PutPayload,
    ) -> object_store::Result<(Vec<record::Extent>, u64)> {
        let pool = self.pool().clone();
        let class = self.class;
        let cat = self.cat.clone();
        let len = payload.content_length() as u64;
        let in_place = self.short(len);
        dispatch::run(in_place, move || {
            Ok(write_object(&pool, &cat, class, len, || {
                payload.iter().map(|b| b.as_ref())
            })?)
        })
        .await
    }

    async fn install(
        &self,
        path: &Path,
        ext: Vec<record::Extent>,
        inline: Option<Bytes>,
        size: u64,
        attrs: Vec<Attr>,
        mode: Mode,
    ) -> object_store::Result<PutResult> {
        let cat = self.cat.clone();
        let p = path.to_string();
        // A multipart completion commits each of its mblocks: short only
        // for one.
        let in_place = self.in_place && ext.len() <= 1;
        dispatch::run(in_place, move || {
            put_result(&p, cat.put(&p, ext, inline, size, attrs, mode)?)
        })
        .await
    }
}

/// What a put returns, from the catalog's outcome.
fn put_result(
    path: &str,
    outcome: std::result::Result<catalog::Entry, Refusal>,
) -> object_store::Result<PutResult> {
    match outcome {
        Ok(e) => Ok(PutResult {
            e_tag: Some(e.e_tag()),
            version: None,
            extensions: Default::default(),
        }),
        Err(r) => Err(refusal(path, r)),
    }
}

/// Write an object of `len` bytes (the pieces `parts` gives) into new,
/// uncommitted mblocks of `class`. An object that fits one mblock goes
/// into one of the catalog's reserved mblocks when one is ready, which
/// lets its put take one flush and no metadata write (see
/// [`catalog::Catalog::put`]). When the
/// class runs out of space, the reserve is given back and the write tried
/// once more.
fn write_object<'a, I: Iterator<Item = &'a [u8]>>(
    pool: &Pool,
    cat: &Catalog,
    class: MediaClass,
    len: u64,
    parts: impl Fn() -> I,
) -> catalog::Result<(Vec<record::Extent>, u64)> {
    let attempt = |first: Option<mpool::MblockId>| -> catalog::Result<(Vec<record::Extent>, u64)> {
        let r = (|| {
            let mut w = data::Writer::with_first(pool, class, first)?;
            for b in parts() {
                w.write(b)?;
            }
            Ok(w.finish())
        })();
        if r.is_err() {
            if let Some(id) = first {
                // The writer aborted it (or never took it).
                let _ = pool.mblock_abort(id);
                cat.unreserve(id);
            }
        }
        r
    };
    let fits = len > 0 && len <= pool.mblock_capacity(class)?;
    let first = if fits { cat.take_reserved() } else { None };
    match attempt(first) {
        Err(StoreError::Pool(mpool::Error::Storage(mpool::StorageError::NoSpace(_)))) => {
            cat.release_reserve();
            attempt(None)
        }
        r => r,
    }
}

#[async_trait]
impl ObjectStore for MpoolStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let attrs = to_attrs(&opts.attributes)?;
        let mode = match opts.mode {
            PutMode::Overwrite => Mode::Overwrite,
            PutMode::Create => Mode::Create,
            PutMode::Update(v) => Mode::Update(v.e_tag),
        };
        // Fail a conditional put before writing its content when it
        // already cannot succeed (the catalog checks again, atomically).
        if let (Mode::Create, Some(_)) = (&mode, self.cat.get(location.as_ref())) {
            return Err(refusal(location.as_ref(), Refusal::Exists));
        }
        if payload.content_length() as u64 <= self.inline_max {
            let mut v = Vec::with_capacity(payload.content_length());
            for b in payload.iter() {
                v.extend_from_slice(b);
            }
            let size = v.len() as u64;
            return self
                .install(
                    location,
                    Vec::new(),
                    Some(Bytes::from(v)),
                    size,
                    attrs,
                    mode,
                )
                .await;
        }
        // Content and catalog in one blocking call: one hand-off between
        // the runtime and the blocking pool per put, not two.
        let pool = self.pool().clone();
        let cat = self.cat.clone();
        let class = self.class;
        let p = location.to_string();
        let len = payload.content_length() as u64;
        dispatch::run(self.short(len), move || {
            let (ext, size) = write_object(&pool, &cat, class, len, || {
                payload.iter().map(|b| b.as_ref())
            })?;
            put_result(&p, cat.put(&p, ext, None, size, attrs, mode)?)
        })
        .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let attrs = to_attrs(&opts.attributes)?;
        Ok(Box::new(multipart::Upload::new(
            self.clone(),
            location.clone(),
            attrs,
        )))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let e = self
            .cat
            .get(location.as_ref())
            .ok_or_else(|| not_found(location.as_ref()))?;
        let meta = meta(location.as_ref(), &e);
        options.check_preconditions(&meta)?;
        let range = match &options.range {
            Some(r) => r.as_range(e.size).map_err(|err| msg(format!("{err}")))?,
            None => 0..e.size,
        };
        let attributes = from_attrs(&e.attrs);
        if let Some(b) = &e.inline {
            let end = if options.head { range.start } else { range.end };
            let data = b.slice(range.start as usize..end as usize);
            let s = stream::once(async move { Ok(data) });
            return Ok(GetResult {
                payload: GetResultPayload::Stream(s.boxed()),
                meta,
                range,
                attributes,
                extensions: Default::default(),
            });
        }
        let end = if options.head { range.start } else { range.end };
        if range.start < end && self.cache.serves(end - range.start) {
            // Through the cache: from memory when every chunk is there,
            // else read when the stream is first polled. Either way the
            // stream holds the object's mblocks until it is done, as a
            // read from the device does.
            let want = range.start..end;
            let plan = data::plan(&self.cache, &e.blocks.extents, std::slice::from_ref(&want));
            let ready = if plan.complete() {
                Some(plan.assemble()?.pop().unwrap_or_default())
            } else {
                None
            };
            let (pool, cache) = (self.pool().clone(), self.cache.clone());
            let held = e.blocks.clone();
            let in_place = self.short(end - range.start);
            let s = stream::once(async move {
                if let Some(b) = ready {
                    drop(held);
                    return Ok(b);
                }
                dispatch::run(in_place, move || {
                    let r = plan.finish(&pool, &cache);
                    drop(held);
                    Ok(r?.pop().unwrap_or_default())
                })
                .await
            });
            return Ok(GetResult {
                payload: GetResultPayload::Stream(s.boxed()),
                meta,
                range,
                attributes,
                extensions: Default::default(),
            });
        }
        let pool = self.pool().clone();
        let cache = self.cache.clone();
        let blocks = e.blocks.clone();
        let starts: Vec<u64> = (range.start..end).step_by(GET_STEP as usize).collect();
        // Each step one buffer: from the cache when it holds all of it
        // (on this thread unless the chunks must be joined), else read
        // straight into one buffer, which the cache keeps. The next step
        // is read while the caller takes this one.
        let s = stream::iter(starts)
            .map(move |pos| {
                let (pool, cache, blocks) = (pool.clone(), cache.clone(), blocks.clone());
                let r = pos..end.min(pos + GET_STEP);
                async move {
                    if let Some(plan) = data::cached_large(&cache, &blocks.extents, &r) {
                        if plan.without_copy() {
                            return Ok(plan.assemble()?.pop().unwrap_or_default());
                        }
                        return dispatch::run(false, move || {
                            Ok(plan.assemble()?.pop().unwrap_or_default())
                        })
                        .await;
                    }
                    dispatch::run(false, move || {
                        Ok(data::read_large(&pool, &cache, &blocks.extents, &r)?)
                    })
                    .await
                }
            })
            .buffered(2);
        Ok(GetResult {
            payload: GetResultPayload::Stream(s.boxed()),
            meta,
            range,
            attributes,
            extensions: Default::default(),
        })
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let e = self
            .cat
            .get(location.as_ref())
            .ok_or_else(|| not_found(location.as_ref()))?;
        let mut checked = Vec::with_capacity(ranges.len());
        for r in ranges {
            checked.push(
                GetRange::Bounded(r.clone())
                    .as_range(e.size)
                    .map_err(|err| msg(format!("{err}")))?,
            );
        }
        if let Some(b) = &e.inline {
            return Ok(checked
                .iter()
                .map(|r| b.slice(r.start as usize..r.end as usize))
                .collect());
        }
        let in_place = self.short(checked.iter().map(|r| r.end - r.start).sum());
        if checked
            .iter()
            .all(|r| self.cache.serves(r.end.saturating_sub(r.start)))
        {
            let plan = data::plan(&self.cache, &e.blocks.extents, &checked);
            if plan.complete() {
                return Ok(plan.assemble()?);
            }
            let (pool, cache) = (self.pool().clone(), self.cache.clone());
            return dispatch::run(in_place, move || {
                let r = plan.finish(&pool, &cache);
                drop(e);
                Ok(r?)
            })
            .await;
        }
        let (pool, cache) = (self.pool().clone(), self.cache.clone());
        dispatch::run(in_place, move || {
            Ok(data::read_ranges(
                &pool,
                &cache,
                &e.blocks.extents,
                &checked,
            )?)
        })
        .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let cat = self.cat.clone();
        let in_place = self.in_place;
        locations
            .then(move |location| {
                let cat = cat.clone();
                async move {
                    let location = location?;
                    let p = location.to_string();
                    dispatch::run(in_place, move || Ok(cat.delete(&p)?)).await?;
                    Ok(location)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.list_after(prefix, None)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.list_after(prefix, Some(offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let root = Path::default();
        let prefix = prefix.unwrap_or(&root);
        let (objects, common) = self.cat.list_level(prefix.as_ref());
        Ok(ListResult {
            objects: objects.iter().map(|(k, e)| meta(k, e)).collect(),
            common_prefixes: common
                .iter()
                .map(|c| Path::parse(c).unwrap_or_else(|_| Path::from(c.as_str())))
                .collect(),
            extensions: Default::default(),
        })
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let create = matches!(options.mode, CopyMode::Create);
        let s = self.clone();
        let (f, t) = (from.to_string(), to.to_string());
        dispatch::run(self.in_place, move || {
            s.copy_blocking(&f, &t, false, create)
        })
        .await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        let create = matches!(options.target_mode, RenameTargetMode::Create);
        let s = self.clone();
        let (f, t) = (from.to_string(), to.to_string());
        dispatch::run(self.in_place, move || s.copy_blocking(&f, &t, true, create)).await
    }
}

impl MpoolStore {
    fn list_after(
        &self,
        prefix: Option<&Path>,
        offset: Option<&Path>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let root = Path::default();
        let prefix = prefix.unwrap_or(&root);
        let items: Vec<_> = self
            .cat
            .range(prefix.as_ref(), offset.map(|o| o.as_ref()))
            .into_iter()
            .filter(|(k, _)| {
                Path::parse(k.as_str())
                    .unwrap_or_else(|_| Path::from(k.as_str()))
                    .prefix_match(prefix)
                    .map(|mut x| x.next().is_some())
                    .unwrap_or(false)
            })
            .map(|(k, e)| Ok(meta(&k, &e)))
            .collect();
        stream::iter(items).boxed()
    }
}

#[async_trait]
impl MultipartStore for MpoolStore {
    async fn create_multipart(&self, path: &Path) -> object_store::Result<MultipartId> {
        self.create_multipart_opts(path, PutMultipartOptions::default())
            .await
    }

    async fn create_multipart_opts(
        &self,
        path: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<MultipartId> {
        let attrs = to_attrs(&opts.attributes)?;
        Ok(multipart::create(self, path, attrs))
    }

    async fn put_part(
        &self,
        path: &Path,
        id: &MultipartId,
        part_idx: usize,
        data: PutPayload,
    ) -> object_store::Result<PartId> {
        multipart::put_part(self, path, id, part_idx, data).await
    }

    async fn complete_multipart(
        &self,
        path: &Path,
        id: &MultipartId,
        _parts: Vec<PartId>,
    ) -> object_store::Result<PutResult> {
        multipart::complete(self, path, id).await
    }

    async fn abort_multipart(&self, path: &Path, id: &MultipartId) -> object_store::Result<()> {
        multipart::abort(self, path, id).await
    }
}
