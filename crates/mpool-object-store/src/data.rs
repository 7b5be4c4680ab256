//! Object content: writing it into new mblocks, reading ranges across
//! them. Blocking; the store calls these on tokio's blocking pool.

use crate::catalog::Result;
use crate::record::Extent;
use mpool::{MblockRead, MediaClass, Pool};
use std::ops::Range;

/// Reads in flight at once for one call (what fio calls the queue depth).
pub const READ_DEPTH: usize = 32;

/// Large reads are cut into pieces of this size, kept in flight together.
pub const READ_PIECE: u64 = 256 << 10;

/// Content being written into uncommitted mblocks of `class`, each filled
/// to the class's mblock capacity before the next is allocated.
#[derive(Debug)]
pub struct Writer {
    pool: Pool,
    class: MediaClass,
    cap: u64,
    extents: Vec<Extent>,
    size: u64,
}

impl Writer {
    /// A writer of a new object.
    pub fn new(pool: &Pool, class: MediaClass) -> Result<Writer> {
        Ok(Writer {
            cap: pool.mblock_capacity(class)?,
            pool: pool.clone(),
            class,
            extents: Vec::new(),
            size: 0,
        })
    }

    /// Append `data`.
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let room = match self.extents.last() {
                Some(e) if e.len < self.cap => self.cap - e.len,
                _ => {
                    let id = self.pool.mblock_alloc(self.class)?;
                    self.extents.push(Extent { id, len: 0 });
                    self.cap
                }
            };
            let n = usize::try_from(room).unwrap_or(usize::MAX).min(data.len());
            let Some(last) = self.extents.last_mut() else {
                break;
            };
            self.pool.mblock_write(last.id, &data[..n])?;
            last.len += n as u64;
            self.size += n as u64;
            data = &data[n..];
        }
        Ok(())
    }

    /// The uncommitted mblocks and the size; the caller commits or aborts.
    pub fn finish(mut self) -> (Vec<Extent>, u64) {
        (std::mem::take(&mut self.extents), self.size)
    }
}

impl Drop for Writer {
    /// A writer dropped before `finish` (an error) aborts its mblocks.
    fn drop(&mut self) {
        abort_all(&self.pool, &self.extents);
    }
}

/// Abort uncommitted mblocks (best effort: they vanish at the next open
/// anyway).
pub fn abort_all(pool: &Pool, extents: &[Extent]) {
    for e in extents {
        if let Err(err) = pool.mblock_abort(e.id) {
            tracing::debug!("aborting mblock {}: {err}", e.id);
        }
    }
}

/// Read `ranges` of an object made of `extents` (each range inside the
/// object), with up to [`READ_DEPTH`] device reads in flight.
pub fn read_ranges(pool: &Pool, extents: &[Extent], ranges: &[Range<u64>]) -> Result<Vec<Vec<u8>>> {
    let mut outs: Vec<Vec<u8>> = ranges
        .iter()
        .map(|r| vec![0u8; usize::try_from(r.end - r.start).unwrap_or(0)])
        .collect();
    let mut reads: Vec<MblockRead<'_>> = Vec::new();
    for (r, out) in ranges.iter().zip(outs.iter_mut()) {
        let mut rest: &mut [u8] = out.as_mut_slice();
        let mut base = 0u64;
        for e in extents {
            let (lo, hi) = (base, base + e.len);
            base = hi;
            if hi <= r.start || lo >= r.end {
                continue;
            }
            let mut from = r.start.max(lo);
            let to = r.end.min(hi);
            while from < to {
                // Pieces end on READ_PIECE boundaries of the mblock.
                let end = to.min((from - lo) / READ_PIECE * READ_PIECE + READ_PIECE + lo);
                let n = usize::try_from(end - from).unwrap_or(0);
                let (buf, tail) = std::mem::take(&mut rest).split_at_mut(n);
                rest = tail;
                reads.push(MblockRead {
                    id: e.id,
                    offset: from - lo,
                    buf,
                });
                from = end;
            }
        }
    }
    if !reads.is_empty() {
        let depth = reads.len().min(READ_DEPTH);
        pool.mblock_read_batch(&mut reads, depth)?;
    }
    drop(reads);
    Ok(outs)
}
