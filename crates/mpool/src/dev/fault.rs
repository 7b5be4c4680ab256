//! A fault-injecting device for crash and corruption tests.
//!
//! It keeps the *durable* image (what survives a power cut) apart from the
//! *live* image (what reads see), and remembers every write since the last
//! flush. Faults it can inject:
//!
//! - crash after the N-th operation: that operation and all later ones fail
//!   with [`DevError::Crashed`] (each request in a batch, each flush and each
//!   discard counts as one operation);
//! - on reboot ([`FaultDevice::reboot`]), lose unflushed writes: all, none, or
//!   a random subset, which models reordering by a volatile write cache (a
//!   later write can survive where an earlier one did not);
//! - tear a surviving unflushed write at 512-byte granularity (any subset of
//!   its 512-byte pieces reaches the media);
//! - flip a bit of the media;
//! - fail a read or write with EIO (by byte range, or the N-th operation);
//! - misdirect a write to another offset.

use super::{split_invalid, wrap, DevError, Device, DeviceInfo, DeviceKind};
use crate::io::{IoKind, IoReq};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io;
use std::ops::Range;
use std::sync::{Mutex, MutexGuard};

/// Granularity of torn writes.
pub const TEAR_UNIT: usize = 512;

/// What happens to writes that were not flushed when the machine crashed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CrashMode {
    /// Every unflushed write is lost.
    DropAll,
    /// Every unflushed write reached the media intact.
    KeepAll,
    /// Each unflushed write survives with probability `keep`; a surviving
    /// write is torn with probability `tear` (each 512-byte piece then lands
    /// or not, at random). Seeded, so a failure can be replayed.
    Random {
        /// Probability that a write survives.
        keep: f64,
        /// Probability that a surviving write is torn.
        tear: f64,
        /// Seed of the choice.
        seed: u64,
    },
}

/// Counters of a fault device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Operations performed (refused ones after a crash are not counted).
    pub ops: u64,
    /// Read requests completed.
    pub reads: u64,
    /// Write requests completed.
    pub writes: u64,
    /// Flushes completed.
    pub flushes: u64,
    /// Batches of requests submitted (a `submit` call, whatever it held;
    /// a single read or write is one).
    pub batches: u64,
    /// Writes not yet flushed.
    pub pending: usize,
}

#[derive(Debug)]
struct State {
    live: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<(u64, Vec<u8>)>,
    stats: FaultStats,
    crash_after: Option<u64>,
    crashed: bool,
    fail_reads: Vec<Range<u64>>,
    fail_writes: Vec<Range<u64>>,
    fail_ops: Vec<u64>,
    misdirect: Option<u64>,
}

/// A memory device with fault injection and crash simulation.
#[derive(Debug)]
pub struct FaultDevice {
    st: Mutex<State>,
    info: DeviceInfo,
}

fn overlaps(r: &Range<u64>, off: u64, len: usize) -> bool {
    off < r.end && r.start < off + len as u64
}

impl FaultDevice {
    /// A zeroed device of `size` bytes.
    pub fn new(size: u64, sector: u32) -> Self {
        Self::from_image(vec![0; size as usize], sector)
    }

    /// A device whose durable (and live) contents are `image`.
    pub fn from_image(image: Vec<u8>, sector: u32) -> Self {
        let sector = sector.max(512);
        let info = DeviceInfo::in_memory(DeviceKind::Fault, image.len() as u64, sector);
        let st = State {
            live: image.clone(),
            durable: image,
            pending: Vec::new(),
            stats: FaultStats::default(),
            crash_after: None,
            crashed: false,
            fail_reads: Vec::new(),
            fail_writes: Vec::new(),
            fail_ops: Vec::new(),
            misdirect: None,
        };
        Self {
            st: Mutex::new(st),
            info,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::lock::lock(&self.st)
    }

    /// Crash once `n` operations have completed: operation `n + 1` and every
    /// later one fail with [`DevError::Crashed`]. `crash_after(0)` fails the next one.
    pub fn crash_after(&self, n: u64) {
        let mut st = self.lock();
        st.crash_after = Some(n);
        if st.stats.ops >= n {
            st.crashed = true;
        }
    }

    /// Crash now.
    pub fn crash_now(&self) {
        let mut st = self.lock();
        st.crashed = true;
        st.crash_after = Some(st.stats.ops);
    }

    /// True once the simulated machine has crashed.
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Counters.
    pub fn stats(&self) -> FaultStats {
        let st = self.lock();
        FaultStats {
            pending: st.pending.len(),
            ..st.stats
        }
    }

    /// Reads overlapping `range` fail with EIO until cleared.
    pub fn fail_reads(&self, range: Range<u64>) {
        self.lock().fail_reads.push(range);
    }

    /// Writes overlapping `range` fail with EIO until cleared.
    pub fn fail_writes(&self, range: Range<u64>) {
        self.lock().fail_writes.push(range);
    }

    /// Operation number `n` (counting from 1) fails with EIO.
    pub fn fail_op(&self, n: u64) {
        self.lock().fail_ops.push(n);
    }

    /// Remove every EIO rule.
    pub fn clear_failures(&self) {
        let mut st = self.lock();
        st.fail_reads.clear();
        st.fail_writes.clear();
        st.fail_ops.clear();
    }

    /// The next write lands at `offset` instead of where it was aimed.
    pub fn misdirect_next_write(&self, offset: u64) {
        self.lock().misdirect = Some(offset);
    }

    /// Flip bit `bit` (0..8) of the byte at `offset`, on the media and in
    /// what reads see.
    pub fn flip_bit(&self, offset: u64, bit: u8) {
        let mut st = self.lock();
        let mask = 1u8 << (bit % 8);
        let o = offset as usize;
        if let Some(b) = st.durable.get_mut(o) {
            *b ^= mask;
        }
        if let Some(b) = st.live.get_mut(o) {
            *b ^= mask;
        }
    }

    /// Overwrite bytes on the media and in what reads see (hostile bytes).
    pub fn poke(&self, offset: u64, data: &[u8]) {
        let mut st = self.lock();
        let o = offset as usize;
        let end = (o + data.len()).min(st.durable.len());
        if o < end {
            let n = end - o;
            st.durable[o..end].copy_from_slice(&data[..n]);
            st.live[o..end].copy_from_slice(&data[..n]);
        }
    }

    /// What the media would hold after a power cut now, under `mode`.
    pub fn crash_image(&self, mode: CrashMode) -> Vec<u8> {
        let st = self.lock();
        let mut img = st.durable.clone();
        match mode {
            CrashMode::DropAll => {}
            CrashMode::KeepAll => {
                for (off, data) in &st.pending {
                    apply(&mut img, *off, data);
                }
            }
            CrashMode::Random { keep, tear, seed } => {
                let mut rng = StdRng::seed_from_u64(seed);
                for (off, data) in &st.pending {
                    if !rng.random_bool(keep.clamp(0.0, 1.0)) {
                        continue;
                    }
                    if rng.random_bool(tear.clamp(0.0, 1.0)) {
                        for (i, piece) in data.chunks(TEAR_UNIT).enumerate() {
                            if rng.random_bool(0.5) {
                                apply(&mut img, off + (i * TEAR_UNIT) as u64, piece);
                            }
                        }
                    } else {
                        apply(&mut img, *off, data);
                    }
                }
            }
        }
        img
    }

    /// Power-cycle: a new device holding [`FaultDevice::crash_image`], with
    /// the same sector size and no faults armed.
    pub fn reboot(&self, mode: CrashMode) -> FaultDevice {
        FaultDevice::from_image(self.crash_image(mode), self.info.logical_sector)
    }

    /// A copy of the live image (what reads see now).
    pub fn live_image(&self) -> Vec<u8> {
        self.lock().live.clone()
    }

    /// A copy of the durable image (what a crash with `DropAll` leaves).
    pub fn durable_image(&self) -> Vec<u8> {
        self.lock().durable.clone()
    }
}

fn apply(img: &mut [u8], off: u64, data: &[u8]) {
    let o = off as usize;
    let end = (o + data.len()).min(img.len());
    if o < end {
        img[o..end].copy_from_slice(&data[..end - o]);
    }
}

/// An injected media error: a real EIO, so callers see what a failing disk
/// gives them (the device name, operation and offset travel in [`DevError::Io`]).
fn eio() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

impl State {
    /// Count an operation; Err when the machine is (now) down or the op is set to fail.
    fn begin(&mut self) -> Result<u64, DevError> {
        if self.crashed {
            // No operation completes once crashed, so `ops` is the last one
            // that did (crash_after(n) armed late may be below it).
            return Err(DevError::Crashed {
                after_op: self.stats.ops,
            });
        }
        let n = self.stats.ops + 1;
        if self.crash_after.is_some_and(|c| n > c) {
            self.crashed = true;
            return Err(DevError::Crashed {
                after_op: self.stats.ops,
            });
        }
        self.stats.ops = n;
        Ok(n)
    }
}

impl Device for FaultDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn submit(&self, mut reqs: Vec<IoReq>) -> Vec<IoReq> {
        split_invalid(&self.info, &mut reqs);
        let mut st = self.lock();
        st.stats.batches += 1;
        for r in reqs.iter_mut().filter(|r| r.result.is_none()) {
            let n = match st.begin() {
                Ok(n) => n,
                Err(e) => {
                    r.result = Some(Err(wrap(e)));
                    continue;
                }
            };
            let off = r.offset as usize;
            let len = r.buf.len();
            let op_fails = st.fail_ops.contains(&n);
            r.result = Some(match r.kind {
                IoKind::Read => {
                    if op_fails || st.fail_reads.iter().any(|x| overlaps(x, r.offset, len)) {
                        Err(eio())
                    } else {
                        r.buf.copy_from_slice(&st.live[off..off + len]);
                        st.stats.reads += 1;
                        Ok(())
                    }
                }
                IoKind::Write => {
                    if op_fails || st.fail_writes.iter().any(|x| overlaps(x, r.offset, len)) {
                        Err(eio())
                    } else {
                        let target = st.misdirect.take().unwrap_or(r.offset);
                        let t = target as usize;
                        if t + len <= st.live.len() {
                            st.live[t..t + len].copy_from_slice(&r.buf);
                            st.pending.push((target, r.buf.to_vec()));
                        }
                        st.stats.writes += 1;
                        Ok(())
                    }
                }
            });
        }
        reqs
    }

    fn flush(&self) -> Result<(), DevError> {
        let mut st = self.lock();
        let n = st.begin()?;
        if st.fail_ops.contains(&n) {
            return Err(super::io_err(&self.info, "flush", 0, eio()));
        }
        let pending = std::mem::take(&mut st.pending);
        for (off, data) in &pending {
            apply(&mut st.durable, *off, data);
        }
        st.stats.flushes += 1;
        Ok(())
    }

    fn discard(&self, offset: u64, len: u64) -> Result<(), DevError> {
        super::check_req(&self.info, offset, len as usize)?;
        let mut st = self.lock();
        let n = st.begin()?;
        if st.fail_ops.contains(&n) {
            return Err(super::io_err(&self.info, "discard", offset, eio()));
        }
        // A discard is a write of zeroes that may be lost like any other.
        let zero = vec![0u8; len as usize];
        apply(&mut st.live, offset, &zero);
        st.pending.push((offset, zero));
        Ok(())
    }
}
