//! `check`: verify every committed mblock against its checksums (every
//! block of a format-3 mblock, and its checksum table; the CRC recorded at
//! commit of a legacy one), reporting each damaged range, every user mlog
//! and MDC record against its own checksum, and the superblock copies.
//! What it finds replaces the pool's record of checksum mismatches (the
//! health). The pool metadata itself is verified by opening the
//! pool: every MDC record is decoded and checked at replay.

use crate::error::Error;
use crate::objid::{MblockId, MdcId, MlogId, ObjType};
use crate::pool::Pool;
use serde::Serialize;

/// One problem found by [`Pool::check`].
#[derive(Debug, Clone, Serialize)]
pub struct CheckProblem {
    /// The object (or `superblock`).
    pub object: String,
    /// What is wrong.
    pub problem: String,
}

/// One repair made to the pool since it was opened (opening read-write
/// rewrites a damaged or stale superblock copy), reported by [`Pool::check`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckRepair {
    /// What was repaired (`superblock <device>`).
    pub object: String,
    /// What was wrong and what was done.
    pub repair: String,
}

/// What [`Pool::check`] examined and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Committed mblocks verified.
    pub mblocks: u64,
    /// Bytes of mblock content read and checksummed.
    pub bytes: u64,
    /// User mlogs read through.
    pub mlogs: u64,
    /// User MDCs read through (the root MDC included).
    pub mdcs: u64,
    /// Records read from user mlogs and MDCs.
    pub log_records: u64,
    /// Pool-metadata records (replayed at open; counted here).
    pub metadata_records: u64,
    /// Problems found.
    pub problems: Vec<CheckProblem>,
    /// Damaged ranges of mblocks (each also among `problems`).
    pub damaged: Vec<crate::Damage>,
    /// Repairs made since the pool was opened (before the check ran).
    pub repairs: Vec<CheckRepair>,
}

/// Read a log through, counting its records; the first bad one is the error.
fn count<E: Into<Error>>(reader: impl Iterator<Item = Result<Vec<u8>, E>>) -> Result<u64, Error> {
    let mut n = 0u64;
    for rec in reader {
        rec.map_err(Into::into)?;
        n += 1;
    }
    Ok(n)
}

impl Pool {
    /// Verify the whole pool. `progress(done_bytes, total_bytes)` is called as
    /// mblock content is read. Problems are collected, not returned as errors;
    /// an error means the check itself could not run.
    pub fn check(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<CheckReport, Error> {
        let mut rep = CheckReport {
            repairs: self.repairs(),
            ..CheckReport::default()
        };
        let sb = self.superblock_damage();
        if !sb.is_empty() {
            rep.problems.push(CheckProblem {
                object: "superblock".into(),
                problem: format!("degraded ({})", sb.join("; ")),
            });
        }
        for d in self.damaged_mdcs() {
            rep.problems.push(CheckProblem {
                object: format!("MDC{}", d.mdc),
                problem: format!("damaged: {}", d.reason),
            });
            for id in &d.objects {
                rep.problems.push(CheckProblem {
                    object: id.to_string(),
                    problem: format!("unreadable: its metadata container MDC{} is damaged", d.mdc),
                });
            }
        }
        let mut damage = Vec::new();
        let read_only = self.is_read_only();
        for (log, slot, why) in self.metadata_header_damage()? {
            header_finding(&mut rep, &log, slot, &why, !read_only);
        }
        rep.metadata_records = self.metadata_stats()?.iter().map(|m| m.records).sum();
        let objs = self.objects()?;
        let total: u64 = objs
            .iter()
            .filter(|o| o.ty == ObjType::Mblock)
            .map(|o| o.len)
            .sum();
        let mut done = 0u64;
        progress(0, total);
        for o in &objs {
            match o.ty {
                ObjType::Mblock => {
                    rep.mblocks += 1;
                    match MblockId::try_from(o.id).and_then(|id| self.mblock_scrub(id)) {
                        Ok(found) => {
                            for d in found {
                                rep.problems.push(CheckProblem {
                                    object: o.id.to_string(),
                                    problem: if d.table {
                                        format!(
                                            "checksum table damaged (zone bytes {}..{}); the \
                                             content matches its record",
                                            d.offset,
                                            d.offset + d.len
                                        )
                                    } else {
                                        format!(
                                            "bytes {}..{} do not match their checksums",
                                            d.offset,
                                            d.offset + d.len
                                        )
                                    },
                                });
                                rep.damaged.push(d);
                                damage.push(d);
                            }
                        }
                        Err(e) => rep.problems.push(CheckProblem {
                            object: o.id.to_string(),
                            problem: e.to_string(),
                        }),
                    }
                    rep.bytes += o.len;
                    done += o.len;
                    progress(done, total);
                }
                ObjType::Mlog | ObjType::Mdc => {
                    let mut found: Result<Option<(u8, String)>, Error> = Ok(None);
                    let records = if o.ty == ObjType::Mlog {
                        rep.mlogs += 1;
                        MlogId::try_from(o.id)
                            .and_then(|id| self.mlog_open(id))
                            .and_then(|log| {
                                found = if read_only {
                                    Ok(log.header_damage())
                                } else {
                                    log.repair_header().map_err(Into::into)
                                };
                                count(log.reader()?)
                            })
                    } else {
                        rep.mdcs += 1;
                        MdcId::try_from(o.id)
                            .and_then(|id| self.mdc_open(id))
                            .and_then(|mdc| {
                                found = if read_only {
                                    Ok(mdc.header_damage())
                                } else {
                                    mdc.repair_header().map_err(Into::into)
                                };
                                count(mdc.reader()?)
                            })
                    };
                    match found {
                        Ok(Some((slot, why))) => {
                            header_finding(&mut rep, &o.id.to_string(), slot, &why, !read_only)
                        }
                        Ok(None) => {}
                        Err(e) => rep.problems.push(CheckProblem {
                            object: o.id.to_string(),
                            problem: format!("rewriting a damaged header copy failed: {e}"),
                        }),
                    }
                    match records {
                        Ok(n) => rep.log_records += n,
                        Err(e) => rep.problems.push(CheckProblem {
                            object: o.id.to_string(),
                            problem: e.to_string(),
                        }),
                    }
                }
            }
        }
        // Every mblock was read: what was found replaces the record of
        // mismatches (ranges that read clean now, and deleted mblocks, leave it).
        self.reset_damage(&damage);
        Ok(rep)
    }
}

/// A damaged log header copy: a repair when it was rewritten (read-write
/// check), else a problem that says how to repair it.
fn header_finding(rep: &mut CheckReport, object: &str, slot: u8, why: &str, repaired: bool) {
    if repaired {
        rep.repairs.push(CheckRepair {
            object: object.to_string(),
            repair: format!(
                "log header copy {slot} was damaged ({why}); rewritten from the other copy"
            ),
        });
    } else {
        rep.problems.push(CheckProblem {
            object: object.to_string(),
            problem: format!(
                "log header copy {slot} is damaged ({why}); the log works on the other copy, and a repair (`mpool check --repair`) rewrites it"
            ),
        });
    }
}
