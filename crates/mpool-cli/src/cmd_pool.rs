//! Pool lifecycle verbs.

use crate::fmt::{human, parse_gid, parse_uid, print_json, size_arg, table};
use crate::output::{OutputArgs, Rows, Val};
use anyhow::{bail, Context, Result};
use clap::Args;
use mpool::admin::{self, rundir, scan as mscan};
use mpool::{
    parse_mode, ClassUsage, DeviceSpec, PoolProps, DEFAULT_ZONE_SIZE, PROPERTIES, SETTABLE,
};
use mpool::{CreateOptions, MediaClass, OpenOptions, Pool};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Pool name: up to 31 of [-_.A-Za-z0-9], not starting with '-'.
    name: String,
    /// Capacity device: a block device or a file.
    device: PathBuf,
    /// Create DEVICE as a sparse file of this size.
    #[arg(long, allow_hyphen_values = true, value_name = "SIZE", value_parser = size_arg)]
    size: Option<u64>,
    /// Staging device (optional fast media class).
    #[arg(long)]
    staging: Option<PathBuf>,
    /// Create the staging device as a sparse file of this size.
    #[arg(long, allow_hyphen_values = true, value_name = "SIZE", value_parser = size_arg, requires = "staging")]
    staging_size: Option<u64>,
    /// Mblock (zone) size of the capacity class, a power of two (default 32MiB).
    #[arg(long, allow_hyphen_values = true, value_name = "SIZE", value_parser = size_arg)]
    mblock_size: Option<u64>,
    /// Mblock (zone) size of the staging class (default: as capacity).
    #[arg(long, allow_hyphen_values = true, value_name = "SIZE", value_parser = size_arg, requires = "staging")]
    staging_mblock_size: Option<u64>,
    /// Owner of the member devices (name or number; default: you).
    #[arg(long)]
    uid: Option<String>,
    /// Group of the member devices (name or number; default: your group).
    #[arg(long)]
    gid: Option<String>,
    /// Permission bits of the member devices, octal (default 0660).
    #[arg(long)]
    mode: Option<String>,
    /// Free-form label (up to 63 bytes).
    #[arg(long, default_value = "")]
    label: String,
    /// Discard (TRIM) the devices first.
    #[arg(long)]
    discard: bool,
    /// Overwrite a filesystem, LVM or inactive-pool signature.
    #[arg(long)]
    force: bool,
    /// Allocate the device files whole now, so that a filling filesystem
    /// can never fail a write to the pool (without it, only the superblocks
    /// and the pool metadata are allocated).
    #[arg(long)]
    preallocate: bool,
    /// Print the new pool's properties as JSON.
    #[arg(long)]
    json: bool,
}

/// Refuse a `--size` (named `opt`) the library would fail on half way:
/// given for a block device (whose size is its own), more than a file can
/// hold, or not a whole number of 4 KiB blocks. Checked before anything is
/// created. A size below the class's minimum is refused by the library,
/// which removes any file it created.
fn check_file_size(opt: &str, path: &std::path::Path, size: Option<u64>) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Some(size) = size else {
        return Ok(());
    };
    if let Ok(m) = std::fs::metadata(path) {
        if m.file_type().is_block_device() {
            bail!(
                "{opt} creates a file; {} is a block device, whose size is the device's: omit {opt}",
                path.display()
            );
        }
    }
    let max = i64::MAX as u64;
    if size > max {
        bail!(
            "{opt} {size} is more than a file can hold (at most {max} bytes, {})",
            human(max)
        );
    }
    const BLOCK: u64 = 4096;
    if size % BLOCK != 0 {
        let down = size / BLOCK * BLOCK;
        let up = down + BLOCK;
        let alt = if down == 0 {
            format!("{up}")
        } else {
            format!("{down} or {up}")
        };
        bail!("{opt} {size} is not a multiple of {BLOCK} bytes: give {alt}");
    }
    Ok(())
}

pub fn create(a: CreateArgs) -> Result<ExitCode> {
    check_file_size("--size", &a.device, a.size)?;
    if let Some(stg) = &a.staging {
        check_file_size("--staging-size", stg, a.staging_size)?;
    }
    let zone = a.mblock_size.unwrap_or(DEFAULT_ZONE_SIZE);
    let cap = DeviceSpec {
        path: a.device.clone(),
        create_size: a.size,
        zone_size: zone,
    };
    let staging = a.staging.as_ref().map(|p| DeviceSpec {
        path: p.clone(),
        create_size: a.staging_size,
        zone_size: a.staging_mblock_size.unwrap_or(zone),
    });
    let opts = CreateOptions {
        staging,
        uid: a.uid.as_deref().map(parse_uid).transpose()?,
        gid: a.gid.as_deref().map(parse_gid).transpose()?,
        mode: a.mode.as_deref().map(parse_mode).transpose()?,
        label: a.label.clone(),
        discard: a.discard,
        force: a.force,
        activate: true,
        preallocate: a.preallocate,
        open: OpenOptions::default(),
    };
    let p = Pool::create(&a.name, &cap, &opts)?;
    let props = p.props();
    if a.json {
        print_json(&pool_json(&props)?)?;
    } else {
        println!("created pool '{}' ({})", props.name, props.uuid);
        for d in &props.devices {
            println!("  {:<9} {}  {}", d.class.to_string(), d.path, human(d.size));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn destroy(name: &str, yes: bool) -> Result<ExitCode> {
    use std::io::{BufRead, IsTerminal, Write};
    // What will be erased, from the active pool's properties (an inactive
    // pool is found by the library's own search and described by name).
    let what = match inspect(name) {
        Ok(p) => {
            let props = p.props();
            drop(p);
            let devs = props
                .devices
                .iter()
                .map(|d| format!("{} {} ({})", d.class, d.path, human(d.size)))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "pool '{}' ({}): its superblocks on {devs} are erased, and every object in it is lost",
                props.name, props.uuid
            )
        }
        Err(_) => {
            format!("pool '{name}': its superblocks on every member device are erased, and every object in it is lost")
        }
    };
    // Members that are gone (a deleted file, a removed disk): said before
    // anything is erased.
    if let Ok(plan) = admin::destroy_plan(name) {
        if !plan.missing.is_empty() || !plan.gone.is_empty() {
            eprintln!("mpool: warning: {}", missing_text(&plan));
        }
    }
    let stdin = std::io::stdin();
    if !yes && stdin.is_terminal() {
        eprint!("mpool: destroy {what}.\nType 'yes' to destroy it: ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        stdin.lock().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            bail!("pool '{name}' not destroyed (answered '{}')", answer.trim());
        }
    } else {
        eprintln!("mpool: destroying {what}");
    }
    let plan = admin::destroy(name)?;
    if plan.missing.is_empty() {
        println!("destroyed pool '{name}'");
    } else {
        println!(
            "destroyed pool '{name}': erased {}; {} missing member(s) forgotten",
            plan.erased
                .iter()
                .map(|(c, p)| format!("{c} {}", p.display()))
                .collect::<Vec<_>>()
                .join(", "),
            plan.missing.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Which members of a pool to be destroyed are missing, and what is erased instead.
fn missing_text(plan: &admin::DestroyPlan) -> String {
    let mut s = format!(
        "pool '{}' is missing {} member(s): {}",
        plan.name,
        plan.missing.len(),
        plan.missing
            .iter()
            .map(|m| format!("{} {}", m.class, m.uuid))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !plan.gone.is_empty() {
        s.push_str(&format!(
            " (recorded at {}, which no longer exist{})",
            plan.gone
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if plan.gone.len() == 1 { "s" } else { "" }
        ));
    }
    s.push_str(&format!(
        "; only the superblocks on {} are erased, and the missing members are forgotten",
        plan.erased
            .iter()
            .map(|(c, p)| format!("{c} {}", p.display()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    s
}

/// `mpool forget PATH...|POOL`.
pub fn forget(targets: &[String], json: bool) -> Result<ExitCode> {
    // A pool name has no '/': anything with one is a path.
    let f = match targets {
        [one] if !one.contains('/') => admin::forget_pool(one)?,
        _ => {
            if let Some(t) = targets.iter().find(|t| !t.contains('/')) {
                bail!(
                    "'{t}' has no '/': name paths as paths (./{t}), or forget one pool at a time, alone"
                );
            }
            let paths: Vec<PathBuf> = targets.iter().map(PathBuf::from).collect();
            admin::forget_paths(&paths)?
        }
    };
    if json {
        print_json(&f)?;
    } else {
        for p in &f.paths {
            println!("forgot {}", p.display());
        }
        if let Some(n) = &f.deactivated {
            println!("forgot pool '{n}' (its devices are gone)");
        }
        if f.paths.is_empty() && f.deactivated.is_none() {
            println!("nothing to forget");
        }
    }
    for p in &f.not_listed {
        eprintln!(
            "mpool: warning: {} is not in the device list ({})",
            p.display(),
            rundir::config_path().display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Properties of an active pool without locking it (works while it is open elsewhere).
fn inspect(name: &str) -> mpool::Result<Pool> {
    Pool::open(
        name,
        &OpenOptions {
            inspect: true,
            ..Default::default()
        },
    )
}

#[derive(serde::Serialize)]
struct ListEntry {
    name: String,
    uuid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    props: Option<PoolProps>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The active pools named (by name or UUID; every one for no names), and
/// the names that match none.
pub fn choose_active(names: &[String]) -> Result<(Vec<rundir::ActiveEntry>, Vec<String>)> {
    let active = rundir::list_active()?;
    if names.is_empty() {
        return Ok((active, Vec::new()));
    }
    let mut chosen = Vec::new();
    let mut missing = Vec::new();
    for n in names {
        match active
            .iter()
            .find(|a| &a.name == n || a.uuid.eq_ignore_ascii_case(n))
        {
            Some(a) => chosen.push(a.clone()),
            None => missing.push(n.clone()),
        }
    }
    Ok((chosen, missing))
}

/// Keys of every `list --json` entry besides the properties (null when
/// the pool could not be read, as every property is then).
const LIST_JSON_KEYS: [&str; 3] = ["classes", "state", "error"];

/// A pool as JSON, the one schema of `create`, `get` and `list`: every
/// property of [`PROPERTIES`] (numbers as numbers, `devices` an array of
/// device objects, absent values null) and `classes`, the space per class.
fn pool_json(pp: &mpool::PoolProps) -> Result<serde_json::Value> {
    let mut v = serde_json::to_value(pp)?;
    let class = |c: MediaClass| {
        pp.classes
            .iter()
            .find(|u| u.class == c)
            .map_or(serde_json::Value::Null, |u| u.zone_size.into())
    };
    let sum = |f: fn(&ClassUsage) -> u64| pp.classes.iter().map(f).sum::<u64>();
    if let Some(m) = v.as_object_mut() {
        m.insert("size".into(), sum(|c| c.size).into());
        m.insert("used".into(), sum(|c| c.used).into());
        m.insert("free".into(), sum(|c| c.free).into());
        m.insert("mblock_size_capacity".into(), class(MediaClass::Capacity));
        m.insert("mblock_size_staging".into(), class(MediaClass::Staging));
    }
    Ok(v)
}

/// Every field of `mpool list -o`.
const LIST_FIELDS: [&str; 11] = [
    "name",
    "uuid",
    "size",
    "used",
    "free",
    "classes",
    "objects",
    "label",
    "health",
    "format_version",
    "state",
];
const LIST_DEFAULT: [&str; 8] = [
    "name", "size", "used", "free", "classes", "objects", "label", "health",
];
const LIST_VERBOSE: [&str; 10] = [
    "name", "uuid", "size", "used", "free", "classes", "objects", "label", "health", "state",
];

pub fn list(names: &[String], json: bool, verbose: bool, out: &OutputArgs) -> Result<ExitCode> {
    if !json {
        // A bad -o is refused before any pool is opened.
        out.select(&LIST_FIELDS, &LIST_DEFAULT)?;
    }
    let (chosen, missing) = choose_active(names)?;
    let entries: Vec<ListEntry> = chosen
        .iter()
        .map(|a| match inspect(&a.uuid) {
            Ok(p) => ListEntry {
                name: a.name.clone(),
                uuid: a.uuid.clone(),
                props: Some(p.props()),
                error: None,
            },
            Err(e) => ListEntry {
                name: a.name.clone(),
                uuid: a.uuid.clone(),
                props: None,
                error: Some(e.to_string()),
            },
        })
        .collect();
    if json {
        // One object per pool: the properties of `get --json`, plus `state`
        // and `error` (null unless the pool could not be read, when the
        // other properties are null).
        let mut out = Vec::new();
        for e in &entries {
            let mut v = match &e.props {
                Some(p) => pool_json(p)?,
                None => serde_json::json!({}),
            };
            if let Some(m) = v.as_object_mut() {
                for k in PROPERTIES.iter().chain(&LIST_JSON_KEYS) {
                    m.entry(k.to_string()).or_insert(serde_json::Value::Null);
                }
                m.insert("name".into(), e.name.clone().into());
                m.insert("uuid".into(), e.uuid.clone().into());
                let state = match (&e.props, Pool::holder(&e.uuid)) {
                    (None, _) => "unavailable".to_string(),
                    (Some(_), Some(pid)) => format!("open by {pid}"),
                    (Some(_), None) => "active".to_string(),
                };
                m.insert("state".into(), state.into());
                m.insert("error".into(), e.error.clone().into());
            }
            out.push(v);
        }
        print_json(&out)?;
    } else if entries.is_empty() && missing.is_empty() {
        println!("no active pools (create one with `mpool create`, or find existing ones with `mpool scan --activate`)");
    } else {
        let rows = entries
            .iter()
            .map(|e| match &e.props {
                Some(p) => {
                    // While a process holds the pool, its published figures
                    // are current; the metadata read here may lag them.
                    let live = Pool::published_figures(&p.uuid);
                    let classes = live.as_ref().map_or(&p.classes, |f| &f.classes);
                    let sum = |f: fn(&ClassUsage) -> u64| classes.iter().map(f).sum::<u64>();
                    let objects = match (&live, p.objects) {
                        (Some(f), _) => Val::Num(f.objects.total()),
                        (None, Some(n)) => Val::Num(n),
                        (None, None) => Val::Absent,
                    };
                    vec![
                        p.name.clone().into(),
                        p.uuid.clone().into(),
                        Val::Bytes(sum(|c| c.size)),
                        Val::Bytes(sum(|c| c.used)),
                        Val::Bytes(sum(|c| c.free)),
                        p.classes
                            .iter()
                            .map(|c| c.class.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                            .into(),
                        objects,
                        p.label.clone().into(),
                        live.as_ref()
                            .map_or(&p.health, |f| &f.health)
                            .clone()
                            .into(),
                        Val::Num(u64::from(p.format_version)),
                        match Pool::holder(&p.uuid) {
                            Some(pid) => format!("open by {pid}").into(),
                            None => "active".into(),
                        },
                    ]
                }
                None => vec![
                    e.name.clone().into(),
                    e.uuid.clone().into(),
                    Val::Absent,
                    Val::Absent,
                    Val::Absent,
                    Val::Absent,
                    Val::Absent,
                    Val::Absent,
                    format!("unavailable: {}", e.error.clone().unwrap_or_default()).into(),
                    Val::Absent,
                    "unavailable".into(),
                ],
            })
            .collect();
        let default: &[&str] = if verbose {
            &LIST_VERBOSE
        } else {
            &LIST_DEFAULT
        };
        out.print(&Rows {
            all: &LIST_FIELDS,
            default,
            rows,
        })?;
        if verbose {
            for p in entries.iter().filter_map(|e| e.props.as_ref()) {
                println!(
                    "\n{}: uid {} gid {} mode {} generation {}",
                    p.name, p.uid, p.gid, p.mode, p.generation
                );
                let rows = p
                    .classes
                    .iter()
                    .map(|c| {
                        let d = p.devices.iter().find(|d| d.class == c.class);
                        vec![
                            c.class.to_string(),
                            d.map_or_else(|| "-".into(), |d| d.path.clone()),
                            d.map_or_else(
                                || "-".into(),
                                |d| {
                                    format!(
                                        "{} {}{}",
                                        d.kind,
                                        d.engine,
                                        if d.direct { "" } else { " buffered" }
                                    )
                                },
                            ),
                            human(c.zone_size),
                            human(c.size),
                            human(c.used),
                            human(c.spare),
                            human(c.free),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        &["class", "device", "kind", "mblock", "size", "used", "spare", "free"],
                        rows
                    )
                );
            }
        }
    }
    if !json {
        for p in entries.iter().filter_map(|e| e.props.as_ref()) {
            for d in &p.devices {
                if let Some(short) = d.sparse_shortfall {
                    eprintln!(
                        "mpool: warning: pool '{}': {} is a sparse file ({} of {} allocated) and its filesystem has {} free, {} less than the {} class has free: writes may fail for want of space before the pool is full (free space on the filesystem, or create pools with --preallocate)",
                        p.name,
                        d.path,
                        human(d.allocated.unwrap_or(0)),
                        human(d.size),
                        human(d.fs_free.unwrap_or(0)),
                        human(short),
                        d.class,
                    );
                }
            }
        }
    }
    for m in &missing {
        eprintln!("mpool: error: no active pool '{m}'");
    }
    Ok(if missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What `scan --activate` activates.
#[derive(Debug, Clone)]
pub enum ScanActivate {
    /// Nothing: only report.
    None,
    /// Every complete pool found.
    All,
    /// Only the pool of this name or UUID.
    Pool(String),
}

pub fn scan(paths: &[PathBuf], activate: ScanActivate, json: bool) -> Result<ExitCode> {
    let rep = mscan::scan(paths)?;
    let mut activated = Vec::new();
    let mut failed = Vec::new();
    let chosen = |p: &mscan::ScannedPool| match &activate {
        ScanActivate::None => false,
        ScanActivate::All => true,
        ScanActivate::Pool(n) => &p.name == n || p.uuid.eq_ignore_ascii_case(n),
    };
    if let ScanActivate::Pool(n) = &activate {
        let matches = rep.pools.iter().filter(|p| chosen(p)).count();
        if matches == 0 {
            let mut msg = format!(
                "scan found no pool '{n}' to activate ({} pool(s) found, {} devices and files examined)",
                rep.pools.len(),
                rep.examined
            );
            if std::path::Path::new(n).exists() {
                msg.push_str(&format!(
                    "; '{n}' is a file: to scan it, name it before --activate (`mpool scan {n} --activate`)"
                ));
            }
            bail!(msg);
        }
        if matches > 1 && !rep.pools.iter().any(|p| p.uuid.eq_ignore_ascii_case(n)) {
            bail!(
                "{matches} pools are named '{n}' ({}); name one by UUID",
                rep.pools
                    .iter()
                    .filter(|p| chosen(p))
                    .map(|p| p.uuid.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if let Some(p) = rep
            .pools
            .iter()
            .find(|p| chosen(p) && !p.missing.is_empty())
        {
            failed.push(format!(
                "{}: incomplete, {} member device(s) not found",
                p.name,
                p.missing.len()
            ));
        }
    }
    if !matches!(activate, ScanActivate::None) {
        for p in rep
            .pools
            .iter()
            .filter(|p| chosen(p) && !p.active && p.missing.is_empty())
        {
            let paths: Vec<PathBuf> = p.devices.iter().map(|d| d.path.clone()).collect();
            match admin::activate_paths(&paths) {
                Ok(_) => activated.push(p.name.clone()),
                Err(e) => failed.push(format!("{}: {e}", p.name)),
            }
        }
    }
    if json {
        print_json(
            &serde_json::json!({ "report": rep, "activated": activated, "activation_errors": failed }),
        )?;
    } else {
        if rep.pools.is_empty() {
            println!(
                "no pools found ({} devices and files examined)",
                rep.examined
            );
        } else {
            let rows = rep
                .pools
                .iter()
                .map(|p| {
                    let state = if p.active || activated.contains(&p.name) {
                        "active"
                    } else {
                        "inactive"
                    };
                    // Members, not devices: a copy of a member is no second member.
                    let mut found: Vec<&str> = p.devices.iter().map(|d| d.uuid.as_str()).collect();
                    found.sort_unstable();
                    found.dedup();
                    let total = found.len() + p.missing.len();
                    let state = if p.duplicates.is_empty() {
                        state.to_string()
                    } else {
                        format!("{state}, duplicate")
                    };
                    vec![
                        p.name.clone(),
                        p.uuid.clone(),
                        state,
                        format!("{}/{}", found.len(), total),
                        p.devices
                            .iter()
                            .map(|d| format!("{}:{}", d.class, d.path.display()))
                            .collect::<Vec<_>>()
                            .join(" "),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(&["name", "uuid", "state", "devices", "members"], rows)
            );
        }
        for p in rep.pools.iter().filter(|p| !p.missing.is_empty()) {
            println!(
                "pool '{}' is incomplete: {} {} device(s) not found",
                p.name,
                p.missing.len(),
                p.missing
                    .iter()
                    .map(|m| m.class.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
        for p in &rep.pools {
            for d in &p.duplicates {
                println!(
                    "pool '{}': member {} ({}) found on {} devices: {}; one is a copy of the other, the pool is neither activated nor opened",
                    p.name,
                    d.uuid,
                    d.class,
                    d.paths.len(),
                    d.paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        for d in &rep.damaged {
            println!(
                "damaged: {}: mpool superblock with no valid copy ({})",
                d.path.display(),
                d.why
            );
        }
        for (p, why) in &rep.unreadable {
            eprintln!("mpool: warning: cannot read {}: {why}", p.display());
            // A listed file that is gone: say how to stop the warning.
            if !paths.contains(p) && std::fs::symlink_metadata(p).is_err() {
                eprintln!(
                    "mpool: hint: if {0} is gone for good, `mpool forget {0}` takes it out of the device list",
                    p.display()
                );
            }
        }
        if rep.skipped_block_devices > 0 {
            eprintln!("note: {} block device(s) could not be opened (busy or no permission) and were skipped", rep.skipped_block_devices);
        }
        for a in &activated {
            println!("activated pool '{a}'");
        }
        for f in &failed {
            eprintln!("mpool: error: could not activate {f}");
        }
    }
    Ok(
        if failed.is_empty() && rep.unreadable.iter().all(|(p, _)| !paths.contains(p)) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

pub fn activate(name: &str) -> Result<ExitCode> {
    let e = admin::activate(name)?;
    println!("activated pool '{}' ({})", e.name, e.uuid);
    Ok(ExitCode::SUCCESS)
}

pub fn deactivate(name: &str) -> Result<ExitCode> {
    admin::deactivate(name)?;
    println!("deactivated pool '{name}'");
    Ok(ExitCode::SUCCESS)
}

pub fn rename(old: &str, new: &str) -> Result<ExitCode> {
    admin::rename(old, new)?;
    println!("renamed pool '{old}' to '{new}'");
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// Pool name or UUID.
    pool: String,
    /// The new device: a block device or a file.
    device: PathBuf,
    /// Media class of the new device.
    #[arg(long, value_parser = |s: &str| s.parse::<MediaClass>())]
    class: MediaClass,
    /// Create DEVICE as a sparse file of this size.
    #[arg(long, allow_hyphen_values = true, value_name = "SIZE", value_parser = size_arg)]
    size: Option<u64>,
    /// Mblock (zone) size of the new class (default: as the capacity class).
    #[arg(long, allow_hyphen_values = true, value_name = "SIZE", value_parser = size_arg)]
    mblock_size: Option<u64>,
    /// Overwrite a filesystem, LVM or inactive-pool signature.
    #[arg(long)]
    force: bool,
}

pub fn add(a: AddArgs) -> Result<ExitCode> {
    check_file_size("--size", &a.device, a.size)?;
    let p = Pool::open(&a.pool, &OpenOptions::default())?;
    let zone = match a.mblock_size {
        Some(z) => z,
        None => p
            .superblock()
            .members
            .iter()
            .find(|m| m.class == MediaClass::Capacity)
            .map_or(DEFAULT_ZONE_SIZE, |m| m.zone_size),
    };
    p.add(
        a.class,
        &DeviceSpec {
            path: a.device.clone(),
            create_size: a.size,
            zone_size: zone,
        },
        a.force,
    )?;
    println!(
        "added {} class on {} to pool '{}'",
        a.class,
        a.device.display(),
        p.name()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn get(name: &str, props: &[String], json: bool) -> Result<ExitCode> {
    let props: Vec<&str> = props.iter().map(|p| mpool::canonical_property(p)).collect();
    for p in &props {
        if !PROPERTIES.contains(p) {
            bail!("unknown property '{p}' (known: {})", PROPERTIES.join(", "));
        }
    }
    let p = inspect(name)?;
    let names: Vec<&str> = if props.is_empty() {
        PROPERTIES.to_vec()
    } else {
        props
    };
    if json {
        // The values of `list --json` (one schema per concept): numbers as
        // numbers, devices as an array of device objects, absent as null.
        let whole = pool_json(&p.props())?;
        let mut m = serde_json::Map::new();
        for n in &names {
            m.insert(
                n.to_string(),
                whole.get(*n).cloned().unwrap_or(serde_json::Value::Null),
            );
        }
        print_json(&m)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut pairs = Vec::new();
    for n in &names {
        pairs.push((n.to_string(), p.get(n)?));
    }
    {
        println!(
            "{}",
            table(
                &["property", "value"],
                pairs.into_iter().map(|(k, v)| vec![k, v]).collect()
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn set(name: &str, assignments: &[String]) -> Result<ExitCode> {
    let mut kv = Vec::new();
    for a in assignments {
        let Some((k, v)) = a.split_once('=') else {
            bail!(
                "'{a}' is not prop=value (settable: {})",
                SETTABLE.join(", ")
            );
        };
        let v = match k {
            "uid" => parse_uid(v)?.to_string(),
            "gid" => parse_gid(v)?.to_string(),
            "mode" => format!("{:o}", parse_mode(v)?),
            _ => v.to_string(),
        };
        kv.push((k.to_string(), v));
    }
    let p = Pool::open(name, &OpenOptions::default())
        .with_context(|| format!("opening pool '{name}'"))?;
    p.set(&kv)?;
    for (k, v) in &kv {
        println!("{name}: {k}={v}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `mpool upgrade POOL [--dry-run] [--json]`.
pub fn upgrade(name: &str, dry_run: bool, json: bool) -> Result<ExitCode> {
    let mut progress = |step: &str| {
        // Progress goes to stderr, so that --json keeps stdout parseable.
        eprintln!("mpool: {step}");
    };
    let rep = admin::upgrade(name, &admin::UpgradeOptions { dry_run }, &mut progress)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rep.already_current {
        println!(
            "pool '{}' is already format version {}; nothing to do",
            rep.name, rep.version_after
        );
        return Ok(ExitCode::SUCCESS);
    }
    if rep.dry_run {
        println!(
            "pool '{}' ({}) is format version {}; upgrade would:",
            rep.name, rep.uuid, rep.version_before
        );
        for s in &rep.steps {
            println!("  {s}");
        }
        for m in &rep.members {
            println!(
                "  member {:<9} {}  version {}, generation {}{}",
                m.class.to_string(),
                m.device,
                m.version,
                m.generation,
                if m.damaged {
                    ", damaged or stale copy"
                } else {
                    ""
                }
            );
        }
        println!("nothing was written (--dry-run)");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "upgraded pool '{}' ({}) from format version {} to {} (superblock generation {} -> {})",
        rep.name,
        rep.uuid,
        rep.version_before,
        rep.version_after,
        rep.generation_before,
        rep.generation_after
    );
    Ok(ExitCode::SUCCESS)
}
