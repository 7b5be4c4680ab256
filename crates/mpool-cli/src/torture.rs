//! `mpool torture ...`: randomized crash sweeps (developer tools).

use clap::{Args, Subcommand};
use mpool::torture::{
    run_mlog, run_pool, run_upgrade, MlogTortureConfig, PoolTortureConfig, TortureReport,
    UpgradeTortureConfig, Violation,
};
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Torture subcommands.
#[derive(Debug, Subcommand)]
pub enum TortureCmd {
    /// Crash sweep of the mlog engine and MDCs: replay a seeded multi-threaded
    /// workload on a fault-injecting device, crash it at chosen I/O points,
    /// reboot with unflushed writes dropped, kept or torn, reopen and check
    /// against a model of what was acknowledged.
    Mlog(MlogArgs),
    /// Crash sweep of the pool: random mblock alloc/write/commit/abort/delete,
    /// user-mlog appends and metadata compactions from several threads on a
    /// fault-injecting device; crash, reboot, reopen, and check every
    /// committed mblock bit-exact, no deleted or uncommitted object back, no
    /// ID reused, and the space accounting exact.
    Pool(PoolArgs),
    /// Rot on the media: flip random bytes of a committed pool's image
    /// (superblocks, metadata logs, mblock data, anywhere), then open it
    /// and read everything through every read path: no panic, no wrong
    /// data returned, no silently changed object set. Last line:
    /// `rounds=N violations=V`.
    Flips(FlipsArgs),
    /// Crash sweep of `mpool upgrade`: a version-2 pool with objects is
    /// upgraded on fault-injecting devices, crashed after each I/O
    /// operation in turn (dropping, keeping or tearing unflushed writes);
    /// it must reopen as version 2 or 3 with exactly the same objects and
    /// contents, and a second upgrade must complete.
    Upgrade(UpgradeArgs),
    /// Crash sweep of event streams: random appends (sync and grouped),
    /// batches, seals, trims and reopens from several threads; crash,
    /// reboot, reopen, and check every acknowledged record bit-exact at
    /// its offset, no offset reused or skipped, nothing invented, no
    /// trimmed segment back, and the space exact.
    Stream(StreamArgs),
    /// Crash sweep of the object store (crates/mpool-object-store): puts
    /// in every mode, multipart completions and aborts, copies, renames,
    /// deletes and catalog compactions from several threads; crash,
    /// reboot, reopen, and check every acknowledged operation there, the
    /// one in flight entirely there or absent, and no mblock leaked.
    Objstore(ObjstoreArgs),
}

/// Arguments of `mpool torture objstore`.
#[derive(Debug, Args)]
pub struct ObjstoreArgs {
    /// Seed of the workload and the crash choices (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of crash points to replay.
    #[arg(long = "crash-points", default_value_t = 400)]
    pub crash_points: u64,
    /// Worker threads (1..=8).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Operations per thread in each workload instance.
    #[arg(long, default_value_t = 24)]
    pub ops: usize,
}

/// Arguments of `mpool torture stream`.
#[derive(Debug, Args)]
pub struct StreamArgs {
    /// Seed of the workload and the crash choices (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of crash points to replay.
    #[arg(long = "crash-points", default_value_t = 300)]
    pub crash_points: u64,
    /// Worker threads (1..=8).
    #[arg(long, default_value_t = 3)]
    pub threads: usize,
    /// Operations per thread in each round of a workload instance.
    #[arg(long, default_value_t = 40)]
    pub ops: usize,
}

/// Arguments of `mpool torture flips`.
#[derive(Debug, Args)]
pub struct FlipsArgs {
    /// Seed of the pool's content and of the flips (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Rounds: a fresh copy of the image each, with its own flips.
    #[arg(long, default_value_t = 200)]
    pub rounds: u64,
    /// Most bytes flipped per round.
    #[arg(long = "max-flips", default_value_t = 3)]
    pub max_flips: usize,
    /// Sector size of the simulated device (512 or 4096).
    #[arg(long, default_value_t = 4096)]
    pub sector: u32,
}

/// Arguments of `mpool torture upgrade`.
#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Seed of the pools and the crash choices (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of crash points to replay.
    #[arg(long = "crash-points", default_value_t = 300)]
    pub crash_points: u64,
}

/// Arguments of `mpool torture pool`.
#[derive(Debug, Args)]
pub struct PoolArgs {
    /// Seed of the workload and the crash choices (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of crash points to replay.
    #[arg(long = "crash-points", default_value_t = 1000)]
    pub crash_points: u64,
    /// Worker threads (1..=8).
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// Operations per thread in each workload instance.
    #[arg(long, default_value_t = 24)]
    pub ops: usize,
}

/// Arguments of `mpool torture mlog`.
#[derive(Debug, Args)]
pub struct MlogArgs {
    /// Seed of the workload and the crash choices (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of crash points to replay.
    #[arg(long = "crash-points", default_value_t = 2000)]
    pub crash_points: u64,
    /// Appending threads (1..=14).
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// Replay one crash point, as a violation names it:
    /// INSTANCE_SEED:SECTOR:CRASH_POINT (with the same --threads).
    #[arg(long, value_parser = parse_replay)]
    pub replay: Option<(u64, u32, u64)>,
}

fn parse_replay(s: &str) -> Result<(u64, u32, u64), String> {
    let bad = || format!("expected INSTANCE_SEED:SECTOR:CRASH_POINT, got '{s}'");
    let mut it = s.split(':');
    let (Some(a), Some(b), Some(c), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(bad());
    };
    Ok((
        a.parse().map_err(|_| bad())?,
        b.parse().map_err(|_| bad())?,
        c.parse().map_err(|_| bad())?,
    ))
}

/// Run a torture subcommand. The last line of stdout is
/// `crash_points=K violations=V`; the exit code is 1 when V > 0.
pub fn run(cmd: TortureCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        TortureCmd::Mlog(a) => run_mlog_cmd(a),
        TortureCmd::Pool(a) => run_pool_cmd(a),
        TortureCmd::Flips(a) => run_flips_cmd(a),
        TortureCmd::Upgrade(a) => run_upgrade_cmd(a),
        TortureCmd::Stream(a) => run_stream_cmd(a),
        TortureCmd::Objstore(a) => run_objstore_cmd(a),
    }
}

fn run_flips_cmd(a: FlipsArgs) -> anyhow::Result<ExitCode> {
    if a.max_flips == 0 || a.max_flips > 64 {
        anyhow::bail!("--max-flips must be between 1 and 64");
    }
    if a.sector != 512 && a.sector != 4096 {
        anyhow::bail!("--sector must be 512 or 4096");
    }
    let seed = a.seed.unwrap_or_else(rand::random);
    eprintln!(
        "torture flips: seed {seed}, {} rounds, up to {} flipped bytes each, {}-byte sectors",
        a.rounds, a.max_flips, a.sector
    );
    let cfg = mpool::torture::FlipTortureConfig {
        seed,
        rounds: a.rounds,
        max_flips: a.max_flips,
        sector: a.sector,
    };
    let start = Instant::now();
    let mut last = Instant::now();
    let rep = mpool::torture::run_flips(&cfg, &mut |done, total| {
        if last.elapsed() >= Duration::from_secs(2) || done == total {
            last = Instant::now();
            eprintln!(
                "  {done}/{total} rounds ({:.0}s)",
                start.elapsed().as_secs_f64()
            );
        }
    });
    let mut out = std::io::stdout().lock();
    for v in &rep.details {
        writeln!(out, "{v}")?;
    }
    writeln!(
        out,
        "opened and read: {} rounds, {} refused to open, {} reads verified, {} reads refused with an error, {} rounds with a user mlog ending early",
        rep.rounds, rep.open_refused, rep.reads_ok, rep.read_errors, rep.mlog_tails_dropped
    )?;
    if rep.violations > 0 {
        let kinds: Vec<String> = rep
            .by_kind
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        writeln!(out, "violations by kind: {}", kinds.join(", "))?;
        writeln!(
            out,
            "  reproduce: mpool torture flips --seed {seed} --rounds {} --max-flips {} --sector {}",
            a.rounds, a.max_flips, a.sector
        )?;
    }
    writeln!(out, "rounds={} violations={}", rep.rounds, rep.violations)?;
    out.flush()?;
    Ok(if rep.violations > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn run_mlog_cmd(a: MlogArgs) -> anyhow::Result<ExitCode> {
    if a.threads == 0 || a.threads > 14 {
        anyhow::bail!("--threads must be between 1 and 14");
    }
    let seed = a.seed.unwrap_or_else(rand::random);
    eprintln!(
        "torture mlog: seed {seed}, {} crash points, {} threads",
        a.crash_points, a.threads
    );
    let cfg = MlogTortureConfig {
        seed,
        crash_points: a.crash_points,
        threads: a.threads,
        replay: a.replay,
        ..Default::default()
    };
    let rep = run_mlog(&cfg, &mut progress_printer());
    report(&rep, |v| {
        v.crash_point.map(|p| {
            format!(
                "mpool torture mlog --threads {} --replay {}:{}:{p}",
                v.threads, v.seed, v.sector
            )
        })
    })
}

/// A progress callback printing to stderr every 2 s and at the end.
fn progress_printer() -> impl FnMut(u64, u64) {
    let start = Instant::now();
    let mut last = Instant::now();
    move |done: u64, total: u64| {
        if last.elapsed() >= Duration::from_secs(2) || done == total {
            last = Instant::now();
            eprintln!(
                "  {done}/{total} crash points ({:.0}s)",
                start.elapsed().as_secs_f64()
            );
        }
    }
}

/// Print every violation with how to reproduce it, then the closing line
/// `crash_points=K violations=V`; exit code 1 when V > 0.
/// The last line of every sweep, `crash_points=K violations=V`, and the
/// exit status it means (1 with any violation).
fn last_line(out: &mut impl Write, crash_points: u64, violations: u64) -> anyhow::Result<ExitCode> {
    writeln!(out, "crash_points={crash_points} violations={violations}")?;
    out.flush()?;
    Ok(if violations > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn report(
    rep: &TortureReport,
    reproduce: impl Fn(&Violation) -> Option<String>,
) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    for v in &rep.details {
        writeln!(out, "{v}")?;
        if let Some(cmd) = reproduce(v) {
            writeln!(out, "  reproduce: {cmd}")?;
        }
    }
    if rep.violations > rep.details.len() as u64 {
        writeln!(
            out,
            "({} more violations not shown)",
            rep.violations - rep.details.len() as u64
        )?;
    }
    last_line(&mut out, rep.crash_points, rep.violations)
}

fn run_pool_cmd(a: PoolArgs) -> anyhow::Result<ExitCode> {
    if a.threads == 0 || a.threads > 8 {
        anyhow::bail!("--threads must be between 1 and 8");
    }
    if a.ops == 0 || a.ops > 10_000 {
        anyhow::bail!("--ops must be between 1 and 10000");
    }
    let seed = a.seed.unwrap_or_else(rand::random);
    eprintln!(
        "torture pool: seed {seed}, {} crash points, {} threads, {} ops per thread",
        a.crash_points, a.threads, a.ops
    );
    let cfg = PoolTortureConfig {
        seed,
        crash_points: a.crash_points,
        threads: a.threads,
        ops_per_thread: a.ops,
        ..Default::default()
    };
    let rep = run_pool(&cfg, &mut progress_printer());
    // Thread timing varies the interleaving, so the run seed reproduces the
    // instances and crash points, not always the exact schedule.
    report(&rep, |_| {
        Some(format!(
            "mpool torture pool --seed {seed} --threads {} --ops {}",
            a.threads, a.ops
        ))
    })
}

fn run_upgrade_cmd(a: UpgradeArgs) -> anyhow::Result<ExitCode> {
    let seed = a.seed.unwrap_or_else(rand::random);
    eprintln!(
        "torture upgrade: seed {seed}, {} crash points",
        a.crash_points
    );
    let cfg = UpgradeTortureConfig {
        seed,
        crash_points: a.crash_points,
        ..Default::default()
    };
    let rep = run_upgrade(&cfg, &mut progress_printer());
    // Single-threaded: the seed reproduces every instance and crash point.
    report(&rep, |_| {
        Some(format!(
            "mpool torture upgrade --seed {seed} --crash-points {}",
            a.crash_points
        ))
    })
}

fn run_stream_cmd(a: StreamArgs) -> anyhow::Result<ExitCode> {
    if a.threads == 0 || a.threads > 8 {
        anyhow::bail!("--threads must be between 1 and 8");
    }
    if a.ops == 0 || a.ops > 10_000 {
        anyhow::bail!("--ops must be between 1 and 10000");
    }
    let seed = a.seed.unwrap_or_else(rand::random);
    eprintln!(
        "torture stream: seed {seed}, {} crash points, {} threads, {} ops per thread and round",
        a.crash_points, a.threads, a.ops
    );
    let cfg = mpool::torture::StreamTortureConfig {
        seed,
        crash_points: a.crash_points,
        threads: a.threads,
        ops_per_thread: a.ops,
        ..Default::default()
    };
    let rep = mpool::torture::run_stream(&cfg, &mut progress_printer());
    // Thread timing varies the interleaving: the seed reproduces the
    // instances and crash points, not always the exact schedule.
    report(&rep, |_| {
        Some(format!(
            "mpool torture stream --seed {seed} --threads {} --ops {}",
            a.threads, a.ops
        ))
    })
}

fn run_objstore_cmd(a: ObjstoreArgs) -> anyhow::Result<ExitCode> {
    if a.threads == 0 || a.threads > 8 {
        anyhow::bail!("--threads must be between 1 and 8");
    }
    let seed = a.seed.unwrap_or_else(rand::random);
    eprintln!(
        "torture objstore: seed {seed}, {} crash points, {} threads, {} ops per thread",
        a.crash_points, a.threads, a.ops
    );
    let cfg = mpool_object_store::torture::ObjstoreTortureConfig {
        seed,
        crash_points: a.crash_points,
        threads: a.threads,
        ops_per_thread: a.ops,
    };
    let rep = mpool_object_store::torture::run_objstore(&cfg, &mut progress_printer());
    let mut out = std::io::stdout().lock();
    for v in &rep.details {
        writeln!(out, "{v}")?;
    }
    if rep.violations > 0 {
        writeln!(
            out,
            "  reproduce: mpool torture objstore --seed {seed} --crash-points {} --threads {} --ops {}",
            a.crash_points, a.threads, a.ops
        )?;
    }
    last_line(&mut out, rep.crash_points, rep.violations)
}
