//! How to open and create a pool: [`OpenOptions`], [`CreateOptions`],
//! [`DeviceSpec`], and the zone constants of a pool's layout.

use crate::error::{Error, Result};
use crate::io::EngineChoice;
use std::path::PathBuf;

/// Default zone (mblock) size: 32 MiB.
pub const DEFAULT_ZONE_SIZE: u64 = 32 << 20;
/// Zones reserved at the start of every device (superblocks).
pub const SB_ZONES: u64 = 1;
/// Zones per MDC0 log.
pub const MDC0_ZONES: u32 = 1;
/// Fewest zones a capacity device may have.
pub const MIN_CAPACITY_ZONES: u64 = 8;
/// Fewest zones a staging device may have.
pub const MIN_STAGING_ZONES: u64 = 4;

/// How to open a pool.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Open read-only: shared lock, no writes.
    pub read_only: bool,
    /// I/O engine; `None` reads `MPOOL_IO_ENGINE` (default auto).
    pub engine: Option<EngineChoice>,
    /// Inspect only: read-only, take no lock, repair nothing (for `list`
    /// and `get` while another process has the pool open).
    pub inspect: bool,
}

impl OpenOptions {
    /// The engine asked for, or the one `MPOOL_IO_ENGINE` names.
    pub(super) fn engine(&self) -> Result<EngineChoice> {
        match self.engine {
            Some(e) => Ok(e),
            None => EngineChoice::from_env()
                .map_err(|e| Error::InvalidArgument(format!("MPOOL_IO_ENGINE: {e}"))),
        }
    }
}

/// A device given to `create` or `add`.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    /// File or block device path.
    pub path: PathBuf,
    /// Create a sparse file of this size when the path does not exist.
    pub create_size: Option<u64>,
    /// Zone (mblock) size for this device's class.
    pub zone_size: u64,
}

impl DeviceSpec {
    /// An existing device with the default zone size.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            create_size: None,
            zone_size: DEFAULT_ZONE_SIZE,
        }
    }
}

/// How to create a pool.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The optional staging device.
    pub staging: Option<DeviceSpec>,
    /// Owner uid (default: this process' effective uid).
    pub uid: Option<u32>,
    /// Owner gid (default: this process' effective gid).
    pub gid: Option<u32>,
    /// Permission bits (default 0660).
    pub mode: Option<u32>,
    /// Free-form label.
    pub label: String,
    /// Discard every device before use.
    pub discard: bool,
    /// Overwrite foreign signatures (a filesystem, LVM, an inactive pool).
    pub force: bool,
    /// Record the pool in the run directory so it opens by name (default true).
    pub activate: bool,
    /// Allocate every member file whole at create (`fallocate`), so that
    /// no write to the pool can fail because the filesystem under a sparse
    /// file filled up. Without it, only the superblocks and the pool
    /// metadata are allocated (always: the pool stays manageable, mblock
    /// writes fail cleanly). Block devices need nothing.
    pub preallocate: bool,
    /// Open options for the returned pool.
    pub open: OpenOptions,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            staging: None,
            uid: None,
            gid: None,
            mode: None,
            label: String::new(),
            discard: false,
            force: false,
            activate: true,
            preallocate: false,
            open: OpenOptions::default(),
        }
    }
}
