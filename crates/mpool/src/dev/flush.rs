//! Shared flushes: concurrent flush calls on one device share syncs.
//!
//! A pool has several metadata logs on its capacity device (MDC1..N, user
//! mlogs), and each commit syncs its own log: without sharing, N threads
//! committing to N logs make N `fdatasync` calls of the same file, one
//! after another, each as long as the others (the device writes back its
//! cache once either way). With the gate, a flush that finds one running
//! waits for it and then shares the next one with everybody else who
//! arrived meanwhile: group commit across every log of the device.
//!
//! The rule that keeps it correct: a call returns success only once a sync
//! that *began after the call began* has completed, so every write that
//! completed before the call is covered. A failed sync fails every call
//! that relied on it, and every later one: Linux reports a write-back error
//! to one `fdatasync` only, after which a sync can succeed although writes
//! were lost, so once a sync failed no later flush of the device is trusted
//! (the pool must be reopened, which replays what is really on the media).

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A caller waiting for a running sync spins (instead of sleeping) when
/// syncs take less than this on average: memory-speed media, where a sleep
/// and a wake-up cost more than the sync.
const SPIN_MAX_NS: u64 = 20_000;

/// Counters of the flush gate of a device (concurrent flushes that share one `fdatasync`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// Flush calls.
    pub calls: u64,
    /// Syncs performed for them.
    pub syncs: u64,
}

#[derive(Debug)]
struct State {
    /// Syncs begun so far (the number of the newest).
    begun: u64,
    /// The number of the newest sync that completed.
    done: u64,
    running: bool,
    /// Callers asleep waiting for a sync (nobody to wake: no wake-up call,
    /// which on memory-speed media costs as much as the sync).
    sleepers: u32,
    /// Moving average of a sync's duration (ns); starts as a disk's.
    sync_ns: u64,
    /// The error of the sync that failed; every flush after it fails too.
    failed: Option<(Option<i32>, io::ErrorKind, String)>,
    stats: FlushStats,
}

impl Default for State {
    fn default() -> Self {
        Self {
            begun: 0,
            done: 0,
            running: false,
            sleepers: 0,
            sync_ns: 1_000_000,
            failed: None,
            stats: FlushStats::default(),
        }
    }
}

/// Lets concurrent flushes of one device share syncs.
#[derive(Debug, Default)]
pub(crate) struct FlushGate {
    st: Mutex<State>,
    cv: Condvar,
    /// `State::done`, readable without the lock by spinning waiters.
    done: AtomicU64,
    /// Callers spinning now: with more spinners than spare CPUs, spinning
    /// would take the CPU from the sync they wait for.
    spinners: AtomicU32,
}

impl FlushGate {
    fn lock(&self) -> MutexGuard<'_, State> {
        crate::lock::lock(&self.st)
    }

    /// Make every write completed before this call durable, with `sync`
    /// run by this thread or shared with concurrent callers.
    pub(crate) fn flush(&self, sync: impl Fn() -> io::Result<()>) -> io::Result<()> {
        let mut g = self.lock();
        g.stats.calls += 1;
        // The first sync to begin from now on covers this call.
        let need = g.begun + 1;
        loop {
            if let Some((raw, kind, msg)) = &g.failed {
                return Err(match raw {
                    Some(code) => io::Error::from_raw_os_error(*code),
                    None => io::Error::new(*kind, msg.clone()),
                });
            }
            if g.done >= need {
                return Ok(());
            }
            if g.running && g.sync_ns <= SPIN_MAX_NS && crate::dev::spin_slot(&self.spinners) {
                // A fast device: wait for the running sync by spinning for
                // up to twice its expected duration.
                let budget = Duration::from_nanos(2 * g.sync_ns);
                let seen = g.done;
                drop(g);
                super::spin_until(budget, || self.done.load(Ordering::Acquire) != seen);
                self.spinners.fetch_sub(1, Ordering::AcqRel);
                g = self.lock();
                if g.done != seen || !g.running {
                    continue;
                }
            }
            if g.running {
                g.sleepers += 1;
                g = crate::lock::wait(&self.cv, g);
                g.sleepers -= 1;
                continue;
            }
            g.running = true;
            g.begun += 1;
            g.stats.syncs += 1;
            let n = g.begun;
            drop(g);
            let t = Instant::now();
            // A sync that panics counts as failed, so waiters never hang.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&sync))
                .unwrap_or_else(|_| Err(io::Error::other("flush panicked")));
            let ns = t.elapsed().as_nanos() as u64;
            g = self.lock();
            g.running = false;
            g.done = n;
            g.sync_ns = super::ewma(g.sync_ns, ns);
            self.done.store(n, Ordering::Release);
            if let Err(e) = &r {
                g.failed = Some((e.raw_os_error(), e.kind(), e.to_string()));
            }
            if g.sleepers > 0 {
                self.cv.notify_all();
            }
        }
    }

    /// Calls and syncs so far.
    pub(crate) fn stats(&self) -> FlushStats {
        self.lock().stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn every_call_is_covered_by_a_sync_begun_after_it_and_syncs_are_shared() {
        let gate = Arc::new(FlushGate::default());
        // Syncs run one at a time: `started` numbers them, `finished` is
        // the number of the newest completed one.
        let started = Arc::new(AtomicU64::new(0));
        let finished = Arc::new(AtomicU64::new(0));
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let (gate, started, finished) = (
                    Arc::clone(&gate),
                    Arc::clone(&started),
                    Arc::clone(&finished),
                );
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        let before = started.load(Ordering::SeqCst);
                        gate.flush(|| {
                            let n = started.fetch_add(1, Ordering::SeqCst) + 1;
                            std::thread::sleep(Duration::from_millis(2));
                            finished.store(n, Ordering::SeqCst);
                            Ok(())
                        })
                        .unwrap();
                        assert!(
                            finished.load(Ordering::SeqCst) > before,
                            "returned before a sync begun after the call completed"
                        );
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let s = gate.stats();
        assert_eq!(s.calls, 200);
        assert_eq!(s.syncs, started.load(Ordering::SeqCst));
        assert!(
            s.syncs < s.calls / 2,
            "8 threads flushing at once shared too few syncs: {s:?}"
        );
    }

    #[test]
    fn a_failed_sync_fails_every_call_that_relied_on_it() {
        let gate = FlushGate::default();
        let fail = AtomicU64::new(1);
        let r = gate.flush(|| {
            if fail.load(Ordering::SeqCst) == 1 {
                Err(io::Error::from_raw_os_error(libc::EIO))
            } else {
                Ok(())
            }
        });
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EIO));
        // Sticky: a later sync could succeed although writes were lost.
        fail.store(0, Ordering::SeqCst);
        assert_eq!(
            gate.flush(|| Ok(())).unwrap_err().raw_os_error(),
            Some(libc::EIO)
        );
        // A panicking sync fails its callers instead of hanging them.
        let gate2 = FlushGate::default();
        assert!(gate2
            .flush(|| -> io::Result<()> { panic!("boom") })
            .is_err());
        assert!(gate2.flush(|| Ok(())).is_err());

        // Concurrent callers that share a failing sync all see the error.
        let gate = Arc::new(FlushGate::default());
        let errors = Arc::new(AtomicU64::new(0));
        let hs: Vec<_> = (0..6)
            .map(|_| {
                let (gate, errors) = (Arc::clone(&gate), Arc::clone(&errors));
                std::thread::spawn(move || {
                    let r = gate.flush(|| {
                        std::thread::sleep(Duration::from_millis(20));
                        Err(io::Error::from_raw_os_error(libc::EIO))
                    });
                    if r.is_err() {
                        errors.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(
            errors.load(Ordering::SeqCst),
            6,
            "a sharer missed the error"
        );
    }
}
