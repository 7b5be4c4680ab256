//! Reserved mblocks and sealed commits (see `seal.rs`): reserve, commit
//! by a seal, adopt, and, after a crash, find what was sealed.

use super::lifecycle::data_err;
use super::object::{ObjectProps, Pending};
use super::seal::{self, Reservation, Seal, State};
use super::{lock, rlock, Catalog};
use crate::error::{Error, ObjectError, Result};
use crate::format::record::CatalogRecord;
use crate::format::superblock::MediaClass;
use crate::objid::{ObjType, ObjectId};
use std::sync::atomic::Ordering;

impl Catalog {
    /// Allocate `n` mblocks in `class` and reserve them for `owner`: their
    /// reserve records are durable on return, so each can be committed by
    /// [`Self::mblock_commit_sealed`]. They are written and aborted as any
    /// uncommitted mblock; a crash keeps their zones until their owner
    /// finds out what they hold ([`Self::mblock_recover`]). Format version
    /// 3 only.
    pub(crate) fn mblock_reserve(
        &self,
        class: MediaClass,
        owner: u64,
        n: usize,
    ) -> Result<Vec<ObjectId>> {
        if !self.inner.features.block_csums() {
            return Err(Error::InvalidArgument(format!(
                "reserved mblocks need format version 3; this pool is version {}",
                self.inner.features.version
            )));
        }
        let mut ids: Vec<ObjectId> = Vec::with_capacity(n);
        let mut shards: Vec<u8> = Vec::new();
        let r = (|| -> Result<()> {
            for _ in 0..n {
                let id = self.mblock_alloc(class)?;
                ids.push(id);
                let zone = match self.pending(id).as_deref().map(lock).as_deref_mut() {
                    Some(Some(Pending::Mblock { zone, ws, .. })) => {
                        // Room for a seal of one sector in the buffer the
                        // content waits in.
                        ws.seal_room = u64::from(ws.sector);
                        *zone
                    }
                    _ => return Err(ObjectError::NotFound(id).into()),
                };
                let nonce = rand::random::<u64>();
                let s = self.inner.shard(id)?;
                let rec = CatalogRecord::MblockReserve {
                    id,
                    class,
                    zone,
                    owner,
                    nonce,
                };
                self.inner.log(s, rec, false, |_objs| {
                    s.any_reserved.store(true, Ordering::Relaxed);
                    lock(&s.reserved).insert(
                        id.raw(),
                        Reservation {
                            class,
                            zone,
                            owner,
                            nonce,
                            state: State::Open,
                        },
                    );
                })?;
                if !shards.contains(&s.index) {
                    shards.push(s.index);
                }
            }
            for s in self
                .inner
                .shards
                .iter()
                .filter(|s| shards.contains(&s.index))
            {
                self.inner.sync_shard(s, false)?;
            }
            Ok(())
        })();
        if let Err(e) = r {
            for id in ids {
                let _ = self.abort(id);
            }
            return Err(e);
        }
        Ok(ids)
    }

    /// Commit reserved mblock `id` by a seal carrying `client` (at most
    /// [`seal::CLIENT_MAX`] bytes), then one flush of its device: content
    /// held whole (at most [`super::mblock::HOLD_MAX`] bytes) goes in one
    /// write with its checksum table and the seal; longer content's last
    /// write and the seal, in the zone's seal slot, in one batch. No
    /// metadata record is written: the mblock is committed and readable on
    /// return, and its seal is what makes it so after a crash until its
    /// owner adopts it ([`Self::mblock_adopt`]). Refused
    /// (`InvalidArgument`, nothing written) for an mblock that is not
    /// reserved and open, whose content, table and seal do not fit its
    /// zone, or a `client` too long; a device error leaves it to abort,
    /// its outcome known at the next open.
    pub(crate) fn mblock_commit_sealed(&self, id: ObjectId, client: &[u8]) -> Result<ObjectProps> {
        Self::expect_type(id, ObjType::Mblock)?;
        self.inner.check_writable()?;
        if client.len() > seal::CLIENT_MAX {
            return Err(Error::InvalidArgument(format!(
                "a seal carries at most {} bytes, not {}",
                seal::CLIENT_MAX,
                client.len()
            )));
        }
        let s = self.inner.shard(id)?;
        let nonce = match lock(&s.reserved).get(&id.raw()) {
            Some(r) if r.state == State::Open => r.nonce,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "mblock {id} is not reserved and uncommitted"
                )))
            }
        };
        let Some(p) = self.pending(id) else {
            return Err(self.gone(id)?);
        };
        let mut g = lock(&p);
        let Some(Pending::Mblock { class, zone, ws }) = g.as_mut() else {
            return Err(self.gone(id)?);
        };
        let (class, zone) = (*class, *zone);
        let sector = ws.sector as usize;
        let slot = seal::slot(sector as u64, ws.zone);
        let made = ws
            .sealed_request(slot, |len, shift, table_crc| {
                let s = Seal {
                    len,
                    shift,
                    table_crc,
                    client: client.to_vec(),
                };
                seal::encode(id, nonce, &s, sector)
            })
            .map_err(|e| data_err(id, e))?;
        let Some((reqs, table_crc, whole)) = made else {
            return Err(Error::InvalidArgument(format!(
                "mblock {id} cannot be committed by a seal: its content ({} bytes), \
                 checksum table and seal do not fit its zone",
                ws.written
            )));
        };
        let dev = self.inner.class(class)?.dev.as_ref();
        // The content's last write (if any) first, the seal in its slot
        // last (when apart); one batch.
        let mut done = dev.submit_depth(reqs, usize::MAX);
        let seal_done = if whole { None } else { done.pop() };
        let mut written = if done.is_empty() {
            Ok(())
        } else {
            ws.finish_done(dev, &mut done).map_err(|e| data_err(id, e))
        };
        if let (Ok(()), Some(mut r)) = (&written, seal_done) {
            let (kind, off) = (r.kind, r.offset);
            written = r
                .take_result()
                .map_err(|e| crate::dev::from_req_err(dev.info(), kind, off, e).into());
        }
        let flushed = written.and_then(|()| dev.flush().map_err(Error::from));
        if let Err(e) = flushed {
            // The seal may be on the media: the zone is not reused before
            // a reopen says (the reserve record holds it anyway).
            ws.failed = true;
            ws.hold_zone = true;
            return Err(e);
        }
        let (obj, _) = self.commit_record(id, class, zone, ws, table_crc, false)?;
        install_sealed(s, id, obj);
        self.commit_done(id, s, false, &mut g);
        drop(g);
        self.inner.pending.remove(id.raw());
        self.props(id)
    }

    /// Adopt sealed mblocks: each gets its commit record (type 8),
    /// appended without a flush of its own (durable with its MDC's next
    /// flush, within the background thread's tick when idle), and its
    /// seal no longer counts. Call once what the seals carried is durable
    /// elsewhere: a crash before the commit records are durable leaves
    /// the mblocks sealed, and their owner finds them again. mblocks that
    /// are not sealed (deleted meanwhile, adopted already) are skipped.
    pub(crate) fn mblock_adopt(&self, ids: &[ObjectId]) -> Result<()> {
        for &id in ids {
            let s = self.inner.shard(id)?;
            // One at a time with a delete of the same mblock, so that its
            // record never follows the delete's.
            let _one = lock(&s.adopting);
            let sealed = matches!(
                lock(&s.reserved).get(&id.raw()),
                Some(r) if r.state == State::Sealed
            );
            if !sealed {
                continue;
            }
            let Some(o) = rlock(&s.objs).get(&id.raw()).copied() else {
                continue;
            };
            self.inner.log(s, o.record(id), false, |_objs| {
                lock(&s.reserved).remove(&id.raw());
            })?;
            s.unsealed.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The reserved mblocks of `owner` found at open that nobody has
    /// looked at yet ([`Self::mblock_recover`]), sorted.
    pub(crate) fn mblock_reserved(&self, owner: u64) -> Vec<ObjectId> {
        let mut out: Vec<ObjectId> = self
            .inner
            .shards
            .iter()
            .flat_map(|s| {
                lock(&s.reserved)
                    .iter()
                    .filter(|(_, r)| r.owner == owner && r.state == State::Unknown)
                    .filter_map(|(raw, _)| ObjectId::from_raw(*raw))
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort();
        out
    }

    /// What reserved mblock `id`, found at open, holds: `Some(client)`
    /// when its sealed commit was whole on the media (it is committed and
    /// readable now, sealed until adopted), `None` when not (it is
    /// deleted, its zone free once the delete is durable; a read-only
    /// pool leaves it as it is). A read error is returned, and the
    /// mblock stays as it was.
    pub(crate) fn mblock_recover(&self, id: ObjectId) -> Result<Option<Vec<u8>>> {
        Self::expect_type(id, ObjType::Mblock)?;
        let s = self.inner.shard(id)?;
        let Some(r) = lock(&s.reserved).get(&id.raw()).copied() else {
            return Err(ObjectError::NotFound(id).into());
        };
        if r.state != State::Unknown {
            return Err(Error::InvalidArgument(format!(
                "mblock {id} was reserved in this run, not found at open"
            )));
        }
        let c = self.inner.class(r.class)?;
        let found = seal::find(c.dev.as_ref(), c.off(r.zone), c.zone_size, id, r.nonce)?;
        match found {
            Some(seal) => {
                let obj = super::object::Obj {
                    zone: r.zone,
                    a: seal.len,
                    b: seal.table_crc,
                    class: r.class,
                    shift: seal.shift,
                };
                install_sealed(s, id, obj);
                Ok(Some(seal.client))
            }
            None => {
                if !self.inner.read_only {
                    self.drop_reserved(id)?;
                }
                Ok(None)
            }
        }
    }

    /// Delete reserved mblock `id`, uncommitted: a delete record, durable
    /// with its MDC's next flush, after which its zone is free.
    pub(super) fn drop_reserved(&self, id: ObjectId) -> Result<()> {
        let s = self.inner.shard(id)?;
        self.inner
            .log(s, CatalogRecord::Delete { id }, false, |_objs| {
                // Under the append's exclusion of compaction: a compaction
                // either sees the reservation here or the delete in its
                // old log.
                if let Some(r) = lock(&s.reserved).remove(&id.raw()) {
                    lock(&s.awaiting).push((r.class, r.zone, 1));
                }
            })
    }

    /// Whether mblock `id` is reserved (in any state).
    pub(super) fn is_reserved(&self, id: ObjectId) -> bool {
        self.inner.shard(id).is_ok_and(|s| {
            s.any_reserved.load(Ordering::Relaxed) && lock(&s.reserved).contains_key(&id.raw())
        })
    }
}

/// Sealed mblock `id` is committed: in its MDC's table (readable), its
/// reservation marked sealed (its durable form until adopted), under the
/// table's lock, then the table's generation moved for readers' memos.
fn install_sealed(s: &super::shard::Shard, id: ObjectId, obj: super::object::Obj) {
    let mut objs = super::wlock(&s.objs);
    objs.insert(id.raw(), obj);
    if let Some(r) = lock(&s.reserved).get_mut(&id.raw()) {
        r.state = State::Sealed;
    }
    s.objs_gen.fetch_add(1, Ordering::Release);
}
