//! `mpool stream`: event streams (create, list, stat, append, read,
//! follow, trim, delete).

use crate::fmt::{human, print_json, size_arg, table};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use mpool::{Durability, OpenOptions, Pool, StreamOptions};
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

/// Stream subcommands.
#[derive(Subcommand, Debug)]
pub enum StreamCmd {
    /// Create an empty stream (its first record gets offset 0).
    Create {
        /// Pool name or UUID.
        pool: String,
        /// Stream name (no white space).
        name: String,
        /// Seal the tail into a segment at this size (default: as large as an mblock holds).
        #[arg(long, value_parser = size_arg)]
        segment_size: Option<u64>,
        /// Also seal the tail once its first record is this many seconds old.
        #[arg(long, value_name = "SECONDS")]
        max_age: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the pool's streams.
    List {
        /// Pool name or UUID.
        pool: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a stream: offsets, segments, tail.
    Stat {
        /// Pool name or UUID.
        pool: String,
        /// Stream name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Append records (arguments, or one per line of standard input); prints each record's offset.
    ///
    /// Exits 0 only once every record is durable.
    Append {
        /// Pool name or UUID.
        pool: String,
        /// Stream name.
        name: String,
        /// Records (default: one per line of standard input).
        records: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write records from an offset: each record's bytes, then a newline.
    Read {
        /// Pool name or UUID.
        pool: String,
        /// Stream name.
        name: String,
        /// First offset (default: the first held).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// At most this many records.
        #[arg(long)]
        count: Option<u64>,
        /// Print JSON (offsets, records in hex).
        #[arg(long)]
        json: bool,
    },
    /// Print records as they arrive, like `tail -f`.
    ///
    /// Opens the pool read-only (or reads its durable state while another
    /// process appends) and polls for new durable records.
    Follow {
        /// Pool name or UUID.
        pool: String,
        /// Stream name.
        name: String,
        /// First offset (default: the next record to be appended).
        #[arg(long)]
        from: Option<u64>,
        /// Stop after this many records.
        #[arg(long)]
        count: Option<u64>,
        /// Poll interval in milliseconds.
        #[arg(long, default_value_t = 200)]
        interval_ms: u64,
        /// One JSON object per line (offset, record in hex).
        #[arg(long)]
        json: bool,
    },
    /// Delete whole sealed segments: below an offset, beyond a size, older than an age.
    Trim {
        /// Pool name or UUID.
        pool: String,
        /// Stream name.
        name: String,
        /// Delete the segments whose records are all below this offset.
        #[arg(long)]
        before: Option<u64>,
        /// Keep at most this many bytes of sealed segments (the newest).
        #[arg(long, value_parser = size_arg)]
        max_size: Option<u64>,
        /// Delete the segments sealed more than this many seconds ago.
        #[arg(long, value_name = "SECONDS")]
        max_age: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a stream and all its segments.
    Delete {
        /// Pool name or UUID.
        pool: String,
        /// Stream name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
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

/// A read-only open, or a lock-free read of the durable state while
/// another process holds the pool.
fn open_reading(pool: &str) -> Result<Pool> {
    match open(pool, true) {
        Ok(p) => Ok(p),
        Err(e) => {
            let busy = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<mpool::Error>(),
                    Some(mpool::Error::Pool(mpool::PoolError::Busy { .. }))
                )
            });
            if !busy {
                return Err(e);
            }
            Pool::open(
                pool,
                &OpenOptions {
                    inspect: true,
                    ..Default::default()
                },
            )
            .with_context(|| format!("reading pool '{pool}'"))
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn ms_date(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    let s = (ms / 1000) as i64;
    // UTC, as seconds since the epoch are: Y-M-D h:m:s.
    let days = s.div_euclid(86400);
    let rem = s.rem_euclid(86400);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub fn stream(cmd: StreamCmd) -> Result<ExitCode> {
    match cmd {
        StreamCmd::Create {
            pool,
            name,
            segment_size,
            max_age,
            json,
        } => {
            let p = open(&pool, false)?;
            let opts = StreamOptions {
                segment_bytes: segment_size,
                max_age: max_age.map(Duration::from_secs),
                ..StreamOptions::default()
            };
            p.stream_create(&name, &opts)
                .with_context(|| format!("creating stream '{name}'"))?;
            let st = p.stream_open(&name)?.stat();
            if json {
                print_json(&st)?;
            } else {
                println!(
                    "created stream '{name}' (segments of {}, tail on {})",
                    human(st.segment_bytes),
                    st.tail_class
                );
            }
            drop(st);
            p.close()?;
        }
        StreamCmd::List { pool, json } => {
            let p = open_reading(&pool)?;
            let mut stats = Vec::new();
            for n in p.streams()? {
                stats.push(p.stream_open(&n)?.stat());
            }
            if json {
                print_json(&stats)?;
            } else {
                let rows = stats
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.first.to_string(),
                            s.next.to_string(),
                            s.segments.len().to_string(),
                            human(s.sealed_bytes + s.tail_bytes),
                            s.tail_class.clone(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(&["NAME", "FIRST", "NEXT", "SEGMENTS", "SIZE", "TAIL"], rows)
                );
            }
        }
        StreamCmd::Stat { pool, name, json } => {
            let p = open_reading(&pool)?;
            let st = p.stream_open(&name)?.stat();
            if json {
                print_json(&st)?;
            } else {
                println!("name:          {}", st.name);
                println!("created:       {} UTC", ms_date(st.created_ms));
                println!(
                    "offsets:       {}..{} (first held .. next)",
                    st.first, st.next
                );
                println!("records:       {}", st.next - st.first);
                println!(
                    "segments:      {} sealed, {}",
                    st.segments.len(),
                    human(st.sealed_bytes)
                );
                println!(
                    "tail:          {} record(s), {} on {}",
                    st.tail_records,
                    human(st.tail_bytes),
                    st.tail_class
                );
                println!("segment size:  {}", human(st.segment_bytes));
                if st.max_age_ms > 0 {
                    println!("tail max age:  {} s", st.max_age_ms as f64 / 1000.0);
                }
                if !st.segments.is_empty() {
                    let rows = st
                        .segments
                        .iter()
                        .map(|s| {
                            vec![
                                format!("{:#018x}", s.mblock),
                                s.base.to_string(),
                                s.count.to_string(),
                                human(s.bytes),
                                ms_date(s.sealed_ms),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(
                            &["SEGMENT", "FIRST", "RECORDS", "SIZE", "SEALED (UTC)"],
                            rows
                        )
                    );
                }
            }
        }
        StreamCmd::Append {
            pool,
            name,
            records,
            json,
        } => {
            let p = open(&pool, false)?;
            let s = p.stream_open(&name)?;
            let mut offsets = Vec::new();
            let mut add = |r: &[u8]| -> Result<()> {
                offsets.push(
                    s.append_with(r, Durability::Group)
                        .with_context(|| format!("appending to stream '{name}'"))?,
                );
                Ok(())
            };
            if records.is_empty() {
                let stdin = std::io::stdin();
                for line in stdin.lock().split(b'\n') {
                    let line = line.context("reading standard input")?;
                    add(&line)?;
                }
            } else {
                for r in &records {
                    add(r.as_bytes())?;
                }
            }
            // Durable before a word is printed.
            s.sync()
                .with_context(|| format!("syncing stream '{name}'"))?;
            s.close()
                .with_context(|| format!("closing stream '{name}'"))?;
            p.close()?;
            if json {
                print_json(&serde_json::json!({ "stream": name, "offsets": offsets }))?;
            } else {
                let mut out = std::io::stdout().lock();
                for o in offsets {
                    writeln!(out, "{o}")?;
                }
            }
        }
        StreamCmd::Read {
            pool,
            name,
            from,
            count,
            json,
        } => {
            let p = open_reading(&pool)?;
            let s = p.stream_open(&name)?;
            let mut out = std::io::stdout().lock();
            let mut recs = Vec::new();
            for r in s.iter(from).take(count.map_or(usize::MAX, |c| c as usize)) {
                let (off, b) = r?;
                if json {
                    recs.push(serde_json::json!({ "offset": off, "record": hex(&b) }));
                } else {
                    out.write_all(&b)?;
                    out.write_all(b"\n")?;
                }
            }
            if json {
                drop(out);
                print_json(&recs)?;
            }
        }
        StreamCmd::Follow {
            pool,
            name,
            from,
            count,
            interval_ms,
            json,
        } => {
            let mut next = from;
            let mut left = count.unwrap_or(u64::MAX);
            while left > 0 {
                {
                    // Without the pool's lock: appenders in other
                    // processes go on while this one polls.
                    let p = Pool::open(
                        &pool,
                        &OpenOptions {
                            inspect: true,
                            ..Default::default()
                        },
                    )
                    .with_context(|| format!("reading pool '{pool}'"))?;
                    let s = p.stream_open(&name)?;
                    let from = *next.get_or_insert_with(|| s.next_offset());
                    let mut out = std::io::stdout().lock();
                    for r in s.iter(from) {
                        let (off, b) = r?;
                        if json {
                            writeln!(
                                out,
                                "{}",
                                serde_json::json!({ "offset": off, "record": hex(&b) })
                            )?;
                        } else {
                            out.write_all(&b)?;
                            out.write_all(b"\n")?;
                        }
                        next = Some(off + 1);
                        left -= 1;
                        if left == 0 {
                            break;
                        }
                    }
                    out.flush()?;
                }
                if left > 0 {
                    std::thread::sleep(Duration::from_millis(interval_ms.max(1)));
                }
            }
        }
        StreamCmd::Trim {
            pool,
            name,
            before,
            max_size,
            max_age,
            json,
        } => {
            if before.is_none() && max_size.is_none() && max_age.is_none() {
                bail!("say what to trim: --before OFFSET, --max-size SIZE or --max-age SECONDS");
            }
            let p = open(&pool, false)?;
            let s = p.stream_open(&name)?;
            let mut rep = mpool::TrimReport {
                first: s.first(),
                ..Default::default()
            };
            let mut add = |r: mpool::TrimReport| {
                rep.segments += r.segments;
                rep.bytes += r.bytes;
                rep.first = r.first;
            };
            if let Some(o) = before {
                add(s.trim_before(o)?);
            }
            if let Some(b) = max_size {
                add(s.trim_to_size(b)?);
            }
            if let Some(a) = max_age {
                add(s.trim_older_than(Duration::from_secs(a))?);
            }
            s.close()?;
            p.close()?;
            if json {
                print_json(&rep)?;
            } else {
                println!(
                    "trimmed {} segment(s), {} freed; first offset now {}",
                    rep.segments,
                    human(rep.bytes),
                    rep.first
                );
            }
        }
        StreamCmd::Delete { pool, name, json } => {
            let p = open(&pool, false)?;
            p.stream_delete(&name)
                .with_context(|| format!("deleting stream '{name}'"))?;
            p.close()?;
            if json {
                print_json(&serde_json::json!({ "deleted": name }))?;
            } else {
                println!("deleted stream '{name}'");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
