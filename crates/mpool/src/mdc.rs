//! Metadata containers: a pair of mlogs with compaction.
//!
//! An [`Mdc`] keeps a client's metadata in one of two mlogs (the *active*
//! log). To compact, the client calls [`Mdc::cstart`] (the other log is
//! erased with a generation above the active one's and becomes the log that
//! appends go to), appends its compacted state, and calls [`Mdc::cend`],
//! which appends an end-of-compaction marker (CEND) and syncs. From then on
//! the new log is the active one.
//!
//! Every MDC record is one mlog record: a one-byte tag (`0x44` 'D' for
//! client data, `0x43` 'C' followed by `MDCCEND1` for the marker) and the
//! client's bytes. [`Mdc::open`] picks the active log: of the logs that hold
//! a CEND marker, the one with the higher generation. A log without a marker
//! is an unfinished compaction (or an erased one) and never wins, so a crash
//! at any point of a compaction leaves exactly the old state or exactly the
//! new one. Open then erases the other log if it holds anything.
// Items here that only the tooling of the `internals` feature uses (the
// benchmarks' raw engine runs, the crash tests, the fuzz targets) are not
// dead code in a build without it.
#![cfg_attr(not(feature = "internals"), allow(dead_code, unused_imports))]

use crate::dev::Device;
use crate::io::IoReq;
use crate::mlog::{Lsn, Mlog, MlogError, MlogReader, StagedWrite};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

/// Tag of a client record.
pub const TAG_DATA: u8 = 0x44;
/// Tag of the end-of-compaction marker.
pub const TAG_CEND: u8 = 0x43;
/// The bytes of an end-of-compaction marker record.
pub const CEND_RECORD: &[u8; 9] = b"CMDCCEND1";

/// Errors of metadata containers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MdcError {
    /// An error of one of the two logs.
    #[error(transparent)]
    Mlog(#[from] MlogError),
    /// Neither log holds a completed state.
    #[error("not an MDC: neither log holds an end-of-compaction marker ({reason})")]
    NotAnMdc {
        /// What was found.
        reason: String,
    },
    /// A record of the active log has an unknown tag.
    #[error("bad MDC record {index} in log {log}: {reason}")]
    BadRecord {
        /// Mlog id of the log.
        log: u64,
        /// Index of the record in the log.
        index: u64,
        /// What is wrong.
        reason: String,
    },
    /// `cend` without `cstart`, or `cstart` twice.
    #[error("compaction protocol: {0}")]
    Protocol(&'static str),
}

/// Result of MDC operations.
pub type Result<T, E = MdcError> = std::result::Result<T, E>;

#[derive(Debug)]
struct State {
    /// Index of the log appends go to.
    cur: usize,
    /// Compaction started and not ended.
    compacting: bool,
    /// Compactions erase the other log mirrored (docs/format.md, "Mirrored logs").
    mirror: bool,
}

/// A record appended by [`Mdc::append_written`]: written, not yet known
/// durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenRecord {
    /// Which of the two logs it went to.
    log: usize,
    /// Its place in that log.
    lsn: Lsn,
}

/// A record appended by [`Mdc::stage_written`], to be written by the
/// caller: [`StagedRecord::requests`], then [`StagedRecord::done`].
#[derive(Debug)]
#[must_use = "the log writes nothing until `done` reports the write"]
pub struct StagedRecord<'a> {
    log: usize,
    w: StagedWrite<'a>,
}

impl StagedRecord<'_> {
    /// The writes that put the record on the device.
    pub fn requests(&self) -> Vec<IoReq> {
        self.w.requests()
    }

    /// Report those writes as completed ([`StagedWrite::done`]): the
    /// record is written, durable after a device flush that begins after
    /// this returns ([`Mdc::note_flushed`]).
    pub fn done(self, completed: &mut [IoReq]) -> Result<WrittenRecord> {
        let log = self.log;
        let lsn = self.w.done(completed)?;
        Ok(WrittenRecord { log, lsn })
    }
}

/// A metadata container. `Send + Sync`; the client serializes compaction
/// (`cstart` .. `cend`) with its own appends.
#[derive(Debug)]
pub struct Mdc {
    logs: [Mlog; 2],
    st: Mutex<State>,
}

/// Space use of the log appends go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MdcUsage {
    /// Bytes in use.
    pub len: u64,
    /// Bytes available in total.
    pub capacity: u64,
    /// Records in the log (markers included).
    pub records: u64,
}

fn log_ids(id: u64) -> [u64; 2] {
    [id, !id]
}

/// What a log holds, for the choice of the active log.
struct Census {
    has_cend: bool,
    records: u64,
    err: Option<MlogError>,
}

fn census(log: &Mlog) -> Census {
    let mut c = Census {
        has_cend: false,
        records: 0,
        err: None,
    };
    let rd = match log.reader() {
        Ok(r) => r,
        Err(e) => {
            c.err = Some(e);
            return c;
        }
    };
    for r in rd {
        match r {
            Ok(rec) => {
                c.records += 1;
                if rec.as_slice() == CEND_RECORD {
                    c.has_cend = true;
                }
            }
            Err(e) => {
                c.err = Some(e);
                break;
            }
        }
    }
    c
}

impl Mdc {
    internals_pub! {
        /// Create an MDC on two extents of `dev`: log A holds an empty state
        /// (just a marker), log B is empty.
        fn create(
            dev: Arc<dyn Device>,
            extent_a: Range<u64>,
            extent_b: Range<u64>,
            id: u64,
        ) -> Result<Mdc> {
            Mdc::create_with(dev, extent_a, extent_b, id, false)
        }
    }

    internals_pub! {
        /// [`Mdc::create`], with both logs mirrored or not (and compactions
        /// keep the choice).
        fn create_with(
            dev: Arc<dyn Device>,
            extent_a: Range<u64>,
            extent_b: Range<u64>,
            id: u64,
            mirrored: bool,
        ) -> Result<Mdc> {
            let ids = log_ids(id);
            let b = Mlog::create_with(dev.clone(), extent_b, ids[1], mirrored)?;
            let a = Mlog::create_with(dev, extent_a, ids[0], mirrored)?;
            a.append(CEND_RECORD, true)?;
            Ok(Mdc {
                logs: [a, b],
                st: Mutex::new(State {
                    cur: 0,
                    compacting: false,
                    mirror: mirrored,
                }),
            })
        }
    }

    internals_pub! {
        /// Open an MDC: pick the active log, erase the other if it holds
        /// anything (not on a read-only device: see [`Mdc::open_with`]).
        fn open(
            dev: Arc<dyn Device>,
            extent_a: Range<u64>,
            extent_b: Range<u64>,
            id: u64,
        ) -> Result<Mdc> {
            let read_only = dev.info().read_only;
            Mdc::open_with(dev, extent_a, extent_b, id, read_only)
        }
    }

    internals_pub! {
        /// Open an MDC; `read_only`: write nothing. The inactive log is then
        /// left as it is (a compaction's old log, or an unfinished
        /// compaction's new one): the open rule never reads it, and the
        /// next read-write open erases it. A read-only open must not write,
        /// and its device may refuse writes.
        fn open_with(
            dev: Arc<dyn Device>,
            extent_a: Range<u64>,
            extent_b: Range<u64>,
            id: u64,
            read_only: bool,
        ) -> Result<Mdc> {
            let ids = log_ids(id);
            let a = Mlog::open(dev.clone(), extent_a, ids[0]);
            let b = Mlog::open(dev, extent_b, ids[1]);
            // A log without a valid header can only be the one being erased.
            let (a, b) = match (a, b) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return Err(e.into()),
            };
            let logs = [a, b];
            let cs = [census(&logs[0]), census(&logs[1])];
            let active = match (cs[0].has_cend, cs[1].has_cend) {
                (true, true) => {
                    if logs[1].gen() > logs[0].gen() {
                        1
                    } else {
                        0
                    }
                }
                (true, false) => 0,
                (false, true) => 1,
                (false, false) => {
                    let [c0, c1] = cs;
                    if let Some(e) = c0.err.or(c1.err) {
                        return Err(e.into());
                    }
                    return Err(MdcError::NotAnMdc {
                        reason: format!(
                            "log A gen {} with {} records, log B gen {} with {} records",
                            logs[0].gen(),
                            c0.records,
                            logs[1].gen(),
                            c1.records
                        ),
                    });
                }
            };
            let other = 1 - active;
            if !read_only
                && (cs[other].records > 0
                    || cs[other].err.is_some()
                    || logs[other].corruption().is_some())
            {
                let g = logs[active].gen().saturating_add(1);
                logs[other].erase(g)?;
            }
            let mirror = logs[active].is_mirrored();
            Ok(Mdc {
                logs,
                st: Mutex::new(State {
                    cur: active,
                    compacting: false,
                    mirror,
                }),
            })
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::lock::lock(&self.st)
    }

    /// A damaged header copy of the active log (see [`Mlog::header_damage`]).
    pub fn header_damage(&self) -> Option<(u8, String)> {
        self.cur().header_damage()
    }

    /// Rewrite a damaged header copy of the active log (see
    /// [`Mlog::repair_header`]).
    pub fn repair_header(&self) -> Result<Option<(u8, String)>> {
        Ok(self.cur().repair_header()?)
    }

    fn cur(&self) -> &Mlog {
        let i = self.lock().cur;
        &self.logs[i]
    }

    /// Append a client record (durable on return with `sync`).
    pub fn append(&self, rec: &[u8], sync: bool) -> Result<Lsn> {
        Ok(self.cur().append_v(&[&[TAG_DATA], rec], sync)?)
    }

    /// Append a client record and write it now without flushing the device
    /// (see [`Mlog::append_written`]): `None`, nothing appended, when the
    /// active log is busy. The record becomes durable with the next flush
    /// of its device: report one that began after this returned with
    /// [`Mdc::note_flushed`], or make it durable with [`Mdc::sync`] or any
    /// later sync append.
    pub fn append_written(&self, rec: &[u8]) -> Result<Option<WrittenRecord>> {
        let log = self.lock().cur;
        Ok(self.logs[log]
            .append_written(&[&[TAG_DATA], rec])?
            .map(|lsn| WrittenRecord { log, lsn }))
    }

    /// As [`Mdc::append_written`], but the caller writes the record, in a
    /// batch of its own (see [`StagedWrite`]): `None`, nothing appended,
    /// when the active log is busy.
    pub fn stage_written(&self, rec: &[u8]) -> Result<Option<StagedRecord<'_>>> {
        self.stage_written_many(&[rec])
    }

    /// As [`Mdc::stage_written`] with several records, in order, in one
    /// flush set; none is appended when one is refused
    /// ([`Mlog::stage_written_many`]).
    pub fn stage_written_many(&self, recs: &[&[u8]]) -> Result<Option<StagedRecord<'_>>> {
        let log = self.lock().cur;
        let parts: Vec<[&[u8]; 2]> = recs.iter().map(|r| [&[TAG_DATA][..], r]).collect();
        let records: Vec<&[&[u8]]> = parts.iter().map(|p| &p[..]).collect();
        Ok(self.logs[log]
            .stage_written_many(&records)?
            .map(|w| StagedRecord { log, w }))
    }

    /// Report a device flush that began after [`Mdc::append_written`]
    /// returned `w`: the record (and those written with it) is durable.
    pub fn note_flushed(&self, w: WrittenRecord) {
        if let Some(l) = self.logs.get(w.log) {
            l.note_flushed(w.lsn);
        }
    }

    /// Make every appended record durable.
    pub fn sync(&self) -> Result<()> {
        Ok(self.cur().sync()?)
    }

    /// [`Mlog::open_tail`] of the active log: records from it on were in
    /// the flush set in flight, if any, when the MDC was last closed or
    /// crashed. `None` once a compaction has made a new log active.
    pub fn open_tail(&self) -> Option<Lsn> {
        self.cur().open_tail()
    }

    /// Space use of the log appends go to.
    pub fn usage(&self) -> MdcUsage {
        let l = self.cur();
        MdcUsage {
            len: l.len(),
            capacity: l.capacity(),
            records: l.records(),
        }
    }

    /// Which log (0 = A, 1 = B) appends go to, and whether a compaction is open.
    pub fn active(&self) -> (usize, bool) {
        let g = self.lock();
        (g.cur, g.compacting)
    }

    /// Whether the active log writes every record twice.
    pub fn is_mirrored(&self) -> bool {
        self.cur().is_mirrored()
    }

    /// Whether compactions from now on make the new log mirrored. An MDC
    /// opened with a mirrored active log keeps mirroring; a plain one
    /// becomes mirrored at its next compaction once this is set.
    pub fn set_mirror(&self, mirror: bool) {
        self.lock().mirror = mirror;
    }

    /// Start a compaction: erase the other log with a generation above the
    /// active one's (mirrored or not, see [`Mdc::set_mirror`]); appends go
    /// to it from now on. The client then appends its compacted state and
    /// calls [`Mdc::cend`].
    pub fn cstart(&self) -> Result<()> {
        let mut g = self.lock();
        if g.compacting {
            return Err(MdcError::Protocol("cstart during a compaction"));
        }
        let cur = &self.logs[g.cur];
        cur.sync()?;
        let other = 1 - g.cur;
        self.logs[other].erase_with(cur.gen().saturating_add(1), g.mirror)?;
        g.cur = other;
        g.compacting = true;
        Ok(())
    }

    /// End a compaction: append the end-of-compaction marker and sync. From
    /// then on (and after any crash) the new log is the active one.
    pub fn cend(&self) -> Result<()> {
        let mut g = self.lock();
        if !g.compacting {
            return Err(MdcError::Protocol("cend without cstart"));
        }
        self.logs[g.cur].append(CEND_RECORD, true)?;
        g.compacting = false;
        Ok(())
    }

    /// Abandon a compaction before [`Mdc::cend`] was tried: appends go to
    /// the old log again, which holds everything it did before `cstart`
    /// (the new log, without its end marker, is never taken at open and is
    /// erased by the next `cstart`). After a failed `cend` the marker may
    /// be on the media, so this is refused then.
    pub fn cabort(&self) -> Result<()> {
        let mut g = self.lock();
        if !g.compacting {
            return Err(MdcError::Protocol("cabort without cstart"));
        }
        g.cur = 1 - g.cur;
        g.compacting = false;
        Ok(())
    }

    internals_pub! {
        /// [`Mlog::last_flush_set`] of the active log: the device bytes its
        /// last flush set wrote. For tests that damage it.
        fn last_flush_set(&self) -> Result<Option<Range<u64>>> {
            Ok(self.cur().last_flush_set()?)
        }
    }

    /// A reader over the client records of the log appends go to.
    pub fn reader(&self) -> Result<MdcReader<'_>> {
        let l = self.cur();
        Ok(MdcReader {
            inner: l.reader()?,
            log: l.id(),
            index: 0,
        })
    }
}

/// An iterator over an MDC's client records (markers skipped).
pub struct MdcReader<'a> {
    inner: MlogReader<'a>,
    log: u64,
    index: u64,
}

impl MdcReader<'_> {
    /// Back to the first record.
    pub fn rewind(&mut self) {
        self.inner.rewind();
        self.index = 0;
    }
}

impl MdcReader<'_> {
    /// The next client record with its position (the [`Lsn`] of its mlog
    /// record in the active log).
    pub fn next_record(&mut self) -> Option<Result<(Lsn, Vec<u8>)>> {
        loop {
            let (lsn, rec) = match self.inner.next_record()? {
                Ok(r) => r,
                Err(e) => return Some(Err(e.into())),
            };
            let index = self.index;
            self.index += 1;
            match rec.split_first() {
                Some((&TAG_DATA, rest)) => return Some(Ok((lsn, rest.to_vec()))),
                _ if rec.as_slice() == CEND_RECORD => continue,
                _ => {
                    return Some(Err(MdcError::BadRecord {
                        log: self.log,
                        index,
                        reason: "unknown record tag".into(),
                    }))
                }
            }
        }
    }
}

impl Iterator for MdcReader<'_> {
    type Item = Result<Vec<u8>>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().map(|r| r.map(|(_, rec)| rec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::{CrashMode, FaultDevice};

    fn read(m: &Mdc) -> Vec<Vec<u8>> {
        m.reader().unwrap().map(|r| r.unwrap()).collect()
    }

    #[test]
    fn abandoned_compaction_goes_back_to_the_old_log() {
        let f = Arc::new(FaultDevice::new(1 << 20, 512));
        let d: Arc<dyn Device> = f.clone();
        let (a, b) = (0..(256 << 10), (256 << 10)..(512 << 10));
        let m = Mdc::create(d.clone(), a.clone(), b.clone(), 12).unwrap();
        assert!(matches!(m.cabort(), Err(MdcError::Protocol(_))));
        for i in 0..5u8 {
            m.append(&[i; 30], true).unwrap();
        }
        let before = m.active();
        m.cstart().unwrap();
        m.append(b"compacted, then abandoned", true).unwrap();
        m.cabort().unwrap();
        assert!(matches!(m.cabort(), Err(MdcError::Protocol(_))));
        assert!(matches!(m.cend(), Err(MdcError::Protocol(_))));
        assert_eq!(m.active(), before, "appends go to the old log again");
        m.append(b"after", true).unwrap();
        let mut want: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 30]).collect();
        want.push(b"after".to_vec());
        assert_eq!(read(&m), want);
        // Across a crash (unflushed writes lost or kept) the old log, with
        // what came after the abandoned compaction, is what opens.
        drop(m);
        for mode in [CrashMode::DropAll, CrashMode::KeepAll] {
            let d2: Arc<dyn Device> = Arc::new(f.reboot(mode));
            let m = Mdc::open(d2, a.clone(), b.clone(), 12).unwrap();
            assert_eq!(read(&m), want);
            assert_eq!(m.active(), before);
        }
        // A later compaction reuses the abandoned log and completes.
        let m = Mdc::open(d, a, b, 12).unwrap();
        m.cstart().unwrap();
        m.append(b"compacted", true).unwrap();
        m.cend().unwrap();
        assert_eq!(read(&m), vec![b"compacted".to_vec()]);
    }

    #[test]
    fn compaction_switches_logs() {
        let f = Arc::new(FaultDevice::new(1 << 20, 512));
        let d: Arc<dyn Device> = f.clone();
        let (a, b) = (0..(256 << 10), (256 << 10)..(512 << 10));
        let m = Mdc::create(d.clone(), a.clone(), b.clone(), 11).unwrap();
        for i in 0..10u8 {
            m.append(&[i; 20], i % 2 == 0).unwrap();
        }
        m.sync().unwrap();
        assert_eq!(read(&m).len(), 10);
        m.cstart().unwrap();
        assert!(matches!(m.cstart(), Err(MdcError::Protocol(_))));
        m.append(b"compacted", false).unwrap();
        m.cend().unwrap();
        m.append(b"later", true).unwrap();
        assert_eq!(read(&m), vec![b"compacted".to_vec(), b"later".to_vec()]);
        assert_eq!(m.active(), (1, false));
        drop(m);
        let m = Mdc::open(d.clone(), a.clone(), b.clone(), 11).unwrap();
        assert_eq!(read(&m), vec![b"compacted".to_vec(), b"later".to_vec()]);
        assert!(matches!(m.cend(), Err(MdcError::Protocol(_))));
        // Unfinished compaction: the old state stays.
        m.cstart().unwrap();
        m.append(b"half", true).unwrap();
        drop(m);
        let m = Mdc::open(Arc::new(f.reboot(CrashMode::KeepAll)), a, b, 11).unwrap();
        assert_eq!(read(&m), vec![b"compacted".to_vec(), b"later".to_vec()]);
        assert_eq!(m.active(), (1, false));
        assert!(m.usage().len > 0);
    }

    #[test]
    fn a_plain_mdc_becomes_mirrored_at_its_next_compaction() {
        let f = Arc::new(FaultDevice::new(1 << 20, 512));
        let d: Arc<dyn Device> = f.clone();
        let (a, b) = (0..(256 << 10), (256 << 10)..(512 << 10));
        let m = Mdc::create(d.clone(), a.clone(), b.clone(), 13).unwrap();
        m.append(b"one", true).unwrap();
        assert!(!m.is_mirrored());
        drop(m);
        let m = Mdc::open(d.clone(), a.clone(), b.clone(), 13).unwrap();
        m.set_mirror(true);
        m.cstart().unwrap();
        m.append(b"one", false).unwrap();
        m.cend().unwrap();
        assert!(m.is_mirrored());
        m.append(b"two", true).unwrap();
        drop(m);
        // It stays mirrored across opens and compactions.
        let m = Mdc::open(d.clone(), a.clone(), b.clone(), 13).unwrap();
        assert!(m.is_mirrored());
        assert_eq!(read(&m), vec![b"one".to_vec(), b"two".to_vec()]);
        m.cstart().unwrap();
        m.append(b"three", false).unwrap();
        m.cend().unwrap();
        assert!(m.is_mirrored());
        drop(m);
        let m = Mdc::create_with(d.clone(), a.clone(), b.clone(), 14, true).unwrap();
        assert!(m.is_mirrored());
        drop(m);
        let m = Mdc::open(d, a, b, 14).unwrap();
        assert!(m.is_mirrored());
        assert!(read(&m).is_empty());
    }

    #[test]
    fn open_of_garbage_is_an_error() {
        let d: Arc<dyn Device> = Arc::new(FaultDevice::new(1 << 20, 512));
        assert!(Mdc::open(d, 0..(256 << 10), (256 << 10)..(512 << 10), 1).is_err());
    }
}
