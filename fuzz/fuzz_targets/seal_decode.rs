//! Seal decoder (docs/format.md, "Sealed commits"), structure-aware.
//!
//! A seal is found by its magic, its mblock ID and its nonce, and trusted
//! only with a CRC-32C over its header and the caller's bytes: raw bytes
//! never get past the first compare. So the fuzzer's bytes choose a seal
//! (length, shift mostly 12..=16, table CRC, 0..600 caller bytes), which
//! the library encodes, then 0..3 overwrites of a byte or a field (the
//! reserved bytes, the shift, the caller-byte count too), the CRC mostly
//! recomputed over the mutated bytes (sometimes left stale), sometimes a
//! cut or more bytes; then it is decoded under the right or another
//! ID/nonce. Sometimes raw bytes.
//!
//! Contract checked: the decoder never panics; a seal built from valid
//! fields decodes to itself under its ID and nonce and to nothing under
//! another; whatever decodes re-encodes to the same header and caller
//! bytes, and was read from within the bytes given.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use mpool::format::seal::{decode, encode, Seal, CLIENT_MAX, HEADER};
use mpool::{ObjType, ObjectId};

fn check(b: &[u8], id: ObjectId, nonce: u64) {
    if let Some(s) = decode(b, id, nonce) {
        assert!(HEADER + s.client.len() <= b.len());
        assert!(s.client.len() <= CLIENT_MAX);
        assert!((12..=16).contains(&s.shift));
        let again = encode(id, nonce, &s, 512);
        let n = HEADER + s.client.len();
        assert_eq!(&again[..n], &b[..n], "{s:?} re-encodes differently");
    }
}

fn run(u: &mut Unstructured) -> Result<()> {
    let id = ObjectId::new(
        ObjType::Mblock,
        u.int_in_range(1..=255)?,
        u.int_in_range(0..=(1u64 << 52) - 1)?,
    );
    let nonce: u64 = u.arbitrary()?;
    if u.ratio(1, 16)? {
        check(u.bytes(u.len())?, id, nonce);
        return Ok(());
    }
    let n = u.int_in_range(0..=600usize)?;
    let seal = Seal {
        len: u.arbitrary()?,
        shift: if u.ratio(1, 16)? {
            u.arbitrary()?
        } else {
            u.int_in_range(12..=16)?
        },
        table_crc: u.arbitrary()?,
        client: u.bytes(n)?.to_vec(),
    };
    let sector = *u.choose(&[512usize, 4096])?;
    let mut b = encode(id, nonce, &seal, sector);
    let valid = (12..=16).contains(&seal.shift);
    if valid {
        assert_eq!(decode(&b, id, nonce), Some(seal.clone()));
        assert_eq!(decode(&b, id, nonce ^ 1), None, "another nonce");
    }
    let changes = u.int_in_range(0..=3u8)?;
    for _ in 0..changes {
        match u.int_in_range(0..=3u8)? {
            // A byte anywhere in the header or the caller's bytes.
            0 => {
                let at = u.int_in_range(0..=HEADER + n - 1)?;
                b[at] = u.arbitrary()?;
            }
            // The reserved bytes or the shift.
            1 => {
                let at = u.int_in_range(28..=31usize)?;
                b[at] = u.arbitrary()?;
            }
            // The caller-byte count, around its value and the limit.
            2 => {
                let c: u32 = *u.choose(&[
                    n as u32 + 1,
                    n.saturating_sub(1) as u32,
                    CLIENT_MAX as u32,
                    CLIENT_MAX as u32 + 1,
                    u32::MAX,
                ])?;
                b[36..40].copy_from_slice(&c.to_le_bytes());
            }
            // The length or the table CRC.
            _ => {
                let at = *u.choose(&[24usize, 32])?;
                b[at..at + 4].copy_from_slice(&u.arbitrary::<u32>()?.to_le_bytes());
            }
        }
    }
    if changes > 0 && !u.ratio(1, 8)? {
        // The CRC over the mutated bytes, as a writer would have made it.
        let count = u32::from_le_bytes([b[36], b[37], b[38], b[39]]) as usize;
        let end = (HEADER + count).min(b.len());
        let mut crc = crc32c::crc32c(&b[..40]);
        crc = crc32c::crc32c_append(crc, &b[HEADER.min(end)..end]);
        b[40..44].copy_from_slice(&crc.to_le_bytes());
    }
    match u.int_in_range(0..=7u8)? {
        0 => {
            let keep = u.int_in_range(0..=b.len())?;
            b.truncate(keep)
        }
        1 => {
            let more = u.int_in_range(0..=64usize)?;
            b.extend_from_slice(u.bytes(more)?)
        }
        _ => {}
    }
    check(&b, id, nonce);
    check(&b, ObjectId::new(ObjType::Mblock, 1, 1), nonce);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
