//! A `create` that fails after it began writing takes everything back: the
//! devices' superblocks, owner and mode, files it created, the lines it added
//! to the device list and its run-directory entry. A retry then succeeds.

use crate::common;
use common::*;

fn create_args<'a>(sb: &'a Sandbox, name: &'a str, cap: &'a str) -> Vec<String> {
    [
        "create",
        name,
        cap,
        "--mblock-size",
        "1MiB",
        "--staging",
        &sb.p("stg.img"),
        "--staging-size",
        "16MiB",
        "--mode",
        "0640",
    ]
    .map(str::to_string)
    .to_vec()
}

#[test]
fn device_list_unwritable_leaves_nothing_behind() {
    let sb = Sandbox::new();
    sparse(sb.path("cap.img"), 64 << 20);
    let before = fingerprint(sb.path("cap.img"));
    // A regular file where the device list's directory should be: refused
    // even as root.
    std::fs::write(sb.path("notadir"), b"").unwrap();
    let args = create_args(&sb, "np", &sb.p("cap.img"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = output(
        sb.cmd()
            .env("MPOOL_CONFIG", sb.path("notadir").join("devices"))
            .args(&args),
    );
    assert!(!o.status.success(), "{}", o.all());
    assert!(o.stderr.contains("notadir"), "{}", o.all());
    assert_unchanged(sb.path("cap.img"), &before, "failed create");
    assert!(
        !sb.path("stg.img").exists(),
        "the staging file it created stays"
    );
    assert!(sb.active_names().is_empty());
    let v = sb.json(&["scan", "--json", &sb.p("cap.img")]);
    assert_eq!(v["report"]["pools"].as_array().unwrap().len(), 0, "{v}");
    // The retry is not told the device belongs to pool 'np'.
    sb.ok(&args);
    assert_eq!(sb.active_names(), ["np"]);
}

#[test]
fn run_directory_entry_unwritable_leaves_nothing_behind() {
    let sb = Sandbox::new();
    sparse(sb.path("cap.img"), 64 << 20);
    let before = fingerprint(sb.path("cap.img"));
    std::fs::write(sb.config(), "# mine\n").unwrap();
    // A directory where the pool's entry goes: writing it fails.
    std::fs::create_dir_all(sb.rundir().join("np.pool")).unwrap();
    let args = create_args(&sb, "np", &sb.p("cap.img"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = sb.fail(&args);
    assert!(o.stderr.contains("np.pool"), "{}", o.all());
    assert_unchanged(sb.path("cap.img"), &before, "failed create");
    assert!(
        !sb.path("stg.img").exists(),
        "the staging file it created stays"
    );
    assert_eq!(sb.known_paths(), ["# mine"], "device list lines stay");
    std::fs::remove_dir(sb.rundir().join("np.pool")).unwrap();
    sb.ok(&args);
    assert_eq!(sb.active_names(), ["np"]);
    assert_eq!(sb.known_paths().len(), 3, "{:?}", sb.known_paths());
}
