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
    let (skip, end) = body_window(offset, out.content_range(), out.content_length())
        .map_err(|why| StorageError::Other(format!("{path}: {why}")))?;
    let state = State {
        inner,
        path: path.to_string(),
        key,
        etag: out.e_tag().map(str::to_string),
        pos: offset,
        end,
        skip,
        body: Some(out.body),
        resumes: 0,
        failed: false,
    };
    Ok(futures::stream::unfold(state, |mut s| async move {
        match s.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), s)),
            Ok(None) => None,
            Err(e) => {
                // End the stream after the error.
                s.failed = true;
                s.body = None;
                Some((Err(e), s))
            }
        }
    })
    .boxed())
}

/// Where the wanted bytes sit in a GET answer for `start..`: how many
/// leading bytes to skip (a server that ignored `Range` sent the whole
/// object) and the end offset, when the length is known.
fn body_window(
    start: u64,
    content_range: Option<&str>,
    content_length: Option<i64>,
) -> std::result::Result<(u64, Option<u64>), String> {
    let length = content_length.and_then(|l| u64::try_from(l).ok());
    match content_range {
        Some(range) => {
            // "bytes first-last/total"
            let spec = range.trim().strip_prefix("bytes ").unwrap_or(range);
            let (span, _) = spec.split_once('/').unwrap_or((spec, ""));
            let (first, last) = span
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
                .ok_or_else(|| format!("unreadable Content-Range {range:?}"))?;
            if first != start || last < first {
                return Err(format!(
                    "asked for bytes from {start}, S3 answered Content-Range {range:?}"
                ));
            }
            Ok((0, Some(last + 1)))
        }
        None => Ok((start, length)),
    }
}

struct State {
    inner: Arc<Inner>,
    path: String,
    key: String,
    etag: Option<String>,
    /// Offset of the next byte to hand out.
    pos: u64,
    /// End of the object (exclusive), when the server said.
    end: Option<u64>,
    /// Leading bytes of the current body to drop (Range ignored).
    skip: u64,
    body: Option<aws_sdk_s3::primitives::ByteStream>,
    resumes: u32,
    failed: bool,
}

impl State {
    async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            if self.failed || self.end.is_some_and(|end| self.pos >= end) {
                return Ok(None);
            }
            let Some(body) = self.body.as_mut() else {
                self.resume().await?;
                continue;
            };
            match body.next().await {
                Some(Ok(mut chunk)) => {
                    if self.skip > 0 {
                        let drop = usize::try_from(self.skip)
                            .unwrap_or(usize::MAX)
                            .min(chunk.len());
                        let _ = chunk.split_to(drop);
                        self.skip -= drop as u64;
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    let len = chunk.len() as u64;
                    if self.end.is_some_and(|end| self.pos + len > end) {
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
                    if self.end.is_none() {
                        return Err(io::Error::other(format!(
                            "reading {} from S3 failed at byte {}: {why}",
                            self.path, self.pos
                        )));
                    }
                    self.broken(why)?;
                }
                None if self.end.is_none() => {
                    self.failed = true;
                    return Ok(None);
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
                    self.path,
                    self.pos,
                    self.end.unwrap_or_default()
                ),
            ));
        }
        self.resumes += 1;
        Ok(())
    }

    /// Issues a new ranged GET from `pos`, pinned to the ETag.
    async fn resume(&mut self) -> io::Result<()> {
        let Some(end) = self.end else {
            return Err(io::Error::other("cannot resume a read of unknown length"));
        };
        let inner = &self.inner;
        let out = inner
            .client
            .get_object()
            .bucket(&inner.bucket)
            .key(&self.key)
            .range(format!("bytes={}-{}", self.pos, end - 1))
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
        let (skip, _) = body_window(self.pos, out.content_range(), out.content_length())
            .map_err(io::Error::other)?;
        self.skip = skip;
        self.body = Some(out.body);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::body_window;

    #[test]
    fn windows() {
        assert_eq!(body_window(0, None, Some(10)), Ok((0, Some(10))));
        assert_eq!(body_window(4, None, Some(10)), Ok((4, Some(10))));
        assert_eq!(body_window(0, None, None), Ok((0, None)));
        assert_eq!(
            body_window(4, Some("bytes 4-9/10"), Some(6)),
            Ok((0, Some(10)))
        );
        assert!(body_window(5, Some("bytes 4-9/10"), Some(6)).is_err());
        assert!(body_window(4, Some("nonsense"), Some(6)).is_err());
    }
}
