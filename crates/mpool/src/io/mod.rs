//! I/O engines: io_uring (batched, buffer-owning) and pread/pwrite.
//!
//! Requests own their buffers: a batch of [`IoReq`] moves into
//! [`Engine::submit`] and comes back with every request's result filled in.
//! The call returns only when every request has completed, so the kernel never
//! holds a pointer into memory the caller could drop.
// Items here that only the tooling of the `internals` feature uses (the
// benchmarks' raw engine runs, the crash tests, the fuzz targets) are not
// dead code in a build without it.
#![cfg_attr(not(feature = "internals"), allow(dead_code, unused_imports))]

mod buf;
pub(crate) mod huge;
mod sync;
mod uring;

pub use buf::{round_up, AlignedBuf, Arena, DEFAULT_ALIGN, MIN_ALIGN};
pub use huge::{thp_available, write_buf, HugeRegion, HUGE_PAGE};
pub use uring::StrayCompletion;

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::str::FromStr;

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoKind {
    /// Fill the buffer from the device.
    Read,
    /// Write the buffer to the device.
    Write,
}

/// One read or write of a whole buffer at a byte offset.
#[derive(Debug)]
pub struct IoReq {
    /// Read or write.
    pub kind: IoKind,
    /// Byte offset on the device.
    pub offset: u64,
    /// The buffer: read into, or written from. Moves back with the result.
    pub buf: AlignedBuf,
    /// Set by the engine: `Some(Ok(()))` when the whole buffer was transferred.
    pub result: Option<io::Result<()>>,
}

impl IoReq {
    /// A read of `buf.len()` bytes at `offset`.
    pub fn read(offset: u64, buf: AlignedBuf) -> Self {
        Self {
            kind: IoKind::Read,
            offset,
            buf,
            result: None,
        }
    }

    /// A write of `buf` at `offset`.
    pub fn write(offset: u64, buf: AlignedBuf) -> Self {
        Self {
            kind: IoKind::Write,
            offset,
            buf,
            result: None,
        }
    }

    /// Take the result, treating a missing one as an engine bug reported as an error.
    pub fn take_result(&mut self) -> io::Result<()> {
        self.result
            .take()
            .unwrap_or_else(|| Err(io::Error::other("request was not completed by the engine")))
    }
}

/// Which engine to use, as configured (`io_engine = auto|uring|sync`, `MPOOL_IO_ENGINE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    /// io_uring when the kernel allows it, a plain system call for a lone small I/O.
    #[default]
    Auto,
    /// io_uring for every request (fails to open if io_uring is unavailable).
    Uring,
    /// pread/pwrite for every request.
    Sync,
}

impl EngineChoice {
    /// The choice from `MPOOL_IO_ENGINE`, or `Auto` when unset.
    ///
    /// An unparsable value is an error, never silently ignored.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("MPOOL_IO_ENGINE") {
            Ok(v) => v.parse(),
            Err(_) => Ok(Self::Auto),
        }
    }
}

impl FromStr for EngineChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "uring" | "io_uring" => Ok(Self::Uring),
            "sync" | "pread" => Ok(Self::Sync),
            other => Err(format!(
                "unknown I/O engine '{other}' (expected auto, uring or sync)"
            )),
        }
    }
}

impl fmt::Display for EngineChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Uring => "uring",
            Self::Sync => "sync",
        })
    }
}

/// A single I/O at most this large goes through a plain system call in `Auto`
/// mode: for a lone small request pread/pwrite is far cheaper than a ring
/// round trip (on a memory-backed file fio measured pread at QD1 in 0.7 us,
/// io_uring at QD1 in 20 us: the kernel hands such requests to a worker).
pub const AUTO_SYNC_MAX_BYTES: usize = 256 * 1024;

/// A resolved engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Engine {
    choice: EngineChoice,
    uring: bool,
}

impl Engine {
    /// Resolve a choice by probing io_uring. `Uring` fails when the kernel refuses it.
    pub fn new(choice: EngineChoice) -> io::Result<Self> {
        let avail = uring::available();
        match choice {
            EngineChoice::Sync => Ok(Self { choice, uring: false }),
            EngineChoice::Auto => Ok(Self { choice, uring: avail }),
            EngineChoice::Uring if avail => Ok(Self { choice, uring: true }),
            EngineChoice::Uring => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring is not available here (kernel, seccomp or io_uring_disabled); use io_engine=sync or auto",
            )),
        }
    }

    /// The engine configured through `MPOOL_IO_ENGINE` (default `auto`).
    pub fn from_env() -> io::Result<Self> {
        let choice =
            EngineChoice::from_env().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Self::new(choice)
    }

    /// The configured choice.
    pub fn choice(&self) -> EngineChoice {
        self.choice
    }

    /// Name of the engine that batches go through: `io_uring` or `sync`.
    pub fn name(&self) -> &'static str {
        if self.uring {
            "io_uring"
        } else {
            "sync"
        }
    }

    /// Perform every request against `fd`; each comes back with its result set.
    pub fn submit(&self, fd: BorrowedFd<'_>, reqs: Vec<IoReq>) -> Vec<IoReq> {
        self.submit_depth(fd, reqs, usize::MAX)
    }

    /// As [`Engine::submit`], with at most `depth` requests in flight at a
    /// time (io_uring refills as each completes, like a queue of that depth;
    /// the sync engine runs one at a time anyway).
    pub fn submit_depth(&self, fd: BorrowedFd<'_>, reqs: Vec<IoReq>, depth: usize) -> Vec<IoReq> {
        self.submit_each(fd, reqs, depth, &mut |_, _| {})
    }

    /// As [`Engine::submit_depth`], calling `done(index, request)` once for
    /// each request as soon as its result is set (in completion order), so
    /// the caller can use a read's data while later ones are still in
    /// flight.
    ///
    /// `done` may panic: the requests still in flight are then waited for
    /// (or, if the ring fails, their buffers leaked) before the panic goes
    /// on, and the thread's ring is replaced, so no later batch sees their
    /// completions.
    pub fn submit_each(
        &self,
        fd: BorrowedFd<'_>,
        mut reqs: Vec<IoReq>,
        depth: usize,
        done: &mut dyn FnMut(usize, &IoReq),
    ) -> Vec<IoReq> {
        let use_uring = self.uring
            && !(self.choice == EngineChoice::Auto
                && reqs.len() == 1
                && reqs
                    .first()
                    .is_some_and(|r| r.buf.len() <= AUTO_SYNC_MAX_BYTES));
        if use_uring {
            uring::submit(fd, &mut reqs, depth, done, None);
        } else {
            sync::submit(fd, &mut reqs, done);
        }
        reqs
    }

    /// Perform every request against `fd`, and run `side` once while they
    /// are in flight: with io_uring, right after they are submitted (so the
    /// device works on them while `side` writes elsewhere, one round trip
    /// instead of two); with the sync engine, after them. `side` runs
    /// exactly once, whatever the requests' results.
    pub fn submit_beside(
        &self,
        fd: BorrowedFd<'_>,
        mut reqs: Vec<IoReq>,
        side: &mut dyn FnMut(),
    ) -> Vec<IoReq> {
        if self.uring {
            uring::submit(fd, &mut reqs, usize::MAX, &mut |_, _| {}, Some(side));
        } else {
            sync::submit(fd, &mut reqs, &mut |_, _| {});
            side();
        }
        reqs
    }

    /// True when batches go through io_uring.
    pub fn is_uring(&self) -> bool {
        self.uring
    }

    /// Make every completed write to `fd` durable (fdatasync).
    pub fn flush(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        sync::fdatasync(fd)
    }
}

/// A queue of requests to one file that outlive a call, on an io_uring ring
/// of its own:
/// requests are pushed one at a time and reaped as they complete, so a
/// caller can keep a device's queue full without ever draining it (what
/// fio's `--iodepth` does). Each request owns its buffer while in flight,
/// and the queue owns its descriptor of the file (closed after the ring);
/// dropping the queue waits for every request still in flight.
///
/// The ring is set up for a single issuer, so the queue stays on the thread
/// that made it (it is not `Send`).
pub struct Queue {
    inner: uring::Queue,
    _one_thread: std::marker::PhantomData<*const ()>,
}

impl Queue {
    /// A queue of at most `depth` requests in flight (1 to 256) to the
    /// file `fd`, which the queue keeps open; fails where io_uring is
    /// unavailable.
    pub fn new(fd: OwnedFd, depth: usize) -> io::Result<Self> {
        if !uring::available() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring is not available here",
            ));
        }
        Ok(Self {
            inner: uring::Queue::new(fd, depth)?,
            _one_thread: std::marker::PhantomData,
        })
    }

    /// A queue to `file` (see [`Queue::new`]) on a descriptor of its own
    /// (a duplicate: same open file, same flags such as O_DIRECT).
    pub fn for_file(file: &impl AsFd, depth: usize) -> io::Result<Self> {
        Self::new(file.as_fd().try_clone_to_owned()?, depth)
    }

    /// The most requests in flight at once.
    pub fn depth(&self) -> usize {
        self.inner.depth()
    }

    /// Requests pushed and not yet reaped.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }

    /// Queue `req` against the queue's file under `tag`; it reaches the
    /// kernel with the next [`Queue::reap`]. The request comes back when
    /// the queue is full or its buffer is empty. Offsets and buffers must
    /// suit the file (aligned for O_DIRECT), or the request fails.
    pub fn push(&mut self, req: IoReq, tag: u64) -> Result<(), IoReq> {
        self.inner.push(req, tag)
    }

    /// Cut `count` buffers of `len` bytes (aligned to `align`) from one
    /// allocation and register it with the ring: requests on these buffers
    /// (see [`Queue::take_buf`]) go as fixed-buffer reads and writes, which
    /// spare the kernel pinning each buffer's pages for each request (fio's
    /// `--fixedbufs`). Fails if buffers are registered already, for no or
    /// empty buffers, or when the kernel refuses (over `RLIMIT_MEMLOCK`,
    /// or more than 1 GiB in all).
    pub fn register_buffers(&mut self, count: usize, len: usize, align: usize) -> io::Result<()> {
        if self.inner.is_registered() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "buffers are already registered with this queue",
            ));
        }
        let arena = buf::Arena::new(count, len, align).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot allocate {count} buffers of {len} bytes"),
            )
        })?;
        self.register_arena(arena)
    }

    /// Register an arena made by the caller (see
    /// [`Queue::register_buffers`]).
    pub(crate) fn register_arena(&mut self, arena: std::sync::Arc<Arena>) -> io::Result<()> {
        self.inner.register(arena)
    }

    /// A free registered buffer (see [`Queue::register_buffers`]): `None`
    /// when none are registered or all are in use. Dropped anywhere, it
    /// becomes free again. A buffer handed out again holds the bytes of
    /// its last use.
    pub fn take_buf(&self) -> Option<AlignedBuf> {
        self.inner.take_buf()
    }

    /// Submit what was pushed and wait until at least `min` requests have
    /// completed (fewer when fewer are in flight; 0 only submits). Each
    /// completed request, its result set, is appended to `out` with its tag.
    /// An error means the ring itself failed (or, a bug, returned a
    /// completion for no request in flight: [`StrayCompletion`]).
    pub fn reap(&mut self, min: usize, out: &mut Vec<(u64, IoReq)>) -> io::Result<()> {
        self.inner.reap(min, out)
    }
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("depth", &self.depth())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

/// True when this process may use io_uring.
pub fn uring_available() -> bool {
    uring::available()
}
