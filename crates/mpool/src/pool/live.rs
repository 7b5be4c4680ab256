//! Live figures of an open pool: the process that holds a pool open
//! read-write publishes its usage and object counts in the run directory
//! (`<uuid>.live`, JSON, replaced atomically) when it opens the pool and then
//! once a second, so that `mpool list`, `status`, `mblock list` and
//! `mlog list` in other processes show current figures instead of only "is
//! open by process N". The file goes when the pool closes; a file whose
//! process is gone or that is older than `STALE_AFTER` (10 s) is ignored.

use super::{lock, ClassUsage, Pool, PoolInner};
use crate::admin::rundir;
use crate::objid::ObjType;
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

/// How often the holder publishes.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// Figures older than this are not shown (the holder is stuck or gone).
pub const STALE_AFTER: Duration = Duration::from_secs(10);

/// What the holder of an open pool publishes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LiveFigures {
    /// The holding process.
    pub pid: u32,
    /// When these figures were taken, milliseconds since the epoch.
    pub updated_ms: u64,
    /// Health, as [`Pool::health`] says it.
    pub health: String,
    /// Committed objects of each kind.
    pub objects: ObjectCounts,
    /// Usage per class.
    pub classes: Vec<ClassUsage>,
    /// The holder's mcache maps of the pool, when it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcache: Option<crate::mcache::McachePoolFigures>,
}

/// Committed objects of each kind.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectCounts {
    /// Mblocks.
    pub mblocks: u64,
    /// User mlogs.
    pub mlogs: u64,
    /// User MDCs (the root MDC included).
    pub mdcs: u64,
}

impl ObjectCounts {
    /// Every committed object.
    pub fn total(&self) -> u64 {
        self.mblocks + self.mlogs + self.mdcs
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn file_name(uuid: &str) -> String {
    format!("{uuid}.live")
}

impl Pool {
    /// Make the publishing thread keep its reference to the pool `d`
    /// longer after each publishing, and say whether it holds one now: a
    /// test's way to drop the last user handle while it does.
    #[cfg(feature = "internals")]
    pub fn publisher_linger(&self, d: Duration) {
        if let Some(p) = lock(&self.inner.live).as_ref() {
            p.linger(d);
        }
    }

    /// Whether the publishing thread holds a reference to the pool now.
    #[cfg(feature = "internals")]
    pub fn publisher_holding(&self) -> bool {
        lock(&self.inner.live)
            .as_ref()
            .is_some_and(|p| p.holding() > 0)
    }

    /// Committed objects of each kind (zero when the metadata was not read).
    pub fn object_counts(&self) -> ObjectCounts {
        let mut c = ObjectCounts::default();
        if let Some(pmd) = self.inner.pmd.as_ref() {
            for ty in pmd.types() {
                match ty {
                    ObjType::Mblock => c.mblocks += 1,
                    ObjType::Mlog => c.mlogs += 1,
                    ObjType::Mdc => c.mdcs += 1,
                }
            }
        }
        c
    }

    /// The figures this pool would publish now.
    pub fn live_figures(&self) -> LiveFigures {
        LiveFigures {
            pid: std::process::id(),
            updated_ms: now_ms(),
            health: self.health(),
            objects: self.object_counts(),
            classes: self.usage(),
            mcache: crate::mcache::pool_figures(self.uuid()),
        }
    }

    /// The figures published by the process holding the pool `uuid` open,
    /// if that process is alive and published within `STALE_AFTER` (10 s).
    pub fn published_figures(uuid: &str) -> Option<LiveFigures> {
        let pid = rundir::read_holder(uuid)?;
        let text = rundir::read_entry_file(&file_name(uuid)).ok()?;
        let f: LiveFigures = serde_json::from_str(&text).ok()?;
        let fresh = now_ms().saturating_sub(f.updated_ms)
            <= u64::try_from(STALE_AFTER.as_millis()).unwrap_or(u64::MAX);
        (f.pid == pid && fresh).then_some(f)
    }
}

thread_local! {
    /// Set on a publishing thread: a pool handle it drops stops nothing.
    static PUBLISHING: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread is a pool's publishing thread.
pub(super) fn on_publisher_thread() -> bool {
    PUBLISHING.with(Cell::get)
}

/// The publishing thread of a read-write pool; stopped and joined by
/// [`Publisher::stop`] (close and the drop of the last user handle call
/// it), so it never holds the pool while it closes.
#[derive(Debug)]
pub(super) struct Publisher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    /// Set while the thread holds a strong reference to the pool.
    holding: Arc<AtomicBool>,
    /// Microseconds the thread keeps the pool after publishing (0; tests
    /// widen the moment it holds it; set only with the `internals`
    /// feature).
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    linger_us: Arc<AtomicU64>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    uuid: String,
}

impl Publisher {
    /// Publish now, then every `PUBLISH_EVERY` (1 s) until stopped or the pool
    /// is gone. Publishing is best effort: a run directory that cannot be
    /// written costs the figures, never the pool.
    pub(super) fn start(pool: &Pool) -> Publisher {
        let uuid = pool.uuid().to_string();
        publish(pool, &uuid);
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let weak: Weak<PoolInner> = Arc::downgrade(&pool.inner);
        let holding = Arc::new(AtomicBool::new(false));
        let linger_us = Arc::new(AtomicU64::new(0));
        let (s, u, h) = (Arc::clone(&stop), uuid.clone(), Arc::clone(&holding));
        let linger = Arc::clone(&linger_us);
        let thread = std::thread::Builder::new()
            .name("mpool-live".into())
            .spawn(move || {
                PUBLISHING.with(|p| p.set(true));
                loop {
                    {
                        let (m, cv) = &*s;
                        let g = lock(m);
                        if *g {
                            return;
                        }
                        let (g, _) = crate::lock::wait_timeout(cv, g, PUBLISH_EVERY);
                        if *g {
                            return;
                        }
                    }
                    // `holding` is set before the reference exists and cleared
                    // after it is gone, so `Pool::close` never counts it as a user.
                    h.store(true, Ordering::SeqCst);
                    let Some(inner) = weak.upgrade() else {
                        h.store(false, Ordering::SeqCst);
                        return;
                    };
                    let pool = Pool { inner };
                    publish(&pool, &u);
                    let us = linger.load(Ordering::Relaxed);
                    if us > 0 {
                        std::thread::sleep(Duration::from_micros(us));
                    }
                    drop(pool);
                    h.store(false, Ordering::SeqCst);
                }
            })
            .ok();
        Publisher {
            stop,
            holding,
            linger_us,
            thread: Mutex::new(thread),
            uuid,
        }
    }

    /// Strong references to the pool held by the publishing thread (0 or 1).
    pub(super) fn holding(&self) -> usize {
        usize::from(self.holding.load(Ordering::SeqCst))
    }

    /// Keep the pool `d` longer after each publishing (tests).
    #[cfg(feature = "internals")]
    pub(super) fn linger(&self, d: Duration) {
        self.linger_us.store(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Stop publishing and remove the figures. Called from the pool's own
    /// threads only through close and drop; never from the publisher.
    pub(super) fn stop(&self) {
        {
            let (m, cv) = &*self.stop;
            *lock(m) = true;
            cv.notify_all();
        }
        if let Some(t) = lock(&self.thread).take() {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
        let _ = rundir::remove_entry_file(&file_name(&self.uuid));
    }
}

fn publish(pool: &Pool, uuid: &str) {
    let f = pool.live_figures();
    if let Ok(text) = serde_json::to_string(&f) {
        if let Err(e) = rundir::write_entry_file(&file_name(uuid), &text) {
            tracing::debug!("publishing the figures of pool {uuid}: {e}");
        }
    }
}

/// The outcome of the last `check` of a pool, kept in the run directory
/// (`<uuid>.check`) for `mpool status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckRecord {
    /// When the check ended, seconds since the epoch.
    pub time: u64,
    /// Problems found.
    pub problems: u64,
    /// Repairs made.
    pub repairs: u64,
    /// Committed mblocks verified.
    pub mblocks: u64,
    /// Bytes of mblock content verified.
    pub bytes: u64,
    /// The first problems, as `object: problem` (at most 8).
    pub first_problems: Vec<String>,
}

impl Pool {
    /// The process holding the pool `uuid` open read-write, if recorded and alive.
    pub fn holder(uuid: &str) -> Option<u32> {
        rundir::read_holder(uuid)
    }

    /// Keep the outcome of a check in the run directory, for `mpool status`
    /// (best effort: the check's result does not depend on it).
    pub fn record_check(&self, report: &crate::check::CheckReport) {
        let rec = CheckRecord {
            time: super::now(),
            problems: report.problems.len() as u64,
            repairs: report.repairs.len() as u64,
            mblocks: report.mblocks,
            bytes: report.bytes,
            first_problems: report
                .problems
                .iter()
                .take(8)
                .map(|p| format!("{}: {}", p.object, p.problem))
                .collect(),
        };
        let file = format!("{}.check", self.uuid());
        if let Ok(text) = serde_json::to_string(&rec) {
            if let Err(e) = rundir::write_entry_file(&file, &text) {
                tracing::debug!("recording the check of pool {}: {e}", self.name());
            }
        }
    }

    /// The outcome of the last check of the pool `uuid` recorded in this run directory.
    pub fn last_check(uuid: &str) -> Option<CheckRecord> {
        let text = rundir::read_entry_file(&format!("{uuid}.check")).ok()?;
        serde_json::from_str(&text).ok()
    }
}
