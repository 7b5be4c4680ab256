//! A member device smaller than its superblock records (a truncated file)
//! is refused at activate and open, naming the path and both sizes, not
//! found out later as a zone outside the device.

use crate::common;
use common::*;

#[test]
fn a_truncated_member_is_refused_with_its_recorded_and_actual_sizes() {
    let sb = Sandbox::new();
    sb.create_small("shr", "cap.img");
    let cap = sb.p("cap.img");
    let recorded = (64u64 << 20).to_string();
    let actual = (48u64 << 20).to_string();

    // Open (by name, read-write and inspecting) of the active pool.
    std::fs::OpenOptions::new()
        .write(true)
        .open(sb.path("cap.img"))
        .unwrap()
        .set_len(48 << 20)
        .unwrap();
    let image = std::fs::read(sb.path("cap.img")).unwrap();
    let want = [cap.as_str(), recorded.as_str(), actual.as_str()];
    sb.fail_with(&["check", "shr"], &want);
    sb.fail_with(&["mblock", "list", "shr"], &want);
    sb.fail_with(&["get", "shr"], &want);

    // Activate, by name and by path.
    sb.ok(&["deactivate", "shr"]);
    sb.fail_with(&["activate", "shr"], &want);
    let o = sb.run(&["scan", &cap, "--activate"]);
    assert!(!o.status.success(), "{}", o.all());
    for w in want {
        assert!(o.stderr.contains(w), "{w}: {}", o.all());
    }
    assert!(sb.active_names().is_empty());
    assert!(
        std::fs::read(sb.path("cap.img")).unwrap() == image,
        "cap.img changed"
    );
}
