//! Sealed commits: an mblock reserved ahead (a type-9 record durable in
//! its MDC) is committed by one write of its content, its checksum table
//! and a *seal* after them, then one flush; no metadata record is written
//! for it then. The seal carries what the commit record would, a nonce
//! that only the reserve record and the seal hold, and bytes of the
//! caller's (an object store's catalog record). After a crash, the owner
//! of a reservation asks for its seal ([`find`]); otherwise the owner
//! *adopts* the mblock once the caller's bytes are safe elsewhere, and a
//! type-8 record, appended without a flush of its own, replaces the
//! reserve record. Layout and rules: `docs/format.md`, "Sealed commits".

use super::mblock::{self, Table, HOLD_MAX};
use crate::crc::crc32c;
use crate::dev::{DevError, Device};
use crate::format::record::CsumLayout;
use crate::io::AlignedBuf;
use crate::objid::ObjectId;

/// The first 8 bytes of a seal.
pub(crate) const MAGIC: [u8; 8] = *b"MPSEAL01";

/// Bytes of a seal before the caller's bytes.
pub(crate) const HEADER: usize = 44;

/// The most caller bytes a seal carries.
pub const CLIENT_MAX: usize = 16 << 10;

/// What a reserved mblock's owner and nonce are (the reserve record's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reservation {
    pub class: crate::format::superblock::MediaClass,
    pub zone: u32,
    pub owner: u64,
    pub nonce: u64,
    pub state: State,
}

/// Where a reserved mblock stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Reserved in this run, uncommitted (pending, writable).
    Open,
    /// Committed by a seal in this run or found sealed after a crash:
    /// readable, its durable form still the reserve record and the seal
    /// until adopted.
    Sealed,
    /// Replayed from the media: sealed or not, nobody looked yet.
    Unknown,
}

/// What a seal says of its mblock's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seal {
    pub len: u32,
    pub shift: u8,
    pub table_crc: u32,
    pub client: Vec<u8>,
}

/// The seal of mblock `id` (bytes to write at the content's footprint,
/// zero-padded to whole sectors).
pub(crate) fn encode(id: ObjectId, nonce: u64, s: &Seal, sector: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity((HEADER + s.client.len()).div_ceil(sector) * sector);
    b.extend_from_slice(&MAGIC);
    b.extend_from_slice(&id.raw().to_le_bytes());
    b.extend_from_slice(&nonce.to_le_bytes());
    b.extend_from_slice(&s.len.to_le_bytes());
    b.extend_from_slice(&[s.shift, 0, 0, 0]);
    b.extend_from_slice(&s.table_crc.to_le_bytes());
    b.extend_from_slice(&(s.client.len() as u32).to_le_bytes());
    let crc = crate::crc::crc32c_append(crc32c(&b), &s.client);
    b.extend_from_slice(&crc.to_le_bytes());
    b.extend_from_slice(&s.client);
    b.resize(b.len().div_ceil(sector) * sector, 0);
    b
}

/// The seal of mblock `id` under `nonce` at the start of `b`, if `b`
/// holds one whole (its CRC checked); `None` for anything else. Never
/// panics.
pub(crate) fn decode(b: &[u8], id: ObjectId, nonce: u64) -> Option<Seal> {
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
    };
    if b.get(..8)? != MAGIC || u64_at(8)? != id.raw() || u64_at(16)? != nonce {
        return None;
    }
    let len = u32_at(24)?;
    let shift = *b.get(28)?;
    if b.get(29..32)? != [0, 0, 0]
        || !(crate::format::record::CSUM_SHIFT_MIN..=crate::format::record::CSUM_SHIFT_MAX)
            .contains(&shift)
    {
        return None;
    }
    let table_crc = u32_at(32)?;
    let n = u32_at(36)? as usize;
    if n > CLIENT_MAX {
        return None;
    }
    let client = b.get(HEADER..HEADER + n)?;
    let crc = crate::crc::crc32c_append(crc32c(b.get(..40)?), client);
    if crc != u32_at(40)? {
        return None;
    }
    Some(Seal {
        len,
        shift,
        table_crc,
        client: client.to_vec(),
    })
}

/// Bytes from a zone's start that hold any seal a sealed commit can
/// write (content of at most [`HOLD_MAX`] bytes, its table, a seal of at
/// most [`CLIENT_MAX`] caller bytes), within a zone of `zone` bytes.
pub(crate) fn window(sector: u64, zone: u64) -> u64 {
    let table = (4 * (HOLD_MAX as u64).div_ceil(1 << crate::format::record::CSUM_SHIFT_MIN))
        .div_ceil(sector)
        * sector;
    let seal = ((HEADER + CLIENT_MAX) as u64).div_ceil(sector) * sector;
    (HOLD_MAX as u64 + table + seal).min(zone)
}

/// Look for the seal of reserved mblock `id` (nonce `nonce`) in its zone
/// at byte `base` of `dev` (`zone` bytes): read the window that can hold
/// it, find a seal of this mblock at the footprint of the content it
/// describes, and check the table against the seal and the content
/// against the table. `Ok(None)`: no whole sealed commit (none was made,
/// or the crash came before its write was whole on the media).
pub(crate) fn find(
    dev: &dyn Device,
    base: u64,
    zone: u64,
    id: ObjectId,
    nonce: u64,
) -> Result<Option<Seal>, DevError> {
    let sector = u64::from(dev.sector());
    let win = window(sector, zone);
    if win == 0 {
        return Ok(None);
    }
    let buf = AlignedBuf::scratch(win as usize, sector as usize);
    let mut out = mblock::read_into(dev, vec![(base, buf)], usize::MAX)?;
    let buf = out.pop().unwrap_or_default();
    let mut at = 0usize;
    while at < buf.len() {
        if let Some(seal) = buf.get(at..).and_then(|b| decode(b, id, nonce)) {
            let l = CsumLayout {
                len: u64::from(seal.len),
                shift: seal.shift,
                sector,
            };
            // A seal lies right after what it describes; the nonce keeps
            // any other from matching (content cannot know it).
            if l.footprint() != at as u64 {
                return Ok(None);
            }
            let content = buf.get(..seal.len as usize);
            let table =
                buf.get(l.table_offset() as usize..(l.table_offset() + l.table_bytes()) as usize);
            let (Some(content), Some(table)) = (content, table) else {
                return Ok(None);
            };
            let t = Table::from_bytes(seal.shift, table);
            if t.crc() != seal.table_crc {
                return Ok(None);
            }
            let whole = content
                .chunks(1usize << seal.shift)
                .zip(&t.crcs)
                .all(|(c, want)| crc32c(c) == *want)
                && t.crcs.len() == content.len().div_ceil(1usize << seal.shift);
            return Ok(whole.then_some(seal));
        }
        at += sector as usize;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objid::ObjType;

    #[test]
    fn a_seal_decodes_only_whole_and_for_its_mblock() {
        let id = ObjectId::new(ObjType::Mblock, 2, 77);
        let s = Seal {
            len: 65536,
            shift: 12,
            table_crc: 0xabcd_0123,
            client: b"a catalog record".to_vec(),
        };
        let b = encode(id, 42, &s, 4096);
        assert_eq!(b.len(), 4096);
        assert_eq!(decode(&b, id, 42), Some(s.clone()));
        assert_eq!(decode(&b, id, 43), None, "another nonce");
        assert_eq!(decode(&b, ObjectId::new(ObjType::Mblock, 2, 78), 42), None);
        for at in 0..HEADER + s.client.len() {
            let mut bad = b.clone();
            bad[at] ^= 1;
            assert_eq!(decode(&bad, id, 42), None, "byte {at} flipped");
        }
        assert_eq!(decode(&b[..HEADER + 3], id, 42), None, "cut short");
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let id = ObjectId::new(ObjType::Mblock, 1, 1);
            let _ = decode(&b, id, 0);
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&id.raw().to_le_bytes());
            framed.extend_from_slice(&0u64.to_le_bytes());
            framed.extend_from_slice(&b);
            let _ = decode(&framed, id, 0);
        }
    }
}
