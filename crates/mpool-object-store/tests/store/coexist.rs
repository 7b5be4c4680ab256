//! An object store and event streams in one pool: each keeps its catalog
//! in an MDC of its own, found from its own record in the user root MDC,
//! and neither touches the other's records or objects, across a reopen.

use crate::common;
use object_store::path::Path;
use object_store::ObjectStoreExt;

#[test]
fn an_object_store_and_streams_share_a_pool() {
    let dir = common::scratch();
    let img = common::format(dir.path(), 128 << 20, 1 << 20);
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    {
        let store = common::open_store(&img);
        let pool = store.pool().clone();
        pool.stream_create("events", &mpool::StreamOptions::default())
            .unwrap();
        rt.block_on(async {
            store
                .put(&Path::from("data/big"), big.clone().into())
                .await
                .unwrap();
            store
                .put(&Path::from("small"), b"tiny".to_vec().into())
                .await
                .unwrap();
        });
        let s = pool.stream_open("events").unwrap();
        for r in [&b"one"[..], b"two", b"three"] {
            s.append(r).unwrap();
        }
        s.close().unwrap();
        common::assert_no_leak(&store);
    }
    let store = common::open_store(&img);
    rt.block_on(async {
        let got = store.get(&Path::from("data/big")).await.unwrap();
        assert_eq!(got.bytes().await.unwrap().as_ref(), &big[..]);
        let got = store.get(&Path::from("small")).await.unwrap();
        assert_eq!(got.bytes().await.unwrap().as_ref(), b"tiny");
    });
    let pool = store.pool().clone();
    assert_eq!(pool.streams().unwrap(), vec!["events".to_string()]);
    let s = pool.stream_open("events").unwrap();
    assert_eq!(s.read(0).unwrap(), b"one");
    assert_eq!(s.read(2).unwrap(), b"three");
    s.close().unwrap();
    common::assert_no_leak(&store);
}
