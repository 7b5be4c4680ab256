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

/// Follow records from position `q` (a record boundary) while they decode,
/// calling `seen` for each; returns where the walk stopped. With `padded`
/// (a padded plain log), a record that is not at `hdr_pos(q)` is looked
/// for where the padding rule puts it.
#[allow(clippy::too_many_arguments)]
fn walk(
    src: &mut dyn Blocks,
    g: &Geom,
    log_id: u64,
    gen: u64,
    mut q: u64,
    strict: bool,
    padded: bool,
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
            Parsed::Bad(_) => {
                let Some(at) = padded
                    .then(|| next_block_start(g, q))
                    .flatten()
                    .filter(|at| at.saturating_add(REC_HDR_LEN) <= g.size())
                else {
                    break;
                };
                match parse_at_mode(src, g, log_id, gen, at, true, false, strict)? {
                    Parsed::Good { hdr, end, .. }
                        if g.pad_pos(q, u64::from(hdr.len)) == Some(at) =>
                    {
                        seen(&hdr);
                        q = end;
                    }
                    _ => break,
                }
            }
        }
    }
    Ok(q)
}

/// Where a padded record goes after a log that ends at `p`: past the next
/// block's header (None when `p` is on a block boundary, where nothing is
/// padded).
fn next_block_start(g: &Geom, p: u64) -> Option<u64> {
    if p.is_multiple_of(g.bs) {
        return None;
    }
    (p / g.bs + 1)
        .checked_mul(g.bs)
        .and_then(|b| b.checked_add(BLK_HDR_LEN))
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
        crc = crate::crc::crc32c_append(crc, piece);
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
    /// Records of a mirrored log read from their second copy because the
    /// first did not verify.
    pub repaired: u64,
}

/// The largest record a mirrored log takes: it bounds the search for the
/// copy of a record whose first copy fails (docs/format.md, "Mirrored logs").
pub const MIRRORED_MAX_RECORD: u64 = 1 << 20;

/// What the chain walk knows about a log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogView {
    pub(crate) g: Geom,
    pub(crate) log_id: u64,
    pub(crate) gen: u64,
    pub(crate) mirrored: bool,
    /// Records may start at the next block (`FLAG_PADDED`; ignored in a
    /// mirrored log).
    pub(crate) padded: bool,
}

/// One step of the chain walk.
#[derive(Debug)]
pub(crate) enum Step {
    /// The next record (each record once, whichever copy verified).
    Rec {
        hdr: RecordHeader,
        payload: Option<Vec<u8>>,
        /// Where the copy that was used starts.
        at: u64,
        /// Read from the second copy: the first did not verify.
        repaired: bool,
    },
    /// The chain ends: nothing valid continues it at `at`.
    Stop { at: u64, why: &'static str },
    /// The chain reached its limit (the end of the log, or of a reader's range).
    End,
}

/// A walk along the chain of records from the start of a log, applying the
/// recovery rule (plain and mirrored): the scan, readers and the image
/// decoder all walk this way, so they see the same records.
#[derive(Debug, Clone)]
pub(crate) struct Chain {
    /// End of the last accepted copy: where the next one is looked for.
    pub(crate) pos: u64,
    /// The last record accepted.
    pub(crate) last: Option<RecordHeader>,
    /// The second copy of `last` was accepted too (always true in a plain log).
    copy_seen: bool,
    /// Records must end at or before this position.
    limit: u64,
}

impl Chain {
    pub(crate) fn new(limit: u64) -> Chain {
        Chain {
            pos: 0,
            last: None,
            copy_seen: true,
            limit,
        }
    }

    /// The next record of the chain, or where it stops.
    pub(crate) fn next(
        &mut self,
        src: &mut dyn Blocks,
        v: &LogView,
        want: bool,
    ) -> Result<Step, MlogError> {
        let g = &v.g;
        loop {
            if self.pos >= self.limit {
                return Ok(Step::End);
            }
            let x = match g.hdr_pos(self.pos) {
                Some(h) if h.saturating_add(REC_HDR_LEN) <= self.limit => h,
                _ => {
                    return Ok(Step::Stop {
                        at: g.hdr_pos(self.pos).unwrap_or(self.pos),
                        why: "log full",
                    })
                }
            };
            let fresh = self.pos <= (x / g.bs) * g.bs;
            let why = match parse_at(src, g, v.log_id, v.gen, x, fresh, want)? {
                Parsed::Good { hdr, end, payload } if end <= self.limit => {
                    if v.mirrored && !self.copy_seen && self.last == Some(hdr) {
                        // The second copy of the record just accepted.
                        self.copy_seen = true;
                        self.pos = end;
                        continue;
                    }
                    if follows(self.last.as_ref(), &hdr) {
                        self.last = Some(hdr);
                        self.copy_seen = !v.mirrored;
                        self.pos = end;
                        return Ok(Step::Rec {
                            hdr,
                            payload,
                            at: x,
                            repaired: false,
                        });
                    }
                    "record out of sequence"
                }
                Parsed::Good { .. } => "record runs past the end of the log",
                Parsed::Bad(r) => r,
            };
            if v.padded && !v.mirrored {
                if let Some((hdr, payload, at, end)) = self.padded(src, v, want)? {
                    self.last = Some(hdr);
                    self.pos = end;
                    return Ok(Step::Rec {
                        hdr,
                        payload,
                        at,
                        repaired: false,
                    });
                }
            }
            if v.mirrored {
                if let Some((hdr, payload, at, end, copy)) = self.search(src, v, x, want)? {
                    self.last = Some(hdr);
                    self.copy_seen = copy;
                    self.pos = end;
                    return Ok(Step::Rec {
                        hdr,
                        payload,
                        at,
                        repaired: copy,
                    });
                }
            }
            return Ok(Step::Stop { at: x, why });
        }
    }

    /// Padded log, nothing valid continues the chain where it ends: the
    /// next record at the start of the next block, accepted only if it
    /// verifies (block header included), follows the last record, and its
    /// length is one the writer pads there ([`Geom::pad_pos`]).
    #[allow(clippy::type_complexity)]
    fn padded(
        &self,
        src: &mut dyn Blocks,
        v: &LogView,
        want: bool,
    ) -> Result<Option<(RecordHeader, Option<Vec<u8>>, u64, u64)>, MlogError> {
        let g = &v.g;
        let p = self.pos;
        let Some(fresh) = next_block_start(g, p) else {
            return Ok(None);
        };
        if fresh.saturating_add(REC_HDR_LEN) > self.limit {
            return Ok(None);
        }
        match parse_at(src, g, v.log_id, v.gen, fresh, true, want)? {
            Parsed::Good { hdr, end, payload }
                if end <= self.limit
                    && follows(self.last.as_ref(), &hdr)
                    && g.pad_pos(p, u64::from(hdr.len)) == Some(fresh) =>
            {
                Ok(Some((hdr, payload, fresh, end)))
            }
            _ => Ok(None),
        }
    }

    /// Mirrored log, nothing valid continues the chain at `x`: look for the
    /// legal continuation elsewhere. Candidates (each a record that verifies
    /// on its own bytes, of the generation, following `last` by the chain
    /// rules, and no longer than [`MIRRORED_MAX_RECORD`]):
    ///
    /// - when the second copy of `last` was expected at `x`: the next
    ///   record's first copy right after where that copy ends (`x2`);
    /// - the second copy of a record whose first copy starts at `x` (or at
    ///   `x2`): exactly where a copy of its length goes after it.
    ///
    /// Every byte position from `x` up to the furthest place such a copy can
    /// be is tried, in order; the first candidate wins. The positions tried
    /// depend on `x` and `last` only, never on block headers, so a later
    /// open tries exactly what the open that ended the log at `x` tried
    /// (docs/format.md, "Mirrored logs"). Returns `(header, payload,
    /// position, end, whether it is a second copy)`.
    #[allow(clippy::type_complexity)]
    fn search(
        &self,
        src: &mut dyn Blocks,
        v: &LogView,
        x: u64,
        want: bool,
    ) -> Result<Option<(RecordHeader, Option<Vec<u8>>, u64, u64, bool)>, MlogError> {
        let g = &v.g;
        let bs = g.bs;
        let x2 = match (&self.last, self.copy_seen) {
            (Some(p), false) => g.copy_pos(x, u64::from(p.len)),
            _ => None,
        };
        let anchors = [Some(x), x2];
        let furthest = anchors
            .iter()
            .flatten()
            .filter_map(|&a| g.copy_pos(a, MIRRORED_MAX_RECORD))
            .max()
            .unwrap_or(x)
            .min(self.limit.saturating_sub(REC_HDR_LEN));
        let gen_le = v.gen.to_le_bytes();
        let mut b = x / bs;
        while b.saturating_mul(bs) <= furthest {
            let mut cands = Vec::new();
            {
                let Some(blk) = src.block(b)? else { break };
                let lo = if b == x / bs { x % bs + 1 } else { 0 }.max(BLK_HDR_LEN);
                let mut r = lo;
                while r + REC_HDR_LEN <= bs && b * bs + r <= furthest {
                    let at = r as usize;
                    // Cheap filter first: the generation field.
                    if blk.get(at + 8..at + 16) == Some(&gen_le[..]) {
                        if let Some(h) = blk.get(at..).and_then(RecordHeader::decode) {
                            let y = b * bs + r;
                            let len = u64::from(h.len);
                            let placed = Some(y) == x2
                                || anchors.iter().flatten().any(|&a| g.copy_pos(a, len) == Some(y));
                            if placed
                                && len <= MIRRORED_MAX_RECORD
                                && follows(self.last.as_ref(), &h)
                            {
                                cands.push(y);
                            }
                        }
                    }
                    r += 1;
                }
            }
            for y in cands {
                if let Parsed::Good { hdr, end, payload } =
                    parse_at_mode(src, g, v.log_id, v.gen, y, false, want, false)?
                {
                    if end <= self.limit && follows(self.last.as_ref(), &hdr) {
                        return Ok(Some((hdr, payload, y, end, Some(y) != x2)));
                    }
                }
            }
            b += 1;
        }
        Ok(None)
    }
}

/// Look for a valid record of the generation (seq at least `min_seq`) at
/// every byte of the block of `from` after `from`, with a cheap filter
/// before the checksum; from the first one found, walk on.
#[allow(clippy::too_many_arguments)]
fn rest_of_block(
    src: &mut dyn Blocks,
    g: &Geom,
    log_id: u64,
    gen: u64,
    from: u64,
    min_seq: u64,
    padded: bool,
    seen: &mut dyn FnMut(&RecordHeader),
) -> Result<(), MlogError> {
    let bs = g.bs;
    let block = from / bs;
    let mut q = from.saturating_add(1);
    while q / bs == block && q.saturating_add(REC_HDR_LEN) <= g.size() {
        let r = q % bs;
        if r < BLK_HDR_LEN || bs - r < REC_HDR_LEN {
            q += 1;
            continue;
        }
        let plausible = {
            let Some(blk) = src.block(block)? else {
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
                walk(src, g, log_id, gen, end, false, padded, seen)?;
                break;
            }
        }
        q += 1;
    }
    Ok(())
}

/// The recovery scan: follow the chain of records from the start while each
/// verifies and follows its predecessor (in a mirrored log, using the
/// second copy of a record whose first copy fails); then look past the stop
/// for valid records that prove the stop is corruption rather than a crash.
pub(crate) fn scan(src: &mut dyn Blocks, v: &LogView) -> Result<ScanResult, MlogError> {
    let (g, log_id, gen) = (&v.g, v.log_id, v.gen);
    let bs = g.bs;
    let mut chain = Chain::new(g.size());
    let mut records = 0u64;
    let mut repaired_n = 0u64;
    let mut max_epoch = 0u32;
    let (bad_at, why) = loop {
        match chain.next(src, v, false)? {
            Step::Rec { hdr, repaired, .. } => {
                max_epoch = max_epoch.max(hdr.epoch);
                records += 1;
                repaired_n += u64::from(repaired);
            }
            Step::Stop { at, why } => break (at, why),
            Step::End => break (g.hdr_pos(chain.pos).unwrap_or(chain.pos), "log full"),
        }
    };
    let p = chain.pos;
    let last = chain.last;
    // Look past the stop for valid records of this generation.
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
    let padded = v.padded && !v.mirrored;
    walk(src, g, log_id, gen, p, false, padded, &mut seen)?;
    // 2. At every byte of the rest of the stop block (the failed record's
    //    length is unknown), with a cheap filter before the checksum.
    let stop_block = bad_at / bs;
    let min_seq = last.map_or(0, |l| l.seq.saturating_add(1));
    rest_of_block(src, g, log_id, gen, bad_at, min_seq, padded, &mut seen)?;
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
            padded,
            &mut seen,
        )?;
        // The walk stopped at a record that fails (or the end): the rest of
        // that block too, as for the stop block (a damaged record must not
        // hide the records after it in its block).
        if let Some(h) = g.hdr_pos(q) {
            rest_of_block(src, g, log_id, gen, h, min_seq, padded, &mut seen)?;
        }
        let next = g.hdr_pos(q).map_or(g.nblocks, |h| h / bs + 1);
        b = next.max(b + 1);
    }
    Ok(ScanResult {
        end: p,
        last,
        records,
        max_epoch,
        corrupt,
        repaired: repaired_n,
    })
}
