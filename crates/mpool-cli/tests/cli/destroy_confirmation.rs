//! `mpool destroy` (issue 15) says what it erases; on a terminal it asks
//! first (unless --yes), off a terminal (scripts) it proceeds.

use crate::common;

use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn destroy_off_a_terminal_says_what_it_erases() {
    let sb = Sandbox::new();
    sb.create_with_staging("gone", "cap.img", "stg.img");
    let uuid = sb.props("gone")["uuid"].as_str().unwrap().to_string();
    let o = sb.ok(&["destroy", "gone"]);
    assert_eq!(o.stdout, "destroyed pool 'gone'\n", "{}", o.all());
    for s in [
        "destroying pool 'gone'",
        uuid.as_str(),
        &format!("capacity {}", sb.p("cap.img")),
        &format!("staging {}", sb.p("stg.img")),
        "every object in it is lost",
    ] {
        assert!(o.stderr.contains(s), "stderr lacks {s:?}:\n{}", o.all());
    }
    sb.create_small("gone2", "cap.img");
    sb.ok(&["destroy", "--yes", "gone2"]);
    assert!(sb.active_names().is_empty());
}

/// `mpool ARGS` on a pseudo-terminal (through script(1)), answering `answer`.
fn on_a_terminal(sb: &Sandbox, args: &str, answer: &str) -> Option<Out> {
    let script = which("script")?;
    let cmd = format!("{} {args}", env!("CARGO_BIN_EXE_mpool"));
    let mut child = Command::new(script)
        .args(["-qec", &cmd, "/dev/null"])
        .env("MPOOL_RUNDIR", sb.rundir())
        .env("MPOOL_CONFIG", sb.config())
        .env("MPOOL_SCAN_DEVICES", &sb.scan_devices)
        .env_remove("MPOOL_IO_ENGINE")
        .current_dir(sb.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    std::thread::sleep(std::time::Duration::from_millis(500));
    let _ = stdin.write_all(answer.as_bytes());
    std::thread::sleep(std::time::Duration::from_millis(500));
    drop(stdin);
    let o = child.wait_with_output().ok()?;
    Some(Out {
        status: o.status,
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    })
}

#[test]
fn destroy_on_a_terminal_asks_first() {
    let sb = Sandbox::new();
    sb.create_small("asked", "cap.img");
    let before = fingerprint(sb.path("cap.img"));
    let Some(o) = on_a_terminal(&sb, "destroy asked", "no\n") else {
        eprintln!("SKIPPED: no script(1) to run mpool on a terminal");
        return;
    };
    // script(1) puts the terminal's output (stdout and stderr) on its stdout.
    assert!(o.stdout.contains("Type 'yes' to destroy it"), "{}", o.all());
    assert!(o.stdout.contains("not destroyed"), "{}", o.all());
    assert_unchanged(sb.path("cap.img"), &before, "destroy answered no");
    assert_eq!(sb.active_names(), ["asked"]);
    let o = on_a_terminal(&sb, "destroy asked", "yes\n").unwrap();
    assert!(o.stdout.contains("destroyed pool 'asked'"), "{}", o.all());
    assert!(sb.active_names().is_empty());
    sb.create_small("asked", "cap2.img");
    let o = on_a_terminal(&sb, "destroy --yes asked", "").unwrap();
    assert!(!o.stdout.contains("Type 'yes'"), "{}", o.all());
    assert!(o.stdout.contains("destroyed pool 'asked'"), "{}", o.all());
}
