//! A pool with a damaged metadata container, from the command line: `list`
//! and `status` say degraded and name the MDC, `check` lists it and its
//! objects, reads of the healthy MDC's objects work, reads of the damaged
//! one's fail naming it, and `deactivate` still works.

use crate::common;
use common::*;

#[test]
fn a_damaged_mdc_is_reported_and_the_rest_stays_readable() {
    let sb = Sandbox::new();
    // 128 MiB of 1 MiB mblocks: two metadata containers.
    sb.ok(&[
        "create",
        "dg",
        &sb.p("cap.img"),
        "--size",
        "128MiB",
        "--mblock-size",
        "1MiB",
    ]);
    let f = sb.path("d.bin");
    let mut ids = Vec::new();
    for i in 0..8u8 {
        std::fs::write(&f, vec![i; 3000]).unwrap();
        let id = sb
            .ok(&["mblock", "write", "dg", f.to_str().unwrap()])
            .stdout
            .trim()
            .to_string();
        ids.push(id);
    }
    let mdc = |id: &str| (u64::from_str_radix(&id[2..], 16).unwrap() >> 4) & 0xff;
    let in2: Vec<&String> = ids.iter().filter(|i| mdc(i) == 2).collect();
    let in1: Vec<&String> = ids.iter().filter(|i| mdc(i) == 1).collect();
    assert!(in2.len() >= 2 && !in1.is_empty(), "{ids:?}");
    // Rot every copy of the commit record of MDC2's second object.
    let raw = u64::from_str_radix(&in2[1][2..], 16).unwrap().to_le_bytes();
    let img = std::fs::read(sb.path("cap.img")).unwrap();
    let hits: Vec<usize> = img
        .windows(8)
        .enumerate()
        .filter(|(_, w)| *w == raw)
        .map(|(i, _)| i)
        .collect();
    assert!(!hits.is_empty());
    for h in hits {
        flip(&sb, "cap.img", h as u64 + 7);
    }

    let v = sb.json(&["list", "--json"]);
    let health = v[0]["health"].as_str().unwrap_or_default().to_string();
    assert!(health.contains("MDC2 damaged"), "{v}");
    let o = sb.run(&["status", "dg"]);
    assert_eq!(o.status.code(), Some(1), "{}", o.all());
    assert!(o.stdout.contains("MDC2 damaged"), "{}", o.all());
    let o = sb.run(&["check", "dg"]);
    assert_eq!(o.status.code(), Some(1), "{}", o.all());
    assert!(o.stdout.contains("PROBLEM MDC2"), "{}", o.all());
    assert!(
        o.stdout.contains(in2[0].as_str()),
        "its known object: {}",
        o.all()
    );
    let o = sb.ok(&["mblock", "read", "dg", in1[0]]);
    assert_eq!(o.stdout.len(), 3000);
    sb.fail_with(&["mblock", "read", "dg", in2[0]], &["MDC2 is damaged"]);
    sb.fail_with(
        &["mblock", "write", "dg", f.to_str().unwrap()],
        &["MDC2 is damaged"],
    );
    sb.ok(&["deactivate", "dg"]);
    assert!(sb.active_names().is_empty());
}
