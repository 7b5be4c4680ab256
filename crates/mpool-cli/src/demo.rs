//! `mpool demo`: the main job on a file-backed pool in the current directory.

use crate::fmt::human;
use anyhow::{Context, Result};
use clap::Args;
use mpool::pool::{self, DeviceSpec};
use mpool::{rundir, CreateOptions, MediaClass, OpenOptions, Pool};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Directory for the pool's files.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Pool name.
    #[arg(long, default_value = "demo")]
    name: String,
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
        let rep = mpool::scan::scan(&[cap.to_path_buf(), stg.to_path_buf()])?;
        if let Some(found) = rep.pools.iter().find(|p| {
            p.devices
                .iter()
                .any(|d| std::fs::canonicalize(cap).ok().as_ref() == Some(&d.path))
        }) {
            pool::activate(&found.uuid)?;
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

pub fn run(a: DemoArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let dir = std::fs::canonicalize(&a.dir)?;
    let cap = dir.join(format!("mpool-{}-capacity.img", a.name));
    let stg = dir.join(format!("mpool-{}-staging.img", a.name));
    let mut n = 0;

    step(&mut n, "open or create the pool");
    let (p, created) = open_or_create(&a.name, &cap, &stg)?;
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
        println!(
            "  {:<9} {} ({}, {} sectors, engine {}{})",
            d.class.to_string(),
            d.path,
            human(d.size),
            d.sector,
            d.engine,
            if d.direct { ", O_DIRECT" } else { "" }
        );
    }

    step(&mut n, "space per media class");
    for u in p.usage() {
        println!(
            "  {:<9} {} zones of {}: used {}, free {}",
            u.class.to_string(),
            u.zones,
            human(u.zone_size),
            human(u.used),
            human(u.free)
        );
    }

    step(
        &mut n,
        "set properties (label, spare space of the staging class)",
    );
    p.set(&[
        ("label".into(), format!("mpool demo, run at {}", unix_now())),
        ("spare_staging".into(), "10".into()),
    ])?;
    println!("  label = {}", p.get("label")?);
    println!("  spare_staging = {}%", p.get("spare_staging")?);
    let gen = p.superblock().generation;
    println!("  superblock generation now {gen} (each update writes both copies on every device, one at a time)");

    step(
        &mut n,
        "close, deactivate, find it again by scanning, activate, reopen",
    );
    let uuid = p.uuid().to_string();
    drop(p);
    pool::deactivate(&a.name)?;
    let rep = mpool::scan::scan(&[cap.clone(), stg.clone()])?;
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
    pool::activate(&uuid)?;
    let p = Pool::open(&a.name, &OpenOptions::default())?;
    anyhow::ensure!(
        p.superblock().generation == gen,
        "generation changed across reopen"
    );
    println!(
        "  reopened by name; generation {gen}, classes {:?}",
        p.classes()
            .iter()
            .map(MediaClass::to_string)
            .collect::<Vec<_>>()
    );

    println!("\nThe pool '{}' stays active on:", p.name());
    for d in p.device_paths() {
        println!("  {}", d.display());
    }
    println!("Try: mpool list -v | mpool get {0} | mpool deactivate {0} && mpool scan {1} | mpool destroy {0}", a.name, cap.display());
    Ok(ExitCode::SUCCESS)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
