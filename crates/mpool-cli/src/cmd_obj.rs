//! Object tools: `mblock`, `mlog`, `check`.

use crate::fmt::{human, print_json, size_arg, table};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mpool::{
    MblockId, MdcId, MediaClass, MlogId, ObjType, ObjectId, ObjectProps, OpenOptions, Pool,
};
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

fn class_arg(s: &str) -> Result<MediaClass, String> {
    s.parse()
}

/// An object ID of type `T` ([`ObjectId`] for any object): the ID of an
/// object of another type is refused as it is parsed, with a message that
/// names both types.
fn id_arg<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T, String> {
    s.parse()
}

fn open(pool: &str, read_only: bool) -> Result<Pool> {
    Pool::open(
        pool,
        &OpenOptions {
            read_only,
            ..Default::default()
        },
    )
    .with_context(|| format!("opening pool '{pool}'"))
}

/// Mblock subcommands.
#[derive(Subcommand, Debug)]
pub enum MblockCmd {
    /// List committed mblocks.
    ///
    /// While another process holds the pool open, the list is read from
    /// the pool's durable metadata, and the holder's published counts are
    /// shown with it.
    List {
        /// Pool name or UUID.
        pool: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        out: crate::output::OutputArgs,
    },
    /// Show one object's properties.
    Stat {
        /// Pool name or UUID.
        pool: String,
        /// Object ID.
        #[arg(value_parser = id_arg::<ObjectId>)]
        id: ObjectId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a file (or standard input) into a new mblock and commit it; prints its ID.
    Write {
        /// Pool name or UUID.
        pool: String,
        /// Input file (default: standard input).
        file: Option<PathBuf>,
        /// Media class.
        #[arg(long, default_value = "capacity", value_parser = class_arg)]
        class: MediaClass,
        /// Commit an empty mblock when the input is empty (it still takes a
        /// whole zone of the pool's mblock size).
        #[arg(long)]
        allow_empty: bool,
        /// Checksum block size of the mblock (format version 3: a power of
        /// two, 4K to 64K; default 4K). Reads verify whole blocks of it.
        #[arg(long, value_name = "SIZE", value_parser = csum_block_arg)]
        csum_block: Option<u32>,
    },
    /// Write an mblock's content to standard output or a file.
    #[command(after_help = crate::fmt::SIZES)]
    Read {
        /// Pool name or UUID.
        pool: String,
        /// Mblock ID.
        #[arg(value_parser = id_arg::<MblockId>)]
        id: MblockId,
        /// Output file (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Start at this byte.
        #[arg(long, default_value = "0", value_name = "SIZE", value_parser = size_arg_zero)]
        offset: u64,
        /// Read at most this many bytes.
        #[arg(long, value_name = "SIZE", value_parser = size_arg)]
        length: Option<u64>,
    },
    /// Delete committed mblocks.
    Delete {
        /// Pool name or UUID.
        pool: String,
        /// Mblock IDs.
        #[arg(required = true, value_parser = id_arg::<MblockId>)]
        ids: Vec<MblockId>,
    },
}

/// One read of the input (retrying an interrupted one).
fn read_some(input: &mut dyn Read, buf: &mut [u8]) -> Result<usize> {
    loop {
        match input.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(anyhow::Error::new(e).context("reading input")),
        }
    }
}

/// Input larger than an mblock: what the limit is and what to do. `cap`
/// is what one mblock holds: the pool's mblock size `zone`, less the room
/// of its checksum table (format version 3).
pub fn too_large(name: &str, len: u64, cap: u64, zone: u64) -> String {
    if cap == zone {
        return format!(
            "{name} is {} ({len} bytes), more than the pool's mblock size, {} ({zone} bytes), the most one mblock holds: nothing written; {}",
            human(len),
            human(zone),
            SPLIT_HINT
        );
    }
    format!(
        "{name} is {} ({len} bytes), more than one mblock holds, {} ({cap} bytes: the pool's mblock size, {} ({zone} bytes), less the mblock's checksum table): nothing written; {}",
        human(len),
        human(cap),
        human(zone),
        SPLIT_HINT
    )
}

/// What to do about data larger than the pool's mblock size.
pub const SPLIT_HINT: &str =
    "split the data into pieces of at most the mblock size, one mblock each, or create a pool with a larger --mblock-size";

fn csum_block_arg(s: &str) -> Result<u32, String> {
    let n = size_arg(s)?;
    u32::try_from(n).map_err(|_| format!("{s}: at most 64K"))
}

fn size_arg_zero(s: &str) -> Result<u64, String> {
    if s.trim() == "0" {
        return Ok(0);
    }
    size_arg(s)
}

fn props_row(p: &ObjectProps) -> Vec<String> {
    vec![
        p.id.to_string(),
        p.ty.to_string(),
        p.class.to_string(),
        p.len.to_string(),
        human(p.capacity),
        p.crc.map_or_else(|| "-".into(), |c| format!("{c:08x}")),
        if p.committed {
            "yes".into()
        } else {
            "no".into()
        },
    ]
}

/// Every field of `mblock list -o` and `mlog list -o`.
const OBJ_FIELDS: [&str; 8] = [
    "id",
    "type",
    "class",
    "length",
    "capacity",
    "crc32c",
    "committed",
    "root",
];
const MBLOCK_DEFAULT: [&str; 6] = ["id", "type", "class", "length", "capacity", "crc32c"];
const MLOG_DEFAULT: [&str; 5] = ["id", "type", "class", "capacity", "root"];

fn obj_row(p: &ObjectProps, root: bool) -> Vec<crate::output::Val> {
    use crate::output::Val;
    vec![
        p.id.to_string().into(),
        p.ty.to_string().into(),
        p.class.to_string().into(),
        if p.ty == ObjType::Mblock {
            Val::Num(p.len)
        } else {
            Val::Absent
        },
        Val::Bytes(p.capacity),
        p.crc.map_or(Val::Absent, |c| format!("{c:08x}").into()),
        if p.committed { "yes" } else { "no" }.into(),
        if root { "yes" } else { "no" }.into(),
    ]
}

/// Open a pool to list its objects: read-only, or, while another process
/// holds it open, by reading its durable metadata without a lock (saying
/// so, with the holder's published counts).
fn open_for_listing(pool: &str) -> Result<Pool> {
    match open(pool, true) {
        Ok(p) => Ok(p),
        Err(e) => {
            let busy = e
                .chain()
                .find_map(|c| match c.downcast_ref::<mpool::Error>() {
                    Some(mpool::Error::Pool(mpool::PoolError::Busy { pid, .. })) => Some(*pid),
                    _ => None,
                });
            let Some(pid) = busy else { return Err(e) };
            let p = Pool::open(
                pool,
                &OpenOptions {
                    inspect: true,
                    ..Default::default()
                },
            )
            .with_context(|| format!("reading the metadata of pool '{pool}'"))?;
            let holder =
                pid.map_or_else(|| "another process".to_string(), |p| format!("process {p}"));
            match Pool::published_figures(&p.uuid().to_string()) {
                Some(f) => eprintln!(
                    "mpool: pool '{pool}' is open by {holder}, which reports {} mblock(s), {} mlog(s), {} MDC(s) now; listed from its durable metadata",
                    f.objects.mblocks, f.objects.mlogs, f.objects.mdcs
                ),
                None => eprintln!(
                    "mpool: pool '{pool}' is open by {holder}; listed from its durable metadata"
                ),
            }
            Ok(p)
        }
    }
}

/// `mblock stat`'s columns: the object fields but `root`.
const PROPS_HEADER: &[&str] = OBJ_FIELDS.split_at(7).0;

pub fn mblock(cmd: MblockCmd) -> Result<ExitCode> {
    match cmd {
        MblockCmd::List { pool, json, out } => {
            if !json {
                out.select(&OBJ_FIELDS, &MBLOCK_DEFAULT)?;
            }
            let p = open_for_listing(&pool)?;
            let objs: Vec<ObjectProps> = p
                .objects()?
                .into_iter()
                .filter(|o| o.ty == ObjType::Mblock)
                .collect();
            if json {
                print_json(&objs)?;
            } else if objs.is_empty() {
                println!("no mblocks in pool '{pool}'");
            } else {
                out.print(&crate::output::Rows {
                    all: &OBJ_FIELDS,
                    default: &MBLOCK_DEFAULT,
                    rows: objs.iter().map(|o| obj_row(o, false)).collect(),
                })?;
            }
        }
        MblockCmd::Stat { pool, id, json } => {
            let p = open(&pool, true)?;
            let props = p.object_props(id)?;
            if json {
                print_json(&props)?;
            } else {
                println!("{}", table(PROPS_HEADER, vec![props_row(&props)]));
            }
        }
        MblockCmd::Write {
            pool,
            file,
            class,
            allow_empty,
            csum_block,
        } => {
            let p = open(&pool, false)?;
            let name = file
                .as_ref()
                .map_or_else(|| "standard input".to_string(), |f| f.display().to_string());
            let mut input: Box<dyn Read> = match &file {
                Some(f) => {
                    Box::new(std::fs::File::open(f).with_context(|| format!("opening {name}"))?)
                }
                None => Box::new(std::io::stdin().lock()),
            };
            // The mblock size of the class, when the pool has the class (the
            // allocation below refuses a missing class with its own message).
            let zone = p
                .props()
                .classes
                .iter()
                .find(|c| c.class == class)
                .map(|c| c.zone_size);
            // Refuse what cannot fit before allocating anything: a regular
            // file's size is known; standard input is found out as it is read.
            if let (Some(f), Some(zone)) = (&file, zone) {
                let meta = std::fs::metadata(f).with_context(|| format!("reading {name}"))?;
                let cap = match csum_block {
                    Some(b) => p.mblock_capacity_with(class, b)?,
                    None => p.mblock_capacity(class)?,
                };
                if meta.is_file() && meta.len() > cap {
                    bail!("{}", too_large(&name, meta.len(), cap, zone));
                }
            }
            let mut buf = vec![0u8; 4 << 20];
            let first = read_some(&mut input, &mut buf)?;
            if first == 0 && !allow_empty {
                bail!(
                    "{name} is empty: nothing written (an mblock takes a whole zone of the pool's mblock size{}, even empty); give --allow-empty to commit an empty mblock",
                    zone.map_or_else(String::new, |z| format!(", {}", human(z)))
                );
            }
            let id = match csum_block {
                Some(b) => p.mblock_alloc_csum(class, b)?,
                None => p.mblock_alloc(class)?,
            };
            let r = (|| -> Result<()> {
                let mut n = first;
                while n > 0 {
                    p.mblock_write(id, &buf[..n])?;
                    n = read_some(&mut input, &mut buf)?;
                }
                p.mblock_commit(id)?;
                Ok(())
            })();
            if let Err(e) = r {
                let _ = p.mblock_abort(id);
                return Err(e);
            }
            println!("{id}");
        }
        MblockCmd::Read {
            pool,
            id,
            output,
            offset,
            length,
        } => {
            let p = open(&pool, true)?;
            let props = p.object_props(id)?;
            if !props.committed {
                bail!("mblock {id} is not committed yet");
            }
            if offset > props.len {
                bail!(
                    "offset {offset} is past the end of mblock {id} ({} bytes)",
                    props.len
                );
            }
            let end = length.map_or(props.len, |l| (offset + l).min(props.len));
            let mut out: Box<dyn Write> = match &output {
                Some(f) => Box::new(
                    std::fs::File::create(f)
                        .with_context(|| format!("creating {}", f.display()))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut pos = offset;
            let mut buf = vec![0u8; 4 << 20];
            while pos < end {
                let n = ((end - pos) as usize).min(buf.len());
                p.mblock_read(id, pos, &mut buf[..n])?;
                out.write_all(&buf[..n])?;
                pos += n as u64;
            }
            out.flush()?;
        }
        MblockCmd::Delete { pool, ids } => {
            let p = open(&pool, false)?;
            for id in ids {
                p.mblock_delete(id)?;
                println!("deleted {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Mlog subcommands.
#[derive(Subcommand, Debug)]
pub enum MlogCmd {
    /// List user mlogs and MDCs (the root MDC included).
    ///
    /// While another process holds the pool open, the list is read from
    /// the pool's durable metadata, and the holder's published counts are
    /// shown with it.
    List {
        /// Pool name or UUID.
        pool: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        out: crate::output::OutputArgs,
    },
    /// Create and commit a user mlog; prints its ID.
    #[command(after_help = crate::fmt::SIZES)]
    Create {
        /// Pool name or UUID.
        pool: String,
        /// Capacity (rounded up to whole mblocks).
        #[arg(long, default_value = "1MiB", value_name = "SIZE", value_parser = size_arg)]
        capacity: u64,
        /// Media class.
        #[arg(long, default_value = "capacity", value_parser = class_arg)]
        class: MediaClass,
    },
    /// Append records: each argument, or each line of standard input.
    Append(AppendArgs),
    /// Delete a committed user mlog (refused while it is open).
    Delete {
        /// Pool name or UUID.
        pool: String,
        /// Mlog ID.
        #[arg(value_parser = id_arg::<MlogId>)]
        id: MlogId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Erase every record of a user mlog; prints its new generation.
    Erase {
        /// Pool name or UUID.
        pool: String,
        /// Mlog ID.
        #[arg(value_parser = id_arg::<MlogId>)]
        id: MlogId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print an mlog's (or MDC's) records.
    Dump {
        /// Pool name or UUID.
        pool: String,
        /// Object ID (mlog or MDC).
        #[arg(value_parser = id_arg::<ObjectId>)]
        id: ObjectId,
        /// Print records as hex.
        #[arg(long)]
        hex: bool,
        /// Print JSON (records as hex).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct AppendArgs {
    /// Pool name or UUID.
    pool: String,
    /// Object ID of the mlog.
    #[arg(value_parser = id_arg::<MlogId>)]
    id: MlogId,
    /// Records (default: each line of standard input).
    records: Vec<String>,
    /// Do not wait for the records to be durable (a final sync is still done).
    #[arg(long)]
    no_sync: bool,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn printable(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) if !s.chars().any(|c| c.is_control() && c != '\t') => s.to_string(),
        _ => format!("0x{}", hex(b)),
    }
}

pub fn mlog(cmd: MlogCmd) -> Result<ExitCode> {
    match cmd {
        MlogCmd::List { pool, json, out } => {
            if !json {
                out.select(&OBJ_FIELDS, &MLOG_DEFAULT)?;
            }
            let p = open_for_listing(&pool)?;
            let root = p.root_mdc_id()?;
            let objs: Vec<ObjectProps> = p
                .objects()?
                .into_iter()
                .filter(|o| o.ty != ObjType::Mblock)
                .collect();
            if json {
                // The same records as `mblock list`, each with `root` added.
                let v: Vec<serde_json::Value> = objs
                    .iter()
                    .map(|o| {
                        let mut v = serde_json::to_value(o)?;
                        if let Some(m) = v.as_object_mut() {
                            m.insert("root".into(), (o.id == root.object_id()).into());
                        }
                        Ok(v)
                    })
                    .collect::<Result<_, serde_json::Error>>()?;
                print_json(&v)?;
            } else {
                out.print(&crate::output::Rows {
                    all: &OBJ_FIELDS,
                    default: &MLOG_DEFAULT,
                    rows: objs
                        .iter()
                        .map(|o| obj_row(o, o.id == root.object_id()))
                        .collect(),
                })?;
            }
        }
        MlogCmd::Create {
            pool,
            capacity,
            class,
        } => {
            let p = open(&pool, false)?;
            let id = p.mlog_alloc(class, capacity)?;
            if let Err(e) = p.mlog_commit(id) {
                let _ = p.mlog_abort(id);
                return Err(e.into());
            }
            println!("{id}");
        }
        MlogCmd::Append(a) => {
            let p = open(&a.pool, false)?;
            let log = p.mlog_open(a.id)?;
            let mut n = 0u64;
            if a.records.is_empty() {
                for line in std::io::stdin().lock().lines() {
                    log.append(line?.as_bytes(), !a.no_sync)?;
                    n += 1;
                }
            } else {
                for r in &a.records {
                    log.append(r.as_bytes(), !a.no_sync)?;
                    n += 1;
                }
            }
            log.sync()?;
            println!(
                "appended {n} record(s) to {}; the log holds {} of {} bytes",
                a.id,
                log.len(),
                log.capacity()
            );
        }
        MlogCmd::Delete { pool, id, json } => {
            let p = open(&pool, false)?;
            p.mlog_delete(id)?;
            if json {
                print_json(&serde_json::json!({ "deleted": id }))?;
            } else {
                println!("deleted {id}");
            }
        }
        MlogCmd::Erase { pool, id, json } => {
            let p = open(&pool, false)?;
            let log = p.mlog_open(id)?;
            let removed = log.records();
            let generation = log.erase(0)?;
            if json {
                print_json(&serde_json::json!({
                    "id": id,
                    "generation": generation,
                    "records_erased": removed,
                }))?;
            } else {
                println!("erased {id}: {removed} record(s) removed, generation {generation}");
            }
        }
        MlogCmd::Dump {
            pool,
            id,
            hex: as_hex,
            json,
        } => {
            let p = open(&pool, true)?;
            let recs: Vec<Vec<u8>> = match id.ty() {
                ObjType::Mlog => p
                    .mlog_open(MlogId::try_from(id)?)?
                    .reader()?
                    .collect::<Result<_, _>>()?,
                ObjType::Mdc => p
                    .mdc_open(MdcId::try_from(id)?)?
                    .reader()?
                    .collect::<Result<_, _>>()?,
                ObjType::Mblock => bail!("{id} is an mblock; use `mpool mblock read`"),
            };
            if json {
                print_json(&recs.iter().map(|r| hex(r)).collect::<Vec<_>>())?;
            } else {
                for (i, r) in recs.iter().enumerate() {
                    println!(
                        "{i:6} {:6}  {}",
                        r.len(),
                        if as_hex { hex(r) } else { printable(r) }
                    );
                }
                eprintln!("{} record(s)", recs.len());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `mpool check`: read-only (it writes nothing to the pool) unless
/// `repair`, which opens it read-write: the open rewrites damaged or stale
/// superblock copies and finishes what a crash left, and the report lists
/// those repairs.
pub fn check(pool: &str, json: bool, repair: bool) -> Result<ExitCode> {
    let p = open(pool, !repair)?;
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} checking [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let rep = p.check(&mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    p.record_check(&rep);
    if json {
        let mut v = serde_json::to_value(&rep)?;
        if let Some(m) = v.as_object_mut() {
            m.insert("pool".into(), p.name().into());
            m.insert("uuid".into(), p.uuid().to_string().into());
        }
        print_json(&v)?;
    } else {
        println!(
            "checked pool '{pool}': {} mblock(s), {} of content, {} mlog(s), {} MDC(s), {} log record(s), {} metadata record(s)",
            rep.mblocks,
            human(rep.bytes),
            rep.mlogs,
            rep.mdcs,
            rep.log_records,
            rep.metadata_records
        );
        for r in &rep.repairs {
            println!("REPAIRED {}: {}", r.object, r.repair);
        }
        for pr in &rep.problems {
            println!("PROBLEM {}: {}", pr.object, pr.problem);
        }
        println!(
            "{} problem(s), {} repair(s)",
            rep.problems.len(),
            rep.repairs.len()
        );
        if !repair && rep.problems.iter().any(|p| p.object == "superblock") {
            println!("damaged superblock copies are rewritten by `mpool check {pool} --repair`");
        }
    }
    Ok(if rep.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
