//! Superblock encoding (format versions 1 to 3). See `docs/format.md`, "Superblock".
//!
//! Versions 1 and 2 put the superblock body at byte 0 of the copy.
//! Version 3 starts every copy with a 66-byte *descriptor* in the layout of
//! util-linux libblkid's `mpool` probe (magic `mpoolDev`, name, pool UUID,
//! version, low 32 bits of the generation, CRC-32C of its first 62 bytes),
//! so that `blkid`, `wipefs` and `lsblk` recognise a member, and moves the
//! version-2 body to byte [`V3_BODY`]; the CRC at the end still covers the
//! whole copy.

use crate::format::codec::{Reader, Short, Writer};
use std::fmt;
use uuid::Uuid;

/// Bytes of one superblock copy.
pub const SB_SIZE: usize = 4096;
/// Byte offsets of the two copies on every device.
pub const SB_OFFSETS: [u64; 2] = [0, 32 * 1024];
/// Smallest logical sector size of a device.
pub const SECTOR_MIN: u32 = 512;
/// Largest logical sector size of a device: the distance between the two
/// copies, so that a copy written as whole sectors never reaches the other
/// and copy 1's offset is a multiple of every accepted sector size.
pub const SECTOR_MAX: u32 = (SB_OFFSETS[1] - SB_OFFSETS[0]) as u32;
const _: () = assert!(SECTOR_MIN.is_power_of_two() && SECTOR_MAX.is_power_of_two());
const _: () = assert!(SECTOR_MIN <= SECTOR_MAX);
// Copy 0, rounded up to the largest sector, ends at or before copy 1; both
// copy offsets are aligned for every accepted sector size.
const _: () = assert!(
    SB_OFFSETS[0] + (SB_SIZE as u64).div_ceil(SECTOR_MAX as u64) * SECTOR_MAX as u64
        <= SB_OFFSETS[1]
);
const _: () = assert!(SB_OFFSETS[0].is_multiple_of(SECTOR_MAX as u64));
const _: () = assert!(SB_OFFSETS[1].is_multiple_of(SECTOR_MAX as u64));
// A superblock is whole sectors of the smallest size.
const _: () = assert!(SB_SIZE.is_multiple_of(SECTOR_MIN as usize));
/// Magic at offset 0 of every version-1 and version-2 copy, and at the
/// start of the body (offset [`V3_BODY`]) of a version-3 copy.
pub const SB_MAGIC: [u8; 8] = *b"MPOOLSB\0";
/// Magic at offset 0 of every version-3 copy: libblkid's `mpool` magic.
pub const SB_MAGIC_V3: [u8; 8] = *b"mpoolDev";
/// First format version with the libblkid descriptor at offset 0.
pub const SB_VERSION_DESCRIPTOR: u16 = 3;
/// Bytes of the version-3 descriptor that libblkid reads (its CRC included).
pub const V3_DESC_LEN: usize = 66;
/// Offset of the descriptor's CRC-32C (over bytes `0..V3_DESC_CRC`).
pub const V3_DESC_CRC: usize = 62;
/// Offset of the version-2 body inside a version-3 copy.
pub const V3_BODY: usize = 128;
const V3_DESC_NAME: usize = 8;
const V3_DESC_UUID: usize = 40;
const V3_DESC_VERSION: usize = 56;
const V3_DESC_GEN: usize = 58;
const _: () = assert!(V3_DESC_CRC + 4 == V3_DESC_LEN && V3_DESC_LEN <= V3_BODY);
/// Flag bit (field `flags`, version 3 only): the superblocks were upgraded
/// to version 3 but the pool metadata was not yet rewritten (an `mpool
/// upgrade` that has not finished).
pub const FLAG_UPGRADE_PENDING: u32 = 1;
/// The format version this code gives new pools (it reads 1 to 3).
///
/// Version 2 adds the pool-metadata record type 7 (an mblock commit whose
/// content shares its record's flush). A pool keeps the version it was
/// created with: superblock rewrites preserve it, and a version-1 pool is
/// committed to the version-1 way, so older code keeps opening it.
pub const SB_VERSION: u16 = 3;
/// The oldest format version this code reads.
pub const SB_VERSION_MIN: u16 = 1;
/// Most member devices a pool can have.
pub const MAX_MEMBERS: usize = 8;
/// Longest pool name.
pub const NAME_MAX: usize = 31;
/// Longest label.
pub const LABEL_MAX: usize = 63;

const OFF_VERSION: usize = 8;
const OFF_LEN: usize = 10;
const OFF_FLAGS: usize = 12;
const OFF_GEN: usize = 16;
const OFF_POOL_UUID: usize = 24;
const OFF_DEV_UUID: usize = 40;
const OFF_NAME: usize = 56;
const OFF_CLASS: usize = 88;
const OFF_COPY: usize = 89;
const OFF_SECTOR: usize = 92;
const OFF_DEV_SIZE: usize = 96;
const OFF_ZONE: usize = 104;
const OFF_CTIME: usize = 112;
const OFF_UID: usize = 120;
const OFF_GID: usize = 124;
const OFF_MODE: usize = 128;
const OFF_SPARE: usize = 132;
const OFF_NMEMBERS: usize = 134;
const OFF_LABEL: usize = 136;
const OFF_MDC0: usize = 200;
const OFF_MEMBERS: usize = 216;
const MEMBER_SIZE: usize = 32;
const OFF_CRC: usize = SB_SIZE - 4;
// The fields do not overlap and fit the superblock ahead of its CRC (so
// that `put` never falls outside the buffer).
const _: () = assert!(OFF_NAME + NAME_MAX <= OFF_CLASS);
const _: () = assert!(OFF_LABEL + LABEL_MAX <= OFF_MDC0);
const _: () = assert!(OFF_MDC0 + 8 <= OFF_MEMBERS);
const _: () = assert!(OFF_MEMBERS + MAX_MEMBERS * MEMBER_SIZE <= OFF_CRC);
// The version-3 body's fields (everything before the v2 reserved tail) fit
// ahead of the CRC.
const _: () = assert!(V3_BODY + OFF_MEMBERS + MAX_MEMBERS * MEMBER_SIZE <= OFF_CRC);
const _: () = assert!(SB_SIZE <= u16::MAX as usize);

/// A media class: where objects are placed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum MediaClass {
    /// The required bulk class.
    Capacity,
    /// The optional fast class.
    Staging,
}

impl MediaClass {
    /// Every class, in on-media code order.
    pub const ALL: [MediaClass; 2] = [MediaClass::Capacity, MediaClass::Staging];

    /// On-media code.
    pub fn code(self) -> u8 {
        match self {
            MediaClass::Capacity => 0,
            MediaClass::Staging => 1,
        }
    }

    /// From an on-media code.
    pub fn from_code(c: u8) -> Option<Self> {
        match c {
            0 => Some(MediaClass::Capacity),
            1 => Some(MediaClass::Staging),
            _ => None,
        }
    }

    /// Index into per-class arrays.
    pub fn index(self) -> usize {
        self.code() as usize
    }
}

impl fmt::Display for MediaClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MediaClass::Capacity => "capacity",
            MediaClass::Staging => "staging",
        })
    }
}

impl std::str::FromStr for MediaClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "capacity" | "cap" => Ok(MediaClass::Capacity),
            "staging" | "stage" => Ok(MediaClass::Staging),
            _ => Err(format!(
                "unknown media class '{s}' (expected capacity or staging)"
            )),
        }
    }
}

/// One member device as every superblock lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    /// The device's identity (its superblock's `dev_uuid`).
    pub dev_uuid: Uuid,
    /// Its media class.
    pub class: MediaClass,
    /// Its zone (mblock) size in bytes.
    pub zone_size: u64,
    /// Its usable size in bytes when added.
    pub size: u64,
}

/// Where MDC0 lives: two logs of `zones` zones each, starting at zone
/// `zone` of the capacity device (0 = not yet created).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Mdc0Loc {
    /// First zone of log A; log B follows it.
    pub zone: u32,
    /// Zones per log.
    pub zones: u32,
}

/// A decoded superblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// Format version of the pool ([`SB_VERSION_MIN`]..=[`SB_VERSION`]).
    pub version: u16,
    /// Bumped by every update of the pool's superblocks.
    pub generation: u64,
    /// The pool's identity.
    pub pool_uuid: Uuid,
    /// This device's identity.
    pub dev_uuid: Uuid,
    /// The pool name.
    pub name: String,
    /// This device's media class.
    pub class: MediaClass,
    /// Logical sector size the pool was created with.
    pub sector: u32,
    /// Device size in bytes at create.
    pub dev_size: u64,
    /// Zone (mblock) size of this device's class.
    pub zone_size: u64,
    /// Creation time, seconds since the epoch.
    pub ctime: u64,
    /// Owner uid applied to member devices.
    pub uid: u32,
    /// Owner gid applied to member devices.
    pub gid: u32,
    /// Permission bits applied to member devices.
    pub mode: u32,
    /// Spare percentage per media class (indexed by [`MediaClass::index`]).
    pub spare_pct: [u8; 2],
    /// Free-form label.
    pub label: String,
    /// Location of MDC0 (capacity device).
    pub mdc0: Mdc0Loc,
    /// Every member device of the pool.
    pub members: Vec<Member>,
    /// Version 3 only: an `mpool upgrade` rewrote the superblocks but not
    /// yet the pool metadata ([`FLAG_UPGRADE_PENDING`]); always false in
    /// versions 1 and 2.
    pub upgrade_pending: bool,
}

/// Why a superblock copy could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SuperblockError {
    /// Fewer bytes than a superblock.
    #[error("superblock truncated: {0} bytes")]
    Truncated(usize),
    /// No mpool magic: this is not an mpool superblock.
    #[error("no mpool superblock magic")]
    NoMagic,
    /// Checksum mismatch.
    #[error("superblock checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    BadCrc {
        /// Stored value.
        stored: u32,
        /// Computed value.
        computed: u32,
    },
    /// Written by a newer or unknown format.
    #[error("unsupported superblock format version {0} (this mpool reads versions {SB_VERSION_MIN} to {SB_VERSION})")]
    Version(u16),
    /// A field holds an impossible value.
    #[error("invalid superblock field {field}: {why}")]
    Field {
        /// Field name.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
}

/// A field past the end of the bytes given: they are a truncated superblock.
impl From<Short> for SuperblockError {
    fn from(e: Short) -> Self {
        SuperblockError::Truncated(e.len)
    }
}

fn str_field(
    b: &[u8],
    off: usize,
    max: usize,
    field: &'static str,
) -> Result<String, SuperblockError> {
    let raw = b
        .get(off..off + max + 1)
        .ok_or(SuperblockError::Truncated(b.len()))?;
    let end = raw
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| SuperblockError::Field {
            field,
            why: "not NUL-terminated".into(),
        })?;
    if raw[end..].iter().any(|&c| c != 0) {
        return Err(SuperblockError::Field {
            field,
            why: "bytes after the terminator".into(),
        });
    }
    String::from_utf8(raw[..end].to_vec()).map_err(|_| SuperblockError::Field {
        field,
        why: "not UTF-8".into(),
    })
}

/// Check a pool name: 1..=31 of `[-_.A-Za-z0-9]`, not starting with `-`.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a pool name must not be empty".into());
    }
    if name.len() > NAME_MAX {
        return Err(format!(
            "pool name '{name}' is {} characters long; at most {NAME_MAX} are allowed",
            name.len()
        ));
    }
    if name.starts_with('-') {
        return Err(format!("pool name '{name}' must not start with '-'"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "pool name '{name}' contains '{c}'; only letters, digits, '-', '_' and '.' are allowed"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("pool name '{name}' is reserved"));
    }
    Ok(())
}

/// Check a label: at most 63 bytes of printable UTF-8 without NUL.
pub fn validate_label(label: &str) -> Result<(), String> {
    if label.len() > LABEL_MAX {
        return Err(format!(
            "label is {} bytes long; at most {LABEL_MAX} are allowed",
            label.len()
        ));
    }
    if label.chars().any(|c| c.is_control()) {
        return Err("label must not contain control characters".into());
    }
    Ok(())
}

/// Smallest and largest zone size.
pub const ZONE_MIN: u64 = 64 * 1024;
/// Largest zone size.
pub const ZONE_MAX: u64 = 1 << 30;
const _: () = assert!(ZONE_MIN.is_power_of_two() && ZONE_MAX.is_power_of_two());
const _: () = assert!(ZONE_MIN <= ZONE_MAX);
// The superblock zone (the first zone, of at least ZONE_MIN bytes) holds
// both copies, each rounded up to the largest sector.
const _: () = assert!(
    SB_OFFSETS[1] + (SB_SIZE as u64).div_ceil(SECTOR_MAX as u64) * SECTOR_MAX as u64 <= ZONE_MIN
);
// Zones are whole sectors of every accepted size.
const _: () = assert!(ZONE_MIN.is_multiple_of(SECTOR_MAX as u64));
// An mblock's length (at most a zone) fits its record's 32-bit field.
const _: () = assert!(ZONE_MAX <= u32::MAX as u64);

impl Superblock {
    /// Encode copy `copy` (0 or 1) into exactly [`SB_SIZE`] bytes: in the
    /// version-1/2 layout for versions 1 and 2, with the libblkid
    /// descriptor first for version 3 and later.
    pub fn encode(&self, copy: u8) -> [u8; SB_SIZE] {
        let mut b = [0u8; SB_SIZE];
        let v3 = self.version >= SB_VERSION_DESCRIPTOR;
        let base = if v3 { V3_BODY } else { 0 };
        let fields = |b: &mut [u8]| -> Result<(), Short> {
            let name = self.name.as_bytes();
            let name = &name[..name.len().min(NAME_MAX)];
            if v3 {
                let mut w = Writer::new(b);
                w.bytes(&SB_MAGIC_V3)?;
                w.seek(V3_DESC_NAME).bytes(name)?;
                w.seek(V3_DESC_UUID).bytes(self.pool_uuid.as_bytes())?;
                w.seek(V3_DESC_VERSION).u16(self.version)?;
                // The descriptor carries the low 32 bits of the generation.
                w.seek(V3_DESC_GEN).u32(self.generation as u32)?;
                let crc = crate::crc::crc32c(b.get(..V3_DESC_CRC).unwrap_or_default());
                Writer::at(b, V3_DESC_CRC).u32(crc)?;
            }
            let flags = if v3 && self.upgrade_pending {
                FLAG_UPGRADE_PENDING
            } else {
                0
            };
            let mut w = Writer::new(b);
            w.seek(base).bytes(&SB_MAGIC)?;
            w.seek(base + OFF_VERSION).u16(self.version)?;
            w.seek(base + OFF_LEN).u16(SB_SIZE as u16)?;
            w.seek(base + OFF_FLAGS).u32(flags)?;
            w.seek(base + OFF_GEN).u64(self.generation)?;
            w.seek(base + OFF_POOL_UUID).bytes(self.pool_uuid.as_bytes())?;
            w.seek(base + OFF_DEV_UUID).bytes(self.dev_uuid.as_bytes())?;
            w.seek(base + OFF_NAME).bytes(name)?;
            w.seek(base + OFF_CLASS).u8(self.class.code())?;
            w.seek(base + OFF_COPY).u8(copy)?;
            w.seek(base + OFF_SECTOR).u32(self.sector)?;
            w.seek(base + OFF_DEV_SIZE).u64(self.dev_size)?;
            w.seek(base + OFF_ZONE).u64(self.zone_size)?;
            w.seek(base + OFF_CTIME).u64(self.ctime)?;
            w.seek(base + OFF_UID).u32(self.uid)?;
            w.seek(base + OFF_GID).u32(self.gid)?;
            w.seek(base + OFF_MODE).u32(self.mode)?;
            w.seek(base + OFF_SPARE).bytes(&self.spare_pct)?;
            w.seek(base + OFF_NMEMBERS)
                .u16(self.members.len().min(MAX_MEMBERS) as u16)?;
            let label = self.label.as_bytes();
            w.seek(base + OFF_LABEL)
                .bytes(&label[..label.len().min(LABEL_MAX)])?;
            w.seek(base + OFF_MDC0)
                .u32(self.mdc0.zone)?
                .u32(self.mdc0.zones)?;
            for (i, m) in self.members.iter().take(MAX_MEMBERS).enumerate() {
                let o = base + OFF_MEMBERS + i * MEMBER_SIZE;
                w.seek(o).bytes(m.dev_uuid.as_bytes())?;
                w.seek(o + 16).u8(m.class.code())?;
                w.seek(o + 20).u32(m.zone_size.trailing_zeros())?;
                w.seek(o + 24).u64(m.size)?;
            }
            let crc = crate::crc::crc32c(b.get(..OFF_CRC).unwrap_or_default());
            Writer::at(b, OFF_CRC).u32(crc)?;
            Ok(())
        };
        // Every field lies at a constant offset inside the block.
        let written = fields(&mut b);
        debug_assert_eq!(written, Ok(()));
        b
    }

    /// Decode and validate one copy. Never panics, whatever the bytes.
    ///
    /// A copy starting with `MPOOLSB\0` is a version-1 or version-2 copy; one
    /// starting with `mpoolDev` is a version-3 copy, whose descriptor must
    /// carry a valid CRC and agree with its body (name, pool UUID, version,
    /// low 32 bits of the generation).
    pub fn decode(b: &[u8]) -> Result<(Superblock, u8), SuperblockError> {
        let magic = b.get(..8);
        let v3 = magic == Some(&SB_MAGIC_V3[..]);
        if b.len() < SB_SIZE {
            if magic == Some(&SB_MAGIC[..]) || v3 || b.len() < 8 {
                return Err(SuperblockError::Truncated(b.len()));
            }
            return Err(SuperblockError::NoMagic);
        }
        if !v3 && magic != Some(&SB_MAGIC[..]) {
            return Err(SuperblockError::NoMagic);
        }
        let stored = Reader::at(b, OFF_CRC).u32()?;
        let computed = crate::crc::crc32c(&b[..OFF_CRC]);
        if stored != computed {
            return Err(SuperblockError::BadCrc { stored, computed });
        }
        let field = |field: &'static str, why: String| SuperblockError::Field { field, why };
        if !v3 {
            let (sb, copy) = Self::decode_body(b, 0)?;
            if sb.version >= SB_VERSION_DESCRIPTOR {
                return Err(field(
                    "version",
                    format!(
                        "version {} in the version-1/2 layout (version {SB_VERSION_DESCRIPTOR} \
                         copies start with the mpoolDev descriptor)",
                        sb.version
                    ),
                ));
            }
            return Ok((sb, copy));
        }
        // Version 3: the descriptor first, then the body it must agree with.
        let dstored = Reader::at(b, V3_DESC_CRC).u32()?;
        let dcomputed = crate::crc::crc32c(&b[..V3_DESC_CRC]);
        if dstored != dcomputed {
            return Err(field(
                "descriptor",
                format!("checksum mismatch (stored {dstored:#010x}, computed {dcomputed:#010x})"),
            ));
        }
        if b[V3_DESC_LEN..V3_BODY].iter().any(|&c| c != 0) {
            return Err(field("reserved", "reserved bytes are not zero".into()));
        }
        if b.get(V3_BODY..V3_BODY + 8) != Some(&SB_MAGIC[..]) {
            return Err(field(
                "descriptor",
                "the body after the descriptor has no MPOOLSB magic".into(),
            ));
        }
        let (sb, copy) = Self::decode_body(b, V3_BODY)?;
        let dversion = Reader::at(b, V3_DESC_VERSION).u16()?;
        if sb.version < SB_VERSION_DESCRIPTOR || dversion != sb.version {
            return Err(field(
                "descriptor",
                format!(
                    "descriptor version {dversion}, body version {} (expected both {})",
                    sb.version,
                    SB_VERSION_DESCRIPTOR.max(sb.version)
                ),
            ));
        }
        let mut dname = [0u8; NAME_MAX + 1];
        dname[..sb.name.len()].copy_from_slice(sb.name.as_bytes());
        if b[V3_DESC_NAME..V3_DESC_NAME + NAME_MAX + 1] != dname {
            return Err(field(
                "descriptor",
                "its name differs from the body's".into(),
            ));
        }
        if Reader::at(b, V3_DESC_UUID).array::<16>()? != *sb.pool_uuid.as_bytes() {
            return Err(field(
                "descriptor",
                "its pool UUID differs from the body's".into(),
            ));
        }
        let dgen = Reader::at(b, V3_DESC_GEN).u32()?;
        if dgen != sb.generation as u32 {
            return Err(field(
                "descriptor",
                format!(
                    "its generation {dgen} is not the low 32 bits of the body's {}",
                    sb.generation
                ),
            ));
        }
        Ok((sb, copy))
    }

    /// Decode the version-1/2 body found at `base` (0, or [`V3_BODY`] in a
    /// version-3 copy) of a copy whose CRC was checked; its reserved tail
    /// runs up to the CRC at [`SB_SIZE`] - 4.
    fn decode_body(b: &[u8], base: usize) -> Result<(Superblock, u8), SuperblockError> {
        let at = |off: usize| Reader::at(b, base + off);
        let version = at(OFF_VERSION).u16()?;
        if !(SB_VERSION_MIN..=SB_VERSION).contains(&version) {
            return Err(SuperblockError::Version(version));
        }
        let field = |field: &'static str, why: String| SuperblockError::Field { field, why };
        if usize::from(at(OFF_LEN).u16()?) != SB_SIZE {
            return Err(field(
                "length",
                format!("{} (expected {SB_SIZE})", at(OFF_LEN).u16()?),
            ));
        }
        // Reserved bytes are zero: anything else is not ours to guess at.
        let reserved_zero = |r: std::ops::Range<usize>| {
            b.get(base + r.start..(base + r.end).min(OFF_CRC))
                .is_some_and(|x| x.iter().all(|&c| c == 0))
        };
        let byte = |off: usize| b.get(base + off).copied().ok_or(SuperblockError::Truncated(b.len()));
        let nmembers_raw = usize::from(at(OFF_NMEMBERS).u16()?);
        if nmembers_raw == 0 || nmembers_raw > MAX_MEMBERS {
            return Err(field("members", format!("count {nmembers_raw}")));
        }
        let members_ok = (0..MAX_MEMBERS).all(|i| {
            let o = OFF_MEMBERS + i * MEMBER_SIZE;
            if i < nmembers_raw {
                reserved_zero(o + 17..o + 20)
            } else {
                reserved_zero(o..o + MEMBER_SIZE)
            }
        });
        let flags = at(OFF_FLAGS).u32()?;
        let known_flags = if version >= SB_VERSION_DESCRIPTOR {
            FLAG_UPGRADE_PENDING
        } else {
            0
        };
        if flags & !known_flags != 0
            || !reserved_zero(OFF_COPY + 1..OFF_SECTOR)
            || !reserved_zero(OFF_MDC0 + 8..OFF_MEMBERS)
            || !reserved_zero(OFF_MEMBERS + MAX_MEMBERS * MEMBER_SIZE..OFF_CRC)
            || !members_ok
        {
            return Err(field("reserved", "reserved bytes are not zero".into()));
        }
        let copy = byte(OFF_COPY)?;
        if copy > 1 {
            return Err(field("copy", format!("{copy}")));
        }
        let class_code = byte(OFF_CLASS)?;
        let class = MediaClass::from_code(class_code)
            .ok_or_else(|| field("class", format!("code {class_code}")))?;
        let name = str_field(b, base + OFF_NAME, NAME_MAX, "name")?;
        validate_name(&name).map_err(|e| field("name", e))?;
        let label = str_field(b, base + OFF_LABEL, LABEL_MAX, "label")?;
        let sector = at(OFF_SECTOR).u32()?;
        if !sector.is_power_of_two() || !(SECTOR_MIN..=SECTOR_MAX).contains(&sector) {
            return Err(field("sector", format!("{sector}")));
        }
        let zone_size = at(OFF_ZONE).u64()?;
        if !zone_size.is_power_of_two() || !(ZONE_MIN..=ZONE_MAX).contains(&zone_size) {
            return Err(field("zone_size", format!("{zone_size}")));
        }
        let dev_size = at(OFF_DEV_SIZE).u64()?;
        if dev_size < zone_size.saturating_mul(2) {
            return Err(field(
                "dev_size",
                format!("{dev_size} is smaller than two zones"),
            ));
        }
        let mut members = Vec::with_capacity(nmembers_raw);
        for i in 0..nmembers_raw {
            let o = OFF_MEMBERS + i * MEMBER_SIZE;
            let code = byte(o + 16)?;
            let mclass = MediaClass::from_code(code)
                .ok_or_else(|| field("member class", format!("code {code}")))?;
            let shift = at(o + 20).u32()?;
            if !(16..=30).contains(&shift) {
                return Err(field("member zone size", format!("2^{shift}")));
            }
            members.push(Member {
                dev_uuid: Uuid::from_bytes(at(o).array()?),
                class: mclass,
                zone_size: 1u64 << shift,
                size: at(o + 24).u64()?,
            });
        }
        let dev_uuid = Uuid::from_bytes(at(OFF_DEV_UUID).array()?);
        if !members.iter().any(|m| m.dev_uuid == dev_uuid) {
            return Err(field("members", "this device is not listed".into()));
        }
        let spare_pct: [u8; 2] = at(OFF_SPARE).array()?;
        if spare_pct.iter().any(|&p| p > 99) {
            return Err(field("spare_pct", format!("{spare_pct:?}")));
        }
        let sb = Superblock {
            version,
            generation: at(OFF_GEN).u64()?,
            pool_uuid: Uuid::from_bytes(at(OFF_POOL_UUID).array()?),
            dev_uuid,
            name,
            class,
            sector,
            dev_size,
            zone_size,
            ctime: at(OFF_CTIME).u64()?,
            uid: at(OFF_UID).u32()?,
            gid: at(OFF_GID).u32()?,
            mode: at(OFF_MODE).u32()?,
            spare_pct,
            label,
            mdc0: Mdc0Loc {
                zone: at(OFF_MDC0).u32()?,
                zones: at(OFF_MDC0 + 4).u32()?,
            },
            members,
            upgrade_pending: flags & FLAG_UPGRADE_PENDING != 0,
        };
        Ok((sb, copy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Superblock {
        let dev = Uuid::from_u128(2);
        Superblock {
            version: SB_VERSION,
            generation: 7,
            pool_uuid: Uuid::from_u128(1),
            dev_uuid: dev,
            name: "pool-1.a_b".into(),
            class: MediaClass::Capacity,
            sector: 4096,
            dev_size: 1 << 30,
            zone_size: 1 << 20,
            ctime: 1_700_000_000,
            uid: 1000,
            gid: 1001,
            mode: 0o660,
            spare_pct: [5, 10],
            label: "ssd tier".into(),
            mdc0: Mdc0Loc { zone: 1, zones: 1 },
            members: vec![
                Member {
                    dev_uuid: dev,
                    class: MediaClass::Capacity,
                    zone_size: 1 << 20,
                    size: 1 << 30,
                },
                Member {
                    dev_uuid: Uuid::from_u128(3),
                    class: MediaClass::Staging,
                    zone_size: 1 << 16,
                    size: 1 << 26,
                },
            ],
            upgrade_pending: false,
        }
    }

    /// The sample in format version `v`, and where its body starts.
    fn sample_v(v: u16) -> (Superblock, usize) {
        let base = if v >= SB_VERSION_DESCRIPTOR { V3_BODY } else { 0 };
        (
            Superblock {
                version: v,
                ..sample()
            },
            base,
        )
    }

    #[test]
    fn round_trip_both_copies() {
        for v in SB_VERSION_MIN..=SB_VERSION {
            for pending in [false, true] {
                let sb = Superblock {
                    upgrade_pending: pending && v >= SB_VERSION_DESCRIPTOR,
                    ..sample_v(v).0
                };
                for copy in 0..2 {
                    let b = sb.encode(copy);
                    let (d, c) = Superblock::decode(&b).unwrap();
                    assert_eq!(d, sb);
                    assert_eq!(c, copy);
                }
            }
        }
    }

    #[test]
    fn v3_starts_with_the_libblkid_descriptor() {
        let sb = Superblock {
            generation: 0x1_2345_6789,
            ..sample()
        };
        let b = sb.encode(1);
        assert_eq!(&b[..8], b"mpoolDev");
        let mut name = [0u8; 32];
        name[..sb.name.len()].copy_from_slice(sb.name.as_bytes());
        assert_eq!(&b[8..40], &name);
        assert_eq!(&b[40..56], sb.pool_uuid.as_bytes());
        assert_eq!(&b[56..58], &3u16.to_le_bytes());
        assert_eq!(&b[58..62], &0x2345_6789u32.to_le_bytes());
        assert_eq!(&b[62..66], &crate::crc::crc32c(&b[..62]).to_le_bytes());
        assert!(b[66..V3_BODY].iter().all(|&c| c == 0));
        // The body is the version-2 layout, moved to V3_BODY.
        assert_eq!(&b[V3_BODY..V3_BODY + 8], b"MPOOLSB\0");
        let v2 = Superblock {
            version: 2,
            ..sb.clone()
        }
        .encode(1);
        assert_eq!(&b[V3_BODY + OFF_LEN..V3_BODY + 472], &v2[OFF_LEN..472]);
        assert_eq!(&b[OFF_CRC..], &crate::crc::crc32c(&b[..OFF_CRC]).to_le_bytes());
    }

    /// Overwrite `bytes` at `off`, fix both CRCs, decode.
    fn edited(
        mut b: [u8; SB_SIZE],
        off: usize,
        bytes: &[u8],
    ) -> Result<(Superblock, u8), SuperblockError> {
        b[off..off + bytes.len()].copy_from_slice(bytes);
        if b[..8] == SB_MAGIC_V3 {
            let crc = crate::crc::crc32c(&b[..V3_DESC_CRC]);
            b[V3_DESC_CRC..V3_DESC_LEN].copy_from_slice(&crc.to_le_bytes());
        }
        recrc(&mut b);
        Superblock::decode(&b)
    }

    #[test]
    fn a_v3_descriptor_that_disagrees_with_its_body_is_damaged() {
        let b = sample().encode(0);
        let cases: Vec<(usize, Vec<u8>)> = vec![
            (V3_DESC_NAME, b"pool-2".to_vec()),
            (V3_DESC_NAME + 20, vec![b'x']),
            (V3_DESC_UUID, vec![0xaa]),
            (V3_DESC_VERSION, 2u16.to_le_bytes().to_vec()),
            (V3_DESC_VERSION, 4u16.to_le_bytes().to_vec()),
            (V3_DESC_GEN, 8u32.to_le_bytes().to_vec()),
            (V3_BODY, b"MPOOLSX".to_vec()),
            (V3_BODY + OFF_VERSION, 2u16.to_le_bytes().to_vec()),
        ];
        for (off, bytes) in cases {
            match edited(b, off, &bytes) {
                Err(SuperblockError::Field { field, .. }) => {
                    assert_eq!(field, "descriptor", "at {off}")
                }
                other => panic!("at {off}: {other:?}"),
            }
        }
        // The descriptor's own CRC, stale with the copy's CRC fixed.
        let mut c = b;
        c[V3_DESC_NAME] ^= 1;
        recrc(&mut c);
        assert!(matches!(
            Superblock::decode(&c),
            Err(SuperblockError::Field {
                field: "descriptor",
                ..
            })
        ));
        // Reserved bytes between the descriptor and the body.
        assert!(matches!(
            edited(b, V3_DESC_LEN + 3, &[1]),
            Err(SuperblockError::Field {
                field: "reserved",
                ..
            })
        ));
        // A v2-layout copy claiming version 3, and a truncated v3 copy.
        let v2 = sample_v(2).0.encode(0);
        assert!(matches!(
            edited(v2, OFF_VERSION, &3u16.to_le_bytes()),
            Err(SuperblockError::Field {
                field: "version",
                ..
            })
        ));
        assert_eq!(
            Superblock::decode(&b[..100]),
            Err(SuperblockError::Truncated(100))
        );
        // The upgrade flag is refused before version 3.
        assert!(matches!(
            edited(v2, OFF_FLAGS, &FLAG_UPGRADE_PENDING.to_le_bytes()),
            Err(SuperblockError::Field {
                field: "reserved",
                ..
            })
        ));
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        for v in [2, SB_VERSION] {
        let b = sample_v(v).0.encode(0);
        // Flip each bit of the header and a sample of the rest: never accepted as a different superblock.
        for byte in (0..SB_SIZE).filter(|i| *i < 512 || i % 61 == 0) {
            for bit in 0..8 {
                let mut c = b;
                c[byte] ^= 1 << bit;
                match Superblock::decode(&c) {
                    Err(SuperblockError::BadCrc { .. }) | Err(SuperblockError::NoMagic) => {}
                    other => panic!("flip at {byte}:{bit} gave {other:?}"),
                }
            }
        }
        }
    }

    #[test]
    fn truncated_zeroed_and_foreign() {
        let b = sample().encode(0);
        assert_eq!(
            Superblock::decode(&b[..100]),
            Err(SuperblockError::Truncated(100))
        );
        assert_eq!(
            Superblock::decode(&[0u8; SB_SIZE]),
            Err(SuperblockError::NoMagic)
        );
        assert_eq!(Superblock::decode(&[]), Err(SuperblockError::Truncated(0)));
        assert_eq!(
            Superblock::decode(&[0xffu8; 10]),
            Err(SuperblockError::NoMagic)
        );
    }

    fn recrc(b: &mut [u8; SB_SIZE]) {
        let crc = crate::crc::crc32c(&b[..OFF_CRC]);
        b[OFF_CRC..].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn future_and_unknown_versions_refused_older_kept() {
        for v in [0u16, SB_VERSION + 1, u16::MAX] {
            let b = sample_v(2).0.encode(0);
            assert_eq!(
                edited(b, OFF_VERSION, &v.to_le_bytes()),
                Err(SuperblockError::Version(v))
            );
            let b = sample().encode(0);
            assert_eq!(
                edited(b, V3_BODY + OFF_VERSION, &v.to_le_bytes()),
                Err(SuperblockError::Version(v))
            );
        }
        // A version-1 superblock decodes as version 1 and is written back as such.
        let old = Superblock {
            version: 1,
            ..sample()
        };
        let b = old.encode(1);
        assert_eq!(Reader::at(&b, OFF_VERSION).u16(), Ok(1));
        assert_eq!(Superblock::decode(&b).map(|s| s.0.version), Ok(1));
    }

    #[test]
    fn invalid_fields_with_valid_crc_refused() {
        for v in [1, 2, SB_VERSION] {
            invalid_fields_refused(v);
        }
    }

    fn invalid_fields_refused(v: u16) {
        let (sb, base) = sample_v(v);
        let cases: Vec<(usize, Vec<u8>, &str)> = vec![
            (OFF_CLASS, vec![9], "class"),
            (OFF_COPY, vec![2], "copy"),
            (OFF_NAME, vec![b'-'], "name"),
            (OFF_NAME, vec![b'a'; 32], "name"),
            (OFF_SECTOR, 100u32.to_le_bytes().to_vec(), "sector"),
            (OFF_ZONE, 3000u64.to_le_bytes().to_vec(), "zone_size"),
            (OFF_DEV_SIZE, 10u64.to_le_bytes().to_vec(), "dev_size"),
            (OFF_NMEMBERS, 0u16.to_le_bytes().to_vec(), "members"),
            (OFF_NMEMBERS, 9u16.to_le_bytes().to_vec(), "members"),
            (OFF_SPARE, vec![100], "spare_pct"),
            (OFF_DEV_UUID, vec![0xee; 16], "members"),
            (OFF_LABEL, vec![0xff, 0xfe], "label"),
            (OFF_LEN, 512u16.to_le_bytes().to_vec(), "length"),
            (OFF_FLAGS, vec![if base == 0 { 1 } else { 4 }], "reserved"),
            (90, vec![1], "reserved"),
            (OFF_MEMBERS + 17, vec![1], "reserved"),
            (OFF_MEMBERS + 2 * MEMBER_SIZE, vec![1], "reserved"),
            (OFF_CRC - 1 - base, vec![1], "reserved"),
            (OFF_FLAGS, vec![2], "reserved"),
        ];
        for (off, bytes, field) in cases {
            match edited(sb.encode(0), base + off, &bytes) {
                // The name is also in the v3 descriptor, which then disagrees.
                Err(SuperblockError::Field { field: f, .. })
                    if f == field || (field == "name" && f == "descriptor" && base > 0) => {}
                other => panic!("v{v} {field} at {off}: {other:?}"),
            }
        }
    }

    proptest::proptest! {
        /// Random bytes, and valid superblocks with random bytes overwritten and the
        /// checksum fixed up, never panic; whatever decodes encodes back identically.
        #[test]
        fn decode_never_panics_and_round_trips(
            noise in proptest::collection::vec(proptest::num::u8::ANY, 0..5000),
            edits in proptest::collection::vec((0usize..SB_SIZE, proptest::num::u8::ANY), 0..8),
        ) {
            let _ = Superblock::decode(&noise);
            for v in [2, SB_VERSION] {
                let mut b = sample_v(v).0.encode(1);
                for &(o, x) in &edits {
                    b[o] = x;
                }
                if v == SB_VERSION {
                    let crc = crate::crc::crc32c(&b[..V3_DESC_CRC]);
                    b[V3_DESC_CRC..V3_DESC_LEN].copy_from_slice(&crc.to_le_bytes());
                }
                recrc(&mut b);
                if let Ok((sb, copy)) = Superblock::decode(&b) {
                    proptest::prop_assert_eq!(&sb.encode(copy)[..], &b[..]);
                }
            }
        }
    }

    #[test]
    fn names() {
        for ok in ["a", "pool-1", "A.b_c", &"x".repeat(31)] {
            validate_name(ok).unwrap();
        }
        for bad in ["", "-x", "a/b", "a b", "ä", &"x".repeat(32), ".", ".."] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
