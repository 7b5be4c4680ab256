//! EIO on mblock data: a failed write is a device error (at the write, or
//! at the commit for content held back until then), later writes and the
//! commit are refused (only abort is left), the pool stays usable; a
//! failed read is a device error, never data.

use mpool::dev::{DeviceRef, FaultDevice};
use mpool::{Error, MediaClass, ObjectError, Pool, StorageError};
use std::sync::Arc;

const ZONE: u64 = 64 * 1024;

#[test]
fn eio_on_mblock_write_and_read() {
    let fault = Arc::new(FaultDevice::new(64 * ZONE, 4096));
    let dev: DeviceRef = fault.clone();
    Pool::format_on("eio", &[(Arc::clone(&dev), MediaClass::Capacity, ZONE)], "").unwrap();
    let pool = Pool::open_on(vec![Arc::clone(&dev)], false).unwrap();

    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    let zone = u64::from(pool.object_props(id).unwrap().zone);
    fault.fail_writes(zone * ZONE..(zone + 1) * ZONE);
    // A small mblock's content waits for its commit, which writes it with
    // its checksum table: the commit meets the error.
    pool.mblock_write(id, &[7u8; 10_000]).unwrap();
    let e = pool.mblock_commit(id).unwrap_err();
    assert!(matches!(e, Error::Storage(StorageError::Dev(_))), "{e:?}");
    fault.clear_failures();
    assert!(matches!(
        pool.mblock_write(id, &[7u8; 10]),
        Err(Error::Object(ObjectError::WriteFailed(_)))
    ));
    assert!(matches!(
        pool.mblock_commit(id),
        Err(Error::Object(ObjectError::WriteFailed(_)))
    ));
    pool.mblock_abort(id).unwrap();

    let ok = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(ok, &[9u8; 5000]).unwrap();
    pool.mblock_commit(ok).unwrap();
    let z = u64::from(pool.object_props(ok).unwrap().zone);
    fault.fail_reads(z * ZONE..z * ZONE + 4096);
    let mut b = vec![0u8; 100];
    assert!(matches!(
        pool.mblock_read(ok, 0, &mut b),
        Err(Error::Storage(StorageError::Dev(_)))
    ));
    assert!(matches!(
        pool.mblock_verify(ok),
        Err(Error::Storage(StorageError::Dev(_)))
    ));
    fault.clear_failures();
    pool.mblock_read(ok, 4000, &mut b).unwrap();
    assert!(b.iter().all(|&x| x == 9));
    // Bit rot in the content is caught by the scrub.
    fault.flip_bit(z * ZONE + 17, 3);
    assert!(matches!(
        pool.mblock_verify(ok),
        Err(Error::Object(ObjectError::Checksum { .. }))
    ));
    let rep = pool.check(&mut |_, _| {}).unwrap();
    assert_eq!(rep.problems.len(), 1, "{:?}", rep.problems);
}
