//! Mapping anything but committed mblocks is a typed error, and so is a
//! map over the address-space budget; a failed map call leaves nothing
//! mapped and no zone held.

use super::common::{commit, map_vmas, mem_pool, pattern, serial};
use mpool::{mcache, Advice, Error, MblockId, MediaClass, ObjType, ObjectError, ObjectId};

#[test]
fn mapping_other_than_committed_mblocks_fails_typed() {
    let _s = serial();
    let pool = mem_pool(64, 64 << 10);
    let good = commit(&pool, &pattern(1, 5000));
    let pending = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(pending, b"not yet").unwrap();
    let deleted = commit(&pool, &pattern(2, 100));
    pool.mblock_delete(deleted).unwrap();
    let before = (mcache::stats().maps, map_vmas());

    match pool.mcache_map(&[good, pending], Advice::Warm) {
        Err(Error::Object(ObjectError::NotCommitted(id))) => assert_eq!(id, pending.object_id()),
        other => panic!("uncommitted: {other:?}"),
    }
    match pool.mcache_map(&[deleted, good], Advice::Warm) {
        Err(Error::Object(ObjectError::NotFound(id))) => assert_eq!(id, deleted.object_id()),
        other => panic!("deleted: {other:?}"),
    }
    // A non-mblock ID cannot become an MblockId: the type is checked.
    let mlog = pool.mlog_alloc(MediaClass::Capacity, 64 << 10).unwrap();
    let raw: ObjectId = mlog.object_id();
    assert_eq!(raw.ty(), ObjType::Mlog);
    assert!(MblockId::try_from(raw).is_err());
    assert!(raw.to_string().parse::<MblockId>().is_err());
    assert_eq!(
        (mcache::stats().maps, map_vmas()),
        before,
        "a failed map left something"
    );

    // The good one maps, alone.
    let map = pool.mcache_map(&[good], Advice::Warm).unwrap();
    assert_eq!(map.len(), 1);
    assert_eq!(map.id(0), Some(good));
    assert_eq!(map.slice(0).unwrap(), &pattern(1, 5000)[..]);
    // Out of range indexes and ranges are errors, not panics.
    assert!(matches!(map.slice(1), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        map.range(0, 10..5001),
        Err(Error::Object(ObjectError::ReadOutOfRange { .. }))
    ));
    assert!(matches!(
        map.load(0, 4000..6000),
        Err(Error::Object(ObjectError::ReadOutOfRange { .. }))
    ));
    // An empty map is allowed.
    assert!(pool.mcache_map(&[], Advice::Cold).unwrap().is_empty());
}

#[test]
fn a_map_over_the_address_budget_fails_typed() {
    let _s = serial();
    let pool = mem_pool(64, 64 << 10);
    let ids: Vec<_> = (0..8).map(|i| commit(&pool, &pattern(i, 60_000))).collect();
    let reserved = mcache::stats().reserved_bytes;
    // Room for 4 objects of 60,000 bytes (15 pages each) and no more.
    mcache::set_address_budget(reserved + 4 * 15 * 4096).unwrap();
    let r = pool.mcache_map(&ids, Advice::Hot);
    let small = pool.mcache_map(&ids[..4], Advice::Hot);
    mcache::set_address_budget(16 << 40).unwrap();
    match r {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("address-space budget"), "{m}"),
        other => panic!("over budget: {other:?}"),
    }
    let small = small.unwrap();
    assert_eq!(small.slice(3).unwrap(), &pattern(3, 60_000)[..]);
}
