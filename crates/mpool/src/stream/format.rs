//! The on-media bytes of event streams (docs/format.md, "Event streams"):
//! the root-MDC record that finds the stream catalog, the catalog's records,
//! the tail mlog's batch records and a sealed segment's frames and footer.

use super::error::StreamError;

/// Prefix of the root-MDC record that names the stream catalog MDC.
pub const ROOT_MAGIC: &[u8; 8] = b"MPSTRCAT";
/// Version of that record.
pub const ROOT_VERSION: u8 = 1;
/// Magic of a sealed segment's trailer.
pub const SEG_MAGIC: &[u8; 8] = b"MPSTSEG1";
/// Version of the segment footer.
pub const SEG_VERSION: u32 = 1;
/// Bytes of the trailer at the end of a sealed segment.
pub const TRAILER_LEN: usize = 64;
/// Bytes of a record frame's header (length, CRC-32C).
pub const FRAME_HDR: usize = 8;
/// Bytes of a tail batch record's header (first offset, count).
pub const BATCH_HDR: usize = 12;
/// A segment index entry is written for the first record and then for the
/// first record that starts at least this many bytes after the last entry.
pub const INDEX_EVERY: u64 = 4096;

/// The root-MDC record naming the catalog MDC.
pub fn encode_root(mdc: u64) -> Vec<u8> {
    let mut v = ROOT_MAGIC.to_vec();
    v.push(ROOT_VERSION);
    v.extend_from_slice(&mdc.to_le_bytes());
    v
}

/// The catalog MDC named by a root-MDC record, if it is one of ours.
pub fn decode_root(rec: &[u8]) -> Option<Result<u64, String>> {
    let rest = rec.strip_prefix(ROOT_MAGIC.as_slice())?;
    if rest.len() != 9 || rest[0] != ROOT_VERSION {
        return Some(Err(format!(
            "stream catalog root record of {} bytes, version {}",
            rec.len(),
            rest.first().copied().unwrap_or(0)
        )));
    }
    Some(Ok(u64_at(rest, 1)))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// A record of the stream catalog MDC. Every record is one MDC record:
/// a type byte then fixed little-endian fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatRecord {
    /// 'H': the next stream number (written first by a compaction).
    Header {
        /// Next stream number to hand out.
        next_no: u64,
    },
    /// 'C': a stream is created.
    Create {
        /// Stream number (never reused).
        no: u64,
        /// Creation time (ms since the epoch).
        created_ms: u64,
        /// Segment size limit (bytes of frames).
        seg_bytes: u64,
        /// Age limit of the tail before it is sealed (ms; 0: none).
        max_age_ms: u64,
        /// The stream's name.
        name: String,
    },
    /// 'T': a tail mlog starts at `base`.
    Tail {
        /// Stream.
        no: u64,
        /// The mlog.
        mlog: u64,
        /// Offset of its first record.
        base: u64,
    },
    /// 'N': a spare tail mlog (allocated ahead; committed after this record).
    Spare {
        /// Stream.
        no: u64,
        /// The mlog.
        mlog: u64,
    },
    /// 'P': a seal of tail `mlog` into `mblock` started.
    Pending {
        /// Stream.
        no: u64,
        /// The mblock being written.
        mblock: u64,
        /// The tail being sealed.
        mlog: u64,
    },
    /// 'S': tail `mlog` is sealed into committed `mblock`.
    Sealed {
        /// Stream.
        no: u64,
        /// The segment.
        mblock: u64,
        /// The tail it replaces.
        mlog: u64,
        /// First offset.
        base: u64,
        /// Records.
        count: u64,
        /// Bytes of the mblock (frames, index, trailer).
        bytes: u64,
        /// Seal time (ms since the epoch).
        sealed_ms: u64,
    },
    /// 'R': every record below `first` is trimmed.
    Trim {
        /// Stream.
        no: u64,
        /// First kept offset.
        first: u64,
    },
    /// 'D': the stream is deleted.
    Delete {
        /// Stream.
        no: u64,
    },
}

impl CatRecord {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64);
        let put = |v: &mut Vec<u8>, xs: &[u64]| {
            for x in xs {
                v.extend_from_slice(&x.to_le_bytes());
            }
        };
        match self {
            CatRecord::Header { next_no } => {
                v.push(b'H');
                put(&mut v, &[*next_no]);
            }
            CatRecord::Create {
                no,
                created_ms,
                seg_bytes,
                max_age_ms,
                name,
            } => {
                v.push(b'C');
                put(&mut v, &[*no, *created_ms, *seg_bytes, *max_age_ms]);
                v.extend_from_slice(&(name.len() as u16).to_le_bytes());
                v.extend_from_slice(name.as_bytes());
            }
            CatRecord::Tail { no, mlog, base } => {
                v.push(b'T');
                put(&mut v, &[*no, *mlog, *base]);
            }
            CatRecord::Spare { no, mlog } => {
                v.push(b'N');
                put(&mut v, &[*no, *mlog]);
            }
            CatRecord::Pending { no, mblock, mlog } => {
                v.push(b'P');
                put(&mut v, &[*no, *mblock, *mlog]);
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
                v.push(b'S');
                put(
                    &mut v,
                    &[*no, *mblock, *mlog, *base, *count, *bytes, *sealed_ms],
                );
            }
            CatRecord::Trim { no, first } => {
                v.push(b'R');
                put(&mut v, &[*no, *first]);
            }
            CatRecord::Delete { no } => {
                v.push(b'D');
                put(&mut v, &[*no]);
            }
        }
        v
    }

    /// Decode a record; `Err` names what is wrong.
    pub fn decode(b: &[u8]) -> Result<CatRecord, String> {
        let Some((&ty, rest)) = b.split_first() else {
            return Err("empty stream catalog record".into());
        };
        let need = |n: usize| -> Result<Vec<u64>, String> {
            if rest.len() < n * 8 {
                return Err(format!(
                    "stream catalog record '{}' of {} bytes, needs {}",
                    ty as char,
                    b.len(),
                    1 + n * 8
                ));
            }
            Ok((0..n).map(|i| u64_at(rest, i * 8)).collect())
        };
        let exact = |n: usize| -> Result<Vec<u64>, String> {
            let f = need(n)?;
            if rest.len() != n * 8 {
                return Err(format!(
                    "stream catalog record '{}' of {} bytes, expected {}",
                    ty as char,
                    b.len(),
                    1 + n * 8
                ));
            }
            Ok(f)
        };
        Ok(match ty {
            b'H' => CatRecord::Header {
                next_no: exact(1)?[0],
            },
            b'C' => {
                let f = need(4)?;
                let tail = &rest[32..];
                if tail.len() < 2 {
                    return Err("stream catalog create record without a name".into());
                }
                let n = usize::from(u16::from_le_bytes([tail[0], tail[1]]));
                if tail.len() != 2 + n {
                    return Err(format!(
                        "stream catalog create record: name of {n} bytes in {}",
                        tail.len() - 2
                    ));
                }
                let name = std::str::from_utf8(&tail[2..])
                    .map_err(|_| "stream name is not UTF-8".to_string())?
                    .to_string();
                CatRecord::Create {
                    no: f[0],
                    created_ms: f[1],
                    seg_bytes: f[2],
                    max_age_ms: f[3],
                    name,
                }
            }
            b'T' => {
                let f = exact(3)?;
                CatRecord::Tail {
                    no: f[0],
                    mlog: f[1],
                    base: f[2],
                }
            }
            b'N' => {
                let f = exact(2)?;
                CatRecord::Spare {
                    no: f[0],
                    mlog: f[1],
                }
            }
            b'P' => {
                let f = exact(3)?;
                CatRecord::Pending {
                    no: f[0],
                    mblock: f[1],
                    mlog: f[2],
                }
            }
            b'S' => {
                let f = exact(7)?;
                CatRecord::Sealed {
                    no: f[0],
                    mblock: f[1],
                    mlog: f[2],
                    base: f[3],
                    count: f[4],
                    bytes: f[5],
                    sealed_ms: f[6],
                }
            }
            b'R' => {
                let f = exact(2)?;
                CatRecord::Trim {
                    no: f[0],
                    first: f[1],
                }
            }
            b'D' => CatRecord::Delete { no: exact(1)?[0] },
            t => return Err(format!("unknown stream catalog record type 0x{t:02x}")),
        })
    }
}

/// The CRC-32C (Castagnoli) a record frame carries.
pub fn record_crc(rec: &[u8]) -> u32 {
    crate::crc::crc32c(rec)
}

/// Append the frame of `rec` (length, CRC-32C, bytes) to `out`.
pub fn put_frame(out: &mut Vec<u8>, rec: &[u8]) {
    out.extend_from_slice(&(rec.len() as u32).to_le_bytes());
    out.extend_from_slice(&crate::crc::crc32c(rec).to_le_bytes());
    out.extend_from_slice(rec);
}

/// The frame at `pos` of `data`: its payload range, checked against its
/// CRC. `Err` names what is wrong.
pub fn frame_at(data: &[u8], pos: usize) -> Result<std::ops::Range<usize>, String> {
    if pos + FRAME_HDR > data.len() {
        return Err(format!(
            "frame header at byte {pos} past the end ({})",
            data.len()
        ));
    }
    let len = u32_at(data, pos) as usize;
    let crc = u32_at(data, pos + 4);
    let start = pos + FRAME_HDR;
    let Some(end) = start.checked_add(len).filter(|&e| e <= data.len()) else {
        return Err(format!(
            "record of {len} bytes at byte {pos} runs past the end"
        ));
    };
    if crate::crc::crc32c(&data[start..end]) != crc {
        return Err(format!("record checksum mismatch at byte {pos}"));
    }
    Ok(start..end)
}

/// The position after the frame at `pos` (its length checked against the
/// bytes, not its CRC).
pub fn skip_frame(data: &[u8], pos: usize) -> Result<usize, String> {
    if pos + FRAME_HDR > data.len() {
        return Err(format!(
            "frame header at byte {pos} past the end ({})",
            data.len()
        ));
    }
    let len = u32_at(data, pos) as usize;
    (pos + FRAME_HDR)
        .checked_add(len)
        .filter(|&e| e <= data.len())
        .ok_or_else(|| format!("record of {len} bytes at byte {pos} runs past the end"))
}

/// A tail batch record: first offset, count, then the frames.
pub fn encode_batch(first: u64, recs: &[&[u8]]) -> Vec<u8> {
    let len: usize = recs.iter().map(|r| r.len() + FRAME_HDR).sum();
    let mut v = Vec::with_capacity(BATCH_HDR + len);
    v.extend_from_slice(&first.to_le_bytes());
    v.extend_from_slice(&(recs.len() as u32).to_le_bytes());
    for r in recs {
        put_frame(&mut v, r);
    }
    v
}

/// A decoded tail batch: first offset, the frames' bytes, each record's
/// payload range in them.
pub type Batch<'a> = (u64, &'a [u8], Vec<std::ops::Range<usize>>);

/// Decode a tail batch record: (first offset, frames, payload ranges of
/// the frames within the frames' bytes).
pub fn decode_batch(b: &[u8]) -> Result<Batch<'_>, String> {
    if b.len() < BATCH_HDR {
        return Err(format!("tail batch record of {} bytes", b.len()));
    }
    let first = u64_at(b, 0);
    let count = u32_at(b, 8) as usize;
    let frames = &b[BATCH_HDR..];
    let mut out = Vec::with_capacity(count.min(frames.len() / FRAME_HDR + 1));
    let mut pos = 0;
    for _ in 0..count {
        let r = frame_at(frames, pos)?;
        pos = r.end;
        out.push(r);
    }
    if pos != frames.len() {
        return Err(format!(
            "tail batch record: {} bytes after its {count} records",
            frames.len() - pos
        ));
    }
    Ok((first, frames, out))
}

/// The trailer of a sealed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Index entries before the trailer.
    pub entries: u32,
    /// Stream number.
    pub no: u64,
    /// First offset.
    pub base: u64,
    /// Records.
    pub count: u64,
    /// Bytes of frames (from byte 0 of the mblock).
    pub data_len: u64,
    /// Seal time (ms since the epoch).
    pub sealed_ms: u64,
}

/// Index entry: (record offset - base, byte position of its frame).
pub type IndexEntry = (u32, u32);

/// The footer (index entries, then trailer) of a segment whose frames
/// `pos` start at the given byte positions.
pub fn encode_footer(t: &Trailer, index: &[IndexEntry]) -> Vec<u8> {
    let mut v = Vec::with_capacity(index.len() * 8 + TRAILER_LEN);
    for (rel, pos) in index {
        v.extend_from_slice(&rel.to_le_bytes());
        v.extend_from_slice(&pos.to_le_bytes());
    }
    let ix = v.len();
    v.extend_from_slice(SEG_MAGIC);
    v.extend_from_slice(&SEG_VERSION.to_le_bytes());
    v.extend_from_slice(&(index.len() as u32).to_le_bytes());
    for x in [t.no, t.base, t.count, t.data_len, t.sealed_ms] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    let crc = crate::crc::crc32c(&v);
    v.extend_from_slice(&crc.to_le_bytes());
    v.extend_from_slice(&[0u8; 4]);
    debug_assert_eq!(v.len() - ix, TRAILER_LEN);
    v
}

/// Decode a trailer (the last [`TRAILER_LEN`] bytes of a segment).
/// The CRC is checked with [`check_footer`] once the index is read.
pub fn decode_trailer(b: &[u8]) -> Result<Trailer, String> {
    if b.len() != TRAILER_LEN {
        return Err(format!("segment trailer of {} bytes", b.len()));
    }
    if &b[..8] != SEG_MAGIC {
        return Err("segment trailer without its magic".into());
    }
    let ver = u32_at(b, 8);
    if ver != SEG_VERSION {
        return Err(format!("segment footer version {ver}"));
    }
    Ok(Trailer {
        entries: u32_at(b, 12),
        no: u64_at(b, 16),
        base: u64_at(b, 24),
        count: u64_at(b, 32),
        data_len: u64_at(b, 40),
        sealed_ms: u64_at(b, 48),
    })
}

/// Check a whole footer's CRC and decode its index.
pub fn check_footer(footer: &[u8]) -> Result<Vec<IndexEntry>, String> {
    if footer.len() < TRAILER_LEN {
        return Err("segment footer too short".into());
    }
    let crc_at = footer.len() - 8;
    if crate::crc::crc32c(&footer[..crc_at]) != u32_at(footer, crc_at) {
        return Err("segment footer checksum mismatch".into());
    }
    let n = (footer.len() - TRAILER_LEN) / 8;
    Ok((0..n)
        .map(|i| (u32_at(footer, i * 8), u32_at(footer, i * 8 + 4)))
        .collect())
}

/// `StreamError` from a format problem.
pub fn corrupt(stream: &str, offset: u64, reason: String) -> StreamError {
    StreamError::Corrupt {
        stream: stream.to_string(),
        offset,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_records_round_trip() {
        let recs = [
            CatRecord::Header { next_no: 7 },
            CatRecord::Create {
                no: 1,
                created_ms: 2,
                seg_bytes: 3,
                max_age_ms: 4,
                name: "orders".into(),
            },
            CatRecord::Tail {
                no: 1,
                mlog: 9,
                base: 10,
            },
            CatRecord::Spare { no: 1, mlog: 11 },
            CatRecord::Pending {
                no: 1,
                mblock: 12,
                mlog: 9,
            },
            CatRecord::Sealed {
                no: 1,
                mblock: 12,
                mlog: 9,
                base: 10,
                count: 5,
                bytes: 4096,
                sealed_ms: 99,
            },
            CatRecord::Trim { no: 1, first: 15 },
            CatRecord::Delete { no: 1 },
        ];
        for r in recs {
            let b = r.encode();
            assert_eq!(CatRecord::decode(&b).unwrap(), r);
            assert!(CatRecord::decode(&b[..b.len() - 1]).is_err());
        }
        assert!(CatRecord::decode(b"Z").is_err());
    }

    #[test]
    fn batch_and_footer_round_trip() {
        let b = encode_batch(42, &[b"a", b"", b"hello"]);
        let (first, frames, rs) = decode_batch(&b).unwrap();
        assert_eq!(first, 42);
        assert_eq!(&frames[rs[2].clone()], b"hello");
        assert!(rs[1].is_empty());
        let mut bad = b.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(decode_batch(&bad).is_err());
        let t = Trailer {
            entries: 2,
            no: 3,
            base: 100,
            count: 9,
            data_len: 900,
            sealed_ms: 5,
        };
        let f = encode_footer(&t, &[(0, 0), (5, 500)]);
        assert_eq!(decode_trailer(&f[f.len() - TRAILER_LEN..]).unwrap(), t);
        assert_eq!(check_footer(&f).unwrap(), vec![(0, 0), (5, 500)]);
        let mut g = f.clone();
        g[3] ^= 4;
        assert!(check_footer(&g).is_err());
        assert!(decode_root(&encode_root(77)).unwrap().unwrap() == 77);
        assert!(decode_root(b"other").is_none());
    }
}
