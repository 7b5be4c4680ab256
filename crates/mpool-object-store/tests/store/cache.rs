//! The content cache: reads through it, around it (large reads) and
//! without it return the same bytes, whatever the mblock layout; an
//! overwrite, a delete, a rename or a copy never lets it serve bytes the
//! path no longer holds; it stays within its budget.

use crate::common;
use mpool::mcache::MemoryPressure;
use mpool_object_store::{MpoolStore, StoreOptions};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((i.wrapping_add(seed)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect()
}

/// A memory source of a machine with `limit` bytes, `used` of them in
/// use (a simulated pressure).
fn machine(limit: u64, used: Arc<AtomicU64>) -> impl Fn() -> Option<MemoryPressure> + Send + Sync {
    move || {
        Some(MemoryPressure {
            limit,
            used: used.load(Ordering::Relaxed),
            cgroup: false,
        })
    }
}

/// Open the store with `opts` on a simulated machine with memory to
/// spare (the tests' caches must not shrink with the test machine's
/// load), unless `opts` has a memory source of its own.
fn open(img: &std::path::Path, opts: StoreOptions) -> MpoolStore {
    open_with(img, opts.memory_source(machine(64 << 30, Arc::default())))
}

fn open_with(img: &std::path::Path, opts: StoreOptions) -> MpoolStore {
    MpoolStore::open(common::open_pool(img, false), &opts.catalog_bytes(4 << 20))
        .expect("open store")
}

fn is_not_found<T: std::fmt::Debug>(r: object_store::Result<T>) -> bool {
    matches!(r, Err(object_store::Error::NotFound { .. }))
}

/// The ways a read can go: through the cache in chunks (every read),
/// without a cache (every read straight into one buffer), small reads in
/// chunks and large ones whole (cached whole, or not).
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
        (
            "256 KiB reads cached, larger reads not",
            StoreOptions::default()
                .cache_max_read(256 << 10)
                .cache_large_reads(false),
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
    // Ten 1 MiB mblocks; a whole read is over 4 MiB (a buffer advised
    // to be backed by huge pages) and over 8 MiB (read on several
    // threads, in pieces).
    let data = pattern(5, 9_500_000);
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

/// An object of `len` bytes read whole twice: the second read is served
/// from the cache as the buffer the first one read (a large read), and
/// returns the same bytes.
async fn read_twice(store: &MpoolStore, p: &Path, data: &[u8]) {
    let before = store.cache_stats();
    let got = store.get(p).await.unwrap().bytes().await.unwrap();
    assert!(got[..] == data[..], "{p}: first read");
    drop(got);
    let mid = store.cache_stats();
    let got = store.get(p).await.unwrap().bytes().await.unwrap();
    assert!(got[..] == data[..], "{p}: second read");
    let after = store.cache_stats();
    assert_eq!(
        after.large_hits,
        mid.large_hits + 1,
        "{before:?}\n{mid:?}\n{after:?}"
    );
    assert_eq!(
        after.misses, mid.misses,
        "no device read: {mid:?}\n{after:?}"
    );
}

#[test]
fn large_reads_are_served_from_the_cache_and_never_stale() {
    let dir = common::scratch();
    let img = common::format(dir.path(), 256 << 20, 1 << 20);
    // Reads over 4 MiB (the default) are large: read whole, cached whole.
    let store = open(&img, StoreOptions::default());
    let (p, c, d) = (Path::from("big"), Path::from("copy"), Path::from("moved"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let old = pattern(11, 6_000_000); // six 1 MiB mblocks and some
        let new = pattern(12, 6_000_000);
        store.put(&p, old.clone().into()).await.unwrap();
        read_twice(&store, &p, &old).await;
        assert_eq!(store.cache_stats().large_inserts, 1);
        // A large range inside it, and a large range with a small one.
        let hits = store.cache_stats().large_hits;
        let got = store.get_range(&p, 100..5_000_000).await.unwrap();
        assert!(got[..] == old[100..5_000_000]);
        let got = store
            .get_ranges(&p, &[0..4_500_000, 10..20, 5_999_000..6_000_000])
            .await
            .unwrap();
        assert!(got[0][..] == old[..4_500_000]);
        assert_eq!(got[1], &old[10..20]);
        assert_eq!(got[2], &old[5_999_000..]);
        assert_eq!(store.cache_stats().large_hits, hits + 2);
        // Overwritten: the new bytes, read from the device, then cached.
        let chunks = store.cache_stats().chunks;
        store.put(&p, new.clone().into()).await.unwrap();
        let hits = store.cache_stats().large_hits;
        let got = store.get(&p).await.unwrap().bytes().await.unwrap();
        assert!(got[..] == new[..], "the overwrite's bytes");
        assert_eq!(store.cache_stats().large_hits, hits, "not from the cache");
        drop(got);
        read_twice(&store, &p, &new).await;
        // The old object's chunks went with its mblocks.
        assert!(
            store.cache_stats().chunks <= chunks,
            "{:?}",
            store.cache_stats()
        );
        // A copy and a rename share the mblocks: served from the cache.
        store.copy(&p, &c).await.unwrap();
        store.rename(&c, &d).await.unwrap();
        assert!(is_not_found(store.get(&c).await));
        let hits = store.cache_stats().large_hits;
        let got = store.get(&d).await.unwrap().bytes().await.unwrap();
        assert!(got[..] == new[..]);
        assert_eq!(store.cache_stats().large_hits, hits + 1);
        drop(got);
        // Deleted: not found, though its bytes were cached; the copy stays.
        store.delete(&p).await.unwrap();
        assert!(is_not_found(store.get(&p).await));
        assert!(is_not_found(store.get_range(&p, 0..5_000_000).await));
        let got = store.get(&d).await.unwrap().bytes().await.unwrap();
        assert!(got[..] == new[..]);
        drop(got);
        // Emptied, the cache gives the large buffers nobody holds back as
        // spares: the next large read reuses one, of another object, and
        // returns its own bytes in it.
        store.put(&p, old.clone().into()).await.unwrap();
        store.clear_cache();
        let reuses = store.cache_stats().spare_reuses;
        let got = store.get(&p).await.unwrap().bytes().await.unwrap();
        assert!(
            got[..] == old[..],
            "a spare buffer holds the new read's bytes"
        );
        assert_eq!(
            store.cache_stats().spare_reuses,
            reuses + 1,
            "{:?}",
            store.cache_stats()
        );
    });
    common::assert_no_leak(&store);
}

#[test]
fn the_budget_shrinks_under_memory_pressure_and_grows_back() {
    let dir = common::scratch();
    let img = common::format(dir.path(), 256 << 20, 1 << 20);
    let used = Arc::new(AtomicU64::new(0));
    let (limit, cap) = (1u64 << 30, 16u64 << 20);
    let store = open_with(
        &img,
        StoreOptions::default()
            .cache_bytes(cap)
            .memory_source(machine(limit, used.clone())),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let objs: Vec<(Path, Vec<u8>)> = (0..8)
        .map(|i| (Path::from(format!("o{i}")), pattern(20 + i, 1_500_000)))
        .collect();
    let read_all = |store: &MpoolStore| {
        rt.block_on(async {
            for (p, d) in &objs {
                let got = store.get(p).await.unwrap().bytes().await.unwrap();
                assert!(got[..] == d[..], "{p}");
            }
        })
    };
    rt.block_on(async {
        for (p, d) in &objs {
            store.put(p, d.clone().into()).await.unwrap();
        }
    });
    read_all(&store);
    let s = store.check_memory();
    assert_eq!((s.cap, s.budget), (cap, cap), "{s:?}");
    assert!(s.bytes > 8 << 20, "12 MB read, all cached: {s:?}");
    // The rest of the machine grows to 4 MiB short of the watermark (7/8
    // of the machine); the cache's own bytes count as used too.
    let mark = limit - limit / 8;
    used.store(mark - (4 << 20) + s.bytes, Ordering::Relaxed);
    let s = store.check_memory();
    assert!(s.budget <= 4 << 20, "{s:?}");
    assert!(s.bytes <= 4 << 20, "{s:?}");
    assert!(s.pressure_evictions > 0, "{s:?}");
    // Every byte is still there, read from the device again.
    read_all(&store);
    assert!(store.cache_stats().bytes <= 4 << 20);
    // All the memory in use: the cache keeps nothing.
    used.store(limit, Ordering::Relaxed);
    let s = store.check_memory();
    assert_eq!((s.budget, s.bytes), (0, 0), "{s:?}");
    read_all(&store);
    let s = store.cache_stats();
    assert_eq!((s.bytes, s.chunks), (0, 0), "{s:?}");
    // The pressure goes: the budget is the cap again, and reads fill it.
    used.store(0, Ordering::Relaxed);
    assert_eq!(store.check_memory().budget, cap);
    read_all(&store);
    read_all(&store);
    let s = store.cache_stats();
    assert!(s.bytes > 8 << 20 && s.bytes <= cap, "{s:?}");
}

#[test]
fn without_a_size_the_cache_takes_a_share_of_the_memory_limit() {
    let dir = common::scratch();
    let img = common::format(dir.path(), 64 << 20, 1 << 20);
    let used = Arc::new(AtomicU64::new(0));
    let store = open_with(
        &img,
        StoreOptions::default().memory_source(machine(8 << 30, used.clone())),
    );
    let s = store.check_memory();
    let share = (8u64 << 30) / mpool_object_store::AUTO_SHARE;
    assert_eq!((s.cap, s.budget), (share, share), "{s:?}");
    // Nearly all of the machine in use: the budget is what is left below
    // the watermark.
    used.store((7u64 << 30) - (100 << 20), Ordering::Relaxed);
    assert_eq!(store.check_memory().budget, 100 << 20);
    // An explicit size is the cap, however much memory there is.
    drop(store);
    let store = open_with(
        &img,
        StoreOptions::default()
            .cache_bytes(32 << 20)
            .memory_source(machine(1 << 40, Arc::default())),
    );
    assert_eq!(store.check_memory().budget, 32 << 20);
    // Without a source that knows, the fallback.
    drop(store);
    let store = open_with(&img, StoreOptions::default().memory_source(|| None));
    assert_eq!(
        store.check_memory().budget,
        mpool_object_store::FALLBACK_CAP
    );
}
