//! Streaming writes through multipart uploads.
//!
//! A writer buffers at most one `chunksize` part, uploading each full part
//! as it fills; a file that never fills a part is one `PutObject`.
//!
//! **Resuming.** The storage contract makes bytes visible at the path once
//! `close` returns (the registry stats upload files for their size), and an
//! in-progress multipart upload is not an object. So `close` completes the
//! upload, exactly like `commit`: the object at the key holds everything
//! written so far, and there is no hidden state to lose or leak. A later
//! `writer(path, append = true)` starts a new multipart upload whose first
//! parts are server-side copies (`UploadPartCopy`, pinned to the object's
//! ETag) of the existing object, then appends after them; an existing
//! object smaller than S3's 5 MiB minimum part is instead read back into
//! the part buffer. The copy happens only once something is written, so
//! opening for append just to learn the size costs one `HeadObject`.
//! Completing the new upload replaces the object atomically: readers see
//! the old or the new content, never a torn one.
//!
//! CNCF Distribution keeps the multipart upload open across `Close` and
//! finds it again with `ListMultipartUploads` + `ListParts`; its in-progress
//! file is invisible until `Commit`, and an undersized last part forces the
//! same complete-and-copy step on resume. Ours trades one server-side copy
//! per resumed append (no client bandwidth) for visibility and no dangling
//! uploads.
//!
//! A write whose part upload fails poisons the writer: nothing it wrote is
//! kept (`close` aborts and reports the failure) and the object keeps its
//! previous content, so `size()` is back to the size at open.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::types::CompletedPart;
use bytes::{Bytes, BytesMut};

use super::config::{MAX_PARTS, MIN_PART_SIZE};
use super::error::{error_status, map_sdk_error};
use super::{Inner, ObjectMeta};
use crate::storage::{FileWriter, Result, StorageError};

/// A writer to one key.
pub(crate) struct S3Writer {
    inner: Arc<Inner>,
    path: String,
    key: String,
    chunk: usize,
    buf: BytesMut,
    /// Open multipart upload and the parts completed so far.
    upload: Option<(String, Vec<CompletedPart>)>,
    /// Existing content to carry over, not yet copied or read back.
    base: Option<ObjectMeta>,
    /// Size at open (what the object holds if this writer fails).
    opened_size: u64,
    size: u64,
    /// Something must be written at close (new, truncated, or appended to).
    dirty: bool,
    /// An upload failed: nothing from this writer may be completed.
    poisoned: Option<String>,
    finished: bool,
}

impl S3Writer {
    /// Opens a writer; with `append`, continues the existing object.
    pub(crate) async fn open(inner: Arc<Inner>, path: &str, append: bool) -> Result<Self> {
        let key = inner.key(path);
        let chunk = usize::try_from(inner.cfg.chunksize).unwrap_or(usize::MAX);
        let mut w = Self {
            inner,
            path: path.to_string(),
            key,
            chunk,
            buf: BytesMut::new(),
            upload: None,
            base: None,
            opened_size: 0,
            size: 0,
            dirty: true,
            poisoned: None,
            finished: false,
        };
        if append && let Some(meta) = w.inner.head(path, &w.key).await? {
            w.size = meta.size;
            w.opened_size = meta.size;
            w.dirty = false;
            if meta.size > 0 {
                w.base = Some(meta);
            }
        }
        Ok(w)
    }

    fn check_usable(&self) -> Result<()> {
        if self.finished {
            return Err(StorageError::Other(format!(
                "{}: writer already closed",
                self.path
            )));
        }
        if let Some(why) = &self.poisoned {
            return Err(StorageError::Other(format!(
                "{}: an earlier write failed ({why}); nothing written since the writer was \
                 opened was kept",
                self.path
            )));
        }
        Ok(())
    }

    /// Brings the existing content into this upload (append mode).
    async fn take_base(&mut self) -> Result<()> {
        let Some(base) = self.base.take() else {
            return Ok(());
        };
        if base.size < MIN_PART_SIZE {
            // Too small to be a part of its own: read it back.
            let out = self
                .inner
                .client
                .get_object()
                .bucket(&self.inner.bucket)
                .key(&self.key)
                .set_if_match(base.etag.clone())
                .send()
                .await
                .map_err(|e| self.changed_or(e))?;
            let data = out.body.collect().await.map_err(|e| StorageError::Io {
                path: self.path.clone(),
                source: std::io::Error::other(e),
            })?;
            let data = data.into_bytes();
            if data.len() as u64 != base.size {
                return Err(StorageError::Other(format!(
                    "{}: S3 returned {} bytes of a {}-byte object",
                    self.path,
                    data.len(),
                    base.size
                )));
            }
            grow(&mut self.buf, data.len(), self.chunk);
            self.buf.extend_from_slice(&data);
            return Ok(());
        }
        let upload_id = self.inner.create_upload(&self.path, &self.key).await?;
        let parts = self
            .inner
            .copy_parts(
                &self.path,
                &self.key,
                &self.key,
                &upload_id,
                1,
                base.size,
                base.etag.as_deref(),
                true,
            )
            .await;
        match parts {
            Ok(parts) => {
                self.upload = Some((upload_id, parts));
                Ok(())
            }
            Err(e) => {
                self.inner.abort_upload(&self.key, &upload_id).await;
                Err(e)
            }
        }
    }

    fn changed_or<E, R>(&self, e: aws_sdk_s3::error::SdkError<E, R>) -> StorageError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + super::error::HasStatus,
    {
        if error_status(&e) == Some(412) {
            StorageError::Other(format!(
                "{}: the object changed while being appended to",
                self.path
            ))
        } else {
            map_sdk_error(&self.path, &self.inner.bucket, e)
        }
    }

    /// Uploads one part (creating the multipart upload on first use).
    async fn upload_part(&mut self, data: Bytes) -> Result<()> {
        if self.upload.is_none() {
            let id = self.inner.create_upload(&self.path, &self.key).await?;
            self.upload = Some((id, Vec::new()));
        }
        let Some((upload_id, parts)) = self.upload.as_mut() else {
            return Err(StorageError::Other("multipart upload missing".into()));
        };
        if parts.len() >= MAX_PARTS {
            return Err(StorageError::Other(format!(
                "{}: more than {MAX_PARTS} parts of {} bytes; raise storage.s3.chunksize",
                self.path, self.chunk
            )));
        }
        let number = parts.len() as i32 + 1;
        let len = data.len() as i64;
        let out = self
            .inner
            .client
            .upload_part()
            .bucket(&self.inner.bucket)
            .key(&self.key)
            .upload_id(upload_id.as_str())
            .part_number(number)
            .content_length(len)
            .body(data.into())
            .send()
            .await
            .map_err(|e| map_sdk_error(&self.path, &self.inner.bucket, e))?;
        let etag = out.e_tag().ok_or_else(|| {
            StorageError::Other(format!(
                "{}: S3 returned no ETag for part {number}",
                self.path
            ))
        })?;
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(etag)
                .build(),
        );
        Ok(())
    }

    async fn write_inner(&mut self, mut data: Bytes) -> Result<()> {
        self.take_base().await?;
        while !data.is_empty() {
            if self.buf.is_empty() && data.len() >= self.chunk {
                // A whole part straight from the caller's buffer.
                let part = data.split_to(self.chunk);
                self.upload_part(part).await?;
                continue;
            }
            let take = (self.chunk - self.buf.len()).min(data.len());
            grow(&mut self.buf, take, self.chunk);
            self.buf.extend_from_slice(&data.split_to(take));
            if self.buf.len() == self.chunk {
                let part = self.buf.split().freeze();
                self.upload_part(part).await?;
            }
        }
        Ok(())
    }

    /// Makes everything written so far the object's content.
    async fn finish(&mut self) -> Result<()> {
        self.check_usable()?;
        self.finished = true;
        if !self.dirty {
            return Ok(());
        }
        let result = async {
            self.take_base().await?;
            let rest = self.buf.split().freeze();
            if self.upload.is_none() {
                return self.inner.put(&self.path, &self.key, rest).await;
            }
            if !rest.is_empty() {
                self.upload_part(rest).await?;
            }
            let Some((upload_id, parts)) = self.upload.take() else {
                return Ok(());
            };
            let done = self
                .inner
                .complete_upload(&self.path, &self.key, &upload_id, parts)
                .await;
            if done.is_err() {
                self.inner.abort_upload(&self.key, &upload_id).await;
            }
            done
        }
        .await;
        if result.is_err() {
            self.abort().await;
            self.size = self.opened_size;
        }
        result
    }

    async fn abort(&mut self) {
        if let Some((upload_id, _)) = self.upload.take() {
            self.inner.abort_upload(&self.key, &upload_id).await;
        }
    }
}

/// Makes room for `more` bytes in `buf`: it grows with what is written
/// (doubling, so small files stay small) but its capacity never exceeds
/// `limit` (one part).
fn grow(buf: &mut BytesMut, more: usize, limit: usize) {
    let needed = buf.len() + more;
    if needed > buf.capacity() {
        let target = needed.max(buf.capacity() * 2).min(limit).max(needed);
        let mut fresh = BytesMut::with_capacity(target);
        fresh.extend_from_slice(buf);
        *buf = fresh;
    }
}

#[async_trait]
impl FileWriter for S3Writer {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.check_usable()?;
        if data.is_empty() {
            return Ok(());
        }
        self.dirty = true;
        let len = data.len() as u64;
        match self.write_inner(data).await {
            Ok(()) => {
                self.size += len;
                Ok(())
            }
            Err(e) => {
                self.poisoned = Some(e.to_string());
                self.abort().await;
                self.buf = BytesMut::new();
                self.size = self.opened_size;
                Err(e)
            }
        }
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn close(mut self: Box<Self>) -> Result<()> {
        if let Some(why) = self.poisoned.take() {
            self.finished = true;
            return Err(StorageError::Other(format!(
                "{}: closed after a failed write ({why}); the file keeps its content from \
                 before this writer",
                self.path
            )));
        }
        self.finish().await
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        self.finish().await
    }

    async fn cancel(mut self: Box<Self>) -> Result<()> {
        self.finished = true;
        self.abort().await;
        self.inner
            .client
            .delete_object()
            .bucket(&self.inner.bucket)
            .key(&self.key)
            .send()
            .await
            .map_err(|e| map_sdk_error(&self.path, &self.inner.bucket, e))?;
        Ok(())
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // Dropped mid-upload: abort in the background so S3 keeps no
        // orphaned parts (the object keeps its previous content).
        let Some((upload_id, _)) = self.upload.take() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(key = %self.key, upload_id, "S3 writer dropped outside a runtime; multipart upload left for the bucket's lifecycle rule");
            return;
        };
        let inner = self.inner.clone();
        let key = std::mem::take(&mut self.key);
        handle.spawn(async move {
            inner.abort_upload(&key, &upload_id).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_never_exceeds_one_part() {
        let limit = 5 * 1024 * 1024;
        let mut buf = BytesMut::new();
        let mut sizes = 1usize;
        while buf.len() < limit {
            sizes = (sizes * 7 + 13) % 300_000 + 1;
            let take = sizes.min(limit - buf.len());
            grow(&mut buf, take, limit);
            buf.extend_from_slice(&vec![7u8; take]);
            assert!(buf.capacity() <= limit, "{} > {limit}", buf.capacity());
        }
        assert_eq!(buf.len(), limit);
        let mut small = BytesMut::new();
        grow(&mut small, 3, limit);
        assert!(
            small.capacity() < 1024,
            "a tiny file got {}",
            small.capacity()
        );
    }
}
