//! The named-object catalog: path → object (mblocks, size, version,
//! modification time, attributes), kept in an MDC of its own. Every call
//! here blocks on the device; the async store runs them on tokio's
//! blocking pool.
//!
//! Crash safety (docs/architecture.md, "mpool-object-store"):
//! - a put writes its content into new, uncommitted mblocks, appends and
//!   syncs its PUT record, then commits the mblocks; only then is it
//!   visible and acknowledged. A crash before every mblock is committed
//!   leaves a PUT record whose mblocks are missing: replay drops it and
//!   restores what the path held before. Such a record can only be the
//!   last one naming its path (each path's mutations are serialized and a
//!   later one is appended only after the put finished), so a PUT that a
//!   later record names is proven.
//!   A put into one reserved mblock (see `Reserve`) is one flush and no
//!   metadata write instead (one write in all up to
//!   [`mpool::MBLOCK_HOLD_MAX`] bytes): the pool commits the mblock by a
//!   *seal* that carries the PUT record ([`Pool::mblock_commit_sealed`]). The record waits in `behind` and is
//!   appended before any other record (or written by a compaction), then
//!   the mblock is adopted ([`Pool::mblock_adopt`]). After a crash, the
//!   open asks the pool for the store's sealed mblocks and applies the
//!   PUTs their seals carry that the log lacks: each is the last record of
//!   its path, since any later record of the path was appended after it.
//! - copy, rename and delete are one record each, synced before return.
//! - mblocks are shared (copy, rename) and freed when the last object
//!   and the last reader holding them go (a deferred delete). Replay
//!   deletes every mblock a record names that no object holds; a
//!   compaction first makes the deferred deletes durable and writes a
//!   PENDING record for those still held by readers.

use crate::record::{Attr, Extent, PutRec, Record};
use mpool::{Error as PoolError, Mdc, MdcId, ObjectError, Pool};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Errors of the catalog and the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An error of the pool (devices, objects, metadata).
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// An error of the catalog's MDC.
    #[error("catalog log: {0}")]
    Mdc(#[from] mpool::MdcError),
    /// A catalog record does not decode, or names what does not exist.
    #[error("corrupt catalog: {0}")]
    Corrupt(String),
    /// The pool was opened read-only.
    #[error("the store's pool is open read-only")]
    ReadOnly,
    /// A catalog update failed in a way that leaves the log's state
    /// unknown; reopen the store (its replay restores a consistent state).
    #[error("an earlier catalog update failed; reopen the store")]
    Broken,
    /// An attribute object_store knows and this store does not.
    #[error("attribute {0} is not supported")]
    Attribute(String),
    /// No store of this name in the pool (read-only open).
    #[error("no object store named '{0}' in this pool")]
    NoStore(String),
    /// The catalog's log stayed full through compactions (which grow it
    /// into a larger MDC when its live state needs the room): others kept
    /// filling it. Growth that fails for lack of space is the pool's error.
    #[error("the catalog's log stayed full through several compactions; try again")]
    CatalogFull,
    /// The store is open already in this process (share the `MpoolStore`:
    /// it is cheap to clone); two catalogs over one log would diverge.
    #[error("object store '{0}' of this pool is open already in this process")]
    Busy(String),
}

/// The stores open in this process, by pool UUID and name.
static OPEN: Mutex<Vec<(uuid::Uuid, String)>> = Mutex::new(Vec::new());

/// Result of the catalog.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The mblocks of one object, shared by every path that names it (copy,
/// rename) and by readers; freed when the last holder goes.
#[derive(Debug)]
pub struct Blocks {
    /// The extents, in order.
    pub extents: Vec<Extent>,
    reg: Arc<Registry>,
}

impl Blocks {
    fn new(extents: Vec<Extent>, reg: &Arc<Registry>) -> Arc<Blocks> {
        if let Some(first) = extents.first() {
            crate::lock(&reg.inner)
                .live
                .insert(first.id, extents.iter().map(|e| e.id).collect());
        }
        Arc::new(Blocks {
            extents,
            reg: reg.clone(),
        })
    }
}

impl Drop for Blocks {
    fn drop(&mut self) {
        let Some(first) = self.extents.first() else {
            return;
        };
        // Under the registry's lock, so that a compaction sees these
        // mblocks either held or with their deletes issued.
        let mut g = crate::lock(&self.reg.inner);
        g.live.remove(&first.id);
        // Their cached content goes (it could never be served again: a
        // path that named them names other mblocks now, or nothing).
        if let Some(c) = &self.reg.cache {
            for e in &self.extents {
                c.forget(e.id.object_id().raw(), e.len);
            }
        }
        // A catalog going away (the store dropped) frees nothing: its
        // objects stay. Only a mutation's release frees.
        if self.reg.read_only || self.reg.closing.load(Ordering::SeqCst) {
            return;
        }
        for e in &self.extents {
            match self.reg.pool.mblock_delete_deferred(e.id) {
                Ok(()) | Err(PoolError::Object(ObjectError::NotFound(_))) => {}
                Err(err) => tracing::warn!("freeing mblock {} of an object: {err}", e.id),
            }
            g.freed.push(e.id);
        }
    }
}

#[derive(Debug, Default)]
struct RegInner {
    /// Every `Blocks` alive, by its first mblock.
    live: HashMap<mpool::MblockId, Vec<mpool::MblockId>>,
    /// mblocks whose deferred delete was issued since the last compaction.
    freed: Vec<mpool::MblockId>,
}

#[derive(Debug)]
struct Registry {
    pool: Pool,
    read_only: bool,
    /// The catalog is being dropped.
    closing: AtomicBool,
    inner: Mutex<RegInner>,
    /// The store's content cache, told of the objects that go.
    cache: Option<Arc<crate::cache::ContentCache>>,
}

/// One object of the catalog.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its mblocks.
    pub blocks: Arc<Blocks>,
    /// The content of a small object kept in its catalog record (and in
    /// memory) instead of mblocks.
    pub inline: Option<bytes::Bytes>,
    /// Size in bytes.
    pub size: u64,
    /// Unique across the store; the e_tag is made from it.
    pub version: u64,
    /// Nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// User attributes.
    pub attrs: Vec<Attr>,
}

impl Entry {
    /// The object's e_tag.
    pub fn e_tag(&self) -> String {
        e_tag(self.version)
    }

    fn put_rec(&self, path: &str) -> PutRec {
        PutRec {
            version: self.version,
            mtime_ns: self.mtime_ns,
            size: self.size,
            path: path.to_string(),
            extents: self.blocks.extents.clone(),
            inline: self.inline.as_ref().map(|b| b.to_vec()),
            attrs: self.attrs.clone(),
        }
    }
}

impl Drop for Catalog {
    fn drop(&mut self) {
        // Best effort: what stays behind is found again at the next open.
        if !self.read_only && !self.broken.load(Ordering::SeqCst) {
            if let Err(e) = self.flush_behind() {
                tracing::warn!("appending the records of sealed puts at close: {e}");
            }
        }
        self.release_reserve();
        self.reg.closing.store(true, Ordering::SeqCst);
        crate::lock(&OPEN).retain(|c| *c != self.claim);
    }
}

/// The record that restores what `path` held before a put whose record
/// names mblocks that will never all exist.
fn undo_of(prev: &Option<Entry>, path: &str) -> Record {
    match prev {
        Some(p) => Record::Put(p.put_rec(path)),
        None => Record::Delete {
            path: path.to_string(),
        },
    }
}

/// The e_tag of a version.
pub fn e_tag(version: u64) -> String {
    format!("\"{version:x}\"")
}

/// What a put requires of the object now at its path.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Anything.
    Overwrite,
    /// No object.
    Create,
    /// An object with this e_tag.
    Update(Option<String>),
}

/// Why a conditional operation was refused.
#[derive(Debug)]
pub enum Refusal {
    /// The path holds an object (`Create`).
    Exists,
    /// The path holds no object, or another version (`Update`).
    Precondition(String),
    /// The source of a copy or rename does not exist.
    NotFound,
}

/// The outcome of a mutation.
pub type Outcome<T> = Result<std::result::Result<T, Refusal>>;

const STRIPES: usize = 256;

/// Options of [`Catalog::open`].
#[derive(Debug, Clone)]
pub struct CatalogOptions {
    /// The store's name (several stores may share a pool).
    pub name: String,
    /// Bytes of each of the catalog MDC's two logs (whole zones).
    pub catalog_bytes: u64,
    /// The media class of the catalog and of object content.
    pub class: mpool::MediaClass,
    /// The store's content cache (the catalog drops the chunks of the
    /// mblocks it frees).
    pub cache: Option<Arc<crate::cache::ContentCache>>,
}

/// The catalog of one store.
#[derive(Debug)]
pub struct Catalog {
    pool: Pool,
    /// The catalog MDC now (replaced when the catalog grows).
    cur: RwLock<(MdcId, Arc<Mdc>)>,
    /// The media class of the catalog MDC.
    class: mpool::MediaClass,
    reg: Arc<Registry>,
    map: RwLock<BTreeMap<String, Entry>>,
    next_version: AtomicU64,
    /// Shared by mutations, exclusive for a compaction.
    ops: RwLock<()>,
    stripes: Vec<Mutex<()>>,
    broken: AtomicBool,
    read_only: bool,
    /// Log bytes in use right after the last compaction.
    compacted_len: AtomicU64,
    compactions: AtomicU64,
    grown: AtomicU64,
    /// Catalog MDCs grown out of whose delete has yet to succeed.
    stale: Mutex<Vec<MdcId>>,
    /// What the last open repaired: put records dropped, mblocks freed.
    pub repaired: (u64, u64),
    /// This catalog's entry in `OPEN`.
    claim: (uuid::Uuid, String),
    /// mblocks reserved ahead for one-write puts.
    reserve: Mutex<Reserve>,
    /// Signalled when a refill of `reserve` ends.
    refilled: Condvar,
    /// Puts of content in mblocks since open, by how they committed.
    puts: PutCounts,
    /// The store's tag for its reserved mblocks ([`owner_tag`]).
    owner: u64,
    /// PUT records of sealed puts not yet in the log, in order (see the
    /// module docs); appended before any other record.
    behind: Mutex<Vec<Behind>>,
}

/// The PUT record of a sealed put, and its mblock.
#[derive(Debug)]
struct Behind {
    rec: Vec<u8>,
    id: mpool::MblockId,
}

/// Sealed puts' records are appended once this many wait.
const BEHIND_MAX: usize = 64;

/// The tag of store `name`'s reserved mblocks in the pool (FNV-1a, 64
/// bits, of a prefix and the name): stable across opens, and different
/// for stores of different names.
pub fn owner_tag(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"mpool-object-store\0".iter().chain(name.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// mblocks reserved in the pool for this store ahead of the puts that
/// will use them ([`Pool::mblock_reserve`]): a put into one of them is
/// committed by one write and one flush (a sealed commit, see the module
/// docs; docs/architecture.md, "mpool-object-store").
#[derive(Debug, Default)]
struct Reserve {
    /// Reserved, uncommitted mblocks: ready to use.
    ready: Vec<mpool::MblockId>,
    /// Every reserved mblock not yet named by a PUT or aborted (ready or
    /// handed out).
    held: HashSet<mpool::MblockId>,
    /// A thread is reserving more (one at a time).
    refilling: bool,
}

/// Puts of content in mblocks, by how they committed.
#[derive(Debug, Default)]
struct PutCounts {
    /// By a seal (one write, one flush).
    sealed: AtomicU64,
    /// The usual way (a synced PUT record, then the commits).
    unsealed: AtomicU64,
}

/// mblocks the reserve is refilled to, when it is below [`RESERVE_LOW`].
const RESERVE_TARGET: usize = 64;
/// See [`RESERVE_TARGET`]. Half of it: the refill (one synced record)
/// ends while concurrent puts still find mblocks ready. With a low mark
/// of 8, eight tasks putting 64 KiB objects drained the rest during the
/// refill, and every put that found the reserve empty went the usual way
/// (two flushes): session 24.
const RESERVE_LOW: usize = RESERVE_TARGET / 2;

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn stripe_of(path: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    (h.finish() % STRIPES as u64) as usize
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// An object as replay rebuilds it, before its mblocks are shared.
#[derive(Debug, Clone)]
struct Replayed {
    extents: Vec<Extent>,
    inline: Option<bytes::Bytes>,
    size: u64,
    version: u64,
    mtime_ns: i64,
    attrs: Vec<Attr>,
}

/// The catalog MDCs store `name` was pointed at, in the order of the
/// pointer records of the root MDC. The store's catalog is the last of
/// them that exists: a later one that does not was cut off by a crash
/// before its commit (at creation, or while the catalog grew).
pub fn catalog_pointers(pool: &Pool, name: &str) -> Result<Vec<MdcId>> {
    let root = pool.root_mdc()?;
    let mut found = Vec::new();
    for rec in root.reader()? {
        let rec = rec?;
        if let Some((n, id)) = crate::record::decode_pointer(&rec) {
            if n == name {
                if let Some(m) = mpool::ObjectId::from_raw(id).and_then(|o| MdcId::try_from(o).ok())
                {
                    found.push(m);
                }
            }
        }
    }
    Ok(found)
}

/// Times a mutation that found the log full (others filled it after its
/// check) compacts and tries again before it reports
/// [`StoreError::CatalogFull`].
const FULL_RETRIES: u32 = 3;

/// About the bytes of a catalog record naming `path`, `extents` mblocks,
/// `extra` more bytes (inline content, a second path) and `attrs`.
fn record_need(path: &str, extents: usize, extra: usize, attrs: &[Attr]) -> u64 {
    let a: usize = attrs.iter().map(|a| 16 + a.key.len() + a.value.len()).sum();
    (64 + path.len() + 16 * extents + extra + a) as u64
}

/// Bytes of catalog log that records of `payload` bytes (`n` of them)
/// take at most: each record is written twice (mirrored logs) with its
/// frame, and a margin for block padding.
fn log_cost(payload: u64, n: u64) -> u64 {
    2 * (payload + 32 * n) + 4096
}

/// Every store named in the root MDC.
pub fn store_names(pool: &Pool) -> Result<Vec<String>> {
    let root = pool.root_mdc()?;
    let mut names = Vec::new();
    for rec in root.reader()? {
        if let Some((n, _)) = crate::record::decode_pointer(&rec?) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    Ok(names)
}

impl Catalog {
    /// Open the catalog of store `opts.name`, creating it on a read-write
    /// pool that has none.
    pub fn open(pool: Pool, opts: &CatalogOptions) -> Result<Catalog> {
        let claim = (pool.uuid(), opts.name.clone());
        {
            let mut open = crate::lock(&OPEN);
            if open.contains(&claim) {
                return Err(StoreError::Busy(opts.name.clone()));
            }
            open.push(claim.clone());
        }
        match Catalog::open_claimed(pool, opts, claim.clone()) {
            Ok(c) => Ok(c),
            Err(e) => {
                crate::lock(&OPEN).retain(|c| *c != claim);
                Err(e)
            }
        }
    }

    fn open_claimed(
        pool: Pool,
        opts: &CatalogOptions,
        claim: (uuid::Uuid, String),
    ) -> Result<Catalog> {
        let read_only = pool.is_read_only();
        let reg = Arc::new(Registry {
            pool: pool.clone(),
            read_only,
            closing: AtomicBool::new(false),
            inner: Mutex::new(RegInner::default()),
            cache: opts.cache.clone(),
        });
        // The last pointer whose MDC exists: a later one was written
        // before its MDC's commit, which a crash cut off.
        let pointers = catalog_pointers(&pool, &opts.name)?;
        let mut existing = None;
        for (i, id) in pointers.iter().enumerate().rev() {
            match pool.mdc_open(*id) {
                Ok(m) => {
                    existing = Some((*id, m));
                    // Catalogs it replaced whose delete a crash cut off.
                    if !read_only {
                        for old in pointers[..i].iter().filter(|o| *o != id) {
                            match pool.mdc_delete(*old) {
                                Ok(()) | Err(PoolError::Object(ObjectError::NotFound(_))) => {}
                                Err(e) => return Err(e.into()),
                            }
                        }
                    }
                    break;
                }
                Err(PoolError::Object(ObjectError::NotFound(_))) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let (id, mdc) = match existing {
            Some(x) => x,
            None if read_only => return Err(StoreError::NoStore(opts.name.clone())),
            None => {
                let id = pool.mdc_alloc(opts.class, opts.catalog_bytes)?;
                // The pointer first: a crash before the commit leaves a
                // pointer to nothing (replaced at the next open), never an
                // MDC nobody names.
                let rec = crate::record::encode_pointer(&opts.name, id.object_id().raw());
                if let Err(e) = pool.root_mdc()?.append(&rec, true) {
                    let _ = pool.mdc_abort(id);
                    return Err(e.into());
                }
                pool.mdc_commit(id)?;
                (id, pool.mdc_open(id)?)
            }
        };
        let mut cat = Catalog {
            pool,
            cur: RwLock::new((id, mdc)),
            class: opts.class,
            reg,
            map: RwLock::new(BTreeMap::new()),
            next_version: AtomicU64::new(1),
            ops: RwLock::new(()),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            broken: AtomicBool::new(false),
            read_only,
            compacted_len: AtomicU64::new(0),
            compactions: AtomicU64::new(0),
            grown: AtomicU64::new(0),
            stale: Mutex::new(Vec::new()),
            repaired: (0, 0),
            owner: owner_tag(&claim.1),
            claim,
            reserve: Mutex::new(Reserve::default()),
            refilled: Condvar::new(),
            puts: PutCounts::default(),
            behind: Mutex::new(Vec::new()),
        };
        cat.replay()?;
        Ok(cat)
    }

    /// The catalog MDC's ID.
    pub fn mdc_id(&self) -> Option<MdcId> {
        Some(read(&self.cur).0)
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    fn mdc(&self) -> Result<Arc<Mdc>> {
        Ok(read(&self.cur).1.clone())
    }

    fn committed(&self, id: mpool::MblockId) -> Result<bool> {
        match self.pool.object_props(id) {
            Ok(p) => Ok(p.committed),
            Err(PoolError::Object(ObjectError::NotFound(_))) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn replay(&mut self) -> Result<()> {
        // Sealed puts: what the store's reserved mblocks hold (the pool
        // deletes those never sealed, or whose seal did not land whole).
        let mut sealed: Vec<(mpool::MblockId, PutRec)> = Vec::new();
        for id in self.pool.mblock_reserved(self.owner) {
            if let Some(bytes) = self.pool.mblock_recover(id)? {
                match Record::decode(&bytes) {
                    Ok(Record::Put(p)) if p.extents.len() == 1 && p.extents[0].id == id => {
                        sealed.push((id, p))
                    }
                    Ok(_) => {
                        return Err(StoreError::Corrupt(format!(
                            "the seal of mblock {id} holds no PUT record of it"
                        )))
                    }
                    Err(e) => {
                        return Err(StoreError::Corrupt(format!("the seal of mblock {id}: {e}")))
                    }
                }
            }
        }
        sealed.sort_by_key(|(_, p)| p.version);
        let mut logged_versions: HashSet<u64> = HashSet::new();
        let mdc = self.mdc()?;
        let mut map: BTreeMap<String, Replayed> = BTreeMap::new();
        // Paths whose last record is a PUT not yet proven: what they held
        // before it.
        let mut tentative: HashMap<String, Option<Replayed>> = HashMap::new();
        let mut mentioned: HashSet<mpool::MblockId> = HashSet::new();
        let mut next_version = 1u64;
        for (i, rec) in mdc.reader()?.enumerate() {
            let rec = Record::decode(&rec?)
                .map_err(|e| StoreError::Corrupt(format!("record {i}: {e}")))?;
            match rec {
                Record::Put(p) => {
                    mentioned.extend(p.extents.iter().map(|e| e.id));
                    next_version = next_version.max(p.version.saturating_add(1));
                    logged_versions.insert(p.version);
                    let e = Replayed {
                        extents: p.extents,
                        inline: p.inline.map(bytes::Bytes::from),
                        size: p.size,
                        version: p.version,
                        mtime_ns: p.mtime_ns,
                        attrs: p.attrs,
                    };
                    let prev = map.insert(p.path.clone(), e);
                    tentative.insert(p.path, prev);
                }
                Record::Delete { path } => {
                    tentative.remove(&path);
                    map.remove(&path);
                }
                Record::Copy {
                    rename,
                    version,
                    mtime_ns,
                    from,
                    to,
                } => {
                    tentative.remove(&from);
                    tentative.remove(&to);
                    next_version = next_version.max(version.saturating_add(1));
                    let mut e = map.get(&from).cloned().ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "record {i}: copies '{from}', which holds no object"
                        ))
                    })?;
                    e.version = version;
                    e.mtime_ns = mtime_ns;
                    if rename {
                        map.remove(&from);
                    }
                    map.insert(to, e);
                }
                Record::State { next_version: v } => next_version = next_version.max(v),
                Record::Pending { ids } => mentioned.extend(ids),
            }
        }
        // Not held while compacting below: a growth deletes this MDC.
        drop(mdc);
        // The sealed puts the log lacks, in order: each is the last
        // record of its path (a later one would have been appended after
        // it), and proven (its mblock is committed).
        let mut applied = 0u64;
        for (id, p) in &sealed {
            mentioned.insert(*id);
            if logged_versions.contains(&p.version) {
                continue;
            }
            applied += 1;
            next_version = next_version.max(p.version.saturating_add(1));
            tentative.remove(&p.path);
            map.insert(
                p.path.clone(),
                Replayed {
                    extents: p.extents.clone(),
                    inline: None,
                    size: p.size,
                    version: p.version,
                    mtime_ns: p.mtime_ns,
                    attrs: p.attrs.clone(),
                },
            );
        }
        // An unproven PUT whose mblocks are not all committed never
        // finished: the path holds what it held before.
        let mut dropped = 0u64;
        for (path, prev) in tentative {
            let Some(e) = map.get(&path) else { continue };
            let mut whole = true;
            for x in &e.extents {
                if !self.committed(x.id)? {
                    whole = false;
                    break;
                }
            }
            if !whole {
                dropped += 1;
                match prev {
                    Some(p) => map.insert(path, p),
                    None => map.remove(&path),
                };
            }
        }
        // Share one `Blocks` among the objects naming the same mblocks.
        let mut shared: HashMap<mpool::MblockId, Arc<Blocks>> = HashMap::new();
        let mut live: HashSet<mpool::MblockId> = HashSet::new();
        let mut out = BTreeMap::new();
        for (path, e) in map {
            live.extend(e.extents.iter().map(|x| x.id));
            let blocks = match e.extents.first() {
                Some(first) => match shared.get(&first.id) {
                    Some(b) if b.extents == e.extents => b.clone(),
                    Some(_) => {
                        return Err(StoreError::Corrupt(format!(
                            "'{path}' shares mblock {} with another object but not its extents",
                            first.id
                        )))
                    }
                    None => {
                        let b = Blocks::new(e.extents.clone(), &self.reg);
                        shared.insert(first.id, b.clone());
                        b
                    }
                },
                None => Blocks::new(Vec::new(), &self.reg),
            };
            out.insert(
                path,
                Entry {
                    blocks,
                    inline: e.inline,
                    size: e.size,
                    version: e.version,
                    mtime_ns: e.mtime_ns,
                    attrs: e.attrs,
                },
            );
        }
        *write(&self.map) = out;
        self.next_version.store(next_version, Ordering::SeqCst);
        let mut freed = 0u64;
        if !self.read_only {
            for id in mentioned.difference(&live) {
                match self.pool.mblock_delete(*id) {
                    Ok(()) => freed += 1,
                    Err(PoolError::Object(ObjectError::NotFound(_))) => {}
                    // Uncommitted after an open cannot be; leave it.
                    Err(PoolError::Object(ObjectError::NotCommitted(_))) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            self.repaired = (dropped, freed);
            // Write the clean state: dropped records must not be proven
            // by later ones, and freed mblocks need no mention any more.
            // (mblocks named but gone already, such as the reserve of a
            // closed store, need no compaction: their mentions are dropped
            // by the next one.)
            if dropped > 0 || freed > 0 || applied > 0 {
                self.compact()?;
            }
            // Every sealed put is in the log now (or its mblock deleted).
            let ids: Vec<mpool::MblockId> = sealed.iter().map(|(id, _)| *id).collect();
            self.pool.mblock_adopt(&ids)?;
        }
        self.compacted_len
            .store(self.mdc()?.usage().len, Ordering::SeqCst);
        Ok(())
    }

    fn writable(&self) -> Result<()> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        if self.broken.load(Ordering::SeqCst) {
            return Err(StoreError::Broken);
        }
        Ok(())
    }

    /// Append a record, durable on return. A failure leaves the log's
    /// state unknown (the record may be on the media): the catalog takes
    /// no more updates until reopened.
    ///
    /// A full log is refused before anything is written
    /// ([`StoreError::CatalogFull`]): the catalog stays usable.
    fn append(&self, rec: &Record) -> Result<()> {
        // The records of sealed puts first: a record of a path must
        // follow the sealed put of that path it comes after.
        self.append_after_behind(Some(rec))
    }

    /// The outcome of an append to the catalog's log, as the catalog's: a
    /// full log is [`StoreError::CatalogFull`] (nothing was written); any
    /// other failure leaves the catalog refusing updates until reopened.
    fn logged<T>(&self, r: std::result::Result<T, mpool::MdcError>) -> Result<T> {
        match r {
            Ok(v) => Ok(v),
            Err(mpool::MdcError::Mlog(mpool::MlogError::LogFull { .. })) => {
                Err(StoreError::CatalogFull)
            }
            Err(e) => {
                self.broken.store(true, Ordering::SeqCst);
                Err(e.into())
            }
        }
    }

    /// [`Catalog::append`] of a record the catalog cannot do without (the
    /// undo of a put whose record is durable): any failure, a full log
    /// included, leaves the catalog refusing updates until reopened.
    fn append_or_break(&self, rec: &Record) -> Result<()> {
        let r = self.append(rec);
        if r.is_err() {
            self.broken.store(true, Ordering::SeqCst);
        }
        r
    }

    fn lock_stripe(&self, path: &str) -> MutexGuard<'_, ()> {
        crate::lock(&self.stripes[stripe_of(path)])
    }

    fn lock_two(&self, a: &str, b: &str) -> (MutexGuard<'_, ()>, Option<MutexGuard<'_, ()>>) {
        let (x, y) = (stripe_of(a), stripe_of(b));
        if x == y {
            (crate::lock(&self.stripes[x]), None)
        } else {
            let (lo, hi) = (x.min(y), x.max(y));
            let g1 = crate::lock(&self.stripes[lo]);
            let g2 = crate::lock(&self.stripes[hi]);
            (g1, Some(g2))
        }
    }

    /// The object at `path`.
    pub fn get(&self, path: &str) -> Option<Entry> {
        read(&self.map).get(path).cloned()
    }

    /// Objects whose path starts with `prefix` (a string prefix), in
    /// path order, after `offset` when given.
    pub fn range(&self, prefix: &str, offset: Option<&str>) -> Vec<(String, Entry)> {
        let map = read(&self.map);
        let start = match offset {
            Some(o) if o >= prefix => std::ops::Bound::Excluded(o.to_string()),
            _ => std::ops::Bound::Included(prefix.to_string()),
        };
        map.range((start, std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// One level under `prefix` (a path, `""` for the root), as
    /// object_store's `list_with_delimiter` gives it: the objects directly
    /// under it, and the common prefixes (paths one segment longer that
    /// have objects under them), both in path order. Skips over each
    /// common prefix's objects instead of visiting them.
    pub fn list_level(&self, prefix: &str) -> (Vec<(String, Entry)>, Vec<String>) {
        use std::ops::Bound;
        let base = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let map = read(&self.map);
        let mut objects = Vec::new();
        let mut common = Vec::new();
        let mut cursor = Bound::Included(base.clone());
        loop {
            let next = map
                .range::<String, _>((cursor.clone(), Bound::Unbounded))
                .next();
            let Some((k, e)) = next else { break };
            let Some(rest) = k.strip_prefix(base.as_str()) else {
                break;
            };
            match rest.find('/') {
                Some(i) => {
                    let cp = format!("{base}{}", &rest[..i]);
                    // Every key starting with `cp/` sorts before `cp0`
                    // ('0' follows '/').
                    cursor = Bound::Included(format!("{cp}0"));
                    common.push(cp);
                }
                None => {
                    if !rest.is_empty() {
                        objects.push((k.clone(), e.clone()));
                    }
                    cursor = Bound::Excluded(k.clone());
                }
            }
        }
        (objects, common)
    }

    /// Number of objects and their total size.
    pub fn totals(&self) -> (u64, u64) {
        let map = read(&self.map);
        (map.len() as u64, map.values().map(|e| e.size).sum())
    }

    /// Compact when the log has grown to half its capacity and to twice
    /// what the last compaction left, or when a record of about `need`
    /// bytes would not fit (the compaction grows the catalog when its live
    /// state needs more room).
    fn maybe_compact(&self, need: u64) -> Result<()> {
        if self.needs_compaction(need)? {
            self.compact_if(need, true)?;
        }
        Ok(())
    }

    /// Whether [`Catalog::maybe_compact`] would compact now.
    fn needs_compaction(&self, need: u64) -> Result<bool> {
        let u = self.mdc()?.usage();
        let full = u.len + log_cost(need, 1) > u.capacity;
        Ok(full
            || (u.len > u.capacity / 2 && u.len > 2 * self.compacted_len.load(Ordering::SeqCst)))
    }

    /// Puts of content in mblocks since open: (sealed, the usual way).
    pub fn put_counts(&self) -> (u64, u64) {
        (
            self.puts.sealed.load(Ordering::Relaxed),
            self.puts.unsealed.load(Ordering::Relaxed),
        )
    }

    /// Compactions done since open (the open's own included).
    pub fn compactions(&self) -> u64 {
        self.compactions.load(Ordering::SeqCst)
    }

    /// Rewrite the catalog as its live state, in the MDC's other log, or
    /// in a larger MDC when the live state needs more than half of it.
    pub fn compact(&self) -> Result<()> {
        self.compact_if(0, false)
    }

    /// [`Catalog::compact`], leaving room for a record of `need` bytes;
    /// with `recheck`, only if the log still needs it (see
    /// [`Catalog::maybe_compact`]) once this thread holds the catalog
    /// alone: the callers
    /// that found the log full together wait for one compaction, which
    /// makes room for all of them, instead of each compacting in turn
    /// (eight tasks did eight compactions, a 0.4 s stall: session 24).
    fn compact_if(&self, need: u64, recheck: bool) -> Result<()> {
        self.writable()?;
        let _x = write(&self.ops);
        if recheck && !self.needs_compaction(need)? {
            return Ok(());
        }
        let mdc = self.mdc()?;
        // The sealed puts' records: the live state written below holds
        // them; their mblocks are adopted once it is durable.
        let behind = std::mem::take(&mut *crate::lock(&self.behind));
        let r = self.compact_locked(mdc, need);
        match r {
            Ok(()) => self.adopt(&behind),
            Err(_) => crate::lock(&self.behind)
                .splice(0..0, behind)
                .for_each(drop),
        }
        r
    }

    /// [`Catalog::compact_if`], `ops` held exclusively.
    fn compact_locked(&self, mdc: Arc<Mdc>, need: u64) -> Result<()> {
        // Deletes issued so far become durable: no record need name them.
        std::mem::take(&mut crate::lock(&self.reg.inner).freed);
        self.pool.sync()?;
        let recs = {
            let map = read(&self.map);
            let pending: Vec<mpool::MblockId> = {
                let held: HashSet<mpool::MblockId> = map
                    .values()
                    .flat_map(|e| e.blocks.extents.iter().map(|x| x.id))
                    .collect();
                let g = crate::lock(&self.reg.inner);
                g.live
                    .values()
                    .flatten()
                    .filter(|id| !held.contains(id))
                    .chain(g.freed.iter())
                    .copied()
                    .collect()
            };
            let next_version = self.next_version.load(Ordering::SeqCst);
            let mut recs = Vec::with_capacity(map.len() + 2);
            recs.push(Record::State { next_version }.encode());
            for (path, e) in map.iter() {
                recs.push(Record::Put(e.put_rec(path)).encode());
            }
            if !pending.is_empty() {
                recs.push(Record::Pending { ids: pending }.encode());
            }
            recs
        };
        let live = log_cost(
            recs.iter().map(|r| r.len() as u64).sum::<u64>(),
            recs.len() as u64,
        ) + log_cost(need, 1);
        let cap = mdc.usage().capacity;
        if live <= cap / 2 {
            match self.rewrite(&mdc, &recs) {
                Ok(()) => {
                    self.compacted_len.store(mdc.usage().len, Ordering::SeqCst);
                    self.compactions.fetch_add(1, Ordering::SeqCst);
                    drop(mdc);
                    self.delete_stale();
                    return Ok(());
                }
                // The estimate was short: grow instead.
                Err(StoreError::CatalogFull) => {}
                Err(e) => return Err(e),
            }
        }
        drop(mdc);
        self.grow(&recs, (4 * live).max(2 * cap))
    }

    /// Write `recs` (the live state) as the MDC's other log.
    fn rewrite(&self, mdc: &Mdc, recs: &[Vec<u8>]) -> Result<()> {
        mdc.cstart()?;
        let body = || -> std::result::Result<(), mpool::MdcError> {
            for r in recs {
                mdc.append(r, false)?;
            }
            Ok(())
        };
        if let Err(e) = body() {
            if mdc.cabort().is_err() {
                self.broken.store(true, Ordering::SeqCst);
                return Err(e.into());
            }
            return Err(match e {
                mpool::MdcError::Mlog(mpool::MlogError::LogFull { .. }) => StoreError::CatalogFull,
                e => e.into(),
            });
        }
        if let Err(e) = mdc.cend() {
            self.broken.store(true, Ordering::SeqCst);
            return Err(e.into());
        }
        Ok(())
    }

    /// Move the catalog to a new MDC of `capacity` bytes per log holding
    /// `recs` (the live state); the caller holds `ops` exclusively. The new
    /// MDC is written and synced uncommitted, a pointer record naming it is
    /// appended to the root MDC and synced, then it is committed: a crash
    /// before the commit leaves the new MDC to vanish at the next open,
    /// which then takes the catalog from the previous pointer, intact; a
    /// crash after it leaves the old MDC for the next open to delete.
    fn grow(&self, recs: &[Vec<u8>], capacity: u64) -> Result<()> {
        let name = self.claim.1.clone();
        let id = self.pool.mdc_alloc(self.class, capacity)?;
        let write_new = || -> Result<Arc<Mdc>> {
            let m = self.pool.mdc_open(id)?;
            let n = recs.len();
            for (i, r) in recs.iter().enumerate() {
                m.append(r, i + 1 == n)?;
            }
            if n == 0 {
                m.sync()?;
            }
            let ptr = crate::record::encode_pointer(&name, id.object_id().raw());
            self.pool.root_mdc()?.append(&ptr, true)?;
            Ok(m)
        };
        let new = match write_new() {
            Ok(m) => m,
            Err(e) => {
                // Nothing names it durably but a pointer whose MDC will
                // vanish: the catalog stays where it is.
                if let Err(a) = self.pool.mdc_abort(id) {
                    tracing::warn!("aborting the catalog MDC {id} that could not be written: {a}");
                }
                return Err(e);
            }
        };
        if let Err(e) = self.pool.mdc_commit(id) {
            // The commit may be durable: the next open decides which
            // catalog holds the state; no update until then.
            self.broken.store(true, Ordering::SeqCst);
            return Err(e.into());
        }
        let old = {
            let mut cur = write(&self.cur);
            std::mem::replace(&mut *cur, (id, new.clone()))
        };
        drop(old.1);
        crate::lock(&self.stale).push(old.0);
        self.delete_stale();
        self.compacted_len.store(new.usage().len, Ordering::SeqCst);
        self.compactions.fetch_add(1, Ordering::SeqCst);
        self.grown.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Delete the catalog MDCs the catalog grew out of. One still held
    /// (a caller looking at its usage) is tried again at the next
    /// growth or compaction; a crash first leaves it to the next open.
    fn delete_stale(&self) {
        let mut stale = crate::lock(&self.stale);
        stale.retain(|id| match self.pool.mdc_delete(*id) {
            Ok(()) | Err(PoolError::Object(ObjectError::NotFound(_))) => false,
            Err(e) => {
                tracing::debug!("deleting the catalog MDC {id} the catalog grew out of: {e}");
                true
            }
        });
    }

    /// Times the catalog moved to a larger MDC since open.
    pub fn growths(&self) -> u64 {
        self.grown.load(Ordering::SeqCst)
    }

    fn check_mode(&self, path: &str, mode: &Mode) -> std::result::Result<Option<Entry>, Refusal> {
        let cur = self.get(path);
        match (mode, &cur) {
            (Mode::Overwrite, _) | (Mode::Create, None) => Ok(cur),
            (Mode::Create, Some(_)) => Err(Refusal::Exists),
            (Mode::Update(_), None) => Err(Refusal::Precondition(format!(
                "no object at {path} to update"
            ))),
            (Mode::Update(want), Some(e)) => match want {
                Some(w) if *w == e.e_tag() => Ok(cur),
                Some(w) => Err(Refusal::Precondition(format!(
                    "{} does not match {w}",
                    e.e_tag()
                ))),
                None => Err(Refusal::Precondition(
                    "an update needs the e_tag of the object it replaces".into(),
                )),
            },
        }
    }

    /// Make `extents` (uncommitted mblocks holding `size` bytes), or the
    /// `inline` content, the object at `path`, if `mode` allows. Durable
    /// on return. On any failure or refusal the mblocks are aborted.
    ///
    /// An object of one reserved mblock ([`Catalog::take_reserved`]) is
    /// committed by a seal that carries its PUT record: one flush and no
    /// metadata write; one write in all for at most
    /// [`mpool::MBLOCK_HOLD_MAX`] bytes (see the module docs).
    pub fn put(
        &self,
        path: &str,
        extents: Vec<Extent>,
        inline: Option<bytes::Bytes>,
        size: u64,
        attrs: Vec<Attr>,
        mode: Mode,
    ) -> Outcome<Entry> {
        let out = self.put_in(path, &extents, inline, size, attrs, mode);
        {
            // Named by the PUT now, or aborted.
            let mut r = crate::lock(&self.reserve);
            for x in &extents {
                r.held.remove(&x.id);
            }
        }
        if matches!(out, Ok(Ok(_))) && crate::lock(&self.behind).len() >= BEHIND_MAX {
            // The put is done; a failure here leaves the records behind
            // (the seals keep them) and the catalog refusing updates.
            if let Err(e) = self.flush_behind() {
                tracing::warn!("appending the records of sealed puts: {e}");
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn put_in(
        &self,
        path: &str,
        extents: &[Extent],
        inline: Option<bytes::Bytes>,
        size: u64,
        attrs: Vec<Attr>,
        mode: Mode,
    ) -> Outcome<Entry> {
        // Committed already (the one-flush way, whose record did not make
        // it): deleted rather than aborted on the way out.
        let mut committed = false;
        let discard = |committed: bool| {
            for e in extents {
                let _ = if committed {
                    self.pool.mblock_delete(e.id)
                } else {
                    self.pool.mblock_abort(e.id)
                };
            }
        };
        let need = record_need(
            path,
            extents.len(),
            inline.as_ref().map_or(0, |b| b.len()),
            &attrs,
        );
        // One flush and no metadata write for the put: a sealed commit of
        // its reserved mblock, the seal carrying the PUT record.
        let ride = extents.len() == 1 && need <= mpool::SEAL_CLIENT_MAX as u64 && {
            let r = crate::lock(&self.reserve);
            extents.iter().all(|x| r.held.contains(&x.id))
        };
        let mut tries = 0;
        let (_s, _p, prev, version, rec) = loop {
            if let Err(e) = self.writable().and_then(|()| self.maybe_compact(need)) {
                discard(committed);
                return Err(e);
            }
            let s = read(&self.ops);
            let p = self.lock_stripe(path);
            let prev = match self.check_mode(path, &mode) {
                Ok(p) => p,
                Err(r) => {
                    discard(committed);
                    return Ok(Err(r));
                }
            };
            let version = self.next_version.fetch_add(1, Ordering::SeqCst);
            let rec = PutRec {
                version,
                mtime_ns: now_ns(),
                size,
                path: path.to_string(),
                extents: extents.to_vec(),
                inline: inline.as_ref().map(|b| b.to_vec()),
                attrs: attrs.clone(),
            };
            if ride && !committed {
                let put = Record::Put(rec.clone()).encode();
                match self.pool.mblock_commit_sealed(extents[0].id, &put) {
                    Ok(_) => {
                        crate::lock(&self.behind).push(Behind {
                            rec: put,
                            id: extents[0].id,
                        });
                        committed = true;
                        self.puts.sealed.fetch_add(1, Ordering::Relaxed);
                        break (s, p, prev, version, rec);
                    }
                    // Refused with nothing written (the content and the
                    // seal do not fit the zone): the usual way.
                    Err(PoolError::InvalidArgument(_)) => {}
                    Err(e) => {
                        discard(false);
                        return Err(e.into());
                    }
                }
            }
            match self.append(&Record::Put(rec.clone())) {
                Ok(()) => break (s, p, prev, version, rec),
                // Others filled the log since the check: compact (or grow)
                // and try again.
                Err(StoreError::CatalogFull) if tries < FULL_RETRIES => tries += 1,
                Err(e) => {
                    discard(committed);
                    return Err(e);
                }
            }
        };
        if !committed {
            if !extents.is_empty() {
                self.puts.unsealed.fetch_add(1, Ordering::Relaxed);
            }
            for (i, x) in extents.iter().enumerate() {
                if let Err(e) = self.pool.mblock_commit(x.id) {
                    // The record is durable and names mblocks that will
                    // never all exist: say what the path holds before
                    // anything else names it.
                    let _ = self.pool.mblock_abort(x.id);
                    for later in &extents[i + 1..] {
                        let _ = self.pool.mblock_abort(later.id);
                    }
                    for done in &extents[..i] {
                        let _ = self.pool.mblock_delete(done.id);
                    }
                    self.append_or_break(&undo_of(&prev, path))?;
                    return Err(e.into());
                }
            }
        }
        let entry = Entry {
            blocks: Blocks::new(extents.to_vec(), &self.reg),
            inline,
            size,
            version,
            mtime_ns: rec.mtime_ns,
            attrs: rec.attrs,
        };
        let old = write(&self.map).insert(path.to_string(), entry.clone());
        drop(old);
        Ok(Ok(entry))
    }

    /// An mblock of the reserve (see [`Reserve`]), refilling it when half
    /// is used and waiting for another thread's refill when none is ready;
    /// `None` when the class is short of space. The caller writes an
    /// object of at most one mblock into it and hands it to
    /// [`Catalog::put`], or gives it back with [`Catalog::unreserve`] after
    /// aborting it.
    pub fn take_reserved(&self) -> Option<mpool::MblockId> {
        if self.read_only {
            return None;
        }
        let mut r = crate::lock(&self.reserve);
        loop {
            if r.ready.len() < RESERVE_LOW && !r.refilling {
                return self.refill_reserve(r);
            }
            if let Some(id) = r.ready.pop() {
                return Some(id);
            }
            // Empty while another thread refills: waiting for its one
            // synced record costs less than the usual way's two flushes.
            r = self.refilled.wait(r).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Forget a reserved mblock the caller aborted.
    pub fn unreserve(&self, id: mpool::MblockId) {
        crate::lock(&self.reserve).held.remove(&id);
    }

    /// Abort the reserve's ready mblocks (their zones go back to the pool,
    /// free when this returns): at close, and when the class runs out of
    /// space.
    pub fn release_reserve(&self) {
        let ids = {
            let mut r = crate::lock(&self.reserve);
            let ids = std::mem::take(&mut r.ready);
            for id in &ids {
                r.held.remove(id);
            }
            ids
        };
        let any = !ids.is_empty();
        for id in ids {
            let _ = self.pool.mblock_abort(id);
        }
        if any && !self.read_only {
            // The aborts' delete records durable: their zones are free
            // for the put that ran out of space to try again.
            if let Err(e) = self.pool.sync() {
                tracing::debug!("freeing the reserve's zones: {e}");
            }
        }
    }

    /// Reserve mblocks in the pool up to [`RESERVE_TARGET`] (their reserve
    /// records durable when this returns), and take one of them. One
    /// thread at a time: the others go on with what is ready, and wait for
    /// this refill when nothing is. `None` when the class is short of
    /// space and nothing is ready: puts then go the usual way.
    fn refill_reserve(&self, mut r: MutexGuard<'_, Reserve>) -> Option<mpool::MblockId> {
        /// Ends the refill however the reservation returns (a panic
        /// included), so no waiter sleeps forever.
        struct Refill<'a>(&'a Catalog);
        impl Drop for Refill<'_> {
            fn drop(&mut self) {
                crate::lock(&self.0.reserve).refilling = false;
                self.0.refilled.notify_all();
            }
        }
        r.refilling = true;
        let want = RESERVE_TARGET.saturating_sub(r.ready.len());
        drop(r);
        let _end = Refill(self);
        match self.pool.mblock_reserve(self.class, self.owner, want) {
            Ok(ids) => {
                let mut r = crate::lock(&self.reserve);
                r.held.extend(ids.iter().copied());
                r.ready.extend(ids);
                r.ready.pop()
            }
            Err(e) => {
                tracing::debug!("reserving mblocks for one-write puts: {e}");
                crate::lock(&self.reserve).ready.pop()
            }
        }
    }

    /// Append the records of sealed puts waiting in `behind` (durable on
    /// return), then adopt their mblocks.
    fn flush_behind(&self) -> Result<()> {
        let _s = read(&self.ops);
        self.writable()?;
        self.append_after_behind(None)
    }

    /// Append the sealed puts' records waiting in `behind`, then `rec`
    /// if any, in that order in the log, durable on return; then adopt
    /// the sealed puts' mblocks (their records are in the log now). The
    /// caller holds `ops` shared. On a full log every record waiting goes
    /// back to wait ([`StoreError::CatalogFull`]).
    fn append_after_behind(&self, rec: Option<&Record>) -> Result<()> {
        let mdc = self.mdc()?;
        let drained = {
            let mut q = crate::lock(&self.behind);
            if q.is_empty() && rec.is_none() {
                return Ok(());
            }
            let drained = std::mem::take(&mut *q);
            let mut appended = Ok(());
            for b in &drained {
                appended = mdc.append(&b.rec, false).map(|_| ());
                if appended.is_err() {
                    break;
                }
            }
            if let (Ok(()), Some(r)) = (&appended, rec) {
                appended = mdc.append(&r.encode(), false).map(|_| ());
            }
            if let Err(e) = self.logged(appended) {
                // Appended again before anything else: a repeated PUT
                // precedes every later record of its path, as the first.
                q.splice(0..0, drained);
                return Err(e);
            }
            drained
        };
        self.logged(mdc.sync())?;
        self.adopt(&drained);
        Ok(())
    }

    /// Adopt the mblocks of sealed puts whose records are durable in the
    /// log (best effort: one not adopted is found again at the next
    /// open, and its record is in the log).
    fn adopt(&self, done: &[Behind]) {
        if done.is_empty() {
            return;
        }
        let ids: Vec<mpool::MblockId> = done.iter().map(|b| b.id).collect();
        if let Err(e) = self.pool.mblock_adopt(&ids) {
            tracing::warn!("adopting the mblocks of sealed puts: {e}");
        }
    }

    /// Remove the object at `path` (nothing if there is none). Durable on
    /// return. Returns whether there was one.
    pub fn delete(&self, path: &str) -> Result<bool> {
        let need = record_need(path, 0, 0, &[]);
        let mut tries = 0;
        let (_s, _p) = loop {
            self.writable()?;
            self.maybe_compact(need)?;
            let s = read(&self.ops);
            let p = self.lock_stripe(path);
            if self.get(path).is_none() {
                return Ok(false);
            }
            match self.append(&Record::Delete {
                path: path.to_string(),
            }) {
                Ok(()) => break (s, p),
                Err(StoreError::CatalogFull) if tries < FULL_RETRIES => tries += 1,
                Err(e) => return Err(e),
            }
        };
        let old = write(&self.map).remove(path);
        drop(old);
        Ok(true)
    }

    /// Copy (or rename) `from` to `to`, sharing its mblocks; with
    /// `create`, refused when `to` exists. Durable on return.
    pub fn copy(&self, from: &str, to: &str, rename: bool, create: bool) -> Outcome<()> {
        let need = record_need(from, 0, to.len(), &[]);
        let mut tries = 0;
        let (_s, _g, src, version, mtime_ns) = loop {
            self.writable()?;
            self.maybe_compact(need)?;
            let s = read(&self.ops);
            let g = self.lock_two(from, to);
            let Some(src) = self.get(from) else {
                return Ok(Err(Refusal::NotFound));
            };
            if create && self.get(to).is_some() {
                return Ok(Err(Refusal::Exists));
            }
            if from == to {
                // The object stays where it is (a rename onto itself).
                return Ok(Ok(()));
            }
            let version = self.next_version.fetch_add(1, Ordering::SeqCst);
            let mtime_ns = now_ns();
            match self.append(&Record::Copy {
                rename,
                version,
                mtime_ns,
                from: from.to_string(),
                to: to.to_string(),
            }) {
                Ok(()) => break (s, g, src, version, mtime_ns),
                Err(StoreError::CatalogFull) if tries < FULL_RETRIES => tries += 1,
                Err(e) => return Err(e),
            }
        };
        let mut map = write(&self.map);
        let e = Entry {
            version,
            mtime_ns,
            ..src
        };
        let old = map.insert(to.to_string(), e);
        let gone = if rename { map.remove(from) } else { None };
        drop(map);
        drop((old, gone));
        Ok(Ok(()))
    }

    /// Space use of the catalog log: (bytes used, capacity, records).
    pub fn log_usage(&self) -> Result<mpool::MdcUsage> {
        Ok(self.mdc()?.usage())
    }
}

#[cfg(test)]
mod tests {
    use super::owner_tag;

    /// The owner tag is on the media (the pool's reserve records): the
    /// same name gives the same tag in every release (docs/format.md,
    /// "Order of a put").
    #[test]
    fn the_owner_tag_of_a_name_never_changes() {
        assert_eq!(owner_tag("default"), 0xbcbf_cc04_fafa_e35b);
        assert_ne!(owner_tag("default"), owner_tag("other"));
    }
}
