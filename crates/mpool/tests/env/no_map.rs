//! `MPOOL_NO_MAP` in the environment keeps a fully allocated file in
//! memory from being mapped (the device then reads and writes with system
//! calls); without it the same file is mapped. Skipped, loudly, where
//! `/dev/shm` is not a tmpfs.

use crate::io_common::{allocated, shm_scratch};
use mpool::dev::{Device, FileDevice, OpenOptions};

#[test]
fn mpool_no_map_turns_the_mapping_off() {
    let Some(dir) = shm_scratch("mpool_no_map_turns_the_mapping_off") else {
        return;
    };
    let _env = crate::env_lock();
    let path = allocated(dir.path(), "dev.img", 1 << 20);
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
