//! CRC-32C, the checksum of every byte mpool stores and verifies:
//! mpool's own (the implementation it chose on this CPU) against the
//! `crc-fast` and `crc32c` crates, one buffer size at a time, in one run.
//!
//! Each size is checksummed buffer after buffer over a span of about
//! 1 MiB (at least one buffer; so the data comes from the caches as it
//! would after a copy or a read, not from one line), the three
//! implementations taking turns for `--rounds` rounds; the best round of
//! each is kept. All three must agree on every value: the run fails if
//! they do not.

use crate::common::Rng;
use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::time::Instant;

/// Arguments of `mpool-bench crc`.
#[derive(Debug, clap::Args)]
pub struct CrcArgs {
    /// Buffer sizes.
    #[arg(long, value_delimiter = ',', default_value = "512,4K,64K,1M", value_parser = mpool_cli::size::parse_size)]
    pub sizes: Vec<u64>,
    /// Rounds (the implementations take turns; the best is kept).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Bytes checksummed per implementation and round.
    #[arg(long, default_value = "256M", value_parser = mpool_cli::size::parse_size)]
    pub bytes: u64,
}

/// One size: nanoseconds per buffer of each implementation.
pub struct Row {
    size: usize,
    mpool: f64,
    crc_fast: f64,
    crc32c: f64,
}

/// The run's results.
pub struct CrcReport {
    implementation: &'static str,
    rows: Vec<Row>,
}

const NAMES: [&str; 3] = ["mpool", "crc-fast", "crc32c"];

fn one(which: usize, d: &[u8]) -> u32 {
    match which {
        0 => mpool::crc::crc32c(d),
        1 => crc_fast::crc32_iscsi(d),
        _ => crc32c::crc32c(d),
    }
}

/// Run the benchmark.
pub fn run(a: &CrcArgs) -> Result<CrcReport> {
    const SPAN: usize = 16 << 20;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let data: Vec<u8> = (0..SPAN).map(|_| rng.next() as u8).collect();
    let mut rows = Vec::new();
    for &size in &a.sizes {
        let n = usize::try_from(size)?;
        if n == 0 || n > SPAN {
            bail!("--sizes: {size} is outside 1..={SPAN}");
        }
        // Buffers in a span of about 1 MiB (at least one buffer, and
        // within the data): in the caches, as after a copy or a read.
        let per = ((1usize << 20) / n).clamp(1, SPAN / n);
        let iters = usize::try_from(a.bytes)?.div_ceil(n).max(1);
        // Every implementation gives the same value for each buffer.
        for i in 0..per.min(64) {
            let d = &data[i * n..(i + 1) * n];
            let v: Vec<u32> = (0..3).map(|w| one(w, d)).collect();
            if v[0] != v[1] || v[0] != v[2] {
                bail!("the implementations disagree on a {n}-byte buffer: {v:x?}");
            }
        }
        let mut best = [f64::MAX; 3];
        for _ in 0..a.rounds.max(1) {
            for (w, b) in best.iter_mut().enumerate() {
                let mut acc = 0u32;
                let t = Instant::now();
                for i in 0..iters {
                    let at = (i % per) * n;
                    acc ^= one(w, std::hint::black_box(&data[at..at + n]));
                }
                let ns = t.elapsed().as_nanos() as f64 / iters as f64;
                std::hint::black_box(acc);
                *b = b.min(ns);
            }
        }
        rows.push(Row {
            size: n,
            mpool: best[0],
            crc_fast: best[1],
            crc32c: best[2],
        });
    }
    Ok(CrcReport {
        implementation: mpool::crc::implementation(),
        rows,
    })
}

fn gbs(size: usize, ns: f64) -> f64 {
    size as f64 / ns
}

impl CrcReport {
    /// The table.
    pub fn text(&self) -> String {
        let mut s = format!(
            "CRC-32C: ns per buffer (GB/s), best round; mpool runs {}\n\n",
            self.implementation
        );
        s += &format!(
            "{:>8}  {:>16}  {:>16}  {:>16}  {:>14}  {:>12}\n",
            "bytes", NAMES[0], NAMES[1], NAMES[2], "crc-fast/mpool", "crc32c/mpool"
        );
        for r in &self.rows {
            let cell = |ns: f64| format!("{ns:.0} ({:.1})", gbs(r.size, ns));
            s += &format!(
                "{:>8}  {:>16}  {:>16}  {:>16}  {:>14.2}  {:>12.2}\n",
                r.size,
                cell(r.mpool),
                cell(r.crc_fast),
                cell(r.crc32c),
                r.crc_fast / r.mpool,
                r.crc32c / r.mpool
            );
        }
        s += "\nx/mpool: how many times longer the other takes (above 1: mpool is faster)\n";
        s
    }

    /// The results as JSON.
    pub fn json(&self) -> Value {
        json!({
            "implementation": self.implementation,
            "rows": self.rows.iter().map(|r| json!({
                "bytes": r.size,
                "mpool_ns": r.mpool,
                "crc_fast_ns": r.crc_fast,
                "crc32c_ns": r.crc32c,
            })).collect::<Vec<_>>(),
        })
    }
}
