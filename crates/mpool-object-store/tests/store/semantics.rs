//! The store's own behaviours beyond the conformance functions:
//! conditional puts under concurrency, objects spanning mblocks read by
//! any range, catalog-only renames and copies sharing mblocks (freed with
//! the last holder, readers included), compaction, reopen.

use crate::common;
use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, UpdateVersion,
};

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((i.wrapping_add(seed)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect()
}

/// Objects of type `ty` in the pool.
fn objects_in_pool(store: &mpool_object_store::MpoolStore, ty: mpool::ObjType) -> usize {
    store
        .pool()
        .objects()
        .unwrap()
        .iter()
        .filter(|o| o.ty == ty)
        .count()
}

/// Mblocks in the pool, once every deferred delete is durable.
fn mblocks_in_pool(store: &mpool_object_store::MpoolStore) -> usize {
    store.pool().sync().unwrap();
    objects_in_pool(store, mpool::ObjType::Mblock)
}

#[test]
fn create_and_update_are_atomic_under_concurrency() {
    let dir = common::scratch();
    let img = common::format(dir.path(), 128 << 20, 1 << 20);
    let store = common::open_store(&img);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // Eight tasks create the same path: exactly one wins.
        let mut tasks = Vec::new();
        for t in 0..8u8 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                s.put_opts(
                    &Path::from("once"),
                    vec![t; 1000].into(),
                    PutOptions::from(PutMode::Create),
                )
                .await
            }));
        }
        let mut won = Vec::new();
        for (t, h) in tasks.into_iter().enumerate() {
            match h.await.unwrap() {
                Ok(_) => won.push(t as u8),
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(won.len(), 1, "{won:?}");
        let got = store
            .get(&Path::from("once"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&got[..], &vec![won[0]; 1000][..]);

        // A counter incremented by compare-and-swap from eight tasks: no
        // increment lost.
        store.put(&Path::from("counter"), "0".into()).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..10 {
                    loop {
                        let r = s.get(&Path::from("counter")).await.unwrap();
                        let e_tag = r.meta.e_tag.clone();
                        let n: u64 = std::str::from_utf8(&r.bytes().await.unwrap())
                            .unwrap()
                            .parse()
                            .unwrap();
                        let put = s
                            .put_opts(
                                &Path::from("counter"),
                                (n + 1).to_string().into(),
                                PutOptions::from(PutMode::Update(UpdateVersion {
                                    e_tag,
                                    version: None,
                                })),
                            )
                            .await;
                        match put {
                            Ok(_) => break,
                            Err(object_store::Error::Precondition { .. }) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            }));
        }
        for h in tasks {
            h.await.unwrap();
        }
        let got = store
            .get(&Path::from("counter"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&got[..], b"80");
    });
    common::assert_no_leak(&store);
}

#[test]
fn ranges_read_across_mblocks() {
    let dir = common::scratch();
    let img = common::format(dir.path(), 128 << 20, 1 << 20);
    let store = common::open_store(&img);
    let data = pattern(3, 3_500_000); // four 1 MiB mblocks
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let p = Path::from("big");
        store.put(&p, data.clone().into()).await.unwrap();
        assert!(store.objects("big")[0].mblocks.len() >= 4);
        let cap = store
            .pool()
            .mblock_capacity(mpool::MediaClass::Capacity)
            .unwrap();
        let edges = [0, 1, cap - 1, cap, cap + 1, 2 * cap - 7, 3_499_999];
        for &a in &edges {
            for &b in &edges {
                if a < b {
                    let got = store.get_range(&p, a..b).await.unwrap();
                    assert_eq!(&got[..], &data[a as usize..b as usize], "{a}..{b}");
                }
            }
        }
        for (range, want) in [
            (GetRange::Offset(cap - 3), &data[(cap - 3) as usize..]),
            (
                GetRange::Suffix(cap + 5),
                &data[data.len() - (cap + 5) as usize..],
            ),
        ] {
            let r = store
                .get_opts(&p, GetOptions::new().with_range(Some(range)))
                .await
                .unwrap();
            assert_eq!(&r.bytes().await.unwrap()[..], want);
        }
        let ranges: Vec<_> = (0..40u64)
            .map(|i| i * 80_000..i * 80_000 + 5000 + i)
            .collect();
        let got = store.get_ranges(&p, &ranges).await.unwrap();
        for (r, g) in ranges.iter().zip(got) {
            assert_eq!(&g[..], &data[r.start as usize..r.end as usize]);
        }
        // A streamed get comes in pieces that add up to the object.
        let mut s = store.get(&p).await.unwrap().into_stream();
        let mut all = Vec::new();
        while let Some(c) = s.next().await {
            all.extend_from_slice(&c.unwrap());
        }
        assert_eq!(all, data);
        // A range running past the end is cut at the end (object_store's
        // rule); one starting past it is refused.
        let tail = store.get_range(&p, 3_499_000..3_600_000).await.unwrap();
        assert_eq!(&tail[..], &data[3_499_000..]);
        assert!(store.get_range(&p, 3_600_000..3_600_001).await.is_err());
    });
}

#[test]
fn renames_and_copies_share_mblocks_until_the_last_holder_goes() {
    let dir = common::scratch();
    let img = common::format(dir.path(), 128 << 20, 1 << 20);
    let store = common::open_store(&img);
    let data = pattern(9, 2_500_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (a, b, c) = (Path::from("a"), Path::from("b"), Path::from("c"));
        store.put(&a, data.clone().into()).await.unwrap();
        let n = mblocks_in_pool(&store);
        store.rename(&a, &b).await.unwrap();
        store.copy(&b, &c).await.unwrap();
        // Catalog-only: no mblock written.
        assert_eq!(mblocks_in_pool(&store), n);
        assert_eq!(store.objects("b")[0].mblocks, store.objects("c")[0].mblocks);
        store.delete(&b).await.unwrap();
        assert_eq!(mblocks_in_pool(&store), n);
        // A reader holds the mblocks of an object deleted under it.
        let r = store.get(&c).await.unwrap();
        store.delete(&c).await.unwrap();
        assert_eq!(mblocks_in_pool(&store), n);
        assert_eq!(&r.bytes().await.unwrap()[..], &data[..]);
        assert_eq!(mblocks_in_pool(&store), 0);
    });
    common::assert_no_leak(&store);
}

/// Puts that find the catalog's log due for compaction together make one
/// compaction, not one each: the others wait for it and find room after
/// it (before, eight tasks made eight compactions in a row).
#[test]
fn concurrent_puts_that_find_the_log_due_share_one_compaction() {
    let dir = common::scratch();
    let img = common::format(dir.path(), 128 << 20, 1 << 20);
    let store = common::open_store(&img);
    // Overwrites of one path until the log passes half its capacity: the
    // put that crossed it checked before it appended, so the log is due
    // and nothing compacted it yet.
    let start = store.stats().unwrap().compactions;
    let v = vec![7u8; 2000];
    let mut i = 0u64;
    loop {
        let st = store.stats().unwrap();
        assert_eq!(st.compactions, start, "compacted while filling");
        if st.log_bytes > st.log_capacity / 2 {
            break;
        }
        store.put_blocking("fill", &v, PutMode::Overwrite).unwrap();
        i += 1;
        assert!(i < 100_000, "the log never filled");
    }
    let go = std::sync::Barrier::new(8);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (store, go, v) = (&store, &go, &v);
            s.spawn(move || {
                go.wait();
                store
                    .put_blocking(&format!("t{t}"), v, PutMode::Overwrite)
                    .unwrap();
            });
        }
    });
    let st = store.stats().unwrap();
    assert_eq!(st.compactions - start, 1, "{st:?}");
    assert_eq!(st.objects, 9);
    for t in 0..8 {
        assert_eq!(store.get_blocking(&format!("t{t}")).unwrap(), v);
    }
    common::assert_no_leak(&store);
}

#[test]
fn the_catalog_compacts_and_reopens() {
    let dir = common::scratch();
    let img = common::format(dir.path(), 128 << 20, 1 << 20);
    let store = common::open_store(&img);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut want = std::collections::BTreeMap::new();
    rt.block_on(async {
        // Far more records than the 4 MiB log holds: overwrites of a few
        // hundred paths.
        for i in 0..30_000u64 {
            let p = format!("k/{:04}", i % 300);
            let v = format!("value {i} {}", "x".repeat((i % 50) as usize));
            store
                .put(&Path::from(p.as_str()), v.clone().into())
                .await
                .unwrap();
            want.insert(p, v);
        }
    });
    let st = store.stats().unwrap();
    assert!(st.compactions >= 1, "{st:?}");
    assert!(st.log_bytes < st.log_capacity / 2 + (1 << 20), "{st:?}");
    drop(store);
    let store = common::open_store(&img);
    assert_eq!(store.stats().unwrap().objects, 300);
    for (p, v) in &want {
        assert_eq!(store.get_blocking(p).unwrap(), v.as_bytes(), "{p}");
    }
    common::assert_no_leak(&store);
}

#[test]
fn listings_match_the_in_memory_store() {
    let dir = common::scratch();
    let img = common::format(dir.path(), 64 << 20, 1 << 20);
    let store = common::open_store(&img);
    let mem = object_store::memory::InMemory::new();
    let paths = [
        "a", "a/b", "a/b-x", "a/b/c", "a/b/c/d", "a/b0", "a/b0/z", "a/c", "ab/x", "b/x/y/z",
        "b/x0", "a/b/ce", "c",
    ];
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for p in paths {
            store.put(&Path::from(p), "x".into()).await.unwrap();
            mem.put(&Path::from(p), "x".into()).await.unwrap();
        }
        for prefix in [
            None,
            Some("a"),
            Some("a/b"),
            Some("b"),
            Some("b/x"),
            Some("ab"),
            Some("zz"),
        ] {
            let prefix = prefix.map(Path::from);
            let ours = store.list_with_delimiter(prefix.as_ref()).await.unwrap();
            let theirs = mem.list_with_delimiter(prefix.as_ref()).await.unwrap();
            let names = |r: &object_store::ListResult| {
                (
                    r.objects
                        .iter()
                        .map(|o| o.location.to_string())
                        .collect::<Vec<_>>(),
                    r.common_prefixes
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>(),
                )
            };
            assert_eq!(names(&ours), names(&theirs), "prefix {prefix:?}");
            let l = |s: futures_util::stream::BoxStream<
                'static,
                object_store::Result<object_store::ObjectMeta>,
            >| async move {
                s.map(|m| m.unwrap().location.to_string())
                    .collect::<Vec<_>>()
                    .await
            };
            assert_eq!(
                l(store.list(prefix.as_ref())).await,
                l(mem.list(prefix.as_ref())).await
            );
            let off = Path::from("a/b");
            assert_eq!(
                l(store.list_with_offset(prefix.as_ref(), &off)).await,
                l(mem.list_with_offset(prefix.as_ref(), &off)).await
            );
        }
    });
}

#[test]
fn a_store_opens_once_per_process() {
    let dir = common::scratch();
    let img = common::format(dir.path(), 64 << 20, 1 << 20);
    let pool = common::open_pool(&img, false);
    let opts = mpool_object_store::StoreOptions::default();
    let a = mpool_object_store::MpoolStore::open(pool.clone(), &opts).unwrap();
    match mpool_object_store::MpoolStore::open(pool.clone(), &opts) {
        Err(mpool_object_store::StoreError::Busy(name)) => assert_eq!(name, "default"),
        other => panic!("a second open of one store: {other:?}"),
    }
    // Another name is another store; the first again once closed.
    let b =
        mpool_object_store::MpoolStore::open(pool.clone(), &opts.clone().name("other")).unwrap();
    drop((a, b));
    mpool_object_store::MpoolStore::open(pool, &opts).unwrap();
}

/// MDC objects in the pool (the root MDC and every catalog).
fn mdcs_in_pool(store: &mpool_object_store::MpoolStore) -> usize {
    objects_in_pool(store, mpool::ObjType::Mdc)
}

#[test]
fn the_catalog_grows_past_its_first_size_and_reopens() {
    let dir = common::scratch();
    let img = common::format(dir.path(), 128 << 20, 1 << 20);
    let opts = mpool_object_store::StoreOptions::default().catalog_bytes(1 << 20);
    let open = || mpool_object_store::MpoolStore::open(common::open_pool(&img, false), &opts);
    let store = open().unwrap();
    let first = store.catalog_mdc().unwrap();
    let first_cap = store.stats().unwrap().log_capacity;
    let mdcs = mdcs_in_pool(&store);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut want = std::collections::BTreeMap::new();
    rt.block_on(async {
        // A live state of about 3 MiB of records (inline objects of 1000
        // to 2000 bytes), with overwrites and deletes on the way, against
        // a first log of 1 MiB.
        for i in 0..3000u64 {
            let p = format!("grow/{:05}", i % 2000);
            if i % 7 == 3 {
                store.delete(&Path::from(p.as_str())).await.unwrap();
                want.remove(&p);
                continue;
            }
            let v = pattern(i, 1000 + (i % 1000) as usize);
            store
                .put(&Path::from(p.as_str()), v.clone().into())
                .await
                .unwrap();
            want.insert(p, v);
        }
        // Some objects in mblocks too.
        for i in 0..20u64 {
            let p = format!("big/{i}");
            let v = pattern(i, 300_000);
            store
                .put(&Path::from(p.as_str()), v.clone().into())
                .await
                .unwrap();
            want.insert(p, v);
        }
    });
    let st = store.stats().unwrap();
    assert!(st.growths >= 1, "{st:?}");
    assert!(st.log_capacity >= 2 * first_cap, "{st:?}");
    assert!(st.log_bytes <= st.log_capacity, "{st:?}");
    assert_ne!(store.catalog_mdc().unwrap(), first);
    // The catalogs it grew out of are gone: as many MDCs as before.
    assert_eq!(mdcs_in_pool(&store), mdcs);
    let now = store.catalog_mdc().unwrap();
    drop(store);
    let store = open().unwrap();
    assert_eq!(store.catalog_mdc().unwrap(), now);
    assert_eq!(store.stats().unwrap().objects, want.len() as u64);
    for (p, v) in &want {
        assert_eq!(&store.get_blocking(p).unwrap(), v, "{p}");
    }
    // It keeps taking updates after the reopen, and compacts in place.
    rt.block_on(async {
        for i in 0..500u64 {
            let p = format!("grow/{:05}", i);
            store.delete(&Path::from(p.as_str())).await.unwrap();
        }
    });
    store.compact().unwrap();
    assert_eq!(mdcs_in_pool(&store), mdcs);
    common::assert_no_leak(&store);
}
