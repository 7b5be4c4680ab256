//! While this process holds a pool open for writing (through the library),
//! CLI writers are refused with "is open by process <our pid>" and change
//! nothing, while list/get (which inspect without locking) still work.
//!
//! One test in this file: it sets MPOOL_RUNDIR/MPOOL_CONFIG (and
//! MPOOL_SCAN_DEVICES) for the whole test process so the library resolves
//! the sandbox's pool. It is the only test of the `cli` binary that uses the
//! library's run directory in this process; every `mpool` child of every
//! test gets all three variables from `Sandbox::cmd` explicitly, so the
//! tests running beside it are unaffected.

use crate::common;
use common::*;

#[test]
fn second_writer_is_refused() {
    let sb = Sandbox::new();
    sb.create_with_staging("locked", "cap.img", "stg.img");
    std::env::set_var("MPOOL_RUNDIR", sb.rundir());
    std::env::set_var("MPOOL_CONFIG", sb.config());
    std::env::set_var("MPOOL_SCAN_DEVICES", &sb.scan_devices);

    let pool = mpool::Pool::open("locked", &mpool::OpenOptions::default()).expect("open");
    assert_eq!(pool.name(), "locked");
    let me = format!("is open by process {}", std::process::id());
    let cap = fingerprint(sb.path("cap.img"));
    let stg = fingerprint(sb.path("stg.img"));

    // Writers: refused.
    sb.fail_with(&["set", "locked", "label=x"], &["pool 'locked'", &me]);
    sb.fail_with(
        &[
            "add",
            "locked",
            &sb.p("new.img"),
            "--class",
            "staging",
            "--size",
            "16MiB",
        ],
        &[&me],
    );
    sb.fail_with(&["deactivate", "locked"], &[&me]);
    sb.fail_with(&["destroy", "locked"], &[&me]);
    sb.fail_with(&["upgrade", "locked"], &[&me]);
    sb.fail_with(&["upgrade", "locked", "--dry-run"], &[&me]);
    assert_unchanged(sb.path("cap.img"), &cap, "refused while open");
    assert_unchanged(sb.path("stg.img"), &stg, "refused while open");
    assert_eq!(
        sb.active_names(),
        ["locked"],
        "deactivate must not have forgotten it"
    );

    // Inspectors: fine.
    let v = sb.json(&["list", "--json"]);
    assert_eq!(v[0]["health"], "ok");
    sb.ok(&["list", "-v"]);
    assert_eq!(sb.props("locked")["name"], "locked");

    // Live figures: the holder publishes its counts; status, list and
    // mblock list in other processes show them (within a few seconds).
    let id = pool
        .mblock_alloc(mpool::MediaClass::Capacity)
        .expect("alloc");
    pool.mblock_write(id, b"live figures").expect("write");
    pool.mblock_commit(id).expect("commit");
    let mut st = serde_json::Value::Null;
    for _ in 0..100 {
        st = sb.json(&["status", "locked", "--json"]);
        if st[0]["objects"]["mblocks"] == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(st[0]["state"], "open", "{st}");
    assert_eq!(st[0]["holder_pid"], std::process::id(), "{st}");
    assert_eq!(st[0]["figures_from"], "holder", "{st}");
    assert_eq!(st[0]["objects"]["mblocks"], 1, "{st}");
    let o = sb.ok(&["list", "locked", "-H", "-o", "name,objects,state"]);
    assert_eq!(
        o.stdout.trim(),
        format!("locked\t2\topen by {}", std::process::id()),
        "the mblock and the root MDC:\n{}",
        o.all()
    );
    let o = sb.ok(&["mblock", "list", "locked", "-H", "-o", "id,length"]);
    assert_eq!(o.stdout.trim(), format!("{id}\t12"), "{}", o.all());
    assert!(
        o.stderr.contains(&me) && o.stderr.contains("reports 1 mblock(s)"),
        "{}",
        o.all()
    );

    // A second writer in this very process is refused too.
    match mpool::Pool::open("locked", &mpool::OpenOptions::default()) {
        Err(e) => assert!(e.to_string().contains("is open by"), "{e}"),
        Ok(_) => panic!("second writer in one process opened the pool"),
    }

    // Read-only opens share the lock with each other, not with a writer.
    let ro = mpool::OpenOptions {
        read_only: true,
        ..Default::default()
    };
    assert!(
        mpool::Pool::open("locked", &ro).is_err(),
        "reader beside a writer"
    );
    pool.set(&[("label".into(), "from the library".into())])
        .unwrap();
    drop(pool);
    let r1 = mpool::Pool::open("locked", &ro).expect("reader 1");
    let r2 = mpool::Pool::open("locked", &ro).expect("reader 2");
    assert_eq!(r2.get("label").unwrap(), "from the library");
    sb.fail_with(&["set", "locked", "label=x"], &["pool 'locked' is open by"]);
    drop((r1, r2));

    // Closed: the CLI writes again, and sees the library's change.
    sb.ok(&["set", "locked", "label=cli"]);
    let p = sb.props("locked");
    assert_eq!(p["label"], "cli");
    assert_eq!(p["generation"], 3);
    sb.ok(&["deactivate", "locked"]);
    sb.ok(&["activate", "locked"]);
    sb.ok(&["destroy", "locked"]);
}
