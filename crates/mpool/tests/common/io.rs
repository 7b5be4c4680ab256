//! Helpers shared by the device-layer integration tests (the `io`, `dev`,
//! `mlog` and `env` test binaries).
#![allow(dead_code)]

use mpool::dev::{DevError, Device, FileDevice, OpenOptions};
use mpool::io::{AlignedBuf, EngineChoice, IoReq};
use std::path::{Path, PathBuf};

/// Every engine the suite runs on. `Uring` is left out (loudly) only where
/// the kernel refuses io_uring; `Auto` then runs the sync path.
pub fn engines() -> Vec<EngineChoice> {
    let mut v = vec![EngineChoice::Sync, EngineChoice::Auto];
    if mpool::io::uring_available() {
        v.push(EngineChoice::Uring);
    } else {
        eprintln!("SKIPPED: io_uring is not available here; the uring engine was not tested");
    }
    v
}

/// A scratch directory on the build disk (ext4 here), where O_DIRECT works;
/// /tmp may be tmpfs.
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mpool-io-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("scratch dir")
}

/// Create a sparse file of `size` bytes and open it with `engine`.
pub fn open_new(dir: &Path, name: &str, size: u64, engine: EngineChoice) -> (PathBuf, FileDevice) {
    let path = dir.join(name);
    let dev = FileDevice::open(
        &path,
        &OpenOptions {
            create_size: Some(size),
            engine,
            ..OpenOptions::default()
        },
    )
    .expect("open new file device");
    (path, dev)
}

/// Open an existing path with `engine`.
pub fn open(path: &Path, engine: EngineChoice, read_only: bool) -> Result<FileDevice, DevError> {
    FileDevice::open(
        path,
        &OpenOptions {
            engine,
            read_only,
            ..OpenOptions::default()
        },
    )
}

/// splitmix64: a tiny deterministic generator for test patterns.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Bytes that depend on (seed, position), so misplaced data is detected.
pub fn pattern(seed: u64, len: usize, align: usize) -> AlignedBuf {
    let mut b = AlignedBuf::new(len, align);
    let mut r = Rng(seed);
    for chunk in b.chunks_mut(8) {
        let v = r.next().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    b
}

/// Take a request's result as a typed device error.
pub fn req_result(dev: &dyn Device, r: &mut IoReq) -> Result<(), DevError> {
    let (kind, off) = (r.kind, r.offset);
    r.take_result()
        .map_err(|e| mpool::dev::from_req_err(dev.info(), kind, off, e))
}

/// Read `len` bytes at `off` in one request.
pub fn read_back(dev: &dyn Device, off: u64, len: usize) -> AlignedBuf {
    let mut b = dev.alloc_buf(len);
    dev.read_at(off, &mut b).expect("read back");
    b
}

/// A directory of this test's own on `/dev/shm`, or `None` (said) where
/// that is not a tmpfs.
pub fn shm_scratch(test: &str) -> Option<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    // The statfs magic of a tmpfs.
    let is_tmpfs = rustix::fs::statfs(shm).is_ok_and(|s| s.f_type == 0x0102_1994);
    if !is_tmpfs {
        eprintln!(
            "SKIPPED {test}: /dev/shm is not a tmpfs here; the mapped file device was not tested"
        );
        return None;
    }
    Some(
        tempfile::Builder::new()
            .prefix("mpool-mapped-")
            .tempdir_in(shm)
            .expect("scratch dir on /dev/shm"),
    )
}

/// A file of `size` bytes with every block allocated.
pub fn allocated(dir: &Path, name: &str, size: u64) -> PathBuf {
    let path = dir.join(name);
    let f = std::fs::File::create(&path).expect("create");
    rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, size).expect("fallocate");
    path
}
