//! MDC compaction: rewriting a log as its live records, all or nothing.

use super::object::Obj;
use super::seal::Reservation;
use super::shard::{take_awaiting, Shard};
use super::{lock, rlock, wlock, Inner};
use crate::error::{invariant_broken, Error, Result};
use crate::format::record::CatalogRecord;
use crate::mdc::Mdc;
use crate::objid::ObjectId;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

/// The MDC compacts in the background when its log is this full...
const COMPACT_FILL_PCT: u64 = 50;
/// ...and at least this share of its records are garbage.
const COMPACT_GARBAGE_PCT: u64 = 50;
const _: () = assert!(COMPACT_FILL_PCT > 0 && COMPACT_FILL_PCT <= 100);
const _: () = assert!(COMPACT_GARBAGE_PCT > 0 && COMPACT_GARBAGE_PCT <= 100);

/// How a compaction failed.
pub(super) enum CompactError {
    /// Before the end marker was tried: the old log is still the one in use.
    Abandoned(Error),
    /// The end marker itself failed: which log a reopen takes is unknown.
    InDoubt(Error),
}

impl From<CompactError> for Error {
    fn from(e: CompactError) -> Error {
        match e {
            CompactError::Abandoned(e) | CompactError::InDoubt(e) => e,
        }
    }
}

/// Rewrite an MDC as the checkpoint and one record per object of `objs`
/// and per reserved mblock of `reserved` (a reserve record, also for one
/// sealed and not adopted, whose commit record is its seal: see
/// `seal.rs`), an MDC compaction: a crash leaves exactly the old or the
/// new state.
pub(super) fn compact_mdc(
    mdc: &Mdc,
    objs: &HashMap<u64, Obj>,
    reserved: &HashMap<u64, Reservation>,
    ckpt: u64,
) -> std::result::Result<(), CompactError> {
    mdc.cstart()
        .map_err(|e| CompactError::Abandoned(e.into()))?;
    let body = (|| -> Result<()> {
        mdc.append(&CatalogRecord::UniqCkpt { next: ckpt }.encode(), false)?;
        for (raw, o) in objs {
            if reserved.contains_key(raw) {
                continue;
            }
            let id = ObjectId::from_raw(*raw)
                .ok_or_else(|| invariant_broken(format!("object table key {raw:#x}")))?;
            mdc.append(&o.record(id).encode(), false)?;
        }
        for (raw, r) in reserved {
            let id = ObjectId::from_raw(*raw)
                .ok_or_else(|| invariant_broken(format!("reserve table key {raw:#x}")))?;
            let rec = CatalogRecord::MblockReserve {
                id,
                class: r.class,
                zone: r.zone,
                owner: r.owner,
                nonce: r.nonce,
            };
            mdc.append(&rec.encode(), false)?;
        }
        Ok(())
    })();
    if let Err(e) = body {
        return Err(match mdc.cabort() {
            Ok(()) => CompactError::Abandoned(e),
            Err(_) => CompactError::InDoubt(e),
        });
    }
    mdc.cend().map_err(|e| CompactError::InDoubt(e.into()))
}

impl Inner {
    pub(super) fn wants_compaction(&self, s: &Shard) -> bool {
        let mdc = rlock(&s.mdc);
        let u = mdc.usage();
        let (used, cap) = (u.len, u.capacity);
        let recs = s.records.load(Ordering::Relaxed);
        let live = rlock(&s.objs).len() as u64 + 1;
        cap > 0
            && used * 100 >= cap * COMPACT_FILL_PCT
            && recs > 0
            && (recs - live.min(recs)) * 100 >= recs * COMPACT_GARBAGE_PCT
    }

    /// Rewrite an MDC as its live records: crash-safe (an MDC compaction).
    pub(super) fn compact(&self, s: &Shard) -> Result<()> {
        let mdc = wlock(&s.mdc);
        let objs = rlock(&s.objs);
        let reserved = lock(&s.reserved);
        let ckpt = s.ckpt.load(Ordering::Acquire);
        s.check_broken()?;
        // Every deferred delete so far is in the old log and absent from
        // `objs`: once the new log is durable, its zones are free.
        let done = take_awaiting(s);
        if let Err(e) = compact_mdc(&mdc, &objs, &reserved, ckpt) {
            lock(&s.awaiting).extend(done);
            if let CompactError::InDoubt(e) = &e {
                let _ = s.broken.set(format!("compaction ended in doubt: {e}"));
            }
            return Err(e.into());
        }
        // The new log holds no shared-flush records.
        s.unsealed.store(false, Ordering::Relaxed);
        s.records
            .store((objs.len() + reserved.len()) as u64 + 1, Ordering::Relaxed);
        s.appends.fetch_add(1, Ordering::Relaxed);
        self.compactions.fetch_add(1, Ordering::Relaxed);
        drop(reserved);
        drop(objs);
        drop(mdc);
        self.release(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::dev::DeviceRef;
    use crate::format::superblock::MediaClass;
    use crate::objid::ObjType;
    use std::sync::Arc;

    /// A compaction failing at any one device operation: before its end
    /// marker it is abandoned and the MDC is back on its old log, which
    /// holds every record and takes new ones, across a crash; a failed end
    /// marker leaves it in doubt, and a reopen then finds the old state or
    /// the new one, whole.
    #[test]
    pub(super) fn a_compaction_failing_anywhere_is_abandoned_or_in_doubt() {
        use crate::dev::{CrashMode, FaultDevice};
        let (a, b) = (0..(4 << 20), (4 << 20)..(8 << 20));
        let old: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 50]).collect();
        // Enough objects that their records fill more than one async flush
        // (1 MiB), so the body writes before the end marker.
        let objs: HashMap<u64, Obj> = (0..30_000u64)
            .map(|n| {
                let id = ObjectId::new(ObjType::Mblock, 1, 100 + n);
                let o = Obj {
                    zone: 5,
                    a: 4096,
                    b: 0,
                    class: MediaClass::Capacity,
                    shift: 0,
                };
                (id.raw(), o)
            })
            .collect();
        let read = |m: &Mdc| -> Vec<Vec<u8>> { m.reader().unwrap().map(|r| r.unwrap()).collect() };
        let setup = || {
            let f = Arc::new(FaultDevice::new(8 << 20, 4096));
            let d: DeviceRef = f.clone();
            let mdc = Mdc::create(d, a.clone(), b.clone(), 3).unwrap();
            for r in &old {
                mdc.append(r, true).unwrap();
            }
            (f, mdc)
        };
        // The MDC as a crash that loses every unflushed write leaves it.
        let crashed = |f: &FaultDevice| -> Mdc {
            Mdc::open(
                Arc::new(f.reboot(CrashMode::DropAll)),
                a.clone(),
                b.clone(),
                3,
            )
            .unwrap()
        };
        let (f, mdc) = setup();
        let ops = f.stats().ops;
        assert!(compact_mdc(&mdc, &objs, &HashMap::new(), 1000).is_ok());
        let total = f.stats().ops - ops;
        let new_len = read(&mdc).len();
        assert_eq!(new_len, objs.len() + 1);
        let (mut abandoned, mut in_doubt) = (0, 0);
        for p in 1..=total {
            let (f, mdc) = setup();
            let active = mdc.active();
            f.fail_op(f.stats().ops + p);
            let res = compact_mdc(&mdc, &objs, &HashMap::new(), 1000);
            f.clear_failures();
            match res {
                Ok(()) => {}
                Err(CompactError::Abandoned(_)) => {
                    abandoned += 1;
                    assert_eq!(mdc.active(), active, "op {p}: back on the old log");
                    mdc.append(b"after", true).unwrap();
                    let mut want = old.clone();
                    want.push(b"after".to_vec());
                    assert_eq!(read(&mdc), want, "op {p}");
                    drop(mdc);
                    assert_eq!(read(&crashed(&f)), want, "op {p}: after a crash");
                }
                Err(CompactError::InDoubt(_)) => {
                    in_doubt += 1;
                    drop(mdc);
                    let got = read(&crashed(&f));
                    assert!(
                        got == old || got.len() == new_len,
                        "op {p}: old or new state"
                    );
                }
            }
        }
        assert!(
            abandoned >= 3 && in_doubt >= 1,
            "{abandoned} abandoned, {in_doubt} in doubt of {total}"
        );
    }
}
