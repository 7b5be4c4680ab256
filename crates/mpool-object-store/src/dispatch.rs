//! Where a call's blocking work runs: on tokio's blocking pool (the
//! default), or in place on the worker thread that polls the call
//! ([`crate::StoreOptions::run_in_place`]).
//!
//! A hand-off to the blocking pool costs two thread wake-ups (the pool's
//! thread, then the worker that waits for the result), 30-100 us each on
//! a virtual machine whose idle CPUs halt: a fifth of a 64 KiB put from
//! one task (BENCHMARKS.md, session 15). `tokio::task::block_in_place`
//! runs the work on the polling thread instead, after handing that
//! worker's other tasks to another thread, so the runtime goes on
//! scheduling every other task meanwhile. What it cannot go on with is
//! the rest of the *same* task: futures that the task polls together
//! with this one (`join!`, `join_all`, `FuturesUnordered`, a stream's
//! `buffered`) wait until the work is done, so calls joined in one task
//! run one after another instead of together. That suits applications
//! whose tasks make one call at a time (concurrency from many tasks),
//! and is why it is not the default. (A call cannot see whether the task
//! polls other futures with it: letting them be polled first, by
//! returning once and coming back, cost as much as the hand-off saved:
//! session 15.)
//!
//! In place needs a multi-threaded tokio runtime (`block_in_place`
//! panics on a current-thread one, which therefore always uses the pool)
//! and short work: a put or read of at most [`IN_PLACE_MAX`] bytes, a
//! catalog update. Longer work always goes to the pool, where a wake-up
//! is a small part of its time.

use std::sync::Mutex;
use tokio::runtime::{Handle, RuntimeFlavor};

/// Work of at most this many bytes (a put's content, a read) may run in
/// place; longer work runs on the blocking pool.
pub const IN_PLACE_MAX: u64 = 1 << 20;

/// How many calls ran where (for tests and benchmarks).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DispatchStats {
    /// Calls whose blocking work ran in place.
    pub in_place: u64,
    /// Calls whose blocking work went to the blocking pool.
    pub pooled: u64,
}

static STATS: Mutex<DispatchStats> = Mutex::new(DispatchStats {
    in_place: 0,
    pooled: 0,
});

/// The process' counts of where calls' blocking work ran (all stores
/// together).
pub fn stats() -> DispatchStats {
    *crate::lock(&STATS)
}

/// Run `f`, blocking work, in place when `in_place` (the store allows it
/// and the work is short) and the runtime is multi-threaded, else on
/// tokio's blocking pool.
pub(crate) async fn run<T: Send + 'static>(
    in_place: bool,
    f: impl FnOnce() -> object_store::Result<T> + Send + 'static,
) -> object_store::Result<T> {
    if in_place
        && Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
    {
        crate::lock(&STATS).in_place += 1;
        return tokio::task::block_in_place(f);
    }
    crate::lock(&STATS).pooled += 1;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(crate::generic)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::future::join_all;

    fn work() -> object_store::Result<std::thread::ThreadId> {
        std::thread::sleep(std::time::Duration::from_millis(2));
        Ok(std::thread::current().id())
    }

    /// In place, a call of a task on a multi-threaded runtime runs on the
    /// thread that polls it, and calls joined in one task all complete
    /// (one after another); otherwise, and on a current-thread runtime,
    /// the work goes to the blocking pool.
    #[test]
    fn in_place_runs_on_the_polling_thread_of_a_multi_threaded_runtime() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::spawn(async {
                let me = std::thread::current().id();
                assert_eq!(run(true, work).await.unwrap(), me, "in place");
                // (A thread that gave its worker core away may serve the
                // pool itself: count, not thread IDs. Only this module's
                // tests run work in place.)
                let before = stats();
                run(false, work).await.unwrap();
                let after = stats();
                assert_eq!(after.in_place, before.in_place, "pooled");
                assert!(after.pooled > before.pooled, "pooled");
                let me = std::thread::current().id();
                let ids = join_all((0..4).map(|_| run(true, work))).await;
                assert!(
                    ids.into_iter().all(|r| r.unwrap() == me),
                    "joined, in place"
                );
            })
            .await
            .unwrap();
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let me = std::thread::current().id();
            assert_ne!(run(true, work).await.unwrap(), me, "current-thread: pooled");
        });
        assert_eq!(
            stats().in_place,
            5,
            "one lone call and four joined ones in place"
        );
    }
}
