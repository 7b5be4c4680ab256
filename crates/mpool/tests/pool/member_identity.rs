//! A member is its pool UUID and device UUID: two devices carrying the same
//! member (a byte-for-byte copy) are refused before anything is written, a
//! member smaller than its superblock records is refused with both sizes,
//! and a superblock copy rewritten at a read-write open is reported by
//! `check` as a repair.

use mpool::dev::{Device, DeviceRef, MemDevice};
use mpool::{Error, MediaClass, Pool, PoolError};
use std::sync::Arc;

const ZONE: u64 = 64 * 1024;
const SIZE: u64 = 72 * ZONE;

fn formatted(name: &str) -> Arc<MemDevice> {
    let dev = Arc::new(MemDevice::new(SIZE, 4096));
    let d: DeviceRef = dev.clone();
    Pool::format_on(name, &[(d, MediaClass::Capacity, ZONE)], "").unwrap();
    dev
}

#[test]
fn a_copy_of_a_member_is_refused_and_neither_device_is_written() {
    let orig = formatted("twin");
    let img = orig.image();
    let copy = Arc::new(MemDevice::from_image(img.clone(), 4096));
    for read_only in [true, false] {
        let devs: Vec<DeviceRef> = vec![orig.clone(), copy.clone()];
        match Pool::open_on(devs, read_only) {
            Err(Error::Pool(PoolError::DuplicateMember {
                pool,
                class,
                first,
                second,
                ..
            })) => {
                assert_eq!(pool, "twin");
                assert_eq!(class, MediaClass::Capacity);
                assert_ne!(first, second);
            }
            other => panic!(
                "expected DuplicateMember, got {:?}",
                other.map(|_| "an open pool")
            ),
        }
        assert!(orig.image() == img, "the original was written");
        assert!(copy.image() == img, "the copy was written");
    }
    // Either one alone is the pool.
    Pool::open_on(vec![copy as DeviceRef], true).unwrap();
}

#[test]
fn a_shrunk_member_is_refused_with_both_sizes() {
    let orig = formatted("shrunk");
    let mut img = orig.image();
    img.truncate((SIZE - 8 * ZONE) as usize);
    let small = Arc::new(MemDevice::from_image(img.clone(), 4096));
    assert_eq!(small.size(), SIZE - 8 * ZONE);
    for read_only in [true, false] {
        match Pool::open_on(vec![small.clone() as DeviceRef], read_only) {
            Err(Error::Pool(PoolError::MemberShrunk {
                recorded, actual, ..
            })) => assert_eq!((recorded, actual), (SIZE, SIZE - 8 * ZONE)),
            other => panic!(
                "expected MemberShrunk, got {:?}",
                other.map(|_| "an open pool")
            ),
        }
        assert!(small.image() == img, "the shrunk device was written");
    }
    // A device that grew is fine.
    let mut img = orig.image();
    img.resize((SIZE + 8 * ZONE) as usize, 0);
    let big = Arc::new(MemDevice::from_image(img, 4096));
    Pool::open_on(vec![big as DeviceRef], false).unwrap();
}

#[test]
fn check_reports_a_superblock_copy_rewritten_at_open() {
    let orig = formatted("mended");
    let mut img = orig.image();
    // Inside copy 1's checksummed range.
    img[32768 + 100] ^= 0x40;
    let dev = Arc::new(MemDevice::from_image(img, 4096));
    let pool = Pool::open_on(vec![dev.clone() as DeviceRef], false).unwrap();
    let rep = pool.check(&mut |_, _| {}).unwrap();
    assert!(rep.problems.is_empty(), "{rep:?}");
    assert_eq!(rep.repairs.len(), 1, "{rep:?}");
    assert!(rep.repairs[0].object.starts_with("superblock"), "{rep:?}");
    assert!(rep.repairs[0].repair.contains("copy 1"), "{rep:?}");
    drop(pool);
    // Repaired: the next open has nothing to repair.
    let pool = Pool::open_on(vec![dev as DeviceRef], false).unwrap();
    let rep = pool.check(&mut |_, _| {}).unwrap();
    assert!(rep.repairs.is_empty() && rep.problems.is_empty(), "{rep:?}");
}
