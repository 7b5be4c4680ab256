//! Pool-metadata record decoder, structure-aware.
//!
//! A record carries no checksum of its own (the mlog frames it), but its
//! decoder only gets past the type byte and the exact-length check with the
//! right type/length pair, and past the field checks with a valid object ID
//! (type 1..=3, MDC != 0) and media class, and (type 8) a checksum block
//! shift of 12..=16 and known flags, and (type 9) an mblock ID. So the
//! fuzzer's bytes choose a type (mostly 1..=9), the fields (IDs, classes, shifts and flags mostly
//! valid; a type-8 record's table CRC is the valid CRC-32C of a checksum
//! table built for its length and shift) and the length (mostly exact,
//! sometimes one byte short or long), then a few byte overwrites;
//! sometimes the raw bytes are decoded as they are.
//!
//! Contract checked: the decoder never panics; whatever decodes encodes back
//! to exactly the same bytes; a record built from valid fields decodes to
//! itself; the checksum-table layout of any type-8 record that decodes is
//! consistent (whole sectors after the content, one entry per block) and
//! never overflows.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use mpool::format::record::{CatalogRecord, CsumLayout, RECORD_MAX_LEN};
use mpool::{MediaClass, ObjType, ObjectId};

/// Exact encoded length of each record type (docs/format.md, "Records").
fn exact_len(t: u8) -> usize {
    match t {
        1 => 14,
        2 | 3 | 6 => 9,
        4 | 5 | 7 => 22,
        8 => 24,
        9 => 30,
        _ => 1,
    }
}

fn check(b: &[u8]) {
    if let Ok(r) = CatalogRecord::decode(b) {
        assert_eq!(r.encode(), b, "{r:?} re-encodes differently");
        if let CatalogRecord::MblockCsum {
            len, csum_shift, ..
        } = r
        {
            layout(u64::from(len), csum_shift);
        }
    }
}

/// The table layout of a type-8 record on sectors of 512 and 4096 bytes.
fn layout(len: u64, shift: u8) {
    assert!((12..=16).contains(&shift));
    for sector in [512u64, 4096] {
        let l = CsumLayout { len, shift, sector };
        assert_eq!(l.table_bytes(), 4 * l.blocks());
        assert!(l.blocks() << shift >= len && l.blocks().saturating_sub(1) << shift < len.max(1));
        assert!(l.table_offset() >= len && l.table_offset() % sector == 0);
        assert!(l.table_span() >= l.table_bytes() && l.table_span() % sector == 0);
        assert_eq!(l.footprint(), l.table_offset() + l.table_span());
    }
}

/// The CRC-32C of a checksum table for content of `len` bytes in blocks
/// of `1 << shift`: its entries from the fuzzer's bytes (at most 64 of
/// them drawn; the rest zero), as a commit computes it over the entries.
fn table_crc(u: &mut Unstructured, len: u32, shift: u8) -> Result<u32> {
    let blocks = u64::from(len).div_ceil(1 << shift);
    let mut crc = 0;
    for i in 0..blocks {
        let e: u32 = if i < 64 { u.arbitrary()? } else { 0 };
        crc = crc32c::crc32c_append(crc, &e.to_le_bytes());
    }
    Ok(crc)
}

fn shift(u: &mut Unstructured) -> Result<u8> {
    Ok(if u.ratio(1, 16)? {
        u.arbitrary()?
    } else {
        u.int_in_range(12..=16)?
    })
}

fn class_byte(u: &mut Unstructured) -> Result<u8> {
    Ok(if u.ratio(1, 16)? {
        u.arbitrary()?
    } else {
        u.int_in_range(0..=1)?
    })
}

fn id_raw(u: &mut Unstructured) -> Result<u64> {
    if u.ratio(1, 16)? {
        return u.arbitrary();
    }
    let ty = u.int_in_range(1..=3u64)?;
    let lo = if u.ratio(1, 16)? { 0 } else { 1 };
    let mdc = u.int_in_range(lo..=255u64)?;
    let uniq = u.int_in_range(0..=(1u64 << 52) - 1)?;
    Ok(uniq << 12 | mdc << 4 | ty)
}

/// Bytes of a record of type `t`, field by field.
fn bytes(u: &mut Unstructured, t: u8) -> Result<Vec<u8>> {
    let mut b = vec![t];
    match t {
        1 => {
            let index: u8 = if u.ratio(1, 16)? {
                0
            } else {
                u.int_in_range(1..=255)?
            };
            b.push(index);
            for _ in 0..3 {
                b.extend_from_slice(&u.arbitrary::<u32>()?.to_le_bytes());
            }
        }
        2 | 6 => b.extend_from_slice(&id_raw(u)?.to_le_bytes()),
        3 => b.extend_from_slice(&u.arbitrary::<u64>()?.to_le_bytes()),
        4 | 5 | 7 => {
            b.push(class_byte(u)?);
            b.extend_from_slice(&id_raw(u)?.to_le_bytes());
            for _ in 0..3 {
                b.extend_from_slice(&u.arbitrary::<u32>()?.to_le_bytes());
            }
        }
        8 => {
            b.push(class_byte(u)?);
            b.extend_from_slice(&id_raw(u)?.to_le_bytes());
            b.extend_from_slice(&u.arbitrary::<u32>()?.to_le_bytes());
            // Lengths up to 1 GiB (a zone's most), mostly.
            let len: u32 = if u.ratio(1, 16)? {
                u.arbitrary()?
            } else {
                u.int_in_range(0..=1 << 30)?
            };
            b.extend_from_slice(&len.to_le_bytes());
            let s = shift(u)?;
            b.push(s);
            let flags: u8 = if u.ratio(1, 16)? {
                u.arbitrary()?
            } else {
                u.int_in_range(0..=1)?
            };
            b.push(flags);
            let crc = if (12..=16).contains(&s) {
                table_crc(u, len, s)?
            } else {
                u.arbitrary()?
            };
            b.extend_from_slice(&crc.to_le_bytes());
        }
        9 => {
            b.push(class_byte(u)?);
            b.extend_from_slice(&id_raw(u)?.to_le_bytes());
            b.extend_from_slice(&u.arbitrary::<u32>()?.to_le_bytes());
            b.extend_from_slice(&u.arbitrary::<u64>()?.to_le_bytes());
            b.extend_from_slice(&u.arbitrary::<u64>()?.to_le_bytes());
        }
        _ => {}
    }
    Ok(b)
}

/// A record from valid fields.
fn record(u: &mut Unstructured) -> Result<CatalogRecord> {
    let ty = *u.choose(&[ObjType::Mblock, ObjType::Mlog, ObjType::Mdc])?;
    let id = ObjectId::new(ty, u.int_in_range(1..=255)?, u.arbitrary()?);
    let class = if u.arbitrary()? {
        MediaClass::Staging
    } else {
        MediaClass::Capacity
    };
    Ok(match u.int_in_range(0..=7u8)? {
        0 => CatalogRecord::MdcLoc {
            index: u.int_in_range(1..=255)?,
            zone_a: u.arbitrary()?,
            zone_b: u.arbitrary()?,
            zones: u.arbitrary()?,
        },
        1 => CatalogRecord::RootMdc { id },
        2 => CatalogRecord::UniqCkpt {
            next: u.arbitrary()?,
        },
        3 => CatalogRecord::Mblock {
            id,
            class,
            zone: u.arbitrary()?,
            len: u.arbitrary()?,
            crc: u.arbitrary()?,
            shared_flush: u.arbitrary()?,
        },
        4 => CatalogRecord::Mlog {
            id,
            class,
            zone: u.arbitrary()?,
            zone_b: u.arbitrary()?,
            zones: u.arbitrary()?,
        },
        5 => {
            let len = u.int_in_range(0..=1u32 << 30)?;
            let csum_shift = u.int_in_range(12..=16)?;
            CatalogRecord::MblockCsum {
                id,
                class,
                zone: u.arbitrary()?,
                len,
                csum_shift,
                shared_flush: u.arbitrary()?,
                table_crc: table_crc(u, len, csum_shift)?,
            }
        }
        6 => CatalogRecord::MblockReserve {
            id: ObjectId::new(ObjType::Mblock, id.mdc(), id.uniq()),
            class,
            zone: u.arbitrary()?,
            owner: u.arbitrary()?,
            nonce: u.arbitrary()?,
        },
        _ => CatalogRecord::Delete { id },
    })
}

fn run(u: &mut Unstructured) -> Result<()> {
    match u.int_in_range(0..=7u8)? {
        // Raw bytes.
        0 => {
            check(u.bytes(u.len())?);
            Ok(())
        }
        // Encode a valid record: it must decode to itself.
        1 => {
            let r = record(u)?;
            let b = r.encode();
            assert!(b.len() <= RECORD_MAX_LEN);
            assert_eq!(CatalogRecord::decode(&b), Ok(r), "{b:02x?}");
            Ok(())
        }
        // Field by field, then length and byte changes.
        _ => {
            let t = if u.ratio(1, 16)? {
                u.arbitrary()?
            } else {
                u.int_in_range(1..=9)?
            };
            let mut b = bytes(u, t)?;
            debug_assert_eq!(b.len(), exact_len(t));
            match u.int_in_range(0..=15u8)? {
                0 => {
                    b.pop();
                }
                1 => b.push(u.arbitrary()?),
                _ => {}
            }
            for _ in 0..u.int_in_range(0..=2u8)? {
                if b.is_empty() {
                    break;
                }
                let i = u.choose_index(b.len())?;
                b[i] = u.arbitrary()?;
            }
            check(&b);
            Ok(())
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
});
