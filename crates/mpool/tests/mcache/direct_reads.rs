//! Direct reads (`mblock_read`, `mblock_read_batch`, `MblockReader`)
//! never populate the map cache, and reads through a map do not go
//! through them: the two stay apart.

use super::common::{commit, mem_pool, pattern, serial};
use mpool::io::AlignedBuf;
use mpool::{mcache, Advice, AlignedRead, MblockRead};

#[test]
fn direct_reads_leave_the_maps_alone() {
    let _s = serial();
    let pool = mem_pool(64, 1 << 20);
    let ids: Vec<_> = (0..3)
        .map(|i| commit(&pool, &pattern(60 + i, 200_000)))
        .collect();
    let map = pool.mcache_map(&ids, Advice::WillNeed).unwrap();
    let fills = mcache::stats().fills;

    let mut buf = vec![0u8; 200_000];
    pool.mblock_read(ids[0], 0, &mut buf).unwrap();
    assert_eq!(buf, pattern(60, 200_000));
    let mut b = vec![0u8; 4096];
    pool.mblock_read_batch(
        &mut [MblockRead {
            id: ids[1],
            offset: 8192,
            buf: &mut b,
        }],
        1,
    )
    .unwrap();
    let mut r = pool.mblock_reader(4).unwrap();
    r.push(AlignedRead {
        id: ids[2],
        offset: 0,
        buf: AlignedBuf::new(65536, 4096),
    })
    .unwrap();
    let done = r.next().unwrap().unwrap();
    assert_eq!(&done.buf[..], &pattern(62, 200_000)[..65536]);

    assert_eq!(map.resident_bytes(), 0, "a direct read filled the map");
    assert_eq!(mcache::stats().fills, fills);
    // And the map still loads on its own.
    assert_eq!(&*map.get(1).unwrap(), &pattern(61, 200_000)[..]);
    assert_eq!(
        map.object_resident_bytes(1),
        200_000u64.div_ceil(4096) * 4096
    );
}
