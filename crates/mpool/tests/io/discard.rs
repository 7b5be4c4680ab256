//! Discard on a regular file punches a hole: the range reads back as zeroes,
//! its blocks are freed, the neighbours and the file size are untouched.

use crate::io_common;

use io_common::{engines, open_new, pattern, read_back, scratch};
use mpool::dev::Device;
use std::os::unix::fs::MetadataExt;

const MIB: u64 = 1 << 20;

#[test]
fn discard_punches_a_hole() {
    for e in engines() {
        let dir = scratch();
        let (path, dev) = open_new(dir.path(), "discard", 8 * MIB, e);
        let mut data = pattern(42, 3 * MIB as usize, 4096);
        dev.write_at(MIB, &mut data).unwrap();
        dev.flush().unwrap();
        let before = std::fs::metadata(&path).unwrap().blocks() * 512;
        assert!(before >= 3 * MIB, "data allocated ({before} bytes)");

        dev.discard(2 * MIB, MIB).expect("discard");
        // Zero-length discard is a no-op.
        dev.discard(0, 0).expect("empty discard");

        let got = read_back(&dev, MIB, 3 * MIB as usize);
        let m = MIB as usize;
        assert!(got[..m] == data[..m], "data before the hole kept");
        assert!(
            got[m..2 * m].iter().all(|&b| b == 0),
            "hole reads as zeroes"
        );
        assert!(got[2 * m..] == data[2 * m..], "data after the hole kept");

        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 8 * MIB, "size kept");
        let after = meta.blocks() * 512;
        assert!(after + MIB <= before, "blocks freed: {before} -> {after}");

        // The hole can be written again.
        let mut again = pattern(43, MIB as usize, 4096);
        dev.write_at(2 * MIB, &mut again).unwrap();
        assert!(read_back(&dev, 2 * MIB, MIB as usize)[..] == again[..]);
    }
}
