//! A pool on a sparse file of the test's own (in the target's scratch
//! directory, where O_DIRECT works), opened on the device directly: no run
//! directory, no device list.

use mpool::dev::{DeviceRef, FileDevice, OpenOptions};
use mpool::{MediaClass, Pool};
use mpool_object_store::{MpoolStore, StoreOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A scratch directory.
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mpool-objstore-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("scratch dir")
}

/// Format a pool of `size` bytes with `zone`-byte mblocks at `dir/pool.img`.
pub fn format(dir: &Path, size: u64, zone: u64) -> PathBuf {
    let path = dir.join("pool.img");
    let dev: DeviceRef = Arc::new(
        FileDevice::open(
            &path,
            &OpenOptions {
                create_size: Some(size),
                ..OpenOptions::default()
            },
        )
        .expect("device"),
    );
    Pool::format_on("objstore", &[(dev, MediaClass::Capacity, zone)], "").expect("format");
    path
}

/// Open the pool at `path`.
pub fn open_pool(path: &Path, read_only: bool) -> Pool {
    let dev: DeviceRef = Arc::new(
        FileDevice::open(
            path,
            &OpenOptions {
                read_only,
                ..OpenOptions::default()
            },
        )
        .expect("device"),
    );
    Pool::open_on(vec![dev], read_only).expect("open pool")
}

/// Open the store on the pool at `path`.
pub fn open_store(path: &Path) -> MpoolStore {
    MpoolStore::open(
        open_pool(path, false),
        &StoreOptions::default().catalog_bytes(4 << 20),
    )
    .expect("open store")
}

/// Every committed mblock of the pool is held by an object of the store
/// (deletes, overwrites and aborted uploads left nothing behind), after
/// the deferred deletes are made durable.
pub fn assert_no_leak(store: &MpoolStore) {
    store.pool().sync().expect("sync");
    let mut held: Vec<_> = store
        .objects("")
        .into_iter()
        .flat_map(|o| o.mblocks)
        .map(mpool::ObjectId::from)
        .collect();
    held.sort();
    held.dedup();
    let mut in_pool: Vec<_> = store
        .pool()
        .objects()
        .expect("objects")
        .into_iter()
        .filter(|p| p.ty == mpool::ObjType::Mblock)
        .map(|p| p.id)
        .collect();
    in_pool.sort();
    assert_eq!(
        in_pool, held,
        "mblocks of the pool vs mblocks the store holds"
    );
}
