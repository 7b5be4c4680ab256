//! Group commit across mblock commits that carry a caller's record
//! ([`Catalog::mblock_commit_with`]): a commit that arrives while another
//! thread runs a batch waits, and the commits that gathered meanwhile go
//! together as the next batch ([`Inner::commit_batched`]): their content
//! writes, their commit records (one flush set per shard), their callers'
//! records (one flush set per MDC), one flush. As a log's group commit
//! shares a flush between appenders, this shares one between whole
//! commits: with 8 callers, an object store's put costs a share of one
//! batch and one flush instead of a commit's flush and then the flush of
//! its record in a log that another commit's batch kept busy.
//!
//! One thread leads at a time: it runs a batch of everything queued, then
//! hands the lead to the first commit that arrived meanwhile, then gives
//! the batch's commits their outcomes, and only then returns. A commit
//! that cannot go in a batch (not a shared-flush commit on a device that
//! takes batches, its shard's log busy, a second commit of the same
//! mblock) goes alone, on its own thread, the way of
//! [`Catalog::mblock_commit_with_alone`]. A commit that finds a batch
//! running writes its content while it waits, so that the next batch holds
//! only the records; a thread that takes the lead first waits (at most
//! [`AHEAD_WAIT_MAX`]) for the content writes begun while the batch before
//! it ran (mblock writes, and the writes ahead of waiting commits), so
//! that their commits join its batch instead of the one after, rather
//! than their content writes holding up its record writes in the device
//! (8 tasks' 64 KiB puts through the object store, its calls in place:
//! 17-40 % more per second with the wait for writes ahead of commits,
//! nothing above the noise without it; about 10 % more again counting
//! mblock writes too and waiting up to 3 ms instead of 1; BENCHMARKS.md,
//! session 15). The wait is bounded, so a write that never ends (or one
//! whose commit comes much later, a large object's) costs a batch at most
//! that. The leader then gathers ([`Catalog::gather`]): it waits, at most
//! a batch's device time, until every caller that was committing at once
//! has a commit queued, so that the callers of the batch before, back a
//! moment after it ended, join this one (8 tasks' 64 KiB puts: 6-8 puts
//! per flush instead of 4, 12 % more per second; BENCHMARKS.md, session
//! 20).

use super::batch::{BatchCommit, Batched};
use super::lifecycle::data_err;
use super::object::{ObjectProps, Pending};
use super::{lock, Catalog};
use crate::error::Result;
use crate::format::superblock::MediaClass;
use crate::mdc::{Mdc, MdcError, WrittenRecord};
use crate::objid::{ObjType, ObjectId};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The longest a new leader waits for content writes begun before it took
/// the lead (on a virtual disk a 64 KiB write takes 0.2-0.35 ms, a 1 MiB
/// write 2-2.5 ms among 8 writers, a batch's flush among them 1.9 ms).
pub(super) const AHEAD_WAIT_MAX: Duration = Duration::from_millis(3);

/// A batch that takes less time in the device than this is not held
/// back for commits on their way ([`Catalog::gather`]): a wait for them
/// costs wake-ups of tens of microseconds on a virtual machine.
pub(super) const GATHER_MIN: Duration = Duration::from_micros(100);

/// The longest a leader waits for commits on their way, however long a
/// batch takes (a slow device's: the callers of the batch before come
/// back within a fraction of a millisecond).
pub(super) const GATHER_MAX: Duration = Duration::from_millis(10);

/// A caller counted inside [`Catalog::mblock_commit_with`] until dropped.
struct Inside<'a>(&'a Catalog);

impl<'a> Inside<'a> {
    /// Count the caller in and, while a batch runs, the content write it
    /// makes ahead of its commit ([`Catalog::ahead_guard`]): one lock.
    fn enter(c: &'a Catalog) -> (Self, Option<Ended<'a>>) {
        let mut q = lock(&c.inner.group);
        q.inside += 1;
        q.peak = q.peak.max(q.inside);
        (Inside(c), c.ahead_in(&mut q))
    }
}

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        lock(&self.0.inner.group).inside -= 1;
    }
}

/// A write counted ahead of a commit ([`Catalog::ahead_guard`]), ended
/// when dropped.
pub(super) struct Ended<'a>(&'a Catalog);

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        let mut q = lock(&self.0.inner.group);
        q.ahead_ended += 1;
        if q.ahead_awaited {
            self.0.inner.group_cv.notify_all();
        }
    }
}

/// A commit's outcome and its caller's record's (see
/// [`Catalog::mblock_commit_with`]).
pub(super) type Outcome = (
    Result<ObjectProps>,
    std::result::Result<Option<WrittenRecord>, MdcError>,
);

/// The commits waiting for the next batch, whether a thread leads, and
/// the content writes ahead of their commits (begun, ended).
#[derive(Default)]
pub(super) struct Queue {
    jobs: Vec<Job>,
    leading: bool,
    ahead_begun: u64,
    ahead_ended: u64,
    /// A leader waits for them (`group_cv`).
    ahead_awaited: bool,
    /// Callers inside [`Catalog::mblock_commit_with`] now.
    inside: usize,
    /// How many callers commit at once, as last seen: the most inside
    /// since a leader last waited for commits that did not come.
    peak: usize,
    /// A leader waits until this many commits are queued (0: none waits).
    gather_want: usize,
    /// A batch's time in the device (moving average, ns): the longest a
    /// leader waits for the commits it expects.
    batch_ns: u64,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("jobs", &self.jobs.len())
            .field("leading", &self.leading)
            .field("ahead", &(self.ahead_begun - self.ahead_ended))
            .field("inside", &self.inside)
            .field("peak", &self.peak)
            .field("batch_ns", &self.batch_ns)
            .finish()
    }
}

struct Job {
    id: ObjectId,
    mdc: Arc<Mdc>,
    rec: Vec<u8>,
    slot: Arc<Slot>,
}

/// Where a waiting commit learns what to do next.
#[derive(Default)]
struct Slot {
    st: Mutex<State>,
    cv: Condvar,
}

#[derive(Default)]
enum State {
    #[default]
    Waiting,
    /// Run the next batch.
    Lead,
    /// Not in a batch: commit alone.
    Alone,
    Done(Outcome),
}

/// The lead passes to the first commit that arrived during a batch (or
/// nobody leads), also when the batch panicked; the batch's device time,
/// when it ran one, goes into the queue's average.
struct HandOver<'a>(&'a Mutex<Queue>, Option<u64>, &'a AtomicBool);

impl Drop for HandOver<'_> {
    fn drop(&mut self) {
        let mut q = lock(self.0);
        if let Some(ns) = self.1 {
            q.batch_ns = if q.batch_ns == 0 {
                ns
            } else {
                crate::dev::ewma(q.batch_ns, ns)
            };
        }
        match q.jobs.first() {
            Some(next) => next.slot.set(State::Lead),
            None => {
                q.leading = false;
                self.2.store(false, Ordering::Relaxed);
            }
        }
    }
}

impl Slot {
    fn set(&self, s: State) {
        *lock(&self.st) = s;
        self.cv.notify_one();
    }

    fn wait(&self) -> State {
        let mut g = lock(&self.st);
        loop {
            match std::mem::take(&mut *g) {
                State::Waiting => g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner()),
                s => return s,
            }
        }
    }
}

impl Catalog {
    /// As [`Self::mblock_commit`], with `rec` appended to `mdc` (on the
    /// capacity device) and made durable by the commit's flush; commits
    /// that arrive together share one device batch and one flush (see
    /// the module docs). The second result says what became of `rec`:
    /// `Some` written (durable when the commit succeeded; when it failed,
    /// on the media or not), `None` not appended (its MDC was busy: append
    /// it the usual way), or the append's error.
    pub(crate) fn mblock_commit_with(&self, id: ObjectId, mdc: &Arc<Mdc>, rec: &[u8]) -> Outcome {
        let (_inside, ahead) = Inside::enter(self);
        if let Some(_ended) = ahead {
            // A batch is running: this commit waits for the next one, and
            // writes its content meanwhile, so that the next batch holds
            // only records.
            self.write_ahead(id);
        }
        let slot = Arc::new(Slot::default());
        let lead = {
            let mut q = lock(&self.inner.group);
            q.jobs.push(Job {
                id,
                mdc: Arc::clone(mdc),
                rec: rec.to_vec(),
                slot: Arc::clone(&slot),
            });
            if q.gather_want > 0 && q.jobs.len() >= q.gather_want {
                self.inner.group_cv.notify_all();
            }
            self.inner.group_leading.store(true, Ordering::Relaxed);
            !std::mem::replace(&mut q.leading, true)
        };
        let mut mine = if lead { State::Lead } else { slot.wait() };
        if let State::Lead = mine {
            let handover = HandOver(&self.inner.group, None, &self.inner.group_leading);
            let jobs = std::mem::take(&mut self.gather(self.await_ahead()).jobs);
            self.run_group(jobs, handover);
            // This commit was in the batch: its outcome is in its slot.
            mine = slot.wait();
        }
        match mine {
            State::Done(o) => o,
            _ => self.mblock_commit_with_alone(id, mdc, rec),
        }
    }

    /// The group's queue, once as many content writes ahead of their
    /// commits have ended as had begun when this was called (their commits
    /// join the queue right after), or after [`AHEAD_WAIT_MAX`]. Writes
    /// begun meanwhile are not waited for: a steady stream of commits
    /// cannot hold a batch back.
    fn await_ahead(&self) -> std::sync::MutexGuard<'_, Queue> {
        let mut q = lock(&self.inner.group);
        let want = q.ahead_begun;
        if q.ahead_ended >= want {
            return q;
        }
        let end = Instant::now() + AHEAD_WAIT_MAX;
        q.ahead_awaited = true;
        while q.ahead_ended < want {
            let now = Instant::now();
            if now >= end {
                break;
            }
            q = crate::lock::wait_timeout(&self.inner.group_cv, q, end - now).0;
        }
        q.ahead_awaited = false;
        q
    }

    /// The group's queue once it holds a commit from every caller that
    /// commits at once (`peak`), or after a batch's device time: with
    /// eight callers that each put one object after another, a batch
    /// takes the commits that arrived while the one before ran, and the
    /// callers of that one come back a moment after it ends, so without
    /// the wait each batch would hold half of them, each paying a flush
    /// for half as many. A wait that times out lowers `peak` to the
    /// callers that came (and are inside now), so a caller that went away
    /// costs one wait, not one per batch. No wait where a batch costs
    /// less than [`GATHER_MIN`] (memory-speed media: the wake-ups would
    /// cost more than the batches saved).
    fn gather<'a>(
        &'a self,
        mut q: std::sync::MutexGuard<'a, Queue>,
    ) -> std::sync::MutexGuard<'a, Queue> {
        let want = q.peak;
        let budget = Duration::from_nanos(q.batch_ns).min(GATHER_MAX);
        if q.jobs.len() >= want || budget < GATHER_MIN {
            return q;
        }
        let end = Instant::now() + budget;
        q.gather_want = want;
        while q.jobs.len() < want {
            let now = Instant::now();
            if now >= end {
                q.peak = q.jobs.len().max(q.inside).max(1);
                break;
            }
            q = crate::lock::wait_timeout(&self.inner.group_cv, q, end - now).0;
        }
        q.gather_want = 0;
        q
    }

    /// While a batch runs, count the caller's write as ahead of a commit
    /// (a content write; a commit's write ahead of its batch) until the
    /// guard drops (also on a panic, so that no leader waits for it).
    ///
    /// Without a batch running the answer is `None` without the lock
    /// (every mblock write asks). A batch that starts right after the
    /// flag was read does not count this write: its leader only waits
    /// for it less, never for it wrongly.
    pub(super) fn ahead_guard(&self) -> Option<Ended<'_>> {
        if !self.inner.group_leading.load(Ordering::Relaxed) {
            return None;
        }
        self.ahead_in(&mut lock(&self.inner.group))
    }

    /// [`Self::ahead_guard`] on the queue, its lock held.
    fn ahead_in(&self, q: &mut Queue) -> Option<Ended<'_>> {
        if !q.leading {
            return None;
        }
        q.ahead_begun += 1;
        Some(Ended(self))
    }

    /// Commits waiting for the next batch.
    #[cfg(feature = "internals")]
    pub(crate) fn commits_waiting(&self) -> usize {
        lock(&self.inner.group).jobs.len()
    }

    /// Write the last content of mblock `id` now, on this thread (see
    /// [`WriteState::finish_request`]); its commit then need not. Nothing
    /// happens for an mblock that is not pending in the capacity class; a
    /// failed write fails the mblock, and its commit reports that.
    fn write_ahead(&self, id: ObjectId) {
        let Some(p) = self.pending(id) else {
            return;
        };
        let mut g = lock(&p);
        let Some(Pending::Mblock { class, ws, .. }) = g.as_mut() else {
            return;
        };
        if *class != MediaClass::Capacity || !self.inner.features.shared_commit() {
            return;
        }
        let Ok(c) = self.inner.class(*class) else {
            return;
        };
        if let Ok((Some(req), _)) = ws.finish_request() {
            let mut out = c.dev.submit_depth(vec![req], usize::MAX);
            let _ = ws.finish_done(c.dev.as_ref(), &mut out);
        }
    }

    /// Run one batch of `jobs`, hand the lead over (`handover`, dropped
    /// also when this panics), then give every job its outcome (or send
    /// it alone).
    fn run_group(&self, jobs: Vec<Job>, mut handover: HandOver<'_>) {
        // A panic here (a bug) sends the jobs alone rather than leave
        // their threads waiting.
        struct Unwind<'a>(&'a [Job]);
        impl Drop for Unwind<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    for j in self.0 {
                        j.slot.set(State::Alone);
                    }
                }
            }
        }
        let _unwind = Unwind(&jobs);
        let mut states: Vec<Option<State>> = jobs.iter().map(|_| None).collect();
        let writable = self.inner.check_writable().is_ok();
        let mut entries = Vec::new();
        for (i, j) in jobs.iter().enumerate() {
            // A second commit of one mblock goes alone (and fails there).
            let dup = jobs[..i].iter().any(|x| x.id == j.id);
            let p = (writable && !dup && j.id.ty() == ObjType::Mblock)
                .then(|| self.pending(j.id))
                .flatten();
            match p {
                Some(p) => entries.push((i, p)),
                None => states[i] = Some(State::Alone),
            }
        }
        let mut guards: Vec<_> = entries.iter().map(|(i, p)| (*i, lock(p))).collect();
        let shared = self.inner.features.shared_commit();
        let mut batch = Vec::new();
        let mut in_batch = Vec::new();
        for (i, g) in guards.iter_mut() {
            let j = &jobs[*i];
            let Some(Pending::Mblock { class, zone, ws }) = g.as_mut() else {
                states[*i] = Some(State::Alone);
                continue;
            };
            let s = match self.inner.shard(j.id) {
                Ok(s)
                    if shared
                        && *class == MediaClass::Capacity
                        && self
                            .inner
                            .class(*class)
                            .is_ok_and(|c| c.dev.prefers_batches()) =>
                {
                    s
                }
                _ => {
                    states[*i] = Some(State::Alone);
                    continue;
                }
            };
            let made = ws
                .finish_request()
                .map_err(|e| data_err(j.id, e))
                .and_then(|(req, crc)| {
                    match self.commit_record(j.id, *class, *zone, ws, crc, true) {
                        Ok((obj, rec)) => Ok((req, obj, rec)),
                        Err(e) => {
                            // Not sent: the content goes back where it waits.
                            if let Some(r) = req {
                                ws.unsent(r);
                            }
                            Err(e)
                        }
                    }
                });
            match made {
                Ok((req, obj, rec)) => {
                    batch.push(BatchCommit {
                        id: j.id,
                        shard: s,
                        rec,
                        obj,
                        req,
                        ws,
                        extra: Some((&*j.mdc, &j.rec[..])),
                    });
                    in_batch.push(*i);
                }
                Err(e) => states[*i] = Some(State::Done((Err(e), Ok(None)))),
            }
        }
        let results = if batch.is_empty() {
            Vec::new()
        } else {
            let t = Instant::now();
            let r = self.inner.commit_batched(batch);
            handover.1 = Some(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
            r
        };
        let mut committed = Vec::new();
        for (r, &i) in results.into_iter().zip(&in_batch) {
            match r {
                Batched::Busy => states[i] = Some(State::Alone),
                Batched::Done(Err(e), w) => states[i] = Some(State::Done((Err(e), w))),
                Batched::Done(Ok(()), w) => {
                    let id = jobs[i].id;
                    if let (Some((_, g)), Ok(s)) = (
                        guards.iter_mut().find(|(x, _)| *x == i),
                        self.inner.shard(id),
                    ) {
                        self.commit_done(id, s, true, g);
                    }
                    committed.push((i, w));
                }
            }
        }
        drop(guards);
        for (i, w) in committed {
            let id = jobs[i].id;
            self.inner.pending.remove(id.raw());
            states[i] = Some(State::Done((self.props(id), w)));
        }
        // The next batch's leader first, then this batch's commits: waking
        // each costs the leader a system call, and the next batch need not
        // wait for them (8 tasks' 64 KiB puts: 6 % more per second;
        // BENCHMARKS.md, session 13).
        drop(handover);
        for (j, s) in jobs.iter().zip(states) {
            j.slot.set(s.unwrap_or(State::Alone));
        }
    }
}
