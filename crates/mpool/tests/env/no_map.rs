//! `MPOOL_NO_MAP` in the environment keeps a fully allocated file in
//! memory from being mapped (the device then reads and writes with system
//! calls); without it the same file is mapped. Skipped, loudly, where
//! `/dev/shm` is not a tmpfs.

use mpool::dev::{Device, FileDevice, OpenOptions};

#[test]
fn mpool_no_map_turns_the_mapping_off() {
    let shm = std::path::Path::new("/dev/shm");
    if !rustix::fs::statfs(shm).is_ok_and(|s| s.f_type == 0x0102_1994) {
        eprintln!("SKIPPED mpool_no_map_turns_the_mapping_off: /dev/shm is not a tmpfs here");
        return;
    }
    let _env = crate::env_lock();
    let dir = tempfile::Builder::new()
        .prefix("mpool-nomap-")
        .tempdir_in(shm)
        .unwrap();
    let path = dir.path().join("dev.img");
    let f = std::fs::File::create(&path).unwrap();
    rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, 1 << 20).unwrap();
    drop(f);
    let open = || FileDevice::open(&path, &OpenOptions::default()).unwrap();
    std::env::set_var("MPOOL_NO_MAP", "1");
    let off = open();
    std::env::remove_var("MPOOL_NO_MAP");
    assert!(!off.is_mapped(), "mapped with MPOOL_NO_MAP set");
    assert_ne!(off.info().engine, "mmap");
    let on = open();
    assert!(on.is_mapped(), "not mapped without MPOOL_NO_MAP");
    // Both see each other's writes: one file.
    let mut w = mpool::io::AlignedBuf::new(4096, 4096);
    w.fill(0xa5);
    on.write_at(4096, &mut w).unwrap();
    let mut r = off.alloc_buf(4096);
    off.read_at(4096, &mut r).unwrap();
    assert!(r[..] == w[..]);
}
