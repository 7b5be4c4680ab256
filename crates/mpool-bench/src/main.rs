//! `mpool-bench`: mpool workloads measured side by side with fio.
//!
//! Every workload runs against the same file (or device) as its fio
//! counterpart, in the same run, with the same block size and queue depth,
//! and reports the ratio mpool/fio. See BENCHMARKS.md for the method.

mod churn;
mod common;
mod crc;
mod dev;
mod fio;
mod machine;
mod mblock;
mod mcache;
mod meta;
mod mlog;
mod objstore;
mod report;
mod scale;
mod shared_floor;
mod stream;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "mpool-bench",
    version,
    about = "mpool benchmarks, side by side with fio"
)]
struct Cli {
    /// Print results as JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The Device layer (sync and uring engines) against fio on one file.
    Device(dev::DeviceArgs),
    /// Sync mlog appends (group commit) against fio write+fdatasync / O_SYNC.
    Mlog(mlog::MlogArgs),
    /// Pool mblock writes and 4 KiB random reads against fio on the pool file.
    Mblock(mblock::MblockArgs),
    /// Object churn (alloc, write, commit, delete) against files with fsync.
    Churn(churn::ChurnArgs),
    /// Object metadata at memory speed: alloc, write, commit, delete from N threads.
    Meta(meta::MetaArgs),
    /// The object_store backend against LocalFileSystem (with fsync): put/get, list, slatedb.
    Objstore(objstore::ObjstoreArgs),
    /// Pool::open time and memory per object with N committed mblocks.
    Scale(scale::ScaleArgs),
    /// CRC-32C: mpool's checksum against the crc-fast and crc32c crates.
    Crc(crc::CrcArgs),
    /// mcache maps and the reaper against mmap'ed files under a memory cap.
    Mcache(mcache::McacheArgs),
    /// Event streams against Kafka-style segment files (and fio on tmpfs).
    Stream(stream::StreamArgs),
    /// (internal) One side of the mcache experiment in a fresh process.
    #[command(hide = true)]
    McacheSide(mcache::SideArgs),
    /// (internal) Open a pool in a fresh process and report time and memory.
    #[command(hide = true)]
    ScaleOpen(scale::OpenChildArgs),
}

fn main() {
    // Errors are for people: the message chain, no backtrace.
    if let Err(e) = run(Cli::parse()) {
        eprintln!("mpool-bench: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let (text, json) = match &cli.cmd {
        Cmd::Device(a) => {
            let r = dev::run(a)?;
            (r.text(), r.json())
        }
        Cmd::Mlog(a) => {
            let r = mlog::run(a)?;
            (r.text(), r.json())
        }
        Cmd::Scale(a) => {
            let r = scale::run(a)?;
            (r.text(), r.json())
        }
        Cmd::Crc(a) => {
            let r = crc::run(a)?;
            (r.text(), r.json())
        }
        Cmd::ScaleOpen(a) => {
            let v = scale::open_child(a)?;
            (v.to_string(), v)
        }
        Cmd::Objstore(a) => {
            let r = objstore::run(a)?;
            (r.text(), r.json())
        }
        Cmd::Churn(a) => {
            let r = churn::run(a)?;
            (r.text(), r.json())
        }
        Cmd::Meta(a) => {
            let r = meta::run(a)?;
            (r.text(), r.json())
        }
        Cmd::Mcache(a) => {
            let r = mcache::run(a)?;
            (r.text(), r.json())
        }
        Cmd::Stream(a) => {
            let r = stream::run(a)?;
            (r.text(), r.json())
        }
        Cmd::McacheSide(a) => {
            let v = mcache::side(a)?;
            (format!("{v}\n"), v)
        }
        Cmd::Mblock(a) => {
            let r = mblock::run(a)?;
            (r.text(), r.json())
        }
    };
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{text}");
    }
    Ok(())
}
