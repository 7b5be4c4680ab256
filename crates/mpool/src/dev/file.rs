//! Regular files and block devices, with O_DIRECT.

use super::flush::{FlushGate, FlushStats};
use super::{
    check_req, io_err, split_invalid, DevError, DevQueue, Device, DeviceInfo, DeviceKind,
    SubmitQueue,
};
use crate::io::{Arena, Engine, EngineChoice, IoKind, IoReq, Queue, DEFAULT_ALIGN};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// How to open a [`FileDevice`].
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Open read-only (block devices are then not opened exclusively).
    pub read_only: bool,
    /// Create a sparse regular file of this size if the path does not exist.
    pub create_size: Option<u64>,
    /// Which I/O engine to use.
    pub engine: EngineChoice,
    /// Bypass the page cache (falls back to buffered I/O only where the
    /// filesystem refuses O_DIRECT; [`DeviceInfo::direct`] then says so).
    pub direct: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            read_only: false,
            create_size: None,
            engine: EngineChoice::Auto,
            direct: true,
        }
    }
}

/// A regular file or a block device.
#[derive(Debug)]
pub struct FileDevice {
    file: File,
    info: DeviceInfo,
    engine: Engine,
    /// Concurrent flushes share `fdatasync` calls.
    gate: FlushGate,
    /// Read-only opens of the same file for [`Device::read_slice`], one per
    /// slot of threads: a file that all of a process's threads read
    /// through bounces its reference count (taken by the kernel on every
    /// call of a multi-threaded process) between the CPUs; each slot's own
    /// open keeps it on one. They are opened with `O_NOATIME` where the
    /// process may (it owns the file, or has `CAP_FOWNER`): a read then
    /// skips the kernel's access-time check (`touch_atime`), which no
    /// reader of a pool's device needs. Opened on first use through
    /// `/proc/self/fd` (`None` where that fails: the main file serves),
    /// closed with the device.
    readers: Box<[OnceLock<Option<File>>]>,
    /// A file in memory (tmpfs, ramfs): its writes are copies that
    /// io_uring cannot start without blocking, so it hands each to a
    /// kernel worker (about 20 us, against well under one for `pwrite`);
    /// `submit_beside` then writes first and runs the side after.
    in_memory: bool,
    /// A fully allocated file in memory, mapped whole ([`Mapping`]): its
    /// reads and writes are copies to and from the mapping, with no
    /// system call and without the file's inode lock, which every
    /// `pwrite` to one file takes (two threads writing a tmpfs pool spent
    /// a tenth of their CPU spinning on it). Flushes make no system call:
    /// those file systems have nothing to write back.
    map: Option<Arc<Mapping>>,
}

/// A file on a file system in memory, mapped shared and whole.
///
/// Only a file whose every block is allocated is mapped, and its
/// discards do nothing (no holes are punched), so that a write through
/// the mapping never needs a new page: a tmpfs that runs out of memory
/// would kill the process with `SIGBUS` where `pwrite` returns `ENOSPC`.
/// Another process that truncates the file would too (as with any
/// mapped file). `MPOOL_NO_MAP` in the environment (any value) turns the
/// mapping off for the devices opened after it is set.
#[derive(Debug)]
struct Mapping {
    addr: std::ptr::NonNull<u8>,
    len: usize,
    writable: bool,
    /// One bit per [`POPULATE_CHUNK`] of the mapping: set once its page
    /// table entries were made in one call (`MADV_POPULATE_READ`) before
    /// the first copy that touches
    /// it, instead of one page fault per page (on tmpfs a fault costs
    /// about 1 us, a page populated with its chunk about a quarter of
    /// that). Populating the whole file at open would cost 70 ms per GiB
    /// of file at every open, more the first time.
    populated: Box<[AtomicU64]>,
    /// Chunks announced by [`Device::will_write`] go to a thread of the
    /// mapping's own, started at the first announcement, which populates
    /// them while the writer goes on: an appender that made them itself
    /// took 40-90 us once every 64 appends of 4 KiB, and a fresh log's p99
    /// showed it. The thread holds the mapping weakly and ends when the
    /// sender (dropped with the mapping) goes.
    ahead: Mutex<Option<std::sync::mpsc::Sender<usize>>>,
}

/// The unit of [`Mapping::populated`].
const POPULATE_CHUNK: usize = 256 << 10;

// SAFETY: the mapping is shared memory that stays valid until `drop`, and
// is only ever accessed through copies of byte ranges between it and the
// caller's buffers (never through references), from any thread, as a file
// is through `pread`/`pwrite`.
unsafe impl Send for Mapping {}
// SAFETY: as for `Send`: `&Mapping` gives only those copies.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Map `file` whole when it lives in memory, is fully allocated and
    /// the environment does not say otherwise; `None` when any of that
    /// fails (the device then reads and writes with system calls).
    fn new(file: &File, len: u64, writable: bool) -> Option<Mapping> {
        if std::env::var_os("MPOOL_NO_MAP").is_some() {
            return None;
        }
        let meta = file.metadata().ok()?;
        if len == 0 || meta.len() < len || meta.blocks().saturating_mul(512) < len {
            return None;
        }
        let n = usize::try_from(len).ok()?;
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        // SAFETY: a new shared mapping of `n` bytes of the open file at an
        // address the kernel picks; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                n,
                prot,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        let addr = std::ptr::NonNull::new(p.cast::<u8>())?;
        let chunks = n.div_ceil(POPULATE_CHUNK);
        Some(Mapping {
            addr,
            len: n,
            writable,
            populated: (0..chunks.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            ahead: Mutex::new(None),
        })
    }

    /// The part of `offset..offset + len` inside the mapping, as (offset,
    /// length); `None` when none of it is.
    fn inside(&self, offset: u64, len: u64) -> Option<(usize, usize)> {
        let (Ok(off), Ok(n)) = (usize::try_from(offset), usize::try_from(len)) else {
            return None;
        };
        (off < self.len).then(|| (off, n.min(self.len - off)))
    }

    /// Make the page table entries of every chunk of `off..off + n` not
    /// made yet (see `populated`); the range is inside the mapping. A
    /// kernel without `MADV_POPULATE_*` (before 5.14) refuses it: the
    /// copies then fault page by page.
    fn populate(&self, off: usize, n: usize) {
        for c in self.claim(off, n) {
            self.populate_chunk(c);
        }
    }

    /// Claim the chunks of `off..off + n` not claimed yet (the range is
    /// inside the mapping). A chunk is claimed before it is made: a thread
    /// that finds it claimed while another one populates it copies at
    /// once, its copies faulting in what is not made yet (the entries are
    /// only ever a speed-up).
    fn claim(&self, off: usize, n: usize) -> Vec<usize> {
        let mut mine = Vec::new();
        if n == 0 {
            return mine;
        }
        for c in off / POPULATE_CHUNK..=(off + n - 1) / POPULATE_CHUNK {
            let Some(word) = self.populated.get(c / 64) else {
                break;
            };
            let bit = 1u64 << (c % 64);
            if word.load(Ordering::Relaxed) & bit == 0
                && word.fetch_or(bit, Ordering::Relaxed) & bit == 0
            {
                mine.push(c);
            }
        }
        mine
    }

    /// Make the page table entries of chunk `c` of the mapping.
    fn populate_chunk(&self, c: usize) {
        let start = c * POPULATE_CHUNK;
        if start >= self.len {
            return;
        }
        let len = POPULATE_CHUNK.min(self.len - start);
        // `_READ` on a writable mapping too: on tmpfs a shared mapping
        // needs no write notification, so read faults install writable
        // entries, and they map the pages around the faulting one in
        // one go. Populating 1 GiB this way and then writing all of it
        // takes 180 ms here, against 340 ms with `MADV_POPULATE_WRITE`
        // (one fault per page) and 80 ms for the copies alone.
        // SAFETY: `start..start + len` lies inside the mapping (checked
        // above); populating changes no byte of it.
        unsafe {
            libc::madvise(
                self.addr.as_ptr().add(start).cast(),
                len,
                libc::MADV_POPULATE_READ,
            )
        };
    }

    /// Have the mapping's thread populate the chunks of `offset..offset +
    /// len` inside the mapping that nobody claimed yet (ahead of copies
    /// there); populate them here when that thread cannot be started.
    fn prepare(self: &Arc<Self>, offset: u64, len: u64) {
        let Some((off, n)) = self.inside(offset, len) else {
            return;
        };
        let todo = self.claim(off, n);
        if todo.is_empty() {
            return;
        }
        let mut tx = crate::lock::lock(&self.ahead);
        if tx.is_none() {
            let (t, rx) = std::sync::mpsc::channel::<usize>();
            let weak = Arc::downgrade(self);
            let spawned = std::thread::Builder::new()
                .name("mpool-populate".into())
                .spawn(move || {
                    while let Ok(c) = rx.recv() {
                        let Some(m) = weak.upgrade() else { return };
                        m.populate_chunk(c);
                    }
                });
            if spawned.is_ok() {
                *tx = Some(t);
            }
        }
        for c in todo {
            if tx.as_ref().is_none_or(|t| t.send(c).is_err()) {
                self.populate_chunk(c);
            }
        }
    }

    /// The mapping's bytes `offset..offset + n` as a pointer, or `None`
    /// past its end.
    fn at(&self, offset: u64, n: usize) -> Option<*mut u8> {
        let off = usize::try_from(offset).ok()?;
        if off.checked_add(n)? > self.len {
            return None;
        }
        self.populate(off, n);
        // SAFETY: `off + n <= len`: the pointer stays inside the mapping.
        Some(unsafe { self.addr.as_ptr().add(off) })
    }

    /// Copy the mapping's bytes at `offset` into `buf`.
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let src = self.at(offset, buf.len()).ok_or_else(past_end)?;
        // SAFETY: `src` points to `buf.len()` bytes inside the mapping
        // (`at`), which does not overlap the caller's buffer.
        unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Copy `data` into the mapping at `offset` (a read-only mapping is
    /// never written: the device refuses writes before they get here, and
    /// this refuses them again rather than fault).
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        let dst = self.at(offset, data.len()).ok_or_else(past_end)?;
        // SAFETY: `dst` points to `data.len()` bytes inside the mapping
        // (`at`), writable (the device is read-write), not overlapping
        // `data`. Another copy may write the same range at once: an mlog
        // appender and a waiter writing its record for it (`Mlog::help`)
        // copy the same bytes, as two `pwrite`s of one record to a file
        // would; the mapping is shared memory, which other processes may
        // write too, never read or written through references.
        unsafe { copy_out(data, dst) };
        Ok(())
    }

    /// Run one request through the mapping.
    fn run(&self, r: &mut IoReq) {
        let res = match r.kind {
            IoKind::Read => self.read(r.offset, &mut r.buf),
            IoKind::Write => self.write(r.offset, &r.buf),
        };
        r.result = Some(res);
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; no copy runs
        // (the device owning it is dropped, and the populating thread,
        // which may hold the last reference for a moment, is done with it).
        unsafe { libc::munmap(self.addr.as_ptr().cast(), self.len) };
    }
}

/// Writes at least this long go to the mapping with one string move.
const STRING_MIN: usize = 1024;

/// Copy `data` to `dst`. Where the processor has fast string moves
/// (ERMSB), a copy of [`STRING_MIN`] bytes or more is one `rep movsb`,
/// the instruction the kernel copies a `pwrite`'s bytes with: it writes
/// whole cache lines without first reading each one for ownership, which
/// a loop of vector stores (the library's copy at 4 KiB) waits for, line
/// by line, from memory or from the other core's cache. With two mlog
/// appenders on CPUs in different core complexes, that wait was a third
/// of an append's CPU time (BENCHMARKS.md, session 30). Non-temporal
/// stores skip it too but need a fence and leave the bytes out of every
/// cache; they measured no faster.
///
/// # Safety
///
/// `dst` is valid for `data.len()` bytes of writes and does not overlap
/// `data`.
unsafe fn copy_out(data: &[u8], dst: *mut u8) {
    let n = data.len();
    #[cfg(target_arch = "x86_64")]
    if n >= STRING_MIN && std::arch::is_x86_feature_detected!("ermsb") {
        // SAFETY: `rep movsb` copies `rcx` = `n` bytes from `rsi` = the
        // start of `data` to `rdi` = `dst`, forwards (the direction flag
        // is clear, as the ABI keeps it): inside both, which do not
        // overlap (the caller's promise). It touches no stack and no flag,
        // and its stores are ordered as ordinary stores are.
        unsafe {
            std::arch::asm!(
                "rep movsb",
                inout("rcx") n => _,
                inout("rsi") data.as_ptr() => _,
                inout("rdi") dst => _,
                options(nostack, preserves_flags)
            );
        }
        return;
    }
    // SAFETY: the caller's promise.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, n) };
}

fn past_end() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "past the end of the mapping")
}

/// Whether `file` lives on a file system in memory (tmpfs, ramfs).
fn on_memory_fs(file: &File) -> bool {
    const TMPFS_MAGIC: u64 = 0x0102_1994;
    const RAMFS_MAGIC: u64 = 0x8584_58f6;
    rustix::fs::fstatfs(file).is_ok_and(|s| {
        let t = s.f_type as u64;
        t == TMPFS_MAGIC || t == RAMFS_MAGIC
    })
}

/// Read slots (opens of the file for reading) per device.
const READ_SLOTS: usize = 8;

/// Threads are numbered as they first read; the number picks their slot.
static NEXT_READER: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static READER: usize = NEXT_READER.fetch_add(1, Ordering::Relaxed);
}

/// BLKDISCARD = _IO(0x12, 119) on the common Linux architectures.
const BLKDISCARD: libc::c_ulong = 0x1277;

impl FileDevice {
    /// Open (or with `create_size`, create) a file or block device.
    pub fn open(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Self, DevError> {
        let path = path.as_ref();
        let open_err = |e: io::Error| map_open_err(path, opts.read_only, e);
        let engine = Engine::new(opts.engine).map_err(|e| io_err_path(path, "open", e))?;
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => match opts.create_size {
                Some(size) => {
                    create_sparse(path, size).map_err(open_err)?;
                    std::fs::metadata(path).map_err(open_err)?
                }
                None => {
                    return Err(DevError::NotFound {
                        path: path.to_path_buf(),
                    })
                }
            },
            Err(e) => return Err(open_err(e)),
        };
        let ft = meta.file_type();
        let block = ft.is_block_device();
        if !block && !ft.is_file() {
            return Err(DevError::NotADevice {
                path: path.to_path_buf(),
            });
        }
        let mut flags = 0;
        if block && !opts.read_only {
            flags |= libc::O_EXCL;
        }
        let try_open = |direct: bool| {
            let mut o = std::fs::OpenOptions::new();
            o.read(true).write(!opts.read_only);
            o.custom_flags(flags | if direct { libc::O_DIRECT } else { 0 });
            o.open(path)
        };
        let (file, direct) = match try_open(opts.direct) {
            Ok(f) => (f, opts.direct),
            // Some filesystems refuse O_DIRECT: fall back and say so in info.
            Err(e) if opts.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                (try_open(false).map_err(open_err)?, false)
            }
            Err(e) => return Err(open_err(e)),
        };
        let (size, logical, physical) = if block {
            block_geometry(&file).map_err(|e| io_err_path(path, "ioctl", e))?
        } else {
            (meta.len(), DEFAULT_ALIGN as u32, DEFAULT_ALIGN as u32)
        };
        let in_memory = !block && on_memory_fs(&file);
        let map = if in_memory {
            Mapping::new(&file, size, !opts.read_only).map(Arc::new)
        } else {
            None
        };
        let info = DeviceInfo {
            path: Some(path.to_path_buf()),
            kind: if block {
                DeviceKind::Block
            } else {
                DeviceKind::File
            },
            size,
            logical_sector: logical.max(512),
            physical_sector: physical.max(logical).max(512),
            direct,
            discard: true,
            engine: if map.is_some() { "mmap" } else { engine.name() },
            read_only: opts.read_only,
        };
        Ok(Self {
            file,
            info,
            engine,
            in_memory,
            map,
            gate: FlushGate::default(),
            readers: (0..READ_SLOTS).map(|_| OnceLock::new()).collect(),
        })
    }

    /// The open file this thread reads through (see `readers`).
    fn reader(&self) -> &File {
        let slot = READER.try_with(|n| *n).unwrap_or(0) % READ_SLOTS;
        let Some(cell) = self.readers.get(slot) else {
            return &self.file;
        };
        cell.get_or_init(|| {
            let path = format!("/proc/self/fd/{}", self.file.as_raw_fd());
            let open = |noatime: bool| {
                let mut o = std::fs::OpenOptions::new();
                o.read(true).custom_flags(
                    libc::O_CLOEXEC
                        | if self.info.direct { libc::O_DIRECT } else { 0 }
                        | if noatime { libc::O_NOATIME } else { 0 },
                );
                o.open(&path)
            };
            // O_NOATIME is refused (EPERM) to a process that neither owns
            // the file nor has CAP_FOWNER: then an open without it.
            open(true).or_else(|_| open(false)).ok()
        })
        .as_ref()
        .unwrap_or(&self.file)
    }

    /// Whether the file is mapped (a fully allocated file in memory; see
    /// [`DeviceInfo::engine`], then `"mmap"`).
    pub fn is_mapped(&self) -> bool {
        self.map.is_some()
    }

    /// The open file (for locking and ownership changes).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Flush calls so far and the `fdatasync` calls that served them
    /// (concurrent flushes share one).
    pub fn flush_stats(&self) -> FlushStats {
        self.gate.stats()
    }
}

/// A device gives back the lock on its file (the pool lock, `flock`) when
/// it goes, not when the kernel lets go of the open file: io_uring keeps
/// references to a file it read or wrote until its ring is torn down,
/// which happens in a kernel worker after the ring is closed, even after
/// the process exited, and a mapping keeps one until it is unmapped (by
/// the populating thread, when it holds the mapping last). The next
/// command on the pool, started as soon as this one ended, found it busy
/// (once in CI: for more than the second `lock_member` waits).
impl Drop for FileDevice {
    fn drop(&mut self) {
        // Unlocking a file that holds no lock does nothing; an error
        // leaves the lock to the close, as before.
        let _ = self.file.unlock();
    }
}

/// Fill `buf` from `file` at `offset`, as `FileExt::read_exact_at` does,
/// but by `pread` system calls made directly (rustix): the C library's
/// `pread` is a thread cancellation point and switches the thread's
/// cancellation state around every call, a few percent of a 4 KiB read
/// from memory-speed media.
fn pread_exact(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match rustix::io::pread(file, &mut *buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "failed to fill whole buffer",
                ))
            }
            Ok(n) => {
                let rest = std::mem::take(&mut buf);
                buf = rest.get_mut(n..).unwrap_or_default();
                offset += n as u64;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Create a sparse file of `size` bytes; a file that cannot be given its
/// size (more than the filesystem holds) is removed, not left behind empty.
fn create_sparse(path: &Path, size: u64) -> io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    let r = i64::try_from(size)
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{size} bytes is more than a file can hold"),
            )
        })
        .and_then(|_| f.set_len(size))
        .and_then(|()| f.sync_all());
    if r.is_err() {
        drop(f);
        let _ = std::fs::remove_file(path);
    }
    r
}

/// Bytes free on the filesystem holding `file`, as this process may use
/// them (`statvfs`: available blocks times the fragment size).
pub fn fs_free(file: &File) -> io::Result<u64> {
    let st = rustix::fs::fstatvfs(file)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

fn block_geometry(file: &File) -> io::Result<(u64, u32, u32)> {
    let logical = rustix::fs::ioctl_blksszget(file)?;
    let physical = rustix::fs::ioctl_blkpbszget(file)?;
    let size = rustix::fs::seek(file, rustix::fs::SeekFrom::End(0))?;
    Ok((size, logical, physical))
}

fn io_err_path(path: &Path, op: &'static str, source: io::Error) -> DevError {
    DevError::Io {
        op,
        device: path.display().to_string(),
        offset: 0,
        source,
    }
}

fn map_open_err(path: &Path, read_only: bool, e: io::Error) -> DevError {
    match e.raw_os_error() {
        Some(libc::ENOENT) => DevError::NotFound {
            path: path.to_path_buf(),
        },
        Some(libc::EBUSY) => DevError::Busy {
            path: path.to_path_buf(),
        },
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => {
            let m = std::fs::metadata(path).ok();
            DevError::PermissionDenied {
                path: path.to_path_buf(),
                need: if read_only { "read" } else { "read-write" },
                mode: m.as_ref().map_or(0, |m| m.mode() & 0o7777),
                uid: m.as_ref().map_or(0, |m| m.uid()),
                gid: m.as_ref().map_or(0, |m| m.gid()),
                euid: rustix::process::geteuid().as_raw(),
            }
        }
        _ => io_err_path(path, "open", e),
    }
}

impl Device for FileDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn write_slice(&self, offset: u64, data: &[u8]) -> Result<(), DevError> {
        check_req(&self.info, offset, data.len())?;
        if self.info.read_only {
            return Err(DevError::ReadOnly {
                device: self.info.name(),
            });
        }
        if let Some(m) = &self.map {
            return m
                .write(offset, data)
                .map_err(|e| io_err(&self.info, "write", offset, e));
        }
        // O_DIRECT needs the memory aligned as the device's buffers are.
        if !(data.as_ptr() as usize).is_multiple_of(DEFAULT_ALIGN) {
            let mut buf = self.alloc_buf(data.len());
            buf.copy_from_slice(data);
            return self.write_at(offset, &mut buf);
        }
        std::os::unix::fs::FileExt::write_all_at(&self.file, data, offset)
            .map_err(|e| io_err(&self.info, "write", offset, e))
    }

    fn read_slice(&self, offset: u64, buf: &mut [u8]) -> Result<(), DevError> {
        check_req(&self.info, offset, buf.len())?;
        if let Some(m) = &self.map {
            return m
                .read(offset, buf)
                .map_err(|e| io_err(&self.info, "read", offset, e));
        }
        // O_DIRECT needs the memory aligned as the device's buffers are.
        if !(buf.as_ptr() as usize).is_multiple_of(DEFAULT_ALIGN) {
            return super::read_bounced(self, offset, buf);
        }
        pread_exact(self.reader(), buf, offset).map_err(|e| io_err(&self.info, "read", offset, e))
    }

    fn submit(&self, reqs: Vec<IoReq>) -> Vec<IoReq> {
        self.submit_depth(reqs, usize::MAX)
    }

    fn submit_depth(&self, reqs: Vec<IoReq>, depth: usize) -> Vec<IoReq> {
        self.submit_each(reqs, depth, &mut |_, _| {})
    }

    fn prefers_batches(&self) -> bool {
        !self.in_memory
    }

    fn submit_beside(&self, mut reqs: Vec<IoReq>, side: &mut dyn FnMut()) -> Vec<IoReq> {
        if self.in_memory || !split_invalid(&self.info, &mut reqs) {
            // A file in memory (see `in_memory`), or some requests were
            // refused: the plain way, which keeps their order and errors.
            let out = self.submit(reqs);
            side();
            return out;
        }
        self.engine.submit_beside(self.file.as_fd(), reqs, side)
    }

    fn submit_each(
        &self,
        mut reqs: Vec<IoReq>,
        depth: usize,
        done: &mut dyn FnMut(usize, &IoReq),
    ) -> Vec<IoReq> {
        if let Some(m) = &self.map {
            // Copies, in order; the invalid ones carry their error.
            split_invalid(&self.info, &mut reqs);
            for (i, r) in reqs.iter_mut().enumerate() {
                if r.result.is_none() {
                    m.run(r);
                }
                done(i, r);
            }
            return reqs;
        }
        let fd = self.file.as_fd();
        if split_invalid(&self.info, &mut reqs) {
            return self.engine.submit_each(fd, reqs, depth, done);
        }
        // Some were invalid: run only the valid ones, keep the order.
        let mut valid = Vec::new();
        let mut slots = Vec::with_capacity(reqs.len());
        let mut index = Vec::new();
        for (i, r) in reqs.into_iter().enumerate() {
            if r.result.is_some() {
                done(i, &r);
                slots.push(Some(r));
            } else {
                index.push(i);
                valid.push(r);
                slots.push(None);
            }
        }
        let mut ran = self
            .engine
            .submit_each(fd, valid, depth, &mut |k, r| {
                if let Some(&i) = index.get(k) {
                    done(i, r);
                }
            })
            .into_iter();
        slots
            .into_iter()
            .filter_map(|s| s.or_else(|| ran.next()))
            .collect()
    }

    fn queue(&self, depth: usize) -> Box<dyn DevQueue + '_> {
        if self.engine.is_uring() && self.map.is_none() {
            // The ring reads straight into the caller's buffers; where it
            // cannot be set up, requests go through submit instead.
            if let Ok(q) = Queue::for_file(&self.file, depth) {
                return Box::new(UringQueue {
                    q,
                    info: &self.info,
                    ready: Vec::new(),
                });
            }
        }
        Box::new(SubmitQueue::new(self, depth))
    }

    fn write_bytes(&self, offset: u64, data: &[u8]) -> Option<Result<(), DevError>> {
        let m = self.map.as_ref()?;
        if self.info.read_only {
            return Some(Err(DevError::ReadOnly {
                device: self.info.name(),
            }));
        }
        Some(
            m.write(offset, data)
                .map_err(|e| io_err(&self.info, "write", offset, e)),
        )
    }

    fn will_write(&self, offset: u64, len: u64) {
        if let Some(m) = &self.map {
            m.prepare(offset, len);
        }
    }

    fn prepare_writes(&self, offset: u64, len: u64) {
        if let Some(m) = self.map.as_ref().filter(|m| m.writable) {
            if let Some((off, n)) = m.inside(offset, len) {
                m.populate(off, n);
            }
        }
    }

    fn flush(&self) -> Result<(), DevError> {
        if self.map.is_some() {
            // A file in memory has nothing to write back: tmpfs and ramfs
            // do nothing on `fdatasync` (`noop_fsync`), and the copies are
            // in the file's pages already. The system call alone was 6 %
            // of a metadata operation's CPU on tmpfs.
            return Ok(());
        }
        let fd = self.file.as_fd();
        self.gate
            .flush(|| self.engine.flush(fd))
            .map_err(|e| io_err(&self.info, "flush", 0, e))
    }

    fn reserve(&self, ranges: &[std::ops::Range<u64>]) -> Result<(), DevError> {
        if self.info.kind != DeviceKind::File {
            return Ok(());
        }
        if self.info.read_only {
            return Err(DevError::ReadOnly {
                device: self.info.name(),
            });
        }
        let clamp = |r: &std::ops::Range<u64>| r.start.min(self.info.size)..r.end.min(self.info.size);
        let needed: u64 = ranges.iter().map(|r| clamp(r).end - clamp(r).start).sum();
        for r in ranges.iter().map(clamp).filter(|r| !r.is_empty()) {
            match rustix::fs::fallocate(
                &self.file,
                rustix::fs::FallocateFlags::empty(),
                r.start,
                r.end - r.start,
            ) {
                Ok(()) => {}
                // A filesystem that cannot allocate ahead: nothing to do.
                Err(rustix::io::Errno::OPNOTSUPP) => return Ok(()),
                Err(e @ (rustix::io::Errno::NOSPC | rustix::io::Errno::DQUOT)) => {
                    return Err(DevError::NoSpaceToReserve {
                        device: self.info.name(),
                        needed,
                        free: fs_free(&self.file).unwrap_or(0),
                        source: e.into(),
                    })
                }
                Err(e) => return Err(io_err(&self.info, "fallocate", r.start, e.into())),
            }
        }
        Ok(())
    }

    fn discard(&self, offset: u64, len: u64) -> Result<(), DevError> {
        if self.info.read_only {
            return Err(DevError::ReadOnly {
                device: self.info.name(),
            });
        }
        let Ok(l) = usize::try_from(len) else {
            return Err(DevError::OutOfRange {
                device: self.info.name(),
                offset,
                len: usize::MAX,
                size: self.info.size,
            });
        };
        check_req(&self.info, offset, l)?;
        if len == 0 || self.map.is_some() {
            // A mapped file keeps every block (see `Mapping`).
            return Ok(());
        }
        let r = match self.info.kind {
            DeviceKind::Block => {
                let range: [u64; 2] = [offset, len];
                // SAFETY: BLKDISCARD reads two u64 (start, length) from the pointer,
                // which points to a live local array.
                let rc =
                    unsafe { libc::ioctl(self.file.as_raw_fd(), BLKDISCARD as _, range.as_ptr()) };
                if rc == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            }
            _ => rustix::fs::fallocate(
                &self.file,
                rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE,
                offset,
                len,
            )
            .map_err(io::Error::from),
        };
        match r {
            Ok(()) => Ok(()),
            // Discard is advisory: devices without support are fine.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP) | Some(libc::ENOTTY) | Some(libc::EINVAL)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(io_err(&self.info, "discard", offset, e)),
        }
    }
}

/// The canonical form of a device path (symlinks resolved) for comparisons.
pub fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The queue of a file device on io_uring: requests go from the caller's
/// buffers to the file with no copy, on a ring of the queue's own.
struct UringQueue<'a> {
    q: Queue,
    info: &'a DeviceInfo,
    /// Invalid requests, complete with their error, waiting for a reap.
    ready: Vec<(u64, IoReq)>,
}

impl DevQueue for UringQueue<'_> {
    fn depth(&self) -> usize {
        self.q.depth()
    }

    fn in_flight(&self) -> usize {
        self.q.in_flight() + self.ready.len()
    }

    fn push(&mut self, mut req: IoReq, tag: u64) -> Result<(), IoReq> {
        if req.buf.is_empty() || self.in_flight() >= self.depth() {
            return Err(req);
        }
        if !split_invalid(self.info, std::slice::from_mut(&mut req)) {
            self.ready.push((tag, req));
            return Ok(());
        }
        self.q.push(req, tag)
    }

    fn reap(&mut self, min: usize, out: &mut Vec<(u64, IoReq)>) -> io::Result<()> {
        let early = self.ready.len();
        out.append(&mut self.ready);
        self.q.reap(min.saturating_sub(early), out)
    }

    fn register_arena(&mut self, arena: &Arc<Arena>) -> bool {
        self.q.register_arena(Arc::clone(arena)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::{create_sparse, FileDevice, OpenOptions};
    use crate::dev::Device;
    use crate::io::AlignedBuf;

    /// A fully allocated file of `len` bytes in a new directory on
    /// /dev/shm (a device opened on it is mapped), with the directory that
    /// removes it; `None`, said loudly, where /dev/shm is not a tmpfs.
    fn allocated_on_shm(
        test: &str,
        len: u64,
    ) -> Option<(tempfile::TempDir, std::path::PathBuf)> {
        let shm = std::path::Path::new("/dev/shm");
        if !std::fs::File::open(shm).is_ok_and(|d| super::on_memory_fs(&d)) {
            eprintln!("SKIPPED {test}: /dev/shm is not a tmpfs");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("mpool-dev-file-")
            .tempdir_in(shm)
            .unwrap();
        let path = dir.path().join("m.img");
        let f = std::fs::File::create(&path).unwrap();
        rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, len).unwrap();
        Some((dir, path))
    }

    /// A new 1 MiB file device at `path`.
    fn new_dev(path: &std::path::Path) -> FileDevice {
        let opts = OpenOptions {
            create_size: Some(1 << 20),
            ..OpenOptions::default()
        };
        FileDevice::open(path, &opts).unwrap()
    }

    /// A copy into mapped memory writes exactly its bytes, and nothing
    /// around them, whatever the destination's alignment within a cache
    /// line and the length: below and above the string-move length, and
    /// starting or ending in the middle of a line.
    #[test]
    fn a_copy_out_writes_its_bytes_and_nothing_around_them() {
        let n_max = 5 * super::STRING_MIN + 200;
        let src: Vec<u8> = (0..n_max).map(|i| (i * 7 + 3) as u8).collect();
        // 64-byte aligned, with room for every start below and guard bytes.
        let mut area = AlignedBuf::new(n_max + 256, 64);
        for start in [0usize, 1, 15, 16, 17, 48, 63, 64, 65, 127] {
            for n in [
                0,
                1,
                63,
                64,
                super::STRING_MIN - 1,
                super::STRING_MIN,
                super::STRING_MIN + 1,
                super::STRING_MIN + 63,
                4096,
                4096 + 37,
                n_max,
            ] {
                area.fill(0xEE);
                // SAFETY: `start + n <= 127 + n_max`, inside the area, which
                // does not overlap `src`.
                unsafe { super::copy_out(&src[..n], area.as_mut_ptr().add(start)) };
                assert!(area[..start].iter().all(|&b| b == 0xEE), "before: {start} {n}");
                assert_eq!(&area[start..start + n], &src[..n], "copy: {start} {n}");
                assert!(area[start + n..].iter().all(|&b| b == 0xEE), "after: {start} {n}");
            }
        }
    }

    /// A dropped device's lock is free at once, although its open file
    /// lives on in another reference (as io_uring or a mapping keep one).
    #[test]
    fn a_dropped_device_gives_back_its_lock_while_its_file_lives_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.img");
        let dev = new_dev(&path);
        dev.file().try_lock().unwrap();
        let lingering = dev.file().try_clone().unwrap();
        let other = std::fs::File::open(&path).unwrap();
        assert!(other.try_lock().is_err(), "the device holds the lock");
        drop(dev);
        other
            .try_lock()
            .expect("the lock is free once the device is dropped");
        drop(lingering);
    }

    /// `read_slice` reads the same bytes into aligned memory (straight
    /// from the file) as into unaligned memory (through a buffer of the
    /// device's), and refuses a misaligned or out-of-range request.
    #[test]
    fn read_slice_reads_into_aligned_and_unaligned_memory() {
        let dir = tempfile::tempdir().unwrap();
        let dev = new_dev(&dir.path().join("d.img"));
        let data: Vec<u8> = (0..3 * 4096).map(|i| (i * 7 % 253) as u8).collect();
        dev.write_slice(8192, &data).unwrap();
        let mut aligned = AlignedBuf::new(data.len(), 4096);
        dev.read_slice(8192, &mut aligned).unwrap();
        assert_eq!(&aligned[..], &data[..]);
        let mut backing = vec![0u8; data.len() + 1];
        let unaligned = &mut backing[1..];
        dev.read_slice(8192, unaligned).unwrap();
        assert_eq!(unaligned, &data[..]);
        assert!(dev.read_slice(8192 + 1, &mut aligned).is_err());
        assert!(dev.read_slice(1 << 20, &mut aligned).is_err());
    }

    /// Threads read through opens of their own (one per slot): every slot
    /// reads the device's bytes, also once the file's name is gone.
    #[test]
    fn read_slice_from_many_threads_reads_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.img");
        let dev = new_dev(&path);
        let data: Vec<u8> = (0..4096).map(|i| (i * 13 % 251) as u8).collect();
        dev.write_slice(4096, &data).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::thread::scope(|s| {
            for _ in 0..2 * (super::READ_SLOTS + 1) {
                s.spawn(|| {
                    let mut b = AlignedBuf::new(4096, 4096);
                    dev.read_slice(4096, &mut b).unwrap();
                    assert_eq!(&b[..], &data[..]);
                });
            }
        });
    }

    /// A thread's reads go through an open of its slot that skips the
    /// access-time update (the test's process owns the file), not through
    /// the main file.
    #[test]
    fn reads_go_through_opens_without_access_time_updates() {
        let dir = tempfile::tempdir().unwrap();
        let dev = new_dev(&dir.path().join("d.img"));
        let mut b = AlignedBuf::new(4096, 4096);
        dev.read_slice(0, &mut b).unwrap();
        let r = dev.reader();
        assert!(!std::ptr::eq(r, dev.file()));
        let fl = rustix::fs::fcntl_getfl(r).unwrap();
        assert!(fl.contains(rustix::fs::OFlags::NOATIME), "{fl:?}");
        assert!(!rustix::fs::fcntl_getfl(dev.file())
            .unwrap()
            .contains(rustix::fs::OFlags::NOATIME));
    }

    /// `pread_exact` fills the whole buffer or fails: past the end of the
    /// file it is an error, not a short read.
    #[test]
    fn pread_exact_fills_the_buffer_or_fails() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..6000).map(|i| (i % 241) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        let mut b = vec![0u8; 4000];
        super::pread_exact(&f, &mut b, 1000).unwrap();
        assert_eq!(&b[..], &data[1000..5000]);
        let e = super::pread_exact(&f, &mut b, 3000).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_file_too_large_to_create_is_not_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        for size in [u64::MAX, i64::MAX as u64 + 1] {
            let p = dir.path().join("big.img");
            assert!(create_sparse(&p, size).is_err());
            assert!(!p.exists(), "{size}: left {} behind", p.display());
        }
        let p = dir.path().join("ok.img");
        create_sparse(&p, 1 << 20).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 1 << 20);
    }

    /// A log opened on a mapped tmpfs file makes its whole extent's page
    /// table entries at once (`Device::prepare_writes`), before any append:
    /// every chunk of the extent is claimed, none outside it.
    #[test]
    fn a_mapped_logs_extent_is_populated_when_it_is_made() {
        let chunk = super::POPULATE_CHUNK as u64;
        let Some((_dir, path)) =
            allocated_on_shm("a_mapped_logs_extent_is_populated_when_it_is_made", 8 * chunk)
        else {
            return;
        };
        let dev = std::sync::Arc::new(FileDevice::open(&path, &OpenOptions::default()).unwrap());
        let Some(map) = dev.map.clone() else {
            panic!("a fully allocated tmpfs file is mapped");
        };
        let claimed = |c: usize| {
            map.populated[c / 64].load(std::sync::atomic::Ordering::Relaxed) & (1 << (c % 64)) != 0
        };
        let log = crate::mlog::Mlog::create(dev.clone(), 2 * chunk..6 * chunk, 7).unwrap();
        for c in 2..6 {
            assert!(claimed(c), "chunk {c} of the extent");
        }
        for c in [0, 1, 6, 7] {
            assert!(!claimed(c), "chunk {c} outside the extent");
        }
        log.append(b"one", true).unwrap();
        drop(log);
        let back = crate::mlog::Mlog::open(dev.clone(), 2 * chunk..6 * chunk, 7).unwrap();
        let mut r = back.reader().unwrap();
        assert_eq!(r.next().unwrap().unwrap(), b"one");
    }

    /// On a mapped tmpfs file, chunks announced by `will_write` are claimed
    /// at once and handed to the mapping's own thread, which holds the
    /// mapping only weakly: writes through them land, and once the device
    /// is dropped the mapping goes (the thread does not keep it).
    #[test]
    fn announced_chunks_are_populated_by_the_mappings_thread() {
        let size = 4 * super::POPULATE_CHUNK as u64;
        let Some((_dir, path)) =
            allocated_on_shm("announced_chunks_are_populated_by_the_mappings_thread", size)
        else {
            return;
        };
        let dev = FileDevice::open(&path, &OpenOptions::default()).unwrap();
        let Some(map) = dev.map.clone() else {
            panic!("a fully allocated tmpfs file is mapped");
        };
        let claimed = |c: usize| map.populated[c / 64].load(std::sync::atomic::Ordering::Relaxed) & (1 << (c % 64)) != 0;
        assert!(!claimed(1) && !claimed(2));
        // Two chunks from the middle of the first one's end.
        let at = super::POPULATE_CHUNK as u64 * 2 - 4096;
        dev.will_write(at, super::POPULATE_CHUNK as u64);
        assert!(claimed(1) && claimed(2) && !claimed(3));
        assert!(crate::lock::lock(&map.ahead).is_some(), "the thread started");
        let data: Vec<u8> = (0..8192).map(|i| (i % 251) as u8).collect();
        dev.write_bytes(at, &data).unwrap().unwrap();
        let mut back = vec![0u8; data.len()];
        dev.read_slice(at, &mut back).unwrap();
        assert_eq!(back, data);
        // The device's references go; the thread's weak one does not count.
        let weak = std::sync::Arc::downgrade(&map);
        drop(map);
        drop(dev);
        let t0 = std::time::Instant::now();
        while weak.upgrade().is_some() {
            assert!(t0.elapsed().as_secs() < 10, "the mapping outlived its device");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}
