//! The pool-level error type.

use crate::dev::DevError;
use crate::omf::sb::{MediaClass, SbError};
use crate::sb::Signature;
use std::io;
use std::path::PathBuf;

/// Result with the pool-level [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of pool management and the pool API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A device-layer error.
    #[error(transparent)]
    Dev(#[from] DevError),
    /// A superblock that cannot be used.
    #[error("{device}: {source}")]
    Superblock {
        /// Device path.
        device: String,
        /// Why.
        #[source]
        source: SbError,
    },
    /// A bad pool name.
    #[error("{0}")]
    InvalidName(String),
    /// A bad argument (size, property value, option combination).
    #[error("{0}")]
    InvalidArgument(String),
    /// No pool by that name or UUID.
    #[error("no pool '{0}' found (is it activated? try `mpool scan --activate`)")]
    PoolNotFound(String),
    /// The name is taken.
    #[error("a pool named '{name}' already exists ({detail})")]
    PoolExists {
        /// The name.
        name: String,
        /// Where.
        detail: String,
    },
    /// Another process has the pool open.
    #[error("pool '{name}' is open by {}", match pid { Some(p) => format!("process {p}"), None => "another process".to_string() })]
    PoolBusy {
        /// Pool name.
        name: String,
        /// The holder, when known.
        pid: Option<u32>,
    },
    /// The pool must be inactive for this.
    #[error("pool '{0}' is active; deactivate it first (`mpool deactivate {0}`)")]
    PoolActive(String),
    /// The device carries a signature and `force` was not given.
    #[error("{device} holds {sig}; refusing to overwrite it without --force")]
    Signature {
        /// Device path.
        device: String,
        /// What was found.
        sig: Signature,
    },
    /// The device belongs to another pool.
    #[error("{device} belongs to pool '{pool}'")]
    InOtherPool {
        /// Device path.
        device: String,
        /// That pool's name.
        pool: String,
    },
    /// The device is too small.
    #[error("{device} is {size} bytes; a {class} device with {zone_size}-byte zones needs at least {min} bytes")]
    TooSmall {
        /// Device path.
        device: String,
        /// Its size.
        size: u64,
        /// Required size.
        min: u64,
        /// Its class.
        class: MediaClass,
        /// Zone size asked for.
        zone_size: u64,
    },
    /// Some member devices of the pool were not found.
    #[error("pool '{name}' is incomplete: {missing} member device(s) not found")]
    Incomplete {
        /// Pool name.
        name: String,
        /// How many are missing.
        missing: usize,
    },
    /// Two pools answer to the name.
    #[error("{0}")]
    Ambiguous(String),
    /// Unknown property name.
    #[error("unknown property '{name}' (known: {known})")]
    UnknownProperty {
        /// What was asked.
        name: String,
        /// The known names.
        known: String,
    },
    /// The pool has no such media class.
    #[error("pool has no {0} media class")]
    NoSuchClass(MediaClass),
    /// The pool already has this media class.
    #[error("pool already has a {0} media class")]
    ClassExists(MediaClass),
    /// The pool was opened read-only.
    #[error("pool '{0}' is open read-only")]
    ReadOnly(String),
    /// A file of mpool's own (run directory, configuration).
    #[error("{path}: {source}")]
    File {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn file(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::File {
            path: path.into(),
            source,
        }
    }
}
