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
                    let g = lock(m);
                    if *g {
                        return;
                    }
                    let (g, _) = crate::lock::wait_timeout(cv, g, TICK);
                    if *g {
                        return;
                    }
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
