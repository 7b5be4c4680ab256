//! Concurrent creates of one name: exactly one succeeds; the others are
//! refused as "already exists" and leave their devices as they were (or
//! removed, when they created them).

use crate::common;
use common::*;

#[test]
fn concurrent_creates_of_one_name() {
    const N: usize = 6;
    let sb = Sandbox::new();
    // Even-numbered devices exist; odd-numbered ones the create makes.
    let mut before = Vec::new();
    for i in (0..N).step_by(2) {
        sparse(sb.path(&format!("d{i}.img")), 64 << 20);
        before.push((i, fingerprint(sb.path(&format!("d{i}.img")))));
    }
    let outs: Vec<Out> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..N)
            .map(|i| {
                let sb = &sb;
                s.spawn(move || {
                    let dev = sb.p(&format!("d{i}.img"));
                    let mut args = vec!["create", "dup", &dev, "--mblock-size", "1MiB"];
                    if i % 2 == 1 {
                        args.extend(["--size", "64MiB"]);
                    }
                    sb.run(&args)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won: Vec<usize> = (0..N).filter(|&i| outs[i].status.success()).collect();
    assert_eq!(won.len(), 1, "{outs:#?}");
    for (i, o) in outs.iter().enumerate().filter(|(i, _)| *i != won[0]) {
        assert!(
            o.stderr.contains("a pool named 'dup' already exists"),
            "{i}: {}",
            o.all()
        );
        let p = sb.path(&format!("d{i}.img"));
        match before.iter().find(|(j, _)| *j == i) {
            Some((_, f)) => assert_unchanged(&p, f, "refused create"),
            None => assert!(!p.exists(), "{} left behind", p.display()),
        }
    }
    assert_eq!(sb.active_names(), ["dup"]);
    assert_eq!(sb.known_paths().len(), 1, "{:?}", sb.known_paths());
    let v = sb.json(&["scan", "--json"]);
    assert_eq!(v["report"]["pools"].as_array().unwrap().len(), 1, "{v}");
}
