//! The seal of a sealed mblock commit (docs/format.md, "Sealed commits"):
//! what a type-8 commit record would say, a nonce that only the reserve
//! record and the seal hold, and the caller's bytes, under a CRC-32C.

use crate::crc::crc32c;
use crate::objid::ObjectId;

/// The first 8 bytes of a seal.
pub const MAGIC: [u8; 8] = *b"MPSEAL01";

/// Bytes of a seal before the caller's bytes.
pub const HEADER: usize = 44;

/// The most caller bytes a seal carries.
pub const CLIENT_MAX: usize = 16 << 10;

/// What a seal says of its mblock's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    /// Content length.
    pub len: u32,
    /// log2 of the checksum block size.
    pub shift: u8,
    /// CRC-32C of the checksum table's entries.
    pub table_crc: u32,
    /// The caller's bytes.
    pub client: Vec<u8>,
}

/// The seal of mblock `id` (bytes to write at the content's footprint,
/// zero-padded to whole sectors).
pub fn encode(id: ObjectId, nonce: u64, s: &Seal, sector: usize) -> Vec<u8> {
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
pub fn decode(b: &[u8], id: ObjectId, nonce: u64) -> Option<Seal> {
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
