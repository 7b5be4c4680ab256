//! Superblock decoder, structure-aware.
//!
//! The fuzzer's bytes choose the fields of a superblock (mostly in range),
//! which the library encodes (valid magic and CRC-32C); then a few byte or
//! field overwrites are applied and the checksum is recomputed, usually, so
//! that the field validation behind the CRC check is reached (sometimes it is
//! left stale or broken, so the rejection path stays covered). Sometimes the
//! raw bytes are decoded as they are.
//!
//! Contract checked: the decoder never panics; whatever decodes encodes back
//! to the same 4096 bytes; a superblock built with every field in range
//! decodes to itself. `superblock::read` (both copies on a device) and the
//! foreign-signature probe are fed the same bytes. Versions 1 and 2 use
//! the version-1/2 layout; version 3 copies start with libblkid's `mpoolDev`
//! descriptor (its own CRC-32C over bytes 0..62, recomputed with the
//! copy's CRC) and carry the body at `V3_BODY`.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use mpool::dev::{Device, MemDevice};
use mpool::format::superblock::{
    validate_name, Mdc0Loc, MediaClass, Member, Superblock, LABEL_MAX, MAX_MEMBERS, SB_OFFSETS,
    SB_SIZE, V3_BODY, V3_DESC_CRC, V3_DESC_LEN,
};
use uuid::Uuid;

const OFF_CRC: usize = SB_SIZE - 4;

/// Field offsets (docs/format.md, "Superblock") with their widths: targets
/// for whole-field overwrites.
const FIELDS: &[(usize, usize)] = &[
    (8, 2),    // version
    (10, 2),   // length
    (12, 4),   // flags
    (16, 8),   // generation
    (40, 8),   // dev_uuid (first half)
    (56, 8),   // name
    (87, 1),   // name terminator
    (88, 1),   // class
    (89, 1),   // copy
    (90, 2),   // reserved
    (92, 4),   // sector
    (96, 8),   // dev_size
    (104, 8),  // zone_size
    (128, 4),  // mode
    (132, 1),  // spare_pct capacity
    (133, 1),  // spare_pct staging
    (134, 2),  // members
    (136, 8),  // label
    (199, 1),  // label terminator
    (200, 4),  // mdc0_zone
    (208, 8),  // reserved
    (216, 8),  // member 0 dev_uuid
    (232, 1),  // member 0 class
    (233, 3),  // member 0 reserved
    (236, 4),  // member 0 zone_shift
    (268, 4),  // member 1 zone_shift
    (248, 1),  // member 1 class
    (280, 8),  // member 2 dev_uuid (unused entries must be zero)
    (472, 8),  // reserved tail
    (4088, 4), // reserved tail, end
];

/// Version-3 descriptor fields (offsets from the start of the copy).
const DESC_FIELDS: &[(usize, usize)] = &[
    (0, 8),   // magic
    (8, 8),   // name
    (39, 1),  // name, last byte
    (40, 8),  // pool_uuid (first half)
    (56, 2),  // version
    (58, 4),  // generation (low 32 bits)
    (62, 4),  // descriptor CRC
    (66, 8),  // reserved
    (120, 8), // reserved, end
];

const NAME_CHARS: &[u8] = b"abcXYZ019-_.";

fn name(u: &mut Unstructured) -> Result<String> {
    if u.ratio(1, 16)? {
        return u.arbitrary(); // anything, even invalid or too long
    }
    let n = u.int_in_range(1..=31usize)?;
    let mut s = String::with_capacity(n);
    for _ in 0..n {
        s.push(*u.choose(NAME_CHARS)? as char);
    }
    Ok(s)
}

fn label(u: &mut Unstructured) -> Result<String> {
    if u.ratio(1, 8)? {
        return u.arbitrary();
    }
    let n = u.int_in_range(0..=LABEL_MAX)?;
    Ok(std::iter::repeat_n('l', n).collect())
}

fn pow2(u: &mut Unstructured, lo: u32, hi: u32) -> Result<u64> {
    Ok(1u64 << u.int_in_range(lo..=hi)?)
}

fn class(u: &mut Unstructured) -> Result<MediaClass> {
    Ok(if u.arbitrary()? {
        MediaClass::Staging
    } else {
        MediaClass::Capacity
    })
}

/// A superblock whose fields are in range unless the fuzzer's bytes say
/// otherwise; the bool says whether every field is in range.
fn superblock(u: &mut Unstructured) -> Result<(Superblock, bool)> {
    let mut valid = true;
    let version = match u.int_in_range(0..=7u8)? {
        0 => {
            let v: u16 = u.arbitrary()?;
            valid &= (1..=3).contains(&v);
            v
        }
        1..=2 => 1,
        3..=4 => 2,
        _ => 3,
    };
    let dev_uuid = Uuid::from_u128(u.arbitrary()?);
    let name = name(u)?;
    valid &= validate_name(&name).is_ok();
    let label = label(u)?;
    valid &= label.len() <= LABEL_MAX && !label.contains('\0');
    let sector = if u.ratio(1, 16)? {
        valid = false;
        u.arbitrary()?
    } else {
        pow2(u, 9, 15)? as u32 // 512..=32768
    };
    let zone_size = if u.ratio(1, 16)? {
        valid = false;
        u.arbitrary()?
    } else {
        pow2(u, 16, 30)?
    };
    let dev_size = zone_size
        .saturating_mul(2)
        .saturating_add(u.arbitrary::<u32>()?.into());
    let nmembers = u.int_in_range(1..=MAX_MEMBERS)?;
    let me = u.int_in_range(0..=nmembers - 1)?;
    let mut members = Vec::with_capacity(nmembers);
    for i in 0..nmembers {
        members.push(Member {
            dev_uuid: if i == me {
                dev_uuid
            } else {
                Uuid::from_u128(u.arbitrary()?)
            },
            class: class(u)?,
            zone_size: pow2(u, 16, 30)?,
            size: u.arbitrary()?,
        });
    }
    let spare_pct = [u.int_in_range(0..=99)?, u.int_in_range(0..=99)?];
    let sb = Superblock {
        version,
        generation: u.arbitrary()?,
        pool_uuid: Uuid::from_u128(u.arbitrary()?),
        dev_uuid,
        name,
        class: class(u)?,
        sector,
        dev_size,
        zone_size,
        ctime: u.arbitrary()?,
        uid: u.arbitrary()?,
        gid: u.arbitrary()?,
        mode: u.int_in_range(0..=0o7777)?,
        spare_pct,
        label,
        mdc0: Mdc0Loc {
            zone: u.arbitrary()?,
            zones: u.arbitrary()?,
        },
        members,
        upgrade_pending: version >= 3 && u.ratio(1, 4)?,
    };
    Ok((sb, valid))
}

fn fix_crc(b: &mut [u8; SB_SIZE]) {
    if &b[..8] == b"mpoolDev" {
        let crc = crc32c::crc32c(&b[..V3_DESC_CRC]);
        b[V3_DESC_CRC..V3_DESC_LEN].copy_from_slice(&crc.to_le_bytes());
    }
    let crc = crc32c::crc32c(&b[..OFF_CRC]);
    b[OFF_CRC..].copy_from_slice(&crc.to_le_bytes());
}

/// Overwrite bytes or whole fields of an encoded copy, then fix (usually),
/// leave, or break its checksum. Returns whether anything was changed.
fn mutate(u: &mut Unstructured, b: &mut [u8; SB_SIZE]) -> Result<bool> {
    // Where the version-1/2 fields start: 0, or V3_BODY in a version-3 copy.
    let base = if &b[..8] == b"mpoolDev" { V3_BODY } else { 0 };
    let n = u.int_in_range(0..=4u8)?;
    for _ in 0..n {
        if u.arbitrary()? {
            let &(off, len) = if base > 0 && u.ratio(1, 3)? {
                u.choose(DESC_FIELDS)?
            } else {
                let &(off, len) = u.choose(FIELDS)?;
                // The body's reserved tail ends at the CRC in both layouts.
                &(if off + base + len > OFF_CRC { off } else { off + base }, len)
            };
            let v: u64 = match u.int_in_range(0..=3u8)? {
                0 => 0,
                1 => u.int_in_range(0..=16)?,
                2 => 1u64 << u.int_in_range(0..=63)?,
                _ => u.arbitrary()?,
            };
            b[off..off + len].copy_from_slice(&v.to_le_bytes()[..len]);
        } else {
            // Mostly within the used part of the block.
            let off = if u.ratio(3, 4)? {
                u.int_in_range(0..=479usize + base)?
            } else {
                u.int_in_range(0..=SB_SIZE - 1)?
            };
            b[off] = u.arbitrary()?;
        }
    }
    match u.int_in_range(0..=15u8)? {
        0 => {}               // stale checksum
        1 => b[OFF_CRC] ^= 1, // broken checksum
        _ => fix_crc(b),      // valid checksum over the mutated bytes
    }
    Ok(n > 0)
}

fn check_decode(b: &[u8]) -> Option<(Superblock, u8)> {
    let r = Superblock::decode(b).ok();
    if let Some((sb, copy)) = &r {
        let again = sb.encode(*copy);
        assert_eq!(
            &again[..],
            &b[..SB_SIZE],
            "decoded superblock re-encodes differently"
        );
    }
    r
}

fn run(data: &[u8], u: &mut Unstructured) -> Result<()> {
    match u.int_in_range(0..=15u8)? {
        // Raw bytes, as they come (the NoMagic and Truncated paths).
        0 => {
            let rest = u.bytes(u.len())?;
            check_decode(rest);
            let _ = mpool::superblock::probe_bytes(rest);
            return Ok(());
        }
        // Just the probe over the raw input.
        1 => {
            let _ = mpool::superblock::probe_bytes(data);
            return Ok(());
        }
        _ => {}
    }
    let (sb, valid) = superblock(u)?;
    let copy = if u.ratio(1, 32)? {
        2
    } else {
        u.int_in_range(0..=1)?
    };
    let mut b = sb.encode(copy);
    let changed = mutate(u, &mut b)?;
    let decoded = match u.int_in_range(0..=15u8)? {
        0 => {
            // Truncated.
            let n = u.int_in_range(0..=SB_SIZE - 1)?;
            let _ = Superblock::decode(&b[..n]);
            return Ok(());
        }
        1 => {
            // Followed by more bytes (a larger sector).
            let mut v = b.to_vec();
            v.extend_from_slice(u.bytes(u.len().min(64))?);
            check_decode(&v)
        }
        _ => check_decode(&b),
    };
    if valid && !changed && copy < 2 && decoded.as_ref() != Some(&(sb.clone(), copy)) {
        // A stale or broken checksum is the only excuse.
        let stored = u32::from_le_bytes([b[4092], b[4093], b[4094], b[4095]]);
        assert_ne!(
            stored,
            crc32c::crc32c(&b[..OFF_CRC]),
            "a superblock with every field in range did not decode to itself: {sb:?}"
        );
    }
    let _ = mpool::superblock::probe_bytes(&b);
    if u.ratio(1, 16)? {
        // Foreign signatures planted where the probe looks (docs/format.md).
        let mut big = vec![0u8; 0x10048];
        big[..SB_SIZE].copy_from_slice(&b);
        for _ in 0..u.int_in_range(1..=2u8)? {
            let (off, magic): (usize, &[u8]) = match u.int_in_range(0..=7u8)? {
                0 => (0x438, &[0x53, 0xEF]),
                1 => (0, b"XFSB"),
                2 => (0x10040, b"_BHRfS_M"),
                3 => {
                    let s = 512 * u.int_in_range(0..=3usize)?;
                    big[s + 24..s + 32].copy_from_slice(b"LVM2 001");
                    (s, b"LABELONE")
                }
                4 => (4086, b"SWAPSPACE2"),
                5 => (4086, b"SWAP-SPACE"),
                6 => (512, b"EFI PART"),
                _ => (510, &[0x55, 0xAA]),
            };
            big[off..off + magic.len()].copy_from_slice(magic);
        }
        assert!(mpool::superblock::probe_bytes(&big).is_some());
    }

    // Both copies on a device: the second an independent superblock, or this
    // one as copy 1 with another generation, or nothing.
    if u.ratio(1, 4)? {
        let sector: u32 = if u.arbitrary()? { 512 } else { 4096 };
        let len = SB_OFFSETS[1] as usize + SB_SIZE;
        let mut img = vec![0u8; len.div_ceil(sector as usize) * sector as usize];
        img[..SB_SIZE].copy_from_slice(&b);
        let second = match u.int_in_range(0..=2u8)? {
            0 => {
                let (other, _) = superblock(u)?;
                let mut c = other.encode(u.int_in_range(0..=1)?);
                mutate(u, &mut c)?;
                Some(c)
            }
            1 => {
                let mut s2 = sb.clone();
                s2.generation = u.arbitrary()?;
                let mut c = s2.encode(u.int_in_range(0..=1)?);
                mutate(u, &mut c)?;
                Some(c)
            }
            _ => None,
        };
        if let Some(c) = second {
            img[SB_OFFSETS[1] as usize..][..SB_SIZE].copy_from_slice(&c);
        }
        if u.ratio(1, 8)? {
            // Cut into copy 1.
            img.truncate(SB_OFFSETS[1] as usize);
        }
        let dev = MemDevice::from_image(img, sector);
        let d: &dyn Device = &dev;
        if let Ok(r) = mpool::superblock::read(d) {
            let best = r.best().cloned();
            let _ = r.is_blank();
            for (i, _) in r.damaged() {
                assert!(i < 2);
            }
            if let Some(best) = best {
                for c in r.copies.iter().flatten() {
                    assert!(c.generation <= best.generation);
                }
            }
        }
        let _ = mpool::superblock::probe(d);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = run(data, &mut u);
});
