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
    let d = crate::scratch_env();
    let zone = 1u64 << 20;
    let (cap_size, stg_size) = (256u64 << 20, 16u64 << 20);
    let cap = crate::cap_spec(d.path(), cap_size, zone);
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
    let d = crate::scratch_env();
    let cap = crate::cap_spec(d.path(), 64 << 20, 1 << 20);
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

/// Copy `from` to `to` leaving every all-zero 4 KiB block a hole (as
/// `cp --sparse=always` does): the pool file of a pool created before
/// create allocated its metadata, or copied sparse.
fn sparse_copy(from: &Path, to: &Path) {
    use std::os::unix::fs::FileExt;
    let data = std::fs::read(from).unwrap();
    let f = std::fs::File::create(to).unwrap();
    f.set_len(data.len() as u64).unwrap();
    for (i, b) in data.chunks(4096).enumerate() {
        if b.iter().any(|&x| x != 0) {
            f.write_all_at(b, i as u64 * 4096).unwrap();
        }
    }
}

#[test]
fn a_read_write_open_allocates_the_metadata_of_a_sparse_copy() {
    let _env = crate::env_lock();
    let d = crate::scratch_env();
    let zone = 1u64 << 20;
    let cap = crate::cap_spec(d.path(), 64 << 20, zone);
    let pool = Pool::create("old", &cap, &CreateOptions::default()).unwrap();
    let used = pool.usage()[0].used;
    drop(pool);
    let copy = d.path().join("copy.img");
    sparse_copy(&cap.path, &copy);
    std::fs::rename(&copy, &cap.path).unwrap();
    assert!(allocated(&cap.path) < used, "the copy is not sparse");

    // Read-only opens change nothing; a read-write open allocates.
    let ro = mpool::OpenOptions {
        read_only: true,
        ..Default::default()
    };
    drop(Pool::open("old", &ro).unwrap());
    assert!(allocated(&cap.path) < used);
    drop(Pool::open("old", &mpool::OpenOptions::default()).unwrap());
    let got = allocated(&cap.path);
    // MDC0 and MDC1 (the root MDC is a user object, allocated as it is written).
    assert!(
        got >= used - 2 * zone && got < used + zone,
        "{got} bytes allocated; the metadata takes {used}"
    );
}
