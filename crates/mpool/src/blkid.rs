//! util-linux's libblkid, loaded at run time: the probe that recognises
//! every signature `blkid -p` knows (LUKS, mdraid, ZFS, bcache, the
//! filesystems, partition tables…) before `create` or `add` overwrites a
//! device.
//!
//! The library is opened with `dlopen("libblkid.so.1")` once per process, so
//! that building mpool never needs libblkid's development files and a machine
//! without the library still works: there [`probe_path`] says "not
//! available" and `create` falls back to mpool's built-in probes
//! ([`crate::superblock::probe_bytes`]), with one warning.
//!
//! `MPOOL_NO_LIBBLKID=1` (read once, at the first probe) makes the loader
//! behave as if the library were missing: the fallback can be tried on a
//! machine that has it.

use libloading::Library;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

/// The environment variable that disables libblkid (any non-empty value but `0`).
pub const NO_LIBBLKID_ENV: &str = "MPOOL_NO_LIBBLKID";

/// The library's soname (the run-time package, not the `-dev` one).
const SONAME: &str = "libblkid.so.1";

// From <blkid/blkid.h>: superblock chain flags (stable ABI since 2.15).
const BLKID_SUBLKS_TYPE: c_int = 1 << 5;
const BLKID_SUBLKS_USAGE: c_int = 1 << 7;
const BLKID_SUBLKS_MAGIC: c_int = 1 << 9;
// Partition chain flags.
const BLKID_PARTS_MAGIC: c_int = 1 << 3;

/// `blkid_probe` is an opaque pointer.
type RawProbe = *mut c_void;

/// The functions mpool calls, resolved once.
struct Api {
    new_probe_from_filename: unsafe extern "C" fn(*const c_char) -> RawProbe,
    enable_superblocks: unsafe extern "C" fn(RawProbe, c_int) -> c_int,
    set_superblocks_flags: unsafe extern "C" fn(RawProbe, c_int) -> c_int,
    enable_partitions: unsafe extern "C" fn(RawProbe, c_int) -> c_int,
    set_partitions_flags: unsafe extern "C" fn(RawProbe, c_int) -> c_int,
    do_probe: unsafe extern "C" fn(RawProbe) -> c_int,
    do_safeprobe: unsafe extern "C" fn(RawProbe) -> c_int,
    lookup_value:
        unsafe extern "C" fn(RawProbe, *const c_char, *mut *const c_char, *mut usize) -> c_int,
    free_probe: unsafe extern "C" fn(RawProbe),
    /// Keeps the function pointers above valid; never dropped (it lives in a
    /// `static`).
    _lib: Library,
}

/// What libblkid found on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The `TYPE` (a superblock: `crypto_LUKS`, `linux_raid_member`,
    /// `zfs_member`, `bcache`, `ext4`…) or the `PTTYPE` (a partition
    /// table: `dos`, `gpt`…).
    pub kind: String,
    /// True when `kind` is a partition table type.
    pub partition_table: bool,
}

/// Why [`probe_path`] could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// The library is not loaded (missing, or disabled by [`NO_LIBBLKID_ENV`]).
    NotLoaded,
    /// libblkid could not open or read the device: why (the caller names
    /// the device).
    Failed(String),
}

fn disabled_by_env() -> bool {
    std::env::var_os(NO_LIBBLKID_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Open the library and resolve every symbol, or say why not.
fn load() -> Result<Api, String> {
    // SAFETY: loading libblkid runs its initialisers, which only set up
    // the library's own state; it is util-linux's system library, loaded by
    // its soname from the system's library path.
    let lib = unsafe { Library::new(SONAME) }.map_err(|e| e.to_string())?;
    macro_rules! sym {
        ($name:literal) => {
            // SAFETY: the type given (by inference, from the field of `Api`
            // it is stored in) is the C prototype from <blkid/blkid.h>; the
            // pointer is copied out of the `Symbol` and stays valid because
            // `lib` is stored alongside it and never unloaded.
            *unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                .map_err(|e| format!("{}: {e}", $name))?
        };
    }
    Ok(Api {
        new_probe_from_filename: sym!("blkid_new_probe_from_filename"),
        enable_superblocks: sym!("blkid_probe_enable_superblocks"),
        set_superblocks_flags: sym!("blkid_probe_set_superblocks_flags"),
        enable_partitions: sym!("blkid_probe_enable_partitions"),
        set_partitions_flags: sym!("blkid_probe_set_partitions_flags"),
        do_probe: sym!("blkid_do_probe"),
        do_safeprobe: sym!("blkid_do_safeprobe"),
        lookup_value: sym!("blkid_probe_lookup_value"),
        free_probe: sym!("blkid_free_probe"),
        _lib: lib,
    })
}

/// The library, loaded at the first call; `None` (with one warning) when it
/// cannot be, or when [`NO_LIBBLKID_ENV`] is set.
fn api() -> Option<&'static Api> {
    static API: OnceLock<Option<Api>> = OnceLock::new();
    API.get_or_init(|| {
        if disabled_by_env() {
            tracing::warn!(
                "libblkid disabled by {NO_LIBBLKID_ENV}: only mpool's built-in signature \
                 probes (ext, XFS, Btrfs, LVM, swap, partition tables) guard create and add"
            );
            return None;
        }
        match load() {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(
                    "{SONAME} could not be loaded ({e}): only mpool's built-in signature \
                     probes (ext, XFS, Btrfs, LVM, swap, partition tables) guard create and add"
                );
                None
            }
        }
    })
    .as_ref()
}

/// True when libblkid is loaded (loading it if needed).
#[cfg(test)]
pub fn available() -> bool {
    api().is_some()
}

/// A probe, freed on drop.
struct Probe<'a> {
    api: &'a Api,
    raw: RawProbe,
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `blkid_new_probe_from_filename`, is not
        // null, and is freed only here, once.
        unsafe { (self.api.free_probe)(self.raw) }
    }
}

impl Probe<'_> {
    /// Open a probe of `path` with the superblock and partition chains on,
    /// each with `flags`.
    fn new<'a>(
        api: &'a Api,
        path: &Path,
        sb_flags: c_int,
        pt_flags: c_int,
    ) -> Result<Probe<'a>, Unavailable> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| Unavailable::Failed("the path holds a NUL byte".into()))?;
        // SAFETY: `c` is a NUL-terminated path; libblkid opens it read-only
        // and returns a new probe or null.
        let raw = unsafe { (api.new_probe_from_filename)(c.as_ptr()) };
        if raw.is_null() {
            return Err(Unavailable::Failed(format!(
                "libblkid could not open it: {}",
                std::io::Error::last_os_error()
            )));
        }
        let p = Probe { api, raw };
        // SAFETY: `p.raw` is a live probe for the four calls; the flags are
        // the documented BLKID_SUBLKS_* and BLKID_PARTS_* bits.
        let setup = unsafe {
            [
                (api.enable_superblocks)(p.raw, 1),
                (api.set_superblocks_flags)(p.raw, sb_flags),
                (api.enable_partitions)(p.raw, 1),
                (api.set_partitions_flags)(p.raw, pt_flags),
            ]
        };
        if setup.iter().any(|&rc| rc != 0) {
            return Err(Unavailable::Failed(
                "libblkid could not set up a probe of it".into(),
            ));
        }
        Ok(p)
    }

    /// The raw bytes of value `name` from the last probe, if it was found
    /// (a string's bytes include its NUL).
    fn raw_value(&self, name: &CStr) -> Option<Vec<u8>> {
        let mut data: *const c_char = std::ptr::null();
        let mut len: usize = 0;
        // SAFETY: `raw` is a live probe; `name` is NUL-terminated; `data`
        // and `len` are valid out-pointers.
        let rc = unsafe { (self.api.lookup_value)(self.raw, name.as_ptr(), &mut data, &mut len) };
        if rc != 0 || data.is_null() {
            return None;
        }
        // SAFETY: on success libblkid points `data` at `len` bytes owned by
        // the probe, valid until the next probe call or the probe's free;
        // they are copied here, while `self` is borrowed.
        let b = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
        Some(b.to_vec())
    }

    /// The string value `name` from the last probe, if it was found.
    fn value(&self, name: &CStr) -> Option<String> {
        let b = self.raw_value(name)?;
        let b = b.split(|&c| c == 0).next().unwrap_or(&[]);
        Some(String::from_utf8_lossy(b).into_owned())
    }
}

/// Ask libblkid what `path` carries: a superblock `TYPE` first, else a
/// partition table's `PTTYPE`; `Ok(None)` when nothing is recognised.
/// Several conflicting signatures (libblkid's "ambivalent" result) are
/// reported as such, since any of them makes the device not blank.
pub fn probe_path(path: &Path) -> Result<Option<Found>, Unavailable> {
    let api = api().ok_or(Unavailable::NotLoaded)?;
    let p = Probe::new(api, path, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE, 0)?;
    // SAFETY: `p.raw` is a live, set-up probe.
    let rc = unsafe { (api.do_safeprobe)(p.raw) };
    match rc {
        0 => {}
        1 => return Ok(None),
        -2 => {
            return Ok(Some(Found {
                kind: "ambivalent (several conflicting signatures)".into(),
                partition_table: false,
            }))
        }
        _ => {
            return Err(Unavailable::Failed(format!(
                "libblkid could not probe it (error {rc})"
            )))
        }
    }
    if let Some(kind) = p.value(c"TYPE") {
        return Ok(Some(Found {
            kind,
            partition_table: false,
        }));
    }
    if let Some(kind) = p.value(c"PTTYPE") {
        return Ok(Some(Found {
            kind,
            partition_table: true,
        }));
    }
    Ok(None)
}

/// Where a signature's magic bytes lie on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magic {
    /// `TYPE` or `PTTYPE`.
    pub kind: String,
    /// Byte offset of the magic.
    pub offset: u64,
    /// Its length.
    pub len: usize,
}

/// Every signature's magic on `path` (as `wipefs` lists them: each
/// superblock and partition table libblkid finds, in turn), so that a forced
/// `create` can erase them wherever they are (an mdraid 0.90/1.0 or ZFS
/// label near the end of a device, outside the area mpool zeroes).
pub fn magics(path: &Path) -> Result<Vec<Magic>, Unavailable> {
    let api = api().ok_or(Unavailable::NotLoaded)?;
    let p = Probe::new(
        api,
        path,
        BLKID_SUBLKS_TYPE | BLKID_SUBLKS_MAGIC,
        BLKID_PARTS_MAGIC,
    )?;
    let mut out = Vec::new();
    // A bound on the walk, in case a library misbehaves.
    for _ in 0..64 {
        // SAFETY: `p.raw` is a live, set-up probe; each call moves to the
        // next signature and replaces the values looked up below.
        if unsafe { (api.do_probe)(p.raw) } != 0 {
            break;
        }
        for (off_name, magic_name, type_name) in [
            (c"SBMAGIC_OFFSET", c"SBMAGIC", c"TYPE"),
            (c"PTMAGIC_OFFSET", c"PTMAGIC", c"PTTYPE"),
        ] {
            let offset = p.value(off_name).and_then(|s| s.trim().parse::<u64>().ok());
            let len = p.raw_value(magic_name).map(|m| m.len());
            if let (Some(offset), Some(len)) = (offset, len) {
                out.push(Magic {
                    kind: p.value(type_name).unwrap_or_default(),
                    offset,
                    len,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    fn file_with(bytes: &[(u64, &[u8])]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(16 << 20).unwrap();
        for (off, b) in bytes {
            f.seek(SeekFrom::Start(*off)).unwrap();
            f.write_all(b).unwrap();
        }
        f.flush().unwrap();
        f
    }

    #[test]
    fn blank_file_and_luks1_header() {
        if !available() {
            eprintln!("SKIPPED: {SONAME} is not loadable here (or {NO_LIBBLKID_ENV} is set)");
            return;
        }
        let blank = file_with(&[]);
        assert_eq!(probe_path(blank.path()), Ok(None));
        let luks = file_with(&[
            (0, b"LUKS\xba\xbe\x00\x01"),
            (168, b"12345678-1234-1234-1234-123456789abc"),
        ]);
        assert_eq!(
            probe_path(luks.path()),
            Ok(Some(Found {
                kind: "crypto_LUKS".into(),
                partition_table: false
            }))
        );
        let gone = Path::new("/nonexistent/mpool-blkid-test");
        assert!(matches!(probe_path(gone), Err(Unavailable::Failed(_))));
    }

    /// A version-3 superblock copy is what libblkid calls `mpool`, with its
    /// magic at offset 0 (where `wipefs` and a forced wipe find it); a
    /// version-2 copy is nothing it knows.
    #[test]
    fn a_version_3_superblock_is_libblkids_mpool() {
        if !available() {
            eprintln!("SKIPPED: {SONAME} is not loadable here (or {NO_LIBBLKID_ENV} is set)");
            return;
        }
        use crate::format::superblock::{Mdc0Loc, MediaClass, Member, Superblock, SB_VERSION};
        let dev = uuid::Uuid::from_u128(0x42);
        let sb = Superblock {
            version: SB_VERSION,
            generation: 3,
            pool_uuid: uuid::Uuid::from_u128(0x41),
            dev_uuid: dev,
            name: "blkid-v3".into(),
            class: MediaClass::Capacity,
            sector: 4096,
            dev_size: 16 << 20,
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
                size: 16 << 20,
            }],
            upgrade_pending: false,
        };
        let v3 = file_with(&[(0, &sb.encode(0)), (32768, &sb.encode(1))]);
        assert_eq!(
            probe_path(v3.path()),
            Ok(Some(Found {
                kind: "mpool".into(),
                partition_table: false
            }))
        );
        assert_eq!(
            magics(v3.path()),
            Ok(vec![Magic {
                kind: "mpool".into(),
                offset: 0,
                len: 8
            }])
        );
        let v2 = Superblock { version: 2, ..sb };
        let v2 = file_with(&[(0, &v2.encode(0)), (32768, &v2.encode(1))]);
        assert_eq!(probe_path(v2.path()), Ok(None));
    }
}
