//! Arbitrary bytes fed to the mlog decoders: the header, block and record
//! header decoders, the image decoder (recovery scan + read), and
//! `Mlog::open` + read over a fault device holding the bytes. Must never
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mpool::dev::{Device, FaultDevice};
use mpool::mlog::format::{BlockHeader, LogHeader, RecordHeader};
use mpool::mlog::{decode_image, Mlog};
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let _ = LogHeader::decode(data);
    let _ = BlockHeader::decode(data);
    let _ = RecordHeader::decode(data);
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let sector: u32 = if sel & 1 == 0 { 512 } else { 4096 };
    let id = u64::from(sel >> 1);
    let _ = decode_image(rest, sector, id);
    // A device image: the bytes, padded to whole sectors (at least 3).
    let s = sector as usize;
    let mut img = rest.to_vec();
    let len = img.len().div_ceil(s).max(3) * s;
    img.resize(len, 0);
    let d: Arc<dyn Device> = Arc::new(FaultDevice::from_image(img, sector));
    if let Ok(log) = Mlog::open(d, 0..len as u64, id) {
        if let Ok(rd) = log.reader() {
            for r in rd {
                if r.is_err() {
                    break;
                }
            }
        }
        let _ = log.append(b"fuzz", true);
    }
});
