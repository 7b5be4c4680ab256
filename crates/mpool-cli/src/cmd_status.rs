//! `mpool status`, like `zpool status`: per active pool its state, health
//! with the reason and what to do, its member devices, its objects (live
//! figures from the process holding it open, when one does), and the last
//! `check`.

use crate::fmt::{human, print_json};
use crate::output::{date, unix_now};
use anyhow::Result;
use mpool::admin::{self, rundir};
use mpool::{CheckRecord, ClassUsage, ObjectCounts, OpenOptions, Pool};
use serde::Serialize;
use std::process::ExitCode;

/// One member device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceStatus {
    /// Absolute path (or the device's name).
    pub path: String,
    /// Media class, when known.
    pub class: Option<mpool::MediaClass>,
    /// Bytes, when known.
    pub size: Option<u64>,
    /// `ok`, `missing`, or what is wrong.
    pub state: String,
}

/// One pool.
#[derive(Debug, Clone, Serialize)]
pub struct PoolStatus {
    /// Pool name.
    pub name: String,
    /// Pool UUID.
    pub uuid: String,
    /// `open` (a process holds it read-write), `active` (activated, not
    /// held), or `unavailable` (it cannot be opened: see `health`).
    pub state: String,
    /// The process holding it open read-write.
    pub holder_pid: Option<u32>,
    /// When it was activated, seconds since the epoch.
    pub activated: u64,
    /// `ok`, or what is wrong.
    pub health: String,
    /// What to do about it (null when healthy).
    pub action: Option<String>,
    /// On-media format version (null when the pool could not be read).
    pub format_version: Option<u16>,
    /// Committed objects of each kind (null when the metadata was not read).
    pub objects: Option<ObjectCounts>,
    /// Where `objects` and `classes` come from: `holder` (published by the
    /// process holding the pool, at most 10 s old) or `metadata` (read now).
    pub figures_from: Option<String>,
    /// When the holder published its figures, milliseconds since the epoch.
    pub figures_updated_ms: Option<u64>,
    /// Space per media class.
    pub classes: Vec<ClassUsage>,
    /// The holder's mcache maps of the pool (maps, objects, resident
    /// bytes), from its live figures; null when it has none.
    pub mcache: Option<mpool::mcache::McachePoolFigures>,
    /// Member devices.
    pub devices: Vec<DeviceStatus>,
    /// The last `mpool check` run from this run directory.
    pub last_check: Option<CheckRecord>,
    /// Errors met by readers and writers of the pool since it was
    /// activated, in any process: device read and write errors, checksum
    /// mismatches.
    pub errors: rundir::ErrorCounts,
}

fn inspect(uuid: &str) -> mpool::Result<Pool> {
    Pool::open(
        uuid,
        &OpenOptions {
            inspect: true,
            ..Default::default()
        },
    )
}

/// The status of one active pool.
pub fn pool_status(ent: &rundir::ActiveEntry) -> PoolStatus {
    let holder = Pool::holder(&ent.uuid);
    let live = Pool::published_figures(&ent.uuid);
    let mut st = PoolStatus {
        name: ent.name.clone(),
        uuid: ent.uuid.clone(),
        state: if holder.is_some() { "open" } else { "active" }.into(),
        holder_pid: holder,
        activated: ent.activated,
        health: "ok".into(),
        action: None,
        format_version: None,
        objects: None,
        figures_from: None,
        figures_updated_ms: None,
        classes: Vec::new(),
        mcache: None,
        devices: Vec::new(),
        last_check: Pool::last_check(&ent.uuid),
        errors: rundir::error_counts(&ent.uuid),
    };
    match inspect(&ent.uuid) {
        Ok(p) => {
            let props = p.props();
            st.format_version = Some(props.format_version);
            st.health = props.health.clone();
            st.devices = props
                .devices
                .iter()
                .map(|d| DeviceStatus {
                    path: d.path.clone(),
                    class: Some(d.class),
                    size: Some(d.size),
                    state: match d.sparse_shortfall {
                        Some(short) => format!(
                            "ok (sparse file; its filesystem lacks {} of the class' free space)",
                            human(short)
                        ),
                        None => "ok".into(),
                    },
                })
                .collect();
            // Superblock copies found damaged are named in the health text.
            for d in &mut st.devices {
                if st.health.contains(&format!("{} superblock copy", d.path)) {
                    d.state = "degraded (damaged superblock copy)".into();
                }
            }
            match &live {
                Some(f) => {
                    st.objects = Some(f.objects);
                    st.classes = f.classes.clone();
                    st.figures_from = Some("holder".into());
                    st.figures_updated_ms = Some(f.updated_ms);
                    st.health = f.health.clone();
                    st.mcache = f.mcache;
                }
                None => {
                    st.objects = props.objects.map(|_| p.object_counts());
                    st.classes = props.classes.clone();
                    st.figures_from = Some("metadata".into());
                }
            }
            if st.health != "ok" {
                st.action = Some(if st.health.contains("superblock copy") {
                    format!(
                        "`mpool check {} --repair` rewrites the damaged superblock copies (with the pool not open elsewhere)",
                        ent.name
                    )
                } else {
                    format!(
                        "run `mpool check {}` for the details of every problem",
                        ent.name
                    )
                });
            }
            if let Some(v) = st.format_version {
                if v < mpool::format::superblock::SB_VERSION && st.action.is_none() {
                    st.action = Some(format!(
                        "format version {v} is older than this mpool's ({}): `mpool upgrade {}` converts it in place",
                        mpool::format::superblock::SB_VERSION,
                        ent.name
                    ));
                }
            }
        }
        Err(e) => {
            st.state = "unavailable".into();
            st.health = format!("unavailable: {e}");
            // Which members are there and which are gone.
            match admin::destroy_plan(&ent.uuid) {
                Ok(plan) => {
                    for (class, path) in &plan.erased {
                        st.devices.push(DeviceStatus {
                            path: path.display().to_string(),
                            class: Some(*class),
                            size: std::fs::metadata(path).ok().map(|m| m.len()),
                            state: "found".into(),
                        });
                    }
                    for m in &plan.missing {
                        st.devices.push(DeviceStatus {
                            path: format!("(device {})", m.uuid),
                            class: Some(m.class),
                            size: None,
                            state: "missing".into(),
                        });
                    }
                    for g in &plan.gone {
                        st.devices.push(DeviceStatus {
                            path: g.display().to_string(),
                            class: None,
                            size: None,
                            state: "missing (path gone)".into(),
                        });
                    }
                }
                Err(_) => {
                    for d in &ent.devices {
                        st.devices.push(DeviceStatus {
                            path: d.display().to_string(),
                            class: None,
                            size: std::fs::metadata(d).ok().map(|m| m.len()),
                            state: if d.exists() {
                                "unreadable".into()
                            } else {
                                "missing".into()
                            },
                        });
                    }
                }
            }
            st.action = Some(
                if st.devices.iter().any(|d| d.state.starts_with("missing")) {
                    format!(
                    "bring the missing devices back and `mpool scan --activate {}`; if they are gone for good, `mpool destroy {}` erases what is left, or `mpool forget {}` forgets the pool",
                    ent.name, ent.name, ent.name
                )
                } else {
                    format!(
                        "see the error above; `mpool check {}` tells more once the pool opens",
                        ent.name
                    )
                },
            );
        }
    }
    st
}

/// `mpool status [POOL...] [--json]`.
pub fn status(names: &[String], json: bool) -> Result<ExitCode> {
    let (chosen, missing) = crate::cmd_pool::choose_active(names)?;
    let all: Vec<PoolStatus> = chosen.iter().map(pool_status).collect();
    if json {
        print_json(&all)?;
    } else if all.is_empty() && missing.is_empty() {
        println!("no active pools (create one with `mpool create`, or find existing ones with `mpool scan --activate`)");
    } else {
        for (i, s) in all.iter().enumerate() {
            if i > 0 {
                println!();
            }
            print_status(s);
        }
    }
    for m in &missing {
        eprintln!("mpool: error: no active pool '{m}'");
    }
    let healthy = all.iter().all(|s| s.health == "ok");
    Ok(if missing.is_empty() && healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_status(s: &PoolStatus) {
    println!("  pool: {}", s.name);
    println!("  uuid: {}", s.uuid);
    let state = match (s.state.as_str(), s.holder_pid) {
        ("open", Some(pid)) => format!("open read-write by process {pid}"),
        ("active", _) => "active (not open)".into(),
        (other, _) => other.to_string(),
    };
    println!(" state: {state}, activated {}", date(s.activated));
    println!("health: {}", s.health);
    if let Some(a) = &s.action {
        println!("action: {a}");
    }
    if let Some(v) = s.format_version {
        println!("format: version {v}");
    }
    if let Some(o) = &s.objects {
        let when = match (s.figures_from.as_deref(), s.figures_updated_ms) {
            (Some("holder"), Some(ms)) => format!(
                " (published by the holder {} s ago)",
                unix_now().saturating_sub(ms / 1000)
            ),
            _ => String::new(),
        };
        println!(
            "objects: {} mblock(s), {} mlog(s), {} MDC(s){when}",
            o.mblocks, o.mlogs, o.mdcs
        );
    }
    if let Some(m) = &s.mcache {
        println!(
            "mcache: {} object(s) mapped in {} map(s), {} resident",
            m.objects,
            m.maps,
            human(m.resident_bytes)
        );
    }
    for c in &s.classes {
        println!(
            "  {}: {} used of {} ({} free, {} spare), mblock size {}",
            c.class,
            human(c.used),
            human(c.size),
            human(c.free),
            human(c.spare),
            human(c.zone_size)
        );
    }
    println!(
        "errors: {} read, {} write, {} checksum (since activation)",
        s.errors.read, s.errors.write, s.errors.checksum
    );
    match &s.last_check {
        Some(c) => {
            println!(
                " check: {}: {} problem(s), {} repair(s), {} mblock(s), {} verified",
                date(c.time),
                c.problems,
                c.repairs,
                c.mblocks,
                human(c.bytes)
            );
            for p in &c.first_problems {
                println!("        {p}");
            }
        }
        None => println!(" check: never run from this run directory"),
    }
    println!("config:");
    let rows = s
        .devices
        .iter()
        .map(|d| {
            vec![
                d.path.clone(),
                d.class.map_or_else(|| "-".into(), |c| c.to_string()),
                d.size.map_or_else(|| "-".into(), human),
                d.state.clone(),
            ]
        })
        .collect();
    for line in crate::fmt::table(&["device", "class", "size", "state"], rows).lines() {
        println!("  {line}");
    }
}
