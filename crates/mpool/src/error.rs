//! The pool-level error types, one per family of operations (as redb's
//! `error.rs` does): [`PoolError`] for finding, creating, opening and
//! administering pools; [`ObjectError`] for operations on one object;
//! [`MetadataError`] for the pool's metadata (MDCs, mlogs); [`StorageError`]
//! for the devices and their space. [`Error`] holds any of them, plus bad
//! arguments and internal errors (bugs), and is what the pool API returns.
//!
//! Messages state what happened; they carry no command-line hints (the
//! `mpool` command adds its own).

use crate::dev::DevError;
use crate::format::superblock::{MediaClass, SuperblockError};
use crate::mdc::MdcError;
use crate::mlog::MlogError;
use crate::objid::{ObjType, ObjectId};
use crate::space_map::SpaceMapError;
use crate::superblock::Signature;
use std::io;
use std::path::PathBuf;
use uuid::Uuid;

/// Result with the pool-level [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any error of the pool API: one of the families, a bad argument, or a bug.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Finding, creating, opening or administering a pool.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// An operation on one object (mblock, mlog, MDC).
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// The pool's metadata, or a log or MDC reached through the pool.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// A device, or the space on it.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An event stream (see [`crate::Stream`]).
    #[error(transparent)]
    Stream(#[from] crate::stream::StreamError),
    /// A bad argument (size, property value, option combination).
    #[error("{0}")]
    InvalidArgument(String),
    /// A broken internal invariant: a bug in mpool, never a fault of the
    /// media or of the caller. Debug builds and tests panic instead (see
    /// `invariant_broken`); release builds return this.
    #[error("internal error (a bug in mpool): {0}")]
    Internal(String),
}

/// Errors of finding, creating, opening and administering pools.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// A superblock that cannot be used.
    #[error("{device}: {source}")]
    Superblock {
        /// Device path.
        device: String,
        /// Why.
        #[source]
        source: SuperblockError,
    },
    /// A bad pool name.
    #[error("{0}")]
    InvalidName(String),
    /// No pool by that name or UUID (or it is not activated).
    #[error("no pool '{0}' found")]
    NotFound(String),
    /// The name is taken.
    #[error("a pool named '{name}' already exists ({detail})")]
    Exists {
        /// The name.
        name: String,
        /// Where.
        detail: String,
    },
    /// Another process has the pool open.
    #[error("pool '{name}' is open by {}", match pid { Some(p) => format!("process {p}"), None => "another process".to_string() })]
    Busy {
        /// Pool name.
        name: String,
        /// The holder, when known.
        pid: Option<u32>,
    },
    /// The pool must be inactive for this.
    #[error("pool '{0}' is active")]
    Active(String),
    /// The device carries a signature and `force` was not given.
    #[error("{device} holds {sig}; refusing to overwrite it")]
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
    /// A device whose logical sector is larger than mpool's layout allows:
    /// its superblock copies would overlap.
    #[error("{device} has {sector}-byte logical sectors; mpool supports at most {max}")]
    SectorTooLarge {
        /// Device name.
        device: String,
        /// Its logical sector size.
        sector: u32,
        /// The largest supported.
        max: u32,
    },
    /// Some member devices of the pool were not found.
    #[error("pool '{name}' is incomplete: {missing} member device(s) not found")]
    Incomplete {
        /// Pool name.
        name: String,
        /// How many are missing.
        missing: usize,
    },
    /// Two devices carry the same member of a pool (same pool UUID and
    /// device UUID): one is a byte-for-byte copy of the other (a backup
    /// image, a cloned LUN). Refused before anything is written to either.
    #[error("{first} and {second} both carry member {member} ({class}) of pool '{pool}': one is a copy of the other")]
    DuplicateMember {
        /// Pool name.
        pool: String,
        /// The member's device UUID.
        member: Uuid,
        /// The member's media class.
        class: MediaClass,
        /// One device.
        first: String,
        /// The other device.
        second: String,
    },
    /// A member device is smaller than its superblock records (a truncated
    /// file, a shrunk LUN): zones the pool may use lie past its end.
    #[error(
        "{device} is {actual} bytes, smaller than the {recorded} bytes recorded in its superblock"
    )]
    MemberShrunk {
        /// Device path.
        device: String,
        /// Size recorded in the superblock.
        recorded: u64,
        /// Size now.
        actual: u64,
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
    /// A run directory or device list that another user could have written
    /// (owned by someone other than the caller or root, writable by group
    /// or others, or a symbolic link): not used, since its entries would
    /// name devices of that user's choosing.
    #[error("{what} {} {problem}: {fix}", path.display())]
    Untrusted {
        /// What it is ("run directory", "device list", ...).
        what: String,
        /// Its path.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
        /// What to do about it.
        fix: String,
    },
    /// `upgrade` refused the pool: its metadata does not replay cleanly,
    /// or it is of a version this code cannot convert.
    #[error("pool '{name}' cannot be upgraded: {why}")]
    NotUpgradable {
        /// Pool name.
        name: String,
        /// Why.
        why: String,
    },
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

/// Errors of operations on one object: an mblock, a user mlog or MDC.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectError {
    /// No such object (never existed, aborted or deleted).
    #[error("no object {0}")]
    NotFound(ObjectId),
    /// The object is committed: it cannot be written, aborted or committed again.
    #[error("object {0} is committed")]
    Committed(ObjectId),
    /// The object is not committed yet: it cannot be read or deleted.
    #[error("object {0} is not committed")]
    NotCommitted(ObjectId),
    /// The ID names an object of another type.
    #[error("object {id} is of type {}, not {expected}", id.ty())]
    WrongType {
        /// The ID.
        id: ObjectId,
        /// What the call works on.
        expected: ObjType,
    },
    /// A write past the mblock's capacity.
    #[error("mblock {id} is full: the write would grow it to {want} bytes; it holds {cap}")]
    MblockFull {
        /// The mblock.
        id: ObjectId,
        /// Length the write needed.
        want: u64,
        /// Its capacity.
        cap: u64,
    },
    /// An earlier write of this uncommitted mblock failed: abort it.
    #[error("an earlier write of mblock {0} failed; it can only be aborted")]
    WriteFailed(ObjectId),
    /// A read outside the written content.
    #[error("read of {len} bytes at offset {offset} is outside mblock {id} ({size} bytes)")]
    ReadOutOfRange {
        /// The mblock.
        id: ObjectId,
        /// Offset.
        offset: u64,
        /// Length.
        len: u64,
        /// Its content length.
        size: u64,
    },
    /// Bytes of a committed mblock do not match their checksums (read
    /// twice): the data is not returned. `offset..offset + len` are the
    /// content bytes of the checksum blocks that failed (a legacy mblock,
    /// which has one checksum for its whole content: all of it).
    #[error("mblock {id}: bytes {offset}..{} do not match their checksums", offset + len)]
    Checksum {
        /// The mblock.
        id: ObjectId,
        /// First damaged byte of its content.
        offset: u64,
        /// Damaged bytes.
        len: u64,
    },
    /// The object is open (an mlog or MDC handle is alive).
    #[error("object {0} is open; close it first")]
    Busy(ObjectId),
}

/// Errors of the pool's metadata, and of logs and MDCs reached through the
/// pool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// Pool metadata that contradicts itself or the media.
    #[error("corrupt pool metadata: {0}")]
    Corrupt(String),
    /// An MDC is full even after compaction.
    #[error("metadata container MDC{mdc} is full even after compaction")]
    Full {
        /// Which MDC.
        mdc: u8,
    },
    /// An MDC takes no more records until the pool is reopened: a
    /// compaction of it failed where its outcome on the media is unknown,
    /// or its log failed (an I/O error writing or flushing it, in this
    /// call or an earlier one of any thread).
    #[error("metadata container MDC{mdc} failed ({reason}); reopen the pool")]
    Failed {
        /// Which MDC.
        mdc: u8,
        /// What failed.
        reason: String,
    },
    /// An MDC could not be replayed at open (a corrupt record, an unreadable
    /// log): the pool is open degraded. Its objects cannot be read, and the
    /// pool takes no changes (the zones of the MDC's objects are unknown).
    #[error("metadata container MDC{mdc} is damaged ({reason}); the pool is open degraded: objects of MDC{mdc} cannot be read and the pool takes no changes")]
    Damaged {
        /// Which MDC.
        mdc: u8,
        /// What is wrong with it.
        reason: String,
    },
    /// An MDC has handed out every object ID it can name.
    #[error("MDC{mdc} has handed out every object ID")]
    IdsExhausted {
        /// Which MDC.
        mdc: u8,
    },
    /// An mlog error (pool metadata or a user log).
    #[error(transparent)]
    Mlog(#[from] MlogError),
    /// An MDC error (pool metadata or a user MDC).
    #[error(transparent)]
    Mdc(#[from] MdcError),
}

/// Errors of the devices and of the space on them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A device-layer error.
    #[error(transparent)]
    Dev(#[from] DevError),
    /// No space left in a media class.
    #[error(transparent)]
    NoSpace(SpaceMapError),
}

impl From<DevError> for Error {
    fn from(e: DevError) -> Self {
        Error::Storage(StorageError::Dev(e))
    }
}

impl From<MlogError> for Error {
    fn from(e: MlogError) -> Self {
        Error::Metadata(MetadataError::Mlog(e))
    }
}

impl From<MdcError> for Error {
    fn from(e: MdcError) -> Self {
        Error::Metadata(MetadataError::Mdc(e))
    }
}

/// A broken invariant `what`: a bug. Panics in debug builds and tests, so
/// that the bug is found where it happens; in release builds logs it and
/// returns [`Error::Internal`] for the caller to propagate (never to
/// discard, never to report as media corruption).
#[track_caller]
pub(crate) fn invariant_broken(what: impl Into<String>) -> Error {
    let what = what.into();
    if cfg!(debug_assertions) {
        panic!("internal invariant broken (a bug in mpool): {what}");
    }
    internal(what)
}

/// The release-build half of [`invariant_broken`]: the typed error.
pub(crate) fn internal(what: String) -> Error {
    tracing::error!("internal invariant broken (a bug in mpool): {what}");
    Error::Internal(what)
}

/// Check an invariant: when `cond` is false, return early with
/// [`invariant_broken`] (a panic in debug builds, [`Error::Internal`] in
/// release builds). The message is `format!` arguments.
macro_rules! ensure_invariant {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::error::invariant_broken(format!($($msg)+)).into());
        }
    };
}
pub(crate) use ensure_invariant;

impl Error {
    pub(crate) fn file(path: impl Into<PathBuf>, source: io::Error) -> Self {
        PoolError::File {
            path: path.into(),
            source,
        }
        .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "a bug in mpool")]
    fn a_broken_invariant_panics_in_debug_builds() {
        let _ = invariant_broken("test");
    }

    #[test]
    fn a_broken_invariant_is_a_typed_internal_error_in_release_builds() {
        let e = internal("zone 7 freed twice".into());
        assert!(matches!(&e, Error::Internal(w) if w == "zone 7 freed twice"));
        assert_eq!(
            e.to_string(),
            "internal error (a bug in mpool): zone 7 freed twice"
        );
    }

    #[test]
    fn layer_errors_convert_into_their_family() {
        let dev = DevError::Unaligned {
            device: "d".into(),
            offset: 1,
            len: 2,
            align: 512,
        };
        let msg = dev.to_string();
        let e = Error::from(dev);
        assert!(matches!(e, Error::Storage(StorageError::Dev(_))), "{e:?}");
        // The family is transparent: the message is the layer's own.
        assert_eq!(e.to_string(), msg);

        let full = SpaceMapError::NoSpace {
            class: MediaClass::Capacity,
            free: 0,
            spare: 1,
            want: 2,
        };
        let e = Error::from(full);
        assert!(
            matches!(e, Error::Storage(StorageError::NoSpace(_))),
            "{e:?}"
        );
    }

    #[test]
    fn messages_name_no_cli_commands_or_options() {
        let errs: [Error; 3] = [
            PoolError::NotFound("tank".into()).into(),
            PoolError::Active("tank".into()).into(),
            PoolError::Signature {
                device: "/dev/x".into(),
                sig: Signature::Ext,
            }
            .into(),
        ];
        for e in errs {
            let m = e.to_string();
            assert!(!m.contains("mpool ") && !m.contains("--"), "{m}");
        }
        assert_eq!(
            Error::from(PoolError::NotFound("tank".into())).to_string(),
            "no pool 'tank' found"
        );
    }

    #[test]
    #[should_panic(expected = "a bug in mpool")]
    fn ensure_invariant_panics_when_false_in_debug_builds() {
        fn f(n: u32) -> Result<u32> {
            ensure_invariant!(n < 4, "{n} is not below 4");
            Ok(n)
        }
        assert_eq!(f(3).ok(), Some(3));
        let _ = f(5);
    }
}
