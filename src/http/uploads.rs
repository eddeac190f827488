//! Blob uploads: `POST .../blobs/uploads/` (session, monolithic, mount),
//! `PATCH`/`PUT`/`GET`/`DELETE .../blobs/uploads/<id>`.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;

use super::error::{ApiError, ApiResult};
use super::route::{query_get, query_pairs};
use super::{AppState, body_stream, empty, header_str, location};
use crate::registry::{Digest, ErrorCode, RegistryError, RepoName};

/// `Range` header value for `size` received bytes, as Distribution writes
/// it (`0-0` when empty).
fn range_value(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

fn upload_location(app: &AppState, name: &RepoName, id: &str) -> String {
    location(app, &format!("/v2/{name}/blobs/uploads/{id}"))
}

fn blob_created(app: &AppState, name: &RepoName, digest: &Digest) -> Response {
    empty(
        StatusCode::CREATED,
        &[
            (
                "Location",
                location(app, &format!("/v2/{name}/blobs/{digest}")),
            ),
            ("Docker-Content-Digest", digest.to_string()),
        ],
    )
}

fn upload_accepted(
    app: &AppState,
    name: &RepoName,
    id: &str,
    size: u64,
    status: StatusCode,
) -> Response {
    empty(
        status,
        &[
            ("Location", upload_location(app, name, id)),
            ("Range", range_value(size)),
            ("Docker-Upload-UUID", id.to_string()),
        ],
    )
}

/// Parses `Content-Range: a-b` (also tolerating `bytes=a-b`, `bytes a-b/*`).
fn content_range(req: &Request) -> ApiResult<Option<(u64, u64)>> {
    let Some(v) = header_str(req.headers(), "content-range") else {
        return Ok(None);
    };
    let v = v.trim();
    let v = v
        .strip_prefix("bytes=")
        .or_else(|| v.strip_prefix("bytes "))
        .unwrap_or(v);
    let v = v.split('/').next().unwrap_or(v);
    let parsed = v
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
    match parsed {
        Some((a, b)) if b >= a => Ok(Some((a, b))),
        _ => Err(ApiError(RegistryError::new(
            ErrorCode::RangeInvalid,
            format!("invalid Content-Range {v:?}"),
        ))),
    }
}

fn content_length(req: &Request) -> Option<u64> {
    header_str(req.headers(), "content-length").and_then(|v| v.trim().parse().ok())
}

/// `POST`: mount, monolithic upload, or a new session.
pub async fn post(app: &AppState, name: &RepoName, req: Request) -> ApiResult {
    let q = query_pairs(req.uri().query());
    let registry = &app.registry;
    registry.check_push(name)?;
    if let Some(mount) = query_get(&q, "mount") {
        let digest: Digest = mount.parse()?;
        let from = query_get(&q, "from").map(RepoName::parse).transpose()?;
        if registry
            .mount_blob(name, &digest, from.as_ref())
            .await?
            .is_some()
        {
            return Ok(blob_created(app, name, &digest));
        }
    } else if let Some(d) = query_get(&q, "digest") {
        let digest: Digest = d.parse()?;
        let id = registry.start_upload(name).await?;
        let body = body_stream(req.into_body());
        registry
            .finish_upload(name, &id, &digest, Some(body))
            .await?;
        return Ok(blob_created(app, name, &digest));
    }
    let id = registry.start_upload(name).await?;
    Ok(upload_accepted(app, name, &id, 0, StatusCode::ACCEPTED))
}

/// `PATCH`: appends a chunk (streamed; `Transfer-Encoding: chunked` works).
pub async fn patch(app: &AppState, name: &RepoName, id: &str, req: Request) -> ApiResult {
    let range = content_range(&req)?;
    if let (Some((a, b)), Some(len)) = (range, content_length(&req))
        && b - a + 1 != len
    {
        return Err(ApiError(RegistryError::new(
            ErrorCode::RangeInvalid,
            format!("Content-Range {a}-{b} does not match Content-Length {len}"),
        )));
    }
    let body = body_stream(req.into_body());
    let size = app.registry.patch_upload(name, id, range, body).await?;
    Ok(upload_accepted(app, name, id, size, StatusCode::ACCEPTED))
}

/// `PUT ?digest=`: completes the upload, with an optional final chunk.
pub async fn put(app: &AppState, name: &RepoName, id: &str, req: Request) -> ApiResult {
    let q = query_pairs(req.uri().query());
    let digest: Digest = query_get(&q, "digest")
        .ok_or_else(|| RegistryError::digest_invalid("the digest query parameter is required"))?
        .parse()?;
    if let Some((start, _)) = content_range(&req)? {
        let size = app.registry.upload_size(name, id).await?;
        if start != size {
            return Err(ApiError(RegistryError::new(
                ErrorCode::RangeInvalid,
                format!("final chunk starts at {start}, the upload has {size} bytes"),
            )));
        }
    }
    let body = body_stream(req.into_body());
    app.registry
        .finish_upload(name, id, &digest, Some(body))
        .await?;
    Ok(blob_created(app, name, &digest))
}

/// `GET`: upload progress (204 with `Range`).
pub async fn status(app: &AppState, name: &RepoName, id: &str) -> ApiResult {
    let size = app.registry.upload_size(name, id).await?;
    Ok(upload_accepted(app, name, id, size, StatusCode::NO_CONTENT))
}

/// `DELETE`: cancels the upload.
pub async fn delete(app: &AppState, name: &RepoName, id: &str) -> ApiResult {
    app.registry.cancel_upload(name, id).await?;
    Ok(empty(StatusCode::NO_CONTENT, &[]))
}
