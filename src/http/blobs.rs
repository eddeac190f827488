//! `HEAD`/`GET`/`DELETE /v2/<name>/blobs/<digest>`, with single byte ranges
//! and optional redirects to the storage's own URL.

use std::io;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::Response;
use futures::StreamExt;

use super::error::{ApiError, ApiResult};
use super::{AppState, empty, header_str};
use crate::registry::{Digest, ErrorCode, RegistryError, RepoName};
use crate::storage::ByteStream;

/// A byte range resolved against a size: `[start, end]` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
}

/// A `Range` header that is malformed or unsatisfiable (answered 416).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadRange;

/// Parses a `Range` header against `size`. `Ok(None)`: serve everything
/// (no header, or several ranges, which a server may ignore).
pub fn parse_range(value: Option<&str>, size: u64) -> Result<Option<ByteRange>, BadRange> {
    let Some(v) = value else { return Ok(None) };
    let spec = v.trim().strip_prefix("bytes=").ok_or(BadRange)?;
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(BadRange)?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| BadRange)?;
        if n == 0 || size == 0 {
            return Err(BadRange);
        }
        ByteRange {
            start: size.saturating_sub(n),
            end: size - 1,
        }
    } else {
        let start: u64 = a.parse().map_err(|_| BadRange)?;
        let end: u64 = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse().map_err(|_| BadRange)?
        };
        if start >= size || end < start {
            return Err(BadRange);
        }
        ByteRange {
            start,
            end: end.min(size - 1),
        }
    };
    Ok(Some(range))
}

/// Truncates a stream after `len` bytes.
pub(crate) fn limit_stream(s: ByteStream, len: u64) -> ByteStream {
    Box::pin(s.scan(len, |left, item| {
        let out = match item {
            Ok(chunk) if *left == 0 => {
                drop(chunk);
                None
            }
            Ok(mut chunk) => {
                if chunk.len() as u64 > *left {
                    chunk.truncate(*left as usize);
                }
                *left -= chunk.len() as u64;
                Some(Ok::<_, io::Error>(chunk))
            }
            Err(e) => Some(Err(e)),
        };
        futures::future::ready(out)
    }))
}

/// True if an `If-None-Match` header matches `etag` (or is `*`).
pub(crate) fn if_none_match(headers: &axum::http::HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
        })
}

/// 304 with the validators a cache needs.
pub(crate) fn not_modified(etag: &str, digest: &str) -> Response {
    empty(
        StatusCode::NOT_MODIFIED,
        &[
            ("ETag", etag.to_string()),
            ("Docker-Content-Digest", digest.to_string()),
        ],
    )
}

fn parse_digest(s: &str) -> ApiResult<Digest> {
    s.parse::<Digest>().map_err(ApiError)
}

/// `HEAD` (no body) or `GET`.
pub async fn get(
    app: &AppState,
    name: &RepoName,
    digest: &str,
    req: Request,
    with_body: bool,
) -> ApiResult {
    let digest = parse_digest(digest)?;
    let registry = &app.registry;
    let size = registry.stat_blob(name, &digest).await?;
    if with_body && let Some(url) = registry.blob_redirect(&digest).await? {
        return Ok(empty(
            StatusCode::TEMPORARY_REDIRECT,
            &[
                ("Location", url),
                ("Docker-Content-Digest", digest.to_string()),
            ],
        ));
    }
    let etag = format!("\"{digest}\"");
    if if_none_match(req.headers(), &etag) {
        return Ok(not_modified(&etag, &digest.to_string()));
    }
    let range = match parse_range(header_str(req.headers(), "range"), size) {
        Ok(r) => r,
        Err(BadRange) => {
            let mut resp =
                axum::response::IntoResponse::into_response(ApiError(RegistryError::new(
                    ErrorCode::RangeInvalid,
                    format!("requested range not satisfiable for a blob of {size} bytes"),
                )));
            if let Ok(v) = format!("bytes */{size}").parse() {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
    };
    let (status, start, len) = match range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.start, r.end - r.start + 1),
        None => (StatusCode::OK, 0, size),
    };
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .header("Docker-Content-Digest", digest.to_string())
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, etag)
        .header(header::CACHE_CONTROL, "max-age=31536000");
    if let Some(r) = range {
        resp = resp.header(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{size}", r.start, r.end),
        );
    }
    let body = if with_body && len > 0 {
        let stream = registry.open_blob(&digest, start).await?;
        Body::from_stream(limit_stream(stream, len))
    } else {
        Body::empty()
    };
    resp.body(body)
        .map_err(|e| ApiError(RegistryError::internal(e.to_string())))
}

/// `DELETE`: unlinks the blob from the repository (202).
pub async fn delete(app: &AppState, name: &RepoName, digest: &str) -> ApiResult {
    let digest = parse_digest(digest)?;
    app.registry.delete_blob(name, &digest).await?;
    Ok(empty(
        StatusCode::ACCEPTED,
        &[("Docker-Content-Digest", digest.to_string())],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |s: &str| parse_range(Some(s), 100);
        assert_eq!(parse_range(None, 100), Ok(None));
        assert_eq!(r("bytes=0-9"), Ok(Some(ByteRange { start: 0, end: 9 })));
        assert_eq!(r("bytes=90-"), Ok(Some(ByteRange { start: 90, end: 99 })));
        assert_eq!(r("bytes=-10"), Ok(Some(ByteRange { start: 90, end: 99 })));
        assert_eq!(r("bytes=-1000"), Ok(Some(ByteRange { start: 0, end: 99 })));
        assert_eq!(
            r("bytes=50-1000"),
            Ok(Some(ByteRange { start: 50, end: 99 }))
        );
        assert_eq!(r("bytes=0-1,5-6"), Ok(None));
        for bad in [
            "bytes=100-",
            "bytes=100-200",
            "bytes=5-4",
            "bytes=-0",
            "items=0-1",
            "bytes=a-b",
            "bytes=0",
        ] {
            assert_eq!(r(bad), Err(BadRange), "{bad}");
        }
        assert_eq!(parse_range(Some("bytes=0-"), 0), Err(BadRange));
    }

    #[tokio::test]
    async fn limit() {
        let s: ByteStream = Box::pin(futures::stream::iter(vec![
            Ok(bytes::Bytes::from_static(b"hello")),
            Ok(bytes::Bytes::from_static(b"world")),
        ]));
        let out: Vec<bytes::Bytes> = limit_stream(s, 7).map(|r| r.unwrap()).collect().await;
        assert_eq!(out.concat(), b"hellowo");
    }
}
