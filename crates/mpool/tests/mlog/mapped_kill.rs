//! An mlog on a mapped tmpfs file (records written straight onto the
//! mapping, several appenders copying in parallel) survives SIGKILL: a
//! child process appends from four threads and notes each acknowledged
//! record in a side file; it is killed at a random moment, in the middle
//! of appends; the log then opens without corruption, holds every record
//! the child noted, holds only whole records the child made, and takes
//! appends again. Rounds go on in the same log. Skipped, loudly, where
//! `/dev/shm` is not a tmpfs.
//!
//! `MPOOL_MAPPED_KILL_ROUNDS=N` runs more rounds (by hand).

use crate::io_common::{allocated, shm_scratch};
use mpool::dev::{Device, FileDevice, OpenOptions};
use mpool::mlog::{Mlog, MlogError};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LOG_ID: u64 = 0x6b1;
const SIZE: u64 = 64 << 20;
const THREADS: u64 = 4;

/// Record `tag`: the tag, then bytes that depend on it (1 to 1500 more).
fn record(tag: u64) -> Vec<u8> {
    let h = tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
    let len = 1 + (h % 1500) as usize;
    let mut v = tag.to_le_bytes().to_vec();
    v.extend((0..len).map(|j| (h >> (j % 40)) as u8 ^ j as u8));
    v
}

fn tag_of(rec: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(rec.get(..8)?.try_into().ok()?))
}

fn open_dev(path: &Path) -> Arc<dyn Device> {
    let dev = FileDevice::open(path, &OpenOptions::default()).expect("open the log's file");
    assert!(dev.is_mapped(), "a fully allocated tmpfs file is mapped");
    Arc::new(dev)
}

/// The child: open the log, append from four threads until killed (or
/// the log is full), writing each acknowledged tag to the side file.
#[test]
#[ignore = "the child of a_log_on_a_mapped_file_survives_sigkill"]
fn mapped_kill_child() {
    let (Ok(file), Ok(acks), Ok(round)) = (
        std::env::var("MPOOL_MAPPED_KILL_FILE"),
        std::env::var("MPOOL_MAPPED_KILL_ACKS"),
        std::env::var("MPOOL_MAPPED_KILL_ROUND"),
    ) else {
        panic!("run by a_log_on_a_mapped_file_survives_sigkill only");
    };
    let round: u64 = round.parse().expect("round");
    let log = Arc::new(Mlog::open(open_dev(Path::new(&file)), 0..SIZE, LOG_ID).expect("open"));
    let acks = std::sync::Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&acks)
            .expect("acks file"),
    );
    // The parent waits for this before it picks the moment to kill.
    println!("ready");
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (log, acks) = (&log, &acks);
            s.spawn(move || {
                for i in 0.. {
                    let tag = round << 40 | t << 32 | i;
                    if log.append(&record(tag), true).is_err() {
                        return;
                    }
                    // One write per line (a kill never splits it); only
                    // whole lines count.
                    let line = format!("{tag}\n");
                    let mut a = acks.lock().unwrap_or_else(|p| p.into_inner());
                    let _ = a.write_all(line.as_bytes());
                }
            });
        }
    });
    // Full: wait to be killed.
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn a_log_on_a_mapped_file_survives_sigkill() {
    let Some(dir) = shm_scratch("a_log_on_a_mapped_file_survives_sigkill") else {
        return;
    };
    let file = allocated(dir.path(), "log.img", SIZE);
    let acks = dir.path().join("acks");
    drop(Mlog::create(open_dev(&file), 0..SIZE, LOG_ID).expect("create the log"));
    let rounds: u64 = std::env::var("MPOOL_MAPPED_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let exe = std::env::current_exe().expect("test binary");
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut this_round_total = 0;
    for round in 0..rounds {
        let mut child = std::process::Command::new(&exe)
            .args([
                "mapped_kill::mapped_kill_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("MPOOL_MAPPED_KILL_FILE", &file)
            .env("MPOOL_MAPPED_KILL_ACKS", &acks)
            .env("MPOOL_MAPPED_KILL_ROUND", round.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn the child");
        // Wait for "ready", then kill 5-60 ms later, in the middle of appends.
        let mut out = std::io::BufReader::new(child.stdout.take().expect("child stdout"));
        let mut line = String::new();
        let t0 = Instant::now();
        while !line.contains("ready") {
            line.clear();
            let n = std::io::BufRead::read_line(&mut out, &mut line).expect("read the child");
            assert!(n > 0, "the child ended before it was ready (round {round})");
            assert!(t0.elapsed() < Duration::from_secs(120));
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(5 + x % 56));
        child.kill().expect("SIGKILL the child");
        child.wait().expect("reap the child");
        // Reopen: no corruption, every noted record there, nothing else.
        let log = Mlog::open(open_dev(&file), 0..SIZE, LOG_ID).expect("open after the kill");
        assert!(
            log.corruption().is_none(),
            "round {round}: {:?}",
            log.corruption()
        );
        let mut have = std::collections::HashSet::new();
        for r in log.reader().expect("reader") {
            let rec = r.expect("a record");
            let tag = tag_of(&rec).expect("a tagged record");
            assert_eq!(rec, record(tag), "round {round}: a record never appended");
            assert!(have.insert(tag), "round {round}: tag {tag:#x} twice");
        }
        let noted = std::fs::read_to_string(&acks).expect("acks");
        let whole = noted.rsplit_once('\n').map_or("", |(w, _)| w);
        for t in whole.lines() {
            let tag: u64 = t.parse().expect("a tag");
            assert!(
                have.contains(&tag),
                "round {round}: acknowledged tag {tag:#x} lost"
            );
            this_round_total += u64::from(tag >> 40 == round);
        }
        // The kill may have cut the last line: keep the whole ones only,
        // or the next child's first tag would be appended to the cut one
        // (a line of two tags' digits).
        let kept = if whole.is_empty() {
            String::new()
        } else {
            format!("{whole}\n")
        };
        std::fs::write(&acks, kept).expect("keep the whole acks");
        // Appends go on, unless the child filled the log (four threads
        // fill 64 MiB from half full within the 60 ms before a kill);
        // half full or full: start again from an empty log.
        let full = match log.append(&record(u64::MAX - round), true) {
            Ok(_) => false,
            Err(MlogError::LogFull { .. }) => true,
            Err(e) => panic!("round {round}: append after the kill: {e}"),
        };
        if full || log.len() > SIZE / 2 {
            log.erase(0).expect("erase");
            std::fs::write(&acks, "").expect("clear acks");
            if full {
                log.append(&record(u64::MAX - round), true)
                    .expect("append after the erase");
            }
        }
        drop(log);
    }
    assert!(
        this_round_total > 0 || rounds == 0,
        "no append was acknowledged before a kill"
    );
}
