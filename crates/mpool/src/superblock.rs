//! Superblock I/O on a device: read both copies, pick the newest valid one,
//! write one copy at a time, wipe, and recognise foreign signatures.

use crate::dev::{DevError, Device};
use crate::error::{Error, PoolError};
use crate::format::superblock::{Superblock, SuperblockError, SB_OFFSETS, SB_SIZE, SECTOR_MAX};
use std::fmt;
use std::path::Path;

/// What reading a device's two superblock copies found.
#[derive(Debug, Clone)]
pub struct SuperblockRead {
    /// Each copy's decode result.
    pub copies: [Result<Superblock, SuperblockError>; 2],
}

impl SuperblockRead {
    /// The newest valid copy (highest generation), if any.
    pub fn best(&self) -> Option<&Superblock> {
        self.copies
            .iter()
            .filter_map(|c| c.as_ref().ok())
            .max_by_key(|s| s.generation)
    }

    /// True when neither copy carries the mpool magic.
    pub fn is_blank(&self) -> bool {
        self.copies
            .iter()
            .all(|c| matches!(c, Err(SuperblockError::NoMagic)))
    }

    /// True when some copy carries the mpool magic (valid or damaged); a
    /// copy cut short by the end of the device does not count.
    pub fn has_magic(&self) -> bool {
        self.copies.iter().any(|c| {
            !matches!(
                c,
                Err(SuperblockError::NoMagic) | Err(SuperblockError::Truncated(_))
            )
        })
    }

    /// Copies that are not valid or older than the best, with why.
    pub fn damaged(&self) -> Vec<(usize, String)> {
        let best = self.best().map(|b| b.generation);
        self.copies
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                Err(e) => Some((i, e.to_string())),
                Ok(s) if Some(s.generation) != best => {
                    Some((i, format!("stale (generation {})", s.generation)))
                }
                Ok(_) => None,
            })
            .collect()
    }
}

fn sb_buf(dev: &dyn Device) -> crate::io::AlignedBuf {
    dev.alloc_buf(SB_SIZE)
}

/// Refuse a device whose logical sector is larger than [`SECTOR_MAX`]: on
/// it, writing superblock copy 0 (a whole sector) would overwrite copy 1.
pub fn check_sector(dev: &dyn Device) -> Result<(), Error> {
    if dev.sector() > SECTOR_MAX {
        return Err(PoolError::SectorTooLarge {
            device: dev.info().name(),
            sector: dev.sector(),
            max: SECTOR_MAX,
        }.into());
    }
    Ok(())
}

/// The error of a superblock write on a device [`check_sector`] refuses:
/// copy 1's offset is not a multiple of its sector size. Returned before
/// anything is written, so that copy 0 never overwrites copy 1.
fn unaligned_copy(dev: &dyn Device) -> Option<DevError> {
    (dev.sector() > SECTOR_MAX).then(|| DevError::Unaligned {
        device: dev.info().name(),
        offset: SB_OFFSETS[1],
        len: SB_SIZE,
        align: dev.sector(),
    })
}

/// Read and decode both copies. Device errors are errors; bad bytes are not.
pub fn read(dev: &dyn Device) -> Result<SuperblockRead, DevError> {
    let mut out: [Result<Superblock, SuperblockError>; 2] =
        [Err(SuperblockError::NoMagic), Err(SuperblockError::NoMagic)];
    for (i, off) in SB_OFFSETS.iter().enumerate() {
        if off + SB_SIZE as u64 > dev.size() {
            out[i] = Err(SuperblockError::Truncated(
                dev.size().saturating_sub(*off) as usize
            ));
            continue;
        }
        // The copy's place rounded out to whole sectors: the copy itself
        // for every sector size mpool accepts; a larger one (refused at
        // create and open) still reads, so that a probe tells what it holds.
        let within = (*off % u64::from(dev.sector())) as usize;
        let mut b = dev.alloc_buf(within + SB_SIZE);
        dev.read_at(*off - within as u64, &mut b)?;
        out[i] = match Superblock::decode(&b[within..within + SB_SIZE]) {
            Ok((sb, copy)) if usize::from(copy) == i => Ok(sb),
            Ok((_, copy)) => Err(SuperblockError::Field {
                field: "copy",
                why: format!("copy {copy} found at the place of copy {i}"),
            }),
            Err(e) => Err(e),
        };
    }
    Ok(SuperblockRead { copies: out })
}

/// Write both copies, one at a time, each followed by a flush: a crash at any
/// point leaves at least one valid copy, old or new.
/// A device with sectors larger than [`SECTOR_MAX`] is refused before
/// anything is written.
pub fn write(dev: &dyn Device, sb: &Superblock) -> Result<(), DevError> {
    if let Some(e) = unaligned_copy(dev) {
        return Err(e);
    }
    for (i, off) in SB_OFFSETS.iter().enumerate() {
        let mut b = sb_buf(dev);
        b[..SB_SIZE].copy_from_slice(&sb.encode(i as u8));
        dev.write_at(*off, &mut b)?;
        dev.flush()?;
    }
    Ok(())
}

/// Zero both copies (destroy).
pub fn wipe(dev: &dyn Device) -> Result<(), DevError> {
    if let Some(e) = unaligned_copy(dev) {
        return Err(e);
    }
    for off in SB_OFFSETS {
        let mut b = sb_buf(dev);
        dev.write_at(off, &mut b)?;
    }
    dev.flush()
}

/// A signature found on a device that `create` must not overwrite without `--force`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// An mpool superblock (of the named pool).
    Mpool {
        /// Pool name.
        name: String,
        /// Pool UUID.
        uuid: uuid::Uuid,
    },
    /// mpool magic with no valid copy.
    MpoolDamaged,
    /// ext2/3/4.
    Ext,
    /// XFS.
    Xfs,
    /// Btrfs.
    Btrfs,
    /// An LVM physical volume.
    Lvm,
    /// Linux swap.
    Swap,
    /// A partition table (MBR or GPT).
    PartitionTable,
    /// A signature mpool's own probes do not know, recognised by libblkid
    /// (LUKS, mdraid, ZFS, bcache, other filesystems and tables…).
    Blkid {
        /// libblkid's `TYPE` (`crypto_LUKS`, `linux_raid_member`,
        /// `zfs_member`, `bcache`…) or `PTTYPE` (`dos`, `gpt`…).
        kind: String,
        /// True when `kind` is a partition table type.
        partition_table: bool,
    },
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signature::Mpool { name, uuid } => write!(f, "mpool pool '{name}' ({uuid})"),
            Signature::MpoolDamaged => f.write_str("a damaged mpool superblock"),
            Signature::Ext => f.write_str("an ext2/3/4 filesystem"),
            Signature::Xfs => f.write_str("an XFS filesystem"),
            Signature::Btrfs => f.write_str("a Btrfs filesystem"),
            Signature::Lvm => f.write_str("an LVM physical volume"),
            Signature::Swap => f.write_str("a swap area"),
            Signature::PartitionTable => f.write_str("a partition table"),
            Signature::Blkid {
                kind,
                partition_table: false,
            } => write!(f, "a {kind} signature (found by libblkid)"),
            Signature::Blkid {
                kind,
                partition_table: true,
            } => write!(f, "a {kind} partition table (found by libblkid)"),
        }
    }
}

/// Bytes read from the start of a device to look for signatures.
const PROBE_BYTES: usize = 128 * 1024;

/// Look for any known signature in the first 128 KiB.
pub fn probe(dev: &dyn Device) -> Result<Option<Signature>, DevError> {
    let sbr = read(dev)?;
    if let Some(sb) = sbr.best() {
        return Ok(Some(Signature::Mpool {
            name: sb.name.clone(),
            uuid: sb.pool_uuid,
        }));
    }
    if !sbr.is_blank() {
        return Ok(Some(Signature::MpoolDamaged));
    }
    let n = (PROBE_BYTES as u64).min(dev.size()) as usize;
    let n = n - n % dev.sector() as usize;
    if n == 0 {
        return Ok(None);
    }
    let mut b = dev.alloc_buf(n);
    dev.read_at(0, &mut b)?;
    Ok(probe_bytes(&b[..n]))
}

/// [`probe`], then, when mpool's own probes find nothing, libblkid on
/// `path` (the device `dev` was opened from): every signature util-linux
/// recognises. libblkid's `mpool` type (the descriptor at the start of a
/// version-3 copy) is [`Signature::MpoolDamaged`] here: mpool's own probe,
/// which runs first, found no copy it could decode. Without libblkid
/// (not installed, or `MPOOL_NO_LIBBLKID` set) this is [`probe`] alone,
/// after one warning; a device libblkid cannot read is warned about and
/// judged by [`probe`] alone too.
pub fn probe_with_blkid(dev: &dyn Device, path: &Path) -> Result<Option<Signature>, DevError> {
    if let Some(sig) = probe(dev)? {
        return Ok(Some(sig));
    }
    match crate::blkid::probe_path(path) {
        Ok(Some(found)) if found.kind == "mpool" => Ok(Some(Signature::MpoolDamaged)),
        Ok(Some(found)) => Ok(Some(Signature::Blkid {
            kind: found.kind,
            partition_table: found.partition_table,
        })),
        Ok(None) | Err(crate::blkid::Unavailable::NotLoaded) => Ok(None),
        Err(crate::blkid::Unavailable::Failed(why)) => {
            tracing::warn!(
                "{}: {why}; only mpool's built-in signature probes were run on it",
                path.display()
            );
            Ok(None)
        }
    }
}

/// Zero the area `probe` examines (the first 128 KiB), so that no foreign
/// signature outside the superblock copies (a Btrfs superblock at 64 KiB)
/// survives a forced `create` or `add`; then, where libblkid is loaded,
/// the magic bytes of every signature it still finds on `path` (the device
/// `dev` was opened from) wherever they are, as `wipefs -a` would (an
/// mdraid 0.90/1.0 superblock or ZFS label near the end of the device).
/// Only for a device joining a pool: nothing of the pool lives there yet
/// but the superblocks written after.
///
/// After the rounds libblkid probes `path` once more: a signature it still
/// finds (one it could not erase, or uncovered by the last round) is
/// [`PoolError::Signature`], rather than a pool written over it.
pub fn wipe_signatures(dev: &dyn Device, path: &Path) -> Result<(), Error> {
    let n = (PROBE_BYTES as u64).min(dev.size()) as usize;
    let n = n - n % dev.sector() as usize;
    if n == 0 {
        return Ok(());
    }
    let mut b = dev.alloc_buf(n);
    dev.write_at(0, &mut b)?;
    dev.flush()?;
    // Erasing one signature may uncover another: a few rounds.
    for _ in 0..8 {
        let magics = match crate::blkid::magics(path) {
            Ok(m) => m,
            Err(crate::blkid::Unavailable::NotLoaded) => return Ok(()),
            Err(crate::blkid::Unavailable::Failed(why)) => {
                tracing::warn!(
                    "{}: {why}; only its first 128 KiB were wiped",
                    path.display()
                );
                return Ok(());
            }
        };
        let mut erased = false;
        for m in &magics {
            erased |= zero_bytes(dev, m.offset, m.len)?;
        }
        if !erased {
            break;
        }
        dev.flush()?;
    }
    match crate::blkid::probe_path(path) {
        Ok(None) | Err(crate::blkid::Unavailable::NotLoaded) => Ok(()),
        Ok(Some(found)) => Err(PoolError::Signature {
            device: path.display().to_string(),
            sig: Signature::Blkid {
                kind: found.kind,
                partition_table: found.partition_table,
            },
        }
        .into()),
        Err(crate::blkid::Unavailable::Failed(why)) => {
            tracing::warn!(
                "{}: {why}; whether the forced wipe left a signature is not known",
                path.display()
            );
            Ok(())
        }
    }
}

/// Zero `len` bytes at `offset` (read-modify-write of the sectors holding
/// them); false when they lie (even partly) past the device's whole sectors.
fn zero_bytes(dev: &dyn Device, offset: u64, len: usize) -> Result<bool, DevError> {
    let s = u64::from(dev.sector());
    let end = offset.saturating_add(len as u64);
    let start = offset - offset % s;
    let stop = end.div_ceil(s).saturating_mul(s);
    if len == 0 || stop > dev.size() - dev.size() % s {
        return Ok(false);
    }
    let mut b = dev.alloc_buf((stop - start) as usize);
    dev.read_at(start, &mut b)?;
    let from = (offset - start) as usize;
    b[from..from + len].fill(0);
    dev.write_at(start, &mut b)?;
    Ok(true)
}

/// Signature detection over raw bytes from offset 0.
pub fn probe_bytes(b: &[u8]) -> Option<Signature> {
    let at = |off: usize, magic: &[u8]| b.get(off..off + magic.len()) == Some(magic);
    if at(0x438, &[0x53, 0xEF]) {
        return Some(Signature::Ext);
    }
    if at(0, b"XFSB") {
        return Some(Signature::Xfs);
    }
    if at(65536 + 0x40, b"_BHRfS_M") {
        return Some(Signature::Btrfs);
    }
    if (0..4).any(|s| at(s * 512, b"LABELONE") && at(s * 512 + 24, b"LVM2 001")) {
        return Some(Signature::Lvm);
    }
    if at(4096 - 10, b"SWAPSPACE2") || at(4096 - 10, b"SWAP-SPACE") {
        return Some(Signature::Swap);
    }
    if at(512, b"EFI PART") || at(510, &[0x55, 0xAA]) {
        return Some(Signature::PartitionTable);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::{CrashMode, FaultDevice, MemDevice};
    use crate::format::superblock::{Mdc0Loc, MediaClass, Member, SECTOR_MAX};
    use uuid::Uuid;

    fn sb(gen: u64) -> Superblock {
        let dev = Uuid::from_u128(9);
        Superblock {
            version: crate::format::superblock::SB_VERSION,
            generation: gen,
            pool_uuid: Uuid::from_u128(8),
            dev_uuid: dev,
            name: "p".into(),
            class: MediaClass::Capacity,
            sector: 4096,
            dev_size: 8 << 20,
            zone_size: 1 << 20,
            ctime: 0,
            uid: 0,
            gid: 0,
            mode: 0o600,
            spare_pct: [0, 0],
            label: String::new(),
            mdc0: Mdc0Loc::default(),
            members: vec![Member {
                dev_uuid: dev,
                class: MediaClass::Capacity,
                zone_size: 1 << 20,
                size: 8 << 20,
            }],
            upgrade_pending: false,
        }
    }

    #[test]
    fn a_device_with_sectors_above_the_copy_distance_is_refused_untouched() {
        let big = SECTOR_MAX * 2;
        let dev = MemDevice::new(8 << 20, big);
        match check_sector(&dev) {
            Err(Error::Pool(PoolError::SectorTooLarge { sector, max, .. })) => {
                assert_eq!((sector, max), (big, SECTOR_MAX));
            }
            other => panic!("expected SectorTooLarge, got {other:?}"),
        }
        assert!(check_sector(&MemDevice::new(8 << 20, SECTOR_MAX)).is_ok());
        // Nothing is written: copy 0 cannot overwrite copy 1.
        assert!(matches!(
            write(&dev, &sb(1)),
            Err(DevError::Unaligned { align, .. }) if align == big
        ));
        assert!(wipe(&dev).is_err());
        // It still reads (blank), so that `create` gets to the clear error.
        let r = read(&dev).unwrap();
        assert!(r.is_blank());
        assert_eq!(probe(&dev).unwrap(), None);
    }

    #[test]
    fn newest_valid_copy_wins_and_each_corrupted_copy_case() {
        let dev = MemDevice::new(8 << 20, 4096);
        assert!(read(&dev).unwrap().is_blank());
        write(&dev, &sb(1)).unwrap();
        write(&dev, &sb(2)).unwrap();
        let r = read(&dev).unwrap();
        assert_eq!(r.best().unwrap().generation, 2);
        assert!(r.damaged().is_empty());
        // Copy 0 corrupt: copy 1 wins.
        let mut z = dev.alloc_buf(4096);
        z[100] = 1;
        let mut c0 = dev.alloc_buf(4096);
        dev.read_at(0, &mut c0).unwrap();
        c0[200] ^= 0x10;
        dev.write_at(0, &mut c0).unwrap();
        let r = read(&dev).unwrap();
        assert_eq!(r.best().unwrap().generation, 2);
        assert_eq!(r.damaged().len(), 1);
        // Copy 1 zeroed too: nothing valid, not blank either.
        dev.write_at(SB_OFFSETS[1], &mut dev.alloc_buf(4096))
            .unwrap();
        let r = read(&dev).unwrap();
        assert!(r.best().is_none());
        assert!(!r.is_blank());
        assert_eq!(probe(&dev).unwrap(), Some(Signature::MpoolDamaged));
        // Old generation in copy 0, new in copy 1: newest wins.
        let dev = MemDevice::new(8 << 20, 4096);
        write(&dev, &sb(5)).unwrap();
        let mut b = dev.alloc_buf(4096);
        b[..SB_SIZE].copy_from_slice(&sb(6).encode(1));
        dev.write_at(SB_OFFSETS[1], &mut b).unwrap();
        assert_eq!(read(&dev).unwrap().best().unwrap().generation, 6);
        // A copy stored at the other copy's place is refused.
        b[..SB_SIZE].copy_from_slice(&sb(7).encode(1));
        dev.write_at(SB_OFFSETS[0], &mut b).unwrap();
        let r = read(&dev).unwrap();
        assert!(r.copies[0].is_err());
        assert_eq!(r.best().unwrap().generation, 6);
        wipe(&dev).unwrap();
        assert!(read(&dev).unwrap().is_blank());
    }

    #[test]
    fn a_v3_copy_whose_descriptor_disagrees_is_a_damaged_member() {
        let dev = MemDevice::new(8 << 20, 4096);
        write(&dev, &sb(4)).unwrap();
        assert!(matches!(probe(&dev).unwrap(), Some(Signature::Mpool { .. })));
        // Rename the pool in both descriptors only (their CRCs fixed, and
        // the copies' CRCs): each copy is damaged, the device is a member.
        for off in SB_OFFSETS {
            let mut b = dev.alloc_buf(4096);
            dev.read_at(off, &mut b).unwrap();
            b[8] = b'q';
            let crc = crate::crc::crc32c(&b[..62]);
            b[62..66].copy_from_slice(&crc.to_le_bytes());
            let crc = crate::crc::crc32c(&b[..4092]);
            b[4092..4096].copy_from_slice(&crc.to_le_bytes());
            dev.write_at(off, &mut b).unwrap();
        }
        let r = read(&dev).unwrap();
        assert!(r.best().is_none());
        assert!(r.has_magic());
        assert_eq!(r.damaged().len(), 2);
        assert_eq!(probe(&dev).unwrap(), Some(Signature::MpoolDamaged));
    }

    #[test]
    fn crash_at_every_point_of_an_update_leaves_old_or_new() {
        let base = FaultDevice::new(1 << 20, 512);
        write(&base, &sb(1)).unwrap();
        let img = base.durable_image();
        for point in 0..5 {
            for mode in [
                CrashMode::DropAll,
                CrashMode::KeepAll,
                CrashMode::Random {
                    keep: 0.5,
                    tear: 1.0,
                    seed: point,
                },
            ] {
                let d = FaultDevice::from_image(img.clone(), 512);
                d.crash_after(point);
                let _ = write(&d, &sb(2));
                let after = d.reboot(mode);
                let g = read(&after).unwrap().best().map(|s| s.generation);
                assert!(
                    g == Some(1) || g == Some(2),
                    "point {point} {mode:?}: {g:?}"
                );
            }
        }
    }

    #[test]
    fn foreign_signatures() {
        let mut b = vec![0u8; 128 * 1024];
        assert_eq!(probe_bytes(&b), None);
        b[0x438] = 0x53;
        b[0x439] = 0xEF;
        assert_eq!(probe_bytes(&b), Some(Signature::Ext));
        let mut b = vec![0u8; 128 * 1024];
        b[512..520].copy_from_slice(b"LABELONE");
        b[536..544].copy_from_slice(b"LVM2 001");
        assert_eq!(probe_bytes(&b), Some(Signature::Lvm));
        let mut b = vec![0u8; 128 * 1024];
        b[65600..65608].copy_from_slice(b"_BHRfS_M");
        assert_eq!(probe_bytes(&b), Some(Signature::Btrfs));
        let mut b = vec![0u8; 8192];
        b[4086..4096].copy_from_slice(b"SWAPSPACE2");
        assert_eq!(probe_bytes(&b), Some(Signature::Swap));
        assert_eq!(probe_bytes(b"XFSB"), Some(Signature::Xfs));
    }

    /// A file holding a LUKS1 header, at a non-UTF-8 path.
    fn luks_at_non_utf8_path() -> (tempfile::TempDir, std::path::PathBuf) {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir
            .path()
            .join(std::ffi::OsStr::from_bytes(b"dev-\xff\xfe.img"));
        let mut b = vec![0u8; 16 << 20];
        b[..8].copy_from_slice(b"LUKS\xba\xbe\x00\x01");
        b[168..204].copy_from_slice(b"12345678-1234-1234-1234-123456789abc");
        std::fs::write(&p, &b).unwrap();
        (dir, p)
    }

    #[test]
    fn libblkid_probes_a_non_utf8_path_as_given() {
        if !crate::blkid::available() {
            eprintln!("SKIPPED: libblkid is not loadable here");
            return;
        }
        let (_dir, p) = luks_at_non_utf8_path();
        // `dev` is blank: only libblkid, on the path, can find the header.
        let dev = MemDevice::new(8 << 20, 4096);
        assert_eq!(
            probe_with_blkid(&dev, &p).unwrap(),
            Some(Signature::Blkid {
                kind: "crypto_LUKS".into(),
                partition_table: false
            })
        );
    }

    #[test]
    fn a_signature_surviving_the_forced_wipe_is_an_error() {
        if !crate::blkid::available() {
            eprintln!("SKIPPED: libblkid is not loadable here");
            return;
        }
        let (_dir, p) = luks_at_non_utf8_path();
        // The wipe writes to `dev`, not to the file libblkid probes: the
        // header survives every round.
        let dev = MemDevice::new(8 << 20, 4096);
        match wipe_signatures(&dev, &p) {
            Err(Error::Pool(PoolError::Signature { sig, .. })) => assert_eq!(
                sig,
                Signature::Blkid {
                    kind: "crypto_LUKS".into(),
                    partition_table: false
                }
            ),
            r => panic!("expected a surviving-signature error, got {r:?}"),
        }
    }

}
