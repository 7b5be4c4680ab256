//! `object_store_conformance`: object_store's own conformance functions
//! (its `integration` feature), called on the mpool store. Every function
//! the in-memory store's tests call is called here, plus those of the
//! local file system's tests that apply. Left out, and why:
//! - `list_paginated`: needs a `PaginatedListStore`, which neither the
//!   in-memory nor the local store implements;
//! - `signing`, `tagging`, `response_extensions`: cloud stores only
//!   (presigned URLs, object tags, HTTP response extensions);
//! - `get_nonexistent_object` is called, its error checked here (the
//!   in-memory test checks its own private error type).

use crate::common;
use object_store::integration::*;
use object_store::path::Path;
use object_store::ObjectStore;

#[test]
fn object_store_conformance() {
    conformance(mpool_object_store::DEFAULT_INLINE_MAX);
    // Every object in mblocks, the small ones too.
    conformance(0);
}

fn conformance(inline_max: u64) {
    let dir = common::scratch();
    let img = common::format(dir.path(), 512 << 20, 1 << 20);
    let open = || {
        mpool_object_store::MpoolStore::open(
            common::open_pool(&img, false),
            &mpool_object_store::StoreOptions::default()
                .catalog_bytes(4 << 20)
                .inline_max(inline_max),
        )
        .unwrap()
    };
    let store = open();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        put_get_delete_list(&store).await;
        list_with_offset_exclusivity(&store).await;
        get_opts(&store).await;
        list_uses_directories_correctly(&store).await;
        list_with_delimiter(&store).await;
        rename_and_copy(&store).await;
        copy_if_not_exists(&store).await;
        copy_rename_nonexistent_object(&store).await;
        stream_get(&store).await;
        put_opts(&store, true).await;
        multipart(&store, &store).await;
        multipart_with_opts(&store, &store).await;
        put_get_attributes(&store).await;
        multipart_put_part_out_of_order(&store, &store).await;
        multipart_race_condition(&store, true).await;
        multipart_out_of_order(&store).await;
        let err = get_nonexistent_object(&store, Some(Path::from("nonexistentname")))
            .await
            .unwrap_err();
        assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
    });
    // The same with short blocking work in place
    // (`StoreOptions::run_in_place`), in a task on a worker thread, where
    // `block_in_place` does run.
    let in_place = store.in_place(true);
    let ran = mpool_object_store::dispatch_stats().in_place;
    rt.block_on(async move {
        tokio::spawn(async move {
            let s = &in_place;
            put_get_delete_list(s).await;
            list_with_offset_exclusivity(s).await;
            get_opts(s).await;
            list_uses_directories_correctly(s).await;
            list_with_delimiter(s).await;
            rename_and_copy(s).await;
            copy_if_not_exists(s).await;
            copy_rename_nonexistent_object(s).await;
            stream_get(s).await;
            put_opts(s, true).await;
            multipart(s, s).await;
            multipart_with_opts(s, s).await;
            put_get_attributes(s).await;
            multipart_put_part_out_of_order(s, s).await;
            multipart_race_condition(s, true).await;
            multipart_out_of_order(s).await;
        })
        .await
        .expect("the suite in place");
    });
    assert!(
        mpool_object_store::dispatch_stats().in_place > ran,
        "calls ran in place"
    );
    // And through a trait object, as the in-memory tests do.
    let boxed: Box<dyn ObjectStore> = Box::new(store.clone());
    rt.block_on(async {
        put_get_delete_list(&boxed).await;
        list_with_delimiter(&boxed).await;
        rename_and_copy(&boxed).await;
        stream_get(&boxed).await;
    });
    let before = store.stats().unwrap();
    drop(boxed);
    drop(store);
    // Everything the suite left is there after a reopen, and nothing leaked.
    let store = open();
    let after = store.stats().unwrap();
    assert_eq!((before.objects, before.bytes), (after.objects, after.bytes));
    assert_eq!(after.dropped_at_open, 0);
    assert_eq!(after.freed_at_open, 0);
    common::assert_no_leak(&store);
}
