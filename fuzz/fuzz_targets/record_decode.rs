//! Pool-metadata record decoder: arbitrary bytes never panic, and whatever
//! decodes encodes back to exactly the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mpool::format::record::CatalogRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = CatalogRecord::decode(data) {
        assert_eq!(r.encode(), data);
    }
});
