//! The content cache: reads through it, around it (large reads) and
//! without it return the same bytes, whatever the mblock layout; an
//! overwrite, a delete, a rename or a copy never lets it serve bytes the
//! path no longer holds; it stays within its budget.

use crate::common;
use mpool_object_store::{MpoolStore, StoreOptions};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};
use std::ops::Range;

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((i.wrapping_add(seed)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect()
}

fn open(img: &std::path::Path, opts: StoreOptions) -> MpoolStore {
    MpoolStore::open(common::open_pool(img, false), &opts.catalog_bytes(4 << 20))
        .expect("open store")
}

fn is_not_found<T: std::fmt::Debug>(r: object_store::Result<T>) -> bool {
    matches!(r, Err(object_store::Error::NotFound { .. }))
}

/// The three ways a read can go: through the cache (every read), around
/// it (every read straight into one buffer), and the default (small
/// reads through it, large ones around).
fn configs() -> Vec<(&'static str, StoreOptions)> {
    vec![
        (
            "all cached",
            StoreOptions::default().cache_max_read(u64::MAX),
        ),
        ("no cache", StoreOptions::default().cache_bytes(0)),
        (
            "default, 256 KiB reads cached",
            StoreOptions::default().cache_max_read(256 << 10),
        ),
    ]
}

/// Every way of reading `p` (of content `data`) at the edges in `edges`
/// returns `data`'s bytes: whole, bounded ranges between any two edges,
/// offset and suffix ranges, many ranges at once, twice each (the second
/// time from the cache where it keeps them).
async fn check_reads(store: &MpoolStore, p: &Path, data: &[u8], edges: &[u64], what: &str) {
    for pass in 0..2 {
        let all = store.get(p).await.unwrap().bytes().await.unwrap();
        assert!(all[..] == data[..], "{what}, pass {pass}: whole object");
        for &a in edges {
            for &b in edges {
                if a < b {
                    let got = store.get_range(p, a..b).await.unwrap();
                    assert!(
                        got[..] == data[a as usize..b as usize],
                        "{what}, pass {pass}: {a}..{b}"
                    );
                }
            }
            if a >= data.len() as u64 {
                continue;
            }
            let r = store
                .get_opts(p, GetOptions::new().with_range(Some(GetRange::Offset(a))))
                .await
                .unwrap();
            let got = r.bytes().await.unwrap();
            assert!(got[..] == data[a as usize..], "{what}, pass {pass}: {a}..");
            if a > 0 {
                let r = store
                    .get_opts(p, GetOptions::new().with_range(Some(GetRange::Suffix(a))))
                    .await
                    .unwrap();
                let got = r.bytes().await.unwrap();
                assert!(
                    got[..] == data[data.len() - a as usize..],
                    "{what}, pass {pass}: last {a}"
                );
            }
        }
        let ranges: Vec<Range<u64>> = edges
            .windows(2)
            .map(|w| w[0]..w[1])
            .chain(edges.iter().map(|&e| e.saturating_sub(5000)..e))
            .filter(|r| r.start < r.end)
            .collect();
        let got = store.get_ranges(p, &ranges).await.unwrap();
        for (r, g) in ranges.iter().zip(got) {
            assert!(
                g[..] == data[r.start as usize..r.end as usize],
                "{what}, pass {pass}: get_ranges {r:?}"
            );
        }
    }
}

#[test]
fn reads_through_around_and_without_the_cache_agree() {
    let dir = common::scratch();
    let img = common::format(dir.path(), 256 << 20, 1 << 20);
    let (whole, odd) = (Path::from("whole"), Path::from("odd"));
    // Five 1 MiB mblocks; a whole read is over 4 MiB (a buffer advised
    // to be backed by huge pages).
    let data = pattern(5, 4_500_000);
    // A multipart object whose parts end inside checksum blocks: its
    // mblocks' lengths are not multiples of 4 KiB, so a read across them
    // cannot go straight into one aligned buffer everywhere.
    let parts = [
        pattern(7, 1_000_003),
        pattern(8, 777_777),
        pattern(9, 2_100_000),
        pattern(10, 4097),
    ];
    let odd_data: Vec<u8> = parts.concat();
    {
        let store = open(&img, StoreOptions::default());
        store
            .put_blocking("whole", &data, object_store::PutMode::Overwrite)
            .unwrap();
        let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
        store.multipart_blocking("odd", &refs, true).unwrap();
    }
    let cap = {
        let pool = common::open_pool(&img, true);
        pool.mblock_capacity(mpool::MediaClass::Capacity).unwrap()
    };
    let edges = [
        0,
        1,
        4095,
        4096,
        65_535,
        65_536,
        65_537,
        cap - 1,
        cap,
        cap + 1,
        2 * cap - 7,
        3_000_000,
        4_499_999,
    ];
    let odd_edges = [
        0, 5, 999_999, 1_000_003, 1_000_004, 1_500_000, 1_777_780, 1_777_781, 3_877_780, 3_881_000,
        3_881_877,
    ];
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (what, opts) in configs() {
        let store = open(&img, opts);
        rt.block_on(async {
            check_reads(&store, &whole, &data, &edges, what).await;
            check_reads(&store, &odd, &odd_data, &odd_edges, what).await;
        });
        assert_eq!(store.get_blocking("odd").unwrap(), odd_data, "{what}");
        let s = store.cache_stats();
        if s.budget == 0 {
            assert_eq!((s.hits, s.misses, s.chunks), (0, 0, 0), "{what}: {s:?}");
        } else {
            // The second pass found what the first read.
            assert!(s.hits > 0 && s.misses > 0, "{what}: {s:?}");
            assert!(s.bytes <= s.budget, "{what}: {s:?}");
        }
    }
}

#[test]
fn an_overwritten_object_is_never_served_from_the_cache() {
    let dir = common::scratch();
    let img = common::format(dir.path(), 128 << 20, 1 << 20);
    let store = open(&img, StoreOptions::default());
    let p = Path::from("o");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let old = pattern(1, 300_000);
        let new = pattern(2, 300_000);
        store.put(&p, old.clone().into()).await.unwrap();
        for _ in 0..2 {
            assert_eq!(store.get(&p).await.unwrap().bytes().await.unwrap(), old);
            assert_eq!(
                store.get_range(&p, 1000..70_000).await.unwrap(),
                &old[1000..70_000]
            );
        }
        let before = store.cache_stats();
        assert!(before.hits > 0 && before.chunks > 0, "{before:?}");
        // Same size, same path: only the bytes differ.
        store.put(&p, new.clone().into()).await.unwrap();
        assert_eq!(store.get(&p).await.unwrap().bytes().await.unwrap(), new);
        assert_eq!(
            store.get_range(&p, 1000..70_000).await.unwrap(),
            &new[1000..70_000]
        );
        let got = store
            .get_ranges(&p, &[0..10, 299_990..300_000])
            .await
            .unwrap();
        assert_eq!(got[0], &new[0..10]);
        assert_eq!(got[1], &new[299_990..]);
        // The old object's chunks went with its mblocks.
        let after = store.cache_stats();
        assert!(after.chunks <= before.chunks, "{before:?} then {after:?}");
        // A conditional overwrite (Update) too.
        let newer = pattern(3, 300_000);
        let e = store.head(&p).await.unwrap();
        store
            .put_opts(
                &p,
                PutPayload::from(newer.clone()),
                object_store::PutMode::Update(object_store::UpdateVersion {
                    e_tag: e.e_tag,
                    version: None,
                })
                .into(),
            )
            .await
            .unwrap();
        assert_eq!(
            store.get_range(&p, 1000..70_000).await.unwrap(),
            &newer[1000..70_000]
        );
        assert_eq!(store.get(&p).await.unwrap().bytes().await.unwrap(), newer);
    });
    common::assert_no_leak(&store);
}

#[test]
fn a_deleted_object_is_not_found_and_its_chunks_go() {
    let dir = common::scratch();
    let img = common::format(dir.path(), 128 << 20, 1 << 20);
    let store = open(&img, StoreOptions::default());
    let p = Path::from("d");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let data = pattern(4, 1_500_000); // two mblocks
        store.put(&p, data.clone().into()).await.unwrap();
        for _ in 0..2 {
            assert_eq!(store.get(&p).await.unwrap().bytes().await.unwrap(), data);
        }
        assert!(store.cache_stats().chunks > 0);
        store.delete(&p).await.unwrap();
        assert!(is_not_found(store.get(&p).await));
        assert!(is_not_found(store.get_range(&p, 0..10).await));
        assert!(is_not_found(
            store.get_ranges(&p, std::slice::from_ref(&(0..10))).await
        ));
        assert!(is_not_found(store.head(&p).await));
        assert_eq!(store.cache_stats().chunks, 0, "{:?}", store.cache_stats());
        // A new object at the path is read from the device.
        let other = pattern(5, 1_500_000);
        store.put(&p, other.clone().into()).await.unwrap();
        assert_eq!(store.get(&p).await.unwrap().bytes().await.unwrap(), other);
    });
    common::assert_no_leak(&store);
}

#[test]
fn renames_and_copies_read_the_right_bytes_through_the_cache() {
    let dir = common::scratch();
    let img = common::format(dir.path(), 128 << 20, 1 << 20);
    let store = open(&img, StoreOptions::default());
    let (a, b, c) = (Path::from("a"), Path::from("b"), Path::from("c"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let one = pattern(6, 200_000);
        let two = pattern(7, 200_000);
        store.put(&a, one.clone().into()).await.unwrap();
        store.put(&b, two.clone().into()).await.unwrap();
        for p in [&a, &b] {
            store.get(p).await.unwrap().bytes().await.unwrap();
        }
        // b := a by rename: b reads a's bytes (its chunks, the same
        // mblocks), a is gone.
        store.rename(&a, &b).await.unwrap();
        assert!(is_not_found(store.get(&a).await));
        let hits = store.cache_stats().hits;
        assert_eq!(store.get(&b).await.unwrap().bytes().await.unwrap(), one);
        assert!(store.cache_stats().hits > hits, "served from the cache");
        // c := b by copy, then b overwritten: c keeps the old bytes.
        store.copy(&b, &c).await.unwrap();
        store.put(&b, two.clone().into()).await.unwrap();
        assert_eq!(store.get(&b).await.unwrap().bytes().await.unwrap(), two);
        assert_eq!(store.get(&c).await.unwrap().bytes().await.unwrap(), one);
        assert_eq!(
            store.get_range(&c, 5..100_005).await.unwrap(),
            &one[5..100_005]
        );
        // A copy over an existing object replaces what it reads.
        store.copy(&b, &c).await.unwrap();
        assert_eq!(store.get(&c).await.unwrap().bytes().await.unwrap(), two);
        // A rename over an existing object as well.
        store.put(&a, one.clone().into()).await.unwrap();
        store.get(&a).await.unwrap().bytes().await.unwrap();
        store.rename(&a, &c).await.unwrap();
        assert_eq!(store.get(&c).await.unwrap().bytes().await.unwrap(), one);
        assert_eq!(store.get(&b).await.unwrap().bytes().await.unwrap(), two);
    });
    common::assert_no_leak(&store);
}

#[test]
fn the_cache_stays_within_its_budget() {
    let dir = common::scratch();
    let img = common::format(dir.path(), 256 << 20, 1 << 20);
    let budget = 512 << 10;
    let store = open(&img, StoreOptions::default().cache_bytes(budget));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let objs: Vec<(Path, Vec<u8>)> = (0..24)
            .map(|i| {
                (
                    Path::from(format!("o{i}")),
                    pattern(i, 100_000 + i as usize),
                )
            })
            .collect();
        for (p, d) in &objs {
            store.put(p, d.clone().into()).await.unwrap();
        }
        for round in 0..3 {
            for (i, (p, d)) in objs.iter().enumerate() {
                let at = (i as u64 * 997 + round * 31) % 50_000;
                let got = store.get_range(p, at..at + 40_000).await.unwrap();
                assert_eq!(got, &d[at as usize..at as usize + 40_000]);
                let s = store.cache_stats();
                assert!(s.bytes <= budget, "{s:?}");
            }
        }
        let s = store.cache_stats();
        assert!(s.evictions > 0, "{s:?}");
        store.clear_cache();
        assert_eq!(store.cache_stats().chunks, 0);
        assert_eq!(store.cache_stats().bytes, 0);
    });
}
