//! Parsing records out of a log's blocks: the recovery scan run by
//! [`super::Mlog::open`] and the record decoder used by readers.

use super::format::{payload_pieces, BlockHeader, Geom, RecordHeader, BLK_HDR_LEN, REC_HDR_LEN};
use super::MlogError;
use crate::dev::Device;
use crate::io::AlignedBuf;

/// A source of whole data blocks (`bs` bytes each).
pub(crate) trait Blocks {
    /// Block `b` of the data area, or None past the end.
    fn block(&mut self, b: u64) -> Result<Option<&[u8]>, MlogError>;
}

/// Blocks of a byte image (fuzzing, tests).
pub(crate) struct SliceBlocks<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) bs: u64,
}

impl Blocks for SliceBlocks<'_> {
    fn block(&mut self, b: u64) -> Result<Option<&[u8]>, MlogError> {
        let Some(start) = b.checked_mul(self.bs) else {
            return Ok(None);
        };
        let (Ok(s), Ok(n)) = (usize::try_from(start), usize::try_from(self.bs)) else {
            return Ok(None);
        };
        Ok(s.checked_add(n).and_then(|e| self.data.get(s..e)))
    }
}

/// The recovery scan stops looking for valid records past the end after
/// this many bytes of blocks that hold none of the generation.
pub(crate) const RESYNC_GAP: u64 = 4 << 20;

/// How many blocks a device read fetches at once.
const WINDOW_BYTES: u64 = 256 * 1024;

/// Blocks read from a device through a window of a few hundred KiB.
pub(crate) struct DevBlocks<'a> {
    dev: &'a dyn Device,
    /// Device offset of data block 0.
    base: u64,
    geom: Geom,
    /// Blocks at or past `limit` are not read.
    limit: u64,
    win_start: u64,
    win_blocks: u64,
    win: AlignedBuf,
}

impl<'a> DevBlocks<'a> {
    pub(crate) fn new(dev: &'a dyn Device, base: u64, geom: Geom, limit: u64) -> Self {
        Self {
            dev,
            base,
            geom,
            limit: limit.min(geom.nblocks),
            win_start: 0,
            win_blocks: 0,
            win: AlignedBuf::empty(geom.bs as usize),
        }
    }
}

impl Blocks for DevBlocks<'_> {
    fn block(&mut self, b: u64) -> Result<Option<&[u8]>, MlogError> {
        if b >= self.limit {
            return Ok(None);
        }
        let bs = self.geom.bs;
        if !(b >= self.win_start && b < self.win_start + self.win_blocks) {
            let n = (WINDOW_BYTES / bs).max(1).min(self.limit - b);
            let mut buf = self.dev.alloc_buf((n * bs) as usize);
            self.win_blocks = 0;
            self.dev.read_at(self.base + b * bs, &mut buf)?;
            self.win = buf;
            self.win_start = b;
            self.win_blocks = n;
        }
        let off = ((b - self.win_start) * bs) as usize;
        Ok(self.win.get(off..off + bs as usize))
    }
}

/// The result of decoding one record.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// A record whose header, block headers and checksum verify.
    Good {
        hdr: RecordHeader,
        /// Position just past its payload.
        end: u64,
        payload: Option<Vec<u8>>,
    },
    /// Anything else, with the reason.
    Bad(&'static str),
}

/// Verify the header of block `b`: magic, checksum, owner, generation, index
/// and the expected `first_rec`.
fn block_ok(blk: &[u8], log_id: u64, gen: u64, b: u64, first_rec: u32) -> bool {
    match BlockHeader::decode(blk) {
        Some(h) => {
            h.log_id == log_id
                && h.gen == gen
                && u64::from(h.block_no) == b
                && h.first_rec == first_rec
        }
        None => false,
    }
}

/// Decode the record whose header is at position `h`. `fresh` says the
/// block of `h` holds no earlier record, so its header must be checked too.
pub(crate) fn parse_at(
    src: &mut dyn Blocks,
    g: &Geom,
    log_id: u64,
    gen: u64,
    h: u64,
    fresh: bool,
    want: bool,
) -> Result<Parsed, MlogError> {
    parse_at_mode(src, g, log_id, gen, h, fresh, want, true)
}

/// [`parse_at`], optionally without checking block headers (`strict`
/// false: only the record's own checksum and generation count).
#[allow(clippy::too_many_arguments)]
pub(crate) fn parse_at_mode(
    src: &mut dyn Blocks,
    g: &Geom,
    log_id: u64,
    gen: u64,
    h: u64,
    fresh: bool,
    want: bool,
    strict: bool,
) -> Result<Parsed, MlogError> {
    let bs = g.bs;
    let b0 = h / bs;
    let off = (h % bs) as usize;
    let hdr = {
        let Some(blk) = src.block(b0)? else {
            return Ok(Parsed::Bad("record header past the end of the log"));
        };
        if strict && fresh && !block_ok(blk, log_id, gen, b0, BLK_HDR_LEN as u32) {
            return Ok(Parsed::Bad("bad block header"));
        }
        let Some(hb) = off
            .checked_add(REC_HDR_LEN as usize)
            .and_then(|e| blk.get(off..e))
        else {
            return Ok(Parsed::Bad("record header crosses a block"));
        };
        match RecordHeader::decode(hb) {
            Some(h) => h,
            None => return Ok(Parsed::Bad("short record header")),
        }
    };
    if hdr.gen != gen {
        return Ok(Parsed::Bad("record of another generation"));
    }
    let len = u64::from(hdr.len);
    let end = match g.rec_end(h, len) {
        Some(e) if e <= g.size() => e,
        _ => return Ok(Parsed::Bad("record length runs past the log")),
    };
    let last_block = (end - 1) / bs;
    let mut crc = hdr.crc_start(log_id);
    let mut payload = if want {
        Some(Vec::with_capacity(len as usize))
    } else {
        None
    };
    for (b, o, n) in payload_pieces(g, h, len) {
        let Some(blk) = src.block(b)? else {
            return Ok(Parsed::Bad("record payload past the end of the log"));
        };
        if strict && b != b0 {
            let first = if b == last_block {
                g.first_rec_after(end)
            } else {
                0
            };
            if !block_ok(blk, log_id, gen, b, first) {
                return Ok(Parsed::Bad("bad block header inside a record"));
            }
        }
        let Some(piece) = o.checked_add(n).and_then(|e| blk.get(o..e)) else {
            return Ok(Parsed::Bad("record piece outside its block"));
        };
        crc = crc32c::crc32c_append(crc, piece);
        if let Some(p) = payload.as_mut() {
            p.extend_from_slice(piece);
        }
    }
    if crc != hdr.crc {
        return Ok(Parsed::Bad("record checksum mismatch"));
    }
    Ok(Parsed::Good { hdr, end, payload })
}

/// Whether record `h` may follow `prev` in the log (the sequencing rule of
/// docs/format.md): consecutive `seq`, epochs never decrease, flush sets
/// within an epoch are consecutive, a new epoch starts a new flush set 1.
pub(crate) fn follows(prev: Option<&RecordHeader>, h: &RecordHeader) -> bool {
    let Some(p) = prev else {
        return h.seq == 0 && h.fseq == 1 && h.bdelta == 0 && h.epoch >= 1;
    };
    if Some(h.seq) != p.seq.checked_add(1) {
        return false;
    }
    if h.epoch == p.epoch {
        (h.fseq == p.fseq && Some(h.bdelta) == p.bdelta.checked_add(1))
            || (Some(h.fseq) == p.fseq.checked_add(1) && h.bdelta == 0)
    } else if h.epoch > p.epoch {
        h.fseq == 1 && h.bdelta == 0
    } else {
        false
    }
}

/// Whether a valid record `r` found past the end of the chain proves that the
/// record right after `prev` was once durable (so its failure is corruption,
/// not a crash): it belongs to a flush set that could only be written after
/// the flush set holding the failed record was flushed.
pub(crate) fn proves_corruption(prev: Option<&RecordHeader>, r: &RecordHeader) -> bool {
    match prev {
        None => r.fseq >= 2,
        Some(p) if r.epoch > p.epoch => r.fseq >= 2,
        Some(p) if r.epoch == p.epoch => {
            u64::from(r.fseq) >= u64::from(p.fseq) + 2
                || (u64::from(r.fseq) == u64::from(p.fseq) + 1
                    && r.batch_first() > p.seq.saturating_add(1))
        }
        Some(_) => false,
    }
}

/// What the recovery scan found.
#[derive(Debug, Clone)]
pub struct ScanResult {
    /// Position just past the last valid record (0 for an empty log).
    pub end: u64,
    /// Header of the last valid record.
    pub last: Option<RecordHeader>,
    /// Number of valid records.
    pub records: u64,
    /// The largest epoch seen in any valid record (chain or past it).
    pub max_epoch: u32,
    /// Set when the chain stopped at a record that must once have been
    /// durable: `(offset, reason)`.
    pub corrupt: Option<(u64, String)>,
}

/// Follow records from position `q` (a record boundary) while they decode,
/// calling `seen` for each; returns where the walk stopped.
fn walk(
    src: &mut dyn Blocks,
    g: &Geom,
    log_id: u64,
    gen: u64,
    mut q: u64,
    strict: bool,
    seen: &mut dyn FnMut(&RecordHeader),
) -> Result<u64, MlogError> {
    while let Some(h) = g.hdr_pos(q) {
        if h.saturating_add(REC_HDR_LEN) > g.size() {
            break;
        }
        let fresh = q <= (h / g.bs) * g.bs;
        match parse_at_mode(src, g, log_id, gen, h, fresh, false, strict)? {
            Parsed::Good { hdr, end, .. } => {
                seen(&hdr);
                q = end;
            }
            Parsed::Bad(_) => break,
        }
    }
    Ok(q)
}

/// The recovery scan: follow the chain of records from the start while each
/// verifies and follows its predecessor; then look past the stop for valid
/// records that prove the stop is corruption rather than a crash.
pub(crate) fn scan(
    src: &mut dyn Blocks,
    g: &Geom,
    log_id: u64,
    gen: u64,
) -> Result<ScanResult, MlogError> {
    let bs = g.bs;
    let mut p = 0u64;
    let mut last: Option<RecordHeader> = None;
    let mut records = 0u64;
    let mut max_epoch = 0u32;
    let why;
    loop {
        let h = match g.hdr_pos(p) {
            Some(h) if h.saturating_add(REC_HDR_LEN) <= g.size() => h,
            _ => {
                why = "log full";
                break;
            }
        };
        let fresh = p <= (h / bs) * bs;
        match parse_at(src, g, log_id, gen, h, fresh, false)? {
            Parsed::Good { hdr, end, .. } if follows(last.as_ref(), &hdr) => {
                max_epoch = max_epoch.max(hdr.epoch);
                last = Some(hdr);
                records += 1;
                p = end;
            }
            Parsed::Good { .. } => {
                why = "record out of sequence";
                break;
            }
            Parsed::Bad(r) => {
                why = r;
                break;
            }
        }
    }
    // Look past the stop for valid records of this generation.
    let bad_at = g.hdr_pos(p).unwrap_or(p);
    let mut corrupt = None;
    let mut seen = |hdr: &RecordHeader| {
        max_epoch = max_epoch.max(hdr.epoch);
        if corrupt.is_none() && proves_corruption(last.as_ref(), hdr) {
            corrupt = Some((
                bad_at,
                format!(
                    "{why}, but a later valid record (seq {}, epoch {}, flush set {}) proves it was durable",
                    hdr.seq, hdr.epoch, hdr.fseq
                ),
            ));
        }
    };
    // 1. Along the chain itself, ignoring block headers (a bad block header
    //    must not hide the records after it).
    walk(src, g, log_id, gen, p, false, &mut seen)?;
    // 2. At every byte of the rest of the stop block (the failed record's
    //    length is unknown), with a cheap filter before the checksum.
    let stop_block = bad_at / bs;
    let min_seq = last.map_or(0, |l| l.seq.saturating_add(1));
    let mut q = bad_at.saturating_add(1);
    while q / bs == stop_block && q.saturating_add(REC_HDR_LEN) <= g.size() {
        let r = q % bs;
        if r < BLK_HDR_LEN || bs - r < REC_HDR_LEN {
            q += 1;
            continue;
        }
        let plausible = {
            let Some(blk) = src.block(stop_block)? else {
                break;
            };
            blk.get(r as usize..(r + REC_HDR_LEN) as usize)
                .and_then(RecordHeader::decode)
                .is_some_and(|h| h.gen == gen && h.seq >= min_seq)
        };
        if plausible {
            if let Parsed::Good { hdr, end, .. } =
                parse_at_mode(src, g, log_id, gen, q, false, false, false)?
            {
                seen(&hdr);
                walk(src, g, log_id, gen, end, false, &mut seen)?;
                break;
            }
        }
        q += 1;
    }
    // 3. From every later block whose header names a first record, until
    //    RESYNC_GAP bytes of blocks in a row belong to no record of this
    //    generation (past the furthest write of the generation, only a flush
    //    set lost in a crash can leave such a gap, and it ends the log anyway).
    let mut b = stop_block.saturating_add(1);
    let mut gap = 0u64;
    while b < g.nblocks {
        if gap.saturating_mul(bs) >= RESYNC_GAP {
            break;
        }
        let first = {
            let Some(blk) = src.block(b)? else { break };
            match BlockHeader::decode(blk) {
                Some(bh) if bh.log_id == log_id && bh.gen == gen => gap = 0,
                _ => gap += 1,
            }
            match BlockHeader::decode(blk) {
                Some(bh)
                    if bh.log_id == log_id
                        && bh.gen == gen
                        && u64::from(bh.block_no) == b
                        && u64::from(bh.first_rec) >= BLK_HDR_LEN
                        && u64::from(bh.first_rec) + REC_HDR_LEN <= bs =>
                {
                    bh.first_rec
                }
                _ => {
                    b += 1;
                    continue;
                }
            }
        };
        let q = walk(
            src,
            g,
            log_id,
            gen,
            b * bs + u64::from(first),
            true,
            &mut seen,
        )?;
        let next = g.hdr_pos(q).map_or(g.nblocks, |h| h / bs + 1);
        b = next.max(b + 1);
    }
    Ok(ScanResult {
        end: p,
        last,
        records,
        max_epoch,
        corrupt,
    })
}
