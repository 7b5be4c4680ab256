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

pub mod admin;
pub mod catalog;
pub mod check;
pub mod dev;
pub mod error;
pub mod format;
pub mod io;
mod lock;
pub mod mdc;
pub mod mlog;
pub mod objid;
pub mod pool;
pub mod space_map;
pub mod superblock;
pub mod torture;

pub use error::{Error, Result};
pub use format::superblock::MediaClass;
pub use objid::{ObjType, ObjectId};
pub use pool::{AlignedRead, MblockRead, MblockReader, ObjectProps};
pub use pool::{CreateOptions, DeviceSpec, OpenOptions, Pool};
