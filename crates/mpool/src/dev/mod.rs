//! The device layer: one [`Device`] trait over regular files, block devices,
//! memory and a fault-injecting device used by the crash tests.
//!
//! Every I/O is a whole [`AlignedBuf`] at an offset aligned to the device's
//! logical sector size. Requests are batched: [`Device::submit`] takes a
//! vector of requests (the buffers move in) and returns it with each result
//! filled in. Writes are durable only after [`Device::flush`].
// Items here that only the tooling of the `internals` feature uses (the
// benchmarks' raw engine runs, the crash tests, the fuzz targets) are not
// dead code in a build without it.
#![cfg_attr(not(feature = "internals"), allow(dead_code, unused_imports))]

#[cfg(any(test, feature = "internals"))]
mod fault;
mod file;
mod flush;
#[cfg(any(test, feature = "internals"))]
mod mem;

#[cfg(any(test, feature = "internals"))]
pub use fault::{CrashMode, FaultDevice, FaultStats};
pub use file::{canonical, fs_free, FileDevice, OpenOptions};
pub use flush::FlushStats;
#[cfg(any(test, feature = "internals"))]
pub use mem::MemDevice;

use crate::io::{AlignedBuf, Arena, IoKind, IoReq};
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// What kind of storage a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// A regular file (sparse is fine).
    File,
    /// A block device.
    Block,
    /// Memory only (tests, examples).
    Memory,
    /// Memory with injected faults and crash simulation (tests).
    Fault,
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::File => "file",
            Self::Block => "block",
            Self::Memory => "memory",
            Self::Fault => "fault",
        })
    }
}

/// Static facts about an open device.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeviceInfo {
    /// Path it was opened from (none for memory devices).
    pub path: Option<PathBuf>,
    /// What it is.
    pub kind: DeviceKind,
    /// Size in bytes.
    pub size: u64,
    /// Logical sector size: the alignment of every offset and length.
    pub logical_sector: u32,
    /// Physical sector size: the unit a device writes atomically at best.
    pub physical_sector: u32,
    /// Whether I/O bypasses the page cache.
    pub direct: bool,
    /// Whether the device supports discard.
    pub discard: bool,
    /// Name of the I/O engine batches go through (`"mmap"`: copies to and
    /// from a mapping of a file in memory, see `FileDevice::is_mapped`).
    pub engine: &'static str,
    /// Opened read-only.
    pub read_only: bool,
}

impl DeviceInfo {
    /// Facts of a device that lives in memory (memory and fault devices).
    pub(crate) fn in_memory(kind: DeviceKind, size: u64, sector: u32) -> Self {
        DeviceInfo {
            path: None,
            kind,
            size,
            logical_sector: sector,
            physical_sector: sector,
            direct: true,
            discard: true,
            engine: "memory",
            read_only: false,
        }
    }

    /// The path as text, or `<memory>`.
    pub fn name(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => format!("<{}>", self.kind),
        }
    }
}

/// Errors of the device layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevError {
    /// An I/O system call failed.
    #[error("{op} failed on {device} at offset {offset}: {source}")]
    Io {
        /// read, write, flush, discard or open.
        op: &'static str,
        /// Device name.
        device: String,
        /// Byte offset.
        offset: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Offset or length is not a multiple of the logical sector size.
    #[error("unaligned I/O on {device}: offset {offset} length {len} (alignment {align})")]
    Unaligned {
        /// Device name.
        device: String,
        /// Byte offset.
        offset: u64,
        /// Length.
        len: usize,
        /// Required alignment.
        align: u32,
    },
    /// The range runs past the end of the device.
    #[error("I/O past the end of {device}: offset {offset} length {len}, device size {size}")]
    OutOfRange {
        /// Device name.
        device: String,
        /// Byte offset.
        offset: u64,
        /// Length.
        len: usize,
        /// Device size.
        size: u64,
    },
    /// A write to a device opened read-only.
    #[error("{device} is open read-only")]
    ReadOnly {
        /// Device name.
        device: String,
    },
    /// The path does not exist.
    #[error("{path}: no such file or device")]
    NotFound {
        /// The path.
        path: PathBuf,
    },
    /// Permission denied, with what was needed and what the file allows.
    #[error("permission denied: {path} needs {need} access (mode {mode:04o}, owner uid {uid} gid {gid}; this process is uid {euid})")]
    PermissionDenied {
        /// The path.
        path: PathBuf,
        /// "read" or "read-write".
        need: &'static str,
        /// File mode bits.
        mode: u32,
        /// Owner uid.
        uid: u32,
        /// Owner gid.
        gid: u32,
        /// This process' effective uid.
        euid: u32,
    },
    /// The device is in use (mounted, or opened exclusively elsewhere).
    #[error("{path} is busy: mounted, or in use by another program")]
    Busy {
        /// The path.
        path: PathBuf,
    },
    /// The path is neither a regular file nor a block device.
    #[error("{path} is not a regular file or block device")]
    NotADevice {
        /// The path.
        path: PathBuf,
    },
    /// The filesystem under a file device cannot give it the storage asked for.
    #[error("cannot reserve {needed} bytes of storage for {device}: its filesystem has {free} bytes free ({source})")]
    NoSpaceToReserve {
        /// Device name.
        device: String,
        /// Bytes asked for (the ranges to allocate, counted whole).
        needed: u64,
        /// Bytes free on the filesystem (`statvfs`: blocks available to this process).
        free: u64,
        /// The OS error (ENOSPC, EDQUOT).
        #[source]
        source: io::Error,
    },
    /// The simulated machine has crashed (fault device): no I/O reaches it.
    #[error("device crashed (simulated) after operation {after_op}")]
    Crashed {
        /// The number of the last operation that completed.
        after_op: u64,
    },
}

impl DevError {
    /// True for errors a caller may see on healthy hardware only through faults
    /// (EIO and friends), as opposed to misuse.
    pub fn is_media_error(&self) -> bool {
        matches!(self, DevError::Io { .. } | DevError::Crashed { .. })
    }
}

/// The storage seam. Implementations: [`FileDevice`] (files and block
/// devices), [`MemDevice`], [`FaultDevice`].
pub trait Device: Send + Sync + fmt::Debug {
    /// Static facts: size, sector sizes, kind.
    fn info(&self) -> &DeviceInfo;

    /// Perform a batch of reads and writes; every request comes back with its
    /// result set, in the order given. The order in which the device carries
    /// them out within a batch is unspecified.
    fn submit(&self, reqs: Vec<IoReq>) -> Vec<IoReq>;

    /// As [`Device::submit`], keeping at most `depth` requests in flight at
    /// a time: a long batch becomes a queue of that depth, refilled as each
    /// request completes. Devices without a queue ignore the bound.
    fn submit_depth(&self, reqs: Vec<IoReq>, depth: usize) -> Vec<IoReq> {
        let _ = depth;
        self.submit(reqs)
    }

    /// As [`Device::submit_depth`], calling `done(index, request)` once
    /// for each request as soon as its result is set, so that a caller can
    /// consume a read while later ones are still in flight. Devices without
    /// a queue call it for each request after the batch.
    fn submit_each(
        &self,
        reqs: Vec<IoReq>,
        depth: usize,
        done: &mut dyn FnMut(usize, &IoReq),
    ) -> Vec<IoReq> {
        let out = self.submit_depth(reqs, depth);
        for (i, r) in out.iter().enumerate() {
            done(i, r);
        }
        out
    }

    /// As [`Device::submit`], running `side` once while the requests are in
    /// flight, so that a caller's own device work (a log record written
    /// elsewhere on the device) overlaps them: one round trip for both
    /// instead of two. A file or block device with the io_uring engine
    /// submits the requests, runs `side`, then waits for them; the default
    /// runs `side` after the batch. `side` runs exactly once either way.
    fn submit_beside(&self, reqs: Vec<IoReq>, side: &mut dyn FnMut()) -> Vec<IoReq> {
        let out = self.submit(reqs);
        side();
        out
    }

    /// Whether one batch of writes costs no more than writing them one
    /// after the other, so that a caller with independent writes (an
    /// mblock's last write and log records, before one flush) submits
    /// them together. True by default; false for a file in memory, where
    /// io_uring hands writes to a kernel worker (see `FileDevice`).
    fn prefers_batches(&self) -> bool {
        true
    }

    /// A queue of at most `depth` requests (1 to 256) kept in flight
    /// across calls on this device: pushed one at a time, reaped as they
    /// complete (see [`DevQueue`]). A file or block device with the
    /// io_uring engine hands out an io_uring [`crate::io::Queue`] of its
    /// own; the default queue serves each request when it is pushed,
    /// through [`Device::submit`] (so a [`FaultDevice`] injects its faults
    /// into queued requests too), and hands it back at the next reap. A
    /// device that wraps another forwards `queue` (and `submit_each`) to
    /// keep the inner device's fast paths; otherwise it gets these defaults.
    fn queue(&self, depth: usize) -> Box<dyn DevQueue + '_> {
        Box::new(SubmitQueue::new(self, depth))
    }

    /// A hint: writes to `offset..offset + len` are coming soon. A device
    /// that can do part of their work ahead starts it now, without holding
    /// up the caller (a file mapped in memory has a thread of its own make
    /// the page table entries of the range, which a write would otherwise
    /// make itself, faulting). Never fails; a no-op by default. A device
    /// that wraps another forwards it.
    fn will_write(&self, offset: u64, len: u64) {
        let _ = (offset, len);
    }

    /// Writes to `offset..offset + len` will come over a long time (a log's
    /// extent): what the device can do ahead for all of them it does now,
    /// on the caller's thread (a file mapped in memory makes the page
    /// table entries of the range: about 70 ms a GiB on tmpfs). Never
    /// fails; a no-op by default. A device that wraps another forwards it.
    fn prepare_writes(&self, offset: u64, len: u64) {
        let _ = (offset, len);
    }

    /// Make every completed write durable.
    fn flush(&self) -> Result<(), DevError>;

    /// Tell the device the range holds no data (best effort; a no-op where unsupported).
    fn discard(&self, offset: u64, len: u64) -> Result<(), DevError>;

    /// Give the byte ranges `ranges` backing storage now, so that later
    /// writes there cannot fail for want of space: a regular file's holes
    /// are allocated (`fallocate`, mode 0). A no-op on devices that are not
    /// sparse (block devices, memory) and on filesystems that cannot
    /// allocate ahead (EOPNOTSUPP).
    fn reserve(&self, ranges: &[std::ops::Range<u64>]) -> Result<(), DevError> {
        let _ = ranges;
        Ok(())
    }

    /// Size in bytes.
    fn size(&self) -> u64 {
        self.info().size
    }

    /// Logical sector size: alignment of offsets and lengths.
    fn sector(&self) -> u32 {
        self.info().logical_sector
    }

    /// A zeroed buffer of `len` bytes rounded up to the sector size.
    fn alloc_buf(&self, len: usize) -> AlignedBuf {
        AlignedBuf::new(len, self.sector() as usize)
    }

    /// Read `buf.len()` bytes at `offset` into `buf`.
    fn read_at(&self, offset: u64, buf: &mut AlignedBuf) -> Result<(), DevError> {
        let req = IoReq::read(offset, std::mem::take(buf));
        one(self, req, buf)
    }

    /// Write all of `buf` at `offset` (not durable until [`Device::flush`]).
    fn write_at(&self, offset: u64, buf: &mut AlignedBuf) -> Result<(), DevError> {
        let req = IoReq::write(offset, std::mem::take(buf));
        one(self, req, buf)
    }

    /// Write all of `data` at `offset` from the caller's memory, blocking,
    /// through a shared borrow (so that another thread may read `data`
    /// meanwhile, e.g. to checksum it). Not durable until
    /// [`Device::flush`]. This default copies `data` into a buffer of the
    /// device's; a file device writes straight from `data` when it is
    /// aligned as its buffers are.
    fn write_slice(&self, offset: u64, data: &[u8]) -> Result<(), DevError> {
        let mut buf = self.alloc_buf(data.len());
        buf.copy_from_slice(data);
        self.write_at(offset, &mut buf)
    }

    /// Write `data` at `offset`, neither of them aligned to sectors, where
    /// the device is byte-addressable (memory, or a file mapped in it):
    /// `None` elsewhere, nothing written, and the caller writes whole
    /// sectors. A writer that would rewrite a partly written sector with
    /// the same bytes in front of new ones writes the new ones only.
    /// Not durable until [`Device::flush`]. A device that wraps another
    /// forwards it.
    fn write_bytes(&self, offset: u64, data: &[u8]) -> Option<Result<(), DevError>> {
        let _ = (offset, data);
        None
    }

    /// Read `buf.len()` bytes at `offset` into the caller's memory,
    /// blocking (offset and length aligned as for every request). This
    /// default reads into a buffer of the device's and copies; a file
    /// device reads straight into `buf` when it is aligned as its buffers
    /// are.
    fn read_slice(&self, offset: u64, buf: &mut [u8]) -> Result<(), DevError> {
        read_bounced(self, offset, buf)
    }
}

/// [`Device::read_slice`] through a buffer of the device's.
pub(crate) fn read_bounced<D: Device + ?Sized>(
    dev: &D,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), DevError> {
    let mut b = AlignedBuf::scratch(buf.len(), dev.sector() as usize);
    dev.read_at(offset, &mut b)?;
    let n = buf.len();
    let src = b.get(..n).ok_or_else(|| {
        io_err(
            dev.info(),
            "read",
            offset,
            io::Error::other("the device returned a short buffer"),
        )
    })?;
    buf.copy_from_slice(src);
    Ok(())
}

/// Requests kept in flight across calls on one device (made by
/// [`Device::queue`]). Requests are checked like those of
/// [`Device::submit`]; an invalid one completes at once with its error.
/// Dropping the queue waits for the requests still in flight.
pub trait DevQueue {
    /// The most requests in flight at once.
    fn depth(&self) -> usize;

    /// Requests pushed and not yet reaped.
    fn in_flight(&self) -> usize;

    /// Queue `req` under `tag`; it is handed to the device at the latest
    /// with the next [`DevQueue::reap`]. The request comes back when the
    /// queue is full or its buffer is empty.
    fn push(&mut self, req: IoReq, tag: u64) -> Result<(), IoReq>;

    /// Hand pushed requests to the device and wait until at least `min`
    /// have completed (fewer when fewer are in flight; 0 only submits).
    /// Each completed request, its result set, is appended to `out` with
    /// its tag. An error means the queue itself failed: the requests
    /// still in flight are lost, and the queue should be dropped.
    fn reap(&mut self, min: usize, out: &mut Vec<(u64, IoReq)>) -> io::Result<()>;

    /// Register `arena` with the queue, so that requests on its buffers
    /// skip per-request pinning (io_uring fixed buffers). False when the
    /// queue has no use for it or refuses; requests work the same.
    fn register_arena(&mut self, arena: &Arc<Arena>) -> bool {
        let _ = arena;
        false
    }
}

/// The default [`DevQueue`]: each request is carried out through
/// [`Device::submit`] when it is pushed, and waits, complete, for a reap.
struct SubmitQueue<'a, D: Device + ?Sized> {
    dev: &'a D,
    depth: usize,
    done: Vec<(u64, IoReq)>,
}

impl<'a, D: Device + ?Sized> SubmitQueue<'a, D> {
    fn new(dev: &'a D, depth: usize) -> Self {
        Self {
            dev,
            depth: depth.clamp(1, 256),
            done: Vec::new(),
        }
    }
}

impl<D: Device + ?Sized> DevQueue for SubmitQueue<'_, D> {
    fn depth(&self) -> usize {
        self.depth
    }

    fn in_flight(&self) -> usize {
        self.done.len()
    }

    fn push(&mut self, req: IoReq, tag: u64) -> Result<(), IoReq> {
        if req.buf.is_empty() || self.done.len() >= self.depth {
            return Err(req);
        }
        let (kind, offset) = (req.kind, req.offset);
        let r = self.dev.submit(vec![req]).pop().unwrap_or_else(|| IoReq {
            kind,
            offset,
            buf: AlignedBuf::default(),
            result: Some(Err(io::Error::other("device returned no completion"))),
        });
        self.done.push((tag, r));
        Ok(())
    }

    fn reap(&mut self, _min: usize, out: &mut Vec<(u64, IoReq)>) -> io::Result<()> {
        out.append(&mut self.done);
        Ok(())
    }
}

fn one<D: Device + ?Sized>(dev: &D, req: IoReq, back: &mut AlignedBuf) -> Result<(), DevError> {
    let (kind, offset) = (req.kind, req.offset);
    let mut out = dev.submit(vec![req]);
    let Some(mut r) = out.pop() else {
        return Err(io_err(
            dev.info(),
            "submit",
            offset,
            io::Error::other("engine returned no completion"),
        ));
    };
    *back = std::mem::take(&mut r.buf);
    r.take_result()
        .map_err(|e| from_req_err(dev.info(), kind, offset, e))
}

/// Shared, thread-safe device handle.
pub type DeviceRef = Arc<dyn Device>;

/// Check that a request is aligned and in range.
pub(crate) fn check_req(info: &DeviceInfo, offset: u64, len: usize) -> Result<(), DevError> {
    let align = u64::from(info.logical_sector);
    if !offset.is_multiple_of(align) || !(len as u64).is_multiple_of(align) {
        return Err(DevError::Unaligned {
            device: info.name(),
            offset,
            len,
            align: info.logical_sector,
        });
    }
    if offset
        .checked_add(len as u64)
        .is_none_or(|end| end > info.size)
    {
        return Err(DevError::OutOfRange {
            device: info.name(),
            offset,
            len,
            size: info.size,
        });
    }
    Ok(())
}

/// Turn a request's `io::Error` into a [`DevError`]; errors the device layer
/// already typed travel inside `io::Error` with [`DevError`] as payload.
pub fn from_req_err(info: &DeviceInfo, kind: IoKind, offset: u64, e: io::Error) -> DevError {
    match e.downcast::<DevError>() {
        Ok(d) => d,
        Err(e) => {
            let op = match kind {
                IoKind::Read => "read",
                IoKind::Write => "write",
            };
            io_err(info, op, offset, e)
        }
    }
}

pub(crate) fn io_err(
    info: &DeviceInfo,
    op: &'static str,
    offset: u64,
    source: io::Error,
) -> DevError {
    DevError::Io {
        op,
        device: info.name(),
        offset,
        source,
    }
}

/// Wrap a typed device error so it can travel as a request result.
pub(crate) fn wrap(e: DevError) -> io::Error {
    io::Error::other(e)
}

/// Call `f` with a side (work to run beside a device request, see
/// [`Device::submit_beside`]) and run `side` after `f` unless `f` ran it:
/// whichever path `f` takes, `side` runs, once when `f` runs it at most
/// once.
pub(crate) fn side_once<R>(
    side: &mut dyn FnMut(),
    f: impl FnOnce(&mut dyn FnMut()) -> R,
) -> R {
    let ran = std::cell::Cell::new(false);
    let r = f(&mut || {
        ran.set(true);
        side();
    });
    if !ran.get() {
        side();
    }
    r
}

/// Validate each request of a batch; invalid ones get their error, valid
/// ones are returned for the engine.
pub(crate) fn split_invalid(info: &DeviceInfo, reqs: &mut [IoReq]) -> bool {
    let mut all_ok = true;
    for r in reqs.iter_mut() {
        if let Err(e) = check_req(info, r.offset, r.buf.len()) {
            r.result = Some(Err(wrap(e)));
            all_ok = false;
        } else if r.kind == IoKind::Write && info.read_only {
            r.result = Some(Err(wrap(DevError::ReadOnly {
                device: info.name(),
            })));
            all_ok = false;
        }
    }
    all_ok
}

/// The CPUs this process may run on (read once).
pub(crate) fn cpus() -> u32 {
    use std::sync::OnceLock;
    static CPUS: OnceLock<u32> = OnceLock::new();
    *CPUS.get_or_init(|| {
        std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
    })
}

/// Take one of the spinning slots `spinners` counts: true when a CPU is
/// left for the thread being waited for (at most one spinner fewer than
/// CPUs); the caller releases the slot (`fetch_sub`) when it stops
/// spinning. False (nothing taken): sleep instead.
pub(crate) fn spin_slot(spinners: &std::sync::atomic::AtomicU32) -> bool {
    use std::sync::atomic::Ordering;
    if spinners.fetch_add(1, Ordering::AcqRel) + 1 < cpus() {
        true
    } else {
        spinners.fetch_sub(1, Ordering::AcqRel);
        false
    }
}

/// Moving average with weight 1/8 for the new sample (of a device's
/// flush or batch time).
pub(crate) fn ewma(avg: u64, sample: u64) -> u64 {
    avg - avg / 8 + sample / 8
}

/// Spin until `done` holds or `budget` has passed (the clock is read every
/// 64 checks: reading it is dearer than a check).
pub(crate) fn spin_until(budget: std::time::Duration, mut done: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    loop {
        for _ in 0..64 {
            if done() {
                return;
            }
            std::hint::spin_loop();
        }
        if t.elapsed() >= budget {
            return;
        }
    }
}
