//! mpool: a userspace object storage media pool.
//!
//! mpool gives storage engines built on immutable data (LSM-trees, log
//! stores, event streams) the objects they need, on raw block devices or
//! plain files, bypassing the page cache:
//!
//! - an **mblock** is a write-once container of bytes: allocate, append,
//!   commit (durable and immutable from then on), read at any offset,
//!   delete. An mblock that was never committed vanishes on a crash.
//! - an **mlog** is a record log: append records (each durable on return
//!   when asked, threads sharing device flushes), read them back in order,
//!   erase and start again.
//! - an **MDC** (metadata container) is a pair of mlogs with compaction, for
//!   a client's own small, crash-safe metadata. Every pool has a root MDC
//!   where a client finds its way back to its objects after a restart.
//!
//! A [`Pool`] spans one or two media classes ([`MediaClass::Capacity`],
//! required, and [`MediaClass::Staging`], a faster device). Each device is
//! cut into zones of the pool's mblock size; an mblock takes one zone.
//!
//! # A first program
//!
//! ```
//! use mpool::{CreateOptions, DeviceSpec, MediaClass, OpenOptions, Pool};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("mpool-first-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! // Pools opened by name are recorded in a run directory and a list of
//! // device files; keep this program's to itself.
//! std::env::set_var("MPOOL_RUNDIR", dir.join("run"));
//! std::env::set_var("MPOOL_CONFIG", dir.join("devices"));
//! std::env::set_var("MPOOL_SCAN_DEVICES", "none"); // no block device of the machine
//!
//! // A pool on a 64 MiB file, with 1 MiB mblocks.
//! let spec = DeviceSpec {
//!     path: dir.join("pool.img"),
//!     create_size: Some(64 << 20),
//!     zone_size: 1 << 20,
//! };
//! let pool = Pool::create("first", &spec, &CreateOptions::default())?;
//!
//! // Write an object in pieces, commit it, read part of it back.
//! let id = pool.mblock_alloc(MediaClass::Capacity)?;
//! pool.mblock_write(id, b"hello, ")?;
//! pool.mblock_write(id, b"world")?;
//! let props = pool.mblock_commit(id)?; // durable and immutable from here
//! assert_eq!(props.len, 12);
//! let mut word = [0u8; 5];
//! pool.mblock_read(id, 7, &mut word)?;
//! assert_eq!(&word, b"world");
//!
//! // Remember it in the root MDC, durably (`true`: sync).
//! pool.root_mdc()?.append(id.to_string().as_bytes(), true)?;
//! pool.close()?; // reports any error of the final flush
//!
//! // Later, in any process: open by name, find the object again.
//! let pool = Pool::open("first", &OpenOptions::default())?;
//! let roots = pool.root_mdc()?.reader()?.collect::<Result<Vec<_>, _>>()?;
//! let id: mpool::MblockId = std::str::from_utf8(&roots[0])?.parse()?;
//! let mut all = vec![0u8; 12];
//! pool.mblock_read(id, 0, &mut all)?;
//! assert_eq!(&all, b"hello, world");
//! pool.mblock_delete(id)?; // durable on return; the zone is free again
//! pool.close()?;
//!
//! mpool::admin::destroy("first")?; // erase the pool's superblocks
//! std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! # The API in one page
//!
//! **Pools.** [`Pool::create`] formats devices ([`DeviceSpec`]: a file,
//! created at `create_size` if missing, or a block device) and
//! [`CreateOptions`] sets the owner, mode, label and a staging device.
//! [`Pool::open`] opens an active pool by name or UUID ([`OpenOptions`]:
//! read-only, I/O engine). A `Pool` is `Send + Sync` and cheap to clone:
//! share it between threads. [`Pool::close`] flushes what is pending and
//! reports the outcome; dropping the last handle does the same silently.
//! Properties: [`Pool::props`], [`Pool::get`] and [`Pool::set`] by name
//! ([`PROPERTIES`], [`SETTABLE`]), [`Pool::usage`] per media class,
//! [`Pool::check`] to verify every checksum. The LVM-like verbs on whole
//! pools (destroy, activate, deactivate, rename, scan) are in [`admin`].
//!
//! **Object IDs** are typed: [`MblockId`], [`MlogId`] and [`MdcId`] are
//! what the calls for each kind take, so one cannot be passed for another;
//! [`ObjectId`] names any object (listings, [`Pool::object_props`]). All
//! print and parse as `0x` and 16 hex digits; parsing a typed ID checks the
//! type.
//!
//! **mblocks.** [`Pool::mblock_alloc`], [`Pool::mblock_write`] (append;
//! [`Pool::mblock_write_aligned`] writes from an [`AlignedBuf`] with no
//! copy), [`Pool::mblock_commit`] (content and commit record durable on
//! return) or [`Pool::mblock_abort`], [`Pool::mblock_delete`] (durable on
//! return) or [`Pool::mblock_delete_deferred`] (durable at the next flush of
//! its metadata log, within about 100 ms or at [`Pool::sync`]). Reads, in
//! three forms: [`Pool::mblock_read`], one read into a byte slice;
//! [`Pool::mblock_read_batch`], many [`MblockRead`]s with a bounded number
//! in flight; [`Pool::mblock_reader`], an [`MblockReader`] that keeps
//! [`AlignedRead`]s in flight across calls, each going from the device
//! straight into the caller's aligned buffer (what fio calls a queue depth).
//!
//! **mlogs and MDCs.** [`Pool::mlog_alloc`] with a capacity,
//! [`Pool::mlog_commit`], then [`Pool::mlog_open`] gives an [`Mlog`]:
//! `append(record, sync)`, `reader()`, `erase()`. MDCs likewise
//! ([`Pool::mdc_alloc`], [`Pool::mdc_open`], [`Mdc`]), with compaction
//! (`cstart`/`cend`); [`Pool::root_mdc`] is the pool's own.
//!
//! **Event streams.** [`Pool::stream_create`], [`Pool::stream_open`] gives a
//! [`Stream`]: `append` (durable on return; threads share flushes),
//! `append_with(.., Durability::Group)`, `append_batch`, dense 64-bit
//! offsets from 0; `read(offset)`, `iter(from)`, `follow(from)` (waits for
//! new records); the tail is an mlog (on the staging class when there is
//! one), full tails are sealed in the background into committed mblocks
//! read through mcache maps; `trim_before`, `trim_to_size`,
//! `trim_older_than`; [`Pool::stream_delete`], [`Pool::streams`]. See
//! [`stream`].
//!
//! **Errors.** Every call returns [`Result`]; [`Error`] holds one family per
//! kind of operation: [`PoolError`] (finding, creating, opening pools),
//! [`ObjectError`] (an object: not found, wrong type, not committed, out of
//! range, checksum mismatch, …), [`MetadataError`] (the pool's metadata),
//! [`StorageError`] (devices and space), plus `InvalidArgument` and
//! `Internal` (a bug in mpool: debug builds panic instead).
//!
//! ```
//! # fn f(pool: &mpool::Pool, id: mpool::MblockId) -> mpool::Result<()> {
//! use mpool::{Error, ObjectError};
//! match pool.mblock_delete(id) {
//!     Ok(()) | Err(Error::Object(ObjectError::NotFound(_))) => Ok(()), // gone either way
//!     Err(e) => Err(e),
//! }
//! # }
//! ```
//!
//! **Crash safety.** What a call reports as done survives a crash or power
//! cut: committed mblocks, synced mlog and MDC records, deletes. What it did
//! not report is either absent after a restart or, for an uncommitted
//! mblock, gone with its space. IDs are never reused. `docs/format.md` in
//! the repository has every on-media byte.
//!
//! # Features
//!
//! - `internals`: test tooling: the device layer (memory and
//!   fault-injecting devices), the I/O engines, the on-media codecs, the
//!   torture harnesses, and pools on devices the caller opened. For the
//!   `mpool` command, benchmarks, fuzzing and tests; not a stable API.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

// The README's library example is compiled and run as a doc test.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Declares modules that are public with the `internals` feature (test
/// tooling: the torture harnesses, the CLI's developer commands, the
/// benchmarks' device-level runs, the fuzz targets) and private otherwise,
/// as raft-engine does with its `internals` feature.
macro_rules! internals {
    ($($name:ident;)*) => {$(
        #[cfg(feature = "internals")]
        pub mod $name;
        #[cfg(not(feature = "internals"))]
        mod $name;
    )*};
}

/// A function that is public with the `internals` feature and visible to
/// the crate only without it: constructors that take a raw device (a
/// library user reaches logs through the pool, never through a device).
macro_rules! internals_pub {
    ($(#[$m:meta])* fn $($rest:tt)*) => {
        #[cfg(feature = "internals")]
        $(#[$m])*
        pub fn $($rest)*
        #[cfg(not(feature = "internals"))]
        $(#[$m])*
        pub(crate) fn $($rest)*
    };
}

pub mod admin;
mod blkid;
mod catalog;
mod check;
mod error;
mod lock;
pub mod mcache;
mod objid;
mod pool;
mod space_map;
pub mod stream;
internals! {
    crc;
    dev;
    format;
    io;
    mdc;
    mlog;
    superblock;
}
#[cfg(feature = "internals")]
pub mod torture;

pub use catalog::{Damage, MdcStats, DEFAULT_CSUM_CACHE_BYTES, DEFAULT_CSUM_SHIFT};
/// The most bytes of a caller's a sealed commit carries
/// ([`Pool::mblock_commit_sealed`]).
pub const SEAL_CLIENT_MAX: usize = catalog::seal::CLIENT_MAX;
/// The longest content a sealed commit takes: an mblock's content up to
/// this many bytes waits in memory until its commit
/// ([`Pool::mblock_commit_sealed`]).
pub const MBLOCK_HOLD_MAX: usize = catalog::mblock::HOLD_MAX;
pub use check::{CheckProblem, CheckRepair, CheckReport};
pub use dev::{DevError, DeviceKind};
pub use error::{Error, MetadataError, ObjectError, PoolError, Result, StorageError};
pub use format::superblock::{MediaClass, Member, SuperblockError};
pub use io::{thp_available, AlignedBuf, EngineChoice, HugeRegion, HUGE_PAGE};
pub use mcache::{Advice, MappedRef, McacheMap, McacheStats};
pub use mdc::{Mdc, MdcError, MdcReader, MdcUsage, StagedRecord, WrittenRecord};
pub use mlog::{Lsn, Mlog, MlogError, MlogReader, StagedWrite};
pub use objid::{MblockId, MdcId, MlogId, ObjType, ObjectId};
pub use pool::{
    canonical_property, parse_mode, ClassUsage, DamagedMdcInfo, DeviceProps, PoolProps, PROPERTIES,
    PROPERTY_ALIASES, SETTABLE,
};
pub use pool::{AlignedRead, MblockRead, MblockReader, ObjectProps};
pub use pool::{CheckRecord, LiveFigures, ObjectCounts};
pub use pool::{CreateOptions, DeviceSpec, OpenOptions, Pool, DEFAULT_ZONE_SIZE};
pub use space_map::SpaceMapError;
pub use stream::{
    Durability, Follower, Stream, StreamError, StreamIter, StreamOptions, StreamStat, TrimReport,
};
pub use superblock::Signature;
