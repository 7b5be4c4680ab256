//! Multipart uploads: each part is written into mblocks of its own, left
//! uncommitted (they vanish on a crash); `complete` makes them one object
//! with one catalog record (and commits them), `abort` frees them, and an
//! upload dropped without either aborts them too.

use crate::catalog::Mode;
use crate::data::abort_all;
use crate::record::{Attr, Extent};
use crate::{dispatch, lock, msg, MpoolStore};
use async_trait::async_trait;
use object_store::multipart::PartId;
use object_store::path::Path;
use object_store::{MultipartId, MultipartUpload, PutPayload, PutResult, UploadPart};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The parts of one upload.
#[derive(Debug)]
pub struct State {
    pool: mpool::Pool,
    parts: Vec<Option<Vec<Extent>>>,
    /// Completed or aborted: a part finishing now frees its mblocks.
    closed: bool,
}

impl Drop for State {
    fn drop(&mut self) {
        for p in self.parts.iter().flatten() {
            abort_all(&self.pool, p);
        }
    }
}

type Shared = Arc<Mutex<State>>;

/// Uploads of the [`object_store::multipart::MultipartStore`] interface,
/// by ID.
#[derive(Debug, Default)]
pub struct Uploads {
    next: u64,
    by_id: HashMap<String, (String, Shared, Vec<Attr>)>,
}

fn new_state(store: &MpoolStore) -> Shared {
    Arc::new(Mutex::new(State {
        pool: store.pool().clone(),
        parts: Vec::new(),
        closed: false,
    }))
}

async fn write_part(
    store: &MpoolStore,
    state: Shared,
    idx: usize,
    data: PutPayload,
) -> object_store::Result<()> {
    let (ext, _) = store.write_payload(data).await?;
    let mut st = lock(&state);
    if st.closed {
        abort_all(&st.pool, &ext);
        return Err(msg("the multipart upload was completed or aborted".into()));
    }
    if st.parts.len() <= idx {
        st.parts.resize(idx + 1, None);
    }
    if let Some(old) = st.parts[idx].replace(ext) {
        abort_all(&st.pool, &old);
    }
    Ok(())
}

async fn finish(
    store: &MpoolStore,
    path: &Path,
    state: &Shared,
    attrs: Vec<Attr>,
) -> object_store::Result<PutResult> {
    let parts = {
        let mut st = lock(state);
        if st.closed {
            return Err(msg(
                "the multipart upload was already completed or aborted".into()
            ));
        }
        if let Some(i) = st.parts.iter().position(Option::is_none) {
            return Err(msg(format!("part {i} of the multipart upload is missing")));
        }
        st.closed = true;
        std::mem::take(&mut st.parts)
    };
    let ext: Vec<Extent> = parts.into_iter().flatten().flatten().collect();
    let size = ext.iter().map(|e| e.len).sum();
    store
        .install(path, ext, None, size, attrs, Mode::Overwrite)
        .await
}

fn close(state: &Shared) {
    let mut st = lock(state);
    st.closed = true;
    let parts = std::mem::take(&mut st.parts);
    for p in parts.iter().flatten() {
        abort_all(&st.pool, p);
    }
}

/// A multipart upload of [`object_store::ObjectStore::put_multipart`].
#[derive(Debug)]
pub struct Upload {
    store: MpoolStore,
    path: Path,
    attrs: Vec<Attr>,
    state: Shared,
    next: usize,
}

impl Upload {
    pub(crate) fn new(store: MpoolStore, path: Path, attrs: Vec<Attr>) -> Upload {
        let state = new_state(&store);
        Upload {
            store,
            path,
            attrs,
            state,
            next: 0,
        }
    }
}

#[async_trait]
impl MultipartUpload for Upload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let idx = self.next;
        self.next += 1;
        let store = self.store.clone();
        let state = self.state.clone();
        Box::pin(async move { write_part(&store, state, idx, data).await })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        finish(&self.store, &self.path, &self.state, self.attrs.clone()).await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        let state = self.state.clone();
        dispatch::run(self.store.in_place, move || {
            close(&state);
            Ok(())
        })
        .await
    }
}

pub(crate) fn create(store: &MpoolStore, path: &Path, attrs: Vec<Attr>) -> MultipartId {
    let mut u = lock(&store.uploads);
    u.next += 1;
    let id = u.next.to_string();
    u.by_id
        .insert(id.clone(), (path.to_string(), new_state(store), attrs));
    id
}

fn find(
    store: &MpoolStore,
    path: &Path,
    id: &MultipartId,
) -> object_store::Result<(Shared, Vec<Attr>)> {
    match lock(&store.uploads).by_id.get(id) {
        Some((p, s, a)) if *p == path.as_ref() => Ok((s.clone(), a.clone())),
        _ => Err(object_store::Error::NotFound {
            path: path.to_string(),
            source: format!("no multipart upload {id} for this path").into(),
        }),
    }
}

pub(crate) async fn put_part(
    store: &MpoolStore,
    path: &Path,
    id: &MultipartId,
    idx: usize,
    data: PutPayload,
) -> object_store::Result<PartId> {
    let (state, _) = find(store, path, id)?;
    write_part(store, state, idx, data).await?;
    Ok(PartId {
        content_id: idx.to_string(),
    })
}

pub(crate) async fn complete(
    store: &MpoolStore,
    path: &Path,
    id: &MultipartId,
) -> object_store::Result<PutResult> {
    let (state, attrs) = find(store, path, id)?;
    lock(&store.uploads).by_id.remove(id);
    finish(store, path, &state, attrs).await
}

pub(crate) async fn abort(
    store: &MpoolStore,
    path: &Path,
    id: &MultipartId,
) -> object_store::Result<()> {
    let (state, _) = find(store, path, id)?;
    lock(&store.uploads).by_id.remove(id);
    dispatch::run(store.in_place, move || {
        close(&state);
        Ok(())
    })
    .await
}
