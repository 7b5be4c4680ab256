//! Torture harnesses: randomized crash sweeps against a model (a developer
//! tool, run by `mpool torture ...` and by the bounded sweeps in `tests/`).
//!
//! A harness runs a seeded workload on a [`crate::dev::FaultDevice`] once
//! to count its device operations, then replays it many times, crashing the
//! simulated machine after a chosen operation, reboots it with some or all
//! unflushed writes lost or torn, reopens, and checks the result against a
//! model of what the workload saw acknowledged.

pub mod flips;
pub mod mlog;
pub mod pool;
pub mod stream;
pub mod upgrade;

pub use self::flips::{run_flips, FlipReport, FlipTortureConfig};
pub use self::mlog::{run_mlog, MlogTortureConfig};
pub use self::pool::{run_pool, PoolTortureConfig};
pub use self::stream::{run_stream, StreamTortureConfig};
pub use self::upgrade::{run_upgrade, UpgradeTortureConfig};

use std::fmt;

/// One broken guarantee, with what reproduces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Seed of the workload instance.
    pub seed: u64,
    /// Sector size of the device.
    pub sector: u32,
    /// Operation after which the machine crashed (None: no crash).
    pub crash_point: Option<u64>,
    /// What happened to unflushed writes.
    pub mode: String,
    /// What is wrong.
    pub what: String,
    /// Worker threads of the workload.
    pub threads: usize,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let point = self
            .crash_point
            .map_or_else(|| "none".to_string(), |p| p.to_string());
        write!(
            f,
            "violation: {} [instance seed {} sector {} crash point {} reboot {} threads {}]",
            self.what, self.seed, self.sector, point, self.mode, self.threads
        )
    }
}

/// The outcome of a torture run.
#[derive(Debug, Clone, Default)]
pub struct TortureReport {
    /// Crash points replayed.
    pub crash_points: u64,
    /// Violations found (all counted; `details` keeps the first 100).
    pub violations: u64,
    /// The violations, each with what reproduces it.
    pub details: Vec<Violation>,
    /// `(instance seed, sector, device operations of one full run)` per workload instance.
    pub instances: Vec<(u64, u32, u64)>,
}

impl TortureReport {
    pub(crate) fn add(&mut self, v: Violation) {
        self.violations += 1;
        if self.details.len() < 100 {
            self.details.push(v);
        }
    }
}

/// SplitMix64: a small, well-mixed hash for seeding plans.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
