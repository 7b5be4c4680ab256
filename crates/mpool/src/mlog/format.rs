//! On-media framing of an mlog (see `docs/format.md`, section "Mlog").
//!
//! Every decoder here takes arbitrary bytes and never panics: lengths are
//! checked, slices are taken with `get`, arithmetic is checked; fields are
//! read and written with the shared little-endian codec.

use crate::format::codec::{Reader, Short, Writer};

/// Size of the used part of a log header block.
pub const LOG_HDR_LEN: usize = 64;
/// Magic of a log header block: `MPLOGHD1`.
pub const LOG_HDR_MAGIC: u64 = u64::from_le_bytes(*b"MPLOGHD1");
/// Format version of the log header and framing of a plain log.
pub const LOG_VERSION: u32 = 1;
/// Format version of the header of a log with flags (a mirrored log): older
/// code, which reads version 1 only, refuses such a log instead of taking
/// its second copies for records out of sequence.
pub const LOG_VERSION_FLAGS: u32 = 2;
/// Header flag: every record is written twice, back to back (docs/format.md,
/// "Mirrored logs").
pub const FLAG_MIRRORED: u32 = 1;
/// Header flag: a record that would touch more blocks where the log ends
/// than it touches from the start of the next block starts there instead
/// (the rest of the block is padding; docs/format.md, "Padded logs"), so
/// that a record of R bytes costs at most R rounded up to the block size
/// plus one block of device writes. Plain logs only: a mirrored log
/// ignores it.
pub const FLAG_PADDED: u32 = 2;
/// Every flag this code knows.
const KNOWN_FLAGS: u32 = FLAG_MIRRORED | FLAG_PADDED;
/// Size of the header at the start of every log data block.
pub const BLK_HDR_LEN: u64 = 32;
/// Magic of a log data block header: `MLB1`.
pub const BLK_MAGIC: u32 = u32::from_le_bytes(*b"MLB1");
/// Size of a record header.
pub const REC_HDR_LEN: u64 = 36;
/// Smallest supported block (sector) size.
pub const MIN_BLOCK: u64 = 512;
// A block is a sector: the smallest block is the smallest sector, and a
// log's header and a block's header each fit one.
const _: () = assert!(MIN_BLOCK == crate::format::superblock::SECTOR_MIN as u64);
const _: () = assert!(LOG_HDR_LEN as u64 <= MIN_BLOCK);
const _: () = assert!(BLK_HDR_LEN + REC_HDR_LEN < MIN_BLOCK);

/// One of the two header blocks at the start of a log's extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogHeader {
    /// Log identifier (chosen by the owner; also seeds every record checksum).
    pub log_id: u64,
    /// Generation: raised by every erase.
    pub gen: u64,
    /// Epoch: raised by every open-for-append (and reset to 1 by an erase).
    pub epoch: u32,
    /// Block size (the device's logical sector size) in bytes.
    pub block_size: u32,
    /// Number of data blocks after the two header blocks.
    pub nblocks: u64,
    /// Every record is written twice, back to back ([`FLAG_MIRRORED`]).
    pub mirrored: bool,
    /// Records may start at the next block ([`FLAG_PADDED`]).
    pub padded: bool,
}

/// Why a header block was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderFault {
    /// The block is shorter than a header.
    Short,
    /// Wrong magic (not an mlog header, or never written).
    Magic,
    /// Unknown format version.
    Version(u32),
    /// Checksum mismatch (torn write or bit rot).
    Checksum,
    /// Flags this code does not know, or reserved bytes that are not zero.
    Flags(u32),
}

impl From<Short> for HeaderFault {
    fn from(_: Short) -> Self {
        HeaderFault::Short
    }
}

impl LogHeader {
    /// The `(gen, epoch)` order in which the newest header wins.
    pub fn order(&self) -> (u64, u32) {
        (self.gen, self.epoch)
    }

    /// Encode into the first [`LOG_HDR_LEN`] bytes of `out` (the rest of the
    /// block is left as is; callers pass a zeroed block).
    pub fn encode(&self, out: &mut [u8]) {
        let Some(h) = out.get_mut(..LOG_HDR_LEN) else {
            return;
        };
        h.fill(0);
        let flags = if self.mirrored { FLAG_MIRRORED } else { 0 }
            | if self.padded { FLAG_PADDED } else { 0 };
        let version = if flags == 0 {
            LOG_VERSION
        } else {
            LOG_VERSION_FLAGS
        };
        // `h` is exactly one header long: every field fits.
        let written = (|| -> Result<(), Short> {
            Writer::new(h)
                .u64(LOG_HDR_MAGIC)?
                .u32(version)?
                .u32(0)? // checksum, below
                .u64(self.log_id)?
                .u64(self.gen)?
                .u32(self.epoch)?
                .u32(self.block_size)?
                .u64(self.nblocks)?
                .u32(flags)?;
            let crc = crate::crc::crc32c(h);
            Writer::at(h, 12).u32(crc)?;
            Ok(())
        })();
        debug_assert_eq!(written, Ok(()));
    }

    /// Decode and verify a header block.
    pub fn decode(b: &[u8]) -> Result<LogHeader, HeaderFault> {
        let h = b.get(..LOG_HDR_LEN).ok_or(HeaderFault::Short)?;
        let mut r = Reader::new(h);
        if r.u64()? != LOG_HDR_MAGIC {
            return Err(HeaderFault::Magic);
        }
        let version = r.u32()?;
        if version != LOG_VERSION && version != LOG_VERSION_FLAGS {
            return Err(HeaderFault::Version(version));
        }
        let stored = r.u32()?;
        let mut tmp = [0u8; LOG_HDR_LEN];
        tmp.copy_from_slice(h);
        Writer::at(&mut tmp, 12).u32(0)?;
        if crate::crc::crc32c(&tmp) != stored {
            return Err(HeaderFault::Checksum);
        }
        let (log_id, gen, epoch, block_size, nblocks) =
            (r.u64()?, r.u64()?, r.u32()?, r.u32()?, r.u64()?);
        let flags = r.u32()?;
        // Version 1 has no flags; version 2 has at least one, all known;
        // the rest of the header is zero in both.
        let flags_ok = if version == LOG_VERSION {
            flags == 0
        } else {
            flags != 0 && flags & !KNOWN_FLAGS == 0
        };
        let rest_zero = h.get(52..).is_some_and(|z| z.iter().all(|&b| b == 0));
        if !flags_ok || !rest_zero {
            return Err(HeaderFault::Flags(flags));
        }
        Ok(LogHeader {
            log_id,
            gen,
            epoch,
            block_size,
            nblocks,
            mirrored: flags & FLAG_MIRRORED != 0,
            padded: flags & FLAG_PADDED != 0,
        })
    }
}

/// The header at the start of every log data block. It never changes while
/// the block belongs to one generation: rewrites of a partly filled block
/// write the same bytes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// Log identifier.
    pub log_id: u64,
    /// Generation of the log when the block was first written.
    pub gen: u64,
    /// Index of the block in the data area.
    pub block_no: u32,
    /// Offset in the block of the first record header that starts in it, or
    /// 0 when none does (a record's payload fills the rest of the block).
    pub first_rec: u32,
}

impl BlockHeader {
    /// Encode into the first [`BLK_HDR_LEN`] bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) {
        let Some(h) = out.get_mut(..BLK_HDR_LEN as usize) else {
            return;
        };
        // `h` is exactly one header long: every field fits.
        let written = (|| -> Result<(), Short> {
            Writer::new(h)
                .u32(BLK_MAGIC)?
                .u32(0)? // checksum, below
                .u64(self.log_id)?
                .u64(self.gen)?
                .u32(self.block_no)?
                .u32(self.first_rec)?;
            let crc = crate::crc::crc32c(h);
            Writer::at(h, 4).u32(crc)?;
            Ok(())
        })();
        debug_assert_eq!(written, Ok(()));
    }

    /// Decode and verify (magic and checksum) a block header.
    pub fn decode(b: &[u8]) -> Option<BlockHeader> {
        let h = b.get(..BLK_HDR_LEN as usize)?;
        let mut r = Reader::new(h);
        if r.u32().ok()? != BLK_MAGIC {
            return None;
        }
        let stored = r.u32().ok()?;
        let mut tmp = [0u8; BLK_HDR_LEN as usize];
        tmp.copy_from_slice(h);
        Writer::at(&mut tmp, 4).u32(0).ok()?;
        if crate::crc::crc32c(&tmp) != stored {
            return None;
        }
        Some(BlockHeader {
            log_id: r.u64().ok()?,
            gen: r.u64().ok()?,
            block_no: r.u32().ok()?,
            first_rec: r.u32().ok()?,
        })
    }
}

/// The header in front of every record's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// CRC-32C over the log id (8 bytes LE), header bytes 4..36 and the payload.
    pub crc: u32,
    /// Payload length in bytes.
    pub len: u32,
    /// Log generation the record was written in.
    pub gen: u64,
    /// Sequence number of the record in its generation (0, 1, 2, ...).
    pub seq: u64,
    /// Epoch (open-for-append count) the record was written in.
    pub epoch: u32,
    /// Flush set ("batch") number within the epoch, from 1.
    pub fseq: u32,
    /// `seq` minus the `seq` of the first record of the same flush set.
    pub bdelta: u32,
}

impl RecordHeader {
    /// Sequence number of the first record of this record's flush set.
    pub fn batch_first(&self) -> u64 {
        self.seq.saturating_sub(u64::from(self.bdelta))
    }

    /// Encode into `out[..36]` with `crc` as given (nothing when `out` is
    /// shorter).
    pub fn encode(&self, out: &mut [u8]) {
        let Some(h) = out.get_mut(..REC_HDR_LEN as usize) else {
            return;
        };
        // `h` is exactly one header long: every field fits.
        let written = (|| -> Result<(), Short> {
            Writer::new(h)
                .u32(self.crc)?
                .u32(self.len)?
                .u64(self.gen)?
                .u64(self.seq)?
                .u32(self.epoch)?
                .u32(self.fseq)?
                .u32(self.bdelta)?;
            Ok(())
        })();
        debug_assert_eq!(written, Ok(()));
    }

    /// Decode the fields (no checksum verification: see [`record_crc`]).
    pub fn decode(b: &[u8]) -> Option<RecordHeader> {
        let mut r = Reader::new(b.get(..REC_HDR_LEN as usize)?);
        Some(RecordHeader {
            crc: r.u32().ok()?,
            len: r.u32().ok()?,
            gen: r.u64().ok()?,
            seq: r.u64().ok()?,
            epoch: r.u32().ok()?,
            fseq: r.u32().ok()?,
            bdelta: r.u32().ok()?,
        })
    }

    /// The checksum state after the header (continue it over the payload
    /// with `crate::crc::crc32c_append`).
    pub fn crc_start(&self, log_id: u64) -> u32 {
        let mut h = [0u8; REC_HDR_LEN as usize];
        self.encode(&mut h);
        let c = crate::crc::crc32c(&log_id.to_le_bytes());
        crate::crc::crc32c_append(c, &h[4..])
    }
}

/// The checksum of a record: over the log id, header bytes 4..36 and the payload.
pub fn record_crc(log_id: u64, hdr: &RecordHeader, payload: &[u8]) -> u32 {
    crate::crc::crc32c_append(hdr.crc_start(log_id), payload)
}

/// Geometry of a log's data area: `nblocks` blocks of `bs` bytes. Positions
/// are byte offsets in the data area, block headers included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geom {
    /// Block size.
    pub bs: u64,
    /// Number of data blocks.
    pub nblocks: u64,
}

impl Geom {
    /// Bytes in the data area.
    pub fn size(&self) -> u64 {
        self.bs.saturating_mul(self.nblocks)
    }

    /// Where the header of the next record goes when the log ends at `p`: at
    /// `p`, or past the next block header when `p` is on a block boundary or
    /// the block has no room for a record header (the rest is padding).
    pub fn hdr_pos(&self, p: u64) -> Option<u64> {
        let r = p % self.bs;
        if r == 0 {
            p.checked_add(BLK_HDR_LEN)
        } else if self.bs - r < REC_HDR_LEN {
            (p - r).checked_add(self.bs)?.checked_add(BLK_HDR_LEN)
        } else {
            Some(p)
        }
    }

    /// In a padded log ([`FLAG_PADDED`]) that ends at `p`: where the header
    /// of a record of `len` bytes goes when it starts at the next block
    /// (past its block header) instead of at [`Geom::hdr_pos`]: when it
    /// would touch more blocks from `p`'s block than from the next one.
    /// None when it goes at `hdr_pos(p)` (always when `p` is on a block
    /// boundary or too close to the block's end for a record header).
    pub fn pad_pos(&self, p: u64, len: u64) -> Option<u64> {
        let bs = self.bs;
        let h = self.hdr_pos(p)?;
        if p.is_multiple_of(bs) || h / bs != p / bs {
            return None;
        }
        let fresh = (p / bs + 1).checked_mul(bs)?.checked_add(BLK_HDR_LEN)?;
        let touched = (self.rec_end(h, len)? - 1) / bs - p / bs + 1;
        let touched_fresh = (self.rec_end(fresh, len)? - 1) / bs - fresh / bs + 1;
        (touched > touched_fresh).then_some(fresh)
    }

    /// Where the header of the next record of `len` bytes goes when the
    /// log ends at `p`: [`Geom::pad_pos`] in a padded log, else [`Geom::hdr_pos`].
    pub fn next_hdr(&self, p: u64, len: u64, padded: bool) -> Option<u64> {
        match padded.then(|| self.pad_pos(p, len)).flatten() {
            Some(h) => Some(h),
            None => self.hdr_pos(p),
        }
    }

    /// The end of a record whose header is at `h` and whose payload is `len`
    /// bytes (payload skips block headers). None on overflow.
    pub fn rec_end(&self, h: u64, len: u64) -> Option<u64> {
        let mut p = h.checked_add(REC_HDR_LEN)?;
        let per_block = self.bs - BLK_HDR_LEN;
        let mut left = len;
        // First the rest of the header's block.
        let r = p % self.bs;
        if left > 0 && r != 0 {
            let take = (self.bs - r).min(left);
            p = p.checked_add(take)?;
            left -= take;
        }
        if left > 0 {
            // p is on a block boundary now.
            let full = (left - 1) / per_block;
            let last = left - full * per_block;
            p = p.checked_add(full.checked_mul(self.bs)?)?;
            p = p.checked_add(BLK_HDR_LEN + last)?;
        }
        Some(p)
    }

    /// The `first_rec` field of the block in which a record ending at `end`
    /// (not at the block's start) ends.
    pub fn first_rec_after(&self, end: u64) -> u32 {
        let mut r = end % self.bs;
        if r == 0 {
            r = self.bs;
        }
        if self.bs - r >= REC_HDR_LEN {
            r as u32
        } else {
            0
        }
    }

    /// The largest payload that fits in an empty log.
    pub fn max_record(&self) -> u64 {
        let h = BLK_HDR_LEN;
        let first = self.bs - h - REC_HDR_LEN;
        first + self.nblocks.saturating_sub(1) * (self.bs - BLK_HDR_LEN)
    }

    /// Where the copy of a record goes in a mirrored log when its primary's
    /// header is at `h` and its payload is `len` bytes: right after the
    /// primary, as the next record would go. None on overflow.
    pub fn copy_pos(&self, h: u64, len: u64) -> Option<u64> {
        self.hdr_pos(self.rec_end(h, len)?)
    }

    /// The end of both copies of a record whose primary's header is at `h`.
    pub fn mirrored_end(&self, h: u64, len: u64) -> Option<u64> {
        self.rec_end(self.copy_pos(h, len)?, len)
    }

    /// The largest payload of which two copies fit in an empty log.
    pub fn max_record_mirrored(&self) -> u64 {
        let fits = |len: u64| {
            self.hdr_pos(0)
                .and_then(|h| self.mirrored_end(h, len))
                .is_some_and(|e| e <= self.size())
        };
        if !fits(0) {
            return 0;
        }
        // The end grows with the length: the largest length that fits.
        let (mut lo, mut hi) = (0u64, self.max_record());
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }
}

/// Where a record's payload lies: `(block, offset in block, length)` pieces.
pub fn payload_pieces(g: &Geom, h: u64, len: u64) -> impl Iterator<Item = (u64, usize, usize)> {
    let bs = g.bs;
    let mut p = h.saturating_add(REC_HDR_LEN);
    let mut left = len;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let mut r = p % bs;
        if r == 0 {
            p = p.saturating_add(BLK_HDR_LEN);
            r = BLK_HDR_LEN;
        }
        let take = (bs - r).min(left);
        let out = (p / bs, r as usize, take as usize);
        p = p.saturating_add(take);
        left -= take;
        Some(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_round_trip_and_corruption() {
        let h = LogHeader {
            log_id: 7,
            gen: 3,
            epoch: 9,
            block_size: 4096,
            nblocks: 100,
            mirrored: false,
            padded: false,
        };
        let mut b = vec![0u8; 512];
        h.encode(&mut b);
        assert_eq!(LogHeader::decode(&b), Ok(h));
        assert_eq!(u32::from_le_bytes(b[8..12].try_into().unwrap()), LOG_VERSION);
        let m = LogHeader { mirrored: true, ..h };
        let mut mb = vec![0u8; 512];
        m.encode(&mut mb);
        assert_eq!(LogHeader::decode(&mb), Ok(m));
        // A mirrored log's header is version 2: older code refuses it.
        assert_eq!(u32::from_le_bytes(mb[8..12].try_into().unwrap()), LOG_VERSION_FLAGS);
        // Unknown flags, flags in a version-1 header, non-zero reserved
        // bytes (each with a valid checksum) are refused.
        let resealed = |mut x: Vec<u8>| {
            x[12..16].fill(0);
            let c = crate::crc::crc32c(&x[..LOG_HDR_LEN]);
            x[12..16].copy_from_slice(&c.to_le_bytes());
            LogHeader::decode(&x)
        };
        let mut x = mb.clone();
        x[48] = 5;
        assert_eq!(resealed(x), Err(HeaderFault::Flags(5)));
        // A padded log's header is version 2 with flag 2.
        let pd = LogHeader { padded: true, ..h };
        let mut pb = vec![0u8; 512];
        pd.encode(&mut pb);
        assert_eq!(LogHeader::decode(&pb), Ok(pd));
        assert_eq!(u32::from_le_bytes(pb[8..12].try_into().unwrap()), LOG_VERSION_FLAGS);
        assert_eq!(u32::from_le_bytes(pb[48..52].try_into().unwrap()), FLAG_PADDED);
        let mut x = b.clone();
        x[48] = 1;
        assert_eq!(resealed(x), Err(HeaderFault::Flags(1)));
        let mut x = mb.clone();
        x[60] = 1;
        assert_eq!(resealed(x), Err(HeaderFault::Flags(1)));
        let mut x = mb.clone();
        x[48] = 0;
        assert_eq!(resealed(x), Err(HeaderFault::Flags(0)));
        b[30] ^= 1;
        assert_eq!(LogHeader::decode(&b), Err(HeaderFault::Checksum));
        assert_eq!(LogHeader::decode(&[0u8; 10]), Err(HeaderFault::Short));
        assert_eq!(LogHeader::decode(&[0u8; 512]), Err(HeaderFault::Magic));
    }

    #[test]
    fn block_header_round_trip() {
        let h = BlockHeader {
            log_id: 1,
            gen: 2,
            block_no: 3,
            first_rec: 32,
        };
        let mut b = [0u8; 64];
        h.encode(&mut b);
        assert_eq!(BlockHeader::decode(&b), Some(h));
        b[17] ^= 0x80;
        assert_eq!(BlockHeader::decode(&b), None);
    }

    #[test]
    fn geometry_pads_and_spans() {
        let g = Geom {
            bs: 512,
            nblocks: 10,
        };
        assert_eq!(g.hdr_pos(0), Some(32));
        assert_eq!(g.hdr_pos(100), Some(100));
        assert_eq!(g.hdr_pos(512 - 36), Some(512 - 36));
        assert_eq!(g.hdr_pos(512 - 35), Some(512 + 32));
        // A record that exactly fills the first block.
        let fill = 512 - 32 - 36;
        assert_eq!(g.rec_end(32, fill), Some(512));
        assert_eq!(g.rec_end(32, fill + 1), Some(512 + 32 + 1));
        assert_eq!(g.rec_end(32, fill + 480), Some(1024));
        assert_eq!(g.rec_end(32, fill + 481), Some(1024 + 33));
        let pieces: Vec<_> = payload_pieces(&g, 32, fill + 481).collect();
        assert_eq!(pieces, vec![(0, 68, 444), (1, 32, 480), (2, 32, 1)]);
        assert_eq!(g.max_record(), 444 + 9 * 480);
        // Two copies of the largest mirrored record fit, one byte more does not.
        let m = g.max_record_mirrored();
        assert!(g.mirrored_end(32, m).unwrap() <= g.size());
        assert!(g.mirrored_end(32, m + 1).unwrap() > g.size());
        assert_eq!(g.copy_pos(32, fill), Some(512 + 32));
        assert_eq!(g.copy_pos(32, 10), Some(32 + 36 + 10));
    }

    #[test]
    fn padding_bounds_a_records_blocks() {
        let g = Geom {
            bs: 4096,
            nblocks: 100,
        };
        // A 4 KiB record where the log ends 4030 bytes into a block would
        // touch three blocks; from the next block it touches two.
        assert_eq!(g.pad_pos(4030, 4096), Some(4096 + 32));
        assert_eq!(g.pad_pos(4028, 4096), None);
        // Never on a block boundary, nor where hdr_pos moves on anyway.
        assert_eq!(g.pad_pos(4096, 4096), None);
        assert_eq!(g.pad_pos(4096 - 10, 4096), None);
        // Small records stay where they are.
        assert_eq!(g.pad_pos(100, 10), None);
        assert_eq!(g.next_hdr(4030, 4096, false), Some(4030));
        assert_eq!(g.next_hdr(4030, 4096, true), Some(4096 + 32));
    }

    proptest! {
        /// The bound of docs/format.md, "Padded logs": a record written
        /// after `p` touches at most round_up(len, bs) / bs + 1 blocks
        /// (for records of up to (bs - 68) / 32 blocks, where block headers
        /// alone stay within one block).
        #[test]
        fn padded_records_touch_at_most_one_block_more(bs in prop_oneof![Just(512u64), Just(4096u64)],
                                                        p in 0u64..100_000, len in 0u64..20_000) {
            let g = Geom { bs, nblocks: 1000 };
            prop_assume!(len.div_ceil(bs) <= (bs - 68) / 32);
            let h = g.next_hdr(p, len, true).unwrap();
            let end = g.rec_end(h, len).unwrap();
            let first = if h / bs == p / bs { p / bs } else { h / bs };
            let touched = (end - 1) / bs - first + 1;
            prop_assert!(touched <= len.div_ceil(bs) + 1, "p {} len {} touched {}", p, len, touched);
        }

        #[test]
        fn record_header_round_trip(len in any::<u32>(), gen in any::<u64>(), seq in any::<u64>(),
                                     epoch in any::<u32>(), fseq in any::<u32>(), bdelta in any::<u32>(),
                                     payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut h = RecordHeader { crc: 0, len, gen, seq, epoch, fseq, bdelta };
            h.crc = record_crc(5, &h, &payload);
            let mut b = [0u8; 36];
            h.encode(&mut b);
            let d = RecordHeader::decode(&b).unwrap();
            prop_assert_eq!(d, h);
            prop_assert_eq!(record_crc(5, &d, &payload), d.crc);
            prop_assert_ne!(record_crc(6, &d, &payload), d.crc);
        }

        #[test]
        fn pieces_cover_payload(bs in prop_oneof![Just(512u64), Just(4096u64)], start in 0u64..20000, len in 0u64..20000) {
            let g = Geom { bs, nblocks: 1000 };
            let h = g.hdr_pos(start).unwrap();
            let end = g.rec_end(h, len).unwrap();
            let total: usize = payload_pieces(&g, h, len).map(|(_, _, n)| n).sum();
            prop_assert_eq!(total as u64, len);
            if let Some((b, off, n)) = payload_pieces(&g, h, len).last() {
                prop_assert_eq!(b * bs + off as u64 + n as u64, end);
            } else {
                prop_assert_eq!(end, h + 36);
            }
            for (_, off, n) in payload_pieces(&g, h, len) {
                prop_assert!(off as u64 >= BLK_HDR_LEN && off + n <= bs as usize);
            }
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = LogHeader::decode(&bytes);
            let _ = BlockHeader::decode(&bytes);
            let _ = RecordHeader::decode(&bytes);
        }
    }
}
