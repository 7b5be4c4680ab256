//! Superblock decoder: arbitrary bytes must never panic, and whatever decodes
//! must encode back to the same bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mpool::format::superblock::{Superblock, SB_SIZE};

fuzz_target!(|data: &[u8]| {
    if let Ok((sb, copy)) = Superblock::decode(data) {
        let again = sb.encode(copy);
        assert_eq!(&again[..], &data[..SB_SIZE]);
    }
    let _ = mpool::superblock::probe_bytes(data);
});
