//! `mpool-bench`: mpool workloads measured side by side with fio.
//!
//! Every workload runs against the same file (or device) as its fio
//! counterpart, in the same run, with the same block size and queue depth,
//! and reports the ratio mpool/fio. See BENCHMARKS.md for the method.

mod dev;
mod fio;
mod report;

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
}

fn main() {
    // Errors are for people: the message chain, no backtrace.
    if let Err(e) = run(Cli::parse()) {
        eprintln!("mpool-bench: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let rep = match &cli.cmd {
        Cmd::Device(a) => dev::run(a)?,
    };
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&rep.json())?);
    } else {
        print!("{}", rep.text());
    }
    Ok(())
}
