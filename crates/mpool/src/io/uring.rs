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
use std::os::fd::RawFd;
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
    /// Completions that asked to be retried (EINTR, EAGAIN) in a row.
    retries: u32,
}

/// A request retried this many times in a row without moving a byte fails
/// with its last error (a descriptor that keeps saying EAGAIN, such as a
/// non-blocking pipe, must not spin forever).
const MAX_RETRIES: u32 = 1000;

pub(super) fn submit(
    fd: RawFd,
    reqs: &mut [IoReq],
    depth: usize,
    done: &mut dyn FnMut(usize, &IoReq),
) {
    if reqs.is_empty() {
        return;
    }
    let res = RING.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(new_ring(RING_ENTRIES)?);
        }
        let Some(ring) = slot.as_mut() else {
            return Err(io::Error::other("io_uring ring missing"));
        };
        let r = run(ring, fd, reqs, depth.max(1), done);
        if r.is_err() {
            // A ring that failed mid-batch may hold state we cannot trust: drop it
            // (run() has already reaped or leaked every in-flight buffer).
            *slot = None;
        }
        r
    });
    if let Err(e) = res {
        for (i, r) in reqs.iter_mut().enumerate() {
            if r.result.is_none() {
                r.result = Some(Err(io::Error::new(e.kind(), e.to_string())));
                done(i, r);
            }
        }
    }
}

/// The submission entry for the rest of request `r`; with `fixed`, its
/// buffer lies in the ring's registered buffer of that index.
fn sqe(
    fd: RawFd,
    r: &mut IoReq,
    p: &Progress,
    idx: usize,
    fixed: Option<u16>,
) -> io_uring::squeue::Entry {
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
                Some(i) => opcode::ReadFixed::new(types::Fd(fd), ptr, len, i)
                    .offset(off)
                    .build(),
                None => opcode::Read::new(types::Fd(fd), ptr, len)
                    .offset(off)
                    .build(),
            }
            .user_data(idx as u64)
        }
        IoKind::Write => {
            // SAFETY: as above.
            let ptr = unsafe { r.buf.as_ptr().add(p.done) };
            match fixed {
                Some(i) => opcode::WriteFixed::new(types::Fd(fd), ptr, len, i)
                    .offset(off)
                    .build(),
                None => opcode::Write::new(types::Fd(fd), ptr, len)
                    .offset(off)
                    .build(),
            }
            .user_data(idx as u64)
        }
    }
}

/// Keep at most `depth` requests in flight, refilling as each completes.
fn run(
    ring: &mut IoUring,
    fd: RawFd,
    reqs: &mut [IoReq],
    depth: usize,
    done: &mut dyn FnMut(usize, &IoReq),
) -> io::Result<()> {
    let mut progress: Vec<Progress> = reqs.iter().map(|_| Progress::default()).collect();
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
    let mut inflight = 0usize;
    let bound = reqs.len().saturating_mul(64).max(1024);
    let mut rounds = 0usize;
    while !queue.is_empty() || inflight > 0 {
        rounds += 1;
        if rounds > bound {
            return fail_inflight(
                ring,
                reqs,
                inflight,
                io::Error::other("io_uring made no progress"),
            );
        }
        {
            let mut sq = ring.submission();
            while let Some(&i) = queue.front() {
                if sq.is_full() || inflight >= depth {
                    break;
                }
                let (Some(r), Some(p)) = (reqs.get_mut(i), progress.get(i)) else {
                    break;
                };
                let e = sqe(fd, r, p, i, None);
                // SAFETY: the entry points into r.buf, which outlives the request
                // (see sqe); the entry itself is copied into the ring.
                if unsafe { sq.push(&e) }.is_err() {
                    break;
                }
                queue.pop_front();
                inflight += 1;
            }
        }
        // With nothing left to push, wait for every request in flight in one
        // system call. Otherwise wake when a quarter of them has completed
        // and refill those slots in one submission: waking at every single
        // completion costs a context switch each, and the queue drains
        // while the thread is being scheduled (4 KiB reads at depth 32:
        // 118k IOPS waking at each completion, 141k at a quarter, fio 149k
        // while spinning a whole CPU; see BENCHMARKS.md).
        let want = if queue.is_empty() {
            inflight.max(1)
        } else {
            (inflight / REFILL_DIV).max(1)
        };
        match ring.submit_and_wait(want) {
            Ok(_) => {}
            Err(e)
                if e.raw_os_error() == Some(libc::EINTR)
                    || e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return fail_inflight(ring, reqs, inflight, e),
        }
        for c in ring.completion() {
            let i = c.user_data() as usize;
            inflight = inflight.saturating_sub(1);
            let (Some(r), Some(p)) = (reqs.get_mut(i), progress.get_mut(i)) else {
                continue;
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

/// The ring broke with requests in flight. Wait for them if the kernel lets
/// us; if it does not, leak their buffers rather than free memory the kernel
/// may still write into.
fn fail_inflight(
    ring: &mut IoUring,
    reqs: &mut [IoReq],
    mut inflight: usize,
    err: io::Error,
) -> io::Result<()> {
    let mut tries = 0;
    while inflight > 0 && tries < 100 {
        tries += 1;
        if ring.submit_and_wait(inflight).is_err() {
            break;
        }
        for c in ring.completion() {
            inflight = inflight.saturating_sub(1);
            let _ = c;
        }
    }
    if inflight > 0 {
        for r in reqs.iter_mut().filter(|r| r.result.is_none()) {
            std::mem::forget(std::mem::take(&mut r.buf));
        }
    }
    Err(err)
}

/// A ring of its own whose requests outlive a call: pushed one at a time,
/// reaped as they complete (see [`super::Queue`]).
pub(super) struct Queue {
    ring: IoUring,
    /// Requests in flight by slot (the SQE's user data), with the file and
    /// the bytes already moved.
    slots: Vec<Option<(RawFd, IoReq, Progress, u64)>>,
    free: Vec<usize>,
    /// Entries pushed but not yet handed to the kernel.
    unsubmitted: usize,
    /// Completions taken off the ring, kept to be reused by every reap.
    cqes: Vec<(usize, i32)>,
    /// The arena registered with the ring as its buffer 0 (declared after
    /// the ring: dropped after it, so the memory outlives the registration).
    fixed: Option<Arc<Arena>>,
}

impl Queue {
    pub(super) fn new(depth: usize) -> io::Result<Self> {
        let depth = depth.clamp(1, RING_ENTRIES as usize);
        Ok(Self {
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

    /// Queue `req` on `fd` under `tag`; it reaches the kernel with the next
    /// [`Queue::reap`]. With every slot taken the request comes back.
    pub(super) fn push(&mut self, fd: RawFd, req: IoReq, tag: u64) -> Result<(), IoReq> {
        if req.buf.is_empty() {
            return Err(req);
        }
        let Some(slot) = self.free.pop() else {
            return Err(req);
        };
        self.slots[slot] = Some((fd, req, Progress::default(), tag));
        if self.queue_slot(slot).is_err() {
            // Not expected: the ring has an entry for every slot.
            self.free.push(slot);
            if let Some((_, req, _, _)) = self.slots[slot].take() {
                return Err(req);
            }
        }
        Ok(())
    }

    /// Put the submission entry of `slot`'s next transfer on the ring.
    fn queue_slot(&mut self, slot: usize) -> Result<(), ()> {
        let Some(Some((fd, req, p, _))) = self.slots.get_mut(slot) else {
            return Err(());
        };
        // A slot of the registered arena goes as a fixed-buffer request.
        let fixed = match (&self.fixed, req.buf.arena()) {
            (Some(mine), Some(its)) if Arc::ptr_eq(mine, its) => Some(0),
            _ => None,
        };
        let e = sqe(*fd, req, p, slot, fixed);
        // SAFETY: the entry points into the slot's buffer, which stays in
        // `self.slots` until its completion is reaped (or, if the ring
        // breaks, is leaked by Drop rather than freed).
        unsafe { self.ring.submission().push(&e) }.map_err(|_| ())?;
        self.unsubmitted += 1;
        Ok(())
    }

    /// Hand queued entries to the kernel and wait until at least `min`
    /// requests have completed (fewer if fewer are in flight); completed
    /// requests, their result set, go to `out` with their tags.
    pub(super) fn reap(&mut self, min: usize, out: &mut Vec<(u64, IoReq)>) -> io::Result<()> {
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
            cqes.extend(
                self.ring
                    .completion()
                    .map(|c| (c.user_data() as usize, c.result())),
            );
            for &(slot, res) in &cqes {
                let Some(Some((_, req, p, _))) = self.slots.get_mut(slot) else {
                    continue;
                };
                if settle(req, p, res) {
                    if let Some((_, req, _, tag)) = self.slots[slot].take() {
                        self.free.push(slot);
                        out.push((tag, req));
                        got += 1;
                    }
                } else if self.queue_slot(slot).is_err() {
                    if let Some((_, mut req, _, tag)) = self.slots[slot].take() {
                        req.result = Some(Err(io::Error::other("io_uring queue full")));
                        self.free.push(slot);
                        out.push((tag, req));
                        got += 1;
                    }
                }
            }
            self.cqes = cqes;
        }
    }
}

impl Drop for Queue {
    /// Wait for every request in flight; if the ring no longer answers,
    /// leak their buffers rather than free memory the kernel may still
    /// write into.
    fn drop(&mut self) {
        // `reap` returns Ok only once all of them completed.
        if self.reap(self.in_flight(), &mut Vec::new()).is_err() && self.in_flight() > 0 {
            for s in self.slots.iter_mut() {
                if let Some((_, req, _, _)) = s.take() {
                    std::mem::forget(req.buf);
                }
            }
        }
    }
}
