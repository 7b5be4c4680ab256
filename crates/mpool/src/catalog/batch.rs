//! Shared-flush mblock commits in one device batch: the commits' last
//! content writes, their commit records (staged in their shards' logs, one
//! flush set per shard) and callers' records for other MDCs on the same
//! device (one flush set per MDC) are submitted together, then one device
//! flush makes them all durable.
//!
//! A crash before that flush leaves any subset of the writes: replay
//! verifies the content of commits in a log's last flush set
//! (docs/format.md, "Transactions"), so a commit whose content is missing
//! is dropped. A commit record whose content write failed (or whose flush
//! failed) must not become durable in front of later flush sets, where
//! replay would take it unverified: a DELETE record follows it, and if
//! that cannot be appended the shard takes no more records until a reopen.

use super::mblock::WriteState;
use super::object::Obj;
use super::shard::{take_awaiting, Shard};
use super::{lock, rlock, wlock, Inner};
use crate::error::{Error, MetadataError, Result};
use crate::format::record::CatalogRecord;
use crate::format::superblock::MediaClass;
use crate::io::IoReq;
use crate::mdc::{Mdc, MdcError, StagedRecord, WrittenRecord};
use crate::objid::ObjectId;
use std::ops::Range;
use std::sync::atomic::Ordering;

/// Zones of deferred deletes: (class, first zone, zones).
type Zones = Vec<(MediaClass, u32, u32)>;

/// One mblock commit of [`Inner::commit_batched`].
pub(super) struct BatchCommit<'a> {
    pub(super) id: ObjectId,
    pub(super) shard: &'a Shard,
    /// Its commit record and the object it makes.
    pub(super) rec: CatalogRecord,
    pub(super) obj: Obj,
    /// Its last content write, if any ([`WriteState::finish_request`]).
    pub(super) req: Option<IoReq>,
    pub(super) ws: &'a mut WriteState,
    /// A caller's record for another MDC on the same device.
    pub(super) extra: Option<(&'a Mdc, &'a [u8])>,
}

/// What became of one commit of [`Inner::commit_batched`].
#[derive(Debug)]
pub(super) enum Batched {
    /// Not attempted: its shard's log was busy (a flush in progress, a
    /// set written unflushed, appenders waiting), full, broken, or run by
    /// an owner thread. Nothing was appended or written. Commit it the
    /// usual way.
    Busy,
    /// Attempted: the commit's outcome (durable and in the object table
    /// when `Ok`), and its extra record's: written (durable when the
    /// commit is `Ok`, maybe on the media when not), not appended (its MDC
    /// was busy), or the append's error.
    Done(
        Result<()>,
        std::result::Result<Option<WrittenRecord>, MdcError>,
    ),
}

/// An error shared by several commits, for all but the first of them.
fn shared_err(mdc: u8, e: &dyn std::fmt::Display) -> Error {
    MetadataError::Failed {
        mdc,
        reason: e.to_string(),
    }
    .into()
}

impl Inner {
    /// Commit `jobs` in one device batch and one flush (see the module
    /// docs). Every job's mblock is on the capacity device, as are the
    /// shards' logs and the extra records' MDCs. One result per job, in
    /// order.
    pub(super) fn commit_batched(&self, mut jobs: Vec<BatchCommit<'_>>) -> Vec<Batched> {
        let n = jobs.len();
        let mut out: Vec<Option<Batched>> = (0..n).map(|_| None).collect();
        if jobs.is_empty() {
            return Vec::new();
        }
        // Not attempted without a capacity device (never so in an open
        // pool): each commit then goes the usual way, and fails there.
        let Ok(dev) = self.class(MediaClass::Capacity).map(|c| c.dev.as_ref()) else {
            return jobs.iter().map(|_| Batched::Busy).collect();
        };
        // The shards, in index order (their read locks are taken in that
        // order), each with its jobs.
        let mut shards: Vec<(&Shard, Vec<usize>)> = Vec::new();
        for (i, j) in jobs.iter().enumerate() {
            match shards.iter_mut().find(|(s, _)| s.index == j.shard.index) {
                Some((_, v)) => v.push(i),
                None => shards.push((j.shard, vec![i])),
            }
        }
        shards.sort_by_key(|(s, _)| s.index);
        let encoded: Vec<Vec<u8>> = jobs.iter().map(|j| j.rec.encode()).collect();
        for (e, j) in encoded.iter().zip(&jobs) {
            // What is written is what replay will read back.
            debug_assert_eq!(CatalogRecord::decode(e).ok(), Some(j.rec));
        }
        let guards: Vec<_> = shards
            .iter()
            .map(|(s, _)| (s.owner.is_none() && s.check_broken().is_ok()).then(|| rlock(&s.mdc)))
            .collect();
        // Each shard's commit records as one staged flush set, with the
        // zones of the deferred deletes appended before them (taken first:
        // their records precede these in the log, durable with this flush).
        let mut sets: Vec<Option<(StagedRecord<'_>, Zones)>> = Vec::new();
        for ((s, idx), g) in shards.iter().zip(&guards) {
            let staged = g.as_ref().and_then(|g| {
                let awaiting = take_awaiting(s);
                let recs: Vec<&[u8]> = idx.iter().map(|&i| &encoded[i][..]).collect();
                match g.stage_written_many(&recs) {
                    Ok(Some(st)) => Some((st, awaiting)),
                    // Busy, or full (the usual way compacts).
                    Ok(None) | Err(_) => {
                        lock(&s.awaiting).extend(awaiting);
                        None
                    }
                }
            });
            if staged.is_none() {
                for &i in idx {
                    out[i] = Some(Batched::Busy);
                }
            }
            sets.push(staged);
        }
        // The extra records, one flush set per MDC.
        let mut extra_out: Vec<std::result::Result<Option<WrittenRecord>, MdcError>> =
            (0..n).map(|_| Ok(None)).collect();
        let mut extras: Vec<(&Mdc, Vec<usize>)> = Vec::new();
        for (i, j) in jobs.iter().enumerate() {
            if out[i].is_some() {
                continue;
            }
            if let Some((m, _)) = j.extra {
                match extras.iter_mut().find(|(x, _)| std::ptr::eq(*x, m)) {
                    Some((_, v)) => v.push(i),
                    None => extras.push((m, vec![i])),
                }
            }
        }
        let mut xsets: Vec<Option<StagedRecord<'_>>> = Vec::new();
        for (m, idx) in &extras {
            let recs: Vec<&[u8]> = idx
                .iter()
                .filter_map(|&i| jobs[i].extra.map(|x| x.1))
                .collect();
            xsets.push(match m.stage_written_many(&recs) {
                Ok(st) => st,
                Err(e) => {
                    // Reported once; the others append the usual way,
                    // and meet the same error there.
                    if let Some(&i) = idx.first() {
                        extra_out[i] = Err(e);
                    }
                    None
                }
            });
        }
        // One batch: the content writes, then the sets.
        let mut batch: Vec<IoReq> = Vec::new();
        let mut content_at: Vec<Option<usize>> = vec![None; n];
        for (i, j) in jobs.iter_mut().enumerate() {
            if out[i].is_none() {
                if let Some(r) = j.req.take() {
                    content_at[i] = Some(batch.len());
                    batch.push(r);
                }
            }
        }
        // A busy job's content write goes back unsent: its commit tries
        // again, and writes the content then.
        for j in jobs.iter_mut() {
            if let Some(r) = j.req.take() {
                j.ws.unsent(r);
            }
        }
        let place = |reqs: Vec<IoReq>, batch: &mut Vec<IoReq>| -> Range<usize> {
            let at = batch.len();
            batch.extend(reqs);
            at..batch.len()
        };
        let set_at: Vec<Option<Range<usize>>> = sets
            .iter()
            .map(|s| s.as_ref().map(|(st, _)| place(st.requests(), &mut batch)))
            .collect();
        let xset_at: Vec<Option<Range<usize>>> = xsets
            .iter()
            .map(|s| s.as_ref().map(|st| place(st.requests(), &mut batch)))
            .collect();
        let mut done = if batch.is_empty() {
            Vec::new()
        } else {
            dev.submit_depth(batch, usize::MAX)
        };
        // A batch that came back short (an engine bug): every request
        // past its end reads as failed.
        fn slice(done: &mut [IoReq], r: Range<usize>) -> &mut [IoReq] {
            let end = r.end.min(done.len());
            done.get_mut(r.start.min(end)..end).unwrap_or_default()
        }
        let mut content_err: Vec<Option<Error>> = (0..n).map(|_| None).collect();
        for (i, j) in jobs.iter_mut().enumerate() {
            if let Some(k) = content_at[i] {
                if let Err(e) = j.ws.finish_done(dev, slice(&mut done, k..k + 1)) {
                    content_err[i] = Some(super::lifecycle::data_err(j.id, e));
                }
            }
        }
        let mut set_done: Vec<Option<(std::result::Result<WrittenRecord, MdcError>, _)>> =
            Vec::new();
        for (set, at) in sets.into_iter().zip(&set_at) {
            set_done.push(match (set, at) {
                (Some((st, awaiting)), Some(r)) => {
                    Some((st.done(slice(&mut done, r.clone())), awaiting))
                }
                _ => None,
            });
        }
        let mut xset_done: Vec<Option<std::result::Result<WrittenRecord, MdcError>>> = Vec::new();
        for (set, at) in xsets.into_iter().zip(&xset_at) {
            xset_done.push(match (set, at) {
                (Some(st), Some(r)) => Some(st.done(slice(&mut done, r.clone()))),
                _ => None,
            });
        }
        drop(done);
        // One flush for every write that went through.
        let written = set_done.iter().flatten().any(|(r, _)| r.is_ok())
            || xset_done.iter().flatten().any(|r| r.is_ok());
        let flushed = if written {
            dev.flush().map_err(Error::from)
        } else {
            Ok(())
        };
        for ((m, idx), r) in extras.iter().zip(xset_done) {
            match r {
                Some(Ok(w)) => {
                    if flushed.is_ok() {
                        m.note_flushed(w);
                    }
                    for &i in idx {
                        extra_out[i] = Ok(Some(w));
                    }
                }
                Some(Err(e)) => {
                    // The MDC's log failed with its write.
                    if let Some(&i) = idx.first() {
                        extra_out[i] = Err(e);
                    }
                }
                // Busy (all `Ok(None)`) or its error already recorded.
                None => {}
            }
        }
        // Commits whose record was written and must be ended by a DELETE
        // record: (shard, job).
        let mut undo: Vec<(&Shard, usize)> = Vec::new();
        let mut releases = Vec::new();
        for (((s, idx), g), r) in shards.iter().zip(&guards).zip(set_done) {
            let (Some(g), Some((r, awaiting))) = (g, r) else {
                continue;
            };
            match (r, &flushed) {
                (Ok(w), Ok(())) => {
                    // Every write was done before the flush began.
                    g.note_flushed(w);
                    s.records.fetch_add(idx.len() as u64, Ordering::Relaxed);
                    s.appends.fetch_add(idx.len() as u64, Ordering::Relaxed);
                    let mut objs = wlock(&s.objs);
                    for &i in idx {
                        match content_err[i].take() {
                            None => {
                                objs.insert(jobs[i].id.raw(), jobs[i].obj);
                                // A reserved mblock committed the usual way.
                                if s.any_reserved.load(Ordering::Relaxed) {
                                    lock(&s.reserved).remove(&jobs[i].id.raw());
                                }
                                out[i] = Some(Batched::Done(Ok(()), Ok(None)));
                            }
                            Some(e) => {
                                undo.push((s, i));
                                out[i] = Some(Batched::Done(Err(e), Ok(None)));
                            }
                        }
                    }
                    s.objs_gen.fetch_add(1, Ordering::Release);
                    releases.push(awaiting);
                }
                (Ok(_), Err(e)) => {
                    s.records.fetch_add(idx.len() as u64, Ordering::Relaxed);
                    for &i in idx {
                        let e = content_err[i]
                            .take()
                            .unwrap_or_else(|| shared_err(s.index, e));
                        undo.push((s, i));
                        out[i] = Some(Batched::Done(Err(e), Ok(None)));
                    }
                    lock(&s.awaiting).extend(awaiting);
                }
                // The log failed with its write: it takes no more records.
                (Err(e), _) => {
                    let mut first = Some(s.log_error(e));
                    for &i in idx {
                        // The record may be on the media: the zone stays
                        // out of use until a reopen says what it holds.
                        jobs[i].ws.failed = true;
                        jobs[i].ws.hold_zone = true;
                        let e = first
                            .take()
                            .unwrap_or_else(|| shared_err(s.index, &"its metadata log failed"));
                        out[i] = Some(Batched::Done(Err(e), Ok(None)));
                    }
                    lock(&s.awaiting).extend(awaiting);
                }
            }
        }
        drop(guards);
        for (s, i) in undo {
            let id = jobs[i].id;
            // The zone stays out of use until a reopen says what it holds.
            jobs[i].ws.failed = true;
            jobs[i].ws.hold_zone = true;
            if let Err(d) = self.log(s, CatalogRecord::Delete { id }, true, |_| {}) {
                let _ = s.broken.set(format!(
                    "the commit of {id} was written, its content or flush failed, \
                     and its delete record could not be appended ({d})"
                ));
            }
        }
        let mut released = Ok(());
        for r in releases {
            let r = self.release(r);
            if released.is_ok() {
                released = r;
            }
        }
        if let Err(e) = released {
            // A bug (the commits are done): reported with the first one.
            let first_ok = out
                .iter_mut()
                .flatten()
                .find(|b| matches!(b, Batched::Done(Ok(()), _)));
            if let Some(Batched::Done(r, _)) = first_ok {
                *r = Err(e);
            }
        }
        for (i, x) in extra_out.into_iter().enumerate() {
            if let Some(Batched::Done(_, slot)) = &mut out[i] {
                *slot = x;
            }
        }
        for (s, _) in &shards {
            self.compact_if_due(s);
        }
        out.into_iter()
            .map(|o| o.unwrap_or(Batched::Busy))
            .collect()
    }
}
