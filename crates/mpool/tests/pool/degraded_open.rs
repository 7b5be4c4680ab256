//! A metadata container whose records are damaged does not make the whole
//! pool unusable: the pool opens degraded, the objects of the healthy MDCs
//! stay readable, the damaged MDC and the objects it is known to hold are
//! reported (health, `check`), reads of its objects fail with a typed error
//! naming it, and the pool takes no changes.

use mpool::dev::{DeviceRef, FaultDevice};
use mpool::{Error, MblockId, MediaClass, MetadataError, Pool};
use std::collections::BTreeMap;
use std::sync::Arc;

const ZONE: u64 = 64 * 1024;

fn commit(pool: &Pool, data: &[u8]) -> MblockId {
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(id, data).unwrap();
    pool.mblock_commit(id).unwrap();
    id
}

#[test]
fn a_damaged_mdc_opens_the_pool_degraded() {
    // 160 zones: two MDCs (one per 64 zones).
    let dev = Arc::new(FaultDevice::new(160 * ZONE, 4096));
    let d: DeviceRef = dev.clone();
    Pool::format_on("degraded", &[(d.clone(), MediaClass::Capacity, ZONE)], "").unwrap();
    let pool = Pool::open_on(vec![d], false).unwrap();
    let mut by_mdc: BTreeMap<u8, Vec<(MblockId, Vec<u8>)>> = BTreeMap::new();
    // Two threads: a thread takes its IDs in runs from one MDC, and the
    // second thread's run is in the other.
    let made: Vec<(MblockId, Vec<u8>)> = std::thread::scope(|s| {
        let pool = &pool;
        let one = |from: u8| {
            (from..from + 6)
                .map(|i| {
                    let data = vec![i; 1000 + usize::from(i)];
                    (commit(pool, &data), data)
                })
                .collect::<Vec<_>>()
        };
        let first = one(0);
        let second = s.spawn(move || one(6)).join().unwrap();
        first.into_iter().chain(second).collect()
    });
    for (id, data) in made {
        by_mdc
            .entry(id.object_id().mdc())
            .or_default()
            .push((id, data));
    }
    assert_eq!(by_mdc.len(), 2, "objects in both MDCs: {:?}", by_mdc.keys());
    pool.close().unwrap();

    // Rot in MDC2: every copy of the commit record of its second object
    // (its ID bytes), with later flush sets after it, so the damage is
    // proven durable (the bit rot rule) and the log cannot be trusted.
    let (victim, _) = by_mdc[&2][1].clone();
    let needle = victim.object_id().raw().to_le_bytes();
    let img = dev.durable_image();
    let hits: Vec<usize> = img
        .windows(8)
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert!(!hits.is_empty());
    for &h in &hits {
        dev.poke(h as u64 + 7, &[img[h + 7] ^ 0x20]);
    }

    for read_only in [true, false] {
        let d: DeviceRef = Arc::new(FaultDevice::from_image(dev.durable_image(), 4096));
        let pool = Pool::open_on(vec![d], read_only).expect("opens degraded");
        let damaged = pool.damaged_mdcs();
        assert_eq!(damaged.len(), 1, "{damaged:?}");
        assert_eq!(damaged[0].mdc, 2);
        // What MDC2 is known to hold: its objects before the damaged record.
        assert!(
            damaged[0].objects.contains(&by_mdc[&2][0].0.object_id()),
            "{damaged:?}"
        );
        let health = pool.health();
        assert!(
            health.starts_with("degraded") && health.contains("MDC2 damaged"),
            "{health}"
        );
        // MDC1's objects: readable, exact.
        for (id, data) in &by_mdc[&1] {
            let mut buf = vec![0u8; data.len()];
            pool.mblock_read(*id, 0, &mut buf).unwrap();
            assert_eq!(&buf, data);
        }
        // MDC2's: a typed error naming the MDC.
        for (id, _) in &by_mdc[&2] {
            let mut buf = vec![0u8; 10];
            match pool.mblock_read(*id, 0, &mut buf) {
                Err(Error::Metadata(MetadataError::Damaged { mdc: 2, .. })) => {}
                other => panic!("read of {id} in the damaged MDC: {other:?}"),
            }
        }
        // No changes.
        match pool.mblock_alloc(MediaClass::Capacity) {
            Err(Error::Metadata(MetadataError::Damaged { mdc: 2, .. })) => {}
            Err(Error::Pool(mpool::PoolError::ReadOnly(_))) if read_only => {}
            other => panic!("alloc in a degraded pool: {other:?}"),
        }
        // check names the MDC and its known objects.
        let rep = pool.check(&mut |_, _| {}).unwrap();
        assert!(
            rep.problems.iter().any(|p| p.object == "MDC2"),
            "{:?}",
            rep.problems
        );
        assert!(
            rep.problems
                .iter()
                .any(|p| p.object == by_mdc[&2][0].0.to_string()),
            "{:?}",
            rep.problems
        );
        assert_eq!(rep.mblocks as usize, by_mdc[&1].len());
    }
}
