//! The least a log that N threads share costs on a byte-addressable
//! device, measured on the same device as the mlog: the floor that fio's
//! independent jobs are not, because they share nothing.
//!
//! Each append takes the next sequence number with one atomic add on a
//! shared tail, computes the record's CRC-32C, copies an 16-byte header
//! and the record to their place in the file (through the device, as the
//! mlog writes: `Device::write_bytes`), marks its slot in a ring of marks,
//! and waits until every earlier record is marked, moving the shared
//! durable count over each marked record it finds. That is what any
//! ordered log with durable-on-return appends must do between threads: a
//! tail they all move and a count they all read, at least two lines that
//! travel between the CPUs at every append. It has no lock, no framing,
//! no flush sets, no recovery rules and no help for a preempted appender.
//!
//! With more threads than CPUs an appender preempted after taking its
//! number stalls everyone behind it until it runs again, and a waiter
//! that spins keeps it from running: there the waiters spin a little and
//! then yield the CPU (`sched_yield`) at each look, the least a log
//! without help can do to let the preempted appender finish. Its tail is
//! then the floor of such a log on this machine: the p99.9 mpool's
//! helpers (a waiter writes a preempted appender's record) aim below.

use crate::common;
use anyhow::{bail, Result};
use mpool::dev::Device;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Records in flight at most (slots of the ring of marks).
const RING: u64 = 64;

/// Looks a waiter spins before it yields at each look, with more threads
/// than CPUs (about a microsecond: an append's own write of 4 KiB).
const SPINS_BEFORE_YIELD: u32 = 256;

/// One look of a waiter that found what it waits for not there yet:
/// a pause, or with more threads than CPUs, once it has looked
/// [`SPINS_BEFORE_YIELD`] times, the CPU given up.
fn pause(looks: &mut u32, crowded: bool) {
    *looks = looks.saturating_add(1);
    if crowded && *looks > SPINS_BEFORE_YIELD {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// A counter on lines of its own.
#[repr(align(128))]
#[derive(Default)]
struct Line(AtomicU64);

/// What one run of the floor measured.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    pub appends: u64,
    pub secs: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    /// Process CPU time meanwhile, s.
    pub cpu: f64,
}

/// Append `rec`-byte records from `threads` threads for `runtime` into
/// `dev` at `0..size`.
pub fn run(
    dev: &dyn Device,
    size: u64,
    threads: usize,
    rec: usize,
    runtime: Duration,
) -> Result<Floor> {
    let span = (rec as u64 + 16).div_ceil(64) * 64;
    let places = size / span;
    if places < 2 * RING {
        bail!("the file is too small for the shared-log floor");
    }
    let tail = Line::default();
    let durable = Line::default();
    let marks: Vec<Line> = (0..RING).map(|_| Line::default()).collect();
    // Set by a thread that fails: the others stop waiting for its record.
    let failed = AtomicBool::new(false);
    let gave_up = || -> Result<()> {
        if failed.load(Ordering::Relaxed) {
            bail!("another thread of the shared-log floor failed");
        }
        Ok(())
    };
    let crowded = threads > std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = Instant::now();
    let cpu0 = common::cpu_seconds();
    let (appends, hist) = common::in_threads(threads, "floor", |t| {
        let mut h = common::histogram();
        let data: Vec<u8> = (0..rec).map(|i| (i as u8) ^ (t as u8) ^ 0x5a).collect();
        let mut n = 0u64;
        while !(n.is_multiple_of(16) && start.elapsed() >= runtime) {
            let t0 = Instant::now();
            let seq = tail.0.fetch_add(1, Ordering::AcqRel);
            // A slot of the ring is free once the record RING before is
            // durable.
            let mut looks = 0;
            while seq >= durable.0.load(Ordering::Acquire) + RING {
                gave_up()?;
                pause(&mut looks, crowded);
            }
            let crc = mpool::crc::crc32c(&data);
            let mut hdr = [0u8; 16];
            hdr[..8].copy_from_slice(&seq.to_le_bytes());
            hdr[8..12].copy_from_slice(&crc.to_le_bytes());
            hdr[12..].copy_from_slice(&(rec as u32).to_le_bytes());
            let at = (seq % places) * span;
            for (off, bytes) in [(at, &hdr[..]), (at + 16, &data[..])] {
                let r = match dev.write_bytes(off, bytes) {
                    Some(r) => r.map_err(anyhow::Error::from),
                    None => Err(anyhow::anyhow!(
                        "the device takes no writes of any bytes: no shared-log floor"
                    )),
                };
                if r.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                r?;
            }
            let slot = &marks[(seq % RING) as usize];
            slot.0.store(seq + 1, Ordering::Release);
            let mut looks = 0;
            loop {
                let d = durable.0.load(Ordering::Acquire);
                if d > seq {
                    break;
                }
                if marks[(d % RING) as usize].0.load(Ordering::Acquire) == d + 1 {
                    let _ =
                        durable
                            .0
                            .compare_exchange(d, d + 1, Ordering::AcqRel, Ordering::Relaxed);
                } else {
                    gave_up()?;
                    pause(&mut looks, crowded);
                }
            }
            h.record((t0.elapsed().as_nanos() as u64).max(1))?;
            n += 1;
        }
        Ok((n, h))
    })?;
    Ok(Floor {
        appends,
        secs: start.elapsed().as_secs_f64(),
        p50: hist.value_at_quantile(0.5) as f64,
        p99: hist.value_at_quantile(0.99) as f64,
        p999: hist.value_at_quantile(0.999) as f64,
        cpu: common::cpu_seconds() - cpu0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpool::dev::MemDevice;

    /// Two threads append through the floor: every record it counts was
    /// written whole at its place (header with its sequence number, length
    /// and the CRC of bytes that are there), and no number was skipped.
    #[test]
    fn the_floor_writes_every_record_it_counts() {
        // As many threads as CPUs (waiters spin), and more (they yield).
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        for threads in [2.min(cpus), cpus + 2] {
            check_floor(threads);
        }
    }

    fn check_floor(threads: usize) {
        let rec = 300;
        let size = 4 << 20;
        let dev = MemDevice::new(size, 512);
        let f = run(&dev, size, threads, rec, Duration::from_millis(20)).unwrap();
        assert!(f.appends > 0);
        let span = (rec as u64 + 16).div_ceil(64) * 64;
        let places = size / span;
        let image = dev.image();
        // The last `places` records are all still in place.
        for seq in f.appends.saturating_sub(places)..f.appends {
            let at = ((seq % places) * span) as usize;
            let hdr = &image[at..at + 16];
            assert_eq!(u64::from_le_bytes(hdr[..8].try_into().unwrap()), seq);
            assert_eq!(
                u32::from_le_bytes(hdr[12..16].try_into().unwrap()),
                rec as u32
            );
            let data = &image[at + 16..at + 16 + rec];
            let crc = u32::from_le_bytes(hdr[8..12].try_into().unwrap());
            assert_eq!(mpool::crc::crc32c(data), crc, "record {seq}");
        }
    }
}
