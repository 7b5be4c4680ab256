//! `mpool mlog delete` and `mpool mlog erase` (issue 15): a user mlog can be
//! deleted, or emptied with its generation raised, from the command line.

use crate::common;

use common::Sandbox;

#[test]
fn mlog_erase_then_delete() {
    let sb = Sandbox::new();
    sb.create_small("md", "cap.img");
    let id = sb
        .ok(&["mlog", "create", "md", "--capacity", "1MiB"])
        .stdout
        .trim()
        .to_string();
    sb.ok(&["mlog", "append", "md", &id, "one", "two"]);

    // Erase: the records go, the generation rises, the log stays usable.
    let o = sb.ok(&["mlog", "erase", "md", &id]);
    assert!(
        o.stdout
            .contains(&format!("erased {id}: 2 record(s) removed, generation")),
        "{}",
        o.all()
    );
    assert_eq!(
        sb.json(&["mlog", "dump", "md", &id, "--json"]),
        serde_json::json!([])
    );
    sb.ok(&["mlog", "append", "md", &id, "three"]);
    let j = sb.json(&["mlog", "erase", "md", &id, "--json"]);
    assert_eq!(j["id"], id.as_str(), "{j}");
    assert_eq!(j["records_erased"], 1, "{j}");
    let g = j["generation"].as_u64().expect("generation is a number");
    let j2 = sb.json(&["mlog", "erase", "md", &id, "--json"]);
    assert!(j2["generation"].as_u64().unwrap() > g, "{j2}");

    // Delete: gone from the list, its space back, a second delete refused.
    let free_before = sb.props("md")["free"].as_u64().unwrap();
    let j = sb.json(&["mlog", "delete", "md", &id, "--json"]);
    assert_eq!(j["deleted"], id.as_str(), "{j}");
    let list = sb.json(&["mlog", "list", "md", "--json"]);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|l| l["id"] != id.as_str()),
        "{list}"
    );
    assert!(sb.props("md")["free"].as_u64().unwrap() > free_before);
    sb.fail_with(&["mlog", "delete", "md", &id], &["no object"]);
    sb.fail_with(&["mlog", "erase", "md", &id], &["no object"]);

    // Typed IDs: an mblock's or the root MDC's ID is refused as it is parsed.
    std::fs::write(sb.path("in.bin"), b"x").unwrap();
    let mb = sb
        .ok(&["mblock", "write", "md", &sb.p("in.bin")])
        .stdout
        .trim()
        .to_string();
    let o = sb.fail_with(
        &["mlog", "delete", "md", &mb],
        &[&format!("{mb} is an mblock, not an mlog")],
    );
    assert_eq!(o.status.code(), Some(2));
    sb.fail_with(
        &["mlog", "erase", "md", &mb],
        &["is an mblock, not an mlog"],
    );
    let list = sb.json(&["mlog", "list", "md", "--json"]);
    let root = list
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["root"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    sb.fail_with(
        &["mlog", "delete", "md", &root],
        &["is an mdc, not an mlog"],
    );
    let o = sb.ok(&["mlog", "create", "md"]);
    let id2 = o.stdout.trim();
    let o = sb.ok(&["mlog", "delete", "md", id2]);
    assert_eq!(o.stdout.trim(), format!("deleted {id2}"));
    let chk = sb.ok(&["check", "md"]);
    assert!(chk.stdout.contains("0 problem(s)"), "{}", chk.all());
}
