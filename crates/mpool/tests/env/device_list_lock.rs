//! Changes to the device list are serialised: threads remembering paths
//! while others forget theirs lose no line (a rewrite that read the list
//! before an append must not drop that append).

use mpool::admin::rundir;
use std::path::PathBuf;

#[test]
fn concurrent_remember_and_forget_lose_no_path() {
    let _env = crate::env_lock();
    let d = tempfile::tempdir().unwrap();
    std::env::set_var("MPOOL_RUNDIR", d.path().join("run"));
    std::env::set_var("MPOOL_CONFIG", d.path().join("cfg").join("devices"));
    let dir = d.path().to_path_buf();
    let path = |t: &str, i: usize| dir.join(format!("{t}{i}.img"));
    // Paths to forget, listed up front.
    let doomed: Vec<PathBuf> = (0..200).map(|i| path("doomed", i)).collect();
    rundir::remember_paths(&doomed).unwrap();

    std::thread::scope(|s| {
        for t in 0..4 {
            let path = &path;
            s.spawn(move || {
                for i in 0..50 {
                    rundir::remember_paths(&[path(&format!("kept{t}-"), i)]).unwrap();
                }
            });
        }
        for t in 0..2 {
            let doomed = &doomed;
            s.spawn(move || {
                for p in doomed.iter().skip(t).step_by(2) {
                    rundir::forget_paths(std::slice::from_ref(p)).unwrap();
                }
            });
        }
    });

    let known = rundir::known_paths().unwrap();
    for t in 0..4 {
        for i in 0..50 {
            let p = path(&format!("kept{t}-"), i);
            assert!(known.contains(&p), "{} was lost", p.display());
        }
    }
    for p in &doomed {
        assert!(!known.contains(p), "{} was not forgotten", p.display());
    }
    assert_eq!(known.len(), 200, "{known:?}");
    // The lock leaves no file behind: the directory holds the list only.
    let names: Vec<_> = std::fs::read_dir(d.path().join("cfg"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["devices"], "{names:?}");
}
