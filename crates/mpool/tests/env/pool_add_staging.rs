//! `Pool::add` makes a staging class usable at once: objects go to the class
//! asked for, a class the pool lacks is a typed error, and after a reopen
//! everything is where it was put.

use mpool::DeviceSpec;
use mpool::{CreateOptions, Error, MediaClass, OpenOptions, Pool, PoolError};

#[test]
fn staging_added_to_an_open_pool_is_usable_at_once() {
    let _env = crate::env_lock();
    let d = crate::scratch_env();
    let cap = crate::cap_spec(d.path(), 64 << 20, 1 << 20);
    let pool = Pool::create("st", &cap, &CreateOptions::default()).unwrap();
    assert!(matches!(
        pool.mblock_alloc(MediaClass::Staging),
        Err(Error::Pool(PoolError::NoSuchClass(MediaClass::Staging)))
    ));
    assert!(matches!(
        pool.mlog_alloc(MediaClass::Staging, 1 << 20),
        Err(Error::Pool(PoolError::NoSuchClass(MediaClass::Staging)))
    ));

    let stg = DeviceSpec {
        path: d.path().join("stg.img"),
        create_size: Some(16 << 20),
        zone_size: 256 << 10,
    };
    pool.add(MediaClass::Staging, &stg, false).unwrap();
    let fast = pool.mblock_alloc(MediaClass::Staging).unwrap();
    pool.mblock_write(fast, b"hot data").unwrap();
    let p = pool.mblock_commit(fast).unwrap();
    // Its zone, less the sector its checksum table takes.
    let sector = u64::from(pool.device(MediaClass::Staging).unwrap().sector());
    assert_eq!(
        (p.class, p.capacity),
        (MediaClass::Staging, (256 << 10) - sector)
    );
    assert_eq!(
        p.capacity,
        pool.mblock_capacity(MediaClass::Staging).unwrap()
    );
    let slow = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(slow, b"cold data").unwrap();
    assert_eq!(
        pool.mblock_commit(slow).unwrap().class,
        MediaClass::Capacity
    );
    let log = pool.mlog_alloc(MediaClass::Staging, 300 << 10).unwrap();
    assert_eq!(
        pool.mlog_commit(log).unwrap().capacity,
        512 << 10,
        "two whole 256 KiB zones"
    );
    let used = pool
        .usage()
        .iter()
        .find(|u| u.class == MediaClass::Staging)
        .unwrap()
        .used;
    assert_eq!(used, 3 * (256 << 10));
    assert!(matches!(
        pool.add(MediaClass::Staging, &stg, false),
        Err(Error::Pool(PoolError::ClassExists(MediaClass::Staging)))
    ));
    drop(pool);

    let pool = Pool::open("st", &OpenOptions::default()).unwrap();
    assert_eq!(
        pool.classes(),
        vec![MediaClass::Capacity, MediaClass::Staging]
    );
    assert_eq!(pool.object_props(fast).unwrap().class, MediaClass::Staging);
    let mut b = [0u8; 8];
    pool.mblock_read(fast, 0, &mut b).unwrap();
    assert_eq!(&b, b"hot data");
    let used = pool
        .usage()
        .iter()
        .find(|u| u.class == MediaClass::Staging)
        .unwrap()
        .used;
    assert_eq!(used, 3 * (256 << 10), "space map rebuilt per class");
}

/// `add` is all or nothing: when the pool's superblocks cannot list the
/// new member (the capacity device fails the write), the new device file is
/// gone, the device list does not name it, the pool keeps one class and
/// keeps working, and a reopen finds it as it was.
#[test]
fn a_failed_add_leaves_nothing_behind() {
    use mpool::dev::{CrashMode, DeviceRef, FaultDevice};
    use std::sync::Arc;
    let _env = crate::env_lock();
    let d = crate::scratch_env();
    const ZONE: u64 = 64 * 1024;
    let cap = Arc::new(FaultDevice::new(72 * ZONE, 4096));
    let c: DeviceRef = cap.clone();
    Pool::format_on("addfail", &[(c.clone(), MediaClass::Capacity, ZONE)], "").unwrap();
    let pool = Pool::open_on(vec![c], false).unwrap();
    let before = pool.superblock();
    let stg = DeviceSpec {
        path: d.path().join("stg.img"),
        create_size: Some(16 << 20),
        zone_size: ZONE,
    };
    // The next operation on the capacity device (the first write of its
    // superblock update) fails; the rollback's writes succeed.
    cap.fail_op(cap.stats().ops + 1);
    let e = pool.add(MediaClass::Staging, &stg, false).unwrap_err();
    assert!(matches!(e, Error::Storage(_)), "the device error: {e:?}");
    assert!(!stg.path.exists(), "the device file it created is removed");
    let listed = std::fs::read_to_string(d.path().join("devices")).unwrap_or_default();
    assert!(!listed.contains("stg.img"), "device list: {listed}");
    assert_eq!(pool.classes(), [MediaClass::Capacity]);
    let after = pool.superblock();
    assert_eq!(after.members, before.members);
    assert!(
        after.generation > before.generation + 1,
        "rolled back at a higher generation"
    );
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(id, b"still works").unwrap();
    pool.mblock_commit(id).unwrap();
    drop(pool);
    let c: DeviceRef = Arc::new(cap.reboot(CrashMode::DropAll));
    let pool = Pool::open_on(vec![c], false).unwrap();
    assert_eq!(pool.classes(), [MediaClass::Capacity]);
    assert_eq!(pool.superblock().members, before.members);
    // And the same add then succeeds.
    pool.add(MediaClass::Staging, &stg, false).unwrap();
    assert_eq!(pool.classes().len(), 2);
}
