//! Object content: writing it into new mblocks, reading ranges across
//! them. Blocking; the store calls these on tokio's blocking pool.

use crate::catalog::Result;
use crate::record::Extent;
use bytes::{Bytes, BytesMut};
use mpool::{AlignedBuf, AlignedRead, MblockId, MediaClass, Pool};
use std::collections::HashMap;
use std::ops::Range;

/// Reads in flight at once for one call (what fio calls the queue depth).
pub const READ_DEPTH: usize = 32;

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

/// An error of this module's own bookkeeping (a bug, not the media's).
fn internal(what: String) -> crate::catalog::StoreError {
    crate::catalog::StoreError::Pool(mpool::Error::Internal(what))
}

/// Alignment of the reads of object content: offsets and lengths are
/// rounded out to this (a multiple of the sector and of the checksum
/// block), so that each read goes from the device straight into its
/// buffer and is verified there.
fn read_align(pool: &Pool) -> u64 {
    u64::from(pool.csum_block().ok().flatten().unwrap_or(0)).max(ALIGN as u64)
}

/// The buffers' alignment (the largest sector size mpool supports).
const ALIGN: usize = 4096;

/// An aligned read buffer handed out as [`Bytes`] without a copy.
struct Owned(AlignedBuf);

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// One device read of a range: bytes `skip..skip + take` of the buffer
/// read at `offset` of mblock `id` are range `range`'s next bytes.
struct Piece {
    range: usize,
    id: MblockId,
    offset: u64,
    len: usize,
    skip: usize,
    take: usize,
}

/// Read `ranges` of an object made of `extents` (each range inside the
/// object): one device read per range and mblock (rounded out to whole
/// checksum blocks), up to [`READ_DEPTH`] in flight, each straight into
/// an aligned buffer that is handed out as [`Bytes`] without a copy. A
/// range's bytes come back as the pieces of the mblocks it spans, in
/// order ([`read_ranges`] joins them).
pub fn read_pieces(
    pool: &Pool,
    extents: &[Extent],
    ranges: &[Range<u64>],
) -> Result<Vec<Vec<Bytes>>> {
    let align = read_align(pool);
    let mut pieces = Vec::new();
    for (ri, r) in ranges.iter().enumerate() {
        if r.start >= r.end {
            continue; // no bytes: no read
        }
        let mut base = 0u64;
        for e in extents {
            let (lo, hi) = (base, base + e.len);
            base = hi;
            if hi <= r.start || lo >= r.end {
                continue;
            }
            // In the mblock: wanted from..to, read at..end.
            let from = r.start.max(lo) - lo;
            let to = r.end.min(hi) - lo;
            let at = from / align * align;
            let end = to.div_ceil(align) * align;
            // Never more than the next multiple of the buffer's alignment
            // past the content.
            let end = end.min(e.len.div_ceil(ALIGN as u64) * ALIGN as u64);
            pieces.push(Piece {
                range: ri,
                id: e.id,
                offset: at,
                len: usize::try_from(end - at).unwrap_or(0),
                skip: usize::try_from(from - at).unwrap_or(0),
                take: usize::try_from(to - from).unwrap_or(0),
            });
        }
    }
    let mut outs: Vec<Vec<Bytes>> = ranges.iter().map(|_| Vec::new()).collect();
    if pieces.is_empty() {
        return Ok(outs);
    }
    // Completed reads come back in completion order: found again by what
    // was read (equal reads read equal bytes).
    let mut waiting: HashMap<(u64, u64, usize), Vec<usize>> = HashMap::new();
    for (i, p) in pieces.iter().enumerate() {
        waiting
            .entry((p.id.object_id().raw(), p.offset, p.len))
            .or_default()
            .push(i);
    }
    let mut done: Vec<Option<Bytes>> = pieces.iter().map(|_| None).collect();
    {
        let mut rd = pool.mblock_reader(pieces.len().min(READ_DEPTH))?;
        for p in &pieces {
            rd.push(AlignedRead {
                id: p.id,
                offset: p.offset,
                buf: AlignedBuf::scratch(p.len, ALIGN),
            })?;
        }
        for r in rd.by_ref() {
            let r = r?;
            let key = (r.id.object_id().raw(), r.offset, r.buf.len());
            let Some(i) = waiting.get_mut(&key).and_then(Vec::pop) else {
                return Err(internal(format!(
                    "a read of {} at {} came back that was not asked for",
                    r.id, r.offset
                )));
            };
            let p = &pieces[i];
            done[i] = Some(Bytes::from_owner(Owned(r.buf)).slice(p.skip..p.skip + p.take));
        }
    }
    for (p, d) in pieces.iter().zip(done) {
        let Some(b) = d else {
            return Err(internal(format!(
                "a read of {} at {} never came back",
                p.id, p.offset
            )));
        };
        outs[p.range].push(b);
    }
    Ok(outs)
}

/// Read `ranges` of an object made of `extents`, each range as one
/// [`Bytes`]: without a copy where it lies in one mblock, joined where it
/// spans several.
pub fn read_ranges(pool: &Pool, extents: &[Extent], ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
    Ok(read_pieces(pool, extents, ranges)?
        .into_iter()
        .map(|mut v| {
            if v.len() == 1 {
                return v.pop().unwrap_or_default();
            }
            let mut out = BytesMut::with_capacity(v.iter().map(Bytes::len).sum());
            for b in v {
                out.extend_from_slice(&b);
            }
            out.freeze()
        })
        .collect())
}
