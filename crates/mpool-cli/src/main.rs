//! `mpool`: the management command of mpool pools (LVM-like verbs).

mod cmd_obj;
mod cmd_object;
mod cmd_pool;
mod cmd_status;
mod cmd_stream;
mod demo;
mod fmt;
mod output;
mod torture;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Manage mpool object storage media pools.
///
/// Devices are block devices or plain files. Sizes are bytes or binary
/// units, powers of 1024: 4096, 64KiB, 64K, 512M, 1G, 1GiB, 2TiB (KB, MB,
/// GB… are refused as ambiguous).
#[derive(Parser, Debug)]
#[command(name = "mpool", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a pool on a capacity device (and optionally a staging device), and activate it.
    #[command(after_help = fmt::SIZES)]
    Create(cmd_pool::CreateArgs),
    /// Destroy a pool: erase its superblocks on every member device.
    ///
    /// On a terminal it says what will be erased and asks for confirmation
    /// (unless --yes); otherwise (scripts) it says what it erases and proceeds.
    Destroy {
        /// Pool name or UUID.
        pool: String,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
    },
    /// List active pools with their space, label and health.
    List {
        /// Only these pools.
        pools: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Also show member devices and more properties.
        #[arg(short, long)]
        verbose: bool,
        #[command(flatten)]
        out: output::OutputArgs,
    },
    /// Show active pools in detail: state, health and what to do about it,
    /// member devices, objects, space, the last check.
    ///
    /// While a process holds a pool open, the objects and space shown are
    /// the figures that process publishes (at most a few seconds old).
    /// Exits 1 when a pool is not healthy.
    Status {
        /// Only these pools (names or UUIDs).
        pools: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Find pools on block devices, known device files and the given paths.
    Scan {
        /// Extra files or devices to examine.
        paths: Vec<PathBuf>,
        /// Activate every complete pool found; with POOL (a name or UUID),
        /// only that pool (the others found are listed, not activated).
        #[arg(long, value_name = "POOL", num_args = 0..=1)]
        activate: Option<Option<String>>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a pool openable by name (records its devices in the run directory).
    Activate {
        /// Pool name or UUID.
        pool: String,
    },
    /// Forget an active pool's devices (refused while the pool is open).
    Deactivate {
        /// Pool name or UUID.
        pool: String,
    },
    /// Take paths, or a pool's paths, out of the device list (a deleted file, a removed device).
    ///
    /// A PATH (anything with a '/') leaves the list of known device files,
    /// so scans stop looking at it. A POOL (name or UUID) has every path
    /// recorded for it taken out, and its run-directory entry too when its
    /// devices are gone; refused while the pool is open.
    Forget {
        /// Paths, or one pool name or UUID.
        #[arg(required = true, value_name = "PATH...|POOL")]
        targets: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rename an inactive pool.
    Rename {
        /// Current name or UUID.
        old: String,
        /// New name.
        new: String,
    },
    /// Convert a pool of an older format version (1 or 2) in place to the current one (3).
    ///
    /// Crash-safe: interrupted at any point, the pool still opens (as the
    /// old or the new version) and running `upgrade` again finishes the
    /// job. Refused while the pool is open, or when its metadata does not
    /// replay cleanly. A pool already at the current version is left as it
    /// is (exit status 0). Progress is printed on standard error.
    Upgrade {
        /// Pool name or UUID.
        pool: String,
        /// Say what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a media class to a pool, on a new device.
    #[command(after_help = fmt::SIZES)]
    Add(cmd_pool::AddArgs),
    /// Show pool properties.
    Get {
        /// Pool name or UUID.
        pool: String,
        /// Properties to show (default: all).
        props: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set pool properties: uid, gid, mode, label, spare_capacity, spare_staging.
    Set {
        /// Pool name or UUID.
        pool: String,
        /// prop=value pairs.
        #[arg(required = true)]
        assignments: Vec<String>,
    },
    /// Mblocks: write-once objects.
    #[command(subcommand)]
    Mblock(cmd_obj::MblockCmd),
    /// Named objects of an object store (the `object_store` backend): put, get, ls, rm.
    #[command(subcommand)]
    Object(cmd_object::ObjectCmd),
    /// User mlogs (and MDCs): record logs.
    #[command(subcommand)]
    Mlog(cmd_obj::MlogCmd),
    /// Event streams: append-only record logs with offsets, sealed segments, retention.
    #[command(subcommand)]
    Stream(cmd_stream::StreamCmd),
    /// Verify every committed mblock against its recorded checksum, every log record, the superblocks.
    /// Read-only: writes nothing to the pool unless --repair is given.
    Check {
        /// Pool name or UUID.
        pool: String,
        /// Open the pool read-write, which rewrites damaged or stale superblock
        /// copies and finishes what a crash left (each repair is listed).
        #[arg(long)]
        repair: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a file-backed pool in ./mpool-demo, exercise it, remove it (unless --keep).
    Demo(demo::DemoArgs),
    /// Developer tool: randomized crash sweeps against a model.
    #[command(subcommand)]
    Torture(torture::TortureCmd),
}

fn main() -> ExitCode {
    // SAFETY: called first thing in main, before any thread exists; restores
    // the default SIGPIPE action so `mpool list | head` ends quietly like
    // other Unix tools instead of failing on a closed pipe.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Create(a) => cmd_pool::create(a),
        Cmd::Destroy { pool, yes } => cmd_pool::destroy(&pool, yes),
        Cmd::List {
            pools,
            json,
            verbose,
            out,
        } => cmd_pool::list(&pools, json, verbose, &out),
        Cmd::Status { pools, json } => cmd_status::status(&pools, json),
        Cmd::Scan {
            paths,
            activate,
            json,
        } => {
            // A pool name has no '/': a value with one is a path to scan.
            let mut paths = paths;
            let activate = match activate {
                None => cmd_pool::ScanActivate::None,
                Some(None) => cmd_pool::ScanActivate::All,
                Some(Some(v)) if v.contains('/') => {
                    paths.push(PathBuf::from(v));
                    cmd_pool::ScanActivate::All
                }
                Some(Some(v)) => cmd_pool::ScanActivate::Pool(v),
            };
            cmd_pool::scan(&paths, activate, json)
        }
        Cmd::Activate { pool } => cmd_pool::activate(&pool),
        Cmd::Deactivate { pool } => cmd_pool::deactivate(&pool),
        Cmd::Forget { targets, json } => cmd_pool::forget(&targets, json),
        Cmd::Rename { old, new } => cmd_pool::rename(&old, &new),
        Cmd::Upgrade {
            pool,
            dry_run,
            json,
        } => cmd_pool::upgrade(&pool, dry_run, json),
        Cmd::Add(a) => cmd_pool::add(a),
        Cmd::Get { pool, props, json } => cmd_pool::get(&pool, &props, json),
        Cmd::Set { pool, assignments } => cmd_pool::set(&pool, &assignments),
        Cmd::Mblock(c) => cmd_obj::mblock(c),
        Cmd::Mlog(c) => cmd_obj::mlog(c),
        Cmd::Stream(c) => cmd_stream::stream(c),
        Cmd::Object(c) => cmd_object::run(c),
        Cmd::Check { pool, json, repair } => cmd_obj::check(&pool, json, repair),
        Cmd::Demo(a) => demo::run(a),
        Cmd::Torture(c) => torture::run(c),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mpool: error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            if let Some(h) = hint(&e) {
                eprintln!("mpool: hint: {h}");
            }
            ExitCode::FAILURE
        }
    }
}

/// What the user can do about a typed library error, for the line after the
/// message: the library's messages name no commands or options, the hints
/// that do live here. Every error of a command exits with status 1; an
/// argument that does not parse (a malformed ID, or the ID of another kind
/// of object) is refused by the argument parser with status 2.
fn hint(e: &anyhow::Error) -> Option<String> {
    use mpool::{Error, MetadataError, ObjectError, PoolError};
    let err = e.chain().find_map(|c| c.downcast_ref::<Error>())?;
    match err {
        Error::Pool(PoolError::NotFound(_)) => {
            Some("is it activated? try `mpool scan --activate`".into())
        }
        Error::Pool(PoolError::Active(name)) => {
            Some(format!("deactivate it first: `mpool deactivate {name}`"))
        }
        Error::Pool(PoolError::Signature { .. }) => {
            Some("nothing is overwritten without --force; use --force to overwrite it".into())
        }
        Error::Pool(PoolError::DuplicateMember { .. }) => Some(
            "nothing was written to either device; remove the copy (or take it out of the device list) so that only one device carries the member, then retry"
                .into(),
        ),
        Error::Pool(PoolError::Incomplete { name, .. }) => Some(format!(
            "if the missing devices are gone for good, `mpool destroy {name}` erases what is left, or `mpool forget {name}` forgets the pool"
        )),
        Error::Pool(PoolError::MemberShrunk { .. }) => Some(
            "restore the device to its recorded size (grow the file or LUN back); mpool cannot use a member that shrank"
                .into(),
        ),
        Error::Pool(PoolError::NotUpgradable { name, .. }) => Some(format!(
            "nothing was written; `mpool check {name}` lists what is wrong"
        )),
        // The message names the sector size and the limit; no option changes it.
        Error::Pool(PoolError::SectorTooLarge { .. }) => None,
        Error::Object(ObjectError::MblockFull { cap, .. }) => Some(format!(
            "{} ({cap} bytes) is the most one mblock holds (the pool's mblock size, less the mblock's checksum table in a format-3 pool); {}",
            fmt::human(*cap),
            cmd_obj::SPLIT_HINT
        )),
        Error::Object(ObjectError::Checksum { .. }) => Some(
            "no data was returned for the damaged bytes; `mpool check` lists every damaged range of the pool"
                .into(),
        ),
        Error::Metadata(MetadataError::IdsExhausted { .. }) => Some(
            "object IDs are never reused; this metadata container cannot create more objects"
                .into(),
        ),
        Error::Internal(_) => Some(
            "this is a bug in mpool, not a fault of the device or of the command; please report it"
                .into(),
        ),
        _ => None,
    }
}
