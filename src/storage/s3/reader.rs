//! Streaming reads: one ranged `GetObject`, resumed from the last byte
//! received (pinned to the object's ETag, so a replaced object is an error,
//! never a splice of two versions) when the body breaks off early.

use std::io;
use std::sync::Arc;

use aws_sdk_s3::error::DisplayErrorContext;
use bytes::Bytes;
use futures::StreamExt;

use super::Inner;
use super::error::{error_code, error_status, map_sdk_error};
use crate::storage::{ByteStream, Result, StorageError};

/// Resumptions allowed per reader after the body breaks off.
const MAX_RESUMES: u32 = 3;

/// Opens a stream of the object at `path` from `offset`.
pub(crate) async fn open(inner: Arc<Inner>, path: &str, offset: u64) -> Result<ByteStream> {
    let key = inner.key(path);
    let mut req = inner.client.get_object().bucket(&inner.bucket).key(&key);
    if offset > 0 {
        req = req.range(format!("bytes={offset}-"));
    }
    let out = match req.send().await {
        Ok(out) => out,
        Err(e)
            if offset > 0
                && (error_status(&e) == Some(416) || error_code(&e) == Some("InvalidRange")) =>
        {
            // Offset at or past the end: which one decides empty vs error.
            let meta = inner
                .head(path, &key)
                .await?
                .ok_or_else(|| StorageError::PathNotFound(path.to_string()))?;
            if offset == meta.size {
                return Ok(futures::stream::empty().boxed());
            }
            return Err(StorageError::InvalidOffset {
                path: path.to_string(),
                offset,
            });
        }
        Err(e) => return Err(map_sdk_error(path, &inner.bucket, e)),
    };
    let remaining = u64::try_from(out.content_length().unwrap_or(0)).unwrap_or(0);
    let state = State {
        inner,
        path: path.to_string(),
        key,
        etag: out.e_tag().map(str::to_string),
        pos: offset,
        end: offset + remaining,
        body: Some(out.body),
        resumes: 0,
    };
    Ok(futures::stream::unfold(state, |mut s| async move {
        match s.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), s)),
            Ok(None) => None,
            Err(e) => {
                // End the stream after the error.
                s.pos = s.end;
                s.body = None;
                Some((Err(e), s))
            }
        }
    })
    .boxed())
}

struct State {
    inner: Arc<Inner>,
    path: String,
    key: String,
    etag: Option<String>,
    pos: u64,
    end: u64,
    body: Option<aws_sdk_s3::primitives::ByteStream>,
    resumes: u32,
}

impl State {
    async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            if self.pos >= self.end {
                return Ok(None);
            }
            let Some(body) = self.body.as_mut() else {
                self.resume().await?;
                continue;
            };
            match body.next().await {
                Some(Ok(chunk)) => {
                    let len = chunk.len() as u64;
                    if self.pos + len > self.end {
                        return Err(io::Error::other(format!(
                            "S3 sent more bytes than the object {} has",
                            self.path
                        )));
                    }
                    self.pos += len;
                    return Ok(Some(chunk));
                }
                Some(Err(e)) => {
                    let why = DisplayErrorContext(&e).to_string();
                    tracing::debug!(path = %self.path, pos = self.pos, error = %why, "S3 read broke off");
                    self.broken(why)?;
                }
                None => self.broken("body ended early".into())?,
            }
        }
    }

    /// Records a broken body; errors once resumptions are used up.
    fn broken(&mut self, why: String) -> io::Result<()> {
        self.body = None;
        if self.resumes >= MAX_RESUMES {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "reading {} from S3 failed at byte {} of {}: {why}",
                    self.path, self.pos, self.end
                ),
            ));
        }
        self.resumes += 1;
        Ok(())
    }

    /// Issues a new ranged GET from `pos`, pinned to the ETag.
    async fn resume(&mut self) -> io::Result<()> {
        let inner = &self.inner;
        let out = inner
            .client
            .get_object()
            .bucket(&inner.bucket)
            .key(&self.key)
            .range(format!("bytes={}-{}", self.pos, self.end - 1))
            .set_if_match(self.etag.clone())
            .send()
            .await
            .map_err(|e| {
                if error_status(&e) == Some(412) {
                    io::Error::other(format!(
                        "{} changed in S3 while it was being read",
                        self.path
                    ))
                } else {
                    io::Error::other(map_sdk_error(&self.path, &inner.bucket, e))
                }
            })?;
        self.body = Some(out.body);
        Ok(())
    }
}
