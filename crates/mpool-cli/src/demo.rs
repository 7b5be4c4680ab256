//! `mpool demo`: the main job on a file-backed pool in a directory of its own.
//!
//! The demo keeps everything in that directory (`./mpool-demo` unless
//! `--dir`): the pool's two image files, and its own run directory and
//! device list (`DIR/run`, `DIR/devices`: `MPOOL_RUNDIR` and `MPOOL_CONFIG`
//! are set for the demo whatever the environment says, and
//! `MPOOL_SCAN_DEVICES=none`: its scans look at its own files, never at a
//! block device), so it needs no root and writes nothing in `/run`, `/etc`
//! or the home directory, even as root. At the end it destroys the pool and removes what it made, unless
//! `--keep`: then it prints how to look at the pool and how to remove it.

use crate::fmt::human;
use crate::output::{date, unix_now};
use anyhow::{Context, Result};
use clap::Args;
use mpool::admin::{self, rundir, scan};
use mpool::{CreateOptions, DeviceSpec, MblockId, MediaClass, MlogId, OpenOptions, Pool};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Directory for the pool's image files and the demo's own run directory
    /// and device list (DIR/run, DIR/devices; MPOOL_RUNDIR and MPOOL_CONFIG
    /// are ignored). Created if needed; removed at the end once empty.
    #[arg(long, default_value = "mpool-demo")]
    dir: PathBuf,
    /// Pool name.
    #[arg(long, default_value = "demo")]
    name: String,
    /// Keep the pool and its files for inspection instead of destroying the
    /// pool and removing them at the end (the demo prints how to remove
    /// them). A later run reopens the kept pool.
    #[arg(long)]
    keep: bool,
}

fn step(n: &mut u32, what: &str) {
    *n += 1;
    println!("\n[{n}] {what}");
}

/// Open the demo pool, creating it on first use.
fn open_or_create(name: &str, cap: &Path, stg: &Path) -> Result<(Pool, bool)> {
    if rundir::find_active(name)?.is_some() {
        let p = Pool::open(name, &OpenOptions::default())?;
        let ours = p
            .device_paths()
            .iter()
            .any(|d| std::fs::canonicalize(d).ok() == std::fs::canonicalize(cap).ok());
        anyhow::ensure!(
            ours,
            "an active pool named '{name}' lives elsewhere ({}); pass --name to use another name",
            p.device_paths()
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok((p, false));
    }
    if cap.exists() {
        // A pool from an earlier demo that was deactivated: find it again.
        let rep = scan::scan(&[cap.to_path_buf(), stg.to_path_buf()])?;
        if let Some(found) = rep.pools.iter().find(|p| {
            p.devices
                .iter()
                .any(|d| std::fs::canonicalize(cap).ok().as_ref() == Some(&d.path))
        }) {
            admin::activate(&found.uuid)?;
            return Ok((Pool::open(&found.uuid, &OpenOptions::default())?, false));
        }
        anyhow::bail!(
            "{} exists but holds no pool; remove it or pass --dir",
            cap.display()
        );
    }
    let opts = CreateOptions {
        staging: Some(DeviceSpec {
            path: stg.to_path_buf(),
            create_size: Some(256 << 20),
            zone_size: 1 << 20,
        }),
        label: "mpool demo".into(),
        ..Default::default()
    };
    let p = Pool::create(
        name,
        &DeviceSpec {
            path: cap.to_path_buf(),
            create_size: Some(1 << 30),
            zone_size: 4 << 20,
        },
        &opts,
    )?;
    Ok((p, true))
}

/// The file that marks a run directory as the demo's own.
const MARKER: &str = ".mpool-demo";

/// Make sure `DIR/run` and `DIR/devices` are the demo's (made now, or by an
/// earlier demo: the marker says so), never a directory or file of the
/// user's that happens to have the name; then mark the run directory.
fn claim(at: &Place) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let marker = at.rundir.join(MARKER);
    if !marker.exists() {
        for p in [&at.rundir, &at.config] {
            if p.symlink_metadata().is_ok() {
                anyhow::bail!(
                    "{} exists and was not made by the demo; give the demo a directory \
                     of its own (--dir)",
                    p.display()
                );
            }
        }
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&at.rundir)
            .with_context(|| format!("creating {}", at.rundir.display()))?;
        std::fs::write(&marker, "the run directory of `mpool demo`\n")
            .with_context(|| format!("writing {}", marker.display()))?;
    }
    Ok(())
}

/// Remove `f` if it exists; true when it did.
fn remove_if_there(f: &Path) -> Result<bool> {
    match std::fs::remove_file(f) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing {}", f.display())),
    }
}

/// Where the demo keeps its files.
struct Place {
    dir: PathBuf,
    rundir: PathBuf,
    config: PathBuf,
    cap: PathBuf,
    stg: PathBuf,
}

pub fn run(a: DemoArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let dir = std::fs::canonicalize(&a.dir)?;
    let at = Place {
        rundir: dir.join("run"),
        config: dir.join("devices"),
        cap: dir.join(format!("mpool-{}-capacity.img", a.name)),
        stg: dir.join(format!("mpool-{}-staging.img", a.name)),
        dir,
    };
    claim(&at)?;
    // The demo's own run directory and device list, set before any thread
    // exists: every later lookup of the library reads these.
    std::env::set_var("MPOOL_RUNDIR", &at.rundir);
    std::env::set_var("MPOOL_CONFIG", &at.config);
    // Its pool is on files: its scans need no block device of the machine.
    std::env::set_var(scan::SCAN_DEVICES_VAR, "none");
    println!(
        "mpool demo in {} (its own run directory {} and device list {}; nothing is written elsewhere)",
        at.dir.display(),
        at.rundir.display(),
        at.config.display()
    );
    let res = exercise(&a, &at);
    // Failed with the pool made: say how to remove it (not for a pool of
    // that name on other files, which the demo refused to touch).
    let ours = |e: &rundir::ActiveEntry| {
        e.devices
            .iter()
            .any(|d| std::fs::canonicalize(d).ok().as_ref() == Some(&at.cap))
    };
    if res.is_err() && matches!(rundir::find_active(&a.name), Ok(Some(e)) if ours(&e)) {
        eprintln!(
            "mpool: the pool '{}' and its files are left in {} for inspection; to remove them:",
            a.name,
            at.dir.display()
        );
        for line in removal(&a.name, &at) {
            eprintln!("  {line}");
        }
    }
    res
}

fn exercise(a: &DemoArgs, at: &Place) -> Result<ExitCode> {
    let (cap, stg) = (&at.cap, &at.stg);
    let mut n = 0;

    step(&mut n, "open or create the pool");
    let (p, created) = open_or_create(&a.name, cap, stg)?;
    if created {
        println!(
            "created pool '{}' ({}) on two sparse files:",
            p.name(),
            p.uuid()
        );
    } else {
        println!(
            "reopened pool '{}' ({}) from an earlier run:",
            p.name(),
            p.uuid()
        );
    }
    for d in p.props().devices {
        let direct = if d.direct { ", O_DIRECT" } else { "" };
        println!(
            "  {:<9} {} ({}, {}-byte sectors, engine {}{direct})",
            d.class.to_string(),
            d.path,
            human(d.size),
            d.sector,
            d.engine
        );
    }

    step(&mut n, "space per media class");
    print_space(&p);

    step(
        &mut n,
        "set properties (label, spare space of the staging class)",
    );
    p.set(&[
        (
            "label".into(),
            format!("mpool demo, run at {}", date(unix_now())),
        ),
        ("spare_staging".into(), "10".into()),
    ])?;
    println!("  label = {}", p.get("label")?);
    println!("  spare_staging = {}%", p.get("spare_staging")?);
    let gen = p.superblock().generation;
    println!("  superblock generation now {gen} (every update writes both copies on every device, one at a time)");

    step(&mut n, "mblocks: allocate, write, commit, read back");
    let mut kept = Vec::new();
    let shapes = [
        (MediaClass::Capacity, 3 << 20),
        (MediaClass::Staging, 200_000),
        (MediaClass::Capacity, 4096 + 17),
    ];
    for (i, (class, len)) in shapes.into_iter().enumerate() {
        let data = pattern(i as u64 + unix_now(), len);
        let id = p.mblock_alloc(class)?;
        // Two pieces of odd sizes: an mblock takes writes of any length.
        let cut = len / 3 + 1;
        p.mblock_write(id, &data[..cut])?;
        p.mblock_write(id, &data[cut..])?;
        let props = p.mblock_commit(id)?;
        let mut back = vec![0u8; len];
        p.mblock_read(id, 0, &mut back)?;
        anyhow::ensure!(back == data, "mblock {id} read back differs");
        let mut mid = [0u8; 10];
        p.mblock_read(id, (len / 2) as u64, &mut mid)?;
        anyhow::ensure!(
            mid[..] == data[len / 2..len / 2 + 10],
            "unaligned read of {id} differs"
        );
        let crc = props.crc.unwrap_or(0);
        let what = if props.csum_block.is_some() {
            "block checksums' crc32c"
        } else {
            "crc32c"
        };
        println!("  {id}  {:<9} {:>8} bytes, {what} {crc:08x}: committed; read back whole and at offset {} (verified): identical", class.to_string(), props.len, len / 2);
        kept.push((id, data));
    }
    let scratch = p.mblock_alloc(MediaClass::Capacity)?;
    p.mblock_write(scratch, b"never committed")?;
    p.mblock_abort(scratch)?;
    println!("  {scratch}  allocated, written, aborted: its zone is free again");
    let (gone, _) = kept.remove(2);
    p.mblock_delete(gone)?;
    println!("  {gone}  deleted (durable when the call returns; only then is its zone free)");
    let lazy = p.mblock_alloc(MediaClass::Capacity)?;
    p.mblock_write(lazy, b"short-lived")?;
    p.mblock_commit(lazy)?;
    p.mblock_delete_deferred(lazy)?;
    anyhow::ensure!(
        matches!(
            p.object_props(lazy),
            Err(mpool::Error::Object(mpool::ObjectError::NotFound(_)))
        ),
        "a deferred delete left the mblock visible"
    );
    p.sync()?;
    println!("  {lazy}  deleted deferred: gone at once, durable with the next metadata flush (here Pool::sync); its zone is reused only after that");
    match p.mblock_write(kept[0].0, b"more") {
        Err(e) => println!("  a write to a committed mblock is refused: {e}"),
        Ok(()) => anyhow::bail!("a committed mblock accepted a write"),
    }

    step(
        &mut n,
        "a user mlog: append records (synced ones share flushes), read them back",
    );
    let log_id = p.mlog_alloc(MediaClass::Staging, 1 << 20)?;
    p.mlog_commit(log_id)?;
    // IDs are typed: parsed back as an mlog's, the ID is the same; where an
    // mblock's is expected it is refused.
    let text = log_id.to_string();
    anyhow::ensure!(
        text.parse::<MlogId>().map_err(anyhow::Error::msg)? == log_id,
        "mlog ID {text} does not parse back"
    );
    match text.parse::<MblockId>() {
        Ok(_) => anyhow::bail!("mlog ID {text} parsed as an mblock's"),
        Err(why) => println!("  typed IDs: {why}"),
    }
    let log = p.mlog_open(log_id)?;
    for i in 0..5 {
        log.append(
            format!("event {i}: something happened").as_bytes(),
            i % 2 == 0,
        )?;
    }
    log.sync()?;
    let recs: Vec<Vec<u8>> = log.reader()?.collect::<Result<_, _>>()?;
    let first = recs
        .first()
        .map(|r| String::from_utf8_lossy(r).to_string())
        .unwrap_or_default();
    println!(
        "  mlog {log_id}: {} records, {} of {} bytes used; the first is {first:?}",
        recs.len(),
        log.len(),
        log.capacity()
    );
    drop(log);

    step(
        &mut n,
        "the root MDC: where a client keeps its own metadata",
    );
    let root = p.root_mdc()?;
    root.append(format!("demo run at {}", date(unix_now())).as_bytes(), true)?;
    let runs: Vec<Vec<u8>> = root.reader()?.collect::<Result<_, _>>()?;
    let last = runs
        .last()
        .map(|r| String::from_utf8_lossy(r).to_string())
        .unwrap_or_default();
    println!(
        "  root MDC {} holds {} record(s), one per demo run so far; the last is {last:?}",
        p.root_mdc_id()?,
        runs.len()
    );
    drop(root);
    print_space(&p);

    step(
        &mut n,
        "close, deactivate, find it again by scanning, activate, reopen",
    );
    let uuid = p.uuid().to_string();
    p.close()?;
    admin::deactivate(&a.name)?;
    let rep = scan::scan(&[cap.clone(), stg.clone()])?;
    let found = rep
        .pools
        .iter()
        .find(|x| x.uuid == uuid)
        .context("the scan did not find the pool again")?;
    println!(
        "  scan found '{}' with {} device(s), none missing: {}",
        found.name,
        found.devices.len(),
        found.missing.is_empty()
    );
    admin::activate(&uuid)?;
    let p = Pool::open(&a.name, &OpenOptions::default())?;
    anyhow::ensure!(
        p.superblock().generation == gen,
        "generation changed across reopen"
    );
    for (id, data) in &kept {
        let mut back = vec![0u8; data.len()];
        p.mblock_read(*id, 0, &mut back)?;
        anyhow::ensure!(&back == data, "mblock {id} changed across the reopen");
    }
    anyhow::ensure!(
        matches!(
            p.object_props(gone),
            Err(mpool::Error::Object(mpool::ObjectError::NotFound(_)))
        ),
        "the deleted mblock came back"
    );
    anyhow::ensure!(
        matches!(
            p.object_props(scratch),
            Err(mpool::Error::Object(mpool::ObjectError::NotFound(_)))
        ),
        "the aborted mblock came back"
    );
    anyhow::ensure!(
        matches!(
            p.object_props(lazy),
            Err(mpool::Error::Object(mpool::ObjectError::NotFound(_)))
        ),
        "the deferred-deleted mblock came back"
    );
    println!("  reopened by name: {} committed mblocks read back identical; the deleted ones and the aborted one are gone", kept.len());
    println!(
        "  the pool holds {} object(s), from every demo run",
        p.object_count()?
    );

    step(
        &mut n,
        "check: every mblock against the checksum recorded at its commit, every log record",
    );
    let rep = p.check(&mut |_, _| {})?;
    println!(
        "  {} mblock(s) ({}), {} mlog(s), {} MDC(s), {} metadata record(s): {} problem(s)",
        rep.mblocks,
        human(rep.bytes),
        rep.mlogs,
        rep.mdcs,
        rep.metadata_records,
        rep.problems.len()
    );
    anyhow::ensure!(
        rep.problems.is_empty(),
        "check found problems: {:?}",
        rep.problems
    );

    if a.keep {
        println!("\nKept (--keep): the pool '{}' stays active on:", p.name());
        for d in p.device_paths() {
            println!("  {}", d.display());
        }
        let name = sh_quote(&a.name);
        println!("To look at it, point mpool at the demo's run directory and device list:");
        println!(
            "  export MPOOL_RUNDIR={} MPOOL_CONFIG={}",
            sh_quote(&at.rundir.display().to_string()),
            sh_quote(&at.config.display().to_string())
        );
        println!("  mpool list -v;  mpool mblock list {name};  mpool mlog dump {name} {log_id};  mpool check {name}");
        println!(
            "To remove it, run the demo again without --keep (it reopens the pool, then removes it), or:"
        );
        for line in removal(&a.name, at) {
            println!("  {line}");
        }
        return Ok(ExitCode::SUCCESS);
    }

    step(&mut n, "destroy the pool and remove its files");
    p.close()?;
    admin::destroy(&a.name)?;
    println!("  destroyed pool '{}': superblocks erased", a.name);
    for f in [cap, stg] {
        std::fs::remove_file(f).with_context(|| format!("removing {}", f.display()))?;
        println!("  removed {}", f.display());
    }
    // The run directory and device list go too once no other demo pool
    // (another --name kept with --keep) uses them.
    if rundir::list_active()?.is_empty() && rundir::known_paths()?.is_empty() {
        // Only what the demo made: its marker and the lock files mpool
        // keeps, then the directory if that leaves it empty (never a
        // recursive removal: DIR is the user's).
        for f in [at.rundir.join(MARKER), at.rundir.join(".names.lock")] {
            remove_if_there(&f)?;
        }
        match std::fs::remove_dir(&at.rundir) {
            Ok(()) => println!("  removed {}", at.rundir.display()),
            Err(e) => println!("  left {} ({e})", at.rundir.display()),
        }
        if remove_if_there(&at.config)? {
            println!("  removed {}", at.config.display());
        }
        let cwd = std::env::current_dir().and_then(std::fs::canonicalize).ok();
        if cwd.as_deref() != Some(at.dir.as_path()) && std::fs::remove_dir(&at.dir).is_ok() {
            println!("  removed {}", at.dir.display());
        }
    } else {
        println!(
            "  {} and {} stay: other demo pools kept with --keep use them",
            at.rundir.display(),
            at.config.display()
        );
    }
    println!("\nDone; nothing is left behind. Run with --keep to keep the pool for inspection.");
    Ok(ExitCode::SUCCESS)
}

/// Shell commands that remove a pool kept by the demo and its files.
fn removal(name: &str, at: &Place) -> Vec<String> {
    let q = |p: &Path| sh_quote(&p.display().to_string());
    vec![
        format!(
            "MPOOL_RUNDIR={} MPOOL_CONFIG={} mpool destroy {} --yes",
            q(&at.rundir),
            q(&at.config),
            sh_quote(name)
        ),
        format!("rm -f {} {}", q(&at.cap), q(&at.stg)),
        format!(
            "rm -f {} {} {} && rmdir {} {}   # once no other demo pool is kept there",
            q(&at.rundir.join(MARKER)),
            q(&at.rundir.join(".names.lock")),
            q(&at.config),
            q(&at.rundir),
            q(&at.dir)
        ),
    ]
}

/// `s` as one shell word.
fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:=,@%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn print_space(p: &Pool) {
    for u in p.usage() {
        println!(
            "  {:<9} {:>4} zones of {}: used {:>9}, free {:>10}",
            u.class.to_string(),
            u.zones,
            human(u.zone_size),
            human(u.used),
            human(u.free)
        );
    }
}

/// Reproducible bytes that are not all alike.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::sh_quote;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("/tmp/mpool-demo/run"), "/tmp/mpool-demo/run");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
    }
}
