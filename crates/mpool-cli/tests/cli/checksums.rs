//! Per-block checksums seen from the command line (issue #10): a byte
//! flipped in a committed mblock's content on the pool file is never
//! written out by `mpool mblock read`, which fails naming the damaged
//! bytes while reads of the mblock's other blocks still succeed; the
//! mismatch, found by one command (its own process), shows in the health
//! that `get` and `list` (other processes) report; `check` lists the
//! damaged range, and deleting the mblock clears the health.

use crate::common::{flip, Sandbox};

const ZONE: u64 = 1 << 20;

/// The pool's health as `mpool get POOL health` shows it (its own process).
fn health(sb: &Sandbox, pool: &str) -> String {
    let out = sb.ok(&["get", pool, "health"]).stdout;
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("health"))
        .unwrap_or_else(|| panic!("no health line in {out}"));
    line.trim_start()["health".len()..].trim().to_string()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
}

#[test]
fn a_flipped_byte_is_refused_counted_in_health_and_listed_by_check() {
    let sb = Sandbox::new();
    sb.create_small("rot", "cap.img");
    let data = pattern(100_000);
    std::fs::write(sb.path("in.bin"), &data).unwrap();
    let id = sb.ok(&["mblock", "write", "rot", &sb.p("in.bin")]).stdout;
    let id = id.trim();
    let stat = sb.json(&["mblock", "stat", "rot", id, "--json"]);
    assert_eq!(stat["csum_block"], 4096, "{stat}");
    let zone = stat["zone"].as_u64().unwrap();
    // Intact: read back whole.
    sb.ok(&["mblock", "read", "rot", id, "-o", &sb.p("out.bin")]);
    assert!(std::fs::read(sb.path("out.bin")).unwrap() == data);
    assert_eq!(health(&sb, "rot"), "ok");

    flip(&sb, "cap.img", zone * ZONE + 500);
    let o = sb.fail_with(
        &["mblock", "read", "rot", id, "-o", &sb.p("bad.bin")],
        &[&format!(
            "mblock {id}: bytes 0..4096 do not match their checksums"
        )],
    );
    assert!(o.stderr.contains("mpool check"), "{}", o.all());
    assert!(
        std::fs::read(sb.path("bad.bin"))
            .unwrap_or_default()
            .is_empty(),
        "no byte of the damaged block is written out"
    );
    // Partial reads: inside the damaged block fail, elsewhere succeed.
    sb.fail_with(
        &[
            "mblock", "read", "rot", id, "--offset", "4000", "--length", "200",
        ],
        &["bytes 0..4096 do not match"],
    );
    sb.ok(&[
        "mblock",
        "read",
        "rot",
        id,
        "--offset",
        "4096",
        "--length",
        "8192",
        "-o",
        &sb.p("part.bin"),
    ]);
    assert!(std::fs::read(sb.path("part.bin")).unwrap() == data[4096..12288]);
    // The health of other processes counts the mismatch.
    assert_eq!(health(&sb, "rot"), "degraded (1 checksum error(s))");
    assert!(sb
        .ok(&["list"])
        .stdout
        .contains("degraded (1 checksum error(s))"));
    assert_eq!(sb.props("rot")["health"], "degraded (1 checksum error(s))");
    // check lists the range (and fails), and keeps it counted.
    let o = sb.run(&["check", "rot"]);
    assert!(!o.status.success(), "{}", o.all());
    assert!(
        o.stdout.contains(&format!(
            "PROBLEM {id}: bytes 0..4096 do not match their checksums"
        )),
        "{}",
        o.all()
    );
    let o = sb.run(&["check", "rot", "--json"]);
    assert!(!o.status.success(), "{}", o.all());
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["damaged"][0]["offset"], 0, "{v}");
    assert_eq!(v["damaged"][0]["len"], 4096, "{v}");
    assert_eq!(health(&sb, "rot"), "degraded (1 checksum error(s))");
    // Deleting the mblock takes its damage out of the health.
    sb.ok(&["mblock", "delete", "rot", id]);
    assert_eq!(health(&sb, "rot"), "ok");
}

#[test]
fn check_finds_damage_no_read_has_seen_and_a_clean_check_clears_the_record() {
    let sb = Sandbox::new();
    sb.create_small("scrub", "cap.img");
    let data = pattern(50_000);
    std::fs::write(sb.path("in.bin"), &data).unwrap();
    let id = sb.ok(&["mblock", "write", "scrub", &sb.p("in.bin")]).stdout;
    let id = id.trim();
    let zone = sb.json(&["mblock", "stat", "scrub", id, "--json"])["zone"]
        .as_u64()
        .unwrap();
    // The last, partial block (49152..50000).
    flip(&sb, "cap.img", zone * ZONE + 49_999);
    let o = sb.run(&["check", "scrub"]);
    assert!(
        o.stdout
            .contains("bytes 49152..50000 do not match their checksums"),
        "{}",
        o.all()
    );
    assert_eq!(health(&sb, "scrub"), "degraded (1 checksum error(s))");
    // Put the byte back: a full check finds nothing, and says so.
    flip(&sb, "cap.img", zone * ZONE + 49_999);
    assert!(sb.ok(&["check", "scrub"]).stdout.contains("0 problem(s)"));
    assert_eq!(health(&sb, "scrub"), "ok");
    sb.ok(&["mblock", "read", "scrub", id, "-o", &sb.p("out.bin")]);
    assert!(std::fs::read(sb.path("out.bin")).unwrap() == data);
}
