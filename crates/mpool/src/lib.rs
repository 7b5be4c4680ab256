//! mpool: a userspace object storage media pool.
//!
//! mpool stores write-once objects (mblocks), record logs (mlogs) and
//! metadata containers (MDCs) on raw block devices or plain files, in one
//! pool that can span media classes. See `README.md` and `docs/`.
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

pub mod admin;
mod catalog;
mod check;
mod error;
mod lock;
mod objid;
mod pool;
mod space_map;
internals! {
    dev;
    format;
    io;
    mdc;
    mlog;
    superblock;
}
#[cfg(feature = "internals")]
pub mod torture;

pub use catalog::MdcStats;
pub use check::{CheckProblem, CheckReport};
pub use dev::DevError;
pub use error::{Error, MetadataError, ObjectError, PoolError, Result, StorageError};
pub use format::superblock::{MediaClass, SuperblockError};
pub use io::AlignedBuf;
pub use mdc::{Mdc, MdcError};
pub use mlog::{Mlog, MlogError};
pub use objid::{MblockId, MdcId, MlogId, ObjType, ObjectId};
pub use pool::{parse_mode, ClassUsage, DeviceProps, PoolProps, PROPERTIES, SETTABLE};
pub use pool::{AlignedRead, MblockRead, MblockReader, ObjectProps};
pub use pool::{CreateOptions, DeviceSpec, OpenOptions, Pool, DEFAULT_ZONE_SIZE};
pub use space_map::SpaceMapError;
pub use superblock::Signature;
