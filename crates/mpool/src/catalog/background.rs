//! The background thread: deferred deletes made durable, idle MDCs sealed,
//! MDCs compacted.

use super::{lock, Inner};
use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

/// The background thread looks at every MDC this often: deferred deletes
/// become durable within about this long, and an MDC idle for this long
/// with shared-flush commits in its last flush set is sealed.
pub(super) const TICK: Duration = Duration::from_millis(100);

impl Inner {
    /// Wake the background thread to compact what wants it. Once until it
    /// wakes: every append to an MDC past its compaction threshold asks,
    /// and a condition variable's notification is a system call each time
    /// (with more threads than CPUs the background thread waits for a CPU,
    /// and the appends went on notifying meanwhile, BENCHMARKS.md, session
    /// 31).
    fn ask_compaction(&self) {
        if !self.compact_asked.swap(true, Ordering::AcqRel) {
            let (m, cv) = &self.wake;
            drop(lock(m));
            cv.notify_all();
        }
    }

    /// Ask for a compaction when MDC `s` wants one; nothing to look at
    /// while one is asked already (the background thread's round looks at
    /// every MDC).
    pub(super) fn compact_if_due(&self, s: &super::shard::Shard) {
        if !self.compact_asked.load(Ordering::Relaxed) && self.wants_compaction(s) {
            self.ask_compaction();
        }
    }
}

pub(super) fn spawn_compactor(w: Weak<Inner>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("mpool-compactor".into())
        .spawn(move || {
            // Appends per MDC at the previous tick: unchanged means idle.
            let mut seen: Vec<u64> = Vec::new();
            loop {
                let Some(inner) = w.upgrade() else { return };
                {
                    let (m, cv) = &inner.wake;
                    let mut g = lock(m);
                    if *g {
                        return;
                    }
                    // Asked while the last round ran: no wait (the asker's
                    // notification found nobody waiting).
                    if !inner.compact_asked.load(Ordering::Acquire) {
                        g = crate::lock::wait_timeout(cv, g, TICK).0;
                        if *g {
                            return;
                        }
                    }
                    // Cleared under the lock, before this round looks: a
                    // later ask sets it again and is seen by the next.
                    inner.compact_asked.store(false, Ordering::Release);
                }
                seen.resize(inner.shards.len(), u64::MAX);
                for (s, last) in inner.shards.iter().zip(seen.iter_mut()) {
                    let now = s.appends.load(Ordering::Relaxed);
                    let idle = now == *last;
                    *last = now;
                    let seal = idle && s.unsealed.load(Ordering::Relaxed);
                    if seal || !lock(&s.awaiting).is_empty() {
                        if let Err(e) = inner.sync_shard(s, seal) {
                            tracing::warn!("background sync of MDC{} failed: {e}", s.index);
                        }
                    }
                    if inner.wants_compaction(s) {
                        if let Err(e) = inner.compact(s) {
                            tracing::warn!("background compaction of MDC{} failed: {e}", s.index);
                        }
                    }
                }
            }
        })
        .unwrap_or_else(|_| std::thread::spawn(|| {}))
}
