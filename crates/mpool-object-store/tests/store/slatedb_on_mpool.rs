//! slatedb (an LSM-tree whose SSTables, WAL and manifests are objects in
//! an `ObjectStore`) on the mpool store, through slatedb's public API.
//!
//! - `slatedb_on_mpool`: a `Db` with one mpool store as its main store and
//!   another store of the same pool as its WAL store writes keys across
//!   memtable flushes and a compaction, closes, reopens on a fresh open
//!   of the pool, and reads everything back.
//! - `slatedb_bank_survives_sigkill`: the bank workload. Accounts move
//!   money between each other in slatedb transactions from several tasks
//!   of a child process (this test binary, re-executed to run the ignored
//!   `bank_child`), which is killed with SIGKILL at a random moment; the
//!   database is reopened on the same pool and checked: the total balance
//!   is conserved and every transfer the child acknowledged is there.
//!   `MPOOL_BANK_ROUNDS=N` (and `MPOOL_BANK_SEED`) run many more rounds:
//!   `MPOOL_BANK_ROUNDS=200 cargo test --release -p mpool-object-store
//!   --test store slatedb_bank -- --nocapture`.

use crate::common;
use mpool_object_store::{MpoolStore, StoreOptions};
use object_store::ObjectStore;
use slatedb::config::{CompactorOptions, FlushOptions, FlushType, Settings};
use slatedb::{Db, IsolationLevel};
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

fn stores(img: &FsPath) -> (Arc<dyn ObjectStore>, Arc<dyn ObjectStore>) {
    let pool = common::open_pool(img, false);
    let main = MpoolStore::open(pool.clone(), &StoreOptions::default().name("main")).unwrap();
    let wal = MpoolStore::open(pool, &StoreOptions::default().name("wal")).unwrap();
    (Arc::new(main), Arc::new(wal))
}

fn settings() -> Settings {
    Settings {
        flush_interval: Some(Duration::from_millis(20)),
        manifest_poll_interval: Duration::from_millis(100),
        l0_sst_size_bytes: 64 * 1024,
        compactor_options: Some(CompactorOptions {
            poll_interval: Duration::from_millis(100),
            ..CompactorOptions::default()
        }),
        ..Settings::default()
    }
}

async fn open_db(img: &FsPath) -> Db {
    let (main, wal) = stores(img);
    Db::builder("db", main)
        .with_wal_object_store(wal)
        .with_settings(settings())
        .build()
        .await
        .unwrap()
}

fn value(i: u64) -> Vec<u8> {
    format!("value-{i:08}-{}", "v".repeat((i % 200) as usize)).into_bytes()
}

#[test]
fn slatedb_on_mpool() {
    let dir = common::scratch();
    let img = common::format(dir.path(), 1 << 30, 1 << 20);
    let rt = tokio::runtime::Runtime::new().unwrap();
    const N: u64 = 20_000;
    rt.block_on(async {
        let db = open_db(&img).await;
        for round in 0..6u64 {
            for i in (round..N).step_by(6) {
                db.put(format!("key{i:08}"), value(i)).await.unwrap();
            }
            // Each round becomes an L0 SSTable of its own.
            db.flush_with_options(FlushOptions {
                flush_type: FlushType::MemTable,
            })
            .await
            .unwrap();
        }
        // Overwrites and deletes that the compaction must resolve.
        for i in (0..N).step_by(7) {
            db.put(format!("key{i:08}"), b"overwritten".to_vec())
                .await
                .unwrap();
        }
        for i in (0..N).step_by(11) {
            db.delete(format!("key{i:08}")).await.unwrap();
        }
        db.flush_with_options(FlushOptions {
            flush_type: FlushType::MemTable,
        })
        .await
        .unwrap();
        // The compactor merges the L0 SSTables into a sorted run.
        let mut compacted = false;
        for _ in 0..600 {
            db.refresh_manifest().await.unwrap();
            if !db.manifest().compacted().is_empty() {
                compacted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(compacted, "no compaction within 30 s");
        check_all(&db, N).await;
        db.close().await.unwrap();
    });
    // A new pool handle, a new Db: everything is read back.
    rt.block_on(async {
        let db = open_db(&img).await;
        check_all(&db, N).await;
        assert!(!db.manifest().compacted().is_empty());
        db.close().await.unwrap();
    });
}

async fn check_all(db: &Db, n: u64) {
    for i in 0..n {
        let got = db.get(format!("key{i:08}")).await.unwrap();
        let want = if i % 11 == 0 {
            None
        } else if i % 7 == 0 {
            Some(b"overwritten".to_vec())
        } else {
            Some(value(i))
        };
        assert_eq!(got.map(|b| b.to_vec()), want, "key{i:08}");
    }
}

// ---- the bank workload ----

const ACCOUNTS: u64 = 16;
const START: u64 = 1000;

fn account(i: u64) -> String {
    format!("acct/{i:03}")
}

fn parse(b: &[u8]) -> u64 {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX)
}

/// The child's work: open (creating the accounts the first time), then
/// transfer forever from several tasks; each acknowledged (durable)
/// transfer is appended to the ack file, synced, after its commit.
async fn bank_child_run(img: &FsPath, acks: &FsPath, round: u64) {
    let db = Arc::new(open_db(img).await);
    if db.get(account(0)).await.unwrap().is_none() {
        let mut b = slatedb::WriteBatch::new();
        for i in 0..ACCOUNTS {
            b.put(account(i), START.to_string());
        }
        db.write(b).await.unwrap();
        db.flush().await.unwrap();
    }
    let ack = Arc::new(std::sync::Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(acks)
            .unwrap(),
    ));
    let mut tasks = Vec::new();
    for t in 0..4u64 {
        let (db, ack) = (db.clone(), ack.clone());
        tasks.push(tokio::spawn(async move {
            let mut x = (round << 8 | t).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            for seq in 0u64.. {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let (from, to) = (x % ACCOUNTS, (x >> 20) % ACCOUNTS);
                if from == to {
                    continue;
                }
                let amount = 1 + (x >> 40) % 50;
                let txn = db.begin(IsolationLevel::SerializableSnapshot).unwrap();
                let a = parse(&txn.get(account(from)).await.unwrap().unwrap());
                let b = parse(&txn.get(account(to)).await.unwrap().unwrap());
                if a < amount {
                    txn.rollback();
                    continue;
                }
                let id = format!("xfer/{round:04}/{t}/{seq:08}");
                txn.put(account(from), (a - amount).to_string()).unwrap();
                txn.put(account(to), (b + amount).to_string()).unwrap();
                txn.put(&id, format!("{from} {to} {amount}")).unwrap();
                match txn.commit().await {
                    Ok(Some(h)) => h.await_durable().await.unwrap(),
                    Ok(None) => {}
                    Err(_) => continue, // a conflict: nothing happened
                }
                // One write(2) per line (`writeln!` makes two: the id, then
                // the newline, and a kill between them glued this id to the
                // next round's first one).
                use std::io::Write;
                let line = format!("{id}\n");
                let mut f = ack.lock().unwrap();
                f.write_all(line.as_bytes()).unwrap();
                f.sync_data().unwrap();
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Entry point of the child process (runs only when re-executed by
/// `slatedb_bank_survives_sigkill`, which sets the variables).
#[test]
#[ignore = "the child of slatedb_bank_survives_sigkill"]
fn bank_child() {
    let (Ok(img), Ok(acks), Ok(round)) = (
        std::env::var("MPOOL_BANK_IMG"),
        std::env::var("MPOOL_BANK_ACKS"),
        std::env::var("MPOOL_BANK_ROUND"),
    ) else {
        panic!("run by slatedb_bank_survives_sigkill only");
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(bank_child_run(
        FsPath::new(&img),
        FsPath::new(&acks),
        round.parse().unwrap(),
    ));
}

/// Open the database after a kill and check it: the total is conserved,
/// every acknowledged transfer is there. Returns (transfers acknowledged,
/// transfers found).
fn bank_check(img: &FsPath, acks: &FsPath) -> (usize, usize) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = open_db(img).await;
        let mut total = 0;
        for i in 0..ACCOUNTS {
            match db.get(account(i)).await.unwrap() {
                Some(v) => total += parse(&v),
                None => {
                    // Killed before the accounts were created: nothing at all.
                    assert_eq!(i, 0, "account {i} missing");
                    db.close().await.unwrap();
                    return (0, 0);
                }
            }
        }
        assert_eq!(total, ACCOUNTS * START, "the total balance changed");
        let acked = std::fs::read_to_string(acks).unwrap_or_default();
        let acked: Vec<&str> = acked.lines().collect();
        for id in &acked {
            assert!(
                db.get(id).await.unwrap().is_some(),
                "acknowledged transfer {id} is missing"
            );
        }
        let mut found = 0;
        let mut it = db
            .scan("xfer/".to_string().."xfer0".to_string())
            .await
            .unwrap();
        while let Some(_kv) = it.next().await.unwrap() {
            found += 1;
        }
        db.close().await.unwrap();
        (acked.len(), found)
    })
}

/// A line of the ack file the kill cut short was never a complete
/// acknowledgement record: cut it off, so that the next round's lines
/// start on a line of their own.
fn drop_torn_ack(acks: &FsPath) {
    let Ok(bytes) = std::fs::read(acks) else {
        return;
    };
    if bytes.last().is_some_and(|&b| b != b'\n') {
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let f = std::fs::OpenOptions::new().write(true).open(acks).unwrap();
        f.set_len(keep as u64).unwrap();
    }
}

/// Run `rounds` kill rounds of the bank workload on the pool at `img`.
fn bank_rounds(img: &FsPath, acks: &FsPath, rounds: u64, seed: u64) {
    let exe = std::env::current_exe().unwrap();
    let mut x = seed | 1;
    for round in 0..rounds {
        let mut child = std::process::Command::new(&exe)
            .args([
                "slatedb_on_mpool::bank_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("MPOOL_BANK_IMG", img)
            .env("MPOOL_BANK_ACKS", acks)
            .env("MPOOL_BANK_ROUND", round.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(300 + x % 1500));
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the bank child ended by itself: {status}");
        }
        // SAFETY: kill(2) on the pid of a child we spawned and have not
        // reaped yet (so the pid is still ours); no memory is involved.
        let r = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        assert_eq!(r, 0, "kill failed");
        let _ = child.wait();
        drop_torn_ack(acks);
        let (acked, found) = bank_check(img, acks);
        assert!(
            found >= acked,
            "round {round}: {found} transfers found, {acked} acknowledged"
        );
        eprintln!("bank round {round}: {acked} transfers acknowledged, {found} present");
    }
}

#[test]
fn slatedb_bank_survives_sigkill() {
    let dir = common::scratch();
    let img = common::format(dir.path(), 1 << 30, 1 << 20);
    let acks = dir.path().join("acks");
    // MPOOL_BANK_ROUNDS=N runs more rounds (by hand: each takes about 2 s).
    let rounds = std::env::var("MPOOL_BANK_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let seed = std::env::var("MPOOL_BANK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    bank_rounds(&img, &acks, rounds, seed);
    let (acked, _) = bank_check(&img, &acks);
    assert!(acked > 0, "no transfer was acknowledged in {rounds} rounds");
}
