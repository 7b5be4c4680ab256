//! The stream catalog: one MDC of its own, named by a record of the user
//! root MDC, holding every stream's segments and tails (docs/format.md,
//! "Event streams").

use super::error::StreamError;
use super::format::{decode_root, encode_root, CatRecord};
use crate::error::{Error, ObjectError, Result};
use crate::format::superblock::MediaClass;
use crate::lock::lock;
use crate::mdc::Mdc;
use crate::objid::{MblockId, MdcId, MlogId, ObjectId};
use crate::Pool;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};

/// Capacity asked for the catalog MDC (rounded up to whole zones).
const CATALOG_BYTES: u64 = 1 << 20;

/// A sealed segment as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SegMeta {
    /// The mblock.
    pub mblock: u64,
    /// The tail mlog it was sealed from.
    #[serde(skip)]
    pub mlog: u64,
    /// First offset.
    pub base: u64,
    /// Records.
    pub count: u64,
    /// Bytes of the mblock.
    pub bytes: u64,
    /// Seal time (ms since the epoch).
    pub sealed_ms: u64,
}

/// A stream as the catalog knows it.
#[derive(Debug, Clone)]
pub struct Meta {
    pub no: u64,
    pub name: String,
    pub created_ms: u64,
    pub seg_bytes: u64,
    pub max_age_ms: u64,
    /// First offset not trimmed.
    pub first: u64,
    /// Sealed segments by base.
    pub sealed: Vec<SegMeta>,
    /// Tails not sealed yet, oldest first: (mlog, base).
    pub tails: Vec<(u64, u64)>,
    pub spare: Option<u64>,
    /// Seals started and not finished: (mblock, mlog).
    pub pending: Vec<(u64, u64)>,
}

#[derive(Debug, Default)]
struct State {
    next_no: u64,
    by_no: BTreeMap<u64, Meta>,
    /// Objects known to be garbage (trimmed, replaced, deleted).
    garbage: Vec<u64>,
}

impl State {
    fn apply(&mut self, rec: &CatRecord) -> std::result::Result<(), String> {
        let missing = |no: u64| format!("record for unknown stream number {no}");
        match rec {
            CatRecord::Header { next_no } => self.next_no = self.next_no.max(*next_no),
            CatRecord::Create {
                no,
                created_ms,
                seg_bytes,
                max_age_ms,
                name,
            } => {
                self.next_no = self.next_no.max(no + 1);
                self.by_no.insert(
                    *no,
                    Meta {
                        no: *no,
                        name: name.clone(),
                        created_ms: *created_ms,
                        seg_bytes: *seg_bytes,
                        max_age_ms: *max_age_ms,
                        first: 0,
                        sealed: Vec::new(),
                        tails: Vec::new(),
                        spare: None,
                        pending: Vec::new(),
                    },
                );
            }
            CatRecord::Tail { no, mlog, base } => {
                let m = self.by_no.get_mut(no).ok_or_else(|| missing(*no))?;
                if m.spare == Some(*mlog) {
                    m.spare = None;
                }
                m.tails.push((*mlog, *base));
            }
            CatRecord::Spare { no, mlog } => {
                let m = self.by_no.get_mut(no).ok_or_else(|| missing(*no))?;
                if let Some(old) = m.spare.replace(*mlog) {
                    self.garbage.push(old);
                }
            }
            CatRecord::Pending { no, mblock, mlog } => {
                let m = self.by_no.get_mut(no).ok_or_else(|| missing(*no))?;
                m.pending.push((*mblock, *mlog));
            }
            CatRecord::Sealed {
                no,
                mblock,
                mlog,
                base,
                count,
                bytes,
                sealed_ms,
            } => {
                let m = self.by_no.get_mut(no).ok_or_else(|| missing(*no))?;
                // Other seals started for this tail are garbage.
                for (b, l) in std::mem::take(&mut m.pending) {
                    if l == *mlog && b != *mblock {
                        self.garbage.push(b);
                    } else if l != *mlog {
                        m.pending.push((b, l));
                    }
                }
                m.tails.retain(|(l, _)| l != mlog);
                self.garbage.push(*mlog);
                if *count == 0 {
                    // An empty tail retired: no segment.
                    return Ok(());
                }
                let seg = SegMeta {
                    mblock: *mblock,
                    mlog: *mlog,
                    base: *base,
                    count: *count,
                    bytes: *bytes,
                    sealed_ms: *sealed_ms,
                };
                let at = m.sealed.partition_point(|s| s.base < *base);
                m.sealed.insert(at, seg);
            }
            CatRecord::Trim { no, first } => {
                let m = self.by_no.get_mut(no).ok_or_else(|| missing(*no))?;
                m.first = m.first.max(*first);
                let f = m.first;
                let (gone, kept): (Vec<_>, Vec<_>) =
                    m.sealed.drain(..).partition(|s| s.base + s.count <= f);
                m.sealed = kept;
                self.garbage.extend(gone.iter().map(|s| s.mblock));
            }
            CatRecord::Delete { no } => {
                let m = self.by_no.remove(no).ok_or_else(|| missing(*no))?;
                self.garbage.extend(m.sealed.iter().map(|s| s.mblock));
                self.garbage.extend(m.tails.iter().map(|t| t.0));
                self.garbage.extend(m.spare);
                self.garbage
                    .extend(m.pending.iter().flat_map(|p| [p.0, p.1]));
            }
        }
        Ok(())
    }

    /// The records that rebuild this state (a compaction's content).
    fn snapshot(&self) -> Vec<CatRecord> {
        let mut v = vec![CatRecord::Header {
            next_no: self.next_no,
        }];
        for m in self.by_no.values() {
            v.push(CatRecord::Create {
                no: m.no,
                created_ms: m.created_ms,
                seg_bytes: m.seg_bytes,
                max_age_ms: m.max_age_ms,
                name: m.name.clone(),
            });
            if m.first > 0 {
                v.push(CatRecord::Trim {
                    no: m.no,
                    first: m.first,
                });
            }
            for s in &m.sealed {
                v.push(CatRecord::Sealed {
                    no: m.no,
                    mblock: s.mblock,
                    mlog: s.mlog,
                    base: s.base,
                    count: s.count,
                    bytes: s.bytes,
                    sealed_ms: s.sealed_ms,
                });
            }
            for &(mlog, base) in &m.tails {
                v.push(CatRecord::Tail {
                    no: m.no,
                    mlog,
                    base,
                });
            }
            if let Some(mlog) = m.spare {
                v.push(CatRecord::Spare { no: m.no, mlog });
            }
            for &(mblock, mlog) in &m.pending {
                v.push(CatRecord::Pending {
                    no: m.no,
                    mblock,
                    mlog,
                });
            }
        }
        v
    }
}

/// The stream catalog of one open pool.
pub struct Catalog {
    pub pool: Pool,
    mdc: Option<(MdcId, Arc<Mdc>)>,
    st: Mutex<State>,
    /// Open streams by name.
    pub open: Mutex<BTreeMap<String, Weak<super::StreamInner>>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").finish_non_exhaustive()
    }
}

/// One catalog per open pool instance.
static CATALOGS: Mutex<Vec<(uuid::Uuid, Weak<Catalog>)>> = Mutex::new(Vec::new());

fn catalog_err(e: impl Into<String>) -> Error {
    StreamError::Catalog(e.into()).into()
}

/// Whether `e` says the object is gone.
pub fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Object(ObjectError::NotFound(_)))
}

impl Catalog {
    /// The catalog of `pool`; `create`: make the catalog MDC when the pool
    /// has none yet (else a pool without one gets an empty catalog).
    pub fn get(pool: &Pool, create: bool) -> Result<Arc<Catalog>> {
        let mut all = lock(&CATALOGS);
        all.retain(|(_, w)| w.strong_count() > 0);
        let uuid = pool.uuid();
        for (u, w) in all.iter() {
            let Some(c) = w.upgrade() else { continue };
            if *u != uuid {
                continue;
            }
            // The same pool instance: the pool hands out one handle per MDC.
            match &c.mdc {
                Some((id, m)) => {
                    if let Ok(m2) = pool.mdc_open(*id) {
                        if Arc::ptr_eq(m, &m2) {
                            return Ok(c);
                        }
                    }
                }
                None if !create && Arc::ptr_eq(&c.pool.root_mdc()?, &pool.root_mdc()?) => {
                    return Ok(c);
                }
                None => {}
            }
        }
        let c = Arc::new(Catalog::load(pool, create)?);
        all.push((uuid, Arc::downgrade(&c)));
        Ok(c)
    }

    fn load(pool: &Pool, create: bool) -> Result<Catalog> {
        let root = pool.root_mdc()?;
        let mut found = None;
        let mut rd = root.reader()?;
        while let Some(r) = rd.next_record() {
            let (_, rec) = r?;
            if let Some(id) = decode_root(&rec) {
                found = Some(id.map_err(catalog_err)?);
            }
        }
        drop(rd);
        let mut st = State::default();
        let mdc = match found {
            Some(raw) => {
                let id = ObjectId::from_raw(raw)
                    .and_then(|o| MdcId::try_from(o).ok())
                    .ok_or_else(|| {
                        catalog_err(format!("root record names {raw:#x}, not an MDC"))
                    })?;
                let m = pool.mdc_open(id)?;
                let mut rd = m.reader()?;
                while let Some(r) = rd.next_record() {
                    let (lsn, rec) = r?;
                    let c = CatRecord::decode(&rec)
                        .map_err(|e| catalog_err(format!("record {}: {e}", lsn.0)))?;
                    st.apply(&c)
                        .map_err(|e| catalog_err(format!("record {}: {e}", lsn.0)))?;
                }
                drop(rd);
                Some((id, m))
            }
            None if create && !pool.is_read_only() => {
                let id = pool.mdc_alloc(MediaClass::Capacity, CATALOG_BYTES)?;
                pool.mdc_commit(id)?;
                root.append(&encode_root(id.object_id().raw()), true)?;
                Some((id, pool.mdc_open(id)?))
            }
            None => None,
        };
        let c = Catalog {
            pool: pool.clone(),
            mdc,
            st: Mutex::new(st),
            open: Mutex::new(BTreeMap::new()),
        };
        // Leftovers of crashes: seals started and not finished (their
        // mblock, committed or not), spare logs of deleted streams, tails
        // already sealed.
        if !pool.is_read_only() && c.mdc.is_some() {
            let mut g = lock(&c.st);
            for m in g.by_no.values_mut() {
                for (mblock, _) in std::mem::take(&mut m.pending) {
                    c.drop_object(mblock);
                }
            }
            for id in std::mem::take(&mut g.garbage) {
                c.drop_object(id);
            }
        }
        Ok(c)
    }

    /// Delete an object that is garbage, if it still exists (best effort:
    /// a failure leaves it for a later open).
    pub fn drop_object(&self, raw: u64) {
        let Some(id) = ObjectId::from_raw(raw) else {
            return;
        };
        let r = if let Ok(b) = MblockId::try_from(id) {
            match self.pool.mblock_delete(b) {
                Err(Error::Object(ObjectError::NotCommitted(_))) => self.pool.mblock_abort(b),
                r => r,
            }
        } else if let Ok(l) = MlogId::try_from(id) {
            match self.pool.mlog_delete(l) {
                Err(Error::Object(ObjectError::NotCommitted(_))) => self.pool.mlog_abort(l),
                r => r,
            }
        } else {
            Ok(())
        };
        match r {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => tracing::warn!("stream catalog: deleting {id}: {e}"),
        }
    }

    /// Append `rec` durably and apply it.
    pub fn log(&self, rec: CatRecord) -> Result<()> {
        let Some((_, mdc)) = &self.mdc else {
            return Err(catalog_err("the pool has no stream catalog"));
        };
        let mut g = lock(&self.st);
        // Applied to a copy first: a record that does not apply is never
        // written, and a failed append leaves the state as it was.
        let mut next = State {
            next_no: g.next_no,
            by_no: g.by_no.clone(),
            garbage: Vec::new(),
        };
        next.apply(&rec).map_err(catalog_err)?;
        mdc.append(&rec.encode(), true)?;
        next.garbage.clear();
        *g = next;
        let u = mdc.usage();
        if u.len > u.capacity / 2 {
            let snap = g.snapshot();
            mdc.cstart()?;
            for r in &snap {
                if let Err(e) = mdc.append(&r.encode(), false) {
                    let _ = mdc.cabort();
                    return Err(e.into());
                }
            }
            mdc.cend()?;
        }
        Ok(())
    }

    /// The catalog MDC.
    pub fn mdc_id(&self) -> Option<MdcId> {
        self.mdc.as_ref().map(|m| m.0)
    }

    /// A new stream number.
    pub fn next_no(&self) -> u64 {
        lock(&self.st).next_no
    }

    /// The stream named `name`.
    pub fn meta(&self, name: &str) -> Option<Meta> {
        lock(&self.st)
            .by_no
            .values()
            .find(|m| m.name == name)
            .cloned()
    }

    /// Every stream, by name.
    pub fn all(&self) -> Vec<Meta> {
        let mut v: Vec<Meta> = lock(&self.st).by_no.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}
