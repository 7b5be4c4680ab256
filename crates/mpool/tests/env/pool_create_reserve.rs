//! `Pool::create` on sparse files allocates what keeps the pool manageable
//! when the filesystem under it fills up: the superblock span of every
//! device and every zone of the pool metadata (MDC0, MDC1..N, the root
//! MDC), whole; the zones left for objects stay holes. With `preallocate`
//! the files are allocated whole.

use mpool::{CreateOptions, DeviceSpec, MediaClass, Pool};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Bytes of a file the filesystem has allocated (`st_blocks`; unwritten
/// extents count, which `SEEK_DATA` would report as holes on ext4).
fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn create_allocates_the_superblocks_and_every_metadata_zone() {
    let _env = crate::env_lock();
    let d = tempfile::tempdir().unwrap();
    std::env::set_var("MPOOL_RUNDIR", d.path().join("run"));
    std::env::set_var("MPOOL_CONFIG", d.path().join("devices"));
    let zone = 1u64 << 20;
    let (cap_size, stg_size) = (256u64 << 20, 16u64 << 20);
    let cap = DeviceSpec {
        path: d.path().join("cap.img"),
        create_size: Some(cap_size),
        zone_size: zone,
    };
    let opts = CreateOptions {
        staging: Some(DeviceSpec {
            path: d.path().join("stg.img"),
            create_size: Some(stg_size),
            zone_size: zone,
        }),
        ..CreateOptions::default()
    };
    let pool = Pool::create("rsv", &cap, &opts).unwrap();
    let used = pool
        .usage()
        .iter()
        .find(|u| u.class == MediaClass::Capacity)
        .unwrap()
        .used;
    let mdc0 = pool.superblock().mdc0;
    drop(pool);

    assert_eq!((mdc0.zone, mdc0.zones), (1, 1));
    assert_eq!(
        used,
        12 * zone,
        "MDC0, MDC1..4 and the root MDC: two zones each"
    );
    // Capacity: the superblock span and the metadata zones, nothing more
    // (without the reservation only the blocks written so far are, a few
    // KiB per zone).
    let span = 36u64 << 10;
    let got = allocated(&cap.path);
    assert!(
        got >= used + span && got < used + zone,
        "{got} bytes allocated; the metadata takes {used}, the superblocks {span}"
    );
    // Staging: its superblock span, nothing else.
    let got = allocated(&d.path().join("stg.img"));
    assert!(
        (span..zone).contains(&got),
        "staging: {got} bytes allocated"
    );
}

#[test]
fn preallocate_allocates_the_files_whole() {
    let _env = crate::env_lock();
    let d = tempfile::tempdir().unwrap();
    std::env::set_var("MPOOL_RUNDIR", d.path().join("run"));
    std::env::set_var("MPOOL_CONFIG", d.path().join("devices"));
    let cap = DeviceSpec {
        path: d.path().join("cap.img"),
        create_size: Some(64 << 20),
        zone_size: 1 << 20,
    };
    let stg = d.path().join("stg.img");
    let opts = CreateOptions {
        staging: Some(DeviceSpec {
            path: stg.clone(),
            create_size: Some(16 << 20),
            zone_size: 1 << 20,
        }),
        preallocate: true,
        ..CreateOptions::default()
    };
    drop(Pool::create("pre", &cap, &opts).unwrap());
    for p in [&cap.path, &stg] {
        let m = std::fs::metadata(p).unwrap();
        assert!(
            m.blocks() * 512 >= m.len(),
            "{}: {} of {} bytes allocated",
            p.display(),
            m.blocks() * 512,
            m.len()
        );
    }
}
