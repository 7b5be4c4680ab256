//! `mpool object {put,get,ls,rm}`: the named objects an application
//! stored through the `object_store` backend (crates/mpool-object-store).

use crate::fmt::{human, print_json, table};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use mpool::{OpenOptions, Pool};
use mpool_object_store::{MpoolStore, StoreOptions};
use object_store::PutMode;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Object subcommands.
#[derive(Subcommand, Debug)]
pub enum ObjectCmd {
    /// Store a file (or standard input) as the object at PATH, replacing
    /// any object there; prints its e_tag. Creates the store's catalog in
    /// the pool if it has none.
    Put {
        /// Pool name or UUID.
        pool: String,
        /// Object path (`a/b/c`).
        path: String,
        /// Input file (default: standard input).
        file: Option<PathBuf>,
        /// Store name (several stores can share a pool).
        #[arg(long, default_value = "default")]
        store: String,
        /// Refuse when an object exists at PATH.
        #[arg(long)]
        if_not_exists: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write an object's content to standard output or a file.
    Get {
        /// Pool name or UUID.
        pool: String,
        /// Object path.
        path: String,
        /// Output file (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Store name.
        #[arg(long, default_value = "default")]
        store: String,
    },
    /// List the objects (under PREFIX, a string prefix), in path order:
    /// path, size, e_tag, modification time, mblocks.
    Ls {
        /// Pool name or UUID.
        pool: String,
        /// Only paths that start with this.
        prefix: Option<String>,
        /// Store name.
        #[arg(long, default_value = "default")]
        store: String,
        /// Also list each object's mblock IDs.
        #[arg(short, long)]
        long: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete objects (their mblocks are freed once no object and no
    /// reader holds them).
    Rm {
        /// Pool name or UUID.
        pool: String,
        /// Object paths.
        #[arg(required = true)]
        paths: Vec<String>,
        /// Store name.
        #[arg(long, default_value = "default")]
        store: String,
        /// Succeed when a path holds no object.
        #[arg(short, long)]
        force: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn open_pool(pool: &str, read_only: bool) -> Result<Pool> {
    match Pool::open(
        pool,
        &OpenOptions {
            read_only,
            ..Default::default()
        },
    ) {
        Ok(p) => Ok(p),
        // Listing and reading while another process holds the pool: from
        // its durable metadata, saying so.
        Err(mpool::Error::Pool(mpool::PoolError::Busy { .. })) if read_only => {
            eprintln!(
                "mpool: pool '{pool}' is open by another process; reading its durable metadata"
            );
            Pool::open(
                pool,
                &OpenOptions {
                    inspect: true,
                    ..Default::default()
                },
            )
            .with_context(|| format!("reading the metadata of pool '{pool}'"))
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("opening pool '{pool}'"))),
    }
}

fn open_store(pool: &str, store: &str, read_only: bool) -> Result<MpoolStore> {
    let p = open_pool(pool, read_only)?;
    match MpoolStore::open(p.clone(), &StoreOptions::default().name(store)) {
        Ok(s) => Ok(s),
        Err(mpool_object_store::StoreError::NoStore(_)) => {
            let names = mpool_object_store::store_names(&p).unwrap_or_default();
            if names.is_empty() {
                bail!("pool '{pool}' holds no object store (`mpool object put` creates one)")
            }
            bail!(
                "pool '{pool}' holds no object store named '{store}'; it holds: {}",
                names.join(", ")
            )
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("opening object store '{store}'"))),
    }
}

fn valid_path(path: &str) -> Result<()> {
    object_store::path::Path::parse(path)
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("'{path}' is not an object path: {e}"))
}

fn date_ns(ns: i64) -> String {
    crate::output::date(u64::try_from(ns / 1_000_000_000).unwrap_or(0))
}

/// Run an object subcommand.
pub fn run(cmd: ObjectCmd) -> Result<ExitCode> {
    match cmd {
        ObjectCmd::Put {
            pool,
            path,
            file,
            store,
            if_not_exists,
            json,
        } => {
            valid_path(&path)?;
            let mut data = Vec::new();
            match &file {
                Some(f) => {
                    data = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?
                }
                None => {
                    std::io::stdin()
                        .read_to_end(&mut data)
                        .context("reading standard input")?;
                }
            }
            let s = open_store(&pool, &store, false)?;
            let mode = if if_not_exists {
                PutMode::Create
            } else {
                PutMode::Overwrite
            };
            let tag = s
                .put_blocking(&path, &data, mode)
                .with_context(|| format!("storing '{path}'"))?;
            if json {
                print_json(&serde_json::json!({
                    "path": path, "size": data.len(), "e_tag": tag
                }))?;
            } else {
                println!("{tag}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ObjectCmd::Get {
            pool,
            path,
            output,
            store,
        } => {
            let s = open_store(&pool, &store, true)?;
            let data = s
                .get_blocking(&path)
                .with_context(|| format!("reading '{path}'"))?;
            match output {
                Some(f) => {
                    std::fs::write(&f, &data).with_context(|| format!("writing {}", f.display()))?
                }
                None => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&data)?;
                    out.flush()?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ObjectCmd::Ls {
            pool,
            prefix,
            store,
            long,
            json,
        } => {
            let s = open_store(&pool, &store, true)?;
            let objs = s.objects(prefix.as_deref().unwrap_or(""));
            if json {
                let v: Vec<serde_json::Value> = objs
                    .iter()
                    .map(|o| {
                        serde_json::json!({
                            "path": o.path,
                            "size": o.size,
                            "e_tag": o.e_tag,
                            "last_modified_ns": o.mtime_ns,
                            "mblocks": o.mblocks.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                print_json(&v)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut header = vec!["PATH", "SIZE", "E_TAG", "MODIFIED", "MBLOCKS"];
            if long {
                header.push("IDS");
            }
            let rows = objs
                .iter()
                .map(|o| {
                    let mut r = vec![
                        o.path.clone(),
                        human(o.size),
                        o.e_tag.clone(),
                        date_ns(o.mtime_ns),
                        o.mblocks.len().to_string(),
                    ];
                    if long {
                        r.push(
                            o.mblocks
                                .iter()
                                .map(|m| m.to_string())
                                .collect::<Vec<_>>()
                                .join(","),
                        );
                    }
                    r
                })
                .collect();
            print!("{}", table(&header, rows));
            let total: u64 = objs.iter().map(|o| o.size).sum();
            println!("{} object(s), {}", objs.len(), human(total));
            Ok(ExitCode::SUCCESS)
        }
        ObjectCmd::Rm {
            pool,
            paths,
            store,
            force,
            json,
        } => {
            let s = open_store(&pool, &store, false)?;
            let mut deleted = Vec::new();
            let mut missing = Vec::new();
            for p in &paths {
                if s.delete_blocking(p)
                    .with_context(|| format!("deleting '{p}'"))?
                {
                    deleted.push(p.clone());
                } else {
                    missing.push(p.clone());
                }
            }
            if json {
                print_json(&serde_json::json!({ "deleted": deleted, "missing": missing }))?;
            }
            if !missing.is_empty() && !force {
                bail!("no object at: {}", missing.join(", "));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
