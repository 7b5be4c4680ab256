//! The process' cache: one userfaultfd, the registry of live maps by
//! address, the fault-handler threads, the access clock and the counters.

use super::map::MapInner;
use super::uffd::{Msg, Uffd, UFFD_EVENT_PAGEFAULT};
use crate::dev::DevError;
use crate::error::{Error, Result, StorageError};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// Fault-handler threads per process.
const HANDLERS: usize = 2;

/// Default address-space budget of all maps together (bytes).
pub(super) const DEFAULT_ADDRESS_BUDGET: u64 = 16 << 40;

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub faults: AtomicU64,
    pub fault_bytes: AtomicU64,
    pub poisoned: AtomicU64,
    pub evictions: AtomicU64,
    pub evicted_bytes: AtomicU64,
    pub page_evictions: AtomicU64,
    pub reaper_runs: AtomicU64,
    pub reaper_ns: AtomicU64,
    pub resident: AtomicU64,
    pub objects: AtomicU64,
    pub maps: AtomicU64,
    pub reserved: AtomicU64,
}

/// The process-wide state.
#[derive(Debug)]
pub(super) struct Cache {
    pub uffd: Uffd,
    /// Live maps by start address.
    pub maps: RwLock<BTreeMap<usize, Arc<MapInner>>>,
    pub stats: Counters,
    /// The access clock: advanced by every fill (a miss) and every reaper
    /// tick (20 ms), so that recency is ordered finely where it matters,
    /// under misses, and still moves when nothing misses. What an access
    /// stamps (a load, not a clock read).
    pub clock: AtomicU64,
    /// The explicit cache budget in bytes (0: none).
    pub budget: AtomicU64,
    pub reaper_on: AtomicBool,
    pub address_budget: AtomicU64,
}

impl Cache {
    /// The access clock now.
    #[inline]
    pub fn tick(&self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }

    /// The live map holding `addr`.
    fn find(&self, addr: usize) -> Option<Arc<MapInner>> {
        let maps = crate::lock::read(&self.maps);
        let (_, m) = maps.range(..=addr).next_back()?;
        (addr < m.base + m.size).then(|| Arc::clone(m))
    }
}

static CACHE: OnceLock<std::result::Result<Cache, String>> = OnceLock::new();

pub(super) fn os_err(op: &'static str, e: std::io::Error) -> Error {
    StorageError::Dev(DevError::Io {
        op,
        device: "mcache".into(),
        offset: 0,
        source: e,
    })
    .into()
}

/// The process' cache, started on first use: the userfaultfd, the fault
/// handlers and the reaper.
pub(super) fn cache() -> Result<&'static Cache> {
    let c = CACHE.get_or_init(|| {
        let force_user = std::env::var("MPOOL_MCACHE_UFFD").is_ok_and(|v| v == "user");
        let uffd = Uffd::open(force_user).map_err(|e| format!("userfaultfd: {e}"))?;
        Ok(Cache {
            uffd,
            maps: RwLock::new(BTreeMap::new()),
            stats: Counters::default(),
            clock: AtomicU64::new(0),
            budget: AtomicU64::new(0),
            reaper_on: AtomicBool::new(true),
            address_budget: AtomicU64::new(DEFAULT_ADDRESS_BUDGET),
        })
    });
    match c {
        Ok(c) => {
            start_threads(c);
            Ok(c)
        }
        Err(e) => Err(os_err("userfaultfd", std::io::Error::other(e.clone()))),
    }
}

/// The process' cache if it was started.
pub(super) fn started() -> Option<&'static Cache> {
    CACHE.get().and_then(|c| c.as_ref().ok())
}

/// Start the fault handlers and the reaper, once.
fn start_threads(c: &'static Cache) {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        for i in 0..HANDLERS {
            let spawned = std::thread::Builder::new()
                .name(format!("mpool-mcache-{i}"))
                .spawn(move || handler(c));
            if let Err(e) = spawned {
                tracing::error!("mcache: starting a fault handler: {e}");
            }
        }
        let spawned = std::thread::Builder::new()
            .name("mpool-reaper".into())
            .spawn(move || super::reaper::run(c));
        if let Err(e) = spawned {
            tracing::error!("mcache: starting the reaper: {e}");
        }
    });
}

/// A fault-handler thread: read fault messages, fill the pages.
fn handler(c: &'static Cache) {
    let mut msgs = [Msg::ZERO; 16];
    loop {
        let n = match c.uffd.read(&mut msgs) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!("mcache: reading faults: {e}");
                return;
            }
        };
        for m in &msgs[..n] {
            if m.event() != UFFD_EVENT_PAGEFAULT {
                continue;
            }
            let addr = m.address() as usize;
            match c.find(addr) {
                Some(map) => map.fault(c, addr, m.thread()),
                None => {
                    // No live map there: nothing can serve it (a slice used
                    // after its map was dropped). SIGBUS, not a hang.
                    let page = addr & !(super::map::PAGE - 1);
                    if let Err(e) = c.uffd.poison_or_kill(page, super::map::PAGE, m.thread()) {
                        tracing::error!("mcache: fault at {addr:#x} outside any map: {e}");
                    }
                }
            }
        }
    }
}
