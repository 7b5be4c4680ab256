//! Helpers shared by the pool-level integration tests.
#![allow(dead_code)]

use mpool::dev::DeviceRef;
use mpool::{MediaClass, Pool};

/// Format a pool named `name` with a capacity and a staging device, both
/// with zones of `zone` bytes, and open it read-write.
pub fn two_class_pool(name: &str, cap: DeviceRef, stg: DeviceRef, zone: u64) -> Pool {
    Pool::format_on(
        name,
        &[
            (cap.clone(), MediaClass::Capacity, zone),
            (stg.clone(), MediaClass::Staging, zone),
        ],
        "",
    )
    .unwrap();
    Pool::open_on(vec![cap, stg], false).unwrap()
}
