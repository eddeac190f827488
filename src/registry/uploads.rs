//! Resumable blob uploads. All state lives in storage under
//! `_uploads/<id>/` (data, `startedat`, saved hash states), so an upload
//! survives a registry restart; memory only caches the running hash.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use super::digest::{Algorithm, Digest, Digester};
use super::error::{ErrorCode, RegistryError, Result};
use super::name::RepoName;
use super::{Registry, now_rfc3339, paths};
use crate::storage::{ByteStream, FileWriter, StorageError};

/// Bytes gathered from the request body before each storage write.
const WRITE_CHUNK: usize = 1024 * 1024;
/// Upload states cached in memory before idle ones are dropped (they are
/// then restored from storage or recomputed).
const MAX_CACHED_STATES: usize = 4096;

/// The running hash of an upload: valid for the first `offset` bytes.
#[derive(Default)]
pub(crate) struct UploadState {
    hash: Option<(u64, Digester)>,
}

/// One async lock per upload in progress (concurrent PATCHes of one upload
/// are serialised), holding its cached hash state.
#[derive(Default)]
pub(crate) struct UploadLocks {
    map: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<UploadState>>>>,
}

impl UploadLocks {
    fn get(&self, id: &str) -> Arc<tokio::sync::Mutex<UploadState>> {
        let mut map = self.map.lock();
        if map.len() >= MAX_CACHED_STATES {
            map.retain(|_, v| Arc::strong_count(v) > 1);
        }
        map.entry(id.to_string()).or_default().clone()
    }

    fn forget(&self, id: &str) {
        self.map.lock().remove(id);
    }

    /// Uploads with a request in progress.
    pub fn in_flight(&self) -> usize {
        self.map
            .lock()
            .values()
            .filter(|v| Arc::strong_count(v) > 1)
            .count()
    }
}

/// Validates an upload id taken from a URL (disco issues UUIDs).
fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(RegistryError::upload_unknown(id))
    }
}

fn body_error(e: std::io::Error) -> RegistryError {
    RegistryError::new(
        ErrorCode::BlobUploadInvalid,
        format!("reading the request body failed: {e}"),
    )
}

fn range_error(message: String) -> RegistryError {
    RegistryError::new(ErrorCode::RangeInvalid, message)
}

impl Registry {
    /// Number of uploads with a request in progress.
    pub fn uploads_in_flight(&self) -> usize {
        self.uploads.in_flight()
    }

    /// Starts an upload session; returns its id.
    pub async fn start_upload(&self, name: &RepoName) -> Result<String> {
        self.check_push(name)?;
        let id = uuid::Uuid::new_v4().to_string();
        self.driver
            .put_content(
                &paths::upload_started_at(name, &id),
                Bytes::from(now_rfc3339()),
            )
            .await?;
        self.driver
            .writer(&paths::upload_data(name, &id), false)
            .await?
            .close()
            .await?;
        Ok(id)
    }

    /// Bytes received so far by an upload.
    pub async fn upload_size(&self, name: &RepoName, id: &str) -> Result<u64> {
        check_id(id)?;
        match self.driver.stat(&paths::upload_data(name, id)).await {
            Ok(info) => Ok(info.size),
            Err(e) if e.is_not_found() => Err(RegistryError::upload_unknown(id)),
            Err(e) => Err(e.into()),
        }
    }

    /// Appends a chunk. `range` is the request's `Content-Range` (inclusive
    /// start and end); a chunk that does not start at the current size is
    /// refused with 416 before anything is written. Returns the new size.
    pub async fn patch_upload(
        &self,
        name: &RepoName,
        id: &str,
        range: Option<(u64, u64)>,
        body: ByteStream,
    ) -> Result<u64> {
        self.check_push(name)?;
        let lock = self.uploads.get(id);
        let mut state = lock.lock().await;
        let size = self.upload_size(name, id).await?;
        if let Some((start, end)) = range
            && (start != size || end < start)
        {
            return Err(range_error(format!(
                "chunk {start}-{end} out of order: the upload has {size} bytes, the next chunk must start at {size}"
            )));
        }
        let (new_size, result) = self.append(name, id, size, &mut state, body, false).await?;
        result?;
        if let Some((start, end)) = range
            && new_size - start != end - start + 1
        {
            return Err(range_error(format!(
                "Content-Range {start}-{end} does not match the {} bytes received",
                new_size - start
            )));
        }
        Ok(new_size)
    }

    /// Completes an upload with an optional final chunk: verifies `digest`,
    /// moves the data into the blob store and links it into `name`.
    /// A digest mismatch cancels the upload and nothing becomes visible.
    pub async fn finish_upload(
        &self,
        name: &RepoName,
        id: &str,
        digest: &Digest,
        body: Option<ByteStream>,
    ) -> Result<u64> {
        self.check_push(name)?;
        let lock = self.uploads.get(id);
        let mut state = lock.lock().await;
        let size = self.upload_size(name, id).await?;
        let body = body.unwrap_or_else(|| futures::stream::empty().boxed());
        let (size, result) = self.append(name, id, size, &mut state, body, true).await?;
        result?;
        let actual = match state.hash.take() {
            Some((offset, h)) if offset == size && h.algorithm() == digest.algorithm() => {
                h.finish()
            }
            _ => self.hash_upload(name, id, digest.algorithm()).await?,
        };
        if &actual != digest {
            drop(state);
            self.remove_upload(name, id).await;
            return Err(RegistryError::digest_invalid(format!(
                "provided digest {digest} does not match the uploaded content ({actual}, {size} bytes)"
            )));
        }
        let fence = self.gc.fence.read().await;
        self.gc.record([digest]);
        let data = paths::upload_data(name, id);
        if self.stat_global_blob(digest).await?.is_none() {
            self.driver.rename(&data, &paths::blob_data(digest)).await?;
        }
        self.link_blob(name, digest).await?;
        drop(fence);
        drop(state);
        self.remove_upload(name, id).await;
        Ok(size)
    }

    /// Cancels an upload and deletes its data.
    pub async fn cancel_upload(&self, name: &RepoName, id: &str) -> Result<()> {
        let lock = self.uploads.get(id);
        let _state = lock.lock().await;
        self.upload_size(name, id).await?;
        match self.driver.delete(&paths::upload_dir(name, id)).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => return Err(RegistryError::upload_unknown(id)),
            Err(e) => return Err(e.into()),
        }
        drop(_state);
        self.uploads.forget(id);
        Ok(())
    }

    async fn remove_upload(&self, name: &RepoName, id: &str) {
        if let Err(e) = self.driver.delete(&paths::upload_dir(name, id)).await
            && !e.is_not_found()
        {
            tracing::warn!(upload = id, error = %e, "could not remove finished upload");
        }
        self.uploads.forget(id);
    }

    /// The SHA-256 state at `size`: cached, restored from storage, or `None`.
    async fn hash_at(
        &self,
        name: &RepoName,
        id: &str,
        size: u64,
        state: &mut UploadState,
    ) -> Option<Digester> {
        if let Some((offset, h)) = state.hash.take()
            && offset == size
        {
            return Some(h);
        }
        if size == 0 {
            return Some(Digester::new(Algorithm::Sha256));
        }
        let saved = self
            .driver
            .get_content(&paths::upload_hash_state(name, id, size))
            .await
            .ok()?;
        Digester::restore(Algorithm::Sha256, &saved)
    }

    /// Streams `body` onto the upload's data, hashing as it goes. Returns
    /// the new size and the outcome of reading the body: bytes that
    /// arrived before a body error are kept (the client can resume).
    /// With `commit`, the data file is finalised.
    async fn append(
        &self,
        name: &RepoName,
        id: &str,
        size: u64,
        state: &mut UploadState,
        mut body: ByteStream,
        commit: bool,
    ) -> Result<(u64, Result<()>)> {
        let mut hash = self.hash_at(name, id, size, state).await;
        let data_path = paths::upload_data(name, id);
        let mut writer: Box<dyn FileWriter> = self.driver.writer(&data_path, true).await?;
        if writer.size() != size {
            let _ = writer.close().await;
            return Err(RegistryError::internal(format!(
                "upload {id}: storage reports {} bytes, expected {size}",
                size
            )));
        }
        let mut buf = BytesMut::with_capacity(WRITE_CHUNK);
        let mut outcome = Ok(());
        let mut write_err: Option<StorageError> = None;
        loop {
            let next = body.next().await;
            let flush = match &next {
                Some(Ok(chunk)) => {
                    buf.extend_from_slice(chunk);
                    buf.len() >= WRITE_CHUNK
                }
                _ => true,
            };
            if flush && !buf.is_empty() {
                let chunk: Bytes = buf.split().freeze();
                if let Some(h) = hash.as_mut() {
                    h.update(&chunk);
                }
                if let Err(e) = writer.write(chunk).await {
                    write_err = Some(e);
                    break;
                }
                buf.reserve(WRITE_CHUNK);
            }
            match next {
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    outcome = Err(body_error(e));
                    break;
                }
                None => break,
            }
        }
        let new_size = writer.size();
        if let Some(e) = write_err {
            let _ = writer.close().await;
            return Err(e.into());
        }
        if commit && outcome.is_ok() {
            writer.commit().await?;
        } else {
            writer.close().await?;
        }
        if let Some(h) = hash {
            if new_size != size {
                let saved = Bytes::from(h.save());
                if let Err(e) = self
                    .driver
                    .put_content(&paths::upload_hash_state(name, id, new_size), saved)
                    .await
                {
                    tracing::warn!(upload = id, error = %e, "could not save upload hash state");
                } else if size > 0 {
                    let _ = self
                        .driver
                        .delete(&paths::upload_hash_state(name, id, size))
                        .await;
                }
            }
            state.hash = Some((new_size, h));
        }
        Ok((new_size, outcome))
    }

    /// Hashes the upload's data from storage (after a restart, or for
    /// SHA-512).
    async fn hash_upload(&self, name: &RepoName, id: &str, algo: Algorithm) -> Result<Digest> {
        let mut s = self.driver.reader(&paths::upload_data(name, id), 0).await?;
        let mut h = Digester::new(algo);
        while let Some(chunk) = s.next().await {
            h.update(
                &chunk.map_err(|e| RegistryError::internal(format!("reading upload {id}: {e}")))?,
            );
        }
        Ok(h.finish())
    }
}
