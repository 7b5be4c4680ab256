//! Size arguments (issue 15): decimal-unit suffixes are refused as
//! ambiguous with what to write instead, sizes past 64 bits are refused
//! (never clamped), and a `--size` no file can have, or given for a block
//! device, is refused before anything is created.

use crate::common;

use common::*;

#[test]
fn decimal_units_are_refused_with_what_to_write() {
    let sb = Sandbox::new();
    sb.fail_with(
        &["create", "p", &sb.p("new.img"), "--size", "4GB"],
        &["'4GB' is ambiguous: write 4GiB (4294967296 bytes) or 4000000000"],
    );
    sb.fail_with(
        &[
            "create",
            "p",
            &sb.p("new.img"),
            "--size",
            "64MiB",
            "--mblock-size",
            "1MB",
        ],
        &["'1MB' is ambiguous: write 1MiB (1048576 bytes) or 1000000"],
    );
    assert!(!sb.path("new.img").exists());
    // Binary units in any case, with a space, as exact fractions.
    sb.ok(&[
        "create",
        "p",
        &sb.p("new.img"),
        "--size",
        "0.0625 gib",
        "--mblock-size",
        "1m",
    ]);
    assert_eq!(
        std::fs::metadata(sb.path("new.img")).unwrap().len(),
        64 << 20
    );
    // The help lists the units.
    let h = sb.ok(&["create", "--help"]).stdout;
    for u in ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ambiguous"] {
        assert!(h.contains(u), "create --help lacks {u}:\n{h}");
    }
}

#[test]
fn sizes_past_what_a_file_holds_are_refused_before_anything_is_created() {
    let sb = Sandbox::new();
    let new = sb.p("new.img");
    // Past 64 bits: refused by the parser, not clamped.
    sb.fail_with(
        &["create", "p", &new, "--mblock-size", "18446744073709551616"],
        &[
            "bad size '18446744073709551616'",
            "more than 18446744073709551615 bytes",
        ],
    );
    // Past what a file holds, not whole 4 KiB blocks: refused in so many words.
    for (size, msg) in [
        ("18446744073709551615", "is more than a file can hold"),
        ("9223372036854775808", "is more than a file can hold"),
        ("8EiB", "is more than a file can hold"),
        ("9223372036854775807", "is not a multiple of 4096 bytes"),
        ("67108865", "give 67108864 or 67112960"),
    ] {
        let o = sb.fail_with(
            &["create", "p", &new, "--size", size, "--mblock-size", "1MiB"],
            &[msg],
        );
        assert!(!o.stderr.contains("out of range"), "{}", o.all());
        assert!(
            !sb.path("new.img").exists(),
            "--size {size} left new.img behind"
        );
    }
    // The staging file likewise, and the capacity file is not created either.
    sb.fail_with(
        &[
            "create",
            "p",
            &new,
            "--size",
            "64MiB",
            "--mblock-size",
            "1MiB",
            "--staging",
            &sb.p("stg.img"),
            "--staging-size",
            "18446744073709551615",
        ],
        &["--staging-size 18446744073709551615 is more than a file can hold"],
    );
    assert!(!sb.path("new.img").exists());
    assert!(!sb.path("stg.img").exists());
    // add --size too.
    sb.create_small("a", "a.img");
    sb.fail_with(
        &[
            "add",
            "a",
            &sb.p("stg.img"),
            "--class",
            "staging",
            "--size",
            "16EiB",
        ],
        &["more than"],
    );
    sb.fail_with(
        &[
            "add",
            "a",
            &sb.p("stg.img"),
            "--class",
            "staging",
            "--size",
            "9223372036854775807",
        ],
        &["not a multiple of 4096"],
    );
    assert!(!sb.path("stg.img").exists());
    assert!(sb.known_paths().iter().all(|p| !p.contains("new.img")));
    assert_eq!(sb.active_names(), ["a"]);
}

/// The block device holding the sandbox's filesystem: mounted, so nothing
/// could write to it even if the refusal were missing.
fn mounted_block_device(sb: &Sandbox) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(sb.dir.path()).ok()?.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let uevent = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/uevent")).ok()?;
    let name = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME="))?;
    let path = format!("/dev/{name}");
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(&path)
        .ok()?
        .file_type()
        .is_block_device()
        .then_some(path)
}

#[test]
fn size_for_a_block_device_is_refused() {
    let sb = Sandbox::new();
    let Some(dev) = mounted_block_device(&sb) else {
        eprintln!("SKIPPED: no block device found under the sandbox");
        return;
    };
    sb.fail_with(
        &[
            "create",
            "p",
            &dev,
            "--size",
            "64MiB",
            "--mblock-size",
            "1MiB",
        ],
        &[
            &format!("--size creates a file; {dev} is a block device"),
            "omit --size",
        ],
    );
    sb.create_small("b", "b.img");
    sb.fail_with(
        &["add", "b", &dev, "--class", "staging", "--size", "64MiB"],
        &["is a block device"],
    );
    assert_eq!(sb.active_names(), ["b"]);
}
