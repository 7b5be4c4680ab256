//! The io_uring engine: one ring per thread, batched submission.
//!
//! A batch is pushed onto the calling thread's ring as far as it has room,
//! submitted with one system call, and refilled as completions arrive, so a
//! large mblock write keeps up to [`RING_ENTRIES`] requests in flight. Short
//! transfers are resubmitted for the remainder. The function returns only
//! after every request it pushed has completed.

use super::buf::Arena;
use super::{IoKind, IoReq};
use io_uring::{opcode, types, IoUring};
use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, OnceLock};

/// Submission queue depth of each thread's ring.
pub(super) const RING_ENTRIES: u32 = 256;

/// A deep queue is refilled once `1/REFILL_DIV` of its requests completed.
const REFILL_DIV: usize = 4;

/// Largest transfer of one submission entry: 1 GiB, aligned for any sector
/// size and below Linux's per-call limit (0x7ffff000).
const MAX_SQE_BYTES: usize = 1 << 30;

thread_local! {
    static RING: RefCell<Option<IoUring>> = const { RefCell::new(None) };
}

/// Probe once per process whether io_uring can be set up and runs a NOP.
pub(super) fn available() -> bool {
    static AVAIL: OnceLock<bool> = OnceLock::new();
    *AVAIL.get_or_init(|| {
        let Ok(mut ring) = IoUring::new(4) else {
            return false;
        };
        let nop = opcode::Nop::new().build().user_data(7);
        // SAFETY: a NOP references no memory.
        if unsafe { ring.submission().push(&nop) }.is_err() {
            return false;
        }
        if ring.submit_and_wait(1).is_err() {
            return false;
        }
        let ok = ring
            .completion()
            .next()
            .is_some_and(|c| c.user_data() == 7 && c.result() >= 0);
        ok
    })
}

/// A ring for the calling thread. Each ring is used by the thread that made
/// it and no other, so it is set up as a single issuer whose completion work
/// runs only when that thread waits for completions (`DEFER_TASKRUN`):
/// the kernel then neither interrupts the thread for each completion nor
/// hands the work to another context. This is how fio sets up its rings; it
/// matters at queue depth (see BENCHMARKS.md, random reads at depth 32).
/// Kernels before 6.1 refuse these flags: a plain ring is made instead.
fn new_ring(entries: u32) -> io::Result<IoUring> {
    let tuned = IoUring::builder()
        .setup_coop_taskrun()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries);
    match tuned {
        Ok(r) => Ok(r),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => IoUring::new(entries),
        Err(e) => Err(e),
    }
}

/// Per-request progress: bytes already transferred.
#[derive(Default)]
struct Progress {
    done: usize,
    /// An entry of this request is on the ring (pushed, completion unseen).
    in_flight: bool,
    /// Completions that asked to be retried (EINTR, EAGAIN) in a row.
    retries: u32,
}

/// A request retried this many times in a row without moving a byte fails
/// with its last error (a descriptor that keeps saying EAGAIN, such as a
/// non-blocking pipe, must not spin forever).
const MAX_RETRIES: u32 = 1000;

pub(super) fn submit(
    fd: BorrowedFd<'_>,
    reqs: &mut [IoReq],
    depth: usize,
    done: &mut dyn FnMut(usize, &IoReq),
    side: Option<&mut dyn FnMut()>,
) {
    if reqs.is_empty() {
        if let Some(side) = side {
            side();
        }
        return;
    }
    // The ring is taken out of the thread's slot for the batch and put back
    // only when the batch ended with nothing in flight. A batch that failed,
    // or whose callback panicked, leaves the slot empty: its ring is dropped
    // (after its requests were drained or their buffers leaked, see
    // `Batch`), so no stale completion can reach a later batch. A callback
    // that itself submits a batch on this thread gets a ring of its own.
    let ring = RING.with(|cell| cell.borrow_mut().take());
    let mut ring = match ring {
        Some(r) => r,
        None => match new_ring(RING_ENTRIES) {
            Ok(r) => r,
            Err(e) => {
                fail_all(reqs, &e, done);
                if let Some(side) = side {
                    side();
                }
                return;
            }
        },
    };
    let mut side = side;
    let r = run(&mut ring, fd, reqs, depth.max(1), done, &mut side);
    // A batch that failed before its first submission has not run `side`.
    if let Some(side) = side {
        side();
    }
    match r {
        Ok(()) => RING.with(|cell| {
            let mut slot = cell.borrow_mut();
            // A nested batch may have left a ring meanwhile: keep one.
            if slot.is_none() {
                *slot = Some(ring);
            }
        }),
        Err(e) => fail_all(reqs, &e, done),
    }
}

/// Every request without a result fails with `e`.
fn fail_all(reqs: &mut [IoReq], e: &io::Error, done: &mut dyn FnMut(usize, &IoReq)) {
    for (i, r) in reqs.iter_mut().enumerate() {
        if r.result.is_none() {
            r.result = Some(Err(io::Error::new(e.kind(), e.to_string())));
            done(i, r);
        }
    }
}

/// A completion whose user data names no request in flight: an engine bug
/// (or a ring shared with someone else). It is never credited to a
/// request; the batch or queue fails with this error instead.
#[derive(Debug, thiserror::Error)]
#[error("io_uring completion with user data {user_data} matches no request in flight")]
pub struct StrayCompletion {
    /// The completion's user data.
    pub user_data: u64,
}

fn stray(user_data: u64) -> io::Error {
    debug_assert!(
        false,
        "io_uring completion with user data {user_data} matches no request in flight"
    );
    stray_error(user_data)
}

/// The error of a stray completion, without the debug assertion: for the
/// queue, which must finish its bookkeeping (and may be in its `Drop`)
/// before it may panic.
fn stray_error(user_data: u64) -> io::Error {
    io::Error::other(StrayCompletion { user_data })
}

/// The submission entry for the rest of request `r`; with `fixed`, its
/// buffer lies in the ring's registered buffer of that index.
fn sqe(
    fd: BorrowedFd<'_>,
    r: &mut IoReq,
    p: &Progress,
    idx: usize,
    fixed: Option<u16>,
) -> io_uring::squeue::Entry {
    let fd = types::Fd(fd.as_raw_fd());
    // One SQE moves at most MAX_SQE_BYTES; the rest is resubmitted like a short
    // transfer. (A bare `as u32` would wrap: 4 GiB left became a 0-byte I/O,
    // reported as "device accepted no bytes".)
    let len = (r.buf.len() - p.done).min(MAX_SQE_BYTES) as u32;
    let off = r.offset + p.done as u64;
    // The pointer stays valid: the buffer is owned by `reqs`, which the caller
    // cannot touch until run() has reaped this request's completion.
    match r.kind {
        IoKind::Read => {
            // SAFETY: p.done <= buf.len(), so the pointer stays inside the allocation.
            let ptr = unsafe { r.buf.as_mut_ptr().add(p.done) };
            match fixed {
                Some(i) => opcode::ReadFixed::new(fd, ptr, len, i).offset(off).build(),
                None => opcode::Read::new(fd, ptr, len).offset(off).build(),
            }
            .user_data(idx as u64)
        }
        IoKind::Write => {
            // SAFETY: as above.
            let ptr = unsafe { r.buf.as_ptr().add(p.done) };
            match fixed {
                Some(i) => opcode::WriteFixed::new(fd, ptr, len, i).offset(off).build(),
                None => opcode::Write::new(fd, ptr, len).offset(off).build(),
            }
            .user_data(idx as u64)
        }
    }
}

/// The requests of a batch while some are in flight. It owns the in-flight
/// window: however `run` is left (return, error, or a panic of the
/// caller's callback), dropping it waits for every request the kernel
/// still holds, and if the ring does not let it, leaks their buffers
/// rather than let the caller free memory the kernel may write into.
struct Batch<'a> {
    ring: &'a mut IoUring,
    reqs: &'a mut [IoReq],
    progress: Vec<Progress>,
    /// Entries pushed onto the ring whose completion has not been seen.
    inflight: usize,
}

impl Batch<'_> {
    /// Take the completion of `user_data` off the books: the request it
    /// names, which must be in flight.
    fn complete(&mut self, user_data: u64) -> io::Result<usize> {
        let i = usize::try_from(user_data).map_err(|_| stray(user_data))?;
        match self.progress.get_mut(i) {
            Some(p) if p.in_flight && self.inflight > 0 => {
                p.in_flight = false;
                self.inflight -= 1;
                Ok(i)
            }
            _ => Err(stray(user_data)),
        }
    }

    /// Wait for every entry in flight; true when none is left.
    fn drain(&mut self) -> bool {
        let mut tries = 0;
        while self.inflight > 0 && tries < 100 {
            tries += 1;
            match self.ring.submit_and_wait(self.inflight) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(_) => break,
            }
            for c in self.ring.completion() {
                // Only a completion of a request in flight settles it; any
                // other (a bug) is ignored here, so that no buffer the
                // kernel still holds is counted as free.
                if let Some(p) = usize::try_from(c.user_data())
                    .ok()
                    .and_then(|i| self.progress.get_mut(i))
                    .filter(|p| p.in_flight)
                {
                    p.in_flight = false;
                    self.inflight = self.inflight.saturating_sub(1);
                }
            }
        }
        self.inflight == 0
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if self.inflight == 0 || self.drain() {
            return;
        }
        // The kernel may still write into (or read from) these buffers:
        // leak them. `submit` drops the ring (it is never put back after
        // a batch that did not finish).
        for (r, p) in self.reqs.iter_mut().zip(&self.progress) {
            if p.in_flight {
                std::mem::forget(std::mem::take(&mut r.buf));
            }
        }
    }
}

/// Keep at most `depth` requests in flight, refilling as each completes.
/// Ok only when every request has its result and none is in flight.
fn run(
    ring: &mut IoUring,
    fd: BorrowedFd<'_>,
    reqs: &mut [IoReq],
    depth: usize,
    done: &mut dyn FnMut(usize, &IoReq),
    side: &mut Option<&mut dyn FnMut()>,
) -> io::Result<()> {
    // Requests still to be pushed (indices), in order.
    let mut queue: std::collections::VecDeque<usize> = (0..reqs.len())
        .filter(|&i| !reqs[i].buf.is_empty())
        .collect();
    for (i, r) in reqs.iter_mut().enumerate() {
        if r.buf.is_empty() {
            r.result = Some(Ok(()));
            done(i, r);
        }
    }
    let bound = reqs.len().saturating_mul(64).max(1024);
    let mut b = Batch {
        progress: reqs.iter().map(|_| Progress::default()).collect(),
        ring,
        reqs,
        inflight: 0,
    };
    let mut rounds = 0usize;
    while !queue.is_empty() || b.inflight > 0 {
        rounds += 1;
        if rounds > bound {
            return Err(io::Error::other("io_uring made no progress"));
        }
        {
            let mut sq = b.ring.submission();
            while let Some(&i) = queue.front() {
                if sq.is_full() || b.inflight >= depth {
                    break;
                }
                let (Some(r), Some(p)) = (b.reqs.get_mut(i), b.progress.get_mut(i)) else {
                    break;
                };
                let e = sqe(fd, r, p, i, None);
                // SAFETY: the entry points into r.buf, which outlives the
                // request: `b` keeps it from being freed until its
                // completion was seen (see Batch); the entry itself is
                // copied into the ring.
                if unsafe { sq.push(&e) }.is_err() {
                    break;
                }
                p.in_flight = true;
                queue.pop_front();
                b.inflight += 1;
            }
        }
        // Work of the caller's that runs while the first requests are in
        // flight (once they are submitted): see `Engine::submit_beside`.
        if let Some(side) = side.take() {
            match b.ring.submit() {
                Ok(_) => {}
                Err(e)
                    if e.raw_os_error() == Some(libc::EINTR)
                        || e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => {
                    side();
                    return Err(e);
                }
            }
            side();
        }
        // With nothing left to push, wait for every request in flight in one
        // system call. Otherwise wake when a quarter of them has completed
        // and refill those slots in one submission: waking at every single
        // completion costs a context switch each, and the queue drains
        // while the thread is being scheduled (4 KiB reads at depth 32:
        // 118k IOPS waking at each completion, 141k at a quarter, fio 149k
        // while spinning a whole CPU; see BENCHMARKS.md).
        let want = if queue.is_empty() {
            b.inflight.max(1)
        } else {
            (b.inflight / REFILL_DIV).max(1)
        };
        match b.ring.submit_and_wait(want) {
            Ok(_) => {}
            Err(e)
                if e.raw_os_error() == Some(libc::EINTR)
                    || e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return Err(e),
        }
        // Completions are taken off the ring one at a time: the callback
        // may panic, and `b` then drains the rest.
        loop {
            let Some(c) = b.ring.completion().next() else {
                break;
            };
            let i = b.complete(c.user_data())?;
            let (Some(r), Some(p)) = (b.reqs.get_mut(i), b.progress.get_mut(i)) else {
                return Err(stray(c.user_data()));
            };
            if settle(r, p, c.result()) {
                done(i, r);
            } else {
                queue.push_back(i);
            }
        }
    }
    Ok(())
}

/// Account completion `res` of request `r`: true when it is finished (its
/// result set: done, failed, or a device that moved no bytes), false when
/// the rest must be submitted again (a short transfer, EINTR, EAGAIN).
fn settle(r: &mut IoReq, p: &mut Progress, res: i32) -> bool {
    if res < 0 {
        if (res == -libc::EINTR || res == -libc::EAGAIN) && p.retries < MAX_RETRIES {
            p.retries += 1;
            return false;
        }
        r.result = Some(Err(io::Error::from_raw_os_error(-res)));
    } else if res == 0 {
        r.result = Some(Err(match r.kind {
            IoKind::Read => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "read past end of device at offset {}",
                    r.offset + p.done as u64
                ),
            ),
            IoKind::Write => io::Error::new(io::ErrorKind::WriteZero, "device accepted no bytes"),
        }));
    } else {
        p.retries = 0;
        p.done += res as usize;
        if p.done < r.buf.len() {
            return false;
        }
        r.result = Some(Ok(()));
    }
    true
}

/// A ring of its own whose requests outlive a call: pushed one at a time,
/// reaped as they complete (see [`super::Queue`]).
pub(super) struct Queue {
    ring: IoUring,
    /// Requests in flight by slot (the SQE's user data), with the bytes
    /// already moved and the caller's tag.
    slots: Vec<Option<(IoReq, Progress, u64)>>,
    free: Vec<usize>,
    /// Entries pushed but not yet handed to the kernel.
    unsubmitted: usize,
    /// Completions taken off the ring, kept to be reused by every reap.
    cqes: Vec<(usize, i32)>,
    /// The arena registered with the ring as its buffer 0 (declared after
    /// the ring: dropped after it, so the memory outlives the registration).
    fixed: Option<Arc<Arena>>,
    /// The file every request goes to, owned by the queue so that it stays
    /// open (and names the same file) while any request is in flight:
    /// declared after the ring, so it is closed after the ring.
    fd: OwnedFd,
}

impl Queue {
    pub(super) fn new(fd: OwnedFd, depth: usize) -> io::Result<Self> {
        let depth = depth.clamp(1, RING_ENTRIES as usize);
        Ok(Self {
            fd,
            ring: new_ring(depth as u32)?,
            slots: (0..depth).map(|_| None).collect(),
            free: (0..depth).rev().collect(),
            unsubmitted: 0,
            cqes: Vec::with_capacity(depth),
            fixed: None,
        })
    }

    pub(super) fn is_registered(&self) -> bool {
        self.fixed.is_some()
    }

    pub(super) fn take_buf(&self) -> Option<super::AlignedBuf> {
        self.fixed.as_ref()?.take()
    }

    /// Register `arena` as the ring's buffer 0: requests whose buffers are
    /// its slots then go as READ_FIXED/WRITE_FIXED, without pinning their
    /// pages each time. Once only.
    pub(super) fn register(&mut self, arena: Arc<Arena>) -> io::Result<()> {
        if self.is_registered() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "buffers are already registered with this queue",
            ));
        }
        let (base, len) = arena.span();
        let iov = libc::iovec {
            iov_base: base.cast(),
            iov_len: len,
        };
        // SAFETY: the iovec describes the arena's live allocation, which
        // `self.fixed` keeps alive until after the ring is closed (field
        // order); by then no request is in flight (Drop waits for them or
        // leaks their buffers, and with them the arena), so nothing can
        // reach the memory through the registration once it is freed.
        unsafe { self.ring.submitter().register_buffers(&[iov]) }?;
        self.fixed = Some(arena);
        Ok(())
    }

    pub(super) fn depth(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn in_flight(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Queue `req` under `tag`; it reaches the kernel with the next
    /// [`Queue::reap`]. With every slot taken the request comes back.
    pub(super) fn push(&mut self, req: IoReq, tag: u64) -> Result<(), IoReq> {
        if req.buf.is_empty() {
            return Err(req);
        }
        let Some(slot) = self.free.pop() else {
            return Err(req);
        };
        self.slots[slot] = Some((req, Progress::default(), tag));
        if self.queue_slot(slot).is_err() {
            // Not expected: the ring has an entry for every slot.
            self.free.push(slot);
            if let Some((req, _, _)) = self.slots[slot].take() {
                return Err(req);
            }
        }
        Ok(())
    }

    /// Put the submission entry of `slot`'s next transfer on the ring.
    fn queue_slot(&mut self, slot: usize) -> Result<(), ()> {
        let Some(Some((req, p, _))) = self.slots.get_mut(slot) else {
            return Err(());
        };
        // A slot of the registered arena goes as a fixed-buffer request.
        let fixed = match (&self.fixed, req.buf.arena()) {
            (Some(mine), Some(its)) if Arc::ptr_eq(mine, its) => Some(0),
            _ => None,
        };
        let e = sqe(self.fd.as_fd(), req, p, slot, fixed);
        // SAFETY: the entry points into the slot's buffer, which stays in
        // `self.slots` until its completion is reaped (or, if the ring
        // breaks, is leaked by Drop rather than freed), and names
        // `self.fd`, which is closed only after the ring.
        unsafe { self.ring.submission().push(&e) }.map_err(|_| ())?;
        p.in_flight = true;
        self.unsubmitted += 1;
        Ok(())
    }

    /// Hand queued entries to the kernel and wait until at least `min`
    /// requests have completed (fewer if fewer are in flight); completed
    /// requests, their result set, go to `out` with their tags. A stray
    /// completion (a bug) fails the call once every other completion taken
    /// off the ring has been handled; debug builds then panic, with the
    /// queue's books consistent, so its `Drop` can still wait for the
    /// requests in flight.
    pub(super) fn reap(&mut self, min: usize, out: &mut Vec<(u64, IoReq)>) -> io::Result<()> {
        let r = self.reap_quiet(min, out);
        if let Err(e) = &r {
            let stray = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<StrayCompletion>())
                .is_some();
            debug_assert!(!stray, "{e}");
        }
        r
    }

    /// [`Queue::reap`] without the debug assertion (for `Drop`).
    fn reap_quiet(&mut self, min: usize, out: &mut Vec<(u64, IoReq)>) -> io::Result<()> {
        let mut got = 0usize;
        loop {
            let want = if got >= min {
                0
            } else {
                (min - got).min(self.in_flight())
            };
            if want == 0 && self.unsubmitted == 0 {
                return Ok(());
            }
            match self.ring.submit_and_wait(want) {
                Ok(n) => self.unsubmitted = self.unsubmitted.saturating_sub(n),
                Err(e)
                    if e.raw_os_error() == Some(libc::EINTR)
                        || e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => return Err(e),
            }
            // Taken off the ring first: handling them pushes resubmissions.
            let mut cqes = std::mem::take(&mut self.cqes);
            cqes.clear();
            cqes.extend(self.ring.completion().map(|c| {
                (
                    usize::try_from(c.user_data()).unwrap_or(usize::MAX),
                    c.result(),
                )
            }));
            let mut bug = None;
            for &(slot, res) in &cqes {
                // A completion must name a slot with an entry on the ring;
                // anything else is a bug, never credited to a request.
                let Some(Some((req, p, _))) = self
                    .slots
                    .get_mut(slot)
                    .filter(|s| s.as_ref().is_some_and(|(_, p, _)| p.in_flight))
                else {
                    bug = Some(stray_error(slot as u64));
                    continue;
                };
                p.in_flight = false;
                if settle(req, p, res) {
                    if let Some((req, _, tag)) = self.slots[slot].take() {
                        self.free.push(slot);
                        out.push((tag, req));
                        got += 1;
                    }
                } else if self.queue_slot(slot).is_err() {
                    if let Some((mut req, _, tag)) = self.slots[slot].take() {
                        req.result = Some(Err(io::Error::other("io_uring queue full")));
                        self.free.push(slot);
                        out.push((tag, req));
                        got += 1;
                    }
                }
            }
            self.cqes = cqes;
            if let Some(e) = bug {
                return Err(e);
            }
        }
    }
}

impl Drop for Queue {
    /// Wait for every request in flight; if the ring no longer answers,
    /// leak their buffers rather than free memory the kernel may still
    /// write into.
    fn drop(&mut self) {
        // `reap_quiet` returns Ok only once all of them completed; it never
        // panics, so the slots are never freed under the kernel's feet.
        if self.reap_quiet(self.in_flight(), &mut Vec::new()).is_err() && self.in_flight() > 0 {
            for s in self.slots.iter_mut() {
                if let Some((req, _, _)) = s.take() {
                    std::mem::forget(req.buf);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// A completion whose user data names a request that is not in flight
    /// is never credited to it: a panic in debug builds, the typed error
    /// in release builds; the request in flight is waited for either way.
    #[test]
    fn a_completion_for_nothing_in_flight_is_never_credited() {
        if !available() {
            eprintln!("SKIPPED: io_uring is not available here");
            return;
        }
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[7u8; 8192]).unwrap();
        let mut ring = new_ring(8).unwrap();
        // A NOP claiming to be request 1, pushed while only request 0
        // (depth 1) will be in flight.
        let nop = opcode::Nop::new().build().user_data(1);
        // SAFETY: a NOP references no memory.
        unsafe { ring.submission().push(&nop) }.unwrap();
        let mut reqs = vec![
            IoReq::read(0, super::super::AlignedBuf::new(4096, 4096)),
            IoReq::read(4096, super::super::AlignedBuf::new(4096, 4096)),
        ];
        let mut calls = 0;
        let r = catch_unwind(AssertUnwindSafe(|| {
            run(&mut ring, f.as_fd(), &mut reqs, 1, &mut |_, _| calls += 1, &mut None)
        }));
        match r {
            Err(_) => {
                let debug = cfg!(debug_assertions);
                assert!(debug, "a panic in debug builds only");
            }
            Ok(res) => {
                let e = res.expect_err("a stray completion fails the batch");
                assert!(e
                    .get_ref()
                    .is_some_and(|x| x.downcast_ref::<StrayCompletion>().is_some()));
            }
        }
        // Request 1 never ran, so it was not reported done.
        assert!(reqs[1].result.is_none());
        assert!(calls <= 1);
    }
}
