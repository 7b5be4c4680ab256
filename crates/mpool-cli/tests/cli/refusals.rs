//! Every refusal of `create` (and friends) exits non-zero with a clear
//! message and leaves the devices byte-for-byte unchanged; an existing pool
//! still opens unchanged afterwards.

use crate::common;
use common::*;

#[test]
fn create_refusals_change_nothing() {
    let sb = Sandbox::new();
    sb.create_with_staging("live", "live.img", "live-stg.img");
    let live = fingerprint(sb.path("live.img"));
    let live_stg = fingerprint(sb.path("live-stg.img"));
    sb.create_small("sleeper", "sleep.img");
    sb.ok(&["deactivate", "sleeper"]);
    let sleep = fingerprint(sb.path("sleep.img"));
    sparse(sb.path("blank.img"), 64 << 20);
    let blank = fingerprint(sb.path("blank.img"));
    sparse(sb.path("small.img"), 4 << 20);
    let small = fingerprint(sb.path("small.img"));
    let blank_p = sb.p("blank.img");
    let long = "n".repeat(32);
    let long_label = long.repeat(2);

    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        // Invalid names.
        (
            vec!["create", "bad/name", &blank_p],
            vec!["'bad/name'", "'/'"],
        ),
        (vec!["create", "sp ace", &blank_p], vec!["pool name"]),
        (vec!["create", "ünï", &blank_p], vec!["pool name"]),
        (vec!["create", &long, &blank_p], vec!["pool name"]),
        (vec!["create", "", &blank_p], vec!["pool name"]),
        (vec!["create", "..", &blank_p], vec!["reserved"]),
        (
            vec!["create", "--", "-dash", &blank_p],
            vec!["must not start with '-'"],
        ),
        // Missing, too small.
        (
            vec!["create", "p", "missing.img"],
            vec!["missing.img", "no such file"],
        ),
        (
            vec!["create", "p", "small.img", "--mblock-size", "1MiB"],
            vec!["small.img is 4194304 bytes", "at least 8388608"],
        ),
        (
            vec!["create", "p", &blank_p, "--mblock-size", "16MiB"],
            vec!["blank.img is 67108864 bytes"],
        ),
        (
            vec!["create", "p", &blank_p],
            vec!["blank.img is 67108864 bytes"],
        ),
        (
            vec![
                "create",
                "p",
                &blank_p,
                "--mblock-size",
                "1MiB",
                "--staging",
                "small.img",
                "--staging-mblock-size",
                "2MiB",
            ],
            vec!["small.img is 4194304 bytes"],
        ),
        // --size on an existing file of another size.
        (
            vec![
                "create",
                "p",
                &blank_p,
                "--size",
                "128MiB",
                "--mblock-size",
                "1MiB",
            ],
            vec!["exists with size 67108864"],
        ),
        // Devices holding pools (active, inactive), the same device twice.
        (
            vec!["create", "p", "live.img", "--mblock-size", "1MiB"],
            vec!["belongs to pool 'live'"],
        ),
        (
            vec![
                "create",
                "p",
                "live.img",
                "--mblock-size",
                "1MiB",
                "--force",
            ],
            vec!["(active) belongs to pool 'live'"],
        ),
        (
            vec![
                "create",
                "p",
                &blank_p,
                "--mblock-size",
                "1MiB",
                "--staging",
                "live-stg.img",
                "--force",
            ],
            vec!["belongs to pool 'live'"],
        ),
        (
            vec!["create", "p", "sleep.img", "--mblock-size", "1MiB"],
            vec!["belongs to pool 'sleeper'"],
        ),
        (
            vec![
                "create",
                "p",
                &blank_p,
                "--mblock-size",
                "1MiB",
                "--staging",
                &blank_p,
            ],
            vec!["both capacity and staging"],
        ),
        // An active name.
        (
            vec!["create", "live", &blank_p, "--mblock-size", "1MiB"],
            vec!["'live' already exists"],
        ),
        // Bad sizes.
        (
            vec!["create", "p", "new.img", "--size", "12XB"],
            vec!["bad size '12XB'"],
        ),
        (vec!["create", "p", "new.img", "--size", "-1"], vec!["'-1'"]),
        (
            vec!["create", "p", "new.img", "--size=-1"],
            vec!["bad size '-1'"],
        ),
        (
            vec!["create", "p", "new.img", "--size", "abc"],
            vec!["bad size 'abc'"],
        ),
        (
            vec!["create", "p", "new.img", "--size", "0"],
            vec!["bad size '0'"],
        ),
        (
            vec!["create", "p", "new.img", "--size", "1.5"],
            vec!["bad size '1.5'"],
        ),
        (
            vec!["create", "p", &blank_p, "--mblock-size", "3MiB"],
            vec!["power of two"],
        ),
        (
            vec!["create", "p", &blank_p, "--mblock-size", "4KiB"],
            vec!["power of two"],
        ),
        (
            vec!["create", "p", &blank_p, "--mblock-size", "big"],
            vec!["bad size 'big'"],
        ),
        // Bad ownership.
        (
            vec![
                "create",
                "p",
                &blank_p,
                "--mblock-size",
                "1MiB",
                "--mode",
                "999",
            ],
            vec!["bad mode '999'"],
        ),
        (
            vec![
                "create",
                "p",
                &blank_p,
                "--mblock-size",
                "1MiB",
                "--mode",
                "17777",
            ],
            vec!["bad mode"],
        ),
        (
            vec![
                "create",
                "p",
                &blank_p,
                "--mblock-size",
                "1MiB",
                "--mode",
                "rw",
            ],
            vec!["bad mode"],
        ),
        (
            vec![
                "create",
                "p",
                &blank_p,
                "--mblock-size",
                "1MiB",
                "--uid",
                "no-such-user-xyz",
            ],
            vec!["unknown user 'no-such-user-xyz'"],
        ),
        (
            vec![
                "create",
                "p",
                &blank_p,
                "--mblock-size",
                "1MiB",
                "--gid",
                "no-such-group-xyz",
            ],
            vec!["unknown group"],
        ),
        // Bad label, staging options without --staging.
        (
            vec![
                "create",
                "p",
                &blank_p,
                "--mblock-size",
                "1MiB",
                "--label",
                &long_label,
            ],
            vec!["label"],
        ),
        (
            vec!["create", "p", &blank_p, "--staging-size", "16MiB"],
            vec!["--staging"],
        ),
        // Other verbs.
        (
            vec!["add", "live", "x.img", "--class", "foo", "--size", "16MiB"],
            vec!["unknown media class 'foo'"],
        ),
        (vec!["rename", "live", "other"], vec!["'live' is active"]),
        (vec!["destroy", "nosuch"], vec!["no pool 'nosuch'"]),
        (vec!["activate", "nosuch"], vec!["no pool 'nosuch'"]),
        (vec!["deactivate", "nosuch"], vec!["no pool 'nosuch'"]),
        (
            vec!["get", "live", "nosuchprop"],
            vec!["unknown property 'nosuchprop'"],
        ),
        (
            vec!["set", "live", "nosuchprop=1"],
            vec!["unknown property 'nosuchprop'"],
        ),
        (vec!["set", "live", "mode=8"], vec!["bad mode"]),
        (vec!["set", "live", "uid=nobody-xyz"], vec!["unknown user"]),
        (vec!["frobnicate"], vec!["unrecognized subcommand"]),
    ];
    for (args, msgs) in &cases {
        let o = sb.fail_with(args, msgs);
        assert!(
            !o.stdout.contains("created") && !o.stdout.contains("renamed"),
            "{args:?}: {}",
            o.all()
        );
        for (f, fp) in [
            ("live.img", &live),
            ("live-stg.img", &live_stg),
            ("sleep.img", &sleep),
            ("blank.img", &blank),
            ("small.img", &small),
        ] {
            assert_unchanged(sb.path(f), fp, &format!("{args:?}"));
        }
        assert!(!sb.path("new.img").exists(), "{args:?} left new.img behind");
        assert!(!sb.path("x.img").exists(), "{args:?} left x.img behind");
    }
    // Nothing new got activated or remembered.
    assert_eq!(sb.active_names(), ["live"]);
    assert!(!sb.known_paths().contains(&blank_p));
    // The pools still open unchanged.
    let p = sb.props("live");
    assert_eq!(p["generation"], 1);
    assert_eq!(p["health"], "ok");
    sb.ok(&["set", "live", "label=still fine"]);
    sb.ok(&["activate", "sleeper"]);
    assert_eq!(sb.props("sleeper")["generation"], 1);
}

#[test]
fn refused_create_removes_the_files_it_made() {
    let sb = Sandbox::new();
    // The staging device is missing: the capacity file created by --size goes away.
    sb.fail_with(
        &[
            "create",
            "p",
            &sb.p("c.img"),
            "--size",
            "64MiB",
            "--mblock-size",
            "1MiB",
            "--staging",
            &sb.p("nodir/s.img"),
        ],
        &["s.img"],
    );
    assert!(!sb.path("c.img").exists());
    // The staging device is too small: both created files go away.
    sb.fail_with(
        &[
            "create",
            "p",
            &sb.p("c.img"),
            "--size",
            "64MiB",
            "--mblock-size",
            "1MiB",
            "--staging",
            &sb.p("s.img"),
            "--staging-size",
            "1MiB",
        ],
        &["s.img is 1048576 bytes"],
    );
    assert!(!sb.path("c.img").exists());
    assert!(!sb.path("s.img").exists());
    assert!(sb.active_names().is_empty());
    assert!(sb.known_paths().is_empty());
}

#[test]
fn hints_follow_the_message_on_their_own_line() {
    let sb = Sandbox::new();
    let o = sb.fail_with(&["destroy", "nosuch"], &["no pool 'nosuch' found"]);
    assert!(
        o.stderr
            .contains("\nmpool: hint: is it activated? try `mpool scan --activate`"),
        "{}",
        o.all()
    );
    sb.create_small("live", "live.img");
    let o = sb.fail_with(&["rename", "live", "other"], &["pool 'live' is active"]);
    assert!(
        o.stderr
            .contains("\nmpool: hint: deactivate it first: `mpool deactivate live`"),
        "{}",
        o.all()
    );
    sparse(sb.path("fs.img"), 64 << 20);
    poke(sb.path("fs.img"), 0x438, &[0x53, 0xEF]);
    let o = sb.fail_with(
        &["create", "p", &sb.p("fs.img"), "--mblock-size", "1MiB"],
        &["ext2/3/4 filesystem; refusing to overwrite it"],
    );
    assert!(
        o.stderr.contains("\nmpool: hint: ") && o.stderr.contains("use --force to overwrite it"),
        "{}",
        o.all()
    );
    // An error without a hint ends with its message.
    let o = sb.fail_with(&["get", "live", "nosuchprop"], &["unknown property"]);
    assert!(!o.stderr.contains("hint:"), "{}", o.all());
}
