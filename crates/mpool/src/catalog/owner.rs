//! Per-MDC owner threads: the message-passing alternative to appending
//! under the MDC's shared lock, kept so that the two can be measured side
//! by side (`mpool-bench meta`; `docs/architecture.md`, "Concurrency").
//!
//! With `MPOOL_META_LOCKING=owner` in the environment of the process that
//! opens a pool read-write, each MDC of MDC1..N gets a thread that owns its
//! appends: a caller still takes the MDC's read lock (which keeps
//! compaction out while its record goes in and its table change is made),
//! sends the record to the owner and waits for the answer. The owner takes
//! every request queued (up to [`BATCH_MAX`]), appends them without a
//! flush, then flushes once for all that asked for it: group commit by
//! queue instead of by lock. The default (`shared`) appends on the
//! caller's thread; the measurements that chose it are in the
//! architecture document.

use crate::mdc::{Mdc, MdcError};
use crate::mlog::MlogError;
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;

/// Most requests one round of the owner takes.
const BATCH_MAX: usize = 64;

/// How the appends of MDC1..N are made (read once per pool open from
/// `MPOOL_META_LOCKING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Locking {
    /// On the caller's thread, under the MDC's shared lock (the default).
    Shared,
    /// By an owner thread per MDC, fed by a queue.
    Owner,
}

impl Locking {
    /// The choice the environment makes: `owner`, or the default.
    pub(super) fn from_env() -> Locking {
        match std::env::var("MPOOL_META_LOCKING") {
            Ok(v) if v == "owner" => Locking::Owner,
            _ => Locking::Shared,
        }
    }
}

/// The MDC a request appends to.
struct MdcRef(*const Mdc);

// SAFETY: the pointer is only dereferenced by the owner thread while the
// request's sender holds a read guard of the shard's `RwLock<Mdc>` (it
// waits for the reply before dropping it): the `Mdc` is alive and nobody
// has it mutably. `Mdc` is `Sync`, so using it through `&Mdc` from another
// thread is sound.
unsafe impl Send for MdcRef {}

struct Req {
    mdc: MdcRef,
    bytes: Vec<u8>,
    sync: bool,
    reply: mpsc::SyncSender<Result<(), MdcError>>,
}

/// The owner thread of one MDC and the queue that feeds it.
#[derive(Debug)]
pub(super) struct Owner {
    tx: Mutex<Option<mpsc::Sender<Req>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Owner {
    /// Start the owner of MDC `index`.
    pub(super) fn spawn(index: u8) -> std::io::Result<Owner> {
        let (tx, rx) = mpsc::channel::<Req>();
        let thread = std::thread::Builder::new()
            .name(format!("mpool-mdc{index}"))
            .spawn(move || run(rx))?;
        Ok(Owner {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Append `bytes` to `mdc` through the owner (durable on return with
    /// `sync`). The caller holds the read guard `mdc` comes from.
    pub(super) fn append(&self, mdc: &Mdc, bytes: &[u8], sync: bool) -> Result<(), MdcError> {
        let gone = || {
            MdcError::Mlog(MlogError::Failed {
                reason: "the MDC's owner thread is gone".into(),
            })
        };
        let (reply, answer) = mpsc::sync_channel(1);
        let tx = crate::lock::lock(&self.tx).clone().ok_or_else(gone)?;
        tx.send(Req {
            mdc: MdcRef(mdc),
            bytes: bytes.to_vec(),
            sync,
            reply,
        })
        .map_err(|_| gone())?;
        // Waiting here keeps the caller's guard, and so `mdc`, alive for
        // as long as the owner may use it.
        answer.recv().map_err(|_| gone())?
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it answered everything.
        drop(crate::lock::lock(&self.tx).take());
        if let Some(t) = crate::lock::lock(&self.thread).take() {
            if t.join().is_err() {
                tracing::error!("an MDC owner thread panicked");
            }
        }
    }
}

fn run(rx: mpsc::Receiver<Req>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let mut results: Vec<Result<(), MdcError>> = Vec::with_capacity(batch.len());
        let mut last_sync = None;
        for (i, r) in batch.iter().enumerate() {
            // SAFETY: see `MdcRef`: the sender of `r` holds the read guard
            // of this MDC until it has our reply, sent below.
            let mdc = unsafe { &*r.mdc.0 };
            let res = mdc.append(&r.bytes, false).map(|_| ());
            if r.sync && res.is_ok() {
                last_sync = Some(i);
            }
            results.push(res);
        }
        if let Some(i) = last_sync {
            // SAFETY: as above; request `i` has not been answered yet.
            let mdc = batch.get(i).map(|r| unsafe { &*r.mdc.0 });
            if let Some(Err(e)) = mdc.map(Mdc::sync) {
                let why = e.to_string();
                for (r, res) in batch.iter().zip(results.iter_mut()) {
                    if r.sync && res.is_ok() {
                        *res = Err(MdcError::Mlog(MlogError::Failed {
                            reason: why.clone(),
                        }));
                    }
                }
            }
        }
        for (r, res) in batch.into_iter().zip(results) {
            // A caller that went away (it cannot: it waits) loses nothing.
            let _ = r.reply.send(res);
        }
    }
}
